//! Setu (Bridge): get a partner `accessToken` at `POST /auth/token` with form-encoded client
//! credentials, then present it as `Authorization: Bearer <accessToken>` to the next APIs.
//! No set-up needed:
//!
//! ```sh
//! cargo run --example setu
//! ```
//!
//! An in-process mock ([`httpmock`]) plays Setu exactly as its contract describes it: the
//! token endpoint wants the URL-encoded body parameters `grant_type=client_credentials`,
//! `client_id` and `client_secret` (`application/x-www-form-urlencoded`) and answers
//! `{"accessToken": "<JWT>", "refreshToken": "<JWT>"}` with no `expires_in`; the access token
//! is a JWT whose `exp` is 15 minutes ahead ("valid for 15 minutes"). The contract documents
//! no error body; wrong credentials get a 401 shaped like the Keycloak error of Setu's token
//! issuer. The API (`GET /v1/next-api`) accepts only the newest token.
//!
//! It shows: the expiry the layer reads from the JWT `exp` (15 minutes); the first call
//! fetches a token, later calls reuse it; 14 min 45 s later (inside the 30 s skew before
//! `exp`) a new one is fetched first ("has to be regenerated once expired"); a 401 from the
//! API makes the layer fetch a new token and replay the call once; wrong credentials are the
//! typed [`Error::InvalidCredentials`] after exactly one attempt. It prints hit counts,
//! statuses, the expiry and error messages, never a secret or a token, and asserts them all.
//!
//! Against the real partner, set `SETU_CLIENT_ID` and `SETU_CLIENT_SECRET` (made available at
//! the end of the configuration on Bridge) and give the base URL of your Bridge environment:
//! the contract names no host; the token endpoint is `<base>/auth/token`, and the token goes
//! to that origin only.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use reqwest_partner_auth::setu;
//! let base = url::Url::parse("https://bridge.setu.example/")?; // your environment's host
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(setu::Auth::with_base_url(setu::Credentials::from_env()?, &base))
//!     .build();
//! let res = client.get(base.join("the/next/api")?).send().await?;
//! # let _ = res; Ok(()) }
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use httpmock::{HttpMockRequest, HttpMockResponse, Method::POST, Mock, MockServer};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::token::Expiry;
use reqwest_partner_auth::{setu, Clock, Error, FetchContext, FetchReason, TokenSource};
use serde_json::{json, Value};
use url::Url;

const CLIENT_ID: &str = "Your.Client.ID";
const CLIENT_SECRET: &str = "Your.Client.Secret";
/// "The partner accessToken is valid for 15 minutes".
const LIFETIME_SECS: u64 = 15 * 60;

/// The partner's state: the clock it issues tokens by, tokens issued, answers given.
struct Partner {
    clock: ManualClock,
    newest: Mutex<String>,
    issued: AtomicUsize,
    revoked: AtomicBool,
    bad_body: AtomicUsize,
    bad_credentials: AtomicUsize,
    rejected: AtomicUsize,
}

impl Partner {
    fn new(clock: ManualClock) -> Self {
        Self {
            clock,
            newest: Mutex::default(),
            issued: AtomicUsize::new(0),
            revoked: AtomicBool::new(false),
            bad_body: AtomicUsize::new(0),
            bad_credentials: AtomicUsize::new(0),
            rejected: AtomicUsize::new(0),
        }
    }

    /// An (unsigned) JWT like Setu's: RS256 header, `exp`/`iat`/`jti`/`typ` claims.
    fn jwt(&self, n: usize, typ: &str, lifetime: u64) -> String {
        let iat = unix_secs(self.clock.system_now());
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
        let claims =
            json!({ "exp": iat + lifetime, "iat": iat, "jti": format!("setu-{n}"), "typ": typ });
        format!("{header}.{}.c2lnbmF0dXJl", b64.encode(claims.to_string()))
    }

    /// `POST /auth/token`, as the contract describes it.
    fn token_endpoint(&self, req: &HttpMockRequest) -> HttpMockResponse {
        let is_form = req
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/x-www-form-urlencoded");
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.body_ref())
            .into_owned()
            .collect();
        let field = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if !is_form || pairs.len() != 3 || field("grant_type") != Some("client_credentials") {
            // The contract documents no answer for this; the example asserts it never happens.
            self.bad_body.fetch_add(1, Ordering::SeqCst);
            return json_response(400, json!({ "error": "invalid_request" }));
        }
        if field("client_id") != Some(CLIENT_ID) || field("client_secret") != Some(CLIENT_SECRET) {
            self.bad_credentials.fetch_add(1, Ordering::SeqCst);
            return json_response(
                401,
                json!({
                    "error": "unauthorized_client",
                    "error_description": "Invalid client or Invalid client credentials",
                }),
            );
        }
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let access = self.jwt(n, "Bearer", LIFETIME_SECS);
        *self.newest.lock().unwrap() = access.clone();
        self.revoked.store(false, Ordering::SeqCst);
        json_response(
            200,
            json!({ "accessToken": access, "refreshToken": self.jwt(n, "Refresh", 2 * LIFETIME_SECS) }),
        )
    }

    /// `GET /v1/next-api`: the newest, unrevoked token, or 401.
    fn next_api(&self, req: &HttpMockRequest) -> HttpMockResponse {
        let newest = format!("Bearer {}", self.newest.lock().unwrap());
        let sent = req.headers().get("authorization").cloned();
        if sent.is_some_and(|v| v == newest.as_str()) && !self.revoked.load(Ordering::SeqCst) {
            json_response(200, json!({ "status": "ok" }))
        } else {
            self.rejected.fetch_add(1, Ordering::SeqCst);
            json_response(401, json!({ "error": "invalid token" }))
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // --- The mock partner -------------------------------------------------------------
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let partner = Arc::new(Partner::new(clock.clone()));
    let p = Arc::clone(&partner);
    let token_endpoint = server
        .mock_async(|when, then| {
            when.method(POST).path("/auth/token");
            then.respond_with(move |req| p.token_endpoint(req));
        })
        .await;
    let p = Arc::clone(&partner);
    let api = server
        .mock_async(|when, then| {
            when.path("/v1/next-api");
            then.respond_with(move |req| p.next_api(req));
        })
        .await;

    let base = Url::parse(&server.base_url())?;
    let credentials = setu::Credentials::new(CLIENT_ID, CLIENT_SECRET);

    println!("1. What the layer reads from setu::Source's answer (one direct fetch):");
    let token = setu::Source::with_base_url(credentials.clone(), &base)
        .fetch(&FetchContext::new(FetchReason::Initial))
        .await?;
    let Expiry::At(exp) = token.expiry() else {
        panic!(
            "the accessToken's JWT exp is the expiry, got {:?}",
            token.expiry()
        );
    };
    let left = exp.duration_since(SystemTime::now()).unwrap_or_default();
    println!(
        "   no expires_in; JWT exp = {} (unix), {} s from now; refreshToken kept: {}",
        unix_secs(exp),
        left.as_secs(),
        token.refresh_token().is_some()
    );
    assert!(
        left > Duration::from_secs(LIFETIME_SECS - 5) && left <= Duration::from_secs(LIFETIME_SECS)
    );
    report(&token_endpoint, &api, 1, 0).await;

    // --- The client: the Setu layer pointed at the mock -------------------------------
    let layer = setu::Auth::with_base_url(credentials, &base).clock(Arc::new(clock.clone()));
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(layer)
        .build();
    let next = base.join("/v1/next-api")?;

    println!("\n2. First API call: the layer has no token yet, so it fetches one.");
    call(&client, &next).await?;
    report(&token_endpoint, &api, 2, 1).await;

    println!("\n3. Two more calls: the cached token is reused.");
    call(&client, &next).await?;
    call(&client, &next).await?;
    report(&token_endpoint, &api, 2, 3).await;

    println!("\n4. 14 min 45 s later (inside the 30 s skew before exp): a new token first.");
    clock.advance(Duration::from_secs(14 * 60 + 45));
    call(&client, &next).await?;
    report(&token_endpoint, &api, 3, 4).await;

    println!("\n5. setu::Source stops accepting the token; the API answers 401 to it.");
    partner.revoked.store(true, Ordering::SeqCst);
    call(&client, &next).await?;
    report(&token_endpoint, &api, 4, 6).await;
    let rejected = partner.rejected.load(Ordering::SeqCst);
    println!("   the API answered 401 {rejected} time; the layer regenerated the token and replayed once");
    assert_eq!(rejected, 1);

    println!("\n6. A client with a wrong client secret.");
    let wrong = ClientBuilder::new(reqwest::Client::new())
        .with(setu::Auth::with_base_url(
            setu::Credentials::new(CLIENT_ID, "not-the-secret"),
            &base,
        ))
        .build();
    let err = wrong
        .get(next.clone())
        .send()
        .await
        .expect_err("wrong credentials must fail");
    match Error::from_middleware(&err) {
        Some(Error::InvalidCredentials { message, .. }) => {
            println!("   Error::InvalidCredentials, setu::Source says: {message:?}");
            assert_eq!(message, "Invalid client or Invalid client credentials");
        }
        other => panic!("expected Error::InvalidCredentials, got {other:?}"),
    }
    let attempts = partner.bad_credentials.load(Ordering::SeqCst);
    println!("   token endpoint answered 401 {attempts} time (credential errors are not retried)");
    assert_eq!(attempts, 1);
    report(&token_endpoint, &api, 5, 6).await;
    assert_eq!(
        partner.bad_body.load(Ordering::SeqCst),
        0,
        "every form was well formed"
    );

    println!("\nDone: every step behaved as the setu::Source contract says.");
    Ok(())
}

/// One API call; it must succeed.
async fn call(client: &ClientWithMiddleware, url: &Url) -> Result<(), Box<dyn std::error::Error>> {
    let res = client.get(url.clone()).send().await?;
    let status = res.status();
    let body: Value = res.json().await?;
    println!("   GET {} -> {status}, {body}", url.path());
    assert_eq!(status, 200, "the caller must always see a success");
    Ok(())
}

/// Prints the hit counts of both endpoints and checks them.
async fn report(token_endpoint: &Mock<'_>, api: &Mock<'_>, tokens: usize, api_calls: usize) {
    let (t, a) = (token_endpoint.calls_async().await, api.calls_async().await);
    println!("   token endpoint hits: {t}, API hits: {a}");
    assert_eq!(
        (t, a),
        (tokens, api_calls),
        "(token endpoint hits, API hits)"
    );
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

fn json_response(status: u16, body: Value) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}
