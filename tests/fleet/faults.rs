//! Faults of a fleet's store, in one process with several caches (each one a process's):
//! Redis down at start, killed mid-run, a lock holder that dies, a connection lost during a
//! write, a lease too short to send under; and sharing through a memory store.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use reqwest_partner_auth::clock::ManualClock;
use reqwest_partner_auth::error::StoreErrorKind;
use reqwest_partner_auth::oauth2::{
    ClientCredentialsSource, OAuthClient, RefreshTokenSource, TokenUrl,
};
use reqwest_partner_auth::store::{
    FileStore, MemoryStore, RedisStore, SharedSource, StoredTokens, TokenStore,
};
use reqwest_partner_auth::{Error, TokenCache};

use super::support::{Partner, RedisServer};

const KEY: &str = "partner/fault-client";
const LOGIN: &str = "partner/fault-login";

fn redis_store(url: &str) -> RedisStore {
    RedisStore::open(url)
        .unwrap()
        .prefix("faults:")
        .io_timeout(Duration::from_millis(500))
        .lock_timeout(Duration::from_secs(5))
}

fn shared(
    partner: &Partner,
    store: Arc<dyn TokenStore>,
) -> TokenCache<SharedSource<ClientCredentialsSource>> {
    let base = partner.base();
    let source = ClientCredentialsSource::new(
        TokenUrl::new(base.join("/token").unwrap()),
        "fault-client",
        "fault-secret",
    )
    .add_origin(&base);
    TokenCache::builder(SharedSource::new(source, store, KEY))
        .rejection_cooldown(Duration::ZERO)
        .build()
}

fn refreshing(partner: &Partner, store: Arc<dyn TokenStore>) -> TokenCache<RefreshTokenSource> {
    let client = OAuthClient::new(
        TokenUrl::new(partner.base().join("/token").unwrap()),
        "fault",
    );
    TokenCache::builder(RefreshTokenSource::new(client, store, LOGIN))
        .rejection_cooldown(Duration::ZERO)
        .build()
}

fn header(lease: &reqwest_partner_auth::cache::Lease) -> String {
    lease.header_value().to_str().unwrap().to_owned()
}

fn unavailable(err: &Error) -> bool {
    matches!(err, Error::Store(e) if e.kind() == StoreErrorKind::Unavailable)
}

/// Waits until the store answers again (the connection is remade in the background).
async fn until_reachable(store: &RedisStore) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.load("probe").await.is_err() {
        assert!(Instant::now() < deadline, "redis never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_sharing_a_memory_store_fetch_once_and_replace_a_rejected_token_once() {
    let partner = Partner::start();
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let (a, b) = (
        shared(&partner, Arc::clone(&store)),
        shared(&partner, store),
    );
    let first = a.token().await.unwrap();
    let same = b.token().await.unwrap();
    assert_eq!(header(&first), header(&same));
    assert_eq!(partner.ledger.token_hits(), 1);

    // The API rejects the token: the first cache fetches a new one, the second reuses it
    // instead of fetching again, and neither reuses the rejected one.
    let replaced = a.reject(first.generation()).await.unwrap().unwrap();
    assert_ne!(header(&replaced), header(&first));
    let reused = b.reject(same.generation()).await.unwrap().unwrap();
    assert_eq!(header(&reused), header(&replaced));
    assert_eq!(partner.ledger.token_hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_second_token_is_shared_while_half_its_lifetime_is_left() {
    let partner = Partner::start();
    let clock = ManualClock::new();
    let store: Arc<dyn TokenStore> = Arc::new(MemoryStore::new());
    let cache = |store: Arc<dyn TokenStore>| {
        let base = partner.base();
        let source = ClientCredentialsSource::new(
            TokenUrl::new(base.join("/token").unwrap()),
            "fault-client",
            "fault-secret",
        );
        TokenCache::builder(SharedSource::new(source, store, KEY))
            .clock(Arc::new(clock.clone()))
            .build()
    };
    let first = cache(Arc::clone(&store)).token().await.unwrap();
    clock.advance(Duration::from_millis(900));
    // 1.1 s of 2 s left: shared.
    let shared = cache(Arc::clone(&store)).token().await.unwrap();
    assert_eq!(header(&shared), header(&first));
    assert_eq!(partner.ledger.token_hits(), 1);
    clock.advance(Duration::from_millis(300));
    // 0.8 s left, less than half: a new process fetches its own, and stores it.
    let fresh = cache(Arc::clone(&store)).token().await.unwrap();
    assert_ne!(header(&fresh), header(&first));
    assert_eq!(partner.ledger.token_hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_file_locks_are_held_until_dropped() {
    let memory = MemoryStore::new();
    assert_eq!(memory.lock(KEY).await.unwrap().remaining(), None);
    let dir = tempfile::tempdir().unwrap();
    let file = FileStore::new(dir.path().join("tokens.json"));
    assert_eq!(file.lock(KEY).await.unwrap().remaining(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_at_start_client_credentials_fetch_locally_refresh_tokens_fail_typed() {
    let Some(mut redis) = RedisServer::start("redis_down_at_start") else {
        return;
    };
    let port = redis.port();
    redis.kill();
    let partner = Partner::start();
    let store = redis_store(&format!("redis://127.0.0.1:{port}/"));

    let started = Instant::now();
    let local = shared(&partner, Arc::new(store.clone()));
    let lease = local
        .token()
        .await
        .expect("a local fetch while redis is down");
    assert_eq!(partner.ledger.token_hits(), 1);
    let err = refreshing(&partner, Arc::new(store.clone()))
        .token()
        .await
        .expect_err("no refresh without the store");
    assert!(unavailable(&err), "{err:?}");
    assert_eq!(partner.ledger.token_hits(), 1, "nothing was sent");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Redis comes up: a new process fetches and stores, the first one converges on it.
    let _redis = RedisServer::start_on(port);
    until_reachable(&store).await;
    let newcomer = shared(&partner, Arc::new(store.clone()));
    let stored = newcomer.token().await.unwrap();
    assert_eq!(partner.ledger.token_hits(), 2);
    let converged = local.reject(lease.generation()).await.unwrap().unwrap();
    assert_eq!(header(&converged), header(&stored));
    assert_eq!(partner.ledger.token_hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_keeps_requests_going_and_the_fleet_converges_when_it_returns() {
    let Some(mut redis) = RedisServer::start("redis_killed_mid_run") else {
        return;
    };
    let partner = Partner::start();
    let (sa, sb) = (redis_store(&redis.url()), redis_store(&redis.url()));
    let (a, b) = (
        shared(&partner, Arc::new(sa.clone())),
        shared(&partner, Arc::new(sb.clone())),
    );
    let ta = a.token().await.unwrap();
    let tb = b.token().await.unwrap();
    assert_eq!(header(&ta), header(&tb));
    assert_eq!(partner.ledger.token_hits(), 1);

    redis.kill();
    let ta = a.reject(ta.generation()).await.unwrap().unwrap();
    let tb = b.reject(tb.generation()).await.unwrap().unwrap();
    assert_eq!(partner.ledger.token_hits(), 3, "each fetched locally");
    assert_ne!(header(&ta), header(&tb));

    let _redis = RedisServer::start_on(redis.port());
    until_reachable(&sa).await;
    until_reachable(&sb).await;
    let ta = a.reject(ta.generation()).await.unwrap().unwrap();
    let tb = b.reject(tb.generation()).await.unwrap().unwrap();
    assert_eq!(header(&ta), header(&tb), "one token again");
    assert_eq!(partner.ledger.token_hits(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_holder_that_dies_is_taken_over_once_its_lease_ends() {
    let Some(redis) = RedisServer::start("a_lock_holder_that_dies") else {
        return;
    };
    let lease = Duration::from_millis(500);
    let dying = redis_store(&redis.url()).lease(lease);
    let held = dying.lock(KEY).await.unwrap();
    let left = held.remaining().expect("a leased lock");
    assert!(
        left <= lease && left > Duration::from_millis(300),
        "{left:?}"
    );
    // The holder dies without releasing it.
    std::mem::forget(held);

    let started = Instant::now();
    let other = redis_store(&redis.url());
    let taken = other.lock(KEY).await.expect("taken over after the lease");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_of_a_lock_releases_it() {
    let Some(redis) = RedisServer::start("only_the_owner_of_a_lock_releases_it") else {
        return;
    };
    let late = redis_store(&redis.url()).lease(Duration::from_millis(200));
    let expired = late.lock(KEY).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let owner = redis_store(&redis.url()).lock(KEY).await.unwrap();
    // The first holder's release comes after its lease ended: it must not free the lock of
    // the new owner.
    drop(expired);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = redis_store(&redis.url())
        .lock_timeout(Duration::from_millis(200))
        .lock(KEY)
        .await
        .expect_err("still held by its owner");
    assert!(
        matches!(&err, Error::Store(e) if e.kind() == StoreErrorKind::LockTimeout),
        "{err:?}"
    );
    drop(owner);
    tokio::time::sleep(Duration::from_millis(100)).await;
    redis_store(&redis.url())
        .lock_timeout(Duration::from_millis(200))
        .lock(KEY)
        .await
        .expect("released by its owner");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_shorter_than_the_request_deadline_sends_nothing() {
    let Some(redis) = RedisServer::start("a_lease_shorter_than_the_request_deadline") else {
        return;
    };
    let partner = Partner::start();
    let store = redis_store(&redis.url()).lease(Duration::from_secs(1));
    let err = shared(&partner, Arc::new(store))
        .token()
        .await
        .expect_err("no send");
    assert!(
        matches!(&err, Error::Store(e) if e.kind() == StoreErrorKind::LockTimeout),
        "{err:?}"
    );
    assert_eq!(partner.ledger.token_hits(), 0);

    let login = StoredTokens::from_refresh_token("r0", SystemTime::now());
    partner.ledger.grant_refresh_token("r0");
    let store = redis_store(&redis.url()).lease(Duration::from_secs(1));
    store.save(LOGIN, &login).await.unwrap();
    let err = refreshing(&partner, Arc::new(store))
        .token()
        .await
        .expect_err("no refresh under a short lease");
    assert!(
        matches!(&err, Error::Store(e) if e.kind() == StoreErrorKind::LockTimeout),
        "{err:?}"
    );
    assert_eq!(partner.ledger.token_hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_during_a_write_keeps_the_token_and_never_reuses_a_refresh_token() {
    let Some(redis) = RedisServer::start("a_connection_lost_during_a_write") else {
        return;
    };
    let port = redis.port();
    let redis = Arc::new(Mutex::new(redis));
    let partner = Partner::start();
    let store = redis_store(&format!("redis://127.0.0.1:{port}/"));

    // Client credentials: Redis dies while the token request is out; the save fails, the
    // token is used all the same.
    let kill = Arc::clone(&redis);
    partner
        .ledger
        .on_next_token_request(move || kill.lock().unwrap().kill());
    let cc = shared(&partner, Arc::new(store.clone()));
    cc.token()
        .await
        .expect("the token is used though it was not shared");
    assert_eq!(partner.ledger.token_hits(), 1);

    // A rotating refresh token: the rotated token's save fails, so it is kept in memory and
    // the access token used; the next refresh fails typed while Redis is down, and goes on
    // with the rotated token once Redis is back. None is presented twice.
    *redis.lock().unwrap() = RedisServer::start_on(port);
    until_reachable(&store).await;
    partner.ledger.grant_refresh_token("r0");
    store
        .save(
            LOGIN,
            &StoredTokens::from_refresh_token("r0", SystemTime::now()),
        )
        .await
        .unwrap();
    let kill = Arc::clone(&redis);
    partner
        .ledger
        .on_next_token_request(move || kill.lock().unwrap().kill());
    let rt = refreshing(&partner, Arc::new(store.clone()));
    let first = rt
        .token()
        .await
        .expect("the refreshed access token is used");
    assert_eq!(partner.ledger.token_hits(), 2);
    let err = rt
        .reject(first.generation())
        .await
        .expect_err("redis is down");
    assert!(unavailable(&err), "{err:?}");
    assert_eq!(
        partner.ledger.token_hits(),
        2,
        "nothing sent without the lock"
    );

    *redis.lock().unwrap() = RedisServer::start_on(port);
    until_reachable(&store).await;
    rt.token()
        .await
        .expect("refreshes with the rotated token kept in memory");
    assert_eq!(partner.ledger.token_hits(), 3);
    assert_eq!(partner.ledger.reused(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_the_debug_or_errors_of_a_fleet() {
    let partner = Partner::start();
    let port = super::support::free_port();
    let store = redis_store(&format!("redis://fleet:hunter2-pass@127.0.0.1:{port}/"));
    let err = store.load(KEY).await.expect_err("nothing listens there");
    assert!(unavailable(&err), "{err:?}");
    let err = refreshing(&partner, Arc::new(store.clone()))
        .token()
        .await
        .expect_err("no store, no refresh");
    let cache = shared(&partner, Arc::new(store.clone()));
    let lease = cache.token().await.unwrap();
    let token = header(&lease);
    let shown = [
        format!("{err} {err:?} {:?}", std::error::Error::source(&err)),
        format!("{store:?}"),
        format!("{:?}", cache.source()),
    ]
    .join("\n");
    for secret in [
        "hunter2-pass",
        "fault-secret",
        token.trim_start_matches("Bearer "),
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}
