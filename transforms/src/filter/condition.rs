//! The condition language of `filter`, parsed once at build time.
//!
//! ```text
//! condition := or
//! or        := and ("or" and)*
//! and       := unary ("and" unary)*
//! unary     := "not" unary | primary
//! primary   := "(" condition ")"
//!            | "exists" operand
//!            | operand                      -- true when the value is JSON `true`
//!            | operand ("==" | "!=" | "<" | "<=" | ">" | ">=") literal
//!            | operand "matches" string     -- regex search in a string value
//!            | operand "contains" literal   -- substring, or array element
//! operand   := JSON path (user.id, items[0], headers["user-agent"])
//!            | @stream | @shard_id | @partition_key | @sequence_number
//! literal   := "string" | 'string' | number | true | false | null
//! ```
//!
//! Keywords are lowercase. Numbers compare numerically (`1 == 1.0`),
//! strings by bytes; a comparison between different types, or with a
//! missing path, is false (also for `!=`: write `not exists a or a != 1`).

use std::fmt;

use regex::Regex;
use serde_json::Value;
use shardline_api::Record;

use crate::path::JsonPath;

/// A condition that does not parse: the 1-based column (in characters) and
/// what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    /// 1-based character column inside the condition text.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConditionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column {}: {}", self.column, self.message)
    }
}

/// What a comparison reads.
#[derive(Debug, Clone)]
enum Operand {
    Path(JsonPath),
    Stream,
    ShardId,
    PartitionKey,
    SequenceNumber,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed condition.
#[derive(Debug, Clone)]
pub struct Condition(Node);

#[derive(Debug, Clone)]
enum Node {
    /// Both hold.
    And(Box<Node>, Box<Node>),
    /// Either holds.
    Or(Box<Node>, Box<Node>),
    /// Does not hold.
    Not(Box<Node>),
    /// The operand is present.
    Exists(Operand),
    /// The operand is JSON `true`.
    Truthy(Operand),
    /// Comparison with a literal.
    Compare(Operand, Cmp, Value),
    /// Regex search in a string.
    Matches(Operand, Regex),
    /// Substring or array element.
    Contains(Operand, Value),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(Value),
    Op(&'static str),
    Open,
    Close,
}

struct Lexer {
    chars: Vec<char>,
    i: usize,
}

fn err(column: usize, message: impl Into<String>) -> ConditionError {
    ConditionError { column, message: message.into() }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || "_-$@.[]\"".contains(c)
}

impl Lexer {
    /// Tokens with their 1-based columns.
    fn tokens(text: &str) -> Result<Vec<(Tok, usize)>, ConditionError> {
        let mut lx = Lexer { chars: text.chars().collect(), i: 0 };
        let mut out = Vec::new();
        while let Some(&c) = lx.chars.get(lx.i) {
            let col = lx.i + 1;
            if c.is_whitespace() {
                lx.i += 1;
                continue;
            }
            let tok = match c {
                '(' => {
                    lx.i += 1;
                    Tok::Open
                }
                ')' => {
                    lx.i += 1;
                    Tok::Close
                }
                '"' | '\'' => Tok::Str(lx.string(c)?),
                '=' | '!' | '<' | '>' => lx.operator()?,
                c if c.is_ascii_digit() || (c == '-' && lx.chars.get(lx.i + 1).is_some_and(char::is_ascii_digit)) => {
                    lx.number()?
                }
                c if c.is_alphabetic() || c == '_' || c == '@' || c == '[' => Tok::Word(lx.word()),
                other => return Err(err(col, format!("unexpected character {other:?}"))),
            };
            out.push((tok, col));
        }
        Ok(out)
    }

    fn string(&mut self, quote: char) -> Result<String, ConditionError> {
        let start = self.i + 1;
        self.i += 1;
        let mut s = String::new();
        loop {
            match self.chars.get(self.i) {
                None => return Err(err(start, "unterminated string")),
                Some(&c) if c == quote => {
                    self.i += 1;
                    return Ok(s);
                }
                Some('\\') => {
                    let escaped = match self.chars.get(self.i + 1) {
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some(&c @ ('\\' | '"' | '\'')) => c,
                        // Keep other escapes for regexes: "\d" stays "\d".
                        Some(&c) => {
                            s.push('\\');
                            c
                        }
                        None => return Err(err(self.i + 1, "unterminated string")),
                    };
                    s.push(escaped);
                    self.i += 2;
                }
                Some(&c) => {
                    s.push(c);
                    self.i += 1;
                }
            }
        }
    }

    fn operator(&mut self) -> Result<Tok, ConditionError> {
        let col = self.i + 1;
        let two: String = self.chars[self.i..].iter().take(2).collect();
        let op = match two.as_str() {
            "==" => "==",
            "!=" => "!=",
            "<=" => "<=",
            ">=" => ">=",
            _ => match self.chars[self.i] {
                '<' => "<",
                '>' => ">",
                '=' => return Err(err(col, "`=` is not an operator; use `==`")),
                _ => return Err(err(col, "`!` is not an operator; use `not` or `!=`")),
            },
        };
        self.i += op.len();
        Ok(Tok::Op(op))
    }

    fn number(&mut self) -> Result<Tok, ConditionError> {
        let start = self.i;
        self.i += 1;
        while self.chars.get(self.i).is_some_and(|c| c.is_ascii_alphanumeric() || "+-.".contains(*c)) {
            // A sign is only part of a number right after an exponent.
            if "+-".contains(self.chars[self.i]) && !matches!(self.chars[self.i - 1], 'e' | 'E') {
                break;
            }
            self.i += 1;
        }
        let text: String = self.chars[start..self.i].iter().collect();
        serde_json::from_str::<serde_json::Number>(&text)
            .map(|n| Tok::Num(Value::Number(n)))
            .map_err(|_| err(start + 1, format!("{text:?} is not a number")))
    }

    fn word(&mut self) -> String {
        let start = self.i;
        let mut in_quotes = false;
        while let Some(&c) = self.chars.get(self.i) {
            if c == '"' {
                in_quotes = !in_quotes;
            } else if !in_quotes && !is_word_char(c) {
                break;
            }
            self.i += 1;
        }
        self.chars[start..self.i].iter().collect()
    }
}

struct Parser {
    tokens: Vec<(Tok, usize)>,
    i: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.i).map(|(t, _)| t)
    }

    fn column(&self) -> usize {
        self.tokens.get(self.i).map_or(self.end, |(_, c)| *c)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "the end of the condition".to_owned(),
            Some(Tok::Word(w)) => format!("`{w}`"),
            Some(Tok::Str(s)) => format!("the string {s:?}"),
            Some(Tok::Num(n)) => format!("the number {n}"),
            Some(Tok::Op(o)) => format!("`{o}`"),
            Some(Tok::Open) => "`(`".to_owned(),
            Some(Tok::Close) => "`)`".to_owned(),
        }
    }

    fn or(&mut self) -> Result<Node, ConditionError> {
        let mut left = self.and()?;
        while self.is_word("or") {
            self.i += 1;
            left = Node::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, ConditionError> {
        let mut left = self.unary()?;
        while self.is_word("and") {
            self.i += 1;
            left = Node::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, ConditionError> {
        if self.is_word("not") {
            self.i += 1;
            return Ok(Node::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Node, ConditionError> {
        if self.peek() == Some(&Tok::Open) {
            let open = self.column();
            self.i += 1;
            let inner = self.or()?;
            if self.peek() != Some(&Tok::Close) {
                return Err(err(self.column(), format!("expected `)` to close the `(` at column {open}, found {}", self.describe())));
            }
            self.i += 1;
            return Ok(inner);
        }
        if self.is_word("exists") {
            self.i += 1;
            return Ok(Node::Exists(self.operand("after `exists`")?));
        }
        let operand = self.operand("")?;
        let col = self.column();
        match self.peek().cloned() {
            Some(Tok::Op(op)) => {
                self.i += 1;
                let cmp = match op {
                    "==" => Cmp::Eq,
                    "!=" => Cmp::Ne,
                    "<" => Cmp::Lt,
                    "<=" => Cmp::Le,
                    ">" => Cmp::Gt,
                    _ => Cmp::Ge,
                };
                Ok(Node::Compare(operand, cmp, self.literal(&format!("after `{op}`"))?))
            }
            Some(Tok::Word(w)) if w == "matches" => {
                self.i += 1;
                let col = self.column();
                match self.peek().cloned() {
                    Some(Tok::Str(pattern)) => {
                        self.i += 1;
                        let re = Regex::new(&pattern).map_err(|e| {
                            let detail = e.to_string();
                            let last = detail.lines().last().unwrap_or("").trim().to_owned();
                            err(col, format!("invalid regex {pattern:?}: {last}"))
                        })?;
                        Ok(Node::Matches(operand, re))
                    }
                    _ => Err(err(col, format!("expected a quoted regex after `matches`, found {}", self.describe()))),
                }
            }
            Some(Tok::Word(w)) if w == "contains" => {
                self.i += 1;
                Ok(Node::Contains(operand, self.literal("after `contains`")?))
            }
            Some(Tok::Word(w)) if !["and", "or", "not"].contains(&w.as_str()) => Err(err(
                col,
                format!("expected an operator (==, !=, <, <=, >, >=, matches, contains), `and`, `or` or `)`, found `{w}`"),
            )),
            _ => Ok(Node::Truthy(operand)),
        }
    }

    fn operand(&mut self, context: &str) -> Result<Operand, ConditionError> {
        let col = self.column();
        let word = match self.peek() {
            Some(Tok::Word(w)) if !["and", "or", "not", "exists", "matches", "contains"].contains(&w.as_str()) => w.clone(),
            _ => {
                let where_ = if context.is_empty() { String::new() } else { format!(" {context}") };
                return Err(err(col, format!("expected a field path or @metadata{where_}, found {}", self.describe())));
            }
        };
        self.i += 1;
        if let Some(name) = word.strip_prefix('@') {
            return match name {
                "stream" => Ok(Operand::Stream),
                "shard_id" => Ok(Operand::ShardId),
                "partition_key" => Ok(Operand::PartitionKey),
                "sequence_number" => Ok(Operand::SequenceNumber),
                _ => Err(err(col, format!("unknown metadata @{name}; known: @stream, @shard_id, @partition_key, @sequence_number"))),
            };
        }
        JsonPath::parse(&word)
            .map(Operand::Path)
            .map_err(|e| err(col + e.offset, format!("bad path `{word}`: {}", e.message)))
    }

    fn literal(&mut self, context: &str) -> Result<Value, ConditionError> {
        let col = self.column();
        let value = match self.peek() {
            Some(Tok::Str(s)) => Value::String(s.clone()),
            Some(Tok::Num(n)) => n.clone(),
            Some(Tok::Word(w)) if w == "true" => Value::Bool(true),
            Some(Tok::Word(w)) if w == "false" => Value::Bool(false),
            Some(Tok::Word(w)) if w == "null" => Value::Null,
            _ => {
                return Err(err(col, format!("expected a value (\"string\", number, true, false, null) {context}, found {}", self.describe())))
            }
        };
        self.i += 1;
        Ok(value)
    }
}

impl Condition {
    /// Parses a condition.
    ///
    /// # Errors
    /// [`ConditionError`] with the column of the problem.
    pub fn parse(text: &str) -> Result<Self, ConditionError> {
        let tokens = Lexer::tokens(text)?;
        let end = text.chars().count() + 1;
        if tokens.is_empty() {
            return Err(err(1, "empty condition"));
        }
        let mut p = Parser { tokens, i: 0, end };
        let condition = p.or()?;
        if p.i < p.tokens.len() {
            return Err(err(p.column(), format!("expected `and`, `or` or the end of the condition, found {}", p.describe())));
        }
        Ok(Condition(condition))
    }

    /// Whether the record satisfies the condition. `json` is its payload
    /// when parsed (paths never match raw bytes).
    pub fn eval(&self, json: Option<&Value>, record: &Record) -> bool {
        self.0.eval(json, record)
    }

    /// True when the condition reads a JSON path (so the payload must be
    /// parsed JSON).
    pub fn reads_paths(&self) -> bool {
        self.0.reads_paths()
    }
}

impl Node {

    fn eval(&self, json: Option<&Value>, record: &Record) -> bool {
        match self {
            Node::And(a, b) => a.eval(json, record) && b.eval(json, record),
            Node::Or(a, b) => a.eval(json, record) || b.eval(json, record),
            Node::Not(c) => !c.eval(json, record),
            Node::Exists(o) => with_operand(o, json, record, |v| v.is_some()),
            Node::Truthy(o) => with_operand(o, json, record, |v| v == Some(&Value::Bool(true))),
            Node::Compare(o, cmp, lit) => with_operand(o, json, record, |v| v.is_some_and(|v| compare(v, *cmp, lit))),
            Node::Matches(o, re) => {
                with_operand(o, json, record, |v| matches!(v, Some(Value::String(s)) if re.is_match(s)))
            }
            Node::Contains(o, lit) => with_operand(o, json, record, |v| match (v, lit) {
                (Some(Value::String(s)), Value::String(needle)) => s.contains(needle.as_str()),
                (Some(Value::Array(items)), lit) => items.iter().any(|item| compare(item, Cmp::Eq, lit)),
                _ => false,
            }),
        }
    }

    fn reads_paths(&self) -> bool {
        match self {
            Node::And(a, b) | Node::Or(a, b) => a.reads_paths() || b.reads_paths(),
            Node::Not(c) => c.reads_paths(),
            Node::Exists(o)
            | Node::Truthy(o)
            | Node::Compare(o, _, _)
            | Node::Matches(o, _)
            | Node::Contains(o, _) => matches!(o, Operand::Path(_)),
        }
    }
}

/// Calls `f` with the operand's value, borrowed: JSON paths read the
/// payload, metadata is looked at through a short-lived string value only
/// when asked for.
fn with_operand(o: &Operand, json: Option<&Value>, record: &Record, f: impl FnOnce(Option<&Value>) -> bool) -> bool {
    let meta = &record.meta;
    let text = match o {
        Operand::Path(p) => return f(json.and_then(|v| p.get(v))),
        Operand::Stream => meta.stream.to_string(),
        Operand::ShardId => meta.shard_id.to_string(),
        Operand::PartitionKey => meta.partition_key.clone(),
        Operand::SequenceNumber => meta.sequence_number.to_string(),
    };
    f(Some(&Value::String(text)))
}

fn compare(v: &Value, cmp: Cmp, lit: &Value) -> bool {
    use std::cmp::Ordering;
    let ordering = match (v, lit) {
        (Value::Number(a), Value::Number(b)) => match (a.as_i64(), b.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => a.as_f64().zip(b.as_f64()).and_then(|(x, y)| x.partial_cmp(&y)),
        },
        (Value::String(a), Value::String(b)) => Some(a.as_str().cmp(b.as_str())),
        (Value::Bool(a), Value::Bool(b)) if matches!(cmp, Cmp::Eq | Cmp::Ne) => Some(a.cmp(b)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (a, b) if matches!(cmp, Cmp::Eq | Cmp::Ne) && std::mem::discriminant(a) == std::mem::discriminant(b) => {
            Some(if a == b { Ordering::Equal } else { Ordering::Less })
        }
        _ => None,
    };
    let Some(o) = ordering else { return false };
    match cmp {
        Cmp::Eq => o == Ordering::Equal,
        Cmp::Ne => o != Ordering::Equal,
        Cmp::Lt => o == Ordering::Less,
        Cmp::Le => o != Ordering::Greater,
        Cmp::Gt => o == Ordering::Greater,
        Cmp::Ge => o != Ordering::Less,
    }
}
