//! Starting, killing and restarting the stack; calling its HTTP API.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// A running `webhooks-local`.
pub struct Stack {
    child: Child,
    /// e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The first merchant the stack printed.
    pub merchant_id: String,
    /// Its API key.
    pub api_key: String,
    data_dir: PathBuf,
    port: u16,
    env: Vec<(String, String)>,
    args: Vec<String>,
    /// Where the stack's stderr (its log) goes, appended across restarts; `None`: inherited.
    log_file: Option<PathBuf>,
    client: reqwest::Client,
}

impl Stack {
    /// Starts the stack on the DynamoDB and SQS adapters against the moto server at
    /// `endpoint`, creating its table and queues.
    pub fn start_on_moto(data_dir: &Path, endpoint: &str) -> Self {
        Self::start(
            data_dir,
            &[("AWS_ENDPOINT_URL", endpoint)],
            &["--backend", "aws", "--create-resources"],
        )
    }

    /// Starts the stack on a fresh port with `env` settings and extra `args`.
    pub fn start(data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Self {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Self::launch(
            data_dir.to_path_buf(),
            webhooks_tests::moto::free_port(),
            env,
            args,
            None,
        )
    }

    /// The same, with the stack's stderr (its log) appended to `log_file`, across restarts too.
    #[allow(dead_code, reason = "for the soak, which shares this file")]
    pub fn start_logging_to(data_dir: &Path, env: &[(&str, &str)], args: &[&str], log_file: &Path) -> Self {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let port = webhooks_tests::moto::free_port();
        Self::launch(data_dir.to_path_buf(), port, env, args, Some(log_file.to_path_buf()))
    }

    fn launch(
        data_dir: PathBuf,
        port: u16,
        env: Vec<(String, String)>,
        args: Vec<String>,
        log_file: Option<PathBuf>,
    ) -> Self {
        let stderr = match &log_file {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap_or_else(|e| panic!("open the stack's log file {}: {e}", path.display())),
            ),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_webhooks-local"))
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&args)
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start webhooks-local");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines_tx, lines_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("[stack] {line}");
                let _ = lines_tx.send(line);
            }
        });
        let mut banner = Vec::new();
        while banner.iter().filter(|l: &&String| l.contains(':')).count() < 4 {
            let line = lines_rx
                .recv_timeout(Duration::from_secs(60))
                .expect("the stack printed its banner");
            if line.contains("webhooks-local is up") || !banner.is_empty() {
                banner.push(line);
            }
        }
        let field = |name: &str| {
            banner
                .iter()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
                .unwrap_or_else(|| panic!("banner has no {name}: {banner:?}"))
        };
        Self {
            url: field("API:"),
            merchant_id: field("merchant id:"),
            api_key: field("API key:"),
            child,
            data_dir,
            port,
            env,
            args,
            log_file,
            client: reqwest::Client::new(),
        }
    }

    /// `kill -9`, then a new process on the same port and data dir.
    pub fn kill9_and_restart(mut self) -> Self {
        self.child.kill().expect("kill -9 the stack");
        let _ = self.child.wait();
        let (data_dir, port, env, args, log_file) = (
            self.data_dir.clone(),
            self.port,
            std::mem::take(&mut self.env),
            std::mem::take(&mut self.args),
            self.log_file.take(),
        );
        Self::launch(data_dir, port, env, args, log_file)
    }

    /// The stack's peak resident memory so far (VmHWM), in MB (the local_stack bench).
    #[allow(dead_code)]
    pub fn peak_rss_mb(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb / 1024.0)
    }

    /// The CPU time the stack has used so far, user and system, in ms (the local_stack
    /// bench): `/proc/<pid>/stat`'s utime and stime, in Linux's USER_HZ of 100 a second.
    #[allow(dead_code)]
    pub fn cpu_ms(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
        let ticks = |n: usize| fields.get(n)?.parse::<f64>().ok();
        Some((ticks(11)? + ticks(12)?) * 10.0)
    }

    /// SIGTERM, and the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("send SIGTERM");
        self.child.wait().expect("wait for the stack")
    }

    /// A request to the stack with the merchant's key; returns status and JSON body.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.api_key.clone(), method, path, body).await
    }

    /// A request with another API key.
    pub async fn call_as(&self, api_key: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(api_key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the stack answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Sends raw bytes to a path (for malformed input).
    pub async fn post_raw(&self, path: &str, body: &'static str) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("the stack answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates a subscription to `url` for `events` (all when empty); returns it (with its secret).
    pub async fn subscribe(&self, url: &str, events: &[&str]) -> Value {
        let mut body = json!({"url": url});
        if !events.is_empty() {
            body["events"] = json!(events);
        }
        let (status, subscription) = self.call("POST", "/v1/subscriptions", Some(body)).await;
        assert_eq!(status, 201, "{subscription}");
        subscription
    }

    /// Publishes an event for the first merchant; returns its id.
    pub async fn publish(&self, event: Value) -> String {
        let (status, body) = self.call("POST", "/local/events", Some(event)).await;
        assert_eq!(status, 202, "{body}");
        body["eventId"].as_str().expect("an eventId").to_owned()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
