//! The clock that expiry decisions read.
//!
//! Everything in the crate that asks "is this token still good?" or "how long do I wait
//! before retrying?" goes through a [`Clock`]. The default, [`SystemClock`], is the real one.
//! Tests hand the layer a [`ManualClock`] and move time by hand: unlike tokio's paused clock,
//! it never jumps forward on its own while a request waits on a real socket.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A future returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of time for expiry decisions and retry waits.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Monotonic now, for comparing with deadlines.
    fn now(&self) -> Instant;
    /// Wall-clock now, for absolute expiry times such as a JWT `exp`.
    fn system_now(&self) -> SystemTime;
    /// Waits for `duration` (between token-endpoint retries).
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// The real clock: `Instant::now`, `SystemTime::now` and `tokio::time::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn system_now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that moves only when told to; for tests.
///
/// [`sleep`](Clock::sleep) does not wait: it advances the clock by the duration and returns,
/// and the total is readable with [`slept`](ManualClock::slept), so a test can check that a
/// `Retry-After` was honoured without waiting for it.
///
/// ```
/// use std::time::Duration;
/// use reqwest_partner_auth::clock::ManualClock;
/// use reqwest_partner_auth::Clock;
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.advance(Duration::from_secs(3600));
/// assert_eq!(clock.now() - start, Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualState>>,
}

#[derive(Debug)]
struct ManualState {
    base: Instant,
    base_system: SystemTime,
    offset: Duration,
    slept: Duration,
}

impl ManualClock {
    /// A manual clock starting at the real current time.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(ManualState {
                base: Instant::now(),
                base_system: SystemTime::now(),
                offset: Duration::ZERO,
                slept: Duration::ZERO,
            })),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.state().offset += by;
    }

    /// The total time passed to [`Clock::sleep`] so far.
    pub fn slept(&self) -> Duration {
        self.state().slept
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ManualState> {
        // A poisoned lock only means another test thread panicked; the data is still fine.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let s = self.state();
        s.base + s.offset
    }

    fn system_now(&self) -> SystemTime {
        let s = self.state();
        s.base_system + s.offset
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        {
            let mut s = self.state();
            s.offset += duration;
            s.slept += duration;
        }
        Box::pin(tokio::task::yield_now())
    }
}
