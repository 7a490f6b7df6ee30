//! Refresh storms with the default settings: does a crowd of requests cause one token fetch
//! per refresh, and does anybody wait for it?
//!
//! ```sh
//! cargo bench --bench storms      # about 20 s; exits non-zero if a storm invariant breaks
//! ```
//!
//! Set-up: an in-process hyper 1 server on loopback (its own thread, a current-thread
//! runtime) with a token endpoint that answers after 200 ms with a bearer token living 4 s
//! (`expires_in: 4`), counting and timing every fetch, and an API endpoint that answers `200`
//! at once to a token it issued that has not expired (`401` otherwise, counted). The client
//! is a plain `reqwest::Client` with [`AuthMiddleware`] over an [`HttpTokenSource`], every
//! setting at its default and the real clock, driven by a multi-thread tokio runtime with
//! two workers (the machine's two cores, shared with the server thread).
//!
//! (a) Refresh-ahead under load: 1,000 request loops run concurrently for 16 s (four
//! lifetimes of the token). Each sends a `GET` and, once it is answered, pauses
//! [`PAUSE`] before the next (about 1,000 / 100 ms = 10,000 requests/s offered; what two
//! cores running client and server both can serve without queueing for the CPU). Every
//! request's start time and latency are kept. With the defaults a 4 s token is refreshed in
//! the background from 2 s after it arrived (requests would wait for a new one only from
//! 3 s), so one fetch starts about every 2.2 s: 2 s of use plus the 200 ms fetch. Reported:
//! fetches against the refresh points the run passed, and latency percentiles of requests
//! started within ±250 ms of a fetch's start against the rest (steady state), and, as a
//! control for hiccups of the machine, against windows of the same size midway between
//! two refreshes. The first second, when 1,000 connections are opened, is left out.
//! Invariant: exactly one fetch per refresh point: each fetch starts no earlier than 2 s
//! after the previous one was answered (no duplicate), and no refresh point passes
//! without its fetch (none missed).
//!
//! (b) An expired token under a burst: a fresh layer caches a token that lives 1 s (the
//! shortest lifetime the crate accepts), nothing is sent for 1.2 s so it expires in the
//! cache (no request comes in the refresh-ahead window, so no background refresh runs),
//! then 1,000 requests are fired at once. A cached token past its expiry is what "expired"
//! means here; a layer with no token yet would test the first fetch instead. Invariant:
//! exactly one fetch. Also reported: the burst's latencies; when its requests finished,
//! counted from the moment the server answered the fetch; and each request's own time,
//! from the same burst of 1,000 on a fresh cached token, all released at one instant (as
//! the fetch releases the waiting requests); and whether every request finished within the
//! fetch's time plus the slowest own time.
//!
//! The API checks every token it sees, so a request that went out with an expired token
//! shows as a `401`; those and any failed request are reported and also fail the run.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::engine::{HttpTokenSource, Param};
use reqwest_partner_auth::AuthMiddleware;
use tokio::net::TcpListener;
use url::Url;

/// How long the token endpoint takes to answer.
const FETCH_TIME: Duration = Duration::from_millis(200);
/// The token lifetime of the load phase (`expires_in`).
const LIFETIME_SECS: u64 = 4;
/// Concurrent request loops, and the size of the burst.
const CONCURRENCY: usize = 1_000;
/// How long the loops run: four token lifetimes.
const RUN: Duration = Duration::from_secs(4 * LIFETIME_SECS);
/// The pause of each loop between an answer and its next request.
const PAUSE: Duration = Duration::from_millis(100);
/// Requests started this close to the start of a fetch count as "near a refresh".
const NEAR: Duration = Duration::from_millis(250);
/// Requests started in the first second (connections being opened) are left out.
const WARM_UP: Duration = Duration::from_secs(1);
/// With the default settings a token is refreshed in the background this long after it
/// arrived: the skew is cut to a quarter of a short lifetime (1 s of 4 s) and the
/// refresh-ahead window before it is a quarter of the lifetime (another 1 s).
const REFRESH_AFTER: Duration = Duration::from_secs(2);
/// Slack for a refresh point: a loop sends within about [`PAUSE`] of it, and the client may
/// read the token a little after the server wrote it.
const REFRESH_SLACK: Duration = Duration::from_millis(500);

/// One token fetch as the server saw it.
#[derive(Debug, Clone, Copy)]
struct Fetch {
    started: Instant,
    answered: Instant,
}

/// What the in-process server knows and counts.
#[derive(Default)]
struct Server {
    /// Every fetch, in order; the token `tok-<i>` is the answer of fetch `i`.
    fetches: Mutex<Vec<Fetch>>,
    /// When each issued token expires (index = token number).
    expiries: Mutex<Vec<Instant>>,
    /// `expires_in` of the next tokens.
    lifetime_secs: AtomicU64,
    api_ok: AtomicU64,
    /// API requests with no token, an unknown one, or an expired one.
    api_rejected: AtomicU64,
}

impl Server {
    fn fetch_count(&self) -> usize {
        self.fetches.lock().unwrap().len()
    }

    fn fetches(&self) -> Vec<Fetch> {
        self.fetches.lock().unwrap().clone()
    }

    async fn token(&self) -> Response<Full<Bytes>> {
        let started = Instant::now();
        tokio::time::sleep(FETCH_TIME).await;
        let answered = Instant::now();
        let lifetime = self.lifetime_secs.load(Ordering::Relaxed);
        let n = {
            let mut expiries = self.expiries.lock().unwrap();
            expiries.push(answered + Duration::from_secs(lifetime));
            self.fetches
                .lock()
                .unwrap()
                .push(Fetch { started, answered });
            expiries.len() - 1
        };
        let body = format!(
            r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":{lifetime}}}"#
        );
        Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("token response")
    }

    fn api(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let valid = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer tok-"))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| self.expiries.lock().unwrap().get(n).copied())
            .is_some_and(|expiry| Instant::now() < expiry);
        let status = if valid {
            self.api_ok.fetch_add(1, Ordering::Relaxed);
            StatusCode::OK
        } else {
            self.api_rejected.fetch_add(1, Ordering::Relaxed);
            StatusCode::UNAUTHORIZED
        };
        Response::builder()
            .status(status)
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("api response")
    }
}

/// Starts the server on its own thread and runtime; returns its address.
fn start_server(server: Arc<Server>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("server runtime");
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(listener.local_addr().expect("address"))
                .expect("report address");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let server = Arc::clone(&server);
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let server = Arc::clone(&server);
                        async move {
                            Ok::<_, Infallible>(if req.uri().path() == "/oauth/token" {
                                server.token().await
                            } else {
                                server.api(&req)
                            })
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    rx.recv().expect("server address")
}

/// A client with a fresh [`AuthMiddleware`] (default settings) over `http`.
fn client(http: &reqwest::Client, base: &Url) -> ClientWithMiddleware {
    let source = HttpTokenSource::post(base.join("/oauth/token").expect("token url"))
        .param("client_id", Param::text("storm-client"))
        .param("client_secret", Param::secret("storm-secret"))
        .add_origin(base);
    ClientBuilder::new(http.clone())
        .with(AuthMiddleware::from_source(source))
        .build()
}

/// One request: its start and latency, or `None` if it failed or was not a `200`.
async fn send(client: &ClientWithMiddleware, url: &Url) -> (Instant, Option<Duration>) {
    let start = Instant::now();
    let ok = match client.get(url.clone()).send().await {
        Ok(res) => {
            let status = res.status();
            res.bytes().await.is_ok() && status == StatusCode::OK
        }
        Err(_) => false,
    };
    (start, ok.then(|| start.elapsed()))
}

/// Percentile (nearest rank) of sorted durations, in ms.
fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    ms(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn summary(label: &str, mut lat: Vec<Duration>) -> Vec<Duration> {
    lat.sort_unstable();
    println!(
        "  {label:<22} n={:>7}  p50 {:>7.3} ms  p90 {:>7.3} ms  p99 {:>7.3} ms  max {:>8.3} ms",
        lat.len(),
        pct(&lat, 50.0),
        pct(&lat, 90.0),
        pct(&lat, 99.0),
        lat.last().map_or(f64::NAN, |d| ms(*d)),
    );
    lat
}

/// (a) 1,000 loops for four lifetimes. Returns the broken invariants.
async fn refresh_ahead(server: &Server, http: &reqwest::Client, base: &Url) -> Vec<String> {
    let mut broken = Vec::new();
    let api = base.join("/v1/campaigns").expect("api url");
    let client = client(http, base);
    server.lifetime_secs.store(LIFETIME_SECS, Ordering::Relaxed);
    let fetches_before = server.fetch_count();
    assert!(send(&client, &api).await.1.is_some(), "priming request");

    let t0 = Instant::now();
    let stop = t0 + RUN;
    let loops: Vec<_> = (0..CONCURRENCY)
        .map(|i| {
            let client = client.clone();
            let api = api.clone();
            tokio::spawn(async move {
                // Spread the loops over one pause so they do not move in lock step.
                tokio::time::sleep(PAUSE.mul_f64(i as f64 / CONCURRENCY as f64)).await;
                let mut seen = Vec::with_capacity(RUN.as_millis() as usize / 100);
                let mut failed = 0u64;
                while Instant::now() < stop {
                    match send(&client, &api).await {
                        (start, Some(lat)) => seen.push((start, lat)),
                        (_, None) => failed += 1,
                    }
                    tokio::time::sleep(PAUSE).await;
                }
                (seen, failed)
            })
        })
        .collect();
    let mut requests = Vec::new();
    let mut failed = 0;
    for l in loops {
        let (seen, f) = l.await.expect("request loop");
        requests.extend(seen);
        failed += f;
    }
    let ended = Instant::now();

    // The fetches of this phase: the priming one, then one per refresh point.
    let fetches = server.fetches()[fetches_before..].to_vec();
    let refreshes: Vec<Fetch> = fetches[1..].to_vec();
    let mut duplicates = 0;
    let mut missed = 0;
    for pair in fetches.windows(2) {
        let (prev, next) = (pair[0], pair[1]);
        if next.started < prev.answered + REFRESH_AFTER {
            duplicates += 1;
        } else if next.started > prev.answered + REFRESH_AFTER + REFRESH_SLACK {
            missed += 1;
        }
    }
    let last = fetches.last().expect("the priming fetch");
    let overdue = last.answered + REFRESH_AFTER + REFRESH_SLACK < ended;
    missed += usize::from(overdue);
    let points = refreshes.len() - duplicates + missed;

    let elapsed = ended - t0;
    println!(
        "(a) {CONCURRENCY} loops, pause {} ms, {:.1} s ({:.1} token lifetimes of {LIFETIME_SECS} s), \
         {} requests ({:.0}/s), {failed} failed",
        PAUSE.as_millis(),
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() / LIFETIME_SECS as f64,
        requests.len(),
        requests.len() as f64 / elapsed.as_secs_f64(),
    );
    let starts: Vec<String> = refreshes
        .iter()
        .map(|f| format!("{:.3}", f.started.duration_since(t0).as_secs_f64()))
        .collect();
    println!(
        "  refresh fetches: {} at [{}] s; refresh points passed: {points}; fetches per refresh: {:.2} \
         (duplicates {duplicates}, missed {missed}); per token lifetime: {:.2}",
        refreshes.len(),
        starts.join(", "),
        refreshes.len() as f64 / points.max(1) as f64,
        refreshes.len() as f64 / (elapsed.as_secs_f64() / LIFETIME_SECS as f64),
    );
    let gaps: Vec<String> = fetches
        .windows(2)
        .map(|p| format!("{:.3}", (p[1].started - p[0].answered).as_secs_f64()))
        .collect();
    println!(
        "  time from a token's arrival to the next fetch: [{}] s (refresh point {} s)",
        gaps.join(", "),
        REFRESH_AFTER.as_secs()
    );

    // Requests near a refresh; as a control, windows of the same size midway between
    // refreshes (a hiccup of the machine lands in either alike); and the steady state: all
    // requests not near a refresh.
    let midway: Vec<Instant> = refreshes
        .iter()
        .map(|f| f.started + (REFRESH_AFTER + FETCH_TIME) / 2)
        .filter(|m| *m + NEAR < ended)
        .collect();
    let within = |start: Instant, at: Instant| {
        let d = if start > at { start - at } else { at - start };
        d <= NEAR
    };
    let mut near = Vec::new();
    let mut steady = Vec::new();
    let mut by_window = vec![Vec::new(); refreshes.len()];
    let mut by_control = vec![Vec::new(); midway.len()];
    let offset = |i: Instant| i.duration_since(t0).as_secs_f64();
    let mut slowest_near: Option<(Duration, f64)> = None;
    for (start, lat) in requests {
        if start < t0 + WARM_UP {
            continue;
        }
        if let Some(i) = refreshes.iter().position(|f| within(start, f.started)) {
            near.push(lat);
            by_window[i].push(lat);
            let at = start.duration_since(t0).as_secs_f64() - offset(refreshes[i].started);
            if slowest_near.is_none_or(|(l, _)| lat > l) {
                slowest_near = Some((lat, at));
            }
            continue;
        }
        if let Some(i) = midway.iter().position(|m| within(start, *m)) {
            by_control[i].push(lat);
        }
        steady.push(lat);
    }
    let near = summary("near a refresh (±250ms)", near);
    let steady = summary("steady state", steady);
    summary("midway (±250ms)", by_control.concat());
    let p99s = |windows: &mut [Vec<Duration>]| {
        windows
            .iter_mut()
            .map(|w| {
                w.sort_unstable();
                format!("{:.1}", pct(w, 99.0))
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "  p99 per window, near each refresh: [{}] ms; midway: [{}] ms",
        p99s(&mut by_window),
        p99s(&mut by_control)
    );
    if let Some((lat, at)) = slowest_near {
        println!(
            "  slowest request near a refresh: {:.3} ms, started {:+.0} ms from the fetch's start",
            ms(lat),
            at * 1e3
        );
    }
    let waited = |v: &[Duration]| v.iter().filter(|d| **d >= FETCH_TIME).count();
    println!(
        "  requests that took the fetch's time (>= {} ms) or more: near {}, steady {}; \
         p99 near / steady: {:.2}",
        FETCH_TIME.as_millis(),
        waited(&near),
        waited(&steady),
        pct(&near, 99.0) / pct(&steady, 99.0),
    );

    if duplicates > 0 || missed > 0 || refreshes.is_empty() {
        broken.push(format!(
            "(a) one fetch per refresh: {} fetches for {points} refresh points \
             ({duplicates} duplicate, {missed} missed)",
            refreshes.len()
        ));
    }
    if failed > 0 {
        broken.push(format!("(a) {failed} requests failed or were rejected"));
    }
    broken
}

/// Fires `n` requests at once. With `release`, they all wait for it and are timed from
/// it; without, each from its own start. Returns each request's start and latency, and
/// the number that failed.
async fn burst(
    client: &ClientWithMiddleware,
    api: &Url,
    n: usize,
    release: Option<tokio::sync::watch::Receiver<bool>>,
) -> (Vec<(Instant, Duration)>, usize) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let client = client.clone();
            let api = api.clone();
            let release = release.clone();
            tokio::spawn(async move {
                if let Some(mut release) = release {
                    release.wait_for(|go| *go).await.expect("release");
                }
                let (start, lat) = send(&client, &api).await;
                lat.map(|lat| (start, lat))
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(n);
    let mut failed = 0;
    for t in tasks {
        match t.await.expect("burst request") {
            Some(d) => lat.push(d),
            None => failed += 1,
        }
    }
    (lat, failed)
}

/// (b) An expired token under a burst of 1,000. Returns the broken invariants.
async fn expired_burst(server: &Server, http: &reqwest::Client, base: &Url) -> Vec<String> {
    let mut broken = Vec::new();
    let api = base.join("/v1/campaigns").expect("api url");

    // Each request's own time: the same burst with a fresh cached token.
    server.lifetime_secs.store(3600, Ordering::Relaxed);
    let reference = client(http, base);
    assert!(send(&reference, &api).await.1.is_some(), "priming request");
    let (go, release) = tokio::sync::watch::channel(false);
    let released = tokio::spawn({
        let reference = reference.clone();
        let api = api.clone();
        async move { burst(&reference, &api, CONCURRENCY, Some(release)).await }
    });
    // Let the 1,000 tasks reach the release point, then let them all go at once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    go.send(true).expect("release the burst");
    let (own, own_failed) = released.await.expect("reference burst");
    let own: Vec<Duration> = own.into_iter().map(|(_, d)| d).collect();

    // A token that lives 1 s, cached, then left to expire with no request in between.
    server.lifetime_secs.store(1, Ordering::Relaxed);
    let client = client(http, base);
    assert!(send(&client, &api).await.1.is_some(), "priming request");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    server.lifetime_secs.store(LIFETIME_SECS, Ordering::Relaxed);
    let before = server.fetch_count();
    let (seen, failed) = burst(&client, &api, CONCURRENCY, None).await;
    let fetches = server.fetches()[before..].to_vec();
    let lat: Vec<Duration> = seen.iter().map(|(_, d)| *d).collect();
    // When each request finished, counted from the moment the server answered the fetch.
    let after: Vec<Duration> = match fetches.first() {
        Some(f) => seen
            .iter()
            .map(|(start, d)| (*start + *d).saturating_duration_since(f.answered))
            .collect(),
        None => Vec::new(),
    };

    println!(
        "(b) {CONCURRENCY} requests at once on an expired cached token: {} fetch(es), {failed} failed",
        fetches.len()
    );
    let fetch_time = fetches
        .first()
        .map_or(Duration::ZERO, |f| f.answered - f.started);
    let own = summary("fresh token, released", own);
    let lat = summary("expired token", lat);
    summary("  done after the fetch", after);
    let own_max = own.last().copied().unwrap_or_default();
    let worst = lat.last().copied().unwrap_or_default();
    println!(
        "  max {:.1} ms vs fetch {:.1} ms + own max {:.1} ms = {:.1} ms: {}",
        ms(worst),
        ms(fetch_time),
        ms(own_max),
        ms(fetch_time + own_max),
        if worst <= fetch_time + own_max {
            "within"
        } else {
            "over"
        }
    );
    if fetches.len() != 1 {
        broken.push(format!(
            "(b) one fetch for the expired token: {} fetches",
            fetches.len()
        ));
    }
    if failed + own_failed > 0 {
        broken.push(format!(
            "(b) {} requests failed or were rejected",
            failed + own_failed
        ));
    }
    broken
}

fn main() -> ExitCode {
    let server = Arc::new(Server::default());
    let addr = start_server(Arc::clone(&server));
    let base = Url::parse(&format!("http://{addr}")).expect("base url");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("client runtime");
    let http = reqwest::Client::new();

    println!(
        "refresh storms: token endpoint answers in {} ms, tokens live {LIFETIME_SECS} s, default layer settings, real clock",
        FETCH_TIME.as_millis()
    );
    let mut broken = rt.block_on(refresh_ahead(&server, &http, &base));
    broken.extend(rt.block_on(expired_burst(&server, &http, &base)));
    println!(
        "api: {} answered 200, {} rejected (no, unknown or expired token)",
        server.api_ok.load(Ordering::Relaxed),
        server.api_rejected.load(Ordering::Relaxed)
    );
    if server.api_rejected.load(Ordering::Relaxed) > 0 {
        broken.push("requests went out with an expired or unknown token".into());
    }
    if broken.is_empty() {
        println!("storm invariants hold");
        ExitCode::SUCCESS
    } else {
        for b in &broken {
            eprintln!("BROKEN: {b}");
        }
        ExitCode::FAILURE
    }
}
