//! The elasticsearch sink plugin in the real binary: Kinesis (kinesis-mock)
//! → `shardline run` → osmem-server (OpenSearch API). Documents land with
//! deterministic ids in time-rotated indices; a mapping conflict is
//! dead-lettered with the cluster's error; a cluster stopped for 20 s
//! loses nothing and dead-letters nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::json;
use shardline_e2e::opensearch::{plugin_dir, OpenSearch, OsmemServer, StoredDoc};
use shardline_e2e::*;

const PLUGIN_FILE: &str = "libshardline_sink_elasticsearch.so";

fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// The harness's pipeline with its file sink replaced by `sink` (the
/// `[sink]` keys, without `type`) and `delivery` keys appended.
fn pipeline_with(spec: &PipelineSpec, dir: &Path, sink: &str, delivery: &str) -> std::path::PathBuf {
    let file_sink = format!("type = \"file\"\npath = {}\nformat = \"envelope\"\n", quoted(&spec.sink_dir.to_string_lossy()));
    let toml = spec.to_toml();
    assert!(toml.contains(&file_sink), "the harness's sink section changed:\n{toml}");
    let mut toml = toml.replace(&file_sink, &format!("type = \"elasticsearch\"\n{sink}"));
    if !delivery.is_empty() {
        toml.push_str(&format!("\n[delivery]\n{delivery}"));
    }
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, toml).expect("write the pipeline");
    path
}

/// Polls until `pattern` holds documents with every id in `ids`.
async fn wait_for_docs(os: &OpenSearch, pattern: &str, ids: &BTreeSet<String>, worker: &Worker, timeout: Duration) -> BTreeMap<String, StoredDoc> {
    let mut last = BTreeMap::new();
    let result = wait_until(timeout, &format!("{} documents in {pattern}", ids.len()), || {
        let found = os.documents(pattern);
        let running = worker.ensure_running();
        let done = found.as_ref().map(|docs| ids.iter().all(|id| docs.contains_key(id))).unwrap_or(false);
        if let Ok(docs) = found {
            last = docs;
        }
        async move {
            running?;
            Ok(done)
        }
    })
    .await;
    if let Err(e) = result {
        let missing: Vec<&String> = ids.iter().filter(|id| !last.contains_key(*id)).collect();
        panic!("{e:#}; {} missing, e.g. {:?}", missing.len(), &missing[..missing.len().min(5)]);
    }
    last
}

struct Setup {
    _dir: TestDir,
    kinesis: Kinesis,
    stream: String,
    spec: PipelineSpec,
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
}

async fn setup(name: &str, shards: i32) -> Option<Setup> {
    let emulators = Emulators::from_env()?;
    let bin = shardline_bin()?;
    let plugins = plugin_dir(PLUGIN_FILE)?;
    // Workers inherit the environment: the plugin reaches `shardline run` this way.
    std::env::set_var("SHARDLINE_PLUGIN_DIR", &plugins);
    let dir = TestDir::new(name);
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream(&format!("e2e-{name}"), shards).await.expect("create stream");
    let spec = PipelineSpec::new(&emulators, &stream, dir.path());
    let path = dir.path().to_owned();
    Some(Setup { _dir: dir, kinesis, stream, spec, bin, dir: path })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_land_with_deterministic_ids_in_rotated_indices() {
    let Some(os) = OpenSearch::from_env() else { return };
    let Some(s) = setup("es-docs", 2).await else { return };
    let prefix = unique_name("e2e-es");
    let sink = format!("endpoint = {}\nindex = \"{prefix}-{{yyyy.MM}}\"\ntime_field = \"ts\"\n", quoted(&os.endpoint()));
    let pipeline = pipeline_with(&s.spec, &s.dir, &sink, "");
    let worker = Worker::start(&s.bin, &pipeline, "es-docs", &s.dir);

    // January and February 2024: two monthly indices.
    let record = |i: usize| {
        let ts = if i % 2 == 0 { format!("2024-01-{:02}T10:00:00Z", 1 + i % 28) } else { format!("2024-02-{:02}T10:00:00+01:00", 1 + i % 28) };
        TestRecord::json(format!("pk-{i}"), &json!({ "n": i, "ts": ts, "tag": format!("plain-{i}") }))
    };
    let plain: Vec<TestRecord> = (0..40).map(record).collect();
    let puts = s.kinesis.put_records(&s.stream, &plain).await.expect("put records");
    // KPL aggregates: user records share a sequence number, told apart by sub-sequence.
    let aggregated: Vec<TestRecord> =
        (100..112).map(|i| TestRecord::json(format!("agg-{i}"), &json!({ "n": i, "ts": "2024-02-29T23:59:59Z", "tag": "kpl" }))).collect();
    let aggregated_puts = s.kinesis.put_aggregated(&s.stream, &aggregated, 4).await.expect("put aggregates");

    let mut expected: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for (i, put) in puts.iter().enumerate() {
        let month = if i % 2 == 0 { "01" } else { "02" };
        expected.insert(format!("{}-{}-{}-0", s.stream, put.shard_id, put.sequence_number), (format!("{prefix}-2024.{month}"), i as u64));
    }
    let mut sub_sequences: BTreeMap<(String, String), u64> = BTreeMap::new();
    for (record, put) in aggregated.iter().zip(&aggregated_puts) {
        let sub = sub_sequences.entry((put.shard_id.clone(), put.sequence_number.clone())).or_insert(0);
        let n: serde_json::Value = serde_json::from_slice(&record.data).expect("json");
        expected.insert(format!("{}-{}-{}-{sub}", s.stream, put.shard_id, put.sequence_number), (format!("{prefix}-2024.02"), n["n"].as_u64().expect("n")));
        *sub += 1;
    }
    let ids: BTreeSet<String> = expected.keys().cloned().collect();
    let docs = wait_for_docs(&os, &format!("{prefix}-*"), &ids, &worker, DELIVERY_TIMEOUT).await;

    assert_eq!(docs.len(), expected.len(), "no other documents: {:?}", docs.keys().filter(|k| !expected.contains_key(*k)).collect::<Vec<_>>());
    for (id, (index, n)) in &expected {
        let doc = &docs[id];
        assert_eq!(&doc.index, index, "index of {id}");
        assert_eq!(doc.source["n"], json!(n), "source of {id}: {}", doc.source);
    }
    // Searchable by id too.
    let (first_id, (first_index, _)) = expected.iter().next().expect("documents");
    assert!(os.get(first_index, first_id).expect("GET by id").is_some(), "GET {first_index}/_doc/{first_id}");
    let (status, count) = os.http("GET", &format!("/{prefix}-2024.01/_count"), "").expect("count");
    assert_eq!((status, count["count"].as_u64()), (200, Some(20)), "{count}");
    worker.sigterm_and_wait(Duration::from_secs(30)).map(|st| assert_eq!(st.code(), Some(0))).expect("shutdown");
    assert!(worker.log_text().contains("elasticsearch sink ready"), "the plugin's log reaches shardline's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapping_conflict_is_dead_lettered_with_the_error() {
    let Some(os) = OpenSearch::from_env() else { return };
    let Some(s) = setup("es-mapping", 1).await else { return };
    let index = unique_name("e2e-es-mapping");
    let sink = format!("endpoint = {}\nindex = {}\nid_field = \"id\"\n", quoted(&os.endpoint()), quoted(&index));
    let pipeline = pipeline_with(&s.spec, &s.dir, &sink, "");
    let worker = Worker::start(&s.bin, &pipeline, "es-mapping", &s.dir);

    // `value` becomes a number with the first document...
    let first = vec![TestRecord::json("pk", &json!({ "id": "m-0", "value": 1 }))];
    s.kinesis.put_records(&s.stream, &first).await.expect("put");
    wait_for_docs(&os, &index, &BTreeSet::from(["m-0".to_owned()]), &worker, DELIVERY_TIMEOUT).await;
    // ...so an object there later is a mapping error, and its neighbours go on.
    let later = vec![
        TestRecord::json("pk", &json!({ "id": "m-1", "value": { "nested": true } })),
        TestRecord::json("pk", &json!({ "id": "m-2", "value": 2 })),
    ];
    let puts = s.kinesis.put_records(&s.stream, &later).await.expect("put");
    wait_for_docs(&os, &index, &BTreeSet::from(["m-0".to_owned(), "m-2".to_owned()]), &worker, DELIVERY_TIMEOUT).await;
    wait_until(Duration::from_secs(30), "one dead letter", || async {
        worker.ensure_running()?;
        Ok(!read_ndjson_dir(&s.spec.dead_letter_dir).is_empty())
    })
    .await
    .expect("dead letter");
    let dead = OutputRecord::read_dir(&s.spec.dead_letter_dir);
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!((dead[0].sequence_number.as_str(), dead[0].stage.as_deref()), (puts[0].sequence_number.as_str(), Some("sink")));
    assert_eq!(dead[0].json_str("id"), Some("m-1"));
    let reason = dead[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("400") && reason.contains("mapper_parsing_exception") && reason.contains("m-1"), "reason: {reason}");
    assert!(os.get(&index, "m-1").expect("GET").is_none(), "the conflicting document is not stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_down_for_20_seconds_loses_nothing() {
    let Some(mut server) = OsmemServer::start() else { return };
    let Some(s) = setup("es-outage", 2).await else { return };
    let os = server.opensearch();
    let index = unique_name("e2e-es-outage");
    let sink = format!("endpoint = {}\nindex = {}\nid_field = \"id\"\nrequest_timeout = \"5s\"\n", quoted(&os.endpoint()), quoted(&index));
    // Retry forever (0), at most 2 s apart, so an outage never dead-letters.
    let pipeline = pipeline_with(&s.spec, &s.dir, &sink, "retry_attempts = 0\nretry_max_backoff = \"2s\"\n");
    let worker = Worker::start(&s.bin, &pipeline, "es-outage", &s.dir);
    let batch = |from: usize, to: usize| -> Vec<TestRecord> {
        (from..to).map(|i| TestRecord::json(format!("pk-{i}"), &json!({ "id": format!("o-{i:03}"), "i": i }))).collect()
    };
    let ids = |from: usize, to: usize| -> BTreeSet<String> { (from..to).map(|i| format!("o-{i:03}")).collect() };

    s.kinesis.put_records(&s.stream, &batch(0, 20)).await.expect("put before");
    wait_for_docs(&os, &index, &ids(0, 20), &worker, DELIVERY_TIMEOUT).await;
    // Visible in the index is not yet acknowledged: the bulk response may
    // still be on its way, and a server killed now would make the engine
    // re-send those documents (at-least-once) to the restarted, empty
    // server. The outage starts once the engine counted them delivered.
    wait_until(DELIVERY_TIMEOUT, "the records before the outage acknowledged", || async {
        worker.ensure_running()?;
        Ok(worker.metric("shardline_records_delivered_total").unwrap_or(0.0) >= 20.0)
    })
    .await
    .expect("records before the outage acknowledged");

    // Down: killed by PID. Records written meanwhile must wait, not be dropped.
    let pid = server.pid();
    server.stop();
    let stopped = Instant::now();
    eprintln!("osmem-server (pid {pid:?}) stopped");
    s.kinesis.put_records(&s.stream, &batch(20, 80)).await.expect("put during the outage");
    wait_until(Duration::from_secs(20), "the sink to retry against the stopped cluster", || async {
        worker.ensure_running()?;
        Ok(worker.metric("shardline_sink_retries_total").unwrap_or(0.0) >= 1.0)
    })
    .await
    .expect("retries during the outage");
    // The outage lasts 20 s: that is the scenario, not a wait for a condition.
    tokio::time::sleep(Duration::from_secs(20).saturating_sub(stopped.elapsed())).await;
    assert!(worker.is_running(), "the worker survives the outage");
    assert_eq!(worker.metric("shardline_records_dead_lettered_total").expect("metric"), 0.0);

    // Back on the same port (empty: osmem keeps documents in memory only).
    server.restart();
    eprintln!("osmem-server restarted (pid {:?})", server.pid());
    let docs = wait_for_docs(&os, &index, &ids(20, 80), &worker, DELIVERY_TIMEOUT).await;
    assert_eq!(docs.keys().cloned().collect::<BTreeSet<_>>(), ids(20, 80), "every record of the outage, once");
    assert!(read_ndjson_dir(&s.spec.dead_letter_dir).is_empty(), "nothing dead-lettered: {:?}", read_ndjson_dir(&s.spec.dead_letter_dir));
    assert_eq!(worker.metric("shardline_records_dead_lettered_total").expect("metric"), 0.0);
    assert!(worker.metric("shardline_sink_retries_total").expect("metric") >= 1.0);
    worker.sigterm_and_wait(Duration::from_secs(30)).map(|st| assert_eq!(st.code(), Some(0))).expect("shutdown");
}
