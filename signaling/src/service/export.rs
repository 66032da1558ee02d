//! Export for review (复议、纪检): one tar file with a case's papers, result documents and
//! recordings decrypted, its timeline and full record, and its signed manifest with the public
//! key, verifiable offline (`cunneng audit verify-bundle FILE`). Streamed: objects are decrypted
//! chunk by chunk into the response, nothing plaintext touches disk, memory per export is a few
//! chunks. The export is itself an access entry.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use bytes::Bytes;
use cunneng_storage::{Decryptor, ObjectClass, StorageError};
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::audit::{AccessAction, PublicKey};
use crate::case::Viewer;
use crate::error::{Error, RejectKind, Rejection};
use crate::objects::Vault;
use crate::state::AppState;

use super::audit::Access;

/// The file name of a paper in a bundle.
fn paper_path(id: i64, content_type: &str) -> String {
    let ext = match content_type {
        "application/pdf" => "pdf",
        "image/jpeg" => "jpg",
        "image/png" => "png",
        _ => "bin",
    };
    format!("papers/{id}.{ext}")
}

fn segment_path(recording: i64, index: u64) -> String {
    format!("recordings/{recording}/seg-{index:05}.webm")
}

fn archive_path(recording: i64) -> String {
    format!("recordings/{recording}/archive.webm")
}

/// One object of the bundle: where it goes, what it is, its plaintext size and SHA-256.
struct Item {
    path: String,
    class: ObjectClass,
    key: String,
    size: u64,
}

/// The objects a manifest names, as bundle files.
fn items_of(manifest: &Value) -> Vec<Item> {
    let mut out = Vec::new();
    for p in manifest["papers"].as_array().into_iter().flatten() {
        out.push(Item {
            path: paper_path(p["id"].as_i64().unwrap_or_default(), p["content_type"].as_str().unwrap_or_default()),
            class: ObjectClass::PAPERS,
            key: p["key"].as_str().unwrap_or_default().to_string(),
            size: p["size"].as_u64().unwrap_or_default(),
        });
    }
    for r in manifest["recordings"].as_array().into_iter().flatten() {
        let rid = r["id"].as_i64().unwrap_or_default();
        for s in r["segments"].as_array().into_iter().flatten() {
            out.push(Item {
                path: segment_path(rid, s["index"].as_u64().unwrap_or_default()),
                class: ObjectClass::MEDIA,
                key: s["key"].as_str().unwrap_or_default().to_string(),
                size: s["bytes"].as_u64().unwrap_or_default(),
            });
        }
        if let Some(a) = r["archive"].as_object()
            && let Some(size) = a.get("bytes").and_then(Value::as_u64)
        {
            out.push(Item {
                path: archive_path(rid),
                class: ObjectClass::MEDIA,
                key: a.get("key").and_then(Value::as_str).unwrap_or_default().to_string(),
                size,
            });
        }
    }
    out
}

/// The manifest's (bundle path, SHA-256) of every object.
fn expected_files(manifest: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for p in manifest["papers"].as_array().into_iter().flatten() {
        let path = paper_path(p["id"].as_i64().unwrap_or_default(), p["content_type"].as_str().unwrap_or_default());
        out.insert(path, p["sha256"].as_str().unwrap_or_default().to_string());
    }
    for r in manifest["recordings"].as_array().into_iter().flatten() {
        let rid = r["id"].as_i64().unwrap_or_default();
        for s in r["segments"].as_array().into_iter().flatten() {
            let path = segment_path(rid, s["index"].as_u64().unwrap_or_default());
            out.insert(path, s["sha256"].as_str().unwrap_or_default().to_string());
        }
        if let Some(sha) = r["archive"]["sha256"].as_str() {
            out.insert(archive_path(rid), sha.to_string());
        }
    }
    out
}

const README: &str = "cunneng case export (村能办 案件导出)\n\
\n\
manifest.json   the case's manifest: decisions, sign-offs, the SHA-256 of every paper and\n\
                recording, the hashes of its audit entries\n\
manifest.sig    the server's Ed25519 signature of manifest.json (hex)\n\
public-key.txt  the server's public key (hex) and its id\n\
case.json       the case as the review page shows it (villager masked)\n\
timeline.json   who did what, when\n\
papers/         papers and result documents, decrypted (named by paper id)\n\
recordings/     every participant's recording: its 10-second segments and, when made, the\n\
                seekable archive copy\n\
\n\
Check it on any machine: cunneng audit verify-bundle THIS-FILE [--key PUBLIC-KEY-HEX]\n";

/// A streaming export.
pub struct ExportStream {
    pub case_no: String,
    pub body: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>,
}

fn tar_header(path: &str, size: u64, mtime_ms: u64) -> Result<Vec<u8>, Error> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path).map_err(|e| Error::Tool(format!("tar path {path}: {e}")))?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(mtime_ms / 1000);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(h.as_bytes().to_vec())
}

fn padding(size: u64) -> Vec<u8> {
    vec![0u8; ((512 - size % 512) % 512) as usize]
}

/// Export a case the viewer may review. The access is recorded before the first byte.
pub async fn export(
    state: &AppState,
    viewer: &Viewer,
    case_no: String,
    address: Option<String>,
) -> Result<ExportStream, Error> {
    let case = super::review::load(&state.db, viewer, case_no).await?;
    let permit = state.exports.clone().try_acquire_owned().map_err(|_| {
        Rejection::new(
            RejectKind::TooMany,
            "too_many_exports",
            "正在导出的案件太多,请稍后再试 (too many exports at once)",
        )
    })?;
    let audit = state.audit.clone();
    let access = Access { action: AccessAction::CaseExported, case_id: Some(case.id), detail: json!({}), address };
    audit.access(&viewer.stamp(), access).await?;
    let db = state.db.clone();
    let id = case.id;
    // The sealed manifest of a final case, or one signed now for a case still in progress.
    let (manifest, signature) = match db.run(move |db| db.case_manifest(id)).await? {
        Some((m, _, sig, _)) => (m, sig),
        None => {
            let mut m = super::audit::build_manifest(&db, id, &audit.public_key().key_id()).await?;
            m["exported_at_ms"] = json!(crate::now_ms());
            m["sealed"] = json!(false);
            let sig = audit.sign_manifest(&m);
            (m, sig)
        }
    };
    let review = super::review::case_review_unrecorded(&state.db, viewer, &case).await?;
    let key = audit.public_key();
    let now = crate::now_ms();
    let mut small: Vec<(String, Vec<u8>)> = vec![
        ("README.txt".into(), README.as_bytes().to_vec()),
        ("manifest.json".into(), crate::audit::canonical_json(&manifest).into_bytes()),
        ("manifest.sig".into(), format!("{signature}\n").into_bytes()),
        ("public-key.txt".into(), format!("{}\nkey id {}\n", key.to_hex(), key.key_id()).into_bytes()),
        ("case.json".into(), serde_json::to_vec_pretty(&review).map_err(|e| Error::Tool(format!("case.json: {e}")))?),
        (
            "timeline.json".into(),
            serde_json::to_vec_pretty(&review.case.timeline).map_err(|e| Error::Tool(format!("timeline.json: {e}")))?,
        ),
    ];
    let items = items_of(&manifest);
    let vault = state.vault.clone();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let case_no = case.case_no.clone();
    tokio::spawn(async move {
        let _permit = permit;
        let result = async {
            for (path, bytes) in small.drain(..) {
                send(&tx, tar_header(&path, bytes.len() as u64, now)?).await?;
                let pad = padding(bytes.len() as u64);
                send(&tx, bytes).await?;
                send(&tx, pad).await?;
            }
            for item in &items {
                send(&tx, tar_header(&item.path, item.size, now)?).await?;
                stream_object(&vault, item, &tx).await?;
                send(&tx, padding(item.size)).await?;
            }
            send(&tx, vec![0u8; 1024]).await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "a case export was cut off");
            let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Ok(ExportStream { case_no, body: Box::pin(body) })
}

async fn send(tx: &mpsc::Sender<Result<Bytes, std::io::Error>>, bytes: Vec<u8>) -> Result<(), Error> {
    if bytes.is_empty() {
        return Ok(());
    }
    tx.send(Ok(Bytes::from(bytes))).await.map_err(|_| Error::Tool("the client went away".into()))
}

/// Decrypt one object into the stream, chunk by chunk; its size must be the declared one.
async fn stream_object(
    vault: &Vault,
    item: &Item,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), Error> {
    let store = vault.store();
    let mut body = match store.get(&item.key, None).await {
        Err(StorageError::NotFound(_)) => store.get(&cunneng_storage::retention::hold_key(&item.key), None).await,
        other => other,
    }?
    .body;
    let mut dec =
        Decryptor::new(vault.keys()).expect(item.class.clone(), cunneng_storage::ObjectId::new(item.key.clone())?);
    let mut buf = vec![0u8; 256 * 1024];
    let mut sent = 0u64;
    loop {
        let n = body.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        let mut out = Vec::new();
        dec.update(&buf[..n], &mut out)?;
        sent += out.len() as u64;
        if sent > item.size {
            return Err(Error::Tool(format!("{} is larger than its manifest says", item.key)));
        }
        send(tx, out).await?;
    }
    dec.finish()?;
    if sent != item.size {
        return Err(Error::Tool(format!("{} is not the size its manifest says", item.key)));
    }
    Ok(())
}

/// What `cunneng audit verify-bundle` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleReport {
    pub case_no: String,
    pub key_id: String,
    pub files_checked: usize,
    pub problems: Vec<String>,
}

/// Check an export offline: the manifest's signature (with the bundled key, or `trusted` if
/// given), and that every paper and recording the manifest names is in the bundle with its
/// SHA-256.
pub fn verify_bundle(path: &Path, trusted: Option<&PublicKey>) -> Result<BundleReport, Error> {
    let file = std::fs::File::open(path)?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut hashes: BTreeMap<String, String> = BTreeMap::new();
    let mut small: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for entry in archive.entries().map_err(|e| Error::Tool(format!("not a bundle: {e}")))? {
        let mut entry = entry.map_err(|e| Error::Tool(format!("the bundle is damaged: {e}")))?;
        let name = entry
            .path()
            .map_err(|e| Error::Tool(format!("the bundle is damaged: {e}")))?
            .to_string_lossy()
            .into_owned();
        let mut hasher = sha2::Sha256::default();
        let mut buf = vec![0u8; 64 * 1024];
        let keep = matches!(name.as_str(), "manifest.json" | "manifest.sig" | "public-key.txt");
        let mut kept = Vec::new();
        loop {
            let n = entry.read(&mut buf).map_err(|e| Error::Tool(format!("the bundle is damaged: {e}")))?;
            if n == 0 {
                break;
            }
            sha2::Digest::update(&mut hasher, &buf[..n]);
            if keep {
                kept.extend_from_slice(&buf[..n]);
            }
        }
        hashes.insert(name.clone(), hex::encode(sha2::Digest::finalize(hasher)));
        if keep {
            small.insert(name, kept);
        }
    }
    let text = |name: &str| -> Result<String, Error> {
        small
            .get(name)
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .ok_or_else(|| Error::Tool(format!("not a bundle: {name} is missing")))
    };
    let manifest: Value =
        serde_json::from_str(&text("manifest.json")?).map_err(|e| Error::Tool(format!("manifest.json: {e}")))?;
    let signature = text("manifest.sig")?.trim().to_string();
    let bundled = text("public-key.txt")?;
    let bundled = PublicKey::from_hex(bundled.lines().next().unwrap_or_default())
        .ok_or_else(|| Error::Tool("public-key.txt does not hold a key".into()))?;
    let key = trusted.copied().unwrap_or(bundled);
    let mut problems = Vec::new();
    if trusted.is_some_and(|t| *t != bundled) {
        problems.push("the bundle's key is not the key you trust".to_string());
    }
    if !key.verify_manifest(&manifest, &signature) {
        problems
            .push("the manifest's signature is not valid: manifest.json was changed or not signed by this key".into());
    }
    let expected = expected_files(&manifest);
    for (path, want) in &expected {
        match hashes.get(path) {
            None => problems.push(format!("{path} is missing")),
            Some(got) if got != want => problems.push(format!("{path} does not match the manifest (it was changed)")),
            Some(_) => {}
        }
    }
    Ok(BundleReport {
        case_no: manifest["case"]["case_no"].as_str().unwrap_or_default().to_string(),
        key_id: key.key_id(),
        files_checked: expected.len(),
        problems,
    })
}
