//! 好差评 ratings of calls, and the village inbox of results that arrived after the call.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::events::{NewEvent, insert_event};
use super::{DataError, Db, bad_text, fk_not_found, row_ms, sql_ms};
use crate::case::Rating;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatingRow {
    pub call_id: i64,
    pub rating: Rating,
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

pub(super) fn insert_inbox_item(
    conn: &Connection,
    village_id: i64,
    case_id: i64,
    now_ms: u64,
) -> Result<InboxRow, DataError> {
    conn.execute(
        "INSERT INTO inbox (village_id, case_id, created_at_ms) VALUES (?1, ?2, ?3)",
        params![village_id, case_id, sql_ms(now_ms)],
    )
    .map_err(|e| fk_not_found(e, "village or case"))?;
    Ok(InboxRow { id: conn.last_insert_rowid(), case_id, created_at_ms: now_ms, read_at_ms: None })
}

impl Db {
    /// Rate a call; Conflict if it was rated already.
    pub fn add_rating(
        &self,
        case_id: i64,
        call_id: i64,
        kiosk_id: i64,
        rating: Rating,
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
            params![call_id, case_id, kiosk_id, rating.as_str(), comment, sql_ms(ev.at_ms)],
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
                    let rating: String = r.get(1)?;
                    Ok(RatingRow {
                        call_id: r.get(0)?,
                        rating: Rating::parse(&rating).ok_or_else(|| bad_text("rating", &rating))?,
                        comment: r.get(2)?,
                        at_ms: row_ms(r.get(3)?),
                    })
                },
            )
            .optional()?)
    }

    pub fn add_inbox_item(&self, village_id: i64, case_id: i64, now_ms: u64) -> Result<i64, DataError> {
        Ok(insert_inbox_item(&self.conn(), village_id, case_id, now_ms)?.id)
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
}
