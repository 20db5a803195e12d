//! Batch encode + compress throughput of the `s3` sink, in MB/s of input
//! per core: a batch of 1,000 records of 1 KiB of JSON planned exactly as
//! `send` does (JSON validation, NDJSON rows, one object body), for each
//! compression; and as Parquet (JSON parsed, converted to the declared
//! columns, one Parquet file) for each column codec. Single-threaded, so
//! the figure is per core.
//!
//!   cargo bench -p shardline-sink-s3 --bench encode

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use shardline_plugin_sdk::{Record, RecordMeta, SequenceNumber};
use shardline_sink_s3::batch::Planner;
use shardline_sink_s3::encode::{Compression, Encoder, Encoding};
use shardline_sink_s3::parquet::{FileWriter, ParquetConfig, Schema};
use shardline_sink_s3::template::{KeyTemplate, TimeZoneSpec, Zone};

const RECORDS: usize = 1_000;
const RECORD_BYTES: usize = 1_024;
const WORDS: [&str; 64] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima", "mike",
    "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee",
    "zulu", "cart", "checkout", "product", "search", "filter", "price", "discount", "shipping", "payment", "session",
    "mobile", "desktop", "tablet", "click", "scroll", "view", "banner", "promo", "login", "logout", "account", "order",
    "refund", "return", "review", "rating", "wishlist", "category", "brand", "size", "color", "stock", "warehouse",
    "region", "europe", "america", "asia", "africa",
];

/// 1 KiB JSON records that look like click events (repetitive keys,
/// varying values), so the compressors see realistic input.
fn batch() -> Vec<Record> {
    let meta = |i: usize| {
        Arc::new(RecordMeta {
            stream: Arc::from("clicks"),
            shard_id: Arc::from("shardId-000000000000"),
            sequence_number: SequenceNumber::parse(&format!("4959033827149025660855969253836157109592157598913658{:04}", i)).unwrap_or_else(|e| panic!("{e}")),
            sub_sequence_number: 0,
            partition_key: format!("user-{}", i % 97),
            explicit_hash_key: None,
            arrival_time: SystemTime::now(),
            aggregated: false,
        })
    };
    (0..RECORDS)
        .map(|i| {
            let mut text = format!(
                r#"{{"event_id":"{:016x}","user":"user-{}","page":"/products/{}","referrer":"https://example.com/search?q=item{}","ts":{},"ua":"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/{}.0","pad":""#,
                (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                i % 97,
                i % 1000,
                i % 13,
                1_700_000_000_000u64 + i as u64 * 17,
                100 + i % 30
            );
            // Filler words from a vocabulary of 64, as free text in events.
            let mut n = i as u64;
            while text.len() < RECORD_BYTES - 2 {
                n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                let word = WORDS[(n >> 58) as usize % WORDS.len()];
                text.push_str(&word[..word.len().min(RECORD_BYTES - 2 - text.len())]);
                if text.len() < RECORD_BYTES - 2 {
                    text.push(' ');
                }
            }
            text.push_str("\"}");
            Record::new(Bytes::from(text), meta(i))
        })
        .collect()
}

fn planner(encoding: Encoding, compression: Compression, level: Option<i32>) -> Planner {
    let encoder = match encoding {
        // Every field of the records as a column: 6 strings, one timestamp.
        Encoding::Parquet => {
            let columns = [("event_id", "string"), ("user", "string"), ("page", "string"), ("referrer", "string"), ("ts", "timestamp_ms"), ("ua", "string"), ("pad", "string")];
            let config = ParquetConfig { schema: columns.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(), required: vec!["event_id".into()] };
            let schema = Schema::from_config(&config).unwrap_or_else(|e| panic!("{e:?}"));
            Encoder::parquet(FileWriter::new(Arc::new(schema), compression, level).unwrap_or_else(|e| panic!("{e}")))
        }
        _ => Encoder::new(encoding, &[], true, "\n", compression, level),
    };
    Planner {
        template: KeyTemplate::parse(shardline_sink_s3::config::DEFAULT_KEY).unwrap_or_else(|e| panic!("{e}")),
        zone: Zone::resolve(&TimeZoneSpec::Utc).unwrap_or_else(|e| panic!("{e}")),
        extension: encoding.extension().into(),
        encoder,
        pipeline: "bench".into(),
        max_partitions: 100,
        content_type: encoding.content_type(),
        content_encoding: if encoding == Encoding::Parquet { None } else { compression.content_encoding() },
    }
}

fn main() {
    let records = batch();
    let input: usize = records.iter().map(|r| r.payload.approximate_len()).sum();
    println!("s3 sink: encode + compress a batch of {RECORDS} x {RECORD_BYTES} B JSON records ({:.2} MB), one core", input as f64 / 1e6);
    for (name, encoding, compression, level) in [
        ("ndjson+none", Encoding::Ndjson, Compression::None, None),
        ("ndjson+gzip(5) default", Encoding::Ndjson, Compression::Gzip, None),
        ("ndjson+gzip(6)", Encoding::Ndjson, Compression::Gzip, Some(6)),
        ("ndjson+gzip(4)", Encoding::Ndjson, Compression::Gzip, Some(4)),
        ("ndjson+gzip(1)", Encoding::Ndjson, Compression::Gzip, Some(1)),
        ("ndjson+zstd(3)", Encoding::Ndjson, Compression::Zstd, None),
        ("ndjson+zstd(1)", Encoding::Ndjson, Compression::Zstd, Some(1)),
        ("parquet+snappy", Encoding::Parquet, Compression::Snappy, None),
        ("parquet+zstd(3)", Encoding::Parquet, Compression::Zstd, None),
        ("parquet+gzip(5)", Encoding::Parquet, Compression::Gzip, None),
        ("parquet+none", Encoding::Parquet, Compression::None, None),
    ] {
        let planner = planner(encoding, compression, level);
        let mut output = 0;
        // Warm up, then run for at least 2 s.
        for _ in 0..3 {
            let plan = planner.plan(&records).unwrap_or_else(|e| panic!("{e}"));
            assert!(plan.rejected.iter().all(Option::is_none), "{name}: every record fits: {:?}", plan.rejected.iter().flatten().next());
            output = plan.objects[0].0.body.len();
        }
        let start = Instant::now();
        let mut batches = 0u32;
        while start.elapsed() < Duration::from_secs(2) {
            let plan = planner.plan(&records).unwrap_or_else(|e| panic!("{e}"));
            std::hint::black_box(&plan);
            batches += 1;
        }
        let seconds = start.elapsed().as_secs_f64();
        let mbps = input as f64 * f64::from(batches) / seconds / 1e6;
        println!(
            "  {name:<16} {mbps:>8.1} MB/s per core  {:>9.0} records/s  ratio {:>5.2}  ({batches} batches in {seconds:.1} s)",
            RECORDS as f64 * f64::from(batches) / seconds,
            input as f64 / output as f64
        );
    }
}
