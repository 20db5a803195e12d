//! Splitting a loaded file into rows of text values, one per target
//! column, as Redshift's COPY does for JSON (`'auto'` or JSONPaths), CSV
//! and delimited text. Values stay text: the database casts them.

use serde_json::Value;

use super::parse::{CopyCommand, Format};

/// One input row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputRow {
    /// 1-based line of the file where the row starts.
    pub line: u64,
    /// The row's text as read (truncated for error reports).
    pub raw_line: String,
    /// One value per target column; `None` is NULL.
    pub values: Vec<Option<String>>,
}

/// A row that could not be read, as `stl_load_errors` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line.
    pub line: u64,
    /// The row text.
    pub raw_line: String,
    /// Column at fault ("" when not one column).
    pub colname: String,
    /// The field's text.
    pub raw_field_value: String,
    /// Redshift's error code.
    pub code: i32,
    /// Redshift-like reason.
    pub reason: String,
}

/// A parsed JSONPaths expression: keys and indexes from the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `.key` or `['key']`.
    Key(String),
    /// `[n]`.
    Index(usize),
}

/// Parses `$.a.b`, `$['a']["b"]`, `$.a[0]`.
///
/// # Errors
/// The reason the expression is invalid.
pub fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let rest = path.strip_prefix('$').ok_or_else(|| format!("Invalid JSONPath format: {path}: must start with $"))?;
    let chars: Vec<char> = rest.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                if i == start {
                    return Err(format!("Invalid JSONPath format: {path}: empty key"));
                }
                steps.push(Step::Key(chars[start..i].iter().collect()));
            }
            '[' => {
                let close = chars[i..].iter().position(|&c| c == ']').map(|p| p + i).ok_or_else(|| format!("Invalid JSONPath format: {path}: unclosed ["))?;
                let inner: String = chars[i + 1..close].iter().collect();
                let quoted = (inner.starts_with('\'') && inner.ends_with('\'')) || (inner.starts_with('"') && inner.ends_with('"'));
                if quoted && inner.len() >= 2 {
                    steps.push(Step::Key(inner[1..inner.len() - 1].to_owned()));
                } else {
                    let n = inner.trim().parse().map_err(|_| format!("Invalid JSONPath format: {path}: bad index {inner}"))?;
                    steps.push(Step::Index(n));
                }
                i = close + 1;
            }
            _ => return Err(format!("Invalid JSONPath format: {path}")),
        }
    }
    Ok(steps)
}

fn follow<'a>(value: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    steps.iter().try_fold(value, |v, step| match step {
        Step::Key(k) => v.get(k.as_str()),
        Step::Index(n) => v.get(*n),
    })
}

fn json_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

fn clip(text: &str) -> String {
    text.chars().take(1024).collect()
}

fn line_of(data: &str, offset: usize) -> u64 {
    data.as_bytes()[..offset.min(data.len())].iter().filter(|&&b| b == b'\n').count() as u64 + 1
}

/// The rows of one file, or the first row that cannot be read.
///
/// `columns` are the target column names; `json_paths` the parsed
/// JSONPaths file when the format uses one.
///
/// # Errors
/// The first [`RowError`].
pub fn rows(copy: &CopyCommand, data: &[u8], columns: &[String], json_paths: Option<&[Vec<Step>]>) -> Result<Vec<InputRow>, RowError> {
    let text = std::str::from_utf8(data).map_err(|e| {
        let line = line_of(&String::from_utf8_lossy(&data[..e.valid_up_to()]), e.valid_up_to());
        RowError { line, raw_line: String::new(), colname: String::new(), raw_field_value: String::new(), code: 1220, reason: "String contains invalid or unsupported UTF8 codepoints".into() }
    })?;
    match &copy.format {
        Format::JsonAuto { ignore_case } => json_rows(text, |object| {
            columns
                .iter()
                .map(|column| {
                    let found = match object {
                        Value::Object(map) if *ignore_case => map.iter().find(|(k, _)| k.to_lowercase() == *column).map(|(_, v)| v),
                        Value::Object(map) => map.get(column.as_str()),
                        _ => None,
                    };
                    found.and_then(json_text)
                })
                .collect()
        }),
        Format::JsonPaths(_) => {
            let paths = json_paths.unwrap_or_default();
            json_rows(text, |value| paths.iter().map(|p| follow(value, p).and_then(json_text)).collect())
        }
        Format::Csv { quote } => csv_rows(copy, text, columns, *quote),
        Format::Text => text_rows(copy, text, columns),
    }
}

fn json_rows(text: &str, mut map: impl FnMut(&Value) -> Vec<Option<String>>) -> Result<Vec<InputRow>, RowError> {
    let mut out = Vec::new();
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    loop {
        let start = stream.byte_offset();
        let skipped = text[start..].len() - text[start..].trim_start().len();
        let begin = start + skipped;
        match stream.next() {
            None => break,
            Some(Ok(value)) => {
                let end = stream.byte_offset();
                let raw = &text[begin..end];
                if !value.is_object() {
                    return Err(RowError { line: line_of(text, begin), raw_line: clip(raw), colname: String::new(), raw_field_value: String::new(), code: 1224, reason: "Invalid JSONPath format: Member is not an object.".into() });
                }
                out.push(InputRow { line: line_of(text, begin), raw_line: clip(raw), values: map(&value) });
            }
            Some(Err(e)) => {
                let raw_line = text[begin..].lines().next().unwrap_or_default();
                return Err(RowError { line: line_of(text, begin), raw_line: clip(raw_line), colname: String::new(), raw_field_value: String::new(), code: 1224, reason: format!("Invalid JSON object or array: {e}") });
            }
        }
    }
    Ok(out)
}

fn field_count_error(line: u64, raw: &str, found: usize, wanted: usize) -> RowError {
    let reason = if found < wanted { "Delimiter not found" } else { "Extra column(s) found" };
    RowError { line, raw_line: clip(raw), colname: String::new(), raw_field_value: String::new(), code: 1214, reason: reason.into() }
}

fn csv_rows(copy: &CopyCommand, text: &str, columns: &[String], quote: char) -> Result<Vec<InputRow>, RowError> {
    let delimiter = copy.delimiter.unwrap_or(',');
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter as u8)
        .quote(quote as u8)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut index = 0u64;
    loop {
        let position_before = reader.position().byte() as usize;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = line_of(text, position_before);
                return Err(RowError { line, raw_line: String::new(), colname: String::new(), raw_field_value: String::new(), code: 1214, reason: format!("CSV: {e}") });
            }
        }
        index += 1;
        let line = record.position().map(|p| p.line()).unwrap_or(index);
        if index <= copy.ignore_header {
            continue;
        }
        let end = reader.position().byte() as usize;
        let raw = text.get(position_before..end).unwrap_or_default().trim_end_matches(['\n', '\r']);
        if record.len() == 1 && record.get(0).is_some_and(str::is_empty) && columns.len() > 1 {
            continue; // a blank line
        }
        if record.len() != columns.len() {
            return Err(field_count_error(line, raw, record.len(), columns.len()));
        }
        let values = record.iter().map(|f| if copy.null_as.as_deref() == Some(f) { None } else { Some(f.to_owned()) }).collect();
        out.push(InputRow { line, raw_line: clip(raw), values });
    }
    Ok(out)
}

fn text_rows(copy: &CopyCommand, text: &str, columns: &[String]) -> Result<Vec<InputRow>, RowError> {
    let delimiter = copy.delimiter.unwrap_or('|');
    let null_as = copy.null_as.as_deref().unwrap_or("\\N");
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i as u64 + 1;
        if line <= copy.ignore_header || raw.is_empty() {
            continue;
        }
        let fields: Vec<&str> = raw.split(delimiter).collect();
        if fields.len() != columns.len() {
            return Err(field_count_error(line, raw, fields.len(), columns.len()));
        }
        let values = fields.iter().map(|f| if *f == null_as { None } else { Some((*f).to_owned()) }).collect();
        out.push(InputRow { line, raw_line: clip(raw), values });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::parse::parse;

    fn cols(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn json_auto_maps_lowercase_keys_and_reports_lines() {
        let copy = parse("copy t from 's3://b/m' iam_role default json 'auto'").unwrap_or_else(|e| panic!("{e}"));
        let data = b"{\"id\":1,\"name\":\"a\",\"Extra\":true}\n{\"id\":2,\"tags\":[1,2]}\n";
        let got = rows(&copy, data, &cols(&["id", "name", "tags"]), None).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].values, vec![Some("1".into()), Some("a".into()), None]);
        assert_eq!(got[1].values, vec![Some("2".into()), None, Some("[1,2]".into())]);
        assert_eq!(got[1].line, 2);
        let bad = rows(&copy, b"{\"id\":1}\n{\"id\": oops}\n", &cols(&["id"]), None).unwrap_err();
        assert_eq!((bad.line, bad.code), (2, 1224));
    }

    #[test]
    fn json_paths_follow_keys_and_indexes() {
        let steps = parse_path("$['a'].b[1]").unwrap_or_default();
        assert_eq!(steps, vec![Step::Key("a".into()), Step::Key("b".into()), Step::Index(1)]);
        let copy = parse("copy t from 's3://b/m' iam_role default json 's3://b/p.json'").unwrap_or_else(|e| panic!("{e}"));
        let paths = vec![parse_path("$.a.b[1]").unwrap_or_default(), parse_path("$.c").unwrap_or_default()];
        let got = rows(&copy, br#"{"a":{"b":[0,"x"]}}"#, &cols(&["x", "c"]), Some(&paths)).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(got[0].values, vec![Some("x".into()), None]);
        assert!(parse_path("a.b").is_err());
    }

    #[test]
    fn csv_and_text_split_fields() {
        let copy = parse("copy t from 's3://b/m' iam_role default csv ignoreheader 1").unwrap_or_else(|e| panic!("{e}"));
        let rows_read = rows(&copy, b"id,name\n1,\"a,b\"\n2,\n", &cols(&["id", "name"]), None).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(rows_read.iter().map(|r| r.values.clone()).collect::<Vec<_>>(), vec![vec![Some("1".into()), Some("a,b".into())], vec![Some("2".into()), Some(String::new())]]);
        assert_eq!(rows_read[0].line, 2);
        let err = rows(&copy, b"h\n1,2,3\n", &cols(&["id", "name"]), None).unwrap_err();
        assert_eq!((err.line, err.reason.as_str()), (2, "Extra column(s) found"));
        let copy = parse("copy t from 's3://b/m' iam_role default delimiter '\\t'").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(copy.delimiter, Some('\t'));
        let copy = parse("copy t from 's3://b/m' iam_role default").unwrap_or_else(|e| panic!("{e}"));
        let r = rows(&copy, b"1|\\N\n", &cols(&["a", "b"]), None).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(r[0].values, vec![Some("1".into()), None]);
    }
}
