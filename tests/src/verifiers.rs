//! Runs `tests/verifiers/verify.js` (Node, with the npm `standardwebhooks` library) and
//! `tests/verifiers/verify.py` (Python, with the PyPI `standardwebhooks` library).
//!
//! Missing tools fail the test with the command that installs them; nothing is skipped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The folder holding the verifier scripts and their package files.
pub fn verifiers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("verifiers")
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repo")
        .to_path_buf()
}

/// Runs the Node verifier in `mode` with `request` on stdin and returns its JSON answer.
pub fn node(mode: &str, request: &Value) -> Value {
    let dir = verifiers_dir();
    assert!(
        dir.join("node_modules/standardwebhooks").is_dir(),
        "the npm standardwebhooks library is missing: run `npm ci --prefix tests/verifiers`"
    );
    run(
        Command::new("node").arg(dir.join("verify.js")).arg(mode),
        request,
        "node (Node.js 20)",
    )
}

/// Runs the Python verifier in `mode` with `request` on stdin and returns its JSON answer.
///
/// The interpreter is `$WEBHOOKS_TEST_PYTHON`, else the repo's `.venv/bin/python`.
pub fn python(mode: &str, request: &Value) -> Value {
    let python = std::env::var_os("WEBHOOKS_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "no Python with standardwebhooks at {}: run `python3 -m venv .venv && \
         .venv/bin/pip install -r tests/requirements.txt` (or set WEBHOOKS_TEST_PYTHON)",
        python.display()
    );
    run(
        Command::new(python).arg(verifiers_dir().join("verify.py")).arg(mode),
        request,
        "python with standardwebhooks",
    )
}

fn run(command: &mut Command, request: &Value, what: &str) -> Value {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}; it must be installed for these tests"));
    let input = serde_json::to_vec(request).expect("requests are JSON");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(&input)
        .expect("write verifier stdin");
    let output = child.wait_with_output().expect("wait for verifier");
    assert!(
        output.status.success(),
        "{what} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{what} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}
