//! The due-time index of parked retries: where a task that waits longer than SQS's
//! 15-minute delay is kept until it is due, on both backends.
//!
//! Tasks are spread over [`DUE_INDEX_SHARDS`] shards by a hash of their key, so that the
//! tasks due in one minute are written to (and read from) that many partitions instead of
//! one; within a shard they sort by due instant, then key.

/// How many shards the due-time index has. Changing it strands what is parked in the
/// shards dropped: only raise it.
pub const DUE_INDEX_SHARDS: u32 = 16;

/// The shard of the task named `task_key` (`rules::shard`, stable across processes and versions).
pub fn shard_of(task_key: &str) -> u32 {
    super::shard::shard_of(task_key, DUE_INDEX_SHARDS)
}

/// The sort key of a task due at `due_ms` (unix milliseconds): earliest first.
pub fn due_sort_key(due_ms: i64, task_key: &str) -> String {
    format!("{due_ms:013}#{task_key}")
}

/// The smallest sort key of a task due at `since_ms` or later.
pub fn due_lower_bound(since_ms: i64) -> String {
    format!("{:013}", since_ms.max(0))
}

/// The greatest sort key of a task due at `now_ms` or before (`$` sorts after `#`).
pub fn due_upper_bound(now_ms: i64) -> String {
    format!("{now_ms:013}$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tasks_shard_is_stable_and_in_range() {
        assert_eq!(shard_of("evt_1#sub_1#3"), shard_of("evt_1#sub_1#3"));
        assert!((0..1000).all(|n| shard_of(&format!("evt_{n}#sub#2")) < DUE_INDEX_SHARDS));
    }

    #[test]
    fn the_upper_bound_takes_what_is_due_and_nothing_later() {
        let bound = due_upper_bound(1_000);
        assert!(due_sort_key(1_000, "evt#sub#9") <= bound);
        assert!(due_sort_key(999, "zzz") <= bound);
        assert!(due_sort_key(1_001, "") > bound);
    }
}
