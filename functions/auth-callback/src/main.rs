//! The auth-callback Lambda: wiring only (settings, clients built once, the handler).

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use webhooks_auth_callback::AuthCallback;
use webhooks_domain::SystemClock;
use webhooks_runtime::Budget;
use webhooks_runtime::lambda::{LambdaContext, SecretAccess};
use webhooks_runtime::metrics::flush_emf;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let context = LambdaContext::start(SecretAccess::Opens).await?;
    let settings = &context.settings;
    let timeout = settings.auth_callback_timeout();
    let auth = AuthCallback::new(context.store, settings.url_policy, timeout, Arc::new(SystemClock))?;
    let auth = &auth;
    // The payload is taken as JSON so that a malformed one is a `bad_request` denial, not an
    // error; the invocation's deadline bounds the decision, so a caller gets one in time.
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let budget = Budget::of_invocation(&event.context);
        let decision = auth.decide_payload(event.payload, budget).await;
        flush_emf();
        Ok::<_, lambda_runtime::Error>(decision)
    }))
    .await
}
