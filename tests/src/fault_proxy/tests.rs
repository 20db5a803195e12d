//! The proxies' own behaviour, without emulators: the faults they answer
//! and what they count. The upstream is a closed port, so a forwarded
//! request would answer 502; none of these reach it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{KinesisProxy, S3Fault, S3Proxy};

const UNUSED_UPSTREAM: &str = "http://127.0.0.1:9";

fn request(endpoint: &str, head: &str, body: &str) -> (String, String) {
    let address = endpoint.trim_start_matches("http://").to_owned();
    (address.clone(), format!("{head}\r\nHost: {address}\r\nContent-Length: {}\r\n\r\n{body}", body.len()))
}

async fn answer(endpoint: &str, head: &str, body: &str) -> String {
    let (address, text) = request(endpoint, head, body);
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    stream.write_all(text.as_bytes()).await.expect("write");
    let mut buffer = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await.expect("an answer in time").expect("read");
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

/// Sends the request, waits `hold` without an answer, then closes.
async fn abandon(endpoint: &str, head: &str, hold: Duration) {
    let (address, text) = request(endpoint, head, "{}");
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    stream.write_all(text.as_bytes()).await.expect("write");
    let mut buffer = vec![0; 64];
    let read = tokio::time::timeout(hold, stream.read(&mut buffer)).await;
    assert!(read.is_err(), "the proxy answered a request it should hold: {read:?}");
}

const GET_RECORDS: &str = "POST / HTTP/1.1\r\nX-Amz-Target: Kinesis_20131202.GetRecords\r\nContent-Type: application/x-amz-json-1.1";

#[tokio::test]
async fn get_records_throttling_speaks_kinesis_json() {
    let proxy = KinesisProxy::start(UNUSED_UPSTREAM).await.expect("proxy");
    proxy.throttle_every(1);
    let text = answer(&proxy.endpoint(), GET_RECORDS, "{\"ShardIterator\":\"x\"}").await.to_lowercase();
    assert!(text.starts_with("http/1.1 400"), "{text}");
    assert!(text.contains("x-amzn-errortype: provisionedthroughputexceededexception"), "{text}");
    assert!(text.contains("\"__type\":\"provisionedthroughputexceededexception\""), "{text}");
    let stats = proxy.stats();
    assert_eq!((stats.get_records, stats.throttled, stats.abandoned.len()), (1, 1, 0));
}

#[tokio::test]
async fn a_get_records_dropped_by_the_client_counts_as_abandoned() {
    let proxy = KinesisProxy::start(UNUSED_UPSTREAM).await.expect("proxy");
    proxy.set_get_records_latency(Duration::from_secs(30));
    abandon(&proxy.endpoint(), GET_RECORDS, Duration::from_millis(300)).await;
    crate::wait_until(Duration::from_secs(5), "the abandoned call counted", || async { Ok(proxy.stats().abandoned.len() == 1) })
        .await
        .unwrap_or_else(|e| panic!("{e:#}: {:?}", proxy.stats()));
    assert_eq!(proxy.stats().get_records, 1);
}

#[tokio::test]
async fn s3_refusal_is_a_slow_down_error_and_a_hang_never_answers() {
    let proxy = S3Proxy::start(UNUSED_UPSTREAM).await.expect("proxy");
    proxy.set_fault(S3Fault::Refuse);
    let text = answer(&proxy.endpoint(), "PUT /bucket/key HTTP/1.1", "data").await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("<Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"), "{text}");
    proxy.set_fault(S3Fault::Hang);
    abandon(&proxy.endpoint(), "PUT /bucket/key HTTP/1.1", Duration::from_millis(300)).await;
    crate::wait_until(Duration::from_secs(5), "the hung write abandoned", || async { Ok(proxy.stats().abandoned == 1) })
        .await
        .unwrap_or_else(|e| panic!("{e:#}: {:?}", proxy.stats()));
    let stats = proxy.stats();
    assert_eq!((stats.refused, stats.hung, stats.puts.len()), (1, 1, 0));
    proxy.set_fault(S3Fault::SlowDownEvery(2));
    let third = answer(&proxy.endpoint(), "PUT /bucket/key HTTP/1.1", "data").await;
    assert!(third.starts_with("HTTP/1.1 502"), "the 3rd write is forwarded (to a closed port): {third}");
    let fourth = answer(&proxy.endpoint(), "PUT /bucket/key HTTP/1.1", "data").await;
    assert!(fourth.starts_with("HTTP/1.1 503"), "the 4th write (every 2nd refused): {fourth}");
}
