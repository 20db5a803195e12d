//! Ordering Kinesis sequence numbers and lease checkpoints.
//!
//! Sequence numbers are decimal strings of up to 56 digits (more than a
//! u128 holds), so they are compared by length, then lexically, after
//! dropping leading zeros.

use std::cmp::Ordering;

/// True for a non-empty string of ASCII digits.
pub fn is_sequence_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Numeric order of two decimal sequence numbers.
///
/// # Panics
/// When either is not a decimal string.
pub fn cmp_sequence(a: &str, b: &str) -> Ordering {
    assert!(is_sequence_number(a), "not a sequence number: {a:?}");
    assert!(is_sequence_number(b), "not a sequence number: {b:?}");
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn checkpoint_rank(checkpoint: &str) -> u8 {
    match checkpoint {
        "TRIM_HORIZON" | "LATEST" | "AT_TIMESTAMP" => 0,
        "SHARD_END" => 2,
        s if is_sequence_number(s) => 1,
        _ => 3,
    }
}

/// Order of two lease checkpoints `(checkpoint, checkpointSubSequenceNumber)`:
/// the KCL sentinels `TRIM_HORIZON`/`LATEST`/`AT_TIMESTAMP` come before any
/// sequence number, `SHARD_END` after all of them.
///
/// # Panics
/// On a checkpoint that is neither a sentinel nor a sequence number.
pub fn cmp_checkpoint(a: (&str, u64), b: (&str, u64)) -> Ordering {
    let (ra, rb) = (checkpoint_rank(a.0), checkpoint_rank(b.0));
    assert!(ra < 3, "unknown checkpoint value {:?}", a.0);
    assert!(rb < 3, "unknown checkpoint value {:?}", b.0);
    ra.cmp(&rb).then_with(|| {
        if ra == 1 {
            cmp_sequence(a.0, b.0).then(a.1.cmp(&b.1))
        } else {
            Ordering::Equal
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_sequence_numbers_compare_numerically() {
        let small = "49590338271490256608559692538361571095921575989136588898";
        let bigger = "49590338271490256608559692540925702759324208523137515618";
        assert_eq!(cmp_sequence(small, bigger), Ordering::Less);
        assert_eq!(cmp_sequence("9", "10"), Ordering::Less);
        assert_eq!(cmp_sequence("010", "10"), Ordering::Equal);
    }

    #[test]
    fn sentinels_bracket_sequence_numbers() {
        assert_eq!(
            cmp_checkpoint(("TRIM_HORIZON", 0), ("1", 0)),
            Ordering::Less
        );
        assert_eq!(
            cmp_checkpoint(("SHARD_END", 0), ("999999", 5)),
            Ordering::Greater
        );
        assert_eq!(cmp_checkpoint(("5", 1), ("5", 0)), Ordering::Greater);
    }
}
