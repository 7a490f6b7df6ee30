//! Pentaleap product feeds: `Authorization: apikey <api key>`, one key per publisher. No
//! set-up needed:
//!
//! ```sh
//! cargo run --example pentaleap_feed
//! ```
//!
//! An in-process mock ([`httpmock`]) plays the PCM domain as the API-key contract describes it:
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
//!     .with(pentaleap::ApiKeyAuth::new(&pcm, keys))
//!     .build();
//! let markets = client.get(pcm.join("external/v2/markets")?).send().await?;
//! # let _ = markets; Ok(()) }
//! ```

use std::collections::HashMap;

use httpmock::Method::GET;
use httpmock::{HttpMockRequest, HttpMockResponse, Mock, MockServer};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::{pentaleap, Error};
use url::Url;

const SEARCH_PATH: &str = r"^/external/v2/publishers/[^/]+/markets/[^/]+/products/search$";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The keys Pentaleap issued, one per publisher of the organisation.
    let issued: HashMap<&str, &str> =
        HashMap::from([("1001", "demo-key-1001"), ("1002", "demo-key-1002")]);

    let server = MockServer::start_async().await;
    let search = search_endpoint(&server, &issued).await;
    let markets = markets_endpoint(&server, &issued).await;

    let pcm = Url::parse(&server.base_url())?;
    let keys = pentaleap::ApiKeys::from_publishers(issued.clone())?.default_key(issued["1001"])?;
    println!("Keys configured: {keys:?}");
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(pentaleap::ApiKeyAuth::new(&pcm, keys))
        .build();

    println!("1. Each publisher's product search, each with that publisher's own key.");
    for publisher in ["1001", "1002"] {
        let url = pcm.join(&format!(
            "external/v2/publishers/{publisher}/markets/7/products/search?limit=100"
        ))?;
        let products = get_list(&client, &url).await?;
        assert_eq!(products, 2);
    }
    report(&search, &markets, 2, 0).await;

    println!("2. The markets list names no publisher: the default key.");
    let url = pcm.join("external/v2/markets")?;
    let list = get_list(&client, &url).await?;
    assert_eq!(list, 3);
    report(&search, &markets, 2, 1).await;

    println!("3. Publisher 9999 has no key: a typed error, and nothing goes out.");
    let url = pcm.join("external/v2/publishers/9999/markets/7/products/search?limit=100")?;
    let err = client
        .get(url)
        .send()
        .await
        .expect_err("no key, no request");
    match Error::from_middleware(&err) {
        Some(Error::NoCredential { publisher }) => {
            println!("   Error::NoCredential {{ publisher: {publisher:?} }}");
            assert_eq!(publisher, "9999");
        }
        other => panic!("expected Error::NoCredential, got {other:?}"),
    }
    report(&search, &markets, 2, 1).await;

    println!("Done: every step behaved as the contract says.");
    Ok(())
}

/// `GET .../publishers/<id>/markets/<id>/products/search`: that publisher's key only.
async fn search_endpoint<'a>(server: &'a MockServer, issued: &HashMap<&str, &str>) -> Mock<'a> {
    let keys: HashMap<String, String> = issued
        .iter()
        .map(|(p, k)| ((*p).to_owned(), format!("apikey {k}")))
        .collect();
    server
        .mock_async(|when, then| {
            when.method(GET).path_matches(SEARCH_PATH);
            then.respond_with(move |req: &HttpMockRequest| {
                let path = req.uri().path().to_owned();
                let publisher = path.split('/').nth(4).unwrap_or_default();
                let sent = req.headers().get("authorization").cloned();
                let allowed = keys.get(publisher);
                if allowed.is_some_and(|k| sent.is_some_and(|s| s == k.as_str())) {
                    json(200, r#"[{"sku":"A-1"},{"sku":"A-2"}]"#)
                } else {
                    json(401, r#"{"message":"Unauthorized"}"#)
                }
            });
        })
        .await
}

/// `GET /external/v2/markets`: any key of the organisation.
async fn markets_endpoint<'a>(server: &'a MockServer, issued: &HashMap<&str, &str>) -> Mock<'a> {
    let keys: Vec<String> = issued.values().map(|k| format!("apikey {k}")).collect();
    server
        .mock_async(|when, then| {
            when.method(GET).path("/external/v2/markets");
            then.respond_with(move |req: &HttpMockRequest| {
                let sent = req.headers().get("authorization").cloned();
                if sent.is_some_and(|s| keys.iter().any(|k| s == k.as_str())) {
                    json(200, r#"[{"id":"de"},{"id":"at"},{"id":"ch"}]"#)
                } else {
                    json(401, r#"{"message":"Unauthorized"}"#)
                }
            });
        })
        .await
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

/// Prints and checks the hit counts of both endpoints.
async fn report(search: &Mock<'_>, markets: &Mock<'_>, searches: usize, market_calls: usize) {
    let (s, m) = (search.calls_async().await, markets.calls_async().await);
    println!("   products/search hits: {s}, markets hits: {m}");
    assert_eq!(
        (s, m),
        (searches, market_calls),
        "(search hits, markets hits)"
    );
}

fn json(status: u16, body: &str) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .build()
}
