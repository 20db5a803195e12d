//! The acknowledgement watermark of one shard: which position may be
//! checkpointed.
//!
//! Every input record is registered with the number of outputs it produced
//! and acknowledged once per output (delivered or dead-lettered). The
//! checkpointable position is the highest one such that it and every record
//! registered before it were fully acknowledged. Entries live in a
//! `VecDeque` whose front is the oldest unfinished record; a [`Ticket`] is
//! an absolute index, so an acknowledgement is O(1) and advancing the front
//! is O(1) amortized.
//!
//! Besides input records, the engine registers *ticks* (outputs a stateful
//! transform made on a timer or at shard end): a tick entry sits after the
//! last registered record and is keyed `(that record's position, n)`, so
//! [`Watermark::done_key`] tells whether a tick's outputs were delivered
//! although it does not move the checkpointable position.

use std::collections::VecDeque;

use shardline_api::{OpKey, Position};

/// A handle to one registered record, acknowledged once per output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket(u64);

#[derive(Debug)]
struct Entry {
    key: OpKey,
    /// Outputs not yet acknowledged.
    remaining: u32,
}

/// Tracks acknowledgements of one shard's records. Pure and single-threaded.
#[derive(Debug, Default)]
pub struct Watermark {
    entries: VecDeque<Entry>,
    /// Absolute index of `entries[0]`.
    base: u64,
    /// Key of the last entry popped off the front.
    done: Option<OpKey>,
    /// Key of the last entry registered.
    last: Option<OpKey>,
    /// Registered records with outputs still unacknowledged.
    unfinished: usize,
}

impl Watermark {
    /// An empty watermark: nothing checkpointable yet.
    pub fn new() -> Self {
        Watermark::default()
    }

    /// Registers the next record (positions must be registered in
    /// increasing order) with the number of outputs it produced. A record
    /// with no outputs is done at once.
    pub fn register(&mut self, position: Position, outputs: u32) -> Ticket {
        self.push(OpKey::record(position), outputs)
    }

    /// Registers a tick after the last registered record with the number of
    /// outputs it produced; returns its ticket and key, or `None` when no
    /// record was registered yet (a tick has no place then).
    pub fn register_tick(&mut self, outputs: u32) -> Option<(Ticket, OpKey)> {
        let last = self.last.as_ref()?;
        let key = OpKey { position: last.position.clone(), tick: last.tick.saturating_add(1) };
        Some((self.push(key.clone(), outputs), key))
    }

    /// The key the next [`register_tick`](Self::register_tick) would use.
    pub fn next_tick_key(&self) -> Option<OpKey> {
        let last = self.last.as_ref()?;
        Some(OpKey { position: last.position.clone(), tick: last.tick.saturating_add(1) })
    }

    fn push(&mut self, key: OpKey, outputs: u32) -> Ticket {
        let ticket = Ticket(self.base + self.entries.len() as u64);
        if outputs > 0 {
            self.unfinished += 1;
        }
        self.last = Some(key.clone());
        self.entries.push_back(Entry { key, remaining: outputs });
        self.advance();
        ticket
    }

    /// Acknowledges one output of the ticket's record. Acknowledgements may
    /// come in any order; extra ones for a finished record are ignored.
    pub fn ack(&mut self, ticket: Ticket) {
        let Some(offset) = ticket.0.checked_sub(self.base) else {
            return; // already finished and popped
        };
        let Ok(offset) = usize::try_from(offset) else {
            return;
        };
        if let Some(entry) = self.entries.get_mut(offset) {
            if entry.remaining == 0 {
                return; // finished, behind an unfinished record
            }
            entry.remaining -= 1;
            if entry.remaining == 0 {
                self.unfinished -= 1;
            }
            if offset == 0 {
                self.advance();
            }
        }
    }

    /// The highest position such that every record up to and including it
    /// was fully acknowledged; `None` before the first one.
    pub fn checkpoint(&self) -> Option<Position> {
        self.done.as_ref().map(|k| k.position.clone())
    }

    /// Key of the last entry (record or tick) such that it and everything
    /// registered before it were fully acknowledged.
    pub fn done_key(&self) -> Option<&OpKey> {
        self.done.as_ref()
    }

    /// Records registered but not yet fully acknowledged.
    pub fn outstanding(&self) -> usize {
        self.unfinished
    }

    fn advance(&mut self) {
        while self.entries.front().is_some_and(|e| e.remaining == 0) {
            if let Some(entry) = self.entries.pop_front() {
                self.done = Some(entry.key);
                self.base += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use shardline_api::SequenceNumber;

    use super::*;

    fn pos(i: usize) -> Position {
        // Several user records share a sequence number, as in a KPL aggregate.
        let seq = SequenceNumber::parse(&(1000 + i / 3).to_string()).expect("digits");
        Position::new(seq, (i % 3) as u64)
    }

    #[test]
    fn filtered_records_are_done_at_once() {
        let mut w = Watermark::new();
        assert_eq!(w.checkpoint(), None);
        w.register(pos(0), 0);
        assert_eq!(w.checkpoint(), Some(pos(0)));
        let t1 = w.register(pos(1), 2);
        w.register(pos(2), 0);
        assert_eq!(w.checkpoint(), Some(pos(0)));
        assert_eq!(w.outstanding(), 1);
        w.ack(t1);
        assert_eq!(w.checkpoint(), Some(pos(0)));
        w.ack(t1);
        assert_eq!(w.checkpoint(), Some(pos(2)));
        assert_eq!(w.outstanding(), 0);
        w.ack(t1); // extra acks are ignored
        assert_eq!(w.checkpoint(), Some(pos(2)));
    }

    #[test]
    fn ticks_follow_the_last_record_without_moving_the_position() {
        let mut w = Watermark::new();
        assert_eq!(w.register_tick(1), None);
        w.register(pos(0), 0);
        let (t, key) = w.register_tick(2).expect("after a record");
        assert_eq!(key, OpKey { position: pos(0), tick: 1 });
        assert_eq!(w.done_key(), Some(&OpKey::record(pos(0))));
        assert_eq!(w.next_tick_key(), Some(OpKey { position: pos(0), tick: 2 }));
        w.ack(t);
        w.ack(t);
        assert_eq!(w.done_key(), Some(&key));
        assert_eq!(w.checkpoint(), Some(pos(0)));
        w.register(pos(1), 0);
        assert_eq!(w.next_tick_key(), Some(OpKey { position: pos(1), tick: 1 }));
    }

    proptest! {
        /// Random output counts and a random interleaving of every
        /// acknowledgement (with duplicates beyond the output count): the
        /// checkpoint always equals a naive model's highest fully
        /// acknowledged prefix, is monotonic, and never passes an
        /// unacknowledged record.
        #[test]
        fn matches_naive_model(
            outputs in proptest::collection::vec(0u32..4, 0..40),
            order_seed in proptest::collection::vec(any::<u32>(), 0..200),
            extra in proptest::collection::vec(any::<u32>(), 0..10),
            register_every in 1usize..6,
        ) {
            // Every ack to make: one per output, plus some duplicates.
            let mut acks: Vec<usize> = outputs.iter().enumerate()
                .flat_map(|(i, &n)| std::iter::repeat_n(i, n as usize)).collect();
            if !outputs.is_empty() {
                acks.extend(extra.iter().map(|&e| e as usize % outputs.len()));
            }
            // Shuffle with the seed.
            for (i, &s) in order_seed.iter().enumerate() {
                if acks.len() > 1 {
                    let a = i % acks.len();
                    let b = s as usize % acks.len();
                    acks.swap(a, b);
                }
            }

            let mut w = Watermark::new();
            let mut tickets: Vec<Ticket> = Vec::new();
            let mut acked = vec![0u32; outputs.len()];
            let mut last: Option<Position> = None;
            let mut pending = acks.into_iter().peekable();
            let mut registered = 0;
            loop {
                // Interleave registration with acknowledgement.
                for _ in 0..register_every {
                    if registered < outputs.len() {
                        tickets.push(w.register(pos(registered), outputs[registered]));
                        registered += 1;
                    }
                }
                let mut step = 0;
                while step < register_every {
                    let Some(&i) = pending.peek() else { break };
                    if i >= registered { break; }
                    pending.next();
                    w.ack(tickets[i]);
                    acked[i] += 1;
                    step += 1;
                }
                // Naive model: the longest prefix of registered, fully acked records.
                let prefix = (0..registered).take_while(|&i| acked[i] >= outputs[i]).count();
                let expected = prefix.checked_sub(1).map(pos);
                prop_assert_eq!(w.checkpoint(), expected.clone());
                prop_assert!(w.checkpoint() >= last, "checkpoint went backwards");
                if let Some(cp) = w.checkpoint() {
                    for i in 0..registered {
                        if pos(i) <= cp {
                            prop_assert!(acked[i] >= outputs[i], "passed an unacknowledged record");
                        }
                    }
                }
                let unfinished = (0..registered).filter(|&i| acked[i] < outputs[i]).count();
                prop_assert_eq!(w.outstanding(), unfinished);
                last = w.checkpoint();
                if registered == outputs.len() && pending.peek().is_none() { break; }
            }
            prop_assert_eq!(w.outstanding(), 0);
            prop_assert_eq!(w.checkpoint(), outputs.len().checked_sub(1).map(pos));
        }
    }
}
