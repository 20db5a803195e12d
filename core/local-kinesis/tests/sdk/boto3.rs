//! Runs `tests/boto3_conformance.py` (boto3 and the AWS CLI) against a
//! fresh server.
//!
//! Python comes from `SHARDLINE_TEST_PYTHON`, else the virtualenv
//! `target/pyenv` that `scripts/test` installs, else `python3` on `PATH`.
//! Without boto3 the test prints `skipped: ...` (and fails under `CI=true`).
//! The AWS CLI is the `aws` next to that Python, else `aws` on `PATH`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Server;

fn workspace_target() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    }
}

fn works(program: &Path, args: &[&str]) -> bool {
    Command::new(program).args(args).output().is_ok_and(|o| o.status.success())
}

fn find_python() -> Option<PathBuf> {
    let candidates = std::env::var_os("SHARDLINE_TEST_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([workspace_target().join("pyenv/bin/python3"), PathBuf::from("python3")]);
    candidates.into_iter().find(|python| works(python, &["-c", "import boto3"]))
}

fn find_aws_cli(python: &Path) -> Option<PathBuf> {
    let beside = python.parent().map(|dir| dir.join("aws"));
    beside.into_iter().chain([PathBuf::from("aws")]).find(|aws| works(aws, &["--version"]))
}

#[tokio::test]
async fn boto3_and_aws_cli_conformance() {
    let Some(python) = find_python() else {
        let message = "python3 with boto3 not found (set SHARDLINE_TEST_PYTHON, or run scripts/test, which installs boto3 and awscli into target/venv)";
        if std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1") {
            panic!("{message}");
        }
        eprintln!("skipped: {message}");
        return;
    };
    let server = Server::start().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/boto3_conformance.py");
    let mut command = tokio::process::Command::new(&python);
    command.arg(&script).arg(server.endpoint());
    match find_aws_cli(&python) {
        Some(aws) => {
            command.arg(aws);
        }
        None => eprintln!("note: the AWS CLI was not found; only boto3 is checked"),
    }
    let output = command.output().await.expect("run the boto3 conformance script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "boto3 conformance failed ({}):\n{stdout}\n{stderr}", output.status);
    assert!(stdout.contains("all checks passed"), "{stdout}");
}
