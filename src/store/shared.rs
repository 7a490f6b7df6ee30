//! [`SharedSource`]: one token fetch for every process that shares a store.
//!
//! The module is private; the documentation users see is on [`SharedSource`].

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{StoreLock, StoredTokens, TokenStore};
use crate::cache::DEFAULT_FETCH_DEADLINE;
use crate::error::Error;
use crate::source::{FetchContext, TokenSource};
use crate::token::{Expiry, Token};

/// A stored token is reused only with more than this left, or half its lifetime for tokens
/// that live less than two minutes.
const REUSE_MARGIN: Duration = Duration::from_secs(60);

/// Wraps any [`TokenSource`] so that the processes sharing a [`TokenStore`] fetch one token
/// for all of them: under the store's lock for `key`, a token another process stored and that
/// is still fresh is reused; otherwise the inner source fetches and the token is saved, with
/// its expiry, for the others.
///
/// With a [`RedisStore`](crate::store::RedisStore) that is one fetch per token lifetime for a
/// whole fleet, whatever its size; with a [`FileStore`](crate::store::FileStore), for the
/// processes of one machine; with a [`MemoryStore`](crate::store::MemoryStore), for the
/// caches of one process.
///
/// ```
/// use std::sync::Arc;
/// use reqwest_partner_auth::store::{MemoryStore, SharedSource};
/// use reqwest_partner_auth::{engine::HttpTokenSource, AuthMiddleware};
/// use url::Url;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let source = HttpTokenSource::post(Url::parse("https://auth.partner.example/token")?);
/// let shared = SharedSource::new(source, Arc::new(MemoryStore::new()), "partner/client-a");
/// let layer = AuthMiddleware::from_source(shared);
/// # let _ = layer; Ok(()) }
/// ```
///
/// # Which stored token is reused
/// * never the token this source handed out last: found again in the store it means no one
///   fetched since, and the cache asks because that token is expiring or was rejected;
/// * after a rejection (a 401), only a token someone stored since;
/// * only with more than half its lifetime or a minute left, whichever is less, so tokens of
///   two seconds are shared as well as tokens of an hour.
///
/// # When the store fails
/// A store that cannot be locked or read (Redis down, a lock held by a process that froze)
/// does not stop requests: the inner source fetches locally, logged at `warn`, and the token
/// is not shared until the store is back. A failed save is logged and the token used. A
/// leased lock with less left than the [request deadline](SharedSource::request_deadline)
/// sends nothing and fails with [`Error::Store`].
///
/// The entry under `key` belongs to this source: do not use the same key for a
/// [`RefreshTokenSource`](crate::oauth2::RefreshTokenSource), which keeps its refresh token
/// there (it shares its tokens through the store by itself).
pub struct SharedSource<S> {
    inner: S,
    store: Arc<dyn TokenStore>,
    key: String,
    request_deadline: Duration,
    /// The `Authorization` value this source handed out last.
    handed_out: Mutex<Option<SecretString>>,
}

impl<S: fmt::Debug> fmt::Debug for SharedSource<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSource")
            .field("inner", &self.inner)
            .field("key", &self.key)
            .field("request_deadline", &self.request_deadline)
            .finish_non_exhaustive()
    }
}

impl<S: TokenSource> SharedSource<S> {
    /// Shares the tokens of `inner` through `store` under `key` (name the credential, e.g.
    /// `partner/client-id`; [`RedisStore`](crate::store::RedisStore) hashes it).
    pub fn new(inner: S, store: Arc<dyn TokenStore>, key: impl Into<String>) -> Self {
        Self {
            inner,
            store,
            key: key.into(),
            request_deadline: DEFAULT_FETCH_DEADLINE,
            handed_out: Mutex::new(None),
        }
    }

    /// How long the inner source's request may take (default
    /// [`DEFAULT_FETCH_DEADLINE`](crate::cache::DEFAULT_FETCH_DEADLINE); set the cache's
    /// `fetch_deadline` if you change it). A leased lock with less left sends nothing.
    pub fn request_deadline(mut self, deadline: Duration) -> Self {
        self.request_deadline = deadline;
        self
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn last(&self) -> std::sync::MutexGuard<'_, Option<SecretString>> {
        self.handed_out.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn hand_out(&self, token: Token) -> Token {
        if let Ok(value) = token.header_value().to_str() {
            *self.last() = Some(SecretString::from(value.to_owned()));
        }
        token
    }

    /// The stored token, if another fetch stored it and it is fresh enough.
    fn reusable(&self, stored: &StoredTokens, now: SystemTime) -> Option<Token> {
        let value = stored.access_token.as_ref()?;
        if let Some(ours) = &*self.last() {
            if ours.expose_secret() == value.expose_secret() {
                return None;
            }
        }
        let expiry = match stored.access_expires_at {
            Some(at) => {
                let left = at.duration_since(now).ok()?;
                let lifetime = at.duration_since(stored.authorized_at).unwrap_or_default();
                if left <= (lifetime / 2).min(REUSE_MARGIN) {
                    return None;
                }
                Expiry::At(at)
            }
            None => Expiry::Unknown,
        };
        let (scheme, secret) = value.expose_secret().split_once(' ')?;
        Token::with_scheme(scheme, secret)
            .ok()
            .map(|t| t.with_expiry(expiry))
    }

    async fn save(&self, token: &Token, now: SystemTime) {
        let Ok(value) = token.header_value().to_str() else {
            return;
        };
        let expires_at = match token.expiry() {
            Expiry::In(d) => Some(now + d),
            Expiry::At(t) => Some(t),
            Expiry::Unknown => None,
        };
        let tokens = StoredTokens::new(
            Some(SecretString::from(value.to_owned())),
            expires_at,
            None,
            now,
        );
        if let Err(err) = self.store.save(&self.key, &tokens).await {
            tracing::warn!(error = %err, "could not share the new token through the store");
        }
    }

    /// Under the lock: a stored token to reuse, if any.
    async fn stored(&self, cx: &FetchContext) -> Option<Token> {
        match self.store.load(&self.key).await {
            Ok(Some(stored)) => {
                // Whatever the reason (first, expiring, rejected), ours is never reused, and
                // anything else in the store replaced it since.
                self.reusable(&stored, cx.clock().system_now())
            }
            Ok(None) => None,
            Err(err) => {
                tracing::warn!(error = %err, "the shared token store cannot be read; fetching locally");
                None
            }
        }
    }
}

#[async_trait::async_trait]
impl<S: TokenSource> TokenSource for SharedSource<S> {
    async fn fetch(&self, cx: &FetchContext) -> Result<Token, Error> {
        let lock: Option<StoreLock> = match self.store.lock(&self.key).await {
            Ok(lock) => Some(lock),
            Err(err) => {
                tracing::warn!(error = %err, "the shared token store cannot be locked; fetching locally");
                None
            }
        };
        if let Some(lock) = &lock {
            if let Some(token) = self.stored(cx).await {
                tracing::debug!("using the token another process stored");
                return Ok(self.hand_out(token));
            }
            lock.ensure_held_for(self.request_deadline)?;
        }
        let token = self.inner.fetch(cx).await?;
        if lock.is_some() {
            self.save(&token, cx.clock().system_now()).await;
        }
        drop(lock);
        Ok(self.hand_out(token))
    }

    fn should_retry(&self, error: &Error) -> bool {
        self.inner.should_retry(error)
    }

    fn api_origins(&self) -> Vec<Url> {
        self.inner.api_origins()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn endpoint(&self) -> Option<&Url> {
        self.inner.endpoint()
    }

    fn allows_insecure_http(&self) -> bool {
        self.inner.allows_insecure_http()
    }
}
