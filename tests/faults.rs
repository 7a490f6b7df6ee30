//! The fault suite: a token endpoint and an API that misbehave in every way a network or a
//! partner can, served byte by byte from a raw local server.
//!
//! Hang, reset, a body one byte at a time, an oversize or endless body, 200 with garbage,
//! 500/200 flips, 401 forever, 401 on the replay, a runtime dropped under a flight, a store
//! lock held by a frozen process, and a caller cancelled at every await point. For each:
//! nothing panics, loops, hangs or leaks a task; every error is typed (the variant is
//! matched); fetch counts are exact.
//!
//! Every test body runs under a hard real-time limit ([`LIMIT`]) so a hang fails the test
//! instead of blocking CI. Expiry moves with a `ManualClock`; tokio's clock is never paused
//! (it would fire the HTTP timeouts at once).

mod common;
#[path = "faults/server.rs"]
mod server;

#[path = "faults/api.rs"]
mod api;
#[path = "faults/cancellation.rs"]
mod cancellation;
#[path = "faults/runtimes.rs"]
mod runtimes;
#[cfg(all(feature = "file-store", feature = "oauth2"))]
#[path = "faults/store_lock.rs"]
mod store_lock;
#[path = "faults/token_endpoint.rs"]
mod token_endpoint;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use reqwest_middleware::ClientWithMiddleware;
use reqwest_partner_auth::cache::{Lease, RetryPolicy, DEFAULT_REJECTION_COOLDOWN};
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::engine::{HttpTokenSource, Param, DEFAULT_MAX_BODY};
use reqwest_partner_auth::error::Malformed;
use reqwest_partner_auth::{AuthMiddleware, Error, TokenCache};

use common::{client_with, crate_error, on_clock, retries, token_body, Builder, IntoLayer, SECRET};
use server::{chunked_head, head, response, Answer, RawServer, Request};

/// The hard limit on every test body (real time).
const LIMIT: Duration = Duration::from_secs(20);

/// The timeout of the token client and of the API client.
const TIMEOUT: Duration = Duration::from_millis(500);

const TOKEN: &str = "/token";
const API: &str = "/api";
const HOUR: u64 = 3600;

/// Runs `body` under [`LIMIT`]: a hang is a failure, not a stuck CI job.
async fn within<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, body)
        .await
        .expect("the test hung: it did not finish within the hard limit")
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A reqwest client with a short overall timeout that follows no redirect.
fn short_timeout_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

/// The token source: JSON credentials to `/token` of `server`, an OAuth 2.0 answer, the
/// token scoped to the server's origin, the short token-request timeout.
fn source(server: &RawServer) -> HttpTokenSource {
    HttpTokenSource::post(server.url(TOKEN))
        .param("client_id", Param::text("faults"))
        .param("client_secret", Param::secret(SECRET))
        .timeout(TIMEOUT)
        .add_origin(&server.base())
}

/// The middleware on `clock` with fast retries (three attempts, backoff on the manual clock).
fn middleware(server: &RawServer, clock: &ManualClock) -> Builder<HttpTokenSource> {
    on_clock(AuthMiddleware::builder(source(server)), clock)
}

/// A client with `mw` over the short-timeout client.
fn client(mw: impl IntoLayer) -> ClientWithMiddleware {
    client_with(short_timeout_client(), mw)
}

/// A 200 OAuth 2.0 answer for `tok-<n>` living `expires_in` seconds.
fn token_answer(n: usize, expires_in: u64) -> Answer {
    let body = token_body(&format!("tok-{n}"), expires_in);
    Answer::Bytes(response(200, "application/json", body))
}

/// An API answer: 200 with the `Authorization` value it received (empty if none).
fn echo(req: &Request) -> Answer {
    let auth = req.header("authorization").unwrap_or_default();
    Answer::Bytes(response(200, "text/plain", auth))
}

/// A JSON 401 from the API.
fn unauthorized() -> Answer {
    Answer::Bytes(response(
        401,
        "application/json",
        r#"{"error":"invalid_token"}"#,
    ))
}

/// A server whose token endpoint answers `token(n)` to its n-th request and whose API
/// answers `api(request)`.
async fn serve(
    token: impl Fn(usize) -> Answer + Send + Sync + 'static,
    api: impl Fn(&Request) -> Answer + Send + Sync + 'static,
) -> RawServer {
    RawServer::start(move |req: &Request| match req.path.as_str() {
        TOKEN => token(req.n),
        API => api(req),
        _ => Answer::Bytes(response(404, "text/plain", "no such path")),
    })
    .await
}

/// GETs the API and returns the status and body text.
async fn get(client: &ClientWithMiddleware, server: &RawServer) -> (u16, String) {
    let res = client
        .get(server.url(API))
        .send()
        .await
        .expect("the api call succeeds");
    let status = res.status().as_u16();
    (status, res.text().await.expect("the body is read"))
}

/// GETs the API, which must fail, and returns the middleware's error.
async fn get_err(client: &ClientWithMiddleware, server: &RawServer) -> reqwest_middleware::Error {
    client
        .get(server.url(API))
        .send()
        .await
        .expect_err("the api call should fail")
}

/// True for the typed errors a token request that ran out of time may end in.
fn is_timeout(err: &Error) -> bool {
    match err {
        Error::Transport { source, .. } => source.is_timeout(),
        Error::FetchTimeout { .. } => true,
        _ => false,
    }
}

/// The tasks alive on the current runtime.
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (real time, bounded) until the runtime's alive tasks are back to `baseline`.
async fn settle_to(baseline: usize) -> usize {
    for _ in 0..400 {
        if alive_tasks() <= baseline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    alive_tasks()
}
