//! A fleet of OS processes shares one token: through a real `redis-server` (and a
//! `FileStore` for comparison), each process with its own layer and 32 concurrent requests,
//! against a local partner whose tokens live 2 seconds and whose refresh tokens work once.
//!
//! The processes are this test binary re-run with only the ignored `fleet_child` test. Where
//! `redis-server` is missing the tests say so and pass, unless
//! `PARTNER_AUTH_REQUIRE_SERVICES=1`: then they fail.

#[path = "fleet/support.rs"]
mod support;

#[path = "fleet/faults.rs"]
mod faults;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::oauth2::{
    ClientCredentialsSource, OAuthClient, RefreshTokenSource, TokenUrl,
};
use reqwest_partner_auth::store::{FileStore, RedisStore, SharedSource, StoredTokens, TokenStore};
use reqwest_partner_auth::AuthMiddleware;
use support::{run_children, ChildReport, Partner, RedisServer, CHILD_ENV, LIFETIME};
use url::Url;

/// Requests each child keeps in flight.
const CONCURRENCY: usize = 32;
/// The pause of each of them between two requests.
const PAUSE: Duration = Duration::from_millis(50);
/// The key of the client-credentials token, and of the rotating login.
const CC_KEY: &str = "partner/fleet-client";
const LOGIN_KEY: &str = "partner/fleet-login";

/// One fleet at a time: they share two cores.
fn one_fleet_at_a_time() -> MutexGuard<'static, ()> {
    static FLEET: Mutex<()> = Mutex::new(());
    FLEET.lock().unwrap_or_else(|p| p.into_inner())
}

/// How a single process with the default cache fetches 2-second tokens: once per half
/// lifetime (the refresh ahead starts when half of a short token's lifetime is left).
fn single_process_fetches(run: Duration) -> f64 {
    run.as_secs_f64() / (LIFETIME.as_secs_f64() / 2.0)
}

#[derive(Clone, Copy, Debug)]
enum Store {
    File,
    Redis,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    ClientCredentials,
    RotatingRefreshToken,
}

struct Outcome {
    token_hits: usize,
    reused: usize,
    reports: Vec<ChildReport>,
}

impl Outcome {
    fn ok(&self) -> usize {
        self.reports.iter().map(|r| r.ok).sum()
    }
    fn failed(&self) -> usize {
        self.reports.iter().map(|r| r.failed).sum()
    }
}

/// Runs `processes` children on `store` for `run` against a fresh partner.
fn fleet(
    redis: Option<&RedisServer>,
    store: Store,
    mode: Mode,
    processes: usize,
    run: Duration,
) -> Outcome {
    let partner = Partner::start();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("fleet-test:{}:{:?}:", std::process::id(), Instant::now());
    let mut env = vec![
        ("FLEET_BASE", partner.base().to_string()),
        ("FLEET_RUN_MS", run.as_millis().to_string()),
        (
            "FLEET_MODE",
            match mode {
                Mode::ClientCredentials => "cc".into(),
                Mode::RotatingRefreshToken => "refresh".into(),
            },
        ),
    ];
    let shared: Arc<dyn TokenStore> = match store {
        Store::File => {
            let path = dir.path().join("tokens.json");
            env.push(("FLEET_FILE", path.display().to_string()));
            Arc::new(FileStore::new(path))
        }
        Store::Redis => {
            let url = redis.expect("a redis server").url();
            env.push(("FLEET_REDIS", url.clone()));
            env.push(("FLEET_PREFIX", prefix.clone()));
            Arc::new(RedisStore::open(&url).unwrap().prefix(prefix))
        }
    };
    if mode == Mode::RotatingRefreshToken {
        partner.ledger.grant_refresh_token("r0");
        let login = StoredTokens::from_refresh_token("r0", SystemTime::now());
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(shared.save(LOGIN_KEY, &login))
            .unwrap();
    }
    let reports = run_children(processes, &env, run + Duration::from_secs(20));
    Outcome {
        token_hits: partner.ledger.token_hits(),
        reused: partner.ledger.reused(),
        reports,
    }
}

#[test]
fn four_processes_on_redis_fetch_about_once_per_refresh_not_once_per_process() {
    let Some(redis) = RedisServer::start("four_processes_on_redis_fetch_about_once_per_refresh")
    else {
        return;
    };
    let _one = one_fleet_at_a_time();
    let run = Duration::from_secs(10);
    let out = fleet(Some(&redis), Store::Redis, Mode::ClientCredentials, 4, run);
    let bound = 1.5 * single_process_fetches(run) + 2.0;
    println!(
        "redis, 4 processes x {CONCURRENCY} requests, {run:?}: {} token-endpoint hits (bound {bound}), {} requests ok, {} failed",
        out.token_hits,
        out.ok(),
        out.failed()
    );
    println!("redis commands of that run: {}", command_stats(&redis));
    assert!(
        out.ok() > 4 * CONCURRENCY * 10,
        "the fleet barely ran: {}",
        out.ok()
    );
    assert_eq!(out.failed(), 0);
    assert!(
        (out.token_hits as f64) <= bound,
        "{} token-endpoint hits for a fleet of 4 in {run:?}, more than {bound}",
        out.token_hits
    );
}

#[test]
fn a_rotating_refresh_token_shared_through_redis_is_never_presented_twice() {
    let Some(redis) = RedisServer::start("a_rotating_refresh_token_shared_through_redis") else {
        return;
    };
    let _one = one_fleet_at_a_time();
    let run = Duration::from_secs(6);
    let out = fleet(
        Some(&redis),
        Store::Redis,
        Mode::RotatingRefreshToken,
        4,
        run,
    );
    println!(
        "redis, rotating refresh token, 4 processes, {run:?}: {} refreshes, {} reused, {} requests ok, {} failed",
        out.token_hits,
        out.reused,
        out.ok(),
        out.failed()
    );
    assert_eq!(out.reused, 0, "a refresh token was presented twice");
    assert_eq!(out.failed(), 0);
    assert!(out.token_hits >= 3, "the tokens were never refreshed");
    // One refresh per refresh point for the whole fleet, not one per process (4 processes
    // refreshing each on their own make about four times as many), plus one per process at
    // its start: a process holding no token yet reuses only a long-lived stored one.
    let bound = 1.5 * single_process_fetches(run) + 2.0 + 4.0;
    assert!(
        (out.token_hits as f64) <= bound,
        "{} refreshes for a fleet of 4 in {run:?}, more than {bound}",
        out.token_hits
    );
}

#[test]
fn token_endpoint_hits_by_fleet_size_with_a_file_and_with_redis() {
    let Some(redis) = RedisServer::start("token_endpoint_hits_by_fleet_size") else {
        return;
    };
    let _one = one_fleet_at_a_time();
    let run = Duration::from_secs(4);
    let bound = 1.5 * single_process_fetches(run) + 2.0;
    println!("token-endpoint hits in {run:?} (2-second tokens, {CONCURRENCY} requests in flight per process):");
    println!("store  processes  token_hits  requests_ok  failed");
    for store in [Store::File, Store::Redis] {
        for processes in [1, 2, 4] {
            let out = fleet(Some(&redis), store, Mode::ClientCredentials, processes, run);
            println!(
                "{:<6} {processes:>9}  {:>10}  {:>11}  {:>6}",
                format!("{store:?}").to_lowercase(),
                out.token_hits,
                out.ok(),
                out.failed()
            );
            assert_eq!(out.failed(), 0);
            assert!(
                (out.token_hits as f64) <= bound,
                "{store:?} x {processes}: {} hits, more than {bound}",
                out.token_hits
            );
        }
    }
}

/// One fleet member: run by the tests above as a child process, not on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a child process of the fleet tests"]
async fn fleet_child() {
    if std::env::var(CHILD_ENV).is_err() {
        return;
    }
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set"));
    let store: Arc<dyn TokenStore> = match std::env::var("FLEET_REDIS") {
        Ok(url) => Arc::new(RedisStore::open(&url).unwrap().prefix(var("FLEET_PREFIX"))),
        Err(_) => Arc::new(FileStore::new(var("FLEET_FILE"))),
    };
    let base = Url::parse(&var("FLEET_BASE")).unwrap();
    let token_url = TokenUrl::new(base.join("/token").unwrap());
    let client = match var("FLEET_MODE").as_str() {
        "cc" => {
            let source = ClientCredentialsSource::new(token_url, "fleet-client", "fleet-secret")
                .add_origin(&base);
            layer(AuthMiddleware::from_source(SharedSource::new(
                source, store, CC_KEY,
            )))
        }
        _ => {
            let source =
                RefreshTokenSource::new(OAuthClient::new(token_url, "fleet"), store, LOGIN_KEY)
                    .add_origin(&base);
            layer(AuthMiddleware::from_source(source))
        }
    };
    let run = Duration::from_millis(var("FLEET_RUN_MS").parse().unwrap());
    let api = base.join("/api").unwrap();
    let deadline = Instant::now() + run;
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, api) = (client.clone(), api.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, 0);
                while Instant::now() < deadline {
                    match client.get(api.clone()).send().await {
                        Ok(res) if res.status().is_success() => ok += 1,
                        Ok(res) => {
                            failed += 1;
                            eprintln!("status {}", res.status());
                        }
                        Err(err) => {
                            failed += 1;
                            eprintln!("error: {err:#}");
                        }
                    }
                    tokio::time::sleep(PAUSE).await;
                }
                (ok, failed)
            })
        })
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for task in tasks {
        let (o, f) = task.await.unwrap();
        ok += o;
        failed += f;
    }
    println!("FLEET_REPORT ok={ok} failed={failed}");
}

/// `calls` per command the server ran (`INFO commandstats`): what the lock's polling costs.
fn command_stats(redis: &RedisServer) -> String {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut conn)
        .unwrap();
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let calls = rest.split(',').next()?.strip_prefix("calls=")?;
            Some(format!("{name}={calls}"))
        })
        .filter(|s| !s.starts_with("info=") && !s.starts_with("ping="))
        .collect::<Vec<_>>()
        .join(" ")
}

fn layer<S: reqwest_partner_auth::TokenSource>(auth: AuthMiddleware<S>) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build()
}
