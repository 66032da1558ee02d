//! All persistent data: one SQLite database behind [`Db`]. Nothing else in the crate runs SQL,
//! so that a PostgreSQL implementation can replace this module.
//!
//! # Blocking
//! Every method is synchronous: it takes a mutex around the one connection and runs SQL.
//! Reads and single-row writes take well under a millisecond on county-sized data, but they can
//! wait on the mutex or on the disk; from async code call them inside
//! `tokio::task::spawn_blocking` (a [`Db`] is a cheap clone: `Arc` inside). `auth::login` and
//! `import::import_str` hash passwords (tens of milliseconds each) and must always go through
//! `spawn_blocking`.
//!
//! # Rows
//! Queries return plain structs (`*Row`, [`Me`], [`Topology`]); the wire and queue layers map
//! them to their own types. Times are Unix milliseconds.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::auth::Principal;

/// The one error type of `db`, `import` and `auth`.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Unknown or expired token, bad username or password. Never says which.
    #[error("unauthorized")]
    Unauthorized,
    /// A referenced row does not exist (`what` names it, e.g. "matter 12").
    #[error("not found: {0}")]
    NotFound(String),
    /// The request is valid but clashes with stored data.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Bad input (import file, parameter); the message names the item.
    #[error("{0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("cannot create {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DataError {
    /// True for [`DataError::Unauthorized`] (HTTP 401 / WS close 4401).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, DataError::Unauthorized)
    }

    /// True for [`DataError::NotFound`] (HTTP 404 / WS `not_found`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, DataError::NotFound(_))
    }
}

/// Embedded migrations, applied in order; a version is never edited once released.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (2, "cases", include_str!("migrations/0002_cases.sql")),
    (3, "recordings", include_str!("migrations/0003_recordings.sql")),
];

// Cases in full: villager, decisions, timeline, papers, ratings, inbox, bookings.
mod cases;
mod recordings;
pub use cases::*;
pub use recordings::{CatalogRow, LegalHold, RecordingRow};

// ---------------------------------------------------------------------------------------------
// Enumerations stored as text.

/// Staff role. (A kiosk is not a user; its role string on the wire is `kiosk`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Town window approver (wire/demo-link role name `window` for the page, `approver` in `Me`).
    Approver,
    /// Window chief: second sign-off.
    Chief,
    /// Town dispatcher: group calls into villages.
    Dispatcher,
    /// County-wide supervisor.
    Supervisor,
    /// County-wide administrator.
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Approver, Role::Chief, Role::Dispatcher, Role::Supervisor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Approver => "approver",
            Role::Chief => "chief",
            Role::Dispatcher => "dispatcher",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Supervisor and admin act county-wide and have no town.
    pub fn is_county_wide(self) -> bool {
        matches!(self, Role::Supervisor | Role::Admin)
    }
}

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

fn bad_text(column: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("bad {column} value {value:?}").into(),
    )
}

fn role_col(s: String) -> rusqlite::Result<Role> {
    Role::parse(&s).ok_or_else(|| bad_text("role", &s))
}
fn window_kind_col(s: String) -> rusqlite::Result<WindowKind> {
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRow {
    pub id: i64,
    pub case_no: String,
    pub matter_id: i64,
    pub village_id: i64,
    pub kiosk_id: Option<i64>,
    pub status: String,
    pub created_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    pub id: i64,
    pub case_id: i64,
    pub window_id: i64,
    pub kiosk_id: i64,
    pub staff_id: Option<i64>,
    pub transferred_from_id: Option<i64>,
    pub requested_at_ms: u64,
    pub answered_at_ms: Option<u64>,
    pub ended_at_ms: Option<u64>,
    pub end_reason: Option<String>,
}

/// Row counts, for tests and the import summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub towns: usize,
    pub villages: usize,
    pub windows: usize,
    pub matters: usize,
    pub window_matters: usize,
    pub kiosks: usize,
    pub users: usize,
}

/// Everything the queue/router needs at start, as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    pub towns: Vec<TopoTown>,
    pub villages: Vec<VillageRow>,
    pub windows: Vec<TopoWindow>,
    pub matters: Vec<TopoMatter>,
    pub kiosks: Vec<TopoKiosk>,
    pub approvers: Vec<TopoStaff>,
    pub chiefs: Vec<TopoStaff>,
    pub dispatchers: Vec<TopoStaff>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopoTown {
    pub id: i64,
    pub name: String,
    /// 无差别综合受理: every window of the town takes every matter, whatever `accepts` says.
    pub any_window: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopoWindow {
    pub id: i64,
    pub town_id: i64,
    pub name: String,
    pub kind: WindowKind,
    /// Matter ids listed for this window (sorted). See `TopoTown::any_window`.
    pub accepts: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopoMatter {
    pub id: i64,
    pub name: String,
    pub plain_name: String,
    pub window_kind: WindowKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopoKiosk {
    pub id: i64,
    pub village_id: i64,
    pub town_id: i64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopoStaff {
    pub user_id: i64,
    pub town_id: i64,
    /// Always set for approvers; optional for chiefs; `None` for dispatchers.
    pub window_id: Option<i64>,
    pub name: String,
}

// ---------------------------------------------------------------------------------------------
// The handle.

/// The database handle: `Clone + Send + Sync`, see the module doc on blocking.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
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
fn search_terms(query: Option<&str>) -> Vec<String> {
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

/// How well a matter matches the search terms: `Some(0)` when every term occurs in the name,
/// plain name, keywords, code or department; `Some(1)` when, in addition, some term only
/// contains one of the keywords (Chinese has no spaces: "修房子" finds the keyword "修房");
/// `None` otherwise.
fn matter_rank(m: &MatterRow, terms: &[String]) -> Option<u8> {
    let hay = format!("{} {} {} {} {}", m.name, m.plain_name, m.keywords, m.code, m.department).to_lowercase();
    let keywords: Vec<String> =
        m.keywords.split_whitespace().filter(|k| k.chars().count() >= 2).map(str::to_lowercase).collect();
    let mut rank = 0;
    for t in terms {
        if hay.contains(t.as_str()) {
            continue;
        }
        if keywords.iter().any(|k| t.contains(k.as_str())) {
            rank = 1;
            continue;
        }
        return None;
    }
    Some(rank)
}

/// Matching matters, exact matches first, each group in catalog order.
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
    /// Opens (creating if needed) the database file and applies pending migrations.
    /// WAL journal, foreign keys on, 5 s busy timeout. The parent directory is created.
    pub fn open(path: &Path) -> Result<Db, DataError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| DataError::Io { path: dir.to_owned(), source })?;
        }
        let conn = Connection::open(path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "sqlite journal mode is not WAL");
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        Db::setup(conn)
    }

    /// A private in-memory database (tests, dry runs).
    pub fn open_in_memory() -> Result<Db, DataError> {
        Db::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<Db, DataError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")?;
        migrate(&mut conn)?;
        Ok(Db { conn: Arc::new(Mutex::new(conn)) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half-done transaction (rusqlite rolls back
        // on drop), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in one IMMEDIATE transaction: committed if `f` returns `Ok`, rolled back
    /// otherwise. Used by `import` for its writes.
    pub fn write<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, DataError>) -> Result<T, DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&Tx { tx: &tx })?;
        tx.commit()?;
        Ok(out)
    }

    /// Applied migration versions, ascending.
    pub fn schema_versions(&self) -> Result<Vec<i64>, DataError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT version FROM schema_migrations ORDER BY version")?;
        let v = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(v)
    }

    pub fn counts(&self) -> Result<Counts, DataError> {
        let conn = self.conn();
        let n = |table: &str| -> Result<usize, DataError> {
            let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
            Ok(n as usize)
        };
        Ok(Counts {
            towns: n("towns")?,
            villages: n("villages")?,
            windows: n("windows")?,
            matters: n("matters")?,
            window_matters: n("window_matters")?,
            kiosks: n("kiosks")?,
            users: n("users")?,
        })
    }

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
        let mut st = conn.prepare("SELECT id, town_id, name, kind FROM villages WHERE town_id = ?1 ORDER BY id")?;
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
        let mut st = conn.prepare("SELECT id, town_id, name, kind FROM windows WHERE town_id = ?1 ORDER BY id")?;
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
                WHERE w2.town_id = ?1 AND (
                    EXISTS (SELECT 1 FROM window_matters wm WHERE wm.window_id = w2.id AND wm.matter_id = m.id)
                    OR (SELECT any_window FROM towns t WHERE t.id = ?1) = 1)
                ORDER BY EXISTS (SELECT 1 FROM window_matters wm WHERE wm.window_id = w2.id AND wm.matter_id = m.id) DESC,
                         w2.kind = m.window_kind DESC, w2.kind = 'comprehensive' DESC, w2.id
                LIMIT 1)
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

    /// For `auth`: the kiosk whose token hashes to `token_hash`.
    pub fn kiosk_by_token_hash(&self, token_hash: &str) -> Result<Option<Principal>, DataError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT k.id, k.village_id, v.town_id, k.name FROM kiosks k
                 JOIN villages v ON v.id = k.village_id WHERE k.token_hash = ?1",
                [token_hash],
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

    /// For `auth`: the session with this token hash, its principal and expiry time.
    pub fn session_by_token_hash(&self, token_hash: &str) -> Result<Option<(Principal, u64)>, DataError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT u.id, u.role, u.town_id, u.window_id, u.display_name, s.expires_at_ms
                 FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1",
                [token_hash],
                |r| {
                    Ok((
                        Principal::Staff {
                            user_id: r.get(0)?,
                            role: role_col(r.get(1)?)?,
                            town_id: r.get(2)?,
                            window_id: r.get(3)?,
                            name: r.get(4)?,
                        },
                        row_ms(r.get(5)?),
                    ))
                },
            )
            .optional()?)
    }

    /// For `auth`: id and password hash of a username.
    pub fn password_hash_of(&self, username: &str) -> Result<Option<(i64, String)>, DataError> {
        Ok(self
            .conn()
            .query_row("SELECT id, password_hash FROM users WHERE username = ?1", [username], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
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

    /// For `auth`: removes a session; `true` if there was one.
    pub fn delete_session(&self, token_hash: &str) -> Result<bool, DataError> {
        Ok(self.conn().execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])? > 0)
    }

    /// Removes every session expired at `now_ms`; returns how many. Call now and then.
    pub fn delete_expired_sessions(&self, now_ms: u64) -> Result<usize, DataError> {
        Ok(self.conn().execute("DELETE FROM sessions WHERE expires_at_ms <= ?1", [sql_ms(now_ms)])?)
    }

    // --- topology ----------------------------------------------------------------------------

    pub fn topology(&self) -> Result<Topology, DataError> {
        let conn = self.conn();
        let mut t = Topology::default();
        {
            let mut st = conn.prepare("SELECT id, name, any_window FROM towns ORDER BY id")?;
            t.towns = st
                .query_map([], |r| Ok(TopoTown { id: r.get(0)?, name: r.get(1)?, any_window: r.get(2)? }))?
                .collect::<Result<_, _>>()?;
        }
        {
            let mut st = conn.prepare("SELECT id, town_id, name, kind FROM villages ORDER BY id")?;
            t.villages = st.query_map([], village_row)?.collect::<Result<_, _>>()?;
        }
        {
            let mut st = conn.prepare("SELECT id, town_id, name, kind FROM windows ORDER BY id")?;
            t.windows = st
                .query_map([], |r| {
                    let w = window_row(r)?;
                    Ok(TopoWindow { id: w.id, town_id: w.town_id, name: w.name, kind: w.kind, accepts: Vec::new() })
                })?
                .collect::<Result<_, _>>()?;
            let mut st =
                conn.prepare("SELECT window_id, matter_id FROM window_matters ORDER BY window_id, matter_id")?;
            let pairs = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
            let index: std::collections::HashMap<i64, usize> =
                t.windows.iter().enumerate().map(|(i, w)| (w.id, i)).collect();
            for p in pairs {
                let (w, m) = p?;
                if let Some(&i) = index.get(&w) {
                    t.windows[i].accepts.push(m);
                }
            }
        }
        {
            let mut st = conn.prepare("SELECT id, name, plain_name, window_kind FROM matters ORDER BY id")?;
            t.matters = st
                .query_map([], |r| {
                    Ok(TopoMatter {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        plain_name: r.get(2)?,
                        window_kind: window_kind_col(r.get(3)?)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
        }
        {
            let mut st = conn.prepare(
                "SELECT k.id, k.village_id, v.town_id, k.name FROM kiosks k
                 JOIN villages v ON v.id = k.village_id ORDER BY k.id",
            )?;
            t.kiosks = st
                .query_map([], |r| {
                    Ok(TopoKiosk { id: r.get(0)?, village_id: r.get(1)?, town_id: r.get(2)?, name: r.get(3)? })
                })?
                .collect::<Result<_, _>>()?;
        }
        {
            let mut st = conn.prepare(
                "SELECT id, role, town_id, window_id, display_name FROM users
                 WHERE role IN ('approver', 'chief', 'dispatcher') ORDER BY id",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    role_col(r.get(1)?)?,
                    TopoStaff { user_id: r.get(0)?, town_id: r.get(2)?, window_id: r.get(3)?, name: r.get(4)? },
                ))
            })?;
            for row in rows {
                let (role, s) = row?;
                match role {
                    Role::Approver => t.approvers.push(s),
                    Role::Chief => t.chiefs.push(s),
                    _ => t.dispatchers.push(TopoStaff { window_id: None, ..s }),
                }
            }
        }
        Ok(t)
    }

    // --- cases and calls ---------------------------------------------------------------------

    /// Opens a case with the next number of the day (China time): `{county code}-YYYYMMDD-NNNN`.
    pub fn create_case(
        &self,
        matter_id: i64,
        village_id: i64,
        kiosk_id: Option<i64>,
        now_ms: u64,
    ) -> Result<CaseRow, DataError> {
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
        let prefix = format!("{code}-{}-", china_date(now_ms));
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
        tx.execute(
            "INSERT INTO cases (case_no, matter_id, village_id, kiosk_id, status, created_at_ms)
             VALUES (?1, ?2, ?3, ?4, 'open', ?5)",
            params![case_no, matter_id, village_id, kiosk_id, sql_ms(now_ms)],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(CaseRow { id, case_no, matter_id, village_id, kiosk_id, status: "open".into(), created_at_ms: now_ms })
    }

    pub fn case(&self, case_id: i64) -> Result<Option<CaseRow>, DataError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, case_no, matter_id, village_id, kiosk_id, status, created_at_ms FROM cases WHERE id = ?1",
                [case_id],
                |r| {
                    Ok(CaseRow {
                        id: r.get(0)?,
                        case_no: r.get(1)?,
                        matter_id: r.get(2)?,
                        village_id: r.get(3)?,
                        kiosk_id: r.get(4)?,
                        status: r.get(5)?,
                        created_at_ms: row_ms(r.get(6)?),
                    })
                },
            )
            .optional()?)
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

    /// The call record of `case_id` that has not ended yet (its current leg), if any.
    pub fn open_call_of_case(&self, case_id: i64) -> Result<Option<i64>, DataError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id FROM calls WHERE case_id = ?1 AND ended_at_ms IS NULL ORDER BY id DESC LIMIT 1",
                [case_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// A kiosk asked for a call on `case_id` at `window_id`; returns the call record id.
    pub fn record_call_requested(
        &self,
        case_id: i64,
        window_id: i64,
        kiosk_id: i64,
        now_ms: u64,
    ) -> Result<i64, DataError> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO calls (case_id, window_id, kiosk_id, requested_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![case_id, window_id, kiosk_id, sql_ms(now_ms)],
        )
        .map_err(|e| fk_not_found(e, "case, window or kiosk"))?;
        Ok(conn.last_insert_rowid())
    }

    /// An approver took the call.
    pub fn record_call_answered(&self, call_id: i64, staff_id: i64, now_ms: u64) -> Result<(), DataError> {
        let n = self
            .conn()
            .execute(
                "UPDATE calls SET staff_id = ?2, answered_at_ms = ?3
                 WHERE id = ?1 AND answered_at_ms IS NULL AND ended_at_ms IS NULL",
                params![call_id, staff_id, sql_ms(now_ms)],
            )
            .map_err(|e| fk_not_found(e, "staff user"))?;
        if n == 0 {
            return Err(self.call_missing_or_conflict(call_id, "already answered or ended"));
        }
        Ok(())
    }

    /// The call ended (`reason`: the protocol's end reason). A second end is a no-op.
    pub fn record_call_ended(&self, call_id: i64, reason: &str, now_ms: u64) -> Result<(), DataError> {
        let n = self.conn().execute(
            "UPDATE calls SET ended_at_ms = ?2, end_reason = ?3 WHERE id = ?1 AND ended_at_ms IS NULL",
            params![call_id, sql_ms(now_ms), reason],
        )?;
        if n == 0 && self.call(call_id)?.is_none() {
            return Err(DataError::NotFound(format!("call {call_id}")));
        }
        Ok(())
    }

    /// The call went to another window: ends this leg (`transferred`) and opens a new leg on
    /// `to_window_id` with the same case and kiosk; returns the new leg's id.
    pub fn record_call_transferred(&self, call_id: i64, to_window_id: i64, now_ms: u64) -> Result<i64, DataError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE calls SET ended_at_ms = ?2, end_reason = 'transferred' WHERE id = ?1 AND ended_at_ms IS NULL",
            params![call_id, sql_ms(now_ms)],
        )?;
        if n == 0 {
            drop(tx);
            drop(conn);
            return Err(self.call_missing_or_conflict(call_id, "already ended"));
        }
        tx.execute(
            "INSERT INTO calls (case_id, window_id, kiosk_id, transferred_from_id, requested_at_ms)
             SELECT case_id, ?2, kiosk_id, id, ?3 FROM calls WHERE id = ?1",
            params![call_id, to_window_id, sql_ms(now_ms)],
        )
        .map_err(|e| fk_not_found(e, "window"))?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(id)
    }

    pub fn call(&self, call_id: i64) -> Result<Option<CallRow>, DataError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT id, case_id, window_id, kiosk_id, staff_id, transferred_from_id, requested_at_ms,
                        answered_at_ms, ended_at_ms, end_reason FROM calls WHERE id = ?1",
                [call_id],
                |r| {
                    Ok(CallRow {
                        id: r.get(0)?,
                        case_id: r.get(1)?,
                        window_id: r.get(2)?,
                        kiosk_id: r.get(3)?,
                        staff_id: r.get(4)?,
                        transferred_from_id: r.get(5)?,
                        requested_at_ms: row_ms(r.get(6)?),
                        answered_at_ms: r.get::<_, Option<i64>>(7)?.map(row_ms),
                        ended_at_ms: r.get::<_, Option<i64>>(8)?.map(row_ms),
                        end_reason: r.get(9)?,
                    })
                },
            )
            .optional()?)
    }

    fn call_missing_or_conflict(&self, call_id: i64, what: &str) -> DataError {
        match self.call(call_id) {
            Ok(Some(_)) => DataError::Conflict(format!("call {call_id} {what}")),
            Ok(None) => DataError::NotFound(format!("call {call_id}")),
            Err(e) => e,
        }
    }

    // --- queue snapshot ----------------------------------------------------------------------

    /// Replaces the stored queue snapshot (any JSON text the queue module chooses).
    pub fn save_queue_state(&self, json: &str, now_ms: u64) -> Result<(), DataError> {
        self.conn().execute(
            "INSERT INTO queue_state (id, json, updated_at_ms) VALUES (1, ?1, ?2)
             ON CONFLICT (id) DO UPDATE SET json = excluded.json, updated_at_ms = excluded.updated_at_ms",
            params![json, sql_ms(now_ms)],
        )?;
        Ok(())
    }

    /// The stored queue snapshot and when it was saved, if any.
    pub fn load_queue_state(&self) -> Result<Option<(String, u64)>, DataError> {
        Ok(self
            .conn()
            .query_row("SELECT json, updated_at_ms FROM queue_state WHERE id = 1", [], |r| {
                Ok((r.get(0)?, row_ms(r.get(1)?)))
            })
            .optional()?)
    }
}

fn village_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<VillageRow> {
    Ok(VillageRow { id: r.get(0)?, town_id: r.get(1)?, name: r.get(2)?, kind: village_kind_col(r.get(3)?)? })
}

fn window_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WindowRow> {
    Ok(WindowRow { id: r.get(0)?, town_id: r.get(1)?, name: r.get(2)?, kind: window_kind_col(r.get(3)?)? })
}

/// A foreign-key failure becomes `NotFound(what)`; anything else stays a database error.
fn fk_not_found(e: rusqlite::Error, what: &str) -> DataError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
            DataError::NotFound(what.to_owned())
        }
        _ => DataError::Sqlite(e),
    }
}

fn migrate(conn: &mut Connection) -> Result<(), DataError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)",
    )?;
    for &(version, name, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let done: bool = tx
            .query_row("SELECT 1 FROM schema_migrations WHERE version = ?1", [version], |_| Ok(()))
            .optional()?
            .is_some();
        if !done {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at_ms) VALUES (?1, ?2, ?3)",
                params![version, name, wall_ms()],
            )?;
            tracing::info!(version, name, "applied database migration");
        }
        tx.commit()?;
    }
    let newest: Option<i64> = conn.query_row("SELECT max(version) FROM schema_migrations", [], |r| r.get(0))?;
    let known = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
    if newest.unwrap_or(0) > known {
        return Err(DataError::Invalid(format!(
            "the database has schema version {} but this program knows only up to {known}: use a newer program",
            newest.unwrap_or(0)
        )));
    }
    Ok(())
}

/// Wall-clock Unix milliseconds (migration records only: the API takes `now` as input).
fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Unix milliseconds as SQLite stores them.
fn sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

/// Stored milliseconds back (a negative value cannot be written by this module; read as 0).
fn row_ms(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0)
}

/// `YYYYMMDD` of a Unix-ms instant in China Standard Time (UTC+8, no DST).
pub fn china_date(ms: u64) -> String {
    let d = china_day(ms);
    format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
}

/// The calendar day of an instant in China time (UTC+8, no daylight saving).
pub fn china_day(ms: u64) -> time::Date {
    let utc = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    utc.to_offset(time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC)).date()
}

// ---------------------------------------------------------------------------------------------
// Writes for import, inside `Db::write`.

/// A write transaction (see [`Db::write`]). Lookups by natural key and upserts.
pub struct Tx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
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
            self.tx.execute("UPDATE kiosks SET token_hash = ?2 WHERE id = ?1", params![id, token_hash])?;
            return Ok(Upsert::Updated(id));
        }
        self.tx.execute(
            "INSERT INTO kiosks (village_id, name, token_hash) VALUES (?1, ?2, ?3)",
            params![village_id, name, token_hash],
        )?;
        Ok(Upsert::Created(self.tx.last_insert_rowid()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small region written straight through `Tx` (import has its own tests).
    fn region() -> (Db, Ids) {
        let db = Db::open_in_memory().unwrap();
        let ids = db
            .write(|tx| {
                tx.set_county("测试区", "CS")?;
                let t1 = tx.upsert_town("甲镇", false)?.id();
                let t2 = tx.upsert_town("乙镇", true)?.id();
                let v1 = tx.upsert_village(t1, "一村", VillageKind::Village)?.id();
                let v2 = tx.upsert_village(t1, "二社区", VillageKind::Community)?.id();
                let v3 = tx.upsert_village(t2, "三村", VillageKind::Village)?.id();
                let w_zh = tx.upsert_window(t1, "综合窗口", WindowKind::Comprehensive, false)?.id();
                let w_mz = tx.upsert_window(t1, "民政窗口", WindowKind::CivilAffairs, false)?.id();
                let w2 = tx.upsert_window(t2, "综合窗口", WindowKind::Comprehensive, false)?.id();
                let papers = vec!["身份证".to_string(), "户口本".to_string()];
                let m = |code, name, plain, kind, kw| MatterFields {
                    code,
                    name,
                    plain_name: plain,
                    department: "区民政局",
                    window_kind: kind,
                    required_papers: &papers,
                    needs_signoff: false,
                    village_can_finish: false,
                    keywords: kw,
                };
                let m_old = tx
                    .upsert_matter(&m("MZ-1", "老年人优待证办理", "老年优待证", WindowKind::CivilAffairs, "老人 优待"))?
                    .id();
                let m_house = tx
                    .upsert_matter(&m(
                        "ZJ-1",
                        "农村建房审批",
                        "我要修房子",
                        WindowKind::Comprehensive,
                        "建房 宅基地 House",
                    ))?
                    .id();
                let m_orphan = tx
                    .upsert_matter(&m("SB-1", "社保卡补换", "社保卡补办", WindowKind::SocialSecurity, "社保卡"))?
                    .id();
                tx.set_window_matters(w_zh, &[m_house])?;
                tx.set_window_matters(w_mz, &[m_old])?;
                let k1 = tx.upsert_kiosk(v1, "一村便民服务室", "aa")?.id();
                let k3 = tx.upsert_kiosk(v3, "三村便民服务室", "bb")?.id();
                let hash = "x";
                let user = |username, role, town_id, window_id| UserFields {
                    username,
                    display_name: "某人",
                    role,
                    town_id,
                    window_id,
                    password_hash: hash,
                };
                let a1 = tx.upsert_user(&user("a1", Role::Approver, Some(t1), Some(w_mz)))?.id();
                let d1 = tx.upsert_user(&user("d1", Role::Dispatcher, Some(t1), None))?.id();
                let c1 = tx.upsert_user(&user("c1", Role::Chief, Some(t1), Some(w_zh)))?.id();
                let s = tx.upsert_user(&user("s", Role::Supervisor, None, None))?.id();
                Ok(Ids { t1, t2, v1, v2, v3, w_zh, w_mz, w2, m_old, m_house, m_orphan, k1, k3, a1, d1, c1, s })
            })
            .unwrap();
        (db, ids)
    }

    #[allow(dead_code)]
    struct Ids {
        t1: i64,
        t2: i64,
        v1: i64,
        v2: i64,
        v3: i64,
        w_zh: i64,
        w_mz: i64,
        w2: i64,
        m_old: i64,
        m_house: i64,
        m_orphan: i64,
        k1: i64,
        k3: i64,
        a1: i64,
        d1: i64,
        c1: i64,
        s: i64,
    }

    #[test]
    fn migrations_are_idempotent_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/cunneng.db");
        {
            let db = Db::open(&path).unwrap();
            let all: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
            assert_eq!(db.schema_versions().unwrap(), all);
            db.write(|tx| tx.upsert_town("甲镇", false)).unwrap();
        }
        let db = Db::open(&path).unwrap();
        assert_eq!(db.schema_versions().unwrap(), MIGRATIONS.iter().map(|m| m.0).collect::<Vec<_>>());
        assert_eq!(db.counts().unwrap().towns, 1);
        let mode: String = db.conn().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = db.conn().query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(fk, 1);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        drop(Db::open(&path).unwrap());
        {
            let c = Connection::open(&path).unwrap();
            c.execute("INSERT INTO schema_migrations VALUES (99, 'future', 0)", []).unwrap();
        }
        let e = Db::open(&path).unwrap_err();
        assert!(e.to_string().contains("schema version 99"), "{e}");
    }

    #[test]
    fn db_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Db>();
    }

    #[test]
    fn region_queries() {
        let (db, ids) = region();
        let v = db.villages_of_town(ids.t1).unwrap();
        assert_eq!(v.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["一村", "二社区"]);
        assert_eq!(v[1].kind, VillageKind::Community);
        let w = db.windows_of_town(ids.t1).unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w[1].kind, WindowKind::CivilAffairs);
        assert_eq!(db.kiosks_of_village(ids.v1).unwrap()[0].name, "一村便民服务室");
        assert!(db.kiosks_of_village(ids.v2).unwrap().is_empty());
        assert_eq!(db.county().unwrap().unwrap().code, "CS");
        assert!(db.town(ids.t2).unwrap().unwrap().any_window);
        assert_eq!(db.window(ids.w2).unwrap().unwrap().town_id, ids.t2);
        assert_eq!(db.village(ids.v3).unwrap().unwrap().town_id, ids.t2);
        assert_eq!(db.user(ids.a1).unwrap().unwrap().role, Role::Approver);
    }

    #[test]
    fn matters_for_town_picks_windows_and_searches() {
        let (db, ids) = region();
        let all = db.matters_for_town(Some(ids.t1), None).unwrap();
        // The social-security matter has no window in 甲镇.
        assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), [ids.m_old, ids.m_house]);
        assert_eq!(all[0].window.as_ref().unwrap().id, ids.w_mz);
        assert_eq!(all[1].window.as_ref().unwrap().id, ids.w_zh);
        assert_eq!(all[0].required_papers, ["身份证", "户口本"]);

        // 乙镇 takes anything at any window: all three, at its one window.
        let any = db.matters_for_town(Some(ids.t2), None).unwrap();
        assert_eq!(any.len(), 3);
        assert!(any.iter().all(|m| m.window.as_ref().unwrap().id == ids.w2));

        let q =
            |q: &str| db.matters_for_town(Some(ids.t1), Some(q)).unwrap().into_iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(q("修房子"), [ids.m_house]);
        assert_eq!(q("我要修房子"), [ids.m_house]);
        assert_eq!(q("宅基地"), [ids.m_house]); // keyword
        assert_eq!(q("house"), [ids.m_house]); // ASCII case-insensitive
        assert_eq!(q("优待"), [ids.m_old]);
        assert_eq!(q("民政"), [ids.m_old, ids.m_house]); // department
        assert_eq!(q("老年 优待证"), [ids.m_old]);
        assert!(q("老年 房子").is_empty()); // all words must match
        assert!(q("社保卡").is_empty()); // not served in this town
        assert_eq!(q("  "), [ids.m_old, ids.m_house]);
        assert_eq!(q("100%_'\""), Vec::<i64>::new()); // no injection, no wildcard

        let county = db.matters_all(Some("社保卡")).unwrap();
        assert_eq!(county.len(), 1);
        assert!(county[0].window.is_none());
        assert_eq!(db.matters_all(None).unwrap().len(), 3);
        assert_eq!(db.matter(ids.m_orphan).unwrap().unwrap().code, "SB-1");
        assert!(db.matter_for_town(ids.t1, ids.m_orphan).unwrap().is_none());
        assert_eq!(db.matter_for_town(ids.t2, ids.m_orphan).unwrap().unwrap().window.unwrap().id, ids.w2);
    }

    #[test]
    fn me_of_kiosk_and_staff() {
        let (db, ids) = region();
        let me = db.me_of_kiosk(ids.k1).unwrap();
        assert_eq!(me.kind, "kiosk");
        assert_eq!(me.role, "kiosk");
        assert_eq!(me.village.unwrap().name, "一村");
        assert_eq!(me.town.unwrap().name, "甲镇");
        assert!(me.window.is_none());

        let me = db.me_of_user(ids.a1).unwrap();
        assert_eq!((me.role, me.town.unwrap().id, me.window.unwrap().name.as_str()), ("approver", ids.t1, "民政窗口"));
        let me = db.me_of_user(ids.s).unwrap();
        assert_eq!(me.role, "supervisor");
        assert!(me.town.is_none() && me.window.is_none() && me.village.is_none());
        assert!(matches!(db.me_of_user(9999), Err(DataError::NotFound(_))));
        assert!(matches!(db.me_of_kiosk(9999), Err(DataError::NotFound(_))));
    }

    #[test]
    fn rows_serialize_to_protocol_shapes() {
        let (db, ids) = region();
        let me = serde_json::to_value(db.me_of_kiosk(ids.k1).unwrap()).unwrap();
        assert_eq!(
            me,
            serde_json::json!({"kind": "kiosk", "id": ids.k1, "name": "一村便民服务室", "role": "kiosk",
                "town": {"id": ids.t1, "name": "甲镇"}, "village": {"id": ids.v1, "name": "一村"},
                "window": null})
        );
        let me = serde_json::to_value(db.me_of_user(ids.a1).unwrap()).unwrap();
        assert_eq!(me["kind"], "staff");
        assert_eq!(me["role"], "approver");
        assert_eq!(me["window"]["name"], "民政窗口");
        assert_eq!(me["village"], serde_json::Value::Null);

        let m = serde_json::to_value(&db.matters_for_town(Some(ids.t1), Some("优待")).unwrap()[0]).unwrap();
        for key in ["id", "name", "plain_name", "department", "required_papers", "needs_signoff", "village_can_finish"]
        {
            assert!(m.get(key).is_some(), "{key}");
        }
        assert_eq!(m["window"], serde_json::json!({"id": ids.w_mz, "name": "民政窗口"}));
        let w = serde_json::to_value(&db.windows_of_town(ids.t1).unwrap()[1]).unwrap();
        assert_eq!((w["name"].as_str(), w["kind"].as_str()), (Some("民政窗口"), Some("civil_affairs")));
        let v = serde_json::to_value(&db.villages_of_town(ids.t1).unwrap()[0]).unwrap();
        assert_eq!((v["id"].as_i64(), v["name"].as_str()), (Some(ids.v1), Some("一村")));
        // County-wide catalog: window is null.
        let all = serde_json::to_value(db.matters_for_town(None, None).unwrap()).unwrap();
        assert_eq!(all.as_array().unwrap().len(), 3);
        assert_eq!(all[0]["window"], serde_json::Value::Null);
    }

    #[test]
    fn topology_dump() {
        let (db, ids) = region();
        let t = db.topology().unwrap();
        assert_eq!(t.towns.len(), 2);
        assert!(t.towns.iter().any(|t| t.id == ids.t2 && t.any_window));
        assert_eq!(t.villages.len(), 3);
        let mz = t.windows.iter().find(|w| w.id == ids.w_mz).unwrap();
        assert_eq!((mz.town_id, mz.accepts.clone()), (ids.t1, vec![ids.m_old]));
        assert!(t.windows.iter().find(|w| w.id == ids.w2).unwrap().accepts.is_empty());
        assert_eq!(t.matters.len(), 3);
        assert_eq!(t.kiosks.iter().find(|k| k.id == ids.k3).unwrap().town_id, ids.t2);
        assert_eq!(t.approvers.len(), 1);
        assert_eq!((t.approvers[0].user_id, t.approvers[0].window_id), (ids.a1, Some(ids.w_mz)));
        assert_eq!(t.dispatchers[0].user_id, ids.d1);
        assert_eq!(t.chiefs[0].user_id, ids.c1);
    }

    #[test]
    fn cases_are_numbered_per_day_in_china_time() {
        let (db, ids) = region();
        // 2026-11-22 00:30 in China = 2026-11-21 16:30 UTC.
        let t0 = 1_795_278_600_000;
        assert_eq!(china_date(t0), "20261122");
        assert_eq!(china_date(0), "19700101");
        assert_eq!(china_date(16 * 3_600_000), "19700102");
        let c1 = db.create_case(ids.m_old, ids.v1, Some(ids.k1), t0).unwrap();
        let c2 = db.create_case(ids.m_house, ids.v1, None, t0 + 1000).unwrap();
        let c3 = db.create_case(ids.m_old, ids.v1, Some(ids.k1), t0 + 86_400_000).unwrap();
        assert_eq!(c1.case_no, "CS-20261122-0001");
        assert_eq!(c2.case_no, "CS-20261122-0002");
        assert_eq!(c3.case_no, "CS-20261123-0001");
        assert_eq!(db.case(c2.id).unwrap().unwrap(), c2);
        assert!(matches!(db.create_case(999, ids.v1, None, t0), Err(DataError::NotFound(m)) if m == "matter 999"));
        assert!(matches!(db.create_case(ids.m_old, 999, None, t0), Err(DataError::NotFound(_))));
        assert!(matches!(db.create_case(ids.m_old, ids.v1, Some(999), t0), Err(DataError::NotFound(_))));
    }

    #[test]
    fn call_records() {
        let (db, ids) = region();
        let case = db.create_case(ids.m_old, ids.v1, Some(ids.k1), 1000).unwrap();
        let call = db.record_call_requested(case.id, ids.w_mz, ids.k1, 1000).unwrap();
        db.record_call_answered(call, ids.a1, 2000).unwrap();
        assert!(matches!(db.record_call_answered(call, ids.a1, 2500), Err(DataError::Conflict(_))));
        let leg2 = db.record_call_transferred(call, ids.w_zh, 3000).unwrap();
        let old = db.call(call).unwrap().unwrap();
        assert_eq!((old.ended_at_ms, old.end_reason.as_deref()), (Some(3000), Some("transferred")));
        let new = db.call(leg2).unwrap().unwrap();
        assert_eq!((new.case_id, new.window_id, new.transferred_from_id), (case.id, ids.w_zh, Some(call)));
        assert!(new.staff_id.is_none() && new.answered_at_ms.is_none());
        db.record_call_ended(leg2, "hangup", 4000).unwrap();
        db.record_call_ended(leg2, "server", 5000).unwrap(); // no-op
        assert_eq!(db.call(leg2).unwrap().unwrap().end_reason.as_deref(), Some("hangup"));
        assert!(matches!(db.record_call_ended(999, "hangup", 1), Err(DataError::NotFound(_))));
        assert!(matches!(db.record_call_transferred(call, ids.w_zh, 1), Err(DataError::Conflict(_))));
        assert!(matches!(db.record_call_requested(case.id, 999, ids.k1, 1), Err(DataError::NotFound(_))));
        assert!(matches!(db.record_call_answered(999, ids.a1, 1), Err(DataError::NotFound(_))));
    }

    #[test]
    fn queue_state_roundtrip() {
        let (db, _) = region();
        assert_eq!(db.load_queue_state().unwrap(), None);
        db.save_queue_state(r#"{"a":1}"#, 10).unwrap();
        db.save_queue_state(r#"{"a":2}"#, 20).unwrap();
        assert_eq!(db.load_queue_state().unwrap(), Some((r#"{"a":2}"#.to_string(), 20)));
    }

    #[test]
    fn sessions_store() {
        let (db, ids) = region();
        db.insert_session("h1", ids.a1, 0, 100).unwrap();
        db.insert_session("h2", ids.a1, 0, 200).unwrap();
        assert!(db.session_by_token_hash("h1").unwrap().is_some());
        assert_eq!(db.delete_expired_sessions(100).unwrap(), 1);
        assert!(db.session_by_token_hash("h1").unwrap().is_none());
        assert!(db.delete_session("h2").unwrap());
        assert!(!db.delete_session("h2").unwrap());
    }

    #[test]
    fn write_rolls_back_on_error() {
        let (db, _) = region();
        let before = db.counts().unwrap();
        let r: Result<(), DataError> = db.write(|tx| {
            tx.upsert_town("丙镇", false)?;
            Err(DataError::Invalid("stop".into()))
        });
        assert!(r.is_err());
        assert_eq!(db.counts().unwrap(), before);
    }

    #[test]
    fn search_terms_parse() {
        assert_eq!(search_terms(Some("我要修房子")), ["修房子"]);
        assert_eq!(search_terms(Some("我要")), ["我要"]);
        assert_eq!(search_terms(Some("低保，残疾 ABC")), ["低保", "残疾", "abc"]);
        assert!(search_terms(None).is_empty());
    }
}
