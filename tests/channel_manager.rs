//! The channel manager contract (`seeds/channel-manager-get-token.txt`): `POST /getToken`
//! with `username` and `password` as form parameters, a `text/plain` token, and
//! "Channel manager not found" as a server error for an unknown user.
//!
//! What every partner shares (malformed answers such as an HTML page, an empty body or a token
//! with CR/LF, secrets in `Debug` and errors, `from_env`, the token's origin and plain http,
//! the replay after a 401) is checked for the channel manager too, in the partner harness
//! (`tests/partners.rs`).
#![cfg(feature = "channel-manager")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{base, client};
use httpmock::Method::{GET, POST};
use httpmock::{HttpMockRequest, Mock, MockServer};
use reqwest_middleware::ClientWithMiddleware;
use reqwest_partner_auth::cache::DEFAULT_REFRESH_SKEW;
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::error::Malformed;
use reqwest_partner_auth::token::jwt_expiry;
use reqwest_partner_auth::{channel_manager, AuthMiddleware, Clock, Error};

const USER: &str = "channel_user";
/// The seed's example password.
const PASSWORD: &str = "550e8400-e29b-41d4-a716-446655440000";
/// A password with every character that form encoding must escape.
const SPECIAL_PASSWORD: &str = "p&s=w+rd x";
/// `SPECIAL_PASSWORD` form-encoded.
const SPECIAL_PASSWORD_ENCODED: &str = "p%26s%3Dw%2Brd+x";
/// The seed's example response.
const SEED_TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.example.token";
/// The connectivity call the tests authenticate.
const API_PATH: &str = "/properties";
/// What a Spring controller sends with `text/plain`.
const TEXT_PLAIN: &str = "text/plain;charset=UTF-8";

/// A layer builder over `source`, on a manual clock, with three fast attempts.
fn layer(
    source: channel_manager::Source,
    clock: &ManualClock,
) -> common::Builder<channel_manager::Source> {
    common::on_clock(AuthMiddleware::builder(source), clock)
}

/// A layer builder against the mock for `password`.
fn auth(
    server: &MockServer,
    clock: &ManualClock,
    password: &str,
) -> common::Builder<channel_manager::Source> {
    let source = channel_manager::Source::with_base_url(
        channel_manager::Credentials::new(USER, password),
        &base(server),
    );
    layer(source, clock)
}

/// `POST /getToken` answering `status` with `content_type` and `body`.
async fn get_token_mock<'a>(
    server: &'a MockServer,
    status: u16,
    content_type: &str,
    body: &str,
) -> Mock<'a> {
    common::fixed_post_mock(server, "/getToken", status, content_type, body).await
}

/// `GET /properties` answering 200 with the `Authorization` values it received, joined by `|`.
async fn api_echo_mock(server: &MockServer) -> Mock<'_> {
    common::echo_mock(server, |when| when.method(GET).path(API_PATH)).await
}

/// Calls the API and returns the `Authorization` header it saw.
async fn call_api(client: &ClientWithMiddleware, server: &MockServer) -> String {
    let res = client.get(server.url(API_PATH)).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// Calls the API, expecting the layer to fail, and returns the crate's error.
async fn api_error(client: &ClientWithMiddleware, server: &MockServer) -> Error {
    common::layer_error(client.get(server.url(API_PATH))).await
}

/// The error of a `/getToken` success response with `body`, after exactly one fetch (a
/// malformed answer is not retried) and no API call.
async fn success_body_error(content_type: &str, body: &str) -> Error {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = get_token_mock(&server, 200, content_type, body).await;
    let api = api_echo_mock(&server).await;
    let client = client(auth(&server, &clock, PASSWORD));
    let err = api_error(&client, &server).await;
    token.assert_calls_async(1).await;
    api.assert_calls_async(0).await;
    err
}

/// Seed: "Method POST", "Endpoint /getToken", "Content-Type: application/x-www-form-urlencoded",
/// "username String", "password String", "Authentication: Not required for this endpoint".
/// The credentials travel form-encoded in the body (`&`, `=`, `+` and space escaped), the URL
/// has no query string, and no `Authorization` header goes to `/getToken`.
#[tokio::test]
async fn get_token_posts_form_encoded_credentials_in_the_body() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/getToken")
                .header("content-type", "application/x-www-form-urlencoded")
                .header_missing("authorization")
                .body(format!(
                    "username={USER}&password={SPECIAL_PASSWORD_ENCODED}"
                ))
                .form_urlencoded_tuple("username", USER)
                .form_urlencoded_tuple("password", SPECIAL_PASSWORD)
                .query_param_missing("username")
                .query_param_missing("password")
                .is_true(|req: &HttpMockRequest| req.uri().query().is_none());
            then.status(200)
                .header("content-type", TEXT_PLAIN)
                .body("tok");
        })
        .await;
    let api = api_echo_mock(&server).await;
    let client = client(auth(&server, &clock, SPECIAL_PASSWORD));

    assert_eq!(call_api(&client, &server).await, "Bearer tok");
    token.assert_calls_async(1).await;
    api.assert_calls_async(1).await;
}

/// Seed: "Example Request: POST /getToken?username=channel_user&password=550e8400-e29b-41d4-a716-446655440000".
/// With `credentials_in_query()` the request is exactly the seed's example: the parameters in
/// the query string, the body empty, and still the contract's
/// `Content-Type: application/x-www-form-urlencoded`.
#[tokio::test]
async fn credentials_in_query_match_the_seed_example_request() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let expected_query = format!("username={USER}&password={PASSWORD}");
    let token = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/getToken")
                .query_param("username", USER)
                .query_param("password", PASSWORD)
                .header("content-type", "application/x-www-form-urlencoded")
                .header_missing("authorization")
                .is_true(move |req: &HttpMockRequest| {
                    req.uri().query() == Some(expected_query.as_str()) && req.body_ref().is_empty()
                });
            then.status(200)
                .header("content-type", TEXT_PLAIN)
                .body(SEED_TOKEN);
        })
        .await;
    let api = api_echo_mock(&server).await;
    let source = channel_manager::Source::with_base_url(
        channel_manager::Credentials::new(USER, PASSWORD),
        &base(&server),
    )
    .credentials_in_query();
    let client = client(layer(source, &clock));

    assert_eq!(
        call_api(&client, &server).await,
        format!("Bearer {SEED_TOKEN}")
    );
    token.assert_calls_async(1).await;
    api.assert_calls_async(1).await;
}

/// Seed: "The method expects username and password as request parameters." In the query
/// string, too, `&`, `=`, `+` and space are escaped, so the server reads the password intact.
#[tokio::test]
async fn credentials_in_query_are_form_encoded() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let expected_query = format!("username={USER}&password={SPECIAL_PASSWORD_ENCODED}");
    let token = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/getToken")
                .query_param("username", USER)
                .query_param("password", SPECIAL_PASSWORD)
                .is_true(move |req: &HttpMockRequest| {
                    req.uri().query() == Some(expected_query.as_str())
                });
            then.status(200)
                .header("content-type", TEXT_PLAIN)
                .body("tok");
        })
        .await;
    let api = api_echo_mock(&server).await;
    let source = channel_manager::Source::with_base_url(
        channel_manager::Credentials::new(USER, SPECIAL_PASSWORD),
        &base(&server),
    )
    .credentials_in_query();
    let client = client(layer(source, &clock));

    assert_eq!(call_api(&client, &server).await, "Bearer tok");
    token.assert_calls_async(1).await;
    api.assert_calls_async(1).await;
}

/// Seed: "Response type text/plain" and "On success, the returned token should be sent in the
/// Authorization: Bearer <token> header". Surrounding whitespace (a trailing newline) is not
/// part of the token.
#[tokio::test]
async fn plain_text_token_is_trimmed_and_sent_as_bearer() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = get_token_mock(&server, 200, TEXT_PLAIN, "  tok\n").await;
    let api = api_echo_mock(&server).await;
    let client = client(auth(&server, &clock, PASSWORD));

    assert_eq!(call_api(&client, &server).await, "Bearer tok");
    assert_eq!(call_api(&client, &server).await, "Bearer tok");
    token.assert_calls_async(1).await;
    api.assert_calls_async(2).await;
}

/// Seed: "Example Response: eyJhbGciOiJIUzI1NiJ9.example.token". It is not a decodable JWT,
/// so its expiry is unknown and it is used until the API rejects it: 30 days later, still one
/// fetch.
#[tokio::test]
async fn seed_example_token_is_used_until_a_401() {
    assert_eq!(jwt_expiry(SEED_TOKEN), None);
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = get_token_mock(&server, 200, TEXT_PLAIN, SEED_TOKEN).await;
    let api = api_echo_mock(&server).await;
    let client = client(auth(&server, &clock, PASSWORD));

    let expected = format!("Bearer {SEED_TOKEN}");
    assert_eq!(call_api(&client, &server).await, expected);
    clock.advance(Duration::from_secs(30 * 24 * 60 * 60));
    assert_eq!(call_api(&client, &server).await, expected);
    token.assert_calls_async(1).await;
    api.assert_calls_async(2).await;
}

/// Seed: "If a token is missing, malformed, expired, or invalid, the request should be
/// considered unauthorized". A token that is a JWT with `exp` is replaced before it expires:
/// inside the refresh skew the next request waits for a new one.
#[tokio::test]
async fn jwt_token_is_refreshed_in_the_skew_window() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let issued = Arc::new(Mutex::new(Vec::<String>::new()));
    let (c, i) = (clock.clone(), Arc::clone(&issued));
    let token = server
        .mock_async(|when, then| {
            when.method(POST).path("/getToken");
            then.respond_with(move |_: &HttpMockRequest| {
                let jwt = common::jwt_expiring_in(c.system_now(), 3600);
                i.lock().unwrap().push(jwt.clone());
                common::response(200, TEXT_PLAIN, jwt)
            });
        })
        .await;
    let api = api_echo_mock(&server).await;
    // Refresh-ahead off: only the skew decides, so the fetch count is deterministic.
    let client = client(auth(&server, &clock, PASSWORD).refresh_ahead(0.0));

    let first = call_api(&client, &server).await;
    assert_eq!(first, format!("Bearer {}", issued.lock().unwrap()[0]));
    // Just before the skew window (the lifetime is 3599-3600 s): the same token.
    clock.advance(Duration::from_secs(3600) - DEFAULT_REFRESH_SKEW - Duration::from_secs(5));
    assert_eq!(call_api(&client, &server).await, first);
    token.assert_calls_async(1).await;
    // Inside the skew window: a new token before the request goes out.
    clock.advance(Duration::from_secs(10));
    let second = call_api(&client, &server).await;
    assert_eq!(second, format!("Bearer {}", issued.lock().unwrap()[1]));
    assert_ne!(first, second);
    token.assert_calls_async(2).await;
    api.assert_calls_async(3).await;
}

/// Seed: "<token> String Token returned when the provided username and password match". A
/// body with spaces inside is not one token: `Malformed::InvalidField`.
#[tokio::test]
async fn token_with_internal_spaces_is_invalid_field() {
    match success_body_error(TEXT_PLAIN, "not a token").await {
        Error::MalformedResponse(Malformed::InvalidField { field, .. }) => {
            assert_eq!(field, "token");
        }
        other => panic!("expected InvalidField, got {other:?}"),
    }
}

/// Seed: "Response type text/plain". A JSON body is another format than the contract's:
/// `Malformed::UnexpectedContentType`, not a token `{"token":...}` sent verbatim.
#[tokio::test]
async fn json_body_is_unexpected_content_type() {
    let body = r#"{"token":"abc"}"#;
    match success_body_error("application/json", body).await {
        Error::MalformedResponse(Malformed::UnexpectedContentType { expected, found }) => {
            assert_eq!(expected, "text/plain");
            assert_eq!(found, "application/json");
        }
        other => panic!("expected UnexpectedContentType, got {other:?}"),
    }
    // The same JSON labelled text/plain is still not a plain-text token.
    let err = success_body_error(TEXT_PLAIN, body).await;
    assert!(
        matches!(
            err,
            Error::MalformedResponse(Malformed::UnexpectedContentType { .. })
        ),
        "{err:?}"
    );
}

/// Asserts an unknown-user answer is `InvalidCredentials("Channel manager not found")` after
/// exactly one fetch (not retried) and no API call.
async fn assert_not_found(content_type: &str, body: &str) {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = get_token_mock(&server, 500, content_type, body).await;
    let api = api_echo_mock(&server).await;
    let client = client(auth(&server, &clock, PASSWORD));
    match api_error(&client, &server).await {
        Error::InvalidCredentials { message, code } => {
            assert_eq!(message, channel_manager::NOT_FOUND);
            assert_eq!(code, None, "a reason phrase is not an error code");
        }
        other => panic!("expected InvalidCredentials, got {other:?}"),
    }
    token.assert_calls_async(1).await;
    api.assert_calls_async(0).await;
    assert_eq!(clock.slept(), Duration::ZERO, "no retry backoff");
}

/// Seed: "Channel manager not found RuntimeException Thrown when no channel user matches the
/// supplied credentials" and "If no matching channel user is found, the request should be
/// treated as unauthorized." As a 500 with the plain-text message: `InvalidCredentials`, not
/// retried.
#[tokio::test]
async fn channel_manager_not_found_plain_text_500_is_invalid_credentials() {
    assert_not_found(TEXT_PLAIN, channel_manager::NOT_FOUND).await;
}

/// Seed: "Channel manager not found RuntimeException" (as Spring Boot renders an uncaught
/// exception: a JSON error page with the text in `message`): `InvalidCredentials` with the
/// message, not retried.
#[tokio::test]
async fn channel_manager_not_found_spring_json_500_is_invalid_credentials() {
    let body = r#"{"timestamp":"2024-01-01T00:00:00.000+00:00","status":500,"error":"Internal Server Error","message":"Channel manager not found","path":"/getToken"}"#;
    assert_not_found("application/json", body).await;
}

/// Seed: "Channel manager not found" is the only server error that is about the credentials.
/// Any other 500 is transient: retried (3 attempts), then `Error::TokenEndpoint`.
#[tokio::test]
async fn other_500_is_retried_then_token_endpoint() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let body = r#"{"status":500,"error":"Internal Server Error","message":"boom"}"#;
    let token = get_token_mock(&server, 500, "application/json", body).await;
    let api = api_echo_mock(&server).await;
    let client = client(auth(&server, &clock, PASSWORD));
    match api_error(&client, &server).await {
        Error::TokenEndpoint {
            status, excerpt, ..
        } => {
            assert_eq!(status, 500);
            assert_eq!(excerpt, "boom");
        }
        other => panic!("expected TokenEndpoint, got {other:?}"),
    }
    token.assert_calls_async(3).await;
    api.assert_calls_async(0).await;
}

/// Seed: "Authentication: Use the get-token endpoint to obtain a token" (a service that is
/// briefly down is not a credential problem): 503 is retried, then `Error::TokenEndpoint`.
#[tokio::test]
async fn service_unavailable_is_retried_then_token_endpoint() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let token = get_token_mock(&server, 503, TEXT_PLAIN, "Service Unavailable").await;
    let api = api_echo_mock(&server).await;
    let client = client(auth(&server, &clock, PASSWORD));
    let err = api_error(&client, &server).await;
    assert!(
        matches!(err, Error::TokenEndpoint { status, .. } if status == 503),
        "{err:?}"
    );
    assert!(err.is_transient());
    token.assert_calls_async(3).await;
    api.assert_calls_async(0).await;
}
