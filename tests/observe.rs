//! What a token fetch shows to the outside: its `token_fetch` span (parent, fields,
//! `follows_from` links of the requests that join it), the events an [`Observer`] receives
//! (fetches, token changes, rejections, replays, serve-stale), and that no span field, event
//! or observer event ever holds a secret.
//!
//! Spans are captured with a small `tracing_subscriber` layer that records every span's
//! name, parent, fields and links, and every event's fields.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use httpmock::MockServer;
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::observe::{Event, Observer};
use reqwest_partner_auth::{AuthMiddleware, FetchReason};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Instrument, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use common::{
    client, json_response, middleware, numbered_token_mock, rejecting_echo_mock, retries,
    TestSource, SECRET, TOKEN_PATH,
};

const HOUR: u64 = 3600;
const API_PATH: &str = "/api";

// -------------------------------------------------------------------------------------------
// A subscriber layer that remembers spans and events
// -------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default)]
struct SpanRecord {
    name: String,
    parent: Option<String>,
    fields: HashMap<String, String>,
    /// Names of the spans this one follows from.
    follows_from: Vec<String>,
}

#[derive(Default)]
struct Captured {
    spans: HashMap<u64, SpanRecord>,
    /// Every event's fields, message included, with the name of the span it was in.
    events: Vec<(Option<String>, HashMap<String, String>)>,
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Captured>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_owned(),
            format!("{value:?}").trim_matches('"').to_owned(),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut record = SpanRecord {
            name: attrs.metadata().name().to_owned(),
            ..SpanRecord::default()
        };
        attrs.record(&mut Fields(&mut record.fields));
        let parent = if attrs.is_contextual() {
            ctx.lookup_current().map(|s| s.name().to_owned())
        } else {
            attrs
                .parent()
                .and_then(|p| ctx.span(p))
                .map(|s| s.name().to_owned())
        };
        record.parent = parent;
        self.0.lock().unwrap().spans.insert(id.into_u64(), record);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let mut captured = self.0.lock().unwrap();
        if let Some(span) = captured.spans.get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, _ctx: Context<'_, S>) {
        let mut captured = self.0.lock().unwrap();
        let name = captured
            .spans
            .get(&follows.into_u64())
            .map(|s| s.name.clone());
        if let (Some(span), Some(name)) = (captured.spans.get_mut(&id.into_u64()), name) {
            span.follows_from.push(name);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        let span = ctx.event_span(event).map(|s| s.name().to_owned());
        self.0.lock().unwrap().events.push((span, fields));
    }
}

impl Capture {
    fn spans_named(&self, name: &str) -> Vec<SpanRecord> {
        let captured = self.0.lock().unwrap();
        let mut spans: Vec<(u64, SpanRecord)> = captured
            .spans
            .iter()
            .filter(|(_, s)| s.name == name)
            .map(|(id, s)| (*id, s.clone()))
            .collect();
        spans.sort_by_key(|(id, _)| *id);
        spans.into_iter().map(|(_, s)| s).collect()
    }

    fn span_named(&self, name: &str) -> SpanRecord {
        let spans = self.spans_named(name);
        assert_eq!(spans.len(), 1, "one {name} span: {spans:?}");
        spans.into_iter().next().unwrap()
    }

    /// Every field of every span and event, as text.
    fn all_text(&self) -> String {
        let captured = self.0.lock().unwrap();
        let mut text = String::new();
        for span in captured.spans.values() {
            text.push_str(&format!("{span:?}\n"));
        }
        for event in &captured.events {
            text.push_str(&format!("{event:?}\n"));
        }
        text
    }
}

thread_local! {
    /// The capture of the test running on this thread, if any.
    static CURRENT: std::cell::RefCell<Option<Capture>> = const { std::cell::RefCell::new(None) };
}

/// The process-wide subscriber: it hands everything to the capture of the current thread.
/// (One global subscriber rather than one scoped subscriber per test: tracing caches each
/// callsite's interest, and with scoped subscribers on parallel test threads a callsite first
/// seen by another thread may be cached as uninteresting.)
#[derive(Clone)]
struct ThreadCapture;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for ThreadCapture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        with_current(|c| c.on_new_span(attrs, id, ctx));
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        with_current(|c| c.on_record(id, values, ctx));
    }
    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        with_current(|c| c.on_follows_from(id, follows, ctx));
    }
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        with_current(|c| c.on_event(event, ctx));
    }
}

fn with_current(f: impl FnOnce(&Capture)) {
    CURRENT.with(|current| {
        if let Some(capture) = &*current.borrow() {
            f(capture);
        }
    });
}

/// Runs `f` on a current-thread runtime whose spans and events go to `capture` (spawned tasks
/// run on the same thread, so they are captured too).
fn with_capture<F: std::future::Future<Output = ()>>(capture: &Capture, f: impl FnOnce() -> F) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::registry()
            .with(ThreadCapture)
            .with(tracing_subscriber::filter::LevelFilter::TRACE);
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
    });
    CURRENT.with(|current| *current.borrow_mut() = Some(capture.clone()));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f());
    CURRENT.with(|current| *current.borrow_mut() = None);
}

// -------------------------------------------------------------------------------------------
// An observer that remembers events
// -------------------------------------------------------------------------------------------

/// Events as text (their `Debug`), in order.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<String>>>);

impl Observer for Recorder {
    fn observe(&self, event: &Event<'_>) {
        let line = match event {
            Event::FetchStarted { reason, .. } => format!("fetch started ({reason:?})"),
            Event::FetchFinished {
                reason,
                result,
                attempts,
                ..
            } => match result {
                Ok(generation) => {
                    format!("fetch finished ({reason:?}): generation {generation} after {attempts}")
                }
                Err(err) => format!("fetch failed ({reason:?}) after {attempts}: {err}"),
            },
            Event::TokenChanged {
                token, generation, ..
            } => {
                // The observer may read the token (to persist or share it): it is the one
                // that was fetched.
                let value = token.header_value().to_str().unwrap().to_owned();
                format!("token changed: generation {generation} = {value}")
            }
            Event::Rejected {
                generation, action, ..
            } => format!("rejected: generation {generation} ({action:?})"),
            Event::Replayed { generation, .. } => format!("replayed with generation {generation}"),
            Event::StaleServed { generation, .. } => {
                format!("stale served: generation {generation}")
            }
            other => format!("other: {other:?}"),
        };
        self.0.lock().unwrap().push(line);
    }
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

async fn api_ok(server: &MockServer) -> httpmock::Mock<'_> {
    server
        .mock_async(|when, then| {
            when.method(httpmock::Method::GET).path(API_PATH);
            then.status(200);
        })
        .await
}

// -------------------------------------------------------------------------------------------
// Spans
// -------------------------------------------------------------------------------------------

/// The first fetch runs in a `token_fetch` span, child of the span of the request that
/// started it, with the source, the token endpoint's origin, the reason, the attempts, the
/// outcome, the latency and the generation.
#[test]
fn a_fetch_runs_in_a_token_fetch_span_under_the_request_that_started_it() {
    let capture = Capture::default();
    with_capture(&capture, || async {
        let server = MockServer::start_async().await;
        let clock = ManualClock::new();
        numbered_token_mock(&server, HOUR, Duration::ZERO).await;
        api_ok(&server).await;
        let client = client(middleware(&server, &clock));
        client
            .get(server.url(API_PATH))
            .send()
            .instrument(tracing::info_span!("request"))
            .await
            .unwrap();

        let fetch = capture.span_named("token_fetch");
        assert_eq!(fetch.parent.as_deref(), Some("request"), "{fetch:?}");
        let field = |name: &str| fetch.fields.get(name).cloned().unwrap_or_default();
        assert_eq!(field("source"), "test");
        assert_eq!(field("endpoint"), server.base_url());
        assert_eq!(field("reason"), "first");
        assert_eq!(field("attempts"), "1");
        assert_eq!(field("outcome"), "fetched");
        assert_eq!(field("generation"), "1");
        assert!(field("latency_ms").parse::<u64>().is_ok(), "{fetch:?}");
    });
}

/// Requests that join a fetch in flight point to its span with `follows_from`; the fetch is
/// the child of the request that started it only.
#[test]
fn requests_that_join_a_fetch_follow_from_its_span() {
    let capture = Capture::default();
    with_capture(&capture, || async {
        let server = MockServer::start_async().await;
        let clock = ManualClock::new();
        let token = numbered_token_mock(&server, HOUR, Duration::from_millis(200)).await;
        api_ok(&server).await;
        let client = client(middleware(&server, &clock));
        let first = client
            .get(server.url(API_PATH))
            .send()
            .instrument(tracing::info_span!("first_request"));
        let second = async {
            // Starts once the first request's fetch is in flight.
            tokio::time::sleep(Duration::from_millis(50)).await;
            client.get(server.url(API_PATH)).send().await
        }
        .instrument(tracing::info_span!("second_request"));
        let (a, b) = tokio::join!(first, second);
        a.unwrap();
        b.unwrap();
        assert_eq!(token.calls_async().await, 1, "one fetch for both");

        let fetch = capture.span_named("token_fetch");
        assert_eq!(fetch.parent.as_deref(), Some("first_request"));
        let second = capture.span_named("second_request");
        assert_eq!(second.follows_from, vec!["token_fetch".to_owned()]);
        assert!(capture.span_named("first_request").follows_from.is_empty());
    });
}

/// A refresh says why it ran (`expiring`, `rejected`), and a failed fetch says so with its
/// attempts and its error, which names no secret.
#[test]
fn fetch_spans_name_the_reason_the_attempts_and_the_outcome() {
    let capture = Capture::default();
    with_capture(&capture, || async {
        let server = MockServer::start_async().await;
        let clock = ManualClock::new();
        let mut tokens = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
        let api = rejecting_echo_mock(
            &server,
            |w| w.method(httpmock::Method::GET).path(API_PATH),
            &["tok-2"],
            "revoked",
        )
        .await;
        let client = client(middleware(&server, &clock));
        let get = || client.get(server.url(API_PATH)).send();

        get().await.unwrap(); // first: tok-1
        clock.advance(Duration::from_secs(HOUR - 10));
        get().await.unwrap(); // past the skew point: waits for tok-2 (expiring)
        get().await.unwrap(); // tok-2 rejected: tok-3 (rejected), replayed
        assert_eq!(api.calls_async().await, 4);

        tokens.delete_async().await;
        server
            .mock_async(|when, then| {
                when.method(httpmock::Method::POST).path(TOKEN_PATH);
                then.status(503)
                    .body(format!("upstream down, we got {SECRET}"));
            })
            .await;
        clock.advance(Duration::from_secs(2 * HOUR));
        get().await.expect_err("no token left");

        let spans = capture.spans_named("token_fetch");
        let summary: Vec<(String, String, String)> = spans
            .iter()
            .map(|s| {
                let f = |n: &str| s.fields.get(n).cloned().unwrap_or_default();
                (f("reason"), f("outcome"), f("attempts"))
            })
            .collect();
        let expected = [
            ("first", "fetched", "1"),
            ("expiring", "fetched", "1"),
            ("rejected", "fetched", "1"),
            (
                "expiring",
                "failed",
                &retries().max_attempts.to_string()[..],
            ),
        ]
        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()));
        assert_eq!(summary, expected);
        let failed = &spans[3];
        let error = failed.fields.get("error").cloned().unwrap_or_default();
        assert!(error.contains("503"), "{failed:?}");
        assert!(!failed.fields.contains_key("generation"), "{failed:?}");
        let _ = &mut tokens;
    });
}

/// No span field and no event, at any level, holds a credential or a token: the sentinel
/// secret is echoed by the token endpoint in its errors, and the tokens are sentinels too.
#[test]
fn no_span_or_event_holds_a_secret() {
    let capture = Capture::default();
    let token_value = "TOKEN-SENTINEL-93kq";
    with_capture(&capture, || async {
        let server = MockServer::start_async().await;
        let clock = ManualClock::new();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        server
            .mock_async(move |when, then| {
                when.method(httpmock::Method::POST).path(TOKEN_PATH);
                then.respond_with(move |_req: &httpmock::HttpMockRequest| {
                    match counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                        0 => json_response(
                            200,
                            &format!(r#"{{"access_token":"{token_value}-1","expires_in":3600}}"#),
                        ),
                        _ => json_response(
                            400,
                            &format!(
                                r#"{{"error":"invalid_request","error_description":"bad secret {SECRET}"}}"#
                            ),
                        ),
                    }
                });
            })
            .await;
        rejecting_echo_mock(
            &server,
            |w| w.method(httpmock::Method::GET).path(API_PATH),
            &[],
            "",
        )
        .await;
        let client = client(middleware(&server, &clock));
        client.get(server.url(API_PATH)).send().await.unwrap();
        clock.advance(Duration::from_secs(2 * HOUR));
        client
            .get(server.url(API_PATH))
            .send()
            .await
            .expect_err("the endpoint now refuses");
    });
    let text = capture.all_text();
    assert!(text.contains("token_fetch"), "spans were captured: {text}");
    for secret in [SECRET, token_value] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

// -------------------------------------------------------------------------------------------
// The observer hook
// -------------------------------------------------------------------------------------------

/// An observer sees a first fetch, the token it brought, a rejection, the refresh it
/// caused, the new token and the replay, in that order; and it can read the token (to
/// persist or share it).
#[tokio::test]
async fn an_observer_sees_fetches_token_changes_rejections_and_replays() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    rejecting_echo_mock(
        &server,
        |w| w.method(httpmock::Method::GET).path(API_PATH),
        &["tok-1"],
        "revoked",
    )
    .await;
    let recorder = Recorder::default();
    let client = client(middleware(&server, &clock).observer(recorder.clone()));
    let res = client.get(server.url(API_PATH)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        recorder.take(),
        [
            "fetch started (Initial)",
            "fetch finished (Initial): generation 1 after 1",
            "token changed: generation 1 = Bearer tok-1",
            "rejected: generation 1 (Dropped)",
            "fetch started (Rejected)",
            "fetch finished (Rejected): generation 2 after 1",
            "token changed: generation 2 = Bearer tok-2",
            "replayed with generation 2",
        ]
    );
}

/// A partner that hands back the token already held changes nothing: no `TokenChanged`.
#[tokio::test]
async fn a_reissued_token_is_not_a_token_change() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    common::fixed_token_mock(
        &server,
        200,
        "application/json",
        r#"{"access_token":"same","expires_in":3600}"#,
    )
    .await;
    api_ok(&server).await;
    let recorder = Recorder::default();
    let client = client(middleware(&server, &clock).observer(recorder.clone()));
    client.get(server.url(API_PATH)).send().await.unwrap();
    clock.advance(Duration::from_secs(HOUR - 10));
    client.get(server.url(API_PATH)).send().await.unwrap();
    let events = recorder.take();
    let changes: Vec<&String> = events
        .iter()
        .filter(|e| e.starts_with("token changed"))
        .collect();
    assert_eq!(
        changes,
        ["token changed: generation 1 = Bearer same"],
        "{events:?}"
    );
    assert!(
        events.contains(&"fetch finished (Expiring): generation 2 after 1".to_owned()),
        "{events:?}"
    );
}

/// When a refresh fails while the token is still valid, the observer hears that the stale
/// token was served.
#[tokio::test]
async fn an_observer_hears_when_a_stale_token_is_served() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let mut tokens = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    api_ok(&server).await;
    let recorder = Recorder::default();
    let client = client(
        middleware(&server, &clock)
            .retry_policy(reqwest_partner_auth::cache::RetryPolicy::none())
            .observer(recorder.clone()),
    );
    client.get(server.url(API_PATH)).send().await.unwrap();
    tokens.delete_async().await;
    server
        .mock_async(|when, then| {
            when.method(httpmock::Method::POST).path(TOKEN_PATH);
            then.status(500);
        })
        .await;
    clock.advance(Duration::from_secs(HOUR - 10)); // past the skew point, not expired
    client.get(server.url(API_PATH)).send().await.unwrap();
    let events = recorder.take();
    assert_eq!(
        &events[3..],
        [
            "fetch started (Expiring)".to_owned(),
            "fetch failed (Expiring) after 1: token endpoint answered 500 Internal Server Error: \
             empty body"
                .to_owned(),
            "stale served: generation 1".to_owned(),
        ],
        "{events:?}"
    );
    let _ = &mut tokens;
}

/// The reason an observer receives is the cache's own.
#[test]
fn fetch_reasons_have_stable_names() {
    assert_eq!(FetchReason::Initial.as_str(), "first");
    assert_eq!(FetchReason::Expiring.as_str(), "expiring");
    assert_eq!(FetchReason::Rejected.as_str(), "rejected");
}

/// An observer set on a layer over a shared cache is not possible (the policy is the
/// cache's); one set on the cache builder serves every layer over that cache.
#[tokio::test]
async fn an_observer_on_a_shared_cache_sees_every_layer_over_it() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    numbered_token_mock(&server, HOUR, Duration::ZERO).await;
    api_ok(&server).await;
    let recorder = Recorder::default();
    let cache = reqwest_partner_auth::TokenCache::builder(TestSource::new(&server))
        .clock(Arc::new(clock.clone()))
        .observer(recorder.clone())
        .build();
    let one = client(AuthMiddleware::with_cache(cache.clone()));
    let two = client(AuthMiddleware::with_cache(cache));
    one.get(server.url(API_PATH)).send().await.unwrap();
    two.get(server.url(API_PATH)).send().await.unwrap();
    assert_eq!(
        recorder.take(),
        [
            "fetch started (Initial)",
            "fetch finished (Initial): generation 1 after 1",
            "token changed: generation 1 = Bearer tok-1",
        ]
    );
}

// -------------------------------------------------------------------------------------------
// Metrics
// -------------------------------------------------------------------------------------------

/// With the `metrics` feature, fetches (by reason and outcome, with their latency), token
/// changes, rejections, replays and stale tokens served are counted through the `metrics`
/// facade.
#[cfg(feature = "metrics")]
#[test]
fn fetches_rejections_replays_and_stale_tokens_are_counted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let server = MockServer::start_async().await;
                let clock = ManualClock::new();
                let mut tokens = numbered_token_mock(&server, HOUR, Duration::ZERO).await;
                rejecting_echo_mock(
                    &server,
                    |w| w.method(httpmock::Method::GET).path(API_PATH),
                    &["tok-1"],
                    "revoked",
                )
                .await;
                let client = client(
                    middleware(&server, &clock)
                        .retry_policy(reqwest_partner_auth::cache::RetryPolicy::none()),
                );
                // first fetch, rejection, refresh, replay
                client.get(server.url(API_PATH)).send().await.unwrap();
                // a failing refresh past the skew point: the stale token is served
                tokens.delete_async().await;
                server
                    .mock_async(|when, then| {
                        when.method(httpmock::Method::POST).path(TOKEN_PATH);
                        then.status(500);
                    })
                    .await;
                clock.advance(Duration::from_secs(HOUR - 10));
                client.get(server.url(API_PATH)).send().await.unwrap();
                let _ = &mut tokens;
            });
    });

    let mut counters = Vec::new();
    let mut histograms = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let mut labels: Vec<String> = key
            .key()
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        labels.sort();
        let name = format!("{}{{{}}}", key.key().name(), labels.join(","));
        match value {
            DebugValue::Counter(n) => counters.push(format!("{name} {n}")),
            DebugValue::Histogram(samples) => histograms.push(format!("{name} x{}", samples.len())),
            DebugValue::Gauge(_) => panic!("no gauges expected: {name}"),
        }
    }
    counters.sort();
    histograms.sort();
    assert_eq!(
        counters,
        [
            "partner_auth_rejections_total{action=dropped,source=test} 1",
            "partner_auth_replays_total{source=test} 1",
            "partner_auth_stale_served_total{source=test} 1",
            "partner_auth_token_changes_total{source=test} 2",
            "partner_auth_token_fetches_total{outcome=fetched,reason=first,source=test} 1",
            "partner_auth_token_fetches_total{outcome=fetched,reason=rejected,source=test} 1",
            "partner_auth_token_fetches_total{outcome=token_endpoint,reason=expiring,source=test} 1",
        ]
    );
    assert_eq!(
        histograms,
        [
            "partner_auth_token_fetch_duration_seconds{outcome=fetched,reason=first,source=test} x1",
            "partner_auth_token_fetch_duration_seconds{outcome=fetched,reason=rejected,source=test} x1",
            "partner_auth_token_fetch_duration_seconds{outcome=token_endpoint,reason=expiring,source=test} x1",
        ]
    );
}
