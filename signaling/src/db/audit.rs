//! The audit record as stored: the hash chain (`audit_log`), its signed checkpoints, the signed
//! case manifests. Entries are only ever appended, each in the transaction of the change it
//! records (case events) or on its own (accesses). The rules are `crate::audit`.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::Value;

use super::{DataError, Db, bad_text, row_ms, sql_ms};
use crate::audit::{Chained, Checkpoint, Entry, EntryActor, EntryKind, GENESIS};
use crate::case::EventActor;

/// An access to record: who looked at, searched, exported or decrypted what.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAccess {
    pub at_ms: u64,
    pub case_id: Option<i64>,
    pub actor: EventActor,
    pub action: crate::audit::AccessAction,
    /// JSON without personal data.
    pub detail: Value,
    pub address: Option<String>,
}

/// An access entry as the case page and the report show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AccessRow {
    pub seq: i64,
    pub at_ms: u64,
    pub case_id: Option<i64>,
    pub case_no: Option<String>,
    pub actor: EntryActor,
    pub action: String,
    pub detail: Value,
    pub address: Option<String>,
}

fn actor_of(a: &EventActor) -> EntryActor {
    EntryActor { kind: a.kind.as_str().to_string(), id: a.id, name: a.name.clone() }
}

/// Append an entry after the current head (inside the caller's transaction).
#[allow(clippy::too_many_arguments)]
pub(super) fn append(
    conn: &Connection,
    kind: EntryKind,
    at_ms: u64,
    case_id: Option<i64>,
    actor: &EventActor,
    action: &str,
    detail: Value,
    address: Option<&str>,
) -> Result<i64, DataError> {
    let head: Option<(i64, String)> = conn
        .query_row("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, prev) = match head {
        Some((s, h)) => (s + 1, h),
        None => (1, GENESIS.to_string()),
    };
    let entry = Entry {
        seq,
        at_ms,
        kind,
        case_id,
        actor: actor_of(actor),
        action: action.to_string(),
        detail,
        address: address.map(str::to_string),
    };
    let c = crate::audit::chain(&prev, entry);
    conn.execute(
        "INSERT INTO audit_log (seq, at_ms, kind, case_id, actor_kind, actor_id, actor_name, action, detail, address,
                                prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            c.entry.seq,
            sql_ms(c.entry.at_ms),
            c.entry.kind.as_str(),
            c.entry.case_id,
            c.entry.actor.kind,
            c.entry.actor.id,
            c.entry.actor.name,
            c.entry.action,
            c.entry.detail.to_string(),
            c.entry.address,
            c.prev_hash,
            c.hash,
        ],
    )?;
    Ok(seq)
}

const ENTRY_COLUMNS: &str =
    "seq, at_ms, kind, case_id, actor_kind, actor_id, actor_name, action, detail, address, prev_hash, hash";

fn chained_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Chained> {
    let kind: String = r.get(2)?;
    let detail: String = r.get(8)?;
    Ok(Chained {
        entry: Entry {
            seq: r.get(0)?,
            at_ms: row_ms(r.get(1)?),
            kind: EntryKind::parse(&kind).ok_or_else(|| bad_text("audit entry kind", &kind))?,
            case_id: r.get(3)?,
            actor: EntryActor { kind: r.get(4)?, id: r.get(5)?, name: r.get(6)? },
            action: r.get(7)?,
            // A detail that is not JSON any more was changed: keep it as text so that the
            // hash check reports the entry.
            detail: serde_json::from_str(&detail).unwrap_or(Value::String(detail)),
            address: r.get(9)?,
        },
        prev_hash: r.get(10)?,
        hash: r.get(11)?,
    })
}

impl super::Tx<'_> {
    /// Record an administrative change inside the transaction that makes it (both or neither).
    pub fn record_admin_change(
        &self,
        at_ms: u64,
        by: &EventActor,
        change: &crate::audit::AdminChange,
    ) -> Result<i64, DataError> {
        append(self.tx, EntryKind::Admin, at_ms, None, by, &change.action(), change.entry_detail(), None)
    }
}

impl Db {
    /// Administrative changes, newest first (the admin page's history).
    pub fn admin_changes(&self, limit: usize) -> Result<Vec<AccessRow>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT seq, at_ms, actor_kind, actor_id, actor_name, action, detail, address FROM audit_log
             WHERE kind = 'admin' ORDER BY seq DESC LIMIT ?1",
        )?;
        let rows = st.query_map([limit as i64], |r| {
            let detail: String = r.get(6)?;
            Ok(AccessRow {
                seq: r.get(0)?,
                at_ms: row_ms(r.get(1)?),
                case_id: None,
                case_no: None,
                actor: EntryActor { kind: r.get(2)?, id: r.get(3)?, name: r.get(4)? },
                action: r.get(5)?,
                detail: serde_json::from_str(&detail).unwrap_or(Value::String(detail)),
                address: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Record an access (its own transaction).
    pub fn record_access(&self, a: &NewAccess) -> Result<i64, DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let seq = append(
            &tx,
            EntryKind::Access,
            a.at_ms,
            a.case_id,
            &a.actor,
            a.action.as_str(),
            a.detail.clone(),
            a.address.as_deref(),
        )?;
        tx.commit()?;
        Ok(seq)
    }

    /// Record an access unless the same actor recorded the same action with the same detail
    /// since `since_ms` (one entry per viewing, not per request). Returns the entry written.
    pub fn record_access_once(&self, a: &NewAccess, since_ms: u64) -> Result<Option<i64>, DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let seen: Option<i64> = tx
            .query_row(
                "SELECT seq FROM audit_log WHERE kind = 'access' AND action = ?1 AND actor_kind = ?2
                   AND actor_id IS ?3 AND case_id IS ?4 AND detail = ?5 AND at_ms >= ?6
                 ORDER BY seq DESC LIMIT 1",
                params![
                    a.action.as_str(),
                    a.actor.kind.as_str(),
                    a.actor.id,
                    a.case_id,
                    a.detail.to_string(),
                    sql_ms(since_ms)
                ],
                |r| r.get(0),
            )
            .optional()?;
        if seen.is_some() {
            return Ok(None);
        }
        let seq = append(
            &tx,
            EntryKind::Access,
            a.at_ms,
            a.case_id,
            &a.actor,
            a.action.as_str(),
            a.detail.clone(),
            a.address.as_deref(),
        )?;
        tx.commit()?;
        Ok(Some(seq))
    }

    /// Entries from `from_seq` on, at most `limit`, in order (verification reads in batches).
    pub fn audit_entries(&self, from_seq: i64, limit: usize) -> Result<Vec<Chained>, DataError> {
        let conn = self.conn();
        let mut st =
            conn.prepare(&format!("SELECT {ENTRY_COLUMNS} FROM audit_log WHERE seq >= ?1 ORDER BY seq LIMIT ?2"))?;
        let rows = st.query_map(params![from_seq, i64::try_from(limit).unwrap_or(i64::MAX)], chained_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The newest entry's (seq, hash).
    pub fn audit_head(&self) -> Result<Option<(i64, String)>, DataError> {
        Ok(self
            .conn()
            .query_row("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// A case's entries, in order.
    pub fn audit_of_case(&self, case_id: i64) -> Result<Vec<Chained>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!("SELECT {ENTRY_COLUMNS} FROM audit_log WHERE case_id = ?1 ORDER BY seq"))?;
        let rows = st.query_map([case_id], chained_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Accesses, newest first: of one case, or (for the county report) by person and time.
    pub fn accesses(
        &self,
        case_id: Option<i64>,
        actor_id: Option<i64>,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<AccessRow>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT a.seq, a.at_ms, a.case_id, c.case_no, a.actor_kind, a.actor_id, a.actor_name, a.action, a.detail,
                    a.address
             FROM audit_log a LEFT JOIN cases c ON c.id = a.case_id
             WHERE a.kind = 'access' AND (?1 IS NULL OR a.case_id = ?1) AND (?2 IS NULL OR a.actor_id = ?2)
               AND a.at_ms >= ?3 AND a.at_ms < ?4
             ORDER BY a.seq DESC LIMIT ?5",
        )?;
        let rows = st.query_map(
            params![case_id, actor_id, sql_ms(from_ms), sql_ms(to_ms), i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| {
                let detail: String = r.get(8)?;
                Ok(AccessRow {
                    seq: r.get(0)?,
                    at_ms: row_ms(r.get(1)?),
                    case_id: r.get(2)?,
                    case_no: r.get(3)?,
                    actor: EntryActor { kind: r.get(4)?, id: r.get(5)?, name: r.get(6)? },
                    action: r.get(7)?,
                    detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
                    address: r.get(9)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    // --- checkpoints ---------------------------------------------------------------------------

    pub fn audit_checkpoints(&self) -> Result<Vec<Checkpoint>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT seq, hash, at_ms, key_id, signature FROM audit_checkpoints ORDER BY seq")?;
        let rows = st.query_map([], |r| {
            Ok(Checkpoint {
                seq: r.get(0)?,
                hash: r.get(1)?,
                at_ms: row_ms(r.get(2)?),
                key_id: r.get(3)?,
                signature: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn last_audit_checkpoint_seq(&self) -> Result<i64, DataError> {
        Ok(self.conn().query_row("SELECT COALESCE(MAX(seq), 0) FROM audit_checkpoints", [], |r| r.get(0))?)
    }

    pub fn add_audit_checkpoint(&self, cp: &Checkpoint) -> Result<(), DataError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO audit_checkpoints (seq, hash, at_ms, key_id, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![cp.seq, cp.hash, sql_ms(cp.at_ms), cp.key_id, cp.signature],
        )?;
        Ok(())
    }

    // --- case manifests --------------------------------------------------------------------------

    /// Final cases without a manifest whose calls have ended and whose recordings are finished,
    /// oldest first.
    pub fn cases_to_seal(&self, limit: usize) -> Result<Vec<i64>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT c.id FROM cases c
             WHERE c.status IN ('done', 'refused')
               AND NOT EXISTS (SELECT 1 FROM case_manifests m WHERE m.case_id = c.id)
               AND NOT EXISTS (SELECT 1 FROM calls l WHERE l.case_id = c.id AND l.ended_at_ms IS NULL)
               AND NOT EXISTS (SELECT 1 FROM recordings r WHERE r.case_id = c.id AND r.status = 'recording')
             ORDER BY c.id LIMIT ?1",
        )?;
        let rows = st.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Store a case's signed manifest and its `case.sealed` entry, in one transaction.
    pub fn seal_case(
        &self,
        case_id: i64,
        manifest: &Value,
        key_id: &str,
        signature: &str,
        at_ms: u64,
    ) -> Result<(), DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "INSERT OR IGNORE INTO case_manifests (case_id, sealed_at_ms, manifest, key_id, signature)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![case_id, sql_ms(at_ms), crate::audit::canonical_json(manifest), key_id, signature],
        )?;
        if n == 0 {
            return Err(DataError::Conflict(format!("case {case_id} is sealed already")));
        }
        let hash = crate::audit::manifest_hash(manifest);
        append(
            &tx,
            EntryKind::CaseEvent,
            at_ms,
            Some(case_id),
            &EventActor::system(),
            "case.sealed",
            serde_json::json!({"manifest_sha256": hash, "key_id": key_id}),
            None,
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A case's signed manifest: (manifest, key id, signature, sealed at).
    pub fn case_manifest(&self, case_id: i64) -> Result<Option<(Value, String, String, u64)>, DataError> {
        let row: Option<(String, String, String, i64)> = self
            .conn()
            .query_row(
                "SELECT manifest, key_id, signature, sealed_at_ms FROM case_manifests WHERE case_id = ?1",
                [case_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        match row {
            Some((m, k, s, at)) => Ok(Some((serde_json::from_str(&m)?, k, s, row_ms(at)))),
            None => Ok(None),
        }
    }
}
