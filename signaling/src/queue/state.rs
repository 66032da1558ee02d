//! The machine's persisted state. Everything the machine knows besides the topology and the
//! configuration lives in [`Snapshot`]; the queue index is rebuilt from it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::model::{
    BackReason, CallId, CaseId, GroupId, KioskId, MatterId, Millis, Presence, Priority, QueueKey, StaffId, TownId,
    VillageId, WindowId,
};

/// Bumped when the persisted shape changes incompatibly.
pub(super) const SNAPSHOT_FORMAT: u32 = 1;

/// The whole mutable state of a [`super::Queue`]: serialise it after every change,
/// give it back to [`super::Queue::restore`] after a restart. Opaque on purpose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub(super) format: u32,
    pub(super) next_call: u64,
    pub(super) next_group: u64,
    /// Next rank for a call joining the tail of a queue (increasing).
    pub(super) next_tail: i64,
    /// Next rank for a call put at the head of a queue (decreasing, below every tail rank).
    pub(super) next_head: i64,
    pub(super) calls: BTreeMap<CallId, Call>,
    pub(super) kiosks: BTreeMap<KioskId, KioskState>,
    pub(super) staff: BTreeMap<StaffId, StaffState>,
    pub(super) groups: BTreeMap<GroupId, Group>,
    /// Recent handling times (ms) per queue, oldest first.
    #[serde(with = "map_as_pairs")]
    pub(super) stats: BTreeMap<QueueKey, VecDeque<u64>>,
}

impl Snapshot {
    /// What must survive a restart: this snapshot less what [`super::Queue::restore`] resets
    /// anyway. A restart counts every party offline as of then, rings nobody and rebuilds the
    /// back-pointers from the calls, so kiosks' states, staff's connection, ring and call, and
    /// the approvers a waiting call rings are left out (staff keep their presence). Restoring
    /// this gives the machine that restoring the whole snapshot gives; and it is as large as
    /// the calls, groups and staff, not as the kiosks that ever connected, and it does not
    /// change when a party connects, drops or is rung, so none of these is written.
    pub(super) fn persisted(&self) -> Snapshot {
        let calls = self
            .calls
            .iter()
            .map(|(id, c)| {
                let mut c = c.clone();
                if let CallState::Waiting(w) = &mut c.state {
                    w.ringing.clear();
                }
                (*id, c)
            })
            .collect();
        let staff = self
            .staff
            .iter()
            .map(|(id, s)| {
                (*id, StaffState { connected: false, since: Millis(0), presence: s.presence, call: None, ring: None })
            })
            .collect();
        Snapshot {
            format: self.format,
            next_call: self.next_call,
            next_group: self.next_group,
            next_tail: self.next_tail,
            next_head: self.next_head,
            calls,
            kiosks: BTreeMap::new(),
            staff,
            groups: self.groups.clone(),
            stats: self.stats.clone(),
        }
    }

    pub(super) fn empty() -> Snapshot {
        Snapshot {
            format: SNAPSHOT_FORMAT,
            next_call: 1,
            next_group: 1,
            next_tail: 0,
            next_head: -1,
            calls: BTreeMap::new(),
            kiosks: BTreeMap::new(),
            staff: BTreeMap::new(),
            groups: BTreeMap::new(),
            stats: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Call {
    pub id: CallId,
    pub kiosk: KioskId,
    pub village: VillageId,
    pub matter: MatterId,
    pub case: Option<CaseId>,
    pub priority: Priority,
    /// The original request time; kept across transfers and put-backs.
    pub requested_at: Millis,
    pub state: CallState,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum CallState {
    Waiting(Waiting),
    Live(Live),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Waiting {
    pub queue: QueueKey,
    /// Order within equal priorities: lower is nearer the head.
    pub rank: i64,
    pub enqueued_at: Millis,
    /// Why it was put back at a head, if it was.
    pub back: Option<BackReason>,
    /// Approvers this call rings right now.
    pub ringing: BTreeSet<StaffId>,
    /// The last (queue, position, estimate) told to the kiosk.
    pub notified: Option<(QueueKey, u32, u64)>,
    /// Whether the queue was staffed when the kiosk was last told (older snapshots: unknown).
    #[serde(default)]
    pub notified_staffed: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Live {
    pub staff: StaffId,
    /// The approver's window when they answered.
    pub window: WindowId,
    /// The queue it was answered from: handling time is booked there, and a put-back
    /// returns there.
    pub from_queue: QueueKey,
    pub answered_at: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct KioskState {
    pub connected: bool,
    /// When `connected` last changed.
    pub since: Millis,
    pub call: Option<CallId>,
}

impl KioskState {
    pub fn offline(now: Millis) -> KioskState {
        KioskState { connected: false, since: now, call: None }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StaffState {
    pub connected: bool,
    /// When `connected` last changed.
    pub since: Millis,
    pub presence: Presence,
    pub call: Option<CallId>,
    pub ring: Option<Ring>,
}

impl StaffState {
    pub fn offline(now: Millis) -> StaffState {
        StaffState { connected: false, since: now, presence: Presence::default(), call: None, ring: None }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Ring {
    pub call: CallId,
    pub until: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Group {
    pub id: GroupId,
    pub town: TownId,
    pub dispatcher: StaffId,
    pub started_at: Millis,
    /// Sorted by kiosk.
    pub members: Vec<Member>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Member {
    pub kiosk: KioskId,
    pub village: VillageId,
    pub state: MemberState,
    pub invite_until: Millis,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum MemberState {
    Invited,
    Joined,
    Declined,
    Left,
    NoAnswer,
}

/// JSON objects need string keys; a map keyed by an enum goes out as a list of pairs.
mod map_as_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(map: &BTreeMap<K, V>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let pairs: Vec<(K, V)> = Vec::deserialize(d)?;
        Ok(pairs.into_iter().collect())
    }
}
