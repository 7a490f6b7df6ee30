//! Shared test helpers: a token source over an httpmock endpoint, JWT builders, a client,
//! mock responders (numbered, fixed, echoing the `Authorization` header) and error unwrapping.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use httpmock::{HttpMockRequest, HttpMockResponse, Mock, MockServer, When};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, RequestBuilder};
use reqwest_partner_auth::cache::{RetryPolicy, TokenCacheBuilder};
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::engine::{HttpTokenSource, Param};
use reqwest_partner_auth::middleware::AuthMiddlewareBuilder;
use reqwest_partner_auth::{AuthMiddleware, Error, FetchContext, Token, TokenCache, TokenSource};
use url::Url;

/// Path of the mock token endpoint.
pub const TOKEN_PATH: &str = "/token";

/// A sentinel secret: tests assert it never shows up in Debug/Display/logs.
pub const SECRET: &str = "SENTINEL-SECRET-7d1f";

/// The base URL of `server` (`http://127.0.0.1:<port>/`).
pub fn base(server: &MockServer) -> Url {
    Url::parse(&server.base_url()).unwrap()
}

/// Three attempts in all, 100 ms to 10 s apart; on a manual clock the backoff is instant.
pub fn retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        min_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(10),
    }
}

/// The test-only token source: POSTs `{"client_id","client_secret"}` as JSON to
/// `<server>/token` and reads an OAuth 2.0 style answer. It is a thin wrapper over the
/// crate's public `TokenSource` trait, so the trait itself is exercised.
#[derive(Debug, Clone)]
pub struct TestSource {
    inner: HttpTokenSource,
    scope: Url,
}

impl TestSource {
    pub fn new(server: &MockServer) -> Self {
        let base = base(server);
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

    fn api_origins(&self) -> Vec<Url> {
        vec![self.scope.clone()]
    }

    fn allows_insecure_http(&self) -> bool {
        self.inner.allows_insecure_http()
    }

    fn name(&self) -> &str {
        "test"
    }

    fn endpoint(&self) -> Option<&Url> {
        self.inner.endpoint()
    }
}

/// A layer builder over `S`, its cache policy still open.
pub type Builder<S> = AuthMiddlewareBuilder<TokenCacheBuilder<S>>;

/// `builder` on the manual `clock` with fast [`retries`] (the clock's sleep only advances the
/// manual clock, so retries never wait for real).
pub fn on_clock<S: TokenSource>(builder: Builder<S>, clock: &ManualClock) -> Builder<S> {
    builder
        .clock(Arc::new(clock.clone()))
        .retry_policy(retries())
}

/// A layer builder on `server` with a manual clock and fast retries (see [`on_clock`]).
pub fn middleware(server: &MockServer, clock: &ManualClock) -> Builder<TestSource> {
    on_clock(AuthMiddleware::builder(TestSource::new(server)), clock)
}

/// Anything a test hands to [`client`]: a layer, or a builder of one.
pub trait IntoLayer {
    /// The layer.
    type Layer: Middleware;
    /// Builds it.
    fn into_layer(self) -> Self::Layer;
}

impl<S: TokenSource> IntoLayer for AuthMiddleware<S> {
    type Layer = Self;
    fn into_layer(self) -> Self {
        self
    }
}

impl<S: TokenSource> IntoLayer for Builder<S> {
    type Layer = AuthMiddleware<S>;
    fn into_layer(self) -> AuthMiddleware<S> {
        self.build()
    }
}

impl<S: TokenSource> IntoLayer for AuthMiddlewareBuilder<TokenCache<S>> {
    type Layer = AuthMiddleware<S>;
    fn into_layer(self) -> AuthMiddleware<S> {
        self.build()
    }
}

#[cfg(feature = "pentaleap")]
impl IntoLayer for reqwest_partner_auth::pentaleap::ApiKeyAuth {
    type Layer = Self;
    fn into_layer(self) -> Self {
        self
    }
}

/// A client with `mw` over a default `reqwest::Client`.
pub fn client(mw: impl IntoLayer) -> ClientWithMiddleware {
    client_with(reqwest::Client::new(), mw)
}

/// A client with `mw` over `http`.
pub fn client_with(http: reqwest::Client, mw: impl IntoLayer) -> ClientWithMiddleware {
    ClientBuilder::new(http).with(mw.into_layer()).build()
}

/// A client whose DNS maps `host` to `server` (the port comes from the URL), so plain-http
/// requests to a non-loopback *name* still reach a local mock deterministically.
pub fn resolving_http_client(host: &str, server: &MockServer) -> reqwest::Client {
    let addr: SocketAddr = *server.address();
    reqwest::Client::builder()
        .resolve(host, addr)
        .build()
        .unwrap()
}

/// A `127.0.0.1` port nothing listens on (bound, then released).
pub fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
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

// -------------------------------------------------------------------------------------------
// Mock responses and responders
// -------------------------------------------------------------------------------------------

/// A response with `status`, `Content-Type: content_type` and `body`.
pub fn response(status: u16, content_type: &str, body: impl Into<String>) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body.into())
        .build()
}

/// An `application/json` response with `status` and `body`.
pub fn json_response(status: u16, body: &str) -> HttpMockResponse {
    response(status, "application/json", body)
}

/// A 200 [`token_body`] answer for `tok-<n>`, living `expires_in` seconds.
pub fn numbered_token(n: usize, expires_in: u64) -> HttpMockResponse {
    json_response(200, &token_body(&format!("tok-{n}"), expires_in))
}

/// A mock for the requests `when` matches whose answer to the n-th of them (1-based) is
/// `respond(n, request)`.
pub async fn counted_mock<'a>(
    server: &'a MockServer,
    when: impl FnOnce(When) -> When,
    respond: impl Fn(usize, &HttpMockRequest) -> HttpMockResponse + Send + Sync + 'static,
) -> Mock<'a> {
    let calls = AtomicUsize::new(0);
    server
        .mock_async(move |w, then| {
            when(w);
            then.respond_with(move |req: &HttpMockRequest| {
                respond(calls.fetch_add(1, Ordering::SeqCst) + 1, req)
            });
        })
        .await
}

/// A mock for `POST path` answering every call with `status`, `content_type` and `body`.
pub async fn fixed_post_mock<'a>(
    server: &'a MockServer,
    path: &str,
    status: u16,
    content_type: &str,
    body: impl Into<String>,
) -> Mock<'a> {
    let body = body.into();
    server
        .mock_async(|when, then| {
            when.method(httpmock::Method::POST).path(path);
            then.status(status)
                .header("content-type", content_type)
                .body(body);
        })
        .await
}

/// A token endpoint mock (`POST /token`) answering every call with `status`,
/// `content_type` and `body`.
pub async fn fixed_token_mock<'a>(
    server: &'a MockServer,
    status: u16,
    content_type: &str,
    body: impl Into<String>,
) -> Mock<'a> {
    fixed_post_mock(server, TOKEN_PATH, status, content_type, body).await
}

/// A token endpoint mock (`POST /token`) whose answer changes per call: `body(n)` gives the
/// JSON body of the n-th fetch (1-based), sent as `application/json` after `delay`.
pub async fn token_mock_seq<'a>(
    server: &'a MockServer,
    delay: Duration,
    body: impl Fn(usize) -> String + Send + Sync + 'static,
) -> Mock<'a> {
    let calls = AtomicUsize::new(0);
    server
        .mock_async(move |when, then| {
            when.method(httpmock::Method::POST).path(TOKEN_PATH);
            then.delay(delay).respond_with(move |_req| {
                json_response(200, &body(calls.fetch_add(1, Ordering::SeqCst) + 1))
            });
        })
        .await
}

/// [`token_mock_seq`] answering `tok-1`, `tok-2`, ... each living `expires_in` seconds.
pub async fn numbered_token_mock(
    server: &MockServer,
    expires_in: u64,
    delay: Duration,
) -> Mock<'_> {
    token_mock_seq(server, delay, move |n| {
        token_body(&format!("tok-{n}"), expires_in)
    })
    .await
}

// -------------------------------------------------------------------------------------------
// APIs that show what arrived
// -------------------------------------------------------------------------------------------

/// The `Authorization` values `req` carried, in order.
pub fn authorization_values(req: &HttpMockRequest) -> Vec<&str> {
    req.headers_vec()
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// True when `req` carries exactly one `Authorization` header.
pub fn one_authorization_header(req: &HttpMockRequest) -> bool {
    req.headers().get_all("authorization").iter().count() == 1
}

/// An API's answer: `rejection` (a JSON 401) when `req` carries `Bearer <t>` for a `t` in
/// `rejected`, else 200 with the `Authorization` values it received joined by `|` (empty when
/// there was none), so a test sees exactly what arrived.
pub fn echo_authorization(
    req: &HttpMockRequest,
    rejected: &[&str],
    rejection: &str,
) -> HttpMockResponse {
    let auth = authorization_values(req);
    if auth
        .iter()
        .any(|a| rejected.iter().any(|t| *a == format!("Bearer {t}")))
    {
        return json_response(401, rejection);
    }
    HttpMockResponse::builder()
        .status(200)
        .body(auth.join("|"))
        .build()
}

/// A mock for the requests `when` matches, answering [`echo_authorization`].
pub async fn rejecting_echo_mock<'a>(
    server: &'a MockServer,
    when: impl FnOnce(When) -> When,
    rejected: &'static [&'static str],
    rejection: &'static str,
) -> Mock<'a> {
    server
        .mock_async(move |w, then| {
            when(w);
            then.respond_with(move |req: &HttpMockRequest| {
                echo_authorization(req, rejected, rejection)
            });
        })
        .await
}

/// A mock for the requests `when` matches, answering 200 with the `Authorization` values it
/// received joined by `|` (empty when there was none).
pub async fn echo_mock<'a>(server: &'a MockServer, when: impl FnOnce(When) -> When) -> Mock<'a> {
    rejecting_echo_mock(server, when, &[], "").await
}

/// One request a mock received: its headers and body.
#[derive(Debug, Clone)]
pub struct Seen {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    /// The headers and body of `req`.
    pub fn of(req: &HttpMockRequest) -> Self {
        Self {
            headers: req.headers_vec().clone(),
            body: req.body_string(),
        }
    }

    /// All values of header `name`.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of header `name` (panics if it is sent twice).
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.header_all(name);
        assert!(all.len() <= 1, "header {name} sent {} times", all.len());
        all.first().copied()
    }

    /// The body as form (name, value) pairs, decoded, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The first value of form field `name`.
    pub fn field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

// -------------------------------------------------------------------------------------------
// Failing requests
// -------------------------------------------------------------------------------------------

/// Sends `request`, which must fail, and returns the middleware's error.
pub async fn send_err(request: RequestBuilder) -> reqwest_middleware::Error {
    request.send().await.expect_err("the request should fail")
}

/// The crate's error inside `err` (panics when it is another error).
pub fn crate_error(err: &reqwest_middleware::Error) -> Error {
    Error::from_middleware(err)
        .unwrap_or_else(|| panic!("not a crate error: {err:?}"))
        .clone()
}

/// Sends `request`, which must fail in the layer, and returns the crate's error.
pub async fn layer_error(request: RequestBuilder) -> Error {
    crate_error(&send_err(request).await)
}
