//! The transform chain: every configured transform in order, each output
//! of one transform fed to the next.
//!
//! A record is handled atomically: if any transform fails on it (or on
//! anything made from it), none of its outputs is kept and the *input*
//! record goes to the dead-letter destination, so it can be replayed as it
//! was read.
//!
//! Stateful transforms (see [`Transform::is_stateful`]) also get ticks and
//! the shard-end flush; what they emit then runs through the transforms
//! after them, and an output that a later transform fails on is
//! dead-lettered by itself (there is no input record to blame).

use std::sync::Mutex;
use std::time::SystemTime;

use shardline_api::{CheckpointLimit, OpKey, Position, Record, Transform};

/// A transform failed on a record.
#[derive(Debug)]
pub struct ChainFailure {
    /// The input record as it entered the chain (or, for a tick, the
    /// emitted record the later transform failed on).
    pub record: Record,
    /// `transform:<name>`.
    pub stage: String,
    /// The transform's reason.
    pub reason: String,
}

/// What a tick or the shard-end flush produced.
#[derive(Debug, Default)]
pub struct Emitted {
    /// Records that made it through the rest of the chain.
    pub outputs: Vec<Record>,
    /// Emitted records a later transform failed on.
    pub failures: Vec<ChainFailure>,
}

/// The persistable state of one stateful transform.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TransformState {
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) state: serde_json::Value,
}

/// A shard's transform instances, run as the engine runs them (also used
/// by `shardline test`).
pub struct Chain {
    /// Only reached through `&mut self` (`get_mut`, never locked): the
    /// mutex just makes the chain `Sync` although a transform is only
    /// `Send`, so a `&ShardPipeline` may be held across an await.
    transforms: Mutex<Vec<Box<dyn Transform>>>,
    /// Indexes of the stateful transforms, in chain order.
    stateful: Vec<usize>,
}

impl Chain {
    /// A chain of `transforms`, applied in order.
    pub fn new(transforms: Vec<Box<dyn Transform>>) -> Self {
        let stateful = transforms.iter().enumerate().filter(|(_, t)| t.is_stateful()).map(|(i, _)| i).collect();
        Chain { transforms: Mutex::new(transforms), stateful }
    }

    fn transforms(&mut self) -> &mut Vec<Box<dyn Transform>> {
        // A transform that panicked mid-record left nothing half-done that
        // matters here: each call starts from a fresh record.
        self.transforms.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// True when some transform keeps state across records.
    pub fn is_stateful(&self) -> bool {
        !self.stateful.is_empty()
    }

    /// Runs `record` through every transform: zero (filtered), one or many
    /// (at most `u32::MAX`) outputs, or the failure.
    ///
    /// # Errors
    /// [`ChainFailure`] naming the transform and its reason.
    pub fn run(&mut self, record: Record) -> Result<Vec<Record>, ChainFailure> {
        if self.is_stateful() {
            let key = OpKey::record(record.meta.position());
            self.begin_op(&key);
        }
        let transforms = self.transforms();
        if transforms.is_empty() {
            return Ok(vec![record]);
        }
        // Cheap: payloads arrive as `Bytes` and metadata is shared.
        let input = record.clone();
        let mut current = vec![record];
        for transform in transforms.iter_mut() {
            let mut next = Vec::with_capacity(current.len());
            for r in current {
                if let Err(e) = transform.apply(r, &mut next) {
                    return Err(ChainFailure {
                        record: input,
                        stage: format!("transform:{}", transform.name()),
                        reason: e.reason,
                    });
                }
            }
            current = next;
            if current.is_empty() {
                break;
            }
        }
        if u32::try_from(current.len()).is_err() {
            return Err(ChainFailure {
                record: input,
                stage: "transform".to_owned(),
                reason: format!("the transform chain made {} records from one, more than 2^32 - 1", current.len()),
            });
        }
        Ok(current)
    }

    fn begin_op(&mut self, key: &OpKey) {
        let stateful = self.stateful.clone();
        let transforms = self.transforms();
        for i in stateful {
            transforms[i].begin_op(key);
        }
    }

    /// True when a stateful transform holds records it has not emitted.
    pub fn holds_records(&self) -> bool {
        if self.stateful.is_empty() {
            return false;
        }
        // The only place that locks: a short read, never contended (every
        // other access goes through `&mut self`).
        let transforms = self.transforms.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.stateful.iter().any(|&i| transforms[i].holds_records())
    }

    /// A timer tick (`end == false`) or the shard-end flush (`end == true`)
    /// as operation `key`: every stateful transform may emit, and what it
    /// emits runs through the transforms after it.
    pub fn emit(&mut self, key: &OpKey, now: SystemTime, end: bool) -> Emitted {
        self.begin_op(key);
        let stateful = self.stateful.clone();
        let transforms = self.transforms();
        let mut emitted = Emitted::default();
        for i in stateful {
            let mut made = Vec::new();
            if end {
                transforms[i].on_shard_end(&mut made);
            } else {
                transforms[i].on_tick(now, &mut made);
            }
            'record: for record in made {
                let mut current = vec![record];
                for transform in transforms[i + 1..].iter_mut() {
                    let mut next = Vec::with_capacity(current.len());
                    for r in current {
                        let kept = r.clone();
                        if let Err(e) = transform.apply(r, &mut next) {
                            emitted.failures.push(ChainFailure {
                                record: kept,
                                stage: format!("transform:{}", transform.name()),
                                reason: e.reason,
                            });
                            continue 'record;
                        }
                    }
                    current = next;
                }
                emitted.outputs.extend(current);
            }
        }
        emitted
    }

    /// The tightest checkpoint limit of the stateful transforms given that
    /// everything up to `done` was delivered, and their states for a
    /// checkpoint within it.
    pub(crate) fn checkpoint_limit(&mut self, done: &OpKey) -> (CheckpointLimit, Vec<TransformState>) {
        let stateful = self.stateful.clone();
        let transforms = self.transforms();
        let mut limit = CheckpointLimit::Any;
        let mut states = Vec::new();
        for i in stateful {
            let t = &mut transforms[i];
            limit = tighter(limit, t.checkpoint_limit(done));
            if let Some(state) = t.checkpoint_state() {
                states.push(TransformState { index: i, name: t.name().to_owned(), state });
            }
        }
        (limit, states)
    }

    /// Gives each state back to the transform at its index. Returns the
    /// problems (index, name, message) of states that did not fit.
    pub(crate) fn restore(&mut self, states: &[TransformState]) -> Vec<String> {
        let transforms = self.transforms();
        let mut problems = Vec::new();
        for s in states {
            match transforms.get_mut(s.index) {
                Some(t) if t.name() == s.name && t.is_stateful() => {
                    if let Err(e) = t.restore_state(&s.state) {
                        problems.push(format!("transforms[{}] ({}): {}", s.index, s.name, e.reason));
                    }
                }
                _ => problems.push(format!(
                    "transforms[{}]: the saved state is for `{}`, which is no longer there (configuration changed)",
                    s.index, s.name
                )),
            }
        }
        problems
    }
}

fn tighter(a: CheckpointLimit, b: CheckpointLimit) -> CheckpointLimit {
    use CheckpointLimit::*;
    match (a, b) {
        (Nothing, _) | (_, Nothing) => Nothing,
        (Any, x) | (x, Any) => x,
        (AtMost(p), AtMost(q)) => AtMost(min_position(p, q)),
    }
}

fn min_position(a: Position, b: Position) -> Position {
    if a <= b {
        a
    } else {
        b
    }
}
