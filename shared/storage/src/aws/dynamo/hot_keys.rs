//! Where the DynamoDB adapter's writes land at 50,000 deliveries a second
//! (`docs/capacity.md`, section 5): a simulation on a fake clock that drives the adapter's
//! own key choices (`keys`, `rules::shard`, `rules::attempt_key`, `rules::due_index`) and
//! deliver's health rule (`webhooks_domain::recent_outcomes`) with three kinds of traffic,
//! once as the code was before the hot keys were fixed and once as it is, and counts the
//! read and write units every partition key takes in every simulated second.
//!
//! What each delivery writes and reads is the adapter's plan, as measured by
//! `tests/tests/aws_requests.rs` and priced by `docs/data-model.md` (section 3): ingest's
//! record and mark of the event (1 + 1 unit), its query of the merchant's subscriptions
//! per batch (0.5 read unit), deliver's read of the subscription per batch (1 read unit),
//! the attempt transaction (2 units for the status, 2 for the attempt, 2 for a hand-off)
//! and the hand-off's delete (1). Run it with
//! `cargo test -p webhooks-storage --lib hot_keys -- --nocapture` for its table.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use webhooks_domain::{IsoTime, RecentOutcomes};

use super::keys;
use crate::rules::attempt_key::attempt_log_shard;
use crate::rules::due_index;
use crate::rules::shard::shard_of;

/// First attempts a second.
const RATE: u64 = 50_000;
/// Simulated seconds, and the first one counted (the 5 s retries are flowing by then).
const SECONDS: u64 = 8;
const COUNTED_FROM: u64 = 6;
/// Deliver containers: `RATE` × 0.5 s a batch / 10 a batch (`docs/capacity.md`, A2).
const CONTAINERS: u64 = 2_500;
/// Failed attempts, per thousand, at random (`docs/capacity.md`, A5).
const FAILED_PER_THOUSAND: u64 = 50;
/// The default schedule's first delay.
const FIRST_RETRY_MS: i64 = 5_000;
/// Merchants of the many-small traffic (5 deliveries a second each).
const SMALL_MERCHANTS: u64 = 10_000;
/// What one partition takes a second (`docs/capacity.md`, section 2).
const PARTITION_WRITE_UNITS: u64 = 1_000;
const PARTITION_READ_UNITS: u64 = 3_000;
/// The simulation's epoch, in unix milliseconds.
const EPOCH_MS: i64 = 1_800_000_000_000;

/// What the code and its settings do about hot keys.
#[derive(Debug, Clone, Copy)]
struct Code {
    name: &'static str,
    /// `WEBHOOKS_SUBSCRIPTION_SHARDS`.
    subscription_shards: u32,
    /// Deliveries per batch (the event source mappings' `BatchSize`).
    batch_size: u64,
    /// Every failure of a healthy endpoint writes its health (and the next success
    /// writes it back), instead of only a container's recent attempts saying it is down.
    health_written_per_failure: bool,
    /// A failing endpoint's probe slots are read before any is written.
    probe_slots_read_first: bool,
}

/// Before: one attempt-log and held partition per subscription, health written per
/// failure, both probe slots tried by every held delivery, the template's batches of 10.
const BEFORE: Code = Code {
    name: "before",
    subscription_shards: 1,
    batch_size: 10,
    health_written_per_failure: true,
    probe_slots_read_first: false,
};
/// After: this code, with the settings `docs/capacity.md` gives for 50,000 a second.
const AFTER: Code = Code {
    name: "after",
    subscription_shards: 192,
    batch_size: 100,
    health_written_per_failure: false,
    probe_slots_read_first: true,
};

/// Who the deliveries go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Traffic {
    /// One merchant, one subscription, 5 % of attempts failing.
    OneBigMerchant,
    /// [`SMALL_MERCHANTS`] merchants with one subscription each, 5 % failing.
    ManySmallMerchants,
    /// One merchant's one subscription, its endpoint down (failing, probes all taken).
    BigEndpointDown,
}

/// Read and write units of one key in one second (reads in half units: a `Query` is
/// eventually consistent).
#[derive(Debug, Default, Clone, Copy)]
struct Units {
    write: u64,
    read_halves: u64,
}

/// Units per key per simulated second.
#[derive(Default)]
struct Tally {
    seconds: Vec<HashMap<String, Units>>,
}

impl Tally {
    fn write(&mut self, at_ms: i64, key: String, units: u64) {
        self.at(at_ms, key).write += units;
    }

    fn read_halves(&mut self, at_ms: i64, key: String, halves: u64) {
        self.at(at_ms, key).read_halves += halves;
    }

    fn at(&mut self, at_ms: i64, key: String) -> &mut Units {
        let second = usize::try_from((at_ms - EPOCH_MS) / 1_000).expect("after the epoch");
        if self.seconds.len() <= second {
            self.seconds.resize_with(second + 1, HashMap::new);
        }
        self.seconds[second].entry(key).or_default()
    }

    /// The counted seconds' busiest key for writes and for reads, and the write units of
    /// the busiest second's total.
    fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for second in &self.seconds[COUNTED_FROM as usize..SECONDS as usize] {
            let total: u64 = second.values().map(|units| units.write).sum();
            summary.total_write_units = summary.total_write_units.max(total);
            for (key, units) in second {
                if units.write > summary.busiest_write.1 {
                    summary.busiest_write = (key.clone(), units.write, total);
                }
                let read = units.read_halves.div_ceil(2);
                if read > summary.busiest_read.1 {
                    summary.busiest_read = (key.clone(), read);
                }
            }
        }
        summary
    }
}

/// What one run found.
#[derive(Debug, Default)]
struct Summary {
    /// Write units in the busiest second.
    total_write_units: u64,
    /// The key with the most write units in one second, those units, and that second's total.
    busiest_write: (String, u64, u64),
    /// The key with the most read units in one second, and those units.
    busiest_read: (String, u64),
}

/// An attempt due at a simulated instant.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at_ms: i64,
    delivery: u64,
    attempt: u32,
}

/// A small deterministic random source (xorshift64*).
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

fn iso(at_ms: i64) -> IsoTime {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000).expect("in range");
    IsoTime::new(at).expect("in range")
}

/// Runs [`SECONDS`] of `traffic` through `code`.
fn simulate(traffic: Traffic, code: Code) -> Summary {
    let mut tally = Tally::default();
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let containers: Vec<RecentOutcomes> = (0..CONTAINERS).map(|_| RecentOutcomes::default()).collect();
    let mut health_dirty: HashMap<u64, bool> = HashMap::new();
    let mut retries: BinaryHeap<Reverse<Due>> = BinaryHeap::new();
    let mut attempts_made: u64 = 0;
    let first_attempts = RATE * SECONDS;
    let mut next_first: u64 = 0;
    loop {
        let first_at = EPOCH_MS + i64::try_from(next_first * 1_000 / RATE).expect("fits");
        let due = match retries.peek() {
            Some(Reverse(retry)) if next_first >= first_attempts || retry.at_ms <= first_at => {
                retries.pop().expect("peeked").0
            }
            _ if next_first < first_attempts => {
                next_first += 1;
                Due {
                    at_ms: first_at,
                    delivery: next_first - 1,
                    attempt: 1,
                }
            }
            _ => break,
        };
        if due.at_ms >= EPOCH_MS + 1_000 * i64::try_from(SECONDS).expect("fits") {
            continue;
        }
        let batch = attempts_made / code.batch_size;
        let container = &containers[usize::try_from(batch % CONTAINERS).expect("fits")];
        let first_of_batch = attempts_made.is_multiple_of(code.batch_size);
        attempts_made += 1;
        let at_ms = due.at_ms;
        let merchant_number = match traffic {
            Traffic::ManySmallMerchants => due.delivery % SMALL_MERCHANTS,
            _ => 0,
        };
        let (merchant, subscription) = (format!("m_{merchant_number}"), format!("sub_{merchant_number}"));
        let endpoint = format!("{merchant}#{subscription}");
        let event_id = format!("evt_{}", due.delivery);
        let task_key = format!("{event_id}#{subscription}#{}", due.attempt);

        if due.attempt == 1 {
            // Ingest: record and mark the event; a query of the merchant's subscriptions per
            // batch (per merchant in it: one big merchant's batch is one query).
            tally.write(at_ms, keys::event_pk(&event_id), 2);
            if first_of_batch || traffic == Traffic::ManySmallMerchants {
                tally.read_halves(at_ms, keys::merchant_pk(&merchant), 1);
            }
        }
        // Deliver reads the subscription once per batch (consistent: 1 unit).
        if first_of_batch || traffic == Traffic::ManySmallMerchants {
            tally.read_halves(at_ms, keys::merchant_pk(&merchant), 2);
        }

        if traffic == Traffic::BigEndpointDown {
            // Failing: a probe slot, then held (its status too). Both slots are in use.
            if code.probe_slots_read_first {
                tally.read_halves(at_ms, keys::probe_pk(&endpoint), 1);
            } else {
                tally.write(at_ms, keys::probe_pk(&endpoint), 2);
            }
            let held = crate::HeldTask::new(at_ms, &task_key, String::new());
            let shard = shard_of(&held.sort_key, code.subscription_shards);
            tally.write(at_ms, keys::held_pk(&endpoint, shard), 1);
            tally.write(at_ms, keys::delivery_pk(&event_id), 1);
            continue;
        }

        let failed = random.below(1_000) < FAILED_PER_THOUSAND;
        // The attempt transaction: status and attempt, and the hand-off of a failure.
        tally.write(at_ms, keys::delivery_pk(&event_id), 2);
        let shard = attempt_log_shard(&event_id, code.subscription_shards);
        tally.write(at_ms, keys::attempts_pk(&merchant, &subscription, shard), 2);
        if failed {
            let due_pk = keys::due_pk(due_index::shard_of(&task_key));
            tally.write(at_ms, due_pk.clone(), 2);
            tally.write(at_ms, due_pk, 1);
            if due.attempt == 1 {
                retries.push(Reverse(Due {
                    at_ms: at_ms + FIRST_RETRY_MS,
                    delivery: due.delivery,
                    attempt: 2,
                }));
            }
        }
        // Endpoint health, on the subscription item.
        let dirty = health_dirty.entry(merchant_number).or_default();
        if code.health_written_per_failure {
            if failed || *dirty {
                tally.write(at_ms, keys::merchant_pk(&merchant), 1);
                *dirty = failed;
            }
        } else if container.record(&endpoint, failed, iso(at_ms)).say_down() {
            tally.write(at_ms, keys::merchant_pk(&merchant), 1);
            *dirty = true;
        } else if !failed && *dirty {
            tally.write(at_ms, keys::merchant_pk(&merchant), 1);
            *dirty = false;
        }
    }
    tally.summary()
}

#[test]
fn no_key_takes_more_than_a_partition_at_50000_deliveries_a_second() {
    println!(
        "| traffic | code | write units/s | busiest key for writes | its units/s (share) | busiest key for reads | its units/s |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for traffic in [
        Traffic::OneBigMerchant,
        Traffic::ManySmallMerchants,
        Traffic::BigEndpointDown,
    ] {
        for code in [BEFORE, AFTER] {
            let summary = simulate(traffic, code);
            let (write_key, write_units, second_total) = &summary.busiest_write;
            let (read_key, read_units) = &summary.busiest_read;
            println!(
                "| {traffic:?} | {} | {} | `{write_key}` | {write_units} ({:.2} %) | `{read_key}` | {read_units} |",
                code.name,
                summary.total_write_units,
                100.0 * *write_units as f64 / *second_total as f64,
            );
            let writes_within = *write_units <= PARTITION_WRITE_UNITS;
            let reads_within = *read_units <= PARTITION_READ_UNITS;
            match (code.name, traffic) {
                // A down endpoint's probe slots are read by every held delivery: the one
                // hot key left (docs/capacity.md, section 10).
                ("after", Traffic::BigEndpointDown) => assert!(writes_within, "{traffic:?}: {summary:?}"),
                ("after", _) => assert!(writes_within && reads_within, "{traffic:?}: {summary:?}"),
                (_, Traffic::ManySmallMerchants) => {}
                _ => assert!(
                    !writes_within,
                    "{traffic:?} before: the simulation finds the hot key: {summary:?}"
                ),
            }
        }
    }
}
