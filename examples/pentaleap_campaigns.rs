//! Calls Pentaleap's campaign API with `RefreshTokenAuth`, from the login that
//! `pentaleap_login` saved: the access token is refreshed with the stored refresh token, and
//! each rotated refresh token is saved to the file store before it is used.
//!
//! ```sh
//! cargo run --example pentaleap_campaigns        # against a local mock (logs in to it if needed)
//! PENTALEAP_AUTH0_DOMAIN=<tenant>.auth0.com PENTALEAP_CLIENT_ID=<id> \
//! PENTALEAP_PCM_DOMAIN=<pcm domain> cargo run --example pentaleap_campaigns
//! ```

#[path = "support/login.rs"]
mod login;
#[path = "support/pentaleap_mock.rs"]
mod mock;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use reqwest_middleware::ClientBuilder;
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
            let mock = mock::start().await;
            println!(
                "No PENTALEAP_AUTH0_DOMAIN: using a local mock of Auth0 and the API at {}",
                mock.server.base_url()
            );
            let client = OAuthClient::new(
                mock.server.url("/authorize").parse()?,
                mock.server.url("/oauth/token").parse()?,
                "mock-client",
            )
            .audience("https://api.pentaleap.example");
            let pcm = Url::parse(&mock.server.base_url())?;
            (client, pcm, Some(mock))
        }
    };
    let key = login::store_key(client.client_id());
    if store.load(&key).await?.is_none() {
        if mock.is_none() {
            return Err(
                format!("no login under {key:?}: run the pentaleap_login example first").into(),
            );
        }
        println!("No saved login yet: logging in to the mock first.");
        let scoped = client
            .clone()
            .scopes(login::PENTALEAP_SCOPES.iter().copied());
        let tokens = login::login(scoped, 0, true).await?;
        store.save(&key, &tokens).await?;
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
        let refreshes = mock.refreshes.load(Ordering::SeqCst);
        println!("The partner revokes the access token; the next call gets a 401 ...");
        mock.revoke_access_tokens();
        let res = api.get(publishers).send().await?;
        let status = res.status();
        println!("GET /external/v2/publishers -> {status} (refreshed and replayed once)");
        assert_eq!(status, 200);
        assert_eq!(mock.refreshes.load(Ordering::SeqCst), refreshes + 1);
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

/// A fingerprint of the stored refresh token (never printed).
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
