//! Turning a transform entry's TOML options into its typed config, with
//! the offending key named in every error so `shardline validate` can point
//! at its line.

use serde::de::DeserializeOwned;

use crate::TransformBuildError;

/// Deserializes `config` (minus a `type` key) into `T`.
pub(crate) fn parse<T: DeserializeOwned>(type_name: &str, config: &toml::Table) -> Result<T, TransformBuildError> {
    let mut options = config.clone();
    options.remove("type");
    // Round-trip through text so that errors carry a span, which names the
    // key even for type errors ("invalid type: string, expected a sequence").
    let text = toml::to_string(&options).unwrap_or_default();
    toml::from_str::<T>(&text).map_err(|e| {
        let message = e.message().trim().to_owned();
        let key = key_in_message(&message).or_else(|| e.span().and_then(|span| key_at(&text, span.start)));
        TransformBuildError::InvalidConfig { type_name: type_name.to_owned(), key, message }
    })
}

/// An option-level error naming `key`.
pub(crate) fn invalid(type_name: &str, key: &str, message: impl Into<String>) -> TransformBuildError {
    TransformBuildError::InvalidConfig { type_name: type_name.to_owned(), key: Some(key.to_owned()), message: message.into() }
}

/// The key in serde messages such as "unknown field `pth`" or "missing
/// field `path`".
fn key_in_message(message: &str) -> Option<String> {
    for marker in ["unknown field `", "missing field `"] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start + marker.len()..];
            if let Some(end) = rest.find('`') {
                return Some(rest[..end].to_owned());
            }
        }
    }
    None
}

/// The top-level key whose value covers byte `offset` of `text` (as
/// rendered by `toml::to_string`: `key = value` lines and `[table]`
/// sections).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset.min(text.len()))?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    // Inside a `[section]`: the section's first segment is the key.
    let section = before[..line_start].lines().rev().find(|l| l.starts_with('['));
    let raw = match section {
        Some(header) => header.trim_matches(|c| c == '[' || c == ']').split('.').next().unwrap_or(""),
        None => line.split('=').next().unwrap_or(""),
    };
    let key = raw.trim().trim_matches('"');
    (!key.is_empty()).then(|| key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Options {
        fields: Vec<String>,
        #[serde(default)]
        flag: bool,
    }

    fn key_of(text: &str) -> Option<String> {
        let table: toml::Table = text.parse().expect("test TOML");
        match parse::<Options>("t", &table) {
            Err(TransformBuildError::InvalidConfig { key, .. }) => key,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn names_the_key_of_every_kind_of_error() {
        assert_eq!(key_of("fields = []\ncolour = 1").as_deref(), Some("colour"));
        assert_eq!(key_of("flag = true").as_deref(), Some("fields"));
        assert_eq!(key_of("fields = \"a\"").as_deref(), Some("fields"));
        assert_eq!(key_of("fields = [\"a\"]\nflag = 3").as_deref(), Some("flag"));
    }
}
