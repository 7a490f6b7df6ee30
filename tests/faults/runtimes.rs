//! A runtime dropped under a flight: a cache or middleware shared by job runtimes.

use super::*;

/// A runtime per job, as programs that build one per task (and `#[tokio::test]`s sharing a
/// static client) do.
fn job_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Runs `f` on a fresh job runtime under the hard limit, then drops the runtime.
fn on_new_runtime<T>(f: impl Future<Output = T>) -> T {
    job_runtime().block_on(within(f))
}

/// The server lives on a runtime of its own that outlives the jobs.
fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A cache shared between job runtimes: `tok-n` living 100 s; requests wait from 90 s, and
/// a background refresh starts before that (at 80 s at the latest).
fn shared_cache(server: &RawServer, clock: &ManualClock) -> TokenCache<HttpTokenSource> {
    TokenCache::builder(source(server))
        .clock(Arc::new(clock.clone()))
        .retry_policy(retries())
        .refresh_ahead(0.5)
        .refresh_skew(secs(10))
        .build()
}

/// Starts the token server used by the runtime tests.
fn start_token_server(rt: &tokio::runtime::Runtime) -> RawServer {
    rt.block_on(serve(|n| token_answer(n, 100), echo))
}

/// Asks `cache` for a token inside its refresh-ahead window: the current token comes back
/// at once, and the background refresh is spawned but has not run (checked: it is the one
/// task alive on this runtime).
async fn refresh_ahead(cache: &TokenCache<HttpTokenSource>) -> Result<Lease, Error> {
    let lease = cache.token().await;
    assert_eq!(
        alive_tasks(),
        1,
        "exactly the background refresh was spawned"
    );
    lease
}

/// A background refresh spawned on a runtime that is dropped before the refresh first runs
/// is gone, not wedged: a later call on another runtime fetches a new token.
#[test]
fn background_refresh_on_a_dropped_runtime_does_not_wedge_the_cache() {
    let server_rt = server_runtime();
    let server = start_token_server(&server_rt);
    let clock = ManualClock::new();
    let cache = shared_cache(&server, &clock);

    let first = on_new_runtime(cache.token()).expect("the first token");
    assert_eq!(first.header_value(), "Bearer tok-1");

    // Inside the refresh-ahead window: the call returns the current token at once and
    // spawns the refresh, which never runs: its runtime is dropped right after.
    clock.advance(secs(80));
    let lease = on_new_runtime(refresh_ahead(&cache)).expect("the current token");
    assert_eq!(lease.header_value(), "Bearer tok-1");
    assert_eq!(server.hits(TOKEN), 1, "the refresh never ran");

    // Past expiry, on a third runtime: a new flight, a new token.
    clock.advance(secs(30));
    let lease = on_new_runtime(cache.token());
    let lease = lease.unwrap_or_else(|e| panic!("the cache is wedged: {e:?}"));
    assert_eq!(lease.header_value(), "Bearer tok-2");
    assert_eq!(server.hits(TOKEN), 2);
}

/// A first fetch spawned on a runtime that is dropped before it runs is gone: the next
/// call, on another runtime, fetches; cancellation is never reported as a panic.
#[test]
fn first_fetch_on_a_dropped_runtime_does_not_wedge_the_cache() {
    let server_rt = server_runtime();
    let server = start_token_server(&server_rt);
    let clock = ManualClock::new();
    let cache = shared_cache(&server, &clock);

    {
        let rt = job_runtime();
        let _entered = rt.enter();
        // One poll spawns the flight; the runtime then goes away before it runs.
        assert!(cache.token().now_or_never().is_none());
    }
    assert_eq!(server.hits(TOKEN), 0);

    let result = on_new_runtime(cache.token());
    if let Err(e) = &result {
        assert!(
            !matches!(e, Error::SourcePanicked),
            "a cancelled flight is reported as a panic: {e:?}"
        );
    }
    let lease = result.unwrap_or_else(|e| panic!("the cache is wedged: {e:?}"));
    assert_eq!(lease.header_value(), "Bearer tok-1");
    assert_eq!(server.hits(TOKEN), 1);
}

/// Whatever happened to a flight, `clear()` recovers the cache.
#[test]
fn clear_recovers_after_a_flight_lost_with_its_runtime() {
    let server_rt = server_runtime();
    let server = start_token_server(&server_rt);
    let clock = ManualClock::new();
    let cache = shared_cache(&server, &clock);

    {
        let rt = job_runtime();
        let _entered = rt.enter();
        assert!(cache.token().now_or_never().is_none());
    }
    cache.clear();
    let lease = on_new_runtime(cache.token());
    let lease = lease.unwrap_or_else(|e| panic!("clear() did not recover: {e:?}"));
    assert_eq!(lease.header_value(), "Bearer tok-1");
    assert_eq!(server.hits(TOKEN), 1);
}

/// The middleware (through a client) shared by two job runtimes: the first runtime is
/// dropped while its background refresh is spawned but not run; requests on the next
/// runtime succeed.
#[test]
fn middleware_shared_across_runtimes_survives_a_dropped_one() {
    let server_rt = server_runtime();
    let server = start_token_server(&server_rt);
    let clock = ManualClock::new();
    let mw = AuthMiddleware::with_cache(shared_cache(&server, &clock)).build();
    let cache = mw.cache().clone();
    let client = client(mw);

    let (status, body) = on_new_runtime(get(&client, &server));
    assert_eq!((status, body.as_str()), (200, "Bearer tok-1"));

    clock.advance(secs(80));
    // Through the cache, so nothing else runs on this runtime before it is dropped.
    assert!(on_new_runtime(refresh_ahead(&cache)).is_ok());
    assert_eq!(server.hits(TOKEN), 1);

    clock.advance(secs(30));
    let (status, body) = on_new_runtime(get(&client, &server));
    assert_eq!((status, body.as_str()), (200, "Bearer tok-2"));
    assert_eq!((server.hits(TOKEN), server.hits(API)), (2, 2));
}

/// A fetch that hangs past its deadline does not stay behind as a task waiting for ever:
/// with the server still holding the connection open, the job runtime's alive tasks return
/// to what they were once the next call has succeeded and the client is dropped. (The server
/// runs on a runtime of its own, so only the client side is counted.)
#[test]
fn a_fetch_past_its_deadline_leaves_no_task_behind() {
    let server_rt = server_runtime();
    let server = server_rt.block_on(serve(
        |n| {
            if n == 1 {
                Answer::Hang
            } else {
                token_answer(n, HOUR)
            }
        },
        echo,
    ));
    on_new_runtime(async {
        let baseline = alive_tasks();
        let clock = ManualClock::new();
        let source = HttpTokenSource::post(server.url(TOKEN))
            .param("client_secret", Param::secret(SECRET))
            .http_client(reqwest::Client::new())
            .timeout(secs(60))
            .add_origin(&server.base());
        let mw = on_clock(AuthMiddleware::builder(source), &clock).fetch_deadline(TIMEOUT);
        let client = client(mw);

        let err = crate_error(&get_err(&client, &server).await);
        assert!(matches!(err, Error::FetchTimeout { .. }), "{err:?}");
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-2".into()));
        drop(client);
        assert_eq!(
            settle_to(baseline).await,
            baseline,
            "the fetch that hung past its deadline is still running"
        );
    });
    assert_eq!((server.hits(TOKEN), server.hits(API)), (2, 1));
}
