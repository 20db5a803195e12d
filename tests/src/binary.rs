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
