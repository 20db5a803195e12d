//! The harness's own KPL encoder (used by the end-to-end tests, written
//! independently of the code under test) and `shardline_kinesis::kpl`
//! agree byte for byte, and the decoder reads the harness's aggregates back.

use bytes::Bytes;
use shardline_e2e::{kpl_aggregate, TestRecord};
use shardline_kinesis::kpl;

fn cases() -> Vec<Vec<TestRecord>> {
    let r = |pk: &str, ehk: Option<&str>, data: &[u8]| TestRecord {
        partition_key: pk.to_owned(),
        explicit_hash_key: ehk.map(str::to_owned),
        data: data.to_vec(),
    };
    vec![
        vec![r("a", None, b"x")],
        vec![
            r("a", None, b""),
            r("b", None, b"yz"),
            r("a", None, b"again"),
        ],
        vec![
            r("k", Some("0"), b"1"),
            r("k", Some("340282366920938463463374607431768211455"), b"2"),
            r("j", None, b"3"),
        ],
        (0..300)
            .map(|i| {
                r(
                    &format!("pk-{}", i % 7),
                    None,
                    format!("{{\"i\":{i}}}").as_bytes(),
                )
            })
            .collect(),
        vec![r("big", None, &vec![0xAB; 200_000])],
    ]
}

#[test]
fn harness_encoder_matches_shardline_kinesis_byte_for_byte() {
    for records in cases() {
        let theirs: Vec<kpl::UserRecord> = records
            .iter()
            .map(|r| kpl::UserRecord {
                partition_key: r.partition_key.clone(),
                explicit_hash_key: r.explicit_hash_key.clone(),
                data: Bytes::from(r.data.clone()),
            })
            .collect();
        let ours = kpl_aggregate(&records);
        assert_eq!(
            ours,
            kpl::aggregate(&theirs),
            "encodings differ for {} records",
            records.len()
        );
        let decoded = kpl::deaggregate(&Bytes::from(ours))
            .expect("shardline_kinesis decodes the harness's aggregate");
        assert_eq!(decoded, theirs);
    }
}

#[test]
fn effective_hash_keys_agree() {
    for record in cases().into_iter().flatten() {
        assert_eq!(
            record.hash_key(),
            kpl::effective_hash_key(&record.partition_key, record.explicit_hash_key.as_deref()),
            "hash key of {:?}/{:?}",
            record.partition_key,
            record.explicit_hash_key
        );
    }
}
