//! Channel manager (hotel connectivity): `POST /getToken` with `username` and `password`,
//! answered with a plain-text token.

use std::fmt;

use secrecy::SecretString;
use url::Url;

use crate::engine::{Encoding, ErrorShape, HttpTokenSource, Param, ResponseShape};
use crate::error::Error;
use crate::partner::{endpoint, env_var, partner_source};
use crate::AuthMiddleware;

/// The text the contract's server error carries for an unknown user.
pub const NOT_FOUND: &str = "Channel manager not found";

/// A channel user's name and password.
#[derive(Clone)]
pub struct Credentials {
    username: String,
    password: SecretString,
}

impl Credentials {
    /// The channel user's credentials.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: SecretString::from(password.into()),
        }
    }

    /// Reads `CHANNEL_MANAGER_USERNAME` and `CHANNEL_MANAGER_PASSWORD`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable that is not set.
    pub fn from_env() -> Result<Self, Error> {
        Ok(Self::new(
            env_var("CHANNEL_MANAGER_USERNAME")?,
            env_var("CHANNEL_MANAGER_PASSWORD")?,
        ))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("channel_manager::Credentials")
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// The channel manager's token source.
///
/// `username` and `password` travel as `application/x-www-form-urlencoded` request
/// parameters in the body (servers log query strings; use
/// [`credentials_in_query`](Self::credentials_in_query) only for a server that reads nothing
/// else). The answer is a `text/plain` token, trimmed and checked to be a legal header value;
/// its expiry is its JWT `exp` if it is a JWT, else it is used until a 401. The contract's
/// "Channel manager not found" (a server error) is an [`Error::InvalidCredentials`]; other 5xx
/// are transient.
#[derive(Debug, Clone)]
pub struct Source {
    inner: HttpTokenSource,
}

impl Source {
    /// The contract names no host: give the base URL of the connectivity API.
    pub fn with_base_url(credentials: Credentials, base: &Url) -> Self {
        let inner = HttpTokenSource::post(endpoint(base, "/getToken"))
            .named("channel_manager")
            .encoding(Encoding::Form)
            .param("username", Param::Text(credentials.username))
            .param("password", Param::Secret(credentials.password))
            .response(ResponseShape::PlainText)
            .errors(
                // A Java server's error page puts the exception text in `message`; its
                // `error` is the HTTP reason phrase ("Internal Server Error"), not a code.
                ErrorShape::default()
                    .code_field(None)
                    .message_fields(&["message", "error_description", "error"])
                    .credential_texts(&[NOT_FOUND]),
            )
            .add_origin(base);
        Self { inner }
    }

    /// Sends `username` and `password` in the query string instead of the body, as the
    /// contract's example does.
    ///
    /// **Security warning:** URLs end up in server and proxy logs.
    pub fn credentials_in_query(mut self) -> Self {
        self.inner = self.inner.encoding(Encoding::Query);
        self
    }
}

/// The channel manager layer: an [`AuthMiddleware`] over a channel manager [`Source`].
pub type Auth = AuthMiddleware<Source>;

partner_source!("the channel manager");
