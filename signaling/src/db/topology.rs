//! The topology the queue is built from: towns, villages, windows with the matters they
//! take, kiosks and the staff the queue knows, as plain data. Disabled towns, villages and
//! windows are left out (and what lies under them), as are disabled accounts and kiosks;
//! disabled matters stay, so that calls already placed for them are still routed (new ones
//! are refused where matters are offered).

use super::region::{VillageRow, WindowKind, village_row, window_kind_col, window_row};
use super::{DataError, Db, Role, role_col};

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

impl Db {
    pub fn topology(&self) -> Result<Topology, DataError> {
        read_topology(&self.conn())
    }
}

impl super::Tx<'_> {
    /// The topology as it stands inside this transaction (to check a change before it commits).
    pub fn topology(&self) -> Result<Topology, DataError> {
        read_topology(self.tx)
    }
}

fn read_topology(conn: &rusqlite::Connection) -> Result<Topology, DataError> {
    let mut t = Topology::default();
    {
        let mut st = conn.prepare("SELECT id, name, any_window FROM towns WHERE disabled_at_ms IS NULL ORDER BY id")?;
        t.towns = st
            .query_map([], |r| Ok(TopoTown { id: r.get(0)?, name: r.get(1)?, any_window: r.get(2)? }))?
            .collect::<Result<_, _>>()?;
    }
    {
        let mut st = conn.prepare(
            "SELECT v.id, v.town_id, v.name, v.kind FROM villages v JOIN towns t ON t.id = v.town_id
                 WHERE v.disabled_at_ms IS NULL AND t.disabled_at_ms IS NULL ORDER BY v.id",
        )?;
        t.villages = st.query_map([], village_row)?.collect::<Result<_, _>>()?;
    }
    {
        let mut st = conn.prepare(
            "SELECT w.id, w.town_id, w.name, w.kind FROM windows w JOIN towns t ON t.id = w.town_id
                 WHERE w.disabled_at_ms IS NULL AND t.disabled_at_ms IS NULL ORDER BY w.id",
        )?;
        t.windows = st
            .query_map([], |r| {
                let w = window_row(r)?;
                Ok(TopoWindow { id: w.id, town_id: w.town_id, name: w.name, kind: w.kind, accepts: Vec::new() })
            })?
            .collect::<Result<_, _>>()?;
        let mut st = conn.prepare("SELECT window_id, matter_id FROM window_matters ORDER BY window_id, matter_id")?;
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
                 JOIN villages v ON v.id = k.village_id JOIN towns t ON t.id = v.town_id
                 WHERE k.disabled_at_ms IS NULL AND v.disabled_at_ms IS NULL AND t.disabled_at_ms IS NULL
                 ORDER BY k.id",
        )?;
        t.kiosks = st
            .query_map([], |r| {
                Ok(TopoKiosk { id: r.get(0)?, village_id: r.get(1)?, town_id: r.get(2)?, name: r.get(3)? })
            })?
            .collect::<Result<_, _>>()?;
    }
    {
        let mut st = conn.prepare(
            "SELECT u.id, u.role, u.town_id, u.window_id, u.display_name FROM users u
                 JOIN towns t ON t.id = u.town_id LEFT JOIN windows w ON w.id = u.window_id
                 WHERE u.role IN ('approver', 'chief', 'dispatcher') AND u.disabled_at_ms IS NULL
                   AND t.disabled_at_ms IS NULL
                   AND (w.id IS NULL OR w.disabled_at_ms IS NULL) ORDER BY u.id",
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
