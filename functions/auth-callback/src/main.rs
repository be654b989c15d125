//! The auth-callback Lambda: wiring only (settings, clients built once, the handler).

use std::sync::Arc;

use anyhow::Context;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use webhooks_auth_callback::AuthCallback;
use webhooks_domain::SystemClock;
use webhooks_runtime::logging::init_logging;
use webhooks_runtime::{Environment, Settings};
use webhooks_storage::aws::{DynamoStore, sdk_config_from_env};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let settings = Settings::from_env(Environment::Lambda)?;
    init_logging(settings.log_format);
    let sdk = sdk_config_from_env().await;
    let table = Settings::required(&settings.table_name, "WEBHOOKS_TABLE_NAME")?;
    let store = DynamoStore::connect(aws_sdk_dynamodb::Client::new(&sdk), table, settings.retention())
        .await
        .context("connect to the table")?;
    let auth = AuthCallback::new(
        store,
        settings.url_policy,
        settings.auth_callback_timeout(),
        Arc::new(SystemClock),
    )?;
    let auth = &auth;
    // The payload is taken as JSON so that a malformed one is a `bad_request` denial, not an error.
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, lambda_runtime::Error>(auth.decide_payload(event.payload).await)
    }))
    .await
}
