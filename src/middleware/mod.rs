//! [`AuthMiddleware`]: where the header goes, and the one replay after a rejection.

#[cfg(feature = "keyed")]
#[cfg_attr(docsrs, doc(cfg(feature = "keyed")))]
mod keyed;
pub(crate) mod scope;

#[cfg(feature = "keyed")]
#[cfg_attr(docsrs, doc(cfg(feature = "keyed")))]
pub use keyed::{SourceProvider, TenantAuth, TenantAuthBuilder, TenantKey, DEFAULT_MAX_TENANTS};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::header::AUTHORIZATION;
use http::{Extensions, HeaderMap, Method, Version};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use url::Url;

use crate::cache::{Lease, Rejection, RetryPolicy, TokenCache, TokenCacheBuilder};
use crate::clock::Clock;
use crate::middleware::scope::CredentialScope;
use crate::source::TokenSource;

/// Put this in a request's extensions to stop the middleware from replaying it after a 401,
/// for calls whose repetition must be avoided (a payment, a non-idempotent POST).
///
/// ```
/// # async fn run(client: reqwest_middleware::ClientWithMiddleware) -> Result<(), reqwest_middleware::Error> {
/// use reqwest_partner_auth::NoReplay;
/// let res = client
///     .post("https://api.partner.example/payouts")
///     .with_extension(NoReplay)
///     .send()
///     .await?;
/// # let _ = res; Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReplay;

/// Decides whether a response means "the token was rejected": then the middleware refreshes
/// the token and replays the request once.
///
/// The default, [`RejectOnUnauthorized`], says yes to `401 Unauthorized`. A custom policy can
/// fall back to it through [`is_unauthorized`].
pub trait RejectionPolicy: Send + Sync + 'static {
    /// `true` if `response` says the token used for the request is no longer accepted.
    fn is_token_rejected(&self, response: &Response) -> bool;
}

/// The default [`RejectionPolicy`]: a `401 Unauthorized` response.
#[derive(Debug, Clone, Copy, Default)]
pub struct RejectOnUnauthorized;

impl RejectionPolicy for RejectOnUnauthorized {
    fn is_token_rejected(&self, response: &Response) -> bool {
        is_unauthorized(response)
    }
}

/// `true` for a `401 Unauthorized` response: the default rejection test.
pub fn is_unauthorized(response: &Response) -> bool {
    response.status() == http::StatusCode::UNAUTHORIZED
}

impl<F> RejectionPolicy for F
where
    F: Fn(&Response) -> bool + Send + Sync + 'static,
{
    fn is_token_rejected(&self, response: &Response) -> bool {
        self(response)
    }
}

/// A `reqwest_middleware` layer that attaches `Authorization: Bearer <token>` from a
/// [`TokenSource`], keeps the token fresh, and replays a request once when the API rejects
/// the token.
///
/// * Only requests to its origins get the header (the source's
///   [`api_origins`](TokenSource::api_origins), and those added with
///   [`AuthMiddlewareBuilder::add_origin`]). Others pass through untouched and cost no token
///   fetch.
/// * A request that already has an `Authorization` header is left alone, unless that header
///   holds a token of this layer's own cache (the request is being sent again, by a retry
///   layer below a clone of this layer): then it gets the usable token, should the one it
///   carries have expired or been replaced.
/// * Credentials only travel over TLS, or plain HTTP to a loopback host, unless the source
///   allows plain http ([`TokenSource::allows_insecure_http`]): otherwise the request
///   fails with [`Error::InsecureTransport`](crate::Error::InsecureTransport) before anything
///   is sent.
/// * On a rejection (default: a 401) the token is refreshed and the request sent again, once.
///   A request whose body cannot be cloned (a stream), or that carries [`NoReplay`], is not
///   replayed: its 401 response is returned as is. The second response is always returned,
///   whatever its status. A request without a body is replayed to the URL its rejection came
///   from (for a `GET` your client redirected, the URL it ended at); one with another method
///   that was redirected on its way there is not replayed.
/// * Only a rejection from an origin in scope counts: a 401 from another host (reached
///   through a redirect your client followed) says nothing about this token and is returned
///   as is.
/// * Rejection-driven fetches are rate-limited: after one, further rejections within the
///   [rejection cool-down](AuthMiddlewareBuilder::rejection_cooldown) (default
///   [`DEFAULT_REJECTION_COOLDOWN`](crate::cache::DEFAULT_REJECTION_COOLDOWN), 30 s) fetch nothing
///   and their 401 goes back to the caller. An API that rejects every fresh token (a missing
///   permission, a wrong audience) costs one token fetch per cool-down, not one per request.
///
/// Errors reach the caller as [`reqwest_middleware::Error::Middleware`] holding an
/// [`Error`](crate::Error); see [`Error::from_middleware`](crate::Error::from_middleware).
pub struct AuthMiddleware<S> {
    cache: TokenCache<S>,
    scope: CredentialScope,
    replay: bool,
    rejection: Arc<dyn RejectionPolicy>,
}

/// Clones share the cache (token, policy, single flight); the layer settings are copied.
impl<S> Clone for AuthMiddleware<S> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            scope: self.scope.clone(),
            replay: self.replay,
            rejection: Arc::clone(&self.rejection),
        }
    }
}

impl<S> std::fmt::Debug for AuthMiddleware<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthMiddleware")
            .field("scope", &self.scope)
            .field("replay", &self.replay)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl<S: TokenSource> AuthMiddleware<S> {
    /// A layer for `source` with the default policy, attaching the token to the source's
    /// [`api_origins`](TokenSource::api_origins).
    pub fn from_source(source: S) -> Self {
        Self::builder(source).build()
    }

    /// A builder for a layer over `source`: the cache's policy and the layer's own settings.
    ///
    /// ```
    /// use std::time::Duration;
    /// use reqwest_partner_auth::{targeter, AuthMiddleware};
    /// # fn main() -> Result<(), url::ParseError> {
    /// let source = targeter::Source::new(targeter::Credentials::new("key", "secret"));
    /// let layer = AuthMiddleware::builder(source)
    ///     .refresh_skew(Duration::from_secs(60))
    ///     .add_origin(&url::Url::parse("https://reports.targeter.example")?)
    ///     .build();
    /// # let _ = layer; Ok(()) }
    /// ```
    pub fn builder(source: S) -> AuthMiddlewareBuilder<TokenCacheBuilder<S>> {
        AuthMiddlewareBuilder::over(TokenCache::builder(source))
    }

    /// A builder for a layer over a cache that is already built, shared with other layers
    /// (clones of one cache share the token, its refresh and its policy). Only the layer's own
    /// settings can be chosen.
    pub fn with_cache(cache: TokenCache<S>) -> AuthMiddlewareBuilder<TokenCache<S>> {
        AuthMiddlewareBuilder::over(cache)
    }

    /// The token cache, for fetching a token outside a request.
    pub fn cache(&self) -> &TokenCache<S> {
        &self.cache
    }
}

/// Builds an [`AuthMiddleware`]; [`build`](Self::build) freezes its settings.
///
/// `C` is what the layer's cache is made from: a [`TokenCacheBuilder`] (from
/// [`AuthMiddleware::builder`]), whose policy can still be set here, or a built
/// [`TokenCache`] (from [`AuthMiddleware::with_cache`]), whose policy is fixed.
pub struct AuthMiddlewareBuilder<C> {
    cache: C,
    origins: Vec<Url>,
    replay: bool,
    rejection: Arc<dyn RejectionPolicy>,
}

impl<C: std::fmt::Debug> std::fmt::Debug for AuthMiddlewareBuilder<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthMiddlewareBuilder")
            .field("cache", &self.cache)
            .field(
                "origins",
                &self.origins.iter().map(Url::as_str).collect::<Vec<_>>(),
            )
            .field("replay", &self.replay)
            .finish_non_exhaustive()
    }
}

impl<C> AuthMiddlewareBuilder<C> {
    fn over(cache: C) -> Self {
        Self {
            cache,
            origins: Vec::new(),
            replay: true,
            rejection: Arc::new(RejectOnUnauthorized),
        }
    }

    /// Also attaches the token to requests for the origin of `url` (scheme, host and port),
    /// besides the source's [`api_origins`](TokenSource::api_origins).
    pub fn add_origin(mut self, url: &Url) -> Self {
        self.origins.push(url.clone());
        self
    }

    /// Which responses mean "token rejected". Default [`RejectOnUnauthorized`].
    pub fn rejection_policy(mut self, policy: impl RejectionPolicy) -> Self {
        self.rejection = Arc::new(policy);
        self
    }

    /// Never replay requests; a rejection only drops the token so the next request gets a
    /// new one. Saves the request copy made before sending.
    pub fn without_replay(mut self) -> Self {
        self.replay = false;
        self
    }
}

impl<S: TokenSource> AuthMiddlewareBuilder<TokenCacheBuilder<S>> {
    /// How long before expiry requests stop using a token and wait for a new one. See
    /// [`TokenCacheBuilder::refresh_skew`].
    pub fn refresh_skew(mut self, skew: Duration) -> Self {
        self.cache = self.cache.refresh_skew(skew);
        self
    }

    /// The share of the lifetime in which a background refresh runs. See
    /// [`TokenCacheBuilder::refresh_ahead`].
    pub fn refresh_ahead(mut self, share: f64) -> Self {
        self.cache = self.cache.refresh_ahead(share);
        self
    }

    /// How transient token-endpoint failures are retried.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.cache = self.cache.retry_policy(policy);
        self
    }

    /// The clock expiry decisions read (tests pass a
    /// [`ManualClock`](crate::clock::ManualClock)).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.cache = self.cache.clock(clock);
        self
    }

    /// The deadline of one token fetch. See [`TokenCacheBuilder::fetch_deadline`].
    pub fn fetch_deadline(mut self, deadline: Duration) -> Self {
        self.cache = self.cache.fetch_deadline(deadline);
        self
    }

    /// How long after a rejection-driven fetch further rejections fetch nothing. See
    /// [`TokenCacheBuilder::rejection_cooldown`].
    pub fn rejection_cooldown(mut self, cooldown: Duration) -> Self {
        self.cache = self.cache.rejection_cooldown(cooldown);
        self
    }

    /// Adds an observer of the cache's events. See [`TokenCacheBuilder::observer`].
    pub fn observer(mut self, observer: impl crate::observe::Observer) -> Self {
        self.cache = self.cache.observer(observer);
        self
    }

    /// The layer, its settings and its cache's policy fixed from now on.
    pub fn build(self) -> AuthMiddleware<S> {
        let cache = self.cache.build();
        AuthMiddlewareBuilder {
            cache,
            origins: self.origins,
            replay: self.replay,
            rejection: self.rejection,
        }
        .build()
    }
}

impl<S: TokenSource> AuthMiddlewareBuilder<TokenCache<S>> {
    /// The layer, its settings fixed from now on.
    pub fn build(self) -> AuthMiddleware<S> {
        let source = self.cache.source();
        let mut origins = source.api_origins();
        origins.extend(self.origins);
        let mut scope = CredentialScope::new(&origins);
        scope.allow_insecure_http = source.allows_insecure_http();
        AuthMiddleware {
            cache: self.cache,
            scope,
            replay: self.replay,
            rejection: self.rejection,
        }
    }
}

/// Puts the lease's header on the request, replacing any earlier one (never appending), and
/// returns the generation it belongs to.
fn authorize(req: &mut Request, lease: Lease) -> u64 {
    let generation = lease.generation();
    req.headers_mut()
        .insert(AUTHORIZATION, lease.into_header_value());
    generation
}

/// What a replay needs of a request, copied before it is sent, and no more.
///
/// A request without a body (most API calls) is copied field by field, without its URL: the
/// replay goes to the URL the rejection came from. For `GET` and `HEAD` that is always right
/// (a redirect keeps them as they are, so the final URL is what was asked for); for other
/// methods a fingerprint of the URL tells whether the rejection came from the URL the request
/// was sent to, and a request that was redirected first is not replayed. Headers are copied
/// only when there are others than the `Authorization` this layer set, and the timeout is
/// kept (`Request::try_clone` also allocates an extensions map for an absent one).
///
/// A request with a body is copied by `try_clone`, which shares the body's bytes; a streaming
/// body cannot be copied.
enum ReplayCopy {
    Bodiless {
        method: Method,
        /// `None` for `GET` and `HEAD`.
        url_fingerprint: Option<u64>,
        /// `None` when the only header was the `Authorization` this layer set.
        headers: Option<Box<HeaderMap>>,
        version: Version,
        timeout: Option<Duration>,
    },
    WithBody(Box<Request>),
}

/// A fingerprint of a URL, to tell whether a response came from the URL a request was sent
/// to (a collision would only replay to the final URL, which is in scope: it was checked).
fn url_fingerprint(url: &Url) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    url.as_str().hash(&mut hasher);
    hasher.finish()
}

impl ReplayCopy {
    #[inline]
    fn of(req: &Request) -> Option<Self> {
        if req.body().is_some() {
            return req.try_clone().map(|copy| Self::WithBody(Box::new(copy)));
        }
        let method = req.method().clone();
        let keeps_method = method == Method::GET || method == Method::HEAD;
        Some(Self::Bodiless {
            url_fingerprint: (!keeps_method).then(|| url_fingerprint(req.url())),
            method,
            headers: (req.headers().len() > 1).then(|| Box::new(req.headers().clone())),
            version: req.version(),
            timeout: req.timeout().copied(),
        })
    }

    /// The request to replay, given the URL the rejection came from; `None` when it cannot
    /// be replayed there.
    fn into_request(self, rejected_at: &Url) -> Option<Request> {
        match self {
            Self::WithBody(req) => Some(*req),
            Self::Bodiless {
                method,
                url_fingerprint: fingerprint,
                headers,
                version,
                timeout,
            } => {
                if fingerprint.is_some_and(|f| f != url_fingerprint(rejected_at)) {
                    return None;
                }
                let mut req = Request::new(method, rejected_at.clone());
                if let Some(headers) = headers {
                    *req.headers_mut() = *headers;
                }
                *req.version_mut() = version;
                if timeout.is_some() {
                    *req.timeout_mut() = timeout;
                }
                Some(req)
            }
        }
    }
}

impl<S: TokenSource> AuthMiddleware<S> {
    /// What follows a response that says "token rejected": drop the token (unless another
    /// request did, or rejections are cooling down), and replay once with a new one. Boxed by
    /// the caller: rarely taken, so its state stays out of every request's future.
    async fn after_rejection(
        &self,
        response: Response,
        generation: u64,
        replay: ReplayCopy,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        // A rejection from a host we did not send the token to says nothing about it.
        if !self.scope.origins.contains(response.url()) {
            return Ok(response);
        }
        // Drops the token (the next request fetches a new one) unless it was replaced already
        // or a rejection-driven fetch happened within the cool-down.
        if self.cache.note_rejection(generation) == Rejection::CoolingDown {
            return Ok(response);
        }
        let Some(mut replay) = replay.into_request(response.url()) else {
            // Redirected on its way to the rejection: not replayed to another URL.
            return Ok(response);
        };
        tracing::debug!(status = %response.status(), "api rejected the token; refreshing and replaying once");
        drop(response);
        let generation = authorize(&mut replay, self.cache.replacement().await?);
        self.cache.note_replay(generation);
        next.run(replay, extensions).await
    }
}

impl<S: TokenSource> AuthMiddleware<S> {
    /// Sends `req` with the token of `lease`, keeping a copy to replay it once if the API
    /// rejects the token (unless replay is off for it). Everything before the send runs
    /// synchronously; the future holds only what lives across the send.
    fn send_authorized<'a>(
        &'a self,
        mut req: Request,
        lease: Lease,
        extensions: &'a mut Extensions,
        next: Next<'a>,
    ) -> BoxFuture<'a, reqwest_middleware::Result<Response>> {
        let generation = authorize(&mut req, lease);
        let replay = if self.replay && extensions.get::<NoReplay>().is_none() {
            ReplayCopy::of(&req)
        } else {
            None
        };
        match replay {
            Some(replay) => {
                Box::pin(self.send_with_replay(req, replay, generation, extensions, next))
            }
            None => Box::pin(async move {
                let response = next.run(req, extensions).await?;
                if self.rejection.is_token_rejected(&response)
                    && self.scope.origins.contains(response.url())
                {
                    // No copy to replay: the caller gets the rejection; the token is dropped
                    // for the next request (unless rejections are cooling down).
                    self.cache.note_rejection(generation);
                }
                Ok(response)
            }),
        }
    }

    /// Sends `req`, and replays `replay` once with a new token if the API rejects this one.
    // Not an `async fn`: its arguments would be stored in the future twice (848 bytes instead
    // of 568); an `async move` block holds them once.
    #[allow(clippy::manual_async_fn)]
    fn send_with_replay<'a>(
        &'a self,
        req: Request,
        replay: ReplayCopy,
        generation: u64,
        extensions: &'a mut Extensions,
        next: Next<'a>,
    ) -> impl Future<Output = reqwest_middleware::Result<Response>> + Send + 'a {
        async move {
            // The rejection path is rarely taken: a boxed future of its own, so its state
            // stays out of this one. The block ends the response's storage before that await.
            let after: BoxFuture<'_, _> = {
                let sent = next.clone().run(req, extensions).await;
                match sent {
                    Ok(response) if self.rejection.is_token_rejected(&response) => Box::pin(
                        self.after_rejection(response, generation, replay, extensions, next),
                    ),
                    other => return other,
                }
            };
            after.await
        }
    }

    /// A request that already carries a token of this layer's cache (a retry layer below a
    /// clone of this layer sends it again): the token is replaced if it is no longer the usable
    /// one. No replay here: the layer that authorised the request first replays it.
    async fn reauthorize_then_send(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let lease = match self.cache.cached() {
            Some(lease) => lease,
            None => self.cache.token_slow().await?,
        };
        if req.headers().get(AUTHORIZATION) != Some(lease.header_value()) {
            tracing::debug!("a request sent again carries an old token; replacing it");
            authorize(&mut req, lease);
        }
        next.run(req, extensions).await
    }

    /// The path of a request that must wait for a token (none cached yet, or past the skew
    /// point): boxed apart from the hot path.
    async fn wait_then_send(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let lease = self.cache.token_slow().await?;
        self.send_authorized(req, lease, extensions, next).await
    }
}

impl<S: TokenSource> Middleware for AuthMiddleware<S> {
    // Written out rather than with `#[async_trait]`: the scope check and the cached token are
    // read before any future exists, a request out of scope costs no future of this layer, and
    // only the state that lives across the send is boxed.
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
        match self.scope.applies_to(&req) {
            Ok(false) => match req.headers().get(AUTHORIZATION) {
                // A request this layer (or a clone above a retry layer) authorised, sent again:
                // its token may have expired or been replaced meanwhile.
                Some(value)
                    if self.scope.origins.contains(req.url()) && self.cache.issued(value) =>
                {
                    Box::pin(self.reauthorize_then_send(req, extensions, next))
                }
                _ => next.run(req, extensions),
            },
            Err(err) => Box::pin(std::future::ready(Err(err.into()))),
            Ok(true) => match self.cache.cached() {
                Some(lease) => self.send_authorized(req, lease, extensions, next),
                None => Box::pin(self.wait_then_send(req, extensions, next)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::source::FetchContext;
    use crate::token::Token;

    struct Never;

    #[async_trait::async_trait]
    impl TokenSource for Never {
        async fn fetch(&self, _cx: &FetchContext) -> Result<Token, Error> {
            std::future::pending().await
        }
    }

    /// The size of the future `make` would return (`make` is never called).
    fn size_of_future<F: std::future::Future>(_make: impl FnOnce() -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// The future of every request through the layer stays well under the 1 KiB above which
    /// glibc's allocator leaves its per-thread fast path: the slow paths are boxed apart.
    #[test]
    // The closure is only there for its return type; it is never called.
    #[allow(unreachable_code, unused_variables, unused_assignments)]
    fn the_request_future_stays_small() {
        let mw = AuthMiddleware::from_source(Never);
        let req = Request::new(
            Method::GET,
            Url::parse("https://api.partner.example/x").unwrap(),
        );
        let lease = Lease::for_tests();
        let mut extensions = Extensions::new();
        #[allow(clippy::diverging_sub_expression)]
        let size = size_of_future(|| {
            let next: Next<'_> = unreachable!("only the type is needed");
            let replay = ReplayCopy::of(&req).unwrap();
            mw.send_with_replay(req, replay, lease.generation(), &mut extensions, next)
        });
        assert!(size <= 640, "the request future is {size} bytes");
    }
}
