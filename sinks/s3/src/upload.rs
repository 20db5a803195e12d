//! Writing one object: a single `PutObject`, or above the threshold a
//! multipart upload (`CreateMultipartUpload`, `UploadPart` with bounded
//! concurrency, `CompleteMultipartUpload`) that is aborted when any step
//! fails, so no orphaned parts are left behind (best effort: a failed abort
//! is logged; a bucket lifecycle rule for incomplete uploads covers the rest).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::error::S3Error;

/// S3's limit on parts per upload.
const MAX_PARTS: u64 = 10_000;

/// An object to write.
#[derive(Debug, Clone)]
pub struct Object {
    /// Its key.
    pub key: String,
    /// Its (compressed) body.
    pub body: Bytes,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// `Content-Encoding`, if any.
    pub content_encoding: Option<&'static str>,
}

/// Writes objects into one bucket.
#[derive(Debug, Clone)]
pub struct Uploader {
    /// The client.
    pub client: Client,
    /// The bucket.
    pub bucket: String,
    /// Bodies larger than this go up in parts, in bytes.
    pub multipart_threshold: u64,
    /// Part size, in bytes.
    pub part_size: u64,
    /// Parts in flight per object.
    pub concurrency: usize,
}

impl Uploader {
    /// Writes `object`, replacing any object with the same key.
    ///
    /// # Errors
    /// The classified failure of the first step that failed.
    ///
    /// # Cancel safety
    /// Not cancel safe: a multipart upload dropped half way is neither
    /// completed nor aborted (the plugin host never cancels calls).
    pub async fn put(&self, object: &Object) -> Result<(), S3Error> {
        if object.body.len() as u64 > self.multipart_threshold {
            return self.put_multipart(object).await;
        }
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&object.key)
            .content_type(object.content_type)
            .set_content_encoding(object.content_encoding.map(str::to_owned))
            .content_length(object.body.len() as i64)
            .body(ByteStream::from(object.body.clone()))
            .send()
            .await
            .map_err(|e| S3Error::from_sdk("PutObject", &self.bucket, &object.key, e))?;
        tracing::debug!(bucket = %self.bucket, key = %object.key, bytes = object.body.len(), "object written");
        Ok(())
    }

    async fn put_multipart(&self, object: &Object) -> Result<(), S3Error> {
        let key = &object.key;
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(object.content_type)
            .set_content_encoding(object.content_encoding.map(str::to_owned))
            .send()
            .await
            .map_err(|e| S3Error::from_sdk("CreateMultipartUpload", &self.bucket, key, e))?;
        let Some(upload_id) = created.upload_id().map(str::to_owned) else {
            return Err(S3Error::Transport {
                operation: "CreateMultipartUpload",
                bucket: self.bucket.clone(),
                key: key.clone(),
                message: "the answer has no UploadId".to_owned(),
                kind: shardline_plugin_sdk::ErrorKind::Retriable,
            });
        };
        match self.upload_parts(key, &upload_id, &object.body).await {
            Ok(()) => {
                tracing::debug!(bucket = %self.bucket, key = %key, bytes = object.body.len(), "multipart object written");
                Ok(())
            }
            Err(error) => {
                let aborted = self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(&upload_id).send().await;
                match aborted {
                    Ok(_) => tracing::warn!(bucket = %self.bucket, key = %key, upload_id = %upload_id, error = %error, "multipart upload failed and was aborted"),
                    Err(abort) => {
                        let abort = S3Error::from_sdk("AbortMultipartUpload", &self.bucket, key, abort);
                        tracing::error!(bucket = %self.bucket, key = %key, upload_id = %upload_id, error = %error, abort_error = %abort, "multipart upload failed and could not be aborted");
                    }
                }
                Err(error)
            }
        }
    }

    async fn upload_parts(&self, key: &str, upload_id: &str, body: &Bytes) -> Result<(), S3Error> {
        let len = body.len() as u64;
        // More than 10,000 parts are not allowed: grow the parts instead.
        let part_size = self.part_size.max(len.div_ceil(MAX_PARTS)).max(1);
        let ranges: Vec<(i32, Bytes)> = (0..len.div_ceil(part_size))
            .map(|i| {
                let start = (i * part_size) as usize;
                let end = ((i + 1) * part_size).min(len) as usize;
                (i as i32 + 1, body.slice(start..end))
            })
            .collect();
        let mut parts: Vec<CompletedPart> = stream::iter(ranges)
            .map(|(number, part)| async move {
                let answer = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .content_length(part.len() as i64)
                    .body(ByteStream::from(part))
                    .send()
                    .await
                    .map_err(|e| S3Error::from_sdk("UploadPart", &self.bucket, key, e))?;
                Ok::<_, S3Error>(CompletedPart::builder().part_number(number).set_e_tag(answer.e_tag().map(str::to_owned)).build())
            })
            .buffer_unordered(self.concurrency.max(1))
            .try_collect()
            .await?;
        parts.sort_by_key(|p| p.part_number());
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| S3Error::from_sdk("CompleteMultipartUpload", &self.bucket, key, e))?;
        Ok(())
    }

    /// `HeadBucket`: the bucket exists and the credentials may use it.
    ///
    /// # Errors
    /// The classified failure (a missing bucket or access denied is
    /// permanent).
    pub async fn head_bucket(&self) -> Result<(), S3Error> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| S3Error::from_sdk("HeadBucket", &self.bucket, "", e))
    }
}
