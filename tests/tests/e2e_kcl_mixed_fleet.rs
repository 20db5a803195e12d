//! A mixed fleet on one lease table: the real Java KCL 2.5.8 (`tests/kcl`)
//! and a Shardline worker read one 4-shard stream (kinesis-mock + dynalite).
//!
//! 1. The leases end up split between them, and the lease items each one
//!    writes have the same attribute names and DynamoDB types.
//! 2. kill -9 of the KCL worker: Shardline takes its leases and resumes
//!    right after the KCL's checkpoints (no record at or before a KCL
//!    checkpoint is delivered again by Shardline), and no record is lost.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use shardline_e2e::*;

/// The type letter of an attribute value (`S`, `N`, `SS`, ...).
fn type_of(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::S(_) => "S",
        AttributeValue::N(_) => "N",
        AttributeValue::Ss(_) => "SS",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::B(_) => "B",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::L(_) => "L",
        AttributeValue::M(_) => "M",
        AttributeValue::Null(_) => "NULL",
        _ => "other",
    }
}

/// An item's attributes: name → type.
fn attributes(item: &HashMap<String, AttributeValue>) -> BTreeMap<String, &'static str> {
    item.iter().map(|(k, v)| (k.clone(), type_of(v))).collect()
}

/// A string attribute of an item; empty when absent or not a string.
fn string_attribute(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(value)) => value.clone(),
        _ => String::new(),
    }
}

/// Every lease item as (owner, attribute name → type).
async fn raw_items(leases: &LeaseTable) -> Vec<(String, BTreeMap<String, &'static str>)> {
    let page = leases.client.scan().table_name(&leases.table).consistent_read(true).send().await.expect("scan the lease table");
    page.items().iter().map(|item| (string_attribute(item, "leaseOwner"), attributes(item))).collect()
}

/// A Shardline pipeline on the lease table `app` (the KCL's application
/// name), delivering the payloads as they are (no transforms).
fn shardline_on_table(emulators: &Emulators, stream: &str, dir: &TestDir, app: &str, release_on_shutdown: Option<bool>) -> (PipelineSpec, std::path::PathBuf) {
    let mut spec = PipelineSpec::new(emulators, stream, dir.path());
    spec.leases = LeaseStore::Dynamodb { table: app.to_owned(), endpoint: emulators.dynamodb_endpoint.clone() };
    spec.transforms = Vec::new();
    spec.release_on_shutdown = release_on_shutdown;
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    (spec, pipeline)
}

/// Waits until the KCL worker holds at least one lease.
async fn wait_for_kcl_leases(leases: &LeaseTable, kcl: &KclWorker) {
    wait_until(Duration::from_secs(120), "the KCL to hold leases", || async { Ok(leases.owner_counts().await?.get(kcl.id()).is_some_and(|n| *n > 0)) })
        .await
        .unwrap_or_else(|e| panic!("{e}\nKCL log:\n{}", kcl.log()));
}

/// Waits until every id of `expected` was read by the KCL (`kcl_read`
/// gives its ids) or delivered by Shardline, which must keep running.
async fn wait_read_by_either(what: &str, timeout: Duration, expected: &HashSet<String>, kcl_read: impl Fn() -> HashSet<String>, spec: &PipelineSpec, shardline: &Worker) -> anyhow::Result<()> {
    wait_until(timeout, what, || {
        let mut seen = kcl_read();
        seen.extend(delivered_ids(&OutputRecord::read_dir(&spec.sink_dir)));
        let result = shardline.ensure_running().map(|()| expected.is_subset(&seen));
        async move { result }
    })
    .await
}

fn ids_of(lines: &[String]) -> HashSet<String> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kcl_worker_and_a_shardline_worker_share_leases_and_hand_over_after_kill_9() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(bin) = shardline_bin() else { return };
    let Some(classpath) = KclWorker::classpath() else { return };
    let dir = TestDir::new("kcl-mixed-fleet");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-kcl-mixed", 4).await.expect("create stream");
    let record = |i: usize| TestRecord::json(format!("pk-{i}"), &json!({ "id": format!("m-{i:04}") }));
    let first: Vec<TestRecord> = (0..400).map(record).collect();
    kinesis.put_records(&stream, &first).await.expect("put records");

    // The KCL creates the table and the leases; Shardline joins it.
    let app = unique_name("kcl-mixed");
    let kcl = KclWorker::start(&classpath, &emulators, &stream, &app, "kcl-worker", dir.path());
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, &app);
    wait_for_kcl_leases(&leases, &kcl).await;
    let (spec, pipeline) = shardline_on_table(&emulators, &stream, &dir, &app, None);
    let shardline = Worker::start(&bin, &pipeline, "shardline-worker", dir.path());

    // 1. The leases split, and the records are read once between them.
    wait_until(Duration::from_secs(120), "both workers to hold leases", || async {
        let counts = leases.owner_counts().await?;
        Ok(counts.get("kcl-worker").is_some_and(|n| *n > 0) && counts.get("shardline-worker").is_some_and(|n| *n > 0) && counts.values().sum::<usize>() == 4)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nKCL log:\n{}", kcl.log()));
    let expected_first: HashSet<String> = (0..400).map(|i| format!("m-{i:04}")).collect();
    wait_read_by_either("every record read by one of the workers", Duration::from_secs(120), &expected_first, || ids_of(&kcl.lines()), &spec, &shardline)
        .await
        .unwrap_or_else(|e| panic!("{e}\nKCL log:\n{}", kcl.log()));
    // Both have checkpointed their shards: compare the items they wrote.
    wait_until(Duration::from_secs(60), "every lease checkpointed past TRIM_HORIZON", || async {
        Ok(leases.scan().await?.iter().all(|l| l.checkpoint.as_deref().is_some_and(is_sequence_number)))
    })
    .await
    .expect("checkpoints");
    let items = raw_items(&leases).await;
    let of = |owner: &str| -> BTreeSet<(String, &'static str)> {
        items.iter().filter(|(o, _)| o == owner).flat_map(|(_, attrs)| attrs.iter().map(|(k, t)| (k.clone(), *t))).collect()
    };
    let (by_kcl, by_shardline) = (of("kcl-worker"), of("shardline-worker"));
    assert!(!by_kcl.is_empty() && !by_shardline.is_empty(), "{items:?}");
    assert_eq!(by_shardline, by_kcl, "the attributes (name, type) of the leases each writes");
    for attribute in ["leaseKey", "leaseOwner", "leaseCounter", "checkpoint", "checkpointSubSequenceNumber", "ownerSwitchesSinceCheckpoint"] {
        assert!(by_kcl.iter().any(|(k, _)| k == attribute), "{attribute} missing from the KCL's items: {by_kcl:?}");
    }

    // 2. kill -9 the KCL: Shardline resumes its shards after its checkpoints.
    let kcl_checkpoints: HashMap<String, (String, u64)> = leases
        .scan()
        .await
        .expect("scan")
        .into_iter()
        .filter(|l| l.lease_owner.as_deref() == Some("kcl-worker"))
        .filter_map(|l| Some((l.lease_key.clone(), (l.checkpoint.clone()?, l.checkpoint_sub_sequence_number.unwrap_or(0)))))
        .collect();
    assert!(!kcl_checkpoints.is_empty());
    let kcl_read = ids_of(&kcl.lines());
    // What Shardline delivered before the kill (it may have read some of
    // these shards before the leases settled).
    let before: HashSet<(String, String, u64)> =
        OutputRecord::read_dir(&spec.sink_dir).into_iter().map(|r| (r.shard_id, r.sequence_number, r.sub_sequence_number)).collect();
    drop(kcl);
    let second: Vec<TestRecord> = (400..600).map(record).collect();
    kinesis.put_records(&stream, &second).await.expect("put more records");
    wait_until(Duration::from_secs(120), "Shardline to hold every lease", || async { Ok(leases.owner_counts().await?.get("shardline-worker") == Some(&4)) })
        .await
        .expect("Shardline takes the KCL's leases");
    let expected: HashSet<String> = (0..600).map(|i| format!("m-{i:04}")).collect();
    wait_read_by_either("every record read", Duration::from_secs(120), &expected, || kcl_read.clone(), &spec, &shardline)
        .await
    .expect("nothing lost across the hand-over");
    for record in OutputRecord::read_dir(&spec.sink_dir) {
        if before.contains(&(record.shard_id.clone(), record.sequence_number.clone(), record.sub_sequence_number)) {
            continue;
        }
        if let Some((sequence, sub)) = kcl_checkpoints.get(&record.shard_id) {
            assert_eq!(
                cmp_checkpoint((&record.sequence_number, record.sub_sequence_number), (sequence, *sub)),
                std::cmp::Ordering::Greater,
                "Shardline delivered {} of {} at or before the KCL's checkpoint {sequence}/{sub}",
                record.sequence_number,
                record.shard_id
            );
        }
    }
    shardline.sigterm_and_wait(Duration::from_secs(30)).expect("Shardline stops");
}

/// 3. The other way: Shardline reads and checkpoints a stream alone, the
///    KCL joins, Shardline is stopped with SIGTERM (a graceful shutdown:
///    final checkpoints written; with `release_on_shutdown = false`, as a
///    table shared with KCL 2.x workers needs, the leases are left to
///    expire as the KCL's own are), and the KCL takes every lease
///    and reads exactly the records put after Shardline's checkpoints, none
///    before, logging no error or exception while reading Shardline's
///    items. No records flow while both run, so no lease moves with a batch
///    in flight and the overlap is exactly zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_shardline_sigterm_the_kcl_resumes_right_after_shardlines_checkpoints() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(bin) = shardline_bin() else { return };
    let Some(classpath) = KclWorker::classpath() else { return };
    let dir = TestDir::new("kcl-after-shardline");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-kcl-after", 4).await.expect("create stream");
    let record = |i: usize| TestRecord::json(format!("pk-{i}"), &json!({ "id": format!("h-{i:04}") }));
    let first: Vec<TestRecord> = (0..300).map(record).collect();
    let puts = kinesis.put_records(&stream, &first).await.expect("put records");

    let app = unique_name("shardline-first");
    // Released (unowned) leases the KCL 2.5.8 had seen owned make its lease
    // taker throw a NullPointerException in chooseLeasesToSteal until they
    // expire for it: see the README.
    let (_spec, pipeline) = shardline_on_table(&emulators, &stream, &dir, &app, Some(false));
    let shardline = Worker::start(&bin, &pipeline, "shardline-worker", dir.path());
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, &app);
    let last = last_sequence_per_shard(&puts);
    wait_until(Duration::from_secs(90), "Shardline to checkpoint every shard at its last record", || async {
        shardline.ensure_running()?;
        let stored = leases.scan().await?;
        Ok(last.iter().all(|(shard, seq)| stored.iter().any(|l| &l.lease_key == shard && l.checkpoint.as_deref() == Some(seq.as_str()))))
    })
    .await
    .expect("Shardline's checkpoints");

    let kcl = KclWorker::start(&classpath, &emulators, &stream, &app, "kcl-worker", dir.path());
    wait_until(Duration::from_secs(120), "the KCL to take some of Shardline's leases", || async {
        Ok(leases.owner_counts().await?.get("kcl-worker").is_some_and(|n| *n > 0))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nKCL log:\n{}", kcl.log()));
    shardline.sigterm_and_wait(Duration::from_secs(60)).expect("Shardline drains and exits");
    let second: Vec<TestRecord> = (300..500).map(record).collect();
    kinesis.put_records(&stream, &second).await.expect("put more records");
    let expected: HashSet<String> = (300..500).map(|i| format!("h-{i:04}")).collect();
    wait_until(Duration::from_secs(120), "the KCL to hold every lease and read the new records", || async {
        Ok(leases.owner_counts().await?.get("kcl-worker") == Some(&4) && expected.is_subset(&ids_of(&kcl.lines())))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nKCL log:\n{}", kcl.log()));
    let read = ids_of(&kcl.lines());
    let again: Vec<&String> = read.iter().filter(|id| !expected.contains(*id)).collect();
    assert!(again.is_empty(), "the KCL read again {} records Shardline had checkpointed: {:?}", again.len(), again.iter().take(5).collect::<Vec<_>>());
    assert!(kcl.errors().is_empty(), "the KCL logged errors reading Shardline's items:\n{}", kcl.log());
}

/// 4. A split of a shard the KCL owns and of one Shardline owns: every
///    record is read; the two ended parents' items (`SHARD_END`,
///    `childShardIds`), one written by each, have the same attributes and
///    types and name the same children as `ListShards`; then the KCL's
///    LeaseCleanupManager (intervals shortened) deletes the finished
///    parents' leases, and for several of Shardline's shard syncs after
///    that no parent lease comes back and no parent record is read again,
///    by either worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_split_the_kcl_cleans_up_the_parents_and_nobody_reads_them_again() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(bin) = shardline_bin() else { return };
    let Some(classpath) = KclWorker::classpath() else { return };
    let dir = TestDir::new("kcl-split-cleanup");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-kcl-split", 2).await.expect("create stream");
    let record = |i: usize| TestRecord::json(format!("pk-{i}"), &json!({ "id": format!("s-{i:04}") }));
    let first: Vec<TestRecord> = (0..200).map(record).collect();
    kinesis.put_records(&stream, &first).await.expect("put records");

    let app = unique_name("kcl-split");
    // Finished parents are deleted 5 s after their children started at the
    // earliest: time enough to read their ended items first.
    let kcl = KclWorker::start_with_env(&classpath, &emulators, &stream, &app, "kcl-worker", dir.path(), &[("LEASE_CLEANUP_MS", "1000"), ("COMPLETED_CLEANUP_MS", "5000")]);
    let leases = LeaseTable::new(&emulators.dynamodb_endpoint, &app);
    wait_for_kcl_leases(&leases, &kcl).await;
    let (spec, pipeline) = shardline_on_table(&emulators, &stream, &dir, &app, Some(false));
    let shardline = Worker::start(&bin, &pipeline, "shardline-worker", dir.path());
    wait_until(Duration::from_secs(120), "one lease each", || async {
        let counts = leases.owner_counts().await?;
        Ok(counts.get("kcl-worker") == Some(&1) && counts.get("shardline-worker") == Some(&1))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nKCL log:\n{}", kcl.log()));

    // Split both parents: one owned by each worker.
    let parents: Vec<String> = kinesis.list_shards(&stream).await.expect("list shards").into_iter().map(|s| s.shard_id).collect();
    for parent in &parents {
        kinesis.split_shard_in_half(&stream, parent).await.expect("split");
    }
    let second: Vec<TestRecord> = (200..400).map(record).collect();
    kinesis.put_records(&stream, &second).await.expect("put records after the split");
    let owner_of: HashMap<String, String> = leases.scan().await.expect("scan").into_iter().filter_map(|l| Some((l.lease_key, l.lease_owner?))).collect();
    let parent_owners: BTreeSet<Option<&String>> = parents.iter().map(|p| owner_of.get(p)).collect();
    assert_eq!(parent_owners.len(), 2, "one parent each: {owner_of:?}");

    // Both parents ended: the KCL's item and Shardline's agree.
    let ended: std::sync::Mutex<Vec<(String, BTreeMap<String, &'static str>)>> = std::sync::Mutex::new(Vec::new());
    let found = wait_until(Duration::from_secs(120), "both parents at SHARD_END with their children", || {
        let client = leases.client.clone();
        let table = leases.table.clone();
        let parents = parents.clone();
        let ended = &ended;
        async move {
            let page = client.scan().table_name(&table).consistent_read(true).send().await?;
            let items: Vec<_> = page.items().iter().filter(|i| parents.contains(&string_attribute(i, "leaseKey"))).cloned().collect();
            let done = items.len() == parents.len() && items.iter().all(|i| string_attribute(i, "checkpoint") == "SHARD_END" && i.contains_key("childShardIds"));
            if done {
                *ended.lock().unwrap_or_else(|p| p.into_inner()) = items
                    .iter()
                    .map(|i| {
                        let key = string_attribute(i, "leaseKey");
                        let children = match i.get("childShardIds") {
                            // A string set has no order.
                            Some(AttributeValue::Ss(c)) => {
                                let mut c = c.clone();
                                c.sort();
                                c.join(",")
                            }
                            _ => String::new(),
                        };
                        let mut attrs = attributes(i);
                        attrs.insert(format!("children={children}"), "");
                        (key, attrs)
                    })
                    .collect();
            }
            Ok(done)
        }
    })
    .await;
    if let Err(e) = found {
        let stored = leases.scan().await.unwrap_or_default();
        panic!("{e}\nleases: {:?}\nKCL log:\n{}", Lease::summary(&stored), kcl.log());
    }
    let ended = ended.into_inner().unwrap_or_else(|p| p.into_inner());
    let shards = kinesis.list_shards(&stream).await.expect("list shards");
    for (key, attrs) in &ended {
        let mut children: Vec<String> = shards.iter().filter(|s| s.parent_shard_id.as_deref() == Some(key.as_str())).map(|s| s.shard_id.clone()).collect();
        children.sort();
        assert!(attrs.contains_key(&format!("children={}", children.join(","))), "{key}'s childShardIds are its children {children:?}: {attrs:?}");
    }
    let without_children = |attrs: &BTreeMap<String, &'static str>| -> BTreeSet<(String, &'static str)> {
        attrs.iter().filter(|(k, _)| !k.starts_with("children=")).map(|(k, t)| (k.clone(), *t)).collect()
    };
    assert_eq!(without_children(&ended[0].1), without_children(&ended[1].1), "the ended parents' attributes, one ended by each worker ({owner_of:?})");
    let expected: HashSet<String> = (0..400).map(|i| format!("s-{i:04}")).collect();
    wait_read_by_either("every record read, children included", Duration::from_secs(180), &expected, || ids_of(&kcl.lines()), &spec, &shardline)
        .await
        .unwrap_or_else(|e| panic!("{e}\nKCL log:\n{}", kcl.log()));

    // The KCL deletes the finished parents' leases.
    let cleaned = wait_until(Duration::from_secs(120), "the parents' leases deleted by the KCL's cleanup", || async {
        let keys: HashSet<String> = leases.scan().await?.into_iter().map(|l| l.lease_key).collect();
        Ok(parents.iter().all(|p| !keys.contains(p)))
    })
    .await;
    if let Err(e) = cleaned {
        let stored = leases.scan().await.unwrap_or_default();
        panic!("{e}\nleases: {:?}\nKCL log:\n{}", Lease::summary(&stored), kcl.log());
    }
    let parent_reads = |kcl_lines: &[String]| -> (usize, usize) {
        let by_shardline = OutputRecord::read_dir(&spec.sink_dir).iter().filter(|r| parents.contains(&r.shard_id)).count();
        // The KCL writes only the data: the first batch went to the parents.
        let first_ids: HashSet<String> = (0..200).map(|i| format!("s-{i:04}")).collect();
        let by_kcl = kcl_lines
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["id"].as_str().is_some_and(|id| first_ids.contains(id)))
            .count();
        (by_shardline, by_kcl)
    };
    let at_cleanup = parent_reads(&kcl.lines());
    // Several shard syncs of Shardline (every 1 s) and cleanup runs of the
    // KCL (every 1 s) later: still gone, and nothing re-read.
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < deadline {
        let keys: HashSet<String> = leases.scan().await.expect("scan").into_iter().map(|l| l.lease_key).collect();
        assert!(parents.iter().all(|p| !keys.contains(p)), "a parent lease came back: {keys:?}");
        shardline.ensure_running().expect("Shardline runs");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(parent_reads(&kcl.lines()), at_cleanup, "(Shardline, KCL) reads of parent records after the cleanup");
    assert!(kcl.errors().is_empty(), "the KCL logged errors:\n{}", kcl.log());
}
