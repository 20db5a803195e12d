//! Index names with time rotation: the `index` template
//! (`"clicks-{yyyy.MM.dd}"`), UTC calendar arithmetic, ISO-8601 week
//! numbering, and reading a record's time from a JSON field.
//!
//! A template is literal text with at most one `{...}` date pattern. The
//! pattern's tokens are `yyyy` (year), `MM` (month), `dd` (day of month),
//! `HH` (hour), `xxxx` (ISO week-based year) and `ww` (ISO week, 01-53);
//! `.`, `-` and `_` between them are copied as they are. The finest token
//! sets the rotation: none (no pattern), hour, day, week or month. Times
//! are UTC.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Characters Elasticsearch and OpenSearch refuse in index names.
const FORBIDDEN: &[char] = &['\\', '/', '*', '?', '"', '<', '>', '|', ',', '#', ':', ' '];

/// One piece of a date pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Year,
    Month,
    Day,
    Hour,
    WeekYear,
    Week,
    Separator(char),
}

/// A parsed `index` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexTemplate {
    prefix: String,
    pattern: Vec<Token>,
    suffix: String,
}

/// How often a template starts a new index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// One index.
    None,
    /// One index per UTC hour.
    Hour,
    /// One index per UTC day.
    Day,
    /// One index per ISO week (Monday to Sunday).
    Week,
    /// One index per calendar month.
    Month,
}

impl IndexTemplate {
    /// Parses and checks a template.
    ///
    /// # Errors
    /// What is wrong, for the `index` key: unbalanced braces, an unknown
    /// token, `ww` paired with `yyyy` (use `xxxx`), upper-case letters or a
    /// character no index name may contain.
    pub fn parse(text: &str) -> Result<IndexTemplate, String> {
        if text.is_empty() {
            return Err("must not be empty".to_owned());
        }
        let (prefix, pattern, suffix) = match text.find('{') {
            None => {
                if text.contains('}') {
                    return Err("has a `}` without a `{`".to_owned());
                }
                (text, "", "")
            }
            Some(open) => {
                let rest = &text[open + 1..];
                let close = rest.find('}').ok_or("has a `{` without a closing `}`")?;
                let suffix = &rest[close + 1..];
                if suffix.contains('{') || suffix.contains('}') {
                    return Err("may hold only one `{...}` date pattern".to_owned());
                }
                if close == 0 {
                    return Err("has an empty `{}` date pattern".to_owned());
                }
                (&text[..open], &rest[..close], suffix)
            }
        };
        for literal in [prefix, suffix] {
            if let Some(bad) = literal.chars().find(|c| FORBIDDEN.contains(c) || c.is_uppercase()) {
                return Err(format!("index names must be lower case and must not contain {bad:?}"));
            }
        }
        if text.starts_with(['-', '_', '+']) {
            return Err("index names must not start with `-`, `_` or `+`".to_owned());
        }
        if text == "." || text == ".." {
            return Err("`.` and `..` are not index names".to_owned());
        }
        let pattern = parse_pattern(pattern)?;
        let template = IndexTemplate { prefix: prefix.to_owned(), pattern, suffix: suffix.to_owned() };
        let longest = template.prefix.len() + template.pattern.len() * 4 + template.suffix.len();
        if longest > 255 {
            return Err(format!("index names are at most 255 bytes, this template makes {longest}"));
        }
        Ok(template)
    }

    /// The rotation the finest token of the pattern implies.
    pub fn rotation(&self) -> Rotation {
        let has = |t: Token| self.pattern.contains(&t);
        if has(Token::Hour) {
            Rotation::Hour
        } else if has(Token::Day) {
            Rotation::Day
        } else if has(Token::Week) {
            Rotation::Week
        } else if has(Token::Month) {
            Rotation::Month
        } else {
            Rotation::None
        }
    }

    /// True when the name depends on the record's time.
    pub fn is_timed(&self) -> bool {
        !self.pattern.is_empty()
    }

    /// The index name for a record of time `time`.
    pub fn render(&self, time: SystemTime) -> String {
        let mut name = self.prefix.clone();
        if self.is_timed() {
            let t = UtcTime::from_system_time(time);
            let (week_year, week) = iso_week(t.year, t.month, t.day);
            for token in &self.pattern {
                match token {
                    Token::Year => name.push_str(&format!("{:04}", t.year)),
                    Token::Month => name.push_str(&format!("{:02}", t.month)),
                    Token::Day => name.push_str(&format!("{:02}", t.day)),
                    Token::Hour => name.push_str(&format!("{:02}", t.hour)),
                    Token::WeekYear => name.push_str(&format!("{week_year:04}")),
                    Token::Week => name.push_str(&format!("{week:02}")),
                    Token::Separator(c) => name.push(*c),
                }
            }
        }
        name.push_str(&self.suffix);
        name
    }
}

fn parse_pattern(pattern: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = pattern;
    while !rest.is_empty() {
        let table: [(&str, Token); 6] = [
            ("yyyy", Token::Year),
            ("MM", Token::Month),
            ("dd", Token::Day),
            ("HH", Token::Hour),
            ("xxxx", Token::WeekYear),
            ("ww", Token::Week),
        ];
        if let Some((text, token)) = table.iter().find(|(text, _)| rest.starts_with(text)) {
            if tokens.contains(token) {
                return Err(format!("repeats `{text}` in its date pattern"));
            }
            tokens.push(*token);
            rest = &rest[text.len()..];
            continue;
        }
        let mut chars = rest.chars();
        match chars.next() {
            Some(c @ ('.' | '-' | '_')) => tokens.push(Token::Separator(c)),
            Some(c) => {
                return Err(format!(
                    "unknown date pattern token at {c:?}; use yyyy, MM, dd, HH, xxxx (ISO week-year), ww (ISO week) and . - _"
                ))
            }
            None => break,
        }
        rest = chars.as_str();
    }
    let has = |t: Token| tokens.contains(&t);
    if has(Token::Week) && (has(Token::Year) || has(Token::Month) || has(Token::Day)) {
        return Err("pairs `ww` (ISO week) with calendar tokens: use `{xxxx.ww}`, the ISO week-based year".to_owned());
    }
    if has(Token::WeekYear) && !has(Token::Week) {
        return Err("has `xxxx` (ISO week-based year) without `ww`: use `yyyy` for the calendar year".to_owned());
    }
    if has(Token::Week) && !has(Token::WeekYear) {
        return Err("has `ww` without `xxxx` (ISO week-based year)".to_owned());
    }
    if has(Token::Hour) && !has(Token::Day) || has(Token::Day) && !has(Token::Month) || has(Token::Month) && !has(Token::Year) {
        return Err("leaves out a coarser unit (e.g. `dd` needs `MM` and `yyyy`), so names would repeat".to_owned());
    }
    Ok(tokens)
}

/// A UTC calendar time, to the hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// Proleptic Gregorian year.
    pub year: i64,
    /// 1-12.
    pub month: u32,
    /// 1-31.
    pub day: u32,
    /// 0-23.
    pub hour: u32,
}

impl UtcTime {
    /// The UTC calendar time of `time` (times before 1970 included).
    pub fn from_system_time(time: SystemTime) -> UtcTime {
        let seconds = match time.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs_f64().ceil() as u64).unwrap_or(i64::MAX),
        };
        let days = seconds.div_euclid(86_400);
        let hour = (seconds.rem_euclid(86_400) / 3600) as u32;
        let (year, month, day) = civil_from_days(days);
        UtcTime { year, month, day, hour }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number (days since 1970-01-01).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// ISO weekday, Monday = 1 … Sunday = 7.
fn iso_weekday(days: i64) -> i64 {
    // 1970-01-01 was a Thursday.
    (days + 3).rem_euclid(7) + 1
}

/// ISO-8601 `(week-based year, week)`: weeks start on Monday and week 1 is
/// the one holding the year's first Thursday.
pub fn iso_week(year: i64, month: u32, day: u32) -> (i64, u32) {
    let days = days_from_civil(year, month, day);
    // The Thursday of this date's week decides the year.
    let thursday = days - iso_weekday(days) + 4;
    let (week_year, _, _) = civil_from_days(thursday);
    let week = (thursday - days_from_civil(week_year, 1, 1)) / 7 + 1;
    (week_year, week as u32)
}

/// Reads a time from a JSON value: an RFC 3339 string
/// (`2026-01-31T23:59:59.5Z`, `...+02:00`) or a number of milliseconds
/// since the Unix epoch.
///
/// # Errors
/// Why the value is not such a time.
pub fn time_from_json(value: &serde_json::Value) -> Result<SystemTime, String> {
    match value {
        serde_json::Value::String(text) => parse_rfc3339(text),
        serde_json::Value::Number(n) => {
            let millis = n.as_f64().ok_or("is not a finite number")?;
            if !millis.is_finite() {
                return Err("is not a finite number".to_owned());
            }
            let offset = Duration::from_secs_f64(millis.abs() / 1000.0);
            let time = if millis >= 0.0 { UNIX_EPOCH.checked_add(offset) } else { UNIX_EPOCH.checked_sub(offset) };
            time.ok_or_else(|| format!("{millis} ms is out of range"))
        }
        other => Err(format!("is {}, not an RFC 3339 string or epoch milliseconds", shardline_plugin_sdk::json_kind(other))),
    }
}


/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `t`/space for `T`, `z` for `Z`.
fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    let bad = || format!("{text:?} is not an RFC 3339 time (e.g. \"2026-01-31T23:59:59Z\")");
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Result<i64, String> {
        let part = b.get(range).ok_or_else(bad)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        std::str::from_utf8(part).map_err(|_| bad())?.parse::<i64>().map_err(|_| bad())
    };
    let expect = |at: usize, allowed: &[u8]| if b.get(at).is_some_and(|c| allowed.contains(c)) { Ok(()) } else { Err(bad()) };
    let year = digits(0..4)?;
    expect(4, b"-")?;
    let month = digits(5..7)?;
    expect(7, b"-")?;
    let day = digits(8..10)?;
    expect(10, b"Tt ")?;
    let hour = digits(11..13)?;
    expect(13, b":")?;
    let minute = digits(14..16)?;
    expect(16, b":")?;
    let second = digits(17..19)?;
    let mut at = 19;
    let mut nanos: u32 = 0;
    if b.get(at) == Some(&b'.') {
        let start = at + 1;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        if end == start {
            return Err(bad());
        }
        let fraction = std::str::from_utf8(&b[start..end.min(start + 9)]).map_err(|_| bad())?;
        nanos = format!("{fraction:0<9}").parse().map_err(|_| bad())?;
        at = end;
    }
    let offset_seconds = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if at + 6 == b.len() => {
            expect(at + 3, b":")?;
            let minutes = digits(at + 1..at + 3)? * 60 + digits(at + 4..at + 6)?;
            if *sign == b'+' { minutes * 60 } else { -minutes * 60 }
        }
        _ => return Err(bad()),
    };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return Err(bad()),
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let days = days_from_civil(year, month as u32, day as u32);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    let whole = Duration::from_secs(seconds.unsigned_abs());
    let time = if seconds >= 0 { UNIX_EPOCH.checked_add(whole) } else { UNIX_EPOCH.checked_sub(whole) };
    time.and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos)))).ok_or_else(bad)
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
