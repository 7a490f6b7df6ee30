//! What the auth layers cost per request under load, as process CPU time, side by side with
//! the layers a user could write instead.
//!
//! ```sh
//! taskset -c 0 cargo bench --bench load               # one process run, ~2.5 minutes
//! LOAD_RUNS=3 taskset -c 0 cargo bench --bench load   # 3 process runs and their medians
//! ```
//!
//! On a 2-core machine only runs pinned to one core (`taskset -c 0`) are stable: unpinned,
//! the client and server threads share the cores with each other and with everything else
//! that runs, and a run differs from the next by more than the layers cost.
//!
//! # What runs
//!
//! An in-process hyper 1 HTTP/1.1 server (keep-alive) on 127.0.0.1 answers every request with
//! a canned `200` and a 2-byte body. It runs on its own thread with a current-thread tokio
//! runtime; the clients run on another current-thread runtime on the main thread. Every
//! variant is a client built once, sending the same `GET /publishers/1001/feed`:
//!
//! * `A`  a bare `reqwest::Client`, and `A'` a second one built the same way (the order check);
//! * `B`  an empty `reqwest_middleware::ClientWithMiddleware`;
//! * `C`  [`AuthMiddleware`] with replay on (the default), token cached before measuring;
//! * `D`  the same built with `.without_replay()`;
//! * `E`  [`pentaleap::ApiKeyAuth`] (Pentaleap feeds: the key of publisher 1001 is chosen from the path);
//! * `F`  a plain `reqwest::Client` whose `default_headers` hold a static `Authorization`;
//! * `G`  a minimal bearer middleware (`benches/common`): `ArcSwap<HeaderValue>` load, header insert,
//!   `next.run`;
//! * `H`  a minimal static-header middleware (`benches/common`): `HeaderValue` clone, insert,
//!   `next.run`;
//! * `P`  the peers' stack: an empty `ClientWithMiddleware` of reqwest-middleware 0.4 over
//!   reqwest 0.12, the versions the peer crates are built for (their baseline);
//! * `Q`  a minimal arc-swap bearer middleware like `G`, on the peers' stack (does the stack
//!   move the floor?);
//! * `R`  peer `reqwest-auth` 1.0 (`AuthorizationHeaderMiddleware` over a `token-source` that
//!   hands out a cached `Bearer` value);
//! * `S`  peer `aliri_reqwest` 0.5 (`AccessTokenMiddleware` over an `aliri_tokens` watcher of a
//!   one-hour constant token, attaching it to the server's host).
//!
//! `P` to `S` run on reqwest 0.12 and reqwest-middleware 0.4, so their "ratio to B" is to `P`,
//! the empty chain of their own stack, paired per round like the others.
//!
//! The crate's layers use an in-memory token source (a one-hour bearer token) and are scoped
//! to the server's origin. The server counts the requests that carry the expected bearer
//! token and API key, so a layer that stops attaching its header fails the run; so does any
//! answer other than `200`.
//!
//! # Method
//!
//! * Cost: process CPU time (`clock_gettime(CLOCK_PROCESS_CPUTIME_ID)`) per request. The
//!   server's CPU is in it too, the same for every variant; ratios to `A` and `B` include it.
//! * Concurrency: `c=1` (sequential awaits) and `c=64` (64 request loops joined on the client
//!   runtime, each doing 1/64 of the requests).
//! * Warm-up: before measuring at a concurrency, every variant runs a quarter of a round's
//!   requests at that concurrency (connections opened, allocator and caches warm).
//! * Interleaved rounds: each round runs every variant once, in an order shuffled per round
//!   (seeded; the seed is printed). Ratios are paired per round (variant / `A` and variant /
//!   `B` of the same round); the table gives per variant the median over rounds and its
//!   min..max. `A'`/`A` shows whether the position in a round biases the figures.
//! * With `LOAD_RUNS` > 1 the benchmark runs itself that many times as separate processes
//!   (seeds `LOAD_SEED`, `LOAD_SEED + 1`, ...) and prints, per variant, the median of the
//!   per-run medians and their min..max.
//!
//! # Knobs (environment variables)
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `LOAD_ROUNDS` | 10 | rounds per concurrency |
//! | `LOAD_REQUESTS_C1` | 20000 | requests per variant per round at c=1 |
//! | `LOAD_REQUESTS_C64` | 32000 | requests per variant per round at c=64 (rounded down to a multiple of 64) |
//! | `LOAD_SEED` | 1 | seed of the per-round shuffle |
//! | `LOAD_RUNS` | 1 | process runs; above 1, also the medians over runs |

#![cfg_attr(not(unix), allow(dead_code, unused_imports))]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures_util::future::join_all;
use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware};
use reqwest_partner_auth::{pentaleap, AuthMiddleware, TokenCache};
use tokio::runtime::Runtime;
use url::Url;

mod common;
use common::{auth_header, ArcSwapBearer, InMemorySource, StaticHeader, TOKEN};

const API_KEY: &str = "bench-key-0123456789abcdef0";
const PUBLISHER: &str = "1001";
const PATH: &str = "/publishers/1001/feed";
const CONCURRENCIES: [usize; 2] = [1, 64];
/// The prefix of the machine-readable result lines a parent process reads from its children
/// (printed when `LOAD_ROWS` is set).
const ROW: &str = "#row";

/// Requests the server has answered, and how many carried the expected credentials.
#[derive(Default)]
struct Hits {
    total: AtomicU64,
    bearer: AtomicU64,
    api_key: AtomicU64,
}

impl Hits {
    fn snapshot(&self) -> [u64; 3] {
        [
            self.total.load(Ordering::SeqCst),
            self.bearer.load(Ordering::SeqCst),
            self.api_key.load(Ordering::SeqCst),
        ]
    }
}

/// Starts the server on its own thread (current-thread runtime) and returns its address.
fn start_server(hits: Arc<Hits>) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let addr = listener.local_addr().expect("local address");
    let bearer = auth_header("Bearer", TOKEN);
    let api_key = auth_header("apikey", API_KEY);
    std::thread::Builder::new()
        .name("load-server".into())
        .spawn(move || {
            runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    stream.set_nodelay(true).expect("nodelay");
                    let (hits, bearer, api_key) = (hits.clone(), bearer.clone(), api_key.clone());
                    let service = service_fn(move |req: hyper::Request<Incoming>| {
                        hits.total.fetch_add(1, Ordering::Relaxed);
                        match req.headers().get(AUTHORIZATION) {
                            Some(v) if *v == bearer => hits.bearer.fetch_add(1, Ordering::Relaxed),
                            Some(v) if *v == api_key => {
                                hits.api_key.fetch_add(1, Ordering::Relaxed)
                            }
                            _ => 0,
                        };
                        async {
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(
                                Bytes::from_static(b"ok"),
                            )))
                        }
                    });
                    tokio::spawn(async move {
                        let _ = http1::Builder::new()
                            .keep_alive(true)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            })
        })
        .expect("server thread");
    addr
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[cfg(unix)]
fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

enum Client {
    Plain(reqwest::Client),
    Chain(ClientWithMiddleware),
    /// The peers' stack: reqwest-middleware 0.4 over reqwest 0.12.
    PeerChain(reqwest_middleware04::ClientWithMiddleware),
}

impl Client {
    /// One request; `true` for a `200` whose body was read.
    async fn get_ok(&self, url: &Url) -> bool {
        let response = match self {
            Client::Plain(c) => c.get(url.clone()).send().await.ok(),
            Client::Chain(c) => c.get(url.clone()).send().await.ok(),
            Client::PeerChain(c) => {
                return match c.get(url.clone()).send().await {
                    Ok(r) if r.status() == StatusCode::OK => r.bytes().await.is_ok(),
                    _ => false,
                }
            }
        };
        match response {
            Some(r) if r.status() == StatusCode::OK => r.bytes().await.is_ok(),
            _ => false,
        }
    }
}

/// Which credential the server must see on every request of a variant.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    Nothing,
    Bearer,
    ApiKey,
}

struct Variant {
    key: &'static str,
    name: &'static str,
    client: Client,
    expect: Expect,
}

/// The key of the empty chain a variant's "ratio to B" is paired with: `P` for the variants on
/// the peers' stack, `B` for the others.
fn baseline_of(key: &str) -> &'static str {
    match key {
        "P" | "Q" | "R" | "S" => "P",
        _ => "B",
    }
}

/// The peers' variants `P` to `S`, on reqwest 0.12 and reqwest-middleware 0.4. The `aliri`
/// watcher spawns its refresh task, so this runs on the client runtime.
async fn peer_variants(origin: &Url) -> Vec<Variant> {
    use reqwest_middleware04::{ClientBuilder as PeerBuilder, Middleware as PeerMiddleware};

    let bearer = auth_header("Bearer", TOKEN);
    let chain = |mw: Option<Arc<dyn PeerMiddleware>>| {
        let builder = PeerBuilder::new(reqwest012::Client::new());
        Client::PeerChain(match mw {
            Some(mw) => builder.with_arc(mw).build(),
            None => builder.build(),
        })
    };
    let source: Arc<dyn token_source::TokenSource> =
        Arc::new(CachedBearer(format!("Bearer {TOKEN}")));
    let watcher = aliri_tokens::TokenWatcher::spawn_from_token_source(
        aliri_tokens::sources::ConstTokenSource::new(TOKEN)
            .with_token_valid_for(aliri_clock::DurationSecs(3600)),
        aliri_tokens::jitter::NullJitter,
        aliri_tokens::backoff::ErrorBackoffConfig::default(),
    )
    .await
    .expect("a constant token");
    let host = origin.host_str().expect("host").to_owned();
    let v = |key, name, client, expect| Variant {
        key,
        name,
        client,
        expect,
    };
    vec![
        v(
            "P",
            "peers' stack: empty chain",
            chain(None),
            Expect::Nothing,
        ),
        v(
            "Q",
            "peers' stack: minimal arc-swap",
            chain(Some(Arc::new(PeerArcSwapBearer(ArcSwap::from_pointee(
                bearer,
            ))))),
            Expect::Bearer,
        ),
        v(
            "R",
            "peer reqwest-auth 1.0",
            chain(Some(Arc::new(
                reqwest_auth::AuthorizationHeaderMiddleware::from(source),
            ))),
            Expect::Bearer,
        ),
        v(
            "S",
            "peer aliri_reqwest 0.5",
            chain(Some(Arc::new(
                aliri_reqwest::AccessTokenMiddleware::new(watcher)
                    .with_predicate(aliri_reqwest::ExactHostMatch::new(host)),
            ))),
            Expect::Bearer,
        ),
    ]
}

/// A `token-source` for `reqwest-auth` as a caching source hands it out: a clone of the
/// cached header value.
#[derive(Debug)]
struct CachedBearer(String);

#[async_trait::async_trait]
impl token_source::TokenSource for CachedBearer {
    async fn token(&self) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.0.clone())
    }
}

/// The minimal arc-swap bearer layer of `benches/common`, written for reqwest-middleware 0.4.
struct PeerArcSwapBearer(ArcSwap<http::HeaderValue>);

#[async_trait::async_trait]
impl reqwest_middleware04::Middleware for PeerArcSwapBearer {
    async fn handle(
        &self,
        mut req: reqwest012::Request,
        extensions: &mut http::Extensions,
        next: reqwest_middleware04::Next<'_>,
    ) -> reqwest_middleware04::Result<reqwest012::Response> {
        req.headers_mut()
            .insert(AUTHORIZATION, (**self.0.load()).clone());
        next.run(req, extensions).await
    }
}

fn variants(origin: &Url) -> (Vec<Variant>, [TokenCache<InMemorySource>; 2]) {
    let bearer = auth_header("Bearer", TOKEN);
    let chain = |mw: Option<Arc<dyn Middleware>>| {
        let builder = ClientBuilder::new(reqwest::Client::new());
        Client::Chain(match mw {
            Some(mw) => builder.with_arc(mw).build(),
            None => builder.build(),
        })
    };
    let caches = [
        TokenCache::new(InMemorySource),
        TokenCache::new(InMemorySource),
    ];
    let replay_on = AuthMiddleware::with_cache(caches[0].clone())
        .add_origin(origin)
        .build();
    let replay_off = AuthMiddleware::with_cache(caches[1].clone())
        .add_origin(origin)
        .without_replay()
        .build();
    let keys = pentaleap::ApiKeys::new()
        .publisher(PUBLISHER, API_KEY)
        .expect("legal key");
    let mut default_headers = HeaderMap::new();
    default_headers.insert(AUTHORIZATION, bearer.clone());
    let with_defaults = reqwest::Client::builder()
        .default_headers(default_headers)
        .build()
        .expect("client");
    let v = |key, name, client, expect| Variant {
        key,
        name,
        client,
        expect,
    };
    let list = vec![
        v(
            "A",
            "reqwest::Client",
            Client::Plain(reqwest::Client::new()),
            Expect::Nothing,
        ),
        v(
            "A'",
            "reqwest::Client, a second one",
            Client::Plain(reqwest::Client::new()),
            Expect::Nothing,
        ),
        v(
            "B",
            "empty ClientWithMiddleware",
            chain(None),
            Expect::Nothing,
        ),
        v(
            "C",
            "AuthMiddleware, replay on",
            chain(Some(Arc::new(replay_on))),
            Expect::Bearer,
        ),
        v(
            "D",
            "AuthMiddleware, without_replay",
            chain(Some(Arc::new(replay_off))),
            Expect::Bearer,
        ),
        v(
            "E",
            "pentaleap::ApiKeyAuth",
            chain(Some(Arc::new(pentaleap::ApiKeyAuth::with_base_url(
                keys, origin,
            )))),
            Expect::ApiKey,
        ),
        v(
            "F",
            "reqwest default_headers",
            Client::Plain(with_defaults),
            Expect::Bearer,
        ),
        v(
            "G",
            "minimal arc-swap bearer layer",
            chain(Some(Arc::new(ArcSwapBearer(ArcSwap::from_pointee(
                bearer.clone(),
            ))))),
            Expect::Bearer,
        ),
        v(
            "H",
            "minimal static-header layer",
            chain(Some(Arc::new(StaticHeader(auth_header("apikey", API_KEY))))),
            Expect::ApiKey,
        ),
    ];
    (list, caches)
}

/// `n` requests in `concurrency` loops; returns the number of failures.
async fn batch(client: &Client, url: &Url, n: usize, concurrency: usize) -> usize {
    if concurrency == 1 {
        let mut failures = 0;
        for _ in 0..n {
            failures += usize::from(!client.get_ok(url).await);
        }
        return failures;
    }
    let per_loop = n / concurrency;
    join_all((0..concurrency).map(|_| async move {
        let mut failures = 0;
        for _ in 0..per_loop {
            failures += usize::from(!client.get_ok(url).await);
        }
        failures
    }))
    .await
    .into_iter()
    .sum()
}

struct Measured {
    cpu_ns_per_request: f64,
    failures: usize,
}

/// Runs one batch of a variant, checks what the server saw, and measures its CPU time.
#[cfg(unix)]
fn run_batch(
    rt: &Runtime,
    hits: &Hits,
    variant: &Variant,
    url: &Url,
    n: usize,
    concurrency: usize,
) -> Measured {
    let before = hits.snapshot();
    let start = cpu_time();
    let mut failures = rt.block_on(batch(&variant.client, url, n, concurrency));
    let cpu = cpu_time() - start;
    let after = hits.snapshot();
    let seen = |i: usize| (after[i] - before[i]) as usize;
    let (bearer, api_key) = match variant.expect {
        Expect::Nothing => (0, 0),
        Expect::Bearer => (n, 0),
        Expect::ApiKey => (0, n),
    };
    if seen(0) != n || seen(1) != bearer || seen(2) != api_key {
        eprintln!(
            "{}: the server saw {} requests, {} with the bearer token, {} with the api key; \
             expected {n}, {bearer}, {api_key}",
            variant.key,
            seen(0),
            seen(1),
            seen(2)
        );
        failures = failures.max(1);
    }
    Measured {
        cpu_ns_per_request: cpu.as_nanos() as f64 / n as f64,
        failures,
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// Median, min and max.
fn summary(mut values: Vec<f64>) -> [f64; 3] {
    let m = median(&mut values);
    [m, values[0], values[values.len() - 1]]
}

/// One row of a table: ns per request and the ratios to A and B, each median, min, max.
struct Row {
    key: String,
    name: String,
    ns: [f64; 3],
    to_a: [f64; 3],
    to_b: [f64; 3],
}

fn print_table(title: &str, rows: &[Row], range_label: &str) {
    println!("\n{title}");
    println!(
        "{:<3} {:<31} {:>20}  {:>22}  {:>22}",
        "", "variant", "CPU ns/req", "ratio to A", "ratio to B"
    );
    println!(
        "{:<3} {:<31} {:>20}  {:>22}  {:>22}",
        "", "", range_label, range_label, range_label
    );
    for r in rows {
        println!(
            "{:<3} {:<31} {:>6.0} ({:>5.0}..{:>5.0})  {:>6.3} ({:.3}..{:.3})  {:>6.3} ({:.3}..{:.3})",
            r.key, r.name, r.ns[0], r.ns[1], r.ns[2], r.to_a[0], r.to_a[1], r.to_a[2], r.to_b[0],
            r.to_b[1], r.to_b[2]
        );
    }
}

/// One process run: every concurrency, every round. Prints its tables and result rows.
#[cfg(unix)]
fn run() -> bool {
    let rounds = env_usize("LOAD_ROUNDS", 10).max(1);
    let seed = env_usize("LOAD_SEED", 1) as u64;
    let requests = [
        env_usize("LOAD_REQUESTS_C1", 20_000).max(1),
        env_usize("LOAD_REQUESTS_C64", 32_000).max(64) / 64 * 64,
    ];
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    if cores != 1 {
        eprintln!(
            "note: this process may run on {cores} cores; on a 2-core machine only runs pinned \
             to one core (taskset -c 0) are stable"
        );
    }

    let hits = Arc::new(Hits::default());
    let addr = start_server(hits.clone());
    let origin = Url::parse(&format!("http://{addr}")).expect("origin");
    let url = origin.join(PATH).expect("url");
    let rt = runtime();
    let (mut variants, caches) = variants(&origin);
    variants.extend(rt.block_on(peer_variants(&origin)));
    for cache in &caches {
        rt.block_on(cache.token())
            .expect("token cached before measuring");
    }

    let mut rng = StdRng::seed_from_u64(seed);
    let mut valid = true;
    for (concurrency, n) in CONCURRENCIES.into_iter().zip(requests) {
        let n = if concurrency == 1 {
            n
        } else {
            n / concurrency * concurrency
        };
        for v in &variants {
            // A multiple of the concurrency, as the batch runs `concurrency` equal loops.
            let warm_n = (n / 4).max(concurrency) / concurrency * concurrency;
            let warm = run_batch(&rt, &hits, v, &url, warm_n, concurrency);
            if warm.failures > 0 {
                eprintln!("{}: {} failures during warm-up", v.key, warm.failures);
                valid = false;
            }
        }
        // ns[variant][round]
        let mut ns = vec![Vec::with_capacity(rounds); variants.len()];
        let mut order: Vec<usize> = (0..variants.len()).collect();
        let wall = Instant::now();
        for round in 1..=rounds {
            order.shuffle(&mut rng);
            for &i in &order {
                let m = run_batch(&rt, &hits, &variants[i], &url, n, concurrency);
                if m.failures > 0 {
                    eprintln!("{}: {} failed requests", variants[i].key, m.failures);
                    valid = false;
                }
                ns[i].push(m.cpu_ns_per_request);
            }
            eprintln!(
                "c={concurrency}: round {round}/{rounds} done ({:.0?})",
                wall.elapsed()
            );
        }
        let index = |key: &str| {
            variants
                .iter()
                .position(|v| v.key == key)
                .expect("a variant of that key")
        };
        let a = index("A");
        let rows: Vec<Row> = variants
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let b = index(baseline_of(v.key));
                let ratio = |base: usize| {
                    summary(ns[i].iter().zip(&ns[base]).map(|(x, y)| x / y).collect())
                };
                Row {
                    key: v.key.into(),
                    name: v.name.into(),
                    ns: summary(ns[i].clone()),
                    to_a: ratio(a),
                    to_b: ratio(b),
                }
            })
            .collect();
        print_table(
            &format!(
                "c={concurrency}: {n} requests per variant per round, {rounds} rounds, order \
                 shuffled per round (seed {seed}); median over rounds (min..max)"
            ),
            &rows,
            "median (min..max)",
        );
        for r in rows
            .iter()
            .filter(|_| std::env::var_os("LOAD_ROWS").is_some())
        {
            println!(
                "{ROW}\t{concurrency}\t{}\t{}\t{}",
                r.key,
                r.name,
                [r.ns, r.to_a, r.to_b]
                    .iter()
                    .flatten()
                    .map(|x| format!("{x:.6}"))
                    .collect::<Vec<_>>()
                    .join("\t")
            );
        }
    }
    for cache in &caches {
        let lease = rt.block_on(cache.token()).expect("token");
        if lease.generation() != 1 {
            eprintln!("the token was fetched more than once");
            valid = false;
        }
    }
    if !valid {
        println!("\nINVALID RUN: a variant failed (see above)");
    }
    valid
}

/// One variant at one concurrency across process runs: per run, the nine numbers of its row
/// (ns, ratio to A, ratio to B; each median, min, max over rounds).
struct AcrossRuns {
    concurrency: usize,
    key: String,
    name: String,
    runs: Vec<[f64; 9]>,
}

/// Runs `runs` child processes and prints the medians of their per-run medians.
fn run_children(runs: usize) -> bool {
    let exe = std::env::current_exe().expect("own path");
    let seed = env_usize("LOAD_SEED", 1);
    let mut results: Vec<AcrossRuns> = Vec::new();
    let mut valid = true;
    for run in 0..runs {
        eprintln!("process run {}/{runs}", run + 1);
        let output = Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .env("LOAD_RUNS", "1")
            .env("LOAD_ROWS", "1")
            .env("LOAD_SEED", (seed + run).to_string())
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run the benchmark");
        let stdout = String::from_utf8_lossy(&output.stdout);
        for line in stdout.lines().filter(|l| !l.starts_with(ROW)) {
            println!("{line}");
        }
        valid &= output.status.success();
        for (i, line) in stdout.lines().filter(|l| l.starts_with(ROW)).enumerate() {
            let fields: Vec<&str> = line.split('\t').collect();
            let numbers: Vec<f64> = fields[4..]
                .iter()
                .map(|f| f.parse().expect("number"))
                .collect();
            if results.len() == i {
                results.push(AcrossRuns {
                    concurrency: fields[1].parse().expect("concurrency"),
                    key: fields[2].to_owned(),
                    name: fields[3].to_owned(),
                    runs: Vec::new(),
                });
            }
            results[i]
                .runs
                .push(numbers.try_into().expect("nine numbers"));
        }
    }
    for concurrency in CONCURRENCIES {
        let rows: Vec<Row> = results
            .iter()
            .filter(|r| r.concurrency == concurrency)
            .map(|r| {
                // The median of the per-run medians, and the min..max of those medians.
                let of = |i: usize| summary(r.runs.iter().map(|run| run[i]).collect());
                Row {
                    key: r.key.clone(),
                    name: r.name.clone(),
                    ns: of(0),
                    to_a: of(3),
                    to_b: of(6),
                }
            })
            .collect();
        print_table(
            &format!(
                "c={concurrency}, {runs} process runs: median of the per-run medians \
                 (min..max of the per-run medians)"
            ),
            &rows,
            "median (run min..max)",
        );
    }
    if !valid {
        println!("\nINVALID: at least one process run failed");
    }
    valid
}

#[cfg(unix)]
fn main() {
    let runs = env_usize("LOAD_RUNS", 1).max(1);
    let valid = if runs == 1 { run() } else { run_children(runs) };
    if !valid {
        std::process::exit(1);
    }
}

#[cfg(not(unix))]
fn main() {
    eprintln!("the load benchmark reads process CPU time through rustix: unix only");
}
