//! `cunneng import FILE`: loads a region (county, towns, villages, windows, matter catalog,
//! accounts, kiosk devices) from TOML. The format is described in `docs/import-format.md`.
//!
//! Everything is checked before anything is written, and the writes are one transaction: a
//! bad file changes nothing. Items are matched by natural key (town name, village and window
//! name within their town, matter code, username, kiosk name within its village), so
//! importing the same file twice creates nothing new. Import only adds and updates: items
//! missing from the file are left as they are.
//!
//! Password hashing makes an import take a few seconds for dozens of accounts: run it from
//! `spawn_blocking` inside the server.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::auth::{PasswordHashes, hash_password, is_valid_password_hash, token_hash, verify_password};
use crate::db::{DataError, Db, MatterFields, RegionItem, Role, UserFields, VillageKind, WindowKind};

/// The demo region, built into the binary.
pub const DEMO_TOML: &str = include_str!("../../demo/demo.toml");

/// Shortest password accepted in an import file.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Shortest plain kiosk token accepted in an import file.
pub const MIN_TOKEN_LEN: usize = 16;

// ---------------------------------------------------------------------------------------------
// File format.

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RegionFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    county: Option<CountyIn>,
    #[serde(default)]
    towns: Vec<TownIn>,
    #[serde(default)]
    matters: Vec<MatterIn>,
    #[serde(default)]
    accounts: Vec<AccountIn>,
    #[serde(default)]
    kiosks: Vec<KioskIn>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct CountyIn {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TownIn {
    name: String,
    #[serde(default)]
    any_window: bool,
    #[serde(default)]
    villages: Vec<VillageIn>,
    /// `None`: the three standard windows.
    #[serde(skip_serializing_if = "Option::is_none")]
    windows: Option<Vec<WindowIn>>,
    /// 停用 (disabled by the administrator; docs/admin.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct VillageIn {
    name: String,
    /// Default: `community` if the name ends in 社区, else `village`.
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<VillageKind>,
    /// 停用 (disabled by the administrator; docs/admin.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct WindowIn {
    name: String,
    /// Default: from a standard name (综合窗口, 民政窗口, 社保窗口); required otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<WindowKind>,
    /// Matter codes this window takes; without it, the matters of its kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    matters: Option<Vec<String>>,
    /// 停用 (disabled by the administrator; docs/admin.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct MatterIn {
    code: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    plain_name: Option<String>,
    #[serde(default)]
    department: String,
    window: WindowKind,
    #[serde(default)]
    required_papers: Vec<String>,
    #[serde(default)]
    needs_signoff: bool,
    #[serde(default)]
    village_can_finish: bool,
    #[serde(default)]
    keywords: Vec<String>,
    /// 停用 (disabled by the administrator; docs/admin.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct AccountIn {
    username: String,
    display_name: String,
    role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    town: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_hash: Option<String>,
    /// 停用: cannot log in, has no sessions (docs/admin.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
    /// The next login must choose a new password (set by an administrator's reset).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    must_change_password: bool,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct KioskIn {
    town: String,
    village: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_hash: Option<String>,
    /// 停用: its token is refused (docs/admin.md).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    disabled: bool,
    /// `false`: the device waits for an enrolment (created or revoked by the administrator):
    /// its `token_hash` is of a secret nobody was given. Only with `token_hash`.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    enrolled: bool,
    /// When its token stops being accepted (milliseconds since 1970 UTC, as enrolment and
    /// rotation set it); absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_expires_at_ms: Option<u64>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Parses and checks a region file as [`import_str`] does before it touches the database;
/// returns how many accounts carry a plain `password` (each costs an argon2 hash on import).
/// Public for the region-import fuzz target (`fuzz/`), not an API.
#[doc(hidden)]
pub fn check_str(text: &str) -> Result<usize, DataError> {
    let f = parse(text)?;
    check_file(&f)?;
    Ok(f.accounts.iter().filter(|a| a.password.is_some()).count())
}

fn parse(text: &str) -> Result<RegionFile, DataError> {
    toml::from_str(text).map_err(|e| DataError::Invalid(format!("import refused, nothing written: {e}")))
}

/// A town's window as the file gives it: name, kind, the matter codes it lists, disabled.
type TownWindow = (String, Option<WindowKind>, Option<Vec<String>>, bool);

impl TownIn {
    /// (name, kind, explicit matter codes) of the town's windows.
    fn windows(&self) -> Vec<TownWindow> {
        match &self.windows {
            Some(ws) => ws
                .iter()
                .map(|w| {
                    let name = w.name.trim().to_owned();
                    let kind = w.kind.or_else(|| WindowKind::from_standard_name(&name));
                    (name, kind, w.matters.clone(), w.disabled)
                })
                .collect(),
            None => WindowKind::STANDARD
                .iter()
                .map(|k| (k.standard_name().unwrap_or_default().to_owned(), Some(*k), None, false))
                .collect(),
        }
    }
}

impl VillageIn {
    fn kind(&self) -> VillageKind {
        self.kind.unwrap_or(if self.name.trim().ends_with("社区") {
            VillageKind::Community
        } else {
            VillageKind::Village
        })
    }
}

impl KioskIn {
    fn name(&self) -> String {
        match &self.name {
            Some(n) => n.trim().to_owned(),
            None => format!("{}便民服务室", self.village.trim()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Export.

/// What heads an exported region file.
const EXPORT_HEADER: &str = "\
# The region of a cunneng server, written by `cunneng export-region` (docs/import-format.md).
# `cunneng import` of this file into an empty data dir reproduces it: towns, villages, windows
# and which matters they take, the matter catalog, the accounts and the kiosk devices. It holds
# no password or device token, only their stored hashes: keep it as private as a backup.
";

/// The stored region as an import file (`cunneng export-region`): importing it into an empty
/// data dir reproduces the region, and exporting that gives the same text again. Every field
/// is written out (no defaults left to the importer), secrets as their stored hashes.
pub fn export_region(db: &Db) -> Result<String, DataError> {
    let dump = db.region_dump()?;
    let window_kind = |k: &str| {
        WindowKind::parse(k).ok_or_else(|| DataError::Invalid(format!("a stored window kind {k:?} is unknown")))
    };
    let mut towns = Vec::new();
    for t in dump.towns {
        let mut windows = Vec::new();
        for w in t.windows {
            windows.push(WindowIn {
                kind: Some(window_kind(&w.kind)?),
                name: w.name,
                matters: w.matters,
                disabled: w.disabled,
            });
        }
        towns.push(TownIn {
            name: t.name,
            any_window: t.any_window,
            villages: t
                .villages
                .into_iter()
                .map(|(name, kind, disabled)| VillageIn {
                    name,
                    kind: Some(VillageKind::parse(&kind).unwrap_or_default()),
                    disabled,
                })
                .collect(),
            windows: Some(windows),
            disabled: t.disabled,
        });
    }
    let mut matters = Vec::new();
    for m in dump.matters {
        matters.push(MatterIn {
            window: window_kind(&m.window_kind)?,
            code: m.code,
            name: m.name,
            plain_name: Some(m.plain_name),
            department: m.department,
            required_papers: m.required_papers,
            needs_signoff: m.needs_signoff,
            village_can_finish: m.village_can_finish,
            keywords: m.keywords,
            disabled: m.disabled,
        });
    }
    let file = RegionFile {
        county: dump.county.map(|(name, code)| CountyIn { name, code: Some(code) }),
        towns,
        matters,
        accounts: dump
            .accounts
            .into_iter()
            .map(|a| AccountIn {
                username: a.username,
                display_name: a.display_name,
                role: a.role,
                town: a.town,
                window: a.window,
                password: None,
                password_hash: Some(a.password_hash),
                disabled: a.disabled,
                must_change_password: a.must_change_password,
            })
            .collect(),
        kiosks: dump
            .kiosks
            .into_iter()
            .map(|k| KioskIn {
                town: k.town,
                village: k.village,
                name: Some(k.name),
                token: None,
                token_hash: Some(k.token_hash),
                disabled: k.disabled,
                enrolled: k.enrolled,
                token_expires_at_ms: k.token_expires_at_ms,
            })
            .collect(),
    };
    let body = toml::to_string(&file).map_err(|e| DataError::Invalid(format!("the region cannot be written: {e}")))?;
    Ok(format!("{EXPORT_HEADER}\n{body}"))
}

// ---------------------------------------------------------------------------------------------
// Summary.

/// How many items of one kind the file held, and how many of them were new.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub created: usize,
    pub updated: usize,
}

impl Tally {
    pub fn total(&self) -> usize {
        self.created + self.updated
    }
    fn add(&mut self, created: bool) {
        if created {
            self.created += 1;
        } else {
            self.updated += 1;
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} new)", self.total(), self.created)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub towns: Tally,
    pub villages: Tally,
    pub windows: Tally,
    pub matters: Tally,
    pub accounts: Tally,
    pub kiosks: Tally,
    /// Rows of window_matters in the whole database after the import.
    pub window_matters: usize,
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "towns {}, villages {}, windows {}, matters {}, accounts {}, kiosks {}; {} window-matter links",
            self.towns, self.villages, self.windows, self.matters, self.accounts, self.kiosks, self.window_matters
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Checking.

#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, p: impl Into<String>) {
        self.0.push(p.into());
    }
    fn into_result(self) -> Result<(), DataError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let shown = 30;
        let mut msg = String::from("import refused, nothing written:");
        for p in self.0.iter().take(shown) {
            msg.push_str("\n  - ");
            msg.push_str(p);
        }
        if self.0.len() > shown {
            msg.push_str(&format!("\n  ... and {} more", self.0.len() - shown));
        }
        Err(DataError::Invalid(msg))
    }
}

fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

/// Checks that need only the file.
fn check_file(f: &RegionFile) -> Result<(), DataError> {
    let mut p = Problems::default();
    if let Some(c) = &f.county {
        if blank(&c.name) {
            p.push("county: empty name");
        }
        if let Some(code) = &c.code
            && (code.is_empty()
                || code.len() > 8
                || !code.chars().all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit()))
        {
            p.push(format!("county: code `{code}` must be 1 to 8 capital letters or digits (e.g. ZH)"));
        }
    }

    let mut towns = HashSet::new();
    for (i, t) in f.towns.iter().enumerate() {
        let tn = t.name.trim();
        if tn.is_empty() {
            p.push(format!("towns[{i}]: empty name"));
            continue;
        }
        if !towns.insert(tn) {
            p.push(format!("town `{tn}`: listed twice"));
        }
        let mut villages = HashSet::new();
        for v in &t.villages {
            let vn = v.name.trim();
            if vn.is_empty() {
                p.push(format!("town `{tn}`: a village with an empty name"));
            } else if !villages.insert(vn) {
                p.push(format!("town `{tn}`: village `{vn}` listed twice"));
            }
        }
        if t.windows.as_ref().is_some_and(|w| w.is_empty()) {
            p.push(format!("town `{tn}`: `windows` is empty (leave it out for the three standard windows)"));
        }
        let mut windows = HashSet::new();
        for (wn, kind, _, _) in t.windows() {
            if wn.is_empty() {
                p.push(format!("town `{tn}`: a window with an empty name"));
                continue;
            }
            if !windows.insert(wn.clone()) {
                p.push(format!("town `{tn}`: window `{wn}` listed twice"));
            }
            if kind.is_none() {
                p.push(format!(
                    "town `{tn}` window `{wn}`: no kind (comprehensive, civil_affairs, social_security or custom)"
                ));
            }
        }
    }

    let mut codes = HashSet::new();
    for (i, m) in f.matters.iter().enumerate() {
        let code = m.code.trim();
        let item = if code.is_empty() { format!("matters[{i}]") } else { format!("matter `{code}`") };
        if code.is_empty() {
            p.push(format!("{item}: empty code"));
        } else if code.chars().any(char::is_whitespace) {
            p.push(format!("{item}: code contains spaces"));
        } else if !codes.insert(code) {
            p.push(format!("{item}: code listed twice"));
        }
        if blank(&m.name) {
            p.push(format!("{item}: empty name"));
        }
        if m.plain_name.as_deref().is_some_and(blank) {
            p.push(format!("{item}: empty plain_name (leave it out to use the name)"));
        }
        if m.required_papers.iter().any(|s| blank(s)) {
            p.push(format!("{item}: an empty entry in required_papers"));
        }
        if m.keywords.iter().any(|s| blank(s)) {
            p.push(format!("{item}: an empty keyword"));
        }
    }

    let mut usernames = HashSet::new();
    for (i, a) in f.accounts.iter().enumerate() {
        let un = a.username.trim();
        let item = if un.is_empty() { format!("accounts[{i}]") } else { format!("account `{un}`") };
        if un.is_empty() {
            p.push(format!("{item}: empty username"));
        } else if un.len() > 64 || un.chars().any(|c| c.is_whitespace() || c.is_control()) {
            p.push(format!("{item}: username must be at most 64 bytes, without spaces"));
        } else if !usernames.insert(un) {
            p.push(format!("{item}: username listed twice"));
        }
        if blank(&a.display_name) {
            p.push(format!("{item}: empty display_name"));
        }
        match Role::parse(a.role.trim()) {
            None => {
                p.push(format!("{item}: unknown role `{}` (approver, chief, dispatcher, supervisor or admin)", a.role))
            }
            Some(role) => {
                let has_town = a.town.as_deref().is_some_and(|t| !blank(t));
                let has_window = a.window.as_deref().is_some_and(|w| !blank(w));
                match role {
                    Role::Approver if !has_town || !has_window => {
                        p.push(format!("{item}: an approver needs a town and a window"))
                    }
                    Role::Chief if !has_town => p.push(format!("{item}: a chief needs a town")),
                    Role::Dispatcher if !has_town => p.push(format!("{item}: a dispatcher needs a town")),
                    Role::Dispatcher if has_window => {
                        p.push(format!("{item}: a dispatcher works for the whole town: remove `window`"))
                    }
                    Role::Admin if has_town || has_window => {
                        p.push(format!("{item}: an admin is county-wide: remove `town` and `window`"))
                    }
                    Role::Supervisor if has_window => {
                        p.push(format!("{item}: a supervisor reviews a town or the county: remove `window`"))
                    }
                    _ => {}
                }
            }
        }
        match (&a.password, &a.password_hash) {
            (Some(_), Some(_)) => p.push(format!("{item}: give `password` or `password_hash`, not both")),
            (None, None) => p.push(format!("{item}: needs `password` or `password_hash`")),
            (Some(pw), None) if pw.chars().count() < MIN_PASSWORD_LEN => {
                p.push(format!("{item}: password shorter than {MIN_PASSWORD_LEN} characters"))
            }
            (Some(pw), None) if pw.len() > crate::auth::MAX_SECRET_LEN => p.push(format!("{item}: password too long")),
            (None, Some(h)) if !is_valid_password_hash(h) => {
                p.push(format!("{item}: password_hash is not an argon2 PHC string ($argon2id$...)"))
            }
            _ => {}
        }
    }

    let mut kiosks = HashSet::new();
    let mut hashes = HashSet::new();
    for (i, k) in f.kiosks.iter().enumerate() {
        let name = k.name();
        let item = format!("kiosks[{i}] `{}/{}/{name}`", k.town.trim(), k.village.trim());
        if blank(&k.town) || blank(&k.village) || name.is_empty() {
            p.push(format!("{item}: town, village and name must not be empty"));
        }
        if !kiosks.insert((k.town.trim().to_owned(), k.village.trim().to_owned(), name.clone())) {
            p.push(format!("{item}: listed twice"));
        }
        match (&k.token, &k.token_hash) {
            (Some(_), Some(_)) => p.push(format!("{item}: give `token` or `token_hash`, not both")),
            (None, None) => p.push(format!("{item}: needs `token` or `token_hash`")),
            (Some(t), None)
                if t.len() < MIN_TOKEN_LEN
                    || t.len() > crate::auth::MAX_SECRET_LEN
                    || t.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                p.push(format!("{item}: token must be {MIN_TOKEN_LEN} or more characters without spaces"))
            }
            (None, Some(h)) if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) => {
                p.push(format!("{item}: token_hash must be 64 hex digits (SHA-256 of the token)"))
            }
            _ => {}
        }
        if !k.enrolled && k.token.is_some() {
            p.push(format!("{item}: `enrolled = false` goes with `token_hash` only (a plain token is a device's)"))
        }
        if let Some(h) = kiosk_hash(k)
            && !hashes.insert(h)
        {
            p.push(format!("{item}: same token as another kiosk"));
        }
    }
    p.into_result()
}

fn kiosk_hash(k: &KioskIn) -> Option<String> {
    match (&k.token, &k.token_hash) {
        (Some(t), None) => Some(token_hash(t)),
        (None, Some(h)) => Some(h.to_ascii_lowercase()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Import.

/// Imports a region file's text. See the module doc.
pub fn import_str(db: &Db, text: &str) -> Result<ImportSummary, DataError> {
    let f = parse(text)?;
    check_file(&f)?;
    // When items marked `disabled` are disabled (an item already disabled keeps its time).
    let now = crate::now_ms();

    // Password hashes, outside the transaction (argon2 is slow), one at a time: the import runs
    // from the command line or before the server answers (the demo), never beside requests. An
    // unchanged password keeps its stored hash, so re-importing neither rehashes nor ends
    // sessions.
    let one = PasswordHashes::one_at_a_time();
    let mut hashes: HashMap<&str, String> = HashMap::new();
    for a in &f.accounts {
        let hash = match (&a.password, &a.password_hash) {
            (Some(pw), None) => {
                let permit = one.try_permit().ok_or_else(|| DataError::Hash("no hash permit".into()))?;
                match db.password_hash_of(a.username.trim())? {
                    Some((_, old)) if verify_password(&permit, &old, pw) => old,
                    _ => hash_password(&permit, pw)?,
                }
            }
            (None, Some(h)) => h.clone(),
            _ => {
                return Err(DataError::Invalid(format!("account `{}`: password", a.username.trim())));
            }
        };
        hashes.insert(a.username.trim(), hash);
    }

    let summary = db.write(|tx| {
        // --- references, against the file and what is stored --------------------------------
        let mut p = Problems::default();
        let file_towns: HashMap<&str, &TownIn> = f.towns.iter().map(|t| (t.name.trim(), t)).collect();
        let town_known = |name: &str| -> Result<bool, DataError> {
            Ok(file_towns.contains_key(name) || tx.town_id(name)?.is_some())
        };
        let window_known = |town: &str, window: &str| -> Result<bool, DataError> {
            if let Some(t) = file_towns.get(town)
                && t.windows().iter().any(|(n, _, _, _)| n == window)
            {
                return Ok(true);
            }
            Ok(match tx.town_id(town)? {
                Some(tid) => tx.window_id(tid, window)?.is_some(),
                None => false,
            })
        };
        let village_known = |town: &str, village: &str| -> Result<bool, DataError> {
            if let Some(t) = file_towns.get(town)
                && t.villages.iter().any(|v| v.name.trim() == village)
            {
                return Ok(true);
            }
            Ok(match tx.town_id(town)? {
                Some(tid) => tx.village_id(tid, village)?.is_some(),
                None => false,
            })
        };

        if f.county.is_none() && tx.county()?.is_none() {
            p.push("county: the file has no [county] and the database has none yet");
        }
        let file_codes: HashSet<&str> = f.matters.iter().map(|m| m.code.trim()).collect();
        for t in &f.towns {
            for (wn, _, listed, _) in t.windows() {
                for code in listed.iter().flatten() {
                    if !file_codes.contains(code.trim()) && tx.matter_id(code.trim())?.is_none() {
                        p.push(format!("town `{}` window `{wn}`: unknown matter code `{code}`", t.name.trim()));
                    }
                }
            }
        }
        for a in &f.accounts {
            let item = format!("account `{}`", a.username.trim());
            if let Some(town) = a.town.as_deref().map(str::trim) {
                if !town_known(town)? {
                    p.push(format!("{item}: unknown town `{town}`"));
                } else if let Some(w) = a.window.as_deref().map(str::trim)
                    && !window_known(town, w)?
                {
                    p.push(format!("{item}: town `{town}` has no window `{w}`"));
                }
            }
        }
        for k in &f.kiosks {
            let (town, village, name) = (k.town.trim(), k.village.trim(), k.name());
            let item = format!("kiosk `{town}/{village}/{name}`");
            if !town_known(town)? {
                p.push(format!("{item}: unknown town `{town}`"));
                continue;
            }
            if !village_known(town, village)? {
                p.push(format!("{item}: town `{town}` has no village `{village}`"));
                continue;
            }
            // The token must not belong to another stored kiosk.
            if let Some(h) = kiosk_hash(k)
                && let Some(holder) = tx.kiosk_with_token_hash(&h)?
            {
                let this = match tx.town_id(town)? {
                    Some(tid) => match tx.village_id(tid, village)? {
                        Some(vid) => tx.kiosk_id(vid, &name)?,
                        None => None,
                    },
                    None => None,
                };
                if this != Some(holder) {
                    p.push(format!("{item}: its token is already used by another kiosk"));
                }
            }
        }
        p.into_result()?;

        // --- writes ------------------------------------------------------------------------
        let mut s = ImportSummary::default();
        if let Some(c) = &f.county {
            let code = match &c.code {
                Some(code) => code.clone(),
                None => tx.county()?.map(|c| c.code).unwrap_or_else(|| "CN".to_owned()),
            };
            tx.set_county(c.name.trim(), &code)?;
        }
        let mut town_ids: HashMap<&str, i64> = HashMap::new();
        for t in &f.towns {
            let u = tx.upsert_town(t.name.trim(), t.any_window)?;
            s.towns.add(u.created());
            tx.set_disabled(RegionItem::Town, u.id(), t.disabled.then_some(now))?;
            town_ids.insert(t.name.trim(), u.id());
            for v in &t.villages {
                let vu = tx.upsert_village(u.id(), v.name.trim(), v.kind())?;
                s.villages.add(vu.created());
                tx.set_disabled(RegionItem::Village, vu.id(), v.disabled.then_some(now))?;
            }
        }
        for m in &f.matters {
            let keywords = m.keywords.iter().map(|k| k.trim()).collect::<Vec<_>>().join(" ");
            let papers: Vec<String> = m.required_papers.iter().map(|p| p.trim().to_owned()).collect();
            let u = tx.upsert_matter(&MatterFields {
                code: m.code.trim(),
                name: m.name.trim(),
                plain_name: m.plain_name.as_deref().unwrap_or(&m.name).trim(),
                department: m.department.trim(),
                window_kind: m.window,
                required_papers: &papers,
                needs_signoff: m.needs_signoff,
                village_can_finish: m.village_can_finish,
                keywords: &keywords,
            })?;
            s.matters.add(u.created());
            tx.set_disabled(RegionItem::Matter, u.id(), m.disabled.then_some(now))?;
        }
        for t in &f.towns {
            let tid = town_ids[t.name.trim()];
            for (wn, kind, listed, disabled) in t.windows() {
                let kind = kind.unwrap_or(WindowKind::Custom); // checked above
                let u = tx.upsert_window(tid, &wn, kind, listed.is_none())?;
                s.windows.add(u.created());
                tx.set_disabled(RegionItem::Window, u.id(), disabled.then_some(now))?;
                if let Some(codes) = listed {
                    let mut ids = Vec::new();
                    for c in codes {
                        ids.extend(tx.matter_id(c.trim())?);
                    }
                    tx.set_window_matters(u.id(), &ids)?;
                }
            }
        }
        tx.derive_window_matters()?;
        let lookup_town = |name: &str| -> Result<i64, DataError> {
            tx.town_id(name)?.ok_or_else(|| DataError::NotFound(format!("town `{name}`")))
        };
        for a in &f.accounts {
            let role = Role::parse(a.role.trim()).unwrap_or(Role::Admin); // checked above
            let town_id = a.town.as_deref().map(|t| lookup_town(t.trim())).transpose()?;
            let window_id = match (town_id, a.window.as_deref()) {
                (Some(tid), Some(w)) => tx.window_id(tid, w.trim())?,
                _ => None,
            };
            let u = tx.upsert_user(&UserFields {
                username: a.username.trim(),
                display_name: a.display_name.trim(),
                role,
                town_id,
                window_id,
                password_hash: &hashes[a.username.trim()],
            })?;
            tx.set_account_state(u.id(), a.disabled.then_some(now), a.must_change_password)?;
            s.accounts.add(u.created());
        }
        for k in &f.kiosks {
            let tid = lookup_town(k.town.trim())?;
            let vid = tx
                .village_id(tid, k.village.trim())?
                .ok_or_else(|| DataError::NotFound(format!("village `{}`", k.village.trim())))?;
            let hash = kiosk_hash(k).unwrap_or_default(); // checked above
            let u = tx.upsert_kiosk(vid, &k.name(), &hash)?;
            tx.set_kiosk_state(u.id(), k.disabled.then_some(now), k.enrolled, k.token_expires_at_ms)?;
            s.kiosks.add(u.created());
        }
        Ok(s)
    })?;
    let mut summary = summary;
    summary.window_matters = db.counts()?.window_matters;
    tracing::info!(
        towns = summary.towns.total(),
        villages = summary.villages.total(),
        windows = summary.windows.total(),
        matters = summary.matters.total(),
        accounts = summary.accounts.total(),
        kiosks = summary.kiosks.total(),
        "region imported"
    );
    Ok(summary)
}

/// Reads and imports a region file.
pub fn import_file(db: &Db, path: &Path) -> Result<ImportSummary, DataError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DataError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    import_str(db, &text)
}

/// Imports the built-in demo region ([`DEMO_TOML`]).
pub fn import_demo(db: &Db) -> Result<ImportSummary, DataError> {
    import_str(db, DEMO_TOML)
}

// ---------------------------------------------------------------------------------------------
// Demo links.

/// One-click links into the demo: `(role, name, url)` with role `kiosk`, `window` (approvers),
/// `chief`, `dispatcher`, `supervisor` or `admin`. Kiosks: `{base}/kiosk#token=TOKEN`; staff:
/// `{base}/login#user=USERNAME&password=PW`. Only items with a plain token or password in the
/// file are listed; a file that does not parse gives none. Names contain no spaces.
pub fn demo_links(demo_toml: &str, base_url: &str) -> Vec<(String, String, String)> {
    let Ok(f) = toml::from_str::<RegionFile>(demo_toml) else {
        return Vec::new();
    };
    let base = base_url.trim_end_matches('/');
    let nospace = |s: String| s.split_whitespace().collect::<Vec<_>>().join("_");
    let mut out = Vec::new();
    for k in &f.kiosks {
        if let Some(token) = &k.token {
            out.push(("kiosk".to_owned(), nospace(k.name()), format!("{base}/kiosk#token={}", fragment_escape(token))));
        }
    }
    for a in &f.accounts {
        let (Some(pw), Some(role)) = (&a.password, Role::parse(a.role.trim())) else {
            continue;
        };
        let role_str = match role {
            Role::Approver => "window",
            r => r.as_str(),
        };
        let place: String = [a.town.as_deref(), a.window.as_deref()].into_iter().flatten().map(str::trim).collect();
        let name = if place.is_empty() {
            a.display_name.trim().to_owned()
        } else {
            format!("{}({place})", a.display_name.trim())
        };
        let url = format!("{base}/login#user={}&password={}", fragment_escape(a.username.trim()), fragment_escape(pw));
        out.push((role_str.to_owned(), nospace(name), url));
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn fragment_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth;
    use crate::identity::{Principal, Role};

    fn demo_db() -> Db {
        let db = Db::open_in_memory().unwrap();
        import_demo(&db).unwrap();
        db
    }

    #[test]
    fn an_exported_region_imports_into_an_empty_store_as_the_same_region() {
        let db = demo_db();
        // Beyond the demo: a window that lists its matters, a town-limited supervisor, an
        // admin, a community, a kiosk with its own name.
        import_str(
            &db,
            r#"
[[towns]]
name = "白果乡"
any_window = true
villages = [{ name = "柳桥村" }, { name = "白果社区" }]
windows = [{ name = "综合窗口" }, { name = "不动产窗口", kind = "custom", matters = ["BDC-001"] }]

[[matters]]
code = "BDC-001"
name = "不动产登记"
window = "custom"
required_papers = ["身份证", "房产证"]
keywords = ["房产", "过户"]

[[accounts]]
username = "baiguo-sup"
display_name = "白果纪委"
role = "supervisor"
town = "白果乡"
password = "baiguo-sup-pw"

[[accounts]]
username = "county-admin"
display_name = "县管理员"
role = "admin"
password = "county-admin-pw"

[[kiosks]]
town = "白果乡"
village = "白果社区"
name = "社区服务站一号机"
token = "0123456789abcdef0123456789abcdef"
"#,
        )
        .unwrap();
        let text = export_region(&db).unwrap();
        assert!(text.starts_with("# The region of a cunneng server"), "{text}");
        assert!(!text.contains("password ="), "no plaintext password field: {text}");
        assert!(!text.contains("0123456789abcdef0123456789abcdef"), "no device token");

        let copy = Db::open_in_memory().unwrap();
        let summary = import_str(&copy, &text).unwrap();
        assert_eq!(summary.towns.created, 4);
        assert_eq!(copy.region_dump().unwrap(), db.region_dump().unwrap());
        assert_eq!(export_region(&copy).unwrap(), text, "the export of the copy is the same text");
        assert_eq!(copy.counts().unwrap(), db.counts().unwrap());

        // The same secrets work: a demo password, the new kiosk's token.
        let (user, password) = ("baiguo-sup", "baiguo-sup-pw");
        assert!(auth::login(&copy, &crate::auth::test_permit(), user, password, 0, 1).is_ok());
        assert!(copy.kiosk_by_token_hash(&token_hash("0123456789abcdef0123456789abcdef"), 0).unwrap().is_some());
        // The window that listed its matters still lists them (not the matters of its kind).
        let t = copy.topology().unwrap();
        let custom = t.windows.iter().find(|w| w.name == "不动产窗口").unwrap();
        assert_eq!(custom.kind, WindowKind::Custom);
    }

    #[test]
    fn export_carries_disabled_accounts_and_kiosks_forced_changes_and_enrolment() {
        let db = demo_db();
        let now = crate::now_ms();
        db.write(|tx| {
            let users = tx.user_password_hash("zhaohua-minzheng")?.unwrap().0;
            tx.set_account_state(users, Some(now), false)?;
            let chief = tx.user_password_hash("zhaohua-chief")?.unwrap().0;
            tx.set_account_state(chief, None, true)?;
            let t = tx.town_id("昭化镇")?.unwrap();
            let v = tx.village_id(t, "松宁村")?.unwrap();
            let k = tx.kiosk_id(v, "松宁村便民服务室")?.unwrap();
            tx.set_kiosk_state(k, Some(now), true, Some(now + 86_400_000))?;
            let v2 = tx.village_id(t, "古城社区")?.unwrap();
            let k2 = tx.kiosk_id(v2, "古城社区便民服务室")?.unwrap();
            tx.set_device_token(k2, &"ab".repeat(32), None, false)?;
            Ok(())
        })
        .unwrap();
        let text = export_region(&db).unwrap();
        assert!(text.contains("must_change_password = true"), "{text}");
        assert!(text.contains("enrolled = false"), "{text}");
        assert!(text.contains(&format!("token_expires_at_ms = {}", now + 86_400_000)), "{text}");

        let copy = Db::open_in_memory().unwrap();
        import_str(&copy, &text).unwrap();
        assert_eq!(copy.region_dump().unwrap(), db.region_dump().unwrap());
        assert_eq!(export_region(&copy).unwrap(), text);
        // The disabled approver cannot log in; the kiosk disabled there is refused.
        assert!(auth::login(&copy, &crate::auth::test_permit(), "zhaohua-minzheng", "cunneng-demo", 0, 1).is_err());
        let dump = copy.region_dump().unwrap();
        let chief = dump.accounts.iter().find(|a| a.username == "zhaohua-chief").unwrap();
        assert!(chief.must_change_password && !chief.disabled);
        assert_eq!(dump.kiosks.iter().filter(|k| k.disabled).count(), 1);
        assert_eq!(dump.kiosks.iter().filter(|k| !k.enrolled).count(), 1);

        // Listed again without the flags: enabled, no forced change, enrolled (the file is the
        // truth for what it lists).
        let plain = text
            .replace("disabled = true\n", "")
            .replace("must_change_password = true\n", "")
            .replace("enrolled = false\n", "");
        import_str(&copy, &plain).unwrap();
        let dump = copy.region_dump().unwrap();
        assert!(dump.accounts.iter().all(|a| !a.disabled && !a.must_change_password));
        assert!(dump.kiosks.iter().all(|k| !k.disabled && k.enrolled));

        // A plain token cannot be "not enrolled".
        let bad = format!("{}\nenrolled = false\n", SMALL.trim_end());
        let e = import_str(&Db::open_in_memory().unwrap(), &bad).unwrap_err().to_string();
        assert!(e.contains("`enrolled = false` goes with `token_hash` only"), "{e}");
    }

    #[test]
    fn demo_imports_with_expected_counts() {
        let db = Db::open_in_memory().unwrap();
        let s = import_demo(&db).unwrap();
        assert_eq!(s.towns, Tally { created: 3, updated: 0 });
        assert_eq!(s.villages.created, 9);
        assert_eq!(s.windows.created, 9);
        assert_eq!(s.matters.created, 16);
        assert_eq!(s.accounts.created, 18);
        assert_eq!(s.kiosks.created, 9);
        // Each standard window takes the matters of its kind in each of the 3 towns.
        assert_eq!(s.window_matters, 3 * 16);
        let c = db.counts().unwrap();
        assert_eq!((c.towns, c.villages, c.windows, c.matters, c.kiosks, c.users), (3, 9, 9, 16, 9, 18));
        assert_eq!(db.county().unwrap().unwrap().name, "广元市昭化区");
        assert!(s.to_string().starts_with("towns 3 (3 new), villages 9 (9 new)"), "{s}");

        // Shape of the region: every town has the three standard windows, approvers at each,
        // a chief and a dispatcher; one kiosk per village.
        let t = db.topology().unwrap();
        for town in &t.towns {
            let kinds: HashSet<_> = t.windows.iter().filter(|w| w.town_id == town.id).map(|w| w.kind).collect();
            assert_eq!(kinds, WindowKind::STANDARD.into_iter().collect::<HashSet<_>>());
            for w in t.windows.iter().filter(|w| w.town_id == town.id) {
                assert!(t.approvers.iter().any(|a| a.window_id == Some(w.id)), "{}", w.name);
            }
            assert!(t.chiefs.iter().any(|c| c.town_id == town.id));
            assert!(t.dispatchers.iter().any(|d| d.town_id == town.id));
        }
        assert!(t.towns.iter().any(|t| t.name == "元坝镇" && t.any_window));
        for v in &t.villages {
            assert_eq!(t.kiosks.iter().filter(|k| k.village_id == v.id).count(), 1, "{}", v.name);
        }
        let catalog = db.matters_all(None).unwrap();
        assert!(catalog.iter().filter(|m| m.needs_signoff).count() >= 3);
        assert!(catalog.iter().filter(|m| m.village_can_finish).count() >= 3);
        for plain in ["我要修房子", "我要办保险", "老年优待证", "申请低保", "残疾人补贴"] {
            assert!(catalog.iter().any(|m| m.plain_name == plain), "{plain}");
        }
    }

    #[test]
    fn demo_catalog_search_and_windows() {
        let db = demo_db();
        let zhaohua = db.towns().unwrap().into_iter().find(|t| t.name == "昭化镇").unwrap();
        let found = db.matters_for_town(Some(zhaohua.id), Some("修房子")).unwrap();
        assert_eq!(found.iter().map(|m| m.plain_name.as_str()).collect::<Vec<_>>(), ["我要修房子", "危房改造"]);
        assert_eq!(found[0].window.as_ref().unwrap().name, "综合窗口");
        let insurance = db.matters_for_town(Some(zhaohua.id), Some("城乡居民养老保险")).unwrap();
        assert!(insurance.iter().all(|m| m.window.as_ref().unwrap().name == "社保窗口"));
        // Exact matches first, then those whose keyword (保险) the query contains.
        assert_eq!(
            insurance.iter().map(|m| m.plain_name.as_str()).collect::<Vec<_>>(),
            ["我要办保险", "我要领养老金", "我要缴费"]
        );
        let low = db.matters_for_town(Some(zhaohua.id), Some("我要申请低保")).unwrap();
        assert_eq!(low[0].plain_name, "申请低保");
        let disabled = db.matters_for_town(Some(zhaohua.id), Some("残疾人补贴")).unwrap();
        assert_eq!(disabled[0].plain_name, "残疾人补贴");
        let old = db.matters_for_town(Some(zhaohua.id), Some("老年优待证")).unwrap();
        assert_eq!(old[0].window.as_ref().unwrap().name, "民政窗口");
        assert_eq!(old[0].required_papers, ["身份证", "户口簿", "一寸免冠照片"]);
        assert_eq!(db.matters_for_town(Some(zhaohua.id), None).unwrap().len(), 16);
    }

    #[test]
    fn demo_links_and_logins_work() {
        let db = demo_db();
        let links = demo_links(DEMO_TOML, "https://127.0.0.1:8443/");
        assert_eq!(links.iter().filter(|l| l.0 == "kiosk").count(), 9);
        assert_eq!(links.iter().filter(|l| l.0 == "window").count(), 9);
        for role in ["chief", "dispatcher"] {
            assert_eq!(links.iter().filter(|l| l.0 == role).count(), 3);
        }
        // The county's supervisor and 昭化镇's own.
        assert_eq!(links.iter().filter(|l| l.0 == "supervisor").count(), 2);
        assert_eq!(links.iter().filter(|l| l.0 == "admin").count(), 1);
        assert!(links.iter().all(|(_, name, _)| !name.contains(char::is_whitespace) && !name.is_empty()));
        let (_, name, url) = &links[0];
        assert_eq!(name, "松宁村便民服务室");
        assert_eq!(
            url,
            "https://127.0.0.1:8443/kiosk#token=84a0f35e1ae19b9e4a59a151084946d193737221e15cc890b588f9e01916bd9a"
        );
        let token = url.split("#token=").nth(1).unwrap();
        assert!(matches!(auth::resolve_token(&db, token, 0).unwrap(), Principal::Kiosk { .. }));

        let (_, name, url) = links.iter().find(|l| l.0 == "window").unwrap();
        assert_eq!(name, "李娟(昭化镇综合窗口)");
        assert_eq!(url, "https://127.0.0.1:8443/login#user=zhaohua-zonghe&password=cunneng-demo");
        let ok = auth::login(&db, &crate::auth::test_permit(), "zhaohua-zonghe", "cunneng-demo", 0, 1).unwrap();
        assert_eq!(ok.me.window.unwrap().name, "综合窗口");
        let admin = links.iter().find(|l| l.0 == "admin").unwrap();
        assert_eq!(admin.1, "杨帆");

        assert!(demo_links("not toml", "http://x").is_empty());
        assert_eq!(fragment_escape("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn import_is_idempotent() {
        let db = demo_db();
        let before = db.counts().unwrap();
        let topo = db.topology().unwrap();
        let session = auth::login(&db, &crate::auth::test_permit(), "admin", "cunneng-demo", 0, 12).unwrap();
        let s = import_demo(&db).unwrap();
        assert_eq!(s.towns, Tally { created: 0, updated: 3 });
        assert_eq!(s.accounts, Tally { created: 0, updated: 18 });
        assert_eq!(s.kiosks.created, 0);
        assert_eq!(db.counts().unwrap(), before);
        assert_eq!(db.topology().unwrap(), topo); // same ids, same links
        // Unchanged password: the session survives.
        auth::resolve_token(&db, &session.token, 1).unwrap();
    }

    const SMALL: &str = r#"
[county]
name = "测试县"
code = "CS"

[[towns]]
name = "甲镇"
villages = [{ name = "一村" }, { name = "二社区" }]
windows = [
    { name = "综合窗口" },
    { name = "民政窗口" },
    { name = "不动产窗口", kind = "custom", matters = ["BDC-1", "MZ-1"] },
]

[[matters]]
code = "MZ-1"
name = "老年人优待证办理"
plain_name = "老年优待证"
window = "civil_affairs"

[[matters]]
code = "BDC-1"
name = "不动产登记"
window = "custom"

[[accounts]]
username = "a1"
display_name = "甲"
role = "approver"
town = "甲镇"
window = "不动产窗口"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Q0hNd1N3cQ6yQpYw0fFjJ3Qyq7c5bH3rN0Qm2k6b8yM"

[[kiosks]]
town = "甲镇"
village = "一村"
token = "0123456789abcdef0123"
"#;

    #[test]
    fn custom_windows_inferred_kinds_and_defaults() {
        let db = Db::open_in_memory().unwrap();
        let s = import_str(&db, SMALL).unwrap();
        assert_eq!((s.towns.created, s.windows.created, s.kiosks.created), (1, 3, 1));
        let town = db.towns().unwrap()[0].clone();
        let ws = db.windows_of_town(town.id).unwrap();
        assert_eq!(
            ws.iter().map(|w| w.kind).collect::<Vec<_>>(),
            [WindowKind::Comprehensive, WindowKind::CivilAffairs, WindowKind::Custom]
        );
        let t = db.topology().unwrap();
        let custom = t.windows.iter().find(|w| w.name == "不动产窗口").unwrap();
        assert_eq!(custom.accepts.len(), 2);
        let mz = t.windows.iter().find(|w| w.name == "民政窗口").unwrap();
        assert_eq!(mz.accepts.len(), 1);
        assert!(t.windows.iter().find(|w| w.name == "综合窗口").unwrap().accepts.is_empty());
        // Listed explicitly and of its kind: 民政窗口 wins for 老年优待证.
        let m = db.matters_for_town(Some(town.id), Some("优待")).unwrap();
        assert_eq!(m[0].window.as_ref().unwrap().name, "民政窗口");
        assert_eq!(m[0].plain_name, "老年优待证");
        let b = db.matters_for_town(Some(town.id), Some("不动产")).unwrap();
        assert_eq!(
            (b[0].plain_name.as_str(), b[0].window.as_ref().unwrap().name.as_str()),
            ("不动产登记", "不动产窗口")
        );
        let v = db.villages_of_town(town.id).unwrap();
        assert_eq!(v[1].kind, VillageKind::Community);
        assert_eq!(db.kiosks_of_village(v[0].id).unwrap()[0].name, "一村便民服务室");
        assert!(matches!(auth::resolve_token(&db, "0123456789abcdef0123", 0).unwrap(), Principal::Kiosk { .. }));
    }

    #[test]
    fn partial_import_refers_to_stored_region() {
        let db = demo_db();
        let s = import_str(
            &db,
            r#"
[[matters]]
code = "MZ-099"
name = "殡葬补助申领"
plain_name = "丧葬补助"
department = "区民政局"
window = "civil_affairs"

[[accounts]]
username = "zhaohua-minzheng-2"
display_name = "新人"
role = "approver"
town = "昭化镇"
window = "民政窗口"
password = "another-demo"
"#,
        )
        .unwrap();
        assert_eq!((s.matters.created, s.accounts.created), (1, 1));
        // The new matter reaches the stored civil-affairs windows of every town.
        for t in db.towns().unwrap() {
            let m = db.matters_for_town(Some(t.id), Some("丧葬")).unwrap();
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].window.as_ref().unwrap().name, "民政窗口");
        }
    }

    #[test]
    fn documented_example_imports() {
        let doc = include_str!("../../docs/import-format.md");
        let start = doc.find("## Example").unwrap();
        let block = &doc[start..];
        let block = &block[block.find("```toml\n").unwrap() + 8..];
        let block = &block[..block.find("```").unwrap()];
        let db = Db::open_in_memory().unwrap();
        let s = import_str(&db, block).unwrap();
        assert_eq!((s.towns.created, s.villages.created, s.windows.created), (1, 2, 3));
        assert_eq!((s.matters.created, s.accounts.created, s.kiosks.created), (1, 1, 1));
        let town = db.towns().unwrap()[0].id;
        assert_eq!(db.villages_of_town(town).unwrap()[1].kind, VillageKind::Community);
        let m = db.matters_for_town(Some(town), Some("老年优待证")).unwrap();
        assert_eq!(m[0].window.as_ref().unwrap().name, "民政窗口");
    }

    fn refused(db: &Db, text: &str) -> String {
        let before = db.counts().unwrap();
        let county = db.county().unwrap();
        let e = import_str(db, text).unwrap_err();
        assert!(matches!(e, DataError::Invalid(_)), "{e:?}");
        assert_eq!(db.counts().unwrap(), before, "something was written");
        assert_eq!(db.county().unwrap(), county, "county was written");
        e.to_string()
    }

    #[test]
    fn a_supervisor_may_be_limited_to_a_town() {
        let db = Db::open_in_memory().unwrap();
        import_str(&db, SMALL).unwrap();
        let town_sup = "[[accounts]]\nusername = \"ts\"\ndisplay_name = \"镇督查\"\nrole = \"supervisor\"\n\
                        town = \"甲镇\"\npassword = \"long-enough-pw\"\n";
        import_str(&db, town_sup).unwrap();
        let p = crate::auth::login(&db, &crate::auth::test_permit(), "ts", "long-enough-pw", 0, 1).unwrap().principal;
        assert!(matches!(p, Principal::Staff { role: Role::Supervisor, town_id: Some(_), .. }));
        assert!(!p.is_county_wide());
        let e = refused(&db, &town_sup.replace("town = \"甲镇\"", "town = \"甲镇\"\nwindow = \"民政窗口\""));
        assert!(e.contains("a supervisor reviews a town or the county: remove `window`"), "{e}");
        let admin = town_sup.replace("supervisor", "admin").replace("\"ts\"", "\"ad\"");
        let e = refused(&db, &admin);
        assert!(e.contains("an admin is county-wide"), "{e}");
    }

    #[test]
    fn bad_files_are_refused_whole() {
        let db = Db::open_in_memory().unwrap();
        let bad_ref = SMALL.replace("window = \"不动产窗口\"", "window = \"社保窗口\"");
        let e = refused(&db, &bad_ref);
        assert!(e.contains("account `a1`: town `甲镇` has no window `社保窗口`"), "{e}");

        let e = refused(&db, &SMALL.replace("town = \"甲镇\"\nvillage", "town = \"乙镇\"\nvillage"));
        assert!(e.contains("unknown town `乙镇`"), "{e}");

        let e = refused(
            &db,
            &format!(
                "{SMALL}\n[[accounts]]\nusername = \"a1\"\ndisplay_name = \"x\"\nrole = \"admin\"\npassword = \"long enough\"\n"
            ),
        );
        assert!(e.contains("account `a1`: username listed twice"), "{e}");

        let e = refused(&db, &SMALL.replace("display_name = \"甲\"", "display_name = \" \""));
        assert!(e.contains("account `a1`: empty display_name"), "{e}");

        let e = refused(&db, &SMALL.replace("role = \"approver\"", "role = \"boss\""));
        assert!(e.contains("account `a1`: unknown role `boss`"), "{e}");

        let e = refused(&db, &SMALL.replace("name = \"测试县\"", "name = \"\""));
        assert!(e.contains("county: empty name"), "{e}");

        let e = refused(&db, &SMALL.replace("\"BDC-1\", \"MZ-1\"", "\"BDC-1\", \"NOPE\""));
        assert!(e.contains("window `不动产窗口`: unknown matter code `NOPE`"), "{e}");

        let e = refused(&db, &SMALL.replace("{ name = \"二社区\" }", "{ name = \"一村\" }"));
        assert!(e.contains("village `一村` listed twice"), "{e}");

        let e = refused(&db, &SMALL.replace("token = \"0123456789abcdef0123\"", "token = \"short\""));
        assert!(e.contains("token must be"), "{e}");

        let e = refused(&db, &SMALL.replace("password_hash = \"$argon2id", "password_hash = \"$plain"));
        assert!(e.contains("password_hash is not an argon2"), "{e}");

        let e = refused(&db, &SMALL.replace("{ name = \"综合窗口\" }", "{ name = \"便民窗口\" }"));
        assert!(e.contains("window `便民窗口`: no kind"), "{e}");

        let e = refused(&db, &SMALL.replace("window = \"custom\"", "window = \"other\""));
        assert!(e.contains("unknown variant `other`"), "{e}");

        let e = refused(&db, &SMALL.replace("[county]", "[country]"));
        assert!(e.contains("unknown field `country`"), "{e}");

        let e = refused(&db, "[[towns]]\nname = \"甲镇\"\n");
        assert!(e.contains("no [county]"), "{e}");

        // Several problems are reported together.
        let e = refused(
            &db,
            &SMALL.replace("role = \"approver\"", "role = \"boss\"").replace("name = \"测试县\"", "name = \"\""),
        );
        assert!(e.contains("unknown role") && e.contains("county: empty name"), "{e}");

        // And after all that, the good file still goes in.
        import_str(&db, SMALL).unwrap();
    }

    #[test]
    fn token_of_another_stored_kiosk_is_refused() {
        let db = Db::open_in_memory().unwrap();
        import_str(&db, SMALL).unwrap();
        let moved = SMALL.replace("village = \"一村\"\ntoken", "village = \"二社区\"\ntoken");
        let e = refused(&db, &moved);
        assert!(e.contains("already used by another kiosk"), "{e}");
        // Same kiosk, new token: fine, and the old token stops working.
        import_str(&db, &SMALL.replace("0123456789abcdef0123", "fedcba9876543210fedc")).unwrap();
        assert!(auth::resolve_token(&db, "0123456789abcdef0123", 0).unwrap_err().is_unauthorized());
        auth::resolve_token(&db, "fedcba9876543210fedc", 0).unwrap();
    }
}
