//! Heap allocations per request: the layers of this crate allocate no more per request than a
//! minimal layer doing the same job (a bearer header from an `ArcSwap`, a static header).
//!
//! Every request goes through a `ClientWithMiddleware` whose last layer answers with a canned
//! `200` without any I/O, so the only difference between two chains is the layer under test.
//! Allocations are counted by dhat's global allocator (blocks allocated, whatever their size).

use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::AUTHORIZATION;
use http::{Extensions, HeaderValue};
use reqwest::{Request, Response};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use reqwest_partner_auth::{
    async_trait, ApiKeyAuth, AuthMiddleware, Error, FetchContext, PentaleapApiKeys, Token,
    TokenCache, TokenSource,
};
use url::Url;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const ORIGIN: &str = "https://api.partner.example";

#[derive(Debug)]
struct InMemory;

#[async_trait]
impl TokenSource for InMemory {
    async fn fetch(&self, _cx: &FetchContext) -> Result<Token, Error> {
        Ok(Token::bearer("token-0123456789abcdef")?.expires_in(Duration::from_secs(3600)))
    }
}

/// Answers a canned `200` (a `401` if the request has no `Authorization`) without calling
/// `next`.
struct Canned;

#[async_trait]
impl Middleware for Canned {
    async fn handle(
        &self,
        req: Request,
        _extensions: &mut Extensions,
        _next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let status = if req.headers().contains_key(AUTHORIZATION) {
            200
        } else {
            401
        };
        Ok(Response::from(
            http::Response::builder()
                .status(status)
                .body(Vec::<u8>::new())
                .unwrap(),
        ))
    }
}

struct MinBearer(ArcSwap<HeaderValue>);

#[async_trait]
impl Middleware for MinBearer {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let header = HeaderValue::clone(&self.0.load());
        req.headers_mut().insert(AUTHORIZATION, header);
        next.run(req, extensions).await
    }
}

struct MinStatic(HeaderValue);

#[async_trait]
impl Middleware for MinStatic {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        req.headers_mut().insert(AUTHORIZATION, self.0.clone());
        next.run(req, extensions).await
    }
}

fn chain(layer: impl Middleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(layer)
        .with(Canned)
        .build()
}

/// A header value made at run time (shared, reference-counted bytes), as a token is.
fn runtime_value(s: &str) -> HeaderValue {
    HeaderValue::try_from(s.to_owned()).unwrap()
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
        &chain(MinBearer(ArcSwap::from_pointee(runtime_value(
            "Bearer token-0123456789abcdef",
        )))),
    );
    let min_static = blocks_per_request(&rt, &chain(MinStatic(runtime_value("apikey key-a"))));

    let cache = TokenCache::new(InMemory);
    rt.block_on(cache.token()).unwrap();
    let auth = |replay: bool| {
        let mw = AuthMiddleware::from_cache(cache.clone()).scope_to(&origin);
        if replay {
            mw
        } else {
            mw.without_replay()
        }
    };
    let with_replay = blocks_per_request(&rt, &chain(auth(true)));
    let without_replay = blocks_per_request(&rt, &chain(auth(false)));
    let keys = PentaleapApiKeys::new().publisher("1001", "key-a").unwrap();
    let api_key = blocks_per_request(&rt, &chain(ApiKeyAuth::new(&origin, keys)));

    let report = format!(
        "blocks per request: minimal bearer {min_bearer}, AuthMiddleware {with_replay} \
         (without replay {without_replay}), minimal static header {min_static}, \
         ApiKeyAuth {api_key}"
    );
    println!("{report}");
    assert!(with_replay <= min_bearer, "{report}");
    assert!(without_replay <= min_bearer, "{report}");
    assert!(api_key <= min_static, "{report}");
}
