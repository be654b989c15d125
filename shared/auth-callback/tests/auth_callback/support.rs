//! The harness: a platform on an embedded store with a clock the tests move, and real
//! merchants listening on 127.0.0.1 (axum, or raw TCP for broken connections).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tempfile::TempDir;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use webhooks_auth_callback::{AuthCallback, AuthDecision, AuthRequest};
use webhooks_domain::event::IsoTime;
use webhooks_domain::{AuthCallbackConfig, AuthMethod, Clock, Merchant, UrlPolicy, hash_api_key};
use webhooks_storage::embedded::EmbeddedStore;
use webhooks_storage::{AuthCallbackStore, MerchantStore};

/// The local stack's policy: http and loopback targets allowed.
pub const LOOPBACK: UrlPolicy = UrlPolicy {
    allow_http: true,
    allow_private: true,
};
/// Lambda's policy: https to public addresses only.
pub const STRICT: UrlPolicy = UrlPolicy {
    allow_http: false,
    allow_private: false,
};
/// The action the tests ask about.
pub const ACTION: &str = "buy";

/// A clock that moves only when told to; it starts at the real time so that Standard
/// Webhooks verifiers accept its timestamps.
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: time::Duration) {
        *self.0.lock().expect("clock lock") += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().expect("clock lock")
    }
}

/// The auth-callback function over an embedded store in a temporary directory.
pub struct Platform {
    /// The function under test.
    pub auth: AuthCallback<EmbeddedStore>,
    /// Its store.
    pub store: EmbeddedStore,
    /// Its clock.
    pub clock: Arc<ManualClock>,
    _dir: TempDir,
}

impl Platform {
    /// A platform for loopback merchants with the default 3 s budget.
    pub fn new() -> Self {
        Self::with(LOOPBACK, Duration::from_secs(3))
    }

    /// A platform with this URL policy and default budget.
    pub fn with(policy: UrlPolicy, default_timeout: Duration) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(&dir.path().join("store.db")).expect("open store");
        let clock = Arc::new(ManualClock(Mutex::new(OffsetDateTime::now_utc())));
        let auth = AuthCallback::new(store.clone(), policy, default_timeout, clock.clone()).expect("build");
        Self {
            auth,
            store,
            clock,
            _dir: dir,
        }
    }

    /// A merchant whose callback, without authentication, is `url`; its id.
    pub async fn merchant_calling(&self, url: String) -> String {
        self.merchant(Some(callback(url, AuthMethod::None))).await
    }

    /// A new merchant, with this auth callback if any; returns its id.
    pub async fn merchant(&self, config: Option<AuthCallbackConfig>) -> String {
        let merchant = Merchant {
            id: Merchant::new_id(),
            name: "Test merchant".into(),
            created_at: IsoTime::new(OffsetDateTime::now_utc()).expect("a valid time"),
        };
        let key_hash = hash_api_key(&format!("whk_{}", merchant.id));
        self.store
            .create_merchant(&merchant, &key_hash)
            .await
            .expect("create merchant");
        if let Some(config) = config {
            self.store
                .put_auth_callback(&merchant.id, &config)
                .await
                .expect("put callback");
        }
        merchant.id
    }

    /// Asks whether `email` may [`ACTION`] at the merchant.
    pub async fn ask(&self, merchant_id: &str, email: &str) -> AuthDecision {
        self.ask_to(merchant_id, email, ACTION).await
    }

    /// Asks whether `email` may `action` at the merchant.
    pub async fn ask_to(&self, merchant_id: &str, email: &str, action: &str) -> AuthDecision {
        self.auth
            .decide(AuthRequest {
                merchant_id: merchant_id.into(),
                email: email.into(),
                action: action.into(),
            })
            .await
    }
}

/// A callback configuration with no timeout or cache of its own, at revision `rev-1`.
pub fn callback(url: impl Into<String>, auth: AuthMethod) -> AuthCallbackConfig {
    AuthCallbackConfig {
        url: url.into(),
        auth,
        timeout_ms: None,
        cache_ttl_seconds: None,
        revision: "rev-1".into(),
    }
}

/// Asserts a denial with `reason`.
#[track_caller]
pub fn assert_denied(decision: &AuthDecision, reason: &str) {
    assert!(
        !decision.allowed && decision.reason == reason && !decision.cached,
        "expected a denial for {reason}, got {decision:?}"
    );
}

/// Asserts a fresh (not cached) approval.
#[track_caller]
pub fn assert_allowed(decision: &AuthDecision) {
    assert!(
        decision.allowed && decision.reason == "allowed" && !decision.cached,
        "expected an approval, got {decision:?}"
    );
}

/// One request a merchant received.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, exactly as received.
    pub body: Vec<u8>,
}

impl Seen {
    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The `email` of a callback body.
    pub fn email(&self) -> String {
        let body: serde_json::Value = serde_json::from_slice(&self.body).expect("a JSON body");
        body["email"].as_str().expect("an email").to_owned()
    }
}

/// A merchant's HTTP server answering every request with `answer` and recording it.
pub struct MerchantServer {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl MerchantServer {
    /// Starts a server on 127.0.0.1.
    pub async fn start(answer: impl Fn(&Seen) -> Response + Send + Sync + 'static) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let recorder = Arc::clone(&seen);
        let router = Router::new().fallback(move |request: Request| {
            let (answer, recorder) = (Arc::clone(&answer), Arc::clone(&recorder));
            async move {
                let (parts, body) = request.into_parts();
                let seen = Seen {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_owned(),
                    headers: parts.headers,
                    body: to_bytes(body, usize::MAX).await.expect("request body").to_vec(),
                };
                let response = answer(&seen);
                recorder.lock().expect("recorder lock").push(seen);
                response
            }
        });
        Self {
            base: serve(router).await,
            seen,
        }
    }

    /// A merchant answering `status` with `body` to everything.
    pub async fn answering(status: u16, body: &'static str) -> Self {
        Self::start(move |_| answer(status, body)).await
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("recorder lock").clone()
    }

    /// How many requests went to `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.seen().iter().filter(|seen| seen.path == path).count()
    }
}

/// Serves `router` on a free loopback port; returns `http://127.0.0.1:<port>`.
pub async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{address}")
}

/// A response with `status` and a JSON `body`.
pub fn answer(status: u16, body: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).expect("a status");
    (status, [(CONTENT_TYPE, "application/json")], body.into()).into_response()
}

/// What a raw TCP merchant does with a connection once it has read the request.
pub enum Raw {
    /// Resets the connection (RST).
    Reset,
    /// Writes these bytes, then closes.
    Reply(Vec<u8>),
    /// Never answers: keeps the connection open until the client hangs up.
    Silence,
}

/// A merchant speaking raw TCP, for answers no HTTP server library would give.
pub struct RawServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    connections: Arc<AtomicUsize>,
}

impl RawServer {
    /// Starts it; `reply` gets the connection's number, from 0.
    pub async fn start(reply: impl Fn(usize) -> Raw + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let number = counter.fetch_add(1, Ordering::SeqCst);
                read_request(&mut stream).await;
                match reply(number) {
                    Raw::Reset => {
                        stream.set_zero_linger().expect("SO_LINGER");
                        drop(stream);
                    }
                    Raw::Reply(bytes) => {
                        tokio::spawn(async move {
                            // The client may hang up first (an oversized answer): that is fine.
                            let _ = stream.write_all(&bytes).await;
                            let _ = stream.shutdown().await;
                        });
                    }
                    Raw::Silence => {
                        tokio::spawn(async move {
                            let mut byte = [0u8; 1];
                            let _ = stream.read(&mut byte).await;
                        });
                    }
                }
            }
        });
        Self { base, connections }
    }

    /// How many connections it accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads one request: the head, then `content-length` bytes of body.
async fn read_request(stream: &mut TcpStream) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(read @ 1..) = stream.read(&mut chunk).await else {
            return;
        };
        buffer.extend_from_slice(&chunk[..read]);
        let Some(head_end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
        let body_len = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if buffer.len() >= head_end + 4 + body_len {
            return;
        }
    }
}

/// A loopback URL where nothing listens.
pub async fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{address}/auth")
}
