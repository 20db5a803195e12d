//! A worker killed with SIGKILL and not restarted: after the failover time
//! the survivor takes its leases (KCL-style: leaseCounter moves on, the
//! owner switch is counted) and delivers everything.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use shardline_e2e::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survivor_takes_the_leases_of_a_dead_worker() {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("failover");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis
        .create_stream("e2e-failover", 4)
        .await
        .expect("create stream");
    let spec = PipelineSpec::new(&emulators, &stream, dir.path());
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table());
    let a = Worker::start(&bin, &pipeline, "worker-a", dir.path());
    let b = Worker::start(&bin, &pipeline, "worker-b", dir.path());

    let record = |i: usize| {
        TestRecord::json(
            format!("pk-{}", i % 23),
            &json!({ "id": format!("fo-{i:04}") }),
        )
    };
    let first: Vec<TestRecord> = (0..400).map(record).collect();
    let mut puts = kinesis
        .put_records(&stream, &first)
        .await
        .expect("put records");
    wait_until(DELIVERY_TIMEOUT, "both workers holding leases", || async {
        a.ensure_running()?;
        b.ensure_running()?;
        let counts = leases.owner_counts().await?;
        Ok(counts.get("worker-a").is_some_and(|&n| n > 0)
            && counts.get("worker-b").is_some_and(|&n| n > 0))
    })
    .await
    .expect("both workers hold leases");
    let before = leases.scan().await.expect("scan leases");
    let taken_from_b: Vec<_> = before
        .iter()
        .filter(|l| l.lease_owner.as_deref() == Some("worker-b"))
        .cloned()
        .collect();
    b.kill9();
    eprintln!(
        "killed worker-b (-9) holding {:?}",
        taken_from_b
            .iter()
            .map(|l| &l.lease_key)
            .collect::<Vec<_>>()
    );

    let second: Vec<TestRecord> = (400..800).map(record).collect();
    puts.extend(
        kinesis
            .put_records(&stream, &second)
            .await
            .expect("put records"),
    );
    let ids: HashSet<String> = (0..800).map(|i| format!("fo-{i:04}")).collect();
    wait_for_ids(&spec.sink_dir, &ids, &[&a], DELIVERY_TIMEOUT).await;

    let all_taken = wait_until(
        Duration::from_secs(60),
        "worker-a holding all 4 leases",
        || async {
            a.ensure_running()?;
            Ok(leases.owner_counts().await?.get("worker-a") == Some(&4))
        },
    )
    .await;
    if let Err(e) = all_taken {
        panic!(
            "{e:#}; lease table: {:#?}",
            leases.scan().await.map(|l| Lease::summary(&l))
        );
    }
    let after = leases.scan().await.expect("scan leases");
    for old in &taken_from_b {
        let new = after
            .iter()
            .find(|l| l.lease_key == old.lease_key)
            .expect("lease still there");
        assert!(
            new.lease_counter > old.lease_counter,
            "leaseCounter of {} did not move on: {old:?} -> {new:?}",
            old.lease_key
        );
    }

    Worker::shutdown_all(&[&a], Duration::from_secs(30)).expect("graceful shutdown");
    let table = leases.scan().await.expect("scan leases");
    let last = last_sequence_per_shard(&puts);
    for lease in &table {
        assert_eq!(
            lease.checkpoint.as_deref(),
            last.get(&lease.lease_key).map(String::as_str),
            "checkpoint of {}: {:#?}",
            lease.lease_key,
            Lease::summary(&table)
        );
        assert_eq!(
            lease.lease_owner, None,
            "lease {} still owned after graceful shutdown",
            lease.lease_key
        );
    }
}
