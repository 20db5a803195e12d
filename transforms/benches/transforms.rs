//! Throughput of every transform, and of the chain parse_json → filter →
//! select → encode_json (NDJSON), on one core with 1 KiB records.
//!
//! Prints records/s and MB/s of input (1 KiB per record). Inputs are made
//! before timing; each run consumes its own records, so nothing but the
//! transform is measured. Target for the chain: at least 40 MB/s per core.
//! Run with `cargo bench -p shardline-transforms`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use shardline_api::{OpKey, Payload, Record, RecordMeta, SequenceNumber, Transform};

const RECORD_SIZE: usize = 1024;
const RECORDS: usize = 50_000;

fn meta(i: usize) -> Arc<RecordMeta> {
    Arc::new(RecordMeta {
        stream: Arc::from("clicks"),
        shard_id: Arc::from("shardId-000000000000"),
        sequence_number: SequenceNumber::parse(&(49_000_000_000u64 + i as u64).to_string()).expect("digits"),
        sub_sequence_number: 0,
        partition_key: format!("u{}", i % 200),
        explicit_hash_key: None,
        arrival_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600 + i as u64 / 100),
        aggregated: false,
    })
}

fn pad(mut body: String, close: &str) -> String {
    while body.len() + close.len() < RECORD_SIZE {
        body.push('x');
    }
    body.push_str(close);
    body
}

fn json_text(i: usize) -> String {
    pad(
        format!(
            "{{\"id\":{i},\"ts\":{},\"status\":{},\"resource\":\"/products/{}\",\"referrer\":\"https://example.com/{}\",\"user\":{{\"id\":\"u{}\",\"plan\":\"pro\"}},\"tags\":[\"a\",\"b\"],\"pad\":\"",
            1_767_225_600 + i / 100,
            if i.is_multiple_of(4) { 500 } else { 200 },
            i % 977,
            i % 31,
            i % 200
        ),
        "\"}",
    )
}

fn csv_text(i: usize) -> String {
    pad(format!("{i},u{},{}.5,EUR,/products/{},\"", i % 200, i % 100, i % 977), "\"")
}

fn log_text(i: usize) -> String {
    pad(
        format!(
            "192.0.2.{} - - [10/Oct/2026:13:55:{:02} -0700] \"GET /products/{} HTTP/1.1\" {} {} \"https://example.com/\" \"Mozilla/5.0 ",
            i % 250,
            i % 60,
            i % 977,
            if i.is_multiple_of(4) { 500 } else { 200 },
            1000 + i
        ),
        "\"",
    )
}

fn bytes_records(text: impl Fn(usize) -> String) -> Vec<Record> {
    (0..RECORDS).map(|i| Record::new(Bytes::from(text(i)), meta(i))).collect()
}

fn json_records() -> Vec<Record> {
    (0..RECORDS)
        .map(|i| {
            let value = serde_json::from_str(&json_text(i)).expect("valid JSON");
            Record { payload: Payload::Json(value), meta: meta(i), event_time: None }
        })
        .collect()
}

fn build(name: &str, options: &str) -> Box<dyn Transform> {
    shardline_transforms::build(name, &options.parse::<toml::Table>().expect("TOML")).expect("builds")
}

/// Runs `records` through `chain` (as the engine does, one record at a
/// time); prints and returns MB/s.
fn measure(label: &str, chain: &mut [Box<dyn Transform>], records: Vec<Record>) -> f64 {
    let n = records.len();
    let mut kept = 0usize;
    let mut current = Vec::with_capacity(4);
    let mut next = Vec::with_capacity(4);
    let stateful = chain.iter().any(|t| t.is_stateful());
    let start = Instant::now();
    for record in records {
        if stateful {
            let key = OpKey::record(record.meta.position());
            chain.iter_mut().for_each(|t| t.begin_op(&key));
        }
        current.push(record);
        for t in chain.iter_mut() {
            for r in current.drain(..) {
                if let Err(e) = t.apply(r, &mut next) {
                    panic!("{label}: {e}");
                }
            }
            std::mem::swap(&mut current, &mut next);
        }
        kept += current.len();
        current.clear();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mb = (n * RECORD_SIZE) as f64 / 1e6 / elapsed;
    println!("{label:<48} {:>10.0} records/s {:>8.1} MB/s  ({kept} of {n} records out)", n as f64 / elapsed, mb);
    mb
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects benches by name.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    println!("one core, {RECORDS} records of {RECORD_SIZE} B each; MB/s of input");

    type Case = (&'static str, &'static str, &'static str, fn() -> Vec<Record>);
    let cases: &[Case] = &[
        ("parse_json", "parse_json", "", || bytes_records(json_text)),
        ("encode_json", "encode_json", "newline = true", json_records),
        ("csv_to_json", "csv_to_json", "fields = [\"id\", \"user\", \"amount\", \"currency\", \"resource\", \"note\"]\ninfer_types = true", || bytes_records(csv_text)),
        ("parse_log (apache_combined)", "parse_log", "format = \"apache_combined\"", || bytes_records(log_text)),
        ("select", "select", "fields = [\"id\", \"resource\", \"user.id\"]", json_records),
        ("rename", "rename", "fields = { \"referrer\" = \"ref\", \"user.id\" = \"uid\" }", json_records),
        ("add_fields", "add_fields", "fields = { \"env\" = \"prod\", \"src.v\" = 2 }", json_records),
        ("drop_fields", "drop_fields", "fields = [\"pad\", \"tags\"]", json_records),
        ("add_metadata", "add_metadata", "", json_records),
        ("filter", "filter", "condition = 'status >= 500 or resource matches \"^/products/9\"'", json_records),
        ("timestamp (epoch_seconds)", "timestamp", "field = \"ts\"\nformat = \"epoch_seconds\"", json_records),
        ("window_count (1m, key resource+referrer)", "window_count", "window = \"1m\"\nkey = [\"resource\", \"referrer\"]\non_late = \"drop\"", json_records),
        ("split", "split", "", || {
            (0..RECORDS)
                .map(|i| {
                    let value = serde_json::from_str(&format!("[{}]", json_text(i))).expect("valid JSON");
                    Record { payload: Payload::Json(value), meta: meta(i), event_time: None }
                })
                .collect()
        }),
    ];
    for (label, name, options, input) in cases {
        if wanted(name) {
            measure(label, &mut [build(name, options)], input());
        }
    }
    if wanted("chain") {
        let mut chain = vec![
            build("parse_json", ""),
            build("filter", "condition = 'status >= 500 or resource matches \"^/products/9\"'"),
            build("select", "fields = [\"id\", \"status\", \"resource\", \"user.id\"]"),
            build("encode_json", "newline = true"),
        ];
        let mb = measure("chain parse_json > filter > select > NDJSON", &mut chain, bytes_records(json_text));
        println!("chain target: 40 MB/s per core: {}", if mb >= 40.0 { "met" } else { "NOT met" });
    }
}
