//! `fence_on_sequence = true` on the `dynamodb` sink plugin in the real
//! `shardline` binary: four versions of ten keys from a kinesis-mock
//! stream leave every item at its newest version; a second pipeline (its
//! own lease table, so it replays the stream from `TRIM_HORIZON`) writes
//! every record again into the same table and moves no item back: each of
//! its writes is refused by the condition, answered delivered, and counted
//! in `shardline_dynamodb_fenced_total` on that worker's `/metrics` (the
//! plugin's own counter, through the metrics bridge). Records of one batch
//! with the same key collapse to the last one before writing, so the count
//! is between one per key (the whole replay in one batch) and one per
//! record.

use std::time::Duration;

use shardline_e2e::dynamodb_sink::{dynamodb_plugin_dir, pipeline_with_sink, DynamoDbTable};
use shardline_e2e::*;

const KEYS: usize = 10;
const VERSIONS: u64 = 4;

fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialise")
}

/// The version of every key (0 when missing); an error when an item lacks
/// its position attribute.
async fn versions(table: &DynamoDbTable) -> anyhow::Result<Vec<u64>> {
    let items = table.scan_json("id").await?;
    (0..KEYS)
        .map(|k| match items.get(&format!("k{k}")) {
            None => Ok(0),
            Some(item)
                if item["_kinesis_position"]
                    .as_str()
                    .is_some_and(|p| p.len() == 77) =>
            {
                Ok(item["v"].as_u64().unwrap_or(0))
            }
            Some(item) => anyhow::bail!("item without a 77-character _kinesis_position: {item}"),
        })
        .collect()
}

/// SIGTERM, and a clean exit.
fn stop(worker: Worker) {
    let status = worker
        .sigterm_and_wait(Duration::from_secs(30))
        .expect("shutdown");
    assert_eq!(
        status.code(),
        Some(0),
        "exit status; log:\n{}",
        worker.log_tail(40)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_from_trim_horizon_moves_no_item_back_and_is_counted() {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let Some(bin) = shardline_bin() else { return };
    let Some(plugins) = dynamodb_plugin_dir() else {
        return;
    };
    let dir = TestDir::new("dynamodb-fence");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis
        .create_stream("e2e-dynamodb-fence", 1)
        .await
        .expect("create stream");
    let table = DynamoDbTable::create(
        &emulators.dynamodb_endpoint,
        &unique_name("e2e-fenced"),
        "id",
    )
    .await
    .expect("create table");
    let sink = format!(
        "type = \"dynamodb\"\ntable = {}\nendpoint = {}\nregion = \"us-east-1\"\nfence_on_sequence = true\n",
        quoted(&table.name),
        quoted(&emulators.dynamodb_endpoint)
    );
    let pipeline = |file: &str| {
        let mut spec = PipelineSpec::new(&emulators, &stream, dir.path());
        spec.transforms.clear();
        let path = dir.join(file);
        std::fs::write(&path, pipeline_with_sink(&spec, &sink)).expect("write the pipeline");
        (spec, path)
    };
    std::env::set_var("SHARDLINE_PLUGIN_DIR", &plugins);

    for v in 1..=VERSIONS {
        let records: Vec<TestRecord> = (0..KEYS)
            .map(|k| TestRecord::json("pk", &serde_json::json!({ "id": format!("k{k}"), "v": v })))
            .collect();
        kinesis
            .put_records(&stream, &records)
            .await
            .expect("put records");
    }
    let (_, first_file) = pipeline("first.toml");
    let first = Worker::start(&bin, &first_file, "fence-first", dir.path());
    wait_until(
        DELIVERY_TIMEOUT,
        "every item at its newest version",
        || async {
            first.ensure_running()?;
            Ok(versions(&table).await? == vec![VERSIONS; KEYS])
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\nworker log:\n{}", first.log_tail(40)));
    stop(first);

    // A second pipeline with its own lease table replays all 40 records.
    let (second_spec, second_file) = pipeline("second.toml");
    assert_ne!(second_spec.lease_table(), "", "a fresh lease table");
    let second = Worker::start(&bin, &second_file, "fence-replay", dir.path());
    let fenced_series = format!(
        "shardline_dynamodb_fenced_total{{table=\"{}\"}} ",
        table.name
    );
    let delivered_series = format!(
        "shardline_records_delivered_total{{pipeline=\"{}\",",
        second_spec.name
    );
    // (fenced, delivered); zeros until the worker serves /metrics (it logs
    // its address once up).
    let counts = || -> (u64, u64) {
        let value = |body: &str, prefix: &str| {
            body.lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64
        };
        match second.http_get("/metrics") {
            Ok((200, body)) => (
                value(&body, &fenced_series),
                value(&body, &delivered_series),
            ),
            _ => (0, 0),
        }
    };
    let records = KEYS as u64 * VERSIONS;
    wait_until(
        DELIVERY_TIMEOUT,
        "every replayed record delivered and the writes fenced off",
        || async {
            second.ensure_running()?;
            let now = versions(&table).await?;
            anyhow::ensure!(
                now == vec![VERSIONS; KEYS],
                "an item went back during the replay: {now:?}"
            );
            let (fenced, delivered) = counts();
            Ok(delivered == records && fenced >= KEYS as u64)
        },
    )
    .await
    .unwrap_or_else(|e| {
        let metrics = second
            .http_get("/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default();
        panic!(
            "{e:#}\n/metrics:\n{metrics}\nworker log:\n{}",
            second.log_tail(40)
        )
    });
    assert_eq!(versions(&table).await.expect("scan"), vec![VERSIONS; KEYS]);
    let (fenced, _) = counts();
    let (_, body) = second.http_get("/metrics").expect("metrics");
    assert!(
        body.contains("# HELP shardline_dynamodb_fenced_total writes fence_on_sequence refused"),
        "the plugin's description crosses the bridge too:\n{body}"
    );
    assert!(
        (KEYS as u64..=records).contains(&fenced),
        "{fenced} fenced writes"
    );
    assert!(
        read_ndjson_dir(&second_spec.dead_letter_dir).is_empty(),
        "fenced writes are delivered, not dead-lettered"
    );
    stop(second);
}
