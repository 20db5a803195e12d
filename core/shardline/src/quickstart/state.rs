//! What the quickstart page shows, kept in memory: the latest count per
//! (window, shard, key) written by the `dashboard` sink, per-shard lag and
//! throughput sampled from the process's metrics, and the generator's rate.
//!
//! Counts are stored per shard and *replaced*, never added: `window_count`
//! emits one record per shard for each (window, key), and a window emitted
//! again after a restart (at-least-once) carries the same count, so the sum
//! over shards shown on the page never counts a repeat twice.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// How many window ends the page keeps (with a 5 s slide, 10 minutes).
pub const MAX_WINDOWS: usize = 120;

/// The dashboard's shared state (one per process).
#[derive(Default)]
pub struct DashboardState {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// window end (ms since the epoch) → window.
    windows: BTreeMap<i64, Window>,
    /// shard id → last sample.
    shards: BTreeMap<String, ShardSample>,
    generator: GeneratorSample,
    /// Records counted in windows since the start (summed over deliveries).
    windows_received: u64,
}

#[derive(Default, Clone)]
struct Window {
    start_ms: i64,
    /// (shard id, key) → count.
    counts: BTreeMap<(String, String), u64>,
}

#[derive(Default, Clone)]
struct ShardSample {
    millis_behind_latest: Option<f64>,
    received_total: f64,
    delivered_total: f64,
    received_per_second: f64,
    sampled_at: Option<Instant>,
}

#[derive(Default, Clone)]
struct GeneratorSample {
    running: bool,
    written_total: u64,
    per_second: f64,
    last: Option<(Instant, u64)>,
}

/// One window as the page receives it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WindowView {
    /// Window start, ms since the epoch.
    pub start: i64,
    /// Window end, ms since the epoch.
    pub end: i64,
    /// Count per key, summed over shards.
    pub counts: BTreeMap<String, u64>,
}

/// One shard's lag and throughput.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ShardView {
    /// Shard id.
    pub shard_id: String,
    /// Last `MillisBehindLatest` reported by GetRecords.
    pub millis_behind_latest: Option<f64>,
    /// User records read per second over the last sample.
    pub records_per_second: f64,
    /// User records read since the process started.
    pub records_received: u64,
    /// Records delivered to the sink since the process started.
    pub records_delivered: u64,
}

/// The JSON document served at `/api/dashboard`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    /// Server time, ms since the epoch.
    pub now: i64,
    /// Emitted windows, oldest first (at most [`MAX_WINDOWS`]).
    pub windows: Vec<WindowView>,
    /// Every key seen, most counted (in the latest window) first.
    pub keys: Vec<String>,
    /// Per-shard lag and throughput.
    pub shards: Vec<ShardView>,
    /// Generator records written per second (0 with `--no-generator`).
    pub generator_records_per_second: f64,
    /// Generator records written since the start.
    pub generator_records_written: u64,
    /// Whether the generator runs.
    pub generator_running: bool,
}

impl DashboardState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update is a handful of inserts that cannot panic halfway.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores the count of one (window, shard, key), replacing a repeat.
    pub fn record_count(&self, start_ms: i64, end_ms: i64, shard_id: &str, key: String, count: u64) {
        let mut inner = self.lock();
        let window = inner.windows.entry(end_ms).or_default();
        window.start_ms = start_ms;
        window.counts.insert((shard_id.to_owned(), key), count);
        inner.windows_received += 1;
        while inner.windows.len() > MAX_WINDOWS {
            inner.windows.pop_first();
        }
    }

    /// Updates the per-shard samples from the Prometheus text exposition.
    pub fn sample_metrics(&self, pipeline: &str, exposition: &str) {
        let now = Instant::now();
        let mut inner = self.lock();
        for sample in crate::scrape::samples(exposition) {
            if sample.label("pipeline") != Some(pipeline) {
                continue;
            }
            let Some(shard_id) = sample.label("shard_id").filter(|s| !s.is_empty()) else { continue };
            let shard = inner.shards.entry(shard_id.to_owned()).or_default();
            match sample.name {
                "shardline_millis_behind_latest" => shard.millis_behind_latest = Some(sample.value),
                "shardline_records_delivered_total" => shard.delivered_total = sample.value,
                "shardline_records_received_total" => {
                    if let Some(at) = shard.sampled_at {
                        let secs = now.duration_since(at).as_secs_f64();
                        if secs >= 0.2 {
                            shard.received_per_second = ((sample.value - shard.received_total) / secs).max(0.0);
                            shard.received_total = sample.value;
                            shard.sampled_at = Some(now);
                        }
                    } else {
                        shard.received_total = sample.value;
                        shard.sampled_at = Some(now);
                    }
                }
                _ => {}
            }
        }
    }

    /// Updates the generator's totals (called about once a second).
    pub fn sample_generator(&self, written_total: u64) {
        let now = Instant::now();
        let mut inner = self.lock();
        let generator = &mut inner.generator;
        generator.running = true;
        generator.written_total = written_total;
        match generator.last {
            Some((at, before)) if now.duration_since(at) >= Duration::from_millis(200) => {
                generator.per_second = written_total.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64();
                generator.last = Some((now, written_total));
            }
            Some(_) => {}
            None => generator.last = Some((now, written_total)),
        }
    }

    /// The document the page polls.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        let windows: Vec<WindowView> = inner
            .windows
            .iter()
            .map(|(end, w)| {
                let mut counts: BTreeMap<String, u64> = BTreeMap::new();
                for ((_, key), count) in &w.counts {
                    *counts.entry(key.clone()).or_default() += count;
                }
                WindowView { start: w.start_ms, end: *end, counts }
            })
            .collect();
        let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
        for w in &windows {
            for key in w.counts.keys() {
                totals.entry(key.as_str()).or_default();
            }
        }
        if let Some(last) = windows.last() {
            for (key, count) in &last.counts {
                totals.insert(key.as_str(), *count);
            }
        }
        let mut keys: Vec<(&str, u64)> = totals.into_iter().collect();
        keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let keys = keys.into_iter().map(|(k, _)| k.to_owned()).collect();
        let shards = inner
            .shards
            .iter()
            .map(|(id, s)| ShardView {
                shard_id: id.clone(),
                millis_behind_latest: s.millis_behind_latest,
                records_per_second: s.received_per_second,
                records_received: s.received_total as u64,
                records_delivered: s.delivered_total as u64,
            })
            .collect();
        Snapshot {
            now: epoch_millis(SystemTime::now()),
            windows,
            keys,
            shards,
            generator_records_per_second: inner.generator.per_second,
            generator_records_written: inner.generator.written_total,
            generator_running: inner.generator.running,
        }
    }
}

/// Milliseconds since the epoch (negative before it).
pub fn epoch_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_replace_and_shards_add_up() {
        let state = DashboardState::default();
        state.record_count(0, 60_000, "shard-0", "direct".into(), 3);
        state.record_count(0, 60_000, "shard-1", "direct".into(), 4);
        state.record_count(0, 60_000, "shard-1", "direct".into(), 4);
        state.record_count(0, 60_000, "shard-1", "bing".into(), 9);
        let snapshot = state.snapshot();
        assert_eq!(snapshot.windows.len(), 1);
        assert_eq!(snapshot.windows[0].counts["direct"], 7);
        assert_eq!(snapshot.keys, vec!["bing".to_owned(), "direct".to_owned()]);
    }

    #[test]
    fn old_windows_are_dropped() {
        let state = DashboardState::default();
        for i in 0..(MAX_WINDOWS as i64 + 5) {
            state.record_count(i, i + 1, "s", "k".into(), 1);
        }
        let snapshot = state.snapshot();
        assert_eq!(snapshot.windows.len(), MAX_WINDOWS);
        assert_eq!(snapshot.windows[0].end, 6);
    }

    #[test]
    fn metrics_are_read_per_shard() {
        let state = DashboardState::default();
        let text = "# TYPE x counter\n\
            shardline_records_received_total{pipeline=\"quickstart\",stream=\"quickstart\",shard_id=\"shardId-000000000000\"} 120\n\
            shardline_millis_behind_latest{pipeline=\"quickstart\",stream=\"quickstart\",shard_id=\"shardId-000000000000\"} 250\n\
            shardline_records_received_total{pipeline=\"other\",stream=\"s\",shard_id=\"shardId-000000000001\"} 5\n";
        state.sample_metrics("quickstart", text);
        let snapshot = state.snapshot();
        assert_eq!(snapshot.shards.len(), 1);
        assert_eq!(snapshot.shards[0].records_received, 120);
        assert_eq!(snapshot.shards[0].millis_behind_latest, Some(250.0));
    }
}
