//! The server's encrypted object store: the key ring and the backend chosen by configuration.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cunneng_storage::{KeyRing, LocalStore, ObjectStore};

use crate::config::{Config, StorageBackend};
use crate::error::Error;

/// Load the key-encryption keys; on the very first start (no file yet) generate one.
pub fn load_or_create_keys(path: &Path) -> Result<KeyRing, Error> {
    if path.exists() {
        return Ok(KeyRing::load(path)?);
    }
    let ring = KeyRing::generate_file(path)?;
    tracing::warn!(
        path = %path.display(),
        "generated a new key-encryption key; back this file up: without it recordings and papers cannot be decrypted"
    );
    Ok(ring)
}

/// The object store for `config.storage`.
pub async fn open_store(config: &Config) -> Result<Arc<dyn ObjectStore>, Error> {
    match config.storage.backend {
        StorageBackend::Local => {
            let store = LocalStore::open(config.objects_dir()).await?;
            let removed = store.remove_stale_temp(Duration::from_secs(3600)).await?;
            if removed > 0 {
                tracing::info!(removed, "removed unfinished temporary objects");
            }
            Ok(Arc::new(store))
        }
        StorageBackend::S3 => Err(Error::Tls("storage.backend = \"s3\" is not wired yet".into())),
    }
}
