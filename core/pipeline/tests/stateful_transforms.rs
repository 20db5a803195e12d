//! `ShardPipeline` with a stateful transform (`window_count`): the
//! checkpoint never passes a record of a window not yet emitted, idle ticks
//! emit windows, `finish` emits everything at shard end, and the saved
//! state makes a restarted pipeline skip windows already emitted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use shardline_api::{
    ByteSize, HumanDuration, Position, Record, RecordMeta, RecordStatus, SequenceNumber, Sink, SinkError, Transform,
};
use shardline_pipeline::{BufferConfig, DeadLetter, DeadLetterEntry, DeliveryConfig, ShardContext, ShardPipeline};
use tokio::time::Instant;

fn pos(i: u64) -> Position {
    Position::new(SequenceNumber::parse(&(1000 + i).to_string()).expect("digits"), 0)
}

/// Record `i` arriving `t` seconds after the epoch (its event time).
fn record(i: u64, t: u64) -> Record {
    let meta = RecordMeta {
        stream: Arc::from("stream"),
        shard_id: Arc::from("shardId-000000000000"),
        sequence_number: pos(i).sequence,
        sub_sequence_number: 0,
        partition_key: "pk".to_owned(),
        explicit_hash_key: None,
        arrival_time: SystemTime::UNIX_EPOCH + Duration::from_secs(t),
        aggregated: false,
    };
    Record::new(Bytes::from_static(b"{\"page\":\"/a\"}"), Arc::new(meta))
}

#[derive(Default)]
struct CollectingSink {
    delivered: Mutex<Vec<String>>,
}

#[async_trait]
impl Sink for CollectingSink {
    async fn healthcheck(&self) -> Result<(), SinkError> {
        Ok(())
    }
    async fn send(&self, batch: &[Record]) -> Result<Vec<RecordStatus>, SinkError> {
        let mut delivered = self.delivered.lock().expect("lock");
        for r in batch {
            delivered.push(String::from_utf8_lossy(&r.payload.to_bytes()).into_owned());
        }
        Ok(vec![RecordStatus::Delivered; batch.len()])
    }
}

struct NoDeadLetters;

#[async_trait]
impl DeadLetter for NoDeadLetters {
    async fn write(&self, entries: &[DeadLetterEntry]) -> Result<(), SinkError> {
        panic!("unexpected dead letters: {:?}", entries.iter().map(|e| &e.reason).collect::<Vec<_>>());
    }
}

fn transforms() -> Vec<Box<dyn Transform>> {
    let build = |name: &str, options: &str| {
        shardline_transforms::build(name, &options.parse::<toml::Table>().expect("TOML")).expect("builds")
    };
    vec![build("parse_json", ""), build("window_count", "window = \"10s\"\nkey = [\"page\"]")]
}

fn pipeline(sink: Arc<CollectingSink>) -> ShardPipeline {
    let ctx = ShardContext {
        pipeline: Arc::from("counts"),
        stream: Arc::from("stream"),
        shard_id: Arc::from("shardId-000000000000"),
    };
    let buffer = BufferConfig { max_records: 1, max_bytes: ByteSize(1 << 20), max_age: HumanDuration::from_secs(5) };
    ShardPipeline::new(ctx, transforms(), buffer, DeliveryConfig::default(), sink, Arc::new(NoDeadLetters))
}

async fn drive_until(p: &mut ShardPipeline, what: &str, mut done: impl FnMut(&ShardPipeline) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3600);
    while !done(p) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        assert!(p.wants_events(), "pipeline idle before {what}");
        p.next_event().await;
    }
}

fn window(start: &str, end: &str, count: u64) -> String {
    // serde_json objects keep keys sorted.
    format!("{{\"count\":{count},\"page\":\"/a\",\"window_end\":\"{end}\",\"window_start\":\"{start}\"}}")
}

#[tokio::test(start_paused = true)]
async fn checkpoint_waits_for_windows_and_idle_ticks_emit_them() {
    let sink = Arc::new(CollectingSink::default());
    let mut p = pipeline(sink.clone());
    p.push(vec![record(0, 1), record(1, 2)]);
    assert_eq!(p.outstanding(), 0, "both records are held, not in flight");
    assert_eq!(p.checkpoint(), None, "the first window's records are held");
    assert!(p.wants_events(), "held records keep the pipeline ticking");

    // Record 2 moves the clock past 10s: window [0,10) is emitted with it.
    p.push(vec![record(2, 11)]);
    drive_until(&mut p, "window [0,10) delivered", |p| p.checkpoint().is_some()).await;
    assert_eq!(*sink.delivered.lock().expect("lock"), [window("1970-01-01T00:00:00Z", "1970-01-01T00:00:10Z", 2)]);
    assert_eq!(p.checkpoint(), Some(pos(1)), "record 2 is held in [10,20)");
    let state = p.checkpoint_state().expect("a stateful chain has state");
    assert!(state.contains("\"emitted_through\":11000"), "{state}");

    // Idle: two ticks later the wall clock closes [10,20).
    drive_until(&mut p, "idle window emitted", |p| p.checkpoint() == Some(pos(2))).await;
    assert_eq!(sink.delivered.lock().expect("lock").len(), 2);
    assert!(!p.wants_events());

    // A restarted pipeline with the state saved at checkpoint 1 replays
    // record 2 and emits only [10,20), never [0,10) again.
    let sink2 = Arc::new(CollectingSink::default());
    let mut p2 = pipeline(sink2.clone());
    p2.restore_state(&state).expect("restores");
    p2.push(vec![record(2, 11)]);
    assert_eq!(p2.finish().await, Some(pos(2)));
    assert_eq!(*sink2.delivered.lock().expect("lock"), [window("1970-01-01T00:00:10Z", "1970-01-01T00:00:20Z", 1)]);
}

#[tokio::test(start_paused = true)]
async fn drain_keeps_held_windows_and_finish_emits_them() {
    let sink = Arc::new(CollectingSink::default());
    let mut p = pipeline(sink.clone());
    p.push(vec![record(0, 1), record(1, 12)]);
    // Shutdown: nothing new is emitted; the checkpoint stays below record 1.
    let at_shutdown = p.drain().await;
    assert_eq!(at_shutdown, Some(pos(0)));
    assert_eq!(sink.delivered.lock().expect("lock").len(), 1);
    // Shard end: the open window is emitted and everything checkpointed.
    assert_eq!(p.finish().await, Some(pos(1)));
    assert_eq!(sink.delivered.lock().expect("lock").len(), 2);
}

#[tokio::test(start_paused = true)]
async fn state_of_another_configuration_is_refused() {
    let mut p = pipeline(Arc::new(CollectingSink::default()));
    let err = p.restore_state(r#"{"version":1,"transforms":[{"index":0,"type":"window_count","state":{}}]}"#).expect_err("index 0 is parse_json");
    assert!(err.to_string().contains("no longer there"), "{err}");
    assert!(p.restore_state("nonsense").is_err());
}
