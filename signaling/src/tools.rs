//! Operator commands on the encrypted store: `cunneng keys generate|rotate|rewrap`,
//! `cunneng decrypt`, `cunneng verify`. They print plain answers and return clear errors for a
//! missing key, a damaged object or an object that does not exist.

use std::io::Write;
use std::path::Path;

use std::sync::Arc;

use cunneng_storage::format::MAX_PRELUDE_LEN;
use cunneng_storage::{ByteRange, Header, KeyRing, ObjectStore, StorageError};

use crate::config::Config;
use crate::error::Error;
use crate::objects::Vault;

/// `cunneng keys generate`: a new key file; refuses to overwrite one.
pub fn keys_generate(config: &Config) -> Result<String, Error> {
    let path = config.kek_file();
    if path.exists() {
        return Err(Error::Tool(format!(
            "{} already exists; use `cunneng keys rotate` to start a new key",
            path.display()
        )));
    }
    let ring = crate::objects::load_or_create_keys(&path)?;
    Ok(format!("generated key {} in {} (back this file up)", ring.active().id(), path.display()))
}

/// `cunneng keys rotate`: a new active key for new objects; old keys keep decrypting.
pub fn keys_rotate(config: &Config) -> Result<String, Error> {
    let path = config.kek_file();
    let ring = KeyRing::rotate_file(&path)?;
    Ok(format!(
        "key {} is now active in {}; run `cunneng keys rewrap` to move existing objects to it",
        ring.active().id(),
        path.display()
    ))
}

/// `cunneng keys rewrap`: re-wrap, under the active KEK, the retention-period keys and the data
/// key of every object wrapped by another KEK. Objects under a period key stay as they are (the
/// period key file was re-wrapped instead). The contents are copied unchanged; only headers
/// are rewritten.
pub async fn keys_rewrap(config: &Config, store: &dyn ObjectStore) -> Result<String, Error> {
    let keys = crate::objects::Keys::load(config)?;
    let active = keys.ring.active();
    let periods = keys.periods.rewrap()?;
    let (mut rewrapped, mut current) = (0u64, 0u64);
    for meta in store.list("").await? {
        let prelude = read_prelude(store, &meta.key, meta.size).await?;
        let (header, _) = Header::parse(&prelude).map_err(|e| named(&meta.key, e))?;
        if header.key_id == active.id() || cunneng_storage::is_period_key_id(&header.key_id) {
            current += 1;
            continue;
        }
        if cunneng_storage::period::rewrap_stored(store, &meta.key, &keys.ring, active, None)
            .await
            .map_err(|e| named(&meta.key, e))?
        {
            rewrapped += 1;
        }
    }
    Ok(format!(
        "rewrapped {periods} retention-period keys and {rewrapped} objects under key {}; {current} objects needed nothing",
        active.id()
    ))
}

/// Record `cunneng decrypt` of `what` in the audit record: who ran it (the operating-system
/// user) and which object (a file is named by its file name only).
pub fn record_decrypt(db: &crate::db::Db, what: &str) -> Result<(), Error> {
    let user = std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).unwrap_or_else(|_| "unknown".into());
    let object = if Path::new(what).is_file() {
        format!("file {}", Path::new(what).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
    } else {
        what.to_string()
    };
    let access = crate::db::NewAccess {
        at_ms: crate::now_ms(),
        case_id: None,
        actor: crate::case::EventActor {
            kind: crate::case::ActorKind::System,
            id: None,
            name: format!("cunneng decrypt (operator {user})"),
        },
        action: crate::audit::AccessAction::ObjectDecrypted,
        detail: serde_json::json!({"object": object}),
        address: None,
    };
    db.record_access(&access)?;
    Ok(())
}

/// `cunneng decrypt OBJECT-OR-KEY --out FILE`: a file path of an encrypted object, or a key in
/// the configured store.
pub async fn decrypt(config: &Config, store: Arc<dyn ObjectStore>, what: &str, out: &Path) -> Result<String, Error> {
    let vault = Vault::new(store.clone(), crate::objects::Keys::load(config)?);
    let mut body: std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>> = if Path::new(what).is_file() {
        Box::pin(tokio::fs::File::open(what).await?)
    } else {
        // An object under legal hold lives in the hold area.
        let held = cunneng_storage::retention::hold_key(what);
        let found = match store.get(what, None).await {
            Err(StorageError::NotFound(_)) => store.get(&held, None).await,
            other => other,
        };
        match found {
            Ok(o) => o.body,
            Err(StorageError::NotFound(_)) => {
                return Err(Error::Tool(format!("no such object: {what} (neither a file nor a key in the store)")));
            }
            Err(e) => return Err(e.into()),
        }
    };
    let tmp = out.with_extension("partial");
    let mut file = std::fs::File::create(&tmp)?;
    let result = vault.open_stream(&mut body, |chunk| file.write_all(chunk).map_err(Error::from)).await;
    match result {
        Ok(info) => {
            file.sync_all()?;
            std::fs::rename(&tmp, out)?;
            Ok(format!(
                "decrypted {what} ({} {}, {} bytes) to {}",
                info.header.class,
                info.header.object_id,
                info.plaintext_len,
                out.display()
            ))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(match e {
                Error::Storage(se) => named(what, se),
                other => other,
            })
        }
    }
}

/// One object's verdict in `cunneng verify`.
pub struct Verdict {
    pub key: String,
    pub problem: Option<String>,
}

/// `cunneng verify`: decrypt every object of the store (discarding the plaintext) and check
/// its integrity; then check that every segment a recording manifest lists has its hash.
pub async fn verify(config: &Config, store: Arc<dyn ObjectStore>) -> Result<Vec<Verdict>, Error> {
    let vault = Vault::new(store.clone(), crate::objects::Keys::load(config)?);
    let mut verdicts = Vec::new();
    for meta in store.list("").await? {
        let problem = match store.get(&meta.key, None).await {
            Ok(o) => {
                let mut body = o.body;
                match vault.open_stream(&mut body, |_| Ok(())).await {
                    Ok(_) => None,
                    Err(e) => Some(e.to_string()),
                }
            }
            Err(e) => Some(e.to_string()),
        };
        verdicts.push(Verdict { key: meta.key, problem });
    }
    verdicts.extend(verify_manifests(&vault).await?);
    Ok(verdicts)
}

/// Every segment a manifest lists must decrypt to the bytes whose SHA-256 it records.
async fn verify_manifests(vault: &Vault) -> Result<Vec<Verdict>, Error> {
    let mut out = Vec::new();
    for meta in vault.store().list("manifest/").await? {
        let json = match decrypt_to_vec(vault, &meta.key).await {
            Ok(j) => j,
            Err(_) => continue, // reported by the object pass
        };
        let v: serde_json::Value = match serde_json::from_slice(&json) {
            Ok(v) => v,
            Err(e) => {
                out.push(Verdict { key: meta.key.clone(), problem: Some(format!("manifest is not JSON: {e}")) });
                continue;
            }
        };
        let keys = v["segment_keys"].as_array().cloned().unwrap_or_default();
        let infos = v["segments"].as_array().cloned().unwrap_or_default();
        for (k, info) in keys.iter().zip(infos.iter()) {
            let (Some(k), Some(want)) = (k.as_str(), info["sha256"].as_str()) else { continue };
            let problem = match decrypt_to_vec(vault, k).await {
                Ok(plain) if cunneng_media_recorder::record::sha256_hex(&plain) == want => None,
                Ok(_) => Some(format!("does not match the hash in {}", meta.key)),
                Err(e) => Some(format!("listed in {} but unreadable: {e}", meta.key)),
            };
            if problem.is_some() {
                out.push(Verdict { key: k.to_string(), problem });
            }
        }
    }
    Ok(out)
}

/// Decrypt a whole object held in memory, with the words an operator needs on failure.
async fn decrypt_to_vec(vault: &Vault, key: &str) -> Result<Vec<u8>, Error> {
    vault.get_any(key).await.map_err(|e| match e {
        Error::Storage(se) => named(key, se),
        other => other,
    })
}

async fn read_prelude(store: &dyn ObjectStore, key: &str, size: u64) -> Result<Vec<u8>, Error> {
    let end = size.min(MAX_PRELUDE_LEN as u64);
    Ok(store.get(key, Some(ByteRange::new(0, end))).await?.bytes().await?)
}

/// A storage error with the object it concerns, in the words an operator needs.
fn named(what: &str, e: StorageError) -> Error {
    let why = match &e {
        StorageError::UnknownKeyId(_) => "its key is not in the key file (a missing or removed key)".to_string(),
        StorageError::KeyDestroyed { destroyed_at, .. } => {
            format!("its retention period ended and its key was destroyed on {destroyed_at}: no copy of it decrypts")
        }
        e if e.is_integrity_error() => format!("the object is damaged or was tampered with: {e}"),
        e => e.to_string(),
    };
    Error::Tool(format!("{what}: {why}"))
}
