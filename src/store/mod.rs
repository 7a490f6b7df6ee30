//! [`TokenStore`]: where tokens that must survive a restart live.
//!
//! A rotating refresh token works once: the new one has to be saved before the new access
//! token is used, and two refreshes of the same credential must never run at once, within
//! a process or across processes. A store provides both: [`TokenStore::save`] and an
//! exclusive [`TokenStore::lock`] per key.

#[cfg(feature = "file-store")]
mod file;
mod memory;
#[cfg(feature = "redis")]
mod redis;
mod shared;

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use secrecy::SecretString;

use crate::error::Error;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisStore, DEFAULT_LEASE, DEFAULT_REDIS_LOCK_TIMEOUT};
#[cfg(feature = "file-store")]
#[cfg_attr(docsrs, doc(cfg(feature = "file-store")))]
pub use file::FileStore;
pub use memory::{MemoryStore, DEFAULT_LOCK_TIMEOUT};
pub use shared::SharedSource;

/// The tokens of one login, as a store keeps them.
#[derive(Clone)]
#[non_exhaustive]
pub struct StoredTokens {
    /// The last access token, if one was saved.
    pub access_token: Option<SecretString>,
    /// When that access token expires (wall clock), if known.
    pub access_expires_at: Option<SystemTime>,
    /// The refresh token to use next; `None` once it is known to be dead.
    pub refresh_token: Option<SecretString>,
    /// When the person logged in (the start of the partner's session limit).
    pub authorized_at: SystemTime,
    /// Set once the authorization server declared this login dead (the refresh token was
    /// rejected as expired, reused or revoked): when and why. A dead login is kept, not
    /// deleted, so a person can see what happened; nothing is sent with it until a new
    /// login replaces it.
    pub dead: Option<DeadLogin>,
    /// Set when a refresh was sent with `refresh_token` and its answer not saved yet: when
    /// it was sent. [`RefreshTokenSource`](crate::oauth2::RefreshTokenSource) saves it before
    /// sending, and the save of the answer clears it. Found by a process that is not
    /// refreshing, it means the process that was died (or its refresh failed) and the server
    /// may already have consumed the stored refresh token: the login is then refreshed at
    /// once, within the server's reuse interval, instead of after the stored access token's
    /// remaining life.
    pub refresh_started_at: Option<SystemTime>,
}

/// When and why a stored login stopped working.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLogin {
    /// When the authorization server refused it (wall clock).
    pub at: SystemTime,
    /// The server's explanation (scrubbed of secrets), or what this crate concluded.
    pub reason: String,
}

impl DeadLogin {
    /// A login found dead at `at` because of `reason`.
    pub fn new(at: SystemTime, reason: impl Into<String>) -> Self {
        Self {
            at,
            reason: reason.into(),
        }
    }
}

impl StoredTokens {
    /// The login of a refresh token obtained elsewhere (another library, a console, a
    /// migration), made at `authorized_at` (the start of the partner's session limit): a
    /// store holding it is ready for [`RefreshTokenSource`](crate::oauth2::RefreshTokenSource). Add the access
    /// token that came with it, if any, with [`with_access_token`](Self::with_access_token).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use reqwest_partner_auth::store::{MemoryStore, StoredTokens, TokenStore};
    /// # async fn run() -> Result<(), reqwest_partner_auth::Error> {
    /// let now = SystemTime::now();
    /// let tokens = StoredTokens::from_refresh_token("v1.MRr...", now)
    ///     .with_access_token("eyJhbGciOi...", now + Duration::from_secs(3600));
    /// let store = MemoryStore::new();
    /// store.save("pentaleap", &tokens).await?;
    /// # Ok(()) }
    /// ```
    pub fn from_refresh_token(refresh_token: impl Into<String>, authorized_at: SystemTime) -> Self {
        Self::new(
            None,
            None,
            Some(SecretString::from(refresh_token.into())),
            authorized_at,
        )
    }

    /// The same login with `access_token`, valid until `expires_at` (wall clock). A stored
    /// access token with more than a minute left is used before any refresh.
    pub fn with_access_token(
        mut self,
        access_token: impl Into<String>,
        expires_at: SystemTime,
    ) -> Self {
        self.access_token = Some(SecretString::from(access_token.into()));
        self.access_expires_at = Some(expires_at);
        self
    }

    /// Tokens of a login made at `authorized_at`.
    pub fn new(
        access_token: Option<SecretString>,
        access_expires_at: Option<SystemTime>,
        refresh_token: Option<SecretString>,
        authorized_at: SystemTime,
    ) -> Self {
        Self {
            access_token,
            access_expires_at,
            refresh_token,
            authorized_at,
            dead: None,
            refresh_started_at: None,
        }
    }
}

impl fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredTokens")
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "[redacted]"),
            )
            .field("access_expires_at", &self.access_expires_at)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("authorized_at", &self.authorized_at)
            .field("dead", &self.dead)
            .field("refresh_started_at", &self.refresh_started_at)
            .finish()
    }
}

/// Held while one task refreshes a credential; dropping it releases the lock.
///
/// A lock may be leased ([`RedisStore`]'s is): it then ends by
/// itself after a while, so that a process that died holding it cannot block the others, and
/// [`remaining`](StoreLock::remaining) says how long it is still held. A holder must not send
/// a request that may outlive its lease.
pub struct StoreLock {
    _guard: Box<dyn Send + Sync>,
    held_until: Option<Instant>,
}

impl StoreLock {
    /// Wraps whatever keeps the lock held (a mutex guard, a locked file): held until dropped.
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Self {
            _guard: Box::new(guard),
            held_until: None,
        }
    }

    /// Wraps a leased lock: held until dropped, but no longer than `until` (real clock).
    pub fn leased(guard: impl Send + Sync + 'static, until: Instant) -> Self {
        Self {
            _guard: Box::new(guard),
            held_until: Some(until),
        }
    }

    /// How long the lock is still held for sure: `None` when it is held until dropped
    /// ([`MemoryStore`], [`FileStore`]), else what is left of its
    /// lease (zero once it ran out).
    pub fn remaining(&self) -> Option<Duration> {
        self.held_until
            .map(|until| until.saturating_duration_since(Instant::now()))
    }

    /// Checks that the lock is still held for at least `needed` (the deadline of the request
    /// about to be sent under it).
    ///
    /// # Errors
    /// [`Error::Store`] of kind [`StoreErrorKind::LockTimeout`](crate::error::StoreErrorKind::LockTimeout)
    /// when the lease has less than `needed` left: sending now could let another holder send
    /// the same request once the lease ran out.
    pub fn ensure_held_for(&self, needed: Duration) -> Result<(), Error> {
        match self.remaining() {
            Some(left) if left < needed => Err(crate::error::StoreError::new(
                crate::error::StoreErrorKind::LockTimeout,
                format!(
                    "the lock's lease has {left:?} left, less than the {needed:?} a token request may take; nothing was sent"
                ),
            )
            .into()),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for StoreLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreLock")
    }
}

/// Persistent storage for [`StoredTokens`], keyed by credential.
#[async_trait::async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// The tokens saved under `key`, if any.
    ///
    /// # Errors
    /// [`Error::Store`] when the storage cannot be read or holds something unreadable.
    async fn load(&self, key: &str) -> Result<Option<StoredTokens>, Error>;

    /// Saves `tokens` under `key`, replacing what was there. When it returns `Ok`, the tokens
    /// survive a crash.
    ///
    /// # Errors
    /// [`Error::Store`] when the tokens could not be saved.
    async fn save(&self, key: &str, tokens: &StoredTokens) -> Result<(), Error>;

    /// Waits for, then holds, the exclusive lock of `key` (across tasks, and for shared
    /// stores across processes) until the returned guard is dropped. The wait is bounded:
    /// the stores of this crate give up after their lock timeout (default
    /// [`DEFAULT_LOCK_TIMEOUT`]), and a store of your own should too, so that a task or
    /// process that froze while holding the lock cannot block every refresh.
    ///
    /// # Errors
    /// [`Error::Store`] when the lock cannot be taken; with
    /// [`StoreErrorKind::LockTimeout`](crate::error::StoreErrorKind::LockTimeout) when it was not
    /// free in time.
    async fn lock(&self, key: &str) -> Result<StoreLock, Error>;
}
