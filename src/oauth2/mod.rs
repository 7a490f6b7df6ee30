//! OAuth 2.0: client credentials (RFC 6749 §4.4), authorization code with PKCE (RFC 7636,
//! S256) and rotating refresh tokens (Auth0, Pentaleap's campaign API).
//!
//! A login, once, with a person at the browser; then a layer that refreshes for as long as the
//! login lasts, the rotating refresh token kept in a [`TokenStore`](crate::store::TokenStore):
//!
//! ```no_run
//! use std::sync::Arc;
//! use reqwest_partner_auth::oauth2::{OAuthClient, RedirectUrl, RefreshTokenAuth};
//! use reqwest_partner_auth::store::{MemoryStore, TokenStore};
//! use url::Url;
//!
//! # async fn run(callback_url: Url) -> Result<(), Box<dyn std::error::Error>> {
//! let client = OAuthClient::auth0("tenant.eu.auth0.com", "my-client-id")?
//!     .audience("https://api.pentaleap.example")
//!     .scopes(["offline_access", "read:campaigns"])
//!     .redirect_uri(RedirectUrl::parse("http://127.0.0.1:8976/callback")?);
//! let login = client.begin_login()?;
//! println!("open {}", login.authorize_url());
//! // ... the browser comes back to the redirect URI with `callback_url`; then:
//! let store = Arc::new(MemoryStore::new());
//! store.save("pentaleap", &login.complete(&callback_url).await?).await?;
//!
//! let api = Url::parse("https://api.pentaleap.example")?;
//! let campaigns = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(RefreshTokenAuth::new(client, store, "pentaleap", &api))
//!     .build();
//! # let _ = campaigns; Ok(()) }
//! ```
//!
//! Any API behind an OAuth 2.0 server's client credentials grant:
//!
//! ```
//! use reqwest_partner_auth::oauth2::{ClientCredentialsAuth, TokenUrl};
//! use url::Url;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = ClientCredentialsAuth::new(
//!     TokenUrl::parse("https://auth.partner.example/oauth/token")?,
//!     "client-id",
//!     "client-secret",
//!     &Url::parse("https://api.partner.example")?,
//! );
//! # let _ = layer; Ok(()) }
//! ```

mod client_credentials;
mod login;
mod refresh;
mod urls;

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::engine::{Encoding, HttpTokenSource, Param, TokenClient, DEFAULT_TOKEN_TIMEOUT};
use crate::error::Error;
use crate::partner::{endpoint, parse_url};

pub use client_credentials::{ClientAuthMethod, ClientCredentialsAuth, ClientCredentialsSource};
pub use login::{pkce_challenge, PendingLogin};
pub use refresh::{RefreshTokenAuth, RefreshTokenSource, DEFAULT_SESSION_LIMIT};
pub use urls::{AuthorizeUrl, RedirectUrl, TokenUrl};

/// A client registered with an authorization server: where its endpoints are, its id, and
/// what it asks for. Shared by the login ([`OAuthClient::begin_login`]) and the refresh
/// source ([`RefreshTokenSource`]).
///
/// A confidential client (one with a [`client_secret`](Self::client_secret)) authenticates
/// at the token endpoint as [`client_auth`](Self::client_auth) says, for the code exchange
/// and for every refresh alike: HTTP Basic by default ([`OAuthClient::new`]; RFC 6749
/// §2.3.1: every server must support it), the request body for [`OAuthClient::auth0`]
/// (Auth0's default method, `client_secret_post`). A public client (no secret) sends its
/// `client_id` in the body.
///
/// ```
/// use reqwest_partner_auth::oauth2::{AuthorizeUrl, ClientAuthMethod, OAuthClient, TokenUrl};
/// # fn main() -> Result<(), reqwest_partner_auth::Error> {
/// let client = OAuthClient::new(TokenUrl::parse("https://login.partner.example/token")?, "my-client")
///     .authorize_url(AuthorizeUrl::parse("https://login.partner.example/authorize")?)
///     .client_secret("my-secret")
///     // The method the client is registered with (`client_secret_post` here).
///     .client_auth(ClientAuthMethod::RequestBody)
///     .timeout(std::time::Duration::from_secs(5));
/// # let _ = client; Ok(()) }
/// ```
#[derive(Clone)]
pub struct OAuthClient {
    pub(crate) authorize_url: Option<Url>,
    pub(crate) token_url: Url,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<SecretString>,
    pub(crate) client_auth: ClientAuthMethod,
    pub(crate) audience: Option<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) redirect_uri: Option<Url>,
    pub(crate) issuer: Option<String>,
    pub(crate) http: TokenClient,
    pub(crate) timeout: Duration,
    pub(crate) allow_insecure_http: bool,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field(
                "authorize_url",
                &self.authorize_url.as_ref().map(Url::as_str),
            )
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("client_auth", &self.client_auth)
            .field("audience", &self.audience)
            .field("scopes", &self.scopes)
            .field("redirect_uri", &self.redirect_uri.as_ref().map(Url::as_str))
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// A client of the authorization server whose token endpoint is `token_url`. A
    /// confidential client authenticates with HTTP Basic unless told otherwise
    /// ([`client_auth`](Self::client_auth)); a login also needs
    /// [`authorize_url`](Self::authorize_url) and [`redirect_uri`](Self::redirect_uri).
    pub fn new(token_url: TokenUrl, client_id: impl Into<String>) -> Self {
        Self {
            authorize_url: None,
            token_url: token_url.into_url(),
            client_id: client_id.into(),
            client_secret: None,
            client_auth: ClientAuthMethod::Basic,
            audience: None,
            scopes: Vec::new(),
            redirect_uri: None,
            issuer: None,
            http: TokenClient::new(),
            timeout: DEFAULT_TOKEN_TIMEOUT,
            allow_insecure_http: false,
        }
    }

    /// An Auth0 tenant: `https://<domain>/authorize` and `https://<domain>/oauth/token`.
    /// `domain` is a host name (`tenant.eu.auth0.com`) or a base URL. A confidential client
    /// sends its secret in the request body ([`ClientAuthMethod::RequestBody`]), Auth0's default
    /// method (`client_secret_post`).
    ///
    /// # Errors
    /// [`Error::Config`] if `domain` is not a usable host or URL.
    pub fn auth0(domain: &str, client_id: impl Into<String>) -> Result<Self, Error> {
        let base = if domain.contains("://") {
            parse_url(domain, "auth0 domain")?
        } else {
            parse_url(&format!("https://{domain}"), "auth0 domain")?
        };
        Ok(
            Self::new(TokenUrl::new(endpoint(&base, "/oauth/token")), client_id)
                .authorize_url(AuthorizeUrl::new(endpoint(&base, "/authorize")))
                .client_auth(ClientAuthMethod::RequestBody),
        )
    }

    /// The client secret, for confidential clients (sent as
    /// [`client_auth`](Self::client_auth) says).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(SecretString::from(secret.into()));
        self
    }

    /// How a confidential client authenticates at the token endpoint (code exchange and
    /// refresh): use the method it is registered with. Default [`ClientAuthMethod::Basic`], or
    /// [`ClientAuthMethod::RequestBody`] for [`OAuthClient::auth0`]. Without a secret the client is
    /// public and sends only its `client_id`, in the body.
    pub fn client_auth(mut self, how: ClientAuthMethod) -> Self {
        self.client_auth = how;
        self
    }

    /// The API the tokens are for (Auth0's `audience` parameter).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The scopes to ask for (`offline_access` is needed for a refresh token at Auth0).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The authorization endpoint a login opens in a browser.
    pub fn authorize_url(mut self, url: AuthorizeUrl) -> Self {
        self.authorize_url = Some(url.into_url());
        self
    }

    /// The callback URI registered with the authorization server.
    pub fn redirect_uri(mut self, uri: RedirectUrl) -> Self {
        self.redirect_uri = Some(uri.into_url());
        self
    }

    /// The authorization server's issuer identifier. When set, a login callback that carries
    /// an `iss` parameter (RFC 9207) must name exactly this issuer, which stops a callback
    /// from another authorization server (a mix-up attack) from being accepted. Callbacks
    /// without `iss` (Auth0 sends none) are still accepted.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The `reqwest::Client` for token requests (default
    /// [`default_token_client`](crate::engine::default_token_client)). Whatever client is
    /// given, token requests follow no redirect and are cut off after
    /// [`timeout`](Self::timeout). Its connect timeout is its own:
    /// [`connect_timeout`](Self::connect_timeout) does not change it, whether called before or
    /// after this (reqwest cannot change it per request).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = TokenClient::Given(client);
        self
    }

    /// How long a connect to the token endpoint may take, for the code exchange and every
    /// refresh (default [`DEFAULT_CONNECT_TIMEOUT`](crate::engine::DEFAULT_CONNECT_TIMEOUT),
    /// 5 s): a connect that hangs fails with [`Error::Transport`] long before
    /// [`timeout`](Self::timeout). It applies to the client this client builds itself; one
    /// given with [`http_client`](Self::http_client), before or after this call, keeps its own
    /// connect timeout.
    pub fn connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.http = self.http.connect_timeout(connect_timeout);
        self
    }

    /// How long one token request may take (default
    /// [`DEFAULT_TOKEN_TIMEOUT`]); it applies to a client given
    /// with [`http_client`](Self::http_client) too.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Allows endpoints on plain `http://` to non-loopback hosts, and the API requests of a
    /// layer over this client's sources: the one switch for both.
    ///
    /// **Security warning:** codes and tokens then travel readable by anyone on the path.
    pub fn allow_insecure_http(mut self) -> Self {
        self.allow_insecure_http = true;
        self
    }

    /// The token endpoint.
    pub fn token_url(&self) -> &Url {
        &self.token_url
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The token request of a grant, with this client's settings and authentication: a
    /// form-encoded engine whose parameters are `grant_type`, `client_id` (unless the client
    /// authenticates with Basic), `params`, then `client_secret` (with
    /// [`ClientAuthMethod::RequestBody`]). The one place client authentication is decided, for
    /// every grant.
    pub(crate) fn token_request<N: Into<String>>(
        &self,
        grant_type: &str,
        params: impl IntoIterator<Item = (N, Param)>,
    ) -> HttpTokenSource {
        let mut engine = HttpTokenSource::post_with(self.token_url.clone(), self.http.clone())
            .encoding(Encoding::Form)
            .timeout(self.timeout)
            .param("grant_type", Param::text(grant_type));
        if self.allow_insecure_http {
            engine = engine.allow_insecure_http();
        }
        let basic = self
            .client_secret
            .as_ref()
            .filter(|_| self.client_auth == ClientAuthMethod::Basic);
        if basic.is_none() {
            engine = engine.param("client_id", Param::Text(self.client_id.clone()));
        }
        for (name, value) in params {
            engine = engine.param(name, value);
        }
        match (&self.client_secret, self.client_auth) {
            (Some(secret), ClientAuthMethod::Basic) => {
                engine = engine.basic_auth(self.client_id.clone(), secret.clone());
            }
            (Some(secret), ClientAuthMethod::RequestBody) => {
                engine = engine.param("client_secret", Param::Secret(secret.clone()));
            }
            (None, _) => {}
        }
        engine
    }

    pub(crate) fn scope_param(&self) -> Option<String> {
        (!self.scopes.is_empty()).then(|| self.scopes.join(" "))
    }
}
