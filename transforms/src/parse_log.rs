//! `parse_log`: one log line → a JSON object, as the Kinesis Agent's
//! LOGTOJSON.
//!
//! ```toml
//! [[transforms]]
//! type = "parse_log"
//! format = "apache_combined"   # required, see below
//! pattern = '^(?P<level>\w+) (?P<message>.*)$'   # with format = "regex" only: named captures become fields
//! ```
//!
//! | format | fields |
//! |---|---|
//! | `apache_common` | `host`, `ident`, `authuser`, `datetime`, `request`, `response` (number), `bytes` (number, null for `-`) |
//! | `apache_combined` | as `apache_common`, plus `referer`, `agent` |
//! | `apache_error` | `timestamp`, `module` (2.4), `severity`, `processid`, `threadid` (numbers, 2.4), `client`, `message` |
//! | `syslog_rfc3164` | `pri`, `facility`, `severity` (numbers, when `<pri>` is present), `timestamp`, `hostname`, `program`, `processid` (number), `message` |
//! | `syslog_rfc5424` | `pri`, `facility`, `severity`, `version` (numbers), `timestamp`, `hostname`, `appname`, `procid`, `msgid`, `structureddata`, `message` (`-` fields are null) |
//! | `regex` | one string field per named capture that took part in the match |
//!
//! The input is the raw bytes (or a JSON string); a trailing line break is
//! ignored. A line that does not match fails the record: for the built-in
//! formats the reason names the first field that could not be read and its
//! byte offset (`apache_common: expected response (3 digits) at byte 52`).
//! Set timestamps as event time with the `timestamp` transform (e.g.
//! `format = "%d/%b/%Y:%H:%M:%S %z"` for Apache's `datetime`).

use regex::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};
use shardline_api::{Payload, Record, Transform, TransformError};

use crate::{config, text_of, TransformBuildError};

/// The type name in configuration.
pub const NAME: &str = "parse_log";

/// Options of `parse_log`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseLogConfig {
    /// `apache_common`, `apache_combined`, `apache_error`,
    /// `syslog_rfc3164`, `syslog_rfc5424` or `regex`. Required.
    pub format: String,
    /// A regex with named captures (`(?P<name>...)`), for `format =
    /// "regex"` only.
    #[serde(default)]
    pub pattern: Option<String>,
}

/// One piece of a built-in format: what it is called in messages and its
/// regex (with named captures).
type Piece = (&'static str, &'static str);

const APACHE_COMMON: &[Piece] = &[
    ("host", r"(?P<host>\S+)"),
    ("a space", " "),
    ("ident", r"(?P<ident>\S+)"),
    ("a space", " "),
    ("authuser", r"(?P<authuser>\S+)"),
    ("a space", " "),
    ("datetime ([...])", r"\[(?P<datetime>[^\]]+)\]"),
    ("a space", " "),
    ("request (\"...\")", r#""(?P<request>(?:[^"\\]|\\.)*)""#),
    ("a space", " "),
    ("response (3 digits)", r"(?P<response>\d{3})"),
    ("a space", " "),
    ("bytes (digits or -)", r"(?P<bytes>\d+|-)"),
];

const APACHE_COMBINED_TAIL: &[Piece] = &[
    ("a space", " "),
    ("referer (\"...\")", r#""(?P<referer>(?:[^"\\]|\\.)*)""#),
    ("a space", " "),
    ("agent (\"...\")", r#""(?P<agent>(?:[^"\\]|\\.)*)""#),
];

const APACHE_ERROR: &[Piece] = &[
    ("timestamp ([...])", r"\[(?P<timestamp>[^\]]+)\]"),
    ("a space", " "),
    ("[module:severity] or [severity]", r"\[(?:(?P<module>[^:\]]+):)?(?P<severity>[^\]]+)\]"),
    ("[pid N:tid N]", r"(?: \[pid (?P<processid>\d+)(?::tid (?P<threadid>\d+))?\])?"),
    ("[client ...]", r"(?: \[client (?P<client>[^\]]+)\])?"),
    ("a space and the message", r" (?P<message>.*)"),
];

const SYSLOG_3164: &[Piece] = &[
    ("<pri>", r"(?:<(?P<pri>\d{1,3})>)?"),
    ("timestamp (Mmm dd hh:mm:ss)", r"(?P<timestamp>[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2})"),
    ("a space", " "),
    ("hostname", r"(?P<hostname>\S+)"),
    ("a space", " "),
    ("program", r"(?P<program>[^\[:\s]+)(?:\[(?P<processid>\d+)\])?"),
    ("`: ` and the message", r": ?(?P<message>.*)"),
];

const SYSLOG_5424: &[Piece] = &[
    ("<pri>", r"<(?P<pri>\d{1,3})>"),
    ("version", r"(?P<version>\d{1,2})"),
    ("a space", " "),
    ("timestamp", r"(?P<timestamp>\S+)"),
    ("a space", " "),
    ("hostname", r"(?P<hostname>\S+)"),
    ("a space", " "),
    ("appname", r"(?P<appname>\S+)"),
    ("a space", " "),
    ("procid", r"(?P<procid>\S+)"),
    ("a space", " "),
    ("msgid", r"(?P<msgid>\S+)"),
    ("a space", " "),
    ("structured data (- or [...])", r"(?P<structureddata>-|(?:\[(?:[^\]\\]|\\.)*\])+)"),
    ("a space and the message", r"(?: (?P<message>.*))?"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    ApacheCommon,
    ApacheCombined,
    ApacheError,
    Syslog3164,
    Syslog5424,
    Regex,
}

/// The `parse_log` transform.
#[derive(Debug, Clone)]
pub struct ParseLog {
    kind: Kind,
    format: String,
    regex: Regex,
    names: Vec<String>,
    /// For built-in formats: the pieces and the regexes of every prefix of
    /// them (to name the first piece that does not match).
    pieces: Vec<Piece>,
    prefixes: Vec<Regex>,
}

fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| e.to_string().lines().last().unwrap_or("").trim().to_owned())
}

impl ParseLog {
    /// A `parse_log` transform.
    ///
    /// # Errors
    /// An unknown `format`, a missing, misplaced or invalid `pattern`
    /// (naming the key), or a pattern without named captures.
    pub fn new(config: ParseLogConfig) -> Result<Self, TransformBuildError> {
        let pieces: Vec<Piece> = match config.format.as_str() {
            "apache_common" => APACHE_COMMON.to_vec(),
            "apache_combined" => [APACHE_COMMON, APACHE_COMBINED_TAIL].concat(),
            "apache_error" => APACHE_ERROR.to_vec(),
            "syslog_rfc3164" => SYSLOG_3164.to_vec(),
            "syslog_rfc5424" => SYSLOG_5424.to_vec(),
            "regex" => Vec::new(),
            other => {
                return Err(config::invalid(
                    NAME,
                    "format",
                    format!("unknown format {other:?}; known: apache_common, apache_combined, apache_error, syslog_rfc3164, syslog_rfc5424, regex"),
                ))
            }
        };
        let kind = match config.format.as_str() {
            "apache_common" => Kind::ApacheCommon,
            "apache_combined" => Kind::ApacheCombined,
            "apache_error" => Kind::ApacheError,
            "syslog_rfc3164" => Kind::Syslog3164,
            "syslog_rfc5424" => Kind::Syslog5424,
            _ => Kind::Regex,
        };
        let regex = match (kind, &config.pattern) {
            (Kind::Regex, None) => return Err(config::invalid(NAME, "format", "`format = \"regex\"` needs `pattern`")),
            (Kind::Regex, Some(p)) => {
                let re = compile(p).map_err(|e| config::invalid(NAME, "pattern", format!("invalid regex: {e}")))?;
                if re.capture_names().flatten().next().is_none() {
                    return Err(config::invalid(NAME, "pattern", "has no named capture such as (?P<field>...)"));
                }
                re
            }
            (_, Some(_)) => return Err(config::invalid(NAME, "pattern", "only used with `format = \"regex\"`")),
            (_, None) => {
                let all: String = pieces.iter().map(|(_, p)| *p).collect();
                compile(&format!("^{all}$")).map_err(|e| config::invalid(NAME, "format", e))?
            }
        };
        let mut prefixes = Vec::new();
        for n in 1..pieces.len() {
            let prefix: String = pieces[..n].iter().map(|(_, p)| *p).collect();
            prefixes.push(compile(&format!("^{prefix}")).map_err(|e| config::invalid(NAME, "format", e))?);
        }
        let names = regex.capture_names().flatten().map(str::to_owned).collect();
        Ok(ParseLog { kind, format: config.format, regex, names, pieces, prefixes })
    }

    /// Why `line` does not match: the first piece that fails and where.
    fn mismatch(&self, line: &str) -> String {
        if self.kind == Kind::Regex {
            return format!("parse_log: the line does not match `pattern` ({} bytes)", line.len());
        }
        // The longest prefix of pieces that matches tells where reading stopped.
        let mut at = 0;
        let mut next = 0;
        for (n, re) in self.prefixes.iter().enumerate().rev() {
            if let Some(m) = re.find(line) {
                at = m.end();
                next = n + 1;
                break;
            }
        }
        if next + 1 == self.pieces.len() && self.regex.find(line).is_none() && at < line.len() {
            // Every piece but the last matched: the last one stops early or
            // leaves text behind.
            let (what, _) = self.pieces[next];
            return format!("{}: expected {what} at byte {at}, or the end of the line", self.format);
        }
        let (what, _) = self.pieces[next.min(self.pieces.len() - 1)];
        format!("{}: expected {what} at byte {at}", self.format)
    }
}

fn number_or_null(text: &str) -> Value {
    text.parse::<i64>().map(Value::from).unwrap_or(Value::Null)
}

impl Transform for ParseLog {
    fn name(&self) -> &str {
        NAME
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let text = text_of(NAME, &record)?;
        let line = text.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(text);
        let caps = self.regex.captures(line).ok_or_else(|| TransformError::new(self.mismatch(line)))?;
        let mut map = Map::with_capacity(self.names.len() + 2);
        for name in &self.names {
            let Some(m) = caps.name(name) else { continue };
            let text = m.as_str();
            let value = match (self.kind, name.as_str()) {
                (Kind::Regex, _) => Value::String(text.to_owned()),
                (_, "response" | "bytes" | "processid" | "threadid" | "version") => number_or_null(text),
                (_, "pri") => {
                    let pri = number_or_null(text);
                    if let Some(p) = pri.as_i64() {
                        map.insert("facility".to_owned(), Value::from(p / 8));
                        map.insert("severity".to_owned(), Value::from(p % 8));
                    }
                    pri
                }
                (Kind::Syslog5424, _) if text == "-" => Value::Null,
                _ => Value::String(text.to_owned()),
            };
            map.insert(name.clone(), value);
        }
        record.payload = Payload::Json(Value::Object(map));
        out.push(record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{build, build_error, one_json, run, text};

    const COMMON: &str = r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#;

    #[test]
    fn apache_common_and_combined() {
        let mut t = build(NAME, "format = \"apache_common\"");
        assert_eq!(
            one_json(t.as_mut(), text(&format!("{COMMON}\n"))),
            json!({"host": "127.0.0.1", "ident": "-", "authuser": "frank", "datetime": "10/Oct/2000:13:55:36 -0700",
                "request": "GET /apache_pb.gif HTTP/1.0", "response": 200, "bytes": 2326})
        );
        let mut t = build(NAME, "format = \"apache_combined\"");
        let v = one_json(t.as_mut(), text(&format!("{COMMON} \"http://x.example/\" \"Mozilla/4.08\"")));
        assert_eq!((v["referer"].as_str(), v["agent"].as_str()), (Some("http://x.example/"), Some("Mozilla/4.08")));
    }

    #[test]
    fn apache_error_both_versions() {
        let mut t = build(NAME, "format = \"apache_error\"");
        let v = one_json(
            t.as_mut(),
            text("[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187] File does not exist: /x"),
        );
        assert_eq!(
            v,
            json!({"timestamp": "Fri Sep 09 10:42:29.902022 2011", "module": "core", "severity": "error", "processid": 35708,
                "threadid": 4_328_636_416_i64, "client": "72.15.99.187", "message": "File does not exist: /x"})
        );
        let v = one_json(t.as_mut(), text("[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied"));
        assert_eq!((v["severity"].as_str(), v["client"].as_str(), v.get("module")), (Some("error"), Some("127.0.0.1"), None));
    }

    #[test]
    fn syslog_formats() {
        let mut t = build(NAME, "format = \"syslog_rfc3164\"");
        let v = one_json(t.as_mut(), text("<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed"));
        assert_eq!(
            v,
            json!({"pri": 34, "facility": 4, "severity": 2, "timestamp": "Oct 11 22:14:15", "hostname": "mymachine",
                "program": "su", "processid": 123, "message": "'su root' failed"})
        );
        let mut t = build(NAME, "format = \"syslog_rfc5424\"");
        let v = one_json(
            t.as_mut(),
            text(r#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3"] An application event"#),
        );
        assert_eq!(v["procid"], Value::Null);
        assert_eq!(v["structureddata"], json!(r#"[exampleSDID@32473 iut="3"]"#));
        assert_eq!((v["pri"].clone(), v["version"].clone(), v["message"].clone()), (json!(165), json!(1), json!("An application event")));
    }

    #[test]
    fn custom_regex() {
        let mut t = build(NAME, "format = \"regex\"\npattern = '^(?P<level>[A-Z]+) (?P<msg>.*)$'");
        assert_eq!(one_json(t.as_mut(), text("WARN disk low")), json!({"level": "WARN", "msg": "disk low"}));
        assert!(run(t.as_mut(), text("warn x")).expect_err("no match").reason.contains("does not match `pattern`"));
    }

    #[test]
    fn mismatch_names_the_field_and_byte() {
        let mut t = build(NAME, "format = \"apache_common\"");
        let bad = COMMON.replace(" 200 ", " OK ");
        let err = run(t.as_mut(), text(&bad)).expect_err("bad response");
        assert_eq!(err.reason, "apache_common: expected response (3 digits) at byte 77");
        let err = run(t.as_mut(), text("host")).expect_err("short");
        assert_eq!(err.reason, "apache_common: expected a space at byte 4");
    }

    #[test]
    fn bad_options_name_the_key() {
        assert_eq!(build_error(NAME, "format = \"nginx\"").key(), Some("format"));
        assert_eq!(build_error(NAME, "format = \"regex\"\npattern = \"(\"").key(), Some("pattern"));
        assert_eq!(build_error(NAME, "format = \"regex\"\npattern = \"a+\"").key(), Some("pattern"));
        assert_eq!(build_error(NAME, "format = \"regex\"").key(), Some("format"));
        assert_eq!(build_error(NAME, "format = \"apache_common\"\npattern = \"(?P<a>x)\"").key(), Some("pattern"));
    }
}
