//! A fleet that shares one token: several workers, each with its own layer and cache (as
//! separate processes would have), fetch one token between them through a shared store.
//!
//! ```sh
//! cargo run --example fleet --features redis                          # a memory store
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --example fleet --features redis   # Redis
//! ```
//!
//! It starts a local mock partner (the examples' mock kit, `examples/support/mock.rs`), then
//! four workers that send eight requests each at once. Each worker's layer wraps the
//! partner's token source in a [`SharedSource`] over the store: the first worker to take the
//! store's lock fetches the token and saves it; the others find it there. It prints the
//! token-endpoint and API hits (never a token) and asserts one fetch for the fleet. Without
//! `REDIS_URL` the store is a [`MemoryStore`] (workers of one process); with it, a
//! [`RedisStore`] under a prefix of its own, as processes on many machines would share it.

#[path = "support/mock.rs"]
mod mock;

use std::sync::Arc;

use reqwest_middleware::ClientBuilder;
use reqwest_partner_auth::clock::SystemClock;
use reqwest_partner_auth::engine::{HttpTokenSource, Param};
use reqwest_partner_auth::store::{MemoryStore, RedisStore, SharedSource, TokenStore};
use reqwest_partner_auth::AuthMiddleware;

const WORKERS: usize = 4;
const REQUESTS: usize = 8;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let partner = mock::demo::start(SystemClock).await;
    let base = partner.base_url();

    let store: Arc<dyn TokenStore> = match std::env::var("REDIS_URL") {
        Ok(url) => {
            // A prefix of this run's own, so a token left by an earlier run is not reused.
            let prefix = format!("fleet-example:{}:", std::process::id());
            println!("store: Redis, keys under {prefix}");
            Arc::new(RedisStore::open(&url)?.prefix(prefix))
        }
        Err(_) => {
            println!("store: memory (set REDIS_URL to share through Redis)");
            Arc::new(MemoryStore::new())
        }
    };

    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let source = HttpTokenSource::post(base.join(mock::demo::TOKEN_PATH)?)
            .param("client_id", Param::text(mock::demo::CLIENT_ID))
            .param("client_secret", Param::secret(mock::demo::CLIENT_SECRET))
            .add_origin(&base);
        let shared = SharedSource::new(source, Arc::clone(&store), "demo/demo-client");
        let client = ClientBuilder::new(reqwest::Client::new())
            .with(AuthMiddleware::from_source(shared))
            .build();
        let url = base.join(mock::demo::CAMPAIGNS_PATH)?;
        workers.push(tokio::spawn(async move {
            let calls = (0..REQUESTS).map(|_| client.get(url.clone()).send());
            for res in futures_util::future::join_all(calls).await {
                assert!(res?.status().is_success());
            }
            Ok::<_, reqwest_middleware::Error>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }

    println!("{WORKERS} workers x {REQUESTS} requests, one token for all of them:");
    partner.report(1, WORKERS * REQUESTS);
    Ok(())
}
