//! CloudWatch Logs subscription records through the real binary: gzip
//! batches of log events, as CloudWatch Logs writes them to a stream, come
//! out of `decode_cloudwatch_logs` as one record per event in shard order;
//! the CONTROL_MESSAGE is counted as filtered, records that are not such
//! batches (plain JSON, a gzip bomb) are dead-lettered as they were read,
//! and the checkpoint passes all of them.

use std::collections::HashSet;
use std::io::Write as _;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use serde_json::{json, Value};
use shardline_e2e::*;

/// The DATA_MESSAGE of the CloudWatch Logs user guide ("Validate the flow
/// of log events"), as the transform's unit tests use it.
const DOCUMENTED_DATA_MESSAGE: &str =
    include_str!("../../transforms/src/decode_cloudwatch_logs/documented-data-message.json");

/// CloudWatch Logs' reachability check.
const DOCUMENTED_CONTROL_MESSAGE: &str =
    include_str!("../../transforms/src/decode_cloudwatch_logs/documented-control-message.json");

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).expect("in-memory gzip");
    encoder.finish().expect("in-memory gzip")
}

fn raw(data: Vec<u8>) -> TestRecord {
    TestRecord {
        partition_key: "CloudTrail/logs".into(),
        explicit_hash_key: None,
        data,
    }
}

fn lambda_batch() -> String {
    json!({
        "messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": "/aws/lambda/orders",
        "logStream": "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef", "subscriptionFilters": ["to-kinesis"],
        "logEvents": [
            {"id": "37292837355817492391273648165192938475619283746591280000", "timestamp": 1767225600000i64,
             "message": "START RequestId: 8f5c2b9e-6f0a-4c1e-9d3b-2a7e4f1c0d11 Version: $LATEST\n"},
            {"id": "37292837355817492391273648165192938475619283746591280001", "timestamp": 1767225600042i64,
             "message": "{\"level\":\"info\",\"order_id\":\"o-1001\"}\n"},
        ],
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_records_become_one_record_per_log_event() {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("cloudwatch-logs");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis
        .create_stream("e2e-cloudwatch-logs", 1)
        .await
        .expect("create stream");
    let mut spec = PipelineSpec::new(&emulators, &stream, dir.path());
    spec.transforms = vec!["decode_cloudwatch_logs".into()];
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table());
    let worker = Worker::start(&bin, &pipeline, "worker-cwl", dir.path());

    let plain = DOCUMENTED_DATA_MESSAGE.as_bytes().to_vec();
    // 11 MiB of zeros from about 11 KiB: over the default 10 MiB.
    let bomb = gzip(&vec![0u8; 11 << 20]);
    let records = vec![
        raw(gzip(DOCUMENTED_DATA_MESSAGE.as_bytes())),
        raw(gzip(DOCUMENTED_CONTROL_MESSAGE.as_bytes())),
        raw(plain.clone()),
        raw(gzip(lambda_batch().as_bytes())),
        raw(bomb.clone()),
    ];
    let puts = kinesis
        .put_records(&stream, &records)
        .await
        .expect("put records");

    let documented_ids: Vec<String> = (29..32)
        .map(|n| format!("31953106606966983378809025079804211143289615424{n}EXAMPLE"))
        .collect();
    let lambda_ids = [
        "37292837355817492391273648165192938475619283746591280000",
        "37292837355817492391273648165192938475619283746591280001",
    ];
    let ids: HashSet<String> = documented_ids
        .iter()
        .cloned()
        .chain(lambda_ids.iter().map(|s| s.to_string()))
        .collect();
    wait_for_ids(&spec.sink_dir, &ids, &[&worker], DELIVERY_TIMEOUT).await;
    wait_until(Duration::from_secs(30), "two dead letters", || async {
        worker.ensure_running()?;
        Ok(read_ndjson_dir(&spec.dead_letter_dir).len() >= 2)
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}; dead letters so far: {:?}",
            read_ndjson_dir(&spec.dead_letter_dir)
        )
    });

    // One record per event, in shard order, each at its Kinesis record's position.
    let output = OutputRecord::read_dir(&spec.sink_dir);
    let got: Vec<(&str, &str)> = output
        .iter()
        .map(|o| {
            (
                o.json_str("id").unwrap_or_default(),
                o.sequence_number.as_str(),
            )
        })
        .collect();
    let expected: Vec<(&str, &str)> = documented_ids
        .iter()
        .map(|id| (id.as_str(), puts[0].sequence_number.as_str()))
        .chain(
            lambda_ids
                .iter()
                .map(|id| (*id, puts[3].sequence_number.as_str())),
        )
        .collect();
    assert_eq!(
        got, expected,
        "events in order at their record's sequence number"
    );
    assert_eq!(
        output[0].json,
        Some(json!({
            "id": documented_ids[0], "timestamp": 1432826855000i64,
            "message": "{\"eventVersion\":\"1.03\",\"userIdentity\":{\"type\":\"Root\"}",
            "owner": "111111111111", "logGroup": "CloudTrail/logs",
            "logStream": "111111111111_CloudTrail/logs_us-east-1", "subscriptionFilters": ["RecipientStream"],
        }))
    );
    assert_eq!(
        output[4].json.as_ref().map(|v| v["message"].clone()),
        Some(Value::from(
            "{\"level\":\"info\",\"order_id\":\"o-1001\"}\n"
        ))
    );

    // The records that are not subscription data, as they were read, with the reason.
    let dead = OutputRecord::read_dir(&spec.dead_letter_dir);
    assert_eq!(dead.len(), 2, "{dead:#?}");
    for (entry, put, payload, reason) in [
        (
            &dead[0],
            &puts[2],
            &plain,
            "not gzip: the record starts with bytes [7b 0a]",
        ),
        (
            &dead[1],
            &puts[4],
            &bomb,
            "decompresses to more than max_decompressed_bytes (10MiB)",
        ),
    ] {
        assert_eq!(entry.sequence_number, put.sequence_number, "{}", entry.line);
        assert_eq!(
            &entry.payload, payload,
            "dead letter keeps the record as read"
        );
        assert_eq!(
            entry.stage.as_deref(),
            Some("transform:decode_cloudwatch_logs"),
            "{}",
            entry.line
        );
        let why = entry.reason.as_deref().unwrap_or_default();
        assert!(why.contains(reason), "reason {why:?} lacks {reason:?}");
    }

    wait_until(
        Duration::from_secs(10),
        "filtered, dead-letter and delivery counters",
        || async {
            let filtered = worker.metric("shardline_records_filtered_total")?;
            let dead = worker.metric("shardline_records_dead_lettered_total")?;
            let delivered = worker.metric("shardline_records_delivered_total")?;
            Ok(filtered == 1.0 && dead == 2.0 && delivered == 5.0)
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}; /metrics:\n{}",
            worker.http_get("/metrics").map(|r| r.1).unwrap_or_default()
        )
    });

    // The checkpoint passes every record, the control message and the dead letters too.
    worker
        .sigterm_and_wait(Duration::from_secs(30))
        .map(|s| assert_eq!(s.code(), Some(0), "exit status"))
        .expect("shutdown");
    let table = leases.scan().await.expect("scan leases");
    let last = last_sequence_per_shard(&puts);
    assert_eq!(table.len(), 1, "{:#?}", Lease::summary(&table));
    assert_eq!(
        table[0].checkpoint.as_deref(),
        last.get(&table[0].lease_key).map(String::as_str),
        "checkpoint after shutdown: {:#?}",
        Lease::summary(&table)
    );
}
