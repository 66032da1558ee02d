//! Administration of the region and the matter catalog as stored: the admin page's view of
//! everything (disabled items included), and the writes inside [`Db::write`]: create, edit,
//! disable/enable, and delete where nothing refers to the item. The rules (what a valid name
//! is, what the running queue must be told) are `service::admin`.

use rusqlite::{OptionalExtension, params};

use super::region::{VillageKind, WindowKind, window_kind_col};
use super::{DataError, Db, Tx, bad_text, row_ms, sql_ms};

/// The region and catalog items the administrator edits here (accounts and devices are
/// `db::accounts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionItem {
    Town,
    Village,
    Window,
    Matter,
}

impl RegionItem {
    fn table(self) -> &'static str {
        match self {
            RegionItem::Town => "towns",
            RegionItem::Village => "villages",
            RegionItem::Window => "windows",
            RegionItem::Matter => "matters",
        }
    }

    /// The item's name in messages to the administrator.
    pub fn word(self) -> &'static str {
        match self {
            RegionItem::Town => "乡镇",
            RegionItem::Village => "村/社区",
            RegionItem::Window => "窗口",
            RegionItem::Matter => "事项",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdminTown {
    pub id: i64,
    pub name: String,
    pub any_window: bool,
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdminVillage {
    pub id: i64,
    pub town_id: i64,
    pub name: String,
    pub kind: VillageKind,
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdminWindow {
    pub id: i64,
    pub town_id: i64,
    pub name: String,
    pub kind: WindowKind,
    /// The window takes the matters of its kind (kept so when matters are added).
    pub derive_matters: bool,
    pub matter_ids: Vec<i64>,
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdminMatter {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub plain_name: String,
    pub department: String,
    pub window_kind: WindowKind,
    pub required_papers: Vec<String>,
    pub needs_signoff: bool,
    pub village_can_finish: bool,
    /// Search words.
    pub keywords: Vec<String>,
    pub disabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdminCounty {
    pub name: String,
    pub code: String,
}

/// Everything the admin page shows of the region and the catalog.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdminRegion {
    pub county: Option<AdminCounty>,
    pub towns: Vec<AdminTown>,
    pub villages: Vec<AdminVillage>,
    pub windows: Vec<AdminWindow>,
    pub matters: Vec<AdminMatter>,
}

/// A town's editable fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TownEdit {
    pub name: String,
    pub any_window: bool,
}

/// A village's editable fields (its town is fixed once created: its history belongs there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VillageEdit {
    pub name: String,
    pub kind: VillageKind,
}

/// A window's editable fields (its town is fixed once created).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowEdit {
    pub name: String,
    pub kind: WindowKind,
    pub derive_matters: bool,
    /// Used when `derive_matters` is false.
    pub matter_ids: Vec<i64>,
}

/// A matter's editable fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatterEdit {
    pub code: String,
    pub name: String,
    pub plain_name: String,
    pub department: String,
    pub window_kind: WindowKind,
    pub required_papers: Vec<String>,
    pub needs_signoff: bool,
    pub village_can_finish: bool,
    pub keywords: String,
}

/// What still refers to an item, in the administrator's words (`3 个案件`), for a refused delete.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct References(pub Vec<(&'static str, i64)>);

impl References {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `3 个案件、1 个窗口`.
    pub fn text(&self) -> String {
        self.0.iter().map(|(what, n)| format!("{n} 个{what}")).collect::<Vec<_>>().join("、")
    }
}

fn disabled(v: Option<i64>) -> bool {
    v.is_some()
}

fn unique_clash(e: rusqlite::Error, what: &str) -> DataError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            DataError::Conflict(what.to_owned())
        }
        rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
            DataError::Conflict("仍被其他记录引用 (still referred to)".to_owned())
        }
        _ => DataError::Sqlite(e),
    }
}

fn window_matters_of(conn: &rusqlite::Connection) -> Result<std::collections::HashMap<i64, Vec<i64>>, DataError> {
    let mut st = conn.prepare("SELECT window_id, matter_id FROM window_matters ORDER BY window_id, matter_id")?;
    let mut map: std::collections::HashMap<i64, Vec<i64>> = std::collections::HashMap::new();
    for row in st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))? {
        let (w, m) = row?;
        map.entry(w).or_default().push(m);
    }
    Ok(map)
}

fn read_region(conn: &rusqlite::Connection) -> Result<AdminRegion, DataError> {
    let county = conn
        .query_row("SELECT name, code FROM county WHERE id = 1", [], |r| {
            Ok(AdminCounty { name: r.get(0)?, code: r.get(1)? })
        })
        .optional()?;
    let towns = conn
        .prepare("SELECT id, name, any_window, disabled_at_ms FROM towns ORDER BY id")?
        .query_map([], |r| {
            Ok(AdminTown { id: r.get(0)?, name: r.get(1)?, any_window: r.get(2)?, disabled: disabled(r.get(3)?) })
        })?
        .collect::<Result<_, _>>()?;
    let villages = conn
        .prepare("SELECT id, town_id, name, kind, disabled_at_ms FROM villages ORDER BY town_id, id")?
        .query_map([], |r| {
            let kind: String = r.get(3)?;
            Ok(AdminVillage {
                id: r.get(0)?,
                town_id: r.get(1)?,
                name: r.get(2)?,
                kind: VillageKind::parse(&kind).ok_or_else(|| bad_text("village kind", &kind))?,
                disabled: disabled(r.get(4)?),
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut matters_of = window_matters_of(conn)?;
    let windows = conn
        .prepare("SELECT id, town_id, name, kind, derive_matters, disabled_at_ms FROM windows ORDER BY town_id, id")?
        .query_map([], |r| {
            Ok(AdminWindow {
                id: r.get(0)?,
                town_id: r.get(1)?,
                name: r.get(2)?,
                kind: window_kind_col(r.get(3)?)?,
                derive_matters: r.get(4)?,
                matter_ids: Vec::new(),
                disabled: disabled(r.get(5)?),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|mut w| {
            w.matter_ids = matters_of.remove(&w.id).unwrap_or_default();
            w
        })
        .collect();
    let matters = conn
        .prepare(
            "SELECT id, code, name, plain_name, department, window_kind, required_papers, needs_signoff,
                    village_can_finish, keywords, disabled_at_ms FROM matters ORDER BY id",
        )?
        .query_map([], |r| {
            let papers: String = r.get(6)?;
            Ok((
                AdminMatter {
                    id: r.get(0)?,
                    code: r.get(1)?,
                    name: r.get(2)?,
                    plain_name: r.get(3)?,
                    department: r.get(4)?,
                    window_kind: window_kind_col(r.get(5)?)?,
                    required_papers: Vec::new(),
                    needs_signoff: r.get(7)?,
                    village_can_finish: r.get(8)?,
                    keywords: r.get::<_, String>(9)?.split_whitespace().map(str::to_string).collect(),
                    disabled: disabled(r.get(10)?),
                },
                papers,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|(mut m, papers)| {
            m.required_papers = serde_json::from_str(&papers)?;
            Ok(m)
        })
        .collect::<Result<_, DataError>>()?;
    Ok(AdminRegion { county, towns, villages, windows, matters })
}

impl Db {
    /// The region and catalog as the admin page shows them, disabled items included.
    pub fn admin_region(&self) -> Result<AdminRegion, DataError> {
        read_region(&self.conn())
    }

    /// When an item was disabled (`Ok(None)`: enabled; `NotFound`: no such item).
    pub fn disabled_at(&self, item: RegionItem, id: i64) -> Result<Option<u64>, DataError> {
        disabled_at(&self.conn(), item, id)
    }
}

fn disabled_at(conn: &rusqlite::Connection, item: RegionItem, id: i64) -> Result<Option<u64>, DataError> {
    let at: Option<Option<i64>> = conn
        .query_row(&format!("SELECT disabled_at_ms FROM {} WHERE id = ?1", item.table()), [id], |r| r.get(0))
        .optional()?;
    match at {
        None => Err(DataError::NotFound(format!("{} {id}", item.table()))),
        Some(at) => Ok(at.map(row_ms)),
    }
}

impl Tx<'_> {
    /// The region as it stands inside this transaction.
    pub fn admin_region(&self) -> Result<AdminRegion, DataError> {
        read_region(self.tx)
    }

    pub fn disabled_at(&self, item: RegionItem, id: i64) -> Result<Option<u64>, DataError> {
        disabled_at(self.tx, item, id)
    }

    fn exists(&self, item: RegionItem, id: i64) -> Result<(), DataError> {
        self.disabled_at(item, id).map(drop)
    }

    pub fn create_town(&self, t: &TownEdit) -> Result<i64, DataError> {
        self.tx
            .execute("INSERT INTO towns (name, any_window) VALUES (?1, ?2)", params![t.name, t.any_window])
            .map_err(|e| unique_clash(e, "已有同名乡镇 (a town of that name exists)"))?;
        Ok(self.tx.last_insert_rowid())
    }

    pub fn update_town(&self, id: i64, t: &TownEdit) -> Result<(), DataError> {
        self.exists(RegionItem::Town, id)?;
        self.tx
            .execute("UPDATE towns SET name = ?2, any_window = ?3 WHERE id = ?1", params![id, t.name, t.any_window])
            .map_err(|e| unique_clash(e, "已有同名乡镇 (a town of that name exists)"))?;
        Ok(())
    }

    pub fn create_village(&self, town_id: i64, v: &VillageEdit) -> Result<i64, DataError> {
        self.exists(RegionItem::Town, town_id)?;
        self.tx
            .execute(
                "INSERT INTO villages (town_id, name, kind) VALUES (?1, ?2, ?3)",
                params![town_id, v.name, v.kind.as_str()],
            )
            .map_err(|e| unique_clash(e, "本乡镇已有同名村/社区 (a village of that name exists in the town)"))?;
        Ok(self.tx.last_insert_rowid())
    }

    pub fn update_village(&self, id: i64, v: &VillageEdit) -> Result<(), DataError> {
        self.exists(RegionItem::Village, id)?;
        self.tx
            .execute("UPDATE villages SET name = ?2, kind = ?3 WHERE id = ?1", params![id, v.name, v.kind.as_str()])
            .map_err(|e| unique_clash(e, "本乡镇已有同名村/社区 (a village of that name exists in the town)"))?;
        Ok(())
    }

    pub fn create_window(&self, town_id: i64, w: &WindowEdit) -> Result<i64, DataError> {
        self.exists(RegionItem::Town, town_id)?;
        self.tx
            .execute(
                "INSERT INTO windows (town_id, name, kind, derive_matters) VALUES (?1, ?2, ?3, ?4)",
                params![town_id, w.name, w.kind.as_str(), w.derive_matters],
            )
            .map_err(|e| unique_clash(e, "本乡镇已有同名窗口 (a window of that name exists in the town)"))?;
        let id = self.tx.last_insert_rowid();
        self.window_matters(id, w)?;
        Ok(id)
    }

    pub fn update_window(&self, id: i64, w: &WindowEdit) -> Result<(), DataError> {
        self.exists(RegionItem::Window, id)?;
        self.tx
            .execute(
                "UPDATE windows SET name = ?2, kind = ?3, derive_matters = ?4 WHERE id = ?1",
                params![id, w.name, w.kind.as_str(), w.derive_matters],
            )
            .map_err(|e| unique_clash(e, "本乡镇已有同名窗口 (a window of that name exists in the town)"))?;
        self.window_matters(id, w)
    }

    fn window_matters(&self, id: i64, w: &WindowEdit) -> Result<(), DataError> {
        if w.derive_matters {
            self.derive_window_matters()
        } else {
            for m in &w.matter_ids {
                self.exists(RegionItem::Matter, *m)?;
            }
            self.set_window_matters(id, &w.matter_ids)
        }
    }

    pub fn create_matter(&self, m: &MatterEdit) -> Result<i64, DataError> {
        self.tx
            .execute(
                "INSERT INTO matters (code, name, plain_name, department, window_kind, required_papers,
                                      needs_signoff, village_can_finish, keywords)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    m.code,
                    m.name,
                    m.plain_name,
                    m.department,
                    m.window_kind.as_str(),
                    serde_json::to_string(&m.required_papers)?,
                    m.needs_signoff,
                    m.village_can_finish,
                    m.keywords
                ],
            )
            .map_err(|e| unique_clash(e, "已有相同编码的事项 (a matter with that code exists)"))?;
        let id = self.tx.last_insert_rowid();
        self.derive_window_matters()?;
        Ok(id)
    }

    pub fn update_matter(&self, id: i64, m: &MatterEdit) -> Result<(), DataError> {
        self.exists(RegionItem::Matter, id)?;
        self.tx
            .execute(
                "UPDATE matters SET code = ?2, name = ?3, plain_name = ?4, department = ?5, window_kind = ?6,
                        required_papers = ?7, needs_signoff = ?8, village_can_finish = ?9, keywords = ?10
                 WHERE id = ?1",
                params![
                    id,
                    m.code,
                    m.name,
                    m.plain_name,
                    m.department,
                    m.window_kind.as_str(),
                    serde_json::to_string(&m.required_papers)?,
                    m.needs_signoff,
                    m.village_can_finish,
                    m.keywords
                ],
            )
            .map_err(|e| unique_clash(e, "已有相同编码的事项 (a matter with that code exists)"))?;
        // A matter moved to another window kind moves between the windows that follow kinds.
        self.derive_window_matters()
    }

    /// Disable (`Some(now)`) or enable (`None`) an item. Returns whether anything changed.
    pub fn set_disabled(&self, item: RegionItem, id: i64, at_ms: Option<u64>) -> Result<bool, DataError> {
        let was = self.disabled_at(item, id)?;
        if was.is_some() == at_ms.is_some() {
            return Ok(false);
        }
        self.tx.execute(
            &format!("UPDATE {} SET disabled_at_ms = ?2 WHERE id = ?1", item.table()),
            params![id, at_ms.map(sql_ms)],
        )?;
        Ok(true)
    }

    /// What refers to an item (none: it may be deleted).
    pub fn references(&self, item: RegionItem, id: i64) -> Result<References, DataError> {
        self.exists(item, id)?;
        let checks: &[(&'static str, &str)] = match item {
            RegionItem::Town => &[
                ("村/社区", "SELECT count(*) FROM villages WHERE town_id = ?1"),
                ("窗口", "SELECT count(*) FROM windows WHERE town_id = ?1"),
                ("工作人员账号", "SELECT count(*) FROM users WHERE town_id = ?1"),
            ],
            RegionItem::Village => &[
                ("便民服务室设备", "SELECT count(*) FROM kiosks WHERE village_id = ?1"),
                ("案件", "SELECT count(*) FROM cases WHERE village_id = ?1"),
                ("预约", "SELECT count(*) FROM bookings WHERE village_id = ?1"),
                ("回执消息", "SELECT count(*) FROM inbox WHERE village_id = ?1"),
            ],
            RegionItem::Window => &[
                ("工作人员账号", "SELECT count(*) FROM users WHERE window_id = ?1"),
                ("通话", "SELECT count(*) FROM calls WHERE window_id = ?1"),
                ("预约", "SELECT count(*) FROM bookings WHERE window_id = ?1"),
            ],
            RegionItem::Matter => &[
                ("案件", "SELECT count(*) FROM cases WHERE matter_id = ?1"),
                ("预约", "SELECT count(*) FROM bookings WHERE matter_id = ?1"),
            ],
        };
        let mut refs = References::default();
        for (what, sql) in checks {
            let n: i64 = self.tx.query_row(sql, [id], |r| r.get(0))?;
            if n > 0 {
                refs.0.push((what, n));
            }
        }
        Ok(refs)
    }

    /// Delete an item nothing refers to (`Conflict` naming what does, otherwise).
    pub fn delete_item(&self, item: RegionItem, id: i64) -> Result<(), DataError> {
        let refs = self.references(item, id)?;
        if !refs.is_empty() {
            return Err(DataError::Conflict(format!(
                "该{}仍被 {} 引用,不能删除;请改为停用 (still referred to: disable it instead)",
                item.word(),
                refs.text()
            )));
        }
        self.tx
            .execute(&format!("DELETE FROM {} WHERE id = ?1", item.table()), [id])
            .map_err(|e| unique_clash(e, "仍被其他记录引用 (still referred to)"))?;
        Ok(())
    }

    /// Token hashes of the kiosks whose sockets must close when `item` is disabled (the kiosks
    /// of a village, or of a town's villages).
    pub fn kiosk_tokens_under(&self, item: RegionItem, id: i64) -> Result<Vec<String>, DataError> {
        let sql = match item {
            RegionItem::Village => "SELECT token_hash FROM kiosks WHERE village_id = ?1",
            RegionItem::Town => {
                "SELECT k.token_hash FROM kiosks k JOIN villages v ON v.id = k.village_id WHERE v.town_id = ?1"
            }
            RegionItem::Window | RegionItem::Matter => return Ok(Vec::new()),
        };
        let mut st = self.tx.prepare(sql)?;
        Ok(st.query_map([id], |r| r.get(0))?.collect::<Result<_, _>>()?)
    }

    /// Session token hashes of the town's staff (their sockets close when the town is disabled).
    pub fn staff_sessions_of_town(&self, town_id: i64) -> Result<Vec<String>, DataError> {
        let mut st = self
            .tx
            .prepare("SELECT s.token_hash FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.town_id = ?1")?;
        Ok(st.query_map([town_id], |r| r.get(0))?.collect::<Result<_, _>>()?)
    }

    /// Session token hashes of the staff at a window (approvers, a chief tied to it).
    pub fn staff_sessions_of_window(&self, window_id: i64) -> Result<Vec<String>, DataError> {
        let mut st = self
            .tx
            .prepare("SELECT s.token_hash FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.window_id = ?1")?;
        Ok(st.query_map([window_id], |r| r.get(0))?.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn town(name: &str) -> TownEdit {
        TownEdit { name: name.into(), any_window: false }
    }

    fn window(name: &str, derive: bool, ids: Vec<i64>) -> WindowEdit {
        WindowEdit { name: name.into(), kind: WindowKind::Comprehensive, derive_matters: derive, matter_ids: ids }
    }

    fn matter(code: &str, kind: WindowKind) -> MatterEdit {
        MatterEdit {
            code: code.into(),
            name: format!("{code} 申请"),
            plain_name: code.into(),
            department: String::new(),
            window_kind: kind,
            required_papers: vec!["身份证".into()],
            needs_signoff: false,
            village_can_finish: false,
            keywords: String::new(),
        }
    }

    /// A town with a village (and its kiosk, token hash `hash-1`), a matter and a window
    /// taking the matters of its kind: (town, village, window, matter).
    fn region(db: &Db) -> (i64, i64, i64, i64) {
        db.write(|tx| {
            let t = tx.create_town(&town("甲镇"))?;
            let v = tx.create_village(t, &VillageEdit { name: "一村".into(), kind: VillageKind::Village })?;
            let m = tx.create_matter(&matter("M1", WindowKind::Comprehensive))?;
            let w = tx.create_window(t, &window("综合窗口", true, vec![]))?;
            tx.upsert_kiosk(v, "一村便民服务室", "hash-1")?;
            Ok((t, v, w, m))
        })
        .unwrap()
    }

    #[test]
    fn create_edit_and_read_back() {
        let db = Db::open_in_memory().unwrap();
        let (t, v, w, m) = region(&db);
        let r = db.admin_region().unwrap();
        assert_eq!(r.towns, vec![AdminTown { id: t, name: "甲镇".into(), any_window: false, disabled: false }]);
        assert_eq!(r.villages[0].id, v);
        // A deriving window takes the matters of its kind, also those added later.
        assert_eq!(r.windows[0].matter_ids, vec![m]);
        let m2 = db.write(|tx| tx.create_matter(&matter("M2", WindowKind::Comprehensive))).unwrap();
        let m3 = db.write(|tx| tx.create_matter(&matter("M3", WindowKind::CivilAffairs))).unwrap();
        assert_eq!(db.admin_region().unwrap().windows[0].matter_ids, vec![m, m2]);
        // An explicit list is kept as given; a matter moved to another kind leaves deriving windows.
        db.write(|tx| tx.update_window(w, &window("综合窗口", false, vec![m3]))).unwrap();
        assert_eq!(db.admin_region().unwrap().windows[0].matter_ids, vec![m3]);
        db.write(|tx| tx.update_window(w, &window("综合窗口", true, vec![]))).unwrap();
        db.write(|tx| tx.update_matter(m2, &matter("M2", WindowKind::SocialSecurity))).unwrap();
        assert_eq!(db.admin_region().unwrap().windows[0].matter_ids, vec![m]);
        // Unknown ids and duplicates.
        assert!(db.write(|tx| tx.update_town(999, &town("x"))).unwrap_err().is_not_found());
        assert!(matches!(db.write(|tx| tx.create_town(&town("甲镇"))), Err(DataError::Conflict(_))));
        assert!(matches!(
            db.write(|tx| tx.create_matter(&matter("M1", WindowKind::Custom))),
            Err(DataError::Conflict(_))
        ));
        assert!(
            db.write(|tx| tx.create_village(999, &VillageEdit { name: "x".into(), kind: VillageKind::Village }))
                .unwrap_err()
                .is_not_found()
        );
        assert!(db.write(|tx| tx.create_window(t, &window("w2", false, vec![12345]))).unwrap_err().is_not_found());
    }

    #[test]
    fn disabled_items_leave_the_topology_and_the_offers() {
        let db = Db::open_in_memory().unwrap();
        let (t, v, w, m) = region(&db);
        assert_eq!(db.matters_for_town(Some(t), None).unwrap().len(), 1);
        assert!(db.write(|tx| tx.set_disabled(RegionItem::Matter, m, Some(5))).unwrap());
        assert!(!db.write(|tx| tx.set_disabled(RegionItem::Matter, m, Some(6))).unwrap(), "already disabled");
        assert_eq!(db.disabled_at(RegionItem::Matter, m).unwrap(), Some(5));
        assert!(db.matters_for_town(Some(t), None).unwrap().is_empty(), "a disabled matter is not offered");
        assert_eq!(db.topology().unwrap().matters.len(), 1, "but calls already placed for it are still routed");
        db.write(|tx| tx.set_disabled(RegionItem::Matter, m, None)).unwrap();

        db.write(|tx| tx.set_disabled(RegionItem::Window, w, Some(7))).unwrap();
        assert!(db.topology().unwrap().windows.is_empty());
        assert!(db.windows_of_town(t).unwrap().is_empty());
        db.write(|tx| tx.set_disabled(RegionItem::Window, w, None)).unwrap();

        assert!(db.kiosk_by_token_hash("hash-1", 0).unwrap().is_some());
        let tokens = db
            .write(|tx| {
                tx.set_disabled(RegionItem::Village, v, Some(8))?;
                tx.kiosk_tokens_under(RegionItem::Village, v)
            })
            .unwrap();
        assert_eq!(tokens, vec!["hash-1".to_string()]);
        assert!(db.kiosk_by_token_hash("hash-1", 0).unwrap().is_none(), "a disabled village's kiosk is refused");
        assert!(db.topology().unwrap().kiosks.is_empty());
        db.write(|tx| tx.set_disabled(RegionItem::Village, v, None)).unwrap();

        db.write(|tx| tx.set_disabled(RegionItem::Town, t, Some(9))).unwrap();
        let topo = db.topology().unwrap();
        assert!(topo.towns.is_empty() && topo.villages.is_empty() && topo.windows.is_empty() && topo.kiosks.is_empty());
        assert!(db.kiosk_by_token_hash("hash-1", 0).unwrap().is_none());
        assert!(db.matters_for_town(Some(t), None).unwrap().is_empty());
        // Still listed for the administrator, marked.
        assert!(db.admin_region().unwrap().towns[0].disabled);
    }

    #[test]
    fn delete_only_what_nothing_refers_to() {
        let db = Db::open_in_memory().unwrap();
        let (t, v, w, m) = region(&db);
        let refs = db.write(|tx| tx.references(RegionItem::Town, t)).unwrap();
        assert_eq!(refs.text(), "1 个村/社区、1 个窗口");
        match db.write(|tx| tx.delete_item(RegionItem::Village, v)) {
            Err(DataError::Conflict(msg)) => {
                assert!(msg.contains("1 个便民服务室设备") && msg.contains("停用"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
        // A window's matter list does not keep a matter: it cascades.
        db.write(|tx| tx.delete_item(RegionItem::Matter, m)).unwrap();
        assert!(db.admin_region().unwrap().windows[0].matter_ids.is_empty());
        db.write(|tx| tx.delete_item(RegionItem::Window, w)).unwrap();
        assert!(db.write(|tx| tx.delete_item(RegionItem::Window, w)).unwrap_err().is_not_found());
        assert!(db.admin_region().unwrap().windows.is_empty());
    }
}
