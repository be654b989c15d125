//! The auth callback (DESIGN §5): before a user buys, sells or looks at private data, ask
//! the merchant whether that user may, and allow only on a truthy answer.
//!
//! [`AuthCallback::decide`] serves the Lambda and the local stack's `/local/auth-check`;
//! [`AuthCallback::decide_with_config`] serves the merchant API's `/v1/auth-callback/test`.
//! Every failure is a denial whose `reason` says which, in one machine-readable word.
//!
//! Files: [`request`] (what is asked and answered), `denial` (why not), `merchant_call`
//! (credentials and the request), `oauth` (tokens), `decision_cache`, `decision_log`.

mod decision_cache;
mod decision_log;
mod denial;
mod merchant_call;
mod oauth;
pub mod request;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, timeout_at};
use webhooks_domain::{AuthCallbackConfig, Clock, UrlPolicy, Verdict};
use webhooks_outbound::{Failure, OutboundClient};
use webhooks_storage::{AuthCallbackStore, MerchantStore};

pub use crate::request::{AuthDecision, AuthRequest};

use crate::decision_cache::DecisionCache;
use crate::decision_log::{decision, log_decision};
use crate::denial::Denial;
use crate::oauth::TokenCache;
use crate::request::validate;

/// The most bytes of a merchant's answer (or token response) we read: 16 KiB.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024;
/// The longest budget a merchant may configure (`timeoutMs`), in milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 30_000;
/// The `user-agent` of every auth-callback and token request.
const USER_AGENT: &str = concat!("webhooks-auth-callback/", env!("CARGO_PKG_VERSION"));

/// Why the function could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthCallbackError {
    /// The HTTP client (TLS, resolver) could not be set up.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
}

/// The auth-callback function: the store, one outbound client and the caches, built once
/// and shared by every decision.
pub struct AuthCallback<S> {
    store: S,
    client: OutboundClient,
    default_timeout: Duration,
    clock: Arc<dyn Clock>,
    tokens: TokenCache,
    decisions: DecisionCache,
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
            client: OutboundClient::new(policy, USER_AGENT)?,
            default_timeout,
            clock,
            tokens: TokenCache::default(),
            decisions: DecisionCache::default(),
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
            .map_err(|_| Failure::Timeout)??;
        let ttl = config
            .cache_ttl_seconds
            .filter(|&secs| secs > 0)
            .map(|secs| time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX)));
        let key = (merchant_id.to_owned(), email.to_owned(), action.to_owned());
        if let Some(ttl) = ttl
            && self.decisions.is_allowed(&key, ttl, self.clock.now())
        {
            return Ok((Verdict::allow(), true));
        }
        let verdict = self.ask_merchant(merchant_id, &config, email, action, started).await?;
        if let Some(ttl) = ttl
            && verdict.allowed
        {
            self.decisions.remember_allow(key, ttl, self.clock.now());
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
            .unwrap_or(Err(Failure::Timeout.into()))
    }
}
