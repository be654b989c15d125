//! The harness: the merchant API over an embedded store in a temporary directory, two
//! merchants, and requests sent either straight to the router (from a peer address, as the
//! local server passes it) or through `lambda_http` as API Gateway HTTP API (payload v2)
//! events (from their `sourceIp`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent};
use serde_json::{Value, json};
use tempfile::TempDir;
use time::OffsetDateTime;
use tower::ServiceExt;
use webhooks_api::{Api, RateLimit, router};
use webhooks_auth_callback::AuthCallback;
use webhooks_domain::{Clock, DeliveryTask, IsoTime, Merchant, NewApiKey, UrlPolicy};
use webhooks_storage::embedded::{EmbeddedQueue, EmbeddedStore, QueueSettings};
use webhooks_storage::{MerchantStore, QueueReceiver};

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
/// No limit worth the name, for tests that are not about it.
pub const UNLIMITED: RateLimit = RateLimit {
    requests: u64::MAX,
    window_secs: 1,
};
/// The address requests come from unless a test says otherwise.
pub const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 7));

/// How requests reach the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `Router::oneshot` with an HTTP request, as the local stack serves it.
    Router,
    /// An API Gateway HTTP API v2 event through `lambda_http`'s adapter, as in Lambda.
    Lambda,
}

/// A clock the tests can move; it starts at the real time.
pub struct TestClock(Mutex<OffsetDateTime>);

impl TestClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: time::Duration) {
        *self.0.lock().expect("clock lock") += by;
    }

    /// Now, as the API writes it.
    pub fn iso_now(&self) -> IsoTime {
        IsoTime::new(self.now()).expect("a sane clock")
    }
}

impl Clock for TestClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().expect("clock lock")
    }
}

/// An answer: status, headers and the JSON body (`Null` when empty).
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as JSON.
    pub body: Value,
}

impl Reply {
    /// The `error.code` of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    /// Asserts the status and, for errors, the JSON error shape; returns the body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        if status >= 400 {
            assert!(!self.code().is_empty(), "error without a code: {}", self.body);
            assert!(self.body["error"]["message"].is_string(), "{}", self.body);
            assert_eq!(self.headers["content-type"], "application/json");
        }
        &self.body
    }
}

/// The API under test.
pub struct TestApi {
    /// Its store.
    pub store: EmbeddedStore,
    /// The deliveries queue it sends test events and retries to.
    pub deliveries: EmbeddedQueue,
    /// Its clock.
    pub clock: Arc<TestClock>,
    /// Merchant A's id and API key.
    pub a: (String, String),
    /// Merchant B's id and API key.
    pub b: (String, String),
    router: Router,
    transport: Transport,
    policy: UrlPolicy,
    dir: TempDir,
}

impl TestApi {
    /// The API with the local stack's URL policy and no rate limit.
    pub async fn start(transport: Transport) -> Self {
        Self::start_with(transport, LOOPBACK, UNLIMITED).await
    }

    /// The API with this URL policy and per-merchant rate limit (and no limit of bad keys).
    pub async fn start_with(transport: Transport, policy: UrlPolicy, limit: RateLimit) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = EmbeddedStore::open(&dir.path().join("store.sqlite3")).expect("open the store");
        let deliveries = store.queue("deliveries", QueueSettings::default());
        let clock = Arc::new(TestClock(Mutex::new(OffsetDateTime::now_utc())));
        let a = add_merchant(&store, "A").await;
        let b = add_merchant(&store, "B").await;
        let mut api = Self {
            router: Router::new(),
            store,
            deliveries,
            clock,
            a,
            b,
            transport,
            policy,
            dir,
        };
        api.router = api.instance(limit, UNLIMITED);
        api
    }

    /// Another instance of the API over the same store, queue and clock, with these limits
    /// (per merchant, and of bad-key requests per source): what another Lambda container serves.
    pub fn instance(&self, per_merchant: RateLimit, bad_key_per_source: RateLimit) -> Router {
        let clock = self.clock.clone();
        let auth = AuthCallback::new(
            self.store.clone(),
            self.policy,
            std::time::Duration::from_secs(3),
            clock.clone(),
        )
        .expect("auth callback");
        let api = Api::new(self.store.clone(), self.deliveries.clone(), self.policy, auth, clock)
            .with_rate_limit(per_merchant)
            .with_bad_key_limit(bad_key_per_source);
        router(Arc::new(api))
    }

    /// The router itself, for requests built by hand.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The store's SQLite file.
    pub fn store_path(&self) -> PathBuf {
        self.dir.path().join("store.sqlite3")
    }

    /// Merchant A's API key.
    pub fn key_a(&self) -> &str {
        &self.a.1
    }

    /// Merchant B's API key.
    pub fn key_b(&self) -> &str {
        &self.b.1
    }

    /// Sends `method uri` with the API key `key` and a JSON body.
    pub async fn call(&self, key: &str, method: &str, uri: &str, body: Option<Value>) -> Reply {
        let auth = format!("Bearer {key}");
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
        self.raw(method, uri, &headers, body.map(|b| b.to_string().into_bytes()))
            .await
    }

    /// Sends a request exactly as given.
    pub async fn raw(&self, method: &str, uri: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Reply {
        self.send_to(&self.router, CLIENT, method, uri, headers, body).await
    }

    /// Sends a request exactly as given, from `source`, to `router` (this API's, or
    /// another [`TestApi::instance`]).
    pub async fn send_to(
        &self,
        router: &Router,
        source: IpAddr,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let request = Sent {
            router,
            source,
            method,
            uri,
            headers,
            body,
        };
        match self.transport {
            Transport::Router => request.via_router().await,
            Transport::Lambda => request.via_lambda().await,
        }
    }

    /// Creates a subscription for the merchant with `key`; returns the 201 body.
    pub async fn subscribe(&self, key: &str, body: Value) -> Value {
        self.call(key, "POST", "/v1/subscriptions", Some(body))
            .await
            .expect(201)
            .clone()
    }

    /// Creates a subscription (201) and returns its id.
    pub async fn subscription_id(&self, key: &str, body: Value) -> String {
        let created = self.subscribe(key, body).await;
        created["id"].as_str().expect("a subscription id").to_owned()
    }

    /// Takes every task waiting on the deliveries queue.
    pub async fn queued_tasks(&self) -> Vec<DeliveryTask> {
        let messages = self
            .deliveries
            .receive(10, std::time::Duration::from_secs(60), std::time::Duration::ZERO)
            .await
            .expect("receive");
        let mut tasks = Vec::new();
        for message in messages {
            tasks.push(serde_json::from_str(&message.body).expect("a delivery task"));
            self.deliveries.delete(&message.receipt_handle).await.expect("delete");
        }
        tasks
    }
}

/// A request on its way to a router.
struct Sent<'a> {
    router: &'a Router,
    source: IpAddr,
    method: &'a str,
    uri: &'a str,
    headers: &'a [(&'a str, &'a str)],
    body: Option<Vec<u8>>,
}

impl Sent<'_> {
    /// Sends the request straight to the router, from `source` as the local server's
    /// `ConnectInfo` gives it.
    async fn via_router(self) -> Reply {
        let mut request = Request::builder().method(self.method).uri(self.uri);
        for (name, value) in self.headers {
            request = request.header(*name, *value);
        }
        let mut request = request
            .body(Body::from(self.body.unwrap_or_default()))
            .expect("a request");
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(self.source, 50_000)));
        let response = self.router.clone().oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let bytes = to_bytes(body, usize::MAX).await.expect("the body");
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: json_or_null(&bytes),
        }
    }

    /// Builds the API Gateway v2 event a client's request becomes (body base64-encoded, as
    /// API Gateway does for payloads it does not take for text), runs it through the
    /// adapter `lambda_http::run` uses, and reads the Lambda response back.
    async fn via_lambda(self) -> Reply {
        let Self {
            router,
            source,
            method,
            uri,
            headers,
            body,
        } = self;
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        let mut header_map = serde_json::Map::new();
        header_map.insert("host".into(), "abc123.execute-api.eu-west-1.amazonaws.com".into());
        header_map.insert("x-forwarded-proto".into(), "https".into());
        for (name, value) in headers {
            header_map.insert(name.to_ascii_lowercase(), (*value).into());
        }
        let mut event = json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "headers": header_map,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "abc123",
                "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
                "domainPrefix": "abc123",
                "http": {
                    "method": method,
                    "path": path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": source.to_string(),
                    "userAgent": "merchant-sdk/1.0"
                },
                "requestId": "JKJaXmPLvHcESHA=",
                "routeKey": "$default",
                "stage": "$default",
                "time": "27/Nov/2026:05:00:00 +0000",
                "timeEpoch": 1_795_755_600_000_u64
            },
            "isBase64Encoded": body.is_some()
        });
        if let Some(body) = body {
            event["body"] = B64.encode(body).into();
        }
        let request: LambdaRequest = serde_json::from_value(event).expect("an API Gateway v2 event");
        let response = Adapter::from(router.clone())
            .oneshot(LambdaEvent::new(request, Context::default()))
            .await
            .expect("the adapter answers");
        let response = serde_json::to_value(response).expect("the Lambda response serializes");
        let mut headers = HeaderMap::new();
        for (name, value) in response["headers"].as_object().into_iter().flatten() {
            headers.insert(
                HeaderName::try_from(name.as_str()).expect("a header name"),
                HeaderValue::from_str(value.as_str().unwrap_or_default()).expect("a header value"),
            );
        }
        let text = response["body"].as_str().unwrap_or_default();
        let bytes = match response["isBase64Encoded"].as_bool() {
            Some(true) => B64.decode(text).expect("base64 body"),
            _ => text.as_bytes().to_vec(),
        };
        let status = response["statusCode"].as_u64().expect("statusCode");
        Reply {
            status: StatusCode::from_u16(u16::try_from(status).expect("a status")).expect("a status"),
            headers,
            body: json_or_null(&bytes),
        }
    }
}

fn json_or_null(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(bytes)))
}

async fn add_merchant(store: &EmbeddedStore, name: &str) -> (String, String) {
    let key = NewApiKey::generate();
    let merchant = Merchant {
        id: Merchant::new_id(),
        name: name.into(),
        created_at: IsoTime::new(OffsetDateTime::now_utc()).expect("now"),
    };
    store
        .create_merchant(&merchant, &key.hash)
        .await
        .expect("create merchant");
    (merchant.id, key.clear_text)
}

/// Runs each named `async fn(Transport)` of the calling module once through the router
/// and once through the Lambda adapter.
macro_rules! both_transports {
    ($($name:ident),* $(,)?) => {
        mod via_router {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::support::Transport::Router).await
                }
            )*
        }
        mod via_lambda {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::support::Transport::Lambda).await
                }
            )*
        }
    };
}
pub(crate) use both_transports;
