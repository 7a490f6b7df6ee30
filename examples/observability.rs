//! Observability: the spans, metrics and observer events of a token's life, against a local
//! mock partner, no set-up needed.
//!
//! ```sh
//! cargo run --example observability
//! ```
//!
//! Four steps, each followed by what it produced:
//! 1. a first call: one `token_fetch` span (reason `first`) inside the call's `request` span;
//! 2. an hour later, a refresh (reason `expiring`);
//! 3. the partner revokes the token: a 401, a refresh (reason `rejected`) and a replay;
//! 4. the token endpoint fails while the token is past its skew point: a failed fetch
//!    (`outcome=failed`, three attempts), and the still-valid token is served.
//!
//! Spans are printed by `tracing-subscriber`'s formatter when they close, with their fields;
//! the metrics are those the `metrics` feature records through the `metrics` facade, read
//! back from a debugging recorder; the observer events are printed as they happen. Nothing
//! printed holds a secret or a token: the example checks its own output for them.

#[path = "support/mock.rs"]
mod mock;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::cache::RetryPolicy;
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::engine::{HttpTokenSource, Param};
use reqwest_partner_auth::observe::Event;
use reqwest_partner_auth::AuthMiddleware;
use tracing::Instrument as _;
use tracing_subscriber::fmt::format::FmtSpan;
use url::Url;

/// Everything the example printed, to check that no secret is in it.
#[derive(Clone, Default)]
struct Printed(Arc<Mutex<Vec<u8>>>);

impl Write for Printed {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::io::stdout().write_all(buf)?;
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let printed = Printed::default();
    let writer = printed.clone();
    tracing_subscriber::fmt()
        .with_env_filter("reqwest_partner_auth=info,observability=info")
        .with_span_events(FmtSpan::CLOSE)
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder)?;

    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?
        .block_on(run(&snapshotter, printed.clone()))?;

    let all = String::from_utf8(printed.0.lock().unwrap().clone())?;
    for secret in ["demo-secret", "tok-1", "tok-2", "tok-3", "tok-4"] {
        assert!(!all.contains(secret), "{secret} was printed");
    }
    println!("\nDone: nothing printed holds a secret or a token.");
    Ok(())
}

async fn run(
    snapshotter: &Snapshotter,
    printed: Printed,
) -> Result<(), Box<dyn std::error::Error>> {
    let clock = ManualClock::new();
    let partner = mock::demo::start(clock.clone()).await;
    let base = partner.base_url();
    let source = HttpTokenSource::post(base.join(mock::demo::TOKEN_PATH)?)
        .named("demo")
        .param("client_id", Param::text(mock::demo::CLIENT_ID))
        .param("client_secret", Param::secret(mock::demo::CLIENT_SECRET))
        .add_origin(&base);
    let out = printed.clone();
    let layer = AuthMiddleware::builder(source)
        .clock(Arc::new(clock.clone()))
        .retry_policy(RetryPolicy {
            min_delay: Duration::from_millis(10),
            ..RetryPolicy::default()
        })
        .observer(move |event: &Event<'_>| {
            let line = match event {
                Event::FetchStarted { source, reason } => {
                    format!("fetch started: source={source} reason={}", reason.as_str())
                }
                Event::FetchFinished {
                    result, attempts, elapsed, ..
                } => match result {
                    Ok(generation) => format!(
                        "fetch finished: generation {generation}, {attempts} attempt(s), {elapsed:?}"
                    ),
                    Err(err) => format!("fetch failed after {attempts} attempt(s): {err}"),
                },
                Event::TokenChanged {
                    generation, expires_in, ..
                } => format!("token changed: generation {generation}, expires in {expires_in:?}"),
                Event::Rejected { generation, action, .. } => {
                    format!("token {generation} rejected: {}", action.as_str())
                }
                Event::Replayed { generation, .. } => {
                    format!("request replayed with token {generation}")
                }
                Event::StaleServed { generation, .. } => {
                    format!("refresh failed; token {generation} served until it expires")
                }
                other => format!("{other:?}"),
            };
            let _ = writeln!(out.clone(), "   [observer] {line}");
        })
        .build();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(layer)
        .build();
    let campaigns = base.join(mock::demo::CAMPAIGNS_PATH)?;

    println!("\n1. First call: the fetch runs in a `token_fetch` span inside the call's span.");
    call(&client, &campaigns).await?;
    partner.report(1, 1);

    println!("\n2. An hour later (inside the skew before expiry): a refresh, reason `expiring`.");
    clock.advance(Duration::from_secs(59 * 60 + 45));
    call(&client, &campaigns).await?;
    partner.report(2, 2);

    println!("\n3. The partner revokes the token: 401, refresh (reason `rejected`), replay.");
    partner.revoke_token();
    call(&client, &campaigns).await?;
    partner.report(3, 4);

    println!(
        "\n4. The token endpoint fails past the skew point: the fetch fails, the token is served."
    );
    partner.fail_next_token_requests(3);
    clock.advance(Duration::from_secs(59 * 60 + 45));
    call(&client, &campaigns).await?;
    partner.report(6, 5);

    println!("\nMetrics recorded through the `metrics` facade:");
    let mut lines = Vec::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<String> = key
            .key()
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let value = match value {
            DebugValue::Counter(n) => n.to_string(),
            DebugValue::Gauge(g) => g.to_string(),
            DebugValue::Histogram(samples) => format!("{} sample(s)", samples.len()),
        };
        lines.push(format!(
            "   {}{{{}}} {value}",
            key.key().name(),
            labels.join(",")
        ));
    }
    lines.sort();
    let mut out = printed;
    for line in &lines {
        writeln!(out, "{line}")?;
    }
    let fetches: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("partner_auth_token_fetches_total"))
        .collect();
    assert_eq!(
        fetches.len(),
        4,
        "first, expiring, rejected fetched; expiring failed"
    );
    Ok(())
}

/// One API call inside a `request` span; it must succeed.
async fn call(client: &ClientWithMiddleware, url: &Url) -> Result<(), Box<dyn std::error::Error>> {
    let span = tracing::info_span!("request", path = url.path());
    let res = client.get(url.clone()).send().instrument(span).await?;
    assert_eq!(res.status(), 200, "the caller must always see a success");
    Ok(())
}
