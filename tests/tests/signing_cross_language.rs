//! Our signatures verify where merchants verify them: Node's `JSON.stringify` and
//! `crypto.createHmac`, and the npm and PyPI Standard Webhooks libraries.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use webhooks_signing::VerifyError;
use webhooks_signing::js_json::stringify;
use webhooks_signing::seed::{SeedPayload, sign_json};
use webhooks_signing::standard::{self, signature_header, standard_webhooks_secret};
use webhooks_tests::verifiers::{node, python};

const SECRET: &str = "whsec-test-secret-0123456789abcdef";

/// Strings that stress every escaping rule, then random ones built from the same pieces.
fn tricky_strings(rng: &mut StdRng) -> Vec<String> {
    let mut strings: Vec<String> = (0u8..0x20).map(|c| format!("ctl{}end", c as char)).collect();
    strings.extend(
        [
            "",
            "plain",
            "quote\"inside",
            "back\\slash",
            "slash/",
            "\u{7f}del",
            "line\u{2028}sep",
            "para\u{2029}sep",
            "emoji 😀🎉👩‍👩‍👧",
            "ünïcödé Ω 中文 العربية",
            "\u{feff}bom",
            "\u{fffd}",
            "tab\there",
            "nul\u{0}here",
            "\"\\\"\\\\",
            "</script>",
            "\u{10ffff}",
        ]
        .map(String::from),
    );
    strings.push("long ".repeat(5_000));
    let pieces = [
        "a", "\"", "\\", "\n", "\u{1}", "\u{1f}", "\u{2028}", "😀", "é", "/", " ", "\u{7f}", "中",
    ];
    for _ in 0..120 {
        let len = rng.random_range(1..40);
        strings.push((0..len).map(|_| pieces[rng.random_range(0..pieces.len())]).collect());
    }
    strings
}

fn tricky_numbers() -> Vec<Value> {
    [
        json!(0),
        json!(-0.0),
        json!(0.1),
        json!(0.2 + 0.1),
        json!(1e21),
        json!(1e-7),
        json!(1e-6),
        json!(123456789012345680000.0),
        json!(9_007_199_254_740_993u64),
        json!(-9_007_199_254_740_993i64),
        json!(u64::MAX),
        json!(f64::MAX),
        json!(f64::MIN_POSITIVE),
        json!(5e-324),
        json!(-1.5),
        json!(100),
        json!(1e300),
        json!(0.000001),
        json!(0.0000001),
        json!(1.7976931348623157e308),
        json!(2.5e-8),
        json!(4.35),
        json!(1e20),
        json!(123e-20),
    ]
    .into()
}

/// At least 200 payloads: the seed's three fields with tricky strings, then values of every shape.
fn payloads() -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(2026);
    let strings = tricky_strings(&mut rng);
    let numbers = tricky_numbers();
    let mut payloads: Vec<Value> = strings
        .iter()
        .map(|s| json!({"eventName": "crypto_delivered", "orderId": s, "timeStamp": "2022-10-26T22:36:41.658Z"}))
        .collect();
    payloads.extend(
        numbers
            .iter()
            .map(|n| json!({"eventName": "payment_received", "amount": n})),
    );
    for i in 0..40 {
        let key = &strings[i % strings.len()];
        payloads.push(json!({
            key.clone(): numbers[i % numbers.len()],
            "nested": [strings[(i * 7) % strings.len()], {"n": numbers[(i * 3) % numbers.len()], "b": i % 2 == 0}, null],
            "z_then_a": {"z": 1, "a": 2},
        }));
    }
    assert!(payloads.len() >= 200, "only {} payloads", payloads.len());
    payloads
}

#[test]
fn our_json_and_hmac_equal_nodes_for_every_payload() {
    let payloads = payloads();
    let texts: Vec<String> = payloads.iter().map(|p| serde_json::to_string(p).unwrap()).collect();
    let answers = node("stringify", &json!({"secret": SECRET, "payloads": texts}));
    let answers = answers.as_array().expect("node answers an array");
    assert_eq!(answers.len(), payloads.len());
    for (payload, answer) in payloads.iter().zip(answers) {
        let ours = stringify(payload);
        assert_eq!(
            ours,
            answer["json"].as_str().unwrap(),
            "JSON.stringify differs for {payload}"
        );
        assert_eq!(
            sign_json(SECRET.as_bytes(), &ours),
            answer["hex"].as_str().unwrap(),
            "HMAC differs for {payload}"
        );
    }
}

#[test]
fn seed_bodies_verify_with_the_seed_snippet_in_node() {
    let mut rng = StdRng::seed_from_u64(7);
    let strings = tricky_strings(&mut rng);
    let stamps: Vec<String> = strings.iter().map(|_| "2022-10-26T22:36:41.658Z".to_owned()).collect();
    let mut bodies: Vec<String> = strings
        .iter()
        .zip(&stamps)
        .map(|(order_id, time_stamp)| {
            SeedPayload {
                event_name: "crypto_tx_failed",
                order_id,
                time_stamp,
            }
            .signed_body(SECRET.as_bytes())
        })
        .collect();
    let tampered = bodies[30].replace("crypto_tx_failed", "crypto_delivered");
    bodies.push(tampered);
    let verdicts = node("seed-verify", &json!({"secret": SECRET, "bodies": bodies}));
    let verdicts: Vec<bool> = serde_json::from_value(verdicts).unwrap();
    let (last, all_ours) = verdicts.split_last().unwrap();
    assert!(
        all_ours.iter().all(|ok| *ok),
        "node rejected some of our bodies: {verdicts:?}"
    );
    assert!(!last, "node accepted a tampered body");
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Bodies and ids of the kind deliver sends, with headers signed by us.
fn our_signed_messages(keys: &[&str]) -> Vec<Value> {
    let timestamp = now();
    (0..20)
        .map(|i| {
            let body = SeedPayload {
                event_name: "payment_received",
                order_id: &format!("order-{i}-é\"😀"),
                time_stamp: "2022-10-26T22:36:41.658Z",
            }
            .signed_body(keys[0].as_bytes());
            let id = format!("0b7c2a52-3f52-5d6b-9a4e-{i:012}");
            let signature = signature_header(
                &keys.iter().map(|k| k.as_bytes()).collect::<Vec<_>>(),
                &id,
                timestamp,
                body.as_bytes(),
            );
            json!({"id": id, "timestamp": timestamp, "signature": signature, "body": body})
        })
        .collect()
}

#[test]
fn our_headers_verify_with_the_npm_and_pypi_libraries() {
    let messages = our_signed_messages(&[SECRET]);
    let request = json!({"secret": standard_webhooks_secret(SECRET), "messages": messages});
    for (library, answers) in [
        ("npm", node("sw-verify", &request)),
        ("PyPI", python("sw-verify", &request)),
    ] {
        let answers: Vec<String> = serde_json::from_value(answers).unwrap();
        assert!(
            answers.iter().all(|a| a == "ok"),
            "{library} standardwebhooks rejected ours: {answers:?}"
        );
    }
}

#[test]
fn our_headers_verify_with_the_rust_crate() {
    let webhook = standardwebhooks::Webhook::new(&standard_webhooks_secret(SECRET)).unwrap();
    for message in our_signed_messages(&[SECRET]) {
        let mut headers = http::HeaderMap::new();
        headers.insert("webhook-id", message["id"].as_str().unwrap().parse().unwrap());
        headers.insert("webhook-timestamp", message["timestamp"].to_string().parse().unwrap());
        headers.insert(
            "webhook-signature",
            message["signature"].as_str().unwrap().parse().unwrap(),
        );
        let body = message["body"].as_str().unwrap().as_bytes();
        assert!(
            webhook.verify(body, &headers).is_ok(),
            "the Rust crate rejected {message}"
        );
        assert!(
            webhook.verify(b"{}", &headers).is_err(),
            "the Rust crate accepted a tampered body"
        );
    }
}

#[test]
fn during_rotation_both_secrets_verify_with_the_libraries() {
    let messages = our_signed_messages(&["new-secret-0123456789", "old-secret-0123456789"]);
    for secret in ["new-secret-0123456789", "old-secret-0123456789"] {
        let request = json!({"secret": standard_webhooks_secret(secret), "messages": messages});
        for answers in [node("sw-verify", &request), python("sw-verify", &request)] {
            let answers: Vec<String> = serde_json::from_value(answers).unwrap();
            assert!(answers.iter().all(|a| a == "ok"), "secret {secret}: {answers:?}");
        }
    }
}

#[test]
fn libraries_reject_what_we_tampered() {
    let mut messages = our_signed_messages(&[SECRET]);
    messages[0]["body"] = json!("{\"eventName\":\"crypto_delivered\"}");
    messages[1]["id"] = json!("another-id");
    messages[2]["timestamp"] = json!(now() - 3600);
    let request = json!({"secret": standard_webhooks_secret(SECRET), "messages": &messages[..3]});
    for answers in [node("sw-verify", &request), python("sw-verify", &request)] {
        let answers: Vec<String> = serde_json::from_value(answers).unwrap();
        assert!(
            answers.iter().all(|a| a != "ok"),
            "a tampered message verified: {answers:?}"
        );
    }
}

#[test]
fn library_signatures_verify_with_ours_and_tampering_is_rejected() {
    let timestamp = now();
    let messages: Vec<Value> = (0..20)
        .map(|i| json!({"id": format!("msg_{i}"), "timestamp": timestamp, "body": format!("{{\"n\":{i},\"s\":\"é😀\\\"\"}}")}))
        .collect();
    let request = json!({"secret": standard_webhooks_secret(SECRET), "messages": messages});
    let key = SECRET.as_bytes();
    for (library, signatures) in [
        ("npm", node("sw-sign", &request)),
        ("PyPI", python("sw-sign", &request)),
    ] {
        let signatures: Vec<String> = serde_json::from_value(signatures).unwrap();
        for (message, signature) in messages.iter().zip(&signatures) {
            let id = message["id"].as_str().unwrap();
            let body = message["body"].as_str().unwrap().as_bytes();
            let ts = timestamp.to_string();
            let verify = |key: &[u8], body: &[u8], now: i64| standard::verify(key, id, &ts, signature, body, now, 300);
            assert_eq!(
                verify(key, body, timestamp),
                Ok(()),
                "{library}: {signature} for {message}"
            );
            assert_eq!(
                verify(key, b"{\"n\":0}", timestamp),
                Err(VerifyError::Mismatch),
                "{library}: tampered body"
            );
            assert_eq!(
                verify(b"wrong-secret", body, timestamp),
                Err(VerifyError::Mismatch),
                "{library}: wrong secret"
            );
            assert!(
                matches!(
                    verify(key, body, timestamp + 301),
                    Err(VerifyError::StaleTimestamp { .. })
                ),
                "{library}: stale timestamp"
            );
        }
    }
}
