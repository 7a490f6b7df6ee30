//! Typed `reqwest-middleware` layers for partner APIs that guard themselves with a token
//! dance: each layer fetches the token, caches it, refreshes it before it expires, attaches
//! `Authorization: Bearer <token>`, and on a `401` refreshes and replays the request once.
//!
//! ```no_run
//! use reqwest_middleware::ClientBuilder;
//! use reqwest_partner_auth::{AuthMiddleware, HttpTokenSource, ResponseShape};
//! use url::Url;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let source = HttpTokenSource::post(Url::parse("https://partner.example/oauth/token")?)
//!     .param("client_id", reqwest_partner_auth::Param::text("id"))
//!     .param("client_secret", reqwest_partner_auth::Param::secret("secret"))
//!     .scope_to(&Url::parse("https://partner.example")?);
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(AuthMiddleware::from_source(source))
//!     .build();
//! let res = client.get("https://partner.example/v1/campaigns").send().await?;
//! # let _ = res; Ok(()) }
//! ```
//!
//! # Errors
//! Failures of the layer reach the caller as [`reqwest_middleware::Error::Middleware`]
//! holding an [`Error`]; [`Error::from_middleware`] finds it.
//!
//! # Time
//! Expiry decisions read a [`Clock`]: the real one by default, a [`ManualClock`] in tests.

mod cache;
mod clock;
mod endpoint;
mod error;
mod middleware;
mod providers;
mod response;
mod scope;
mod source;
mod store;
mod token;

pub use async_trait::async_trait;
pub use cache::{
    Lease, RetryPolicy, TokenCache, BACKGROUND_RETRY_PAUSE, DEFAULT_REFRESH_AHEAD,
    DEFAULT_REFRESH_SKEW,
};
pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use endpoint::{default_token_client, Encoding, HttpTokenSource, Param, DEFAULT_TOKEN_TIMEOUT};
pub use error::{Error, Malformed, OAuthErrorCode};
pub use middleware::{
    is_unauthorized, AuthMiddleware, NoReplay, RejectOnUnauthorized, RejectionPolicy,
};
pub use providers::adgem::{AdGem, AdGemAuth, AdGemCredentials, ADGEM_BASE_URL};
pub use providers::channel_manager::{
    ChannelManager, ChannelManagerAuth, ChannelManagerCredentials, CHANNEL_MANAGER_NOT_FOUND,
};
pub use providers::oauth2::client_credentials::{
    ClientAuth, ClientCredentials, ClientCredentialsAuth,
};
pub use providers::oauth2::login::{pkce_challenge, PendingLogin};
pub use providers::oauth2::refresh::{RefreshToken, RefreshTokenAuth, DEFAULT_SESSION_LIMIT};
pub use providers::oauth2::OAuthClient;
pub use providers::pentaleap::{ApiKeyAuth, PentaleapApiKeys};
pub use providers::setu::{Setu, SetuAuth, SetuCredentials, SETU_TOKEN_LIFETIME};
pub use providers::targeter::{Targeter, TargeterAuth, TargeterCredentials, TARGETER_BASE_URL};
pub use response::{ErrorShape, ResponseShape, DEFAULT_MAX_BODY};
pub use source::{FetchContext, FetchReason, TokenSource};
pub use store::{FileStore, MemoryStore, StoreLock, StoredTokens, TokenStore};
pub use token::{jwt_expiry, Expiry, Token, MAX_TOKEN_LIFETIME};

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[allow(dead_code)]
fn _assert_impls() {
    fn send_sync<T: Send + Sync>() {}
    fn clone<T: Clone>() {}
    send_sync::<AuthMiddleware<HttpTokenSource>>();
    send_sync::<TokenCache<HttpTokenSource>>();
    send_sync::<Error>();
    send_sync::<Token>();
    clone::<Error>();
    clone::<Token>();
    clone::<HttpTokenSource>();
    send_sync::<TargeterAuth>();
    send_sync::<AdGemAuth>();
    send_sync::<SetuAuth>();
    send_sync::<ChannelManagerAuth>();
    send_sync::<ApiKeyAuth>();
}
