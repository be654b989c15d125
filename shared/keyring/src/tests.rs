use std::os::unix::fs::PermissionsExt;

use super::*;

fn local_keyring(dir: &tempfile::TempDir) -> Keyring {
    Keyring::local(LocalKeys::load_or_create(&dir.path().join(KEY_FILE_NAME)).expect("key file"))
}

fn context() -> SealContext {
    SealContext::new(&["subscription-secrets", "m_1", "sub_1"])
}

#[tokio::test]
async fn a_sealed_secret_opens_for_its_item_and_holds_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = local_keyring(&dir);
    let sealed = keyring.seal(b"whsec-plain-0123456789", &context()).await.unwrap();
    assert!(sealed.starts_with("wsec1.local-"), "{sealed}");
    assert!(!sealed.contains("whsec-plain"));
    assert_eq!(
        keyring.open(&sealed, &context()).await.unwrap().as_slice(),
        b"whsec-plain-0123456789"
    );
    // Sealing twice gives two ciphertexts (random nonces).
    assert_ne!(
        keyring.seal(b"whsec-plain-0123456789", &context()).await.unwrap(),
        sealed
    );
}

#[tokio::test]
async fn a_sealed_secret_moved_to_another_item_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = local_keyring(&dir);
    let sealed = keyring.seal(b"secret", &context()).await.unwrap();
    for other in [
        SealContext::new(&["subscription-secrets", "m_1", "sub_2"]),
        SealContext::new(&["subscription-secrets", "m_2", "sub_1"]),
        SealContext::new(&["auth-callback", "m_1", "sub_1"]),
        // Parts are not concatenated: moving a separator changes the context.
        SealContext::new(&["subscription-secrets", "m_1\",\"sub_1"]),
    ] {
        assert_eq!(keyring.open(&sealed, &other).await, Err(KeyringError::Unauthentic));
    }
}

#[tokio::test]
async fn every_flipped_bit_of_a_sealed_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = local_keyring(&dir);
    let sealed = keyring.seal(b"secret", &context()).await.unwrap();
    let envelope = Envelope::decode(&sealed).unwrap();
    for byte in 0..envelope.sealed.len() {
        for bit in 0..8 {
            let mut tampered = envelope.clone();
            tampered.sealed[byte] ^= 1 << bit;
            let result = keyring.open(&tampered.encode(), &context()).await;
            assert_eq!(result, Err(KeyringError::Unauthentic), "byte {byte} bit {bit}");
        }
    }
    let mut wrapped_tampered = envelope.clone();
    wrapped_tampered.wrapped_key[20] ^= 1;
    // Another wrapped key is another cache entry: unwrapping it fails.
    assert_eq!(
        keyring.open(&wrapped_tampered.encode(), &context()).await,
        Err(KeyringError::Unauthentic)
    );
    let mut truncated = envelope;
    truncated.sealed.truncate(20);
    assert!(keyring.open(&truncated.encode(), &context()).await.is_err());
}

#[tokio::test]
async fn another_key_file_does_not_open_and_says_which_key_is_missing() {
    let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sealed = local_keyring(&ours).seal(b"secret", &context()).await.unwrap();
    let result = local_keyring(&theirs).open(&sealed, &context()).await;
    assert!(
        matches!(result, Err(KeyringError::UnknownKey(ref key)) if key.starts_with("local-")),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_forged_key_id_does_not_open_with_another_key() {
    let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sealed = local_keyring(&ours).seal(b"secret", &context()).await.unwrap();
    let their_keyring = local_keyring(&theirs);
    let their_id = LocalKeys::load(&theirs.path().join(KEY_FILE_NAME))
        .unwrap()
        .current_id()
        .to_owned();
    let mut forged = Envelope::decode(&sealed).unwrap();
    forged.provider = local::provider_tag(&their_id);
    assert_eq!(
        their_keyring.open(&forged.encode(), &context()).await,
        Err(KeyringError::Unauthentic)
    );
}

#[tokio::test]
async fn a_new_key_seals_while_the_old_one_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(KEY_FILE_NAME);
    let before = local_keyring(&dir).seal(b"old", &context()).await.unwrap();
    let new_id = LocalKeys::add_key(&path).unwrap();
    let keyring = local_keyring(&dir);
    let after = keyring.seal(b"new", &context()).await.unwrap();
    assert!(after.starts_with(&format!("wsec1.local-{new_id}.")), "{after}");
    assert_eq!(keyring.open(&before, &context()).await.unwrap().as_slice(), b"old");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
}

#[tokio::test]
async fn the_key_file_is_created_0600_and_refused_when_others_may_read_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(KEY_FILE_NAME);
    LocalKeys::load_or_create(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = LocalKeys::load(&path).map(|_| ()).unwrap_err();
    assert!(refused.to_string().contains("chmod 600"), "{refused}");
}

#[tokio::test]
async fn one_data_key_seals_many_secrets_and_is_unwrapped_once_per_process() {
    let dir = tempfile::tempdir().unwrap();
    let writer = local_keyring(&dir);
    let mut sealed = Vec::new();
    for n in 0..200 {
        let item = SealContext::new(&["subscription-secrets", "m_1", &format!("sub_{n}")]);
        sealed.push((
            writer.seal(format!("secret-{n}").as_bytes(), &item).await.unwrap(),
            item,
        ));
    }
    assert_eq!(writer.stats().data_keys_generated, 1);
    // Another process (a deliver container) opens them all with one unwrap.
    let reader = local_keyring(&dir);
    let opens = sealed.iter().map(|(stored, item)| reader.open(stored, item));
    for (n, opened) in futures::future::join_all(opens).await.into_iter().enumerate() {
        assert_eq!(opened.unwrap().as_slice(), format!("secret-{n}").as_bytes());
    }
    assert_eq!(
        reader.stats(),
        KeyringStats {
            data_keys_generated: 0,
            data_keys_unwrapped: 1
        }
    );
}

#[tokio::test]
async fn a_withheld_keyring_neither_seals_nor_opens() {
    let dir = tempfile::tempdir().unwrap();
    let sealed = local_keyring(&dir).seal(b"secret", &context()).await.unwrap();
    let withheld = Keyring::withheld();
    assert_eq!(
        withheld.seal(b"x", &context()).await,
        Err(KeyringError::Withheld("seal"))
    );
    assert_eq!(
        withheld.open(&sealed, &context()).await,
        Err(KeyringError::Withheld("open"))
    );
}

#[test]
fn a_keyring_debug_names_its_key_and_nothing_secret() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = local_keyring(&dir);
    let file = std::fs::read_to_string(dir.path().join(KEY_FILE_NAME)).unwrap();
    let key_hex = file.split_whitespace().nth(1).unwrap();
    let shown = format!("{keyring:?}");
    assert!(shown.starts_with("Keyring { source: \"local:"), "{shown}");
    assert!(!shown.contains(key_hex));
}
