//! The URL policy never panics, and no URL it allows under the strict policy has a host that
//! is a blocked address or a local name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhooks_domain::url_policy::blocked_class;
use webhooks_domain::UrlPolicy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let strict = UrlPolicy::default();
    let Ok(url) = strict.check(text) else { return };
    assert_eq!(url.scheme(), "https");
    match url.host().expect("allowed URLs have a host") {
        url::Host::Ipv4(ip) => assert_eq!(blocked_class(ip.into()), None, "{text}"),
        url::Host::Ipv6(ip) => assert_eq!(blocked_class(ip.into()), None, "{text}"),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            assert!(name != "localhost" && !name.ends_with(".localhost"), "{text}");
        }
    }
});
