//! Administration of the region and the matter catalog (towns, villages, windows, matters):
//! the checks of every field, and one write transaction per change that also appends the change
//! to the audit record and checks that the queue can take the new topology. A change returns
//! the token hashes of the kiosks and staff it leaves without a place; the edge closes their
//! sockets and gives the running queue the new topology (`AppState::region_changed`), so that
//! it takes effect without a restart.

use serde_json::{Value, json};

use crate::audit::{AdminChange, AdminItem, AdminVerb};
use crate::case::EventActor;
use crate::db::{AdminRegion, DataError, Db, MatterEdit, RegionItem, TownEdit, Tx, VillageEdit, WindowEdit};
use crate::error::{Error, Rejection};
use crate::queue::{self, Queue};

/// Longest name of a town, village or window, and of a matter (characters).
pub const NAME_MAX_CHARS: usize = 64;
/// Longest official name of a matter.
pub const MATTER_NAME_MAX_CHARS: usize = 120;
/// Most required papers a matter lists, and the longest one.
pub const PAPERS_MAX: usize = 30;
pub const PAPER_MAX_CHARS: usize = 64;
/// Longest keyword list of a matter, and department name.
pub const KEYWORDS_MAX_CHARS: usize = 500;
pub const DEPARTMENT_MAX_CHARS: usize = 64;
/// Longest matter code (letters, digits, `-`, `_`).
pub const CODE_MAX_CHARS: usize = 32;
/// Most matters listed for one window.
pub const WINDOW_MATTERS_MAX: usize = 1000;

/// A name as the administrator typed it: trimmed, 1..=max characters, no control characters.
pub fn name(raw: &str, max: usize, what: &str) -> Result<String, Rejection> {
    let s = raw.trim();
    if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(Rejection::invalid(format!("请填写{what}(1 到 {max} 个字)({what}: 1 to {max} characters)")));
    }
    Ok(s.to_string())
}

fn optional_text(raw: &str, max: usize, what: &str) -> Result<String, Rejection> {
    let s = raw.trim();
    if s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(Rejection::invalid(format!("{what}过长或含有控制字符 ({what}: at most {max} characters)")));
    }
    Ok(s.to_string())
}

pub fn check_town(t: TownEdit) -> Result<TownEdit, Rejection> {
    Ok(TownEdit { name: name(&t.name, NAME_MAX_CHARS, "乡镇名称")?, any_window: t.any_window })
}

pub fn check_village(v: VillageEdit) -> Result<VillageEdit, Rejection> {
    Ok(VillageEdit { name: name(&v.name, NAME_MAX_CHARS, "村/社区名称")?, kind: v.kind })
}

pub fn check_window(w: WindowEdit) -> Result<WindowEdit, Rejection> {
    let mut ids = w.matter_ids;
    if ids.len() > WINDOW_MATTERS_MAX {
        return Err(Rejection::invalid(format!("一个窗口最多 {WINDOW_MATTERS_MAX} 个事项 (too many matters)")));
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(WindowEdit {
        name: name(&w.name, NAME_MAX_CHARS, "窗口名称")?,
        kind: w.kind,
        derive_matters: w.derive_matters,
        matter_ids: ids,
    })
}

pub fn check_matter(m: MatterEdit) -> Result<MatterEdit, Rejection> {
    let code = m.code.trim().to_string();
    if code.is_empty()
        || code.len() > CODE_MAX_CHARS
        || !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Rejection::invalid(format!(
            "事项编码只能用字母、数字、- 和 _,1 到 {CODE_MAX_CHARS} 个 (code: letters, digits, - and _)"
        )));
    }
    if m.required_papers.len() > PAPERS_MAX {
        return Err(Rejection::invalid(format!("所需材料最多 {PAPERS_MAX} 项 (too many required papers)")));
    }
    let mut papers = Vec::with_capacity(m.required_papers.len());
    for p in &m.required_papers {
        let p = name(p, PAPER_MAX_CHARS, "材料名称")?;
        if !papers.contains(&p) {
            papers.push(p);
        }
    }
    Ok(MatterEdit {
        code,
        name: name(&m.name, MATTER_NAME_MAX_CHARS, "事项名称")?,
        plain_name: name(&m.plain_name, NAME_MAX_CHARS, "通俗名称")?,
        department: optional_text(&m.department, DEPARTMENT_MAX_CHARS, "部门")?,
        window_kind: m.window_kind,
        required_papers: papers,
        needs_signoff: m.needs_signoff,
        village_can_finish: m.village_can_finish,
        keywords: optional_text(&m.keywords, KEYWORDS_MAX_CHARS, "关键词")?,
    })
}

fn audit_item(item: RegionItem) -> AdminItem {
    match item {
        RegionItem::Town => AdminItem::Town,
        RegionItem::Village => AdminItem::Village,
        RegionItem::Window => AdminItem::Window,
        RegionItem::Matter => AdminItem::Matter,
    }
}

/// A data error of an admin write as the administrator should read it.
fn refused(e: DataError) -> Error {
    match e {
        DataError::Conflict(m) if m.contains("请改为停用") => Rejection::conflict("in_use", m).into(),
        DataError::Conflict(m) => Rejection::conflict("duplicate", m).into(),
        DataError::NotFound(what) => Rejection::not_found(&what).into(),
        DataError::Invalid(m) => Rejection::invalid(m).into(),
        e => e.into(),
    }
}

/// The administration of the region: who changes it, and when.
pub struct RegionAdmin<'a> {
    pub db: &'a Db,
    pub by: EventActor,
    pub now_ms: u64,
}

/// One change: the write, the audit entry, the topology check, in one transaction.
type Change<T> = Box<dyn FnOnce(&Tx<'_>) -> Result<(T, AdminChange, Vec<String>), DataError> + Send>;

impl RegionAdmin<'_> {
    pub async fn region(&self) -> Result<AdminRegion, Error> {
        Ok(self.db.run(|db| db.admin_region()).await?)
    }

    /// Runs one change; returns its value and the token hashes whose sockets must close.
    async fn apply<T: Send + 'static>(&self, change: Change<T>) -> Result<(T, Vec<String>), Error> {
        let (by, now) = (self.by.clone(), self.now_ms);
        self.db
            .run(move |db| {
                db.write(|tx| {
                    let (value, entry, ended) = change(tx)?;
                    tx.record_admin_change(now, &by, &entry)?;
                    Queue::check_topology(&queue_topology(&tx.topology()?)).map_err(|why| {
                        DataError::Invalid(format!("这样改会让排队无法进行,未保存 (the queue cannot take it: {why})"))
                    })?;
                    Ok((value, ended))
                })
            })
            .await
            .map_err(refused)
    }

    /// A change that leaves nobody without a place.
    async fn apply_quiet<T: Send + 'static>(&self, change: Change<T>) -> Result<T, Error> {
        Ok(self.apply(change).await?.0)
    }

    pub async fn create_town(&self, t: TownEdit) -> Result<i64, Error> {
        let t = check_town(t)?;
        self.apply_quiet(Box::new(move |tx| {
            let id = tx.create_town(&t)?;
            let detail = json!({"name": t.name, "any_window": t.any_window});
            Ok((id, AdminChange::new(AdminItem::Town, AdminVerb::Created, id, detail), Vec::new()))
        }))
        .await
    }

    pub async fn update_town(&self, id: i64, t: TownEdit) -> Result<(), Error> {
        let t = check_town(t)?;
        self.apply_quiet(Box::new(move |tx| {
            tx.update_town(id, &t)?;
            let detail = json!({"name": t.name, "any_window": t.any_window});
            Ok(((), AdminChange::new(AdminItem::Town, AdminVerb::Updated, id, detail), Vec::new()))
        }))
        .await
    }

    pub async fn create_village(&self, town_id: i64, v: VillageEdit) -> Result<i64, Error> {
        let v = check_village(v)?;
        self.apply_quiet(Box::new(move |tx| {
            let id = tx.create_village(town_id, &v)?;
            let detail = json!({"town_id": town_id, "name": v.name, "kind": v.kind.as_str()});
            Ok((id, AdminChange::new(AdminItem::Village, AdminVerb::Created, id, detail), Vec::new()))
        }))
        .await
    }

    pub async fn update_village(&self, id: i64, v: VillageEdit) -> Result<(), Error> {
        let v = check_village(v)?;
        self.apply_quiet(Box::new(move |tx| {
            tx.update_village(id, &v)?;
            let detail = json!({"name": v.name, "kind": v.kind.as_str()});
            Ok(((), AdminChange::new(AdminItem::Village, AdminVerb::Updated, id, detail), Vec::new()))
        }))
        .await
    }

    pub async fn create_window(&self, town_id: i64, w: WindowEdit) -> Result<i64, Error> {
        let w = check_window(w)?;
        self.apply_quiet(Box::new(move |tx| {
            let id = tx.create_window(town_id, &w)?;
            let detail = window_detail(&w, Some(town_id));
            Ok((id, AdminChange::new(AdminItem::Window, AdminVerb::Created, id, detail), Vec::new()))
        }))
        .await
    }

    pub async fn update_window(&self, id: i64, w: WindowEdit) -> Result<(), Error> {
        let w = check_window(w)?;
        self.apply_quiet(Box::new(move |tx| {
            tx.update_window(id, &w)?;
            let detail = window_detail(&w, None);
            Ok(((), AdminChange::new(AdminItem::Window, AdminVerb::Updated, id, detail), Vec::new()))
        }))
        .await
    }

    pub async fn create_matter(&self, m: MatterEdit) -> Result<i64, Error> {
        let m = check_matter(m)?;
        self.apply_quiet(Box::new(move |tx| {
            let id = tx.create_matter(&m)?;
            Ok((id, AdminChange::new(AdminItem::Matter, AdminVerb::Created, id, matter_detail(&m)), Vec::new()))
        }))
        .await
    }

    pub async fn update_matter(&self, id: i64, m: MatterEdit) -> Result<(), Error> {
        let m = check_matter(m)?;
        self.apply_quiet(Box::new(move |tx| {
            tx.update_matter(id, &m)?;
            Ok(((), AdminChange::new(AdminItem::Matter, AdminVerb::Updated, id, matter_detail(&m)), Vec::new()))
        }))
        .await
    }

    /// Disable or enable an item. Disabling a town or a village closes the sockets of its
    /// kiosks (and, for a town, of its staff); a disabled window's approvers leave the queue and
    /// its waiting calls go to another window that takes their matter. Doing what is already so
    /// changes nothing and records nothing.
    /// Returns the token hashes whose sockets must close.
    pub async fn set_disabled(&self, item: RegionItem, id: i64, disable: bool) -> Result<Vec<String>, Error> {
        let now = self.now_ms;
        self.apply(Box::new(move |tx| {
            tx.set_disabled(item, id, disable.then_some(now))?;
            let mut ended = Vec::new();
            if disable {
                ended.extend(tx.kiosk_tokens_under(item, id)?);
                match item {
                    RegionItem::Town => ended.extend(tx.staff_sessions_of_town(id)?),
                    RegionItem::Window => ended.extend(tx.staff_sessions_of_window(id)?),
                    RegionItem::Village | RegionItem::Matter => {}
                }
            }
            let verb = if disable { AdminVerb::Disabled } else { AdminVerb::Enabled };
            Ok(((), AdminChange::new(audit_item(item), verb, id, Value::Null), ended))
        }))
        .await
        .map(|((), ended)| ended)
    }

    /// Delete an item nothing refers to; otherwise 409 `in_use` naming what does.
    pub async fn delete(&self, item: RegionItem, id: i64) -> Result<(), Error> {
        self.apply_quiet(Box::new(move |tx| {
            tx.delete_item(item, id)?;
            Ok(((), AdminChange::new(audit_item(item), AdminVerb::Deleted, id, Value::Null), Vec::new()))
        }))
        .await
    }
}

/// The queue's topology from the stored one (the engine's at start and at every reload).
pub fn queue_topology(t: &crate::db::Topology) -> queue::Topology {
    queue::Topology {
        towns: t.towns.iter().map(|x| queue::Town { id: queue::TownId(x.id), any_window: x.any_window }).collect(),
        windows: t
            .windows
            .iter()
            .map(|w| queue::Window {
                id: queue::WindowId(w.id),
                town: queue::TownId(w.town_id),
                matters: w.accepts.iter().map(|m| queue::MatterId(*m)).collect(),
            })
            .collect(),
        villages: t
            .villages
            .iter()
            .map(|v| queue::Village { id: queue::VillageId(v.id), town: queue::TownId(v.town_id) })
            .collect(),
        kiosks: t
            .kiosks
            .iter()
            .map(|k| queue::Kiosk { id: queue::KioskId(k.id), village: queue::VillageId(k.village_id) })
            .collect(),
        approvers: t
            .approvers
            .iter()
            .filter_map(|a| {
                Some(queue::Approver { id: queue::StaffId(a.user_id), window: queue::WindowId(a.window_id?) })
            })
            .collect(),
        dispatchers: t
            .dispatchers
            .iter()
            .map(|d| queue::Dispatcher { id: queue::StaffId(d.user_id), town: queue::TownId(d.town_id) })
            .collect(),
    }
}

fn window_detail(w: &WindowEdit, town_id: Option<i64>) -> Value {
    let mut d = json!({"name": w.name, "kind": w.kind.as_str(), "derive_matters": w.derive_matters});
    if !w.derive_matters {
        d["matter_ids"] = json!(w.matter_ids);
    }
    if let Some(t) = town_id {
        d["town_id"] = json!(t);
    }
    d
}

fn matter_detail(m: &MatterEdit) -> Value {
    json!({
        "code": m.code,
        "name": m.name,
        "plain_name": m.plain_name,
        "department": m.department,
        "window_kind": m.window_kind.as_str(),
        "required_papers": m.required_papers,
        "needs_signoff": m.needs_signoff,
        "village_can_finish": m.village_can_finish,
        "keywords": m.keywords,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{VillageKind, WindowKind};

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(name("  昭化镇 ", 64, "乡镇名称").unwrap(), "昭化镇");
        assert!(name("   ", 64, "x").is_err());
        assert!(name(&"镇".repeat(65), 64, "x").is_err());
        assert!(name(&"镇".repeat(64), 64, "x").is_ok());
        assert!(name("a\nb", 64, "x").is_err());
    }

    #[test]
    fn matter_fields_are_checked() {
        let ok = MatterEdit {
            code: " M-1_a ".into(),
            name: "城乡居民基本养老保险参保登记".into(),
            plain_name: "交养老保险".into(),
            department: "".into(),
            window_kind: WindowKind::SocialSecurity,
            required_papers: vec!["身份证".into(), " 身份证 ".into(), "户口簿".into()],
            needs_signoff: false,
            village_can_finish: false,
            keywords: "养老".into(),
        };
        let m = check_matter(ok.clone()).unwrap();
        assert_eq!(m.code, "M-1_a");
        assert_eq!(m.required_papers, vec!["身份证", "户口簿"]);
        assert!(check_matter(MatterEdit { code: "a b".into(), ..ok.clone() }).is_err());
        assert!(check_matter(MatterEdit { code: "".into(), ..ok.clone() }).is_err());
        assert!(check_matter(MatterEdit { code: "x".repeat(33), ..ok.clone() }).is_err());
        assert!(check_matter(MatterEdit { required_papers: vec!["".into()], ..ok.clone() }).is_err());
        assert!(check_matter(MatterEdit { required_papers: vec!["a".into(); 31], ..ok.clone() }).is_err());
        assert!(check_matter(MatterEdit { keywords: "词".repeat(501), ..ok.clone() }).is_err());
        assert!(check_matter(MatterEdit { plain_name: " ".into(), ..ok }).is_err());
    }

    #[test]
    fn window_matters_are_deduplicated_and_bounded() {
        let w = WindowEdit {
            name: "综合窗口".into(),
            kind: WindowKind::Comprehensive,
            derive_matters: false,
            matter_ids: vec![3, 1, 3],
        };
        assert_eq!(check_window(w.clone()).unwrap().matter_ids, vec![1, 3]);
        assert!(check_window(WindowEdit { matter_ids: vec![1; 1001], ..w }).is_err());
        assert!(check_village(VillageEdit { name: "".into(), kind: VillageKind::Village }).is_err());
    }
}
