//! Rotating refresh tokens (RFC 6749 §6, Auth0 refresh-token rotation as Pentaleap's guide
//! describes it: each refresh token works once, a reused one invalidates the whole login,
//! and a login lasts at most 180 days) through [`RefreshTokenSource`] / [`RefreshTokenAuth`] and a
//! [`TokenStore`], against a real local HTTP server that rotates like Auth0.
#![cfg(feature = "oauth2")]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::{base, client, json_response};
use httpmock::{HttpMockRequest, HttpMockResponse, MockServer};
use reqwest_middleware::ClientWithMiddleware;
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::error::{ReauthorizationReason, StoreError, StoreErrorKind};
use reqwest_partner_auth::oauth2::{
    OAuthClient, RedirectUrl, RefreshTokenAuth, RefreshTokenSource,
};
use reqwest_partner_auth::store::{DeadLogin, MemoryStore, StoreLock, StoredTokens, TokenStore};
use reqwest_partner_auth::{async_trait, Clock, Error, TokenCache};
use secrecy::{ExposeSecret as _, SecretString};

const CLIENT_ID: &str = "pentaleap-client";
const KEY: &str = "pentaleap";
const TOKEN_PATH: &str = "/oauth/token";
const API_PATH: &str = "/external/v2/publishers";
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

// -------------------------------------------------------------------------------------------
// An Auth0-like token endpoint with refresh-token rotation
// -------------------------------------------------------------------------------------------

/// What the simulated Auth0 tenant knows.
#[derive(Default)]
struct Auth0State {
    /// The one refresh token that works now (`None`: the login is revoked or unknown).
    valid: Option<String>,
    /// Successful refreshes so far; the n-th issues `tok-n` and `rt-(n+1)`.
    issued: usize,
    /// How often each refresh token value was presented (and consumed).
    uses: HashMap<String, usize>,
    /// Every request body, in order.
    bodies: Vec<String>,
    /// Answers given before looking at the token (not consuming it), front first: a status
    /// and the `Retry-After` seconds, if any.
    transient: Vec<(u16, Option<u64>)>,
    /// Statuses a gateway answers AFTER the server consumed the token and rotated it (the
    /// answer with the new tokens is lost), front first.
    lost_answers: Vec<u16>,
    /// Auth0's reuse interval (leeway): the previous refresh token is accepted again this long
    /// after its rotation, on this clock.
    reuse_interval: Option<(Duration, ManualClock)>,
    /// The refresh token rotated last and when (on the reuse-interval clock).
    previous: Option<(String, SystemTime)>,
    /// A shared log to write `token endpoint answered` to when tokens are sent.
    log: Option<Events>,
    /// Lifetime of the access tokens issued.
    expires_in: u64,
    /// Told every request body as it arrives (to await a background refresh).
    notify: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

/// The simulated tenant: a `POST /oauth/token` mock and its state.
struct Auth0<'a> {
    mock: httpmock::Mock<'a>,
    state: Arc<Mutex<Auth0State>>,
}

impl Auth0<'_> {
    async fn hits(&self) -> usize {
        self.mock.calls_async().await
    }

    /// The exact form bodies received, in order.
    fn bodies(&self) -> Vec<String> {
        self.state.lock().unwrap().bodies.clone()
    }

    /// Each refresh token value was presented at most once (Auth0's rule).
    fn assert_each_refresh_token_used_once(&self) {
        let state = self.state.lock().unwrap();
        let reused: Vec<_> = state.uses.iter().filter(|(_, n)| **n > 1).collect();
        assert!(reused.is_empty(), "refresh tokens reused: {reused:?}");
    }

    /// The next answers are `statuses` (with `Retry-After: retry_after` when given), sent
    /// before the token is looked at.
    fn fail_next_with(&self, statuses: &[u16], retry_after: Option<u64>) {
        self.state.lock().unwrap().transient = statuses.iter().map(|s| (*s, retry_after)).collect();
    }

    /// The next refreshes are consumed and rotated by the server, but a gateway answers
    /// `statuses` instead of the new tokens.
    fn lose_next_answers_with(&self, statuses: &[u16]) {
        self.state.lock().unwrap().lost_answers = statuses.to_vec();
    }

    /// Writes `token endpoint answered` to `log` whenever it sends tokens.
    fn log_to(&self, log: &Events) {
        self.state.lock().unwrap().log = Some(Arc::clone(log));
    }

    /// Accepts the previous refresh token again within `interval` of its rotation (Auth0's
    /// reuse interval), on `clock`.
    fn reuse_interval(&self, interval: Duration, clock: &ManualClock) {
        self.state.lock().unwrap().reuse_interval = Some((interval, clock.clone()));
    }

    /// A receiver of every request body from now on.
    fn watch(&self) -> tokio::sync::mpsc::UnboundedReceiver<String> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.state.lock().unwrap().notify = Some(tx);
        rx
    }
}

/// The body the middleware must send to refresh with `rt`.
fn refresh_body(rt: &str) -> String {
    format!("grant_type=refresh_token&client_id={CLIENT_ID}&refresh_token={rt}")
}

/// An Auth0 tenant whose current refresh token is `rt-1`, issuing access tokens that live
/// `expires_in` seconds. Rotation: a successful refresh with the current token answers
/// `tok-n` and `rt-(n+1)` and makes `rt-(n+1)` the only valid one; presenting a token a second
/// time revokes the whole login (403 `invalid_grant`, as Auth0 answers); an unknown token is
/// 403 `invalid_grant` too.
async fn auth0(server: &MockServer, expires_in: u64) -> Auth0<'_> {
    let state = Arc::new(Mutex::new(Auth0State {
        valid: Some("rt-1".into()),
        expires_in,
        ..Auth0State::default()
    }));
    let shared = Arc::clone(&state);
    let mock = server
        .mock_async(move |when, then| {
            when.method("POST")
                .path(TOKEN_PATH)
                .header("content-type", "application/x-www-form-urlencoded")
                .body_includes("grant_type=refresh_token");
            then.respond_with(move |req: &HttpMockRequest| {
                let body = req.body_string();
                let mut s = shared.lock().unwrap();
                s.bodies.push(body.clone());
                if let Some(tx) = &s.notify {
                    let _ = tx.send(body.clone());
                }
                if !s.transient.is_empty() {
                    let (status, retry_after) = s.transient.remove(0);
                    let mut res = HttpMockResponse::builder()
                        .status(status)
                        .header("content-type", "application/json");
                    if let Some(secs) = retry_after {
                        res = res.header("retry-after", secs.to_string());
                    }
                    // No OAuth `error` code: a 4xx carrying one is read as an OAuth error.
                    return res.body(r#"{"message":"try again later"}"#).build();
                }
                let rt = url::form_urlencoded::parse(body.as_bytes())
                    .find(|(k, _)| k == "refresh_token")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let uses = {
                    let n = s.uses.entry(rt.clone()).or_default();
                    *n += 1;
                    *n
                };
                let within_reuse_interval = match (&s.reuse_interval, &s.previous) {
                    (Some((interval, clock)), Some((previous, at))) => {
                        *previous == rt
                            && clock.system_now().duration_since(*at).unwrap_or_default()
                                <= *interval
                    }
                    _ => false,
                };
                if uses > 1 && !within_reuse_interval {
                    // Reuse detection: every refresh token of this login dies.
                    s.valid = None;
                    return invalid_grant("Unknown or invalid refresh token.");
                }
                if !within_reuse_interval && s.valid.as_deref() != Some(rt.as_str()) {
                    return invalid_grant("Unknown or invalid refresh token.");
                }
                s.issued += 1;
                let n = s.issued;
                s.valid = Some(format!("rt-{}", n + 1));
                if !within_reuse_interval {
                    if let Some((_, clock)) = &s.reuse_interval {
                        s.previous = Some((rt, clock.system_now()));
                    }
                }
                if !s.lost_answers.is_empty() {
                    // Rotated, but the answer does not arrive.
                    let status = s.lost_answers.remove(0);
                    return json_response(status, r#"{"message":"bad gateway"}"#);
                }
                if let Some(log) = &s.log {
                    log.lock().unwrap().push("token endpoint answered".into());
                }
                json_response(
                    200,
                    &format!(
                        r#"{{"access_token":"tok-{n}","refresh_token":"rt-{}","token_type":"Bearer","expires_in":{},"scope":"offline_access read:campaigns"}}"#,
                        n + 1,
                        s.expires_in
                    ),
                )
            });
        })
        .await;
    Auth0 { mock, state }
}

fn invalid_grant(description: &str) -> HttpMockResponse {
    json_response(
        403,
        &format!(r#"{{"error":"invalid_grant","error_description":"{description}"}}"#),
    )
}

// -------------------------------------------------------------------------------------------
// The API, a recording store, the client
// -------------------------------------------------------------------------------------------

/// A shared, ordered log of what happened: `save:<refresh token>`, `save failed`,
/// `api:<authorization header>`.
type Events = Arc<Mutex<Vec<String>>>;

/// The campaign API: logs each call's `Authorization` header to `events` and answers 401 to
/// the tokens in `rejected`, 200 otherwise.
async fn api<'a>(server: &'a MockServer, events: &Events, rejected: &[&str]) -> httpmock::Mock<'a> {
    let events = Arc::clone(events);
    let rejected: HashSet<String> = rejected.iter().map(|t| format!("Bearer {t}")).collect();
    server
        .mock_async(move |when, then| {
            when.method("GET").path(API_PATH);
            then.respond_with(move |req: &HttpMockRequest| {
                let auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned();
                events.lock().unwrap().push(format!("api:{auth}"));
                let status = if rejected.contains(&auth) { 401 } else { 200 };
                HttpMockResponse::builder()
                    .status(status)
                    .body("[]")
                    .build()
            });
        })
        .await
}

/// A [`MemoryStore`] that logs each save (with the refresh token saved) to the shared event
/// log, and fails the next `fail_saves` saves of tokens. The mark a refresh saves before it is
/// sent (`StoredTokens::refresh_started_at`) is not one of them: it is saved (and logged as
/// `mark:<refresh token>` only with `log_marks`), and fails only with `fail_marks` while
/// `fail_saves` is above 0 (a store that fails altogether), so a test that fails "the save"
/// fails the save of what the server answered.
#[derive(Clone)]
struct RecordingStore {
    inner: MemoryStore,
    events: Events,
    fail_saves: Arc<AtomicUsize>,
    fail_marks: Arc<AtomicBool>,
    log_marks: Arc<AtomicBool>,
}

impl RecordingStore {
    fn new(events: &Events) -> Self {
        Self {
            inner: MemoryStore::new(),
            events: Arc::clone(events),
            fail_saves: Arc::new(AtomicUsize::new(0)),
            fail_marks: Arc::new(AtomicBool::new(false)),
            log_marks: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Writes `tokens` without logging (the test's own set-up, or another process).
    async fn put(&self, tokens: StoredTokens) {
        self.inner.save(KEY, &tokens).await.unwrap();
    }

    async fn get(&self) -> Option<StoredTokens> {
        self.inner.load(KEY).await.unwrap()
    }

    async fn refresh_token(&self) -> Option<String> {
        self.get()
            .await
            .and_then(|t| t.refresh_token.map(|r| r.expose_secret().to_owned()))
    }
}

#[async_trait]
impl TokenStore for RecordingStore {
    async fn load(&self, key: &str) -> Result<Option<StoredTokens>, Error> {
        self.inner.load(key).await
    }

    async fn save(&self, key: &str, tokens: &StoredTokens) -> Result<(), Error> {
        let rt = tokens
            .refresh_token
            .as_ref()
            .map_or("none".to_owned(), |r| r.expose_secret().to_owned());
        if tokens.refresh_started_at.is_some() {
            if self.fail_marks.load(Ordering::SeqCst) && self.fail_saves.load(Ordering::SeqCst) > 0
            {
                return Err(Error::Store(StoreError::new(
                    StoreErrorKind::Io,
                    "disk full",
                )));
            }
            if self.log_marks.load(Ordering::SeqCst) {
                self.events.lock().unwrap().push(format!("mark:{rt}"));
            }
            return self.inner.save(key, tokens).await;
        }
        let fail = self
            .fail_saves
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            self.events.lock().unwrap().push("save failed".into());
            return Err(Error::Store(StoreError::new(
                StoreErrorKind::Io,
                "disk full",
            )));
        }
        self.events.lock().unwrap().push(format!("save:{rt}"));
        self.inner.save(key, tokens).await
    }

    async fn lock(&self, key: &str) -> Result<StoreLock, Error> {
        self.inner.lock(key).await
    }
}

fn secret(s: &str) -> Option<SecretString> {
    Some(SecretString::from(s.to_owned()))
}

/// A login made `age` ago (on `clock`) whose refresh token is `rt`, no access token yet.
fn login(clock: &ManualClock, rt: &str, age: Duration) -> StoredTokens {
    StoredTokens::new(None, None, secret(rt), clock.system_now() - age)
}

fn middleware(
    server: &MockServer,
    store: Arc<dyn TokenStore>,
    clock: &ManualClock,
) -> common::Builder<RefreshTokenSource> {
    let client = OAuthClient::auth0(&server.base_url(), CLIENT_ID).unwrap();
    let source = RefreshTokenSource::new(client, store, KEY).add_origin(&base(server));
    common::on_clock(RefreshTokenAuth::builder(source), clock)
}

/// One API call; its status.
async fn call(server: &MockServer, client: &ClientWithMiddleware) -> u16 {
    client
        .get(server.url(API_PATH))
        .send()
        .await
        .expect("the request should succeed")
        .status()
        .as_u16()
}

/// One API call that must fail; the crate error.
async fn fail(server: &MockServer, client: &ClientWithMiddleware) -> Error {
    common::layer_error(client.get(server.url(API_PATH))).await
}

fn events(log: &Events) -> Vec<String> {
    log.lock().unwrap().clone()
}

// -------------------------------------------------------------------------------------------
// Rotation
// -------------------------------------------------------------------------------------------

/// RFC 6749 §6 + Pentaleap guide step 4: the first API call refreshes with exactly
/// `grant_type=refresh_token&client_id=..&refresh_token=rt-1`; Auth0 rotation: the new
/// refresh token `rt-2` is saved in the store BEFORE the new access token goes out (the
/// shared log orders the store's save and the API's receipt).
#[tokio::test]
async fn first_request_refreshes_and_saves_the_rotated_token_before_use() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 3600).await;
    let api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store.put(login(&clock, "rt-1", Duration::ZERO)).await;
    let client = client(middleware(&server, Arc::new(store.clone()), &clock));

    assert_eq!(call(&server, &client).await, 200);

    assert_eq!(tenant.bodies(), [refresh_body("rt-1")]);
    assert_eq!(events(&log), ["save:rt-2", "api:Bearer tok-1"]);
    let stored = store.get().await.unwrap();
    assert_eq!(stored.refresh_token.unwrap().expose_secret(), "rt-2");
    assert_eq!(stored.access_token.unwrap().expose_secret(), "tok-1");
    assert_eq!(
        stored.access_expires_at,
        Some(clock.system_now() + Duration::from_secs(3600))
    );
    assert_eq!(tenant.hits().await, 1);
    assert_eq!(api.calls_async().await, 1);
}

/// RFC 6749 §5.1 `expires_in` + Auth0 rotation: with 60 s tokens nothing is refreshed early in
/// the token's life (10 s), a refresh happens once it expired (61 s) and sends the rotated
/// `rt-2`, the next one `rt-3`: each refresh token value used exactly once, each save before
/// its use.
#[tokio::test]
async fn expiry_driven_refreshes_continue_the_rotation() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 60).await;
    let api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store.put(login(&clock, "rt-1", Duration::ZERO)).await;
    let client = client(middleware(&server, Arc::new(store.clone()), &clock));

    call(&server, &client).await;
    clock.advance(Duration::from_secs(10));
    call(&server, &client).await;
    assert_eq!(
        tenant.hits().await,
        1,
        "refreshed early in the token's life"
    );
    clock.advance(Duration::from_secs(51));
    call(&server, &client).await;
    clock.advance(Duration::from_secs(61));
    call(&server, &client).await;

    assert_eq!(
        tenant.bodies(),
        [
            refresh_body("rt-1"),
            refresh_body("rt-2"),
            refresh_body("rt-3")
        ]
    );
    tenant.assert_each_refresh_token_used_once();
    assert_eq!(
        events(&log),
        [
            "save:rt-2",
            "api:Bearer tok-1",
            "api:Bearer tok-1",
            "save:rt-3",
            "api:Bearer tok-2",
            "save:rt-4",
            "api:Bearer tok-3"
        ]
    );
    assert_eq!(store.refresh_token().await.as_deref(), Some("rt-4"));
    assert_eq!(api.calls_async().await, 4);
}

/// Auth0 rotation with the crate's refresh-ahead: past 80 % of the lifetime a request still
/// goes out with the current token, and the background refresh really refreshes (sends
/// `rt-2`) instead of re-reading the access token this process stored itself; at the skew
/// point the new token is already there, so nobody waits for the token endpoint.
#[tokio::test]
async fn refresh_ahead_rotates_in_the_background() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 3600).await;
    let _api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store.put(login(&clock, "rt-1", Duration::ZERO)).await;
    let mw = middleware(&server, Arc::new(store.clone()), &clock).build();
    let cache = mw.cache().clone();
    let client = client(mw);

    call(&server, &client).await;
    let mut requests = tenant.watch();
    // Inside the refresh-ahead window of an hour token (before its skew point at 3570 s).
    clock.advance(Duration::from_secs(3560));
    call(&server, &client).await;
    // The background refresh runs in its own task, while the clock stands still at 3560 s.
    let body = tokio::time::timeout(Duration::from_secs(10), requests.recv())
        .await
        .expect("no background refresh request before the skew point");
    assert_eq!(body.as_deref(), Some(refresh_body("rt-2").as_str()));
    // Past the skew point of tok-1: a fetch that must wait joins the flight, if still running.
    clock.advance(Duration::from_secs(20));
    let lease = tokio::time::timeout(Duration::from_secs(10), cache.token())
        .await
        .expect("the token cache hung")
        .unwrap();

    assert_eq!(lease.header_value(), "Bearer tok-2");
    assert_eq!(
        tenant.bodies(),
        [refresh_body("rt-1"), refresh_body("rt-2")]
    );
    assert_eq!(
        events(&log),
        [
            "save:rt-2",
            "api:Bearer tok-1",
            "api:Bearer tok-1",
            "save:rt-3"
        ]
    );
    tenant.assert_each_refresh_token_used_once();
}

/// Single flight (Auth0: a refresh token must not be sent twice, even by concurrent tasks):
/// 100 concurrent requests on an empty cache cause exactly one refresh, `rt-1` sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_cause_one_refresh() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 3600).await;
    let api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store.put(login(&clock, "rt-1", Duration::ZERO)).await;
    let client = client(middleware(&server, Arc::new(store.clone()), &clock));

    let calls = (0..100).map(|_| {
        let client = client.clone();
        let url = server.url(API_PATH);
        tokio::spawn(async move { client.get(url).send().await.map(|r| r.status().as_u16()) })
    });
    let statuses = futures_util::future::join_all(calls).await;

    assert!(statuses.into_iter().all(|s| s.unwrap().unwrap() == 200));
    assert_eq!(tenant.hits().await, 1);
    assert_eq!(tenant.bodies(), [refresh_body("rt-1")]);
    tenant.assert_each_refresh_token_used_once();
    assert_eq!(api.calls_async().await, 100);
    assert_eq!(
        events(&log)
            .iter()
            .filter(|e| e.starts_with("save"))
            .count(),
        1
    );
}

/// RFC 6750 §3.1 (401 `invalid_token`) → `FetchReason::Rejected`: the stored access token
/// (which is the rejected one) is not reused; a refresh with the rotated `rt-2` runs and the
/// request is replayed once with the new token.
#[tokio::test]
async fn api_401_refreshes_with_the_rotated_token_and_replays() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 3600).await;
    let api = api(&server, &log, &["tok-1"]).await;
    let store = RecordingStore::new(&log);
    store.put(login(&clock, "rt-1", Duration::ZERO)).await;
    let client = client(middleware(&server, Arc::new(store.clone()), &clock));

    assert_eq!(call(&server, &client).await, 200);

    assert_eq!(
        tenant.bodies(),
        [refresh_body("rt-1"), refresh_body("rt-2")]
    );
    assert_eq!(
        events(&log),
        [
            "save:rt-2",
            "api:Bearer tok-1",
            "save:rt-3",
            "api:Bearer tok-2"
        ]
    );
    tenant.assert_each_refresh_token_used_once();
    assert_eq!(api.calls_async().await, 2);
}

/// Auth0 rotation across processes sharing a store: another process refreshed (it sent
/// `rt-2` and stored `tok-2`/`rt-3`); when our token expires we read the store under its lock,
/// use the other process's still-valid access token and send nothing; our next refresh
/// sends `rt-3`, never the `rt-2` the other process consumed.
#[tokio::test]
async fn another_process_refreshed_so_its_stored_token_is_used() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 60).await;
    let _api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store.put(login(&clock, "rt-1", Duration::ZERO)).await;
    let client = client(middleware(&server, Arc::new(store.clone()), &clock));
    call(&server, &client).await;

    // The other process: a real refresh with rt-2, its result written to the shared store.
    let other: serde_json::Value = reqwest::Client::new()
        .post(server.url(TOKEN_PATH))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("refresh_token", "rt-2"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(other["access_token"], "tok-2");
    let authorized_at = store.get().await.unwrap().authorized_at;
    store
        .put(StoredTokens::new(
            secret("tok-2"),
            Some(clock.system_now() + Duration::from_secs(3600)),
            secret("rt-3"),
            authorized_at,
        ))
        .await;
    log.lock().unwrap().push("other process refreshed".into());

    clock.advance(Duration::from_secs(61));
    call(&server, &client).await;
    assert_eq!(tenant.hits().await, 2, "no token request of ours");
    clock.advance(Duration::from_secs(3600));
    call(&server, &client).await;

    assert_eq!(
        tenant.bodies(),
        [
            refresh_body("rt-1"),
            refresh_body("rt-2"),
            refresh_body("rt-3")
        ]
    );
    tenant.assert_each_refresh_token_used_once();
    assert_eq!(
        events(&log),
        [
            "save:rt-2",
            "api:Bearer tok-1",
            "other process refreshed",
            "api:Bearer tok-2",
            "save:rt-4",
            "api:Bearer tok-3"
        ]
    );
}

/// Two processes (two layers, two caches) sharing one store with short tokens make one
/// refresh per refresh point, not one each: a process that finds in the store a token newer
/// than the one it holds uses it, even with less than a minute left, and sends nothing. (A
/// process that holds no token yet takes only a stored token with more than a minute left.)
/// Each refresh token is presented once.
#[tokio::test]
async fn processes_sharing_a_store_refresh_once_per_refresh_point_even_with_short_tokens() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 30).await;
    let _api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store.put(login(&clock, "rt-1", Duration::ZERO)).await;
    let a = client(middleware(&server, Arc::new(store.clone()), &clock));
    let b = client(middleware(&server, Arc::new(store.clone()), &clock));

    call(&server, &a).await; // t=0: refresh with rt-1, tok-1 until t=30
    clock.advance(Duration::from_secs(5));
    call(&server, &b).await; // t=5: tok-1 has 25 s left, b holds none: rt-2, tok-2 until t=35
    assert_eq!(tenant.hits().await, 2);

    // t=23: past the skew point of a's tok-1 (22.5 s). The store holds tok-2, newer than
    // tok-1: a uses it and sends nothing (before, it refreshed with rt-3).
    clock.advance(Duration::from_secs(18));
    call(&server, &a).await;
    assert_eq!(tenant.hits().await, 2, "a used b's newer token");

    assert_eq!(
        tenant.bodies(),
        [refresh_body("rt-1"), refresh_body("rt-2")]
    );
    tenant.assert_each_refresh_token_used_once();
    assert_eq!(
        events(&log),
        [
            "save:rt-2",
            "api:Bearer tok-1",
            "save:rt-3",
            "api:Bearer tok-2",
            "api:Bearer tok-2"
        ]
    );
}

// -------------------------------------------------------------------------------------------
// A dead login
// -------------------------------------------------------------------------------------------

/// RFC 6749 §5.2 `invalid_grant` on a refresh (Auth0: reused, revoked or expired refresh
/// token) is `Error::ReauthorizationRequired`, not retried (1 hit). The stored login is
/// MARKED dead (when: now on the clock; why: the server's description) and its tokens are
/// kept for a person to look at, not wiped; a later request finds the mark and sends nothing
/// (still 1 hit), getting `ReauthorizationRequired` again.
#[tokio::test]
async fn invalid_grant_marks_the_login_dead_and_nothing_is_sent_again() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 3600).await;
    let api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store.put(login(&clock, "rt-revoked", Duration::ZERO)).await;
    let client = client(middleware(&server, Arc::new(store.clone()), &clock));

    let err = fail(&server, &client).await;

    match &err {
        Error::ReauthorizationRequired { reason, message } => {
            assert_eq!(*reason, ReauthorizationReason::Refused);
            assert_eq!(message, "Unknown or invalid refresh token.")
        }
        other => panic!("expected ReauthorizationRequired, got {other:?}"),
    }
    assert_eq!(tenant.hits().await, 1);
    assert_eq!(clock.slept(), Duration::ZERO, "no retry");
    let stored = store.get().await.unwrap();
    let dead = stored.dead.as_ref().expect("the login is marked dead");
    assert_eq!(dead.at, clock.system_now());
    assert_eq!(dead.reason, "Unknown or invalid refresh token.");
    assert_eq!(
        store.refresh_token().await.as_deref(),
        Some("rt-revoked"),
        "the dead login's tokens are kept for inspection"
    );
    assert_eq!(events(&log), ["save:rt-revoked"]);

    clock.advance(Duration::from_secs(60));
    let err = fail(&server, &client).await;
    match &err {
        Error::ReauthorizationRequired { reason, message } => {
            assert_eq!(*reason, ReauthorizationReason::DeadLogin);
            assert!(
                message.contains("Unknown or invalid refresh token."),
                "{message}"
            );
            assert!(message.contains("log in again"), "{message}");
        }
        other => panic!("expected ReauthorizationRequired, got {other:?}"),
    }
    assert_eq!(tenant.hits().await, 1, "the dead token was sent again");
    assert_eq!(api.calls_async().await, 0);
    assert_eq!(
        events(&log),
        ["save:rt-revoked"],
        "the mark is not rewritten"
    );
}

/// A login a store already holds as dead (from an earlier process) is refused without any
/// request, by a fresh source too; a new login (`PendingLogin::complete`, then `save`) replaces
/// it and clears the mark, and the next request uses the new login's access token.
#[tokio::test]
async fn a_dead_login_is_not_sent_and_a_new_login_clears_the_mark() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 3600).await;
    let api = api(&server, &log, &[]).await;
    let exchange = server
        .mock_async(|when, then| {
            when.method("POST")
                .path(TOKEN_PATH)
                .body_includes("grant_type=authorization_code");
            then.status(200)
                .header("content-type", "application/json")
                .body(r#"{"access_token":"tok-login","refresh_token":"rt-login","token_type":"Bearer","expires_in":3600}"#);
        })
        .await;
    let store = RecordingStore::new(&log);
    let mut dead = login(&clock, "rt-1", Duration::ZERO);
    dead.dead = Some(DeadLogin::new(clock.system_now(), "revoked by an admin"));
    store.put(dead).await;
    let client = client(middleware(&server, Arc::new(store.clone()), &clock));

    let err = fail(&server, &client).await;
    assert!(
        matches!(&err, Error::ReauthorizationRequired { reason: ReauthorizationReason::DeadLogin, message } if message.contains("revoked by an admin")),
        "{err:?}"
    );
    assert_eq!(tenant.hits().await, 0);

    // A person logs in again.
    let oauth = OAuthClient::auth0(&server.base_url(), CLIENT_ID)
        .unwrap()
        .redirect_uri(RedirectUrl::parse("http://127.0.0.1:1/callback").unwrap());
    let pending = oauth.begin_login().unwrap();
    let state: String = pending
        .authorize_url()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let mut callback = pending.redirect_uri().clone();
    callback
        .query_pairs_mut()
        .append_pair("code", "code-1")
        .append_pair("state", &state);
    let tokens = pending.complete(&callback).await.unwrap();
    assert!(tokens.dead.is_none());
    store.save(KEY, &tokens).await.unwrap();
    assert!(
        store.get().await.unwrap().dead.is_none(),
        "the mark is cleared"
    );

    assert_eq!(call(&server, &client).await, 200);
    assert_eq!(exchange.calls_async().await, 1);
    assert_eq!(
        tenant.hits().await,
        0,
        "the new login's access token is used as is"
    );
    assert_eq!(api.calls_async().await, 1);
    assert_eq!(events(&log), ["save:rt-login", "api:Bearer tok-login"]);
}

/// Auth0 reuse detection ("whenever a refresh token is used twice, any refresh token is
/// invalidated"): a token already consumed elsewhere gets `invalid_grant`, which is
/// `ReauthorizationRequired`; the tenant has revoked the login, and the store marks it dead.
#[tokio::test]
async fn reused_refresh_token_requires_reauthorization() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 3600).await;
    let _api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store.put(login(&clock, "rt-1", Duration::ZERO)).await;
    // Someone else (a copy of the store, a leaked token) consumed rt-1 first.
    let consumed = reqwest::Client::new()
        .post(server.url(TOKEN_PATH))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("refresh_token", "rt-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(consumed.status(), 200);
    let client = client(middleware(&server, Arc::new(store.clone()), &clock));

    let err = fail(&server, &client).await;

    assert!(
        matches!(err, Error::ReauthorizationRequired { .. }),
        "{err:?}"
    );
    assert_eq!(tenant.hits().await, 2);
    assert_eq!(tenant.state.lock().unwrap().valid, None, "login revoked");
    assert!(store.get().await.unwrap().dead.is_some(), "marked dead");
}

/// Pentaleap guide ("the authorization flow has to be redone after 180 days"): a login made
/// 181 days ago is `ReauthorizationRequired` without any token request; one made 179 days
/// ago still refreshes.
#[tokio::test]
async fn login_older_than_180_days_requires_reauthorization_without_a_request() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 3600).await;
    let api = api(&server, &log, &[]).await;

    let old = RecordingStore::new(&log);
    old.put(login(&clock, "rt-1", 181 * DAY)).await;
    let err = fail(&server, &client(middleware(&server, Arc::new(old), &clock))).await;
    match &err {
        Error::ReauthorizationRequired { reason, message } => {
            assert_eq!(*reason, ReauthorizationReason::SessionExpired);
            assert!(message.contains("180"), "{message}")
        }
        other => panic!("expected ReauthorizationRequired, got {other:?}"),
    }
    assert_eq!(tenant.hits().await, 0);
    assert_eq!(api.calls_async().await, 0);

    let recent = RecordingStore::new(&log);
    recent.put(login(&clock, "rt-1", 179 * DAY)).await;
    let client = client(middleware(&server, Arc::new(recent), &clock));
    assert_eq!(call(&server, &client).await, 200);
    assert_eq!(tenant.bodies(), [refresh_body("rt-1")]);
}

/// Pentaleap guide (the refresh flow starts from a login): an empty store is
/// `ReauthorizationRequired` ("log in first") and nothing is sent.
#[tokio::test]
async fn empty_store_requires_a_login_first() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 3600).await;
    let api = api(&server, &log, &[]).await;
    let client = client(middleware(
        &server,
        Arc::new(RecordingStore::new(&log)),
        &clock,
    ));

    let err = fail(&server, &client).await;

    match &err {
        Error::ReauthorizationRequired { reason, message } => {
            assert_eq!(*reason, ReauthorizationReason::NoLogin);
            assert!(message.contains("log in"), "{message}")
        }
        other => panic!("expected ReauthorizationRequired, got {other:?}"),
    }
    assert_eq!(tenant.hits().await, 0);
    assert_eq!(api.calls_async().await, 0);
}

// -------------------------------------------------------------------------------------------
// Failures on the way
// -------------------------------------------------------------------------------------------

/// Auth0 rotation vs. a failing store: when saving the rotated token fails, nothing is lost
/// and nobody waits: the request still succeeds with the new access token `tok-1`, and the
/// rotated `rt-2` stays in memory. The next fetch (the token expired) saves it before
/// anything else, then refreshes with `rt-2`, never `rt-1` again.
#[tokio::test]
async fn failed_save_still_uses_the_new_token_and_saves_first_at_the_next_fetch() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 60).await;
    let api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store.put(login(&clock, "rt-1", Duration::ZERO)).await;
    store.fail_saves.store(1, Ordering::SeqCst);
    let client = client(middleware(&server, Arc::new(store.clone()), &clock));

    assert_eq!(call(&server, &client).await, 200);
    assert_eq!(tenant.hits().await, 1);
    assert_eq!(store.refresh_token().await.as_deref(), Some("rt-1"));

    clock.advance(Duration::from_secs(61));
    assert_eq!(call(&server, &client).await, 200);

    assert_eq!(
        tenant.bodies(),
        [refresh_body("rt-1"), refresh_body("rt-2")]
    );
    tenant.assert_each_refresh_token_used_once();
    assert_eq!(
        events(&log),
        [
            "save failed",
            "api:Bearer tok-1",
            "save:rt-2",
            "save:rt-3",
            "api:Bearer tok-2"
        ]
    );
    assert_eq!(store.refresh_token().await.as_deref(), Some("rt-3"));
    assert_eq!(api.calls_async().await, 2);
}

/// A store that keeps failing: each fetch first tries to save the rotated tokens held in
/// memory, and when that fails again refreshes with the rotated refresh token it holds
/// (`rt-2`, then `rt-3`), never the stale stored `rt-1`; requests keep succeeding. Once the
/// store works again, the tokens held in memory are saved first and the rotation goes on.
#[tokio::test]
async fn while_the_store_fails_the_rotated_token_in_memory_is_used() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 60).await;
    let _api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store.put(login(&clock, "rt-1", Duration::ZERO)).await;
    store.fail_saves.store(3, Ordering::SeqCst);
    store.fail_marks.store(true, Ordering::SeqCst);
    let client = client(middleware(&server, Arc::new(store.clone()), &clock));

    assert_eq!(call(&server, &client).await, 200);
    clock.advance(Duration::from_secs(61));
    assert_eq!(call(&server, &client).await, 200);
    assert_eq!(store.refresh_token().await.as_deref(), Some("rt-1"));
    clock.advance(Duration::from_secs(61));
    assert_eq!(call(&server, &client).await, 200);

    assert_eq!(
        tenant.bodies(),
        [
            refresh_body("rt-1"),
            refresh_body("rt-2"),
            refresh_body("rt-3")
        ]
    );
    tenant.assert_each_refresh_token_used_once();
    assert_eq!(
        events(&log),
        [
            "save failed",
            "api:Bearer tok-1",
            "save failed",
            "save failed",
            "api:Bearer tok-2",
            "save:rt-3",
            "save:rt-4",
            "api:Bearer tok-3"
        ]
    );
    assert_eq!(store.refresh_token().await.as_deref(), Some("rt-4"));
}

/// Rotated tokens held in memory after a failed save do not overwrite a new login a person
/// saved meanwhile (another `authorized_at`): the new login is used as it is, and the old
/// login's tokens are dropped.
#[tokio::test]
async fn unsaved_tokens_do_not_overwrite_a_new_login() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 60).await;
    let _api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store.put(login(&clock, "rt-1", Duration::ZERO)).await;
    store.fail_saves.store(1, Ordering::SeqCst);
    let client = client(middleware(&server, Arc::new(store.clone()), &clock));
    assert_eq!(call(&server, &client).await, 200);

    clock.advance(Duration::from_secs(61));
    store
        .put(
            StoredTokens::from_refresh_token("rt-new", clock.system_now())
                .with_access_token("tok-new", clock.system_now() + Duration::from_secs(3600)),
        )
        .await;
    assert_eq!(call(&server, &client).await, 200);

    assert_eq!(tenant.bodies(), [refresh_body("rt-1")]);
    assert_eq!(
        events(&log),
        ["save failed", "api:Bearer tok-1", "api:Bearer tok-new"]
    );
    assert_eq!(store.refresh_token().await.as_deref(), Some("rt-new"));
}

/// The server said to retry (RFC 6585 429 / RFC 9110 503 with `Retry-After`; Auth0 answers
/// before consuming the token): the refresh is retried with the SAME refresh token `rt-1`
/// after the announced delay (on the manual clock), and the rotation continues normally.
#[tokio::test]
async fn retry_after_429_and_503_are_retried_with_the_same_token() {
    for status in [429, 503] {
        let server = MockServer::start_async().await;
        let clock = ManualClock::new();
        let log = Events::default();
        let tenant = auth0(&server, 3600).await;
        let _api = api(&server, &log, &[]).await;
        let store = RecordingStore::new(&log);
        store.put(login(&clock, "rt-1", Duration::ZERO)).await;
        tenant.fail_next_with(&[status], Some(2));
        let client = client(middleware(&server, Arc::new(store.clone()), &clock));

        assert_eq!(call(&server, &client).await, 200, "{status}");

        assert_eq!(tenant.hits().await, 2, "{status}");
        assert_eq!(
            tenant.bodies(),
            [refresh_body("rt-1"), refresh_body("rt-1")]
        );
        tenant.assert_each_refresh_token_used_once();
        assert_eq!(
            clock.slept(),
            Duration::from_secs(2),
            "{status}: Retry-After"
        );
        assert_eq!(events(&log), ["save:rt-2", "api:Bearer tok-1"]);
    }
}

/// Auth0 rotation behind a gateway: the server consumed `rt-1` and rotated, but the answer is
/// lost and a gateway says 500, 502, 503 (no `Retry-After`) or 504. Nothing proves the token
/// was not consumed, so it is NOT sent again on a guess (which would be a reuse and revoke
/// the login): exactly one request, no backoff, and the caller gets the typed transient
/// `Error::TokenEndpoint` with the gateway's status.
#[tokio::test]
async fn gateway_errors_are_not_retried_with_a_refresh_token_that_may_be_used_up() {
    for status in [500, 502, 503, 504] {
        let server = MockServer::start_async().await;
        let clock = ManualClock::new();
        let log = Events::default();
        let tenant = auth0(&server, 3600).await;
        let api = api(&server, &log, &[]).await;
        let store = RecordingStore::new(&log);
        store.put(login(&clock, "rt-1", Duration::ZERO)).await;
        tenant.lose_next_answers_with(&[status]);
        let client = client(middleware(&server, Arc::new(store.clone()), &clock));

        let err = fail(&server, &client).await;

        match &err {
            Error::TokenEndpoint { status: got, .. } => assert_eq!(got.as_u16(), status),
            other => panic!("{status}: expected TokenEndpoint, got {other:?}"),
        }
        assert!(err.is_transient(), "{status}");
        assert_eq!(
            tenant.hits().await,
            1,
            "{status}: the refresh token was resent"
        );
        tenant.assert_each_refresh_token_used_once();
        assert_eq!(clock.slept(), Duration::ZERO, "{status}: retried");
        assert_eq!(api.calls_async().await, 0);
        assert!(
            tenant.state.lock().unwrap().valid.is_some(),
            "{status}: the login was revoked"
        );
    }
}

/// Only a 429 or a 503 WITH `Retry-After` says the server wants the same request again. A 429
/// without it, or a 500, 502 or 504 even with `Retry-After` (a gateway's header says nothing
/// about whether the server behind it consumed the token), is not resent: exactly one request,
/// no backoff, the typed transient `Error::TokenEndpoint` with the status, the login alive.
#[tokio::test]
async fn only_429_and_503_with_retry_after_resend_the_refresh_token() {
    for (status, retry_after) in [(429, None), (500, Some(2)), (502, Some(2)), (504, Some(2))] {
        let server = MockServer::start_async().await;
        let clock = ManualClock::new();
        let log = Events::default();
        let tenant = auth0(&server, 3600).await;
        let api = api(&server, &log, &[]).await;
        let store = RecordingStore::new(&log);
        store.put(login(&clock, "rt-1", Duration::ZERO)).await;
        tenant.fail_next_with(&[status], retry_after);
        let client = client(middleware(&server, Arc::new(store.clone()), &clock));

        let err = fail(&server, &client).await;

        match &err {
            Error::TokenEndpoint { status: got, .. } => assert_eq!(got.as_u16(), status),
            other => panic!("{status}: expected TokenEndpoint, got {other:?}"),
        }
        assert!(err.is_transient(), "{status}");
        assert_eq!(
            tenant.hits().await,
            1,
            "{status}: the refresh token was resent"
        );
        assert_eq!(clock.slept(), Duration::ZERO, "{status}: retried");
        assert_eq!(api.calls_async().await, 0);
        assert_eq!(store.refresh_token().await.as_deref(), Some("rt-1"));
        assert!(store.get().await.unwrap().dead.is_none(), "{status}");
    }
}

/// After a failed refresh the next fetch reads the store before sending anything: another
/// process that refreshed meanwhile (it stored `tok-9`/`rt-9`) is seen, its access token is
/// used and nothing is sent; the next refresh sends `rt-9`, not the `rt-1` the failed one had.
#[tokio::test]
async fn after_a_failed_refresh_the_next_fetch_reads_the_store_first() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 3600).await;
    let _api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store.put(login(&clock, "rt-1", Duration::ZERO)).await;
    tenant.fail_next_with(&[502], None);
    let client = client(middleware(&server, Arc::new(store.clone()), &clock));

    let err = fail(&server, &client).await;
    assert!(matches!(err, Error::TokenEndpoint { .. }), "{err:?}");
    assert_eq!(tenant.hits().await, 1);

    // Another process refreshed meanwhile.
    tenant.state.lock().unwrap().valid = Some("rt-9".into());
    let authorized_at = store.get().await.unwrap().authorized_at;
    store
        .put(
            StoredTokens::from_refresh_token("rt-9", authorized_at)
                .with_access_token("tok-9", clock.system_now() + Duration::from_secs(600)),
        )
        .await;

    assert_eq!(call(&server, &client).await, 200);
    assert_eq!(tenant.hits().await, 1, "the stored access token is used");
    clock.advance(Duration::from_secs(601));
    assert_eq!(call(&server, &client).await, 200);

    assert_eq!(
        tenant.bodies(),
        [refresh_body("rt-1"), refresh_body("rt-9")]
    );
    assert_eq!(
        events(&log),
        ["api:Bearer tok-9", "save:rt-2", "api:Bearer tok-1"]
    );
}

/// A connection failure proves the request never reached the server, so the refresh token
/// is still unused: it is retried (3 attempts, backoff on the manual clock), then the caller
/// gets `Error::Transport`.
#[tokio::test]
async fn connection_failures_are_retried() {
    let clock = ManualClock::new();
    let store = MemoryStore::new();
    store
        .save(KEY, &login(&clock, "rt-1", Duration::ZERO))
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", common::dead_port());
    let oauth = OAuthClient::auth0(&base, CLIENT_ID).unwrap();
    let source = RefreshTokenSource::new(oauth, Arc::new(store), KEY)
        .add_origin(&url::Url::parse("http://127.0.0.1/").unwrap());
    let mw = common::on_clock(RefreshTokenAuth::builder(source), &clock).build();
    let cache = mw.cache().clone();

    let err = cache.token().await.unwrap_err();

    match &err {
        Error::Transport { source, .. } => assert!(source.is_connect(), "{source:?}"),
        other => panic!("expected Transport, got {other:?}"),
    }
    assert!(clock.slept() > Duration::ZERO, "not retried");
}

/// RFC 6749 §6: the server MAY issue a new refresh token; when the answer carries none
/// (rotation off), the stored refresh token stays and is used for the next refresh.
#[tokio::test]
async fn non_rotating_server_keeps_the_refresh_token() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let token = common::counted_mock(
        &server,
        |when| {
            when.method("POST")
                .path(TOKEN_PATH)
                .body(refresh_body("rt-1"))
        },
        |n, _| common::numbered_token(n, 60),
    )
    .await;
    let _api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store.put(login(&clock, "rt-1", Duration::ZERO)).await;
    let client = client(middleware(&server, Arc::new(store.clone()), &clock));

    call(&server, &client).await;
    clock.advance(Duration::from_secs(61));
    call(&server, &client).await;

    assert_eq!(token.calls_async().await, 2);
    assert_eq!(
        events(&log),
        [
            "save:rt-1",
            "api:Bearer tok-1",
            "save:rt-1",
            "api:Bearer tok-2"
        ]
    );
}

/// Auth0 rotation: a refresh whose request reached the server but whose answer was lost (a
/// timeout, here `OAuthClient::timeout` applied to a given client that has none) is NOT
/// retried at once: the server may already have rotated the token, and sending it again
/// would count as reuse and revoke the login. Exactly one request is sent and the caller gets
/// `Error::Transport`. (A connection failure, where nothing was sent, is retried; see
/// `connection_failures_are_retried`.)
#[tokio::test]
async fn refresh_that_timed_out_is_not_retried() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let slow = server
        .mock_async(|when, then| {
            when.method("POST")
                .path(TOKEN_PATH)
                .body(refresh_body("rt-1"));
            then.delay(Duration::from_secs(3)).status(200).body("{}");
        })
        .await;
    let store = MemoryStore::new();
    store
        .save(KEY, &login(&clock, "rt-1", Duration::ZERO))
        .await
        .unwrap();
    let oauth = OAuthClient::auth0(&server.base_url(), CLIENT_ID)
        .unwrap()
        .http_client(reqwest::Client::new())
        .timeout(Duration::from_millis(300));
    let source = RefreshTokenSource::new(oauth, Arc::new(store), KEY).add_origin(&base(&server));
    let client = client(common::on_clock(RefreshTokenAuth::builder(source), &clock));

    let err = fail(&server, &client).await;
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_eq!(
        slow.calls_async().await,
        1,
        "a refresh that may have landed is not resent"
    );
    assert_eq!(clock.slept(), Duration::ZERO, "no retry backoff");
}

// -------------------------------------------------------------------------------------------
// The crash window
// -------------------------------------------------------------------------------------------

/// A `tracing` writer that appends each of the crate's log lines to the shared event log.
#[derive(Clone)]
struct LogToEvents(Events);

impl std::io::Write for LogToEvents {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let line = String::from_utf8_lossy(buf).trim().to_owned();
        self.0.lock().unwrap().push(format!("log: {line}"));
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogToEvents {
    type Writer = LogToEvents;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The crash window is as short as it can be: between the token endpoint sending the rotated
/// tokens and their save, this crate does nothing else: no log line (of any level), no other
/// request, no store access; the save is the very next event, and the API call comes after.
#[tokio::test(flavor = "current_thread")]
async fn the_rotated_token_is_saved_before_anything_else() {
    // See `tests/secrets.rs`: a second, always-interested dispatcher keeps the callsites'
    // cached interest from hiding the crate's events from this test's subscriber.
    let _anchor = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(std::io::sink)
            .finish(),
    );
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("reqwest_partner_auth=trace")
        .with_ansi(false)
        .with_writer(LogToEvents(Arc::clone(&log)))
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let tenant = auth0(&server, 3600).await;
    tenant.log_to(&log);
    let _api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store.put(login(&clock, "rt-1", Duration::ZERO)).await;
    let client = client(middleware(&server, Arc::new(store.clone()), &clock));

    assert_eq!(call(&server, &client).await, 200);

    let events = events(&log);
    let answered = events
        .iter()
        .position(|e| e == "token endpoint answered")
        .expect("the token endpoint answered");
    assert_eq!(
        events[answered + 1],
        "save:rt-2",
        "something happened between the answer and the save: {events:#?}"
    );
    assert!(
        events[..answered].iter().any(|e| e.starts_with("log: ")),
        "the capture saw none of the crate's log lines: {events:#?}"
    );
    let api_call = events.iter().position(|e| e == "api:Bearer tok-1").unwrap();
    assert!(api_call > answered + 1, "{events:#?}");
    assert_eq!(tenant.hits().await, 1);
}

/// A process that got the rotated token but "crashed" before saving it (its save fails, then
/// it is dropped, its memory gone), then a fresh process over the same store, which still
/// holds `rt-1`. Returns the fresh process's outcome and the tenant.
async fn crash_then_restart<'a>(
    server: &'a MockServer,
    clock: &ManualClock,
    reuse_interval: Option<Duration>,
) -> (Result<u16, Error>, Auth0<'a>, RecordingStore) {
    let log = Events::default();
    let tenant = auth0(server, 3600).await;
    if let Some(interval) = reuse_interval {
        tenant.reuse_interval(interval, clock);
    }
    let _api = api(server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store.put(login(clock, "rt-1", Duration::ZERO)).await;
    store.fail_saves.store(1, Ordering::SeqCst);

    let crashed = client(middleware(server, Arc::new(store.clone()), clock));
    assert_eq!(call(server, &crashed).await, 200);
    drop(crashed);
    assert_eq!(store.refresh_token().await.as_deref(), Some("rt-1"));

    clock.advance(Duration::from_secs(5));
    let restarted = client(middleware(server, Arc::new(store.clone()), clock));
    let outcome = match restarted.get(server.url(API_PATH)).send().await {
        Ok(res) => Ok(res.status().as_u16()),
        Err(err) => Err(common::crate_error(&err)),
    };
    (outcome, tenant, store)
}

/// The crash window with the server-side remedy: Auth0's reuse interval (leeway, here 30 s)
/// accepts the previous refresh token again shortly after its rotation, so the restarted
/// process, sending the stored `rt-1` 5 s after the crash, recovers: new tokens, saved.
#[tokio::test]
async fn a_crash_before_the_save_is_recovered_within_the_reuse_interval() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();

    let (outcome, tenant, store) =
        crash_then_restart(&server, &clock, Some(Duration::from_secs(30))).await;

    assert_eq!(outcome.unwrap(), 200);
    assert_eq!(
        tenant.bodies(),
        [refresh_body("rt-1"), refresh_body("rt-1")]
    );
    assert_eq!(store.refresh_token().await.as_deref(), Some("rt-3"));
    assert!(store.get().await.unwrap().dead.is_none());
    assert_eq!(tenant.state.lock().unwrap().valid.as_deref(), Some("rt-3"));
}

/// The same crash without a reuse interval: the restarted process sends the consumed `rt-1`,
/// the server sees a reuse and revokes the login, and the caller gets
/// `ReauthorizationRequired` (the window no client can close; see `RefreshTokenSource`'s docs).
#[tokio::test]
async fn a_crash_before_the_save_without_a_reuse_interval_loses_the_login() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();

    let (outcome, tenant, store) = crash_then_restart(&server, &clock, None).await;

    assert!(
        matches!(outcome, Err(Error::ReauthorizationRequired { .. })),
        "{outcome:?}"
    );
    assert_eq!(tenant.hits().await, 2);
    assert_eq!(tenant.state.lock().unwrap().valid, None, "login revoked");
    assert!(store.get().await.unwrap().dead.is_some());
}

/// Before a refresh token is sent, the store is told (`StoredTokens::refresh_started_at`, with
/// the refresh token it is about to send); the save of the answer clears the mark. So a
/// process that dies in between leaves a store that says so.
#[tokio::test]
async fn a_refresh_is_marked_in_the_store_before_it_is_sent_and_its_save_clears_the_mark() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 3600).await;
    tenant.log_to(&log);
    let _api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store.log_marks.store(true, Ordering::SeqCst);
    store.put(login(&clock, "rt-1", Duration::ZERO)).await;
    let client = client(middleware(&server, Arc::new(store.clone()), &clock));

    assert_eq!(call(&server, &client).await, 200);

    assert_eq!(
        events(&log),
        [
            "mark:rt-1",
            "token endpoint answered",
            "save:rt-2",
            "api:Bearer tok-1"
        ]
    );
    let stored = store.get().await.unwrap();
    assert!(stored.refresh_started_at.is_none(), "{stored:?}");
    assert_eq!(store.refresh_token().await.as_deref(), Some("rt-2"));
}

/// A crash during a refresh made while the stored access token still had long to live (a
/// refresh ahead of expiry, or after a rejection): the store keeps that access token beside
/// the refresh token the server has just consumed. A restarted process must not settle for the
/// stored access token and refresh only when it nears expiry (long after the server's reuse
/// interval): the refresh left a mark in the store before it was sent, so the restarted
/// process refreshes at once, within the interval, and recovers.
#[tokio::test]
async fn a_crash_during_a_refresh_ahead_of_expiry_is_recovered_at_the_restart() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 3600).await;
    tenant.reuse_interval(Duration::from_secs(30), &clock);
    let _api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    let now = clock.system_now();
    store
        .put(
            StoredTokens::from_refresh_token("rt-1", now)
                .with_access_token("tok-0", now + Duration::from_secs(3600)),
        )
        .await;

    // The process that crashes: it uses the stored token, refreshes before it expires, and
    // dies before the rotated refresh token is saved.
    let source = |store: &RecordingStore| {
        let client = OAuthClient::auth0(&server.base_url(), CLIENT_ID).unwrap();
        RefreshTokenSource::new(client, Arc::new(store.clone()), KEY).add_origin(&base(&server))
    };
    let crashed = TokenCache::builder(source(&store))
        .clock(Arc::new(clock.clone()))
        .build();
    let first = crashed.token().await.unwrap();
    assert_eq!(
        tenant.hits().await,
        0,
        "the stored access token is used first"
    );
    crashed.invalidate(first.generation());
    store.fail_saves.store(1, Ordering::SeqCst);
    crashed.token().await.unwrap();
    drop(crashed);
    assert_eq!(tenant.bodies(), [refresh_body("rt-1")]);
    assert_eq!(store.refresh_token().await.as_deref(), Some("rt-1"));

    // Restarted 5 s later, within the reuse interval; the stored access token has almost an
    // hour left.
    clock.advance(Duration::from_secs(5));
    let restarted = client(middleware(&server, Arc::new(store.clone()), &clock));
    assert_eq!(call(&server, &restarted).await, 200);

    assert_eq!(
        tenant.bodies(),
        [refresh_body("rt-1"), refresh_body("rt-1")],
        "the restarted process refreshes at once with the stored refresh token"
    );
    assert_eq!(store.refresh_token().await.as_deref(), Some("rt-3"));
    assert!(store.get().await.unwrap().refresh_started_at.is_none());
    assert_eq!(tenant.state.lock().unwrap().valid.as_deref(), Some("rt-3"));
}

// -------------------------------------------------------------------------------------------
// Request parameters and tokens obtained elsewhere
// -------------------------------------------------------------------------------------------

/// RFC 6749 §6 (`scope` on a refresh), RFC 8707 (`resource`), Auth0 (`audience`): extra
/// parameters of `RefreshTokenSource::param` go on the wire after `refresh_token`, in order.
#[tokio::test]
async fn refresh_requests_carry_extra_parameters() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 3600).await;
    let _api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store.put(login(&clock, "rt-1", Duration::ZERO)).await;
    let oauth = OAuthClient::auth0(&server.base_url(), CLIENT_ID).unwrap();
    let source = RefreshTokenSource::new(oauth, Arc::new(store.clone()), KEY)
        .param("scope", "read:campaigns")
        .param("audience", "https://api.pentaleap.example")
        .param("resource", "https://api.pentaleap.example/v2")
        .add_origin(&base(&server));
    let client = client(common::on_clock(RefreshTokenAuth::builder(source), &clock));

    assert_eq!(call(&server, &client).await, 200);

    assert_eq!(
        tenant.bodies(),
        [format!(
            "{}&scope=read%3Acampaigns&audience=https%3A%2F%2Fapi.pentaleap.example\
             &resource=https%3A%2F%2Fapi.pentaleap.example%2Fv2",
            refresh_body("rt-1")
        )]
    );
}

/// Tokens obtained elsewhere, put in a store with `StoredTokens::from_refresh_token` and
/// `with_access_token`: the access token is used while it lives (no request), then the
/// refresh token refreshes.
#[tokio::test]
async fn tokens_obtained_elsewhere_can_be_stored_and_refreshed() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let log = Events::default();
    let tenant = auth0(&server, 3600).await;
    let _api = api(&server, &log, &[]).await;
    let store = RecordingStore::new(&log);
    store
        .put(
            StoredTokens::from_refresh_token("rt-1", clock.system_now()).with_access_token(
                "tok-elsewhere",
                clock.system_now() + Duration::from_secs(600),
            ),
        )
        .await;
    let client = client(middleware(&server, Arc::new(store.clone()), &clock));

    assert_eq!(call(&server, &client).await, 200);
    assert_eq!(tenant.hits().await, 0);
    clock.advance(Duration::from_secs(601));
    assert_eq!(call(&server, &client).await, 200);

    assert_eq!(tenant.bodies(), [refresh_body("rt-1")]);
    assert_eq!(
        events(&log),
        ["api:Bearer tok-elsewhere", "save:rt-2", "api:Bearer tok-1"]
    );
}

/// A refresh that the cache gives up on (its fetch deadline passes while the answer is on its
/// way) still saves the rotated refresh token: the request and the save run in a task of their
/// own that holds the store's lock. The next fetch finds the rotated login and uses its access
/// token instead of resending the consumed refresh token.
#[tokio::test]
async fn a_refresh_abandoned_at_the_fetch_deadline_still_saves_the_rotated_token() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let tenant = server
        .mock_async(|when, then| {
            when.method("POST")
                .path(TOKEN_PATH)
                .body_includes("refresh_token=rt-1");
            then.delay(Duration::from_millis(300)).status(200).header("content-type", "application/json").body(
                r#"{"access_token":"tok-1","refresh_token":"rt-2","token_type":"Bearer","expires_in":3600}"#,
            );
        })
        .await;
    let store = MemoryStore::new();
    store
        .save(KEY, &login(&clock, "rt-1", Duration::ZERO))
        .await
        .unwrap();
    let mw = middleware(&server, Arc::new(store.clone()), &clock)
        .fetch_deadline(Duration::from_millis(50))
        .build();
    let cache = mw.cache().clone();

    let err = cache.token().await.unwrap_err();
    assert!(matches!(err, Error::FetchTimeout { .. }), "{err:?}");
    // Nobody waits for the refresh any more; its answer is saved all the same (real time,
    // bounded: the endpoint answers after 300 ms).
    let mut saved = None;
    for _ in 0..300 {
        let stored = store.load(KEY).await.unwrap().unwrap();
        let rt = stored.refresh_token.map(|s| s.expose_secret().to_owned());
        if rt.as_deref() == Some("rt-2") {
            saved = rt;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        saved.as_deref(),
        Some("rt-2"),
        "the rotated token was saved"
    );

    let lease = cache.token().await.unwrap();
    assert_eq!(lease.header_value(), "Bearer tok-1");
    assert_eq!(tenant.calls_async().await, 1, "rt-1 was sent once");
}
