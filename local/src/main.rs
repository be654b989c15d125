//! `webhooks-local`: wiring only. Flags and environment, the backend, then the stack.

use anyhow::Context;
use clap::Parser;
use webhooks_local::cli::{BackendKind, Options};
use webhooks_local::{StackParts, allocator, retention, run};
use webhooks_runtime::logging::init_logging;
use webhooks_runtime::{Environment, Settings};
use webhooks_storage::aws::{
    DynamoStore, ResourceNames, SdkTimeouts, SqsQueue, create_resources, kms_keyring, sdk_config_for_endpoint,
    sdk_config_from_env,
};
use webhooks_storage::embedded::{EmbeddedStore, QueueSettings};
use webhooks_storage::ports::{DELIVERIES_MAX_RECEIVE_COUNT, EVENTS_MAX_RECEIVE_COUNT};

#[global_allocator]
static ALLOCATOR: allocator::Allocator = allocator::Allocator {};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    allocator::return_freed_memory_at_once();
    let options = Options::parse();
    let settings = Settings::from_lookup(Environment::Local, |name| options.setting(name))?;
    init_logging(settings.log_format);
    match options.backend {
        BackendKind::Embedded => {
            let store = EmbeddedStore::open(&options.data_dir.join("store.sqlite3"))?
                .with_retention_days(settings.retention_days);
            let queue = |name: &str, max_receive_count| {
                let dlq = format!("{name}-dlq");
                store.queue(
                    name,
                    QueueSettings {
                        dlq: Some(dlq),
                        max_receive_count,
                    },
                )
            };
            let parts = StackParts {
                events: queue("events", EVENTS_MAX_RECEIVE_COUNT),
                deliveries: queue("deliveries", DELIVERIES_MAX_RECEIVE_COUNT),
                store: store.clone(),
            };
            retention::spawn_purge(store);
            run(parts, settings, options.port, &options.data_dir).await
        }
        BackendKind::Aws => {
            let sdk = match std::env::var("AWS_ENDPOINT_URL") {
                Ok(endpoint) if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() => sdk_config_for_endpoint(&endpoint),
                _ => sdk_config_from_env(SdkTimeouts::PATIENT).await,
            };
            let names = ResourceNames::with_prefix(&options.resource_prefix);
            let urls = if options.create_resources {
                create_resources(&sdk, &names).await?
            } else {
                webhooks_storage::aws::queue_urls(&sdk, &names).await?
            };
            let keyring = kms_keyring(&sdk, names.secrets_key);
            let store = DynamoStore::connect(
                aws_sdk_dynamodb::Client::new(&sdk),
                names.table,
                settings.retention(),
                keyring,
            )
            .await
            .context("connect to the table (create it with --create-resources)")?
            .with_subscription_shards(settings.subscription_shards)
            .await
            .context("raise the table's subscription shard count")?;
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            let parts = StackParts {
                store,
                events: SqsQueue::new(sqs.clone(), urls.events, Some(urls.events_dlq)),
                deliveries: SqsQueue::new(sqs, urls.deliveries, Some(urls.deliveries_dlq)),
            };
            run(parts, settings, options.port, &options.data_dir).await
        }
    }
}
