//! `judge_auth_answer` never panics, allows only 2xx answers, and always gives a reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhooks_domain::judge_auth_answer;

fuzz_target!(|data: &[u8]| {
    let Some((status, body)) = data.split_first_chunk::<2>() else { return };
    let status = u16::from_be_bytes(*status) % 600;
    let verdict = judge_auth_answer(status, body);
    assert!(!verdict.reason.is_empty());
    if verdict.allowed {
        assert!((200..300).contains(&status));
        assert_eq!(verdict.reason, "allowed");
    }
});
