//! The authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636 with S256).

use std::fmt;

use base64::Engine as _;
use rand::RngCore as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use url::Url;

use super::OAuthClient;
use crate::engine::{ErrorShape, Param};
use crate::error::{CallbackError, ConfigError, Error, OAuthErrorCode};
use crate::middleware::scope::check_transport;
use crate::source::{FetchContext, FetchReason};
use crate::store::StoredTokens;
use crate::token::Token;

/// 32 random bytes, base64url: 43 characters, the RFC 7636 §4.1 recommendation.
fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// The S256 code challenge of a verifier: `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A login in progress: the authorize URL to open, and the `state` and PKCE verifier to
/// check and complete the callback with. Keep it until the callback arrives.
pub struct PendingLogin {
    client: OAuthClient,
    redirect_uri: Url,
    authorize_url: Url,
    state: SecretString,
    verifier: SecretString,
}

impl fmt::Debug for PendingLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingLogin")
            .field("client", &self.client)
            .field("redirect_uri", &self.redirect_uri.as_str())
            .field("state", &"[redacted]")
            .field("verifier", &"[redacted]")
            .finish()
    }
}

impl OAuthClient {
    /// Starts an authorization-code login with PKCE (S256) and a random `state`.
    ///
    /// # Errors
    /// [`Error::Config`] when no authorize URL or no redirect URI is set
    /// ([`ConfigError::Missing`]); [`Error::InsecureTransport`] when the
    /// authorize URL is plain `http://` to a non-loopback host.
    pub fn begin_login(&self) -> Result<PendingLogin, Error> {
        let redirect_uri =
            self.redirect_uri
                .clone()
                .ok_or(Error::Config(ConfigError::Missing {
                    what: "redirect uri",
                }))?;
        let mut url = self
            .authorize_url
            .clone()
            .ok_or(Error::Config(ConfigError::Missing {
                what: "authorize url",
            }))?;
        check_transport(&url, self.allow_insecure_http)?;
        let state = random_b64(16);
        let verifier = random_b64(32);
        {
            let mut q = url.query_pairs_mut();
            if let Some(audience) = &self.audience {
                q.append_pair("audience", audience);
            }
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", redirect_uri.as_str());
            if let Some(scope) = self.scope_param() {
                q.append_pair("scope", &scope);
            }
            q.append_pair("state", &state)
                .append_pair("code_challenge", &pkce_challenge(&verifier))
                .append_pair("code_challenge_method", "S256");
        }
        Ok(PendingLogin {
            client: self.clone(),
            redirect_uri,
            authorize_url: url,
            state: SecretString::from(state),
            verifier: SecretString::from(verifier),
        })
    }
}

impl PendingLogin {
    /// The URL to open in a browser.
    pub fn authorize_url(&self) -> &Url {
        &self.authorize_url
    }

    /// The redirect URI the authorization server will call back.
    pub fn redirect_uri(&self) -> &Url {
        &self.redirect_uri
    }

    /// Completes the login from the callback URL (`<redirect uri>?code=..&state=..`):
    /// checks `state`, turns an `error=` callback into an error, and exchanges the code
    /// (`grant_type=authorization_code`, `code`, `redirect_uri`, `code_verifier`, the client
    /// authenticated as [`OAuthClient::client_auth`] says). The returned tokens are ready for
    /// a [`TokenStore`](crate::store::TokenStore); saving them replaces whatever login was stored
    /// under the key, a dead one included.
    ///
    /// # Errors
    /// [`Error::Callback`] when `state` is missing or does not match (possible CSRF), when the
    /// callback names another issuer than [`OAuthClient::issuer`] (RFC 9207), when a parameter
    /// repeats, or when there is no `code`; [`Error::OAuth`] for an `error=` callback (`access_denied`, ...)
    /// or a rejected exchange; [`Error::InvalidCredentials`] for `invalid_client`.
    pub async fn complete(self, callback: &Url) -> Result<StoredTokens, Error> {
        let mut code = None;
        let mut state = None;
        let mut error = None;
        let mut description = None;
        let mut issuer = None;
        let mut seen = std::collections::HashSet::new();
        for (k, v) in callback.query_pairs() {
            // RFC 6749 §3.1: parameters must not repeat; a repeated one is ambiguous.
            let once = match &*k {
                "code" => Some("code"),
                "state" => Some("state"),
                "error" => Some("error"),
                "iss" => Some("iss"),
                _ => None,
            };
            if let Some(name) = once {
                if !seen.insert(name) {
                    return Err(Error::Callback(CallbackError::RepeatedParameter(name)));
                }
            }
            match &*k {
                "code" => code = Some(v.into_owned()),
                "state" => state = Some(v.into_owned()),
                "error" => error = Some(v.into_owned()),
                "error_description" => description = Some(v.into_owned()),
                "iss" => issuer = Some(v.into_owned()),
                _ => {}
            }
        }
        // Check state first: an error callback from a forged request is still forged.
        match state {
            Some(s) if constant_time_eq(s.as_bytes(), self.state.expose_secret().as_bytes()) => {}
            Some(_) => return Err(Error::Callback(CallbackError::StateMismatch)),
            None => return Err(Error::Callback(CallbackError::StateMissing)),
        }
        // RFC 9207: a callback naming another issuer is not ours, whatever it carries.
        if let (Some(expected), Some(got)) = (&self.client.issuer, &issuer) {
            if expected != got {
                return Err(Error::Callback(CallbackError::IssuerMismatch));
            }
        }
        if let Some(code) = error {
            return Err(Error::OAuth {
                code: OAuthErrorCode::parse(&code),
                description: description.map(|d| crate::engine::response::excerpt(&d, &[])),
            });
        }
        let code = code.ok_or(Error::Callback(CallbackError::CodeMissing))?;
        let token = self.exchange(code).await?;
        Ok(stored_from_token(
            &token,
            std::time::SystemTime::now(),
            None,
        ))
    }

    async fn exchange(&self, code: String) -> Result<Token, Error> {
        let params = [
            ("code", Param::Secret(SecretString::from(code))),
            ("redirect_uri", Param::Text(self.redirect_uri.to_string())),
            (
                "code_verifier",
                Param::Secret(self.verifier.expose_secret().into()),
            ),
        ];
        // No `audience` here: RFC 6749 §4.1.3 names the exchange's parameters, and Auth0
        // binds the audience to the code at `/authorize`. The client authenticates as
        // `OAuthClient::client_auth` says.
        let token = self
            .client
            .token_request("authorization_code", params)
            .request_token(
                &[],
                &ErrorShape::oauth2(),
                &FetchContext::new(FetchReason::Initial),
            )
            .await?;
        if token.refresh_token().is_none() {
            tracing::warn!(
                "the login returned no refresh token (is offline_access among the scopes?)"
            );
        }
        Ok(token)
    }
}

/// What a store keeps of a token response received at `now`.
pub(crate) fn stored_from_token(
    token: &Token,
    now: std::time::SystemTime,
    previous: Option<&StoredTokens>,
) -> StoredTokens {
    StoredTokens::new(
        Some(token.secret().clone()),
        token.lifetime_at(now).map(|d| now + d),
        token
            .refresh_token()
            .cloned()
            .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
        previous.map_or(now, |p| p.authorized_at),
    )
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 appendix B.
    #[test]
    fn s256_matches_the_rfc_example() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifier_and_state_are_random_and_long_enough() {
        let a = random_b64(32);
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_b64(32));
    }
}
