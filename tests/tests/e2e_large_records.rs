//! Records larger than the buffer's `max_bytes` (up to Kinesis' 1 MiB
//! limit) are delivered intact, between small ones, in shard order.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use shardline_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_larger_than_the_buffer_are_delivered_intact() {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("large-records");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis
        .create_stream("e2e-large", 1)
        .await
        .expect("create stream");
    let mut spec = PipelineSpec::new(&emulators, &stream, dir.path());
    spec.buffer_max_bytes = "64KiB".into();
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let worker = Worker::start(&bin, &pipeline, "worker-large", dir.path());

    // small, 300 KB, small, 1000 KB (just under 1 MiB with the key), small...
    let sizes = [10, 300_000, 10, 1_000_000, 10, 70_000, 70_000, 10];
    let records: Vec<TestRecord> = sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            TestRecord::json(
                "pk",
                &json!({ "id": format!("big-{i}"), "i": i, "pad": "y".repeat(size) }),
            )
        })
        .collect();
    for r in &records {
        kinesis
            .put_records(&stream, std::slice::from_ref(r))
            .await
            .expect("put record");
    }
    let ids: HashSet<String> = (0..sizes.len()).map(|i| format!("big-{i}")).collect();
    wait_for_ids(&spec.sink_dir, &ids, &[&worker], DELIVERY_TIMEOUT).await;

    let output = OutputRecord::read_dir(&spec.sink_dir);
    let mut seen = Vec::new();
    for out in &output {
        let i = out.json_u64("i").expect("i") as usize;
        let pad = out
            .json
            .as_ref()
            .and_then(|j| j["pad"].as_str())
            .map(str::len);
        assert_eq!(
            pad,
            Some(sizes[i]),
            "record big-{i} delivered with a different payload size"
        );
        seen.push(i);
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "one shard's records delivered out of order");

    let status = worker
        .sigterm_and_wait(Duration::from_secs(30))
        .expect("shutdown");
    assert_eq!(status.code(), Some(0), "exit status");
}
