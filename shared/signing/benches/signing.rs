//! Signing a typical event with each scheme, next to a raw HMAC-SHA256 of the same bytes.
//!
//! Run with `cargo bench -p webhooks-signing --bench signing`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use webhooks_signing::seed::SeedPayload;
use webhooks_signing::{hmac_sha256_digest, standard};

const SECRET: &[u8] = b"3f1c9a0d2b7e4f6a8c5d1e0f9a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b";
const PAYLOAD: SeedPayload<'static> = SeedPayload {
    event_name: "crypto_delivered",
    order_id: "5a3288ea-0bd4-44d2-af11-aae1f88bbd61",
    time_stamp: "2022-10-26T22:36:41.658Z",
};
const EVENT_ID: &str = "0b7c2a52-3f52-5d6b-9a4e-2f0e6c1d8a77";
const TIMESTAMP: i64 = 1_666_823_801;

fn signing(c: &mut Criterion) {
    let signed_json = PAYLOAD.signed_json();
    let body = PAYLOAD.signed_body(SECRET);
    let standard_content = format!("{EVENT_ID}.{TIMESTAMP}.{body}");

    c.bench_function("raw_hmac_sha256/seed_payload", |b| {
        b.iter(|| hmac_sha256_digest(black_box(SECRET), black_box(signed_json.as_bytes())))
    });
    c.bench_function("seed/signed_body", |b| {
        b.iter(|| black_box(PAYLOAD).signed_body(black_box(SECRET)))
    });
    c.bench_function("raw_hmac_sha256/standard_content", |b| {
        b.iter(|| hmac_sha256_digest(black_box(SECRET), black_box(standard_content.as_bytes())))
    });
    c.bench_function("standard/signature_header", |b| {
        b.iter(|| {
            standard::sign(
                black_box(SECRET),
                black_box(EVENT_ID),
                TIMESTAMP,
                black_box(body.as_bytes()),
            )
        })
    });
}

criterion_group!(benches, signing);
criterion_main!(benches);
