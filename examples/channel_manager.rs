//! Channel manager: `POST /getToken` with the channel user's name and password, a plain-text
//! token back, `Authorization: Bearer <token>` on the connectivity calls. No set-up needed:
//!
//! ```sh
//! cargo run --example channel_manager
//! ```
//!
//! The examples' mock kit (`examples/support/mock.rs`) plays the channel manager in process,
//! exactly as its contract describes it: `POST /getToken` reads `username` and `password` as
//! request parameters (`application/x-www-form-urlencoded`) and answers a `text/plain` token;
//! an unknown user gets the contract's "Channel manager not found" `RuntimeException`, which a
//! Spring server renders as a 500; the connectivity API (`GET /properties`) wants the newest
//! token.
//!
//! It shows: the first call fetches a token, later calls reuse it; when the partner revokes the
//! token, the layer refreshes it and replays the call once; an unknown user is the typed
//! [`Error::InvalidCredentials`] with the partner's message, after exactly one attempt. It
//! prints hit counts and statuses, never a password or a token, and asserts every count.
//!
//! Against the real partner, take the credentials from the environment
//! (`CHANNEL_MANAGER_USERNAME`, `CHANNEL_MANAGER_PASSWORD`) and give the base URL of its
//! connectivity API (the contract names no host; `/getToken` and the API share it):
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use reqwest_partner_auth::channel_manager;
//! let base = url::Url::parse("https://connectivity.partner.example/")?;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(channel_manager::Auth::with_base_url(channel_manager::Credentials::from_env()?, &base))
//!     .build();
//! let properties = client.get(base.join("properties")?).send().await?;
//! # let _ = properties; Ok(()) }
//! ```

#[path = "support/mock.rs"]
mod mock;

use mock::channel_manager::{PASSWORD, USERNAME};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::{channel_manager, Error};
use url::Url;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let partner = mock::channel_manager::start().await;
    let base = partner.base_url();
    let url = partner.url(mock::channel_manager::PROPERTIES_PATH);
    let client = channel_client(&base, PASSWORD);

    println!("1. First call: the layer POSTs /getToken, then sends the Bearer token.");
    call(&client, &url).await?;
    partner.report(1, 1);

    println!("2. Three more calls reuse the token (it carries no expiry: used until a 401).");
    for _ in 0..3 {
        call(&client, &url).await?;
    }
    partner.report(1, 4);

    println!("3. The partner revokes the token: one 401, a new token, the call replayed once.");
    partner.revoke_token();
    call(&client, &url).await?;
    partner.report(2, 6);
    assert_eq!(partner.rejected(), 1);

    println!(
        "4. An unknown channel user: the partner answers 500 \"{}\".",
        mock::channel_manager::NOT_FOUND
    );
    let stranger = channel_client(&base, "not-the-password");
    let err = stranger
        .get(url.clone())
        .send()
        .await
        .expect_err("an unknown user gets no token");
    match Error::from_middleware(&err) {
        Some(Error::InvalidCredentials { message, .. }) => {
            println!("   Error::InvalidCredentials {{ message: {message:?} }}");
            assert_eq!(message, channel_manager::NOT_FOUND);
        }
        other => panic!("expected Error::InvalidCredentials, got {other:?}"),
    }
    let attempts = partner.bad_credentials();
    println!("   /getToken attempts for the unknown user: {attempts} (not retried)");
    assert_eq!(attempts, 1);
    partner.report(3, 6);

    println!("Done: every step behaved as the contract says.");
    Ok(())
}

fn channel_client(base: &Url, password: &str) -> ClientWithMiddleware {
    let credentials = channel_manager::Credentials::new(USERNAME, password);
    ClientBuilder::new(reqwest::Client::new())
        .with(channel_manager::Auth::with_base_url(credentials, base))
        .build()
}

/// One connectivity call; it must succeed.
async fn call(client: &ClientWithMiddleware, url: &Url) -> Result<(), Box<dyn std::error::Error>> {
    let res = client.get(url.clone()).send().await?;
    let status = res.status();
    let body: serde_json::Value = res.json().await?;
    let count = body.as_array().map_or(0, Vec::len);
    println!("   GET {} -> {status}, {count} properties", url.path());
    assert_eq!(status, 200, "the caller must see a success");
    Ok(())
}
