//! Pentaleap product feeds: `Authorization: apikey <api key>`, one key per publisher. No
//! set-up needed:
//!
//! ```sh
//! cargo run --example pentaleap_feed
//! ```
//!
//! The examples' mock kit (`examples/support/mock.rs`) plays the PCM domain in process, as the
//! API-key contract describes it:
//! `GET /external/v2/publishers/<publisher id>/markets/<market id>/products/search?limit=100`
//! accepts only that publisher's key, and `GET /external/v2/markets` accepts a key of the
//! organisation. Anything else is a 401.
//!
//! It shows: two publishers, each searched with its own key; the markets list with the default
//! key; and a publisher without a key, which fails with the typed
//! [`Error::NoCredential`] before anything is sent. It prints statuses and counts, never a
//! key, and asserts every count.
//!
//! Against the real partner, give the base URL of your PCM domain and the keys Pentaleap gave
//! you, one per publisher (or a single one from `PENTALEAP_API_KEY` with
//! [`pentaleap::ApiKeys::from_env`]):
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use reqwest_partner_auth::pentaleap;
//! let pcm = url::Url::parse("https://pcm.your-domain.example/")?;
//! let keys = pentaleap::ApiKeys::from_publishers([
//!     ("1001", std::env::var("PENTALEAP_KEY_1001")?),
//!     ("1002", std::env::var("PENTALEAP_KEY_1002")?),
//! ])?
//! .default_key(&std::env::var("PENTALEAP_KEY_1001")?)?;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(pentaleap::ApiKeyAuth::with_base_url(keys, &pcm))
//!     .build();
//! let markets = client.get(pcm.join("external/v2/markets")?).send().await?;
//! # let _ = markets; Ok(()) }
//! ```

#[path = "support/mock.rs"]
mod mock;

use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::{pentaleap, Error};
use url::Url;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The keys Pentaleap issued, one per publisher of the organisation.
    let issued = mock::pentaleap::ISSUED;
    let feeds = mock::pentaleap::start().await;

    let pcm = feeds.base_url();
    let keys = pentaleap::ApiKeys::from_publishers(issued)?.default_key(issued[0].1)?;
    println!("Keys configured: {keys:?}");
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(pentaleap::ApiKeyAuth::with_base_url(keys, &pcm))
        .build();

    println!("1. Each publisher's product search, each with that publisher's own key.");
    for publisher in ["1001", "1002"] {
        let url = pcm.join(&format!(
            "external/v2/publishers/{publisher}/markets/7/products/search?limit=100"
        ))?;
        let products = get_list(&client, &url).await?;
        assert_eq!(products, 2);
    }
    feeds.report(2, 0);

    println!("2. The markets list names no publisher: the default key.");
    let url = pcm.join("external/v2/markets")?;
    let list = get_list(&client, &url).await?;
    assert_eq!(list, 3);
    feeds.report(2, 1);

    println!("3. Publisher 9999 has no key: a typed error, and nothing goes out.");
    let url = pcm.join("external/v2/publishers/9999/markets/7/products/search?limit=100")?;
    let err = client
        .get(url)
        .send()
        .await
        .expect_err("no key, no request");
    match Error::from_middleware(&err) {
        Some(Error::NoCredential { key }) => {
            println!("   Error::NoCredential {{ key: {key:?} }}");
            assert_eq!(key.as_deref(), Some("9999"));
        }
        other => panic!("expected Error::NoCredential, got {other:?}"),
    }
    feeds.report(2, 1);
    assert_eq!(feeds.rejected(), 0, "every key sent was accepted");

    println!("Done: every step behaved as the contract says.");
    Ok(())
}

/// One GET that must succeed; returns the length of the JSON list it answered.
async fn get_list(
    client: &ClientWithMiddleware,
    url: &Url,
) -> Result<usize, Box<dyn std::error::Error>> {
    let res = client.get(url.clone()).send().await?;
    let status = res.status();
    let body: serde_json::Value = res.json().await?;
    let n = body.as_array().map_or(0, Vec::len);
    let query = url.query().map(|q| format!("?{q}")).unwrap_or_default();
    println!("   GET {}{query} -> {status}, {n} item(s)", url.path());
    assert_eq!(status, 200, "the key must be accepted");
    Ok(n)
}
