//! Targeter: `POST /api/auth/token` with JSON `{api_key, api_secret}`.

use std::fmt;

use secrecy::SecretString;
use url::Url;

use super::{endpoint, engine_provider, env_var, parse_url};
use crate::error::Error;
use crate::{AuthMiddleware, ErrorShape, HttpTokenSource, Param, ResponseShape};

/// Targeter's production host, as its documentation names it.
pub const TARGETER_BASE_URL: &str = "https://storhaug.targeter.tech";

/// A Targeter API key and secret.
///
/// `Debug` shows the key, never the secret.
#[derive(Clone)]
pub struct TargeterCredentials {
    api_key: String,
    api_secret: SecretString,
}

impl TargeterCredentials {
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

impl fmt::Debug for TargeterCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TargeterCredentials")
            .field("api_key", &self.api_key)
            .field("api_secret", &"[redacted]")
            .finish()
    }
}

/// Targeter's token source: JSON `{"api_key", "api_secret"}` to `/api/auth/token`, answer
/// `{access_token, token_type, expires_in}` (one hour), errors `{"error": "..."}` with 400,
/// 401 (credential errors, not retried) and 500 (retried).
#[derive(Debug, Clone)]
pub struct Targeter {
    inner: HttpTokenSource,
}

impl Targeter {
    /// Against the production host [`TARGETER_BASE_URL`].
    pub fn new(credentials: TargeterCredentials) -> Self {
        // The constant is a valid URL; a failure here is a bug caught by the unit test.
        let base = parse_url(TARGETER_BASE_URL).expect("TARGETER_BASE_URL is a valid url");
        Self::with_base_url(credentials, &base)
    }

    /// Against another host (a sandbox, a mock). The token goes to requests for this origin.
    pub fn with_base_url(credentials: TargeterCredentials, base: &Url) -> Self {
        let inner = HttpTokenSource::post(endpoint(base, "/api/auth/token"))
            .param("api_key", Param::Text(credentials.api_key))
            .param("api_secret", Param::Secret(credentials.api_secret))
            .response(
                ResponseShape::json("access_token")
                    .with_expires_in("expires_in")
                    .with_token_type("token_type"),
            )
            // `{"error": "Invalid API credentials"}`: a message, not a code.
            .errors(ErrorShape::default().code_field(None))
            .scope_to(base);
        Self { inner }
    }
}

/// The Targeter middleware: `TargeterAuth::new(TargeterCredentials::new(key, secret))`.
pub type TargeterAuth = AuthMiddleware<Targeter>;

engine_provider!(Targeter, TargeterAuth);

impl AuthMiddleware<Targeter> {
    /// A Targeter layer against the production host.
    ///
    /// ```
    /// use reqwest_partner_auth::{TargeterAuth, TargeterCredentials};
    /// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
    ///     .with(TargeterAuth::new(TargeterCredentials::new("key", "secret")))
    ///     .build();
    /// # let _ = client;
    /// ```
    pub fn new(credentials: TargeterCredentials) -> Self {
        Self::from_source(Targeter::new(credentials))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_host_is_the_documented_one() {
        let t = Targeter::new(TargeterCredentials::new("k", "s"));
        assert_eq!(
            t.token_url().as_str(),
            "https://storhaug.targeter.tech/api/auth/token"
        );
    }
}
