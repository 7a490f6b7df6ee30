//! Targeter: exchange the partner API key and secret for a one-hour JWT at
//! `POST /api/auth/token`, then call `POST /api/campaign` with `Authorization: Bearer <jwt>`.
//! No set-up needed:
//!
//! ```sh
//! cargo run --example targeter
//! ```
//!
//! The examples' mock kit (`examples/support/mock.rs`) plays Targeter in process, exactly as
//! its contract describes it: the token endpoint wants `Content-Type: application/json` and a
//! body of exactly `{"api_key": "...", "api_secret": "..."}`; anything else is `400 {"error":
//! "Invalid request body"}`, unknown credentials are `401 {"error": "Invalid API
//! credentials"}`, and a good request gets `{"access_token", "token_type": "Bearer",
//! "expires_in": 3600}`. The campaign API accepts only the newest token, and only until it
//! expires (the mock and the layer share a clock the example moves) or the partner revokes it.
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

#[path = "support/mock.rs"]
mod mock;

use std::sync::Arc;
use std::time::Duration;

use mock::targeter::{API_KEY, API_SECRET};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::{targeter, AuthMiddleware, Error};
use serde_json::{json, Value};
use url::Url;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // --- The mock partner, on the same clock as the layer -----------------------------
    let clock = ManualClock::new();
    let partner = mock::targeter::start(clock.clone()).await;

    // --- The client: the Targeter layer pointed at the mock ---------------------------
    let base = partner.base_url();
    let source =
        targeter::Source::with_base_url(targeter::Credentials::new(API_KEY, API_SECRET), &base);
    let layer = AuthMiddleware::builder(source)
        .clock(Arc::new(clock.clone()))
        .build();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(layer)
        .build();
    let campaign = partner.url(mock::targeter::CAMPAIGN_PATH);

    println!("1. First campaign call: no token yet, so the layer fetches one.");
    create_campaign(&client, &campaign).await?;
    partner.report(1, 1);

    println!("\n2. Three more calls: the cached token is reused.");
    for _ in 0..3 {
        create_campaign(&client, &campaign).await?;
    }
    partner.report(1, 4);

    println!(
        "\n3. 59 min 45 s later (inside the 30 s skew of the 1-hour token): a new token first."
    );
    clock.advance(Duration::from_secs(59 * 60 + 45));
    create_campaign(&client, &campaign).await?;
    partner.report(2, 5);

    println!("\n4. Targeter revokes the token; the API answers 401 to it.");
    partner.revoke_token();
    create_campaign(&client, &campaign).await?;
    partner.report(3, 7);
    let rejected = partner.rejected();
    println!("   the API answered 401 {rejected} time; the layer refreshed and replayed once");
    assert_eq!(rejected, 1);

    println!("\n5. A client with a wrong API secret.");
    let wrong = ClientBuilder::new(reqwest::Client::new())
        .with(targeter::Auth::with_base_url(
            targeter::Credentials::new(API_KEY, "not-the-issued-secret"),
            &base,
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
            println!("   Error::InvalidCredentials, Targeter says: {message:?}");
            assert_eq!(message, "Invalid API credentials");
        }
        other => panic!("expected Error::InvalidCredentials, got {other:?}"),
    }
    let attempts = partner.bad_credentials();
    println!("   token endpoint answered 401 {attempts} time (credential errors are not retried)");
    assert_eq!(attempts, 1);
    partner.report(4, 7);
    assert_eq!(partner.bad_requests(), 0, "every body was well formed");

    println!("\nDone: every step behaved as Targeter's contract says.");
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
