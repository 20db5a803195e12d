//! Bad input and a bad destination with the `s3` plugin in the real
//! binary: a record that is not JSON (with `encoding = "ndjson"`) and a
//! record missing the key template's field are dead-lettered with the
//! sink's reason while the shard goes on; a bucket that does not exist
//! stops the pipeline at start with a message naming it.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use shardline_e2e::s3::{self, S3};
use shardline_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_dead_lettered_and_the_shard_goes_on() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(endpoint) = s3::endpoint_from_env() else { return };
    let Some(plugins) = s3::plugin_dir() else { return };
    let Some(bin) = shardline_bin() else { return };
    std::env::set_var("SHARDLINE_PLUGIN_DIR", plugins);
    let dir = TestDir::new("s3-dead-letter");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-s3-dl", 1).await.expect("create stream");
    let s3 = S3::new(&endpoint);
    let bucket = s3.create_bucket("s3-dl").await.expect("create bucket");

    let mut spec = PipelineSpec::new(&emulators, &stream, dir.path());
    // No parse_json: the sink itself meets the record that is not JSON.
    spec.transforms = Vec::new();
    let sink = format!(
        "type = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nforce_path_style = true\n\
         key = \"kind={{field.kind}}/{{shard_id}}-{{first_seq}}-{{first_subseq}}\""
    );
    let pipeline = dir.join("pipeline.toml");
    std::fs::write(&pipeline, s3::pipeline_with_sink(&spec, &sink)).expect("write the pipeline");
    let worker = Worker::start(&bin, &pipeline, "s3-dl", dir.path());

    let good = |i: usize| {
        let kind = ["even", "odd"][i % 2];
        TestRecord::json("pk", &json!({ "id": format!("good-{i:02}"), "kind": kind }))
    };
    let raw = |data: &[u8]| TestRecord { partition_key: "pk".into(), explicit_hash_key: None, data: data.to_vec() };
    let mut records: Vec<TestRecord> = (0..10).map(good).collect();
    records.push(raw(b"{\"id\": \"bad-json\", oops"));
    records.extend((10..20).map(good));
    records.push(raw(br#"{"id": "no-kind"}"#));
    records.extend((20..30).map(good));
    kinesis.put_records(&stream, &records).await.expect("put records");

    let expected: HashSet<String> = (0..30).map(|i| format!("good-{i:02}")).collect();
    let objects = s3::wait_for_objects(&s3, &bucket, "", &[&worker], DELIVERY_TIMEOUT, |objects| {
        s3::ndjson_ids(objects).into_iter().collect::<HashSet<_>>().is_superset(&expected)
    })
    .await;
    wait_until(Duration::from_secs(30), "two dead letters", || async {
        worker.ensure_running()?;
        Ok(read_ndjson_dir(&spec.dead_letter_dir).len() >= 2)
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}; dead letters: {:?}", read_ndjson_dir(&spec.dead_letter_dir)));
    worker.sigterm_and_wait(Duration::from_secs(30)).map(|s| assert_eq!(s.code(), Some(0), "exit status")).expect("shutdown");

    let ids = s3::ndjson_ids(&objects);
    assert_eq!(ids.len(), 30, "only the good records are in S3: {ids:?}");
    for object in &objects {
        let kind = object.key.split('/').next().and_then(|p| p.strip_prefix("kind=")).expect("partition");
        assert!(kind == "even" || kind == "odd", "{}", object.key);
    }
    let dead = OutputRecord::read_dir(&spec.dead_letter_dir);
    assert_eq!(dead.len(), 2, "{dead:?}");
    let not_json = dead.iter().find(|d| d.payload.starts_with(b"{\"id\": \"bad-json\"")).expect("the record that is not JSON");
    assert_eq!(not_json.stage.as_deref(), Some("sink"));
    let reason = not_json.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("not valid JSON") && reason.contains("ndjson"), "{reason}");
    let no_kind = dead.iter().find(|d| d.payload == br#"{"id": "no-kind"}"#).expect("the record without `kind`");
    let reason = no_kind.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("{field.kind}") && reason.contains("missing"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_stops_the_pipeline_at_start_naming_it() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(endpoint) = s3::endpoint_from_env() else { return };
    let Some(plugins) = s3::plugin_dir() else { return };
    let Some(bin) = shardline_bin() else { return };
    std::env::set_var("SHARDLINE_PLUGIN_DIR", plugins);
    let dir = TestDir::new("s3-no-bucket");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-s3-nobucket", 1).await.expect("create stream");
    let spec = PipelineSpec::new(&emulators, &stream, dir.path());
    let bucket = unique_name("no-such-bucket");
    let sink = format!("type = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{endpoint}\"\nforce_path_style = true");
    let pipeline = dir.join("pipeline.toml");
    std::fs::write(&pipeline, s3::pipeline_with_sink(&spec, &sink)).expect("write the pipeline");
    let worker = Worker::start(&bin, &pipeline, "s3-no-bucket", dir.path());
    let status = worker.wait_exit(Duration::from_secs(60)).expect("exits by itself");
    assert_ne!(status.code(), Some(0), "a pipeline whose bucket is missing must not run");
    let log = worker.log_text();
    assert!(log.contains(&bucket) && log.contains("NoSuchBucket") && log.contains("healthcheck"), "{log}");
}
