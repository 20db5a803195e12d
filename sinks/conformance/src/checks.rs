//! The checks [`run`](crate::run) runs, in order.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use shardline_api::{RecordStatus, Sink};

use crate::support::{payload, position, record, through_engine, with_metrics, Observations, RepairAfterRetriable, metric};
use crate::{Scope, SinkUnderTest};

pub(crate) enum Outcome {
    Passed,
    Skipped(String),
}

pub(crate) struct Check {
    pub(crate) name: &'static str,
    pub(crate) run: fn(&dyn SinkUnderTest) -> Outcome,
}

pub(crate) const ALL: &[Check] = &[
    Check { name: "validate rejects bad config without I/O", run: validate_without_io },
    Check { name: "delivered records are acknowledged", run: delivered },
    Check { name: "retriable failures are retried", run: retriable },
    Check { name: "rejected records are dead-lettered", run: rejected },
];

/// A fresh scope in a temporary directory (kept alive by the returned guard).
fn scope(check: &str) -> (tempfile::TempDir, Scope) {
    let tmp = tempfile::Builder::new().prefix("shardline-conformance-").tempdir().expect("a temporary directory");
    let name = format!("{}-{}", check, std::process::id());
    let scope = Scope { dir: tmp.path().join("destination"), name };
    (tmp, scope)
}

fn entries_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned())).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn sorted(payloads: impl IntoIterator<Item = Bytes>) -> Vec<String> {
    let mut v: Vec<String> = payloads.into_iter().map(|b| String::from_utf8_lossy(&b).into_owned()).collect();
    v.sort();
    v
}

fn validate_without_io(sut: &dyn SinkUnderTest) -> Outcome {
    let kind = sut.sink_type();
    let (tmp, scope) = scope("validate");
    let before = entries_in(tmp.path());
    let good = sut.config(&scope);
    if let Err((key, message)) = sut.validate(&good) {
        panic!("[{kind}] validate rejects bad config without I/O: the good config was refused: {key:?}: {message}");
    }
    let invalid = sut.invalid_configs(&scope);
    assert!(!invalid.is_empty(), "[{kind}] validate rejects bad config without I/O: the sink offers no invalid config to test");
    for case in invalid {
        match sut.validate(&case.config) {
            Ok(()) => panic!("[{kind}] validate rejects bad config without I/O: accepted {}", case.config),
            Err((key, message)) => {
                assert!(!message.trim().is_empty(), "[{kind}] validate: empty message for {}", case.config);
                if let Some(expected) = &case.key {
                    assert_eq!(
                        key.as_deref(),
                        Some(expected.as_str()),
                        "[{kind}] validate must name the key at fault for {} (message: {message})",
                        case.config
                    );
                }
            }
        }
    }
    let sink = sut.build(&good, &scope.name).unwrap_or_else(|e| panic!("[{kind}] build: {e}"));
    drop(sink);
    let after = entries_in(tmp.path());
    assert_eq!(before, after, "[{kind}] validating and building the sink must not touch the destination ({})", scope.dir.display());
    Outcome::Passed
}

fn delivered(sut: &dyn SinkUnderTest) -> Outcome {
    let kind = sut.sink_type();
    let (_tmp, scope) = scope("delivered");
    let config = sut.config(&scope);
    let sink = sut.build(&config, &scope.name).unwrap_or_else(|e| panic!("[{kind}] build: {e}"));
    let pipeline = scope.name.clone();
    let total: u64 = 28;
    let ((), metrics) = with_metrics(async {
        sink.healthcheck().await.unwrap_or_else(|e| panic!("[{kind}] healthcheck on a usable destination: {e}"));
        // Directly: one status per record.
        let direct: Vec<_> = (0..3).map(|i| record(i, payload(&scope, i))).collect();
        let statuses = sink.send(&direct).await.unwrap_or_else(|e| panic!("[{kind}] send: {e}"));
        assert_eq!(statuses, vec![RecordStatus::Delivered; 3], "[{kind}] send must answer Delivered for each record");
        // Through the engine, in batches of 10.
        let records: Vec<_> = (3..total).map(|i| record(i, payload(&scope, i))).collect();
        let run = through_engine(&pipeline, sink.clone(), records, 10).await;
        assert!(run.dead_letters.is_empty(), "[{kind}] nothing may be dead-lettered: {:?}", run.dead_letters);
        assert_eq!(run.stats.records_delivered, total - 3, "[{kind}] delivered count");
        assert_eq!(run.checkpoint, Some(position(total - 1)), "[{kind}] the checkpoint reaches the last record");
        sink.flush().await.unwrap_or_else(|e| panic!("[{kind}] flush: {e}"));
        sink.close().await.unwrap_or_else(|e| panic!("[{kind}] close: {e}"));
        let held = sut.read_back(&scope).await;
        assert_eq!(sorted(held), sorted((0..total).map(|i| payload(&scope, i))), "[{kind}] the destination holds every payload, once");
    });
    let delivered = metric(&metrics, "shardline_records_delivered_total", &[("pipeline", &pipeline)]);
    assert_eq!(delivered, Some((total - 3) as f64), "[{kind}] metrics: shardline_records_delivered_total\n{metrics}");
    for name in sut.expected_metrics() {
        assert!(metrics.contains(&name), "[{kind}] metrics: {name} missing\n{metrics}");
    }
    Outcome::Passed
}

fn retriable(sut: &dyn SinkUnderTest) -> Outcome {
    let kind = sut.sink_type();
    let (_tmp, scope) = scope("retriable");
    let config = sut.config(&scope);
    let inner = sut.build(&config, &scope.name).unwrap_or_else(|e| panic!("[{kind}] build: {e}"));
    let pipeline = scope.name.clone();
    let seen = Arc::new(Observations::default());
    let (supported, metrics) = with_metrics(async {
        if !sut.make_unavailable(&scope).await {
            return false;
        }
        let (repair, mut requests) = tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<()>>(1);
        let sink: Arc<dyn Sink> = Arc::new(RepairAfterRetriable { inner: inner.clone(), repair, seen: seen.clone() });
        let records: Vec<_> = (0..5).map(|i| record(i, payload(&scope, i))).collect();
        let repairer = async {
            while let Some(done) = requests.recv().await {
                sut.make_available(&scope).await;
                let _ = done.send(());
            }
        };
        let (run, ()) = tokio::join!(through_engine(&pipeline, sink, records, 10), repairer);
        if let Ok(Some(message)) = seen.permanent_answer.lock().map(|m| m.clone()) {
            panic!("[{kind}] an unavailable destination must fail retriably, the sink answered: {message}");
        }
        assert!(seen.retriable_answers.load(Ordering::SeqCst) >= 1, "[{kind}] the unavailable destination did not fail the send");
        assert!(run.dead_letters.is_empty(), "[{kind}] retried records must not be dead-lettered: {:?}", run.dead_letters);
        assert!(run.stats.sink_retries >= 1, "[{kind}] the engine retried nothing");
        assert_eq!(run.stats.records_delivered, 5, "[{kind}] every record is delivered once the destination is back");
        assert_eq!(run.checkpoint, Some(position(4)), "[{kind}] the checkpoint reaches the last record");
        inner.flush().await.unwrap_or_else(|e| panic!("[{kind}] flush: {e}"));
        let held = sut.read_back(&scope).await;
        assert_eq!(sorted(held), sorted((0..5).map(|i| payload(&scope, i))), "[{kind}] the destination holds every payload, once");
        true
    });
    if !supported {
        return Outcome::Skipped("the sink cannot make its destination unavailable".to_owned());
    }
    let retries = metric(&metrics, "shardline_sink_retries_total", &[("pipeline", &pipeline)]).unwrap_or(0.0);
    assert!(retries >= 1.0, "[{kind}] metrics: shardline_sink_retries_total\n{metrics}");
    Outcome::Passed
}

fn rejected(sut: &dyn SinkUnderTest) -> Outcome {
    let kind = sut.sink_type();
    let Some(bad) = sut.rejected_payload() else {
        return Outcome::Skipped("the sink rejects no record".to_owned());
    };
    let (_tmp, scope) = scope("rejected");
    let config = sut.config(&scope);
    let sink = sut.build(&config, &scope.name).unwrap_or_else(|e| panic!("[{kind}] build: {e}"));
    let pipeline = scope.name.clone();
    let ((), metrics) = with_metrics(async {
        let records = vec![record(0, payload(&scope, 0)), record(1, bad.clone()), record(2, payload(&scope, 2))];
        let run = through_engine(&pipeline, sink.clone(), records, 10).await;
        assert_eq!(run.dead_letters.len(), 1, "[{kind}] exactly the rejected record is dead-lettered: {:?}", run.dead_letters);
        let entry = &run.dead_letters[0];
        assert_eq!(entry.record.payload.to_bytes(), bad, "[{kind}] the dead letter is the rejected record");
        assert_eq!(entry.stage, "sink", "[{kind}] dead-letter stage");
        assert!(!entry.reason.trim().is_empty(), "[{kind}] the dead letter carries the sink's reason");
        assert_eq!(run.stats.records_delivered, 2, "[{kind}] the rejected record's neighbours are delivered");
        assert_eq!(run.checkpoint, Some(position(2)), "[{kind}] the checkpoint passes the dead-lettered record");
        sink.flush().await.unwrap_or_else(|e| panic!("[{kind}] flush: {e}"));
        let held: BTreeSet<String> = sorted(sut.read_back(&scope).await).into_iter().collect();
        let expected: BTreeSet<String> = sorted([payload(&scope, 0), payload(&scope, 2)]).into_iter().collect();
        assert_eq!(held, expected, "[{kind}] the destination holds the delivered records only");
    });
    let dead = metric(&metrics, "shardline_records_dead_lettered_total", &[("pipeline", &pipeline), ("stage", "sink")]);
    assert_eq!(dead, Some(1.0), "[{kind}] metrics: shardline_records_dead_lettered_total\n{metrics}");
    Outcome::Passed
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_file_sink_conforms() {
        let report = crate::run(&crate::FileSinkUnderTest);
        println!("{report}");
        assert_eq!(report.passed.len(), 3, "{report}");
        assert_eq!(report.skipped.len(), 1, "the file sink rejects no record: {report}");
    }

    #[test]
    fn metric_lookup_matches_name_and_labels() {
        let text = "# TYPE a_total counter\na_total{pipeline=\"p\",stage=\"sink\"} 3\na_total_other{pipeline=\"p\"} 9\n";
        assert_eq!(crate::support::metric(text, "a_total", &[("pipeline", "p")]), Some(3.0));
        assert_eq!(crate::support::metric(text, "a_total", &[("stage", "x")]), None);
    }
}
