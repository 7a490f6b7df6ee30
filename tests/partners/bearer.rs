//! The description of a partner with a token endpoint and a bearer token ([`Bearer`]), and
//! the mocks and calls the rows build from it.

use std::fmt;

use httpmock::{HttpMockResponse, Mock, MockServer, When};
use reqwest_middleware::{ClientWithMiddleware, RequestBuilder};
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::{AuthMiddleware, Error, FetchContext, FetchReason, TokenSource};
use serde_json::{Map, Value};
use url::Url;

use crate::common;
use crate::harness::Partner;

/// How the token endpoint's success answer carries the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A JSON object ([`JsonBearer`] says which fields).
    Json,
    /// A `text/plain` body that is the token.
    PlainText,
}

/// One answer of a mock token endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
}

impl Answer {
    /// `value` as an `application/json` answer with `status`.
    pub(crate) fn json(status: u16, value: Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: value.to_string(),
        }
    }

    /// The mock response.
    pub(crate) fn response(&self) -> HttpMockResponse {
        common::response(self.status, self.content_type, self.body.clone())
    }
}

/// A partner whose layer fetches a token from a token endpoint and sends it as a bearer.
pub(crate) trait Bearer: Partner {
    /// The partner's token source.
    type Source: TokenSource + Clone + fmt::Debug;
    /// The token endpoint's path below the base URL.
    const TOKEN_PATH: &'static str;
    /// How a success answer carries the token.
    const SHAPE: Shape;
    /// The content type of a success answer.
    const SUCCESS_CONTENT_TYPE: &'static str;
    /// The method of the API call the rows authenticate.
    const API_METHOD: &'static str;
    /// The path of the API call the rows authenticate.
    const API_PATH: &'static str;
    /// The message of the partner's documented credential error.
    const CREDENTIAL_MESSAGE: &'static str;
    /// The code [`Error::InvalidCredentials`] keeps from [`credential_error`](Self::credential_error).
    const CREDENTIAL_CODE: Option<&'static str>;
    /// The message of the partner's server error.
    const SERVER_MESSAGE: &'static str;

    /// The JSON body of the API call, if it has one (the API mock matches it exactly, so a
    /// replay must carry it intact).
    fn api_body() -> Option<Value> {
        None
    }

    /// `Source::with_base_url`.
    fn source(credentials: Self::Credentials, base: &Url) -> Self::Source;
    /// `Auth::with_base_url`.
    fn auth(credentials: Self::Credentials, base: &Url) -> AuthMiddleware<Self::Source>;
    /// `Source::http_client`.
    fn with_http_client(source: Self::Source, client: reqwest::Client) -> Self::Source;
    /// `Source::allow_insecure_http`.
    fn allow_insecure_http(source: Self::Source) -> Self::Source;
    /// `Source::token_url`.
    fn token_url(source: &Self::Source) -> &Url;

    /// `when` narrowed to the exact token request of the contract for [`Partner::credentials`]
    /// with `secret`: method, path, content type and body.
    fn token_request(when: When, secret: &str) -> When;

    /// A success body carrying `token`.
    fn success_body(token: &str) -> String;

    /// A credential error (not retried) whose message is `message`; `message` starts with
    /// [`CREDENTIAL_MESSAGE`](Self::CREDENTIAL_MESSAGE).
    fn credential_error(message: &str) -> Answer;

    /// A server error (retried) whose message is `message`.
    fn server_error(message: &str) -> Answer;
}

/// A [`Bearer`] partner whose success answer is a JSON object.
pub(crate) trait JsonBearer: Bearer {
    /// The field holding the token.
    const TOKEN_FIELD: &'static str;
    /// The success answer carrying `token`, as an object.
    fn success_json(token: &str) -> Map<String, Value>;
}

/// A [`JsonBearer`] partner whose answer carries the token's lifetime.
pub(crate) trait Expiring: JsonBearer {
    /// The field holding the lifetime in seconds.
    const LIFETIME_FIELD: &'static str;
}

/// A [`Bearer`] partner whose contract names a production host.
pub(crate) trait Production: Bearer {
    /// The host the contract documents.
    const DOCUMENTED_HOST: &'static str;
    /// The token endpoint the contract documents.
    const DOCUMENTED_TOKEN_URL: &'static str;
    /// The crate's `BASE_URL` constant.
    const BASE_URL: &'static str;
    /// `Source::new`.
    fn source_new(credentials: Self::Credentials) -> Self::Source;
    /// `Auth::new`.
    fn auth_new(credentials: Self::Credentials) -> AuthMiddleware<Self::Source>;
}

/// A fetch context for a direct `fetch`.
pub(crate) fn cx() -> FetchContext {
    FetchContext::new(FetchReason::Initial)
}

/// The base URL of `server`.
pub(crate) fn base(server: &MockServer) -> Url {
    common::base(server)
}

/// A success answer of `P` carrying `token`.
pub(crate) fn success<P: Bearer>(token: &str) -> HttpMockResponse {
    common::response(200, P::SUCCESS_CONTENT_TYPE, P::success_body(token))
}

/// `P`'s token endpoint on `server`: only the exact token request for `secret` matches (any
/// other gets httpmock's 404); `respond(n)` answers the n-th of them (1-based).
pub(crate) async fn token_endpoint<'a, P: Bearer>(
    server: &'a MockServer,
    secret: &str,
    respond: impl Fn(usize) -> HttpMockResponse + Send + Sync + 'static,
) -> Mock<'a> {
    let secret = secret.to_owned();
    common::counted_mock(
        server,
        move |when| P::token_request(when, &secret),
        move |n, _| respond(n),
    )
    .await
}

/// `P`'s token endpoint handing out `tok-1`, `tok-2`, ...
pub(crate) async fn numbered_tokens<'a, P: Bearer>(
    server: &'a MockServer,
    secret: &str,
) -> Mock<'a> {
    token_endpoint::<P>(server, secret, |n| success::<P>(&format!("tok-{n}"))).await
}

/// `P`'s API call on `server`: 401 when the bearer token is in `rejected`, else 200 with the
/// `Authorization` values it received joined by `|` (empty when there was none).
pub(crate) async fn api<'a, P: Bearer>(
    server: &'a MockServer,
    rejected: &'static [&'static str],
) -> Mock<'a> {
    let when = |when: When| {
        let when = when.method(P::API_METHOD).path(P::API_PATH);
        match P::api_body() {
            Some(body) => when.json_body(body),
            None => when,
        }
    };
    common::rejecting_echo_mock(server, when, rejected, r#"{"error":"unauthorized"}"#).await
}

/// The URL of `P`'s API call on `server`.
pub(crate) fn api_url<P: Bearer>(server: &MockServer) -> String {
    server.url(P::API_PATH)
}

/// A layer builder over `P`'s source against `server` with `secret`, on `clock` with three
/// fast attempts.
pub(crate) fn layer<P: Bearer>(
    server: &MockServer,
    clock: &ManualClock,
    secret: &str,
) -> common::Builder<P::Source> {
    let source = P::source(P::credentials(secret), &base(server));
    common::on_clock(AuthMiddleware::builder(source), clock)
}

/// `P`'s API call to `url` through `client`.
pub(crate) fn api_request<P: Bearer>(client: &ClientWithMiddleware, url: &str) -> RequestBuilder {
    let method = reqwest::Method::from_bytes(P::API_METHOD.as_bytes()).unwrap();
    let request = client.request(method, url);
    match P::api_body() {
        Some(body) => request.json(&body),
        None => request,
    }
}

/// One API call; the status and the `Authorization` the API saw.
pub(crate) async fn call_api<P: Bearer>(client: &ClientWithMiddleware, url: &str) -> (u16, String) {
    let res = api_request::<P>(client, url).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// One API call that must fail in the layer; the crate's error.
pub(crate) async fn failing_api<P: Bearer>(client: &ClientWithMiddleware, url: &str) -> Error {
    common::layer_error(api_request::<P>(client, url)).await
}

/// [`Partner::debug_parts`] of a bearer partner: the credentials, its source, its layer and a
/// layer builder over it.
pub(crate) fn debug_parts<P: Bearer>(credentials: P::Credentials, base: &Url) -> String {
    let source = P::source(credentials.clone(), base);
    let auth = P::auth(credentials.clone(), base);
    let builder = AuthMiddleware::builder(source.clone());
    format!(
        "{credentials:?} {credentials:#?} {source:?} {source:#?} {auth:?} {auth:#?} {builder:?}"
    )
}

/// [`Partner::assert_sent`] of a bearer partner: a direct fetch from its source.
pub(crate) async fn assert_sent<P: Bearer>(credentials: P::Credentials, secret: &str) {
    let server = MockServer::start_async().await;
    let token = numbered_tokens::<P>(&server, secret).await;
    P::source(credentials, &base(&server))
        .fetch(&cx())
        .await
        .unwrap_or_else(|err| panic!("{}: {err:?}", P::NAME));
    assert_eq!(token.calls_async().await, 1, "{}", P::NAME);
}
