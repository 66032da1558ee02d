//! The call log: one row per call leg of a case (requested, answered, transferred, ended).

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::region::NamedRef;
use super::{DataError, Db, fk_not_found, row_ms, sql_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    pub id: i64,
    pub case_id: i64,
    pub window_id: i64,
    pub kiosk_id: i64,
    pub staff_id: Option<i64>,
    pub transferred_from_id: Option<i64>,
    pub requested_at_ms: u64,
    /// The latest ring before the answer (see `record_call_rang`).
    pub rang_at_ms: Option<u64>,
    pub answered_at_ms: Option<u64>,
    pub ended_at_ms: Option<u64>,
    pub end_reason: Option<String>,
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

fn named(id: Option<i64>, name: Option<String>) -> Option<NamedRef> {
    id.map(|id| NamedRef { id, name: name.unwrap_or_default() })
}

impl Db {
    /// The call record of `case_id` that has not ended yet (its current leg), if any.
    pub fn open_call_of_case(&self, case_id: i64) -> Result<Option<i64>, DataError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id FROM calls WHERE case_id = ?1 AND ended_at_ms IS NULL ORDER BY id DESC LIMIT 1",
                [case_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// A kiosk asked for a call on `case_id` at `window_id`; returns the call record id.
    pub fn record_call_requested(
        &self,
        case_id: i64,
        window_id: i64,
        kiosk_id: i64,
        now_ms: u64,
    ) -> Result<i64, DataError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO calls (case_id, window_id, kiosk_id, requested_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![case_id, window_id, kiosk_id, sql_ms(now_ms)],
        )
        .map_err(|e| fk_not_found(e, "case, window or kiosk"))?;
        Ok(conn.last_insert_rowid())
    }

    /// The leg rang an approver: its ring time becomes `now` while it waits (the latest ring
    /// before the answer is the one answered). A ring of a leg already answered or ended
    /// changes nothing.
    pub fn record_call_rang(&self, call_id: i64, now_ms: u64) -> Result<(), DataError> {
        let n = self.conn().execute(
            "UPDATE calls SET rang_at_ms = ?2 WHERE id = ?1 AND answered_at_ms IS NULL AND ended_at_ms IS NULL",
            params![call_id, sql_ms(now_ms)],
        )?;
        if n == 0 && self.call(call_id)?.is_none() {
            return Err(DataError::NotFound(format!("call {call_id}")));
        }
        Ok(())
    }

    /// An approver took the call.
    pub fn record_call_answered(&self, call_id: i64, staff_id: i64, now_ms: u64) -> Result<(), DataError> {
        let n = self
            .conn()
            .execute(
                "UPDATE calls SET staff_id = ?2, answered_at_ms = ?3
                 WHERE id = ?1 AND answered_at_ms IS NULL AND ended_at_ms IS NULL",
                params![call_id, staff_id, sql_ms(now_ms)],
            )
            .map_err(|e| fk_not_found(e, "staff user"))?;
        if n == 0 {
            return Err(self.call_missing_or_conflict(call_id, "already answered or ended"));
        }
        Ok(())
    }

    /// The call ended (`reason`: the protocol's end reason). A second end is a no-op.
    pub fn record_call_ended(&self, call_id: i64, reason: &str, now_ms: u64) -> Result<(), DataError> {
        let n = self.conn().execute(
            "UPDATE calls SET ended_at_ms = ?2, end_reason = ?3 WHERE id = ?1 AND ended_at_ms IS NULL",
            params![call_id, sql_ms(now_ms), reason],
        )?;
        if n == 0 && self.call(call_id)?.is_none() {
            return Err(DataError::NotFound(format!("call {call_id}")));
        }
        Ok(())
    }

    /// The call went to another window: ends this leg (`transferred`) and opens a new leg on
    /// `to_window_id` with the same case and kiosk; returns the new leg's id.
    pub fn record_call_transferred(&self, call_id: i64, to_window_id: i64, now_ms: u64) -> Result<i64, DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE calls SET ended_at_ms = ?2, end_reason = 'transferred' WHERE id = ?1 AND ended_at_ms IS NULL",
            params![call_id, sql_ms(now_ms)],
        )?;
        if n == 0 {
            drop(tx);
            drop(conn);
            return Err(self.call_missing_or_conflict(call_id, "already ended"));
        }
        tx.execute(
            "INSERT INTO calls (case_id, window_id, kiosk_id, transferred_from_id, requested_at_ms)
             SELECT case_id, ?2, kiosk_id, id, ?3 FROM calls WHERE id = ?1",
            params![call_id, to_window_id, sql_ms(now_ms)],
        )
        .map_err(|e| fk_not_found(e, "window"))?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(id)
    }

    pub fn call(&self, call_id: i64) -> Result<Option<CallRow>, DataError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, case_id, window_id, kiosk_id, staff_id, transferred_from_id, requested_at_ms,
                        answered_at_ms, ended_at_ms, end_reason, rang_at_ms FROM calls WHERE id = ?1",
                [call_id],
                |r| {
                    Ok(CallRow {
                        id: r.get(0)?,
                        case_id: r.get(1)?,
                        window_id: r.get(2)?,
                        kiosk_id: r.get(3)?,
                        staff_id: r.get(4)?,
                        transferred_from_id: r.get(5)?,
                        requested_at_ms: row_ms(r.get(6)?),
                        answered_at_ms: r.get::<_, Option<i64>>(7)?.map(row_ms),
                        ended_at_ms: r.get::<_, Option<i64>>(8)?.map(row_ms),
                        end_reason: r.get(9)?,
                        rang_at_ms: r.get::<_, Option<i64>>(10)?.map(row_ms),
                    })
                },
            )
            .optional()?)
    }

    fn call_missing_or_conflict(&self, call_id: i64, what: &str) -> DataError {
        match self.call(call_id) {
            Ok(Some(_)) => DataError::Conflict(format!("call {call_id} {what}")),
            Ok(None) => DataError::NotFound(format!("call {call_id}")),
            Err(e) => e,
        }
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
}
