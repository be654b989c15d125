//! The one outbound HTTP client of the platform: webhooks, auth callbacks and OAuth 2
//! token fetches all go through [`OutboundClient`], so the SSRF policy (a URL check before
//! each request and the [`GuardedResolver`] at connect time), the refusal of redirects and
//! proxies, the deadline, the capped read and the classification of failures
//! ([`Failure::kind`]) are the same for every caller.

mod client;
mod failure;
mod resolver;

pub use client::{BodyLimit, CheckedUrl, OutboundClient, Reply, parse_retry_after};
pub use failure::Failure;
pub use resolver::{GuardedResolver, NameSource};

#[cfg(test)]
mod tests;
