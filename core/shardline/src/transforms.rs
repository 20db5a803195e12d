//! Building a pipeline's transform chain from its `[[transforms]]` tables.

use shardline_api::Transform;

/// Builds one instance of every configured transform, in order. Called once
/// per shard worker, so transforms may keep per-shard state.
///
/// # Errors
/// A message naming the transform's index and type.
pub fn build_chain(configs: &[toml::Table]) -> Result<Vec<Box<dyn Transform>>, String> {
    configs
        .iter()
        .enumerate()
        .map(|(i, table)| {
            let kind = table
                .get("type")
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("transforms[{i}]: missing `type`"))?;
            let mut rest = table.clone();
            rest.remove("type");
            shardline_transforms::build(kind, &rest).map_err(|e| format!("transforms[{i}] (`{kind}`): {e}"))
        })
        .collect()
}
