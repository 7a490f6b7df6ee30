//! A generic partner for the quickstart: `POST /oauth/token` with the JSON body
//! `{"client_id": "demo-client", "client_secret": "demo-secret"}` answers a one-hour bearer
//! token (`tok-1`, `tok-2`, ...) as `{"access_token", "token_type": "Bearer", "expires_in":
//! 3600}`; other credentials get `401 {"error": "invalid_client"}`, another body `400
//! {"error": "invalid_request"}`. `GET /v1/campaigns` lists the campaigns.

use std::time::Duration;

use httpmock::{HttpMockRequest, HttpMockResponse};
use reqwest_partner_auth::Clock;
use serde_json::json;

use super::{has_content_type, json, Endpoint, Ledger, Partner};

pub(crate) const CLIENT_ID: &str = "demo-client";
pub(crate) const CLIENT_SECRET: &str = "demo-secret";
pub(crate) const TOKEN_PATH: &str = "/oauth/token";
pub(crate) const CAMPAIGNS_PATH: &str = "/v1/campaigns";
/// The lifetime of its tokens.
pub(crate) const LIFETIME: Duration = Duration::from_secs(3600);

/// Starts the partner; its tokens expire by `clock`.
pub(crate) async fn start(clock: impl Clock) -> Partner {
    let partner = Partner::start(clock, Some(LIFETIME), ("token endpoint", "API")).await;
    partner
        .on(Endpoint::Token, Some("POST"), TOKEN_PATH, token_endpoint)
        .await;
    partner
        .on(Endpoint::Api, Some("GET"), CAMPAIGNS_PATH, campaigns)
        .await;
    partner
}

fn token_endpoint(ledger: &Ledger, req: &HttpMockRequest) -> HttpMockResponse {
    let body: Option<serde_json::Value> = serde_json::from_slice(req.body_ref()).ok();
    let fields = body.as_ref().and_then(|b| {
        let object = b.as_object().filter(|o| o.len() == 2)?;
        Some((
            object.get("client_id")?.as_str()?,
            object.get("client_secret")?.as_str()?,
        ))
    });
    let Some((id, secret)) = fields.filter(|_| has_content_type(req, "application/json")) else {
        ledger.bad_request();
        return json(400, json!({ "error": "invalid_request" }));
    };
    if ledger.fails_now() {
        return json(500, json!({ "error": "server_error" }));
    }
    if (id, secret) != (CLIENT_ID, CLIENT_SECRET) {
        ledger.bad_credentials();
        return json(401, json!({ "error": "invalid_client" }));
    }
    let (token, expires_in) = ledger.issue(|n, _, _| format!("tok-{n}"));
    json(
        200,
        json!({ "access_token": token, "token_type": "Bearer", "expires_in": expires_in }),
    )
}

fn campaigns(ledger: &Ledger, req: &HttpMockRequest) -> HttpMockResponse {
    if ledger.accepts(req) {
        json(200, json!({ "campaigns": [{ "id": 1, "name": "Spring" }] }))
    } else {
        json(401, json!({ "error": "invalid_token" }))
    }
}
