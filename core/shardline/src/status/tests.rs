//! Unit tests of the status view: shard states, owner-matched metrics,
//! rates, and the text and JSON forms.

use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use shardline_api::{Checkpoint, Position, SequenceNumber};
use shardline_lease::Lease;

use super::*;
use crate::config::load_str;

const SEQ: &str = "49590338271490256608559692538361571095921575989136588898";

fn config() -> PipelineConfig {
    let text = "name = \"orders\"\n[source]\ntype = \"kinesis\"\nstream = \"clicks\"\nregion = \"us-east-1\"\n[leases]\nstate_dir = \"/tmp/status-test\"\n[sink]\ntype = \"stdout\"\n";
    load_str(text, Path::new("orders.toml")).expect("a valid pipeline")
}

fn lease(key: &str, owner: Option<&str>, checkpoint: Checkpoint, parents: &[&str], children: &[&str]) -> Lease {
    let mut lease = Lease::new(key, checkpoint);
    lease.lease_owner = owner.map(str::to_owned);
    lease.lease_counter = 7;
    lease.parent_shard_ids = parents.iter().map(|p| (*p).to_owned()).collect();
    lease.child_shard_ids = children.iter().map(|c| (*c).to_owned()).collect();
    lease
}

fn at(seq: &str, sub: u64) -> Checkpoint {
    Checkpoint::At(Position::new(SequenceNumber::parse(seq).expect("a sequence number"), sub))
}

fn exposition(worker: &str, received: &[(&str, f64)], lag: &[(&str, f64)]) -> String {
    let mut text = format!("# TYPE shardline_leases_held gauge\nshardline_leases_held{{pipeline=\"orders\",worker_id=\"{worker}\"}} 2\n");
    for (shard, n) in received {
        text.push_str(&format!("shardline_records_received_total{{pipeline=\"orders\",stream=\"clicks\",shard_id=\"{shard}\"}} {n}\n"));
        // Another pipeline's shard of the same id is not this one's.
        text.push_str(&format!("shardline_records_received_total{{pipeline=\"other\",stream=\"x\",shard_id=\"{shard}\"}} 999999\n"));
    }
    for (shard, ms) in lag {
        text.push_str(&format!("shardline_millis_behind_latest{{pipeline=\"orders\",stream=\"clicks\",shard_id=\"{shard}\"}} {ms}\n"));
    }
    text
}

/// A source that was read twice, `seconds` apart.
fn source(url: &str, first: String, second: String, seconds: u64) -> MetricsSource {
    let mut source = MetricsSource::new(url, false);
    let t0 = Instant::now();
    source.record("orders", t0, Ok(first));
    source.record("orders", t0 + Duration::from_secs(seconds), Ok(second));
    source
}

#[test]
fn shard_states_follow_checkpoints_and_parents() {
    let leases = vec![
        lease("shardId-000000000000", None, Checkpoint::ShardEnd, &[], &["shardId-000000000002", "shardId-000000000003"]),
        lease("shardId-000000000001", Some("w-a"), at(SEQ, 0), &[], &[]),
        lease("shardId-000000000002", Some("w-b"), Checkpoint::TrimHorizon, &["shardId-000000000000"], &[]),
        // Its parent is still open: it waits.
        lease("shardId-000000000004", Some("w-b"), Checkpoint::TrimHorizon, &["shardId-000000000001"], &[]),
        // Its parent's lease was cleaned up after it ended.
        lease("shardId-000000000005", Some("w-a"), at(SEQ, 3), &["shardId-000000000099"], &[]),
    ];
    let report = build_report(&config(), &leases, &[], UNIX_EPOCH);
    let states: Vec<(&str, &str)> = report.shards.iter().map(|s| (s.shard_id.as_str(), s.state)).collect();
    assert_eq!(
        states,
        vec![
            ("shardId-000000000000", "ended"),
            ("shardId-000000000001", "open"),
            ("shardId-000000000002", "open"),
            ("shardId-000000000004", "waiting"),
            ("shardId-000000000005", "open"),
        ]
    );
    let workers: Vec<(&str, usize)> = report.workers.iter().map(|w| (w.worker_id.as_str(), w.leases)).collect();
    assert_eq!(workers, vec![("w-a", 2), ("w-b", 2)]);
    assert_eq!((report.shards[4].checkpoint.as_str(), report.shards[4].checkpoint_sub_sequence_number), (SEQ, 3));
    assert_eq!(report.shards[0].checkpoint, "SHARD_END");
    assert!(report.shards.iter().all(|s| s.millis_behind_latest.is_none() && s.records_per_second.is_none()), "no metrics given");
}

#[test]
fn metrics_are_taken_from_the_owner_and_rates_from_two_reads() {
    let leases = vec![
        lease("shardId-000000000000", Some("w-a"), at(SEQ, 0), &[], &[]),
        lease("shardId-000000000001", Some("w-b"), at(SEQ, 0), &[], &[]),
        lease("shardId-000000000002", None, Checkpoint::TrimHorizon, &[], &[]),
    ];
    // w-a read shard 1 before w-b took it: its stale figures must not show.
    let a = source(
        "127.0.0.1:1",
        exposition("w-a", &[("shardId-000000000000", 100.0), ("shardId-000000000001", 50.0)], &[]),
        exposition("w-a", &[("shardId-000000000000", 300.0), ("shardId-000000000001", 50.0)], &[("shardId-000000000000", 1200.0), ("shardId-000000000001", 99999.0)]),
        2,
    );
    let b = source(
        "http://127.0.0.1:2/metrics",
        exposition("w-b", &[("shardId-000000000001", 0.0)], &[]),
        exposition("w-b", &[("shardId-000000000001", 40.0)], &[("shardId-000000000001", 0.0)]),
        2,
    );
    let report = build_report(&config(), &leases, &[a, b], UNIX_EPOCH);
    let figures: Vec<(Option<f64>, Option<f64>)> = report.shards.iter().map(|s| (s.millis_behind_latest, s.records_per_second)).collect();
    assert_eq!(figures, vec![(Some(1200.0), Some(100.0)), (Some(0.0), Some(20.0)), (None, None)]);
    assert_eq!(report.workers[0].metrics.as_deref(), Some("http://127.0.0.1:1/metrics"));
    assert_eq!((report.workers[0].records_per_second, report.workers[0].max_millis_behind_latest), (Some(100.0), Some(1200.0)));
    assert_eq!(report.metrics.len(), 2);
    assert_eq!(report.metrics[1].worker_ids, vec!["w-b".to_owned()]);
}

#[test]
fn an_unanswered_address_is_shown_when_given_and_not_when_discovered() {
    let refused = || Err(ScrapeError::Status { url: "u".into(), status: 503 });
    let mut given = MetricsSource::new("127.0.0.1:3", false);
    given.record("orders", Instant::now(), refused());
    let mut discovered = MetricsSource::new(DISCOVERED_METRICS, true);
    discovered.record("orders", Instant::now(), refused());
    let report = build_report(&config(), &[], &[given, discovered], UNIX_EPOCH);
    assert_eq!(report.metrics.len(), 1, "{:?}", report.metrics);
    assert_eq!(report.metrics[0].error.as_deref(), Some("u: answered HTTP 503"));
    let text = render_text(&report);
    assert!(text.contains("metrics http://127.0.0.1:3/metrics: u: answered HTTP 503"), "{text}");
    assert!(text.contains("no leases yet"), "{text}");
}

#[test]
fn text_lines_up_columns_and_shortens_sequence_numbers() {
    let leases = vec![
        lease("shardId-000000000000", None, Checkpoint::ShardEnd, &[], &["shardId-000000000002"]),
        lease("shardId-000000000001", Some("worker-with-a-long-id"), at(SEQ, 2), &[], &[]),
        lease("shardId-000000000002", Some("w"), Checkpoint::TrimHorizon, &["shardId-000000000001"], &[]),
    ];
    let text = render_text(&build_report(&config(), &leases, &[], UNIX_EPOCH + Duration::from_secs(1_765_000_000)));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("pipeline orders · stream clicks · lease table orders (embedded store in "), "{text}");
    assert!(lines[0].ends_with("3 shards, 2 workers · 2025-12-06T05:46:40Z"), "{text}");
    assert!(lines[1].starts_with("SHARD "), "{text}");
    let column = lines[1].find("OWNER").expect("an OWNER column");
    assert!(lines[2].contains("SHARD_END") && lines[2].contains("ended → shardId-000000000002"), "{text}");
    assert!(lines[3].contains(&format!("…{}/2", &SEQ[SEQ.len() - 12..])), "{text}");
    assert!(lines[4].contains("waiting for shardId-000000000001"), "{text}");
    // Every row starts its OWNER cell in the header's column.
    for line in &lines[2..5] {
        let owner_start = line[column..].split_whitespace().next().unwrap_or("");
        assert!(["-", "worker-with-a-long-id", "w"].contains(&owner_start), "{line:?} in\n{text}");
    }
    assert!(text.contains("\nWORKER "), "{text}");
}

#[test]
fn json_has_every_field_for_scripts() {
    let leases = vec![lease("shardId-000000000001", Some("w-a"), at(SEQ, 0), &[], &[])];
    let report = build_report(&config(), &leases, &[], UNIX_EPOCH);
    let value = serde_json::to_value(&report).expect("serialise");
    assert_eq!(value["pipeline"], "orders");
    assert_eq!(value["shards"][0]["checkpoint"], SEQ);
    assert_eq!(value["shards"][0]["owner"], "w-a");
    assert_eq!(value["shards"][0]["lease_counter"], 7);
    assert_eq!(value["shards"][0]["state"], "open");
    assert!(value["shards"][0]["millis_behind_latest"].is_null());
    assert_eq!(value["workers"][0]["leases"], 1);
}
