//! [`FileStore`]: tokens in one JSON file that survives restarts and is shared by processes.
//!
//! The module is private; the documentation users see is on [`FileStore`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fs4::fs_std::FileExt;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{StoreLock, StoredTokens, TokenStore};
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
/// use reqwest_partner_auth::{FileStore, StoredTokens, TokenStore};
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
/// seconds>}}}`. Tokens are written in clear (that is the file's purpose), so the file is
/// created with mode `0600` on unix; times keep whole seconds (rounded down).
///
/// Every save rewrites the whole file atomically: a temporary file in the same directory
/// (mode `0600` from its creation), written and flushed to disk, then renamed over the old
/// one and the directory flushed. A crash leaves either the old or the new file, never a
/// mix; at worst a stray `.<name>.*.tmp` file, which the store ignores.
///
/// A file that cannot be read back (truncated, not JSON, another version) is never
/// overwritten: loads and saves fail with [`Error::Store`](crate::Error::Store) naming the
/// file (never quoting it) until a person moves it away.
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
/// `FileStore`s of this process opened on the same path (spelled the same way once made
/// absolute) share their locks; open one file through two different spellings (a symlink,
/// `..`) and a task holding a guard of one would wait forever when it saves through the
/// other.
#[derive(Clone)]
pub struct FileStore {
    path: PathBuf,
    shared: Arc<Shared>,
}

impl FileStore {
    /// A store kept in the file at `path`. Nothing is read or created until it is used: a
    /// missing file is an empty store, created by the first save. The directory must exist.
    pub fn new(path: impl Into<PathBuf>) -> FileStore {
        let path = path.into();
        let shared = Shared::for_path(&path);
        FileStore { path, shared }
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
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl TokenStore for FileStore {
    /// # Errors
    /// [`Error::Store`] when the file cannot be read, or is corrupt (not JSON, truncated, an
    /// unknown version). The message names the file, never its content.
    async fn load(&self, key: &str) -> Result<Option<StoredTokens>, Error> {
        let path = self.path.clone();
        let key = key.to_owned();
        blocking(move || Ok(read_file(&path)?.and_then(|mut f| f.entries.remove(&key))))
            .await
            .map(|entry| entry.map(Entry::into_tokens))
    }

    /// # Errors
    /// [`Error::Store`] when the file cannot be read or written, when it is corrupt (it is
    /// left as it is for a person to look at), or when a time is before 1970.
    async fn save(&self, key: &str, tokens: &StoredTokens) -> Result<(), Error> {
        let entry = Entry::from_tokens(tokens)?;
        let (path, key, shared) = (self.path.clone(), key.to_owned(), Arc::clone(&self.shared));
        blocking(move || {
            let _writer = lock_ignoring_poison(&shared.write);
            let _os = shared.os.acquire(&lock_path(&path))?;
            let mut file = read_file(&path)?.unwrap_or_default();
            file.entries.insert(key, entry);
            write_file(&path, &file)
        })
        .await
    }

    /// # Errors
    /// [`Error::Store`] when the lock file `<path>.lock` cannot be created or locked.
    async fn lock(&self, key: &str) -> Result<StoreLock, Error> {
        let mutex = Arc::clone(
            lock_ignoring_poison(&self.shared.keys)
                .entry(key.to_owned())
                .or_default(),
        );
        let task = mutex.lock_owned().await;
        let (shared, lock_file) = (Arc::clone(&self.shared), lock_path(&self.path));
        let os = blocking(move || shared.os.acquire(&lock_file)).await?;
        Ok(StoreLock::new(FileLockGuard {
            _os: os,
            _task: task,
        }))
    }
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
    /// Held (on the blocking pool only) while waiting for the OS lock.
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
    /// Blocks until this process holds the lock of `lock_file`.
    fn acquire(self: &Arc<Self>, lock_file: &Path) -> Result<OsGuard, Error> {
        let _acquiring = lock_ignoring_poison(&self.acquiring);
        {
            let mut state = lock_ignoring_poison(&self.state);
            if state.holders > 0 {
                state.holders += 1;
                return Ok(OsGuard(Arc::clone(self)));
            }
        }
        let file = open_lock_file(lock_file).map_err(|e| {
            store_error(format!("cannot open lock file {}", lock_file.display()), e)
        })?;
        loop {
            match FileExt::lock_exclusive(&file) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let what = format!("cannot lock {}", lock_file.display());
                    return Err(store_error(what, e));
                }
            }
        }
        let mut state = lock_ignoring_poison(&self.state);
        state.file = Some(file);
        state.holders = 1;
        Ok(OsGuard(Arc::clone(self)))
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
}

impl Entry {
    fn from_tokens(tokens: &StoredTokens) -> Result<Entry, Error> {
        Ok(Entry {
            access_token: tokens.access_token.clone(),
            access_expires_at: tokens.access_expires_at.map(unix_seconds).transpose()?,
            refresh_token: tokens.refresh_token.clone(),
            authorized_at: unix_seconds(tokens.authorized_at)?,
        })
    }

    fn into_tokens(self) -> StoredTokens {
        let at = |secs| UNIX_EPOCH + Duration::from_secs(secs);
        StoredTokens::new(
            self.access_token,
            self.access_expires_at.map(at),
            self.refresh_token,
            at(self.authorized_at),
        )
    }
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
    let mut bytes = Vec::new();
    let read = File::open(path).and_then(|mut f| f.read_to_end(&mut bytes));
    match read {
        Ok(_) => parse(&bytes)
            .map(Some)
            .map_err(|reason| corrupt(path, &reason)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(store_error(
            format!("cannot read token file {}", path.display()),
            e,
        )),
    }
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

fn open_lock_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
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
        let first = os.acquire(&lock_file).unwrap();
        let second = os.acquire(&lock_file).unwrap();
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
