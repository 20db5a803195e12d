//! The sink conformance suite, through the plugin host and the real C ABI
//! (`shardline_plugin_sdk::testing::table`), against osmem-server (an
//! OpenSearch-compatible server that `scripts/test` starts and announces in
//! `SHARDLINE_TEST_OPENSEARCH_ENDPOINT`).
//!
//! "Unavailable" is a TCP proxy of the test's own in front of the server,
//! per scope: closing it makes the sink's requests fail as a cluster that
//! is down does, without disturbing other tests that share the server.

mod proxy;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use shardline_api::Sink;
use shardline_plugin_host::LoadedPlugin;
use shardline_plugin_sdk::async_trait;
use shardline_sink_conformance::{InvalidConfig, Scope, SinkUnderTest};
use shardline_sink_elasticsearch::Elasticsearch;

use proxy::Proxy;

/// The osmem endpoint, or `None` after printing why the test is skipped.
fn endpoint() -> Option<String> {
    match std::env::var("SHARDLINE_TEST_OPENSEARCH_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            let message = "SHARDLINE_TEST_OPENSEARCH_ENDPOINT not set (run scripts/test)";
            if std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1") {
                panic!("{message}");
            }
            eprintln!("skipped: {message}");
            None
        }
    }
}

fn plugin() -> Arc<LoadedPlugin> {
    static PLUGIN: OnceLock<Arc<LoadedPlugin>> = OnceLock::new();
    PLUGIN
        .get_or_init(|| {
            let table = shardline_plugin_sdk::testing::table::<Elasticsearch>();
            // SAFETY: the table comes from the SDK, which keeps the ABI's contract.
            let plugin = unsafe { LoadedPlugin::from_table(table, Path::new("elasticsearch (linked into the test)")) };
            Arc::new(plugin.expect("the plugin's table is accepted"))
        })
        .clone()
}

struct ElasticsearchUnderTest {
    server: String,
    proxies: Mutex<HashMap<String, Arc<Proxy>>>,
}

impl ElasticsearchUnderTest {
    fn proxy(&self, scope: &Scope) -> Arc<Proxy> {
        let mut proxies = self.proxies.lock().expect("lock");
        proxies.entry(scope.name.clone()).or_insert_with(|| Arc::new(Proxy::start(&self.server))).clone()
    }

    fn index(scope: &Scope) -> String {
        format!("conformance-{}", scope.name)
    }
}

fn table(text: &str) -> toml::Table {
    text.parse().expect("TOML")
}

fn json(config: &toml::Table) -> serde_json::Value {
    serde_json::to_value(config).expect("TOML converts to JSON")
}

#[async_trait]
impl SinkUnderTest for ElasticsearchUnderTest {
    fn sink_type(&self) -> String {
        "elasticsearch".to_owned()
    }

    fn config(&self, scope: &Scope) -> toml::Table {
        let endpoint = format!("http://{}", self.proxy(scope).address());
        // Small requests, so one engine batch becomes several _bulk requests.
        table(&format!(
            "endpoint = \"{endpoint}\"\nindex = \"{}\"\nbulk_max_actions = 4\nrequest_timeout = \"5s\"",
            Self::index(scope)
        ))
    }

    fn invalid_configs(&self, scope: &Scope) -> Vec<InvalidConfig> {
        let index = Self::index(scope);
        vec![
            InvalidConfig { config: table(&format!("index = \"{index}\"")), key: Some("endpoint".into()) },
            InvalidConfig { config: table("endpoint = \"http://127.0.0.1:1\""), key: Some("index".into()) },
            InvalidConfig { config: table(&format!("endpoint = \"ftp://x\"\nindex = \"{index}\"")), key: Some("endpoint".into()) },
            InvalidConfig { config: table("endpoint = \"http://x\"\nindex = \"Upper-{yyyy.MM}\""), key: Some("index".into()) },
            InvalidConfig { config: table(&format!("endpoint = \"http://x\"\nindex = \"{index}\"\nbulk_max_actions = 0")), key: Some("bulk_max_actions".into()) },
            InvalidConfig { config: table(&format!("endpoint = \"http://x\"\nindex = \"{index}\"\nbulk_max_actoins = 5")), key: Some("bulk_max_actoins".into()) },
        ]
    }

    fn validate(&self, config: &toml::Table) -> Result<(), (Option<String>, String)> {
        plugin().validate(&json(config)).map_err(|problems| {
            let first = problems.into_iter().next().expect("at least one problem");
            (first.key, first.message)
        })
    }

    fn build(&self, config: &toml::Table, pipeline: &str) -> Result<Arc<dyn Sink>, String> {
        Ok(Arc::new(plugin().build_sink(json(config), pipeline)))
    }

    async fn read_back(&self, scope: &Scope) -> Vec<Bytes> {
        let index = Self::index(scope);
        let server = self.server.clone();
        tokio::task::spawn_blocking(move || {
            proxy::http(&server, "POST", &format!("/{index}/_refresh"), "");
            let (status, body) = proxy::http(&server, "POST", &format!("/{index}/_search"), r#"{"size":1000,"query":{"match_all":{}}}"#);
            assert_eq!(status, 200, "search {index}: {body}");
            let v: serde_json::Value = serde_json::from_str(&body).expect("search answer");
            v["hits"]["hits"]
                .as_array()
                .expect("hits")
                .iter()
                .map(|hit| Bytes::from(serde_json::to_vec(&hit["_source"]).expect("json")))
                .collect()
        })
        .await
        .expect("search task")
    }

    fn rejected_payload(&self) -> Option<Bytes> {
        // `conformance` is a number in the neighbours: a mapping error (400).
        Some(Bytes::from_static(br#"{"conformance":{"not":"a number"}}"#))
    }

    async fn make_unavailable(&self, scope: &Scope) -> bool {
        self.proxy(scope).set_available(false);
        true
    }

    async fn make_available(&self, scope: &Scope) {
        self.proxy(scope).set_available(true);
    }

    fn expected_metrics(&self) -> Vec<String> {
        vec![r#"shardline_plugin_calls_total{plugin="elasticsearch",call="send",outcome="ok"}"#.to_owned()]
    }
}

#[test]
fn the_elasticsearch_sink_passes_the_conformance_suite() {
    let Some(server) = endpoint() else { return };
    let server = server.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let report = shardline_sink_conformance::run(&ElasticsearchUnderTest { server, proxies: Mutex::default() });
    println!("{report}");
    assert_eq!(report.passed.len(), 4, "{report}");
    assert!(report.skipped.is_empty(), "{report}");
}
