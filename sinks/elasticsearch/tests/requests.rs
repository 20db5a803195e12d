//! What the sink puts on the wire and how it reads answers, against a
//! scripted HTTP server of the test's own: authentication headers (basic,
//! API key, SigV4), gzip bodies, batches split into several `_bulk`
//! requests, whole-request failures (refused, 503, 429, 413) and partial
//! failures after some requests succeeded.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use shardline_plugin_sdk::{ErrorKind, InitContext, Record, RecordMeta, RecordStatus, SequenceNumber, SinkPlugin};
use shardline_sink_elasticsearch::config::Config;
use shardline_sink_elasticsearch::Elasticsearch;

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
    /// The body, gunzipped when it was gzipped.
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn documents(&self) -> usize {
        self.body.lines().count() / 2
    }
}

/// A server that answers scripted statuses (then successes), one request
/// per connection.
struct Server {
    address: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn success(documents: usize) -> (u16, String) {
    let items: Vec<String> = (0..documents).map(|i| format!(r#"{{"index":{{"_index":"i","_id":"{i}","status":201}}}}"#)).collect();
    (200, format!(r#"{{"errors":false,"items":[{}]}}"#, items.join(",")))
}

impl Server {
    fn start(script: Vec<u16>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        let mut script: VecDeque<u16> = script.into();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line.is_empty() {
                    continue;
                }
                let mut headers = Vec::new();
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).expect("header");
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    let (name, value) = header.split_once(':').expect("name: value");
                    headers.push((name.trim().to_owned(), value.trim().to_owned()));
                }
                let length: usize = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case("content-length")).map_or(0, |(_, v)| v.parse().expect("length"));
                let mut raw = vec![0; length];
                reader.read_exact(&mut raw).expect("body");
                let gzipped = headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("content-encoding") && v == "gzip");
                let body = if gzipped {
                    let mut text = String::new();
                    flate2::read::GzDecoder::new(&raw[..]).read_to_string(&mut text).expect("gunzip");
                    text
                } else {
                    String::from_utf8(raw).expect("utf-8")
                };
                let seen = Seen { line: line.trim_end().to_owned(), headers, body };
                let (status, answer) = match script.pop_front() {
                    Some(200) | None => success(seen.documents()),
                    Some(status) => (status, format!(r#"{{"error":{{"type":"scripted","reason":"status {status}"}},"status":{status}}}"#)),
                };
                log.lock().expect("lock").push(seen);
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        Server { address, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

fn record(i: u64) -> Record {
    let meta = RecordMeta {
        stream: Arc::from("s"),
        shard_id: Arc::from("shardId-000000000000"),
        sequence_number: SequenceNumber::parse(&format!("{}", 1000 + i)).expect("digits"),
        sub_sequence_number: 0,
        partition_key: "pk".into(),
        explicit_hash_key: None,
        arrival_time: SystemTime::now(),
        aggregated: false,
    };
    Record::new(Bytes::from(format!("{{\"i\":{i}}}")), Arc::new(meta))
}

async fn sink(endpoint: &str, extra: &str) -> Elasticsearch {
    let text = format!("endpoint = \"{endpoint}\"\nindex = \"docs\"\nrequest_timeout = \"5s\"\n{extra}");
    let table: toml::Table = text.parse().expect("toml");
    let config: Config = serde_json::from_value(serde_json::to_value(table).expect("json")).expect("config");
    Elasticsearch::validate(&config).expect("valid");
    Elasticsearch::init(config, InitContext::new("requests")).await.expect("init")
}

fn batch(n: u64) -> Vec<Record> {
    (0..n).map(record).collect()
}

#[tokio::test]
async fn basic_auth_gzip_and_batches_split_by_count() {
    let server = Server::start(vec![]);
    let es = sink(&format!("http://{}/prefix/", server.address), "bulk_max_actions = 2\n[auth]\nstrategy = \"basic\"\nuser = \"u\"\npassword = \"p\"").await;
    assert_eq!(es.send(&batch(5)).await.expect("send"), vec![RecordStatus::Delivered; 5]);
    let seen = server.seen();
    assert_eq!(seen.iter().map(Seen::documents).collect::<Vec<_>>(), [2, 2, 1]);
    for request in &seen {
        assert_eq!(request.line, "POST /prefix/_bulk HTTP/1.1");
        assert_eq!(request.header("authorization"), Some("Basic dTpw"));
        assert_eq!(request.header("content-encoding"), Some("gzip"));
        assert_eq!(request.header("content-type"), Some("application/x-ndjson"));
    }
    assert_eq!(seen[0].body.lines().next(), Some(r#"{"index":{"_id":"s-shardId-000000000000-1000-0","_index":"docs"}}"#));
    assert_eq!(seen[2].body, "{\"index\":{\"_id\":\"s-shardId-000000000000-1004-0\",\"_index\":\"docs\"}}\n{\"i\":4}\n");
}

#[tokio::test]
async fn api_keys_and_uncompressed_bodies_split_by_bytes() {
    let server = Server::start(vec![]);
    let es = sink(&format!("http://{}", server.address), "bulk_max_bytes = \"1KiB\"\ncompression = \"none\"\n[auth]\nstrategy = \"api_key\"\napi_key = \"a2V5OnNlY3JldA==\"").await;
    assert_eq!(es.send(&batch(30)).await.expect("send"), vec![RecordStatus::Delivered; 30]);
    let seen = server.seen();
    assert!(seen.len() >= 3, "30 documents of ~70 bytes in 1KiB requests: {} requests", seen.len());
    assert_eq!(seen.iter().map(Seen::documents).sum::<usize>(), 30);
    for request in &seen {
        assert!(request.body.len() <= 1024, "{} bytes", request.body.len());
        assert_eq!(request.header("authorization"), Some("ApiKey a2V5OnNlY3JldA=="));
        assert_eq!(request.header("content-encoding"), None);
    }
}

#[tokio::test]
async fn sigv4_signs_each_request_for_the_service_and_region() {
    // The standard chain reads the environment; nothing else in this test binary does.
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDSHARDLINETEST");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "secret");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    std::env::set_var("AWS_CONFIG_FILE", "/nonexistent");
    std::env::set_var("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent");
    let server = Server::start(vec![]);
    let es = sink(&format!("http://{}", server.address), "[auth]\nstrategy = \"aws\"\nregion = \"eu-west-1\"\nservice = \"aoss\"").await;
    assert_eq!(es.send(&batch(2)).await.expect("send"), vec![RecordStatus::Delivered; 2]);
    let seen = server.seen();
    let authorization = seen[0].header("authorization").expect("signed");
    assert!(authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDSHARDLINETEST/"), "{authorization}");
    assert!(authorization.contains("/eu-west-1/aoss/aws4_request"), "{authorization}");
    assert!(authorization.contains("SignedHeaders=") && authorization.contains("content-encoding") && authorization.contains("host"), "{authorization}");
    assert!(seen[0].header("x-amz-date").is_some());
    let hash = seen[0].header("x-amz-content-sha256").expect("payload hash (required by aoss)");
    assert!(hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()), "{hash}");
}

#[tokio::test]
async fn whole_request_failures_are_retriable_until_something_was_delivered() {
    for status in [503, 429, 502] {
        let server = Server::start(vec![status]);
        let es = sink(&format!("http://{}", server.address), "").await;
        let e = es.send(&batch(3)).await.expect_err("the first request failed");
        assert_eq!(e.kind, ErrorKind::Retriable, "{status}: {e}");
        assert!(e.message.contains(&server.address) && e.message.contains(&status.to_string()), "{e}");
    }
    // The first request delivered: the rest is retried per record, not the batch.
    let server = Server::start(vec![200, 503]);
    let es = sink(&format!("http://{}", server.address), "bulk_max_actions = 2").await;
    let statuses = es.send(&batch(5)).await.expect("statuses");
    assert_eq!(statuses[..2], [RecordStatus::Delivered, RecordStatus::Delivered]);
    assert!(statuses[2..].iter().all(|s| matches!(s, RecordStatus::Retriable { reason, .. } if reason.contains("503"))), "{statuses:?}");
    assert_eq!(server.seen().len(), 2, "nothing sent after the failure");
}

#[tokio::test]
async fn too_large_requests_are_sent_document_by_document() {
    let server = Server::start(vec![413, 200, 413]);
    let es = sink(&format!("http://{}", server.address), "").await;
    let statuses = es.send(&batch(2)).await.expect("statuses");
    assert_eq!(statuses[0], RecordStatus::Delivered);
    assert!(matches!(&statuses[1], RecordStatus::Rejected { reason } if reason.contains("413")), "{statuses:?}");
    assert_eq!(server.seen().iter().map(Seen::documents).collect::<Vec<_>>(), [2, 1, 1]);
}

#[tokio::test]
async fn an_unreachable_cluster_is_retriable_and_named() {
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    let es = sink(&format!("http://127.0.0.1:{port}"), "").await;
    let e = es.send(&batch(1)).await.expect_err("refused");
    assert_eq!(e.kind, ErrorKind::Retriable, "{e}");
    assert!(e.message.contains(&format!("cannot reach http://127.0.0.1:{port}")), "{e}");
    let e = es.healthcheck().await.expect_err("refused");
    assert_eq!(e.kind, ErrorKind::Retriable, "{e}");
    assert!(e.message.contains(&format!("127.0.0.1:{port}")) && e.message.contains("GET /"), "{e}");
}

#[tokio::test]
async fn healthcheck_refuses_bad_credentials_for_good() {
    let server = Server::start(vec![401]);
    let es = sink(&format!("http://{}", server.address), "").await;
    let e = es.healthcheck().await.expect_err("401");
    assert_eq!(e.kind, ErrorKind::Permanent, "{e}");
    assert!(e.message.contains("refused the credentials") && e.message.contains(&server.address), "{e}");
    let ok = Server::start(vec![]);
    tokio::time::timeout(Duration::from_secs(10), sink(&format!("http://{}", ok.address), "").await.healthcheck())
        .await
        .expect("in time")
        .expect("healthy");
}

#[tokio::test]
async fn records_that_are_no_documents_are_rejected_without_a_request() {
    let server = Server::start(vec![]);
    let es = sink(&format!("http://{}", server.address), "").await;
    let mut records = batch(2);
    records[0].payload = shardline_plugin_sdk::Payload::Bytes(Bytes::from_static(b"not json"));
    let statuses = es.send(&records).await.expect("statuses");
    assert!(matches!(&statuses[0], RecordStatus::Rejected { reason } if reason.contains("not a JSON object")), "{statuses:?}");
    assert_eq!(statuses[1], RecordStatus::Delivered);
    assert_eq!(server.seen().iter().map(Seen::documents).collect::<Vec<_>>(), [1]);
}
