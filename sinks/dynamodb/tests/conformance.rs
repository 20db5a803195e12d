//! The sink conformance suite for the `dynamodb` plugin, through the
//! plugin host (the real C ABI) against dynalite.
//!
//! All checks share one table keyed by `scope` (S) and `conformance` (N),
//! the two fields of the suite's payloads; each check reads back the items
//! of its own scope. The destination is made unavailable with the test
//! proxy (fault injection, `support/proxy.rs`): it answers every request
//! 503 `ServiceUnavailableException`, as DynamoDB documents it. The
//! rejected payload has a `conformance` key of the wrong type.

mod support;

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ScalarAttributeType as T};
use bytes::Bytes;
use shardline_api::Sink;
use shardline_sink_conformance::{InvalidConfig, Scope, SinkUnderTest};
use support::proxy::Proxy;
use support::{client, create_table, dynalite, plugin, scan, unique};

struct DynamoDbUnderTest {
    endpoint: String,
    table: String,
    proxy: Proxy,
}

fn table(text: &str) -> toml::Table {
    text.parse().expect("TOML")
}

#[async_trait]
impl SinkUnderTest for DynamoDbUnderTest {
    fn sink_type(&self) -> String {
        "dynamodb".to_owned()
    }

    fn config(&self, _scope: &Scope) -> toml::Table {
        table(&format!(
            "table = {:?}\nendpoint = {:?}\nregion = \"us-east-1\"\nunprocessed_retry_timeout = \"300ms\"\nunprocessed_retry_initial_backoff = \"10ms\"\nunprocessed_retry_max_backoff = \"50ms\"",
            self.table, self.proxy.endpoint
        ))
    }

    fn invalid_configs(&self, _scope: &Scope) -> Vec<InvalidConfig> {
        let endpoint = &self.endpoint;
        vec![
            InvalidConfig { config: table(&format!("endpoint = {endpoint:?}")), key: Some("table".into()) },
            InvalidConfig { config: table("table = \"orders\"\ntabel = \"x\""), key: Some("tabel".into()) },
            InvalidConfig { config: table("table = \"no spaces allowed\""), key: Some("table".into()) },
            InvalidConfig { config: table("table = \"orders\"\nendpoint = \"localhost:8000\""), key: Some("endpoint".into()) },
            InvalidConfig { config: table("table = \"orders\"\nconcurrency = 0"), key: Some("concurrency".into()) },
            // A value serde refuses: the SDK's parse error names no key
            // (only unknown/missing/duplicate field messages do).
            InvalidConfig { config: table("table = \"orders\"\nunprocessed_retry_timeout = \"soon\""), key: None },
            InvalidConfig { config: table("table = \"orders\"\nrename = { a = \"x\", b = \"x\" }"), key: Some("rename".into()) },
        ]
    }

    fn validate(&self, config: &toml::Table) -> Result<(), (Option<String>, String)> {
        let json = serde_json::to_value(config).expect("TOML converts to JSON");
        plugin().validate(&json).map_err(|problems| {
            let first = problems.into_iter().next().expect("at least one problem");
            (first.key, first.message)
        })
    }

    fn build(&self, config: &toml::Table, pipeline: &str) -> Result<Arc<dyn Sink>, String> {
        let json = serde_json::to_value(config).map_err(|e| e.to_string())?;
        Ok(Arc::new(plugin().build_sink(json, pipeline)))
    }

    async fn read_back(&self, scope: &Scope) -> Vec<Bytes> {
        scan(&client(&self.endpoint), &self.table)
            .await
            .into_iter()
            .filter(|item| item.get("scope") == Some(&AttributeValue::S(scope.name.clone())))
            .map(|item| {
                assert_eq!(item.len(), 2, "only the payload's fields: {item:?}");
                let Some(AttributeValue::N(n)) = item.get("conformance") else { panic!("no number: {item:?}") };
                // The suite's payload, byte for byte.
                Bytes::from(format!("{{\"conformance\":{n},\"scope\":\"{}\"}}", scope.name))
            })
            .collect()
    }

    fn rejected_payload(&self) -> Option<Bytes> {
        Some(Bytes::from_static(br#"{"conformance":"not a number","scope":"rejected"}"#))
    }

    async fn make_unavailable(&self, _scope: &Scope) -> bool {
        self.proxy.set(|f| f.unavailable = true);
        true
    }

    async fn make_available(&self, _scope: &Scope) {
        self.proxy.set(|f| f.unavailable = false);
    }

    fn expected_metrics(&self) -> Vec<String> {
        vec![r#"shardline_plugin_calls_total{plugin="dynamodb",call="send",outcome="ok"}"#.to_owned()]
    }
}

fn under_test() -> Option<DynamoDbUnderTest> {
    let endpoint = dynalite()?;
    static TABLE: OnceLock<String> = OnceLock::new();
    let name = TABLE
        .get_or_init(|| {
            let name = unique("conformance");
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(create_table(&client(&endpoint), &name, ("scope", T::S), Some(("conformance", T::N)), None));
            name
        })
        .clone();
    let proxy = Proxy::start(&endpoint);
    Some(DynamoDbUnderTest { endpoint, table: name, proxy })
}

#[test]
fn the_dynamodb_plugin_passes_the_sink_conformance_suite() {
    let Some(sut) = under_test() else { return };
    let report = shardline_sink_conformance::run(&sut);
    println!("{report}");
    assert_eq!(report.passed.len(), 4, "{report}");
    assert!(report.skipped.is_empty(), "{report}");
}
