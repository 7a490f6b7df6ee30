//! The token engine: [`HttpTokenSource`], the one implementation behind every "POST
//! credentials, get a token" partner, and the guide to adding one.
//!
//! Partners differ in how credentials travel ([`Encoding`]: JSON, form, query parameters,
//! HTTP Basic), where the token and its lifetime are in the answer ([`ResponseShape`]:
//! snake_case or camelCase fields, a plain-text body) and how errors look ([`ErrorShape`]:
//! which fields hold a code and a message, which codes mean bad credentials or a dead login).
//! Those are configuration here; fetching, the body size cap, parsing, expiry, error mapping
//! and the scrubbing of secrets from error text are written once.
//!
//! # Adding a partner
//!
//! **1. Describe its token request.** Read the partner's contract for the endpoint, the
//! encoding, the parameter names and types, the answer's fields and its error bodies:
//!
//! ```
//! use std::time::Duration;
//! use reqwest_partner_auth::engine::{Encoding, ErrorShape, HttpTokenSource, Param, ResponseShape};
//! use reqwest_partner_auth::AuthMiddleware;
//! use url::Url;
//!
//! # fn main() -> Result<(), url::ParseError> {
//! let source = HttpTokenSource::post(Url::parse("https://auth.partner.example/v2/token")?)
//!     .encoding(Encoding::Json)
//!     .param("partner_id", Param::Integer(42))
//!     .param("key", Param::text("my-key"))
//!     .param("secret", Param::secret("my-secret")) // scrubbed from every error and log
//!     .response(ResponseShape::json("token").with_expires_in("ttl"))
//!     .errors(ErrorShape::default().credential_codes(&["bad_key"]))
//!     .default_lifetime(Duration::from_secs(15 * 60)) // when the answer says nothing
//!     .add_origin(&Url::parse("https://api.partner.example")?);
//! # let _ = source; Ok(()) }
//! ```
//!
//! **2. Put it in a layer.** `AuthMiddleware::from_source(source)`, or
//! [`AuthMiddleware::builder`](crate::AuthMiddleware::builder) for other settings:
//!
//! ```
//! # use reqwest_partner_auth::engine::{HttpTokenSource, ResponseShape};
//! # use reqwest_partner_auth::AuthMiddleware;
//! # let source = HttpTokenSource::post(url::Url::parse("https://auth.partner.example/v2/token").unwrap())
//! #     .response(ResponseShape::json("token"));
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(AuthMiddleware::from_source(source))
//!     .build();
//! # let _ = client;
//! ```
//!
//! That is the whole integration: the layer caches, refreshes ahead, replays after a `401`,
//! retries transient failures, scopes and redacts as for the built-in partners.
//!
//! **3. Give it a module of its own (optional).** The built-in partners wrap their
//! configuration in three small types, so users see the partner's words rather than the
//! engine's: `Credentials` (plain data with a redacting `Debug` and `from_env`), `Source` (the
//! configured engine, delegating [`TokenSource`] to it), and
//! `Auth = AuthMiddleware<Source>` with `new` and `with_base_url`. The Targeter module
//! (`src/targeter.rs`) is the model: its contract-specific code is the dozen lines of step 1.
//!
//! ```
//! use reqwest_partner_auth::engine::{HttpTokenSource, Param, ResponseShape};
//! use reqwest_partner_auth::{async_trait, AuthMiddleware, Error, FetchContext, Token, TokenSource};
//! use url::Url;
//!
//! /// Acme's token source.
//! #[derive(Debug, Clone)]
//! pub struct Source(HttpTokenSource);
//!
//! impl Source {
//!     pub fn with_base_url(key: &str, secret: &str, base: &Url) -> Self {
//!         Self(
//!             HttpTokenSource::post(base.join("/oauth/token").expect("a static path"))
//!                 .param("key", Param::text(key))
//!                 .param("secret", Param::secret(secret))
//!                 .response(ResponseShape::oauth2())
//!                 .add_origin(base),
//!         )
//!     }
//! }
//!
//! #[async_trait]
//! impl TokenSource for Source {
//!     async fn fetch(&self, cx: &FetchContext) -> Result<Token, Error> {
//!         self.0.fetch(cx).await
//!     }
//!     fn api_origins(&self) -> Vec<Url> {
//!         self.0.api_origins()
//!     }
//!     fn allows_insecure_http(&self) -> bool {
//!         self.0.allows_insecure_http()
//!     }
//! }
//!
//! /// Acme's layer.
//! pub type Auth = AuthMiddleware<Source>;
//! # let _ = Auth::from_source(Source::with_base_url("k", "s", &Url::parse("https://acme.example").unwrap()));
//! ```
//!
//! **4. Test it against its contract.** Point `with_base_url` at a local mock server and
//! assert the exact request the partner receives (method, path, content type, body) and the
//! mapping of each documented answer: success, each error body, a 5xx (retried), bad
//! credentials (not retried, [`Error::InvalidCredentials`]).
//! This crate's own partner tests run the tables every partner shares (malformed answers,
//! secrets in errors, `from_env`) from one harness over per-partner descriptors
//! (`tests/partners.rs`): a new partner adds a descriptor.
//!
//! A partner whose dance is not one request (a login, a signed assertion, a two-step
//! exchange) implements [`TokenSource`] directly.

pub(crate) mod response;

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::error::Error;
use crate::middleware::scope::check_transport;
use crate::source::{FetchContext, TokenSource};
use crate::token::{Expiry, Token};
use response::read_capped;
pub use response::{ErrorShape, ResponseShape, DEFAULT_MAX_BODY};

/// Timeout of a whole token request (connecting, sending, reading the answer), applied to
/// every token request whatever client makes it; change it with
/// [`HttpTokenSource::timeout`] (or `timeout` on the OAuth 2.0 sources).
pub const DEFAULT_TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the client a source builds itself waits to connect to the token endpoint
/// (resolving the name, connecting, the TLS handshake); change it with
/// [`HttpTokenSource::connect_timeout`] (or `connect_timeout` on the partner and OAuth 2.0
/// sources). A client given with `http_client` keeps its own.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The `reqwest::Client` token endpoints are called with unless one is given: 10 s timeout,
/// 5 s connect timeout ([`DEFAULT_CONNECT_TIMEOUT`]), and no redirects (a redirect must not
/// carry credentials elsewhere).
pub fn default_token_client() -> reqwest::Client {
    token_client(DEFAULT_CONNECT_TIMEOUT)
}

/// [`default_token_client`] with another connect timeout.
fn token_client(connect_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(DEFAULT_TOKEN_TIMEOUT)
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

/// The client a token source calls its endpoint with: one it builds itself, whose connect
/// timeout is the source's setting, or one the user gave, whose own settings rule (reqwest
/// cannot change a connect timeout per request). A given client wins whichever setter comes
/// first.
#[derive(Clone)]
pub(crate) enum TokenClient {
    /// Built by the source, with this connect timeout.
    Built {
        client: reqwest::Client,
        connect_timeout: Duration,
    },
    /// Given through `http_client`.
    Given(reqwest::Client),
}

impl TokenClient {
    /// The [`default_token_client`].
    pub(crate) fn new() -> Self {
        Self::Built {
            client: default_token_client(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// A built client with `connect_timeout` (built again only if it changes); a given client
    /// stays as it is.
    pub(crate) fn connect_timeout(self, connect_timeout: Duration) -> Self {
        match self {
            Self::Built {
                connect_timeout: current,
                ..
            } if current != connect_timeout => Self::Built {
                client: token_client(connect_timeout),
                connect_timeout,
            },
            unchanged => unchanged,
        }
    }

    /// The client to send with.
    pub(crate) fn get(&self) -> &reqwest::Client {
        match self {
            Self::Built { client, .. } | Self::Given(client) => client,
        }
    }
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Built {
                connect_timeout, ..
            } => f
                .debug_struct("Built")
                .field("connect_timeout", connect_timeout)
                .finish_non_exhaustive(),
            Self::Given(_) => f.write_str("Given"),
        }
    }
}

/// How credentials travel to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Encoding {
    /// A JSON object body (`application/json`).
    Json,
    /// A form body (`application/x-www-form-urlencoded`).
    Form,
    /// Query-string parameters on an empty POST. Servers and proxies log URLs: use only
    /// where a partner accepts nothing else.
    Query,
}

/// One request parameter. Secret values are redacted in `Debug` and scrubbed from errors.
#[derive(Clone)]
#[non_exhaustive]
pub enum Param {
    /// A plain string.
    Text(String),
    /// A secret string.
    Secret(SecretString),
    /// An integer (a JSON number in [`Encoding::Json`]).
    Integer(i64),
}

impl Param {
    /// A plain string parameter.
    pub fn text(value: impl Into<String>) -> Self {
        Self::Text(value.into())
    }

    /// An integer parameter (a JSON number in [`Encoding::Json`]).
    pub fn integer(value: i64) -> Self {
        Self::Integer(value)
    }

    /// A secret string parameter.
    pub fn secret(value: impl Into<String>) -> Self {
        Self::Secret(SecretString::from(value.into()))
    }

    fn as_text(&self) -> String {
        match self {
            Self::Text(s) => s.clone(),
            Self::Secret(s) => s.expose_secret().to_owned(),
            Self::Integer(i) => i.to_string(),
        }
    }

    fn as_json(&self) -> serde_json::Value {
        match self {
            Self::Integer(i) => (*i).into(),
            other => other.as_text().into(),
        }
    }
}

impl fmt::Debug for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(s) => f.debug_tuple("Text").field(s).finish(),
            Self::Secret(_) => f.write_str("Secret([redacted])"),
            Self::Integer(i) => f.debug_tuple("Integer").field(i).finish(),
        }
    }
}

/// A token source for partners that answer one POST with a token.
///
/// Configured with [`encoding`](Self::encoding), [`param`](Self::param),
/// [`response`](Self::response) and [`errors`](Self::errors); the providers of this crate are
/// such configurations.
///
/// Token requests never follow redirects, whatever [`http_client`](Self::http_client) is
/// given: the body is sent as a stream (which reqwest does not re-send on a 307/308), and any
/// 3xx answer is an [`Error::TokenEndpoint`] with that status saying so; so is an answer from
/// another URL than the one asked (a 301/302/303 a redirect-following client turned into a
/// body-less `GET`, reported as `302 Found` since the client does not keep the status).
/// Configure the token URL the redirect points to instead.
#[derive(Clone)]
pub struct HttpTokenSource {
    client: TokenClient,
    url: Url,
    encoding: Encoding,
    params: Vec<(String, Param)>,
    basic_auth: Option<(String, SecretString)>,
    response: ResponseShape,
    errors: ErrorShape,
    scope: Vec<Url>,
    default_lifetime: Option<Duration>,
    max_body: usize,
    timeout: Duration,
    allow_insecure_http: bool,
    /// The name spans, metrics and observers show.
    name: std::borrow::Cow<'static, str>,
}

impl fmt::Debug for HttpTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTokenSource")
            .field("url", &self.url.as_str())
            .field("encoding", &self.encoding)
            .field("params", &self.params)
            .field(
                "basic_auth",
                &self.basic_auth.as_ref().map(|(id, _)| (id, "[redacted]")),
            )
            .field("response", &self.response)
            .field("timeout", &self.timeout)
            .field("client", &self.client)
            .field(
                "scope",
                &self.scope.iter().map(Url::as_str).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl HttpTokenSource {
    /// A source that POSTs to `url`: JSON encoding, OAuth 2.0 response and error shapes,
    /// scoped to no origin until [`add_origin`](Self::add_origin).
    pub fn post(url: Url) -> Self {
        Self::post_with(url, TokenClient::new())
    }

    /// [`post`](Self::post) with `client`: an OAuth 2.0 client's, as its settings made it
    /// (no default client built to be dropped).
    pub(crate) fn post_with(url: Url, client: TokenClient) -> Self {
        Self {
            client,
            url,
            encoding: Encoding::Json,
            params: Vec::new(),
            basic_auth: None,
            response: ResponseShape::oauth2(),
            errors: ErrorShape::default(),
            scope: Vec::new(),
            default_lifetime: None,
            max_body: DEFAULT_MAX_BODY,
            timeout: DEFAULT_TOKEN_TIMEOUT,
            allow_insecure_http: false,
            name: std::borrow::Cow::Borrowed("http"),
        }
    }

    /// The name spans, metrics and observers show for this source (default `http`): the
    /// partner's, such as `acme`. Not a secret.
    pub fn named(mut self, name: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        self.name = name.into();
        self
    }

    /// How the parameters travel.
    pub fn encoding(mut self, encoding: Encoding) -> Self {
        self.encoding = encoding;
        self
    }

    /// Adds a request parameter.
    pub fn param(mut self, name: impl Into<String>, value: Param) -> Self {
        self.params.push((name.into(), value));
        self
    }

    /// Sends `Authorization: Basic` with these client credentials (RFC 6749 §2.3.1).
    pub fn basic_auth(mut self, client_id: impl Into<String>, secret: SecretString) -> Self {
        self.basic_auth = Some((client_id.into(), secret));
        self
    }

    /// Where the token is in a success response.
    pub fn response(mut self, shape: ResponseShape) -> Self {
        self.response = shape;
        self
    }

    /// How error responses look.
    pub fn errors(mut self, shape: ErrorShape) -> Self {
        self.errors = shape;
        self
    }

    /// Adds an API origin (scheme, host and port of `url`) the layer attaches the token to.
    pub fn add_origin(mut self, url: &Url) -> Self {
        self.scope.push(url.clone());
        self
    }

    /// The lifetime assumed when neither `expires_in` nor a JWT `exp` says one (a partner that
    /// documents "valid for 15 minutes"). Default: unknown, the token lives until a 401.
    pub fn default_lifetime(mut self, lifetime: Duration) -> Self {
        self.default_lifetime = Some(lifetime);
        self
    }

    /// The `reqwest::Client` the token endpoint is called with (TLS roots, proxies). Use one
    /// without the caller's middleware: auth must not recurse. Default
    /// [`default_token_client`].
    ///
    /// Whatever client is given, token requests follow no redirect and are cut off after
    /// [`timeout`](Self::timeout) (which replaces the client's own timeout). Its connect
    /// timeout is its own: [`connect_timeout`](Self::connect_timeout) does not change it,
    /// whether it is called before or after this (reqwest cannot change it per request).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = TokenClient::Given(client);
        self
    }

    /// How long a connect to the token endpoint may take (resolving the name, connecting,
    /// the TLS handshake; default [`DEFAULT_CONNECT_TIMEOUT`], 5 s), within
    /// [`timeout`](Self::timeout): a connect that hangs fails with an [`Error::Transport`]
    /// whose source says connect and timeout, and is retried as a transient failure.
    ///
    /// It applies to the client the source builds itself; a client given with
    /// [`http_client`](Self::http_client), before or after this call, keeps its own connect
    /// timeout (reqwest cannot change it per request): set it on that client's builder.
    pub fn connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.client = self.client.connect_timeout(connect_timeout);
        self
    }

    /// How long one token request may take, from connecting to the end of the answer
    /// (default [`DEFAULT_TOKEN_TIMEOUT`], 10 s). Set per request, so it applies to a client
    /// given with [`http_client`](Self::http_client) too, in place of that client's timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Cap on the response body size. Default [`DEFAULT_MAX_BODY`].
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Allows plain `http://` to a host that is not loopback, for the token endpoint and for
    /// the API requests a layer over this source authorizes alike: the one switch for both.
    ///
    /// **Security warning:** credentials and tokens travel readable by anyone on the path.
    pub fn allow_insecure_http(mut self) -> Self {
        self.allow_insecure_http = true;
        self
    }

    /// The token endpoint URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    fn secrets(&self) -> Vec<&SecretString> {
        self.params
            .iter()
            .filter_map(|(_, p)| match p {
                Param::Secret(s) => Some(s),
                _ => None,
            })
            .chain(self.basic_auth.as_ref().map(|(_, s)| s))
            .collect()
    }

    /// The body and content type of a request with `params`; `None` for [`Encoding::Query`],
    /// whose parameters go in the URL.
    fn body<'a>(
        &self,
        params: impl Iterator<Item = (&'a str, &'a Param)>,
        url: &mut Url,
    ) -> (Vec<u8>, &'static str) {
        match self.encoding {
            Encoding::Json => {
                let body: serde_json::Map<String, serde_json::Value> =
                    params.map(|(k, v)| (k.to_owned(), v.as_json())).collect();
                // A map of strings and numbers always serialises.
                let bytes = serde_json::to_vec(&body).unwrap_or_default();
                (bytes, "application/json")
            }
            Encoding::Form => {
                let mut form = url::form_urlencoded::Serializer::new(String::new());
                for (k, v) in params {
                    form.append_pair(k, &v.as_text());
                }
                (form.finish().into_bytes(), FORM)
            }
            Encoding::Query => {
                // Parameters in the URL, an empty body: still a form request, as partners that
                // read "request parameters" (Java servlets) document it.
                {
                    let mut query = url.query_pairs_mut();
                    for (k, v) in params {
                        query.append_pair(k, &v.as_text());
                    }
                }
                if url.query() == Some("") {
                    url.set_query(None);
                }
                (Vec::new(), FORM)
            }
        }
    }

    /// Sends the token request with `extra` parameters after the configured ones, and parses
    /// the answer. Used by the OAuth 2.0 sources, whose grant parameters change per call.
    pub(crate) async fn request_token(
        &self,
        extra: &[(&str, Param)],
        errors: &ErrorShape,
        cx: &FetchContext,
    ) -> Result<Token, Error> {
        check_transport(&self.url, self.allow_insecure_http)?;
        let params = self
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v))
            .chain(extra.iter().map(|(k, v)| (*k, v)));
        let mut url = self.url.clone();
        let (body, content_type) = self.body(params, &mut url);
        // The secrets an error text must not show: every secret parameter, and the exact
        // Basic credential sent (a partner may echo the `Authorization` header back).
        let mut secrets: Vec<SecretString> = self.secrets().into_iter().cloned().collect();
        secrets.extend(extra.iter().filter_map(|(_, p)| match p {
            Param::Secret(s) => Some(s.clone()),
            _ => None,
        }));
        let mut req = self
            .client
            .get()
            .post(url.clone())
            .timeout(self.timeout)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, body.len())
            .header(http::header::ACCEPT, accept(&self.response))
            // A stream body cannot be sent twice: reqwest does not follow a 307/308 with it,
            // so a redirect cannot carry the credentials elsewhere, whatever the client's
            // redirect policy. Content-Length is set above, so it is not sent chunked.
            .body(reqwest::Body::wrap_stream(futures_util::stream::once(
                futures_util::future::ready(Ok::<_, std::io::Error>(body)),
            )));
        if let Some((id, secret)) = &self.basic_auth {
            let credential = basic_credential(id, secret);
            let mut value =
                http::HeaderValue::try_from(format!("Basic {credential}")).map_err(|_| {
                    Error::InvalidCredentials {
                        message: "the client id cannot travel in a Basic header".to_owned(),
                        code: None,
                    }
                })?;
            value.set_sensitive(true);
            req = req.header(http::header::AUTHORIZATION, value);
            secrets.push(SecretString::from(credential));
        }
        tracing::debug!(url = %self.url.origin().ascii_serialization(), "requesting a token");
        let res = req.send().await.map_err(Error::from_reqwest)?;
        if res.status().is_redirection() {
            return Err(redirected(res.status()));
        }
        if !same_resource(res.url(), &url) {
            // The client followed a 301/302/303 (as a GET, without the body).
            return Err(redirected(http::StatusCode::FOUND));
        }
        let raw = read_capped(res, self.max_body, cx.clock().system_now()).await?;
        let secrets: Vec<&SecretString> = secrets.iter().collect();
        let token = raw.into_token(&self.response, errors, &secrets)?;
        Ok(match (token.expiry(), self.default_lifetime) {
            (Expiry::Unknown, Some(lifetime)) => token.expires_in(lifetime),
            _ => token,
        })
    }
}

const FORM: &str = "application/x-www-form-urlencoded";

/// The error for a token endpoint that redirected: not followed, not transient (the same
/// request would be redirected again); the token URL has to be configured as it is now.
fn redirected(status: http::StatusCode) -> Error {
    Error::TokenEndpoint {
        status,
        excerpt: "the token endpoint redirected; token requests do not follow redirects \
                  (configure the token url the redirect points to)"
            .into(),
        retry_after: None,
    }
}

/// Whether two URLs name the same resource (fragments never travel).
fn same_resource(a: &Url, b: &Url) -> bool {
    a[..url::Position::AfterQuery] == b[..url::Position::AfterQuery]
}

/// The HTTP Basic credential of a client (RFC 6749 §2.3.1):
/// `base64(form_encode(id) ":" form_encode(secret))`.
fn basic_credential(id: &str, secret: &SecretString) -> String {
    use base64::Engine as _;
    let pair = format!(
        "{}:{}",
        form_encode(id),
        form_encode(secret.expose_secret())
    );
    base64::engine::general_purpose::STANDARD.encode(pair)
}

fn accept(shape: &ResponseShape) -> &'static str {
    match shape {
        ResponseShape::Json { .. } => "application/json",
        ResponseShape::PlainText => "text/plain",
    }
}

/// RFC 6749 §2.3.1: client id and secret are form-encoded before Basic encoding.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[async_trait::async_trait]
impl TokenSource for HttpTokenSource {
    async fn fetch(&self, cx: &FetchContext) -> Result<Token, Error> {
        self.request_token(&[], &self.errors, cx).await
    }

    fn api_origins(&self) -> Vec<Url> {
        self.scope.clone()
    }

    fn allows_insecure_http(&self) -> bool {
        self.allow_insecure_http
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn endpoint(&self) -> Option<&Url> {
        Some(&self.url)
    }
}
