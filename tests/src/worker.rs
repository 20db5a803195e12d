//! A `shardline run` child process.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// One worker: `shardline run <pipeline> --worker-id <id> --metrics-address
/// 127.0.0.1:0 --log-format json`, with stdout and stderr captured in
/// `<dir>/worker-<id>.<n>.stdout|stderr` (`n` counts restarts).
///
/// Dropping a worker kills its process; when the test is failing it also
/// prints the tail of every log the worker wrote.
pub struct Worker {
    id: String,
    bin: PathBuf,
    pipeline: PathBuf,
    dir: PathBuf,
    /// Arguments added to every start.
    extra_args: Vec<String>,
    state: Mutex<State>,
}

struct State {
    child: Option<Child>,
    exit: Option<ExitStatus>,
    generation: u32,
    logs: Vec<PathBuf>,
}

impl Worker {
    /// Starts a worker.
    ///
    /// # Panics
    /// When the process cannot be spawned.
    pub fn start(bin: &Path, pipeline: &Path, id: &str, dir: &Path) -> Worker {
        Worker::start_with_args(bin, pipeline, id, dir, &[])
    }

    /// Starts a worker with `extra` arguments after `run FILE` and the
    /// test's own (e.g. `--web 127.0.0.1:0`).
    ///
    /// # Panics
    /// When the process cannot be spawned.
    pub fn start_with_args(bin: &Path, pipeline: &Path, id: &str, dir: &Path, extra: &[&str]) -> Worker {
        let worker = Worker {
            extra_args: extra.iter().map(|a| (*a).to_owned()).collect(),
            id: id.to_owned(),
            bin: bin.to_owned(),
            pipeline: pipeline.to_owned(),
            dir: dir.to_owned(),
            state: Mutex::new(State {
                child: None,
                exit: None,
                generation: 0,
                logs: Vec::new(),
            }),
        };
        worker.spawn();
        worker
    }

    /// The worker id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn spawn(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            state.child.is_none(),
            "worker {} is already running",
            self.id
        );
        state.generation += 1;
        let stdout_path = self
            .dir
            .join(format!("worker-{}.{}.stdout", self.id, state.generation));
        let stderr_path = self
            .dir
            .join(format!("worker-{}.{}.stderr", self.id, state.generation));
        let stdout = File::create(&stdout_path)
            .unwrap_or_else(|e| panic!("create {}: {e}", stdout_path.display()));
        let stderr = File::create(&stderr_path)
            .unwrap_or_else(|e| panic!("create {}: {e}", stderr_path.display()));
        let mut command = Command::new(&self.bin);
        command
            .arg("run")
            .arg(&self.pipeline)
            .args([
                "--worker-id",
                &self.id,
                "--metrics-address",
                "127.0.0.1:0",
                "--log-format",
                "json",
            ])
            .args(&self.extra_args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // The emulators take any credentials; never reach for real ones.
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN");
        if let Ok(filter) = std::env::var("SHARDLINE_TEST_LOG") {
            command.env("RUST_LOG", filter);
        }
        // If the test process dies without running destructors (killed by a
        // CI timeout, say), take the worker with it rather than leave it
        // running against stopped emulators.
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; nothing else runs between
            // fork and exec here.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                    Ok(())
                });
            }
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        state.child = Some(child);
        state.exit = None;
        state.logs.push(stdout_path);
        state.logs.push(stderr_path);
    }

    /// Starts the worker again with the same id (after [`Worker::kill9`] or
    /// a shutdown).
    ///
    /// # Panics
    /// When it is still running.
    pub fn restart(&self) {
        self.spawn();
    }

    /// PID of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .child
            .as_ref()
            .map(Child::id)
    }

    /// True while the process has not exited.
    pub fn is_running(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Self::reap(&mut state);
        state.child.is_some()
    }

    fn reap(state: &mut State) {
        if let Some(child) = &mut state.child {
            if let Ok(Some(status)) = child.try_wait() {
                state.exit = Some(status);
                state.child = None;
            }
        }
    }

    /// `Ok(())` while running; otherwise an error with the exit status and
    /// the log tail (for use inside [`crate::wait_until`] conditions).
    ///
    /// # Errors
    /// When the process has exited.
    pub fn ensure_running(&self) -> anyhow::Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let exit = self.state.lock().unwrap_or_else(|e| e.into_inner()).exit;
        bail!(
            "worker {} exited unexpectedly ({exit:?}); its log:\n{}",
            self.id,
            self.log_tail(40)
        )
    }

    /// Kills the process with SIGKILL and reaps it.
    pub fn kill9(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut child) = state.child.take() {
            let _ = child.kill();
            state.exit = child.wait().ok();
        }
    }

    /// Sends SIGTERM (a graceful shutdown request).
    ///
    /// # Errors
    /// When the worker is not running or the signal cannot be sent.
    pub fn sigterm(&self) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .with_context(|| format!("worker {} is not running", self.id))?;
        // SAFETY: kill(2) on a PID this process spawned and has not reaped
        // (the child is reaped only under the state lock, after this).
        let rc = unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
        if rc != 0 {
            bail!("kill -TERM {pid}: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit and returns its exit
    /// status; kills it with SIGKILL on timeout.
    ///
    /// # Errors
    /// When it does not exit in time (the error carries the log tail).
    pub fn wait_exit(&self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let start = Instant::now();
        loop {
            {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                Self::reap(&mut state);
                if state.child.is_none() {
                    return state
                        .exit
                        .with_context(|| format!("worker {} was never started", self.id));
                }
            }
            if start.elapsed() > timeout {
                self.kill9();
                bail!(
                    "worker {} did not exit within {timeout:?} (killed); its log:\n{}",
                    self.id,
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`Worker::sigterm`], then [`Worker::wait_exit`].
    ///
    /// # Errors
    /// As those two.
    pub fn sigterm_and_wait(&self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        self.sigterm()?;
        self.wait_exit(timeout)
    }

    /// Sends SIGTERM to every worker at once, then waits for each; fails
    /// unless every one exits with status 0.
    ///
    /// # Errors
    /// A worker that does not exit in time or exits with another status.
    pub fn shutdown_all(workers: &[&Worker], timeout: Duration) -> anyhow::Result<()> {
        for worker in workers {
            worker.sigterm()?;
        }
        for worker in workers {
            let status = worker.wait_exit(timeout)?;
            if status.code() != Some(0) {
                bail!(
                    "worker {} exited with {status} after SIGTERM, expected 0; its log:\n{}",
                    worker.id,
                    worker.log_tail(40)
                );
            }
        }
        Ok(())
    }

    /// The address of the running process's metrics endpoint, from its
    /// `metrics endpoint listening` log line (the tests pass port 0).
    pub fn metrics_address(&self) -> Option<String> {
        self.logged_address("metrics endpoint listening")
    }

    /// The `address` field of the running process's last log line whose
    /// message is `message` (e.g. `web page listening`).
    pub fn logged_address(&self, message: &str) -> Option<String> {
        let wanted = message;
        let logs = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .logs
            .clone();
        let current = &logs[logs.len().saturating_sub(2)..];
        current
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .find_map(|text| {
                text.lines().rev().find_map(|line| {
                    let v: serde_json::Value = serde_json::from_str(line).ok()?;
                    let message = v
                        .get("message")
                        .or_else(|| v.pointer("/fields/message"))?
                        .as_str()?;
                    if message != wanted {
                        return None;
                    }
                    let address = v
                        .get("address")
                        .or_else(|| v.pointer("/fields/address"))?
                        .as_str()?;
                    Some(address.to_owned())
                })
            })
    }

    /// `GET path` on the metrics endpoint: `(status code, body)`.
    ///
    /// # Errors
    /// When the address is not logged yet or the request fails.
    pub fn http_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        use std::io::{Read, Write};
        let address = self
            .metrics_address()
            .with_context(|| format!("worker {} has not logged its metrics address", self.id))?;
        let mut stream =
            std::net::TcpStream::connect(&address).with_context(|| format!("connect {address}"))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("no HTTP status")?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Sum over all label sets of the Prometheus metric `name` (0 when
    /// absent).
    ///
    /// # Errors
    /// As [`Worker::http_get`], or a non-200 answer.
    pub fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let (status, body) = self.http_get("/metrics")?;
        if status != 200 {
            bail!("GET /metrics answered {status}");
        }
        let mut sum = 0.0;
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            let rest = match line.strip_prefix(name) {
                Some(rest) if rest.starts_with('{') || rest.starts_with(' ') => rest,
                _ => continue,
            };
            let value = rest.rsplit(' ').next().unwrap_or_default();
            sum += value
                .parse::<f64>()
                .with_context(|| format!("metric line {line:?}"))?;
        }
        Ok(sum)
    }

    /// The last `lines` lines of each log file this worker wrote.
    pub fn log_tail(&self, lines: usize) -> String {
        let logs = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .logs
            .clone();
        let mut out = String::new();
        for path in logs {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let from = all.len().saturating_sub(lines);
            out.push_str(&format!(
                "--- {} ({} lines, last {}):\n",
                path.display(),
                all.len(),
                all.len() - from
            ));
            for line in &all[from..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Every line of every log file this worker wrote (to search for a
    /// message).
    pub fn log_text(&self) -> String {
        let logs = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .logs
            .clone();
        logs.iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Every JSON log line of `text` whose `message` is one of `messages`
/// (lines that are not JSON are skipped).
pub fn json_log_events(text: &str, messages: &[&str]) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| {
            v.get("message")
                .or_else(|| v.pointer("/fields/message"))
                .and_then(serde_json::Value::as_str)
                .is_some_and(|m| messages.contains(&m))
        })
        .collect()
}

impl Drop for Worker {
    fn drop(&mut self) {
        let was_running = self.is_running();
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "=== worker {} ({}), log tail:\n{}",
                self.id,
                if was_running {
                    "was running, killed"
                } else {
                    "had exited"
                },
                self.log_tail(40)
            );
        }
    }
}
