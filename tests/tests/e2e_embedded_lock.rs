//! Two `shardline run` processes on one embedded lease table: the second is
//! refused at start with an error naming the state directory (instead of
//! overwriting the first one's leases), and the first goes on.

use std::time::Duration;

use shardline_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_embedded_table_is_refused() {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("embedded-lock");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis
        .create_stream("e2e-embedded-lock", 1)
        .await
        .expect("create stream");
    let state_dir = dir.join("state");
    let mut spec = PipelineSpec::new(&emulators, &stream, dir.path());
    spec.leases = LeaseStore::Embedded {
        state_dir: state_dir.clone(),
    };
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let first = Worker::start(&bin, &pipeline, "worker-first", dir.path());
    let table_file = state_dir.join(format!("{}.leases.json", spec.name));
    wait_until(
        DELIVERY_TIMEOUT,
        "the first worker holding the lease",
        || async {
            first.ensure_running()?;
            Ok(std::fs::read_to_string(&table_file).is_ok_and(|t| t.contains("\"worker-first\"")))
        },
    )
    .await
    .expect("the first worker holds the lease");

    let second = Worker::start(&bin, &pipeline, "worker-second", dir.path());
    let status = second
        .wait_exit(Duration::from_secs(30))
        .expect("the second worker exits");
    assert!(!status.success(), "the second worker must fail: {status:?}");
    let log = second.log_text();
    assert!(
        log.contains(&state_dir.display().to_string()) && log.contains("in use"),
        "the error names the state directory:\n{log}"
    );
    first.ensure_running().expect("the first worker goes on");
    let text = std::fs::read_to_string(&table_file).expect("table file");
    assert!(
        !text.contains("worker-second"),
        "the second worker wrote leases: {text}"
    );
    let status = first
        .sigterm_and_wait(Duration::from_secs(30))
        .expect("shutdown");
    assert_eq!(status.code(), Some(0), "exit status");
}
