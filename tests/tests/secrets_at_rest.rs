//! Secrets at rest (DESIGN section 3): signing secrets and auth-callback credentials are
//! sealed before they reach the SQLite file or the DynamoDB table, open only with the right
//! key for the right item, and `reseal_merchant` seals what an older version left in clear.

use std::path::Path;

use aws_sdk_dynamodb::types::AttributeValue;
use webhooks_domain::{AuthCallbackConfig, AuthMethod, EventName, IsoTime, SigningSecrets, Subscription};
use webhooks_storage::embedded::EmbeddedStore;
use webhooks_storage::{
    AuthCallbackStore, KEY_FILE_NAME, Keyring, LocalKeys, PageRequest, SecretsAtRest, StoreError, SubscriptionStore,
};
use webhooks_tests::moto::MotoDeployment;

const MERCHANT: &str = "m_sealed";

/// Every secret the items below hold, each unlike anything else stored.
const SECRETS: [&str; 8] = [
    "whsec-current-7f3a9c1e5b",
    "whsec-previous-2d8e4f6a1c",
    "bearer-token-9b7d5f3e1a",
    "basic-password-4c6e8a2b0d",
    "apikey-value-1a3c5e7b9d",
    "oauth-client-secret-8f6d4b2e0c",
    "hmac-callback-secret-3e5a7c9b1f",
    "hmac-other-merchant-6b8d0f2a4c",
];

fn at(text: &str) -> IsoTime {
    IsoTime::parse_rfc3339(text).unwrap()
}

fn subscription(id: &str) -> Subscription {
    Subscription {
        id: id.into(),
        merchant_id: MERCHANT.into(),
        url: format!("https://merchant.example/hooks/{id}"),
        events: EventName::ALL.to_vec(),
        description: String::new(),
        enabled: true,
        rate_limit_per_second: None,
        created_at: at("2026-11-01T00:00:00Z"),
        updated_at: at("2026-11-01T00:00:00Z"),
        version: 0,
        health: Default::default(),
    }
}

/// Secrets mid-rotation: both the current and the previous one are at rest.
fn rotating_secrets() -> SigningSecrets {
    let mut secrets = SigningSecrets::new(Some(SECRETS[1].into()));
    secrets.rotate(at("2026-11-27T00:00:00Z"));
    secrets.current = SECRETS[0].into();
    secrets
}

fn config(auth: AuthMethod) -> AuthCallbackConfig {
    AuthCallbackConfig {
        url: "https://merchant.example/auth".into(),
        auth,
        timeout_ms: None,
        cache_ttl_seconds: None,
        revision: "rev-1".into(),
    }
}

/// One item of each kind that holds a secret, every auth type with credentials included
/// (one merchant per type, as a merchant has one configuration).
fn configs() -> Vec<(String, AuthCallbackConfig)> {
    [
        AuthMethod::Bearer {
            token: SECRETS[2].into(),
        },
        AuthMethod::Basic {
            username: "user".into(),
            password: SECRETS[3].into(),
        },
        AuthMethod::ApiKey {
            header: "x-api-key".into(),
            value: SECRETS[4].into(),
        },
        AuthMethod::Oauth2ClientCredentials {
            token_url: "https://merchant.example/token".into(),
            client_id: "client".into(),
            client_secret: SECRETS[5].into(),
            scope: Some("auth".into()),
        },
        AuthMethod::Hmac {
            secret: SECRETS[6].into(),
        },
    ]
    .into_iter()
    .enumerate()
    .map(|(n, auth)| (format!("{MERCHANT}_{n}"), config(auth)))
    .collect()
}

/// Writes every item, then reads each back with its secrets: what was sealed opens.
async fn write_and_read_back<S: SubscriptionStore + AuthCallbackStore>(store: &S) {
    let sub = subscription("sub_sealed");
    store.create_subscription(&sub, &rotating_secrets()).await.unwrap();
    let other = subscription("sub_other");
    store
        .create_subscription(&other, &SigningSecrets::new(Some(SECRETS[7].into())))
        .await
        .unwrap();
    for (merchant, config) in configs() {
        store.put_auth_callback(&merchant, &config).await.unwrap();
    }

    let read = store
        .get_subscription_with_secrets(MERCHANT, "sub_sealed")
        .await
        .unwrap();
    assert_eq!(read, Some((sub.clone(), rotating_secrets())));
    assert_eq!(store.get_subscription(MERCHANT, "sub_sealed").await.unwrap(), Some(sub));
    let listed = store
        .list_subscriptions(MERCHANT, PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    for (merchant, config) in configs() {
        assert_eq!(store.get_auth_callback(&merchant).await.unwrap(), Some(config));
    }
}

/// Which of [`SECRETS`] appear in `bytes`.
fn secrets_in(bytes: &[u8]) -> Vec<&'static str> {
    SECRETS
        .into_iter()
        .filter(|secret| bytes.windows(secret.len()).any(|window| window == secret.as_bytes()))
        .collect()
}

/// Every byte of every file in `dir` but the key file: the database, its WAL and shared memory.
fn data_files(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|name| name != KEY_FILE_NAME) {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

mod embedded {
    use super::*;

    fn open(dir: &Path) -> EmbeddedStore {
        EmbeddedStore::open(&dir.join("local.db")).unwrap()
    }

    #[tokio::test]
    async fn no_secret_is_in_the_bytes_of_the_sqlite_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        write_and_read_back(&store).await;
        drop(store);
        let bytes = data_files(dir.path());
        assert!(bytes.len() > 4096, "the files hold the data");
        assert_eq!(secrets_in(&bytes), Vec::<&str>::new());
        // The same search finds what is there: the URLs.
        assert!(bytes.windows(24).any(|w| w == b"https://merchant.example"));
    }

    #[tokio::test]
    async fn another_key_opens_nothing_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        write_and_read_back(&open(dir.path())).await;
        let other_keys = tempfile::tempdir().unwrap();
        let keys = LocalKeys::load_or_create(&other_keys.path().join(KEY_FILE_NAME)).unwrap();
        let stranger = EmbeddedStore::open_with_keyring(&dir.path().join("local.db"), Keyring::local(keys)).unwrap();
        let refused = stranger.get_subscription_with_secrets(MERCHANT, "sub_sealed").await;
        assert!(
            matches!(&refused, Err(StoreError::Corrupt(reason)) if reason.contains("does not hold")),
            "{refused:?}"
        );
        let refused = stranger.get_auth_callback(&configs()[0].0).await;
        assert!(matches!(refused, Err(StoreError::Corrupt(_))), "{refused:?}");
        // What holds no secret still reads.
        assert!(
            stranger
                .get_subscription(MERCHANT, "sub_sealed")
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_tampered_or_moved_ciphertext_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        write_and_read_back(&store).await;
        let sealed_of = |id: &str| -> String {
            let db = rusqlite::Connection::open(dir.path().join("local.db")).unwrap();
            let json: String = db
                .query_row("SELECT json FROM subscriptions WHERE id = ?1", [id], |row| row.get(0))
                .unwrap();
            serde_json::from_str::<serde_json::Value>(&json).unwrap()["sealedSecrets"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let replace_sealed = |id: &str, sealed: &str| {
            let db = rusqlite::Connection::open(dir.path().join("local.db")).unwrap();
            let sql = "UPDATE subscriptions SET json = json_set(json, '$.sealedSecrets', ?2) WHERE id = ?1";
            db.execute(sql, [id, sealed]).unwrap();
        };
        let original = sealed_of("sub_sealed");
        // One character of the ciphertext changed.
        let mut tampered = original.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        replace_sealed("sub_sealed", std::str::from_utf8(&tampered).unwrap());
        let refused = store.get_subscription_with_secrets(MERCHANT, "sub_sealed").await;
        assert!(
            matches!(&refused, Err(StoreError::Corrupt(reason)) if reason.contains("failed authentication")),
            "{refused:?}"
        );
        // Another subscription's sealed secrets, copied in whole, do not open here.
        replace_sealed("sub_sealed", &sealed_of("sub_other"));
        let refused = store.get_subscription_with_secrets(MERCHANT, "sub_sealed").await;
        assert!(matches!(refused, Err(StoreError::Corrupt(_))), "{refused:?}");
        // Put back, it opens again.
        replace_sealed("sub_sealed", &original);
        let (_, secrets) = store
            .get_subscription_with_secrets(MERCHANT, "sub_sealed")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(secrets, rotating_secrets());
    }

    #[tokio::test]
    async fn reseal_seals_what_an_older_version_left_in_clear_and_moves_to_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        {
            let db = rusqlite::Connection::open(dir.path().join("local.db")).unwrap();
            let legacy = format!(
                r#"{{"id":"sub_legacy","merchantId":"{MERCHANT}","url":"https://merchant.example/hooks",
                "events":["payment_received"],"description":"","enabled":true,"version":0,
                "createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z",
                "secrets":{{"current":"{}"}}}}"#,
                SECRETS[0]
            );
            db.execute(
                "INSERT INTO subscriptions (merchant_id, id, enabled, events, json) VALUES (?1, 'sub_legacy', 1, ',payment_received,', ?2)",
                [MERCHANT, &legacy],
            )
            .unwrap();
            let config = format!(
                r#"{{"url":"https://merchant.example/auth","auth":{{"type":"bearer","token":"{}"}}}}"#,
                SECRETS[2]
            );
            db.execute(
                "INSERT INTO auth_callbacks (merchant_id, json) VALUES (?1, ?2)",
                [MERCHANT, &config],
            )
            .unwrap();
        }
        assert_eq!(secrets_in(&data_files(dir.path())), [SECRETS[0], SECRETS[2]]);
        assert_eq!(store.reseal_merchant(MERCHANT).await.unwrap(), 2);
        assert_eq!(store.reseal_merchant("m_nobody").await.unwrap(), 0);
        let (_, secrets) = store
            .get_subscription_with_secrets(MERCHANT, "sub_legacy")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(secrets.current, SECRETS[0]);
        drop(store);
        // Vacuumed, so that freed pages with the old rows are gone too.
        rusqlite::Connection::open(dir.path().join("local.db"))
            .unwrap()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")
            .unwrap();
        assert_eq!(secrets_in(&data_files(dir.path())), Vec::<&str>::new());

        // A new key seals; after a reseal, only the new key is needed.
        let key_file = dir.path().join(KEY_FILE_NAME);
        LocalKeys::add_key(&key_file).unwrap();
        let store = open(dir.path());
        assert_eq!(store.reseal_merchant(MERCHANT).await.unwrap(), 2);
        let new_key_only = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(&key_file).unwrap();
        let only = new_key_only.path().join(KEY_FILE_NAME);
        std::fs::write(&only, text.lines().next().unwrap()).unwrap();
        std::fs::set_permissions(&only, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let keyring = Keyring::local(LocalKeys::load(&only).unwrap());
        let reopened = EmbeddedStore::open_with_keyring(&dir.path().join("local.db"), keyring).unwrap();
        let (_, secrets) = reopened
            .get_subscription_with_secrets(MERCHANT, "sub_legacy")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(secrets.current, SECRETS[0]);
        assert!(reopened.get_auth_callback(MERCHANT).await.unwrap().is_some());
    }
}

mod aws_on_moto {
    use super::*;

    /// Every item of the table, as a full scan returns it, formatted.
    async fn scan_everything(deployment: &MotoDeployment) -> String {
        let client =
            aws_sdk_dynamodb::Client::new(&webhooks_storage::aws::sdk_config_for_endpoint(deployment.endpoint()));
        let mut items = Vec::new();
        let mut start: Option<std::collections::HashMap<String, AttributeValue>> = None;
        loop {
            let page = client
                .scan()
                .table_name(&deployment.names.table)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .unwrap();
            items.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        assert!(items.len() >= 7, "the scan sees the items: {}", items.len());
        format!("{items:?}")
    }

    #[tokio::test]
    async fn no_secret_is_in_a_full_table_scan_and_kms_is_called_once_per_data_key() {
        let deployment = MotoDeployment::start().await;
        write_and_read_back(&deployment.store).await;
        let scanned = scan_everything(&deployment).await;
        assert_eq!(secrets_in(scanned.as_bytes()), Vec::<&str>::new());
        assert!(scanned.contains("wsec1.kms."), "sealed by KMS data keys");

        // A new process (a deliver container) opening many items: one KMS Decrypt.
        let config = webhooks_storage::aws::sdk_config_for_endpoint(deployment.endpoint());
        let keyring = webhooks_storage::aws::kms_keyring(&config, deployment.names.secrets_key.clone());
        let reader = webhooks_storage::aws::DynamoStore::connect(
            aws_sdk_dynamodb::Client::new(&config),
            deployment.names.table.clone(),
            webhooks_storage::DEFAULT_RETENTION,
            keyring.clone(),
        )
        .await
        .unwrap();
        for _ in 0..20 {
            let (_, secrets) = reader
                .get_subscription_with_secrets(MERCHANT, "sub_sealed")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(secrets, rotating_secrets());
            reader
                .get_subscription_with_secrets(MERCHANT, "sub_other")
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(keyring.stats().data_keys_unwrapped, 1, "{:?}", keyring.stats());
        assert_eq!(keyring.stats().data_keys_generated, 0);
    }

    #[tokio::test]
    async fn a_function_without_the_key_fans_out_but_opens_nothing() {
        let deployment = MotoDeployment::start().await;
        write_and_read_back(&deployment.store).await;
        let config = webhooks_storage::aws::sdk_config_for_endpoint(deployment.endpoint());
        let ingest_like = webhooks_storage::aws::DynamoStore::connect(
            aws_sdk_dynamodb::Client::new(&config),
            deployment.names.table.clone(),
            webhooks_storage::DEFAULT_RETENTION,
            Keyring::withheld(),
        )
        .await
        .unwrap();
        let page = ingest_like
            .subscriptions_for_event(MERCHANT, EventName::CryptoDelivered, PageRequest::first(10))
            .await
            .unwrap();
        assert_eq!(page.items.len(), 2);
        let refused = ingest_like.get_subscription_with_secrets(MERCHANT, "sub_sealed").await;
        assert!(matches!(refused, Err(StoreError::Backend { .. })), "{refused:?}");
    }

    #[tokio::test]
    async fn reseal_rewrites_every_item_under_the_current_key_and_they_still_open() {
        let deployment = MotoDeployment::start().await;
        write_and_read_back(&deployment.store).await;
        let before = scan_everything(&deployment).await;
        assert_eq!(deployment.store.reseal_merchant(MERCHANT).await.unwrap(), 2);
        let (merchant, config) = &configs()[0];
        assert_eq!(deployment.store.reseal_merchant(merchant).await.unwrap(), 1);
        let after = scan_everything(&deployment).await;
        assert_ne!(before, after, "the sealed values changed");
        assert_eq!(secrets_in(after.as_bytes()), Vec::<&str>::new());
        let (_, secrets) = deployment
            .store
            .get_subscription_with_secrets(MERCHANT, "sub_sealed")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(secrets, rotating_secrets());
        assert_eq!(
            deployment.store.get_auth_callback(merchant).await.unwrap().as_ref(),
            Some(config)
        );
    }
}
