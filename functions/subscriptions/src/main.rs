//! The subscriptions Lambda (the merchant API behind API Gateway): wiring only.

use std::sync::Arc;

use webhooks_api::{Api, router};
use webhooks_auth_callback::AuthCallback;
use webhooks_domain::SystemClock;
use webhooks_runtime::lambda::{LambdaContext, QueueName, SecretAccess};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let context = LambdaContext::start(SecretAccess::Opens).await?;
    let settings = &context.settings;
    let deliveries = context.queue(QueueName::Deliveries)?;
    let clock = Arc::new(SystemClock);
    let auth_callback = AuthCallback::new(
        context.store.clone(),
        settings.url_policy,
        settings.auth_callback_timeout(),
        clock.clone(),
    )?;
    let api = Api::new(context.store, deliveries, settings.url_policy, auth_callback, clock);
    lambda_http::run(router(Arc::new(api))).await
}
