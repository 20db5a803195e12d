//! The `dynamodb` sink against dynalite, driven through the plugin host:
//! records land as the items the mapping says, records DynamoDB would
//! refuse are rejected with DynamoDB's reason while the rest of the batch
//! lands (including an item only the service can refuse, isolated with
//! per-item `PutItem`), duplicate keys collapse to the last record, and a
//! missing table is a permanent error naming it.

mod support;

use aws_sdk_dynamodb::types::{AttributeValue, ScalarAttributeType as T};
use serde_json::json;
use shardline_api::{ErrorKind, RecordStatus};
use support::{client, create_table, dynalite, record, scan, scan_json, sink, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_is_a_permanent_error_naming_it() {
    let Some(endpoint) = dynalite() else { return };
    let table = unique("missing");
    let sink = sink(json!({ "table": table, "endpoint": endpoint, "region": "us-east-1" }), "missing");
    let err = sink.healthcheck().await.expect_err("no such table");
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
    assert!(err.message.contains(&format!("`{table}`")) && err.message.contains("not found"), "{err}");
    let err = sink.send(&[record(0, r#"{"id":"a"}"#)]).await.expect_err("no such table");
    assert_eq!(err.kind, ErrorKind::Permanent, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_land_as_the_mapping_says() {
    let Some(endpoint) = dynalite() else { return };
    let dynamo = client(&endpoint);
    let table = unique("mapping");
    create_table(&dynamo, &table, ("pk", T::S), Some(("n", T::N)), None).await;
    let config = json!({
        "table": table, "endpoint": endpoint, "region": "us-east-1",
        "rename": { "user": "pk" },
        "attributes": ["user", "n", "nested", "big", "blob", "raw", "flag", "nothing", "list"],
        "binary_fields": ["raw"],
        "add_metadata": true,
    });
    let sink = sink(config, "mapping");
    sink.healthcheck().await.expect("the table exists");
    let data = json!({
        "user": "u-1", "n": 7, "dropped": "not kept",
        "nested": { "a": { "b": [1, "two", null, { "$binary": "AAEC" }] } },
        "big": 0, "blob": { "$binary": "/wAK" }, "raw": "aGVsbG8=", "flag": true, "nothing": null, "list": [],
    })
    .to_string()
    .replace("\"big\":0", "\"big\":12345678901234567890123456789012345678");
    let statuses = sink.send(&[record(0, data)]).await.expect("send");
    assert_eq!(statuses, [RecordStatus::Delivered]);

    let items = scan(&dynamo, &table).await;
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(item["pk"], AttributeValue::S("u-1".into()));
    assert!(!item.contains_key("user") && !item.contains_key("dropped"));
    assert_eq!(item["big"], AttributeValue::N("12345678901234567890123456789012345678".into()), "38 digits, exact");
    assert_eq!(item["raw"], AttributeValue::B(b"hello".to_vec().into()));
    assert_eq!(item["blob"], AttributeValue::B(vec![0xff, 0x00, 0x0a].into()));
    assert_eq!(item["kinesis_shard_id"], AttributeValue::S("shardId-000000000004".into()));
    assert_eq!(item["kinesis_sequence_number"], AttributeValue::S("49590338271490256608559692538361571095921575989136581000".into()));
    assert_eq!(item["kinesis_sub_sequence_number"], AttributeValue::N("0".into()));
    let back = shardline_sink_dynamodb::item_to_json(item);
    assert_eq!(back["nested"], json!({ "a": { "b": [1, "two", null, { "$binary": "AAEC" }] } }));
    assert_eq!((back["flag"].clone(), back["nothing"].clone(), back["list"].clone()), (json!(true), json!(null), json!([])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_records_are_rejected_with_the_reason_and_the_rest_lands() {
    let Some(endpoint) = dynalite() else { return };
    let dynamo = client(&endpoint);
    let table = unique("refused");
    // A global secondary index on `category` (S): an item whose category
    // is a number is refused by the service only (the sink checks the
    // table's key, not index keys), which exercises the per-item fallback.
    create_table(&dynamo, &table, ("id", T::S), None, Some(("category", T::S))).await;
    let sink = sink(json!({ "table": table, "endpoint": endpoint, "region": "us-east-1" }), "refused");
    let big = "x".repeat(400 * 1024);
    let batch = vec![
        record(0, r#"{"id":"good-0","category":"a"}"#),
        record(1, format!(r#"{{"id":"too-big","blob":"{big}"}}"#)),
        record(2, r#"{"id":42}"#),
        record(3, r#"{"no_id":true}"#),
        record(4, "this is not json"),
        record(5, r#"{"id":"dup","v":1}"#),
        record(6, r#"{"id":"index-type","category":5}"#),
        record(7, r#"{"id":"dup","v":2}"#),
        record(8, r#"{"id":"deep","n":1e400}"#),
        record(9, r#"{"id":"good-9"}"#),
    ];
    let statuses = sink.send(&batch).await.expect("send");
    let reason = |i: usize| match &statuses[i] {
        RecordStatus::Rejected { reason } => reason.clone(),
        other => panic!("record {i}: expected rejected, got {other:?}"),
    };
    assert!(reason(1).contains("Item size has exceeded the maximum allowed size"), "{}", reason(1));
    assert!(reason(2).contains("Type mismatch for key id expected: S actual: N"), "{}", reason(2));
    assert!(reason(3).contains("Missing the key id in the item"), "{}", reason(3));
    assert!(reason(4).contains("record is not JSON"), "{}", reason(4));
    assert!(
        reason(6).contains("ValidationException") && reason(6).contains("Type mismatch for Index Key category"),
        "the service's own reason: {}",
        reason(6)
    );
    assert!(reason(8).contains("Number overflow"), "{}", reason(8));
    for i in [0, 5, 7, 9] {
        assert_eq!(statuses[i], RecordStatus::Delivered, "record {i}");
    }

    let items = scan_json(&dynamo, &table, "id").await;
    let mut ids: Vec<&str> = items.keys().map(String::as_str).collect();
    ids.sort();
    assert_eq!(ids, ["dup", "good-0", "good-9"]);
    assert_eq!(items["dup"]["v"], json!(2), "duplicate keys collapse to the last record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_lands_whole() {
    let Some(endpoint) = dynalite() else { return };
    let dynamo = client(&endpoint);
    let table = unique("large");
    create_table(&dynamo, &table, ("id", T::S), None, None).await;
    let sink = sink(json!({ "table": table, "endpoint": endpoint, "region": "us-east-1", "concurrency": 3 }), "large");
    let batch: Vec<_> = (0..260).map(|i| record(i, json!({ "id": format!("r-{i:03}"), "i": i }).to_string())).collect();
    let statuses = sink.send(&batch).await.expect("send");
    assert!(statuses.iter().all(|s| *s == RecordStatus::Delivered), "{statuses:?}");
    let items = scan_json(&dynamo, &table, "id").await;
    assert_eq!(items.len(), 260);
    for i in 0..260 {
        assert_eq!(items[&format!("r-{i:03}")]["i"], json!(i));
    }
}
