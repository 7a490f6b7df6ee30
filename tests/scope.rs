//! Which requests get credentials, and over which transport.

mod common;

use std::sync::Arc;

use common::{
    base, client_with, middleware, on_clock, resolving_http_client, token_body, TestSource, SECRET,
    TOKEN_PATH,
};
use httpmock::MockServer;
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::engine::{HttpTokenSource, Param};
use reqwest_partner_auth::{AuthMiddleware, Error};
use url::Url;

/// A non-loopback host name that never resolves through DNS (RFC 6761 `.invalid`).
const REMOTE_HOST: &str = "api.partner.invalid";

/// A mock token endpoint answering one fixed token.
async fn token_mock<'a>(server: &'a MockServer, token: &str) -> httpmock::Mock<'a> {
    let body = token_body(token, 3600);
    common::fixed_token_mock(server, 200, "application/json", body).await
}

/// A mock API endpoint that answers with the `Authorization` header values it received,
/// joined by `|` (empty when there was none), so a test sees exactly what arrived.
async fn echo_mock<'a>(server: &'a MockServer, path: &str) -> httpmock::Mock<'a> {
    common::echo_mock(server, |when| when.method("GET").path(path)).await
}

fn remote_url(server: &MockServer, path: &str) -> Url {
    Url::parse(&format!("http://{REMOTE_HOST}:{}{path}", server.port())).unwrap()
}

/// A request to an origin the middleware is not scoped to (another
/// port on the same host) goes out without `Authorization` and costs no token fetch.
#[tokio::test]
async fn other_origin_gets_no_header_and_no_fetch() {
    let auth = MockServer::start_async().await;
    let other = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_mock(&auth, "scoped-token").await;
    let api = other
        .mock_async(|when, then| {
            when.method("GET")
                .path("/v1/thing")
                .header_missing("authorization");
            then.status(200).body("ok");
        })
        .await;
    let client = common::client(middleware(&auth, &clock));

    let res = client.get(other.url("/v1/thing")).send().await.unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok");
    assert_eq!(api.calls_async().await, 1);
    assert_eq!(token.calls_async().await, 0);
}

/// `.add_origin(&url)` adds an origin; requests there carry the token
/// (exactly one header), while the default scope keeps working.
#[tokio::test]
async fn add_origin_adds_an_origin() {
    let auth = MockServer::start_async().await;
    let other = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_mock(&auth, "scoped-token").await;
    let other_api = echo_mock(&other, "/v1/thing").await;
    let own_api = echo_mock(&auth, "/v1/own").await;
    let other_base = base(&other);
    let client = common::client(middleware(&auth, &clock).add_origin(&other_base));

    let res = client.get(other.url("/v1/thing")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "Bearer scoped-token");

    let res = client.get(auth.url("/v1/own")).send().await.unwrap();
    assert_eq!(res.text().await.unwrap(), "Bearer scoped-token");

    assert_eq!(other_api.calls_async().await, 1);
    assert_eq!(own_api.calls_async().await, 1);
    assert_eq!(token.calls_async().await, 1);
}

/// A request that already carries an `Authorization` header is left
/// alone: its own header arrives unchanged and alone, and the token endpoint is not hit.
#[tokio::test]
async fn existing_authorization_header_is_left_alone() {
    let auth = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_mock(&auth, "scoped-token").await;
    let api = echo_mock(&auth, "/v1/own").await;
    let client = common::client(middleware(&auth, &clock));

    let res = client
        .get(auth.url("/v1/own"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "Basic dXNlcjpwYXNz");
    assert_eq!(api.calls_async().await, 1);
    assert_eq!(token.calls_async().await, 0);
}

/// A middleware scoped to a plain-http, non-loopback origin, over a source that does not opt
/// in to plain http, refuses the request with `Error::InsecureTransport` before anything is
/// sent: no token fetch and no API call (DNS maps the name to a local mock, so a leak would be
/// seen).
#[tokio::test]
async fn plain_http_to_remote_host_is_refused() {
    let auth = MockServer::start_async().await;
    let api_server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_mock(&auth, "scoped-token").await;
    let api = echo_mock(&api_server, "/v1/thing").await;
    let remote = remote_url(&api_server, "/v1/thing");
    let client = client_with(
        resolving_http_client(REMOTE_HOST, &api_server),
        middleware(&auth, &clock).add_origin(&remote),
    );

    let err = client.get(remote.clone()).send().await.unwrap_err();

    match Error::from_middleware(&err) {
        Some(Error::InsecureTransport { origin }) => {
            assert_eq!(
                origin,
                &format!("http://{REMOTE_HOST}:{}", api_server.port())
            );
        }
        other => panic!("expected InsecureTransport, got {other:?} ({err})"),
    }
    assert_eq!(token.calls_async().await, 0);
    assert_eq!(api.calls_async().await, 0);
}

/// The refusal names only the origin: the path and query of the
/// request URL (which may carry a credential) are not echoed in the error.
#[tokio::test]
async fn plain_http_refusal_names_only_the_origin() {
    let auth = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_mock(&auth, "scoped-token").await;
    let scope = Url::parse(&format!("http://{REMOTE_HOST}")).unwrap();
    let client = common::client(middleware(&auth, &clock).add_origin(&scope));

    let url = format!("http://{REMOTE_HOST}/v1/thing?api_key={SECRET}");
    let err = client.get(url).send().await.unwrap_err();

    let inner =
        Error::from_middleware(&err).unwrap_or_else(|| panic!("not a crate error: {err:?}"));
    assert!(
        matches!(inner, Error::InsecureTransport { origin } if origin == &format!("http://{REMOTE_HOST}")),
        "{inner:?}"
    );
    assert!(!format!("{inner:?} {inner}").contains(SECRET));
    assert_eq!(token.calls_async().await, 0);
}

/// With the source's `.allow_insecure_http()` the check is off for the layer too: the token
/// is fetched and the request reaches the plain-http, non-loopback origin added on the layer
/// with it.
#[tokio::test]
async fn allow_insecure_http_opts_in() {
    let auth = MockServer::start_async().await;
    let api_server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_mock(&auth, "scoped-token").await;
    let api = echo_mock(&api_server, "/v1/thing").await;
    let remote = remote_url(&api_server, "/v1/thing");
    let client = client_with(
        resolving_http_client(REMOTE_HOST, &api_server),
        on_clock(
            AuthMiddleware::builder(loopback_token_source(&auth).allow_insecure_http()),
            &clock,
        )
        .add_origin(&remote),
    );

    let res = client.get(remote).send().await.unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "Bearer scoped-token");
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(api.calls_async().await, 1);
}

/// A source whose token URL is the plain-http loopback `server` (allowed without an opt-in),
/// its API origin `server` too.
fn loopback_token_source(server: &MockServer) -> HttpTokenSource {
    HttpTokenSource::post(base(server).join(TOKEN_PATH).unwrap())
        .param("client_id", Param::text("test-client"))
        .param("client_secret", Param::secret(SECRET))
        .add_origin(&base(server))
}

/// A source whose token URL is plain http on a non-loopback name that DNS maps to `server`.
fn remote_token_source(server: &MockServer) -> HttpTokenSource {
    HttpTokenSource::post(remote_url(server, TOKEN_PATH))
        .param("client_id", Param::text("test-client"))
        .param("client_secret", Param::secret(SECRET))
        .http_client(resolving_http_client(REMOTE_HOST, server))
        .add_origin(&base(server))
}

/// An `HttpTokenSource` whose token URL is plain http to a
/// non-loopback host fails with `Error::InsecureTransport` without sending the credentials.
#[tokio::test]
async fn token_source_refuses_plain_http_to_remote_host() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_mock(&server, "remote-token").await;
    let api = echo_mock(&server, "/v1/thing").await;
    let client = common::client(
        AuthMiddleware::builder(remote_token_source(&server)).clock(Arc::new(clock.clone())),
    );

    let err = client
        .get(server.url("/v1/thing"))
        .send()
        .await
        .unwrap_err();

    match Error::from_middleware(&err) {
        Some(Error::InsecureTransport { origin }) => {
            assert_eq!(origin, &format!("http://{REMOTE_HOST}:{}", server.port()));
        }
        other => panic!("expected InsecureTransport, got {other:?} ({err})"),
    }
    assert_eq!(token.calls_async().await, 0, "credentials were sent");
    assert_eq!(api.calls_async().await, 0);
    assert_eq!(
        clock.slept(),
        std::time::Duration::ZERO,
        "a refusal is not retried"
    );
}

/// The token source's own `.allow_insecure_http()` opts in: the same
/// plain-http token URL is then used.
#[tokio::test]
async fn token_source_allow_insecure_http_opts_in() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_mock(&server, "remote-token").await;
    let api = echo_mock(&server, "/v1/thing").await;
    let client = common::client(
        AuthMiddleware::builder(remote_token_source(&server).allow_insecure_http())
            .clock(Arc::new(clock.clone())),
    );

    let res = client.get(server.url("/v1/thing")).send().await.unwrap();

    assert_eq!(res.text().await.unwrap(), "Bearer remote-token");
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(api.calls_async().await, 1);
}

/// Plain http to a loopback token endpoint is allowed by default (the
/// test source talks to `http://127.0.0.1:<port>`), so local development needs no opt-in.
#[tokio::test]
async fn plain_http_to_loopback_is_allowed() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_mock(&server, "local-token").await;
    let api = echo_mock(&server, "/v1/thing").await;
    assert!(server.base_url().starts_with("http://127.0.0.1:"));
    let client = client_with(
        reqwest::Client::new(),
        AuthMiddleware::builder(TestSource::new(&server)).clock(Arc::new(clock.clone())),
    );

    let res = client.get(server.url("/v1/thing")).send().await.unwrap();

    assert_eq!(res.text().await.unwrap(), "Bearer local-token");
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(api.calls_async().await, 1);
}

/// The source's one `.allow_insecure_http()` switch covers both halves of a plain-http,
/// non-loopback partner: the token is fetched from its token endpoint and the API request to
/// its origin carries it (DNS maps the name to the local mock).
#[tokio::test]
async fn one_source_switch_allows_plain_http_to_the_token_endpoint_and_the_api() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_mock(&server, "remote-token").await;
    let api = echo_mock(&server, "/v1/thing").await;
    let remote = remote_url(&server, "/v1/thing");
    let source = remote_token_source(&server)
        .add_origin(&remote)
        .allow_insecure_http();
    let client = client_with(
        resolving_http_client(REMOTE_HOST, &server),
        on_clock(AuthMiddleware::builder(source), &clock),
    );

    let res = client.get(remote).send().await.unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "Bearer remote-token");
    assert_eq!(token.calls_async().await, 1, "the token endpoint was used");
    assert_eq!(api.calls_async().await, 1, "the api request was sent");
}

/// Without the source's switch, an API request to a plain-http, non-loopback origin the source
/// itself names fails with `Error::InsecureTransport` naming that origin, before anything is
/// sent: no token fetch (the loopback token endpoint would have been allowed) and no API call.
#[tokio::test]
async fn without_the_source_switch_plain_http_api_requests_are_refused() {
    let auth = MockServer::start_async().await;
    let api_server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_mock(&auth, "scoped-token").await;
    let api = echo_mock(&api_server, "/v1/thing").await;
    let remote = remote_url(&api_server, "/v1/thing");
    let source = loopback_token_source(&auth).add_origin(&remote);
    let client = client_with(
        resolving_http_client(REMOTE_HOST, &api_server),
        on_clock(AuthMiddleware::builder(source), &clock),
    );

    let err = client.get(remote).send().await.unwrap_err();

    match Error::from_middleware(&err) {
        Some(Error::InsecureTransport { origin }) => {
            assert_eq!(
                origin,
                &format!("http://{REMOTE_HOST}:{}", api_server.port())
            );
        }
        other => panic!("expected InsecureTransport, got {other:?} ({err})"),
    }
    assert_eq!(token.calls_async().await, 0, "no token was fetched");
    assert_eq!(api.calls_async().await, 0, "nothing reached the api");
}
