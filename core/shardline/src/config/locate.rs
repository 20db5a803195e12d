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
    /// indexes as `name[3]`). When the last key is absent, the position of
    /// the deepest table that exists (e.g. the `[sink]` header for a missing
    /// `sink.path`).
    pub fn find(&self, path: &str) -> Option<Located> {
        self.span_of(path).map(|span| self.position(span.start))
    }

    fn span_of(&self, path: &str) -> Option<Range<usize>> {
        let document = self.document.as_ref()?;
        let mut table: &dyn TableLike = document.as_table();
        let mut best: Option<Range<usize>> = None;
        let segments: Vec<&str> = path.split('.').filter(|s| !s.is_empty()).collect();
        for (n, segment) in segments.iter().enumerate() {
            let last = n + 1 == segments.len();
            let (name, index) = split_index(segment);
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

fn split_index(segment: &str) -> (&str, Option<usize>) {
    match segment.find('[') {
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
