//! Every example pipeline in `pipelines/` passes `shardline validate` and
//! `shardline test` (its declared `[[tests]]`), run through the real binary;
//! a failing declared test makes `shardline test` exit 1 with a diff.

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

fn shardline(bin: &Path, args: &[&str], files: &[PathBuf]) -> Output {
    Command::new(bin)
        .args(args)
        .args(files)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()))
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn example_pipelines_validate_and_pass_their_tests() {
    let Some(bin) = shardline_bin() else { return };
    let files = pipelines();
    assert!(files.len() >= 5, "expected the example pipelines, found {files:?}");
    let output = shardline(&bin, &["validate"], &files);
    assert_eq!(output.status.code(), Some(0), "shardline validate pipelines/*.toml:\n{}", text(&output));
    let output = shardline(&bin, &["test"], &files);
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
    let output = shardline(&bin, &["test"], &[path]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("test \"wrong\" ... FAILED"), "{all}");
    assert!(all.contains("`a`: expected 2, got 1"), "{all}");
    assert!(all.contains("0 passed, 1 failed"), "{all}");
}
