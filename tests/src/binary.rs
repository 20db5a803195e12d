//! Finding the `shardline` binary the tests run.

use std::path::PathBuf;

/// Path of the `shardline` binary: `$SHARDLINE_BIN`, else
/// `$CARGO_TARGET_DIR/debug/shardline`, else `<workspace>/target/debug/shardline`.
///
/// Cargo does not build another crate's binaries for a test, so
/// `scripts/test` runs `cargo build -p shardline` first.
///
/// Returns `None` (after printing why) when the binary does not exist and
/// `CI` is not `true`, so that `cargo test` on a machine without the
/// binary skips instead of failing.
///
/// # Panics
/// When the binary does not exist and `CI=true`.
pub fn shardline_bin() -> Option<PathBuf> {
    let path = match std::env::var_os("SHARDLINE_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let target = match std::env::var_os("CARGO_TARGET_DIR") {
                Some(t) if !t.is_empty() => PathBuf::from(t),
                _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join("target"),
            };
            target.join("debug").join("shardline")
        }
    };
    if path.is_file() {
        return Some(path);
    }
    let message = format!(
        "shardline binary not found at {} (run scripts/test, or cargo build -p shardline)",
        path.display()
    );
    if crate::emulators::running_in_ci() {
        panic!("{message}");
    }
    eprintln!("skipped: {message}");
    None
}

/// Waits for `child` (spawned with piped stdout and stderr) to exit and
/// returns its output; kills it and panics with its output when it is
/// still running after `limit` (a guard against a hung process, not a
/// timing claim). `what` names the command in the message.
///
/// # Panics
/// When `child` outlives `limit`, or waiting on it fails.
pub fn output_within(mut child: std::process::Child, limit: std::time::Duration, what: &str) -> std::process::Output {
    let start = std::time::Instant::now();
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().expect("wait");
            panic!(
                "{what} still running after {limit:?}:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("wait")
}
