//! The real Java KCL 2.5.8 as a worker of the tests: `tests/kcl`'s
//! `ShardlineKclWorker` (a `Scheduler` with polling and DynamoDB leases),
//! built by `tests/kcl/build.sh` (run by `scripts/test`), which appends each
//! record's data as a line to a file and checkpoints after every batch.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::Emulators;

/// A running KCL worker process; killed on drop (its stderr is printed when
/// the test is failing).
pub struct KclWorker {
    id: String,
    child: Child,
    out: PathBuf,
    log: PathBuf,
}

impl KclWorker {
    /// The worker's classpath from `SHARDLINE_TEST_KCL_CLASSPATH`; `None`
    /// (after printing why) when it is unset outside CI.
    ///
    /// # Panics
    /// When it is unset and `CI=true`.
    pub fn classpath() -> Option<String> {
        match std::env::var("SHARDLINE_TEST_KCL_CLASSPATH") {
            Ok(classpath) if !classpath.is_empty() => Some(classpath),
            _ => {
                let message = "SHARDLINE_TEST_KCL_CLASSPATH not set (run scripts/test, which builds tests/kcl)";
                if crate::emulators::running_in_ci() {
                    panic!("{message}");
                }
                eprintln!("skipped: {message}");
                None
            }
        }
    }

    /// Starts worker `id` of application `app` (the lease table) on
    /// `stream`; its records go to `dir/kcl-<id>.out`, its log to
    /// `dir/kcl-<id>.log`.
    ///
    /// # Panics
    /// When `java` cannot be spawned.
    pub fn start(classpath: &str, emulators: &Emulators, stream: &str, app: &str, id: &str, dir: &Path) -> KclWorker {
        KclWorker::start_with_env(classpath, emulators, stream, app, id, dir, &[])
    }

    /// [`KclWorker::start`] with more environment for the worker (e.g.
    /// `LEASE_CLEANUP_MS`, see `tests/kcl/ShardlineKclWorker.java`).
    ///
    /// # Panics
    /// When `java` cannot be spawned.
    pub fn start_with_env(classpath: &str, emulators: &Emulators, stream: &str, app: &str, id: &str, dir: &Path, env: &[(&str, &str)]) -> KclWorker {
        let out = dir.join(format!("kcl-{id}.out"));
        let log = dir.join(format!("kcl-{id}.log"));
        let child = Command::new("java")
            .args(["-cp", classpath, "ShardlineKclWorker"])
            .env("KINESIS_ENDPOINT", &emulators.kinesis_endpoint)
            .env("DYNAMODB_ENDPOINT", &emulators.dynamodb_endpoint)
            .env("STREAM", stream)
            .env("APP_NAME", app)
            .env("WORKER_ID", id)
            .env("OUT_FILE", &out)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display())))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn java (the KCL worker): {e}"));
        KclWorker { id: id.to_owned(), child, out, log }
    }

    /// The worker id (its `leaseOwner`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The records' data it has written so far, one line each.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out).map(|t| t.lines().map(str::to_owned).collect()).unwrap_or_default()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Lines of its log that report an error or an exception.
    pub fn errors(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains(" ERROR ") || l.contains("Exception") || l.contains("-failed"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for KclWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("=== KCL worker {} log:\n{}", self.id, self.log());
        }
    }
}
