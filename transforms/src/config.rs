//! Turning a transform entry's TOML options into its typed config.

use serde::de::DeserializeOwned;

use crate::TransformBuildError;

/// Deserializes `config` (minus a `type` key) into `T`.
pub(crate) fn parse<T: DeserializeOwned>(type_name: &str, config: &toml::Table) -> Result<T, TransformBuildError> {
    let mut options = config.clone();
    options.remove("type");
    toml::Value::Table(options)
        .try_into()
        .map_err(|e: toml::de::Error| TransformBuildError::InvalidConfig {
            type_name: type_name.to_owned(),
            message: e.message().to_owned(),
        })
}
