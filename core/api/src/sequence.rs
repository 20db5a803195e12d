//! Positions inside a shard.
//!
//! Kinesis sequence numbers are decimal strings of up to 56 digits (wider
//! than `u128`), so they are compared as numbers by length and then by
//! digits, never as plain strings. A KPL-aggregated record carries several
//! user records under one sequence number; they are told apart by a
//! sub-sequence number, so a position is `(sequence, sub_sequence)`.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// A string that is not a Kinesis sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sequence number {value:?}: expected 1 to 128 decimal digits")]
pub struct ParseSequenceError {
    /// The rejected text.
    pub value: String,
}

/// A Kinesis sequence number, ordered numerically.
///
/// Leading zeros are stripped on parse so that equal numbers compare equal.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SequenceNumber(Arc<str>);

impl SequenceNumber {
    /// Parses a decimal sequence number.
    ///
    /// # Errors
    /// [`ParseSequenceError`] when the text is empty, longer than 128 digits
    /// or holds anything but ASCII digits.
    pub fn parse(text: &str) -> Result<Self, ParseSequenceError> {
        if text.is_empty() || text.len() > 128 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseSequenceError { value: text.to_owned() });
        }
        let trimmed = text.trim_start_matches('0');
        let canonical = if trimmed.is_empty() { "0" } else { trimmed };
        Ok(SequenceNumber(Arc::from(canonical)))
    }

    /// The canonical decimal text (no leading zeros).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.as_bytes().cmp(other.0.as_bytes()))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SequenceNumber({})", self.0)
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for SequenceNumber {
    type Err = ParseSequenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SequenceNumber::parse(s)
    }
}

/// The position of one user record in a shard: its Kinesis sequence number
/// and, for records that came out of a KPL aggregate, the index inside it
/// (0 for records that were not aggregated).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// Sequence number of the Kinesis record.
    pub sequence: SequenceNumber,
    /// Index of the user record inside a KPL aggregate; 0 otherwise.
    pub sub_sequence: u64,
}

impl Position {
    /// A position with the given sequence number and sub-sequence number.
    pub fn new(sequence: SequenceNumber, sub_sequence: u64) -> Self {
        Position { sequence, sub_sequence }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.sequence, self.sub_sequence)
    }
}

/// What a lease's `checkpoint` attribute says, using the Java KCL's
/// sentinel strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Checkpoint {
    /// `TRIM_HORIZON`: nothing processed, start at the oldest record.
    TrimHorizon,
    /// `LATEST`: nothing processed, start at the tip.
    Latest,
    /// `AT_TIMESTAMP`: nothing processed, start at the configured timestamp.
    AtTimestamp,
    /// `SHARD_END`: the shard is closed and every record in it was processed.
    ShardEnd,
    /// Every record up to and including this position was processed.
    At(Position),
}

impl Checkpoint {
    /// The `checkpoint` attribute string used in a KCL lease table.
    pub fn sequence_string(&self) -> String {
        match self {
            Checkpoint::TrimHorizon => "TRIM_HORIZON".to_owned(),
            Checkpoint::Latest => "LATEST".to_owned(),
            Checkpoint::AtTimestamp => "AT_TIMESTAMP".to_owned(),
            Checkpoint::ShardEnd => "SHARD_END".to_owned(),
            Checkpoint::At(p) => p.sequence.to_string(),
        }
    }

    /// The `checkpointSubSequenceNumber` attribute (0 for sentinels).
    pub fn sub_sequence(&self) -> u64 {
        match self {
            Checkpoint::At(p) => p.sub_sequence,
            _ => 0,
        }
    }

    /// Parses the pair of lease attributes back into a checkpoint.
    ///
    /// # Errors
    /// [`ParseSequenceError`] when the string is neither a sentinel nor a
    /// sequence number.
    pub fn from_parts(sequence: &str, sub_sequence: u64) -> Result<Self, ParseSequenceError> {
        Ok(match sequence {
            "TRIM_HORIZON" => Checkpoint::TrimHorizon,
            "LATEST" => Checkpoint::Latest,
            "AT_TIMESTAMP" => Checkpoint::AtTimestamp,
            "SHARD_END" => Checkpoint::ShardEnd,
            other => Checkpoint::At(Position::new(SequenceNumber::parse(other)?, sub_sequence)),
        })
    }

    /// True for `SHARD_END`.
    pub fn is_shard_end(&self) -> bool {
        matches!(self, Checkpoint::ShardEnd)
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Checkpoint::At(p) => write!(f, "{p}"),
            other => f.write_str(&other.sequence_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compares_numerically_not_lexically() {
        let small = SequenceNumber::parse("9").unwrap();
        let big = SequenceNumber::parse("10").unwrap();
        assert!(small < big);
        let kinesis = SequenceNumber::parse("49590338271490256608559692538361571095921575989136588898").unwrap();
        let next = SequenceNumber::parse("49590338271490256608559692538361571095921575989136588899").unwrap();
        assert!(kinesis < next);
        assert_eq!(SequenceNumber::parse("007").unwrap(), SequenceNumber::parse("7").unwrap());
    }

    #[test]
    fn rejects_non_digits() {
        assert!(SequenceNumber::parse("").is_err());
        assert!(SequenceNumber::parse("12a").is_err());
        assert!(SequenceNumber::parse("-1").is_err());
    }

    #[test]
    fn checkpoint_round_trips_sentinels() {
        for s in ["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP", "SHARD_END"] {
            assert_eq!(Checkpoint::from_parts(s, 0).unwrap().sequence_string(), s);
        }
        let c = Checkpoint::from_parts("123", 4).unwrap();
        assert_eq!(c.sequence_string(), "123");
        assert_eq!(c.sub_sequence(), 4);
    }

    proptest! {
        #[test]
        fn order_matches_u128(a in any::<u128>(), b in any::<u128>()) {
            let sa = SequenceNumber::parse(&a.to_string()).unwrap();
            let sb = SequenceNumber::parse(&b.to_string()).unwrap();
            prop_assert_eq!(sa.cmp(&sb), a.cmp(&b));
        }
    }
}
