//! The AdGem `/v1/apps/tokens` contract (`seeds/adgem-apps-tokens.txt`), line by line,
//! against a real local HTTP server. Each test names the seed line it checks.
//!
//! What every partner shares (malformed answers, secrets in `Debug` and errors, `from_env`
//! with its integer ids, the production host, the token's origin and plain http, the replay
//! after a 401) is checked for AdGem too, in the partner harness (`tests/partners.rs`).
#![cfg(feature = "adgem")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{base, json_response};
use httpmock::{HttpMockRequest, HttpMockResponse, Method::POST, Mock, MockServer, When};
use reqwest_middleware::ClientWithMiddleware;
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::error::Malformed;
use reqwest_partner_auth::token::Expiry;
use reqwest_partner_auth::{adgem, AuthMiddleware, Error, FetchContext, FetchReason, TokenSource};
use serde_json::json;

const TOKEN_PATH: &str = "/v1/apps/tokens";
const OFFERS_PATH: &str = "/v1/offers";
const OFFERS_QUERY: &str = "{ offers(player_id: \"user123\") { id name total_payout_usd } }";
const PUB_ID: i64 = 12345;
const APP_ID: i64 = 678;
const CLIENT_ID: &str = "your-client-id";
/// The sentinel secret: it must never show up in `Debug`, `Display` or errors.
const CLIENT_SECRET: &str = common::SECRET;

fn credentials() -> adgem::Credentials {
    adgem::Credentials::new(PUB_ID, APP_ID, CLIENT_ID, CLIENT_SECRET)
}

/// An AdGem layer builder against the mock, on a manual clock, with three fast attempts.
fn auth(server: &MockServer, clock: &ManualClock) -> common::Builder<adgem::Source> {
    let source = adgem::Source::with_base_url(credentials(), &base(server));
    common::on_clock(AuthMiddleware::builder(source), clock)
}

fn client(server: &MockServer, clock: &ManualClock) -> ClientWithMiddleware {
    common::client(auth(server, clock))
}

/// The token endpoint as the contract describes it: only a `POST /v1/apps/tokens` with
/// `Content-Type: application/json` and exactly the four documented fields, the ids as JSON
/// integers and the client id and secret as strings (strict JSON equality), matches; a
/// request that differs gets httpmock's 404. `respond(n)` answers the n-th call (1-based).
async fn token_endpoint<'a>(
    server: &'a MockServer,
    respond: impl Fn(usize) -> HttpMockResponse + Send + Sync + 'static,
) -> Mock<'a> {
    let when = |when: When| {
        when.method(POST)
            .path(TOKEN_PATH)
            .header("content-type", "application/json")
            .json_body(json!({
                "adgem_pub_id": PUB_ID,
                "adgem_app_id": APP_ID,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            }))
    };
    common::counted_mock(server, when, move |n, _| respond(n)).await
}

/// A token endpoint that hands out `tok-1`, `tok-2`, ... each valid `expires_in` seconds.
async fn numbered_tokens(server: &MockServer, expires_in: u64) -> Mock<'_> {
    token_endpoint(server, move |n| common::numbered_token(n, expires_in)).await
}

/// `POST /v1/offers` with the seed's GraphQL query: answers 401 when the bearer token is in
/// `rejected`, else 200 with the `Authorization` values it received joined by `|`.
async fn offers_api<'a>(server: &'a MockServer, rejected: &'static [&'static str]) -> Mock<'a> {
    let when = |when: When| {
        when.method(POST)
            .path(OFFERS_PATH)
            .header("content-type", "application/json")
            .json_body(json!({ "query": OFFERS_QUERY }))
    };
    common::rejecting_echo_mock(server, when, rejected, r#"{"error":"unauthorized"}"#).await
}

/// The offers query of the seed; returns the status and the `Authorization` the API saw.
async fn query_offers(client: &ClientWithMiddleware, server: &MockServer) -> (u16, String) {
    let res = client
        .post(server.url(OFFERS_PATH))
        .json(&json!({ "query": OFFERS_QUERY }))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// An offers query that must fail in the layer; returns the crate's error.
async fn failing_offers(client: &ClientWithMiddleware, server: &MockServer) -> Error {
    let query = json!({ "query": OFFERS_QUERY });
    common::layer_error(client.post(server.url(OFFERS_PATH)).json(&query)).await
}

/// adgem seed: `curl -X POST https://targeted-api.adgem.com/v1/apps/tokens -H "Content-Type:
/// application/json" -d '{"adgem_pub_id": 0, "adgem_app_id": 0, "client_id": ...,
/// "client_secret": ...}'` — the exact request the endpoint receives.
#[tokio::test]
async fn token_request_is_a_json_post_of_the_four_fields() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_tokens(&server, 3600).await;
    let _api = offers_api(&server, &[]).await;

    let (status, _) = query_offers(&client(&server, &clock), &server).await;

    assert_eq!(status, 200);
    assert_eq!(
        token.calls_async().await,
        1,
        "the exact-match mock answered"
    );
}

/// adgem seed: Body Parameters table — "adgem_pub_id | integer", "adgem_app_id | integer",
/// "client_id | string", "client_secret | string" — read back from the wire: four fields,
/// the ids JSON integers (not strings), `Content-Type: application/json`.
#[tokio::test]
async fn token_request_ids_are_json_integers_on_the_wire() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let seen: Arc<Mutex<Vec<HttpMockRequest>>> = Arc::default();
    let log = Arc::clone(&seen);
    let _token = server
        .mock_async(move |when, then| {
            when.path(TOKEN_PATH);
            then.respond_with(move |req: &HttpMockRequest| {
                log.lock().unwrap().push(req.clone());
                json_response(200, &common::token_body("tok-1", 3600))
            });
        })
        .await;
    let _api = offers_api(&server, &[]).await;

    query_offers(&client(&server, &clock), &server).await;

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.method_str(), "POST");
    assert_eq!(req.uri().path(), TOKEN_PATH);
    assert_eq!(req.uri().query(), None, "no credentials in the URL");
    let content_types: Vec<_> = req
        .headers_vec()
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(content_types, ["application/json"]);
    let body: serde_json::Value = serde_json::from_slice(req.body_ref()).unwrap();
    let object = body.as_object().expect("a JSON object");
    assert_eq!(object.len(), 4, "{body}");
    assert_eq!(object["adgem_pub_id"].as_i64(), Some(PUB_ID), "{body}");
    assert_eq!(object["adgem_app_id"].as_i64(), Some(APP_ID), "{body}");
    assert_eq!(object["client_id"].as_str(), Some(CLIENT_ID));
    assert_eq!(object["client_secret"].as_str(), Some(CLIENT_SECRET));
}

/// adgem seed: `curl -X POST https://targeted-api.adgem.com/v1/offers -H "Authorization:
/// Bearer eyJ..." -d '{"query": "{ offers(player_id: \"user123\") { id name total_payout_usd } }"}'`
/// — the offers call carries exactly one bearer header, its own body untouched.
#[tokio::test]
async fn offers_query_carries_the_bearer_token() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_tokens(&server, 3600).await;
    let api = offers_api(&server, &[]).await;

    let (status, seen) = query_offers(&client(&server, &clock), &server).await;

    assert_eq!((status, seen.as_str()), (200, "Bearer tok-1"));
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(api.calls_async().await, 1);
}

/// adgem seed: "expires_in | integer | Token validity duration in seconds" (3600) — with
/// refresh-ahead off, the token is reused at 3540 s and replaced at 3575 s (inside the
/// default 30 s skew), one fetch each.
#[tokio::test]
async fn one_hour_token_is_reused_then_refreshed_inside_the_skew() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_tokens(&server, 3600).await;
    let _api = offers_api(&server, &[]).await;
    let client = common::client(auth(&server, &clock).refresh_ahead(0.0));

    for _ in 0..4 {
        assert_eq!(query_offers(&client, &server).await.1, "Bearer tok-1");
    }
    assert_eq!(token.calls_async().await, 1);

    clock.advance(Duration::from_secs(3540));
    assert_eq!(query_offers(&client, &server).await.1, "Bearer tok-1");
    assert_eq!(token.calls_async().await, 1, "no fetch 60 s before expiry");

    clock.advance(Duration::from_secs(35)); // 3575 s: inside the 30 s skew
    assert_eq!(query_offers(&client, &server).await.1, "Bearer tok-2");
    assert_eq!(
        token.calls_async().await,
        2,
        "one new fetch inside the skew"
    );
}

/// adgem seed: Success Response (200 OK) `{"access_token": "<your-jwt-token>", "token_type":
/// "Bearer", "expires_in": 3600}` — the contract's own example is accepted as is.
#[tokio::test]
async fn contract_example_response_is_accepted() {
    const EXAMPLE: &str = r#"{
"access_token": "<your-jwt-token>",
"token_type": "Bearer",
"expires_in": 3600
}"#;
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, |_| json_response(200, EXAMPLE)).await;
    let _api = offers_api(&server, &[]).await;

    let source = adgem::Source::with_base_url(credentials(), &base(&server));
    let parsed = source
        .fetch(&FetchContext::new(FetchReason::Initial))
        .await
        .unwrap();
    assert_eq!(parsed.expiry(), Expiry::In(Duration::from_secs(3600)));

    let (status, seen) = query_offers(&client(&server, &clock), &server).await;
    assert_eq!((status, seen.as_str()), (200, "Bearer <your-jwt-token>"));
    assert_eq!(token.calls_async().await, 2);
}

/// adgem seed: "token_type | string | The type of token (always Bearer)" — any other
/// `token_type` is refused as malformed; not retried.
#[tokio::test]
async fn a_token_type_other_than_bearer_is_malformed() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, |_| {
        json_response(
            200,
            r#"{"access_token":"t","token_type":"Basic","expires_in":3600}"#,
        )
    })
    .await;

    let err = failing_offers(&client(&server, &clock), &server).await;

    assert!(
        matches!(&err, Error::MalformedResponse(Malformed::InvalidField { field, .. }) if field == "token_type"),
        "{err:?}"
    );
    assert_eq!(token.calls_async().await, 1);
}

/// adgem seed: "401 Unauthorized — Returned when the provided credentials are invalid."
/// `{"error": "invalid_client", "error_description": "Invalid client credentials"}` —
/// `Error::InvalidCredentials { message: "Invalid client credentials", code:
/// Some("invalid_client") }`, not retried (exactly one hit).
#[tokio::test]
async fn invalid_client_401_is_a_credential_error_not_retried() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, |_| {
        json_response(
            401,
            r#"{"error": "invalid_client", "error_description": "Invalid client credentials"}"#,
        )
    })
    .await;
    let api = offers_api(&server, &[]).await;

    let err = failing_offers(&client(&server, &clock), &server).await;

    match &err {
        Error::InvalidCredentials { message, code } => {
            assert_eq!(message, "Invalid client credentials");
            assert_eq!(code.as_deref(), Some("invalid_client"));
        }
        other => panic!("expected InvalidCredentials, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(clock.slept(), Duration::ZERO, "no backoff waited");
    assert_eq!(api.calls_async().await, 0, "no API call without a token");
}

/// adgem seed: "500 Internal Server Error — Returned when an unexpected error occurs during
/// token generation." `{"error": "server_error", "error_description": "An unexpected error
/// occurred"}` — transient: retried (3 hits), then `Error::TokenEndpoint { status: 500, .. }`
/// with the partner's description.
#[tokio::test]
async fn server_error_500_is_retried_then_reported() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, |_| {
        json_response(
            500,
            r#"{"error": "server_error", "error_description": "An unexpected error occurred"}"#,
        )
    })
    .await;
    let api = offers_api(&server, &[]).await;

    let err = failing_offers(&client(&server, &clock), &server).await;

    match &err {
        Error::TokenEndpoint {
            status, excerpt, ..
        } => {
            assert_eq!(status.as_u16(), 500);
            assert_eq!(excerpt, "An unexpected error occurred");
        }
        other => panic!("expected TokenEndpoint, got {other:?}"),
    }
    assert!(err.is_transient());
    assert_eq!(token.calls_async().await, 3);
    assert!(
        clock.slept() > Duration::ZERO,
        "backed off between attempts"
    );
    assert_eq!(api.calls_async().await, 0);
}
