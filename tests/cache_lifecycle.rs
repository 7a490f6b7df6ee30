//! The life of a token fetch off the happy path: fetches whose runtime goes away, fetches that
//! never return, and token responses whose lifetimes would make a naive cache fetch on every
//! request (tiny lifetimes, a token re-issued until it expires, short-lived tokens).
//!
//! Runtimes are built by hand where a test needs one to disappear. Expiry moves with a
//! `ManualClock`; the fetch deadline is real time, so the tests of a fetch that never returns
//! use a source of their own (no socket) on tokio's paused clock.

mod common;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use httpmock::{Method, Mock, MockServer};
use reqwest_partner_auth::cache::DEFAULT_FETCH_DEADLINE;
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::{
    async_trait, Clock, Error, FetchContext, Token, TokenCache, TokenSource,
};

use common::{jwt_expiring_in, retries, token_body, TestSource, TOKEN_PATH};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A token endpoint answering `tok-1`, `tok-2`, ... living `expires_in` seconds.
fn numbered_tokens(server: &MockServer, expires_in: u64) -> Mock<'_> {
    let calls = AtomicUsize::new(0);
    server.mock(|when, then| {
        when.method(Method::POST).path(TOKEN_PATH);
        then.respond_with(move |_| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            common::json_response(200, &token_body(&format!("tok-{n}"), expires_in))
        });
    })
}

fn cache_on(server: &MockServer, clock: &ManualClock) -> TokenCache<TestSource> {
    TokenCache::builder(TestSource::new(server))
        .retry_policy(retries())
        .clock(Arc::new(clock.clone()))
        .build()
}

/// A first fetch spawned on a runtime that is dropped before the fetch ever runs (a runtime
/// per job, a client shared by several `#[tokio::test]`s) is gone with it: a later call on
/// another runtime starts a new fetch and gets a token.
#[test]
fn a_first_fetch_whose_runtime_is_dropped_before_it_runs_does_not_wedge_the_cache() {
    let server = MockServer::start();
    let tokens = numbered_tokens(&server, 3600);
    let cache = cache_on(&server, &ManualClock::new());

    let job = runtime();
    job.block_on(async { assert!(cache.token().now_or_never().is_none()) });
    drop(job);
    assert_eq!(tokens.calls(), 0, "the fetch never ran");

    let lease = runtime().block_on(cache.token()).expect("a new fetch");
    assert_eq!(lease.header_value(), "Bearer tok-1");
    assert_eq!(tokens.calls(), 1);
}

/// A background refresh spawned on a runtime that is dropped before it runs does not leave
/// the cache dead: once the token must be replaced, a call on a new runtime fetches it.
#[test]
fn a_background_refresh_whose_runtime_is_dropped_does_not_wedge_the_cache() {
    let server = MockServer::start();
    let tokens = numbered_tokens(&server, 100);
    let clock = ManualClock::new();
    let cache = cache_on(&server, &clock);

    runtime().block_on(cache.token()).unwrap();
    clock.advance(secs(60)); // inside the refresh-ahead window of a 100 s token
    let lease = runtime().block_on(cache.token()).unwrap();
    assert_eq!(
        lease.header_value(),
        "Bearer tok-1",
        "served while refreshing"
    );
    assert_eq!(tokens.calls(), 1, "the background refresh never ran");

    clock.advance(secs(20)); // past the skew point: callers must wait for a new token
    let lease = runtime().block_on(cache.token()).expect("a new fetch");
    assert_eq!(lease.header_value(), "Bearer tok-2");
    assert_eq!(tokens.calls(), 2);
}

/// A caller that joined a fetch which is then cancelled (its runtime shut down) gets a token
/// from a fetch of its own, not a "source panicked" error.
#[test]
fn a_caller_joined_to_a_cancelled_fetch_starts_a_new_one() {
    let server = MockServer::start();
    let tokens = numbered_tokens(&server, 3600);
    let cache = cache_on(&server, &ManualClock::new());
    let (job, other) = (runtime(), runtime());

    job.block_on(async { assert!(cache.token().now_or_never().is_none()) });
    let mut waiter = Box::pin(cache.token());
    other.block_on(async { assert!(futures_util::poll!(&mut waiter).is_pending()) });
    drop(job);

    let lease = other.block_on(waiter).expect("a token, not an error");
    assert_eq!(lease.header_value(), "Bearer tok-1");
    assert_eq!(tokens.calls(), 1);
}

/// A source of our own: the fetches whose number is in `hang` never return; the others
/// return `tok-<n>` living `lifetime`.
#[derive(Debug)]
struct Scripted {
    calls: Arc<AtomicUsize>,
    hang: &'static [usize],
    lifetime: Duration,
}

impl Scripted {
    fn new(hang: &'static [usize], lifetime: Duration) -> (Self, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let source = Self {
            calls: Arc::clone(&calls),
            hang,
            lifetime,
        };
        (source, calls)
    }
}

#[async_trait]
impl TokenSource for Scripted {
    async fn fetch(&self, _cx: &FetchContext) -> Result<Token, Error> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.hang.contains(&n) {
            std::future::pending::<()>().await;
        }
        Ok(Token::bearer(format!("tok-{n}"))?.expires_in(self.lifetime))
    }
}

/// Fails the test instead of hanging it (on the paused clock this costs no real time).
async fn within<T>(limit: Duration, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .expect("the call returned in time")
}

/// A fetch that never returns (a custom source, a frozen store lock) fails its callers with
/// a typed timeout at the fetch deadline, and the next caller starts a fresh fetch.
#[tokio::test(start_paused = true)]
async fn a_fetch_that_never_returns_times_out_and_the_next_caller_starts_afresh() {
    let (source, calls) = Scripted::new(&[1], secs(3600));
    let cache = TokenCache::builder(source).fetch_deadline(secs(5)).build();

    let started = tokio::time::Instant::now();
    let err = within(secs(60), cache.token()).await.unwrap_err();
    assert!(
        matches!(err, Error::FetchTimeout { deadline } if deadline == secs(5)),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(started.elapsed(), secs(5));

    let lease = within(secs(60), cache.token()).await.unwrap();
    assert_eq!(lease.header_value(), "Bearer tok-2");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// The default fetch deadline applies without any configuration.
#[tokio::test(start_paused = true)]
async fn every_fetch_has_a_deadline_by_default() {
    let (source, _calls) = Scripted::new(&[1], secs(3600));
    let cache = TokenCache::new(source);
    let started = tokio::time::Instant::now();
    let err = within(DEFAULT_FETCH_DEADLINE * 2, cache.token())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::FetchTimeout { .. }), "{err:?}");
    assert_eq!(started.elapsed(), DEFAULT_FETCH_DEADLINE);
}

/// While the token has not expired, a refresh that hangs past the deadline serves the current
/// token (serve stale); past its expiry the next caller starts a new fetch.
#[tokio::test(start_paused = true)]
async fn a_hung_refresh_serves_the_still_valid_token() {
    let (source, calls) = Scripted::new(&[2], secs(100));
    let clock = ManualClock::new();
    let cache = TokenCache::builder(source)
        .fetch_deadline(secs(5))
        .clock(Arc::new(clock.clone()))
        .build();

    assert_eq!(cache.token().await.unwrap().header_value(), "Bearer tok-1");
    clock.advance(secs(80)); // past the skew point, before expiry: callers wait
    let lease = within(secs(60), cache.token()).await.unwrap();
    assert_eq!(lease.header_value(), "Bearer tok-1", "served stale");

    clock.advance(secs(30)); // expired
    let lease = within(secs(60), cache.token()).await.unwrap();
    assert_eq!(lease.header_value(), "Bearer tok-3");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// `clear()` recovers a cache whose fetch hangs: it abandons that fetch, and the next caller
/// starts a new one at once.
#[tokio::test(start_paused = true)]
async fn clear_abandons_a_hung_fetch() {
    let (source, calls) = Scripted::new(&[1], secs(3600));
    let cache = TokenCache::new(source);
    let stuck = tokio::spawn({
        let cache = cache.clone();
        async move { cache.token().await }
    });
    while calls.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }

    cache.clear();
    let started = tokio::time::Instant::now();
    let lease = within(secs(1), cache.token()).await.unwrap();
    assert_eq!(lease.header_value(), "Bearer tok-2");
    assert_eq!(started.elapsed(), Duration::ZERO);
    stuck.abort();
}

/// A tiny positive `expires_in` is no reason to fetch on every request: lifetimes under
/// `MIN_TOKEN_LIFETIME` count as unknown, and ten requests cost one fetch.
#[tokio::test]
async fn a_tiny_positive_expires_in_does_not_fetch_per_request() {
    for expires_in in ["1e-12", "0.0001", "0.5"] {
        let server = MockServer::start_async().await;
        let body = format!(r#"{{"access_token":"tok","expires_in":{expires_in}}}"#);
        let tokens = common::fixed_token_mock(&server, 200, "application/json", body).await;
        let cache = cache_on(&server, &ManualClock::new());
        for _ in 0..10 {
            cache.token().await.unwrap();
        }
        assert_eq!(tokens.calls_async().await, 1, "expires_in {expires_in}");
    }
}

/// Waits (real time, bounded) until the cache holds a token of generation `n`.
async fn wait_for_generation<S: TokenSource>(cache: &TokenCache<S>, n: u64) {
    for _ in 0..400 {
        if cache.generation() >= Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the cache never reached generation {n}");
}

/// Counts the fetches a source has started (at their first poll), so a test can wait for a
/// background refresh that was started but has not reached the server yet.
#[derive(Debug)]
struct Counting<S> {
    inner: S,
    started: Arc<AtomicUsize>,
}

#[async_trait]
impl<S: TokenSource> TokenSource for Counting<S> {
    async fn fetch(&self, cx: &FetchContext) -> Result<Token, Error> {
        self.started.fetch_add(1, Ordering::SeqCst);
        self.inner.fetch(cx).await
    }

    fn api_origins(&self) -> Vec<url::Url> {
        self.inner.api_origins()
    }
}

/// A partner that hands back its current token until it expires (a channel manager: "the
/// token associated with that channel user", a JWT with a fixed `exp`) is asked once ahead of
/// expiry; getting the same token back, the cache uses it until its expiry without asking
/// again; the first request after the expiry fetches once.
#[tokio::test]
async fn a_reissued_token_is_not_fetched_again_before_it_expires() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let jwt = jwt_expiring_in(clock.system_now(), 600);
    let tokens = common::fixed_token_mock(&server, 200, "text/plain", jwt.clone()).await;
    let started = Arc::new(AtomicUsize::new(0));
    let source = Counting {
        inner: TestSource::new(&server)
            .map(|s| s.response(reqwest_partner_auth::engine::ResponseShape::PlainText)),
        started: Arc::clone(&started),
    };
    let cache = TokenCache::builder(source)
        .retry_policy(retries())
        .clock(Arc::new(clock.clone()))
        .build();

    let expected = format!("Bearer {jwt}");
    for step in 0..120 {
        let lease = cache.token().await.unwrap();
        assert_eq!(lease.header_value(), expected.as_str(), "at {} s", step * 5);
        // A background refresh this request started ends before time moves on.
        tokio::task::yield_now().await;
        wait_for_generation(&cache, started.load(Ordering::SeqCst) as u64).await;
        clock.advance(secs(5));
    }
    assert_eq!(tokens.calls_async().await, 2, "one refresh ahead of expiry");

    cache.token().await.unwrap(); // 600 s: expired
    assert_eq!(tokens.calls_async().await, 3, "one fetch after the expiry");
    clock.advance(secs(60));
    cache.token().await.unwrap();
    assert_eq!(
        tokens.calls_async().await,
        3,
        "an expired re-issue is used until a 401"
    );
}

/// A partner that answers a refresh with another token that lives no longer than the one
/// held (its expiry is that of the session, say) is not asked again before that expiry:
/// the new token is used at once, with no further refresh, and no request waits; the first
/// request after the expiry fetches once.
#[tokio::test]
async fn a_new_token_that_lives_no_longer_is_not_refreshed_before_it_expires() {
    const EXPIRY: u64 = 600;
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let start = clock.now();
    // The n-th answer: `tok-n`, expiring at EXPIRY s on the test's clock (later: an hour).
    let calls = AtomicUsize::new(0);
    let tokens = server.mock(|when, then| {
        when.method(Method::POST).path(TOKEN_PATH);
        let clock = clock.clone();
        then.respond_with(move |_| {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            let elapsed = (clock.now() - start).as_secs();
            let expires_in = EXPIRY
                .checked_sub(elapsed)
                .filter(|&s| s > 0)
                .unwrap_or(3600);
            common::json_response(200, &token_body(&format!("tok-{n}"), expires_in))
        });
    });
    let started = Arc::new(AtomicUsize::new(0));
    let source = Counting {
        inner: TestSource::new(&server),
        started: Arc::clone(&started),
    };
    let cache = TokenCache::builder(source)
        .retry_policy(retries())
        .clock(Arc::new(clock.clone()))
        .build();

    cache.token().await.unwrap();
    let mut seen = Vec::new();
    for step in 0..(EXPIRY / 5) {
        let lease = cache
            .token()
            .now_or_never()
            .unwrap_or_else(|| panic!("a request waited at {} s", step * 5))
            .unwrap();
        let value = lease.header_value().to_str().unwrap().to_owned();
        if seen.last() != Some(&value) {
            seen.push(value);
        }
        tokio::task::yield_now().await;
        wait_for_generation(&cache, started.load(Ordering::SeqCst) as u64).await;
        clock.advance(secs(5));
    }
    assert_eq!(seen, ["Bearer tok-1", "Bearer tok-2"]);
    assert_eq!(tokens.calls_async().await, 2, "one refresh ahead of expiry");

    let lease = cache.token().await.unwrap(); // EXPIRY: expired
    assert_eq!(lease.header_value(), "Bearer tok-3");
    assert_eq!(tokens.calls_async().await, 3, "one fetch after the expiry");
}

/// Drives `cache` over `total` of manual time in steps of `step`, with one request per step,
/// and checks that no request ever waited for the token endpoint (each resolved at its first
/// poll); a background refresh a request started is let finish before time moves on. Returns
/// the number of fetches.
async fn steady_state_fetches(
    lifetime: Duration,
    step: Duration,
    total: Duration,
) -> (usize, usize) {
    let (source, calls) = Scripted::new(&[], lifetime);
    let clock = ManualClock::new();
    let cache = TokenCache::builder(source)
        .clock(Arc::new(clock.clone()))
        .build();
    cache.token().await.unwrap();
    let mut waited = 0;
    let mut elapsed = Duration::ZERO;
    while elapsed < total {
        clock.advance(step);
        elapsed += step;
        match cache.token().now_or_never() {
            Some(lease) => drop(lease.unwrap()),
            None => {
                waited += 1;
                cache.token().await.unwrap();
            }
        }
        // Let a background refresh (an in-memory source: a few polls) finish.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            cache.generation(),
            Some(calls.load(Ordering::SeqCst) as u64),
            "a refresh was still running"
        );
    }
    (calls.load(Ordering::SeqCst), waited)
}

/// With default settings a token living a few seconds is refreshed in the background before
/// anyone must wait: over five lifetimes of a 4 s token, no request waits.
#[tokio::test]
async fn short_lived_tokens_are_refreshed_before_anyone_waits() {
    for lifetime in [secs(4), secs(10), secs(60), secs(150)] {
        let step = lifetime / 16;
        let (fetches, waited) = steady_state_fetches(lifetime, step, lifetime * 5).await;
        assert_eq!(waited, 0, "lifetime {lifetime:?}: {waited} requests waited");
        assert!(fetches >= 6, "lifetime {lifetime:?}: {fetches} fetches");
    }
}

/// For lifetimes of ten minutes or more the token endpoint sees at most 1.1 fetches per
/// lifetime, and still nobody waits.
#[tokio::test]
async fn long_lived_tokens_cost_at_most_1_1_fetches_per_lifetime() {
    for lifetime in [secs(600), secs(3600)] {
        let (fetches, waited) = steady_state_fetches(lifetime, secs(5), lifetime * 10).await;
        assert_eq!(waited, 0, "lifetime {lifetime:?}");
        assert!(
            fetches as f64 <= 1.1 * 10.0 + 1.0,
            "lifetime {lifetime:?}: {fetches} fetches in ten lifetimes"
        );
    }
}

/// The same through the layer, over HTTP, with default settings: 4 s tokens from a real token
/// endpoint and a request every 250 ms for five lifetimes. Every request finds a usable token
/// without waiting and carries the token the cache holds; the token endpoint is asked exactly
/// once per background refresh (at half the lifetime: 2 s, 4 s, ... 20 s), never more.
#[tokio::test]
async fn short_lived_tokens_are_refreshed_in_the_background_through_the_layer() {
    let server = MockServer::start_async().await;
    let tokens = numbered_tokens(&server, 4);
    let api = common::echo_mock(&server, |when| when.method(Method::GET).path("/api")).await;
    let clock = ManualClock::new();
    let started = Arc::new(AtomicUsize::new(0));
    let source = Counting {
        inner: TestSource::new(&server),
        started: Arc::clone(&started),
    };
    let layer = reqwest_partner_auth::AuthMiddleware::builder(source)
        .clock(Arc::new(clock.clone()))
        .build();
    let cache = layer.cache().clone();
    let client = common::client(layer);
    cache.token().await.unwrap();

    let step = Duration::from_millis(250);
    for i in 0..=80 {
        let waited = cache.token().now_or_never().is_none();
        assert!(!waited, "a request waited at {:?}", step * i);
        tokio::task::yield_now().await;
        wait_for_generation(&cache, started.load(Ordering::SeqCst) as u64).await;
        let expected = format!("Bearer tok-{}", cache.generation().unwrap());
        let res = client.get(server.url("/api")).send().await.unwrap();
        assert_eq!(res.text().await.unwrap(), expected, "at {:?}", step * i);
        clock.advance(step);
    }
    assert_eq!(tokens.calls_async().await, 11);
    assert_eq!(api.calls_async().await, 81);
}
