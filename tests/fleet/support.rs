//! The fleet tests' kit: a real `redis-server` (killed on drop), a local partner (a hyper
//! server with an OAuth token endpoint and an API) that counts what it sees, and children:
//! this test binary re-run as separate OS processes.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use url::Url;

/// How long the partner's tokens live.
pub(crate) const LIFETIME: Duration = Duration::from_secs(2);

/// The environment variable that makes this binary a fleet member.
pub(crate) const CHILD_ENV: &str = "PARTNER_AUTH_FLEET_CHILD";

/// A free loopback port (bound, then let go).
pub(crate) fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` of this test, killed when dropped.
pub(crate) struct RedisServer {
    child: Option<Child>,
    port: u16,
}

impl RedisServer {
    /// Starts one on a free port; `None` (after a notice) when `redis-server` is missing,
    /// unless `PARTNER_AUTH_REQUIRE_SERVICES=1`: then it panics.
    pub(crate) fn start(test: &str) -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            if std::env::var("PARTNER_AUTH_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("{test}: redis-server is not installed (PARTNER_AUTH_REQUIRE_SERVICES=1)");
            }
            eprintln!(
                "notice: {test} skipped: redis-server is not installed \
                 (apt-get install redis-server; PARTNER_AUTH_REQUIRE_SERVICES=1 makes this fail)"
            );
            return None;
        }
        Some(Self::start_on(free_port()))
    }

    /// Starts one on `port` (to bring a killed one back) and waits until it answers.
    pub(crate) fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server never listened");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self {
            child: Some(child),
            port,
        }
    }

    /// Its URL.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Its port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Kills it now (SIGKILL) and waits for it to be gone.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the partner saw.
#[derive(Default)]
pub(crate) struct Ledger {
    /// Requests to the token endpoint.
    pub(crate) token_hits: AtomicUsize,
    /// API requests answered 200.
    pub(crate) api_ok: AtomicUsize,
    /// API requests answered 401.
    pub(crate) api_rejected: AtomicUsize,
    /// Refresh tokens presented a second time (each would revoke a real login).
    pub(crate) reused: AtomicUsize,
    state: Mutex<State>,
    /// Run once at the next token request, before it is answered.
    on_token: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

#[derive(Default)]
struct State {
    next: u64,
    /// Access token -> when it expires.
    issued: HashMap<String, Instant>,
    /// Refresh tokens issued and not yet presented.
    refresh_live: HashSet<String>,
    /// Refresh tokens already presented.
    refresh_spent: HashSet<String>,
}

impl Ledger {
    /// Token-endpoint hits so far.
    pub(crate) fn token_hits(&self) -> usize {
        self.token_hits.load(Ordering::SeqCst)
    }

    /// Refresh tokens presented twice so far.
    pub(crate) fn reused(&self) -> usize {
        self.reused.load(Ordering::SeqCst)
    }

    /// Makes `refresh` a valid, unused refresh token (a login done elsewhere).
    pub(crate) fn grant_refresh_token(&self, refresh: &str) {
        let mut state = self.state.lock().unwrap();
        state.refresh_live.insert(refresh.to_owned());
    }

    /// Runs `f` when the next token request arrives, before answering it.
    pub(crate) fn on_next_token_request(&self, f: impl FnOnce() + Send + 'static) {
        *self.on_token.lock().unwrap() = Some(Box::new(f));
    }

    fn token(&self, body: &[u8]) -> (StatusCode, String) {
        self.token_hits.fetch_add(1, Ordering::SeqCst);
        if let Some(f) = self.on_token.lock().unwrap().take() {
            f();
        }
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(body).into_owned().collect();
        let mut state = self.state.lock().unwrap();
        let refresh = match form.get("grant_type").map(String::as_str) {
            Some("client_credentials") => None,
            Some("refresh_token") => {
                let presented = form.get("refresh_token").cloned().unwrap_or_default();
                if !state.refresh_spent.insert(presented.clone()) {
                    self.reused.fetch_add(1, Ordering::SeqCst);
                    return invalid_grant("refresh token reused");
                }
                if !state.refresh_live.remove(&presented) {
                    return invalid_grant("unknown refresh token");
                }
                state.next += 1;
                let next = format!("r{}", state.next);
                state.refresh_live.insert(next.clone());
                Some(next)
            }
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    r#"{"error":"invalid_request"}"#.into(),
                )
            }
        };
        state.next += 1;
        let access = format!("t{}", state.next);
        state
            .issued
            .insert(access.clone(), Instant::now() + LIFETIME);
        let mut answer = serde_json::json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": LIFETIME.as_secs(),
        });
        if let Some(r) = refresh {
            answer["refresh_token"] = r.into();
        }
        (StatusCode::OK, answer.to_string())
    }

    fn api(&self, auth: Option<&str>) -> StatusCode {
        let state = self.state.lock().unwrap();
        let valid = auth
            .and_then(|a| a.strip_prefix("Bearer "))
            .and_then(|t| state.issued.get(t))
            .is_some_and(|until| Instant::now() < *until);
        if valid {
            self.api_ok.fetch_add(1, Ordering::SeqCst);
            StatusCode::OK
        } else {
            self.api_rejected.fetch_add(1, Ordering::SeqCst);
            StatusCode::UNAUTHORIZED
        }
    }
}

fn invalid_grant(why: &str) -> (StatusCode, String) {
    (
        StatusCode::BAD_REQUEST,
        serde_json::json!({"error": "invalid_grant", "error_description": why}).to_string(),
    )
}

/// The local partner: `POST /token` (OAuth client credentials and refresh tokens, 2-second
/// access tokens, single-use refresh tokens) and `GET /api`.
pub(crate) struct Partner {
    /// What it saw.
    pub(crate) ledger: Arc<Ledger>,
    addr: SocketAddr,
}

impl Partner {
    /// Starts it on its own thread and runtime.
    pub(crate) fn start() -> Self {
        let ledger = Arc::new(Ledger::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = Arc::clone(&ledger);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let ledger = Arc::clone(&shared);
                    tokio::spawn(async move {
                        let service = service_fn(move |req: Request<Incoming>| {
                            let ledger = Arc::clone(&ledger);
                            async move { Ok::<_, Infallible>(answer(&ledger, req).await) }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });
        Self {
            ledger,
            addr: rx.recv().unwrap(),
        }
    }

    /// Its base URL.
    pub(crate) fn base(&self) -> Url {
        Url::parse(&format!("http://{}/", self.addr)).unwrap()
    }
}

async fn answer(ledger: &Ledger, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let (status, body) = if parts.uri.path() == "/token" {
        let body = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        ledger.token(&body)
    } else {
        let auth = parts
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        (ledger.api(auth), String::new())
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// What one child reports.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ChildReport {
    /// Requests answered 200.
    pub(crate) ok: usize,
    /// Requests that failed (an error, or a status other than 200).
    pub(crate) failed: usize,
}

/// Re-runs this test binary as `n` children running only `fleet_child`, each told `env`,
/// waits for them (at most `limit`) and returns their reports.
pub(crate) fn run_children(n: usize, env: &[(&str, String)], limit: Duration) -> Vec<ChildReport> {
    let children: Vec<Child> = (0..n)
        .map(|i| {
            let mut cmd = Command::new(std::env::current_exe().unwrap());
            cmd.args(["--exact", "fleet_child", "--nocapture", "--include-ignored"])
                .env(CHILD_ENV, i.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            for (k, v) in env {
                cmd.env(k, v);
            }
            cmd.spawn().expect("the test binary can be re-run")
        })
        .collect();
    let deadline = Instant::now() + limit;
    children
        .into_iter()
        .map(|mut child| {
            while child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("a fleet child did not finish within {limit:?}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "a fleet child failed: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            parse_report(&stdout).unwrap_or_else(|| panic!("no report from a child: {stdout}"))
        })
        .collect()
}

fn parse_report(stdout: &str) -> Option<ChildReport> {
    let line = stdout.lines().find(|l| l.starts_with("FLEET_REPORT "))?;
    let mut report = ChildReport::default();
    for field in line.split_whitespace().skip(1) {
        let (k, v) = field.split_once('=')?;
        match k {
            "ok" => report.ok = v.parse().ok()?,
            "failed" => report.failed = v.parse().ok()?,
            _ => {}
        }
    }
    Some(report)
}
