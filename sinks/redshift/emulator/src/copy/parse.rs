//! Parsing Redshift's `COPY <table> [(columns)] FROM 's3://...' options`.
//!
//! The options understood are the ones a loader uses with text formats:
//! `IAM_ROLE`, `CREDENTIALS`, `ACCESS_KEY_ID`/`SECRET_ACCESS_KEY`/`SESSION_TOKEN`,
//! `MANIFEST`, `FORMAT [AS] JSON 'auto'|'auto ignorecase'|'s3://jsonpaths'`,
//! `JSON ...`, `FORMAT [AS] CSV`/`CSV [QUOTE [AS] 'c']`, `DELIMITER`,
//! `GZIP`, `IGNOREHEADER`, `TIMEFORMAT`, `DATEFORMAT`, `REGION`, `MAXERROR`,
//! `NULL AS`, `TRUNCATECOLUMNS`, `BLANKSASNULL`, `EMPTYASNULL`,
//! `ACCEPTINVCHARS`, `COMPUPDATE`, `STATUPDATE`. Others are syntax errors,
//! as an unknown option is on Redshift.

/// How records are read from the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Delimited text (the default; `|` unless `DELIMITER`).
    Text,
    /// CSV with a quote character.
    Csv {
        /// The quote character (default `"`).
        quote: char,
    },
    /// JSON objects mapped by key (`'auto'`).
    JsonAuto {
        /// `'auto ignorecase'`.
        ignore_case: bool,
    },
    /// JSON mapped through a JSONPaths file at this S3 URL.
    JsonPaths(String),
}

/// How the COPY authorises its S3 reads (checked for form, not used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// `IAM_ROLE 'arn'` or `IAM_ROLE default`.
    IamRole(String),
    /// `CREDENTIALS 'aws_iam_role=...'` or key pairs, or the key options.
    Keys,
}

/// A parsed COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyCommand {
    /// The table as written (`events`, `public.events`, `"Events"`).
    pub table: String,
    /// The column list, when given (lowercased unless quoted).
    pub columns: Option<Vec<String>>,
    /// The `FROM` URL: an object prefix, or the manifest with `MANIFEST`.
    pub from: String,
    /// `MANIFEST`.
    pub manifest: bool,
    /// The format.
    pub format: Format,
    /// `DELIMITER`.
    pub delimiter: Option<char>,
    /// `GZIP`.
    pub gzip: bool,
    /// `IGNOREHEADER n`.
    pub ignore_header: u64,
    /// `TIMEFORMAT`.
    pub time_format: Option<String>,
    /// `DATEFORMAT`.
    pub date_format: Option<String>,
    /// `NULL AS`.
    pub null_as: Option<String>,
    /// `TRUNCATECOLUMNS`.
    pub truncate_columns: bool,
    /// `BLANKSASNULL`.
    pub blanks_as_null: bool,
    /// `EMPTYASNULL`.
    pub empty_as_null: bool,
    /// `MAXERROR`.
    pub max_error: u64,
    /// How S3 access was authorised.
    pub authorization: Authorization,
}

/// A COPY the parser refused, with Redshift-like text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SyntaxError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Ident(String),
    Open,
    Close,
    Comma,
    Semicolon,
}

/// Tokens with the byte span of each.
fn tokenize(sql: &str) -> Result<Vec<(Token, std::ops::Range<usize>)>, SyntaxError> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'(' | b')' | b',' | b';' => {
                i += 1;
                let token = match c {
                    b'(' => Token::Open,
                    b')' => Token::Close,
                    b',' => Token::Comma,
                    _ => Token::Semicolon,
                };
                out.push((token, start..i));
            }
            b'\'' | b'"' => {
                let mut text = String::new();
                i += 1;
                loop {
                    let Some(ch) = sql[i..].chars().next() else {
                        return Err(SyntaxError("unterminated quoted string".into()));
                    };
                    i += ch.len_utf8();
                    if ch == c as char {
                        if bytes.get(i) == Some(&c) {
                            text.push(ch);
                            i += 1;
                            continue;
                        }
                        break;
                    }
                    if ch == '\\' && c == b'\'' {
                        if let Some(next) = sql[i..].chars().next() {
                            match next {
                                't' => text.push('\t'),
                                'n' => text.push('\n'),
                                'r' => text.push('\r'),
                                '\\' | '\'' => text.push(next),
                                other => {
                                    text.push('\\');
                                    text.push(other);
                                }
                            }
                            i += next.len_utf8();
                            continue;
                        }
                    }
                    text.push(ch);
                }
                out.push((if c == b'\'' { Token::Quoted(text) } else { Token::Ident(text) }, start..i));
            }
            _ => {
                while i < bytes.len() && !matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r' | b'(' | b')' | b',' | b';' | b'\'') {
                    if bytes[i] == b'"' {
                        // a quoted part of a dotted name: `public."Events"`
                        i += 1;
                        while i < bytes.len() && bytes[i] != b'"' {
                            i += 1;
                        }
                    }
                    i += 1;
                }
                out.push((Token::Word(sql[start..i.min(sql.len())].to_owned()), start..i.min(sql.len())));
            }
        }
    }
    Ok(out)
}

/// Whether `sql` is a COPY statement (the server runs those itself).
pub fn is_copy(sql: &str) -> bool {
    matches!(tokenize(sql).ok().and_then(|t| t.into_iter().next()), Some((Token::Word(w), _)) if w.eq_ignore_ascii_case("copy"))
}

/// `sql` with the literals of credential options replaced by `'***'`, for
/// display in DescribeStatement.
pub fn redact(sql: &str) -> String {
    let Ok(tokens) = tokenize(sql) else { return sql.to_owned() };
    if !is_copy(sql) {
        return sql.to_owned();
    }
    let mut out = sql.to_owned();
    let mut spans = Vec::new();
    for pair in tokens.windows(3) {
        if let (Token::Word(w), _) = &pair[0] {
            let secret = ["credentials", "access_key_id", "secret_access_key", "session_token"].iter().any(|k| w.eq_ignore_ascii_case(k));
            if secret {
                for (token, span) in &pair[1..] {
                    if matches!(token, Token::Quoted(_)) {
                        spans.push(span.clone());
                        break;
                    }
                }
            }
        }
    }
    spans.sort_by_key(|s| std::cmp::Reverse(s.start));
    spans.dedup();
    for span in spans {
        out.replace_range(span, "'***'");
    }
    out
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn error_here(&self) -> SyntaxError {
        match self.tokens.get(self.at.saturating_sub(1)) {
            Some(Token::Word(w) | Token::Ident(w)) => SyntaxError(format!("syntax error at or near \"{w}\"")),
            Some(Token::Quoted(q)) => SyntaxError(format!("syntax error at or near \"'{q}'\"")),
            Some(t) => SyntaxError(format!("syntax error at or near {t:?}")),
            None => SyntaxError("syntax error at end of input".into()),
        }
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word)) {
            self.at += 1;
            return true;
        }
        false
    }

    fn expect_keyword(&mut self, word: &str) -> Result<(), SyntaxError> {
        if self.keyword(word) {
            Ok(())
        } else {
            self.at += 1;
            Err(self.error_here())
        }
    }

    fn quoted(&mut self) -> Result<String, SyntaxError> {
        self.keyword("as");
        match self.next() {
            Some(Token::Quoted(q)) => Ok(q),
            _ => Err(self.error_here()),
        }
    }

    fn number(&mut self) -> Result<u64, SyntaxError> {
        self.keyword("as");
        match self.next() {
            Some(Token::Word(w)) => w.parse().map_err(|_| self.error_here()),
            _ => Err(self.error_here()),
        }
    }

    fn single_char(&mut self, what: &str) -> Result<char, SyntaxError> {
        let text = self.quoted()?;
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => Ok(c),
            _ => Err(SyntaxError(format!("{what} must be a single character"))),
        }
    }
}

/// Parses a COPY statement.
///
/// # Errors
/// A [`SyntaxError`] with Redshift-like text.
pub fn parse(sql: &str) -> Result<CopyCommand, SyntaxError> {
    let tokens = tokenize(sql)?.into_iter().map(|(t, _)| t).collect();
    let mut p = Parser { tokens, at: 0 };
    p.expect_keyword("copy")?;
    let table = match p.next() {
        Some(Token::Word(w)) => w,
        Some(Token::Ident(i)) => format!("\"{}\"", i.replace('"', "\"\"")),
        _ => return Err(p.error_here()),
    };
    let mut columns = None;
    if p.peek() == Some(&Token::Open) {
        p.at += 1;
        let mut list = Vec::new();
        loop {
            match p.next() {
                Some(Token::Word(w)) => list.push(w.to_lowercase()),
                Some(Token::Ident(i)) => list.push(i),
                _ => return Err(p.error_here()),
            }
            match p.next() {
                Some(Token::Comma) => continue,
                Some(Token::Close) => break,
                _ => return Err(p.error_here()),
            }
        }
        columns = Some(list);
    }
    p.expect_keyword("from")?;
    let from = match p.next() {
        Some(Token::Quoted(q)) => q,
        _ => return Err(p.error_here()),
    };
    let mut copy = CopyCommand {
        table,
        columns,
        from,
        manifest: false,
        format: Format::Text,
        delimiter: None,
        gzip: false,
        ignore_header: 0,
        time_format: None,
        date_format: None,
        null_as: None,
        truncate_columns: false,
        blanks_as_null: false,
        empty_as_null: false,
        max_error: 0,
        authorization: Authorization::Keys,
    };
    let mut authorized = false;
    while let Some(token) = p.next() {
        let word = match token {
            Token::Word(w) => w.to_ascii_lowercase(),
            Token::Semicolon if p.peek().is_none() => break,
            _ => return Err(p.error_here()),
        };
        match word.as_str() {
            "iam_role" => {
                let role = if p.keyword("default") { "default".to_owned() } else { p.quoted()? };
                copy.authorization = Authorization::IamRole(role);
                authorized = true;
            }
            "credentials" | "with" if word == "credentials" || p.keyword("credentials") => {
                let text = p.quoted()?;
                if let Some(role) = text.strip_prefix("aws_iam_role=") {
                    copy.authorization = Authorization::IamRole(role.to_owned());
                } else if !(text.contains("aws_access_key_id=") && text.contains("aws_secret_access_key=")) {
                    return Err(SyntaxError(
                        "Invalid credentials. Must be of the format: credentials 'aws_iam_role=...' or 'aws_access_key_id=...;aws_secret_access_key=...[;token=...]'".into(),
                    ));
                }
                authorized = true;
            }
            "access_key_id" | "secret_access_key" | "session_token" => {
                p.quoted()?;
                authorized = true;
            }
            "manifest" => copy.manifest = true,
            "format" => {
                p.keyword("as");
                match p.next() {
                    Some(Token::Word(w)) if w.eq_ignore_ascii_case("json") => copy.format = json_format(&mut p)?,
                    Some(Token::Word(w)) if w.eq_ignore_ascii_case("csv") => copy.format = csv_format(&mut p)?,
                    Some(Token::Word(w)) => return Err(SyntaxError(format!("FORMAT {w} is not supported by this emulator"))),
                    _ => return Err(p.error_here()),
                }
            }
            "json" => copy.format = json_format(&mut p)?,
            "csv" => copy.format = csv_format(&mut p)?,
            "delimiter" => copy.delimiter = Some(p.single_char("DELIMITER")?),
            "gzip" => copy.gzip = true,
            "bzip2" | "lzop" | "zstd" => return Err(SyntaxError(format!("{} is not supported by this emulator", word.to_uppercase()))),
            "ignoreheader" => copy.ignore_header = p.number()?,
            "timeformat" => copy.time_format = Some(p.quoted()?),
            "dateformat" => copy.date_format = Some(p.quoted()?),
            "region" => {
                p.quoted()?;
            }
            "maxerror" => copy.max_error = p.number()?,
            "null" => copy.null_as = Some(p.quoted()?),
            "truncatecolumns" => copy.truncate_columns = true,
            "blanksasnull" => copy.blanks_as_null = true,
            "emptyasnull" => copy.empty_as_null = true,
            "acceptinvchars" => {
                if matches!(p.peek(), Some(Token::Quoted(_))) || matches!(p.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case("as")) {
                    p.quoted()?;
                }
            }
            "acceptanydate" | "trimblanks" | "ignoreblanklines" | "explicit_ids" | "fillrecord" => {}
            "compupdate" | "statupdate" => {
                let _ = p.keyword("on") || p.keyword("off") || p.keyword("true") || p.keyword("false") || p.keyword("preset");
            }
            _ => return Err(p.error_here()),
        }
    }
    if !authorized {
        return Err(SyntaxError("Missing credentials: COPY needs IAM_ROLE, CREDENTIALS or ACCESS_KEY_ID/SECRET_ACCESS_KEY".into()));
    }
    if !copy.from.starts_with("s3://") {
        return Err(SyntaxError(format!("Invalid S3 location: {}; this emulator loads from s3:// only", copy.from)));
    }
    Ok(copy)
}

fn json_format(p: &mut Parser) -> Result<Format, SyntaxError> {
    if !matches!(p.peek(), Some(Token::Quoted(_))) && !matches!(p.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case("as")) {
        return Ok(Format::JsonAuto { ignore_case: false });
    }
    let spec = p.quoted()?;
    match spec.to_ascii_lowercase().as_str() {
        "auto" => Ok(Format::JsonAuto { ignore_case: false }),
        "auto ignorecase" => Ok(Format::JsonAuto { ignore_case: true }),
        _ if spec.starts_with("s3://") => Ok(Format::JsonPaths(spec)),
        _ => Err(SyntaxError(format!("Invalid JSON option '{spec}': expected 'auto', 'auto ignorecase' or an s3:// JSONPaths file"))),
    }
}

fn csv_format(p: &mut Parser) -> Result<Format, SyntaxError> {
    let quote = if p.keyword("quote") { p.single_char("QUOTE")? } else { '"' };
    Ok(Format::Csv { quote })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sql: &str) -> CopyCommand {
        parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    #[test]
    fn a_manifest_json_copy_parses() {
        let c = ok("COPY public.events (id, Name) FROM 's3://b/p/x.manifest' IAM_ROLE 'arn:aws:iam::1:role/r' FORMAT AS JSON 'auto' GZIP MANIFEST TIMEFORMAT 'auto';");
        assert_eq!(c.table, "public.events");
        assert_eq!(c.columns, Some(vec!["id".to_owned(), "name".to_owned()]));
        assert_eq!(c.from, "s3://b/p/x.manifest");
        assert!(c.manifest && c.gzip);
        assert_eq!(c.format, Format::JsonAuto { ignore_case: false });
        assert_eq!(c.authorization, Authorization::IamRole("arn:aws:iam::1:role/r".into()));
        assert_eq!(c.time_format.as_deref(), Some("auto"));
    }

    #[test]
    fn csv_delimiter_and_credentials_parse() {
        let c = ok("copy t from 's3://b/k' credentials 'aws_access_key_id=A;aws_secret_access_key=B;token=C' csv quote as '''' delimiter ';' ignoreheader 1");
        assert_eq!(c.format, Format::Csv { quote: '\'' });
        assert_eq!(c.delimiter, Some(';'));
        assert_eq!(c.ignore_header, 1);
        assert!(!c.manifest);
        let c = ok("copy \"Ev\" from 's3://b/k' access_key_id 'a' secret_access_key 'b' session_token 'c' json 's3://b/paths.json'");
        assert_eq!(c.table, "\"Ev\"");
        assert_eq!(c.format, Format::JsonPaths("s3://b/paths.json".into()));
    }

    #[test]
    fn bad_copies_are_syntax_errors() {
        assert!(parse("copy t from 's3://b/k' iam_role 'r' bogus").unwrap_err().0.contains("\"bogus\""));
        assert!(parse("copy t from 's3://b/k'").unwrap_err().0.contains("credentials"));
        assert!(parse("copy t from '/tmp/x' iam_role default").is_err());
        assert!(parse("copy t from 's3://b/k' iam_role 'r' delimiter 'ab'").is_err());
    }

    #[test]
    fn secrets_are_redacted() {
        let sql = "COPY t FROM 's3://b/m' ACCESS_KEY_ID 'AKIA' SECRET_ACCESS_KEY 'sec''ret' SESSION_TOKEN 'tok' MANIFEST";
        assert_eq!(redact(sql), "COPY t FROM 's3://b/m' ACCESS_KEY_ID '***' SECRET_ACCESS_KEY '***' SESSION_TOKEN '***' MANIFEST");
        assert_eq!(redact("select 'secret_access_key'"), "select 'secret_access_key'");
        assert!(is_copy("  -- hi\n copy t from 's3://x' iam_role default"));
        assert!(!is_copy("select 1"));
    }
}
