//! No secret (client secret, access token, refresh token), in any encoding a partner may
//! echo it in, appears in `Debug`, `Display` or the crate's log output.

mod common;

use std::io;
use std::sync::{Arc, Mutex};

use common::{fixed_token_mock, middleware, Builder, IntoLayer, TestSource, SECRET, TOKEN_PATH};
use httpmock::{HttpMockRequest, HttpMockResponse, MockServer};
use reqwest_partner_auth::cache::RetryPolicy;
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::engine::{Encoding, ErrorShape, HttpTokenSource, Param};
use reqwest_partner_auth::{AuthMiddleware, Error, FetchContext, FetchReason, Token, TokenSource};
use secrecy::SecretString;
use url::Url;

const ACCESS_TOKEN: &str = "SENTINEL-TOKEN-3b9e";
const ACCESS_TOKEN_2: &str = "SENTINEL-TOKEN-51c0";
const REFRESH_TOKEN: &str = "SENTINEL-REFRESH-a41c";
const API_PATH: &str = "/v1/thing";

/// Panics if `text` holds any sentinel, or even the shared prefix of one (a secret cut short
/// is still a leak).
#[track_caller]
fn assert_clean(what: &str, text: &str) {
    for needle in [
        SECRET,
        ACCESS_TOKEN,
        ACCESS_TOKEN_2,
        REFRESH_TOKEN,
        "SENTINEL",
    ] {
        assert!(!text.contains(needle), "{what} leaks {needle:?}: {text}");
    }
}

/// Checks `Debug` and `Display` of an error, and of its whole `source()` chain.
#[track_caller]
fn assert_error_clean(what: &str, err: &Error) {
    assert_clean(&format!("{what} (Debug)"), &format!("{err:?}"));
    assert_clean(&format!("{what} (Display)"), &err.to_string());
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        assert_clean(&format!("{what} (source)"), &format!("{s} {s:?}"));
        source = s.source();
    }
}

fn oauth_body(token: &str) -> String {
    format!(
        r#"{{"access_token":"{token}","refresh_token":"{REFRESH_TOKEN}","token_type":"Bearer","expires_in":3600}}"#
    )
}

/// Sends one API request through `mw` and returns the crate error it failed with.
async fn fail_with(server: &MockServer, mw: impl IntoLayer) -> Error {
    let err = common::send_err(common::client(mw).get(server.url(API_PATH))).await;
    assert_clean("reqwest_middleware::Error", &format!("{err:?} {err}"));
    common::crate_error(&err)
}

/// A token endpoint answering `status`/`body` once; returns the error of one request.
async fn error_from<L: IntoLayer>(
    status: u16,
    content_type: &str,
    body: &str,
    mw: impl FnOnce(&MockServer, &ManualClock) -> L,
) -> Error {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = fixed_token_mock(&server, status, content_type, body).await;
    let err = fail_with(&server, mw(&server, &clock)).await;
    assert!(token.calls_async().await >= 1, "the endpoint was not asked");
    err
}

fn no_retry(server: &MockServer, clock: &ManualClock) -> Builder<TestSource> {
    middleware(server, clock).retry_policy(RetryPolicy::none())
}

/// The token sources, `Param::secret` and a `Token` with a refresh
/// token redact their secrets in `Debug`.
#[tokio::test]
async fn sources_params_and_tokens_redact_in_debug() {
    let server = MockServer::start_async().await;

    let param = Param::secret(SECRET);
    assert_clean("Param::secret", &format!("{param:?}"));
    assert!(format!("{param:?}").contains("redacted"));

    let source = TestSource::new(&server);
    let debug = format!("{source:?}");
    assert_clean("TestSource", &debug);
    assert!(
        debug.contains("test-client"),
        "plain params stay visible: {debug}"
    );

    let http = HttpTokenSource::post(Url::parse(&server.url(TOKEN_PATH)).unwrap())
        .param("client_secret", Param::secret(SECRET))
        .param("refresh_token", Param::secret(REFRESH_TOKEN))
        .basic_auth("client-id", SecretString::from(SECRET.to_owned()));
    assert_clean("HttpTokenSource", &format!("{http:?}"));

    let token = Token::bearer(ACCESS_TOKEN)
        .unwrap()
        .with_refresh_token(SecretString::from(REFRESH_TOKEN.to_owned()));
    let debug = format!("{token:?}");
    assert_clean("Token", &debug);
    assert!(debug.contains("redacted"), "{debug}");
    assert_clean("Token header", &format!("{:?}", token.header_value()));
}

/// After a real fetch (a token with a refresh token), neither the
/// middleware, its cache, the lease nor a token fetched directly shows a secret in `Debug`.
#[tokio::test]
async fn middleware_cache_and_lease_redact_in_debug() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = fixed_token_mock(&server, 200, "application/json", oauth_body(ACCESS_TOKEN)).await;
    let mw = middleware(&server, &clock).build();

    let lease = mw.cache().token().await.unwrap();
    assert_eq!(
        lease.header_value(),
        &format!("Bearer {ACCESS_TOKEN}"),
        "the sentinel is really in the cache"
    );
    assert_clean("Lease", &format!("{lease:?}"));
    assert_clean("TokenCache", &format!("{:?}", mw.cache()));
    assert_clean("AuthMiddleware", &format!("{mw:?}"));

    let fetched = TestSource::new(&server)
        .fetch(&FetchContext::new(FetchReason::Initial))
        .await
        .unwrap();
    assert!(fetched.refresh_token().is_some());
    assert_clean("fetched Token", &format!("{fetched:?}"));
    assert_eq!(token.calls_async().await, 2);
}

/// A credential error whose body echoes the secret is scrubbed, in
/// the message and in the error code.
#[tokio::test]
async fn invalid_credentials_echoing_the_secret_are_scrubbed() {
    let body = format!(r#"{{"error":"bad secret {SECRET}"}}"#);
    let err = error_from(401, "application/json", &body, no_retry).await;
    match &err {
        Error::InvalidCredentials { message, .. } => {
            assert_eq!(message, "bad secret [redacted]");
        }
        other => panic!("expected InvalidCredentials, got {other:?}"),
    }
    assert_error_clean("InvalidCredentials", &err);

    // The secret as the bare error code.
    let body = format!(r#"{{"error":"{SECRET}","error_description":"no"}}"#);
    let err = error_from(400, "application/json", &body, no_retry).await;
    assert!(matches!(err, Error::InvalidCredentials { .. }), "{err:?}");
    assert_error_clean("InvalidCredentials (code)", &err);
}

/// A 5xx whose plain-text body echoes the secret (in a query string, not a sentence) gives
/// a `TokenEndpoint` error that describes the body instead of quoting it (after retries).
#[tokio::test]
async fn token_endpoint_error_echoing_the_secret_is_described_not_quoted() {
    let body = format!("upstream rejected client_secret={SECRET}&client_id=test-client");
    let err = error_from(503, "text/plain", &body, middleware).await;
    match &err {
        Error::TokenEndpoint {
            status, excerpt, ..
        } => {
            assert_eq!(*status, 503);
            assert_eq!(
                excerpt,
                &format!("unrecognised {}-byte text/plain body", body.len())
            );
        }
        other => panic!("expected TokenEndpoint, got {other:?}"),
    }
    assert_error_clean("TokenEndpoint", &err);
}

/// An RFC 6749 error whose code and description echo the secret
/// gives a scrubbed `Error::OAuth`.
#[tokio::test]
async fn oauth_error_echoing_the_secret_is_scrubbed() {
    let body = format!(
        r#"{{"error":"{SECRET}","error_description":"client_secret {SECRET} is not allowed this scope"}}"#
    );
    let err = error_from(400, "application/json", &body, |server, clock| {
        AuthMiddleware::builder(TestSource::new(server).map(|s| s.errors(ErrorShape::oauth2())))
            .clock(Arc::new(clock.clone()))
            .retry_policy(RetryPolicy::none())
    })
    .await;
    assert!(matches!(err, Error::OAuth { .. }), "{err:?}");
    assert_error_clean("OAuth", &err);
}

/// A dead refresh token echoed back in the error is scrubbed from
/// `Error::ReauthorizationRequired`.
#[tokio::test]
async fn reauthorization_error_echoing_the_refresh_token_is_scrubbed() {
    let body = format!(
        r#"{{"error":"invalid_grant","error_description":"refresh token {REFRESH_TOKEN} was already used"}}"#
    );
    let err = error_from(400, "application/json", &body, |server, clock| {
        AuthMiddleware::builder(TestSource::new(server).map(|s| {
            s.param("refresh_token", Param::secret(REFRESH_TOKEN))
                .errors(ErrorShape::default().reauthorize_codes(&["invalid_grant"]))
        }))
        .clock(Arc::new(clock.clone()))
        .retry_policy(RetryPolicy::none())
    })
    .await;
    match &err {
        Error::ReauthorizationRequired { message, .. } => {
            assert_eq!(message, "refresh token [redacted] was already used");
        }
        other => panic!("expected ReauthorizationRequired, got {other:?}"),
    }
    assert_error_clean("ReauthorizationRequired", &err);
}

/// Malformed success bodies that hold a token never put the token in
/// the error (invalid JSON, illegal header bytes, a bad token type or lifetime).
#[tokio::test]
async fn malformed_responses_do_not_echo_the_token() {
    let bodies = [
        format!(r#"{{"access_token":"{ACCESS_TOKEN}","expires_in":"#),
        format!(r#"{{"access_token":"{ACCESS_TOKEN}\r\nX-Injected: 1"}}"#),
        format!(r#"{{"access_token":"{ACCESS_TOKEN}","token_type":"{ACCESS_TOKEN_2}"}}"#),
        format!(r#"{{"access_token":"{ACCESS_TOKEN}","expires_in":"{ACCESS_TOKEN_2}"}}"#),
        format!(r#"{{"access_token":{{"value":"{ACCESS_TOKEN}"}}}}"#),
        format!(r#"["{ACCESS_TOKEN}"]"#),
    ];
    for body in bodies {
        let err = error_from(200, "application/json", &body, no_retry).await;
        assert!(
            matches!(err, Error::MalformedResponse(_)),
            "{body}: {err:?}"
        );
        assert_error_clean(&body, &err);
    }
}

/// A transport error of a token request whose secrets travel in the
/// query string (`Encoding::Query`) does not carry the URL, hence not the secret.
#[tokio::test]
async fn transport_error_drops_the_url_with_query_secrets() {
    let api = MockServer::start_async().await;
    let clock = ManualClock::new();
    let port = common::dead_port();
    let source =
        HttpTokenSource::post(Url::parse(&format!("http://127.0.0.1:{port}{TOKEN_PATH}")).unwrap())
            .encoding(Encoding::Query)
            .param("client_id", Param::text("test-client"))
            .param("client_secret", Param::secret(SECRET))
            .add_origin(&common::base(&api));
    let mw = AuthMiddleware::builder(source)
        .clock(Arc::new(clock.clone()))
        .retry_policy(RetryPolicy::none());

    let err = fail_with(&api, mw).await;

    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert_error_clean("Transport", &err);
}

/// Refusing plain http names the origin only, not the secrets in the
/// token URL's query.
#[tokio::test]
async fn insecure_transport_error_names_the_origin_only() {
    let url = Url::parse(&format!(
        "http://auth.partner.invalid{TOKEN_PATH}?key={SECRET}"
    ))
    .unwrap();
    let source = HttpTokenSource::post(url).param("client_secret", Param::secret(SECRET));

    let err = source
        .fetch(&FetchContext::new(FetchReason::Initial))
        .await
        .unwrap_err();

    assert!(
        matches!(&err, Error::InsecureTransport { origin } if origin == "http://auth.partner.invalid"),
        "{err:?}"
    );
    assert_error_clean("InsecureTransport", &err);
}

/// An in-memory log sink for a `tracing_subscriber::fmt` subscriber.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The TRACE-level log of a full flow (fetch, 401 and replay, a
/// refresh that fails once and is retried, then a credential rejection echoing the secret)
/// holds the crate's events and none of the secrets.
#[tokio::test(flavor = "current_thread")]
async fn trace_log_of_a_full_flow_holds_no_secret() {
    // tracing caches each callsite's interest process-wide. With a single registered
    // dispatcher it is computed from the *registering* thread's default, so a sibling test
    // (no subscriber) hitting a crate callsite first would cache `never` and blind this
    // capture. A second, always-interested dispatcher kept alive for the whole test makes the
    // interest the union of all dispatchers instead.
    let _anchor = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(io::sink)
            .finish(),
    );
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = common::counted_mock(
        &server,
        |when| when.method("POST").path(TOKEN_PATH),
        |n, _| {
            // `n` counts from 1, the answers below from 0.
            let (status, body) = match n - 1 {
                0 => (200, oauth_body(ACCESS_TOKEN)),
                1 => (
                    500,
                    format!(r#"{{"error":"db down while checking {SECRET}"}}"#),
                ),
                2 => (200, oauth_body(ACCESS_TOKEN_2)),
                _ => (401, format!(r#"{{"error":"bad secret {SECRET}"}}"#)),
            };
            common::json_response(status, &body)
        },
    )
    .await;
    let second = format!("Bearer {ACCESS_TOKEN_2}");
    let api = server
        .mock_async(|when, then| {
            when.method("GET").path(API_PATH);
            then.respond_with(move |req: &HttpMockRequest| {
                let ok = req
                    .headers_vec()
                    .iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case("authorization") && *v == second);
                HttpMockResponse::builder()
                    .status(if ok { 200 } else { 401 })
                    .header("www-authenticate", "Bearer error=\"invalid_token\"")
                    .build()
            });
        })
        .await;
    let mw = middleware(&server, &clock).build();
    let cache = mw.cache().clone();
    let client = common::client(mw);

    // Fetch, 401, refresh (500, retried, 200), replay.
    let res = client.get(server.url(API_PATH)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(token.calls_async().await, 3);
    assert_eq!(api.calls_async().await, 2);

    // The next fetch is rejected with a body echoing the secret.
    cache.clear();
    let err = client.get(server.url(API_PATH)).send().await.unwrap_err();
    let err = Error::from_middleware(&err).expect("a crate error");
    assert!(matches!(err, Error::InvalidCredentials { .. }), "{err:?}");
    assert_error_clean("InvalidCredentials", err);
    assert_eq!(token.calls_async().await, 4);

    drop(_guard);
    let out = logs.contents();
    assert!(
        out.contains("token"),
        "the crate's events were not captured: {out}"
    );
    assert!(out.contains("requesting a token"), "{out}");
    assert!(out.contains("retrying"), "{out}");
    assert!(out.contains("replaying"), "{out}");
    assert!(out.contains("token fetch failed"), "{out}");
    assert_clean("trace log", &out);
}

// ---- every encoding of a secret -------------------------------------------------------

/// A secret whose encodings all differ from it: `/` and `+` change under JSON (`\/`) and
/// form encoding (`%2F`, `%2B`), the space becomes `+` or `%20`, the quote and backslash
/// are escaped in JSON, `é` becomes `\u00e9` or `%C3%A9`.
const ODD_SECRET: &str = "SENTINEL/s3cr+t \"q\\é";
const ODD_CLIENT: &str = "odd-client";

/// The forms a partner may echo `secret` in, with a name for failure messages.
fn echoed_forms(client: &str, secret: &str) -> Vec<(&'static str, String)> {
    use base64::Engine as _;
    let json = serde_json::to_string(secret).unwrap();
    let json = json[1..json.len() - 1].to_owned();
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let lower = {
        let mut out = String::new();
        let mut hex_left = 0;
        for c in form.chars() {
            out.push(if hex_left > 0 {
                c.to_ascii_lowercase()
            } else {
                c
            });
            hex_left = if c == '%' { 2 } else { hex_left.max(1) - 1 };
        }
        out
    };
    let every_char_escaped: String = secret
        .encode_utf16()
        .map(|unit| format!("\\u{unit:04x}"))
        .collect();
    let basic_of =
        |s: &str| base64::engine::general_purpose::STANDARD.encode(format!("{client}:{s}"));
    vec![
        ("raw", secret.to_owned()),
        ("json-escaped", json.clone()),
        ("json-escaped with \\/", json.replace('/', "\\/")),
        ("json \\u escapes", every_char_escaped),
        ("form-encoded", form.clone()),
        ("form-encoded, lower-case hex", lower),
        ("percent-encoded", form.replace('+', "%20")),
        ("percent-encoded twice", form.replace('%', "%25")),
        ("basic header", format!("Basic {}", basic_of(&form))),
        (
            "basic header, raw secret",
            format!("Basic {}", basic_of(secret)),
        ),
    ]
}

/// Asserts `text` holds none of the forms of `secret`, nor a recognisable part of one.
#[track_caller]
fn assert_no_form_of(what: &str, text: &str, client: &str, secret: &str) {
    for (name, form) in echoed_forms(client, secret) {
        // Any 8 characters of a form: a secret cut short is still a leak.
        let chars: Vec<char> = form.chars().collect();
        for part in chars.windows(8.min(chars.len())) {
            let part: String = part.iter().collect();
            assert!(
                !text.contains(&part),
                "{what} leaks the {name} form ({part:?}): {text}"
            );
        }
    }
}

/// A source on `server` whose secret is `secret`, both as a body parameter and in HTTP
/// Basic, with no retries.
fn odd_middleware(
    server: &MockServer,
    clock: &ManualClock,
    secret: &str,
) -> Builder<HttpTokenSource> {
    let source = HttpTokenSource::post(Url::parse(&server.url(TOKEN_PATH)).unwrap())
        .param("client_id", Param::text(ODD_CLIENT))
        .param("client_secret", Param::secret(secret))
        .basic_auth(ODD_CLIENT, SecretString::from(secret.to_owned()))
        .add_origin(&common::base(server));
    AuthMiddleware::builder(source)
        .clock(Arc::new(clock.clone()))
        .retry_policy(RetryPolicy::none())
}

/// Captures the crate's TRACE log while the returned guards live.
fn capture_logs() -> (LogBuffer, impl Drop, tracing::Dispatch) {
    // See `trace_log_of_a_full_flow_holds_no_secret` for why a second dispatcher is kept.
    let anchor = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(io::sink)
            .finish(),
    );
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber), anchor)
}

/// A token endpoint echoing the secret in any form (raw, JSON-escaped, `\u` escapes, form-
/// and percent-encoded in either hex case, inside an echoed Basic header), in a known
/// message field, in the code field, as a plain-text sentence or as an unknown body: the
/// error's `Display` and `Debug` and the log hold none of them.
#[tokio::test(flavor = "current_thread")]
async fn no_encoding_of_the_secret_reaches_the_error_or_the_log() {
    let (logs, log_guard, _anchor) = capture_logs();
    let mut bodies = Vec::new();
    for (name, form) in echoed_forms(ODD_CLIENT, ODD_SECRET) {
        let quoted = serde_json::to_string(&form).unwrap();
        bodies.push((
            name,
            401,
            "application/json",
            format!(
                r#"{{"error_description":"bad secret {}"}}"#,
                &quoted[1..quoted.len() - 1]
            ),
        ));
        bodies.push((
            name,
            400,
            "application/json",
            format!(r#"{{"error":{quoted}}}"#),
        ));
        bodies.push((name, 503, "text/plain", format!("bad secret {form}")));
        bodies.push((
            name,
            500,
            "application/json",
            format!(r#"{{"detail":{quoted}}}"#),
        ));
        bodies.push((name, 502, "", form.clone()));
    }
    for (name, status, content_type, body) in bodies {
        let err = error_from(status, content_type, &body, |server, clock| {
            odd_middleware(server, clock, ODD_SECRET)
        })
        .await;
        let shown = format!("{err} {err:?}");
        assert_no_form_of(
            &format!("{name} in {body:?}"),
            &shown,
            ODD_CLIENT,
            ODD_SECRET,
        );
        assert!(
            shown.contains("[redacted]")
                || shown.contains("not quoted")
                || shown.contains("unrecognised"),
            "{name}: the echo was neither replaced nor withheld: {shown}"
        );
    }
    drop(log_guard);
    let out = logs.contents();
    assert!(
        out.contains("token fetch failed"),
        "the log was not captured: {out}"
    );
    assert_no_form_of("trace log", &out, ODD_CLIENT, ODD_SECRET);
}

/// The partner's own messages stay readable when they echo nothing.
#[tokio::test]
async fn messages_without_a_secret_stay_readable() {
    let err = error_from(
        401,
        "application/json",
        r#"{"error_description":"Invalid client credentials"}"#,
        |server, clock| odd_middleware(server, clock, ODD_SECRET),
    )
    .await;
    assert!(
        matches!(&err, Error::InvalidCredentials { message, .. } if message == "Invalid client credentials"),
        "{err:?}"
    );
    let err = error_from(
        503,
        "text/plain",
        "Service temporarily unavailable",
        |server, clock| odd_middleware(server, clock, ODD_SECRET),
    )
    .await;
    assert!(
        matches!(&err, Error::TokenEndpoint { excerpt, .. } if excerpt == "Service temporarily unavailable"),
        "{err:?}"
    );
}

/// A secret shorter than four bytes cannot be told apart from ordinary text: no partner
/// text is quoted at all, so neither it nor any of its forms shows.
#[tokio::test(flavor = "current_thread")]
async fn a_short_secret_is_never_shown() {
    const SHORT: &str = "q/Z";
    let (logs, log_guard, _anchor) = capture_logs();
    for (name, form) in echoed_forms(ODD_CLIENT, SHORT) {
        let quoted = serde_json::to_string(&format!("bad secret {form}")).unwrap();
        for (status, content_type, body) in [
            (
                401,
                "application/json",
                format!(r#"{{"error_description":{quoted}}}"#),
            ),
            (503, "text/plain", format!("bad secret {form}")),
        ] {
            let err = error_from(status, content_type, &body, |server, clock| {
                odd_middleware(server, clock, SHORT)
            })
            .await;
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(SHORT), "{name} in {body:?}: {shown}");
            assert!(
                !shown.contains("bad secret"),
                "{name}: partner text was quoted: {shown}"
            );
            assert!(shown.contains("too short to scrub"), "{shown}");
        }
    }
    drop(log_guard);
    let out = logs.contents();
    assert!(
        out.contains("token fetch failed"),
        "the log was not captured: {out}"
    );
    assert!(!out.contains(SHORT), "{out}");
}
