//! Shared test helpers: a token source over an httpmock endpoint, JWT builders, a client.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use httpmock::MockServer;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::{
    AuthMiddleware, FetchContext, HttpTokenSource, ManualClock, Param, RetryPolicy, Token,
    TokenSource,
};
use url::Url;

/// Path of the mock token endpoint.
pub const TOKEN_PATH: &str = "/token";

/// A sentinel secret: tests assert it never shows up in Debug/Display/logs.
pub const SECRET: &str = "SENTINEL-SECRET-7d1f";

/// The test-only token source of issue 2: POSTs `{"client_id","client_secret"}` as JSON to
/// `<server>/token` and reads an OAuth 2.0 style answer. It is a thin wrapper over the
/// crate's public `TokenSource` trait, so the trait itself is exercised.
#[derive(Debug, Clone)]
pub struct TestSource {
    inner: HttpTokenSource,
    scope: Url,
}

impl TestSource {
    pub fn new(server: &MockServer) -> Self {
        let base = Url::parse(&server.base_url()).unwrap();
        let inner = HttpTokenSource::post(base.join(TOKEN_PATH).unwrap())
            .param("client_id", Param::text("test-client"))
            .param("client_secret", Param::secret(SECRET));
        Self { inner, scope: base }
    }

    /// Replaces the engine (to set a timeout client, body cap, ...).
    pub fn map(mut self, f: impl FnOnce(HttpTokenSource) -> HttpTokenSource) -> Self {
        self.inner = f(self.inner);
        self
    }
}

#[async_trait::async_trait]
impl TokenSource for TestSource {
    async fn fetch(&self, cx: &FetchContext) -> Result<Token, reqwest_partner_auth::Error> {
        self.inner.fetch(cx).await
    }

    fn default_scope(&self) -> Vec<Url> {
        vec![self.scope.clone()]
    }
}

/// A middleware on `server` with a manual clock and fast retries (the clock's sleep only
/// advances the manual clock, so retries never wait for real).
pub fn middleware(server: &MockServer, clock: &ManualClock) -> AuthMiddleware<TestSource> {
    AuthMiddleware::from_source(TestSource::new(server))
        .clock(Arc::new(clock.clone()))
        .retry_policy(RetryPolicy {
            max_attempts: 3,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
        })
}

pub fn client<S: TokenSource>(mw: AuthMiddleware<S>) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new()).with(mw).build()
}

/// An unsigned JWT whose payload is `claims` (a JSON object text).
pub fn jwt_with_claims(claims: &str) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.c2ln",
        e.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        e.encode(claims)
    )
}

/// An unsigned JWT that expires `secs` after `now` (wall clock of the given clock).
pub fn jwt_expiring_in(now: SystemTime, secs: u64) -> String {
    let exp = now.duration_since(UNIX_EPOCH).unwrap().as_secs() + secs;
    jwt_with_claims(&format!(r#"{{"sub":"test","exp":{exp}}}"#))
}

/// An OAuth 2.0 token response body.
pub fn token_body(token: &str, expires_in: u64) -> String {
    format!(r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{expires_in}}}"#)
}

/// A token endpoint mock (`POST /token`) whose answer changes per call: `body(n)` gives the
/// JSON body of the n-th fetch (1-based), sent as `application/json` after `delay`.
pub async fn token_mock_seq<'a>(
    server: &'a MockServer,
    delay: Duration,
    body: impl Fn(usize) -> String + Send + Sync + 'static,
) -> httpmock::Mock<'a> {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    server
        .mock_async(move |when, then| {
            when.method(httpmock::Method::POST).path(TOKEN_PATH);
            then.delay(delay).respond_with(move |_req| {
                let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                httpmock::HttpMockResponse::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(body(n))
                    .build()
            });
        })
        .await
}

/// [`token_mock_seq`] answering `tok-1`, `tok-2`, ... each living `expires_in` seconds.
pub async fn numbered_token_mock(
    server: &MockServer,
    expires_in: u64,
    delay: Duration,
) -> httpmock::Mock<'_> {
    token_mock_seq(server, delay, move |n| {
        token_body(&format!("tok-{n}"), expires_in)
    })
    .await
}
