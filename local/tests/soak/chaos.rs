//! The chaos merchant: one loopback HTTP server for every subscription of the soak (the path
//! says which), answering each request at random with a success, an error status, a 429, a
//! hang past the delivery timeout or a connection reset, and now and then not listening at
//! all for a few seconds. It records every request it reads and the answer it chose.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long a hanging answer takes: past the stack's delivery timeout in the soak.
pub const HANG: Duration = Duration::from_secs(2);

/// What the merchant did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Answer {
    /// Answered with this status (429 carries `Retry-After: 1`).
    Status(u16),
    /// Answered 200 only after [`HANG`], when the stack had given up.
    Hang,
    /// Reset the connection without answering.
    Reset,
}

impl Answer {
    /// A 2xx answered in time.
    pub fn is_success(self) -> bool {
        matches!(self, Answer::Status(200..=299))
    }

    /// For the report.
    pub fn label(self) -> String {
        match self {
            Answer::Status(429) => "429 (Retry-After: 1)".into(),
            Answer::Status(code) => code.to_string(),
            Answer::Hang => format!("hang {} s", HANG.as_secs()),
            Answer::Reset => "connection reset".into(),
        }
    }
}

/// One request as the merchant read it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The path: identifies the subscription.
    pub path: String,
    /// The query string, as sent (the subscription's URL token).
    pub query: Option<String>,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    pub webhook_id: Option<String>,
    pub webhook_timestamp: Option<String>,
    pub webhook_signature: Option<String>,
    /// The body, as bytes.
    pub body: Bytes,
    /// The answer chosen.
    pub answer: Answer,
    /// When it was read (the test's clock), and in unix seconds (for the signature tolerance).
    pub received: Instant,
    pub received_unix: i64,
}

/// The odds of each answer, in percent; the rest is 200.
#[derive(Debug, Clone, Copy)]
pub struct Odds {
    pub no_content_204: u32,
    pub status_500: u32,
    pub status_503: u32,
    pub status_429: u32,
    pub hang: u32,
    pub reset: u32,
}

impl Default for Odds {
    fn default() -> Self {
        Self {
            no_content_204: 8,
            status_500: 5,
            status_503: 5,
            status_429: 3,
            hang: 3,
            reset: 5,
        }
    }
}

impl Odds {
    fn pick(&self, roll: u32) -> Answer {
        let table = [
            (self.no_content_204, Answer::Status(204)),
            (self.status_500, Answer::Status(500)),
            (self.status_503, Answer::Status(503)),
            (self.status_429, Answer::Status(429)),
            (self.hang, Answer::Hang),
            (self.reset, Answer::Reset),
        ];
        let mut threshold = 0;
        for (odds, answer) in table {
            threshold += odds;
            if roll < threshold {
                return answer;
            }
        }
        Answer::Status(200)
    }
}

/// When the merchant stops listening: up for a random time in `up`, then down for one in `down`.
#[derive(Debug, Clone)]
pub struct Outages {
    pub up: std::ops::Range<Duration>,
    pub down: std::ops::Range<Duration>,
}

struct State {
    log: Mutex<Vec<Recorded>>,
    rng: Mutex<StdRng>,
    odds: Odds,
    outages: AtomicU64,
    down_time: Mutex<Duration>,
}

/// The running chaos merchant.
pub struct ChaosMerchant {
    pub port: u16,
    state: Arc<State>,
    supervisor: tokio::task::JoinHandle<()>,
    stop_outages: watch::Sender<bool>,
}

impl ChaosMerchant {
    /// Starts listening on a free loopback port; goes down now and then as `outages` says.
    pub async fn start(seed: u64, odds: Odds, outages: Outages) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the chaos merchant");
        let port = listener.local_addr().expect("its address").port();
        let state = Arc::new(State {
            log: Mutex::new(Vec::new()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            odds,
            outages: AtomicU64::new(0),
            down_time: Mutex::new(Duration::ZERO),
        });
        let (stop_outages, outages_stopped) = watch::channel(false);
        let supervisor = tokio::spawn(supervise(listener, port, state.clone(), outages, seed, outages_stopped));
        Self {
            port,
            state,
            supervisor,
            stop_outages,
        }
    }

    /// The URL of `path` (which may end in a query string).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A way to count the requests so far from another task.
    pub fn requests_counter(&self) -> impl Fn() -> usize + Send + 'static {
        let state = self.state.clone();
        move || state.log.lock().expect("chaos log").len()
    }

    /// Calls `f` on the log without copying it.
    pub fn with_requests<T>(&self, f: impl FnOnce(&[Recorded]) -> T) -> T {
        f(&self.state.log.lock().expect("chaos log"))
    }

    /// No more outages from now on (it comes back up if it is down).
    pub fn stop_outages(&self) {
        let _ = self.stop_outages.send(true);
    }

    /// How many times it went down, and for how long in all.
    pub fn outages(&self) -> (u64, Duration) {
        (
            self.state.outages.load(Ordering::Relaxed),
            *self.state.down_time.lock().expect("down time"),
        )
    }
}

impl Drop for ChaosMerchant {
    fn drop(&mut self) {
        self.supervisor.abort();
    }
}

/// Serves, goes down, comes back on the same port, and so on.
async fn supervise(
    first: TcpListener,
    port: u16,
    state: Arc<State>,
    outages: Outages,
    seed: u64,
    mut outages_stopped: watch::Receiver<bool>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_0000);
    let mut listener = Some(first);
    loop {
        let listening = match listener.take() {
            Some(listener) => listener,
            None => rebind(port).await,
        };
        let (closing, close) = watch::channel(false);
        let up_for = random_in(&mut rng, &outages.up);
        let mut serving = Box::pin(serve(listening, state.clone(), close));
        tokio::select! {
            _ = &mut serving => unreachable!("the accept loop ends only when dropped"),
            _ = async {
                tokio::time::sleep(up_for).await;
                if *outages_stopped.borrow() {
                    std::future::pending::<()>().await;
                }
            } => {}
        }
        // Down: stop accepting (the listener goes with the accept loop), let the connections
        // finish the answers in hand, then close them.
        let _ = closing.send(true);
        drop(serving);
        let down_for = random_in(&mut rng, &outages.down);
        state.outages.fetch_add(1, Ordering::Relaxed);
        let went_down = Instant::now();
        tokio::select! {
            _ = tokio::time::sleep(down_for) => {}
            _ = async { let _ = outages_stopped.wait_for(|stopped| *stopped).await; } => {}
        }
        let was_down = went_down.elapsed();
        *state.down_time.lock().expect("down time") += was_down;
        println!("[chaos] the merchant was down for {was_down:.1?}");
    }
}

async fn rebind(port: u16) -> TcpListener {
    loop {
        // tokio sets SO_REUSEADDR: the port comes back despite connections in TIME_WAIT.
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => return listener,
            Err(error) => {
                println!("[chaos] rebinding port {port}: {error}; trying again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn random_in(rng: &mut StdRng, range: &std::ops::Range<Duration>) -> Duration {
    if range.start >= range.end {
        return range.start;
    }
    rng.random_range(range.clone())
}

/// Accepts connections until dropped; `close` tells live connections to wind down.
async fn serve(listener: TcpListener, state: Arc<State>, close: watch::Receiver<bool>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // Every close by this side is a reset (RST), so a failed answer is abrupt.
        let _ = stream.set_zero_linger();
        let state = state.clone();
        let mut close = close.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(state.clone(), request));
            let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = async { let _ = close.wait_for(|closing| *closing).await; } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}

/// Why a connection is reset: the service fails, and hyper drops the connection unanswered.
#[derive(Debug)]
struct ResetConnection;

impl std::fmt::Display for ResetConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("chaos: reset the connection")
    }
}

impl std::error::Error for ResetConnection {}

async fn answer(state: Arc<State>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, ResetConnection> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        // The stack gave up mid-body: nothing to record.
        return Err(ResetConnection);
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let chosen = {
        let roll = state.rng.lock().expect("chaos rng").random_range(0..100);
        state.odds.pick(roll)
    };
    let now = SystemTime::now();
    state.log.lock().expect("chaos log").push(Recorded {
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        webhook_id: header("webhook-id"),
        webhook_timestamp: header("webhook-timestamp"),
        webhook_signature: header("webhook-signature"),
        body,
        answer: chosen,
        received: Instant::now(),
        received_unix: now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64),
    });
    let respond = |status: u16| {
        let mut response = Response::new(Full::new(Bytes::from(format!("chaos {status}"))));
        *response.status_mut() = StatusCode::from_u16(status).expect("a status");
        if status == 429 {
            response
                .headers_mut()
                .insert("retry-after", hyper::header::HeaderValue::from_static("1"));
        }
        if status == 204 {
            *response.body_mut() = Full::new(Bytes::new());
        }
        response
    };
    match chosen {
        Answer::Status(status) => Ok(respond(status)),
        Answer::Hang => {
            tokio::time::sleep(HANG).await;
            Ok(respond(200))
        }
        Answer::Reset => Err(ResetConnection),
    }
}
