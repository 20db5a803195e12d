//! Every example pipeline in `pipelines/` passes `shardline validate` and
//! `shardline test` (its declared `[[tests]]`), run through the real binary;
//! a failing declared test makes `shardline test` exit 1 with a diff.
//! Examples whose sink is a plugin (`s3`) run with the built plugins
//! (`SHARDLINE_TEST_PLUGIN_DIR`, else `target/debug`); outside CI they are
//! skipped when the plugin is not built.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use shardline_e2e::*;

fn pipelines() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// The sinks compiled into the binary; any other `[sink]` type is a plugin.
const BUILT_IN_SINKS: [&str; 3] = ["stdout", "file", "dashboard"];

/// The `type` of the `[sink]` section of a pipeline file.
fn sink_type(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    let mut in_sink = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_sink = line == "[sink]";
        } else if let Some(value) = line.strip_prefix("type").map(str::trim_start).and_then(|l| l.strip_prefix('=')) {
            if in_sink {
                return value.trim().trim_matches('"').to_owned();
            }
        }
    }
    panic!("{} has no [sink] type", file.display())
}

fn shardline(bin: &Path, args: &[&str], files: &[PathBuf], plugin_dir: Option<&Path>) -> Output {
    let mut command = Command::new(bin);
    command.args(args).args(files).stdin(Stdio::null());
    if let Some(dir) = plugin_dir {
        command.env("SHARDLINE_PLUGIN_DIR", dir);
    }
    command.output().unwrap_or_else(|e| panic!("run {}: {e}", bin.display()))
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn example_pipelines_validate_and_pass_their_tests() {
    let Some(bin) = shardline_bin() else { return };
    let mut files = pipelines();
    assert!(files.len() >= 6, "expected the example pipelines, found {files:?}");
    assert!(files.iter().any(|f| f.ends_with("cloudwatch-logs-to-s3.toml")), "{files:?}");
    let needs_plugin = |f: &PathBuf| !BUILT_IN_SINKS.contains(&sink_type(f).as_str());
    let plugin_dir = if files.iter().any(needs_plugin) { shardline_e2e::s3::plugin_dir() } else { None };
    if plugin_dir.is_none() {
        let skipped: Vec<PathBuf> = files.iter().filter(|f| needs_plugin(f)).cloned().collect();
        if !skipped.is_empty() {
            eprintln!("skipped (sink plugin not built): {skipped:?}");
        }
        files.retain(|f| !needs_plugin(f));
    }
    let plugin_dir = plugin_dir.as_deref();
    let output = shardline(&bin, &["validate"], &files, plugin_dir);
    assert_eq!(output.status.code(), Some(0), "shardline validate pipelines/*.toml:\n{}", text(&output));
    let output = shardline(&bin, &["test"], &files, plugin_dir);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(0), "shardline test pipelines/*.toml:\n{all}");
    assert!(all.lines().any(|l| l.ends_with(" passed, 0 failed")), "no summary line:\n{all}");
    for file in &files {
        assert!(all.contains(&format!("{}: test ", file.display())), "{} declares no tests:\n{all}", file.display());
    }
}

#[test]
fn a_failing_declared_test_exits_1_with_a_diff() {
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("examples-failing-test");
    let path = dir.path().join("failing.toml");
    std::fs::write(
        &path,
        "name = \"f\"\n[source]\ntype = \"kinesis\"\nstream = \"s\"\n[[transforms]]\ntype = \"parse_json\"\n[sink]\ntype = \"stdout\"\n\
         [[tests]]\nname = \"wrong\"\ninputs = [{ text = '{\"a\": 1}' }]\noutputs = [{ json = { a = 2 } }]\n",
    )
    .expect("write pipeline");
    let output = shardline(&bin, &["test"], &[path], None);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("test \"wrong\" ... FAILED"), "{all}");
    assert!(all.contains("`a`: expected 2, got 1"), "{all}");
    assert!(all.contains("0 passed, 1 failed"), "{all}");
}
