//! The statements the server knows: their status, timing, errors and
//! result sets, and how DescribeStatement / ListStatements render them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use serde_json::{json, Value};

use crate::api::{epoch_seconds, ApiError, ColumnMetadata, Field};

/// A statement's (or sub-statement's) status, as the API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Accepted, not picked up yet.
    Submitted,
    /// Picked up by the runner.
    Picked,
    /// Running on the database.
    Started,
    /// Done.
    Finished,
    /// Failed: see the error.
    Failed,
    /// Cancelled, or not run because an earlier statement of the batch failed.
    Aborted,
}

impl Status {
    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "SUBMITTED",
            Status::Picked => "PICKED",
            Status::Started => "STARTED",
            Status::Finished => "FINISHED",
            Status::Failed => "FAILED",
            Status::Aborted => "ABORTED",
        }
    }

    /// Whether the statement still runs (counts towards the active limit).
    pub fn is_active(self) -> bool {
        matches!(self, Status::Submitted | Status::Picked | Status::Started)
    }
}

/// A result set.
#[derive(Debug, Clone, Default)]
pub struct ResultSet {
    /// Columns.
    pub columns: Vec<ColumnMetadata>,
    /// Rows.
    pub rows: Vec<Vec<Field>>,
}

/// One SQL statement of a request.
#[derive(Debug, Clone)]
pub struct SubStatement {
    /// The SQL as given (secrets of COPY redacted).
    pub query: String,
    /// Status.
    pub status: Status,
    /// Error text when failed.
    pub error: Option<String>,
    /// When it was created / last changed.
    pub created_at: SystemTime,
    /// Last change.
    pub updated_at: SystemTime,
    /// Run time in nanoseconds (-1 until it ends).
    pub duration_nanos: i64,
    /// The query id (`stl_load_errors.query` for a COPY).
    pub redshift_query_id: i64,
    /// Rows returned or affected (-1: not applicable).
    pub result_rows: i64,
    /// Its result set, when it has one.
    pub result: Option<ResultSet>,
    started: Option<Instant>,
}

/// One ExecuteStatement or BatchExecuteStatement request.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The id (a UUID).
    pub id: String,
    /// BatchExecuteStatement?
    pub is_batch: bool,
    /// The name given, if any.
    pub statement_name: Option<String>,
    /// Cluster, when on a provisioned cluster.
    pub cluster_identifier: Option<String>,
    /// Workgroup, when serverless.
    pub workgroup_name: Option<String>,
    /// Database.
    pub database: String,
    /// Database user.
    pub db_user: Option<String>,
    /// Secret ARN.
    pub secret_arn: Option<String>,
    /// Overall status.
    pub status: Status,
    /// Overall error.
    pub error: Option<String>,
    /// Creation time.
    pub created_at: SystemTime,
    /// Last change.
    pub updated_at: SystemTime,
    /// The server process id of the PostgreSQL session.
    pub redshift_pid: i64,
    /// The statements, in order (one for ExecuteStatement).
    pub subs: Vec<SubStatement>,
}

/// Everything the server remembers, behind one lock.
#[derive(Debug, Default)]
pub struct Store {
    statements: Mutex<HashMap<String, Statement>>,
    order: Mutex<Vec<String>>,
    next_query_id: AtomicI64,
}

/// What a new statement is made of.
pub struct NewStatement {
    /// BatchExecuteStatement?
    pub is_batch: bool,
    /// Its SQL texts (already redacted for display).
    pub queries: Vec<String>,
    /// Name.
    pub statement_name: Option<String>,
    /// Cluster.
    pub cluster_identifier: Option<String>,
    /// Workgroup.
    pub workgroup_name: Option<String>,
    /// Database.
    pub database: String,
    /// User.
    pub db_user: Option<String>,
    /// Secret.
    pub secret_arn: Option<String>,
}

impl Store {
    /// Records a new statement as SUBMITTED and returns it.
    pub fn insert(&self, new: NewStatement) -> Statement {
        let now = SystemTime::now();
        let id = uuid::Uuid::new_v4().to_string();
        let subs = new
            .queries
            .into_iter()
            .map(|query| SubStatement {
                query,
                status: Status::Submitted,
                error: None,
                created_at: now,
                updated_at: now,
                duration_nanos: -1,
                redshift_query_id: 0,
                result_rows: -1,
                result: None,
                started: None,
            })
            .collect();
        let statement = Statement {
            id: id.clone(),
            is_batch: new.is_batch,
            statement_name: new.statement_name,
            cluster_identifier: new.cluster_identifier,
            workgroup_name: new.workgroup_name,
            database: new.database,
            db_user: new.db_user,
            secret_arn: new.secret_arn,
            status: Status::Submitted,
            error: None,
            created_at: now,
            updated_at: now,
            redshift_pid: 0,
            subs,
        };
        if let Ok(mut map) = self.statements.lock() {
            map.insert(id.clone(), statement.clone());
        }
        if let Ok(mut order) = self.order.lock() {
            order.push(id);
        }
        statement
    }

    /// A fresh query id, as `stl_*` tables use.
    pub fn next_query_id(&self) -> i64 {
        1000 + self.next_query_id.fetch_add(1, Ordering::Relaxed)
    }

    /// How many statements are still running.
    pub fn active(&self) -> usize {
        self.statements.lock().map(|m| m.values().filter(|s| s.status.is_active()).count()).unwrap_or(0)
    }

    /// Changes a statement under the lock.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Statement)) {
        if let Ok(mut map) = self.statements.lock() {
            if let Some(statement) = map.get_mut(id) {
                f(statement);
                statement.updated_at = SystemTime::now();
            }
        }
    }

    /// Sets the status of sub-statement `index` (and its timing).
    pub fn set_sub(&self, id: &str, index: usize, status: Status, error: Option<String>) {
        self.update(id, |s| {
            if let Some(sub) = s.subs.get_mut(index) {
                let now = SystemTime::now();
                if status == Status::Started {
                    sub.started = Some(Instant::now());
                }
                if !status.is_active() {
                    sub.duration_nanos = sub.started.map(|t| t.elapsed().as_nanos() as i64).unwrap_or(0);
                }
                sub.status = status;
                sub.error = error;
                sub.updated_at = now;
            }
        });
    }

    /// A copy of a statement; `id` may name a sub-statement (`uuid:n`),
    /// then the parent and the 0-based index are returned.
    ///
    /// # Errors
    /// `ValidationException` for a malformed id, `ResourceNotFoundException`
    /// for an unknown one.
    pub fn get(&self, id: &str) -> Result<(Statement, Option<usize>), ApiError> {
        let (base, sub) = match id.split_once(':') {
            Some((base, n)) => {
                let n: usize = n.parse().map_err(|_| ApiError::validation(format!("invalid statement id {id}")))?;
                (base, Some(n))
            }
            None => (id, None),
        };
        if uuid::Uuid::parse_str(base).is_err() {
            return Err(ApiError::validation(format!("id must be a UUID, got {id:?}")));
        }
        let statement = self
            .statements
            .lock()
            .ok()
            .and_then(|m| m.get(base).cloned())
            .ok_or_else(|| ApiError::not_found("Query does not exist."))?;
        match sub {
            Some(n) if n == 0 || n > statement.subs.len() || !statement.is_batch => {
                Err(ApiError::not_found("Query does not exist."))
            }
            Some(n) => Ok((statement, Some(n - 1))),
            None => Ok((statement, None)),
        }
    }

    /// Every statement in creation order.
    pub fn all(&self) -> Vec<Statement> {
        let order = self.order.lock().map(|o| o.clone()).unwrap_or_default();
        let map = match self.statements.lock() {
            Ok(m) => m,
            Err(_) => return Vec::new(),
        };
        order.iter().filter_map(|id| map.get(id).cloned()).collect()
    }
}

impl Statement {
    /// Run time so far or in all, nanoseconds (-1 while running).
    fn duration_nanos(&self) -> i64 {
        if self.status.is_active() {
            -1
        } else {
            self.subs.iter().map(|s| s.duration_nanos.max(0)).sum::<i64>()
        }
    }

    /// The DescribeStatement answer.
    pub fn describe(&self) -> Value {
        let mut out = json!({
            "Id": self.id,
            "Status": self.status.as_str(),
            "CreatedAt": epoch_seconds(self.created_at),
            "UpdatedAt": epoch_seconds(self.updated_at),
            "Duration": self.duration_nanos(),
            "RedshiftPid": self.redshift_pid,
            "Database": self.database,
        });
        let fields = [
            ("ClusterIdentifier", &self.cluster_identifier),
            ("WorkgroupName", &self.workgroup_name),
            ("DbUser", &self.db_user),
            ("SecretArn", &self.secret_arn),
            ("Error", &self.error),
        ];
        for (key, value) in fields {
            if let Some(v) = value {
                out[key] = Value::from(v.as_str());
            }
        }
        if self.is_batch {
            let subs: Vec<Value> = self.subs.iter().enumerate().map(|(i, s)| s.describe(&format!("{}:{}", self.id, i + 1))).collect();
            out["SubStatements"] = Value::Array(subs);
            out["HasResultSet"] = Value::from(self.subs.iter().any(|s| s.result.is_some()));
            out["RedshiftQueryId"] = Value::from(self.subs.last().map(|s| s.redshift_query_id).unwrap_or(0));
        } else if let Some(sub) = self.subs.first() {
            out["QueryString"] = Value::from(sub.query.as_str());
            out["HasResultSet"] = Value::from(sub.result.is_some());
            out["RedshiftQueryId"] = Value::from(sub.redshift_query_id);
            out["ResultRows"] = Value::from(sub.result_rows);
            out["ResultSize"] = Value::from(sub.result.as_ref().map(result_size).unwrap_or(0));
        }
        out
    }

    /// The ListStatements entry.
    pub fn summary(&self) -> Value {
        let mut out = json!({
            "Id": self.id,
            "Status": self.status.as_str(),
            "CreatedAt": epoch_seconds(self.created_at),
            "UpdatedAt": epoch_seconds(self.updated_at),
            "IsBatchStatement": self.is_batch,
        });
        if self.is_batch {
            out["QueryStrings"] = Value::from(self.subs.iter().map(|s| s.query.clone()).collect::<Vec<_>>());
        } else if let Some(sub) = self.subs.first() {
            out["QueryString"] = Value::from(sub.query.as_str());
        }
        if let Some(name) = &self.statement_name {
            out["StatementName"] = Value::from(name.as_str());
        }
        if let Some(secret) = &self.secret_arn {
            out["SecretArn"] = Value::from(secret.as_str());
        }
        out
    }
}

impl SubStatement {
    fn describe(&self, id: &str) -> Value {
        let mut out = json!({
            "Id": id,
            "Status": self.status.as_str(),
            "QueryString": self.query,
            "CreatedAt": epoch_seconds(self.created_at),
            "UpdatedAt": epoch_seconds(self.updated_at),
            "Duration": self.duration_nanos,
            "HasResultSet": self.result.is_some(),
            "RedshiftQueryId": self.redshift_query_id,
            "ResultRows": self.result_rows,
            "ResultSize": self.result.as_ref().map(result_size).unwrap_or(0),
        });
        if let Some(error) = &self.error {
            out["Error"] = Value::from(error.as_str());
        }
        out
    }
}

fn result_size(result: &ResultSet) -> i64 {
    serde_json::to_vec(&result.rows).map(|v| v.len() as i64).unwrap_or(0)
}
