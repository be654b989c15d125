//! Where we may send requests: the SSRF policy for webhook and auth-callback URLs (DESIGN §3).
//!
//! Two checks, one policy. [`UrlPolicy::check`] judges a URL when a merchant saves it and
//! again before each request: the scheme, and a host that is an IP literal in any spelling
//! (the WHATWG parser turns `2130706433`, `0x7f.1`, `0177.0.0.1` and `[::ffff:7f00:1]` into
//! addresses) or `localhost`. A hostname need not resolve then: the outbound HTTP client's
//! guarded resolver (`webhooks-outbound`) judges every address it resolves to with
//! [`UrlPolicy::check_ip`] at connect time, so a name that later resolves to a private
//! address (DNS rebinding) reaches nothing. A URL a merchant saves must also carry no
//! credentials before its host ([`UrlPolicy::check_new`]).
//!
//! What of a URL may be shown (a log line, a DLQ reason, an error text) is
//! [`redact_url`]: never its userinfo, query or fragment (DESIGN §3, secrets at rest).

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// The longest URL we store, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// What [`redact_url`] shows of text that is not a URL.
pub const UNPARSABLE_URL: &str = "<unparsable url>";

/// The operator's switches; both default to false (Lambda) and are true in the local stack.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Accept `http://` as well as `https://` (`WEBHOOKS_ALLOW_HTTP`).
    pub allow_http: bool,
    /// Accept loopback, private and other internal targets (`WEBHOOKS_ALLOW_PRIVATE_URLS`).
    pub allow_private: bool,
}

/// The address classes no webhook may reach unless private targets are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockedClass {
    /// `0.0.0.0`, `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// RFC 1918 and the carrier-grade NAT range `100.64.0.0/10`.
    Private,
    /// `169.254.0.0/16`, `fe80::/10`.
    LinkLocal,
    /// `fc00::/7`.
    UniqueLocal,
    /// `224.0.0.0/4`, `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// Ranges that are never public hosts: `0.0.0.0/8`, `192.0.0.0/24`, documentation and
    /// benchmarking ranges, `240.0.0.0/4`, `fec0::/10`, `2001:db8::/32`, `100::/64`, Teredo.
    Reserved,
}

impl fmt::Display for BlockedClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockedClass::Unspecified => "unspecified",
            BlockedClass::Loopback => "loopback",
            BlockedClass::Private => "private",
            BlockedClass::LinkLocal => "link-local",
            BlockedClass::UniqueLocal => "unique-local",
            BlockedClass::Multicast => "multicast",
            BlockedClass::Broadcast => "broadcast",
            BlockedClass::Reserved => "reserved",
        })
    }
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefusal {
    /// Longer than [`MAX_URL_LEN`].
    #[error("url is {0} bytes long, more than the 2048 allowed")]
    TooLong(usize),
    /// Not a URL by the WHATWG rules.
    #[error("url does not parse: {0}")]
    Unparseable(String),
    /// A scheme other than https (or http where allowed).
    #[error("url scheme {0:?} is not allowed: use https")]
    SchemeNotAllowed(String),
    /// The URL has no host.
    #[error("url has no host")]
    NoHost,
    /// The host is `localhost` or a name under it.
    #[error("url host {0:?} is a local name")]
    LocalName(String),
    /// The host is an address of a blocked class.
    #[error("url host {address} is a {class} address")]
    BlockedAddress {
        /// The address, as parsed.
        address: IpAddr,
        /// Its class.
        class: BlockedClass,
    },
    /// A URL being saved carries a user name or password (`user:pass@host`); the message
    /// does not repeat them.
    #[error(
        "url must not contain a user name or password (user:password@host); put a token in the query string instead"
    )]
    Credentials,
}

impl UrlPolicy {
    /// Judges `text` as a webhook or callback URL; returns the parsed URL when allowed.
    pub fn check(&self, text: &str) -> Result<Url, UrlRefusal> {
        if text.len() > MAX_URL_LEN {
            return Err(UrlRefusal::TooLong(text.len()));
        }
        let url = Url::parse(text).map_err(|e| UrlRefusal::Unparseable(e.to_string()))?;
        self.check_url(&url)?;
        Ok(url)
    }

    /// Judges `text` as a URL a merchant is saving (a webhook, an auth callback or a token
    /// URL): everything [`check`](Self::check) judges, and no user name or password before
    /// the host. Requests still go to a stored URL that has them (saved before this rule);
    /// [`redact_url`] keeps them out of every log line and error text.
    pub fn check_new(&self, text: &str) -> Result<Url, UrlRefusal> {
        let url = self.check(text)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlRefusal::Credentials);
        }
        Ok(url)
    }

    /// Judges an already parsed URL (deliveries call this before every request: an IP
    /// literal never reaches the resolver).
    pub fn check_url(&self, url: &Url) -> Result<(), UrlRefusal> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            other => return Err(UrlRefusal::SchemeNotAllowed(other.to_owned())),
        }
        let host = url.host().ok_or(UrlRefusal::NoHost)?;
        if self.allow_private {
            return Ok(());
        }
        match host {
            Host::Domain(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if name == "localhost" || name.ends_with(".localhost") {
                    return Err(UrlRefusal::LocalName(name));
                }
                Ok(())
            }
            Host::Ipv4(v4) => self.check_ip(IpAddr::V4(v4)),
            Host::Ipv6(v6) => self.check_ip(IpAddr::V6(v6)),
        }
    }

    /// Judges one address, as the resolver does for every address a name resolves to.
    pub fn check_ip(&self, address: IpAddr) -> Result<(), UrlRefusal> {
        match blocked_class(address) {
            Some(class) if !self.allow_private => Err(UrlRefusal::BlockedAddress { address, class }),
            _ => Ok(()),
        }
    }
}

/// What may be shown of the URL `text`: its scheme, host, port and path, never its user
/// name, password, query or fragment (`https://user:pw@merchant.example/hooks?token=abc#x`
/// shows as `https://merchant.example/hooks`). Text that does not parse shows as
/// [`UNPARSABLE_URL`]; a URL without a hierarchy (`mailto:`, `data:`) as its scheme alone.
pub fn redact_url(text: &str) -> String {
    let Ok(url) = Url::parse(text) else {
        return UNPARSABLE_URL.to_owned();
    };
    let mut shown = format!("{}:", url.scheme());
    if url.cannot_be_a_base() {
        return shown;
    }
    shown.push_str("//");
    shown.push_str(url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        let _ = write!(shown, ":{port}");
    }
    shown.push_str(url.path());
    shown
}

/// The class of a blocked address, or `None` for a public one. IPv6 forms that embed an
/// IPv4 address (mapped, compatible, NAT64, 6to4) are judged by that address.
pub fn blocked_class(address: IpAddr) -> Option<BlockedClass> {
    match address {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn blocked_v4(ip: Ipv4Addr) -> Option<BlockedClass> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() => BlockedClass::Unspecified,
        _ if ip.is_broadcast() => BlockedClass::Broadcast,
        (127, _, _) => BlockedClass::Loopback,
        (10, _, _) | (192, 168, _) => BlockedClass::Private,
        (172, 16..=31, _) | (100, 64..=127, _) => BlockedClass::Private,
        (169, 254, _) => BlockedClass::LinkLocal,
        (224..=239, _, _) => BlockedClass::Multicast,
        (0, _, _) | (240..=255, _, _) => BlockedClass::Reserved,
        (192, 0, 0) | (192, 0, 2) | (198, 51, 100) | (203, 0, 113) | (198, 18..=19, _) => BlockedClass::Reserved,
        _ => return None,
    })
}

fn blocked_v6(ip: Ipv6Addr) -> Option<BlockedClass> {
    let segments = ip.segments();
    let embedded_v4 = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    Some(match segments {
        _ if ip.is_unspecified() => BlockedClass::Unspecified,
        _ if ip.is_loopback() => BlockedClass::Loopback,
        // IPv4-mapped ::ffff:a.b.c.d and IPv4-compatible ::a.b.c.d.
        [0, 0, 0, 0, 0, 0xffff, high, low] | [0, 0, 0, 0, 0, 0, high, low] => {
            return blocked_v4(embedded_v4(high, low));
        }
        // NAT64 64:ff9b::a.b.c.d.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => return blocked_v4(embedded_v4(high, low)),
        // 6to4 2002:AABB:CCDD::/48.
        [0x2002, high, low, ..] => return blocked_v4(embedded_v4(high, low)),
        [first, ..] if first & 0xfe00 == 0xfc00 => BlockedClass::UniqueLocal,
        [first, ..] if first & 0xffc0 == 0xfe80 => BlockedClass::LinkLocal,
        [first, ..] if first & 0xffc0 == 0xfec0 => BlockedClass::Reserved,
        [first, ..] if first & 0xff00 == 0xff00 => BlockedClass::Multicast,
        [0x2001, 0xdb8, ..] | [0x2001, 0, ..] | [0x100, 0, 0, 0, ..] => BlockedClass::Reserved,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: UrlPolicy = UrlPolicy {
        allow_http: false,
        allow_private: false,
    };

    fn blocked(address: &str, class: BlockedClass) -> Result<(), UrlRefusal> {
        Err(UrlRefusal::BlockedAddress {
            address: address.parse().unwrap(),
            class,
        })
    }

    #[test]
    fn strict_policy_table() {
        use BlockedClass::*;
        let cases: Vec<(&str, Result<(), UrlRefusal>)> = vec![
            // Allowed: public https targets.
            ("https://merchant.example.com/webhooks", Ok(())),
            ("https://merchant.example.com:8443/hooks?x=1#frag", Ok(())),
            ("https://93.184.216.34/hook", Ok(())),
            ("https://[2606:4700:4700::1111]/hook", Ok(())),
            ("https://xn--bcher-kva.example/hook", Ok(())),
            ("https://bücher.example/hook", Ok(())),
            ("https://localhost.example.com/", Ok(())),
            ("https://user:pass@merchant.example.com/", Ok(())),
            ("https://172.32.0.1/", Ok(())),
            ("https://100.128.0.1/", Ok(())),
            ("https://8.8.8.8/", Ok(())),
            ("https://[2002:808:808::1]/", Ok(())),
            // Scheme.
            (
                "http://merchant.example.com/",
                Err(UrlRefusal::SchemeNotAllowed("http".into())),
            ),
            (
                "ftp://merchant.example.com/",
                Err(UrlRefusal::SchemeNotAllowed("ftp".into())),
            ),
            ("file:///etc/passwd", Err(UrlRefusal::SchemeNotAllowed("file".into()))),
            (
                "javascript:alert(1)",
                Err(UrlRefusal::SchemeNotAllowed("javascript".into())),
            ),
            (
                "gopher://127.0.0.1:6379/_PING",
                Err(UrlRefusal::SchemeNotAllowed("gopher".into())),
            ),
            // Local names.
            ("https://localhost/", Err(UrlRefusal::LocalName("localhost".into()))),
            ("https://LOCALHOST./", Err(UrlRefusal::LocalName("localhost".into()))),
            (
                "https://api.localhost/",
                Err(UrlRefusal::LocalName("api.localhost".into())),
            ),
            // Loopback in every spelling.
            ("https://127.0.0.1/", blocked("127.0.0.1", Loopback)),
            ("https://127.1/", blocked("127.0.0.1", Loopback)),
            ("https://127.0.1/", blocked("127.0.0.1", Loopback)),
            ("https://2130706433/", blocked("127.0.0.1", Loopback)),
            ("https://0x7f000001/", blocked("127.0.0.1", Loopback)),
            ("https://0x7f.0x0.0x0.0x1/", blocked("127.0.0.1", Loopback)),
            ("https://0177.0.0.1/", blocked("127.0.0.1", Loopback)),
            ("https://017700000001/", blocked("127.0.0.1", Loopback)),
            ("https://127.0.0.1./", blocked("127.0.0.1", Loopback)),
            ("https://127.255.255.254/", blocked("127.255.255.254", Loopback)),
            ("https://example.com@127.0.0.1/", blocked("127.0.0.1", Loopback)),
            ("https://[::1]/", blocked("::1", Loopback)),
            ("https://[0:0:0:0:0:0:0:1]/", blocked("::1", Loopback)),
            ("https://[::ffff:127.0.0.1]/", blocked("::ffff:127.0.0.1", Loopback)),
            ("https://[::ffff:7f00:1]/", blocked("::ffff:127.0.0.1", Loopback)),
            ("https://[::127.0.0.1]/", blocked("::127.0.0.1", Loopback)),
            ("https://[64:ff9b::7f00:1]/", blocked("64:ff9b::7f00:1", Loopback)),
            ("https://[2002:7f00:1::]/", blocked("2002:7f00:1::", Loopback)),
            // Unspecified.
            ("https://0.0.0.0/", blocked("0.0.0.0", Unspecified)),
            ("https://0/", blocked("0.0.0.0", Unspecified)),
            ("https://[::]/", blocked("::", Unspecified)),
            // Private and shared.
            ("https://10.0.0.1/", blocked("10.0.0.1", Private)),
            ("https://10.255.255.255/", blocked("10.255.255.255", Private)),
            ("https://172.16.0.1/", blocked("172.16.0.1", Private)),
            ("https://172.31.255.255/", blocked("172.31.255.255", Private)),
            ("https://192.168.1.1/", blocked("192.168.1.1", Private)),
            ("https://0xc0a80101/", blocked("192.168.1.1", Private)),
            ("https://3232235777/", blocked("192.168.1.1", Private)),
            ("https://100.64.0.1/", blocked("100.64.0.1", Private)),
            ("https://[::ffff:10.0.0.1]/", blocked("::ffff:10.0.0.1", Private)),
            ("https://[::ffff:192.168.0.1]/", blocked("::ffff:192.168.0.1", Private)),
            // Link-local (cloud metadata) and unique-local.
            (
                "https://169.254.169.254/latest/meta-data/",
                blocked("169.254.169.254", LinkLocal),
            ),
            (
                "https://[::ffff:169.254.169.254]/",
                blocked("::ffff:169.254.169.254", LinkLocal),
            ),
            ("https://[fe80::1]/", blocked("fe80::1", LinkLocal)),
            ("https://[fd00:ec2::254]/", blocked("fd00:ec2::254", UniqueLocal)),
            ("https://[fc00::1]/", blocked("fc00::1", UniqueLocal)),
            // Multicast, broadcast, reserved.
            ("https://224.0.0.1/", blocked("224.0.0.1", Multicast)),
            ("https://239.255.255.250/", blocked("239.255.255.250", Multicast)),
            ("https://[ff02::1]/", blocked("ff02::1", Multicast)),
            ("https://255.255.255.255/", blocked("255.255.255.255", Broadcast)),
            ("https://240.0.0.1/", blocked("240.0.0.1", Reserved)),
            ("https://0.1.2.3/", blocked("0.1.2.3", Reserved)),
            ("https://192.0.2.10/", blocked("192.0.2.10", Reserved)),
            ("https://198.18.0.1/", blocked("198.18.0.1", Reserved)),
            ("https://[2001:db8::1]/", blocked("2001:db8::1", Reserved)),
            ("https://[fec0::1]/", blocked("fec0::1", Reserved)),
            // Not URLs.
            (
                "merchant.example.com/hook",
                Err(UrlRefusal::Unparseable("relative URL without a base".into())),
            ),
            ("https://", Err(UrlRefusal::Unparseable("empty host".into()))),
            (
                "https://256.256.256.256/",
                Err(UrlRefusal::Unparseable("invalid IPv4 address".into())),
            ),
            (
                "https://[::1/",
                Err(UrlRefusal::Unparseable("invalid IPv6 address".into())),
            ),
        ];
        assert!(cases.len() >= 40);
        for (url, expected) in cases {
            assert_eq!(STRICT.check(url).map(|_| ()), expected, "{url}");
        }
        let too_long = format!("https://merchant.example.com/{}", "a".repeat(2048));
        assert_eq!(
            STRICT.check(&too_long).map(|_| ()),
            Err(UrlRefusal::TooLong(too_long.len()))
        );
    }

    #[test]
    fn a_url_being_saved_carries_no_credentials_before_its_host() {
        for url in [
            "https://user:pass@merchant.example.com/hook",
            "https://user@merchant.example.com/hook",
            "https://:pass@merchant.example.com/hook",
            "https://tok%40en@merchant.example.com/hook",
            "HTTPS://User:Pass@Merchant.Example.com:8443/hook?x=1",
        ] {
            assert_eq!(STRICT.check_new(url).map(|_| ()), Err(UrlRefusal::Credentials), "{url}");
            assert_eq!(
                STRICT.check(url).map(|_| ()),
                Ok(()),
                "{url}: a stored one is still sent to"
            );
        }
        let message = UrlRefusal::Credentials.to_string();
        assert!(message.contains("user name or password"), "{message}");
        for url in [
            "https://merchant.example.com/hook?token=abc&user=me",
            "https://merchant.example.com/hook#user:pass@x",
            "https://@merchant.example.com/hook",
            "https://merchant.example.com/a@b",
        ] {
            assert_eq!(STRICT.check_new(url).map(|_| ()), Ok(()), "{url}");
        }
        // The other refusals come first, as on every check.
        assert_eq!(
            STRICT.check_new("https://user:pass@127.0.0.1/").map(|_| ()),
            blocked("127.0.0.1", BlockedClass::Loopback)
        );
    }

    #[test]
    fn a_redacted_url_keeps_scheme_host_port_and_path_only() {
        for (url, shown) in [
            (
                "https://merchant.example/hooks?token=abc#x",
                "https://merchant.example/hooks",
            ),
            (
                "https://user:pw@merchant.example/hooks",
                "https://merchant.example/hooks",
            ),
            ("https://user@merchant.example/", "https://merchant.example/"),
            (
                "https://user:pw@merchant.example:8443/a/b?token=t&x=1#frag",
                "https://merchant.example:8443/a/b",
            ),
            ("https://merchant.example:443/hooks", "https://merchant.example/hooks"),
            ("http://127.0.0.1:3000/hook?key=s3cret", "http://127.0.0.1:3000/hook"),
            ("https://[::1]:8443/hook?k=v", "https://[::1]:8443/hook"),
            ("https://merchant.example", "https://merchant.example/"),
            ("HTTPS://Bücher.Example/a b?q=ü", "https://xn--bcher-kva.example/a%20b"),
            ("https://merchant.example/hooks?", "https://merchant.example/hooks"),
            ("https://example.com@127.0.0.1/", "https://127.0.0.1/"),
            ("mailto:someone@merchant.example?subject=s3cret", "mailto:"),
            ("data:text/plain,s3cret", "data:"),
            ("file:///etc/passwd", "file:///etc/passwd"),
            ("not a url: user:pw@host?token=abc", UNPARSABLE_URL),
            ("https://user:pw@[::1/?token=abc", UNPARSABLE_URL),
            ("", UNPARSABLE_URL),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn operator_switches_open_http_and_private_targets() {
        let local = UrlPolicy {
            allow_http: true,
            allow_private: true,
        };
        for url in [
            "http://127.0.0.1:3000/hook",
            "http://localhost/",
            "https://[::1]/",
            "http://10.0.0.1/",
        ] {
            assert_eq!(local.check(url).map(|_| ()), Ok(()), "{url}");
        }
        assert_eq!(
            local.check("ftp://127.0.0.1/").map(|_| ()),
            Err(UrlRefusal::SchemeNotAllowed("ftp".into()))
        );
        let http_only = UrlPolicy {
            allow_http: true,
            allow_private: false,
        };
        assert_eq!(http_only.check("http://merchant.example.com/").map(|_| ()), Ok(()));
        assert_eq!(
            http_only.check("http://127.0.0.1/").map(|_| ()),
            blocked("127.0.0.1", BlockedClass::Loopback)
        );
    }
}
