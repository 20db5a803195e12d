//! KPL aggregation: the format the Kinesis Producer Library (and
//! `aws-kinesis-agg`) uses to pack many user records into one Kinesis record.
//!
//! Layout: `MAGIC (4 bytes) | AggregatedRecord protobuf | MD5(protobuf) (16 bytes)`,
//! see <https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md>.
//!
//! [`deaggregate`] is the plain decoder; the shard readers use the same
//! parser through [`crate::user_records`], which adds the Java KCL's
//! hash-range filtering and error handling.

mod proto;

use bytes::Bytes;
use md5::{Digest, Md5};

use proto::{AggregatedMessage, ProtoError};

/// The four bytes every aggregated record starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

const DIGEST_SIZE: usize = 16;

/// One user record inside an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Partition key the producer gave the user record.
    pub partition_key: String,
    /// Explicit hash key (a decimal 128-bit number), when the producer set one.
    pub explicit_hash_key: Option<String>,
    /// The user record's data; a zero-copy slice of the aggregate's buffer
    /// when it came from [`deaggregate`].
    pub data: Bytes,
}

/// Splits an aggregated record into its user records.
///
/// Returns `None` when `data` is not a valid aggregate: too short, bad magic,
/// MD5 mismatch, a protobuf that does not parse (including a missing
/// required field) or a key-table index out of range. Callers then pass the
/// record through unchanged. (The shard readers treat an index out of range
/// the way the Java KCL does instead; see [`crate::user_records`].)
///
/// An aggregate holding no user record at all is only recognised when its
/// protobuf is non-empty, as in the KCL: `MAGIC | MD5("")` is not an aggregate.
pub fn deaggregate(data: &Bytes) -> Option<Vec<UserRecord>> {
    let message = parse(data).ok()?;
    let mut out = Vec::with_capacity(message.records.len());
    for index in 0..message.records.len() {
        out.push(user_record(&message, index).ok()?);
    }
    Some(out)
}

/// Encodes `records` as one aggregated record.
///
/// Key tables hold each distinct key once, in order of first use, and an
/// explicit hash key is written only when set, exactly as `aws-kinesis-agg`
/// and the KPL do, so the bytes equal theirs for the same input. The caller
/// keeps the aggregate under Kinesis' 1 MiB record limit.
pub fn aggregate(records: &[UserRecord]) -> Vec<u8> {
    let mut pks: Vec<&str> = Vec::new();
    let mut ehks: Vec<&str> = Vec::new();
    let mut pk_index = std::collections::HashMap::new();
    let mut ehk_index = std::collections::HashMap::new();
    let mut encoded = Vec::with_capacity(records.len());
    for record in records {
        let pk = *pk_index.entry(record.partition_key.as_str()).or_insert_with(|| {
            pks.push(record.partition_key.as_str());
            pks.len() as u64 - 1
        });
        let ehk = record.explicit_hash_key.as_deref().map(|key| {
            *ehk_index.entry(key).or_insert_with(|| {
                ehks.push(key);
                ehks.len() as u64 - 1
            })
        });
        encoded.push((pk, ehk, &record.data[..]));
    }
    let body = proto::encode_aggregated(&pks, &ehks, &encoded);
    let mut out = Vec::with_capacity(MAGIC.len() + body.len() + DIGEST_SIZE);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    out
}

/// The hash key Kinesis (and the KCL) use to place a user record: the
/// explicit hash key when set, otherwise the MD5 of the UTF-8 partition key
/// read as an unsigned 128-bit big-endian integer.
///
/// An explicit hash key that is not a decimal number (Kinesis rejects such
/// keys at put time) falls back to the partition key's hash; one outside
/// `0..=2^128-1` saturates.
pub fn effective_hash_key(partition_key: &str, explicit_hash_key: Option<&str>) -> u128 {
    match explicit_hash_key.map(parse_hash_key) {
        Some(Ok(HashKey::Value(v))) => v,
        Some(Ok(HashKey::Negative)) => 0,
        Some(Ok(HashKey::TooLarge)) => u128::MAX,
        Some(Err(_)) | None => partition_key_hash(partition_key),
    }
}

fn partition_key_hash(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// An explicit hash key read the way `java.math.BigInteger(String)` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashKey {
    Value(u128),
    /// Below zero: below every shard's range.
    Negative,
    /// Above 2^128-1: above every shard's range.
    TooLarge,
}

/// `BigInteger(String)`'s grammar: an optional sign and one or more decimal
/// digits; anything else is a `NumberFormatException`.
pub(crate) fn parse_hash_key(text: &str) -> Result<HashKey, ()> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        return Ok(HashKey::Value(0));
    }
    if negative {
        return Ok(HashKey::Negative);
    }
    Ok(trimmed.parse::<u128>().map_or(HashKey::TooLarge, HashKey::Value))
}

/// The KCL's effective hash key, or `Err` where the KCL's
/// `effectiveHashKey` throws (an explicit hash key that is not a number).
pub(crate) fn checked_effective_hash_key(partition_key: &str, explicit_hash_key: Option<&str>) -> Result<HashKey, ()> {
    match explicit_hash_key {
        Some(key) => parse_hash_key(key),
        None => Ok(HashKey::Value(partition_key_hash(partition_key))),
    }
}

/// Why a sub-record could not be built from a parsed aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IndexError {
    PartitionKey { index: u64, table_len: usize },
    ExplicitHashKey { index: u64, table_len: usize },
}

impl std::fmt::Display for IndexError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexError::PartitionKey { index, table_len } => {
                write!(f, "partition key index {index} out of range (table has {table_len} keys)")
            }
            IndexError::ExplicitHashKey { index, table_len } => {
                write!(f, "explicit hash key index {index} out of range (table has {table_len} keys)")
            }
        }
    }
}

/// Checks magic, length and MD5 and parses the protobuf. `Err(())` means
/// "not an aggregate": the KCL passes such a record through unchanged.
pub(crate) fn parse(data: &Bytes) -> Result<Aggregate, ()> {
    if data.len() < MAGIC.len() || data[..MAGIC.len()] != MAGIC || data.len() - MAGIC.len() <= DIGEST_SIZE {
        return Err(());
    }
    let body_end = data.len() - DIGEST_SIZE;
    let digest = Md5::digest(&data[MAGIC.len()..body_end]);
    if digest[..] != data[body_end..] {
        return Err(());
    }
    proto::decode_aggregated(data, MAGIC.len(), body_end).map_err(|_: ProtoError| ())
}

/// Test access to the raw protobuf encoder (to build invalid aggregates).
#[cfg(test)]
pub(crate) mod proto_for_tests {
    pub(crate) fn encode(pks: &[&str], ehks: &[&str], records: &[(u64, Option<u64>, &[u8])]) -> Vec<u8> {
        super::proto::encode_aggregated(pks, ehks, records)
    }
}

/// A parsed aggregate.
pub(crate) type Aggregate = AggregatedMessage;

/// Builds the user record at `index` of a parsed aggregate.
pub(crate) fn user_record(message: &Aggregate, index: usize) -> Result<UserRecord, IndexError> {
    let record = &message.records[index];
    let pk_table = &message.partition_key_table;
    let partition_key = usize::try_from(record.partition_key_index)
        .ok()
        .and_then(|i| pk_table.get(i))
        .ok_or(IndexError::PartitionKey { index: record.partition_key_index, table_len: pk_table.len() })?;
    let explicit_hash_key = match record.explicit_hash_key_index {
        None => None,
        Some(index) => {
            let table = &message.explicit_hash_key_table;
            let key = usize::try_from(index)
                .ok()
                .and_then(|i| table.get(i))
                .ok_or(IndexError::ExplicitHashKey { index, table_len: table.len() })?;
            Some(key.clone())
        }
    };
    Ok(UserRecord { partition_key: partition_key.clone(), explicit_hash_key, data: record.data.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn user(pk: &str, ehk: Option<&str>, data: &[u8]) -> UserRecord {
        UserRecord { partition_key: pk.to_owned(), explicit_hash_key: ehk.map(str::to_owned), data: Bytes::copy_from_slice(data) }
    }

    #[test]
    fn round_trip_with_shared_keys() {
        let records = vec![user("a", None, b"1"), user("b", Some("42"), b""), user("a", Some("42"), b"3")];
        let blob = Bytes::from(aggregate(&records));
        assert_eq!(blob[..4], MAGIC);
        assert_eq!(deaggregate(&blob), Some(records));
    }

    #[test]
    fn not_aggregates() {
        assert_eq!(deaggregate(&Bytes::from_static(b"plain json {}")), None);
        assert_eq!(deaggregate(&Bytes::from_static(&[0xF3, 0x89, 0x9A])), None);
        // magic + MD5 of an empty protobuf: the KCL does not treat it as an aggregate
        assert_eq!(deaggregate(&Bytes::from(aggregate(&[]))), None);
        let mut blob = aggregate(&[user("a", None, b"x")]);
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert_eq!(deaggregate(&Bytes::from(blob)), None);
    }

    #[test]
    fn index_out_of_range_is_not_an_aggregate() {
        let body = proto::encode_aggregated(&["a"], &[], &[(0, None, b"x"), (1, None, b"y")]);
        let mut blob = MAGIC.to_vec();
        blob.extend_from_slice(&body);
        blob.extend_from_slice(&Md5::digest(&body));
        assert_eq!(deaggregate(&Bytes::from(blob)), None);
    }

    #[test]
    fn effective_hash_keys() {
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(effective_hash_key("a", None), 0x0cc175b9c0f1b6a831c399e269772661);
        assert_eq!(effective_hash_key("a", Some("17")), 17);
        assert_eq!(effective_hash_key("a", Some("340282366920938463463374607431768211455")), u128::MAX);
        assert_eq!(effective_hash_key("a", Some("340282366920938463463374607431768211456")), u128::MAX);
        assert_eq!(effective_hash_key("a", Some("-5")), 0);
        assert_eq!(effective_hash_key("a", Some("x1")), effective_hash_key("a", None));
        assert_eq!(parse_hash_key("+0012"), Ok(HashKey::Value(12)));
        assert_eq!(parse_hash_key("-0"), Ok(HashKey::Value(0)));
        assert_eq!(parse_hash_key(""), Err(()));
        assert_eq!(parse_hash_key("-"), Err(()));
    }

    fn arb_user() -> impl Strategy<Value = UserRecord> {
        (
            prop::sample::select(vec!["", "a", "key", "ключ", "🔑", "a-much-longer-partition-key-0123456789"]),
            prop::option::of(prop::sample::select(vec!["0", "1", "170141183460469231731687303715884105728"])),
            prop::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(|(pk, ehk, data)| user(pk, ehk, &data))
    }

    proptest! {
        #[test]
        fn aggregate_then_deaggregate(records in prop::collection::vec(arb_user(), 1..40)) {
            let blob = Bytes::from(aggregate(&records));
            prop_assert_eq!(deaggregate(&blob), Some(records));
        }

        #[test]
        fn deaggregate_never_panics(mut body in prop::collection::vec(any::<u8>(), 0..200)) {
            let digest = Md5::digest(&body);
            let mut blob = MAGIC.to_vec();
            blob.append(&mut body);
            blob.extend_from_slice(&digest);
            let _ = deaggregate(&Bytes::from(blob));
        }
    }
}
