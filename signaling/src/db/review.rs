//! The supervisors' search over cases: every filter of the review page, a total, and keyset
//! pagination (a cursor, never an offset). The indexes it needs are in migration 0004; the
//! bench is `examples/review_search_bench.rs` (BENCHMARKS.md).

use rusqlite::params_from_iter;
use rusqlite::types::Value as SqlValue;

use super::cases::{CASE_SELECT, case_row};
use super::{DataError, Db, role_col, sql_ms};
use crate::case::{CaseRecord, CaseScope, Outcome, Rating, Status};
use crate::identity::Role;

/// The 一审一核 state a search asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignoffFilter {
    /// The matter needs no sign-off.
    NotRequired,
    /// Waiting for the chief.
    Pending,
    /// Sent back by the chief (now or earlier, as last recorded).
    Returned,
    /// Approved by the chief.
    Approved,
}

/// The rating a search asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatingFilter {
    Is(Rating),
    /// Not rated.
    None,
}

/// Which cases: every field that is set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseFilter {
    /// A whole case number, or its beginning (`ZH-20261122`).
    pub case_no: Option<String>,
    pub town_id: Option<i64>,
    pub village_id: Option<i64>,
    pub matter_id: Option<i64>,
    /// A window that handled one of its calls.
    pub window_id: Option<i64>,
    /// The approver who decided it or answered one of its calls.
    pub approver_id: Option<i64>,
    /// Opened at or after (Unix ms).
    pub from_ms: Option<u64>,
    /// Opened before (Unix ms).
    pub to_ms: Option<u64>,
    pub statuses: Option<Vec<Status>>,
    pub outcome: Option<Outcome>,
    pub signoff: Option<SignoffFilter>,
    pub rating: Option<RatingFilter>,
    pub has_recording: Option<bool>,
    pub recording_incomplete: Option<bool>,
    pub legal_hold: Option<bool>,
    /// The villager's full name (exact).
    pub villager_name: Option<String>,
    /// The last four digits of the villager's phone or ID number.
    pub villager_last4: Option<String>,
}

/// Newest or oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaseOrder {
    #[default]
    Newest,
    Oldest,
}

/// One page of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CasePage {
    pub cases: Vec<CaseRecord>,
    /// All the cases that match, over every page.
    pub total: u64,
    /// The cursor of the next page (the last case's id), if there is one.
    pub next: Option<i64>,
}

/// The WHERE clause and its arguments.
fn conditions(scope: CaseScope, f: &CaseFilter) -> (String, Vec<SqlValue>) {
    let mut w: Vec<String> = vec!["1 = 1".into()];
    let mut a: Vec<SqlValue> = Vec::new();
    let arg = |a: &mut Vec<SqlValue>, v: SqlValue| -> String {
        a.push(v);
        format!("?{}", a.len())
    };
    match scope {
        CaseScope::Village(v) => w.push(format!("c.village_id = {}", arg(&mut a, v.into()))),
        CaseScope::Town(t) => w.push(format!("v.town_id = {}", arg(&mut a, t.into()))),
        CaseScope::County => {}
    }
    if let Some(no) = &f.case_no {
        // A range on the unique index: case numbers are letters, digits and '-', all below '~'.
        let n = arg(&mut a, no.clone().into());
        w.push(format!("c.case_no >= {n} AND c.case_no < {n} || '~'"));
    }
    if let Some(t) = f.town_id {
        w.push(format!("v.town_id = {}", arg(&mut a, t.into())));
    }
    if let Some(v) = f.village_id {
        w.push(format!("c.village_id = {}", arg(&mut a, v.into())));
    }
    if let Some(m) = f.matter_id {
        w.push(format!("c.matter_id = {}", arg(&mut a, m.into())));
    }
    if let Some(win) = f.window_id {
        let p = arg(&mut a, win.into());
        w.push(format!("EXISTS (SELECT 1 FROM calls l WHERE l.case_id = c.id AND l.window_id = {p})"));
    }
    if let Some(ap) = f.approver_id {
        let p = arg(&mut a, ap.into());
        w.push(format!(
            "(c.decided_by = {p} OR EXISTS (SELECT 1 FROM calls l WHERE l.case_id = c.id AND l.staff_id = {p}))"
        ));
    }
    if let Some(from) = f.from_ms {
        w.push(format!("c.created_at_ms >= {}", arg(&mut a, sql_ms(from).into())));
    }
    if let Some(to) = f.to_ms {
        w.push(format!("c.created_at_ms < {}", arg(&mut a, sql_ms(to).into())));
    }
    if let Some(st) = &f.statuses {
        let list: Vec<String> = st.iter().map(|s| arg(&mut a, s.as_str().to_string().into())).collect();
        w.push(format!("c.status IN ({})", if list.is_empty() { "NULL".into() } else { list.join(", ") }));
    }
    if let Some(o) = f.outcome {
        w.push(format!("c.outcome = {}", arg(&mut a, o.as_str().to_string().into())));
    }
    match f.signoff {
        None => {}
        Some(SignoffFilter::NotRequired) => w.push("m.needs_signoff = 0".into()),
        Some(SignoffFilter::Pending) => w.push("c.status = 'signoff'".into()),
        Some(SignoffFilter::Returned) => w.push("c.signoff_decision = 'returned'".into()),
        Some(SignoffFilter::Approved) => w.push("c.signoff_decision = 'approved'".into()),
    }
    match f.rating {
        None => {}
        Some(RatingFilter::Is(r)) => {
            let p = arg(&mut a, r.as_str().to_string().into());
            w.push(format!("EXISTS (SELECT 1 FROM ratings g WHERE g.case_id = c.id AND g.rating = {p})"));
        }
        Some(RatingFilter::None) => w.push("NOT EXISTS (SELECT 1 FROM ratings g WHERE g.case_id = c.id)".into()),
    }
    let recordings = "SELECT 1 FROM recordings r WHERE r.case_id = c.id";
    match f.has_recording {
        None => {}
        Some(true) => w.push(format!("EXISTS ({recordings})")),
        Some(false) => w.push(format!("NOT EXISTS ({recordings})")),
    }
    match f.recording_incomplete {
        None => {}
        Some(true) => w.push(format!("EXISTS ({recordings} AND r.status = 'incomplete')")),
        Some(false) => w.push(format!("NOT EXISTS ({recordings} AND r.status = 'incomplete')")),
    }
    match f.legal_hold {
        None => {}
        Some(true) => w.push("EXISTS (SELECT 1 FROM legal_holds h WHERE h.case_id = c.id)".into()),
        Some(false) => w.push("NOT EXISTS (SELECT 1 FROM legal_holds h WHERE h.case_id = c.id)".into()),
    }
    if let Some(name) = &f.villager_name {
        w.push(format!("c.villager_name = {}", arg(&mut a, name.clone().into())));
    }
    if let Some(d) = &f.villager_last4 {
        let p = arg(&mut a, d.clone().into());
        w.push(format!("(c.phone_last4 = {p} OR c.id_last4 = {p})"));
    }
    (w.join(" AND "), a)
}

impl Db {
    /// One page of the cases in `scope` that match `f`, with the total.
    pub fn search_cases(
        &self,
        scope: CaseScope,
        f: &CaseFilter,
        order: CaseOrder,
        cursor: Option<i64>,
        limit: usize,
    ) -> Result<CasePage, DataError> {
        let (cond, args) = conditions(scope, f);
        let from = "FROM cases c JOIN matters m ON m.id = c.matter_id JOIN villages v ON v.id = c.village_id";
        let conn = self.conn();
        let total: i64 = conn
            .prepare_cached(&format!("SELECT COUNT(*) {from} WHERE {cond}"))?
            .query_row(params_from_iter(args.iter()), |r| r.get(0))?;
        let mut page_args = args;
        let mut sql = format!("{CASE_SELECT} WHERE {cond}");
        if let Some(c) = cursor {
            page_args.push(c.into());
            let op = match order {
                CaseOrder::Newest => "<",
                CaseOrder::Oldest => ">",
            };
            sql.push_str(&format!(" AND c.id {op} ?{}", page_args.len()));
        }
        sql.push_str(match order {
            CaseOrder::Newest => " ORDER BY c.id DESC",
            CaseOrder::Oldest => " ORDER BY c.id ASC",
        });
        // One more than asked: whether there is a next page.
        page_args.push(SqlValue::from(i64::try_from(limit + 1).unwrap_or(i64::MAX)));
        sql.push_str(&format!(" LIMIT ?{}", page_args.len()));
        let mut st = conn.prepare_cached(&sql)?;
        let mut cases = st.query_map(params_from_iter(page_args.iter()), case_row)?.collect::<Result<Vec<_>, _>>()?;
        let next = if cases.len() > limit {
            cases.truncate(limit);
            cases.last().map(|c| c.id)
        } else {
            None
        };
        Ok(CasePage { cases, total: u64::try_from(total).unwrap_or_default(), next })
    }
}

/// Someone of a town's staff who may have handled cases (approvers and chiefs), for the
/// review's drop-downs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TownStaff {
    pub id: i64,
    pub name: String,
    pub town_id: i64,
    pub role: Role,
}

impl Db {
    /// The approvers and chiefs of every town (of `town` only, if given), by town and name.
    pub fn deciding_staff(&self, town: Option<i64>) -> Result<Vec<TownStaff>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "SELECT id, display_name, town_id, role FROM users
             WHERE role IN ('approver', 'chief') AND town_id IS NOT NULL AND (?1 IS NULL OR town_id = ?1)
             ORDER BY town_id, id",
        )?;
        let rows = st
            .query_map([town], |r| {
                Ok(TownStaff { id: r.get(0)?, name: r.get(1)?, town_id: r.get(2)?, role: role_col(r.get(3)?)? })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}
