//! Heap allocations per request: the layers of this crate allocate no more per request than a
//! minimal layer doing the same job (a bearer header from an `ArcSwap`, a static header).
//!
//! Every request goes through a `ClientWithMiddleware` whose last layer answers with a canned
//! `200` without any I/O, so the only difference between two chains is the layer under test.
//! Allocations are counted by dhat's global allocator (blocks allocated, whatever their size).

use arc_swap::ArcSwap;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware};
use reqwest_partner_auth::{AuthMiddleware, TokenCache};
use url::Url;

#[path = "../benches/common/mod.rs"]
mod common;
use common::{auth_header, ArcSwapBearer, Canned, InMemorySource, StaticHeader, TOKEN};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const ORIGIN: &str = "https://api.partner.example";

fn chain(layer: impl Middleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(layer)
        .with(Canned)
        .build()
}

/// Heap blocks allocated per `GET` through `client` (after a warm-up).
fn blocks_per_request(rt: &tokio::runtime::Runtime, client: &ClientWithMiddleware) -> u64 {
    let url = Url::parse(&format!("{ORIGIN}/publishers/1001/feed")).unwrap();
    let send = || async {
        let res = client.get(url.clone()).send().await.unwrap();
        assert_eq!(res.status(), 200, "the layer attached credentials");
    };
    for _ in 0..10 {
        rt.block_on(send());
    }
    const N: u64 = 200;
    let before = dhat::HeapStats::get().total_blocks;
    for _ in 0..N {
        rt.block_on(send());
    }
    (dhat::HeapStats::get().total_blocks - before) / N
}

/// Heap blocks allocated per `GET` through `pentaleap::ApiKeyAuth` (one key for the
/// publisher the URL names), or `None` when the crate is built without that partner.
#[cfg(feature = "pentaleap")]
fn api_key_blocks_per_request(rt: &tokio::runtime::Runtime, origin: &Url) -> Option<u64> {
    use reqwest_partner_auth::pentaleap;
    let keys = pentaleap::ApiKeys::new()
        .publisher("1001", "key-a")
        .unwrap();
    let layer = pentaleap::ApiKeyAuth::with_base_url(keys, origin);
    Some(blocks_per_request(rt, &chain(layer)))
}

#[cfg(not(feature = "pentaleap"))]
fn api_key_blocks_per_request(_rt: &tokio::runtime::Runtime, _origin: &Url) -> Option<u64> {
    None
}

#[test]
fn the_layers_allocate_no_more_per_request_than_minimal_layers() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let origin = Url::parse(ORIGIN).unwrap();

    let min_bearer = blocks_per_request(
        &rt,
        &chain(ArcSwapBearer(ArcSwap::from_pointee(auth_header(
            "Bearer", TOKEN,
        )))),
    );
    let min_static = blocks_per_request(&rt, &chain(StaticHeader(auth_header("apikey", "key-a"))));

    let cache = TokenCache::new(InMemorySource);
    rt.block_on(cache.token()).unwrap();
    let auth = |replay: bool| {
        let mw = AuthMiddleware::with_cache(cache.clone()).add_origin(&origin);
        if replay {
            mw.build()
        } else {
            mw.without_replay().build()
        }
    };
    let with_replay = blocks_per_request(&rt, &chain(auth(true)));
    let without_replay = blocks_per_request(&rt, &chain(auth(false)));
    let api_key = api_key_blocks_per_request(&rt, &origin);

    let api_key_shown = match api_key {
        Some(blocks) => blocks.to_string(),
        None => "not built (feature pentaleap off)".to_owned(),
    };
    let report = format!(
        "blocks per request: minimal bearer {min_bearer}, AuthMiddleware {with_replay} \
         (without replay {without_replay}), minimal static header {min_static}, \
         pentaleap::ApiKeyAuth {api_key_shown}"
    );
    println!("{report}");
    assert!(with_replay <= min_bearer, "{report}");
    assert!(without_replay <= min_bearer, "{report}");
    if let Some(api_key) = api_key {
        assert!(api_key <= min_static, "{report}");
    }
}
