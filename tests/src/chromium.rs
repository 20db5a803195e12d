//! Headless Chromium for page tests (Debian's `chromium`, installed by
//! `scripts/emulators/extra/40-chromium.sh`, which exports
//! `SHARDLINE_TEST_CHROMIUM`), run with the flags of
//! `../shared/EMULATORS.md` so that it never tries to reach the internet.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// How long one browser run may take before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// A Chromium binary.
pub struct Chromium {
    bin: PathBuf,
}

impl Chromium {
    /// The browser named by `SHARDLINE_TEST_CHROMIUM`, or `None` (after
    /// printing why the test is skipped).
    ///
    /// # Panics
    /// Under `CI=true` when the variable is unset or names no file.
    pub fn from_env() -> Option<Chromium> {
        let message = match std::env::var_os("SHARDLINE_TEST_CHROMIUM") {
            Some(p) if Path::new(&p).is_file() => return Some(Chromium { bin: PathBuf::from(p) }),
            Some(p) => format!("SHARDLINE_TEST_CHROMIUM={} is not a file", Path::new(&p).display()),
            None => "SHARDLINE_TEST_CHROMIUM is unset (scripts/test sets it; or apt-get install chromium and export SHARDLINE_TEST_CHROMIUM=/usr/bin/chromium)".to_owned(),
        };
        if crate::emulators::running_in_ci() {
            panic!("{message}");
        }
        eprintln!("skipped: {message}");
        None
    }

    /// The DOM of `url` after `budget` of virtual time (timers and fetches
    /// run; the page's polling loop runs several times).
    ///
    /// # Errors
    /// The browser failed or timed out.
    pub fn dump_dom(&self, url: &str, budget: Duration) -> anyhow::Result<String> {
        let budget = format!("--virtual-time-budget={}", budget.as_millis());
        let out = self.run(&["--dump-dom", &budget, url])?;
        Ok(out)
    }

    /// Saves a 1280×800 PNG screenshot of `url` after `budget` of virtual
    /// time.
    ///
    /// # Errors
    /// The browser failed, timed out or wrote no file.
    pub fn screenshot(&self, url: &str, budget: Duration, file: &Path) -> anyhow::Result<()> {
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
        }
        let _ = std::fs::remove_file(file);
        let shot = format!("--screenshot={}", file.display());
        let budget = format!("--virtual-time-budget={}", budget.as_millis());
        self.run(&[&shot, "--window-size=1280,800", "--hide-scrollbars", &budget, url])?;
        if !file.is_file() {
            bail!("chromium wrote no screenshot at {}", file.display());
        }
        Ok(())
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let profile = tempfile::tempdir().context("profile directory")?;
        let log = profile.path().join("chromium.stderr");
        let stderr = std::fs::File::create(&log).context("chromium log")?;
        let stdout_path = profile.path().join("chromium.stdout");
        let stdout = std::fs::File::create(&stdout_path).context("chromium stdout")?;
        let mut child = Command::new(&self.bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
            ])
            .arg(format!("--user-data-dir={}", profile.path().join("profile").display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("spawn {}", self.bin.display()))?;
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if started.elapsed() > RUN_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                bail!("chromium {args:?} did not finish within {RUN_TIMEOUT:?}: {}", tail(&log));
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        if !status.success() {
            bail!("chromium {args:?} exited with {status}: {}", tail(&log));
        }
        std::fs::read_to_string(&stdout_path).context("read chromium stdout")
    }
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
