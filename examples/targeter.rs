//! Targeter: exchange the partner API key and secret for a one-hour JWT at
//! `POST /api/auth/token`, then call `POST /api/campaign` with `Authorization: Bearer <jwt>`.
//! No set-up needed:
//!
//! ```sh
//! cargo run --example targeter
//! ```
//!
//! An in-process mock ([`httpmock`]) plays Targeter exactly as its contract describes it: the
//! token endpoint wants `Content-Type: application/json` and a body of exactly
//! `{"api_key": "...", "api_secret": "..."}`; anything else is `400 {"error": "Invalid request
//! body"}`, unknown credentials are `401 {"error": "Invalid API credentials"}`, and a good
//! request gets `{"access_token", "token_type": "Bearer", "expires_in": 3600}`. The campaign
//! API accepts only the newest token, and only until the partner revokes it.
//!
//! It shows: the first call fetches a token, later calls reuse it; an hour later (inside the
//! 30 s skew) a new one is fetched first; when the partner revokes the token the API answers
//! 401, and the layer refreshes and replays the call once; wrong credentials are the typed
//! [`Error::InvalidCredentials`] with Targeter's message, after exactly one attempt. It prints
//! hit counts, statuses and error messages, never a secret or a token, and asserts them all.
//!
//! Against the real partner, set `TARGETER_API_KEY` and `TARGETER_API_SECRET` and use the
//! production layer: its token endpoint is `https://storhaug.targeter.tech/api/auth/token`,
//! and it attaches the token to that origin only.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use reqwest_partner_auth::targeter;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(targeter::Auth::new(targeter::Credentials::from_env()?))
//!     .build();
//! let res = client
//!     .post("https://storhaug.targeter.tech/api/campaign")
//!     .json(&serde_json::json!({ /* the campaign */ }))
//!     .send()
//!     .await?;
//! # let _ = res; Ok(()) }
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use httpmock::Method::POST;
use httpmock::{HttpMockRequest, HttpMockResponse, Mock, MockServer};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::{targeter, Error};
use serde_json::{json, Value};
use url::Url;

const API_KEY: &str = "YOUR_ISSUED_PARTNER_KEY";
const API_SECRET: &str = "YOUR_ISSUED_PARTNER_SECRET";

/// The partner's state: tokens issued, whether the newest is revoked, answers given.
#[derive(Default)]
struct Partner {
    issued: AtomicUsize,
    revoked: AtomicBool,
    bad_body: AtomicUsize,
    bad_credentials: AtomicUsize,
    rejected: AtomicUsize,
}

impl Partner {
    /// A JWT-shaped token that names its serial number (never printed).
    fn token(n: usize) -> String {
        format!("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.targeter-{n}.c2lnbmF0dXJl")
    }

    /// `POST /api/auth/token`, as the contract describes it.
    fn token_endpoint(&self, req: &HttpMockRequest) -> HttpMockResponse {
        let is_json = req
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/json");
        let body: Option<serde_json::Map<String, Value>> =
            serde_json::from_slice(req.body_ref()).ok();
        let fields =
            body.as_ref()
                .and_then(|b| match (b.len(), b.get("api_key"), b.get("api_secret")) {
                    (2, Some(Value::String(k)), Some(Value::String(s))) => Some((k, s)),
                    _ => None,
                });
        let Some((key, secret)) = fields.filter(|_| is_json) else {
            self.bad_body.fetch_add(1, Ordering::SeqCst);
            return json_response(400, json!({ "error": "Invalid request body" }));
        };
        if key != API_KEY || secret != API_SECRET {
            self.bad_credentials.fetch_add(1, Ordering::SeqCst);
            return json_response(401, json!({ "error": "Invalid API credentials" }));
        }
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        self.revoked.store(false, Ordering::SeqCst);
        json_response(
            200,
            json!({ "access_token": Self::token(n), "token_type": "Bearer", "expires_in": 3600 }),
        )
    }

    /// `POST /api/campaign`: the newest token, not revoked, or 401.
    fn campaign(&self, req: &HttpMockRequest) -> HttpMockResponse {
        let newest = format!("Bearer {}", Self::token(self.issued.load(Ordering::SeqCst)));
        let sent = req.headers().get("authorization").cloned();
        if sent.is_some_and(|v| v == newest.as_str()) && !self.revoked.load(Ordering::SeqCst) {
            json_response(200, json!({ "id": 17, "status": "created" }))
        } else {
            self.rejected.fetch_add(1, Ordering::SeqCst);
            json_response(401, json!({ "error": "Unauthorized" }))
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // --- The mock partner -------------------------------------------------------------
    let server = MockServer::start_async().await;
    let partner = Arc::new(Partner::default());
    let p = Arc::clone(&partner);
    let token_endpoint = server
        .mock_async(|when, then| {
            when.method(POST).path("/api/auth/token");
            then.respond_with(move |req| p.token_endpoint(req));
        })
        .await;
    let p = Arc::clone(&partner);
    let api = server
        .mock_async(|when, then| {
            when.method(POST).path("/api/campaign");
            then.respond_with(move |req| p.campaign(req));
        })
        .await;

    // --- The client: the Targeter layer pointed at the mock ---------------------------
    let base = Url::parse(&server.base_url())?;
    let clock = ManualClock::new();
    let layer = targeter::Auth::from_source(targeter::Source::with_base_url(
        targeter::Credentials::new(API_KEY, API_SECRET),
        &base,
    ))
    .clock(Arc::new(clock.clone()));
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(layer)
        .build();
    let campaign = base.join("/api/campaign")?;

    println!("1. First campaign call: no token yet, so the layer fetches one.");
    create_campaign(&client, &campaign).await?;
    report(&token_endpoint, &api, 1, 1).await;

    println!("\n2. Three more calls: the cached token is reused.");
    for _ in 0..3 {
        create_campaign(&client, &campaign).await?;
    }
    report(&token_endpoint, &api, 1, 4).await;

    println!(
        "\n3. 59 min 45 s later (inside the 30 s skew of the 1-hour token): a new token first."
    );
    clock.advance(Duration::from_secs(59 * 60 + 45));
    create_campaign(&client, &campaign).await?;
    report(&token_endpoint, &api, 2, 5).await;

    println!("\n4. targeter::Source revokes the token; the API answers 401 to it.");
    partner.revoked.store(true, Ordering::SeqCst);
    create_campaign(&client, &campaign).await?;
    report(&token_endpoint, &api, 3, 7).await;
    let rejected = partner.rejected.load(Ordering::SeqCst);
    println!("   the API answered 401 {rejected} time; the layer refreshed and replayed once");
    assert_eq!(rejected, 1);

    println!("\n5. A client with a wrong API secret.");
    let wrong = ClientBuilder::new(reqwest::Client::new())
        .with(targeter::Auth::from_source(
            targeter::Source::with_base_url(
                targeter::Credentials::new(API_KEY, "not-the-issued-secret"),
                &base,
            ),
        ))
        .build();
    let err = wrong
        .post(campaign.clone())
        .json(&json!({ "name": "Autumn" }))
        .send()
        .await
        .expect_err("wrong credentials must fail");
    match Error::from_middleware(&err) {
        Some(Error::InvalidCredentials { message, .. }) => {
            println!("   Error::InvalidCredentials, targeter::Source says: {message:?}");
            assert_eq!(message, "Invalid API credentials");
        }
        other => panic!("expected Error::InvalidCredentials, got {other:?}"),
    }
    let attempts = partner.bad_credentials.load(Ordering::SeqCst);
    println!("   token endpoint answered 401 {attempts} time (credential errors are not retried)");
    assert_eq!(attempts, 1);
    report(&token_endpoint, &api, 4, 7).await;
    assert_eq!(
        partner.bad_body.load(Ordering::SeqCst),
        0,
        "every body was well formed"
    );

    println!("\nDone: every step behaved as the targeter::Source contract says.");
    Ok(())
}

/// One campaign call; it must succeed.
async fn create_campaign(
    client: &ClientWithMiddleware,
    url: &Url,
) -> Result<(), Box<dyn std::error::Error>> {
    let res = client
        .post(url.clone())
        .json(&json!({ "name": "Spring", "budget_usd": 500 }))
        .send()
        .await?;
    let status = res.status();
    let body: Value = res.json().await?;
    println!(
        "   POST {} -> {status}, campaign {}",
        url.path(),
        body["id"]
    );
    assert_eq!(status, 200, "the caller must always see a success");
    Ok(())
}

/// Prints the hit counts of both endpoints and checks them.
async fn report(token_endpoint: &Mock<'_>, api: &Mock<'_>, tokens: usize, api_calls: usize) {
    let (t, a) = (token_endpoint.calls_async().await, api.calls_async().await);
    println!("   token endpoint hits: {t}, campaign API hits: {a}");
    assert_eq!(
        (t, a),
        (tokens, api_calls),
        "(token endpoint hits, API hits)"
    );
}

fn json_response(status: u16, body: Value) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}
