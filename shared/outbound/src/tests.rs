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

/// The password and the query token of [`with_credentials`]: no failure text may hold them.
const PASSWORD: &str = "pw-S3CRET";
const TOKEN: &str = "T0KEN-S3CRET";

/// `scheme://merchant:PASSWORD@127.0.0.1:port/p?token=TOKEN#frag`.
fn with_credentials(scheme: &str, port: u16) -> String {
    format!("{scheme}://merchant:{PASSWORD}@127.0.0.1:{port}/p?token={TOKEN}#frag")
}

fn assert_hides_credentials(failure: &Failure, case: &str) {
    for shown in [failure.to_string(), format!("{failure:?}")] {
        assert!(
            !shown.contains(PASSWORD) && !shown.contains(TOKEN) && !shown.contains("merchant:"),
            "{case}: {shown}"
        );
    }
}

#[test]
fn a_checked_url_shows_without_its_credentials_query_or_fragment() {
    let url = client(LOOPBACK)
        .check(&with_credentials("https", 8443))
        .expect("allowed");
    assert_eq!(url.to_string(), "https://127.0.0.1:8443/p");
    assert_eq!(format!("{url:?}"), "CheckedUrl(https://127.0.0.1:8443/p)");
}

#[tokio::test]
async fn no_failure_text_shows_the_urls_credentials_or_query() {
    let open = client(LOOPBACK);
    let refused = {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        listener.local_addr().expect("address").port()
    };
    let not_http = answer_with("SSH-2.0-OpenSSH\r\n".into(), Duration::ZERO).await;
    let cut_short = answer_with(
        "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this".into(),
        Duration::ZERO,
    )
    .await;
    let slow = answer_with(http_response("200 OK", "", "late"), Duration::from_secs(3)).await;
    let cases = [
        ("refused", with_credentials("http", refused), "connect_error", soon()),
        (
            "TLS to a plain server",
            with_credentials("https", not_http),
            "connect_error",
            soon(),
        ),
        ("not HTTP", with_credentials("http", not_http), "request_error", soon()),
        (
            "body cut short",
            with_credentials("http", cut_short),
            "connect_error",
            soon(),
        ),
        (
            "timeout",
            with_credentials("http", slow),
            "timeout",
            Instant::now() + Duration::from_millis(200),
        ),
    ];
    for (case, url, kind, deadline) in cases {
        let request = open.post(&open.check(&url).expect("allowed"));
        let failure = open
            .exchange(request, BodyLimit::SuccessUpTo(1000), deadline)
            .await
            .expect_err(case);
        assert_eq!(failure.kind(), kind, "{case}: {failure}");
        assert_hides_credentials(&failure, case);
    }

    let blocked = client(UrlPolicy::default())
        .check(&with_credentials("https", 443))
        .expect_err("loopback literal");
    assert_eq!(blocked.kind(), "blocked_url");
    assert_hides_credentials(&blocked, "blocked by the URL check");

    let strict = client(UrlPolicy {
        allow_http: true,
        allow_private: false,
    });
    let url = format!("http://merchant:{PASSWORD}@localhost:{refused}/p?token={TOKEN}");
    let failure = strict
        .exchange(strict.http.post(url), BodyLimit::Truncate(10), soon())
        .await
        .expect_err("blocked");
    assert_eq!(failure.kind(), "blocked_url");
    assert_hides_credentials(&failure, "blocked by the resolver");
}

#[tokio::test]
async fn a_url_with_userinfo_still_sends_it_as_basic_auth() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let received = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("a request");
        let mut request = vec![0; 16 * 1024];
        let read = socket.read(&mut request).await.expect("read");
        let _ = socket.write_all(http_response("200 OK", "", "ok").as_bytes()).await;
        String::from_utf8_lossy(&request[..read]).into_owned()
    });
    let client = client(LOOPBACK);
    let url = client
        .check(&with_credentials("http", port))
        .expect("a stored URL is sent to");
    let reply = client
        .exchange(client.post(&url), BodyLimit::Truncate(10), soon())
        .await
        .expect("an answer");
    assert_eq!(reply.status, 200);
    let request = received.await.expect("the server");
    assert!(
        request.starts_with(&format!("POST /p?token={TOKEN} HTTP/1.1\r\n")),
        "{request}"
    );
    assert!(
        request.contains("\r\nauthorization: Basic bWVyY2hhbnQ6cHctUzNDUkVU\r\n"),
        "merchant:{PASSWORD} as basic auth: {request}"
    );
}
