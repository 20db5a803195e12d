//! The `s3` sink plugin loaded into the real `shardline` binary
//! (`SHARDLINE_PLUGIN_DIR` = `SHARDLINE_TEST_PLUGIN_DIR`), delivering a
//! kinesis-mock stream into moto's S3: every record lands exactly once, in
//! the object of its partition, and reads back after decompression (gzip
//! NDJSON partitioned by a field; zstd CSV with a header).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::json;
use shardline_e2e::s3::{self, S3};
use shardline_e2e::*;

const RECORDS: usize = 120;
const COUNTRIES: [&str; 3] = ["fr", "de", "jp"];

struct Setup {
    dir: TestDir,
    kinesis: Kinesis,
    stream: String,
    spec: PipelineSpec,
    s3: S3,
    bucket: String,
    bin: std::path::PathBuf,
}

async fn setup(name: &str) -> Option<Setup> {
    let emulators = Emulators::from_env()?;
    let endpoint = s3::endpoint_from_env()?;
    let plugins = s3::plugin_dir()?;
    let bin = shardline_bin()?;
    // Workers inherit the environment: the plugin directory reaches `shardline run`.
    std::env::set_var("SHARDLINE_PLUGIN_DIR", plugins);
    let dir = TestDir::new(name);
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream(&format!("e2e-{name}"), 2).await.expect("create stream");
    let spec = PipelineSpec::new(&emulators, &stream, dir.path());
    let s3 = S3::new(&endpoint);
    let bucket = s3.create_bucket(name).await.expect("create bucket");
    Some(Setup { dir, kinesis, stream, spec, s3, bucket, bin })
}

fn record(i: usize) -> TestRecord {
    let country = COUNTRIES[i % COUNTRIES.len()];
    TestRecord::json(format!("pk-{i}"), &json!({ "id": format!("s3-{i:03}"), "country": country, "n": i, "note": "a, \"quoted\" note" }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_ndjson_partitioned_by_a_field_lands_exactly_once() {
    let Some(setup) = setup("s3-ndjson").await else { return };
    let sink = format!(
        "type = \"s3\"\nbucket = \"{}\"\nendpoint = \"{}\"\nforce_path_style = true\ncompression = \"gzip\"\n\
         key = \"{{stream}}/country={{field.country}}/{{yyyy}}/{{MM}}/{{dd}}/{{shard_id}}-{{first_seq}}-{{first_subseq}}-{{last_seq}}\"",
        setup.bucket, setup.s3.endpoint
    );
    let mut spec = setup.spec.clone();
    spec.buffer_max_records = 25;
    let pipeline = setup.dir.join("pipeline.toml");
    std::fs::write(&pipeline, s3::pipeline_with_sink(&spec, &sink)).expect("write the pipeline");
    let worker = Worker::start(&setup.bin, &pipeline, "s3-ndjson", setup.dir.path());
    let records: Vec<TestRecord> = (0..RECORDS).map(record).collect();
    let puts = setup.kinesis.put_records(&setup.stream, &records).await.expect("put records");

    let objects = s3::wait_for_objects(&setup.s3, &setup.bucket, "", &[&worker], DELIVERY_TIMEOUT, |objects| {
        s3::ndjson_ids(objects).len() >= RECORDS
    })
    .await;
    worker.sigterm_and_wait(Duration::from_secs(30)).map(|s| assert_eq!(s.code(), Some(0), "exit status")).expect("shutdown");

    // Exactly the records put, once each, each as written to Kinesis.
    let mut counts: HashMap<String, usize> = HashMap::new();
    let shard_of: HashMap<String, &str> = (0..RECORDS).map(|i| (format!("s3-{i:03}"), puts[i].shard_id.as_str())).collect();
    for object in &objects {
        assert!(object.key.starts_with(&format!("{}/country=", setup.stream)) && object.key.ends_with(".ndjson.gz"), "{}", object.key);
        assert_eq!(object.content_encoding.as_deref(), Some("gzip"), "{}", object.key);
        assert_eq!(object.content_type.as_deref(), Some("application/x-ndjson"), "{}", object.key);
        let country = object.key.split('/').nth(1).and_then(|p| p.strip_prefix("country=")).expect("partition in the key");
        for line in object.lines() {
            let value: serde_json::Value = serde_json::from_slice(&line).expect("JSON line");
            let id = value["id"].as_str().expect("id").to_owned();
            let i: usize = id[3..].parse().expect("index");
            assert_eq!(value, serde_json::from_slice::<serde_json::Value>(&records[i].data).expect("json"), "{id} round-trips");
            assert_eq!(value["country"], country, "{id} is in its partition's object {}", object.key);
            assert!(object.key.contains(&format!("/{}-", shard_of[&id])), "{id} is in an object of its shard: {}", object.key);
            *counts.entry(id).or_default() += 1;
        }
    }
    assert_eq!(counts.len(), RECORDS, "every record delivered");
    let duplicated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicated.is_empty(), "records delivered more than once: {duplicated:?}");
    assert!(read_ndjson_dir(&spec.dead_letter_dir).is_empty(), "nothing dead-lettered");
    let log = worker.log_text();
    assert!(log.contains("s3 sink ready"), "the plugin's log reaches shardline's log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_csv_with_a_header_lands_exactly_once() {
    let Some(setup) = setup("s3-csv").await else { return };
    let sink = format!(
        "type = \"s3\"\nbucket = \"{}\"\nendpoint = \"{}\"\nforce_path_style = true\nencoding = \"csv\"\n\
         csv_fields = [\"id\", \"country\", \"n\", \"note\"]\ncompression = \"zstd\"\ntime_zone = \"+02:00\"",
        setup.bucket, setup.s3.endpoint
    );
    let pipeline = setup.dir.join("pipeline.toml");
    std::fs::write(&pipeline, s3::pipeline_with_sink(&setup.spec, &sink)).expect("write the pipeline");
    let worker = Worker::start(&setup.bin, &pipeline, "s3-csv", setup.dir.path());
    let records: Vec<TestRecord> = (0..RECORDS).map(record).collect();
    setup.kinesis.put_records(&setup.stream, &records).await.expect("put records");

    let data_rows = |objects: &[s3::StoredObject]| objects.iter().map(|o| o.lines().len().saturating_sub(1)).sum::<usize>();
    let objects = s3::wait_for_objects(&setup.s3, &setup.bucket, "", &[&worker], DELIVERY_TIMEOUT, |o| data_rows(o) >= RECORDS).await;
    worker.sigterm_and_wait(Duration::from_secs(30)).map(|s| assert_eq!(s.code(), Some(0), "exit status")).expect("shutdown");

    let mut rows: BTreeMap<String, String> = BTreeMap::new();
    for object in &objects {
        assert!(object.key.starts_with(&format!("{}/", setup.stream)) && object.key.ends_with(".csv.zst"), "{}", object.key);
        assert_eq!(object.content_encoding.as_deref(), Some("zstd"), "{}", object.key);
        let text = String::from_utf8(object.body.clone()).expect("UTF-8");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("id,country,n,note"), "{}: header", object.key);
        for line in lines {
            let id = line.split(',').next().expect("id").to_owned();
            assert!(rows.insert(id.clone(), line.to_owned()).is_none(), "{id} delivered twice");
        }
    }
    assert_eq!(rows.len(), RECORDS);
    for i in 0..RECORDS {
        let expected = format!("s3-{i:03},{},{i},\"a, \"\"quoted\"\" note\"", COUNTRIES[i % COUNTRIES.len()]);
        assert_eq!(rows[&format!("s3-{i:03}")], expected);
    }
}
