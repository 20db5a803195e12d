//! `window_count`: counts per key over tumbling or sliding windows of event
//! time, one output record per (window, key).
//!
//! ```toml
//! [[transforms]]
//! type = "window_count"
//! key = ["resource", "referrer"]   # JSON paths grouped by; default [] (one count per window)
//! window = "60s"                   # required: window length
//! slide = "10s"                    # sliding step; default = window (tumbling); must divide window
//! allowed_lateness = "5s"          # how long a window waits for late records; default "0s"
//! on_late = "dead_letter"          # dead_letter (default) | drop (counted as filtered)
//! emit_when_idle = true            # keep the event clock moving while the shard is idle; default true
//! ```
//!
//! Output (JSON): `{"window_start": "2026-11-01T10:00:00Z", "window_end":
//! "2026-11-01T10:01:00Z", "resource": "/a", "referrer": "x", "count": 3}`
//! — one field per `key` path (named as written, `null` when missing), the
//! window bounds in RFC 3339 and the count; its event time is the window
//! start. Input records produce no output of their own (they count as
//! filtered in the metrics).
//!
//! # Semantics
//! - Event time is the record's `event_time` (set by `timestamp`), else its
//!   arrival time. Windows are `[start, start + window)`, starts aligned to
//!   multiples of `slide` since the Unix epoch; a record counts in every
//!   window containing it (`window / slide` of them).
//! - The shard's event-time clock is the highest event time seen. A window
//!   is emitted, once, when the clock passes `end + allowed_lateness`; it
//!   is then closed. A record all of whose windows are closed is *late*: it
//!   is dead-lettered with the reason (default) or, with
//!   `on_late = "drop"`, dropped.
//! - While the shard is idle (no record during a whole tick, ticks coming
//!   every `buffer.max_age`), the clock keeps moving from the last event
//!   time seen at wall-clock rate, so the last windows are emitted about
//!   `allowed_lateness` plus up to two ticks after the clock passes their
//!   end, and replayed or backfilled data stays in its own time.
//! - At shard end (split or merge) every open window is emitted.
//! - Checkpoints never pass a record counted in a window not yet emitted,
//!   and the state stored with a checkpoint says which windows were emitted
//!   (and the event-time clock), so after a restart or lease move the
//!   replayed records are counted again only in windows that were not
//!   emitted: no window is counted twice. A window that was emitted but
//!   not yet checkpointed when a worker died is emitted again, with the same
//!   count (at-least-once), unless it was closed by the idle timer, whose
//!   timing is not replayed.
//! - Counts are per shard: the same key on two shards gives two records
//!   per window (sum them downstream, e.g. an additive DynamoDB update).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{json, Map, Value};
use shardline_api::{
    CheckpointLimit, HumanDuration, OpKey, Payload, Position, Record, RecordMeta, SequenceNumber, Transform,
    TransformError,
};

use crate::path::JsonPath;
use crate::{config, json_ref, rfc3339_millis, system_time_millis, TransformBuildError};

/// The type name in configuration.
pub const NAME: &str = "window_count";

/// What to do with a record whose windows were all emitted already.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnLate {
    /// Acknowledge it without counting (counted as filtered). Opt-in: the
    /// record's contribution is gone.
    Drop,
    /// Send it to the dead-letter destination with the reason (default:
    /// nothing is skipped unless the pipeline says so).
    #[default]
    DeadLetter,
}

/// Options of `window_count`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowCountConfig {
    /// JSON paths whose values form the key. Default `[]`: one count per
    /// window.
    #[serde(default)]
    pub key: Vec<String>,
    /// Window length. Required, at least 1ms.
    pub window: HumanDuration,
    /// Step between window starts. Default: `window` (tumbling windows).
    #[serde(default)]
    pub slide: Option<HumanDuration>,
    /// How long after its end a window still takes records. Default `"0s"`.
    #[serde(default = "zero")]
    pub allowed_lateness: HumanDuration,
    /// `dead_letter` (default) or `drop`.
    #[serde(default)]
    pub on_late: OnLate,
    /// Keep the event-time clock moving (from the last event, at wall-clock
    /// rate) while the shard is idle, so the last windows are emitted.
    /// Default `true`.
    #[serde(default = "yes")]
    pub emit_when_idle: bool,
}

fn zero() -> HumanDuration {
    HumanDuration::from_secs(0)
}
fn yes() -> bool {
    true
}

/// Most windows one record may fall in (`window / slide`).
const MAX_OVERLAP: i64 = 1000;

/// One open window.
#[derive(Debug)]
struct Window {
    /// Position of the first record counted in it.
    first: Position,
    /// The last position seen before `first` (a safe checkpoint while this
    /// window is open), if any.
    before_first: Option<Position>,
    /// Key text (compact JSON of the key values) → (key values, count).
    counts: HashMap<String, (Vec<Value>, u64)>,
}

/// What must survive a restart, as of one operation.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    key: Option<OpKey>,
    /// Every window ending at or before this (ms) was emitted.
    emitted_through: Option<i64>,
    /// The event-time clock (ms).
    max_event: Option<i64>,
    /// `(first, before_first)` of the open window with the oldest first
    /// record.
    held: Option<(Position, Option<Position>)>,
}

/// The `window_count` transform.
pub struct WindowCount {
    keys: Vec<JsonPath>,
    size: i64,
    slide: i64,
    lateness: i64,
    on_late: OnLate,
    emit_when_idle: bool,
    windows: BTreeMap<i64, Window>,
    emitted_through: Option<i64>,
    max_event: Option<i64>,
    /// Wall-clock time at which `max_event` was last set; while the shard
    /// is idle the event-time clock advances from `max_event` at wall-clock
    /// rate (not to "now": replayed or backfilled old data would otherwise
    /// all turn late after the first idle tick).
    max_event_seen_at: Option<SystemTime>,
    op: Option<OpKey>,
    current_position: Option<Position>,
    previous_position: Option<Position>,
    /// Records at or before this were processed before the restart the
    /// state came from: when late, they are dropped silently.
    replayed_through: Option<Position>,
    active_since_tick: bool,
    last_meta: Option<Arc<RecordMeta>>,
    /// Snapshots after operations not yet known to be delivered.
    history: VecDeque<Snapshot>,
    /// The snapshot of the last delivered operation.
    settled: Snapshot,
}

impl std::fmt::Debug for WindowCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowCount").field("size", &self.size).field("slide", &self.slide).finish_non_exhaustive()
    }
}

fn millis(d: HumanDuration) -> i64 {
    i64::try_from(d.get().as_millis()).unwrap_or(i64::MAX)
}

impl WindowCount {
    /// A `window_count` transform.
    ///
    /// # Errors
    /// A zero `window`, a `slide` that is zero, longer than `window`, does
    /// not divide it or makes more than 1000 overlapping windows, or a bad
    /// `key` path — each naming its key.
    pub fn new(config: WindowCountConfig) -> Result<Self, TransformBuildError> {
        let size = millis(config.window);
        if size < 1 {
            return Err(config::invalid(NAME, "window", "must be at least 1ms"));
        }
        let slide = config.slide.map_or(size, millis);
        if slide < 1 || slide > size || size % slide != 0 {
            return Err(config::invalid(NAME, "slide", format!("must be between 1ms and `window` ({}) and divide it", config.window)));
        }
        if size / slide > MAX_OVERLAP {
            return Err(config::invalid(NAME, "slide", format!("`window / slide` is {}; at most {MAX_OVERLAP}", size / slide)));
        }
        let keys = crate::path::parse_all(NAME, "key", &config.key)?;
        let empty = Snapshot { key: None, emitted_through: None, max_event: None, held: None };
        Ok(WindowCount {
            keys,
            size,
            slide,
            lateness: millis(config.allowed_lateness),
            on_late: config.on_late,
            emit_when_idle: config.emit_when_idle,
            windows: BTreeMap::new(),
            emitted_through: None,
            max_event: None,
            max_event_seen_at: None,
            op: None,
            current_position: None,
            previous_position: None,
            replayed_through: None,
            active_since_tick: false,
            last_meta: None,
            history: VecDeque::new(),
            settled: empty,
        })
    }

    /// Starts of the windows containing `t`, newest first.
    fn starts(&self, t: i64) -> impl Iterator<Item = i64> + '_ {
        let last = t.div_euclid(self.slide) * self.slide;
        (0..self.size / self.slide).map(move |i| last - i * self.slide).filter(move |s| s + self.size > t)
    }

    fn is_closed(&self, start: i64, emitted_through: Option<i64>) -> bool {
        emitted_through.is_some_and(|t| start + self.size <= t)
    }

    /// Emits every open window ending at or before `through` and marks all
    /// such windows closed.
    fn close_through(&mut self, through: i64, meta: &Arc<RecordMeta>, out: &mut Vec<Record>) {
        if self.emitted_through.is_some_and(|t| t >= through) {
            return;
        }
        self.emitted_through = Some(through);
        while let Some(entry) = self.windows.first_entry() {
            if entry.key() + self.size > through {
                break;
            }
            let (start, window) = entry.remove_entry();
            self.emit(start, window, meta, out);
        }
    }

    fn emit(&self, start: i64, window: Window, meta: &Arc<RecordMeta>, out: &mut Vec<Record>) {
        let (window_start, window_end) = (rfc3339_millis(start), rfc3339_millis(start + self.size));
        let mut rows: Vec<(String, (Vec<Value>, u64))> = window.counts.into_iter().collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, (values, count)) in rows {
            let mut map = Map::with_capacity(self.keys.len() + 3);
            map.insert("window_start".to_owned(), Value::String(window_start.clone()));
            map.insert("window_end".to_owned(), Value::String(window_end.clone()));
            for (path, value) in self.keys.iter().zip(values) {
                map.insert(path.as_str().to_owned(), value);
            }
            map.insert("count".to_owned(), Value::from(count));
            out.push(Record {
                payload: Payload::Json(Value::Object(map)),
                meta: meta.clone(),
                event_time: Some(time_of(start)),
            });
        }
    }

    fn snapshot(&self) -> Snapshot {
        let held = self.windows.values().min_by(|a, b| a.first.cmp(&b.first)).map(|w| (w.first.clone(), w.before_first.clone()));
        Snapshot { key: self.op.clone(), emitted_through: self.emitted_through, max_event: self.max_event, held }
    }

    /// Records a snapshot when the persistable state or the held position
    /// changed.
    fn remember(&mut self) {
        let now = self.snapshot();
        let last = self.history.back().unwrap_or(&self.settled);
        let same = last.emitted_through == now.emitted_through
            && last.max_event == now.max_event
            && last.held.as_ref().map(|h| &h.0) == now.held.as_ref().map(|h| &h.0);
        if !same {
            self.history.push_back(now);
        }
    }

    fn late_error(&self, record: &Record, t: i64) -> TransformError {
        TransformError::new(format!(
            "window_count: late record: event time {} (record {}) falls only in windows already emitted (every window ending at or before {} is closed; allowed_lateness {}ms)",
            rfc3339_millis(t),
            record.meta.position(),
            rfc3339_millis(self.emitted_through.unwrap_or(i64::MIN)),
            self.lateness
        ))
    }
}

fn time_of(millis: i64) -> SystemTime {
    let d = std::time::Duration::from_millis(millis.unsigned_abs());
    if millis >= 0 {
        SystemTime::UNIX_EPOCH + d
    } else {
        SystemTime::UNIX_EPOCH - d
    }
}

impl Transform for WindowCount {
    fn name(&self) -> &str {
        NAME
    }

    fn apply(&mut self, record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let position = record.meta.position();
        let t = system_time_millis(record.time());
        // Read the key first: an error must leave the state untouched.
        let (key_text, key_values) = if self.keys.is_empty() {
            (String::new(), Vec::new())
        } else {
            let json = json_ref(NAME, &record)?;
            let values: Vec<Value> = self.keys.iter().map(|p| p.get(json).cloned().unwrap_or(Value::Null)).collect();
            (serde_json::to_string(&values).unwrap_or_default(), values)
        };
        let clock = self.max_event.map_or(t, |m| m.max(t));
        let through = clock.saturating_sub(self.lateness).max(self.emitted_through.unwrap_or(i64::MIN));
        let open: Vec<i64> = self.starts(t).filter(|&s| !self.is_closed(s, Some(through))).collect();
        if open.is_empty() {
            let replayed = self.replayed_through.as_ref().is_some_and(|r| position <= *r);
            return match self.on_late {
                _ if replayed => Ok(()),
                OnLate::Drop => Ok(()),
                OnLate::DeadLetter => Err(self.late_error(&record, t)),
            };
        }
        if self.current_position.as_ref() != Some(&position) {
            self.previous_position = self.current_position.replace(position.clone());
        }
        if self.op.is_none() {
            self.op = Some(OpKey::record(position.clone()));
        }
        self.active_since_tick = true;
        self.last_meta = Some(record.meta.clone());
        self.max_event = Some(clock);
        self.close_through(through, &record.meta, out);
        let before_first = self.previous_position.clone();
        for start in open {
            let window = self.windows.entry(start).or_insert_with(|| Window {
                first: position.clone(),
                before_first: before_first.clone(),
                counts: HashMap::new(),
            });
            match window.counts.get_mut(&key_text) {
                Some((_, n)) => *n += 1,
                None => {
                    window.counts.insert(key_text.clone(), (key_values.clone(), 1));
                }
            }
        }
        self.remember();
        Ok(())
    }

    fn is_stateful(&self) -> bool {
        true
    }

    fn begin_op(&mut self, op: &OpKey) {
        self.op = Some(op.clone());
    }

    fn on_tick(&mut self, now: SystemTime, out: &mut Vec<Record>) {
        if std::mem::take(&mut self.active_since_tick) {
            // Records arrived since the last tick: the idle clock starts now.
            self.max_event_seen_at = Some(now);
            return;
        }
        if !self.emit_when_idle || self.windows.is_empty() {
            return;
        }
        let Some(meta) = self.last_meta.clone() else { return };
        // Event time advances from the last event seen by the wall time
        // since it was seen: for live data that is about "now"; for
        // replayed or backfilled data it stays in the data's own time.
        let clock = match (self.max_event, self.max_event_seen_at) {
            (Some(max), Some(seen_at)) => {
                let idle = now.duration_since(seen_at).map(|d| d.as_millis() as i64).unwrap_or(0);
                max.saturating_add(idle)
            }
            (Some(max), None) => max,
            (None, _) => system_time_millis(now),
        };
        self.max_event = Some(clock);
        self.max_event_seen_at = Some(now);
        self.close_through(clock.saturating_sub(self.lateness), &meta, out);
        self.remember();
    }

    fn on_shard_end(&mut self, out: &mut Vec<Record>) {
        let Some(meta) = self.last_meta.clone() else { return };
        if let Some((&last, _)) = self.windows.last_key_value() {
            self.close_through(last + self.size, &meta, out);
        }
        self.remember();
    }

    fn holds_records(&self) -> bool {
        !self.windows.is_empty()
    }

    fn checkpoint_limit(&mut self, done: &OpKey) -> CheckpointLimit {
        while self.history.front().is_some_and(|s| s.key.as_ref().is_none_or(|k| k <= done)) {
            if let Some(s) = self.history.pop_front() {
                self.settled = s;
            }
        }
        self.settled.key = Some(done.clone());
        match &self.settled.held {
            None => CheckpointLimit::Any,
            Some((_, Some(before))) => CheckpointLimit::AtMost(before.clone()),
            Some((_, None)) => CheckpointLimit::Nothing,
        }
    }

    fn checkpoint_state(&self) -> Option<Value> {
        let through = self.settled.key.as_ref().map(|k| json!({"sequence": k.position.sequence.as_str(), "sub_sequence": k.position.sub_sequence}));
        Some(json!({
            "window_ms": self.size,
            "slide_ms": self.slide,
            "emitted_through": self.settled.emitted_through,
            "max_event_time": self.settled.max_event,
            "through": through,
        }))
    }

    fn restore_state(&mut self, state: &Value) -> Result<(), TransformError> {
        let number = |k: &str| state.get(k).and_then(Value::as_i64);
        if number("window_ms") != Some(self.size) || number("slide_ms") != Some(self.slide) {
            return Err(TransformError::new(format!(
                "window_count: the saved state is for window {:?} ms / slide {:?} ms, the configuration says {} / {}",
                number("window_ms"),
                number("slide_ms"),
                self.size,
                self.slide
            )));
        }
        let through = match state.get("through") {
            Some(Value::Object(t)) => {
                let sequence = t.get("sequence").and_then(Value::as_str).and_then(|s| SequenceNumber::parse(s).ok());
                let sub = t.get("sub_sequence").and_then(Value::as_u64).unwrap_or(0);
                sequence.map(|s| Position::new(s, sub))
            }
            _ => None,
        };
        self.emitted_through = number("emitted_through");
        self.max_event = number("max_event_time");
        self.replayed_through = through;
        self.windows.clear();
        self.history.clear();
        self.settled = Snapshot { key: None, emitted_through: self.emitted_through, max_event: self.max_event, held: None };
        Ok(())
    }
}

#[cfg(test)]
mod tests;
