//! Setu (Bridge): `POST /auth/token`, form-encoded client credentials, camelCase answer.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use crate::engine::{Encoding, ErrorShape, HttpTokenSource, Param, ResponseShape};
use crate::error::Error;
use crate::partner::{endpoint, env_var, partner_source};
use crate::AuthMiddleware;

/// The lifetime Setu documents for a partner access token, used when the token carries no
/// JWT `exp`: 15 minutes.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// A Setu Bridge client id and secret.
#[derive(Clone)]
pub struct Credentials {
    client_id: String,
    client_secret: SecretString,
}

impl Credentials {
    /// The credentials made available at the end of the Bridge configuration.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: SecretString::from(client_secret.into()),
        }
    }

    /// Reads `SETU_CLIENT_ID` and `SETU_CLIENT_SECRET`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable that is not set.
    pub fn from_env() -> Result<Self, Error> {
        Ok(Self::new(
            env_var("SETU_CLIENT_ID")?,
            env_var("SETU_CLIENT_SECRET")?,
        ))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("setu::Credentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

/// Setu's token source: `grant_type=client_credentials&client_id&client_secret` as a form to
/// `/auth/token`; the answer is `{"accessToken", "refreshToken"}` with no `expires_in`, so the
/// expiry is the access token's JWT `exp` (else the documented 15 minutes). The
/// `refreshToken` is kept on the [`Token`](crate::Token) but not used: the contract says to
/// ignore it for now.
#[derive(Debug, Clone)]
pub struct Source {
    inner: HttpTokenSource,
}

impl Source {
    /// Setu's contract names no host: give the Bridge base URL of your environment.
    pub fn with_base_url(credentials: Credentials, base: &Url) -> Self {
        let inner = HttpTokenSource::post(endpoint(base, "/auth/token"))
            .named("setu")
            .encoding(Encoding::Form)
            .param("grant_type", Param::text("client_credentials"))
            .param("client_id", Param::Text(credentials.client_id))
            .param("client_secret", Param::Secret(credentials.client_secret))
            .response(ResponseShape::json("accessToken").with_refresh_token("refreshToken"))
            .errors(ErrorShape::default())
            .default_lifetime(TOKEN_LIFETIME)
            .add_origin(base);
        Self { inner }
    }
}

/// The Setu layer: an [`AuthMiddleware`] over a Setu [`Source`].
pub type Auth = AuthMiddleware<Source>;

partner_source!("Setu");
