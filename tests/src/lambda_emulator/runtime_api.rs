//! The Runtime API server: [`LambdaEmulator`] hands invocations to the function on
//! `GET /next` and takes its answers, as the module's table describes.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, serve};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{ACCOUNT_ID, REGION};

/// Lambda's largest synchronous request and response payload.
const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

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

    /// When the first `GET /next` arrived: the end of the function's init phase.
    pub fn first_next_at(&self) -> Option<Instant> {
        *self.shared.first_next.borrow()
    }

    /// Wakes its holder when the first `GET /next` arrives (see [`LambdaEmulator::first_next_at`]).
    pub(crate) fn watch_first_next(&self) -> watch::Receiver<Option<Instant>> {
        self.shared.first_next.subscribe()
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
}
