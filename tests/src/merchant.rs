//! A real HTTP merchant on loopback for tests: every fault a webhook receiver can show,
//! chosen by the request path, and a log of what arrived.
//!
//! | path | answer |
//! | --- | --- |
//! | `/ok`, `/no-content` | 200, 204 |
//! | `/moved` | 301 to `/ok` (must not be followed) |
//! | `/status/{code}` | that status |
//! | `/throttled` | 429 with `Retry-After: 120` |
//! | `/hang` | nothing for 30 s |
//! | `/huge` | 200 with a 10 MB body |
//! | `/flaky/{n}` | 503 for the first `n` requests to that path, then 200 |
//! | `/slow` | 200 once a request to `/ok` has arrived (or after 5 s) |
//! | `/slow-flaky/{n}` | as `/flaky/{n}`, each answer after 200 ms (to see concurrency) |
//!
//! [`TestMerchant::reset_url`] resets every connection; [`TestMerchant::slow_headers_url`]
//! sends its headers one byte at a time; [`refused_url`] has nobody listening.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// A request the merchant received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The path, e.g. `/ok`.
    pub path: String,
    /// Headers, names lowercase.
    pub headers: HashMap<String, String>,
    /// The body.
    pub body: String,
}

/// What happened at the merchant, in order: requests arriving and answers leaving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happening {
    /// A request to this path arrived.
    Received(String),
    /// The answer to a request to this path was sent.
    Answered(String),
}

#[derive(Default)]
struct Log {
    requests: Mutex<Vec<Received>>,
    happenings: Mutex<Vec<Happening>>,
    counters: Mutex<HashMap<String, u32>>,
    arrived: Notify,
}

/// The running merchant; stops with the test's runtime.
pub struct TestMerchant {
    address: SocketAddr,
    log: Arc<Log>,
}

impl TestMerchant {
    /// Starts the merchant on a free loopback port.
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// Starts the merchant on `port` (0: any free one), e.g. where webhooks were failing.
    pub async fn start_on(port: u16) -> Self {
        let log = Arc::new(Log::default());
        let app = Router::new().route("/{*path}", post(answer)).with_state(log.clone());
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind the merchant");
        let address = listener.local_addr().expect("merchant address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { address, log }
    }

    /// The URL of `path` (e.g. `/ok`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Received> {
        self.log.requests.lock().expect("merchant log").clone()
    }

    /// The requests to `path` so far.
    pub fn requests_to(&self, path: &str) -> Vec<Received> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }

    /// Arrivals and answers, in order.
    pub fn happenings(&self) -> Vec<Happening> {
        self.log.happenings.lock().expect("merchant log").clone()
    }

    /// The most requests to `path` that were being answered at once.
    pub fn max_in_flight(&self, path: &str) -> usize {
        let (mut now, mut most) = (0_usize, 0_usize);
        for happening in self.happenings() {
            match happening {
                Happening::Received(p) if p == path => now += 1,
                Happening::Answered(p) if p == path => now = now.saturating_sub(1),
                _ => {}
            }
            most = most.max(now);
        }
        most
    }

    /// Waits until at least `count` requests arrived, or `timeout` passed; returns them.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> Vec<Received> {
        self.wait_for(count, timeout, |_| true).await
    }

    /// Waits until at least `count` requests to `path` arrived, or `timeout` passed; returns them.
    pub async fn wait_for_requests_to(&self, path: &str, count: usize, timeout: Duration) -> Vec<Received> {
        self.wait_for(count, timeout, |r| r.path == path).await
    }

    async fn wait_for(&self, count: usize, timeout: Duration, counted: impl Fn(&Received) -> bool) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.log.arrived.notified();
            let requests: Vec<Received> = self.requests().into_iter().filter(&counted).collect();
            if requests.len() >= count || tokio::time::Instant::now() >= deadline {
                return requests;
            }
            let _ = tokio::time::timeout_at(deadline, notified).await;
        }
    }

    /// A URL whose server resets every connection after reading the request.
    pub async fn reset_url() -> String {
        raw_server(|mut stream| async move {
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer).await;
            let _ = stream.set_zero_linger();
            drop(stream);
        })
        .await
    }

    /// A URL whose server sends its status line, then a header byte every 200 ms.
    pub async fn slow_headers_url() -> String {
        raw_server(|mut stream| async move {
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer).await;
            if stream.write_all(b"HTTP/1.1 200 OK\r\n").await.is_err() {
                return;
            }
            for _ in 0..300 {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if stream.write_all(b"x").await.is_err() {
                    return;
                }
            }
        })
        .await
    }
}

/// A URL on a loopback port that refuses connections: the port is bound (so nothing else
/// can take it) but never listens, for as long as the process lives.
pub fn refused_url() -> String {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket
        .bind("127.0.0.1:0".parse().expect("a loopback address"))
        .expect("bind a loopback port");
    let port = socket.local_addr().expect("bound address").port();
    std::mem::forget(socket);
    format!("http://127.0.0.1:{port}/refused")
}

async fn raw_server<F, Fut>(serve: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a raw server");
    let address = listener.local_addr().expect("raw server address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    format!("http://{address}/raw")
}

async fn answer(State(log): State<Arc<Log>>, Path(path): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let path = format!("/{path}");
    let headers = headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap_or_default().to_owned()))
        .collect();
    let count = {
        let mut counters = log.counters.lock().expect("merchant counters");
        let count = counters.entry(path.clone()).or_default();
        *count += 1;
        *count
    };
    log.requests.lock().expect("merchant log").push(Received {
        path: path.clone(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    log.happenings
        .lock()
        .expect("merchant log")
        .push(Happening::Received(path.clone()));
    log.arrived.notify_waiters();

    let response = match path.as_str() {
        "/ok" => (StatusCode::OK, "ok").into_response(),
        "/no-content" => StatusCode::NO_CONTENT.into_response(),
        "/moved" => (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, "/ok")]).into_response(),
        "/throttled" => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "120")],
            "slow down",
        )
            .into_response(),
        "/hang" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::OK.into_response()
        }
        "/huge" => (StatusCode::OK, "x".repeat(10 * 1024 * 1024)).into_response(),
        "/slow" => {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while !log
                .happenings
                .lock()
                .expect("merchant log")
                .contains(&Happening::Received("/ok".into()))
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            StatusCode::OK.into_response()
        }
        other => {
            if other.starts_with("/slow-") {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let status = other
                .strip_prefix("/status/")
                .and_then(|code| code.parse::<u16>().ok())
                .or_else(|| {
                    let flaky = other
                        .strip_prefix("/flaky/")
                        .or_else(|| other.strip_prefix("/slow-flaky/"));
                    let failures: u32 = flaky?.parse().ok()?;
                    Some(if count <= failures { 503 } else { 200 })
                })
                .and_then(|code| StatusCode::from_u16(code).ok())
                .unwrap_or(StatusCode::NOT_FOUND);
            (status, format!("answer {}", status.as_u16())).into_response()
        }
    };
    log.happenings
        .lock()
        .expect("merchant log")
        .push(Happening::Answered(path));
    response
}
