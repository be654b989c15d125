//! webhooks-admin against a real DynamoDB and SQS wire protocol (moto server): the library
//! functions, `run` with the resources named by `--stack`, and the built binary.

use std::process::Command as Process;
use std::time::Duration;

use clap::Parser;
use webhooks_admin::{AdminError, Cli, Report, add_key, create_merchant, list_merchants, redrive, revoke_key, run};
use webhooks_domain::{SystemClock, hash_api_key};
use webhooks_storage::{MerchantStore, OutgoingMessage, QueueReceiver, QueueSender, SubscriptionStore};
use webhooks_tests::moto::{MotoDeployment, STACK_NAME};

/// Runs a command line against `aws` with `--endpoint-url` and `--stack` (and nothing from
/// the environment): the stack name finds the table and queues.
async fn run_on(aws: &MotoDeployment, args: &[&str]) -> Result<Report, AdminError> {
    let argv = [
        "webhooks-admin",
        "--endpoint-url",
        aws.endpoint(),
        "--stack",
        STACK_NAME,
    ]
    .into_iter()
    .chain(args.iter().copied());
    run(Cli::try_parse_from(argv).unwrap()).await
}

/// Every body in the queue at `url`, received (and hidden) once.
async fn drain(aws: &MotoDeployment, url: &str) -> Vec<String> {
    let queue = aws.queue(url);
    let mut bodies = Vec::new();
    loop {
        let batch = queue
            .receive(10, Duration::from_secs(60), Duration::from_secs(1))
            .await
            .unwrap();
        if batch.is_empty() {
            return bodies;
        }
        bodies.extend(batch.into_iter().map(|m| m.body));
    }
}

#[tokio::test]
async fn merchants_get_keys_that_authenticate_until_revoked() {
    let aws = MotoDeployment::start().await;
    let store = &aws.store;

    let acme = create_merchant(store, "  Acme Ramp  ", &SystemClock).await.unwrap();
    assert_eq!(acme.merchant.name, "Acme Ramp");
    assert!(acme.merchant.id.starts_with("m_"));
    assert_eq!(acme.key.hash, hash_api_key(&acme.key.clear_text));
    assert_eq!(
        store.merchant_for_api_key(&acme.key.hash).await.unwrap(),
        Some(acme.merchant.clone())
    );
    let other = create_merchant(store, "Other", &SystemClock).await.unwrap();

    let mut listed: Vec<String> = list_merchants(store).await.unwrap().into_iter().map(|m| m.id).collect();
    listed.sort();
    let mut expected = vec![acme.merchant.id.clone(), other.merchant.id.clone()];
    expected.sort();
    assert_eq!(listed, expected);

    // A second key for rotation: both work until the first is revoked.
    let second = add_key(store, &acme.merchant.id).await.unwrap();
    assert_eq!(
        store.merchant_for_api_key(&second.hash).await.unwrap().map(|m| m.id),
        Some(acme.merchant.id.clone())
    );
    let revoked = revoke_key(store, &acme.key.clear_text).await.unwrap();
    assert_eq!(revoked.id, acme.merchant.id);
    assert_eq!(store.merchant_for_api_key(&acme.key.hash).await.unwrap(), None);
    assert!(store.merchant_for_api_key(&second.hash).await.unwrap().is_some());

    assert!(matches!(
        revoke_key(store, &acme.key.clear_text).await,
        Err(AdminError::KeyNotFound)
    ));
    assert!(matches!(
        add_key(store, "m_nobody").await,
        Err(AdminError::MerchantNotFound(id)) if id == "m_nobody"
    ));
    assert!(matches!(
        create_merchant(store, "   ", &SystemClock).await,
        Err(AdminError::BadName(0))
    ));
}

#[tokio::test]
async fn the_stack_name_finds_the_table_and_queues() {
    let aws = MotoDeployment::start().await;

    let Report::MerchantCreated {
        merchant_id, api_key, ..
    } = run_on(&aws, &["merchant", "create", "--name", "Acme"]).await.unwrap()
    else {
        panic!("not a created merchant")
    };
    let owner = aws.store.merchant_for_api_key(&hash_api_key(&api_key)).await.unwrap();
    assert_eq!(owner.map(|m| m.id), Some(merchant_id.clone()));

    let Report::KeyAdded { api_key: second, .. } =
        run_on(&aws, &["key", "add", "--merchant", &merchant_id]).await.unwrap()
    else {
        panic!("not an added key")
    };
    assert_eq!(
        run_on(&aws, &["key", "revoke", "--key", &second]).await.unwrap(),
        Report::KeyRevoked {
            merchant_id: merchant_id.clone()
        }
    );
    let Report::Merchants { merchants } = run_on(&aws, &["merchant", "list"]).await.unwrap() else {
        panic!("not a listing")
    };
    assert_eq!(merchants.len(), 1);

    assert_eq!(
        run_on(&aws, &["dlq", "count"]).await.unwrap(),
        Report::DlqCounts {
            events_dlq: 0,
            deliveries_dlq: 0
        }
    );
}

#[tokio::test]
async fn redrive_moves_dead_letters_back_to_their_source_queue() {
    let aws = MotoDeployment::start().await;
    let events_dlq = aws.queue(&aws.queues.events_dlq);
    let bodies: Vec<String> = (0..13).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
    for body in &bodies {
        events_dlq
            .send(OutgoingMessage {
                body: body.clone(),
                delay: Duration::ZERO,
            })
            .await
            .unwrap();
    }
    aws.queue(&aws.queues.deliveries_dlq)
        .send(OutgoingMessage {
            body: r#"{"task":1}"#.into(),
            delay: Duration::ZERO,
        })
        .await
        .unwrap();
    assert_eq!(
        run_on(&aws, &["dlq", "count"]).await.unwrap(),
        Report::DlqCounts {
            events_dlq: 13,
            deliveries_dlq: 1
        }
    );

    // --max bounds the move; the rest stays put.
    assert_eq!(
        run_on(&aws, &["dlq", "redrive", "--queue", "events", "--max", "4"])
            .await
            .unwrap(),
        Report::Redriven {
            queue: webhooks_admin::QueueKind::Events,
            moved: 4
        }
    );
    // Without it, everything (more than one receive batch).
    let moved = redrive(&events_dlq, &aws.queue(&aws.queues.events), None)
        .await
        .unwrap();
    assert_eq!(moved, 9);
    assert_eq!(events_dlq.approximate_len().await.unwrap(), 0);
    let mut arrived = drain(&aws, &aws.queues.events).await;
    arrived.sort();
    let mut expected = bodies.clone();
    expected.sort();
    assert_eq!(arrived, expected, "every body back on the events queue, once");

    assert_eq!(
        run_on(&aws, &["dlq", "redrive", "--queue", "deliveries"])
            .await
            .unwrap(),
        Report::Redriven {
            queue: webhooks_admin::QueueKind::Deliveries,
            moved: 1
        }
    );
    assert_eq!(
        drain(&aws, &aws.queues.deliveries).await,
        vec![r#"{"task":1}"#.to_owned()]
    );
    assert_eq!(
        run_on(&aws, &["dlq", "redrive", "--queue", "deliveries"])
            .await
            .unwrap(),
        Report::Redriven {
            queue: webhooks_admin::QueueKind::Deliveries,
            moved: 0
        }
    );
}

/// The binary, as an operator runs it: JSON out, errors on stderr with a non-zero exit.
#[tokio::test]
async fn the_binary_mints_a_key_and_names_what_is_missing() {
    let aws = MotoDeployment::start().await;
    let admin = |args: &[&str]| {
        let mut command = Process::new(env!("CARGO_BIN_EXE_webhooks-admin"));
        for variable in [
            "WEBHOOKS_TABLE_NAME",
            "WEBHOOKS_EVENTS_QUEUE_URL",
            "WEBHOOKS_EVENTS_DLQ_URL",
            "WEBHOOKS_DELIVERIES_QUEUE_URL",
            "WEBHOOKS_DELIVERIES_DLQ_URL",
        ] {
            command.env_remove(variable);
        }
        command
            .args(["--endpoint-url", aws.endpoint()])
            .args(args)
            .output()
            .unwrap()
    };

    let output = admin(&[
        "--table",
        &aws.names.table,
        "merchant",
        "create",
        "--name",
        "Acme",
        "--json",
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let created: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let api_key = created["apiKey"].as_str().unwrap();
    let owner = aws.store.merchant_for_api_key(&hash_api_key(api_key)).await.unwrap();
    assert_eq!(owner.map(|m| m.id).as_deref(), created["merchantId"].as_str());

    let output = admin(&["merchant", "list"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no table: pass --table, set WEBHOOKS_TABLE_NAME, or pass --stack"),
        "{stderr}"
    );
    let output = admin(&["dlq", "redrive", "--queue", "events"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("WEBHOOKS_EVENTS_QUEUE_URL"));
}

#[tokio::test]
async fn rekey_reseals_every_merchants_secrets_under_the_stacks_key() {
    let aws = MotoDeployment::start().await;
    let created = create_merchant(&aws.store, "Acme", &SystemClock).await.unwrap();
    let merchant = created.merchant.id;
    let subscription = webhooks_tests::fixtures::subscription(&merchant, "sub_1", "https://merchant.example/hook");
    aws.store
        .create_subscription(&subscription, &webhooks_tests::fixtures::secrets())
        .await
        .unwrap();
    create_merchant(&aws.store, "Nothing stored", &SystemClock)
        .await
        .unwrap();

    let report = run_on(&aws, &["rekey"]).await.unwrap();
    assert_eq!(
        report,
        Report::Rekeyed {
            merchants: 2,
            resealed: 1
        }
    );
    assert!(
        report.to_string().contains("re-sealed 1 items of 2 merchants"),
        "{report}"
    );
    let (_, secrets) = aws
        .store
        .get_subscription_with_secrets(&merchant, "sub_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(secrets.current, webhooks_tests::fixtures::SECRET);
}
