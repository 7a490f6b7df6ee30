//! Typed [`reqwest-middleware`](reqwest_middleware) layers for partner APIs that guard
//! themselves with a token dance. Each layer fetches the token, caches it, refreshes it before
//! it expires, attaches `Authorization: Bearer <token>` to the partner's requests, and on a
//! `401` refreshes and replays the request once, so callers never see an expired token.
//!
//! ```no_run
//! use reqwest_middleware::ClientBuilder;
//! use reqwest_partner_auth::targeter;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = ClientBuilder::new(reqwest::Client::new())
//!     .with(targeter::Auth::new(targeter::Credentials::from_env()?))
//!     .build();
//! let res = client
//!     .post("https://storhaug.targeter.tech/api/campaign")
//!     .json(&serde_json::json!({ "name": "spring" }))
//!     .send()
//!     .await?;
//! # let _ = res; Ok(()) }
//! ```
//!
//! # How a token travels
//!
//! Three parts, each replaceable: a [`TokenSource`] knows *how* to obtain a token from one
//! partner; a [`TokenCache`] decides *when*; an [`AuthMiddleware`] decides *where* the header
//! goes and replays a rejected request.
//!
//! * **Fetched** by the source, with its own `reqwest::Client` (timeouts, no redirects, never
//!   through your middleware chain, so authentication cannot recurse). Transient failures
//!   (connect errors, 5xx, 429 with `Retry-After`) are retried with bounded backoff
//!   ([`cache::RetryPolicy`]); credential errors are not. The answer's lifetime comes from
//!   `expires_in`, else the JWT `exp` claim (read, not verified), else the partner's documented
//!   lifetime; a token of unknown lifetime is kept until a `401`.
//! * **Cached**, behind a lock-free read: a request with a fresh token pays one atomic load and
//!   one header insert. However many requests need a new token at once, one fetch runs (single
//!   flight), in a task of its own, so a cancelled caller cannot cancel it for the others. Every
//!   fetch has a deadline ([`cache::DEFAULT_FETCH_DEADLINE`], 30 s): past it, callers whose
//!   token has not expired keep using it and the others get [`Error::FetchTimeout`].
//! * **Refreshed ahead.** Two points before expiry: from the *refresh-ahead* point (a quarter
//!   of the lifetime, at most [`cache::REFRESH_AHEAD_LIMIT`] 20 s, before the skew point) one
//!   background refresh runs while requests keep using the current token, so in steady state
//!   no request waits for the token endpoint; from the *skew* point
//!   ([`cache::DEFAULT_REFRESH_SKEW`], 30 s before expiry, at most a quarter of the lifetime)
//!   requests wait for the new token, so none leaves with a dying one. If a refresh fails, the
//!   current token is used until it expires.
//! * **Replayed.** When the API answers `401` (or what a [`middleware::RejectionPolicy`] says
//!   means "token rejected"), the layer drops that token (one refresh for any number of
//!   concurrent rejections of it), fetches a new one and sends the request again, once. A
//!   streaming body cannot be replayed, and a request carrying [`NoReplay`] is not: their
//!   `401` comes back as is. Rejection-driven fetches cool down
//!   ([`cache::DEFAULT_REJECTION_COOLDOWN`], 30 s), so an API that rejects every fresh token
//!   costs one fetch per cool-down, not one per request.
//! * **Scoped.** A layer attaches the token only to requests for its origins (scheme, host
//!   and port): the partner's API origin by default, more with
//!   [`add_origin`](middleware::AuthMiddlewareBuilder::add_origin). Requests elsewhere pass
//!   untouched and cost no fetch, a request that already has an `Authorization` header is left
//!   alone, and a `401` from another origin (after a redirect) is not a rejection. Credentials
//!   travel only over TLS or to loopback, unless the source allows plain http (one switch per
//!   partner, covering its token endpoint and its API): otherwise the request fails with
//!   [`Error::InsecureTransport`] before anything is sent.
//! * **Visible.** Every fetch runs in a `token_fetch` span, child of the request that needed
//!   the token; an [`observe::Observer`] hears fetches, token changes, rejections, replays and
//!   stale tokens served, and the `metrics` feature counts them ([`observe`]).
//! * **Never printed.** Credentials, tokens and refresh tokens are redacted in `Debug`,
//!   `Display`, errors and logs, also when a partner echoes them back JSON-escaped, form- or
//!   percent-encoded or inside a Basic header.
//!
//! # The partners
//!
//! Each partner is a module with the same shape: `Credentials` (plain data, `from_env()`),
//! `Source` (its token source), `Auth` (its layer), and the same constructors on `Source` and
//! `Auth`: `new(credentials)` for the production host where the contract names one, and
//! `with_base_url(credentials, &base)` for any host (a sandbox, a mock).
//!
//! | partner | module | layer |
//! |---|---|---|
//! | Targeter | [`targeter`] | `targeter::Auth::new(targeter::Credentials::new(key, secret))` |
//! | AdGem | [`adgem`] | `adgem::Auth::new(adgem::Credentials::new(pub_id, app_id, id, secret))` |
//! | Setu (Bridge) | [`setu`] | `setu::Auth::with_base_url(setu::Credentials::new(id, secret), &base)` |
//! | a channel manager | [`channel_manager`] | `channel_manager::Auth::with_base_url(channel_manager::Credentials::new(user, password), &base)` |
//! | Pentaleap feeds | [`pentaleap`] | `pentaleap::ApiKeyAuth::with_base_url(pentaleap::ApiKeys::from_publishers(map)?, &pcm)` |
//! | Pentaleap campaigns (Auth0) | [`oauth2`] | `oauth2::RefreshTokenAuth::from_source(oauth2::RefreshTokenSource::new(client, store, key))` |
//! | any OAuth 2.0 API | [`oauth2`] | `oauth2::ClientCredentialsAuth::new(token_url, id, secret, &api)` |
//! | your own partner | [`engine`] | `AuthMiddleware::from_source(engine::HttpTokenSource::post(url)...)` |
//!
//! Settings beyond the defaults go through a builder, and are fixed once it is built: every
//! clone of a built cache or layer shares one token and one policy.
//!
//! ```
//! use std::time::Duration;
//! use reqwest_partner_auth::{setu, AuthMiddleware};
//! use url::Url;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let sandbox = Url::parse("http://bridge.sandbox.example")?;
//! let source = setu::Source::with_base_url(setu::Credentials::new("id", "secret"), &sandbox)
//!     // The sandbox has no TLS: one switch, for its token endpoint and its API.
//!     .allow_insecure_http();
//! let layer = AuthMiddleware::builder(source)
//!     .refresh_skew(Duration::from_secs(60))
//!     .add_origin(&Url::parse("https://reports.setu.example")?)
//!     .build();
//! # let _ = layer; Ok(()) }
//! ```
//!
//! One partner, many clients (an agency, an offer wall): [`TenantAuth`] (feature `keyed`) is
//! one layer whose requests name their tenant with a [`TenantKey`] extension; it keeps a token
//! cache per tenant, in a bounded LRU, with the sources a
//! [`SourceProvider`](middleware::SourceProvider) returns.
//!
//! # Adding a partner
//!
//! A partner that answers one `POST` of credentials with a token is a configuration of the
//! [`engine`]: how the credentials travel, where the token and its lifetime are in the answer,
//! how errors look. The [`engine`] module's guide shows one in about ten lines, and how to
//! give it a module of its own like the built-in partners. A token dance of another shape
//! implements [`TokenSource`] (one `async fn`).
//!
//! # Errors
//!
//! Failures of the layer reach the caller as [`reqwest_middleware::Error::Middleware`]
//! holding an [`Error`]; [`Error::from_middleware`] finds it, and [`Error::find`] finds it
//! behind any wrapper (reqwest-retry's `RetryError`, `anyhow` contexts). In a stack with
//! `reqwest-retry`, put the retry layer *outside* this one (added before it), so that every
//! retry passes through the layer and re-reads the token:
//!
//! ```
//! use reqwest_partner_auth::Error;
//!
//! fn explain(err: &reqwest_middleware::Error) -> String {
//!     match Error::from_middleware(err) {
//!         Some(Error::InvalidCredentials { message, .. }) => format!("fix the credentials: {message}"),
//!         Some(Error::ReauthorizationRequired { .. }) => "log in again".to_owned(),
//!         Some(other) => format!("auth failed: {other}"),
//!         None => format!("request failed: {err}"),
//!     }
//! }
//! # let _ = explain;
//! ```
//!
//! Configuration errors ([`Error::Config`]) come only from constructors and `from_env`; a
//! request for which a layer has no credential gets [`Error::NoCredential`].
//!
//! # Cargo features
//!
//! | feature | default | what it brings |
//! |---|---|---|
//! | `rustls` | yes | TLS through rustls (reqwest's `rustls` feature) |
//! | `native-tls` | no | TLS through the platform's library instead |
//! | `targeter` | yes | the [`targeter`] module |
//! | `adgem` | yes | the [`adgem`] module |
//! | `setu` | yes | the [`setu`] module |
//! | `channel-manager` | yes | the [`channel_manager`] module |
//! | `pentaleap` | yes | the [`pentaleap`] module (product-feed API keys) |
//! | `partners` | yes | all five partner modules |
//! | `oauth2` | yes | the [`oauth2`] module: client credentials, login with PKCE, rotating refresh tokens (adds `sha2`, `rand`) |
//! | `file-store` | yes | [`store::FileStore`] (adds `tempfile`, `fs4`) |
//! | `redis` | no | `store::RedisStore`: a fleet's tokens and lease locks in Redis, shared with [`store::SharedSource`] (adds `redis`, `sha2`, `rand`) |
//! | `metrics` | yes | counters and a latency histogram of token fetches through the `metrics` facade ([`observe`]) |
//! | `keyed` | yes | [`TenantAuth`]: one layer for many tenants, a token cache per tenant in a bounded LRU (adds `moka`) |
//!
//! The core (the layer, the cache, the engine, the memory store) needs none of them. A
//! Targeter-only build: `default-features = false, features = ["rustls", "targeter"]`.
//!
//! # Time
//!
//! Expiry decisions read a [`Clock`]: the system clock by default, a
//! [`ManualClock`](clock::ManualClock) in tests, given to the cache builder.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod cache;
pub mod clock;
pub mod engine;
pub mod error;
pub mod middleware;
pub mod observe;
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
#[cfg(feature = "keyed")]
#[cfg_attr(docsrs, doc(cfg(feature = "keyed")))]
pub use middleware::{TenantAuth, TenantKey};
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
