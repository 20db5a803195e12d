//! The per-shard buffer: collects transform outputs into batches that are
//! sealed when `max_records` or `max_bytes` is reached, or when the oldest
//! record of the open batch is `max_age` old (the caller watches
//! [`Buffer::deadline`]).
//!
//! Sealed batches wait in order until the emitter has a free slot, so a
//! batch never holds more than `max_records` records nor more than
//! `max_bytes` bytes (a single record larger than `max_bytes` goes alone).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::BufferConfig;
use crate::telemetry::FlushReason;

/// A sealed batch, ready for the emitter.
#[derive(Debug)]
pub(crate) struct Batch<T> {
    pub(crate) items: Vec<T>,
    pub(crate) bytes: u64,
    pub(crate) reason: FlushReason,
}

/// Buffered items of one shard, in order.
#[derive(Debug)]
pub(crate) struct Buffer<T> {
    max_records: usize,
    max_bytes: u64,
    max_age: Duration,
    open: Vec<T>,
    open_bytes: u64,
    open_since: Option<Instant>,
    sealed: VecDeque<Batch<T>>,
    sealed_items: usize,
}

impl<T> Buffer<T> {
    pub(crate) fn new(config: &BufferConfig) -> Self {
        Buffer {
            max_records: config.max_records.max(1),
            max_bytes: config.max_bytes.bytes().max(1),
            max_age: config.max_age.get(),
            open: Vec::new(),
            open_bytes: 0,
            open_since: None,
            sealed: VecDeque::new(),
            sealed_items: 0,
        }
    }

    /// Adds an item of `bytes` bytes, sealing the open batch first if the
    /// item would not fit and afterwards if a limit is reached.
    pub(crate) fn push(&mut self, item: T, bytes: u64, now: Instant) {
        if !self.open.is_empty() && self.open_bytes.saturating_add(bytes) > self.max_bytes {
            self.seal(FlushReason::Bytes);
        }
        if self.open.is_empty() {
            self.open_since = Some(now);
        }
        self.open.push(item);
        self.open_bytes = self.open_bytes.saturating_add(bytes);
        if self.open.len() >= self.max_records {
            self.seal(FlushReason::Records);
        } else if self.open_bytes >= self.max_bytes {
            self.seal(FlushReason::Bytes);
        }
    }

    /// When the open batch must be sealed for age; `None` when it is empty.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.open_since.map(|since| since + self.max_age)
    }

    /// Seals the open batch (if it holds anything).
    pub(crate) fn seal(&mut self, reason: FlushReason) {
        if self.open.is_empty() {
            return;
        }
        let items = std::mem::take(&mut self.open);
        self.sealed_items += items.len();
        self.sealed.push_back(Batch { items, bytes: self.open_bytes, reason });
        self.open_bytes = 0;
        self.open_since = None;
    }

    /// The oldest sealed batch.
    pub(crate) fn pop_sealed(&mut self) -> Option<Batch<T>> {
        let batch = self.sealed.pop_front()?;
        self.sealed_items -= batch.items.len();
        Some(batch)
    }

    /// True when a sealed batch waits for the emitter (a limit was reached).
    pub(crate) fn has_sealed(&self) -> bool {
        !self.sealed.is_empty()
    }

    /// Items held, open and sealed.
    pub(crate) fn len(&self) -> usize {
        self.open.len() + self.sealed_items
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops everything.
    pub(crate) fn clear(&mut self) {
        self.open.clear();
        self.open_bytes = 0;
        self.open_since = None;
        self.sealed.clear();
        self.sealed_items = 0;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use shardline_api::{ByteSize, HumanDuration};

    use super::*;

    fn config(max_records: usize, max_bytes: u64) -> BufferConfig {
        BufferConfig { max_records, max_bytes: ByteSize(max_bytes), max_age: HumanDuration::from_secs(60) }
    }

    #[test]
    fn age_deadline_follows_the_oldest_open_item() {
        let start = Instant::now();
        let mut b = Buffer::new(&config(10, 1000));
        assert_eq!(b.deadline(), None);
        b.push(1, 1, start);
        b.push(2, 1, start + Duration::from_secs(5));
        assert_eq!(b.deadline(), Some(start + Duration::from_secs(60)));
        b.seal(FlushReason::Age);
        assert_eq!(b.deadline(), None);
        let batch = b.pop_sealed().expect("sealed");
        assert_eq!((batch.items, batch.reason), (vec![1, 2], FlushReason::Age));
        assert!(b.is_empty());
    }

    #[test]
    fn oversized_item_goes_alone() {
        let mut b = Buffer::new(&config(10, 100));
        let now = Instant::now();
        b.push(1, 10, now);
        b.push(2, 500, now);
        b.push(3, 10, now);
        let first = b.pop_sealed().expect("first");
        assert_eq!((first.items, first.reason), (vec![1], FlushReason::Bytes));
        let second = b.pop_sealed().expect("second");
        assert_eq!((second.items, second.bytes), (vec![2], 500));
        assert!(b.pop_sealed().is_none());
        assert_eq!(b.len(), 1);
    }

    proptest! {
        /// Batches respect both limits, are sealed exactly when a limit is
        /// reached (or the next item would not fit), and the concatenation
        /// of all batches plus the open one is the input, in order.
        #[test]
        fn never_loses_or_reorders(
            max_records in 1usize..8,
            max_bytes in 1u64..64,
            sizes in proptest::collection::vec(0u64..40, 0..100),
            seal_at in proptest::collection::vec(any::<bool>(), 0..100),
        ) {
            let mut b = Buffer::new(&config(max_records, max_bytes));
            let now = Instant::now();
            let mut out: Vec<(usize, u64)> = Vec::new();
            let mut batches = Vec::new();
            for (i, &size) in sizes.iter().enumerate() {
                b.push((i, size), size, now);
                if seal_at.get(i).copied().unwrap_or(false) && i % 7 == 0 {
                    b.seal(FlushReason::Age);
                }
                // Drain sealed batches now and then, as the emitter would.
                if i % 3 == 0 {
                    while let Some(batch) = b.pop_sealed() { batches.push(batch); }
                }
            }
            while let Some(batch) = b.pop_sealed() { batches.push(batch); }
            let open_len = b.len();
            b.seal(FlushReason::Drain);
            while let Some(batch) = b.pop_sealed() { batches.push(batch); }
            prop_assert!(b.is_empty());
            for batch in &batches {
                prop_assert!(!batch.items.is_empty());
                prop_assert!(batch.items.len() <= max_records);
                let bytes: u64 = batch.items.iter().map(|(_, s)| s).sum();
                prop_assert_eq!(bytes, batch.bytes);
                prop_assert!(bytes <= max_bytes || batch.items.len() == 1);
                match batch.reason {
                    FlushReason::Records => prop_assert_eq!(batch.items.len(), max_records),
                    FlushReason::Bytes => {}
                    FlushReason::Age | FlushReason::Drain => {
                        prop_assert!(batch.items.len() < max_records && bytes < max_bytes);
                    }
                }
                out.extend(batch.items.iter().copied());
            }
            // The last batch is the one sealed for draining.
            if open_len > 0 {
                prop_assert_eq!(batches.last().map(|b| b.reason), Some(FlushReason::Drain));
            }
            let expected: Vec<(usize, u64)> = sizes.iter().copied().enumerate().collect();
            prop_assert_eq!(out, expected);
        }
    }
}
