//! The client: one per process and caller kind, shared by every request.

use std::fmt;
use std::time::{Duration, SystemTime};

use reqwest::header::RETRY_AFTER;
use reqwest::{RequestBuilder, Response};
use tokio::time::{Instant, timeout_at};
use url::Url;
use webhooks_domain::{UrlPolicy, redact_url};

use crate::failure::Failure;
use crate::resolver::{GuardedResolver, NameSource};

/// How long an idle keep-alive connection to a merchant is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How much of an answer's body to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// Read at most this many bytes and leave the rest unread (a webhook's answer is only
    /// kept as an excerpt).
    Truncate(usize),
    /// Read a 2xx answer's body whole, refusing one longer than this many bytes with
    /// [`Failure::TooLarge`]; the body of any other status is not read (the status decides).
    SuccessUpTo(usize),
}

/// A URL the client's policy accepted: the only kind it sends requests to. It shows
/// (`Display` and `Debug`) as [`redact_url`] does: no userinfo, query or fragment.
#[derive(Clone, PartialEq, Eq)]
pub struct CheckedUrl(Url);

impl fmt::Display for CheckedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(self.0.as_str()))
    }
}

impl fmt::Debug for CheckedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CheckedUrl").field(&format_args!("{self}")).finish()
    }
}

/// A merchant's answer: any status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Its `Retry-After`, as a delay from now.
    pub retry_after: Option<Duration>,
    /// The body, as far as the [`BodyLimit`] allowed.
    pub body: Vec<u8>,
}

impl Reply {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..=299).contains(&self.status)
    }
}

/// The HTTP client every outbound request goes through: the policy's guarded resolver,
/// no redirects, no retries, no proxies from the environment, rustls, keep-alive; a URL
/// check before each request, a deadline over the whole exchange and a capped read.
#[derive(Debug, Clone)]
pub struct OutboundClient {
    pub(crate) http: reqwest::Client,
    policy: UrlPolicy,
}

impl OutboundClient {
    /// A client enforcing `policy`, sending `user_agent`.
    pub fn new(policy: UrlPolicy, user_agent: &str) -> Result<Self, reqwest::Error> {
        Self::with_names(policy, user_agent, NameSource::System)
    }

    /// The same, resolving names from `names` (a fixed table stands in for a hostile DNS
    /// server in tests).
    pub fn with_names(policy: UrlPolicy, user_agent: &str, names: NameSource) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .dns_resolver(std::sync::Arc::new(GuardedResolver::with_names(policy, names)))
            .redirect(reqwest::redirect::Policy::none())
            // Never sent twice by the client (a webhook's retry is an attempt of its own,
            // recorded), and so never copied in case it must be.
            .retry(reqwest::retry::never().max_retries_per_request(0))
            .no_proxy()
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .use_rustls_tls()
            .user_agent(user_agent)
            .build()?;
        Ok(Self { http, policy })
    }

    /// Judges `url` by the policy: a [`CheckedUrl`], or [`Failure::BlockedUrl`].
    pub fn check(&self, url: &str) -> Result<CheckedUrl, Failure> {
        self.policy
            .check(url)
            .map(CheckedUrl)
            .map_err(|refusal| Failure::BlockedUrl(refusal.to_string()))
    }

    /// A POST to a URL the policy accepted.
    pub fn post(&self, url: &CheckedUrl) -> RequestBuilder {
        self.http.post(url.0.clone())
    }

    /// Sends `request` and reads its answer within `limit`; the whole exchange, connect to
    /// last byte read, ends by `deadline` or is a [`Failure::Timeout`].
    pub async fn exchange(
        &self,
        request: RequestBuilder,
        limit: BodyLimit,
        deadline: Instant,
    ) -> Result<Reply, Failure> {
        let exchange = async {
            let mut response = request.send().await.map_err(|e| Failure::from_reqwest(&e))?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let body = read_body(&mut response, limit).await?;
            Ok(Reply {
                status,
                retry_after,
                body,
            })
        };
        timeout_at(deadline, exchange).await.unwrap_or(Err(Failure::Timeout))
    }
}

/// Reads as much of the body as `limit` allows, a chunk at a time.
async fn read_body(response: &mut Response, limit: BodyLimit) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    match limit {
        BodyLimit::Truncate(max_bytes) => {
            while body.len() < max_bytes {
                match response.chunk().await.map_err(|e| Failure::from_reqwest(&e))? {
                    Some(chunk) => body.extend_from_slice(&chunk[..chunk.len().min(max_bytes - body.len())]),
                    None => break,
                }
            }
        }
        BodyLimit::SuccessUpTo(max_bytes) => {
            if !response.status().is_success() {
                return Ok(body);
            }
            let too_large = Failure::TooLarge { max_bytes };
            if response.content_length().is_some_and(|len| len > max_bytes as u64) {
                return Err(too_large);
            }
            while let Some(chunk) = response.chunk().await.map_err(|e| Failure::from_reqwest(&e))? {
                if body.len() + chunk.len() > max_bytes {
                    return Err(too_large);
                }
                body.extend_from_slice(&chunk);
            }
        }
    }
    Ok(body)
}

/// `Retry-After` as seconds or as an HTTP date; a date in the past means now.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}
