//! All persistent data: one SQLite database behind [`Db`]. Nothing else in the crate runs SQL,
//! so that a PostgreSQL implementation can replace this module.
//!
//! # Blocking
//! Every method is synchronous: it takes a mutex around the one connection and runs SQL.
//! Reads and single-row writes take well under a millisecond on county-sized data, but they can
//! wait on the mutex or on the disk; async code calls them through [`Db::run`], the one way off
//! the async threads (a [`Db`] is a cheap clone: `Arc` inside). `auth::login` and
//! `import::import_str` hash passwords (tens of milliseconds each) and always go through it.
//!
//! # Files
//! `region` (county, towns, villages, windows, matters, `Me`), `sessions`, `topology` (what
//! the queue is built from), `upsert` (the import's writes), `calls` (the call log),
//! `queue_state`, `cases` (cases, the lifecycle's transitions, the timeline), `papers`,
//! `inbox` (ratings and the village inbox), `bookings`, `recordings` (recordings, the object
//! catalogue, legal holds), `accounts` (accounts and kiosk devices as the administrator manages
//! them: enrolment codes, device tokens, last connection).
//!
//! # Rows
//! Queries return plain structs (`*Row`, [`Me`], [`Topology`], the case domain's
//! [`CaseRecord`](crate::case::CaseRecord)); enumerations are stored as text and mapped here.
//! Times are Unix milliseconds.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

pub use crate::identity::Role;

/// The one error type of `db`, `import` and `auth`.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Unknown or expired token, bad username or password. Never says which.
    #[error("unauthorized")]
    Unauthorized,
    /// A live staff session whose account must choose a new password first (HTTP 403
    /// `password_change_required`; a WebSocket refuses it like an unknown token).
    #[error("password change required")]
    PasswordChangeRequired,
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
    /// A database task did not finish (it panicked, or the runtime is shutting down).
    #[error("database task failed: {0}")]
    Task(String),
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
    (4, "audit", include_str!("migrations/0004_audit.sql")),
    (5, "hardening", include_str!("migrations/0005_hardening.sql")),
    (6, "paper_removal", include_str!("migrations/0006_paper_removal.sql")),
    (7, "admin", include_str!("migrations/0007_admin.sql")),
    (8, "accounts", include_str!("migrations/0008_accounts.sql")),
    (9, "ring", include_str!("migrations/0009_ring.sql")),
];

mod accounts;
mod admin;
mod audit;
mod bookings;
mod calls;
mod cases;
mod events;
mod inbox;
mod ledger;
mod papers;
mod queue_state;
mod recordings;
mod region;
mod region_dump;
mod review;
mod sessions;
mod stats;
mod topology;
mod upsert;

pub use accounts::{AccountFields, AccountRow, DeviceRow, EnrolmentState, Reference};
pub use admin::{
    AdminCounty, AdminMatter, AdminRegion, AdminTown, AdminVillage, AdminWindow, MatterEdit, References, RegionItem,
    TownEdit, VillageEdit, WindowEdit,
};
pub use audit::{AccessRow, NewAccess};
pub use bookings::{BookingRow, BookingScope, BookingStatus};
pub use calls::{CallRow, CaseCall};
pub use events::{EventRow, NewEvent};
pub use inbox::{InboxRow, RatingRow};
pub use ledger::LedgerFact;
pub use papers::{PaperChange, PaperRow, UploadRow};
pub use recordings::{
    CatalogRow, GroupCallFilter, GroupCallRow, HoldHistoryRow, IntentRow, LegalHold, RecordingEnd, RecordingRow,
    SegmentRow,
};
pub use region::{
    CountyRow, KioskRow, MatterRow, Me, NamedRef, TownRow, UserRow, VillageKind, VillageRow, WindowKind, WindowRow,
};
pub use region_dump::{AccountDump, KioskDump, MatterDump, RegionDump, TownDump, WindowDump};
pub use review::{CaseFilter, CaseOrder, CasePage, RatingFilter, SignoffFilter, TownStaff};
pub use sessions::SessionRow;
pub use topology::{TopoKiosk, TopoMatter, TopoStaff, TopoTown, TopoWindow, Topology};
pub use upsert::{MatterFields, Tx, Upsert, UserFields};

pub(crate) fn bad_text(column: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("bad {column} value {value:?}").into(),
    )
}

pub(crate) fn role_col(s: String) -> rusqlite::Result<Role> {
    Role::parse(&s).ok_or_else(|| bad_text("role", &s))
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

impl Db {
    /// Opens (creating if needed) the database file and applies pending migrations.
    /// WAL journal, `synchronous = FULL` (a committed row survives a power loss: rows such
    /// as a paper's are acknowledged to the user), foreign keys on, 5 s busy timeout. The
    /// parent directory is created 0700; the file, its WAL and shared-memory file are 0600
    /// (SQLite gives the WAL the database file's mode; older files are tightened).
    pub fn open(path: &Path) -> Result<Db, DataError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private_dir(dir)?;
        }
        let io = |source| DataError::Io { path: path.to_owned(), source };
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(io)?;
        }
        let conn = Connection::open(path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "sqlite journal mode is not WAL");
        }
        conn.execute_batch("PRAGMA synchronous = FULL;")?;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            private_file(Path::new(&p)).map_err(io)?;
        }
        Db::setup(conn)
    }

    /// A private in-memory database (tests, dry runs).
    pub fn open_in_memory() -> Result<Db, DataError> {
        Db::setup(Connection::open_in_memory()?)
    }

    fn setup(mut conn: Connection) -> Result<Db, DataError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // Migrations run with foreign keys off (a table rebuild needs it; the pragma is a
        // no-op inside a transaction) and check them before each commit.
        conn.execute_batch("PRAGMA foreign_keys = OFF;")?;
        migrate(&mut conn)?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")?;
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

    /// Run `f` on the blocking pool, off the async threads: the one way async code uses the
    /// database. `E` is the caller's error type (a task that panicked becomes
    /// [`DataError::Task`]).
    pub async fn run<T, E>(&self, f: impl FnOnce(&Db) -> Result<T, E> + Send + 'static) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DataError> + Send + 'static,
    {
        let db = self.clone();
        match tokio::task::spawn_blocking(move || f(&db)).await {
            Ok(r) => r,
            Err(e) => Err(DataError::Task(e.to_string()).into()),
        }
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
}

/// Create `dir` (and its parents) with mode 0700, or tighten an existing one to 0700: the
/// data directory holds personal data (the database) that only the server's user reads.
pub fn private_dir(dir: &Path) -> Result<(), DataError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let io = |source| DataError::Io { path: dir.to_owned(), source };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    let mode = std::fs::metadata(dir).map_err(io)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        tracing::info!(dir = %dir.display(), was = format!("{mode:o}"), "made the directory private (0700)");
    }
    Ok(())
}

/// Tighten an existing file to 0600 (nothing when it does not exist).
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
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
            let broken: Option<String> = tx.query_row("PRAGMA foreign_key_check", [], |r| r.get(0)).optional()?;
            if let Some(table) = broken {
                return Err(DataError::Invalid(format!(
                    "migration {version} {name} leaves a dangling reference in {table}"
                )));
            }
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

#[cfg(test)]
mod tests;
