//! The HTTP client's DNS resolver: the second of the SSRF policy's two checks, made on
//! every address a name resolves to, at connect time (DNS rebinding).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use webhooks_domain::UrlPolicy;

/// Where the guarded resolver gets addresses from.
#[derive(Debug, Clone, Default)]
pub enum NameSource {
    /// The system resolver (`getaddrinfo`).
    #[default]
    System,
    /// A fixed table of names (tests: a name that "resolves" to a private address).
    Fixed(Arc<HashMap<String, Vec<IpAddr>>>),
}

/// Resolves the name, then keeps only the addresses the policy allows. A name with no
/// allowed address fails to connect with [`std::io::ErrorKind::PermissionDenied`], which
/// the client classifies as a blocked URL.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: UrlPolicy,
    names: NameSource,
}

impl GuardedResolver {
    /// A resolver enforcing `policy` over the system resolver.
    pub fn new(policy: UrlPolicy) -> Self {
        Self::with_names(policy, NameSource::System)
    }

    /// A resolver enforcing `policy` over `names`.
    pub fn with_names(policy: UrlPolicy, names: NameSource) -> Self {
        Self { policy, names }
    }

    /// Resolves `host` and keeps the allowed addresses (port 0: the client sets the port).
    pub async fn resolve_allowed(&self, host: &str) -> std::io::Result<Vec<SocketAddr>> {
        let resolved: Vec<SocketAddr> = match &self.names {
            NameSource::System => tokio::net::lookup_host((host, 0)).await?.collect(),
            NameSource::Fixed(table) => table
                .get(host)
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host} is not known")))?
                .iter()
                .map(|ip| SocketAddr::new(*ip, 0))
                .collect(),
        };
        let allowed: Vec<SocketAddr> = resolved
            .into_iter()
            .filter(|a| self.policy.check_ip(a.ip()).is_ok())
            .collect();
        if allowed.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{host} resolves only to blocked addresses"),
            ));
        }
        Ok(allowed)
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let allowed = resolver.resolve_allowed(name.as_str()).await?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resolver_drops_names_that_resolve_to_blocked_addresses() {
        let strict = GuardedResolver::new(UrlPolicy::default());
        let error = strict.resolve_allowed("localhost").await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
        let open = GuardedResolver::new(UrlPolicy {
            allow_http: true,
            allow_private: true,
        });
        assert!(!open.resolve_allowed("localhost").await.unwrap().is_empty());
    }
}
