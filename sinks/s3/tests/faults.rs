//! The `s3` plugin (through the host's C ABI) against moto's S3 with
//! injected faults (see `support`: a proxy answering in S3's documented
//! error format, because moto never throttles nor fails): throttling and
//! 5xx are retriable with S3's reason, access denied and a missing bucket
//! are permanent and name the bucket and key, a stalled server times out
//! retriably, large objects go up in parts, and a failed multipart upload
//! is aborted. Skipped without `SHARDLINE_TEST_S3_ENDPOINT`.

mod support;

use std::time::Duration;

use bytes::Bytes;
use shardline_api::{ErrorKind, Record, RecordStatus, Sink};
use shardline_e2e::s3::S3;
use support::{record, Fault, FaultProxy};

struct Setup {
    s3: S3,
    bucket: String,
    proxy: FaultProxy,
}

async fn setup(prefix: &str) -> Option<Setup> {
    let endpoint = shardline_e2e::s3::endpoint_from_env()?;
    support::test_credentials();
    let s3 = S3::new(&endpoint);
    let bucket = s3.create_bucket(prefix).await.unwrap_or_else(|e| panic!("{e:#}"));
    let proxy = FaultProxy::start(&endpoint);
    Some(Setup { s3, bucket, proxy })
}

impl Setup {
    fn sink(&self, extra: serde_json::Value) -> impl Sink {
        let mut config = serde_json::json!({
            "bucket": self.bucket,
            "endpoint": self.proxy.endpoint,
            "force_path_style": true,
            "key": "{shard_id}/{first_seq}-{first_subseq}",
            "request_max_attempts": 1,
        });
        if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
            config.extend(extra.clone());
        }
        support::plugin().build_sink(config, "faults")
    }
}

fn json_records(n: u64) -> Vec<Record> {
    (0..n).map(|i| record(i, format!("{{\"i\":{i}}}"))).collect()
}

fn reasons(statuses: &[RecordStatus]) -> Vec<String> {
    statuses
        .iter()
        .map(|s| match s {
            RecordStatus::Delivered => "delivered".to_owned(),
            RecordStatus::Retriable { reason, .. } => format!("retriable: {reason}"),
            RecordStatus::Rejected { reason } => format!("rejected: {reason}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_down_and_internal_errors_are_retriable_with_s3s_reason() {
    let Some(setup) = setup("faults-throttle").await else { return };
    let sink = setup.sink(serde_json::json!({}));
    let records = json_records(3);

    setup.proxy.inject(Fault::slow_down(1));
    let statuses = sink.send(&records).await.expect("per-record answers");
    for status in &statuses {
        let RecordStatus::Retriable { reason, backoff } = status else { panic!("{:?}", reasons(&statuses)) };
        assert!(reason.contains("SlowDown") && reason.contains("Please reduce your request rate") && reason.contains(&setup.bucket), "{reason}");
        assert_eq!(*backoff, Some(Duration::from_secs(1)), "S3 asked to slow down: the sink hints a back-off");
    }

    setup.proxy.inject(Fault::internal_error(1));
    let statuses = sink.send(&records).await.expect("per-record answers");
    assert!(reasons(&statuses).iter().all(|r| r.starts_with("retriable:") && r.contains("InternalError") && r.contains("HTTP 500")), "{:?}", reasons(&statuses));

    // The fault is used up: the same batch now lands, once.
    let statuses = sink.send(&records).await.expect("send");
    assert_eq!(statuses, vec![RecordStatus::Delivered; 3]);
    let objects = setup.s3.objects(&setup.bucket, "").await.expect("read back");
    assert_eq!(objects.len(), 1, "{:?}", objects.iter().map(|o| &o.key).collect::<Vec<_>>());
    assert_eq!(objects[0].body, b"{\"i\":0}\n{\"i\":1}\n{\"i\":2}\n");
    assert_eq!(setup.proxy.injected(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_retries_absorb_brief_throttling() {
    let Some(setup) = setup("faults-sdk-retry").await else { return };
    let sink = setup.sink(serde_json::json!({ "request_max_attempts": 3 }));
    setup.proxy.inject(Fault::slow_down(2));
    let statuses = sink.send(&json_records(2)).await.expect("send");
    assert_eq!(statuses, vec![RecordStatus::Delivered; 2], "{:?}", reasons(&statuses));
    assert_eq!(setup.proxy.injected(), 2, "two SlowDown answers, then the SDK's third attempt went through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_and_a_missing_bucket_are_permanent_and_name_bucket_and_key() {
    let Some(setup) = setup("faults-denied").await else { return };
    let sink = setup.sink(serde_json::json!({}));
    setup.proxy.inject(Fault::access_denied().matching("PUT "));
    let statuses = sink.send(&json_records(2)).await.expect("per-record answers");
    for reason in reasons(&statuses) {
        assert!(reason.starts_with("rejected:") && reason.contains("AccessDenied") && reason.contains(&format!("s3://{}/shardId-000000000001/", setup.bucket)), "{reason}");
    }
    setup.proxy.clear();

    let missing = format!("{}-missing", setup.bucket);
    let config = serde_json::json!({
        "bucket": missing, "endpoint": setup.proxy.endpoint, "force_path_style": true, "key": "{shard_id}/{first_seq}-{first_subseq}",
    });
    let sink = support::plugin().build_sink(config, "faults");
    let error = sink.healthcheck().await.expect_err("no such bucket");
    assert_eq!(error.kind, ErrorKind::Permanent, "{error}");
    assert!(error.message.contains(&missing) && error.message.contains("NoSuchBucket"), "{error}");
    let statuses = sink.send(&json_records(1)).await.expect("per-record answers");
    assert!(reasons(&statuses)[0].starts_with("rejected:") && reasons(&statuses)[0].contains("NoSuchBucket"), "{:?}", reasons(&statuses));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_retriably() {
    let Some(setup) = setup("faults-timeout").await else { return };
    // Accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let endpoint = format!("http://{}", silent.local_addr().expect("address"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept() {
            held.push(stream);
        }
    });
    let sink = setup.sink(serde_json::json!({ "endpoint": endpoint, "request_timeout": "300ms" }));
    let statuses = sink.send(&json_records(1)).await.expect("per-record answers");
    let reason = &reasons(&statuses)[0];
    assert!(reason.starts_with("retriable:") && reason.contains("timed out"), "{reason}");
}

fn big_records(n: u64, size: usize) -> (Vec<Record>, Vec<u8>) {
    let mut expected = Vec::new();
    let records = (0..n)
        .map(|i| {
            // Incompressible-ish bytes, so the body stays large.
            let mut state = i.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let data: Vec<u8> = (0..size)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    b'a' + (state % 26) as u8
                })
                .collect();
            expected.extend_from_slice(&data);
            expected.push(b'\n');
            record(i, Bytes::from(data))
        })
        .collect();
    (records, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_go_up_in_parts_and_a_failed_upload_is_aborted() {
    let Some(setup) = setup("faults-multipart").await else { return };
    let multipart = serde_json::json!({
        "encoding": "raw", "compression": "none", "multipart_threshold": "5MiB", "multipart_part_size": "5MiB",
    });
    let sink = setup.sink(multipart);
    // 12 MiB in one batch: three parts (5 + 5 + 2 MiB).
    let (records, expected) = big_records(12, 1 << 20);
    let statuses = sink.send(&records).await.expect("send");
    assert_eq!(statuses, vec![RecordStatus::Delivered; 12], "{:?}", reasons(&statuses));
    let seen = setup.proxy.seen();
    assert!(seen.iter().any(|l| l.starts_with("POST ") && l.contains("uploads")), "CreateMultipartUpload: {seen:?}");
    assert_eq!(seen.iter().filter(|l| l.starts_with("PUT ") && l.contains("partNumber=")).count(), 3, "{seen:?}");
    let objects = setup.s3.objects(&setup.bucket, "").await.expect("read back");
    assert_eq!(objects.len(), 1);
    assert_eq!(objects[0].body.len(), expected.len());
    assert!(objects[0].body == expected, "the assembled object holds the batch, in order");

    // Part 2 of the next batch fails: the answer is retriable and the
    // upload is aborted, leaving no parts behind.
    let (records, _) = big_records(11, 1 << 20);
    let records: Vec<Record> = records.into_iter().map(|r| { let mut r = r; r.meta = std::sync::Arc::new(shardline_api::RecordMeta { sequence_number: shardline_api::SequenceNumber::parse(&format!("7{}", r.meta.sequence_number)).expect("digits"), ..(*r.meta).clone() }); r }).collect();
    setup.proxy.inject(Fault::internal_error(0).always().matching("partNumber=2"));
    let statuses = sink.send(&records).await.expect("per-record answers");
    assert!(reasons(&statuses).iter().all(|r| r.starts_with("retriable:") && r.contains("UploadPart") && r.contains("InternalError")), "{:?}", reasons(&statuses));
    assert!(setup.proxy.seen().iter().any(|l| l.starts_with("DELETE ") && l.contains("uploadId=")), "AbortMultipartUpload was sent");
    setup.proxy.clear();
    assert_eq!(setup.s3.open_multipart_uploads(&setup.bucket).await.expect("list uploads"), 0, "the failed upload was aborted");
    assert_eq!(setup.s3.keys(&setup.bucket, "").await.expect("keys").len(), 1, "no object for the failed batch");
}
