//! When tokens are fetched. Header attachment, refresh ahead and skew, single
//! flight, serve stale, and the many ways a token response can (not) say when it expires.
//!
//! Every test talks HTTP to a local httpmock server and moves time with a `ManualClock`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use httpmock::{Mock, MockServer};
use reqwest_middleware::ClientWithMiddleware;
use reqwest_partner_auth::cache::{
    RetryPolicy, BACKGROUND_RETRY_PAUSE, DEFAULT_REFRESH_AHEAD, DEFAULT_REFRESH_SKEW,
    REFRESH_AHEAD_LIMIT,
};
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::error::Malformed;
use reqwest_partner_auth::token::MAX_TOKEN_LIFETIME;
use reqwest_partner_auth::{
    AuthMiddleware, Clock, Error, FetchContext, Token, TokenCache, TokenSource,
};
use url::Url;

use common::{
    client, middleware, numbered_token_mock, one_authorization_header, token_mock_seq, TestSource,
};

const API_PATH: &str = "/api";
const HOUR: u64 = 3600;
/// Inside the refresh-ahead window of an hour's token with the default policy (from 3550 s,
/// `REFRESH_AHEAD_LIMIT` before the skew point, to 3570 s, `DEFAULT_REFRESH_SKEW` before
/// expiry).
const IN_REFRESH_AHEAD: u64 = 3555;

/// An API mock that answers `status` to `GET /api` carrying exactly one `Authorization`
/// header, equal to `Bearer <token>`.
async fn api_mock<'a>(server: &'a MockServer, token: &str, status: u16) -> Mock<'a> {
    let header = format!("Bearer {token}");
    server
        .mock_async(|when, then| {
            when.method(httpmock::Method::GET)
                .path(API_PATH)
                .header("authorization", header)
                .is_true(one_authorization_header);
            then.status(status).body("api answer");
        })
        .await
}

async fn get(client: &ClientWithMiddleware, server: &MockServer) -> reqwest::Response {
    client
        .get(server.url(API_PATH))
        .send()
        .await
        .expect("the api call succeeds")
}

async fn get_ok(client: &ClientWithMiddleware, server: &MockServer) {
    let res = get(client, server).await;
    assert_eq!(res.status(), 200, "no api mock matched the request");
}

/// Waits (real time, bounded) until `mock` was hit at least `n` times; returns its hits.
async fn wait_for_hits(mock: &Mock<'_>, n: usize) -> usize {
    for _ in 0..200 {
        let hits = mock.calls_async().await;
        if hits >= n {
            return hits;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    mock.calls_async().await
}

/// Waits (real time, bounded) until the cache hands out `Bearer <token>`.
async fn wait_for_cached<S: TokenSource>(cache: &TokenCache<S>, token: &str) {
    let expected = format!("Bearer {token}");
    for _ in 0..200 {
        let lease = cache.token().await.expect("a token");
        if lease.header_value() == expected.as_str() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the cache never switched to {token}");
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The middleware attaches exactly `Authorization: Bearer <token>`, and
/// 100 sequential requests cost exactly one token fetch.
#[tokio::test]
async fn attaches_bearer_header_and_fetches_once_for_100_requests() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let api = api_mock(&server, "tok-1", 200).await;
    let client = client(middleware(&server, &clock));

    for _ in 0..100 {
        let res = get(&client, &server).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.unwrap(), "api answer");
    }

    assert_eq!(api.calls_async().await, 100);
    assert_eq!(token.calls_async().await, 1);
}

/// A request made inside the skew window (the last
/// `DEFAULT_REFRESH_SKEW` before expiry) waits for a new token: it carries the new token, and
/// the second fetch happened before the API saw it.
#[tokio::test]
async fn request_in_default_skew_window_waits_for_the_new_token() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&fetches);
    let token = token_mock_seq(&server, Duration::ZERO, move |n| {
        counted.store(n, Ordering::SeqCst);
        common::token_body(&format!("tok-{n}"), HOUR)
    })
    .await;
    let old = api_mock(&server, "tok-1", 200).await;
    let seen_after_refetch = Arc::clone(&fetches);
    let new = server
        .mock_async(|when, then| {
            when.path(API_PATH)
                .header("authorization", "Bearer tok-2")
                .is_true(one_authorization_header)
                // Only matches if the token endpoint was called a second time already.
                .is_true(move |_| seen_after_refetch.load(Ordering::SeqCst) == 2);
            then.status(200);
        })
        .await;
    let client = client(middleware(&server, &clock));

    get_ok(&client, &server).await;
    // Inside [expiry - skew, expiry), without passing through the refresh-ahead window first.
    clock.advance(secs(HOUR) - DEFAULT_REFRESH_SKEW + secs(5));
    get_ok(&client, &server).await;

    assert_eq!(token.calls_async().await, 2);
    assert_eq!(old.calls_async().await, 1);
    assert_eq!(new.calls_async().await, 1);
}

/// The default skew is exactly `DEFAULT_REFRESH_SKEW` (30 s): one
/// second before it the current token is used, at it a new one is fetched first.
#[tokio::test]
async fn default_skew_boundary_is_thirty_seconds_before_expiry() {
    assert_eq!(DEFAULT_REFRESH_SKEW, secs(30));
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let old = api_mock(&server, "tok-1", 200).await;
    let new = api_mock(&server, "tok-2", 200).await;
    // Refresh-ahead off, so only the skew decides.
    let client = client(middleware(&server, &clock).refresh_ahead(0.0));

    get_ok(&client, &server).await;
    clock.advance(secs(HOUR - 30 - 1));
    get_ok(&client, &server).await;
    assert_eq!((token.calls_async().await, old.calls_async().await), (1, 2));

    clock.advance(secs(1));
    get_ok(&client, &server).await;
    assert_eq!(token.calls_async().await, 2);
    assert_eq!(old.calls_async().await, 2);
    assert_eq!(new.calls_async().await, 1);
}

/// `.refresh_skew(...)` moves the point from which requests wait for
/// a new token.
#[tokio::test]
async fn custom_refresh_skew_is_honoured() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let old = api_mock(&server, "tok-1", 200).await;
    let new = api_mock(&server, "tok-2", 200).await;
    let mw = middleware(&server, &clock)
        .refresh_skew(secs(300))
        .refresh_ahead(0.0);
    let client = client(mw);

    get_ok(&client, &server).await;
    clock.advance(secs(HOUR - 300 - 1));
    get_ok(&client, &server).await;
    assert_eq!((token.calls_async().await, old.calls_async().await), (1, 2));

    // 300 s before expiry: inside the custom skew, far outside the default one.
    clock.advance(secs(1));
    get_ok(&client, &server).await;
    assert_eq!(token.calls_async().await, 2);
    assert_eq!(old.calls_async().await, 2);
    assert_eq!(new.calls_async().await, 1);
}

/// Inside the refresh-ahead window (`DEFAULT_REFRESH_AHEAD` of the
/// lifetime before the skew point, at most `REFRESH_AHEAD_LIMIT`) a request still goes out with the current token while exactly one background refresh runs; once it
/// is done, the next request uses the new token.
#[tokio::test]
async fn refresh_ahead_uses_current_token_while_one_background_refresh_runs() {
    assert_eq!(DEFAULT_REFRESH_AHEAD, 0.25);
    assert_eq!(REFRESH_AHEAD_LIMIT, secs(20));
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    // Slow enough that a request waiting for the refresh would be noticed.
    let token = numbered_token_mock(&server, HOUR, Duration::from_millis(100)).await;
    let old = api_mock(&server, "tok-1", 200).await;
    let new = api_mock(&server, "tok-2", 200).await;
    let mw = middleware(&server, &clock).build();
    let cache = mw.cache().clone();
    let client = client(mw);

    get_ok(&client, &server).await;
    clock.advance(secs(IN_REFRESH_AHEAD));
    get_ok(&client, &server).await;
    assert_eq!(
        old.calls_async().await,
        2,
        "went out with the current token"
    );
    assert_eq!(new.calls_async().await, 0);

    assert_eq!(wait_for_hits(&token, 2).await, 2, "one background refresh");
    wait_for_cached(&cache, "tok-2").await;
    get_ok(&client, &server).await;

    assert_eq!(token.calls_async().await, 2);
    assert_eq!(old.calls_async().await, 2);
    assert_eq!(new.calls_async().await, 1);
}

/// Many requests inside the refresh-ahead window, concurrent and
/// sequential, start one background refresh, not one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_requests_in_refresh_ahead_window_start_one_refresh() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::from_millis(200)).await;
    let old = api_mock(&server, "tok-1", 200).await;
    let new = api_mock(&server, "tok-2", 200).await;
    let mw = middleware(&server, &clock).build();
    let cache = mw.cache().clone();
    let client = client(mw);

    get_ok(&client, &server).await;
    clock.advance(secs(IN_REFRESH_AHEAD));
    let concurrent = (0..20).map(|_| {
        let client = client.clone();
        let url = server.url(API_PATH);
        tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
    });
    for status in futures_util::future::join_all(concurrent).await {
        assert_eq!(status.unwrap(), 200);
    }
    for _ in 0..10 {
        get_ok(&client, &server).await;
    }
    wait_for_cached(&cache, "tok-2").await;
    get_ok(&client, &server).await;

    assert_eq!(
        token.calls_async().await,
        2,
        "one background refresh for 31 requests"
    );
    assert_eq!(old.calls_async().await + new.calls_async().await, 32);
    assert!(new.calls_async().await >= 1);
}

/// One background refresh per refresh-ahead window, also under a
/// storm of token reads racing with the refresh's completion (a read that saw the old token
/// just before the refresh finished must not start a second one). Drives the middleware's
/// own cache directly, as the hot path does, for many windows in a row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_ahead_storm_starts_exactly_one_refresh_per_window() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let mw = middleware(&server, &clock).build();
    let cache = mw.cache().clone();
    assert_eq!(cache.token().await.unwrap().generation(), 1);

    let windows: usize = 120;
    for window in 1..=windows {
        // Inside the refresh-ahead window of the current token, before its skew window.
        clock.advance(secs(IN_REFRESH_AHEAD));
        let expected = window as u64 + 1;
        // Readers keep reading until they see the refreshed token, so some of them read
        // right when the refresh completes. Bounded by real time, not by the clock.
        let readers = (0..16).map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                let deadline = std::time::Instant::now() + Duration::from_secs(2);
                while std::time::Instant::now() < deadline {
                    if cache.token().await.expect("a token").generation() >= expected {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            })
        });
        for reader in futures_util::future::join_all(readers).await {
            reader.unwrap();
        }
        assert_eq!(cache.token().await.unwrap().generation(), expected);
        assert_eq!(
            token.calls_async().await,
            window + 1,
            "window {window}: one refresh per refresh-ahead window"
        );
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(token.calls_async().await, windows + 1);
}

/// 200 concurrent first requests on a multi-threaded runtime cause
/// exactly one token fetch, and all of them carry that token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_share_one_fetch_multi_thread() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::from_millis(200)).await;
    let api = api_mock(&server, "tok-1", 200).await;
    let client = client(middleware(&server, &clock));

    let tasks = (0..200).map(|_| {
        let client = client.clone();
        let url = server.url(API_PATH);
        tokio::spawn(async move { client.get(url).send().await.unwrap().status() })
    });
    for status in futures_util::future::join_all(tasks).await {
        assert_eq!(status.unwrap(), 200);
    }

    assert_eq!(token.calls_async().await, 1);
    assert_eq!(api.calls_async().await, 200);
}

/// The same single flight on the current-thread runtime.
#[tokio::test]
async fn concurrent_first_requests_share_one_fetch_current_thread() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::from_millis(200)).await;
    let api = api_mock(&server, "tok-1", 200).await;
    let client = client(middleware(&server, &clock));

    let url = server.url(API_PATH);
    let requests = (0..200).map(|_| client.get(&url).send());
    for res in futures_util::future::join_all(requests).await {
        assert_eq!(res.unwrap().status(), 200);
    }

    assert_eq!(token.calls_async().await, 1);
    assert_eq!(api.calls_async().await, 200);
}

/// A caller dropped (timed out) while the fetch is in flight does not
/// cancel it: the next request reuses that same fetch.
#[tokio::test]
async fn dropped_caller_does_not_cancel_the_shared_fetch() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::from_millis(300)).await;
    let api = api_mock(&server, "tok-1", 200).await;
    let client = client(middleware(&server, &clock));

    let first = tokio::time::timeout(
        Duration::from_millis(50),
        client.get(server.url(API_PATH)).send(),
    )
    .await;
    assert!(
        first.is_err(),
        "the first caller gave up while the fetch ran"
    );
    assert_eq!(token.calls_async().await, 1, "the fetch is in flight");

    get_ok(&client, &server).await;
    assert_eq!(
        token.calls_async().await,
        1,
        "the second request joined the first fetch"
    );
    assert_eq!(api.calls_async().await, 1);
}

/// Wraps a source and records when a fetch has returned.
struct Observed<S> {
    inner: S,
    finished: Arc<AtomicBool>,
}

#[reqwest_partner_auth::async_trait]
impl<S: TokenSource> TokenSource for Observed<S> {
    async fn fetch(&self, cx: &FetchContext) -> Result<Token, Error> {
        let token = self.inner.fetch(cx).await;
        self.finished.store(true, Ordering::SeqCst);
        token
    }

    fn api_origins(&self) -> Vec<Url> {
        self.inner.api_origins()
    }
}

/// The fetch runs in its own task: it completes even when its only
/// caller was dropped and nobody else polls it, and its token is then cached.
#[tokio::test]
async fn fetch_completes_after_its_only_caller_is_dropped() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::from_millis(300)).await;
    let api = api_mock(&server, "tok-1", 200).await;
    let finished = Arc::new(AtomicBool::new(false));
    let source = Observed {
        inner: TestSource::new(&server),
        finished: Arc::clone(&finished),
    };
    let client = client(AuthMiddleware::builder(source).clock(Arc::new(clock.clone())));

    let first = tokio::time::timeout(
        Duration::from_millis(50),
        client.get(server.url(API_PATH)).send(),
    )
    .await;
    assert!(
        first.is_err(),
        "the first caller gave up while the fetch ran"
    );

    for _ in 0..200 {
        if finished.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        finished.load(Ordering::SeqCst),
        "the fetch was cancelled with its caller"
    );

    get_ok(&client, &server).await;
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(api.calls_async().await, 1);
}

/// When the token endpoint fails, the cached token keeps being used
/// through the refresh-ahead and the skew windows; past its expiry the request fails with
/// the endpoint's error.
#[tokio::test]
async fn serves_stale_token_while_refresh_fails_until_expiry() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let old = api_mock(&server, "tok-1", 200).await;
    let client = client(middleware(&server, &clock));

    get_ok(&client, &server).await;
    assert_eq!(token.calls_async().await, 1);

    token.delete_async().await;
    let failing = server
        .mock_async(|when, then| {
            when.method(httpmock::Method::POST).path(common::TOKEN_PATH);
            then.status(500).body("down for maintenance");
        })
        .await;

    // Refresh-ahead window: the background refresh fails (3 attempts), the token is served.
    clock.advance(secs(IN_REFRESH_AHEAD));
    get_ok(&client, &server).await;
    assert_eq!(old.calls_async().await, 2);
    assert_eq!(wait_for_hits(&failing, 3).await, 3);

    // Skew window: a request waits for a refresh that fails, then uses the old token. The
    // background refresh may still be finishing its third attempt (its response seen by the
    // server, not yet by the cache); a request that joins it is also served the old token.
    // Once it is over, a skew-window request starts a refresh of its own.
    clock.advance(secs(HOUR - 20 - IN_REFRESH_AHEAD));
    let mut served = 2;
    for _ in 0..50 {
        get_ok(&client, &server).await;
        served += 1;
        assert_eq!(old.calls_async().await, served);
        if failing.calls_async().await > 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        failing.calls_async().await > 3,
        "the skew window tried to refresh"
    );

    // Past expiry there is nothing left to serve.
    clock.advance(secs(25));
    let err = client
        .get(server.url(API_PATH))
        .send()
        .await
        .expect_err("no usable token");
    match Error::from_middleware(&err) {
        Some(Error::TokenEndpoint { status, .. }) => assert_eq!(status.as_u16(), 500),
        other => panic!("expected a token endpoint error, got {other:?} from {err:?}"),
    }
    assert_eq!(
        old.calls_async().await,
        served,
        "nothing was sent with the expired token"
    );
}

/// Without `expires_in` the JWT `exp` claim is the expiry; the token
/// is replaced in the skew window of that `exp`.
#[tokio::test]
async fn jwt_exp_claim_is_the_expiry_when_expires_in_is_absent() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let first = common::jwt_expiring_in(clock.system_now(), 600);
    // The second token is minted when it is fetched, 575 s later.
    let second = common::jwt_expiring_in(clock.system_now() + secs(575), 600);
    let bodies = [first.clone(), second.clone()];
    let token = token_mock_seq(&server, Duration::ZERO, move |n| {
        format!(
            r#"{{"access_token":"{}","token_type":"Bearer"}}"#,
            bodies[(n - 1).min(1)]
        )
    })
    .await;
    let old = api_mock(&server, &first, 200).await;
    let new = api_mock(&server, &second, 200).await;
    let client = client(middleware(&server, &clock));

    get_ok(&client, &server).await;
    clock.advance(secs(400)); // before refresh-ahead (480 s) and skew (570 s)
    get_ok(&client, &server).await;
    assert_eq!((token.calls_async().await, old.calls_async().await), (1, 2));

    clock.advance(secs(175)); // 575 s: inside the skew window of exp
    get_ok(&client, &server).await;
    assert_eq!(token.calls_async().await, 2);
    assert_eq!(old.calls_async().await, 2);
    assert_eq!(new.calls_async().await, 1);
}

/// A token that is not a JWT and has no `expires_in` has an unknown
/// expiry: it is kept however much time passes, until the API rejects it.
#[tokio::test]
async fn opaque_token_without_expiry_is_kept_until_a_401() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_mock_seq(&server, Duration::ZERO, |n| {
        format!(r#"{{"access_token":"opaque-{n}","token_type":"Bearer"}}"#)
    })
    .await;
    let accepted = api_mock(&server, "opaque-1", 200).await;
    let client = client(middleware(&server, &clock));

    get_ok(&client, &server).await;
    clock.advance(secs(30 * 24 * HOUR));
    get_ok(&client, &server).await;
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(accepted.calls_async().await, 2);

    accepted.delete_async().await;
    let rejected = api_mock(&server, "opaque-1", 401).await;
    let new = api_mock(&server, "opaque-2", 200).await;
    get_ok(&client, &server).await;
    assert_eq!(rejected.calls_async().await, 1);
    assert_eq!(new.calls_async().await, 1);
    assert_eq!(token.calls_async().await, 2);
}

/// `expires_in` of 0 or below is treated as unknown: the token is
/// used, with no refresh loop (10 requests, even a day apart, cost one fetch).
#[tokio::test]
async fn zero_or_negative_expires_in_means_unknown_expiry() {
    for expires_in in ["0", "-60"] {
        let server = MockServer::start_async().await;
        let clock = ManualClock::new();
        let token = token_mock_seq(&server, Duration::ZERO, move |n| {
            format!(
                r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":{expires_in}}}"#
            )
        })
        .await;
        let api = api_mock(&server, "tok-1", 200).await;
        let client = client(middleware(&server, &clock));

        for _ in 0..10 {
            get_ok(&client, &server).await;
        }
        clock.advance(MAX_TOKEN_LIFETIME * 2);
        get_ok(&client, &server).await;

        assert_eq!(token.calls_async().await, 1, "expires_in {expires_in}");
        assert_eq!(api.calls_async().await, 11, "expires_in {expires_in}");
    }
}

/// A numeric string `expires_in` ("600") is honoured.
#[tokio::test]
async fn numeric_string_expires_in_is_honoured() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_mock_seq(&server, Duration::ZERO, |n| {
        format!(r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":"600"}}"#)
    })
    .await;
    let old = api_mock(&server, "tok-1", 200).await;
    let new = api_mock(&server, "tok-2", 200).await;
    let client = client(middleware(&server, &clock));

    get_ok(&client, &server).await;
    clock.advance(secs(400));
    get_ok(&client, &server).await;
    assert_eq!((token.calls_async().await, old.calls_async().await), (1, 2));

    clock.advance(secs(171)); // 571 s: inside the 30 s skew of a 600 s token
    get_ok(&client, &server).await;
    assert_eq!(token.calls_async().await, 2);
    assert_eq!(new.calls_async().await, 1);
}

/// A non-numeric string `expires_in` is a malformed response
/// (`Malformed::InvalidField`), not retried, and nothing reaches the API.
#[tokio::test]
async fn non_numeric_expires_in_is_a_malformed_response() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_mock_seq(&server, Duration::ZERO, |_| {
        r#"{"access_token":"tok","token_type":"Bearer","expires_in":"an hour"}"#.to_owned()
    })
    .await;
    let api = server
        .mock_async(|when, then| {
            when.path(API_PATH);
            then.status(200);
        })
        .await;
    let client = client(middleware(&server, &clock));

    let err = client
        .get(server.url(API_PATH))
        .send()
        .await
        .expect_err("malformed token response");
    match Error::from_middleware(&err) {
        Some(Error::MalformedResponse(Malformed::InvalidField { field, .. })) => {
            assert_eq!(field, "expires_in");
        }
        other => panic!("expected Malformed::InvalidField, got {other:?}"),
    }
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(api.calls_async().await, 0);
}

/// An absurd `expires_in` (1e12 s) is clamped to
/// `MAX_TOKEN_LIFETIME`: after that long a new token is fetched.
#[tokio::test]
async fn absurd_expires_in_is_clamped_to_max_lifetime() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, 1_000_000_000_000, Duration::ZERO).await;
    let old = api_mock(&server, "tok-1", 200).await;
    let new = api_mock(&server, "tok-2", 200).await;
    let client = client(middleware(&server, &clock));

    get_ok(&client, &server).await;
    clock.advance(MAX_TOKEN_LIFETIME / 2);
    get_ok(&client, &server).await;
    assert_eq!((token.calls_async().await, old.calls_async().await), (1, 2));

    clock.advance(MAX_TOKEN_LIFETIME / 2);
    get_ok(&client, &server).await;
    assert_eq!(token.calls_async().await, 2);
    assert_eq!(new.calls_async().await, 1);
}

/// A lifetime shorter than the skew (10 s with a 30 s skew) does not
/// make every request refetch: 10 requests at one instant cost one fetch; once time passes
/// the token is replaced.
#[tokio::test]
async fn lifetime_shorter_than_skew_does_not_loop() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, 10, Duration::ZERO).await;
    let old = api_mock(&server, "tok-1", 200).await;
    let new = api_mock(&server, "tok-2", 200).await;
    let client = client(middleware(&server, &clock).refresh_skew(secs(30)));

    for _ in 0..10 {
        get_ok(&client, &server).await;
    }
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(old.calls_async().await, 10);

    clock.advance(secs(10));
    for _ in 0..10 {
        get_ok(&client, &server).await;
    }
    assert_eq!(token.calls_async().await, 2);
    assert_eq!(new.calls_async().await, 10);
}

/// A JWT whose `exp` is already past when it arrives (the partner's
/// clock and ours disagree) is used until a 401, not fetched again on every request.
#[tokio::test]
async fn jwt_expired_on_arrival_is_used_until_a_401_without_a_fetch_loop() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let expired = common::jwt_with_claims(r#"{"sub":"x","exp":1637242869}"#);
    let fresh = common::jwt_expiring_in(clock.system_now(), 3600);
    let (e, f) = (expired.clone(), fresh.clone());
    let token = token_mock_seq(&server, Duration::ZERO, move |n| {
        let t = if n == 1 { &e } else { &f };
        format!(r#"{{"access_token":"{t}","token_type":"Bearer"}}"#)
    })
    .await;
    let accepted = api_mock(&server, &expired, 200).await;
    let client = client(middleware(&server, &clock));

    for _ in 0..10 {
        get_ok(&client, &server).await;
    }
    assert_eq!(token.calls_async().await, 1, "no fetch per request");
    assert_eq!(accepted.calls_async().await, 10);

    accepted.delete_async().await;
    let rejected = api_mock(&server, &expired, 401).await;
    let new = api_mock(&server, &fresh, 200).await;
    get_ok(&client, &server).await;
    assert_eq!(rejected.calls_async().await, 1);
    assert_eq!(new.calls_async().await, 1);
    assert_eq!(token.calls_async().await, 2);
}

/// `AuthMiddleware::with_cache`: two clients built over clones of one configured
/// `TokenCache` share its token: one fetch for both, and the cache's own settings (clock)
/// apply.
#[tokio::test]
async fn clients_over_one_cache_share_the_token() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, 3600, Duration::ZERO).await;
    let api = api_mock(&server, "tok-1", 200).await;
    let cache = TokenCache::builder(TestSource::new(&server))
        .clock(Arc::new(clock.clone()))
        .build();
    let first = client(AuthMiddleware::with_cache(cache.clone()));
    let second = client(AuthMiddleware::with_cache(cache.clone()));

    get_ok(&first, &server).await;
    get_ok(&second, &server).await;
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(api.calls_async().await, 2);
    assert_eq!(cache.generation(), Some(1));

    // The manual clock given to the cache decides expiry: inside the skew both refresh once.
    clock.advance(secs(3575));
    let new = api_mock(&server, "tok-2", 200).await;
    get_ok(&second, &server).await;
    get_ok(&first, &server).await;
    assert_eq!(token.calls_async().await, 2);
    assert_eq!(new.calls_async().await, 2);
}

/// Every clone of a built `TokenCache` shares both its token and its policy: a clone made
/// before the first fetch uses the token the original fetched, and once the clock moves into
/// the cache's custom skew window (far outside the default one) the clone fetches exactly as
/// the original would, on the cache's manual clock; the original then uses that new token.
#[tokio::test]
async fn clones_of_a_built_cache_share_the_token_and_the_policy() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let cache = TokenCache::builder(TestSource::new(&server))
        .refresh_skew(secs(300))
        .refresh_ahead(0.0)
        .clock(Arc::new(clock.clone()))
        .build();
    let clone = cache.clone();

    let original = cache.token().await.unwrap();
    assert_eq!(original.header_value(), "Bearer tok-1");
    let shared = clone.token().await.unwrap();
    assert_eq!(
        shared.header_value(),
        "Bearer tok-1",
        "the clone sees the token"
    );
    assert_eq!(token.calls_async().await, 1);

    // One second before the custom skew point: the token is still used.
    clock.advance(secs(HOUR - 300 - 1));
    assert_eq!(clone.token().await.unwrap().generation(), 1);
    assert_eq!(token.calls_async().await, 1);

    // 300 s before expiry: inside the custom skew, outside the default skew and refresh-ahead
    // windows. The clone waits for a new token, as the original would.
    clock.advance(secs(1));
    let renewed = clone.token().await.unwrap();
    assert_eq!(renewed.header_value(), "Bearer tok-2");
    assert_eq!(renewed.generation(), 2);
    assert_eq!(
        token.calls_async().await,
        2,
        "the clone applied the custom skew"
    );

    // The original holds the clone's new token: no fetch of its own.
    assert_eq!(cache.generation(), Some(2));
    assert_eq!(cache.token().await.unwrap().header_value(), "Bearer tok-2");
    assert_eq!(token.calls_async().await, 2);
}

/// A custom `TokenSource` that panics fails that fetch with `Error::SourcePanicked`, and the
/// next request fetches again (the dead fetch is not joined forever).
#[tokio::test]
async fn a_panicking_source_fails_one_fetch_not_all_later_ones() {
    struct PanicsOnce {
        calls: AtomicUsize,
    }

    #[reqwest_partner_auth::async_trait]
    impl TokenSource for PanicsOnce {
        async fn fetch(&self, _cx: &FetchContext) -> Result<Token, Error> {
            if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("bug in a custom source");
            }
            Token::bearer("tok-after-panic")
        }
    }

    let cache = TokenCache::new(PanicsOnce {
        calls: AtomicUsize::new(0),
    });
    let first = cache.token().await;
    assert!(matches!(first, Err(Error::SourcePanicked)), "{first:?}");
    let second = cache.token().await.expect("the next fetch runs again");
    assert_eq!(second.header_value(), "Bearer tok-after-panic");
    assert_eq!(cache.source().calls.load(Ordering::SeqCst), 2);
}

/// `BACKGROUND_RETRY_PAUSE`: after a background refresh fails, requests in the
/// refresh-ahead window do not each start another fetch; the next background attempt comes
/// once the pause has passed on the cache's clock.
#[tokio::test]
async fn failed_background_refresh_pauses_further_attempts() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    let old = api_mock(&server, "tok-1", 200).await;
    let client = client(middleware(&server, &clock).retry_policy(RetryPolicy::none()));
    get_ok(&client, &server).await;
    token.delete_async().await;
    let failing = server
        .mock_async(|when, then| {
            when.method(httpmock::Method::POST).path(common::TOKEN_PATH);
            then.status(500);
        })
        .await;

    clock.advance(secs(IN_REFRESH_AHEAD));
    get_ok(&client, &server).await;
    assert_eq!(wait_for_hits(&failing, 1).await, 1);
    // More requests, each after the previous fetch had time to finish: without the pause
    // every one of them would start a new fetch.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        get_ok(&client, &server).await;
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(failing.calls_async().await, 1, "paused after the failure");
    assert_eq!(old.calls_async().await, 7);

    clock.advance(BACKGROUND_RETRY_PAUSE);
    get_ok(&client, &server).await;
    assert_eq!(
        wait_for_hits(&failing, 2).await,
        2,
        "tried again after the pause"
    );
}
