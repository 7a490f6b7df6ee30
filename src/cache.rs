//! [`TokenCache`]: when to obtain a token.
//!
//! * The hot path is one lock-free load of the current token ([`arc_swap`]) and one clock read.
//! * Single flight: however many requests need a token at once, one fetch runs. It runs in its
//!   own task, so a caller that gives up (its future dropped by a timeout) does not cancel the
//!   fetch the others wait for.
//! * Two thresholds before expiry. Past the *refresh-ahead* point (the last
//!   [`DEFAULT_REFRESH_AHEAD`] of the lifetime) requests still go out with the current token
//!   while one background refresh runs, so in steady state nobody waits for the token
//!   endpoint. Past the *skew* point ([`DEFAULT_REFRESH_SKEW`] before expiry) requests wait for
//!   the new token: none leaves with a token about to die.
//! * Generations: every token gets a number; a rejection names the generation it saw, so N
//!   concurrent 401s for one token cause one refresh.
//! * Serve stale: when a refresh fails while the current token has not yet expired, the
//!   current token keeps being used.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use backon::BackoffBuilder as _;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use http::HeaderValue;

use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::source::{FetchContext, FetchReason, TokenSource};
use crate::token::Token;

/// Default time before expiry from which requests wait for a new token: 30 seconds (cut to
/// half the lifetime for tokens that live less than a minute, so a short-lived token is still
/// used before it is replaced).
pub const DEFAULT_REFRESH_SKEW: Duration = Duration::from_secs(30);

/// Default share of a token's lifetime, counted back from its expiry, in which a background
/// refresh starts while requests keep using the current token: the last 20%.
pub const DEFAULT_REFRESH_AHEAD: f64 = 0.2;

/// After a failed fetch, how long refresh-ahead waits before it tries in the background
/// again. Requests inside the skew window still wait for a fetch of their own.
pub const BACKGROUND_RETRY_PAUSE: Duration = Duration::from_secs(10);

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
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            skew: DEFAULT_REFRESH_SKEW,
            refresh_ahead: DEFAULT_REFRESH_AHEAD,
            retry: RetryPolicy::default(),
            clock: Arc::new(SystemClock),
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
pub(crate) fn deadlines(
    now: Instant,
    lifetime: Duration,
    skew: Duration,
    refresh_ahead: f64,
) -> (Instant, Instant, Instant) {
    let skew = skew.min(lifetime / 2);
    let stale_at = now + (lifetime - skew);
    let ahead = lifetime.mul_f64(refresh_ahead.clamp(0.0, 1.0));
    let refresh_at = (now + lifetime.saturating_sub(ahead)).min(stale_at);
    (refresh_at, stale_at, now + lifetime)
}

type Flight = Shared<BoxFuture<'static, Result<Arc<Entry>, Error>>>;

struct State<S> {
    source: S,
    current: ArcSwapOption<Entry>,
    flight: Mutex<Option<Flight>>,
    generations: AtomicU64,
    /// After a failed fetch, background refreshes wait until then, so a partner outage
    /// during the refresh-ahead window is not answered with a fetch per request.
    background_paused_until: Mutex<Option<Instant>>,
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

impl<S: TokenSource> TokenCache<S> {
    /// A cache with the default policy on the real clock.
    pub fn new(source: S) -> Self {
        Self {
            state: Arc::new(State {
                source,
                current: ArcSwapOption::empty(),
                flight: Mutex::new(None),
                generations: AtomicU64::new(0),
                background_paused_until: Mutex::new(None),
            }),
            config: Arc::new(CacheConfig::default()),
        }
    }

    fn config_mut(&mut self) -> &mut CacheConfig {
        Arc::make_mut(&mut self.config)
    }

    /// How long before expiry requests stop using a token and wait for a new one.
    /// Default [`DEFAULT_REFRESH_SKEW`].
    pub fn refresh_skew(mut self, skew: Duration) -> Self {
        self.config_mut().skew = skew;
        self
    }

    /// The share of the lifetime (0.0 to 1.0, counted back from expiry) in which a background
    /// refresh runs while requests keep using the current token. Default
    /// [`DEFAULT_REFRESH_AHEAD`]; 0 turns refresh-ahead off.
    pub fn refresh_ahead(mut self, share: f64) -> Self {
        self.config_mut().refresh_ahead = if share.is_finite() {
            share.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// How transient token-endpoint failures are retried.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.config_mut().retry = policy;
        self
    }

    /// The clock expiry decisions read (tests pass a [`ManualClock`](crate::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.config_mut().clock = clock;
        self
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
    /// may still be used.
    pub async fn token(&self) -> Result<Lease, Error> {
        let now = self.config.clock.now();
        if let Some(entry) = &*self.state.current.load() {
            match entry.freshness(now) {
                Freshness::Fresh => return Ok(entry.lease()),
                Freshness::RefreshAhead => {
                    self.refresh_in_background(entry.generation);
                    return Ok(entry.lease());
                }
                Freshness::Stale => return self.wait_for_fetch(FetchReason::Expiring).await,
            }
        }
        self.wait_for_fetch(FetchReason::Initial).await
    }

    /// Reports that the API rejected the token of `generation`, and returns a new one.
    ///
    /// If the token was already replaced (another request saw the same rejection first), the
    /// replacement is returned and nothing is fetched.
    ///
    /// # Errors
    /// As [`TokenCache::token`].
    pub async fn reject(&self, generation: u64) -> Result<Lease, Error> {
        self.invalidate(generation);
        self.wait_for_fetch(FetchReason::Rejected).await
    }

    /// Drops the token of `generation` if it is still the cached one, without fetching.
    pub fn invalidate(&self, generation: u64) {
        let _slot = self.lock_flight();
        let current = self.state.current.load();
        if current.as_ref().is_some_and(|e| e.generation == generation) {
            tracing::debug!(generation, "token rejected by the api; dropping it");
            self.state.current.store(None);
        }
    }

    /// Drops the cached token: the next request fetches a new one.
    pub fn clear(&self) {
        let _slot = self.lock_flight();
        self.state.current.store(None);
    }

    fn lock_flight(&self) -> std::sync::MutexGuard<'_, Option<Flight>> {
        // The lock guards no invariant a panic could break half-way.
        self.state.flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn wait_for_fetch(&self, reason: FetchReason) -> Result<Lease, Error> {
        let flight = {
            let mut slot = self.lock_flight();
            // Re-check under the lock: the fetch we would start may just have finished.
            let now = self.config.clock.now();
            if let Some(entry) = &*self.state.current.load() {
                if !matches!(entry.freshness(now), Freshness::Stale) {
                    return Ok(entry.lease());
                }
            }
            self.join_or_start(&mut slot, reason)
        };
        match flight.await {
            Ok(entry) => Ok(entry.lease()),
            Err(err) => {
                // Serve stale: a token that has not expired yet is still better than an error.
                let now = self.config.clock.now();
                match &*self.state.current.load() {
                    Some(entry) if !entry.expired(now) => {
                        tracing::warn!(error = %err, "token refresh failed; using the current token until it expires");
                        Ok(entry.lease())
                    }
                    _ => Err(err),
                }
            }
        }
    }

    /// Starts a background refresh of the token of `generation`, unless one runs already or
    /// that token was replaced meanwhile (a refresh that finished between the caller's read
    /// and this lock must not be followed by a second one).
    fn refresh_in_background(&self, generation: u64) {
        let mut slot = self.lock_flight();
        let current = self.state.current.load();
        let still_current = current.as_ref().is_some_and(|e| e.generation == generation);
        if slot.is_some() || !still_current {
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
            drop(self.join_or_start(&mut slot, FetchReason::Expiring));
        }
    }

    fn join_or_start(&self, slot: &mut Option<Flight>, reason: FetchReason) -> Flight {
        if let Some(flight) = slot.as_ref() {
            return flight.clone();
        }
        let state = Arc::clone(&self.state);
        let config = Arc::clone(&self.config);
        let task = tokio::spawn(async move {
            // If the source panics, the slot must still be emptied, or every later caller
            // would join this dead flight forever.
            let mut guard = ClearSlotOnPanic(Some(Arc::clone(&state)));
            let result = fetch_with_retries(&state.source, &config, reason).await;
            guard.0 = None;
            *state
                .background_paused_until
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = result
                .is_err()
                .then(|| config.clock.now() + BACKGROUND_RETRY_PAUSE);
            let mut slot = state.flight.lock().unwrap_or_else(|p| p.into_inner());
            let result = result.map(|token| {
                let generation = state.generations.fetch_add(1, Ordering::Relaxed) + 1;
                let entry = Arc::new(new_entry(token, generation, &config));
                state.current.store(Some(Arc::clone(&entry)));
                entry
            });
            *slot = None;
            result
        });
        let flight: BoxFuture<'static, Result<Arc<Entry>, Error>> =
            Box::pin(async move { task.await.unwrap_or(Err(Error::SourcePanicked)) });
        let flight = flight.shared();
        *slot = Some(flight.clone());
        flight
    }
}

/// Empties the flight slot when dropped while still armed (the fetch panicked).
struct ClearSlotOnPanic<S>(Option<Arc<State<S>>>);

impl<S> Drop for ClearSlotOnPanic<S> {
    fn drop(&mut self) {
        if let Some(state) = self.0.take() {
            *state.flight.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }
}

fn new_entry(token: Token, generation: u64, config: &CacheConfig) -> Entry {
    let now = config.clock.now();
    let (refresh_at, stale_at, expires_at) = match token.lifetime_at(config.clock.system_now()) {
        Some(lifetime) => {
            let (r, s, e) = deadlines(now, lifetime, config.skew, config.refresh_ahead);
            (Some(r), Some(s), Some(e))
        }
        None => (None, None, None),
    };
    tracing::debug!(
        generation,
        expires_in_secs = expires_at.map(|e| (e - now).as_secs()),
        "new token cached"
    );
    Entry {
        token,
        generation,
        refresh_at,
        stale_at,
        expires_at,
    }
}

async fn fetch_with_retries<S: TokenSource>(
    source: &S,
    config: &CacheConfig,
    reason: FetchReason,
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

    #[test]
    fn deadlines_for_an_hour_token() {
        let now = Instant::now();
        let (r, s, e) = deadlines(now, Duration::from_secs(3600), DEFAULT_REFRESH_SKEW, 0.2);
        assert_eq!(r - now, Duration::from_secs(2880));
        assert_eq!(s - now, Duration::from_secs(3570));
        assert_eq!(e - now, Duration::from_secs(3600));
    }

    #[test]
    fn skew_longer_than_lifetime_is_halved() {
        let now = Instant::now();
        let (r, s, e) = deadlines(now, Duration::from_secs(10), Duration::from_secs(30), 0.2);
        assert_eq!(s - now, Duration::from_secs(5));
        assert!(r <= s);
        assert_eq!(e - now, Duration::from_secs(10));
    }

    #[test]
    fn zero_lifetime_is_stale_at_once_without_overflow() {
        let now = Instant::now();
        let (r, s, e) = deadlines(now, Duration::ZERO, DEFAULT_REFRESH_SKEW, 0.2);
        assert_eq!((r, s, e), (now, now, now));
    }
}
