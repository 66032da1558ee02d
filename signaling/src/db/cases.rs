//! SQL for cases: opening, reading and listing, the villager, the lifecycle's transitions and
//! the timeline.
//!
//! Every state change is one transaction that also writes its timeline events, and is
//! conditional on the status it starts from: a change that lost a race is
//! [`DataError::Conflict`] and writes nothing.

use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, TransactionBehavior, params, params_from_iter};

use super::events::{NewEvent, insert_event};
use super::inbox::{InboxRow, insert_inbox_item};
use super::{DataError, Db, Role, bad_text, fk_not_found, row_ms, sql_ms};
use crate::case::{
    CaseRecord, CaseScope, CaseState, Decision, EventActor, Outcome, Signoff, SignoffDecision, Status, Transition,
};

pub(super) const CASE_SELECT: &str =
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

pub(super) fn status_col(s: String) -> rusqlite::Result<Status> {
    Status::parse(&s).ok_or_else(|| bad_text("case status", &s))
}

pub(super) fn case_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaseRecord> {
    let created_at_ms = row_ms(r.get(13)?);
    let outcome: Option<String> = r.get(18)?;
    let decision = match outcome {
        Some(o) => Some(Decision {
            outcome: Outcome::parse(&o).ok_or_else(|| bad_text("outcome", &o))?,
            note: r.get::<_, Option<String>>(19)?.unwrap_or_default(),
            missing_items: json_list(r.get(20)?),
            result_paper_id: r.get(21)?,
            by: r.get::<_, Option<i64>>(22)?.unwrap_or_default(),
            at_ms: r.get::<_, Option<i64>>(24)?.map(row_ms).unwrap_or_default(),
        }),
        None => None,
    };
    let signoff_decision: Option<String> = r.get(28)?;
    let signoff = match signoff_decision {
        Some(d) => Some(Signoff {
            by: r.get::<_, Option<i64>>(25)?.unwrap_or_default(),
            at_ms: r.get::<_, Option<i64>>(27)?.map(row_ms).unwrap_or_default(),
            decision: SignoffDecision::parse(&d).ok_or_else(|| bad_text("sign-off decision", &d))?,
            reason: r.get(29)?,
        }),
        None => None,
    };
    Ok(CaseRecord {
        id: r.get(0)?,
        case_no: r.get(1)?,
        matter_id: r.get(2)?,
        matter_name: r.get(3)?,
        matter_plain_name: r.get(4)?,
        required_papers: json_list(r.get(5)?),
        village_id: r.get(7)?,
        village_name: r.get(8)?,
        town_id: r.get(9)?,
        town_name: r.get(10)?,
        kiosk_id: r.get(11)?,
        created_at_ms,
        updated_at_ms: r.get::<_, Option<i64>>(14)?.map(row_ms).unwrap_or(created_at_ms),
        villager_name: r.get(15)?,
        villager_phone: r.get(16)?,
        id_number_masked: r.get(17)?,
        state: CaseState { status: status_col(r.get(12)?)?, needs_signoff: r.get(6)?, decision, signoff },
        decided_by_name: r.get(23)?,
        signoff_by_name: r.get(26)?,
    })
}

/// `?, ?, ?` placeholders from `start` (1-based) for `n` values.
fn placeholders(start: usize, n: usize) -> String {
    (start..start + n).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ")
}

/// `'done', 'refused'`: the final statuses as SQL text, for conditions.
fn final_statuses_sql() -> String {
    Status::ALL.iter().filter(|s| s.is_final()).map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ")
}

impl Db {
    /// Opens a case with the next number of the day (China time): `{county code}-YYYYMMDD-NNNN`.
    pub fn create_case(
        &self,
        matter_id: i64,
        village_id: i64,
        kiosk_id: Option<i64>,
        now_ms: u64,
    ) -> Result<CaseRecord, DataError> {
        let id = {
            let mut conn = self.conn();
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let exists = |sql: &str, id: i64| -> rusqlite::Result<bool> {
                tx.query_row(sql, [id], |_| Ok(())).optional().map(|o| o.is_some())
            };
            if !exists("SELECT 1 FROM matters WHERE id = ?1", matter_id)? {
                return Err(DataError::NotFound(format!("matter {matter_id}")));
            }
            if !exists("SELECT 1 FROM villages WHERE id = ?1", village_id)? {
                return Err(DataError::NotFound(format!("village {village_id}")));
            }
            if let Some(k) = kiosk_id
                && !exists("SELECT 1 FROM kiosks WHERE id = ?1", k)?
            {
                return Err(DataError::NotFound(format!("kiosk {k}")));
            }
            let code: String = tx
                .query_row("SELECT code FROM county WHERE id = 1", [], |r| r.get(0))
                .optional()?
                .unwrap_or_else(|| "CN".to_owned());
            let prefix = format!("{code}-{}-", super::china_date(now_ms));
            let last: Option<String> = tx
                .query_row(
                    "SELECT case_no FROM cases WHERE substr(case_no, 1, length(?1)) = ?1
                     ORDER BY length(case_no) DESC, case_no DESC LIMIT 1",
                    [&prefix],
                    |r| r.get(0),
                )
                .optional()?;
            let seq = last.and_then(|s| s[prefix.len()..].parse::<u64>().ok()).unwrap_or(0) + 1;
            let case_no = format!("{prefix}{seq:04}");
            let lookup_code = format!("{:08}", rand::random::<u32>() % 100_000_000);
            tx.execute(
                "INSERT INTO cases (case_no, matter_id, village_id, kiosk_id, status, created_at_ms, lookup_code)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![case_no, matter_id, village_id, kiosk_id, Status::Open.as_str(), sql_ms(now_ms), lookup_code],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            id
        };
        self.case(id)?.ok_or_else(|| DataError::NotFound(format!("case {id}")))
    }

    pub fn case(&self, case_id: i64) -> Result<Option<CaseRecord>, DataError> {
        let sql = format!("{CASE_SELECT} WHERE c.id = ?1");
        Ok(self.conn().query_row(&sql, [case_id], case_row).optional()?)
    }

    /// The progress lookup code printed on the case's receipt.
    pub fn lookup_code(&self, case_id: i64) -> Result<Option<String>, DataError> {
        Ok(self
            .conn()
            .query_row("SELECT lookup_code FROM cases WHERE id = ?1", [case_id], |r| r.get::<_, Option<String>>(0))
            .optional()?
            .flatten())
    }

    pub fn case_by_no(&self, case_no: &str) -> Result<Option<CaseRecord>, DataError> {
        let sql = format!("{CASE_SELECT} WHERE c.case_no = ?1");
        Ok(self.conn().query_row(&sql, [case_no], case_row).optional()?)
    }

    /// Case numbers of these cases (those that exist).
    pub fn case_numbers(&self, case_ids: &[i64]) -> Result<Vec<(i64, String)>, DataError> {
        if case_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("SELECT id, case_no FROM cases WHERE id IN ({})", placeholders(1, case_ids.len()));
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(params_from_iter(case_ids), |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Cases in `scope`, newest first (or oldest first); `statuses` filters when given.
    pub fn cases_in_scope(
        &self,
        scope: CaseScope,
        statuses: Option<&[Status]>,
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
            args.extend(st.iter().map(|s| SqlValue::from(s.as_str().to_string())));
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

    /// The case the kiosk works on: the case of its call that has not ended (waiting or
    /// live), or else the case it is preparing: the newest it opened since `since_ms` that is
    /// `open` and was never called.
    pub fn current_case_of_kiosk(&self, kiosk_id: i64, since_ms: u64) -> Result<Option<CaseRecord>, DataError> {
        let conn = self.conn();
        let mut id: Option<i64> = conn
            .query_row(
                "SELECT case_id FROM calls WHERE kiosk_id = ?1 AND ended_at_ms IS NULL ORDER BY id DESC LIMIT 1",
                [kiosk_id],
                |r| r.get(0),
            )
            .optional()?;
        if id.is_none() {
            id = conn
                .query_row(
                    "SELECT c.id FROM cases c WHERE c.kiosk_id = ?1 AND c.status = 'open' AND c.created_at_ms >= ?2
                     AND NOT EXISTS (SELECT 1 FROM calls k WHERE k.case_id = c.id)
                     ORDER BY c.id DESC LIMIT 1",
                    params![kiosk_id, sql_ms(since_ms)],
                    |r| r.get(0),
                )
                .optional()?;
        }
        drop(conn);
        match id {
            Some(id) => self.case(id),
            None => Ok(None),
        }
    }

    /// Cases of `town_id` whose last call was answered and ended without a decision (`open`,
    /// no call waiting or live), oldest first; `answered_by`: only those whose last answered
    /// call was that approver's (who decides them).
    pub fn undecided_cases(
        &self,
        town_id: i64,
        answered_by: Option<i64>,
        limit: usize,
    ) -> Result<Vec<CaseRecord>, DataError> {
        let sql = format!(
            "{CASE_SELECT} WHERE v.town_id = ?1 AND c.status = 'open'
             AND NOT EXISTS (SELECT 1 FROM calls k WHERE k.case_id = c.id AND k.ended_at_ms IS NULL)
             AND EXISTS (SELECT 1 FROM calls k WHERE k.id = (
                 SELECT MAX(k2.id) FROM calls k2 WHERE k2.case_id = c.id AND k2.answered_at_ms IS NOT NULL
                 AND k2.staff_id IS NOT NULL) AND (?2 IS NULL OR k.staff_id = ?2))
             ORDER BY c.id ASC LIMIT ?3"
        );
        let conn = self.conn();
        let mut st = conn.prepare(&sql)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = st.query_map(params![town_id, answered_by, limit], case_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Remove a case that was opened for a call the queue then refused (nothing else refers
    /// to it yet).
    pub fn delete_unused_case(&self, case_id: i64) -> Result<(), DataError> {
        self.conn().execute(
            "DELETE FROM cases WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM calls WHERE case_id = ?1)",
            [case_id],
        )?;
        Ok(())
    }

    /// Erase the villager's personal data (name, phone, the ID number sealed and masked, and
    /// the last digits kept for searching) of every case last changed before `before_ms` and
    /// not under a legal hold: the papers' retention. The case's anonymous facts (matter,
    /// village, dates, status, outcome, calls, ratings) stay for statistics. Returns how many
    /// cases were erased.
    pub fn erase_expired_personal_data(&self, before_ms: u64) -> Result<usize, DataError> {
        Ok(self.conn().execute(
            "UPDATE cases SET villager_name = NULL, villager_phone = NULL, id_number_masked = NULL,
                    id_number_sealed = NULL, phone_last4 = NULL, id_last4 = NULL
             WHERE coalesce(updated_at_ms, created_at_ms) < ?1
               AND (villager_name IS NOT NULL OR villager_phone IS NOT NULL OR id_number_masked IS NOT NULL
                    OR id_number_sealed IS NOT NULL OR phone_last4 IS NOT NULL OR id_last4 IS NOT NULL)
               AND id NOT IN (SELECT case_id FROM legal_holds)",
            [sql_ms(before_ms)],
        )?)
    }

    /// Every sealed ID number: (case id, the sealed object). For `keys rewrap`.
    pub fn sealed_id_numbers(&self) -> Result<Vec<(i64, Vec<u8>)>, DataError> {
        let conn = self.conn();
        let mut st =
            conn.prepare("SELECT id, id_number_sealed FROM cases WHERE id_number_sealed IS NOT NULL ORDER BY id")?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Replace a case's sealed ID number if it is still `old` (a rewrapped header); false when
    /// it changed in between.
    pub fn replace_sealed_id_number(&self, case_id: i64, old: &[u8], new: &[u8]) -> Result<bool, DataError> {
        let n = self.conn().execute(
            "UPDATE cases SET id_number_sealed = ?3 WHERE id = ?1 AND id_number_sealed = ?2",
            params![case_id, old, new],
        )?;
        Ok(n == 1)
    }

    /// Set the villager of a case that is not final (`ev` is its `villager.set` event).
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
        let sql = format!(
            "UPDATE cases SET villager_name = ?2, villager_phone = ?3, id_number_masked = ?4, id_number_sealed = ?5,
                    updated_at_ms = ?6, phone_last4 = substr(?3, -4), id_last4 = substr(?4, -4)
             WHERE id = ?1 AND status NOT IN ({})",
            final_statuses_sql()
        );
        let n = tx.execute(&sql, params![case_id, name, phone, id_masked, id_sealed, sql_ms(ev.at_ms)])?;
        if n == 0 {
            return Err(DataError::Conflict(format!("case {case_id} is closed")));
        }
        insert_event(&tx, case_id, ev)?;
        tx.commit()?;
        Ok(())
    }

    /// Store a transition of the lifecycle: the new status, decision and sign-off, and its
    /// events, if the case is still in `from`; Conflict (nothing written) otherwise. With
    /// `inbox_for` (a village), the result is also put in that village's inbox, in the same
    /// transaction; its row is returned.
    pub fn commit_transition(
        &self,
        case_id: i64,
        from: Status,
        t: &Transition,
        actor: &EventActor,
        at_ms: u64,
        inbox_for: Option<i64>,
    ) -> Result<Option<InboxRow>, DataError> {
        let s = &t.state;
        let d = s.decision.as_ref();
        let so = s.signoff.as_ref();
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx
            .execute(
                "UPDATE cases SET status = ?3, outcome = ?4, outcome_note = ?5, missing_items = ?6,
                        result_paper_id = ?7, decided_by = ?8, decided_at_ms = ?9, signoff_by = ?10,
                        signoff_at_ms = ?11, signoff_decision = ?12, signoff_reason = ?13, updated_at_ms = ?14
                 WHERE id = ?1 AND status = ?2",
                params![
                    case_id,
                    from.as_str(),
                    s.status.as_str(),
                    d.map(|d| d.outcome.as_str()),
                    d.map(|d| d.note.as_str()),
                    serde_json::to_string(d.map(|d| d.missing_items.as_slice()).unwrap_or_default())?,
                    d.and_then(|d| d.result_paper_id),
                    d.map(|d| d.by),
                    d.map(|d| sql_ms(d.at_ms)),
                    so.map(|so| so.by),
                    so.map(|so| sql_ms(so.at_ms)),
                    so.map(|so| so.decision.as_str()),
                    so.and_then(|so| so.reason.as_deref()),
                    sql_ms(at_ms),
                ],
            )
            .map_err(|e| fk_not_found(e, "user or paper"))?;
        if n == 0 {
            return Err(DataError::Conflict(format!("case {case_id} is no longer {from}")));
        }
        for event in &t.events {
            insert_event(&tx, case_id, &NewEvent { at_ms, actor: actor.clone(), event: event.clone() })?;
        }
        let inbox = match inbox_for {
            Some(village_id) => Some(insert_inbox_item(&tx, village_id, case_id, at_ms)?),
            None => None,
        };
        tx.commit()?;
        Ok(inbox)
    }

    /// Ids of the staff of a town with `role` (e.g. the chiefs to tell about a sign-off).
    pub fn staff_of_town(&self, town_id: i64, role: Role) -> Result<Vec<i64>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT id FROM users WHERE town_id = ?1 AND role = ?2 ORDER BY id")?;
        let rows = st.query_map(params![town_id, role.as_str()], |r| r.get(0))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
