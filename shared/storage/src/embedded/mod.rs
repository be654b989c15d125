//! The embedded backend of the local stack: every port on one SQLite file.
//!
//! Whole domain objects are stored as JSON text next to the few columns the queries need
//! (`schema.rs`). All SQLite work goes through two connections, each behind a mutex
//! (`connection.rs`): reads on a reading one, on the calling thread; rare writes on the
//! writing one, on the calling thread; the hot writes (queue sends, receives and deletes,
//! event records, delivery attempts) on the writing one too, from a writer thread that
//! commits whatever is waiting as one transaction. The queue keeps SQS semantics (delay,
//! visibility timeout, receive count, DLQ), and a send wakes one receiver long-polling
//! that queue in this process (one that takes a full batch wakes the next); receivers also
//! poll every [`POLL_INTERVAL`] so that other processes sharing the file are seen too.
//! Events, attempts and delivery statuses expire after the store's retention;
//! [`EmbeddedStore::purge_expired`] deletes them.

mod auth_callbacks;
mod connection;
mod delivery_log;
mod endpoint_breaker;
mod events;
mod merchants;
mod opened_subscriptions;
mod parked_retries;
mod queue;
mod recovery;
mod request_counters;
mod retention;
mod schema;
mod secrets_at_rest;
mod subscriptions;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use webhooks_keyring::{KEY_FILE_NAME, Keyring, LocalKeys};

pub use queue::{EmbeddedQueue, MAX_RECEIVE_REASON, POLL_INTERVAL, QueueSettings};

use self::connection::Db;
use self::opened_subscriptions::OpenedSubscriptions;
use crate::{DEFAULT_RETENTION, StoreError};

/// The SQLite store of merchants, subscriptions, events, the delivery log and auth callbacks.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    db: Arc<Db>,
    retention: Duration,
    keyring: Keyring,
    /// Subscriptions read with their secrets, kept while no subscription changes.
    opened_subscriptions: Arc<OpenedSubscriptions>,
}

impl EmbeddedStore {
    /// Opens (creating the file, its directory and the schema if need be) the store at
    /// `path`, keeping what it writes for [`DEFAULT_RETENTION`]. Secrets are sealed under
    /// the key file [`KEY_FILE_NAME`] beside it (created, mode 0600, on first start).
    /// Blocking: call it at startup.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let dir = path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|error| StoreError::backend("sqlite.open", error))?;
        let keys = LocalKeys::load_or_create(&dir.join(KEY_FILE_NAME))
            .map_err(|error| StoreError::backend("keyring.open", error))?;
        Self::open_with_keyring(path, Keyring::local(keys))
    }

    /// Opens the store at `path` as [`EmbeddedStore::open`] does, sealing secrets with `keyring`.
    pub fn open_with_keyring(path: &Path, keyring: Keyring) -> Result<Self, StoreError> {
        const OP: &str = "sqlite.open";
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|error| StoreError::backend(OP, error))?;
        }
        let mut conn = Connection::open(path).map_err(|error| StoreError::backend(OP, error))?;
        let cursor_key = schema::init(&mut conn).map_err(|error| StoreError::backend(OP, error))?;
        // The WAL SQLite keeps beside the file while a connection is open (made by init's write).
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        let wal = std::fs::File::open(&wal_path).map_err(|error| StoreError::backend(OP, error))?;
        let reader = schema::open_reader(path).map_err(|error| StoreError::backend(OP, error))?;
        Ok(Self {
            db: Arc::new(Db::new(conn, reader, cursor_key, Some(wal))?),
            retention: DEFAULT_RETENTION,
            keyring,
            opened_subscriptions: Arc::default(),
        })
    }

    /// A handle on the queue `name` in this store's file (queues share the connection).
    pub fn queue(&self, name: &str, settings: QueueSettings) -> EmbeddedQueue {
        EmbeddedQueue::new(Arc::clone(&self.db), name, settings)
    }
}

/// A store in a fresh temporary directory, for the unit tests of every part.
#[cfg(test)]
fn open_temporary() -> (tempfile::TempDir, EmbeddedStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(&dir.path().join("state/local.db")).expect("open");
    (dir, store)
}
