//! Reading what a COPY loads from the S3 emulator: the files of a
//! manifest (or under a prefix), gunzipped, and JSONPaths files.

use std::io::Read;

use aws_sdk_s3::Client;
use serde::Deserialize;

/// A file to load: its URL and text.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// `s3://bucket/key`.
    pub url: String,
    /// The (decompressed) bytes.
    pub data: Vec<u8>,
}

/// Why the files could not be read (Redshift-like text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// `s3://bucket/key` → `(bucket, key)`.
///
/// # Errors
/// When the URL is not an `s3://` URL with a bucket.
pub fn split_url(url: &str) -> Result<(&str, &str), SourceError> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| SourceError(format!("Invalid S3 URL {url}")))?;
    match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() => Ok((bucket, key)),
        None if !rest.is_empty() => Ok((rest, "")),
        _ => Err(SourceError(format!("Invalid S3 URL {url}"))),
    }
}

#[derive(Debug, Deserialize)]
struct Manifest {
    entries: Vec<ManifestEntry>,
}

#[derive(Debug, Deserialize)]
struct ManifestEntry {
    url: String,
    #[serde(default)]
    mandatory: bool,
}

async fn get(client: &Client, url: &str) -> Result<Option<Vec<u8>>, SourceError> {
    let (bucket, key) = split_url(url)?;
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(out) => {
            let body = out.body.collect().await.map_err(|e| SourceError(format!("S3ServiceException: reading {url}: {e}")))?;
            Ok(Some(body.into_bytes().to_vec()))
        }
        Err(e) => {
            let not_found = e.as_service_error().is_some_and(|s| s.is_no_such_key());
            if not_found {
                Ok(None)
            } else {
                Err(SourceError(format!("S3ServiceException: {url}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))))
            }
        }
    }
}

/// The bytes of `url`.
///
/// # Errors
/// Missing object or S3 failure.
pub async fn read_object(client: &Client, url: &str) -> Result<Vec<u8>, SourceError> {
    get(client, url).await?.ok_or_else(|| SourceError(format!("S3ServiceException:The specified key does not exist.,Status 404,Error NoSuchKey ({url})")))
}

/// The URLs a COPY loads: the manifest's entries (missing optional ones
/// skipped) or every object under the prefix.
///
/// # Errors
/// A missing manifest or mandatory entry, an invalid manifest, an empty
/// prefix, or an S3 failure.
pub async fn file_urls(client: &Client, from: &str, manifest: bool) -> Result<Vec<String>, SourceError> {
    if manifest {
        let text = get(client, from)
            .await?
            .ok_or_else(|| SourceError(format!("Problem reading manifest file - S3ServiceException:The specified key does not exist.,Status 404,Error NoSuchKey ({from})")))?;
        let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| SourceError(format!("Manifest file is not in correct json format: {e} ({from})")))?;
        let mut urls = Vec::new();
        for entry in manifest.entries {
            let (bucket, key) = split_url(&entry.url)?;
            let exists = client.head_object().bucket(bucket).key(key).send().await.is_ok();
            if exists {
                urls.push(entry.url);
            } else if entry.mandatory {
                return Err(SourceError(format!("Manifest file has mandatory entry that cannot be found: {}", entry.url)));
            }
        }
        return Ok(urls);
    }
    let (bucket, prefix) = split_url(from)?;
    let mut urls = Vec::new();
    let mut token = None;
    loop {
        let out = client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| SourceError(format!("S3ServiceException: listing {from}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))))?;
        for object in out.contents() {
            if let Some(key) = object.key() {
                urls.push(format!("s3://{bucket}/{key}"));
            }
        }
        token = out.next_continuation_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    if urls.is_empty() {
        return Err(SourceError(format!("The specified S3 prefix '{prefix}' does not exist")));
    }
    Ok(urls)
}

/// Every file of the COPY, decompressed when `gzip`.
///
/// # Errors
/// See [`file_urls`]; also a file that is not valid gzip.
pub async fn read_files(client: &Client, from: &str, manifest: bool, gzip: bool) -> Result<Vec<SourceFile>, SourceError> {
    let mut files = Vec::new();
    for url in file_urls(client, from, manifest).await? {
        let raw = read_object(client, &url).await?;
        let data = if gzip { gunzip(&raw).map_err(|e| SourceError(format!("gzip: {e} ({url})")))? } else { raw };
        files.push(SourceFile { url, data });
    }
    Ok(files)
}

/// Decompresses (possibly concatenated) gzip members.
///
/// # Errors
/// Invalid gzip data.
pub fn gunzip(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(raw).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_bucket_and_key() {
        assert_eq!(split_url("s3://b/a/b.gz"), Ok(("b", "a/b.gz")));
        assert_eq!(split_url("s3://b"), Ok(("b", "")));
        assert!(split_url("http://b/k").is_err());
        assert!(split_url("s3:///k").is_err());
    }

    #[test]
    fn gunzip_reads_concatenated_members() {
        use std::io::Write;
        let mut all = Vec::new();
        for part in [&b"a\n"[..], b"b\n"] {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(part).unwrap_or_default();
            all.extend(enc.finish().unwrap_or_default());
        }
        assert_eq!(gunzip(&all).unwrap_or_default(), b"a\nb\n");
    }
}
