//! The Targeter partner token contract (`seeds/targeter-partner-token.txt`), line by line,
//! against a real local HTTP server. Each test names the seed line it checks.
//!
//! What every partner shares (malformed answers, secrets in `Debug` and errors, `from_env`,
//! the token's origin and plain http, the replay after a 401) is checked for Targeter too, in
//! the partner harness (`tests/partners.rs`).
#![cfg(feature = "targeter")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{base, json_response};
use httpmock::{HttpMockRequest, HttpMockResponse, Method::POST, Mock, MockServer, When};
use reqwest_middleware::ClientWithMiddleware;
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::error::Malformed;
use reqwest_partner_auth::token::Expiry;
use reqwest_partner_auth::{
    targeter, AuthMiddleware, Error, FetchContext, FetchReason, TokenSource,
};
use serde_json::json;
use url::Url;

const TOKEN_PATH: &str = "/api/auth/token";
const CAMPAIGN_PATH: &str = "/api/campaign";
const API_KEY: &str = "YOUR_ISSUED_PARTNER_KEY";
/// The sentinel secret: it must never show up in `Debug`, `Display` or errors.
const API_SECRET: &str = common::SECRET;

fn credentials() -> targeter::Credentials {
    targeter::Credentials::new(API_KEY, API_SECRET)
}

/// A Targeter layer builder against the mock, on a manual clock, with three fast attempts.
fn auth(server: &MockServer, clock: &ManualClock) -> common::Builder<targeter::Source> {
    let source = targeter::Source::with_base_url(credentials(), &base(server));
    common::on_clock(AuthMiddleware::builder(source), clock)
}

fn client(server: &MockServer, clock: &ManualClock) -> ClientWithMiddleware {
    common::client(auth(server, clock))
}

/// The token endpoint as the contract describes it: only a `POST /api/auth/token` with
/// `Content-Type: application/json` and exactly `{"api_key": "...", "api_secret": "..."}`
/// (strict JSON equality: no other field, both strings) matches; a request that differs gets
/// httpmock's 404. `respond(n)` answers the n-th matching call (1-based).
async fn token_endpoint<'a>(
    server: &'a MockServer,
    respond: impl Fn(usize) -> HttpMockResponse + Send + Sync + 'static,
) -> Mock<'a> {
    let when = |when: When| {
        when.method(POST)
            .path(TOKEN_PATH)
            .header("content-type", "application/json")
            .json_body(json!({ "api_key": API_KEY, "api_secret": API_SECRET }))
    };
    common::counted_mock(server, when, move |n, _| respond(n)).await
}

/// A token endpoint that hands out `tok-1`, `tok-2`, ... each valid `expires_in` seconds.
async fn numbered_tokens(server: &MockServer, expires_in: u64) -> Mock<'_> {
    token_endpoint(server, move |n| common::numbered_token(n, expires_in)).await
}

/// `POST /api/campaign`: answers 401 when the bearer token is in `rejected`, else 200 with
/// the `Authorization` values it received joined by `|` (empty when there was none).
async fn campaign_api<'a>(server: &'a MockServer, rejected: &'static [&'static str]) -> Mock<'a> {
    let when = |when: When| when.method(POST).path(CAMPAIGN_PATH);
    common::rejecting_echo_mock(server, when, rejected, r#"{"error":"Token expired"}"#).await
}

/// One campaign call; returns the status and the `Authorization` the API saw.
async fn call_campaign(client: &ClientWithMiddleware, server: &MockServer) -> (u16, String) {
    let res = client
        .post(server.url(CAMPAIGN_PATH))
        .json(&json!({ "name": "spring" }))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// One campaign call that must fail in the layer; returns the crate's error.
async fn failing_campaign(client: &ClientWithMiddleware, server: &MockServer) -> Error {
    common::layer_error(client.post(server.url(CAMPAIGN_PATH)).json(&json!({}))).await
}

/// targeter seed: `curl -X POST "https://storhaug.targeter.tech/api/auth/token"
/// -H "Content-Type: application/json" -d '{"api_key": "YOUR_ISSUED_PARTNER_KEY",
/// "api_secret": "YOUR_ISSUED_PARTNER_SECRET"}'` — the exact request the endpoint receives.
#[tokio::test]
async fn token_request_is_a_json_post_of_key_and_secret() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let seen: Arc<Mutex<Vec<HttpMockRequest>>> = Arc::default();
    let log = Arc::clone(&seen);
    let token = token_endpoint(&server, move |_| {
        json_response(200, &common::token_body("tok-1", 3600))
    })
    .await;
    // A second mock on the same route records what arrived (the exact-match one wins).
    let _recorder = server
        .mock_async(move |when, then| {
            when.path(TOKEN_PATH);
            then.respond_with(move |req: &HttpMockRequest| {
                log.lock().unwrap().push(req.clone());
                HttpMockResponse::builder().status(404).build()
            });
        })
        .await;
    let _api = campaign_api(&server, &[]).await;

    let (status, _) = call_campaign(&client(&server, &clock), &server).await;

    assert_eq!(status, 200);
    assert_eq!(
        token.calls_async().await,
        1,
        "the exact-match mock answered"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing else reached the token path"
    );
}

/// targeter seed: "Content-Type: application/json" and the two body parameters "API key
/// issued for your partnership" / "API secret issued for your partnership" — read back from
/// the wire: method, header, and a body that is a JSON object of exactly two strings.
#[tokio::test]
async fn token_request_body_has_exactly_two_string_fields() {
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
    let _api = campaign_api(&server, &[]).await;

    call_campaign(&client(&server, &clock), &server).await;

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
    assert_eq!(object.len(), 2, "{body}");
    assert_eq!(object["api_key"], json!(API_KEY));
    assert_eq!(object["api_secret"], json!(API_SECRET));
}

/// targeter seed: `curl -X POST "https://storhaug.targeter.tech/api/campaign"
/// -H "Authorization: Bearer YOUR_JWT_TOKEN"` — the API call carries exactly one bearer header.
#[tokio::test]
async fn campaign_call_carries_the_bearer_token() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_tokens(&server, 3600).await;
    let api = campaign_api(&server, &[]).await;

    let (status, seen) = call_campaign(&client(&server, &clock), &server).await;

    assert_eq!((status, seen.as_str()), (200, "Bearer tok-1"));
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(api.calls_async().await, 1);
}

/// targeter seed: "Token validity in seconds (3600 = 1 hour)" and "Storage: Store tokens
/// securely and refresh them before expiration" — with refresh-ahead off, the token is reused
/// at 3540 s and replaced at 3575 s (inside the default 30 s skew), one fetch each.
#[tokio::test]
async fn one_hour_token_is_reused_then_refreshed_inside_the_skew() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_tokens(&server, 3600).await;
    let _api = campaign_api(&server, &[]).await;
    let client = common::client(auth(&server, &clock).refresh_ahead(0.0));

    assert_eq!(call_campaign(&client, &server).await.1, "Bearer tok-1");
    for _ in 0..3 {
        assert_eq!(call_campaign(&client, &server).await.1, "Bearer tok-1");
    }
    assert_eq!(token.calls_async().await, 1);

    clock.advance(Duration::from_secs(3540));
    assert_eq!(call_campaign(&client, &server).await.1, "Bearer tok-1");
    assert_eq!(token.calls_async().await, 1, "no fetch 60 s before expiry");

    clock.advance(Duration::from_secs(35)); // 3575 s: inside the 30 s skew
    assert_eq!(call_campaign(&client, &server).await.1, "Bearer tok-2");
    assert_eq!(
        token.calls_async().await,
        2,
        "one new fetch inside the skew"
    );
}

/// targeter seed: "Refresh: You must obtain a new token when the current one expires" — with
/// the default refresh-ahead, a call late in the hour still goes out with the current token
/// while one background refresh runs; by the skew the new token is used: two fetches in all.
#[tokio::test]
async fn default_refresh_ahead_serves_the_current_token_meanwhile() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_tokens(&server, 3600).await;
    let _api = campaign_api(&server, &[]).await;
    let client = client(&server, &clock);

    assert_eq!(call_campaign(&client, &server).await.1, "Bearer tok-1");
    clock.advance(Duration::from_secs(2000));
    assert_eq!(call_campaign(&client, &server).await.1, "Bearer tok-1");
    assert_eq!(token.calls_async().await, 1, "no fetch before the last 20%");

    clock.advance(Duration::from_secs(1540)); // 3540 s: refresh-ahead window
    assert_eq!(call_campaign(&client, &server).await.1, "Bearer tok-1");

    clock.advance(Duration::from_secs(35)); // 3575 s: inside the skew
    assert_eq!(call_campaign(&client, &server).await.1, "Bearer tok-2");
    assert_eq!(token.calls_async().await, 2);
}

/// targeter seed: Example Response `{"access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
/// "token_type": "Bearer", "expires_in": 3600}` — the contract's own example is accepted as is.
#[tokio::test]
async fn contract_example_response_is_accepted() {
    const EXAMPLE: &str = r#"{
"access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
"token_type": "Bearer",
"expires_in": 3600
}"#;
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, |_| json_response(200, EXAMPLE)).await;
    let _api = campaign_api(&server, &[]).await;

    let source = targeter::Source::with_base_url(credentials(), &base(&server));
    let parsed = source
        .fetch(&FetchContext::new(FetchReason::Initial))
        .await
        .unwrap();
    assert_eq!(parsed.expiry(), Expiry::In(Duration::from_secs(3600)));

    let (status, seen) = call_campaign(&client(&server, &clock), &server).await;
    assert_eq!(status, 200);
    assert_eq!(seen, "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...");
    assert_eq!(token.calls_async().await, 2);
}

/// targeter seed: "Token type (always “Bearer”)" — any other `token_type` is refused as
/// malformed rather than sent as a bearer token; not retried.
#[tokio::test]
async fn a_token_type_other_than_bearer_is_malformed() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, |_| {
        json_response(
            200,
            r#"{"access_token":"t","token_type":"MAC","expires_in":3600}"#,
        )
    })
    .await;
    let api = campaign_api(&server, &[]).await;

    let err = failing_campaign(&client(&server, &clock), &server).await;

    assert!(
        matches!(&err, Error::MalformedResponse(Malformed::InvalidField { field, .. }) if field == "token_type"),
        "{err:?}"
    );
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(api.calls_async().await, 0);
}

/// targeter seed: "400 - Invalid request body" `{"error": "Invalid request body"}` —
/// `Error::InvalidCredentials` with the partner's message, not retried (exactly one hit).
#[tokio::test]
async fn invalid_request_body_400_is_a_credential_error_not_retried() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, |_| {
        json_response(400, r#"{"error": "Invalid request body"}"#)
    })
    .await;
    let api = campaign_api(&server, &[]).await;

    let err = failing_campaign(&client(&server, &clock), &server).await;

    match &err {
        Error::InvalidCredentials { message, code } => {
            assert_eq!(message, "Invalid request body");
            assert_eq!(
                *code, None,
                "targeter::Source's `error` is a message, not a code"
            );
        }
        other => panic!("expected InvalidCredentials, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(api.calls_async().await, 0, "no API call without a token");
}

/// targeter seed: "401 - Invalid API credentials" `{"error": "Invalid API credentials"}` —
/// `Error::InvalidCredentials` with the partner's message, not retried (exactly one hit).
#[tokio::test]
async fn invalid_api_credentials_401_is_a_credential_error_not_retried() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, |_| {
        json_response(401, r#"{"error": "Invalid API credentials"}"#)
    })
    .await;
    let api = campaign_api(&server, &[]).await;

    let err = failing_campaign(&client(&server, &clock), &server).await;

    match &err {
        Error::InvalidCredentials { message, code } => {
            assert_eq!(message, "Invalid API credentials");
            assert_eq!(
                *code, None,
                "targeter::Source's `error` is a message, not a code"
            );
        }
        other => panic!("expected InvalidCredentials, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "invalid credentials: Invalid API credentials"
    );
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(clock.slept(), Duration::ZERO, "no backoff waited");
    assert_eq!(api.calls_async().await, 0);
}

/// targeter seed: "500 - Internal server error" `{"error": "Internal server error"}` —
/// transient: retried (3 hits with `max_attempts: 3`, backing off on the clock), then
/// `Error::TokenEndpoint { status: 500, .. }` carrying the partner's message.
#[tokio::test]
async fn internal_server_error_500_is_retried_then_reported() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, |_| {
        json_response(500, r#"{"error": "Internal server error"}"#)
    })
    .await;
    let api = campaign_api(&server, &[]).await;

    let err = failing_campaign(&client(&server, &clock), &server).await;

    match &err {
        Error::TokenEndpoint {
            status, excerpt, ..
        } => {
            assert_eq!(status.as_u16(), 500);
            assert_eq!(excerpt, "Internal server error");
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

/// targeter seed: "JWT token to be used in Authorization header" — a token endpoint path
/// below a base path keeps it (`https://host/sandbox` → `/sandbox/api/auth/token`).
#[test]
fn base_url_with_a_path_keeps_it() {
    let base = Url::parse("https://sandbox.targeter.example/sandbox/").unwrap();
    let source = targeter::Source::with_base_url(credentials(), &base);
    assert_eq!(
        source.token_url().as_str(),
        "https://sandbox.targeter.example/sandbox/api/auth/token"
    );
}
