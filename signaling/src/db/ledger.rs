//! The facts of a village's ledger (台账, `service::ledger`): the cases it opened in a range,
//! with the window that handled each (the last answered call), whether the result reached the
//! room (its inbox) and the villager's latest rating.

use rusqlite::params;

use super::cases::{CASE_SELECT, case_row};
use super::{DataError, Db, row_ms, sql_ms};
use crate::case::{CaseRecord, Rating};

/// One case of a ledger, before it is shown.
#[derive(Debug, Clone)]
pub struct LedgerFact {
    pub case: CaseRecord,
    /// The window of the last answered call; `None`: never answered.
    pub window: Option<String>,
    /// The decision was made during one of its calls (the room saw it, and its result, live).
    pub decided_in_call: bool,
    /// The result reached the room's inbox (and when it was read there).
    pub delivered_at_ms: Option<u64>,
    pub read_at_ms: Option<u64>,
    pub rating: Option<Rating>,
}

impl Db {
    /// The cases `village_id` opened in `from_ms..to_ms`, oldest first, at most `limit`.
    pub fn ledger_facts(
        &self,
        village_id: i64,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<LedgerFact>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!(
            "{CASE_SELECT} WHERE c.village_id = ?1 AND c.created_at_ms >= ?2 AND c.created_at_ms < ?3
             ORDER BY c.created_at_ms, c.id LIMIT ?4"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let cases = st
            .query_map(params![village_id, sql_ms(from_ms), sql_ms(to_ms), limit], case_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let mut window = conn.prepare_cached(
            "SELECT w.name FROM calls k JOIN windows w ON w.id = k.window_id
             WHERE k.case_id = ?1 AND k.answered_at_ms IS NOT NULL ORDER BY k.answered_at_ms DESC, k.id DESC LIMIT 1",
        )?;
        let mut inbox = conn.prepare_cached(
            "SELECT created_at_ms, read_at_ms FROM inbox WHERE case_id = ?1 AND village_id = ?2
             ORDER BY id DESC LIMIT 1",
        )?;
        let mut in_call = conn.prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM calls k WHERE k.case_id = ?1 AND k.answered_at_ms <= ?2
                            AND (k.ended_at_ms IS NULL OR k.ended_at_ms >= ?2))",
        )?;
        let mut rating = conn.prepare_cached(
            "SELECT rating FROM ratings WHERE case_id = ?1 ORDER BY at_ms DESC, call_id DESC LIMIT 1",
        )?;
        let mut out = Vec::with_capacity(cases.len());
        for case in cases {
            use rusqlite::OptionalExtension;
            let window = window.query_row([case.id], |r| r.get::<_, String>(0)).optional()?;
            let (delivered_at_ms, read_at_ms) = inbox
                .query_row(params![case.id, village_id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)))
                .optional()?
                .map_or((None, None), |(d, r)| (Some(row_ms(d)), r.map(row_ms)));
            let rating =
                rating.query_row([case.id], |r| r.get::<_, String>(0)).optional()?.as_deref().and_then(Rating::parse);
            let decided_in_call = match case.state.decision.as_ref() {
                Some(d) => in_call.query_row(params![case.id, sql_ms(d.at_ms)], |r| r.get::<_, bool>(0))?,
                None => false,
            };
            out.push(LedgerFact { case, window, decided_in_call, delivered_at_ms, read_at_ms, rating });
        }
        Ok(out)
    }
}
