//! One typed configuration per partner contract.
//!
//! Targeter, AdGem, Setu and the channel manager are [`HttpTokenSource`] configurations:
//! they differ only in how credentials travel, where the token is in the answer and how
//! errors look. Pentaleap's feed API uses a static API key ([`ApiKeyAuth`]).

pub(crate) mod adgem;
pub(crate) mod channel_manager;
pub(crate) mod oauth2;
pub(crate) mod pentaleap;
pub(crate) mod setu;
pub(crate) mod targeter;

use url::Url;

use crate::error::Error;

/// `base` with `path` appended to its path (keeping a base path such as `/api`).
pub(crate) fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("{}{}", base.path().trim_end_matches('/'), path));
    url.set_query(None);
    url
}

/// Reads a required environment variable.
pub(crate) fn env_var(name: &str) -> Result<String, Error> {
    std::env::var(name)
        .map_err(|_| Error::Config(format!("environment variable {name} is not set")))
}

/// Reads a required environment variable holding an integer.
pub(crate) fn env_int(name: &str) -> Result<i64, Error> {
    env_var(name)?
        .trim()
        .parse()
        .map_err(|_| Error::Config(format!("environment variable {name} is not an integer")))
}

/// Parses a URL given by the user.
pub(crate) fn parse_url(url: &str) -> Result<Url, Error> {
    Url::parse(url).map_err(|e| Error::Config(format!("invalid url: {e}")))
}

/// Implements `TokenSource` by delegation to the `inner: HttpTokenSource` field, and the
/// setters every engine-backed provider shares.
macro_rules! engine_provider {
    ($ty:ident, $auth:ident) => {
        #[$crate::async_trait]
        impl $crate::TokenSource for $ty {
            async fn fetch(
                &self,
                cx: &$crate::FetchContext,
            ) -> Result<$crate::Token, $crate::Error> {
                self.inner.fetch(cx).await
            }

            fn default_scope(&self) -> Vec<url::Url> {
                self.inner.default_scope()
            }
        }

        impl $ty {
            /// The `reqwest::Client` the token endpoint is called with (default
            /// [`default_token_client`](crate::default_token_client)).
            pub fn http_client(mut self, client: reqwest::Client) -> Self {
                self.inner = self.inner.http_client(client);
                self
            }

            /// Allows a token endpoint on plain `http://` to a non-loopback host.
            ///
            /// **Security warning:** credentials then travel readable by anyone on the path.
            pub fn allow_insecure_http(mut self) -> Self {
                self.inner = self.inner.allow_insecure_http();
                self
            }

            /// Timeout of each token request, whatever client is used (default
            /// [`DEFAULT_TOKEN_TIMEOUT`](crate::DEFAULT_TOKEN_TIMEOUT)).
            pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
                self.inner = self.inner.timeout(timeout);
                self
            }

            /// The token endpoint this source calls.
            pub fn token_url(&self) -> &url::Url {
                self.inner.url()
            }
        }

        impl From<$ty> for $auth {
            fn from(source: $ty) -> Self {
                $crate::AuthMiddleware::from_source(source)
            }
        }
    };
}
pub(crate) use engine_provider;
