//! The auth callback (DESIGN §5): before a user buys, sells or looks at private data, ask
//! the merchant whether that user may, and allow only on a truthy answer.
//!
//! [`AuthCallback::decide`] serves the Lambda and the local stack's `/local/auth-check`;
//! [`AuthCallback::decide_with_config`] serves the merchant API's `/v1/auth-callback/test`.
//! Every failure is a denial whose `reason` says which, in one machine-readable word.

mod oauth;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use reqwest::{Client, Response, Url};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::time::{Instant, timeout_at};
use uuid::Uuid;
use webhooks_domain::{AuthCallbackConfig, AuthMethod, Clock, UrlPolicy, UrlRefusal, Verdict, judge_auth_answer};
use webhooks_signing::standard::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, signature_header};
use webhooks_storage::{AuthCallbackStore, MerchantStore, StoreError};

use crate::oauth::{TokenCache, TokenKey, TokenResponse};

/// The most bytes of a merchant's answer (or token response) we read: 16 KiB.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024;
/// The longest budget a merchant may configure (`timeoutMs`), in milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 30_000;
/// A connection error is retried once only if at least this much budget is left (and no
/// less than the failed attempt took).
const MIN_RETRY_BUDGET: Duration = Duration::from_millis(100);
/// The longest email, action and merchant id we accept, in bytes.
const MAX_FIELD_BYTES: usize = 512;
/// How many hex characters of the email's SHA-256 the logs carry.
const EMAIL_HASH_HEX_CHARS: usize = 12;
/// The most positive decisions kept; beyond it expired ones are dropped, then new ones are not kept.
const MAX_CACHED_DECISIONS: usize = 10_000;
const AGENT: &str = concat!("webhooks-auth-callback/", env!("CARGO_PKG_VERSION"));

/// What platform services ask: may this user of this merchant do this?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthRequest {
    /// The merchant whose callback decides.
    pub merchant_id: String,
    /// The user's email, sent to the merchant as is.
    pub email: String,
    /// What the user wants to do: `buy`, `sell`, `view_private`, ...
    pub action: String,
}

/// The answer: `{allowed, reason, latencyMs, cached}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthDecision {
    /// Whether the user may act.
    pub allowed: bool,
    /// `allowed`, or why not: `no_callback_configured`, `unknown_merchant`, `blocked_url`,
    /// `timeout`, `connect_error`, `http_status_<n>`, `not_truthy`, `token_error`,
    /// `response_too_large`, `request_error`, `store_error` or `bad_request`.
    pub reason: String,
    /// How long the decision took, in milliseconds.
    pub latency_ms: u64,
    /// Whether a positive decision was reused from the merchant's decision cache.
    pub cached: bool,
}

/// Why the function could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthCallbackError {
    /// The HTTP client (TLS, resolver) could not be set up.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
}

/// Why a decision is a denial before or instead of the merchant's own answer.
#[derive(Debug, thiserror::Error)]
enum Denial {
    #[error("malformed request: {0}")]
    BadRequest(String),
    #[error("no such merchant")]
    UnknownMerchant,
    #[error("the merchant has no auth callback")]
    NoCallback,
    #[error("cannot read the configuration: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    BlockedUrl(#[from] UrlRefusal),
    #[error("refused at connect time: {0}")]
    BlockedAddress(String),
    #[error("no answer within the budget")]
    Timeout,
    #[error("cannot reach the merchant: {0}")]
    Connect(String),
    #[error("the answer is longer than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("cannot get an OAuth 2 token: {0}")]
    Token(String),
    #[error("request failed: {0}")]
    Request(String),
}

impl Denial {
    fn reason(&self) -> &'static str {
        match self {
            Denial::BadRequest(_) => "bad_request",
            Denial::UnknownMerchant => "unknown_merchant",
            Denial::NoCallback => "no_callback_configured",
            Denial::Store(_) => "store_error",
            Denial::BlockedUrl(_) | Denial::BlockedAddress(_) => "blocked_url",
            Denial::Timeout => "timeout",
            Denial::Connect(_) => "connect_error",
            Denial::TooLarge => "response_too_large",
            Denial::Token(_) => "token_error",
            Denial::Request(_) => "request_error",
        }
    }
}

/// The merchant's status and, for a 2xx, the first [`MAX_RESPONSE_BYTES`] of its body.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// How one request authenticates, resolved from the configuration (and a token).
enum Credentials<'a> {
    None,
    Bearer(&'a str),
    Basic { username: &'a str, password: &'a str },
    Header { name: &'a str, value: &'a str },
    Hmac { secret: &'a str },
}

/// A cached positive decision: merchant, email, action.
type DecisionKey = (String, String, String);

/// When a positive decision was made, and until when its configuration's TTL kept it.
#[derive(Debug, Clone, Copy)]
struct CachedAllow {
    decided_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

/// The auth-callback function: the store, one HTTP client and the caches, built once and
/// shared by every decision.
pub struct AuthCallback<S> {
    store: S,
    client: Client,
    policy: UrlPolicy,
    default_timeout: Duration,
    clock: Arc<dyn Clock>,
    tokens: TokenCache,
    decisions: Mutex<HashMap<DecisionKey, CachedAllow>>,
}

impl<S: AuthCallbackStore + MerchantStore> AuthCallback<S> {
    /// Builds the function: `policy` guards every URL (at check and at connect time),
    /// `default_timeout` is the budget of a decision whose configuration sets none.
    pub fn new(
        store: S,
        policy: UrlPolicy,
        default_timeout: Duration,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AuthCallbackError> {
        Ok(Self {
            store,
            client: policy.client_builder().build()?,
            policy,
            default_timeout,
            clock,
            tokens: TokenCache::default(),
            decisions: Mutex::default(),
        })
    }

    /// Decides a raw invocation payload; one that is not an [`AuthRequest`] is denied as
    /// `bad_request`.
    pub async fn decide_payload(&self, payload: serde_json::Value) -> AuthDecision {
        match serde_json::from_value::<AuthRequest>(payload) {
            Ok(request) => self.decide(request).await,
            Err(error) => {
                let decision = decision(Err(Denial::BadRequest(error.to_string())), false, Instant::now());
                tracing::warn!(reason = %decision.reason, %error, "auth request refused");
                decision
            }
        }
    }

    /// Decides with the merchant's stored configuration, reusing a cached positive decision
    /// when the configuration enables the cache (`cacheTtlSeconds`).
    pub async fn decide(&self, request: AuthRequest) -> AuthDecision {
        let started = Instant::now();
        let AuthRequest {
            merchant_id,
            email,
            action,
        } = request;
        let (outcome, cached) = match self.decide_stored(&merchant_id, &email, &action, started).await {
            Ok((verdict, cached)) => (Ok(verdict), cached),
            Err(denial) => (Err(denial), false),
        };
        log_decision(&merchant_id, &email, &action, outcome, cached, started)
    }

    /// Decides with `config` instead of the stored one (the merchant API's test endpoint);
    /// the decision cache is neither read nor written.
    pub async fn decide_with_config(
        &self,
        merchant_id: &str,
        config: &AuthCallbackConfig,
        email: &str,
        action: &str,
    ) -> AuthDecision {
        let started = Instant::now();
        let outcome = match validate(merchant_id, email, action) {
            Ok(()) => self.ask_merchant(merchant_id, config, email, action, started).await,
            Err(denial) => Err(denial),
        };
        log_decision(merchant_id, email, action, outcome, false, started)
    }

    async fn decide_stored(
        &self,
        merchant_id: &str,
        email: &str,
        action: &str,
        started: Instant,
    ) -> Result<(Verdict, bool), Denial> {
        validate(merchant_id, email, action)?;
        let config = timeout_at(started + self.default_timeout, self.load_config(merchant_id))
            .await
            .map_err(|_| Denial::Timeout)??;
        let ttl = config
            .cache_ttl_seconds
            .filter(|&secs| secs > 0)
            .map(|secs| time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX)));
        let key = (merchant_id.to_owned(), email.to_owned(), action.to_owned());
        if let Some(ttl) = ttl
            && self.cached_allow(&key, ttl)
        {
            return Ok((Verdict::allow(), true));
        }
        let verdict = self.ask_merchant(merchant_id, &config, email, action, started).await?;
        if let Some(ttl) = ttl
            && verdict.allowed
        {
            self.remember_allow(key, ttl);
        }
        Ok((verdict, false))
    }

    async fn load_config(&self, merchant_id: &str) -> Result<AuthCallbackConfig, Denial> {
        match self.store.get_auth_callback(merchant_id).await? {
            Some(config) => Ok(config),
            None if self.store.get_merchant(merchant_id).await?.is_some() => Err(Denial::NoCallback),
            None => Err(Denial::UnknownMerchant),
        }
    }

    /// Whether `key` was allowed less than `ttl` ago (the TTL of the current configuration:
    /// lowering it takes effect at once).
    fn cached_allow(&self, key: &DecisionKey, ttl: time::Duration) -> bool {
        let now = self.clock.now();
        let decisions = self.decisions.lock().unwrap_or_else(PoisonError::into_inner);
        decisions
            .get(key)
            .is_some_and(|entry| now < entry.expires_at && now < entry.decided_at.saturating_add(ttl))
    }

    fn remember_allow(&self, key: DecisionKey, ttl: time::Duration) {
        let now = self.clock.now();
        let mut decisions = self.decisions.lock().unwrap_or_else(PoisonError::into_inner);
        if decisions.len() >= MAX_CACHED_DECISIONS {
            decisions.retain(|_, entry| now < entry.expires_at);
        }
        if decisions.len() < MAX_CACHED_DECISIONS || decisions.contains_key(&key) {
            let expires_at = now.saturating_add(ttl);
            decisions.insert(
                key,
                CachedAllow {
                    decided_at: now,
                    expires_at,
                },
            );
        }
    }

    /// Asks the merchant within the configured budget, counted from `started`.
    async fn ask_merchant(
        &self,
        merchant_id: &str,
        config: &AuthCallbackConfig,
        email: &str,
        action: &str,
        started: Instant,
    ) -> Result<Verdict, Denial> {
        let budget = config
            .timeout_ms
            .map_or(self.default_timeout, |ms| Duration::from_millis(ms.min(MAX_TIMEOUT_MS)));
        let deadline = started + budget;
        timeout_at(deadline, self.call(merchant_id, config, email, action, deadline))
            .await
            .unwrap_or(Err(Denial::Timeout))
    }

    async fn call(
        &self,
        merchant_id: &str,
        config: &AuthCallbackConfig,
        email: &str,
        action: &str,
        deadline: Instant,
    ) -> Result<Verdict, Denial> {
        let url = self.policy.check(&config.url)?;
        let body = serde_json::json!({ "email": email, "action": action }).to_string();
        let credentials = match &config.auth {
            AuthMethod::None => Credentials::None,
            AuthMethod::Bearer { token } => Credentials::Bearer(token),
            AuthMethod::Basic { username, password } => Credentials::Basic { username, password },
            AuthMethod::ApiKey { header, value } => Credentials::Header { name: header, value },
            AuthMethod::Hmac { secret } => Credentials::Hmac { secret },
            AuthMethod::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                let key = TokenKey {
                    merchant_id: merchant_id.to_owned(),
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                };
                let mut form = vec![
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", client_secret.as_str()),
                ];
                form.extend(scope.as_deref().map(|scope| ("scope", scope)));
                return self.call_with_token(&url, &body, deadline, key, &form).await;
            }
        };
        let answer = self.post_with_retry(&url, &credentials, &body, deadline).await?;
        Ok(judge_auth_answer(answer.status, &answer.body))
    }

    /// Calls with a bearer token from the cache or the token endpoint; a cached token the
    /// merchant refuses (401) is replaced by a fresh one once.
    async fn call_with_token(
        &self,
        url: &Url,
        body: &str,
        deadline: Instant,
        key: TokenKey,
        form: &[(&str, &str)],
    ) -> Result<Verdict, Denial> {
        let cached = self.tokens.get(&key, self.clock.now());
        let token = match &cached {
            Some(token) => token.clone(),
            None => self.fetch_token(&key, form).await?,
        };
        let mut answer = self
            .post_with_retry(url, &Credentials::Bearer(&token), body, deadline)
            .await?;
        if answer.status == 401 && cached.is_some() {
            tracing::debug!(
                merchant_id = key.merchant_id,
                "cached OAuth 2 token refused, fetching a fresh one"
            );
            self.tokens.forget(&key, &token);
            let token = self.fetch_token(&key, form).await?;
            answer = self
                .post_with_retry(url, &Credentials::Bearer(&token), body, deadline)
                .await?;
        }
        Ok(judge_auth_answer(answer.status, &answer.body))
    }

    /// Fetches a client-credentials token (client authentication in the form body) and
    /// caches it.
    async fn fetch_token(&self, key: &TokenKey, form: &[(&str, &str)]) -> Result<String, Denial> {
        let token_url = self.policy.check(&key.token_url)?;
        let mut response = self
            .client
            .post(token_url)
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, AGENT)
            .form(form)
            .send()
            .await
            .map_err(|error| match transport(&error) {
                blocked @ Denial::BlockedAddress(_) => blocked,
                other => Denial::Token(other.to_string()),
            })?;
        if !response.status().is_success() {
            return Err(Denial::Token(format!(
                "the token endpoint answered {}",
                response.status()
            )));
        }
        let body = read_capped(&mut response)
            .await
            .map_err(|denial| Denial::Token(denial.to_string()))?;
        let (access_token, usable_for) = serde_json::from_slice::<TokenResponse>(&body)
            .map_err(|_| "the token endpoint did not answer a JSON object with an access_token")
            .and_then(TokenResponse::into_bearer)
            .map_err(|message| Denial::Token(message.into()))?;
        self.tokens
            .put(key.clone(), access_token.clone(), usable_for, self.clock.now());
        Ok(access_token)
    }

    /// Posts, and once more after a connection error if the budget still allows.
    async fn post_with_retry(
        &self,
        url: &Url,
        credentials: &Credentials<'_>,
        body: &str,
        deadline: Instant,
    ) -> Result<Answer, Denial> {
        let attempt_started = Instant::now();
        match self.post(url, credentials, body).await {
            Err(Denial::Connect(error))
                if deadline.saturating_duration_since(Instant::now())
                    >= attempt_started.elapsed().max(MIN_RETRY_BUDGET) =>
            {
                tracing::debug!(%error, "connection error, retrying once");
                self.post(url, credentials, body).await
            }
            outcome => outcome,
        }
    }

    async fn post(&self, url: &Url, credentials: &Credentials<'_>, body: &str) -> Result<Answer, Denial> {
        let request = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, AGENT);
        let request = match *credentials {
            Credentials::None => request,
            Credentials::Bearer(token) => request.bearer_auth(token),
            Credentials::Basic { username, password } => request.basic_auth(username, Some(password)),
            Credentials::Header { name, value } => {
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| Denial::Request("the api_key header name is not a valid header name".into()))?;
                let mut value = HeaderValue::from_str(value)
                    .map_err(|_| Denial::Request("the api_key value is not a valid header value".into()))?;
                value.set_sensitive(true);
                request.header(name, value)
            }
            Credentials::Hmac { secret } => {
                let id = format!("msg_{}", Uuid::new_v4().simple());
                let timestamp = self.clock.now().unix_timestamp();
                let signature = signature_header(&[secret.as_bytes()], &id, timestamp, body.as_bytes());
                request
                    .header(HEADER_ID, id)
                    .header(HEADER_TIMESTAMP, timestamp)
                    .header(HEADER_SIGNATURE, signature)
            }
        };
        let mut response = request.body(body.to_owned()).send().await.map_err(|e| transport(&e))?;
        let status = response.status();
        // The status alone decides a non-2xx answer: its body is not read.
        let body = if status.is_success() {
            read_capped(&mut response).await?
        } else {
            Vec::new()
        };
        Ok(Answer {
            status: status.as_u16(),
            body,
        })
    }
}

/// Reads the body a chunk at a time, refusing it once it exceeds [`MAX_RESPONSE_BYTES`].
async fn read_capped(response: &mut Response) -> Result<Vec<u8>, Denial> {
    if response
        .content_length()
        .is_some_and(|len| len > MAX_RESPONSE_BYTES as u64)
    {
        return Err(Denial::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(Denial::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A failed exchange: a name the guarded resolver refused is a blocked URL; a connection
/// that could not be made, was reset, or was closed before the answer (a server that hung
/// up) is a connection error; anything else (an answer that is not HTTP, ...) a request error.
fn transport(error: &reqwest::Error) -> Denial {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, PermissionDenied, UnexpectedEof};
    let mut blocked = false;
    let mut connection_lost = error.is_connect();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            blocked |= error.is_connect() && io.kind() == PermissionDenied;
            connection_lost |= matches!(
                io.kind(),
                BrokenPipe | ConnectionAborted | ConnectionReset | UnexpectedEof
            );
        }
        connection_lost |= cause
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message);
        source = cause.source();
    }
    match (blocked, connection_lost) {
        (true, _) => Denial::BlockedAddress(describe(error)),
        (false, true) => Denial::Connect(describe(error)),
        (false, false) => Denial::Request(describe(error)),
    }
}

/// The error and its causes, without the URL (it may carry credentials).
fn describe(error: &reqwest::Error) -> String {
    let mut text = String::from(if error.is_connect() {
        "connect failed"
    } else {
        "request failed"
    });
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn validate(merchant_id: &str, email: &str, action: &str) -> Result<(), Denial> {
    for (name, value) in [("merchantId", merchant_id), ("email", email), ("action", action)] {
        if value.trim().is_empty() || value.len() > MAX_FIELD_BYTES {
            return Err(Denial::BadRequest(format!(
                "{name} must be 1 to {MAX_FIELD_BYTES} bytes and not blank"
            )));
        }
    }
    Ok(())
}

/// The decision for `outcome`, timed from `started`.
fn decision(outcome: Result<Verdict, Denial>, cached: bool, started: Instant) -> AuthDecision {
    let (allowed, reason) = match outcome {
        Ok(verdict) => (verdict.allowed, verdict.reason),
        Err(denial) => (false, denial.reason().to_owned()),
    };
    AuthDecision {
        allowed,
        reason,
        latency_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        cached,
    }
}

/// Logs the decision (the email only as a hash prefix, never a credential) and returns it.
fn log_decision(
    merchant_id: &str,
    email: &str,
    action: &str,
    outcome: Result<Verdict, Denial>,
    cached: bool,
    started: Instant,
) -> AuthDecision {
    let detail = outcome.as_ref().err().map(ToString::to_string);
    let decision = decision(outcome, cached, started);
    let email_hash = &hex::encode(Sha256::digest(email.as_bytes()))[..EMAIL_HASH_HEX_CHARS];
    tracing::info!(
        merchant_id,
        email_sha256 = email_hash,
        action,
        allowed = decision.allowed,
        reason = %decision.reason,
        latency_ms = decision.latency_ms,
        cached,
        detail,
        "auth decision"
    );
    decision
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_the_guarded_resolver_refuses_is_a_blocked_url() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let policy = UrlPolicy {
            allow_http: true,
            allow_private: false,
        };
        let client = policy.client_builder().build().expect("client");
        // Straight to the client: `UrlPolicy::check` would refuse `localhost` before any lookup.
        let error = client
            .post(format!("http://localhost:{port}/auth"))
            .send()
            .await
            .expect_err("loopback is blocked");
        assert_eq!(transport(&error).reason(), "blocked_url");
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error_and_says_so_without_the_url() {
        let port = {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            listener.local_addr().expect("address").port()
        };
        let open = UrlPolicy {
            allow_http: true,
            allow_private: true,
        };
        let error = open
            .client_builder()
            .build()
            .expect("client")
            .post(format!("http://127.0.0.1:{port}/auth?key=s3cret"))
            .send()
            .await
            .expect_err("nothing listens");
        let denial = transport(&error);
        assert_eq!(denial.reason(), "connect_error");
        assert!(!denial.to_string().contains("s3cret"), "{denial}");
    }

    #[test]
    fn requests_with_blank_or_oversized_fields_are_bad_requests() {
        assert!(validate("m_1", "a@b.example", "buy").is_ok());
        for (merchant_id, email, action) in [
            ("", "a@b.example", "buy"),
            ("m_1", " ", "buy"),
            ("m_1", "a@b.example", ""),
            ("m_1", &"a".repeat(MAX_FIELD_BYTES + 1), "buy"),
        ] {
            let denial = validate(merchant_id, email, action).expect_err("invalid");
            assert_eq!(denial.reason(), "bad_request");
        }
    }
}
