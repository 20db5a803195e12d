//! Object key templates: parsing (`validate`), partition values taken from
//! records (`{field.path}`), and rendering a deterministic key for a group
//! of records of one batch.
//!
//! A key depends only on the records it holds (their stream, shard,
//! first and last positions, the oldest arrival time and the partition
//! values), so a batch sent again after a crash renders the same keys and
//! overwrites its objects instead of adding duplicates.

use std::time::SystemTime;

use serde_json::Value;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Pipeline,
    Stream,
    ShardId,
    FirstSeq,
    FirstSubseq,
    LastSeq,
    LastSubseq,
    Year,
    Month,
    Day,
    Hour,
    Minute,
    /// The n-th `{field.*}` placeholder.
    Field(usize),
}

/// A parsed key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    segments: Vec<Segment>,
    /// The dotted paths of the `{field.*}` placeholders, in order.
    fields: Vec<Vec<String>>,
}

/// The placeholders a template may use, for messages.
pub const PLACEHOLDERS: &str = "{pipeline}, {stream}, {shard_id}, {first_seq}, {first_subseq}, {last_seq}, {last_subseq}, {yyyy}, {MM}, {dd}, {HH}, {mm}, {field.<path>}";

/// What a rendered key is made of, besides partition values.
#[derive(Debug, Clone)]
pub struct KeyParts<'a> {
    /// The pipeline name.
    pub pipeline: &'a str,
    /// The stream.
    pub stream: &'a str,
    /// The shard.
    pub shard_id: &'a str,
    /// Sequence number of the first record.
    pub first_seq: &'a str,
    /// Sub-sequence number of the first record.
    pub first_subseq: u64,
    /// Sequence number of the last record.
    pub last_seq: &'a str,
    /// Sub-sequence number of the last record.
    pub last_subseq: u64,
    /// The oldest arrival time, as wall-clock time in the key's time zone.
    pub time: CivilTime,
}

impl KeyTemplate {
    /// Parses `text`. `{{` and `}}` stand for literal braces.
    ///
    /// # Errors
    /// An unknown or malformed placeholder, or a template missing one of
    /// `{shard_id}`, `{first_seq}` and `{first_subseq}` (without them keys
    /// of different batches could collide and overwrite each other).
    pub fn parse(text: &str) -> Result<KeyTemplate, String> {
        let mut segments = Vec::new();
        let mut fields = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => return Err(format!("unmatched `}}` in `{text}` (write `}}}}` for a literal brace)")),
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some('{') | None => return Err(format!("unclosed `{{{name}` in `{text}`")),
                            Some(c) => name.push(c),
                        }
                    }
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(placeholder(&name, &mut fields)?);
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        for (required, segment) in [("{shard_id}", Segment::ShardId), ("{first_seq}", Segment::FirstSeq), ("{first_subseq}", Segment::FirstSubseq)] {
            if !segments.contains(&segment) {
                return Err(format!(
                    "must contain {required}: keys are named after the shard and the first record's position so that batches never overwrite each other"
                ));
            }
        }
        Ok(KeyTemplate { segments, fields })
    }

    /// True when the template has `{field.*}` placeholders.
    pub fn has_fields(&self) -> bool {
        !self.fields.is_empty()
    }

    /// The partition values of a record: one string per `{field.*}`
    /// placeholder, in order.
    ///
    /// # Errors
    /// Why the record has no partition (a field missing, null, or an
    /// object or array), as a dead-letter reason.
    pub fn partition_values(&self, record: &Value) -> Result<Vec<String>, String> {
        self.fields
            .iter()
            .map(|path| {
                let value = lookup(record, path);
                let shown = || path.join(".");
                match value {
                    None => Err(format!("key template field `{{field.{}}}` is missing from the record", shown())),
                    Some(Value::String(s)) => Ok(key_safe(s)),
                    Some(Value::Number(n)) => Ok(n.to_string()),
                    Some(Value::Bool(b)) => Ok(b.to_string()),
                    Some(Value::Null) => Err(format!("key template field `{{field.{}}}` is null in the record", shown())),
                    Some(_) => Err(format!("key template field `{{field.{}}}` is an object or array, not a value", shown())),
                }
            })
            .collect()
    }

    /// Renders the key of one object, followed by `extension`.
    pub fn render(&self, parts: &KeyParts<'_>, partition: &[String], extension: &str) -> String {
        use std::fmt::Write as _;
        let mut key = String::with_capacity(128);
        for segment in &self.segments {
            // Writing into a String cannot fail.
            let _ = match segment {
                Segment::Literal(text) => write!(key, "{text}"),
                Segment::Pipeline => write!(key, "{}", parts.pipeline),
                Segment::Stream => write!(key, "{}", parts.stream),
                Segment::ShardId => write!(key, "{}", parts.shard_id),
                Segment::FirstSeq => write!(key, "{}", parts.first_seq),
                Segment::FirstSubseq => write!(key, "{}", parts.first_subseq),
                Segment::LastSeq => write!(key, "{}", parts.last_seq),
                Segment::LastSubseq => write!(key, "{}", parts.last_subseq),
                Segment::Year => write!(key, "{:04}", parts.time.year),
                Segment::Month => write!(key, "{:02}", parts.time.month),
                Segment::Day => write!(key, "{:02}", parts.time.day),
                Segment::Hour => write!(key, "{:02}", parts.time.hour),
                Segment::Minute => write!(key, "{:02}", parts.time.minute),
                Segment::Field(i) => write!(key, "{}", partition.get(*i).map(String::as_str).unwrap_or("_")),
            };
        }
        key.push_str(extension);
        key
    }
}

fn placeholder(name: &str, fields: &mut Vec<Vec<String>>) -> Result<Segment, String> {
    Ok(match name {
        "pipeline" => Segment::Pipeline,
        "stream" => Segment::Stream,
        "shard_id" => Segment::ShardId,
        "first_seq" => Segment::FirstSeq,
        "first_subseq" => Segment::FirstSubseq,
        "last_seq" => Segment::LastSeq,
        "last_subseq" => Segment::LastSubseq,
        "yyyy" => Segment::Year,
        "MM" => Segment::Month,
        "dd" => Segment::Day,
        "HH" => Segment::Hour,
        "mm" => Segment::Minute,
        other => match other.strip_prefix("field.") {
            Some(path) if !path.is_empty() && path.split('.').all(|p| !p.is_empty()) => {
                fields.push(path.split('.').map(str::to_owned).collect());
                Segment::Field(fields.len() - 1)
            }
            _ => return Err(format!("unknown placeholder `{{{other}}}`; the placeholders are {PLACEHOLDERS}")),
        },
    })
}

/// `record` at a dotted path (objects only).
pub fn lookup<'v>(record: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(record, |value, part| value.as_object()?.get(part))
}

/// A field value made safe for one key segment: `/`, `\` and control
/// characters become `_`; an empty value becomes `_`.
fn key_safe(value: &str) -> String {
    if value.is_empty() {
        return "_".to_owned();
    }
    value.chars().map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c }).collect()
}

/// A wall-clock date and time (minutes precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// Year.
    pub year: i64,
    /// Month, 1-12.
    pub month: u32,
    /// Day of the month, 1-31.
    pub day: u32,
    /// Hour, 0-23.
    pub hour: u32,
    /// Minute, 0-59.
    pub minute: u32,
}

impl CivilTime {
    /// The wall-clock time `offset_seconds` east of UTC at `unix_seconds`.
    pub fn from_unix(unix_seconds: i64, offset_seconds: i32) -> CivilTime {
        let local = unix_seconds + i64::from(offset_seconds);
        let (days, secs) = (local.div_euclid(86_400), local.rem_euclid(86_400));
        // Howard Hinnant's days-to-civil algorithm.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        CivilTime { year, month, day, hour: (secs / 3600) as u32, minute: ((secs % 3600) / 60) as u32 }
    }
}

/// The `time_zone` setting, checked without I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeZoneSpec {
    /// UTC.
    Utc,
    /// A fixed offset east of UTC, in seconds.
    Fixed(i32),
    /// An IANA zone name, resolved from the tz database when the sink starts.
    Iana(String),
}

impl TimeZoneSpec {
    /// Parses `UTC`/`Z`, `+HH:MM`/`-HHMM`/`+HH`, or an IANA name such as
    /// `Europe/Paris` (syntax only; the zone is looked up at start).
    ///
    /// # Errors
    /// What is wrong with the text.
    pub fn parse(text: &str) -> Result<TimeZoneSpec, String> {
        if text.eq_ignore_ascii_case("utc") || text == "Z" {
            return Ok(TimeZoneSpec::Utc);
        }
        if let Some(sign) = text.chars().next().filter(|c| *c == '+' || *c == '-') {
            let digits: String = text[1..].chars().filter(|c| *c != ':').collect();
            let bad = || format!("`{text}` is not an offset such as +02:00, -0530 or +09 (at most 18 hours)");
            if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
                return Err(bad());
            }
            let hours: i32 = digits[..2].parse().map_err(|_| bad())?;
            let minutes: i32 = if digits.len() == 4 { digits[2..].parse().map_err(|_| bad())? } else { 0 };
            if hours > 18 || minutes > 59 || (hours == 18 && minutes > 0) {
                return Err(bad());
            }
            let seconds = hours * 3600 + minutes * 60;
            return Ok(TimeZoneSpec::Fixed(if sign == '-' { -seconds } else { seconds }));
        }
        let plausible = !text.is_empty()
            && !text.starts_with('/')
            && !text.split('/').any(|part| part.is_empty() || part == "." || part == "..")
            && text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'));
        if plausible {
            Ok(TimeZoneSpec::Iana(text.to_owned()))
        } else {
            Err(format!("`{text}` is neither UTC, an offset such as +02:00, nor an IANA zone name such as Europe/Paris"))
        }
    }
}

/// A time zone ready to convert instants.
#[derive(Debug)]
pub enum Zone {
    /// A fixed offset east of UTC, in seconds (0 for UTC).
    Fixed(i32),
    /// An IANA zone from the tz database.
    Iana(Box<tz::TimeZone>),
}

impl Zone {
    /// Resolves a spec: IANA names are read from the system tz database
    /// (`TZDIR`, `/usr/share/zoneinfo`, ...).
    ///
    /// # Errors
    /// When the zone is not in the tz database.
    pub fn resolve(spec: &TimeZoneSpec) -> Result<Zone, String> {
        match spec {
            TimeZoneSpec::Utc => Ok(Zone::Fixed(0)),
            TimeZoneSpec::Fixed(offset) => Ok(Zone::Fixed(*offset)),
            TimeZoneSpec::Iana(name) => tz::TimeZone::from_posix_tz(name)
                .map(|zone| Zone::Iana(Box::new(zone)))
                .map_err(|e| format!("time zone `{name}` not found in the system tz database (/usr/share/zoneinfo; install tzdata or use an offset such as +02:00): {e}")),
        }
    }

    /// The wall-clock time at `instant`.
    pub fn civil(&self, instant: SystemTime) -> CivilTime {
        let unix = match instant.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => {
                let before = e.duration();
                -i64::try_from(before.as_secs()).unwrap_or(i64::MAX) - i64::from(before.subsec_nanos() > 0)
            }
        };
        let offset = match self {
            Zone::Fixed(offset) => *offset,
            Zone::Iana(zone) => zone.find_local_time_type(unix).map(|t| t.ut_offset()).unwrap_or(0),
        };
        CivilTime::from_unix(unix, offset)
    }
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
