//! The Setu partner token contract (`seeds/setu-partner-token.txt`), line by line, against a
//! real local HTTP server. Each test names the seed line it checks.
//!
//! What every partner shares (malformed answers, secrets in `Debug` and errors, `from_env`,
//! the token's origin and plain http, the replay after a 401) is checked for Setu too, in the
//! partner harness (`tests/partners.rs`).
#![cfg(feature = "setu")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use common::{base, json_response};
use httpmock::{HttpMockRequest, HttpMockResponse, Method::POST, Mock, MockServer, When};
use reqwest_middleware::ClientWithMiddleware;
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::error::Malformed;
use reqwest_partner_auth::token::Expiry;
use reqwest_partner_auth::{
    setu, AuthMiddleware, Clock, Error, FetchContext, FetchReason, TokenSource,
};
use secrecy::ExposeSecret;
use url::Url;

const TOKEN_PATH: &str = "/auth/token";
/// "the next API": any call to the Bridge origin.
const API_PATH: &str = "/v1/next-api";
const CLIENT_ID: &str = "Your.Client.ID";
/// The sentinel secret: it must never show up in `Debug`, `Display` or errors.
const CLIENT_SECRET: &str = common::SECRET;
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// The contract's example response, verbatim.
const EXAMPLE: &str = r#"{
"accessToken": "eyJhbGciOiJSUzI1NiIsInR5cCIgOiAiSldUIiwia2lkIiA6ICJQMmNLU05oQ1dIbHRyVjExRldMMHE0M3dzN1FJOWN2cExhdU1pQ3pOZ09vIn0.eyJleHAiOjE2MzcyNDI4NjksImlhdCI6MTYzNzI0MjU2OSwianRpIjoiN2I4Y2NlOGQtOWI4ZC00NWFjLWE1NWQtZDBhMWM2MmVkMTMxIiwiaXNzIjoiaHR0cHM6Ly9hdXRoLWRldi5zZXR1LmNvL2F1dGgvcmVhbG1zL2ZkIiwiYXVkIjoiYWNjb3VudCIsInN1YiI6IjVlMGVlZGIwLWQyZDktNDg4My04ZmI0LTIxY2RjZjZiNzFmMCIsInR5cCI6IkJlYXJlciIsImF6cCI6InRlc3QiLCJzZXNzaW9uX3N0YXRlIjoiMDAwMjM0ODItNTBjOC00YzdjLWJkODgtNzllZTE5NzVhOTFhIiwiYWNyIjoiMSIsInJlYWxtX2FjY2VzcyI6eyJyb2xlcyI6WyJvZmZsaW5lX2FjY2VzcyIsInVtYV9hdXRob3JpemF0aW9uIl19LCJyZXNvdXJjZV9hY2Nlc3MiOnsiYWNjb3VudCI6eyJyb2xlcyI6WyJtYW5hZ2UtYWNjb3VudCIsIm1hbmFnZS1hY2NvdW50LWxpbmtzIiwidmlldy1wcm9maWxlIl19fSwic2NvcGUiOiJwcm9maWxlIGVtYWlsIiwiZW1haWxfdmVyaWZpZWQiOmZhbHNlLCJjbGllbnRIb3N0IjoiMzUuMjQ0LjQ4LjcxIiwiY2xpZW50SWQiOiJ0ZXN0IiwiZ3JvdXBzIjpbIm9mZmxpbmVfYWNjZXNzIiwidW1hX2F1dGhvcml6YXRpb24iXSwicHJlZmVycmVkX3VzZXJuYW1lIjoic2VydmljZS1hY2NvdW50LXRlc3QiLCJjbGllbnRBZGRyZXNzIjoiMzUuMjQ0LjQ4LjcxIn0.RkbgE1K8JgoUewkbOTK19TKPma2hiTv-qcg2SW7CZEaeiroKljDByVeeWVNVmThPmm4ExnZvj6L8k4pRSUsbBqeYBaji6qhx6w0S5z7hDq-A6P4wBXTVf_k5m_yv3zARNdcASxNJMwjK0QuJG6T5-L44HCfxrQuvsOGp9sNCXs_VS1lemUesgdoz_8WIGkOSdfE1y_gD3GsDe8pxNpJhpJ_T9tjhMSVV_NeM72Q7mrmVyaC99wIHUuPRf36A5_x9Rwwg36Hhmwn9hsk2AyMn2eVK7jbWBBsfzMdDMm6DtvMxoNz_tOoYOdgmK8U4uVrnA9WajL4tvWQfwgghPvOLhg",
"refreshToken": "eyJhbGciOiJIUzI1NiIsInR5cCIgOiAiSldUIiwia2lkIiA6ICIzNzA4NDk4Yy00ZmQxLTQyOWYtYmIwZC1kYTFmNDc2Y2RiYWIifQ.eyJleHAiOjE2MzcyNDQzNjksImlhdCI6MTYzNzI0MjU2OSwianRpIjoiNTAwYzMwYzQtNTQ1Zi00ZTIxLTk5ZmEtM2YxMzRjNTE2NTdhIiwiaXNzIjoiaHR0cHM6Ly9hdXRoLWRldi5zZXR1LmNvL2F1dGgvcmVhbG1zL2ZkIiwiYXVkIjoiaHR0cHM6Ly9hdXRoLWRldi5zZXR1LmNvL2F1dGgvcmVhbG1zL2ZkIiwic3ViIjoiNWUwZWVkYjAtZDJkOS00ODgzLThmYjQtMjFjZGNmNmI3MWYwIiwidHlwIjoiUmVmcmVzaCIsImF6cCI6InRlc3QiLCJzZXNzaW9uX3N0YXRlIjoiMDAwMjM0ODItNTBjOC00YzdjLWJkODgtNzllZTE5NzVhOTFhIiwic2NvcGUiOiJwcm9maWxlIGVtYWlsIn0.83IROYZes_jWs0ina7PexZ9xmYeh_FDRtBeGLqHPGU0"
}"#;

fn credentials() -> setu::Credentials {
    setu::Credentials::new(CLIENT_ID, CLIENT_SECRET)
}

/// A Setu layer builder against the mock, on a manual clock, with three fast attempts.
fn auth(server: &MockServer, clock: &ManualClock) -> common::Builder<setu::Source> {
    let source = setu::Source::with_base_url(credentials(), &base(server));
    common::on_clock(AuthMiddleware::builder(source), clock)
}

fn client(server: &MockServer, clock: &ManualClock) -> ClientWithMiddleware {
    common::client(auth(server, clock))
}

/// `{"accessToken": token, "refreshToken": ...}` as Setu answers it (no `expires_in`).
fn setu_body(token: &str) -> String {
    format!(r#"{{"accessToken":"{token}","refreshToken":"rt-for-{token}"}}"#)
}

/// The token endpoint as the contract describes it: only a `POST /auth/token` whose body is
/// exactly the form `grant_type=client_credentials&client_id=...&client_secret=...` sent as
/// `application/x-www-form-urlencoded` matches; a request that differs gets httpmock's 404.
/// `respond(n)` answers the n-th call (1-based).
async fn token_endpoint<'a>(
    server: &'a MockServer,
    respond: impl Fn(usize) -> HttpMockResponse + Send + Sync + 'static,
) -> Mock<'a> {
    let when = |when: When| {
        when.method(POST)
            .path(TOKEN_PATH)
            .header("content-type", FORM_CONTENT_TYPE)
            .body(format!(
                "grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
            ))
    };
    common::counted_mock(server, when, move |n, _| respond(n)).await
}

/// A token endpoint that hands out JWTs expiring `lifetime` seconds after the clock's wall
/// time of the fetch; `issued` records them in order.
async fn jwt_tokens<'a>(
    server: &'a MockServer,
    clock: &ManualClock,
    lifetime: u64,
    issued: Arc<Mutex<Vec<String>>>,
) -> Mock<'a> {
    let clock = clock.clone();
    token_endpoint(server, move |_| {
        let jwt = common::jwt_expiring_in(clock.system_now(), lifetime);
        issued.lock().unwrap().push(jwt.clone());
        json_response(200, &setu_body(&jwt))
    })
    .await
}

/// A token endpoint that hands out opaque (non-JWT) tokens `opaque-1`, `opaque-2`, ...
async fn opaque_tokens(server: &MockServer) -> Mock<'_> {
    token_endpoint(server, |n| {
        json_response(200, &setu_body(&format!("opaque-{n}")))
    })
    .await
}

/// `GET /v1/next-api`: answers 401 when the bearer token is in `rejected`, else 200 with
/// the `Authorization` values it received joined by `|`.
async fn next_api<'a>(server: &'a MockServer, rejected: &'static [&'static str]) -> Mock<'a> {
    let when = |when: When| when.path(API_PATH);
    common::rejecting_echo_mock(server, when, rejected, r#"{"error":"token expired"}"#).await
}

/// One API call; returns the status and the `Authorization` the API saw.
async fn call_api(client: &ClientWithMiddleware, server: &MockServer) -> (u16, String) {
    let res = client.get(server.url(API_PATH)).send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// One API call that must fail in the layer; returns the crate's error.
async fn failing_call(client: &ClientWithMiddleware, server: &MockServer) -> Error {
    common::layer_error(client.get(server.url(API_PATH))).await
}

/// setu seed: "POST /auth/token — Include these as URL encoded body parameters ...
/// grant_type=client_credentials client_id=Your.Client.ID client_secret=Your.Client.Secret"
/// — the exact request the endpoint receives (exact body, form content type).
#[tokio::test]
async fn token_request_is_the_documented_form_post() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = opaque_tokens(&server).await;
    let _api = next_api(&server, &[]).await;

    let (status, _) = call_api(&client(&server, &clock), &server).await;

    assert_eq!(status, 200);
    assert_eq!(
        token.calls_async().await,
        1,
        "the exact-match mock answered"
    );
}

/// setu seed: "grant_type=client_credentials / client_id=... / client_secret=..." as "URL
/// encoded body parameters" — read back from the wire: exactly those three pairs, in that
/// order, nothing in the query string; a secret with reserved characters is form-encoded.
#[tokio::test]
async fn token_request_form_has_exactly_three_pairs() {
    const ODD_SECRET: &str = "a b&c=d+e%f/é";
    let server = MockServer::start_async().await;
    let seen: Arc<Mutex<Vec<HttpMockRequest>>> = Arc::default();
    let log = Arc::clone(&seen);
    let _token = server
        .mock_async(move |when, then| {
            when.path(TOKEN_PATH)
                .form_urlencoded_tuple("grant_type", "client_credentials")
                .form_urlencoded_tuple("client_id", CLIENT_ID)
                .form_urlencoded_tuple("client_secret", ODD_SECRET);
            then.respond_with(move |req: &HttpMockRequest| {
                log.lock().unwrap().push(req.clone());
                json_response(200, &setu_body("opaque-1"))
            });
        })
        .await;

    setu::Source::with_base_url(
        setu::Credentials::new(CLIENT_ID, ODD_SECRET),
        &base(&server),
    )
    .fetch(&FetchContext::new(FetchReason::Initial))
    .await
    .unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(req.method_str(), "POST");
    assert_eq!(req.uri().path(), TOKEN_PATH);
    assert_eq!(req.uri().query(), None, "no credentials in the URL");
    let content_types: Vec<_> = req
        .headers_vec()
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(content_types, [FORM_CONTENT_TYPE]);
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.body_ref())
        .into_owned()
        .collect();
    assert_eq!(
        pairs,
        [
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("client_id".to_owned(), CLIENT_ID.to_owned()),
            ("client_secret".to_owned(), ODD_SECRET.to_owned()),
        ]
    );
}

/// setu seed: "Partner accessToken has to be presented as a Bearer token for authorisation
/// in the next API" — the API call carries exactly one `Authorization: Bearer <accessToken>`.
#[tokio::test]
async fn next_api_call_carries_the_bearer_token() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = opaque_tokens(&server).await;
    let api = next_api(&server, &[]).await;

    let (status, seen) = call_api(&client(&server, &clock), &server).await;

    assert_eq!((status, seen.as_str()), (200, "Bearer opaque-1"));
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(api.calls_async().await, 1);
}

/// setu seed: "The partner accessToken is valid for 15 minutes and has to be regenerated once
/// expired" — the answer has no `expires_in`, so the expiry is the JWT's `exp` (900 s here):
/// with refresh-ahead off, reused at 860 s, replaced at 875 s (inside the 30 s skew).
#[tokio::test]
async fn jwt_exp_sets_the_expiry_and_the_token_is_regenerated_inside_the_skew() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let issued = Arc::<Mutex<Vec<String>>>::default();
    let token = jwt_tokens(&server, &clock, 900, Arc::clone(&issued)).await;
    let _api = next_api(&server, &[]).await;
    let client = common::client(auth(&server, &clock).refresh_ahead(0.0));
    let bearer = |n: usize| format!("Bearer {}", issued.lock().unwrap()[n]);

    assert_eq!(call_api(&client, &server).await.1, bearer(0));
    clock.advance(Duration::from_secs(860));
    assert_eq!(call_api(&client, &server).await.1, bearer(0));
    assert_eq!(token.calls_async().await, 1, "no fetch 40 s before exp");

    clock.advance(Duration::from_secs(15)); // 875 s: inside the 30 s skew
    assert_eq!(call_api(&client, &server).await.1, bearer(1));
    assert_eq!(
        token.calls_async().await,
        2,
        "one new fetch inside the skew"
    );
}

/// setu seed: the example `accessToken` lives 300 s (`exp` − `iat`), not the documented 15
/// minutes — the JWT `exp` wins over the fallback: replaced at 275 s, not reused until 875 s.
#[tokio::test]
async fn a_shorter_jwt_exp_wins_over_the_documented_15_minutes() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let issued = Arc::<Mutex<Vec<String>>>::default();
    let token = jwt_tokens(&server, &clock, 300, Arc::clone(&issued)).await;
    let _api = next_api(&server, &[]).await;
    let client = common::client(auth(&server, &clock).refresh_ahead(0.0));

    call_api(&client, &server).await;
    clock.advance(Duration::from_secs(260));
    call_api(&client, &server).await;
    assert_eq!(token.calls_async().await, 1);

    clock.advance(Duration::from_secs(15)); // 275 s
    let (_, seen) = call_api(&client, &server).await;
    assert_eq!(seen, format!("Bearer {}", issued.lock().unwrap()[1]));
    assert_eq!(token.calls_async().await, 2);
}

/// setu seed: "The partner accessToken is valid for 15 minutes" — a token that is not a JWT
/// (no `exp` to read) gets `setu::TOKEN_LIFETIME` (15 min): reused at 860 s, replaced at 875 s.
#[tokio::test]
async fn a_non_jwt_token_falls_back_to_15_minutes() {
    assert_eq!(setu::TOKEN_LIFETIME, Duration::from_secs(15 * 60));
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = opaque_tokens(&server).await;
    let _api = next_api(&server, &[]).await;

    let parsed = setu::Source::with_base_url(credentials(), &base(&server))
        .fetch(&FetchContext::new(FetchReason::Initial))
        .await
        .unwrap();
    assert_eq!(parsed.expiry(), Expiry::In(setu::TOKEN_LIFETIME));

    let client = common::client(auth(&server, &clock).refresh_ahead(0.0));
    assert_eq!(call_api(&client, &server).await.1, "Bearer opaque-2");
    clock.advance(Duration::from_secs(860));
    assert_eq!(call_api(&client, &server).await.1, "Bearer opaque-2");
    assert_eq!(token.calls_async().await, 2);

    clock.advance(Duration::from_secs(15)); // 875 s
    assert_eq!(call_api(&client, &server).await.1, "Bearer opaque-3");
    assert_eq!(token.calls_async().await, 3);
}

/// setu seed: the Response example `{"accessToken": "eyJhbGciOiJSUzI1NiIs...", "refreshToken":
/// "eyJhbGciOiJIUzI1NiIs..."}` — the contract's own example parses as is: the camelCase
/// `accessToken` is the bearer token, its `exp` (1637242869) is the expiry, and the camelCase
/// `refreshToken` is kept ("can be ignored until then": it is never sent).
#[tokio::test]
async fn contract_example_response_is_accepted() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, |_| json_response(200, EXAMPLE)).await;
    let _api = next_api(&server, &[]).await;
    let example: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    let access = example["accessToken"].as_str().unwrap();
    let refresh = example["refreshToken"].as_str().unwrap();

    let parsed = setu::Source::with_base_url(credentials(), &base(&server))
        .fetch(&FetchContext::new(FetchReason::Initial))
        .await
        .unwrap();
    assert_eq!(
        parsed.expiry(),
        Expiry::At(UNIX_EPOCH + Duration::from_secs(1_637_242_869))
    );
    assert_eq!(parsed.secret().expose_secret(), access);
    assert_eq!(
        parsed.refresh_token().map(|r| r.expose_secret()),
        Some(refresh)
    );

    let client = client(&server, &clock);
    let (status, seen) = call_api(&client, &server).await;
    assert_eq!(status, 200);
    assert_eq!(seen, format!("Bearer {access}"));
    assert_eq!(token.calls_async().await, 2);

    // Its exp lies in 2021, already past on arrival: the clocks disagree, and fetching on
    // every request would get the same answer. It is used until the API rejects it.
    call_api(&client, &server).await;
    call_api(&client, &server).await;
    assert_eq!(token.calls_async().await, 2);
}

/// setu seed: "refreshToken functionality will be enabled soon and can be ignored until
/// then" — an answer without `refreshToken` (or with an empty one) is fine too.
#[tokio::test]
async fn refresh_token_is_optional() {
    let server = MockServer::start_async().await;
    let token = token_endpoint(&server, |n| match n {
        1 => json_response(200, r#"{"accessToken":"opaque-a"}"#),
        _ => json_response(200, r#"{"accessToken":"opaque-b","refreshToken":""}"#),
    })
    .await;
    let source = setu::Source::with_base_url(credentials(), &base(&server));

    for _ in 0..2 {
        let parsed = source
            .fetch(&FetchContext::new(FetchReason::Initial))
            .await
            .unwrap();
        assert!(parsed.refresh_token().is_none());
        assert_eq!(parsed.expiry(), Expiry::In(setu::TOKEN_LIFETIME));
    }
    assert_eq!(token.calls_async().await, 2);
}

/// setu seed: "client_id and client_secret is made available to you at the end of the
/// configuration on Bridge" — wrong ones (a 401, Keycloak-style body) are
/// `Error::InvalidCredentials` with the partner's message, not retried (exactly one hit).
#[tokio::test]
async fn a_401_is_a_credential_error_not_retried() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, |_| {
        json_response(
            401,
            r#"{"error":"unauthorized_client","error_description":"Invalid client secret"}"#,
        )
    })
    .await;
    let api = next_api(&server, &[]).await;

    let err = failing_call(&client(&server, &clock), &server).await;

    match &err {
        Error::InvalidCredentials { message, .. } => assert_eq!(message, "Invalid client secret"),
        other => panic!("expected InvalidCredentials, got {other:?}"),
    }
    assert!(!err.is_transient());
    assert_eq!(token.calls_async().await, 1);
    assert_eq!(clock.slept(), Duration::ZERO);
    assert_eq!(api.calls_async().await, 0, "no API call without a token");
}

/// setu seed: "client_id and client_secret is made available to you ... on Bridge" — a 400
/// (an unknown client, a bad grant) is `Error::InvalidCredentials`, not retried.
#[tokio::test]
async fn a_400_is_a_credential_error_not_retried() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, |_| {
        json_response(
            400,
            r#"{"error":"invalid_client","error_description":"Invalid client credentials"}"#,
        )
    })
    .await;

    let err = failing_call(&client(&server, &clock), &server).await;

    match &err {
        Error::InvalidCredentials { message, code } => {
            assert_eq!(message, "Invalid client credentials");
            assert_eq!(code.as_deref(), Some("invalid_client"));
        }
        other => panic!("expected InvalidCredentials, got {other:?}"),
    }
    assert_eq!(token.calls_async().await, 1);
}

/// setu seed: "POST /auth/token" (no error statuses documented) — a 5xx is transient:
/// retried (3 hits), then `Error::TokenEndpoint` with the status; a gateway's HTML page is
/// summarised, not copied.
#[tokio::test]
async fn a_5xx_is_retried_then_reported() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = token_endpoint(&server, |_| {
        common::response(
            503,
            "text/html",
            "<html><body><h1>503 Service Unavailable</h1></body></html>",
        )
    })
    .await;
    let api = next_api(&server, &[]).await;

    let err = failing_call(&client(&server, &clock), &server).await;

    match &err {
        Error::TokenEndpoint {
            status, excerpt, ..
        } => {
            assert_eq!(status.as_u16(), 503);
            assert_eq!(excerpt, "html page");
        }
        other => panic!("expected TokenEndpoint, got {other:?}"),
    }
    assert!(err.is_transient());
    assert_eq!(token.calls_async().await, 3);
    assert_eq!(api.calls_async().await, 0);
}

/// setu seed: "You will receive a partner accessToken" (camelCase) — the fields are the
/// camelCase ones: the snake_case `access_token` of other partners is not silently taken
/// instead, and a `refreshToken` that is not a string is `Error::MalformedResponse`; not
/// retried. (The malformed answers every partner shares are rows of `tests/partners.rs`.)
#[tokio::test]
async fn malformed_success_responses_are_typed() {
    type Check = fn(&Malformed) -> bool;
    let cases: [(&str, &str, &str, Check); 2] = [
        (
            "snake_case access_token only",
            "application/json",
            r#"{"access_token":"t","expires_in":900}"#,
            |m| matches!(m, Malformed::MissingField(f) if f == "accessToken"),
        ),
        (
            "refreshToken as object",
            "application/json",
            r#"{"accessToken":"t","refreshToken":{"v":1}}"#,
            |m| matches!(m, Malformed::InvalidField { field, .. } if field == "refreshToken"),
        ),
    ];
    for (name, content_type, body, check) in cases {
        let server = MockServer::start_async().await;
        let clock = ManualClock::new();
        let token =
            token_endpoint(&server, move |_| common::response(200, content_type, body)).await;
        let api = next_api(&server, &[]).await;

        let err = failing_call(&client(&server, &clock), &server).await;

        match &err {
            Error::MalformedResponse(m) => assert!(check(m), "{name}: {m:?}"),
            other => panic!("{name}: expected MalformedResponse, got {other:?}"),
        }
        assert_eq!(token.calls_async().await, 1, "{name}: not retried");
        assert_eq!(api.calls_async().await, 0, "{name}");
    }
}

/// setu seed: "POST /auth/token" (a path, no host: each Bridge environment has its own) —
/// the token URL is `<base>/auth/token`, keeping a base path, and the token goes only to the
/// base's origin.
#[test]
fn token_url_and_scope_follow_the_base_url() {
    let base = Url::parse("https://bridge.setu.example/api/").unwrap();
    let source = setu::Source::with_base_url(credentials(), &base);
    assert_eq!(
        source.token_url().as_str(),
        "https://bridge.setu.example/api/auth/token"
    );
    let scope: Vec<String> = source
        .api_origins()
        .iter()
        .map(|u| u.origin().ascii_serialization())
        .collect();
    assert_eq!(scope, ["https://bridge.setu.example"]);
}
