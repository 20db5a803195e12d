//! The `dynamodb` sink plugin in the real `shardline` binary: records from
//! a kinesis-mock stream land in a dynalite table exactly as the pipeline
//! says (scan and compare, item by item); an item over 400 KB, a record
//! whose key attribute has the wrong type and a record that is not JSON go
//! to the dead-letter destination with stage `sink` and the reason, and
//! the shard goes on past them.
//!
//! The plugin is loaded from `$SHARDLINE_TEST_PLUGIN_DIR` (where cargo puts
//! the cdylib): `shardline plugins` and `shardline validate` get it with
//! `--plugin-dir`, the worker through `SHARDLINE_PLUGIN_DIR`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use shardline_e2e::dynamodb_sink::{dynamodb_plugin_dir, pipeline_with_sink, DynamoDbTable};
use shardline_e2e::*;

fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

fn good(i: usize) -> Value {
    let bytes: Vec<u8> = (0..8).map(|b| (i * 8 + b) as u8).collect();
    json!({
        "id": format!("rec-{i:02}"),
        "i": i,
        "price": 12.5 + i as f64,
        "tags": ["a", format!("t{i}")],
        "nested": { "ok": (i & 1) == 0, "none": null, "deep": { "list": [1, { "x": "y" }] } },
        "blob": { "$binary": base64::engine::general_purpose::STANDARD.encode(bytes) },
    })
}

fn shardline(bin: &Path, args: &[&str], dir: &Path) -> (bool, String) {
    let output = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env_remove("SHARDLINE_PLUGIN_DIR")
        .output()
        .expect("run shardline");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_land_in_dynamodb_and_bad_items_are_dead_lettered() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(bin) = shardline_bin() else { return };
    let Some(plugins) = dynamodb_plugin_dir() else { return };
    let plugins_arg = plugins.to_string_lossy().into_owned();
    let dir = TestDir::new("dynamodb-sink");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-dynamodb-sink", 2).await.expect("create stream");
    let table = DynamoDbTable::create(&emulators.dynamodb_endpoint, &unique_name("e2e-items"), "id").await.expect("create table");

    // No transform: the sink gets the raw bytes and does its own JSON.
    let mut spec = PipelineSpec::new(&emulators, &stream, dir.path());
    spec.transforms.clear();
    let sink = format!(
        "type = \"dynamodb\"\ntable = {}\nendpoint = {}\nregion = \"us-east-1\"\nunprocessed_retry_timeout = \"5s\"\n",
        quoted(&table.name),
        quoted(&emulators.dynamodb_endpoint)
    );
    let pipeline = dir.join("pipeline.toml");
    std::fs::write(&pipeline, pipeline_with_sink(&spec, &sink)).expect("write the pipeline");

    let (ok, listing) = shardline(&bin, &["plugins", "--plugin-dir", &plugins_arg], dir.path());
    assert!(ok && listing.contains("dynamodb ") && listing.contains("table (required)"), "{listing}");
    let (ok, text) = shardline(&bin, &["validate", "--plugin-dir", &plugins_arg, "pipeline.toml"], dir.path());
    assert!(ok, "validate: {text}");

    std::env::set_var("SHARDLINE_PLUGIN_DIR", &plugins);
    let worker = Worker::start(&bin, &pipeline, "dynamodb-worker", dir.path());

    // 60 good records on six partition keys; on one more partition key
    // (so one shard, in order): good, too big, good, wrong key type, good,
    // not JSON, good, and one key written twice.
    let mut records: Vec<TestRecord> = (0..60).map(|i| TestRecord::json(format!("pk-{}", i % 6), &good(i))).collect();
    let raw = |data: Vec<u8>| TestRecord { partition_key: "pk-bad".into(), explicit_hash_key: None, data };
    let too_big = json!({ "id": "too-big", "blob": "x".repeat(420 * 1024) }).to_string().into_bytes();
    let wrong_type = br#"{"id": 12345, "note": "the key must be a string"}"#.to_vec();
    let not_json = b"{\"id\": \"broken\", this is not JSON".to_vec();
    let after = |n: usize| raw(json!({ "id": format!("after-{n}"), "n": n }).to_string().into_bytes());
    records.extend([
        after(0),
        raw(too_big.clone()),
        after(1),
        raw(wrong_type.clone()),
        after(2),
        raw(not_json.clone()),
        after(3),
        raw(br#"{"id": "twice", "v": 1}"#.to_vec()),
        raw(br#"{"id": "twice", "v": 2}"#.to_vec()),
    ]);
    let puts = kinesis.put_records(&stream, &records).await.expect("put records");
    let bad_puts = [(&puts[61], &too_big, "Item size has exceeded the maximum allowed size"), (&puts[63], &wrong_type, "Type mismatch for key id expected: S actual: N"), (&puts[65], &not_json, "record is not JSON")];

    let mut expected: HashMap<String, Value> = (0..60).map(|i| (format!("rec-{i:02}"), good(i))).collect();
    for n in 0..4 {
        expected.insert(format!("after-{n}"), json!({ "id": format!("after-{n}"), "n": n }));
    }
    expected.insert("twice".into(), json!({ "id": "twice", "v": 2 }));
    wait_until(DELIVERY_TIMEOUT, "every good record in the table and three dead letters", || async {
        worker.ensure_running()?;
        let items = table.scan_json("id").await?;
        Ok(items == expected && read_ndjson_dir(&spec.dead_letter_dir).len() >= 3)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#} (table {})\nworker log:\n{}", table.name, worker.log_tail(40)));

    let dead = OutputRecord::read_dir(&spec.dead_letter_dir);
    assert_eq!(dead.len(), 3, "exactly the three bad records: {dead:#?}");
    for (put, payload, reason) in bad_puts {
        let entry = dead.iter().find(|d| d.sequence_number == put.sequence_number).unwrap_or_else(|| panic!("{reason}: not dead-lettered: {dead:#?}"));
        assert_eq!(entry.shard_id, put.shard_id);
        assert_eq!(&entry.payload, payload, "the dead letter holds the record as it was");
        assert_eq!(entry.stage.as_deref(), Some("sink"));
        let why = entry.reason.as_deref().unwrap_or("");
        assert!(why.contains(reason), "reason {why:?} should say {reason:?}");
    }

    // The pipeline goes on: more records land after the dead letters.
    let more: Vec<TestRecord> = (60..70).map(|i| TestRecord::json("pk-bad", &good(i))).collect();
    kinesis.put_records(&stream, &more).await.expect("put more");
    for i in 60..70 {
        expected.insert(format!("rec-{i:02}"), good(i));
    }
    wait_until(DELIVERY_TIMEOUT, "the records after the dead letters", || async {
        worker.ensure_running()?;
        Ok(table.scan_json("id").await? == expected)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\nworker log:\n{}", worker.log_tail(40)));
    assert_eq!(read_ndjson_dir(&spec.dead_letter_dir).len(), 3, "nothing else was dead-lettered");

    let status = worker.sigterm_and_wait(Duration::from_secs(30)).expect("shutdown");
    assert_eq!(status.code(), Some(0), "exit status; log:\n{}", worker.log_tail(40));
    assert!(worker.log_text().contains("dynamodb sink ready"), "the plugin's log reaches shardline's log");
}

