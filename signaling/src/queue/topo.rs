//! The topology, validated and indexed for the lookups the machine makes.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{KioskId, MatterId, QueueKey, SetupError, StaffId, Topology, TownId, VillageId, WindowId};

#[derive(Clone, Debug, Default)]
pub(super) struct Topo {
    pub towns: BTreeMap<TownId, TownIx>,
    pub windows: BTreeMap<WindowId, WindowIx>,
    pub villages: BTreeMap<VillageId, VillageIx>,
    pub kiosks: BTreeMap<KioskId, KioskIx>,
    pub approvers: BTreeMap<StaffId, ApproverIx>,
    pub dispatchers: BTreeMap<StaffId, TownId>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct TownIx {
    pub any_window: bool,
    pub windows: Vec<WindowId>,
    pub approvers: Vec<StaffId>,
}

#[derive(Clone, Debug)]
pub(super) struct WindowIx {
    pub town: TownId,
    pub matters: BTreeSet<MatterId>,
    pub approvers: Vec<StaffId>,
}

#[derive(Clone, Debug)]
pub(super) struct VillageIx {
    pub town: TownId,
    pub kiosks: Vec<KioskId>,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct KioskIx {
    pub village: VillageId,
    pub town: TownId,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct ApproverIx {
    pub window: WindowId,
    pub town: TownId,
}

fn dup(kind: &'static str, id: i64) -> SetupError {
    SetupError::Duplicate { kind, id }
}

fn dangling(kind: &'static str, id: i64, target: &'static str, target_id: i64) -> SetupError {
    SetupError::Dangling { kind, id, target, target_id }
}

impl Topo {
    pub fn build(t: &Topology) -> Result<Topo, SetupError> {
        let mut topo = Topo::default();
        for town in &t.towns {
            let ix = TownIx { any_window: town.any_window, ..TownIx::default() };
            if topo.towns.insert(town.id, ix).is_some() {
                return Err(dup("town", town.id.0));
            }
        }
        for w in &t.windows {
            let town = topo.towns.get_mut(&w.town).ok_or(dangling("window", w.id.0, "town", w.town.0))?;
            town.windows.push(w.id);
            let ix = WindowIx { town: w.town, matters: w.matters.clone(), approvers: Vec::new() };
            if topo.windows.insert(w.id, ix).is_some() {
                return Err(dup("window", w.id.0));
            }
        }
        for v in &t.villages {
            if !topo.towns.contains_key(&v.town) {
                return Err(dangling("village", v.id.0, "town", v.town.0));
            }
            if topo.villages.insert(v.id, VillageIx { town: v.town, kiosks: Vec::new() }).is_some() {
                return Err(dup("village", v.id.0));
            }
        }
        for k in &t.kiosks {
            let village = topo.villages.get_mut(&k.village).ok_or(dangling("kiosk", k.id.0, "village", k.village.0))?;
            village.kiosks.push(k.id);
            let ix = KioskIx { village: k.village, town: village.town };
            if topo.kiosks.insert(k.id, ix).is_some() {
                return Err(dup("kiosk", k.id.0));
            }
        }
        for a in &t.approvers {
            let window = topo.windows.get_mut(&a.window).ok_or(dangling("approver", a.id.0, "window", a.window.0))?;
            window.approvers.push(a.id);
            let town = window.town;
            topo.towns.get_mut(&town).expect("window towns were checked").approvers.push(a.id);
            if topo.approvers.insert(a.id, ApproverIx { window: a.window, town }).is_some() {
                return Err(dup("approver", a.id.0));
            }
        }
        for d in &t.dispatchers {
            if !topo.towns.contains_key(&d.town) {
                return Err(dangling("dispatcher", d.id.0, "town", d.town.0));
            }
            if topo.approvers.contains_key(&d.id) {
                return Err(SetupError::StaffTwoRoles(d.id));
            }
            if topo.dispatchers.insert(d.id, d.town).is_some() {
                return Err(dup("dispatcher", d.id.0));
            }
        }
        // Deterministic order everywhere.
        for town in topo.towns.values_mut() {
            town.windows.sort();
            town.approvers.sort();
        }
        for w in topo.windows.values_mut() {
            w.approvers.sort();
        }
        for v in topo.villages.values_mut() {
            v.kiosks.sort();
        }
        Ok(topo)
    }

    pub fn queue_exists(&self, q: QueueKey) -> bool {
        match q {
            QueueKey::Window(w) => self.windows.contains_key(&w),
            QueueKey::Town(t) => self.towns.get(&t).is_some_and(|t| t.any_window),
        }
    }

    /// The town a queue belongs to, if the queue exists.
    pub fn queue_town(&self, q: QueueKey) -> Option<TownId> {
        match q {
            QueueKey::Window(w) => self.windows.get(&w).map(|w| w.town),
            QueueKey::Town(t) => self.towns.get(&t).filter(|t| t.any_window).map(|_| t),
        }
    }

    /// Every existing queue of a town.
    pub fn town_queues(&self, town: TownId) -> Vec<QueueKey> {
        let Some(t) = self.towns.get(&town) else { return Vec::new() };
        let mut qs: Vec<QueueKey> = t.windows.iter().map(|w| QueueKey::Window(*w)).collect();
        if t.any_window {
            qs.push(QueueKey::Town(town));
        }
        qs
    }

    /// Queues an approver serves: their window's, plus the town-wide one in an
    /// `any_window` town. Empty for non-approvers.
    pub fn served_by(&self, staff: StaffId) -> Vec<QueueKey> {
        let Some(a) = self.approvers.get(&staff) else { return Vec::new() };
        let mut qs = vec![QueueKey::Window(a.window)];
        if self.towns.get(&a.town).is_some_and(|t| t.any_window) {
            qs.push(QueueKey::Town(a.town));
        }
        qs
    }

    /// Approvers serving a queue.
    pub fn serving(&self, q: QueueKey) -> &[StaffId] {
        match q {
            QueueKey::Window(w) => self.windows.get(&w).map(|w| w.approvers.as_slice()).unwrap_or(&[]),
            QueueKey::Town(t) => {
                self.towns.get(&t).filter(|t| t.any_window).map(|t| t.approvers.as_slice()).unwrap_or(&[])
            }
        }
    }

    /// Queues a new request for `matter` from a kiosk of `town` may wait in.
    pub fn routes(&self, town: TownId, matter: MatterId) -> Vec<QueueKey> {
        let Some(t) = self.towns.get(&town) else { return Vec::new() };
        if t.any_window {
            if t.windows.is_empty() { Vec::new() } else { vec![QueueKey::Town(town)] }
        } else {
            t.windows
                .iter()
                .filter(|w| self.windows.get(w).is_some_and(|w| w.matters.contains(&matter)))
                .map(|w| QueueKey::Window(*w))
                .collect()
        }
    }
}
