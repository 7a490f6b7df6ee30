//! [`MemoryStore`]: tokens in this process only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{StoreLock, StoredTokens, TokenStore};
use crate::error::Error;

/// Keeps tokens in memory: fine for credentials that can log in again without a person
/// (nothing survives a restart). Clones share the same storage.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    tokens: Arc<Mutex<HashMap<String, StoredTokens>>>,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
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

    async fn lock(&self, key: &str) -> Result<StoreLock, Error> {
        let mutex = Arc::clone(lock(&self.locks).entry(key.to_owned()).or_default());
        Ok(StoreLock::new(mutex.lock_owned().await))
    }
}
