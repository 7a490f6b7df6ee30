//! The channel manager, as its get-token contract describes it.
//!
//! `POST /getToken` reads `username` and `password` as request parameters (a form body,
//! `application/x-www-form-urlencoded`, or the query string, as a Spring `@RequestParam`
//! does) and answers the channel user's token as `text/plain`. No channel user with those
//! credentials is the contract's `RuntimeException` "Channel manager not found", which a
//! Spring server renders as a `500` with its JSON error body; a failure (the knob) is a Spring
//! `500` "Internal Server Error". Tokens carry no expiry. The connectivity API
//! (`GET /properties`) wants `Authorization: Bearer <token>`.

use httpmock::{HttpMockRequest, HttpMockResponse};
use reqwest_partner_auth::clock::SystemClock;

use super::{form, has_content_type, respond, Endpoint, Ledger, Partner};

/// The credentials the mock accepts (the contract's example values).
pub(crate) const USERNAME: &str = "channel_user";
pub(crate) const PASSWORD: &str = "550e8400-e29b-41d4-a716-446655440000";
pub(crate) const PROPERTIES_PATH: &str = "/properties";
/// The contract's message for unknown credentials.
pub(crate) const NOT_FOUND: &str = "Channel manager not found";

/// Starts the partner.
pub(crate) async fn start() -> Partner {
    let partner = Partner::start(SystemClock, None, ("/getToken", "/properties")).await;
    partner
        .on(Endpoint::Token, Some("POST"), "/getToken", get_token)
        .await;
    partner
        .on(Endpoint::Api, Some("GET"), PROPERTIES_PATH, properties)
        .await;
    partner
}

/// Shaped like the contract's example response `eyJhbGciOiJIUzI1NiJ9.example.token`.
fn token(n: usize) -> String {
    format!("eyJhbGciOiJIUzI1NiJ9.example-{n}.token")
}

/// Spring's rendering of an exception thrown by `/getToken`.
fn spring_500(message: &str) -> HttpMockResponse {
    let body = serde_json::json!({
        "timestamp": "2024-01-01T00:00:00.000+00:00",
        "status": 500,
        "error": "Internal Server Error",
        "message": message,
        "path": "/getToken",
    });
    respond(500, "application/json", body.to_string())
}

fn get_token(ledger: &Ledger, req: &HttpMockRequest) -> HttpMockResponse {
    let mut params = req.query_params();
    if has_content_type(req, "application/x-www-form-urlencoded") {
        params.extend(form(req.body_ref()));
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if ledger.fails_now() {
        return spring_500("Internal Server Error");
    }
    if param("username") != Some(USERNAME) || param("password") != Some(PASSWORD) {
        ledger.bad_credentials();
        return spring_500(NOT_FOUND);
    }
    let (token, _) = ledger.issue(|n, _, _| token(n));
    respond(200, "text/plain;charset=UTF-8", token)
}

/// `GET /properties`: only the newest, unrevoked token is accepted.
fn properties(ledger: &Ledger, req: &HttpMockRequest) -> HttpMockResponse {
    if ledger.accepts(req) {
        respond(
            200,
            "application/json",
            r#"[{"id":101,"name":"Hotel Alpha"},{"id":102,"name":"Hotel Beta"}]"#,
        )
    } else {
        respond(401, "text/plain", "Unauthorized")
    }
}
