//! OAuth 2.0: client credentials (RFC 6749 §4.4), authorization code with PKCE (RFC 7636,
//! S256) and rotating refresh tokens (Auth0, Pentaleap's campaign API).

pub(crate) mod client_credentials;
pub(crate) mod login;
pub(crate) mod refresh;

use std::fmt;

use secrecy::SecretString;
use url::Url;

use crate::endpoint::default_token_client;
use crate::error::Error;
use crate::providers::{endpoint, parse_url};

/// A client registered with an authorization server: where its endpoints are, its id, and
/// what it asks for. Shared by the login ([`OAuthClient::begin_login`]) and the refresh
/// middleware ([`RefreshToken`](crate::RefreshToken)).
#[derive(Clone)]
pub struct OAuthClient {
    pub(crate) authorize_url: Url,
    pub(crate) token_url: Url,
    pub(crate) client_id: String,
    pub(crate) client_secret: Option<SecretString>,
    pub(crate) audience: Option<String>,
    pub(crate) scopes: Vec<String>,
    pub(crate) redirect_uri: Option<Url>,
    pub(crate) issuer: Option<String>,
    pub(crate) http: reqwest::Client,
    pub(crate) allow_insecure_http: bool,
}

impl fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("authorize_url", &self.authorize_url.as_str())
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("audience", &self.audience)
            .field("scopes", &self.scopes)
            .field("redirect_uri", &self.redirect_uri.as_ref().map(Url::as_str))
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// A client with explicit endpoints.
    pub fn new(authorize_url: Url, token_url: Url, client_id: impl Into<String>) -> Self {
        Self {
            authorize_url,
            token_url,
            client_id: client_id.into(),
            client_secret: None,
            audience: None,
            scopes: Vec::new(),
            redirect_uri: None,
            issuer: None,
            http: default_token_client(),
            allow_insecure_http: false,
        }
    }

    /// An Auth0 tenant: `https://<domain>/authorize` and `https://<domain>/oauth/token`.
    /// `domain` is a host name (`tenant.eu.auth0.com`) or a base URL.
    ///
    /// # Errors
    /// [`Error::Config`] if `domain` is not a usable host or URL.
    pub fn auth0(domain: &str, client_id: impl Into<String>) -> Result<Self, Error> {
        let base = if domain.contains("://") {
            parse_url(domain)?
        } else {
            parse_url(&format!("https://{domain}"))?
        };
        Ok(Self::new(
            endpoint(&base, "/authorize"),
            endpoint(&base, "/oauth/token"),
            client_id,
        ))
    }

    /// The client secret, for confidential clients (sent in the body of token requests).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.client_secret = Some(SecretString::from(secret.into()));
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

    /// The callback URI registered with the authorization server.
    pub fn redirect_uri(mut self, uri: Url) -> Self {
        self.redirect_uri = Some(uri);
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
    /// [`default_token_client`](crate::default_token_client): timeouts, no redirects).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = client;
        self
    }

    /// Allows endpoints on plain `http://` to non-loopback hosts.
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

    /// A token-endpoint engine for form-encoded grants with this client's settings.
    pub(crate) fn token_engine(&self) -> crate::HttpTokenSource {
        let engine = crate::HttpTokenSource::post(self.token_url.clone())
            .encoding(crate::Encoding::Form)
            .http_client(self.http.clone());
        if self.allow_insecure_http {
            engine.allow_insecure_http()
        } else {
            engine
        }
    }

    pub(crate) fn scope_param(&self) -> Option<String> {
        (!self.scopes.is_empty()).then(|| self.scopes.join(" "))
    }
}
