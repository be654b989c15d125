//! The merchant portal in a real browser: the stack serves it at `/` with its security
//! headers, and `tests/portal/portal.test.mjs` (Playwright driving Debian's Chromium, axe-core
//! on every page) signs in, creates an endpoint, sends a test event and sees it delivered,
//! rotates the secret, sees a failing endpoint's health and error, resends, recovers and
//! tests the auth callback. `scripts/test` installs Chromium and the script's npm packages.

use std::path::PathBuf;
use std::process::Command;

use crate::harness::Stack;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test]
async fn a_merchant_manages_its_webhooks_in_the_portal_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    // Fast retries: the failing endpoint shows as failing within seconds.
    let stack = Stack::start(dir.path(), &[("WEBHOOKS_RETRY_SCHEDULE", "1s,1s,1s,1s")], &[]);

    let page = reqwest::get(format!("{}/", stack.url)).await.unwrap();
    assert_eq!(page.status(), 200);
    let header = |name: &str| page.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert!(header("content-security-policy").starts_with("default-src 'none'; script-src 'self';"));
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert!(
        page.text()
            .await
            .unwrap()
            .contains(r#"<script type="module" src="/portal/portal.js">"#)
    );

    let root = repo_root();
    let script = root.join("tests/portal/portal.test.mjs");
    assert!(
        root.join("tests/portal/node_modules/playwright-core").exists(),
        "run scripts/test (it installs tests/portal's packages and Chromium)"
    );
    let screenshots = root.join("target/portal-screenshots");
    let run = Command::new("node")
        .arg(&script)
        .env("STACK_URL", &stack.url)
        .env("API_KEY", &stack.api_key)
        .env("SCREENSHOT_DIR", &screenshots)
        .output()
        .expect("run node");
    let output = String::from_utf8_lossy(&run.stdout);
    println!("{output}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(
        run.status.success(),
        "the browser test failed; screenshots in {}",
        screenshots.display()
    );
    assert!(output.contains(" passed, 0 failed"), "{output}");
}
