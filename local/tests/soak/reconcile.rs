//! Reconciliation from the merchants' side: what was accepted against what arrived.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;
use webhooks_signing::{seed, standard};

use crate::chaos::Recorded;
use crate::publisher::Published;

/// The Standard Webhooks libraries' tolerance.
const TOLERANCE_SECS: u64 = 300;

/// A subscription of the soak.
#[derive(Debug, Clone)]
pub struct Sub {
    /// Index of its merchant.
    pub merchant: usize,
    /// The path at the chaos merchant that identifies it.
    pub path: String,
    pub id: String,
    pub secret: String,
    pub standard_secret: String,
    /// The `token` query parameter of its URL: a credential the stack carries to the
    /// merchant on every request and never logs.
    pub url_token: String,
    /// The event names it takes.
    pub events: HashSet<String>,
}

impl Sub {
    fn takes(&self, merchant: usize, event_name: &str) -> bool {
        self.merchant == merchant && self.events.contains(event_name)
    }
}

/// The expected (subscription index, event id) pairs.
pub fn expected(subs: &[Sub], published: &Published) -> HashSet<(usize, String)> {
    let mut expected = HashSet::new();
    for (id, event) in &published.events {
        for (index, sub) in subs.iter().enumerate() {
            if sub.takes(event.merchant, &event.event_name) {
                expected.insert((index, id.clone()));
            }
        }
    }
    expected
}

/// The (subscription index, event id) pairs answered 2xx so far.
pub fn delivered(subs: &[Sub], requests: &[Recorded]) -> HashSet<(usize, String)> {
    let by_path: HashMap<&str, usize> = subs.iter().enumerate().map(|(i, s)| (s.path.as_str(), i)).collect();
    requests
        .iter()
        .filter(|r| r.answer.is_success())
        .filter_map(|r| Some((*by_path.get(r.path.as_str())?, r.webhook_id.clone()?)))
        .collect()
}

/// The figures of a run, and what went wrong.
#[derive(Debug, Default)]
pub struct Report {
    pub events_accepted: usize,
    pub duplicates_published: u64,
    pub publish_resends: u64,
    pub expected: usize,
    pub delivered: usize,
    pub lost: usize,
    pub lost_examples: Vec<String>,
    /// The lost pairs: (event id, subscription id).
    pub lost_pairs: Vec<(String, String)>,
    /// Extra 2xx copies of a pair already delivered.
    pub duplicate_deliveries: usize,
    /// Pairs delivered more than once.
    pub pairs_delivered_more_than_once: usize,
    pub requests: usize,
    /// Non-2xx answers by kind.
    pub failed_answers: BTreeMap<String, usize>,
    pub failed_total: usize,
    /// Requests whose two signatures were checked.
    pub signatures_checked: usize,
    /// Accepted to first 2xx, sorted.
    pub latencies: Vec<Duration>,
    /// Everything that breaks a promise, one line each.
    pub violations: Vec<String>,
}

impl Report {
    fn violation(&mut self, line: String) {
        self.violations.push(line);
    }

    /// The `q` quantile of the latencies (nearest rank).
    pub fn latency(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1]
    }

    /// The report, as printed.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
        let _ = writeln!(out, "events accepted:            {}", self.events_accepted);
        let _ = writeln!(out, "duplicates published:       {}", self.duplicates_published);
        let _ = writeln!(out, "publish re-sends (no 202):  {}", self.publish_resends);
        let _ = writeln!(out, "expected deliveries:        {}", self.expected);
        let _ = writeln!(out, "delivered (2xx, distinct):  {}", self.delivered);
        let _ = writeln!(
            out,
            "duplicate deliveries:       {} extra 2xx copies over {} pairs",
            self.duplicate_deliveries, self.pairs_delivered_more_than_once
        );
        let _ = writeln!(out, "requests at the merchant:   {}", self.requests);
        let _ = writeln!(out, "failed attempts (non-2xx):  {}", self.failed_total);
        for (kind, count) in &self.failed_answers {
            let _ = writeln!(out, "    {kind:<24}{count}");
        }
        let _ = writeln!(
            out,
            "signatures verified:        {} requests x 2 schemes",
            self.signatures_checked
        );
        let _ = writeln!(
            out,
            "latency accepted -> first 2xx: p50 {} p95 {} p99 {} max {}",
            ms(self.latency(0.50)),
            ms(self.latency(0.95)),
            ms(self.latency(0.99)),
            ms(self.latency(1.0))
        );
        let _ = writeln!(out, "LOST:                       {}", self.lost);
        for line in &self.lost_examples {
            let _ = writeln!(out, "    lost: {line}");
        }
        let _ = writeln!(out, "violations:                 {}", self.violations.len());
        for line in self.violations.iter().take(30) {
            let _ = writeln!(out, "    {line}");
        }
        out
    }
}

/// Reconciles the merchant's requests against the accepted events.
pub fn reconcile(subs: &[Sub], published: &Published, requests: &[Recorded]) -> Report {
    let mut report = Report {
        events_accepted: published.events.len(),
        duplicates_published: published.duplicates,
        publish_resends: published.resends,
        requests: requests.len(),
        ..Report::default()
    };
    for mismatch in &published.id_mismatches {
        report.violation(format!("a duplicate got another event id: {mismatch}"));
    }
    let by_path: HashMap<&str, usize> = subs.iter().enumerate().map(|(i, s)| (s.path.as_str(), i)).collect();
    let expected = expected(subs, published);
    report.expected = expected.len();

    let mut bodies: HashMap<(usize, &str), &[u8]> = HashMap::new();
    // Every order in the soak is one event: all its copies at a subscription carry one webhook-id.
    let mut ids_of_order: HashMap<(usize, &str, &str), HashSet<&str>> = HashMap::new();
    let mut successes: HashMap<(usize, &str), (usize, std::time::Instant)> = HashMap::new();
    for request in requests {
        if !request.answer.is_success() {
            report.failed_total += 1;
            *report.failed_answers.entry(request.answer.label()).or_default() += 1;
        }
        let Some(&sub_index) = by_path.get(request.path.as_str()) else {
            report.violation(format!("a request to {}, no subscription's path", request.path));
            continue;
        };
        let sub = &subs[sub_index];
        if request.query.as_deref() != Some(format!("token={}", sub.url_token).as_str()) {
            report.violation(format!(
                "a request to {} without its URL's query: {:?}",
                request.path, request.query
            ));
        }
        let Some(id) = request.webhook_id.as_deref() else {
            report.violation(format!("a request to {} without webhook-id", request.path));
            continue;
        };
        let Some(event) = published.events.get(id) else {
            report.violation(format!("{id} delivered to {} was never accepted", request.path));
            continue;
        };
        if !sub.takes(event.merchant, &event.event_name) {
            report.violation(format!(
                "{id} ({}, merchant {}) delivered to {}, which does not take it",
                event.event_name, event.merchant, request.path
            ));
        }
        match bodies.get(&(sub_index, id)) {
            Some(first) if *first != &request.body[..] => report.violation(format!(
                "{id} to {} carried two bodies: {} then {}",
                request.path,
                String::from_utf8_lossy(first),
                String::from_utf8_lossy(&request.body)
            )),
            Some(_) => {}
            None => {
                bodies.insert((sub_index, id), &request.body);
            }
        }
        match serde_json::from_slice::<Value>(&request.body) {
            Ok(body)
                if body["eventName"] == event.event_name.as_str() && body["orderId"] == event.order_id.as_str() => {}
            _ => report.violation(format!(
                "{id} to {}: the body {} is not event {} of order {}",
                request.path,
                String::from_utf8_lossy(&request.body),
                event.event_name,
                event.order_id
            )),
        }
        ids_of_order
            .entry((sub_index, event.event_name.as_str(), event.order_id.as_str()))
            .or_default()
            .insert(id);
        if let Err(error) = seed::verify_body(sub.secret.as_bytes(), &request.body) {
            report.violation(format!("{id} to {}: seed signature: {error:?}", request.path));
        }
        let standard = standard::verify(
            sub.secret.as_bytes(),
            id,
            request.webhook_timestamp.as_deref().unwrap_or_default(),
            request.webhook_signature.as_deref().unwrap_or_default(),
            &request.body,
            request.received_unix,
            TOLERANCE_SECS,
        );
        if let Err(error) = standard {
            report.violation(format!(
                "{id} to {}: Standard Webhooks headers: {error:?}",
                request.path
            ));
        }
        report.signatures_checked += 1;
        if request.answer.is_success() {
            let entry = successes.entry((sub_index, id)).or_insert((0, request.received));
            entry.0 += 1;
            entry.1 = entry.1.min(request.received);
        }
    }

    for ((sub_index, event_name, order_id), ids) in &ids_of_order {
        if ids.len() > 1 {
            report.violation(format!(
                "{event_name} of {order_id} reached {} under {} webhook-ids: {ids:?}",
                subs[*sub_index].path,
                ids.len()
            ));
        }
    }

    report.delivered = successes.len();
    for ((_, id), (count, first)) in &successes {
        if *count > 1 {
            report.duplicate_deliveries += count - 1;
            report.pairs_delivered_more_than_once += 1;
        }
        if let Some(event) = published.events.get(*id) {
            report
                .latencies
                .push(first.saturating_duration_since(event.accepted_at));
        }
    }
    report.latencies.sort();

    let mut lost: Vec<&(usize, String)> = expected
        .iter()
        .filter(|(sub, id)| !successes.contains_key(&(*sub, id.as_str())))
        .collect();
    lost.sort();
    report.lost = lost.len();
    report.lost_pairs = lost
        .iter()
        .map(|(sub, id)| (id.clone(), subs[*sub].id.clone()))
        .collect();
    for (sub_index, id) in lost.into_iter().take(20) {
        let sub = &subs[*sub_index];
        let attempts: Vec<String> = requests
            .iter()
            .filter(|r| r.path == sub.path && r.webhook_id.as_deref() == Some(id))
            .map(|r| r.answer.label())
            .collect();
        let event = &published.events[id];
        report.lost_examples.push(format!(
            "{id} ({}, {}) for {} (subscription {}): merchant saw {:?}",
            event.event_name, event.order_id, sub.path, sub.id, attempts
        ));
    }
    report
}

/// The reconciliation is not vacuous: each broken promise shows.
mod tests {
    use std::time::{Instant, SystemTime, UNIX_EPOCH};

    use hyper::body::Bytes;
    use webhooks_signing::seed::SeedPayload;
    use webhooks_signing::standard::{signature_header, standard_webhooks_secret};

    use super::*;
    use crate::chaos::Answer;
    use crate::publisher::Accepted;

    fn sub(merchant: usize, path: &str, events: &[&str]) -> Sub {
        let secret = format!("secret-of-{path}-0123456789abcdef");
        Sub {
            merchant,
            path: path.into(),
            id: format!("sub{path}"),
            standard_secret: standard_webhooks_secret(&secret),
            secret,
            url_token: format!("token-of-{path}-0123456789abcdef"),
            events: events.iter().map(|e| e.to_string()).collect(),
        }
    }

    fn request(sub: &Sub, id: &str, name: &str, order: &str, answer: Answer) -> Recorded {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let payload = SeedPayload {
            event_name: name,
            order_id: order,
            time_stamp: "2022-10-26T22:36:41.658Z",
        };
        let body = payload.signed_body(sub.secret.as_bytes());
        Recorded {
            path: sub.path.clone(),
            query: Some(format!("token={}", sub.url_token)),
            webhook_id: Some(id.into()),
            webhook_timestamp: Some(now.to_string()),
            webhook_signature: Some(signature_header(&[sub.secret.as_bytes()], id, now, body.as_bytes())),
            body: Bytes::from(body),
            answer,
            received: Instant::now(),
            received_unix: now,
        }
    }

    fn published(events: &[(&str, usize, &str, &str)]) -> Published {
        let mut published = Published::default();
        for (id, merchant, name, order) in events {
            let accepted = Accepted {
                merchant: *merchant,
                event_name: name.to_string(),
                order_id: order.to_string(),
                accepted_at: Instant::now(),
                copies: 1,
            };
            published.events.insert(id.to_string(), accepted);
        }
        published
    }

    #[test]
    fn reconciliation_catches_each_broken_promise() {
        let subs = vec![
            sub(0, "/m0/s0", &["payment_received", "crypto_delivered"]),
            sub(0, "/m0/s1", &["crypto_delivered"]),
            sub(1, "/m1/s2", &["payment_received"]),
        ];
        let events = published(&[
            ("e1", 0, "payment_received", "o1"),
            ("e2", 0, "crypto_delivered", "o2"),
            ("e3", 1, "payment_received", "o3"),
        ]);
        let good = vec![
            request(&subs[0], "e1", "payment_received", "o1", Answer::Status(503)),
            request(&subs[0], "e1", "payment_received", "o1", Answer::Status(200)),
            request(&subs[0], "e2", "crypto_delivered", "o2", Answer::Status(204)),
            request(&subs[1], "e2", "crypto_delivered", "o2", Answer::Reset),
            request(&subs[1], "e2", "crypto_delivered", "o2", Answer::Status(200)),
            request(&subs[1], "e2", "crypto_delivered", "o2", Answer::Status(200)),
            request(&subs[2], "e3", "payment_received", "o3", Answer::Status(200)),
        ];
        let report = reconcile(&subs, &events, &good);
        assert_eq!(report.violations, Vec::<String>::new());
        assert_eq!((report.expected, report.delivered, report.lost), (4, 4, 0));
        assert_eq!((report.duplicate_deliveries, report.failed_total), (1, 2));

        // Lost: a pair that only ever failed.
        let mut lost = good.clone();
        lost.retain(|r| r.path != "/m1/s2");
        lost.push(request(&subs[2], "e3", "payment_received", "o3", Answer::Hang));
        assert_eq!(reconcile(&subs, &events, &lost).lost, 1);

        let broken = |mutate: &dyn Fn(&mut Vec<Recorded>)| {
            let mut requests = good.clone();
            mutate(&mut requests);
            reconcile(&subs, &events, &requests).violations
        };
        // Another merchant's event, an event the subscription does not take, one never accepted.
        assert_eq!(
            broken(&|r| r.push(request(&subs[2], "e1", "payment_received", "o1", Answer::Status(200)))).len(),
            1
        );
        assert_eq!(
            broken(&|r| r.push(request(&subs[1], "e1", "payment_received", "o1", Answer::Status(500)))).len(),
            1
        );
        assert_eq!(
            broken(&|r| r.push(request(&subs[0], "e9", "payment_received", "o1", Answer::Status(200)))).len(),
            1
        );
        // Another body for the same webhook-id (a re-signed one: only the body differs).
        let other_time = |r: &mut Vec<Recorded>| {
            let mut copy = request(&subs[0], "e1", "payment_received", "o1", Answer::Status(200));
            let body = String::from_utf8(copy.body.to_vec())
                .unwrap()
                .replace("41.658Z", "41.659Z");
            let payload: Value = serde_json::from_str(&body).unwrap();
            let resigned = SeedPayload {
                event_name: "payment_received",
                order_id: "o1",
                time_stamp: payload["timeStamp"].as_str().unwrap(),
            }
            .signed_body(subs[0].secret.as_bytes());
            copy.webhook_signature = Some(signature_header(
                &[subs[0].secret.as_bytes()],
                "e1",
                copy.received_unix,
                resigned.as_bytes(),
            ));
            copy.body = Bytes::from(resigned);
            r.push(copy);
        };
        assert_eq!(broken(&other_time).len(), 1);
        // A seed signature, a Standard Webhooks signature, a stale timestamp.
        assert_eq!(
            broken(&|r| r[0].body = Bytes::from(
                String::from_utf8(r[0].body.to_vec())
                    .unwrap()
                    .replace("\"signature\":\"", "\"signature\":\"0")
            ))
            .len(),
            3, // the seed signature, the headers' signature, and a body unlike the first copy's
        );
        assert_eq!(broken(&|r| r[1].webhook_signature = Some("v1,AAAA".into())).len(), 1);
        assert_eq!(broken(&|r| r[2].received_unix += 301).len(), 1);
        // The URL's query string lost or changed on the way.
        assert_eq!(broken(&|r| r[3].query = None).len(), 1);
        assert_eq!(broken(&|r| r[4].query = Some("token=".into())).len(), 1);
        // The same order under two webhook-ids.
        let mut twice = published(&[
            ("e1", 0, "payment_received", "o1"),
            ("e1b", 0, "payment_received", "o1"),
        ]);
        twice.events.remove("e2");
        let requests = vec![
            request(&subs[0], "e1", "payment_received", "o1", Answer::Status(200)),
            request(&subs[0], "e1b", "payment_received", "o1", Answer::Status(200)),
        ];
        let violations = reconcile(&subs, &twice, &requests).violations;
        assert!(violations.iter().any(|v| v.contains("2 webhook-ids")), "{violations:?}");
    }
}
