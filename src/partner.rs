//! What every partner module shares: URL joining, environment variables, and the macro that
//! turns an [`HttpTokenSource`](crate::engine::HttpTokenSource) configuration into a partner's
//! token source and layer.

// With some partner features off, some of these helpers have no user.
#![cfg_attr(
    not(all(
        feature = "targeter",
        feature = "adgem",
        feature = "setu",
        feature = "channel-manager",
        feature = "pentaleap",
        feature = "oauth2"
    )),
    allow(dead_code, unused_macros, unused_imports)
)]

use url::Url;

use crate::error::{ConfigError, Error};

/// `base` with `path` appended to its path (keeping a base path such as `/api`).
pub(crate) fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    url.set_path(&format!("{}{}", base.path().trim_end_matches('/'), path));
    url.set_query(None);
    url
}

/// Reads a required environment variable; an empty or blank one is invalid (a deployment
/// mistake, not a credential to send).
pub(crate) fn env_var(name: &'static str) -> Result<String, Error> {
    let value = std::env::var(name).map_err(|_| Error::Config(ConfigError::MissingEnv { name }))?;
    if value.trim().is_empty() {
        return Err(Error::Config(ConfigError::InvalidEnv {
            name,
            expected: "a non-empty value",
        }));
    }
    Ok(value)
}

/// Reads a required environment variable holding an integer.
pub(crate) fn env_int(name: &'static str) -> Result<i64, Error> {
    env_var(name)?.trim().parse().map_err(|_| {
        Error::Config(ConfigError::InvalidEnv {
            name,
            expected: "an integer",
        })
    })
}

/// Parses a URL given by the user; `role` names it in the error ("base", "token").
pub(crate) fn parse_url(url: &str, role: &'static str) -> Result<Url, Error> {
    Url::parse(url).map_err(|source| Error::Config(ConfigError::InvalidUrl { role, source }))
}

/// A partner's token source over the engine, and its layer.
///
/// `partner_source!("Name")`, in a module that defines `Source { inner: HttpTokenSource }`
/// with `Source::with_base_url(Credentials, &Url)` and `type Auth = AuthMiddleware<Source>`,
/// makes `Source` a [`TokenSource`](crate::TokenSource) by delegation, gives it the setters
/// every partner shares, and gives the layer `with_base_url`.
/// `partner_source!("Name", production)` also gives the layer `new`, over `Source::new`
/// (the production host).
macro_rules! partner_source {
    ($partner:literal, production) => {
        $crate::partner::partner_source!($partner);

        impl $crate::AuthMiddleware<Source> {
            #[doc = concat!("A layer for ", $partner, " against the production host [`BASE_URL`].")]
            pub fn new(credentials: Credentials) -> Self {
                Self::from_source(Source::new(credentials))
            }
        }
    };
    ($partner:literal) => {
        impl $crate::AuthMiddleware<Source> {
            #[doc = concat!("A layer for ", $partner, " against `base` (a sandbox, a mock, or a host the contract")]
            /// does not name); the token goes to requests for that origin.
            pub fn with_base_url(credentials: Credentials, base: &url::Url) -> Self {
                Self::from_source(Source::with_base_url(credentials, base))
            }
        }

        #[$crate::async_trait]
        impl $crate::TokenSource for Source {
            async fn fetch(
                &self,
                cx: &$crate::FetchContext,
            ) -> Result<$crate::Token, $crate::Error> {
                self.inner.fetch(cx).await
            }

            fn api_origins(&self) -> Vec<url::Url> {
                self.inner.api_origins()
            }

            fn allows_insecure_http(&self) -> bool {
                self.inner.allows_insecure_http()
            }

            fn name(&self) -> &str {
                self.inner.name()
            }

            fn endpoint(&self) -> Option<&url::Url> {
                self.inner.endpoint()
            }
        }

        impl Source {
            /// The `reqwest::Client` the token endpoint is called with (default
            /// [`default_token_client`](crate::engine::default_token_client)). Its connect
            /// timeout is its own: [`connect_timeout`](Self::connect_timeout) does not change
            /// it, whether called before or after this (reqwest cannot change it per request).
            pub fn http_client(mut self, client: reqwest::Client) -> Self {
                self.inner = self.inner.http_client(client);
                self
            }

            /// How long a connect to the token endpoint may take (default
            /// [`DEFAULT_CONNECT_TIMEOUT`](crate::engine::DEFAULT_CONNECT_TIMEOUT), 5 s): a
            /// connect that hangs fails with [`Error::Transport`](crate::Error::Transport)
            /// long before [`timeout`](Self::timeout). It applies to the client the source
            /// builds itself; a client given with [`http_client`](Self::http_client), before
            /// or after this call, keeps its own connect timeout.
            pub fn connect_timeout(mut self, connect_timeout: std::time::Duration) -> Self {
                self.inner = self.inner.connect_timeout(connect_timeout);
                self
            }

            #[doc = concat!("Allows plain `http://` to a host that is not loopback, for ", $partner, "'s token")]
            /// endpoint and for the API requests its layer authorizes alike (a sandbox
            /// without TLS). The one switch for both.
            ///
            /// **Security warning:** credentials and tokens then travel readable by anyone on
            /// the path.
            pub fn allow_insecure_http(mut self) -> Self {
                self.inner = self.inner.allow_insecure_http();
                self
            }

            /// Timeout of each token request, whatever client is used (default
            /// [`DEFAULT_TOKEN_TIMEOUT`](crate::engine::DEFAULT_TOKEN_TIMEOUT)).
            pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
                self.inner = self.inner.timeout(timeout);
                self
            }

            /// The token endpoint this source calls.
            pub fn token_url(&self) -> &url::Url {
                self.inner.url()
            }
        }

        impl From<Source> for Auth {
            fn from(source: Source) -> Self {
                $crate::AuthMiddleware::from_source(source)
            }
        }
    };
}
pub(crate) use partner_source;
