//! [`RedisStore`]: tokens and one leased lock per credential in Redis, shared by a fleet.
//!
//! The module is private; the documentation users see is on [`RedisStore`].

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisError, Script};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DeadLogin, StoreLock, StoredTokens, TokenStore};
use crate::cache::DEFAULT_FETCH_DEADLINE;
use crate::error::{Error, StoreError, StoreErrorKind};

/// How long a [`RedisStore`] lock is leased by default: the cache's
/// [`DEFAULT_FETCH_DEADLINE`] (30 s) plus 10 s, so a token request sent under it ends (or is
/// given up) before the lease does.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(DEFAULT_FETCH_DEADLINE.as_secs() + 10);

/// How long [`RedisStore`]'s [`lock`](TokenStore::lock) waits by default: the
/// [`DEFAULT_LEASE`] plus 5 s, so a waiter outlives the lease of a holder that died.
pub const DEFAULT_REDIS_LOCK_TIMEOUT: Duration = Duration::from_secs(DEFAULT_LEASE.as_secs() + 5);

/// How long one Redis command (or a connection attempt) may take before the store reports
/// [`StoreErrorKind::Unavailable`].
const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest pause between two attempts to take a lock another process holds.
const MAX_POLL: Duration = Duration::from_millis(50);

/// Deletes the lock only if it still holds the caller's random value.
const RELEASE: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end"#;

/// The format version this code reads and writes.
const VERSION: u64 = 1;

/// Keeps tokens in Redis, shared by every process (on any machine) that opens the same server
/// with the same prefix, with one leased lock per credential: a fleet refreshes a credential
/// once, not once per process. Clones share one connection.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use reqwest_partner_auth::store::{RedisStore, SharedSource};
/// use reqwest_partner_auth::{oauth2::{ClientCredentialsSource, TokenUrl}, AuthMiddleware};
/// use url::Url;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::open("redis://127.0.0.1:6379/")?.prefix("billing:");
/// let source = ClientCredentialsSource::new(
///     TokenUrl::new(Url::parse("https://auth.partner.example/oauth/token")?),
///     "client-id",
///     "client-secret",
/// );
/// let shared = SharedSource::new(source, Arc::new(store), "partner/client-id");
/// let layer = AuthMiddleware::from_source(shared);
/// # let _ = layer; Ok(()) }
/// ```
///
/// # Keys and values
/// A credential key `k` lives under `<prefix><hex sha256(k)>`, its lock under
/// `<prefix><hex sha256(k)>:lock`: no credential name, let alone a secret, appears in a
/// Redis key. The value is JSON: `{"version":1,"access_token":..,"access_expires_at_ms":..,
/// "refresh_token":..,"authorized_at_ms":..,"dead":..,"refresh_started_at_ms":..}` (the last
/// two only when set), times in milliseconds since 1970.
/// Tokens are stored in clear (that is the store's purpose): protect the server (ACLs, TLS
/// through a `rediss://` URL with the `redis` crate's TLS features, a private network).
///
/// # Locking
/// [`lock`](TokenStore::lock) sets `<key>:lock` to a random value with `SET .. NX PX
/// <lease>` ([`lease`](RedisStore::lease), default [`DEFAULT_LEASE`]); a waiter polls with a
/// backoff from 2 ms up to 50 ms, at most the [lock timeout](RedisStore::lock_timeout)
/// (default [`DEFAULT_REDIS_LOCK_TIMEOUT`]), then fails with
/// [`StoreErrorKind::LockTimeout`]. Dropping the guard deletes the lock through a Lua
/// compare-and-delete, so only its owner releases it; a holder that died leaves it until the
/// lease ends. [`StoreLock::remaining`] tells a holder how long its lease has left; the
/// crate's sources send nothing under a lease shorter than the request's deadline.
///
/// Polling, not pub/sub: a waiter costs one `SET` per attempt (at most 20 a second, and only
/// while another process refreshes, once per token lifetime), needs no second connection
/// per process, and has nothing to miss when a release message is lost or the holder dies.
/// Measured (`tests/fleet.rs`, 4 processes x 32 requests for 10 s, 2-second tokens): 40 locks
/// taken, 13 `SET`s that found the lock held; pub/sub could save only those 13 commands.
///
/// # When Redis cannot be reached
/// The connection is made on first use and remade by itself when lost. A command that fails
/// or takes longer than the [I/O timeout](RedisStore::io_timeout) (default 2 s) fails with
/// [`Error::Store`] of kind [`StoreErrorKind::Unavailable`]. A [`SharedSource`](super::SharedSource)
/// then fetches locally; [`RefreshTokenSource`](crate::oauth2::RefreshTokenSource) returns the
/// error and sends nothing (a rotating refresh token must never be sent twice).
#[derive(Clone)]
pub struct RedisStore {
    client: Client,
    connection: Arc<Mutex<Option<ConnectionManager>>>,
    prefix: String,
    lease: Duration,
    lock_timeout: Duration,
    io_timeout: Duration,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.client.get_connection_info();
        f.debug_struct("RedisStore")
            .field("addr", &info.addr().to_string())
            .field("prefix", &self.prefix)
            .field("lease", &self.lease)
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on the Redis server at `url` (`redis://[user:password@]host[:port][/db]`).
    /// Nothing is connected yet: the first call connects, so a fleet can start while Redis is
    /// down.
    ///
    /// # Errors
    /// [`Error::Store`] of kind [`StoreErrorKind::Other`] when `url` is not a Redis URL (the
    /// message does not quote it: it may hold a password).
    pub fn open(url: &str) -> Result<Self, Error> {
        let client = Client::open(url).map_err(|e| {
            StoreError::new(
                StoreErrorKind::Other,
                format!("not a usable redis URL ({:?})", e.kind()),
            )
        })?;
        Ok(Self {
            client,
            connection: Arc::default(),
            prefix: "partner-auth:".into(),
            lease: DEFAULT_LEASE,
            lock_timeout: DEFAULT_REDIS_LOCK_TIMEOUT,
            io_timeout: DEFAULT_IO_TIMEOUT,
        })
    }

    /// The start of every key this store writes (default `partner-auth:`): give unrelated
    /// fleets on one server their own.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long a lock is leased (default [`DEFAULT_LEASE`]). Keep it longer than the token
    /// request's deadline (the cache's `fetch_deadline`).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long [`lock`](TokenStore::lock) waits for a lock another process holds
    /// (default [`DEFAULT_REDIS_LOCK_TIMEOUT`]).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// How long one command or connection attempt may take (default 2 s).
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }

    fn data_key(&self, key: &str) -> String {
        let digest = Sha256::digest(key.as_bytes());
        let mut out = String::with_capacity(self.prefix.len() + 64);
        out.push_str(&self.prefix);
        for b in digest {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    fn connection(&self) -> Result<ConnectionManager, Error> {
        let mut slot = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = &*slot {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.io_timeout))
            .set_response_timeout(Some(self.io_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            .map_err(|e| unavailable("could not set up the redis connection", e))?;
        *slot = Some(manager.clone());
        Ok(manager)
    }

    /// Runs `cmd` with the I/O timeout.
    async fn query<T: ::redis::FromRedisValue>(
        &self,
        cmd: &::redis::Cmd,
        what: &str,
    ) -> Result<T, Error> {
        let mut conn = self.connection()?;
        match tokio::time::timeout(self.io_timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(what, e)),
            Err(_) => Err(StoreError::unavailable(
                format!("{what}: redis did not answer within {:?}", self.io_timeout),
                std::io::Error::from(std::io::ErrorKind::TimedOut),
            )
            .into()),
        }
    }
}

fn unavailable(what: &str, e: RedisError) -> Error {
    // A redis error names the command's kind and the server's reply, never a value we sent.
    StoreError::unavailable(
        format!("{what}: redis is unavailable"),
        std::io::Error::other(e.to_string()),
    )
    .into()
}

/// A lock held in Redis: released (compare-and-delete) on drop.
struct RedisLock {
    connection: ConnectionManager,
    key: String,
    value: String,
}

impl Drop for RedisLock {
    fn drop(&mut self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // No runtime to release it with: the lease ends it.
            return;
        };
        let (mut conn, key, value) = (
            self.connection.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.value),
        );
        handle.spawn(async move {
            let script = Script::new(RELEASE);
            let mut invocation = script.key(key);
            invocation.arg(value);
            let release = invocation.invoke_async::<i64>(&mut conn);
            if !matches!(
                tokio::time::timeout(DEFAULT_IO_TIMEOUT, release).await,
                Ok(Ok(_))
            ) {
                tracing::debug!("could not release a redis lock; its lease will end it");
            }
        });
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    version: u64,
    access_token: Option<String>,
    access_expires_at_ms: Option<u64>,
    refresh_token: Option<String>,
    authorized_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dead: Option<DeadEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_started_at_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct DeadEntry {
    at_ms: u64,
    reason: String,
}

fn to_ms(t: SystemTime) -> Result<u64, Error> {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .map_err(|_| {
            StoreError::new(
                StoreErrorKind::Unsupported,
                "a time before 1970 cannot be stored",
            )
            .into()
        })
}

fn from_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn encode(tokens: &StoredTokens) -> Result<String, Error> {
    let entry = Entry {
        version: VERSION,
        access_token: tokens
            .access_token
            .as_ref()
            .map(|s| s.expose_secret().to_owned()),
        access_expires_at_ms: tokens.access_expires_at.map(to_ms).transpose()?,
        refresh_token: tokens
            .refresh_token
            .as_ref()
            .map(|s| s.expose_secret().to_owned()),
        authorized_at_ms: to_ms(tokens.authorized_at)?,
        dead: match &tokens.dead {
            Some(d) => Some(DeadEntry {
                at_ms: to_ms(d.at)?,
                reason: d.reason.clone(),
            }),
            None => None,
        },
        refresh_started_at_ms: tokens.refresh_started_at.map(to_ms).transpose()?,
    };
    serde_json::to_string(&entry)
        .map_err(|_| StoreError::new(StoreErrorKind::Other, "could not encode the tokens").into())
}

fn decode(raw: &[u8]) -> Result<StoredTokens, Error> {
    let corrupt = |what: &str| -> Error {
        StoreError::new(
            StoreErrorKind::Corrupt,
            format!("the redis value of a credential {what}"),
        )
        .into()
    };
    let entry: Entry = serde_json::from_slice(raw).map_err(|_| corrupt("is not readable"))?;
    if entry.version != VERSION {
        return Err(corrupt("has an unknown version"));
    }
    let mut tokens = StoredTokens::new(
        entry.access_token.map(SecretString::from),
        entry.access_expires_at_ms.map(from_ms),
        entry.refresh_token.map(SecretString::from),
        from_ms(entry.authorized_at_ms),
    );
    tokens.dead = entry
        .dead
        .map(|d| DeadLogin::new(from_ms(d.at_ms), d.reason));
    tokens.refresh_started_at = entry.refresh_started_at_ms.map(from_ms);
    Ok(tokens)
}

#[async_trait::async_trait]
impl TokenStore for RedisStore {
    /// # Errors
    /// [`Error::Store`]: [`StoreErrorKind::Unavailable`] when Redis cannot be reached,
    /// [`StoreErrorKind::Corrupt`] when the value cannot be read.
    async fn load(&self, key: &str) -> Result<Option<StoredTokens>, Error> {
        let raw: Option<Vec<u8>> = self
            .query(
                ::redis::cmd("GET").arg(self.data_key(key)),
                "could not load tokens",
            )
            .await?;
        raw.map(|r| decode(&r)).transpose()
    }

    /// # Errors
    /// [`Error::Store`]: [`StoreErrorKind::Unavailable`] when Redis cannot be reached (the
    /// write may or may not have happened).
    async fn save(&self, key: &str, tokens: &StoredTokens) -> Result<(), Error> {
        let value = encode(tokens)?;
        let () = self
            .query(
                ::redis::cmd("SET").arg(self.data_key(key)).arg(value),
                "could not save tokens",
            )
            .await?;
        Ok(())
    }

    /// # Errors
    /// [`Error::Store`]: [`StoreErrorKind::LockTimeout`] when another holder kept the lock
    /// past the [lock timeout](RedisStore::lock_timeout), [`StoreErrorKind::Unavailable`]
    /// when Redis cannot be reached.
    async fn lock(&self, key: &str) -> Result<StoreLock, Error> {
        let lock_key = format!("{}:lock", self.data_key(key));
        let value: String = rand::random::<[u8; 16]>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let lease_ms = self.lease.as_millis().max(1) as u64;
        let deadline = Instant::now() + self.lock_timeout;
        let mut pause = Duration::from_millis(2);
        loop {
            let started = Instant::now();
            let set: Option<String> = self
                .query(
                    ::redis::cmd("SET")
                        .arg(&lock_key)
                        .arg(&value)
                        .arg("NX")
                        .arg("PX")
                        .arg(lease_ms),
                    "could not take a lock",
                )
                .await?;
            if set.is_some() {
                let guard = RedisLock {
                    connection: self.connection()?,
                    key: lock_key,
                    value,
                };
                // The lease counts from before the SET was sent: never later than Redis's.
                return Ok(StoreLock::leased(guard, started + self.lease));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::new(
                    StoreErrorKind::LockTimeout,
                    format!(
                        "the redis lock of a credential was not free within {:?}",
                        self.lock_timeout
                    ),
                )
                .into());
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hashes_under_the_prefix_and_never_the_credential_name() {
        let store = RedisStore::open("redis://127.0.0.1:1/")
            .unwrap()
            .prefix("fleet:");
        let key = store.data_key("partner/secret-client");
        assert!(key.starts_with("fleet:"));
        assert_eq!(key.len(), "fleet:".len() + 64);
        assert!(!key.contains("secret"));
        assert_ne!(key, store.data_key("partner/other-client"));
    }

    #[test]
    fn values_round_trip_with_their_expiry_dead_mark_and_refresh_mark() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let mut tokens = StoredTokens::new(
            Some(SecretString::from("acc")),
            Some(at + Duration::from_secs(2)),
            Some(SecretString::from("ref")),
            at,
        );
        tokens.dead = Some(DeadLogin::new(at, "revoked"));
        tokens.refresh_started_at = Some(at + Duration::from_millis(7));
        let back = decode(encode(&tokens).unwrap().as_bytes()).unwrap();
        assert_eq!(back.refresh_started_at, Some(at + Duration::from_millis(7)));
        assert_eq!(back.access_token.unwrap().expose_secret(), "acc");
        assert_eq!(back.access_expires_at, Some(at + Duration::from_secs(2)));
        assert_eq!(back.refresh_token.unwrap().expose_secret(), "ref");
        assert_eq!(back.authorized_at, at);
        assert_eq!(back.dead.unwrap().reason, "revoked");
        let err = decode(b"{nope").err().unwrap();
        assert!(matches!(err, Error::Store(e) if e.kind() == StoreErrorKind::Corrupt));
    }

    #[test]
    fn debug_shows_no_password() {
        let store = RedisStore::open("redis://user:hunter2-secret@127.0.0.1:6399/").unwrap();
        let shown = format!("{store:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
