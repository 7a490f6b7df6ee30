//! Typed `reqwest-middleware` layers for partner APIs that guard themselves with a token
//! dance: each layer fetches the token, caches it, refreshes it before it expires, attaches
//! `Authorization: Bearer <token>`, and on a `401` refreshes and replays the request once.
//!
//! # The partners
//!
//! Targeter (JSON `{api_key, api_secret}`, one-hour tokens):
//!
//! ```no_run
//! use reqwest_middleware::ClientBuilder;
//! use reqwest_partner_auth::{TargeterAuth, TargeterCredentials};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(TargeterAuth::new(TargeterCredentials::from_env()?))
//!     .build();
//! let res = client
//!     .post("https://storhaug.targeter.tech/api/campaign")
//!     .json(&serde_json::json!({ "name": "spring" }))
//!     .send()
//!     .await?;
//! # let _ = res; Ok(()) }
//! ```
//!
//! AdGem (integer publisher and app ids), calling the offers API:
//!
//! ```no_run
//! # use reqwest_middleware::ClientBuilder;
//! use reqwest_partner_auth::{AdGemAuth, AdGemCredentials};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(AdGemAuth::new(AdGemCredentials::new(1234, 5678, "client-id", "client-secret")))
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
//!
//! Setu Bridge (form-encoded client credentials; the expiry is read from the JWT) and a
//! channel manager (form `username`/`password`, a plain-text token); neither contract names a
//! host, so the base URL is given:
//!
//! ```no_run
//! # use reqwest_middleware::ClientBuilder;
//! use reqwest_partner_auth::{
//!     ChannelManagerAuth, ChannelManagerCredentials, SetuAuth, SetuCredentials,
//! };
//! use url::Url;
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let setu = ClientBuilder::new(reqwest::Client::new())
//!     .with(SetuAuth::new(
//!         SetuCredentials::new("client-id", "client-secret"),
//!         &Url::parse("https://bridge.setu.example")?,
//!     ))
//!     .build();
//! let hotels = ClientBuilder::new(reqwest::Client::new())
//!     .with(ChannelManagerAuth::new(
//!         ChannelManagerCredentials::from_env()?,
//!         &Url::parse("https://connectivity.example")?,
//!     ))
//!     .build();
//! # let _ = (setu, hotels); Ok(()) }
//! ```
//!
//! Pentaleap: product feeds with one API key per publisher, and the campaign API with the
//! Auth0 login (authorization code + PKCE) and rotating refresh tokens kept in a file:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use reqwest_middleware::ClientBuilder;
//! use reqwest_partner_auth::{
//!     ApiKeyAuth, FileStore, OAuthClient, PentaleapApiKeys, RefreshToken, RefreshTokenAuth,
//!     TokenStore,
//! };
//! use url::Url;
//!
//! # async fn run(callback_url: Url) -> Result<(), Box<dyn std::error::Error>> {
//! let pcm = Url::parse("https://pcm.pentaleap.example")?;
//! let feeds = ClientBuilder::new(reqwest::Client::new())
//!     .with(ApiKeyAuth::new(
//!         &pcm,
//!         PentaleapApiKeys::from_publishers([("1001", "key-a"), ("1002", "key-b")])?,
//!     ))
//!     .build();
//!
//! // Once, with a person at the browser:
//! let auth0 = OAuthClient::auth0("tenant.eu.auth0.com", "client-id")?
//!     .audience("https://api.pentaleap.example")
//!     .scopes(["offline_access", "read:campaigns", "write:campaigns"])
//!     .redirect_uri(Url::parse("http://127.0.0.1:8976/callback")?);
//! let login = auth0.begin_login()?;
//! println!("open {}", login.authorize_url());
//! let store = FileStore::new("pentaleap-tokens.json");
//! store.save("pentaleap", &login.complete(&callback_url).await?).await?;
//!
//! // Then, for up to 180 days:
//! let campaigns = ClientBuilder::new(reqwest::Client::new())
//!     .with(RefreshTokenAuth::from_source(
//!         RefreshToken::new(auth0, Arc::new(store), "pentaleap").scope_to(&pcm),
//!     ))
//!     .build();
//! # let _ = (feeds, campaigns); Ok(()) }
//! ```
//!
//! Any OAuth 2.0 client-credentials API, and any partner that answers one POST with a token:
//!
//! ```no_run
//! # use reqwest_middleware::ClientBuilder;
//! use reqwest_partner_auth::{
//!     AuthMiddleware, ClientCredentials, ClientCredentialsAuth, Encoding, HttpTokenSource, Param,
//!     ResponseShape,
//! };
//! use url::Url;
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let api = Url::parse("https://api.partner.example")?;
//! let oauth = ClientCredentialsAuth::from_source(
//!     ClientCredentials::new(Url::parse("https://auth.partner.example/token")?, "id", "secret")
//!         .scope_to(&api),
//! );
//! let custom = AuthMiddleware::from_source(
//!     HttpTokenSource::post(Url::parse("https://partner.example/v2/token")?)
//!         .encoding(Encoding::Form)
//!         .param("key", Param::text("k"))
//!         .param("secret", Param::secret("s"))
//!         .response(ResponseShape::json("token").with_expires_in("ttl"))
//!         .scope_to(&api),
//! );
//! let client = ClientBuilder::new(reqwest::Client::new()).with(oauth).build();
//! # let _ = (client, custom); Ok(()) }
//! ```
//!
//! A partner with a token dance of its own implements [`TokenSource`].
//!
//! # Errors
//! Failures of the layer reach the caller as [`reqwest_middleware::Error::Middleware`]
//! holding an [`Error`]; [`Error::from_middleware`] finds it.
//!
//! # Time
//! Expiry decisions read a [`Clock`]: the real one by default, a [`ManualClock`] in tests.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cache;
pub mod clock;
pub mod engine;
pub mod error;
pub mod middleware;
mod partner;
#[cfg(test)]
mod proptests;
mod source;
pub mod store;
pub mod token;

#[cfg(feature = "oauth2")]
#[cfg_attr(docsrs, doc(cfg(feature = "oauth2")))]
pub mod oauth2;

#[cfg(feature = "adgem")]
#[cfg_attr(docsrs, doc(cfg(feature = "adgem")))]
pub mod adgem;
#[cfg(feature = "channel-manager")]
#[cfg_attr(docsrs, doc(cfg(feature = "channel-manager")))]
pub mod channel_manager;
#[cfg(feature = "pentaleap")]
#[cfg_attr(docsrs, doc(cfg(feature = "pentaleap")))]
pub mod pentaleap;
#[cfg(feature = "setu")]
#[cfg_attr(docsrs, doc(cfg(feature = "setu")))]
pub mod setu;
#[cfg(feature = "targeter")]
#[cfg_attr(docsrs, doc(cfg(feature = "targeter")))]
pub mod targeter;

pub use async_trait::async_trait;
pub use cache::TokenCache;
pub use clock::Clock;
pub use error::Error;
pub use middleware::{AuthMiddleware, NoReplay};
pub use source::{FetchContext, FetchReason, TokenSource};
pub use token::Token;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

#[allow(dead_code)]
fn _assert_impls() {
    fn send_sync<T: Send + Sync>() {}
    fn clone<T: Clone>() {}
    send_sync::<AuthMiddleware<engine::HttpTokenSource>>();
    send_sync::<TokenCache<engine::HttpTokenSource>>();
    clone::<TokenCache<engine::HttpTokenSource>>();
    send_sync::<Error>();
    send_sync::<Token>();
    clone::<Error>();
    clone::<Token>();
    clone::<engine::HttpTokenSource>();
    #[cfg(feature = "targeter")]
    send_sync::<targeter::Auth>();
    #[cfg(feature = "adgem")]
    send_sync::<adgem::Auth>();
    #[cfg(feature = "setu")]
    send_sync::<setu::Auth>();
    #[cfg(feature = "channel-manager")]
    send_sync::<channel_manager::Auth>();
    #[cfg(feature = "pentaleap")]
    send_sync::<pentaleap::ApiKeyAuth>();
    #[cfg(feature = "oauth2")]
    send_sync::<oauth2::RefreshTokenAuth>();
    #[cfg(feature = "oauth2")]
    send_sync::<oauth2::ClientCredentialsAuth>();
}
