//! Targeter, as its partner-token contract describes it.
//!
//! `POST /api/auth/token` wants `Content-Type: application/json` and a body of exactly
//! `{"api_key": "...", "api_secret": "..."}`. A good request gets `{"access_token": "<JWT>",
//! "token_type": "Bearer", "expires_in": 3600}`; anything else is `400 {"error": "Invalid
//! request body"}`, unknown credentials are `401 {"error": "Invalid API credentials"}`, and a
//! failure (the knob) is `500 {"error": "Internal server error"}`. The campaign API
//! (`POST /api/campaign`, a JSON body) wants `Authorization: Bearer <jwt>`.

use std::time::Duration;

use httpmock::{HttpMockRequest, HttpMockResponse};
use reqwest_partner_auth::Clock;
use serde_json::{json, Value};

use super::{has_content_type, json, Endpoint, Ledger, Partner};

/// The credentials the mock accepts (the contract's example values).
pub(crate) const API_KEY: &str = "YOUR_ISSUED_PARTNER_KEY";
pub(crate) const API_SECRET: &str = "YOUR_ISSUED_PARTNER_SECRET";
pub(crate) const CAMPAIGN_PATH: &str = "/api/campaign";
/// "JWT tokens expire after 1 hour".
pub(crate) const LIFETIME: Duration = Duration::from_secs(3600);

/// Starts the partner; its tokens expire by `clock`.
pub(crate) async fn start(clock: impl Clock) -> Partner {
    let partner = Partner::start(clock, Some(LIFETIME), ("token endpoint", "campaign API")).await;
    partner
        .on(
            Endpoint::Token,
            Some("POST"),
            "/api/auth/token",
            token_endpoint,
        )
        .await;
    partner
        .on(Endpoint::Api, Some("POST"), CAMPAIGN_PATH, campaign)
        .await;
    partner
}

/// A JWT-shaped token that names its serial number.
fn token(n: usize) -> String {
    format!("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.targeter-{n}.c2lnbmF0dXJl")
}

fn token_endpoint(ledger: &Ledger, req: &HttpMockRequest) -> HttpMockResponse {
    let body: Option<serde_json::Map<String, Value>> = serde_json::from_slice(req.body_ref()).ok();
    let fields =
        body.as_ref()
            .and_then(|b| match (b.len(), b.get("api_key"), b.get("api_secret")) {
                (2, Some(Value::String(k)), Some(Value::String(s))) => Some((k, s)),
                _ => None,
            });
    let Some((key, secret)) = fields.filter(|_| has_content_type(req, "application/json")) else {
        ledger.bad_request();
        return json(400, json!({ "error": "Invalid request body" }));
    };
    if ledger.fails_now() {
        return json(500, json!({ "error": "Internal server error" }));
    }
    if key != API_KEY || secret != API_SECRET {
        ledger.bad_credentials();
        return json(401, json!({ "error": "Invalid API credentials" }));
    }
    let (token, expires_in) = ledger.issue(|n, _, _| token(n));
    json(
        200,
        json!({ "access_token": token, "token_type": "Bearer", "expires_in": expires_in }),
    )
}

/// `POST /api/campaign`: the newest token, and a JSON body.
fn campaign(ledger: &Ledger, req: &HttpMockRequest) -> HttpMockResponse {
    if !ledger.accepts(req) {
        return json(401, json!({ "error": "Unauthorized" }));
    }
    let body: Option<Value> = serde_json::from_slice(req.body_ref()).ok();
    if !has_content_type(req, "application/json") || !body.is_some_and(|b| b.is_object()) {
        ledger.bad_request();
        return json(400, json!({ "error": "Invalid request body" }));
    }
    json(200, json!({ "id": 17, "status": "created" }))
}
