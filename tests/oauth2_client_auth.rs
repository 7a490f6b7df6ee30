//! How an OAuth 2.0 client authenticates at the token endpoint (RFC 6749 §2.3.1), decided in
//! one place for every grant: the code exchange ([`PendingLogin::complete`]), the refresh
//! ([`RefreshTokenSource`]) and client credentials ([`ClientCredentialsSource`]). HTTP Basic
//! with the form-encoded id and secret by default, the request body for Auth0 (its default
//! method, `client_secret_post`), `client_id` alone in the body for a public client. The
//! exact requests are asserted against a real local HTTP server; so are the per-grant
//! timeouts and the scrubbing of an echoed Basic credential.
#![cfg(feature = "oauth2")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use common::Seen;
use httpmock::{HttpMockRequest, MockServer};
use reqwest_partner_auth::oauth2::{
    AuthorizeUrl, ClientAuthMethod, ClientCredentialsSource, OAuthClient, RedirectUrl,
    RefreshTokenSource, TokenUrl,
};
use reqwest_partner_auth::store::{MemoryStore, StoredTokens, TokenStore as _};
use reqwest_partner_auth::{Error, FetchContext, FetchReason, TokenSource as _};
use url::Url;

const TOKEN_PATH: &str = "/oauth/token";
const REDIRECT: &str = "http://127.0.0.1:8976/callback";
const KEY: &str = "login";
const REFRESH: &str = "rt-8d3b61f0";
/// An id and a secret with characters that form-encoding changes (`:` `@` space).
const ID: &str = "my:client";
const SECRET: &str = "S3cr@t pass";
const FORM_ID: &str = "my%3Aclient";
const FORM_SECRET: &str = "S3cr%40t+pass";

/// `Basic base64(form_encode(id) ":" form_encode(secret))`, RFC 6749 §2.3.1.
fn basic() -> String {
    let pair = format!("{FORM_ID}:{FORM_SECRET}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A token endpoint answering every POST with a token (and a rotated refresh token), recording
/// each request.
async fn token_endpoint(server: &MockServer) -> (httpmock::Mock<'_>, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let mock = server
        .mock_async(move |when, then| {
            when.method("POST").path(TOKEN_PATH);
            then.respond_with(move |req: &HttpMockRequest| {
                log.lock().unwrap().push(Seen::of(req));
                common::json_response(
                    200,
                    r#"{"access_token":"tok","refresh_token":"rt-new","token_type":"Bearer","expires_in":3600}"#,
                )
            });
        })
        .await;
    (mock, seen)
}

fn explicit(server: &MockServer) -> OAuthClient {
    OAuthClient::new(TokenUrl::parse(&server.url(TOKEN_PATH)).unwrap(), ID)
        .authorize_url(AuthorizeUrl::parse(&server.url("/authorize")).unwrap())
        .redirect_uri(RedirectUrl::parse(REDIRECT).unwrap())
}

fn auth0(server: &MockServer) -> OAuthClient {
    OAuthClient::auth0(&server.base_url(), ID)
        .unwrap()
        .redirect_uri(RedirectUrl::parse(REDIRECT).unwrap())
}

/// A login with `client` completed against the mock: begin, a callback with the right state
/// and a code, the exchange.
async fn log_in(client: &OAuthClient) -> Result<StoredTokens, Error> {
    let pending = client.begin_login().unwrap();
    let state = pending
        .authorize_url()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let mut callback = Url::parse(REDIRECT).unwrap();
    callback
        .query_pairs_mut()
        .append_pair("code", "code-4f9a2c7e")
        .append_pair("state", &state);
    pending.complete(&callback).await
}

/// One refresh with `client` from a stored [`REFRESH`].
async fn refresh(client: OAuthClient) -> Result<(), Error> {
    let store = MemoryStore::new();
    store
        .save(
            KEY,
            &StoredTokens::from_refresh_token(REFRESH, SystemTime::now()),
        )
        .await
        .unwrap();
    RefreshTokenSource::new(client, Arc::new(store), KEY)
        .fetch(&FetchContext::new(FetchReason::Initial))
        .await
        .map(|_| ())
}

/// The form field names of a request body, in order.
fn names(seen: &Seen) -> Vec<String> {
    seen.form().into_iter().map(|(k, _)| k).collect()
}

/// `OAuthClient::new` with a secret: HTTP Basic (the method every server must support) for
/// the code exchange and the refresh alike: the exact header, and neither `client_id` nor
/// `client_secret` in the body.
#[tokio::test]
async fn a_confidential_client_uses_basic_by_default_for_login_and_refresh() {
    let server = MockServer::start_async().await;
    let (mock, seen) = token_endpoint(&server).await;
    let client = explicit(&server).client_secret(SECRET);

    log_in(&client).await.unwrap();
    refresh(client).await.unwrap();

    assert_eq!(mock.calls_async().await, 2);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].header_all("authorization"), [basic().as_str()]);
    assert_eq!(
        names(&seen[0]),
        ["grant_type", "code", "redirect_uri", "code_verifier"]
    );
    assert_eq!(seen[1].header_all("authorization"), [basic().as_str()]);
    assert_eq!(
        seen[1].body,
        format!("grant_type=refresh_token&refresh_token={REFRESH}")
    );
}

/// `OAuthClient::auth0` with a secret: Auth0's default `client_secret_post`: `client_id`
/// after the grant type, `client_secret` last, no `Authorization` header; for the exchange and
/// the refresh alike. `OAuthClient::new(..).client_auth(ClientAuthMethod::RequestBody)` is the
/// same.
#[tokio::test]
async fn auth0_and_request_body_send_the_secret_in_the_body() {
    for client in [
        |s: &MockServer| auth0(s),
        |s: &MockServer| explicit(s).client_auth(ClientAuthMethod::RequestBody),
    ] {
        let server = MockServer::start_async().await;
        let (mock, seen) = token_endpoint(&server).await;
        let client = client(&server).client_secret(SECRET);

        log_in(&client).await.unwrap();
        refresh(client).await.unwrap();

        assert_eq!(mock.calls_async().await, 2);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen[0].header("authorization"), None);
        assert_eq!(
            names(&seen[0]),
            [
                "grant_type",
                "client_id",
                "code",
                "redirect_uri",
                "code_verifier",
                "client_secret"
            ]
        );
        assert_eq!(seen[0].field("client_secret").as_deref(), Some(SECRET));
        assert_eq!(seen[1].header("authorization"), None);
        assert_eq!(
            seen[1].body,
            format!(
                "grant_type=refresh_token&client_id={FORM_ID}&refresh_token={REFRESH}\
                 &client_secret={FORM_SECRET}"
            )
        );
    }
}

/// `OAuthClient::auth0(..).client_auth(ClientAuthMethod::Basic)`: an Auth0 application registered
/// for `client_secret_basic` gets Basic.
#[tokio::test]
async fn auth0_can_be_told_to_use_basic() {
    let server = MockServer::start_async().await;
    let (mock, seen) = token_endpoint(&server).await;

    refresh(
        auth0(&server)
            .client_secret(SECRET)
            .client_auth(ClientAuthMethod::Basic),
    )
    .await
    .unwrap();

    assert_eq!(mock.calls_async().await, 1);
    let seen = seen.lock().unwrap()[0].clone();
    assert_eq!(seen.header_all("authorization"), [basic().as_str()]);
    assert_eq!(
        seen.body,
        format!("grant_type=refresh_token&refresh_token={REFRESH}")
    );
}

/// A public client (no secret), whatever its `client_auth`: `client_id` in the body only, no
/// `Authorization` header.
#[tokio::test]
async fn a_public_client_sends_its_id_in_the_body_only() {
    let server = MockServer::start_async().await;
    let (mock, seen) = token_endpoint(&server).await;

    refresh(explicit(&server)).await.unwrap();
    refresh(auth0(&server)).await.unwrap();

    assert_eq!(mock.calls_async().await, 2);
    for seen in seen.lock().unwrap().iter() {
        assert_eq!(seen.header("authorization"), None);
        assert_eq!(
            seen.body,
            format!("grant_type=refresh_token&client_id={FORM_ID}&refresh_token={REFRESH}")
        );
    }
}

/// `ClientCredentialsSource` takes the same mechanism: Basic by default (exact header, body without
/// credentials), the body with `ClientAuthMethod::RequestBody`.
#[tokio::test]
async fn client_credentials_use_the_same_mechanism() {
    let server = MockServer::start_async().await;
    let (mock, seen) = token_endpoint(&server).await;
    let url = TokenUrl::parse(&server.url(TOKEN_PATH)).unwrap();
    let cx = FetchContext::new(FetchReason::Initial);

    ClientCredentialsSource::new(url.clone(), ID, SECRET)
        .fetch(&cx)
        .await
        .unwrap();
    ClientCredentialsSource::new(url, ID, SECRET)
        .client_auth(ClientAuthMethod::RequestBody)
        .fetch(&cx)
        .await
        .unwrap();

    assert_eq!(mock.calls_async().await, 2);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0].header_all("authorization"), [basic().as_str()]);
    assert_eq!(seen[0].body, "grant_type=client_credentials");
    assert_eq!(seen[1].header("authorization"), None);
    assert_eq!(
        seen[1].body,
        format!("grant_type=client_credentials&client_id={FORM_ID}&client_secret={FORM_SECRET}")
    );
}

/// A token endpoint that echoes the `Authorization` header it got in its `invalid_client`
/// error: the Basic credential sent is scrubbed from the error of the exchange and of the
/// refresh (message, `Display`, `Debug`).
#[tokio::test]
async fn an_echoed_basic_credential_is_scrubbed_on_login_and_refresh() {
    let server = MockServer::start_async().await;
    let echo = server
        .mock_async(|when, then| {
            when.method("POST").path(TOKEN_PATH);
            then.respond_with(|req: &HttpMockRequest| {
                let auth = Seen::of(req)
                    .header("authorization")
                    .unwrap_or_default()
                    .to_owned();
                common::json_response(
                    401,
                    &format!(
                        r#"{{"error":"invalid_client","error_description":"rejected {auth}"}}"#
                    ),
                )
            });
        })
        .await;
    let client = explicit(&server).client_secret(SECRET);
    let credential = basic().trim_start_matches("Basic ").to_owned();

    let login_err = log_in(&client).await.unwrap_err();
    let refresh_err = refresh(client).await.unwrap_err();

    assert_eq!(echo.calls_async().await, 2);
    for err in [login_err, refresh_err] {
        assert!(matches!(err, Error::InvalidCredentials { .. }), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(&credential), "{shown}");
        assert!(shown.contains("rejected Basic"), "{shown}");
    }
}

/// A token endpoint that hangs (5 s) behind a given client without a timeout: the grant's
/// own `timeout` (300 ms) cuts off the code exchange (`OAuthClient::timeout`) and a client
/// credentials fetch (`ClientCredentialsSource::timeout`) with `Error::Transport` ("timed out").
#[tokio::test]
async fn the_token_timeout_applies_to_a_given_client() {
    let server = MockServer::start_async().await;
    let slow = server
        .mock_async(|when, then| {
            when.method("POST").path(TOKEN_PATH);
            then.delay(Duration::from_secs(5)).status(500);
        })
        .await;
    let timeout = Duration::from_millis(300);
    let login_client = explicit(&server)
        .http_client(reqwest::Client::new())
        .timeout(timeout);
    let cc = ClientCredentialsSource::new(
        TokenUrl::parse(&server.url(TOKEN_PATH)).unwrap(),
        ID,
        SECRET,
    )
    .http_client(reqwest::Client::new())
    .timeout(timeout);

    let started = Instant::now();
    let login_err = log_in(&login_client).await.unwrap_err();
    let cc_err = cc
        .fetch(&FetchContext::new(FetchReason::Initial))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();

    for err in [login_err, cc_err] {
        match &err {
            Error::Transport { message, source } => {
                assert_eq!(message, "timed out");
                assert!(source.is_timeout(), "{source:?}");
            }
            other => panic!("expected Transport, got {other:?}"),
        }
    }
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert_eq!(slow.calls_async().await, 2);
}

/// A client that follows redirects (`reqwest::Client::new()`) given to an `OAuthClient`, Basic
/// and request-body authentication alike: a 3xx from the token endpoint, for the code exchange
/// and for the refresh, is a non-transient `Error::TokenEndpoint` saying redirects are not
/// followed. A 307/308 re-posts nothing to the redirect target; the `GET` a client makes of a
/// 301/302/303 carries neither the secret nor the code, the verifier or the refresh token.
#[tokio::test]
async fn token_requests_of_a_login_and_a_refresh_never_follow_a_redirect() {
    for code in [301u16, 302, 303, 307, 308] {
        let server = MockServer::start_async().await;
        let elsewhere = MockServer::start_async().await;
        let target = elsewhere.url(TOKEN_PATH);
        let redirect = server
            .mock_async(move |when, then| {
                when.method("POST").path(TOKEN_PATH);
                then.status(code).header("location", target);
            })
            .await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let stolen = elsewhere
            .mock_async(move |when, then| {
                when.any_request();
                then.respond_with(move |req: &HttpMockRequest| {
                    log.lock()
                        .unwrap()
                        .push((req.uri().to_string(), Seen::of(req)));
                    common::json_response(
                        200,
                        r#"{"access_token":"foreign","refresh_token":"rt-foreign","token_type":"Bearer","expires_in":3600}"#,
                    )
                });
            })
            .await;
        for client in [
            explicit(&server).client_secret(SECRET),
            auth0(&server).client_secret(SECRET),
        ] {
            let client = client.http_client(reqwest::Client::new());
            let method = format!("{code} {:?}", client);
            for err in [
                log_in(&client).await.unwrap_err(),
                refresh(client).await.unwrap_err(),
            ] {
                match &err {
                    Error::TokenEndpoint {
                        status, excerpt, ..
                    } => {
                        assert!(status.is_redirection(), "{method}: {status}");
                        assert!(excerpt.contains("redirects"), "{method}: {excerpt}");
                    }
                    other => panic!("{method}: expected TokenEndpoint, got {other:?}"),
                }
                assert!(!err.is_transient(), "{method}");
            }
        }
        assert_eq!(redirect.calls_async().await, 4, "{code}");
        if code == 307 || code == 308 {
            assert_eq!(stolen.calls_async().await, 0, "{code}: re-posted elsewhere");
        }
        for (uri, req) in seen.lock().unwrap().iter() {
            assert_eq!(
                req.header("authorization"),
                None,
                "{code}: Basic went along"
            );
            for secret in [
                SECRET,
                FORM_SECRET,
                "code-4f9a2c7e",
                REFRESH,
                "code_verifier",
            ] {
                assert!(
                    !req.body.contains(secret) && !uri.contains(secret),
                    "{code}: {secret} went to the redirect target: {uri} {}",
                    req.body
                );
            }
        }
    }
}

/// A raw listener that accepts connections, reads what is sent and never answers.
async fn silent_endpoint() -> (Url, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!(
        "http://{}{TOKEN_PATH}",
        listener.local_addr().unwrap()
    ))
    .unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (url, task)
}

/// A client given without a timeout of its own, and no `timeout` set on the grant: the token
/// request is still cut off at `DEFAULT_TOKEN_TIMEOUT` (10 s), for the code exchange, the
/// refresh and client credentials alike; giving a client does not drop the default timeout.
/// (Without it these requests would wait for the silent endpoint until the test's own 30 s
/// limit.)
#[tokio::test]
async fn a_given_client_keeps_the_default_token_timeout() {
    use reqwest_partner_auth::engine::DEFAULT_TOKEN_TIMEOUT;
    let (url, listener) = silent_endpoint().await;
    let oauth = OAuthClient::new(TokenUrl::new(url.clone()), ID)
        .client_secret(SECRET)
        .authorize_url(AuthorizeUrl::new(url.join("/authorize").unwrap()))
        .redirect_uri(RedirectUrl::parse(REDIRECT).unwrap())
        .http_client(reqwest::Client::new());
    let cc = ClientCredentialsSource::new(TokenUrl::new(url), ID, SECRET)
        .http_client(reqwest::Client::new());

    let cx = FetchContext::new(FetchReason::Initial);
    let started = Instant::now();
    let all = async { tokio::join!(log_in(&oauth), refresh(oauth.clone()), cc.fetch(&cx)) };
    let (login, refreshed, fetched) = tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .expect("a token request outlived the default timeout");
    let elapsed = started.elapsed();

    let errors = [
        login.map(|_| ()).unwrap_err(),
        refreshed.unwrap_err(),
        fetched.map(|_| ()).unwrap_err(),
    ];
    for err in errors {
        match &err {
            Error::Transport { source, .. } => assert!(source.is_timeout(), "{source:?}"),
            other => panic!("expected Transport, got {other:?}"),
        }
    }
    assert!(elapsed >= DEFAULT_TOKEN_TIMEOUT, "{elapsed:?}");
    assert!(elapsed < DEFAULT_TOKEN_TIMEOUT * 2, "{elapsed:?}");
    listener.abort();
}
