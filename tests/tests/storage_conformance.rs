//! One conformance suite for every storage and queue adapter: each case below runs against
//! the embedded SQLite backend and against DynamoDB + SQS on a real moto server.

use std::time::Duration;

use webhooks_domain::{
    AttemptOutcome, AuthCallbackConfig, AuthMethod, DeliveryAttempt, DeliveryStatus, EventName, IsoTime, Merchant,
    PlatformEvent, SigningSecrets, Subscription,
};
use webhooks_storage::ports::MAX_BATCH;
use webhooks_storage::{
    AttemptRecorded, AuthCallbackStore, DUE_INDEX_SHARDS, DeliveryLog, Entity, EventStore, HandOff, MerchantStore,
    OutgoingMessage, PageRequest, ParkedRetries, ParkedTask, QueueReceiver, QueueSender, Recorded, StoreError,
    SubscriptionStore,
};
use webhooks_tests::aws_quotas::{Quota, SQS_MAX_MESSAGE_BYTES, SQS_MAX_VISIBILITY};
use webhooks_tests::backends::Harness;

/// Runs each named case once per backend, as `embedded::case` and `aws_on_moto::case`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(#[tokio::test] async fn $case() { super::cases::$case(&webhooks_tests::backends::Embedded::new().await).await })*
        }
        mod aws_on_moto {
            $(#[tokio::test] async fn $case() { super::cases::$case(&webhooks_tests::backends::Aws::new().await).await })*
        }
    };
}

conformance!(
    merchants_and_api_keys,
    subscriptions_are_crud_within_their_merchant,
    subscriptions_read_together_are_each_as_read_alone,
    a_subscription_write_at_the_version_read_stores_the_next_version,
    a_subscription_write_at_a_stale_version_is_refused_and_changes_nothing,
    subscription_pages_follow_opaque_cursors,
    tampered_or_foreign_cursors_are_refused,
    subscriptions_for_event_skip_disabled_and_other_events,
    events_dedupe_and_keep_their_fan_out_status,
    crash_mid_fan_out_is_resumed_on_redelivery,
    delivery_log_lists_newest_first_per_subscription,
    a_long_delivery_log_pages_newest_first_without_gaps_or_repeats,
    an_attempt_is_recorded_once_with_its_status_and_hand_off,
    parked_retries_come_out_when_due_earliest_first_and_leave_when_unparked,
    auth_callback_config_is_per_merchant,
    queue_send_receive_delete,
    queue_delete_batch_reports_each_handle,
    queue_batch_reports_every_entry,
    queue_delay_hides_a_message,
    queue_visibility_timeout_redelivers_with_receive_count,
    queue_dead_letters_after_max_receive_count,
    queue_dead_letters_on_request_and_refuses_bad_receipts,
    queue_long_poll_wakes_on_send,
    queue_refuses_a_delay_over_fifteen_minutes,
    queue_refuses_batches_of_more_than_ten_entries,
    queue_refuses_a_message_over_256_kib,
    queue_refuses_a_batch_over_256_kib_in_total,
    queue_refuses_a_visibility_past_twelve_hours_from_the_receive,
    queue_counts_messages_in_flight,
);

/// Items written before subscriptions had versions, on the backend where a test cannot
/// write one through the store's own files (the embedded one's test is beside its adapter).
mod stored_before_versions {
    use aws_sdk_dynamodb::types::AttributeValue::{Bool, S, Ss};
    use webhooks_domain::Subscription;
    use webhooks_storage::aws::sdk_config_for_endpoint;
    use webhooks_storage::{StoreError, SubscriptionStore};
    use webhooks_tests::moto::MotoDeployment;

    #[tokio::test]
    async fn a_dynamodb_item_without_a_version_is_at_version_0_and_takes_versioned_writes() {
        let deployment = MotoDeployment::start().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk_config_for_endpoint(deployment.endpoint()));
        let legacy = r#"{"id":"sub_1","merchantId":"m_1","url":"https://merchant.example/hook",
            "events":["payment_received"],"description":"","enabled":true,
            "createdAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z",
            "secrets":{"current":"old-secret-0123456789"}}"#;
        dynamodb
            .put_item()
            .table_name(&deployment.names.table)
            .item("pk", S("MERCHANT#m_1".into()))
            .item("sk", S("SUB#sub_1".into()))
            .item("data", S(legacy.into()))
            .item("enabled", Bool(true))
            .item("events", Ss(vec!["payment_received".into()]))
            .send()
            .await
            .unwrap();
        let store = &deployment.store;

        let (read, secrets) = store
            .get_subscription_with_secrets("m_1", "sub_1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((read.version, secrets.current.as_str()), (0, "old-secret-0123456789"));
        let changed = Subscription {
            enabled: false,
            ..read.clone()
        };
        store.update_subscription(&changed, &secrets).await.unwrap();
        assert_eq!(
            store.get_subscription_with_secrets("m_1", "sub_1").await.unwrap(),
            Some((Subscription { version: 1, ..changed }, secrets.clone()))
        );
        assert_eq!(
            store.update_subscription(&read, &secrets).await,
            Err(StoreError::VersionConflict)
        );
    }
}

fn at(millis: i64) -> IsoTime {
    IsoTime::new(time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).unwrap()).unwrap()
}

fn merchant(id: &str) -> Merchant {
    Merchant {
        id: id.into(),
        name: format!("Merchant {id}"),
        created_at: at(1_700_000_000_000),
    }
}

fn subscription(merchant_id: &str, id: &str, events: &[EventName], enabled: bool) -> Subscription {
    Subscription {
        id: id.into(),
        merchant_id: merchant_id.into(),
        url: format!("https://{merchant_id}.example/hooks/{id}"),
        events: events.to_vec(),
        description: String::new(),
        enabled,
        rate_limit_per_second: None,
        created_at: at(1_700_000_000_000),
        updated_at: at(1_700_000_000_000),
        version: 0,
        health: Default::default(),
    }
}

/// The secrets a conformance subscription `id` is created with.
fn secrets_of(id: &str) -> SigningSecrets {
    SigningSecrets::new(Some(format!("secret-of-{id}-0123456789")))
}

fn event(id: &str, merchant_id: &str) -> PlatformEvent {
    PlatformEvent {
        event_id: id.into(),
        merchant_id: merchant_id.into(),
        event_name: EventName::CryptoDelivered,
        order_id: format!("order-{id}"),
        time_stamp: at(1_700_000_000_123),
    }
}

/// Every parked task due by `now_ms`, across the shards, earliest first.
async fn all_due<S: ParkedRetries>(store: &S, now_ms: i64) -> Vec<ParkedTask> {
    let mut due = Vec::new();
    for shard in 0..DUE_INDEX_SHARDS {
        due.extend(store.due_tasks(shard, now_ms, 100).await.unwrap());
    }
    due.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
    due
}

fn attempt(merchant_id: &str, subscription_id: &str, event_id: &str, number: u32, millis: i64) -> DeliveryAttempt {
    DeliveryAttempt {
        event_id: event_id.into(),
        subscription_id: subscription_id.into(),
        merchant_id: merchant_id.into(),
        event_name: EventName::PaymentReceived,
        attempt: number,
        attempted_at: at(millis),
        outcome: AttemptOutcome::Failed,
        status_code: Some(503),
        error: Some("http_status".into()),
        latency_ms: 12,
        response_excerpt: Some("busy".into()),
        next_attempt_at: Some(at(millis + 5_000)),
        manual: false,
    }
}

fn message(body: &str) -> OutgoingMessage {
    OutgoingMessage {
        body: body.into(),
        delay: Duration::ZERO,
    }
}

const SEC: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

/// Asserts that `result` is a refusal naming `quota` as AWS's documentation does (the
/// embedded queue's own, or the AWS quota layer's in front of moto).
fn assert_refused<T: std::fmt::Debug>(result: Result<T, StoreError>, quota: Quota) {
    match result {
        Err(StoreError::Backend { message, .. }) if message.contains(quota.aws_name()) => {}
        other => panic!("expected a refusal under {:?}, got {other:?}", quota.aws_name()),
    }
}

/// Receives `count` messages, waiting a little for each.
async fn receive_all<Q: QueueReceiver>(queue: &Q, count: usize) -> Vec<webhooks_storage::ReceivedMessage> {
    let mut received = Vec::new();
    while received.len() < count {
        let more = queue.receive(count - received.len(), 30 * SEC, SEC).await.unwrap();
        assert!(!more.is_empty(), "only {} of {count} arrived", received.len());
        received.extend(more);
    }
    received
}

mod cases {
    use super::*;

    pub async fn merchants_and_api_keys(h: &impl Harness) {
        let store = h.store();
        store.create_merchant(&merchant("m_a"), "hash-a1").await.unwrap();
        assert_eq!(
            store.create_merchant(&merchant("m_a"), "hash-a9").await,
            Err(StoreError::Conflict(Entity::Merchant))
        );
        assert_eq!(
            store.create_merchant(&merchant("m_b"), "hash-a1").await,
            Err(StoreError::Conflict(Entity::ApiKey))
        );
        assert_eq!(
            store.get_merchant("m_b").await.unwrap(),
            None,
            "a refused merchant was kept"
        );
        assert_eq!(store.get_merchant("m_a").await.unwrap(), Some(merchant("m_a")));
        assert_eq!(store.get_merchant("m_nobody").await.unwrap(), None);
        assert_eq!(
            store.merchant_for_api_key("hash-a1").await.unwrap(),
            Some(merchant("m_a"))
        );
        assert_eq!(
            store.merchant_for_api_key("hash-a9").await.unwrap(),
            None,
            "a refused merchant left its key"
        );
        store.add_api_key("m_a", "hash-a2").await.unwrap();
        assert_eq!(
            store.merchant_for_api_key("hash-a2").await.unwrap(),
            Some(merchant("m_a"))
        );
        assert_eq!(store.add_api_key("m_nobody", "hash-x").await, Err(StoreError::NotFound));
        assert_eq!(
            store.add_api_key("m_a", "hash-a2").await,
            Err(StoreError::Conflict(Entity::ApiKey))
        );
        assert!(store.revoke_api_key("hash-a1").await.unwrap());
        assert!(!store.revoke_api_key("hash-a1").await.unwrap());
        assert_eq!(store.merchant_for_api_key("hash-a1").await.unwrap(), None);
        assert_eq!(
            store.merchant_for_api_key("hash-a2").await.unwrap(),
            Some(merchant("m_a"))
        );

        for i in 0..5 {
            store
                .create_merchant(&merchant(&format!("m_p{i}")), &format!("hash-p{i}"))
                .await
                .unwrap();
        }
        let first = store.list_merchants(PageRequest::first(4)).await.unwrap();
        let ids: Vec<_> = first.items.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["m_a", "m_p0", "m_p1", "m_p2"]);
        let rest = store
            .list_merchants(PageRequest {
                limit: 4,
                cursor: first.next_cursor,
            })
            .await
            .unwrap();
        let ids: Vec<_> = rest.items.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["m_p3", "m_p4"]);
        assert_eq!(rest.next_cursor, None);
    }

    pub async fn subscriptions_read_together_are_each_as_read_alone(h: &impl Harness) {
        let store = h.store();
        for (merchant_id, id) in [("m_a", "sub_1"), ("m_a", "sub_2"), ("m_b", "sub_1")] {
            let sub = subscription(merchant_id, id, &EventName::ALL, true);
            store.create_subscription(&sub, &secrets_of(id)).await.unwrap();
        }
        let disabled = subscription("m_a", "sub_2", &EventName::ALL, false);
        let mut secrets = secrets_of("sub_2");
        secrets.rotate(at(1_700_000_100_000));
        store.update_subscription(&disabled, &secrets).await.unwrap();
        let keys: Vec<(String, String)> = [
            ("m_b", "sub_1"),
            ("m_a", "sub_2"),
            ("m_a", "sub_gone"),
            ("m_b", "sub_2"),
        ]
        .map(|(merchant_id, id)| (merchant_id.to_owned(), id.to_owned()))
        .into();
        let together = store.get_subscriptions_with_secrets(&keys).await.unwrap();
        let mut alone = Vec::new();
        for (merchant_id, id) in &keys {
            alone.push(store.get_subscription_with_secrets(merchant_id, id).await.unwrap());
        }
        assert_eq!(together, alone, "in the order asked, none for those not there");
        let found: Vec<_> = together
            .iter()
            .map(|opened| opened.as_ref().map(|(sub, _)| sub.enabled))
            .collect();
        assert_eq!(found, [Some(true), Some(false), None, None]);
        assert_eq!(store.get_subscriptions_with_secrets(&[]).await.unwrap(), []);
    }

    pub async fn subscriptions_are_crud_within_their_merchant(h: &impl Harness) {
        let store = h.store();
        let mut sub = subscription("m_a", "sub_1", &EventName::ALL, true);
        let mut secrets = secrets_of("sub_1");
        store.create_subscription(&sub, &secrets).await.unwrap();
        assert_eq!(
            store.create_subscription(&sub, &secrets).await,
            Err(StoreError::Conflict(Entity::Subscription))
        );
        assert_eq!(store.get_subscription("m_a", "sub_1").await.unwrap(), Some(sub.clone()));
        assert_eq!(
            store.get_subscription_with_secrets("m_a", "sub_1").await.unwrap(),
            Some((sub.clone(), secrets.clone()))
        );
        assert_eq!(
            store.get_subscription("m_b", "sub_1").await.unwrap(),
            None,
            "another merchant sees it"
        );

        sub.url = "https://m_a.example/v2".into();
        sub.enabled = false;
        secrets.rotate(at(1_700_000_100_000));
        store.update_subscription(&sub, &secrets).await.unwrap();
        sub.version = 1;
        assert_eq!(
            store.get_subscription_with_secrets("m_a", "sub_1").await.unwrap(),
            Some((sub.clone(), secrets.clone()))
        );
        let ghost = subscription("m_a", "sub_ghost", &EventName::ALL, true);
        assert_eq!(
            store.update_subscription(&ghost, &secrets).await,
            Err(StoreError::NotFound)
        );
        assert_eq!(
            store.get_subscription("m_a", "sub_ghost").await.unwrap(),
            None,
            "update created it"
        );

        assert!(
            !store.delete_subscription("m_b", "sub_1").await.unwrap(),
            "another merchant deleted it"
        );
        assert!(store.delete_subscription("m_a", "sub_1").await.unwrap());
        assert!(!store.delete_subscription("m_a", "sub_1").await.unwrap());
        assert_eq!(store.get_subscription("m_a", "sub_1").await.unwrap(), None);
    }

    pub async fn a_subscription_write_at_the_version_read_stores_the_next_version(h: &impl Harness) {
        let store = h.store();
        let mut sub = subscription("m_a", "sub_1", &EventName::ALL, true);
        let secrets = secrets_of("sub_1");
        store.create_subscription(&sub, &secrets).await.unwrap();
        for version in 1..=3 {
            sub = store.get_subscription("m_a", "sub_1").await.unwrap().unwrap();
            assert_eq!(sub.version, version - 1);
            sub.description = format!("change {version}");
            store.update_subscription(&sub, &secrets).await.unwrap();
            let stored = store.get_subscription("m_a", "sub_1").await.unwrap();
            assert_eq!(stored, Some(Subscription { version, ..sub.clone() }));
        }

        assert!(store.delete_subscription("m_a", "sub_1").await.unwrap());
        sub.version = 3;
        assert_eq!(
            store.update_subscription(&sub, &secrets).await,
            Err(StoreError::NotFound),
            "a gone subscription is not found at any version"
        );
        assert_eq!(store.get_subscription("m_a", "sub_1").await.unwrap(), None);
    }

    pub async fn a_subscription_write_at_a_stale_version_is_refused_and_changes_nothing(h: &impl Harness) {
        let store = h.store();
        let created = subscription("m_a", "sub_1", &EventName::ALL, true);
        let created_secrets = secrets_of("sub_1");
        store.create_subscription(&created, &created_secrets).await.unwrap();
        // Two writers read version 0; the first stores its change, at version 1.
        let mut patch = created.clone();
        patch.enabled = false;
        store.update_subscription(&patch, &created_secrets).await.unwrap();
        let after_patch = Subscription { version: 1, ..patch };

        let mut rotated = created_secrets.clone();
        rotated.rotate(at(1_700_000_100_000));
        assert_eq!(
            store.update_subscription(&created, &rotated).await,
            Err(StoreError::VersionConflict)
        );
        let ahead = Subscription {
            version: 5,
            ..after_patch.clone()
        };
        assert_eq!(
            store.update_subscription(&ahead, &rotated).await,
            Err(StoreError::VersionConflict)
        );
        assert_eq!(
            store.get_subscription_with_secrets("m_a", "sub_1").await.unwrap(),
            Some((after_patch.clone(), created_secrets.clone())),
            "a refused write changes nothing"
        );

        // Read again and redone, the rotation keeps the patch.
        let (rotation, mut secrets) = store
            .get_subscription_with_secrets("m_a", "sub_1")
            .await
            .unwrap()
            .unwrap();
        secrets.rotate(at(1_700_000_100_000));
        store.update_subscription(&rotation, &secrets).await.unwrap();
        let (stored, stored_secrets) = store
            .get_subscription_with_secrets("m_a", "sub_1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored, Subscription { version: 2, ..rotation });
        assert!(!stored.enabled);
        assert_ne!(stored_secrets.current, created_secrets.current);
    }

    pub async fn subscription_pages_follow_opaque_cursors(h: &impl Harness) {
        let store = h.store();
        for i in 0..25 {
            store
                .create_subscription(
                    &subscription("m_a", &format!("sub_{i:02}"), &EventName::ALL, true),
                    &secrets_of("fixture"),
                )
                .await
                .unwrap();
        }
        store
            .create_subscription(
                &subscription("m_b", "sub_other", &EventName::ALL, true),
                &secrets_of("fixture"),
            )
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut page = PageRequest::first(10);
        let mut sizes = Vec::new();
        loop {
            let result = store.list_subscriptions("m_a", page.clone()).await.unwrap();
            sizes.push(result.items.len());
            seen.extend(result.items.into_iter().map(|s| s.id));
            match result.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => break,
            }
        }
        assert_eq!(sizes, [10, 10, 5]);
        let expected: Vec<String> = (0..25).map(|i| format!("sub_{i:02}")).collect();
        assert_eq!(seen, expected);
        let exact = store.list_subscriptions("m_b", PageRequest::first(1)).await.unwrap();
        assert_eq!(exact.items.len(), 1);
        assert_eq!(exact.next_cursor, None, "a full last page must not promise more");
    }

    pub async fn tampered_or_foreign_cursors_are_refused(h: &impl Harness) {
        let store = h.store();
        for i in 0..3 {
            store
                .create_subscription(
                    &subscription("m_a", &format!("sub_{i}"), &EventName::ALL, true),
                    &secrets_of("fixture"),
                )
                .await
                .unwrap();
        }
        let cursor = store
            .list_subscriptions("m_a", PageRequest::first(1))
            .await
            .unwrap()
            .next_cursor
            .unwrap();
        let mut tampered = cursor.clone().into_bytes();
        tampered[0] ^= 1;
        let tampered = String::from_utf8(tampered).unwrap();
        for bad in [tampered.as_str(), "", "garbage", "eyJzayI6IlNVQiNzdWJfMSJ9.AAAA"] {
            let result = store
                .list_subscriptions(
                    "m_a",
                    PageRequest {
                        limit: 1,
                        cursor: Some(bad.into()),
                    },
                )
                .await;
            assert_eq!(result.err(), Some(StoreError::BadCursor), "cursor {bad:?}");
        }
        let foreign = store
            .list_subscriptions(
                "m_b",
                PageRequest {
                    limit: 1,
                    cursor: Some(cursor.clone()),
                },
            )
            .await;
        assert_eq!(foreign.err(), Some(StoreError::BadCursor), "a cursor crossed merchants");
        let other_listing = store
            .list_attempts(
                "m_a",
                "sub_0",
                PageRequest {
                    limit: 1,
                    cursor: Some(cursor),
                },
            )
            .await;
        assert_eq!(
            other_listing.err(),
            Some(StoreError::BadCursor),
            "a cursor crossed listings"
        );
    }

    pub async fn subscriptions_for_event_skip_disabled_and_other_events(h: &impl Harness) {
        let store = h.store();
        let mut expected = Vec::new();
        for i in 0..120 {
            let id = format!("sub_{i:03}");
            let (events, enabled): (&[EventName], bool) = match i % 4 {
                0 => (&EventName::ALL, true),
                1 => (&[EventName::CryptoDelivered], true),
                2 => (&[EventName::PaymentReceived], true),
                _ => (&[EventName::CryptoDelivered], false),
            };
            if enabled && events.contains(&EventName::CryptoDelivered) {
                expected.push(id.clone());
            }
            store
                .create_subscription(&subscription("m_a", &id, events, enabled), &secrets_of("fixture"))
                .await
                .unwrap();
        }
        store
            .create_subscription(
                &subscription("m_b", "sub_b", &EventName::ALL, true),
                &secrets_of("fixture"),
            )
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut page = PageRequest::first(25);
        loop {
            let result = store
                .subscriptions_for_event("m_a", EventName::CryptoDelivered, page.clone())
                .await
                .unwrap();
            assert!(result.items.len() <= 25);
            seen.extend(result.items.into_iter().map(|s| s.id));
            match result.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen, expected);
        let none = store
            .subscriptions_for_event("m_c", EventName::CryptoDelivered, PageRequest::first(10))
            .await;
        assert!(none.unwrap().items.is_empty());
    }

    pub async fn events_dedupe_and_keep_their_fan_out_status(h: &impl Harness) {
        let store = h.store();
        let first = event("evt_1", "m_a");
        // A worker records the event and dies at once: its lease (zero here) runs out.
        assert_eq!(store.record_event(&first, Duration::ZERO).await.unwrap(), Recorded::New);
        let mut changed = first.clone();
        changed.order_id = "another-order".into();
        // The next one resumes it (the first version wins) and holds the lease a minute...
        assert_eq!(
            store.record_event(&changed, MINUTE).await.unwrap(),
            Recorded::PendingFanOut(first.clone())
        );
        // ...so a duplicate arriving meanwhile does not fan out a second time.
        assert_eq!(store.record_event(&first, MINUTE).await.unwrap(), Recorded::InProgress);
        store.mark_fanned_out("evt_1").await.unwrap();
        assert_eq!(
            store.record_event(&first, MINUTE).await.unwrap(),
            Recorded::AlreadyFannedOut(first.clone())
        );
        assert_eq!(store.get_event("evt_1").await.unwrap(), Some(first));
        assert_eq!(store.get_event("evt_none").await.unwrap(), None);
        assert_eq!(store.mark_fanned_out("evt_none").await, Err(StoreError::NotFound));
    }

    /// Ingest's protocol: record, enqueue one task per subscription, mark fanned out. A crash
    /// after recording (and after part of the fan-out) must lead to a full fan-out when the
    /// event is redelivered: duplicates are allowed, losses are not.
    pub async fn crash_mid_fan_out_is_resumed_on_redelivery(h: &impl Harness) {
        let store = h.store();
        let (deliveries, _dlq) = h.queue_pair("crash-deliveries", 5).await;
        let subscriptions = ["sub_1", "sub_2", "sub_3"];
        let evt = event("evt_crash", "m_a");

        // First delivery of the event: recorded, one task enqueued, then the process dies
        // (its lease runs out before SQS redelivers the event).
        assert_eq!(store.record_event(&evt, SEC).await.unwrap(), Recorded::New);
        tokio::time::sleep(SEC + Duration::from_millis(100)).await;
        deliveries
            .send(message(&format!("evt_crash/{}", subscriptions[0])))
            .await
            .unwrap();

        // SQS redelivers the event: it is recorded but not fanned out, so fan out again.
        let again = store.record_event(&evt, MINUTE).await.unwrap();
        assert_eq!(again, Recorded::PendingFanOut(evt.clone()));
        let batch = subscriptions
            .iter()
            .map(|s| message(&format!("evt_crash/{s}")))
            .collect();
        assert!(deliveries.send_batch(batch).await.unwrap().iter().all(Result::is_ok));
        store.mark_fanned_out("evt_crash").await.unwrap();

        // A third delivery is a pure duplicate.
        assert_eq!(
            store.record_event(&evt, MINUTE).await.unwrap(),
            Recorded::AlreadyFannedOut(evt.clone())
        );

        let mut bodies = Vec::new();
        loop {
            let received = deliveries.receive(10, 30 * SEC, Duration::ZERO).await.unwrap();
            if received.is_empty() {
                break;
            }
            bodies.extend(received.into_iter().map(|m| m.body));
        }
        for s in subscriptions {
            assert!(bodies.contains(&format!("evt_crash/{s}")), "{s} lost; got {bodies:?}");
        }
        assert_eq!(
            bodies.len(),
            4,
            "one duplicate for the subscription enqueued before the crash"
        );
    }

    pub async fn an_attempt_is_recorded_once_with_its_status_and_hand_off(h: &impl Harness) {
        let store = h.store();
        let base = 1_700_000_000_000;
        let hand_off = |attempt: u32| HandOff {
            task_key: format!("evt_1#sub_1#{attempt}"),
            due_ms: base + 60_000,
            body: format!("task {attempt}"),
            dead_letter_reason: None,
        };
        let first = attempt("m_a", "sub_1", "evt_1", 1, base);
        let recorded = store
            .record_attempt_once(&first, DeliveryStatus::Pending, Some(&hand_off(2)))
            .await
            .unwrap();
        assert_eq!(recorded, AttemptRecorded::Recorded);
        assert_eq!(
            store.delivery_status("evt_1", "sub_1").await.unwrap(),
            Some(DeliveryStatus::Pending)
        );
        let parked = all_due(store, base + 60_000).await;
        assert_eq!(
            parked,
            [hand_off(2).parked()],
            "the hand-off is written with the attempt"
        );

        // The same attempt again (a redelivered task), even with another hand-off: nothing.
        let again = attempt("m_a", "sub_1", "evt_1", 1, base + 5_000);
        let recorded = store
            .record_attempt_once(&again, DeliveryStatus::Failed, Some(&hand_off(9)))
            .await
            .unwrap();
        assert_eq!(recorded, AttemptRecorded::AlreadyRecorded);
        assert_eq!(
            store.delivery_status("evt_1", "sub_1").await.unwrap(),
            Some(DeliveryStatus::Pending),
            "the status is untouched"
        );
        assert_eq!(all_due(store, base + 60_000).await.len(), 1, "no second hand-off");
        let log = store
            .list_attempts("m_a", "sub_1", PageRequest::first(10))
            .await
            .unwrap();
        assert_eq!(log.items, [first], "the attempt is in the log once");

        // The next number is recorded; an earlier one after it is not.
        let third = attempt("m_a", "sub_1", "evt_1", 3, base + 10_000);
        let recorded = store
            .record_attempt_once(&third, DeliveryStatus::Succeeded, None)
            .await
            .unwrap();
        assert_eq!(recorded, AttemptRecorded::Recorded);
        let second = attempt("m_a", "sub_1", "evt_1", 2, base + 20_000);
        let recorded = store
            .record_attempt_once(&second, DeliveryStatus::Failed, None)
            .await
            .unwrap();
        assert_eq!(recorded, AttemptRecorded::AlreadyRecorded);
        assert_eq!(
            store.delivery_status("evt_1", "sub_1").await.unwrap(),
            Some(DeliveryStatus::Succeeded)
        );
        // Another subscription's delivery of the same event counts on its own.
        let other = attempt("m_a", "sub_2", "evt_1", 1, base);
        let recorded = store
            .record_attempt_once(&other, DeliveryStatus::Succeeded, None)
            .await
            .unwrap();
        assert_eq!(recorded, AttemptRecorded::Recorded);
    }

    pub async fn parked_retries_come_out_when_due_earliest_first_and_leave_when_unparked(h: &impl Harness) {
        let store = h.store();
        let base = 1_800_000_000_000;
        // Many keys, so that several shards are used; due in reverse order of their keys.
        for n in 0..40_i64 {
            let due_ms = base + (40 - n) * 1_000;
            let task = ParkedTask::new(&format!("evt_{n}#sub_1#2"), due_ms, format!("body {n}"), None);
            store.park(&task).await.unwrap();
        }
        assert!(all_due(store, base).await.is_empty(), "nothing is due before its time");
        let due = all_due(store, base + 10_000).await;
        assert_eq!(due.len(), 10, "those due by then, from every shard");
        for shard in 0..DUE_INDEX_SHARDS {
            let in_shard = store.due_tasks(shard, base + 40_000, 100).await.unwrap();
            assert!(
                in_shard.windows(2).all(|pair| pair[0].due_ms <= pair[1].due_ms),
                "earliest first within shard {shard}"
            );
            assert!(in_shard.iter().all(|task| task.shard == shard));
        }
        let first_shard = due[0].shard;
        let page = store.due_tasks(first_shard, base + 40_000, 1).await.unwrap();
        assert_eq!(page.len(), 1, "the limit is kept");

        store.unpark(&due).await.unwrap();
        store.unpark(&due).await.unwrap(); // already gone: no error
        assert!(all_due(store, base + 10_000).await.is_empty());
        assert_eq!(all_due(store, base + 40_000).await.len(), 30);
    }

    /// Many deliveries' attempts, some at the same millisecond: every page follows the one
    /// before, in one newest-first order (on DynamoDB, merged from the log's shards).
    pub async fn a_long_delivery_log_pages_newest_first_without_gaps_or_repeats(h: &impl Harness) {
        let store = h.store();
        let base = 1_700_000_000_000;
        let mut recorded = Vec::new();
        for n in 0..45_i64 {
            let event = format!("evt_{:02}", n % 15);
            let number = u32::try_from(n / 15 + 1).unwrap();
            // Three attempts share each millisecond.
            let attempt = attempt("m_long", "sub_1", &event, number, base + (n / 3) * 1_000);
            store.record_attempt(&attempt).await.unwrap();
            recorded.push(attempt);
        }
        let mut listed = Vec::new();
        let mut page = PageRequest::first(7);
        loop {
            let got = store.list_attempts("m_long", "sub_1", page.clone()).await.unwrap();
            assert!(got.items.len() <= 7);
            listed.extend(got.items);
            match got.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => break,
            }
        }
        recorded.sort_by(|a, b| {
            (b.attempted_at.unix_millis(), &b.event_id, b.attempt).cmp(&(
                a.attempted_at.unix_millis(),
                &a.event_id,
                a.attempt,
            ))
        });
        assert_eq!(listed, recorded);
    }

    pub async fn delivery_log_lists_newest_first_per_subscription(h: &impl Harness) {
        let store = h.store();
        let base = 1_700_000_000_000;
        for (i, (evt, number)) in [("evt_1", 1), ("evt_2", 1), ("evt_1", 2), ("evt_3", 1), ("evt_1", 3)]
            .iter()
            .enumerate()
        {
            store
                .record_attempt(&attempt("m_a", "sub_1", evt, *number, base + i as i64 * 1000))
                .await
                .unwrap();
        }
        store
            .record_attempt(&attempt("m_a", "sub_2", "evt_1", 1, base))
            .await
            .unwrap();
        store
            .record_attempt(&attempt("m_b", "sub_1", "evt_9", 1, base))
            .await
            .unwrap();

        let first = store
            .list_attempts("m_a", "sub_1", PageRequest::first(3))
            .await
            .unwrap();
        let order: Vec<_> = first.items.iter().map(|a| (a.event_id.as_str(), a.attempt)).collect();
        assert_eq!(order, [("evt_1", 3), ("evt_3", 1), ("evt_1", 2)]);
        assert_eq!(first.items[0], attempt("m_a", "sub_1", "evt_1", 3, base + 4000));
        let rest = store
            .list_attempts(
                "m_a",
                "sub_1",
                PageRequest {
                    limit: 3,
                    cursor: first.next_cursor,
                },
            )
            .await
            .unwrap();
        let order: Vec<_> = rest.items.iter().map(|a| (a.event_id.as_str(), a.attempt)).collect();
        assert_eq!(order, [("evt_2", 1), ("evt_1", 1)]);
        assert_eq!(rest.next_cursor, None);
        assert_eq!(
            store
                .list_attempts("m_a", "sub_2", PageRequest::first(10))
                .await
                .unwrap()
                .items
                .len(),
            1
        );
        let other = store
            .list_attempts("m_b", "sub_1", PageRequest::first(10))
            .await
            .unwrap();
        assert_eq!(other.items.len(), 1, "merchants share a delivery log");

        assert_eq!(store.delivery_status("evt_1", "sub_1").await.unwrap(), None);
        store
            .set_delivery_status("m_a", "evt_1", "sub_1", DeliveryStatus::Pending)
            .await
            .unwrap();
        assert_eq!(
            store.delivery_status("evt_1", "sub_1").await.unwrap(),
            Some(DeliveryStatus::Pending)
        );
        store
            .set_delivery_status("m_a", "evt_1", "sub_1", DeliveryStatus::Failed)
            .await
            .unwrap();
        assert_eq!(
            store.delivery_status("evt_1", "sub_1").await.unwrap(),
            Some(DeliveryStatus::Failed)
        );
        assert_eq!(store.delivery_status("evt_1", "sub_2").await.unwrap(), None);
    }

    pub async fn auth_callback_config_is_per_merchant(h: &impl Harness) {
        let store = h.store();
        let config = AuthCallbackConfig {
            url: "https://m_a.example/auth".into(),
            auth: AuthMethod::Basic {
                username: "platform".into(),
                password: "pw".into(),
            },
            timeout_ms: Some(1500),
            cache_ttl_seconds: None,
            revision: String::new(),
        };
        assert_eq!(store.get_auth_callback("m_a").await.unwrap(), None);
        store.put_auth_callback("m_a", &config).await.unwrap();
        assert_eq!(store.get_auth_callback("m_a").await.unwrap(), Some(config.clone()));
        assert_eq!(store.get_auth_callback("m_b").await.unwrap(), None);
        let replaced = AuthCallbackConfig {
            auth: AuthMethod::None,
            ..config
        };
        store.put_auth_callback("m_a", &replaced).await.unwrap();
        assert_eq!(store.get_auth_callback("m_a").await.unwrap(), Some(replaced));
        assert!(!store.delete_auth_callback("m_b").await.unwrap());
        assert!(store.delete_auth_callback("m_a").await.unwrap());
        assert_eq!(store.get_auth_callback("m_a").await.unwrap(), None);
    }

    pub async fn queue_send_receive_delete(h: &impl Harness) {
        let (queue, _dlq) = h.queue_pair("basic", 5).await;
        queue.send(message("one")).await.unwrap();
        let received = queue.receive(10, 30 * SEC, SEC).await.unwrap();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].body, "one");
        assert_eq!(received[0].receive_count, 1);
        assert!(
            queue.receive(10, 30 * SEC, Duration::ZERO).await.unwrap().is_empty(),
            "in flight yet visible"
        );
        queue.delete(&received[0].receipt_handle).await.unwrap();
        queue
            .change_visibility(&received[0].receipt_handle, Duration::ZERO)
            .await
            .ok();
        assert!(
            queue
                .receive(10, Duration::ZERO, Duration::ZERO)
                .await
                .unwrap()
                .is_empty(),
            "deleted yet received"
        );
    }

    pub async fn queue_delete_batch_reports_each_handle(h: &impl Harness) {
        let (queue, _dlq) = h.queue_pair("delete-batch", 5).await;
        let batch: Vec<_> = (0..3).map(|i| message(&format!("d{i}"))).collect();
        assert!(queue.send_batch(batch).await.unwrap().iter().all(Result::is_ok));
        let mut received = Vec::new();
        while received.len() < 3 {
            let more = queue.receive(10, 30 * SEC, SEC).await.unwrap();
            assert!(!more.is_empty(), "only {} of 3 arrived", received.len());
            received.extend(more);
        }
        let mut handles: Vec<String> = received.iter().map(|m| m.receipt_handle.clone()).collect();
        handles.insert(1, "not-a-receipt-handle".into());
        let results = queue.delete_batch(handles).await.unwrap();
        assert_eq!(results.len(), 4);
        assert_eq!(results[1], Err(StoreError::BadReceipt));
        assert!(
            results.iter().enumerate().all(|(i, r)| i == 1 || r.is_ok()),
            "{results:?}"
        );
        for m in &received {
            queue.change_visibility(&m.receipt_handle, Duration::ZERO).await.ok();
        }
        assert!(
            queue.receive(10, 30 * SEC, Duration::ZERO).await.unwrap().is_empty(),
            "deleted yet received"
        );
    }

    pub async fn queue_batch_reports_every_entry(h: &impl Harness) {
        let (queue, _dlq) = h.queue_pair("batch", 5).await;
        let batch: Vec<_> = (0..MAX_BATCH).map(|i| message(&format!("m{i}"))).collect();
        let results = queue.send_batch(batch).await.unwrap();
        assert_eq!(results.len(), MAX_BATCH);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let too_many: Vec<_> = (0..=MAX_BATCH).map(|i| message(&format!("x{i}"))).collect();
        assert!(queue.send_batch(too_many).await.is_err());
        let mut bodies = Vec::new();
        while bodies.len() < MAX_BATCH {
            let received = queue.receive(10, 30 * SEC, SEC).await.unwrap();
            assert!(!received.is_empty(), "only {} of {MAX_BATCH} arrived", bodies.len());
            bodies.extend(received.into_iter().map(|m| m.body));
        }
        bodies.sort();
        let mut expected: Vec<_> = (0..MAX_BATCH).map(|i| format!("m{i}")).collect();
        expected.sort();
        assert_eq!(bodies, expected);
    }

    pub async fn queue_delay_hides_a_message(h: &impl Harness) {
        let (queue, _dlq) = h.queue_pair("delay", 5).await;
        queue
            .send(OutgoingMessage {
                body: "later".into(),
                delay: 2 * SEC,
            })
            .await
            .unwrap();
        queue.send(message("now")).await.unwrap();
        let first = queue.receive(10, 30 * SEC, Duration::ZERO).await.unwrap();
        assert_eq!(first.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["now"]);
        tokio::time::sleep(2500 * Duration::from_millis(1)).await;
        let later = queue.receive(10, 30 * SEC, SEC).await.unwrap();
        assert_eq!(later.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["later"]);
    }

    pub async fn queue_visibility_timeout_redelivers_with_receive_count(h: &impl Harness) {
        let (queue, _dlq) = h.queue_pair("visibility", 5).await;
        queue.send(message("retry-me")).await.unwrap();
        let first = queue.receive(1, SEC, SEC).await.unwrap();
        assert_eq!(first[0].receive_count, 1);
        tokio::time::sleep(1500 * Duration::from_millis(1)).await;
        let second = queue.receive(1, 60 * SEC, SEC).await.unwrap();
        assert_eq!(second.len(), 1, "the visibility timeout did not return the message");
        assert_eq!(second[0].message_id, first[0].message_id);
        assert_eq!(second[0].receive_count, 2);
        // Changing the visibility to zero makes it receivable at once.
        queue
            .change_visibility(&second[0].receipt_handle, Duration::ZERO)
            .await
            .unwrap();
        let third = queue.receive(1, 60 * SEC, SEC).await.unwrap();
        assert_eq!(third[0].receive_count, 3);
    }

    pub async fn queue_dead_letters_after_max_receive_count(h: &impl Harness) {
        let (queue, dlq) = h.queue_pair("poison", 2).await;
        queue.send(message("poison")).await.unwrap();
        for count in 1..=2 {
            let received = queue.receive(1, Duration::ZERO, SEC).await.unwrap();
            assert_eq!(received.len(), 1, "receive {count}");
            assert_eq!(received[0].receive_count, count);
        }
        assert!(
            queue
                .receive(1, Duration::ZERO, Duration::ZERO)
                .await
                .unwrap()
                .is_empty(),
            "received a third time"
        );
        let dead = dlq.receive(10, 30 * SEC, 2 * SEC).await.unwrap();
        assert_eq!(dead.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["poison"]);
    }

    /// A handler that refuses a message sends it to the DLQ with a reason; the event source
    /// mapping (here: the test) deletes the original.
    pub async fn queue_dead_letters_on_request_and_refuses_bad_receipts(h: &impl Harness) {
        let (queue, dlq) = h.queue_pair("manual-dlq", 5).await;
        queue.send(message("give-up")).await.unwrap();
        let received = queue.receive(1, 30 * SEC, SEC).await.unwrap().remove(0);
        queue
            .send_dead_letter(&received.body, "attempts exhausted")
            .await
            .unwrap();
        queue.delete(&received.receipt_handle).await.unwrap();
        let dead = dlq.receive(10, 30 * SEC, SEC).await.unwrap();
        assert_eq!(dead.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["give-up"]);
        assert!(
            queue.receive(1, 30 * SEC, Duration::ZERO).await.unwrap().is_empty(),
            "still in the source queue"
        );
        assert!(
            dlq.send_dead_letter("nowhere", "a DLQ has no DLQ").await.is_err(),
            "a queue without a DLQ took a dead letter"
        );
        assert_eq!(queue.delete("not-a-receipt-handle").await, Err(StoreError::BadReceipt));
        assert_eq!(
            queue.change_visibility("not-a-receipt-handle", SEC).await,
            Err(StoreError::BadReceipt)
        );
    }

    pub async fn queue_refuses_a_delay_over_fifteen_minutes(h: &impl Harness) {
        let (queue, _dlq) = h.queue_pair("delay-quota", 5).await;
        let delayed = |seconds| OutgoingMessage {
            body: "later".into(),
            delay: Duration::from_secs(seconds),
        };
        assert_refused(queue.send(delayed(901)).await, Quota::SqsMessageTimer);
        queue.send(delayed(900)).await.unwrap();
        assert_eq!(queue.approximate_len().await.unwrap(), 1);
    }

    /// The SQS adapter refuses these before sending (the quota layer refuses them when sent
    /// anyway: `aws_quota_layer_on_moto`).
    pub async fn queue_refuses_batches_of_more_than_ten_entries(h: &impl Harness) {
        let (queue, _dlq) = h.queue_pair("batch-quota", 5).await;
        let eleven = (0..=MAX_BATCH).map(|i| message(&i.to_string())).collect();
        assert!(matches!(
            queue.send_batch(eleven).await,
            Err(StoreError::Backend { .. })
        ));
        let handles = vec!["not-a-receipt-handle".to_owned(); MAX_BATCH + 1];
        assert!(matches!(
            queue.delete_batch(handles).await,
            Err(StoreError::Backend { .. })
        ));
        assert_eq!(queue.approximate_len().await.unwrap(), 0);
    }

    pub async fn queue_refuses_a_message_over_256_kib(h: &impl Harness) {
        let (queue, _dlq) = h.queue_pair("size-quota", 5).await;
        assert_refused(
            queue.send(message(&"x".repeat(SQS_MAX_MESSAGE_BYTES + 1))).await,
            Quota::SqsMessageSize,
        );
        queue.send(message(&"x".repeat(SQS_MAX_MESSAGE_BYTES))).await.unwrap();
        let received = queue.receive(1, 30 * SEC, SEC).await.unwrap();
        assert_eq!(received[0].body.len(), SQS_MAX_MESSAGE_BYTES);
    }

    pub async fn queue_refuses_a_batch_over_256_kib_in_total(h: &impl Harness) {
        let (queue, _dlq) = h.queue_pair("payload-quota", 5).await;
        let third = "x".repeat(SQS_MAX_MESSAGE_BYTES / 3 + 1);
        let batch = |n| (0..n).map(|_| message(&third)).collect::<Vec<_>>();
        assert_refused(queue.send_batch(batch(3)).await, Quota::SqsBatchPayload);
        assert_eq!(queue.approximate_len().await.unwrap(), 0);
        let results = queue.send_batch(batch(2)).await.unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }

    /// SQS counts a message's 12 hours of visibility from the receive, so 12 h asked for
    /// any time after the receive reaches past them.
    pub async fn queue_refuses_a_visibility_past_twelve_hours_from_the_receive(h: &impl Harness) {
        let (queue, _dlq) = h.queue_pair("visibility-quota", 5).await;
        queue.send(message("held")).await.unwrap();
        assert_refused(
            queue.receive(1, SQS_MAX_VISIBILITY + SEC, SEC).await,
            Quota::SqsVisibilityTimeout,
        );
        let received = queue.receive(1, 30 * SEC, SEC).await.unwrap().remove(0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_refused(
            queue
                .change_visibility(&received.receipt_handle, SQS_MAX_VISIBILITY)
                .await,
            Quota::SqsVisibilityTimeout,
        );
        queue
            .change_visibility(&received.receipt_handle, SQS_MAX_VISIBILITY - MINUTE)
            .await
            .unwrap();
    }

    pub async fn queue_counts_messages_in_flight(h: &impl Harness) {
        let (queue, _dlq) = h.queue_pair("in-flight", 5).await;
        let batch = (0..4).map(|i| message(&format!("f{i}"))).collect();
        assert!(queue.send_batch(batch).await.unwrap().iter().all(Result::is_ok));
        assert_eq!(h.in_flight(&queue).await, 0, "sent is not in flight");
        let received = receive_all(&queue, 4).await;
        assert_eq!(h.in_flight(&queue).await, 4);
        queue.delete(&received[0].receipt_handle).await.unwrap();
        assert_eq!(h.in_flight(&queue).await, 3);
        queue
            .change_visibility(&received[1].receipt_handle, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(h.in_flight(&queue).await, 2, "visible again is not in flight");
        let rest = received[2..].iter().map(|m| m.receipt_handle.clone()).collect();
        assert!(queue.delete_batch(rest).await.unwrap().iter().all(Result::is_ok));
        assert_eq!(h.in_flight(&queue).await, 0);
    }

    pub async fn queue_long_poll_wakes_on_send(h: &impl Harness) {
        let (queue, _dlq) = h.queue_pair("long-poll", 5).await;
        let queue = std::sync::Arc::new(queue);
        let sender = {
            let queue = queue.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                queue.send(message("wake")).await.unwrap();
            })
        };
        let received = queue.receive(1, 30 * SEC, 10 * SEC).await.unwrap();
        sender.await.unwrap();
        assert_eq!(received.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["wake"]);
    }
}

/// The AWS quota layer in front of moto, on the requests the platform's adapters never
/// send (they check these themselves, or clamp) and on DynamoDB, which the embedded backend
/// has no wire protocol for. Each is refused before it is sent.
mod aws_quota_layer_on_moto {
    use std::collections::BTreeMap;
    use std::error::Error;
    use std::fmt::Debug;
    use std::time::Duration;

    use aws_sdk_dynamodb::types::AttributeValue::S;
    use aws_sdk_dynamodb::types::{Put, PutRequest, TransactWriteItem, WriteRequest};
    use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};
    use webhooks_storage::{MerchantStore, OutgoingMessage, QueueReceiver, QueueSender};
    use webhooks_tests::aws_quotas::{
        DYNAMODB_BATCH_WRITE_MAX, DYNAMODB_MAX_ITEM_BYTES, DYNAMODB_TRANSACT_WRITE_MAX, Quota, QuotaExceeded,
        SQS_MAX_BATCH_ENTRIES, SQS_MAX_RECEIVE,
    };
    use webhooks_tests::moto::MotoDeployment;

    /// The quota the layer refused `result` under.
    fn refusal<T: Debug, E: Error + 'static>(result: Result<T, E>) -> Quota {
        let error = result.expect_err("the layer let it through");
        match QuotaExceeded::find(&error) {
            Some(refused) => refused.quota,
            None => panic!("not refused by the quota layer: {error:?}"),
        }
    }

    fn item(sk: &str, data_bytes: usize) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
        std::collections::HashMap::from([
            ("pk".to_owned(), S("QUOTA#test".into())),
            ("sk".to_owned(), S(sk.into())),
            ("data".to_owned(), S("x".repeat(data_bytes))),
        ])
    }

    #[tokio::test]
    async fn sqs_requests_over_a_quota_are_refused_before_they_are_sent() {
        let aws = MotoDeployment::start().await;
        let (sqs, url) = (&aws.sqs, &aws.queues.deliveries);
        let receive = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(SQS_MAX_RECEIVE as i32 + 1);
        assert_eq!(refusal(receive.send().await), Quota::SqsReceiveMax);
        let entries = (0..=SQS_MAX_BATCH_ENTRIES).map(|i| {
            let id = i.to_string();
            SendMessageBatchRequestEntry::builder()
                .id(&id)
                .message_body(id)
                .build()
                .unwrap()
        });
        let send = sqs
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries.collect()));
        assert_eq!(refusal(send.send().await), Quota::SqsMessageBatch);
        let entries = (0..=SQS_MAX_BATCH_ENTRIES).map(|i| {
            let id = i.to_string();
            DeleteMessageBatchRequestEntry::builder()
                .id(&id)
                .receipt_handle(id)
                .build()
                .unwrap()
        });
        let delete = sqs
            .delete_message_batch()
            .queue_url(url)
            .set_entries(Some(entries.collect()));
        assert_eq!(refusal(delete.send().await), Quota::SqsMessageBatch);
        let delayed = sqs
            .send_message()
            .queue_url(url)
            .message_body("later")
            .delay_seconds(901);
        assert_eq!(refusal(delayed.send().await), Quota::SqsMessageTimer);
        assert_eq!(
            aws.quota_layer().counts(),
            BTreeMap::new(),
            "a refused request was sent"
        );
    }

    #[tokio::test]
    async fn dynamodb_writes_over_a_quota_are_refused_before_they_are_sent() {
        let aws = MotoDeployment::start().await;
        let (dynamodb, table) = (&aws.dynamodb, &aws.names.table);
        let put = |data_bytes| {
            dynamodb
                .put_item()
                .table_name(table)
                .set_item(Some(item("big", data_bytes)))
        };
        assert_eq!(refusal(put(401 * 1024).send().await), Quota::DynamoDbItemSize);
        // Under the quota, and under moto's own cut-off (405,000 bytes; AWS's is 409,600).
        put(DYNAMODB_MAX_ITEM_BYTES * 3 / 4)
            .send()
            .await
            .expect("an item of 300 KB");

        let batch = |n: usize| {
            let requests = (0..n)
                .map(|i| {
                    let put = PutRequest::builder()
                        .set_item(Some(item(&format!("batch-{i}"), 1)))
                        .build()
                        .unwrap();
                    WriteRequest::builder().put_request(put).build()
                })
                .collect();
            dynamodb.batch_write_item().request_items(table, requests)
        };
        assert_eq!(
            refusal(batch(DYNAMODB_BATCH_WRITE_MAX + 1).send().await),
            Quota::DynamoDbBatchWriteItem
        );
        batch(DYNAMODB_BATCH_WRITE_MAX).send().await.expect("a batch of 25");

        let actions = (0..=DYNAMODB_TRANSACT_WRITE_MAX).map(|i| {
            let put = Put::builder()
                .table_name(table)
                .set_item(Some(item(&format!("tx-{i}"), 1)))
                .build()
                .unwrap();
            TransactWriteItem::builder().put(put).build()
        });
        let transaction = dynamodb
            .transact_write_items()
            .set_transact_items(Some(actions.collect()));
        assert_eq!(refusal(transaction.send().await), Quota::DynamoDbTransactWriteItems);
        assert_eq!(
            aws.quota_layer().counts().into_values().sum::<u64>(),
            2,
            "only the two requests within quota were sent"
        );
    }

    #[tokio::test]
    async fn queries_whose_key_condition_dynamodb_refuses_are_refused() {
        let aws = MotoDeployment::start().await;
        let query = |condition: &str| {
            aws.dynamodb
                .query()
                .table_name(&aws.names.table)
                .key_condition_expression(condition)
                .expression_attribute_values(":p", S("QUOTA#test".into()))
                .expression_attribute_values(":s", S("a".into()))
        };
        for refused in [
            "sk = :s AND begins_with(pk, :p)",
            "pk = :p OR sk = :s",
            "pk = :p AND sk > :s AND sk < :s",
            "pk = :p AND data = :s",
        ] {
            assert_eq!(
                refusal(query(refused).send().await),
                Quota::DynamoDbKeyCondition,
                "{refused}"
            );
        }
        let unused = query("pk = :p").send().await;
        assert_eq!(
            refusal(unused),
            Quota::DynamoDbKeyCondition,
            ":s is defined but not used"
        );
        query("pk = :p AND sk >= :s")
            .send()
            .await
            .expect("a key condition DynamoDB takes");
    }

    #[tokio::test]
    async fn requests_are_counted_by_service_and_operation() {
        let aws = MotoDeployment::start().await;
        assert_eq!(aws.quota_layer().counts(), BTreeMap::new(), "set-up is not counted");
        let queue = aws.queue(&aws.queues.deliveries);
        assert_eq!(aws.store.get_merchant("m_nobody").await.unwrap(), None);
        let message = OutgoingMessage {
            body: "counted".into(),
            delay: Duration::ZERO,
        };
        queue.send(message).await.unwrap();
        let received = queue
            .receive(1, Duration::from_secs(30), Duration::from_secs(1))
            .await
            .unwrap();
        queue.delete(&received[0].receipt_handle).await.unwrap();
        let counted = |service: &str, operation: &str| ((service.to_owned(), operation.to_owned()), 1);
        assert_eq!(
            aws.quota_layer().counts(),
            BTreeMap::from([
                counted("DynamoDB", "GetItem"),
                counted("SQS", "DeleteMessage"),
                counted("SQS", "ReceiveMessage"),
                counted("SQS", "SendMessage"),
            ])
        );
        aws.quota_layer().reset();
        assert_eq!(aws.quota_layer().counts(), BTreeMap::new());
    }
}

/// The request counters the merchant API's rate limits count in (`RequestCounters`), on
/// both backends.
/// A subscription's attempt log and held deliveries on DynamoDB, write-sharded
/// (`rules::shard`): what was written before they were sharded, or with fewer shards, is
/// still read, and the count only grows.
mod subscription_shards {
    use std::collections::BTreeMap;

    use aws_sdk_dynamodb::types::AttributeValue::S;
    use webhooks_storage::aws::DynamoStore;
    use webhooks_storage::{DEFAULT_RETENTION, DeliveryLog, EndpointBreaker, HeldTask, Keyring, PageRequest};
    use webhooks_tests::moto::{MotoDeployment, TEST_SUBSCRIPTION_SHARDS};

    use crate::attempt;

    async fn store(aws: &MotoDeployment) -> DynamoStore {
        DynamoStore::connect(
            aws.dynamodb.clone(),
            aws.names.table.clone(),
            DEFAULT_RETENTION,
            Keyring::withheld(),
        )
        .await
        .unwrap()
    }

    /// How many attempts are in the log's partition `pk`, read straight from the table.
    async fn items_in(aws: &MotoDeployment, pk: &str) -> usize {
        let output = aws
            .dynamodb
            .query()
            .table_name(&aws.names.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", S(pk.into()))
            .send()
            .await
            .unwrap();
        output.items().len()
    }

    #[tokio::test]
    async fn attempts_written_with_any_shard_count_are_listed_and_counted_together() {
        let aws = MotoDeployment::start().await;
        let base = 1_700_000_000_000;
        let record = |store: DynamoStore, from: i64| async move {
            for n in from..from + 20 {
                let at = base + n * 1_000;
                store
                    .record_attempt(&attempt("m_a", "sub_1", &format!("evt_{n:03}"), 1, at))
                    .await
                    .unwrap();
            }
        };
        // A store that spreads over nothing writes the one partition of an unsharded log.
        let unsharded = store(&aws).await;
        record(unsharded.clone(), 0).await;
        assert_eq!(items_in(&aws, "ATTEMPTS#m_a#sub_1").await, 20);
        // The deployment's store spreads over its shards; one started later with more, over those.
        record(aws.store.clone(), 20).await;
        let wider = store(&aws).await.with_subscription_shards(16).await.unwrap();
        record(wider, 40).await;
        let mut used = 0;
        for shard in 1..16 {
            used += usize::from(items_in(&aws, &format!("ATTEMPTS#m_a#sub_1#{shard}")).await > 0);
        }
        // 20 attempts thrown at random into 16 shards fill about 11 of them.
        assert!(used >= 8, "20 attempts spread over {used} of shards 1..16");

        // Any reader, whatever it writes with, reads every shard the table's count names.
        let listed = unsharded
            .list_attempts("m_a", "sub_1", PageRequest::first(100))
            .await
            .unwrap();
        let events: Vec<String> = listed.items.iter().map(|a| a.event_id.clone()).collect();
        let newest_first: Vec<String> = (0..60).rev().map(|n| format!("evt_{n:03}")).collect();
        assert_eq!(events, newest_first);
        assert_eq!(
            unsharded
                .count_attempts("m_a", "sub_1", base, base + 60_000)
                .await
                .unwrap(),
            (60, 60)
        );
    }

    #[tokio::test]
    async fn the_tables_shard_count_only_grows() {
        let aws = MotoDeployment::start().await;
        let fewer = store(&aws).await.with_subscription_shards(2).await.unwrap();
        let base = 1_700_000_000_000;
        for n in 0..40 {
            let attempt = attempt("m_a", "sub_1", &format!("evt_{n:03}"), 1, base + n);
            fewer.record_attempt(&attempt).await.unwrap();
        }
        // It writes over the deployment's count, not its own lower one.
        let mut used = 0;
        for shard in 0..TEST_SUBSCRIPTION_SHARDS {
            let pk = match shard {
                0 => "ATTEMPTS#m_a#sub_1".to_owned(),
                shard => format!("ATTEMPTS#m_a#sub_1#{shard}"),
            };
            used += usize::from(items_in(&aws, &pk).await > 0);
        }
        assert_eq!(used, TEST_SUBSCRIPTION_SHARDS as usize);
    }

    #[tokio::test]
    async fn held_deliveries_written_with_any_shard_count_come_out_oldest_first_and_leave_once() {
        let aws = MotoDeployment::start().await;
        let endpoint = "m_a#sub_down";
        let unsharded = store(&aws).await;
        for n in 0..10 {
            let task = HeldTask::new(1_000 + n, &format!("evt_{n:02}#sub_down#1"), format!("body {n}"));
            let holder = if n % 2 == 0 { &unsharded } else { &aws.store };
            holder.hold(endpoint, &task, 1_000).await.unwrap();
        }
        assert!(
            items_in(&aws, "HELD#m_a#sub_down").await >= 5,
            "the unsharded ones in shard 0"
        );

        let first = unsharded.held_tasks(endpoint, 0, i64::MAX, 4).await.unwrap();
        let bodies: Vec<&str> = first.iter().map(|task| task.body.as_str()).collect();
        assert_eq!(bodies, ["body 0", "body 1", "body 2", "body 3"]);
        unsharded.unhold(endpoint, &first).await.unwrap();
        let rest = aws.store.held_tasks(endpoint, 0, i64::MAX, 100).await.unwrap();
        let bodies: Vec<&str> = rest.iter().map(|task| task.body.as_str()).collect();
        assert_eq!(bodies, ["body 4", "body 5", "body 6", "body 7", "body 8", "body 9"]);
        aws.store.unhold(endpoint, &rest).await.unwrap();
        assert!(
            aws.store
                .held_tasks(endpoint, 0, i64::MAX, 100)
                .await
                .unwrap()
                .is_empty()
        );
    }

    /// A failing endpoint's slots are read before any is written: when all are taken, a
    /// try is one `Query` and no write on the partition every container comes to.
    #[tokio::test]
    async fn a_try_when_every_probe_slot_is_taken_is_one_read_and_no_write() {
        let aws = MotoDeployment::start().await;
        let endpoint = "m_a#sub_down";
        for lease in ["a", "b"] {
            assert!(
                aws.store
                    .take_probe_slot(endpoint, 2, lease, 1_000, 60_000)
                    .await
                    .unwrap()
            );
        }
        aws.quota_layer().reset();
        assert!(
            !aws.store
                .take_probe_slot(endpoint, 2, "c", 2_000, 60_000)
                .await
                .unwrap()
        );
        let requests = |operation: &str, count| (("DynamoDB".to_owned(), operation.to_owned()), count);
        assert_eq!(aws.quota_layer().counts(), BTreeMap::from([requests("Query", 1)]));
        // A lease run out is free again, for one conditional put.
        assert!(
            aws.store
                .take_probe_slot(endpoint, 2, "c", 60_000, 90_000)
                .await
                .unwrap()
        );
    }
}

mod request_counters {
    conformance!(
        a_counter_counts_each_request_of_its_key_in_its_window,
        concurrent_requests_are_each_counted_once,
    );

    mod cases {
        use std::time::{SystemTime, UNIX_EPOCH};

        use webhooks_storage::RequestCounters;
        use webhooks_tests::backends::Harness;

        /// The start of a window (2026-01-01T00:00:00Z); counters do not care when it is.
        const WINDOW: i64 = 1_767_225_600_000;
        /// The next window of a minute.
        const NEXT_WINDOW: i64 = WINDOW + 60_000;

        /// An expiry an hour from now, so that no store deletes a counter mid-test.
        fn in_an_hour() -> i64 {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            i64::try_from(now.as_millis()).unwrap() + 3_600_000
        }

        pub async fn a_counter_counts_each_request_of_its_key_in_its_window(h: &impl Harness) {
            let store = h.store();
            let expires = in_an_hour();
            assert_eq!(store.request_count("merchant:m_a", WINDOW).await.unwrap(), 0);
            for expected in 1..=3 {
                assert_eq!(
                    store.count_request("merchant:m_a", WINDOW, expires).await.unwrap(),
                    expected
                );
            }
            assert_eq!(store.request_count("merchant:m_a", WINDOW).await.unwrap(), 3);
            assert_eq!(
                store.request_count("merchant:m_a", WINDOW).await.unwrap(),
                3,
                "reading adds nothing"
            );
            assert_eq!(store.count_request("merchant:m_b", WINDOW, expires).await.unwrap(), 1);
            assert_eq!(
                store.count_request("merchant:m_a", NEXT_WINDOW, expires).await.unwrap(),
                1
            );
            let source = "bad-key:2001:db8:1:2::/64";
            assert_eq!(store.count_request(source, WINDOW, expires).await.unwrap(), 1);
            assert_eq!(store.request_count(source, NEXT_WINDOW).await.unwrap(), 0);
            assert_eq!(store.request_count("merchant:m_a", WINDOW).await.unwrap(), 3);
        }

        pub async fn concurrent_requests_are_each_counted_once(h: &impl Harness) {
            const REQUESTS: u64 = 20;
            let expires = in_an_hour();
            let counting = (0..REQUESTS).map(|_| {
                let store = h.store().clone();
                tokio::spawn(async move { store.count_request("merchant:m_busy", WINDOW, expires).await })
            });
            let mut counts = Vec::new();
            for task in counting.collect::<Vec<_>>() {
                counts.push(task.await.unwrap().unwrap());
            }
            counts.sort_unstable();
            assert_eq!(counts, (1..=REQUESTS).collect::<Vec<_>>(), "each count is seen once");
            assert_eq!(
                h.store().request_count("merchant:m_busy", WINDOW).await.unwrap(),
                REQUESTS
            );
        }
    }
}

/// Recovery's claims (`DeliveryRecovery`), on both backends: the failed deliveries first
/// attempted in a window of a subscription's log, oldest first, each claimed once.
mod recovery {
    conformance!(
        recovery_claims_the_failed_deliveries_first_attempted_in_the_window_oldest_first,
        recovery_pages_follow_the_log_to_the_end_of_the_window,
        concurrent_recoveries_claim_each_delivery_once,
    );

    /// What a page costs on DynamoDB, in requests: one `GetItem` of the log's shard count,
    /// one `Query` per shard of the log, one `BatchGetItem` of the statuses, one
    /// `UpdateItem` per delivery claimed.
    #[tokio::test]
    async fn on_dynamodb_a_page_is_one_query_one_batch_read_and_one_update_per_claim() {
        use std::collections::BTreeMap;

        use webhooks_domain::DeliveryStatus::{Failed, Succeeded};
        use webhooks_storage::DeliveryRecovery;
        use webhooks_tests::moto::MotoDeployment;

        use cases::{BASE, FAILED, scope, seed};

        let aws = MotoDeployment::start().await;
        for n in 0..12_i64 {
            let (attempts, status) = if n % 3 == 0 { (1, Succeeded) } else { (3, Failed) };
            seed(
                &aws.store,
                ("m_a", "sub_1"),
                &format!("evt_{n:02}"),
                BASE + n * 10_000,
                attempts,
                status,
            )
            .await;
        }
        aws.quota_layer().reset();
        let page = aws
            .store
            .claim_for_recovery(&scope(BASE, BASE + 200_000, FAILED), None, 100)
            .await
            .unwrap();
        assert_eq!(page.claimed.len(), 8);
        let requests = |operation: &str, count| (("DynamoDB".to_owned(), operation.to_owned()), count);
        assert_eq!(
            aws.quota_layer().counts(),
            BTreeMap::from([
                requests("BatchGetItem", 1),
                requests("GetItem", 1),
                requests("Query", u64::from(webhooks_tests::moto::TEST_SUBSCRIPTION_SHARDS)),
                requests("UpdateItem", 8)
            ])
        );
    }

    mod cases {
        use std::collections::HashSet;

        use webhooks_domain::DeliveryStatus::{self, Failed, Pending, Skipped, Succeeded};
        use webhooks_storage::{
            ClaimedDelivery, DeliveryLog, DeliveryRecovery, LogPosition, RecoveryPage, RecoveryScope,
        };
        use webhooks_tests::backends::Harness;

        use crate::attempt;

        /// Where the tests' windows start.
        pub(super) const BASE: i64 = 1_700_000_000_000;
        pub(super) const FAILED: &[DeliveryStatus] = &[Failed];

        /// A delivery as deliver records it: attempts 1 to `attempts`, a second apart from
        /// `first_ms`, the last leaving it `status`.
        pub(super) async fn seed<S: DeliveryLog>(
            store: &S,
            (merchant_id, subscription_id): (&str, &str),
            event_id: &str,
            first_ms: i64,
            attempts: u32,
            status: DeliveryStatus,
        ) {
            for n in 1..=attempts {
                let made = attempt(
                    merchant_id,
                    subscription_id,
                    event_id,
                    n,
                    first_ms + i64::from(n - 1) * 1_000,
                );
                let now = if n == attempts { status } else { Pending };
                store.record_attempt_once(&made, now, None).await.unwrap();
            }
        }

        pub(super) fn scope(since_ms: i64, until_ms: i64, statuses: &[DeliveryStatus]) -> RecoveryScope<'_> {
            RecoveryScope {
                merchant_id: "m_a",
                subscription_id: "sub_1",
                since_ms,
                until_ms,
                statuses,
            }
        }

        fn claimed(event_id: &str, attempt: u32, previous: DeliveryStatus) -> ClaimedDelivery {
            ClaimedDelivery {
                event_id: event_id.into(),
                attempt,
                previous,
            }
        }

        /// Every page of the scope's window, `limit` attempts a page: the claims in order,
        /// and how many pages it took.
        async fn claim_all<S: DeliveryRecovery>(
            store: &S,
            scope: &RecoveryScope<'_>,
            limit: usize,
        ) -> (Vec<ClaimedDelivery>, usize) {
            let (mut all, mut pages, mut after): (Vec<ClaimedDelivery>, usize, Option<LogPosition>) =
                (Vec::new(), 0, None);
            loop {
                let RecoveryPage { claimed, next } =
                    store.claim_for_recovery(scope, after.as_ref(), limit).await.unwrap();
                all.extend(claimed);
                pages += 1;
                match next {
                    Some(next) => after = Some(next),
                    None => return (all, pages),
                }
            }
        }

        pub async fn recovery_claims_the_failed_deliveries_first_attempted_in_the_window_oldest_first(
            h: &impl Harness,
        ) {
            let store = h.store();
            let mine = ("m_a", "sub_1");
            let (since, until) = (BASE + 10_000, BASE + 20_000);
            // First attempted before the window, retried in it: not the window's.
            seed(store, mine, "evt_before", since - 1, 3, Failed).await;
            seed(store, mine, "evt_at_since", since, 1, Failed).await;
            seed(store, mine, "evt_delivered", since + 1_000, 2, Succeeded).await;
            seed(store, mine, "evt_retrying", since + 1_500, 2, Pending).await;
            seed(store, mine, "evt_retried", since + 2_000, 3, Failed).await;
            seed(store, mine, "evt_skipped", since + 6_000, 1, Skipped).await;
            seed(store, mine, "evt_last_ms", until - 1, 1, Failed).await;
            seed(store, mine, "evt_at_until", until, 1, Failed).await;
            seed(store, ("m_a", "sub_2"), "evt_other_sub", since + 3_000, 1, Failed).await;
            seed(store, ("m_b", "sub_1"), "evt_other_merchant", since + 3_000, 1, Failed).await;
            // An attempt without a status (recorded by hand): nothing to claim.
            let unrecorded = attempt("m_a", "sub_1", "evt_no_status", 1, since + 4_000);
            store.record_attempt(&unrecorded).await.unwrap();

            let page = store
                .claim_for_recovery(&scope(since, until, FAILED), None, 100)
                .await
                .unwrap();
            let expected = [
                claimed("evt_at_since", 2, Failed),
                claimed("evt_retried", 4, Failed),
                claimed("evt_last_ms", 2, Failed),
            ];
            assert_eq!(
                page,
                RecoveryPage {
                    claimed: expected.to_vec(),
                    next: None
                }
            );
            let status = |event_id: &'static str, subscription_id: &'static str| async move {
                store.delivery_status(event_id, subscription_id).await.unwrap().unwrap()
            };
            for claim in &expected {
                let event_id = claim.event_id.as_str();
                assert_eq!(store.delivery_status(event_id, "sub_1").await.unwrap(), Some(Pending));
            }
            for (event_id, subscription_id, unchanged) in [
                ("evt_before", "sub_1", Failed),
                ("evt_delivered", "sub_1", Succeeded),
                ("evt_skipped", "sub_1", Skipped),
                ("evt_at_until", "sub_1", Failed),
                ("evt_other_sub", "sub_2", Failed),
                ("evt_other_merchant", "sub_1", Failed),
            ] {
                assert_eq!(status(event_id, subscription_id).await, unchanged, "{event_id}");
            }

            // Claimed once: the same recovery again finds nothing left to claim.
            let again = store
                .claim_for_recovery(&scope(since, until, FAILED), None, 100)
                .await
                .unwrap();
            assert_eq!(
                again,
                RecoveryPage {
                    claimed: vec![],
                    next: None
                }
            );
            // The statuses to claim from are the caller's.
            let skipped = store
                .claim_for_recovery(&scope(since, until, &[Skipped]), None, 100)
                .await
                .unwrap();
            assert_eq!(skipped.claimed, [claimed("evt_skipped", 2, Skipped)]);
            // A delivery failed again (its new attempt recorded) is claimed again.
            let failed_again = attempt("m_a", "sub_1", "evt_at_since", 2, until + 60_000);
            store.record_attempt_once(&failed_again, Failed, None).await.unwrap();
            let page = store
                .claim_for_recovery(&scope(since, until, FAILED), None, 100)
                .await
                .unwrap();
            assert_eq!(page.claimed, [claimed("evt_at_since", 3, Failed)]);
        }

        pub async fn recovery_pages_follow_the_log_to_the_end_of_the_window(h: &impl Harness) {
            let store = h.store();
            // Ten failed deliveries of two attempts each, interleaved in the log:
            // evt_0 #1, evt_1 #1, evt_0 #2, evt_2 #1, evt_1 #2, ... (20 attempts).
            for n in 0..10_i64 {
                seed(store, ("m_a", "sub_1"), &format!("evt_{n}"), BASE + n * 500, 2, Failed).await;
            }
            let window = scope(BASE, BASE + 60_000, FAILED);

            let first = store.claim_for_recovery(&window, None, 3).await.unwrap();
            let first_three: Vec<&str> = first.claimed.iter().map(|c| c.event_id.as_str()).collect();
            assert_eq!(
                first_three,
                ["evt_0", "evt_1"],
                "the first attempts among the first three"
            );
            let next = first.next.expect("more to read");
            assert_eq!(next.at_ms(), BASE + 1_000, "the third attempt's time");

            let (rest, pages) = claim_all(store, &window, 3).await;
            let order: Vec<String> = first.claimed.iter().chain(&rest).map(|c| c.event_id.clone()).collect();
            let expected: Vec<String> = (0..10).map(|n| format!("evt_{n}")).collect();
            assert_eq!(order, expected, "oldest first, each once");
            assert_eq!(pages, 7, "20 attempts, 3 a page");
            assert!(rest.iter().all(|c| c.attempt == 3 && c.previous == Failed));

            // A window that ends with a full page says so: no empty page after it.
            for n in 0..10_i64 {
                let event_id = format!("evt_{n}");
                store
                    .set_delivery_status("m_a", &event_id, "sub_1", Failed)
                    .await
                    .unwrap();
            }
            let (again, pages) = claim_all(store, &window, 4).await;
            assert_eq!((again.len(), pages), (10, 5));
        }

        pub async fn concurrent_recoveries_claim_each_delivery_once(h: &impl Harness) {
            let store = h.store();
            for n in 0..30_i64 {
                seed(
                    store,
                    ("m_a", "sub_1"),
                    &format!("evt_{n:02}"),
                    BASE + n * 100,
                    1,
                    Failed,
                )
                .await;
            }
            let window = scope(BASE, BASE + 60_000, FAILED);
            let (one, two) = tokio::join!(claim_all(store, &window, 4), claim_all(store, &window, 4));
            let ids =
                |claims: &[ClaimedDelivery]| -> HashSet<String> { claims.iter().map(|c| c.event_id.clone()).collect() };
            let (one, two) = (ids(&one.0), ids(&two.0));
            assert!(one.is_disjoint(&two), "claimed by both: {:?}", one.intersection(&two));
            assert_eq!(one.len() + two.len(), 30, "every delivery claimed by one of them");
        }
    }
}
