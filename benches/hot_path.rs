//! Single steps of the auth layer's per-request work, one at a time, without HTTP: where the
//! cost goes, not what a request costs. The cost per request is measured as a whole by
//! `benches/layer.rs` (a `send()` through the chain, no network) and `benches/load.rs` (CPU per
//! request against an in-process server); see BENCHMARKS.md.
//!
//! ```sh
//! taskset -c 0 cargo bench --bench hot_path    # pinned to one core: steadier numbers
//! ```
//!
//! The group `cached_token`:
//! - `instant_now`: a baseline, one precise clock read.
//! - `token`: [`TokenCache::token`] with a cached, fresh token (one clock read, one lock-free
//!   load, one `HeaderValue` clone).
//! - `token_and_header_insert`: the same plus inserting the value as `Authorization` into a
//!   `HeaderMap` that already holds a few headers.
//! - `try_clone/get` and `try_clone/post_1KiB`: [`reqwest::Request::try_clone`], for
//!   comparison with the layer's own replay copy (which skips the parts a replay does not
//!   need).
//!
//! The token source is an in-memory [`TokenSource`], so nothing but the cache is measured, on a
//! current-thread tokio runtime.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderValue};
use reqwest_partner_auth::TokenCache;
use tokio::runtime::Runtime;

mod common;
use common::InMemorySource;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn cached_token(c: &mut Criterion) {
    let rt = runtime();
    let cache = TokenCache::new(InMemorySource);
    rt.block_on(cache.token()).expect("first fetch");

    let mut group = c.benchmark_group("cached_token");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    // Baseline: the one clock read inside `token()`.
    group.bench_function("instant_now", |b| b.iter(Instant::now));

    group.bench_function("token", |b| {
        b.to_async(&rt)
            .iter(|| async { cache.token().await.expect("cached token") });
    });

    group.bench_function("token_and_header_insert", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let cache = cache.clone();
            async move {
                let mut headers = HeaderMap::new();
                headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
                headers.insert(USER_AGENT, HeaderValue::from_static("bench/1.0"));
                let start = Instant::now();
                for _ in 0..iters {
                    let lease = cache.token().await.expect("cached token");
                    headers.insert(AUTHORIZATION, lease.header_value().clone());
                    black_box(&headers);
                }
                start.elapsed()
            }
        });
    });

    let client = reqwest::Client::new();
    let url = "https://api.partner.example/v1/campaigns?page=1";
    let get = client
        .get(url)
        .header(ACCEPT, "application/json")
        .build()
        .expect("GET request");
    let post = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .body(vec![b'x'; 1024])
        .build()
        .expect("POST request");
    group.bench_function("try_clone/get", |b| {
        b.iter(|| black_box(&get).try_clone().expect("clonable"));
    });
    group.bench_function("try_clone/post_1KiB", |b| {
        b.iter(|| black_box(&post).try_clone().expect("clonable"));
    });
    group.finish();

    let lease = rt.block_on(cache.token()).expect("cached token");
    assert_eq!(
        lease.generation(),
        1,
        "the token is fetched once, then cached"
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    cached_token(&mut c);
    c.final_summary();
}
