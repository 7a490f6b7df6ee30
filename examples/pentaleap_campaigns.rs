//! Calls Pentaleap's campaign API with `RefreshTokenAuth`, from the login that
//! `pentaleap_login` saved: the access token is refreshed with the stored refresh token, and
//! each rotated refresh token is saved to the file store before it is used.
//!
//! ```sh
//! cargo run --example pentaleap_campaigns        # against the mock kit's Auth0 (logs in to it first)
//! PENTALEAP_AUTH0_DOMAIN=<tenant>.auth0.com PENTALEAP_CLIENT_ID=<id> \
//! PENTALEAP_PCM_DOMAIN=<pcm domain> cargo run --example pentaleap_campaigns
//! ```
//!
//! The mock kit's Auth0 knows only the logins made to it while it runs, as a real tenant
//! knows only its own: against it, the example logs in first unless this run's mock issued
//! the saved refresh token.

#[path = "support/login.rs"]
mod login;
#[path = "support/mock.rs"]
mod mock;

use std::sync::Arc;

use reqwest_middleware::ClientBuilder;
use reqwest_partner_auth::clock::SystemClock;
use reqwest_partner_auth::oauth2::{OAuthClient, RefreshTokenAuth, RefreshTokenSource};
use reqwest_partner_auth::store::{FileStore, TokenStore};
use secrecy::ExposeSecret;
use url::Url;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = FileStore::new(login::token_file());
    let (client, pcm, mock) = match std::env::var("PENTALEAP_AUTH0_DOMAIN") {
        Ok(domain) => {
            let client = OAuthClient::auth0(&domain, std::env::var("PENTALEAP_CLIENT_ID")?)?;
            let pcm = Url::parse(&format!(
                "https://{}",
                std::env::var("PENTALEAP_PCM_DOMAIN")?
            ))?;
            (client, pcm, None)
        }
        Err(_) => {
            let mock = mock::auth0::start(SystemClock).await;
            let base = mock.base_url();
            println!(
                "No PENTALEAP_AUTH0_DOMAIN: using a local mock of Auth0 and the API at {}",
                base.as_str().trim_end_matches('/')
            );
            let client = OAuthClient::auth0(base.as_str(), mock::auth0::CLIENT_ID)?
                .audience(mock::auth0::AUDIENCE);
            (client, base, Some(mock))
        }
    };
    let key = login::store_key(client.client_id());
    if let Some(mock) = &mock {
        let saved = current_refresh_token(&store, &key).await?;
        let known = saved
            .as_deref()
            .is_some_and(|rt| mock.accepts_refresh_token(rt));
        if saved.is_none() {
            println!("No saved login yet: logging in to the mock first.");
        } else if !known {
            println!(
                "The saved login is from an earlier run of the mock, which this one does not \
                 know: logging in to the mock first."
            );
        }
        if !known {
            let scoped = client
                .clone()
                .scopes(login::PENTALEAP_SCOPES.iter().copied());
            let tokens = login::login(scoped, 0, true).await?;
            store.save(&key, &tokens).await?;
        }
    } else if store.load(&key).await?.is_none() {
        return Err(
            format!("no login under {key:?}: run the pentaleap_login example first").into(),
        );
    }
    let refresh_token_before = current_refresh_token(&store, &key).await?;

    let auth = RefreshTokenAuth::from_source(
        RefreshTokenSource::new(client, Arc::new(store.clone()), key.clone()).add_origin(&pcm),
    );
    let api = ClientBuilder::new(reqwest::Client::new())
        .with(auth)
        .build();
    let publishers = pcm.join("/external/v2/publishers")?;

    let res = api.get(publishers.clone()).send().await?;
    println!(
        "GET /external/v2/publishers -> {} {}",
        res.status(),
        res.text().await?
    );

    if let Some(mock) = &mock {
        let refreshes = mock.refreshes();
        let rejected = mock.rejected();
        println!("The partner revokes the access token; the next call gets a 401 ...");
        mock.revoke_access_tokens();
        let res = api.get(publishers).send().await?;
        let status = res.status();
        println!("GET /external/v2/publishers -> {status} (refreshed and replayed once)");
        assert_eq!(status, 200);
        assert_eq!(mock.refreshes(), refreshes + 1, "one refresh");
        assert_eq!(mock.rejected(), rejected + 1, "one 401, then the replay");
    }

    let rotated = current_refresh_token(&store, &key).await? != refresh_token_before;
    println!(
        "Refresh token rotated and saved to {}: {rotated}",
        login::token_file().display()
    );
    if mock.is_some() {
        assert!(rotated, "each refresh must store a new refresh token");
    }
    Ok(())
}

/// The stored refresh token (never printed).
async fn current_refresh_token(
    store: &FileStore,
    key: &str,
) -> Result<Option<String>, Box<dyn std::error::Error>> {
    Ok(store
        .load(key)
        .await?
        .and_then(|t| t.refresh_token)
        .map(|t| t.expose_secret().to_owned()))
}
