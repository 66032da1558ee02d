//! The audit record at work: recording accesses, signing checkpoints of the chain (in the
//! database and in a log file beside it), sealing the signed manifest of a case once it is
//! final, and verifying all of it (`cunneng audit verify`, `verify-case`). The pure rules are
//! `crate::audit`; the storage is `db::audit`.

use std::io::{BufRead, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cunneng_storage::ObjectClass;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::audit::{AccessAction, AuditKey, ChainError, Checkpoint, PublicKey};
use crate::case::{EventActor, EventKind};
use crate::db::{DataError, Db, NewAccess};
use crate::error::{Error, RejectKind, Rejection};
use crate::objects::Vault;

/// How many entries verification reads at once.
const BATCH: usize = 2000;

/// The audit record of the running server. Cheap to share.
pub struct Audit {
    db: Db,
    key: AuditKey,
    checkpoint_log: PathBuf,
}

/// An access, as a handler reports it.
#[derive(Debug, Clone)]
pub struct Access {
    pub action: AccessAction,
    pub case_id: Option<i64>,
    pub detail: Value,
    pub address: Option<String>,
}

impl Audit {
    pub fn new(db: Db, key: AuditKey, checkpoint_log: PathBuf) -> Arc<Audit> {
        Arc::new(Audit { db, key, checkpoint_log })
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public()
    }

    /// Sign a manifest (a case's, or an export's snapshot of a case in progress).
    pub fn sign_manifest(&self, manifest: &Value) -> String {
        self.key.sign_manifest(manifest)
    }

    fn entry(by: &EventActor, a: Access) -> NewAccess {
        NewAccess {
            at_ms: crate::now_ms(),
            case_id: a.case_id,
            actor: by.clone(),
            action: a.action,
            detail: a.detail,
            address: a.address,
        }
    }

    /// Record an access before it is served: an access that cannot be recorded is refused.
    pub async fn access(&self, by: &EventActor, a: Access) -> Result<(), Error> {
        let entry = Self::entry(by, a);
        self.db.run(move |db| db.record_access(&entry)).await.map(drop).map_err(unrecorded)
    }

    /// Record an access once per `window_ms` for the same person and thing (one entry per
    /// viewing, not per request).
    pub async fn access_once(&self, by: &EventActor, a: Access, window_ms: u64) -> Result<(), Error> {
        let entry = Self::entry(by, a);
        let since = entry.at_ms.saturating_sub(window_ms);
        self.db.run(move |db| db.record_access_once(&entry, since)).await.map(drop).map_err(unrecorded)
    }

    /// Sign the head of the chain if it moved since the last checkpoint: into the database and
    /// onto the checkpoint log (flushed to disk). Returns the checkpoint written.
    pub async fn checkpoint(&self) -> Result<Option<Checkpoint>, Error> {
        let (head, last) =
            self.db.run(|db| Ok::<_, DataError>((db.audit_head()?, db.last_audit_checkpoint_seq()?))).await?;
        let Some((seq, hash)) = head else { return Ok(None) };
        if seq <= last {
            return Ok(None);
        }
        let cp = Checkpoint {
            seq,
            signature: self.key.sign_checkpoint(seq, &hash),
            hash,
            at_ms: crate::now_ms(),
            key_id: self.key.key_id(),
        };
        append_checkpoint_log(&self.checkpoint_log, &cp)?;
        let c = cp.clone();
        self.db.run(move |db| db.add_audit_checkpoint(&c)).await?;
        Ok(Some(cp))
    }

    /// Seal the manifests of the cases that are final and whose recordings are finished.
    pub async fn seal_due(&self) -> Result<usize, Error> {
        let due = self.db.run(|db| db.cases_to_seal(50)).await?;
        for case_id in &due {
            let manifest = build_manifest(&self.db, *case_id, &self.key.key_id()).await?;
            let signature = self.key.sign_manifest(&manifest);
            let (id, key_id) = (*case_id, self.key.key_id());
            match self.db.run(move |db| db.seal_case(id, &manifest, &key_id, &signature, crate::now_ms())).await {
                Ok(()) | Err(DataError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !due.is_empty() {
            tracing::info!(sealed = due.len(), "case manifests sealed");
        }
        Ok(due.len())
    }
}

fn unrecorded(e: DataError) -> Error {
    tracing::error!(error = %e, "recording an access failed; the access is refused");
    Rejection::new(
        RejectKind::Unavailable,
        "unavailable",
        "访问记录暂时无法保存,请稍后再试 (the access could not be recorded)",
    )
    .into()
}

/// Append a checkpoint to the log file (one JSON line), creating it (mode 0600) if needed.
pub fn append_checkpoint_log(path: &Path, cp: &Checkpoint) -> Result<(), Error> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let mut f = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    let line = serde_json::to_string(cp).map_err(|e| Error::Tool(format!("checkpoint: {e}")))?;
    f.write_all(format!("{line}\n").as_bytes())?;
    f.sync_data()?;
    Ok(())
}

/// The checkpoints of the log file (none if it does not exist). A line that cannot be read is
/// an error: the log was damaged.
pub fn read_checkpoint_log(path: &Path) -> Result<Vec<Checkpoint>, Error> {
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|e| {
            Error::Tool(format!("{} line {}: not a checkpoint ({e}): the log was damaged", path.display(), i + 1))
        })?);
    }
    Ok(out)
}

/// The manifest of a final case: what was decided and signed off, and the SHA-256 of every
/// paper, result document, recording segment and archive, and of its audit entries. Nothing
/// personal (the villager is not in it).
pub async fn build_manifest(db: &Db, case_id: i64, key_id: &str) -> Result<Value, Error> {
    let key_id = key_id.to_string();
    db.run(move |db| -> Result<Value, Error> {
        let case = db.case(case_id)?.ok_or_else(|| Rejection::not_found("case"))?;
        let papers = db.papers_of_case(case_id)?;
        let calls = db.calls_of_case(case_id)?;
        let mut recordings = Vec::new();
        for r in db.recordings_of_case(case_id)? {
            let segments = db.recording_segments(r.id)?;
            recordings.push(json!({
                "id": r.id, "room": r.room, "take": r.take, "participant": r.participant, "status": r.status,
                "archive": r.archive_key.as_ref().map(|k| json!({"key": k, "sha256": r.archive_sha256, "bytes": r.archive_bytes})),
                "segments": segments,
            }));
        }
        let audit: Vec<Value> = db
            .audit_of_case(case_id)?
            .iter()
            .map(|c| json!({"seq": c.entry.seq, "hash": c.hash, "action": c.entry.action}))
            .collect();
        let d = case.state.decision.as_ref();
        let so = case.state.signoff.as_ref();
        Ok(json!({
            "format": "cunneng-case-manifest/1",
            "key_id": key_id,
            "case": {
                "id": case.id, "case_no": case.case_no, "status": case.status(),
                "matter": {"id": case.matter_id, "name": case.matter_name},
                "village": {"id": case.village_id, "name": case.village_name},
                "town": {"id": case.town_id, "name": case.town_name},
                "created_at_ms": case.created_at_ms,
            },
            "decision": d.map(|d| json!({"outcome": d.outcome, "note": d.note, "missing_items": d.missing_items,
                "result_paper_id": d.result_paper_id, "by": d.by, "at_ms": d.at_ms})),
            "signoff": so.map(|s| json!({"decision": s.decision, "reason": s.reason, "by": s.by, "at_ms": s.at_ms})),
            "papers": papers.iter().map(|p| json!({"id": p.id, "kind": p.kind, "name": p.name,
                "content_type": p.content_type, "size": p.size, "sha256": p.sha256, "key": p.object_key})).collect::<Vec<_>>(),
            "calls": calls.iter().map(|c| json!({"id": c.id, "window": c.window.id, "staff": c.staff.as_ref().map(|s| s.id),
                "requested_at_ms": c.requested_at_ms, "answered_at_ms": c.answered_at_ms, "ended_at_ms": c.ended_at_ms,
                "end_reason": c.end_reason})).collect::<Vec<_>>(),
            "recordings": recordings,
            "audit": audit,
        }))
    })
    .await
}

/// What `cunneng audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Entries checked.
    pub entries: i64,
    /// Checkpoints checked (database and log file).
    pub checkpoints: usize,
    /// The first problem, if any.
    pub problem: Option<ChainError>,
    /// Timeline events with no matching entry of the chain (or a different one).
    pub unchained_events: Vec<i64>,
}

/// Check the whole chain, its checkpoints (from the database and from the log file) and that
/// every timeline event is the entry the chain holds for it.
pub async fn verify_chain(db: &Db, key: &PublicKey, checkpoint_log: &Path) -> Result<ChainReport, Error> {
    let mut hashes: Vec<String> = Vec::new();
    let mut events: Vec<(i64, Value)> = Vec::new();
    let mut head = crate::audit::Head::genesis();
    let mut problem = None;
    loop {
        let from = head.seq + 1;
        let batch = db.run(move |db| db.audit_entries(from, BATCH)).await?;
        if batch.is_empty() {
            break;
        }
        match crate::audit::verify_from(head.clone(), &batch) {
            Ok(h) => head = h,
            Err(e) => {
                problem = Some(e);
                break;
            }
        }
        for c in &batch {
            hashes.push(c.hash.clone());
            if c.entry.kind == crate::audit::EntryKind::CaseEvent
                && let Some(id) = c.entry.detail.get("event_id").and_then(Value::as_i64)
            {
                events.push((id, c.entry.detail.clone()));
            }
        }
    }
    let mut checkpoints = db.run(|db| db.audit_checkpoints()).await?;
    checkpoints.extend(read_checkpoint_log(checkpoint_log)?);
    if problem.is_none()
        && let Err(e) = crate::audit::verify_checkpoints(&hashes, &checkpoints, key)
    {
        problem = Some(e);
    }
    // Every timeline event must be in the chain with what the chain says.
    let chained: std::collections::HashMap<i64, Value> = events.into_iter().collect();
    let stored = db.run(|db| db.all_case_events()).await?;
    let mut unchained = Vec::new();
    for (case_id, e) in stored {
        let want = chained.get(&e.id);
        let same = want.is_some_and(|d| {
            d.get("event") == Some(&e.detail)
                && d.get("village_visible").and_then(Value::as_bool) == Some(e.village_visible)
        });
        if !same {
            unchained.push(e.id);
            tracing::debug!(case_id, event_id = e.id, "a timeline event differs from its audit entry");
        }
    }
    Ok(ChainReport {
        entries: hashes.len() as i64,
        checkpoints: checkpoints.len(),
        problem,
        unchained_events: unchained,
    })
}

/// Check a case's signed manifest: its signature, that it still matches the database (the
/// decision, the papers, the recordings, its audit entries), and that every object it names
/// decrypts to the bytes whose SHA-256 it records. Returns the problems found (none: good).
pub async fn verify_case(db: &Db, vault: &Vault, key: &PublicKey, case_no: &str) -> Result<Vec<String>, Error> {
    let no = case_no.to_string();
    let case = db.run(move |db| db.case_by_no(&no)).await?.ok_or_else(|| Rejection::not_found("case"))?;
    let id = case.id;
    let Some((manifest, key_id, signature, _)) = db.run(move |db| db.case_manifest(id)).await? else {
        return Err(Error::Tool(format!(
            "case {case_no} has no sealed manifest (it is not final yet, or its recordings are still being stored)"
        )));
    };
    let mut problems = Vec::new();
    if key_id != key.key_id() || !key.verify_manifest(&manifest, &signature) {
        problems.push("the manifest's signature is not valid for this server's key".to_string());
    }
    // The database still says what was sealed.
    let now = build_manifest(db, id, &key_id).await?;
    for field in ["case", "decision", "signoff", "papers", "calls", "recordings"] {
        if now.get(field) != manifest.get(field) {
            problems.push(format!("the database's {field} differs from the sealed manifest"));
        }
    }
    let chain = db.run(move |db| db.audit_of_case(id)).await?;
    for e in manifest["audit"].as_array().into_iter().flatten() {
        let seq = e["seq"].as_i64().unwrap_or_default();
        if !chain.iter().any(|c| c.entry.seq == seq && Some(c.hash.as_str()) == e["hash"].as_str()) {
            problems.push(format!("audit entry {seq} of the manifest is not in the chain as sealed"));
        }
    }
    // Every object, decrypted and hashed.
    let mut objects: Vec<(ObjectClass, String, String)> = Vec::new();
    for p in manifest["papers"].as_array().into_iter().flatten() {
        objects.push((ObjectClass::PAPERS, str_of(&p["key"]), str_of(&p["sha256"])));
    }
    for r in manifest["recordings"].as_array().into_iter().flatten() {
        for s in r["segments"].as_array().into_iter().flatten() {
            objects.push((ObjectClass::MEDIA, str_of(&s["key"]), str_of(&s["sha256"])));
        }
        if let Some(a) = r["archive"].as_object()
            && let Some(sha) = a.get("sha256").and_then(Value::as_str)
        {
            objects.push((ObjectClass::MEDIA, str_of(&a["key"]), sha.to_string()));
        }
    }
    for (class, key, want) in objects {
        match vault.get(class, &key).await {
            Ok(plain) if hex_sha256(&plain) == want => {}
            Ok(_) => problems.push(format!("{key}: its content does not match the manifest")),
            Err(e) => problems.push(format!("{key}: cannot be read ({e})")),
        }
    }
    Ok(problems)
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The timeline kinds that mark a moment of a call on the player's seek bar.
pub fn is_call_mark(kind: EventKind) -> bool {
    match kind {
        EventKind::PaperAdded
        | EventKind::PaperRetagged
        | EventKind::PaperRemoved
        | EventKind::RescanRequested
        | EventKind::Decided
        | EventKind::CallRequested
        | EventKind::CallAnswered
        | EventKind::CallEnded
        | EventKind::SignoffApproved
        | EventKind::SignoffReturned
        | EventKind::Finished
        | EventKind::OutcomeFinal => true,
        EventKind::Opened
        | EventKind::Resumed
        | EventKind::VillagerSet
        | EventKind::PaperViewed
        | EventKind::RatingGiven => false,
    }
}
