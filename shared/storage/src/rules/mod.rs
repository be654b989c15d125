//! The rules every adapter follows, written once: pure functions and key codecs with no
//! I/O, so that the DynamoDB and the embedded adapter only move bytes and stay one
//! behaviour.
//!
//! - [`fan_out_lease`]: what `record_event` does given what is stored for the event id.
//! - [`attempt_key`]: where an attempt sits in a subscription's newest-first log.
//! - [`due_index`]: where a parked retry sits until it is due, and in which shard.
//! - [`shard`]: which of a write-sharded key's partitions a write goes to, and how many.
//! - [`recovery`]: which deliveries found in a recovery's window it claims, and from what.
//! - [`write_conditions`]: what a create or a replace requires, and the error when it does not hold.
//! - [`retention`]: how long events, attempts and statuses are kept, and when each expires.
//! - [`unix_time`]: the unit every stored instant is in.

pub(crate) mod attempt_key;
pub(crate) mod due_index;
pub(crate) mod fan_out_lease;
pub(crate) mod recovery;
pub(crate) mod retention;
pub(crate) mod shard;
pub(crate) mod unix_time;
pub(crate) mod write_conditions;
