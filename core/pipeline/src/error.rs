//! Errors building a sink or dead-letter destination from its config.

use std::path::PathBuf;

/// A built-in sink or dead-letter destination that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An option has a value that cannot work.
    #[error("invalid {component} option {key}: {message}")]
    InvalidConfig {
        /// `sink.file`, `dead_letter.file`…
        component: &'static str,
        /// The option's key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A file or directory could not be prepared.
    #[error("{component}: cannot use {path}: {source}")]
    Io {
        /// `sink.file`, `dead_letter.file`…
        component: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl BuildError {
    /// The first problem of a `validate()` answer as a [`BuildError`].
    pub(crate) fn from_problems(component: &'static str, problems: Vec<(String, String)>) -> Self {
        let mut problems = problems.into_iter();
        match problems.next() {
            Some((key, message)) => BuildError::InvalidConfig { component, key, message },
            None => BuildError::InvalidConfig { component, key: String::new(), message: "invalid".to_owned() },
        }
    }
}
