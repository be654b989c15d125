use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::Instant;
use webhooks_domain::UrlPolicy;

use super::*;

const LOOPBACK: UrlPolicy = UrlPolicy {
    allow_http: true,
    allow_private: true,
};

fn client(policy: UrlPolicy) -> OutboundClient {
    OutboundClient::new(policy, "outbound-tests").expect("client")
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

/// A one-connection server on loopback that answers every request with `response`
/// (after `delay`); its port.
async fn answer_with(response: String, delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut request = vec![0; 16 * 1024];
                let _ = socket.read(&mut request).await;
                tokio::time::sleep(delay).await;
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

fn http_response(status: &str, extra_headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{extra_headers}connection: close\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn retry_after_takes_seconds_and_dates() {
    assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
    assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
    let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(600));
    let parsed = parse_retry_after(&later).unwrap();
    assert!(
        parsed > Duration::from_secs(590) && parsed <= Duration::from_secs(600),
        "{parsed:?}"
    );
    for junk in ["", "soon", "-5", "1.5"] {
        assert_eq!(parse_retry_after(junk), None, "{junk:?}");
    }
}

#[tokio::test]
async fn a_url_the_policy_refuses_is_blocked_before_anything_is_sent() {
    let failure = client(UrlPolicy::default())
        .check("https://127.0.0.1/hook")
        .expect_err("loopback literal");
    assert_eq!(failure.kind(), "blocked_url");
}

#[tokio::test]
async fn a_name_the_guarded_resolver_refuses_is_a_blocked_url() {
    let port = answer_with(http_response("200 OK", "", "ok"), Duration::ZERO).await;
    let policy = UrlPolicy {
        allow_http: true,
        allow_private: false,
    };
    // Straight to the HTTP layer: the URL check would refuse `localhost` before any lookup.
    let client = client(policy);
    let request = client.http.post(format!("http://localhost:{port}/auth"));
    let failure = client
        .exchange(request, BodyLimit::Truncate(10), soon())
        .await
        .expect_err("blocked");
    assert_eq!(failure.kind(), "blocked_url");
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error_that_does_not_show_the_url() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("address").port()
    };
    let client = client(LOOPBACK);
    let request = client.post(
        &client
            .check(&format!("http://127.0.0.1:{port}/auth?key=s3cret"))
            .expect("allowed"),
    );
    let failure = client
        .exchange(request, BodyLimit::Truncate(10), soon())
        .await
        .expect_err("nothing listens");
    assert_eq!(failure.kind(), "connect_error");
    assert!(!failure.to_string().contains("s3cret"), "{failure}");
}

#[tokio::test]
async fn the_deadline_covers_the_whole_exchange() {
    let port = answer_with(http_response("200 OK", "", "late"), Duration::from_secs(3)).await;
    let client = client(LOOPBACK);
    let request = client.post(&client.check(&format!("http://127.0.0.1:{port}/")).expect("allowed"));
    let failure = client
        .exchange(
            request,
            BodyLimit::Truncate(10),
            Instant::now() + Duration::from_millis(200),
        )
        .await
        .expect_err("too slow");
    assert_eq!(failure, Failure::Timeout);
}

#[tokio::test]
async fn a_truncated_read_keeps_the_first_bytes_and_the_retry_after() {
    let port = answer_with(
        http_response("503 Service Unavailable", "retry-after: 7\r\n", "0123456789"),
        Duration::ZERO,
    )
    .await;
    let client = client(LOOPBACK);
    let request = client.post(&client.check(&format!("http://127.0.0.1:{port}/")).expect("allowed"));
    let reply = client
        .exchange(request, BodyLimit::Truncate(4), soon())
        .await
        .expect("an answer");
    assert_eq!(reply.status, 503);
    assert!(!reply.is_success());
    assert_eq!(reply.body, b"0123");
    assert_eq!(reply.retry_after, Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn a_success_read_refuses_an_oversized_body_and_skips_a_failures_body() {
    let client = client(LOOPBACK);
    let big = answer_with(http_response("200 OK", "", &"x".repeat(100)), Duration::ZERO).await;
    let request = client.post(&client.check(&format!("http://127.0.0.1:{big}/")).expect("allowed"));
    let failure = client
        .exchange(request, BodyLimit::SuccessUpTo(99), soon())
        .await
        .expect_err("too large");
    assert_eq!(failure.kind(), "response_too_large");

    let refused = answer_with(http_response("403 Forbidden", "", &"x".repeat(100)), Duration::ZERO).await;
    let request = client.post(&client.check(&format!("http://127.0.0.1:{refused}/")).expect("allowed"));
    let reply = client
        .exchange(request, BodyLimit::SuccessUpTo(10), soon())
        .await
        .expect("the status decides");
    assert_eq!((reply.status, reply.body.len()), (403, 0));
}
