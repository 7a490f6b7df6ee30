//! The layer in a real middleware stack: `reqwest-tracing` and `reqwest-retry` around it, in
//! both orders, against a local server.
//!
//! * **retry outside auth** (`tracing, retry, auth`, the recommended order): every attempt of
//!   the retry layer passes through the auth layer, which reads the token again;
//! * **auth outside retry** (`tracing, auth, retry`): the auth layer attaches a token once and
//!   the retry layer re-sends that request as it is; only the auth layer's one replay after a
//!   `401` brings a new token.
//!
//! In both, the crate's [`Error`] is found behind reqwest-retry's `RetryError` (either
//! variant) and inside `anyhow` chains with [`Error::from_middleware`] and [`Error::find`].

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{json_response, middleware, numbered_token_mock, SECRET, TOKEN_PATH};
use httpmock::{HttpMockRequest, HttpMockResponse, Method, Mock, MockServer};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware};
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::{Error, NoReplay};
use reqwest_retry::policies::ExponentialBackoff;
use reqwest_retry::{RetryError, RetryTransientMiddleware};
use reqwest_tracing::TracingMiddleware;

/// The API path the tests call.
const API_PATH: &str = "/api/items";

/// Lifetime of the test tokens, in seconds.
const LIFETIME: u64 = 3600;

/// Where the auth layer sits relative to the retry layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    /// `.with(TracingMiddleware).with(RetryTransientMiddleware).with(auth)`: recommended.
    RetryOutsideAuth,
    /// `.with(TracingMiddleware).with(auth).with(RetryTransientMiddleware)`.
    AuthOutsideRetry,
}

/// reqwest-retry with three retries, 1 to 5 ms apart: real sleeps, but short ones.
fn retry_layer() -> RetryTransientMiddleware<ExponentialBackoff> {
    let policy = ExponentialBackoff::builder()
        .retry_bounds(Duration::from_millis(1), Duration::from_millis(5))
        .build_with_max_retries(3);
    RetryTransientMiddleware::new_with_policy(policy)
}

/// A client with tracing outermost and `auth` and the retry layer in `order`.
fn stack(order: Order, auth: impl Middleware) -> ClientWithMiddleware {
    let builder = ClientBuilder::new(reqwest::Client::new()).with(TracingMiddleware::default());
    match order {
        Order::RetryOutsideAuth => builder.with(retry_layer()).with(auth),
        Order::AuthOutsideRetry => builder.with(auth).with(retry_layer()),
    }
    .build()
}

/// A client in `order` whose auth layer fetches from `server`'s `/token` on `clock`.
fn client(order: Order, server: &MockServer, clock: &ManualClock) -> ClientWithMiddleware {
    stack(order, middleware(server, clock).build())
}

/// The `Authorization` values the API received, one entry per request, in order.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

impl Seen {
    fn record(&self, req: &HttpMockRequest) -> (usize, String) {
        let auth = common::authorization_values(req).join("|");
        let mut seen = self.0.lock().unwrap();
        seen.push(auth.clone());
        (seen.len(), auth)
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A `GET API_PATH` mock answering `respond(n, auth)` to its n-th request (1-based), `auth`
/// being that request's `Authorization` value; every value is recorded in the returned
/// [`Seen`].
async fn api_mock(
    server: &MockServer,
    respond: impl Fn(usize, &str) -> HttpMockResponse + Send + Sync + 'static,
) -> (Mock<'_>, Seen) {
    let seen = Seen::default();
    let recorder = seen.clone();
    let mock = server
        .mock_async(move |when, then| {
            when.method(Method::GET).path(API_PATH);
            then.respond_with(move |req: &HttpMockRequest| {
                let (n, auth) = recorder.record(req);
                respond(n, &auth)
            });
        })
        .await;
    (mock, seen)
}

/// An empty answer with `code`.
fn status(code: u16) -> HttpMockResponse {
    HttpMockResponse::builder().status(code).build()
}

/// `Bearer tok-<n>`.
fn bearer(n: usize) -> String {
    format!("Bearer tok-{n}")
}

/// Every rendering of `err`: `Display` and `Debug`, and those of an anyhow chain around it
/// (the alternate `Display` shows every level), for secret checks.
fn shown(err: reqwest_middleware::Error) -> String {
    let direct = format!("{err} {err:?}");
    let chain = anyhow::Error::new(err).context("calling the api");
    format!("{direct} {chain:#} {chain:?}")
}

// -------------------------------------------------------------------------------------------
// Errors of the layer behind the other layers
// -------------------------------------------------------------------------------------------

/// A token endpoint that rejects the credentials: the crate's `Error::InvalidCredentials` is
/// found behind the tracing and retry layers (with retry outside auth it sits inside
/// reqwest-retry's `RetryError::Error`), the token endpoint is asked exactly once (reqwest-retry
/// treats a middleware error as fatal, and the crate does not retry credential errors), the
/// API never, and no rendering of the error shows the secret the endpoint echoed back.
async fn invalid_credentials_are_found(order: Order) {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let answer = format!(r#"{{"error":"bad creds for {SECRET}"}}"#);
    let token = common::fixed_token_mock(&server, 401, "application/json", answer).await;
    let (api, _) = api_mock(&server, |_, _| status(200)).await;

    let err = client(order, &server, &clock)
        .get(server.url(API_PATH))
        .send()
        .await
        .expect_err("the token cannot be obtained");

    match Error::from_middleware(&err) {
        Some(Error::InvalidCredentials { message, .. }) => {
            assert_eq!(message, "bad creds for [redacted]", "{order:?}")
        }
        other => panic!("{order:?}: expected InvalidCredentials, got {other:?} ({err:?})"),
    }
    assert!(
        matches!(Error::find(&err), Some(Error::InvalidCredentials { .. })),
        "{order:?}: {err:?}"
    );
    assert_eq!(token.calls_async().await, 1, "{order:?}");
    assert_eq!(api.calls_async().await, 0, "{order:?}");
    let shown = shown(err);
    assert!(!shown.contains(SECRET), "{order:?}: {shown}");
}

#[tokio::test]
async fn invalid_credentials_are_found_with_retry_outside_auth() {
    invalid_credentials_are_found(Order::RetryOutsideAuth).await;
}

#[tokio::test]
async fn invalid_credentials_are_found_with_auth_outside_retry() {
    invalid_credentials_are_found(Order::AuthOutsideRetry).await;
}

/// With retry outside auth, the crate's error sits in reqwest-retry's `RetryError::Error`
/// (a transparent wrapper): the top-level `Display` is the layer's own short message, the
/// alternate `Display` of an anyhow chain names both levels once, and `Error::find` reaches
/// the crate's error through the wrappers' `source()` chain.
#[tokio::test]
async fn the_error_behind_retry_error_reads_once_per_level() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    common::fixed_token_mock(&server, 401, "application/json", r#"{"error":"bad creds"}"#).await;

    let err = client(Order::RetryOutsideAuth, &server, &clock)
        .get(server.url(API_PATH))
        .send()
        .await
        .expect_err("the token cannot be obtained");

    let reqwest_middleware::Error::Middleware(inner) = &err else {
        panic!("expected a middleware error, got {err:?}");
    };
    assert!(
        matches!(
            inner.downcast_ref::<RetryError>(),
            Some(RetryError::Error(_))
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "could not authorize the request");
    let chain: Vec<String> =
        std::iter::successors(Some(&err as &(dyn std::error::Error + 'static)), |e| {
            e.source()
        })
        .map(|e| e.to_string())
        .collect();
    assert_eq!(
        chain,
        [
            "could not authorize the request",
            "invalid credentials: bad creds"
        ]
    );
}

/// The API answers 503 once and the token expires meanwhile; the next token fetch is
/// refused. With retry outside auth, the retry's pass through the auth layer fails with the
/// crate's error, which reqwest-retry wraps in `RetryError::WithRetries` (its other variant,
/// whose `Display` is its own): the crate's error is still found.
#[tokio::test]
async fn the_error_behind_retry_error_with_retries_is_found() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = common::counted_mock(
        &server,
        |w| w.method(Method::POST).path(TOKEN_PATH),
        |n, _| match n {
            1 => common::numbered_token(1, LIFETIME),
            _ => json_response(401, r#"{"error":"key revoked"}"#),
        },
    )
    .await;
    let advance = clock.clone();
    let (api, seen) = api_mock(&server, move |n, _| {
        advance.advance(Duration::from_secs(LIFETIME));
        status(if n == 1 { 503 } else { 200 })
    })
    .await;

    let err = client(Order::RetryOutsideAuth, &server, &clock)
        .get(server.url(API_PATH))
        .send()
        .await
        .expect_err("the second token cannot be obtained");

    let reqwest_middleware::Error::Middleware(inner) = &err else {
        panic!("expected a middleware error, got {err:?}");
    };
    assert!(
        matches!(
            inner.downcast_ref::<RetryError>(),
            Some(RetryError::WithRetries { retries: 1, .. })
        ),
        "{err:?}"
    );
    match Error::from_middleware(&err) {
        Some(Error::InvalidCredentials { message, .. }) => assert_eq!(message, "key revoked"),
        other => panic!("expected InvalidCredentials, got {other:?} ({err:?})"),
    }
    assert_eq!(
        format!("{:#}", anyhow::Error::new(err)),
        "Request failed after 1 retries: could not authorize the request: \
         invalid credentials: key revoked"
    );
    assert_eq!(token.calls_async().await, 2);
    assert_eq!(api.calls_async().await, 1);
    assert_eq!(seen.all(), [bearer(1)]);
}

/// A token endpoint failing with 503: the crate retries it itself (three attempts on its
/// manual clock), then `Error::TokenEndpoint` is found; reqwest-retry does not retry a
/// middleware error, so in either order the endpoint is asked exactly three times and the API
/// never.
async fn failing_token_endpoint_is_found(order: Order) {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token =
        common::fixed_token_mock(&server, 503, "application/json", r#"{"error":"down"}"#).await;
    let (api, _) = api_mock(&server, |_, _| status(200)).await;

    let err = client(order, &server, &clock)
        .get(server.url(API_PATH))
        .send()
        .await
        .expect_err("the token endpoint is down");

    match Error::from_middleware(&err) {
        Some(Error::TokenEndpoint { status, .. }) => assert_eq!(status.as_u16(), 503, "{order:?}"),
        other => panic!("{order:?}: expected TokenEndpoint, got {other:?} ({err:?})"),
    }
    assert_eq!(
        token.calls_async().await,
        3,
        "{order:?}: the crate's own retries"
    );
    assert_eq!(api.calls_async().await, 0, "{order:?}");
}

#[tokio::test]
async fn failing_token_endpoint_is_found_with_retry_outside_auth() {
    failing_token_endpoint_is_found(Order::RetryOutsideAuth).await;
}

#[tokio::test]
async fn failing_token_endpoint_is_found_with_auth_outside_retry() {
    failing_token_endpoint_is_found(Order::AuthOutsideRetry).await;
}

/// A failure that is not the crate's (nothing listens where the API should be): `None` from
/// both look-ups, in either order.
async fn other_failures_are_not_the_crates(order: Order) {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    numbered_token_mock(&server, LIFETIME, Duration::ZERO).await;
    // Scope the layer to the dead origin so that the token is still attached there.
    let dead = url::Url::parse(&format!("http://127.0.0.1:{}/", common::dead_port())).unwrap();
    let layer = middleware(&server, &clock).add_origin(&dead).build();

    let err = stack(order, layer)
        .get(dead.join(API_PATH).unwrap())
        .send()
        .await
        .expect_err("nothing listens there");

    assert!(Error::from_middleware(&err).is_none(), "{order:?}: {err:?}");
    assert!(Error::find(&err).is_none(), "{order:?}: {err:?}");
}

#[tokio::test]
async fn other_failures_are_not_the_crates_with_retry_outside_auth() {
    other_failures_are_not_the_crates(Order::RetryOutsideAuth).await;
}

#[tokio::test]
async fn other_failures_are_not_the_crates_with_auth_outside_retry() {
    other_failures_are_not_the_crates(Order::AuthOutsideRetry).await;
}

// -------------------------------------------------------------------------------------------
// Retries and tokens
// -------------------------------------------------------------------------------------------

/// The API answers 503, then 200: the request succeeds after one retry, the API sees the
/// token both times, and one token is fetched, in either order.
async fn api_503_then_200(order: Order) {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, LIFETIME, Duration::ZERO).await;
    let (api, seen) = api_mock(&server, |n, _| status(if n == 1 { 503 } else { 200 })).await;

    let res = client(order, &server, &clock)
        .get(server.url(API_PATH))
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), 200, "{order:?}");
    assert_eq!(api.calls_async().await, 2, "{order:?}");
    assert_eq!(seen.all(), [bearer(1), bearer(1)], "{order:?}");
    assert_eq!(token.calls_async().await, 1, "{order:?}");
}

#[tokio::test]
async fn api_503_then_200_with_retry_outside_auth() {
    api_503_then_200(Order::RetryOutsideAuth).await;
}

#[tokio::test]
async fn api_503_then_200_with_auth_outside_retry() {
    api_503_then_200(Order::AuthOutsideRetry).await;
}

/// The API rejects `tok-1` (401), then answers 503, then 200. In either order the layer
/// replays the 401 once with `tok-2` (the 401 is not transient for reqwest-retry, so it
/// reaches the layer), the 503 is retried with `tok-2`, and two tokens are fetched.
async fn api_401_then_503_then_200(order: Order) {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, LIFETIME, Duration::ZERO).await;
    let (api, seen) = api_mock(&server, |n, _| {
        status(match n {
            1 => 401,
            2 => 503,
            _ => 200,
        })
    })
    .await;

    let res = client(order, &server, &clock)
        .get(server.url(API_PATH))
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), 200, "{order:?}");
    assert_eq!(api.calls_async().await, 3, "{order:?}");
    assert_eq!(seen.all(), [bearer(1), bearer(2), bearer(2)], "{order:?}");
    assert_eq!(token.calls_async().await, 2, "{order:?}");
}

#[tokio::test]
async fn api_401_then_503_then_200_with_retry_outside_auth() {
    api_401_then_503_then_200(Order::RetryOutsideAuth).await;
}

#[tokio::test]
async fn api_401_then_503_then_200_with_auth_outside_retry() {
    api_401_then_503_then_200(Order::AuthOutsideRetry).await;
}

/// An API that answers the first request 503 and, while answering it, lets the token expire
/// (the handler advances the layer's clock by the token's lifetime); afterwards it rejects
/// `tok-1` (401, as a real API rejects an expired token) and accepts `tok-2`.
async fn api_expiring_during_the_retry_wait<'a>(
    server: &'a MockServer,
    clock: &ManualClock,
) -> (Mock<'a>, Seen) {
    let clock = clock.clone();
    api_mock(server, move |n, auth| {
        if n == 1 {
            clock.advance(Duration::from_secs(LIFETIME));
            return status(503);
        }
        status(if auth == bearer(2) { 200 } else { 401 })
    })
    .await
}

/// Retry outside auth: the retry passes through the auth layer, which sees the token
/// expired, fetches `tok-2` and sends it. No 401 is spent: the API sees `tok-1`, `tok-2`.
#[tokio::test]
async fn token_expiring_during_the_retry_wait_with_retry_outside_auth() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, LIFETIME, Duration::ZERO).await;
    let (api, seen) = api_expiring_during_the_retry_wait(&server, &clock).await;

    let res = client(Order::RetryOutsideAuth, &server, &clock)
        .get(server.url(API_PATH))
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(seen.all(), [bearer(1), bearer(2)], "no 401 spent");
    assert_eq!(api.calls_async().await, 2);
    assert_eq!(token.calls_async().await, 2);
}

/// Auth outside retry: the retry re-sends the request the layer already authorised, with
/// the expired `tok-1`; the API answers 401, which reqwest-retry does not retry; the layer
/// takes it as a rejection, fetches `tok-2` and replays once (through the retry layer). The
/// request succeeds, at the cost of one request spent on a 401: the API sees `tok-1`,
/// `tok-1`, `tok-2`.
#[tokio::test]
async fn token_expiring_during_the_retry_wait_with_auth_outside_retry() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, LIFETIME, Duration::ZERO).await;
    let (api, seen) = api_expiring_during_the_retry_wait(&server, &clock).await;

    let res = client(Order::AuthOutsideRetry, &server, &clock)
        .get(server.url(API_PATH))
        .send()
        .await
        .unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(seen.all(), [bearer(1), bearer(1), bearer(2)]);
    assert_eq!(api.calls_async().await, 3);
    assert_eq!(token.calls_async().await, 2);
}

/// The same expiry for a request carrying `NoReplay`: with retry outside auth it succeeds as
/// before (the retry reads the new token; no replay is needed), with auth outside retry the
/// layer may not replay it, so the 401 the stale retry earned comes back to the caller.
async fn no_replay_request_and_a_token_expiring_during_the_retry_wait(order: Order) {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, LIFETIME, Duration::ZERO).await;
    let (_api, seen) = api_expiring_during_the_retry_wait(&server, &clock).await;

    let res = client(order, &server, &clock)
        .get(server.url(API_PATH))
        .with_extension(NoReplay)
        .send()
        .await
        .unwrap();

    match order {
        Order::RetryOutsideAuth => {
            assert_eq!(res.status(), 200);
            assert_eq!(seen.all(), [bearer(1), bearer(2)]);
            assert_eq!(token.calls_async().await, 2);
        }
        Order::AuthOutsideRetry => {
            assert_eq!(res.status(), 401);
            assert_eq!(seen.all(), [bearer(1), bearer(1)]);
            assert_eq!(token.calls_async().await, 1, "no replay, so no new token");
        }
    }
}

#[tokio::test]
async fn no_replay_request_and_a_token_expiring_during_the_retry_wait_with_retry_outside_auth() {
    no_replay_request_and_a_token_expiring_during_the_retry_wait(Order::RetryOutsideAuth).await;
}

#[tokio::test]
async fn no_replay_request_and_a_token_expiring_during_the_retry_wait_with_auth_outside_retry() {
    no_replay_request_and_a_token_expiring_during_the_retry_wait(Order::AuthOutsideRetry).await;
}

// -------------------------------------------------------------------------------------------
// anyhow
// -------------------------------------------------------------------------------------------

/// An application that turns the client's error into an `anyhow::Error` and adds context
/// twice still finds the crate's error, with `Error::find` and with anyhow's own `chain()`;
/// its alternate `Display` names each level once.
#[tokio::test]
async fn the_error_is_found_in_an_anyhow_chain_with_context() {
    use anyhow::Context as _;

    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    common::fixed_token_mock(&server, 401, "application/json", r#"{"error":"bad creds"}"#).await;
    let client = client(Order::RetryOutsideAuth, &server, &clock);

    let fetch_items = || async {
        client
            .get(server.url(API_PATH))
            .send()
            .await
            .context("fetching items")
    };
    let err = async { fetch_items().await.context("nightly sync") }
        .await
        .expect_err("the token cannot be obtained");

    assert!(
        matches!(
            Error::find(err.as_ref()),
            Some(Error::InvalidCredentials { message, .. }) if message == "bad creds"
        ),
        "{err:?}"
    );
    assert!(
        matches!(
            err.chain().find_map(|e| e.downcast_ref::<Error>()),
            Some(Error::InvalidCredentials { .. })
        ),
        "{err:?}"
    );
    assert_eq!(
        format!("{err:#}"),
        "nightly sync: fetching items: could not authorize the request: \
         invalid credentials: bad creds"
    );
}

/// `Error::find` on the crate's error itself, and on an error that holds it directly as its
/// `source()`, returns it; on an unrelated error, `None`.
#[test]
fn find_walks_the_source_chain() {
    #[derive(Debug)]
    struct Outer(Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("outer")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    let err = Error::SourcePanicked;
    assert!(matches!(Error::find(&err), Some(Error::SourcePanicked)));
    assert!(matches!(
        Error::find(&Outer(Error::FetchCancelled)),
        Some(Error::FetchCancelled)
    ));
    let io = std::io::Error::other("unrelated");
    assert!(Error::find(&io).is_none());
    // A crate error put into a `reqwest_middleware::Error` by hand, not through the layer.
    let by_hand = reqwest_middleware::Error::middleware(Error::FetchCancelled);
    assert!(matches!(Error::find(&by_hand), Some(Error::FetchCancelled)));
    assert!(matches!(
        Error::from_middleware(&by_hand),
        Some(Error::FetchCancelled)
    ));
}

/// The layer's own `reqwest_middleware::Error` (auth outside retry, so nothing wraps it)
/// reads as the layer's short message, and anyhow's `downcast_ref::<Error>()` on its
/// `Middleware` variant still finds the crate's error, as before it gained that message.
#[tokio::test]
async fn the_layers_own_error_still_downcasts_from_its_anyhow() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    common::fixed_token_mock(&server, 401, "application/json", r#"{"error":"bad creds"}"#).await;

    let err = client(Order::AuthOutsideRetry, &server, &clock)
        .get(server.url(API_PATH))
        .send()
        .await
        .expect_err("the token cannot be obtained");

    let reqwest_middleware::Error::Middleware(inner) = &err else {
        panic!("expected a middleware error, got {err:?}");
    };
    assert!(
        matches!(
            inner.downcast_ref::<Error>(),
            Some(Error::InvalidCredentials { message, .. }) if message == "bad creds"
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "could not authorize the request");
    assert_eq!(
        format!("{inner:#}"),
        "could not authorize the request: invalid credentials: bad creds"
    );
}

/// A request with a streaming body never reaches the API through reqwest-retry, in either
/// order: the retry layer clones the request before every attempt, and a stream cannot be
/// cloned. The failure is reqwest-retry's, not the crate's.
async fn streaming_body_is_refused_by_the_retry_layer(order: Order) {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    numbered_token_mock(&server, LIFETIME, Duration::ZERO).await;
    let api = server
        .mock_async(|when, then| {
            when.method(Method::POST).path(API_PATH);
            then.status(200);
        })
        .await;
    let chunks = futures_util::stream::iter([Ok::<_, std::io::Error>("a stream")]);

    let err = client(order, &server, &clock)
        .post(server.url(API_PATH))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect_err("reqwest-retry cannot clone a stream");

    assert!(
        err.to_string().contains("not cloneable"),
        "{order:?}: {err}"
    );
    assert!(Error::from_middleware(&err).is_none(), "{order:?}: {err:?}");
    assert_eq!(api.calls_async().await, 0, "{order:?}");
}

#[tokio::test]
async fn streaming_body_is_refused_by_the_retry_layer_with_retry_outside_auth() {
    streaming_body_is_refused_by_the_retry_layer(Order::RetryOutsideAuth).await;
}

#[tokio::test]
async fn streaming_body_is_refused_by_the_retry_layer_with_auth_outside_retry() {
    streaming_body_is_refused_by_the_retry_layer(Order::AuthOutsideRetry).await;
}

/// When the retry layer must sit inside the auth layer, the same layer (a clone: one cache)
/// added below the retry layer too keeps retries from re-sending a token it knows to be
/// stale: every attempt passes through it, and a token of its own that has expired or been
/// replaced is replaced before the attempt goes out. The API sees `tok-1`, then `tok-2`: no
/// 401 is spent, and only the outer layer replays (nothing here needs to).
#[tokio::test]
async fn the_same_layer_below_the_retry_layer_replaces_a_token_that_expired_during_the_wait() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, LIFETIME, Duration::ZERO).await;
    let (api, seen) = api_expiring_during_the_retry_wait(&server, &clock).await;
    let auth = middleware(&server, &clock).build();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(TracingMiddleware::default())
        .with(auth.clone())
        .with(retry_layer())
        .with(auth)
        .build();

    let res = client.get(server.url(API_PATH)).send().await.unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(seen.all(), [bearer(1), bearer(2)], "no 401 spent");
    assert_eq!(api.calls_async().await, 2);
    assert_eq!(token.calls_async().await, 2);
}

/// A request that carries an `Authorization` of its own (not a token of this layer) is left
/// alone by the layer below the retry layer as well.
#[tokio::test]
async fn the_layer_below_the_retry_layer_leaves_a_foreign_authorization_alone() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = numbered_token_mock(&server, LIFETIME, Duration::ZERO).await;
    let (_api, seen) = api_mock(&server, |_, _| status(200)).await;
    let auth = middleware(&server, &clock).build();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(auth.clone())
        .with(retry_layer())
        .with(auth)
        .build();

    client
        .get(server.url(API_PATH))
        .header("authorization", "Bearer my-own")
        .send()
        .await
        .unwrap();

    assert_eq!(seen.all(), ["Bearer my-own"]);
    assert_eq!(token.calls_async().await, 0);
}
