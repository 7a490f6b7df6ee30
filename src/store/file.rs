//! [`FileStore`]: tokens in one JSON file that survives restarts and is shared by processes.
//!
//! The module is private; the documentation users see is on [`FileStore`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, TryLockError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fs4::fs_std::FileExt;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::memory::DEFAULT_LOCK_TIMEOUT;
use super::{DeadLogin, StoreLock, StoredTokens, TokenStore};
use crate::error::{Error, StoreError, StoreErrorKind};

/// The format version this code reads and writes.
const VERSION: u64 = 1;

/// Keeps tokens in a JSON file (mode `0600` on unix), one entry per key, shared by the
/// processes that open the same file. Clones share the same locks. All blocking file work
/// runs on tokio's blocking pool, so the methods must be called inside a tokio runtime.
///
/// ```
/// use std::time::{Duration, SystemTime};
///
/// use reqwest_partner_auth::store::{FileStore, StoredTokens, TokenStore};
/// use secrecy::SecretString;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let store = FileStore::new(dir.path().join("tokens.json"));
///
/// // Serialise the refresh of one credential (across tasks and processes) ...
/// let guard = store.lock("pentaleap/feed-a").await?;
/// let _previous = store.load("pentaleap/feed-a").await?;
/// // ... use the old refresh token, then save the new one before using the new access token.
/// let tokens = StoredTokens::new(
///     Some(SecretString::from("new-access-token")),
///     Some(SystemTime::now() + Duration::from_secs(3600)),
///     Some(SecretString::from("new-refresh-token")),
///     SystemTime::now(),
/// );
/// store.save("pentaleap/feed-a", &tokens).await?;
/// drop(guard);
///
/// // A later process reads what was saved.
/// let again = FileStore::new(store.path());
/// assert!(again.load("pentaleap/feed-a").await?.is_some());
/// # Ok(()) }
/// ```
///
/// # The file
/// All keys live in one file, `{"version":1,"entries":{"<key>":{"access_token":..,
/// "access_expires_at":<unix seconds or null>,"refresh_token":..,"authorized_at":<unix
/// seconds>}}}`. A login the authorization server declared dead keeps its entry, with
/// `"dead":{"at":<unix seconds>,"reason":".."}` added ([`StoredTokens::dead`]), and a refresh
/// sent but not answered yet adds `"refresh_started_at":<unix seconds>`
/// ([`StoredTokens::refresh_started_at`]); these fields are absent otherwise, so files
/// written before they existed load unchanged. Tokens are
/// written in clear (that is the file's purpose), so the file is created with mode `0600`
/// on unix; times keep whole seconds (rounded down).
///
/// Every save rewrites the whole file atomically: a temporary file in the same directory
/// (mode `0600` from its creation), written and flushed to disk, then renamed over the old
/// one and the directory flushed. A crash leaves either the old or the new file, never a
/// mix; at worst a stray `.<name>.*.tmp` file, which the store ignores.
///
/// A file that cannot be read back (truncated, not JSON, another version, a time out of
/// range) is never overwritten: loads and saves fail with [`Error::Store`] of kind
/// [`StoreErrorKind::Corrupt`], naming the file and what is wrong (never quoting it), until
/// a person moves it away.
///
/// # Files that are not ours
/// The token file and the lock file are opened without following symbolic links
/// (`O_NOFOLLOW` on unix), and on unix a token or lock file owned by another user than the
/// process's effective user is refused: loads, saves and locks fail with
/// [`StoreErrorKind::Insecure`] and leave the file, and whatever a link points to, as they
/// are. Someone who can plant a link or a file in the directory could otherwise make this
/// process read tokens from, or write tokens to, a place of their choosing.
///
/// # Locking
/// [`TokenStore::lock`] is exclusive per key between tasks of this process, and per file
/// between processes: an OS lock (`flock` on unix, `LockFileEx` on Windows) on the sibling
/// file `<path>.lock` is held while any guard of this process is alive. So one process's
/// refresh of key `a` also makes other processes wait for key `b` of the same file; give
/// credentials that must refresh independently their own files.
///
/// A save takes the same OS lock for its read-modify-write (it shares the one a guard of
/// this process already holds), so saves of different keys from different processes never
/// lose each other's entries; a save outside [`TokenStore::lock`] therefore waits while
/// another process holds the lock. Loads take no lock: they always see a complete file.
///
/// Every wait is bounded by the [lock timeout](FileStore::lock_timeout) (default
/// [`DEFAULT_LOCK_TIMEOUT`](crate::store::DEFAULT_LOCK_TIMEOUT), 20 s): a lock held by a frozen
/// process or a stuck task makes [`lock`](TokenStore::lock) and saves fail with
/// [`StoreErrorKind::LockTimeout`] instead of hanging. The wait for another process polls
/// the OS lock with a short backoff (up to 50 ms) on tokio's blocking pool, against the
/// real clock; the wait for another task of this process uses tokio's timer.
///
/// `FileStore`s of this process opened on the same path (spelled the same way once made
/// absolute) share their locks; open one file through two different spellings (a symlink
/// to the directory, `..`) and a task holding a guard of one waits for itself when it saves
/// through the other, until the lock timeout.
///
/// # The crash window
/// A rotating refresh token works once. Between the authorization server's answer (the old
/// refresh token is now spent) and the return of the save of the new one, the new refresh
/// token lives only in this process's memory. A process killed in that window (a deploy, the
/// OOM killer, a power cut) loses the login: after the restart the store still holds the
/// spent token, the server sees it reused and revokes the login. No client can close this
/// window, only keep it short: the crate saves the new token before it uses or returns
/// anything. The remedy is on the server: let a refresh token stay valid for a short
/// interval after its first use (Auth0: the refresh-token rotation "reuse interval", a few
/// seconds), so the token still in the store works once more after such a crash. A refresh
/// marks the login in the file before it is sent ([`StoredTokens::refresh_started_at`]), so
/// the restarted process knows to refresh at once, within that interval.
#[derive(Clone)]
pub struct FileStore {
    path: PathBuf,
    shared: Arc<Shared>,
    lock_timeout: Duration,
}

impl FileStore {
    /// A store kept in the file at `path`. Nothing is read or created until it is used: a
    /// missing file is an empty store, created by the first save. The directory must exist.
    pub fn new(path: impl Into<PathBuf>) -> FileStore {
        let path = path.into();
        let shared = Shared::for_path(&path);
        FileStore {
            path,
            shared,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }

    /// How long [`lock`](TokenStore::lock), and a save outside a lock, wait for the lock
    /// before failing with [`StoreErrorKind::LockTimeout`]. Default
    /// [`DEFAULT_LOCK_TIMEOUT`](crate::store::DEFAULT_LOCK_TIMEOUT) (20 s).
    pub fn lock_timeout(mut self, timeout: Duration) -> FileStore {
        self.lock_timeout = timeout;
        self
    }

    /// The path of the token file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.path)
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl TokenStore for FileStore {
    /// # Errors
    /// [`Error::Store`] when the file cannot be read ([`StoreErrorKind::Io`]), is corrupt
    /// (not JSON, truncated, an unknown version, a time out of range:
    /// [`StoreErrorKind::Corrupt`]), or is a symbolic link or owned by another user
    /// ([`StoreErrorKind::Insecure`]). The message names the file, never its content.
    async fn load(&self, key: &str) -> Result<Option<StoredTokens>, Error> {
        let path = self.path.clone();
        let key = key.to_owned();
        blocking(move || {
            let Some(mut file) = read_file(&path)? else {
                return Ok(None);
            };
            file.entries
                .remove(&key)
                .map(|entry| entry.into_tokens(&path))
                .transpose()
        })
        .await
    }

    /// # Errors
    /// [`Error::Store`] when the file cannot be read or written, when it is corrupt (it is
    /// left as it is for a person to look at), when it or the lock file is a symbolic link
    /// or owned by another user, when another process held the lock for longer than the
    /// [lock timeout](FileStore::lock_timeout) ([`StoreErrorKind::LockTimeout`]), or when a
    /// time is before 1970.
    async fn save(&self, key: &str, tokens: &StoredTokens) -> Result<(), Error> {
        let entry = Entry::from_tokens(tokens)?;
        let (path, key, shared) = (self.path.clone(), key.to_owned(), Arc::clone(&self.shared));
        let wait = Wait::new(self.lock_timeout);
        let _cancel = wait.cancel_on_drop();
        blocking(move || {
            let _writer = wait.poll(&path, || match shared.write.try_lock() {
                Ok(guard) => Ok(Some(guard)),
                Err(TryLockError::Poisoned(p)) => Ok(Some(p.into_inner())),
                Err(TryLockError::WouldBlock) => Ok(None),
            })?;
            let _os = shared.os.acquire(&lock_path(&path), &wait, &path)?;
            let mut file = read_file(&path)?.unwrap_or_default();
            file.entries.insert(key, entry);
            write_file(&path, &file)
        })
        .await
    }

    /// # Errors
    /// [`Error::Store`] when the lock file `<path>.lock` cannot be created or locked
    /// ([`StoreErrorKind::Io`]), is a symbolic link or owned by another user
    /// ([`StoreErrorKind::Insecure`]), or when the lock was not free within the
    /// [lock timeout](FileStore::lock_timeout) ([`StoreErrorKind::LockTimeout`]).
    async fn lock(&self, key: &str) -> Result<StoreLock, Error> {
        let wait = Wait::new(self.lock_timeout);
        let mutex = Arc::clone(
            lock_ignoring_poison(&self.shared.keys)
                .entry(key.to_owned())
                .or_default(),
        );
        // The tokio timer runs on tokio's clock: real time, unless a test paused it.
        let deadline = tokio::time::Instant::from_std(wait.deadline);
        let task = tokio::time::timeout_at(deadline, mutex.lock_owned())
            .await
            .map_err(|_| lock_timeout(&self.path, self.lock_timeout))?;
        let (shared, path) = (Arc::clone(&self.shared), self.path.clone());
        let _cancel = wait.cancel_on_drop();
        let os = blocking(move || shared.os.acquire(&lock_path(&path), &wait, &path)).await?;
        Ok(StoreLock::new(FileLockGuard {
            _os: os,
            _task: task,
        }))
    }
}

/// A bounded wait: the deadline, and a flag the waiting future sets when it is dropped, so
/// the blocking task polling for a lock stops early.
struct Wait {
    timeout: Duration,
    deadline: Instant,
    cancelled: Arc<AtomicBool>,
}

/// Sets the flag of a [`Wait`] when dropped (the future waiting for it was cancelled).
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Wait {
    /// First pause between two attempts; it doubles up to [`Wait::MAX_PAUSE`].
    const FIRST_PAUSE: Duration = Duration::from_millis(1);
    const MAX_PAUSE: Duration = Duration::from_millis(50);

    fn new(timeout: Duration) -> Wait {
        let now = Instant::now();
        Wait {
            timeout,
            // A timeout too large for an `Instant` is as good as none (~forever).
            deadline: now
                .checked_add(timeout)
                .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600)),
            cancelled: Arc::default(),
        }
    }

    /// A guard to keep alive while awaiting the blocking side: dropped, it tells that side
    /// to give up (harmless once it finished).
    fn cancel_on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(Arc::clone(&self.cancelled))
    }

    /// Calls `attempt` (on the blocking pool) until it gives `Some`, pausing with a growing
    /// backoff in between, until the deadline: then [`StoreErrorKind::LockTimeout`].
    fn poll<T>(
        &self,
        path: &Path,
        mut attempt: impl FnMut() -> Result<Option<T>, Error>,
    ) -> Result<T, Error> {
        let mut pause = Self::FIRST_PAUSE;
        loop {
            if let Some(value) = attempt()? {
                return Ok(value);
            }
            let now = Instant::now();
            if now >= self.deadline || self.cancelled.load(Ordering::Relaxed) {
                return Err(lock_timeout(path, self.timeout));
            }
            std::thread::sleep(pause.min(self.deadline - now));
            pause = (pause * 2).min(Self::MAX_PAUSE);
        }
    }
}

fn lock_timeout(path: &Path, timeout: Duration) -> Error {
    StoreError::new(
        StoreErrorKind::LockTimeout,
        format!(
            "the lock of token file {} was not free within {timeout:?}",
            path.display()
        ),
    )
    .into()
}

/// What a [`StoreLock`] of a [`FileStore`] holds; fields drop in order (OS lock first).
struct FileLockGuard {
    _os: OsGuard,
    _task: tokio::sync::OwnedMutexGuard<()>,
}

/// The locks of one file, shared by every `FileStore` of this process on that path.
#[derive(Default)]
struct Shared {
    /// Per key: exclusive between tasks.
    keys: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// One read-modify-write at a time in this process (taken on the blocking pool).
    write: Mutex<()>,
    /// The OS lock on `<path>.lock`, held while any guard or save of this process needs it.
    os: Arc<OsLock>,
}

impl Shared {
    fn for_path(path: &Path) -> Arc<Shared> {
        static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, Weak<Shared>>>> = OnceLock::new();
        let id = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let mut registry = lock_ignoring_poison(REGISTRY.get_or_init(Default::default));
        if let Some(shared) = registry.get(&id).and_then(Weak::upgrade) {
            return shared;
        }
        registry.retain(|_, shared| shared.strong_count() > 0);
        let shared = Arc::new(Shared::default());
        registry.insert(id, Arc::downgrade(&shared));
        shared
    }
}

/// A process-wide, reference-counted OS lock: the first holder locks the file, later ones
/// share it, the last one to leave unlocks it.
#[derive(Default)]
struct OsLock {
    /// Held (on the blocking pool only) by the one thread of this process trying to take the
    /// OS lock; the others wait for it to succeed, then share.
    acquiring: Mutex<()>,
    /// Held only for a moment, so dropping a guard never blocks.
    state: Mutex<OsLockState>,
}

#[derive(Default)]
struct OsLockState {
    file: Option<File>,
    holders: usize,
}

impl OsLock {
    /// Waits (within `wait`) until this process holds the lock of `lock_file`, the lock
    /// file of the token file `path`.
    fn acquire(
        self: &Arc<Self>,
        lock_file: &Path,
        wait: &Wait,
        path: &Path,
    ) -> Result<OsGuard, Error> {
        let mut file = None;
        wait.poll(path, || {
            if let Some(guard) = self.share() {
                return Ok(Some(guard));
            }
            let _acquiring = match self.acquiring.try_lock() {
                Ok(guard) => guard,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return Ok(None),
            };
            // Another thread may have taken it between the check above and here.
            if let Some(guard) = self.share() {
                return Ok(Some(guard));
            }
            let opened = match file.take() {
                Some(opened) => opened,
                None => open_lock_file(lock_file)?,
            };
            match FileExt::try_lock_exclusive(&opened) {
                Ok(true) => {
                    let mut state = lock_ignoring_poison(&self.state);
                    state.file = Some(opened);
                    state.holders = 1;
                    Ok(Some(OsGuard(Arc::clone(self))))
                }
                Ok(false) => {
                    file = Some(opened);
                    Ok(None)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    file = Some(opened);
                    Ok(None)
                }
                Err(e) => Err(store_error(
                    format!("cannot lock {}", lock_file.display()),
                    e,
                )),
            }
        })
    }

    /// Joins the holders when this process already holds the lock.
    fn share(self: &Arc<Self>) -> Option<OsGuard> {
        let mut state = lock_ignoring_poison(&self.state);
        (state.holders > 0).then(|| {
            state.holders += 1;
            OsGuard(Arc::clone(self))
        })
    }
}

/// One holder of an [`OsLock`].
struct OsGuard(Arc<OsLock>);

impl Drop for OsGuard {
    fn drop(&mut self) {
        let mut state = lock_ignoring_poison(&self.0.state);
        state.holders = state.holders.saturating_sub(1);
        if state.holders == 0 {
            if let Some(file) = state.file.take() {
                // Closing the file releases the lock as well; unlock first in case a child
                // process inherited the descriptor.
                let _ = FileExt::unlock(&file);
            }
        }
    }
}

/// The file as stored.
#[derive(Serialize, Deserialize)]
struct StoreFile {
    version: u64,
    entries: BTreeMap<String, Entry>,
}

impl Default for StoreFile {
    fn default() -> Self {
        StoreFile {
            version: VERSION,
            entries: BTreeMap::new(),
        }
    }
}

/// The version alone, read first so a newer format is reported as such.
#[derive(Deserialize)]
struct VersionOnly {
    version: Option<serde_json::Value>,
}

/// One key's tokens as stored.
#[derive(Serialize, Deserialize)]
struct Entry {
    #[serde(with = "secret")]
    access_token: Option<SecretString>,
    access_expires_at: Option<u64>,
    #[serde(with = "secret")]
    refresh_token: Option<SecretString>,
    authorized_at: u64,
    /// Absent in files written before dead-login marks existed, and for a live login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dead: Option<DeadEntry>,
    /// Absent unless a refresh was sent and its answer not saved yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_started_at: Option<u64>,
}

/// A [`DeadLogin`] as stored.
#[derive(Serialize, Deserialize)]
struct DeadEntry {
    at: u64,
    reason: String,
}

impl Entry {
    fn from_tokens(tokens: &StoredTokens) -> Result<Entry, Error> {
        Ok(Entry {
            access_token: tokens.access_token.clone(),
            access_expires_at: tokens.access_expires_at.map(unix_seconds).transpose()?,
            refresh_token: tokens.refresh_token.clone(),
            authorized_at: unix_seconds(tokens.authorized_at)?,
            dead: tokens
                .dead
                .as_ref()
                .map(|dead| {
                    Ok::<_, Error>(DeadEntry {
                        at: unix_seconds(dead.at)?,
                        reason: dead.reason.clone(),
                    })
                })
                .transpose()?,
            refresh_started_at: tokens.refresh_started_at.map(unix_seconds).transpose()?,
        })
    }

    /// Fails when a time of this entry cannot be a `SystemTime` (see [`system_time`]).
    fn check(&self, path: &Path) -> Result<(), Error> {
        if let Some(secs) = self.access_expires_at {
            system_time(path, "access_expires_at", secs)?;
        }
        system_time(path, "authorized_at", self.authorized_at)?;
        if let Some(dead) = &self.dead {
            system_time(path, "dead.at", dead.at)?;
        }
        if let Some(secs) = self.refresh_started_at {
            system_time(path, "refresh_started_at", secs)?;
        }
        Ok(())
    }

    /// The tokens of this entry of the file at `path`.
    fn into_tokens(self, path: &Path) -> Result<StoredTokens, Error> {
        let mut tokens = StoredTokens::new(
            self.access_token,
            self.access_expires_at
                .map(|secs| system_time(path, "access_expires_at", secs))
                .transpose()?,
            self.refresh_token,
            system_time(path, "authorized_at", self.authorized_at)?,
        );
        if let Some(dead) = self.dead {
            let at = system_time(path, "dead.at", dead.at)?;
            tokens.dead = Some(DeadLogin::new(at, dead.reason));
        }
        tokens.refresh_started_at = self
            .refresh_started_at
            .map(|secs| system_time(path, "refresh_started_at", secs))
            .transpose()?;
        Ok(tokens)
    }
}

/// `secs` after 1970 as a `SystemTime`. A number that fits the file's `u64` but no
/// `SystemTime` (2^63 seconds and more on unix) makes the file at `path` corrupt; the error
/// names the `field`, never the value.
fn system_time(path: &Path, field: &str, secs: u64) -> Result<SystemTime, Error> {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .ok_or_else(|| corrupt(path, &format!("{field} is out of range")))
}

/// Serde for `Option<SecretString>`: the secret is exposed only while it is written.
mod secret {
    use secrecy::{ExposeSecret, SecretString};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Option<SecretString>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(secret) => s.serialize_some(secret.expose_secret()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SecretString>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(SecretString::from))
    }
}

fn unix_seconds(t: SystemTime) -> Result<u64, Error> {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| {
            StoreError::new(
                StoreErrorKind::Unsupported,
                "cannot save a time before 1970",
            )
            .into()
        })
}

/// Reads and parses the file; `None` when it does not exist.
fn read_file(path: &Path) -> Result<Option<StoreFile>, Error> {
    let mut options = OpenOptions::new();
    options.read(true);
    let mut file = match open_own_file(&mut options, path) {
        Ok(file) => file,
        Err(OpenError::Io(e)) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into_error(path, "token file", "cannot read")),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| store_error(format!("cannot read token file {}", path.display()), e))?;
    let file = parse(&bytes).map_err(|reason| corrupt(path, &reason))?;
    // Every entry, not only the one asked for: a save must not carry a broken entry over.
    for entry in file.entries.values() {
        entry.check(path)?;
    }
    Ok(Some(file))
}

/// Why a token or lock file could not be opened.
enum OpenError {
    Io(io::Error),
    Symlink,
    /// Only detected on unix.
    #[cfg_attr(not(unix), allow(dead_code))]
    OtherOwner,
}

impl OpenError {
    /// The store error for the `what` (`token file`, `lock file`) at `path`; `doing` says
    /// what failed for I/O errors (`cannot read`, `cannot open`).
    fn into_error(self, path: &Path, what: &str, doing: &str) -> Error {
        let path = path.display();
        match self {
            OpenError::Io(e) => store_error(format!("{doing} {what} {path}"), e),
            OpenError::Symlink => StoreError::new(
                StoreErrorKind::Insecure,
                format!("{what} {path} is a symbolic link; refusing to follow it"),
            )
            .into(),
            OpenError::OtherOwner => StoreError::new(
                StoreErrorKind::Insecure,
                format!("{what} {path} is owned by another user"),
            )
            .into(),
        }
    }
}

/// Opens `path` with `options`, refusing a symbolic link (never followed) and, on unix, a
/// file owned by another user than the effective uid.
fn open_own_file(options: &mut OpenOptions, path: &Path) -> Result<File, OpenError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // `O_NOFOLLOW`: opening a symbolic link fails (ELOOP) instead of opening its target.
        let no_follow = rustix::fs::OFlags::NOFOLLOW.bits();
        options.custom_flags(i32::try_from(no_follow).unwrap_or_default());
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) => {
            let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            return Err(if is_link {
                OpenError::Symlink
            } else {
                OpenError::Io(e)
            });
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata().map_err(OpenError::Io)?;
        if meta.uid() != rustix::process::geteuid().as_raw() {
            return Err(OpenError::OtherOwner);
        }
    }
    #[cfg(not(unix))]
    {
        // Windows opens a symbolic link's target; refuse links up front instead.
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            return Err(OpenError::Symlink);
        }
    }
    Ok(file)
}

/// Parses the file; the error is a short reason that never quotes the content.
fn parse(bytes: &[u8]) -> Result<StoreFile, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("empty file".to_owned());
    }
    let version = serde_json::from_slice::<VersionOnly>(bytes).map_err(describe)?;
    match version.version {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(VERSION) => {}
        Some(serde_json::Value::Number(n)) => return Err(format!("unsupported version {n}")),
        Some(_) => return Err("version is not a number".to_owned()),
        None => return Err("missing version".to_owned()),
    }
    serde_json::from_slice(bytes).map_err(describe)
}

/// A serde_json error without the values it may quote (they may be tokens).
fn describe(e: serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Eof => "truncated",
        Category::Syntax => "not valid json",
        Category::Data => "unexpected content",
        Category::Io => "read failed",
    };
    format!("{what} at line {} column {}", e.line(), e.column())
}

fn corrupt(path: &Path, reason: &str) -> Error {
    StoreError::new(
        StoreErrorKind::Corrupt,
        format!("token file {} is corrupt: {reason}", path.display()),
    )
    .into()
}

fn store_error(what: String, e: io::Error) -> Error {
    StoreError::io(what, e).into()
}

/// Replaces the file atomically with `file`.
fn write_file(path: &Path, file: &StoreFile) -> Result<(), Error> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o600));
    }
    let write_err = |e| store_error(format!("cannot write token file {}", path.display()), e);
    let mut tmp = builder.tempfile_in(dir).map_err(|e| {
        let what = format!("cannot create a temporary file in {}", dir.display());
        store_error(what, e)
    })?;
    // Not `e.to_string()`: serializing cannot fail for these types, and its
    // message could quote a value.
    let json = serde_json::to_vec_pretty(file)
        .map_err(|_| StoreError::new(StoreErrorKind::Other, "cannot encode the token file"))?;
    tmp.write_all(&json).map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(path).map_err(|e| write_err(e.error))?;
    sync_dir(dir);
    Ok(())
}

/// Flushes the directory entry of a rename to disk; best effort.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

fn lock_path(path: &Path) -> PathBuf {
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    PathBuf::from(lock)
}

/// Opens (creating it, mode `0600` on unix) the lock file at `path`.
fn open_lock_file(path: &Path) -> Result<File, Error> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    open_own_file(&mut options, path).map_err(|e| e.into_error(path, "lock file", "cannot open"))
}

/// Runs blocking file work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(StoreError::new(StoreErrorKind::Other, "file task failed").into()))
}

fn lock_ignoring_poison<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reasons_never_quote_the_content() {
        let cases: [(&[u8], &str); 6] = [
            (b"", "empty file"),
            (b"{\"version\":1,\"entries\":{\"k\":{\"access_token\":\"SENTINEL", "truncated"),
            (b"SENTINEL", "not valid json"),
            (b"{\"version\":2,\"entries\":{}}", "unsupported version 2"),
            (b"{\"entries\":{}}", "missing version"),
            (
                b"{\"version\":1,\"entries\":{\"k\":{\"access_token\":\"x\",\"access_expires_at\":null,\"refresh_token\":null,\"authorized_at\":\"SENTINEL\"}}}",
                "unexpected content",
            ),
        ];
        for (bytes, expected) in cases {
            let reason = parse(bytes).err().unwrap_or_default();
            assert!(reason.contains(expected), "{reason:?} for {bytes:?}");
            assert!(!reason.contains("SENTINEL"), "{reason:?}");
        }
    }

    #[test]
    fn os_lock_is_shared_inside_the_process_and_released_by_the_last_holder() {
        let dir = tempfile::tempdir().unwrap();
        let lock_file = dir.path().join("t.json.lock");
        let os = Arc::new(OsLock::default());
        let wait = Wait::new(Duration::from_secs(5));
        let first = os.acquire(&lock_file, &wait, &lock_file).unwrap();
        let second = os.acquire(&lock_file, &wait, &lock_file).unwrap();
        let other = open_lock_file(&lock_file).unwrap();
        assert!(!FileExt::try_lock_exclusive(&other).unwrap());
        drop(first);
        assert!(!FileExt::try_lock_exclusive(&other).unwrap());
        drop(second);
        assert!(FileExt::try_lock_exclusive(&other).unwrap());
    }

    #[test]
    fn stores_on_one_path_share_their_locks() {
        let a = FileStore::new("some/dir/../tokens.json");
        let b = FileStore::new("some/dir/../tokens.json");
        let c = FileStore::new("other.json");
        assert!(Arc::ptr_eq(&a.shared, &b.shared));
        assert!(!Arc::ptr_eq(&a.shared, &c.shared));
    }
}
