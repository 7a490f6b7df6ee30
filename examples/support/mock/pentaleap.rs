//! Pentaleap's PCM domain, as its API-key contract describes it: product-feed requests carry
//! `Authorization: apikey <api key>`, one key per publisher.
//! `GET /external/v2/publishers/<publisher id>/markets/<market id>/products/search` accepts
//! only that publisher's key, and `GET /external/v2/markets` a key of any publisher of the
//! organisation. Anything else is `401 {"message": "Unauthorized"}`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use httpmock::{HttpMockRequest, HttpMockResponse, MockServer};
use url::Url;

use super::respond;

const SEARCH_PATH: &str = r"^/external/v2/publishers/[^/]+/markets/[^/]+/products/search$";
pub(crate) const MARKETS_PATH: &str = "/external/v2/markets";

/// The keys the mock issued, one per publisher of the organisation.
pub(crate) const ISSUED: [(&str, &str); 2] = [("1001", "demo-key-1001"), ("1002", "demo-key-1002")];

#[derive(Default)]
struct Counts {
    search: AtomicUsize,
    markets: AtomicUsize,
    rejected: AtomicUsize,
}

/// A running mock PCM domain and its counters.
pub(crate) struct Feeds {
    server: MockServer,
    counts: Arc<Counts>,
}

/// Starts the PCM domain with the keys of [`ISSUED`].
pub(crate) async fn start() -> Feeds {
    let server = MockServer::start_async().await;
    let counts = Arc::new(Counts::default());
    // publisher id -> the `Authorization` value of its key
    let keys: Arc<HashMap<String, String>> = Arc::new(
        ISSUED
            .iter()
            .map(|(p, k)| ((*p).to_owned(), format!("apikey {k}")))
            .collect(),
    );

    let (c, k) = (Arc::clone(&counts), Arc::clone(&keys));
    server
        .mock_async(|when, then| {
            when.method("GET").path_matches(SEARCH_PATH);
            then.respond_with(move |req: &HttpMockRequest| {
                c.search.fetch_add(1, Ordering::SeqCst);
                let path = req.uri().path().to_owned();
                let publisher = path.split('/').nth(4).unwrap_or_default();
                if k.get(publisher).is_some_and(|key| sent_is(req, key)) {
                    respond(200, "application/json", r#"[{"sku":"A-1"},{"sku":"A-2"}]"#)
                } else {
                    unauthorized(&c)
                }
            });
        })
        .await;

    let (c, k) = (Arc::clone(&counts), Arc::clone(&keys));
    server
        .mock_async(|when, then| {
            when.method("GET").path(MARKETS_PATH);
            then.respond_with(move |req: &HttpMockRequest| {
                c.markets.fetch_add(1, Ordering::SeqCst);
                if k.values().any(|key| sent_is(req, key)) {
                    respond(
                        200,
                        "application/json",
                        r#"[{"id":"de"},{"id":"at"},{"id":"ch"}]"#,
                    )
                } else {
                    unauthorized(&c)
                }
            });
        })
        .await;

    Feeds { server, counts }
}

fn sent_is(req: &HttpMockRequest, authorization: &str) -> bool {
    req.headers()
        .get("authorization")
        .is_some_and(|v| v == authorization)
}

fn unauthorized(counts: &Counts) -> HttpMockResponse {
    counts.rejected.fetch_add(1, Ordering::SeqCst);
    respond(401, "application/json", r#"{"message":"Unauthorized"}"#)
}

impl Feeds {
    /// The PCM domain's base URL.
    pub(crate) fn base_url(&self) -> Url {
        Url::parse(&self.server.base_url()).expect("the mock's base URL")
    }

    /// Requests to a publisher's product search so far.
    pub(crate) fn search_hits(&self) -> usize {
        self.counts.search.load(Ordering::SeqCst)
    }

    /// Requests to the markets list so far.
    pub(crate) fn markets_hits(&self) -> usize {
        self.counts.markets.load(Ordering::SeqCst)
    }

    /// Requests answered `401`.
    pub(crate) fn rejected(&self) -> usize {
        self.counts.rejected.load(Ordering::SeqCst)
    }

    /// Prints the hit counts of both endpoints and checks them.
    pub(crate) fn report(&self, searches: usize, markets: usize) {
        let (s, m) = (self.search_hits(), self.markets_hits());
        println!("   products/search hits: {s}, markets hits: {m}");
        assert_eq!((s, m), (searches, markets), "(search hits, markets hits)");
    }
}
