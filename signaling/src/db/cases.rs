//! SQL for cases in full (docs/cases-api.md): villager details, decisions and sign-off, the
//! timeline, papers and resumable uploads, ratings, the village inbox and bookings.
//!
//! Every state change is one transaction that also writes its timeline event, and is
//! conditional on the status it starts from: a change that lost a race is
//! [`DataError::Conflict`] and writes nothing.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};

use super::{DataError, Db, NamedRef, fk_not_found, row_ms, sql_ms};

/// Statuses after which nothing about the decision changes any more.
pub const FINAL_STATUSES: [&str; 2] = ["done", "refused"];

/// One case with everything shown about it (names of matter, village, town, deciders).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRecord {
    pub id: i64,
    pub case_no: String,
    pub matter_id: i64,
    pub matter_name: String,
    pub matter_plain_name: String,
    pub required_papers: Vec<String>,
    pub needs_signoff: bool,
    pub village_id: i64,
    pub village_name: String,
    pub town_id: i64,
    pub town_name: String,
    pub kiosk_id: Option<i64>,
    pub status: String,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub villager_name: Option<String>,
    pub villager_phone: Option<String>,
    pub id_number_masked: Option<String>,
    pub outcome: Option<String>,
    pub outcome_note: Option<String>,
    pub missing_items: Vec<String>,
    pub result_paper_id: Option<i64>,
    pub decided_by: Option<NamedRef>,
    pub decided_at_ms: Option<u64>,
    pub signoff_by: Option<NamedRef>,
    pub signoff_at_ms: Option<u64>,
    pub signoff_decision: Option<String>,
    pub signoff_reason: Option<String>,
}

impl CaseRecord {
    pub fn is_final(&self) -> bool {
        FINAL_STATUSES.contains(&self.status.as_str())
    }
}

/// Whose cases a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseScope {
    Village(i64),
    Town(i64),
    County,
}

/// Who did something on a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// `kiosk`, `staff` or `system`.
    pub kind: &'static str,
    pub id: Option<i64>,
    pub name: String,
}

/// A timeline event to write.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub at_ms: u64,
    pub actor: Actor,
    pub kind: &'static str,
    /// JSON without personal data.
    pub detail: serde_json::Value,
    /// Shown to the village (kiosk) as well as to staff.
    pub village_visible: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: i64,
    pub at_ms: u64,
    pub actor_kind: String,
    pub actor_id: Option<i64>,
    pub actor_name: String,
    pub kind: String,
    pub detail: serde_json::Value,
    pub village_visible: bool,
}

/// One call leg of a case, with names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseCall {
    pub id: i64,
    pub window: NamedRef,
    pub staff: Option<NamedRef>,
    pub kiosk_id: i64,
    pub requested_at_ms: u64,
    pub answered_at_ms: Option<u64>,
    pub ended_at_ms: Option<u64>,
    pub end_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaperRow {
    pub id: i64,
    pub case_id: i64,
    /// `scan` or `result`.
    pub kind: String,
    pub name: String,
    pub checklist_item: Option<String>,
    pub content_type: String,
    pub size: u64,
    /// Hex SHA-256 of the plaintext.
    pub sha256: String,
    pub object_key: String,
    pub by_kind: String,
    pub by_id: i64,
    pub by_name: String,
    pub created_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRow {
    pub id: String,
    pub case_id: i64,
    pub kind: String,
    pub name: String,
    pub checklist_item: Option<String>,
    pub size: u64,
    pub received: u64,
    pub chunks: u32,
    pub content_type: Option<String>,
    pub by_kind: String,
    pub by_id: i64,
    pub by_name: String,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub paper_id: Option<i64>,
}

/// A decision to record on a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    /// The status the case gets.
    pub status: &'a str,
    pub outcome: &'a str,
    pub note: &'a str,
    pub missing_items: &'a [String],
    pub result_paper_id: Option<i64>,
    pub by: i64,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingRow {
    pub call_id: i64,
    pub rating: String,
    pub comment: Option<String>,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRow {
    pub id: i64,
    pub case_id: i64,
    pub created_at_ms: u64,
    pub read_at_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRow {
    pub id: i64,
    pub village: NamedRef,
    pub kiosk_id: Option<i64>,
    pub matter_id: i64,
    pub matter_name: String,
    pub matter_plain_name: String,
    pub window: NamedRef,
    pub town_id: i64,
    pub start_ms: u64,
    pub end_ms: u64,
    pub note: Option<String>,
    pub status: String,
    pub case_no: Option<String>,
    pub created_at_ms: u64,
}

/// Whose bookings a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingScope {
    Village(i64),
    Window(i64),
    Town(i64),
    County,
}

const CASE_SELECT: &str =
    "SELECT c.id, c.case_no, c.matter_id, m.name, m.plain_name, m.required_papers, m.needs_signoff,
        c.village_id, v.name, v.town_id, t.name, c.kiosk_id, c.status, c.created_at_ms, c.updated_at_ms,
        c.villager_name, c.villager_phone, c.id_number_masked, c.outcome, c.outcome_note, c.missing_items,
        c.result_paper_id, c.decided_by, du.display_name, c.decided_at_ms, c.signoff_by, su.display_name,
        c.signoff_at_ms, c.signoff_decision, c.signoff_reason
     FROM cases c
     JOIN matters m ON m.id = c.matter_id
     JOIN villages v ON v.id = c.village_id
     JOIN towns t ON t.id = v.town_id
     LEFT JOIN users du ON du.id = c.decided_by
     LEFT JOIN users su ON su.id = c.signoff_by";

fn json_list(s: Option<String>) -> Vec<String> {
    s.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default()
}

fn named(id: Option<i64>, name: Option<String>) -> Option<NamedRef> {
    id.map(|id| NamedRef { id, name: name.unwrap_or_default() })
}

fn case_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaseRecord> {
    let created_at_ms = row_ms(r.get(13)?);
    Ok(CaseRecord {
        id: r.get(0)?,
        case_no: r.get(1)?,
        matter_id: r.get(2)?,
        matter_name: r.get(3)?,
        matter_plain_name: r.get(4)?,
        required_papers: json_list(r.get(5)?),
        needs_signoff: r.get(6)?,
        village_id: r.get(7)?,
        village_name: r.get(8)?,
        town_id: r.get(9)?,
        town_name: r.get(10)?,
        kiosk_id: r.get(11)?,
        status: r.get(12)?,
        created_at_ms,
        updated_at_ms: r.get::<_, Option<i64>>(14)?.map(row_ms).unwrap_or(created_at_ms),
        villager_name: r.get(15)?,
        villager_phone: r.get(16)?,
        id_number_masked: r.get(17)?,
        outcome: r.get(18)?,
        outcome_note: r.get(19)?,
        missing_items: json_list(r.get(20)?),
        result_paper_id: r.get(21)?,
        decided_by: named(r.get(22)?, r.get(23)?),
        decided_at_ms: r.get::<_, Option<i64>>(24)?.map(row_ms),
        signoff_by: named(r.get(25)?, r.get(26)?),
        signoff_at_ms: r.get::<_, Option<i64>>(27)?.map(row_ms),
        signoff_decision: r.get(28)?,
        signoff_reason: r.get(29)?,
    })
}

const PAPER_COLUMNS: &str = "id, case_id, kind, name, checklist_item, content_type, size, sha256, object_key, \
     by_kind, by_id, by_name, created_at_ms";

fn paper_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PaperRow> {
    Ok(PaperRow {
        id: r.get(0)?,
        case_id: r.get(1)?,
        kind: r.get(2)?,
        name: r.get(3)?,
        checklist_item: r.get(4)?,
        content_type: r.get(5)?,
        size: row_ms(r.get(6)?),
        sha256: r.get(7)?,
        object_key: r.get(8)?,
        by_kind: r.get(9)?,
        by_id: r.get(10)?,
        by_name: r.get(11)?,
        created_at_ms: row_ms(r.get(12)?),
    })
}

const UPLOAD_COLUMNS: &str = "id, case_id, kind, name, checklist_item, size, received, chunks, content_type, \
     by_kind, by_id, by_name, created_at_ms, updated_at_ms, paper_id";

fn upload_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UploadRow> {
    Ok(UploadRow {
        id: r.get(0)?,
        case_id: r.get(1)?,
        kind: r.get(2)?,
        name: r.get(3)?,
        checklist_item: r.get(4)?,
        size: row_ms(r.get(5)?),
        received: row_ms(r.get(6)?),
        chunks: r.get(7)?,
        content_type: r.get(8)?,
        by_kind: r.get(9)?,
        by_id: r.get(10)?,
        by_name: r.get(11)?,
        created_at_ms: row_ms(r.get(12)?),
        updated_at_ms: row_ms(r.get(13)?),
        paper_id: r.get(14)?,
    })
}

const BOOKING_SELECT: &str = "SELECT b.id, b.village_id, v.name, b.kiosk_id, b.matter_id, m.name, m.plain_name,
        b.window_id, w.name, w.town_id, b.start_ms, b.end_ms, b.note, b.status, c.case_no, b.created_at_ms
     FROM bookings b
     JOIN villages v ON v.id = b.village_id
     JOIN matters m ON m.id = b.matter_id
     JOIN windows w ON w.id = b.window_id
     LEFT JOIN cases c ON c.id = b.case_id";

fn booking_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BookingRow> {
    Ok(BookingRow {
        id: r.get(0)?,
        village: NamedRef { id: r.get(1)?, name: r.get(2)? },
        kiosk_id: r.get(3)?,
        matter_id: r.get(4)?,
        matter_name: r.get(5)?,
        matter_plain_name: r.get(6)?,
        window: NamedRef { id: r.get(7)?, name: r.get(8)? },
        town_id: r.get(9)?,
        start_ms: row_ms(r.get(10)?),
        end_ms: row_ms(r.get(11)?),
        note: r.get(12)?,
        status: r.get(13)?,
        case_no: r.get(14)?,
        created_at_ms: row_ms(r.get(15)?),
    })
}

fn insert_event(conn: &Connection, case_id: i64, ev: &NewEvent) -> Result<(), DataError> {
    conn.execute(
        "INSERT INTO case_events (case_id, at_ms, actor_kind, actor_id, actor_name, kind, detail, village_visible)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            case_id,
            sql_ms(ev.at_ms),
            ev.actor.kind,
            ev.actor.id,
            ev.actor.name,
            ev.kind,
            ev.detail.to_string(),
            ev.village_visible
        ],
    )
    .map_err(|e| fk_not_found(e, "case"))?;
    Ok(())
}

/// `?, ?, ?` placeholders from `start` (1-based) for `n` values.
fn placeholders(start: usize, n: usize) -> String {
    (start..start + n).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
}

impl Db {
    // --- cases -------------------------------------------------------------------------------

    pub fn case_record(&self, case_id: i64) -> Result<Option<CaseRecord>, DataError> {
        let sql = format!("{CASE_SELECT} WHERE c.id = ?1");
        Ok(self.conn().query_row(&sql, [case_id], case_row).optional()?)
    }

    pub fn case_by_no(&self, case_no: &str) -> Result<Option<CaseRecord>, DataError> {
        let sql = format!("{CASE_SELECT} WHERE c.case_no = ?1");
        Ok(self.conn().query_row(&sql, [case_no], case_row).optional()?)
    }

    /// Cases in `scope`, newest first; `statuses` filters when given.
    pub fn cases_in_scope(
        &self,
        scope: CaseScope,
        statuses: Option<&[&str]>,
        limit: usize,
        oldest_first: bool,
    ) -> Result<Vec<CaseRecord>, DataError> {
        let mut args: Vec<SqlValue> = Vec::new();
        let mut sql = format!("{CASE_SELECT} WHERE 1 = 1");
        match scope {
            CaseScope::Village(v) => {
                args.push(v.into());
                sql.push_str(&format!(" AND c.village_id = ?{}", args.len()));
            }
            CaseScope::Town(t) => {
                args.push(t.into());
                sql.push_str(&format!(" AND v.town_id = ?{}", args.len()));
            }
            CaseScope::County => {}
        }
        if let Some(st) = statuses {
            let start = args.len() + 1;
            args.extend(st.iter().map(|s| SqlValue::from(s.to_string())));
            sql.push_str(&format!(" AND c.status IN ({})", placeholders(start, st.len())));
        }
        sql.push_str(if oldest_first { " ORDER BY c.id ASC" } else { " ORDER BY c.id DESC" });
        args.push(SqlValue::from(i64::try_from(limit).unwrap_or(i64::MAX)));
        sql.push_str(&format!(" LIMIT ?{}", args.len()));
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(params_from_iter(args), case_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The case of the kiosk's call that has not ended (waiting or live), if any.
    pub fn current_case_of_kiosk(&self, kiosk_id: i64) -> Result<Option<CaseRecord>, DataError> {
        let id: Option<i64> = self
            .conn()
            .query_row(
                "SELECT case_id FROM calls WHERE kiosk_id = ?1 AND ended_at_ms IS NULL ORDER BY id DESC LIMIT 1",
                [kiosk_id],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => self.case_record(id),
            None => Ok(None),
        }
    }

    /// Set the villager of a case that is not final.
    pub fn set_villager(
        &self,
        case_id: i64,
        name: &str,
        phone: &str,
        id_masked: Option<&str>,
        id_sealed: Option<&[u8]>,
        ev: &NewEvent,
    ) -> Result<(), DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE cases SET villager_name = ?2, villager_phone = ?3, id_number_masked = ?4, id_number_sealed = ?5,
                    updated_at_ms = ?6
             WHERE id = ?1 AND status NOT IN ('done', 'refused')",
            params![case_id, name, phone, id_masked, id_sealed, sql_ms(ev.at_ms)],
        )?;
        if n == 0 {
            return Err(DataError::Conflict(format!("case {case_id} is closed")));
        }
        insert_event(&tx, case_id, ev)?;
        tx.commit()?;
        Ok(())
    }

    /// Change the status from one of `from` to `to`, with its event.
    pub fn set_case_status(&self, case_id: i64, from: &[&str], to: &str, ev: &NewEvent) -> Result<(), DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sql = format!(
            "UPDATE cases SET status = ?1, updated_at_ms = ?2 WHERE id = ?3 AND status IN ({})",
            placeholders(4, from.len())
        );
        let mut args: Vec<SqlValue> = vec![to.to_string().into(), sql_ms(ev.at_ms).into(), case_id.into()];
        args.extend(from.iter().map(|s| SqlValue::from(s.to_string())));
        if tx.execute(&sql, params_from_iter(args))? == 0 {
            return Err(DataError::Conflict(format!("case {case_id} is not in {from:?}")));
        }
        insert_event(&tx, case_id, ev)?;
        tx.commit()?;
        Ok(())
    }

    /// Record a decision on a case whose status is one of `from`.
    pub fn decide(&self, case_id: i64, from: &[&str], d: &Decision<'_>, ev: &NewEvent) -> Result<(), DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sql = format!(
            "UPDATE cases SET status = ?1, outcome = ?2, outcome_note = ?3, missing_items = ?4, result_paper_id = ?5,
                    decided_by = ?6, decided_at_ms = ?7, updated_at_ms = ?7
             WHERE id = ?8 AND status IN ({})",
            placeholders(9, from.len())
        );
        let mut args: Vec<SqlValue> = vec![
            d.status.to_string().into(),
            d.outcome.to_string().into(),
            d.note.to_string().into(),
            serde_json::to_string(d.missing_items)?.into(),
            d.result_paper_id.into(),
            d.by.into(),
            sql_ms(d.at_ms).into(),
            case_id.into(),
        ];
        args.extend(from.iter().map(|s| SqlValue::from(s.to_string())));
        if tx.execute(&sql, params_from_iter(args)).map_err(|e| fk_not_found(e, "user"))? == 0 {
            return Err(DataError::Conflict(format!("case {case_id} is not in {from:?}")));
        }
        insert_event(&tx, case_id, ev)?;
        tx.commit()?;
        Ok(())
    }

    /// A chief's sign-off of a case in `signoff`: `to` is the status it gets (`done`,
    /// `refused`, or `returned`).
    pub fn sign_off(
        &self,
        case_id: i64,
        chief: i64,
        to: &str,
        decision: &str,
        reason: Option<&str>,
        ev: &NewEvent,
    ) -> Result<(), DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx
            .execute(
                "UPDATE cases SET status = ?2, signoff_by = ?3, signoff_at_ms = ?4, signoff_decision = ?5,
                        signoff_reason = ?6, updated_at_ms = ?4
                 WHERE id = ?1 AND status = 'signoff'",
                params![case_id, to, chief, sql_ms(ev.at_ms), decision, reason],
            )
            .map_err(|e| fk_not_found(e, "user"))?;
        if n == 0 {
            return Err(DataError::Conflict(format!("case {case_id} is not waiting for sign-off")));
        }
        insert_event(&tx, case_id, ev)?;
        tx.commit()?;
        Ok(())
    }

    pub fn add_case_event(&self, case_id: i64, ev: &NewEvent) -> Result<(), DataError> {
        insert_event(&self.conn(), case_id, ev)
    }

    /// Add `ev` unless the same actor wrote an event of the same kind and detail since
    /// `since_ms` (paper views: one per viewer and paper per window of time).
    pub fn add_case_event_once(&self, case_id: i64, ev: &NewEvent, since_ms: u64) -> Result<(), DataError> {
        let conn = self.conn();
        let seen: Option<i64> = conn
            .query_row(
                "SELECT id FROM case_events WHERE case_id = ?1 AND kind = ?2 AND actor_kind = ?3
                   AND actor_id IS ?4 AND detail = ?5 AND at_ms >= ?6 LIMIT 1",
                params![case_id, ev.kind, ev.actor.kind, ev.actor.id, ev.detail.to_string(), sql_ms(since_ms)],
                |r| r.get(0),
            )
            .optional()?;
        if seen.is_none() {
            insert_event(&conn, case_id, ev)?;
        }
        Ok(())
    }

    pub fn case_events(&self, case_id: i64) -> Result<Vec<EventRow>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, at_ms, actor_kind, actor_id, actor_name, kind, detail, village_visible
             FROM case_events WHERE case_id = ?1 ORDER BY id",
        )?;
        let rows = st
            .query_map([case_id], |r| {
                let detail: String = r.get(6)?;
                Ok(EventRow {
                    id: r.get(0)?,
                    at_ms: row_ms(r.get(1)?),
                    actor_kind: r.get(2)?,
                    actor_id: r.get(3)?,
                    actor_name: r.get(4)?,
                    kind: r.get(5)?,
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                    village_visible: r.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The call legs of a case, oldest first, with window and approver names.
    pub fn calls_of_case(&self, case_id: i64) -> Result<Vec<CaseCall>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT l.id, l.window_id, w.name, l.staff_id, u.display_name, l.kiosk_id, l.requested_at_ms,
                    l.answered_at_ms, l.ended_at_ms, l.end_reason
             FROM calls l JOIN windows w ON w.id = l.window_id LEFT JOIN users u ON u.id = l.staff_id
             WHERE l.case_id = ?1 ORDER BY l.id",
        )?;
        let rows = st
            .query_map([case_id], |r| {
                Ok(CaseCall {
                    id: r.get(0)?,
                    window: NamedRef { id: r.get(1)?, name: r.get(2)? },
                    staff: named(r.get(3)?, r.get(4)?),
                    kiosk_id: r.get(5)?,
                    requested_at_ms: row_ms(r.get(6)?),
                    answered_at_ms: r.get::<_, Option<i64>>(7)?.map(row_ms),
                    ended_at_ms: r.get::<_, Option<i64>>(8)?.map(row_ms),
                    end_reason: r.get(9)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Ids of the staff of a town with `role` (e.g. the chiefs to tell about a sign-off).
    pub fn staff_of_town(&self, town_id: i64, role: super::Role) -> Result<Vec<i64>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT id FROM users WHERE town_id = ?1 AND role = ?2 ORDER BY id")?;
        let rows = st.query_map(params![town_id, role.as_str()], |r| r.get(0))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    // --- papers and uploads ------------------------------------------------------------------

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
                u.kind,
                u.name,
                u.checklist_item,
                sql_ms(u.size),
                u.by_kind,
                u.by_id,
                u.by_name,
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
    /// and add the event, in one transaction. Returns the paper id.
    pub fn complete_upload(&self, upload_id: &str, p: &PaperRow, ev: &NewEvent) -> Result<i64, DataError> {
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
                p.kind,
                p.name,
                p.checklist_item,
                p.content_type,
                sql_ms(p.size),
                p.sha256,
                p.object_key,
                p.by_kind,
                p.by_id,
                p.by_name,
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
        let mut ev = ev.clone();
        if let Some(obj) = ev.detail.as_object_mut() {
            obj.insert("paper_id".into(), paper_id.into());
        }
        insert_event(&tx, p.case_id, &ev)?;
        tx.execute("UPDATE cases SET updated_at_ms = ?2 WHERE id = ?1", params![p.case_id, sql_ms(p.created_at_ms)])?;
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

    pub fn paper(&self, paper_id: i64) -> Result<Option<PaperRow>, DataError> {
        let sql = format!("SELECT {PAPER_COLUMNS} FROM papers WHERE id = ?1");
        Ok(self.conn().query_row(&sql, [paper_id], paper_row).optional()?)
    }

    // --- ratings -----------------------------------------------------------------------------

    /// The last call leg of the case that an approver answered: (call id, staff id).
    pub fn last_answered_call(&self, case_id: i64) -> Result<Option<(i64, i64)>, DataError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, staff_id FROM calls WHERE case_id = ?1 AND answered_at_ms IS NOT NULL
                 AND staff_id IS NOT NULL ORDER BY id DESC LIMIT 1",
                [case_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Rate a call; Conflict if it was rated already.
    pub fn add_rating(
        &self,
        case_id: i64,
        call_id: i64,
        kiosk_id: i64,
        rating: &str,
        comment: Option<&str>,
        ev: &NewEvent,
    ) -> Result<(), DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: Option<i64> =
            tx.query_row("SELECT call_id FROM ratings WHERE call_id = ?1", [call_id], |r| r.get(0)).optional()?;
        if exists.is_some() {
            return Err(DataError::Conflict(format!("call {call_id} was rated already")));
        }
        tx.execute(
            "INSERT INTO ratings (call_id, case_id, kiosk_id, rating, comment, at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![call_id, case_id, kiosk_id, rating, comment, sql_ms(ev.at_ms)],
        )
        .map_err(|e| fk_not_found(e, "call or kiosk"))?;
        insert_event(&tx, case_id, ev)?;
        tx.commit()?;
        Ok(())
    }

    /// The latest rating of a case.
    pub fn rating_of_case(&self, case_id: i64) -> Result<Option<RatingRow>, DataError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT call_id, rating, comment, at_ms FROM ratings WHERE case_id = ?1 ORDER BY call_id DESC LIMIT 1",
                [case_id],
                |r| {
                    Ok(RatingRow {
                        call_id: r.get(0)?,
                        rating: r.get(1)?,
                        comment: r.get(2)?,
                        at_ms: row_ms(r.get(3)?),
                    })
                },
            )
            .optional()?)
    }

    // --- inbox -------------------------------------------------------------------------------

    pub fn add_inbox_item(&self, village_id: i64, case_id: i64, now_ms: u64) -> Result<i64, DataError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO inbox (village_id, case_id, created_at_ms) VALUES (?1, ?2, ?3)",
            params![village_id, case_id, sql_ms(now_ms)],
        )
        .map_err(|e| fk_not_found(e, "village or case"))?;
        Ok(conn.last_insert_rowid())
    }

    pub fn inbox_of_village(
        &self,
        village_id: i64,
        unread_only: bool,
        limit: usize,
    ) -> Result<Vec<InboxRow>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, case_id, created_at_ms, read_at_ms FROM inbox
             WHERE village_id = ?1 AND (?2 = 0 OR read_at_ms IS NULL) ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = st
            .query_map(params![village_id, unread_only, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(InboxRow {
                    id: r.get(0)?,
                    case_id: r.get(1)?,
                    created_at_ms: row_ms(r.get(2)?),
                    read_at_ms: r.get::<_, Option<i64>>(3)?.map(row_ms),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn inbox_item(&self, id: i64) -> Result<Option<(i64, InboxRow)>, DataError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT village_id, id, case_id, created_at_ms, read_at_ms FROM inbox WHERE id = ?1",
                [id],
                |r| {
                    Ok((
                        r.get(0)?,
                        InboxRow {
                            id: r.get(1)?,
                            case_id: r.get(2)?,
                            created_at_ms: row_ms(r.get(3)?),
                            read_at_ms: r.get::<_, Option<i64>>(4)?.map(row_ms),
                        },
                    ))
                },
            )
            .optional()?)
    }

    /// Mark an item of the village's inbox read (no-op if it was); NotFound otherwise.
    pub fn mark_inbox_read(&self, village_id: i64, id: i64, now_ms: u64) -> Result<(), DataError> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE inbox SET read_at_ms = COALESCE(read_at_ms, ?3) WHERE id = ?1 AND village_id = ?2",
            params![id, village_id, sql_ms(now_ms)],
        )?;
        if n == 0 {
            return Err(DataError::NotFound(format!("inbox item {id}")));
        }
        Ok(())
    }

    // --- bookings ----------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub fn create_booking(
        &self,
        village_id: i64,
        kiosk_id: Option<i64>,
        matter_id: i64,
        window_id: i64,
        start_ms: u64,
        end_ms: u64,
        note: Option<&str>,
        now_ms: u64,
    ) -> Result<i64, DataError> {
        let conn = self.conn();
        let r = conn.execute(
            "INSERT INTO bookings (village_id, kiosk_id, matter_id, window_id, start_ms, end_ms, note, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![village_id, kiosk_id, matter_id, window_id, sql_ms(start_ms), sql_ms(end_ms), note, sql_ms(now_ms)],
        );
        match r {
            Ok(_) => Ok(conn.last_insert_rowid()),
            Err(rusqlite::Error::SqliteFailure(f, _)) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE => {
                Err(DataError::Conflict("slot taken".into()))
            }
            Err(e) => Err(fk_not_found(e, "village, kiosk, matter or window")),
        }
    }

    pub fn booking(&self, id: i64) -> Result<Option<BookingRow>, DataError> {
        let sql = format!("{BOOKING_SELECT} WHERE b.id = ?1");
        Ok(self.conn().query_row(&sql, [id], booking_row).optional()?)
    }

    /// Bookings in scope whose slot starts in `from_ms..to_ms`, by time (cancelled ones too
    /// when `with_cancelled`).
    pub fn bookings_in_scope(
        &self,
        scope: BookingScope,
        from_ms: u64,
        to_ms: u64,
        with_cancelled: bool,
    ) -> Result<Vec<BookingRow>, DataError> {
        let (cond, id) = match scope {
            BookingScope::Village(v) => ("b.village_id = ?3", v),
            BookingScope::Window(w) => ("b.window_id = ?3", w),
            BookingScope::Town(t) => ("w.town_id = ?3", t),
            BookingScope::County => ("?3 = ?3", 0),
        };
        let sql = format!(
            "{BOOKING_SELECT} WHERE b.start_ms >= ?1 AND b.start_ms < ?2 AND {cond} AND (?4 OR b.status <> 'cancelled')
             ORDER BY b.start_ms, b.id LIMIT 1000"
        );
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let rows = st
            .query_map(params![sql_ms(from_ms), sql_ms(to_ms), id, with_cancelled], booking_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Cancel a booking of the village whose slot has not started. NotFound / Conflict.
    pub fn cancel_booking(&self, id: i64, village_id: i64, now_ms: u64) -> Result<(), DataError> {
        let conn = self.conn();
        let n = conn.execute(
            "UPDATE bookings SET status = 'cancelled' WHERE id = ?1 AND village_id = ?2 AND status = 'booked'
             AND start_ms > ?3",
            params![id, village_id, sql_ms(now_ms)],
        )?;
        if n == 0 {
            drop(conn);
            return match self.booking(id)? {
                Some(b) if b.village.id == village_id => {
                    Err(DataError::Conflict(format!("booking {id} is {}", b.status)))
                }
                _ => Err(DataError::NotFound(format!("booking {id}"))),
            };
        }
        Ok(())
    }

    /// The village's booking for `matter_id` that is due at `now_ms` (from `early_ms` before
    /// its slot until the slot ends), if any.
    pub fn booking_due(
        &self,
        village_id: i64,
        matter_id: i64,
        now_ms: u64,
        early_ms: u64,
    ) -> Result<Option<i64>, DataError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id FROM bookings WHERE village_id = ?1 AND matter_id = ?2 AND status = 'booked'
                 AND start_ms <= ?3 + ?4 AND ?3 < end_ms ORDER BY start_ms LIMIT 1",
                params![village_id, matter_id, sql_ms(now_ms), sql_ms(early_ms)],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The booking was used by a call on `case_id`.
    pub fn booking_called(&self, id: i64, case_id: i64) -> Result<(), DataError> {
        self.conn().execute(
            "UPDATE bookings SET status = 'called', case_id = ?2 WHERE id = ?1 AND status = 'booked'",
            params![id, case_id],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Db, UserFields, VillageKind, WindowKind};
    use super::*;
    use crate::auth::Role;

    struct Ids {
        v1: i64,
        k1: i64,
        w: i64,
        m: i64,
        a: i64,
        c: i64,
    }

    fn region() -> (Db, Ids) {
        let db = Db::open_in_memory().unwrap();
        let ids = db
            .write(|tx| {
                tx.set_county("测试县", "CS")?;
                let t = tx.upsert_town("甲镇", false)?.id();
                let v1 = tx.upsert_village(t, "一村", VillageKind::Village)?.id();
                let w = tx.upsert_window(t, "民政窗口", WindowKind::CivilAffairs, true)?.id();
                let m = tx
                    .upsert_matter(&super::super::MatterFields {
                        code: "MZ-1",
                        name: "低保",
                        plain_name: "申请低保",
                        department: "",
                        window_kind: WindowKind::CivilAffairs,
                        required_papers: &["身份证".to_string()],
                        needs_signoff: true,
                        village_can_finish: false,
                        keywords: "",
                    })?
                    .id();
                let k1 = tx.upsert_kiosk(v1, "一村便民服务室", "h1")?.id();
                let user = |username, role, window| UserFields {
                    username,
                    display_name: "某人",
                    role,
                    town_id: Some(t),
                    window_id: window,
                    password_hash: "x",
                };
                let a = tx.upsert_user(&user("a", Role::Approver, Some(w)))?.id();
                let c = tx.upsert_user(&user("c", Role::Chief, None))?.id();
                Ok(Ids { v1, k1, w, m, a, c })
            })
            .unwrap();
        (db, ids)
    }

    fn ev(kind: &'static str) -> NewEvent {
        NewEvent {
            at_ms: 5,
            actor: Actor { kind: "system", id: None, name: String::new() },
            kind,
            detail: serde_json::json!({}),
            village_visible: true,
        }
    }

    #[test]
    fn decide_signoff_and_conflicts() {
        let (db, ids) = region();
        let case = db.create_case(ids.m, ids.v1, Some(ids.k1), 1).unwrap();
        let rec = db.case_by_no(&case.case_no).unwrap().unwrap();
        assert_eq!((rec.status.as_str(), rec.needs_signoff, rec.required_papers.len()), ("open", true, 1));
        let d = Decision {
            status: "signoff",
            outcome: "refused",
            note: "不符合条件",
            missing_items: &[],
            result_paper_id: None,
            by: ids.a,
            at_ms: 10,
        };
        db.decide(case.id, &["open", "returned"], &d, &ev("outcome.decided")).unwrap();
        // A second decision from `open` lost the race.
        assert!(matches!(db.decide(case.id, &["open"], &d, &ev("outcome.decided")), Err(DataError::Conflict(_))));
        db.sign_off(case.id, ids.c, "returned", "returned", Some("再核实"), &ev("signoff.returned")).unwrap();
        assert!(matches!(
            db.sign_off(case.id, ids.c, "refused", "approved", None, &ev("signoff.approved")),
            Err(DataError::Conflict(_))
        ));
        db.decide(case.id, &["open", "returned"], &d, &ev("outcome.decided")).unwrap();
        db.sign_off(case.id, ids.c, "refused", "approved", None, &ev("signoff.approved")).unwrap();
        let rec = db.case_record(case.id).unwrap().unwrap();
        assert!(rec.is_final());
        assert_eq!(rec.signoff_decision.as_deref(), Some("approved"));
        assert_eq!(rec.decided_by.unwrap().id, ids.a);
        assert_eq!(db.case_events(case.id).unwrap().len(), 4);
        // Closed: the villager can no longer change.
        assert!(matches!(
            db.set_villager(case.id, "张三", "13800001234", None, None, &ev("villager.set")),
            Err(DataError::Conflict(_))
        ));
        let town = db.cases_in_scope(CaseScope::Town(rec.town_id), Some(&["refused"]), 10, false).unwrap();
        assert_eq!(town.len(), 1);
        assert!(db.cases_in_scope(CaseScope::Village(ids.v1), Some(&["open"]), 10, false).unwrap().is_empty());
        assert_eq!(db.staff_of_town(rec.town_id, Role::Chief).unwrap(), vec![ids.c]);
    }

    #[test]
    fn uploads_advance_only_at_their_offset() {
        let (db, ids) = region();
        let case = db.create_case(ids.m, ids.v1, Some(ids.k1), 1).unwrap();
        let u = UploadRow {
            id: "u1".into(),
            case_id: case.id,
            kind: "scan".into(),
            name: "a.pdf".into(),
            checklist_item: None,
            size: 10,
            received: 0,
            chunks: 0,
            content_type: None,
            by_kind: "kiosk".into(),
            by_id: ids.k1,
            by_name: "k".into(),
            created_at_ms: 1,
            updated_at_ms: 1,
            paper_id: None,
        };
        db.create_upload(&u, 1).unwrap();
        assert!(matches!(
            db.create_upload(&UploadRow { id: "u2".into(), ..u.clone() }, 1),
            Err(DataError::Conflict(_))
        ));
        db.upload_chunk_stored("u1", 0, 6, Some("application/pdf"), 2).unwrap();
        assert!(matches!(db.upload_chunk_stored("u1", 0, 4, None, 3), Err(DataError::Conflict(_))));
        assert!(matches!(db.upload_chunk_stored("u1", 6, 5, None, 3), Err(DataError::Conflict(_)))); // past size
        db.upload_chunk_stored("u1", 6, 4, None, 3).unwrap();
        let row = db.upload("u1").unwrap().unwrap();
        assert_eq!((row.received, row.chunks, row.content_type.as_deref()), (10, 2, Some("application/pdf")));
        let paper = PaperRow {
            id: 0,
            case_id: case.id,
            kind: "scan".into(),
            name: "a.pdf".into(),
            checklist_item: None,
            content_type: "application/pdf".into(),
            size: 10,
            sha256: "00".into(),
            object_key: "papers/1/x".into(),
            by_kind: "kiosk".into(),
            by_id: ids.k1,
            by_name: "k".into(),
            created_at_ms: 4,
        };
        let pid = db.complete_upload("u1", &paper, &ev("paper.added")).unwrap();
        assert!(matches!(db.complete_upload("u1", &paper, &ev("paper.added")), Err(DataError::Conflict(_))));
        assert_eq!(db.upload("u1").unwrap().unwrap().paper_id, Some(pid));
        assert_eq!(db.papers_of_case(case.id).unwrap().len(), 1);
        assert_eq!(db.case_events(case.id).unwrap()[0].detail["paper_id"], pid);
        assert_eq!(db.uploads_idle_since(5).unwrap().len(), 1);
        db.delete_upload("u1").unwrap();
        assert!(db.upload("u1").unwrap().is_none());
    }

    #[test]
    fn ratings_inbox_bookings() {
        let (db, ids) = region();
        let case = db.create_case(ids.m, ids.v1, Some(ids.k1), 1).unwrap();
        assert_eq!(db.last_answered_call(case.id).unwrap(), None);
        let call = db.record_call_requested(case.id, ids.w, ids.k1, 2).unwrap();
        db.record_call_answered(call, ids.a, 3).unwrap();
        assert_eq!(db.last_answered_call(case.id).unwrap(), Some((call, ids.a)));
        db.add_rating(case.id, call, ids.k1, "good", None, &ev("rating.given")).unwrap();
        assert!(matches!(
            db.add_rating(case.id, call, ids.k1, "bad", None, &ev("rating.given")),
            Err(DataError::Conflict(_))
        ));
        assert_eq!(db.rating_of_case(case.id).unwrap().unwrap().rating, "good");
        assert_eq!(db.current_case_of_kiosk(ids.k1).unwrap().unwrap().id, case.id);

        let item = db.add_inbox_item(ids.v1, case.id, 5).unwrap();
        assert_eq!(db.inbox_of_village(ids.v1, true, 10).unwrap().len(), 1);
        db.mark_inbox_read(ids.v1, item, 6).unwrap();
        assert!(db.inbox_of_village(ids.v1, true, 10).unwrap().is_empty());
        assert_eq!(db.inbox_of_village(ids.v1, false, 10).unwrap()[0].read_at_ms, Some(6));
        assert!(matches!(db.mark_inbox_read(ids.v1 + 100, item, 6), Err(DataError::NotFound(_))));

        let b = db.create_booking(ids.v1, Some(ids.k1), ids.m, ids.w, 1000, 2000, None, 1).unwrap();
        assert!(matches!(
            db.create_booking(ids.v1, Some(ids.k1), ids.m, ids.w, 1000, 2000, None, 1),
            Err(DataError::Conflict(_))
        ));
        assert_eq!(db.booking_due(ids.v1, ids.m, 500, 600).unwrap(), Some(b));
        assert_eq!(db.booking_due(ids.v1, ids.m, 300, 600).unwrap(), None);
        assert_eq!(db.booking_due(ids.v1, ids.m, 2000, 600).unwrap(), None);
        assert_eq!(db.bookings_in_scope(BookingScope::Window(ids.w), 0, 5000, false).unwrap().len(), 1);
        db.booking_called(b, case.id).unwrap();
        assert_eq!(db.booking(b).unwrap().unwrap().case_no.as_deref(), Some(case.case_no.as_str()));
        assert!(matches!(db.cancel_booking(b, ids.v1, 0), Err(DataError::Conflict(_))));
        let b2 = db.create_booking(ids.v1, Some(ids.k1), ids.m, ids.w, 3000, 4000, None, 1).unwrap();
        db.cancel_booking(b2, ids.v1, 0).unwrap();
        // The slot is free again.
        db.create_booking(ids.v1, Some(ids.k1), ids.m, ids.w, 3000, 4000, None, 1).unwrap();
        assert!(matches!(db.cancel_booking(b2 + 10, ids.v1, 0), Err(DataError::NotFound(_))));
    }
}
