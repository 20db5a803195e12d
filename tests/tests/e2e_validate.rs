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

/// An s3 sink with `encoding = "parquet"` and one mistake in it: the file,
/// and the line of the mistake (the first line starting with `marker`).
fn parquet_pipeline(dir: &Path, name: &str, sink: &str, marker: &str) -> (std::path::PathBuf, usize) {
    let text = shardline_e2e::s3::pipeline_with_sink(&good_spec(dir), sink);
    let line = text.lines().position(|l| l.starts_with(marker)).unwrap_or_else(|| panic!("no line {marker:?} in\n{text}")) + 1;
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write pipeline");
    (path, line)
}

#[test]
fn parquet_schema_mistakes_point_at_their_lines() {
    let Some(bin) = shardline_bin() else { return };
    let Some(plugins) = shardline_e2e::s3::plugin_dir() else { return };
    let dir = TestDir::new("validate-parquet");
    let sink = |encoding: &str, extra: &str, parquet: &str| {
        format!("type = \"s3\"\nbucket = \"my-bucket\"\nencoding = \"{encoding}\"\n{extra}\n[sink.parquet]\n{parquet}")
    };
    let schema = "required = [\"user\"]\n[sink.parquet.schema]\nuser = \"string\"\namount = \"double\"\n\"geo.country\" = \"string\"\n";
    let validate_with_plugins = |file: &Path| {
        Command::new(&bin)
            .arg("validate")
            .arg(file)
            .env("SHARDLINE_PLUGIN_DIR", &plugins)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {} validate: {e}", bin.display()))
    };

    let (good, _) = parquet_pipeline(dir.path(), "good.toml", &sink("parquet", "compression = \"zstd\"", schema), "type = \"s3\"");
    let output = validate_with_plugins(&good);
    assert_eq!(output.status.code(), Some(0), "a good parquet sink:\n{}", text(&output));

    let cases: [(&str, String, &str, &str); 7] = [
        ("type", sink("parquet", "", &schema.replace("\"geo.country\" = \"string\"", "\"geo.country\" = \"strin\"")), "\"geo.country\" = ", "unknown column type `strin`"),
        ("required", sink("parquet", "", &schema.replace("[\"user\"]", "[\"user\", \"nope\"]")), "required = ", "`nope` is not a column"),
        ("empty", sink("parquet", "", "schema = {}\n"), "schema = {}", "at least one column"),
        ("not-parquet", sink("ndjson", "", schema), "[sink.parquet]", "only used with encoding = \"parquet\""),
        ("snappy", "type = \"s3\"\nbucket = \"my-bucket\"\ncompression = \"snappy\"\n".to_owned(), "compression = ", "Parquet column codec"),
        ("csv-setting", sink("parquet", "csv_header = false", schema), "csv_header = ", "not encoding = \"parquet\""),
        ("codec", sink("parquet", "compression = \"lz4\"", schema), "compression = ", "unknown compression `lz4`"),
    ];
    for (name, sink, marker, message) in cases {
        let (path, line) = parquet_pipeline(dir.path(), &format!("{name}.toml"), &sink, marker);
        let output = validate_with_plugins(&path);
        assert_eq!(output.status.code(), Some(1), "{name}: validate should fail:\n{}", text(&output));
        assert_points_at(&output, &path, line);
        assert!(text(&output).contains(message), "{name}: the message says {message:?}:\n{}", text(&output));
    }
}
