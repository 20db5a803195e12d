//! PostgreSQL sessions: connecting (one session per statement, like the
//! Data API), the Redshift look-alikes every database gets
//! (`stl_load_errors`, `getdate()`), and result sets as API fields.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use crate::api::{ColumnMetadata, Field};
use crate::store::ResultSet;

/// Opens sessions to the PostgreSQL server behind the emulator.
#[derive(Debug)]
pub struct Connector {
    /// libpq-style settings without `dbname`, e.g. `host=127.0.0.1 port=5432 user=postgres`.
    base: String,
    bootstrapped: Mutex<HashSet<String>>,
}

/// What every database gets on first use: Redshift's load-error table and
/// date function.
const BOOTSTRAP: &str = "
CREATE TABLE IF NOT EXISTS public.stl_load_errors (
    userid integer, slice integer, tbl integer, starttime timestamp, session integer, query integer,
    filename varchar(256), line_number bigint, colname varchar(127), type varchar(10), col_length varchar(10),
    position integer, raw_line varchar(1024), raw_field_value varchar(1024), err_code integer, err_reason varchar(100));
CREATE OR REPLACE FUNCTION public.getdate() RETURNS timestamp LANGUAGE sql STABLE AS $$ SELECT now()::timestamp(0) $$;
";

impl Connector {
    /// A connector for `base` (libpq key=value settings without `dbname`).
    pub fn new(base: impl Into<String>) -> Self {
        Connector { base: base.into(), bootstrapped: Mutex::new(HashSet::new()) }
    }

    /// A new session on `database`.
    ///
    /// # Errors
    /// When PostgreSQL cannot be reached (or the database is missing).
    pub async fn connect(&self, database: &str) -> Result<Client, tokio_postgres::Error> {
        let settings = format!("{} dbname='{}' connect_timeout=5", self.base, database.replace('\\', "\\\\").replace('\'', "\\'"));
        let (client, connection) = tokio_postgres::connect(&settings, NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "postgres session ended with an error");
            }
        });
        let first = self.bootstrapped.lock().map(|set| !set.contains(database)).unwrap_or(true);
        if first {
            // Concurrent first sessions may race on CREATE: a failure is
            // retried once, then reported by the statements that need it.
            for attempt in 0..2 {
                match client.batch_execute(BOOTSTRAP).await {
                    Ok(()) => break,
                    Err(e) if attempt == 0 => {
                        tracing::debug!(error = %e, "bootstrap raced, retrying");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => tracing::warn!(error = %e, database, "could not create stl_load_errors/getdate()"),
                }
            }
            if let Ok(mut set) = self.bootstrapped.lock() {
                set.insert(database.to_owned());
            }
        }
        Ok(client)
    }
}

/// Redshift-like error text for a PostgreSQL error: `ERROR: message`.
pub fn error_text(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut text = format!("ERROR: {}", db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!("\n  Detail: {detail}"));
            }
            text
        }
        None => format!("ERROR: {error}"),
    }
}

/// Whether the error means the session or server is gone (a connection
/// problem rather than a problem with the SQL).
pub fn is_connection_error(error: &tokio_postgres::Error) -> bool {
    error.as_db_error().is_none() || error.is_closed()
}

/// What a statement gave: a result set (when it returns rows) and the row
/// count (returned or affected).
#[derive(Debug, Default)]
pub struct Outcome {
    /// Rows, when the statement has a result set.
    pub result: Option<ResultSet>,
    /// Rows returned or affected.
    pub rows: i64,
}

/// Runs one SQL statement (simple protocol) and converts its rows, typed by
/// a prepare of the same statement.
///
/// # Errors
/// The database's error.
pub async fn run_sql(client: &Client, sql: &str) -> Result<Outcome, tokio_postgres::Error> {
    let messages = client.simple_query(sql).await?;
    let mut names: Option<Vec<String>> = None;
    let mut rows: Vec<Vec<Option<String>>> = Vec::new();
    let mut affected = 0i64;
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(columns) => {
                names = Some(columns.iter().map(|c| c.name().to_owned()).collect());
                rows.clear();
            }
            SimpleQueryMessage::Row(row) => {
                if names.is_none() {
                    names = Some(row.columns().iter().map(|c| c.name().to_owned()).collect());
                }
                rows.push((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect());
            }
            SimpleQueryMessage::CommandComplete(n) => affected = n as i64,
            _ => {}
        }
    }
    let Some(names) = names else { return Ok(Outcome { result: None, rows: affected }) };
    let types: Vec<String> = match client.prepare(sql).await {
        Ok(statement) => statement.columns().iter().map(|c| c.type_().name().to_owned()).collect(),
        Err(_) => vec!["varchar".to_owned(); names.len()],
    };
    let columns = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let type_name = types.get(i).cloned().unwrap_or_else(|| "varchar".into());
            ColumnMetadata {
                name: name.clone(),
                label: name.clone(),
                is_signed: matches!(type_name.as_str(), "int2" | "int4" | "int8" | "float4" | "float8" | "numeric"),
                is_case_sensitive: matches!(type_name.as_str(), "varchar" | "text" | "bpchar" | "name"),
                type_name,
                nullable: 1,
                is_currency: false,
                length: 0,
                precision: 0,
                scale: 0,
                schema_name: String::new(),
                table_name: String::new(),
            }
        })
        .collect::<Vec<_>>();
    let fields = rows
        .into_iter()
        .map(|row| row.into_iter().enumerate().map(|(i, v)| field(columns.get(i).map(|c| c.type_name.as_str()).unwrap_or(""), v)).collect())
        .collect::<Vec<Vec<Field>>>();
    let count = fields.len() as i64;
    Ok(Outcome { result: Some(ResultSet { columns, rows: fields }), rows: count })
}

/// A text value of PostgreSQL type `type_name` as the API's field.
pub fn field(type_name: &str, value: Option<String>) -> Field {
    let Some(text) = value else { return Field::IsNull(true) };
    match type_name {
        "bool" => Field::BooleanValue(text == "t" || text == "true"),
        "int2" | "int4" | "int8" | "oid" => text.parse().map(Field::LongValue).unwrap_or(Field::StringValue(text)),
        "float4" | "float8" => text.parse().map(Field::DoubleValue).unwrap_or(Field::StringValue(text)),
        _ => Field::StringValue(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_values_become_typed_fields() {
        assert_eq!(field("int8", Some("42".into())), Field::LongValue(42));
        assert_eq!(field("bool", Some("t".into())), Field::BooleanValue(true));
        assert_eq!(field("float8", Some("1.5".into())), Field::DoubleValue(1.5));
        assert_eq!(field("numeric", Some("1.50".into())), Field::StringValue("1.50".into()));
        assert_eq!(field("varchar", None), Field::IsNull(true));
    }
}
