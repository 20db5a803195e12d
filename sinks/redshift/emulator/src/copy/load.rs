//! Running a parsed COPY: target columns from the catalog, rows from the
//! files, inserted in the caller's transaction; a bad row fails the COPY
//! with Redshift's text and a `stl_load_errors` row (written on a separate
//! session, so it survives the rollback).

use aws_sdk_s3::Client as S3Client;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use super::parse::{CopyCommand, Format};
use super::records::{self, InputRow, RowError, Step};
use super::source::{self, SourceFile};
use crate::pg::Connector;

/// A target column.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    /// `format_type`: `character varying(20)`, `bigint`, ...
    sql_type: String,
    /// `pg_type.typname`: `varchar`, `int8`, ...
    type_name: String,
    /// Declared length for `varchar(n)`/`char(n)`.
    max_len: Option<usize>,
}

impl Column {
    fn is_text(&self) -> bool {
        matches!(self.type_name.as_str(), "varchar" | "bpchar" | "text" | "name")
    }
}

/// What stops a COPY: the text DescribeStatement shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CopyFailure(pub String);

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn target_columns(client: &Client, copy: &CopyCommand) -> Result<(Vec<Column>, i64), CopyFailure> {
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), t.typname::text, a.atttypmod, a.attrelid::int8 \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = ($1::text)::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&copy.table],
        )
        .await
        .map_err(|e| CopyFailure(crate::pg::error_text(&e)))?;
    let mut table_oid = 0;
    let all: Vec<Column> = rows
        .iter()
        .map(|row| {
            let type_name: String = row.get(2);
            let typmod: i32 = row.get(3);
            table_oid = row.get(4);
            let max_len = (matches!(type_name.as_str(), "varchar" | "bpchar") && typmod > 4).then(|| (typmod - 4) as usize);
            Column { name: row.get(0), sql_type: row.get(1), type_name, max_len }
        })
        .collect();
    let Some(names) = &copy.columns else { return Ok((all, table_oid)) };
    let mut chosen = Vec::new();
    for name in names {
        let column = all
            .iter()
            .find(|c| &c.name == name)
            .ok_or_else(|| CopyFailure(format!("ERROR: column \"{name}\" of relation \"{}\" does not exist", copy.table)))?;
        chosen.push(column.clone());
    }
    Ok((chosen, table_oid))
}

async fn json_paths(s3: &S3Client, copy: &CopyCommand, columns: usize) -> Result<Option<Vec<Vec<Step>>>, CopyFailure> {
    let Format::JsonPaths(url) = &copy.format else { return Ok(None) };
    let data = source::read_object(s3, url).await.map_err(|e| CopyFailure(format!("ERROR: {e}")))?;
    let file: serde_json::Value = serde_json::from_slice(&data).map_err(|e| CopyFailure(format!("ERROR: Invalid JSONPath file {url}: {e}")))?;
    let paths = file["jsonpaths"].as_array().ok_or_else(|| CopyFailure(format!("ERROR: Invalid JSONPath file {url}: no \"jsonpaths\" array")))?;
    let parsed = paths
        .iter()
        .map(|p| p.as_str().ok_or_else(|| "a path is not a string".to_owned()).and_then(records::parse_path))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CopyFailure(format!("ERROR: {e}")))?;
    if parsed.len() != columns {
        return Err(CopyFailure(format!(
            "ERROR: Number of jsonpaths and the number of columns should match. JSONPath size: {}, Number of columns in table or column list: {columns}",
            parsed.len()
        )));
    }
    Ok(Some(parsed))
}

/// The value inserted for `raw` into `column`, or a load error reason.
fn prepare_value(copy: &CopyCommand, column: &Column, raw: Option<&String>) -> Result<Option<String>, (i32, String)> {
    let Some(value) = raw else { return Ok(None) };
    if column.is_text() {
        if (copy.empty_as_null && value.is_empty()) || (copy.blanks_as_null && value.trim().is_empty()) {
            return Ok(None);
        }
        if let Some(max) = column.max_len {
            if value.len() > max {
                if !copy.truncate_columns {
                    return Err((1204, "String length exceeds DDL length".into()));
                }
                let mut end = max;
                while !value.is_char_boundary(end) {
                    end -= 1;
                }
                return Ok(Some(value[..end].to_owned()));
            }
        }
        return Ok(Some(value.clone()));
    }
    if value.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(value.clone()))
}

/// `$n` cast to the column's type, honouring epoch TIMEFORMATs.
fn value_expression(copy: &CopyCommand, column: &Column, n: usize) -> String {
    let epoch = match copy.time_format.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("epochsecs") => Some(""),
        Some("epochmillisecs") => Some(" / 1000.0"),
        _ => None,
    };
    match (column.type_name.as_str(), epoch) {
        ("timestamp", Some(scale)) => format!("(to_timestamp(${n}::text::float8{scale}) AT TIME ZONE 'UTC')"),
        ("timestamptz", Some(scale)) => format!("to_timestamp(${n}::text::float8{scale})"),
        _ => format!("${n}::text::{}", column.sql_type),
    }
}

fn insert_sql(copy: &CopyCommand, columns: &[Column], rows: usize) -> String {
    let names: Vec<String> = columns.iter().map(|c| quote_ident(&c.name)).collect();
    let mut sql = format!("INSERT INTO {} ({}) VALUES ", copy.table, names.join(", "));
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        let exprs: Vec<String> = columns
            .iter()
            .map(|c| {
                n += 1;
                value_expression(copy, c, n)
            })
            .collect();
        sql.push('(');
        sql.push_str(&exprs.join(", "));
        sql.push(')');
    }
    sql
}

/// Where a bad row is reported.
struct LoadError {
    file: String,
    row: RowError,
    column_type: String,
    position: i32,
}

async fn insert_rows(client: &Client, copy: &CopyCommand, columns: &[Column], rows: &[Vec<Option<String>>]) -> Result<u64, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let sql = insert_sql(copy, columns, rows.len());
    let params: Vec<&(dyn ToSql + Sync)> = rows.iter().flat_map(|r| r.iter().map(|v| v as &(dyn ToSql + Sync))).collect();
    client.execute(sql.as_str(), &params).await
}

/// Finds the value of `row` that the database refuses, on a separate session.
async fn diagnose(connector: &Connector, database: &str, copy: &CopyCommand, columns: &[Column], input: &InputRow, values: &[Option<String>], error: &tokio_postgres::Error) -> (String, String, i32, i32, String) {
    let db_error = error.as_db_error();
    if let Some(column) = db_error.and_then(|e| e.column()) {
        if let Some(i) = columns.iter().position(|c| c.name == column) {
            return (column.to_owned(), columns[i].type_name.clone(), i as i32 + 1, 1213, "Missing data for not-null field".into());
        }
    }
    if let Ok(diag) = connector.connect(database).await {
        for (i, column) in columns.iter().enumerate() {
            let Some(value) = &values[i] else { continue };
            let sql = format!("SELECT {}", value_expression(copy, column, 1));
            if diag.execute(sql.as_str(), &[value]).await.is_err() {
                return (column.name.clone(), column.type_name.clone(), i as i32 + 1, redshift_code(column), redshift_reason(column, value));
            }
        }
    }
    let _ = input;
    (String::new(), String::new(), 0, 1216, crate::pg::error_text(error))
}

fn redshift_code(column: &Column) -> i32 {
    match column.type_name.as_str() {
        "int2" | "int4" | "int8" | "numeric" | "float4" | "float8" => 1207,
        "timestamp" | "timestamptz" => 1206,
        "date" => 1205,
        "bool" => 1210,
        _ => 1216,
    }
}

fn redshift_reason(column: &Column, value: &str) -> String {
    let pos = value.char_indices().find(|(_, c)| !(c.is_ascii_digit() || *c == '-' || *c == '+')).map(|(i, _)| i).unwrap_or(0);
    let kind = match column.type_name.as_str() {
        "int2" | "int4" | "int8" => "Integer",
        "numeric" => "Decimal",
        "float4" | "float8" => "Double",
        "timestamp" | "timestamptz" => return "Invalid timestamp format or value [YYYY-MM-DD HH24:MI:SS]".into(),
        "date" => return "Invalid Date Format - length must be 10 or more".into(),
        "bool" => return format!("Invalid boolean value, Value '{value}'"),
        other => return format!("Invalid value for type {other}"),
    };
    format!("Invalid digit, Value '{}', Pos {pos}, Type: {kind}", value.chars().nth(pos).unwrap_or(' '))
}

async fn record_load_error(connector: &Connector, database: &str, query_id: i64, table_oid: i64, error: &LoadError) {
    let result = async {
        let client = connector.connect(database).await?;
        client
            .execute(
                "INSERT INTO stl_load_errors (userid, slice, tbl, starttime, session, query, filename, line_number, colname, type, col_length, position, raw_line, raw_field_value, err_code, err_reason) \
                 VALUES (100, 0, $1, now()::timestamp, pg_backend_pid(), $2, $3, $4, $5, $6, '0', $7, $8, $9, $10, $11)",
                &[
                    &(table_oid as i32),
                    &(query_id as i32),
                    &error.file,
                    &(error.row.line as i64),
                    &error.row.colname,
                    &error.column_type,
                    &error.position,
                    &error.row.raw_line,
                    &error.row.raw_field_value,
                    &error.row.code,
                    &error.row.reason,
                ],
            )
            .await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record a row in stl_load_errors");
    }
}

/// Runs `copy` inside the caller's open transaction on `client`; returns
/// the number of rows loaded.
///
/// # Errors
/// A [`CopyFailure`] with Redshift-like text; the transaction is then
/// aborted and must be rolled back by the caller.
pub async fn run(client: &Client, s3: &S3Client, connector: &Connector, database: &str, copy: &CopyCommand, query_id: i64) -> Result<u64, CopyFailure> {
    let (columns, table_oid) = target_columns(client, copy).await?;
    let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
    let paths = json_paths(s3, copy, columns.len()).await?;
    let files: Vec<SourceFile> = source::read_files(s3, &copy.from, copy.manifest, copy.gzip).await.map_err(|e| CopyFailure(format!("ERROR: {e}")))?;
    let failed = format!("ERROR: Load into table '{}' failed.  Check 'stl_load_errors' system table for details.", copy.table.trim_matches('"'));
    let chunk_rows = (30_000 / columns.len().max(1)).clamp(1, 500);
    let mut loaded = 0;
    for file in &files {
        let inputs = match records::rows(copy, &file.data, &names, paths.as_deref()) {
            Ok(rows) => rows,
            Err(row) => {
                let error = LoadError { file: file.url.clone(), row, column_type: String::new(), position: 0 };
                record_load_error(connector, database, query_id, table_oid, &error).await;
                return Err(CopyFailure(failed));
            }
        };
        let mut prepared = Vec::with_capacity(inputs.len());
        for input in &inputs {
            let mut values = Vec::with_capacity(columns.len());
            for (i, column) in columns.iter().enumerate() {
                match prepare_value(copy, column, input.values[i].as_ref()) {
                    Ok(v) => values.push(v),
                    Err((code, reason)) => {
                        let row = RowError { line: input.line, raw_line: input.raw_line.clone(), colname: column.name.clone(), raw_field_value: input.values[i].clone().unwrap_or_default(), code, reason };
                        let error = LoadError { file: file.url.clone(), row, column_type: column.type_name.clone(), position: i as i32 + 1 };
                        record_load_error(connector, database, query_id, table_oid, &error).await;
                        return Err(CopyFailure(failed));
                    }
                }
            }
            prepared.push(values);
        }
        for (chunk_index, chunk) in prepared.chunks(chunk_rows).enumerate() {
            client.batch_execute("SAVEPOINT shardline_copy_chunk").await.map_err(|e| CopyFailure(crate::pg::error_text(&e)))?;
            match insert_rows(client, copy, &columns, chunk).await {
                Ok(n) => loaded += n,
                Err(_) => {
                    client.batch_execute("ROLLBACK TO SAVEPOINT shardline_copy_chunk").await.map_err(|e| CopyFailure(crate::pg::error_text(&e)))?;
                    for (i, values) in chunk.iter().enumerate() {
                        if let Err(e) = insert_rows(client, copy, &columns, std::slice::from_ref(values)).await {
                            let input = &inputs[chunk_index * chunk_rows + i];
                            let (colname, column_type, position, code, reason) = diagnose(connector, database, copy, &columns, input, values, &e).await;
                            let raw_field_value = columns.iter().position(|c| c.name == colname).and_then(|p| values[p].clone()).unwrap_or_default();
                            let row = RowError { line: input.line, raw_line: input.raw_line.clone(), colname, raw_field_value, code, reason };
                            let error = LoadError { file: file.url.clone(), row, column_type, position };
                            record_load_error(connector, database, query_id, table_oid, &error).await;
                            return Err(CopyFailure(failed));
                        }
                    }
                    return Err(CopyFailure("ERROR: a chunk failed but no row of it did".into()));
                }
            }
        }
    }
    tracing::info!(table = %copy.table, rows = loaded, files = files.len(), "copy loaded");
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::parse::parse;

    fn column(name: &str, sql_type: &str, type_name: &str, max_len: Option<usize>) -> Column {
        Column { name: name.into(), sql_type: sql_type.into(), type_name: type_name.into(), max_len }
    }

    #[test]
    fn inserts_cast_text_parameters_to_column_types() {
        let copy = parse("copy s.t from 's3://b/m' iam_role default timeformat 'epochmillisecs'").unwrap_or_else(|e| panic!("{e}"));
        let cols = [column("id", "bigint", "int8", None), column("at", "timestamp without time zone", "timestamp", None)];
        assert_eq!(
            insert_sql(&copy, &cols, 2),
            "INSERT INTO s.t (\"id\", \"at\") VALUES ($1::text::bigint, (to_timestamp($2::text::float8 / 1000.0) AT TIME ZONE 'UTC')), ($3::text::bigint, (to_timestamp($4::text::float8 / 1000.0) AT TIME ZONE 'UTC'))"
        );
    }

    #[test]
    fn values_follow_redshift_rules() {
        let copy = parse("copy t from 's3://b/m' iam_role default").unwrap_or_else(|e| panic!("{e}"));
        let name = column("name", "character varying(3)", "varchar", Some(3));
        assert_eq!(prepare_value(&copy, &name, Some(&"abcd".to_owned())), Err((1204, "String length exceeds DDL length".into())));
        assert_eq!(prepare_value(&copy, &name, Some(&String::new())), Ok(Some(String::new())));
        let id = column("id", "integer", "int4", None);
        assert_eq!(prepare_value(&copy, &id, Some(&String::new())), Ok(None));
        assert_eq!(redshift_reason(&id, "12x"), "Invalid digit, Value 'x', Pos 2, Type: Integer");
        let copy = parse("copy t from 's3://b/m' iam_role default truncatecolumns").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(prepare_value(&copy, &name, Some(&"abcd".to_owned())), Ok(Some("abc".into())));
    }
}
