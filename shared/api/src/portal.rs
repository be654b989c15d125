//! The merchant portal (DESIGN section 6): a single page and its assets, built into the
//! binary, served at `/` and `/portal/{file}` beside the API, by the subscriptions Lambda
//! and the local stack alike. The page talks only to the public `/v1` API with the
//! merchant's key; these routes need no key and are not counted against any limit.
//!
//! Every answer carries a strict Content-Security-Policy (only our own scripts, styles and
//! API; no inline code, no frames) and the usual security headers.

use axum::Router;
use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::ApiError;

/// What the portal's answers may load and do.
const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The portal's files: name, content type, bytes. `index.html` is also served at `/`.
const ASSETS: [(&str, &str, &[u8]); 13] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../portal/index.html"),
    ),
    (
        "portal.css",
        "text/css; charset=utf-8",
        include_bytes!("../portal/portal.css"),
    ),
    ("favicon.svg", "image/svg+xml", include_bytes!("../portal/favicon.svg")),
    ("portal.js", JS, include_bytes!("../portal/portal.js")),
    ("api.js", JS, include_bytes!("../portal/api.js")),
    ("dom.js", JS, include_bytes!("../portal/dom.js")),
    ("format.js", JS, include_bytes!("../portal/format.js")),
    ("endpoints.js", JS, include_bytes!("../portal/endpoints.js")),
    ("endpoint-form.js", JS, include_bytes!("../portal/endpoint-form.js")),
    ("endpoint-detail.js", JS, include_bytes!("../portal/endpoint-detail.js")),
    ("deliveries.js", JS, include_bytes!("../portal/deliveries.js")),
    ("stats-chart.js", JS, include_bytes!("../portal/stats-chart.js")),
    ("auth-callback.js", JS, include_bytes!("../portal/auth-callback.js")),
];

/// ES modules need a JavaScript type (the answers are `nosniff`).
const JS: &str = "text/javascript; charset=utf-8";

/// `GET /` and `GET /portal/{file}`.
pub(crate) fn portal_routes<T: Clone + Send + Sync + 'static>() -> Router<T> {
    Router::new().route("/", get(|| async { asset("index.html") })).route(
        "/portal/{file}",
        get(|Path(file): Path<String>| async move { asset(&file) }),
    )
}

fn asset(name: &str) -> Response {
    match ASSETS.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, bytes)) => {
            let mut response = (StatusCode::OK, [(CONTENT_TYPE, *content_type)], *bytes).into_response();
            response.headers_mut().extend(SECURITY_HEADERS);
            response
        }
        None => ApiError::not_found("portal file").into_response(),
    }
}

/// The headers of every portal answer: `no-cache` so that a deploy shows at once.
const SECURITY_HEADERS: [(HeaderName, HeaderValue); 5] = [
    (
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY_VALUE),
    ),
    (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
    (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
    (X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_comes_with_its_type_and_the_security_headers_and_an_unknown_one_is_a_404() {
        let page = asset("portal.js");
        assert_eq!(page.status(), StatusCode::OK);
        let headers = page.headers();
        assert_eq!(headers[CONTENT_TYPE], JS);
        assert_eq!(headers[CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY_VALUE);
        assert!(CONTENT_SECURITY_POLICY_VALUE.contains("script-src 'self';"));
        assert!(!CONTENT_SECURITY_POLICY_VALUE.contains("unsafe"));
        assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[REFERRER_POLICY], "no-referrer");
        assert_eq!(asset("../Cargo.toml").status(), StatusCode::NOT_FOUND);
        assert_eq!(asset("secrets.key").status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn every_file_of_the_portal_folder_is_served_and_nothing_else() {
        let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("portal");
        let mut on_disk: Vec<String> = std::fs::read_dir(folder)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        let mut served: Vec<String> = ASSETS.iter().map(|(name, _, _)| (*name).to_owned()).collect();
        served.sort();
        assert_eq!(served, on_disk);
        for (name, content_type, _) in ASSETS {
            let expected = match name.rsplit('.').next() {
                Some("js") => JS,
                Some("css") => "text/css; charset=utf-8",
                Some("html") => "text/html; charset=utf-8",
                Some("svg") => "image/svg+xml",
                other => panic!("{name}: no content type for {other:?}"),
            };
            assert_eq!(content_type, expected, "{name}");
        }
    }
}
