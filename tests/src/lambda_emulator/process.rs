//! The function's side: its bootstrap binary, started as Lambda starts it ([`FunctionProcess`]),
//! and what its start cost ([`BootstrapFigures`]).

use std::fmt;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::NamedTempFile;
use uuid::Uuid;

use super::{LambdaEmulator, REGION};
use crate::verifiers::repo_root;

/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` unless the caller's environment overrides it.
pub const DEFAULT_MEMORY_SIZE_MB: u32 = 256;
/// How often [`FunctionProcess::wait_until_polling`] looks whether the process exited.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The bootstrap to run: `$WEBHOOKS_TEST_BIN_DIR/{name}` when that variable is set (e.g.
/// `target/release`, relative to the repository root, to measure release builds), otherwise
/// `cargo_built`, the binary cargo built for the test (`env!("CARGO_BIN_EXE_{name}")`).
pub fn bootstrap_binary(name: &str, cargo_built: &str) -> PathBuf {
    match std::env::var_os("WEBHOOKS_TEST_BIN_DIR") {
        Some(dir) => repo_root().join(dir).join(name),
        None => PathBuf::from(cargo_built),
    }
}

/// A function's bootstrap process, started as Lambda starts it; killed when dropped.
pub struct FunctionProcess {
    child: Child,
    binary: PathBuf,
    function_name: String,
    spawned_at: Instant,
    log: NamedTempFile,
}

impl FunctionProcess {
    /// Starts `binary` for `emulator`'s function with a clean environment: Lambda's reserved
    /// variables (`AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME`,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` = [`DEFAULT_MEMORY_SIZE_MB`],
    /// `AWS_LAMBDA_FUNCTION_VERSION` = `$LATEST`, the log group and stream, `AWS_REGION`),
    /// `RUST_LOG` and `RUST_BACKTRACE` passed through, then `env` (which may override any of
    /// them). Its stdout and stderr go to a log file, see [`FunctionProcess::log`].
    pub fn spawn(binary: &Path, emulator: &LambdaEmulator, env: &[(String, String)]) -> io::Result<Self> {
        let log = NamedTempFile::new()?;
        let append = || OpenOptions::new().append(true).open(log.path());
        let name = emulator.function_name();
        let reserved = [
            ("AWS_LAMBDA_RUNTIME_API", emulator.runtime_api()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", DEFAULT_MEMORY_SIZE_MB.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!("[$LATEST]{}", Uuid::new_v4().simple()),
            ),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_DEFAULT_REGION", REGION.to_owned()),
            ("TZ", ":UTC".to_owned()),
        ];
        let passed_through = ["RUST_LOG", "RUST_BACKTRACE"]
            .into_iter()
            .filter_map(|key| std::env::var(key).ok().map(|value| (key, value)));
        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(reserved)
            .envs(passed_through)
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(append()?)
            .stderr(append()?);
        let spawned_at = Instant::now();
        let child = command.spawn()?;
        Ok(Self {
            child,
            binary: binary.to_owned(),
            function_name: name.to_owned(),
            spawned_at,
            log,
        })
    }

    /// Waits until the function's first `GET /next` (its init phase is over) and returns
    /// the init time, spawn to that call. Fails with the log when the process exits first or
    /// `timeout` passes. `emulator` must be the one it was spawned for, and serve no other.
    pub async fn wait_until_polling(
        &mut self,
        emulator: &LambdaEmulator,
        timeout: Duration,
    ) -> Result<Duration, NotPolling> {
        let mut first_next = emulator.watch_first_next();
        loop {
            if let Some(at) = *first_next.borrow_and_update() {
                return Ok(at.saturating_duration_since(self.spawned_at));
            }
            let reason = match self.child.try_wait() {
                Ok(Some(status)) => Some(format!("exited ({status}) before calling /next")),
                Ok(None) if self.spawned_at.elapsed() >= timeout => {
                    Some(format!("did not call /next within {timeout:?}"))
                }
                Ok(None) => None,
                Err(error) => Some(format!("cannot be waited for: {error}")),
            };
            if let Some(reason) = reason {
                return Err(NotPolling {
                    function: self.function_name.clone(),
                    reason,
                    log: self.log(),
                });
            }
            // Woken by the first /next, or after the interval to look at the process again.
            let _ = tokio::time::timeout(EXIT_POLL_INTERVAL, first_next.changed()).await;
        }
    }

    /// Init time (spawn to the first `/next`) and memory now; call it after the first invoke.
    pub fn measure(&self, emulator: &LambdaEmulator) -> io::Result<BootstrapFigures> {
        let first_next = emulator
            .first_next_at()
            .ok_or_else(|| io::Error::other("the function never called /next"))?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        Ok(BootstrapFigures {
            function: self.function_name.clone(),
            binary: self.binary.clone(),
            init: first_next.saturating_duration_since(self.spawned_at),
            rss_kib: status_kib(&status, "VmRSS")?,
            peak_rss_kib: status_kib(&status, "VmHWM")?,
        })
    }

    /// What the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_else(|error| format!("(cannot read the log: {error})"))
    }

    /// Kills the process (Lambda freezes and eventually kills idle sandboxes the same way)
    /// and returns its log.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `kB` field of `/proc/{pid}/status`, e.g. `VmRSS: 12345 kB` (a tab after the colon).
fn status_kib(status: &str, field: &str) -> io::Result<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no {field} in /proc/<pid>/status")))
}

/// Why a bootstrap never reached its first `/next`.
#[derive(Debug, Clone)]
pub struct NotPolling {
    /// The function.
    pub function: String,
    /// What happened instead.
    pub reason: String,
    /// Its stdout and stderr.
    pub log: String,
}

impl fmt::Display for NotPolling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}; its log:\n{}", self.function, self.reason, self.log)
    }
}

impl std::error::Error for NotPolling {}

/// What one bootstrap cost: its init time and its memory after the first invoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapFigures {
    /// The function.
    pub function: String,
    /// The binary that ran.
    pub binary: PathBuf,
    /// Process spawn to its first `GET /next`.
    pub init: Duration,
    /// Resident set size when measured (`VmRSS`), in KiB.
    pub rss_kib: u64,
    /// The largest resident set size so far (`VmHWM`), in KiB.
    pub peak_rss_kib: u64,
}

impl fmt::Display for BootstrapFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: init {:.1} ms (spawn to first /next), RSS {:.1} MiB (peak {:.1} MiB) after the first invoke; {}",
            self.function,
            self.init.as_secs_f64() * 1000.0,
            self.rss_kib as f64 / 1024.0,
            self.peak_rss_kib as f64 / 1024.0,
            self.binary.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_fields_are_read_in_kib() {
        let status = "Name:\tingest\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(status, "VmRSS").unwrap(), 10240);
        assert_eq!(status_kib(status, "VmHWM").unwrap(), 20480);
        assert!(status_kib(status, "VmSwap").is_err());
    }
}
