//! `TokenStore`s: what a save leaves on disk, what a load makes of a damaged file, and the
//! lock between tasks and between processes.
//!
//! The `FileStore` tests need the `file-store` feature; the `MemoryStore` ones run without it.

#[cfg(feature = "file-store")]
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest_partner_auth::error::{StoreError, StoreErrorKind};
#[cfg(feature = "file-store")]
use reqwest_partner_auth::store::FileStore;
use reqwest_partner_auth::store::{DeadLogin, MemoryStore, StoredTokens, TokenStore};
use reqwest_partner_auth::Error;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{oneshot, Notify};
use tokio::time::timeout;

/// Only a guard against hangs: every wait in these tests ends long before.
const HANG_GUARD: Duration = Duration::from_secs(30);
const SECRET_ACCESS: &str = "access-SENTINEL-7f3a";
const SECRET_REFRESH: &str = "refresh-SENTINEL-9c1e";

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn full_tokens() -> StoredTokens {
    StoredTokens::new(
        Some(SecretString::from(SECRET_ACCESS)),
        Some(at(1_900_000_000)),
        Some(SecretString::from(SECRET_REFRESH)),
        at(1_700_000_000),
    )
}

fn counter_tokens(n: u64) -> StoredTokens {
    StoredTokens::new(None, None, Some(SecretString::from(n.to_string())), at(1))
}

fn counter_of(tokens: Option<StoredTokens>) -> u64 {
    let refresh = tokens.and_then(|t| t.refresh_token);
    refresh.map_or(0, |r| r.expose_secret().parse().expect("a number"))
}

fn exposed(secret: &Option<SecretString>) -> Option<&str> {
    secret.as_ref().map(|s| s.expose_secret())
}

fn assert_same(got: &StoredTokens, want: &StoredTokens) {
    assert_eq!(exposed(&got.access_token), exposed(&want.access_token));
    assert_eq!(got.access_expires_at, want.access_expires_at);
    assert_eq!(exposed(&got.refresh_token), exposed(&want.refresh_token));
    assert_eq!(got.authorized_at, want.authorized_at);
    // A file keeps whole seconds: the dead mark's time is checked where it matters.
    let reason = |t: &StoredTokens| t.dead.as_ref().map(|d| d.reason.clone());
    assert_eq!(reason(got), reason(want));
    assert_eq!(got.refresh_started_at, want.refresh_started_at);
}

fn assert_no_secret(text: &str) {
    for secret in [SECRET_ACCESS, SECRET_REFRESH, "SENTINEL"] {
        assert!(!text.contains(secret), "{text:?} leaks a secret");
    }
}

/// The `StoreError` of an `Error::Store`, checked free of secrets in `Display` and `Debug`.
#[track_caller]
fn store_error(result: Result<impl std::fmt::Debug, Error>) -> StoreError {
    match result {
        Err(Error::Store(err)) => {
            assert_no_secret(&format!("{err:?}"));
            assert_no_secret(&Error::Store(err.clone()).to_string());
            err
        }
        other => panic!("expected Error::Store, got {other:?}"),
    }
}

/// The message of an `Error::Store` of `kind`, checked free of secrets.
#[track_caller]
fn store_message_of(kind: StoreErrorKind, result: Result<impl std::fmt::Debug, Error>) -> String {
    let err = store_error(result);
    assert_eq!(err.kind(), kind, "{err}");
    err.to_string()
}

#[cfg(feature = "file-store")]
fn store_path(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("tokens.json")
}

// ---- round trips ----------------------------------------------------------------------

async fn round_trip(store: impl TokenStore) {
    assert!(store.load("a").await.unwrap().is_none());
    let empty = StoredTokens::new(None, None, None, at(1_700_000_100));
    store.save("a", &full_tokens()).await.unwrap();
    store.save("b", &empty).await.unwrap();
    assert_same(&store.load("a").await.unwrap().unwrap(), &full_tokens());
    assert_same(&store.load("b").await.unwrap().unwrap(), &empty);

    // A refresh sent and not answered yet is marked, and the mark kept.
    let mut marked = full_tokens();
    marked.refresh_started_at = Some(at(1_800_000_000));
    store.save("a", &marked).await.unwrap();
    assert_same(&store.load("a").await.unwrap().unwrap(), &marked);

    let rotated = StoredTokens::new(None, None, Some(SecretString::from("next")), at(5));
    store.save("a", &rotated).await.unwrap();
    assert_same(&store.load("a").await.unwrap().unwrap(), &rotated);
    assert_same(&store.load("b").await.unwrap().unwrap(), &empty);
    assert!(store.load("c").await.unwrap().is_none());
}

#[tokio::test]
async fn memory_store_round_trips_every_field() {
    round_trip(MemoryStore::new()).await;
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn file_store_round_trips_every_field_and_keeps_other_keys() {
    let dir = tempfile::tempdir().unwrap();
    round_trip(FileStore::new(store_path(&dir))).await;
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn file_store_after_a_restart_reads_what_was_saved() {
    let dir = tempfile::tempdir().unwrap();
    let first = FileStore::new(store_path(&dir));
    first.save("k", &full_tokens()).await.unwrap();
    drop(first);
    let restarted = FileStore::new(store_path(&dir));
    assert_same(&restarted.load("k").await.unwrap().unwrap(), &full_tokens());
    assert_eq!(restarted.path(), store_path(&dir));
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn file_store_keeps_whole_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(store_path(&dir));
    let tokens = StoredTokens::new(None, Some(at(10) + Duration::from_millis(999)), None, at(3));
    store.save("k", &tokens).await.unwrap();
    let loaded = store.load("k").await.unwrap().unwrap();
    assert_eq!(loaded.access_expires_at, Some(at(10)));
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn missing_file_is_an_empty_store_and_the_file_holds_the_documented_json() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(store_path(&dir));
    assert!(store.load("k").await.unwrap().is_none());
    assert!(!store_path(&dir).exists(), "a load creates nothing");

    store.save("k", &full_tokens()).await.unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store_path(&dir)).unwrap()).unwrap();
    let want = serde_json::json!({"version": 1, "entries": {"k": {
        "access_token": SECRET_ACCESS, "access_expires_at": 1_900_000_000u64,
        "refresh_token": SECRET_REFRESH, "authorized_at": 1_700_000_000u64,
    }}});
    assert_eq!(json, want);
}

// ---- what a save leaves on disk -------------------------------------------------------

#[cfg(all(unix, feature = "file-store"))]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(all(unix, feature = "file-store"))]
#[tokio::test]
async fn token_file_and_lock_file_are_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = FileStore::new(&path);
    store.save("k", &full_tokens()).await.unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("tokens.json.lock")), 0o600);

    // A file someone made readable to all is 0600 again after the next save.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    store.save("k", &full_tokens()).await.unwrap();
    assert_eq!(mode(&path), 0o600);
}

#[cfg(all(unix, feature = "file-store"))]
#[tokio::test]
async fn lock_file_is_mode_0600_when_lock_creates_it() {
    let dir = tempfile::tempdir().unwrap();
    let guard = FileStore::new(store_path(&dir)).lock("k").await.unwrap();
    assert_eq!(mode(&dir.path().join("tokens.json.lock")), 0o600);
    drop(guard);
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn save_replaces_the_file_atomically_by_rename() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = FileStore::new(&path);
    store.save("k", &counter_tokens(1)).await.unwrap();
    let before = std::fs::read(&path).unwrap();
    // A reader that opened the old file keeps reading the old, complete file: the save
    // wrote a new file and renamed it, it did not rewrite this one in place.
    let mut reader = std::fs::File::open(&path).unwrap();
    store.save("k", &counter_tokens(2)).await.unwrap();
    let mut seen = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut seen).unwrap();
    assert_eq!(seen, before);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        assert_ne!(
            reader.metadata().unwrap().ino(),
            std::fs::metadata(&path).unwrap().ino()
        );
    }
    assert_eq!(counter_of(store.load("k").await.unwrap()), 2);

    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["tokens.json", "tokens.json.lock"],
        "no temporary file left"
    );
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn torn_temp_file_from_a_crash_leaves_the_old_state_and_the_next_save_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = FileStore::new(&path);
    store.save("k", &counter_tokens(1)).await.unwrap();
    let full = std::fs::read(&path).unwrap();
    // What a crash between creating the temporary file and renaming it leaves behind.
    for torn in [".tmpA1b2C3", ".tokens.json.x7Yq2p.tmp"] {
        std::fs::write(dir.path().join(torn), &full[..full.len() / 2]).unwrap();
    }

    let restarted = FileStore::new(&path);
    assert_eq!(counter_of(restarted.load("k").await.unwrap()), 1);
    restarted.save("k", &counter_tokens(2)).await.unwrap();
    assert_eq!(counter_of(restarted.load("k").await.unwrap()), 2);
}

// ---- damaged or unreadable files ------------------------------------------------------

#[cfg(feature = "file-store")]
async fn load_error_for(content: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    std::fs::write(&path, content).unwrap();
    let store = FileStore::new(&path);
    let message = store_message_of(StoreErrorKind::Corrupt, store.load("k").await);
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("is corrupt"), "{message}");

    // The damaged file is left for a person to look at, not replaced.
    let save = store.save("k", &full_tokens()).await;
    store_message_of(StoreErrorKind::Corrupt, save);
    assert_eq!(std::fs::read(&path).unwrap(), content);
    message
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn truncated_file_is_corrupt_without_quoting_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    FileStore::new(&path)
        .save("k", &full_tokens())
        .await
        .unwrap();
    let full = std::fs::read_to_string(&path).unwrap();
    // Cut in the middle of the refresh token.
    let cut = full.find(SECRET_REFRESH).unwrap() + SECRET_REFRESH.len() / 2;
    let message = load_error_for(&full.as_bytes()[..cut]).await;
    assert!(message.contains("truncated"), "{message}");
    assert!(!message.contains(&SECRET_REFRESH[..SECRET_REFRESH.len() / 2]));
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn garbage_bytes_are_corrupt() {
    let message = load_error_for(b"\x00\xffSENTINEL garbage \x9f").await;
    assert!(message.contains("not valid json"), "{message}");
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn empty_file_is_corrupt() {
    assert!(load_error_for(b"").await.contains("empty file"));
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn other_version_is_corrupt_and_not_overwritten() {
    let message = load_error_for(br#"{"version":2,"entries":{}}"#).await;
    assert!(message.contains("unsupported version 2"), "{message}");
    assert!(load_error_for(br#"{"entries":{}}"#)
        .await
        .contains("missing version"));
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn field_of_the_wrong_type_is_corrupt_without_quoting_the_value() {
    let content = br#"{"version":1,"entries":{"k":{"access_token":"x",
        "access_expires_at":null,"refresh_token":null,"authorized_at":"SENTINEL"}}}"#;
    assert!(load_error_for(content).await.contains("unexpected content"));
}

/// A file whose one entry (key `k`) is [`full_tokens`] with `field` set to the JSON text
/// `value`, spelled exactly as given (`9223372036854775808` stays that number).
#[cfg(feature = "file-store")]
fn entry_with(field: &str, value: &str) -> Vec<u8> {
    let mut fields = vec![
        ("access_token", format!("{SECRET_ACCESS:?}")),
        ("access_expires_at", "1900000000".to_owned()),
        ("refresh_token", format!("{SECRET_REFRESH:?}")),
        ("authorized_at", "1700000000".to_owned()),
    ];
    match fields.iter_mut().find(|(name, _)| *name == field) {
        Some(slot) => slot.1 = value.to_owned(),
        None => fields.push((field, value.to_owned())),
    }
    let entry: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
    format!(
        r#"{{"version":1,"entries":{{"k":{{{}}}}}}}"#,
        entry.join(",")
    )
    .into_bytes()
}

/// Times that fit the file's `u64` but no `SystemTime` (2^63 seconds and more) are a
/// corrupt file naming the field, never a panic and never the value.
#[cfg(feature = "file-store")]
#[tokio::test]
async fn time_too_large_for_system_time_is_corrupt_not_a_panic() {
    for field in ["authorized_at", "access_expires_at", "refresh_started_at"] {
        for value in ["9223372036854775808", "18446744073709551615"] {
            let message = load_error_for(&entry_with(field, value)).await;
            assert!(message.contains(field), "{message}");
            assert!(message.contains("out of range"), "{message}");
            assert!(!message.contains(value), "{message}");
        }
    }
}

/// The same for the time of a dead-login mark.
#[cfg(feature = "file-store")]
#[tokio::test]
async fn dead_mark_time_too_large_for_system_time_is_corrupt() {
    let content = entry_with("dead", r#"{"at": 9223372036854775808, "reason": "reused"}"#);
    let message = load_error_for(&content).await;
    assert!(message.contains("dead.at"), "{message}");
    assert!(!message.contains("9223372036854775808"), "{message}");
}

/// A file written before dead-login marks existed (no `dead` field) still loads, as a live
/// login.
#[cfg(feature = "file-store")]
#[tokio::test]
async fn file_without_dead_field_loads_as_a_live_login() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    std::fs::write(&path, entry_with("authorized_at", "1700000000")).unwrap();
    let loaded = FileStore::new(&path).load("k").await.unwrap().unwrap();
    assert_same(&loaded, &full_tokens());
    assert_eq!(loaded.dead, None);
}

/// A dead-login mark (when, why) is saved and read back after a restart, next to the tokens
/// kept for a person to look at; a live login writes no `dead` field.
#[cfg(feature = "file-store")]
#[tokio::test]
async fn dead_login_mark_round_trips_through_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let mut dead = StoredTokens::new(None, None, None, at(1_700_000_000));
    dead.dead = Some(DeadLogin::new(
        at(1_800_000_000) + Duration::from_millis(700),
        "refresh token was reused",
    ));
    let store = FileStore::new(&path);
    store.save("dead", &dead).await.unwrap();
    store.save("live", &full_tokens()).await.unwrap();

    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(
        json["entries"]["dead"]["dead"],
        serde_json::json!({"at": 1_800_000_000u64, "reason": "refresh token was reused"})
    );
    assert!(json["entries"]["live"].get("dead").is_none(), "{json}");

    let restarted = FileStore::new(&path);
    let loaded = restarted.load("dead").await.unwrap().unwrap();
    assert_same(&loaded, &dead);
    assert_eq!(
        loaded.dead,
        Some(DeadLogin::new(
            at(1_800_000_000),
            "refresh token was reused"
        ))
    );
    assert_eq!(restarted.load("live").await.unwrap().unwrap().dead, None);
}

#[tokio::test]
async fn memory_store_keeps_the_dead_login_mark() {
    let store = MemoryStore::new();
    let mut dead = full_tokens();
    dead.dead = Some(DeadLogin::new(at(5), "revoked"));
    store.save("k", &dead).await.unwrap();
    assert_eq!(
        store.load("k").await.unwrap().unwrap().dead,
        Some(DeadLogin::new(at(5), "revoked"))
    );
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn path_that_is_a_directory_is_a_store_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    std::fs::create_dir(&path).unwrap();
    let store = FileStore::new(&path);
    let err = store_error(store.load("k").await);
    assert_eq!(err.kind(), StoreErrorKind::Io, "{err}");
    assert!(err.io_error().is_some(), "the io::Error is kept: {err:?}");
    let message = err.to_string();
    assert!(message.contains("cannot read token file"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    store_message_of(StoreErrorKind::Io, store.save("k", &full_tokens()).await);
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn missing_directory_is_a_store_error_on_save() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(dir.path().join("absent").join("tokens.json"));
    assert!(store.load("k").await.unwrap().is_none());
    let err = store_error(store.save("k", &full_tokens()).await);
    assert_eq!(err.kind(), StoreErrorKind::Io, "{err}");
    assert_eq!(
        err.io_error().map(std::io::Error::kind),
        Some(std::io::ErrorKind::NotFound)
    );
}

#[cfg(all(unix, feature = "file-store"))]
#[tokio::test]
async fn unreadable_file_is_a_store_error() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    std::fs::write(&path, "{}").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read(&path).is_ok() {
        eprintln!("skipped: running with privileges that read any file");
        return;
    }
    let err = store_error(FileStore::new(&path).load("k").await);
    assert_eq!(err.kind(), StoreErrorKind::PermissionDenied, "{err}");
    assert_eq!(
        err.io_error().map(std::io::Error::kind),
        Some(std::io::ErrorKind::PermissionDenied)
    );
    assert!(err.to_string().contains("cannot read token file"), "{err}");
}

// ---- files that are not ours ----------------------------------------------------------

/// A token file that is a symbolic link is refused (`Insecure`), for loads and saves, and
/// the file it points to is neither read into the store nor changed.
#[cfg(all(unix, feature = "file-store"))]
#[tokio::test]
async fn symlinked_token_file_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let target = dir.path().join("elsewhere.json");
    std::fs::write(&target, entry_with("authorized_at", "1700000000")).unwrap();
    let before = std::fs::read(&target).unwrap();
    std::os::unix::fs::symlink(&target, &path).unwrap();

    let store = FileStore::new(&path);
    let message = store_message_of(StoreErrorKind::Insecure, store.load("k").await);
    assert!(message.contains("symbolic link"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    store_message_of(
        StoreErrorKind::Insecure,
        store.save("k", &counter_tokens(1)).await,
    );

    assert_eq!(std::fs::read(&target).unwrap(), before);
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());
}

/// A lock file that is a symbolic link is refused by `lock` and by `save` (which takes the
/// lock): an existing target keeps its content, a dangling one is not created.
#[cfg(all(unix, feature = "file-store"))]
#[tokio::test]
async fn symlinked_lock_file_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let lock = dir.path().join("tokens.json.lock");

    let target = dir.path().join("victim");
    std::fs::write(&target, "precious").unwrap();
    std::os::unix::fs::symlink(&target, &lock).unwrap();
    let store = FileStore::new(&path);
    let message = store_message_of(StoreErrorKind::Insecure, store.lock("k").await);
    assert!(message.contains("symbolic link"), "{message}");
    store_message_of(
        StoreErrorKind::Insecure,
        store.save("k", &counter_tokens(1)).await,
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
    assert!(!path.exists(), "nothing was saved");

    std::fs::remove_file(&lock).unwrap();
    let dangling = dir.path().join("not-yet");
    std::os::unix::fs::symlink(&dangling, &lock).unwrap();
    store_message_of(StoreErrorKind::Insecure, store.lock("k").await);
    assert!(
        !dangling.exists(),
        "the lock did not create the link's target"
    );
}

/// Changes the owner of `path` to another uid; `false` when this process may not.
#[cfg(all(unix, feature = "file-store"))]
fn give_away(path: &Path) -> bool {
    match std::os::unix::fs::chown(path, Some(54_321), Some(54_321)) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("skipped: cannot chown ({e}); run the tests as root");
            false
        }
    }
}

/// A token file owned by another user is refused (`Insecure`) and left as it is.
#[cfg(all(unix, feature = "file-store"))]
#[tokio::test]
async fn token_file_owned_by_another_user_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = FileStore::new(&path);
    store.save("k", &full_tokens()).await.unwrap();
    if !give_away(&path) {
        return;
    }
    let before = std::fs::read(&path).unwrap();
    let message = store_message_of(StoreErrorKind::Insecure, store.load("k").await);
    assert!(message.contains("owned by another user"), "{message}");
    store_message_of(
        StoreErrorKind::Insecure,
        store.save("k", &counter_tokens(1)).await,
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// A lock file owned by another user is refused by `lock` and `save`.
#[cfg(all(unix, feature = "file-store"))]
#[tokio::test]
async fn lock_file_owned_by_another_user_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let lock = dir.path().join("tokens.json.lock");
    std::fs::write(&lock, "").unwrap();
    if !give_away(&lock) {
        return;
    }
    let store = FileStore::new(&path);
    let message = store_message_of(StoreErrorKind::Insecure, store.lock("k").await);
    assert!(message.contains("owned by another user"), "{message}");
    store_message_of(
        StoreErrorKind::Insecure,
        store.save("k", &counter_tokens(1)).await,
    );
    assert!(!path.exists(), "nothing was saved");
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn debug_output_never_shows_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(store_path(&dir));
    store.save("k", &full_tokens()).await.unwrap();
    assert_no_secret(&format!("{:?}", full_tokens()));
    assert_no_secret(&format!("{:?}", store.load("k").await.unwrap()));
    assert_no_secret(&format!("{store:?}"));
    assert_no_secret(&format!("{:?}", store.lock("k").await.unwrap()));
    // ... while the file itself does hold them: that is its purpose.
    let file = std::fs::read_to_string(store_path(&dir)).unwrap();
    assert!(file.contains(SECRET_ACCESS) && file.contains(SECRET_REFRESH));
}

// ---- the lock between tasks -----------------------------------------------------------

/// Holds `first`'s lock of "k" while a task is provably waiting inside `second.lock("k")`,
/// and shows that task gets the lock only once the guard is dropped.
async fn assert_second_lock_waits_for_the_guard(first: impl TokenStore, second: impl TokenStore) {
    let guard = first.lock("k").await.unwrap();
    let phase = Arc::new(AtomicUsize::new(0));
    let entered = Arc::new(Notify::new());
    let (seen_tx, mut seen_rx) = oneshot::channel();
    let waiter = tokio::spawn({
        let (phase, entered) = (Arc::clone(&phase), Arc::clone(&entered));
        async move {
            entered.notify_one();
            let guard = second.lock("k").await.unwrap();
            let _ = seen_tx.send(phase.load(SeqCst));
            drop(guard);
        }
    });
    // On this single-threaded runtime the waiter runs from `notify_one` to the point where
    // `lock` has to wait before this task resumes.
    entered.notified().await;
    phase.store(1, SeqCst);
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(seen_rx.try_recv().is_err(), "second lock taken while held");
    phase.store(2, SeqCst);
    drop(guard);
    let seen = timeout(HANG_GUARD, seen_rx).await.expect("hang").unwrap();
    assert_eq!(seen, 2, "the waiter ran only after the guard was dropped");
    waiter.await.unwrap();
}

#[tokio::test]
async fn lock_serialises_tasks_memory_store() {
    let store = MemoryStore::new();
    assert_second_lock_waits_for_the_guard(store.clone(), store).await;
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn lock_serialises_tasks_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(store_path(&dir));
    assert_second_lock_waits_for_the_guard(store.clone(), store).await;
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn lock_serialises_tasks_of_two_file_stores_on_one_path() {
    let dir = tempfile::tempdir().unwrap();
    let first = FileStore::new(store_path(&dir));
    let second = FileStore::new(store_path(&dir));
    assert_second_lock_waits_for_the_guard(first, second).await;
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn file_store_locks_other_keys_independently_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(store_path(&dir));
    let a = store.lock("a").await.unwrap();
    let b = timeout(HANG_GUARD, store.lock("b"))
        .await
        .expect("hang")
        .unwrap();
    // Saving under both guards does not wait for the lock this process already holds.
    timeout(HANG_GUARD, store.save("a", &counter_tokens(1)))
        .await
        .expect("hang")
        .unwrap();
    drop((a, b));
    let again = timeout(HANG_GUARD, store.lock("a")).await.expect("hang");
    assert!(again.is_ok());
}

/// Many tasks on several threads increment one counter under the lock: none is lost and
/// never are two inside at once.
async fn contended_counter(store: impl TokenStore + Clone) {
    const TASKS: u64 = 4;
    const ROUNDS: u64 = 10;
    let inside = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (store, inside) = (store.clone(), Arc::clone(&inside));
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let guard = store.lock("counter").await.unwrap();
                assert_eq!(inside.fetch_add(1, SeqCst), 0, "two tasks inside the lock");
                let n = counter_of(store.load("counter").await.unwrap());
                tokio::task::yield_now().await;
                store.save("counter", &counter_tokens(n + 1)).await.unwrap();
                inside.fetch_sub(1, SeqCst);
                drop(guard);
            }
        }));
    }
    for task in tasks {
        timeout(HANG_GUARD, task).await.expect("hang").unwrap();
    }
    assert_eq!(
        counter_of(store.load("counter").await.unwrap()),
        TASKS * ROUNDS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_under_contention_loses_no_update_memory_store() {
    contended_counter(MemoryStore::new()).await;
}

#[cfg(feature = "file-store")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_under_contention_loses_no_update_file_store() {
    let dir = tempfile::tempdir().unwrap();
    contended_counter(FileStore::new(store_path(&dir))).await;
}

// ---- a bounded wait for the lock ------------------------------------------------------

/// The lock timeout of the tests below. The OS lock is polled against the real clock (no
/// clock of the crate drives it), so these tests really wait this long, once each.
const SHORT_LOCK_TIMEOUT: Duration = Duration::from_millis(200);

/// Holds the OS lock of `path`'s store as another process would: a raw `flock` on
/// `<path>.lock` through a descriptor of its own.
#[cfg(feature = "file-store")]
fn hold_os_lock(path: &Path) -> std::fs::File {
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock)
        .unwrap();
    assert!(fs4::fs_std::FileExt::try_lock_exclusive(&file).unwrap());
    file
}

/// Asserts `result` is a `LockTimeout` that came after about `SHORT_LOCK_TIMEOUT`.
#[track_caller]
fn assert_lock_timeout(result: Result<impl std::fmt::Debug, Error>, started: Instant) {
    let waited = started.elapsed();
    let message = store_message_of(StoreErrorKind::LockTimeout, result);
    assert!(waited >= SHORT_LOCK_TIMEOUT, "gave up after {waited:?}");
    assert!(waited < SHORT_LOCK_TIMEOUT * 10, "waited {waited:?}");
    assert!(message.contains("200ms"), "{message}");
}

/// Another process holding the file's lock forever (frozen) makes `lock` fail with
/// `LockTimeout` after the configured timeout, not hang; once it lets go, `lock` succeeds.
#[cfg(feature = "file-store")]
#[tokio::test]
async fn lock_held_by_another_process_times_out_then_succeeds_once_released() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = FileStore::new(&path).lock_timeout(SHORT_LOCK_TIMEOUT);
    let other = hold_os_lock(&path);

    let started = Instant::now();
    let result = timeout(HANG_GUARD, store.lock("k")).await.expect("hang");
    assert_lock_timeout(result, started);

    drop(other);
    let guard = timeout(HANG_GUARD, store.lock("k")).await.expect("hang");
    assert!(guard.is_ok(), "{guard:?}");
}

/// A save outside `lock` takes the OS lock for its read-modify-write, bounded the same way;
/// nothing is written while the other process holds the lock.
#[cfg(feature = "file-store")]
#[tokio::test]
async fn save_while_another_process_holds_the_lock_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = FileStore::new(&path).lock_timeout(SHORT_LOCK_TIMEOUT);
    let other = hold_os_lock(&path);

    let started = Instant::now();
    let result = timeout(HANG_GUARD, store.save("k", &counter_tokens(1)))
        .await
        .expect("hang");
    assert_lock_timeout(result, started);
    assert!(!path.exists(), "nothing was saved");

    drop(other);
    store.save("k", &counter_tokens(2)).await.unwrap();
    assert_eq!(counter_of(store.load("k").await.unwrap()), 2);
}

/// A task of this process holding the key's lock bounds the wait of another task the same
/// way (FileStore's per-key lock).
#[cfg(feature = "file-store")]
#[tokio::test]
async fn file_store_lock_held_by_another_task_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::new(store_path(&dir)).lock_timeout(SHORT_LOCK_TIMEOUT);
    let held = store.lock("k").await.unwrap();
    let started = Instant::now();
    let result = timeout(HANG_GUARD, store.lock("k")).await.expect("hang");
    assert_lock_timeout(result, started);
    drop(held);
    assert!(store.lock("k").await.is_ok());
}

/// The same for MemoryStore.
#[tokio::test]
async fn memory_store_lock_held_by_another_task_times_out() {
    let store = MemoryStore::new().lock_timeout(SHORT_LOCK_TIMEOUT);
    let held = store.lock("k").await.unwrap();
    let started = Instant::now();
    let result = timeout(HANG_GUARD, store.lock("k")).await.expect("hang");
    assert_lock_timeout(result, started);
    drop(held);
    assert!(store.lock("k").await.is_ok());
}

// ---- the lock between processes -------------------------------------------------------

#[cfg(feature = "file-store")]
const CHILD_MODE: &str = "RPA_STORE_TEST_CHILD_MODE";
#[cfg(feature = "file-store")]
const CHILD_PATH: &str = "RPA_STORE_TEST_CHILD_PATH";
#[cfg(feature = "file-store")]
const CHILD_ID: &str = "RPA_STORE_TEST_CHILD_ID";
#[cfg(feature = "file-store")]
const CHILD_ROUNDS: u64 = 20;
#[cfg(feature = "file-store")]
const CHILD_DONE: &str = "store-child-done";

/// Runs two copies of this test executable as [`cross_process_child`] on one file and
/// returns the counter they leave.
#[cfg(feature = "file-store")]
async fn run_two_children(mode: &str) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let store = FileStore::new(&path);
    store.save("counter", &counter_tokens(0)).await.unwrap();

    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|id| {
            tokio::process::Command::new(&exe)
                .args([
                    "--exact",
                    "cross_process_child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_MODE, mode)
                .env(CHILD_PATH, &path)
                .env(CHILD_ID, id.to_string())
                .kill_on_drop(true)
                .output()
        })
        .collect();
    for output in futures_util::future::join_all(children).await {
        let output = output.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains(CHILD_DONE),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    counter_of(store.load("counter").await.unwrap())
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn lock_serialises_two_processes() {
    let counter = timeout(HANG_GUARD * 2, run_two_children("locked"))
        .await
        .expect("hang");
    assert_eq!(counter, 2 * CHILD_ROUNDS);
}

/// The same work without the lock loses updates: the test above is not passing by luck.
#[cfg(feature = "file-store")]
#[tokio::test]
async fn without_the_lock_two_processes_lose_updates() {
    let counter = timeout(HANG_GUARD * 2, run_two_children("unlocked"))
        .await
        .expect("hang");
    assert!(counter < 2 * CHILD_ROUNDS, "no update lost: {counter}");
}

/// The body of the child processes; does nothing in a normal test run.
#[cfg(feature = "file-store")]
#[tokio::test]
async fn cross_process_child() {
    let (Ok(mode), Ok(path), Ok(id)) = (
        std::env::var(CHILD_MODE),
        std::env::var(CHILD_PATH),
        std::env::var(CHILD_ID),
    ) else {
        return;
    };
    let store = FileStore::new(&path);
    let dir = Path::new(&path).parent().unwrap();

    // Start together, so the two loops really overlap.
    std::fs::write(dir.join(format!("ready-{id}")), "").unwrap();
    let start = tokio::time::Instant::now();
    while !(dir.join("ready-0").exists() && dir.join("ready-1").exists()) {
        assert!(
            start.elapsed() < HANG_GUARD,
            "the other child never started"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    for _ in 0..CHILD_ROUNDS {
        let guard = match mode.as_str() {
            "locked" => Some(store.lock("counter").await.unwrap()),
            _ => None,
        };
        let n = counter_of(store.load("counter").await.unwrap());
        // Widens the window between read and write, where an update can be lost.
        tokio::time::sleep(Duration::from_millis(3)).await;
        store.save("counter", &counter_tokens(n + 1)).await.unwrap();
        drop(guard);
    }
    println!("{CHILD_DONE}");
}
