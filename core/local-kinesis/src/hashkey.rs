//! Hash keys: the 128-bit space a stream's shards partition.
//!
//! A record's hash key is its `ExplicitHashKey`, else the MD5 digest of its
//! partition key read as a big-endian 128-bit integer, as the service does.

use md5::{Digest, Md5};

/// The hash key of a partition key.
pub(crate) fn of_partition_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// A decimal hash key in `[0, 2^128 - 1]`.
pub(crate) fn parse(text: &str) -> Option<u128> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `floor(i * 2^128 / n)`, the first hash key of shard `i` of `n` equal
/// shards (the service's split points: 2 shards split at 2^127).
pub(crate) fn uniform_start(i: u32, n: u32) -> u128 {
    if i == 0 || n == 0 {
        return 0;
    }
    let n128 = u128::from(n);
    // 2^128 = q * n + r
    let (mut q, mut r) = (u128::MAX / n128, u128::MAX % n128 + 1);
    if r == n128 {
        q += 1;
        r = 0;
    }
    let i128 = u128::from(i);
    i128 * q + (i128 * r) / n128
}

/// The hash key ranges of `n` equal shards.
pub(crate) fn uniform_ranges(n: u32) -> Vec<(u128, u128)> {
    (0..n)
        .map(|i| {
            let end = if i + 1 == n { u128::MAX } else { uniform_start(i + 1, n) - 1 };
            (uniform_start(i, n), end)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_the_service() {
        let two = uniform_ranges(2);
        assert_eq!(two[1].0, 1u128 << 127);
        let three = uniform_ranges(3);
        assert_eq!(three[1].0.to_string(), "113427455640312821154458202477256070485");
        assert_eq!(three[2].0.to_string(), "226854911280625642308916404954512140970");
        assert_eq!(three[2].1, u128::MAX);
        for n in 1..20 {
            let ranges = uniform_ranges(n);
            assert_eq!(ranges[0].0, 0);
            for pair in ranges.windows(2) {
                assert_eq!(pair[0].1 + 1, pair[1].0);
            }
        }
    }

    #[test]
    fn partition_keys_hash_with_md5() {
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(of_partition_key("a"), 0x0cc175b9c0f1b6a831c399e269772661);
        assert_eq!(parse("340282366920938463463374607431768211455"), Some(u128::MAX));
        assert_eq!(parse("340282366920938463463374607431768211456"), None);
        assert_eq!(parse("-1"), None);
    }
}
