//! AdGem: `POST /v1/apps/tokens` with JSON `{adgem_pub_id, adgem_app_id, client_id,
//! client_secret}`.

use std::fmt;

use secrecy::SecretString;
use url::Url;

use crate::engine::{ErrorShape, HttpTokenSource, Param, ResponseShape};
use crate::error::Error;
use crate::partner::{endpoint, env_int, env_var, parse_url, partner_source};
use crate::AuthMiddleware;

/// AdGem's Targeted API host, as its documentation names it.
pub const BASE_URL: &str = "https://targeted-api.adgem.com";

/// AdGem application credentials. The two ids are integers, as the contract types them.
///
/// `Debug` shows the ids and client id, never the secret.
#[derive(Clone)]
pub struct Credentials {
    pub_id: i64,
    app_id: i64,
    client_id: String,
    client_secret: SecretString,
}

impl Credentials {
    /// Credentials of one AdGem application.
    pub fn new(
        pub_id: i64,
        app_id: i64,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self {
            pub_id,
            app_id,
            client_id: client_id.into(),
            client_secret: SecretString::from(client_secret.into()),
        }
    }

    /// Reads `ADGEM_PUB_ID`, `ADGEM_APP_ID` (integers), `ADGEM_CLIENT_ID` and
    /// `ADGEM_CLIENT_SECRET`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable that is missing or not an integer.
    pub fn from_env() -> Result<Self, Error> {
        Ok(Self::new(
            env_int("ADGEM_PUB_ID")?,
            env_int("ADGEM_APP_ID")?,
            env_var("ADGEM_CLIENT_ID")?,
            env_var("ADGEM_CLIENT_SECRET")?,
        ))
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("adgem::Credentials")
            .field("pub_id", &self.pub_id)
            .field("app_id", &self.app_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

/// AdGem's token source. Errors are `{"error", "error_description"}`: `invalid_client`
/// (401) is a credential error, `server_error` (500) is transient and retried.
#[derive(Debug, Clone)]
pub struct Source {
    inner: HttpTokenSource,
}

impl Source {
    /// Against the production host [`BASE_URL`].
    pub fn new(credentials: Credentials) -> Self {
        let base = parse_url(BASE_URL, "base").expect("BASE_URL is a valid url");
        Self::with_base_url(credentials, &base)
    }

    /// Against another host (a sandbox, a mock). The token goes to requests for this origin.
    pub fn with_base_url(credentials: Credentials, base: &Url) -> Self {
        let inner = HttpTokenSource::post(endpoint(base, "/v1/apps/tokens"))
            .named("adgem")
            .param("adgem_pub_id", Param::Integer(credentials.pub_id))
            .param("adgem_app_id", Param::Integer(credentials.app_id))
            .param("client_id", Param::Text(credentials.client_id))
            .param("client_secret", Param::Secret(credentials.client_secret))
            .response(
                ResponseShape::json("access_token")
                    .with_expires_in("expires_in")
                    .with_token_type("token_type"),
            )
            .errors(ErrorShape::default().credential_codes(&["invalid_client"]))
            .add_origin(base);
        Self { inner }
    }
}

/// The AdGem layer: an [`AuthMiddleware`] over an AdGem [`Source`].
pub type Auth = AuthMiddleware<Source>;

partner_source!("AdGem", production);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_host_is_the_documented_one() {
        let a = Source::new(Credentials::new(1, 2, "id", "s"));
        assert_eq!(
            a.token_url().as_str(),
            "https://targeted-api.adgem.com/v1/apps/tokens"
        );
    }
}
