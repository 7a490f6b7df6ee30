//! How the layer copes with a failing or misbehaving token endpoint: bounded retries of
//! transient failures, no retries of credential errors, a typed error (never a panic or a
//! hang) for every kind of bad answer, no redirect followed, and a timeout on every client.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{fixed_token_mock, middleware, token_body, IntoLayer, TestSource, TOKEN_PATH};
use httpmock::{HttpMockResponse, MockServer, When};
use reqwest_partner_auth::cache::RetryPolicy;
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::engine::{Encoding, HttpTokenSource, Param, DEFAULT_MAX_BODY};
use reqwest_partner_auth::error::Malformed;
use reqwest_partner_auth::{AuthMiddleware, Clock, Error};
use url::Url;

const API_PATH: &str = "/v1/thing";

/// An API endpoint that accepts only `Bearer good-token`.
async fn api_mock(server: &MockServer) -> httpmock::Mock<'_> {
    server
        .mock_async(|when, then| {
            when.method("GET")
                .path(API_PATH)
                .header("authorization", "Bearer good-token");
            then.status(200).body("ok");
        })
        .await
}

/// A token endpoint that answers `answers[i]` to its i-th call (the last one from then on),
/// each as (status, extra headers, body).
async fn sequence_mock(server: &MockServer, answers: Vec<Answer>) -> httpmock::Mock<'_> {
    let when = |when: When| when.method("POST").path(TOKEN_PATH);
    common::counted_mock(server, when, move |n, _| {
        // `n` counts from 1, `answers` from 0.
        let (status, headers, body) = &answers[(n - 1).min(answers.len() - 1)];
        let mut res = HttpMockResponse::builder()
            .status(*status)
            .header("content-type", "application/json");
        for (k, v) in headers {
            res = res.header(*k, v.clone());
        }
        res.body(body.clone()).build()
    })
    .await
}

/// One scripted answer of a token endpoint: status, extra headers, body.
type Answer = (u16, Vec<(&'static str, String)>, String);

fn ok() -> Answer {
    (200, vec![], token_body("good-token", 3600))
}

fn status(code: u16, body: &str) -> Answer {
    (code, vec![], body.to_owned())
}

/// Sends one API request through `mw` and returns the crate error it failed with.
async fn fail_with(server: &MockServer, mw: impl IntoLayer) -> Error {
    common::layer_error(common::client(mw).get(server.url(API_PATH))).await
}

// ---------------------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------------------

/// Two 500s then a 200 is a success after exactly 3 fetches, with a
/// backoff wait (on the manual clock) between them.
#[tokio::test]
async fn transient_500s_are_retried_until_success() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = sequence_mock(
        &server,
        vec![
            status(500, r#"{"error":"oops"}"#),
            status(500, r#"{"error":"oops"}"#),
            ok(),
        ],
    )
    .await;
    let api = api_mock(&server).await;
    let client = common::client(middleware(&server, &clock));

    let res = client.get(server.url(API_PATH)).send().await.unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(token.calls_async().await, 3);
    assert_eq!(api.calls_async().await, 1);
    assert!(
        clock.slept() > Duration::ZERO,
        "no backoff between attempts"
    );
    assert!(
        clock.slept() <= Duration::from_secs(20),
        "two waits of at most max_delay (10 s) each, slept {:?}",
        clock.slept()
    );
}

/// A token endpoint that always answers 503 is tried exactly
/// `max_attempts` (3) times, then the caller gets `Error::TokenEndpoint { status: 503 }`.
#[tokio::test]
async fn persistent_503_gives_up_after_max_attempts() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = fixed_token_mock(&server, 503, "text/plain", "service unavailable").await;
    let api = api_mock(&server).await;

    let err = fail_with(&server, middleware(&server, &clock)).await;

    match &err {
        Error::TokenEndpoint {
            status, excerpt, ..
        } => {
            assert_eq!(*status, 503);
            assert_eq!(excerpt, "service unavailable");
        }
        other => panic!("expected TokenEndpoint, got {other:?}"),
    }
    assert_eq!(token.calls_async().await, 3);
    assert_eq!(api.calls_async().await, 0);
    assert!(clock.slept() > Duration::ZERO);
}

/// A 429 with `Retry-After: 7` is retried after exactly the 7 s the
/// endpoint asked for (read off the manual clock), then succeeds.
#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = sequence_mock(
        &server,
        vec![
            (
                429,
                vec![("retry-after", "7".into())],
                r#"{"error":"slow down"}"#.into(),
            ),
            ok(),
        ],
    )
    .await;
    let api = api_mock(&server).await;
    let client = common::client(middleware(&server, &clock));

    let res = client.get(server.url(API_PATH)).send().await.unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(token.calls_async().await, 2);
    assert_eq!(api.calls_async().await, 1);
    assert!(
        clock.slept() >= Duration::from_secs(7),
        "slept {:?}",
        clock.slept()
    );
    assert_eq!(
        clock.slept(),
        Duration::from_secs(7),
        "Retry-After replaces the backoff"
    );
}

/// `Retry-After` as an HTTP date is honoured too, counted from the
/// (manual) wall clock.
#[tokio::test]
async fn retry_after_http_date_is_honoured() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let at = httpdate::fmt_http_date(clock.system_now() + Duration::from_secs(8));
    let token = sequence_mock(
        &server,
        vec![
            (
                503,
                vec![("retry-after", at)],
                r#"{"error":"maintenance"}"#.into(),
            ),
            ok(),
        ],
    )
    .await;
    let api = api_mock(&server).await;
    let client = common::client(middleware(&server, &clock));

    let res = client.get(server.url(API_PATH)).send().await.unwrap();

    assert_eq!(res.status(), 200);
    assert_eq!(token.calls_async().await, 2);
    assert_eq!(api.calls_async().await, 1);
    // The date has whole seconds: the wait is 8 s minus the sub-second part of "now"
    // (under the policy's 10 s max_delay, so not capped).
    let slept = clock.slept();
    assert!(
        slept > Duration::from_secs(7) && slept <= Duration::from_secs(8),
        "slept {slept:?}"
    );
}

/// A `Retry-After` longer than the policy's `max_delay` is cut to it:
/// a hostile or broken endpoint cannot park the caller for an hour.
#[tokio::test]
async fn retry_after_is_capped_at_max_delay() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = sequence_mock(
        &server,
        vec![
            (429, vec![("retry-after", "3600".into())], "{}".into()),
            ok(),
        ],
    )
    .await;
    let client = common::client(middleware(&server, &clock));

    client.get(server.url(API_PATH)).send().await.unwrap();

    assert_eq!(token.calls_async().await, 2);
    assert_eq!(clock.slept(), Duration::from_secs(10));
}

/// A connect error (nothing listens on the token port) is retried
/// with backoff, then surfaces as `Error::Transport`.
#[tokio::test]
async fn connect_errors_are_retried_then_transport() {
    let api_server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let api = api_mock(&api_server).await;
    let port = common::dead_port();
    let source =
        HttpTokenSource::post(Url::parse(&format!("http://127.0.0.1:{port}{TOKEN_PATH}")).unwrap())
            .param("client_id", Param::text("test-client"))
            .param("client_secret", Param::secret(common::SECRET))
            .add_origin(&common::base(&api_server));
    let mw = common::on_clock(AuthMiddleware::builder(source), &clock);

    let err = fail_with(&api_server, mw).await;

    match &err {
        Error::Transport { message, source } => {
            assert_eq!(message, "connection failed");
            assert!(source.is_connect(), "{source:?}");
        }
        other => panic!("expected Transport, got {other:?}"),
    }
    // Three attempts means two backoff waits of at least min_delay each (jitter only adds).
    assert!(
        clock.slept() >= Duration::from_millis(200),
        "slept {:?}",
        clock.slept()
    );
    assert_eq!(api.calls_async().await, 0);
}

/// Credential rejections (400 and 401) are not retried: exactly one
/// fetch, and the partner's message comes back in `Error::InvalidCredentials`.
#[tokio::test]
async fn credential_rejections_are_not_retried() {
    for code in [400, 401] {
        let server = MockServer::start_async().await;
        let clock = ManualClock::new();
        let token = fixed_token_mock(
            &server,
            code,
            "application/json",
            r#"{"error":"Invalid API credentials"}"#,
        )
        .await;
        let api = api_mock(&server).await;

        let err = fail_with(&server, middleware(&server, &clock)).await;

        assert!(
            matches!(&err, Error::InvalidCredentials { message, .. } if message == "Invalid API credentials"),
            "{code}: {err:?}"
        );
        assert_eq!(token.calls_async().await, 1, "{code} was retried");
        assert_eq!(api.calls_async().await, 0);
        assert_eq!(clock.slept(), Duration::ZERO, "{code}: waited for nothing");
    }
}

/// An OAuth `invalid_client` error is a credential error whatever the
/// status (here a 500, which would otherwise be retried).
#[tokio::test]
async fn invalid_client_code_is_not_retried_even_on_5xx() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = fixed_token_mock(
        &server,
        500,
        "application/json",
        r#"{"error":"invalid_client","error_description":"unknown client"}"#,
    )
    .await;

    let err = fail_with(&server, middleware(&server, &clock)).await;

    match &err {
        Error::InvalidCredentials { message, code } => {
            assert_eq!(message, "unknown client");
            assert_eq!(code.as_deref(), Some("invalid_client"));
        }
        other => panic!("expected InvalidCredentials, got {other:?}"),
    }
    assert_eq!(token.calls_async().await, 1);
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

/// Runs one fetch against a token endpoint answering `status`/`content_type`/`body` and
/// returns the error; asserts exactly one fetch (malformed answers are not retried).
async fn malformed_case(status: u16, content_type: &str, body: impl Into<String>) -> Error {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = fixed_token_mock(&server, status, content_type, body).await;
    let err = fail_with(
        &server,
        middleware(&server, &clock).retry_policy(RetryPolicy::none()),
    )
    .await;
    assert_eq!(token.calls_async().await, 1);
    err
}

fn assert_malformed(err: &Error, expected: &Malformed) {
    match err {
        Error::MalformedResponse(m) => assert_eq!(m, expected),
        other => panic!("expected MalformedResponse({expected:?}), got {other:?}"),
    }
}

fn assert_invalid_field(err: &Error, name: &str) {
    match err {
        Error::MalformedResponse(Malformed::InvalidField { field, .. }) => {
            assert_eq!(field, name)
        }
        other => panic!("expected InvalidField({name}), got {other:?}"),
    }
}

/// A success body that is not JSON is `Malformed::InvalidJson`, and the
/// problem description does not quote the body.
#[tokio::test]
async fn malformed_json_is_invalid_json() {
    let err = malformed_case(200, "application/json", r#"{"access_token": "abc"#).await;
    match &err {
        Error::MalformedResponse(Malformed::InvalidJson(problem)) => {
            assert!(!problem.contains("abc"), "{problem}");
        }
        other => panic!("expected InvalidJson, got {other:?}"),
    }
}

/// A JSON array (valid JSON, not an object) is `InvalidJson`.
#[tokio::test]
async fn json_array_is_invalid_json() {
    let err = malformed_case(200, "application/json", r#"["access_token","abc"]"#).await;
    assert!(
        matches!(err, Error::MalformedResponse(Malformed::InvalidJson(_))),
        "{err:?}"
    );
}

/// An HTML page with status 200 (a captive portal, a login page) is
/// `Malformed::Html`, whether it says `text/html` or not.
#[tokio::test]
async fn html_page_with_200_is_html() {
    let page = "<!DOCTYPE html><html><body><h1>Sign in</h1></body></html>";
    let err = malformed_case(200, "text/html; charset=utf-8", page).await;
    assert_malformed(&err, &Malformed::Html);
    let err = malformed_case(200, "application/json", format!("\n  {page}")).await;
    assert_malformed(&err, &Malformed::Html);
}

/// An HTML error page with status 502 (a proxy in front of the
/// endpoint) is `TokenEndpoint { status: 502 }` whose excerpt says "html page" and does not
/// carry the HTML.
#[tokio::test]
async fn html_page_with_502_is_token_endpoint_without_the_html() {
    let page = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>";
    let err = malformed_case(502, "text/html", page).await;
    match &err {
        Error::TokenEndpoint {
            status, excerpt, ..
        } => {
            assert_eq!(*status, 502);
            assert!(excerpt.contains("html page"), "{excerpt}");
            assert!(
                !excerpt.contains('<') && !excerpt.contains("nginx"),
                "{excerpt}"
            );
        }
        other => panic!("expected TokenEndpoint, got {other:?}"),
    }
    assert!(!err.to_string().contains("<html>"), "{err}");
}

/// An empty (or blank) success body is `Malformed::EmptyBody`.
#[tokio::test]
async fn empty_body_is_empty_body() {
    let err = malformed_case(200, "application/json", "").await;
    assert_malformed(&err, &Malformed::EmptyBody);
    let err = malformed_case(200, "application/json", " \r\n ").await;
    assert_malformed(&err, &Malformed::EmptyBody);
}

/// A body over a configured cap (`max_body(1024)`) is
/// `Malformed::TooLarge { limit: 1024 }`, even though it is an otherwise valid answer.
#[tokio::test]
async fn body_over_configured_cap_is_too_large() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = fixed_token_mock(
        &server,
        200,
        "application/json",
        token_body(&"a".repeat(2048), 3600),
    )
    .await;
    let mw = AuthMiddleware::builder(TestSource::new(&server).map(|s| s.max_body(1024)))
        .clock(Arc::new(clock.clone()))
        .retry_policy(RetryPolicy::none());

    let err = fail_with(&server, mw).await;

    assert_malformed(&err, &Malformed::TooLarge { limit: 1024 });
    assert_eq!(token.calls_async().await, 1);
}

/// The default cap is 64 KiB: a 1 MiB body is
/// `Malformed::TooLarge { limit: 65536 }`.
#[tokio::test]
async fn body_over_default_cap_is_too_large() {
    assert_eq!(DEFAULT_MAX_BODY, 64 * 1024);
    let huge = token_body(&"a".repeat(1024 * 1024), 3600);
    let err = malformed_case(200, "application/json", huge).await;
    assert_malformed(&err, &Malformed::TooLarge { limit: 64 * 1024 });
}

/// A body without the token field is
/// `Malformed::MissingField("access_token")`.
#[tokio::test]
async fn missing_token_field_is_missing_field() {
    let err = malformed_case(
        200,
        "application/json",
        r#"{"token_type":"Bearer","expires_in":3600}"#,
    )
    .await;
    assert_malformed(&err, &Malformed::MissingField("access_token".into()));
}

/// `access_token` of the wrong type (a number) is
/// `Malformed::InvalidField { field: "access_token" }`.
#[tokio::test]
async fn numeric_token_is_invalid_field() {
    let err = malformed_case(200, "application/json", r#"{"access_token":12345}"#).await;
    assert_invalid_field(&err, "access_token");
    assert!(!err.to_string().contains("12345"), "{err}");
}

/// A token holding CR LF (header injection) is
/// `Malformed::IllegalHeaderValue`; it is never put in a header.
#[tokio::test]
async fn token_with_crlf_is_illegal_header_value() {
    let err = malformed_case(
        200,
        "application/json",
        r#"{"access_token":"abc\r\nX-Injected: 1","token_type":"Bearer"}"#,
    )
    .await;
    assert_malformed(&err, &Malformed::IllegalHeaderValue);
}

/// A token type other than Bearer (`mac`) is
/// `Malformed::InvalidField { field: "token_type" }`.
#[tokio::test]
async fn mac_token_type_is_invalid_field() {
    let err = malformed_case(
        200,
        "application/json",
        r#"{"access_token":"abc","token_type":"mac"}"#,
    )
    .await;
    assert_invalid_field(&err, "token_type");
}

/// A token endpoint that hangs is cut off by the source's `timeout`, applied to a given
/// client that has no timeout of its own: `Error::Transport` ("timed out") well before the
/// endpoint would have answered.
#[tokio::test]
async fn hanging_endpoint_times_out() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = server
        .mock_async(|when, then| {
            when.method("POST").path(TOKEN_PATH);
            then.status(200)
                .header("content-type", "application/json")
                .body(token_body("late-token", 3600))
                .delay(Duration::from_secs(5));
        })
        .await;
    let mw = AuthMiddleware::builder(TestSource::new(&server).map(|s| {
        s.http_client(reqwest::Client::new())
            .timeout(Duration::from_millis(300))
    }))
    .clock(Arc::new(clock.clone()))
    .retry_policy(RetryPolicy::none());

    let started = Instant::now();
    let err = fail_with(&server, mw).await;
    let elapsed = started.elapsed();

    match &err {
        Error::Transport { message, source } => {
            assert_eq!(message, "timed out");
            assert!(source.is_timeout(), "{source:?}");
        }
        other => panic!("expected Transport, got {other:?}"),
    }
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(clock.slept(), Duration::ZERO, "RetryPolicy::none() retried");
}

/// `default_token_client`: token endpoints are called without following redirects, so a
/// redirect (here a 307, which would resend the body) cannot forward the credentials to
/// another host. The redirect is a non-transient `TokenEndpoint` error; the other host is
/// never contacted.
#[tokio::test]
async fn token_endpoint_redirects_are_not_followed() {
    let server = MockServer::start_async().await;
    let elsewhere = MockServer::start_async().await;
    let clock = ManualClock::new();
    let target = elsewhere.url(TOKEN_PATH);
    let redirect = server
        .mock_async(move |when, then| {
            when.method("POST").path(TOKEN_PATH);
            then.status(307).header("location", target);
        })
        .await;
    let stolen = elsewhere
        .mock_async(|when, then| {
            when.any_request();
            then.status(200).body(token_body("tok", 3600));
        })
        .await;

    let err = fail_with(&server, middleware(&server, &clock)).await;

    match &err {
        Error::TokenEndpoint { status, .. } => assert_eq!(status.as_u16(), 307),
        other => panic!("expected TokenEndpoint 307, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert_eq!(redirect.calls_async().await, 1);
    assert_eq!(
        stolen.calls_async().await,
        0,
        "credentials went to another host"
    );
}

/// A client that follows redirects (`reqwest::Client::new()`) given for the token endpoint:
/// a 307 or 308 must not re-post the credentials (body and Basic) to the redirect target. The
/// other server sees no request at all; the caller gets a non-transient
/// `Error::TokenEndpoint` with the 3xx status that says redirects are not followed.
#[tokio::test]
async fn a_307_or_308_does_not_repost_credentials_whatever_client_is_given() {
    for code in [307, 308] {
        let server = MockServer::start_async().await;
        let elsewhere = MockServer::start_async().await;
        let clock = ManualClock::new();
        let target = elsewhere.url(TOKEN_PATH);
        let redirect = server
            .mock_async(move |when, then| {
                when.method("POST").path(TOKEN_PATH);
                then.status(code).header("location", target);
            })
            .await;
        let stolen = elsewhere
            .mock_async(|when, then| {
                when.any_request();
                then.status(200)
                    .header("content-type", "application/json")
                    .body(token_body("tok", 3600));
            })
            .await;
        let source = TestSource::new(&server).map(|s| {
            s.http_client(reqwest::Client::new())
                .basic_auth("client-id", common::SECRET.into())
        });
        let mw = common::on_clock(AuthMiddleware::builder(source), &clock);

        let err = fail_with(&server, mw).await;

        match &err {
            Error::TokenEndpoint {
                status, excerpt, ..
            } => {
                assert_eq!(status.as_u16(), code);
                assert!(excerpt.contains("redirects"), "{excerpt}");
            }
            other => panic!("{code}: expected TokenEndpoint, got {other:?}"),
        }
        assert!(!err.is_transient());
        assert_eq!(redirect.calls_async().await, 1, "{code}");
        assert_eq!(
            stolen.calls_async().await,
            0,
            "{code}: credentials went to another host"
        );
    }
}

/// A client that follows redirects turns a 301/302/303 into a `GET` to the target. That
/// request carries no credential (no body, reqwest drops `Authorization` across hosts), and
/// whatever the target answers (here a valid-looking token) is not taken: the answer came
/// from another URL than the token endpoint, an `Error::TokenEndpoint` that says redirects
/// are not followed.
#[tokio::test]
async fn a_redirect_the_client_followed_is_an_error_and_carried_no_credentials() {
    for code in [301, 302, 303] {
        let server = MockServer::start_async().await;
        let elsewhere = MockServer::start_async().await;
        let clock = ManualClock::new();
        let target = elsewhere.url(TOKEN_PATH);
        server
            .mock_async(move |when, then| {
                when.method("POST").path(TOKEN_PATH);
                then.status(code).header("location", target);
            })
            .await;
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        let other = elsewhere
            .mock_async(move |when, then| {
                when.any_request();
                then.respond_with(move |req: &httpmock::HttpMockRequest| {
                    record.lock().unwrap().push(common::Seen::of(req));
                    HttpMockResponse::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(token_body("foreign-token", 3600))
                        .build()
                });
            })
            .await;
        let source = TestSource::new(&server).map(|s| {
            s.http_client(reqwest::Client::new())
                .basic_auth("client-id", common::SECRET.into())
        });
        let mw = common::on_clock(AuthMiddleware::builder(source), &clock);

        let err = fail_with(&server, mw).await;

        match &err {
            Error::TokenEndpoint {
                status, excerpt, ..
            } => {
                assert!(status.is_redirection(), "{code}: {status}");
                assert!(excerpt.contains("redirects"), "{excerpt}");
            }
            other => panic!("{code}: expected TokenEndpoint, got {other:?}"),
        }
        assert!(!err.is_transient());
        assert_eq!(other.calls_async().await, 1, "{code}");
        let seen = seen.lock().unwrap()[0].clone();
        assert_eq!(
            seen.header("authorization"),
            None,
            "{code}: Basic went along"
        );
        assert!(
            !seen.body.contains(common::SECRET),
            "{code}: the body went along"
        );
    }
}

/// Token request bodies go out as a stream (so no client can re-send them on a redirect)
/// with an exact `Content-Length`, not chunked: JSON and form bodies, byte for byte.
#[tokio::test]
async fn token_request_bodies_have_a_content_length_and_are_not_chunked() {
    for (encoding, body) in [
        (
            Encoding::Json,
            format!(
                r#"{{"client_id":"test-client","client_secret":"{}"}}"#,
                common::SECRET
            ),
        ),
        (
            Encoding::Form,
            format!("client_id=test-client&client_secret={}", common::SECRET),
        ),
    ] {
        let server = MockServer::start_async().await;
        let clock = ManualClock::new();
        let expected = body.clone();
        let token = server
            .mock_async(move |when, then| {
                when.method("POST")
                    .path(TOKEN_PATH)
                    .header("content-length", expected.len().to_string())
                    .header_missing("transfer-encoding")
                    .body(expected);
                then.status(200)
                    .header("content-type", "application/json")
                    .body(token_body("good-token", 3600));
            })
            .await;
        let api = api_mock(&server).await;
        let mw = common::on_clock(
            AuthMiddleware::builder(TestSource::new(&server).map(|s| s.encoding(encoding))),
            &clock,
        );

        let res = common::client(mw)
            .get(server.url(API_PATH))
            .send()
            .await
            .unwrap();

        assert_eq!(res.status(), 200, "{encoding:?}");
        assert_eq!(token.calls_async().await, 1, "{encoding:?}");
        assert_eq!(api.calls_async().await, 1);
    }
}

/// A partner that echoes our `Authorization: Basic` header in its error: the exact Basic
/// credential sent (base64 of `form_encode(id):form_encode(secret)`) is scrubbed like the
/// secret itself, from the message and from `Display`.
#[tokio::test]
async fn an_echoed_basic_credential_is_scrubbed_from_errors() {
    use base64::Engine as _;
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let credential =
        base64::engine::general_purpose::STANDARD.encode(format!("client%3Aid:{}", common::SECRET));
    let body = format!(
        r#"{{"error":"invalid_client","error_description":"bad header: Basic {credential}"}}"#
    );
    let token = server
        .mock_async(move |when, then| {
            when.method("POST").path(TOKEN_PATH);
            then.status(401)
                .header("content-type", "application/json")
                .body(body);
        })
        .await;
    let source = TestSource::new(&server).map(|s| s.basic_auth("client:id", common::SECRET.into()));
    let mw = common::on_clock(AuthMiddleware::builder(source), &clock);

    let err = fail_with(&server, mw).await;

    assert!(matches!(err, Error::InvalidCredentials { .. }), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(&credential), "{shown}");
    assert!(shown.contains("bad header: Basic"), "{shown}");
    assert_eq!(token.calls_async().await, 1);
}
