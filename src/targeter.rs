//! Targeter: `POST /api/auth/token` with JSON `{api_key, api_secret}`; one-hour tokens.
//!
//! ```
//! use reqwest_partner_auth::targeter;
//!
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(targeter::Auth::new(targeter::Credentials::new("key", "secret")))
//!     .build();
//! # let _ = client;
//! ```
//!
//! A sandbox or a mock: [`Auth::with_base_url`]. Other settings (refresh skew, more origins):
//! [`AuthMiddleware::builder`](crate::AuthMiddleware::builder) over a [`Source`].

use std::fmt;

use secrecy::SecretString;
use url::Url;

use crate::engine::{ErrorShape, HttpTokenSource, Param, ResponseShape};
use crate::error::Error;
use crate::partner::{endpoint, env_var, parse_url, partner_source};
use crate::AuthMiddleware;

/// Targeter's production host, as its documentation names it.
pub const BASE_URL: &str = "https://storhaug.targeter.tech";

/// A Targeter API key and secret.
///
/// `Debug` shows the key, never the secret.
#[derive(Clone)]
pub struct Credentials {
    api_key: String,
    api_secret: SecretString,
}

impl Credentials {
    /// Credentials issued to your partnership.
    pub fn new(api_key: impl Into<String>, api_secret: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            api_secret: SecretString::from(api_secret.into()),
        }
    }

    /// Reads `TARGETER_API_KEY` and `TARGETER_API_SECRET`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable that is not set.
    pub fn from_env() -> Result<Self, Error> {
        Ok(Self::new(
            env_var("TARGETER_API_KEY")?,
            env_var("TARGETER_API_SECRET")?,
        ))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("targeter::Credentials")
            .field("api_key", &self.api_key)
            .field("api_secret", &"[redacted]")
            .finish()
    }
}

/// Targeter's token source: JSON `{"api_key", "api_secret"}` to `/api/auth/token`, answer
/// `{access_token, token_type, expires_in}` (one hour), errors `{"error": "..."}` with 400,
/// 401 (credential errors, not retried) and 500 (retried).
#[derive(Debug, Clone)]
pub struct Source {
    inner: HttpTokenSource,
}

impl Source {
    /// Against the production host [`BASE_URL`].
    pub fn new(credentials: Credentials) -> Self {
        // The constant is a valid URL; a failure here is a bug caught by the unit test.
        let base = parse_url(BASE_URL, "base").expect("BASE_URL is a valid url");
        Self::with_base_url(credentials, &base)
    }

    /// Against another host (a sandbox, a mock). The token goes to requests for this origin.
    pub fn with_base_url(credentials: Credentials, base: &Url) -> Self {
        let inner = HttpTokenSource::post(endpoint(base, "/api/auth/token"))
            .named("targeter")
            .param("api_key", Param::Text(credentials.api_key))
            .param("api_secret", Param::Secret(credentials.api_secret))
            .response(
                ResponseShape::json("access_token")
                    .with_expires_in("expires_in")
                    .with_token_type("token_type"),
            )
            // `{"error": "Invalid API credentials"}`: a message, not a code.
            .errors(ErrorShape::default().code_field(None))
            .add_origin(base);
        Self { inner }
    }
}

/// The Targeter layer: an [`AuthMiddleware`] over a Targeter [`Source`].
pub type Auth = AuthMiddleware<Source>;

partner_source!("Targeter", production);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_host_is_the_documented_one() {
        let t = Source::new(Credentials::new("k", "s"));
        assert_eq!(
            t.token_url().as_str(),
            "https://storhaug.targeter.tech/api/auth/token"
        );
    }
}
