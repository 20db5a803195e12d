//! The `redshift` sink plugin end to end: Kinesis (kinesis-mock) → the
//! real `shardline` binary (plugin loaded from `SHARDLINE_TEST_PLUGIN_DIR`)
//! → gzip files and manifests staged in moto S3 → COPY through the
//! project's Redshift Data API emulator → rows in PostgreSQL.
//! - every record put is a row, once; a record COPY refuses (a type error)
//!   is dead-lettered with Redshift's error and `stl_load_errors` details;
//! - a worker killed with SIGKILL after its COPYs committed but before it
//!   checkpointed re-reads those records on restart and loads none of them
//!   twice (the loads table written in the COPY's transaction).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use shardline_e2e::redshift::{id_counts, plugin_dir, RedshiftEnv};
use shardline_e2e::s3::{pipeline_with_sink, S3};
use shardline_e2e::*;

struct Setup {
    env: RedshiftEnv,
    table: String,
    bucket: String,
    cluster: String,
}

async fn setup(name: &str) -> Option<Setup> {
    let env = RedshiftEnv::from_env()?;
    let suffix = unique_name(name).replace('-', "_");
    let table = format!("e2e_{suffix}");
    let client = env.postgres().await.expect("postgres");
    client
        .batch_execute(&format!("CREATE TABLE {table} (id VARCHAR(64) NOT NULL, n BIGINT, pk VARCHAR(64))"))
        .await
        .expect("create the target table");
    let bucket = S3::new(&env.s3_endpoint).create_bucket("e2e-redshift").await.expect("staging bucket");
    Some(Setup { env, table, bucket, cluster: suffix })
}

fn record(id: &str, n: serde_json::Value) -> TestRecord {
    TestRecord::json(format!("pk-{id}"), &json!({ "id": id, "n": n, "pk": format!("pk-{id}") }))
}

async fn wait_for_rows(setup: &Setup, wanted: &BTreeSet<String>, workers: &[&Worker]) {
    let client = setup.env.postgres().await.expect("postgres");
    wait_until(DELIVERY_TIMEOUT, "every record loaded into PostgreSQL", || async {
        for worker in workers {
            worker.ensure_running()?;
        }
        let (counts, _) = id_counts(&client, &setup.table).await?;
        Ok(wanted.iter().all(|id| counts.contains_key(id)))
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", workers.iter().map(|w| w.log_tail(40)).collect::<Vec<_>>().join("\n")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_become_rows_and_a_record_copy_refuses_is_dead_lettered() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(bin) = shardline_bin() else { return };
    let Some(plugins) = plugin_dir() else { return };
    let Some(setup) = setup("rs").await else { return };
    let dir = TestDir::new("redshift");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-redshift", 2).await.expect("create stream");
    let spec = PipelineSpec::new(&emulators, &stream, dir.path());
    let pipeline = dir.join("pipeline.toml");
    std::fs::write(&pipeline, pipeline_with_sink(&spec, &setup.env.sink_toml(&setup.table, &setup.bucket, &setup.cluster))).expect("write the pipeline");
    std::env::set_var("SHARDLINE_PLUGIN_DIR", &plugins);
    let worker = Worker::start(&bin, &pipeline, "redshift-worker", dir.path());

    let mut records: Vec<TestRecord> = (0..80).map(|i| record(&format!("r-{i:03}"), json!(i))).collect();
    records.insert(40, record("bad-1", json!("not a number")));
    let puts = kinesis.put_records(&stream, &records).await.expect("put records");
    let bad_put = &puts[40];
    let wanted: BTreeSet<String> = (0..80).map(|i| format!("r-{i:03}")).collect();
    wait_for_rows(&setup, &wanted, &[&worker]).await;

    wait_until(Duration::from_secs(60), "the refused record in the dead letters", || async {
        worker.ensure_running()?;
        Ok(!read_ndjson_dir(&spec.dead_letter_dir).is_empty())
    })
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", worker.log_tail(60)));
    let dead = OutputRecord::read_dir(&spec.dead_letter_dir);
    assert_eq!(dead.len(), 1, "{dead:#?}");
    assert_eq!(dead[0].sequence_number, bad_put.sequence_number, "{}", dead[0].line);
    assert_eq!(dead[0].stage.as_deref(), Some("sink"), "{}", dead[0].line);
    let reason = dead[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("Load into table") && reason.contains("stl_load_errors") && reason.contains("column 'n'"), "{reason}");

    // Rows: each record once, with its fields.
    let client = setup.env.postgres().await.expect("postgres");
    let (counts, total) = id_counts(&client, &setup.table).await.expect("rows");
    assert_eq!(total, 80, "{counts:?}");
    assert_eq!(counts.keys().cloned().collect::<BTreeSet<_>>(), wanted);
    let row = client.query_one(&format!("SELECT n, pk FROM {} WHERE id = 'r-007'", setup.table), &[]).await.expect("row");
    assert_eq!((row.get::<_, i64>(0), row.get::<_, String>(1)), (7, "pk-r-007".to_owned()));

    // What was staged: gzip files and manifests, and the loads table knows them.
    let s3 = S3::new(&setup.env.s3_endpoint);
    let keys: Vec<String> = s3.client.list_objects_v2().bucket(&setup.bucket).send().await.expect("list").contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
    assert!(keys.iter().any(|k| k.ends_with(".json.gz")) && keys.iter().any(|k| k.ends_with(".manifest")), "{keys:?}");
    let loads = client.query_one("SELECT COUNT(*) FROM shardline_loads WHERE manifest LIKE $1", &[&format!("s3://{}/%", setup.bucket)]).await.expect("loads");
    assert!(loads.get::<_, i64>(0) >= 2, "one loaded manifest per run at least");

    worker.sigterm_and_wait(Duration::from_secs(30)).map(|s| assert_eq!(s.code(), Some(0), "exit status")).expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_copy_and_checkpoint_loads_no_row_twice() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(bin) = shardline_bin() else { return };
    let Some(plugins) = plugin_dir() else { return };
    let Some(setup) = setup("rscrash").await else { return };
    let dir = TestDir::new("redshift-crash");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-redshift-crash", 2).await.expect("create stream");
    let mut spec = PipelineSpec::new(&emulators, &stream, dir.path());
    // No checkpoint before the kill: every COPY happens "before the checkpoint".
    spec.checkpoint_interval = Some("1h".into());
    spec.buffer_max_records = 25;
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table());
    let pipeline = dir.join("pipeline.toml");
    std::fs::write(&pipeline, pipeline_with_sink(&spec, &setup.env.sink_toml(&setup.table, &setup.bucket, &setup.cluster))).expect("write the pipeline");
    std::env::set_var("SHARDLINE_PLUGIN_DIR", &plugins);
    let worker = Worker::start(&bin, &pipeline, "redshift-crash-worker", dir.path());

    let first: Vec<TestRecord> = (0..150).map(|i| record(&format!("c-{i:03}"), json!(i))).collect();
    kinesis.put_records(&stream, &first).await.expect("put records");
    let mut wanted: BTreeSet<String> = (0..150).map(|i| format!("c-{i:03}")).collect();
    wait_for_rows(&setup, &wanted, &[&worker]).await;
    let checkpoints: Vec<Option<String>> = leases.scan().await.expect("leases").into_iter().map(|l| l.checkpoint).collect();
    assert!(
        checkpoints.iter().all(|c| c.as_deref().map_or(true, |c| !is_sequence_number(c))),
        "a shard was checkpointed before the kill, so the crash is not between COPY and checkpoint: {checkpoints:?}"
    );
    worker.kill9();

    // More records while it is down; then it starts again from TRIM_HORIZON.
    let second: Vec<TestRecord> = (150..200).map(|i| record(&format!("c-{i:03}"), json!(i))).collect();
    kinesis.put_records(&stream, &second).await.expect("put records");
    wanted.extend((150..200).map(|i| format!("c-{i:03}")));
    worker.restart();
    wait_for_rows(&setup, &wanted, &[&worker]).await;
    worker.sigterm_and_wait(Duration::from_secs(30)).map(|s| assert_eq!(s.code(), Some(0), "exit status")).expect("shutdown");

    let client = setup.env.postgres().await.expect("postgres");
    let (counts, total) = id_counts(&client, &setup.table).await.expect("rows");
    let twice: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "rows loaded twice after the crash: {twice:?}");
    assert_eq!(total, 200);
    let log = worker.log_text();
    assert!(log.contains("records already loaded, skipped"), "the restarted worker re-read loaded records and skipped them:\n{}", worker.log_tail(80));
}
