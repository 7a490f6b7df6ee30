//! What a token's life looks like from outside: spans, metrics and an observer hook.
//!
//! # Spans
//!
//! Every token fetch runs in a span named `token_fetch` (level `INFO`, target
//! `reqwest_partner_auth::cache`). It is a child of the span that was current when the fetch
//! started (the span of the request that needed the token: under `reqwest-tracing`, the
//! request's span), so the fetch's time is attributed to that request. Requests that join a
//! fetch in flight instead of starting one mark their own span `follows_from` the fetch's.
//!
//! | field | value |
//! |---|---|
//! | `source` | the source's [`name`](crate::TokenSource::name) (`targeter`, `adgem`, ...) |
//! | `endpoint` | the token endpoint's origin (scheme, host, port; never a path or query) |
//! | `reason` | `first`, `expiring` or `rejected` ([`FetchReason::as_str`]) |
//! | `attempts` | how many requests the fetch made (transient failures are retried) |
//! | `outcome` | `fetched`, `failed`, `timed_out` or `cancelled` |
//! | `error` | on failure, the error's message (scrubbed of secrets like every message) |
//! | `latency_ms` | how long the fetch took, retries included |
//! | `generation` | on success, the generation of the new token |
//!
//! No field ever holds a credential or a token. Retries and failures inside the fetch are
//! events in that span.
//!
//! # Observer
//!
//! An [`Observer`] given to the cache (or layer) builder hears every [`Event`]: fetches
//! starting and finishing, a new token ([`Event::TokenChanged`], to persist or share any
//! token), rejections, replays, and a stale token served while a refresh failed.
//!
//! ```
//! use std::sync::Arc;
//! use reqwest_partner_auth::observe::Event;
//! use reqwest_partner_auth::{engine::HttpTokenSource, TokenCache};
//! # let source = HttpTokenSource::post(url::Url::parse("https://auth.partner.example/token").unwrap());
//! let cache = TokenCache::builder(source)
//!     .observer(|event: &Event<'_>| {
//!         if let Event::TokenChanged { generation, expires_in, .. } = event {
//!             println!("token {generation} arrived, valid for {expires_in:?}");
//!         }
//!     })
//!     .build();
//! # let _ = cache;
//! ```
//!
//! Observers run on the task that produced the event, after the cache's locks are released:
//! keep them short, and hand slow work (a database write) to a task of your own.
//!
//! # Metrics
//!
//! With the `metrics` feature, the same events are counted through the
//! [`metrics`](https://docs.rs/metrics) facade (install any recorder: Prometheus,
//! OpenTelemetry, StatsD, ...):
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `partner_auth_token_fetches_total` | counter | `source`, `reason`, `outcome` |
//! | `partner_auth_token_fetch_duration_seconds` | histogram | `source`, `reason`, `outcome` |
//! | `partner_auth_token_changes_total` | counter | `source` |
//! | `partner_auth_rejections_total` | counter | `source`, `action` (`dropped`, `already_replaced`, `cooling_down`) |
//! | `partner_auth_replays_total` | counter | `source` |
//! | `partner_auth_stale_served_total` | counter | `source` |
//!
//! `outcome` is `fetched`, or the kind of failure: `invalid_credentials`, `token_endpoint`,
//! `malformed_response`, `transport`, `reauthorization_required`, `oauth`, `store`,
//! `timed_out`, `cancelled`, `other`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::source::FetchReason;
use crate::token::Token;

/// Hears what happens to a cache's token. Any `Fn(&Event<'_>) + Send + Sync + 'static` is one.
pub trait Observer: Send + Sync + 'static {
    /// Called for each event, after the cache's locks are released.
    fn observe(&self, event: &Event<'_>);
}

impl<F> Observer for F
where
    F: Fn(&Event<'_>) + Send + Sync + 'static,
{
    fn observe(&self, event: &Event<'_>) {
        self(event)
    }
}

/// Something that happened to a cache's token. `source` is the source's
/// [`name`](crate::TokenSource::name).
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A fetch started (one per flight, however many requests wait for it).
    FetchStarted {
        /// The source.
        source: &'a str,
        /// Why.
        reason: FetchReason,
    },
    /// A fetch finished.
    FetchFinished {
        /// The source.
        source: &'a str,
        /// Why it ran.
        reason: FetchReason,
        /// The generation of the new token, or the error (after retries).
        result: Result<u64, &'a Error>,
        /// How many requests it made.
        attempts: u32,
        /// How long it took, retries included.
        elapsed: Duration,
    },
    /// A new token is in use: the first one, or one that differs from the token it replaces
    /// (a partner that hands back the token already held changes nothing).
    ///
    /// The token is the secret itself, for an observer that persists or shares it; its
    /// `Debug` is redacted, and so is this event's.
    TokenChanged {
        /// The source.
        source: &'a str,
        /// The token.
        token: &'a Token,
        /// Its generation.
        generation: u64,
        /// How long it lives, if known.
        expires_in: Option<Duration>,
    },
    /// The API rejected a token (a `401`, or what the layer's rejection policy says).
    Rejected {
        /// The source.
        source: &'a str,
        /// The generation of the rejected token.
        generation: u64,
        /// What the cache did about it.
        action: RejectionAction,
    },
    /// A rejected request was sent again with a new token.
    Replayed {
        /// The source.
        source: &'a str,
        /// The generation of the token the replay carries.
        generation: u64,
    },
    /// A refresh failed while the current token had not expired: it was served instead.
    StaleServed {
        /// The source.
        source: &'a str,
        /// The generation of the token served.
        generation: u64,
        /// Why the refresh failed.
        error: &'a Error,
    },
}

/// What the cache did with a rejected token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionAction {
    /// The token was dropped; a new one is fetched.
    Dropped,
    /// Another request had already replaced it.
    AlreadyReplaced,
    /// A rejection-driven fetch happened within the cool-down: nothing is fetched and the
    /// rejection goes back to the caller.
    CoolingDown,
}

impl RejectionAction {
    /// `dropped`, `already_replaced` or `cooling_down`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionAction::Dropped => "dropped",
            RejectionAction::AlreadyReplaced => "already_replaced",
            RejectionAction::CoolingDown => "cooling_down",
        }
    }
}

/// The observers of one cache, and the metrics feature's recorder calls.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    observers: Vec<Arc<dyn Observer>>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} observer(s)", self.observers.len())
    }
}

impl Hooks {
    pub(crate) fn add(&mut self, observer: Arc<dyn Observer>) {
        self.observers.push(observer);
    }

    pub(crate) fn emit(&self, event: &Event<'_>) {
        #[cfg(feature = "metrics")]
        record_metrics(event);
        for observer in &self.observers {
            observer.observe(event);
        }
    }
}

/// The `outcome` of a fetch: `fetched`, or the kind of failure.
#[cfg(feature = "metrics")]
fn outcome_label(result: Result<(), &Error>) -> &'static str {
    match result {
        Ok(()) => "fetched",
        Err(err) => match err {
            Error::InvalidCredentials { .. } => "invalid_credentials",
            Error::TokenEndpoint { .. } => "token_endpoint",
            Error::MalformedResponse(_) => "malformed_response",
            Error::Transport { .. } => "transport",
            Error::ReauthorizationRequired { .. } => "reauthorization_required",
            Error::OAuth { .. } => "oauth",
            Error::Store(_) => "store",
            Error::FetchTimeout { .. } => "timed_out",
            Error::FetchCancelled => "cancelled",
            _ => "other",
        },
    }
}

#[cfg(feature = "metrics")]
fn record_metrics(event: &Event<'_>) {
    match event {
        Event::FetchStarted { .. } => {}
        Event::FetchFinished {
            source,
            reason,
            result,
            elapsed,
            ..
        } => {
            let outcome = outcome_label(result.map(|_| ()));
            let labels = [
                ("source", source.to_string()),
                ("reason", reason.as_str().to_owned()),
                ("outcome", outcome.to_owned()),
            ];
            metrics::counter!("partner_auth_token_fetches_total", &labels).increment(1);
            metrics::histogram!("partner_auth_token_fetch_duration_seconds", &labels)
                .record(elapsed.as_secs_f64());
        }
        Event::TokenChanged { source, .. } => {
            metrics::counter!("partner_auth_token_changes_total", "source" => source.to_string())
                .increment(1);
        }
        Event::Rejected { source, action, .. } => {
            metrics::counter!(
                "partner_auth_rejections_total",
                "source" => source.to_string(),
                "action" => action.as_str()
            )
            .increment(1);
        }
        Event::Replayed { source, .. } => {
            metrics::counter!("partner_auth_replays_total", "source" => source.to_string())
                .increment(1);
        }
        Event::StaleServed { source, .. } => {
            metrics::counter!("partner_auth_stale_served_total", "source" => source.to_string())
                .increment(1);
        }
    }
}
