//! The emulator endpoints and per-test names and directories.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Endpoints of the emulators `scripts/test` started.
#[derive(Debug, Clone)]
pub struct Emulators {
    /// kinesis-mock's plain-HTTP endpoint, e.g. `http://127.0.0.1:41234`.
    pub kinesis_endpoint: String,
    /// dynalite's endpoint.
    pub dynamodb_endpoint: String,
}

pub(crate) fn running_in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
        .unwrap_or(false)
}

impl Emulators {
    /// Reads `SHARDLINE_TEST_KINESIS_ENDPOINT` and
    /// `SHARDLINE_TEST_DYNAMODB_ENDPOINT`. When either is unset, prints
    /// `skipped: ...` and returns `None` so the caller can return early.
    ///
    /// # Panics
    /// When an endpoint is unset and `CI=true`: CI must never skip silently.
    pub fn from_env() -> Option<Emulators> {
        for var in [
            "SHARDLINE_TEST_KINESIS_ENDPOINT",
            "SHARDLINE_TEST_DYNAMODB_ENDPOINT",
        ] {
            if std::env::var(var).map(|v| v.is_empty()).unwrap_or(true) {
                let message = format!("{var} not set (run scripts/test)");
                if running_in_ci() {
                    panic!("{message}");
                }
                eprintln!("skipped: {message}");
                return None;
            }
        }
        // Children (the binary) take credentials from the environment; the
        // emulators accept any.
        Some(Emulators {
            kinesis_endpoint: std::env::var("SHARDLINE_TEST_KINESIS_ENDPOINT").unwrap_or_default(),
            dynamodb_endpoint: std::env::var("SHARDLINE_TEST_DYNAMODB_ENDPOINT")
                .unwrap_or_default(),
        })
    }
}

/// A name unique to this process and call: `<prefix>-<pid>-<n>-<random>`,
/// valid as a stream, table and pipeline name.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{prefix}-{}-{n}-{:06x}",
        std::process::id(),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// A scratch directory under `<workspace>/target/e2e/`. Removed when the
/// test passes; kept (and its path printed) when the test panics or
/// `SHARDLINE_TEST_KEEP=1`, with the worker logs, pipeline files and sink
/// output inside.
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
}

impl TestDir {
    /// Creates `target/e2e/<name>-XXXXXX`.
    ///
    /// # Panics
    /// When the directory cannot be created.
    pub fn new(name: &str) -> TestDir {
        let base = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) if !t.is_empty() => PathBuf::from(t),
            _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target"),
        }
        .join("e2e");
        std::fs::create_dir_all(&base).unwrap_or_else(|e| panic!("create {}: {e}", base.display()));
        let base = std::fs::canonicalize(&base).unwrap_or(base);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}-"))
            .tempdir_in(&base)
            .unwrap_or_else(|e| panic!("create a temp dir in {}: {e}", base.display()));
        TestDir { dir: Some(dir) }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or_else(|| Path::new("."))
    }

    /// `path()/name`.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let keep_asked =
            std::env::var_os("SHARDLINE_TEST_KEEP").is_some_and(|v| !v.is_empty() && v != "0");
        if std::thread::panicking() || keep_asked {
            if let Some(dir) = self.dir.take() {
                let kept = dir.keep();
                let why = if keep_asked {
                    "SHARDLINE_TEST_KEEP is set"
                } else {
                    "test failed"
                };
                eprintln!("{why}: kept the test's files in {}", kept.display());
            }
        }
    }
}
