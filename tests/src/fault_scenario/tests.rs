//! The rules of the fault test, on hand-made histories.

use super::*;

#[test]
fn timestamps_parse_as_utc() {
    let t = parse_timestamp("1970-01-02T00:00:01.5Z").expect("parses");
    assert_eq!(t, UNIX_EPOCH + Duration::from_millis(86_401_500));
    let t = parse_timestamp("2026-12-07T01:23:37.123456Z").expect("parses");
    assert_eq!(t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).ok(), Some(1_796_606_617));
    assert!(parse_timestamp("yesterday").is_none());
}

fn produced(shard: &str, sequence: &str) -> HashMap<String, Produced> {
    HashMap::from([("k-001".to_owned(), Produced { key: "k".into(), n: 1, shard: shard.into(), sequence: sequence.into() })])
}

#[test]
fn a_duplicate_needs_a_handover_after_an_uncheckpointed_delivery() {
    let t0 = UNIX_EPOCH + Duration::from_secs(1000);
    let at = |s: f64| if s >= 0.0 { t0 + Duration::from_secs_f64(s) } else { t0 - Duration::from_secs_f64(-s) };
    let deliveries = HashMap::from([("k-001".to_owned(), vec![(at(0.0), "a".to_owned()), (at(5.0), "b".to_owned())])]);
    let rule = DuplicateRule { checkpoint_interval: Duration::from_millis(500), slack: Duration::from_secs(1), sink_faults: Vec::new(), in_flight: Duration::from_secs(5) };
    let handover = |start: &str, h: f64, end: f64| Handover { shard: "s-1".into(), at: at(h), start: start.into(), previous_end: at(end) };
    // Killed 0.3 s after the delivery, taken over from an older checkpoint.
    let (dups, bad) = check_duplicates(&deliveries, &produced("s-1", "20"), &[handover("10/0", 4.0, 0.3)], &rule);
    assert_eq!((dups, bad.len()), (1, 0), "{bad:?}");
    // No handover: unexplained.
    let (_, bad) = check_duplicates(&deliveries, &produced("s-1", "20"), &[], &rule);
    assert_eq!(bad.len(), 1);
    // The new owner started past the record: not a re-read.
    let (_, bad) = check_duplicates(&deliveries, &produced("s-1", "20"), &[handover("30/0", 4.0, 0.3)], &rule);
    assert_eq!(bad.len(), 1);
    // The earlier delivery was long before the previous owner stopped:
    // it should have been checkpointed.
    let (_, bad) = check_duplicates(&deliveries, &produced("s-1", "20"), &[handover("10/0", 4.0, 3.0)], &rule);
    assert_eq!(bad.len(), 1);
    // A handover of another shard explains nothing.
    let (_, bad) = check_duplicates(&deliveries, &produced("s-2", "20"), &[handover("10/0", 4.0, 0.3)], &rule);
    assert_eq!(bad.len(), 1);
    // The previous owner stopped 2 s before its write landed: late...
    let (_, bad) = check_duplicates(&deliveries, &produced("s-1", "20"), &[handover("10/0", 4.0, -2.0)], &rule);
    assert_eq!(bad.len(), 1);
    // ...unless it stopped during a sink outage that ended just before.
    let outage = DuplicateRule { sink_faults: vec![(at(-10.0), at(-1.0))], ..rule.clone() };
    let (_, bad) = check_duplicates(&deliveries, &produced("s-1", "20"), &[handover("10/0", 4.0, -2.0)], &outage);
    assert!(bad.is_empty(), "{bad:?}");
}

#[test]
fn first_deliveries_out_of_order_are_reported() {
    let mut produced = HashMap::new();
    for n in 0..3 {
        produced.insert(format!("k-{n:03}"), Produced { key: "k".into(), n, shard: "s".into(), sequence: format!("{}", n + 1) });
    }
    assert!(check_first_delivery_order(["k-000", "k-001", "k-000", "k-002"], &produced).is_empty());
    assert_eq!(check_first_delivery_order(["k-000", "k-002", "k-001"], &produced).len(), 1);
}
fn lease(key: &str, owner: Option<&str>, checkpoint: &str, parents: &[&str]) -> Lease {
    Lease {
        lease_key: key.into(),
        lease_owner: owner.map(str::to_owned),
        lease_counter: Some(1),
        checkpoint: Some(checkpoint.into()),
        checkpoint_sub_sequence_number: Some(0),
        owner_switches_since_checkpoint: None,
        parent_shard_ids: parents.iter().map(|p| p.to_string()).collect(),
        raw: HashMap::new(),
    }
}

#[test]
fn the_lease_history_catches_a_checkpoint_going_back() {
    let (mut history, mut last) = (LeaseHistory::default(), HashMap::new());
    for (checkpoint, owner) in [("TRIM_HORIZON", "a"), ("5", "a"), ("7", "b"), ("6", "b"), ("TRIM_HORIZON", "c"), ("SHARD_END", "c")] {
        observe(&mut history, &mut last, &lease("s", Some(owner), checkpoint, &[]));
    }
    // 7 -> 6, and the re-created TRIM_HORIZON (still below 7).
    assert_eq!(history.regressions.len(), 2, "{:?}", history.regressions);
    assert!(history.shard_end.contains("s"));
    assert_eq!(history.owner_changes.get("s"), Some(&2));
}

#[test]
fn takeover_waits_for_the_lease_and_for_the_read() {
    let t0 = UNIX_EPOCH + Duration::from_secs(1000);
    let at = |s: u64| t0 + Duration::from_secs(s);
    let kill = Kill {
        at: t0,
        worker: "a".into(),
        leases: vec![lease("p", Some("a"), "5", &[]), lease("c", Some("a"), "TRIM_HORIZON", &["p"]), lease("done", Some("a"), "SHARD_END", &[])],
    };
    let acquired = |shard: &str, s: u64| LeaseEvent { at: at(s), worker: "b".into(), message: "acquired lease".into(), shard: shard.into(), previous_owner: "a".into(), checkpoint: String::new() };
    let events = vec![acquired("p", 4), acquired("c", 5)];
    // "p" is read again at 6 s; "c" waits for its parent, its lease is enough.
    let iterators = vec![(at(6), "p".to_owned())];
    assert_eq!(takeover_time(&kill, &events, &iterators), Some(Ok(6.0)));
    assert!(matches!(takeover_time(&kill, &events, &[]), Some(Err(missing)) if missing.starts_with("p ")));
    assert!(matches!(takeover_time(&kill, &events[1..], &iterators), Some(Err(_))));
    let idle = Kill { leases: vec![lease("p", Some("x"), "5", &[])], ..kill.clone() };
    assert_eq!(takeover_time(&idle, &events, &iterators), None);
}
