//! S3-compatible object store (Garage, MinIO, Ceph RGW, AWS S3, …) through `aws-sdk-s3`.
//!
//! - **Puts stream**: the body is read in parts of [`S3Config::part_size`] (at least 8 MiB).
//!   A body that fits in one part is one `PutObject`; a longer one is a multipart upload,
//!   one part in memory at a time. SHA-256 is computed while streaming; every request carries
//!   `x-amz-checksum-sha256` of its bytes, so the store verifies each part on arrival. If the
//!   caller's expected digest does not match, the multipart upload is aborted before it is
//!   completed, so nothing becomes visible; any other failure aborts it too. The whole
//!   object's digest is kept in the object's metadata (`x-amz-meta-sha256`) when it is known
//!   before the upload starts (single-part puts, or an expected digest was given), so that
//!   [`ObjectStore::head`] can return it and the spool can verify an upload.
//! - **Reads**: ranged `GetObject`, `HeadObject`, paginated `ListObjectsV2`.
//! - **Lifecycle**: [`S3Store::ensure_lifecycle`] sets an abort-incomplete-multipart-upload
//!   rule and expiration rules per prefix; [`S3Store::abort_incomplete_uploads`] aborts what
//!   a crash left behind (also as [`ObjectStore::cleanup_incomplete_uploads`]).
//! - **Errors**: wrong credentials are [`StorageError::AccessDenied`], an unreachable store
//!   or a server error [`StorageError::Unavailable`] (transient), a missing bucket
//!   [`StorageError::NoSuchBucket`].

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ChecksumAlgorithm, CompletedMultipartUpload,
    CompletedPart, ExpirationStatus, LifecycleExpiration, LifecycleRuleFilter,
};
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{Result, StorageError};
use crate::store::{ByteRange, GetObject, ObjectMeta, ObjectStore, PutReceipt, validate_key};

/// The smallest part size the backend uses (S3 allows 5 MiB; 8 MiB is the usual default).
pub const MIN_PART_SIZE: usize = 8 * 1024 * 1024;
/// S3's limit on parts per upload.
const MAX_PARTS: u32 = 10_000;
/// S3's limit for a single `CopyObject`.
const MAX_COPY_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// Metadata entry holding the object's SHA-256 (hex): header `x-amz-meta-sha256`.
const META_SHA256: &str = "sha256";

/// Where the S3 backend gets its credentials.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum S3Credentials {
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) from the
    /// environment, read on every signing.
    #[default]
    Environment,
    /// Given in the configuration.
    Static { access_key_id: String, secret_access_key: String },
    /// The AWS SDK's default chain: environment, profile files, web identity, ECS, IMDS.
    DefaultChain,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            S3Credentials::Environment => f.write_str("Environment"),
            S3Credentials::Static { access_key_id, .. } => f
                .debug_struct("Static")
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &"<redacted>")
                .finish(),
            S3Credentials::DefaultChain => f.write_str("DefaultChain"),
        }
    }
}

/// Configuration of the S3 backend (the `[storage.s3]` table of the server config).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// `http(s)://host:port` of the S3 API; `None` for AWS S3 itself.
    #[serde(default)]
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// `https://endpoint/bucket/key` instead of `https://bucket.endpoint/key`. Garage and most
    /// self-hosted stores need it unless DNS is set up for virtual-host addressing.
    #[serde(default = "default_true")]
    pub path_style: bool,
    #[serde(default)]
    pub credentials: S3Credentials,
    /// Multipart part size in bytes; at least [`MIN_PART_SIZE`]. One part per concurrent put is
    /// held in memory.
    #[serde(default = "default_part_size")]
    pub part_size: usize,
    /// TCP/TLS connect timeout, seconds.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Timeout of one request attempt (one part, one small object), seconds.
    #[serde(default = "default_attempt_timeout")]
    pub attempt_timeout_secs: u64,
    /// Attempts per request, the first included (the SDK's standard retry with backoff).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

fn default_true() -> bool {
    true
}
fn default_part_size() -> usize {
    MIN_PART_SIZE
}
fn default_connect_timeout() -> u64 {
    5
}
fn default_attempt_timeout() -> u64 {
    120
}
fn default_max_attempts() -> u32 {
    3
}

impl S3Config {
    /// A config with the defaults for everything but the location and credentials.
    pub fn new(endpoint: Option<String>, region: &str, bucket: &str, credentials: S3Credentials) -> Self {
        S3Config {
            endpoint,
            region: region.to_owned(),
            bucket: bucket.to_owned(),
            path_style: true,
            credentials,
            part_size: MIN_PART_SIZE,
            connect_timeout_secs: default_connect_timeout(),
            attempt_timeout_secs: default_attempt_timeout(),
            max_attempts: default_max_attempts(),
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(StorageError::Config(m));
        if self.bucket.is_empty() {
            return bad("s3 bucket is empty".into());
        }
        if self.region.is_empty() {
            return bad("s3 region is empty".into());
        }
        if let Some(e) = &self.endpoint
            && !(e.starts_with("http://") || e.starts_with("https://"))
        {
            return bad(format!("s3 endpoint {e:?} must start with http:// or https://"));
        }
        if self.part_size < MIN_PART_SIZE || self.part_size > 5 * 1024 * 1024 * 1024 {
            return bad(format!("s3 part_size {} must be between 8 MiB and 5 GiB", self.part_size));
        }
        if self.max_attempts == 0 {
            return bad("s3 max_attempts must be at least 1".into());
        }
        if let S3Credentials::Static { access_key_id, secret_access_key } = &self.credentials
            && (access_key_id.is_empty() || secret_access_key.is_empty())
        {
            return bad("s3 static credentials need access_key_id and secret_access_key".into());
        }
        Ok(())
    }
}

/// Install rustls' *ring* provider as the process default if none is installed yet.
///
/// The AWS SDK brings aws-lc-rs and webrtc brings ring: with both compiled in, rustls cannot
/// choose, and `rustls::ClientConfig::builder()` (used by reqwest, axum-server, …) panics
/// unless a default provider is installed first. The SDK itself names its provider
/// explicitly and is not affected. Call this at start-up; calling it again is harmless.
pub fn install_default_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only if another thread installed one in between: fine either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// One lifecycle rule the backend can set (see [`S3Store::ensure_lifecycle`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecycleRule {
    /// Rule id (unique in the bucket configuration).
    pub id: String,
    /// Keys the rule applies to (`""` = every key).
    pub prefix: String,
    /// Delete objects this many days after their last modification.
    pub expire_after_days: Option<u32>,
    /// Abort multipart uploads this many days after they were started.
    pub abort_incomplete_after_days: Option<u32>,
}

impl LifecycleRule {
    /// The rule every bucket gets: abort multipart uploads left unfinished for a day.
    pub fn abort_incomplete(days: u32) -> Self {
        LifecycleRule {
            id: "abort-incomplete-multipart".into(),
            prefix: String::new(),
            expire_after_days: None,
            abort_incomplete_after_days: Some(days),
        }
    }

    /// Expire objects under `prefix` after `days`.
    pub fn expire(id: impl Into<String>, prefix: impl Into<String>, days: u32) -> Self {
        LifecycleRule {
            id: id.into(),
            prefix: prefix.into(),
            expire_after_days: Some(days),
            abort_incomplete_after_days: None,
        }
    }
}

/// What [`S3Store::ensure_lifecycle`] achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifecycleOutcome {
    /// The bucket has exactly the rules asked for.
    Applied,
    /// The store does not implement lifecycle configuration; nothing was set.
    Unsupported,
}

/// An [`ObjectStore`] on an S3 bucket. Cheap to clone.
#[derive(Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    endpoint: String,
    part_size: usize,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store").field("endpoint", &self.endpoint).field("bucket", &self.bucket).finish()
    }
}

impl S3Store {
    /// Build the client. No request is made: call [`S3Store::check`] to see that the bucket
    /// is reachable with these credentials.
    pub async fn connect(config: &S3Config) -> Result<S3Store> {
        config.validate()?;
        install_default_crypto_provider();
        let mut b = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .force_path_style(config.path_style)
            // Checksums are set explicitly on the requests that carry data (sha256); the
            // defaults would add CRC32s and aws-chunked bodies to every other request.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .stalled_stream_protection(StalledStreamProtectionConfig::enabled().build())
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(config.max_attempts))
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
                    .operation_attempt_timeout(Duration::from_secs(config.attempt_timeout_secs))
                    .build(),
            );
        if let Some(e) = &config.endpoint {
            b = b.endpoint_url(e.clone());
        }
        b = match &config.credentials {
            S3Credentials::Static { access_key_id, secret_access_key } => {
                b.credentials_provider(Credentials::new(access_key_id, secret_access_key, None, None, "cunneng-config"))
            }
            S3Credentials::Environment => {
                b.credentials_provider(aws_config::environment::EnvironmentVariableCredentialsProvider::new())
            }
            S3Credentials::DefaultChain => b.credentials_provider(
                aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                    .region(Region::new(config.region.clone()))
                    .build()
                    .await,
            ),
        };
        Ok(S3Store {
            client: Client::from_conf(b.build()),
            bucket: config.bucket.clone(),
            endpoint: config.endpoint.clone().unwrap_or_else(|| format!("AWS S3 ({})", config.region)),
            part_size: config.part_size,
        })
    }

    /// `HeadBucket`: the store answers, the credentials are accepted, the bucket exists.
    pub async fn check(&self) -> Result<()> {
        self.client.head_bucket().bucket(&self.bucket).send().await.map_err(|e| self.err("HeadBucket", None, e))?;
        Ok(())
    }

    /// The SDK client (for tests and tools that need a request this type does not offer).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Replace the bucket's lifecycle configuration with `rules` (idempotent). Returns
    /// [`LifecycleOutcome::Unsupported`] (and sets nothing) if the store does not implement
    /// lifecycle configuration.
    pub async fn ensure_lifecycle(&self, rules: &[LifecycleRule]) -> Result<LifecycleOutcome> {
        if self.lifecycle().await.ok().flatten().as_deref() == Some(rules) {
            return Ok(LifecycleOutcome::Applied);
        }
        let mut cfg = BucketLifecycleConfiguration::builder();
        for r in rules {
            let mut rule = aws_sdk_s3::types::LifecycleRule::builder()
                .id(&r.id)
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix(&r.prefix).build());
            if let Some(d) = r.expire_after_days {
                rule = rule.expiration(LifecycleExpiration::builder().days(days_i32(d)?).build());
            }
            if let Some(d) = r.abort_incomplete_after_days {
                rule = rule.abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder().days_after_initiation(days_i32(d)?).build(),
                );
            }
            cfg = cfg.rules(rule.build().map_err(|e| StorageError::Config(format!("lifecycle rule {}: {e}", r.id)))?);
        }
        let cfg = cfg.build().map_err(|e| StorageError::Config(format!("lifecycle configuration: {e}")))?;
        let res = self
            .client
            .put_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .lifecycle_configuration(cfg)
            // PutBucketLifecycleConfiguration requires a body checksum.
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await;
        match res {
            Ok(_) => Ok(LifecycleOutcome::Applied),
            Err(e) if matches!(e.code(), Some("NotImplemented" | "NotSupported")) => {
                tracing::warn!(endpoint = %self.endpoint, bucket = %self.bucket,
                    "the object store does not support lifecycle rules: incomplete uploads and expired objects are \
                     cleaned up only by cunneng itself");
                Ok(LifecycleOutcome::Unsupported)
            }
            Err(e) => Err(self.err("PutBucketLifecycleConfiguration", None, e)),
        }
    }

    /// The bucket's lifecycle rules as this backend understands them; `None` if it has none.
    pub async fn lifecycle(&self) -> Result<Option<Vec<LifecycleRule>>> {
        let out = match self.client.get_bucket_lifecycle_configuration().bucket(&self.bucket).send().await {
            Ok(o) => o,
            Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => return Ok(None),
            Err(e) => return Err(self.err("GetBucketLifecycleConfiguration", None, e)),
        };
        let rules = out
            .rules()
            .iter()
            .map(|r| LifecycleRule {
                id: r.id().unwrap_or_default().to_owned(),
                prefix: r.filter().and_then(|f| f.prefix()).unwrap_or_default().to_owned(),
                expire_after_days: r.expiration().and_then(|e| e.days()).map(|d| d.max(0) as u32),
                abort_incomplete_after_days: r
                    .abort_incomplete_multipart_upload()
                    .and_then(|a| a.days_after_initiation())
                    .map(|d| d.max(0) as u32),
            })
            .collect();
        Ok(Some(rules))
    }

    /// Abort every incomplete multipart upload started more than `older_than` ago (by the
    /// store's clock as reported); how many were aborted.
    pub async fn abort_incomplete_uploads(&self, older_than: Duration) -> Result<u64> {
        let cutoff = SystemTime::now().checked_sub(older_than).unwrap_or(SystemTime::UNIX_EPOCH);
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        let mut aborted = 0;
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await
                .map_err(|e| self.err("ListMultipartUploads", None, e))?;
            for u in out.uploads() {
                let (Some(key), Some(id)) = (u.key(), u.upload_id()) else { continue };
                let started = u.initiated().and_then(|t| SystemTime::try_from(*t).ok());
                if started.is_some_and(|t| t > cutoff) {
                    continue;
                }
                match self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(id).send().await {
                    Ok(_) => aborted += 1,
                    Err(e) if e.code() == Some("NoSuchUpload") => {}
                    Err(e) => return Err(self.err("AbortMultipartUpload", Some(key), e)),
                }
                tracing::info!(key, upload_id = id, "aborted an incomplete multipart upload");
            }
            if out.is_truncated() != Some(true) {
                break;
            }
            key_marker = out.next_key_marker().map(str::to_owned);
            id_marker = out.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() && id_marker.is_none() {
                break;
            }
        }
        Ok(aborted)
    }

    /// Map an SDK error to the crate's error, with the operation named.
    fn err<E>(
        &self,
        op: &str,
        key: Option<&str>,
        e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let op_s = match key {
            Some(k) => format!("{op} `{k}` on {}", self.endpoint),
            None => format!("{op} on {} bucket `{}`", self.endpoint, self.bucket),
        };
        let code = e.code().unwrap_or_default().to_owned();
        let detail = match (e.code(), e.message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.to_owned(),
            _ => match status {
                Some(s) => format!("HTTP {s}"),
                None => DisplayErrorContext(&e).to_string(),
            },
        };
        match &e {
            SdkError::ServiceError(_) => match (code.as_str(), status) {
                (
                    "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied" | "InvalidToken" | "ExpiredToken",
                    _,
                )
                | (_, Some(401 | 403)) => StorageError::AccessDenied { op: op_s, detail },
                ("NoSuchBucket", _) => StorageError::NoSuchBucket(self.bucket.clone()),
                ("NoSuchKey" | "NotFound", _) | ("", Some(404)) if key.is_some() => {
                    StorageError::NotFound(key.unwrap_or_default().to_owned())
                }
                (_, Some(404)) if key.is_none() => StorageError::NoSuchBucket(self.bucket.clone()),
                (_, Some(s)) if s >= 500 || s == 408 || s == 429 => StorageError::Unavailable { op: op_s, detail },
                ("SlowDown" | "ServiceUnavailable" | "InternalError" | "RequestTimeout", _) => {
                    StorageError::Unavailable { op: op_s, detail }
                }
                _ => StorageError::Backend { op: op_s, detail },
            },
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
                StorageError::Unavailable { op: op_s, detail: DisplayErrorContext(&e).to_string() }
            }
            _ => StorageError::Backend { op: op_s, detail: DisplayErrorContext(&e).to_string() },
        }
    }

    async fn put_single(&self, key: &str, buf: Vec<u8>, sha256: [u8; 32]) -> Result<()> {
        let len = buf.len() as i64;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(len)
            .checksum_sha256(b64(&sha256))
            .metadata(META_SHA256, hex::encode(sha256))
            .body(ByteStream::from(buf))
            .send()
            .await
            .map_err(|e| self.err("PutObject", Some(key), e))?;
        Ok(())
    }

    /// Multipart upload of `first` followed by the rest of `body`. Returns the receipt; on any
    /// failure the upload is aborted.
    async fn put_multipart(
        &self,
        key: &str,
        first: Vec<u8>,
        body: &mut (dyn AsyncRead + Send + Unpin),
        expected: Option<[u8; 32]>,
    ) -> Result<PutReceipt> {
        let mut create = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256);
        if let Some(sha) = expected {
            create = create.metadata(META_SHA256, hex::encode(sha));
        }
        let created = create.send().await.map_err(|e| self.err("CreateMultipartUpload", Some(key), e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| StorageError::Backend {
                op: format!("CreateMultipartUpload `{key}`"),
                detail: "no upload id in the answer".into(),
            })?
            .to_owned();
        let result = self.upload_parts(key, &upload_id, first, body, expected).await;
        if result.is_err() {
            let abort =
                self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(&upload_id).send().await;
            if let Err(e) = abort {
                tracing::warn!(key, upload_id, error = %self.err("AbortMultipartUpload", Some(key), e),
                    "could not abort a failed multipart upload; the lifecycle rule or the next start-up will");
            }
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Vec<u8>,
        body: &mut (dyn AsyncRead + Send + Unpin),
        expected: Option<[u8; 32]>,
    ) -> Result<PutReceipt> {
        let mut whole = Sha256::new();
        let mut size = 0u64;
        let mut parts = Vec::new();
        let mut buf = first;
        let mut number = 1;
        loop {
            whole.update(&buf);
            size += buf.len() as u64;
            let part_sha: [u8; 32] = Sha256::digest(&buf).into();
            let len = buf.len() as i64;
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number as i32)
                .content_length(len)
                .checksum_sha256(b64(&part_sha))
                .body(ByteStream::from(buf))
                .send()
                .await
                .map_err(|e| self.err("UploadPart", Some(key), e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number as i32)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .checksum_sha256(b64(&part_sha))
                    .build(),
            );
            buf = read_part(body, self.part_size, key).await?;
            if buf.is_empty() {
                break;
            }
            number += 1;
            if number > MAX_PARTS {
                return Err(StorageError::Backend {
                    op: format!("UploadPart `{key}`"),
                    detail: format!("object larger than {MAX_PARTS} parts of {} bytes", self.part_size),
                });
            }
        }
        let sha256: [u8; 32] = whole.finalize().into();
        crate::store::check_sha256(key, expected, sha256)?;
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| self.err("CompleteMultipartUpload", Some(key), e))?;
        Ok(PutReceipt { size, sha256 })
    }
}

fn days_i32(d: u32) -> Result<i32> {
    i32::try_from(d).map_err(|_| StorageError::Config(format!("{d} days is too many")))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Read up to `size` bytes (fewer only at the end of the body).
async fn read_part(body: &mut (dyn AsyncRead + Send + Unpin), size: usize, key: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(size.min(1024 * 1024));
    let mut limited = body.take(size as u64);
    limited.read_to_end(&mut buf).await.map_err(|e| match StorageError::from_io(e) {
        StorageError::Io { source, .. } => StorageError::io(format!("reading body for `{key}`"), source),
        other => other,
    })?;
    Ok(buf)
}

fn meta_sha256(metadata: Option<&HashMap<String, String>>) -> Option<[u8; 32]> {
    let hex_digest = metadata?.get(META_SHA256)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut out).ok()?;
    Some(out)
}

/// Percent-encode a key for `x-amz-copy-source` (everything but unreserved characters and `/`).
fn encode_copy_source(bucket: &str, key: &str) -> String {
    let mut out = format!("{bucket}/");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `bytes START-END/TOTAL` → TOTAL.
fn total_from_content_range(cr: &str) -> Option<u64> {
    cr.rsplit_once('/')?.1.trim().parse().ok()
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put(
        &self,
        key: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
        expected_sha256: Option<[u8; 32]>,
    ) -> Result<PutReceipt> {
        validate_key(key)?;
        let first = read_part(body, self.part_size, key).await?;
        if first.len() < self.part_size {
            let sha256: [u8; 32] = Sha256::digest(&first).into();
            crate::store::check_sha256(key, expected_sha256, sha256)?;
            let size = first.len() as u64;
            self.put_single(key, first, sha256).await?;
            return Ok(PutReceipt { size, sha256 });
        }
        self.put_multipart(key, first, body, expected_sha256).await
    }

    async fn get(&self, key: &str, range: Option<ByteRange>) -> Result<GetObject> {
        validate_key(key)?;
        // HTTP cannot ask for an empty range: resolve it against the size.
        if let Some(r) = range
            && r.end.is_some_and(|e| e <= r.start)
        {
            let size = self.head(key).await?.size;
            let range = ByteRange::resolve(Some(r), key, size)?;
            return Ok(GetObject { size, range, body: Box::pin(tokio::io::empty()) });
        }
        let mut req = self.client.get_object().bucket(&self.bucket).key(key);
        if let Some(r) = range {
            req = req.range(match r.end {
                Some(e) => format!("bytes={}-{}", r.start, e - 1),
                None => format!("bytes={}-", r.start),
            });
        }
        let out = match req.send().await {
            Ok(o) => o,
            Err(e)
                if e.code() == Some("InvalidRange") || e.raw_response().is_some_and(|r| r.status().as_u16() == 416) =>
            {
                // Start at or past the end: empty if exactly at the end, an error beyond.
                let size = self.head(key).await?.size;
                let range = ByteRange::resolve(range, key, size)?;
                return Ok(GetObject { size, range, body: Box::pin(tokio::io::empty()) });
            }
            Err(e) => return Err(self.err("GetObject", Some(key), e)),
        };
        let len = out.content_length().unwrap_or(0).max(0) as u64;
        let (size, range) = match (range, out.content_range().and_then(total_from_content_range)) {
            (Some(r), Some(total)) => (total, r.start..r.start + len),
            (Some(r), None) => (r.start + len, r.start..r.start + len),
            (None, _) => (len, 0..len),
        };
        let body = Box::pin(out.body.into_async_read());
        Ok(GetObject { size, range, body })
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.err("HeadObject", Some(key), e))?;
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: out.content_length().unwrap_or(0).max(0) as u64,
            modified: out.last_modified().and_then(|t| SystemTime::try_from(*t).ok()),
            sha256: meta_sha256(out.metadata()),
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.err("DeleteObject", Some(key), e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.err("ListObjectsV2", None, e))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                out.push(ObjectMeta {
                    key: key.to_owned(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    modified: o.last_modified().and_then(|t| SystemTime::try_from(*t).ok()),
                    sha256: None,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn copy(&self, from: &str, to: &str) -> Result<PutReceipt> {
        validate_key(from)?;
        validate_key(to)?;
        let src = self.head(from).await?;
        let Some(sha256) = src.sha256.filter(|_| src.size <= MAX_COPY_SIZE) else {
            // No digest to carry over, or too large for one CopyObject: stream it.
            let got = self.get(from, None).await?;
            let mut body = got.body;
            return self.put(to, &mut body, src.sha256).await;
        };
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(encode_copy_source(&self.bucket, from))
            .send()
            .await
            .map_err(|e| self.err("CopyObject", Some(from), e))?;
        let dst = self.head(to).await?;
        if dst.size != src.size || dst.sha256 != Some(sha256) {
            return Err(StorageError::VerifyFailed {
                key: to.to_owned(),
                detail: format!("copy of `{from}` has size {} and digest {:?}", dst.size, dst.sha256.map(hex::encode)),
            });
        }
        Ok(PutReceipt { size: src.size, sha256 })
    }

    async fn cleanup_incomplete_uploads(&self, older_than: Duration) -> Result<u64> {
        self.abort_incomplete_uploads(older_than).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_is_percent_encoded() {
        assert_eq!(encode_copy_source("b", "a/b c+d/中"), "b/a/b%20c%2Bd/%E4%B8%AD");
        assert_eq!(encode_copy_source("b", "media/x-1_2.cne"), "b/media/x-1_2.cne");
    }

    #[test]
    fn content_range_total() {
        assert_eq!(total_from_content_range("bytes 0-0/1234"), Some(1234));
        assert_eq!(total_from_content_range("bytes */1234"), Some(1234));
        assert_eq!(total_from_content_range("bytes 0-0/*"), None);
    }

    #[test]
    fn config_parses_and_validates() {
        let c: S3Config = toml::from_str(
            r#"endpoint = "http://127.0.0.1:3900"
region = "garage"
bucket = "cunneng"
credentials = { source = "static", access_key_id = "GKx", secret_access_key = "s" }"#,
        )
        .unwrap();
        assert!(c.path_style);
        assert_eq!(c.part_size, MIN_PART_SIZE);
        c.validate().unwrap();
        assert!(!format!("{c:?}").contains("\"s\""), "secret must not be printed");
        let env: S3Config = toml::from_str("region = \"us-east-1\"\nbucket = \"b\"").unwrap();
        assert_eq!(env.credentials, S3Credentials::Environment);
        let mut small = env.clone();
        small.part_size = 5 * 1024 * 1024;
        assert!(matches!(small.validate(), Err(StorageError::Config(_))));
        let mut bad = env;
        bad.endpoint = Some("127.0.0.1:3900".into());
        assert!(matches!(bad.validate(), Err(StorageError::Config(_))));
    }
}
