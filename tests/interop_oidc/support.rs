//! Harness for the interop suite: the pinned oidc-provider installed on first use (`npm ci
//! --prefix tests/oidc`, once per checkout), the server (`tests/oidc/server.mjs`) started on
//! 127.0.0.1 and killed on drop, a headless code + PKCE login driven over plain HTTP with a
//! small cookie jar, a resource API stand-in (httpmock) that echoes the bearer token it got,
//! JWT claim reading, and a token store that counts saves (one save = one refresh).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use httpmock::MockServer;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest_partner_auth::oauth2::{AuthorizeUrl, OAuthClient, RedirectUrl, TokenUrl};
use reqwest_partner_auth::store::{StoreLock, StoredTokens, TokenStore};
use secrecy::ExposeSecret as _;
use serde_json::Value;
use url::Url;

/// The resource server the test server knows (`aud` of its access tokens).
pub(crate) const RESOURCE: &str = "https://api.partner.test";

/// Set to `1` to turn "service absent, skipped" into a failure.
pub(crate) const REQUIRE_ENV: &str = "PARTNER_AUTH_REQUIRE_SERVICES";

/// How long the server may take to print its `LISTENING` line (generous: on a loaded 2-core CI
/// machine, with every test binary running at once, node can take well over 20 s to start).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long `npm ci` may take to install oidc-provider (it takes seconds).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

/// How long to wait for another test process that is installing it.
const INSTALL_LOCK_WAIT: Duration = Duration::from_secs(330);

/// A line on the real stderr. `eprintln!` inside a test is captured by the test harness and
/// only shown on failure; a skip notice must be visible in a passing run.
pub(crate) fn notice(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

fn require_services() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v.trim() == "1")
}

fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("oidc")
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| {
            [
                dir.join(program),
                dir.join(format!("{program}.exe")),
                dir.join(format!("{program}.cmd")),
            ]
        })
        .find(|p| p.is_file())
}

fn installed(dir: &Path) -> bool {
    dir.join("node_modules/oidc-provider/package.json")
        .is_file()
}

/// Node and the pinned oidc-provider, ready to run `server.mjs`: `Err` says why not. The
/// first test of the process installs oidc-provider when it is missing and `npm` is on PATH
/// (`npm ci --prefix tests/oidc`); the others wait for it and share its outcome.
fn oidc_provider() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY.get_or_init(install_if_missing).clone()
}

fn install_if_missing() -> Result<(), String> {
    let dir = oidc_dir();
    if find_on_path("node").is_none() {
        return Err("`node` was not found on PATH".to_owned());
    }
    // Held until the end: another test process (a second `cargo test`) checks and installs
    // under the same lock, so neither sees the other's half-written node_modules.
    let _lock = InstallLock::acquire(&dir)?;
    if installed(&dir) {
        return Ok(());
    }
    let Some(npm) = find_on_path("npm") else {
        return Err(format!(
            "{} is missing and `npm` was not found on PATH to install it",
            dir.join("node_modules/oidc-provider").display()
        ));
    };
    notice(
        "interop: tests/oidc/node_modules is missing: installing the pinned oidc-provider \
         with `npm ci --prefix tests/oidc` (once for this checkout)",
    );
    let started = Instant::now();
    let mut child = Command::new(npm)
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        // npm's own lines go to the real stderr, visible in a passing run like the notices.
        .stdout(std::io::stderr())
        .stderr(std::io::stderr())
        .spawn()
        .map_err(|e| format!("could not run `npm ci --prefix tests/oidc`: {e}"))?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < INSTALL_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`npm ci --prefix tests/oidc` did not finish within {INSTALL_TIMEOUT:?}"
                ));
            }
            Err(e) => return Err(format!("waiting for `npm ci --prefix tests/oidc`: {e}")),
        }
    };
    if !status.success() {
        return Err(format!("`npm ci --prefix tests/oidc` failed ({status})"));
    }
    if !installed(&dir) {
        return Err(format!(
            "`npm ci --prefix tests/oidc` succeeded but {} is still missing",
            dir.join("node_modules/oidc-provider").display()
        ));
    }
    notice(&format!(
        "interop: installed oidc-provider in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// The cross-process lock of the install: an exclusive `flock` on the tracked
/// `tests/oidc/package-lock.json` (which `npm ci` reads and never writes), so no lock file is
/// left behind and every test process of this checkout, whatever its target directory, takes
/// the same lock. Released when dropped. Without `flock` (not unix) there is no lock.
struct InstallLock {
    _file: Option<std::fs::File>,
}

impl InstallLock {
    #[cfg(unix)]
    fn acquire(dir: &Path) -> Result<Self, String> {
        use rustix::fs::{flock, FlockOperation};

        let path = dir.join("package-lock.json");
        let file = std::fs::File::open(&path)
            .map_err(|e| format!("could not open {} to lock it: {e}", path.display()))?;
        let deadline = Instant::now() + INSTALL_LOCK_WAIT;
        let mut told = false;
        loop {
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Self { _file: Some(file) }),
                Err(e) if e == rustix::io::Errno::WOULDBLOCK && Instant::now() < deadline => {
                    if !told {
                        notice("interop: waiting for another test process to finish installing oidc-provider");
                        told = true;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                    return Err(format!(
                        "another test process held the install lock on {} for over {INSTALL_LOCK_WAIT:?}",
                        path.display()
                    ))
                }
                Err(e) => return Err(format!("could not lock {}: {e}", path.display())),
            }
        }
    }

    #[cfg(not(unix))]
    fn acquire(_dir: &Path) -> Result<Self, String> {
        Ok(Self { _file: None })
    }
}

/// A running `tests/oidc/server.mjs`. Dropping it kills the process and reaps it.
pub(crate) struct OidcServer {
    child: Child,
    issuer: Url,
}

impl OidcServer {
    /// Starts the server with `ACCESS_TOKEN_TTL=ttl_secs`.
    ///
    /// Installs oidc-provider first if it is missing (once per process, see
    /// [`oidc_provider`]). `None` (after printing a notice) when node is not installed, or
    /// oidc-provider is missing and cannot be installed (no npm, a failed `npm ci`), unless
    /// `PARTNER_AUTH_REQUIRE_SERVICES=1`, which panics instead. A server that is installed
    /// but does not come up is always a failure.
    pub(crate) fn start(test: &str, ttl_secs: u64) -> Option<Self> {
        let dir = oidc_dir();
        if let Err(why) = oidc_provider() {
            if require_services() {
                panic!(
                    "{test}: the OAuth 2.0 interop server is required ({REQUIRE_ENV}=1) but \
                     unavailable: {why}. Install Node >= 20 with npm (the tests then run \
                     `npm ci --prefix tests/oidc` themselves), or run that command by hand."
                );
            }
            notice(&format!(
                "SKIPPED: {test}: the oidc-provider server is unavailable: {why}. It needs \
                 node >= 20 and npm on PATH (the tests then run `npm ci --prefix tests/oidc` \
                 themselves). Set {REQUIRE_ENV}=1 to make this a failure."
            ));
            return None;
        }

        // A node process that does not come up at all is rare but was seen on a loaded
        // machine (no output, no exit); a second process gets the full timeout.
        match Self::spawn_once(test, &dir, ttl_secs, START_TIMEOUT / 2) {
            Ok(server) => Some(server),
            Err(why) => {
                notice(&format!(
                    "{test}: tests/oidc/server.mjs did not start ({why}); starting it again"
                ));
                match Self::spawn_once(test, &dir, ttl_secs, START_TIMEOUT) {
                    Ok(server) => Some(server),
                    Err(why) => panic!("{test}: tests/oidc/server.mjs did not start: {why}"),
                }
            }
        }
    }

    /// One `node tests/oidc/server.mjs` process, up within `timeout`, or why not.
    fn spawn_once(
        test: &str,
        dir: &std::path::Path,
        ttl_secs: u64,
        timeout: Duration,
    ) -> Result<Self, String> {
        let mut child = Command::new("node")
            .arg(dir.join("server.mjs"))
            .current_dir(dir)
            .env("PORT", "0")
            .env("ACCESS_TOKEN_TTL", ttl_secs.to_string())
            .env_remove("REDIRECT_URI")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{test}: could not spawn `node tests/oidc/server.mjs`: {e}")
            });

        // stderr: kept (bounded) for the failure message; it is only warnings otherwise.
        let stderr_text = Arc::new(Mutex::new(String::new()));
        {
            let mut stderr = child.stderr.take().expect("piped stderr");
            let sink = Arc::clone(&stderr_text);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = stderr.read(&mut buf) {
                    let mut s = sink
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    if s.len() < 16 * 1024 {
                        s.push_str(&String::from_utf8_lossy(&buf[..n]));
                    }
                }
            });
        }
        // stdout: the LISTENING line, then drained until the process ends.
        let (tx, rx) = mpsc::channel::<String>();
        {
            let stdout = child.stdout.take().expect("piped stdout");
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(line);
                }
            });
        }

        let deadline = std::time::Instant::now() + timeout;
        let issuer = loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.trim().strip_prefix("LISTENING ") {
                        break Url::parse(url).unwrap_or_else(|e| {
                            panic!("{test}: bad LISTENING line {line:?}: {e}")
                        });
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait();
                    std::thread::sleep(Duration::from_millis(50));
                    let stderr = stderr_text
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .clone();
                    let why = match e {
                        mpsc::RecvTimeoutError::Timeout => {
                            format!("no LISTENING line within {timeout:?}")
                        }
                        mpsc::RecvTimeoutError::Disconnected => {
                            format!("the server exited before listening ({status:?})")
                        }
                    };
                    return Err(format!("{why}\n--- stderr ---\n{stderr}"));
                }
            }
        };
        Ok(Self { child, issuer })
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn issuer(&self) -> &Url {
        &self.issuer
    }

    /// The token endpoint.
    pub(crate) fn token_url(&self) -> Url {
        self.issuer.join("/token").expect("static path")
    }

    /// The authorization endpoint.
    pub(crate) fn authorize_url(&self) -> Url {
        self.issuer.join("/auth").expect("static path")
    }

    /// The public PKCE client with the loopback redirect URI (any port is accepted). Its
    /// issuer is set, so every login also checks the callback's RFC 9207 `iss`, which
    /// oidc-provider sends (the issuer string has no trailing slash).
    pub(crate) fn pkce_client(&self) -> OAuthClient {
        OAuthClient::new(TokenUrl::new(self.token_url()), "pkce-public")
            .authorize_url(AuthorizeUrl::new(self.authorize_url()))
            .issuer(self.issuer.as_str().trim_end_matches('/'))
            .audience(RESOURCE)
            .scopes(["offline_access", "read:campaigns"])
            .redirect_uri(
                RedirectUrl::parse("http://127.0.0.1:53682/callback").expect("static url"),
            )
    }

    /// A confidential client of the code flow (`code-basic` registered for
    /// `client_secret_basic`, `code-post` for `client_secret_post`), with its secret, built
    /// with `OAuthClient::new` (so authenticating with HTTP Basic unless told otherwise).
    pub(crate) fn code_client(&self, id: &str) -> OAuthClient {
        OAuthClient::new(TokenUrl::new(self.token_url()), id)
            .authorize_url(AuthorizeUrl::new(self.authorize_url()))
            .client_secret(format!("{id}-secret"))
            .issuer(self.issuer.as_str().trim_end_matches('/'))
            .audience(RESOURCE)
            .scopes(["offline_access", "read:campaigns"])
            .redirect_uri(
                RedirectUrl::parse("http://127.0.0.1:53682/callback").expect("static url"),
            )
    }
}

impl Drop for OidcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server or returns from the test (after the skip notice).
macro_rules! server_or_skip {
    ($test:expr, $ttl:expr) => {
        match $crate::support::OidcServer::start($test, $ttl) {
            Some(server) => server,
            None => return,
        }
    };
}

// ---------------------------------------------------------------------------------------
// Headless login

/// A cookie jar that is just good enough for the login: name=value per path, path-matched
/// (RFC 6265 §5.1.4), deleted by an empty value, `Max-Age<=0` or an `Expires` in the past.
#[derive(Debug, Default)]
struct CookieJar {
    cookies: Vec<(String, String, String)>, // (path, name, value)
}

fn path_matches(cookie_path: &str, request_path: &str) -> bool {
    request_path == cookie_path
        || (request_path.starts_with(cookie_path)
            && (cookie_path.ends_with('/')
                || request_path.as_bytes().get(cookie_path.len()) == Some(&b'/')))
}

impl CookieJar {
    fn store(&mut self, res: &reqwest::Response, request_url: &Url) {
        for header in res.headers().get_all(SET_COOKIE) {
            let Ok(header) = header.to_str() else {
                continue;
            };
            let mut parts = header.split(';');
            let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
            // Default path: the request path up to its last `/` (RFC 6265 §5.1.4).
            let mut path = match request_url.path().rfind('/') {
                Some(0) | None => "/".to_owned(),
                Some(i) => request_url.path()[..i].to_owned(),
            };
            let mut deleted = value.is_empty();
            for attr in parts {
                let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                match k.as_str() {
                    "path" if v.starts_with('/') => path = v.to_owned(),
                    "max-age" => deleted |= v.parse::<i64>().is_ok_and(|s| s <= 0),
                    "expires" => {
                        deleted |=
                            httpdate::parse_http_date(v).is_ok_and(|t| t <= SystemTime::now())
                    }
                    _ => {}
                }
            }
            self.cookies.retain(|(p, n, _)| !(p == &path && n == &name));
            if !deleted {
                self.cookies.push((path, name, value));
            }
        }
    }

    fn header_for(&self, url: &Url) -> Option<String> {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|(p, _, _)| path_matches(p, url.path()))
            .map(|(_, n, v)| format!("{n}={v}"))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }
}

/// Follows the authorization redirects (303s, relative `Location`s resolved against the
/// current URL) from `authorize_url` until one leads to `redirect_uri`; returns that
/// callback URL. Panics (with status and the server's JSON error) on anything else.
pub(crate) async fn drive_login(authorize_url: &Url, redirect_uri: &Url) -> Url {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a plain reqwest client");
    let mut jar = CookieJar::default();
    let mut url = authorize_url.clone();
    for hop in 1..=8 {
        let mut req = http.get(url.clone());
        if let Some(cookies) = jar.header_for(&url) {
            req = req.header(COOKIE, cookies);
        }
        let res = req.send().await.expect("the authorization server answers");
        jar.store(&res, &url);
        let status = res.status();
        let location = res
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let Some(location) = location.filter(|_| status.is_redirection()) else {
            let body = res.text().await.unwrap_or_default();
            panic!(
                "login hop {hop}: GET {} answered {status}: {body}",
                url.path()
            );
        };
        let next = url.join(&location).expect("a valid Location");
        if next.origin() == redirect_uri.origin() && next.path() == redirect_uri.path() {
            return next;
        }
        url = next;
    }
    panic!("the login did not reach the redirect uri within 8 hops");
}

/// A full headless login for `client`: begin, drive, complete.
pub(crate) async fn login(client: &OAuthClient) -> StoredTokens {
    let pending = client.begin_login().expect("a login can begin");
    let callback = drive_login(pending.authorize_url(), pending.redirect_uri()).await;
    pending
        .complete(&callback)
        .await
        .expect("the code exchange succeeds")
}

/// Presents `refresh_token` to the token endpoint by hand, as `pkce-public`: (status, body).
pub(crate) async fn raw_refresh(token_url: &Url, refresh_token: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(token_url.clone())
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", "pkce-public"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .expect("the token endpoint answers");
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

// ---------------------------------------------------------------------------------------
// Tokens

/// The claims of a JWT (payload decoded, signature not checked).
pub(crate) fn jwt_claims(jwt: &str) -> Value {
    let mut parts = jwt.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("the access token is not a JWT (header.payload.signature)");
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("a base64url JWT payload");
    serde_json::from_slice(&bytes).expect("a JSON JWT payload")
}

/// A numeric claim.
pub(crate) fn claim_u64(claims: &Value, name: &str) -> u64 {
    claims[name]
        .as_u64()
        .unwrap_or_else(|| panic!("claim `{name}` is missing or not a number"))
}

/// The token out of `Authorization: Bearer <token>`.
pub(crate) fn bearer(header: &http::HeaderValue) -> String {
    header
        .to_str()
        .expect("an ascii header")
        .strip_prefix("Bearer ")
        .expect("a Bearer authorization")
        .to_owned()
}

/// Seconds since the epoch.
pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

/// The refresh token a store holds (exposed only to compare; never printed).
pub(crate) fn refresh_of(tokens: &StoredTokens) -> String {
    tokens
        .refresh_token
        .as_ref()
        .expect("a refresh token is stored")
        .expose_secret()
        .to_owned()
}

// ---------------------------------------------------------------------------------------
// The resource API and the store

/// A stand-in for `https://api.partner.test`: `GET /campaigns` answers 200 with the bearer
/// token it received as the body (401 without one), so a test sees which token was used.
pub(crate) async fn echo_api(server: &MockServer) {
    server
        .mock_async(|when, then| {
            when.method(httpmock::Method::GET).path("/campaigns");
            then.respond_with(|req| {
                let auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(str::to_owned);
                match auth {
                    Some(token) => httpmock::HttpMockResponse::builder()
                        .status(200)
                        .body(token)
                        .build(),
                    None => httpmock::HttpMockResponse::builder().status(401).build(),
                }
            });
        })
        .await;
}

/// A [`TokenStore`] over another that counts saves. `RefreshTokenSource` saves exactly once per
/// refresh the server answered with tokens, so `saves()` counts refresh-token uses; the mark
/// it saves before sending each refresh (`StoredTokens::refresh_started_at`) is counted apart,
/// by `marks()`.
#[derive(Clone)]
pub(crate) struct CountingStore {
    inner: Arc<dyn TokenStore>,
    saves: Arc<AtomicUsize>,
    marks: Arc<AtomicUsize>,
}

impl CountingStore {
    pub(crate) fn new(inner: impl TokenStore) -> Self {
        Self {
            inner: Arc::new(inner),
            saves: Arc::new(AtomicUsize::new(0)),
            marks: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub(crate) fn saves(&self) -> usize {
        self.saves.load(Ordering::SeqCst)
    }

    /// Refreshes marked as sent.
    pub(crate) fn marks(&self) -> usize {
        self.marks.load(Ordering::SeqCst)
    }

    pub(crate) async fn get(&self, key: &str) -> StoredTokens {
        self.inner
            .load(key)
            .await
            .expect("the store can be read")
            .expect("tokens are stored under the key")
    }
}

#[async_trait::async_trait]
impl TokenStore for CountingStore {
    async fn load(&self, key: &str) -> Result<Option<StoredTokens>, reqwest_partner_auth::Error> {
        self.inner.load(key).await
    }

    async fn save(
        &self,
        key: &str,
        tokens: &StoredTokens,
    ) -> Result<(), reqwest_partner_auth::Error> {
        let count = match tokens.refresh_started_at {
            Some(_) => &self.marks,
            None => &self.saves,
        };
        count.fetch_add(1, Ordering::SeqCst);
        self.inner.save(key, tokens).await
    }

    async fn lock(&self, key: &str) -> Result<StoreLock, reqwest_partner_auth::Error> {
        self.inner.lock(key).await
    }
}
