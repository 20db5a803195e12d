//! Unit tests of the classification, on `_bulk` answers shaped as
//! OpenSearch 2/3 and Elasticsearch 8 send them.

use super::*;

/// An OpenSearch answer (captured from osmem-server, OpenSearch 3.x API)
/// with a created document, a mapping error, a version conflict on
/// `create`, an invalid index name and a document that is not JSON, plus
/// the throttled and unavailable items Elasticsearch sends under load.
const MIXED: &str = r#"{"errors":true,"took":1,"items":[
 {"index":{"_id":"a","_index":"t1","_primary_term":1,"_seq_no":0,"_shards":{"failed":0,"successful":1,"total":2},"_version":1,"result":"created","status":201}},
 {"index":{"_id":"b","_index":"t1","error":{"caused_by":{"caused_by":{"reason":"Current token (START_OBJECT) not numeric","type":"input_coercion_exception"},"reason":"Current token (START_OBJECT) not numeric","type":"input_coercion_exception"},"reason":"failed to parse field [n] of type [long] in document with id 'b'. Preview of field's value: '{x=1}'","type":"mapper_parsing_exception"},"status":400}},
 {"create":{"_id":"a","_index":"t1","error":{"index":"t1","index_uuid":"_na_","reason":"[a]: version conflict, document already exists (current version [1])","shard":"0","type":"version_conflict_engine_exception"},"status":409}},
 {"index":{"_id":"c","_index":"T1","error":{"index":"T1","index_uuid":"_na_","reason":"Invalid index name [T1], must be lowercase","type":"invalid_index_name_exception"},"status":400}},
 {"index":{"_id":"e","_index":"t1","error":{"caused_by":{"reason":"Compressor detection can only be called on some xcontent bytes","type":"not_x_content_exception"},"reason":"failed to parse","type":"mapper_parsing_exception"},"status":400}},
 {"index":{"_index":"t1","_id":"f","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, max_coordinating_and_primary_bytes=0]"}}},
 {"index":{"_index":"t1","_id":"g","status":503,"error":{"type":"unavailable_shards_exception","reason":"[t1][0] primary shard is not active Timeout: [1m]"}}},
 {"update":{"_index":"t1","_id":"h","_version":2,"result":"updated","status":200}}
]}"#;

#[test]
fn each_item_is_classified_alone() {
    let statuses = item_statuses(MIXED.as_bytes(), 8, OpType::Index).expect("parses");
    assert_eq!(statuses[0], RecordStatus::Delivered);
    let RecordStatus::Rejected { reason } = &statuses[1] else { panic!("mapping error: {:?}", statuses[1]) };
    assert!(reason.contains("400") && reason.contains("mapper_parsing_exception: failed to parse field [n] of type [long]"), "{reason}");
    assert!(reason.contains("caused by input_coercion_exception") && reason.contains("index t1, id b"), "{reason}");
    // With op_type = index a 409 is unexpected (someone else versioned the document): rejected.
    let RecordStatus::Rejected { reason } = &statuses[2] else { panic!("conflict: {:?}", statuses[2]) };
    assert!(reason.contains("version_conflict_engine_exception"), "{reason}");
    assert!(matches!(&statuses[3], RecordStatus::Rejected { reason } if reason.contains("invalid_index_name_exception")));
    assert!(matches!(&statuses[4], RecordStatus::Rejected { reason } if reason.contains("not_x_content_exception")));
    let RecordStatus::Retriable { reason, backoff } = &statuses[5] else { panic!("throttled: {:?}", statuses[5]) };
    assert!(reason.contains("429") && reason.contains("es_rejected_execution_exception"), "{reason}");
    assert_eq!(*backoff, Some(THROTTLED_ITEM_BACKOFF));
    assert!(matches!(&statuses[6], RecordStatus::Retriable { reason, backoff: None } if reason.contains("unavailable_shards_exception")));
    assert_eq!(statuses[7], RecordStatus::Delivered);
}

#[test]
fn a_conflict_on_create_means_already_delivered() {
    let statuses = item_statuses(MIXED.as_bytes(), 8, OpType::Create).expect("parses");
    assert_eq!(statuses[2], RecordStatus::Delivered);
    assert!(matches!(statuses[1], RecordStatus::Rejected { .. }), "other 4xx stay rejected with create");
}

#[test]
fn an_answer_without_errors_delivers_everything() {
    let body = r#"{"took":3,"errors":false,"items":[{"index":{"_index":"i","_id":"1","_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},{"create":{"_index":"i","_id":"2","status":201}}]}"#;
    assert_eq!(item_statuses(body.as_bytes(), 2, OpType::Index).expect("parses"), vec![RecordStatus::Delivered; 2]);
}

#[test]
fn answers_that_do_not_match_the_request_are_errors() {
    let body = r#"{"errors":false,"items":[{"index":{"_index":"i","_id":"1","status":201}}]}"#;
    assert!(item_statuses(body.as_bytes(), 2, OpType::Index).expect_err("count").contains("1 items for 2 actions"));
    assert!(item_statuses(b"<html>502 Bad Gateway</html>", 1, OpType::Index).is_err());
    let request_error = r#"{"error":{"root_cause":[{"type":"illegal_argument_exception","reason":"The bulk request must be terminated by a newline [\\n]"}],"type":"illegal_argument_exception","reason":"The bulk request must be terminated by a newline [\\n]"},"status":400}"#;
    assert!(item_statuses(request_error.as_bytes(), 1, OpType::Index).is_err());
}

#[test]
fn whole_request_statuses() {
    for status in [408, 429, 500, 502, 503, 504, 401, 403] {
        assert_eq!(status_kind(status), ErrorKind::Retriable, "{status}");
    }
    for status in [400, 404, 405, 413] {
        assert_eq!(status_kind(status), ErrorKind::Permanent, "{status}");
    }
}

#[test]
fn error_descriptions_follow_causes_but_not_forever() {
    let deep = serde_json::json!({"type": "a", "reason": "ra", "caused_by": {"type": "b", "caused_by": {"reason": "rc", "caused_by": {"type": "d", "caused_by": {"type": "e"}}}}});
    assert_eq!(describe_error(&deep), "a: ra (caused by b) (caused by rc) (caused by d)");
    assert_eq!(describe_error(&serde_json::json!("plain text")), "\"plain text\"");
}
