//! What the auth layer costs per request once a token is cached.
//!
//! ```sh
//! cargo bench --bench hot_path                 # everything, under ~2 minutes
//! taskset -c 0 cargo bench --bench hot_path    # pinned to one core: steadier numbers
//! ```
//!
//! Two groups:
//!
//! * `cached_token`: the per-request work of the layer without any HTTP.
//!   - `instant_now`: a baseline, the one clock read inside `token()`.
//!   - `token`: [`TokenCache::token`] with a cached, fresh token (one clock read, one
//!     lock-free load, one `HeaderValue` clone).
//!   - `token_and_header_insert`: the same plus inserting the value as `Authorization` into
//!     a `HeaderMap` that already holds a few headers: what the layer does to every request
//!     in its scope. Target: under 100 ns.
//!   - `try_clone/get` and `try_clone/post_1KiB`: [`reqwest::Request::try_clone`], the copy
//!     kept before sending so a request rejected with a 401 can be replayed; the other
//!     per-request cost (skipped with `without_replay` or [`NoReplay`]).
//! * `through_layer`: one full `GET` over loopback to an in-process httpmock server, three
//!   ways: a plain `reqwest::Client` with a static `Authorization` header, a
//!   `ClientWithMiddleware` with no middleware and the same static header, and a
//!   `ClientWithMiddleware` with [`AuthMiddleware`] (token cached before measuring). The
//!   layer's overhead is the difference; expect it to be lost in the noise of the round trip.
//!
//! The token source of `cached_token` is an in-memory [`TokenSource`], so nothing but the
//! cache is measured. Both groups use a current-thread tokio runtime.
//!
//! [`NoReplay`]: reqwest_partner_auth::NoReplay

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::Criterion;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, HeaderValue};
use httpmock::{Method::GET, Method::POST, MockServer};
use reqwest_middleware::ClientBuilder;
use reqwest_partner_auth::{
    AuthMiddleware, Error, FetchContext, HttpTokenSource, Param, Token, TokenCache, TokenSource,
};
use tokio::runtime::Runtime;
use url::Url;

/// A source that mints a one-hour token in memory: no HTTP in the hot-path group.
#[derive(Debug)]
struct InMemorySource;

#[reqwest_partner_auth::async_trait]
impl TokenSource for InMemorySource {
    async fn fetch(&self, _cx: &FetchContext) -> Result<Token, Error> {
        Ok(Token::bearer("bench-token-0123456789abcdef")?.expires_in(Duration::from_secs(3600)))
    }
}

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

fn through_layer(c: &mut Criterion) {
    let rt = runtime();
    let server = rt.block_on(MockServer::start_async());
    let token_mock = server.mock(|when, then| {
        when.method(POST).path("/oauth/token");
        then.status(200)
            .header("content-type", "application/json")
            .body(r#"{"access_token":"bench-token","token_type":"Bearer","expires_in":3600}"#);
    });
    server.mock(|when, then| {
        when.method(GET).path("/v1/campaigns");
        then.status(200)
            .header("content-type", "application/json")
            .body(r#"{"campaigns":[{"id":1,"name":"Spring"}]}"#);
    });

    let base = Url::parse(&server.base_url()).expect("server url");
    let url = base.join("/v1/campaigns").expect("api url");
    let mut bearer = HeaderValue::from_static("Bearer bench-token");
    bearer.set_sensitive(true);

    let plain = reqwest::Client::new();
    let bare_chain = ClientBuilder::new(reqwest::Client::new()).build();
    let source = HttpTokenSource::post(base.join("/oauth/token").expect("token url"))
        .param("client_id", Param::text("bench-client"))
        .param("client_secret", Param::secret("bench-secret"))
        .scope_to(&base);
    let with_auth = ClientBuilder::new(reqwest::Client::new())
        .with(AuthMiddleware::from_source(source))
        .build();
    rt.block_on(async {
        let res = with_auth
            .get(url.clone())
            .send()
            .await
            .expect("priming call");
        assert_eq!(res.status(), 200, "priming call");
    });

    let mut group = c.benchmark_group("through_layer");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    group.bench_function("reqwest_static_header", |b| {
        b.to_async(&rt).iter(|| async {
            let res = plain
                .get(url.clone())
                .header(AUTHORIZATION, bearer.clone())
                .send()
                .await
                .expect("response");
            res.bytes().await.expect("body")
        });
    });
    group.bench_function("middleware_chain_static_header", |b| {
        b.to_async(&rt).iter(|| async {
            let res = bare_chain
                .get(url.clone())
                .header(AUTHORIZATION, bearer.clone())
                .send()
                .await
                .expect("response");
            res.bytes().await.expect("body")
        });
    });
    group.bench_function("auth_middleware", |b| {
        b.to_async(&rt).iter(|| async {
            let res = with_auth.get(url.clone()).send().await.expect("response");
            res.bytes().await.expect("body")
        });
    });
    group.finish();

    assert_eq!(
        token_mock.calls(),
        1,
        "the token is fetched once, then cached"
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    cached_token(&mut c);
    through_layer(&mut c);
    c.final_summary();
}
