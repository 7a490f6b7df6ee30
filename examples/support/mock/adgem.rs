//! AdGem, as its apps-tokens contract describes it.
//!
//! `POST /v1/apps/tokens` wants `Content-Type: application/json` and the four body parameters
//! `adgem_pub_id` and `adgem_app_id` (JSON integers), `client_id` and `client_secret`
//! (strings). A good request gets `{"access_token": "<JWT>", "token_type": "Bearer",
//! "expires_in": 3600}`; wrong credentials are `401 {"error": "invalid_client",
//! "error_description": "Invalid client credentials"}`, and a failure during token generation
//! (the knob) is `500 {"error": "server_error", "error_description": "An unexpected error
//! occurred"}`. The contract documents no answer to a malformed body; the mock answers `400
//! {"error": "invalid_request"}` and counts it. The offers API (`POST /v1/offers`) answers
//! the contract's GraphQL query [`OFFERS_QUERY`] for `Authorization: Bearer <jwt>`.

use std::time::Duration;

use httpmock::{HttpMockRequest, HttpMockResponse};
use reqwest_partner_auth::Clock;
use serde_json::{json, Value};

use super::{has_content_type, json, Endpoint, Ledger, Partner};

/// The credentials the mock accepts.
pub(crate) const PUB_ID: i64 = 1001;
pub(crate) const APP_ID: i64 = 2002;
pub(crate) const CLIENT_ID: &str = "your-client-id";
pub(crate) const CLIENT_SECRET: &str = "your-client-secret";
pub(crate) const OFFERS_PATH: &str = "/v1/offers";
/// The contract's offers query.
pub(crate) const OFFERS_QUERY: &str =
    "{ offers(player_id: \"user123\") { id name total_payout_usd } }";
/// The lifetime of its tokens (`expires_in` of the contract's example).
pub(crate) const LIFETIME: Duration = Duration::from_secs(3600);

/// Starts the partner; its tokens expire by `clock`.
pub(crate) async fn start(clock: impl Clock) -> Partner {
    let partner = Partner::start(clock, Some(LIFETIME), ("token endpoint", "offers API")).await;
    partner
        .on(
            Endpoint::Token,
            Some("POST"),
            "/v1/apps/tokens",
            token_endpoint,
        )
        .await;
    partner
        .on(Endpoint::Api, Some("POST"), OFFERS_PATH, offers)
        .await;
    partner
}

/// A JWT-shaped token that names its serial number.
fn token(n: usize) -> String {
    format!("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.adgem-{n}.c2lnbmF0dXJl")
}

fn token_endpoint(ledger: &Ledger, req: &HttpMockRequest) -> HttpMockResponse {
    let body: Option<serde_json::Map<String, Value>> = serde_json::from_slice(req.body_ref()).ok();
    let well_formed = has_content_type(req, "application/json")
        && body.as_ref().is_some_and(|b| {
            b.len() == 4
                && b.get("adgem_pub_id").is_some_and(Value::is_i64)
                && b.get("adgem_app_id").is_some_and(Value::is_i64)
                && b.get("client_id").is_some_and(Value::is_string)
                && b.get("client_secret").is_some_and(Value::is_string)
        });
    if !well_formed {
        ledger.bad_request();
        return json(400, json!({ "error": "invalid_request" }));
    }
    if ledger.fails_now() {
        return json(
            500,
            json!({ "error": "server_error", "error_description": "An unexpected error occurred" }),
        );
    }
    let expected = json!({
        "adgem_pub_id": PUB_ID,
        "adgem_app_id": APP_ID,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    });
    if Value::Object(body.unwrap_or_default()) != expected {
        ledger.bad_credentials();
        return json(
            401,
            json!({ "error": "invalid_client", "error_description": "Invalid client credentials" }),
        );
    }
    let (token, expires_in) = ledger.issue(|n, _, _| token(n));
    json(
        200,
        json!({ "access_token": token, "token_type": "Bearer", "expires_in": expires_in }),
    )
}

/// `POST /v1/offers`: the contract's query (intact, also on a replay) with the newest token.
fn offers(ledger: &Ledger, req: &HttpMockRequest) -> HttpMockResponse {
    if !ledger.accepts(req) {
        return json(401, json!({ "error": "unauthorized" }));
    }
    let body: Value = serde_json::from_slice(req.body_ref()).unwrap_or_default();
    if !has_content_type(req, "application/json") || body != json!({ "query": OFFERS_QUERY }) {
        ledger.bad_request();
        return json(400, json!({ "error": "invalid query" }));
    }
    json(
        200,
        json!({ "data": { "offers": [
            { "id": "of-1", "name": "Reach level 10", "total_payout_usd": 1.25 },
            { "id": "of-2", "name": "Install and open", "total_payout_usd": 0.4 },
        ] } }),
    )
}
