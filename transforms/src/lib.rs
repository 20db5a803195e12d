//! Shardline's record transforms, one module per transform.
//!
//! A pipeline's `[[transforms]]` entries name a transform by `type` and
//! carry its options; [`validate`] checks such an entry without I/O (used by
//! `shardline validate`) and [`build`] makes one instance (one per shard
//! worker, so a transform may keep per-shard state).
#![warn(missing_docs)]

mod config;
pub mod encode_json;
pub mod parse_json;
pub mod split;

use shardline_api::Transform;

/// Every transform type this crate knows, as written in configuration.
pub const KNOWN: &[&str] = &[parse_json::NAME, encode_json::NAME, split::NAME];

/// A transform entry that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformBuildError {
    /// No transform has this type name.
    #[error("unknown transform type {type_name:?}; known types: {known}")]
    UnknownType {
        /// The rejected type name.
        type_name: String,
        /// The known type names, comma separated.
        known: String,
    },
    /// The options do not fit the transform (unknown key, wrong type…).
    #[error("invalid options for transform {type_name:?}: {message}")]
    InvalidConfig {
        /// The transform's type name.
        type_name: String,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// Checks a transform entry without building it: the type exists and the
/// options deserialize. Does no I/O.
///
/// `config` holds the entry's options (the `type` key, if still present, is
/// ignored).
///
/// # Errors
/// [`TransformBuildError::UnknownType`] listing the known types, or
/// [`TransformBuildError::InvalidConfig`] naming the offending key.
pub fn validate(type_name: &str, config: &toml::Table) -> Result<(), TransformBuildError> {
    build(type_name, config).map(|_| ())
}

/// Builds one instance of a transform.
///
/// `config` holds the entry's options (the `type` key, if still present, is
/// ignored).
///
/// # Errors
/// As [`validate`].
pub fn build(type_name: &str, config: &toml::Table) -> Result<Box<dyn Transform>, TransformBuildError> {
    match type_name {
        parse_json::NAME => Ok(Box::new(parse_json::ParseJson::new(config::parse(type_name, config)?))),
        encode_json::NAME => Ok(Box::new(encode_json::EncodeJson::new(config::parse(type_name, config)?))),
        split::NAME => Ok(Box::new(split::Split::new(config::parse(type_name, config)?))),
        other => Err(TransformBuildError::UnknownType { type_name: other.to_owned(), known: KNOWN.join(", ") }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        text.parse().expect("test TOML parses")
    }

    #[test]
    fn unknown_type_lists_known_ones() {
        let err = build("parse_jsn", &toml::Table::new()).err().expect("unknown type is an error");
        let text = err.to_string();
        assert!(text.contains("\"parse_jsn\""), "{text}");
        for known in KNOWN {
            assert!(text.contains(known), "{text}");
        }
    }

    #[test]
    fn every_known_type_builds_with_no_options() {
        for name in KNOWN {
            let t = build(name, &toml::Table::new()).expect("builds");
            assert_eq!(t.name(), *name);
            validate(name, &table("type = \"x\"")).expect("type key is ignored");
        }
    }

    #[test]
    fn unknown_option_is_rejected() {
        for name in KNOWN {
            let err = validate(name, &table("colour = \"red\"")).expect_err("unknown key rejected");
            assert!(err.to_string().contains("colour"), "{err}");
        }
    }
}
