//! The client credentials grant (RFC 6749 §4.4).

use std::fmt;
use std::time::Duration;

use url::Url;

use super::{OAuthClient, TokenUrl};
use crate::engine::{ErrorShape, HttpTokenSource, Param};
use crate::error::Error;
use crate::source::{FetchContext, TokenSource};
use crate::token::Token;
use crate::AuthMiddleware;

/// How a confidential client authenticates at the token endpoint (RFC 6749 §2.3.1); the
/// same choice for [`ClientCredentialsSource`] and [`OAuthClient`] (code exchange and refresh).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// `Authorization: Basic base64(urlencode(id):urlencode(secret))` — the method every
    /// server must support (`client_secret_basic`). The default, except for
    /// [`OAuthClient::auth0`].
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    RequestBody,
}

/// A token source for the client credentials grant: `grant_type=client_credentials`, the
/// client authenticated by HTTP Basic or in the body, optional `scope` and extra parameters
/// (such as Auth0's `audience`). Errors follow RFC 6749 §5.2: `invalid_client` is
/// [`Error::InvalidCredentials`]; `invalid_scope`, `unauthorized_client`, ... are
/// [`Error::OAuth`] with a typed [`OAuthErrorCode`](crate::error::OAuthErrorCode).
///
/// ```
/// use reqwest_partner_auth::oauth2::{ClientAuthMethod, ClientCredentialsAuth, ClientCredentialsSource, TokenUrl};
/// use url::Url;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let source = ClientCredentialsSource::new(
///         TokenUrl::parse("https://auth.partner.example/oauth/token")?,
///         "my-client",
///         "my-secret",
///     )
///     .client_auth(ClientAuthMethod::RequestBody)
///     .scopes(["read:offers"])
///     .param("audience", "https://api.partner.example")
///     .add_origin(&Url::parse("https://api.partner.example")?);
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(ClientCredentialsAuth::from_source(source))
///     .build();
/// # let _ = client; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientCredentialsSource {
    /// Token URL, id, secret, scopes, HTTP client and the plain-http rule, shared with the
    /// other grants (the authorize URL is unused here).
    client: OAuthClient,
    params: Vec<(String, String)>,
    api_scope: Vec<Url>,
}

impl fmt::Debug for ClientCredentialsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentialsSource")
            .field("client", &self.client)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl ClientCredentialsSource {
    /// A client authenticating with HTTP Basic (change with [`client_auth`](Self::client_auth)).
    pub fn new(
        token_url: TokenUrl,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self {
            client: OAuthClient::new(token_url, client_id).client_secret(client_secret),
            params: Vec::new(),
            api_scope: Vec::new(),
        }
    }

    /// How the client authenticates.
    pub fn client_auth(mut self, how: ClientAuthMethod) -> Self {
        self.client = self.client.client_auth(how);
        self
    }

    /// The scopes to request (sent space-separated as `scope`).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.client = self.client.scopes(scopes);
        self
    }

    /// An extra form parameter (`audience`, `resource`, ...).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// Adds an API origin the token is attached to.
    pub fn add_origin(mut self, url: &Url) -> Self {
        self.api_scope.push(url.clone());
        self
    }

    /// The `reqwest::Client` for the token endpoint. Whatever client is given, token
    /// requests follow no redirect and are cut off after [`timeout`](Self::timeout). Its
    /// connect timeout is its own: [`connect_timeout`](Self::connect_timeout) does not change
    /// it, whether called before or after this (reqwest cannot change it per request).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = self.client.http_client(client);
        self
    }

    /// How long a connect to the token endpoint may take (default
    /// [`DEFAULT_CONNECT_TIMEOUT`](crate::engine::DEFAULT_CONNECT_TIMEOUT), 5 s): a connect
    /// that hangs fails with [`Error::Transport`] long before [`timeout`](Self::timeout). It
    /// applies to the client the source builds itself; a client given with
    /// [`http_client`](Self::http_client), before or after this call, keeps its own connect
    /// timeout.
    pub fn connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.client = self.client.connect_timeout(connect_timeout);
        self
    }

    /// How long one token request may take (default
    /// [`DEFAULT_TOKEN_TIMEOUT`](crate::engine::DEFAULT_TOKEN_TIMEOUT)); it applies to a client given
    /// with [`http_client`](Self::http_client) too.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.client = self.client.timeout(timeout);
        self
    }

    /// Allows plain `http://` to a host that is not loopback, for the token endpoint and for
    /// the API requests a layer over this source authorizes alike: the one switch for both.
    ///
    /// **Security warning:** the secret and the tokens then travel readable by anyone on the
    /// path.
    pub fn allow_insecure_http(mut self) -> Self {
        self.client = self.client.allow_insecure_http();
        self
    }

    fn engine(&self) -> HttpTokenSource {
        let scope = self
            .client
            .scope_param()
            .map(|scope| ("scope".to_owned(), Param::Text(scope)));
        let params = self
            .params
            .iter()
            .map(|(k, v)| (k.clone(), Param::Text(v.clone())));
        self.client
            .token_request("client_credentials", scope.into_iter().chain(params))
    }
}

#[async_trait::async_trait]
impl TokenSource for ClientCredentialsSource {
    async fn fetch(&self, cx: &FetchContext) -> Result<Token, Error> {
        self.engine()
            .request_token(&[], &ErrorShape::oauth2(), cx)
            .await
    }

    fn api_origins(&self) -> Vec<Url> {
        self.api_scope.clone()
    }

    fn allows_insecure_http(&self) -> bool {
        self.client.allow_insecure_http
    }

    fn name(&self) -> &str {
        "oauth2_client_credentials"
    }

    fn endpoint(&self) -> Option<&Url> {
        Some(&self.client.token_url)
    }
}

/// The client credentials middleware.
pub type ClientCredentialsAuth = AuthMiddleware<ClientCredentialsSource>;

impl AuthMiddleware<ClientCredentialsSource> {
    /// A client-credentials layer: tokens from `token_url`, attached to requests for the
    /// origin of `api`. For other settings build a [`ClientCredentialsSource`] and use
    /// [`AuthMiddleware::builder`](crate::AuthMiddleware::builder).
    pub fn new(
        token_url: TokenUrl,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        api: &Url,
    ) -> Self {
        Self::from_source(
            ClientCredentialsSource::new(token_url, client_id, client_secret).add_origin(api),
        )
    }
}
