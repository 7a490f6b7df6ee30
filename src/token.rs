//! [`Token`]: the secret a partner hands out, ready to travel in a header.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::HeaderValue;
use secrecy::SecretString;

use crate::error::{Error, Malformed};

/// The longest lifetime the crate believes. A longer `expires_in` (or a JWT `exp` further
/// away) is cut to this, so a typo such as `expires_in: 36000000` costs one extra fetch a day
/// rather than a token that is never refreshed.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// The shortest lifetime the crate believes. A shorter one (`expires_in: 0.0001`, a JWT `exp`
/// less than a second away) counts as unknown: the token is used until the API rejects it,
/// rather than being stale at once and fetched again on every request.
pub const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(1);

/// When a token stops working, as far as the token response tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A lifetime counted from the moment the token was received (`expires_in`).
    In(Duration),
    /// An absolute time (a JWT `exp` claim).
    At(SystemTime),
    /// Nothing says: the token is used until the API rejects it.
    Unknown,
}

/// An access token with its `Authorization` header value and its expiry.
///
/// `Debug` shows `[redacted]` instead of the value; the header value is marked sensitive so
/// HTTP/2 header compression and reqwest's own `Debug` keep it out of tables and logs.
#[derive(Clone)]
pub struct Token {
    secret: SecretString,
    header: HeaderValue,
    expiry: Expiry,
    refresh_token: Option<SecretString>,
}

impl Token {
    /// A bearer token: `Authorization: Bearer <value>`.
    ///
    /// Surrounding whitespace is trimmed. When the value is a JWT its `exp` claim becomes the
    /// expiry (read without verifying the signature); call [`Token::expires_in`] to override.
    ///
    /// # Errors
    /// [`Error::MalformedResponse`] when the value is empty or holds characters that cannot
    /// travel in an HTTP header (CR, LF and other controls).
    pub fn bearer(value: impl Into<String>) -> Result<Self, Error> {
        Self::with_scheme("Bearer", value)
    }

    /// A token sent as `Authorization: <scheme> <value>` (for example `apikey`).
    ///
    /// # Errors
    /// As [`Token::bearer`].
    pub fn with_scheme(scheme: &str, value: impl Into<String>) -> Result<Self, Error> {
        let value: String = value.into();
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(Error::malformed(Malformed::EmptyToken));
        }
        let header = header_value(scheme, trimmed)?;
        let expiry = jwt_expiry(trimmed).map_or(Expiry::Unknown, Expiry::At);
        Ok(Self {
            secret: SecretString::from(trimmed.to_owned()),
            header,
            expiry,
            refresh_token: None,
        })
    }

    /// Sets the lifetime counted from now (`expires_in`), replacing a JWT `exp`. A lifetime
    /// longer than [`MAX_TOKEN_LIFETIME`] is cut to it; one shorter than
    /// [`MIN_TOKEN_LIFETIME`] makes the expiry [`Expiry::Unknown`].
    pub fn expires_in(self, lifetime: Duration) -> Self {
        self.with_expiry(Expiry::In(lifetime))
    }

    /// Sets the expiry explicitly (lifetimes bounded as in [`Token::expires_in`]).
    pub fn with_expiry(mut self, expiry: Expiry) -> Self {
        self.expiry = match expiry {
            Expiry::In(d) if d < MIN_TOKEN_LIFETIME => {
                tracing::warn!(
                    lifetime_ms = d.as_millis() as u64,
                    "token lifetime is shorter than a second; using it until a 401"
                );
                Expiry::Unknown
            }
            Expiry::In(d) => Expiry::In(d.min(MAX_TOKEN_LIFETIME)),
            other => other,
        };
        self
    }

    /// Attaches the refresh token that came with this access token.
    pub fn with_refresh_token(mut self, refresh_token: SecretString) -> Self {
        self.refresh_token = Some(refresh_token);
        self
    }

    /// The expiry as the token response told it.
    pub fn expiry(&self) -> Expiry {
        self.expiry
    }

    /// The ready `Authorization` header value (marked sensitive).
    pub fn header_value(&self) -> &HeaderValue {
        &self.header
    }

    /// The token itself.
    ///
    /// **Security warning:** the value is a credential. Do not log it or put it in errors.
    pub fn secret(&self) -> &SecretString {
        &self.secret
    }

    /// The refresh token, if the endpoint issued one.
    ///
    /// **Security warning:** a refresh token is a long-lived credential.
    pub fn refresh_token(&self) -> Option<&SecretString> {
        self.refresh_token.as_ref()
    }

    /// The lifetime left at `now` (wall clock), or `None` if unknown.
    pub(crate) fn lifetime_at(&self, now: SystemTime) -> Option<Duration> {
        match self.expiry {
            Expiry::In(d) => Some(d),
            Expiry::At(t) => match t.duration_since(now) {
                Ok(left) if left >= MIN_TOKEN_LIFETIME => Some(left.min(MAX_TOKEN_LIFETIME)),
                // Already expired on arrival (or all but): the clocks disagree, or the partner
                // re-issued a token at its end. Fetching again would give the same answer on
                // every request, so use it until the API rejects it.
                _ => {
                    tracing::warn!(
                        "token expiry (jwt exp) is past or under a second away; using it until a 401"
                    );
                    None
                }
            },
            Expiry::Unknown => None,
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &"[redacted]")
            .field("expiry", &self.expiry)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// Builds a sensitive `Authorization` header value.
pub(crate) fn header_value(scheme: &str, value: &str) -> Result<HeaderValue, Error> {
    // Only visible ASCII and spaces/tabs inside the value are legal (RFC 9110 field-value
    // minus obs-text, which would be non-portable).
    if value.bytes().any(|b| b.is_ascii_control() || !b.is_ascii()) {
        return Err(Error::malformed(Malformed::IllegalHeaderValue));
    }
    let mut header = HeaderValue::try_from(format!("{scheme} {value}"))
        .map_err(|_| Error::malformed(Malformed::IllegalHeaderValue))?;
    header.set_sensitive(true);
    Ok(header)
}

/// Reads the `exp` claim of a JWT without verifying it.
///
/// Returns `None` for anything that is not a three-part JWT with a numeric `exp` in its
/// base64url JSON payload: such a token has an unknown expiry.
pub fn jwt_expiry(token: &str) -> Option<SystemTime> {
    let mut parts = token.split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || payload.is_empty() || payload.len() > 16 * 1024 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    let secs = exp.as_u64().or_else(|| {
        exp.as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e12)
            .map(|f| f as u64)
    })?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: &str) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.sig",
            e.encode(r#"{"alg":"none"}"#),
            e.encode(payload)
        )
    }

    #[test]
    fn reads_exp_of_a_jwt() {
        let t = jwt(r#"{"exp":1700000000}"#);
        assert_eq!(
            jwt_expiry(&t),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
    }

    #[test]
    fn fractional_exp_is_accepted() {
        let t = jwt(r#"{"exp":1700000000.5}"#);
        assert_eq!(
            jwt_expiry(&t),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
    }

    #[test]
    fn non_jwts_have_no_expiry() {
        for t in [
            "opaque-token",
            "a.b",
            "a.b.c.d",
            "x.!!!.y",
            &jwt(r#"{"sub":"x"}"#),
            &jwt(r#"{"exp":"soon"}"#),
            &jwt(r#"{"exp":-5}"#),
            &jwt("not json"),
            "..",
        ] {
            assert_eq!(jwt_expiry(t), None, "{t}");
        }
    }

    #[test]
    fn illegal_header_bytes_are_rejected() {
        for v in ["abc\r\nX-Evil: 1", "abc\ndef", "tab\u{7f}", "é"] {
            let err = Token::bearer(v).unwrap_err();
            assert!(
                matches!(err, Error::MalformedResponse(Malformed::IllegalHeaderValue)),
                "{v:?}: {err:?}"
            );
        }
        assert!(matches!(
            Token::bearer("  ").unwrap_err(),
            Error::MalformedResponse(Malformed::EmptyToken)
        ));
    }

    #[test]
    fn header_is_sensitive_and_trimmed() {
        let t = Token::bearer("  abc \n").unwrap();
        assert_eq!(t.header_value(), "Bearer abc");
        assert!(t.header_value().is_sensitive());
        assert!(!format!("{t:?}").contains("abc"));
    }

    #[test]
    fn lifetimes_under_a_second_are_unknown() {
        for secs in [1e-12, 0.0001, 0.999] {
            let t = Token::bearer("abc")
                .unwrap()
                .expires_in(Duration::from_secs_f64(secs));
            assert_eq!(t.expiry(), Expiry::Unknown, "{secs}");
        }
        let now = SystemTime::now();
        let t = Token::bearer("abc")
            .unwrap()
            .with_expiry(Expiry::At(now + Duration::from_millis(500)));
        assert_eq!(t.lifetime_at(now), None);
        let t = Token::bearer("abc").unwrap().expires_in(MIN_TOKEN_LIFETIME);
        assert_eq!(t.lifetime_at(now), Some(MIN_TOKEN_LIFETIME));
    }

    #[test]
    fn lifetime_is_clamped() {
        let t = Token::bearer("abc")
            .unwrap()
            .expires_in(Duration::from_secs(u64::MAX / 4));
        assert_eq!(t.expiry(), Expiry::In(MAX_TOKEN_LIFETIME));
    }
}
