//! Write sharding: which of `shards` partitions a key's writes go to, the same in every
//! process and every version, so that a reader that queries every shard finds them.
//!
//! On DynamoDB a subscription's busiest keys are sharded: its attempt log
//! (`rules::attempt_key`) and, while its endpoint fails, its held deliveries. One partition
//! takes at most 1,000 write units a second; an attempt costs 2 in its transaction, a held
//! delivery 1.

/// The shards of a subscription's busiest keys a DynamoDB deployment writes unless told
/// otherwise (`WEBHOOKS_SUBSCRIPTION_SHARDS`): about 8 × 300 = 2,400 attempts a second to
/// one subscription with its busiest partition under 1,000 write units in every second
/// (at 410 a shard on average, the busiest of 128 took 470 in some second:
/// `aws::dynamo::hot_keys`).
pub const DEFAULT_SUBSCRIPTION_SHARDS: u32 = 8;
/// The most shards: a listing page reads every shard.
pub const MAX_SUBSCRIPTION_SHARDS: u32 = 1024;

/// The shard of `key` among `shards` (`shards` of 0 counts as 1): FNV-1a of its bytes,
/// then mixed (MurmurHash3's 64-bit finalizer), because FNV's low bits depend only on the
/// low bits of each byte, so keys that differ in a few digits and end alike (`evt_1#sub#2`,
/// `evt_2#sub#2`, ...) would crowd into some shards.
pub(crate) fn shard_of(key: &str, shards: u32) -> u32 {
    let fnv = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut hash = fnv ^ (fnv >> 33);
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^= hash >> 33;
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
    fn keys_that_differ_in_a_few_digits_spread_evenly_over_the_shards() {
        let mut counts = [0_u32; 16];
        for n in 0..16_000 {
            counts[shard_of(&format!("evt_{n}#sub_1#2"), 16) as usize] += 1;
        }
        assert!(counts.iter().all(|&count| (900..1100).contains(&count)), "{counts:?}");
    }
}
