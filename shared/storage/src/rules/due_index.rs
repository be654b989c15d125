//! The due-time index of parked retries: where a task that waits longer than SQS's
//! 15-minute delay is kept until it is due, on both backends.
//!
//! Tasks are spread over [`DUE_INDEX_SHARDS`] shards by a hash of their key, so that the
//! tasks due in one minute are written to (and read from) that many partitions instead of
//! one; within a shard they sort by due instant, then key.

/// How many shards the due-time index has. Changing it strands what is parked in the
/// shards dropped: only raise it.
pub const DUE_INDEX_SHARDS: u32 = 16;

/// The shard of the task named `task_key` (FNV-1a, stable across processes and versions).
pub fn shard_of(task_key: &str) -> u32 {
    let hash = task_key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    u32::try_from(hash % u64::from(DUE_INDEX_SHARDS)).expect("a shard fits in u32")
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
    fn keys_spread_over_every_shard() {
        let mut counts = [0_u32; DUE_INDEX_SHARDS as usize];
        for n in 0..16_000 {
            counts[shard_of(&format!("evt_{n}#sub_1#2")) as usize] += 1;
        }
        assert!(counts.iter().all(|&count| (800..1200).contains(&count)), "{counts:?}");
    }

    #[test]
    fn the_upper_bound_takes_what_is_due_and_nothing_later() {
        let bound = due_upper_bound(1_000);
        assert!(due_sort_key(1_000, "evt#sub#9") <= bound);
        assert!(due_sort_key(999, "zzz") <= bound);
        assert!(due_sort_key(1_001, "") > bound);
    }
}
