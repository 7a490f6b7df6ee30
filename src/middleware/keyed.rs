//! [`TenantAuth`]: one layer for many tenants, each request naming its credential.
//!
//! An agency or an offer-wall operator calls one partner on behalf of many clients, each with
//! credentials of its own. [`TenantAuth`] holds one [`AuthMiddleware`] (so one
//! [`TokenCache`]) per tenant, built on first use from the source a [`SourceProvider`] returns
//! for the tenant's [`TenantKey`], and delegates every request to it: refresh ahead, single
//! flight, the replay after a `401` and the rejection cool-down work per tenant exactly as in
//! a single layer.
//!
//! Tenants live in a bounded map ([`moka`]'s synchronous cache, least recently used evicted):
//! a tenant that comes back after its eviction is looked up again and fetches a new token.
//! The synchronous cache because the lookup on every request is then a plain function call,
//! with no future of its own. The one slow step, asking the provider, is awaited outside it,
//! behind a [`tokio::sync::OnceCell`] per key in a small map of lookups in flight: single
//! flight per tenant, and the next caller tries again after a failure or a cancelled lookup.
//! A tenant enters the bounded map only once its source is known, so requests naming unknown
//! tenants take no room and evict no one.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use tokio::sync::OnceCell;
use url::Url;

use super::{AuthMiddleware, RejectOnUnauthorized, RejectionPolicy};
use crate::cache::{RetryPolicy, TokenCache, TokenCacheBuilder};
use crate::clock::Clock;
use crate::error::Error;
use crate::middleware::scope::{CredentialScope, Scope};
use crate::observe::{Event, Observer};
use crate::source::TokenSource;

/// How many tenants a [`TenantAuth`] keeps by default (see
/// [`TenantAuthBuilder::max_tenants`]).
pub const DEFAULT_MAX_TENANTS: u64 = 1_000;

/// Names the tenant whose credential a request uses: put it in the request's extensions.
///
/// The key is an id (a client's name, a publisher/app pair), never a secret: it appears in
/// `Debug` and in [`Error::NoCredential`].
///
/// ```
/// # async fn run(client: reqwest_middleware::ClientWithMiddleware) -> Result<(), reqwest_middleware::Error> {
/// use reqwest_partner_auth::TenantKey;
/// let res = client
///     .get("https://api.partner.example/campaigns")
///     .with_extension(TenantKey::new("acme"))
///     .send()
///     .await?;
/// # let _ = res; Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantKey(Arc<str>);

impl TenantKey {
    /// The key of tenant `id`.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The tenant's id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a [`TenantAuth`] finds a tenant's token source: a database, a secrets manager, a map.
///
/// Asked once per tenant while the tenant is cached (and again after its eviction or a
/// [`TenantAuth::forget`]), never for a request that names no tenant. An unknown tenant
/// (`Ok(None)`) and an error are not cached: the next request for that key asks again, so a
/// provider behind a slow store may want a negative cache of its own.
///
/// ```
/// use reqwest_partner_auth::engine::{HttpTokenSource, Param};
/// use reqwest_partner_auth::middleware::SourceProvider;
/// use reqwest_partner_auth::{Error, TenantKey};
///
/// struct FromDatabase {
///     token_url: url::Url,
/// }
///
/// #[reqwest_partner_auth::async_trait]
/// impl SourceProvider for FromDatabase {
///     type Source = HttpTokenSource;
///
///     async fn source(&self, key: &TenantKey) -> Result<Option<HttpTokenSource>, Error> {
///         // Look the tenant's credentials up (a query by `key.as_str()`).
///         let found = (key.as_str() == "acme").then_some(("acme-id", "acme-secret"));
///         Ok(found.map(|(id, secret)| {
///             HttpTokenSource::post(self.token_url.clone())
///                 .param("client_id", Param::text(id))
///                 .param("client_secret", Param::secret(secret))
///         }))
///     }
/// }
/// ```
#[async_trait::async_trait]
pub trait SourceProvider: Send + Sync + 'static {
    /// The token source of one tenant.
    type Source: TokenSource;

    /// The source of tenant `key`, or `None` when there is no such tenant.
    ///
    /// # Errors
    /// Whatever prevented the lookup (the store is down); it reaches the caller of the
    /// request as is, and nothing is sent.
    async fn source(&self, key: &TenantKey) -> Result<Option<Self::Source>, Error>;
}

#[async_trait::async_trait]
impl<P: SourceProvider> SourceProvider for Arc<P> {
    type Source = P::Source;

    async fn source(&self, key: &TenantKey) -> Result<Option<P::Source>, Error> {
        (**self).source(key).await
    }
}

/// A fixed set of tenants: each lookup clones the tenant's source.
#[async_trait::async_trait]
impl<S> SourceProvider for HashMap<TenantKey, S>
where
    S: TokenSource + Clone,
{
    type Source = S;

    async fn source(&self, key: &TenantKey) -> Result<Option<S>, Error> {
        Ok(self.get(key).cloned())
    }
}

/// The cache policy set on a [`TenantAuthBuilder`], given to every tenant's cache.
#[derive(Clone, Default)]
struct Policy {
    skew: Option<Duration>,
    refresh_ahead: Option<f64>,
    retry: Option<RetryPolicy>,
    clock: Option<Arc<dyn Clock>>,
    fetch_deadline: Option<Duration>,
    rejection_cooldown: Option<Duration>,
    observers: Vec<Arc<dyn Observer>>,
}

impl Policy {
    fn apply<S: TokenSource>(&self, mut cache: TokenCacheBuilder<S>) -> TokenCacheBuilder<S> {
        if let Some(skew) = self.skew {
            cache = cache.refresh_skew(skew);
        }
        if let Some(share) = self.refresh_ahead {
            cache = cache.refresh_ahead(share);
        }
        if let Some(retry) = self.retry {
            cache = cache.retry_policy(retry);
        }
        if let Some(clock) = &self.clock {
            cache = cache.clock(Arc::clone(clock));
        }
        if let Some(deadline) = self.fetch_deadline {
            cache = cache.fetch_deadline(deadline);
        }
        if let Some(cooldown) = self.rejection_cooldown {
            cache = cache.rejection_cooldown(cooldown);
        }
        for observer in &self.observers {
            cache = cache.observer(SharedObserver(Arc::clone(observer)));
        }
        cache
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("skew", &self.skew)
            .field("refresh_ahead", &self.refresh_ahead)
            .field("retry", &self.retry)
            .field("fetch_deadline", &self.fetch_deadline)
            .field("rejection_cooldown", &self.rejection_cooldown)
            .field("observers", &self.observers.len())
            .finish_non_exhaustive()
    }
}

/// One observer heard by every tenant's cache.
struct SharedObserver(Arc<dyn Observer>);

impl Observer for SharedObserver {
    fn observe(&self, event: &Event<'_>) {
        self.0.observe(event)
    }
}

/// One tenant's layer.
type Layer<S> = Arc<AuthMiddleware<S>>;

/// A lookup of one tenant in flight: the first request asks the provider, the others wait
/// for its answer.
type Lookup<S> = Arc<OnceCell<Layer<S>>>;

struct Inner<P: SourceProvider> {
    provider: P,
    /// The tenants whose source is known. A tenant enters only once the provider returned
    /// its source, so unknown keys and failed lookups take no room and evict nobody.
    tenants: moka::sync::Cache<TenantKey, Layer<P::Source>>,
    /// Lookups in flight, by key (held for moments, never across an await).
    lookups: Mutex<HashMap<TenantKey, Lookup<P::Source>>>,
    max_tenants: u64,
    origins: Scope,
    policy: Policy,
    replay: bool,
    rejection: Arc<dyn RejectionPolicy>,
}

/// A `reqwest_middleware` layer for many tenants of one partner: each request names its
/// tenant with a [`TenantKey`] extension and gets that tenant's token.
///
/// * Requests to origins outside the layer's pass untouched (no key needed), as do requests
///   that already carry `Authorization`, unless it is an old token of the named tenant's own
///   cache (a retry layer below a clone of this layer sends the request again): then, as in
///   [`AuthMiddleware`], the tenant's usable token replaces it.
/// * A request in scope that names no tenant, or one the [`SourceProvider`] does not know,
///   fails with [`Error::NoCredential`] before anything is sent.
/// * Each tenant has its own [`AuthMiddleware`], built from the provider's source, the
///   layer's origins and the policy set on the builder: its own token, single flight, refresh
///   ahead, replay after a `401` and rejection cool-down. Plain `http://` to a non-loopback
///   host is allowed when the tenant's source allows it.
/// * At most [`max_tenants`](TenantAuthBuilder::max_tenants) tenants are kept; the least
///   recently used is evicted, and looked up and fetched again when it returns. moka records
///   uses in batches and applies them, and evictions, at its next maintenance (during later
///   requests, or [`run_pending_tasks`](TenantAuth::run_pending_tasks)): between two runs the
///   count may exceed the bound a little, and uses not yet applied do not count towards
///   recency.
///
/// Clones share the tenants.
///
/// ```
/// use std::collections::HashMap;
/// use reqwest_partner_auth::engine::{HttpTokenSource, Param};
/// use reqwest_partner_auth::{TenantAuth, TenantKey};
/// # fn main() -> Result<(), url::ParseError> {
/// let token_url = url::Url::parse("https://auth.partner.example/token")?;
/// let source = |id: &str, secret: &str| {
///     HttpTokenSource::post(token_url.clone())
///         .param("client_id", Param::text(id))
///         .param("client_secret", Param::secret(secret))
/// };
/// let clients = HashMap::from([
///     (TenantKey::new("acme"), source("acme-id", "acme-secret")),
///     (TenantKey::new("zeta"), source("zeta-id", "zeta-secret")),
/// ]);
/// let layer = TenantAuth::builder(clients, &url::Url::parse("https://api.partner.example")?)
///     .max_tenants(500)
///     .build();
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(layer)
///     .build();
/// # let _ = client; Ok(()) }
/// ```
pub struct TenantAuth<P: SourceProvider> {
    inner: Arc<Inner<P>>,
}

impl<P: SourceProvider> Clone for TenantAuth<P> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P: SourceProvider> std::fmt::Debug for TenantAuth<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = &self.inner;
        f.debug_struct("TenantAuth")
            .field("origins", &inner.origins)
            .field("max_tenants", &inner.max_tenants)
            .field("cached_tenants", &inner.tenants.entry_count())
            .field("policy", &inner.policy)
            .field("replay", &inner.replay)
            .finish_non_exhaustive()
    }
}

impl<P: SourceProvider> TenantAuth<P> {
    /// A builder for a layer whose tenants come from `provider`, attaching their tokens to
    /// requests for the origin of `api` (scheme, host and port).
    pub fn builder(provider: P, api: &Url) -> TenantAuthBuilder<P> {
        TenantAuthBuilder {
            provider,
            origins: vec![api.clone()],
            max_tenants: DEFAULT_MAX_TENANTS,
            policy: Policy::default(),
            replay: true,
            rejection: Arc::new(RejectOnUnauthorized),
        }
    }

    /// Drops tenant `key` (its token and its source): the next request for it asks the
    /// provider again. For credentials that changed.
    pub fn forget(&self, key: &TenantKey) {
        self.inner.tenants.invalidate(key);
    }

    /// How many tenants are cached (an estimate until pending maintenance has run; see
    /// [`run_pending_tasks`](Self::run_pending_tasks)).
    pub fn cached_tenants(&self) -> u64 {
        self.inner.tenants.entry_count()
    }

    /// Runs the tenant map's pending maintenance now (evictions, counts), which otherwise
    /// happens in the course of later requests. For tests and metrics.
    pub fn run_pending_tasks(&self) {
        self.inner.tenants.run_pending_tasks();
    }
}

impl<P: SourceProvider> Inner<P> {
    fn lock_lookups(&self) -> MutexGuard<'_, HashMap<TenantKey, Lookup<P::Source>>> {
        // The map guards no invariant a panic could break half-way.
        self.lookups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tenant `key`'s layer: the cached one, else one built from the provider's source (one
    /// lookup per key however many requests ask at once).
    async fn layer(&self, key: &TenantKey) -> Result<Layer<P::Source>, Error> {
        let lookup = {
            let mut lookups = self.lock_lookups();
            // Again under the lock: a lookup may have finished since the caller's miss.
            if let Some(layer) = self.tenants.get(key) {
                return Ok(layer);
            }
            Arc::clone(lookups.entry(key.clone()).or_default())
        };
        let found = lookup
            .get_or_try_init(|| self.build_layer(key))
            .await
            .cloned();
        if let Ok(layer) = &found {
            self.tenants.insert(key.clone(), Arc::clone(layer));
        }
        // Done with this lookup (after a failure, the next request asks again).
        let mut lookups = self.lock_lookups();
        if lookups.get(key).is_some_and(|l| Arc::ptr_eq(l, &lookup)) {
            lookups.remove(key);
        }
        found
    }

    /// Tenant `key`'s layer, from the provider's source.
    async fn build_layer(&self, key: &TenantKey) -> Result<Layer<P::Source>, Error> {
        let Some(source) = self.provider.source(key).await? else {
            return Err(Error::NoCredential {
                key: Some(key.as_str().to_owned()),
            });
        };
        let cache = self.policy.apply(TokenCache::builder(source)).build();
        let scope = CredentialScope {
            origins: self.origins.clone(),
            allow_insecure_http: cache.source().allows_insecure_http(),
        };
        Ok(Arc::new(AuthMiddleware {
            cache,
            scope,
            replay: self.replay,
            rejection: Arc::clone(&self.rejection),
        }))
    }

    /// Looks tenant `key` up, then hands it the request.
    async fn look_up_then_send(
        &self,
        key: TenantKey,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let layer = self.layer(&key).await?;
        layer.handle(req, extensions, next).await
    }
}

/// Hands the request to a tenant's layer, kept alive until the response (an eviction may drop
/// it from the map meanwhile).
async fn send_through<S: TokenSource>(
    layer: Layer<S>,
    req: Request,
    extensions: &mut Extensions,
    next: Next<'_>,
) -> reqwest_middleware::Result<Response> {
    layer.handle(req, extensions, next).await
}

impl<P: SourceProvider> Middleware for TenantAuth<P> {
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        req: Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> Pin<Box<dyn Future<Output = reqwest_middleware::Result<Response>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        let inner = &*self.inner;
        if !inner.origins.contains(req.url()) {
            return next.run(req, extensions);
        }
        let key = extensions.get::<TenantKey>();
        let cached = key.and_then(|key| inner.tenants.get(key));
        if req.headers().contains_key(AUTHORIZATION) {
            // The caller's own header, or one of a tenant's tokens sent again (by a retry
            // layer below a clone of this layer): the tenant's layer, if cached, tells which
            // and replaces an old token of its own; nothing is looked up for it.
            return match cached {
                Some(layer) => Box::pin(send_through(layer, req, extensions, next)),
                None => next.run(req, extensions),
            };
        }
        match (cached, key) {
            (Some(layer), _) => Box::pin(send_through(layer, req, extensions, next)),
            (None, Some(key)) => {
                let key = key.clone();
                Box::pin(inner.look_up_then_send(key, req, extensions, next))
            }
            (None, None) => Box::pin(std::future::ready(Err(
                Error::NoCredential { key: None }.into()
            ))),
        }
    }
}

/// Builds a [`TenantAuth`]; [`build`](Self::build) freezes its settings and the cache policy
/// every tenant gets.
pub struct TenantAuthBuilder<P> {
    provider: P,
    origins: Vec<Url>,
    max_tenants: u64,
    policy: Policy,
    replay: bool,
    rejection: Arc<dyn RejectionPolicy>,
}

impl<P> std::fmt::Debug for TenantAuthBuilder<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantAuthBuilder")
            .field(
                "origins",
                &self.origins.iter().map(Url::as_str).collect::<Vec<_>>(),
            )
            .field("max_tenants", &self.max_tenants)
            .field("policy", &self.policy)
            .field("replay", &self.replay)
            .finish_non_exhaustive()
    }
}

impl<P: SourceProvider> TenantAuthBuilder<P> {
    /// Also attaches tenants' tokens to requests for the origin of `url`.
    pub fn add_origin(mut self, url: &Url) -> Self {
        self.origins.push(url.clone());
        self
    }

    /// How many tenants are kept at most (default [`DEFAULT_MAX_TENANTS`]); past it the least
    /// recently used is evicted, with its token.
    pub fn max_tenants(mut self, max: u64) -> Self {
        self.max_tenants = max;
        self
    }

    /// Which responses mean "token rejected". Default [`RejectOnUnauthorized`].
    pub fn rejection_policy(mut self, policy: impl RejectionPolicy) -> Self {
        self.rejection = Arc::new(policy);
        self
    }

    /// Never replay requests; a rejection only drops the tenant's token.
    pub fn without_replay(mut self) -> Self {
        self.replay = false;
        self
    }

    /// Every tenant's refresh skew. See [`TokenCacheBuilder::refresh_skew`].
    pub fn refresh_skew(mut self, skew: Duration) -> Self {
        self.policy.skew = Some(skew);
        self
    }

    /// Every tenant's refresh-ahead share. See [`TokenCacheBuilder::refresh_ahead`].
    pub fn refresh_ahead(mut self, share: f64) -> Self {
        self.policy.refresh_ahead = Some(share);
        self
    }

    /// How every tenant's transient token-endpoint failures are retried.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy.retry = Some(policy);
        self
    }

    /// The clock every tenant's cache reads (tests pass a
    /// [`ManualClock`](crate::clock::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.policy.clock = Some(clock);
        self
    }

    /// The deadline of one token fetch. See [`TokenCacheBuilder::fetch_deadline`].
    pub fn fetch_deadline(mut self, deadline: Duration) -> Self {
        self.policy.fetch_deadline = Some(deadline);
        self
    }

    /// Every tenant's rejection cool-down (each tenant cools down on its own). See
    /// [`TokenCacheBuilder::rejection_cooldown`].
    pub fn rejection_cooldown(mut self, cooldown: Duration) -> Self {
        self.policy.rejection_cooldown = Some(cooldown);
        self
    }

    /// Adds an observer of every tenant's cache (its events name the source, not the
    /// tenant). See [`TokenCacheBuilder::observer`].
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.policy.observers.push(Arc::new(observer));
        self
    }

    /// The layer, its settings and its tenants' cache policy fixed from now on.
    pub fn build(self) -> TenantAuth<P> {
        let tenants = moka::sync::Cache::builder()
            .max_capacity(self.max_tenants)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .build();
        TenantAuth {
            inner: Arc::new(Inner {
                provider: self.provider,
                tenants,
                lookups: Mutex::default(),
                max_tenants: self.max_tenants,
                origins: Scope::from_urls(&self.origins),
                policy: self.policy,
                replay: self.replay,
                rejection: self.rejection,
            }),
        }
    }
}
