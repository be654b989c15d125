//! The chaos soak: the local stack on a fast retry schedule, a chaos merchant that fails in
//! every way a webhook receiver can, a steady stream of events (some duplicated on purpose)
//! to several merchants and subscriptions, and the stack killed with `kill -9` and restarted
//! at random moments. At the end, a reconciliation from the merchants' side: nothing lost,
//! nothing misrouted, one body per webhook-id, every signature verifies, every URL's query
//! string arrives; and no secret, API key or URL token (each subscription's URL carries a
//! random `?token=`) in the stack's log.
//!
//! Not part of the normal test run (`#[ignore]`): `scripts/soak [seconds] [embedded|aws]`.
//! Settings (env): `SOAK_SECONDS` (120), `SOAK_BACKEND` (`embedded` or `aws`, on moto),
//! `SOAK_EVENTS_PER_SECOND` (20), `SOAK_DRAIN_SECONDS` (900: the most the drain may take),
//! `SOAK_STALL_SECONDS` (150: the drain ends when the merchant got no request for this long),
//! `SOAK_SEED` (random), `SOAK_RESTART_SECONDS` (`10-30`: the time between restarts),
//! `SOAK_RUST_LOG` (`info`: the stack's log filter, e.g. `debug` for a stricter secrets check).

#[allow(dead_code)]
#[path = "../e2e/harness.rs"]
mod harness;

mod chaos;
mod publisher;
mod reconcile;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use webhooks_tests::moto::MotoServer;

use crate::chaos::{ChaosMerchant, Odds, Outages};
use crate::harness::Stack;
use crate::publisher::EVENT_NAMES;
use crate::reconcile::{Report, Sub, delivered, expected, reconcile};

/// 1 attempt + 12 retries within about 45 s (429s and timeouts wait at least 60 s).
const RETRY_SCHEDULE: &str = "1s,1s,2s,2s,3s,5s,5s,5s,5s,5s,5s,5s";
const DELIVERY_TIMEOUT_MS: &str = "1000";
/// Of the messages published, the share that re-sends an accepted one.
const DUPLICATE_PERCENT: u32 = 5;

/// Each merchant's subscriptions: the event names each takes (empty: all six).
const PLAN: [(usize, &[&str]); 7] = [
    (0, &[]),
    (0, &["payment_received", "payment_rejected", "payment_expired"]),
    (0, &["crypto_delivered"]),
    (1, &["crypto_tx_sent", "crypto_tx_failed"]),
    (1, &["payment_received", "crypto_delivered"]),
    (2, &[]),
    (2, &["payment_expired", "crypto_tx_failed", "crypto_delivered"]),
];

struct Config {
    seconds: u64,
    aws: bool,
    per_second: f64,
    drain: Duration,
    stall: Duration,
    seed: u64,
    restart_every: std::ops::Range<Duration>,
    rust_log: String,
}

impl Config {
    fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let number = |name: &str, default: f64| -> f64 {
            var(name).map_or(default, |v| {
                v.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
            })
        };
        let aws = match var("SOAK_BACKEND").as_deref().unwrap_or("embedded") {
            "embedded" => false,
            "aws" => true,
            other => panic!("SOAK_BACKEND={other}: embedded or aws"),
        };
        let restart = var("SOAK_RESTART_SECONDS").unwrap_or_else(|| "10-30".into());
        let (low, high) = restart
            .split_once('-')
            .and_then(|(l, h)| Some((l.trim().parse::<f64>().ok()?, h.trim().parse::<f64>().ok()?)))
            .unwrap_or_else(|| panic!("SOAK_RESTART_SECONDS={restart}: e.g. 10-30"));
        Self {
            seconds: number("SOAK_SECONDS", 120.0) as u64,
            aws,
            per_second: number("SOAK_EVENTS_PER_SECOND", 20.0),
            drain: Duration::from_secs_f64(number("SOAK_DRAIN_SECONDS", 900.0)),
            stall: Duration::from_secs_f64(number("SOAK_STALL_SECONDS", 150.0)),
            seed: var("SOAK_SEED").map_or_else(rand::random, |v| v.parse().expect("SOAK_SEED is a u64")),
            restart_every: Duration::from_secs_f64(low)..Duration::from_secs_f64(high),
            rust_log: var("SOAK_RUST_LOG").unwrap_or_else(|| "info".into()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a chaos soak of minutes: run it with scripts/soak"]
async fn chaos_soak() {
    let config = Config::from_env();
    let backend = if config.aws { "aws" } else { "embedded" };
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("soak-{backend}-{unix}"));
    let data_dir = out_dir.join("data");
    let log_path = out_dir.join("stack.log");
    std::fs::create_dir_all(&data_dir).expect("create the soak's directory");
    println!(
        "[soak] {} s on {backend}, {} events/s, seed {}, restarts every {:?}; files in {}",
        config.seconds,
        config.per_second,
        config.seed,
        config.restart_every,
        out_dir.display()
    );

    // The stack, on moto when asked.
    let moto = config.aws.then(MotoServer::start);
    let mut env = vec![
        ("WEBHOOKS_RETRY_SCHEDULE", RETRY_SCHEDULE.to_owned()),
        ("WEBHOOKS_DELIVERY_TIMEOUT_MS", DELIVERY_TIMEOUT_MS.to_owned()),
        ("WEBHOOKS_LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", config.rust_log.clone()),
    ];
    let mut args: Vec<&str> = Vec::new();
    if let Some(moto) = &moto {
        env.push(("AWS_ENDPOINT_URL", moto.endpoint().to_owned()));
        args.extend(["--backend", "aws", "--create-resources"]);
    }
    let stack = {
        let (data_dir, log_path) = (data_dir.clone(), log_path.clone());
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Stack::start_logging_to(&data_dir, &env, &args, &log_path)
        })
        .await
        .expect("start the stack")
    };
    let stack_url = stack.url.clone();

    // Three merchants: the banner's and two more.
    let mut merchants = vec![(stack.merchant_id.clone(), stack.api_key.clone())];
    for n in 1..3 {
        let (status, created) = stack
            .call(
                "POST",
                "/local/merchants",
                Some(json!({"name": format!("soak merchant {n}")})),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        merchants.push((
            created["merchantId"].as_str().expect("merchantId").to_owned(),
            created["apiKey"].as_str().expect("apiKey").to_owned(),
        ));
    }

    // The chaos merchant, and the subscriptions pointing at it.
    let chaos = ChaosMerchant::start(
        config.seed,
        Odds::default(),
        Outages {
            up: Duration::from_secs(8)..Duration::from_secs(20),
            down: Duration::from_secs(1)..Duration::from_secs(5),
        },
    )
    .await;
    let mut subs = Vec::new();
    let mut token_rng = StdRng::seed_from_u64(config.seed ^ 0x70ce_0000);
    for (index, (merchant, events)) in PLAN.iter().enumerate() {
        let path = format!("/m{merchant}/s{index}");
        let url_token = format!("{:032x}", token_rng.random::<u128>());
        let url = chaos.url(&format!("{path}?token={url_token}"));
        let mut body = json!({"url": url, "description": format!("soak {path}")});
        if !events.is_empty() {
            body["events"] = json!(events);
        }
        let (status, created) = stack
            .call_as(&merchants[*merchant].1, "POST", "/v1/subscriptions", Some(body))
            .await;
        assert_eq!(status, 201, "{created}");
        let takes: HashSet<String> = if events.is_empty() {
            EVENT_NAMES.iter().map(|e| e.to_string()).collect()
        } else {
            events.iter().map(|e| e.to_string()).collect()
        };
        let field = |name: &str| {
            created[name]
                .as_str()
                .unwrap_or_else(|| panic!("{name} in {created}"))
                .to_owned()
        };
        subs.push(Sub {
            merchant: *merchant,
            path,
            id: field("id"),
            secret: field("secret"),
            standard_secret: field("standardWebhooksSecret"),
            url_token,
            events: takes,
        });
    }

    // Chaos: restarts at random moments while events flow.
    let started = Instant::now();
    let until = started + Duration::from_secs(config.seconds);
    let stack = Arc::new(Mutex::new(Some(stack)));
    let restarter = tokio::spawn(restart_at_random(
        stack.clone(),
        until,
        config.restart_every.clone(),
        config.seed,
    ));
    let progress = {
        let requests = chaos.requests_counter();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                println!(
                    "[soak] {:>4.0} s: {} requests at the merchant",
                    started.elapsed().as_secs_f64(),
                    requests()
                );
            }
        })
    };
    let merchant_ids: Vec<String> = merchants.iter().map(|(id, _)| id.clone()).collect();
    let published = publisher::publish(
        stack_url.clone(),
        merchant_ids,
        config.per_second,
        until,
        config.seed,
        DUPLICATE_PERCENT,
    )
    .await;
    let restarts = restarter.await.expect("the restarter");
    let published_in = started.elapsed();
    println!(
        "[soak] publishing done after {published_in:.1?}: {} events accepted, {restarts} restarts; draining",
        published.events.len()
    );

    // Drain: until every expected delivery arrived; or until the stack stopped trying (no
    // request at the merchant for longer than any retry gap: 60 s after a 429 or a timeout,
    // 30 s of visibility after a kill); or the drain time is up.
    chaos.stop_outages();
    let expected_pairs = expected(&subs, &published);
    let count_requests = chaos.requests_counter();
    let drain_started = Instant::now();
    let (mut last_print, mut last_count, mut last_request) = (Instant::now(), count_requests(), Instant::now());
    loop {
        let done = chaos.with_requests(|requests| delivered(&subs, requests));
        let missing = expected_pairs.difference(&done).count();
        let count = count_requests();
        if count != last_count {
            (last_count, last_request) = (count, Instant::now());
        }
        let why = if missing == 0 {
            Some("all delivered")
        } else if last_request.elapsed() > config.stall {
            Some("the stack stopped sending")
        } else if drain_started.elapsed() > config.drain {
            Some("the drain time is up")
        } else {
            None
        };
        if let Some(why) = why {
            println!(
                "[soak] drain ended after {:.1?} ({why}): {missing} missing",
                drain_started.elapsed()
            );
            break;
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            println!("[soak] draining: {missing} deliveries missing");
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let drained_in = drain_started.elapsed();
    progress.abort();

    // What the list routes show (no secrets there either), then stop the stack.
    let mut answers = Vec::new();
    {
        let guard = stack.lock().expect("the stack").take().expect("the stack is up");
        for (index, sub) in subs.iter().enumerate() {
            let key = &merchants[sub.merchant].1;
            for path in [
                "/v1/subscriptions?limit=100".to_owned(),
                format!("/v1/subscriptions/{}", sub.id),
                format!("/v1/subscriptions/{}/deliveries?limit=100", sub.id),
            ] {
                if index > 0 && path.starts_with("/v1/subscriptions?") && subs[index - 1].merchant == sub.merchant {
                    continue;
                }
                let (status, body) = guard.call_as(key, "GET", &path, None).await;
                assert_eq!(status, 200, "GET {path}: {body}");
                answers.push((path, body.to_string()));
            }
        }
        tokio::task::spawn_blocking(move || drop(guard))
            .await
            .expect("stop the stack");
    }

    let report = chaos.with_requests(|requests| reconcile(&subs, &published, requests));
    let (outages, down_for) = chaos.outages();
    let log = std::fs::read_to_string(&log_path).expect("read the stack's log");
    let secrets = secrets(&subs, &merchants);
    let mut leaks = find_secrets(&log, &answers, &secrets);
    // A merchant's own URL shows whole in its subscriptions' answers, so the URL tokens are
    // searched for in the log and the delivery logs' answers only.
    let url_tokens = url_tokens(&subs);
    let delivery_answers: Vec<(String, String)> = answers
        .iter()
        .filter(|(path, _)| path.contains("/deliveries"))
        .cloned()
        .collect();
    leaks.extend(find_secrets(&log, &delivery_answers, &url_tokens));
    let searched = secrets.len() + url_tokens.len();
    let platform = platform_attempts(&log);

    println!(
        "\n===== chaos soak: {backend}, {} s, seed {} =====",
        config.seconds, config.seed
    );
    println!(
        "publishing:                 {published_in:.1?} at {} events/s",
        config.per_second
    );
    println!("drain:                      {drained_in:.1?}");
    println!("stack restarts (kill -9):   {restarts}");
    println!("merchant outages:           {outages} ({down_for:.1?} down in all)");
    print!("{}", report.render());
    println!("platform's attempts (log):  {platform:?}");
    println!(
        "secrets check:              {searched} secrets, keys and URL tokens searched in {} log lines ({} bytes) and {} list/get answers: {} found",
        log.lines().count(),
        log.len(),
        answers.len(),
        leaks.len()
    );
    for leak in &leaks {
        println!("    LEAK: {leak}");
    }
    for (event_id, subscription_id) in report.lost_pairs.iter().take(20) {
        println!(
            "    lost {event_id} for {subscription_id}; the stack's attempts: {:?}",
            attempts_logged(&log, event_id, subscription_id)
        );
    }
    write_summary(
        &out_dir,
        &config,
        backend,
        &report,
        restarts,
        outages,
        published_in,
        drained_in,
        &platform,
        log.lines().count(),
        searched,
        leaks.len(),
    );

    assert!(
        leaks.is_empty(),
        "secrets, API keys or URL tokens in the log or answers: {leaks:?}"
    );
    assert!(
        report.violations.is_empty(),
        "{} violations, e.g. {:?}",
        report.violations.len(),
        &report.violations[..report.violations.len().min(5)]
    );
    assert_eq!(report.lost, 0, "lost deliveries: {:?}", report.lost_examples);
    assert!(
        report.events_accepted > 0 && report.delivered > 0,
        "the soak did nothing"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
    drop(moto);
}

/// Kills the stack with `kill -9` and restarts it every so often until `until`; returns how
/// many times.
async fn restart_at_random(
    stack: Arc<Mutex<Option<Stack>>>,
    until: Instant,
    every: std::ops::Range<Duration>,
    seed: u64,
) -> u32 {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0c0f_fee0);
    let mut restarts = 0;
    loop {
        let wait = if every.start < every.end {
            rng.random_range(every.clone())
        } else {
            every.start
        };
        if Instant::now() + wait >= until {
            return restarts;
        }
        tokio::time::sleep(wait).await;
        let stack = stack.clone();
        let took = tokio::task::spawn_blocking(move || {
            let mut slot = stack.lock().expect("the stack");
            let running = slot.take().expect("the stack is up");
            let started = Instant::now();
            *slot = Some(running.kill9_and_restart());
            started.elapsed()
        })
        .await
        .expect("restart the stack");
        restarts += 1;
        println!("[soak] kill -9 and restart #{restarts}: up again after {took:.1?}");
    }
}

/// Every secret and key the stack must never log: (what, the text).
fn secrets(subs: &[Sub], merchants: &[(String, String)]) -> Vec<(String, String)> {
    let mut secrets = Vec::new();
    for (merchant, (_, key)) in merchants.iter().enumerate() {
        secrets.push((format!("API key of merchant {merchant}"), key.clone()));
    }
    for sub in subs {
        secrets.push((format!("secret of {}", sub.path), sub.secret.clone()));
        secrets.push((
            format!("standardWebhooksSecret of {}", sub.path),
            sub.standard_secret.clone(),
        ));
        let base64 = sub.standard_secret.trim_start_matches("whsec_").to_owned();
        secrets.push((format!("standardWebhooksSecret of {} without whsec_", sub.path), base64));
    }
    secrets
}

/// The token in each subscription's URL: (what, the text).
fn url_tokens(subs: &[Sub]) -> Vec<(String, String)> {
    subs.iter()
        .map(|sub| (format!("URL token of {}", sub.path), sub.url_token.clone()))
        .collect()
}

/// Where a secret shows: in the log, or in an answer of a list or get route.
fn find_secrets(log: &str, answers: &[(String, String)], secrets: &[(String, String)]) -> Vec<String> {
    let mut leaks = Vec::new();
    for (what, secret) in secrets {
        assert!(secret.len() >= 16, "{what} is too short to search for");
        if let Some((number, _)) = log.lines().enumerate().find(|(_, line)| line.contains(secret.as_str())) {
            leaks.push(format!("{what} in log line {}", number + 1));
        }
        for (path, body) in answers {
            if body.contains(secret.as_str()) {
                leaks.push(format!("{what} in the answer to GET {path}"));
            }
        }
    }
    leaks
}

/// The stack's own account of its attempts, from its `delivery attempt` log lines, and the
/// warnings and errors it logged.
fn platform_attempts(log: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in log.lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            *counts.entry("(not JSON)".to_owned()).or_default() += 1;
            continue;
        };
        let message = entry["message"].as_str().unwrap_or_default();
        let level = entry["level"].as_str().unwrap_or_default();
        if message == "delivery attempt" {
            let outcome = entry["outcome"].as_str().unwrap_or_default();
            let outcome = outcome.split('(').next().unwrap_or_default();
            let key = match entry["error"].as_str() {
                Some(error) => format!("attempt {outcome} {error}"),
                None => format!("attempt {outcome}"),
            };
            *counts.entry(key).or_default() += 1;
        } else if level == "WARN" || level == "ERROR" {
            *counts.entry(format!("{level} {message}")).or_default() += 1;
        }
    }
    counts
}

/// The stack's `delivery attempt` lines for one pair: (attempt, outcome, error, next attempt at).
fn attempts_logged(log: &str, event_id: &str, subscription_id: &str) -> Vec<String> {
    log.lines()
        .filter(|line| line.contains(event_id) && line.contains(subscription_id))
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["message"] == "delivery attempt")
        .map(|entry| {
            format!(
                "{} #{} {} {} next {}",
                entry["timestamp"].as_str().unwrap_or_default(),
                entry["attempt"],
                entry["outcome"].as_str().unwrap_or_default(),
                entry["error"].as_str().unwrap_or("-"),
                entry["next_attempt_at"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn write_summary(
    out_dir: &Path,
    config: &Config,
    backend: &str,
    report: &Report,
    restarts: u32,
    outages: u64,
    published_in: Duration,
    drained_in: Duration,
    platform: &BTreeMap<String, usize>,
    log_lines: usize,
    secrets: usize,
    leaks: usize,
) {
    let ms = |d: Duration| (d.as_secs_f64() * 1000.0).round() as u64;
    let summary = json!({
        "backend": backend,
        "seconds": config.seconds,
        "eventsPerSecond": config.per_second,
        "seed": config.seed,
        "publishedForMs": ms(published_in),
        "drainedInMs": ms(drained_in),
        "restarts": restarts,
        "merchantOutages": outages,
        "eventsAccepted": report.events_accepted,
        "duplicatesPublished": report.duplicates_published,
        "publishResends": report.publish_resends,
        "expected": report.expected,
        "delivered": report.delivered,
        "duplicateDeliveries": report.duplicate_deliveries,
        "requests": report.requests,
        "failedAttempts": report.failed_total,
        "failedByKind": report.failed_answers,
        "lost": report.lost,
        "violations": report.violations.len(),
        "latencyMs": {
            "p50": ms(report.latency(0.5)), "p95": ms(report.latency(0.95)),
            "p99": ms(report.latency(0.99)), "max": ms(report.latency(1.0)),
        },
        "platformAttempts": platform,
        "logLinesSearched": log_lines,
        "secretsSearched": secrets,
        "secretsFound": leaks,
    });
    let path = out_dir.join("summary.json");
    std::fs::write(&path, serde_json::to_string_pretty(&summary).expect("JSON")).expect("write the summary");
    println!("summary: {}", path.display());
}
