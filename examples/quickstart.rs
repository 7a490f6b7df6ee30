//! Quickstart: the whole token dance against a local mock partner, no set-up needed.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! An in-process mock partner (the examples' mock kit, `examples/support/mock.rs`) offers a
//! token endpoint (`POST /oauth/token`, JSON credentials in, a one-hour bearer token out; it
//! hands out `tok-1`, `tok-2`, ...) and an API (`GET /v1/campaigns`) that accepts only the
//! newest token and only until it expires or is revoked. The layer and the partner share a
//! [`ManualClock`] so the example can move time forward by an hour.
//!
//! Step by step it shows: the first call fetches a token; five more reuse it; close to expiry
//! (inside the 30 s skew) the next call fetches a new one; after the partner revokes the token,
//! a call still succeeds because the layer refreshed the token and replayed the request once.
//! It prints hit counts only, never a secret or a token, and asserts every count, so it fails
//! loudly if the crate breaks.

#[path = "support/mock.rs"]
mod mock;

use std::sync::Arc;
use std::time::Duration;

use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::engine::{HttpTokenSource, Param};
use reqwest_partner_auth::AuthMiddleware;
use url::Url;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // --- The mock partner -------------------------------------------------------------
    let clock = ManualClock::new();
    let partner = mock::demo::start(clock.clone()).await;

    // --- The client: one layer, scoped to the partner's API origin --------------------
    let base = partner.base_url();
    let source = HttpTokenSource::post(base.join("/oauth/token")?)
        .param("client_id", Param::text("demo-client"))
        .param("client_secret", Param::secret("demo-secret"))
        .add_origin(&base);
    let layer = AuthMiddleware::builder(source)
        .clock(Arc::new(clock.clone()))
        .build();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(layer)
        .build();
    let campaigns = base.join("/v1/campaigns")?;

    println!("\n1. First call: no token yet, so the layer fetches one.");
    call(&client, &campaigns).await?;
    partner.report(1, 1);

    println!("\n2. Five more calls: the cached token is reused.");
    for _ in 0..5 {
        call(&client, &campaigns).await?;
    }
    partner.report(1, 6);

    println!("\n3. 59 min 45 s later (inside the 30 s skew before expiry): a new token first.");
    clock.advance(Duration::from_secs(59 * 60 + 45));
    call(&client, &campaigns).await?;
    partner.report(2, 7);

    println!("\n4. The partner revokes the token; the API answers 401 to it.");
    partner.revoke_token();
    println!("   Next call: 401, the layer refreshes and replays once, the caller sees 200.");
    call(&client, &campaigns).await?;
    partner.report(3, 9);
    let rejected = partner.rejected();
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
