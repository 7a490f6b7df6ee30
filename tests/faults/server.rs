//! A raw HTTP/1.1 server on a tokio `TcpListener`: the test decides every byte of every
//! answer, including answers no well-behaved server library would send (silence, a reset, a
//! body one byte at a time, an endless body, no HTTP at all).
//!
//! Every connection carries one request and is closed after the answer
//! (`connection: close`), so the client never reuses a connection across answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use url::Url;

/// One request as the server read it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// The request path (without the query).
    pub(crate) path: String,
    /// The header lines, names lower-cased.
    pub(crate) headers: Vec<(String, String)>,
    /// Which request to this path it is, counting from 1.
    pub(crate) n: usize,
}

impl Request {
    /// The first value of header `name` (lower case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the server does with a request.
#[derive(Debug, Clone)]
pub(crate) enum Answer {
    /// Writes these bytes, then closes the connection.
    Bytes(Vec<u8>),
    /// Writes `head` at once, waits `delay`, then writes `body` and closes.
    Delayed {
        /// What is written at once (may be empty).
        head: Vec<u8>,
        /// The pause.
        delay: Duration,
        /// What follows the pause.
        body: Vec<u8>,
    },
    /// Reads the request and never answers; the connection stays open until the server is
    /// dropped.
    Hang,
    /// Reads the request and resets the connection (an RST, not a clean close).
    Reset,
    /// Writes `head` at once, then `body` one byte at a time, `gap` apart.
    Slow {
        /// Written at once.
        head: Vec<u8>,
        /// Written byte by byte.
        body: Vec<u8>,
        /// The pause between two bytes.
        gap: Duration,
    },
    /// Writes `head` (which should announce a chunked body), then 4 KiB chunks until the
    /// peer goes away.
    Endless {
        /// The status line and headers.
        head: Vec<u8>,
    },
}

type Handler = dyn Fn(&Request) -> Answer + Send + Sync;

/// A running raw server; dropping it stops it and closes every connection it holds.
pub(crate) struct RawServer {
    addr: SocketAddr,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
}

impl RawServer {
    /// Starts a server on `127.0.0.1` answering every request with `answer(request)`.
    pub(crate) async fn start(answer: impl Fn(&Request) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let handler: Arc<Handler> = Arc::new(answer);
        let (conn_hits, conn_tasks) = (Arc::clone(&hits), Arc::clone(&tasks));
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (hits, handler) = (Arc::clone(&conn_hits), Arc::clone(&handler));
                let task = tokio::spawn(serve(stream, hits, handler));
                let mut tasks = conn_tasks.lock().unwrap_or_else(|p| p.into_inner());
                tasks.retain(|t| !t.is_finished());
                tasks.push(task.abort_handle());
            }
        });
        tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(accept.abort_handle());
        Self { addr, hits, tasks }
    }

    /// `http://127.0.0.1:<port>/`.
    pub(crate) fn base(&self) -> Url {
        Url::parse(&format!("http://{}/", self.addr)).expect("a url")
    }

    /// The URL of `path` on this server.
    pub(crate) fn url(&self, path: &str) -> Url {
        self.base().join(path).expect("a url")
    }

    /// How many requests to `path` the server has read in full.
    pub(crate) fn hits(&self, path: &str) -> usize {
        let hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        hits.get(path).copied().unwrap_or(0)
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

/// Reads one request and answers it as the handler says.
async fn serve(
    mut stream: TcpStream,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    handler: Arc<Handler>,
) {
    let Some((path, headers)) = read_request(&mut stream).await else {
        return;
    };
    let n = {
        let mut hits = hits.lock().unwrap_or_else(|p| p.into_inner());
        let n = hits.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    let request = Request { path, headers, n };
    // Write errors mean the client went away: that ends the connection, nothing more.
    match handler(&request) {
        Answer::Bytes(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Answer::Delayed { head, delay, body } => {
            let _ = stream.write_all(&head).await;
            tokio::time::sleep(delay).await;
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
        }
        Answer::Hang => std::future::pending::<()>().await,
        Answer::Reset => {
            let _ = stream.set_zero_linger();
            drop(stream);
        }
        Answer::Slow { head, body, gap } => {
            if stream.write_all(&head).await.is_err() {
                return;
            }
            for byte in body {
                tokio::time::sleep(gap).await;
                if stream.write_all(&[byte]).await.is_err() {
                    return;
                }
            }
            let _ = stream.shutdown().await;
        }
        Answer::Endless { head } => {
            if stream.write_all(&head).await.is_err() {
                return;
            }
            let chunk = format!("1000\r\n{}\r\n", "x".repeat(0x1000));
            while stream.write_all(chunk.as_bytes()).await.is_ok() {}
        }
    }
}

/// Reads the request head and its `content-length` body; `None` if the client went away.
async fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<(String, String)>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let target = lines.next()?.split(' ').nth(1)?.to_owned();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((path, headers))
}

/// The status line and headers of an answer with a `content-length` body of `len` bytes.
pub(crate) fn head(status: u16, content_type: &str, len: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} Status {status}\r\ncontent-type: {content_type}\r\n\
         content-length: {len}\r\nconnection: close\r\n\r\n"
    )
    .into_bytes()
}

/// A whole answer: head and body.
pub(crate) fn response(status: u16, content_type: &str, body: impl AsRef<[u8]>) -> Vec<u8> {
    let body = body.as_ref();
    let mut bytes = head(status, content_type, body.len());
    bytes.extend_from_slice(body);
    bytes
}

/// A head announcing a chunked body.
pub(crate) fn chunked_head(status: u16, content_type: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} Status {status}\r\ncontent-type: {content_type}\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes()
}
