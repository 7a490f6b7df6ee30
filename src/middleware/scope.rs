//! Which requests get credentials: origin scoping and the loopback test.

use std::fmt;

use http::header::AUTHORIZATION;
use url::{Host, Url};

use crate::error::Error;

/// Where a layer sends credentials: its origins, and whether plain `http://` to a
/// non-loopback host is allowed. Shared by every layer so the rule is written once.
#[derive(Debug, Clone, Default)]
pub(crate) struct CredentialScope {
    pub(crate) origins: Scope,
    pub(crate) allow_insecure_http: bool,
}

impl CredentialScope {
    pub(crate) fn new(urls: &[Url]) -> Self {
        Self {
            origins: Scope::from_urls(urls),
            allow_insecure_http: false,
        }
    }

    /// `Ok(true)` when `req` should get credentials: it is for an origin in scope and has no
    /// `Authorization` of its own.
    ///
    /// # Errors
    /// [`Error::InsecureTransport`] when it would carry them over plain http to a host that
    /// is not loopback without the opt-in.
    pub(crate) fn applies_to(&self, req: &reqwest::Request) -> Result<bool, Error> {
        if req.headers().contains_key(AUTHORIZATION) || !self.origins.contains(req.url()) {
            return Ok(false);
        }
        check_transport(req.url(), self.allow_insecure_http)?;
        Ok(true)
    }
}

/// Refuses plain `http://` to non-loopback hosts unless allowed.
pub(crate) fn check_transport(url: &Url, allow_insecure_http: bool) -> Result<(), Error> {
    if allow_insecure_http || url.scheme() != "http" || is_loopback(url) {
        return Ok(());
    }
    Err(Error::InsecureTransport {
        origin: url.origin().ascii_serialization(),
    })
}

/// A set of origins (scheme, host, port). Matching a request costs string comparisons, no
/// allocation.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Scope {
    origins: Vec<(String, String, u16)>,
}

impl Scope {
    pub(crate) fn from_urls(urls: &[Url]) -> Self {
        let mut scope = Self::default();
        for url in urls {
            scope.add(url);
        }
        scope
    }

    pub(crate) fn add(&mut self, url: &Url) {
        if let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) {
            let origin = (url.scheme().to_owned(), host.to_owned(), port);
            if !self.origins.contains(&origin) {
                self.origins.push(origin);
            }
        }
    }

    pub(crate) fn contains(&self, url: &Url) -> bool {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return false;
        };
        self.origins
            .iter()
            .any(|(s, h, p)| *p == port && h == host && s == url.scheme())
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.origins
                    .iter()
                    .map(|(s, h, p)| format!("{s}://{h}:{p}")),
            )
            .finish()
    }
}

/// `true` when the URL's host is a loopback address or exactly `localhost`.
///
/// Subdomains of `localhost` are not trusted: reqwest resolves them through the system
/// resolver, which could point them anywhere.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn matches_scheme_host_and_port() {
        let scope = Scope::from_urls(&[u("https://api.partner.test/v1/")]);
        assert!(scope.contains(&u("https://api.partner.test/other?q=1")));
        assert!(scope.contains(&u("https://API.partner.test:443/")));
        assert!(!scope.contains(&u("http://api.partner.test/")));
        assert!(!scope.contains(&u("https://api.partner.test:8443/")));
        assert!(!scope.contains(&u("https://api.partner.test.evil.example/")));
        assert!(!scope.contains(&u("https://evil.example/api.partner.test")));
    }

    #[test]
    fn loopback_hosts() {
        for s in [
            "http://127.0.0.1:1/",
            "http://127.8.0.1/",
            "http://[::1]:80/",
            "http://localhost/",
        ] {
            assert!(is_loopback(&u(s)), "{s}");
        }
        for s in [
            "http://10.0.0.1/",
            "http://localhost.evil.example/",
            "http://a.localhost/",
            "http://example.com/",
        ] {
            assert!(!is_loopback(&u(s)), "{s}");
        }
    }
}
