//! Throughput of `shardline local-kinesis`: PutRecords and GetRecords in
//! records/s and MB/s, over loopback HTTP.
//!
//! `cargo bench -p shardline-local-kinesis` prints, per record size:
//! - `put (sdk)`: PutRecords of 500 records from 4 concurrent aws-sdk-kinesis
//!   clients (one per shard's worth of keys);
//! - `get (sdk)`: GetRecords with `Limit` 10 000 through aws-sdk-kinesis,
//!   one shard after another: what a consumer sees, including the SDK's
//!   JSON parsing and base64 decoding;
//! - `get (raw http)`: the same GetRecords calls from a minimal HTTP client
//!   that does not parse the answer: the server's own cost.
//!
//! `LOCAL_KINESIS_BENCH_MB` sets the megabytes written per record size
//! (default 256).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use aws_sdk_kinesis::Client;
use shardline_local_kinesis::{start, LocalKinesisConfig};
use tokio_util::sync::CancellationToken;

const SHARDS: usize = 4;

fn report(what: &str, records: usize, bytes: usize, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{what:<28} {records:>9} records {:>8.1} MB in {secs:>6.2} s: {:>10.0} records/s {:>8.1} MB/s",
        bytes as f64 / 1e6,
        records as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
}

/// One GetRecords over a kept-alive connection; returns the body.
fn raw_call(conn: &mut TcpStream, address: SocketAddr, target: &str, body: &str) -> std::io::Result<Vec<u8>> {
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-amz-json-1.1\r\nX-Amz-Target: Kinesis_20131202.{target}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        conn.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body)?;
    Ok(body)
}

fn find_string(body: &[u8], key: &str) -> Option<String> {
    let needle = format!("\"{key}\":\"");
    let at = body.windows(needle.len()).rposition(|w| w == needle.as_bytes())? + needle.len();
    let end = body[at..].iter().position(|&b| b == b'"')? + at;
    Some(String::from_utf8_lossy(&body[at..end]).into_owned())
}

async fn bench_size(client: &Client, address: SocketAddr, record_size: usize, total_mb: usize) {
    let stream = format!("bench-{record_size}");
    client.create_stream().stream_name(&stream).shard_count(SHARDS as i32).send().await.expect("CreateStream");
    let records_total = total_mb * 1_000_000 / record_size;
    let batches = records_total.div_ceil(500);
    println!("-- records of {record_size} bytes, {SHARDS} shards");

    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let client = client.clone();
        let stream = stream.clone();
        tasks.push(tokio::spawn(async move {
            let payload = vec![b'x'; record_size];
            for batch in (worker..batches).step_by(4) {
                let entries: Vec<PutRecordsRequestEntry> = (0..500)
                    .map(|i| PutRecordsRequestEntry::builder().partition_key(format!("{batch}-{i}")).data(Blob::new(payload.clone())).build().unwrap())
                    .collect();
                client.put_records().stream_name(&stream).set_records(Some(entries)).send().await.expect("PutRecords");
            }
        }));
    }
    for task in tasks {
        task.await.expect("put task");
    }
    let written = batches * 500;
    report("put (sdk, 4 clients)", written, written * record_size, started.elapsed());

    let started = Instant::now();
    let (mut count, mut bytes) = (0, 0);
    for shard in 0..SHARDS {
        let shard_id = format!("shardId-{shard:012}");
        let out = client.get_shard_iterator().stream_name(&stream).shard_id(&shard_id).shard_iterator_type(ShardIteratorType::TrimHorizon).send().await.unwrap();
        let mut iterator = out.shard_iterator;
        while let Some(current) = iterator {
            let out = client.get_records().shard_iterator(current).limit(10_000).send().await.expect("GetRecords");
            if out.records().is_empty() {
                break;
            }
            count += out.records().len();
            bytes += out.records().iter().map(|r| r.data().as_ref().len()).sum::<usize>();
            iterator = out.next_shard_iterator;
        }
    }
    report("get (sdk)", count, bytes, started.elapsed());
    assert_eq!(count, written);

    let stream_raw = stream.clone();
    let (calls, elapsed) = tokio::task::spawn_blocking(move || {
        let mut conn = TcpStream::connect(address).expect("connect");
        conn.set_nodelay(true).ok();
        let started = Instant::now();
        let mut calls = 0;
        for shard in 0..SHARDS {
            let body = format!(r#"{{"StreamName":"{stream_raw}","ShardId":"shardId-{shard:012}","ShardIteratorType":"TRIM_HORIZON"}}"#);
            let answer = raw_call(&mut conn, address, "GetShardIterator", &body).expect("GetShardIterator");
            let mut iterator = find_string(&answer, "ShardIterator");
            while let Some(current) = iterator {
                let answer = raw_call(&mut conn, address, "GetRecords", &format!(r#"{{"ShardIterator":"{current}","Limit":10000}}"#)).expect("GetRecords");
                if answer.starts_with(b"{\"Records\":[]") {
                    break;
                }
                calls += 1;
                iterator = find_string(&answer, "NextShardIterator");
            }
        }
        (calls, started.elapsed())
    })
    .await
    .expect("raw reader");
    assert!(calls > 0);
    // the same records as the SDK pass read (the answers are not parsed)
    report("get (raw http, no parsing)", count, bytes, elapsed);
}

fn main() {
    let total_mb: usize = std::env::var("LOCAL_KINESIS_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let shutdown = CancellationToken::new();
        let server = start(LocalKinesisConfig::new(dir.path()), shutdown.clone()).await.expect("server");
        let address = server.address();
        let client = Client::new(&shardline_aws::emulator_sdk_config(&server.endpoint()));
        println!("local-kinesis throughput ({total_mb} MB per record size, data dir {})", dir.path().display());
        for size in [100, 1024, 10 * 1024] {
            bench_size(&client, address, size, total_mb).await;
        }
        shutdown.cancel();
        server.stopped().await;
    });
}
