//! The stored facts statistics are computed from (`case::stats`): the cases opened in a range
//! (no personal data), their calls (a transfer continues its call) and the bookings whose slot
//! started in the range, for the county or one town.
//!
//! A county-wide year is about 100,000 cases and as many calls, so the reads are lean: the
//! cases and the calls each come from one covering index (`cases_stats`, `calls_stats`: the
//! table rows are never visited), the calls and the ratings by the range of case ids, kept if
//! their case is in range (a hash lookup instead of a join into `cases` per row); names are
//! read once per table; text columns are read in place, not copied.

use std::sync::Arc;

use rusqlite::params;
use rusqlite::types::ValueRef;

use super::{DataError, Db, row_ms, sql_ms};
use crate::case::stats::{BookingFact, CallEnd, CallFact, CaseFact, Facts, IdMap};
use crate::case::{Outcome, Rating};

/// The cases of a range (`?1..?2`) in a town (`?3`, or all if negative): covered by the index
/// `cases_stats` (a test checks the plan).
pub(super) const CASES_SQL: &str =
    "SELECT c.id, c.created_at_ms, c.village_id, c.matter_id, c.outcome, c.decided_at_ms,
        c.decided_by, c.signoff_at_ms
 FROM cases c
 WHERE c.created_at_ms >= ?1 AND c.created_at_ms < ?2
   AND (?3 < 0 OR c.village_id IN (SELECT id FROM villages WHERE town_id = ?3))";

/// The call legs of the cases with ids `?1..=?2`: covered by the index `calls_stats`.
pub(super) const CALLS_SQL: &str =
    "SELECT id, case_id, window_id, requested_at_ms, rang_at_ms, answered_at_ms, ended_at_ms,
        end_reason, transferred_from_id
 FROM calls WHERE case_id BETWEEN ?1 AND ?2";

/// Text read in place (`None` for NULL or anything that is not UTF-8 text).
fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
    Ok(match row.get_ref(i)? {
        ValueRef::Text(t) => std::str::from_utf8(t).ok(),
        _ => None,
    })
}

fn opt_ms(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<u64>> {
    Ok(row.get::<_, Option<i64>>(i)?.map(row_ms))
}

/// One stored call leg before its transfers are folded in.
struct Leg {
    id: i64,
    call: CallFact,
    from: Option<i64>,
    cancelled: bool,
}

impl Db {
    /// The facts of cases opened in `from_ms..to_ms` (and bookings starting then), of one town
    /// or (`None`) the county.
    pub fn stats_facts(&self, town_id: Option<i64>, from_ms: u64, to_ms: u64) -> Result<Facts, DataError> {
        let conn = self.conn();
        let (from, to, town) = (sql_ms(from_ms), sql_ms(to_ms), town_id.unwrap_or(-1));
        let mut facts = Facts::default();
        // The names, once each (the rows carry ids).
        let names = |sql: &str| -> Result<IdMap<i64, Arc<str>>, DataError> {
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
        let town_of: IdMap<i64, i64> = {
            let mut st = conn.prepare_cached("SELECT id, town_id FROM villages")?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let named = |map: &IdMap<i64, Arc<str>>, id: i64| (id, map.get(&id).cloned().unwrap_or_else(|| "".into()));

        // The cases, and where each is in `facts.cases`.
        let mut index: IdMap<i64, usize> = IdMap::default();
        let (mut min_id, mut max_id) = (i64::MAX, i64::MIN);
        let mut st = conn.prepare_cached(CASES_SQL)?;
        let mut rows = st.query(params![from, to, town])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            let village: i64 = r.get(2)?;
            let town = town_of.get(&village).copied().unwrap_or_default();
            index.insert(id, facts.cases.len());
            (min_id, max_id) = (min_id.min(id), max_id.max(id));
            facts.cases.push(CaseFact {
                id,
                created_at_ms: row_ms(r.get(1)?),
                town: named(&towns, town),
                village: named(&villages, village),
                matter: named(&matters, r.get(3)?),
                outcome: text(r, 4)?.and_then(Outcome::parse),
                decided_at_ms: opt_ms(r, 5)?,
                decided_by: r.get::<_, Option<i64>>(6)?.map(|id| named(&staff, id)),
                signoff_at_ms: opt_ms(r, 7)?,
                rating: None,
                rating_comment: None,
                case_no: None,
            });
        }
        drop(rows);
        if facts.cases.is_empty() {
            return with_bookings(&conn, facts, from, to, town);
        }

        // The latest rating of each case (by time, then by call), with its comment and, where
        // there is one, the case number a report shows with it.
        let mut latest: Vec<Option<(i64, i64)>> = vec![None; facts.cases.len()];
        let mut st = conn.prepare_cached(
            "SELECT r.case_id, r.at_ms, r.call_id, r.rating, r.comment,
                    CASE WHEN r.comment IS NOT NULL THEN (SELECT case_no FROM cases WHERE id = r.case_id) END
             FROM ratings r WHERE r.case_id BETWEEN ?1 AND ?2",
        )?;
        let mut rows = st.query(params![min_id, max_id])?;
        while let Some(r) = rows.next()? {
            let Some(&i) = index.get(&r.get::<_, i64>(0)?) else { continue };
            let key = (r.get::<_, i64>(1)?, r.get::<_, i64>(2)?);
            if latest[i].is_some_and(|k| k >= key) {
                continue;
            }
            latest[i] = Some(key);
            let c = &mut facts.cases[i];
            c.rating = text(r, 3)?.and_then(Rating::parse);
            c.rating_comment = text(r, 4)?.map(str::to_string);
            c.case_no = text(r, 5)?.map(str::to_string);
        }
        drop(rows);

        // Calls, with their transfers folded into the call they continue.
        let mut legs: Vec<Leg> = Vec::with_capacity(facts.cases.len());
        let mut st = conn.prepare_cached(CALLS_SQL)?;
        let mut rows = st.query(params![min_id, max_id])?;
        while let Some(r) = rows.next()? {
            let case_id: i64 = r.get(1)?;
            if !index.contains_key(&case_id) {
                continue;
            }
            legs.push(Leg {
                id: r.get(0)?,
                call: CallFact {
                    case_id,
                    window: named(&windows, r.get(2)?),
                    requested_at_ms: row_ms(r.get(3)?),
                    rang_at_ms: opt_ms(r, 4)?,
                    answered_at_ms: opt_ms(r, 5)?,
                    ended_at_ms: opt_ms(r, 6)?,
                    end: CallEnd::Open,
                },
                cancelled: text(r, 7)? == Some("cancelled"),
                from: r.get(8)?,
            });
        }
        drop(rows);
        // The index gives them by case: in the order they were stored.
        legs.sort_unstable_by_key(|l| l.id);
        fold_transfers(&mut legs);
        facts.calls = legs
            .into_iter()
            .filter(|l| l.from.is_none())
            .map(|l| {
                let mut call = l.call;
                call.end = match (call.ended_at_ms, call.answered_at_ms, l.cancelled) {
                    (None, _, _) => CallEnd::Open,
                    (Some(_), Some(_), _) => CallEnd::AfterAnswer,
                    (Some(_), None, true) => CallEnd::Cancelled,
                    (Some(_), None, false) => CallEnd::Unanswered,
                };
                call
            })
            .collect();
        with_bookings(&conn, facts, from, to, town)
    }
}

/// `facts` with the bookings whose slot started in `from..to`, of `town` (or all if negative).
fn with_bookings(
    conn: &rusqlite::Connection,
    mut facts: Facts,
    from: i64,
    to: i64,
    town: i64,
) -> Result<Facts, DataError> {
    let mut st = conn.prepare_cached(
        "SELECT b.start_ms, b.end_ms, b.status FROM bookings b JOIN villages v ON v.id = b.village_id
             WHERE b.start_ms >= ?1 AND b.start_ms < ?2 AND (?3 < 0 OR v.town_id = ?3)",
    )?;
    let mut rows = st.query(params![from, to, town])?;
    while let Some(r) = rows.next()? {
        let status = text(r, 2)?;
        facts.bookings.push(BookingFact {
            start_ms: row_ms(r.get(0)?),
            end_ms: row_ms(r.get(1)?),
            called: status == Some("called"),
            cancelled: status == Some("cancelled"),
        });
    }
    Ok(facts)
}

/// A transfer's leg: its chain's root takes its end, and its answer (with the ring and the
/// window of that answer) if the chain had none yet. `legs` in id order: the chain's last
/// transfer is folded last and gives the end.
fn fold_transfers(legs: &mut [Leg]) {
    if legs.iter().all(|l| l.from.is_none()) {
        return;
    }
    let at: IdMap<i64, usize> = legs.iter().enumerate().map(|(i, l)| (l.id, i)).collect();
    for i in 0..legs.len() {
        let Some(mut root) = legs[i].from.and_then(|id| at.get(&id).copied()) else { continue };
        let mut hops = 0;
        while let Some(up) = legs[root].from.and_then(|id| at.get(&id).copied()) {
            root = up;
            hops += 1;
            if hops > 64 {
                break;
            }
        }
        let leg = &legs[i];
        let (ended, cancelled, answered, rang, window) = (
            leg.call.ended_at_ms,
            leg.cancelled,
            leg.call.answered_at_ms,
            leg.call.rang_at_ms,
            leg.call.window.clone(),
        );
        let rt = &mut legs[root];
        rt.call.ended_at_ms = ended;
        rt.cancelled = cancelled;
        if rt.call.answered_at_ms.is_none() && answered.is_some() {
            rt.call.answered_at_ms = answered;
            rt.call.rang_at_ms = rang;
            rt.call.window = window;
        }
    }
}
