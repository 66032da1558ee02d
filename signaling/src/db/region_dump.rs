//! The stored region as `cunneng export-region` writes it (`import::export_region`): every
//! town with its villages and windows, the matter catalog, the accounts and the kiosks, by
//! their natural keys (names and codes, never row ids) and with the stored secret hashes only.

use super::{DataError, Db};

/// A window of a town; `matters` only when the window lists them explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowDump {
    pub name: String,
    pub kind: String,
    pub matters: Option<Vec<String>>,
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TownDump {
    pub name: String,
    pub any_window: bool,
    /// (name, kind, disabled).
    pub villages: Vec<(String, String, bool)>,
    pub windows: Vec<WindowDump>,
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatterDump {
    pub code: String,
    pub name: String,
    pub plain_name: String,
    pub department: String,
    pub window_kind: String,
    pub required_papers: Vec<String>,
    pub needs_signoff: bool,
    pub village_can_finish: bool,
    pub keywords: Vec<String>,
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDump {
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub town: Option<String>,
    pub window: Option<String>,
    pub password_hash: String,
    pub disabled: bool,
    /// The next login must choose a new password (after an administrator's reset).
    pub must_change_password: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KioskDump {
    pub town: String,
    pub village: String,
    pub name: String,
    pub token_hash: String,
    pub disabled: bool,
    /// `false`: created or revoked by the administrator and not enrolled since (its hash is of
    /// a secret nobody was given).
    pub enrolled: bool,
    pub token_expires_at_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionDump {
    /// (name, code), if a county was ever imported.
    pub county: Option<(String, String)>,
    pub towns: Vec<TownDump>,
    pub matters: Vec<MatterDump>,
    pub accounts: Vec<AccountDump>,
    pub kiosks: Vec<KioskDump>,
}

impl Db {
    /// The whole region, in a stable order (by row id: the order it was imported in), read in
    /// one transaction so that it is consistent.
    pub fn region_dump(&self) -> Result<RegionDump, DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let county = {
            let mut st = tx.prepare("SELECT name, code FROM county WHERE id = 1")?;
            let mut rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.next().transpose()?
        };
        let mut towns = Vec::new();
        {
            let mut st =
                tx.prepare("SELECT id, name, any_window, disabled_at_ms IS NOT NULL FROM towns ORDER BY id")?;
            let rows: Vec<(i64, String, bool, bool)> =
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<Result<_, _>>()?;
            let mut villages = tx.prepare(
                "SELECT name, kind, disabled_at_ms IS NOT NULL FROM villages WHERE town_id = ?1 ORDER BY id",
            )?;
            let mut windows = tx.prepare(
                "SELECT id, name, kind, derive_matters, disabled_at_ms IS NOT NULL FROM windows
                 WHERE town_id = ?1 ORDER BY id",
            )?;
            let mut listed = tx.prepare(
                "SELECT m.code FROM window_matters wm JOIN matters m ON m.id = wm.matter_id
                 WHERE wm.window_id = ?1 ORDER BY m.id",
            )?;
            for (id, name, any_window, disabled) in rows {
                let villages: Vec<(String, String, bool)> =
                    villages.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
                let ws: Vec<(i64, String, String, bool, bool)> = windows
                    .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                    .collect::<Result<_, _>>()?;
                let mut out = Vec::new();
                for (wid, name, kind, derived, w_disabled) in ws {
                    let matters = if derived {
                        None
                    } else {
                        Some(listed.query_map([wid], |r| r.get(0))?.collect::<Result<Vec<String>, _>>()?)
                    };
                    out.push(WindowDump { name, kind, matters, disabled: w_disabled });
                }
                towns.push(TownDump { name, any_window, villages, windows: out, disabled });
            }
        }
        let matters = {
            let mut st = tx.prepare(
                "SELECT code, name, plain_name, department, window_kind, required_papers, needs_signoff,
                        village_can_finish, keywords, disabled_at_ms IS NOT NULL FROM matters ORDER BY id",
            )?;
            st.query_map([], |r| {
                let papers: String = r.get(5)?;
                let keywords: String = r.get(8)?;
                Ok(MatterDump {
                    code: r.get(0)?,
                    name: r.get(1)?,
                    plain_name: r.get(2)?,
                    department: r.get(3)?,
                    window_kind: r.get(4)?,
                    required_papers: serde_json::from_str(&papers).unwrap_or_default(),
                    needs_signoff: r.get(6)?,
                    village_can_finish: r.get(7)?,
                    keywords: keywords.split_whitespace().map(str::to_string).collect(),
                    disabled: r.get(9)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?
        };
        let accounts = {
            let mut st = tx.prepare(
                "SELECT u.username, u.display_name, u.role, t.name, w.name, u.password_hash,
                        u.disabled_at_ms IS NOT NULL, u.must_change_password FROM users u
                 LEFT JOIN towns t ON t.id = u.town_id LEFT JOIN windows w ON w.id = u.window_id ORDER BY u.id",
            )?;
            st.query_map([], |r| {
                Ok(AccountDump {
                    username: r.get(0)?,
                    display_name: r.get(1)?,
                    role: r.get(2)?,
                    town: r.get(3)?,
                    window: r.get(4)?,
                    password_hash: r.get(5)?,
                    disabled: r.get(6)?,
                    must_change_password: r.get(7)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?
        };
        let kiosks = {
            let mut st = tx.prepare(
                "SELECT t.name, v.name, k.name, k.token_hash, k.disabled_at_ms IS NOT NULL, k.enrolled,
                        k.token_expires_at_ms FROM kiosks k
                 JOIN villages v ON v.id = k.village_id JOIN towns t ON t.id = v.town_id ORDER BY k.id",
            )?;
            st.query_map([], |r| {
                Ok(KioskDump {
                    town: r.get(0)?,
                    village: r.get(1)?,
                    name: r.get(2)?,
                    token_hash: r.get(3)?,
                    disabled: r.get(4)?,
                    enrolled: r.get(5)?,
                    token_expires_at_ms: r.get::<_, Option<i64>>(6)?.map(super::row_ms),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?
        };
        drop(tx);
        Ok(RegionDump { county, towns, matters, accounts, kiosks })
    }
}
