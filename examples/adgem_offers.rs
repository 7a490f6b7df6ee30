//! AdGem: obtain a JWT at `POST /v1/apps/tokens` with the application credentials, then query
//! targeted offers at `POST /v1/offers` with `Authorization: Bearer <jwt>`. No set-up needed:
//!
//! ```sh
//! cargo run --example adgem_offers
//! ```
//!
//! An in-process mock ([`httpmock`]) plays AdGem exactly as its contract describes it: the
//! token endpoint wants `Content-Type: application/json` and the four body parameters
//! `adgem_pub_id` and `adgem_app_id` (JSON integers), `client_id` and `client_secret`
//! (strings); wrong credentials are `401 {"error": "invalid_client", "error_description":
//! "Invalid client credentials"}`, a failure during token generation is `500 {"error":
//! "server_error", ...}`, and a good request gets `{"access_token", "token_type": "Bearer",
//! "expires_in": 3600}`. The offers API answers the seed's GraphQL query
//! `{ offers(player_id: "user123") { id name total_payout_usd } }` for the newest token only.
//!
//! It shows: the first query fetches a token, later queries reuse it; a `server_error` during
//! a refresh is retried and never reaches the caller; when AdGem stops accepting the token the
//! API answers 401 and the layer requests a new token and replays the query once ("When you
//! receive a 401 response, request a new token"); wrong credentials are the typed
//! [`Error::InvalidCredentials`] with AdGem's message and code, after exactly one attempt. It
//! prints hit counts, statuses and error messages, never a secret or a token, and asserts them.
//!
//! Against the real partner, set `ADGEM_PUB_ID`, `ADGEM_APP_ID` (integers), `ADGEM_CLIENT_ID`
//! and `ADGEM_CLIENT_SECRET` and use the production layer: its token endpoint is
//! `https://targeted-api.adgem.com/v1/apps/tokens`, and it attaches the token to that origin
//! only.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use reqwest_partner_auth::adgem;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(adgem::Auth::new(adgem::Credentials::from_env()?))
//!     .build();
//! let offers = client
//!     .post("https://targeted-api.adgem.com/v1/offers")
//!     .json(&serde_json::json!({
//!         "query": "{ offers(player_id: \"user123\") { id name total_payout_usd } }"
//!     }))
//!     .send()
//!     .await?;
//! # let _ = offers; Ok(()) }
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use httpmock::Method::POST;
use httpmock::{HttpMockRequest, HttpMockResponse, Mock, MockServer};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::{adgem, Error};
use serde_json::{json, Value};
use url::Url;

const PUB_ID: i64 = 1001;
const APP_ID: i64 = 2002;
const CLIENT_ID: &str = "your-client-id";
const CLIENT_SECRET: &str = "your-client-secret";
const OFFERS_QUERY: &str = "{ offers(player_id: \"user123\") { id name total_payout_usd } }";

/// The partner's state: tokens issued, failures to inject, answers given.
#[derive(Default)]
struct Partner {
    issued: AtomicUsize,
    revoked: AtomicBool,
    fail_next: AtomicUsize,
    server_errors: AtomicUsize,
    invalid_client: AtomicUsize,
    bad_body: AtomicUsize,
    rejected: AtomicUsize,
}

impl Partner {
    /// A JWT-shaped token that names its serial number (never printed).
    fn token(n: usize) -> String {
        format!("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.adgem-{n}.c2lnbmF0dXJl")
    }

    /// `POST /v1/apps/tokens`, as the contract describes it.
    fn token_endpoint(&self, req: &HttpMockRequest) -> HttpMockResponse {
        let is_json = req
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/json");
        let body: Option<serde_json::Map<String, Value>> =
            serde_json::from_slice(req.body_ref()).ok();
        let well_formed = is_json
            && body.as_ref().is_some_and(|b| {
                b.len() == 4
                    && b.get("adgem_pub_id").is_some_and(Value::is_i64)
                    && b.get("adgem_app_id").is_some_and(Value::is_i64)
                    && b.get("client_id").is_some_and(Value::is_string)
                    && b.get("client_secret").is_some_and(Value::is_string)
            });
        if !well_formed {
            // The contract documents no answer for this; the example asserts it never happens.
            self.bad_body.fetch_add(1, Ordering::SeqCst);
            return json_response(400, json!({ "error": "invalid_request" }));
        }
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.server_errors.fetch_add(1, Ordering::SeqCst);
            return json_response(
                500,
                json!({ "error": "server_error", "error_description": "An unexpected error occurred" }),
            );
        }
        let body = body.unwrap_or_default();
        let expected = json!({
            "adgem_pub_id": PUB_ID,
            "adgem_app_id": APP_ID,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        });
        if Value::Object(body) != expected {
            self.invalid_client.fetch_add(1, Ordering::SeqCst);
            return json_response(
                401,
                json!({ "error": "invalid_client", "error_description": "Invalid client credentials" }),
            );
        }
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        self.revoked.store(false, Ordering::SeqCst);
        json_response(
            200,
            json!({ "access_token": Self::token(n), "token_type": "Bearer", "expires_in": 3600 }),
        )
    }

    /// `POST /v1/offers`: the seed's query (intact, also on a replay) with the newest,
    /// unrevoked token, or 401.
    fn offers(&self, req: &HttpMockRequest) -> HttpMockResponse {
        let newest = format!("Bearer {}", Self::token(self.issued.load(Ordering::SeqCst)));
        let accepted = req
            .headers()
            .get("authorization")
            .is_some_and(|v| v == newest.as_str());
        if !accepted || self.revoked.load(Ordering::SeqCst) {
            self.rejected.fetch_add(1, Ordering::SeqCst);
            return json_response(401, json!({ "error": "unauthorized" }));
        }
        let body: Value = serde_json::from_slice(req.body_ref()).unwrap_or_default();
        if body != json!({ "query": OFFERS_QUERY }) {
            self.bad_body.fetch_add(1, Ordering::SeqCst);
            return json_response(400, json!({ "error": "invalid query" }));
        }
        json_response(
            200,
            json!({ "data": { "offers": [
                { "id": "of-1", "name": "Reach level 10", "total_payout_usd": 1.25 },
                { "id": "of-2", "name": "Install and open", "total_payout_usd": 0.4 },
            ] } }),
        )
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // --- The mock partner -------------------------------------------------------------
    let server = MockServer::start_async().await;
    let partner = Arc::new(Partner::default());
    let p = Arc::clone(&partner);
    let token_endpoint = server
        .mock_async(|when, then| {
            when.method(POST).path("/v1/apps/tokens");
            then.respond_with(move |req| p.token_endpoint(req));
        })
        .await;
    let p = Arc::clone(&partner);
    let api = server
        .mock_async(|when, then| {
            when.method(POST).path("/v1/offers");
            then.respond_with(move |req| p.offers(req));
        })
        .await;

    // --- The client: the AdGem layer pointed at the mock ------------------------------
    let base = Url::parse(&server.base_url())?;
    let clock = ManualClock::new();
    let credentials = adgem::Credentials::new(PUB_ID, APP_ID, CLIENT_ID, CLIENT_SECRET);
    let layer = adgem::Auth::from_source(adgem::Source::with_base_url(credentials, &base))
        .clock(Arc::new(clock.clone()));
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(layer)
        .build();
    let offers = base.join("/v1/offers")?;

    println!("1. First offers query: no token yet, so the layer fetches one.");
    query_offers(&client, &offers).await?;
    report(&token_endpoint, &api, 1, 1).await;

    println!("\n2. Two more queries: the cached token is reused.");
    query_offers(&client, &offers).await?;
    query_offers(&client, &offers).await?;
    report(&token_endpoint, &api, 1, 3).await;

    println!(
        "\n3. An hour later the token is due; adgem::Source's first answer is a 500 server_error."
    );
    partner.fail_next.store(1, Ordering::SeqCst);
    clock.advance(Duration::from_secs(59 * 60 + 45));
    query_offers(&client, &offers).await?;
    report(&token_endpoint, &api, 3, 4).await;
    println!(
        "   server_error answered {} time; the layer retried and the caller never saw it",
        partner.server_errors.load(Ordering::SeqCst)
    );
    assert_eq!(partner.server_errors.load(Ordering::SeqCst), 1);

    println!("\n4. adgem::Source stops accepting the token; the offers API answers 401 to it.");
    partner.revoked.store(true, Ordering::SeqCst);
    query_offers(&client, &offers).await?;
    report(&token_endpoint, &api, 4, 6).await;
    let rejected = partner.rejected.load(Ordering::SeqCst);
    println!("   the API answered 401 {rejected} time; the layer requested a new token and replayed once");
    assert_eq!(rejected, 1);

    println!("\n5. A client with a wrong client secret.");
    let wrong = ClientBuilder::new(reqwest::Client::new())
        .with(adgem::Auth::from_source(adgem::Source::with_base_url(
            adgem::Credentials::new(PUB_ID, APP_ID, CLIENT_ID, "not-the-secret"),
            &base,
        )))
        .build();
    let err = wrong
        .post(offers.clone())
        .json(&json!({ "query": OFFERS_QUERY }))
        .send()
        .await
        .expect_err("wrong credentials must fail");
    match Error::from_middleware(&err) {
        Some(Error::InvalidCredentials { message, code }) => {
            println!(
                "   Error::InvalidCredentials, adgem::Source says: {message:?} (code {code:?})"
            );
            assert_eq!(message, "Invalid client credentials");
            assert_eq!(code.as_deref(), Some("invalid_client"));
        }
        other => panic!("expected Error::InvalidCredentials, got {other:?}"),
    }
    let attempts = partner.invalid_client.load(Ordering::SeqCst);
    println!("   token endpoint answered 401 {attempts} time (credential errors are not retried)");
    assert_eq!(attempts, 1);
    report(&token_endpoint, &api, 5, 6).await;
    assert_eq!(
        partner.bad_body.load(Ordering::SeqCst),
        0,
        "every body arrived intact"
    );

    println!("\nDone: every step behaved as the adgem::Source contract says.");
    Ok(())
}

/// The seed's offers query; it must succeed.
async fn query_offers(
    client: &ClientWithMiddleware,
    url: &Url,
) -> Result<(), Box<dyn std::error::Error>> {
    let res = client
        .post(url.clone())
        .json(&json!({ "query": OFFERS_QUERY }))
        .send()
        .await?;
    let status = res.status();
    let body: Value = res.json().await?;
    let offers = body["data"]["offers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let payout: f64 = offers
        .iter()
        .filter_map(|o| o["total_payout_usd"].as_f64())
        .sum();
    println!(
        "   POST {} -> {status}, {} offer(s) for user123, ${payout:.2} in all",
        url.path(),
        offers.len()
    );
    assert_eq!(status, 200, "the caller must always see a success");
    Ok(())
}

/// Prints the hit counts of both endpoints and checks them.
async fn report(token_endpoint: &Mock<'_>, api: &Mock<'_>, tokens: usize, api_calls: usize) {
    let (t, a) = (token_endpoint.calls_async().await, api.calls_async().await);
    println!("   token endpoint hits: {t}, offers API hits: {a}");
    assert_eq!(
        (t, a),
        (tokens, api_calls),
        "(token endpoint hits, API hits)"
    );
}

fn json_response(status: u16, body: Value) -> HttpMockResponse {
    HttpMockResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
}
