//! Setu (Bridge), as its partner-token contract describes it.
//!
//! `POST /auth/token` wants the URL-encoded body parameters `grant_type=client_credentials`,
//! `client_id` and `client_secret` (`application/x-www-form-urlencoded`) and answers
//! `{"accessToken": "<JWT>", "refreshToken": "<JWT>"}` with no `expires_in`: the access token
//! is a JWT (RS256 header; `exp`, `iat`, `jti`, `typ` claims) whose `exp` is 15 minutes after
//! it was issued, by the partner's clock ("valid for 15 minutes"). The contract documents no
//! error body: wrong credentials get a `401` shaped like the Keycloak error of Setu's token
//! issuer, a malformed form `400 {"error": "invalid_request"}`, and a failure (the knob) a
//! bare `500`. The next API (`/v1/next-api`) wants `Authorization: Bearer <accessToken>`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use httpmock::{HttpMockRequest, HttpMockResponse};
use reqwest_partner_auth::Clock;
use serde_json::json;

use super::{form, has_content_type, json, respond, Endpoint, Ledger, Partner};

/// The credentials the mock accepts (the contract's example values).
pub(crate) const CLIENT_ID: &str = "Your.Client.ID";
pub(crate) const CLIENT_SECRET: &str = "Your.Client.Secret";
pub(crate) const NEXT_API_PATH: &str = "/v1/next-api";
/// "The partner accessToken is valid for 15 minutes".
pub(crate) const LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Starts the partner; it stamps `iat`/`exp` and checks expiry by `clock`.
pub(crate) async fn start(clock: impl Clock) -> Partner {
    let partner = Partner::start(clock, Some(LIFETIME), ("token endpoint", "API")).await;
    partner
        .on(Endpoint::Token, Some("POST"), "/auth/token", token_endpoint)
        .await;
    partner
        .on(Endpoint::Api, None, NEXT_API_PATH, next_api)
        .await;
    partner
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// An (unsigned) JWT like Setu's.
fn jwt(n: usize, typ: &str, iat: SystemTime, lifetime: Duration) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let iat = unix_secs(iat);
    let claims = json!({
        "exp": iat + lifetime.as_secs(),
        "iat": iat,
        "jti": format!("setu-{n}"),
        "typ": typ,
    });
    format!("{header}.{}.c2lnbmF0dXJl", b64.encode(claims.to_string()))
}

fn token_endpoint(ledger: &Ledger, req: &HttpMockRequest) -> HttpMockResponse {
    let pairs = form(req.body_ref());
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if !has_content_type(req, "application/x-www-form-urlencoded")
        || pairs.len() != 3
        || field("grant_type") != Some("client_credentials")
    {
        ledger.bad_request();
        return json(400, json!({ "error": "invalid_request" }));
    }
    if ledger.fails_now() {
        return respond(500, "text/plain", "");
    }
    if field("client_id") != Some(CLIENT_ID) || field("client_secret") != Some(CLIENT_SECRET) {
        ledger.bad_credentials();
        return json(
            401,
            json!({
                "error": "unauthorized_client",
                "error_description": "Invalid client or Invalid client credentials",
            }),
        );
    }
    let mut refresh = String::new();
    let (access, _) = ledger.issue(|n, iat, lifetime| {
        let lifetime = lifetime.unwrap_or(LIFETIME);
        refresh = jwt(n, "Refresh", iat, 2 * lifetime);
        jwt(n, "Bearer", iat, lifetime)
    });
    json(
        200,
        json!({ "accessToken": access, "refreshToken": refresh }),
    )
}

/// The next API: the newest, unexpired, unrevoked token, or `401`.
fn next_api(ledger: &Ledger, req: &HttpMockRequest) -> HttpMockResponse {
    if ledger.accepts(req) {
        json(200, json!({ "status": "ok" }))
    } else {
        json(401, json!({ "error": "invalid token" }))
    }
}
