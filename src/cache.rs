//! [`TokenCache`]: when to obtain a token.
//!
//! * The hot path is one lock-free load of the current token ([`arc_swap`]) and one clock read.
//! * Single flight: however many requests need a token at once, one fetch runs. It runs in its
//!   own task, so a caller that gives up (its future dropped by a timeout) does not cancel the
//!   fetch the others wait for. A fetch that was cancelled (its runtime shut down), panicked
//!   or never ran is gone: the next caller starts a new one.
//! * Every fetch has a deadline ([`DEFAULT_FETCH_DEADLINE`]): past it, waiting callers get the
//!   current token if it has not expired, else [`Error::FetchTimeout`].
//! * Two thresholds before expiry. Past the *skew* point ([`DEFAULT_REFRESH_SKEW`] before
//!   expiry, a quarter of the lifetime for short-lived tokens) requests wait for the new
//!   token: none leaves with a token about to die. In the *refresh-ahead* window before it
//!   ([`DEFAULT_REFRESH_AHEAD`] of the lifetime, at most [`REFRESH_AHEAD_LIMIT`]) requests
//!   still go out with the current token while one background refresh runs, so in steady
//!   state nobody waits for the token endpoint, whatever the lifetime.
//! * Generations: every token gets a number; a rejection names the generation it saw, so N
//!   concurrent 401s for one token cause one refresh. Rejection-driven fetches cool down
//!   ([`DEFAULT_REJECTION_COOLDOWN`]): an API that rejects fresh tokens too is not answered
//!   with a fetch per request.
//! * Serve stale: when a refresh fails while the current token has not yet expired, the
//!   current token keeps being used.
//! * A token endpoint that hands back the token already held (or one that lives no longer)
//!   is not asked again before that token expires.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use backon::BackoffBuilder as _;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use http::HeaderValue;
use secrecy::ExposeSecret as _;
use tracing::Instrument as _;

use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::observe::{Event, Hooks, Observer, RejectionAction};
use crate::source::{FetchContext, FetchReason, TokenSource};
use crate::token::Token;

/// Default time before expiry from which requests wait for a new token: 30 seconds (cut to a
/// quarter of the lifetime for tokens that live less than two minutes, so a short-lived token
/// is still used for most of its life).
pub const DEFAULT_REFRESH_SKEW: Duration = Duration::from_secs(30);

/// Default length of the refresh-ahead window, as a share of the token's lifetime: a
/// background refresh starts this share of the lifetime before the skew point (capped at
/// [`REFRESH_AHEAD_LIMIT`]), while requests keep using the current token.
pub const DEFAULT_REFRESH_AHEAD: f64 = 0.25;

/// The longest refresh-ahead window: a token of an hour is refreshed in the background 20 s
/// before its skew point (at 98.6% of its life), one of ten minutes at 91.7%, so the token
/// endpoint sees at most 1.1 fetches per lifetime for lifetimes of ten minutes or more.
pub const REFRESH_AHEAD_LIMIT: Duration = Duration::from_secs(20);

/// After a failed fetch, how long refresh-ahead waits before it tries in the background
/// again. Requests inside the skew window still wait for a fetch of their own.
pub const BACKGROUND_RETRY_PAUSE: Duration = Duration::from_secs(10);

/// Default deadline of one token fetch, retries included. Past it the callers waiting for it
/// get the current token if it has not expired, else [`Error::FetchTimeout`]; a later caller
/// starts a new fetch.
pub const DEFAULT_FETCH_DEADLINE: Duration = Duration::from_secs(30);

/// Default cool-down of rejection-driven fetches: after the API rejected a token (a 401) and a
/// new one was fetched for it, further rejections within this time fetch nothing; the 401
/// goes back to the caller. An API that rejects every fresh token (a missing permission, a
/// wrong audience) then costs one token fetch per cool-down, not one per request.
pub const DEFAULT_REJECTION_COOLDOWN: Duration = Duration::from_secs(30);

/// How failing token-endpoint calls are retried.
///
/// Only [transient](Error::is_transient) failures are retried; a `Retry-After` sent by the
/// endpoint replaces the backoff delay (capped at `max_delay`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (at least 1). Default 3.
    pub max_attempts: u32,
    /// First backoff delay. Default 200 ms; doubles each attempt, with jitter.
    pub min_delay: Duration,
    /// Longest single wait, also for `Retry-After`. Default 10 s.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No retries: one attempt.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }
}

/// Settings of a [`TokenCache`].
#[derive(Debug, Clone)]
pub(crate) struct CacheConfig {
    pub(crate) skew: Duration,
    pub(crate) refresh_ahead: f64,
    pub(crate) retry: RetryPolicy,
    pub(crate) clock: Arc<dyn Clock>,
    /// `clock` is the real one: the hot path reads `Instant::now()` directly instead of
    /// through the trait object.
    pub(crate) system_clock: bool,
    pub(crate) fetch_deadline: Duration,
    pub(crate) rejection_cooldown: Duration,
    pub(crate) hooks: Hooks,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            skew: DEFAULT_REFRESH_SKEW,
            refresh_ahead: DEFAULT_REFRESH_AHEAD,
            retry: RetryPolicy::default(),
            clock: Arc::new(SystemClock),
            system_clock: true,
            fetch_deadline: DEFAULT_FETCH_DEADLINE,
            rejection_cooldown: DEFAULT_REJECTION_COOLDOWN,
            hooks: Hooks::default(),
        }
    }
}

/// A token handed out by the cache, with the generation it belongs to.
#[derive(Debug, Clone)]
pub struct Lease {
    header: HeaderValue,
    generation: u64,
}

impl Lease {
    /// The `Authorization` header value (sensitive).
    pub fn header_value(&self) -> &HeaderValue {
        &self.header
    }

    /// The `Authorization` header value, by value.
    pub fn into_header_value(self) -> HeaderValue {
        self.header
    }

    /// The generation of the token; pass it to [`TokenCache::reject`].
    pub fn generation(&self) -> u64 {
        self.generation
    }

    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        Self {
            header: HeaderValue::from_static("Bearer test"),
            generation: 1,
        }
    }
}

/// A token in the cache with its deadlines, all computed once when it arrives.
#[derive(Debug)]
struct Entry {
    token: Token,
    generation: u64,
    /// From here on a background refresh starts.
    refresh_at: Option<Instant>,
    /// From here on requests wait for a new token.
    stale_at: Option<Instant>,
    /// The token's own expiry.
    expires_at: Option<Instant>,
    /// `refresh_at` and `stale_at` on the hot path's clock ([`hot_clock`]), for a cache on the
    /// system clock; `u64::MAX` for never.
    refresh_ns: u64,
    stale_ns: u64,
}

enum Freshness {
    Fresh,
    RefreshAhead,
    Stale,
}

impl Entry {
    fn freshness(&self, now: Instant) -> Freshness {
        match (self.refresh_at, self.stale_at) {
            (_, Some(stale)) if now >= stale => Freshness::Stale,
            (Some(refresh), _) if now >= refresh => Freshness::RefreshAhead,
            _ => Freshness::Fresh,
        }
    }

    /// [`freshness`](Self::freshness) at `now_ns` on the hot path's clock.
    #[inline]
    fn freshness_ns(&self, now_ns: u64) -> Freshness {
        if now_ns >= self.stale_ns {
            Freshness::Stale
        } else if now_ns >= self.refresh_ns {
            Freshness::RefreshAhead
        } else {
            Freshness::Fresh
        }
    }

    fn expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|e| now >= e)
    }

    fn lease(&self) -> Lease {
        Lease {
            header: self.token.header_value().clone(),
            generation: self.generation,
        }
    }
}

/// The deadlines of a token that lives `lifetime` from `now`: (refresh at, stale at,
/// expires at). A pure function, unit tested below.
///
/// The skew is cut to a quarter of the lifetime; the refresh-ahead window (`refresh_ahead` of
/// the lifetime, at most [`REFRESH_AHEAD_LIMIT`]) ends at the skew point. So every lifetime
/// gets a background refresh before anyone must wait: a 4 s token is refreshed at 2 s and
/// waited for from 3 s; an hour's token at 3550 s and 3570 s.
pub(crate) fn deadlines(
    now: Instant,
    lifetime: Duration,
    skew: Duration,
    refresh_ahead: f64,
) -> (Instant, Instant, Instant) {
    let skew = skew.min(lifetime / 4);
    let usable = lifetime - skew;
    let window = lifetime
        .mul_f64(refresh_ahead.clamp(0.0, 1.0))
        .min(REFRESH_AHEAD_LIMIT)
        .min(usable);
    let stale_at = now + usable;
    (stale_at - window, stale_at, now + lifetime)
}

type Flight = Shared<BoxFuture<'static, Result<Arc<Entry>, Error>>>;

/// The fetch in flight, if any, and what rejections did lately. Guarded by one mutex, held
/// only for moments (never across an await).
#[derive(Default)]
struct Flights {
    current: Option<InFlight>,
    /// Numbers flights, so a finished, cancelled or abandoned flight clears the slot only
    /// while the slot still holds it.
    next_id: u64,
    /// When the last rejection-driven fetch was allowed (cache clock).
    last_rejection: Option<Instant>,
}

struct InFlight {
    id: u64,
    flight: Flight,
    /// The fetch's `token_fetch` span: requests that join the flight follow from it.
    span: tracing::Span,
    /// When it started (tokio's clock, which drives the deadline).
    started: tokio::time::Instant,
}

struct State<S> {
    source: S,
    current: ArcSwapOption<Entry>,
    /// The token `current` replaced (or that was dropped): a request still carrying it (sent
    /// again by a retry layer below the one that authorised it) is given the current one.
    previous: ArcSwapOption<Entry>,
    flights: Mutex<Flights>,
    generations: AtomicU64,
    /// After a failed fetch, background refreshes wait until then, so a partner outage
    /// during the refresh-ahead window is not answered with a fetch per request.
    background_paused_until: Mutex<Option<Instant>>,
}

impl<S> State<S> {
    fn lock_flights(&self) -> std::sync::MutexGuard<'_, Flights> {
        // The lock guards no invariant a panic could break half-way.
        self.flights.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Empties the slot if it still holds flight `id`.
    fn forget_flight(&self, id: u64) {
        let mut flights = self.lock_flights();
        if flights.current.as_ref().is_some_and(|f| f.id == id) {
            flights.current = None;
        }
    }
}

/// What a rejection of a token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// The token was dropped: fetch a new one.
    Dropped,
    /// The token had been replaced already (another request saw the rejection first).
    AlreadyReplaced,
    /// A rejection-driven fetch happened within the cool-down: the token stays, nothing is
    /// fetched, the rejection goes back to the caller.
    CoolingDown,
}

/// Caches the token of one [`TokenSource`] and decides when to fetch a new one.
///
/// [`AuthMiddleware`](crate::AuthMiddleware) owns one; use it directly to fetch a token
/// outside HTTP requests (for example to check credentials at start-up).
pub struct TokenCache<S> {
    state: Arc<State<S>>,
    config: Arc<CacheConfig>,
}

impl<S> std::fmt::Debug for TokenCache<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field(
                "generation",
                &self.state.current.load().as_ref().map(|e| e.generation),
            )
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S> Clone for TokenCache<S> {
    fn clone(&self) -> Self {
        Self {
            state: Arc::clone(&self.state),
            config: Arc::clone(&self.config),
        }
    }
}

/// Collects a [`TokenCache`]'s policy; [`build`](Self::build) freezes it.
///
/// ```
/// use std::time::Duration;
/// use reqwest_partner_auth::{engine::HttpTokenSource, TokenCache};
/// # let source = HttpTokenSource::post(url::Url::parse("https://auth.partner.example/token").unwrap());
/// let cache = TokenCache::builder(source)
///     .refresh_skew(Duration::from_secs(60))
///     .fetch_deadline(Duration::from_secs(10))
///     .build();
/// // Every clone shares the token and this policy.
/// let shared = cache.clone();
/// # let _ = shared;
/// ```
pub struct TokenCacheBuilder<S> {
    source: S,
    config: CacheConfig,
}

impl<S> std::fmt::Debug for TokenCacheBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCacheBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: TokenSource> TokenCacheBuilder<S> {
    /// How long before expiry requests stop using a token and wait for a new one (cut to a
    /// quarter of the lifetime for short-lived tokens). Default [`DEFAULT_REFRESH_SKEW`].
    pub fn refresh_skew(mut self, skew: Duration) -> Self {
        self.config.skew = skew;
        self
    }

    /// The length of the refresh-ahead window as a share of the lifetime (0.0 to 1.0, at most
    /// [`REFRESH_AHEAD_LIMIT`]): from that long before the skew point a background refresh
    /// runs while requests keep using the current token. Default [`DEFAULT_REFRESH_AHEAD`];
    /// 0 turns refresh-ahead off.
    pub fn refresh_ahead(mut self, share: f64) -> Self {
        self.config.refresh_ahead = if share.is_finite() {
            share.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// How transient token-endpoint failures are retried.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// The clock expiry decisions read (tests pass a [`ManualClock`](crate::clock::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        let config = &mut self.config;
        config.clock = clock;
        config.system_clock = false;
        self
    }

    /// The deadline of one token fetch, retries and store locks included (real time).
    /// Default [`DEFAULT_FETCH_DEADLINE`]. Past it, callers whose token has not expired get
    /// it, the others [`Error::FetchTimeout`], and the next caller starts a new fetch.
    pub fn fetch_deadline(mut self, deadline: Duration) -> Self {
        self.config.fetch_deadline = deadline;
        self
    }

    /// After a rejection-driven fetch, how long further rejections fetch nothing (their 401
    /// goes back to the caller and the token stays). Default [`DEFAULT_REJECTION_COOLDOWN`];
    /// `Duration::ZERO` fetches after every rejection.
    pub fn rejection_cooldown(mut self, cooldown: Duration) -> Self {
        self.config.rejection_cooldown = cooldown;
        self
    }

    /// Adds an observer of the cache's events (fetches, token changes, rejections, replays,
    /// stale tokens served); see [`observe`](crate::observe). Several may be added.
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.config.hooks.add(Arc::new(observer));
        self
    }

    /// The cache, its policy fixed from now on.
    pub fn build(self) -> TokenCache<S> {
        TokenCache {
            state: Arc::new(State {
                source: self.source,
                current: ArcSwapOption::empty(),
                previous: ArcSwapOption::empty(),
                flights: Mutex::new(Flights::default()),
                generations: AtomicU64::new(0),
                background_paused_until: Mutex::new(None),
            }),
            config: Arc::new(self.config),
        }
    }
}

impl<S: TokenSource> TokenCache<S> {
    /// A cache with the default policy on the real clock.
    pub fn new(source: S) -> Self {
        Self::builder(source).build()
    }

    /// A builder, to set the cache's policy before it is used.
    pub fn builder(source: S) -> TokenCacheBuilder<S> {
        TokenCacheBuilder {
            source,
            config: CacheConfig::default(),
        }
    }

    /// The generation of the cached token (1 for the first token fetched), or `None` when
    /// no token is cached.
    pub fn generation(&self) -> Option<u64> {
        self.state.current.load().as_ref().map(|e| e.generation)
    }

    /// The source this cache fetches from.
    pub fn source(&self) -> &S {
        &self.state.source
    }

    /// A usable token: the cached one if it is fresh, else a new one (one fetch, however many
    /// callers ask at once).
    ///
    /// # Errors
    /// The source's error, after retries of transient failures, when there is no token that
    /// may still be used; [`Error::FetchTimeout`] when the fetch ran past the
    /// [fetch deadline](TokenCacheBuilder::fetch_deadline).
    pub async fn token(&self) -> Result<Lease, Error> {
        match self.cached() {
            Some(lease) => Ok(lease),
            None => self.token_slow().await,
        }
    }

    /// The hot path of [`token`](Self::token): the cached token if it may be used now
    /// (starting a background refresh in the refresh-ahead window), without waiting. One
    /// clock read and one lock-free load.
    #[inline]
    pub(crate) fn cached(&self) -> Option<Lease> {
        let current = self.state.current.load();
        let entry = current.as_ref()?;
        let freshness = if self.config.system_clock {
            entry.freshness_ns(hot_clock::coarse_now())
        } else {
            entry.freshness(self.config.clock.now())
        };
        match freshness {
            Freshness::Fresh => Some(entry.lease()),
            Freshness::RefreshAhead => {
                self.refresh_in_background(entry.generation);
                Some(entry.lease())
            }
            Freshness::Stale => None,
        }
    }

    /// The slow path of [`token`](Self::token), boxed so that callers that almost never take
    /// it (the middleware) do not carry its state in their own future.
    pub(crate) fn token_slow(&self) -> BoxFuture<'_, Result<Lease, Error>> {
        Box::pin(async move {
            let reason = if self.state.current.load().is_some() {
                FetchReason::Expiring
            } else {
                FetchReason::Initial
            };
            self.wait_for_fetch(reason).await
        })
    }

    /// Reports that the API rejected the token of `generation`, and returns a new one.
    ///
    /// If the token was already replaced (another request saw the same rejection first), the
    /// replacement is returned and nothing is fetched. If a rejection-driven fetch happened
    /// within the [rejection cool-down](TokenCacheBuilder::rejection_cooldown), nothing is fetched, the
    /// token stays, and `Ok(None)` is returned: the API rejects fresh tokens too, so a new
    /// one would not help.
    ///
    /// # Errors
    /// As [`TokenCache::token`].
    pub async fn reject(&self, generation: u64) -> Result<Option<Lease>, Error> {
        match self.note_rejection(generation) {
            Rejection::CoolingDown => Ok(None),
            Rejection::Dropped | Rejection::AlreadyReplaced => self.replacement().await.map(Some),
        }
    }

    /// The token to replay a rejected request with: the replacement of a rejected token,
    /// fetched with [`FetchReason::Rejected`] (or joined, when another request started it).
    pub(crate) fn replacement(&self) -> BoxFuture<'_, Result<Lease, Error>> {
        Box::pin(self.wait_for_fetch(FetchReason::Rejected))
    }

    /// Records a rejection of the token of `generation`: drops that token unless it was
    /// replaced already or a rejection-driven fetch happened within the cool-down.
    pub(crate) fn note_rejection(&self, generation: u64) -> Rejection {
        let rejection = self.note_rejection_locked(generation);
        let action = match rejection {
            Rejection::Dropped => RejectionAction::Dropped,
            Rejection::AlreadyReplaced => RejectionAction::AlreadyReplaced,
            Rejection::CoolingDown => RejectionAction::CoolingDown,
        };
        self.config.hooks.emit(&Event::Rejected {
            source: self.state.source.name(),
            generation,
            action,
        });
        rejection
    }

    /// Whether `value` is the `Authorization` of a token this cache handed out: the current
    /// one or the one before it.
    pub(crate) fn issued(&self, value: &HeaderValue) -> bool {
        let is = |slot: &ArcSwapOption<Entry>| {
            slot.load()
                .as_ref()
                .is_some_and(|e| e.token.header_value() == value)
        };
        is(&self.state.current) || is(&self.state.previous)
    }

    /// A replay went out with the token of `generation`.
    pub(crate) fn note_replay(&self, generation: u64) {
        self.config.hooks.emit(&Event::Replayed {
            source: self.state.source.name(),
            generation,
        });
    }

    fn note_rejection_locked(&self, generation: u64) -> Rejection {
        let mut flights = self.state.lock_flights();
        let current = self.state.current.load();
        if current.as_ref().is_none_or(|e| e.generation != generation) {
            return Rejection::AlreadyReplaced;
        }
        let now = self.config.clock.now();
        let cooldown = self.config.rejection_cooldown;
        if flights.last_rejection.is_some_and(|at| now < at + cooldown) {
            tracing::debug!(
                generation,
                "token rejected again within the rejection cool-down; not fetching"
            );
            return Rejection::CoolingDown;
        }
        flights.last_rejection = Some(now);
        tracing::debug!(generation, "token rejected by the api; dropping it");
        self.state.previous.store(self.state.current.swap(None));
        Rejection::Dropped
    }

    /// Drops the token of `generation` if it is still the cached one, without fetching (and
    /// without regard to the rejection cool-down).
    pub fn invalidate(&self, generation: u64) {
        let _flights = self.state.lock_flights();
        let current = self.state.current.load();
        if current.as_ref().is_some_and(|e| e.generation == generation) {
            tracing::debug!(generation, "token invalidated; dropping it");
            self.state.previous.store(self.state.current.swap(None));
        }
    }

    /// Drops the cached token and abandons a fetch in flight: the next request starts a new
    /// fetch. Always recovers a cache whose fetch hangs.
    pub fn clear(&self) {
        let mut flights = self.state.lock_flights();
        flights.current = None;
        self.state.current.store(None);
    }

    async fn wait_for_fetch(&self, reason: FetchReason) -> Result<Lease, Error> {
        // A flight that was cancelled (its runtime shut down) is gone: start another, once.
        let mut restarts = 0;
        let err = loop {
            let (id, flight, started) = {
                let mut flights = self.state.lock_flights();
                // Re-check under the lock: the fetch we would start may just have finished.
                let now = self.config.clock.now();
                if let Some(entry) = &*self.state.current.load() {
                    if !matches!(entry.freshness(now), Freshness::Stale) {
                        return Ok(entry.lease());
                    }
                }
                self.join_or_start(&mut flights, reason)
            };
            let deadline = started + self.config.fetch_deadline;
            match tokio::time::timeout_at(deadline, flight).await {
                Ok(Ok(entry)) => return Ok(entry.lease()),
                Ok(Err(Error::FetchCancelled)) if restarts == 0 => {
                    self.state.forget_flight(id);
                    restarts += 1;
                }
                Ok(Err(err)) => break err,
                Err(_elapsed) => {
                    // The flight never finished (its runtime is not driven, or it hangs past
                    // its own deadline): the next caller starts afresh.
                    self.state.forget_flight(id);
                    break Error::FetchTimeout {
                        deadline: self.config.fetch_deadline,
                    };
                }
            }
        };
        // Serve stale: a token that has not expired yet is still better than an error.
        let now = self.config.clock.now();
        match &*self.state.current.load() {
            Some(entry) if !entry.expired(now) => {
                tracing::warn!(error = %err, "token refresh failed; using the current token until it expires");
                self.config.hooks.emit(&Event::StaleServed {
                    source: self.state.source.name(),
                    generation: entry.generation,
                    error: &err,
                });
                Ok(entry.lease())
            }
            _ => Err(err),
        }
    }

    /// Starts a background refresh of the token of `generation`, unless one runs already or
    /// that token was replaced meanwhile (a refresh that finished between the caller's read
    /// and this lock must not be followed by a second one).
    fn refresh_in_background(&self, generation: u64) {
        let mut flights = self.state.lock_flights();
        let current = self.state.current.load();
        let still_current = current.as_ref().is_some_and(|e| e.generation == generation);
        if flights.current.is_some() || !still_current {
            return;
        }
        let paused = self
            .state
            .background_paused_until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|until| self.config.clock.now() < until);
        if !paused {
            tracing::debug!("token nearing expiry; refreshing in the background");
            drop(self.join_or_start(&mut flights, FetchReason::Expiring));
        }
    }

    /// Joins the flight in the slot, or starts one in its own task. Returns the flight's id,
    /// the flight, and when it started.
    fn join_or_start(
        &self,
        flights: &mut Flights,
        reason: FetchReason,
    ) -> (u64, Flight, tokio::time::Instant) {
        if let Some(f) = flights.current.as_ref() {
            tracing::Span::current().follows_from(&f.span);
            return (f.id, f.flight.clone(), f.started);
        }
        flights.next_id += 1;
        let id = flights.next_id;
        let started = tokio::time::Instant::now();
        let state = Arc::clone(&self.state);
        let config = Arc::clone(&self.config);
        // Owned by the task's future: when the future is dropped in any way (it finished,
        // panicked, was cancelled at runtime shutdown, or never ran at all), the slot is
        // emptied, so no caller joins a dead flight.
        let slot_guard = ForgetFlightOnDrop {
            state: Arc::clone(&state),
            id,
        };
        let source_name = self.state.source.name();
        // A child of the current span: the request that needs the token.
        let span = tracing::info_span!(
            "token_fetch",
            source = source_name,
            endpoint = self
                .state
                .source
                .endpoint()
                .map(|url| url.origin().ascii_serialization()),
            reason = reason.as_str(),
            attempts = tracing::field::Empty,
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
            latency_ms = tracing::field::Empty,
            generation = tracing::field::Empty,
        );
        let task_span = span.clone();
        let task = tokio::spawn(
            async move {
                let slot_guard = slot_guard;
                let source = state.source.name();
                config.hooks.emit(&Event::FetchStarted { source, reason });
                let attempts = std::sync::atomic::AtomicU32::new(0);
                let fetch = fetch_with_retries(&state.source, &config, reason, &attempts);
                let started = Instant::now();
                let result = match tokio::time::timeout(config.fetch_deadline, fetch).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!(
                            deadline_ms = config.fetch_deadline.as_millis() as u64,
                            "token fetch ran past its deadline; abandoning it"
                        );
                        Err(Error::FetchTimeout {
                            deadline: config.fetch_deadline,
                        })
                    }
                };
                *state
                    .background_paused_until
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = result
                    .is_err()
                    .then(|| config.clock.now() + BACKGROUND_RETRY_PAUSE);
                let elapsed = started.elapsed();
                let mut flights = state.lock_flights();
                let still_ours = flights.current.as_ref().is_some_and(|f| f.id == id);
                let mut changed = false;
                let result = result.map(|token| {
                    let generation = state.generations.fetch_add(1, Ordering::Relaxed) + 1;
                    let held = state.current.load_full();
                    changed = held.as_ref().is_none_or(|held| {
                        held.token.secret().expose_secret() != token.secret().expose_secret()
                    });
                    let entry = Arc::new(new_entry(token, generation, &config, held.as_deref()));
                    // An abandoned flight (cleared, timed out) hands its token to its own waiters
                    // but does not replace what a newer flight may have cached.
                    if still_ours {
                        if let Some(held) = state.current.swap(Some(Arc::clone(&entry))) {
                            state.previous.store(Some(held));
                        }
                    }
                    entry
                });
                if still_ours {
                    flights.current = None;
                }
                drop(flights);
                drop(slot_guard);
                let attempts = attempts.load(Ordering::Relaxed);
                report_fetch(&config, source, reason, &result, attempts, elapsed, changed);
                result
            }
            .instrument(task_span),
        );
        let flight: BoxFuture<'static, Result<Arc<Entry>, Error>> = Box::pin(async move {
            match task.await {
                Ok(result) => result,
                Err(e) if e.is_panic() => Err(Error::SourcePanicked),
                Err(_) => Err(Error::FetchCancelled),
            }
        });
        let flight = flight.shared();
        flights.current = Some(InFlight {
            id,
            flight: flight.clone(),
            span,
            started,
        });
        (id, flight, started)
    }
}

/// Empties the flight slot (if it still holds flight `id`) when dropped.
struct ForgetFlightOnDrop<S> {
    state: Arc<State<S>>,
    id: u64,
}

impl<S> Drop for ForgetFlightOnDrop<S> {
    fn drop(&mut self) {
        self.state.forget_flight(self.id);
    }
}

/// The cache entry of a new token. `held` is the entry it replaces, if any: a token endpoint
/// that hands back the token already held (a channel manager re-issues its current token
/// until it expires), or one that lives no longer, would be asked again and again as expiry
/// nears; such a token is used until its expiry without refresh-ahead or skew, and the first
/// request after that fetches once.
fn new_entry(token: Token, generation: u64, config: &CacheConfig, held: Option<&Entry>) -> Entry {
    let now = config.clock.now();
    let mut entry = Entry {
        refresh_at: None,
        stale_at: None,
        expires_at: None,
        refresh_ns: u64::MAX,
        stale_ns: u64::MAX,
        token,
        generation,
    };
    if let Some(lifetime) = entry.token.lifetime_at(config.clock.system_now()) {
        let (r, s, e) = deadlines(now, lifetime, config.skew, config.refresh_ahead);
        entry.expires_at = Some(e);
        let no_newer = held.is_some_and(|held| {
            held.token.secret().expose_secret() == entry.token.secret().expose_secret()
                || held.expires_at.is_some_and(|h| e <= h + REISSUE_TOLERANCE)
        });
        if no_newer {
            tracing::debug!(
                generation,
                "token endpoint returned a token that lives no longer than the current one; \
                 using it until it expires"
            );
            entry.stale_at = Some(e);
        } else {
            (entry.refresh_at, entry.stale_at) = (Some(r), Some(s));
        }
        if config.system_clock {
            let base = hot_clock::precise_now();
            let on_hot_clock = |at: Option<Instant>| {
                at.map_or(u64::MAX, |at| {
                    let nanos = u64::try_from(at.saturating_duration_since(now).as_nanos());
                    base.saturating_add(nanos.unwrap_or(u64::MAX))
                })
            };
            entry.refresh_ns = on_hot_clock(entry.refresh_at);
            entry.stale_ns = on_hot_clock(entry.stale_at);
        }
    }
    tracing::debug!(
        generation,
        expires_in_secs = entry.expires_at.map(|e| (e - now).as_secs()),
        "new token cached"
    );
    entry
}

/// The clock the hot path reads for a cache on the system clock, in nanoseconds of the
/// monotonic clock. On Linux it is `CLOCK_MONOTONIC_COARSE`: a few nanoseconds to read (the
/// precise clock costs several times that on every request) and at most one scheduler tick
/// (1-4 ms) behind, which only delays a refresh decision by that much. Deadlines are placed on
/// it with the precise reading of the same clock, so the coarse one never runs ahead of them.
mod hot_clock {
    #[cfg(target_os = "linux")]
    fn nanos(clock: rustix::time::ClockId) -> u64 {
        let t = rustix::time::clock_gettime(clock);
        // Monotonic time is never negative.
        (t.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(t.tv_nsec as u64)
    }

    #[cfg(target_os = "linux")]
    #[inline]
    pub(super) fn coarse_now() -> u64 {
        nanos(rustix::time::ClockId::MonotonicCoarse)
    }

    #[cfg(target_os = "linux")]
    pub(super) fn precise_now() -> u64 {
        nanos(rustix::time::ClockId::Monotonic)
    }

    /// Elsewhere: `Instant`, counted from a process-wide origin.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn coarse_now() -> u64 {
        use std::sync::OnceLock;
        use std::time::Instant;
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        let origin = *ORIGIN.get_or_init(Instant::now);
        u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn precise_now() -> u64 {
        coarse_now()
    }
}

/// Expiry times computed at two fetches of one token differ by clock rounding; a token whose
/// expiry is within this of the held one's does not live longer.
const REISSUE_TOLERANCE: Duration = Duration::from_secs(1);

/// Records a finished fetch on its span (the current one) and tells the observers.
fn report_fetch(
    config: &CacheConfig,
    source: &str,
    reason: FetchReason,
    result: &Result<Arc<Entry>, Error>,
    attempts: u32,
    elapsed: Duration,
    changed: bool,
) {
    let span = tracing::Span::current();
    span.record("attempts", attempts);
    span.record(
        "latency_ms",
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
    );
    match result {
        Ok(entry) => {
            span.record("outcome", "fetched");
            span.record("generation", entry.generation);
        }
        Err(err) => {
            let outcome = match err {
                Error::FetchTimeout { .. } => "timed_out",
                Error::FetchCancelled => "cancelled",
                _ => "failed",
            };
            span.record("outcome", outcome);
            span.record("error", tracing::field::display(err));
        }
    }
    config.hooks.emit(&Event::FetchFinished {
        source,
        reason,
        result: result.as_ref().map(|entry| entry.generation),
        attempts,
        elapsed,
    });
    if let (Ok(entry), true) = (result, changed) {
        let now = config.clock.now();
        config.hooks.emit(&Event::TokenChanged {
            source,
            token: &entry.token,
            generation: entry.generation,
            expires_in: entry.expires_at.map(|at| at.saturating_duration_since(now)),
        });
    }
}

async fn fetch_with_retries<S: TokenSource>(
    source: &S,
    config: &CacheConfig,
    reason: FetchReason,
    attempts: &std::sync::atomic::AtomicU32,
) -> Result<Token, Error> {
    let cx = FetchContext {
        clock: Arc::clone(&config.clock),
        reason,
    };
    let policy = config.retry;
    let mut backoff = backon::ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(usize::MAX)
        .with_jitter()
        .build();
    let mut attempt = 1;
    loop {
        attempts.store(attempt, Ordering::Relaxed);
        match source.fetch(&cx).await {
            Ok(token) => return Ok(token),
            Err(err) if source.should_retry(&err) && attempt < policy.max_attempts.max(1) => {
                let delay = err
                    .retry_after()
                    .or_else(|| backoff.next())
                    .unwrap_or(policy.max_delay)
                    .min(policy.max_delay);
                tracing::warn!(attempt, error = %err, delay_ms = delay.as_millis() as u64, "token endpoint failed; retrying");
                config.clock.sleep(delay).await;
                attempt += 1;
            }
            Err(err) => {
                tracing::warn!(attempt, error = %err, "token fetch failed");
                return Err(err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(now: Instant, t: (Instant, Instant, Instant)) -> (f64, f64, f64) {
        let secs = |i: Instant| (i - now).as_secs_f64();
        (secs(t.0), secs(t.1), secs(t.2))
    }

    fn default_deadlines(lifetime_secs: f64) -> (f64, f64, f64) {
        let now = Instant::now();
        let life = Duration::from_secs_f64(lifetime_secs);
        at(
            now,
            deadlines(now, life, DEFAULT_REFRESH_SKEW, DEFAULT_REFRESH_AHEAD),
        )
    }

    #[test]
    fn deadlines_for_an_hour_token() {
        assert_eq!(default_deadlines(3600.0), (3550.0, 3570.0, 3600.0));
    }

    #[test]
    fn short_tokens_get_a_background_refresh_before_anyone_waits() {
        // (lifetime, refresh at, stale at)
        for (life, refresh, stale) in [
            (1.0, 0.5, 0.75),
            (4.0, 2.0, 3.0),
            (10.0, 5.0, 7.5),
            (60.0, 30.0, 45.0),
            (150.0, 100.0, 120.0),
        ] {
            let (r, s, e) = default_deadlines(life);
            assert!((r - refresh).abs() < 1e-6, "{life}: refresh at {r}");
            assert!((s - stale).abs() < 1e-6, "{life}: stale at {s}");
            assert!(r < s && s < e, "{life}: {r} {s} {e}");
        }
    }

    #[test]
    fn long_tokens_cost_at_most_1_1_fetches_per_lifetime() {
        for minutes in [10u32, 15, 30, 60, 24 * 60] {
            let life = f64::from(minutes) * 60.0;
            let (refresh_at, _, _) = default_deadlines(life);
            assert!(
                life / refresh_at <= 1.1,
                "{minutes} min: refresh at {refresh_at} s"
            );
        }
    }

    #[test]
    fn refresh_ahead_zero_turns_the_window_off() {
        let now = Instant::now();
        let (r, s, _) = deadlines(now, Duration::from_secs(600), DEFAULT_REFRESH_SKEW, 0.0);
        assert_eq!(r, s);
    }

    #[test]
    fn skew_longer_than_lifetime_is_cut_to_a_quarter() {
        let now = Instant::now();
        let (r, s, e) = deadlines(now, Duration::from_secs(10), Duration::from_secs(30), 0.2);
        assert_eq!(s - now, Duration::from_millis(7500));
        assert!(r <= s);
        assert_eq!(e - now, Duration::from_secs(10));
    }

    #[test]
    fn the_hot_clock_never_runs_ahead_of_the_precise_one() {
        for _ in 0..10_000 {
            let coarse = hot_clock::coarse_now();
            assert!(coarse <= hot_clock::precise_now());
        }
    }

    #[test]
    fn entries_on_the_system_clock_place_their_deadlines_on_the_hot_clock() {
        let config = CacheConfig::default();
        let token = Token::bearer("t")
            .unwrap()
            .expires_in(Duration::from_secs(3600));
        let before = hot_clock::precise_now();
        let entry = new_entry(token, 1, &config, None);
        let after = hot_clock::precise_now();
        let secs = |s: u64| s * 1_000_000_000;
        assert!((before + secs(3550)..=after + secs(3550)).contains(&entry.refresh_ns));
        assert!((before + secs(3570)..=after + secs(3570)).contains(&entry.stale_ns));
        assert!(matches!(
            entry.freshness_ns(hot_clock::coarse_now()),
            Freshness::Fresh
        ));
        assert!(matches!(
            entry.freshness_ns(entry.refresh_ns),
            Freshness::RefreshAhead
        ));
        assert!(matches!(
            entry.freshness_ns(entry.stale_ns),
            Freshness::Stale
        ));

        let unknown = new_entry(Token::bearer("t").unwrap(), 2, &config, None);
        assert!(matches!(
            unknown.freshness_ns(u64::MAX - 1),
            Freshness::Fresh
        ));
    }

    #[test]
    fn zero_lifetime_is_stale_at_once_without_overflow() {
        let now = Instant::now();
        let (r, s, e) = deadlines(now, Duration::ZERO, DEFAULT_REFRESH_SKEW, 0.2);
        assert_eq!((r, s, e), (now, now, now));
    }
}
