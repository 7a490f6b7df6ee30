//! Interop suite: the OAuth 2.0 flows against a real, independently written authorization
//! server (oidc-provider 9.13, `tests/oidc/server.mjs`) started on 127.0.0.1 per test.
//!
//! Needs `node` (>= 20) on PATH and the pinned oidc-provider in `tests/oidc/node_modules`:
//! when it is missing, the first test runs `npm ci --prefix tests/oidc` (once per process,
//! under a lock shared with any other test process) and the others wait for it. Without node,
//! or when it is missing and npm is not on PATH or the install fails, every test prints a
//! `SKIPPED:` notice and passes, unless `PARTNER_AUTH_REQUIRE_SERVICES=1`, which makes them
//! fail.
//!
//! The server is a strict judge of refresh-token handling: refresh tokens rotate on every
//! use, and presenting a used one again revokes the whole login ("family"), after which the
//! newest refresh token is refused too. A test whose login still refreshes at the end has
//! therefore never sent a refresh token twice.
#![cfg(feature = "oauth2")]

#[macro_use]
#[path = "interop_oidc/support.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use httpmock::MockServer;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::cache::TokenCacheBuilder;
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::error::{CallbackError, OAuthErrorCode};
use reqwest_partner_auth::middleware::AuthMiddlewareBuilder;
use reqwest_partner_auth::oauth2::{
    ClientAuthMethod, ClientCredentialsAuth, ClientCredentialsSource, OAuthClient,
    RefreshTokenAuth, RefreshTokenSource, TokenUrl,
};
use reqwest_partner_auth::store::{MemoryStore, StoredTokens, TokenStore};
use reqwest_partner_auth::token::{jwt_expiry, Expiry};
use reqwest_partner_auth::{
    AuthMiddleware, Error, FetchContext, FetchReason, TokenCache, TokenSource as _,
};
use secrecy::ExposeSecret as _;
use support::{
    bearer, claim_u64, echo_api, jwt_claims, login, raw_refresh, refresh_of, unix, CountingStore,
    OidcServer, RESOURCE,
};
use url::Url;

const KEY: &str = "interop-login";
/// A sentinel wrong secret, to check it never appears in an error.
const WRONG_SECRET: &str = "WRONG-SECRET-4f1e";

fn client_with<S: reqwest_partner_auth::TokenSource>(
    mw: AuthMiddleware<S>,
) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new()).with(mw).build()
}

/// GET `<api>/campaigns` through `client`: the bearer token the API received.
async fn call_api(client: &ClientWithMiddleware, api: &Url) -> String {
    let res = client
        .get(api.join("/campaigns").unwrap())
        .send()
        .await
        .expect("the api request goes out");
    assert_eq!(res.status(), 200, "the api accepted the request");
    res.text().await.unwrap()
}

fn api_base(api: &MockServer) -> Url {
    Url::parse(&api.base_url()).unwrap()
}

/// A login stored under [`KEY`] in a memory store that counts saves from here on.
async fn stored_login(server: &OidcServer) -> CountingStore {
    let tokens = login(&server.pkce_client()).await;
    let memory = MemoryStore::new();
    memory.save(KEY, &tokens).await.unwrap();
    CountingStore::new(memory)
}

fn refresh_source(server: &OidcServer, store: &CountingStore, api: &Url) -> RefreshTokenSource {
    RefreshTokenSource::new(server.pkce_client(), Arc::new(store.clone()), KEY).add_origin(api)
}

/// The refresh middleware over [`refresh_source`], its policy still open. Tests force
/// refreshes with `TokenCache::reject`, so rejections are not rate-limited here.
fn refresh_mw(
    server: &OidcServer,
    store: &CountingStore,
    api: &Url,
) -> AuthMiddlewareBuilder<TokenCacheBuilder<RefreshTokenSource>> {
    RefreshTokenAuth::builder(refresh_source(server, store, api)).rejection_cooldown(Duration::ZERO)
}

// ---------------------------------------------------------------------------------------
// Client credentials

/// Checks an access token of the test server: a JWT for the resource, issued to
/// `client_id`, living `ttl` seconds, whose `exp` the crate reads.
fn assert_server_jwt(server: &OidcServer, token: &str, client_id: &str, ttl: u64) {
    let claims = jwt_claims(token);
    assert_eq!(
        claims["iss"],
        server.issuer().as_str().trim_end_matches('/')
    );
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["client_id"], client_id);
    let (iat, exp) = (claim_u64(&claims, "iat"), claim_u64(&claims, "exp"));
    assert_eq!(exp - iat, ttl, "exp = iat + ACCESS_TOKEN_TTL");
    assert_eq!(
        jwt_expiry(token),
        Some(UNIX_EPOCH + Duration::from_secs(exp)),
        "the crate reads the JWT's exp"
    );
}

#[tokio::test]
async fn client_credentials_http_basic() {
    let server = server_or_skip!("client_credentials_http_basic", 3600);
    let api = MockServer::start_async().await;
    echo_api(&api).await;
    let source = ClientCredentialsSource::new(
        TokenUrl::new(server.token_url()),
        "cc-basic",
        "cc-basic-secret",
    )
    .scopes(["read:campaigns", "no:such-scope"])
    .param("audience", RESOURCE)
    .add_origin(&api_base(&api));

    // The source on its own: expires_in is read.
    let token = source
        .fetch(&FetchContext::new(FetchReason::Initial))
        .await
        .expect("cc-basic with HTTP Basic is accepted");
    assert_eq!(token.expiry(), Expiry::In(Duration::from_secs(3600)));
    assert!(token.refresh_token().is_none());
    assert_server_jwt(&server, token.secret().expose_secret(), "cc-basic", 3600);
    assert_eq!(
        jwt_claims(token.secret().expose_secret())["scope"],
        "read:campaigns",
        "the server filtered the requested scopes"
    );

    // Through the middleware: the API gets that kind of token, and it is cached.
    let client = client_with(ClientCredentialsAuth::from_source(source));
    let first = call_api(&client, &api_base(&api)).await;
    assert_server_jwt(&server, &first, "cc-basic", 3600);
    assert_eq!(call_api(&client, &api_base(&api)).await, first, "cached");
}

#[tokio::test]
async fn client_credentials_request_body() {
    let server = server_or_skip!("client_credentials_request_body", 3600);
    let api = MockServer::start_async().await;
    echo_api(&api).await;
    let source = ClientCredentialsSource::new(
        TokenUrl::new(server.token_url()),
        "cc-post",
        "cc-post-secret",
    )
    .client_auth(ClientAuthMethod::RequestBody)
    .param("resource", RESOURCE)
    .add_origin(&api_base(&api));
    let cache = TokenCache::new(source.clone());
    let lease = cache
        .token()
        .await
        .expect("cc-post in the body is accepted");
    let token = bearer(lease.header_value());
    assert_server_jwt(&server, &token, "cc-post", 3600);
    assert!(
        jwt_claims(&token).get("scope").is_none(),
        "no scope asked, none granted"
    );

    let client = client_with(ClientCredentialsAuth::from_source(source));
    assert_server_jwt(
        &server,
        &call_api(&client, &api_base(&api)).await,
        "cc-post",
        3600,
    );
}

fn assert_invalid_client(result: Result<reqwest_partner_auth::cache::Lease, Error>, what: &str) {
    match result {
        Err(Error::InvalidCredentials { code, .. }) => {
            assert_eq!(code.as_deref(), Some("invalid_client"), "{what}");
        }
        other => panic!("{what}: expected InvalidCredentials(invalid_client), got {other:?}"),
    }
}

#[tokio::test]
async fn client_credentials_wrong_secret_or_method_is_invalid_client() {
    let server = server_or_skip!(
        "client_credentials_wrong_secret_or_method_is_invalid_client",
        3600
    );
    let cc = |id: &str, secret: &str, how: ClientAuthMethod| {
        TokenCache::new(
            ClientCredentialsSource::new(TokenUrl::new(server.token_url()), id, secret)
                .client_auth(how)
                .param("audience", RESOURCE),
        )
    };
    assert_invalid_client(
        cc("cc-basic", WRONG_SECRET, ClientAuthMethod::Basic)
            .token()
            .await,
        "cc-basic, wrong secret",
    );
    assert_invalid_client(
        cc("cc-post", WRONG_SECRET, ClientAuthMethod::RequestBody)
            .token()
            .await,
        "cc-post, wrong secret",
    );
    assert_invalid_client(
        cc("cc-basic", "cc-basic-secret", ClientAuthMethod::RequestBody)
            .token()
            .await,
        "cc-basic registered for Basic, sent in the body",
    );
    assert_invalid_client(
        cc("cc-post", "cc-post-secret", ClientAuthMethod::Basic)
            .token()
            .await,
        "cc-post registered for the body, sent as Basic",
    );

    // Through the middleware the same error is found with Error::from_middleware.
    let api = MockServer::start_async().await;
    let client = client_with(
        ClientCredentialsAuth::builder(ClientCredentialsSource::new(
            TokenUrl::new(server.token_url()),
            "cc-basic",
            WRONG_SECRET,
        ))
        .add_origin(&api_base(&api))
        .build(),
    );
    let err = client
        .get(api_base(&api).join("/campaigns").unwrap())
        .send()
        .await
        .expect_err("no token, no request");
    assert!(matches!(
        Error::from_middleware(&err),
        Some(Error::InvalidCredentials { code: Some(c), .. }) if c == "invalid_client"
    ));
    let shown = format!("{err:?} {err}");
    assert!(!shown.contains(WRONG_SECRET), "no secret in the error");

    // An audience the server does not know: a typed OAuth error, not a credentials one.
    let unknown = TokenCache::new(
        ClientCredentialsSource::new(
            TokenUrl::new(server.token_url()),
            "cc-basic",
            "cc-basic-secret",
        )
        .param("audience", "https://other.test"),
    );
    match unknown.token().await {
        Err(Error::OAuth { code, .. }) => {
            assert_eq!(code, OAuthErrorCode::Other("invalid_target".into()));
        }
        other => panic!("expected OAuth(invalid_target), got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Code + PKCE login

#[tokio::test]
async fn code_pkce_login_headless() {
    let server = server_or_skip!("code_pkce_login_headless", 3600);
    let client = server.pkce_client();
    let pending = client.begin_login().unwrap();
    let q: Vec<(String, String)> = pending.authorize_url().query_pairs().into_owned().collect();
    assert!(q.contains(&("code_challenge_method".into(), "S256".into())));

    let callback = support::drive_login(pending.authorize_url(), pending.redirect_uri()).await;
    let tokens = pending
        .complete(&callback)
        .await
        .expect("the code exchange succeeds");

    let access = tokens
        .access_token
        .as_ref()
        .expect("an access token")
        .expose_secret();
    assert_server_jwt(&server, access, "pkce-public", 3600);
    let claims = jwt_claims(access);
    assert_eq!(claims["sub"], "test-user");
    assert_eq!(claims["scope"], "read:campaigns");
    let at = tokens.access_expires_at.expect("the lifetime is stored");
    let now = unix(SystemTime::now());
    assert!(
        (now + 3590..=now + 3600).contains(&unix(at)),
        "stored expiry ~ now + expires_in"
    );
    assert!(tokens.refresh_token.is_some(), "a refresh token");
    assert!(!format!("{tokens:?}").contains(access), "Debug redacts");

    // The refresh token works (once).
    let (status, body) = raw_refresh(&server.token_url(), &refresh_of(&tokens)).await;
    assert_eq!(status, 200, "{}", body["error"]);
    assert!(body["refresh_token"].is_string());
}

#[tokio::test]
async fn login_error_callback_and_forged_state_are_reported() {
    let server = server_or_skip!("login_error_callback_and_forged_state_are_reported", 3600);

    // The server refuses an unknown audience with a redirect to the callback.
    let pending = server
        .pkce_client()
        .audience("https://other.test")
        .begin_login()
        .unwrap();
    let callback = support::drive_login(pending.authorize_url(), pending.redirect_uri()).await;
    match pending.complete(&callback).await {
        Err(Error::OAuth { code, .. }) => {
            assert_eq!(code, OAuthErrorCode::Other("invalid_target".into()));
        }
        other => panic!("expected OAuth(invalid_target), got {other:?}"),
    }

    // A callback whose state is not this login's: refused before any exchange.
    let pending = server.pkce_client().begin_login().unwrap();
    let mut callback = support::drive_login(pending.authorize_url(), pending.redirect_uri()).await;
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                "forged".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    callback.query_pairs_mut().clear().extend_pairs(pairs);
    assert!(matches!(
        pending.complete(&callback).await,
        Err(Error::Callback(CallbackError::StateMismatch))
    ));
}

// ---------------------------------------------------------------------------------------
// Confidential clients of the code flow (RFC 6749 §2.3.1)

/// Logs in with `client`, then refreshes once (a forced refresh: the stored access token is
/// not reused); returns the login's and the refresh's tokens.
async fn login_and_refresh(client: OAuthClient) -> (StoredTokens, StoredTokens) {
    let tokens = login(&client).await;
    let memory = MemoryStore::new();
    memory.save(KEY, &tokens).await.unwrap();
    let store = CountingStore::new(memory);
    RefreshTokenSource::new(client, Arc::new(store.clone()), KEY)
        .fetch(&FetchContext::new(FetchReason::Rejected))
        .await
        .expect("the refresh is accepted");
    assert_eq!(store.saves(), 1);
    assert_eq!(
        store.marks(),
        1,
        "the refresh was marked before it was sent"
    );
    let saved = store.get(KEY).await;
    assert!(
        saved.refresh_started_at.is_none(),
        "the save clears the mark"
    );
    (tokens, saved)
}

/// A client registered for `client_secret_basic` (the server refuses any other method):
/// `OAuthClient::new` authenticates with HTTP Basic by default, for the code exchange and the
/// refresh, and both are accepted; the refresh rotates the refresh token.
#[tokio::test]
async fn confidential_client_with_http_basic_logs_in_and_refreshes() {
    let server = server_or_skip!(
        "confidential_client_with_http_basic_logs_in_and_refreshes",
        3600
    );

    let (login_tokens, refreshed) = login_and_refresh(server.code_client("code-basic")).await;

    let access = login_tokens.access_token.as_ref().unwrap().expose_secret();
    assert_server_jwt(&server, access, "code-basic", 3600);
    assert_ne!(refresh_of(&refreshed), refresh_of(&login_tokens), "rotated");
    let access = refreshed.access_token.as_ref().unwrap().expose_secret();
    assert_server_jwt(&server, access, "code-basic", 3600);
}

/// A client registered for `client_secret_post`: with `ClientAuthMethod::RequestBody` the code
/// exchange and the refresh carry the secret in the body, and both are accepted.
#[tokio::test]
async fn confidential_client_with_the_secret_in_the_body_logs_in_and_refreshes() {
    let server = server_or_skip!(
        "confidential_client_with_the_secret_in_the_body_logs_in_and_refreshes",
        3600
    );
    let client = server
        .code_client("code-post")
        .client_auth(ClientAuthMethod::RequestBody);

    let (login_tokens, refreshed) = login_and_refresh(client).await;

    let access = login_tokens.access_token.as_ref().unwrap().expose_secret();
    assert_server_jwt(&server, access, "code-post", 3600);
    assert_ne!(refresh_of(&refreshed), refresh_of(&login_tokens), "rotated");
}

/// The other method than the registered one is `invalid_client` (`Error::InvalidCredentials`)
/// at the code exchange, and at a refresh, where it does not use up the refresh token: the
/// refresh with the registered method then succeeds.
#[tokio::test]
async fn the_wrong_client_authentication_method_is_invalid_client() {
    let server = server_or_skip!(
        "the_wrong_client_authentication_method_is_invalid_client",
        3600
    );
    for client in [
        server.code_client("code-post"),
        server
            .code_client("code-basic")
            .client_auth(ClientAuthMethod::RequestBody),
    ] {
        let pending = client.begin_login().unwrap();
        let callback = support::drive_login(pending.authorize_url(), pending.redirect_uri()).await;
        match pending.complete(&callback).await {
            Err(Error::InvalidCredentials { .. }) => {}
            other => panic!("expected InvalidCredentials, got {other:?}"),
        }
    }

    let basic = server.code_client("code-basic");
    let tokens = login(&basic).await;
    let memory = MemoryStore::new();
    memory.save(KEY, &tokens).await.unwrap();
    let store = CountingStore::new(memory);
    let cx = FetchContext::new(FetchReason::Rejected);
    let wrong = RefreshTokenSource::new(
        basic.clone().client_auth(ClientAuthMethod::RequestBody),
        Arc::new(store.clone()),
        KEY,
    );
    match wrong.fetch(&cx).await {
        Err(Error::InvalidCredentials { .. }) => {}
        other => panic!("expected InvalidCredentials, got {other:?}"),
    }
    assert_eq!(store.saves(), 0);
    RefreshTokenSource::new(basic, Arc::new(store.clone()), KEY)
        .fetch(&cx)
        .await
        .expect("the refresh token was not used up");
    assert_eq!(store.saves(), 1);
}

// ---------------------------------------------------------------------------------------
// Rotation

#[tokio::test]
async fn refresh_rotates_and_the_old_refresh_token_is_rejected() {
    let server = server_or_skip!(
        "refresh_rotates_and_the_old_refresh_token_is_rejected",
        3600
    );
    let api = MockServer::start_async().await;
    echo_api(&api).await;
    let store = stored_login(&server).await;
    let login_tokens = store.get(KEY).await;
    let old_refresh = refresh_of(&login_tokens);
    let mw = refresh_mw(&server, &store, &api_base(&api)).build();
    let cache = mw.cache().clone();
    let client = client_with(mw);

    // The login's access token (an hour left) is used as is: nothing is refreshed.
    let first = call_api(&client, &api_base(&api)).await;
    assert_eq!(
        first,
        login_tokens.access_token.as_ref().unwrap().expose_secret()
    );
    assert_eq!(store.saves(), 0);

    // Force a refresh (what a 401 does).
    let lease = cache.token().await.unwrap();
    let lease = cache
        .reject(lease.generation())
        .await
        .expect("the refresh succeeds")
        .expect("rejections are not rate-limited");
    assert_eq!(store.saves(), 1);
    let after = store.get(KEY).await;
    let new_refresh = refresh_of(&after);
    assert_ne!(
        new_refresh, old_refresh,
        "the server rotated the refresh token; the store has the new one"
    );
    let second = bearer(lease.header_value());
    assert_ne!(second, first);
    assert_eq!(second, after.access_token.as_ref().unwrap().expose_secret());
    assert_server_jwt(&server, &second, "pkce-public", 3600);
    assert_eq!(call_api(&client, &api_base(&api)).await, second);

    // The old refresh token is dead: presenting it again is refused ...
    let (status, body) = raw_refresh(&server.token_url(), &old_refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // ... and, as reuse, revoked the whole login: the crate's next refresh fails with
    // ReauthorizationRequired and marks the stored login dead (kept for inspection).
    let lease = cache.token().await.unwrap();
    match cache.reject(lease.generation()).await {
        Err(Error::ReauthorizationRequired { .. }) => {}
        other => panic!("expected ReauthorizationRequired, got {other:?}"),
    }
    let dead = store.get(KEY).await;
    assert!(dead.dead.is_some(), "the login is marked dead");
    assert_eq!(refresh_of(&dead), new_refresh, "its tokens are kept");
    let (status, _) = raw_refresh(&server.token_url(), &new_refresh).await;
    assert_eq!(status, 400, "the family is revoked server-side too");
}

// ---------------------------------------------------------------------------------------
// Expiry-driven refresh

#[tokio::test]
async fn short_lived_tokens_are_refreshed_when_they_expire() {
    let server = server_or_skip!("short_lived_tokens_are_refreshed_when_they_expire", 3);
    let api = MockServer::start_async().await;
    echo_api(&api).await;
    let store = stored_login(&server).await;
    let clock = ManualClock::new();
    let client = client_with(
        refresh_mw(&server, &store, &api_base(&api))
            .clock(Arc::new(clock.clone()))
            .build(),
    );

    // The login's token has 3 s left, too little to reuse: the first request refreshes.
    let mut token = call_api(&client, &api_base(&api)).await;
    assert_eq!(store.saves(), 1);
    assert_server_jwt(&server, &token, "pkce-public", 3);
    let mut refresh = refresh_of(&store.get(KEY).await);
    let mut jtis = vec![jwt_claims(&token)["jti"].clone()];

    for round in 2..=6 {
        // Early in the lifetime: the same token, no refresh.
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            call_api(&client, &api_base(&api)).await,
            token,
            "round {round}: still fresh"
        );
        assert_eq!(store.saves(), round - 1);

        // Expired: the next request waits for a new token from the server.
        clock.advance(Duration::from_secs(2));
        let next = call_api(&client, &api_base(&api)).await;
        assert_eq!(store.saves(), round, "round {round}: one refresh");
        assert_ne!(next, token, "round {round}: a new access token");
        assert_server_jwt(&server, &next, "pkce-public", 3);
        let jti = jwt_claims(&next)["jti"].clone();
        assert!(!jtis.contains(&jti), "round {round}: a new jti");
        jtis.push(jti);
        let next_refresh = refresh_of(&store.get(KEY).await);
        assert_ne!(
            next_refresh, refresh,
            "round {round}: a rotated refresh token"
        );
        (token, refresh) = (next, next_refresh);
    }
    // The chain held: the newest refresh token is still good.
    let (status, body) = raw_refresh(&server.token_url(), &refresh).await;
    assert_eq!(status, 200, "{}", body["error"]);
}

// ---------------------------------------------------------------------------------------
// Single flight and the store lock

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_refresh_once() {
    let server = server_or_skip!("concurrent_requests_refresh_once", 3);
    let api = MockServer::start_async().await;
    echo_api(&api).await;
    let store = stored_login(&server).await;
    // A clock that stands still: the 3 s tokens never expire during the test.
    let clock = ManualClock::new();
    let mw = refresh_mw(&server, &store, &api_base(&api))
        .clock(Arc::new(clock.clone()))
        .build();
    let cache = mw.cache().clone();
    let client = client_with(mw);

    // 50 requests on an empty cache (the stored token is too short-lived to reuse).
    let api_url = api_base(&api);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (client, api_url) = (client.clone(), api_url.clone());
            tokio::spawn(async move { call_api(&client, &api_url).await })
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    for task in tasks {
        seen.insert(task.await.expect("every request succeeds"));
    }
    assert_eq!(seen.len(), 1, "all 50 requests used the same token");
    assert_eq!(store.saves(), 1, "one refresh for 50 requests");

    // 50 concurrent rejections of that token: one refresh.
    let generation = cache.token().await.unwrap().generation();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .reject(generation)
                    .await
                    .map(|l| l.expect("not rate-limited").generation())
            })
        })
        .collect();
    let mut generations = std::collections::HashSet::new();
    for task in tasks {
        generations.insert(task.await.unwrap().expect("the refresh succeeds"));
    }
    assert_eq!(generations.len(), 1);
    assert_eq!(store.saves(), 2, "one refresh for 50 rejections");

    // The login is alive: no refresh token was sent twice.
    let lease = cache.token().await.unwrap();
    cache
        .reject(lease.generation())
        .await
        .expect("a further refresh succeeds");
    assert_eq!(store.saves(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_caches_sharing_a_store_never_reuse_a_refresh_token() {
    let server = server_or_skip!(
        "two_caches_sharing_a_store_never_reuse_a_refresh_token",
        3600
    );
    let api = MockServer::start_async().await;
    let store = stored_login(&server).await;
    // Two independent middlewares (two "workers") over one store: their caches do not know
    // each other, only the store's lock serialises their refreshes.
    let caches: Vec<_> = (0..2)
        .map(|_| {
            refresh_mw(&server, &store, &api_base(&api))
                .build()
                .cache()
                .clone()
        })
        .collect();
    const ROUNDS: usize = 5;
    let tasks: Vec<_> = caches
        .iter()
        .cloned()
        .map(|cache| {
            tokio::spawn(async move {
                for _ in 0..ROUNDS {
                    let lease = cache.token().await?;
                    cache.reject(lease.generation()).await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("every forced refresh succeeds");
    }
    assert_eq!(
        store.saves(),
        2 * ROUNDS,
        "every forced refresh reached the server"
    );
    let lease = caches[0].token().await.unwrap();
    caches[0]
        .reject(lease.generation())
        .await
        .expect("the login is still alive");
}

#[tokio::test]
async fn refresh_ahead_gets_a_new_token_in_the_background() {
    let server = server_or_skip!("refresh_ahead_gets_a_new_token_in_the_background", 3600);
    let api = MockServer::start_async().await;
    echo_api(&api).await;
    let store = stored_login(&server).await;
    let clock = ManualClock::new();
    let client = client_with(
        refresh_mw(&server, &store, &api_base(&api))
            .clock(Arc::new(clock.clone()))
            .build(),
    );
    let first = call_api(&client, &api_base(&api)).await;
    assert_eq!(
        store.saves(),
        0,
        "the login's hour-long token is used as is"
    );

    // In the refresh-ahead window (before the skew point, 30 s before expiry): the request
    // does not wait, it goes out with the current token while one refresh runs in the
    // background.
    clock.advance(Duration::from_secs(3560));
    assert_eq!(call_api(&client, &api_base(&api)).await, first);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.saves() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no background refresh within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.saves(), 1, "one background refresh");
    let second = call_api(&client, &api_base(&api)).await;
    assert_ne!(second, first, "the next request uses the refreshed token");
    assert_server_jwt(&server, &second, "pkce-public", 3600);
}

// ---------------------------------------------------------------------------------------
// The judge: a refresh token sent twice is caught

/// A store without a lock whose loads wait for each other, so two refreshes are sure to
/// read, and send, the same refresh token: what the lock exists to prevent.
struct NoLockStore {
    inner: MemoryStore,
    both_loaded: tokio::sync::Barrier,
}

#[async_trait::async_trait]
impl TokenStore for NoLockStore {
    async fn load(
        &self,
        key: &str,
    ) -> Result<Option<reqwest_partner_auth::store::StoredTokens>, Error> {
        let tokens = self.inner.load(key).await;
        self.both_loaded.wait().await;
        tokens
    }
    async fn save(
        &self,
        key: &str,
        t: &reqwest_partner_auth::store::StoredTokens,
    ) -> Result<(), Error> {
        self.inner.save(key, t).await
    }
    async fn lock(&self, _key: &str) -> Result<reqwest_partner_auth::store::StoreLock, Error> {
        Ok(reqwest_partner_auth::store::StoreLock::new(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_lock_the_server_catches_a_double_send() {
    let server = server_or_skip!("without_the_lock_the_server_catches_a_double_send", 3600);
    let memory = MemoryStore::new();
    memory
        .save(KEY, &login(&server.pkce_client()).await)
        .await
        .unwrap();
    let store: Arc<dyn TokenStore> = Arc::new(NoLockStore {
        inner: memory,
        both_loaded: tokio::sync::Barrier::new(2),
    });
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let source = RefreshTokenSource::new(server.pkce_client(), Arc::clone(&store), KEY);
            tokio::spawn(async move {
                source
                    .fetch(&FetchContext::new(FetchReason::Rejected))
                    .await
                    .map(drop)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    let reauth = results
        .iter()
        .filter(|r| matches!(r, Err(Error::ReauthorizationRequired { .. })))
        .count();
    assert_eq!(
        (results.iter().filter(|r| r.is_ok()).count(), reauth),
        (1, 1),
        "one refresh wins, the reuse is refused: {results:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Across processes: two OS processes share a FileStore

#[cfg(feature = "file-store")]
const CHILD_ENV: &str = "PARTNER_AUTH_OIDC_CHILD";
#[cfg(feature = "file-store")]
const CHILD_ROUNDS: usize = 5;

/// Re-runs this test binary as a child process running only `cross_process_child`.
#[cfg(feature = "file-store")]
fn spawn_child(id: usize, issuer: &Url, dir: &std::path::Path) -> tokio::process::Child {
    tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "cross_process_child",
            "--nocapture",
            "--include-ignored",
        ])
        .env(CHILD_ENV, id.to_string())
        .env("PARTNER_AUTH_OIDC_ISSUER", issuer.as_str())
        .env("PARTNER_AUTH_OIDC_DIR", dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the test binary can be re-run")
}

#[cfg(feature = "file-store")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_shared_by_two_processes_never_reuses_a_refresh_token() {
    let server = server_or_skip!(
        "file_store_shared_by_two_processes_never_reuses_a_refresh_token",
        3600
    );
    let dir = tempfile::tempdir().unwrap();
    let file = reqwest_partner_auth::store::FileStore::new(dir.path().join("tokens.json"));
    let tokens = login(&server.pkce_client()).await;
    file.save(KEY, &tokens).await.unwrap();

    let children = [
        spawn_child(1, server.issuer(), dir.path()),
        spawn_child(2, server.issuer(), dir.path()),
    ];
    for (i, child) in children.into_iter().enumerate() {
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("the child finishes within 60 s")
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "child {} failed ({}):\n{stdout}\n{stderr}",
            i + 1,
            out.status
        );
        assert!(
            stdout.contains(&format!("CHILD {} refreshed {CHILD_ROUNDS} times", i + 1))
                && stdout.contains("1 passed"),
            "child {} did not run its rounds:\n{stdout}",
            i + 1
        );
    }

    // 2 x 5 refreshes from two processes, and the login is alive: the rotation chain was
    // never broken by a refresh token sent twice.
    let source = RefreshTokenSource::new(server.pkce_client(), Arc::new(file.clone()), KEY);
    source
        .fetch(&FetchContext::new(FetchReason::Rejected))
        .await
        .expect("the login is still alive after both processes");
    assert_ne!(
        refresh_of(&file.load(KEY).await.unwrap().unwrap()),
        refresh_of(&tokens)
    );
}

/// The child of [`file_store_shared_by_two_processes_never_reuses_a_refresh_token`]; does
/// nothing unless started by it.
#[cfg(feature = "file-store")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "child process of file_store_shared_by_two_processes_never_reuses_a_refresh_token"]
async fn cross_process_child() {
    let Ok(id) = std::env::var(CHILD_ENV) else {
        return;
    };
    let issuer = Url::parse(&std::env::var("PARTNER_AUTH_OIDC_ISSUER").unwrap()).unwrap();
    let dir = std::path::PathBuf::from(std::env::var_os("PARTNER_AUTH_OIDC_DIR").unwrap());
    let client = OAuthClient::new(TokenUrl::new(issuer.join("/token").unwrap()), "pkce-public");
    let store = CountingStore::new(reqwest_partner_auth::store::FileStore::new(
        dir.join("tokens.json"),
    ));
    let cache = TokenCache::builder(RefreshTokenSource::new(
        client,
        Arc::new(store.clone()),
        KEY,
    ))
    .rejection_cooldown(Duration::ZERO)
    .build();

    // Start together: each child says it is ready and waits for the other.
    std::fs::write(dir.join(format!("ready-{id}")), b"").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !(dir.join("ready-1").exists() && dir.join("ready-2").exists()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the other child never started"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    for round in 1..=CHILD_ROUNDS {
        let lease = cache
            .token()
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        // A rejection forces a refresh (no stored token is reused).
        cache
            .reject(lease.generation())
            .await
            .unwrap_or_else(|e| panic!("child {id}, round {round}: {e}"));
    }
    assert_eq!(store.saves(), CHILD_ROUNDS);
    println!("CHILD {id} refreshed {CHILD_ROUNDS} times");
}
