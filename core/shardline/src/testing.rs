//! `shardline test FILE...`: the pipeline unit tests declared in a
//! pipeline file as `[[tests]]`, run through the real transform chain
//! without touching the network.
//!
//! ```toml
//! [[tests]]
//! name = "clicks are parsed"          # required
//! transforms = [0, 1]                 # indexes into [[transforms]]; default: all, in order
//! shard_end = true                    # afterwards, flush held windows as at shard end; default true
//! inputs = [
//!   { text = '{"page": "/a"}', partition_key = "u1", arrival_time = "2026-01-01T00:00:05Z" },
//!   { json = { page = "/b" } },       # a TOML value as JSON (a TOML string is JSON text: json = '[1, null]')
//! ]
//! outputs = [                         # expected outputs in order; default: none
//!   { json = { page = "/a" } },       # compared as JSON values
//!   { text = '{"page":"/b"}', event_time = "2026-01-01T00:00:05Z" },  # compared as text (JSON compacted)
//! ]
//! dead_letters = ["invalid JSON at byte 0"]  # reason substrings, in order; default: none
//! ```
//!
//! Input keys: `text`, `json` or `base64` (one of them; `base64` for
//! binary records such as gzip), `partition_key` (default
//! `"test"`), `stream` (default the source's), `shard_id` (default
//! `shardId-000000000000`), `sequence_number` (default: the previous one
//! plus 1, from 1), `sub_sequence_number` (default 0), `explicit_hash_key`,
//! `arrival_time` (RFC 3339, default `2026-01-01T00:00:00Z`). Output keys:
//! `text` or `json`, and optionally `event_time`, `partition_key`.
//! `dead_letter = "..."` is short for a list of one.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use shardline_api::{OpKey, Payload, Record, RecordMeta, SequenceNumber};
use shardline_pipeline::Chain;
use shardline_transforms::add_fields::toml_to_json;

use crate::config::PipelineConfig;

const DEFAULT_ARRIVAL: &str = "2026-01-01T00:00:00Z";

/// One `[[tests]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// Shown in the report. Required.
    pub name: String,
    /// Indexes (from 0) into `[[transforms]]` to run, in order. Default:
    /// all of them.
    #[serde(default)]
    pub transforms: Option<Vec<usize>>,
    /// Records fed to the chain, in shard order. Required, not empty.
    pub inputs: Vec<TestInput>,
    /// Expected outputs, in order. Default: none.
    #[serde(default)]
    pub outputs: Vec<TestOutput>,
    /// One expected dead-letter reason (substring). Default: none.
    #[serde(default)]
    pub dead_letter: Option<String>,
    /// Expected dead-letter reasons (substrings), in order. Default: none.
    #[serde(default)]
    pub dead_letters: Vec<String>,
    /// After the inputs, emit what stateful transforms hold (open
    /// windows) as at shard end. Default `true`.
    #[serde(default = "yes")]
    pub shard_end: bool,
}

fn yes() -> bool {
    true
}

/// A test input record.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestInput {
    /// The payload as text (raw bytes).
    #[serde(default)]
    pub text: Option<String>,
    /// The payload as JSON bytes: a TOML value, or JSON text in a string.
    #[serde(default)]
    pub json: Option<toml::Value>,
    /// The payload as base64 (standard alphabet, padded), for binary
    /// records such as gzip: what `aws kinesis get-records` prints as `Data`.
    #[serde(default)]
    pub base64: Option<String>,
    /// Partition key. Default `"test"`.
    #[serde(default)]
    pub partition_key: Option<String>,
    /// Stream name. Default: `source.stream`.
    #[serde(default)]
    pub stream: Option<String>,
    /// Shard id. Default `shardId-000000000000`.
    #[serde(default)]
    pub shard_id: Option<String>,
    /// Sequence number. Default: the previous input's plus 1 (from 1).
    #[serde(default)]
    pub sequence_number: Option<String>,
    /// Sub-sequence number. Default 0.
    #[serde(default)]
    pub sub_sequence_number: u64,
    /// Explicit hash key. Default: none.
    #[serde(default)]
    pub explicit_hash_key: Option<String>,
    /// Arrival time, RFC 3339. Default `2026-01-01T00:00:00Z`.
    #[serde(default)]
    pub arrival_time: Option<String>,
}

/// An expected output record.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestOutput {
    /// Exact payload text (a JSON payload is compared compacted).
    #[serde(default)]
    pub text: Option<String>,
    /// Payload compared as a JSON value: a TOML value, or JSON text in a
    /// string.
    #[serde(default)]
    pub json: Option<toml::Value>,
    /// Expected event time, RFC 3339.
    #[serde(default)]
    pub event_time: Option<String>,
    /// Expected partition key.
    #[serde(default)]
    pub partition_key: Option<String>,
}

/// The outcome of one test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// The test's name.
    pub name: String,
    /// Why it failed, one readable entry per difference; empty when passed.
    pub failures: Vec<String>,
}

impl TestResult {
    /// True when nothing differed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

fn json_of(value: &toml::Value) -> Result<Value, String> {
    match value {
        toml::Value::String(text) => serde_json::from_str(text).map_err(|e| format!("not JSON text: {e}")),
        other => Ok(toml_to_json(other)),
    }
}

fn parse_time(text: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(text).map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))
}

/// Checks `[[tests]]` without running them: `(key path, message)` for
/// every problem (used by `shardline validate`).
pub fn check(config: &PipelineConfig) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (i, test) in config.tests.iter().enumerate() {
        let at = |key: &str| format!("tests[{i}]{key}");
        if test.name.trim().is_empty() {
            problems.push((at(".name"), "must not be empty".to_owned()));
        }
        if let Some(indexes) = &test.transforms {
            if let Some(bad) = indexes.iter().find(|&&t| t >= config.transforms.len()) {
                problems.push((at(".transforms"), format!("no transform {bad}: the pipeline has {} (indexes start at 0)", config.transforms.len())));
            }
        }
        if test.inputs.is_empty() {
            problems.push((at(".inputs"), "must list at least one input record".to_owned()));
        }
        if test.dead_letter.is_some() && !test.dead_letters.is_empty() {
            problems.push((at(".dead_letter"), "use either `dead_letter` or `dead_letters`".to_owned()));
        }
        let mut previous: Option<(SequenceNumber, u64)> = None;
        for (j, input) in test.inputs.iter().enumerate() {
            let at = |key: &str| format!("tests[{i}].inputs[{j}]{key}");
            if let Err((key, e)) = input_data(input) {
                problems.push((at(key), e));
            }
            if let Some(t) = &input.arrival_time {
                if let Err(e) = parse_time(t) {
                    problems.push((at(".arrival_time"), e));
                }
            }
            let sequence = match &input.sequence_number {
                Some(s) => match SequenceNumber::parse(s) {
                    Ok(s) => s,
                    Err(e) => {
                        problems.push((at(".sequence_number"), e.to_string()));
                        continue;
                    }
                },
                None => next_sequence(previous.as_ref().map(|p| &p.0)),
            };
            let here = (sequence, input.sub_sequence_number);
            if previous.as_ref().is_some_and(|p| *p >= here) {
                problems.push((at(".sequence_number"), "inputs must be in increasing (sequence_number, sub_sequence_number) order".to_owned()));
            }
            previous = Some(here);
        }
        for (j, output) in test.outputs.iter().enumerate() {
            let at = |key: &str| format!("tests[{i}].outputs[{j}]{key}");
            match (&output.text, &output.json) {
                (Some(_), Some(_)) | (None, None) => problems.push((at(""), "needs exactly one of `text` and `json`".to_owned())),
                (None, Some(json)) => {
                    if let Err(e) = json_of(json) {
                        problems.push((at(".json"), e));
                    }
                }
                _ => {}
            }
            if let Some(t) = &output.event_time {
                if let Err(e) = parse_time(t) {
                    problems.push((at(".event_time"), e));
                }
            }
        }
    }
    problems
}

fn next_sequence(previous: Option<&SequenceNumber>) -> SequenceNumber {
    let next = previous.map_or(1u128, |p| p.as_str().parse::<u128>().map_or(1, |n| n.saturating_add(1)));
    // Invariant: the decimal digits of a u128 (at most 39) always parse.
    SequenceNumber::parse(&next.to_string()).expect("a u128 in decimal is a valid sequence number")
}

/// The payload of `input`, or the key at fault (`""` for the entry) and why.
fn input_data(input: &TestInput) -> Result<Bytes, (&'static str, String)> {
    match (&input.text, &input.json, &input.base64) {
        (Some(text), None, None) => Ok(Bytes::from(text.clone())),
        (None, Some(json), None) => {
            let value = json_of(json).map_err(|e| (".json", e))?;
            serde_json::to_vec(&value).map(Bytes::from).map_err(|e| (".json", e.to_string()))
        }
        (None, None, Some(text)) => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map(Bytes::from)
            .map_err(|e| (".base64", format!("not base64: {e}"))),
        _ => Err(("", "needs exactly one of `text`, `json` and `base64`".to_owned())),
    }
}

fn inputs(config: &PipelineConfig, test: &TestCase) -> Result<Vec<Record>, String> {
    let stream: Arc<str> = Arc::from(config.source.stream.as_str());
    let mut previous: Option<SequenceNumber> = None;
    let mut records = Vec::new();
    for (j, input) in test.inputs.iter().enumerate() {
        let data = input_data(input).map_err(|(_, e)| format!("input {}: {e}", j + 1))?;
        let sequence_number = match &input.sequence_number {
            Some(s) => SequenceNumber::parse(s).map_err(|e| format!("input {}: {e}", j + 1))?,
            None => next_sequence(previous.as_ref()),
        };
        previous = Some(sequence_number.clone());
        let meta = RecordMeta {
            stream: input.stream.as_deref().map_or_else(|| stream.clone(), Arc::from),
            shard_id: Arc::from(input.shard_id.as_deref().unwrap_or("shardId-000000000000")),
            sequence_number,
            sub_sequence_number: input.sub_sequence_number,
            partition_key: input.partition_key.clone().unwrap_or_else(|| "test".to_owned()),
            explicit_hash_key: input.explicit_hash_key.clone(),
            arrival_time: parse_time(input.arrival_time.as_deref().unwrap_or(DEFAULT_ARRIVAL))?,
            aggregated: false,
        };
        records.push(Record::new(data, Arc::new(meta)));
    }
    Ok(records)
}

fn render(payload: &Payload) -> String {
    match payload {
        Payload::Json(v) => v.to_string(),
        Payload::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Where two JSON values differ: `path: expected X, got Y` (at most 5).
fn json_differences(expected: &Value, actual: &Value, path: &str, out: &mut Vec<String>) {
    if out.len() >= 5 {
        return;
    }
    let shown = if path.is_empty() { "the record" } else { path };
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match a.get(k) {
                    Some(av) => json_differences(ev, av, &p, out),
                    None => out.push(format!("`{p}`: expected {ev}, missing")),
                }
            }
            for (k, av) in a {
                if !e.contains_key(k) && out.len() < 5 {
                    let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                    out.push(format!("`{p}`: unexpected, got {av}"));
                }
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (n, (ev, av)) in e.iter().zip(a).enumerate() {
                json_differences(ev, av, &format!("{path}[{n}]"), out);
            }
        }
        (e, a) if e != a => out.push(format!("`{shown}`: expected {e}, got {a}")),
        _ => {}
    }
}

/// Why `actual` does not match `expected`, if it does not.
fn compare_output(expected: &TestOutput, actual: &Record) -> Option<String> {
    let mut problems = Vec::new();
    let got = render(&actual.payload);
    if let Some(text) = &expected.text {
        if *text != got {
            problems.push(format!("payload differs\n      expected: {text}\n      actual:   {got}"));
        }
    }
    if let Some(json) = &expected.json {
        let Ok(expected_value) = json_of(json) else { return Some("expected `json` is not JSON".to_owned()) };
        let actual_value = match &actual.payload {
            Payload::Json(v) => Ok(v.clone()),
            Payload::Bytes(b) => serde_json::from_slice::<Value>(b),
        };
        match actual_value {
            Ok(v) if v == expected_value => {}
            Ok(v) => {
                let mut diffs = Vec::new();
                json_differences(&expected_value, &v, "", &mut diffs);
                problems.push(format!(
                    "payload differs: {}\n      expected: {expected_value}\n      actual:   {got}",
                    diffs.join("; ")
                ));
            }
            Err(_) => problems.push(format!("payload is not JSON\n      expected: {expected_value}\n      actual:   {got}")),
        }
    }
    if let Some(t) = &expected.event_time {
        let want = parse_time(t).map(rfc3339).unwrap_or_else(|e| e);
        let have = actual.event_time.map_or_else(|| "none (arrival time is used)".to_owned(), rfc3339);
        if want != have {
            problems.push(format!("event time: expected {want}, got {have}"));
        }
    }
    if let Some(pk) = &expected.partition_key {
        if *pk != actual.meta.partition_key {
            problems.push(format!("partition key: expected {pk:?}, got {:?}", actual.meta.partition_key));
        }
    }
    (!problems.is_empty()).then(|| problems.join("\n    "))
}

/// Runs one test case of `config`.
pub fn run_test(config: &PipelineConfig, test: &TestCase) -> TestResult {
    let failures = match run_inner(config, test) {
        Ok(failures) => failures,
        Err(e) => vec![e],
    };
    TestResult { name: test.name.clone(), failures }
}

fn run_inner(config: &PipelineConfig, test: &TestCase) -> Result<Vec<String>, String> {
    let selected: Vec<usize> = test.transforms.clone().unwrap_or_else(|| (0..config.transforms.len()).collect());
    let mut tables = Vec::new();
    for i in selected {
        tables.push(config.transforms.get(i).cloned().ok_or_else(|| format!("no transform {i}"))?);
    }
    let transforms = crate::transforms::build_chain(&tables)?;
    let mut chain = Chain::new(transforms);
    let mut outputs: Vec<Record> = Vec::new();
    let mut dead: Vec<(usize, String, String)> = Vec::new();
    let records = inputs(config, test)?;
    let last = records.last().map(|r| r.meta.position());
    for (j, record) in records.into_iter().enumerate() {
        match chain.run(record) {
            Ok(made) => outputs.extend(made),
            Err(failure) => dead.push((j + 1, failure.stage, failure.reason)),
        }
    }
    if test.shard_end && chain.is_stateful() {
        if let Some(position) = last {
            let emitted = chain.emit(&OpKey { position, tick: 1 }, SystemTime::now(), true);
            outputs.extend(emitted.outputs);
            dead.extend(emitted.failures.into_iter().map(|f| (0, f.stage, f.reason)));
        }
    }

    let mut failures = Vec::new();
    for n in 0..outputs.len().max(test.outputs.len()) {
        match (test.outputs.get(n), outputs.get(n)) {
            (Some(e), Some(a)) => {
                if let Some(why) = compare_output(e, a) {
                    failures.push(format!("output {}: {why}", n + 1));
                }
            }
            (Some(e), None) => failures.push(format!(
                "output {}: missing (expected {})",
                n + 1,
                e.text.clone().or_else(|| e.json.as_ref().and_then(|j| json_of(j).ok()).map(|v| v.to_string())).unwrap_or_default()
            )),
            (None, Some(a)) => failures.push(format!("output {}: unexpected: {}", n + 1, render(&a.payload))),
            (None, None) => {}
        }
    }
    let expected_dead: Vec<&String> = test.dead_letter.iter().chain(&test.dead_letters).collect();
    for n in 0..dead.len().max(expected_dead.len()) {
        match (expected_dead.get(n), dead.get(n)) {
            (Some(e), Some((input, stage, reason))) => {
                if !reason.contains(e.as_str()) {
                    failures.push(format!(
                        "dead letter {}: reason does not contain {e:?}\n      actual: input {input}, {stage}: {reason}",
                        n + 1
                    ));
                }
            }
            (Some(e), None) => failures.push(format!("dead letter {}: missing (expected a reason containing {e:?})", n + 1)),
            (None, Some((input, stage, reason))) => {
                failures.push(format!("unexpected dead letter: input {input}, {stage}: {reason}"));
            }
            (None, None) => {}
        }
    }
    Ok(failures)
}

/// Runs every test of `config`.
pub fn run_all(config: &PipelineConfig) -> Vec<TestResult> {
    config.tests.iter().map(|t| run_test(config, t)).collect()
}

/// The report lines for `results` of the pipeline file `file`.
pub fn report(file: &str, results: &[TestResult]) -> String {
    let mut out = String::new();
    for r in results {
        if r.passed() {
            let _ = writeln!(out, "{file}: test {:?} ... ok", r.name);
        } else {
            let _ = writeln!(out, "{file}: test {:?} ... FAILED", r.name);
            for f in &r.failures {
                let _ = writeln!(out, "    {f}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::config::{load_str, ConfigError};

    const PIPELINE: &str = r#"name = "t"
[source]
type = "kinesis"
stream = "s"
[[transforms]]
type = "parse_json"
[[transforms]]
type = "filter"
condition = "status >= 500"
[sink]
type = "stdout"

[[tests]]
name = "keeps errors"
inputs = [{ text = '{"status": 503}' }, { json = { status = 200 } }, { text = "oops" }]
outputs = [{ json = { status = 503 } }]
dead_letter = "invalid JSON at byte 0"

[[tests]]
name = "wrong expectation"
transforms = [0]
inputs = [{ json = { status = 200, user = { id = 5 } }, partition_key = "u5" }]
outputs = [{ json = { status = 200, user = { id = 6 } }, partition_key = "u6" }, { text = "more" }]
"#;

    fn load(text: &str) -> Result<PipelineConfig, Vec<String>> {
        load_str(text, Path::new("p.toml")).map_err(|e| match e {
            ConfigError::Invalid { problems, .. } => problems.iter().map(|p| format!("{}: {}", p.path, p.message)).collect(),
            other => vec![other.to_string()],
        })
    }

    #[test]
    fn a_passing_and_a_failing_test_with_a_readable_diff() {
        let config = load(PIPELINE).expect("valid");
        let results = run_all(&config);
        assert!(results[0].passed(), "{:?}", results[0]);
        let failed = &results[1];
        assert!(!failed.passed());
        let text = report("p.toml", &results);
        assert!(text.contains("p.toml: test \"keeps errors\" ... ok"), "{text}");
        assert!(text.contains("p.toml: test \"wrong expectation\" ... FAILED"), "{text}");
        assert!(text.contains("`user.id`: expected 6, got 5"), "{text}");
        assert!(text.contains("partition key: expected \"u6\", got \"u5\""), "{text}");
        assert!(text.contains("output 2: missing (expected more)"), "{text}");
    }

    #[test]
    fn unexpected_dead_letters_and_outputs_fail() {
        let text = PIPELINE.replace("dead_letter = \"invalid JSON at byte 0\"", "");
        let config = load(&text).expect("valid");
        let result = &run_all(&config)[0];
        assert_eq!(result.failures.len(), 1, "{result:?}");
        assert!(result.failures[0].starts_with("unexpected dead letter: input 3, transform:parse_json: invalid JSON"), "{result:?}");
    }

    /// Binary records (a CloudWatch Logs subscription record is gzip) are
    /// given as base64, as `aws kinesis get-records` prints their `Data`.
    #[test]
    fn base64_inputs_carry_binary_records() {
        let text = r#"name = "t"
[source]
type = "kinesis"
stream = "s"
[sink]
type = "stdout"
[[tests]]
name = "bytes"
inputs = [{ base64 = "H4sIAAAAAAAAA6tWSlSyMtRRSlKyMtJRSlayMq4FAKtb1C4TAAAA" }, { base64 = "/w==" }]
"#;
        let config = load(text).expect("valid");
        let records = inputs(&config, &config.tests[0]).expect("inputs");
        assert_eq!(records[0].payload.to_bytes()[..3], [0x1f, 0x8b, 0x08], "gzip bytes as given");
        assert_eq!(records[1].payload.to_bytes()[..], [0xff]);
        for (bad, needle) in [
            ("{ base64 = \"not base64!\" }", "tests[0].inputs[0].base64: not base64"),
            ("{ base64 = \"/w==\", text = \"x\" }", "tests[0].inputs[0]: needs exactly one of `text`, `json` and `base64`"),
        ] {
            let problems = load(&text.replace("{ base64 = \"H4sIAAAAAAAAA6tWSlSyMtRRSlKyMtJRSlayMq4FAKtb1C4TAAAA\" }", bad)).expect_err(bad);
            assert!(problems.iter().any(|p| p.starts_with(needle)), "{problems:?}");
        }
    }

    #[test]
    fn bad_tests_fail_validation_with_their_path() {
        let text = PIPELINE.replace("transforms = [0]", "transforms = [7]").replace("{ text = \"oops\" }", "{ text = \"oops\", json = 1 }");
        let problems = load(&text).expect_err("invalid");
        assert!(problems.iter().any(|p| p.starts_with("tests[1].transforms: no transform 7")), "{problems:?}");
        assert!(problems.iter().any(|p| p.starts_with("tests[0].inputs[2]: needs exactly one")), "{problems:?}");
        let unknown = PIPELINE.replace("name = \"keeps errors\"", "name = \"keeps errors\"\nexpect = 1");
        assert!(load(&unknown).expect_err("unknown key")[0].contains("unknown field `expect`"));
    }

    /// `shardline validate` points at the option at fault: an unknown
    /// transform type, a bad regex, a bad condition (with the column inside
    /// it), a bad `[[tests]]` entry.
    #[test]
    fn transform_and_test_problems_are_located() {
        let text = "name = \"bad\"\n[source]\ntype = \"kinesis\"\nstream = \"s\"\n\
            [[transforms]]\ntype = \"parse_jsn\"\n\
            [[transforms]]\ntype = \"parse_log\"\nformat = \"regex\"\npattern = '(?P<a>['\n\
            [[transforms]]\ntype = \"filter\"\ncondition = 'a >= 5 and b matchs \"x\"'\n\
            [sink]\ntype = \"stdout\"\n\
            [[tests]]\nname = \"t\"\ninputs = [{ text = \"a\", sequence_number = \"x\" }]\n";
        let Err(ConfigError::Invalid { problems, .. }) = load_str(text, Path::new("p.toml")) else { panic!("invalid") };
        let found: Vec<(String, usize)> =
            problems.iter().map(|p| (p.path.clone(), p.location.expect("located").line)).collect();
        assert_eq!(
            found,
            [
                ("transforms[0].type".to_owned(), 6),
                ("transforms[1].pattern".to_owned(), 10),
                ("transforms[2].condition".to_owned(), 13),
                ("tests[0].inputs[0].sequence_number".to_owned(), 18),
            ]
        );
        assert!(problems[2].message.contains("column 14: expected an operator"), "{}", problems[2].message);
        assert!(problems[1].message.contains("invalid regex"), "{}", problems[1].message);
    }

    /// Every example pipeline validates, carries tests, and they pass. An
    /// example whose sink is a plugin (`s3`) is checked with a `stdout`
    /// sink instead: the sink plays no part in `[[tests]]`, and the e2e
    /// examples test checks those files with the plugin loaded.
    #[test]
    fn example_pipelines_pass_their_tests() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("pipelines/ exists")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        assert!(files.len() >= 2, "{files:?}");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let mut table: toml::Table = text.parse().unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let sink_type = table.get("sink").and_then(|s| s.get("type")).and_then(toml::Value::as_str).unwrap_or_default();
            if !crate::config::BUILT_IN_SINKS.contains(&sink_type) {
                table.insert("sink".to_owned(), toml::Value::Table(toml::toml! { type = "stdout" }));
            }
            let text = toml::to_string(&table).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let config = load_str(&text, &file).unwrap_or_else(|e| panic!("{e}"));
            assert!(!config.tests.is_empty(), "{} has no [[tests]]", file.display());
            let results = run_all(&config);
            let text = report(&file.display().to_string(), &results);
            assert!(results.iter().all(TestResult::passed), "{text}");
        }
    }
}
