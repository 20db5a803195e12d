//! The wire level: CBOR requests and answers (the Java SDK's default),
//! error status and headers, unknown operations, `GET /health`.

use std::io::{Read, Write};
use std::net::TcpStream;

use super::Server;

/// Sends one request; returns (status, lowercase head, body).
fn call(address: &str, target: &str, content_type: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut conn = TcpStream::connect(address).expect("connect");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: {content_type}\r\nX-Amz-Target: {target}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(body).unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head") + 4;
    let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    (status, head, answer[split..].to_vec())
}

/// A CBOR map of text keys to text, unsigned or byte-string values.
enum V<'a> {
    T(&'a str),
    U(u8),
    B(&'a [u8]),
}

fn cbor(members: &[(&str, V<'_>)]) -> Vec<u8> {
    let mut out = vec![0xbf]; // indefinite-length map, as Jackson writes it
    for (key, value) in members {
        out.push(0x78);
        out.push(key.len() as u8);
        out.extend_from_slice(key.as_bytes());
        match value {
            V::T(s) => {
                out.extend_from_slice(&[0x78, s.len() as u8]);
                out.extend_from_slice(s.as_bytes());
            }
            V::U(n) => out.extend_from_slice(&[0x18, *n]),
            V::B(b) => {
                out.extend_from_slice(&[0x58, b.len() as u8]);
                out.extend_from_slice(b);
            }
        }
    }
    out.push(0xff);
    out
}

fn text_after(body: &[u8], key: &str) -> String {
    let at = body.windows(key.len()).position(|w| w == key.as_bytes()).expect(key) + key.len();
    let (len, start) = match body[at] {
        b @ 0x60..=0x77 => (usize::from(b - 0x60), at + 1),
        0x78 => (usize::from(body[at + 1]), at + 2),
        0x79 => (usize::from(u16::from_be_bytes([body[at + 1], body[at + 2]])), at + 3),
        other => panic!("not a text string: {other:#x}"),
    };
    String::from_utf8(body[start..start + len].to_vec()).unwrap()
}

#[tokio::test]
async fn cbor_requests_get_cbor_answers() {
    let server = Server::start().await;
    let address = server.endpoint().trim_start_matches("http://").to_owned();
    tokio::task::spawn_blocking(move || {
        const CBOR: &str = "application/x-amz-cbor-1.1";
        let t = |op: &str| format!("Kinesis_20131202.{op}");
        let (status, head, _) = call(&address, &t("CreateStream"), CBOR, &cbor(&[("StreamName", V::T("cb")), ("ShardCount", V::U(1))]));
        assert_eq!(status, 200, "{head}");
        assert!(head.contains("content-type: application/x-amz-cbor-1.1"), "{head}");
        let put = cbor(&[("StreamName", V::T("cb")), ("PartitionKey", V::T("k")), ("Data", V::B(b"\x00binary\xff"))]);
        let (status, _, body) = call(&address, &t("PutRecord"), CBOR, &put);
        assert_eq!(status, 200);
        assert_eq!(text_after(&body, "ShardId"), "shardId-000000000000");
        let request = cbor(&[("StreamName", V::T("cb")), ("ShardId", V::T("shardId-000000000000")), ("ShardIteratorType", V::T("TRIM_HORIZON"))]);
        let (_, _, body) = call(&address, &t("GetShardIterator"), CBOR, &request);
        let iterator = text_after(&body, "ShardIterator");
        let mut get = vec![0xa1, 0x6d];
        get.extend_from_slice(b"ShardIterator");
        get.extend_from_slice(&[0x79, 0, iterator.len() as u8]);
        get.extend_from_slice(iterator.as_bytes());
        let (status, _, body) = call(&address, &t("GetRecords"), CBOR, &get);
        assert_eq!(status, 200);
        // the blob is a byte string, the arrival time a tag-1 integer
        let mut blob = vec![0x48];
        blob.extend_from_slice(b"\x00binary\xff");
        assert!(body.windows(blob.len()).any(|w| w == blob.as_slice()), "data as a CBOR byte string");
        let stamp = body.windows(27).position(|w| w == b"ApproximateArrivalTimestamp").expect("timestamp") + 27;
        assert_eq!(&body[stamp..stamp + 2], &[0xc1, 0x1b], "tag 1 + 64-bit epoch milliseconds");

        let (status, head, body) = call(&address, &t("DescribeStream"), CBOR, &cbor(&[("StreamName", V::T("missing"))]));
        assert_eq!(status, 400);
        assert!(head.contains("x-amzn-errortype: resourcenotfoundexception"), "{head}");
        assert_eq!(text_after(&body, "__type"), "ResourceNotFoundException");
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn json_errors_unknown_operations_and_health() {
    let server = Server::start().await;
    let address = server.endpoint().trim_start_matches("http://").to_owned();
    tokio::task::spawn_blocking(move || {
        const JSON: &str = "application/x-amz-json-1.1";
        let (status, _, body) = call(&address, "Kinesis_20131202.DescribeStream", JSON, br#"{"StreamName":"missing"}"#);
        assert_eq!(status, 400);
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(error["__type"], "ResourceNotFoundException");
        assert_eq!(error["message"], "Stream missing under account 000000000000 not found.");
        let (status, _, body) = call(&address, "Kinesis_20131202.SubscribeToShard", JSON, b"{}");
        assert_eq!(status, 400);
        assert!(String::from_utf8_lossy(&body).contains("UnknownOperationException"));
        let (status, _, body) = call(&address, "Kinesis_20131202.ListStreams", JSON, b"{not json");
        assert_eq!(status, 400);
        assert!(String::from_utf8_lossy(&body).contains("SerializationException"));
        let (status, _, _) = call(&address, "Kinesis_20131202.ListStreams", "text/plain", b"{}");
        assert_eq!(status, 400);

        let mut conn = TcpStream::connect(&address).unwrap();
        conn.write_all(format!("GET /health HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    })
    .await
    .unwrap();
}
