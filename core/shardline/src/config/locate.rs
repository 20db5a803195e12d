//! Maps a key path such as `sink.path` or `transforms[1].type` back to the
//! line and column where it is written, so every configuration error can
//! point at the place of the mistake.

use std::fmt;
use std::ops::Range;

use toml_edit::{Document, Item, TableLike, Value};

/// A 1-based line and column in a configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// Line, from 1.
    pub line: usize,
    /// Column (in characters), from 1.
    pub column: usize,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Finds positions in one configuration text.
pub struct Locator<'a> {
    text: &'a str,
    document: Option<Document<String>>,
}

impl<'a> Locator<'a> {
    /// A locator over `text`. A text that does not parse still maps byte
    /// offsets to positions; key paths then resolve to nothing.
    pub fn new(text: &'a str) -> Self {
        Locator { text, document: Document::parse(text.to_owned()).ok() }
    }

    /// Line and column of a byte offset.
    pub fn position(&self, offset: usize) -> Located {
        let offset = offset.min(self.text.len());
        let before = &self.text[..floor_char_boundary(self.text, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before[line_start..].chars().count() + 1;
        Located { line, column }
    }

    /// Position of the key at `path` (segments separated by `.`, array
    /// indexes as `name[3]`, a key holding dots quoted as in TOML:
    /// `sink.parquet.schema."geo.country"`). When the last key is absent,
    /// the position of the deepest table that exists (e.g. the `[sink]`
    /// header for a missing `sink.path`).
    pub fn find(&self, path: &str) -> Option<Located> {
        self.span_of(path).map(|span| self.position(span.start))
    }

    fn span_of(&self, path: &str) -> Option<Range<usize>> {
        let document = self.document.as_ref()?;
        let mut table: &dyn TableLike = document.as_table();
        let mut best: Option<Range<usize>> = None;
        let segments = split_path(path);
        for (n, segment) in segments.iter().enumerate() {
            let last = n + 1 == segments.len();
            let (name, index) = split_index(segment);
            let name = unquote(name);
            let name = name.as_ref();
            let Some((key, value)) = table.get_key_value(name) else {
                return best;
            };
            best = key.span().or_else(|| value.span()).or(best);
            let next: &dyn TableLike = match (index, value) {
                (Some(i), Item::ArrayOfTables(array)) => match array.get(i) {
                    Some(t) => {
                        best = t.span().or(best);
                        t
                    }
                    None => return best,
                },
                (Some(i), Item::Value(Value::Array(array))) => {
                    return array.get(i).and_then(|v| v.span()).or(best);
                }
                (Some(_), _) => return best,
                (None, item) if !last => match item.as_table_like() {
                    Some(t) => t,
                    None => return best,
                },
                (None, _) => return best,
            };
            if last {
                return best;
            }
            table = next;
        }
        best
    }
}

/// `path` cut at the dots that are outside quotes (`"..."` or `'...'`);
/// empty segments dropped.
fn split_path(path: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let (mut start, mut quote, mut escaped) = (0, None, false);
    for (i, c) in path.char_indices() {
        match (quote, c) {
            (Some('"'), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '.') => {
                segments.push(&path[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        escaped = false;
    }
    segments.push(&path[start..]);
    segments.retain(|s| !s.is_empty());
    segments
}

/// A key as written in a path: a quoted key without its quotes (basic
/// strings with `\"` and `\\` escapes), a bare key as is.
fn unquote(key: &str) -> std::borrow::Cow<'_, str> {
    if key.len() >= 2 && key.starts_with('\'') && key.ends_with('\'') {
        return key[1..key.len() - 1].into();
    }
    if key.len() >= 2 && key.starts_with('"') && key.ends_with('"') {
        let inner = &key[1..key.len() - 1];
        if !inner.contains('\\') {
            return inner.into();
        }
        let (mut out, mut chars) = (String::with_capacity(inner.len()), inner.chars());
        while let Some(c) = chars.next() {
            out.push(if c == '\\' { chars.next().unwrap_or('\\') } else { c });
        }
        return out.into();
    }
    key.into()
}

fn split_index(segment: &str) -> (&str, Option<usize>) {
    // `[` inside a quoted key is part of the key.
    let quoted_end = if segment.starts_with(['"', '\'']) { segment[1..].find(['"', '\'']).map_or(0, |i| i + 2) } else { 0 };
    match segment[quoted_end..].find('[').map(|i| i + quoted_end) {
        Some(open) if segment.ends_with(']') => {
            let index = segment[open + 1..segment.len() - 1].parse().ok();
            (&segment[..open], index)
        }
        _ => (segment, None),
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name = \"p\"\n\n[sink]\ntype = \"s3\"\nencoding = \"parquet\"\n\n[sink.parquet]\nschema = { user = \"string\", \"geo.country\" = \"strin\" }\nrequired = [\"user\", \"nope\"]\n\n[sink.parquet.more]\n\"a.b\" = 1\n'c.d' = 2\n";

    #[test]
    fn quoted_keys_with_dots_are_one_segment() {
        assert_eq!(split_path("sink.parquet.schema.\"geo.country\""), ["sink", "parquet", "schema", "\"geo.country\""]);
        assert_eq!(split_path("a.'b.c'.d"), ["a", "'b.c'", "d"]);
        assert_eq!(split_path("a.\"x\\\".y\""), ["a", "\"x\\\".y\""]);
        assert_eq!(unquote("\"x\\\".y\""), "x\".y");
        assert_eq!(split_path("transforms[1].type"), ["transforms[1]", "type"]);
        assert_eq!(split_index("\"a[1]\""), ("\"a[1]\"", None));
        assert_eq!(split_index("\"a.b\"[2]"), ("\"a.b\"", Some(2)));
    }

    #[test]
    fn finds_keys_in_inline_tables_quoted_keys_and_array_elements() {
        let locator = Locator::new(TEXT);
        let line = |path: &str| locator.find(path).map(|l| l.line);
        assert_eq!(line("sink.parquet.schema.\"geo.country\""), Some(8));
        assert!(locator.find("sink.parquet.schema.\"geo.country\"").is_some_and(|l| l.column > 20), "the quoted key, not the line start");
        assert_eq!(line("sink.parquet.schema.user"), Some(8));
        assert_eq!(line("sink.parquet.required[1]"), Some(9));
        assert!(locator.find("sink.parquet.required[1]").is_some_and(|l| l.column > 18), "the element");
        assert_eq!(line("sink.parquet.more.\"a.b\""), Some(12));
        assert_eq!(line("sink.parquet.more.'c.d'"), Some(13));
        assert_eq!(line("sink.encoding"), Some(5));
        // Read unquoted, the path would look for `geo`, then `country`: the
        // best found is the `schema` key.
        assert_eq!(locator.find("sink.parquet.schema.geo.country").map(|l| (l.line, l.column)), Some((8, 1)));
    }
}
