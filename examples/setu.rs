//! Setu (Bridge): get a partner `accessToken` at `POST /auth/token` with form-encoded client
//! credentials, then present it as `Authorization: Bearer <accessToken>` to the next APIs.
//! No set-up needed:
//!
//! ```sh
//! cargo run --example setu
//! ```
//!
//! The examples' mock kit (`examples/support/mock.rs`) plays Setu in process, exactly as its
//! contract describes it: the token endpoint wants the URL-encoded body parameters
//! `grant_type=client_credentials`, `client_id` and `client_secret`
//! (`application/x-www-form-urlencoded`) and answers `{"accessToken": "<JWT>", "refreshToken":
//! "<JWT>"}` with no `expires_in`; the access token is a JWT whose `exp` is 15 minutes ahead
//! ("valid for 15 minutes"). The contract documents no error body; wrong credentials get a 401
//! shaped like the Keycloak error of Setu's token issuer. The API (`GET /v1/next-api`) accepts
//! only the newest token, until its `exp` (the mock and the layer share a clock the example
//! moves).
//!
//! It shows: the expiry the layer reads from the JWT `exp` (15 minutes); the first call
//! fetches a token, later calls reuse it; 14 min 45 s later (inside the 30 s skew before
//! `exp`) a new one is fetched first ("has to be regenerated once expired"); a 401 from the
//! API makes the layer fetch a new token and replay the call once; wrong credentials are the
//! typed [`Error::InvalidCredentials`] after exactly one attempt. It prints hit counts,
//! statuses, the expiry and error messages, never a secret or a token, and asserts them all.
//!
//! Against the real partner, set `SETU_CLIENT_ID` and `SETU_CLIENT_SECRET` (made available at
//! the end of the configuration on Bridge) and give the base URL of your Bridge environment:
//! the contract names no host; the token endpoint is `<base>/auth/token`, and the token goes
//! to that origin only.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use reqwest_partner_auth::setu;
//! let base = url::Url::parse("https://bridge.setu.example/")?; // your environment's host
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(setu::Auth::with_base_url(setu::Credentials::from_env()?, &base))
//!     .build();
//! let res = client.get(base.join("the/next/api")?).send().await?;
//! # let _ = res; Ok(()) }
//! ```

#[path = "support/mock.rs"]
mod mock;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use mock::setu::{unix_secs, CLIENT_ID, CLIENT_SECRET, LIFETIME};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::token::Expiry;
use reqwest_partner_auth::{setu, AuthMiddleware, Error, FetchContext, FetchReason, TokenSource};
use serde_json::Value;
use url::Url;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // --- The mock partner, on the same clock as the layer -----------------------------
    let clock = ManualClock::new();
    let partner = mock::setu::start(clock.clone()).await;
    let base = partner.base_url();
    let credentials = setu::Credentials::new(CLIENT_ID, CLIENT_SECRET);

    println!("1. What the layer reads from Setu's answer (one direct fetch):");
    let token = setu::Source::with_base_url(credentials.clone(), &base)
        .fetch(&FetchContext::new(FetchReason::Initial))
        .await?;
    let Expiry::At(exp) = token.expiry() else {
        panic!(
            "the accessToken's JWT exp is the expiry, got {:?}",
            token.expiry()
        );
    };
    let left = exp.duration_since(SystemTime::now()).unwrap_or_default();
    println!(
        "   no expires_in; JWT exp = {} (unix), {} s from now; refreshToken kept: {}",
        unix_secs(exp),
        left.as_secs(),
        token.refresh_token().is_some()
    );
    assert!(left > LIFETIME - Duration::from_secs(5) && left <= LIFETIME);
    partner.report(1, 0);

    // --- The client: the Setu layer pointed at the mock -------------------------------
    let layer = AuthMiddleware::builder(setu::Source::with_base_url(credentials, &base))
        .clock(Arc::new(clock.clone()))
        .build();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(layer)
        .build();
    let next = partner.url(mock::setu::NEXT_API_PATH);

    println!("\n2. First API call: the layer has no token yet, so it fetches one.");
    call(&client, &next).await?;
    partner.report(2, 1);

    println!("\n3. Two more calls: the cached token is reused.");
    call(&client, &next).await?;
    call(&client, &next).await?;
    partner.report(2, 3);

    println!("\n4. 14 min 45 s later (inside the 30 s skew before exp): a new token first.");
    clock.advance(Duration::from_secs(14 * 60 + 45));
    call(&client, &next).await?;
    partner.report(3, 4);

    println!("\n5. Setu stops accepting the token; the API answers 401 to it.");
    partner.revoke_token();
    call(&client, &next).await?;
    partner.report(4, 6);
    let rejected = partner.rejected();
    println!("   the API answered 401 {rejected} time; the layer regenerated the token and replayed once");
    assert_eq!(rejected, 1);

    println!("\n6. A client with a wrong client secret.");
    let wrong = ClientBuilder::new(reqwest::Client::new())
        .with(setu::Auth::with_base_url(
            setu::Credentials::new(CLIENT_ID, "not-the-secret"),
            &base,
        ))
        .build();
    let err = wrong
        .get(next.clone())
        .send()
        .await
        .expect_err("wrong credentials must fail");
    match Error::from_middleware(&err) {
        Some(Error::InvalidCredentials { message, .. }) => {
            println!("   Error::InvalidCredentials, Setu says: {message:?}");
            assert_eq!(message, "Invalid client or Invalid client credentials");
        }
        other => panic!("expected Error::InvalidCredentials, got {other:?}"),
    }
    let attempts = partner.bad_credentials();
    println!("   token endpoint answered 401 {attempts} time (credential errors are not retried)");
    assert_eq!(attempts, 1);
    partner.report(5, 6);
    assert_eq!(partner.bad_requests(), 0, "every form was well formed");

    println!("\nDone: every step behaved as Setu's contract says.");
    Ok(())
}

/// One API call; it must succeed.
async fn call(client: &ClientWithMiddleware, url: &Url) -> Result<(), Box<dyn std::error::Error>> {
    let res = client.get(url.clone()).send().await?;
    let status = res.status();
    let body: Value = res.json().await?;
    println!("   GET {} -> {status}, {body}", url.path());
    assert_eq!(status, 200, "the caller must always see a success");
    Ok(())
}
