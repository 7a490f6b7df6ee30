//! Logs in to Pentaleap's campaign API (Auth0 authorization code flow with PKCE) from the
//! command line, and saves the tokens to a file store for `pentaleap_campaigns`.
//!
//! ```sh
//! cargo run --example pentaleap_login            # against the mock kit's Auth0
//! PENTALEAP_AUTH0_DOMAIN=<tenant>.auth0.com PENTALEAP_CLIENT_ID=<id> \
//! PENTALEAP_AUDIENCE=<audience> PENTALEAP_CALLBACK_PORT=8976 \
//!   cargo run --example pentaleap_login          # against the real tenant
//! ```
//!
//! With a real tenant, ask Pentaleap to register `http://127.0.0.1:<port>/callback` as your
//! callback URI, open the printed URL, and log in with your Pentaleap user. The tokens go to
//! `PENTALEAP_TOKEN_FILE` (default: a file in the temp directory), mode 0600.

#[path = "support/login.rs"]
mod login;
#[path = "support/mock.rs"]
mod mock;

use reqwest_partner_auth::clock::SystemClock;
use reqwest_partner_auth::oauth2::OAuthClient;
use reqwest_partner_auth::store::{FileStore, TokenStore};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (client, port, mock) = match std::env::var("PENTALEAP_AUTH0_DOMAIN") {
        Ok(domain) => {
            let client = OAuthClient::auth0(&domain, std::env::var("PENTALEAP_CLIENT_ID")?)?
                .audience(std::env::var("PENTALEAP_AUDIENCE")?);
            let port = std::env::var("PENTALEAP_CALLBACK_PORT").map_or(Ok(8976), |p| p.parse())?;
            (client, port, None)
        }
        Err(_) => {
            let mock = mock::auth0::start(SystemClock).await;
            let base = mock.base_url();
            println!(
                "No PENTALEAP_AUTH0_DOMAIN: using a local mock of Auth0 at {}",
                base.as_str().trim_end_matches('/')
            );
            let client = OAuthClient::auth0(base.as_str(), mock::auth0::CLIENT_ID)?
                .audience(mock::auth0::AUDIENCE);
            (client, 0, Some(mock))
        }
    };
    let key = login::store_key(client.client_id());
    let client = client.scopes(login::PENTALEAP_SCOPES.iter().copied());
    let tokens = login::login(client, port, mock.is_some()).await?;
    assert!(
        tokens.refresh_token.is_some(),
        "the login must return a refresh token"
    );
    if let Some(mock) = &mock {
        assert_eq!(mock.code_exchanges(), 1, "one code, exchanged once");
    }

    let path = login::token_file();
    let store = FileStore::new(&path);
    store.save(&key, &tokens).await?;
    println!(
        "Logged in. Access and refresh token saved under {key:?} in {} ({:?}).",
        path.display(),
        tokens
    );
    println!("Next: cargo run --example pentaleap_campaigns");
    Ok(())
}
