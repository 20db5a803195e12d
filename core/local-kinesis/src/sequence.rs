//! Sequence numbers: 56-digit decimal strings laid out like the service's.
//!
//! A real Kinesis sequence number is a 188-bit integer printed in decimal.
//! Its hexadecimal digits are, from the top: the version `2`, the shard's
//! creation time (9 hex digits of epoch seconds), the low nibble of the
//! shard index, a 64-bit per-shard record counter, one byte (zero), the
//! arrival time (9 hex digits of epoch seconds), the shard index (8 hex
//! digits) and a final `2`. The leading `2` puts every number between
//! 2·16⁴⁶ and 3·16⁴⁶, so all have 56 digits (the familiar `4959…`) and
//! compare as strings too. Within a shard the counter dominates, so the
//! numbers increase with every record; the counter is also how this server
//! finds a record ([`SequenceNumber::index`]).

/// The counter value of a closed shard's `EndingSequenceNumber` (above any
/// record's).
pub(crate) const ENDING_INDEX: u64 = 0x7fff_ffff_ffff_ffff;

/// The parts of a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SequenceNumber {
    /// Shard creation time, epoch seconds (36 bits).
    pub shard_created_secs: u64,
    /// Shard index (`shardId-000000000007` → 7).
    pub shard_index: u32,
    /// Per-shard record counter.
    pub index: u64,
    /// Arrival time, epoch seconds (36 bits).
    pub arrival_secs: u64,
}

const SECS_MASK: u64 = (1 << 36) - 1;

fn set(limbs: &mut [u64; 3], offset: u32, width: u32, value: u64) {
    let value = if width == 64 { value } else { value & ((1u64 << width) - 1) };
    let limb = (offset / 64) as usize;
    let shift = offset % 64;
    limbs[limb] |= value << shift;
    if shift + width > 64 && limb + 1 < 3 {
        limbs[limb + 1] |= value >> (64 - shift);
    }
}

fn get(limbs: &[u64; 3], offset: u32, width: u32) -> u64 {
    let limb = (offset / 64) as usize;
    let shift = offset % 64;
    let mut value = limbs[limb] >> shift;
    if shift + width > 64 && limb + 1 < 3 {
        value |= limbs[limb + 1] << (64 - shift);
    }
    if width == 64 {
        value
    } else {
        value & ((1u64 << width) - 1)
    }
}

impl SequenceNumber {
    fn limbs(&self) -> [u64; 3] {
        let mut limbs = [0u64; 3];
        set(&mut limbs, 0, 4, 2);
        set(&mut limbs, 4, 32, u64::from(self.shard_index));
        set(&mut limbs, 36, 36, self.arrival_secs & SECS_MASK);
        set(&mut limbs, 80, 64, self.index);
        set(&mut limbs, 144, 4, u64::from(self.shard_index & 0xf));
        set(&mut limbs, 148, 36, self.shard_created_secs & SECS_MASK);
        set(&mut limbs, 184, 4, 2);
        limbs
    }

    /// The 56-digit decimal form.
    pub(crate) fn to_decimal(self) -> String {
        const CHUNK: u128 = 10_000_000_000_000_000_000; // 10^19
        let mut limbs = self.limbs();
        let mut chunks = [0u64; 3];
        for chunk in &mut chunks {
            let mut remainder: u128 = 0;
            for limb in limbs.iter_mut().rev() {
                let current = (remainder << 64) | u128::from(*limb);
                *limb = (current / CHUNK) as u64;
                remainder = current % CHUNK;
            }
            *chunk = remainder as u64;
        }
        format!("{}{:019}{:019}", chunks[2], chunks[1], chunks[0])
    }

    /// Parses a decimal sequence number; `None` when it is not one this
    /// server could have written.
    pub(crate) fn parse(text: &str) -> Option<SequenceNumber> {
        if text.is_empty() || text.len() > 60 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut limbs = [0u64; 3];
        for digit in text.bytes() {
            let mut carry = u128::from(digit - b'0');
            for limb in &mut limbs {
                let current = u128::from(*limb) * 10 + carry;
                *limb = current as u64;
                carry = current >> 64;
            }
            if carry != 0 {
                return None;
            }
        }
        if get(&limbs, 184, 8) != 2 || limbs[2] >> 60 != 0 || get(&limbs, 0, 4) != 2 || get(&limbs, 72, 8) != 0 {
            return None;
        }
        let shard_index = get(&limbs, 4, 32) as u32;
        if get(&limbs, 144, 4) != u64::from(shard_index & 0xf) {
            return None;
        }
        Some(SequenceNumber {
            shard_created_secs: get(&limbs, 148, 36),
            shard_index,
            index: get(&limbs, 80, 64),
            arrival_secs: get(&limbs, 36, 36),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(index: u64) -> SequenceNumber {
        SequenceNumber { shard_created_secs: 1_700_000_000, shard_index: 3, index, arrival_secs: 1_700_000_100 }
    }

    #[test]
    fn has_56_digits_and_round_trips() {
        for index in [0, 1, 255, 1 << 40, ENDING_INDEX] {
            let text = seq(index).to_decimal();
            assert_eq!(text.len(), 56, "{text}");
            assert!(text.starts_with("49") || text.starts_with('5') || text.starts_with('6') || text.starts_with('7'), "{text}");
            assert_eq!(SequenceNumber::parse(&text), Some(seq(index)));
        }
    }

    #[test]
    fn increases_with_the_counter_even_when_the_clock_goes_back() {
        let a = seq(10).to_decimal();
        let b = SequenceNumber { arrival_secs: 1, ..seq(11) }.to_decimal();
        assert!(a < b);
    }

    #[test]
    fn rejects_numbers_from_elsewhere() {
        assert_eq!(SequenceNumber::parse("12345"), None);
        assert_eq!(SequenceNumber::parse("abc"), None);
        assert_eq!(SequenceNumber::parse(""), None);
        assert_eq!(SequenceNumber::parse(&"9".repeat(60)), None);
    }
}
