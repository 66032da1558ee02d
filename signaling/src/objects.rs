//! The server's encrypted object store: the key ring and the backend chosen by configuration.
//! Local directory (the embedded default), or S3 behind the durable spool, which acknowledges
//! an object once it is on local disk (encrypted) and uploads it when the store answers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cunneng_storage::{KeyRing, LocalStore, ObjectStore, RetentionPolicy, S3Store, Spool};

use crate::config::{Config, StorageBackend};
use crate::error::Error;

/// Load the key-encryption keys; on the very first start (no file yet) generate one.
pub fn load_or_create_keys(path: &Path) -> Result<KeyRing, Error> {
    if path.exists() {
        return Ok(KeyRing::load(path)?);
    }
    if let Some(dir) = path.parent() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let ring = KeyRing::generate_file(path)?;
    tracing::warn!(
        path = %path.display(),
        "generated a new key-encryption key; back this file up: without it recordings and papers cannot be decrypted"
    );
    Ok(ring)
}

/// The store the server writes to, and the spool in front of it (S3 only).
pub struct Objects {
    pub store: Arc<dyn ObjectStore>,
    pub spool: Option<Arc<Spool>>,
}

pub fn retention_policy(config: &Config) -> Result<RetentionPolicy, Error> {
    let cfg: cunneng_storage::RetentionConfig = serde_json::from_value(serde_json::json!({
        "media_days": config.storage.media_retention_days,
        "papers_days": config.storage.papers_retention_days,
    }))
    .map_err(|e| Error::Tool(format!("retention configuration: {e}")))?;
    Ok(RetentionPolicy::new(&cfg)?)
}

/// Open the object store of `config.storage`. With S3 the server starts even when the store
/// does not answer: objects wait in the spool.
pub async fn open(config: &Config) -> Result<Objects, Error> {
    match config.storage.backend {
        StorageBackend::Local => Ok(Objects { store: Arc::new(local(config).await?), spool: None }),
        StorageBackend::S3 => {
            let s3 = s3(config).await?;
            match s3.check().await {
                Ok(()) => match s3.ensure_lifecycle(&retention_policy(config)?.lifecycle_rules()).await {
                    Ok(outcome) => tracing::info!(?outcome, "bucket lifecycle rules"),
                    Err(e) => tracing::warn!(error = %e, "could not set the bucket's lifecycle rules"),
                },
                Err(e) => tracing::warn!(error = %e, "the object store does not answer; objects wait in the spool"),
            }
            let spool_config: cunneng_storage::SpoolConfig = serde_json::from_value(serde_json::json!({
                "dir": config.spool_dir(),
                "quota_bytes": config.storage.spool_quota_bytes,
            }))
            .map_err(|e| Error::Tool(format!("spool configuration: {e}")))?;
            let spool = Arc::new(Spool::open(spool_config, s3).await?);
            Ok(Objects { store: spool.clone(), spool: Some(spool) })
        }
    }
}

/// The store itself, for the operator commands: the local directory, or the bucket (what the
/// running server's spool has uploaded; the spool belongs to the server process).
pub async fn open_store(config: &Config) -> Result<Arc<dyn ObjectStore>, Error> {
    Ok(match config.storage.backend {
        StorageBackend::Local => Arc::new(local(config).await?),
        StorageBackend::S3 => {
            let s3 = s3(config).await?;
            s3.check().await?;
            s3
        }
    })
}

async fn local(config: &Config) -> Result<LocalStore, Error> {
    let store = LocalStore::open(config.objects_dir()).await?;
    let removed = store.remove_stale_temp(Duration::from_secs(3600)).await?;
    if removed > 0 {
        tracing::info!(removed, "removed unfinished temporary objects");
    }
    Ok(store)
}

async fn s3(config: &Config) -> Result<Arc<S3Store>, Error> {
    let c = &config.storage.s3;
    let credentials = match (&c.access_key_id, &c.secret_access_key) {
        (Some(id), Some(secret)) => {
            serde_json::json!({"source": "static", "access_key_id": id, "secret_access_key": secret})
        }
        _ => serde_json::json!({"source": "environment"}),
    };
    let s3_config: cunneng_storage::S3Config = serde_json::from_value(serde_json::json!({
        "endpoint": c.endpoint,
        "region": c.region,
        "bucket": c.bucket,
        "path_style": c.path_style,
        "credentials": credentials,
    }))
    .map_err(|e| Error::Tool(format!("storage.s3 configuration: {e}")))?;
    Ok(Arc::new(S3Store::connect(&s3_config).await?))
}
