//! The retry-schedule parser never panics, and what it accepts prints back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhooks_domain::RetrySchedule;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(schedule) = text.parse::<RetrySchedule>() else { return };
    let again: RetrySchedule = schedule.to_string().parse().expect("a printed schedule parses");
    assert_eq!(again, schedule);
    assert!(schedule.delays().iter().all(|d| !d.is_zero()));
});
