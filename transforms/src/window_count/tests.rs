//! window_count: tumbling, sliding, lateness, idle and shard-end emission,
//! and restarts from a checkpoint without double counting.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use serde_json::{json, Value};
use shardline_api::{CheckpointLimit, OpKey, Payload, Record, Transform};

use super::*;
use crate::test_support::record_at;

/// Emitted windows as (start s, key, count).
type Rows = Vec<(i64, Value, u64)>;

/// A record at sequence `seq` with event time `t` seconds and key `k`.
fn event(seq: u64, t: i64, k: &str) -> Record {
    let mut r = record_at(seq, Payload::Json(json!({ "k": k })));
    r.event_time = Some(time_of(t * 1000));
    r
}

fn counter(options: &str) -> WindowCount {
    let table: toml::Table = options.parse().expect("test TOML");
    WindowCount::new(crate::config::parse(NAME, &table).expect("options")).expect("builds")
}

/// Feeds records as the engine does (one operation each); returns the
/// outputs as (start s, key, count).
fn feed(w: &mut WindowCount, records: Vec<Record>) -> Vec<(i64, Value, u64)> {
    let mut out = Vec::new();
    for r in records {
        w.begin_op(&OpKey::record(r.meta.position()));
        w.apply(r, &mut out).expect("applies");
    }
    rows(out)
}

fn rows(out: Vec<Record>) -> Vec<(i64, Value, u64)> {
    out.into_iter()
        .map(|r| {
            let Payload::Json(v) = r.payload else { panic!("JSON output") };
            let start = system_time_millis(r.event_time.expect("event time")) / 1000;
            (start, v.get("k").cloned().unwrap_or(Value::Null), v["count"].as_u64().expect("count"))
        })
        .collect()
}

fn end(w: &mut WindowCount) -> Vec<(i64, Value, u64)> {
    let mut out = Vec::new();
    w.on_shard_end(&mut out);
    rows(out)
}

#[test]
fn tumbling_windows_emit_when_the_clock_passes_their_end() {
    let mut w = counter("window = \"60s\"\nkey = [\"k\"]");
    let out = feed(&mut w, vec![event(1, 0, "a"), event(2, 10, "b"), event(3, 59, "a"), event(4, 60, "a")]);
    assert_eq!(out, vec![(0, json!("a"), 2), (0, json!("b"), 1)]);
    assert!(w.holds_records());
    assert_eq!(end(&mut w), vec![(60, json!("a"), 1)]);
    assert!(!w.holds_records());
}

#[test]
fn output_record_shape() {
    let mut w = counter("window = \"1m\"\nkey = [\"k\", \"missing\"]");
    let mut out = Vec::new();
    w.apply(event(1, 5, "a"), &mut out).expect("applies");
    w.on_shard_end(&mut out);
    let Payload::Json(v) = &out[0].payload else { panic!("JSON") };
    assert_eq!(
        v,
        &json!({"window_start": "1970-01-01T00:00:00Z", "window_end": "1970-01-01T00:01:00Z", "k": "a", "missing": null, "count": 1})
    );
}

#[test]
fn sliding_windows_count_a_record_in_each_window() {
    let mut w = counter("window = \"30s\"\nslide = \"10s\"");
    let mut out = feed(&mut w, vec![event(1, 25, "a"), event(2, 35, "a")]);
    out.extend(end(&mut w));
    // 25 is in [0,30), [10,40), [20,50); 35 in [10,40), [20,50), [30,60).
    assert_eq!(
        out,
        vec![(0, Value::Null, 1), (10, Value::Null, 2), (20, Value::Null, 2), (30, Value::Null, 1)]
    );
}

#[test]
fn lateness_keeps_windows_open_and_late_records_are_dropped_or_dead_lettered() {
    let mut w = counter("window = \"10s\"\nallowed_lateness = \"5s\"\non_late = \"drop\"");
    // 12 does not close [0,10) (needs 15); 3 is late but allowed.
    let out = feed(&mut w, vec![event(1, 1, "a"), event(2, 12, "a"), event(3, 3, "a")]);
    assert!(out.is_empty());
    let out = feed(&mut w, vec![event(4, 15, "a"), event(5, 4, "a")]);
    assert_eq!(out, vec![(0, Value::Null, 2)], "the record at 4s came after [0,10) closed: dropped");
    let mut w = counter("window = \"10s\"\non_late = \"dead_letter\"");
    feed(&mut w, vec![event(1, 1, "a"), event(2, 10, "a")]);
    let mut out = Vec::new();
    let err = w.apply(event(3, 2, "a"), &mut out).expect_err("late");
    assert!(err.reason.contains("late record: event time 1970-01-01T00:00:02Z (record 3/0)"), "{}", err.reason);
    assert_eq!(end(&mut w), vec![(10, Value::Null, 1)], "the late record changed nothing");
}

#[test]
fn idle_ticks_advance_event_time_by_the_idle_wall_time() {
    let mut w = counter("window = \"10s\"");
    feed(&mut w, vec![event(1, 1, "a")]);
    let mut out = Vec::new();
    // Wall-clock time far from the data's own time (a backfill): idle time
    // moves the event clock forward from the last event, not to "now".
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100_000);
    w.on_tick(now, &mut out);
    assert!(out.is_empty(), "the first tick after a record only notes activity");
    w.on_tick(now + Duration::from_secs(5), &mut out);
    assert!(out.is_empty(), "event clock at 1s + 5s idle: [0,10) still open");
    w.on_tick(now + Duration::from_secs(10), &mut out);
    assert_eq!(rows(out), vec![(0, Value::Null, 1)], "event clock at 11s closes [0,10)");
    let mut out = Vec::new();
    assert!(w.apply(event(2, 12, "a"), &mut out).is_ok(), "a record after the idle close, in the data's time, is not late");
    let mut w = counter("window = \"10s\"\nemit_when_idle = false");
    feed(&mut w, vec![event(1, 1, "a")]);
    let mut out = Vec::new();
    w.on_tick(now, &mut out);
    w.on_tick(now, &mut out);
    assert!(out.is_empty());
}

#[test]
fn checkpoint_stays_below_records_of_unemitted_windows() {
    let mut w = counter("window = \"10s\"");
    feed(&mut w, vec![event(1, 1, "a"), event(2, 2, "a")]);
    let op = |s: u64| OpKey::record(record_at(s, Payload::Json(Value::Null)).meta.position());
    let pos = |s: u64| record_at(s, Payload::Json(Value::Null)).meta.position();
    // Record 1 opened the only window and nothing came before it.
    assert_eq!(w.checkpoint_limit(&op(2)), CheckpointLimit::Nothing);
    feed(&mut w, vec![event(3, 11, "a")]);
    // Before record 3's outputs (window [0,10)) are delivered: still held.
    assert_eq!(w.checkpoint_limit(&op(2)), CheckpointLimit::Nothing);
    // After: record 3 holds [10,20); the checkpoint may reach record 2.
    assert_eq!(w.checkpoint_limit(&op(3)), CheckpointLimit::AtMost(pos(2)));
    let state = w.checkpoint_state().expect("state");
    assert_eq!(state["emitted_through"], json!(11_000));
    assert_eq!(state["through"], json!({"sequence": "3", "sub_sequence": 0}));
}

/// Runs `events` (seq i+1) through a fresh counter, with checkpoints taken
/// after operation `checkpoint_after` delivered; then "crashes" after
/// `crash_after` records, restarts from the checkpoint with its state, and
/// replays. Returns (outputs of the delivered operations before the
/// checkpoint + outputs after the restart, outputs of an uninterrupted run).
fn crash_and_replay(
    options: &str,
    events: &[(i64, u8)],
    checkpoint_after: usize,
    crash_after: usize,
) -> (Rows, Rows) {
    let make = |i: usize| event(i as u64 + 1, events[i].0, &format!("k{}", events[i].1));
    // Uninterrupted run.
    let mut full = counter(options);
    let mut expected = feed(&mut full, (0..events.len()).map(make).collect());
    expected.extend(end(&mut full));

    // First worker: outputs per operation, a checkpoint once operation
    // `checkpoint_after` (1-based) is delivered.
    let mut first = counter(options);
    let mut outputs_by_op = Vec::new();
    let mut checkpoint: Option<(Option<u64>, Value, usize)> = None; // (position, state, done ops)
    for i in 0..crash_after.min(events.len()) {
        let r = make(i);
        first.begin_op(&OpKey::record(r.meta.position()));
        let mut out = Vec::new();
        first.apply(r, &mut out).expect("applies");
        outputs_by_op.push(rows(out));
        if i + 1 == checkpoint_after {
            let done = OpKey::record(make(i).meta.position());
            let position = match first.checkpoint_limit(&done) {
                CheckpointLimit::Any => Some(i as u64 + 1),
                CheckpointLimit::AtMost(p) => Some(p.sequence.as_str().parse::<u64>().expect("digits").min(i as u64 + 1)),
                CheckpointLimit::Nothing => None,
            };
            if position.is_some() {
                checkpoint = Some((position, first.checkpoint_state().expect("state"), i + 1));
            }
        }
    }
    // Second worker: resumes after the checkpoint (or from the start).
    let mut second = counter(options);
    let (resume_from, delivered_ops) = match &checkpoint {
        Some((Some(p), state, done)) => {
            second.restore_state(state).expect("restores");
            (*p as usize, *done)
        }
        _ => (0, 0),
    };
    let mut got: Vec<(i64, Value, u64)> = outputs_by_op[..delivered_ops].iter().flatten().cloned().collect();
    got.extend(feed(&mut second, (resume_from..events.len()).map(make).collect()));
    got.extend(end(&mut second));
    (got, expected)
}

#[test]
fn restart_from_a_checkpoint_does_not_double_count() {
    let events = [(1, 0), (2, 1), (11, 0), (3, 1), (12, 0), (25, 1), (26, 0), (40, 0)];
    for checkpoint_after in 1..=events.len() {
        for crash_after in checkpoint_after..=events.len() {
            for options in ["window = \"10s\"\nkey = [\"k\"]\non_late = \"drop\"", "window = \"10s\"\nkey = [\"k\"]\nallowed_lateness = \"10s\"\non_late = \"drop\"", "window = \"20s\"\nslide = \"5s\"\nkey = [\"k\"]\non_late = \"drop\""] {
                let (got, expected) = crash_and_replay(options, &events, checkpoint_after, crash_after);
                assert_eq!(got, expected, "{options}; checkpoint after {checkpoint_after}, crash after {crash_after}");
            }
        }
    }
}

#[test]
fn state_from_another_window_size_is_refused() {
    let mut w = counter("window = \"10s\"");
    let err = w.restore_state(&json!({"window_ms": 5000, "slide_ms": 5000})).expect_err("mismatch");
    assert!(err.reason.contains("window"), "{}", err.reason);
}

#[test]
fn bad_options_name_their_key() {
    let key = |options: &str| crate::test_support::build_error(NAME, options).key().map(str::to_owned);
    assert_eq!(key("window = \"0s\"").as_deref(), Some("window"));
    assert_eq!(key("window = \"10s\"\nslide = \"3s\"").as_deref(), Some("slide"));
    assert_eq!(key("window = \"10s\"\nslide = \"20s\"").as_deref(), Some("slide"));
    assert_eq!(key("window = \"10s\"\nkey = [\"a..b\"]").as_deref(), Some("key"));
    assert_eq!(key("window = \"10s\"\non_late = \"keep\"").as_deref(), Some("on_late"));
    assert_eq!(key("slide = \"10s\"").as_deref(), Some("window"));
}

proptest! {
    /// Any event times, any checkpoint and crash point: what was delivered
    /// before the checkpoint plus what the restarted worker emits equals an
    /// uninterrupted run — every (window, key) once, with the same count.
    #[test]
    fn restart_anywhere_equals_an_uninterrupted_run(
        events in proptest::collection::vec((0i64..120, 0u8..3), 1..40),
        checkpoint_at in 0usize..40,
        crash_extra in 0usize..40,
        shape in 0usize..3,
    ) {
        let options = ["window = \"10s\"\nkey = [\"k\"]\non_late = \"drop\"", "window = \"10s\"\nkey = [\"k\"]\nallowed_lateness = \"15s\"\non_late = \"drop\"", "window = \"20s\"\nslide = \"5s\"\nkey = [\"k\"]\nallowed_lateness = \"3s\"\non_late = \"drop\""][shape];
        let checkpoint_after = 1 + checkpoint_at % events.len();
        let crash_after = (checkpoint_after + crash_extra).min(events.len());
        let (got, expected) = crash_and_replay(options, &events, checkpoint_after, crash_after);
        prop_assert_eq!(got, expected);
    }
}
