//! Pentaleap's product-feed API: `Authorization: apikey <key>`, one key per publisher.
//!
//! Pentaleap's campaign API uses Auth0 login with rotating refresh tokens instead: see
//! `oauth2::OAuthClient::auth0` and `oauth2::RefreshTokenAuth` (feature `oauth2`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use http::header::AUTHORIZATION;
use http::{Extensions, HeaderValue};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use url::Url;

use crate::error::ConfigError;
use crate::error::Error;
use crate::middleware::scope::CredentialScope;
use crate::token::header_value;

/// Pentaleap API keys: one per publisher, plus an optional default for paths that name no
/// publisher (such as `/external/v2/markets`).
///
/// `Debug` shows the publisher ids, never a key.
#[derive(Clone, Default)]
pub struct ApiKeys {
    default: Option<HeaderValue>,
    /// Sorted by publisher id, one entry per id: a binary search of a few short strings is
    /// cheaper on every request than hashing the id.
    by_publisher: Vec<(String, HeaderValue)>,
}

impl ApiKeys {
    /// No keys yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// One key for everything (an organisation with one publisher).
    ///
    /// # Errors
    /// [`Error::Config`] if the key cannot travel in a header (CR, LF, controls).
    pub fn single(key: &str) -> Result<Self, Error> {
        Self::new().default_key(key)
    }

    /// The key used for paths without a `/publishers/<id>/` segment.
    ///
    /// # Errors
    /// [`Error::Config`] if the key cannot travel in a header.
    pub fn default_key(mut self, key: &str) -> Result<Self, Error> {
        self.default = Some(apikey_header(key)?);
        Ok(self)
    }

    /// The key of one publisher.
    ///
    /// # Errors
    /// [`Error::Config`] if the key cannot travel in a header.
    pub fn publisher(mut self, publisher_id: impl Into<String>, key: &str) -> Result<Self, Error> {
        let header = apikey_header(key)?;
        let id = publisher_id.into();
        match self
            .by_publisher
            .binary_search_by(|(k, _)| k.as_str().cmp(&id))
        {
            Ok(at) => self.by_publisher[at].1 = header,
            Err(at) => self.by_publisher.insert(at, (id, header)),
        }
        Ok(self)
    }

    /// Keys from a map (or any pairs) of publisher id to key.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use reqwest_partner_auth::pentaleap::ApiKeys;
    /// let map = HashMap::from([("1001", "key-a"), ("1002", "key-b")]);
    /// let keys = ApiKeys::from_publishers(map)?;
    /// # Ok::<(), reqwest_partner_auth::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] on the first key that cannot travel in a header.
    pub fn from_publishers<I, K, V>(keys: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: AsRef<str>,
    {
        keys.into_iter().try_fold(Self::new(), |acc, (id, key)| {
            acc.publisher(id, key.as_ref())
        })
    }

    /// Reads `PENTALEAP_API_KEY` as the default key.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable if it is not set, blank, or not a legal header
    /// value.
    pub fn from_env() -> Result<Self, Error> {
        const NAME: &str = "PENTALEAP_API_KEY";
        Self::single(&crate::partner::env_var(NAME)?).map_err(|_| {
            Error::Config(ConfigError::InvalidEnv {
                name: NAME,
                expected: "an api key that can travel in an http header",
            })
        })
    }

    /// The header for a request path: the publisher's key when the path names one, else the
    /// default key.
    fn for_path(&self, path: &str) -> Result<&HeaderValue, Error> {
        match publisher_in_path(path) {
            Some(id) => self
                .by_publisher
                .binary_search_by(|(k, _)| k.as_str().cmp(id))
                .map(|at| &self.by_publisher[at].1)
                .map_err(|_| Error::NoCredential {
                    key: Some(id.to_owned()),
                }),
            None => self
                .default
                .as_ref()
                .ok_or(Error::NoCredential { key: None }),
        }
    }
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let publishers: Vec<&String> = self.by_publisher.iter().map(|(id, _)| id).collect();
        f.debug_struct("pentaleap::ApiKeys")
            .field("default", &self.default.as_ref().map(|_| "[redacted]"))
            .field("publishers", &publishers)
            .finish()
    }
}

fn apikey_header(key: &str) -> Result<HeaderValue, Error> {
    if key.trim().is_empty() {
        return Err(Error::Config(ConfigError::Empty { what: "api key" }));
    }
    header_value("apikey", key.trim())
        .map_err(|_| Error::Config(ConfigError::NotAHeaderValue { what: "api key" }))
}

/// The publisher id of a path such as `/external/v2/publishers/<id>/markets/...`.
pub(crate) fn publisher_in_path(path: &str) -> Option<&str> {
    let mut segments = path.split('/');
    segments.find(|s| *s == "publishers")?;
    segments.next().filter(|id| !id.is_empty())
}

/// The Pentaleap feed layer: `Authorization: apikey <key>` on requests to the PCM domain, the
/// key chosen by the `/publishers/<id>/` segment of the path.
///
/// A path naming a publisher without a key, or no publisher when there is no default key,
/// fails with [`Error::NoCredential`] before anything is sent. Static keys are not refreshed: a 401 is returned as is.
///
/// Every in-scope request gets a key, whatever its path. When the same PCM domain also serves
/// the campaign API through a bearer layer (`oauth2::RefreshTokenAuth`),
/// add that layer *before* this one: a request that already carries `Authorization` is left
/// alone.
///
/// ```
/// use reqwest_partner_auth::pentaleap::{ApiKeyAuth, ApiKeys};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let keys = ApiKeys::new()
///     .publisher("1001", "key-for-1001")?
///     .publisher("1002", "key-for-1002")?
///     .default_key("key-for-1001")?;
/// let pcm = url::Url::parse("https://pcm.example")?;
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(ApiKeyAuth::with_base_url(keys, &pcm))
///     .build();
/// # let _ = client; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ApiKeyAuth {
    keys: ApiKeys,
    scope: CredentialScope,
}

impl ApiKeyAuth {
    /// Keys for requests to the origin of `pcm_base` (the PCM domain of your organisation;
    /// Pentaleap's contract names no shared production host).
    pub fn with_base_url(keys: ApiKeys, pcm_base: &Url) -> Self {
        Self {
            keys,
            scope: CredentialScope::new(std::slice::from_ref(pcm_base)),
        }
    }

    /// Also sends keys to the origin of `url` (scheme, host and port).
    pub fn add_origin(mut self, url: &Url) -> Self {
        self.scope.origins.add(url);
        self
    }

    /// Allows keys over plain `http://` to non-loopback hosts (the layer's one switch).
    ///
    /// **Security warning:** anyone on the path can read the key.
    pub fn allow_insecure_http(mut self) -> Self {
        self.scope.allow_insecure_http = true;
        self
    }
}

impl Middleware for ApiKeyAuth {
    // Written out rather than with `#[async_trait]`: all the work is synchronous, so the layer
    // adds no future of its own; the request goes on as the next layer's future.
    fn handle<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        mut req: Request,
        extensions: &'life1 mut Extensions,
        next: Next<'life2>,
    ) -> Pin<Box<dyn Future<Output = reqwest_middleware::Result<Response>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        let header = match self.scope.applies_to(&req) {
            Ok(false) => return next.run(req, extensions),
            Ok(true) => self.keys.for_path(req.url().path()),
            Err(err) => Err(err),
        };
        match header {
            Ok(header) => {
                req.headers_mut().insert(AUTHORIZATION, header.clone());
                next.run(req, extensions)
            }
            Err(err) => Box::pin(std::future::ready(Err(err.into()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publisher_segment() {
        assert_eq!(
            publisher_in_path("/external/v2/publishers/42/markets/7/products/search"),
            Some("42")
        );
        assert_eq!(publisher_in_path("/external/v2/publishers/42"), Some("42"));
        assert_eq!(publisher_in_path("/external/v2/publishers"), None);
        assert_eq!(publisher_in_path("/external/v2/publishers/"), None);
        assert_eq!(publisher_in_path("/external/v2/markets"), None);
    }

    #[test]
    fn each_publisher_gets_its_own_key_and_a_later_key_replaces_an_earlier_one() {
        let mut keys = ApiKeys::new();
        for id in (0..50).rev() {
            keys = keys
                .publisher(id.to_string(), &format!("key-{id}"))
                .unwrap();
        }
        keys = keys.publisher("7", "key-7-rotated").unwrap();
        for id in 0..50 {
            let want = if id == 7 {
                "apikey key-7-rotated".to_owned()
            } else {
                format!("apikey key-{id}")
            };
            let path = format!("/external/v2/publishers/{id}/markets");
            assert_eq!(keys.for_path(&path).unwrap(), want.as_str());
        }
        assert!(matches!(
            keys.for_path("/external/v2/publishers/50/markets"),
            Err(Error::NoCredential { key: Some(_) })
        ));
    }

    #[test]
    fn debug_hides_keys() {
        let keys = ApiKeys::new()
            .publisher("1", "SENTINEL-KEY")
            .unwrap()
            .default_key("SENTINEL-DEFAULT")
            .unwrap();
        let shown = format!(
            "{keys:?} {:?}",
            ApiKeyAuth::with_base_url(keys.clone(), &Url::parse("https://p.example").unwrap())
        );
        assert!(!shown.contains("SENTINEL"), "{shown}");
    }

    #[test]
    fn illegal_keys_are_config_errors() {
        assert!(matches!(ApiKeys::single("a\r\nb"), Err(Error::Config(_))));
        assert!(matches!(ApiKeys::single(" "), Err(Error::Config(_))));
    }
}
