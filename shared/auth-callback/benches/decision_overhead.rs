//! What a decision costs beyond the merchant's own work: a loopback merchant answering
//! `true`, the embedded store, 2,000 sequential decisions with the decision cache off and
//! on; prints p50/p99. Not a test: `cargo bench -p webhooks-auth-callback --bench decision_overhead`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use webhooks_auth_callback::{AuthCallback, AuthRequest, MAX_RESPONSE_BYTES};
use webhooks_domain::event::IsoTime;
use webhooks_domain::{AuthCallbackConfig, AuthMethod, Merchant, SystemClock, UrlPolicy};
use webhooks_outbound::{BodyLimit, OutboundClient};
use webhooks_storage::embedded::EmbeddedStore;
use webhooks_storage::{AuthCallbackStore, MerchantStore};

const DECISIONS: usize = 2_000;
const WARM_UP: usize = 100;
const LOOPBACK: UrlPolicy = UrlPolicy {
    allow_http: true,
    allow_private: true,
};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(run());
}

async fn run() {
    // The merchant notes how long it spent on each request, from handler entry to answer.
    let handling_ns = Arc::new(AtomicU64::new(0));
    let noted = Arc::clone(&handling_ns);
    let router = Router::new().route(
        "/auth",
        post(move |body: Bytes| {
            let noted = Arc::clone(&noted);
            async move {
                let started = Instant::now();
                let request: serde_json::Value = serde_json::from_slice(&body).expect("a JSON request");
                assert!(request["email"].is_string());
                noted.store(nanos(started.elapsed()), Ordering::SeqCst);
                "true"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/auth", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, router).await });

    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(&dir.path().join("bench.db")).expect("store");
    let uncached = merchant(&store, &url, None).await;
    let cached = merchant(&store, &url, Some(3_600)).await;
    let auth = AuthCallback::new(store, LOOPBACK, Duration::from_secs(3), Arc::new(SystemClock)).expect("build");

    let client = OutboundClient::new(LOOPBACK, "bench").expect("client");
    let checked = client.check(&url).expect("loopback is allowed");
    let mut raw_post = Vec::with_capacity(DECISIONS);
    for n in 0..WARM_UP + DECISIONS {
        let started = Instant::now();
        let request = client
            .post(&checked)
            .header("content-type", "application/json")
            .body(r#"{"email":"user@example.com","action":"buy"}"#);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        let reply = client
            .exchange(request, BodyLimit::SuccessUpTo(MAX_RESPONSE_BYTES), deadline)
            .await
            .expect("merchant answers");
        assert_eq!(reply.body, b"true");
        if n >= WARM_UP {
            raw_post.push(nanos(started.elapsed()));
        }
    }

    let mut decisions = Vec::with_capacity(DECISIONS);
    let mut overhead = Vec::with_capacity(DECISIONS);
    let mut cached_decisions = Vec::with_capacity(DECISIONS);
    for n in 0..WARM_UP + DECISIONS {
        for (merchant_id, samples) in [(&uncached, &mut decisions), (&cached, &mut cached_decisions)] {
            handling_ns.store(0, Ordering::SeqCst);
            let started = Instant::now();
            let decision = auth
                .decide(AuthRequest {
                    merchant_id: merchant_id.clone(),
                    email: "user@example.com".into(),
                    action: "buy".into(),
                })
                .await;
            let elapsed = nanos(started.elapsed());
            assert!(decision.allowed, "{decision:?}");
            if n >= WARM_UP {
                samples.push(elapsed);
                if !decision.cached {
                    overhead.push(elapsed.saturating_sub(handling_ns.load(Ordering::SeqCst)));
                }
            }
        }
    }

    println!("auth-callback decision latency, loopback merchant answering `true`, {DECISIONS} decisions each");
    println!("{:<52} {:>10} {:>10}", "", "p50 (µs)", "p99 (µs)");
    report("plain HTTP POST to the merchant (reference)", raw_post);
    report("decision, cache off", decisions);
    report("decision, cache off, minus merchant handling", overhead);
    report("decision, cache on (positive decision reused)", cached_decisions);
}

async fn merchant(store: &EmbeddedStore, url: &str, cache_ttl_seconds: Option<u64>) -> String {
    let merchant = Merchant {
        id: Merchant::new_id(),
        name: "bench".into(),
        created_at: IsoTime::new(time::OffsetDateTime::now_utc()).expect("a valid time"),
    };
    store
        .create_merchant(&merchant, &format!("hash-{}", merchant.id))
        .await
        .expect("merchant");
    let config = AuthCallbackConfig {
        url: url.into(),
        auth: AuthMethod::None,
        timeout_ms: None,
        cache_ttl_seconds,
        revision: String::new(),
    };
    store.put_auth_callback(&merchant.id, &config).await.expect("config");
    merchant.id
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn report(label: &str, mut samples: Vec<u64>) {
    samples.sort_unstable();
    // Nearest rank.
    let percentile = |p: usize| samples[(samples.len() * p).div_ceil(100).max(1) - 1] as f64 / 1_000.0;
    println!("{label:<52} {:>10.1} {:>10.1}", percentile(50), percentile(99));
}
