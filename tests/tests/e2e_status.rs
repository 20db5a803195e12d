//! `shardline status` through the real binary:
//! - on a running worker's DynamoDB lease table (kinesis-mock + dynalite):
//!   every shard with its owner, the checkpoint the table holds, and the
//!   owner's lag and records/s from its `/metrics`; `--json` and text;
//! - on the lease table of the real Java KCL 2.5.8 (`tests/kcl`'s worker):
//!   its leases, owner and checkpoints, with no Shardline attribute;
//! - on a table holding the KCL 2.x lease attributes for a reshard (written
//!   here through the DynamoDB API with the attribute names and types of
//!   KCL 2.5.8's items: an ended parent with children, an unowned child):
//!   parent/child state; an unanswered `--metrics` address is reported, and
//!   the status still exits 0.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use serde_json::{json, Value};
use shardline_e2e::*;

fn status(bin: &Path, dir: &Path, pipeline: &Path, args: &[&str]) -> Output {
    let child = Command::new(bin)
        .arg("status")
        .arg(pipeline)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shardline status");
    output_within(child, Duration::from_secs(60), "`shardline status`")
}

fn json_report(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "status failed:\n{stdout}{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{stdout}"))
}

fn shard<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["shards"].as_array().and_then(|s| s.iter().find(|s| s["shard_id"] == id)).unwrap_or_else(|| panic!("no {id} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_a_running_workers_leases_checkpoints_lag_and_rate() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("status-running");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-status", 2).await.expect("create stream");
    let spec = PipelineSpec::new(&emulators, &stream, dir.path());
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table());
    let worker = Worker::start(&bin, &pipeline, "status-worker", dir.path());

    let records: Vec<TestRecord> = (0..300).map(|i| TestRecord::json(format!("pk-{i}"), &json!({ "id": format!("s-{i:03}") }))).collect();
    let puts = kinesis.put_records(&stream, &records).await.expect("put records");
    let ids: HashSet<String> = (0..300).map(|i| format!("s-{i:03}")).collect();
    wait_for_ids(&spec.sink_dir, &ids, &[&worker], Duration::from_secs(90)).await;
    let last = last_sequence_per_shard(&puts);
    wait_until(Duration::from_secs(30), "every shard checkpointed at its last record", || async {
        let stored = leases.scan().await?;
        Ok(last.iter().all(|(shard, seq)| stored.iter().any(|l| &l.lease_key == shard && l.checkpoint.as_deref() == Some(seq.as_str()))))
    })
    .await
    .expect("checkpoints");
    let metrics = worker.metrics_address().expect("the worker logged its metrics address");

    let report = json_report(&status(&bin, dir.path(), &pipeline, &["--once", "--json", "--metrics", &metrics, "--interval", "200ms"]));
    assert_eq!(report["pipeline"], spec.name.as_str(), "{report}");
    assert_eq!(report["table"], spec.lease_table(), "{report}");
    assert_eq!(report["shards"].as_array().map(Vec::len), Some(2), "{report}");
    for (shard_id, sequence) in &last {
        let row = shard(&report, shard_id);
        assert_eq!(row["owner"], "status-worker", "{row}");
        assert_eq!(row["checkpoint"], sequence.as_str(), "the table's checkpoint: {row}");
        assert_eq!(row["state"], "open", "{row}");
        assert!(row["lease_counter"].as_u64().is_some_and(|c| c >= 1), "{row}");
        assert!(row["millis_behind_latest"].as_f64().is_some_and(|m| m >= 0.0), "lag from the owner's metrics: {row}");
        assert!(row["records_per_second"].as_f64().is_some_and(|r| r >= 0.0), "a rate from two reads: {row}");
    }
    let workers = report["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 1, "{report}");
    assert_eq!(workers[0]["worker_id"], "status-worker");
    assert_eq!(workers[0]["leases"], 2);
    assert_eq!(workers[0]["metrics"], format!("http://{metrics}/metrics").as_str());

    // Text: a header, one line per shard, the worker's totals.
    let output = status(&bin, dir.path(), &pipeline, &["--once", "--metrics", &metrics, "--interval", "200ms"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.starts_with(&format!("pipeline {} · stream {stream} · lease table {}", spec.name, spec.lease_table())), "{text}");
    for shard_id in last.keys() {
        let line = text.lines().find(|l| l.starts_with(shard_id.as_str())).unwrap_or_else(|| panic!("no line for {shard_id}:\n{text}"));
        assert!(line.contains("status-worker") && line.contains("open"), "{line}");
    }
    assert!(text.lines().any(|l| l.starts_with("status-worker ") && l.contains("http://")), "{text}");
    worker.sigterm_and_wait(Duration::from_secs(30)).expect("worker stops");
}

/// Creates `table` as the KCL does (hash key `leaseKey`) and puts `items`.
async fn kcl_table(endpoint: &str, table: &str, items: Vec<HashMap<String, AttributeValue>>) {
    let client = aws_sdk_dynamodb::Client::new(&shardline_aws::emulator_sdk_config(endpoint));
    client
        .create_table()
        .table_name(table)
        .key_schema(KeySchemaElement::builder().attribute_name("leaseKey").key_type(KeyType::Hash).build().expect("key"))
        .attribute_definitions(AttributeDefinition::builder().attribute_name("leaseKey").attribute_type(ScalarAttributeType::S).build().expect("attribute"))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create the table");
    wait_until(Duration::from_secs(30), "the table to be active", || {
        let client = client.clone();
        async move {
            let described = client.describe_table().table_name(table).send().await?;
            Ok(described.table().and_then(|t| t.table_status()).map(|s| s.as_str() == "ACTIVE").unwrap_or(false))
        }
    })
    .await
    .expect("table active");
    for item in items {
        client.put_item().table_name(table).set_item(Some(item)).send().await.expect("put a lease");
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn ss(v: &[&str]) -> AttributeValue {
    AttributeValue::Ss(v.iter().map(|x| (*x).to_owned()).collect())
}

#[tokio::test]
async fn status_reads_a_table_holding_only_kcl_attributes() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("status-kcl");
    let table = unique_name("kcl-app");
    let sequence = "49590338271490256608559692538361571095921575989136588898";
    let item = |pairs: Vec<(&str, AttributeValue)>| pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<HashMap<_, _>>();
    kcl_table(
        &emulators.dynamodb_endpoint,
        &table,
        vec![
            item(vec![
                ("leaseKey", s("shardId-000000000000")),
                ("leaseOwner", s("kcl-worker-1")),
                ("leaseCounter", n(41)),
                ("checkpoint", s("SHARD_END")),
                ("checkpointSubSequenceNumber", n(0)),
                ("ownerSwitchesSinceCheckpoint", n(0)),
                ("childShardIds", ss(&["shardId-000000000001", "shardId-000000000002"])),
                ("startingHashKey", s("0")),
                ("endingHashKey", s("340282366920938463463374607431768211455")),
            ]),
            item(vec![
                ("leaseKey", s("shardId-000000000001")),
                ("leaseOwner", s("kcl-worker-1")),
                ("leaseCounter", n(12)),
                ("checkpoint", s(sequence)),
                ("checkpointSubSequenceNumber", n(3)),
                ("ownerSwitchesSinceCheckpoint", n(1)),
                ("parentShardId", ss(&["shardId-000000000000"])),
                ("startingHashKey", s("0")),
                ("endingHashKey", s("170141183460469231731687303715884105727")),
            ]),
            item(vec![
                ("leaseKey", s("shardId-000000000002")),
                ("leaseCounter", n(2)),
                ("checkpoint", s("TRIM_HORIZON")),
                ("checkpointSubSequenceNumber", n(0)),
                ("ownerSwitchesSinceCheckpoint", n(0)),
                ("parentShardId", ss(&["shardId-000000000000"])),
                ("startingHashKey", s("170141183460469231731687303715884105728")),
                ("endingHashKey", s("340282366920938463463374607431768211455")),
            ]),
        ],
    )
    .await;
    let mut spec = PipelineSpec::new(&emulators, "kcl-stream", dir.path());
    spec.leases = LeaseStore::Dynamodb { table: table.clone(), endpoint: emulators.dynamodb_endpoint.clone() };
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").to_string();

    let report = json_report(&status(&bin, dir.path(), &pipeline, &["--once", "--json", "--metrics", &closed, "--interval", "100ms"]));
    let parent = shard(&report, "shardId-000000000000");
    assert_eq!((parent["state"].as_str(), parent["checkpoint"].as_str(), parent["lease_counter"].as_u64()), (Some("ended"), Some("SHARD_END"), Some(41)), "{parent}");
    assert_eq!(parent["children"], json!(["shardId-000000000001", "shardId-000000000002"]), "{parent}");
    let child = shard(&report, "shardId-000000000001");
    assert_eq!((child["owner"].as_str(), child["checkpoint"].as_str()), (Some("kcl-worker-1"), Some(sequence)), "{child}");
    assert_eq!((child["checkpoint_sub_sequence_number"].as_u64(), child["owner_switches_since_checkpoint"].as_u64()), (Some(3), Some(1)), "{child}");
    assert_eq!((child["state"].as_str(), child["parents"].clone()), (Some("open"), json!(["shardId-000000000000"])), "{child}");
    let unowned = shard(&report, "shardId-000000000002");
    assert!(unowned["owner"].is_null(), "{unowned}");
    assert_eq!(report["workers"], json!([{ "worker_id": "kcl-worker-1", "leases": 2, "records_per_second": null, "max_millis_behind_latest": null, "metrics": null }]));
    let sources = report["metrics"].as_array().expect("metrics sources");
    assert_eq!(sources.len(), 1, "{report}");
    assert!(sources[0]["error"].as_str().is_some_and(|e| e.contains(&closed)), "the unanswered address is named: {report}");

    let output = status(&bin, dir.path(), &pipeline, &["--once", "--metrics", &closed, "--interval", "100ms"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.lines().any(|l| l.starts_with("shardId-000000000000") && l.contains("ended → shardId-000000000001,shardId-000000000002")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("shardId-000000000001") && l.contains(&format!("…{}/3", &sequence[sequence.len() - 12..]))), "{text}");
    assert!(text.contains(&format!("metrics http://{closed}/metrics: ")), "{text}");
}

#[tokio::test]
async fn status_of_a_missing_dynamodb_table_names_it_and_exits_1() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("status-missing");
    let spec = PipelineSpec::new(&emulators, "no-stream", dir.path());
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let output = status(&bin, dir.path(), &pipeline, &["--once", "--metrics", "127.0.0.1:9"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with("error: pipeline ") && stderr.contains(spec.lease_table()), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_the_lease_table_of_the_real_java_kcl() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(bin) = shardline_bin() else { return };
    let Some(classpath) = KclWorker::classpath() else { return };
    let dir = TestDir::new("status-real-kcl");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-status-kcl", 2).await.expect("create stream");
    let records: Vec<TestRecord> = (0..100).map(|i| TestRecord::json(format!("pk-{i}"), &json!({ "id": format!("k-{i:03}") }))).collect();
    let puts = kinesis.put_records(&stream, &records).await.expect("put records");
    let app = unique_name("kcl-app");
    let kcl = KclWorker::start(&classpath, &emulators, &stream, &app, "kcl-worker-1", dir.path());
    // The KCL waits a random 1-30 s before its first shard sync.
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, &app);
    let last = last_sequence_per_shard(&puts);
    wait_until(Duration::from_secs(120), "the KCL to read and checkpoint every record", || {
        let read = kcl.lines().len();
        let leases = &leases;
        let last = &last;
        async move {
            let stored = leases.scan().await?;
            Ok(read >= 100 && last.iter().all(|(shard, seq)| stored.iter().any(|l| &l.lease_key == shard && l.checkpoint.as_deref() == Some(seq.as_str()))))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nKCL log:\n{}", kcl.log()));

    let mut spec = PipelineSpec::new(&emulators, &stream, dir.path());
    spec.leases = LeaseStore::Dynamodb { table: app.clone(), endpoint: emulators.dynamodb_endpoint.clone() };
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let report = json_report(&status(&bin, dir.path(), &pipeline, &["--once", "--json", "--metrics", "127.0.0.1:9", "--interval", "100ms"]));
    assert_eq!(report["table"], app.as_str());
    assert_eq!(report["shards"].as_array().map(Vec::len), Some(2), "{report}");
    for (shard_id, sequence) in &last {
        let row = shard(&report, shard_id);
        assert_eq!(row["owner"], kcl.id(), "{row}");
        assert_eq!(row["checkpoint"], sequence.as_str(), "the KCL's checkpoint: {row}");
        assert_eq!(row["state"], "open", "{row}");
        assert!(row["lease_counter"].as_u64().is_some_and(|c| c >= 1), "{row}");
    }
    assert_eq!(report["workers"][0]["worker_id"], kcl.id(), "{report}");
    assert_eq!(report["workers"][0]["leases"], 2, "{report}");
    assert!(kcl.errors().is_empty(), "the KCL logged errors:\n{}", kcl.log());
}
