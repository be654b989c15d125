//! Queues with SQS semantics in the store's file: the `messages` table, one row per
//! message, labelled with its queue's name. They refuse what SQS refuses (a delay over
//! 15 minutes, a visibility reaching past 12 hours from the receive, a batch of more than
//! 10 entries or 256 KiB, a message over 256 KiB, a receive of more than 10, a receive
//! while 120,000 messages are in flight), naming the quota as SQS's documentation does, so
//! the local stack fails where AWS would. A long poll waits at most 20 s, as SQS's does. A
//! receipt handle carries its receive's instant.

use std::fmt::Display;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::Notify;
use uuid::Uuid;

use super::connection::Db;
use crate::StoreError;
use crate::ports::{
    MAX_BATCH, MAX_DELAY, MAX_IN_FLIGHT, MAX_MESSAGE_BYTES, MAX_VISIBILITY, MAX_WAIT, OutgoingMessage, QueueReceiver,
    QueueSender, ReceivedMessage,
};
use crate::rules::unix_time::{millis, now_ms};

/// The longest a long-polling receiver sleeps before looking at the table again.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The DLQ reason of a message received more than its queue's maximum receive count.
pub const MAX_RECEIVE_REASON: &str = "max receive count exceeded";

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
    /// How long a long poll sleeps before looking again unwoken ([`POLL_INTERVAL`]).
    poll_interval: Duration,
}

/// Moves the row `row_id` to the queue `dlq`, visible at once, with `reason`.
fn dead_letter(conn: &Connection, row_id: i64, dlq: &str, reason: &str, now: i64) -> rusqlite::Result<usize> {
    let sql = "UPDATE messages SET queue = ?1, receipt = NULL, receive_count = 0, visible_at_ms = ?2, \
               dlq_reason = ?3 WHERE id = ?4";
    conn.execute(sql, params![dlq, now, reason, row_id])
}

// The SQS quotas this queue enforces as SQS does, by the names SQS's documentation gives
// them ("Amazon SQS message quotas", "Amazon SQS queue quotas", the API reference), so that
// a refusal says which one. `docs/reliability.md` lists them.
const MESSAGE_TIMER: &str = "Message timer";
const VISIBILITY_TIMEOUT: &str = "Message visibility timeout";
const MESSAGE_BATCH: &str = "Message batch";
const MESSAGE_SIZE: &str = "Message size";
const BATCH_PAYLOAD: &str = "Maximum total payload size";
const RECEIVE_MAX: &str = "MaxNumberOfMessages";
const IN_FLIGHT: &str = "In-flight messages per queue";

/// A refusal of what SQS refuses: [`StoreError::Backend`] naming the quota.
fn over_quota(op: &'static str, quota: &str, detail: impl Display) -> StoreError {
    StoreError::backend(op, format!("{quota} quota: {detail}"))
}

/// Refuses a visibility timeout longer than SQS's 12 hours.
fn check_visibility(op: &'static str, visibility: Duration) -> Result<(), StoreError> {
    if visibility > MAX_VISIBILITY {
        let why = format!("{} s, at most {} s", visibility.as_secs(), MAX_VISIBILITY.as_secs());
        return Err(over_quota(op, VISIBILITY_TIMEOUT, why));
    }
    Ok(())
}

/// Refuses a batch of more than SQS's 10 entries.
fn check_batch_len(op: &'static str, entries: usize) -> Result<(), StoreError> {
    if entries > MAX_BATCH {
        return Err(over_quota(
            op,
            MESSAGE_BATCH,
            format!("{entries} entries, at most {MAX_BATCH}"),
        ));
    }
    Ok(())
}

/// A receipt handle for a receive at `received_at_ms` of the row `row_id`: unique, and
/// carrying the instant of the receive, which bounds the message's visibility (12 hours
/// from it, as in SQS), and the row, found by its key (no index on receipts to keep up).
fn receipt_handle(received_at_ms: i64, row_id: i64) -> String {
    format!("{received_at_ms}.{row_id}.{}", Uuid::new_v4())
}

/// The instant of the receive that issued `receipt_handle` and the row it names (`None`:
/// not one of ours).
fn parse_receipt(receipt_handle: &str) -> Option<(i64, i64)> {
    let mut parts = receipt_handle.splitn(3, '.');
    let received_at_ms = parts.next()?.parse().ok()?;
    let row_id = parts.next()?.parse().ok()?;
    parts.next()?;
    Some((received_at_ms, row_id))
}

/// How many of `queue`'s messages are in flight at `now`: received, not deleted, still hidden.
fn count_in_flight(conn: &Connection, queue: &str, now: i64) -> rusqlite::Result<usize> {
    let sql = "SELECT COUNT(*) FROM messages WHERE queue = ?1 AND visible_at_ms > ?2 AND receipt IS NOT NULL";
    let count: i64 = conn
        .prepare_cached(sql)?
        .query_row(params![queue, now], |row| row.get(0))?;
    Ok(usize::try_from(count).unwrap_or(0))
}

impl EmbeddedQueue {
    /// The queue `name` on `db`.
    pub(super) fn new(db: Arc<Db>, name: &str, settings: QueueSettings) -> Self {
        Self {
            notify: db.notifier(name),
            db,
            name: name.to_owned(),
            dlq: settings.dlq,
            max_receive_count: settings.max_receive_count,
            poll_interval: POLL_INTERVAL,
        }
    }

    /// This queue with long polls that never look again unless a send wakes them, so that a
    /// test can tell a wake-up from a poll without timing either.
    #[cfg(test)]
    fn woken_only_by_sends(mut self) -> Self {
        self.poll_interval = Duration::from_secs(86_400);
        self
    }

    /// Why the message with this id (in any queue) was dead-lettered, if it was. A scan of
    /// the table (message ids are not indexed): for tests and inspection.
    pub async fn dlq_reason(&self, message_id: &str) -> Result<Option<String>, StoreError> {
        self.db.read("queue.dlq_reason", |conn| {
            let sql = "SELECT dlq_reason FROM messages WHERE message_id = ?1";
            Ok(conn
                .query_row(sql, [message_id], |row| row.get::<_, Option<String>>(0))
                .optional()?
                .flatten())
        })
    }

    /// How many of this queue's messages are in flight: received, neither deleted nor
    /// visible again. SQS refuses a receive once a standard queue has [`MAX_IN_FLIGHT`].
    pub async fn in_flight(&self) -> Result<usize, StoreError> {
        self.db.read("queue.in_flight", |conn| {
            Ok(count_in_flight(conn, &self.name, now_ms())?)
        })
    }

    /// One receive without waiting: the messages, and the earliest `visible_at_ms` left in
    /// the queue (for the long poll to know when to look again). A write of the writer
    /// thread, so that concurrent receives and sends share a commit.
    async fn receive_now(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<(Vec<ReceivedMessage>, Option<i64>), StoreError> {
        const OP: &str = "queue.receive";
        let (limit, hide) = (i64::try_from(max.clamp(1, MAX_BATCH)).unwrap_or(1), millis(visibility));
        let (name, dlq, max_receive_count) = (self.name.clone(), self.dlq.clone(), self.max_receive_count);
        let (received, moved, next) = self
            .db
            .write(OP, move |tx| {
                let now = now_ms();
                let in_flight = count_in_flight(tx, &name, now)?;
                if in_flight >= MAX_IN_FLIGHT {
                    let why = format!("{in_flight} messages in flight, at most {MAX_IN_FLIGHT}");
                    return Err(over_quota(OP, IN_FLIGHT, why).into());
                }
                let sql = "SELECT id, message_id, body, receive_count, sent_at_ms FROM messages \
                           WHERE queue = ?1 AND visible_at_ms <= ?2 ORDER BY visible_at_ms, id LIMIT ?3";
                let rows = tx
                    .prepare_cached(sql)?
                    .query_map(params![name, now, limit], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
                    })?
                    .collect::<Result<Vec<(i64, String, String, u32, i64)>, _>>()?;
                let (mut received, mut moved) = (Vec::new(), 0usize);
                for (row_id, message_id, body, count, sent_at_ms) in rows {
                    match &dlq {
                        Some(dlq) if count >= max_receive_count => {
                            moved += dead_letter(tx, row_id, dlq, MAX_RECEIVE_REASON, now)?;
                        }
                        _ => {
                            let receipt = receipt_handle(now, row_id);
                            let sql = "UPDATE messages SET receive_count = receive_count + 1, visible_at_ms = ?1, \
                                       receipt = ?2 WHERE id = ?3";
                            tx.prepare_cached(sql)?
                                .execute(params![now.saturating_add(hide), receipt, row_id])?;
                            received.push(ReceivedMessage {
                                message_id,
                                receipt_handle: receipt,
                                body,
                                receive_count: count.saturating_add(1),
                                sent_at_ms,
                            });
                        }
                    }
                }
                let sql = "SELECT MIN(visible_at_ms) FROM messages WHERE queue = ?1";
                let next: Option<i64> = tx.prepare_cached(sql)?.query_row([&name], |row| row.get(0))?;
                Ok((received, moved, next))
            })
            .await?;
        if let Some(dlq) = &self.dlq
            && moved > 0
        {
            tracing::warn!(queue = %self.name, dlq = %dlq, moved, "{MAX_RECEIVE_REASON}: moved to the DLQ");
            self.db.notifier(dlq).notify_one();
        }
        Ok((received, next))
    }

    /// Deletes the message this receipt handed out; whether there was one.
    fn delete_received(conn: &Connection, queue: &str, receipt_handle: &str) -> rusqlite::Result<bool> {
        let Some((_, row_id)) = parse_receipt(receipt_handle) else {
            return Ok(false);
        };
        let sql = "DELETE FROM messages WHERE id = ?1 AND queue = ?2 AND receipt = ?3";
        Ok(conn
            .prepare_cached(sql)?
            .execute(params![row_id, queue, receipt_handle])?
            > 0)
    }
}

impl QueueSender for EmbeddedQueue {
    async fn send(&self, message: OutgoingMessage) -> Result<(), StoreError> {
        if message.body.len() > MAX_MESSAGE_BYTES {
            let why = format!("{} bytes, at most {MAX_MESSAGE_BYTES}", message.body.len());
            return Err(over_quota("queue.send", MESSAGE_SIZE, why));
        }
        self.send_batch(vec![message])
            .await?
            .into_iter()
            .next()
            .unwrap_or(Ok(()))
    }

    async fn send_batch(&self, messages: Vec<OutgoingMessage>) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        const OP: &str = "queue.send_batch";
        check_batch_len(OP, messages.len())?;
        let payload: usize = messages.iter().map(|m| m.body.len()).sum();
        if payload > MAX_MESSAGE_BYTES {
            return Err(over_quota(
                OP,
                BATCH_PAYLOAD,
                format!("{payload} bytes, at most {MAX_MESSAGE_BYTES}"),
            ));
        }
        let name = self.name.clone();
        let results = self
            .db
            .write(OP, move |tx| {
                let now = now_ms();
                let mut results = Vec::with_capacity(messages.len());
                let sql = "INSERT INTO messages (queue, message_id, body, visible_at_ms, receive_count, sent_at_ms) \
                           VALUES (?1, ?2, ?3, ?4, 0, ?5)";
                let mut insert = tx.prepare_cached(sql)?;
                for message in &messages {
                    if message.delay > MAX_DELAY {
                        let why = format!("{} s, at most {} s", message.delay.as_secs(), MAX_DELAY.as_secs());
                        results.push(Err(over_quota("queue.send", MESSAGE_TIMER, why)));
                        continue;
                    }
                    let visible_at = now.saturating_add(millis(message.delay));
                    insert.execute(params![name, Uuid::new_v4().to_string(), message.body, visible_at, now])?;
                    results.push(Ok(()));
                }
                Ok(results)
            })
            .await?;
        // Queued means on disk (power loss included), before the caller hears it.
        self.db.make_durable(self.db.committed()).await?;
        // One receiver wakes; one that takes a full batch wakes the next (`receive`), so an
        // idle queue's pollers do not all look for each message.
        self.notify.notify_one();
        Ok(results)
    }

    async fn send_dead_letter(&self, body: &str, reason: &str) -> Result<(), StoreError> {
        const OP: &str = "queue.send_dead_letter";
        let Some(dlq) = &self.dlq else {
            let why = format!("queue {} has no dead-letter queue", self.name);
            return Err(StoreError::backend(OP, why));
        };
        // The SQS adapter sends the reason as a message attribute, which counts towards the size.
        let size = body.len() + reason.len();
        if size > MAX_MESSAGE_BYTES {
            return Err(over_quota(
                OP,
                MESSAGE_SIZE,
                format!("{size} bytes, at most {MAX_MESSAGE_BYTES}"),
            ));
        }
        self.db.call(OP, |conn| {
            let sql = "INSERT INTO messages (queue, message_id, body, visible_at_ms, receive_count, dlq_reason, sent_at_ms) \
                       VALUES (?1, ?2, ?3, ?4, 0, ?5, ?4)";
            conn.prepare_cached(sql)?
                .execute(params![dlq, Uuid::new_v4().to_string(), body, now_ms(), reason])?;
            Ok(())
        })?;
        self.db.make_durable(self.db.committed()).await?;
        self.db.notifier(dlq).notify_one();
        Ok(())
    }
}

impl QueueReceiver for EmbeddedQueue {
    async fn receive(
        &self,
        max: usize,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, StoreError> {
        check_visibility("queue.receive", visibility)?;
        if max > MAX_BATCH {
            return Err(over_quota(
                "queue.receive",
                RECEIVE_MAX,
                format!("{max}, at most {MAX_BATCH}"),
            ));
        }
        let start = tokio::time::Instant::now();
        let deadline = start + wait.min(MAX_WAIT);
        loop {
            // Registered before looking, so a send between the look and the wait still wakes us.
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let (received, next_visible_ms) = self.receive_now(max, visibility).await?;
            let now = tokio::time::Instant::now();
            if !received.is_empty() && received.len() >= max {
                // A full batch: there may be more, for the next receiver waiting.
                self.notify.notify_one();
            }
            if !received.is_empty() || now >= deadline {
                return Ok(received);
            }
            let mut wake = deadline.min(now + self.poll_interval);
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
        const OP: &str = "queue.change_visibility";
        check_visibility(OP, visibility)?;
        let visible_at = now_ms().saturating_add(millis(visibility));
        let Some((received_at_ms, row_id)) = parse_receipt(receipt_handle) else {
            return Err(StoreError::BadReceipt);
        };
        // SQS counts the 12 hours from the receive, not from this call.
        let deadline = received_at_ms.saturating_add(millis(MAX_VISIBILITY));
        let changed = self.db.call(OP, |conn| {
            if visible_at > deadline {
                let sql = "SELECT 1 FROM messages WHERE id = ?1 AND queue = ?2 AND receipt = ?3";
                if !conn
                    .prepare_cached(sql)?
                    .exists(params![row_id, self.name, receipt_handle])?
                {
                    return Err(StoreError::BadReceipt.into());
                }
                let why = "hidden until more than 12 hours after its receive";
                return Err(over_quota(OP, VISIBILITY_TIMEOUT, why).into());
            }
            let sql = "UPDATE messages SET visible_at_ms = ?1 WHERE id = ?2 AND queue = ?3 AND receipt = ?4";
            Ok(conn
                .prepare_cached(sql)?
                .execute(params![visible_at, row_id, self.name, receipt_handle])?)
        })?;
        match changed {
            0 => Err(StoreError::BadReceipt),
            _ => {
                self.notify.notify_one();
                Ok(())
            }
        }
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), StoreError> {
        let deleted = self.db.call("queue.delete", |conn| {
            Ok(Self::delete_received(conn, &self.name, receipt_handle)?)
        })?;
        if deleted { Ok(()) } else { Err(StoreError::BadReceipt) }
    }

    async fn delete_batch(&self, receipt_handles: Vec<String>) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        check_batch_len("queue.delete_batch", receipt_handles.len())?;
        let name = self.name.clone();
        self.db
            .write("queue.delete_batch", move |tx| {
                let mut results = Vec::with_capacity(receipt_handles.len());
                for receipt in &receipt_handles {
                    let deleted = Self::delete_received(tx, &name, receipt)?;
                    results.push(if deleted { Ok(()) } else { Err(StoreError::BadReceipt) });
                }
                Ok(results)
            })
            .await
    }

    async fn approximate_len(&self) -> Result<usize, StoreError> {
        let count: i64 = self.db.read("queue.len", |conn| {
            let sql = "SELECT COUNT(*) FROM messages WHERE queue = ?1";
            Ok(conn.query_row(sql, [&self.name], |row| row.get(0))?)
        })?;
        Ok(usize::try_from(count).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::connection::write_tx;
    use crate::embedded::open_temporary;

    const NO_WAIT: Duration = Duration::ZERO;
    const LONG: Duration = Duration::from_secs(30);

    fn message(body: &str, delay_ms: u64) -> OutgoingMessage {
        OutgoingMessage {
            body: body.into(),
            delay: Duration::from_millis(delay_ms),
        }
    }

    #[tokio::test]
    async fn a_delay_hides_the_message_until_it_is_due() {
        let (_dir, store) = open_temporary();
        let queue = store.queue("tasks", QueueSettings::default());
        queue.send(message("later", 300)).await.unwrap();
        assert!(queue.receive(10, LONG, NO_WAIT).await.unwrap().is_empty());
        assert_eq!(queue.approximate_len().await.unwrap(), 1);
        let got = queue.receive(10, LONG, Duration::from_secs(5)).await.unwrap();
        assert_eq!((got.len(), got[0].body.as_str(), got[0].receive_count), (1, "later", 1));
    }

    #[tokio::test]
    async fn a_receipt_naming_another_row_or_without_a_row_deletes_nothing() {
        let (_dir, store) = open_temporary();
        let queue = store.queue("tasks", QueueSettings::default());
        queue.send(message("first", 0)).await.unwrap();
        queue.send(message("second", 0)).await.unwrap();
        let got = queue.receive(10, LONG, NO_WAIT).await.unwrap();
        let (at, row) = parse_receipt(&got[0].receipt_handle).unwrap();
        let (_, other_row) = parse_receipt(&got[1].receipt_handle).unwrap();
        let uuid = got[0].receipt_handle.rsplit('.').next().unwrap();
        let elsewhere = format!("{at}.{other_row}.{uuid}");
        let older_format = format!("{at}.{uuid}");
        for handle in [elsewhere, older_format] {
            assert_eq!(queue.delete(&handle).await, Err(StoreError::BadReceipt), "{handle}");
        }
        assert_eq!(queue.approximate_len().await.unwrap(), 2);
        queue.delete(&got[0].receipt_handle).await.unwrap();
        assert_eq!(queue.approximate_len().await.unwrap(), 1);
        assert_ne!(row, other_row);
    }

    #[tokio::test]
    async fn an_ended_visibility_timeout_hands_the_message_out_again() {
        let (_dir, store) = open_temporary();
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
    async fn messages_go_to_the_dlq_after_max_receives_or_when_sent_there_with_the_reason() {
        let (_dir, store) = open_temporary();
        let settings = QueueSettings {
            dlq: Some("tasks-dlq".into()),
            max_receive_count: 2,
        };
        let queue = store.queue("tasks", settings);
        let dlq = store.queue("tasks-dlq", QueueSettings::default());
        queue.send(message("poison", 0)).await.unwrap();
        for expected in 1..=2 {
            let got = queue.receive(1, Duration::ZERO, NO_WAIT).await.unwrap();
            assert_eq!(got[0].receive_count, expected);
        }
        assert!(queue.receive(1, LONG, NO_WAIT).await.unwrap().is_empty());
        let dead = dlq.receive(1, LONG, NO_WAIT).await.unwrap();
        assert_eq!((dead[0].body.as_str(), dead[0].receive_count), ("poison", 1));
        assert_eq!(
            dlq.dlq_reason(&dead[0].message_id).await.unwrap().as_deref(),
            Some(MAX_RECEIVE_REASON)
        );

        queue.send_dead_letter("bad", "invalid_json").await.unwrap();
        assert_eq!(queue.approximate_len().await.unwrap(), 0);
        let refused = dlq.receive(1, LONG, NO_WAIT).await.unwrap();
        assert_eq!(refused[0].body, "bad");
        assert_eq!(
            queue.dlq_reason(&refused[0].message_id).await.unwrap().as_deref(),
            Some("invalid_json")
        );
        assert!(matches!(
            dlq.send_dead_letter("nowhere", "no dlq").await,
            Err(StoreError::Backend { .. })
        ));
    }

    fn refused_for(result: Result<impl std::fmt::Debug, StoreError>, quota: &str) {
        match result {
            Err(StoreError::Backend { message, .. }) if message.starts_with(quota) => {}
            other => panic!("expected a refusal naming {quota:?}, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn receives_and_batches_over_sqs_limits_are_refused_by_name() {
        let (_dir, store) = open_temporary();
        let queue = store.queue("tasks", QueueSettings::default());
        refused_for(queue.receive(MAX_BATCH + 1, LONG, NO_WAIT).await, RECEIVE_MAX);
        let eleven = (0..=MAX_BATCH).map(|i| message(&i.to_string(), 0)).collect();
        refused_for(queue.send_batch(eleven).await, MESSAGE_BATCH);
        refused_for(queue.delete_batch(vec!["r".into(); MAX_BATCH + 1]).await, MESSAGE_BATCH);
        assert_eq!(queue.approximate_len().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_visibility_is_bounded_by_twelve_hours_from_the_receive_that_issued_the_handle() {
        let (_dir, store) = open_temporary();
        let queue = store.queue("tasks", QueueSettings::default());
        queue.send(message("held", 0)).await.unwrap();
        let received = queue.receive(1, LONG, NO_WAIT).await.unwrap().remove(0);
        let receipt = received.receipt_handle;
        let (received_at, row_id) = parse_receipt(&receipt).expect("the handle carries its receive instant and row");
        while now_ms() <= received_at {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        refused_for(
            queue.change_visibility(&receipt, MAX_VISIBILITY).await,
            VISIBILITY_TIMEOUT,
        );
        let almost = MAX_VISIBILITY - Duration::from_secs(60);
        queue.change_visibility(&receipt, almost).await.unwrap();
        // A handle this queue never issued is a bad receipt, whatever instant it claims.
        let forged = receipt_handle(received_at - 1, row_id);
        assert_eq!(
            queue.change_visibility(&forged, MAX_VISIBILITY).await,
            Err(StoreError::BadReceipt)
        );
    }

    #[tokio::test]
    async fn a_receive_is_refused_once_the_queue_has_its_quota_of_messages_in_flight() {
        let (_dir, store) = open_temporary();
        let queue = store.queue("tasks", QueueSettings::default());
        let hidden_until = now_ms() + 3_600_000;
        queue
            .db
            .call("test.fill", |conn| {
                let tx = write_tx(conn)?;
                {
                    let sql = "INSERT INTO messages (queue, message_id, body, visible_at_ms, receive_count, receipt) \
                               VALUES ('tasks', ?1, 'x', ?2, 1, ?1)";
                    let mut insert = tx.prepare_cached(sql)?;
                    for i in 0..MAX_IN_FLIGHT {
                        insert.execute(params![i.to_string(), hidden_until])?;
                    }
                    // Handles as a receive at instant 0 would have issued them.
                    tx.execute("UPDATE messages SET receipt = '0.' || id || '.filled'", [])?;
                }
                tx.commit()?;
                Ok(())
            })
            .unwrap();
        queue.send(message("one more", 0)).await.unwrap();
        assert_eq!(queue.in_flight().await.unwrap(), MAX_IN_FLIGHT);
        refused_for(queue.receive(1, LONG, NO_WAIT).await, IN_FLIGHT);
        queue.delete("0.1.filled").await.unwrap();
        let got = queue.receive(1, LONG, NO_WAIT).await.unwrap();
        assert_eq!(got[0].body, "one more");
        assert_eq!(queue.in_flight().await.unwrap(), MAX_IN_FLIGHT);
    }

    #[tokio::test]
    async fn a_long_poll_waits_at_most_as_long_as_sqs_allows() {
        let (_dir, store) = open_temporary();
        let queue = store.queue("tasks", QueueSettings::default()).woken_only_by_sends();
        let an_hour = Duration::from_secs(3_600);
        // Fails by this bound only if the poll is not cut to MAX_WAIT.
        let got = tokio::time::timeout(MAX_WAIT * 3, queue.receive(1, LONG, an_hour))
            .await
            .expect("an hour's long poll ends after MAX_WAIT")
            .expect("receive");
        assert!(got.is_empty());
    }

    #[tokio::test]
    async fn a_send_wakes_a_long_poll() {
        let (_dir, store) = open_temporary();
        let queue = store.queue("tasks", QueueSettings::default()).woken_only_by_sends();
        let poller = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.receive(1, LONG, MAX_WAIT).await })
        };
        // Time to look and find nothing first; if it has not, the test proves less but still passes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        queue.send(message("wake", 0)).await.unwrap();
        let got = poller.await.expect("join").expect("receive");
        // Unwoken, the poll would have ended empty after MAX_WAIT.
        assert_eq!(
            got.first().map(|m| m.body.as_str()),
            Some("wake"),
            "the send wakes the long poll"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_send_wakes_one_long_poll_and_each_full_batch_wakes_the_next() {
        let (_dir, store) = open_temporary();
        let queue = store.queue("tasks", QueueSettings::default()).woken_only_by_sends();
        let pollers: Vec<_> = (0..3)
            .map(|_| {
                let queue = queue.clone();
                tokio::spawn(async move { queue.receive(1, LONG, MAX_WAIT).await })
            })
            .collect();
        // Time to look and find nothing first; if they have not, the test proves less but still passes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let batch = ["a", "b", "c"].map(|body| message(body, 0)).to_vec();
        queue.send_batch(batch).await.unwrap();
        let mut bodies = Vec::new();
        for poller in pollers {
            let got = poller.await.expect("join").expect("receive");
            bodies.extend(got.into_iter().map(|m| m.body));
        }
        bodies.sort();
        // A poll left unwoken would have ended empty after MAX_WAIT.
        assert_eq!(
            bodies,
            ["a", "b", "c"],
            "each long poll is woken by the send or the full batch before it"
        );
    }
}
