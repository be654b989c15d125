//! webhooks-admin against a real DynamoDB and SQS wire protocol (moto server): the library
//! functions, `run` with the resources named by `--stack`, and the built binary.

use std::process::Command as Process;
use std::time::Duration;

use clap::Parser;
use webhooks_admin::{
    AdminError, Cli, MerchantFailures, OldestMessage, Report, add_key, create_merchant, list_merchants, redrive,
    revoke_key, run,
};
use webhooks_domain::health::DEFAULT_DISABLE_AFTER;
use webhooks_domain::{
    AttemptOutcome, Clock, DeliveryAttempt, EndpointHealth, EventName, HealthStatus, IsoTime, SystemClock,
    hash_api_key, unix_millis,
};
use webhooks_storage::{
    DeliveryLog, MerchantStore, OutgoingMessage, ParkedRetries, ParkedTask, QueueReceiver, QueueSender,
    SubscriptionStore,
};
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

/// The built binary, run with `args` against `aws` and nothing from the environment.
fn admin_binary(aws: &MotoDeployment, args: &[&str]) -> std::process::Output {
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
}

/// Attempt 1 of event `event_id` to `subscription_id`, made `ago` before now.
fn attempt(
    merchant_id: &str,
    subscription_id: &str,
    event_id: &str,
    ago: Duration,
    outcome: AttemptOutcome,
) -> DeliveryAttempt {
    let failed = outcome == AttemptOutcome::Failed;
    DeliveryAttempt {
        event_id: event_id.into(),
        subscription_id: subscription_id.into(),
        merchant_id: merchant_id.into(),
        event_name: EventName::CryptoDelivered,
        attempt: 1,
        attempted_at: IsoTime::new(SystemClock.now() - ago).unwrap(),
        outcome,
        status_code: Some(if failed { 503 } else { 200 }),
        error: failed.then(|| "http_status".to_owned()),
        latency_ms: 12,
        response_excerpt: None,
        next_attempt_at: None,
        manual: false,
    }
}

async fn send(aws: &MotoDeployment, url: &str, body: &str, delay: Duration) {
    aws.queue(url)
        .send(OutgoingMessage {
            body: body.into(),
            delay,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn status_shows_queues_parked_retries_unhealthy_endpoints_and_failures() {
    let aws = MotoDeployment::start().await;
    let store = &aws.store;
    let started = SystemClock.now();
    let now_ms = unix_millis(started);

    // Queues: an event waiting; a delivery delayed and one in flight; dead letters in both DLQs.
    send(&aws, &aws.queues.events, r#"{"event":1}"#, Duration::ZERO).await;
    send(
        &aws,
        &aws.queues.deliveries,
        r#"{"task":"delayed"}"#,
        Duration::from_secs(600),
    )
    .await;
    send(&aws, &aws.queues.deliveries, r#"{"task":"running"}"#, Duration::ZERO).await;
    let running = aws
        .queue(&aws.queues.deliveries)
        .receive(10, Duration::from_secs(300), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(running.len(), 1);
    for n in 0..2 {
        send(
            &aws,
            &aws.queues.events_dlq,
            &format!(r#"{{"dead":{n}}}"#),
            Duration::ZERO,
        )
        .await;
    }
    send(&aws, &aws.queues.deliveries_dlq, r#"{"dead":"task"}"#, Duration::ZERO).await;

    // Parked retries: one 10 minutes overdue, one due in an hour.
    let overdue_ms = now_ms - 600_000;
    store
        .park(&ParkedTask::new("evt_1#sub_failing#3", overdue_ms, "{}".into(), None))
        .await
        .unwrap();
    store
        .park(&ParkedTask::new(
            "evt_2#sub_ok#4",
            now_ms + 3_600_000,
            "{}".into(),
            None,
        ))
        .await
        .unwrap();

    // Endpoints: Acme's sub_failing is failing, its sub_disabled disabled, the rest healthy.
    let acme = create_merchant(store, "Acme", &SystemClock).await.unwrap().merchant.id;
    let other = create_merchant(store, "Other", &SystemClock).await.unwrap().merchant.id;
    let quiet = create_merchant(store, "Quiet", &SystemClock).await.unwrap().merchant.id;
    let url = "https://merchant.example/hooks?token=not-for-operators";
    for (merchant, id) in [
        (&acme, "sub_failing"),
        (&acme, "sub_disabled"),
        (&acme, "sub_ok"),
        (&other, "sub_other"),
        (&quiet, "sub_quiet"),
    ] {
        let subscription = webhooks_tests::fixtures::subscription(merchant, id, url);
        store
            .create_subscription(&subscription, &webhooks_tests::fixtures::secrets())
            .await
            .unwrap();
    }
    let since = IsoTime::new(started - Duration::from_secs(7200)).unwrap();
    let failing = (0..3).fold(EndpointHealth::default(), |health, _| {
        health.after_failure(since, "503")
    });
    assert_eq!(failing.status, HealthStatus::Failing);
    let disabled = failing.disabled(IsoTime::new(started).unwrap(), DEFAULT_DISABLE_AFTER);
    for (id, health) in [("sub_failing", &failing), ("sub_disabled", &disabled)] {
        assert!(
            store
                .record_health(&acme, id, &EndpointHealth::default(), health)
                .await
                .unwrap()
        );
    }

    // Attempts: Acme 3 failed and 1 succeeded in the last hour, 1 failed before it; Other 1
    // failed; Quiet only succeeded.
    let minutes = |m: u64| Duration::from_secs(60 * m);
    for recorded in [
        attempt(&acme, "sub_failing", "evt_a", minutes(5), AttemptOutcome::Failed),
        attempt(&acme, "sub_failing", "evt_b", minutes(30), AttemptOutcome::Failed),
        attempt(&acme, "sub_disabled", "evt_c", minutes(50), AttemptOutcome::Failed),
        attempt(&acme, "sub_ok", "evt_d", minutes(10), AttemptOutcome::Succeeded),
        attempt(&acme, "sub_failing", "evt_e", minutes(90), AttemptOutcome::Failed),
        attempt(&other, "sub_other", "evt_f", minutes(1), AttemptOutcome::Failed),
        attempt(&quiet, "sub_quiet", "evt_g", minutes(1), AttemptOutcome::Succeeded),
    ] {
        store.record_attempt(&recorded).await.unwrap();
    }

    let report = run_on(&aws, &["status"]).await.unwrap();
    let Report::Status(status) = &report else {
        panic!("not a status: {report:?}")
    };

    let queue = |name: &str| status.queues.iter().find(|q| q.queue == name).unwrap();
    let names: Vec<&str> = status.queues.iter().map(|q| q.queue.as_str()).collect();
    assert_eq!(names, ["events", "events-dlq", "deliveries", "deliveries-dlq"]);
    let events = queue("events");
    assert_eq!((events.visible, events.in_flight, events.delayed), (1, 0, 0));
    assert_eq!(events.oldest, OldestMessage::Dashboard);
    let deliveries = queue("deliveries");
    assert_eq!(
        (deliveries.visible, deliveries.in_flight, deliveries.delayed),
        (0, 1, 1)
    );
    assert_eq!(deliveries.oldest, OldestMessage::Dashboard);
    for (name, dead) in [("events-dlq", 2), ("deliveries-dlq", 1)] {
        let dlq = queue(name);
        assert_eq!((dlq.visible, dlq.in_flight, dlq.delayed), (dead, 0, 0), "{name}");
        let OldestMessage::Peeked {
            messages,
            sent_at: Some(sent_at),
            age_seconds: Some(age),
        } = dlq.oldest
        else {
            panic!("{name} not peeked: {:?}", dlq.oldest)
        };
        assert!((1..=dead as usize).contains(&messages), "{name}: {messages}");
        assert!(sent_at.unix_millis() >= now_ms - 1_000, "{name}: {sent_at}");
        assert!((0..300).contains(&age), "{name}: {age}");
    }

    let parked = &status.parked_retries;
    assert_eq!((parked.parked, parked.overdue), (2, 1));
    assert_eq!(parked.most_overdue_due_at.map(IsoTime::unix_millis), Some(overdue_ms));
    assert!(
        parked.most_overdue_seconds.is_some_and(|s| (600..900).contains(&s)),
        "{parked:?}"
    );

    let unhealthy: Vec<(&str, &str, HealthStatus)> = status
        .unhealthy_endpoints
        .iter()
        .map(|e| (e.merchant_id.as_str(), e.subscription_id.as_str(), e.status))
        .collect();
    assert_eq!(
        unhealthy,
        [
            (acme.as_str(), "sub_disabled", HealthStatus::Disabled),
            (acme.as_str(), "sub_failing", HealthStatus::Failing)
        ]
    );
    let [gone, failing_endpoint] = &status.unhealthy_endpoints[..] else {
        unreachable!()
    };
    assert_eq!(failing_endpoint.since, Some(since));
    assert_eq!(failing_endpoint.consecutive_failures, 3);
    assert_eq!(failing_endpoint.last_error.as_deref(), Some("503"));
    assert_eq!(failing_endpoint.disabled_reason, None);
    assert_eq!(failing_endpoint.endpoint, "https://merchant.example/hooks");
    assert_eq!(gone.disabled_reason, disabled.disabled_reason);
    assert!(
        gone.disabled_reason
            .as_deref()
            .is_some_and(|r| r.contains("failing since")),
        "{gone:?}"
    );

    assert_eq!(
        status.most_failed_merchants,
        [
            MerchantFailures {
                merchant_id: acme.clone(),
                name: "Acme".into(),
                failed: 3,
                attempts: 4
            },
            MerchantFailures {
                merchant_id: other.clone(),
                name: "Other".into(),
                failed: 1,
                attempts: 1
            },
        ]
    );

    let text = report.to_string();
    for shown in [
        "parked retries: 2 in the due-time index, 1 overdue; the most overdue was due",
        "failing or disabled endpoints: 2",
        "3 failures in a row, last error 503",
        "most failed attempts in the last hour (top 10):",
    ] {
        assert!(text.contains(shown), "{shown:?} not in\n{text}");
    }
    let failures_section = text.split("most failed attempts").nth(1).unwrap();
    let rows: Vec<Vec<&str>> = failures_section
        .lines()
        .skip(2)
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec![acme.as_str(), "3", "4", "Acme"],
            vec![other.as_str(), "1", "1", "Other"]
        ]
    );
    assert!(!text.contains("not-for-operators"), "{text}");
    assert!(!text.contains(&quiet), "{text}");

    // The binary prints the same as JSON; the DLQ peek hid nothing (the counts are the same).
    let output = admin_binary(&aws, &["--stack", STACK_NAME, "--json", "status"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["queues"][0]["oldest"]["source"], "dashboard");
    assert_eq!(json["queues"][1]["visible"], 2);
    assert_eq!(json["queues"][1]["oldest"]["source"], "peeked");
    assert_eq!(json["queues"][2]["inFlight"], 1);
    assert_eq!(json["parkedRetries"]["overdue"], 1);
    assert_eq!(json["unhealthyEndpoints"][0]["status"], "disabled");
    assert_eq!(json["unhealthyEndpoints"][1]["lastError"], "503");
    assert_eq!(json["mostFailedMerchants"][0]["merchantId"], acme.as_str());
    assert_eq!(json["mostFailedMerchants"][0]["failed"], 3);

    // The main queues were not peeked: the event's first receive is its first.
    let event = aws
        .queue(&aws.queues.events)
        .receive(10, Duration::from_secs(60), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(event.len(), 1);
    assert_eq!(event[0].receive_count, 1);
}

/// The binary, as an operator runs it: JSON out, errors on stderr with a non-zero exit.
#[tokio::test]
async fn the_binary_mints_a_key_and_names_what_is_missing() {
    let aws = MotoDeployment::start().await;
    let admin = |args: &[&str]| admin_binary(&aws, args);

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
