//! The stored facts statistics are computed from (`case::stats`): the cases opened in a range
//! (no personal data), their calls (a transfer continues its call) and the bookings whose slot
//! started in the range, for the county or one town.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rusqlite::params;

use super::{DataError, Db, row_ms, sql_ms};
use crate::case::stats::{BookingFact, CallEnd, CallFact, CaseFact, Facts};
use crate::case::{Outcome, Rating};

impl Db {
    /// The facts of cases opened in `from_ms..to_ms` (and bookings starting then), of one town
    /// or (`None`) the county.
    pub fn stats_facts(&self, town_id: Option<i64>, from_ms: u64, to_ms: u64) -> Result<Facts, DataError> {
        let conn = self.conn();
        let (from, to, town) = (sql_ms(from_ms), sql_ms(to_ms), town_id.unwrap_or(-1));
        let mut facts = Facts::default();
        // The names, once each (the rows carry ids).
        let names = |sql: &str| -> Result<HashMap<i64, Arc<str>>, DataError> {
            let mut st = conn.prepare_cached(sql)?;
            let rows = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, Arc::<str>::from(r.get::<_, String>(1)?))))?;
            Ok(rows.collect::<Result<_, _>>()?)
        };
        let (towns, villages, matters, windows, staff) = (
            names("SELECT id, name FROM towns")?,
            names("SELECT id, name FROM villages")?,
            names("SELECT id, name FROM matters")?,
            names("SELECT id, name FROM windows")?,
            names("SELECT id, display_name FROM users")?,
        );
        let named = |map: &HashMap<i64, Arc<str>>, id: i64| (id, map.get(&id).cloned().unwrap_or_else(|| "".into()));

        let mut st = conn.prepare_cached(
            "SELECT c.id, CASE WHEN r.comment IS NOT NULL THEN c.case_no END, c.created_at_ms, v.town_id, c.village_id,
                    c.matter_id, c.outcome, c.decided_at_ms, c.decided_by, c.signoff_at_ms, r.rating, r.comment
             FROM cases c
             JOIN villages v ON v.id = c.village_id
             -- The case's latest rating (SQLite takes the bare columns from the row of MAX).
             LEFT JOIN (SELECT case_id, rating, comment, MAX(at_ms) FROM ratings GROUP BY case_id) r
                    ON r.case_id = c.id
             WHERE c.created_at_ms >= ?1 AND c.created_at_ms < ?2 AND (?3 < 0 OR v.town_id = ?3)",
        )?;
        let rows = st.query_map(params![from, to, town], |r| {
            Ok(CaseFact {
                id: r.get(0)?,
                case_no: r.get(1)?,
                created_at_ms: row_ms(r.get(2)?),
                town: named(&towns, r.get(3)?),
                village: named(&villages, r.get(4)?),
                matter: named(&matters, r.get(5)?),
                outcome: r.get::<_, Option<String>>(6)?.as_deref().and_then(Outcome::parse),
                decided_at_ms: r.get::<_, Option<i64>>(7)?.map(row_ms),
                decided_by: r.get::<_, Option<i64>>(8)?.map(|id| named(&staff, id)),
                signoff_at_ms: r.get::<_, Option<i64>>(9)?.map(row_ms),
                rating: r.get::<_, Option<String>>(10)?.as_deref().and_then(Rating::parse),
                rating_comment: r.get(11)?,
            })
        })?;
        for row in rows {
            facts.cases.push(row?);
        }

        // Calls, with their transfers folded into the call they continue.
        struct Raw {
            call: CallFact,
            from: Option<i64>,
            reason: Option<String>,
        }
        let mut st = conn.prepare_cached(
            "SELECT k.id, k.case_id, k.window_id, k.requested_at_ms, k.answered_at_ms, k.ended_at_ms,
                    k.end_reason, k.transferred_from_id
             FROM calls k
             JOIN cases c ON c.id = k.case_id
             JOIN villages v ON v.id = c.village_id
             WHERE c.created_at_ms >= ?1 AND c.created_at_ms < ?2 AND (?3 < 0 OR v.town_id = ?3)
             ORDER BY k.id",
        )?;
        let mut raw: BTreeMap<i64, Raw> = BTreeMap::new();
        let rows = st.query_map(params![from, to, town], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                Raw {
                    call: CallFact {
                        case_id: r.get(1)?,
                        window: named(&windows, r.get(2)?),
                        requested_at_ms: row_ms(r.get(3)?),
                        answered_at_ms: r.get::<_, Option<i64>>(4)?.map(row_ms),
                        ended_at_ms: r.get::<_, Option<i64>>(5)?.map(row_ms),
                        end: CallEnd::Open,
                    },
                    reason: r.get(6)?,
                    from: r.get(7)?,
                },
            ))
        })?;
        for row in rows {
            let (id, r) = row?;
            raw.insert(id, r);
        }
        // A transfer's row: its chain's root takes its end (and its answer, if the root had none).
        let ids: Vec<i64> = raw.keys().copied().collect();
        for id in &ids {
            let Some(mut root) = raw.get(id).and_then(|r| r.from) else { continue };
            let mut hops = 0;
            while let Some(up) = raw.get(&root).and_then(|r| r.from) {
                root = up;
                hops += 1;
                if hops > 64 {
                    break;
                }
            }
            let (ended, reason, answered) = {
                let r = &raw[id];
                (r.call.ended_at_ms, r.reason.clone(), r.call.answered_at_ms)
            };
            // Rows come in id order: the chain's last transfer is seen last and gives the end.
            if let Some(rt) = raw.get_mut(&root) {
                rt.call.ended_at_ms = ended;
                rt.reason = reason;
                if rt.call.answered_at_ms.is_none() {
                    rt.call.answered_at_ms = answered;
                }
            }
        }
        for (_, r) in raw {
            if r.from.is_some() {
                continue;
            }
            let mut call = r.call;
            call.end = match (call.ended_at_ms, call.answered_at_ms, r.reason.as_deref()) {
                (None, _, _) => CallEnd::Open,
                (Some(_), Some(_), _) => CallEnd::AfterAnswer,
                (Some(_), None, Some("cancelled")) => CallEnd::Cancelled,
                (Some(_), None, _) => CallEnd::Unanswered,
            };
            facts.calls.push(call);
        }

        let mut st = conn.prepare_cached(
            "SELECT b.start_ms, b.end_ms, b.status FROM bookings b JOIN villages v ON v.id = b.village_id
             WHERE b.start_ms >= ?1 AND b.start_ms < ?2 AND (?3 < 0 OR v.town_id = ?3)",
        )?;
        let rows = st.query_map(params![from, to, town], |r| {
            let status: String = r.get(2)?;
            Ok(BookingFact {
                start_ms: row_ms(r.get(0)?),
                end_ms: row_ms(r.get(1)?),
                called: status == "called",
                cancelled: status == "cancelled",
            })
        })?;
        for row in rows {
            facts.bookings.push(row?);
        }
        Ok(facts)
    }
}
