//! Rows of cells to one Parquet file in memory, through the Parquet
//! crate's low-level `SerializedFileWriter` and typed column writers: one
//! row group per object (a batch is bounded by `[buffer] max_bytes`),
//! pages cut by the crate (1 MiB), dictionary encoding and statistics at
//! the crate's defaults, every column compressed with one codec.
//!
//! The output depends only on the rows and the settings (no time stamps),
//! so a batch sent again produces the same bytes.

use std::sync::Arc;

use ::parquet::basic::{Compression as Codec, GzipLevel, ZstdLevel};
use ::parquet::data_type::{BoolType, ByteArray, ByteArrayType, DataType, DoubleType, Int64Type};
use ::parquet::errors::ParquetError;
use ::parquet::file::properties::{WriterProperties, WriterPropertiesPtr};
use ::parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use ::parquet::schema::types::Type;
use bytes::Bytes;

use super::convert::Cell;
use super::schema::{Column, ColumnType, Schema};
use crate::encode::Compression;

/// Writes Parquet files of one schema with one codec.
#[derive(Debug, Clone)]
pub struct FileWriter {
    schema: Arc<Schema>,
    message_type: Arc<Type>,
    properties: WriterPropertiesPtr,
}

impl FileWriter {
    /// A writer for `schema` compressing with `compression` at `level`
    /// (`None`: the codec's default; gzip 0-9, zstd 1-22).
    ///
    /// # Errors
    /// A level the codec refuses.
    pub fn new(
        schema: Arc<Schema>,
        compression: Compression,
        level: Option<i32>,
    ) -> Result<FileWriter, ParquetError> {
        let level = level.unwrap_or_else(|| compression.default_level());
        let codec = match compression {
            Compression::None => Codec::UNCOMPRESSED,
            Compression::Snappy => Codec::SNAPPY,
            Compression::Gzip => {
                Codec::GZIP(GzipLevel::try_new(u32::try_from(level).map_err(|_| {
                    ParquetError::General(format!("gzip level {level}"))
                })?)?)
            }
            Compression::Zstd => Codec::ZSTD(ZstdLevel::try_new(level)?),
        };
        let properties = WriterProperties::builder()
            .set_compression(codec)
            .set_created_by(format!(
                "shardline-sink-s3 {} (parquet-rs)",
                env!("CARGO_PKG_VERSION")
            ))
            .build();
        Ok(FileWriter {
            message_type: schema.message_type()?,
            schema,
            properties: Arc::new(properties),
        })
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// One Parquet file holding `rows` (each as [`convert`](super::convert)
    /// made it: one cell per column, in column order).
    ///
    /// # Errors
    /// An internal error of the Parquet writer, or a row whose cells do
    /// not match the schema (a bug: rows come from `convert`).
    pub fn file(&self, rows: &[Vec<Cell>]) -> Result<Bytes, ParquetError> {
        let estimate = rows.len() * self.schema.columns.len() * 8 + 1024;
        let mut writer = SerializedFileWriter::new(
            Vec::with_capacity(estimate),
            self.message_type.clone(),
            self.properties.clone(),
        )?;
        let mut group = writer.next_row_group()?;
        for (index, column) in self.schema.columns.iter().enumerate() {
            let Some(mut out) = group.next_column()? else {
                return Err(ParquetError::General(format!(
                    "the Parquet writer has no column `{}`",
                    column.name
                )));
            };
            let cells = rows.iter().map(|row| row.get(index).unwrap_or(&Cell::Null));
            let written = match column.ty {
                ColumnType::String | ColumnType::Json => {
                    write_column::<ByteArrayType>(&mut out, column, cells, |cell| match cell {
                        Cell::Text(text) => Some(ByteArray::from(text.as_bytes().to_vec())),
                        _ => None,
                    })
                }
                ColumnType::Int64 | ColumnType::TimestampMs => {
                    write_column::<Int64Type>(&mut out, column, cells, |cell| match cell {
                        Cell::Int64(n) => Some(*n),
                        _ => None,
                    })
                }
                ColumnType::Double => {
                    write_column::<DoubleType>(&mut out, column, cells, |cell| match cell {
                        Cell::Double(f) => Some(*f),
                        _ => None,
                    })
                }
                ColumnType::Bool => {
                    write_column::<BoolType>(&mut out, column, cells, |cell| match cell {
                        Cell::Bool(b) => Some(*b),
                        _ => None,
                    })
                }
            };
            written?;
            out.close()?;
        }
        group.close()?;
        Ok(Bytes::from(writer.into_inner()?))
    }
}

/// Writes one column: the non-null values, and the definition levels
/// (1 = present, 0 = null) of a nullable column.
fn write_column<'c, T: DataType>(
    out: &mut SerializedColumnWriter<'_>,
    column: &Column,
    cells: impl Iterator<Item = &'c Cell>,
    value: impl Fn(&Cell) -> Option<T::T>,
) -> Result<(), ParquetError> {
    let (low, _) = cells.size_hint();
    let mut values = Vec::with_capacity(low);
    let mut levels: Vec<i16> = Vec::with_capacity(if column.required { 0 } else { low });
    for cell in cells {
        match (value(cell), cell) {
            (Some(v), _) => {
                values.push(v);
                if !column.required {
                    levels.push(1);
                }
            }
            (None, Cell::Null) if !column.required => levels.push(0),
            (None, _) => {
                return Err(ParquetError::General(format!(
                    "a row's cell {cell:?} does not fit column `{}` ({})",
                    column.name,
                    column.ty.name()
                )))
            }
        }
    }
    out.typed::<T>().write_batch(
        &values,
        (!column.required).then_some(levels.as_slice()),
        None,
    )?;
    Ok(())
}
