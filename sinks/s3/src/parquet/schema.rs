//! The `[sink.parquet]` table: the declared columns (`schema`, a map of
//! dotted JSON paths to type names) and which of them are `required`,
//! checked without I/O into a [`Schema`], and that schema as a Parquet
//! message type.
//!
//! Columns are written in the order of their names (the pipeline file's
//! tables are read as sorted maps); a column's name is its dotted path,
//! as written (`"geo.country"`), in a flat schema.

use std::collections::BTreeMap;
use std::sync::Arc;

use ::parquet::basic::{LogicalType, Repetition, TimeUnit, Type as PhysicalType};
use ::parquet::errors::ParquetError;
use ::parquet::schema::types::Type;
use serde::Deserialize;

/// `[sink.parquet]` of `type = "s3"` with `encoding = "parquet"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetConfig {
    /// Column (dotted JSON path, e.g. `"geo.country"`) to type name:
    /// `string`, `int64`, `double`, `bool`, `timestamp_ms` or `json`.
    /// Required, at least one column; no default.
    #[serde(default)]
    pub schema: BTreeMap<String, String>,
    /// Columns that every record must have (non-null); the others are
    /// nullable. Default: none (every column nullable).
    #[serde(default)]
    pub required: Vec<String>,
}

/// The type of one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text (`BYTE_ARRAY`, logical `STRING`); JSON strings only.
    String,
    /// 64-bit signed integer (`INT64`); JSON integers only.
    Int64,
    /// 64-bit float (`DOUBLE`); any JSON number.
    Double,
    /// Boolean (`BOOLEAN`); JSON `true`/`false` only.
    Bool,
    /// Milliseconds since the Unix epoch, UTC (`INT64`, logical
    /// `TIMESTAMP(MILLIS, UTC)`); a JSON integer or an RFC 3339 string.
    TimestampMs,
    /// Any JSON value, as its compact JSON text (`BYTE_ARRAY`, logical
    /// `JSON`).
    Json,
}

/// The type names, for messages.
pub const TYPE_NAMES: &str = "string, int64, double, bool, timestamp_ms, json";

impl ColumnType {
    /// Parses a type name.
    ///
    /// # Errors
    /// An unknown name, with the known ones.
    pub fn parse(name: &str) -> Result<ColumnType, String> {
        Ok(match name {
            "string" => ColumnType::String,
            "int64" => ColumnType::Int64,
            "double" => ColumnType::Double,
            "bool" => ColumnType::Bool,
            "timestamp_ms" => ColumnType::TimestampMs,
            "json" => ColumnType::Json,
            other => {
                return Err(format!(
                    "unknown column type `{other}`; the types are {TYPE_NAMES}"
                ))
            }
        })
    }

    /// The name as written in the schema.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Int64 => "int64",
            ColumnType::Double => "double",
            ColumnType::Bool => "bool",
            ColumnType::TimestampMs => "timestamp_ms",
            ColumnType::Json => "json",
        }
    }
}

/// One declared column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The dotted path as written, also the column's name.
    pub name: String,
    /// The path split at `.`.
    pub path: Vec<String>,
    /// Its type.
    pub ty: ColumnType,
    /// Non-nullable: a record without it (or with `null`) is a misfit.
    pub required: bool,
}

/// The checked columns, in name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// The columns.
    pub columns: Vec<Column>,
}

/// The config key path of schema entry `name` as `shardline validate`
/// resolves it: quoted, because column names may contain dots.
pub fn schema_key(name: &str) -> String {
    format!("parquet.schema.{}", quote_key(name))
}

/// `name` as one TOML key: bare when it is made of `A-Za-z0-9_-`, else a
/// basic string.
fn quote_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        name.to_owned()
    } else {
        serde_json::to_string(name).unwrap_or_else(|_| format!("\"{name}\""))
    }
}

impl Schema {
    /// Checks `config`: every problem with its key path (relative to the
    /// sink table, e.g. `parquet.schema."geo.country"`).
    ///
    /// # Errors
    /// Every problem found: no column, an unknown type, a path with an
    /// empty part, `required` naming an undeclared column.
    pub fn from_config(config: &ParquetConfig) -> Result<Schema, Vec<(String, String)>> {
        let mut problems = Vec::new();
        if config.schema.is_empty() {
            problems.push(("parquet.schema".to_owned(), format!("must declare at least one column, e.g. schema = {{ user = \"string\" }} (types: {TYPE_NAMES})")));
        }
        let mut columns = Vec::with_capacity(config.schema.len());
        for (name, type_name) in &config.schema {
            if name.is_empty() || name.split('.').any(str::is_empty) {
                problems.push((
                    schema_key(name),
                    format!("`{name}` is not a field path: use dotted names such as `geo.country`"),
                ));
                continue;
            }
            match ColumnType::parse(type_name) {
                Ok(ty) => columns.push(Column {
                    name: name.clone(),
                    path: name.split('.').map(str::to_owned).collect(),
                    ty,
                    required: config.required.contains(name),
                }),
                Err(message) => problems.push((schema_key(name), message)),
            }
        }
        for (i, name) in config.required.iter().enumerate() {
            if !config.schema.contains_key(name) {
                problems.push((
                    format!("parquet.required[{i}]"),
                    format!("`{name}` is not a column of `schema`"),
                ));
            }
        }
        if problems.is_empty() {
            Ok(Schema { columns })
        } else {
            Err(problems)
        }
    }

    /// The Parquet message type (`schema` root, one primitive column per
    /// declared column).
    ///
    /// # Errors
    /// Only if the Parquet crate refuses a column (an internal error).
    pub fn message_type(&self) -> Result<Arc<Type>, ParquetError> {
        let mut fields = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            let (physical, logical) = match column.ty {
                ColumnType::String => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
                ColumnType::Json => (PhysicalType::BYTE_ARRAY, Some(LogicalType::Json)),
                ColumnType::Int64 => (PhysicalType::INT64, None),
                ColumnType::Double => (PhysicalType::DOUBLE, None),
                ColumnType::Bool => (PhysicalType::BOOLEAN, None),
                ColumnType::TimestampMs => (
                    PhysicalType::INT64,
                    Some(LogicalType::timestamp(true, TimeUnit::MILLIS)),
                ),
            };
            let repetition = if column.required {
                Repetition::REQUIRED
            } else {
                Repetition::OPTIONAL
            };
            let field = Type::primitive_type_builder(&column.name, physical)
                .with_repetition(repetition)
                .with_logical_type(logical)
                .build()?;
            fields.push(Arc::new(field));
        }
        Ok(Arc::new(
            Type::group_type_builder("schema")
                .with_fields(fields)
                .build()?,
        ))
    }
}
