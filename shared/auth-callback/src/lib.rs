//! The auth callback (DESIGN §5): before a user buys, sells or looks at private data, ask
//! the merchant whether that user may, and allow only on a truthy answer.
//!
//! [`AuthCallback::decide_payload`] serves the Lambda, within its invocation's [`Budget`];
//! [`AuthCallback::decide`] the local stack's `/local/auth-check`, and
//! [`AuthCallback::decide_with_config`] the merchant API's `/v1/auth-callback/test`, both
//! without a Lambda deadline. Every failure is a denial whose `reason` says which, in one
//! machine-readable word; a decision whose budget runs out is a `timeout` denial.
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
use webhooks_runtime::{Budget, metrics};
use webhooks_storage::{AuthCallbackStore, MerchantStore};

pub use crate::request::{AuthDecision, AuthRequest};

use crate::decision_cache::{DecisionCache, DecisionKey};
use crate::decision_log::{decision, log_decision};
use crate::denial::Denial;
use crate::oauth::TokenCache;
use crate::request::validate;

/// The most bytes of a merchant's answer (or token response) we read: 16 KiB.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024;
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

    /// Decides a raw invocation payload within `budget` (the Lambda invocation's); one that
    /// is not an [`AuthRequest`] is denied as `bad_request`.
    pub async fn decide_payload(&self, payload: serde_json::Value, budget: Budget) -> AuthDecision {
        match serde_json::from_value::<AuthRequest>(payload) {
            Ok(request) => self.decide_within(request, budget).await,
            Err(error) => {
                let decision = decision(Err(Denial::BadRequest(error.to_string())), false, Instant::now());
                tracing::warn!(reason = %decision.reason, %error, "auth request refused");
                count_decision(&decision);
                decision
            }
        }
    }

    /// Decides with the merchant's stored configuration and no Lambda deadline: see
    /// [`AuthCallback::decide_within`].
    pub async fn decide(&self, request: AuthRequest) -> AuthDecision {
        self.decide_within(request, Budget::default()).await
    }

    /// Decides with the merchant's stored configuration, reusing a positive decision cached
    /// under the same revision of it when the configuration enables the cache
    /// (`cacheTtlSeconds`); with no configuration (deleted) there is nothing to reuse. The
    /// whole decision, reading the configuration included, ends within the merchant's
    /// `timeoutMs` (or the default timeout) and within `budget`, whichever ends first; past
    /// that it is a `timeout` denial.
    pub async fn decide_within(&self, request: AuthRequest, budget: Budget) -> AuthDecision {
        let started = Instant::now();
        let AuthRequest {
            merchant_id,
            email,
            action,
        } = request;
        let (outcome, cached) = match self.decide_stored(&merchant_id, &email, &action, started, budget).await {
            Ok((verdict, cached)) => (Ok(verdict), cached),
            Err(denial) => (Err(denial), false),
        };
        let decision = log_decision(&merchant_id, &email, &action, outcome, cached, started);
        count_decision(&decision);
        decision
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
            Ok(()) => {
                self.ask_merchant(merchant_id, config, email, action, started, Budget::default())
                    .await
            }
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
        budget: Budget,
    ) -> Result<(Verdict, bool), Denial> {
        validate(merchant_id, email, action)?;
        let config = timeout_at(
            budget.ends_at(started, self.default_timeout),
            self.load_config(merchant_id),
        )
        .await
        .map_err(|_| Failure::Timeout)??;
        let ttl = config
            .cache_ttl_seconds
            .filter(|&secs| secs > 0)
            .map(|secs| time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX)));
        let key = DecisionKey {
            merchant_id: merchant_id.to_owned(),
            revision: config.revision.clone(),
            email: email.to_owned(),
            action: action.to_owned(),
        };
        if let Some(ttl) = ttl
            && self.decisions.is_allowed(&key, ttl, self.clock.now())
        {
            return Ok((Verdict::allow(), true));
        }
        let verdict = self
            .ask_merchant(merchant_id, &config, email, action, started, budget)
            .await?;
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

    /// Asks the merchant by the end of `budget` for a decision that may take the configured
    /// `timeoutMs`, or the default timeout, counted from `started`; past that, or with no time
    /// left, a `timeout` denial.
    async fn ask_merchant(
        &self,
        merchant_id: &str,
        config: &AuthCallbackConfig,
        email: &str,
        action: &str,
        started: Instant,
        budget: Budget,
    ) -> Result<Verdict, Denial> {
        let timeout = config
            .applied_timeout_ms()
            .map_or(self.default_timeout, Duration::from_millis);
        let deadline = budget.ends_at(started, timeout);
        // Spent already (the Lambda deadline is inside its margin): the merchant is not asked
        // a question whose answer could not be used.
        if deadline <= Instant::now() {
            return Err(Failure::Timeout.into());
        }
        timeout_at(deadline, self.call(merchant_id, config, email, action, deadline))
            .await
            .unwrap_or(Err(Failure::Timeout.into()))
    }
}

/// Counts a decision the platform asked for in the `auth_decisions` metric, its reason
/// bounded: an HTTP status is counted by its class (`http_status_5xx`).
fn count_decision(decision: &AuthDecision) {
    let reason = match decision.reason.strip_prefix("http_status_") {
        Some(status) => format!("http_status_{}xx", &status[..1.min(status.len())]),
        None => decision.reason.clone(),
    };
    metrics::auth_decision(decision.allowed, reason, Duration::from_millis(decision.latency_ms));
}
