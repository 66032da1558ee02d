//! The stored facts statistics are computed from (`case::stats`): the cases opened in a range
//! (no personal data), their calls (a transfer continues its call) and the bookings whose slot
//! started in the range, for the county or one town.

use std::collections::BTreeMap;

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

        let mut st = conn.prepare_cached(
            "SELECT c.id, c.case_no, c.created_at_ms, t.id, t.name, v.id, v.name, m.id, m.name,
                    c.outcome, c.decided_at_ms, c.decided_by, u.display_name, c.signoff_at_ms,
                    (SELECT r.rating FROM ratings r WHERE r.case_id = c.id ORDER BY r.at_ms DESC LIMIT 1),
                    (SELECT r.comment FROM ratings r WHERE r.case_id = c.id ORDER BY r.at_ms DESC LIMIT 1)
             FROM cases c
             JOIN villages v ON v.id = c.village_id
             JOIN towns t ON t.id = v.town_id
             JOIN matters m ON m.id = c.matter_id
             LEFT JOIN users u ON u.id = c.decided_by
             WHERE c.created_at_ms >= ?1 AND c.created_at_ms < ?2 AND (?3 < 0 OR v.town_id = ?3)",
        )?;
        let rows = st.query_map(params![from, to, town], |r| {
            let decided_by: Option<i64> = r.get(11)?;
            let decided_name: Option<String> = r.get(12)?;
            Ok(CaseFact {
                id: r.get(0)?,
                case_no: r.get(1)?,
                created_at_ms: row_ms(r.get(2)?),
                town: (r.get(3)?, r.get(4)?),
                village: (r.get(5)?, r.get(6)?),
                matter: (r.get(7)?, r.get(8)?),
                outcome: r.get::<_, Option<String>>(9)?.as_deref().and_then(Outcome::parse),
                decided_at_ms: r.get::<_, Option<i64>>(10)?.map(row_ms),
                decided_by: decided_by.map(|id| (id, decided_name.unwrap_or_default())),
                signoff_at_ms: r.get::<_, Option<i64>>(13)?.map(row_ms),
                rating: r.get::<_, Option<String>>(14)?.as_deref().and_then(Rating::parse),
                rating_comment: r.get(15)?,
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
            "SELECT k.id, k.case_id, k.window_id, w.name, k.requested_at_ms, k.answered_at_ms, k.ended_at_ms,
                    k.end_reason, k.transferred_from_id
             FROM calls k
             JOIN cases c ON c.id = k.case_id
             JOIN villages v ON v.id = c.village_id
             JOIN windows w ON w.id = k.window_id
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
                        window: (r.get(2)?, r.get(3)?),
                        requested_at_ms: row_ms(r.get(4)?),
                        answered_at_ms: r.get::<_, Option<i64>>(5)?.map(row_ms),
                        ended_at_ms: r.get::<_, Option<i64>>(6)?.map(row_ms),
                        end: CallEnd::Open,
                    },
                    reason: r.get(7)?,
                    from: r.get(8)?,
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
