//! The command-line login shared by the Pentaleap campaign examples (the client side, for the
//! real tenant and the mock kit's alike): a loopback callback server, the authorize URL, and
//! the code exchange.
#![allow(dead_code, unreachable_pub)]

use std::error::Error;
use std::path::PathBuf;

use reqwest_partner_auth::oauth2::{OAuthClient, RedirectUrl};
use reqwest_partner_auth::store::StoredTokens;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

/// The scopes Pentaleap documents for version 2 of the API, plus `offline_access` for refresh
/// tokens.
pub const PENTALEAP_SCOPES: &[&str] = &[
    "offline_access",
    "read:publishers",
    "write:publishers",
    "read:advertisers",
    "write:advertisers",
    "read:campaigns",
    "write:campaigns",
    "read:ad_groups",
    "write:ad_groups",
    "read:sites",
    "read:ad_units",
    "read:publisher_reports",
];

/// Where the examples keep the tokens: `PENTALEAP_TOKEN_FILE`, else a file in the temp dir.
pub fn token_file() -> PathBuf {
    std::env::var_os("PENTALEAP_TOKEN_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("reqwest-partner-auth-pentaleap.json"))
}

/// The store key of a client's login.
pub fn store_key(client_id: &str) -> String {
    format!("pentaleap:{client_id}")
}

/// Runs a login: binds the callback server on `port` (0 = any), prints the authorize URL,
/// and waits for the callback. With `play_browser`, follows the authorize URL itself (for the
/// mock kit's Auth0, whose `/authorize` logs the user in at once and redirects straight back).
pub async fn login(
    client: OAuthClient,
    port: u16,
    play_browser: bool,
) -> Result<StoredTokens, Box<dyn Error>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let redirect = Url::parse(&format!(
        "http://127.0.0.1:{}/callback",
        listener.local_addr()?.port()
    ))?;
    let pending = client
        .redirect_uri(RedirectUrl::new(redirect))
        .begin_login()?;
    println!(
        "Open this URL in a browser and log in:\n  {}",
        pending.authorize_url()
    );
    let callback = tokio::spawn(wait_for_callback(listener));
    if play_browser {
        println!("(local mock: following the URL as the browser would)");
        reqwest::get(pending.authorize_url().clone()).await?;
    }
    let callback_url = callback.await??;
    println!("callback received; exchanging the code (PKCE verifier, state checked)");
    Ok(pending.complete(&callback_url).await?)
}

/// Accepts one request on the callback server and returns its full URL.
async fn wait_for_callback(listener: TcpListener) -> Result<Url, std::io::Error> {
    let port = listener.local_addr()?.port();
    loop {
        let (mut socket, _) = listener.accept().await?;
        let mut buf = vec![0u8; 8192];
        let mut len = 0;
        while len < buf.len() {
            let n = socket.read(&mut buf[len..]).await?;
            len += n;
            if n == 0 || buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let head = String::from_utf8_lossy(&buf[..len]);
        let target = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("/");
        if !target.starts_with("/callback") {
            socket
                .write_all(
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                )
                .await?;
            continue;
        }
        let page = "Login complete. You can close this window.";
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
            page.len()
        );
        socket.write_all(reply.as_bytes()).await?;
        return Url::parse(&format!("http://127.0.0.1:{port}{target}"))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e));
    }
}
