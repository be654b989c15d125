//! The functions as Lambda runs them: a Lambda Runtime API emulator on loopback, the
//! bootstrap process it serves, the table and queues on moto the bootstrap talks to, and the
//! events Lambda would hand it.
//!
//! [`LambdaEmulator`] serves the Runtime API (`2018-06-01`) the way `lambda_runtime` 1.5
//! calls it:
//!
//! | request | answer |
//! | --- | --- |
//! | `GET /2018-06-01/runtime/invocation/next` | blocks until [`LambdaEmulator::invoke`] queues an event, then 200 with the event as body and the `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn` and `-Trace-Id` headers |
//! | `POST /2018-06-01/runtime/invocation/{id}/response` | 202; the body is that invocation's result |
//! | `POST /2018-06-01/runtime/invocation/{id}/error` | 202; the body (`{errorType, errorMessage}`) is that invocation's error |
//! | `POST /2018-06-01/runtime/init/error` | 202; every waiting and later invocation fails with the body |
//!
//! An answer for an id that is not in flight is 400, one for an invocation whose caller
//! stopped waiting is 410 (as Lambda answers a stale response), bodies over Lambda's 6 MB are
//! 413, and any other path is 404.
//!
//! [`FunctionProcess`] starts a bootstrap with Lambda's reserved environment variables and
//! measures its init time and RSS; [`MotoDeployment`] is the table and queues it runs
//! against; [`MotoDeployment::receive_sqs_event`] and [`api_gateway_v2_event`] build the
//! events an SQS event source mapping and an API Gateway HTTP API send.

use std::collections::HashMap;
use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, serve};
use serde_json::{Map, Value, json};
use tempfile::NamedTempFile;
use time::OffsetDateTime;
use time::macros::format_description;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;
use webhooks_storage::aws::{DynamoStore, QueueUrls, ResourceNames, create_resources, sdk_config_for_endpoint};

use crate::moto::MotoServer;
use crate::verifiers::repo_root;

/// The region every emulated resource lives in.
pub const REGION: &str = "us-east-1";
/// The account moto and the emulator put in ARNs.
pub const ACCOUNT_ID: &str = "123456789012";
/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` unless the caller's environment overrides it.
pub const DEFAULT_MEMORY_SIZE_MB: u32 = 256;
/// Lambda's largest synchronous request and response payload.
const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// How often [`FunctionProcess::wait_until_polling`] looks whether the process exited.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// The API Gateway HTTP API the events of [`api_gateway_v2_event`] come through.
const API_ID: &str = "abc123";
/// The client address of those events (TEST-NET-3).
const SOURCE_IP: &str = "203.0.113.7";

/// How an invocation ended: the function's result, or its (or the emulator's) error.
type Outcome = Result<Value, Value>;

/// An invocation waiting for `/next`.
struct Invocation {
    request_id: String,
    event: Value,
    deadline_ms: u128,
    trace_id: String,
    reply: oneshot::Sender<Outcome>,
}

/// What the Runtime API handlers share with [`LambdaEmulator`].
struct Shared {
    function_arn: String,
    queued: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    first_next: watch::Sender<Option<Instant>>,
    init_error: watch::Sender<Option<Value>>,
}

/// A Lambda Runtime API for one function, on a free loopback port; stops when dropped.
pub struct LambdaEmulator {
    address: SocketAddr,
    function_name: String,
    queue: mpsc::UnboundedSender<Invocation>,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl LambdaEmulator {
    /// Starts the Runtime API of the function `function_name` (its ARN is
    /// `arn:aws:lambda:us-east-1:123456789012:function:{function_name}`).
    pub async fn start(function_name: &str) -> io::Result<Self> {
        let (queue, queued) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            function_arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"),
            queued: tokio::sync::Mutex::new(queued),
            in_flight: Mutex::default(),
            first_next: watch::Sender::new(None),
            init_error: watch::Sender::new(None),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(respond))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(MAX_PAYLOAD_BYTES))
            .with_state(shared.clone());
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let server = tokio::spawn(async move {
            // Serving only ends on an accept error; invocations then time out.
            let _ = serve(listener, app).await;
        });
        Ok(Self {
            address,
            function_name: function_name.to_owned(),
            queue,
            shared,
            server,
        })
    }

    /// Where it listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The value of `AWS_LAMBDA_RUNTIME_API`: `127.0.0.1:{port}`.
    pub fn runtime_api(&self) -> String {
        self.address.to_string()
    }

    /// The function's name.
    pub fn function_name(&self) -> &str {
        &self.function_name
    }

    /// The function's ARN, as `Lambda-Runtime-Invoked-Function-Arn` carries it.
    pub fn function_arn(&self) -> &str {
        &self.shared.function_arn
    }

    /// When the first `GET /next` arrived: the end of the function's init phase.
    pub fn first_next_at(&self) -> Option<Instant> {
        *self.shared.first_next.borrow()
    }

    /// The body of the function's `POST /init/error`, if it sent one.
    pub fn init_error(&self) -> Option<Value> {
        self.shared.init_error.borrow().clone()
    }

    /// Invokes the function with `event` and waits up to `timeout` (also its deadline) for
    /// the result. The error is the body the function posted to `/error` or `/init/error`, or
    /// `{"errorType": "Sandbox.Timedout", ...}` when it did not answer in time.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Result<Value, Value> {
        let mut init_error = self.shared.init_error.subscribe();
        if let Some(error) = init_error.borrow_and_update().clone() {
            return Err(error);
        }
        let (reply, answer) = oneshot::channel();
        let deadline = SystemTime::now() + timeout;
        // The receiver lives as long as `self`, so this cannot fail; were the invocation
        // dropped anyway, `answer` says so below.
        let _ = self.queue.send(Invocation {
            request_id: Uuid::new_v4().to_string(),
            event,
            deadline_ms: deadline.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis(),
            trace_id: trace_id(),
            reply,
        });
        let failed_init = async {
            let error = init_error
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|error| error.clone());
            match error {
                Some(error) => error,
                // The sender lives in `self.shared`: never closed while we wait.
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            answer = answer => answer.unwrap_or_else(|_| Err(error_body("Emulator.Dropped", "the invocation was dropped"))),
            error = failed_init => Err(error),
            () = tokio::time::sleep(timeout) => Err(error_body(
                "Sandbox.Timedout",
                &format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
            )),
        }
    }
}

impl Drop for LambdaEmulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    shared.first_next.send_if_modified(|first| {
        let is_first = first.is_none();
        if is_first {
            *first = Some(Instant::now());
        }
        is_first
    });
    let mut queued = shared.queued.lock().await;
    while let Some(invocation) = queued.recv().await {
        // Its caller already gave up (timed out before the function asked for it).
        if invocation.reply.is_closed() {
            continue;
        }
        let Invocation {
            request_id,
            event,
            deadline_ms,
            trace_id,
            reply,
        } = invocation;
        shared
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(request_id.clone(), reply);
        let headers = [
            (header::CONTENT_TYPE.as_str(), "application/json".to_owned()),
            ("lambda-runtime-aws-request-id", request_id),
            ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
            ("lambda-runtime-invoked-function-arn", shared.function_arn.clone()),
            ("lambda-runtime-trace-id", trace_id),
        ];
        return (StatusCode::OK, headers, event.to_string()).into_response();
    }
    runtime_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "ServiceException",
        "the emulator stopped",
    )
}

async fn respond(State(shared): State<Arc<Shared>>, UrlPath(id): UrlPath<String>, body: Bytes) -> Response {
    let result = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    finish(&shared, &id, Ok(result))
}

async fn fail(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    finish(&shared, &id, Err(diagnostic(&headers, &body)))
}

async fn init_error(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    shared.init_error.send_replace(Some(diagnostic(&headers, &body)));
    accepted()
}

async fn not_found() -> Response {
    runtime_error(StatusCode::NOT_FOUND, "NotFound", "not a Runtime API path")
}

/// Hands `outcome` to whoever invoked `id`.
fn finish(shared: &Shared, id: &str, outcome: Outcome) -> Response {
    let reply = shared
        .in_flight
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(id);
    match reply {
        None => runtime_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequestID",
            &format!("no invocation {id} is in flight"),
        ),
        Some(reply) => match reply.send(outcome) {
            Ok(()) => accepted(),
            Err(_) => runtime_error(StatusCode::GONE, "InvocationGone", "the caller stopped waiting"),
        },
    }
}

/// An error body as the function sent it: its JSON, or the text under the error-type header.
fn diagnostic(headers: &HeaderMap, body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| {
        let error_type = headers
            .get("lambda-runtime-function-error-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("Unhandled");
        error_body(error_type, &String::from_utf8_lossy(body))
    })
}

fn error_body(error_type: &str, message: &str) -> Value {
    json!({ "errorType": error_type, "errorMessage": message })
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, Json(json!({ "status": "OK" }))).into_response()
}

fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (status, Json(error_body(error_type, message))).into_response()
}

/// An X-Ray trace header: `Root=1-{epoch hex}-{24 hex};Parent={16 hex};Sampled=0`.
fn trace_id() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let root = Uuid::new_v4().simple().to_string();
    let parent = Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{seconds:08x}-{};Parent={};Sampled=0",
        &root[..24],
        &parent[..16]
    )
}

/// The bootstrap to run: `$WEBHOOKS_TEST_BIN_DIR/{name}` when that variable is set (e.g.
/// `target/release`, relative to the repository root, to measure release builds), otherwise
/// `cargo_built`, the binary cargo built for the test (`env!("CARGO_BIN_EXE_{name}")`).
pub fn bootstrap_binary(name: &str, cargo_built: &str) -> PathBuf {
    match std::env::var_os("WEBHOOKS_TEST_BIN_DIR") {
        Some(dir) => repo_root().join(dir).join(name),
        None => PathBuf::from(cargo_built),
    }
}

/// A function's bootstrap process, started as Lambda starts it; killed when dropped.
pub struct FunctionProcess {
    child: Child,
    binary: PathBuf,
    function_name: String,
    spawned_at: Instant,
    log: NamedTempFile,
}

impl FunctionProcess {
    /// Starts `binary` for `emulator`'s function with a clean environment: Lambda's reserved
    /// variables (`AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME`,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` = [`DEFAULT_MEMORY_SIZE_MB`],
    /// `AWS_LAMBDA_FUNCTION_VERSION` = `$LATEST`, the log group and stream, `AWS_REGION`),
    /// `RUST_LOG` and `RUST_BACKTRACE` passed through, then `env` (which may override any of
    /// them). Its stdout and stderr go to a log file, see [`FunctionProcess::log`].
    pub fn spawn(binary: &Path, emulator: &LambdaEmulator, env: &[(String, String)]) -> io::Result<Self> {
        let log = NamedTempFile::new()?;
        let append = || OpenOptions::new().append(true).open(log.path());
        let name = emulator.function_name();
        let reserved = [
            ("AWS_LAMBDA_RUNTIME_API", emulator.runtime_api()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", DEFAULT_MEMORY_SIZE_MB.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("[$LATEST]{}", Uuid::new_v4().simple()),
            ),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("TZ", ":UTC".to_owned()),
        ];
        let passed_through = ["RUST_LOG", "RUST_BACKTRACE"]
            .into_iter()
            .filter_map(|key| std::env::var(key).ok().map(|value| (key, value)));
        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(reserved)
            .envs(passed_through)
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(append()?)
            .stderr(append()?);
        let spawned_at = Instant::now();
        let child = command.spawn()?;
        Ok(Self {
            child,
            binary: binary.to_owned(),
            function_name: name.to_owned(),
            spawned_at,
            log,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the function's first `GET /next` (its init phase is over) and returns
    /// the init time, spawn to that call. Fails with the log when the process exits first or
    /// `timeout` passes. `emulator` must be the one it was spawned for, and serve no other.
    pub async fn wait_until_polling(
        &mut self,
        emulator: &LambdaEmulator,
        timeout: Duration,
    ) -> Result<Duration, NotPolling> {
        let mut first_next = emulator.shared.first_next.subscribe();
        loop {
            if let Some(at) = *first_next.borrow_and_update() {
                return Ok(at.saturating_duration_since(self.spawned_at));
            }
            let reason = match self.child.try_wait() {
                Ok(Some(status)) => Some(format!("exited ({status}) before calling /next")),
                Ok(None) if self.spawned_at.elapsed() >= timeout => {
                    Some(format!("did not call /next within {timeout:?}"))
                }
                Ok(None) => None,
                Err(error) => Some(format!("cannot be waited for: {error}")),
            };
            if let Some(reason) = reason {
                return Err(NotPolling {
                    function: self.function_name.clone(),
                    reason,
                    log: self.log(),
                });
            }
            // Woken by the first /next, or after the interval to look at the process again.
            let _ = tokio::time::timeout(EXIT_POLL_INTERVAL, first_next.changed()).await;
        }
    }

    /// Init time (spawn to the first `/next`) and memory now; call it after the first invoke.
    pub fn measure(&self, emulator: &LambdaEmulator) -> io::Result<BootstrapFigures> {
        let first_next = emulator
            .first_next_at()
            .ok_or_else(|| io::Error::other("the function never called /next"))?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        Ok(BootstrapFigures {
            function: self.function_name.clone(),
            binary: self.binary.clone(),
            init: first_next.saturating_duration_since(self.spawned_at),
            rss_kib: status_kib(&status, "VmRSS")?,
            peak_rss_kib: status_kib(&status, "VmHWM")?,
        })
    }

    /// What the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_else(|error| format!("(cannot read the log: {error})"))
    }

    /// Kills the process (Lambda freezes and eventually kills idle sandboxes the same way)
    /// and returns its log.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `kB` field of `/proc/{pid}/status`, e.g. `VmRSS: 12345 kB` (a tab after the colon).
fn status_kib(status: &str, field: &str) -> io::Result<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no {field} in /proc/<pid>/status")))
}

/// Why a bootstrap never reached its first `/next`.
#[derive(Debug, Clone)]
pub struct NotPolling {
    /// The function.
    pub function: String,
    /// What happened instead.
    pub reason: String,
    /// Its stdout and stderr.
    pub log: String,
}

impl fmt::Display for NotPolling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}; its log:\n{}", self.function, self.reason, self.log)
    }
}

impl std::error::Error for NotPolling {}

/// What one bootstrap cost: its init time and its memory after the first invoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapFigures {
    /// The function.
    pub function: String,
    /// The binary that ran.
    pub binary: PathBuf,
    /// Process spawn to its first `GET /next`.
    pub init: Duration,
    /// Resident set size when measured (`VmRSS`), in KiB.
    pub rss_kib: u64,
    /// The largest resident set size so far (`VmHWM`), in KiB.
    pub peak_rss_kib: u64,
}

impl fmt::Display for BootstrapFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: init {:.1} ms (spawn to first /next), RSS {:.1} MiB (peak {:.1} MiB) after the first invoke; {}",
            self.function,
            self.init.as_secs_f64() * 1000.0,
            self.rss_kib as f64 / 1024.0,
            self.peak_rss_kib as f64 / 1024.0,
            self.binary.display()
        )
    }
}

/// The platform's table and queues on a moto server of their own, made as template.yaml
/// makes them; moto stops when this drops.
pub struct MotoDeployment {
    /// The table, through the platform's own adapter.
    pub store: DynamoStore,
    /// An SQS client on moto.
    pub sqs: aws_sdk_sqs::Client,
    /// Both queues and their DLQs.
    pub queues: QueueUrls,
    table: String,
    moto: MotoServer,
}

impl MotoDeployment {
    /// Starts moto, creates the table and the queues (DLQ after 5 receives) and connects.
    pub async fn start() -> Self {
        let moto = MotoServer::start();
        let config = sdk_config_for_endpoint(moto.endpoint());
        let names = ResourceNames::with_prefix("lambda");
        let queues = create_resources(&config, &names, 5)
            .await
            .expect("create the table and queues on moto");
        let store = DynamoStore::connect(
            aws_sdk_dynamodb::Client::new(&config),
            names.table.clone(),
            Duration::from_secs(30 * 24 * 3600),
        )
        .await
        .expect("connect to the table on moto");
        Self {
            store,
            sqs: aws_sdk_sqs::Client::new(&config),
            queues,
            table: names.table,
            moto,
        }
    }

    /// The moto endpoint.
    pub fn endpoint(&self) -> &str {
        self.moto.endpoint()
    }

    /// The environment a function needs for this deployment: dummy credentials,
    /// `AWS_ENDPOINT_URL` pointed at moto, and the `WEBHOOKS_*` table and queue settings.
    pub fn function_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("WEBHOOKS_TABLE_NAME", &self.table),
            ("WEBHOOKS_EVENTS_QUEUE_URL", &self.queues.events),
            ("WEBHOOKS_EVENTS_DLQ_URL", &self.queues.events_dlq),
            ("WEBHOOKS_DELIVERIES_QUEUE_URL", &self.queues.deliveries),
            ("WEBHOOKS_DELIVERIES_DLQ_URL", &self.queues.deliveries_dlq),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
    }

    /// Receives what is visible on `queue_url` (up to 10 messages, waiting up to `wait` for
    /// the first) and returns the event an SQS event source mapping would invoke with: each
    /// record with moto's message id, receipt handle, MD5 and system attributes
    /// (`ApproximateReceiveCount`, `SentTimestamp`, ...), `messageAttributes` empty (the
    /// platform sets none), `eventSource` `aws:sqs` and the queue's ARN.
    pub async fn receive_sqs_event(&self, queue_url: &str, wait: Duration) -> Result<Value, aws_sdk_sqs::Error> {
        let queue_arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes
            .and_then(|attributes| attributes.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap_or_default();
        let messages = self
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(i32::try_from(wait.as_secs().min(20)).unwrap_or(20))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await?
            .messages
            .unwrap_or_default();
        let records: Vec<Value> = messages
            .into_iter()
            .map(|message| {
                let attributes: Map<String, Value> = message
                    .attributes
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, value)| (name.as_str().to_owned(), Value::String(value)))
                    .collect();
                json!({
                    "messageId": message.message_id,
                    "receiptHandle": message.receipt_handle,
                    "body": message.body,
                    "attributes": attributes,
                    "messageAttributes": {},
                    "md5OfBody": message.md5_of_body,
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue_arn,
                    "awsRegion": REGION,
                })
            })
            .collect();
        Ok(json!({ "Records": records }))
    }
}

/// The event an API Gateway HTTP API (payload format 2.0, `$default` route and stage) sends
/// for `method target` (`target` is the path and query, e.g. `/v1/subscriptions?limit=5`)
/// with the client's headers and a text body: header names lowercase and repeated ones
/// joined with commas, `host`, `content-length` and the `x-forwarded-*` headers set as API
/// Gateway sets them, `queryStringParameters` decoded, `isBase64Encoded` false.
pub fn api_gateway_v2_event(method: &str, target: &str, headers: &[(&str, &str)], body: Option<&str>) -> Value {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let domain = format!("{API_ID}.execute-api.{REGION}.amazonaws.com");
    let mut gateway = vec![
        ("host", domain.clone()),
        ("x-forwarded-for", SOURCE_IP.to_owned()),
        ("x-forwarded-port", "443".to_owned()),
        ("x-forwarded-proto", "https".to_owned()),
    ];
    if let Some(body) = body {
        gateway.push(("content-length", body.len().to_string()));
    }
    let mut all = Map::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        if !gateway.iter().any(|(set, _)| *set == name) {
            join_into(&mut all, name, value);
        }
    }
    for (name, value) in gateway {
        all.insert(name.to_owned(), value.into());
    }
    let user_agent = all.get("user-agent").cloned().unwrap_or_else(|| "".into());
    let now = OffsetDateTime::now_utc();
    let time = now
        .format(format_description!(
            "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
        ))
        .unwrap_or_default();
    let request_id = &Uuid::new_v4().simple().to_string()[..16];
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": all,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": domain,
            "domainPrefix": API_ID,
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": SOURCE_IP,
                "userAgent": user_agent,
            },
            "requestId": format!("{request_id}="),
            "routeKey": "$default",
            "stage": "$default",
            "time": time,
            "timeEpoch": now.unix_timestamp_nanos() / 1_000_000,
        },
        "isBase64Encoded": false,
    });
    if !query.is_empty() {
        let mut parameters = Map::new();
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            join_into(&mut parameters, name.into_owned(), &value);
        }
        event["queryStringParameters"] = Value::Object(parameters);
    }
    if let Some(body) = body {
        event["body"] = body.into();
    }
    event
}

/// Adds `value` under `name`, after a comma when `name` is already there (API Gateway v2).
fn join_into(map: &mut Map<String, Value>, name: String, value: &str) {
    match map.get_mut(&name) {
        Some(Value::String(existing)) => {
            existing.push(',');
            existing.push_str(value);
        }
        _ => {
            map.insert(name, value.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One HTTP/1.1 exchange on a fresh connection: the status and the whole answer.
    async fn http(emulator: &LambdaEmulator, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(emulator.address()).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            emulator.address(),
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let status = answer[9..12].parse().unwrap();
        (status, answer)
    }

    fn header<'a>(answer: &'a str, name: &str) -> &'a str {
        answer
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
            .unwrap_or_else(|| panic!("no {name} in {answer}"))
    }

    #[tokio::test]
    async fn invocations_are_handed_out_on_next_and_answered_once() {
        let emulator = Arc::new(LambdaEmulator::start("unit").await.unwrap());
        let invoker = emulator.clone();
        let invocation = tokio::spawn(async move {
            invoker
                .invoke(json!({ "hello": "world" }), Duration::from_secs(30))
                .await
        });
        let (status, next) = http(&emulator, "GET", "/2018-06-01/runtime/invocation/next", "").await;
        assert_eq!(status, 200, "{next}");
        assert!(emulator.first_next_at().is_some());
        assert!(next.ends_with(r#"{"hello":"world"}"#), "{next}");
        assert_eq!(
            header(&next, "lambda-runtime-invoked-function-arn"),
            "arn:aws:lambda:us-east-1:123456789012:function:unit"
        );
        assert!(header(&next, "lambda-runtime-trace-id").starts_with("Root=1-"));
        let deadline: u128 = header(&next, "lambda-runtime-deadline-ms").parse().unwrap();
        assert!(deadline > SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis());
        let id = header(&next, "lambda-runtime-aws-request-id").to_owned();

        let response = format!("/2018-06-01/runtime/invocation/{id}/response");
        let (status, _) = http(&emulator, "POST", &response, r#"{"answer":42}"#).await;
        assert_eq!(status, 202);
        assert_eq!(invocation.await.unwrap(), Ok(json!({ "answer": 42 })));
        let (status, again) = http(&emulator, "POST", &response, "{}").await;
        assert_eq!(status, 400, "{again}");

        let invoker = emulator.clone();
        let invocation = tokio::spawn(async move { invoker.invoke(json!({}), Duration::from_secs(30)).await });
        let (_, next) = http(&emulator, "GET", "/2018-06-01/runtime/invocation/next", "").await;
        let id = header(&next, "lambda-runtime-aws-request-id");
        let error = r#"{"errorType":"Boom","errorMessage":"it broke"}"#;
        let (status, _) = http(
            &emulator,
            "POST",
            &format!("/2018-06-01/runtime/invocation/{id}/error"),
            error,
        )
        .await;
        assert_eq!(status, 202);
        assert_eq!(
            invocation.await.unwrap(),
            Err(json!({ "errorType": "Boom", "errorMessage": "it broke" }))
        );
        let (status, _) = http(&emulator, "GET", "/2018-06-01/runtime/nothing", "").await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn late_answers_are_gone_and_unanswered_invocations_time_out() {
        let emulator = Arc::new(LambdaEmulator::start("unit").await.unwrap());
        let invoker = emulator.clone();
        let invocation = tokio::spawn(async move { invoker.invoke(json!({}), Duration::from_secs(1)).await });
        let (_, next) = http(&emulator, "GET", "/2018-06-01/runtime/invocation/next", "").await;
        let id = header(&next, "lambda-runtime-aws-request-id");
        let error = invocation.await.unwrap().unwrap_err();
        assert_eq!(error["errorType"], "Sandbox.Timedout", "{error}");
        let response = format!("/2018-06-01/runtime/invocation/{id}/response");
        let (status, late) = http(&emulator, "POST", &response, "{}").await;
        assert_eq!(status, 410, "{late}");
    }

    #[tokio::test]
    async fn an_init_error_fails_waiting_and_later_invocations() {
        let emulator = Arc::new(LambdaEmulator::start("unit").await.unwrap());
        let invoker = emulator.clone();
        let waiting = tokio::spawn(async move { invoker.invoke(json!({}), Duration::from_secs(30)).await });
        let error = r#"{"errorType":"Runtime.InitError","errorMessage":"no table"}"#;
        let (status, _) = http(&emulator, "POST", "/2018-06-01/runtime/init/error", error).await;
        assert_eq!(status, 202);
        let expected = json!({ "errorType": "Runtime.InitError", "errorMessage": "no table" });
        assert_eq!(waiting.await.unwrap(), Err(expected.clone()));
        assert_eq!(
            emulator.invoke(json!({}), Duration::from_secs(30)).await,
            Err(expected.clone())
        );
        assert_eq!(emulator.init_error(), Some(expected));
    }

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\tingest\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(status, "VmRSS").unwrap(), 10240);
        assert_eq!(status_kib(status, "VmHWM").unwrap(), 20480);
        assert!(status_kib(status, "VmSwap").is_err());
    }

    #[test]
    fn http_api_events_carry_what_api_gateway_adds() {
        let event = api_gateway_v2_event(
            "GET",
            "/v1/subscriptions?limit=5&tag=a%20b&tag=c",
            &[
                ("Authorization", "Bearer whk_x"),
                ("X-Forwarded-Proto", "http"),
                ("Accept", "application/json"),
                ("accept", "text/plain"),
            ],
            None,
        );
        assert_eq!(event["rawPath"], "/v1/subscriptions");
        assert_eq!(event["rawQueryString"], "limit=5&tag=a%20b&tag=c");
        assert_eq!(event["queryStringParameters"], json!({"limit": "5", "tag": "a b,c"}));
        assert_eq!(event["headers"]["authorization"], "Bearer whk_x");
        assert_eq!(event["headers"]["x-forwarded-proto"], "https");
        assert_eq!(event["headers"]["accept"], "application/json,text/plain");
        assert_eq!(event["requestContext"]["http"]["method"], "GET");
        assert!(event.get("body").is_none());
        let posted = api_gateway_v2_event("POST", "/v1/subscriptions", &[], Some("{}"));
        assert_eq!(posted["headers"]["content-length"], "2");
        assert_eq!(posted["body"], "{}");
        assert!(posted.get("queryStringParameters").is_none());
    }
}
