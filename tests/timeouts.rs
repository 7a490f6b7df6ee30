//! Connect timeouts of the token sources, against a real socket whose connects never complete.
//!
//! Every source (the engine, each partner's `Source`, the OAuth 2.0 client behind the code
//! exchange, the refresh and client credentials) takes `connect_timeout`: it gives up a connect
//! that hangs after that long, with a transport error that says connect, long before the
//! request timeout. It applies to the client the source builds itself; a client given with
//! `http_client` keeps its own connect timeout, whichever of the two setters comes first.
//!
//! The hanging connect: a loopback listener with a backlog of one that never accepts, its queue
//! filled by one finished connection. Linux drops the SYN of every further connect while the
//! queue is full, so `connect()` waits (retransmitting its SYN) until the caller gives up;
//! [`a_connect_to_a_full_listen_queue_hangs`] checks that it does.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use reqwest_partner_auth::engine::{HttpTokenSource, Param};
use reqwest_partner_auth::{Error, FetchContext, FetchReason, Token, TokenSource};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use url::Url;

/// The connect timeout set on the sources.
const CONNECT: Duration = Duration::from_millis(200);
/// The request timeout of the rows where the connect timeout must cut the connect: far longer.
const REQUEST: Duration = Duration::from_secs(10);
/// A bound on the time to fail with [`CONNECT`], far below [`REQUEST`]: functional, not a
/// speed claim.
const CONNECT_BOUND: Duration = Duration::from_secs(2);
/// The request timeout of the rows where the connect timeout must not apply (a given client):
/// long enough to tell from [`CONNECT`], short enough for a test.
const SHORT_REQUEST: Duration = Duration::from_secs(1);
/// The connect timeout a source has unless told otherwise.
const DEFAULT_CONNECT: Duration = Duration::from_secs(5);

/// A loopback port whose connects hang: a listener that never accepts, its queue full.
struct Trap {
    _listener: TcpListener,
    _queued: Vec<TcpStream>,
    addr: SocketAddr,
}

impl Trap {
    async fn new() -> Self {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind((Ipv4Addr::LOCALHOST, 0).into()).unwrap();
        // A backlog of 0: Linux queues one finished connection, then drops SYNs.
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut queued = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_millis(50), TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => queued.push(stream),
                Ok(Err(err)) => {
                    panic!("a connect to the full queue failed instead of hanging: {err}")
                }
                Err(_) => break,
            }
            assert!(queued.len() < 64, "the listen queue does not fill");
        }
        Self {
            _listener: listener,
            _queued: queued,
            addr,
        }
    }

    /// `http://127.0.0.1:<port>/`.
    fn base(&self) -> Url {
        Url::parse(&format!("http://{}/", self.addr)).unwrap()
    }
}

/// The method itself: a plain connect to the trap neither completes nor fails for longer than
/// any bound below, so a row that fails in time was cut by a timeout, not by the socket.
#[tokio::test]
async fn a_connect_to_a_full_listen_queue_hangs() {
    let trap = Trap::new().await;
    let started = Instant::now();
    let outcome = tokio::time::timeout(SHORT_REQUEST, TcpStream::connect(trap.addr)).await;
    assert!(outcome.is_err(), "the connect ended: {outcome:?}");
    assert!(started.elapsed() >= SHORT_REQUEST);
}

/// Runs `fetch`, which must fail, and says how long it took.
async fn fail_timed<F: Future<Output = Result<Token, Error>>>(fetch: F) -> (Error, Duration) {
    let started = Instant::now();
    let err = fetch
        .await
        .expect_err("a token from a port that never answers");
    (err, started.elapsed())
}

/// The reqwest error under an [`Error::Transport`].
fn transport(err: &Error) -> &reqwest::Error {
    match err {
        Error::Transport { source, .. } => source,
        other => panic!("expected a transport error, got {other:?}"),
    }
}

/// The connect was given up after [`CONNECT`], well before the request timeout, and the error
/// says so.
fn assert_cut_by_connect_timeout(err: &Error, elapsed: Duration) {
    let source = transport(err);
    assert!(
        source.is_connect() && source.is_timeout(),
        "not a connect timeout: {source:?}"
    );
    assert!(
        elapsed >= CONNECT && elapsed < CONNECT_BOUND,
        "failed after {elapsed:?}, expected the connect timeout of {CONNECT:?}"
    );
}

/// The connect waited for the request timeout: the source's connect timeout did not apply.
fn assert_cut_by_request_timeout(err: &Error, elapsed: Duration) {
    let source = transport(err);
    assert!(source.is_timeout(), "not a timeout: {source:?}");
    assert!(
        elapsed >= SHORT_REQUEST && elapsed < SHORT_REQUEST + CONNECT_BOUND,
        "failed after {elapsed:?}, expected the request timeout of {SHORT_REQUEST:?}"
    );
}

/// A client that sets no connect timeout (reqwest's default: none).
fn client_without_connect_timeout() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn fetch<S: TokenSource>(source: S) -> Result<Token, Error> {
    source.fetch(&FetchContext::new(FetchReason::Initial)).await
}

/// The same rows for every kind of source: `make` builds one against a base URL (the type
/// with the setters), `fetch` asks it for a token.
macro_rules! connect_timeout_rows {
    ($kind:ident, $make:expr, $fetch:expr) => {
        mod $kind {
            use super::*;

            #[tokio::test]
            async fn connect_timeout_gives_up_a_hanging_connect() {
                let trap = Trap::new().await;
                let source = ($make)(&trap.base())
                    .connect_timeout(CONNECT)
                    .timeout(REQUEST);
                let (err, elapsed) = fail_timed(($fetch)(source)).await;
                assert_cut_by_connect_timeout(&err, elapsed);
            }

            #[tokio::test]
            async fn a_client_given_after_connect_timeout_keeps_its_own() {
                let trap = Trap::new().await;
                let source = ($make)(&trap.base())
                    .connect_timeout(CONNECT)
                    .http_client(client_without_connect_timeout())
                    .timeout(SHORT_REQUEST);
                let (err, elapsed) = fail_timed(($fetch)(source)).await;
                assert_cut_by_request_timeout(&err, elapsed);
            }

            #[tokio::test]
            async fn a_client_given_before_connect_timeout_keeps_its_own() {
                let trap = Trap::new().await;
                let source = ($make)(&trap.base())
                    .http_client(client_without_connect_timeout())
                    .connect_timeout(CONNECT)
                    .timeout(SHORT_REQUEST);
                let (err, elapsed) = fail_timed(($fetch)(source)).await;
                assert_cut_by_request_timeout(&err, elapsed);
            }

            #[tokio::test]
            async fn a_given_clients_connect_timeout_applies() {
                let trap = Trap::new().await;
                let client = reqwest::Client::builder()
                    .connect_timeout(CONNECT)
                    .build()
                    .unwrap();
                let source = ($make)(&trap.base())
                    .connect_timeout(Duration::from_secs(60))
                    .http_client(client)
                    .timeout(REQUEST);
                let (err, elapsed) = fail_timed(($fetch)(source)).await;
                assert_cut_by_connect_timeout(&err, elapsed);
            }
        }
    };
}

fn engine_source(base: &Url) -> HttpTokenSource {
    HttpTokenSource::post(base.join("/token").unwrap())
        .param("client_id", Param::text("id"))
        .param("client_secret", Param::secret("secret"))
}

connect_timeout_rows!(engine, engine_source, fetch);

/// Without `connect_timeout` a source gives up a hanging connect after 5 s, well before a
/// longer request timeout.
#[tokio::test]
async fn the_engine_gives_up_a_connect_after_five_seconds_by_default() {
    let trap = Trap::new().await;
    let source = engine_source(&trap.base()).timeout(Duration::from_secs(30));
    let (err, elapsed) = fail_timed(fetch(source)).await;
    let source = transport(&err);
    assert!(source.is_connect() && source.is_timeout(), "{source:?}");
    assert!(
        elapsed >= DEFAULT_CONNECT && elapsed < DEFAULT_CONNECT + CONNECT_BOUND,
        "failed after {elapsed:?}"
    );
}

#[cfg(feature = "targeter")]
connect_timeout_rows!(
    targeter,
    |base: &Url| reqwest_partner_auth::targeter::Source::with_base_url(
        reqwest_partner_auth::targeter::Credentials::new("key", "secret"),
        base,
    ),
    fetch
);

#[cfg(feature = "adgem")]
connect_timeout_rows!(
    adgem,
    |base: &Url| reqwest_partner_auth::adgem::Source::with_base_url(
        reqwest_partner_auth::adgem::Credentials::new(1, 2, "client", "secret"),
        base,
    ),
    fetch
);

#[cfg(feature = "setu")]
connect_timeout_rows!(
    setu,
    |base: &Url| reqwest_partner_auth::setu::Source::with_base_url(
        reqwest_partner_auth::setu::Credentials::new("client", "secret"),
        base,
    ),
    fetch
);

#[cfg(feature = "channel-manager")]
connect_timeout_rows!(
    channel_manager,
    |base: &Url| reqwest_partner_auth::channel_manager::Source::with_base_url(
        reqwest_partner_auth::channel_manager::Credentials::new("user", "password"),
        base,
    ),
    fetch
);

#[cfg(feature = "oauth2")]
mod oauth {
    use std::sync::Arc;
    use std::time::SystemTime;

    use reqwest_partner_auth::oauth2::{
        AuthorizeUrl, ClientCredentialsSource, OAuthClient, RedirectUrl, RefreshTokenSource,
        TokenUrl,
    };
    use reqwest_partner_auth::store::{MemoryStore, StoredTokens, TokenStore as _};

    use super::*;

    pub(super) fn client_credentials(base: &Url) -> ClientCredentialsSource {
        ClientCredentialsSource::new(
            TokenUrl::new(base.join("/oauth/token").unwrap()),
            "client",
            "secret",
        )
    }

    pub(super) fn client(base: &Url) -> OAuthClient {
        OAuthClient::new(TokenUrl::new(base.join("/oauth/token").unwrap()), "client")
            .client_secret("secret")
            .authorize_url(AuthorizeUrl::new(base.join("/authorize").unwrap()))
            .redirect_uri(RedirectUrl::parse("http://127.0.0.1:8976/callback").unwrap())
    }

    /// A refresh with `client`, of a login held in a store.
    pub(super) async fn refresh(client: OAuthClient) -> Result<Token, Error> {
        let store = Arc::new(MemoryStore::new());
        store
            .save(
                "login",
                &StoredTokens::from_refresh_token("rt-1", SystemTime::now()),
            )
            .await
            .unwrap();
        fetch(RefreshTokenSource::new(client, store, "login")).await
    }

    /// A login with `client`: its code exchange.
    pub(super) async fn exchange(client: OAuthClient) -> Result<Token, Error> {
        let login = client.begin_login().unwrap();
        let state = login
            .authorize_url()
            .query_pairs()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        let mut callback = login.redirect_uri().clone();
        callback
            .query_pairs_mut()
            .append_pair("code", "code-1")
            .append_pair("state", &state);
        login
            .complete(&callback)
            .await
            .map(|_| unreachable!("a login completed against a port that never answers"))
    }

    /// Without `connect_timeout` the OAuth 2.0 client gives up a hanging connect after 5 s.
    #[tokio::test]
    async fn client_credentials_give_up_a_connect_after_five_seconds_by_default() {
        let trap = Trap::new().await;
        let source = client_credentials(&trap.base()).timeout(Duration::from_secs(30));
        let (err, elapsed) = fail_timed(fetch(source)).await;
        let source = transport(&err);
        assert!(source.is_connect() && source.is_timeout(), "{source:?}");
        assert!(
            elapsed >= DEFAULT_CONNECT && elapsed < DEFAULT_CONNECT + CONNECT_BOUND,
            "failed after {elapsed:?}"
        );
    }
}

#[cfg(feature = "oauth2")]
connect_timeout_rows!(client_credentials, oauth::client_credentials, fetch);

#[cfg(feature = "oauth2")]
connect_timeout_rows!(refresh_token, oauth::client, oauth::refresh);

#[cfg(feature = "oauth2")]
connect_timeout_rows!(code_exchange, oauth::client, oauth::exchange);
