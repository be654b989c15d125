//! The one connection every handle shares, and the helpers all SQLite work goes through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, Params, Transaction, TransactionBehavior};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::StoreError;
use crate::page::{CursorCodec, Page, PageRequest};

/// The connection, the cursor codec and the per-queue wake-ups, shared by every handle.
#[derive(Debug)]
pub(super) struct Db {
    conn: Mutex<Connection>,
    codec: CursorCodec,
    notifiers: Mutex<HashMap<String, Arc<Notify>>>,
}

/// Why a closure given to [`Db::call`] failed: SQLite itself, or a store-level answer.
pub(super) enum Fail {
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

impl Db {
    /// Shares `conn`, sealing cursors with `cursor_key`.
    pub(super) fn new(conn: Connection, cursor_key: Vec<u8>) -> Self {
        Self {
            conn: Mutex::new(conn),
            codec: CursorCodec::new(cursor_key),
            notifiers: Mutex::default(),
        }
    }

    /// The wake-up of the receivers of `queue` (one per queue name).
    pub(super) fn notifier(&self, queue: &str) -> Arc<Notify> {
        let mut map = self.notifiers.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(map.entry(queue.to_owned()).or_default())
    }

    /// Runs `f` on the connection, on the calling thread; SQLite errors become
    /// [`StoreError::Backend`] for `op`.
    pub(super) fn call<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        // Run in place: a statement takes microseconds in WAL mode, less than a hop to the
        // blocking pool and back (profiling showed those hops and their wake-ups dominating).
        // A panic inside `f` unwinds through `Transaction::drop`, which rolls back, so the
        // connection is consistent even when the mutex is poisoned.
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut conn).map_err(|fail| match fail {
            Fail::Sql(error) => StoreError::backend(op, error),
            Fail::Store(error) => error,
        })
    }

    /// Executes one statement; the number of rows changed.
    pub(super) fn exec(&self, op: &'static str, sql: &str, params: impl Params) -> Result<usize, StoreError> {
        self.call(op, |conn| Ok(conn.prepare_cached(sql)?.execute(params)?))
    }

    /// Decodes the JSON in the first column of the row `sql` finds, if any.
    pub(super) fn fetch<T: DeserializeOwned>(
        &self,
        op: &'static str,
        sql: &str,
        params: impl Params,
    ) -> Result<Option<T>, StoreError> {
        self.fetch_text(op, sql, params)?.as_deref().map(from_json).transpose()
    }

    /// The text in the first column of the row `sql` finds, if any.
    pub(super) fn fetch_text(
        &self,
        op: &'static str,
        sql: &str,
        params: impl Params,
    ) -> Result<Option<String>, StoreError> {
        self.call(op, |conn| {
            Ok(conn
                .prepare_cached(sql)?
                .query_row(params, |row| row.get(0))
                .optional()?)
        })
    }

    /// One page of a listing. `sql` selects `(sort key, json)` rows with `?1` the position
    /// to start after (NULL on the first page), `?2` the row limit and `?3..` `filter`.
    pub(super) fn list<T: DeserializeOwned>(
        &self,
        op: &'static str,
        scope: &str,
        page: &PageRequest,
        sql: &str,
        filter: &[&dyn ToSql],
    ) -> Result<Page<T>, StoreError> {
        let after = page
            .cursor
            .as_deref()
            .map(|cursor| self.codec.open(scope, cursor))
            .transpose()?;
        let limit = page.limit.max(1);
        let fetch_rows = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let mut args: Vec<&dyn ToSql> = vec![&after, &fetch_rows];
        args.extend_from_slice(filter);
        let mut rows: Vec<(String, String)> = self.call(op, |conn| {
            let mut stmt = conn.prepare_cached(sql)?;
            let rows = stmt.query_map(&args[..], |row| Ok((row.get(0)?, row.get(1)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?;
        let next_cursor = (rows.len() > limit).then(|| {
            rows.truncate(limit);
            self.codec.seal(scope, &rows[limit - 1].0)
        });
        let items = rows.iter().map(|(_, json)| from_json(json)).collect::<Result<_, _>>()?;
        Ok(Page { items, next_cursor })
    }
}

/// A write transaction that takes the file's write lock up front (no upgrade deadlocks).
pub(super) fn write_tx(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// The JSON text a domain object is stored as.
pub(super) fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::backend("json.encode", error))
}

/// The domain object stored as `json`.
pub(super) fn from_json<T: DeserializeOwned>(json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|error| StoreError::Corrupt(error.to_string()))
}
