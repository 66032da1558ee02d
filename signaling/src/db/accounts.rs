//! Staff accounts and kiosk devices as the county administrator manages them: listing, the
//! writes of `service::accounts` (inside [`Db::write`], so that the audit record is written in
//! the same transaction), sessions ended, enrolment codes and device tokens (stored only as
//! SHA-256 hashes), a kiosk's last connection.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::{DataError, Db, Role, Tx, role_col, row_ms, sql_ms};

/// An account as the administrator sees it (never its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub town_id: Option<i64>,
    pub window_id: Option<i64>,
    pub disabled: bool,
    pub must_change_password: bool,
    pub last_login_ms: Option<u64>,
}

/// A kiosk device as the administrator sees it (never its token hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceRow {
    pub id: i64,
    pub village_id: i64,
    pub name: String,
    pub disabled: bool,
    pub enrolled: bool,
    pub last_seen_ms: Option<u64>,
    /// `None`: the token does not expire (from the import file) or there is none.
    pub token_expires_at_ms: Option<u64>,
    /// The open enrolment code, if one was issued and is not used or expired.
    pub enrolment: Option<EnrolmentState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EnrolmentState {
    pub expires_at_ms: u64,
}

/// Fields of an account the administrator sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountFields {
    pub display_name: String,
    pub role: Role,
    pub town_id: Option<i64>,
    pub window_id: Option<i64>,
}

/// What refers to an account or a kiosk (a delete is refused while anything does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    Cases,
    Calls,
    Events,
    Signoffs,
    LegalHolds,
    Ratings,
    Bookings,
}

impl Reference {
    /// In the words of the refusal the administrator reads.
    pub fn word(self) -> &'static str {
        match self {
            Reference::Cases => "案件",
            Reference::Calls => "通话记录",
            Reference::Events => "案件经过记录",
            Reference::Signoffs => "一审一核记录",
            Reference::LegalHolds => "法律保全记录",
            Reference::Ratings => "好差评",
            Reference::Bookings => "预约",
        }
    }
}

const ACCOUNT_COLUMNS: &str =
    "id, username, display_name, role, town_id, window_id, disabled_at_ms, must_change_password, last_login_ms";

fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AccountRow> {
    Ok(AccountRow {
        id: r.get(0)?,
        username: r.get(1)?,
        display_name: r.get(2)?,
        role: role_col(r.get(3)?)?,
        town_id: r.get(4)?,
        window_id: r.get(5)?,
        disabled: r.get::<_, Option<i64>>(6)?.is_some(),
        must_change_password: r.get(7)?,
        last_login_ms: r.get::<_, Option<i64>>(8)?.map(row_ms),
    })
}

const DEVICE_SELECT: &str = "SELECT k.id, k.village_id, k.name, k.disabled_at_ms, k.enrolled, k.last_seen_ms,
            k.token_expires_at_ms, e.expires_at_ms
     FROM kiosks k LEFT JOIN kiosk_enrolments e ON e.kiosk_id = k.id AND e.expires_at_ms > ?1";

fn device_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRow> {
    let enrolled: bool = r.get(4)?;
    Ok(DeviceRow {
        id: r.get(0)?,
        village_id: r.get(1)?,
        name: r.get(2)?,
        disabled: r.get::<_, Option<i64>>(3)?.is_some(),
        enrolled,
        last_seen_ms: r.get::<_, Option<i64>>(5)?.map(row_ms),
        token_expires_at_ms: if enrolled { r.get::<_, Option<i64>>(6)?.map(row_ms) } else { None },
        enrolment: r.get::<_, Option<i64>>(7)?.map(|ms| EnrolmentState { expires_at_ms: row_ms(ms) }),
    })
}

fn references(
    tx: &rusqlite::Transaction<'_>,
    checks: &[(Reference, &str)],
    id: i64,
) -> Result<Vec<Reference>, DataError> {
    let mut out = Vec::new();
    for &(what, sql) in checks {
        if tx.query_row(sql, [id], |_| Ok(())).optional()?.is_some() {
            out.push(what);
        }
    }
    Ok(out)
}

impl Db {
    /// Every account, by id.
    pub fn accounts(&self) -> Result<Vec<AccountRow>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!("SELECT {ACCOUNT_COLUMNS} FROM users ORDER BY id"))?;
        let v = st.query_map([], account_row)?.collect::<Result<_, _>>()?;
        Ok(v)
    }

    pub fn account(&self, user_id: i64) -> Result<Option<AccountRow>, DataError> {
        Ok(self
            .conn()
            .query_row(&format!("SELECT {ACCOUNT_COLUMNS} FROM users WHERE id = ?1"), [user_id], account_row)
            .optional()?)
    }

    /// Every kiosk device, by id; `enrolment` only for codes still valid at `now_ms`.
    pub fn devices(&self, now_ms: u64) -> Result<Vec<DeviceRow>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!("{DEVICE_SELECT} ORDER BY k.id"))?;
        let v = st.query_map([sql_ms(now_ms)], device_row)?.collect::<Result<_, _>>()?;
        Ok(v)
    }

    pub fn device(&self, kiosk_id: i64, now_ms: u64) -> Result<Option<DeviceRow>, DataError> {
        Ok(self
            .conn()
            .query_row(&format!("{DEVICE_SELECT} WHERE k.id = ?2"), params![sql_ms(now_ms), kiosk_id], device_row)
            .optional()?)
    }

    /// The kiosk was seen (its socket said hello or passed its periodic check).
    pub fn kiosk_seen(&self, kiosk_id: i64, now_ms: u64) -> Result<(), DataError> {
        self.conn().execute("UPDATE kiosks SET last_seen_ms = ?2 WHERE id = ?1", params![kiosk_id, sql_ms(now_ms)])?;
        Ok(())
    }

    /// A login succeeded.
    pub fn user_logged_in(&self, user_id: i64, now_ms: u64) -> Result<(), DataError> {
        self.conn().execute("UPDATE users SET last_login_ms = ?2 WHERE id = ?1", params![user_id, sql_ms(now_ms)])?;
        Ok(())
    }

    /// The password hash of a live (not disabled) account.
    pub fn password_of_user(&self, user_id: i64) -> Result<Option<String>, DataError> {
        Ok(self
            .conn()
            .query_row("SELECT password_hash FROM users WHERE id = ?1 AND disabled_at_ms IS NULL", [user_id], |r| {
                r.get(0)
            })
            .optional()?)
    }
}

impl Tx<'_> {
    pub fn account(&self, user_id: i64) -> Result<Option<AccountRow>, DataError> {
        Ok(self
            .tx
            .query_row(&format!("SELECT {ACCOUNT_COLUMNS} FROM users WHERE id = ?1"), [user_id], account_row)
            .optional()?)
    }

    pub fn town_exists(&self, town_id: i64) -> Result<bool, DataError> {
        Ok(self.tx.query_row("SELECT 1 FROM towns WHERE id = ?1", [town_id], |_| Ok(())).optional()?.is_some())
    }

    pub fn village_exists(&self, village_id: i64) -> Result<bool, DataError> {
        Ok(self.tx.query_row("SELECT 1 FROM villages WHERE id = ?1", [village_id], |_| Ok(())).optional()?.is_some())
    }

    /// The town of a window, if the window exists.
    pub fn window_town(&self, window_id: i64) -> Result<Option<i64>, DataError> {
        Ok(self.tx.query_row("SELECT town_id FROM windows WHERE id = ?1", [window_id], |r| r.get(0)).optional()?)
    }

    pub fn username_taken(&self, username: &str) -> Result<bool, DataError> {
        Ok(self.tx.query_row("SELECT 1 FROM users WHERE username = ?1", [username], |_| Ok(())).optional()?.is_some())
    }

    /// A new account that must change its password at first login; returns its id.
    pub fn insert_account(&self, username: &str, f: &AccountFields, password_hash: &str) -> Result<i64, DataError> {
        self.tx.execute(
            "INSERT INTO users (username, display_name, role, town_id, window_id, password_hash, must_change_password)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
            params![username, f.display_name, f.role.as_str(), f.town_id, f.window_id, password_hash],
        )?;
        Ok(self.tx.last_insert_rowid())
    }

    pub fn update_account(&self, user_id: i64, f: &AccountFields) -> Result<(), DataError> {
        let n = self.tx.execute(
            "UPDATE users SET display_name = ?2, role = ?3, town_id = ?4, window_id = ?5 WHERE id = ?1",
            params![user_id, f.display_name, f.role.as_str(), f.town_id, f.window_id],
        )?;
        if n == 0 {
            return Err(DataError::NotFound(format!("user {user_id}")));
        }
        Ok(())
    }

    /// Disable (`Some(at)`) or enable (`None`) an account.
    pub fn set_account_disabled(&self, user_id: i64, at_ms: Option<u64>) -> Result<(), DataError> {
        self.tx.execute("UPDATE users SET disabled_at_ms = ?2 WHERE id = ?1", params![user_id, at_ms.map(sql_ms)])?;
        Ok(())
    }

    /// A new password hash; `must_change` says whether the next login must choose another.
    pub fn set_password(&self, user_id: i64, password_hash: &str, must_change: bool) -> Result<(), DataError> {
        self.tx.execute(
            "UPDATE users SET password_hash = ?2, must_change_password = ?3 WHERE id = ?1",
            params![user_id, password_hash, must_change],
        )?;
        Ok(())
    }

    /// Ends the sessions of a user, all or all but `except` (a token hash); returns the token
    /// hashes of the ended ones, so that their sockets can be closed.
    pub fn end_sessions(&self, user_id: i64, except: Option<&str>) -> Result<Vec<String>, DataError> {
        let mut st = self.tx.prepare("SELECT token_hash FROM sessions WHERE user_id = ?1 ORDER BY token_hash")?;
        let hashes: Vec<String> = st
            .query_map([user_id], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?
            .into_iter()
            .filter(|h| Some(h.as_str()) != except)
            .collect();
        for h in &hashes {
            self.tx.execute("DELETE FROM sessions WHERE token_hash = ?1", [h])?;
        }
        Ok(hashes)
    }

    /// What refers to the account (empty: it can be deleted).
    pub fn account_references(&self, user_id: i64) -> Result<Vec<Reference>, DataError> {
        references(
            self.tx,
            &[
                (Reference::Cases, "SELECT 1 FROM cases WHERE decided_by = ?1 LIMIT 1"),
                (Reference::Calls, "SELECT 1 FROM calls WHERE staff_id = ?1 LIMIT 1"),
                (Reference::Events, "SELECT 1 FROM case_events WHERE actor_kind = 'staff' AND actor_id = ?1 LIMIT 1"),
                (Reference::Signoffs, "SELECT 1 FROM cases WHERE signoff_by = ?1 LIMIT 1"),
                (
                    Reference::LegalHolds,
                    "SELECT 1 FROM legal_hold_history WHERE by_user = ?1
                     UNION ALL SELECT 1 FROM legal_holds WHERE placed_by = ?1 LIMIT 1",
                ),
            ],
            user_id,
        )
    }

    /// Deletes an account nothing refers to (its sessions go with it).
    pub fn delete_account(&self, user_id: i64) -> Result<(), DataError> {
        self.tx.execute("UPDATE kiosk_enrolments SET created_by = NULL WHERE created_by = ?1", [user_id])?;
        self.tx.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
        let n = self.tx.execute("DELETE FROM users WHERE id = ?1", [user_id])?;
        if n == 0 {
            return Err(DataError::NotFound(format!("user {user_id}")));
        }
        Ok(())
    }

    // --- kiosks --------------------------------------------------------------------------------

    pub fn device(&self, kiosk_id: i64, now_ms: u64) -> Result<Option<DeviceRow>, DataError> {
        Ok(self
            .tx
            .query_row(&format!("{DEVICE_SELECT} WHERE k.id = ?2"), params![sql_ms(now_ms), kiosk_id], device_row)
            .optional()?)
    }

    pub fn kiosk_name_taken(&self, village_id: i64, name: &str, except: Option<i64>) -> Result<bool, DataError> {
        Ok(self
            .tx
            .query_row(
                "SELECT 1 FROM kiosks WHERE village_id = ?1 AND name = ?2 AND id IS NOT ?3",
                params![village_id, name, except],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    /// A new kiosk, not enrolled: `unusable_hash` is the hash of a secret nobody is given.
    pub fn insert_device(&self, village_id: i64, name: &str, unusable_hash: &str) -> Result<i64, DataError> {
        self.tx.execute(
            "INSERT INTO kiosks (village_id, name, token_hash, enrolled) VALUES (?1, ?2, ?3, 0)",
            params![village_id, name, unusable_hash],
        )?;
        Ok(self.tx.last_insert_rowid())
    }

    pub fn rename_device(&self, kiosk_id: i64, name: &str) -> Result<(), DataError> {
        let n = self.tx.execute("UPDATE kiosks SET name = ?2 WHERE id = ?1", params![kiosk_id, name])?;
        if n == 0 {
            return Err(DataError::NotFound(format!("kiosk {kiosk_id}")));
        }
        Ok(())
    }

    /// Disable (`Some(at)`) or enable (`None`) a kiosk; returns its current token hash (its
    /// socket is to be closed).
    pub fn set_device_disabled(&self, kiosk_id: i64, at_ms: Option<u64>) -> Result<String, DataError> {
        self.tx.execute("UPDATE kiosks SET disabled_at_ms = ?2 WHERE id = ?1", params![kiosk_id, at_ms.map(sql_ms)])?;
        self.device_token_hash(kiosk_id)
    }

    fn device_token_hash(&self, kiosk_id: i64) -> Result<String, DataError> {
        self.tx
            .query_row("SELECT token_hash FROM kiosks WHERE id = ?1", [kiosk_id], |r| r.get(0))
            .optional()?
            .ok_or_else(|| DataError::NotFound(format!("kiosk {kiosk_id}")))
    }

    /// Gives the kiosk a new token hash; returns the old one. `enrolled: false` (a revoke)
    /// means the new hash is of a secret nobody is given. `expires_at_ms: None`: no expiry.
    pub fn set_device_token(
        &self,
        kiosk_id: i64,
        token_hash: &str,
        expires_at_ms: Option<u64>,
        enrolled: bool,
    ) -> Result<String, DataError> {
        let old = self.device_token_hash(kiosk_id)?;
        self.tx.execute(
            "UPDATE kiosks SET token_hash = ?2, token_expires_at_ms = ?3, enrolled = ?4 WHERE id = ?1",
            params![kiosk_id, token_hash, expires_at_ms.map(sql_ms), enrolled],
        )?;
        Ok(old)
    }

    /// Stores the kiosk's one enrolment code (replacing any earlier one).
    pub fn set_enrolment(
        &self,
        kiosk_id: i64,
        code_hash: &str,
        expires_at_ms: u64,
        created_by: Option<i64>,
        now_ms: u64,
    ) -> Result<(), DataError> {
        self.tx.execute(
            "INSERT INTO kiosk_enrolments (kiosk_id, code_hash, expires_at_ms, created_by, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (kiosk_id) DO UPDATE SET code_hash = excluded.code_hash,
                 expires_at_ms = excluded.expires_at_ms, created_by = excluded.created_by,
                 created_at_ms = excluded.created_at_ms",
            params![kiosk_id, code_hash, sql_ms(expires_at_ms), created_by, sql_ms(now_ms)],
        )?;
        Ok(())
    }

    /// Is the hash of some open enrolment code `code_hash` (then a fresh code must be drawn)?
    pub fn enrolment_code_taken(&self, code_hash: &str) -> Result<bool, DataError> {
        Ok(self
            .tx
            .query_row("SELECT 1 FROM kiosk_enrolments WHERE code_hash = ?1", [code_hash], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Uses up the enrolment code with this hash: the kiosk it was issued for, if the code is
    /// still valid at `now_ms` and the kiosk is not disabled. A code that matched is removed
    /// either way (used or expired: never twice).
    pub fn take_enrolment(&self, code_hash: &str, now_ms: u64) -> Result<Option<i64>, DataError> {
        let found: Option<(i64, i64)> = self
            .tx
            .query_row("SELECT kiosk_id, expires_at_ms FROM kiosk_enrolments WHERE code_hash = ?1", [code_hash], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        let Some((kiosk_id, expires_at_ms)) = found else { return Ok(None) };
        self.tx.execute("DELETE FROM kiosk_enrolments WHERE kiosk_id = ?1", [kiosk_id])?;
        if row_ms(expires_at_ms) <= now_ms {
            return Ok(None);
        }
        let disabled: bool =
            self.tx
                .query_row("SELECT disabled_at_ms IS NOT NULL FROM kiosks WHERE id = ?1", [kiosk_id], |r| r.get(0))?;
        Ok((!disabled).then_some(kiosk_id))
    }

    pub fn clear_enrolment(&self, kiosk_id: i64) -> Result<(), DataError> {
        self.tx.execute("DELETE FROM kiosk_enrolments WHERE kiosk_id = ?1", [kiosk_id])?;
        Ok(())
    }

    /// What refers to the kiosk (empty: it can be deleted).
    pub fn device_references(&self, kiosk_id: i64) -> Result<Vec<Reference>, DataError> {
        references(
            self.tx,
            &[
                (Reference::Cases, "SELECT 1 FROM cases WHERE kiosk_id = ?1 LIMIT 1"),
                (Reference::Calls, "SELECT 1 FROM calls WHERE kiosk_id = ?1 LIMIT 1"),
                (Reference::Events, "SELECT 1 FROM case_events WHERE actor_kind = 'kiosk' AND actor_id = ?1 LIMIT 1"),
                (Reference::Ratings, "SELECT 1 FROM ratings WHERE kiosk_id = ?1 LIMIT 1"),
                (Reference::Bookings, "SELECT 1 FROM bookings WHERE kiosk_id = ?1 LIMIT 1"),
            ],
            kiosk_id,
        )
    }

    /// Deletes a kiosk nothing refers to; returns its token hash (its socket is to close).
    pub fn delete_device(&self, kiosk_id: i64) -> Result<String, DataError> {
        let hash = self.device_token_hash(kiosk_id)?;
        self.tx.execute("DELETE FROM kiosk_enrolments WHERE kiosk_id = ?1", [kiosk_id])?;
        self.tx.execute("DELETE FROM kiosks WHERE id = ?1", [kiosk_id])?;
        Ok(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{VillageKind, WindowKind};

    #[test]
    fn history_refers_to_accounts_and_kiosks() {
        let db = Db::open_in_memory().unwrap();
        db.write(|tx| {
            let t = tx.upsert_town("甲镇", false)?.id();
            let v = tx.upsert_village(t, "一村", VillageKind::Village)?.id();
            let w = tx.upsert_window(t, "民政窗口", WindowKind::CivilAffairs, true)?.id();
            let fields = AccountFields {
                display_name: "张三".into(),
                role: Role::Approver,
                town_id: Some(t),
                window_id: Some(w),
            };
            let busy = tx.insert_account("busy", &fields, "h")?;
            let idle = tx.insert_account("idle", &fields, "h")?;
            let k_busy = tx.insert_device(v, "甲", "k1")?;
            let k_idle = tx.insert_device(v, "乙", "k2")?;
            tx.tx.execute_batch(&format!(
                "INSERT INTO matters (code, name, plain_name, window_kind) VALUES ('M1', 'm', 'm', 'custom');
                 INSERT INTO cases (case_no, matter_id, village_id, kiosk_id, status, created_at_ms, signoff_by)
                     VALUES ('X-1', last_insert_rowid(), {v}, {k_busy}, 'open', 0, {busy});
                 INSERT INTO case_events (case_id, at_ms, actor_kind, actor_id, kind)
                     VALUES (last_insert_rowid(), 0, 'staff', {busy}, 'opened');"
            ))?;
            assert_eq!(tx.account_references(busy)?, vec![Reference::Events, Reference::Signoffs]);
            assert!(tx.account_references(idle)?.is_empty());
            assert_eq!(tx.device_references(k_busy)?, vec![Reference::Cases]);
            assert!(tx.device_references(k_idle)?.is_empty());
            tx.delete_account(idle)?;
            tx.delete_device(k_idle)?;
            assert!(tx.account(idle)?.is_none() && tx.device(k_idle, 0)?.is_none());
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn a_new_device_is_not_enrolled_and_ending_sessions_keeps_the_one_asked() {
        let db = Db::open_in_memory().unwrap();
        db.write(|tx| {
            let t = tx.upsert_town("甲镇", false)?.id();
            let v = tx.upsert_village(t, "一村", VillageKind::Village)?.id();
            let k = tx.insert_device(v, "甲", "k1")?;
            let d = tx.device(k, 0)?.unwrap();
            assert!(!d.enrolled && !d.disabled && d.last_seen_ms.is_none() && d.token_expires_at_ms.is_none());
            let fields =
                AccountFields { display_name: "管理员".into(), role: Role::Admin, town_id: None, window_id: None };
            let u = tx.insert_account("root", &fields, "h")?;
            for (h, exp) in [("s1", 10), ("s2", 10), ("s3", 10)] {
                tx.tx.execute(
                    "INSERT INTO sessions (token_hash, user_id, created_at_ms, expires_at_ms) VALUES (?1, ?2, 0, ?3)",
                    params![h, u, exp],
                )?;
            }
            assert_eq!(tx.end_sessions(u, Some("s2"))?, vec!["s1".to_string(), "s3".to_string()]);
            assert_eq!(tx.end_sessions(u, None)?, vec!["s2".to_string()]);
            Ok(())
        })
        .unwrap();
        db.kiosk_seen(1, 77).unwrap();
        assert_eq!(db.device(1, 0).unwrap().unwrap().last_seen_ms, Some(77));
    }
}
