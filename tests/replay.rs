//! What happens when the API rejects the token. One refresh and one replay, never
//! more; no replay for what cannot or must not be replayed; errors the caller can match on.
//!
//! Every test talks HTTP to a local httpmock server and moves time with a `ManualClock`.

mod common;

use std::time::Duration;

use httpmock::{Method, Mock, MockServer};
use reqwest_partner_auth::cache::DEFAULT_REJECTION_COOLDOWN;
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::{Error, NoReplay};

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

/// The API answers 401 to the old token and 200 to the new one: the
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

/// An API that always answers 401 gets exactly two attempts (the
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

/// 50 concurrent requests all rejected with the same token cause one
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
    let mw = middleware(&server, &clock).build();
    let cache = mw.cache().clone();
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

/// A request whose body cannot be cloned (a stream) is not replayed:
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

/// A request carrying the `NoReplay` extension is not replayed; its
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

/// A custom rejection policy that treats 403 as "token rejected" makes
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

/// With a custom rejection policy (403), a 401 is not a rejection: no
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

/// A token endpoint answering 401 `{"error":"bad creds"}` makes the API call fail
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

/// An API mock for `GET /api` that rejects every token with a 401.
async fn rejecting_api(server: &MockServer) -> Mock<'_> {
    server
        .mock_async(|when, then| {
            when.method(Method::GET).path(API_PATH);
            then.status(401).body("insufficient scope");
        })
        .await
}

/// An API that rejects every fresh token (a missing permission, a wrong audience) costs one
/// rejection-driven token fetch per cool-down, not one per request: 20 requests make one
/// first fetch, one refetch and 21 API calls (the first request's replay included), every
/// caller gets the 401; once the cool-down has passed on the cache's clock, one more refetch.
#[tokio::test]
async fn an_api_rejecting_every_token_costs_one_refetch_per_cooldown() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let api = rejecting_api(&server).await;
    let client = client(middleware(&server, &clock));

    for _ in 0..20 {
        let res = client.get(server.url(API_PATH)).send().await.unwrap();
        assert_eq!(res.status(), 401);
    }
    assert_eq!(token.calls_async().await, 2);
    assert_eq!(api.calls_async().await, 21);

    clock.advance(DEFAULT_REJECTION_COOLDOWN - Duration::from_secs(1));
    client.get(server.url(API_PATH)).send().await.unwrap();
    assert_eq!(token.calls_async().await, 2, "still cooling down");
    assert_eq!(api.calls_async().await, 22);

    clock.advance(Duration::from_secs(1));
    client.get(server.url(API_PATH)).send().await.unwrap();
    assert_eq!(token.calls_async().await, 3, "the cool-down has passed");
    assert_eq!(api.calls_async().await, 24, "a request and its replay");
}

/// The cool-down also holds for requests that are not replayed: their rejections drop the
/// token once per cool-down, not once per request.
#[tokio::test]
async fn rejections_of_unreplayed_requests_are_rate_limited_too() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let api = rejecting_api(&server).await;
    let client = client(middleware(&server, &clock));

    for _ in 0..10 {
        let res = client
            .get(server.url(API_PATH))
            .with_extension(NoReplay)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    assert_eq!(api.calls_async().await, 10);
    assert_eq!(
        token.calls_async().await,
        2,
        "first token, one after the drop"
    );
}

/// `rejection_cooldown(Duration::ZERO)` fetches after every rejection.
#[tokio::test]
async fn a_zero_cooldown_fetches_after_every_rejection() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let api = rejecting_api(&server).await;
    let client = client(middleware(&server, &clock).rejection_cooldown(Duration::ZERO));

    for _ in 0..5 {
        client.get(server.url(API_PATH)).send().await.unwrap();
    }
    assert_eq!(token.calls_async().await, 6);
    assert_eq!(api.calls_async().await, 10);
}

/// `TokenCache::reject` within the cool-down fetches nothing, keeps the token and says so
/// with `Ok(None)`; a rejection of a token that was already replaced returns the replacement.
#[tokio::test]
async fn token_cache_reject_reports_the_cooldown() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let cache = middleware(&server, &clock).build().cache().clone();

    let first = cache.token().await.unwrap();
    let second = cache
        .reject(first.generation())
        .await
        .unwrap()
        .expect("a new token");
    assert_eq!(second.header_value(), "Bearer tok-2");
    let again = cache.reject(first.generation()).await.unwrap();
    assert_eq!(again.map(|l| l.generation()), Some(second.generation()));
    assert_eq!(
        cache
            .reject(second.generation())
            .await
            .unwrap()
            .map(|l| l.generation()),
        None
    );
    assert_eq!(
        cache.generation(),
        Some(second.generation()),
        "the token stays"
    );
    assert_eq!(token.calls_async().await, 2);
}

/// The API on `server` redirects to `foreign`, which answers 401; the two mocks.
async fn redirect_to_a_foreign_401<'a>(
    server: &'a MockServer,
    foreign: &'a MockServer,
) -> (httpmock::Mock<'a>, httpmock::Mock<'a>) {
    let redirect = server
        .mock_async(|when, then| {
            when.method(Method::GET).path(API_PATH);
            then.status(302)
                .header("location", foreign.url("/elsewhere"));
        })
        .await;
    let elsewhere = foreign
        .mock_async(|when, then| {
            when.method(Method::GET).path("/elsewhere");
            then.status(401);
        })
        .await;
    (redirect, elsewhere)
}

/// Only a rejection by an origin in scope counts: the API redirects (through the caller's own
/// client, which follows redirects) to another origin that answers 401. That 401 says nothing
/// about our token: no refetch, no replay, the token stays.
#[tokio::test]
async fn a_401_from_a_foreign_origin_after_a_redirect_is_not_a_rejection() {
    let server = MockServer::start_async().await;
    let foreign = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let (redirect, elsewhere) = redirect_to_a_foreign_401(&server, &foreign).await;
    let client = client(middleware(&server, &clock));

    for _ in 0..5 {
        let res = client.get(server.url(API_PATH)).send().await.unwrap();
        assert_eq!(res.status(), 401);
    }
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(redirect.calls_async().await, 5, "no replays");
    assert_eq!(elsewhere.calls_async().await, 5);
}

/// The same for requests that are not replayed (`NoReplay`, a layer built `without_replay`):
/// a 401 from a foreign origin reached through a redirect does not drop the token, so the
/// next request fetches nothing either.
#[tokio::test]
async fn a_foreign_401_does_not_drop_the_token_of_an_unreplayed_request() {
    let server = MockServer::start_async().await;
    let foreign = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let (redirect, elsewhere) = redirect_to_a_foreign_401(&server, &foreign).await;
    let no_replay = client(middleware(&server, &clock));
    let without_replay = client(middleware(&server, &clock).without_replay());

    for _ in 0..3 {
        let res = no_replay
            .get(server.url(API_PATH))
            .with_extension(NoReplay)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        let res = without_replay
            .get(server.url(API_PATH))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    assert_eq!(
        token.calls_async().await,
        2,
        "one token per layer, never dropped"
    );
    assert_eq!(redirect.calls_async().await, 6);
    assert_eq!(elsewhere.calls_async().await, 6);
}

/// A request without a body is replayed with the same method, query, headers and HTTP version
/// and exactly one (new) `Authorization` header.
#[tokio::test]
async fn a_bodiless_request_is_replayed_with_its_method_query_and_headers() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let mock = |token: &'static str, status: u16| {
        server.mock_async(move |when, then| {
            when.method(Method::DELETE)
                .path(API_PATH)
                .query_param("id", "7")
                .header("x-request", "original")
                .header("authorization", format!("Bearer {token}"))
                .is_true(one_authorization_header);
            then.status(status);
        })
    };
    let rejected = mock("tok-1", 401).await;
    let replayed = mock("tok-2", 204).await;
    let others = unexpected_api_calls(&server).await;
    let client = client(middleware(&server, &clock));

    let res = client
        .delete(server.url(API_PATH))
        .query(&[("id", "7")])
        .header("x-request", "original")
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), 204);
    assert_eq!(rejected.calls_async().await, 1);
    assert_eq!(replayed.calls_async().await, 1);
    assert_eq!(others.calls_async().await, 0);
    assert_eq!(token.calls_async().await, 2);
}

/// The replay keeps the request's own timeout: a replay that the API answers too slowly fails
/// with a timeout instead of waiting (real time: the timeout is reqwest's).
#[tokio::test]
async fn the_replay_keeps_the_request_timeout() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    api_mock(&server, Method::GET, "tok-1", 401, Duration::ZERO).await;
    let slow = api_mock(&server, Method::GET, "tok-2", 200, Duration::from_secs(5)).await;
    let client = client(middleware(&server, &clock));

    let started = std::time::Instant::now();
    let err = client
        .get(server.url(API_PATH))
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .expect_err("the replay times out");
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(slow.calls_async().await, 1);
}

/// A `GET` the caller's client redirected within the API's origin and that was then rejected
/// is replayed, once, to the URL it ended at, with a new token.
#[tokio::test]
async fn a_redirected_get_is_replayed_at_the_url_it_ended_at() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let moved = server
        .mock_async(|when, then| {
            when.method(Method::GET).path(API_PATH);
            then.status(302).header("location", "/api/v2");
        })
        .await;
    let final_url = |token: &'static str, status: u16| {
        server.mock_async(move |when, then| {
            when.method(Method::GET)
                .path("/api/v2")
                .header("authorization", format!("Bearer {token}"))
                .is_true(one_authorization_header);
            then.status(status);
        })
    };
    let rejected = final_url("tok-1", 401).await;
    let replayed = final_url("tok-2", 200).await;
    let client = client(middleware(&server, &clock));

    let res = client.get(server.url(API_PATH)).send().await.unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(
        moved.calls_async().await,
        1,
        "the replay goes to the final url"
    );
    assert_eq!(rejected.calls_async().await, 1);
    assert_eq!(replayed.calls_async().await, 1);
    assert_eq!(token.calls_async().await, 2);
}

/// A bodiless request other than `GET`/`HEAD` that was redirected before it was rejected is
/// not replayed (its replay cannot be sent to the URL it was first sent to); the 401 goes back
/// and the token is dropped, so the next request carries a new one.
#[tokio::test]
async fn a_redirected_delete_is_not_replayed() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let moved = server
        .mock_async(|when, then| {
            when.method(Method::DELETE).path(API_PATH);
            then.status(307).header("location", "/api/v2");
        })
        .await;
    let rejected = server
        .mock_async(|when, then| {
            when.method(Method::DELETE).path("/api/v2");
            then.status(401);
        })
        .await;
    let client = client(middleware(&server, &clock));

    let res = client.delete(server.url(API_PATH)).send().await.unwrap();

    assert_eq!(res.status(), 401);
    assert_eq!(moved.calls_async().await, 1);
    assert_eq!(rejected.calls_async().await, 1, "not replayed");
    assert_eq!(token.calls_async().await, 1);
    client.delete(server.url(API_PATH)).send().await.unwrap();
    assert_eq!(
        token.calls_async().await,
        2,
        "the rejected token was dropped"
    );
}

/// `TokenCache::invalidate` drops the token of the generation it names, whatever the
/// rejection cool-down, and nothing else: a stale generation is ignored, and the next request
/// fetches a new token.
#[tokio::test]
async fn invalidate_drops_only_the_named_generation() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let cache = middleware(&server, &clock).build().cache().clone();

    let first = cache.token().await.unwrap();
    let second = cache
        .reject(first.generation())
        .await
        .unwrap()
        .expect("a new token");
    cache.invalidate(first.generation());
    assert_eq!(
        cache.generation(),
        Some(second.generation()),
        "a stale generation"
    );

    cache.invalidate(second.generation());
    assert_eq!(cache.generation(), None, "dropped within the cool-down too");
    let third = cache.token().await.unwrap();
    assert_eq!(third.header_value(), "Bearer tok-3");
    assert_eq!(token.calls_async().await, 3);
}
