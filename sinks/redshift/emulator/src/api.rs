//! The Redshift Data API wire format (awsJson1_1): request and response
//! shapes, and the documented error types.
//!
//! Field names and casing follow the service model the AWS SDKs are
//! generated from, so an SDK client parses every answer: top-level members
//! are `PascalCase`, `Field` and `ColumnMetadata` members `camelCase`,
//! timestamps epoch seconds (numbers).

use serde::{Deserialize, Serialize};

/// An error the API answers with: its `__type`, HTTP status and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ApiError {
    /// The exception name, e.g. `ValidationException`.
    pub kind: &'static str,
    /// HTTP status: 400 for client errors, 500 for server faults.
    pub status: u16,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// `ValidationException` (400).
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError { kind: "ValidationException", status: 400, message: message.into() }
    }

    /// `ResourceNotFoundException` (400).
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError { kind: "ResourceNotFoundException", status: 400, message: message.into() }
    }

    /// `ActiveStatementsExceededException` (400).
    pub fn active_statements_exceeded(message: impl Into<String>) -> Self {
        ApiError { kind: "ActiveStatementsExceededException", status: 400, message: message.into() }
    }

    /// `DatabaseConnectionException` (500).
    pub fn database_connection(message: impl Into<String>) -> Self {
        ApiError { kind: "DatabaseConnectionException", status: 500, message: message.into() }
    }

    /// `ExecuteStatementException` / `BatchExecuteStatementException`
    /// (500): how ExecuteStatement and BatchExecuteStatement report a
    /// database they cannot reach.
    pub fn execute_statement(is_batch: bool, message: impl Into<String>) -> Self {
        let kind = if is_batch { "BatchExecuteStatementException" } else { "ExecuteStatementException" };
        ApiError { kind, status: 500, message: message.into() }
    }

    /// `InternalServerException` (500).
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError { kind: "InternalServerException", status: 500, message: message.into() }
    }

    /// `UnknownOperationException` (400), for targets this server lacks.
    pub fn unknown_operation(target: &str) -> Self {
        ApiError { kind: "UnknownOperationException", status: 400, message: format!("unknown operation {target}") }
    }

    /// The JSON body: `{"__type": ..., "Message": ...}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "__type": self.kind, "Message": self.message, "message": self.message, "StatementId": "" })
    }
}

/// One `Parameters` entry: `:name` in the SQL is replaced by `value`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct SqlParameter {
    /// The name, without the colon.
    pub name: String,
    /// The value (a literal; quoted when substituted).
    pub value: String,
}

/// Where a statement runs (the members ExecuteStatement and
/// BatchExecuteStatement share).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Target {
    /// A provisioned cluster.
    pub cluster_identifier: Option<String>,
    /// A serverless workgroup.
    pub workgroup_name: Option<String>,
    /// The database (a PostgreSQL database of the same name).
    pub database: Option<String>,
    /// The database user (provisioned clusters, temporary credentials).
    pub db_user: Option<String>,
    /// A Secrets Manager secret (not read: any ARN is accepted).
    pub secret_arn: Option<String>,
    /// A session to reuse (not supported: refused).
    pub session_id: Option<String>,
}

/// ExecuteStatement input.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExecuteStatementInput {
    /// The SQL text.
    pub sql: Option<String>,
    /// Where it runs.
    #[serde(flatten)]
    pub target: Target,
    /// Named parameters.
    pub parameters: Option<Vec<SqlParameter>>,
    /// A name for ListStatements.
    pub statement_name: Option<String>,
}

/// BatchExecuteStatement input.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchExecuteStatementInput {
    /// The SQL statements, run in order as one transaction.
    pub sqls: Option<Vec<String>>,
    /// Where they run.
    #[serde(flatten)]
    pub target: Target,
    /// A name for ListStatements.
    pub statement_name: Option<String>,
}

/// DescribeStatement / CancelStatement input.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IdInput {
    /// A statement id (`uuid`, or `uuid:n` for a sub-statement where allowed).
    pub id: Option<String>,
}

/// GetStatementResult input.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetStatementResultInput {
    /// A statement or sub-statement id.
    pub id: Option<String>,
    /// Paging token from a previous answer.
    pub next_token: Option<String>,
}

/// ListStatements input.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStatementsInput {
    /// Only statements with this status (`ALL` for every one).
    pub status: Option<String>,
    /// Only statements whose name starts with this.
    pub statement_name: Option<String>,
    /// Page size (default 100).
    pub max_results: Option<usize>,
    /// Paging token.
    pub next_token: Option<String>,
}

/// A value of a result set (the `Field` union).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Field {
    /// SQL NULL: `{"isNull": true}`.
    IsNull(bool),
    /// Booleans.
    BooleanValue(bool),
    /// Integers.
    LongValue(i64),
    /// Floating point numbers.
    DoubleValue(f64),
    /// Everything else, as text (numeric, dates, strings).
    StringValue(String),
}

/// A column of a result set.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnMetadata {
    /// Column name.
    pub name: String,
    /// Label (the name).
    pub label: String,
    /// Type name, e.g. `int8`, `varchar`.
    pub type_name: String,
    /// 1 when the column may be null (unknown here: 1).
    pub nullable: i32,
    /// Whether numbers are signed.
    pub is_signed: bool,
    /// Whether text compares case-sensitively.
    pub is_case_sensitive: bool,
    /// Always false.
    pub is_currency: bool,
    /// Length (0: unknown).
    pub length: i32,
    /// Precision (0: unknown).
    pub precision: i32,
    /// Scale (0: unknown).
    pub scale: i32,
    /// Schema of the source table ("" when unknown).
    pub schema_name: String,
    /// Source table ("" when unknown).
    pub table_name: String,
}

/// Seconds since the epoch, as the SDKs read `timestamp` members of awsJson.
pub fn epoch_seconds(time: std::time::SystemTime) -> f64 {
    let millis = time.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    millis as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_serialise_as_the_union_members() {
        let row = vec![Field::IsNull(true), Field::LongValue(3), Field::StringValue("a".into()), Field::BooleanValue(false)];
        assert_eq!(
            serde_json::to_value(&row).unwrap_or_default(),
            serde_json::json!([{"isNull": true}, {"longValue": 3}, {"stringValue": "a"}, {"booleanValue": false}])
        );
    }

    #[test]
    fn errors_carry_their_type() {
        let e = ApiError::validation("bad");
        assert_eq!(e.body()["__type"], "ValidationException");
        assert_eq!(e.status, 400);
        assert_eq!(ApiError::database_connection("x").status, 500);
    }

    #[test]
    fn inputs_parse_from_sdk_json() {
        let input: BatchExecuteStatementInput = serde_json::from_str(
            r#"{"Sqls":["select 1"],"ClusterIdentifier":"c","Database":"dev","DbUser":"u"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(input.sqls.as_deref(), Some(&["select 1".to_owned()][..]));
        assert_eq!(input.target.cluster_identifier.as_deref(), Some("c"));
    }
}
