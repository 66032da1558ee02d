//! Sessions and device tokens, for `auth`: lookups by token hash, session rows, expiry.

use rusqlite::{OptionalExtension, params};

use super::{DataError, Db, role_col, row_ms, sql_ms};
use crate::identity::Principal;

/// Joins that keep only users whose town and window (where they have one) are enabled: staff
/// of a disabled town or window cannot log in and their sessions end.
const PLACE_JOIN: &str = "LEFT JOIN towns pt ON pt.id = u.town_id LEFT JOIN windows pw ON pw.id = u.window_id";
const PLACE_ENABLED: &str =
    "(pt.id IS NULL OR pt.disabled_at_ms IS NULL) AND (pw.id IS NULL OR pw.disabled_at_ms IS NULL)";

/// A live session of an account that is not disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub principal: Principal,
    pub expires_at_ms: u64,
    /// The administrator reset the password: only /api/me, /api/logout and /api/password.
    pub must_change_password: bool,
}

impl Db {
    /// For `auth`: the kiosk whose token hashes to `token_hash`, unless it, its village or its
    /// town is disabled or its token expired at `now_ms`.
    pub fn kiosk_by_token_hash(&self, token_hash: &str, now_ms: u64) -> Result<Option<Principal>, DataError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT k.id, k.village_id, v.town_id, k.name FROM kiosks k
                 JOIN villages v ON v.id = k.village_id JOIN towns t ON t.id = v.town_id
                 WHERE k.token_hash = ?1 AND k.disabled_at_ms IS NULL
                   AND v.disabled_at_ms IS NULL AND t.disabled_at_ms IS NULL
                   AND (k.token_expires_at_ms IS NULL OR k.token_expires_at_ms > ?2)",
                params![token_hash, sql_ms(now_ms)],
                |r| {
                    Ok(Principal::Kiosk {
                        kiosk_id: r.get(0)?,
                        village_id: r.get(1)?,
                        town_id: r.get(2)?,
                        name: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// For `auth`: the session with this token hash, its principal and expiry time (none when
    /// the user's town or window is disabled).
    pub fn session_by_token_hash(&self, token_hash: &str) -> Result<Option<(Principal, u64)>, DataError> {
        Ok(self.session_of(token_hash)?.map(|s| (s.principal, s.expires_at_ms)))
    }

    /// For `auth`: the session with this token hash, of an account that is not disabled.
    pub fn session_of(&self, token_hash: &str) -> Result<Option<SessionRow>, DataError> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT u.id, u.role, u.town_id, u.window_id, u.display_name, s.expires_at_ms,
                            u.must_change_password
                     FROM sessions s JOIN users u ON u.id = s.user_id {PLACE_JOIN}
                     WHERE s.token_hash = ?1 AND u.disabled_at_ms IS NULL AND {PLACE_ENABLED}"
                ),
                [token_hash],
                |r| {
                    Ok(SessionRow {
                        principal: Principal::Staff {
                            user_id: r.get(0)?,
                            role: role_col(r.get(1)?)?,
                            town_id: r.get(2)?,
                            window_id: r.get(3)?,
                            name: r.get(4)?,
                        },
                        expires_at_ms: row_ms(r.get(5)?),
                        must_change_password: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    /// For `auth`: id and password hash of a username whose account is not disabled.
    pub fn password_hash_of(&self, username: &str) -> Result<Option<(i64, String)>, DataError> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT u.id, u.password_hash FROM users u {PLACE_JOIN}
                     WHERE u.username = ?1 AND u.disabled_at_ms IS NULL AND {PLACE_ENABLED}"
                ),
                [username],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// For `auth`: stores a new session.
    pub fn insert_session(
        &self,
        token_hash: &str,
        user_id: i64,
        now_ms: u64,
        expires_at_ms: u64,
    ) -> Result<(), DataError> {
        self.conn().execute(
            "INSERT INTO sessions (token_hash, user_id, created_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![token_hash, user_id, sql_ms(now_ms), sql_ms(expires_at_ms)],
        )?;
        Ok(())
    }

    /// For `auth`: a new session in place of an old one (rotation), in one transaction.
    pub fn replace_session(
        &self,
        old_hash: &str,
        new_hash: &str,
        user_id: i64,
        now_ms: u64,
        expires_at_ms: u64,
    ) -> Result<(), DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if tx.execute("DELETE FROM sessions WHERE token_hash = ?1", [old_hash])? == 0 {
            return Err(DataError::Unauthorized);
        }
        tx.execute(
            "INSERT INTO sessions (token_hash, user_id, created_at_ms, expires_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![new_hash, user_id, sql_ms(now_ms), sql_ms(expires_at_ms)],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// For `auth`: removes a session; `true` if there was one.
    pub fn delete_session(&self, token_hash: &str) -> Result<bool, DataError> {
        Ok(self.conn().execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])? > 0)
    }

    /// Removes every session expired at `now_ms`; returns how many. Call now and then.
    pub fn delete_expired_sessions(&self, now_ms: u64) -> Result<usize, DataError> {
        Ok(self.conn().execute("DELETE FROM sessions WHERE expires_at_ms <= ?1", [sql_ms(now_ms)])?)
    }
}
