//! Issue 2: what happens when the API rejects the token. One refresh and one replay, never
//! more; no replay for what cannot or must not be replayed; errors the caller can match on.
//!
//! Every test talks HTTP to a local httpmock server and moves time with a `ManualClock`.

mod common;

use std::time::Duration;

use httpmock::{Method, Mock, MockServer};
use reqwest_partner_auth::{Error, ManualClock, NoReplay};

use common::{client, middleware, numbered_token_mock, one_authorization_header};

const API_PATH: &str = "/api";
const HOUR: u64 = 3600;

/// An API mock for `method /api` carrying exactly one `Authorization: Bearer <token>`,
/// answering `status` after `delay`.
async fn api_mock<'a>(
    server: &'a MockServer,
    method: Method,
    token: &str,
    status: u16,
    delay: Duration,
) -> Mock<'a> {
    let header = format!("Bearer {token}");
    server
        .mock_async(|when, then| {
            when.method(method)
                .path(API_PATH)
                .header("authorization", header)
                .is_true(one_authorization_header);
            then.status(status)
                .delay(delay)
                .body(format!("{status} for {token}"));
        })
        .await
}

/// Registered last, so it only sees API requests no other mock took.
async fn unexpected_api_calls(server: &MockServer) -> Mock<'_> {
    server
        .mock_async(|when, then| {
            when.path(API_PATH);
            then.status(418);
        })
        .await
}

/// Issue 2, behaviour 4: the API answers 401 to the old token and 200 to the new one: the
/// caller sees the 200; the API saw exactly two requests, the replay with the same method
/// and body and exactly one (overwritten) `Authorization` header; two token fetches.
#[tokio::test]
async fn replays_once_with_a_fresh_token_after_a_401() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let body = r#"{"campaign":42}"#;
    let rejected = server
        .mock_async(|when, then| {
            when.method(Method::POST)
                .path(API_PATH)
                .header("authorization", "Bearer tok-1")
                .header("x-request", "original")
                .body(body)
                .is_true(one_authorization_header);
            then.status(401).body("token expired");
        })
        .await;
    let replayed = server
        .mock_async(|when, then| {
            when.method(Method::POST)
                .path(API_PATH)
                .header("authorization", "Bearer tok-2")
                .header("x-request", "original")
                .body(body)
                .is_true(one_authorization_header);
            then.status(200).body("accepted");
        })
        .await;
    let others = unexpected_api_calls(&server).await;
    let client = client(middleware(&server, &clock));

    let res = client
        .post(server.url(API_PATH))
        .header("x-request", "original")
        .body(body)
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "accepted");
    assert_eq!(rejected.calls_async().await, 1);
    assert_eq!(replayed.calls_async().await, 1);
    assert_eq!(
        others.calls_async().await,
        0,
        "the api saw exactly two requests"
    );
    assert_eq!(token.calls_async().await, 2);
}

/// Issue 2, behaviour 5: an API that always answers 401 gets exactly two attempts (the
/// second with the new token), and the caller gets the second 401 as a response, not an
/// error.
#[tokio::test]
async fn always_401_gets_exactly_two_attempts_and_the_second_401_is_returned() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let first = api_mock(&server, Method::GET, "tok-1", 401, Duration::ZERO).await;
    let second = api_mock(&server, Method::GET, "tok-2", 401, Duration::ZERO).await;
    let others = unexpected_api_calls(&server).await;
    let client = client(middleware(&server, &clock));

    let res = client
        .get(server.url(API_PATH))
        .send()
        .await
        .expect("a 401 is a response, not an error");

    assert_eq!(res.status(), 401);
    assert_eq!(
        res.text().await.unwrap(),
        "401 for tok-2",
        "the second response"
    );
    assert_eq!(first.calls_async().await, 1);
    assert_eq!(second.calls_async().await, 1);
    assert_eq!(others.calls_async().await, 0);
    assert_eq!(token.calls_async().await, 2);
}

/// Issue 2, behaviour 6: 50 concurrent requests all rejected with the same token cause one
/// refresh (two token fetches in all), and all 50 are replayed with the new token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_401s_for_one_token_cause_one_refresh() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    // The 401s come back late, so all 50 requests are out with tok-1 before the first one.
    let rejected = api_mock(
        &server,
        Method::GET,
        "tok-1",
        401,
        Duration::from_millis(300),
    )
    .await;
    let replayed = api_mock(&server, Method::GET, "tok-2", 200, Duration::ZERO).await;
    let others = unexpected_api_calls(&server).await;
    let mw = middleware(&server, &clock);
    let cache = mw.token_cache().clone();
    let client = client(mw);
    cache
        .token()
        .await
        .expect("tok-1 is cached before the storm");

    let tasks = (0..50).map(|_| {
        let client = client.clone();
        let url = server.url(API_PATH);
        tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
    });
    for status in futures_util::future::join_all(tasks).await {
        assert_eq!(status.unwrap(), 200);
    }

    assert_eq!(rejected.calls_async().await, 50);
    assert_eq!(replayed.calls_async().await, 50);
    assert_eq!(others.calls_async().await, 0);
    assert_eq!(
        token.calls_async().await,
        2,
        "one refresh for 50 rejections"
    );
}

/// Issue 2, behaviour 7: a request whose body cannot be cloned (a stream) is not replayed:
/// its 401 is returned as is; the rejection still drops the token, so the next request
/// fetches a new one.
#[tokio::test]
async fn streaming_body_is_not_replayed_but_the_token_is_dropped() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let rejected = server
        .mock_async(|when, then| {
            when.method(Method::POST)
                .path(API_PATH)
                .header("authorization", "Bearer tok-1")
                .body("streamed payload");
            then.status(401).body("token expired");
        })
        .await;
    let fresh = api_mock(&server, Method::GET, "tok-2", 200, Duration::ZERO).await;
    let others = unexpected_api_calls(&server).await;
    let client = client(middleware(&server, &clock));

    // `Body::wrap` of an `http_body::Body` is a streaming body: `try_clone` gives `None`.
    let body = reqwest::Body::wrap(String::from("streamed payload"));
    assert!(body.as_bytes().is_none(), "the body is a stream");
    let res = client
        .post(server.url(API_PATH))
        .body(body)
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), 401);
    assert_eq!(res.text().await.unwrap(), "token expired");
    assert_eq!(rejected.calls_async().await, 1);
    assert_eq!(fresh.calls_async().await, 0, "no replay");
    assert_eq!(others.calls_async().await, 0);
    assert_eq!(token.calls_async().await, 1);

    let res = client.get(server.url(API_PATH)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(fresh.calls_async().await, 1);
    assert_eq!(token.calls_async().await, 2);
}

/// Issue 2, behaviour 7: a request carrying the `NoReplay` extension is not replayed; its
/// rejection drops the token for the next request.
#[tokio::test]
async fn no_replay_extension_prevents_the_replay() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let rejected = api_mock(&server, Method::POST, "tok-1", 401, Duration::ZERO).await;
    let replayed = api_mock(&server, Method::POST, "tok-2", 200, Duration::ZERO).await;
    let others = unexpected_api_calls(&server).await;
    let client = client(middleware(&server, &clock));

    let res = client
        .post(server.url(API_PATH))
        .body("pay 100 EUR")
        .with_extension(NoReplay)
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), 401);
    assert_eq!(rejected.calls_async().await, 1);
    assert_eq!(replayed.calls_async().await, 0);
    assert_eq!(others.calls_async().await, 0);
    assert_eq!(token.calls_async().await, 1);

    let res = client.post(server.url(API_PATH)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(replayed.calls_async().await, 1);
    assert_eq!(token.calls_async().await, 2);
}

/// Issue 2, behaviour 7: a custom rejection policy that treats 403 as "token rejected" makes
/// a 403 trigger refresh and replay.
#[tokio::test]
async fn custom_rejection_policy_replays_on_403() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let rejected = api_mock(&server, Method::GET, "tok-1", 403, Duration::ZERO).await;
    let replayed = api_mock(&server, Method::GET, "tok-2", 200, Duration::ZERO).await;
    let others = unexpected_api_calls(&server).await;
    let mw =
        middleware(&server, &clock).rejection_policy(|r: &reqwest::Response| r.status() == 403);
    let client = client(mw);

    let res = client.get(server.url(API_PATH)).send().await.unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(rejected.calls_async().await, 1);
    assert_eq!(replayed.calls_async().await, 1);
    assert_eq!(others.calls_async().await, 0);
    assert_eq!(token.calls_async().await, 2);
}

/// Issue 2, behaviour 7: with a custom rejection policy (403), a 401 is not a rejection: no
/// refresh, no replay, and the token stays in use.
#[tokio::test]
async fn custom_rejection_policy_ignores_401() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let unauthorized = api_mock(&server, Method::GET, "tok-1", 401, Duration::ZERO).await;
    let others = unexpected_api_calls(&server).await;
    let mw =
        middleware(&server, &clock).rejection_policy(|r: &reqwest::Response| r.status() == 403);
    let client = client(mw);

    let res = client.get(server.url(API_PATH)).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = client.get(server.url(API_PATH)).send().await.unwrap();
    assert_eq!(res.status(), 401);

    assert_eq!(
        unauthorized.calls_async().await,
        2,
        "both went out with tok-1"
    );
    assert_eq!(others.calls_async().await, 0);
    assert_eq!(token.calls_async().await, 1, "a 401 did not drop the token");
}

/// Issue 2: a token endpoint answering 401 `{"error":"bad creds"}` makes the API call fail
/// with `reqwest_middleware::Error::Middleware`, which `Error::from_middleware` turns back
/// into `Error::InvalidCredentials` with the partner's message; not retried, nothing sent to
/// the API.
#[tokio::test]
async fn token_endpoint_401_downcasts_to_invalid_credentials() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token =
        common::fixed_token_mock(&server, 401, "application/json", r#"{"error":"bad creds"}"#)
            .await;
    let api = unexpected_api_calls(&server).await;
    let client = client(middleware(&server, &clock));

    let err = client
        .get(server.url(API_PATH))
        .send()
        .await
        .expect_err("the token cannot be obtained");

    assert!(
        matches!(err, reqwest_middleware::Error::Middleware(_)),
        "{err:?}"
    );
    match Error::from_middleware(&err) {
        Some(Error::InvalidCredentials { message, .. }) => assert_eq!(message, "bad creds"),
        other => panic!("expected InvalidCredentials, got {other:?}"),
    }
    assert_eq!(
        token.calls_async().await,
        1,
        "credential errors are not retried"
    );
    assert_eq!(api.calls_async().await, 0);
}
