//! The mock partners every example runs against: one kit, in process ([`httpmock`]), each
//! partner played strictly as its contract describes it (the token request it wants, the
//! answers and error bodies it gives).
//!
//! - [`demo`]: a generic partner with JSON client credentials (`tok-1`, `tok-2`, ...), for the
//!   quickstart.
//! - [`targeter`]: Targeter's `POST /api/auth/token` and `POST /api/campaign`.
//! - [`adgem`]: AdGem's `POST /v1/apps/tokens` and the offers API `POST /v1/offers`.
//! - [`setu`]: Setu's `POST /auth/token` (form in, camelCase JWTs out, 15 minutes by `exp`).
//! - [`channel_manager`]: the channel manager's `POST /getToken` (a plain-text token) and its
//!   connectivity API `GET /properties`.
//! - [`pentaleap`]: Pentaleap's product-feed endpoints (`Authorization: apikey <key>`).
//! - `auth0` (feature `oauth2`): Pentaleap's Auth0 tenant (authorization code with PKCE,
//!   rotating refresh tokens) and campaign API.
//!
//! The token partners share [`Partner`]: its API accepts only the newest token it issued, and
//! only until that token expires by the partner's clock or is revoked
//! ([`Partner::revoke_token`]); the knobs are the token lifetime and failures of the token
//! endpoint; it counts token-endpoint and API hits, 401s and the error answers it gave.
//!
//! Every example includes the kit with `#[path = "support/mock.rs"] mod mock;`. Nothing here
//! prints a credential or a token.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use httpmock::{HttpMockRequest, HttpMockResponse, MockServer};
use reqwest_partner_auth::Clock;
use url::Url;

#[path = "mock/adgem.rs"]
pub(crate) mod adgem;
#[cfg(feature = "oauth2")]
#[path = "mock/auth0.rs"]
pub(crate) mod auth0;
#[path = "mock/channel_manager.rs"]
pub(crate) mod channel_manager;
#[path = "mock/demo.rs"]
pub(crate) mod demo;
#[path = "mock/pentaleap.rs"]
pub(crate) mod pentaleap;
#[path = "mock/setu.rs"]
pub(crate) mod setu;
#[path = "mock/targeter.rs"]
pub(crate) mod targeter;

/// Which counter a request to an endpoint adds to.
#[derive(Clone, Copy)]
enum Endpoint {
    Token,
    Api,
}

/// The newest token a partner issued.
struct Issued {
    /// `Authorization` as the API expects it: `Bearer <token>`.
    authorization: String,
    /// When it stops working, by the partner's clock (`None`: until revoked).
    expires_at: Option<SystemTime>,
}

/// What a token partner remembers and counts. Its endpoints are functions of it.
struct Ledger {
    clock: Arc<dyn Clock>,
    lifetime: Mutex<Option<Duration>>,
    newest: Mutex<Option<Issued>>,
    serial: AtomicUsize,
    revoked: AtomicBool,
    fail_next: AtomicUsize,
    token_hits: AtomicUsize,
    api_hits: AtomicUsize,
    rejected: AtomicUsize,
    bad_requests: AtomicUsize,
    bad_credentials: AtomicUsize,
    server_errors: AtomicUsize,
}

impl Ledger {
    /// The partner's wall-clock time.
    fn now(&self) -> SystemTime {
        self.clock.system_now()
    }

    /// The lifetime of the next token.
    fn lifetime(&self) -> Option<Duration> {
        *self.lifetime.lock().unwrap()
    }

    /// Counts a request the contract calls malformed.
    fn bad_request(&self) {
        self.bad_requests.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a request with unknown credentials.
    fn bad_credentials(&self) {
        self.bad_credentials.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether this token request is to fail with the partner's server error (the knob
    /// [`Partner::fail_next_token_requests`]); counts it if so.
    fn fails_now(&self) -> bool {
        let fail = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            self.server_errors.fetch_add(1, Ordering::SeqCst);
        }
        fail
    }

    /// Issues the next token: `make(serial, issued at, lifetime)` builds it. It becomes the
    /// only token the API accepts, until it expires or is revoked. Returns it and its
    /// lifetime in seconds (0: none).
    fn issue(
        &self,
        make: impl FnOnce(usize, SystemTime, Option<Duration>) -> String,
    ) -> (String, u64) {
        let serial = self.serial.fetch_add(1, Ordering::SeqCst) + 1;
        let (now, lifetime) = (self.now(), self.lifetime());
        let token = make(serial, now, lifetime);
        *self.newest.lock().unwrap() = Some(Issued {
            authorization: format!("Bearer {token}"),
            expires_at: lifetime.map(|l| now + l),
        });
        self.revoked.store(false, Ordering::SeqCst);
        (token, lifetime.map_or(0, |l| l.as_secs()))
    }

    /// Whether an API request carries `Authorization: Bearer <the newest token>`, unexpired
    /// and unrevoked; counts a rejection if not.
    fn accepts(&self, req: &HttpMockRequest) -> bool {
        let sent = req.headers().get("authorization").cloned();
        let ok = self.newest.lock().unwrap().as_ref().is_some_and(|issued| {
            sent.is_some_and(|v| v == issued.authorization.as_str())
                && issued.expires_at.is_none_or(|at| self.now() < at)
        }) && !self.revoked.load(Ordering::SeqCst);
        if !ok {
            self.rejected.fetch_add(1, Ordering::SeqCst);
        }
        ok
    }
}

/// A running mock token partner: its server, knobs and counters.
pub(crate) struct Partner {
    server: MockServer,
    ledger: Arc<Ledger>,
    /// How [`report`](Self::report) names the token endpoint and the API.
    labels: (&'static str, &'static str),
}

impl Partner {
    /// A partner with no endpoints yet, issuing tokens of `lifetime` by `clock`.
    async fn start(
        clock: impl Clock,
        lifetime: Option<Duration>,
        labels: (&'static str, &'static str),
    ) -> Self {
        let ledger = Ledger {
            clock: Arc::new(clock),
            lifetime: Mutex::new(lifetime),
            newest: Mutex::new(None),
            serial: AtomicUsize::new(0),
            revoked: AtomicBool::new(false),
            fail_next: AtomicUsize::new(0),
            token_hits: AtomicUsize::new(0),
            api_hits: AtomicUsize::new(0),
            rejected: AtomicUsize::new(0),
            bad_requests: AtomicUsize::new(0),
            bad_credentials: AtomicUsize::new(0),
            server_errors: AtomicUsize::new(0),
        };
        Self {
            server: MockServer::start_async().await,
            ledger: Arc::new(ledger),
            labels,
        }
    }

    /// Adds an endpoint: requests to `path` (with `method`, if given) are counted as `kind`
    /// and answered by `answer`.
    async fn on<F>(&self, kind: Endpoint, method: Option<&str>, path: &str, answer: F)
    where
        F: Fn(&Ledger, &HttpMockRequest) -> HttpMockResponse + Send + Sync + 'static,
    {
        let ledger = Arc::clone(&self.ledger);
        self.server
            .mock_async(|when, then| {
                let when = when.path(path);
                if let Some(method) = method {
                    when.method(method);
                }
                then.respond_with(move |req| {
                    let counter = match kind {
                        Endpoint::Token => &ledger.token_hits,
                        Endpoint::Api => &ledger.api_hits,
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    answer(&ledger, req)
                });
            })
            .await;
    }

    /// The partner's base URL (`http://127.0.0.1:<port>/`).
    pub(crate) fn base_url(&self) -> Url {
        Url::parse(&self.server.base_url()).expect("the mock's base URL")
    }

    /// `path` on the partner.
    pub(crate) fn url(&self, path: &str) -> Url {
        self.base_url().join(path).expect("a path on the mock")
    }

    /// Requests to the token endpoint so far.
    pub(crate) fn token_hits(&self) -> usize {
        self.ledger.token_hits.load(Ordering::SeqCst)
    }

    /// Requests to the API so far.
    pub(crate) fn api_hits(&self) -> usize {
        self.ledger.api_hits.load(Ordering::SeqCst)
    }

    /// API requests answered `401` (no token, an old, expired or revoked one).
    pub(crate) fn rejected(&self) -> usize {
        self.ledger.rejected.load(Ordering::SeqCst)
    }

    /// Token requests answered as unknown credentials.
    pub(crate) fn bad_credentials(&self) -> usize {
        self.ledger.bad_credentials.load(Ordering::SeqCst)
    }

    /// Requests the contract calls malformed (a token request without the documented body,
    /// an API request without the documented payload).
    pub(crate) fn bad_requests(&self) -> usize {
        self.ledger.bad_requests.load(Ordering::SeqCst)
    }

    /// Token requests failed on purpose ([`fail_next_token_requests`](Self::fail_next_token_requests)).
    pub(crate) fn server_errors(&self) -> usize {
        self.ledger.server_errors.load(Ordering::SeqCst)
    }

    /// Revokes the current token: the API answers `401` to it from now on.
    pub(crate) fn revoke_token(&self) {
        self.ledger.revoked.store(true, Ordering::SeqCst);
    }

    /// The lifetime of the tokens issued from now on (each partner starts with its
    /// contract's).
    pub(crate) fn set_token_lifetime(&self, lifetime: Duration) {
        *self.ledger.lifetime.lock().unwrap() = Some(lifetime);
    }

    /// The next `n` token requests fail with the partner's server error (the contract's
    /// `500` body where it documents one).
    pub(crate) fn fail_next_token_requests(&self, n: usize) {
        self.ledger.fail_next.store(n, Ordering::SeqCst);
    }

    /// Prints the hit counts of the token endpoint and the API, and checks them.
    pub(crate) fn report(&self, token_hits: usize, api_hits: usize) {
        let (t, a) = (self.token_hits(), self.api_hits());
        let (token, api) = self.labels;
        println!("   {token} hits: {t}, {api} hits: {a}");
        assert_eq!((t, a), (token_hits, api_hits), "({token} hits, {api} hits)");
    }
}

/// A response with a body of `content_type`.
fn respond(status: u16, content_type: &str, body: impl Into<String>) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body.into())
        .build()
}

/// A JSON response.
fn json(status: u16, body: serde_json::Value) -> HttpMockResponse {
    respond(status, "application/json", body.to_string())
}

/// Whether the request's `Content-Type` is `media_type` (parameters such as `charset` aside).
fn has_content_type(req: &HttpMockRequest, media_type: &str) -> bool {
    req.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}

/// The pairs of a form-encoded body.
fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}
