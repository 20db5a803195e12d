//! The HTTP front: awsJson1_1 requests dispatched on `X-Amz-Target:
//! RedshiftData.<Operation>`, plus the emulator's own `/_emulator/...`
//! control endpoints for tests.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::api::{self, ApiError};
use crate::runner::{Engine, Submission};

const PAGE_ROWS: usize = 1000;

fn reply(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"));
    response
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.is_empty() { &b"{}"[..] } else { body };
    serde_json::from_slice(body).map_err(|e| ApiError::validation(format!("invalid request body: {e}")))
}

fn required(id: Option<String>, what: &str) -> Result<String, ApiError> {
    id.filter(|s| !s.is_empty()).ok_or_else(|| ApiError::validation(format!("{what} must be specified")))
}

fn submitted(statement: &crate::store::Statement) -> Value {
    let mut out = json!({ "Id": statement.id, "CreatedAt": api::epoch_seconds(statement.created_at), "Database": statement.database });
    for (key, value) in [("ClusterIdentifier", &statement.cluster_identifier), ("WorkgroupName", &statement.workgroup_name), ("DbUser", &statement.db_user), ("SecretArn", &statement.secret_arn)] {
        if let Some(v) = value {
            out[key] = Value::from(v.as_str());
        }
    }
    out
}

/// Runs one API operation.
///
/// # Errors
/// The API error to answer with.
pub async fn operation(engine: &Arc<Engine>, name: &str, body: &[u8]) -> Result<Value, ApiError> {
    match name {
        "ExecuteStatement" => {
            let input: api::ExecuteStatementInput = parse(body)?;
            let sql = required(input.sql, "Sql")?;
            let submission = Submission { is_batch: false, sqls: vec![sql], target: input.target, statement_name: input.statement_name, parameters: input.parameters.unwrap_or_default() };
            Ok(submitted(&engine.submit(submission).await?))
        }
        "BatchExecuteStatement" => {
            let input: api::BatchExecuteStatementInput = parse(body)?;
            let sqls = input.sqls.ok_or_else(|| ApiError::validation("Sqls must be specified"))?;
            let submission = Submission { is_batch: true, sqls, target: input.target, statement_name: input.statement_name, parameters: Vec::new() };
            Ok(submitted(&engine.submit(submission).await?))
        }
        "DescribeStatement" => {
            let input: api::IdInput = parse(body)?;
            let (statement, sub) = engine.store.get(&required(input.id, "Id")?)?;
            if sub.is_some() {
                return Err(ApiError::validation("DescribeStatement takes the id of a statement, not of a sub-statement"));
            }
            Ok(statement.describe())
        }
        "GetStatementResult" => {
            let input: api::GetStatementResultInput = parse(body)?;
            let (statement, sub) = engine.store.get(&required(input.id, "Id")?)?;
            let index = match (statement.is_batch, sub) {
                (true, None) => return Err(ApiError::validation("Query does not have result. Please check query status with DescribeStatement.")),
                (_, Some(i)) => i,
                (false, None) => 0,
            };
            let result = statement
                .subs
                .get(index)
                .filter(|s| s.status == crate::store::Status::Finished)
                .and_then(|s| s.result.clone())
                .ok_or_else(|| ApiError::validation("Query does not have result. Please check query status with DescribeStatement."))?;
            let start: usize = match input.next_token {
                Some(t) => t.parse().map_err(|_| ApiError::validation("invalid NextToken"))?,
                None => 0,
            };
            let end = (start + PAGE_ROWS).min(result.rows.len());
            let mut out = json!({
                "Records": result.rows.get(start..end).unwrap_or_default(),
                "ColumnMetadata": result.columns,
                "TotalNumRows": result.rows.len(),
            });
            if end < result.rows.len() {
                out["NextToken"] = Value::from(end.to_string());
            }
            Ok(out)
        }
        "CancelStatement" => {
            let input: api::IdInput = parse(body)?;
            Ok(json!({ "Status": engine.cancel(&required(input.id, "Id")?).await? }))
        }
        "ListStatements" => {
            let input: api::ListStatementsInput = parse(body)?;
            let wanted = input.status.unwrap_or_else(|| "ALL".into());
            let all: Vec<Value> = engine
                .store
                .all()
                .iter()
                .rev()
                .filter(|s| wanted == "ALL" || s.status.as_str() == wanted)
                .filter(|s| match input.statement_name.as_deref() {
                    None => true,
                    Some(n) => s.statement_name.as_deref().is_some_and(|m| m.starts_with(n)),
                })
                .map(|s| s.summary())
                .collect();
            let start: usize = input.next_token.and_then(|t| t.parse().ok()).unwrap_or(0);
            let size = input.max_results.unwrap_or(100).clamp(1, 100);
            let end = (start + size).min(all.len());
            let mut out = json!({ "Statements": all.get(start..end).unwrap_or_default() });
            if end < all.len() {
                out["NextToken"] = Value::from(end.to_string());
            }
            Ok(out)
        }
        other => Err(ApiError::unknown_operation(other)),
    }
}

/// Handles one HTTP request.
///
/// # Errors
/// Never: every failure is an HTTP answer.
pub async fn handle(engine: Arc<Engine>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let target = request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = match request.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(reply(400, &ApiError::validation(format!("could not read the body: {e}")).body())),
    };
    if path == "/_emulator/health" {
        return Ok(reply(200, &json!({ "status": "ok" })));
    }
    if path == "/_emulator/availability" {
        let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (Some(name), Some(available)) = (input["target"].as_str(), input["available"].as_bool()) else {
            return Ok(reply(400, &json!({ "message": "expected {\"target\": name, \"available\": bool}" })));
        };
        engine.set_available(name, available);
        return Ok(reply(200, &json!({ "target": name, "available": available })));
    }
    let Some(operation_name) = target.as_deref().and_then(|t| t.strip_prefix("RedshiftData.")) else {
        return Ok(reply(400, &ApiError::unknown_operation(target.as_deref().unwrap_or("(no X-Amz-Target)")).body()));
    };
    match operation(&engine, operation_name, &body).await {
        Ok(value) => Ok(reply(200, &value)),
        Err(error) => {
            tracing::debug!(operation = operation_name, error = %error, "request refused");
            Ok(reply(error.status, &error.body()))
        }
    }
}
