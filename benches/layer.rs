//! What one layer adds to a whole `send()`, with no network: a micro benchmark of the chain.
//!
//! ```sh
//! taskset -c 0 cargo bench --bench layer    # pinned to one core: the only steady numbers here
//! cargo bench --bench layer -- auth          # only the variants whose name contains "auth"
//! ```
//!
//! What: a full `ClientWithMiddleware::send()` of a `GET https://api.partner.example/...`
//! through a chain whose last middleware (`Canned`, in `benches/common`) answers with a canned
//! `200` (`http::Response` → `reqwest::Response::from`) without calling `next`: no
//! connection, no socket, no I/O. What is left is the request builder, the chain and the
//! layer under test. Variants (group `layer`), each with the canned terminal last:
//!
//! * `empty_chain`: the terminal only; the baseline every other variant is read against.
//! * `auth_replay`: the crate's [`AuthMiddleware`] with its defaults (replay on), token
//!   cached before measuring, from an in-memory [`TokenSource`] (no HTTP for the token).
//! * `auth_without_replay`: the same with `.without_replay()`.
//! * `api_key`: the crate's [`pentaleap::ApiKeyAuth`] with one default key.
//! * `min_arc_swap_bearer`: a minimal bearer layer (`benches/common`): one `ArcSwap` load and one
//!   header insert, no scoping (what the lightest peer layers do).
//! * `min_static_header`: a minimal layer inserting one fixed header value.
//!
//! The two minimal layers hold header values made at run time, as a token or a key read
//! from configuration is (shared, reference-counted bytes): cloning a `from_static` value
//! costs nothing and would set the floor about 20 ns too low.
//!
//! Every layer is scoped to the request's origin, so each request gets the header.
//!
//! How: criterion, a current-thread tokio runtime (`b.to_async(&rt)`), wall time per
//! `send()` in ns. A layer's cost is its variant minus `empty_chain`. On a 2-core VM shared
//! with other work, only runs pinned to one core (`taskset -c 0`) are steady; compare
//! variants of one run, not numbers across runs.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use criterion::{criterion_main, Criterion};
use http::header::ACCEPT;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware};
use reqwest_partner_auth::{pentaleap, AuthMiddleware, TokenCache};
use tokio::runtime::Runtime;
use url::Url;

mod common;
use common::{auth_header, ArcSwapBearer, Canned, InMemorySource, StaticHeader, TOKEN};

const ORIGIN: &str = "https://api.partner.example";
const PATH: &str = "/v1/campaigns?page=1";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The chain: `layer` (if any), then the canned terminal.
fn chain(layer: Option<Arc<dyn Middleware>>) -> ClientWithMiddleware {
    let builder = ClientBuilder::new(reqwest::Client::new());
    let builder = match layer {
        Some(layer) => builder.with_arc(layer),
        None => builder,
    };
    builder.with(Canned).build()
}

fn layer(c: &mut Criterion) {
    let rt = runtime();
    let origin = Url::parse(ORIGIN).expect("origin");
    let url = origin.join(PATH).expect("request url");

    let cache = TokenCache::new(InMemorySource);
    rt.block_on(cache.token()).expect("token cached first");
    let auth = AuthMiddleware::with_cache(cache.clone())
        .add_origin(&origin)
        .build();
    let auth_no_replay = AuthMiddleware::with_cache(cache.clone())
        .add_origin(&origin)
        .without_replay()
        .build();
    let keys = pentaleap::ApiKeys::single("bench-api-key-0123456789").expect("api key");
    let api_key = pentaleap::ApiKeyAuth::with_base_url(keys, &origin);
    let arc_swap = ArcSwapBearer(ArcSwap::from_pointee(auth_header("Bearer", TOKEN)));
    let static_header = StaticHeader(auth_header("Bearer", TOKEN));

    let variants: Vec<(&str, u16, ClientWithMiddleware)> = vec![
        ("empty_chain", 204, chain(None)),
        ("auth_replay", 200, chain(Some(Arc::new(auth)))),
        (
            "auth_without_replay",
            200,
            chain(Some(Arc::new(auth_no_replay))),
        ),
        ("api_key", 200, chain(Some(Arc::new(api_key)))),
        ("min_arc_swap_bearer", 200, chain(Some(Arc::new(arc_swap)))),
        (
            "min_static_header",
            200,
            chain(Some(Arc::new(static_header))),
        ),
    ];

    // Each variant once outside the timing: the header arrives (or not, for the empty chain).
    for (name, status, client) in &variants {
        rt.block_on(async {
            let res = client
                .get(url.clone())
                .header(ACCEPT, "application/json")
                .send()
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(res.status(), *status, "{name}");
        });
    }

    let mut group = c.benchmark_group("layer");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for (name, _, client) in &variants {
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| async {
                client
                    .get(url.clone())
                    .header(ACCEPT, "application/json")
                    .send()
                    .await
                    .expect("canned response")
            });
        });
    }
    group.finish();

    assert_eq!(
        cache.generation(),
        Some(1),
        "the token is fetched once, then cached"
    );
}

// The macro defines a `pub fn` that needs no docs.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::layer);
}
criterion_main!(group::benches);
