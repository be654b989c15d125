//! The local stack: the merchant API, ingest, deliver, the scheduler and auth-callback in one process,
//! with the same handler code as the Lambdas, on the embedded durable backend (or on the
//! real DynamoDB/SQS adapters against an endpoint).

pub mod allocator;
pub mod cli;
pub mod retention;
pub mod routes;
pub mod worker;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use webhooks_api::{Api, router};
use webhooks_auth_callback::AuthCallback;
use webhooks_deliver::{Deliver, DeliverConfig, http_client};
use webhooks_domain::{SystemClock, hash_api_key};
use webhooks_ingest::Ingest;
use webhooks_runtime::Settings;
use webhooks_runtime::metrics::install_prometheus;
use webhooks_scheduler::Scheduler;
use webhooks_storage::{Backend, Queue};

use crate::routes::{LocalState, create_merchant_with_key, local_routes};
use crate::worker::{PollerConfig, poll};

/// Concurrent ingest pollers.
const INGEST_POLLERS: usize = 4;
/// Concurrent deliver pollers, each handling a batch of up to 10 webhooks. A poller
/// receives its next batch while its last one is deleted, so at most twice this many
/// batches are in flight on the deliveries queue.
pub const DELIVER_POLLERS: usize = 16;
/// How often the scheduler moves due retries to the deliveries queue (a minute in AWS; a
/// second here, so that a retry is late by at most that).
const SCHEDULER_TICK: Duration = Duration::from_secs(1);
/// How long in-flight batches may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// How often the Prometheus summaries are brought up to date.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);
/// The file, in the data dir, that remembers the first merchant's id and API key, mode
/// 0600 like the secrets key beside it (which opens every credential in the store anyway):
/// a restart prints the same key, so a developer's scripts keep working. The store itself
/// keeps only the key's hash, as in AWS.
const FIRST_MERCHANT_FILE: &str = "first-merchant.json";

/// A merchant to try the stack with, the same across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirstMerchant {
    /// Its id.
    pub merchant_id: String,
    /// Its API key, in clear: the local stack's convenience, never the deployed platform's.
    pub api_key: String,
}

/// The merchant remembered in `data_dir`, or a new one (remembered for next time).
pub async fn first_merchant<S: Backend>(store: &S, data_dir: &Path) -> anyhow::Result<FirstMerchant> {
    let path = data_dir.join(FIRST_MERCHANT_FILE);
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Ok(known) = serde_json::from_str::<FirstMerchant>(&text)
        && store
            .merchant_for_api_key(&hash_api_key(&known.api_key))
            .await?
            .is_some()
    {
        return Ok(known);
    }
    let (merchant, key) = create_merchant_with_key(store, Some("first merchant".into())).await?;
    let first = FirstMerchant {
        merchant_id: merchant.id,
        api_key: key.clear_text,
    };
    std::fs::create_dir_all(data_dir).with_context(|| format!("create {}", data_dir.display()))?;
    write_private(&path, serde_json::to_string_pretty(&first)?.as_bytes())
        .with_context(|| format!("write {}", path.display()))?;
    Ok(first)
}

/// Writes `bytes` to `path` readable by its owner only (mode 0600, also when it existed).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)
}

/// Everything the stack runs on.
pub struct StackParts<S, Q> {
    /// The store.
    pub store: S,
    /// The events queue (with its DLQ).
    pub events: Q,
    /// The deliveries queue (with its DLQ).
    pub deliveries: Q,
}

/// Runs the stack until SIGINT or SIGTERM: the HTTP server on `port`, and the pollers.
pub async fn run<S, Q>(parts: StackParts<S, Q>, settings: Settings, port: u16, data_dir: &Path) -> anyhow::Result<()>
where
    S: Backend + Clone + 'static,
    Q: Queue + Clone + 'static,
{
    let StackParts {
        store,
        events,
        deliveries,
    } = parts;
    let clock = Arc::new(SystemClock);
    let ingest = Arc::new(Ingest::new(
        store.clone(),
        deliveries.clone(),
        events.clone(),
        clock.clone(),
    ));
    let deliver_config = DeliverConfig {
        retry_schedule: settings.retry_schedule.clone(),
        timeout: settings.delivery_timeout(),
        disable_after: settings.disable_after,
        probe_slots: settings.probe_slots,
    };
    let client = http_client(&settings.url_policy);
    let deliver = Arc::new(
        Deliver::new(store.clone(), deliveries.clone(), client, deliver_config, clock.clone())
            .raising_operational_events_on(events.clone()),
    );
    let auth = Arc::new(AuthCallback::new(
        store.clone(),
        settings.url_policy,
        settings.auth_callback_timeout(),
        clock.clone(),
    )?);

    let (stop, stopped) = watch::channel(false);
    let mut pollers = tokio::task::JoinSet::new();
    let ingest_config = PollerConfig {
        queue_name: "events",
        batch_size: 10,
        visibility: Duration::from_secs(60),
    };
    for _ in 0..INGEST_POLLERS {
        let (ingest, queue, stopped) = (ingest.clone(), events.clone(), stopped.clone());
        let config = ingest_config.clone();
        pollers.spawn(async move { poll(queue, config, |event| ingest.handle_batch(event), stopped).await });
    }
    // A batch takes at most one delivery timeout: hide it for six.
    let deliver_visibility = (settings.delivery_timeout() * 6).max(Duration::from_secs(30));
    let deliver_config = PollerConfig {
        queue_name: "deliveries",
        batch_size: 10,
        visibility: deliver_visibility,
    };
    for _ in 0..DELIVER_POLLERS {
        let (deliver, queue, stopped) = (deliver.clone(), deliveries.clone(), stopped.clone());
        let config = deliver_config.clone();
        pollers.spawn(async move { poll(queue, config, |event| deliver.handle_batch(event), stopped).await });
    }

    let scheduler = Scheduler::new(store.clone(), deliveries.clone(), clock.clone());
    let mut scheduler_stopped = stopped.clone();
    pollers.spawn(async move {
        let mut tick = tokio::time::interval(SCHEDULER_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = scheduler_stopped.wait_for(|stop| *stop) => return,
                _ = tick.tick() => {}
            }
            if let Err(error) = scheduler.move_due_tasks().await {
                tracing::warn!(%error, "moving due retries failed; the next tick tries again");
            }
        }
    });

    let metrics = install_prometheus();
    let upkeep = metrics.clone();
    let mut upkeep_stopped = stopped.clone();
    pollers.spawn(async move {
        // Histograms are summarized as they come; upkeep keeps their windows current.
        let mut tick = tokio::time::interval(METRICS_UPKEEP);
        loop {
            tokio::select! {
                _ = upkeep_stopped.wait_for(|stop| *stop) => return,
                _ = tick.tick() => upkeep.run_upkeep(),
            }
        }
    });
    let state = Arc::new(LocalState {
        store: store.clone(),
        events,
        ingest,
        auth,
        metrics,
    });
    let api_auth = AuthCallback::new(
        store.clone(),
        settings.url_policy,
        settings.auth_callback_timeout(),
        clock.clone(),
    )?;
    let api = Api::new(store.clone(), deliveries, settings.url_policy, api_auth, clock);
    // The merchant API is the Lambda's own router; `/local/*` sits beside it.
    let app = router(Arc::new(api)).merge(local_routes(state));
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .with_context(|| format!("listen on 127.0.0.1:{port}"))?;
    let address = listener.local_addr()?;
    let first = first_merchant(&store, data_dir).await?;
    println!("webhooks-local is up");
    println!("  API:         http://{address}");
    println!("  merchant id: {}", first.merchant_id);
    println!("  API key:     {}", first.api_key);
    println!("  data dir:    {}", data_dir.display());

    let mut server_stopped = stopped.clone();
    // With the peer address: the source that bad-key requests are limited by.
    let server = tokio::spawn(
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = server_stopped.wait_for(|stop| *stop).await;
            })
            .into_future(),
    );

    shutdown_signal().await?;
    tracing::info!("shutting down: finishing the batches in hand");
    let _ = stop.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while pollers.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("some batches did not finish in time; their messages come back after their visibility timeout");
    }
    server.await??;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
