//! One type per URL role, so an authorize URL cannot be passed where the token URL belongs.

use std::fmt;

use url::Url;

use crate::error::Error;
use crate::partner::parse_url;

macro_rules! url_role {
    ($(#[$doc:meta])* $name:ident, $role:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(Url);

        impl $name {
            #[doc = concat!("A ", $role, " URL.")]
            pub fn new(url: Url) -> Self {
                Self(url)
            }

            #[doc = concat!("Parses a ", $role, " URL.")]
            ///
            /// # Errors
            /// [`Error::Config`] if `url` does not parse.
            pub fn parse(url: &str) -> Result<Self, Error> {
                parse_url(url, $role).map(Self)
            }

            /// The URL.
            pub fn url(&self) -> &Url {
                &self.0
            }

            /// The URL, owned.
            pub fn into_url(self) -> Url {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.0.as_str()).finish()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

url_role!(
    /// The authorization server's token endpoint (RFC 6749 §3.2).
    TokenUrl,
    "token"
);
url_role!(
    /// The authorization server's authorization endpoint, opened in a browser to log in
    /// (RFC 6749 §3.1).
    AuthorizeUrl,
    "authorize"
);
url_role!(
    /// The client's redirection endpoint, registered with the authorization server, that
    /// receives the login callback (RFC 6749 §3.1.2).
    RedirectUrl,
    "redirect"
);
