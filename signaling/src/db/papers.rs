//! Papers (sealed objects of a case, `scan` or `result`) and their resumable uploads.

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::events::{NewEvent, insert_event};
use super::{DataError, Db, bad_text, fk_not_found, row_ms, sql_ms};
use crate::case::{ActorKind, CaseEvent, EventActor, PaperKind, Status};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaperRow {
    pub id: i64,
    pub case_id: i64,
    pub kind: PaperKind,
    pub name: String,
    pub checklist_item: Option<String>,
    pub content_type: String,
    pub size: u64,
    /// Hex SHA-256 of the plaintext.
    pub sha256: String,
    pub object_key: String,
    /// Who uploaded it (a kiosk or a staff member).
    pub by: EventActor,
    pub created_at_ms: u64,
    /// When the village room took it back (kept for the record; no longer a paper of the case).
    pub removed_at_ms: Option<u64>,
}

/// A correction the village room makes to one of its scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaperChange {
    /// Which paper of the checklist it is (`None`: 其他材料).
    Retag(Option<String>),
    /// Taken back: kept, marked removed.
    Remove,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRow {
    pub id: String,
    pub case_id: i64,
    pub kind: PaperKind,
    pub name: String,
    pub checklist_item: Option<String>,
    pub size: u64,
    pub received: u64,
    pub chunks: u32,
    pub content_type: Option<String>,
    pub by: EventActor,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub paper_id: Option<i64>,
}

const PAPER_COLUMNS: &str = "id, case_id, kind, name, checklist_item, content_type, size, sha256, object_key, \
     by_kind, by_id, by_name, created_at_ms, removed_at_ms";

fn kind_col(s: String) -> rusqlite::Result<PaperKind> {
    PaperKind::parse(&s).ok_or_else(|| bad_text("paper kind", &s))
}

fn by_col(kind: String, id: i64, name: String) -> rusqlite::Result<EventActor> {
    Ok(EventActor { kind: ActorKind::parse(&kind).ok_or_else(|| bad_text("actor kind", &kind))?, id: Some(id), name })
}

fn paper_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PaperRow> {
    Ok(PaperRow {
        id: r.get(0)?,
        case_id: r.get(1)?,
        kind: kind_col(r.get(2)?)?,
        name: r.get(3)?,
        checklist_item: r.get(4)?,
        content_type: r.get(5)?,
        size: row_ms(r.get(6)?),
        sha256: r.get(7)?,
        object_key: r.get(8)?,
        by: by_col(r.get(9)?, r.get(10)?, r.get(11)?)?,
        created_at_ms: row_ms(r.get(12)?),
        removed_at_ms: r.get::<_, Option<i64>>(13)?.map(row_ms),
    })
}

const UPLOAD_COLUMNS: &str = "id, case_id, kind, name, checklist_item, size, received, chunks, content_type, \
     by_kind, by_id, by_name, created_at_ms, updated_at_ms, paper_id";

fn upload_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UploadRow> {
    Ok(UploadRow {
        id: r.get(0)?,
        case_id: r.get(1)?,
        kind: kind_col(r.get(2)?)?,
        name: r.get(3)?,
        checklist_item: r.get(4)?,
        size: row_ms(r.get(5)?),
        received: row_ms(r.get(6)?),
        chunks: r.get(7)?,
        content_type: r.get(8)?,
        by: by_col(r.get(9)?, r.get(10)?, r.get(11)?)?,
        created_at_ms: row_ms(r.get(12)?),
        updated_at_ms: row_ms(r.get(13)?),
        paper_id: r.get(14)?,
    })
}

impl Db {
    /// Register a new upload unless the case already has `max_open` unfinished ones.
    pub fn create_upload(&self, u: &UploadRow, max_open: usize) -> Result<(), DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let open: i64 = tx.query_row(
            "SELECT count(*) FROM paper_uploads WHERE case_id = ?1 AND paper_id IS NULL",
            [u.case_id],
            |r| r.get(0),
        )?;
        if usize::try_from(open).unwrap_or(usize::MAX) >= max_open {
            return Err(DataError::Conflict("too many unfinished uploads".into()));
        }
        tx.execute(
            "INSERT INTO paper_uploads (id, case_id, kind, name, checklist_item, size, received, chunks, content_type,
                 by_kind, by_id, by_name, created_at_ms, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0, NULL, ?7, ?8, ?9, ?10, ?10)",
            params![
                u.id,
                u.case_id,
                u.kind.as_str(),
                u.name,
                u.checklist_item,
                sql_ms(u.size),
                u.by.kind.as_str(),
                u.by.id.unwrap_or_default(),
                u.by.name,
                sql_ms(u.created_at_ms)
            ],
        )
        .map_err(|e| fk_not_found(e, "case"))?;
        tx.commit()?;
        Ok(())
    }

    pub fn upload(&self, id: &str) -> Result<Option<UploadRow>, DataError> {
        let sql = format!("SELECT {UPLOAD_COLUMNS} FROM paper_uploads WHERE id = ?1");
        Ok(self.conn().query_row(&sql, [id], upload_row).optional()?)
    }

    /// A chunk of `len` bytes at `offset` is stored: advance the upload. Conflict if the
    /// offset moved meanwhile or the upload is complete.
    pub fn upload_chunk_stored(
        &self,
        id: &str,
        offset: u64,
        len: u64,
        content_type: Option<&str>,
        now_ms: u64,
    ) -> Result<(), DataError> {
        let n = self.conn().execute(
            "UPDATE paper_uploads SET received = received + ?3, chunks = chunks + 1,
                    content_type = COALESCE(content_type, ?4), updated_at_ms = ?5
             WHERE id = ?1 AND received = ?2 AND paper_id IS NULL AND received + ?3 <= size",
            params![id, sql_ms(offset), sql_ms(len), content_type, sql_ms(now_ms)],
        )?;
        if n == 0 {
            return Err(DataError::Conflict(format!("upload {id} moved on")));
        }
        Ok(())
    }

    /// The upload is complete and its paper stored: write the paper, link the upload to it
    /// and add its `paper.added` event by `actor`, in one transaction. Returns the paper id.
    pub fn complete_upload(&self, upload_id: &str, p: &PaperRow, actor: &EventActor) -> Result<i64, DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let open: Option<i64> = tx
            .query_row("SELECT 1 FROM paper_uploads WHERE id = ?1 AND paper_id IS NULL", [upload_id], |r| r.get(0))
            .optional()?;
        if open.is_none() {
            return Err(DataError::Conflict(format!("upload {upload_id} is gone or complete")));
        }
        tx.execute(
            "INSERT INTO papers (case_id, kind, name, checklist_item, content_type, size, sha256, object_key,
                 by_kind, by_id, by_name, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                p.case_id,
                p.kind.as_str(),
                p.name,
                p.checklist_item,
                p.content_type,
                sql_ms(p.size),
                p.sha256,
                p.object_key,
                p.by.kind.as_str(),
                p.by.id.unwrap_or_default(),
                p.by.name,
                sql_ms(p.created_at_ms)
            ],
        )
        .map_err(|e| fk_not_found(e, "case"))?;
        let paper_id = tx.last_insert_rowid();
        let n = tx.execute(
            "UPDATE paper_uploads SET paper_id = ?2, updated_at_ms = ?3 WHERE id = ?1 AND paper_id IS NULL",
            params![upload_id, paper_id, sql_ms(p.created_at_ms)],
        )?;
        if n == 0 {
            return Err(DataError::Conflict(format!("upload {upload_id} already complete")));
        }
        let event = CaseEvent::PaperAdded {
            kind: p.kind,
            checklist_item: p.checklist_item.clone(),
            size: p.size,
            content_type: p.content_type.clone(),
            paper_id,
        };
        insert_event(&tx, p.case_id, &NewEvent { at_ms: p.created_at_ms, actor: actor.clone(), event })?;
        tx.execute("UPDATE cases SET updated_at_ms = ?2 WHERE id = ?1", params![p.case_id, sql_ms(p.created_at_ms)])?;
        tx.execute("DELETE FROM object_intents WHERE object_key = ?1", [&p.object_key])?;
        tx.commit()?;
        Ok(paper_id)
    }

    pub fn delete_upload(&self, id: &str) -> Result<(), DataError> {
        self.conn().execute("DELETE FROM paper_uploads WHERE id = ?1", [id])?;
        Ok(())
    }

    /// Uploads (finished or not) not touched since `before_ms`.
    pub fn uploads_idle_since(&self, before_ms: u64) -> Result<Vec<UploadRow>, DataError> {
        let sql = format!("SELECT {UPLOAD_COLUMNS} FROM paper_uploads WHERE updated_at_ms < ?1 ORDER BY updated_at_ms");
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map([sql_ms(before_ms)], upload_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn papers_of_case(&self, case_id: i64) -> Result<Vec<PaperRow>, DataError> {
        let sql = format!("SELECT {PAPER_COLUMNS} FROM papers WHERE case_id = ?1 ORDER BY id");
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map([case_id], paper_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Correct a paper of the case at `at_ms`, with its timeline `events`, in one transaction,
    /// on condition that the case is still `from` and the paper not removed (else `Conflict`).
    /// Returns the paper as stored.
    pub fn change_paper(
        &self,
        case_id: i64,
        from: Status,
        paper_id: i64,
        change: &PaperChange,
        events: &[NewEvent],
        at_ms: u64,
    ) -> Result<PaperRow, DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE cases SET updated_at_ms = ?3 WHERE id = ?1 AND status = ?2",
            params![case_id, from.as_str(), sql_ms(at_ms)],
        )?;
        if n == 0 {
            return Err(DataError::Conflict(format!("case {case_id} is no longer {from}")));
        }
        let n = match change {
            PaperChange::Retag(item) => tx.execute(
                "UPDATE papers SET checklist_item = ?3 WHERE id = ?1 AND case_id = ?2 AND removed_at_ms IS NULL",
                params![paper_id, case_id, item],
            )?,
            PaperChange::Remove => tx.execute(
                "UPDATE papers SET removed_at_ms = ?3 WHERE id = ?1 AND case_id = ?2 AND removed_at_ms IS NULL",
                params![paper_id, case_id, sql_ms(at_ms)],
            )?,
        };
        if n == 0 {
            return Err(DataError::Conflict(format!("paper {paper_id} was removed meanwhile")));
        }
        for event in events {
            insert_event(&tx, case_id, event)?;
        }
        let sql = format!("SELECT {PAPER_COLUMNS} FROM papers WHERE id = ?1");
        let paper = tx.query_row(&sql, [paper_id], paper_row)?;
        tx.commit()?;
        Ok(paper)
    }

    pub fn paper(&self, paper_id: i64) -> Result<Option<PaperRow>, DataError> {
        let sql = format!("SELECT {PAPER_COLUMNS} FROM papers WHERE id = ?1");
        Ok(self.conn().query_row(&sql, [paper_id], paper_row).optional()?)
    }
}
