//! `timestamp`: parse a field into the record's event time (used by
//! windows and time-templated keys instead of the arrival time).
//!
//! ```toml
//! [[transforms]]
//! type = "timestamp"
//! field = "time"          # required: JSON path of the time
//! format = "rfc3339"      # rfc3339 (default) | epoch_seconds | epoch_millis | a strftime pattern
//! ```
//!
//! - `rfc3339`: `"2026-11-01T10:00:00Z"`, `"2026-11-01T10:00:00.123+02:00"`.
//! - `epoch_seconds` / `epoch_millis`: a JSON number (fractions allowed)
//!   or a string of digits.
//! - strftime, e.g. `"%d/%b/%Y:%H:%M:%S %z"` (Apache) or
//!   `"%Y-%m-%d %H:%M:%S"`; without an offset (`%z`) the time is UTC.
//!
//! The payload must be parsed JSON. A missing field or a value that does
//! not fit the format fails the record with the field path and the value.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::Value;
use shardline_api::{Record, Transform, TransformError};
use time::format_description::well_known::Rfc3339;
use time::format_description::OwnedFormatItem;
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::path::JsonPath;
use crate::{config, json_ref, TransformBuildError};

/// The type name in configuration.
pub const NAME: &str = "timestamp";

/// Options of `timestamp`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampConfig {
    /// JSON path of the time. Required.
    pub field: String,
    /// `rfc3339`, `epoch_seconds`, `epoch_millis` or a strftime pattern.
    /// Default `rfc3339`.
    #[serde(default = "default_format")]
    pub format: String,
}

fn default_format() -> String {
    "rfc3339".to_owned()
}

#[derive(Debug, Clone)]
enum Format {
    Rfc3339,
    EpochSeconds,
    EpochMillis,
    Strftime(OwnedFormatItem),
}

/// The `timestamp` transform.
#[derive(Debug, Clone)]
pub struct Timestamp {
    field: JsonPath,
    format: Format,
}

impl Timestamp {
    /// A `timestamp` transform.
    ///
    /// # Errors
    /// A bad `field` path or a bad strftime `format`, naming the key.
    pub fn new(config: TimestampConfig) -> Result<Self, TransformBuildError> {
        let field = crate::path::parse_all(NAME, "field", [&config.field])?.remove(0);
        let format = match config.format.as_str() {
            "rfc3339" => Format::Rfc3339,
            "epoch_seconds" => Format::EpochSeconds,
            "epoch_millis" => Format::EpochMillis,
            pattern if pattern.contains('%') => Format::Strftime(
                time::format_description::parse_strftime_owned(pattern)
                    .map_err(|e| config::invalid(NAME, "format", format!("invalid strftime pattern {pattern:?}: {e}")))?,
            ),
            other => {
                return Err(config::invalid(
                    NAME,
                    "format",
                    format!("{other:?} is not rfc3339, epoch_seconds, epoch_millis or a strftime pattern (with %)"),
                ))
            }
        };
        Ok(Timestamp { field, format })
    }

    fn parse(&self, value: &Value) -> Result<SystemTime, String> {
        match &self.format {
            Format::Rfc3339 => match value {
                Value::String(s) => OffsetDateTime::parse(s, &Rfc3339).map(to_system_time).map_err(|e| e.to_string()),
                _ => Err("expected an RFC 3339 string".to_owned()),
            },
            Format::EpochSeconds => epoch(value, 1e3),
            Format::EpochMillis => epoch(value, 1.0),
            Format::Strftime(items) => match value {
                Value::String(s) => OffsetDateTime::parse(s, items)
                    .or_else(|_| PrimitiveDateTime::parse(s, items).map(PrimitiveDateTime::assume_utc))
                    .map(to_system_time)
                    .map_err(|e| e.to_string()),
                _ => Err("expected a string".to_owned()),
            },
        }
    }
}

fn to_system_time(t: OffsetDateTime) -> SystemTime {
    let nanos = t.unix_timestamp_nanos();
    if nanos >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    } else {
        SystemTime::UNIX_EPOCH - Duration::from_nanos(u64::try_from(-nanos).unwrap_or(u64::MAX))
    }
}

/// A number (or digit string) of `unit_millis` milliseconds each.
fn epoch(value: &Value, unit_millis: f64) -> Result<SystemTime, String> {
    let number = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|n| n.is_finite())
    .ok_or_else(|| "expected a number".to_owned())?;
    let millis = number * unit_millis;
    if millis.abs() > 1e15 {
        return Err("out of range".to_owned());
    }
    let d = Duration::from_micros((millis.abs() * 1e3).round() as u64);
    Ok(if millis >= 0.0 { SystemTime::UNIX_EPOCH + d } else { SystemTime::UNIX_EPOCH - d })
}

impl Transform for Timestamp {
    fn name(&self) -> &str {
        NAME
    }

    fn apply(&mut self, mut record: Record, out: &mut Vec<Record>) -> Result<(), TransformError> {
        let json = json_ref(NAME, &record)?;
        let value = self
            .field
            .get(json)
            .ok_or_else(|| TransformError::new(format!("timestamp: field `{}` is missing", self.field)))?;
        let time = self.parse(value).map_err(|e| {
            TransformError::new(format!("timestamp: field `{}` = {value} does not parse: {e}", self.field))
        })?;
        record.event_time = Some(time);
        out.push(record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_support::{build, build_error, json, run};

    fn millis_of(options: &str, value: Value) -> Result<i64, TransformError> {
        let mut t = build(NAME, options);
        let out = run(t.as_mut(), json(json!({ "t": value })))?;
        Ok(crate::system_time_millis(out[0].event_time.expect("set")))
    }

    #[test]
    fn parses_every_format() {
        assert_eq!(millis_of("field = \"t\"", json!("1970-01-01T00:00:01.5Z")).expect("rfc3339"), 1500);
        assert_eq!(millis_of("field = \"t\"", json!("1970-01-01T02:00:00+02:00")).expect("offset"), 0);
        assert_eq!(millis_of("field = \"t\"\nformat = \"epoch_seconds\"", json!(1.25)).expect("s"), 1250);
        assert_eq!(millis_of("field = \"t\"\nformat = \"epoch_millis\"", json!("1700000000123")).expect("ms"), 1_700_000_000_123);
        assert_eq!(
            millis_of("field = \"t\"\nformat = \"%d/%b/%Y:%H:%M:%S %z\"", json!("10/Oct/2000:13:55:36 -0700")).expect("apache"),
            971_211_336_000
        );
        assert_eq!(millis_of("field = \"t\"\nformat = \"%Y-%m-%d %H:%M:%S\"", json!("1970-01-02 00:00:00")).expect("utc"), 86_400_000);
    }

    #[test]
    fn bad_values_name_the_field() {
        let err = millis_of("field = \"t\"", json!("yesterday")).expect_err("bad");
        assert!(err.reason.starts_with("timestamp: field `t` = \"yesterday\" does not parse"), "{}", err.reason);
        let mut t = build(NAME, "field = \"when\"");
        let err = run(t.as_mut(), json(json!({}))).expect_err("missing");
        assert_eq!(err.reason, "timestamp: field `when` is missing");
    }

    #[test]
    fn bad_format_is_a_build_error() {
        assert_eq!(build_error(NAME, "field = \"t\"\nformat = \"%Q\"").key(), Some("format"));
        assert_eq!(build_error(NAME, "field = \"t\"\nformat = \"iso\"").key(), Some("format"));
    }
}
