//! A store lock held by a frozen process: a rotating login in a `FileStore` whose OS lock
//! another process holds and never lets go. No caller waits for it longer than the store's
//! lock timeout or the cache's fetch deadline; a caller whose token is still valid gets it.

use std::path::Path;

use reqwest_partner_auth::error::StoreErrorKind;
use reqwest_partner_auth::oauth2::{OAuthClient, RefreshTokenAuth, RefreshTokenSource, TokenUrl};
use reqwest_partner_auth::store::{FileStore, StoredTokens, TokenStore};
use reqwest_partner_auth::Clock as _;

use super::*;

const KEY: &str = "login";

/// The store's lock timeout in the rows where it must end the wait.
const LOCK_TIMEOUT: Duration = Duration::from_millis(200);

/// A rotating token endpoint: its n-th answer is `tok-n` living an hour with `rt-(n+1)`.
fn rotating_answer(n: usize) -> Answer {
    let body = format!(
        r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":{HOUR},"refresh_token":"rt-{}"}}"#,
        n + 1
    );
    Answer::Bytes(response(200, "application/json", body))
}

/// Holds the OS lock of the store at `path` as a frozen process would: an exclusive `flock`
/// on `<path>.lock` through a descriptor of its own, until the file is dropped.
fn hold_os_lock(path: &Path) -> std::fs::File {
    let mut lock = path.as_os_str().to_owned();
    lock.push(".lock");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock)
        .expect("the lock file opens");
    assert!(fs4::fs_std::FileExt::try_lock_exclusive(&file).expect("flock"));
    file
}

/// A layer over a rotating login saved in `store`, refreshed at `server`, on `clock`.
async fn rotating_layer(
    server: &RawServer,
    store: FileStore,
    clock: &ManualClock,
) -> Builder<RefreshTokenSource> {
    store
        .save(
            KEY,
            &StoredTokens::from_refresh_token("rt-1", clock.system_now()),
        )
        .await
        .expect("the login is saved");
    let oauth = OAuthClient::new(TokenUrl::new(server.url(TOKEN)), "faults");
    let source = RefreshTokenSource::new(oauth, Arc::new(store), KEY).add_origin(&server.base());
    on_clock(RefreshTokenAuth::builder(source), clock)
}

/// The store's lock wait is bounded: while the token is still valid (inside the skew window)
/// the request goes out with it after the lock timeout, nothing is sent to the token
/// endpoint without the lock; past expiry the caller gets a typed `LockTimeout`; once the
/// frozen process lets go, the next request refreshes.
#[tokio::test]
async fn a_store_lock_held_by_a_frozen_process_serves_the_valid_token_then_a_typed_error() {
    within(async {
        let server = serve(rotating_answer, echo).await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("tokens.json");
        let clock = ManualClock::new();
        let store = FileStore::new(&path).lock_timeout(LOCK_TIMEOUT);
        let client = client(rotating_layer(&server, store, &clock).await);

        assert_eq!(get(&client, &server).await, (200, "Bearer tok-1".into()));
        let frozen = hold_os_lock(&path);

        clock.advance(secs(HOUR - 10));
        let started = Instant::now();
        assert_eq!(
            get(&client, &server).await,
            (200, "Bearer tok-1".into()),
            "the still-valid token is served"
        );
        let waited = started.elapsed();
        assert!(
            waited >= LOCK_TIMEOUT,
            "did not wait for the lock: {waited:?}"
        );
        assert!(waited < LOCK_TIMEOUT * 10, "waited {waited:?}");
        assert_eq!(server.hits(TOKEN), 1, "nothing sent without the lock");

        clock.advance(secs(20)); // expired
        let started = Instant::now();
        let err = crate_error(&get_err(&client, &server).await);
        assert!(
            matches!(&err, Error::Store(e) if e.kind() == StoreErrorKind::LockTimeout),
            "not a typed lock timeout: {err:?}"
        );
        assert!(started.elapsed() < LOCK_TIMEOUT * 10);
        assert_eq!((server.hits(TOKEN), server.hits(API)), (1, 2));

        drop(frozen);
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-2".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (2, 3));
    })
    .await;
}

/// With the store's default lock timeout (20 s), the cache's fetch deadline still ends the
/// wait: a typed `FetchTimeout` at the deadline, and once the lock is free the next caller
/// starts a new fetch.
#[tokio::test]
async fn the_fetch_deadline_bounds_a_wait_for_a_frozen_store_lock() {
    within(async {
        let server = serve(rotating_answer, echo).await;
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("tokens.json");
        let clock = ManualClock::new();
        let layer = rotating_layer(&server, FileStore::new(&path), &clock).await;
        let client = client(layer.fetch_deadline(TIMEOUT));
        let frozen = hold_os_lock(&path);

        let started = Instant::now();
        let err = crate_error(&get_err(&client, &server).await);
        assert!(
            matches!(err, Error::FetchTimeout { deadline } if deadline == TIMEOUT),
            "not the fetch deadline: {err:?}"
        );
        assert!(
            started.elapsed() < TIMEOUT * 4,
            "took {:?}",
            started.elapsed()
        );
        assert_eq!((server.hits(TOKEN), server.hits(API)), (0, 0));

        drop(frozen);
        assert_eq!(get(&client, &server).await, (200, "Bearer tok-1".into()));
        assert_eq!((server.hits(TOKEN), server.hits(API)), (1, 1));
    })
    .await;
}
