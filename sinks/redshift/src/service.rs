//! The network calls: staging objects in S3, and running statements
//! through the Redshift Data API (submit, poll DescribeStatement with a
//! deadline, read results), each failure classified by [`RedshiftError`].

use std::time::{Duration, Instant};

use aws_sdk_redshiftdata::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_redshiftdata::types::{Field, StatusString};
use aws_sdk_redshiftdata::Client as DataClient;
use aws_sdk_s3::Client as S3Client;
use aws_sdk_redshiftdata::config::http::HttpResponse;

use crate::config::Config;

/// A failure of a network call, with what it was about.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedshiftError {
    /// An S3 call on the staging bucket failed.
    #[error("staging {url}: {message}")]
    Staging {
        /// The object.
        url: String,
        /// What S3 said.
        message: String,
        /// Whether retrying can help.
        retriable: bool,
    },
    /// A Data API call failed.
    #[error("redshift data api {operation}: {message}")]
    Api {
        /// The operation.
        operation: &'static str,
        /// The error code and message.
        message: String,
        /// Whether retrying can help.
        retriable: bool,
    },
    /// The statement ran and failed or was aborted.
    #[error("statement {id} {status}: {error}")]
    Statement {
        /// Statement id.
        id: String,
        /// FAILED or ABORTED.
        status: String,
        /// Redshift's error text.
        error: String,
        /// Query id of the first failed sub-statement.
        query_id: Option<i64>,
    },
    /// The statement did not end in time (it was cancelled).
    #[error("statement {id} did not finish within {timeout:?}")]
    Timeout {
        /// Statement id.
        id: String,
        /// The configured `statement_timeout`.
        timeout: Duration,
    },
}

impl RedshiftError {
    /// Whether retrying can help (the cluster may come back).
    pub fn is_retriable(&self) -> bool {
        match self {
            RedshiftError::Staging { retriable, .. } | RedshiftError::Api { retriable, .. } => *retriable,
            RedshiftError::Statement { .. } | RedshiftError::Timeout { .. } => true,
        }
    }

    /// A COPY that failed for its data (a bad row), as opposed to the
    /// cluster, the table or the network.
    pub fn is_load_error(&self) -> bool {
        matches!(self, RedshiftError::Statement { error, .. } if error.contains("stl_load_errors") || error.contains("Load into table"))
    }
}

/// Redshift Data API codes that clear by themselves (too many statements
/// running, a query or connection that timed out); the generic ones are
/// the shared classifier's.
const DATA_API_RETRIABLE_CODES: &[&str] = &["ActiveStatementsExceededException", "QueryTimeoutException", "DatabaseConnectionException"];

fn api_error<E: ProvideErrorMetadata + std::error::Error + 'static>(operation: &'static str, e: SdkError<E, HttpResponse>) -> RedshiftError {
    let code = e.code().unwrap_or_default().to_owned();
    let retriable = DATA_API_RETRIABLE_CODES.contains(&code.as_str()) || shardline_aws::classify(&e).is_retriable();
    let message = match e.message() {
        Some(m) if !code.is_empty() => format!("{code}: {m}"),
        _ => DisplayErrorContext(&e).to_string(),
    };
    RedshiftError::Api { operation, message, retriable }
}

/// Runs SQL through the Data API on the configured cluster or workgroup.
#[derive(Debug, Clone)]
pub struct DataApi {
    client: DataClient,
    config: Config,
}

/// A finished statement: its id and the query id of each sub-statement.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Statement id.
    pub id: String,
    /// Whether it has a result set.
    pub has_result_set: bool,
}

macro_rules! target {
    ($builder:expr, $config:expr) => {
        $builder
            .set_cluster_identifier($config.cluster_identifier.clone())
            .set_workgroup_name($config.workgroup_name.clone())
            .set_db_user($config.db_user.clone())
            .set_secret_arn($config.secret_arn.clone())
            .database($config.database.clone())
    };
}

impl DataApi {
    /// A runner for `config` with `client`.
    pub fn new(client: DataClient, config: Config) -> Self {
        DataApi { client, config }
    }

    /// Runs one statement and waits for it.
    ///
    /// # Errors
    /// See [`RedshiftError`].
    pub async fn execute(&self, sql: &str) -> Result<Finished, RedshiftError> {
        let out = target!(self.client.execute_statement().sql(sql), self.config).send().await.map_err(|e| api_error("ExecuteStatement", e))?;
        let id = out.id().unwrap_or_default().to_owned();
        self.wait(&id).await
    }

    /// Runs statements as one transaction and waits for it.
    ///
    /// # Errors
    /// See [`RedshiftError`].
    pub async fn batch(&self, sqls: Vec<String>) -> Result<Finished, RedshiftError> {
        let out = target!(self.client.batch_execute_statement().set_sqls(Some(sqls)), self.config)
            .send()
            .await
            .map_err(|e| api_error("BatchExecuteStatement", e))?;
        let id = out.id().unwrap_or_default().to_owned();
        self.wait(&id).await
    }

    /// Polls DescribeStatement (20ms, doubling up to `poll_interval`) until
    /// the statement ends or `statement_timeout` passes (then cancels it).
    async fn wait(&self, id: &str) -> Result<Finished, RedshiftError> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(self.config.poll_interval.get());
            let out = self.client.describe_statement().id(id).send().await.map_err(|e| api_error("DescribeStatement", e))?;
            match out.status() {
                Some(StatusString::Finished) => return Ok(Finished { id: id.to_owned(), has_result_set: out.has_result_set().unwrap_or(false) }),
                Some(status @ (StatusString::Failed | StatusString::Aborted)) => {
                    let query_id = out
                        .sub_statements()
                        .iter()
                        .find(|s| s.status().is_some_and(|st| st.as_str() == "FAILED"))
                        .map(|s| s.redshift_query_id())
                        .or(Some(out.redshift_query_id()));
                    return Err(RedshiftError::Statement {
                        id: id.to_owned(),
                        status: status.as_str().to_owned(),
                        error: out.error().unwrap_or("(no error text)").to_owned(),
                        query_id,
                    });
                }
                _ => {}
            }
            if started.elapsed() >= self.config.statement_timeout.get() {
                if let Err(e) = self.client.cancel_statement().id(id).send().await {
                    tracing::warn!(statement = id, error = %DisplayErrorContext(&e), "could not cancel a statement past its timeout");
                }
                return Err(RedshiftError::Timeout { id: id.to_owned(), timeout: self.config.statement_timeout.get() });
            }
        }
    }

    /// The rows of a finished statement as text (NULL as `None`).
    ///
    /// # Errors
    /// See [`RedshiftError`].
    pub async fn rows(&self, finished: &Finished) -> Result<Vec<Vec<Option<String>>>, RedshiftError> {
        if !finished.has_result_set {
            return Ok(Vec::new());
        }
        let mut rows = Vec::new();
        let mut token = None;
        loop {
            let out = self.client.get_statement_result().id(&finished.id).set_next_token(token).send().await.map_err(|e| api_error("GetStatementResult", e))?;
            for record in out.records() {
                rows.push(record.iter().map(field_text).collect());
            }
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                return Ok(rows);
            }
        }
    }
}

fn field_text(field: &Field) -> Option<String> {
    match field {
        Field::IsNull(true) => None,
        Field::StringValue(s) => Some(s.clone()),
        Field::LongValue(n) => Some(n.to_string()),
        Field::DoubleValue(d) => Some(d.to_string()),
        Field::BooleanValue(b) => Some(b.to_string()),
        _ => Some(String::new()),
    }
}

/// Puts `body` at `key` in the staging bucket.
///
/// # Errors
/// [`RedshiftError::Staging`]: access and missing-bucket errors are
/// permanent, the rest retriable.
pub async fn put_object(s3: &S3Client, bucket: &str, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), RedshiftError> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .content_type(content_type)
        .body(body.into())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            let retriable = shardline_aws::classify(&e).is_retriable();
            RedshiftError::Staging { url: crate::staging::url(bucket, key), message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(), retriable }
        })
}

#[cfg(test)]
mod tests {
    use aws_sdk_redshiftdata::error::ErrorMetadata;
    use aws_sdk_redshiftdata::operation::execute_statement::ExecuteStatementError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    fn answered(code: &str, status: u16) -> RedshiftError {
        let err = ExecuteStatementError::generic(ErrorMetadata::builder().code(code).message("m").build());
        let raw = HttpResponse::new(StatusCode::try_from(status).expect("status"), SdkBody::empty());
        api_error("ExecuteStatement", SdkError::service_error(err, raw))
    }

    #[test]
    fn data_api_errors_follow_the_shared_classifier_plus_its_own_codes() {
        for (code, status) in [
            ("ActiveStatementsExceededException", 400),
            ("QueryTimeoutException", 400),
            ("DatabaseConnectionException", 500),
            ("InternalServerException", 500),
            ("ThrottlingException", 400),
            ("ExpiredTokenException", 400),
        ] {
            assert!(answered(code, status).is_retriable(), "{code}");
        }
        for code in ["ValidationException", "ResourceNotFoundException", "AccessDeniedException", "UnrecognizedClientException"] {
            assert!(!answered(code, 400).is_retriable(), "{code}");
        }
        let reset: SdkError<ExecuteStatementError, HttpResponse> = SdkError::dispatch_failure(ConnectorError::io("reset".into()));
        assert!(api_error("ExecuteStatement", reset).is_retriable());
    }
}
