//! What sealing adds per secret, with the data key cached (the steady state of a
//! container) and with a local unwrap first (a new data key seen). KMS round trips are not
//! measured here: on AWS they happen once per data key per container.
//!
//! Run with `cargo bench -p webhooks-keyring --bench sealing`.

use criterion::{Criterion, criterion_group, criterion_main};
use webhooks_keyring::{KEY_FILE_NAME, Keyring, LocalKeys, SealContext};

/// A subscription's secrets mid-rotation, as the store seals them.
const SECRETS: &[u8] = br#"{"current":"4f1c9a7e2b6d8f0a3c5e7b9d1f2a4c6e8b0d2f4a6c8e0b2d4f6a8c0e2b4d6f8a","previous":{"secret":"whsec-previous-0123456789abcdef","expiresAt":"2026-11-28T00:00:00.000Z"}}"#;

fn sealing(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(KEY_FILE_NAME);
    let keyring = Keyring::local(LocalKeys::load_or_create(&path).unwrap());
    let context = SealContext::new(&[
        "subscription-secrets",
        "m_bench",
        "sub_0123456789abcdef0123456789abcdef",
    ]);
    let sealed = runtime.block_on(keyring.seal(SECRETS, &context)).unwrap();

    c.bench_function("seal (data key cached)", |b| {
        b.iter(|| runtime.block_on(keyring.seal(SECRETS, &context)).unwrap())
    });
    c.bench_function("open (data key cached)", |b| {
        b.iter(|| runtime.block_on(keyring.open(&sealed, &context)).unwrap())
    });
    c.bench_function("open (new keyring: local unwrap + open)", |b| {
        b.iter(|| {
            let fresh = Keyring::local(LocalKeys::load(&path).unwrap());
            runtime.block_on(fresh.open(&sealed, &context)).unwrap()
        })
    });
}

criterion_group!(benches, sealing);
criterion_main!(benches);
