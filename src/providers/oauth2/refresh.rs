//! Rotating refresh tokens (Auth0; Pentaleap's campaign API).
//!
//! Each refresh token works once; presenting one twice revokes the whole login. So:
//! * a refresh runs under the store's lock for the credential (one task in the process —
//!   the cache's single flight — and one process across a fleet sharing the store);
//! * inside the lock, the store is read again: if another process already refreshed, its
//!   still-valid access token is used and nothing is sent;
//! * the new refresh token is saved before the new access token is handed out;
//! * `invalid_grant` means the login is dead: [`Error::ReauthorizationRequired`], and the
//!   dead refresh token is removed from the store so nobody sends it again.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::login::stored_from_token;
use super::OAuthClient;
use crate::error::Error;
use crate::source::{FetchContext, FetchReason, TokenSource};
use crate::store::{StoredTokens, TokenStore};
use crate::token::Token;
use crate::{AuthMiddleware, ErrorShape, Param};

/// Auth0's (and Pentaleap's) limit on a login: after 180 days the authorization flow has to
/// be redone.
pub const DEFAULT_SESSION_LIMIT: Duration = Duration::from_secs(180 * 24 * 60 * 60);

/// A stored access token is reused (instead of refreshing) only if it has at least this
/// long left.
const REUSE_MARGIN: Duration = Duration::from_secs(60);

/// A token source that refreshes with `grant_type=refresh_token` and persists each rotated
/// refresh token in a [`TokenStore`] before the new access token is used.
///
/// The store must hold a login first (see [`OAuthClient::begin_login`] and
/// [`PendingLogin::complete`](crate::PendingLogin::complete)).
pub struct RefreshToken {
    client: OAuthClient,
    store: Arc<dyn TokenStore>,
    key: String,
    api_scope: Vec<Url>,
    session_limit: Option<Duration>,
    /// Tokens the server issued that could not be saved yet: used (and saved) first, so a
    /// failing store does not lose a rotated refresh token.
    unsaved: Mutex<Option<StoredTokens>>,
    /// The access token this source handed out last. Found again in the store, it means no
    /// one refreshed since: an expiring token is then refreshed, not re-read.
    handed_out: Mutex<Option<SecretString>>,
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshToken")
            .field("client", &self.client)
            .field("key", &self.key)
            .field("session_limit", &self.session_limit)
            .finish_non_exhaustive()
    }
}

impl RefreshToken {
    /// Refreshes the login stored under `key` in `store`.
    pub fn new(client: OAuthClient, store: Arc<dyn TokenStore>, key: impl Into<String>) -> Self {
        Self {
            client,
            store,
            key: key.into(),
            api_scope: Vec::new(),
            session_limit: Some(DEFAULT_SESSION_LIMIT),
            unsaved: Mutex::new(None),
            handed_out: Mutex::new(None),
        }
    }

    /// Adds an API origin the access token is attached to (the PCM domain for Pentaleap).
    pub fn scope_to(mut self, url: &Url) -> Self {
        self.api_scope.push(url.clone());
        self
    }

    /// How long a login lasts before a person must log in again (default
    /// [`DEFAULT_SESSION_LIMIT`], 180 days); `None` for no limit.
    pub fn session_limit(mut self, limit: Option<Duration>) -> Self {
        self.session_limit = limit;
        self
    }

    fn take_unsaved(&self) -> Option<StoredTokens> {
        self.unsaved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn keep_unsaved(&self, tokens: StoredTokens) {
        *self.unsaved.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokens);
    }

    fn hand_out(&self, token: Token) -> Token {
        let mut last = self.handed_out.lock().unwrap_or_else(|p| p.into_inner());
        *last = Some(token.secret().clone());
        drop(last);
        token
    }

    /// Whether the stored access token is the one this source handed out last.
    fn stored_is_ours(&self, stored: &StoredTokens) -> bool {
        let ours = self.handed_out.lock().unwrap_or_else(|p| p.into_inner());
        match (&*ours, &stored.access_token) {
            (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
            _ => false,
        }
    }

    async fn save(&self, tokens: StoredTokens) -> Result<(), Error> {
        if let Err(err) = self.store.save(&self.key, &tokens).await {
            tracing::error!(error = %err, "could not save the rotated refresh token; keeping it in memory");
            self.keep_unsaved(tokens);
            return Err(err);
        }
        Ok(())
    }

    async fn refresh(&self, stored: &StoredTokens, cx: &FetchContext) -> Result<Token, Error> {
        let now = cx.clock().system_now();
        if let Some(limit) = self.session_limit {
            if now.duration_since(stored.authorized_at).unwrap_or_default() >= limit {
                return Err(Error::ReauthorizationRequired {
                    message: format!("the login is older than {} days", limit.as_secs() / 86_400),
                });
            }
        }
        let refresh_token =
            stored
                .refresh_token
                .clone()
                .ok_or_else(|| Error::ReauthorizationRequired {
                    message: "no refresh token stored; log in first".into(),
                })?;
        let mut extra = vec![
            ("grant_type", Param::text("refresh_token")),
            ("client_id", Param::Text(self.client.client_id.clone())),
            ("refresh_token", Param::Secret(refresh_token)),
        ];
        if let Some(secret) = &self.client.client_secret {
            extra.push((
                "client_secret",
                Param::Secret(secret.expose_secret().into()),
            ));
        }
        let errors = ErrorShape::oauth2().reauthorize_codes(&["invalid_grant"]);
        tracing::debug!("refreshing the access token with the stored refresh token");
        match self
            .client
            .token_engine()
            .request_token(&extra, &errors, cx)
            .await
        {
            Ok(token) => {
                // Persist the rotated refresh token before the access token is used.
                self.save(stored_from_token(&token, now, Some(stored)))
                    .await?;
                Ok(token)
            }
            Err(err @ Error::ReauthorizationRequired { .. }) => {
                // The refresh token is dead; make sure no one sends it again.
                let mut dead = stored.clone();
                dead.refresh_token = None;
                dead.access_token = None;
                dead.access_expires_at = None;
                if let Err(e) = self.store.save(&self.key, &dead).await {
                    tracing::warn!(error = %e, "could not mark the dead refresh token in the store");
                }
                Err(err)
            }
            Err(err) => Err(err),
        }
    }
}

#[async_trait::async_trait]
impl TokenSource for RefreshToken {
    async fn fetch(&self, cx: &FetchContext) -> Result<Token, Error> {
        let _lock = self.store.lock(&self.key).await?;
        if let Some(pending) = self.take_unsaved() {
            // A refresh whose result could not be saved: save it now, before anything else.
            self.save(pending).await?;
        }
        let stored =
            self.store
                .load(&self.key)
                .await?
                .ok_or_else(|| Error::ReauthorizationRequired {
                    message: "no login stored; log in first".into(),
                })?;
        // Reuse a stored access token only if someone else stored it (another process, or a
        // refresh whose save failed): the one we handed out is expiring or was rejected.
        if cx.reason() != FetchReason::Rejected && !self.stored_is_ours(&stored) {
            if let Some(token) = reusable(&stored, cx.clock().system_now())? {
                tracing::debug!("using the access token another refresh stored");
                return Ok(self.hand_out(token));
            }
        }
        let token = self.refresh(&stored, cx).await?;
        Ok(self.hand_out(token))
    }

    /// A refresh whose request may have reached the server (a timeout, a lost answer) is not
    /// retried: the server may have rotated the refresh token already, and sending it again
    /// would count as reuse and revoke the login. Connection failures (nothing was sent) and
    /// 5xx/429 answers (the server did not issue tokens) are retried.
    fn should_retry(&self, error: &Error) -> bool {
        match error {
            Error::Transport { source, .. } => source.is_connect(),
            other => other.is_transient(),
        }
    }

    fn default_scope(&self) -> Vec<Url> {
        self.api_scope.clone()
    }
}

/// The stored access token, if it has comfortably long left.
fn reusable(stored: &StoredTokens, now: SystemTime) -> Result<Option<Token>, Error> {
    match (&stored.access_token, stored.access_expires_at) {
        (Some(token), Some(at)) if at.duration_since(now).unwrap_or_default() > REUSE_MARGIN => Ok(
            Some(Token::bearer(token.expose_secret())?.with_expiry(crate::Expiry::At(at))),
        ),
        _ => Ok(None),
    }
}

/// The refresh-token middleware: `RefreshTokenAuth::from_source(RefreshToken::new(..))`.
pub type RefreshTokenAuth = AuthMiddleware<RefreshToken>;
