//! [`MemoryStore`]: tokens in this process only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{StoreLock, StoredTokens, TokenStore};
use crate::error::{Error, StoreError, StoreErrorKind};

/// How long [`TokenStore::lock`] of [`MemoryStore`] and [`FileStore`](crate::store::FileStore)
/// waits for a credential's lock by default before failing with
/// [`StoreErrorKind::LockTimeout`]: 20 seconds, longer than a token request that is retried
/// a few times, short enough that a frozen holder does not block callers forever.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(20);

/// Keeps tokens in memory: fine for credentials that can log in again without a person
/// (nothing survives a restart). Clones share the same storage.
///
/// [`TokenStore::lock`] waits at most the [lock timeout](MemoryStore::lock_timeout)
/// (default [`DEFAULT_LOCK_TIMEOUT`]), on tokio's clock.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    tokens: Arc<Mutex<HashMap<String, StoredTokens>>>,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
    lock_timeout: Duration,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            tokens: Arc::default(),
            locks: Arc::default(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long [`lock`](TokenStore::lock) waits for a lock another task holds before
    /// failing with [`StoreErrorKind::LockTimeout`]. Default [`DEFAULT_LOCK_TIMEOUT`].
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait::async_trait]
impl TokenStore for MemoryStore {
    async fn load(&self, key: &str) -> Result<Option<StoredTokens>, Error> {
        Ok(lock(&self.tokens).get(key).cloned())
    }

    async fn save(&self, key: &str, tokens: &StoredTokens) -> Result<(), Error> {
        lock(&self.tokens).insert(key.to_owned(), tokens.clone());
        Ok(())
    }

    /// # Errors
    /// [`Error::Store`] with [`StoreErrorKind::LockTimeout`] when another task held the lock
    /// for longer than the [lock timeout](MemoryStore::lock_timeout).
    async fn lock(&self, key: &str) -> Result<StoreLock, Error> {
        let mutex = Arc::clone(lock(&self.locks).entry(key.to_owned()).or_default());
        match tokio::time::timeout(self.lock_timeout, mutex.lock_owned()).await {
            Ok(guard) => Ok(StoreLock::new(guard)),
            Err(_) => Err(StoreError::new(
                StoreErrorKind::LockTimeout,
                format!(
                    "the lock of a memory store key was not free within {:?}",
                    self.lock_timeout
                ),
            )
            .into()),
        }
    }
}
