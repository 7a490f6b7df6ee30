//! Rotating refresh tokens (Auth0; Pentaleap's campaign API).
//!
//! Each refresh token works once; presenting one twice revokes the whole login. So:
//! * a refresh runs under the store's lock for the credential (one task in the process —
//!   the cache's single flight — and one process across a fleet sharing the store);
//! * inside the lock, the store is read again: if another process already refreshed, its
//!   still-valid access token is used and nothing is sent;
//! * the rotated refresh token is saved before anything else happens with the answer (see
//!   [`RefreshTokenSource`] for the crash window that remains and its server-side remedy); a failed
//!   save keeps the rotated tokens in memory, the access token is still used, and the save
//!   is retried first at the next refresh;
//! * a refresh is sent again only when it provably never reached the server, or the server
//!   said to retry ([`RefreshTokenSource::should_retry`](crate::TokenSource::should_retry));
//! * `invalid_grant` means the login is dead: [`Error::ReauthorizationRequired`], and the
//!   stored login is marked dead ([`StoredTokens::dead`]: when, why), kept for a person to
//!   look at; nothing is sent with it again until a new login is saved over it.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::login::stored_from_token;
use super::OAuthClient;
use crate::engine::{ErrorShape, Param};
use crate::error::{Error, ReauthorizationReason};
use crate::source::{FetchContext, FetchReason, TokenSource};
use crate::store::{DeadLogin, StoreLock, StoredTokens, TokenStore};
use crate::token::Token;
use crate::AuthMiddleware;

/// Auth0's (and Pentaleap's) limit on a login: after 180 days the authorization flow has to
/// be redone.
pub const DEFAULT_SESSION_LIMIT: Duration = Duration::from_secs(180 * 24 * 60 * 60);

/// A stored access token is reused (instead of refreshing) only if it has at least this
/// long left.
const REUSE_MARGIN: Duration = Duration::from_secs(60);

/// A token source that refreshes with `grant_type=refresh_token` and persists each rotated
/// refresh token in a [`TokenStore`] before anything else happens with the answer.
///
/// The store must hold a login first (see [`OAuthClient::begin_login`] and
/// [`PendingLogin::complete`](crate::oauth2::PendingLogin::complete)), or tokens obtained elsewhere
/// ([`StoredTokens::from_refresh_token`]).
///
/// ```
/// use std::sync::Arc;
/// use reqwest_partner_auth::oauth2::{OAuthClient, RefreshTokenAuth, RefreshTokenSource};
/// use reqwest_partner_auth::store::FileStore;
/// use url::Url;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let client = OAuthClient::auth0("tenant.eu.auth0.com", "my-client-id")?;
/// let store = Arc::new(FileStore::new(std::env::temp_dir().join("pentaleap-tokens.json")));
/// let source = RefreshTokenSource::new(client, store, "pentaleap")
///     .param("scope", "offline_access read:campaigns")
///     .add_origin(&Url::parse("https://api.pentaleap.example")?);
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(RefreshTokenAuth::from_source(source))
///     .build();
/// # let _ = client; Ok(()) }
/// ```
///
/// # Failures
/// * A refresh is retried only when it provably did not reach the server (a connection
///   failure) or the server said to retry (429 or 503 with `Retry-After`). Any other failure
///   (500, 502, 504, a 503 without `Retry-After`, a timeout, a lost answer) may have consumed
///   the refresh token at the server, so it is not resent on a guess: the caller gets the
///   error ([`Error::TokenEndpoint`], [`Error::Transport`]) and the next fetch reads the store
///   again before sending anything.
/// * When the store cannot save the rotated tokens, the new access token is still used and
///   the rotated tokens stay in this process's memory: the next fetch saves them before
///   anything else, and if the store still fails, refreshes with the rotated refresh token
///   held in memory (never the stale stored one).
/// * `invalid_grant` marks the stored login dead ([`StoredTokens::dead`]) and returns
///   [`Error::ReauthorizationRequired`]; later fetches return it without sending anything,
///   until a new login is saved under the key.
///
/// # The crash window
/// The server rotates the refresh token when it answers; until the answer is saved, the only
/// copy of the new refresh token is in this process. The save is the first thing done with
/// the answer (no logging, no other request in between), so the window is the time the answer
/// takes to arrive plus one store write. A process killed inside it leaves the store with the
/// refresh token the server has just consumed: the next process sends it, the server sees a
/// reuse and revokes the login ([`Error::ReauthorizationRequired`]; a person has to log in
/// again). No client can close this window.
///
/// The remedy is on the server: a **reuse interval** (Auth0's refresh-token rotation "Reuse
/// Interval" / "Rotation Overlap Period", `leeway` in the Management API), during which the
/// previous refresh token is still accepted. A process restarted within the interval then
/// refreshes with the stored token and recovers. Set it to a few seconds more than a restart
/// takes; within it a stolen previous token is not detected as a reuse. So that the restarted
/// process refreshes at once, even when the store still holds an access token with long to
/// live (a refresh ahead of expiry, or after a rejection), every refresh first marks the login
/// in the store ([`StoredTokens::refresh_started_at`]) and the save of the answer clears the
/// mark: a process that finds the mark refreshes before using the stored access token. That
/// costs one store write per refresh; a store that cannot take the mark does not stop the
/// refresh.
pub struct RefreshTokenSource {
    client: OAuthClient,
    store: Arc<dyn TokenStore>,
    key: String,
    api_scope: Vec<Url>,
    session_limit: Option<Duration>,
    /// Extra parameters of every refresh request (`scope`, `audience`, `resource`).
    params: Vec<(String, String)>,
    /// Tokens the server issued that could not be saved yet: saved first at the next fetch,
    /// and used as they are while the store fails, so a failing store does not lose a rotated
    /// refresh token. Shared with the task that sends a refresh and saves its answer.
    unsaved: Arc<Mutex<Option<StoredTokens>>>,
    /// The access token this source handed out last, and when it expires. Found again in
    /// the store, it means no one refreshed since: an expiring token is then refreshed, not
    /// re-read. A stored token that expires later is newer: another process refreshed.
    handed_out: Mutex<Option<(SecretString, Option<SystemTime>)>>,
}

impl fmt::Debug for RefreshTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenSource")
            .field("client", &self.client)
            .field("key", &self.key)
            .field("session_limit", &self.session_limit)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl RefreshTokenSource {
    /// Refreshes the login stored under `key` in `store`.
    pub fn new(client: OAuthClient, store: Arc<dyn TokenStore>, key: impl Into<String>) -> Self {
        Self {
            client,
            store,
            key: key.into(),
            api_scope: Vec::new(),
            session_limit: Some(DEFAULT_SESSION_LIMIT),
            params: Vec::new(),
            unsaved: Arc::default(),
            handed_out: Mutex::new(None),
        }
    }

    /// Adds an API origin the access token is attached to (the PCM domain for Pentaleap).
    pub fn add_origin(mut self, url: &Url) -> Self {
        self.api_scope.push(url.clone());
        self
    }

    /// How long a login lasts before a person must log in again (default
    /// [`DEFAULT_SESSION_LIMIT`], 180 days); `None` for no limit.
    pub fn session_limit(mut self, limit: Option<Duration>) -> Self {
        self.session_limit = limit;
        self
    }

    /// Adds a parameter to every refresh request, after `refresh_token`: `scope` (to narrow
    /// the scopes, RFC 6749 §6), `audience` (Auth0), `resource` (RFC 8707).
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    fn take_unsaved(&self) -> Option<StoredTokens> {
        self.unsaved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn hand_out(&self, token: Token, now: SystemTime) -> Token {
        let expires_at = token
            .lifetime_at(now)
            .and_then(|life| now.checked_add(life));
        let mut last = self.handed_out.lock().unwrap_or_else(|p| p.into_inner());
        *last = Some((token.secret().clone(), expires_at));
        drop(last);
        token
    }

    /// When the token handed out last expires: `None` if none was handed out yet,
    /// `Some(None)` if its expiry is unknown.
    fn handed_out_expiry(&self) -> Option<Option<SystemTime>> {
        let last = self.handed_out.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref().map(|(_, at)| *at)
    }

    /// Whether the stored access token is the one this source handed out last.
    fn stored_is_ours(&self, stored: &StoredTokens) -> bool {
        let ours = self.handed_out.lock().unwrap_or_else(|p| p.into_inner());
        match (&*ours, &stored.access_token) {
            (Some((a, _)), Some(b)) => a.expose_secret() == b.expose_secret(),
            _ => false,
        }
    }

    /// The login to work with: tokens a failed save left in memory (saved now if the store
    /// allows; used as they are if not), else what the store holds.
    async fn current(&self) -> Result<StoredTokens, Error> {
        if let Some(unsaved) = self.take_unsaved() {
            // A new login saved meanwhile (a person logged in again) wins over the tokens of
            // the old one.
            let replaced = matches!(
                self.store.load(&self.key).await,
                Ok(Some(stored)) if stored.authorized_at != unsaved.authorized_at
            );
            let saved = save_or_keep(&*self.store, &self.key, &self.unsaved, unsaved.clone());
            if !replaced && saved.await.is_err() {
                // The store still fails: the rotated tokens in memory are the only valid ones.
                return Ok(unsaved);
            }
        }
        self.store
            .load(&self.key)
            .await?
            .ok_or_else(|| Error::ReauthorizationRequired {
                reason: ReauthorizationReason::NoLogin,
                message: "no login stored; log in first".into(),
            })
    }

    /// Refreshes the login `stored`, under the store's `lock`.
    async fn refresh(
        &self,
        stored: &StoredTokens,
        cx: &FetchContext,
        lock: StoreLock,
    ) -> Result<Token, Error> {
        let now = cx.clock().system_now();
        if let Some(limit) = self.session_limit {
            if now.duration_since(stored.authorized_at).unwrap_or_default() >= limit {
                return Err(Error::ReauthorizationRequired {
                    reason: ReauthorizationReason::SessionExpired,
                    message: format!("the login is older than {} days", limit.as_secs() / 86_400),
                });
            }
        }
        let refresh_token =
            stored
                .refresh_token
                .clone()
                .ok_or_else(|| Error::ReauthorizationRequired {
                    reason: ReauthorizationReason::NoLogin,
                    message: "no refresh token stored; log in first".into(),
                })?;
        let params = std::iter::once(("refresh_token".to_owned(), Param::Secret(refresh_token)))
            .chain(
                self.params
                    .iter()
                    .map(|(k, v)| (k.clone(), Param::Text(v.clone()))),
            );
        // A leased lock (Redis) must outlive the request, or another process could refresh
        // with the same token once the lease ran out.
        lock.ensure_held_for(crate::cache::DEFAULT_FETCH_DEADLINE)?;
        // Mark the login as being refreshed before the refresh token is sent: if this process
        // dies before the answer is saved, the next one finds the mark and refreshes at once
        // (within the server's reuse interval) instead of using the stored access token for
        // the rest of its life. The answer's save clears it. A mark that cannot be saved only
        // loses that head start: the refresh goes ahead.
        let mut marked = stored.clone();
        marked.refresh_started_at = Some(now);
        if let Err(err) = self.store.save(&self.key, &marked).await {
            tracing::warn!(error = %err, "could not mark the login as being refreshed");
        }
        let request = self.client.token_request("refresh_token", params);
        let errors = ErrorShape::oauth2().reauthorize_codes(&["invalid_grant"]);
        tracing::debug!("refreshing the access token with the stored refresh token");
        // Once sent, the refresh token may be consumed: the request and the save of its answer
        // run in a task of their own, holding the store's lock, so a caller that gives up (the
        // cache's fetch deadline, a dropped future) cannot drop the rotated token on the floor
        // or let another refresh read the store before it is saved.
        let (store, key, unsaved) = (
            Arc::clone(&self.store),
            self.key.clone(),
            Arc::clone(&self.unsaved),
        );
        let (stored, cx) = (stored.clone(), cx.clone());
        let task = tokio::spawn(async move {
            let _lock = lock;
            match request.request_token(&[], &errors, &cx).await {
                Ok(token) => {
                    // The server has rotated the refresh token: persist it before anything
                    // else. A failed save keeps it in memory, and the access token is used.
                    let tokens = stored_from_token(&token, now, Some(&stored));
                    let _ = save_or_keep(&*store, &key, &unsaved, tokens).await;
                    Ok(token)
                }
                Err(Error::ReauthorizationRequired { reason, message }) => {
                    // The login is dead: mark it (when, why), keep the tokens for inspection.
                    // Not kept in memory if the store fails: a dead token sent again costs a
                    // request, while a mark saved later could overwrite a new login.
                    let mut dead = stored;
                    dead.refresh_started_at = None;
                    dead.dead = Some(DeadLogin::new(cx.clock().system_now(), message.clone()));
                    if let Err(err) = store.save(&key, &dead).await {
                        tracing::warn!(error = %err, "could not mark the dead login in the store");
                    }
                    Err(Error::ReauthorizationRequired { reason, message })
                }
                Err(err) => Err(err),
            }
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(Error::SourcePanicked),
            Err(_) => Err(Error::FetchCancelled),
        }
    }
}

/// Saves `tokens` under `key`; if the store fails, keeps them in `unsaved` (saved first at the
/// next fetch) and says so.
async fn save_or_keep(
    store: &dyn TokenStore,
    key: &str,
    unsaved: &Mutex<Option<StoredTokens>>,
    tokens: StoredTokens,
) -> Result<(), Error> {
    match store.save(key, &tokens).await {
        Ok(()) => Ok(()),
        Err(err) => {
            *unsaved.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokens);
            tracing::error!(error = %err, "could not save the rotated refresh token; keeping it in memory");
            Err(err)
        }
    }
}

#[async_trait::async_trait]
impl TokenSource for RefreshTokenSource {
    async fn fetch(&self, cx: &FetchContext) -> Result<Token, Error> {
        let lock = self.store.lock(&self.key).await?;
        let stored = self.current().await?;
        if let Some(dead) = &stored.dead {
            return Err(Error::ReauthorizationRequired {
                reason: ReauthorizationReason::DeadLogin,
                message: format!(
                    "the stored login was refused by the authorization server ({}); log in again",
                    dead.reason
                ),
            });
        }
        // Reuse a stored access token only if someone else stored it (another process, or a
        // refresh whose save failed): the one we handed out is expiring or was rejected. Not
        // while a refresh is marked as sent and unanswered: its sender died or failed, and the
        // stored refresh token may be consumed already; refreshing now is the only chance
        // the server's reuse interval gives to recover it.
        if cx.reason() != FetchReason::Rejected
            && !self.stored_is_ours(&stored)
            && stored.refresh_started_at.is_none()
        {
            let now = cx.clock().system_now();
            if let Some(token) = reusable(&stored, now, self.handed_out_expiry())? {
                tracing::debug!("using the access token another refresh stored");
                return Ok(self.hand_out(token, now));
            }
        }
        let token = self.refresh(&stored, cx, lock).await?;
        Ok(self.hand_out(token, cx.clock().system_now()))
    }

    /// A refresh token may have been consumed by any request that reached the server, so a
    /// refresh is retried only when it provably did not (a connection that could not be
    /// established, or not in time: nothing was sent) or the server said to retry (429 or 503
    /// with `Retry-After`). A timeout once connected, a lost answer, a 500, 502, 504 or a 503
    /// without `Retry-After` is not retried: sending the token again could count as reuse and
    /// revoke the login.
    fn should_retry(&self, error: &Error) -> bool {
        match error {
            Error::Transport { source, .. } => source.is_connect(),
            Error::TokenEndpoint {
                status,
                retry_after: Some(_),
                ..
            } => {
                *status == StatusCode::TOO_MANY_REQUESTS
                    || *status == StatusCode::SERVICE_UNAVAILABLE
            }
            _ => false,
        }
    }

    fn api_origins(&self) -> Vec<Url> {
        self.api_scope.clone()
    }

    fn allows_insecure_http(&self) -> bool {
        self.client.allow_insecure_http
    }

    fn name(&self) -> &str {
        "oauth2_refresh_token"
    }

    fn endpoint(&self) -> Option<&Url> {
        Some(&self.client.token_url)
    }
}

/// The stored access token (one this source did not hand out), if it has comfortably long
/// left, or if it is newer than the token this source holds and lives at least
/// [`MIN_TOKEN_LIFETIME`](crate::token::MIN_TOKEN_LIFETIME) more: another process refreshed,
/// so short-lived tokens are shared too instead of each process refreshing. A source that
/// holds no token yet (a process starting) takes only a comfortably long-lived one.
/// `ours` is when the token handed out last expires (`None`: none handed out yet).
fn reusable(
    stored: &StoredTokens,
    now: SystemTime,
    ours: Option<Option<SystemTime>>,
) -> Result<Option<Token>, Error> {
    let (Some(token), Some(at)) = (&stored.access_token, stored.access_expires_at) else {
        return Ok(None);
    };
    let left = at.duration_since(now).unwrap_or_default();
    let newer = match ours {
        Some(Some(ours)) => at > ours,
        None | Some(None) => false,
    };
    if left > REUSE_MARGIN || (newer && left >= crate::token::MIN_TOKEN_LIFETIME) {
        let token = Token::bearer(token.expose_secret())?;
        return Ok(Some(token.with_expiry(crate::token::Expiry::At(at))));
    }
    Ok(None)
}

/// The refresh-token layer: an [`AuthMiddleware`] over a [`RefreshTokenSource`].
pub type RefreshTokenAuth = AuthMiddleware<RefreshTokenSource>;

impl AuthMiddleware<RefreshTokenSource> {
    /// A refresh-token layer for the login stored under `key` in `store`, attached to
    /// requests for the origin of `api`. For other settings build a [`RefreshTokenSource`]
    /// and use [`AuthMiddleware::builder`](crate::AuthMiddleware::builder).
    pub fn new(
        client: OAuthClient,
        store: Arc<dyn TokenStore>,
        key: impl Into<String>,
        api: &Url,
    ) -> Self {
        Self::from_source(RefreshTokenSource::new(client, store, key).add_origin(api))
    }
}
