//! The client credentials grant (RFC 6749 §4.4) through [`ClientCredentialsSource`], against a
//! real local HTTP server: the exact request the token endpoint receives (§4.4.2, client
//! authentication §2.3.1, scope §3.3), the success response (§5.1) and every §5.2 error,
//! with exact hit counts (credential errors are not retried, 5xx are).
#![cfg(feature = "oauth2")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use common::{token_body, Seen, SECRET};
use httpmock::{HttpMockResponse, MockServer, When};
use reqwest_middleware::ClientWithMiddleware;
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::error::{Malformed, OAuthErrorCode};
use reqwest_partner_auth::oauth2::{
    ClientAuthMethod, ClientCredentialsAuth, ClientCredentialsSource, TokenUrl,
};
use reqwest_partner_auth::{AuthMiddleware, Error};

const TOKEN_PATH: &str = "/oauth/token";
const API_PATH: &str = "/v1/offers";
const FORM: &str = "application/x-www-form-urlencoded";
const ID: &str = "my-client";

/// A token endpoint (`POST /oauth/token`) that records every request and answers
/// `answers[i]` (status, body) to its i-th call, the last one from then on.
struct TokenEndpoint<'a> {
    mock: httpmock::Mock<'a>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TokenEndpoint<'_> {
    async fn hits(&self) -> usize {
        self.mock.calls_async().await
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The only request received.
    fn only(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "token requests: {seen:#?}");
        seen.into_iter().next().unwrap()
    }
}

async fn token_endpoint(server: &MockServer, answers: Vec<(u16, String)>) -> TokenEndpoint<'_> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let when = |when: When| when.method("POST").path(TOKEN_PATH);
    let mock = common::counted_mock(server, when, move |n, req| {
        log.lock().unwrap().push(Seen::of(req));
        // `n` counts from 1, `answers` from 0.
        let (status, body) = &answers[(n - 1).min(answers.len() - 1)];
        HttpMockResponse::builder()
            .status(*status)
            .header("content-type", "application/json")
            .header("cache-control", "no-store")
            .body(body.clone())
            .build()
    })
    .await;
    TokenEndpoint { mock, seen }
}

fn ok(token: &str) -> (u16, String) {
    (200, token_body(token, 3600))
}

/// A §5.2 error body.
fn oauth_error(status: u16, code: &str, description: &str) -> (u16, String) {
    (
        status,
        format!(r#"{{"error":"{code}","error_description":"{description}"}}"#),
    )
}

/// An API endpoint that answers 200 to `Authorization: Bearer <token>` only.
async fn api_accepting<'a>(server: &'a MockServer, token: &str) -> httpmock::Mock<'a> {
    server
        .mock_async(|when, then| {
            when.method("GET")
                .path(API_PATH)
                .header("authorization", format!("Bearer {token}"));
            then.status(200).body("ok");
        })
        .await
}

/// Counts every API call whatever its header (to assert "no API call went out").
async fn api_any(server: &MockServer) -> httpmock::Mock<'_> {
    server
        .mock_async(|when, then| {
            when.method("GET").path(API_PATH);
            then.status(200).body("ok");
        })
        .await
}

fn source(server: &MockServer, id: &str, secret: &str) -> ClientCredentialsSource {
    let base = common::base(server);
    ClientCredentialsSource::new(TokenUrl::new(base.join(TOKEN_PATH).unwrap()), id, secret)
        .add_origin(&base)
}

fn client(source: ClientCredentialsSource, clock: &ManualClock) -> ClientWithMiddleware {
    let mw: ClientCredentialsAuth =
        common::on_clock(AuthMiddleware::builder(source), clock).build();
    common::client(mw)
}

/// Sends one API request and returns the crate error it failed with.
async fn fail(server: &MockServer, client: &ClientWithMiddleware) -> Error {
    common::layer_error(client.get(server.url(API_PATH))).await
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

// -------------------------------------------------------------------------------------------
// The request (§4.4.2, §2.3.1, §3.3)
// -------------------------------------------------------------------------------------------

/// RFC 6749 §4.4.2: the body is exactly `grant_type=client_credentials`, form-encoded.
/// RFC 6749 §2.3.1: HTTP Basic with id and secret each `application/x-www-form-urlencoded`
/// first (`a:b` → `a%3Ab`, `p@ss word` → `p%40ss+word`), and the secret not in the body.
#[tokio::test]
async fn basic_auth_form_encodes_id_and_secret_and_sends_only_the_grant() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, vec![ok("cc-token")]).await;
    let api = api_accepting(&server, "cc-token").await;
    let client = client(source(&server, "a:b", "p@ss word"), &clock);

    let res = client.get(server.url(API_PATH)).send().await.unwrap();

    assert_eq!(res.status(), 200);
    let seen = token.only();
    assert_eq!(seen.body, "grant_type=client_credentials");
    assert_eq!(
        seen.header("authorization"),
        Some(basic("a%3Ab", "p%40ss+word").as_str())
    );
    assert_eq!(seen.header("content-type"), Some(FORM));
    assert_eq!(seen.header("accept"), Some("application/json"));
    assert_eq!(token.hits().await, 1);
    assert_eq!(api.calls_async().await, 1);
}

/// RFC 6749 §3.3 and §4.4.2: the scopes travel space-separated in one `scope` parameter
/// (form-encoded: `+` for the space), after `grant_type`; Basic auth is unchanged.
#[tokio::test]
async fn basic_auth_sends_scopes_space_joined() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, vec![ok("cc-token")]).await;
    let api = api_accepting(&server, "cc-token").await;
    let client = client(
        source(&server, ID, SECRET).scopes(["read:offers", "write:offers"]),
        &clock,
    );

    client.get(server.url(API_PATH)).send().await.unwrap();

    let seen = token.only();
    assert_eq!(
        seen.body,
        "grant_type=client_credentials&scope=read%3Aoffers+write%3Aoffers"
    );
    assert_eq!(
        seen.header("authorization"),
        Some(basic(ID, SECRET).as_str())
    );
    assert_eq!(api.calls_async().await, 1);
}

/// RFC 6749 §2.3.1 (client password in the request body): `client_id` and `client_secret`
/// in the body, and no `Authorization` header (one authentication method per request).
#[tokio::test]
async fn request_body_auth_sends_credentials_in_the_body_and_no_authorization_header() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, vec![ok("cc-token")]).await;
    let api = api_accepting(&server, "cc-token").await;
    let client = client(
        source(&server, "a:b", "p@ss word").client_auth(ClientAuthMethod::RequestBody),
        &clock,
    );

    client.get(server.url(API_PATH)).send().await.unwrap();

    let seen = token.only();
    assert_eq!(
        seen.body,
        "grant_type=client_credentials&client_id=a%3Ab&client_secret=p%40ss+word"
    );
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("content-type"), Some(FORM));
    assert_eq!(api.calls_async().await, 1);
}

/// RFC 6749 §3.3 + Auth0 (`audience` names the API the token is for, an extension parameter
/// allowed by §8.2): exact body with the client id after the grant type (as in every grant of
/// `OAuthClient`), then scope, audience, and the secret last.
#[tokio::test]
async fn scopes_and_audience_are_sent() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, vec![ok("cc-token")]).await;
    let api = api_accepting(&server, "cc-token").await;
    let client = client(
        source(&server, ID, SECRET)
            .client_auth(ClientAuthMethod::RequestBody)
            .scopes(["read:offers", "write:offers"])
            .param("audience", "https://api.partner.example"),
        &clock,
    );

    client.get(server.url(API_PATH)).send().await.unwrap();

    assert_eq!(
        token.only().body,
        format!(
            "grant_type=client_credentials&client_id={ID}&scope=read%3Aoffers+write%3Aoffers\
             &audience=https%3A%2F%2Fapi.partner.example&client_secret={SECRET}"
        )
    );
    assert_eq!(api.calls_async().await, 1);
}

// -------------------------------------------------------------------------------------------
// The success response (§5.1)
// -------------------------------------------------------------------------------------------

/// RFC 6749 §5.1 / §7.1: the `access_token` of a `token_type: Bearer` response (case
/// insensitive: `bearer` too) is attached to API calls as `Authorization: Bearer`, and reused
/// while `expires_in` says it is valid (one token request for two calls).
#[tokio::test]
async fn bearer_token_is_attached_and_reused_while_valid() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(
        &server,
        vec![(
            200,
            r#"{"access_token":"cc-token","token_type":"bearer","expires_in":3600}"#.into(),
        )],
    )
    .await;
    let api = api_accepting(&server, "cc-token").await;
    let client = client(source(&server, ID, SECRET), &clock);

    for _ in 0..2 {
        let res = client.get(server.url(API_PATH)).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }

    assert_eq!(token.hits().await, 1);
    assert_eq!(api.calls_async().await, 2);
}

/// RFC 6749 §5.1 (`expires_in`): once the lifetime has passed (manual clock), the next call
/// fetches a new token with the same grant; the old one is not sent again.
#[tokio::test]
async fn expires_in_drives_the_next_fetch() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, vec![ok("cc-1"), ok("cc-2")]).await;
    let first = api_accepting(&server, "cc-1").await;
    let second = api_accepting(&server, "cc-2").await;
    let client = client(source(&server, ID, SECRET), &clock);

    client.get(server.url(API_PATH)).send().await.unwrap();
    clock.advance(Duration::from_secs(3600));
    client.get(server.url(API_PATH)).send().await.unwrap();

    assert_eq!(token.hits().await, 2);
    assert!(token
        .seen()
        .iter()
        .all(|s| s.body == "grant_type=client_credentials"));
    assert_eq!(first.calls_async().await, 1);
    assert_eq!(second.calls_async().await, 1);
}

/// RFC 6749 §7.1: a client must not use a token whose type it does not understand: a
/// `token_type` other than `Bearer` is `Error::MalformedResponse`, not retried, and no API
/// call goes out with it.
#[tokio::test]
async fn non_bearer_token_type_is_malformed() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(
        &server,
        vec![(
            200,
            r#"{"access_token":"cc-token","token_type":"mac","expires_in":3600}"#.into(),
        )],
    )
    .await;
    let api = api_any(&server).await;
    let client = client(source(&server, ID, SECRET), &clock);

    let err = fail(&server, &client).await;

    match err {
        Error::MalformedResponse(Malformed::InvalidField { field, .. }) => {
            assert_eq!(field, "token_type")
        }
        other => panic!("expected a malformed token_type, got {other:?}"),
    }
    assert_eq!(token.hits().await, 1);
    assert_eq!(api.calls_async().await, 0);
}

// -------------------------------------------------------------------------------------------
// Error responses (§5.2)
// -------------------------------------------------------------------------------------------

/// RFC 6749 §5.2: `invalid_client` (401 with `WWW-Authenticate`, or 400) is
/// `Error::InvalidCredentials { code: Some("invalid_client") }` with the server's
/// description, and is not retried.
#[tokio::test]
async fn invalid_client_is_invalid_credentials_and_not_retried() {
    for status in [401, 400] {
        let server = MockServer::start_async().await;
        let clock = ManualClock::new();
        let token = token_endpoint(
            &server,
            vec![oauth_error(
                status,
                "invalid_client",
                "Client authentication failed",
            )],
        )
        .await;
        let api = api_any(&server).await;
        let client = client(source(&server, ID, SECRET), &clock);

        let err = fail(&server, &client).await;

        match err {
            Error::InvalidCredentials { code, message } => {
                assert_eq!(code.as_deref(), Some("invalid_client"));
                assert_eq!(message, "Client authentication failed");
            }
            other => panic!("{status}: expected InvalidCredentials, got {other:?}"),
        }
        assert_eq!(token.hits().await, 1, "{status} must not be retried");
        assert_eq!(api.calls_async().await, 0);
        assert_eq!(clock.slept(), Duration::ZERO);
    }
}

/// RFC 6749 §5.2: `invalid_request`, `invalid_grant`, `unauthorized_client`,
/// `unsupported_grant_type` and `invalid_scope` on a 400 are `Error::OAuth` with the typed
/// code and the `error_description`; none is retried.
#[tokio::test]
async fn oauth_error_codes_are_typed_and_not_retried() {
    let cases = [
        ("invalid_request", OAuthErrorCode::InvalidRequest),
        ("invalid_grant", OAuthErrorCode::InvalidGrant),
        ("unauthorized_client", OAuthErrorCode::UnauthorizedClient),
        (
            "unsupported_grant_type",
            OAuthErrorCode::UnsupportedGrantType,
        ),
        ("invalid_scope", OAuthErrorCode::InvalidScope),
    ];
    for (wire, expected) in cases {
        let server = MockServer::start_async().await;
        let clock = ManualClock::new();
        let token =
            token_endpoint(&server, vec![oauth_error(400, wire, "not for this client")]).await;
        let api = api_any(&server).await;
        let client = client(source(&server, ID, SECRET).scopes(["admin"]), &clock);

        let err = fail(&server, &client).await;

        match err {
            Error::OAuth { code, description } => {
                assert_eq!(code, expected, "{wire}");
                assert_eq!(code.as_str(), wire);
                assert_eq!(description.as_deref(), Some("not for this client"));
            }
            other => panic!("{wire}: expected Error::OAuth, got {other:?}"),
        }
        assert_eq!(token.hits().await, 1, "{wire} must not be retried");
        assert_eq!(api.calls_async().await, 0);
    }
}

/// RFC 6749 §5.2 + crate rule "errors never echo secrets": an `error_description` that
/// echoes the client secret keeps it out of the error's `Display` and `Debug`.
#[tokio::test]
async fn error_description_echoing_the_secret_is_scrubbed() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let _token = token_endpoint(
        &server,
        vec![oauth_error(
            400,
            "invalid_scope",
            &format!("scope not allowed for secret {SECRET}"),
        )],
    )
    .await;
    let client = client(
        source(&server, ID, SECRET).client_auth(ClientAuthMethod::RequestBody),
        &clock,
    );

    let err = fail(&server, &client).await;

    assert!(matches!(err, Error::OAuth { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(SECRET), "{shown}");
}

/// RFC 6749 §5.2 says nothing of 5xx: a server failure is transient, so 503 then 500 then
/// 200 succeeds after exactly three identical requests, with a backoff (on the manual clock).
#[tokio::test]
async fn server_errors_are_retried() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(
        &server,
        vec![
            (503, "service unavailable".into()),
            oauth_error(500, "server_error", "oops"),
            ok("cc-token"),
        ],
    )
    .await;
    let api = api_accepting(&server, "cc-token").await;
    let client = client(source(&server, ID, SECRET), &clock);

    let res = client.get(server.url(API_PATH)).send().await.unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(token.hits().await, 3);
    assert!(token
        .seen()
        .iter()
        .all(|s| s.body == "grant_type=client_credentials"));
    assert_eq!(api.calls_async().await, 1);
    assert!(
        clock.slept() > Duration::ZERO,
        "no backoff between attempts"
    );
}

/// Retries are bounded: a token endpoint that always answers 503 is called exactly
/// `max_attempts` (3) times, then the caller gets `Error::TokenEndpoint { status: 503 }`.
#[tokio::test]
async fn persistent_server_errors_give_up_after_max_attempts() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, vec![(503, "service unavailable".into())]).await;
    let api = api_any(&server).await;
    let client = client(source(&server, ID, SECRET), &clock);

    let err = fail(&server, &client).await;

    match err {
        Error::TokenEndpoint { status, .. } => assert_eq!(status, 503),
        other => panic!("expected TokenEndpoint, got {other:?}"),
    }
    assert_eq!(token.hits().await, 3);
    assert_eq!(api.calls_async().await, 0);
}

// -------------------------------------------------------------------------------------------
// Configuration and transport
// -------------------------------------------------------------------------------------------

/// The grant has no authorization endpoint: the source's client carries no authorize URL,
/// and its token URL is not reused as one (it shows up once, as the token URL).
#[test]
fn the_token_url_is_never_an_authorize_url() {
    let token_url = "https://auth.partner.example/oauth/token";
    let source = ClientCredentialsSource::new(TokenUrl::parse(token_url).unwrap(), ID, SECRET);

    let shown = format!("{source:?}");

    assert!(shown.contains("authorize_url: None"), "{shown}");
    assert!(
        shown.contains(&format!("token_url: {token_url:?}")),
        "{shown}"
    );
    assert_eq!(shown.matches(token_url).count(), 1, "{shown}");
}

/// A name that is not loopback; [`common::resolving_http_client`] maps it to the mock.
const REMOTE_HOST: &str = "auth.partner.invalid";

/// A client whose token endpoint and API are both on plain `http://REMOTE_HOST:<port>`, with
/// the source's `allow_insecure_http()` when `opt_in`; and the API URL.
fn remote_client(
    server: &MockServer,
    clock: &ManualClock,
    opt_in: bool,
) -> (ClientWithMiddleware, url::Url) {
    let base = url::Url::parse(&format!("http://{REMOTE_HOST}:{}/", server.port())).unwrap();
    let mut source =
        ClientCredentialsSource::new(TokenUrl::new(base.join(TOKEN_PATH).unwrap()), ID, SECRET)
            .http_client(common::resolving_http_client(REMOTE_HOST, server))
            .add_origin(&base);
    if opt_in {
        source = source.allow_insecure_http();
    }
    let client = common::client_with(
        common::resolving_http_client(REMOTE_HOST, server),
        common::on_clock(AuthMiddleware::builder(source), clock),
    );
    (client, base.join(API_PATH).unwrap())
}

/// Without the opt-in, an API call to a plain-http, non-loopback host is refused with
/// `Error::InsecureTransport` before anything is sent: no token request, no API call.
#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused_by_default() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, vec![ok("cc-token")]).await;
    let api = api_any(&server).await;
    let (client, url) = remote_client(&server, &clock, false);

    let err = common::layer_error(client.get(url)).await;

    match err {
        Error::InsecureTransport { origin } => {
            assert_eq!(origin, format!("http://{REMOTE_HOST}:{}", server.port()));
        }
        other => panic!("expected InsecureTransport, got {other:?}"),
    }
    assert_eq!(token.hits().await, 0, "the secret was sent");
    assert_eq!(api.calls_async().await, 0);
}

/// `ClientCredentialsSource::allow_insecure_http()` is the one switch for plain http to a
/// non-loopback host: it covers the token endpoint and the API calls of a layer over the
/// source, so both go out and the API call carries the token.
#[tokio::test]
async fn allow_insecure_http_covers_the_token_endpoint_and_the_api() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, vec![ok("cc-token")]).await;
    let api = api_accepting(&server, "cc-token").await;
    let (client, url) = remote_client(&server, &clock, true);

    let res = client.get(url).send().await.unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(token.hits().await, 1);
    assert_eq!(
        token.only().header("host"),
        Some(format!("{REMOTE_HOST}:{}", server.port()).as_str())
    );
    assert_eq!(api.calls_async().await, 1);
}
