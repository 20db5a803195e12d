//! Accepting statements (the checks the real service makes before it
//! answers) and running them in the background on PostgreSQL: a batch as
//! one transaction, COPY performed by [`crate::copy`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_postgres::{CancelToken, Client, NoTls};

use crate::api::{ApiError, SqlParameter, Target};
use crate::copy;
use crate::pg::{self, Connector};
use crate::store::{NewStatement, Statement, Status, Store};

/// The most statements a BatchExecuteStatement may hold (the service's limit).
pub const MAX_BATCH_STATEMENTS: usize = 40;

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// libpq settings without `dbname` (`host=... port=... user=...`).
    pub postgres: String,
    /// Statements running at once before `ActiveStatementsExceededException`.
    pub max_active_statements: usize,
    /// A pause before each statement starts (to observe SUBMITTED/PICKED).
    pub statement_delay: Duration,
}

/// The statement store plus what runs statements.
pub struct Engine {
    /// Every statement.
    pub store: Store,
    connector: Connector,
    s3: aws_sdk_s3::Client,
    config: EngineConfig,
    unavailable: Mutex<HashSet<String>>,
    running: Mutex<HashMap<String, (CancelToken, bool)>>,
}

/// What a request asks to run.
pub struct Submission {
    /// BatchExecuteStatement?
    pub is_batch: bool,
    /// The statements.
    pub sqls: Vec<String>,
    /// Where.
    pub target: Target,
    /// `StatementName`.
    pub statement_name: Option<String>,
    /// `Parameters` (ExecuteStatement only).
    pub parameters: Vec<SqlParameter>,
}

fn validate_target(target: &Target) -> Result<String, ApiError> {
    match (&target.cluster_identifier, &target.workgroup_name) {
        (Some(_), Some(_)) => return Err(ApiError::validation("ClusterIdentifier and WorkgroupName cannot both be specified")),
        (None, None) => return Err(ApiError::validation("Either ClusterIdentifier or WorkgroupName must be specified")),
        (Some(_), None) if target.db_user.is_none() && target.secret_arn.is_none() => {
            return Err(ApiError::validation("Either DbUser or SecretArn must be specified with ClusterIdentifier"))
        }
        _ => {}
    }
    if target.session_id.is_some() {
        return Err(ApiError::validation("SessionId is not supported by this emulator"));
    }
    match &target.database {
        Some(db) if !db.is_empty() => Ok(db.clone()),
        _ => Err(ApiError::validation("Database must be specified")),
    }
}

/// `sql` with `:name` placeholders replaced by quoted literals.
///
/// # Errors
/// `ValidationException` for a placeholder without a value.
pub fn substitute(sql: &str, parameters: &[SqlParameter]) -> Result<String, ApiError> {
    if parameters.is_empty() {
        return Ok(sql.to_owned());
    }
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        let starts_name = c == ':' && chars.get(i + 1).is_some_and(|n| n.is_ascii_alphabetic() || *n == '_') && (i == 0 || chars[i - 1] != ':');
        if starts_name {
            let end = (i + 1..chars.len()).find(|&j| !(chars[j].is_ascii_alphanumeric() || chars[j] == '_')).unwrap_or(chars.len());
            let name: String = chars[i + 1..end].iter().collect();
            let value = parameters.iter().find(|p| p.name == name).ok_or_else(|| ApiError::validation(format!("Parameter {name} is not specified")))?;
            out.push('\'');
            out.push_str(&value.value.replace('\'', "''"));
            out.push('\'');
            i = end;
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
        }
        out.push(c);
        i += 1;
    }
    Ok(out)
}

impl Engine {
    /// An engine reading S3 through `s3`.
    pub fn new(config: EngineConfig, s3: aws_sdk_s3::Client) -> Self {
        Engine {
            store: Store::default(),
            connector: Connector::new(config.postgres.clone()),
            s3,
            config,
            unavailable: Mutex::new(HashSet::new()),
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Test hook: makes a cluster or workgroup unavailable (statements on it
    /// fail with `DatabaseConnectionException`) or available again.
    pub fn set_available(&self, target: &str, available: bool) {
        if let Ok(mut set) = self.unavailable.lock() {
            if available {
                set.remove(target);
            } else {
                set.insert(target.to_owned());
            }
        }
    }

    /// Checks a request, records it as SUBMITTED and starts it.
    ///
    /// # Errors
    /// The API error the service answers with.
    pub async fn submit(self: &Arc<Self>, submission: Submission) -> Result<Statement, ApiError> {
        let database = validate_target(&submission.target)?;
        if submission.sqls.is_empty() || submission.sqls.iter().any(|s| s.trim().is_empty()) {
            return Err(ApiError::validation(if submission.is_batch { "Sqls must hold at least one non-empty statement" } else { "Sql must not be empty" }));
        }
        if submission.sqls.len() > MAX_BATCH_STATEMENTS {
            return Err(ApiError::validation(format!("Sqls may hold at most {MAX_BATCH_STATEMENTS} statements")));
        }
        let sqls = submission.sqls.iter().map(|s| substitute(s, &submission.parameters)).collect::<Result<Vec<_>, _>>()?;
        if self.store.active() >= self.config.max_active_statements {
            return Err(ApiError::active_statements_exceeded(format!("Active statements exceeded the allowed quota ({}).", self.config.max_active_statements)));
        }
        let name = submission.target.cluster_identifier.clone().or_else(|| submission.target.workgroup_name.clone()).unwrap_or_default();
        if self.unavailable.lock().map(|s| s.contains(&name)).unwrap_or(false) {
            return Err(ApiError::execute_statement(submission.is_batch, format!("Connection to the database failed: {name} is not available")));
        }
        let client = self
            .connector
            .connect(&database)
            .await
            .map_err(|e| ApiError::execute_statement(submission.is_batch, format!("Connection to the database failed: {}", pg::error_text(&e))))?;
        let statement = self.store.insert(NewStatement {
            is_batch: submission.is_batch,
            queries: sqls.iter().map(|s| copy::redact(s)).collect(),
            statement_name: submission.statement_name,
            cluster_identifier: submission.target.cluster_identifier,
            workgroup_name: submission.target.workgroup_name,
            database: database.clone(),
            db_user: submission.target.db_user,
            secret_arn: submission.target.secret_arn,
        });
        if let Ok(mut running) = self.running.lock() {
            running.insert(statement.id.clone(), (client.cancel_token(), false));
        }
        let engine = self.clone();
        let id = statement.id.clone();
        tokio::spawn(async move {
            engine.run(&id, client, &database, sqls, submission.is_batch).await;
            if let Ok(mut running) = engine.running.lock() {
                running.remove(&id);
            }
        });
        Ok(statement)
    }

    /// CancelStatement: true when a running statement was cancelled.
    ///
    /// # Errors
    /// Unknown id, or a statement that already ended.
    pub async fn cancel(&self, id: &str) -> Result<bool, ApiError> {
        let (statement, _) = self.store.get(id)?;
        if !statement.status.is_active() {
            return Err(ApiError::validation(format!("Could not cancel a query that is already in {} state.", statement.status.as_str())));
        }
        let token = self.running.lock().ok().and_then(|mut r| r.get_mut(&statement.id).map(|entry| {
            entry.1 = true;
            entry.0.clone()
        }));
        if let Some(token) = token {
            let _ = token.cancel_query(NoTls).await;
        }
        Ok(true)
    }

    fn cancelled(&self, id: &str) -> bool {
        self.running.lock().ok().and_then(|r| r.get(id).map(|e| e.1)).unwrap_or(false)
    }

    async fn run_one(&self, client: &Client, database: &str, sql: &str, query_id: i64) -> Result<pg::Outcome, String> {
        if copy::is_copy(sql) {
            let command = copy::parse(sql).map_err(|e| format!("ERROR: {e}"))?;
            let rows = copy::run(client, &self.s3, &self.connector, database, &command, query_id).await.map_err(|e| e.0)?;
            return Ok(pg::Outcome { result: None, rows: rows as i64 });
        }
        pg::run_sql(client, sql).await.map_err(|e| pg::error_text(&e))
    }

    async fn run(&self, id: &str, client: Client, database: &str, sqls: Vec<String>, is_batch: bool) {
        self.store.update(id, |s| s.status = Status::Picked);
        if !self.config.statement_delay.is_zero() {
            tokio::time::sleep(self.config.statement_delay).await;
        }
        let pid = client.simple_query("SELECT pg_backend_pid()").await.ok().and_then(|m| {
            m.into_iter().find_map(|msg| match msg {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).and_then(|v| v.parse::<i64>().ok()),
                _ => None,
            })
        });
        self.store.update(id, |s| {
            s.status = Status::Started;
            s.redshift_pid = pid.unwrap_or(0);
        });
        // A batch is one transaction; so is a lone COPY (it may insert many rows).
        let transaction = is_batch || sqls.iter().any(|s| copy::is_copy(s));
        if transaction {
            if let Err(e) = client.batch_execute("BEGIN").await {
                self.finish(id, Status::Failed, Some(pg::error_text(&e)));
                return;
            }
        }
        let mut failure = None;
        for (index, sql) in sqls.iter().enumerate() {
            if failure.is_some() || self.cancelled(id) {
                self.store.set_sub(id, index, Status::Aborted, None);
                continue;
            }
            let query_id = self.store.next_query_id();
            self.store.update(id, |s| {
                if let Some(sub) = s.subs.get_mut(index) {
                    sub.redshift_query_id = query_id;
                }
            });
            self.store.set_sub(id, index, Status::Started, None);
            match self.run_one(&client, database, sql, query_id).await {
                Ok(outcome) => {
                    self.store.update(id, |s| {
                        if let Some(sub) = s.subs.get_mut(index) {
                            sub.result_rows = outcome.rows;
                            sub.result = outcome.result;
                        }
                    });
                    self.store.set_sub(id, index, Status::Finished, None);
                }
                Err(error) => {
                    let status = if self.cancelled(id) { Status::Aborted } else { Status::Failed };
                    self.store.set_sub(id, index, status, Some(error.clone()));
                    failure = Some((status, error));
                }
            }
        }
        if self.cancelled(id) && failure.is_none() {
            failure = Some((Status::Aborted, "Query cancelled.".to_owned()));
        }
        match failure {
            Some((status, error)) => {
                if transaction {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                self.finish(id, status, Some(error));
            }
            None if transaction => match client.batch_execute("COMMIT").await {
                Ok(()) => self.finish(id, Status::Finished, None),
                Err(e) => self.finish(id, Status::Failed, Some(pg::error_text(&e))),
            },
            None => self.finish(id, Status::Finished, None),
        }
    }

    fn finish(&self, id: &str, status: Status, error: Option<String>) {
        if let Some(e) = &error {
            tracing::debug!(statement = id, error = %e, "statement failed");
        }
        self.store.update(id, |s| {
            s.status = status;
            s.error = error;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, value: &str) -> SqlParameter {
        SqlParameter { name: name.into(), value: value.into() }
    }

    #[test]
    fn parameters_become_quoted_literals() {
        let sql = "select * from t where a = :a and b = ':a' and c = :b::int";
        assert_eq!(substitute(sql, &[p("a", "x'y"), p("b", "2")]).unwrap_or_default(), "select * from t where a = 'x''y' and b = ':a' and c = '2'::int");
        assert!(substitute("select :missing", &[p("a", "1")]).is_err());
    }

    #[test]
    fn targets_are_checked_like_the_service() {
        let mut t = Target { cluster_identifier: Some("c".into()), database: Some("dev".into()), ..Target::default() };
        assert!(validate_target(&t).is_err());
        t.db_user = Some("u".into());
        assert_eq!(validate_target(&t).ok().as_deref(), Some("dev"));
        t.workgroup_name = Some("w".into());
        assert!(validate_target(&t).is_err());
        let t = Target { workgroup_name: Some("w".into()), ..Target::default() };
        assert!(validate_target(&t).is_err());
    }
}
