//! An independent KPL aggregated-record encoder for the tests.
//!
//! Deliberately separate from `shardline_kinesis::kpl`: the end-to-end test
//! of de-aggregation should not share its understanding of the format with
//! the code under test. Format (the KPL's `aggregation-format.md`):
//! magic `F3 89 9A C2`, then a protobuf `AggregatedRecord`
//! `{ repeated string partition_key_table = 1; repeated string
//! explicit_hash_key_table = 2; repeated Record records = 3; }` with
//! `Record { uint64 partition_key_index = 1; optional uint64
//! explicit_hash_key_index = 2; bytes data = 3; }`, then the MD5 of the
//! protobuf bytes.

use md5::{Digest, Md5};

use crate::kinesis::TestRecord;

/// The four bytes every KPL aggregate starts with.
pub const AGGREGATION_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint_field(out: &mut Vec<u8>, field: u64, v: u64) {
    put_varint(out, field << 3);
    put_varint(out, v);
}

fn index_of(table: &mut Vec<String>, key: &str) -> u64 {
    match table.iter().position(|k| k == key) {
        Some(i) => i as u64,
        None => {
            table.push(key.to_owned());
            (table.len() - 1) as u64
        }
    }
}

/// Encodes `records` as one KPL aggregated record (the Kinesis record's
/// data). Partition and explicit hash keys are deduplicated in the tables,
/// as the KPL does.
pub fn aggregate(records: &[TestRecord]) -> Vec<u8> {
    let mut pk_table = Vec::new();
    let mut ehk_table = Vec::new();
    let mut encoded_records = Vec::new();
    for record in records {
        let mut r = Vec::new();
        put_varint_field(&mut r, 1, index_of(&mut pk_table, &record.partition_key));
        if let Some(ehk) = &record.explicit_hash_key {
            put_varint_field(&mut r, 2, index_of(&mut ehk_table, ehk));
        }
        put_bytes_field(&mut r, 3, &record.data);
        encoded_records.push(r);
    }
    let mut proto = Vec::new();
    for pk in &pk_table {
        put_bytes_field(&mut proto, 1, pk.as_bytes());
    }
    for ehk in &ehk_table {
        put_bytes_field(&mut proto, 2, ehk.as_bytes());
    }
    for r in &encoded_records {
        put_bytes_field(&mut proto, 3, r);
    }
    let digest = Md5::digest(&proto);
    let mut out = Vec::with_capacity(4 + proto.len() + 16);
    out.extend_from_slice(&AGGREGATION_MAGIC);
    out.extend_from_slice(&proto);
    out.extend_from_slice(&digest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_a_known_aggregate() {
        let records = [
            TestRecord {
                partition_key: "a".into(),
                explicit_hash_key: None,
                data: b"x".to_vec(),
            },
            TestRecord {
                partition_key: "a".into(),
                explicit_hash_key: Some("5".into()),
                data: b"yz".to_vec(),
            },
        ];
        let bytes = aggregate(&records);
        assert_eq!(&bytes[..4], &AGGREGATION_MAGIC);
        let proto = &bytes[4..bytes.len() - 16];
        // pk table ["a"], ehk table ["5"], record {pk 0, data "x"}, record {pk 0, ehk 0, data "yz"}
        let expected: &[u8] = &[
            0x0a, 1, b'a', //
            0x12, 1, b'5', //
            0x1a, 5, 0x08, 0, 0x1a, 1, b'x', //
            0x1a, 8, 0x08, 0, 0x10, 0, 0x1a, 2, b'y', b'z',
        ];
        assert_eq!(proto, expected);
        assert_eq!(&bytes[bytes.len() - 16..], Md5::digest(proto).as_slice());
    }
}
