//! The timeline of a case: events written with the changes they record, and read back.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{DataError, Db, bad_text, fk_not_found, row_ms, sql_ms};
use crate::audit::EntryKind;
use crate::case::{ActorKind, CaseEvent, EventActor, EventKind};

/// A timeline event to write.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub at_ms: u64,
    pub actor: EventActor,
    pub event: CaseEvent,
}

/// A stored timeline event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: i64,
    pub at_ms: u64,
    pub actor: EventActor,
    pub kind: EventKind,
    /// JSON without personal data.
    pub detail: serde_json::Value,
    pub village_visible: bool,
}

/// Write a timeline event and its entry in the audit chain (inside the caller's transaction).
pub(super) fn insert_event(conn: &Connection, case_id: i64, ev: &NewEvent) -> Result<(), DataError> {
    let (kind, detail) = ev.event.kind_and_detail();
    conn.execute(
        "INSERT INTO case_events (case_id, at_ms, actor_kind, actor_id, actor_name, kind, detail, village_visible)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            case_id,
            sql_ms(ev.at_ms),
            ev.actor.kind.as_str(),
            ev.actor.id,
            ev.actor.name,
            kind.as_str(),
            detail.to_string(),
            ev.event.village_visible()
        ],
    )
    .map_err(|e| fk_not_found(e, "case"))?;
    let event_id = conn.last_insert_rowid();
    super::audit::append(
        conn,
        EntryKind::CaseEvent,
        ev.at_ms,
        Some(case_id),
        &ev.actor,
        kind.as_str(),
        serde_json::json!({"event_id": event_id, "event": detail, "village_visible": ev.event.village_visible()}),
        None,
    )?;
    Ok(())
}

fn event_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    let actor_kind: String = r.get(2)?;
    let kind: String = r.get(5)?;
    let detail: String = r.get(6)?;
    Ok(EventRow {
        id: r.get(0)?,
        at_ms: row_ms(r.get(1)?),
        actor: EventActor {
            kind: ActorKind::parse(&actor_kind).ok_or_else(|| bad_text("actor kind", &actor_kind))?,
            id: r.get(3)?,
            name: r.get(4)?,
        },
        kind: EventKind::parse(&kind).ok_or_else(|| bad_text("event kind", &kind))?,
        detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
        village_visible: r.get(7)?,
    })
}

impl Db {
    pub fn add_case_event(&self, case_id: i64, ev: &NewEvent) -> Result<(), DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_event(&tx, case_id, ev)?;
        tx.commit()?;
        Ok(())
    }

    /// Add `ev` unless the same actor wrote an event of the same kind and detail since
    /// `since_ms` (paper views: one per viewer and paper per window of time).
    pub fn add_case_event_once(&self, case_id: i64, ev: &NewEvent, since_ms: u64) -> Result<(), DataError> {
        let (kind, detail) = ev.event.kind_and_detail();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let seen: Option<i64> = tx
            .query_row(
                "SELECT id FROM case_events WHERE case_id = ?1 AND kind = ?2 AND actor_kind = ?3
                   AND actor_id IS ?4 AND detail = ?5 AND at_ms >= ?6 LIMIT 1",
                params![
                    case_id,
                    kind.as_str(),
                    ev.actor.kind.as_str(),
                    ev.actor.id,
                    detail.to_string(),
                    sql_ms(since_ms)
                ],
                |r| r.get(0),
            )
            .optional()?;
        if seen.is_none() {
            insert_event(&tx, case_id, ev)?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn case_events(&self, case_id: i64) -> Result<Vec<EventRow>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, at_ms, actor_kind, actor_id, actor_name, kind, detail, village_visible
             FROM case_events WHERE case_id = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([case_id], event_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Every timeline event with its case, in order (verification of the audit record).
    pub fn all_case_events(&self) -> Result<Vec<(i64, EventRow)>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, at_ms, actor_kind, actor_id, actor_name, kind, detail, village_visible, case_id
             FROM case_events ORDER BY id",
        )?;
        let rows = st.query_map([], |r| Ok((r.get::<_, i64>(8)?, event_row(r)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}
