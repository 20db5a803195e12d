//! `fence_on_sequence = true` against dynalite, through the plugin host:
//! a zombie worker (it lost the shard's lease and still sends an old batch)
//! cannot make an item go back to an older version, refused writes are
//! answered delivered and counted in `shardline_dynamodb_fenced_total`,
//! and a replay from `TRIM_HORIZON` (every batch again, out of order)
//! leaves every item at its newest version. Without the option the same
//! zombie does overwrite (the control that shows the test can fail).

mod support;

use std::sync::OnceLock;

use aws_sdk_dynamodb::types::ScalarAttributeType as T;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use shardline_api::{BatchFence, Record, RecordStatus, Sink};
use support::{client, create_table, dynalite, record, scan_json, sink, unique};

const KEYS: u64 = 12;
const VERSIONS: u64 = 5;

/// The process's recorder (the plugin runs on its own runtime threads, so
/// only a global recorder sees its metrics in this in-process test).
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .install_recorder()
            .expect("the only recorder of this test binary")
    })
}

fn fenced_total(table: &str) -> u64 {
    let series = format!("shardline_dynamodb_fenced_total{{table=\"{table}\"}} ");
    recorder()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&series).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Version `v` (1-based) of every key, as one batch in shard order; the
/// positions grow with the version.
fn batch(v: u64) -> Vec<Record> {
    (0..KEYS)
        .map(|k| {
            record(
                v * 100 + k,
                json!({ "id": format!("k{k:02}"), "v": v }).to_string(),
            )
        })
        .collect()
}

fn fence(counter: u64) -> BatchFence {
    BatchFence {
        shard_id: "shardId-000000000004".into(),
        lease_counter: counter,
    }
}

async fn versions(endpoint: &str, table: &str) -> Vec<u64> {
    let items = scan_json(&client(endpoint), table, "id").await;
    (0..KEYS)
        .map(|k| {
            items
                .get(&format!("k{k:02}"))
                .and_then(|i| i["v"].as_u64())
                .unwrap_or(0)
        })
        .collect()
}

async fn send(sink: &dyn Sink, counter: u64, batch: &[Record]) {
    let statuses = sink
        .send_fenced(&fence(counter), batch)
        .await
        .expect("send");
    assert!(
        statuses.iter().all(|s| *s == RecordStatus::Delivered),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_cannot_move_an_item_back_and_replays_leave_the_newest() {
    let Some(endpoint) = dynalite() else { return };
    recorder();
    let table = unique("fenced");
    create_table(&client(&endpoint), &table, ("id", T::S), None, None).await;
    let config = json!({ "table": table, "endpoint": endpoint, "region": "us-east-1", "fence_on_sequence": true, "concurrency": 8 });
    // Two workers given the same shard: each its own plugin instance.
    let owner = sink(config.clone(), "owner");
    let zombie = sink(config.clone(), "zombie");

    send(&*owner, 7, &batch(1)).await;
    send(&*owner, 7, &batch(2)).await;
    assert_eq!(versions(&endpoint, &table).await, vec![2; KEYS as usize]);
    assert_eq!(fenced_total(&table), 0, "nothing was refused yet");
    let item = scan_json(&client(&endpoint), &table, "id")
        .await
        .remove("k00")
        .expect("k00");
    let expected = format!(
        "{:0>56}.{:020}",
        record(200, "").meta.sequence_number.as_str(),
        0
    );
    assert_eq!(
        item["_kinesis_position"],
        json!(expected),
        "the position is stored with the item"
    );

    // The zombie lost its lease (counter 5) and the owner moved on; the
    // zombie keeps sending its old batch while the owner writes newer ones.
    let (zombie_run, owner_run) = tokio::join!(
        async {
            for _ in 0..3 {
                send(&*zombie, 5, &batch(1)).await;
            }
        },
        async {
            for v in 3..=VERSIONS {
                send(&*owner, 8, &batch(v)).await;
            }
        }
    );
    let ((), ()) = (zombie_run, owner_run);
    assert_eq!(
        versions(&endpoint, &table).await,
        vec![VERSIONS; KEYS as usize],
        "no item went back"
    );
    assert_eq!(
        fenced_total(&table),
        3 * KEYS,
        "every zombie write was refused and counted"
    );

    // After the owner's newest write, the zombie re-sends every older batch.
    for v in (1..VERSIONS).rev() {
        send(&*zombie, 5, &batch(v)).await;
    }
    assert_eq!(
        versions(&endpoint, &table).await,
        vec![VERSIONS; KEYS as usize]
    );

    // A replay from TRIM_HORIZON by a new owner: every batch again, out of
    // order, including the newest one (equal positions are refused too).
    let replayer = sink(config, "replay");
    for v in [3, 1, VERSIONS, 2, 4] {
        send(&*replayer, 9, &batch(v)).await;
        assert!(
            versions(&endpoint, &table)
                .await
                .iter()
                .all(|&got| got == VERSIONS),
            "after replaying version {v}"
        );
    }
    assert_eq!(
        fenced_total(&table),
        3 * KEYS + (VERSIONS - 1) * KEYS + VERSIONS * KEYS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_fence_a_zombie_does_overwrite() {
    let Some(endpoint) = dynalite() else { return };
    let table = unique("unfenced");
    create_table(&client(&endpoint), &table, ("id", T::S), None, None).await;
    let config = json!({ "table": table, "endpoint": endpoint, "region": "us-east-1" });
    let owner = sink(config.clone(), "owner");
    let zombie = sink(config, "zombie");
    send(&*owner, 8, &batch(VERSIONS)).await;
    send(&*zombie, 5, &batch(1)).await;
    assert_eq!(versions(&endpoint, &table).await, vec![1; KEYS as usize]);
}
