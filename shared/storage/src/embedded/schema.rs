//! The tables of a store file, and the one-time set-up of a connection: pragmas, schema,
//! upgrades of files made by older versions, the cursor key.

use std::time::Duration;

use rusqlite::Connection;
use uuid::Uuid;

use super::connection::write_tx;
use super::opened_subscriptions;
use crate::DEFAULT_RETENTION;
use crate::rules::retention::expires_at_ms;
use crate::rules::unix_time::now_ms;

/// Every table. Instants are unix milliseconds; `expires_at_ms` is when a row's retention
/// ends (`rules::retention`).
const TABLES: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS merchants (id TEXT PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (hash TEXT PRIMARY KEY, merchant_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
    merchant_id TEXT NOT NULL, id TEXT NOT NULL, enabled INTEGER NOT NULL,
    events TEXT NOT NULL, json TEXT NOT NULL, health TEXT, PRIMARY KEY (merchant_id, id));
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, json TEXT NOT NULL, fanned_out INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL, lease_until_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS attempts (
    merchant_id TEXT NOT NULL, subscription_id TEXT NOT NULL, sort_key TEXT NOT NULL,
    json TEXT NOT NULL, expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (merchant_id, subscription_id, sort_key));
CREATE TABLE IF NOT EXISTS attempts_recent (
    merchant_id TEXT NOT NULL, subscription_id TEXT NOT NULL, sort_key TEXT NOT NULL,
    json TEXT NOT NULL, expires_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS delivery_status (
    event_id TEXT NOT NULL, subscription_id TEXT NOT NULL, merchant_id TEXT NOT NULL,
    status TEXT NOT NULL, expires_at_ms INTEGER NOT NULL, PRIMARY KEY (event_id, subscription_id));
CREATE TABLE IF NOT EXISTS auth_callbacks (merchant_id TEXT PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS request_counts (
    key TEXT NOT NULL, window_start_ms INTEGER NOT NULL, count INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL, PRIMARY KEY (key, window_start_ms));
CREATE TABLE IF NOT EXISTS parked_retries (
    shard INTEGER NOT NULL, sort_key TEXT NOT NULL, due_ms INTEGER NOT NULL, body TEXT NOT NULL,
    dead_letter_reason TEXT, PRIMARY KEY (shard, sort_key));
CREATE TABLE IF NOT EXISTS probe_slots (
    endpoint TEXT NOT NULL, slot INTEGER NOT NULL, lease TEXT NOT NULL, lease_until_ms INTEGER NOT NULL,
    PRIMARY KEY (endpoint, slot));
CREATE TABLE IF NOT EXISTS held_deliveries (
    endpoint TEXT NOT NULL, sort_key TEXT NOT NULL, body TEXT NOT NULL, expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (endpoint, sort_key));
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, message_id TEXT NOT NULL,
    body TEXT NOT NULL, visible_at_ms INTEGER NOT NULL, receive_count INTEGER NOT NULL,
    receipt TEXT, dlq_reason TEXT, sent_at_ms INTEGER NOT NULL DEFAULT 0);
";

/// How many prepared statements a connection keeps: more than the store has (about 70).
const STATEMENT_CACHE_CAPACITY: usize = 256;

/// Tables that files made before attempts and statuses expired lack `expires_at_ms` in.
const TABLES_GIVEN_EXPIRY: [&str; 2] = ["attempts", "delivery_status"];

/// Every index; made after the upgrades, since some index a column they add. Messages are
/// found by their row (a receipt handle names it), so the receipt and message-id indexes of
/// older files are dropped: each cost a page write at a random place per message.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS events_expiry ON events (expires_at_ms);
CREATE INDEX IF NOT EXISTS attempts_expiry ON attempts (expires_at_ms);
CREATE INDEX IF NOT EXISTS delivery_status_expiry ON delivery_status (expires_at_ms);
CREATE INDEX IF NOT EXISTS request_counts_expiry ON request_counts (expires_at_ms);
CREATE INDEX IF NOT EXISTS held_deliveries_expiry ON held_deliveries (expires_at_ms);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_at_ms);
DROP INDEX IF EXISTS messages_receipt;
DROP INDEX IF EXISTS messages_message_id;
";

/// Sets the pragmas, creates or upgrades the schema, and returns the cursor key (made on
/// first open).
pub(super) fn init(conn: &mut Connection) -> rusqlite::Result<Vec<u8>> {
    set_up_connection(conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // In WAL mode, NORMAL syncs at checkpoints only: a committed transaction survives the
    // process being killed (kill -9), and only an OS crash or power loss may lose the last ones;
    // what must survive those too (a queued message) is synced as a group (`Db::make_durable`).
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Checkpoint every 10,000 WAL pages (about 40 MB), not SQLite's 1,000: the hot pages (the
    // queue's, the attempt log's last leaf) are rewritten by nearly every commit, and a
    // checkpoint copies each page once however often it was rewritten, and syncs once
    // (docs/benchmarks.md: about 10 % more deliveries a second).
    conn.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    // One write transaction, so that processes opening the same file at once do not race.
    let tx = write_tx(conn)?;
    tx.execute_batch(TABLES)?;
    for table in TABLES_GIVEN_EXPIRY {
        give_expiry(&tx, table)?;
    }
    add_column_if_missing(&tx, "delivery_status", "last_attempt", "INTEGER NOT NULL DEFAULT 0")?;
    add_column_if_missing(&tx, "messages", "sent_at_ms", "INTEGER NOT NULL DEFAULT 0")?;
    add_column_if_missing(&tx, "subscriptions", "health", "TEXT")?;
    tx.execute_batch(INDEXES)?;
    tx.execute_batch(opened_subscriptions::COUNT_CHANGES)?;
    // Two v4 UUIDs: 244 bits from the OS generator; kept so cursors survive restarts.
    let fresh: Vec<u8> = [Uuid::new_v4(), Uuid::new_v4()]
        .iter()
        .flat_map(|id| *id.as_bytes())
        .collect();
    tx.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('cursor_key', ?1)",
        [&fresh],
    )?;
    let key = tx.query_row("SELECT value FROM meta WHERE key = 'cursor_key'", [], |row| row.get(0))?;
    tx.commit()?;
    Ok(key)
}

/// A second connection to the store at `path` (its schema made by [`init`]) that only
/// reads: `query_only`, so that a write sent to it by mistake fails instead of bypassing the
/// writer thread.
pub(super) fn open_reader(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let reader = Connection::open(path)?;
    set_up_connection(&reader)?;
    reader.pragma_update(None, "query_only", true)?;
    Ok(reader)
}

/// What every connection of a store gets: a 5 s wait for a lock, and room for every
/// statement the store prepares (with rusqlite's default of 16 the hot ones were evicted
/// and prepared again on most calls: 11 % of the stack's CPU under load).
fn set_up_connection(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    Ok(())
}

/// Adds `expires_at_ms` to `table` if an older version made it without: the rows already
/// there are kept for [`DEFAULT_RETENTION`] from now.
fn give_expiry(conn: &Connection, table: &str) -> rusqlite::Result<()> {
    let sql = "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = 'expires_at_ms'";
    let has_expiry: bool = conn.query_row(sql, [table], |row| row.get(0))?;
    if !has_expiry {
        conn.execute_batch(&format!(
            "ALTER TABLE {table} ADD COLUMN expires_at_ms INTEGER NOT NULL DEFAULT 0"
        ))?;
        let sql = format!("UPDATE {table} SET expires_at_ms = ?1");
        conn.execute(&sql, [expires_at_ms(now_ms(), DEFAULT_RETENTION)])?;
    }
    Ok(())
}

/// Adds `column` to `table` if an older version made the table without it.
fn add_column_if_missing(conn: &Connection, table: &str, column: &str, definition: &str) -> rusqlite::Result<()> {
    let sql = "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2";
    let present: bool = conn.query_row(sql, [table, column], |row| row.get(0))?;
    if !present {
        conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {definition}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreError;
    use crate::embedded::EmbeddedStore;
    use crate::page::PageRequest;
    use crate::ports::{DeliveryLog, MerchantStore, SubscriptionStore};
    use webhooks_domain::{DeliveryStatus, IsoTime, Merchant};

    #[tokio::test]
    async fn cursors_survive_a_reopen_and_stay_in_their_scope() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("local.db");
        let store = EmbeddedStore::open(&path).unwrap();
        let created_at = IsoTime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        for id in ["m_1", "m_2", "m_3"] {
            let merchant = Merchant {
                id: id.into(),
                name: id.into(),
                created_at,
            };
            store.create_merchant(&merchant, &format!("hash-{id}")).await.unwrap();
        }
        let first = store.list_merchants(PageRequest::first(2)).await.unwrap();
        assert_eq!(
            first.items.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["m_1", "m_2"]
        );
        drop(store);

        let store = EmbeddedStore::open(&path).unwrap();
        let rest = store
            .list_merchants(PageRequest {
                limit: 2,
                cursor: first.next_cursor.clone(),
            })
            .await
            .unwrap();
        assert_eq!(rest.items.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["m_3"]);
        assert_eq!(rest.next_cursor, None);
        let elsewhere = PageRequest {
            limit: 2,
            cursor: first.next_cursor,
        };
        assert_eq!(
            store.list_subscriptions("m_1", elsewhere).await,
            Err(StoreError::BadCursor)
        );
    }

    #[tokio::test]
    async fn a_file_made_before_statuses_expired_is_upgraded_and_keeps_its_rows() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("old.db");
        let old = Connection::open(&path).unwrap();
        old.execute_batch(
            "CREATE TABLE delivery_status (
                 event_id TEXT NOT NULL, subscription_id TEXT NOT NULL, merchant_id TEXT NOT NULL,
                 status TEXT NOT NULL, PRIMARY KEY (event_id, subscription_id));
             INSERT INTO delivery_status VALUES ('evt_1', 'sub_1', 'm_1', '\"failed\"');",
        )
        .unwrap();
        drop(old);

        let store = EmbeddedStore::open(&path).unwrap();
        assert_eq!(store.purge_expired().await.unwrap(), 0);
        assert_eq!(
            store.delivery_status("evt_1", "sub_1").await.unwrap(),
            Some(DeliveryStatus::Failed)
        );
        drop(store);
        EmbeddedStore::open(&path).expect("a second open finds nothing to upgrade");
    }
}
