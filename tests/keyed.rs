//! One layer, many tenants: each request names its credential with a `TenantKey`; the layer
//! keeps one token cache per tenant (single flight per tenant, a bounded LRU of tenants) and
//! asks a `SourceProvider` for a tenant's source once while the tenant is cached.
//!
//! Every test talks HTTP to a local httpmock server and moves time with a `ManualClock`.
#![cfg(feature = "keyed")]

mod common;
#[cfg(feature = "redis")]
#[path = "fleet/support.rs"]
#[allow(dead_code, unreachable_pub)]
mod fleet_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use httpmock::{Method, Mock, MockServer};
use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::engine::{HttpTokenSource, Param};
use reqwest_partner_auth::middleware::{SourceProvider, TenantAuth, TenantAuthBuilder};
use reqwest_partner_auth::{Error, TenantKey};
use url::Url;

use common::{
    base, client, counted_mock, echo_mock, json_response, layer_error, rejecting_echo_mock,
    retries, token_body, IntoLayer, SECRET, TOKEN_PATH,
};

const HOUR: u64 = 3600;

/// Knows the tenants it was given; counts how often it was asked for each key.
#[derive(Clone)]
struct Tenants {
    token_url: Url,
    known: Vec<&'static str>,
    asked: Arc<Mutex<HashMap<String, usize>>>,
    delay: Duration,
    /// When set, a lookup of an unknown key says so on the first and waits for the second.
    hold_unknown: Option<(Arc<tokio::sync::Notify>, Arc<tokio::sync::Notify>)>,
}

impl Tenants {
    fn new(server: &MockServer, known: &[&'static str]) -> Self {
        Self {
            token_url: base(server).join(TOKEN_PATH).unwrap(),
            known: known.to_vec(),
            asked: Arc::default(),
            delay: Duration::ZERO,
            hold_unknown: None,
        }
    }

    fn asked(&self, key: &str) -> usize {
        self.asked.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

#[reqwest_partner_auth::async_trait]
impl SourceProvider for Tenants {
    type Source = HttpTokenSource;

    async fn source(&self, key: &TenantKey) -> Result<Option<HttpTokenSource>, Error> {
        *self
            .asked
            .lock()
            .unwrap()
            .entry(key.as_str().to_owned())
            .or_default() += 1;
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        if !self.known.contains(&key.as_str()) {
            if let Some((asked, release)) = &self.hold_unknown {
                asked.notify_one();
                release.notified().await;
            }
            return Ok(None);
        }
        Ok(Some(
            HttpTokenSource::post(self.token_url.clone())
                .param("client_id", Param::text(key.as_str()))
                .param("client_secret", Param::secret(SECRET)),
        ))
    }
}

/// `tenant`'s token endpoint: answers `<tenant>-tok-1`, `<tenant>-tok-2`, ... after `delay`.
async fn tenant_tokens<'a>(
    server: &'a MockServer,
    tenant: &'static str,
    delay: Duration,
) -> Mock<'a> {
    let client_id = format!(r#""client_id":"{tenant}""#);
    counted_mock(
        server,
        move |when| {
            when.method(Method::POST)
                .path(TOKEN_PATH)
                .body_includes(client_id)
        },
        move |n, _| {
            std::thread::sleep(delay);
            json_response(200, &token_body(&format!("{tenant}-tok-{n}"), HOUR))
        },
    )
    .await
}

/// A layer builder for the API on `server` with a manual clock and fast retries.
fn layer(
    server: &MockServer,
    tenants: &Tenants,
    clock: &ManualClock,
) -> TenantAuthBuilder<Tenants> {
    TenantAuth::builder(tenants.clone(), &base(server))
        .clock(Arc::new(clock.clone()))
        .retry_policy(retries())
}

impl<P: SourceProvider> IntoLayer for TenantAuth<P> {
    type Layer = Self;
    fn into_layer(self) -> Self {
        self
    }
}

/// The body of a GET of `/api` for `tenant` (the API mock echoes the `Authorization` header).
async fn get_as(
    client: &reqwest_middleware::ClientWithMiddleware,
    server: &MockServer,
    tenant: &str,
) -> String {
    let res = client
        .get(format!("{}/api", server.base_url()))
        .with_extension(TenantKey::new(tenant))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// The API sees tenant A's token on A's requests and B's on B's; the provider is asked once
/// per tenant and each tenant's token endpoint once, however many requests follow.
#[tokio::test]
async fn each_tenant_gets_its_own_token_and_the_provider_is_asked_once() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let acme = tenant_tokens(&server, "acme", Duration::ZERO).await;
    let zeta = tenant_tokens(&server, "zeta", Duration::ZERO).await;
    let api = echo_mock(&server, |when| when.path("/api")).await;
    let tenants = Tenants::new(&server, &["acme", "zeta"]);
    let client = client(layer(&server, &tenants, &clock).build());

    for _ in 0..3 {
        assert_eq!(get_as(&client, &server, "acme").await, "Bearer acme-tok-1");
        assert_eq!(get_as(&client, &server, "zeta").await, "Bearer zeta-tok-1");
    }

    assert_eq!(api.calls_async().await, 6);
    assert_eq!(acme.calls_async().await, 1);
    assert_eq!(zeta.calls_async().await, 1);
    assert_eq!(tenants.asked("acme"), 1);
    assert_eq!(tenants.asked("zeta"), 1);
}

/// Twenty concurrent first requests, ten per tenant, on a multi-threaded runtime: the
/// provider is asked once per tenant and each tenant's token is fetched once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_fetch_once_per_tenant() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let acme = tenant_tokens(&server, "acme", Duration::from_millis(200)).await;
    let zeta = tenant_tokens(&server, "zeta", Duration::from_millis(200)).await;
    let api = echo_mock(&server, |when| when.path("/api")).await;
    let mut tenants = Tenants::new(&server, &["acme", "zeta"]);
    tenants.delay = Duration::from_millis(50);
    let client = client(layer(&server, &tenants, &clock).build());

    let requests = (0..20).map(|i| {
        let client = client.clone();
        let server_url = server.base_url();
        let tenant = if i % 2 == 0 { "acme" } else { "zeta" };
        tokio::spawn(async move {
            let res = client
                .get(format!("{server_url}/api"))
                .with_extension(TenantKey::new(tenant))
                .send()
                .await
                .unwrap();
            (tenant, res.text().await.unwrap())
        })
    });
    for (tenant, body) in futures_util::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
    {
        assert_eq!(body, format!("Bearer {tenant}-tok-1"));
    }

    assert_eq!(api.calls_async().await, 20);
    assert_eq!(acme.calls_async().await, 1);
    assert_eq!(zeta.calls_async().await, 1);
    assert_eq!(tenants.asked("acme"), 1);
    assert_eq!(tenants.asked("zeta"), 1);
}

/// With room for two tenants, a third evicts the least recently used one; when it comes back,
/// the provider is asked again and its token fetched again, while the others keep theirs.
#[tokio::test]
async fn the_least_recently_used_tenant_is_evicted_and_fetched_again() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let acme = tenant_tokens(&server, "acme", Duration::ZERO).await;
    let zeta = tenant_tokens(&server, "zeta", Duration::ZERO).await;
    let kilo = tenant_tokens(&server, "kilo", Duration::ZERO).await;
    echo_mock(&server, |when| when.path("/api")).await;
    let tenants = Tenants::new(&server, &["acme", "zeta", "kilo"]);
    let layer = layer(&server, &tenants, &clock).max_tenants(2).build();
    let client = client(layer.clone());

    // acme, zeta, then acme again: zeta is the least recently used.
    for tenant in ["acme", "zeta", "acme"] {
        get_as(&client, &server, tenant).await;
        layer.run_pending_tasks();
    }
    assert_eq!(layer.cached_tenants(), 2);
    get_as(&client, &server, "kilo").await;
    layer.run_pending_tasks();
    assert_eq!(layer.cached_tenants(), 2);

    assert_eq!(get_as(&client, &server, "acme").await, "Bearer acme-tok-1");
    layer.run_pending_tasks();
    assert_eq!(get_as(&client, &server, "zeta").await, "Bearer zeta-tok-2");

    assert_eq!(acme.calls_async().await, 1);
    assert_eq!(zeta.calls_async().await, 2);
    assert_eq!(kilo.calls_async().await, 1);
    assert_eq!(tenants.asked("acme"), 1);
    assert_eq!(tenants.asked("zeta"), 2);
}

/// `forget` drops one tenant (its credentials changed): the next request asks the provider
/// again and fetches a new token; the other tenant keeps its token.
#[tokio::test]
async fn a_forgotten_tenant_is_looked_up_again() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let acme = tenant_tokens(&server, "acme", Duration::ZERO).await;
    let zeta = tenant_tokens(&server, "zeta", Duration::ZERO).await;
    echo_mock(&server, |when| when.path("/api")).await;
    let tenants = Tenants::new(&server, &["acme", "zeta"]);
    let layer = layer(&server, &tenants, &clock).build();
    let client = client(layer.clone());

    get_as(&client, &server, "acme").await;
    get_as(&client, &server, "zeta").await;
    layer.forget(&TenantKey::new("acme"));
    assert_eq!(get_as(&client, &server, "acme").await, "Bearer acme-tok-2");
    assert_eq!(get_as(&client, &server, "zeta").await, "Bearer zeta-tok-1");

    assert_eq!(acme.calls_async().await, 2);
    assert_eq!(zeta.calls_async().await, 1);
    assert_eq!(tenants.asked("acme"), 2);
}

/// A request in scope that names no tenant fails with `NoCredential { key: None }`; one that
/// names a tenant the provider does not know with `NoCredential { key: Some(..) }`, and the
/// provider is asked again next time (unknown keys are not cached). Nothing reaches the API
/// or a token endpoint.
#[tokio::test]
async fn no_tenant_or_an_unknown_one_fails_typed_and_sends_nothing() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let acme = tenant_tokens(&server, "acme", Duration::ZERO).await;
    let api = echo_mock(&server, |when| when.path("/api")).await;
    let tokens = server
        .mock_async(|when, then| {
            when.path(TOKEN_PATH);
            then.status(500);
        })
        .await;
    let tenants = Tenants::new(&server, &["acme"]);
    let client = client(layer(&server, &tenants, &clock).build());
    let url = format!("{}/api", server.base_url());

    let err = layer_error(client.get(&url)).await;
    assert!(matches!(err, Error::NoCredential { key: None }), "{err:?}");
    for _ in 0..2 {
        let err = layer_error(client.get(&url).with_extension(TenantKey::new("ghost"))).await;
        assert!(
            matches!(&err, Error::NoCredential { key: Some(k) } if k == "ghost"),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "no credential configured for `ghost`");
    }

    assert_eq!(api.calls_async().await, 0);
    assert_eq!(acme.calls_async().await, 0);
    assert_eq!(tokens.calls_async().await, 0);
    assert_eq!(tenants.asked("ghost"), 2);
}

/// A provider's own error (its database is down) reaches the caller as is; nothing is sent,
/// and the next request asks again.
#[tokio::test]
async fn a_provider_error_reaches_the_caller_and_is_not_cached() {
    struct Down;
    #[reqwest_partner_auth::async_trait]
    impl SourceProvider for Down {
        type Source = HttpTokenSource;
        async fn source(&self, _key: &TenantKey) -> Result<Option<HttpTokenSource>, Error> {
            Err(Error::FetchCancelled)
        }
    }
    let server = MockServer::start_async().await;
    let api = echo_mock(&server, |when| when.path("/api")).await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(TenantAuth::builder(Down, &base(&server)).build())
        .build();
    let url = format!("{}/api", server.base_url());
    for _ in 0..2 {
        let err = layer_error(client.get(&url).with_extension(TenantKey::new("acme"))).await;
        assert!(matches!(err, Error::FetchCancelled), "{err:?}");
    }
    assert_eq!(api.calls_async().await, 0);
}

/// Requests to other origins pass untouched, without a tenant, and ask nobody for anything.
#[tokio::test]
async fn requests_outside_the_origins_pass_untouched() {
    let server = MockServer::start_async().await;
    let elsewhere = MockServer::start_async().await;
    let clock = ManualClock::new();
    let acme = tenant_tokens(&server, "acme", Duration::ZERO).await;
    let other = echo_mock(&elsewhere, |when| when.path("/api")).await;
    let tenants = Tenants::new(&server, &["acme"]);
    let client = client(layer(&server, &tenants, &clock).build());

    let plain = client
        .get(format!("{}/api", elsewhere.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.text().await.unwrap(), "");
    let named = client
        .get(format!("{}/api", elsewhere.base_url()))
        .with_extension(TenantKey::new("acme"))
        .send()
        .await
        .unwrap();
    assert_eq!(named.text().await.unwrap(), "");

    assert_eq!(other.calls_async().await, 2);
    assert_eq!(acme.calls_async().await, 0);
    assert_eq!(tenants.asked("acme"), 0);
}

/// A 401 is replayed with a fresh token of the same tenant, and the rejection cool-down is
/// per tenant: acme's rejection-driven fetch does not stop zeta's replay right after it.
#[tokio::test]
async fn a_401_is_replayed_per_tenant_with_its_own_cool_down() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let acme = tenant_tokens(&server, "acme", Duration::ZERO).await;
    let zeta = tenant_tokens(&server, "zeta", Duration::ZERO).await;
    let api = rejecting_echo_mock(
        &server,
        |when| when.path("/api"),
        &["acme-tok-1", "zeta-tok-1"],
        r#"{"error":"token expired"}"#,
    )
    .await;
    let tenants = Tenants::new(&server, &["acme", "zeta"]);
    let client = client(layer(&server, &tenants, &clock).build());

    assert_eq!(get_as(&client, &server, "acme").await, "Bearer acme-tok-2");
    assert_eq!(get_as(&client, &server, "zeta").await, "Bearer zeta-tok-2");

    // Two requests per tenant: the rejected one and its replay.
    assert_eq!(api.calls_async().await, 4);
    assert_eq!(acme.calls_async().await, 2);
    assert_eq!(zeta.calls_async().await, 2);
    assert_eq!(tenants.asked("acme"), 1);
}

/// The layer's `Debug` shows its origins and tenant ids, never a secret or a token.
#[tokio::test]
async fn debug_of_the_layer_shows_no_secret() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    tenant_tokens(&server, "acme", Duration::ZERO).await;
    echo_mock(&server, |when| when.path("/api")).await;
    let tenants = Tenants::new(&server, &["acme"]);
    let builder = layer(&server, &tenants, &clock);
    let builder_debug = format!("{builder:?}");
    let layer = builder.build();
    let client = client(layer.clone());
    get_as(&client, &server, "acme").await;
    layer.run_pending_tasks();

    let debug = format!("{layer:?}");
    let key_debug = format!("{:?}", TenantKey::new("acme"));
    for shown in [&debug, &builder_debug, &key_debug] {
        assert!(!shown.contains(SECRET), "{shown}");
        assert!(!shown.contains("acme-tok-1"), "{shown}");
    }
    assert!(debug.contains("TenantAuth"), "{debug}");
    assert!(debug.contains("cached_tenants: 1"), "{debug}");
    assert!(key_debug.contains("acme"), "{key_debug}");
}

// -------------------------------------------------------------------------------------------
// Tenants whose logins persist in a store (rotating refresh tokens)
// -------------------------------------------------------------------------------------------

#[cfg(feature = "oauth2")]
mod stored_logins {
    use std::sync::Arc;

    use httpmock::{HttpMockRequest, HttpMockResponse, MockServer};
    use reqwest_partner_auth::clock::ManualClock;
    use reqwest_partner_auth::middleware::{SourceProvider, TenantAuth};
    use reqwest_partner_auth::oauth2::{OAuthClient, RefreshTokenSource};
    use reqwest_partner_auth::store::{MemoryStore, StoredTokens, TokenStore};
    use reqwest_partner_auth::{Clock as _, Error, TenantKey};
    use secrecy::ExposeSecret as _;

    use super::common::{base, client, echo_mock, json_response};

    /// Every tenant's login lives in one store, under `tenant/<key>`.
    struct Logins {
        domain: String,
        store: Arc<dyn TokenStore>,
    }

    #[reqwest_partner_auth::async_trait]
    impl SourceProvider for Logins {
        type Source = RefreshTokenSource;

        async fn source(&self, key: &TenantKey) -> Result<Option<RefreshTokenSource>, Error> {
            let client = OAuthClient::auth0(&self.domain, "agency-client")?;
            Ok(Some(RefreshTokenSource::new(
                client,
                Arc::clone(&self.store),
                format!("tenant/{key}"),
            )))
        }
    }

    /// A rotating token endpoint: `rt-<tenant>-<n>` buys `<tenant>-tok-<n>` and
    /// `rt-<tenant>-<n+1>`.
    fn rotate(req: &HttpMockRequest) -> HttpMockResponse {
        let body = String::from_utf8_lossy(req.body().as_ref()).into_owned();
        let rt = body
            .split('&')
            .find_map(|kv| kv.strip_prefix("refresh_token="))
            .unwrap_or_default()
            .to_owned();
        let (tenant, n) = rt
            .strip_prefix("rt-")
            .and_then(|rest| rest.rsplit_once('-'))
            .map(|(t, n)| (t.to_owned(), n.parse::<u32>().unwrap()))
            .unwrap();
        json_response(
            200,
            &format!(
                r#"{{"access_token":"{tenant}-tok-{n}","refresh_token":"rt-{tenant}-{}","token_type":"Bearer","expires_in":3600}}"#,
                n + 1
            ),
        )
    }

    /// Each tenant refreshes its own login and the rotated refresh token is saved under its
    /// own key; a second layer over the same store (a restart) uses the saved access tokens
    /// without refreshing again.
    async fn logins_persist_per_tenant(store: Arc<dyn TokenStore>) {
        let server = MockServer::start_async().await;
        let clock = ManualClock::new();
        let tokens = server
            .mock_async(|when, then| {
                when.path("/oauth/token");
                then.respond_with(rotate);
            })
            .await;
        let api = echo_mock(&server, |when| when.path("/api")).await;
        for tenant in ["acme", "zeta"] {
            let login =
                StoredTokens::from_refresh_token(format!("rt-{tenant}-1"), clock.system_now());
            store
                .save(&format!("tenant/{tenant}"), &login)
                .await
                .unwrap();
        }
        let layer = |store: &Arc<dyn TokenStore>| {
            TenantAuth::builder(
                Logins {
                    domain: server.base_url(),
                    store: Arc::clone(store),
                },
                &base(&server),
            )
            .clock(Arc::new(clock.clone()))
            .build()
        };

        for round in 0..2 {
            let client = client(layer(&store));
            for tenant in ["acme", "zeta"] {
                let res = client
                    .get(format!("{}/api", server.base_url()))
                    .with_extension(TenantKey::new(tenant))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    res.text().await.unwrap(),
                    format!("Bearer {tenant}-tok-1"),
                    "round {round}"
                );
            }
        }

        assert_eq!(tokens.calls_async().await, 2);
        assert_eq!(api.calls_async().await, 4);
        for tenant in ["acme", "zeta"] {
            let saved = store
                .load(&format!("tenant/{tenant}"))
                .await
                .unwrap()
                .unwrap();
            let rt = saved
                .refresh_token
                .as_ref()
                .map(|s| s.expose_secret().to_owned());
            assert_eq!(rt.as_deref(), Some(format!("rt-{tenant}-2").as_str()));
        }
    }

    #[tokio::test]
    async fn tenant_logins_persist_in_a_memory_store() {
        logins_persist_per_tenant(Arc::new(MemoryStore::new())).await;
    }

    #[cfg(feature = "file-store")]
    #[tokio::test]
    async fn tenant_logins_persist_in_a_file_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = reqwest_partner_auth::store::FileStore::new(dir.path().join("tenants.json"));
        logins_persist_per_tenant(Arc::new(store)).await;
    }
}

/// A request that already carries `Authorization` is left alone (with or without a tenant),
/// unless it carries an old token of its tenant's own cache (sent again by a retry layer
/// below a clone of this layer): then it gets the tenant's usable token.
#[tokio::test]
async fn a_request_with_its_own_authorization_is_left_alone_unless_it_is_an_old_tenant_token() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let acme = tenant_tokens(&server, "acme", Duration::ZERO).await;
    let api = rejecting_echo_mock(
        &server,
        |when| when.path("/api"),
        &["acme-tok-1"],
        r#"{"error":"token expired"}"#,
    )
    .await;
    let tenants = Tenants::new(&server, &["acme", "zeta"]);
    let client = client(layer(&server, &tenants, &clock).build());
    let url = format!("{}/api", server.base_url());
    let send = |authorization: &'static str, tenant: Option<&'static str>| {
        let mut request = client.get(&url).header("authorization", authorization);
        if let Some(tenant) = tenant {
            request = request.with_extension(TenantKey::new(tenant));
        }
        async move {
            let res = request.send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.text().await.unwrap()
        }
    };

    // acme-tok-1 is rejected and replaced by acme-tok-2.
    assert_eq!(get_as(&client, &server, "acme").await, "Bearer acme-tok-2");
    assert_eq!(
        send("Bearer acme-tok-1", Some("acme")).await,
        "Bearer acme-tok-2"
    );
    assert_eq!(send("Bearer mine", Some("acme")).await, "Bearer mine");
    assert_eq!(send("Bearer mine", Some("zeta")).await, "Bearer mine");
    assert_eq!(send("Bearer mine", None).await, "Bearer mine");

    assert_eq!(acme.calls_async().await, 2);
    assert_eq!(api.calls_async().await, 6);
    assert_eq!(tenants.asked("zeta"), 0);
}

// -------------------------------------------------------------------------------------------
// Tenants whose tokens a fleet shares through Redis
// -------------------------------------------------------------------------------------------

/// Two layers (two processes of a fleet) over one real `redis-server`: each tenant's token
/// is shared through `store::SharedSource` under a key of its own, so each tenant's token
/// endpoint is asked once for both layers, and each tenant gets its own token in both.
#[cfg(feature = "redis")]
#[tokio::test]
async fn tenants_share_their_tokens_across_layers_through_redis() {
    use reqwest_partner_auth::store::{RedisStore, SharedSource, TokenStore};

    struct SharedTenants {
        tenants: Tenants,
        store: Arc<dyn TokenStore>,
    }

    #[reqwest_partner_auth::async_trait]
    impl SourceProvider for SharedTenants {
        type Source = SharedSource<HttpTokenSource>;

        async fn source(
            &self,
            key: &TenantKey,
        ) -> Result<Option<SharedSource<HttpTokenSource>>, Error> {
            let source = self.tenants.source(key).await?;
            Ok(source
                .map(|s| SharedSource::new(s, Arc::clone(&self.store), format!("partner/{key}"))))
        }
    }

    let Some(redis) =
        fleet_support::RedisServer::start("tenants_share_their_tokens_across_layers_through_redis")
    else {
        return;
    };
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let acme = tenant_tokens(&server, "acme", Duration::ZERO).await;
    let zeta = tenant_tokens(&server, "zeta", Duration::ZERO).await;
    echo_mock(&server, |when| when.path("/api")).await;
    let store: Arc<dyn TokenStore> =
        Arc::new(RedisStore::open(&redis.url()).unwrap().prefix("keyed-test"));
    let tenants = Tenants::new(&server, &["acme", "zeta"]);
    let fleet: Vec<_> = (0..2)
        .map(|_| {
            let provider = SharedTenants {
                tenants: tenants.clone(),
                store: Arc::clone(&store),
            };
            client(
                TenantAuth::builder(provider, &base(&server))
                    .clock(Arc::new(clock.clone()))
                    .retry_policy(retries())
                    .build(),
            )
        })
        .collect();

    for member in &fleet {
        assert_eq!(get_as(member, &server, "acme").await, "Bearer acme-tok-1");
        assert_eq!(get_as(member, &server, "zeta").await, "Bearer zeta-tok-1");
    }

    assert_eq!(acme.calls_async().await, 1);
    assert_eq!(zeta.calls_async().await, 1);
    // Each layer looked each tenant up once.
    assert_eq!(tenants.asked("acme"), 2);
    assert_eq!(tenants.asked("zeta"), 2);
}

/// Requests naming unknown tenants take no room: with room for two tenants, unknown keys
/// evict neither of the two known ones, even when the tenant map's maintenance runs while the
/// provider is still looking an unknown key up.
#[tokio::test]
async fn unknown_tenants_evict_no_known_tenant() {
    let server = MockServer::start_async().await;
    let clock = ManualClock::new();
    let acme = tenant_tokens(&server, "acme", Duration::ZERO).await;
    let zeta = tenant_tokens(&server, "zeta", Duration::ZERO).await;
    echo_mock(&server, |when| when.path("/api")).await;
    let mut tenants = Tenants::new(&server, &["acme", "zeta"]);
    let (asked, release) = (Arc::default(), Arc::default());
    tenants.hold_unknown = Some((Arc::clone(&asked), Arc::clone(&release)));
    let layer = layer(&server, &tenants, &clock).max_tenants(2).build();
    let client = client(layer.clone());
    let url = format!("{}/api", server.base_url());

    for tenant in ["acme", "zeta"] {
        get_as(&client, &server, tenant).await;
        layer.run_pending_tasks();
    }
    for n in 0..3 {
        let ghost = client
            .get(&url)
            .with_extension(TenantKey::new(format!("ghost-{n}")));
        let request = tokio::spawn(layer_error(ghost));
        asked.notified().await;
        layer.run_pending_tasks();
        release.notify_one();
        let err = request.await.unwrap();
        assert!(matches!(err, Error::NoCredential { .. }), "{err:?}");
        layer.run_pending_tasks();
    }
    assert_eq!(layer.cached_tenants(), 2);
    assert_eq!(get_as(&client, &server, "acme").await, "Bearer acme-tok-1");
    assert_eq!(get_as(&client, &server, "zeta").await, "Bearer zeta-tok-1");

    assert_eq!(acme.calls_async().await, 1);
    assert_eq!(zeta.calls_async().await, 1);
}
