//! The fault suite: a token endpoint and an API that misbehave in every way a network or a
//! partner can, served byte by byte from a raw local server.
//!
//! Hang, reset, a body one byte at a time, an oversize or endless body, 200 with garbage,
//! 500/200 flips, 401 forever, 401 on the replay, a runtime dropped under a flight, and a
//! caller cancelled at every await point. For each: nothing panics, loops, hangs or leaks a
//! task; every error is typed (the variant is matched); fetch counts are exact.
//!
//! Every test body runs under a hard real-time limit ([`LIMIT`]) so a hang fails the test
//! instead of blocking CI. Expiry moves with a `ManualClock`; tokio's clock is never paused
//! (it would fire the HTTP timeouts at once).

mod common;
#[path = "faults/server.rs"]
mod server;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use reqwest_middleware::ClientWithMiddleware;
use reqwest_partner_auth::{
    AuthMiddleware, Error, HttpTokenSource, Lease, Malformed, ManualClock, Param, RetryPolicy,
    TokenCache, DEFAULT_MAX_BODY, DEFAULT_REJECTION_COOLDOWN,
};

use common::{client_with, crate_error, on_clock, retries, token_body, SECRET};
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
        .scope_to(&server.base())
}

/// The middleware on `clock` with fast retries (three attempts, backoff on the manual clock).
fn middleware(server: &RawServer, clock: &ManualClock) -> AuthMiddleware<HttpTokenSource> {
    on_clock(AuthMiddleware::from_source(source(server)), clock)
}

/// A client with `mw` over the short-timeout client.
fn client(mw: AuthMiddleware<HttpTokenSource>) -> ClientWithMiddleware {
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

// -------------------------------------------------------------------------------------------
// Token endpoint faults
// -------------------------------------------------------------------------------------------

/// A token endpoint that accepts the connection and never answers: the caller gets a typed
/// timeout within the token client's timeout, and the next call (the endpoint answering
/// again) succeeds.
#[tokio::test]
async fn token_endpoint_hang_is_a_typed_timeout_then_recovers() {
    within(async {
        let server = serve(
            |n| {
                if n == 1 {
                    Answer::Hang
                } else {
                    token_answer(n, HOUR)
                }
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock).retry_policy(RetryPolicy::none()));

        let started = Instant::now();
        let err = crate_error(&get_err(&client, &server).await);
        assert!(is_timeout(&err), "not a typed timeout: {err:?}");
        assert!(
            started.elapsed() < TIMEOUT * 4,
            "the timeout took {:?}",
            started.elapsed()
        );
        assert_eq!(server.hits(API), 0, "no api call without a token");

        assert_eq!(get(&client, &server).await, (200, "Bearer tok-2".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (2, 1));
    })
    .await;
}

/// A hanging token endpoint with retries: each attempt times out, the attempts are bounded
/// (three), and the whole call ends in a typed timeout well within the hard limit.
#[tokio::test]
async fn token_endpoint_hang_with_retries_is_bounded() {
    within(async {
        let server = serve(|_| Answer::Hang, echo).await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        let started = Instant::now();
        let err = crate_error(&get_err(&client, &server).await);
        assert!(is_timeout(&err), "not a typed timeout: {err:?}");
        assert!(started.elapsed() < TIMEOUT * 3 + secs(2));
        assert_eq!(server.hits(TOKEN), 3);
        assert_eq!(server.hits(API), 0);
    })
    .await;
}

/// A token endpoint that hangs behind a client with no timeout of its own: the cache's fetch
/// deadline ends the wait with a typed `FetchTimeout`, and the next caller starts a new
/// fetch, which succeeds.
#[tokio::test]
async fn fetch_deadline_bounds_a_hanging_token_endpoint() {
    within(async {
        let server = serve(
            |n| {
                if n == 1 {
                    Answer::Hang
                } else {
                    token_answer(n, HOUR)
                }
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let slow = HttpTokenSource::post(server.url(TOKEN))
            .param("client_secret", Param::secret(SECRET))
            .http_client(reqwest::Client::new())
            .timeout(secs(60))
            .scope_to(&server.base());
        let mw = on_clock(AuthMiddleware::from_source(slow), &clock).fetch_deadline(TIMEOUT);
        let client = client(mw);

        let started = Instant::now();
        let err = crate_error(&get_err(&client, &server).await);
        assert!(
            matches!(err, Error::FetchTimeout { deadline } if deadline == TIMEOUT),
            "not the fetch deadline: {err:?}"
        );
        assert!(
            started.elapsed() < TIMEOUT * 4,
            "took {:?}",
            started.elapsed()
        );

        assert_eq!(get(&client, &server).await, (200, "Bearer tok-2".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (2, 1));
    })
    .await;
}

/// A token endpoint that hangs while the current token is still valid (inside the skew
/// window): past the fetch deadline the request goes out with the current token.
#[tokio::test]
async fn fetch_deadline_serves_the_valid_token_while_the_endpoint_hangs() {
    within(async {
        let server = serve(
            |n| {
                if n == 2 {
                    Answer::Hang
                } else {
                    token_answer(n, HOUR)
                }
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let mw = middleware(&server, &clock)
            .refresh_ahead(0.0)
            .retry_policy(RetryPolicy::none())
            .fetch_deadline(Duration::from_millis(200));
        let client = client(mw);

        assert_eq!(get(&client, &server).await, (200, "Bearer tok-1".into()));
        clock.advance(secs(HOUR - 10));
        let started = Instant::now();
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-1".into()));
        assert!(
            started.elapsed() < TIMEOUT * 4,
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(server.hits(TOKEN), 2);

        assert_eq!(get(&client, &server).await, (200, "Bearer tok-3".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (3, 3));
    })
    .await;
}

/// A token endpoint that resets the connection: a typed transport error after the bounded
/// retries (three attempts), then recovery once it answers.
#[tokio::test]
async fn token_endpoint_reset_is_a_typed_transport_error_then_recovers() {
    within(async {
        let server = serve(
            |n| {
                if n <= 3 {
                    Answer::Reset
                } else {
                    token_answer(n, HOUR)
                }
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        let err = crate_error(&get_err(&client, &server).await);
        assert!(
            matches!(err, Error::Transport { .. }),
            "not a transport error: {err:?}"
        );
        assert_eq!(server.hits(TOKEN), 3);

        assert_eq!(get(&client, &server).await, (200, "Bearer tok-4".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (4, 1));
    })
    .await;
}

/// A token answer sent one byte at a time is read whole; one so slow that it outlasts the
/// token timeout is a typed timeout, not a hang.
#[tokio::test]
async fn token_endpoint_byte_by_byte_body() {
    within(async {
        let server = serve(
            |n| {
                let body = token_body(&format!("tok-{n}"), 60).into_bytes();
                let gap = if n == 1 {
                    Duration::from_millis(1)
                } else {
                    Duration::from_millis(100)
                };
                Answer::Slow {
                    head: head(200, "application/json", body.len()),
                    body,
                    gap,
                }
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        // A generous token timeout for the answer that trickles in fast enough, so a loaded
        // machine does not turn it into a timeout; the short one for the answer that does not.
        let patient = AuthMiddleware::from_source(source(&server).timeout(secs(10)));
        let patient = client(on_clock(patient, &clock).retry_policy(RetryPolicy::none()));
        let client = client(middleware(&server, &clock).retry_policy(RetryPolicy::none()));

        assert_eq!(get(&patient, &server).await, (200, "Bearer tok-1".into()));

        let started = Instant::now();
        let err = crate_error(&get_err(&client, &server).await);
        assert!(is_timeout(&err), "not a typed timeout: {err:?}");
        assert!(started.elapsed() < TIMEOUT * 4);
        assert_eq!((server.hits(TOKEN), server.hits(API)), (2, 1));
    })
    .await;
}

/// An answer larger than the body cap, announced by its length or streamed without end, is
/// a typed `TooLarge` (not retried, read no further than the cap); the next answer works.
#[tokio::test]
async fn token_endpoint_oversize_body_is_too_large() {
    within(async {
        let server = serve(
            |n| match n {
                1 => Answer::Bytes(head(200, "application/json", 1 << 20)),
                2 => Answer::Endless {
                    head: chunked_head(200, "application/json"),
                },
                _ => token_answer(n, HOUR),
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        for expected_hits in [1, 2] {
            let err = crate_error(&get_err(&client, &server).await);
            assert!(
                matches!(
                    err,
                    Error::MalformedResponse(Malformed::TooLarge { limit }) if limit == DEFAULT_MAX_BODY
                ),
                "not TooLarge: {err:?}"
            );
            assert_eq!(server.hits(TOKEN), expected_hits, "a too-large answer is not retried");
        }
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-3".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (3, 1));
    })
    .await;
}

/// Garbage with a 200: each is a typed `MalformedResponse`, exactly one fetch each (a
/// malformed answer is not retried), and a good answer afterwards is used.
#[tokio::test]
async fn token_endpoint_200_with_garbage_is_malformed() {
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", b"".to_vec()),
        ("application/json", b"   \r\n".to_vec()),
        ("application/json", b"\xff\xfe\x00garbage\x80".to_vec()),
        (
            "text/html",
            b"<html><body>maintenance</body></html>".to_vec(),
        ),
        ("application/json", b"<!doctype html>".to_vec()),
        ("application/json", b"null".to_vec()),
        ("application/json", b"[\"tok\"]".to_vec()),
        ("application/json", b"{}".to_vec()),
        ("application/json", br#"{"access_token":5}"#.to_vec()),
        ("application/json", br#"{"access_token":""}"#.to_vec()),
        (
            "application/json",
            br#"{"access_token":"a\r\nx-evil: 1"}"#.to_vec(),
        ),
        (
            "application/json",
            br#"{"access_token":"t","token_type":"mac"}"#.to_vec(),
        ),
        (
            "application/json",
            br#"{"access_token":"t","expires_in":"soon"}"#.to_vec(),
        ),
        (
            "application/json",
            br#"{"access_token":"t","expires_in":1e999}"#.to_vec(),
        ),
        ("application/json", br#"{"access_token":"t""#.to_vec()),
        (
            "application/x-www-form-urlencoded",
            b"access_token=t&token_type=bearer&expires_in=3600".to_vec(),
        ),
        ("text/plain", b"tok-plain".to_vec()),
    ];
    let count = garbage.len();
    within(async move {
        let answers = garbage.clone();
        let server = serve(
            move |n| match answers.get(n - 1) {
                Some((content_type, body)) => Answer::Bytes(response(200, content_type, body)),
                None => token_answer(n, HOUR),
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        for (i, (content_type, body)) in garbage.iter().enumerate() {
            let err = crate_error(&get_err(&client, &server).await);
            assert!(
                matches!(err, Error::MalformedResponse(_)),
                "{content_type} {:?}: not malformed: {err:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(
                server.hits(TOKEN),
                i + 1,
                "a malformed answer is not retried"
            );
        }
        let expected = format!("Bearer tok-{}", count + 1);
        assert_eq!(get(&client, &server).await, (200, expected));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (count + 1, 1));
    })
    .await;
}

/// A token endpoint that does not speak HTTP at all: a typed transport error.
#[tokio::test]
async fn token_endpoint_speaking_no_http_is_a_transport_error() {
    within(async {
        let server = serve(
            |_| Answer::Bytes(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec()),
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock).retry_policy(RetryPolicy::none()));

        let err = crate_error(&get_err(&client, &server).await);
        assert!(
            matches!(err, Error::Transport { .. }),
            "not a transport error: {err:?}"
        );
        assert_eq!((server.hits(TOKEN), server.hits(API)), (1, 0));
    })
    .await;
}

/// A token endpoint flipping between 500 and 200: with retries each 500 is followed by the
/// 200 (two fetches per token); without, the 500 is a typed `TokenEndpoint` error and the
/// next call recovers. Exact counts: nothing loops.
#[tokio::test]
async fn token_endpoint_500_200_flips() {
    within(async {
        let server = serve(
            |n| {
                if n % 2 == 1 {
                    Answer::Bytes(response(
                        500,
                        "application/json",
                        r#"{"error":"server_error"}"#,
                    ))
                } else {
                    token_answer(n, 60)
                }
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock).refresh_ahead(0.0));

        assert_eq!(get(&client, &server).await, (200, "Bearer tok-2".into()));
        assert_eq!(server.hits(TOKEN), 2);
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-2".into()));
        assert_eq!(server.hits(TOKEN), 2);

        clock.advance(secs(61));
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-4".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (4, 3));

        // Without retries: the 500 reaches the caller, typed, and the cache recovers.
        let once = client_with(
            short_timeout_client(),
            middleware(&server, &clock)
                .refresh_ahead(0.0)
                .retry_policy(RetryPolicy::none()),
        );
        let err = crate_error(&get_err(&once, &server).await);
        assert!(
            matches!(err, Error::TokenEndpoint { status, .. } if status == 500),
            "not a typed 500: {err:?}"
        );
        assert!(err.is_transient());
        assert_eq!(server.hits(TOKEN), 5);
        assert_eq!(get(&once, &server).await, (200, "Bearer tok-6".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (6, 4));
    })
    .await;
}

/// A 500 while the current token is still valid (inside the skew window) does not fail the
/// request: the current token is served, and the next request's fetch recovers.
#[tokio::test]
async fn token_endpoint_500_while_the_token_is_valid_serves_it() {
    within(async {
        let server = serve(
            |n| match n {
                2 => Answer::Bytes(response(500, "application/json", r#"{"error":"x"}"#)),
                _ => token_answer(n, HOUR),
            },
            echo,
        )
        .await;
        let clock = ManualClock::new();
        let mw = middleware(&server, &clock)
            .refresh_ahead(0.0)
            .retry_policy(RetryPolicy::none());
        let client = client(mw);

        assert_eq!(get(&client, &server).await, (200, "Bearer tok-1".into()));
        clock.advance(secs(HOUR - 10));
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-1".into()));
        assert_eq!(server.hits(TOKEN), 2);
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-3".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (3, 3));
    })
    .await;
}

// -------------------------------------------------------------------------------------------
// API faults
// -------------------------------------------------------------------------------------------

/// An API that hangs: the caller's own client timeout ends the call with reqwest's timeout
/// error (the layer adds nothing, fetches nothing more); the next call succeeds.
#[tokio::test]
async fn api_hang_is_the_callers_timeout_and_costs_no_fetch() {
    within(async {
        let server = serve(
            |n| token_answer(n, HOUR),
            |req| if req.n == 1 { Answer::Hang } else { echo(req) },
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        let started = Instant::now();
        match get_err(&client, &server).await {
            reqwest_middleware::Error::Reqwest(e) => assert!(e.is_timeout(), "{e:?}"),
            other => panic!("not the client's timeout: {other:?}"),
        }
        assert!(started.elapsed() < TIMEOUT * 4);
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-1".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (1, 2));
    })
    .await;
}

/// An API that resets the connection, or answers without HTTP: a reqwest error, no token
/// fetch, no replay; the next call succeeds with the same token.
#[tokio::test]
async fn api_reset_and_no_http_are_transport_errors_without_fetches() {
    within(async {
        let server = serve(
            |n| token_answer(n, HOUR),
            |req| match req.n {
                1 => Answer::Reset,
                2 => Answer::Bytes(b"220 smtp.example ESMTP\r\n".to_vec()),
                _ => echo(req),
            },
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        for expected_api in [1, 2] {
            let err = get_err(&client, &server).await;
            assert!(
                matches!(err, reqwest_middleware::Error::Reqwest(_)),
                "not the api call's own error: {err:?}"
            );
            assert_eq!(server.hits(API), expected_api, "no replay of a failed call");
        }
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-1".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (1, 3));
    })
    .await;
}

/// API answers sent byte by byte, very large, or as 200 with garbage reach the caller
/// exactly as sent: the layer neither buffers, caps nor parses them.
#[tokio::test]
async fn api_slow_oversize_and_garbage_bodies_pass_through() {
    let big: Vec<u8> = (0..(1usize << 20)).map(|i| (i % 251) as u8).collect();
    let garbage: Vec<u8> = vec![0xff, 0x00, b'{', 0x80, b'<', b'h'];
    let (big_sent, garbage_sent) = (big.clone(), garbage.clone());
    within(async move {
        let server = serve(
            |n| token_answer(n, HOUR),
            move |req| match req.n {
                1 => Answer::Slow {
                    head: head(200, "text/plain", 12),
                    body: b"slow answer!".to_vec(),
                    gap: Duration::from_millis(2),
                },
                2 => Answer::Bytes(response(200, "application/octet-stream", &big_sent)),
                _ => Answer::Bytes(response(200, "application/json", &garbage_sent)),
            },
        )
        .await;
        let clock = ManualClock::new();
        let client = client_with(reqwest::Client::new(), middleware(&server, &clock));

        let bodies: Vec<Vec<u8>> = {
            let mut out = Vec::new();
            for _ in 0..3 {
                let res = client.get(server.url(API)).send().await.expect("sent");
                assert_eq!(res.status(), 200);
                out.push(res.bytes().await.expect("read").to_vec());
            }
            out
        };
        assert_eq!(bodies[0], b"slow answer!");
        assert_eq!(bodies[1], big);
        assert_eq!(bodies[2], garbage);
        assert_eq!((server.hits(TOKEN), server.hits(API)), (1, 3));
    })
    .await;
}

/// An API flipping between 500 and 200 costs no token fetch: a 500 is not a rejection.
#[tokio::test]
async fn api_500_200_flips_cost_no_fetch() {
    within(async {
        let server = serve(
            |n| token_answer(n, HOUR),
            |req| {
                if req.n % 2 == 1 {
                    Answer::Bytes(response(500, "text/plain", "oops"))
                } else {
                    echo(req)
                }
            },
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        for i in 1..=10u16 {
            let (status, _) = get(&client, &server).await;
            assert_eq!(status, if i % 2 == 1 { 500 } else { 200 });
        }
        assert_eq!((server.hits(TOKEN), server.hits(API)), (1, 10));
    })
    .await;
}

/// An API that rejects every token, fresh ones included: 20 requests cost two token
/// fetches (the first, and one after the first rejection; later rejections fall in the
/// cool-down) and 21 API calls (one replay, for the first rejection), and every caller gets
/// the 401. Once the cool-down has passed, one rejection fetches again, once.
#[tokio::test]
async fn api_401_forever_costs_bounded_fetches() {
    within(async {
        let server = serve(|n| token_answer(n, HOUR), |_| unauthorized()).await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        for _ in 0..20 {
            let (status, _) = get(&client, &server).await;
            assert_eq!(status, 401, "the rejection goes back to the caller");
        }
        assert_eq!(
            (server.hits(TOKEN), server.hits(API)),
            (2, 21),
            "(token fetches, api calls) for 20 requests to an api that rejects every token"
        );

        clock.advance(DEFAULT_REJECTION_COOLDOWN);
        let (status, _) = get(&client, &server).await;
        assert_eq!(status, 401);
        assert_eq!((server.hits(TOKEN), server.hits(API)), (3, 23));
    })
    .await;
}

/// A 401 to the request and to its replay: the caller gets the second 401, exactly two
/// fetches and two API calls (one replay, never a loop); the next request uses the token
/// the replay fetched.
#[tokio::test]
async fn api_401_on_the_replay_is_returned_without_a_loop() {
    within(async {
        let server = serve(
            |n| token_answer(n, HOUR),
            |req| {
                if req.n <= 2 {
                    unauthorized()
                } else {
                    echo(req)
                }
            },
        )
        .await;
        let clock = ManualClock::new();
        let client = client(middleware(&server, &clock));

        let (status, body) = get(&client, &server).await;
        assert_eq!(
            (status, body.as_str()),
            (401, r#"{"error":"invalid_token"}"#)
        );
        assert_eq!((server.hits(TOKEN), server.hits(API)), (2, 2));

        assert_eq!(get(&client, &server).await, (200, "Bearer tok-2".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (2, 3));
    })
    .await;
}

// -------------------------------------------------------------------------------------------
// A runtime dropped under a flight
// -------------------------------------------------------------------------------------------

/// A runtime per job, as programs that build one per task (and `#[tokio::test]`s sharing a
/// static client) do.
fn job_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Runs `f` on a fresh job runtime under the hard limit, then drops the runtime.
fn on_new_runtime<T>(f: impl Future<Output = T>) -> T {
    job_runtime().block_on(within(f))
}

/// The server lives on a runtime of its own that outlives the jobs.
fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A cache shared between job runtimes: `tok-n` living 100 s; requests wait from 90 s, and
/// a background refresh starts before that (at 80 s at the latest).
fn shared_cache(server: &RawServer, clock: &ManualClock) -> TokenCache<HttpTokenSource> {
    TokenCache::new(source(server))
        .clock(Arc::new(clock.clone()))
        .retry_policy(retries())
        .refresh_ahead(0.5)
        .refresh_skew(secs(10))
}

/// Starts the token server used by the runtime tests.
fn start_token_server(rt: &tokio::runtime::Runtime) -> RawServer {
    rt.block_on(serve(|n| token_answer(n, 100), echo))
}

/// Asks `cache` for a token inside its refresh-ahead window: the current token comes back
/// at once, and the background refresh is spawned but has not run (checked: it is the one
/// task alive on this runtime).
async fn refresh_ahead(cache: &TokenCache<HttpTokenSource>) -> Result<Lease, Error> {
    let lease = cache.token().await;
    assert_eq!(
        alive_tasks(),
        1,
        "exactly the background refresh was spawned"
    );
    lease
}

/// A background refresh spawned on a runtime that is dropped before the refresh first runs
/// is gone, not wedged: a later call on another runtime fetches a new token.
#[test]
fn background_refresh_on_a_dropped_runtime_does_not_wedge_the_cache() {
    let server_rt = server_runtime();
    let server = start_token_server(&server_rt);
    let clock = ManualClock::new();
    let cache = shared_cache(&server, &clock);

    let first = on_new_runtime(cache.token()).expect("the first token");
    assert_eq!(first.header_value(), "Bearer tok-1");

    // Inside the refresh-ahead window: the call returns the current token at once and
    // spawns the refresh, which never runs: its runtime is dropped right after.
    clock.advance(secs(80));
    let lease = on_new_runtime(refresh_ahead(&cache)).expect("the current token");
    assert_eq!(lease.header_value(), "Bearer tok-1");
    assert_eq!(server.hits(TOKEN), 1, "the refresh never ran");

    // Past expiry, on a third runtime: a new flight, a new token.
    clock.advance(secs(30));
    let lease = on_new_runtime(cache.token());
    let lease = lease.unwrap_or_else(|e| panic!("the cache is wedged: {e:?}"));
    assert_eq!(lease.header_value(), "Bearer tok-2");
    assert_eq!(server.hits(TOKEN), 2);
}

/// A first fetch spawned on a runtime that is dropped before it runs is gone: the next
/// call, on another runtime, fetches; cancellation is never reported as a panic.
#[test]
fn first_fetch_on_a_dropped_runtime_does_not_wedge_the_cache() {
    let server_rt = server_runtime();
    let server = start_token_server(&server_rt);
    let clock = ManualClock::new();
    let cache = shared_cache(&server, &clock);

    {
        let rt = job_runtime();
        let _entered = rt.enter();
        // One poll spawns the flight; the runtime then goes away before it runs.
        assert!(cache.token().now_or_never().is_none());
    }
    assert_eq!(server.hits(TOKEN), 0);

    let result = on_new_runtime(cache.token());
    if let Err(e) = &result {
        assert!(
            !matches!(e, Error::SourcePanicked),
            "a cancelled flight is reported as a panic: {e:?}"
        );
    }
    let lease = result.unwrap_or_else(|e| panic!("the cache is wedged: {e:?}"));
    assert_eq!(lease.header_value(), "Bearer tok-1");
    assert_eq!(server.hits(TOKEN), 1);
}

/// Whatever happened to a flight, `clear()` recovers the cache.
#[test]
fn clear_recovers_after_a_flight_lost_with_its_runtime() {
    let server_rt = server_runtime();
    let server = start_token_server(&server_rt);
    let clock = ManualClock::new();
    let cache = shared_cache(&server, &clock);

    {
        let rt = job_runtime();
        let _entered = rt.enter();
        assert!(cache.token().now_or_never().is_none());
    }
    cache.clear();
    let lease = on_new_runtime(cache.token());
    let lease = lease.unwrap_or_else(|e| panic!("clear() did not recover: {e:?}"));
    assert_eq!(lease.header_value(), "Bearer tok-1");
    assert_eq!(server.hits(TOKEN), 1);
}

/// The middleware (through a client) shared by two job runtimes: the first runtime is
/// dropped while its background refresh is spawned but not run; requests on the next
/// runtime succeed.
#[test]
fn middleware_shared_across_runtimes_survives_a_dropped_one() {
    let server_rt = server_runtime();
    let server = start_token_server(&server_rt);
    let clock = ManualClock::new();
    let mw = AuthMiddleware::from_cache(shared_cache(&server, &clock));
    let cache = mw.token_cache().clone();
    let client = client(mw);

    let (status, body) = on_new_runtime(get(&client, &server));
    assert_eq!((status, body.as_str()), (200, "Bearer tok-1"));

    clock.advance(secs(80));
    // Through the cache, so nothing else runs on this runtime before it is dropped.
    assert!(on_new_runtime(refresh_ahead(&cache)).is_ok());
    assert_eq!(server.hits(TOKEN), 1);

    clock.advance(secs(30));
    let (status, body) = on_new_runtime(get(&client, &server));
    assert_eq!((status, body.as_str()), (200, "Bearer tok-2"));
    assert_eq!((server.hits(TOKEN), server.hits(API)), (2, 2));
}

/// A fetch that hangs past its deadline does not stay behind as a task waiting for ever:
/// with the server still holding the connection open, the job runtime's alive tasks return
/// to what they were once the next call has succeeded and the client is dropped. (The server
/// runs on a runtime of its own, so only the client side is counted.)
#[test]
fn a_fetch_past_its_deadline_leaves_no_task_behind() {
    let server_rt = server_runtime();
    let server = server_rt.block_on(serve(
        |n| {
            if n == 1 {
                Answer::Hang
            } else {
                token_answer(n, HOUR)
            }
        },
        echo,
    ));
    on_new_runtime(async {
        let baseline = alive_tasks();
        let clock = ManualClock::new();
        let source = HttpTokenSource::post(server.url(TOKEN))
            .param("client_secret", Param::secret(SECRET))
            .http_client(reqwest::Client::new())
            .timeout(secs(60))
            .scope_to(&server.base());
        let mw = on_clock(AuthMiddleware::from_source(source), &clock).fetch_deadline(TIMEOUT);
        let client = client(mw);

        let err = crate_error(&get_err(&client, &server).await);
        assert!(matches!(err, Error::FetchTimeout { .. }), "{err:?}");
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-2".into()));
        drop(client);
        assert_eq!(
            settle_to(baseline).await,
            baseline,
            "the fetch that hung past its deadline is still running"
        );
    });
    assert_eq!((server.hits(TOKEN), server.hits(API)), (2, 1));
}

// -------------------------------------------------------------------------------------------
// A caller cancelled at every await point
// -------------------------------------------------------------------------------------------

/// A waker that counts its wake-ups.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Polls `fut` by hand up to `polls` times, each after the previous poll's wake-up (real
/// time passes in between, so I/O progresses); returns whether it finished.
async fn poll_times<F: Future>(fut: &mut Pin<Box<F>>, polls: usize) -> bool {
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(Arc::clone(&counter));
    let mut cx = Context::from_waker(&waker);
    for _ in 0..polls {
        let seen = counter.0.load(Ordering::SeqCst);
        if fut.as_mut().poll(&mut cx).is_ready() {
            return true;
        }
        while counter.0.load(Ordering::SeqCst) == seen {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    false
}

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

/// A server for the cancellation test: the token endpoint answers after a pause, the API
/// rejects its first request and accepts the rest, after a pause too, so a call passes
/// every await point: the token fetch, the API call, the rejection's fetch, the replay.
async fn cancellation_server() -> RawServer {
    let pause = Duration::from_millis(15);
    serve(
        move |n| {
            let body = token_body(&format!("tok-{n}"), HOUR);
            Answer::Delayed {
                head: Vec::new(),
                delay: pause,
                body: response(200, "application/json", body),
            }
        },
        move |req| {
            let answer = match req.n {
                1 => response(401, "application/json", r#"{"error":"invalid_token"}"#),
                _ => response(200, "text/plain", req.header("authorization").unwrap_or("")),
            };
            Answer::Delayed {
                head: Vec::new(),
                delay: pause,
                body: answer,
            }
        },
    )
    .await
}

/// A caller dropped after k polls, for every k from 0 to the polls a whole call takes:
/// afterwards the next call succeeds, and once everything is dropped the runtime has no
/// more tasks alive than before (no flight, connection or timer task leaks).
#[tokio::test]
async fn cancelled_caller_at_every_await_point() {
    within(async {
        let baseline = alive_tasks();

        // How many polls a whole call takes: the await points to cancel at.
        let polls = {
            let server = cancellation_server().await;
            let clock = ManualClock::new();
            let client = client(middleware(&server, &clock));
            let mut call = Box::pin(client.get(server.url(API)).send());
            let mut polls = 0;
            while !poll_times(&mut call, 1).await {
                polls += 1;
                assert!(polls < 200, "a call that never finishes");
            }
            polls + 1
        };
        assert!(
            polls >= 2,
            "the call should wait at least once ({polls} polls)"
        );
        assert_eq!(
            settle_to(baseline).await,
            baseline,
            "tasks leaked by a whole call"
        );

        for k in 0..polls {
            let server = cancellation_server().await;
            let clock = ManualClock::new();
            let client = client(middleware(&server, &clock));

            let mut call = Box::pin(client.get(server.url(API)).send());
            let finished = poll_times(&mut call, k).await;
            drop(call);
            // Timing may let a call finish in fewer polls than the measured run: then there
            // was nothing to cancel, and the checks below still hold.
            let _ = finished;

            let (status, body) = get(&client, &server).await;
            assert_eq!(status, 200, "after a cancel at poll {k}: {body}");
            assert!(body.starts_with("Bearer tok-"), "{body}");
            assert!(
                server.hits(TOKEN) <= 2,
                "cancel at poll {k}: {} token fetches",
                server.hits(TOKEN)
            );

            drop(client);
            drop(server);
            let alive = settle_to(baseline).await;
            assert_eq!(alive, baseline, "tasks leaked after a cancel at poll {k}");
        }
    })
    .await;
}
