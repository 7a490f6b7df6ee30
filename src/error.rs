//! The one error type of the crate.
//!
//! Inside a [`reqwest_middleware::ClientWithMiddleware`] the layer returns it in
//! [`reqwest_middleware::Error::Middleware`], under a message of the layer's own ("could not
//! authorize the request") whose `source()` is the [`Error`]. [`Error::from_middleware`] gets
//! it back, also from behind other layers (reqwest-retry's `RetryError`); [`Error::find`] finds
//! it in any error's `source()` chain (an `anyhow::Error` with context, your own error type):
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

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

/// Everything that can go wrong while obtaining or attaching a token.
///
/// `Display` never contains a secret (credentials, tokens, refresh tokens): messages taken
/// from a partner's response are cut short and scrubbed of the credentials that were sent.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The token endpoint rejected the credentials (or the request made of them).
    ///
    /// Not retried: the same credentials would be rejected again.
    #[error("invalid credentials: {message}")]
    InvalidCredentials {
        /// The partner's own message (for example `Invalid API credentials`).
        message: String,
        /// The machine-readable error code, where the partner sends one (`invalid_client`).
        code: Option<String>,
    },

    /// The token endpoint failed in a way that is not about the credentials (a 5xx, a 429,
    /// an unexpected status).
    #[error("token endpoint answered {status}: {excerpt}")]
    TokenEndpoint {
        /// The HTTP status the endpoint answered with.
        status: StatusCode,
        /// The start of the response body, scrubbed of secrets.
        excerpt: String,
        /// How long the endpoint asked us to wait (`Retry-After`), if it did.
        retry_after: Option<Duration>,
    },

    /// The token endpoint answered success, but the body is not a usable token response.
    #[error("malformed token response: {0}")]
    MalformedResponse(Malformed),

    /// The token endpoint could not be reached, or did not answer in time.
    #[error("token endpoint unreachable: {message}")]
    Transport {
        /// What failed, without the URL (URLs may carry credentials in their query).
        message: String,
        /// The underlying error, with its URL removed.
        #[source]
        source: Arc<reqwest::Error>,
    },

    /// The login is dead (its refresh token expired, reused or revoked, the login past its
    /// session limit, or no login stored): a person has to log in again. Not retried.
    #[error("re-authorisation required: {message}")]
    ReauthorizationRequired {
        /// Why, for code to act on.
        reason: ReauthorizationReason,
        /// The authorization server's own explanation, or ours.
        message: String,
    },

    /// An OAuth 2.0 error response (RFC 6749 §5.2 / §4.1.2.1) that is not about the client's
    /// credentials, such as `invalid_scope` or `unsupported_grant_type`.
    #[error("oauth2 error {code}{}", description.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    OAuth {
        /// The `error` code.
        code: OAuthErrorCode,
        /// The `error_description`, if any.
        description: Option<String>,
    },

    /// The authorisation callback does not belong to the login this process started, or is
    /// not a usable callback; [`CallbackError`] says which.
    #[error("authorisation callback rejected: {0}")]
    Callback(CallbackError),

    /// A request would have sent credentials over plain `http://` to a host that is not
    /// loopback. Nothing was sent. Opt in with `allow_insecure_http()` if this is intended.
    #[error("refusing to send credentials over plain http to {origin}")]
    InsecureTransport {
        /// The origin the request was for.
        origin: String,
    },

    /// The layer has no credential for this request: a request naming a key (a Pentaleap
    /// publisher id in its path) for which none was configured, or naming none where there is
    /// no default. Nothing was sent.
    #[error("no credential configured for {}", key.as_deref().map(|k| format!("`{k}`")).unwrap_or_else(|| "requests that name none".to_owned()))]
    NoCredential {
        /// The key the request named (not a secret: an id such as a publisher id), or `None`
        /// when it named none and there is no default credential.
        key: Option<String>,
    },

    /// A [`TokenStore`](crate::store::TokenStore) could not load, save or lock; [`StoreError::kind`]
    /// says why (a corrupt file, an I/O failure, a lock that was not free in time, ...).
    #[error("token store: {0}")]
    Store(#[source] StoreError),

    /// The configuration given to a constructor is not usable. Returned only while building
    /// (constructors, `from_env`, `begin_login`), never by a request.
    #[error("invalid configuration: {0}")]
    Config(ConfigError),

    /// The task fetching the token panicked (a bug in a custom [`TokenSource`](crate::TokenSource)).
    #[error("token source panicked")]
    SourcePanicked,

    /// The token fetch did not finish within the cache's fetch deadline (a token endpoint or
    /// store that hangs). Transient: a later request starts a new fetch.
    #[error("token fetch did not finish within {}", humantime_secs(*.deadline))]
    FetchTimeout {
        /// The deadline that passed.
        deadline: Duration,
    },

    /// The token fetch was cancelled before it finished: the tokio runtime it ran on shut
    /// down. Transient: a later request starts a new fetch.
    #[error("token fetch was cancelled (its runtime shut down)")]
    FetchCancelled,
}

/// `1.5s`, `30s`, `250ms`: a short rendering of a duration for messages.
fn humantime_secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Why a login has to be renewed by a person ([`Error::ReauthorizationRequired`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReauthorizationReason {
    /// The authorization server refused the refresh token just now (`invalid_grant`: expired,
    /// reused or revoked).
    Refused,
    /// The stored login was refused earlier and is marked dead
    /// ([`StoredTokens::dead`](crate::store::StoredTokens::dead)); nothing was sent.
    DeadLogin,
    /// The login is older than the source's session limit; nothing was sent.
    SessionExpired,
    /// No login (or no refresh token) is stored under the key; nothing was sent.
    NoLogin,
}

/// What is wrong with a configuration ([`Error::Config`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A required environment variable is not set (or not Unicode).
    #[error("environment variable {name} is not set")]
    MissingEnv {
        /// The variable.
        name: &'static str,
    },
    /// An environment variable holds something else than expected.
    #[error("environment variable {name} is not {expected}")]
    InvalidEnv {
        /// The variable.
        name: &'static str,
        /// What it should hold ("an integer").
        expected: &'static str,
    },
    /// A URL does not parse.
    #[error("invalid {role} url")]
    InvalidUrl {
        /// Which URL ("base", "token", "authorize").
        role: &'static str,
        /// Why it does not parse.
        #[source]
        source: url::ParseError,
    },
    /// A value that must travel in a header has characters no header may carry (CR, LF,
    /// other controls).
    #[error("{what} cannot travel in an http header")]
    NotAHeaderValue {
        /// What the value is ("api key").
        what: &'static str,
    },
    /// A value is empty or blank.
    #[error("{what} is empty")]
    Empty {
        /// What the value is.
        what: &'static str,
    },
    /// A setting an operation needs was not given.
    #[error("{what} is not set")]
    Missing {
        /// The setting ("redirect uri").
        what: &'static str,
    },
}

/// Why an authorisation callback was rejected ([`Error::Callback`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// The callback carries no `state`.
    #[error("state is missing")]
    StateMissing,
    /// The callback's `state` is not this login's: a possible CSRF attempt.
    #[error("state does not match this login")]
    StateMismatch,
    /// The callback names another issuer than the client's (RFC 9207): a possible mix-up
    /// attack.
    #[error("the callback comes from another issuer")]
    IssuerMismatch,
    /// A parameter (`code`, `state`, `error`, `iss`) appears more than once (RFC 6749 §3.1).
    #[error("parameter `{0}` appears more than once")]
    RepeatedParameter(&'static str),
    /// The callback carries neither a `code` nor an `error`.
    #[error("no code in the callback")]
    CodeMissing,
}

/// Why a [`TokenStore`](crate::store::TokenStore) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// Reading or writing the storage failed (a full disk, a missing directory, a path that
    /// is a directory); [`StoreError::io_error`] has the cause.
    Io,
    /// The process may not read or write the storage (file or directory permissions);
    /// [`StoreError::io_error`] has the cause.
    PermissionDenied,
    /// The storage holds something that cannot be read back (truncated, not JSON, an unknown
    /// version, a value out of range). It is left as it is for a person to look at.
    Corrupt,
    /// The lock of a credential was not free within the store's lock timeout (another task or
    /// process holds it, or froze while holding it).
    LockTimeout,
    /// The storage is not safe to use: a token or lock file that is a symbolic link or is
    /// owned by another user.
    Insecure,
    /// The tokens cannot be stored as they are (a time before 1970).
    Unsupported,
    /// A shared store's server (Redis) cannot be reached or did not answer in time;
    /// [`StoreError::io_error`] has the cause. Transient: a later call tries again.
    Unavailable,
    /// Anything else (a store of your own may use it).
    Other,
}

/// A [`TokenStore`](crate::store::TokenStore) failure: what kind, a message naming what failed
/// (a path, never a token), and the I/O error behind it if there is one.
#[derive(Debug, Clone)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    source: Option<Arc<std::io::Error>>,
}

impl StoreError {
    /// A store error of `kind`. `message` says what failed; it must not contain a secret.
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A [`StoreErrorKind::Io`] error caused by `source`
    /// ([`StoreErrorKind::PermissionDenied`] when that is what `source` says).
    pub fn io(message: impl Into<String>, source: std::io::Error) -> Self {
        let kind = if source.kind() == std::io::ErrorKind::PermissionDenied {
            StoreErrorKind::PermissionDenied
        } else {
            StoreErrorKind::Io
        };
        Self {
            kind,
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// A [`StoreErrorKind::Unavailable`] error caused by `source`.
    pub fn unavailable(message: impl Into<String>, source: std::io::Error) -> Self {
        Self {
            kind: StoreErrorKind::Unavailable,
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The I/O error behind it, if any (its [`kind`](std::io::Error::kind) tells a
    /// permission problem from a full disk).
    pub fn io_error(&self) -> Option<&std::io::Error> {
        self.source.as_deref()
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        Error::Store(err)
    }
}

/// What was wrong with a token endpoint's success response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The body was empty.
    #[error("empty body")]
    EmptyBody,
    /// The body was larger than the size cap.
    #[error("body larger than {limit} bytes")]
    TooLarge {
        /// The cap, in bytes.
        limit: usize,
    },
    /// The body looks like an HTML page, not the expected format.
    #[error("html page instead of a token response")]
    Html,
    /// The body is not valid JSON (or not a JSON object).
    #[error("invalid json: {0}")]
    InvalidJson(String),
    /// The body is not valid UTF-8 text.
    #[error("body is not utf-8 text")]
    NotUtf8,
    /// A required field is missing.
    #[error("missing field `{0}`")]
    MissingField(String),
    /// A field has the wrong type or an unusable value.
    #[error("field `{field}` {problem}")]
    InvalidField {
        /// The field name.
        field: String,
        /// What is wrong with it (never its value).
        problem: String,
    },
    /// The token contains bytes that cannot travel in an HTTP header (CR, LF, controls).
    #[error("token contains characters that are illegal in an http header")]
    IllegalHeaderValue,
    /// The token is empty (or only whitespace).
    #[error("empty token")]
    EmptyToken,
    /// The body is in another format than the one the contract names.
    #[error("expected {expected}, got {found}")]
    UnexpectedContentType {
        /// The format the contract names.
        expected: String,
        /// What came instead.
        found: String,
    },
}

impl Error {
    /// Finds this crate's error inside an error returned by a `ClientWithMiddleware`, also when
    /// other layers wrapped it (reqwest-retry's `RetryError`, in either variant).
    ///
    /// The same as [`Error::find`] on `err`. Returns `None` when the failure did not come from
    /// this crate (a plain transport error of the API call itself, for example).
    ///
    /// ```no_run
    /// use reqwest_middleware::{ClientBuilder, Middleware};
    /// use reqwest_partner_auth::Error;
    /// use reqwest_retry::{policies::ExponentialBackoff, RetryTransientMiddleware};
    ///
    /// // `auth`: a layer of this crate, such as `targeter::Auth::new(credentials)`.
    /// # async fn run(auth: impl Middleware) {
    /// let client = ClientBuilder::new(reqwest::Client::new())
    ///     .with(RetryTransientMiddleware::new_with_policy(
    ///         ExponentialBackoff::builder().build_with_max_retries(3),
    ///     ))
    ///     .with(auth)
    ///     .build();
    /// if let Err(err) = client.get("https://storhaug.targeter.tech/api/campaign").send().await {
    ///     // `err` holds reqwest-retry's `RetryError`, which holds the layer's error.
    ///     if let Some(Error::InvalidCredentials { message, .. }) = Error::from_middleware(&err) {
    ///         eprintln!("check the credentials: {message}");
    ///     }
    /// }
    /// # }
    /// ```
    pub fn from_middleware(err: &reqwest_middleware::Error) -> Option<&Error> {
        Error::find(err)
    }

    /// Finds this crate's error in `err` or in its chain of `source()`s: the first one there.
    ///
    /// Works on a `reqwest_middleware::Error` (as [`Error::from_middleware`]), on an
    /// `anyhow::Error` that one was turned into, with any number of `.context(..)` layers (pass
    /// `err.as_ref()`), and on errors of your own whose `source()` leads to one.
    ///
    /// This works through wrappers that are `#[error(transparent)]` (such as
    /// `reqwest_middleware::Error` and reqwest-retry's `RetryError::Error`), whose `source()`
    /// is their inner error's `source()`, because the layer never hands out an [`Error`] bare:
    /// it travels under a message of the layer's own ("could not authorize the request")
    /// whose `source()` it is.
    ///
    /// ```
    /// use anyhow::Context;
    /// use reqwest_partner_auth::Error;
    ///
    /// # fn main() {
    /// # let from_the_client: reqwest_middleware::Error = Error::FetchCancelled.into();
    /// // An error a `ClientWithMiddleware` returned, with context added on its way up.
    /// let err: anyhow::Error = Err::<(), _>(from_the_client)
    ///     .context("fetching campaigns")
    ///     .context("nightly sync")
    ///     .unwrap_err();
    ///
    /// assert!(matches!(Error::find(err.as_ref()), Some(Error::FetchCancelled)));
    /// assert_eq!(
    ///     format!("{err:#}"),
    ///     "nightly sync: fetching campaigns: could not authorize the request: \
    ///      token fetch was cancelled (its runtime shut down)",
    /// );
    /// # }
    /// ```
    pub fn find<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Error> {
        let mut next = Some(err);
        while let Some(err) = next {
            if let Some(found) = err.downcast_ref::<Error>() {
                return Some(found);
            }
            next = match err.downcast_ref::<reqwest_middleware::Error>() {
                // Transparent: its `source()` skips the error it holds, which may be ours when
                // it was put there by hand (`reqwest_middleware::Error::middleware(err)`).
                Some(reqwest_middleware::Error::Middleware(inner)) => {
                    if let Some(found) = inner.downcast_ref::<Error>() {
                        return Some(found);
                    }
                    inner.source()
                }
                _ => err.source(),
            };
        }
        None
    }

    /// `true` when trying again later may succeed: transport errors, 5xx, 429 and 408, a fetch
    /// that ran past its deadline or was cancelled, a store whose lock another process held
    /// past the wait ([`StoreErrorKind::LockTimeout`]) or whose server cannot be reached
    /// ([`StoreErrorKind::Unavailable`]).
    ///
    /// Credential rejections, dead refresh tokens, malformed responses and a store that is
    /// corrupt, insecure or refused are not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::FetchTimeout { .. } | Error::FetchCancelled => true,
            Error::Store(e) => matches!(
                e.kind(),
                StoreErrorKind::LockTimeout | StoreErrorKind::Unavailable
            ),
            Error::TokenEndpoint { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::REQUEST_TIMEOUT
            }
            _ => false,
        }
    }

    /// How long the endpoint asked to wait before the next attempt, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::TokenEndpoint { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Builds an [`Error::Transport`] from a reqwest error, dropping its URL (URLs may carry
    /// credentials in their query string).
    pub fn from_reqwest(err: reqwest::Error) -> Self {
        let err = err.without_url();
        let message = if err.is_timeout() {
            "timed out".to_owned()
        } else if err.is_connect() {
            "connection failed".to_owned()
        } else if err.is_body() || err.is_decode() {
            "reading the response body failed".to_owned()
        } else {
            "request failed".to_owned()
        };
        Error::Transport {
            message,
            source: Arc::new(err),
        }
    }

    pub(crate) fn malformed(m: Malformed) -> Self {
        Error::MalformedResponse(m)
    }
}

/// What a layer's failure reads as at the top of a `reqwest_middleware::Error`.
const LAYER_FAILED: &str = "could not authorize the request";

/// How the layers hand their [`Error`] to the middleware chain: as the `source()` of the
/// message "could not authorize the request" (an anyhow context), so that the chain of
/// `source()`s leads to it even behind wrappers that are `#[error(transparent)]` (which skip
/// the error they hold), and its `Display` is not repeated. [`Error::find`] and
/// [`Error::from_middleware`] find it; so does `anyhow::Error::downcast_ref::<Error>()` on the
/// `Middleware` variant (anyhow downcasts a context to the error under it).
impl From<Error> for reqwest_middleware::Error {
    fn from(err: Error) -> Self {
        reqwest_middleware::Error::Middleware(anyhow::Error::new(err).context(LAYER_FAILED))
    }
}

/// The `error` codes of RFC 6749 (§4.1.2.1 and §5.2), plus whatever else a server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_client`
    InvalidClient,
    /// `invalid_grant`
    InvalidGrant,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `invalid_scope`
    InvalidScope,
    /// `access_denied` (authorisation callback)
    AccessDenied,
    /// `unsupported_response_type` (authorisation callback)
    UnsupportedResponseType,
    /// `server_error`
    ServerError,
    /// `temporarily_unavailable`
    TemporarilyUnavailable,
    /// Any other code, as sent.
    Other(String),
}

impl OAuthErrorCode {
    /// Parses an `error` value.
    pub fn parse(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            "access_denied" => Self::AccessDenied,
            "unsupported_response_type" => Self::UnsupportedResponseType,
            "server_error" => Self::ServerError,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The code as it travels on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::Other(s) => s,
        }
    }
}

impl std::fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permission_problem_is_its_own_store_error_kind_and_keeps_its_cause() {
        let denied = StoreError::io(
            "cannot read token file /x",
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(denied.kind(), StoreErrorKind::PermissionDenied);
        assert_eq!(
            std::error::Error::source(&denied)
                .and_then(|e| e.downcast_ref::<std::io::Error>())
                .map(std::io::Error::kind),
            Some(std::io::ErrorKind::PermissionDenied)
        );
        let full = StoreError::io(
            "cannot write token file /x",
            std::io::Error::from(std::io::ErrorKind::StorageFull),
        );
        assert_eq!(full.kind(), StoreErrorKind::Io);
    }

    /// A store lock another process holds past the wait, or a store server that cannot be
    /// reached, may well work a moment later; a corrupt, insecure or forbidden store will not.
    #[test]
    fn a_busy_or_unreachable_store_is_transient_a_broken_one_is_not() {
        let store = |kind| Error::Store(StoreError::new(kind, "store"));
        assert!(store(StoreErrorKind::LockTimeout).is_transient());
        assert!(store(StoreErrorKind::Unavailable).is_transient());
        for kind in [
            StoreErrorKind::Io,
            StoreErrorKind::PermissionDenied,
            StoreErrorKind::Corrupt,
            StoreErrorKind::Insecure,
            StoreErrorKind::Unsupported,
            StoreErrorKind::Other,
        ] {
            assert!(!store(kind).is_transient(), "{kind:?}");
        }
    }
}
