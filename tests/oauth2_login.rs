//! The authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636 S256) through
//! [`OAuthClient::begin_login`] and [`PendingLogin::complete`], as Pentaleap's Auth0 tenant
//! runs it: the authorize URL, the callback checks (state, errors, missing code) and the
//! exact code exchange, against a real local HTTP server.
#![cfg(feature = "oauth2")]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use common::{json_response, Seen};
use httpmock::{HttpMockRequest, MockServer};
use reqwest_partner_auth::error::{CallbackError, ConfigError, OAuthErrorCode};
use reqwest_partner_auth::oauth2::{
    pkce_challenge, AuthorizeUrl, OAuthClient, PendingLogin, RedirectUrl, TokenUrl,
};
use reqwest_partner_auth::Error;
use secrecy::ExposeSecret as _;
use sha2::{Digest as _, Sha256};
use url::Url;

const CLIENT_ID: &str = "pentaleap-client";
const AUDIENCE: &str = "https://api.pentaleap.example";
const REDIRECT: &str = "http://127.0.0.1:8976/callback";
const SECRET: &str = "SENTINEL-SECRET-7d1f";
const TOKEN_PATH: &str = "/oauth/token";
const FORM: &str = "application/x-www-form-urlencoded";

/// An Auth0 client on `server` (base URL form), as the Pentaleap guide configures it.
fn auth0(server: &MockServer) -> OAuthClient {
    OAuthClient::auth0(&server.base_url(), CLIENT_ID)
        .unwrap()
        .audience(AUDIENCE)
        .scopes(["offline_access", "read:campaigns"])
        .redirect_uri(RedirectUrl::parse(REDIRECT).unwrap())
}

/// The query of `url` as (name, value) pairs, decoded, in order.
fn query(url: &Url) -> Vec<(String, String)> {
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The one value of `name` in the query of `url`.
fn param(url: &Url, name: &str) -> String {
    let values: Vec<String> = query(url)
        .into_iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values.len(), 1, "{name} in {url}");
    values.into_iter().next().unwrap()
}

/// The callback Auth0 would redirect to, with `pairs` as its query.
fn callback(pairs: &[(&str, &str)]) -> Url {
    let mut url = Url::parse(REDIRECT).unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    url
}

/// An Auth0-like token endpoint for the code exchange: it records each request and, like
/// Auth0, answers 200 with an access and a refresh token only if the received
/// `code_verifier` hashes (S256) to `challenge`; otherwise 400 `invalid_grant`.
async fn token_endpoint<'a>(
    server: &'a MockServer,
    challenge: String,
) -> (httpmock::Mock<'a>, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let mock = server
        .mock_async(move |when, then| {
            when.method("POST").path(TOKEN_PATH);
            then.respond_with(move |req: &HttpMockRequest| {
                let seen = Seen::of(req);
                let verifier = seen.field("code_verifier").unwrap_or_default();
                log.lock().unwrap().push(seen);
                let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(Sha256::digest(verifier.as_bytes()));
                let (status, body) = if computed == challenge {
                    (
                        200,
                        r#"{"access_token":"at-1","refresh_token":"rt-1","token_type":"Bearer","expires_in":86400,"scope":"offline_access read:campaigns"}"#,
                    )
                } else {
                    (
                        400,
                        r#"{"error":"invalid_grant","error_description":"Failed to verify code verifier"}"#,
                    )
                };
                json_response(status, body)
            });
        })
        .await;
    (mock, seen)
}

/// A token endpoint that answers every request with `status` and `body`.
async fn fixed_token_endpoint<'a>(
    server: &'a MockServer,
    status: u16,
    body: &str,
) -> httpmock::Mock<'a> {
    common::fixed_post_mock(server, TOKEN_PATH, status, "application/json", body).await
}

async fn complete_err(login: PendingLogin, callback: &Url) -> Error {
    login
        .complete(callback)
        .await
        .expect_err("the callback should be rejected")
}

// -------------------------------------------------------------------------------------------
// The authorization request (§4.1.1, RFC 7636 §4.2-4.3)
// -------------------------------------------------------------------------------------------

/// RFC 6749 §4.1.1 + Auth0 (Pentaleap guide step 1): `/authorize` with `audience`,
/// `response_type=code`, `client_id`, `redirect_uri`, `scope` (space-separated, with
/// `offline_access` for a refresh token) and `state`; RFC 7636 §4.3: `code_challenge`
/// (S256: 43 base64url characters) and `code_challenge_method=S256`; nothing else, and
/// certainly no `code_verifier`.
#[tokio::test]
async fn authorize_url_carries_auth0_parameters_and_an_s256_challenge() {
    let server = MockServer::start_async().await;
    let login = auth0(&server).begin_login().unwrap();
    let url = login.authorize_url();

    assert_eq!(
        url.origin(),
        Url::parse(&server.base_url()).unwrap().origin()
    );
    assert_eq!(url.path(), "/authorize");
    let names: Vec<String> = query(url).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        [
            "audience",
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method"
        ]
    );
    assert_eq!(param(url, "audience"), AUDIENCE);
    assert_eq!(param(url, "response_type"), "code");
    assert_eq!(param(url, "client_id"), CLIENT_ID);
    assert_eq!(param(url, "redirect_uri"), REDIRECT);
    assert_eq!(param(url, "scope"), "offline_access read:campaigns");
    assert_eq!(param(url, "code_challenge_method"), "S256");
    let challenge = param(url, "code_challenge");
    assert_eq!(challenge.len(), 43, "base64url of a SHA-256 digest");
    let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&challenge)
        .expect("the challenge is base64url without padding");
    assert_eq!(digest.len(), 32);
    assert_eq!(login.redirect_uri().as_str(), REDIRECT);
}

/// RFC 6749 §10.10/§10.12 and RFC 7636 §7.1: `state` and the verifier are fresh random values
/// per login: two logins differ in both, and `state` carries at least 128 bits.
#[tokio::test]
async fn state_and_challenge_are_random_per_login() {
    let server = MockServer::start_async().await;
    let client = auth0(&server);
    let a = client.begin_login().unwrap();
    let b = client.begin_login().unwrap();

    let (state_a, state_b) = (
        param(a.authorize_url(), "state"),
        param(b.authorize_url(), "state"),
    );
    assert_ne!(state_a, state_b);
    assert_ne!(
        param(a.authorize_url(), "code_challenge"),
        param(b.authorize_url(), "code_challenge")
    );
    for state in [&state_a, &state_b] {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(state)
            .expect("state is base64url");
        assert!(bytes.len() >= 16, "state has {} bytes", bytes.len());
    }
}

/// RFC 6749 §3.1.2 (the redirect endpoint must be registered and sent; Pentaleap asks for
/// the callback URI up front): without a redirect URI there is no login, `Error::Config`.
#[tokio::test]
async fn begin_login_without_redirect_uri_is_a_config_error() {
    let server = MockServer::start_async().await;
    let client = OAuthClient::auth0(&server.base_url(), CLIENT_ID).unwrap();

    let err = client.begin_login().expect_err("no redirect uri");

    assert!(
        matches!(
            err,
            Error::Config(ConfigError::Missing {
                what: "redirect uri"
            })
        ),
        "{err:?}"
    );
}

/// RFC 6749 §3.1 (a login opens the authorization endpoint): a client built from its token
/// URL alone has none, so `begin_login` is `Error::Config` naming the missing authorize URL
/// (the token URL is never used in its place).
#[test]
fn begin_login_without_authorize_url_is_a_config_error() {
    let client = OAuthClient::new(
        TokenUrl::parse("https://auth.example/oauth/token").unwrap(),
        CLIENT_ID,
    )
    .redirect_uri(RedirectUrl::parse(REDIRECT).unwrap());

    let err = client.begin_login().expect_err("no authorize url");

    assert!(
        matches!(
            err,
            Error::Config(ConfigError::Missing {
                what: "authorize url"
            })
        ),
        "{err:?}"
    );
}

/// RFC 6749 §3.1 (the authorization endpoint requires TLS): an `http://` authorize URL on a
/// non-loopback host is refused with `Error::InsecureTransport`.
#[tokio::test]
async fn plain_http_authorize_url_on_a_remote_host_is_refused() {
    let client = OAuthClient::new(
        TokenUrl::parse("https://auth.example/oauth/token").unwrap(),
        CLIENT_ID,
    )
    .authorize_url(AuthorizeUrl::parse("http://auth.example/authorize").unwrap())
    .redirect_uri(RedirectUrl::parse(REDIRECT).unwrap());

    let err = client.begin_login().expect_err("plain http");

    assert!(matches!(err, Error::InsecureTransport { .. }), "{err:?}");
}

// -------------------------------------------------------------------------------------------
// The callback and the code exchange (§4.1.2, §4.1.3, RFC 7636 §4.5-4.6)
// -------------------------------------------------------------------------------------------

/// RFC 6749 §4.1.3 + RFC 7636 §4.5 (Pentaleap guide step 2): the code is exchanged with the
/// exact form body `grant_type=authorization_code&client_id&code&redirect_uri&code_verifier`
/// (no secret for a public client, no `Authorization` header); the server's S256 of the
/// received verifier equals the challenge of the authorize URL (RFC 7636 §4.6); the verifier
/// is 43-128 unreserved characters (§4.1) and never appeared in the authorize URL; the
/// result holds the access and the refresh token.
#[tokio::test]
async fn complete_exchanges_the_code_with_the_pkce_verifier() {
    let server = MockServer::start_async().await;
    let login = OAuthClient::new(TokenUrl::parse(&server.url(TOKEN_PATH)).unwrap(), CLIENT_ID)
        .authorize_url(AuthorizeUrl::parse(&server.url("/authorize")).unwrap())
        .audience(AUDIENCE)
        .scopes(["offline_access", "read:campaigns"])
        .redirect_uri(RedirectUrl::parse(REDIRECT).unwrap())
        .begin_login()
        .unwrap();
    let authorize = login.authorize_url().clone();
    let state = param(&authorize, "state");
    let (token, seen) = token_endpoint(&server, param(&authorize, "code_challenge")).await;

    let tokens = login
        .complete(&callback(&[("code", "auth-code-1"), ("state", &state)]))
        .await
        .expect("the exchange should succeed");

    assert_eq!(token.calls_async().await, 1);
    let seen = seen.lock().unwrap()[0].clone();
    let verifier = seen.field("code_verifier").expect("a code_verifier");
    assert_eq!(
        seen.body,
        format!(
            "grant_type=authorization_code&client_id={CLIENT_ID}&code=auth-code-1\
             &redirect_uri=http%3A%2F%2F127.0.0.1%3A8976%2Fcallback&code_verifier={verifier}"
        )
    );
    assert_eq!(seen.header("content-type"), Some(FORM));
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(
        pkce_challenge(&verifier),
        param(&authorize, "code_challenge")
    );
    assert!((43..=128).contains(&verifier.len()), "{}", verifier.len());
    assert!(verifier
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c)));
    assert!(!authorize.as_str().contains(&verifier));
    assert_eq!(
        tokens.access_token.as_ref().map(|t| t.expose_secret()),
        Some("at-1")
    );
    assert_eq!(
        tokens.refresh_token.as_ref().map(|t| t.expose_secret()),
        Some("rt-1")
    );
    assert!(tokens.access_expires_at.is_some());
}

/// RFC 6749 §2.3.1 + §4.1.3: a confidential client authenticates at the exchange
/// (`client_secret` in the body, as Auth0's `client_secret_post`), after the PKCE fields.
#[tokio::test]
async fn confidential_client_sends_its_secret_at_the_exchange() {
    let server = MockServer::start_async().await;
    let login = auth0(&server).client_secret(SECRET).begin_login().unwrap();
    let authorize = login.authorize_url().clone();
    let state = param(&authorize, "state");
    let (token, seen) = token_endpoint(&server, param(&authorize, "code_challenge")).await;

    login
        .complete(&callback(&[("state", &state), ("code", "c")]))
        .await
        .unwrap();

    assert_eq!(token.calls_async().await, 1);
    let seen = seen.lock().unwrap()[0].clone();
    let names: Vec<String> = seen.form().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        names,
        [
            "grant_type",
            "client_id",
            "code",
            "redirect_uri",
            "code_verifier",
            "client_secret"
        ]
    );
    assert_eq!(seen.field("client_secret").as_deref(), Some(SECRET));
}

/// RFC 6749 §10.12 (CSRF): a callback whose `state` is not this login's is
/// `Error::Callback`, and the code is never sent to the token endpoint.
#[tokio::test]
async fn state_mismatch_is_rejected_without_a_token_request() {
    let server = MockServer::start_async().await;
    let token = fixed_token_endpoint(&server, 200, r#"{"access_token":"x"}"#).await;
    let login = auth0(&server).begin_login().unwrap();

    let err = complete_err(login, &callback(&[("code", "c"), ("state", "forged")])).await;

    assert!(
        matches!(err, Error::Callback(CallbackError::StateMismatch)),
        "{err:?}"
    );
    assert_eq!(token.calls_async().await, 0);
}

/// RFC 6749 §4.1.2 (`state` is required in the response when it was in the request) and
/// §10.12: a callback without `state` is `Error::Callback`, no token request.
#[tokio::test]
async fn missing_state_is_rejected_without_a_token_request() {
    let server = MockServer::start_async().await;
    let token = fixed_token_endpoint(&server, 200, r#"{"access_token":"x"}"#).await;
    let login = auth0(&server).begin_login().unwrap();

    let err = complete_err(login, &callback(&[("code", "c")])).await;

    assert!(
        matches!(err, Error::Callback(CallbackError::StateMissing)),
        "{err:?}"
    );
    assert_eq!(token.calls_async().await, 0);
}

/// RFC 6749 §4.1.2.1: `?error=access_denied&error_description=..&state=<this login's>` is
/// `Error::OAuth { code: AccessDenied, description }`, and nothing is sent.
#[tokio::test]
async fn error_callback_is_a_typed_oauth_error() {
    let server = MockServer::start_async().await;
    let token = fixed_token_endpoint(&server, 200, r#"{"access_token":"x"}"#).await;
    let login = auth0(&server).begin_login().unwrap();
    let state = param(login.authorize_url(), "state");

    let err = complete_err(
        login,
        &callback(&[
            ("error", "access_denied"),
            ("error_description", "The user cancelled the login"),
            ("state", &state),
        ]),
    )
    .await;

    match err {
        Error::OAuth { code, description } => {
            assert_eq!(code, OAuthErrorCode::AccessDenied);
            assert_eq!(description.as_deref(), Some("The user cancelled the login"));
        }
        other => panic!("expected Error::OAuth, got {other:?}"),
    }
    assert_eq!(token.calls_async().await, 0);
}

/// RFC 6749 §10.12: an error callback is checked for `state` first: one with a foreign
/// state is `Error::Callback` (a forged error), not `Error::OAuth`.
#[tokio::test]
async fn error_callback_with_a_foreign_state_is_a_callback_error() {
    let server = MockServer::start_async().await;
    let token = fixed_token_endpoint(&server, 200, r#"{"access_token":"x"}"#).await;
    let login = auth0(&server).begin_login().unwrap();

    let err = complete_err(
        login,
        &callback(&[("error", "access_denied"), ("state", "forged")]),
    )
    .await;

    assert!(
        matches!(err, Error::Callback(CallbackError::StateMismatch)),
        "{err:?}"
    );
    assert_eq!(token.calls_async().await, 0);
}

/// RFC 6749 §4.1.2 (`code` is required in a success response): a callback with the right
/// state but no code is `Error::Callback`, no token request.
#[tokio::test]
async fn missing_code_is_rejected_without_a_token_request() {
    let server = MockServer::start_async().await;
    let token = fixed_token_endpoint(&server, 200, r#"{"access_token":"x"}"#).await;
    let login = auth0(&server).begin_login().unwrap();
    let state = param(login.authorize_url(), "state");

    let err = complete_err(login, &callback(&[("state", &state)])).await;

    assert!(
        matches!(err, Error::Callback(CallbackError::CodeMissing)),
        "{err:?}"
    );
    assert_eq!(token.calls_async().await, 0);
}

/// RFC 6749 §5.2: an exchange answered 400 `invalid_grant` (code expired, used, or a verifier
/// that does not match) is `Error::OAuth { code: InvalidGrant }`, sent once.
#[tokio::test]
async fn rejected_exchange_is_invalid_grant() {
    let server = MockServer::start_async().await;
    let login = auth0(&server).begin_login().unwrap();
    let state = param(login.authorize_url(), "state");
    // A server that expects another challenge: the verifier cannot match.
    let (token, _seen) = token_endpoint(&server, pkce_challenge("another verifier")).await;

    // A code long enough to be scrubbed reliably, so the description can be quoted.
    let err = complete_err(
        login,
        &callback(&[("code", "code-2b7e41"), ("state", &state)]),
    )
    .await;

    match err {
        Error::OAuth { code, description } => {
            assert_eq!(code, OAuthErrorCode::InvalidGrant);
            assert_eq!(
                description.as_deref(),
                Some("Failed to verify code verifier")
            );
        }
        other => panic!("expected Error::OAuth, got {other:?}"),
    }
    assert_eq!(token.calls_async().await, 1);
}

/// RFC 6749 §5.2: `invalid_client` at the exchange is `Error::InvalidCredentials`.
#[tokio::test]
async fn invalid_client_at_the_exchange_is_invalid_credentials() {
    let server = MockServer::start_async().await;
    let token = fixed_token_endpoint(
        &server,
        401,
        r#"{"error":"invalid_client","error_description":"Unknown client"}"#,
    )
    .await;
    let login = auth0(&server).begin_login().unwrap();
    let state = param(login.authorize_url(), "state");

    let err = complete_err(login, &callback(&[("code", "c"), ("state", &state)])).await;

    match err {
        Error::InvalidCredentials { code, .. } => {
            assert_eq!(code.as_deref(), Some("invalid_client"))
        }
        other => panic!("expected InvalidCredentials, got {other:?}"),
    }
    assert_eq!(token.calls_async().await, 1);
}

/// RFC 6749 §10.3/§10.12 and RFC 7636 §7.1 (the verifier, state and client secret stay
/// secret): `Debug` of `OAuthClient` and `PendingLogin` shows none of them.
#[tokio::test]
async fn debug_output_hides_secret_state_and_verifier() {
    let server = MockServer::start_async().await;
    let client = auth0(&server).client_secret(SECRET);
    let login = client.begin_login().unwrap();
    let authorize = login.authorize_url().clone();
    let state = param(&authorize, "state");
    let shown = format!("{client:?} {login:?} {login:#?}");
    let (_token, seen) = token_endpoint(&server, param(&authorize, "code_challenge")).await;

    login
        .complete(&callback(&[("code", "c"), ("state", &state)]))
        .await
        .unwrap();

    let verifier = seen.lock().unwrap()[0].field("code_verifier").unwrap();
    let leaks: HashSet<&str> = [SECRET, state.as_str(), verifier.as_str()]
        .into_iter()
        .filter(|s| shown.contains(s))
        .collect();
    assert!(leaks.is_empty(), "Debug shows {leaks:?}: {shown}");
    assert!(shown.contains(CLIENT_ID), "{shown}");
}

/// RFC 6749 §3.1 ("request and response parameters MUST NOT be included more than once"): a
/// callback with two `code` (or two `state`) values is ambiguous and rejected as
/// `Error::Callback`, with no token request.
#[tokio::test]
async fn repeated_callback_parameters_are_rejected() {
    let server = MockServer::start_async().await;
    let token = fixed_token_endpoint(&server, 200, r#"{"access_token":"x"}"#).await;
    for repeated in ["code", "state"] {
        let login = auth0(&server).begin_login().unwrap();
        let state = param(login.authorize_url(), "state");
        let mut pairs = vec![("code", "c1"), ("state", state.as_str())];
        pairs.push(if repeated == "code" {
            ("code", "c2")
        } else {
            ("state", state.as_str())
        });

        let err = complete_err(login, &callback(&pairs)).await;

        assert!(
            matches!(
                err,
                Error::Callback(CallbackError::RepeatedParameter(name)) if name == repeated
            ),
            "{repeated}: {err:?}"
        );
    }
    assert_eq!(token.calls_async().await, 0);
}

/// RFC 9207 (authorization server issuer identification): with `OAuthClient::issuer` set, a
/// callback whose `iss` names another issuer is rejected as `Error::Callback` before any
/// token request (mix-up defence); a matching `iss`, or none at all (Auth0 sends none), is
/// accepted and the code is exchanged.
#[tokio::test]
async fn callback_from_another_issuer_is_rejected() {
    let server = MockServer::start_async().await;
    let issuer = "https://tenant.auth0.example/";

    let login = auth0(&server).issuer(issuer).begin_login().unwrap();
    let state = param(login.authorize_url(), "state");
    let (token, _seen) =
        token_endpoint(&server, param(login.authorize_url(), "code_challenge")).await;
    let forged = callback(&[
        ("code", "c"),
        ("state", &state),
        ("iss", "https://evil.example/"),
    ]);
    let err = complete_err(login, &forged).await;
    assert!(
        matches!(err, Error::Callback(CallbackError::IssuerMismatch)),
        "{err:?}"
    );
    assert_eq!(token.calls_async().await, 0);
    token.delete_async().await;

    for iss in [Some(issuer), None] {
        let login = auth0(&server).issuer(issuer).begin_login().unwrap();
        let state = param(login.authorize_url(), "state");
        let (token, _seen) =
            token_endpoint(&server, param(login.authorize_url(), "code_challenge")).await;
        let mut pairs = vec![("code", "c"), ("state", state.as_str())];
        pairs.extend(iss.map(|i| ("iss", i)));
        let tokens = login.complete(&callback(&pairs)).await;
        assert!(tokens.is_ok(), "iss {iss:?}: {tokens:?}");
        assert_eq!(token.calls_async().await, 1);
        token.delete_async().await;
    }
}
