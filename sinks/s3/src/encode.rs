//! Turning records into an object body: each record becomes a row
//! ([`Encoder::row`]: NDJSON line, CSV line, raw bytes or Parquet cells,
//! or the reason it cannot be written), and rows are joined and compressed
//! ([`Encoder::body`]: none, gzip or zstd), or written as one Parquet file
//! ([`Encoder::parquet_body`], see [`crate::parquet`]).
//!
//! Output is deterministic (gzip headers carry no time stamp), so a batch
//! sent again produces the same bytes.

use std::borrow::Cow;
use std::io::Write;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use shardline_plugin_sdk::{Payload, Record};

use crate::parquet::{Cell, FileWriter};
use crate::template::lookup;

/// How records are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// One compact JSON document a line; records must be JSON.
    #[default]
    Ndjson,
    /// CSV lines of chosen fields of JSON objects.
    Csv,
    /// The payload bytes, each followed by a delimiter.
    Raw,
    /// One Parquet file per object, columns from `[sink.parquet]`; records
    /// must be JSON objects that fit the schema.
    Parquet,
}

impl Encoding {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Encoding::Ndjson => ".ndjson",
            Encoding::Csv => ".csv",
            Encoding::Raw => ".raw",
            Encoding::Parquet => ".parquet",
        }
    }

    /// The default compression: `snappy` for Parquet, `gzip` otherwise.
    pub fn default_compression(self) -> Compression {
        match self {
            Encoding::Parquet => Compression::Snappy,
            Encoding::Ndjson | Encoding::Csv | Encoding::Raw => Compression::Gzip,
        }
    }

    /// The object's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Ndjson => "application/x-ndjson",
            Encoding::Csv => "text/csv; charset=utf-8",
            Encoding::Raw => "application/octet-stream",
            Encoding::Parquet => crate::parquet::CONTENT_TYPE,
        }
    }
}

/// How bodies are compressed (with Parquet: the column codec).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Stored as is.
    None,
    /// gzip (RFC 1952), through flate2's pure-Rust backend.
    Gzip,
    /// Zstandard, through libzstd.
    Zstd,
    /// Snappy: Parquet's column codec only (the default there).
    Snappy,
}

impl Compression {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None | Compression::Snappy => "",
            Compression::Gzip => ".gz",
            Compression::Zstd => ".zst",
        }
    }

    /// Parses a configured name (`none`, `gzip`, `zstd`, `snappy`).
    ///
    /// # Errors
    /// An unknown name.
    pub fn parse(name: &str) -> Result<Compression, String> {
        Ok(match name {
            "none" => Compression::None,
            "gzip" => Compression::Gzip,
            "zstd" => Compression::Zstd,
            "snappy" => Compression::Snappy,
            other => return Err(format!("unknown compression `{other}`")),
        })
    }

    /// The `Content-Encoding`, if any.
    pub fn content_encoding(self) -> Option<&'static str> {
        match self {
            Compression::None | Compression::Snappy => None,
            Compression::Gzip => Some("gzip"),
            Compression::Zstd => Some("zstd"),
        }
    }

    /// The level used when none is configured. gzip: 5, not zlib's 6:
    /// with the zlib-rs backend level 5 compresses 1 KiB JSON events at
    /// ~57 MB/s per core against ~36 MB/s at 6, for objects ~8 % larger
    /// (`cargo bench -p shardline-sink-s3 --bench encode`).
    pub fn default_level(self) -> i32 {
        match self {
            Compression::None | Compression::Snappy => 0,
            Compression::Gzip => 5,
            Compression::Zstd => 3,
        }
    }

    /// Checks a configured level.
    ///
    /// # Errors
    /// The accepted range.
    pub fn check_level(self, level: i32) -> Result<(), String> {
        let (range, name) = match self {
            Compression::None => return Err("has no meaning with compression = \"none\"".to_owned()),
            Compression::Snappy => return Err("has no meaning with compression = \"snappy\" (snappy has no levels)".to_owned()),
            Compression::Gzip => (0..=9, "gzip"),
            Compression::Zstd => (1..=19, "zstd"),
        };
        if range.contains(&level) {
            Ok(())
        } else {
            Err(format!("{name} levels are {} to {}, not {level}", range.start(), range.end()))
        }
    }
}

/// Writing a body failed (only an internal error of the compressor or
/// of the Parquet writer).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The compressor failed.
    #[error("{compression:?} compression failed: {source}")]
    Compress {
        /// The algorithm.
        compression: Compression,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Parquet writer failed.
    #[error("writing a Parquet file of {rows} rows failed: {source}")]
    Parquet {
        /// Rows of the file.
        rows: usize,
        /// The cause.
        #[source]
        source: ::parquet::errors::ParquetError,
    },
}

/// A record ready to be written: its row and, when the key template needs
/// it, its JSON value.
#[derive(Debug, Clone)]
pub struct Row {
    /// The encoded record, without the delimiter that follows it (empty
    /// with Parquet).
    pub bytes: Bytes,
    /// The record's cells, one per column (Parquet only, else empty).
    pub cells: Vec<Cell>,
    /// The parsed payload (only when asked for).
    pub value: Option<Value>,
}

/// Encodes records and bodies for one sink.
#[derive(Debug, Clone)]
pub struct Encoder {
    encoding: Encoding,
    csv_fields: Vec<Vec<String>>,
    csv_header: Option<Bytes>,
    delimiter: Bytes,
    compression: Compression,
    level: i32,
    parquet: Option<FileWriter>,
}

impl Encoder {
    /// An encoder. `csv_fields` are dotted paths; `level` `None` uses the
    /// compression's default.
    pub fn new(encoding: Encoding, csv_fields: &[String], csv_header: bool, raw_delimiter: &str, compression: Compression, level: Option<i32>) -> Encoder {
        let csv_header = (encoding == Encoding::Csv && csv_header).then(|| {
            let mut line = Vec::new();
            for (i, name) in csv_fields.iter().enumerate() {
                if i > 0 {
                    line.push(b',');
                }
                csv_cell(&mut line, name);
            }
            line.push(b'\n');
            Bytes::from(line)
        });
        let delimiter = match encoding {
            Encoding::Raw => Bytes::copy_from_slice(raw_delimiter.as_bytes()),
            Encoding::Ndjson | Encoding::Csv => Bytes::from_static(b"\n"),
            Encoding::Parquet => Bytes::new(),
        };
        Encoder {
            encoding,
            csv_fields: csv_fields.iter().map(|f| f.split('.').map(str::to_owned).collect()).collect(),
            csv_header,
            delimiter,
            compression,
            level: level.unwrap_or_else(|| compression.default_level()),
            parquet: None,
        }
    }

    /// A Parquet encoder: `writer` holds the schema and the column codec.
    pub fn parquet(writer: FileWriter) -> Encoder {
        let mut encoder = Encoder::new(Encoding::Parquet, &[], false, "", Compression::None, None);
        encoder.parquet = Some(writer);
        encoder
    }

    /// The Parquet writer, with `encoding = "parquet"`.
    pub fn parquet_writer(&self) -> Option<&FileWriter> {
        self.parquet.as_ref()
    }

    /// The row of one record; with `want_value` also its JSON value.
    ///
    /// # Errors
    /// Why the record cannot be written (a dead-letter reason): not JSON
    /// when the encoding or the key template needs JSON, not an object for
    /// CSV, a [`Misfit`](crate::parquet::Misfit) for Parquet.
    pub fn row(&self, record: &Record, want_value: bool) -> Result<Row, String> {
        let needs_json = want_value || self.encoding != Encoding::Raw;
        if !needs_json {
            return Ok(Row { bytes: record.payload.to_bytes(), cells: Vec::new(), value: None });
        }
        let why = match self.encoding {
            Encoding::Ndjson => "encoding = \"ndjson\" needs JSON",
            Encoding::Csv => "encoding = \"csv\" needs JSON objects",
            Encoding::Raw => "the key template's {field.*} placeholders need JSON",
            Encoding::Parquet => "encoding = \"parquet\" needs JSON objects",
        };
        let (value, raw): (Cow<'_, Value>, Option<Bytes>) = match &record.payload {
            Payload::Json(value) => (Cow::Borrowed(value), None),
            Payload::Bytes(bytes) => {
                // NDJSON rows are the payload itself unless it spans lines:
                // validating without building a value is much cheaper.
                let plain_line = !bytes.iter().any(|b| *b == b'\n' || *b == b'\r');
                if self.encoding == Encoding::Ndjson && !want_value && plain_line {
                    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| format!("record is not valid JSON ({why}): {e}"))?;
                    return Ok(Row { bytes: bytes.clone(), cells: Vec::new(), value: None });
                }
                let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("record is not valid JSON ({why}): {e}"))?;
                (Cow::Owned(value), plain_line.then(|| bytes.clone()))
            }
        };
        let mut cells = Vec::new();
        let bytes = match self.encoding {
            Encoding::Parquet => {
                let writer = self.parquet.as_ref().ok_or("encoding = \"parquet\" without a [sink.parquet] schema")?;
                cells = crate::parquet::convert(writer.schema(), &value).map_err(|misfit| misfit.to_string())?;
                Bytes::new()
            }
            Encoding::Ndjson => match raw {
                Some(bytes) => bytes,
                None => Bytes::from(serde_json::to_vec(&*value).map_err(|e| format!("record cannot be written as JSON: {e}"))?),
            },
            Encoding::Csv => {
                if !value.is_object() {
                    return Err(format!("record is not a JSON object ({why})"));
                }
                Bytes::from(self.csv_row(&value))
            }
            Encoding::Raw => record.payload.to_bytes(),
        };
        Ok(Row { bytes, cells, value: want_value.then(|| value.into_owned()) })
    }

    fn csv_row(&self, object: &Value) -> Vec<u8> {
        let mut line = Vec::with_capacity(64);
        for (i, path) in self.csv_fields.iter().enumerate() {
            if i > 0 {
                line.push(b',');
            }
            match lookup(object, path) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => csv_cell(&mut line, s),
                Some(other) => csv_cell(&mut line, &other.to_string()),
            }
        }
        line
    }

    /// The compressed body of `rows`: the CSV header (if any), then every
    /// row followed by the delimiter.
    ///
    /// # Errors
    /// When the compressor fails.
    pub fn body<'r>(&self, rows: impl IntoIterator<Item = &'r Bytes>, size_hint: usize) -> Result<Bytes, EncodeError> {
        let fail = |source| EncodeError::Compress { compression: self.compression, source };
        let out = Vec::with_capacity(match self.compression {
            Compression::None => size_hint + size_hint / 16,
            _ => size_hint / 4 + 64,
        });
        let body = match self.compression {
            Compression::None => self.write_rows(out, rows).map_err(fail)?,
            Compression::Snappy => return Err(fail(std::io::Error::other("snappy is only a Parquet column codec"))),
            Compression::Gzip => {
                let level = flate2::Compression::new(u32::try_from(self.level).unwrap_or(5));
                let encoder = flate2::write::GzEncoder::new(out, level);
                self.write_rows(encoder, rows).map_err(fail)?.finish().map_err(fail)?
            }
            Compression::Zstd => {
                let mut encoder = zstd::stream::write::Encoder::new(out, self.level).map_err(fail)?;
                // The decompressed size in the frame header lets readers allocate once;
                // it is unknown when streaming, so leave it out.
                encoder.include_checksum(true).map_err(fail)?;
                self.write_rows(encoder, rows).map_err(fail)?.finish().map_err(fail)?
            }
        };
        Ok(Bytes::from(body))
    }

    /// One Parquet file of `rows` (the cells of [`Row`]s).
    ///
    /// # Errors
    /// When the Parquet writer fails, or this is not a Parquet encoder.
    pub fn parquet_body(&self, rows: &[Vec<Cell>]) -> Result<Bytes, EncodeError> {
        let fail = |source| EncodeError::Parquet { rows: rows.len(), source };
        let writer = self.parquet.as_ref().ok_or_else(|| fail(::parquet::errors::ParquetError::General("no Parquet schema".to_owned())))?;
        writer.file(rows).map_err(fail)
    }

    fn write_rows<'r, W: Write>(&self, mut out: W, rows: impl IntoIterator<Item = &'r Bytes>) -> std::io::Result<W> {
        if let Some(header) = &self.csv_header {
            out.write_all(header)?;
        }
        for row in rows {
            out.write_all(row)?;
            out.write_all(&self.delimiter)?;
        }
        Ok(out)
    }
}

/// One CSV cell (RFC 4180): quoted when it holds a comma, a quote or a
/// line break, quotes doubled.
fn csv_cell(line: &mut Vec<u8>, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        line.push(b'"');
        for b in text.bytes() {
            if b == b'"' {
                line.push(b'"');
            }
            line.push(b);
        }
        line.push(b'"');
    } else {
        line.extend_from_slice(text.as_bytes());
    }
}

#[cfg(test)]
#[path = "encode_tests.rs"]
mod tests;
