//! `shardline run --web` in a real browser: the page on 127.0.0.1 shows
//! each shard of the pipeline with its owner (this worker), its lag and
//! rate, and the pipeline's counters (records received and delivered),
//! and keeps updating; it has no referrer chart (that is the quickstart's).
//! A screenshot is kept at `target/e2e/web-page/web.png` for humans.
//!
//! Needs kinesis-mock + dynalite and headless Chromium
//! (`SHARDLINE_TEST_CHROMIUM`); skipped without them, failing under
//! `CI=true`.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use shardline_e2e::*;

/// The value of attribute `name` in every `<tr class="shard" ...>` tag.
fn row_attrs(dom: &str, name: &str) -> Vec<String> {
    dom.match_indices("<tr class=\"shard\"")
        .filter_map(|(i, _)| {
            let tag = &dom[i..i + dom[i..].find('>')?];
            let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
            Some(tag[start..start + tag[start..].find('"')?].to_owned())
        })
        .collect()
}

/// `data-value` of the counter `key`.
fn counter(dom: &str, key: &str) -> f64 {
    let marker = format!("data-counter=\"{key}\" data-value=\"");
    dom.find(&marker)
        .and_then(|i| dom[i + marker.len()..].split('"').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_shards_owners_lag_and_counters() {
    let Some(emulators) = Emulators::from_env() else { return };
    let Some(chromium) = Chromium::from_env() else { return };
    let Some(bin) = shardline_bin() else { return };
    let dir = TestDir::new("web-page");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis.create_stream("e2e-web", 2).await.expect("create stream");
    let spec = PipelineSpec::new(&emulators, &stream, dir.path());
    let pipeline = spec.write(dir.path(), "pipeline.toml");
    let worker = Worker::start_with_args(&bin, &pipeline, "web-worker", dir.path(), &["--web", "127.0.0.1:0"]);

    let records: Vec<TestRecord> = (0..200).map(|i| TestRecord::json(format!("pk-{i}"), &json!({ "id": format!("w-{i:03}") }))).collect();
    kinesis.put_records(&stream, &records).await.expect("put records");
    let ids: HashSet<String> = (0..200).map(|i| format!("w-{i:03}")).collect();
    wait_for_ids(&spec.sink_dir, &ids, &[&worker], Duration::from_secs(90)).await;
    let address = worker.logged_address("web page listening").expect("the worker logged the page's address");
    let url = format!("http://{address}/");

    // The page, rendered by Chromium after several polls of /api/status.
    let mut dom = String::new();
    wait_until(Duration::from_secs(60), "the page to show both shards and the delivered records", || {
        let read = chromium.dump_dom(&url, Duration::from_secs(4));
        let ready = read.map(|text| {
            let ok = row_attrs(&text, "data-shard").len() == 2
                && counter(&text, "delivered") >= 200.0
                && row_attrs(&text, "data-rate").iter().all(|r| !r.is_empty());
            dom = text;
            ok
        });
        async move { ready }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\nlast DOM:\n{dom}"));
    assert_eq!(row_attrs(&dom, "data-owner"), vec!["web-worker".to_owned(); 2], "{dom}");
    for lag in row_attrs(&dom, "data-lag") {
        assert!(lag.parse::<f64>().is_ok_and(|l| l >= 0.0), "a lag from this worker's metrics, got {lag:?}");
    }
    for rate in row_attrs(&dom, "data-rate") {
        assert!(rate.parse::<f64>().is_ok_and(|r| r >= 0.0), "a rate, got {rate:?}");
    }
    assert!(counter(&dom, "received") >= 200.0, "{dom}");
    assert_eq!(counter(&dom, "dead_lettered"), 0.0, "{dom}");
    let updates = dom
        .split("data-updates=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    assert!(updates >= 2, "the page polled more than once: {updates}");
    assert!(dom.contains("worker <b id=\"worker\">web-worker</b>"), "{dom}");
    assert!(!dom.to_lowercase().contains("referrer"), "no referrer chart on the run page");

    // Next to the test directories, which are removed when the test passes.
    let screenshot = dir.path().parent().map(|p| p.join("web-page")).unwrap_or_else(|| dir.join("web-page"));
    chromium.screenshot(&url, Duration::from_secs(4), &screenshot.join("web.png")).expect("screenshot");
    worker.sigterm_and_wait(Duration::from_secs(30)).expect("worker stops");
}
