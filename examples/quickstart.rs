//! Quickstart: the whole token dance against a local mock partner, no set-up needed.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! An in-process mock partner ([`httpmock`]) offers a token endpoint (`POST /oauth/token`,
//! JSON credentials in, a one-hour bearer token out; it hands out `tok-1`, `tok-2`, ...) and an
//! API (`GET /v1/campaigns`) that accepts only the newest token and only until it is revoked.
//! The layer is given a [`ManualClock`] so the example can move time forward by an hour.
//!
//! Step by step it shows: the first call fetches a token; five more reuse it; close to expiry
//! (inside the 30 s skew) the next call fetches a new one; after the partner revokes the token,
//! a call still succeeds because the layer refreshed the token and replayed the request once.
//! It prints hit counts only, never a secret or a token, and asserts every count, so it fails
//! loudly if the crate breaks.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use httpmock::{HttpMockResponse, Method::GET, Method::POST, Mock, MockServer};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::engine::{HttpTokenSource, Param};
use reqwest_partner_auth::AuthMiddleware;
use serde_json::json;
use url::Url;

/// The partner's state: tokens issued, whether the newest is revoked, 401s answered.
#[derive(Default)]
struct Partner {
    issued: AtomicUsize,
    revoked: AtomicBool,
    rejected: AtomicUsize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // --- The mock partner -------------------------------------------------------------
    let server = MockServer::start_async().await;
    let partner = Arc::new(Partner::default());

    let p = Arc::clone(&partner);
    let token_endpoint = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/oauth/token")
                .json_body(json!({ "client_id": "demo-client", "client_secret": "demo-secret" }));
            then.respond_with(move |_| {
                let n = p.issued.fetch_add(1, Ordering::SeqCst) + 1;
                p.revoked.store(false, Ordering::SeqCst);
                let token = format!("tok-{n}");
                json_response(
                    200,
                    json!({ "access_token": token, "token_type": "Bearer", "expires_in": 3600 }),
                )
            });
        })
        .await;

    let p = Arc::clone(&partner);
    let api = server
        .mock_async(|when, then| {
            when.method(GET).path("/v1/campaigns");
            then.respond_with(move |req| {
                let current = format!("Bearer tok-{}", p.issued.load(Ordering::SeqCst));
                let sent = req.headers().get("authorization").cloned();
                let valid = sent.is_some_and(|v| v == current.as_str());
                if valid && !p.revoked.load(Ordering::SeqCst) {
                    json_response(200, json!({ "campaigns": [{ "id": 1, "name": "Spring" }] }))
                } else {
                    p.rejected.fetch_add(1, Ordering::SeqCst);
                    json_response(401, json!({ "error": "invalid_token" }))
                }
            });
        })
        .await;

    // --- The client: one layer, scoped to the partner's API origin --------------------
    let base = Url::parse(&server.base_url())?;
    let source = HttpTokenSource::post(base.join("/oauth/token")?)
        .param("client_id", Param::text("demo-client"))
        .param("client_secret", Param::secret("demo-secret"))
        .add_origin(&base);
    let clock = ManualClock::new();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::from_source(source).clock(Arc::new(clock.clone())))
        .build();
    let campaigns = base.join("/v1/campaigns")?;

    println!("\n1. First call: no token yet, so the layer fetches one.");
    call(&client, &campaigns).await?;
    report(&token_endpoint, &api, 1, 1).await;

    println!("\n2. Five more calls: the cached token is reused.");
    for _ in 0..5 {
        call(&client, &campaigns).await?;
    }
    report(&token_endpoint, &api, 1, 6).await;

    println!("\n3. 59 min 45 s later (inside the 30 s skew before expiry): a new token first.");
    clock.advance(Duration::from_secs(59 * 60 + 45));
    call(&client, &campaigns).await?;
    report(&token_endpoint, &api, 2, 7).await;

    println!("\n4. The partner revokes the token; the API answers 401 to it.");
    partner.revoked.store(true, Ordering::SeqCst);
    println!("   Next call: 401, the layer refreshes and replays once, the caller sees 200.");
    call(&client, &campaigns).await?;
    report(&token_endpoint, &api, 3, 9).await;
    let rejected = partner.rejected.load(Ordering::SeqCst);
    println!("   (the API answered 401 {rejected} time(s); the caller never saw it)");
    assert_eq!(rejected, 1, "exactly one rejected attempt, then one replay");

    println!("\nDone: every step behaved as expected.");
    Ok(())
}

/// One API call; it must succeed.
async fn call(client: &ClientWithMiddleware, url: &Url) -> Result<(), Box<dyn std::error::Error>> {
    let res = client.get(url.clone()).send().await?;
    let status = res.status();
    let body: serde_json::Value = res.json().await?;
    println!(
        "   GET {} -> {status}, {} campaign(s)",
        url.path(),
        body["campaigns"].as_array().map_or(0, Vec::len)
    );
    assert_eq!(status, 200, "the caller must always see a success");
    Ok(())
}

/// Prints the hit counts of both endpoints and checks them.
async fn report(token_endpoint: &Mock<'_>, api: &Mock<'_>, tokens: usize, api_calls: usize) {
    let (t, a) = (token_endpoint.calls_async().await, api.calls_async().await);
    println!("   token endpoint hits: {t}, API hits: {a}");
    assert_eq!(
        (t, a),
        (tokens, api_calls),
        "(token endpoint hits, API hits)"
    );
}

fn json_response(status: u16, body: serde_json::Value) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}
