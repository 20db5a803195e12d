//! Pipeline configuration: the TOML file format, its defaults, and the
//! checks `shardline validate` runs without touching the network.
//!
//! One file describes one pipeline. Parsing is two-phase: serde builds the
//! typed [`PipelineConfig`] (syntax, unknown keys, types, units), then
//! [`PipelineConfig::check`] runs the semantic checks (ranges, references,
//! the sink's and transforms' own validation). Every problem is reported
//! with the file, line and column it comes from (see [`locate`]).
//! `${VAR}` and `${VAR:-default}` are replaced from the environment first
//! (see [`interpolate`]).

mod interpolate;
mod locate;
mod model;
mod validate;

pub use locate::{Located, Locator};
pub use model::{
    InitialPosition, LeaseStoreKind, LeasesConfig, PipelineConfig, ReadMode, SourceConfig, SourceType,
    TransformConfig,
};
pub use validate::{load_file, load_str, ConfigError, Problem, BUILT_IN_SINKS};
