//! `encoding = "parquet"` through the real binary: JSON records (and
//! misfits) put into kinesis-mock, the `s3` plugin writing one Parquet
//! file per partition and batch into moto's S3, every object read back
//! with **pyarrow** (rows and Arrow types compared with the input) and one
//! with **DuckDB**; the misfits are in the dead letters with the field and
//! the reason, and nothing else is.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use shardline_e2e::s3::{self, S3};
use shardline_e2e::*;

const GOOD: usize = 90;
const COUNTRIES: [&str; 3] = ["fr", "de", "jp"];

/// The fitting record `i`: every type, optional fields left out or null
/// in turn, time stamps as epoch ms or RFC 3339, amounts as integers or
/// floats.
fn good(i: usize) -> Value {
    let mut record = json!({
        "id": format!("pq-{i:03}"),
        "user": format!("user-{}", i % 7),
        "amount": if i.is_multiple_of(2) { json!(i as f64 + 0.25) } else { json!(i) },
        "ts": if i.is_multiple_of(3) { json!(format!("2026-12-07T10:00:{:02}.5+01:00", i % 60)) } else { json!(1_765_101_600_000i64 + i as i64) },
        "tags": if i.is_multiple_of(4) { json!({"k": i, "list": [1, "two"]}) } else { json!(["t", i]) },
        "ok": i % 2 == 1,
        "n": i as i64 * 1_000_000_007 - 50_000_000_000,
        "geo": { "country": COUNTRIES[i % COUNTRIES.len()], "city": "ignored" },
        "extra": "not in the schema",
    });
    match i % 10 {
        5 => {
            record.as_object_mut().map(|o| o.remove("amount"));
        }
        6 => record["ok"] = Value::Null,
        7 => {
            record.as_object_mut().map(|o| o.remove("tags"));
            record["n"] = Value::Null;
        }
        _ => {}
    }
    record
}

/// The expected epoch milliseconds of a record's `ts`.
fn ts_millis(i: usize) -> i64 {
    if i.is_multiple_of(3) {
        // 10:00:SS.5+01:00 is 09:00:SS.500Z on 2026-12-07.
        1_796_634_000_000 + (i % 60) as i64 * 1000 + 500
    } else {
        1_765_101_600_000 + i as i64
    }
}

/// Records that do not fit, each with the field and the words its
/// dead-letter reason must hold.
fn misfits() -> Vec<(TestRecord, &'static str, &'static str)> {
    let record = |data: Vec<u8>| TestRecord {
        partition_key: "pk-misfit".into(),
        explicit_hash_key: None,
        data,
    };
    let object = |mut value: Value, field: &str, bad: Value| {
        value["id"] = json!(format!("misfit-{field}"));
        value[field] = bad;
        record(serde_json::to_vec(&value).expect("json"))
    };
    let mut no_user = good(1);
    no_user.as_object_mut().map(|o| o.remove("user"));
    vec![
        (
            object(good(1), "n", json!("5")),
            "`n` (int64)",
            "expected an integer, found a string \"5\"",
        ),
        (
            object(good(2), "n", json!(1.5)),
            "`n` (int64)",
            "expected an integer, found a number 1.5",
        ),
        (
            object(good(3), "ts", json!("yesterday")),
            "`ts` (timestamp_ms)",
            "is not an RFC 3339 time",
        ),
        (
            object(good(4), "ok", json!("yes")),
            "`ok` (bool)",
            "expected true or false",
        ),
        (
            object(good(5), "amount", json!("12.5")),
            "`amount` (double)",
            "expected a number",
        ),
        (
            record(serde_json::to_vec(&no_user).expect("json")),
            "`user` (string)",
            "required field is missing",
        ),
        (
            object(good(6), "user", Value::Null),
            "`user` (string)",
            "required field is null",
        ),
        (
            record(b"{\"id\": \"pq-broken\", oops".to_vec()),
            "not valid JSON",
            "encoding = \"parquet\" needs JSON objects",
        ),
        (
            record(b"[1, 2, 3]".to_vec()),
            "not a JSON object",
            "it is an array",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_objects_read_back_with_pyarrow_and_duckdb_and_misfits_are_dead_lettered() {
    let Some(emulators) = Emulators::from_env() else {
        return;
    };
    let Some(endpoint) = s3::endpoint_from_env() else {
        return;
    };
    let Some(plugins) = s3::plugin_dir() else {
        return;
    };
    let Some(bin) = shardline_bin() else { return };
    let Some(python) = s3::parquet_python() else {
        return;
    };
    // Workers inherit the environment: the plugin directory reaches `shardline run`.
    std::env::set_var("SHARDLINE_PLUGIN_DIR", plugins);
    let dir = TestDir::new("s3-parquet");
    let kinesis = Kinesis::new(&emulators.kinesis_endpoint);
    let stream = kinesis
        .create_stream("e2e-s3-parquet", 2)
        .await
        .expect("create stream");
    let s3 = S3::new(&endpoint);
    let bucket = s3.create_bucket("s3-parquet").await.expect("create bucket");
    let mut spec = PipelineSpec::new(&emulators, &stream, dir.path());
    // No parse_json: the sink itself parses, and refuses what is not JSON.
    spec.transforms = Vec::new();
    spec.buffer_max_records = 40;
    let sink = format!(
        "type = \"s3\"\nbucket = \"{bucket}\"\nendpoint = \"{}\"\nforce_path_style = true\nencoding = \"parquet\"\ncompression = \"zstd\"\n\
         key = \"{{stream}}/country={{field.geo.country}}/{{shard_id}}-{{first_seq}}-{{first_subseq}}-{{last_seq}}\"\n\n\
         [sink.parquet]\n\
         schema = {{ id = \"string\", user = \"string\", amount = \"double\", ts = \"timestamp_ms\", tags = \"json\", ok = \"bool\", n = \"int64\", \"geo.country\" = \"string\" }}\n\
         required = [\"id\", \"user\"]",
        s3.endpoint
    );
    let pipeline = dir.join("pipeline.toml");
    std::fs::write(&pipeline, s3::pipeline_with_sink(&spec, &sink)).expect("write the pipeline");
    let worker = Worker::start(&bin, &pipeline, "s3-parquet", dir.path());

    let misfits = misfits();
    let mut records: Vec<TestRecord> = (0..GOOD)
        .map(|i| TestRecord::json(format!("pk-{i}"), &good(i)))
        .collect();
    for (n, (misfit, _, _)) in misfits.iter().enumerate() {
        records.insert(n * 10 + 3, misfit.clone());
    }
    kinesis
        .put_records(&stream, &records)
        .await
        .expect("put records");

    let rows = |objects: &[s3::StoredObject]| {
        objects
            .iter()
            .map(|o| s3::parquet_rows(&o.body).unwrap_or(0))
            .sum::<i64>()
    };
    let objects = s3::wait_for_objects(&s3, &bucket, "", &[&worker], DELIVERY_TIMEOUT, |o| {
        rows(o) >= GOOD as i64
    })
    .await;
    wait_until(
        Duration::from_secs(60),
        "the misfits' dead letters",
        || async {
            worker.ensure_running()?;
            Ok(read_ndjson_dir(&spec.dead_letter_dir).len() >= misfits.len())
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e:#}; dead letters: {:?}",
            read_ndjson_dir(&spec.dead_letter_dir)
        )
    });
    worker
        .sigterm_and_wait(Duration::from_secs(30))
        .map(|s| assert_eq!(s.code(), Some(0), "exit status"))
        .expect("shutdown");

    // Every object is a Parquet file of one partition, named and typed as such.
    assert_eq!(rows(&objects), GOOD as i64, "every fitting record once");
    let files = dir.join("objects");
    std::fs::create_dir_all(&files).expect("objects dir");
    let mut paths = Vec::new();
    for (n, object) in objects.iter().enumerate() {
        assert!(
            object.key.starts_with(&format!("{stream}/country="))
                && object.key.ends_with(".parquet"),
            "{}",
            object.key
        );
        assert_eq!(
            object.content_type.as_deref(),
            Some("application/vnd.apache.parquet"),
            "{}",
            object.key
        );
        assert_eq!(
            object.content_encoding, None,
            "{}: the codec is inside the file",
            object.key
        );
        let path = files.join(format!("{n:03}.parquet"));
        std::fs::write(&path, &object.raw).expect("write object");
        paths.push((object.key.clone(), path));
    }

    // pyarrow reads every file (and DuckDB the first).
    let output = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/read_parquet.py"
        ))
        .arg(&paths[0].1)
        .args(paths.iter().map(|(_, p)| p))
        .stdin(Stdio::null())
        .output()
        .expect("run read_parquet.py");
    assert!(
        output.status.success(),
        "read_parquet.py failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read: Value = serde_json::from_slice(&output.stdout).expect("read_parquet.py prints JSON");
    eprintln!(
        "read back with pyarrow {} and duckdb {}",
        read["pyarrow"], read["duckdb"]
    );

    let expected_schema = json!([
        ["amount", "double", true],
        ["geo.country", "string", true],
        ["id", "string", false],
        ["n", "int64", true],
        ["ok", "bool", true],
        [
            "tags",
            read["files"][paths[0].1.to_string_lossy().as_ref()]["schema"][5][1].clone(),
            true
        ],
        ["ts", "timestamp[ms, tz=UTC]", true],
        ["user", "string", false],
    ]);
    let mut seen: BTreeMap<String, Value> = BTreeMap::new();
    for (key, path) in &paths {
        let file = &read["files"][path.to_string_lossy().as_ref()];
        assert_eq!(file["schema"], expected_schema, "{key}: Arrow schema");
        let tags_type = expected_schema[5][1].as_str().unwrap_or_default();
        assert!(
            tags_type == "string" || tags_type.contains("json"),
            "`json` columns read as text or Arrow's JSON type: {tags_type}"
        );
        let country = key
            .split('/')
            .nth(1)
            .and_then(|p| p.strip_prefix("country="))
            .expect("partition in the key");
        for row in file["rows"].as_array().expect("rows") {
            assert_eq!(
                row["geo.country"], country,
                "{key}: the row is in its partition's object: {row}"
            );
            let id = row["id"].as_str().expect("id").to_owned();
            assert!(
                seen.insert(id.clone(), row.clone()).is_none(),
                "{id} delivered twice"
            );
        }
    }
    assert_eq!(seen.len(), GOOD);
    for i in 0..GOOD {
        let input = good(i);
        let row = &seen[&format!("pq-{i:03}")];
        let amount = input
            .get("amount")
            .and_then(Value::as_f64)
            .map_or(Value::Null, |f| json!(f));
        let tags = row["tags"]
            .as_str()
            .map(|t| serde_json::from_str::<Value>(t).expect("tags hold JSON text"));
        assert_eq!(tags, input.get("tags").cloned(), "pq-{i:03}: tags");
        let expected = json!({
            "id": input["id"], "user": input["user"], "amount": amount, "ts": ts_millis(i), "tags": row["tags"],
            "ok": input["ok"], "n": input["n"], "geo.country": input["geo"]["country"],
        });
        assert_eq!(
            row, &expected,
            "pq-{i:03}: pyarrow's row matches the record put"
        );
    }

    // DuckDB reads the same rows as pyarrow, with SQL types.
    let duck = &read["duckdb_file"];
    let types: BTreeMap<&str, &str> = duck["types"]
        .as_array()
        .expect("types")
        .iter()
        .map(|t| {
            (
                t[0].as_str().unwrap_or_default(),
                t[1].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        types,
        BTreeMap::from([
            ("amount", "DOUBLE"),
            ("geo.country", "VARCHAR"),
            ("id", "VARCHAR"),
            ("n", "BIGINT"),
            ("ok", "BOOLEAN"),
            (
                "tags",
                types
                    .get("tags")
                    .copied()
                    .filter(|t| *t == "JSON" || *t == "VARCHAR")
                    .unwrap_or("JSON or VARCHAR")
            ),
            ("ts", "TIMESTAMP WITH TIME ZONE"),
            ("user", "VARCHAR"),
        ])
    );
    let duck_rows = duck["rows"].as_array().expect("duckdb rows");
    let first_file = &read["files"][paths[0].1.to_string_lossy().as_ref()]["rows"];
    assert_eq!(duck_rows.len(), first_file.as_array().map_or(0, Vec::len));
    for (duck_row, arrow_row) in duck_rows
        .iter()
        .zip(first_file.as_array().into_iter().flatten())
    {
        assert_eq!(duck_row, arrow_row, "DuckDB and pyarrow agree");
    }

    // The misfits, and only they, are dead letters with the field and the reason.
    let dead = OutputRecord::read_dir(&spec.dead_letter_dir);
    assert_eq!(dead.len(), misfits.len(), "{dead:?}");
    for (misfit, field, why) in &misfits {
        let letter = dead
            .iter()
            .find(|d| d.payload == misfit.data)
            .unwrap_or_else(|| {
                panic!(
                    "no dead letter for {}",
                    String::from_utf8_lossy(&misfit.data)
                )
            });
        assert_eq!(letter.stage.as_deref(), Some("sink"));
        let reason = letter.reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains(field) && reason.contains(why),
            "dead-letter reason {reason:?} should name {field} and say {why:?}"
        );
    }
}
