//! `shardline validate`: a good file exits 0; a malformed one prints
//! `file:line:column` and exits 1; an unknown sink type is refused with a
//! message naming it (by `validate` and by `run`).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use shardline_e2e::*;

fn good_spec(dir: &Path) -> PipelineSpec {
    // validate does no network I/O: endpoints need not answer.
    let emulators = Emulators {
        kinesis_endpoint: "http://127.0.0.1:9".into(),
        dynamodb_endpoint: "http://127.0.0.1:9".into(),
    };
    PipelineSpec::new(&emulators, "some-stream", dir)
}

fn validate(bin: &Path, file: &Path) -> Output {
    Command::new(bin)
        .arg("validate")
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {} validate: {e}", bin.display()))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Writes `spec` with the line starting with `prefix` replaced by
/// `replacement`; returns the file and that line's number (1-based).
fn write_with_line(
    dir: &Path,
    name: &str,
    spec: &PipelineSpec,
    prefix: &str,
    replacement: &str,
) -> (std::path::PathBuf, usize) {
    let good = spec.to_toml();
    let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
    let index = lines
        .iter()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in\n{good}"));
    lines[index] = replacement.to_owned();
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write pipeline");
    (path, index + 1)
}

/// Asserts `output` names `path:line:<column>`.
fn assert_points_at(output: &Output, path: &Path, line: usize) {
    let all = text(output);
    let needle = format!("{}:{line}:", path.display());
    let found = all
        .match_indices(&needle)
        .any(|(i, _)| all[i + needle.len()..].starts_with(|c: char| c.is_ascii_digit()));
    assert!(
        found,
        "expected {needle}<column> in the output of validate:\n{all}"
    );
}

#[test]
fn validate_accepts_a_good_file() {
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("validate-good");
    let path = good_spec(dir.path()).write(dir.path(), "good.toml");
    let output = validate(&bin, &path);
    assert_eq!(
        output.status.code(),
        Some(0),
        "validate on a good file:\n{}",
        text(&output)
    );
}

#[test]
fn validate_points_at_a_syntax_error() {
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("validate-syntax");
    let spec = good_spec(dir.path());
    let (path, line) = write_with_line(
        dir.path(),
        "syntax.toml",
        &spec,
        "read = ",
        "read = \"polling",
    );
    let output = validate(&bin, &path);
    assert_eq!(
        output.status.code(),
        Some(1),
        "validate on a syntax error:\n{}",
        text(&output)
    );
    assert_points_at(&output, &path, line);
}

#[test]
fn validate_points_at_an_unknown_key() {
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("validate-key");
    let spec = good_spec(dir.path());
    let (path, line) = write_with_line(
        dir.path(),
        "key.toml",
        &spec,
        "idle_interval = ",
        "idle_intervall = \"1s\"",
    );
    let output = validate(&bin, &path);
    assert_eq!(
        output.status.code(),
        Some(1),
        "validate on an unknown key:\n{}",
        text(&output)
    );
    assert_points_at(&output, &path, line);
    assert!(
        text(&output).contains("idle_intervall"),
        "the message names the key:\n{}",
        text(&output)
    );
}

#[test]
fn validate_points_at_a_bad_duration() {
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("validate-duration");
    let spec = good_spec(dir.path());
    let (path, line) = write_with_line(
        dir.path(),
        "duration.toml",
        &spec,
        "failover_time = ",
        "failover_time = \"3 parsecs\"",
    );
    let output = validate(&bin, &path);
    assert_eq!(
        output.status.code(),
        Some(1),
        "validate on a bad duration:\n{}",
        text(&output)
    );
    assert_points_at(&output, &path, line);
}

#[test]
fn unknown_sink_type_is_refused_naming_the_type() {
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("validate-sink");
    let spec = good_spec(dir.path());
    let (path, line) = write_with_line(
        dir.path(),
        "sink.toml",
        &spec,
        "type = \"file\"",
        "type = \"nosuchsink\"",
    );
    let output = validate(&bin, &path);
    assert_eq!(
        output.status.code(),
        Some(1),
        "validate on an unknown sink type:\n{}",
        text(&output)
    );
    assert!(
        text(&output).contains("nosuchsink"),
        "the message names the sink type:\n{}",
        text(&output)
    );
    assert_points_at(&output, &path, line);

    // `run` refuses it too, before touching the network.
    let child = Command::new(&bin)
        .arg("run")
        .arg(&path)
        .args(["--worker-id", "w", "--metrics-address", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shardline run");
    let output = output_within(child, Duration::from_secs(30), "`shardline run` with an unknown sink type");
    assert!(
        !output.status.success(),
        "`shardline run` with an unknown sink type succeeded:\n{}",
        text(&output)
    );
    assert!(
        text(&output).contains("nosuchsink"),
        "`shardline run` names the sink type:\n{}",
        text(&output)
    );
}
