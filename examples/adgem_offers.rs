//! AdGem: obtain a JWT at `POST /v1/apps/tokens` with the application credentials, then query
//! targeted offers at `POST /v1/offers` with `Authorization: Bearer <jwt>`. No set-up needed:
//!
//! ```sh
//! cargo run --example adgem_offers
//! ```
//!
//! The examples' mock kit (`examples/support/mock.rs`) plays AdGem in process, exactly as its
//! contract describes it: the token endpoint wants `Content-Type: application/json` and the
//! four body parameters `adgem_pub_id` and `adgem_app_id` (JSON integers), `client_id` and
//! `client_secret` (strings); wrong credentials are `401 {"error": "invalid_client",
//! "error_description": "Invalid client credentials"}`, a failure during token generation is
//! `500 {"error": "server_error", ...}`, and a good request gets `{"access_token",
//! "token_type": "Bearer", "expires_in": 3600}`. The offers API answers the contract's GraphQL
//! query `{ offers(player_id: "user123") { id name total_payout_usd } }` for the newest,
//! unexpired token only (the mock and the layer share a clock the example moves).
//!
//! It shows: the first query fetches a token, later queries reuse it; a `server_error` during
//! a refresh is retried and never reaches the caller; when AdGem stops accepting the token the
//! API answers 401 and the layer requests a new token and replays the query once ("When you
//! receive a 401 response, request a new token"); wrong credentials are the typed
//! [`Error::InvalidCredentials`] with AdGem's message and code, after exactly one attempt. It
//! prints hit counts, statuses and error messages, never a secret or a token, and asserts them.
//!
//! Against the real partner, set `ADGEM_PUB_ID`, `ADGEM_APP_ID` (integers), `ADGEM_CLIENT_ID`
//! and `ADGEM_CLIENT_SECRET` and use the production layer: its token endpoint is
//! `https://targeted-api.adgem.com/v1/apps/tokens`, and it attaches the token to that origin
//! only.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use reqwest_partner_auth::adgem;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(adgem::Auth::new(adgem::Credentials::from_env()?))
//!     .build();
//! let offers = client
//!     .post("https://targeted-api.adgem.com/v1/offers")
//!     .json(&serde_json::json!({
//!         "query": "{ offers(player_id: \"user123\") { id name total_payout_usd } }"
//!     }))
//!     .send()
//!     .await?;
//! # let _ = offers; Ok(()) }
//! ```

#[path = "support/mock.rs"]
mod mock;

use std::sync::Arc;
use std::time::Duration;

use mock::adgem::{APP_ID, CLIENT_ID, CLIENT_SECRET, OFFERS_QUERY, PUB_ID};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::{adgem, AuthMiddleware, Error};
use serde_json::{json, Value};
use url::Url;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // --- The mock partner, on the same clock as the layer -----------------------------
    let clock = ManualClock::new();
    let partner = mock::adgem::start(clock.clone()).await;

    // --- The client: the AdGem layer pointed at the mock ------------------------------
    let base = partner.base_url();
    let credentials = adgem::Credentials::new(PUB_ID, APP_ID, CLIENT_ID, CLIENT_SECRET);
    let layer = AuthMiddleware::builder(adgem::Source::with_base_url(credentials, &base))
        .clock(Arc::new(clock.clone()))
        .build();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(layer)
        .build();
    let offers = partner.url(mock::adgem::OFFERS_PATH);

    println!("1. First offers query: no token yet, so the layer fetches one.");
    query_offers(&client, &offers).await?;
    partner.report(1, 1);

    println!("\n2. Two more queries: the cached token is reused.");
    query_offers(&client, &offers).await?;
    query_offers(&client, &offers).await?;
    partner.report(1, 3);

    println!("\n3. An hour later the token is due; AdGem's first answer is a 500 server_error.");
    partner.fail_next_token_requests(1);
    clock.advance(Duration::from_secs(59 * 60 + 45));
    query_offers(&client, &offers).await?;
    partner.report(3, 4);
    println!(
        "   server_error answered {} time; the layer retried and the caller never saw it",
        partner.server_errors()
    );
    assert_eq!(partner.server_errors(), 1);

    println!("\n4. AdGem stops accepting the token; the offers API answers 401 to it.");
    partner.revoke_token();
    query_offers(&client, &offers).await?;
    partner.report(4, 6);
    let rejected = partner.rejected();
    println!("   the API answered 401 {rejected} time; the layer requested a new token and replayed once");
    assert_eq!(rejected, 1);

    println!("\n5. A client with a wrong client secret.");
    let wrong = ClientBuilder::new(reqwest::Client::new())
        .with(adgem::Auth::with_base_url(
            adgem::Credentials::new(PUB_ID, APP_ID, CLIENT_ID, "not-the-secret"),
            &base,
        ))
        .build();
    let err = wrong
        .post(offers.clone())
        .json(&json!({ "query": OFFERS_QUERY }))
        .send()
        .await
        .expect_err("wrong credentials must fail");
    match Error::from_middleware(&err) {
        Some(Error::InvalidCredentials { message, code }) => {
            println!("   Error::InvalidCredentials, AdGem says: {message:?} (code {code:?})");
            assert_eq!(message, "Invalid client credentials");
            assert_eq!(code.as_deref(), Some("invalid_client"));
        }
        other => panic!("expected Error::InvalidCredentials, got {other:?}"),
    }
    let attempts = partner.bad_credentials();
    println!("   token endpoint answered 401 {attempts} time (credential errors are not retried)");
    assert_eq!(attempts, 1);
    partner.report(5, 6);
    assert_eq!(partner.bad_requests(), 0, "every body arrived intact");

    println!("\nDone: every step behaved as AdGem's contract says.");
    Ok(())
}

/// The contract's offers query; it must succeed.
async fn query_offers(
    client: &ClientWithMiddleware,
    url: &Url,
) -> Result<(), Box<dyn std::error::Error>> {
    let res = client
        .post(url.clone())
        .json(&json!({ "query": OFFERS_QUERY }))
        .send()
        .await?;
    let status = res.status();
    let body: Value = res.json().await?;
    let offers = body["data"]["offers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let payout: f64 = offers
        .iter()
        .filter_map(|o| o["total_payout_usd"].as_f64())
        .sum();
    println!(
        "   POST {} -> {status}, {} offer(s) for user123, ${payout:.2} in all",
        url.path(),
        offers.len()
    );
    assert_eq!(status, 200, "the caller must always see a success");
    Ok(())
}
