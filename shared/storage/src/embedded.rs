//! The embedded backend of the local stack: every port on one SQLite file.
//!
//! Whole domain objects are stored as JSON text next to the few columns the queries need.
//! All SQLite work runs through one helper, on one connection behind a
//! mutex. The queue keeps SQS semantics (delay, visibility timeout, receive count, DLQ),
//! and a send wakes the receivers long-polling that queue in this process; receivers also
//! poll every [`POLL_INTERVAL`] so that other processes sharing the file are seen too.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params, params_from_iter};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use uuid::Uuid;
use webhooks_domain::{
    AuthCallbackConfig, DeliveryAttempt, DeliveryStatus, EventName, Merchant, PlatformEvent, Subscription,
};

use crate::StoreError;
use crate::page::{CursorCodec, Page, PageRequest};
use crate::ports::{
    AuthCallbackStore, DeliveryLog, EventStore, MAX_BATCH, MAX_DELAY, MAX_VISIBILITY, MerchantStore, OutgoingMessage,
    Queue, ReceivedMessage, Recorded, SubscriptionStore,
};

/// How long events are kept unless [`EmbeddedStore::with_retention_days`] says otherwise.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// The longest a long-polling receiver sleeps before looking at the table again.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The DLQ reason of a message received more than its queue's maximum receive count.
pub const MAX_RECEIVE_REASON: &str = "max receive count exceeded";
/// Milliseconds from year 0 to the unix epoch: added so that attempt sort keys never go negative.
const YEAR_ZERO_OFFSET_MS: i64 = 62_167_219_200_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS merchants (id TEXT PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (hash TEXT PRIMARY KEY, merchant_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
    merchant_id TEXT NOT NULL, id TEXT NOT NULL, enabled INTEGER NOT NULL,
    events TEXT NOT NULL, json TEXT NOT NULL, PRIMARY KEY (merchant_id, id));
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, json TEXT NOT NULL, fanned_out INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL, lease_until_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS events_expiry ON events (expires_at_ms);
CREATE TABLE IF NOT EXISTS attempts (
    merchant_id TEXT NOT NULL, subscription_id TEXT NOT NULL, sort_key TEXT NOT NULL,
    json TEXT NOT NULL, PRIMARY KEY (merchant_id, subscription_id, sort_key));
CREATE TABLE IF NOT EXISTS delivery_status (
    event_id TEXT NOT NULL, subscription_id TEXT NOT NULL, merchant_id TEXT NOT NULL,
    status TEXT NOT NULL, PRIMARY KEY (event_id, subscription_id));
CREATE TABLE IF NOT EXISTS auth_callbacks (merchant_id TEXT PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, queue TEXT NOT NULL, message_id TEXT NOT NULL,
    body TEXT NOT NULL, visible_at_ms INTEGER NOT NULL, receive_count INTEGER NOT NULL,
    receipt TEXT, dlq_reason TEXT);
CREATE INDEX IF NOT EXISTS messages_ready ON messages (queue, visible_at_ms);
CREATE INDEX IF NOT EXISTS messages_receipt ON messages (receipt);
CREATE INDEX IF NOT EXISTS messages_message_id ON messages (message_id);
";

/// The connection, the cursor codec and the per-queue wake-ups, shared by every handle.
#[derive(Debug)]
struct Db {
    conn: Mutex<Connection>,
    codec: CursorCodec,
    notifiers: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Db {
    /// The wake-up of the receivers of `queue` (one per queue name).
    fn notifier(&self, queue: &str) -> Arc<Notify> {
        let mut map = self.notifiers.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(queue.to_owned()).or_default())
    }
}

/// Why a closure given to [`call`] failed: SQLite itself, or a store-level answer.
enum Fail {
    Sql(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for Fail {
    fn from(error: rusqlite::Error) -> Self {
        Fail::Sql(error)
    }
}

impl From<StoreError> for Fail {
    fn from(error: StoreError) -> Self {
        Fail::Store(error)
    }
}

/// Runs `f` on the connection, on the calling thread; SQLite errors become
/// [`StoreError::Backend`] for `op`.
async fn call<T: Send + 'static>(
    db: &Arc<Db>,
    op: &'static str,
    f: impl FnOnce(&mut Connection) -> Result<T, Fail> + Send + 'static,
) -> Result<T, StoreError> {
    // Run in place: a statement takes microseconds in WAL mode, less than a hop to the
    // blocking pool and back (profiling showed those hops and their wake-ups dominating).
    // A panic inside `f` unwinds through `Transaction::drop`, which rolls back, so the
    // connection is consistent even when the mutex is poisoned.
    let mut conn = db.conn.lock().unwrap_or_else(PoisonError::into_inner);
    f(&mut conn).map_err(|fail| match fail {
        Fail::Sql(error) => StoreError::backend(op, error),
        Fail::Store(error) => error,
    })
}

/// Executes one statement; the number of rows changed.
async fn exec(db: &Arc<Db>, op: &'static str, sql: &'static str, args: Vec<Value>) -> Result<usize, StoreError> {
    call(db, op, move |conn| {
        Ok(conn.prepare_cached(sql)?.execute(params_from_iter(args))?)
    })
    .await
}

/// Decodes the JSON in the first column of the row `sql` finds, if any.
async fn fetch<T: DeserializeOwned>(
    db: &Arc<Db>,
    op: &'static str,
    sql: &'static str,
    args: Vec<Value>,
) -> Result<Option<T>, StoreError> {
    let json: Option<String> = call(db, op, move |conn| {
        Ok(conn
            .prepare_cached(sql)?
            .query_row(params_from_iter(args), |row| row.get(0))
            .optional()?)
    })
    .await?;
    json.as_deref().map(from_json).transpose()
}

/// A write transaction that takes the file's write lock up front (no upgrade deadlocks).
fn write_tx(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::backend("json.encode", error))
}

fn from_json<T: DeserializeOwned>(json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|error| StoreError::Corrupt(error.to_string()))
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

/// Milliseconds since the unix epoch, now.
fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, millis)
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The SQLite store of merchants, subscriptions, events, the delivery log and auth callbacks.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    db: Arc<Db>,
    retention: Duration,
}

impl EmbeddedStore {
    /// Opens (creating the file, its directory and the schema if need be) the store at `path`.
    /// Blocking: call it at startup.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        const OP: &str = "sqlite.open";
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|error| StoreError::backend(OP, error))?;
        }
        let conn = Connection::open(path).map_err(|error| StoreError::backend(OP, error))?;
        let key = init(&conn).map_err(|error| StoreError::backend(OP, error))?;
        let db = Db {
            conn: Mutex::new(conn),
            codec: CursorCodec::new(key),
            notifiers: Mutex::default(),
        };
        Ok(Self {
            db: Arc::new(db),
            retention: Duration::from_secs(u64::from(DEFAULT_RETENTION_DAYS) * 86_400),
        })
    }

    /// The same store, keeping events for `days` after they are recorded.
    pub fn with_retention_days(mut self, days: u32) -> Self {
        self.retention = Duration::from_secs(u64::from(days) * 86_400);
        self
    }

    /// A handle on the queue `name` in this store's file (queues share the connection).
    pub fn queue(&self, name: &str, settings: QueueSettings) -> EmbeddedQueue {
        EmbeddedQueue {
            db: Arc::clone(&self.db),
            name: name.to_owned(),
            dlq: settings.dlq,
            max_receive_count: settings.max_receive_count,
            notify: self.db.notifier(name),
        }
    }

    /// Deletes the events whose retention has ended; how many.
    pub async fn purge_expired(&self) -> Result<usize, StoreError> {
        let sql = "DELETE FROM events WHERE expires_at_ms <= ?1";
        exec(&self.db, "events.purge", sql, vec![now_ms().into()]).await
    }

    /// One page of a listing. `sql` selects `(sort key, json)` rows with `?1` the position
    /// to start after (NULL on the first page), `?2` the row limit and `?3..` `filter`.
    async fn list<T: DeserializeOwned>(
        &self,
        op: &'static str,
        scope: String,
        page: PageRequest,
        sql: &'static str,
        filter: Vec<Value>,
    ) -> Result<Page<T>, StoreError> {
        let after = page
            .cursor
            .as_deref()
            .map(|cursor| self.db.codec.open(&scope, cursor))
            .transpose()?;
        let limit = page.limit.max(1);
        let fetch_rows = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let mut args = vec![Value::from(after), Value::from(fetch_rows)];
        args.extend(filter);
        let mut rows: Vec<(String, String)> = call(&self.db, op, move |conn| {
            let mut stmt = conn.prepare_cached(sql)?;
            let rows = stmt.query_map(params_from_iter(args), |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<(String, String)>, _>>()?)
        })
        .await?;
        let next_cursor = (rows.len() > limit).then(|| {
            rows.truncate(limit);
            self.db.codec.seal(&scope, &rows[limit - 1].0)
        });
        let items = rows.iter().map(|(_, json)| from_json(json)).collect::<Result<_, _>>()?;
        Ok(Page { items, next_cursor })
    }
}

/// Sets the pragmas, creates the schema, and returns the cursor key (made on first open).
fn init(conn: &Connection) -> rusqlite::Result<Vec<u8>> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // In WAL mode, NORMAL syncs at checkpoints only: a committed transaction survives the
    // process being killed (kill -9), and only an OS crash or power loss may lose the last ones.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SCHEMA)?;
    // Two v4 UUIDs: 244 bits from the OS generator; kept so cursors survive restarts.
    let fresh: Vec<u8> = [Uuid::new_v4(), Uuid::new_v4()]
        .iter()
        .flat_map(|id| *id.as_bytes())
        .collect();
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('cursor_key', ?1)",
        [&fresh],
    )?;
    conn.query_row("SELECT value FROM meta WHERE key = 'cursor_key'", [], |row| row.get(0))
}

/// Adds a key hash to a merchant ([`StoreError::Conflict`] if the hash is taken).
fn insert_key(conn: &Connection, merchant_id: &str, hash: &str) -> Result<(), Fail> {
    let sql = "INSERT OR IGNORE INTO api_keys (hash, merchant_id) VALUES (?1, ?2)";
    match conn.execute(sql, params![hash, merchant_id])? {
        0 => Err(StoreError::Conflict("api key".into()).into()),
        _ => Ok(()),
    }
}

impl MerchantStore for EmbeddedStore {
    async fn create_merchant(&self, merchant: &Merchant, api_key_hash: &str) -> Result<(), StoreError> {
        let (id, json, hash) = (merchant.id.clone(), to_json(merchant)?, api_key_hash.to_owned());
        call(&self.db, "merchants.create", move |conn| {
            let tx = write_tx(conn)?;
            if tx.execute(
                "INSERT OR IGNORE INTO merchants (id, json) VALUES (?1, ?2)",
                params![id, json],
            )? == 0
            {
                return Err(StoreError::Conflict(format!("merchant {id}")).into());
            }
            insert_key(&tx, &id, &hash)?;
            Ok(tx.commit()?)
        })
        .await
    }

    async fn get_merchant(&self, merchant_id: &str) -> Result<Option<Merchant>, StoreError> {
        let sql = "SELECT json FROM merchants WHERE id = ?1";
        fetch(&self.db, "merchants.get", sql, vec![text(merchant_id)]).await
    }

    async fn list_merchants(&self, page: PageRequest) -> Result<Page<Merchant>, StoreError> {
        let sql = "SELECT id, json FROM merchants WHERE (?1 IS NULL OR id > ?1) ORDER BY id LIMIT ?2";
        self.list("merchants.list", "merchants".into(), page, sql, vec![]).await
    }

    async fn add_api_key(&self, merchant_id: &str, api_key_hash: &str) -> Result<(), StoreError> {
        let (id, hash) = (merchant_id.to_owned(), api_key_hash.to_owned());
        call(&self.db, "merchants.add_api_key", move |conn| {
            let tx = write_tx(conn)?;
            let known = tx
                .query_row("SELECT 1 FROM merchants WHERE id = ?1", [&id], |_| Ok(()))
                .optional()?;
            known.ok_or(StoreError::NotFound)?;
            insert_key(&tx, &id, &hash)?;
            Ok(tx.commit()?)
        })
        .await
    }

    async fn merchant_for_api_key(&self, api_key_hash: &str) -> Result<Option<Merchant>, StoreError> {
        let sql = "SELECT m.json FROM api_keys k JOIN merchants m ON m.id = k.merchant_id WHERE k.hash = ?1";
        fetch(&self.db, "merchants.for_api_key", sql, vec![text(api_key_hash)]).await
    }

    async fn revoke_api_key(&self, api_key_hash: &str) -> Result<bool, StoreError> {
        let sql = "DELETE FROM api_keys WHERE hash = ?1";
        Ok(exec(&self.db, "merchants.revoke_api_key", sql, vec![text(api_key_hash)]).await? > 0)
    }
}

/// The columns of a subscription row, bound as `?1..?5`: merchant, id, enabled, events, json.
/// `events` is `,name,name,` so that `instr(events, ',name,')` finds one.
fn subscription_row(subscription: &Subscription) -> Result<Vec<Value>, StoreError> {
    let events: String = subscription
        .events
        .iter()
        .map(|event| format!(",{event}"))
        .collect::<String>()
        + ",";
    Ok(vec![
        text(&subscription.merchant_id),
        text(&subscription.id),
        subscription.enabled.into(),
        Value::Text(events),
        Value::Text(to_json(subscription)?),
    ])
}

impl SubscriptionStore for EmbeddedStore {
    async fn create_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let sql = "INSERT OR IGNORE INTO subscriptions (merchant_id, id, enabled, events, json) \
                   VALUES (?1, ?2, ?3, ?4, ?5)";
        match exec(&self.db, "subscriptions.create", sql, subscription_row(subscription)?).await? {
            0 => Err(StoreError::Conflict(format!("subscription {}", subscription.id))),
            _ => Ok(()),
        }
    }

    async fn get_subscription(
        &self,
        merchant_id: &str,
        subscription_id: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        let sql = "SELECT json FROM subscriptions WHERE merchant_id = ?1 AND id = ?2";
        fetch(
            &self.db,
            "subscriptions.get",
            sql,
            vec![text(merchant_id), text(subscription_id)],
        )
        .await
    }

    async fn list_subscriptions(&self, merchant_id: &str, page: PageRequest) -> Result<Page<Subscription>, StoreError> {
        let sql = "SELECT id, json FROM subscriptions WHERE (?1 IS NULL OR id > ?1) AND merchant_id = ?3 \
                   ORDER BY id LIMIT ?2";
        let scope = format!("subscriptions:{merchant_id}");
        self.list("subscriptions.list", scope, page, sql, vec![text(merchant_id)])
            .await
    }

    async fn update_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let sql = "UPDATE subscriptions SET enabled = ?3, events = ?4, json = ?5 WHERE merchant_id = ?1 AND id = ?2";
        match exec(&self.db, "subscriptions.update", sql, subscription_row(subscription)?).await? {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    async fn delete_subscription(&self, merchant_id: &str, subscription_id: &str) -> Result<bool, StoreError> {
        let sql = "DELETE FROM subscriptions WHERE merchant_id = ?1 AND id = ?2";
        let args = vec![text(merchant_id), text(subscription_id)];
        Ok(exec(&self.db, "subscriptions.delete", sql, args).await? > 0)
    }

    async fn subscriptions_for_event(
        &self,
        merchant_id: &str,
        event: EventName,
        page: PageRequest,
    ) -> Result<Page<Subscription>, StoreError> {
        let sql = "SELECT id, json FROM subscriptions WHERE (?1 IS NULL OR id > ?1) AND merchant_id = ?3 \
                   AND enabled = 1 AND instr(events, ?4) > 0 ORDER BY id LIMIT ?2";
        let scope = format!("subscriptions-for-event:{merchant_id}:{event}");
        let filter = vec![text(merchant_id), Value::Text(format!(",{event},"))];
        self.list("subscriptions.for_event", scope, page, sql, filter).await
    }
}

impl EventStore for EmbeddedStore {
    async fn record_event(&self, event: &PlatformEvent, lease: Duration) -> Result<Recorded, StoreError> {
        let (id, json, retention, lease) = (
            event.event_id.clone(),
            to_json(event)?,
            millis(self.retention),
            millis(lease),
        );
        let known: Option<(String, bool, bool)> = call(&self.db, "events.record", move |conn| {
            let tx = write_tx(conn)?;
            let now = now_ms();
            let lease_until = now.saturating_add(lease);
            // An expired row is gone as far as callers can tell: the id is new again.
            tx.execute(
                "DELETE FROM events WHERE event_id = ?1 AND expires_at_ms <= ?2",
                params![id, now],
            )?;
            let sql = "INSERT OR IGNORE INTO events (event_id, json, fanned_out, expires_at_ms, lease_until_ms) \
                       VALUES (?1, ?2, 0, ?3, ?4)";
            let known = match tx.execute(sql, params![id, json, now.saturating_add(retention), lease_until])? {
                0 => {
                    let sql = "SELECT json, fanned_out, lease_until_ms FROM events WHERE event_id = ?1";
                    let (json, fanned_out, held_until): (String, bool, i64) =
                        tx.query_row(sql, [&id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
                    let lease_expired = !fanned_out && held_until <= now;
                    if lease_expired {
                        tx.execute(
                            "UPDATE events SET lease_until_ms = ?2 WHERE event_id = ?1",
                            params![id, lease_until],
                        )?;
                    }
                    Some((json, fanned_out, lease_expired))
                }
                _ => None,
            };
            tx.commit()?;
            Ok(known)
        })
        .await?;
        Ok(match known {
            None => Recorded::New,
            Some((json, true, _)) => Recorded::AlreadyFannedOut(from_json(&json)?),
            Some((json, false, true)) => Recorded::PendingFanOut(from_json(&json)?),
            Some((_, false, false)) => Recorded::InProgress,
        })
    }

    async fn mark_fanned_out(&self, event_id: &str) -> Result<(), StoreError> {
        let sql = "UPDATE events SET fanned_out = 1 WHERE event_id = ?1";
        match exec(&self.db, "events.mark_fanned_out", sql, vec![text(event_id)]).await? {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    async fn get_event(&self, event_id: &str) -> Result<Option<PlatformEvent>, StoreError> {
        let sql = "SELECT json FROM events WHERE event_id = ?1 AND expires_at_ms > ?2";
        fetch(&self.db, "events.get", sql, vec![text(event_id), now_ms().into()]).await
    }
}

impl DeliveryLog for EmbeddedStore {
    async fn record_attempt(&self, attempt: &DeliveryAttempt) -> Result<(), StoreError> {
        // Descending sort keys give newest first, then event id, then attempt, both
        // descending; the space sorts below every character an event id may hold.
        let at = attempt.attempted_at.unix_millis().saturating_add(YEAR_ZERO_OFFSET_MS);
        let sort_key = format!("{at:015} {} {:010}", attempt.event_id, attempt.attempt);
        let sql = "INSERT OR REPLACE INTO attempts (merchant_id, subscription_id, sort_key, json) \
                   VALUES (?1, ?2, ?3, ?4)";
        let args = vec![
            text(&attempt.merchant_id),
            text(&attempt.subscription_id),
            Value::Text(sort_key),
            Value::Text(to_json(attempt)?),
        ];
        exec(&self.db, "attempts.record", sql, args).await.map(drop)
    }

    async fn list_attempts(
        &self,
        merchant_id: &str,
        subscription_id: &str,
        page: PageRequest,
    ) -> Result<Page<DeliveryAttempt>, StoreError> {
        let sql = "SELECT sort_key, json FROM attempts WHERE (?1 IS NULL OR sort_key < ?1) \
                   AND merchant_id = ?3 AND subscription_id = ?4 ORDER BY sort_key DESC LIMIT ?2";
        let scope = format!("attempts:{merchant_id}:{subscription_id}");
        self.list(
            "attempts.list",
            scope,
            page,
            sql,
            vec![text(merchant_id), text(subscription_id)],
        )
        .await
    }

    async fn set_delivery_status(
        &self,
        merchant_id: &str,
        event_id: &str,
        subscription_id: &str,
        status: DeliveryStatus,
    ) -> Result<(), StoreError> {
        let sql = "INSERT OR REPLACE INTO delivery_status (event_id, subscription_id, merchant_id, status) \
                   VALUES (?1, ?2, ?3, ?4)";
        let args = vec![
            text(event_id),
            text(subscription_id),
            text(merchant_id),
            Value::Text(to_json(&status)?),
        ];
        exec(&self.db, "delivery_status.set", sql, args).await.map(drop)
    }

    async fn delivery_status(
        &self,
        event_id: &str,
        subscription_id: &str,
    ) -> Result<Option<DeliveryStatus>, StoreError> {
        let sql = "SELECT status FROM delivery_status WHERE event_id = ?1 AND subscription_id = ?2";
        fetch(
            &self.db,
            "delivery_status.get",
            sql,
            vec![text(event_id), text(subscription_id)],
        )
        .await
    }
}

impl AuthCallbackStore for EmbeddedStore {
    async fn get_auth_callback(&self, merchant_id: &str) -> Result<Option<AuthCallbackConfig>, StoreError> {
        let sql = "SELECT json FROM auth_callbacks WHERE merchant_id = ?1";
        fetch(&self.db, "auth_callbacks.get", sql, vec![text(merchant_id)]).await
    }

    async fn put_auth_callback(&self, merchant_id: &str, config: &AuthCallbackConfig) -> Result<(), StoreError> {
        let sql = "INSERT OR REPLACE INTO auth_callbacks (merchant_id, json) VALUES (?1, ?2)";
        let args = vec![text(merchant_id), Value::Text(to_json(config)?)];
        exec(&self.db, "auth_callbacks.put", sql, args).await.map(drop)
    }

    async fn delete_auth_callback(&self, merchant_id: &str) -> Result<bool, StoreError> {
        let sql = "DELETE FROM auth_callbacks WHERE merchant_id = ?1";
        Ok(exec(&self.db, "auth_callbacks.delete", sql, vec![text(merchant_id)]).await? > 0)
    }
}

/// How a queue dead-letters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueSettings {
    /// The queue that takes messages received too often (`None`: messages never move on their own).
    pub dlq: Option<String>,
    /// A message already received this many times goes to the DLQ instead of a consumer.
    pub max_receive_count: u32,
}

/// A queue with SQS semantics in the store's SQLite file (the `messages` table).
#[derive(Debug, Clone)]
pub struct EmbeddedQueue {
    db: Arc<Db>,
    name: String,
    dlq: Option<String>,
    max_receive_count: u32,
    notify: Arc<Notify>,
}

/// Moves the row `row_id` to the queue `dlq`, visible at once, with `reason`.
fn dead_letter(conn: &Connection, row_id: i64, dlq: &str, reason: &str, now: i64) -> rusqlite::Result<usize> {
    let sql = "UPDATE messages SET queue = ?1, receipt = NULL, receive_count = 0, visible_at_ms = ?2, \
               dlq_reason = ?3 WHERE id = ?4";
    conn.execute(sql, params![dlq, now, reason, row_id])
}

fn check_visibility(op: &'static str, visibility: Duration) -> Result<(), StoreError> {
    if visibility > MAX_VISIBILITY {
        return Err(StoreError::backend(op, "visibility timeout exceeds 12 hours"));
    }
    Ok(())
}

impl EmbeddedQueue {
    /// Why the message with this id (in any queue) was dead-lettered, if it was.
    pub async fn dlq_reason(&self, message_id: &str) -> Result<Option<String>, StoreError> {
        let id = message_id.to_owned();
        call(&self.db, "queue.dlq_reason", move |conn| {
            let sql = "SELECT dlq_reason FROM messages WHERE message_id = ?1";
            Ok(conn
                .query_row(sql, [&id], |row| row.get::<_, Option<String>>(0))
                .optional()?
                .flatten())
        })
        .await
    }

    /// One receive without waiting: the messages, and the earliest `visible_at_ms` left in
    /// the queue (for the long poll to know when to look again).
    async fn receive_now(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<(Vec<ReceivedMessage>, Option<i64>), StoreError> {
        let (name, dlq, max_count) = (self.name.clone(), self.dlq.clone(), self.max_receive_count);
        let (limit, hide) = (i64::try_from(max.clamp(1, MAX_BATCH)).unwrap_or(1), millis(visibility));
        let (received, moved, next) = call(&self.db, "queue.receive", move |conn| {
            let tx = write_tx(conn)?;
            let now = now_ms();
            let sql = "SELECT id, message_id, body, receive_count FROM messages \
                       WHERE queue = ?1 AND visible_at_ms <= ?2 ORDER BY visible_at_ms, id LIMIT ?3";
            let rows = tx
                .prepare_cached(sql)?
                .query_map(params![name, now, limit], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<Result<Vec<(i64, String, String, u32)>, _>>()?;
            let (mut received, mut moved) = (Vec::new(), 0usize);
            for (row_id, message_id, body, count) in rows {
                match &dlq {
                    Some(dlq) if count >= max_count => {
                        moved += dead_letter(&tx, row_id, dlq, MAX_RECEIVE_REASON, now)?;
                    }
                    _ => {
                        let receipt = Uuid::new_v4().to_string();
                        let sql = "UPDATE messages SET receive_count = receive_count + 1, visible_at_ms = ?1, \
                                   receipt = ?2 WHERE id = ?3";
                        tx.execute(sql, params![now.saturating_add(hide), receipt, row_id])?;
                        let receive_count = count.saturating_add(1);
                        received.push(ReceivedMessage {
                            message_id,
                            receipt_handle: receipt,
                            body,
                            receive_count,
                        });
                    }
                }
            }
            let sql = "SELECT MIN(visible_at_ms) FROM messages WHERE queue = ?1";
            let next: Option<i64> = tx.query_row(sql, [&name], |row| row.get(0))?;
            tx.commit()?;
            Ok((received, moved, next))
        })
        .await?;
        if let Some(dlq) = &self.dlq
            && moved > 0
        {
            tracing::warn!(queue = %self.name, dlq = %dlq, moved, "{MAX_RECEIVE_REASON}: moved to the DLQ");
            self.db.notifier(dlq).notify_waiters();
        }
        Ok((received, next))
    }
}

impl Queue for EmbeddedQueue {
    async fn send(&self, message: OutgoingMessage) -> Result<(), StoreError> {
        self.send_batch(vec![message])
            .await?
            .into_iter()
            .next()
            .unwrap_or(Ok(()))
    }

    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        if messages.len() > MAX_BATCH {
            let why = format!("{} messages, at most {MAX_BATCH} per batch", messages.len());
            return Err(StoreError::backend("queue.send_batch", why));
        }
        let name = self.name.clone();
        let results = call(&self.db, "queue.send_batch", move |conn| {
            let tx = write_tx(conn)?;
            let now = now_ms();
            let mut results = Vec::with_capacity(messages.len());
            {
                let sql = "INSERT INTO messages (queue, message_id, body, visible_at_ms, receive_count) \
                           VALUES (?1, ?2, ?3, ?4, 0)";
                let mut insert = tx.prepare_cached(sql)?;
                for message in &messages {
                    if message.delay > MAX_DELAY {
                        results.push(Err(StoreError::backend("queue.send", "delay exceeds 15 minutes")));
                        continue;
                    }
                    let visible_at = now.saturating_add(millis(message.delay));
                    insert.execute(params![name, Uuid::new_v4().to_string(), message.body, visible_at])?;
                    results.push(Ok(()));
                }
            }
            tx.commit()?;
            Ok(results)
        })
        .await?;
        self.notify.notify_waiters();
        Ok(results)
    }

    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, StoreError> {
        check_visibility("queue.receive", visibility)?;
        let start = tokio::time::Instant::now();
        let deadline = start.checked_add(wait).unwrap_or(start + Duration::from_secs(86_400));
        loop {
            // Registered before looking, so a send between the look and the wait still wakes us.
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let (received, next_visible_ms) = self.receive_now(max, visibility).await?;
            let now = tokio::time::Instant::now();
            if !received.is_empty() || now >= deadline {
                return Ok(received);
            }
            let mut wake = deadline.min(now + POLL_INTERVAL);
            if let Some(at) = next_visible_ms {
                let until_visible = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
                wake = wake.min(now + Duration::from_millis(until_visible));
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    async fn change_visibility(&self, receipt_handle: &str, visibility: Duration) -> Result<(), StoreError> {
        check_visibility("queue.change_visibility", visibility)?;
        let sql = "UPDATE messages SET visible_at_ms = ?1 WHERE queue = ?2 AND receipt = ?3";
        let args = vec![
            now_ms().saturating_add(millis(visibility)).into(),
            text(&self.name),
            text(receipt_handle),
        ];
        match exec(&self.db, "queue.change_visibility", sql, args).await? {
            0 => Err(StoreError::BadReceipt),
            _ => {
                self.notify.notify_waiters();
                Ok(())
            }
        }
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM messages WHERE queue = ?1 AND receipt = ?2";
        match exec(
            &self.db,
            "queue.delete",
            sql,
            vec![text(&self.name), text(receipt_handle)],
        )
        .await?
        {
            0 => Err(StoreError::BadReceipt),
            _ => Ok(()),
        }
    }

    async fn delete_batch(&self, receipt_handles: Vec<String>) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        if receipt_handles.len() > MAX_BATCH {
            let why = format!("{} handles, at most {MAX_BATCH} per batch", receipt_handles.len());
            return Err(StoreError::backend("queue.delete_batch", why));
        }
        let name = self.name.clone();
        call(&self.db, "queue.delete_batch", move |conn| {
            let tx = write_tx(conn)?;
            let results = {
                let mut delete = tx.prepare_cached("DELETE FROM messages WHERE queue = ?1 AND receipt = ?2")?;
                let mut results = Vec::with_capacity(receipt_handles.len());
                for receipt in &receipt_handles {
                    results.push(match delete.execute(params![name, receipt])? {
                        0 => Err(StoreError::BadReceipt),
                        _ => Ok(()),
                    });
                }
                results
            };
            tx.commit()?;
            Ok(results)
        })
        .await
    }

    async fn send_dead_letter(&self, body: &str, reason: &str) -> Result<(), StoreError> {
        let Some(dlq) = self.dlq.clone() else {
            let why = format!("queue {} has no dead-letter queue", self.name);
            return Err(StoreError::backend("queue.send_dead_letter", why));
        };
        let (target, body, reason) = (dlq.clone(), body.to_owned(), reason.to_owned());
        call(&self.db, "queue.send_dead_letter", move |conn| {
            let sql = "INSERT INTO messages (queue, message_id, body, visible_at_ms, receive_count, dlq_reason) \
                       VALUES (?1, ?2, ?3, ?4, 0, ?5)";
            conn.prepare_cached(sql)?
                .execute(params![target, Uuid::new_v4().to_string(), body, now_ms(), reason])?;
            Ok(())
        })
        .await?;
        self.db.notifier(&dlq).notify_waiters();
        Ok(())
    }

    async fn approximate_len(&self) -> Result<usize, StoreError> {
        let name = self.name.clone();
        let count: i64 = call(&self.db, "queue.len", move |conn| {
            Ok(
                conn.query_row("SELECT COUNT(*) FROM messages WHERE queue = ?1", [&name], |row| {
                    row.get(0)
                })?,
            )
        })
        .await?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    async fn move_to_dlq(&self, message: &ReceivedMessage, reason: &str) -> Result<(), StoreError> {
        let Some(dlq) = self.dlq.clone() else {
            let why = format!("queue {} has no dead-letter queue", self.name);
            return Err(StoreError::backend("queue.move_to_dlq", why));
        };
        let (name, receipt, reason, target) = (
            self.name.clone(),
            message.receipt_handle.clone(),
            reason.to_owned(),
            dlq.clone(),
        );
        call(&self.db, "queue.move_to_dlq", move |conn| {
            let tx = write_tx(conn)?;
            let sql = "SELECT id FROM messages WHERE queue = ?1 AND receipt = ?2";
            let row_id: Option<i64> = tx.query_row(sql, params![name, receipt], |row| row.get(0)).optional()?;
            dead_letter(&tx, row_id.ok_or(StoreError::BadReceipt)?, &target, &reason, now_ms())?;
            Ok(tx.commit()?)
        })
        .await?;
        self.db.notifier(&dlq).notify_waiters();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webhooks_domain::IsoTime;

    const NO_WAIT: Duration = Duration::ZERO;
    const LONG: Duration = Duration::from_secs(30);

    fn open() -> (tempfile::TempDir, EmbeddedStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = EmbeddedStore::open(&dir.path().join("state/local.db")).expect("open");
        (dir, store)
    }

    fn message(body: &str, delay_ms: u64) -> OutgoingMessage {
        OutgoingMessage {
            body: body.into(),
            delay: Duration::from_millis(delay_ms),
        }
    }

    #[tokio::test]
    async fn a_delay_hides_the_message_until_it_is_due() {
        let (_dir, store) = open();
        let queue = store.queue("tasks", QueueSettings::default());
        queue.send(message("later", 300)).await.unwrap();
        assert!(queue.receive(10, LONG, NO_WAIT).await.unwrap().is_empty());
        assert_eq!(queue.approximate_len().await.unwrap(), 1);
        let got = queue.receive(10, LONG, Duration::from_secs(5)).await.unwrap();
        assert_eq!((got.len(), got[0].body.as_str(), got[0].receive_count), (1, "later", 1));
    }

    #[tokio::test]
    async fn an_ended_visibility_timeout_hands_the_message_out_again() {
        let (_dir, store) = open();
        let queue = store.queue("tasks", QueueSettings::default());
        queue.send(message("again", 0)).await.unwrap();
        let first = queue.receive(1, Duration::from_millis(200), NO_WAIT).await.unwrap();
        assert_eq!(first.len(), 1);
        assert!(queue.receive(1, LONG, NO_WAIT).await.unwrap().is_empty());
        let second = queue.receive(1, LONG, Duration::from_secs(5)).await.unwrap();
        assert_eq!(second[0].message_id, first[0].message_id);
        assert_eq!(second[0].receive_count, 2);
        assert_eq!(
            queue.delete(&first[0].receipt_handle).await,
            Err(StoreError::BadReceipt)
        );
        queue.delete(&second[0].receipt_handle).await.unwrap();
        assert_eq!(queue.approximate_len().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn messages_go_to_the_dlq_after_max_receives_or_when_told_with_the_reason() {
        let (_dir, store) = open();
        let queue = store.queue(
            "tasks",
            QueueSettings {
                dlq: Some("tasks-dlq".into()),
                max_receive_count: 2,
            },
        );
        let dlq = store.queue("tasks-dlq", QueueSettings::default());
        queue.send(message("poison", 0)).await.unwrap();
        for expected in 1..=2 {
            assert_eq!(
                queue.receive(1, Duration::ZERO, NO_WAIT).await.unwrap()[0].receive_count,
                expected
            );
        }
        assert!(queue.receive(1, LONG, NO_WAIT).await.unwrap().is_empty());
        let dead = dlq.receive(1, LONG, NO_WAIT).await.unwrap();
        assert_eq!((dead[0].body.as_str(), dead[0].receive_count), ("poison", 1));
        assert_eq!(
            dlq.dlq_reason(&dead[0].message_id).await.unwrap().as_deref(),
            Some(MAX_RECEIVE_REASON)
        );

        queue.send(message("bad", 0)).await.unwrap();
        let got = queue.receive(1, LONG, NO_WAIT).await.unwrap();
        queue.move_to_dlq(&got[0], "invalid_json").await.unwrap();
        assert_eq!(queue.approximate_len().await.unwrap(), 0);
        assert_eq!(dlq.approximate_len().await.unwrap(), 2);
        assert_eq!(
            queue.dlq_reason(&got[0].message_id).await.unwrap().as_deref(),
            Some("invalid_json")
        );
        assert_eq!(queue.move_to_dlq(&got[0], "again").await, Err(StoreError::BadReceipt));
        assert!(matches!(
            dlq.move_to_dlq(&dead[0], "no dlq").await,
            Err(StoreError::Backend { .. })
        ));
    }

    #[tokio::test]
    async fn a_send_wakes_a_long_poll_at_once() {
        let (_dir, store) = open();
        let queue = store.queue("tasks", QueueSettings::default());
        let poller = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.receive(1, LONG, Duration::from_secs(10)).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = std::time::Instant::now();
        queue.send(message("wake", 0)).await.unwrap();
        let got = poller.await.expect("join").expect("receive");
        assert_eq!(got[0].body, "wake");
        assert!(
            sent.elapsed() < POLL_INTERVAL * 8 / 10,
            "woken by polling, not by the send"
        );
    }

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
        let dup = Merchant {
            id: "m_1".into(),
            name: "again".into(),
            created_at,
        };
        assert!(matches!(
            store.create_merchant(&dup, "hash-new").await,
            Err(StoreError::Conflict(_))
        ));
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
        assert_eq!(
            store.merchant_for_api_key("hash-m_2").await.unwrap().map(|m| m.id),
            Some("m_2".into())
        );
    }
}
