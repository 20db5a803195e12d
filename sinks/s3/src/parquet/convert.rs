//! One JSON record to one row of typed cells, strictly: a value that does
//! not have its column's type is a [`Misfit`] (the record is dead-lettered
//! with the field and the reason), never coerced.
//!
//! | type           | accepts                                          |
//! |----------------|--------------------------------------------------|
//! | `string`       | a JSON string                                    |
//! | `int64`        | a JSON integer in the i64 range (not `1.5`, `"5"`, `1e3`) |
//! | `double`       | any JSON number                                  |
//! | `bool`         | `true` or `false`                                |
//! | `timestamp_ms` | an integer (ms since the epoch) or an RFC 3339 string |
//! | `json`         | anything, written as compact JSON text           |
//!
//! A missing field, or `null`, is a null cell, unless the column is
//! `required`.

use serde_json::Value;
use shardline_plugin_sdk::json_kind as kind;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::schema::{Column, ColumnType, Schema};
use crate::template::lookup;

/// One typed value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Missing or `null` (nullable columns only).
    Null,
    /// `bool`.
    Bool(bool),
    /// `int64` and `timestamp_ms` (milliseconds since the epoch).
    Int64(i64),
    /// `double`.
    Double(f64),
    /// `string`, and `json` as JSON text.
    Text(String),
}

/// Why a record does not fit the schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Misfit {
    /// The record is not a JSON object.
    #[error(
        "record is not a JSON object (encoding = \"parquet\" needs JSON objects), it is {found}"
    )]
    NotAnObject {
        /// What it is (`an array`, `a string`...).
        found: &'static str,
    },
    /// A field does not fit its column.
    #[error("field `{field}` ({ty}): {reason}")]
    Field {
        /// The column's dotted path.
        field: String,
        /// The column's type name.
        ty: &'static str,
        /// What is wrong, e.g. `expected an integer, found a string "5"`.
        reason: String,
    },
}

/// The cells of `record`, one per column of `schema`, in column order.
///
/// # Errors
/// The first [`Misfit`]: not an object, a required field missing or
/// null, a value of the wrong type.
pub fn convert(schema: &Schema, record: &Value) -> Result<Vec<Cell>, Misfit> {
    if !record.is_object() {
        return Err(Misfit::NotAnObject {
            found: kind(record),
        });
    }
    schema
        .columns
        .iter()
        .map(|column| cell(column, lookup(record, &column.path)))
        .collect()
}

fn cell(column: &Column, value: Option<&Value>) -> Result<Cell, Misfit> {
    let misfit = |reason: String| Misfit::Field {
        field: column.name.clone(),
        ty: column.ty.name(),
        reason,
    };
    let value = match value {
        None | Some(Value::Null) if column.required => {
            let what = if value.is_none() { "missing" } else { "null" };
            return Err(misfit(format!("required field is {what}")));
        }
        None | Some(Value::Null) => return Ok(Cell::Null),
        Some(value) => value,
    };
    let wrong = |expected: &str| misfit(format!("expected {expected}, found {}", shown(value)));
    Ok(match column.ty {
        ColumnType::String => match value {
            Value::String(s) => Cell::Text(s.clone()),
            _ => return Err(wrong("a string")),
        },
        ColumnType::Json => Cell::Text(value.to_string()),
        ColumnType::Bool => match value {
            Value::Bool(b) => Cell::Bool(*b),
            _ => return Err(wrong("true or false")),
        },
        ColumnType::Double => match value.as_f64() {
            Some(f) if value.is_number() => Cell::Double(f),
            _ => return Err(wrong("a number")),
        },
        ColumnType::Int64 => Cell::Int64(integer(value).map_err(&wrong)?),
        ColumnType::TimestampMs => match value {
            Value::String(text) => Cell::Int64(rfc3339_millis(text).map_err(&misfit)?),
            _ => Cell::Int64(integer(value).map_err(|_| {
                wrong("milliseconds since the epoch (an integer) or an RFC 3339 string")
            })?),
        },
    })
}

/// A JSON integer within i64; otherwise what was expected instead.
fn integer(value: &Value) -> Result<i64, &'static str> {
    match value {
        Value::Number(n) if n.is_i64() => n.as_i64().ok_or("an integer"),
        Value::Number(n) if n.is_u64() => Err("an integer within the int64 range"),
        _ => Err("an integer"),
    }
}

/// Milliseconds since the epoch of an RFC 3339 time (sub-millisecond
/// digits are truncated towards the past).
fn rfc3339_millis(text: &str) -> Result<i64, String> {
    let time = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        format!(
            "`{}` is not an RFC 3339 time such as 2026-12-07T23:41:00Z: {e}",
            excerpt(text)
        )
    })?;
    i64::try_from(time.unix_timestamp_nanos().div_euclid(1_000_000))
        .map_err(|_| format!("`{}` is out of range", excerpt(text)))
}


/// The kind of a value and a short excerpt of it, for reasons.
fn shown(value: &Value) -> String {
    match value {
        Value::Array(_) | Value::Object(_) => kind(value).to_owned(),
        _ => format!("{} {}", kind(value), excerpt(&value.to_string())),
    }
}

/// At most 40 characters of `text`.
fn excerpt(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}
