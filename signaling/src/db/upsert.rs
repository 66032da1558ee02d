//! Writes of the region import, inside [`Db::write`]: lookups by natural key and upserts.

use rusqlite::{OptionalExtension, params};

use super::region::{CountyRow, VillageKind, WindowKind, window_kind_col};
use super::{DataError, Role, sql_ms};

/// A write transaction (see [`Db::write`]). Lookups by natural key and upserts.
pub struct Tx<'a> {
    pub(super) tx: &'a rusqlite::Transaction<'a>,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    Created(i64),
    Updated(i64),
}

impl Upsert {
    pub fn id(self) -> i64 {
        match self {
            Upsert::Created(id) | Upsert::Updated(id) => id,
        }
    }
    pub fn created(self) -> bool {
        matches!(self, Upsert::Created(_))
    }
}

/// Fields of a matter for [`Tx::upsert_matter`].
#[derive(Debug, Clone)]
pub struct MatterFields<'a> {
    pub code: &'a str,
    pub name: &'a str,
    pub plain_name: &'a str,
    pub department: &'a str,
    pub window_kind: WindowKind,
    pub required_papers: &'a [String],
    pub needs_signoff: bool,
    pub village_can_finish: bool,
    pub keywords: &'a str,
}

/// Fields of a user for [`Tx::upsert_user`].
#[derive(Debug, Clone)]
pub struct UserFields<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub role: Role,
    pub town_id: Option<i64>,
    pub window_id: Option<i64>,
    pub password_hash: &'a str,
}

impl Tx<'_> {
    fn id_of(&self, sql: &str, p: impl rusqlite::Params) -> Result<Option<i64>, DataError> {
        Ok(self.tx.query_row(sql, p, |r| r.get(0)).optional()?)
    }

    pub fn county(&self) -> Result<Option<CountyRow>, DataError> {
        Ok(self
            .tx
            .query_row("SELECT name, code FROM county WHERE id = 1", [], |r| {
                Ok(CountyRow { name: r.get(0)?, code: r.get(1)? })
            })
            .optional()?)
    }

    pub fn set_county(&self, name: &str, code: &str) -> Result<(), DataError> {
        self.tx.execute(
            "INSERT INTO county (id, name, code) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, code = excluded.code",
            params![name, code],
        )?;
        Ok(())
    }

    pub fn town_id(&self, name: &str) -> Result<Option<i64>, DataError> {
        self.id_of("SELECT id FROM towns WHERE name = ?1", [name])
    }

    pub fn upsert_town(&self, name: &str, any_window: bool) -> Result<Upsert, DataError> {
        if let Some(id) = self.town_id(name)? {
            self.tx.execute("UPDATE towns SET any_window = ?2 WHERE id = ?1", params![id, any_window])?;
            return Ok(Upsert::Updated(id));
        }
        self.tx.execute("INSERT INTO towns (name, any_window) VALUES (?1, ?2)", params![name, any_window])?;
        Ok(Upsert::Created(self.tx.last_insert_rowid()))
    }

    pub fn village_id(&self, town_id: i64, name: &str) -> Result<Option<i64>, DataError> {
        self.id_of("SELECT id FROM villages WHERE town_id = ?1 AND name = ?2", params![town_id, name])
    }

    pub fn upsert_village(&self, town_id: i64, name: &str, kind: VillageKind) -> Result<Upsert, DataError> {
        if let Some(id) = self.village_id(town_id, name)? {
            self.tx.execute("UPDATE villages SET kind = ?2 WHERE id = ?1", params![id, kind.as_str()])?;
            return Ok(Upsert::Updated(id));
        }
        self.tx.execute(
            "INSERT INTO villages (town_id, name, kind) VALUES (?1, ?2, ?3)",
            params![town_id, name, kind.as_str()],
        )?;
        Ok(Upsert::Created(self.tx.last_insert_rowid()))
    }

    pub fn window_id(&self, town_id: i64, name: &str) -> Result<Option<i64>, DataError> {
        self.id_of("SELECT id FROM windows WHERE town_id = ?1 AND name = ?2", params![town_id, name])
    }

    /// `derive_matters`: the window takes the matters of its kind, re-derived by
    /// [`Tx::derive_window_matters`]; `false`: its list is set with [`Tx::set_window_matters`].
    pub fn upsert_window(
        &self,
        town_id: i64,
        name: &str,
        kind: WindowKind,
        derive_matters: bool,
    ) -> Result<Upsert, DataError> {
        if let Some(id) = self.window_id(town_id, name)? {
            self.tx.execute(
                "UPDATE windows SET kind = ?2, derive_matters = ?3 WHERE id = ?1",
                params![id, kind.as_str(), derive_matters],
            )?;
            return Ok(Upsert::Updated(id));
        }
        self.tx.execute(
            "INSERT INTO windows (town_id, name, kind, derive_matters) VALUES (?1, ?2, ?3, ?4)",
            params![town_id, name, kind.as_str(), derive_matters],
        )?;
        Ok(Upsert::Created(self.tx.last_insert_rowid()))
    }

    /// For every window marked `derive_matters`, of any town: window_matters := the matters
    /// whose window kind is the window's kind (none for custom windows).
    pub fn derive_window_matters(&self) -> Result<(), DataError> {
        self.tx.execute_batch(
            "DELETE FROM window_matters
               WHERE window_id IN (SELECT id FROM windows WHERE derive_matters = 1);
             INSERT INTO window_matters (window_id, matter_id)
               SELECT w.id, m.id FROM windows w JOIN matters m ON m.window_kind = w.kind
               WHERE w.derive_matters = 1 AND w.kind <> 'custom';",
        )?;
        Ok(())
    }

    pub fn matter_id(&self, code: &str) -> Result<Option<i64>, DataError> {
        self.id_of("SELECT id FROM matters WHERE code = ?1", [code])
    }

    /// Matter ids and kinds of the whole catalog (for deriving window_matters).
    pub fn matter_kinds(&self) -> Result<Vec<(i64, WindowKind)>, DataError> {
        let mut st = self.tx.prepare("SELECT id, window_kind FROM matters ORDER BY id")?;
        let v = st.query_map([], |r| Ok((r.get(0)?, window_kind_col(r.get(1)?)?)))?.collect::<Result<_, _>>()?;
        Ok(v)
    }

    pub fn upsert_matter(&self, m: &MatterFields<'_>) -> Result<Upsert, DataError> {
        let papers = serde_json::to_string(m.required_papers)?;
        let existing = self.matter_id(m.code)?;
        self.tx.execute(
            "INSERT INTO matters (code, name, plain_name, department, window_kind, required_papers,
                                  needs_signoff, village_can_finish, keywords)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (code) DO UPDATE SET name = excluded.name, plain_name = excluded.plain_name,
                department = excluded.department, window_kind = excluded.window_kind,
                required_papers = excluded.required_papers, needs_signoff = excluded.needs_signoff,
                village_can_finish = excluded.village_can_finish, keywords = excluded.keywords",
            params![
                m.code,
                m.name,
                m.plain_name,
                m.department,
                m.window_kind.as_str(),
                papers,
                m.needs_signoff,
                m.village_can_finish,
                m.keywords
            ],
        )?;
        Ok(match existing {
            Some(id) => Upsert::Updated(id),
            None => Upsert::Created(self.tx.last_insert_rowid()),
        })
    }

    /// Replaces the set of matters a window takes.
    pub fn set_window_matters(&self, window_id: i64, matter_ids: &[i64]) -> Result<(), DataError> {
        self.tx.execute("DELETE FROM window_matters WHERE window_id = ?1", [window_id])?;
        let mut st = self.tx.prepare("INSERT OR IGNORE INTO window_matters (window_id, matter_id) VALUES (?1, ?2)")?;
        for m in matter_ids {
            st.execute([window_id, *m])?;
        }
        Ok(())
    }

    /// Id and password hash of a username.
    pub fn user_password_hash(&self, username: &str) -> Result<Option<(i64, String)>, DataError> {
        Ok(self
            .tx
            .query_row("SELECT id, password_hash FROM users WHERE username = ?1", [username], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }

    /// Creates or updates a user by username. A changed password hash ends the user's sessions.
    pub fn upsert_user(&self, u: &UserFields<'_>) -> Result<Upsert, DataError> {
        if let Some((id, old_hash)) = self.user_password_hash(u.username)? {
            self.tx.execute(
                "UPDATE users SET display_name = ?2, role = ?3, town_id = ?4, window_id = ?5, password_hash = ?6
                 WHERE id = ?1",
                params![id, u.display_name, u.role.as_str(), u.town_id, u.window_id, u.password_hash],
            )?;
            if old_hash != u.password_hash {
                self.tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
            }
            return Ok(Upsert::Updated(id));
        }
        self.tx.execute(
            "INSERT INTO users (username, display_name, role, town_id, window_id, password_hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![u.username, u.display_name, u.role.as_str(), u.town_id, u.window_id, u.password_hash],
        )?;
        Ok(Upsert::Created(self.tx.last_insert_rowid()))
    }

    /// The kiosk that has this token hash, if any (tokens must be unique).
    pub fn kiosk_with_token_hash(&self, token_hash: &str) -> Result<Option<i64>, DataError> {
        self.id_of("SELECT id FROM kiosks WHERE token_hash = ?1", [token_hash])
    }

    pub fn kiosk_id(&self, village_id: i64, name: &str) -> Result<Option<i64>, DataError> {
        self.id_of("SELECT id FROM kiosks WHERE village_id = ?1 AND name = ?2", params![village_id, name])
    }

    pub fn upsert_kiosk(&self, village_id: i64, name: &str, token_hash: &str) -> Result<Upsert, DataError> {
        if let Some(id) = self.kiosk_id(village_id, name)? {
            // A token from the file does not expire (enrolment and rotation give expiring ones).
            self.tx.execute(
                "UPDATE kiosks SET token_hash = ?2, token_expires_at_ms = NULL, enrolled = 1
                 WHERE id = ?1 AND token_hash <> ?2",
                params![id, token_hash],
            )?;
            return Ok(Upsert::Updated(id));
        }
        self.tx.execute(
            "INSERT INTO kiosks (village_id, name, token_hash) VALUES (?1, ?2, ?3)",
            params![village_id, name, token_hash],
        )?;
        Ok(Upsert::Created(self.tx.last_insert_rowid()))
    }

    /// An imported account's 停用 and forced password change, as the file says. An account
    /// already disabled keeps its time; one newly disabled loses its sessions.
    pub fn set_account_state(
        &self,
        user_id: i64,
        disabled_at_ms: Option<u64>,
        must_change: bool,
    ) -> Result<(), DataError> {
        if self.set_disabled_at("users", user_id, disabled_at_ms)? && disabled_at_ms.is_some() {
            self.tx.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?;
        }
        self.tx.execute("UPDATE users SET must_change_password = ?2 WHERE id = ?1", params![user_id, must_change])?;
        Ok(())
    }

    /// An imported kiosk's 停用, enrolment and token expiry, as the file says (a disabled
    /// kiosk keeps the time it was disabled at). A kiosk not enrolled has no open enrolment
    /// code after an import: the administrator issues a new one.
    pub fn set_kiosk_state(
        &self,
        kiosk_id: i64,
        disabled_at_ms: Option<u64>,
        enrolled: bool,
        token_expires_at_ms: Option<u64>,
    ) -> Result<(), DataError> {
        self.set_disabled_at("kiosks", kiosk_id, disabled_at_ms)?;
        self.tx.execute(
            "UPDATE kiosks SET enrolled = ?2, token_expires_at_ms = ?3 WHERE id = ?1",
            params![kiosk_id, enrolled, token_expires_at_ms.map(sql_ms)],
        )?;
        Ok(())
    }

    /// Disables (`Some(at)`) or enables a row of `table` (`users`, `kiosks`); a row already
    /// in that state keeps its time. True if it changed.
    fn set_disabled_at(&self, table: &'static str, id: i64, at_ms: Option<u64>) -> Result<bool, DataError> {
        let was: Option<i64> =
            self.tx.query_row(&format!("SELECT disabled_at_ms FROM {table} WHERE id = ?1"), [id], |r| r.get(0))?;
        if was.is_some() == at_ms.is_some() {
            return Ok(false);
        }
        self.tx.execute(
            &format!("UPDATE {table} SET disabled_at_ms = ?2 WHERE id = ?1"),
            params![id, at_ms.map(sql_ms)],
        )?;
        Ok(true)
    }
}
