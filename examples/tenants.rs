//! One layer for many tenants: an agency calls one partner on behalf of its clients, each with
//! credentials of its own. No set-up needed:
//!
//! ```sh
//! cargo run --example tenants
//! ```
//!
//! A local mock partner issues tokens per client (`POST /token`, JSON client credentials) and
//! answers `GET /campaigns` with the campaigns of the client whose token came with the request.
//! The layer, a `TenantAuth`, asks a `SourceProvider` (here a map that plays a database) for a
//! client's credentials the first time the client is named, and keeps one token per client,
//! for at most two clients at a time.
//!
//! It shows: each request names its client with a `TenantKey` and gets that client's token;
//! the provider is asked once per client and each token fetched once; a request naming no
//! client, or an unknown one, fails with `Error::NoCredential` and is sent nowhere; a third
//! client evicts the least recently used one, which is looked up and fetched again when it
//! returns. It prints counts and messages, never a secret or a token, and asserts them all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use httpmock::{HttpMockRequest, HttpMockResponse, MockServer};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use reqwest_partner_auth::engine::{HttpTokenSource, Param};
use reqwest_partner_auth::middleware::SourceProvider;
use reqwest_partner_auth::{Error, TenantAuth, TenantKey};
use url::Url;

/// The agency's clients and their partner credentials, as a database would hold them.
struct Clients {
    token_url: Url,
    secrets: HashMap<&'static str, &'static str>,
    lookups: AtomicUsize,
}

#[reqwest_partner_auth::async_trait]
impl SourceProvider for Clients {
    type Source = HttpTokenSource;

    async fn source(&self, key: &TenantKey) -> Result<Option<HttpTokenSource>, Error> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        Ok(self.secrets.get(key.as_str()).map(|secret| {
            HttpTokenSource::post(self.token_url.clone())
                .param("client_id", Param::text(key.as_str()))
                .param("client_secret", Param::secret(*secret))
        }))
    }
}

/// The partner's token endpoint: a token per client, `<client>.<n>`.
fn issue(req: &HttpMockRequest) -> HttpMockResponse {
    static ISSUED: AtomicUsize = AtomicUsize::new(0);
    let body: serde_json::Value = serde_json::from_slice(req.body().as_ref()).unwrap_or_default();
    let client = body["client_id"].as_str().unwrap_or_default();
    let n = ISSUED.fetch_add(1, Ordering::SeqCst) + 1;
    HttpMockResponse::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"access_token":"{client}.{n}","token_type":"Bearer","expires_in":3600}}"#
        ))
        .build()
}

/// The partner's API: the campaigns of the client whose token came with the request.
fn campaigns(req: &HttpMockRequest) -> HttpMockResponse {
    let client = req
        .headers_vec()
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.strip_prefix("Bearer "))
        .and_then(|token| token.split('.').next())
        .unwrap_or("nobody")
        .to_owned();
    HttpMockResponse::builder()
        .status(200)
        .body(format!("campaigns of {client}"))
        .build()
}

async fn campaigns_of(client: &ClientWithMiddleware, api: &str, tenant: &str) -> String {
    client
        .get(format!("{api}/campaigns"))
        .with_extension(TenantKey::new(tenant))
        .send()
        .await
        .expect("the request should succeed")
        .text()
        .await
        .expect("a body")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let partner = MockServer::start_async().await;
    let tokens = partner
        .mock_async(|when, then| {
            when.method(httpmock::Method::POST).path("/token");
            then.respond_with(issue);
        })
        .await;
    let api = partner
        .mock_async(|when, then| {
            when.path("/campaigns");
            then.respond_with(campaigns);
        })
        .await;
    let base = Url::parse(&partner.base_url())?;

    let clients = Arc::new(Clients {
        token_url: base.join("/token")?,
        secrets: HashMap::from([
            ("acme", "acme-secret"),
            ("zeta", "zeta-secret"),
            ("kilo", "kilo-secret"),
        ]),
        lookups: AtomicUsize::new(0),
    });
    let layer = TenantAuth::builder(Arc::clone(&clients), &base)
        .max_tenants(2)
        .build();
    let client = ClientBuilder::new(reqwest::Client::new())
        .with(layer.clone())
        .build();
    let url = partner.base_url();

    println!("1. each request names its client and gets that client's token");
    for tenant in ["acme", "zeta", "acme", "zeta"] {
        let answer = campaigns_of(&client, &url, tenant).await;
        // moka records uses in batches and applies them at its next maintenance: running it
        // after each request makes the eviction order below exact.
        layer.run_pending_tasks();
        println!("   {tenant}: {answer}");
        assert_eq!(answer, format!("campaigns of {tenant}"));
    }
    let lookups = clients.lookups.load(Ordering::SeqCst);
    let fetches = tokens.calls_async().await;
    println!("   provider asked {lookups} times, tokens fetched {fetches} times");
    assert_eq!((lookups, fetches), (2, 2));

    println!("2. no client, or an unknown one: a typed error, nothing sent");
    let before = api.calls_async().await;
    for request in [
        client.get(format!("{url}/campaigns")),
        client
            .get(format!("{url}/campaigns"))
            .with_extension(TenantKey::new("ghost")),
    ] {
        let err = request.send().await.expect_err("no credential");
        let err = Error::from_middleware(&err).expect("the layer's error");
        println!("   {err}");
        assert!(matches!(err, Error::NoCredential { .. }));
    }
    assert_eq!(api.calls_async().await, before);

    println!("3. room for two clients: kilo evicts the least recently used (zeta)");
    campaigns_of(&client, &url, "acme").await;
    layer.run_pending_tasks();
    campaigns_of(&client, &url, "kilo").await;
    layer.run_pending_tasks();
    println!("   clients cached: {}", layer.cached_tenants());
    assert_eq!(layer.cached_tenants(), 2);
    let fetches = tokens.calls_async().await;
    campaigns_of(&client, &url, "zeta").await;
    println!(
        "   zeta again: looked up and fetched again ({} -> {} token fetches)",
        fetches,
        tokens.calls_async().await
    );
    assert_eq!(tokens.calls_async().await, fetches + 1);

    println!("done");
    Ok(())
}
