use std::path::Path;

use super::*;
use crate::config::ConfigError;

const GOOD: &str = r#"name = "clicks-archive"
[source]
type = "kinesis"
stream = "clicks"
region = "us-east-1"
endpoint = "http://127.0.0.1:4568"
initial_position = "trim_horizon"
read = "polling"
[leases]
store = "dynamodb"
table = "clicks-archive"
endpoint = "http://127.0.0.1:8000"
[[transforms]]
type = "parse_json"
[buffer]
max_records = 1000
max_bytes = "5MiB"
max_age = "60s"
[sink]
type = "file"
path = "./out"
[dead_letter]
type = "file"
path = "./dead-letters"
"#;

fn problems(text: &str) -> Vec<Problem> {
    match load_str(text, Path::new("p.toml")) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn only(text: &str) -> Problem {
    let mut list = problems(text);
    assert_eq!(list.len(), 1, "expected one problem, got {list:?}");
    list.remove(0)
}

#[test]
fn the_documented_example_is_valid() {
    let config = load_str(GOOD, Path::new("p.toml")).expect("valid");
    assert_eq!(config.name, "clicks-archive");
    assert_eq!(config.lease_table(), "clicks-archive");
    assert_eq!(config.buffer.max_bytes.bytes(), 5 << 20);
}

#[test]
fn minimal_file_uses_defaults() {
    let text = "name = \"a\"\n[source]\ntype = \"kinesis\"\nstream = \"s\"\n[sink]\ntype = \"stdout\"\n";
    let config = load_str(text, Path::new("p.toml")).expect("valid");
    assert_eq!(config.leases.store, LeaseStoreKind::Embedded);
    assert_eq!(config.source.initial_position, InitialPosition::Latest);
    assert_eq!(config.lease_table(), "a");
    assert_eq!(config.leases.cleanup_interval.get(), std::time::Duration::from_secs(300));
}

#[test]
fn cleanup_interval_is_a_human_duration_of_at_least_a_second() {
    let text = GOOD.replace("endpoint = \"http://127.0.0.1:8000\"", "endpoint = \"http://127.0.0.1:8000\"\ncleanup_interval = \"90s\"");
    let config = load_str(&text, Path::new("p.toml")).expect("valid");
    assert_eq!(config.leases.cleanup_interval.get(), std::time::Duration::from_secs(90));
    let p = only(&GOOD.replace("endpoint = \"http://127.0.0.1:8000\"", "endpoint = \"http://127.0.0.1:8000\"\ncleanup_interval = \"10ms\""));
    assert_eq!(p.path, "leases.cleanup_interval");
    assert_eq!(p.location.expect("located").line, 13);
}

#[test]
fn unknown_key_points_at_its_line() {
    let text = GOOD.replace("max_age = \"60s\"", "max_age = \"60s\"\nmax_agee = \"1s\"");
    let p = only(&text);
    assert!(p.message.contains("unknown field `max_agee`"), "{p:?}");
    let at = p.location.expect("located");
    assert_eq!(at.line, 19);
    assert_eq!(at.column, 1);
}

#[test]
fn bad_size_is_reported_with_position() {
    let text = GOOD.replace("\"5MiB\"", "\"5 bananas\"");
    let p = only(&text);
    assert!(p.message.contains("invalid size"), "{p:?}");
    assert_eq!(p.location.expect("located").line, 17);
}

#[test]
fn syntax_error_has_position() {
    let text = GOOD.replace("stream = \"clicks\"", "stream = \"clicks");
    let p = only(&text);
    assert_eq!(p.location.expect("located").line, 4);
}

#[test]
fn semantic_errors_point_at_keys() {
    let text = GOOD.replace("max_records = 1000", "max_records = 0");
    let p = only(&text);
    assert_eq!(p.path, "buffer.max_records");
    assert_eq!(p.location.expect("located").line, 16);
}

#[test]
fn at_timestamp_needs_a_timestamp() {
    let text = GOOD.replace("\"trim_horizon\"", "\"at_timestamp\"");
    let p = only(&text);
    assert_eq!(p.path, "source.initial_position");
    let ok = GOOD.replace("\"trim_horizon\"", "\"at_timestamp\"\ntimestamp = \"2026-11-01T00:00:00Z\"");
    assert!(problems(&ok).is_empty());
    let bad = GOOD.replace("\"trim_horizon\"", "\"at_timestamp\"\ntimestamp = \"yesterday\"");
    assert_eq!(only(&bad).path, "source.timestamp");
}

#[test]
fn unknown_sink_type_names_it() {
    let text = GOOD.replace("type = \"file\"\npath = \"./out\"", "type = \"kafka\"");
    let p = only(&text);
    assert!(p.message.contains("unknown sink type `kafka`"), "{p:?}");
    assert!(p.message.contains("stdout, file"), "{p:?}");
    assert_eq!(p.location.expect("located").line, 20);
}

#[test]
fn sink_keys_are_checked() {
    let text = GOOD.replace("path = \"./out\"", "pth = \"./out\"");
    let p = only(&text);
    assert!(p.message.contains("pth"), "{p:?}");
    assert_eq!(p.location.expect("located").line, 21);
}

#[test]
fn unknown_transform_is_reported() {
    let text = GOOD.replace("type = \"parse_jsn\"", "").replace("type = \"parse_json\"", "type = \"parse_jsn\"");
    let p = only(&text);
    assert_eq!(p.path, "transforms[0].type");
    assert_eq!(p.location.expect("located").line, 14);
}

#[test]
fn bad_endpoint_and_table() {
    let text = GOOD.replace("endpoint = \"http://127.0.0.1:8000\"", "endpoint = \"127.0.0.1:8000\"").replace("table = \"clicks-archive\"", "table = \"x\"");
    let list = problems(&text);
    let paths: Vec<&str> = list.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, vec!["leases.table", "leases.endpoint"]);
}

#[test]
fn empty_optional_strings_mean_not_set() {
    let text = "name = \"a\"\n[source]\ntype = \"kinesis\"\nstream = \"s\"\nendpoint = \"\"\nregion = \"\"\n[leases]\nendpoint = \"\"\n[sink]\ntype = \"stdout\"\n";
    let config = load_str(text, Path::new("p.toml")).expect("valid");
    assert_eq!(config.source.endpoint, None);
    assert_eq!(config.source.region, None);
    assert_eq!(config.leases.endpoint, None);
}

#[test]
fn request_timeouts_default_like_the_kcl_and_are_checked() {
    let config = load_str(GOOD, Path::new("p.toml")).expect("valid");
    assert_eq!(config.source.timeouts(), shardline_aws::Timeouts::KINESIS);
    assert_eq!(config.source.request_timeout.get(), std::time::Duration::from_secs(30));
    assert_eq!(config.leases.timeouts(), shardline_aws::Timeouts::LEASES);
    assert_eq!(config.leases.request_timeout.get(), std::time::Duration::from_secs(60));

    let text = GOOD.replace("read = \"polling\"", "read = \"polling\"\nrequest_timeout = \"2s\"\nattempt_timeout = \"500ms\"");
    let config = load_str(&text, Path::new("p.toml")).expect("valid");
    assert_eq!(config.source.timeouts().attempt, std::time::Duration::from_millis(500));

    let text = GOOD.replace("read = \"polling\"", "read = \"polling\"\nattempt_timeout = \"0s\"");
    assert_eq!(only(&text).path, "source.attempt_timeout");
    let text = GOOD.replace("endpoint = \"http://127.0.0.1:8000\"", "endpoint = \"http://127.0.0.1:8000\"\nrequest_timeout = \"1s\"\nattempt_timeout = \"2s\"");
    let p = only(&text);
    assert_eq!(p.path, "leases.request_timeout");
    assert!(p.location.is_some(), "{p:?}");
}
