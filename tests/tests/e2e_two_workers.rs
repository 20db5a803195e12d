//! Two workers share a 4-shard stream through one DynamoDB lease table:
//! every record is delivered (including user records inside KPL
//! aggregates), the leases end up split 2/2, and after SIGTERM both workers
//! exit 0 having checkpointed the last record of every shard and released
//! every lease.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::json;
use shardline_e2e::*;

const PLAIN_RECORDS: usize = 4_400;
const AGGREGATED_RECORDS: usize = 600;
const PER_AGGREGATE: usize = 20;
const BATCHES: usize = 10;

fn record(i: usize, aggregated: bool) -> TestRecord {
    let id = format!("r-{i:05}");
    let pk = format!("pk-{}", i % 97);
    TestRecord::json(
        pk.clone(),
        &json!({ "id": id, "pk": pk, "aggregated": aggregated, "pad": "x".repeat(i % 50) }),
    )
}

/// What the producer knows about each record it put.
struct Expected {
    shard_id: String,
    sequence_number: String,
    partition_key: String,
    aggregated: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_deliver_everything_balance_leases_and_release_on_sigterm() {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("two-workers");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis
        .create_stream("e2e-two-workers", 4)
        .await
        .expect("create stream");
    let spec = PipelineSpec::new(&emulators, &stream, dir.path());
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, spec.lease_table());

    let a = Worker::start(&bin, &pipeline, "worker-a", dir.path());
    let b = Worker::start(&bin, &pipeline, "worker-b", dir.path());

    // Put plain records and KPL aggregates interleaved, while both run.
    let mut expected: HashMap<String, Expected> = HashMap::new();
    let mut all_puts = Vec::new();
    let plain: Vec<TestRecord> = (0..PLAIN_RECORDS).map(|i| record(i, false)).collect();
    let aggregated: Vec<TestRecord> = (PLAIN_RECORDS..PLAIN_RECORDS + AGGREGATED_RECORDS)
        .map(|i| record(i, true))
        .collect();
    for batch in 0..BATCHES {
        let p = &plain[batch * PLAIN_RECORDS / BATCHES..(batch + 1) * PLAIN_RECORDS / BATCHES];
        let g = &aggregated
            [batch * AGGREGATED_RECORDS / BATCHES..(batch + 1) * AGGREGATED_RECORDS / BATCHES];
        let plain_puts = kinesis.put_records(&stream, p).await.expect("put records");
        let aggregated_puts = kinesis
            .put_aggregated(&stream, g, PER_AGGREGATE)
            .await
            .expect("put aggregates");
        for (records, puts, agg) in [(p, &plain_puts, false), (g, &aggregated_puts, true)] {
            for (r, put) in records.iter().zip(puts.iter()) {
                let id = serde_json::from_slice::<serde_json::Value>(&r.data).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                expected.insert(
                    id,
                    Expected {
                        shard_id: put.shard_id.clone(),
                        sequence_number: put.sequence_number.clone(),
                        partition_key: r.partition_key.clone(),
                        aggregated: agg,
                    },
                );
            }
            all_puts.extend(puts.iter().cloned());
        }
    }
    assert_eq!(expected.len(), PLAIN_RECORDS + AGGREGATED_RECORDS);
    let ids: HashSet<String> = expected.keys().cloned().collect();
    wait_for_ids(&spec.sink_dir, &ids, &[&a, &b], DELIVERY_TIMEOUT).await;

    // Every output record carries the metadata of where it was read.
    let output = OutputRecord::read_dir(&spec.sink_dir);
    let mut aggregated_positions: HashMap<(String, u64), String> = HashMap::new();
    for out in &output {
        let id = out
            .json_str("id")
            .unwrap_or_else(|| panic!("output without an id: {}", out.line))
            .to_owned();
        let exp = expected
            .get(&id)
            .unwrap_or_else(|| panic!("unexpected id {id} in the output: {}", out.line));
        assert_eq!(out.shard_id, exp.shard_id, "shard_id of {id}: {}", out.line);
        assert_eq!(
            out.sequence_number, exp.sequence_number,
            "sequence_number of {id}: {}",
            out.line
        );
        assert_eq!(
            out.partition_key, exp.partition_key,
            "partition_key of {id} (KPL user record key): {}",
            out.line
        );
        if exp.aggregated {
            assert!(
                out.sub_sequence_number < PER_AGGREGATE as u64,
                "sub_sequence_number of {id}: {}",
                out.line
            );
            let position = (out.sequence_number.clone(), out.sub_sequence_number);
            if let Some(other) = aggregated_positions.insert(position, id.clone()) {
                assert_eq!(
                    other, id,
                    "two user records of one aggregate share a sub_sequence_number"
                );
            }
        } else {
            assert_eq!(
                out.sub_sequence_number, 0,
                "sub_sequence_number of plain record {id}: {}",
                out.line
            );
        }
    }
    let duplicates = delivery_counts(&output)
        .values()
        .filter(|&&n| n > 1)
        .count();
    eprintln!(
        "{} lines for {} ids ({duplicates} ids delivered more than once)",
        output.len(),
        ids.len()
    );

    // Leases split 2/2, and stay so for a failover time.
    let stable_since: Cell<Option<Instant>> = Cell::new(None);
    let balanced = wait_until(
        Duration::from_secs(90),
        "leases split 2/2 for 3s",
        || async {
            a.ensure_running()?;
            b.ensure_running()?;
            let counts = leases.owner_counts().await?;
            let ok = counts.len() == 2
                && counts.get("worker-a") == Some(&2)
                && counts.get("worker-b") == Some(&2);
            match (ok, stable_since.get()) {
                (false, _) => stable_since.set(None),
                (true, None) => stable_since.set(Some(Instant::now())),
                (true, Some(_)) => {}
            }
            Ok(stable_since
                .get()
                .is_some_and(|t| t.elapsed() >= Duration::from_secs(3)))
        },
    )
    .await;
    if let Err(e) = balanced {
        panic!(
            "{e:#}; lease table: {:#?}",
            leases.scan().await.map(|l| Lease::summary(&l))
        );
    }
    let table = leases.scan().await.expect("scan leases");
    assert_eq!(
        table.len(),
        4,
        "one lease per shard: {:#?}",
        Lease::summary(&table)
    );
    for lease in &table {
        for attribute in [
            "leaseKey",
            "leaseOwner",
            "leaseCounter",
            "checkpoint",
            "checkpointSubSequenceNumber",
            "ownerSwitchesSinceCheckpoint",
        ] {
            assert!(
                lease.raw.contains_key(attribute),
                "lease {} lacks the KCL attribute {attribute}: {:?}",
                lease.lease_key,
                lease.raw
            );
        }
    }

    // Graceful shutdown: exit 0, last record checkpointed, lease released.
    Worker::shutdown_all(&[&a, &b], Duration::from_secs(30)).expect("graceful shutdown");
    let last = last_sequence_per_shard(&all_puts);
    let table = leases.scan().await.expect("scan leases");
    for lease in &table {
        let checkpoint = lease.checkpoint.as_deref().unwrap_or("<none>");
        assert!(
            is_sequence_number(checkpoint),
            "lease {} checkpoint {checkpoint:?} is not a sequence number",
            lease.lease_key
        );
        assert_eq!(
            Some(checkpoint),
            last.get(&lease.lease_key).map(String::as_str),
            "lease {} not checkpointed at the shard's last record after a graceful shutdown: {:#?}",
            lease.lease_key,
            Lease::summary(&table)
        );
        assert_eq!(
            lease.lease_owner,
            None,
            "lease {} still owned after graceful shutdown: {:#?}",
            lease.lease_key,
            Lease::summary(&table)
        );
    }
}
