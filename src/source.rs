//! [`TokenSource`]: how one partner hands out tokens.

use std::sync::Arc;

use url::Url;

use crate::clock::Clock;
use crate::error::Error;
use crate::token::Token;

/// Why the cache asks its source for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchReason {
    /// There is no token yet.
    Initial,
    /// The current token is near its expiry (refresh ahead) or past it.
    Expiring,
    /// The API rejected the current token (a 401): a cached copy must not be reused.
    Rejected,
}

impl FetchReason {
    /// `first`, `expiring` or `rejected`: the name spans and metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            FetchReason::Initial => "first",
            FetchReason::Expiring => "expiring",
            FetchReason::Rejected => "rejected",
        }
    }
}

/// What the cache tells a source when it asks for a token.
#[derive(Debug, Clone)]
pub struct FetchContext {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) reason: FetchReason,
}

impl FetchContext {
    /// A context for calling a source directly (outside a cache), on the real clock.
    pub fn new(reason: FetchReason) -> Self {
        Self {
            clock: Arc::new(crate::clock::SystemClock),
            reason,
        }
    }

    /// The clock expiry decisions use.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// Why a token is wanted.
    pub fn reason(&self) -> FetchReason {
        self.reason
    }
}

/// How one provider obtains a token: the wire format and the provider's errors, nothing about
/// caching, retries or the requests waiting for it (that is [`TokenCache`](crate::TokenCache)'s
/// job).
///
/// Implement it to plug a partner this crate does not know into
/// [`AuthMiddleware`](crate::AuthMiddleware). Most
/// partners that answer a POST with a JSON or text token need no code at all: see
/// [`HttpTokenSource`](crate::engine::HttpTokenSource).
///
/// ```
/// use reqwest_partner_auth::{async_trait, AuthMiddleware, Error, FetchContext, Token, TokenSource};
/// use url::Url;
///
/// /// A partner that hands out a token on `GET /token?key=...`.
/// struct MyPartner { client: reqwest::Client, base: Url, key: String }
///
/// #[async_trait]
/// impl TokenSource for MyPartner {
///     async fn fetch(&self, _cx: &FetchContext) -> Result<Token, Error> {
///         let res = self.client
///             .get(self.base.join("/token").expect("static path"))
///             .query(&[("key", &self.key)])
///             .send()
///             .await
///             .map_err(Error::from_reqwest)?;
///         let body = res.text().await.map_err(Error::from_reqwest)?;
///         Ok(Token::bearer(body)?.expires_in(std::time::Duration::from_secs(600)))
///     }
///
///     fn api_origins(&self) -> Vec<Url> {
///         vec![self.base.clone()]
///     }
/// }
///
/// let source = MyPartner {
///     client: reqwest::Client::new(),
///     base: Url::parse("https://api.partner.example").unwrap(),
///     key: "k".into(),
/// };
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(AuthMiddleware::from_source(source))
///     .build();
/// # let _ = client;
/// ```
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync + 'static {
    /// Obtains a new token from the partner.
    ///
    /// # Errors
    /// Any [`Error`]; those for which [`Error::is_transient`] is true are retried by the cache
    /// with backoff, the others surface to the caller at once.
    async fn fetch(&self, cx: &FetchContext) -> Result<Token, Error>;

    /// Whether the cache may try again at once (after a backoff) when [`fetch`](Self::fetch)
    /// failed with `error`. Default: [`Error::is_transient`].
    ///
    /// Override it for requests that must not be repeated blindly: a rotating refresh token
    /// whose request may have reached the server is used up even if the answer was lost.
    fn should_retry(&self, error: &Error) -> bool {
        error.is_transient()
    }

    /// The API origins (scheme, host, port) a layer attaches this source's token to, besides
    /// those added with
    /// [`AuthMiddlewareBuilder::add_origin`](crate::middleware::AuthMiddlewareBuilder::add_origin):
    /// usually the partner's API base URL. Default: none.
    fn api_origins(&self) -> Vec<Url> {
        Vec::new()
    }

    /// A short name for spans, metrics and observers (`targeter`, `adgem`, ...). Default: the
    /// type's name. Never a secret.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// The token endpoint, if the source has one; spans show its origin (scheme, host and
    /// port, never a path or query). Default: none.
    fn endpoint(&self) -> Option<&Url> {
        None
    }

    /// Whether credentials may travel over plain `http://` to hosts that are not loopback,
    /// both to this source's token endpoint and, through a layer over it, to the API: the one
    /// switch for a partner sandbox without TLS. Default `false`: a layer then refuses such a
    /// request with [`Error::InsecureTransport`] before sending anything.
    fn allows_insecure_http(&self) -> bool {
        false
    }
}
