//! Unit tests of the Parquet writer: files read back with the Parquet
//! crate's own reader (schema, values, nulls, codecs), and through the
//! encoder and planner as `send` uses them.

use std::collections::BTreeMap;
use std::sync::Arc;

use ::parquet::basic::{Compression as Codec, LogicalType, Repetition, Type as PhysicalType};
use ::parquet::file::reader::{FileReader, SerializedFileReader};
use ::parquet::record::Field;
use bytes::Bytes;
use serde_json::json;
use shardline_plugin_sdk::Record;

use super::convert::{convert, Cell};
use super::schema::{ParquetConfig, Schema};
use super::writer::FileWriter;
use crate::encode::{Compression, Encoder};

fn schema() -> Arc<Schema> {
    let config = ParquetConfig {
        schema: [
            ("user", "string"),
            ("amount", "double"),
            ("ts", "timestamp_ms"),
            ("tags", "json"),
            ("ok", "bool"),
            ("n", "int64"),
            ("geo.country", "string"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect::<BTreeMap<_, _>>(),
        required: vec!["user".into()],
    };
    Arc::new(Schema::from_config(&config).expect("schema"))
}

fn rows(schema: &Schema) -> Vec<Vec<Cell>> {
    [
        json!({"user": "ann", "amount": 12.5, "ts": 1_700_000_000_000i64, "tags": ["a", "b"], "ok": true, "n": 7, "geo": {"country": "fr"}}),
        json!({"user": "bob", "amount": 3, "ts": "2023-11-14T22:13:21Z", "tags": {"k": 1}, "ok": false, "n": -1}),
        json!({"user": "cy"}),
    ]
    .iter()
    .map(|record| convert(schema, record).expect("fits"))
    .collect()
}

/// Every row of a file as (column name, field) pairs.
fn read_back(file: Bytes) -> (SerializedFileReader<Bytes>, Vec<Vec<(String, Field)>>) {
    let reader = SerializedFileReader::new(file.clone()).expect("a Parquet file");
    let rows = reader
        .get_row_iter(None)
        .expect("rows")
        .map(|row| row.expect("row").into_columns())
        .collect();
    (reader, rows)
}

#[test]
fn a_file_reads_back_with_its_schema_values_and_nulls() {
    let schema = schema();
    let writer = FileWriter::new(schema.clone(), Compression::Snappy, None).expect("writer");
    let (reader, got) = read_back(writer.file(&rows(&schema)).expect("file"));
    let metadata = reader.metadata();
    assert_eq!(metadata.file_metadata().num_rows(), 3);
    assert_eq!(metadata.num_row_groups(), 1);
    let descr = metadata.file_metadata().schema_descr();
    let columns: Vec<(String, PhysicalType, Option<LogicalType>, Repetition)> = descr
        .columns()
        .iter()
        .map(|c| {
            (
                c.name().to_owned(),
                c.physical_type(),
                c.logical_type_ref().cloned(),
                c.self_type().get_basic_info().repetition(),
            )
        })
        .collect();
    assert_eq!(
        columns[0],
        (
            "amount".to_owned(),
            PhysicalType::DOUBLE,
            None,
            Repetition::OPTIONAL
        )
    );
    assert_eq!(
        columns[1],
        (
            "geo.country".to_owned(),
            PhysicalType::BYTE_ARRAY,
            Some(LogicalType::String),
            Repetition::OPTIONAL
        )
    );
    assert_eq!(columns[4].2, Some(LogicalType::Json));
    assert_eq!(columns[5].1, PhysicalType::INT64);
    assert!(
        matches!(columns[5].2, Some(LogicalType::Timestamp(ref t)) if t.is_adjusted_to_u_t_c),
        "{:?}",
        columns[5]
    );
    assert_eq!(
        columns[6],
        (
            "user".to_owned(),
            PhysicalType::BYTE_ARRAY,
            Some(LogicalType::String),
            Repetition::REQUIRED
        )
    );
    for column in metadata.row_group(0).columns() {
        assert_eq!(column.compression(), Codec::SNAPPY);
    }
    let expected = vec![
        vec![
            ("amount", Field::Double(12.5)),
            ("geo.country", Field::Str("fr".into())),
            ("n", Field::Long(7)),
            ("ok", Field::Bool(true)),
            ("tags", Field::Str(r#"["a","b"]"#.into())),
            ("ts", Field::TimestampMillis(1_700_000_000_000)),
            ("user", Field::Str("ann".into())),
        ],
        vec![
            ("amount", Field::Double(3.0)),
            ("geo.country", Field::Null),
            ("n", Field::Long(-1)),
            ("ok", Field::Bool(false)),
            ("tags", Field::Str(r#"{"k":1}"#.into())),
            ("ts", Field::TimestampMillis(1_700_000_001_000)),
            ("user", Field::Str("bob".into())),
        ],
        vec![
            ("amount", Field::Null),
            ("geo.country", Field::Null),
            ("n", Field::Null),
            ("ok", Field::Null),
            ("tags", Field::Null),
            ("ts", Field::Null),
            ("user", Field::Str("cy".into())),
        ],
    ];
    let expected: Vec<Vec<(String, Field)>> = expected
        .into_iter()
        .map(|row| row.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn every_codec_writes_a_readable_file_and_output_is_deterministic() {
    let schema = schema();
    let rows = rows(&schema);
    for (compression, level, codec) in [
        (Compression::Snappy, None, "SNAPPY"),
        (Compression::Zstd, Some(3), "ZSTD"),
        (Compression::Gzip, None, "GZIP"),
        (Compression::None, None, "UNCOMPRESSED"),
    ] {
        let writer = FileWriter::new(schema.clone(), compression, level).expect("writer");
        let file = writer.file(&rows).expect("file");
        assert_eq!(
            file,
            writer.file(&rows).expect("again"),
            "{codec}: same rows, same bytes"
        );
        assert_eq!(&file[..4], b"PAR1", "{codec}");
        let (reader, got) = read_back(file);
        assert_eq!(got.len(), 3, "{codec}");
        let used = reader.metadata().row_group(0).column(0).compression();
        assert!(format!("{used:?}").starts_with(codec), "{codec}: {used:?}");
    }
}

#[test]
fn an_empty_file_and_a_cell_of_the_wrong_kind() {
    let schema = schema();
    let writer = FileWriter::new(schema.clone(), Compression::None, None).expect("writer");
    let (reader, got) = read_back(writer.file(&[]).expect("empty file"));
    assert_eq!(
        (reader.metadata().file_metadata().num_rows(), got.len()),
        (0, 0)
    );
    let mut bad = rows(&schema);
    bad[0][0] = Cell::Text("not a double".into());
    let e = writer
        .file(&bad)
        .expect_err("a text cell in a double column");
    assert!(e.to_string().contains("column `amount`"), "{e}");
    let mut null_user = rows(&schema);
    null_user[1][6] = Cell::Null;
    assert!(
        writer.file(&null_user).is_err(),
        "null in a required column"
    );
}

/// A record of the batch tests' shard (sequence number 1000 + `i`).
fn record(i: u64, payload: &str) -> Record {
    crate::batch::tests::record(i, payload, 0)
}

#[test]
fn the_planner_writes_fitting_records_and_rejects_misfits_with_field_and_reason() {
    use crate::batch::Planner;
    use crate::template::{KeyTemplate, TimeZoneSpec, Zone};
    let planner = Planner {
        template: KeyTemplate::parse("{field.geo.country}/{shard_id}-{first_seq}-{first_subseq}")
            .expect("template"),
        zone: Zone::resolve(&TimeZoneSpec::Utc).expect("utc"),
        extension: ".parquet".into(),
        encoder: Encoder::parquet(
            FileWriter::new(schema(), Compression::Zstd, None).expect("writer"),
        ),
        pipeline: "p".into(),
        max_partitions: 10,
        content_type: super::CONTENT_TYPE,
        content_encoding: None,
    };
    let batch = [
        record(0, r#"{"user": "ann", "n": 1, "geo": {"country": "fr"}}"#),
        record(1, r#"{"user": "bob", "n": "2", "geo": {"country": "fr"}}"#),
        record(2, r#"{"n": 3, "geo": {"country": "de"}}"#),
        record(3, "not json"),
        record(4, r#"[1, 2]"#),
        record(5, r#"{"user": "dee", "n": 4, "geo": {"country": "de"}}"#),
        record(6, r#"{"user": "eve", "n": 5, "geo": {"country": "fr"}}"#),
    ];
    let plan = planner.plan(&batch).expect("plan");
    let reasons: Vec<Option<&str>> = plan.rejected.iter().map(Option::as_deref).collect();
    assert_eq!(reasons[0], None);
    assert_eq!(
        reasons[1],
        Some("field `n` (int64): expected an integer, found a string \"2\"")
    );
    assert_eq!(
        reasons[2],
        Some("field `user` (string): required field is missing")
    );
    assert!(
        reasons[3].is_some_and(|r| r
            .starts_with("record is not valid JSON (encoding = \"parquet\" needs JSON objects)")),
        "{reasons:?}"
    );
    assert!(
        reasons[4].is_some_and(|r| r.contains("not a JSON object")),
        "{reasons:?}"
    );
    assert_eq!(&reasons[5..], [None, None]);
    let keys: Vec<&str> = plan.objects.iter().map(|(o, _)| o.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "fr/shardId-000000000002-1000-0.parquet",
            "de/shardId-000000000002-1005-0.parquet"
        ]
    );
    assert_eq!(plan.objects[0].1, [0, 6]);
    let (_, fr) = read_back(plan.objects[0].0.body.clone());
    let users: Vec<&Field> = fr.iter().map(|row| &row[6].1).collect();
    assert_eq!(
        users,
        [&Field::Str("ann".into()), &Field::Str("eve".into())]
    );
    assert_eq!(
        plan.objects[0].0.content_type,
        "application/vnd.apache.parquet"
    );
    assert_eq!(plan.objects[0].0.content_encoding, None);
}

#[test]
fn records_parsed_by_a_transform_convert_without_a_second_parse() {
    let encoder =
        Encoder::parquet(FileWriter::new(schema(), Compression::Snappy, None).expect("writer"));
    let mut record = record(0, "");
    record.payload = shardline_plugin_sdk::Payload::Json(
        json!({"user": "ann", "n": 3, "geo": {"country": "fr"}}),
    );
    let row = encoder.row(&record, true).expect("fits");
    assert!(row.bytes.is_empty());
    assert_eq!(
        row.cells[2],
        Cell::Int64(3),
        "columns in name order: amount, geo.country, n, ..."
    );
    assert_eq!(row.cells[1], Cell::Text("fr".into()));
    assert_eq!(
        row.value.as_ref().and_then(|v| v["user"].as_str()),
        Some("ann")
    );
    record.payload = shardline_plugin_sdk::Payload::Json(json!({"user": 7}));
    assert_eq!(
        encoder.row(&record, false).expect_err("misfit"),
        "field `user` (string): expected a string, found a number 7"
    );
}
