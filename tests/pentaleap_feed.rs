//! The Pentaleap API-key contract (`seeds/pentaleap-api-auth.txt`, the "api key" part):
//! `Authorization: apikey <api key>` on the product-feed endpoints, one key per publisher.
//!
//! `Debug` never showing a key and `from_env` reading `PENTALEAP_API_KEY` are rows of the
//! partner harness (`tests/partners.rs`).
#![cfg(feature = "pentaleap")]

mod common;

use std::collections::HashMap;

// The PCM domain is the mock's base URL.
use common::base as pcm;
use common::{client, client_with};
use httpmock::Method::GET;
use httpmock::{Mock, MockServer};
use reqwest_middleware::ClientWithMiddleware;
use reqwest_partner_auth::{pentaleap, Error};
use url::Url;

fn search_path(publisher: &str, market: &str) -> String {
    format!("/external/v2/publishers/{publisher}/markets/{market}/products/search")
}

const MARKETS_PATH: &str = "/external/v2/markets";

/// Any GET on `server`, answering 200 with the `Authorization` values it received joined by
/// `|` (empty when there was none), so a test sees exactly what arrived.
async fn echo_mock(server: &MockServer) -> Mock<'_> {
    common::echo_mock(server, |when| when.method(GET)).await
}

/// GETs `url` and returns the `Authorization` header the server saw.
async fn seen_auth(client: &ClientWithMiddleware, url: &str) -> String {
    let res = client.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// GETs `url`, expecting the layer to fail, and returns the crate's error.
async fn layer_error(client: &ClientWithMiddleware, url: &str) -> Error {
    common::layer_error(client.get(url)).await
}

/// Seed: "curl request get \ url 'https //<pcm domain>/external/v2/publishers/<publisher
/// id>/markets/<market id>/products/search?limit=100' \ header 'authorization apikey <api
/// key>'". The header is exactly `apikey <key>`, once, on exactly that request.
#[tokio::test]
async fn products_search_sends_authorization_apikey() {
    let server = MockServer::start_async().await;
    let api = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(search_path("1001", "7"))
                .query_param("limit", "100")
                .header("authorization", "apikey key-1001")
                .header_count("authorization", ".*", 1);
            then.status(200).body("[]");
        })
        .await;
    let keys = pentaleap::ApiKeys::new()
        .publisher("1001", "key-1001")
        .unwrap();
    let client = client(pentaleap::ApiKeyAuth::with_base_url(keys, &pcm(&server)));

    let url = server.url(format!("{}?limit=100", search_path("1001", "7")));
    let res = client.get(url).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "[]");
    api.assert_calls_async(1).await;
}

/// Seed: "the following v2 api endpoints can be authorized using an api key get https //<pcm
/// domain>/external/v2/markets". A path that names no publisher gets the default key.
#[tokio::test]
async fn markets_uses_the_default_key() {
    let server = MockServer::start_async().await;
    let api = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(MARKETS_PATH)
                .header("authorization", "apikey key-default")
                .header_count("authorization", ".*", 1);
            then.status(200).body("[]");
        })
        .await;
    let keys = pentaleap::ApiKeys::single("key-default").unwrap();
    let client = client(pentaleap::ApiKeyAuth::with_base_url(keys, &pcm(&server)));

    let res = client.get(server.url(MARKETS_PATH)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    api.assert_calls_async(1).await;
}

/// Seed: "whenever you are maintaining multiple publishers under your organization you need to
/// request separate api keys for each publisher". Each `/publishers/<id>/` path gets that
/// publisher's key; `/external/v2/markets` gets the default key.
#[tokio::test]
async fn each_publisher_gets_its_own_key() {
    let server = MockServer::start_async().await;
    let api = echo_mock(&server).await;
    let keys =
        pentaleap::ApiKeys::from_publishers(HashMap::from([("1001", "key-a"), ("1002", "key-b")]))
            .unwrap()
            .default_key("key-default")
            .unwrap();
    let client = client(pentaleap::ApiKeyAuth::with_base_url(keys, &pcm(&server)));

    let search = |publisher: &str| server.url(format!("{}?limit=100", search_path(publisher, "7")));
    assert_eq!(seen_auth(&client, &search("1001")).await, "apikey key-a");
    assert_eq!(seen_auth(&client, &search("1002")).await, "apikey key-b");
    assert_eq!(seen_auth(&client, &search("1001")).await, "apikey key-a");
    assert_eq!(
        seen_auth(&client, &server.url(MARKETS_PATH)).await,
        "apikey key-default"
    );
    api.assert_calls_async(4).await;
}

/// Seed: "request the api key for your publisher at your pentaleap contact". A path naming a
/// publisher with no key fails with `Error::NoCredential` before anything is sent (the
/// default key is not another publisher's key to borrow).
#[tokio::test]
async fn unknown_publisher_fails_before_sending() {
    let server = MockServer::start_async().await;
    let api = echo_mock(&server).await;
    let keys = pentaleap::ApiKeys::new()
        .publisher("1001", "key-a")
        .unwrap()
        .default_key("key-default")
        .unwrap();
    let client = client(pentaleap::ApiKeyAuth::with_base_url(keys, &pcm(&server)));

    let url = server.url(format!("{}?limit=100", search_path("9999", "7")));
    match layer_error(&client, &url).await {
        Error::NoCredential { key } => assert_eq!(key.as_deref(), Some("9999")),
        other => panic!("expected NoCredential, got {other:?}"),
    }
    api.assert_calls_async(0).await;
}

/// Seed: "get https //<pcm domain>/external/v2/markets" needs an api key too. With publisher
/// keys only, a path without a publisher is `Error::NoCredential` naming no key, and nothing
/// is sent.
#[tokio::test]
async fn no_default_key_and_no_publisher_in_path_is_no_credential() {
    let server = MockServer::start_async().await;
    let api = echo_mock(&server).await;
    let keys = pentaleap::ApiKeys::from_publishers([("1001", "key-a")]).unwrap();
    let client = client(pentaleap::ApiKeyAuth::with_base_url(keys, &pcm(&server)));

    let err = layer_error(&client, &server.url(MARKETS_PATH)).await;
    assert!(matches!(err, Error::NoCredential { key: None }), "{err:?}");
    api.assert_calls_async(0).await;
}

/// Seed: "api key whenever you are a retailer and just want to provide product feed updates
/// via an api this approach is sufficient" (a static key, nothing to refresh). A 401 from the
/// API is returned as is: one API call, no retry.
#[tokio::test]
async fn api_401_is_returned_as_is() {
    let server = MockServer::start_async().await;
    let api = server
        .mock_async(|when, then| {
            when.method(GET).path(search_path("1001", "7"));
            then.status(401).body("invalid api key");
        })
        .await;
    let keys = pentaleap::ApiKeys::new()
        .publisher("1001", "revoked")
        .unwrap();
    let client = client(pentaleap::ApiKeyAuth::with_base_url(keys, &pcm(&server)));

    let url = server.url(format!("{}?limit=100", search_path("1001", "7")));
    let res = client.get(url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.text().await.unwrap(), "invalid api key");
    api.assert_calls_async(1).await;
}

/// Seed: "url 'https //<pcm domain>/...'": the key belongs to the PCM domain. A request to
/// another origin goes out without it.
#[tokio::test]
async fn other_origin_gets_no_key() {
    let pcm_server = MockServer::start_async().await;
    let other = MockServer::start_async().await;
    let pcm_api = echo_mock(&pcm_server).await;
    let other_api = echo_mock(&other).await;
    let keys = pentaleap::ApiKeys::single("key-default").unwrap();
    let client = client(pentaleap::ApiKeyAuth::with_base_url(
        keys,
        &pcm(&pcm_server),
    ));

    assert_eq!(seen_auth(&client, &other.url(MARKETS_PATH)).await, "");
    let url = other.url(format!("{}?limit=100", search_path("9999", "7")));
    assert_eq!(
        seen_auth(&client, &url).await,
        "",
        "no NoCredential off scope"
    );
    other_api.assert_calls_async(2).await;
    pcm_api.assert_calls_async(0).await;
}

/// Seed: "header 'authorization apikey <api key>'" is what the layer adds; a request that
/// already carries its own `Authorization` (a bearer token of the campaign API) is left alone.
#[tokio::test]
async fn own_authorization_header_is_left_alone() {
    let server = MockServer::start_async().await;
    let api = echo_mock(&server).await;
    let keys = pentaleap::ApiKeys::single("key-default").unwrap();
    let client = client(pentaleap::ApiKeyAuth::with_base_url(keys, &pcm(&server)));

    let res = client
        .get(server.url(MARKETS_PATH))
        .header("authorization", "Bearer user-token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "Bearer user-token");
    api.assert_calls_async(1).await;
}

/// Seed: "url 'https //<pcm domain>/...'": keys travel over TLS. Plain `http://` to a host
/// that is not loopback fails with `Error::InsecureTransport` and sends nothing, unless the
/// caller opts in with `allow_insecure_http()`.
#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused() {
    const HOST: &str = "pcm.partner.invalid";
    let server = MockServer::start_async().await;
    let api = echo_mock(&server).await;
    let pcm_base = Url::parse(&format!("http://{HOST}:{}", server.port())).unwrap();
    // DNS for the `.invalid` name points at the mock, so the request could reach it.
    let http = || common::resolving_http_client(HOST, &server);
    let keys = pentaleap::ApiKeys::single("key-default").unwrap();
    let url = pcm_base.join(MARKETS_PATH).unwrap();

    let refusing = client_with(
        http(),
        pentaleap::ApiKeyAuth::with_base_url(keys.clone(), &pcm_base),
    );
    match layer_error(&refusing, url.as_str()).await {
        Error::InsecureTransport { origin } => {
            assert_eq!(origin, format!("http://{HOST}:{}", server.port()));
        }
        other => panic!("expected InsecureTransport, got {other:?}"),
    }
    api.assert_calls_async(0).await;

    let opted_in = client_with(
        http(),
        pentaleap::ApiKeyAuth::with_base_url(keys, &pcm_base).allow_insecure_http(),
    );
    assert_eq!(
        seen_auth(&opted_in, url.as_str()).await,
        "apikey key-default"
    );
    api.assert_calls_async(1).await;
}
