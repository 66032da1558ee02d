//! The region as stored: county, towns, villages, windows, the matter catalog (with its
//! plain-word search), kiosks, users, and the `Me` of a principal.

use rusqlite::OptionalExtension;

use super::{DataError, Db, bad_text, role_col};
use crate::identity::{Principal, Role};

// Enumerations stored as text.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    Comprehensive,
    CivilAffairs,
    SocialSecurity,
    Custom,
}

impl WindowKind {
    pub const ALL: [WindowKind; 4] =
        [WindowKind::Comprehensive, WindowKind::CivilAffairs, WindowKind::SocialSecurity, WindowKind::Custom];
    /// The three windows every town service centre has.
    pub const STANDARD: [WindowKind; 3] =
        [WindowKind::Comprehensive, WindowKind::CivilAffairs, WindowKind::SocialSecurity];

    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Comprehensive => "comprehensive",
            WindowKind::CivilAffairs => "civil_affairs",
            WindowKind::SocialSecurity => "social_security",
            WindowKind::Custom => "custom",
        }
    }

    pub fn parse(s: &str) -> Option<WindowKind> {
        WindowKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// 综合窗口 / 民政窗口 / 社保窗口; `None` for custom.
    pub fn standard_name(self) -> Option<&'static str> {
        match self {
            WindowKind::Comprehensive => Some("综合窗口"),
            WindowKind::CivilAffairs => Some("民政窗口"),
            WindowKind::SocialSecurity => Some("社保窗口"),
            WindowKind::Custom => None,
        }
    }

    /// The kind whose standard name this is.
    pub fn from_standard_name(name: &str) -> Option<WindowKind> {
        WindowKind::STANDARD.into_iter().find(|k| k.standard_name() == Some(name))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VillageKind {
    /// 村
    #[default]
    Village,
    /// 社区 (urban community)
    Community,
}

impl VillageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VillageKind::Village => "village",
            VillageKind::Community => "community",
        }
    }

    pub fn parse(s: &str) -> Option<VillageKind> {
        match s {
            "village" => Some(VillageKind::Village),
            "community" => Some(VillageKind::Community),
            _ => None,
        }
    }
}

pub(super) fn window_kind_col(s: String) -> rusqlite::Result<WindowKind> {
    WindowKind::parse(&s).ok_or_else(|| bad_text("window kind", &s))
}

fn village_kind_col(s: String) -> rusqlite::Result<VillageKind> {
    VillageKind::parse(&s).ok_or_else(|| bad_text("village kind", &s))
}

// ---------------------------------------------------------------------------------------------
// Rows. They serialize (serde) to the protocol's shapes, plus a few extra fields
// (`code`, `window_kind`, `keywords`, `town_id`, `kind` of a village) that clients may ignore.

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NamedRef {
    pub id: i64,
    pub name: String,
}

/// Who is asking, as `GET /api/me` shows it. Serializes to the protocol's `Me` object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Me {
    /// `kiosk` or `staff`.
    pub kind: &'static str,
    /// Kiosk id or user id.
    pub id: i64,
    /// Kiosk name or the user's display name.
    pub name: String,
    /// `kiosk`, `approver`, `chief`, `dispatcher`, `supervisor`, `admin`.
    pub role: &'static str,
    pub town: Option<NamedRef>,
    pub village: Option<NamedRef>,
    pub window: Option<NamedRef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountyRow {
    pub name: String,
    pub code: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TownRow {
    pub id: i64,
    pub name: String,
    pub any_window: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VillageRow {
    pub id: i64,
    pub town_id: i64,
    pub name: String,
    pub kind: VillageKind,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WindowRow {
    pub id: i64,
    pub town_id: i64,
    pub name: String,
    pub kind: WindowKind,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MatterRow {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub plain_name: String,
    pub department: String,
    /// The kind of window the catalog assigns it to.
    pub window_kind: WindowKind,
    /// The window of the asked town that takes it (see [`Db::matters_for_town`]);
    /// `None` in county-wide lists.
    pub window: Option<NamedRef>,
    pub required_papers: Vec<String>,
    pub needs_signoff: bool,
    pub village_can_finish: bool,
    pub keywords: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KioskRow {
    pub id: i64,
    pub village_id: i64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub town_id: Option<i64>,
    pub window_id: Option<i64>,
}

const MATTER_COLUMNS: &str = "m.id, m.code, m.name, m.plain_name, m.department, m.window_kind, \
     m.required_papers, m.needs_signoff, m.village_can_finish, m.keywords";

fn matter_from_row(r: &rusqlite::Row<'_>, window: Option<NamedRef>) -> rusqlite::Result<(MatterRow, String)> {
    let papers: String = r.get(6)?;
    Ok((
        MatterRow {
            id: r.get(0)?,
            code: r.get(1)?,
            name: r.get(2)?,
            plain_name: r.get(3)?,
            department: r.get(4)?,
            window_kind: window_kind_col(r.get(5)?)?,
            window,
            required_papers: Vec::new(),
            needs_signoff: r.get(7)?,
            village_can_finish: r.get(8)?,
            keywords: r.get(9)?,
        },
        papers,
    ))
}

fn finish_matter((mut m, papers): (MatterRow, String)) -> Result<MatterRow, DataError> {
    m.required_papers = serde_json::from_str(&papers)?;
    Ok(m)
}

/// Search terms of a plain-word query: whitespace-separated, lower-cased, "我要"/"我想" dropped.
pub(super) fn search_terms(query: Option<&str>) -> Vec<String> {
    let Some(q) = query else { return Vec::new() };
    q.split(|c: char| c.is_whitespace() || matches!(c, ',' | '，' | '、' | ';' | '；'))
        .map(|t| {
            let t = t.trim();
            let t = ["我要", "我想"].iter().fold(t, |t, p| match t.strip_prefix(p) {
                Some(rest) if !rest.is_empty() => rest,
                _ => t,
            });
            t.chars().take(50).collect::<String>().to_lowercase()
        })
        .filter(|t| !t.is_empty())
        .take(8)
        .collect()
}

/// How well a matter matches the search terms, best first: for each term, `0` when the name
/// or plain name contains it or it is one of the keywords, `1` when a keyword contains it,
/// `2` when the code or department does, `3` when the term contains one of the keywords
/// (Chinese has no spaces: "修房子" finds the keyword "修房"); the matter ranks by its worst
/// term, `None` when some term matches nothing. No loose character matching: "补卡" does not
/// find 种粮补贴.
fn matter_rank(m: &MatterRow, terms: &[String]) -> Option<u8> {
    let names = format!("{} {}", m.name, m.plain_name).to_lowercase();
    let other = format!("{} {}", m.code, m.department).to_lowercase();
    let keywords: Vec<String> = m.keywords.split_whitespace().map(str::to_lowercase).collect();
    let mut rank = 0;
    for t in terms {
        let r = if names.contains(t.as_str()) || keywords.iter().any(|k| k == t) {
            0
        } else if keywords.iter().any(|k| k.contains(t.as_str())) {
            1
        } else if other.contains(t.as_str()) {
            2
        } else if keywords.iter().any(|k| k.chars().count() >= 2 && t.contains(k.as_str())) {
            3
        } else {
            return None;
        };
        rank = rank.max(r);
    }
    Some(rank)
}

/// Matching matters, best ranked first, each rank in catalog order.
fn search(rows: Vec<(MatterRow, String)>, terms: &[String]) -> Result<Vec<MatterRow>, DataError> {
    let mut ranked = Vec::new();
    for row in rows {
        let m = finish_matter(row)?;
        if let Some(rank) = matter_rank(&m, terms) {
            ranked.push((rank, m));
        }
    }
    ranked.sort_by_key(|(rank, _)| *rank); // stable: keeps catalog order within a rank
    Ok(ranked.into_iter().map(|(_, m)| m).collect())
}

impl Db {
    // --- region ------------------------------------------------------------------------------

    pub fn county(&self) -> Result<Option<CountyRow>, DataError> {
        Ok(self
            .conn()
            .query_row("SELECT name, code FROM county WHERE id = 1", [], |r| {
                Ok(CountyRow { name: r.get(0)?, code: r.get(1)? })
            })
            .optional()?)
    }

    pub fn towns(&self) -> Result<Vec<TownRow>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT id, name, any_window FROM towns ORDER BY id")?;
        let v = st
            .query_map([], |r| Ok(TownRow { id: r.get(0)?, name: r.get(1)?, any_window: r.get(2)? }))?
            .collect::<Result<_, _>>()?;
        Ok(v)
    }

    pub fn town(&self, town_id: i64) -> Result<Option<TownRow>, DataError> {
        Ok(self
            .conn()
            .query_row("SELECT id, name, any_window FROM towns WHERE id = ?1", [town_id], |r| {
                Ok(TownRow { id: r.get(0)?, name: r.get(1)?, any_window: r.get(2)? })
            })
            .optional()?)
    }

    pub fn villages_of_town(&self, town_id: i64) -> Result<Vec<VillageRow>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, town_id, name, kind FROM villages WHERE town_id = ?1 AND disabled_at_ms IS NULL ORDER BY id",
        )?;
        let v = st.query_map([town_id], village_row)?.collect::<Result<_, _>>()?;
        Ok(v)
    }

    pub fn village(&self, village_id: i64) -> Result<Option<VillageRow>, DataError> {
        Ok(self
            .conn()
            .query_row("SELECT id, town_id, name, kind FROM villages WHERE id = ?1", [village_id], village_row)
            .optional()?)
    }

    pub fn windows_of_town(&self, town_id: i64) -> Result<Vec<WindowRow>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, town_id, name, kind FROM windows WHERE town_id = ?1 AND disabled_at_ms IS NULL ORDER BY id",
        )?;
        let v = st.query_map([town_id], window_row)?.collect::<Result<_, _>>()?;
        Ok(v)
    }

    pub fn window(&self, window_id: i64) -> Result<Option<WindowRow>, DataError> {
        Ok(self
            .conn()
            .query_row("SELECT id, town_id, name, kind FROM windows WHERE id = ?1", [window_id], window_row)
            .optional()?)
    }

    pub fn kiosks_of_village(&self, village_id: i64) -> Result<Vec<KioskRow>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT id, village_id, name FROM kiosks WHERE village_id = ?1 ORDER BY id")?;
        let v = st
            .query_map([village_id], |r| Ok(KioskRow { id: r.get(0)?, village_id: r.get(1)?, name: r.get(2)? }))?
            .collect::<Result<_, _>>()?;
        Ok(v)
    }

    pub fn kiosk(&self, kiosk_id: i64) -> Result<Option<KioskRow>, DataError> {
        Ok(self
            .conn()
            .query_row("SELECT id, village_id, name FROM kiosks WHERE id = ?1", [kiosk_id], |r| {
                Ok(KioskRow { id: r.get(0)?, village_id: r.get(1)?, name: r.get(2)? })
            })
            .optional()?)
    }

    pub fn user(&self, user_id: i64) -> Result<Option<UserRow>, DataError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, username, display_name, role, town_id, window_id FROM users WHERE id = ?1",
                [user_id],
                |r| {
                    Ok(UserRow {
                        id: r.get(0)?,
                        username: r.get(1)?,
                        display_name: r.get(2)?,
                        role: role_col(r.get(3)?)?,
                        town_id: r.get(4)?,
                        window_id: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    // --- matters -----------------------------------------------------------------------------

    /// The catalog as a village of `town_id` sees it (`None`: the whole catalog, as county
    /// roles see it, each with `window: None`): the matters some window of the town
    /// takes, in catalog order, each with the window it goes to. The window is, in order of
    /// preference: one that lists the matter (`window_matters`), of the matter's kind, a
    /// comprehensive one, the first; in an `any_window` town every window qualifies.
    ///
    /// `query`: plain words, each of which must occur (substring, case-insensitive) in the
    /// name, plain name, keywords, code or department, or contain one of the keywords.
    /// "我要修房子", "修房子" and "房子" all find 我要修房子. Exact matches come first, then
    /// keyword-contained ones, each in catalog order. The catalog is filtered in memory: it is
    /// hundreds of rows, not millions.
    pub fn matters_for_town(&self, town_id: Option<i64>, query: Option<&str>) -> Result<Vec<MatterRow>, DataError> {
        match town_id {
            Some(t) => self.matters_of_town(t, query),
            None => self.matters_all(query),
        }
    }

    fn matters_of_town(&self, town_id: i64, query: Option<&str>) -> Result<Vec<MatterRow>, DataError> {
        let terms = search_terms(query);
        let sql = format!(
            "SELECT {MATTER_COLUMNS}, w.id, w.name FROM matters m
             JOIN windows w ON w.id = (
                SELECT w2.id FROM windows w2
                WHERE w2.town_id = ?1 AND w2.disabled_at_ms IS NULL AND (
                    EXISTS (SELECT 1 FROM window_matters wm WHERE wm.window_id = w2.id AND wm.matter_id = m.id)
                    OR (SELECT any_window FROM towns t WHERE t.id = ?1) = 1)
                ORDER BY EXISTS (SELECT 1 FROM window_matters wm WHERE wm.window_id = w2.id AND wm.matter_id = m.id) DESC,
                         w2.kind = m.window_kind DESC, w2.kind = 'comprehensive' DESC, w2.id
                LIMIT 1)
             WHERE m.disabled_at_ms IS NULL
               AND (SELECT disabled_at_ms FROM towns t WHERE t.id = ?1) IS NULL
             ORDER BY m.id"
        );
        let conn = self.conn();
        let mut st = conn.prepare_cached(&sql)?;
        let rows = st
            .query_map([town_id], |r| matter_from_row(r, Some(NamedRef { id: r.get(10)?, name: r.get(11)? })))?
            .collect::<Result<Vec<_>, _>>()?;
        search(rows, &terms)
    }

    /// The whole catalog (county roles), `window: None`, same search as `matters_for_town`.
    pub fn matters_all(&self, query: Option<&str>) -> Result<Vec<MatterRow>, DataError> {
        let terms = search_terms(query);
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!("SELECT {MATTER_COLUMNS} FROM matters m ORDER BY m.id"))?;
        let rows = st.query_map([], |r| matter_from_row(r, None))?.collect::<Result<Vec<_>, _>>()?;
        search(rows, &terms)
    }

    /// One matter as `town_id` sees it (`None` if unknown or no window of the town takes it).
    pub fn matter_for_town(&self, town_id: i64, matter_id: i64) -> Result<Option<MatterRow>, DataError> {
        Ok(self.matters_for_town(Some(town_id), None)?.into_iter().find(|m| m.id == matter_id))
    }

    /// One matter of the catalog, `window: None`.
    pub fn matter(&self, matter_id: i64) -> Result<Option<MatterRow>, DataError> {
        let conn = self.conn();
        let row = conn
            .query_row(&format!("SELECT {MATTER_COLUMNS} FROM matters m WHERE m.id = ?1"), [matter_id], |r| {
                matter_from_row(r, None)
            })
            .optional()?;
        row.map(finish_matter).transpose()
    }

    // --- principals --------------------------------------------------------------------------

    /// `Me` of a kiosk: its village and town, no window.
    pub fn me_of_kiosk(&self, kiosk_id: i64) -> Result<Me, DataError> {
        self.conn()
            .query_row(
                "SELECT k.id, k.name, v.id, v.name, t.id, t.name FROM kiosks k
                 JOIN villages v ON v.id = k.village_id JOIN towns t ON t.id = v.town_id WHERE k.id = ?1",
                [kiosk_id],
                |r| {
                    Ok(Me {
                        kind: "kiosk",
                        id: r.get(0)?,
                        name: r.get(1)?,
                        role: "kiosk",
                        village: Some(NamedRef { id: r.get(2)?, name: r.get(3)? }),
                        town: Some(NamedRef { id: r.get(4)?, name: r.get(5)? }),
                        window: None,
                    })
                },
            )
            .optional()?
            .ok_or_else(|| DataError::NotFound(format!("kiosk {kiosk_id}")))
    }

    /// `Me` of a user: town and window where the role has them, no village.
    pub fn me_of_user(&self, user_id: i64) -> Result<Me, DataError> {
        self.conn()
            .query_row(
                "SELECT u.id, u.display_name, u.role, t.id, t.name, w.id, w.name FROM users u
                 LEFT JOIN towns t ON t.id = u.town_id LEFT JOIN windows w ON w.id = u.window_id
                 WHERE u.id = ?1",
                [user_id],
                |r| {
                    let town_id: Option<i64> = r.get(3)?;
                    let window_id: Option<i64> = r.get(5)?;
                    Ok(Me {
                        kind: "staff",
                        id: r.get(0)?,
                        name: r.get(1)?,
                        role: role_col(r.get(2)?)?.as_str(),
                        town: match town_id {
                            Some(id) => Some(NamedRef { id, name: r.get(4)? }),
                            None => None,
                        },
                        village: None,
                        window: match window_id {
                            Some(id) => Some(NamedRef { id, name: r.get(6)? }),
                            None => None,
                        },
                    })
                },
            )
            .optional()?
            .ok_or_else(|| DataError::NotFound(format!("user {user_id}")))
    }

    /// `Me` of a resolved principal.
    pub fn me(&self, principal: &Principal) -> Result<Me, DataError> {
        match principal {
            Principal::Kiosk { kiosk_id, .. } => self.me_of_kiosk(*kiosk_id),
            Principal::Staff { user_id, .. } => self.me_of_user(*user_id),
        }
    }
}

pub(super) fn village_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VillageRow> {
    Ok(VillageRow { id: r.get(0)?, town_id: r.get(1)?, name: r.get(2)?, kind: village_kind_col(r.get(3)?)? })
}

pub(super) fn window_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WindowRow> {
    Ok(WindowRow { id: r.get(0)?, town_id: r.get(1)?, name: r.get(2)?, kind: window_kind_col(r.get(3)?)? })
}
