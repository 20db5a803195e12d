//! The sink conformance suite against the `s3` plugin, driven through the
//! plugin host's C ABI, writing to moto's S3 through the fault-injecting
//! proxy (which makes the destination "unavailable" by answering
//! `503 SlowDown`, see `support`). Skipped without
//! `SHARDLINE_TEST_S3_ENDPOINT` (fails under `CI=true`).

mod support;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use shardline_api::Sink;
use shardline_e2e::s3::S3;
use shardline_sink_conformance::{InvalidConfig, Scope, SinkUnderTest};
use support::{Fault, FaultProxy};

struct S3UnderTest {
    endpoint: String,
    bucket: String,
    proxy: FaultProxy,
}

fn table(text: &str) -> toml::Table {
    text.parse().unwrap_or_else(|e| panic!("TOML: {e}\n{text}"))
}

fn json(config: &toml::Table) -> serde_json::Value {
    serde_json::to_value(config).unwrap_or_else(|e| panic!("TOML converts to JSON: {e}"))
}

impl S3UnderTest {
    fn base(&self) -> String {
        format!("bucket = \"{}\"\nendpoint = \"{}\"\nforce_path_style = true\n", self.bucket, self.proxy.endpoint)
    }
}

#[async_trait]
impl SinkUnderTest for S3UnderTest {
    fn sink_type(&self) -> String {
        "s3".to_owned()
    }

    fn config(&self, scope: &Scope) -> toml::Table {
        // No SDK retries: the unavailable destination answers retriable at once.
        table(&format!("{}key = \"{}/{{shard_id}}/{{first_seq}}-{{first_subseq}}\"\nrequest_max_attempts = 1\n", self.base(), scope.name))
    }

    fn invalid_configs(&self, scope: &Scope) -> Vec<InvalidConfig> {
        let base = self.base();
        let case = |text: String, key: Option<&str>| InvalidConfig { config: table(&text), key: key.map(str::to_owned) };
        vec![
            case("key = \"x/{shard_id}/{first_seq}/{first_subseq}\"".to_owned(), Some("bucket")),
            case(format!("{base}buckt = 1"), Some("buckt")),
            case(format!("{base}key = \"{}/{{stream}}/{{shardid}}\"", scope.name), Some("key")),
            case(format!("{base}key = \"{}/{{stream}}\"", scope.name), Some("key")),
            case(format!("{base}compression = \"lz4\""), Some("compression")),
            case(format!("{base}compression = \"gzip\"\ncompression_level = 11"), Some("compression_level")),
            case(format!("{base}multipart_threshold = \"1MiB\""), Some("multipart_threshold")),
            case(format!("{base}multipart_part_size = \"6GiB\""), Some("multipart_part_size")),
            case(format!("{base}encoding = \"csv\""), Some("csv_fields")),
            case(format!("{base}time_zone = \"+99:00\""), Some("time_zone")),
            case(format!("{base}max_partitions = 0"), Some("max_partitions")),
        ]
    }

    fn validate(&self, config: &toml::Table) -> Result<(), (Option<String>, String)> {
        support::plugin().validate(&json(config)).map_err(|problems| {
            let first = problems.into_iter().next().unwrap_or_else(|| panic!("a refusal names at least one problem"));
            (first.key, first.message)
        })
    }

    fn build(&self, config: &toml::Table, pipeline: &str) -> Result<Arc<dyn Sink>, String> {
        Ok(Arc::new(support::plugin().build_sink(json(config), pipeline)))
    }

    async fn read_back(&self, scope: &Scope) -> Vec<Bytes> {
        let s3 = S3::new(&self.endpoint);
        let objects = s3.objects(&self.bucket, &format!("{}/", scope.name)).await.unwrap_or_else(|e| panic!("read back: {e:#}"));
        for object in &objects {
            assert!(object.key.ends_with(".ndjson.gz"), "{}", object.key);
            assert_eq!(object.content_encoding.as_deref(), Some("gzip"), "{}", object.key);
        }
        objects.iter().flat_map(|o| o.lines()).map(Bytes::from).collect()
    }

    fn rejected_payload(&self) -> Option<Bytes> {
        Some(Bytes::from_static(b"this is not JSON, so encoding = \"ndjson\" rejects it"))
    }

    async fn make_unavailable(&self, _scope: &Scope) -> bool {
        self.proxy.inject(Fault::slow_down(0).always());
        true
    }

    async fn make_available(&self, _scope: &Scope) {
        self.proxy.clear();
    }

    fn expected_metrics(&self) -> Vec<String> {
        vec![r#"shardline_plugin_calls_total{plugin="s3",call="send",outcome="ok"}"#.to_owned()]
    }
}

fn sut() -> Option<&'static S3UnderTest> {
    static SUT: OnceLock<Option<S3UnderTest>> = OnceLock::new();
    SUT.get_or_init(|| {
        let endpoint = shardline_e2e::s3::endpoint_from_env()?;
        support::test_credentials();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
        let bucket = runtime.block_on(S3::new(&endpoint).create_bucket("conformance")).unwrap_or_else(|e| panic!("{e:#}"));
        let proxy = FaultProxy::start(&endpoint);
        Some(S3UnderTest { endpoint, bucket, proxy })
    })
    .as_ref()
}

#[test]
fn the_s3_plugin_passes_the_sink_conformance_suite() {
    let Some(sut) = sut() else { return };
    let report = shardline_sink_conformance::run(sut);
    println!("{report}");
    assert_eq!(report.passed.len(), 4, "{report}");
    assert!(report.skipped.is_empty(), "{report}");
    assert!(sut.proxy.injected() >= 1, "the retriable check went through the injected SlowDown");
}

#[test]
fn the_plugin_describes_every_key_it_accepts() {
    let info = support::plugin().info().clone();
    assert_eq!(info.name, "s3");
    let described: Vec<&str> = info.config_keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(info.config_keys.iter().filter(|k| k.required).map(|k| k.name.as_str()).collect::<Vec<_>>(), ["bucket"]);
    // Every described key is accepted, every accepted key described: a config
    // naming all of them parses, and an unknown one is refused.
    let all = serde_json::json!({
        "bucket": "b-1", "key": "{shard_id}/{first_seq}/{first_subseq}", "extension": ".x", "region": "eu-west-1",
        "endpoint": "http://127.0.0.1:1", "profile": "p", "force_path_style": true, "checksum_calculation": "when_required",
        "encoding": "csv", "csv_fields": ["a"], "csv_header": false, "raw_delimiter": "\n", "compression": "zstd",
        "compression_level": 5, "time_zone": "+02:00", "max_partitions": 5, "multipart_threshold": "32MiB",
        "multipart_part_size": "16MiB", "max_concurrent_uploads": 2, "request_max_attempts": 2, "request_timeout": "5s",
        "content_encoding": false,
    });
    // `[sink.parquet]` only goes with encoding = "parquet" (and csv_* not).
    let parquet = serde_json::json!({
        "bucket": "b-1", "encoding": "parquet", "compression": "snappy",
        "parquet": { "schema": { "user": "string", "geo.country": "string" }, "required": ["user"] },
    });
    let mut accepted: Vec<&str> = all.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
    accepted.push("parquet");
    let mut sorted_described = described.clone();
    sorted_described.sort_unstable();
    let mut sorted_accepted = accepted.clone();
    sorted_accepted.sort_unstable();
    assert_eq!(sorted_described, sorted_accepted);
    assert_eq!(support::plugin().validate(&all), Ok(()));
    assert_eq!(support::plugin().validate(&parquet), Ok(()));
    for key in &info.config_keys {
        assert!(key.required || key.description.contains("default"), "`{}` must document its default: {}", key.name, key.description);
    }
}
