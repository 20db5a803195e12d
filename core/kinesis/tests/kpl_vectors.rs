//! KPL test vectors made with AWS's own `aws-kinesis-agg` (see
//! `scripts/kpl/gen_vectors.py`): our decoder reads its aggregates, our
//! encoder produces byte-identical aggregates for the same input (so
//! aws-kinesis-agg's, the KPL's and the KCL's decoders read ours), and
//! corrupted blobs get the Java KCL's treatment.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde_json::Value;
use shardline_api::ShardInfo;
use shardline_kinesis::kpl::{aggregate, deaggregate, UserRecord};
use shardline_kinesis::{user_records, RecordContext};

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/kpl_vectors.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["vectors"].as_array().unwrap().clone()
}

fn b64(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().unwrap()).unwrap()
}

fn expected_users(v: &Value) -> Vec<UserRecord> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| UserRecord {
            partition_key: r["partition_key"].as_str().unwrap().to_owned(),
            explicit_hash_key: r["explicit_hash_key"].as_str().map(str::to_owned),
            data: Bytes::from(b64(&r["data"])),
        })
        .collect()
}

fn read_through_source(blob: Vec<u8>) -> Vec<shardline_api::Record> {
    let shard = ShardInfo {
        shard_id: "shardId-000000000000".into(),
        parent_shard_ids: vec![],
        starting_hash_key: "0".into(),
        ending_hash_key: u128::MAX.to_string(),
        closed: false,
    };
    let ctx = RecordContext::new("test", "stream", &shard);
    let record = aws_sdk_kinesis::types::Record::builder()
        .sequence_number("49590338271490256608559692538361571095921575989136588898")
        .partition_key("outer")
        .data(aws_smithy_types::Blob::new(blob))
        .build()
        .unwrap();
    user_records(vec![record], &ctx, None).unwrap().records
}

#[test]
fn valid_vectors_decode_and_encode_identically() {
    let mut seen = 0;
    for v in vectors().iter().filter(|v| v["kind"] == "valid") {
        let name = v["name"].as_str().unwrap();
        let blob = b64(&v["aggregate"]);
        let expected = expected_users(&v["expected"]);
        assert_eq!(deaggregate(&Bytes::from(blob.clone())).as_ref(), Some(&expected), "{name}: deaggregate");

        let input = expected_users(&v["input"]);
        assert_eq!(aggregate(&input), blob, "{name}: aggregate() differs from aws-kinesis-agg's bytes");

        let records = read_through_source(blob);
        assert_eq!(records.len(), expected.len(), "{name}");
        for (i, (record, want)) in records.iter().zip(&expected).enumerate() {
            assert_eq!(record.meta.sub_sequence_number, i as u64, "{name}");
            assert_eq!(v["expected"][i]["sub_sequence_number"], i, "{name}");
            assert!(record.meta.aggregated, "{name}");
            assert_eq!(record.meta.partition_key, want.partition_key, "{name}");
            assert_eq!(record.meta.explicit_hash_key, want.explicit_hash_key, "{name}");
            assert_eq!(record.payload.to_bytes(), want.data, "{name}");
        }
        seen += 1;
    }
    assert!(seen >= 8, "only {seen} valid vectors");
}

#[test]
fn corrupted_vectors_get_the_kcl_treatment() {
    let mut seen = 0;
    for v in vectors().iter().filter(|v| v["kind"] != "valid") {
        let name = v["name"].as_str().unwrap();
        let blob = b64(&v["aggregate"]);
        // the public decoder rejects every corrupted blob
        assert_eq!(deaggregate(&Bytes::from(blob.clone())), None, "{name}");
        let kind = v.get("kcl_kind").unwrap_or(&v["kind"]).as_str().unwrap();
        let records = read_through_source(blob.clone());
        match kind {
            "passthrough" => {
                assert_eq!(records.len(), 1, "{name}");
                assert!(!records[0].meta.aggregated, "{name}");
                assert_eq!(records[0].meta.partition_key, "outer", "{name}");
                assert_eq!(records[0].payload.to_bytes(), Bytes::from(blob), "{name}");
            }
            "partial" => {
                let expected = expected_users(&v["expected"]);
                let got: Vec<UserRecord> = records
                    .iter()
                    .map(|r| UserRecord {
                        partition_key: r.meta.partition_key.clone(),
                        explicit_hash_key: r.meta.explicit_hash_key.clone(),
                        data: r.payload.to_bytes(),
                    })
                    .collect();
                assert_eq!(got, expected, "{name}");
            }
            other => panic!("{name}: unknown kind {other}"),
        }
        seen += 1;
    }
    assert!(seen >= 8, "only {seen} corrupted vectors");
}
