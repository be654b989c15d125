//! Write sharding: which of `shards` partitions a key's writes go to, the same in every
//! process and every version, so that a reader that queries every shard finds them.

/// The shard of `key` among `shards` (FNV-1a of its bytes; `shards` of 0 counts as 1).
pub(crate) fn shard_of(key: &str, shards: u32) -> u32 {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    u32::try_from(hash % u64::from(shards.max(1))).expect("a shard fits in u32")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keys_shard_is_stable_and_in_range() {
        assert_eq!(shard_of("evt_1#sub_1#3", 16), shard_of("evt_1#sub_1#3", 16));
        assert!((0..1000).all(|n| shard_of(&format!("evt_{n}"), 7) < 7));
        assert_eq!(shard_of("evt_1", 1), 0);
        assert_eq!(shard_of("evt_1", 0), 0);
    }

    #[test]
    fn keys_spread_evenly_over_the_shards() {
        let mut counts = [0_u32; 16];
        for n in 0..16_000 {
            counts[shard_of(&format!("evt_{n}#sub_1#2"), 16) as usize] += 1;
        }
        assert!(counts.iter().all(|&count| (800..1200).contains(&count)), "{counts:?}");
    }
}
