//! The two connections every handle shares (one that writes, one that only reads), the
//! writer thread that commits the hot writes in groups, and the helpers all SQLite work
//! goes through.

use std::collections::HashMap;
use std::fs::File;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};

use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension, Params, Transaction, TransactionBehavior};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::StoreError;
use crate::page::{CursorCodec, Page, PageRequest};

/// The connections, the writer thread, the cursor codec, the per-queue wake-ups and the
/// group commit to disk, shared by every handle.
#[derive(Debug)]
pub(super) struct Db {
    /// The connection reads run on ([`Db::read`]), so that they never wait for a group
    /// commit: in WAL mode a reader sees every transaction committed before its statement
    /// began and does not block the writer. Declared first so that it closes first, leaving
    /// the writing connection to checkpoint the WAL as the last one closed.
    reader: Mutex<Connection>,
    /// The connection every write runs on.
    conn: Arc<Mutex<Connection>>,
    /// Hands writes to the writer thread ([`Db::write`]); dropping it ends the thread.
    writer: Option<mpsc::Sender<Box<dyn GroupedWrite>>>,
    /// The writer thread, joined on drop so that the file is closed when the store is.
    writer_thread: Option<std::thread::JoinHandle<()>>,
    codec: CursorCodec,
    notifiers: Mutex<HashMap<String, Arc<Notify>>>,
    disk: GroupSync,
}

/// The most writes the writer thread commits in one transaction.
const MAX_GROUP: usize = 64;

/// Group commit to disk. With `synchronous=NORMAL` a WAL commit survives `kill -9` but not
/// power loss; what must survive both (a queued message: DESIGN section 6, "a 202 means
/// the event is on disk") is followed by [`Db::make_durable`], one `fdatasync` of the WAL
/// for every commit made before it started, so that concurrent writers share one.
#[derive(Debug, Default)]
struct GroupSync {
    /// The WAL file (none for a store without one, e.g. in memory).
    wal: Option<Arc<File>>,
    /// Commits counted so far ([`Db::committed`]).
    commits: AtomicU64,
    /// The count of commits the last sync covered; held while syncing.
    synced: tokio::sync::Mutex<u64>,
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

impl Fail {
    /// The store's error: SQLite's as [`StoreError::Backend`] for `op`, a store-level one as it is.
    fn into_store_error(self, op: &'static str) -> StoreError {
        match self {
            Fail::Sql(error) => StoreError::backend(op, error),
            Fail::Store(error) => error,
        }
    }
}

impl Db {
    /// Shares `conn` for writes and `reader` (a second connection to the same file) for
    /// reads, sealing cursors with `cursor_key`, and syncing the WAL at `wal` (the database
    /// file's `-wal` beside it, there once the schema is written) when asked. Starts the
    /// writer thread, which ends when this is dropped.
    pub(super) fn new(
        conn: Connection,
        reader: Connection,
        cursor_key: Vec<u8>,
        wal: Option<File>,
    ) -> Result<Self, StoreError> {
        let conn = Arc::new(Mutex::new(conn));
        let (writer, writes) = mpsc::channel();
        let writer_conn = Arc::clone(&conn);
        let writer_thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || commit_in_groups(&writer_conn, &writes))
            .map_err(|error| StoreError::backend("sqlite.writer", error))?;
        Ok(Self {
            reader: Mutex::new(reader),
            conn,
            writer: Some(writer),
            writer_thread: Some(writer_thread),
            codec: CursorCodec::new(cursor_key),
            notifiers: Mutex::default(),
            disk: GroupSync {
                wal: wal.map(Arc::new),
                ..GroupSync::default()
            },
        })
    }

    /// Runs `work` on the writer thread, inside one transaction with whatever other writes
    /// are waiting (group commit: one commit, and one set of WAL frames, for all of them),
    /// and answers once that transaction is committed. An error (or a panic) of `work`
    /// undoes its changes only, and is its answer: the group then runs again, each write in
    /// a savepoint of its own, so `work` may run twice and must change nothing but the
    /// database. Writes that must survive power loss call [`Db::make_durable`] after.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        op: &'static str,
        work: impl FnMut(&Connection) -> Result<T, Fail> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let stopped = || StoreError::backend(op, "the store's writer thread has stopped");
        self.writer
            .as_ref()
            .ok_or_else(stopped)?
            .send(Box::new(PendingWrite {
                op,
                work,
                result: None,
                reply,
            }))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Counts a commit that must reach the disk; its number, for [`Db::make_durable`].
    pub(super) fn committed(&self) -> u64 {
        self.disk.commits.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Returns once commit `commit` is on disk: one `fdatasync` of the WAL covers every
    /// commit counted before it started, so a caller whose commit an earlier sync covered
    /// returns at once, and callers waiting meanwhile share the next.
    pub(super) async fn make_durable(&self, commit: u64) -> Result<(), StoreError> {
        let Some(wal) = &self.disk.wal else { return Ok(()) };
        let mut synced = self.disk.synced.lock().await;
        if *synced >= commit {
            return Ok(());
        }
        let covered = self.disk.commits.load(Ordering::Acquire);
        // On the blocking pool: an fdatasync takes a millisecond or more, which would stall
        // every task of the runtime thread it ran on.
        let wal = Arc::clone(wal);
        tokio::task::spawn_blocking(move || wal.sync_data())
            .await
            .map_err(|error| StoreError::backend("sqlite.fdatasync", error))?
            .map_err(|error| StoreError::backend("sqlite.fdatasync", error))?;
        *synced = covered;
        Ok(())
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
        f(&mut conn).map_err(|fail| fail.into_store_error(op))
    }

    /// Runs `f`, which only reads, on the reading connection, on the calling thread: it sees
    /// every write answered before it began, and waits for no write. SQLite errors become
    /// [`StoreError::Backend`] for `op`.
    pub(super) fn read<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> Result<T, Fail>,
    ) -> Result<T, StoreError> {
        let reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        f(&reader).map_err(|fail| fail.into_store_error(op))
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
        self.read(op, |conn| {
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
        let mut rows: Vec<(String, String)> = self.read(op, |conn| {
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

impl Drop for Db {
    /// Ends the writer thread once the writes handed to it are done, and waits for it, so
    /// that the connection is closed (the WAL checkpointed and removed) when this returns.
    fn drop(&mut self) {
        drop(self.writer.take());
        if let Some(thread) = self.writer_thread.take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

/// The writer thread: waits for a write, takes every other one waiting (up to
/// [`MAX_GROUP`]), runs them in one write transaction and answers each after the commit.
fn commit_in_groups(conn: &Mutex<Connection>, writes: &mpsc::Receiver<Box<dyn GroupedWrite>>) {
    while let Ok(first) = writes.recv() {
        let mut group: Vec<_> = std::iter::once(first)
            .chain(writes.try_iter().take(MAX_GROUP - 1))
            .collect();
        let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
        let committed = commit_group(&conn, &mut group);
        drop(conn);
        group.into_iter().for_each(|write| write.answer(&committed));
    }
}

/// Runs `group` in one transaction and commits it. First each write runs as it is, which
/// is all it takes when every one succeeds; if one fails (or panics), the transaction is
/// rolled back and the group runs again with each write in its own savepoint, so that a
/// failed write undoes only itself. (A savepoint per write made SQLite copy every page a
/// write changed to its journal in memory first: about 4 % of a delivery's CPU.)
fn commit_group(conn: &Connection, group: &mut [Box<dyn GroupedWrite>]) -> Result<(), StoreError> {
    let begin = || run_statement(conn, "BEGIN IMMEDIATE").map_err(|error| StoreError::backend("sqlite.begin", error));
    begin()?;
    if !group.iter_mut().all(|write| write.run(conn, Isolation::None)) {
        if !conn.is_autocommit() {
            run_statement(conn, "ROLLBACK").map_err(|error| StoreError::backend("sqlite.rollback", error))?;
        }
        begin()?;
        for write in group.iter_mut() {
            write.run(conn, Isolation::Savepoint);
            // Some errors (a full disk, I/O) make SQLite roll the whole transaction back:
            // the writes that ran are undone and the rest are not run.
            if conn.is_autocommit() {
                break;
            }
        }
    }
    if conn.is_autocommit() {
        return Err(StoreError::backend(
            "sqlite.commit",
            "SQLite rolled the transaction back",
        ));
    }
    let committed = run_statement(conn, "COMMIT").map_err(|error| StoreError::backend("sqlite.commit", error));
    if committed.is_err() && !conn.is_autocommit() {
        // The writes are undone together; each caller hears the commit's error.
        let _ = run_statement(conn, "ROLLBACK");
    }
    committed
}

/// Runs a statement without parameters, prepared once.
fn run_statement(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// How a write is kept apart from the others of its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// Not at all: any failure rolls the whole transaction back.
    None,
    /// In its own savepoint: a failure undoes only this write.
    Savepoint,
}

/// A write waiting for the writer thread, its result type erased.
trait GroupedWrite: Send {
    /// Runs the write (again, if it ran in a transaction rolled back since) in the group's
    /// transaction, keeping its result; whether it succeeded.
    fn run(&mut self, conn: &Connection, isolation: Isolation) -> bool;
    /// Answers the caller: its result if the group committed, the error if it did not.
    fn answer(self: Box<Self>, committed: &Result<(), StoreError>);
}

/// What [`Db::write`] hands the writer thread.
struct PendingWrite<T, F> {
    op: &'static str,
    work: F,
    /// The result of its last run.
    result: Option<Result<T, StoreError>>,
    reply: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> PendingWrite<T, F>
where
    F: FnMut(&Connection) -> Result<T, Fail>,
{
    /// Runs the work once; a panic is its error.
    fn run_work(&mut self, conn: &Connection) -> Result<T, StoreError> {
        let op = self.op;
        match catch_unwind(AssertUnwindSafe(|| (self.work)(conn))) {
            Ok(done) => done.map_err(|fail| fail.into_store_error(op)),
            Err(_panic) => Err(StoreError::backend(op, "the write panicked")),
        }
    }

    /// Runs the work in a savepoint, which it undoes on failure.
    fn run_in_savepoint(&mut self, conn: &Connection) -> Result<T, StoreError> {
        let op = self.op;
        run_statement(conn, "SAVEPOINT grouped_write").map_err(|error| StoreError::backend(op, error))?;
        let result = self.run_work(conn);
        let undone = match result {
            Ok(_) => Ok(()),
            Err(_) => run_statement(conn, "ROLLBACK TO grouped_write"),
        };
        match undone.and_then(|()| run_statement(conn, "RELEASE grouped_write")) {
            Ok(()) => result,
            Err(error) => Err(StoreError::backend(op, error)),
        }
    }
}

impl<T, F> GroupedWrite for PendingWrite<T, F>
where
    T: Send + 'static,
    F: FnMut(&Connection) -> Result<T, Fail> + Send + 'static,
{
    fn run(&mut self, conn: &Connection, isolation: Isolation) -> bool {
        let result = match isolation {
            Isolation::None => self.run_work(conn),
            Isolation::Savepoint => self.run_in_savepoint(conn),
        };
        let succeeded = result.is_ok();
        self.result = Some(result);
        succeeded
    }

    fn answer(self: Box<Self>, committed: &Result<(), StoreError>) {
        let answer = match (self.result, committed) {
            (Some(Err(error)), _) => Err(error),
            (_, Err(error)) => Err(error.clone()),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (None, Ok(())) => Err(StoreError::backend(self.op, "the write was not run")),
        };
        // A caller that stopped waiting (its task was dropped) needs no answer.
        let _ = self.reply.send(answer);
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rusqlite::OptionalExtension;

    use super::Fail;
    use crate::StoreError;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_or_panicking_write_undoes_only_itself_in_its_group() {
        let (_dir, store) = open_temporary();
        // A write that holds the writer thread while the others queue up behind it, so
        // that they make one group.
        let (entered, mut inside) = tokio::sync::mpsc::unbounded_channel();
        let (finish, finishing) = std::sync::mpsc::channel::<()>();
        let db = std::sync::Arc::clone(&store.db);
        let holding = tokio::spawn(async move {
            db.write("test.hold", move |_| {
                let _ = entered.send(());
                let _ = finishing.recv();
                Ok(())
            })
            .await
        });
        inside.recv().await.unwrap();
        // Each insert fails if a row it wrote before were still there: a group run again
        // must start from nothing.
        let insert = "INSERT INTO meta (key, value) VALUES (?1, 'x')";
        let writes: Vec<_> = (0..30)
            .map(|n| {
                let db = std::sync::Arc::clone(&store.db);
                tokio::spawn(async move {
                    db.write("test.write", move |conn| {
                        conn.prepare_cached(insert)?.execute([format!("k{n}")])?;
                        match n % 3 {
                            0 => Ok(n),
                            1 => Err(Fail::Store(StoreError::BadReceipt)),
                            _ => panic!("a write that panics"),
                        }
                    })
                    .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        finish.send(()).unwrap();
        holding.await.unwrap().unwrap();
        let mut answers = Vec::new();
        for write in writes {
            answers.push(write.await.expect("join"));
        }
        for (n, answer) in answers.iter().enumerate() {
            match n % 3 {
                0 => assert_eq!(answer, &Ok(n)),
                1 => assert_eq!(answer, &Err(StoreError::BadReceipt)),
                _ => assert!(matches!(answer, Err(StoreError::Backend { .. })), "{answer:?}"),
            }
        }
        let kept: Vec<String> = store
            .db
            .call("test.read", |conn| {
                let mut stmt =
                    conn.prepare("SELECT key FROM meta WHERE key LIKE 'k%' ORDER BY CAST(substr(key, 2) AS INTEGER)")?;
                let keys = stmt.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()?;
                Ok(keys)
            })
            .unwrap();
        let expected: Vec<String> = (0..30).filter(|n| n % 3 == 0).map(|n| format!("k{n}")).collect();
        assert_eq!(kept, expected, "only the writes that succeeded are committed");
    }

    use crate::embedded::{QueueSettings, open_temporary};
    use crate::ports::{OutgoingMessage, QueueSender};

    /// The value of `key` in `meta`, as the reading connection sees it.
    fn read_meta(db: &super::Db, key: &str) -> Option<String> {
        db.read("test.read", |conn| {
            let sql = "SELECT value FROM meta WHERE key = ?1";
            Ok(conn.query_row(sql, [key], |row| row.get(0)).optional()?)
        })
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_waits_for_no_write_and_sees_each_once_it_is_answered() {
        let (_dir, store) = open_temporary();
        let (entered, mut inside) = tokio::sync::mpsc::unbounded_channel();
        let (finish, finishing) = std::sync::mpsc::channel::<()>();
        let db = std::sync::Arc::clone(&store.db);
        let write = tokio::spawn(async move {
            db.write("test.write", move |conn| {
                conn.execute("INSERT INTO meta (key, value) VALUES ('held', 'x')", [])?;
                entered.send(()).unwrap();
                // The writer thread holds its transaction, and the writing connection,
                // until the test lets it go.
                finishing.recv().unwrap();
                Ok(())
            })
            .await
        });
        inside.recv().await.unwrap();
        let db = std::sync::Arc::clone(&store.db);
        let during = tokio::task::spawn_blocking(move || read_meta(&db, "held"));
        let during = tokio::time::timeout(Duration::from_secs(10), during)
            .await
            .expect("a read does not wait for the write's transaction")
            .unwrap();
        assert_eq!(during, None, "nor sees it before its commit");
        finish.send(()).unwrap();
        write.await.unwrap().unwrap();
        assert_eq!(read_meta(&store.db, "held").as_deref(), Some("x"), "seen once answered");
        let refused = store.db.read("test.read", |conn| {
            Ok(conn.execute("INSERT INTO meta (key, value) VALUES ('sneaked', 'x')", [])?)
        });
        assert!(
            matches!(refused, Err(StoreError::Backend { .. })),
            "the reader does not write: {refused:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_send_returns_once_every_commit_before_it_is_synced_to_disk() {
        let (_dir, store) = open_temporary();
        let queue = store.queue("durable", QueueSettings::default());
        assert!(store.db.disk.wal.is_some(), "the WAL file is open");
        let sends = (0..20).map(|n| {
            let queue = queue.clone();
            tokio::spawn(async move {
                let body = format!("m{n}");
                queue
                    .send(OutgoingMessage {
                        body,
                        delay: Duration::ZERO,
                    })
                    .await
                    .unwrap();
            })
        });
        for send in sends.collect::<Vec<_>>() {
            send.await.unwrap();
        }
        let commits = store.db.disk.commits.load(std::sync::atomic::Ordering::Acquire);
        assert_eq!(commits, 20);
        assert_eq!(
            *store.db.disk.synced.lock().await,
            20,
            "every queued message is on disk"
        );
    }
}
