//! Redshift's `COPY ... FROM 's3://...'`, performed by the emulator itself:
//! [`parse`] the statement, read the files (and manifest) from the S3
//! emulator ([`source`]), split them into rows ([`records`]) and insert them
//! in the statement's transaction ([`load`]).

mod load;
mod parse;
mod records;
mod source;

pub use load::{run, CopyFailure};
pub use parse::{is_copy, parse, redact, Authorization, CopyCommand, Format, SyntaxError};
pub use records::{parse_path, rows, InputRow, RowError, Step};
pub use source::{gunzip, split_url};
