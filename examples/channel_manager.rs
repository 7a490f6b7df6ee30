//! Channel manager: `POST /getToken` with the channel user's name and password, a plain-text
//! token back, `Authorization: Bearer <token>` on the connectivity calls. No set-up needed:
//!
//! ```sh
//! cargo run --example channel_manager
//! ```
//!
//! An in-process mock ([`httpmock`]) plays the partner exactly as its contract describes it:
//! `POST /getToken` reads `username` and `password` as request parameters
//! (`application/x-www-form-urlencoded`) and answers a `text/plain` token; an unknown user
//! gets the contract's "Channel manager not found" `RuntimeException`, which a Spring server
//! renders as a 500; the connectivity API (`GET /properties`) wants the newest token.
//!
//! It shows: the first call fetches a token, later calls reuse it; when the partner revokes the
//! token, the layer refreshes it and replays the call once; an unknown user is the typed
//! [`Error::InvalidCredentials`] with the partner's message, after exactly one attempt. It
//! prints hit counts and statuses, never a password or a token, and asserts every count.
//!
//! Against the real partner, take the credentials from the environment
//! (`CHANNEL_MANAGER_USERNAME`, `CHANNEL_MANAGER_PASSWORD`) and give the base URL of its
//! connectivity API (the contract names no host; `/getToken` and the API share it):
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use reqwest_partner_auth::channel_manager;
//! let base = url::Url::parse("https://connectivity.partner.example/")?;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(channel_manager::Auth::with_base_url(channel_manager::Credentials::from_env()?, &base))
//!     .build();
//! let properties = client.get(base.join("properties")?).send().await?;
//! # let _ = properties; Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use httpmock::Method::{GET, POST};
use httpmock::{HttpMockRequest, HttpMockResponse, Mock, MockServer};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::{channel_manager, Error};
use url::Url;

const USERNAME: &str = "channel_user";
const PASSWORD: &str = "550e8400-e29b-41d4-a716-446655440000";

/// The partner's state: tokens issued, whether the newest is revoked, unknown-user answers.
#[derive(Default)]
struct Partner {
    issued: AtomicUsize,
    revoked: AtomicBool,
    not_found: AtomicUsize,
    rejected: AtomicUsize,
}

impl Partner {
    fn current_token(&self) -> String {
        // Shaped like the contract's example response `eyJhbGciOiJIUzI1NiJ9.example.token`.
        format!(
            "eyJhbGciOiJIUzI1NiJ9.example-{}.token",
            self.issued.load(Ordering::SeqCst)
        )
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = MockServer::start_async().await;
    let partner = Arc::new(Partner::default());
    let get_token = get_token_endpoint(&server, Arc::clone(&partner)).await;
    let properties = properties_endpoint(&server, Arc::clone(&partner)).await;

    let base = Url::parse(&server.base_url())?;
    let url = base.join("properties")?;
    let client = channel_client(&base, PASSWORD);

    println!("1. First call: the layer POSTs /getToken, then sends the Bearer token.");
    call(&client, &url).await?;
    report(&get_token, &properties, 1, 1).await;

    println!("2. Three more calls reuse the token (it carries no expiry: used until a 401).");
    for _ in 0..3 {
        call(&client, &url).await?;
    }
    report(&get_token, &properties, 1, 4).await;

    println!("3. The partner revokes the token: one 401, a new token, the call replayed once.");
    partner.revoked.store(true, Ordering::SeqCst);
    call(&client, &url).await?;
    report(&get_token, &properties, 2, 6).await;
    assert_eq!(partner.rejected.load(Ordering::SeqCst), 1);

    println!(
        "4. An unknown channel user: the partner answers 500 \"{channel_manager::NOT_FOUND}\"."
    );
    let stranger = channel_client(&base, "not-the-password");
    let err = stranger
        .get(url.clone())
        .send()
        .await
        .expect_err("an unknown user gets no token");
    match Error::from_middleware(&err) {
        Some(Error::InvalidCredentials { message, .. }) => {
            println!("   Error::InvalidCredentials {{ message: {message:?} }}");
            assert_eq!(message, channel_manager::NOT_FOUND);
        }
        other => panic!("expected Error::InvalidCredentials, got {other:?}"),
    }
    let attempts = partner.not_found.load(Ordering::SeqCst);
    println!("   /getToken attempts for the unknown user: {attempts} (not retried)");
    assert_eq!(attempts, 1);
    report(&get_token, &properties, 3, 6).await;

    println!("Done: every step behaved as the contract says.");
    Ok(())
}

fn channel_client(base: &Url, password: &str) -> ClientWithMiddleware {
    let credentials = channel_manager::Credentials::new(USERNAME, password);
    ClientBuilder::new(reqwest::Client::new())
        .with(channel_manager::Auth::with_base_url(credentials, base))
        .build()
}

/// `POST /getToken`: `username` and `password` as request parameters (form body or query),
/// a `text/plain` token, or the contract's "Channel manager not found" as a Spring 500.
async fn get_token_endpoint(server: &MockServer, partner: Arc<Partner>) -> Mock<'_> {
    server
        .mock_async(|when, then| {
            when.method(POST).path("/getToken");
            then.respond_with(move |req: &HttpMockRequest| {
                let mut params: HashMap<String, String> = req.query_params().into_iter().collect();
                let form = req
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v == "application/x-www-form-urlencoded");
                if form {
                    params.extend(url::form_urlencoded::parse(req.body_ref()).into_owned());
                }
                let known = params.get("username").map(String::as_str) == Some(USERNAME)
                    && params.get("password").map(String::as_str) == Some(PASSWORD);
                if !known {
                    partner.not_found.fetch_add(1, Ordering::SeqCst);
                    let body = format!(
                        r#"{{"timestamp":"2024-01-01T00:00:00.000+00:00","status":500,"error":"Internal Server Error","message":"{channel_manager::NOT_FOUND}","path":"/getToken"}}"#
                    );
                    return response(500, "application/json", body);
                }
                partner.issued.fetch_add(1, Ordering::SeqCst);
                partner.revoked.store(false, Ordering::SeqCst);
                response(200, "text/plain;charset=UTF-8", partner.current_token())
            });
        })
        .await
}

/// `GET /properties`: only the newest, unrevoked token is accepted.
async fn properties_endpoint(server: &MockServer, partner: Arc<Partner>) -> Mock<'_> {
    server
        .mock_async(|when, then| {
            when.method(GET).path("/properties");
            then.respond_with(move |req: &HttpMockRequest| {
                let expected = format!("Bearer {}", partner.current_token());
                let sent = req.headers().get("authorization").cloned();
                if sent.is_some_and(|v| v == expected.as_str())
                    && !partner.revoked.load(Ordering::SeqCst)
                {
                    let body =
                        r#"[{"id":101,"name":"Hotel Alpha"},{"id":102,"name":"Hotel Beta"}]"#;
                    response(200, "application/json", body.to_owned())
                } else {
                    partner.rejected.fetch_add(1, Ordering::SeqCst);
                    response(401, "text/plain", "Unauthorized".to_owned())
                }
            });
        })
        .await
}

/// One connectivity call; it must succeed.
async fn call(client: &ClientWithMiddleware, url: &Url) -> Result<(), Box<dyn std::error::Error>> {
    let res = client.get(url.clone()).send().await?;
    let status = res.status();
    let body: serde_json::Value = res.json().await?;
    let count = body.as_array().map_or(0, Vec::len);
    println!("   GET {} -> {status}, {count} properties", url.path());
    assert_eq!(status, 200, "the caller must see a success");
    Ok(())
}

/// Prints and checks the hit counts of both endpoints.
async fn report(get_token: &Mock<'_>, api: &Mock<'_>, tokens: usize, api_calls: usize) {
    let (t, a) = (get_token.calls_async().await, api.calls_async().await);
    println!("   /getToken hits: {t}, /properties hits: {a}");
    assert_eq!(
        (t, a),
        (tokens, api_calls),
        "(/getToken hits, /properties hits)"
    );
}

fn response(status: u16, content_type: &str, body: String) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body)
        .build()
}
