//! Endpoint health (DESIGN section 3) on both backends: a failing endpoint gets at most its
//! probe slots at once and the rest is held, keeping attempt numbers; a probe's success
//! releases the held deliveries oldest first; one failing for `disable_after` is disabled
//! with its deliveries held; health is a compare-and-swap a replace leaves alone.

use std::sync::Arc;
use std::time::Duration;

use webhooks_deliver::{Deliver, DeliverConfig, TaskOutcome, http_client};
use webhooks_domain::event::derive_event_id;
use webhooks_domain::health::PROBE_INTERVAL;
use webhooks_domain::{
    Clock, DeliveryStatus, DeliveryTask, EndpointHealth, EventName, HealthStatus, IsoTime, PlatformEvent, UrlPolicy,
};
use webhooks_storage::{DeliveryLog, EndpointBreaker, QueueReceiver, ReceivedMessage, SubscriptionStore};
use webhooks_tests::backends::Harness;
use webhooks_tests::clock::ManualClock;
use webhooks_tests::fixtures::{event, secrets, subscription};
use webhooks_tests::merchant::TestMerchant;

const LOOPBACK: UrlPolicy = UrlPolicy {
    allow_http: true,
    allow_private: true,
};
const MERCHANT: &str = "m_health";
const SEC: Duration = Duration::from_secs(1);
const DAY: Duration = Duration::from_secs(86_400);

webhooks_tests::on_both_backends!(
    health_is_a_compare_and_swap_that_a_replace_leaves_alone,
    a_failing_endpoint_gets_at_most_its_probe_slots_at_once_and_the_rest_is_held,
    a_probe_that_succeeds_releases_the_held_deliveries_oldest_first_each_once,
    a_failure_lets_one_held_delivery_through_as_a_probe_per_interval,
    an_endpoint_failing_past_disable_after_is_disabled_and_its_deliveries_held,
    the_release_lease_lets_one_release_at_a_time_and_is_free_once_it_runs_out,
    scattered_failures_write_no_health_until_one_container_sees_three_in_a_row,
);

/// Deliver on `clock` with the default schedule, 5 s requests and 2 probe slots.
fn deliver_on<H: Harness>(h: &H, queue: &H::Queue, clock: Arc<ManualClock>) -> Deliver<H::Store, H::Queue> {
    let config = DeliverConfig {
        timeout: 5 * SEC,
        ..DeliverConfig::default()
    };
    Deliver::new(h.store().clone(), queue.clone(), http_client(&LOOPBACK), config, clock)
}

fn task(event_id: &str, subscription_id: &str) -> DeliveryTask {
    DeliveryTask::first(event(MERCHANT, event_id), subscription_id.into())
}

async fn drain<Q: QueueReceiver>(queue: &Q) -> Vec<ReceivedMessage> {
    let mut all = Vec::new();
    loop {
        let wait = if all.is_empty() { 2 * SEC } else { Duration::ZERO };
        let received = queue.receive(10, 60 * SEC, wait).await.unwrap();
        if received.is_empty() {
            return all;
        }
        all.extend(received);
    }
}

async fn health_of(h: &impl Harness, subscription_id: &str) -> EndpointHealth {
    let found = h.store().get_subscription(MERCHANT, subscription_id).await.unwrap();
    found.expect("the subscription").health
}

/// Makes the endpoint failing with three failed attempts in a row (three requests to it).
async fn make_failing<H: Harness>(deliver: &Deliver<H::Store, H::Queue>, h: &H, subscription_id: &str) {
    for n in 0..3 {
        let outcome = deliver
            .deliver(&task(&format!("evt_warm_{n}"), subscription_id))
            .await
            .unwrap();
        assert!(matches!(outcome, TaskOutcome::RetryScheduled(_)), "{outcome:?}");
    }
    let health = health_of(h, subscription_id).await;
    assert_eq!((health.status, health.consecutive_failures), (HealthStatus::Failing, 3));
    assert_eq!(health.last_error.as_deref(), Some("503"));
}

pub mod cases {
    use super::*;

    /// A healthy endpoint's failure is stored only once a container's recent attempts say
    /// it is down, three in a row at least (`docs/capacity.md`: a busy endpoint's scattered
    /// failures would write its subscription item past DynamoDB's 1,000 writes a second).
    pub async fn scattered_failures_write_no_health_until_one_container_sees_three_in_a_row(h: &impl Harness) {
        let merchant = TestMerchant::start().await;
        let (deliveries, _dlq) = h.queue_pair("health-scattered", 5).await;
        let clock = Arc::new(ManualClock::default());
        let container_a = deliver_on(h, &deliveries, clock.clone());
        let container_b = deliver_on(h, &deliveries, clock);
        let flaky = subscription(MERCHANT, "sub_flaky", &merchant.url("/flaky/2"));
        let down = subscription(MERCHANT, "sub_down", &merchant.url("/status/503"));
        for sub in [&flaky, &down] {
            h.store().create_subscription(sub, &secrets()).await.unwrap();
        }

        // Two failures, then a success: nothing stored at any point.
        for event_id in ["evt_f1", "evt_f2"] {
            container_a.deliver(&task(event_id, "sub_flaky")).await.unwrap();
            assert!(health_of(h, "sub_flaky").await.is_clean());
        }
        let outcome = container_a.deliver(&task("evt_f3", "sub_flaky")).await.unwrap();
        assert_eq!(outcome, TaskOutcome::Delivered);
        assert!(health_of(h, "sub_flaky").await.is_clean());

        // Two failures in each of two containers: no container has seen three in a row.
        for (container, event_id) in [
            (&container_a, "evt_d1"),
            (&container_b, "evt_d2"),
            (&container_a, "evt_d3"),
            (&container_b, "evt_d4"),
        ] {
            container.deliver(&task(event_id, "sub_down")).await.unwrap();
        }
        assert!(health_of(h, "sub_down").await.is_clean());
        // The third in a row in one container: failing, counted from that run.
        container_a.deliver(&task("evt_d5", "sub_down")).await.unwrap();
        let health = health_of(h, "sub_down").await;
        assert_eq!((health.status, health.consecutive_failures), (HealthStatus::Failing, 3));
        assert_eq!(health.last_error.as_deref(), Some("503"));
    }

    pub async fn health_is_a_compare_and_swap_that_a_replace_leaves_alone(h: &impl Harness) {
        let store = h.store();
        let sub = subscription(MERCHANT, "sub_cas", "https://merchant.example/hook");
        store.create_subscription(&sub, &secrets()).await.unwrap();
        let now = IsoTime::new(time::OffsetDateTime::now_utc()).unwrap();
        let failing = EndpointHealth::default().after_failure(now, "503");
        let clean = EndpointHealth::default();
        assert!(
            store
                .record_health(MERCHANT, "sub_cas", &clean, &failing)
                .await
                .unwrap()
        );
        assert!(
            !store.record_health(MERCHANT, "sub_cas", &clean, &clean).await.unwrap(),
            "a stale read is refused"
        );
        // A replace of the subscription (an API PATCH) keeps the health deliver wrote.
        let (mut read, signing) = store
            .get_subscription_with_secrets(MERCHANT, "sub_cas")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.health, failing);
        read.description = "changed".into();
        store.update_subscription(&read, &signing).await.unwrap();
        let listed = store
            .list_subscriptions(MERCHANT, webhooks_storage::PageRequest::first(10))
            .await
            .unwrap();
        assert_eq!(listed.items[0].health, failing, "listings show it");
        assert_eq!(listed.items[0].description, "changed");
        assert!(
            store
                .record_health(MERCHANT, "sub_cas", &failing, &clean)
                .await
                .unwrap()
        );
        assert!(store.delete_subscription(MERCHANT, "sub_cas").await.unwrap());
        assert!(
            !store
                .record_health(MERCHANT, "sub_cas", &clean, &failing)
                .await
                .unwrap(),
            "a deleted subscription is not brought back"
        );
        assert_eq!(store.get_subscription(MERCHANT, "sub_cas").await.unwrap(), None);
    }

    pub async fn a_failing_endpoint_gets_at_most_its_probe_slots_at_once_and_the_rest_is_held(h: &impl Harness) {
        let merchant = TestMerchant::start().await;
        let (deliveries, _dlq) = h.queue_pair("health-breaker", 5).await;
        let clock = Arc::new(ManualClock::default());
        let deliver = deliver_on(h, &deliveries, clock);
        let sub = subscription(MERCHANT, "sub_down", &merchant.url("/slow-flaky/1000"));
        h.store().create_subscription(&sub, &secrets()).await.unwrap();
        make_failing(&deliver, h, "sub_down").await;

        let tasks: Vec<DeliveryTask> = (0..20)
            .map(|n| task(&format!("evt_burst_{n:02}"), "sub_down"))
            .collect();
        let outcomes = futures::future::join_all(tasks.iter().map(|task| deliver.deliver(task))).await;
        let held = outcomes.iter().filter(|o| matches!(o, Ok(TaskOutcome::Held))).count();
        let attempted = outcomes
            .iter()
            .filter(|o| matches!(o, Ok(TaskOutcome::RetryScheduled(_))))
            .count();
        assert_eq!(held + attempted, 20, "{outcomes:?}");
        assert!(held >= 10, "most of the burst is held: {outcomes:?}");
        // Each answer takes 200 ms: the merchant saw at most two requests at once.
        assert!(
            merchant.max_in_flight("/slow-flaky/1000") <= 2,
            "{}",
            merchant.max_in_flight("/slow-flaky/1000")
        );
        let endpoint = format!("{MERCHANT}#sub_down");
        // A failed attempt may have let the oldest held one out as the next probe.
        let still_held = h.store().held_tasks(&endpoint, 0, i64::MAX, 100).await.unwrap().len();
        assert!(still_held == held || still_held + 1 == held, "{still_held} of {held}");
        let status = h.store().delivery_status("evt_burst_00", "sub_down").await.unwrap();
        assert!(
            matches!(status, Some(DeliveryStatus::Held | DeliveryStatus::Pending)),
            "{status:?}"
        );
        assert!(health_of(h, "sub_down").await.has_held);
    }

    pub async fn a_probe_that_succeeds_releases_the_held_deliveries_oldest_first_each_once(h: &impl Harness) {
        let merchant = TestMerchant::start().await;
        let (deliveries, _dlq) = h.queue_pair("health-recovery", 5).await;
        let clock = Arc::new(ManualClock::default());
        let deliver = deliver_on(h, &deliveries, clock.clone());
        // Three failures, then it answers 200.
        let sub = subscription(MERCHANT, "sub_back", &merchant.url("/flaky/3"));
        h.store().create_subscription(&sub, &secrets()).await.unwrap();
        make_failing(&deliver, h, "sub_back").await;
        drain(&deliveries).await; // the warm-up failures' retries

        // Both probe slots are in use elsewhere: every task is held, a second apart.
        let endpoint = format!("{MERCHANT}#sub_back");
        let now_ms = clock.now().unix_timestamp() * 1000;
        for lease in ["other-a", "other-b"] {
            let until = now_ms + 3_600_000;
            assert!(
                h.store()
                    .take_probe_slot(&endpoint, 2, lease, now_ms, until)
                    .await
                    .unwrap()
            );
        }
        for n in 0..5 {
            clock.advance(SEC);
            let outcome = deliver
                .deliver(&task(&format!("evt_held_{n}"), "sub_back"))
                .await
                .unwrap();
            assert_eq!(outcome, TaskOutcome::Held);
            let status = h
                .store()
                .delivery_status(&format!("evt_held_{n}"), "sub_back")
                .await
                .unwrap();
            assert_eq!(status, Some(DeliveryStatus::Held));
        }
        let held = h.store().held_tasks(&endpoint, 0, i64::MAX, 100).await.unwrap();
        let order: Vec<String> = held
            .iter()
            .map(|held| DeliveryTask::from_message_body(&held.body).unwrap().event.event_id)
            .collect();
        assert_eq!(
            order,
            ["evt_held_0", "evt_held_1", "evt_held_2", "evt_held_3", "evt_held_4"]
        );
        assert_eq!(merchant.requests().len(), 3, "nothing held reached the merchant");

        // The slots come back; the next delivery probes, succeeds, and releases them all.
        for lease in ["other-a", "other-b"] {
            h.store().release_probe_slot(&endpoint, lease).await.unwrap();
        }
        let outcome = deliver.deliver(&task("evt_probe", "sub_back")).await.unwrap();
        assert_eq!(outcome, TaskOutcome::Delivered);
        let health = health_of(h, "sub_back").await;
        assert_eq!(
            (health.status, health.consecutive_failures, health.has_held),
            (HealthStatus::Healthy, 0, false)
        );
        assert!(
            h.store()
                .held_tasks(&endpoint, 0, i64::MAX, 100)
                .await
                .unwrap()
                .is_empty()
        );
        // The warm-up failures' retries may come out too: only the held ones are looked at.
        let released: Vec<DeliveryTask> = drain(&deliveries)
            .await
            .iter()
            .map(|message| DeliveryTask::from_message_body(&message.body).unwrap())
            .filter(|task| task.event.event_id.starts_with("evt_held_"))
            .collect();
        let mut released_ids = Vec::new();
        for task in &released {
            assert_eq!(task.attempt, 1, "a held task keeps its attempt number");
            released_ids.push(task.event.event_id.clone());
            assert_eq!(deliver.deliver(task).await.unwrap(), TaskOutcome::Delivered);
        }
        released_ids.sort();
        assert_eq!(
            released_ids,
            ["evt_held_0", "evt_held_1", "evt_held_2", "evt_held_3", "evt_held_4"]
        );
        for n in 0..5 {
            let id = format!("evt_held_{n}");
            let sent = merchant
                .requests()
                .iter()
                .filter(|r| r.headers["webhook-id"] == id)
                .count();
            assert_eq!(sent, 1, "{id} was delivered once");
        }
    }

    pub async fn a_failure_lets_one_held_delivery_through_as_a_probe_per_interval(h: &impl Harness) {
        let merchant = TestMerchant::start().await;
        let (deliveries, _dlq) = h.queue_pair("health-probe", 5).await;
        let clock = Arc::new(ManualClock::default());
        let deliver = deliver_on(h, &deliveries, clock.clone());
        let sub = subscription(MERCHANT, "sub_probe", &merchant.url("/status/503"));
        h.store().create_subscription(&sub, &secrets()).await.unwrap();
        make_failing(&deliver, h, "sub_probe").await;
        let endpoint = format!("{MERCHANT}#sub_probe");
        let now_ms = clock.now().unix_timestamp() * 1000;
        for lease in ["other-a", "other-b"] {
            assert!(
                h.store()
                    .take_probe_slot(&endpoint, 2, lease, now_ms, now_ms + 1_000)
                    .await
                    .unwrap()
            );
        }
        for n in 0..3 {
            assert_eq!(
                deliver
                    .deliver(&task(&format!("evt_wait_{n}"), "sub_probe"))
                    .await
                    .unwrap(),
                TaskOutcome::Held
            );
        }
        // The leases ran out (their attempts ended); a retry fails again.
        clock.advance(2 * SEC);
        let outcome = deliver.deliver(&task("evt_retry", "sub_probe")).await.unwrap();
        assert!(matches!(outcome, TaskOutcome::RetryScheduled(_)), "{outcome:?}");
        let health = health_of(h, "sub_probe").await;
        let expected = IsoTime::new(clock.now() + PROBE_INTERVAL).unwrap();
        assert_eq!(health.next_probe_at, Some(expected));
        let held = h.store().held_tasks(&endpoint, 0, i64::MAX, 100).await.unwrap();
        assert_eq!(held.len(), 2, "the oldest held delivery went out as the next probe");
        // Another failure within the interval lets nothing more through.
        let outcome = deliver.deliver(&task("evt_retry_2", "sub_probe")).await.unwrap();
        assert!(matches!(outcome, TaskOutcome::RetryScheduled(_)), "{outcome:?}");
        assert_eq!(
            h.store().held_tasks(&endpoint, 0, i64::MAX, 100).await.unwrap().len(),
            2
        );
    }

    pub async fn an_endpoint_failing_past_disable_after_is_disabled_and_its_deliveries_held(h: &impl Harness) {
        let merchant = TestMerchant::start().await;
        let (deliveries, _dlq) = h.queue_pair("health-disable", 5).await;
        let clock = Arc::new(ManualClock::default());
        let (events, _events_dlq) = h.queue_pair("health-disable-events", 5).await;
        let deliver = deliver_on(h, &deliveries, clock.clone()).raising_operational_events_on(events.clone());
        let sub = subscription(MERCHANT, "sub_dead", &merchant.url("/status/503"));
        h.store().create_subscription(&sub, &secrets()).await.unwrap();
        make_failing(&deliver, h, "sub_dead").await;
        let failing_since = health_of(h, "sub_dead").await.since.unwrap();

        clock.advance(5 * DAY - SEC);
        deliver.deliver(&task("evt_day_4", "sub_dead")).await.unwrap();
        assert_eq!(health_of(h, "sub_dead").await.status, HealthStatus::Failing, "not yet");
        clock.advance(SEC);
        deliver.deliver(&task("evt_day_5", "sub_dead")).await.unwrap();
        let disabled = h.store().get_subscription(MERCHANT, "sub_dead").await.unwrap().unwrap();
        assert!(!disabled.enabled);
        assert_eq!(disabled.health.status, HealthStatus::Disabled);
        let reason = disabled.health.disabled_reason.unwrap();
        assert!(
            reason.contains(&failing_since.to_string()) && reason.contains("503"),
            "{reason}"
        );

        // The merchant is told: one endpoint_disabled event on the events queue, for ingest
        // to fan out; its id follows from the failing spell, so a second disable of the
        // same spell (another container) raises the same event.
        let raised = drain(&events).await;
        assert_eq!(raised.len(), 1);
        let event = PlatformEvent::parse(raised[0].body.as_bytes(), clock.now()).unwrap();
        assert_eq!(
            (event.event_name, event.order_id.as_str(), event.merchant_id.as_str()),
            (EventName::EndpointDisabled, "sub_dead", MERCHANT)
        );
        let spell_id = derive_event_id(MERCHANT, EventName::EndpointDisabled, "sub_dead", failing_since);
        assert_eq!(event.event_id, spell_id);

        // Its deliveries are kept, not skipped, for a recover.
        let requests = merchant.requests().len();
        assert_eq!(
            deliver.deliver(&task("evt_after", "sub_dead")).await.unwrap(),
            TaskOutcome::Held
        );
        assert_eq!(merchant.requests().len(), requests, "nothing sent");
        let status = h.store().delivery_status("evt_after", "sub_dead").await.unwrap();
        assert_eq!(status, Some(DeliveryStatus::Held));
        let endpoint = format!("{MERCHANT}#sub_dead");
        assert_eq!(
            h.store().held_tasks(&endpoint, 0, i64::MAX, 100).await.unwrap().len(),
            1
        );
        // One its merchant disabled itself is skipped as before.
        let mut off = subscription(MERCHANT, "sub_off", &merchant.url("/ok"));
        off.enabled = false;
        h.store().create_subscription(&off, &secrets()).await.unwrap();
        assert_eq!(
            deliver.deliver(&task("evt_off", "sub_off")).await.unwrap(),
            TaskOutcome::Skipped
        );
    }

    pub async fn the_release_lease_lets_one_release_at_a_time_and_is_free_once_it_runs_out(h: &impl Harness) {
        let store = h.store();
        let endpoint = format!("{MERCHANT}#sub_lease");
        assert!(store.take_release_lease(&endpoint, "a", 1_000, 31_000).await.unwrap());
        assert!(
            !store.take_release_lease(&endpoint, "b", 2_000, 32_000).await.unwrap(),
            "taken"
        );
        // The probe slots beside it are not the lease: both are free to take.
        assert!(
            store
                .take_probe_slot(&endpoint, 1, "probe", 2_000, 12_000)
                .await
                .unwrap()
        );
        store.release_probe_slot(&endpoint, "a").await.unwrap();
        assert!(
            !store.take_release_lease(&endpoint, "b", 2_000, 32_000).await.unwrap(),
            "still a's"
        );
        store.end_release_lease(&endpoint, "b").await.unwrap();
        assert!(
            !store.take_release_lease(&endpoint, "b", 2_000, 32_000).await.unwrap(),
            "b cannot end a's"
        );
        assert!(
            store.take_release_lease(&endpoint, "b", 31_000, 61_000).await.unwrap(),
            "a's ran out"
        );
        store.end_release_lease(&endpoint, "b").await.unwrap();
        assert!(
            store.take_release_lease(&endpoint, "c", 32_000, 62_000).await.unwrap(),
            "ended"
        );
    }
}
