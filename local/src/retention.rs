//! Retention in the embedded backend: DynamoDB's TTL deletes expired items on AWS; here a
//! task does it, at start and then every [`PURGE_INTERVAL`].

use std::time::Duration;

use webhooks_storage::embedded::EmbeddedStore;

/// How often expired events, attempts and delivery statuses are deleted.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Starts the purge task; it runs until the process ends. A failed purge is logged and
/// tried again at the next interval.
pub fn spawn_purge(store: EmbeddedStore) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PURGE_INTERVAL);
        loop {
            every.tick().await;
            match store.purge_expired().await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "expired events, attempts and statuses deleted"),
                Err(error) => tracing::warn!(%error, "purging expired items failed"),
            }
        }
    })
}
