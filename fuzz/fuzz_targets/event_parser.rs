//! The platform-event parser never panics, and what it accepts round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhooks_domain::PlatformEvent;

fuzz_target!(|data: &[u8]| {
    let now = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
    if let Ok(event) = PlatformEvent::parse(data, now) {
        let again = PlatformEvent::parse(serde_json::to_string(&event).unwrap().as_bytes(), now).unwrap();
        assert_eq!(again, event);
    }
});
