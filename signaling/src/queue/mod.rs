//! The queue and pairing state machine: which kiosk waits where, who rings, who talks to
//! whom, and group calls. Pure, in the style of str0m: inputs plus `now` in, [`Action`]s
//! out; no I/O, no clock, no randomness, no async. The policy is written down in
//! `docs/queue.md`.
//!
//! Driving it:
//! - [`Queue::handle`] for every client input (an `Err` changes nothing);
//! - [`Queue::poll_timeout`] for the next deadline, [`Queue::handle_timeout`]
//!   when it has passed;
//! - [`Queue::snapshot`] to persist after every change, [`Queue::restore`]
//!   after a restart;
//! - [`Queue::state_for`] for what a (re)connecting party must be told.

mod model;
mod state;
mod topo;

#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

pub use model::*;
pub use state::Snapshot;
use state::{Call, CallState, Group, KioskState, Live, Member, MemberState, Ring, StaffState, Waiting};
use topo::{ApproverIx, Topo};

/// Queue order: higher priority first, then lower rank.
type OrderKey = (Reverse<Priority>, i64);

fn order_key(c: &Call) -> OrderKey {
    let rank = match &c.state {
        CallState::Waiting(w) => w.rank,
        CallState::Live(_) => i64::MAX,
    };
    (Reverse(c.priority), rank)
}

/// What one step produced, plus what it touched (for the finishing pass).
#[derive(Default)]
struct Fx {
    actions: Vec<Action>,
    /// Towns whose rings and positions must be brought up to date.
    towns: BTreeSet<TownId>,
    /// Queues whose items changed (approvers get a `QueueSnapshot`).
    queues: BTreeSet<QueueKey>,
    /// Groups whose member list changed (the dispatcher gets a `GroupState`).
    groups: BTreeSet<GroupId>,
}

impl Fx {
    fn notify(&mut self, to: Party, notice: Notice) {
        self.actions.push(Action::Notify { to, notice });
    }

    fn act(&mut self, action: Action) {
        self.actions.push(action);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Ring(StaffId),
    KioskGrace(KioskId),
    Invite(GroupId, KioskId),
    DispatcherGrace(GroupId),
}

/// The queue and pairing state machine. See the module docs and `docs/queue.md`.
#[derive(Clone, Debug)]
pub struct Queue {
    config: Config,
    topo: Topo,
    st: Snapshot,
    /// Waiting calls per queue in queue order (derived from `st.calls`; no empty entries).
    queues: BTreeMap<QueueKey, Vec<CallId>>,
}

impl Queue {
    // ----- construction, persistence, topology -----

    /// A machine with nobody connected and nothing waiting.
    pub fn new(topology: &Topology, config: Config) -> Result<Self, SetupError> {
        config.validate()?;
        let topo = Topo::build(topology)?;
        Ok(Queue { config, topo, st: Snapshot::empty(), queues: BTreeMap::new() })
    }

    /// The whole state (tests compare it; [`Queue::persisted`] is what to store).
    pub fn snapshot(&self) -> &Snapshot {
        &self.st
    }

    /// The state to persist: serialise it (serde) after every `handle`, `handle_timeout`,
    /// `set_topology`, and store it when it differs from the last one stored; give it back to
    /// [`Queue::restore`] after a restart. It leaves out what a restore resets (who is
    /// connected, rung, in which call as a back-pointer), so it stays small whatever the
    /// number of kiosks and does not change when a kiosk connects or drops.
    pub fn persisted(&self) -> Snapshot {
        self.st.persisted()
    }

    /// Rebuild a machine after a restart. Every party counts as disconnected as of `now`:
    /// waiting calls keep their places for the grace period, live calls go back to the head
    /// of their queue (their approver is gone), open group rooms are reopened (the returned
    /// actions hold `OpenRoom` for them). The snapshot is reconciled with `topology` as
    /// [`Queue::set_topology`] does.
    pub fn restore(
        snapshot: Snapshot,
        topology: &Topology,
        config: Config,
        now: Millis,
    ) -> Result<(Self, Vec<Action>), SetupError> {
        config.validate()?;
        let topo = Topo::build(topology)?;
        let mut m = Queue { config, topo, st: snapshot, queues: BTreeMap::new() };
        if m.st.format != state::SNAPSHOT_FORMAT {
            return Err(SetupError::SnapshotFormat(m.st.format));
        }
        let mut fx = Fx::default();
        // Nobody is connected; nobody rings; back-pointers are rebuilt from the calls, so that a
        // hand-edited snapshot cannot break the machine.
        for k in m.st.kiosks.values_mut() {
            *k = KioskState::offline(now);
        }
        for s in m.st.staff.values_mut() {
            s.connected = false;
            s.since = now;
            s.ring = None;
            s.call = None;
        }
        let st = &mut m.st;
        for c in st.calls.values_mut() {
            st.kiosks.entry(c.kiosk).or_insert_with(|| KioskState::offline(now)).call = Some(c.id);
            st.next_call = st.next_call.max(c.id.0 + 1);
            match &mut c.state {
                CallState::Waiting(w) => {
                    w.ringing.clear();
                    st.next_head = st.next_head.min(w.rank - 1);
                    st.next_tail = st.next_tail.max(w.rank + 1);
                }
                CallState::Live(l) => {
                    st.staff.entry(l.staff).or_insert_with(|| StaffState::offline(now)).call = Some(c.id);
                }
            }
        }
        if let Some(g) = st.groups.keys().next_back() {
            st.next_group = st.next_group.max(g.0 + 1);
        }
        m.rebuild_queues();
        // Live calls lost their approver. Oldest request ends up at the very head.
        let mut live: Vec<(Millis, CallId, StaffId)> =
            m.st.calls
                .values()
                .filter_map(|c| match &c.state {
                    CallState::Live(l) => Some((c.requested_at, c.id, l.staff)),
                    CallState::Waiting(_) => None,
                })
                .collect();
        live.sort();
        for (_, id, staff) in live.into_iter().rev() {
            m.requeue_at_head(now, id, BackReason::ApproverGone { staff }, &mut fx);
        }
        m.reconcile_topology(now, &mut fx);
        // The media plane starts empty: reopen the rooms of open group calls.
        for g in m.st.groups.values() {
            let mut participants = vec![Party::Staff(g.dispatcher)];
            participants
                .extend(g.members.iter().filter(|m| m.state == MemberState::Joined).map(|m| Party::Kiosk(m.kiosk)));
            fx.act(Action::OpenRoom { room: Room::Group(g.id), participants });
        }
        fx.towns.extend(m.topo.towns.keys().copied());
        m.finish(now, &mut fx);
        Ok((m, fx.actions))
    }

    /// Would [`Queue::set_topology`] take this topology? (Checked before a change is saved.)
    pub fn check_topology(topology: &Topology) -> Result<(), SetupError> {
        Topo::build(topology).map(drop)
    }

    /// Replace the topology. On error nothing changes. Calls whose queue disappeared are
    /// re-routed by matter (keeping their place in age order) or end with `NoWindow`; calls
    /// of removed kiosks end with `Removed`; a removed approver's live call goes back to the
    /// head; a removed or moved dispatcher's group ends. Every queue snapshot and group
    /// state is re-sent (names may have changed).
    pub fn set_topology(&mut self, now: Millis, topology: &Topology) -> Result<Vec<Action>, SetupError> {
        let new = Topo::build(topology)?;
        // Towns that switch to 无差别受理 now: their waiting calls join the town-wide queue.
        let newly_any_window: Vec<TownId> = new
            .towns
            .iter()
            .filter(|(id, t)| t.any_window && !self.topo.towns.get(id).is_some_and(|old| old.any_window))
            .map(|(id, _)| *id)
            .collect();
        self.topo = new;
        let mut fx = Fx::default();
        self.reconcile_topology(now, &mut fx);
        for town in newly_any_window {
            self.merge_into_town_queue(town, &mut fx);
        }
        fx.towns.extend(self.topo.towns.keys().copied());
        for t in self.topo.towns.keys() {
            fx.queues.extend(self.topo.town_queues(*t));
        }
        fx.groups.extend(self.st.groups.keys().copied());
        self.finish(now, &mut fx);
        Ok(fx.actions)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    // ----- driving -----

    /// Apply one client input. On `Err` the state is exactly as before.
    pub fn handle(&mut self, now: Millis, input: Input) -> Result<Vec<Action>, QueueError> {
        let mut fx = Fx::default();
        match input {
            Input::KioskConnected { kiosk } => self.kiosk_connected(now, kiosk, &mut fx)?,
            Input::KioskDisconnected { kiosk } => self.kiosk_disconnected(now, kiosk, &mut fx)?,
            Input::StaffConnected { staff } => self.staff_connected(now, staff, &mut fx)?,
            Input::StaffDisconnected { staff } => self.staff_disconnected(now, staff, &mut fx)?,
            Input::RequestCall { kiosk, matter, case, priority } => {
                self.request_call(now, kiosk, matter, case, priority, &mut fx)?
            }
            Input::CancelCall { kiosk, call } => self.cancel_call(kiosk, call, &mut fx)?,
            Input::SetPresence { staff, presence } => self.set_presence(now, staff, presence, &mut fx)?,
            Input::Answer { staff, call } => self.answer(now, staff, call, &mut fx)?,
            Input::HangUp { by, call } => self.hang_up(now, by, call, &mut fx)?,
            Input::Transfer { staff, call, to_window } => self.transfer(now, staff, call, to_window, &mut fx)?,
            Input::StartGroup { dispatcher, villages } => self.start_group(now, dispatcher, &villages, &mut fx)?,
            Input::AcceptGroup { kiosk, group } => self.accept_group(kiosk, group, &mut fx)?,
            Input::DeclineGroup { kiosk, group } => self.decline_group(kiosk, group, &mut fx)?,
            Input::LeaveGroup { kiosk, group } => self.leave_group(kiosk, group, &mut fx)?,
            Input::EndGroup { dispatcher, group } => self.end_group_input(dispatcher, group, &mut fx)?,
            Input::ReinviteGroup { dispatcher, group, village } => {
                self.reinvite_group(now, dispatcher, group, village, &mut fx)?
            }
        }
        self.finish(now, &mut fx);
        Ok(fx.actions)
    }

    /// The earliest deadline (ring timeout, grace, invitation), if any.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.timers().into_iter().map(|(at, _)| at).min()
    }

    /// Fire every deadline at or before `now`, earliest first.
    pub fn handle_timeout(&mut self, now: Millis) -> Vec<Action> {
        let mut due: Vec<(Millis, Timer)> = self.timers().into_iter().filter(|(at, _)| *at <= now).collect();
        due.sort();
        let mut fx = Fx::default();
        for (_, timer) in due {
            self.fire(now, timer, &mut fx);
        }
        self.finish(now, &mut fx);
        fx.actions
    }

    // ----- queries -----

    /// What a party that just (re)connected must be told, in order. Call it after
    /// `KioskConnected` / `StaffConnected` (also when a new socket replaced an old one).
    pub fn state_for(&self, party: Party) -> Vec<Notice> {
        let mut out = Vec::new();
        match party {
            Party::Kiosk(k) => {
                if let Some(id) = self.st.kiosks.get(&k).and_then(|ks| ks.call) {
                    match &self.st.calls[&id].state {
                        CallState::Waiting(_) => out.extend(self.position_notice(id)),
                        CallState::Live(_) => out.extend(self.call_started_notice(id)),
                    }
                }
                for g in self.st.groups.values() {
                    for m in g.members.iter().filter(|m| m.kiosk == k) {
                        match m.state {
                            MemberState::Invited => out.push(Notice::GroupInvite {
                                group: g.id,
                                dispatcher: g.dispatcher,
                                town: g.town,
                                expires_at: m.invite_until,
                            }),
                            MemberState::Joined => {
                                out.push(Notice::GroupJoined { group: g.id, room: Room::Group(g.id) });
                            }
                            _ => {}
                        }
                    }
                }
            }
            Party::Staff(s) => {
                if self.topo.approvers.contains_key(&s) {
                    let ss = self.st.staff.get(&s);
                    let presence = ss.map(|ss| ss.presence).unwrap_or_default();
                    out.push(Notice::Presence { presence, forced: false });
                    for q in self.topo.served_by(s) {
                        out.push(Notice::QueueSnapshot { queue: q });
                    }
                    if let Some(r) = ss.and_then(|ss| ss.ring) {
                        out.extend(self.ring_notice(r.call));
                    }
                    if let Some(id) = ss.and_then(|ss| ss.call) {
                        out.extend(self.call_started_notice(id));
                    }
                }
                for g in self.st.groups.values().filter(|g| g.dispatcher == s) {
                    out.push(self.group_state_notice(g));
                }
            }
        }
        out
    }

    /// The waiting calls of a queue, in order (for `queue.snapshot`).
    pub fn queue_items(&self, queue: QueueKey) -> Vec<QueueItem> {
        let Some(ids) = self.queues.get(&queue) else { return Vec::new() };
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                let c = &self.st.calls[id];
                let CallState::Waiting(w) = &c.state else { unreachable!("queues hold waiting calls") };
                QueueItem {
                    call: c.id,
                    position: position_number(i),
                    kiosk: c.kiosk,
                    village: c.village,
                    matter: c.matter,
                    case: c.case,
                    priority: c.priority,
                    requested_at: c.requested_at,
                    enqueued_at: w.enqueued_at,
                    transferred: matches!(w.back, Some(BackReason::Transferred { .. })),
                    returned: matches!(w.back, Some(BackReason::ApproverGone { .. })),
                    kiosk_online: self.kiosk_online(c.kiosk),
                }
            })
            .collect()
    }

    /// Queues an approver serves (empty for anyone else).
    pub fn queues_served_by(&self, staff: StaffId) -> Vec<QueueKey> {
        self.topo.served_by(staff)
    }

    /// Approvers who serve a queue.
    pub fn approvers_serving(&self, queue: QueueKey) -> Vec<StaffId> {
        self.topo.serving(queue).to_vec()
    }

    /// Every existing queue with its length, oldest wait and current average handling time.
    pub fn queue_metrics(&self, now: Millis) -> Vec<QueueMetrics> {
        let mut out = Vec::new();
        for t in self.topo.towns.keys() {
            for q in self.topo.town_queues(*t) {
                let ids = self.queues.get(&q).map(Vec::as_slice).unwrap_or(&[]);
                let oldest = ids.iter().map(|id| self.st.calls[id].requested_at).min();
                let (avg_ms, staffed) = (self.avg_handling_ms(q), self.staffed(q));
                out.push(QueueMetrics {
                    queue: q,
                    waiting: ids.len(),
                    oldest_wait_secs: oldest.map_or(0, |at| now.secs_since(at)),
                    avg_handling_secs: model::ms_to_secs(avg_ms),
                    estimated_wait_secs: estimate_secs(position_number(ids.len()), avg_ms, staffed),
                    staffed,
                });
            }
        }
        out
    }

    pub fn live_calls(&self) -> usize {
        self.st.calls.values().filter(|c| matches!(c.state, CallState::Live(_))).count()
    }

    pub fn waiting_calls(&self) -> usize {
        self.queues.values().map(Vec::len).sum()
    }

    pub fn open_groups(&self) -> usize {
        self.st.groups.len()
    }

    /// Connected (kiosks, staff), as the machine knows them.
    pub fn connected_counts(&self) -> (usize, usize) {
        let kiosks = self.st.kiosks.values().filter(|k| k.connected).count();
        let staff = self.st.staff.values().filter(|s| s.connected).count();
        (kiosks, staff)
    }

    pub fn call(&self, call: CallId) -> Option<CallView> {
        let c = self.st.calls.get(&call)?;
        let status = match &c.state {
            CallState::Waiting(w) => CallStatus::Waiting {
                queue: w.queue,
                position: self.position_in_queue(call).unwrap_or(0),
                ringing: w.ringing.iter().copied().collect(),
            },
            CallState::Live(l) => {
                CallStatus::Live { staff: l.staff, room: Room::Call(call), answered_at: l.answered_at }
            }
        };
        Some(CallView {
            call,
            kiosk: c.kiosk,
            village: c.village,
            matter: c.matter,
            case: c.case,
            requested_at: c.requested_at,
            status,
        })
    }

    /// The waiting or live call that carries `case`, if any.
    pub fn calls_with_case(&self, case: CaseId) -> Option<CallView> {
        let id = self.st.calls.values().find(|c| c.case == Some(case))?.id;
        self.call(id)
    }

    /// The cases of every waiting or live call.
    pub fn case_ids(&self) -> Vec<CaseId> {
        self.st.calls.values().filter_map(|c| c.case).collect()
    }

    /// The waiting or live call of a kiosk, or the live call of an approver.
    pub fn call_of(&self, party: Party) -> Option<CallId> {
        match party {
            Party::Kiosk(k) => self.st.kiosks.get(&k)?.call,
            Party::Staff(s) => self.st.staff.get(&s)?.call,
        }
    }

    /// An approver's presence (also kept while disconnected); `None` for non-approvers.
    pub fn presence(&self, staff: StaffId) -> Option<Presence> {
        self.topo.approvers.get(&staff)?;
        Some(self.st.staff.get(&staff).map(|s| s.presence).unwrap_or_default())
    }

    pub fn is_connected(&self, party: Party) -> bool {
        match party {
            Party::Kiosk(k) => self.kiosk_online(k),
            Party::Staff(s) => self.staff_online(s),
        }
    }

    /// The members of an open group call, as its dispatcher sees them.
    pub fn group_members(&self, group: GroupId) -> Option<Vec<MemberView>> {
        self.st.groups.get(&group).map(|g| self.member_views(g))
    }

    /// The open group call of a dispatcher.
    pub fn group_of(&self, dispatcher: StaffId) -> Option<GroupId> {
        self.st.groups.values().find(|g| g.dispatcher == dispatcher).map(|g| g.id)
    }

    // ----- inputs -----

    fn kiosk_connected(&mut self, now: Millis, kiosk: KioskId, fx: &mut Fx) -> Result<(), QueueError> {
        if !self.topo.kiosks.contains_key(&kiosk) {
            return Err(QueueError::UnknownKiosk(kiosk));
        }
        let ks = self.st.kiosks.entry(kiosk).or_insert_with(|| KioskState::offline(now));
        if ks.connected {
            return Ok(());
        }
        ks.connected = true;
        ks.since = now;
        if let Some(id) = ks.call {
            match &self.st.calls[&id].state {
                CallState::Waiting(w) => {
                    let q = w.queue;
                    self.dirty_queue(q, fx);
                }
                CallState::Live(l) => fx.notify(Party::Staff(l.staff), Notice::PeerReconnected { call: id }),
            }
        }
        self.dirty_groups_of(kiosk, fx);
        Ok(())
    }

    fn kiosk_disconnected(&mut self, now: Millis, kiosk: KioskId, fx: &mut Fx) -> Result<(), QueueError> {
        if !self.topo.kiosks.contains_key(&kiosk) {
            return Err(QueueError::UnknownKiosk(kiosk));
        }
        let Some(ks) = self.st.kiosks.get_mut(&kiosk) else { return Ok(()) };
        if !ks.connected {
            return Ok(());
        }
        ks.connected = false;
        ks.since = now;
        if let Some(id) = ks.call {
            match &self.st.calls[&id].state {
                CallState::Waiting(w) => {
                    let q = w.queue;
                    self.stop_call_rings(id, RingStopReason::KioskOffline, fx);
                    self.dirty_queue(q, fx);
                }
                CallState::Live(l) => fx.notify(Party::Staff(l.staff), Notice::PeerReconnecting { call: id }),
            }
        }
        self.dirty_groups_of(kiosk, fx);
        Ok(())
    }

    fn staff_connected(&mut self, now: Millis, staff: StaffId, fx: &mut Fx) -> Result<(), QueueError> {
        let approver = self.topo.approvers.get(&staff).copied();
        if approver.is_none() && !self.topo.dispatchers.contains_key(&staff) {
            return Err(QueueError::UnknownStaff(staff));
        }
        let ss = self.st.staff.entry(staff).or_insert_with(|| StaffState::offline(now));
        if ss.connected {
            return Ok(());
        }
        ss.connected = true;
        ss.since = now;
        if let Some(a) = approver {
            fx.towns.insert(a.town);
        }
        Ok(())
    }

    fn staff_disconnected(&mut self, now: Millis, staff: StaffId, fx: &mut Fx) -> Result<(), QueueError> {
        let approver = self.topo.approvers.get(&staff).copied();
        if approver.is_none() && !self.topo.dispatchers.contains_key(&staff) {
            return Err(QueueError::UnknownStaff(staff));
        }
        let Some(ss) = self.st.staff.get_mut(&staff) else { return Ok(()) };
        if !ss.connected {
            return Ok(());
        }
        ss.connected = false;
        ss.since = now;
        let ring = ss.ring.take();
        let call = ss.call;
        if let Some(r) = ring {
            // Nobody to tell: the approver's socket is gone.
            if let Some(CallState::Waiting(w)) = self.st.calls.get_mut(&r.call).map(|c| &mut c.state) {
                w.ringing.remove(&staff);
            }
        }
        if let Some(id) = call {
            self.requeue_at_head(now, id, BackReason::ApproverGone { staff }, fx);
        }
        if let Some(a) = approver {
            fx.towns.insert(a.town);
        }
        Ok(())
    }

    fn request_call(
        &mut self,
        now: Millis,
        kiosk: KioskId,
        matter: MatterId,
        case: Option<CaseId>,
        priority: Priority,
        fx: &mut Fx,
    ) -> Result<(), QueueError> {
        let kx = *self.topo.kiosks.get(&kiosk).ok_or(QueueError::UnknownKiosk(kiosk))?;
        let ks = self.st.kiosks.get(&kiosk).filter(|k| k.connected);
        let ks = ks.ok_or(QueueError::NotConnected(Party::Kiosk(kiosk)))?;
        if ks.call.is_some() || self.joined_group_of(kiosk).is_some() {
            return Err(QueueError::KioskBusy(kiosk));
        }
        let routes = self.topo.routes(kx.town, matter);
        if routes.is_empty() {
            return Err(QueueError::NoWindow { town: kx.town, matter });
        }
        let q = self.best_route(&routes, true).ok_or(QueueError::QueueFull(routes[0]))?;

        let id = CallId(self.st.next_call);
        self.st.next_call += 1;
        let rank = self.st.next_tail;
        self.st.next_tail += 1;
        let waiting = Waiting {
            queue: q,
            rank,
            enqueued_at: now,
            back: None,
            ringing: BTreeSet::new(),
            notified: None,
            notified_staffed: None,
        };
        let call = Call {
            id,
            kiosk,
            village: kx.village,
            matter,
            case,
            priority,
            requested_at: now,
            state: CallState::Waiting(waiting),
        };
        self.st.calls.insert(id, call);
        self.insert_sorted(q, id);
        self.st.kiosks.get_mut(&kiosk).expect("checked above").call = Some(id);
        self.dirty_queue(q, fx);
        Ok(())
    }

    fn cancel_call(&mut self, kiosk: KioskId, call: CallId, fx: &mut Fx) -> Result<(), QueueError> {
        if !self.topo.kiosks.contains_key(&kiosk) {
            return Err(QueueError::UnknownKiosk(kiosk));
        }
        let c = self.st.calls.get(&call).ok_or(QueueError::UnknownCall(call))?;
        if c.kiosk != kiosk {
            return Err(QueueError::NotParticipant(Party::Kiosk(kiosk), call));
        }
        if !matches!(c.state, CallState::Waiting(_)) {
            return Err(QueueError::NotWaiting(call));
        }
        let c = self.remove_waiting(call, RingStopReason::Cancelled, fx);
        fx.notify(
            Party::Kiosk(kiosk),
            Notice::CallEnded { call, case: c.case, reason: CallEndReason::Cancelled, handled_secs: 0 },
        );
        Ok(())
    }

    fn set_presence(&mut self, now: Millis, staff: StaffId, presence: Presence, fx: &mut Fx) -> Result<(), QueueError> {
        let a = self.approver(staff)?;
        let ss = self.st.staff.entry(staff).or_insert_with(|| StaffState::offline(now));
        ss.presence = presence;
        if presence != Presence::Available && ss.ring.is_some() {
            self.stop_ring(staff, RingStopReason::PresenceChanged, fx);
        }
        fx.notify(Party::Staff(staff), Notice::Presence { presence, forced: false });
        fx.towns.insert(a.town);
        Ok(())
    }

    fn answer(&mut self, now: Millis, staff: StaffId, call: CallId, fx: &mut Fx) -> Result<(), QueueError> {
        let a = self.approver(staff)?;
        let ss = self.st.staff.get(&staff).filter(|s| s.connected);
        let ss = ss.ok_or(QueueError::NotConnected(Party::Staff(staff)))?;
        if ss.call.is_some() {
            return Err(QueueError::StaffBusy(staff));
        }
        let own_ring = ss.ring;
        let c = self.st.calls.get(&call).ok_or(QueueError::UnknownCall(call))?;
        let CallState::Waiting(w) = &c.state else { return Err(QueueError::AlreadyAnswered(call)) };
        let q = w.queue;
        if !self.topo.served_by(staff).contains(&q) {
            return Err(QueueError::OutOfScope);
        }
        let kiosk = c.kiosk;
        if !self.kiosk_online(kiosk) {
            return Err(QueueError::KioskOffline(call));
        }

        if own_ring.is_some_and(|r| r.call != call) {
            self.stop_ring(staff, RingStopReason::AnsweredElsewhere, fx);
        }
        let c = self.st.calls.get_mut(&call).expect("checked above");
        let CallState::Waiting(w) = &mut c.state else { unreachable!("checked above") };
        let ringing = std::mem::take(&mut w.ringing);
        c.state = CallState::Live(Live { staff, window: a.window, from_queue: q, answered_at: now });
        for s in ringing {
            if let Some(ss) = self.st.staff.get_mut(&s) {
                ss.ring = None;
            }
            if s != staff {
                fx.notify(Party::Staff(s), Notice::RingStopped { call, reason: RingStopReason::AnsweredElsewhere });
            }
        }
        self.remove_from_queue(q, call);
        self.st.staff.get_mut(&staff).expect("checked above").call = Some(call);
        fx.act(Action::OpenRoom {
            room: Room::Call(call),
            participants: vec![Party::Kiosk(kiosk), Party::Staff(staff)],
        });
        if let Some(n) = self.call_started_notice(call) {
            fx.notify(Party::Kiosk(kiosk), n.clone());
            fx.notify(Party::Staff(staff), n);
        }
        self.dirty_queue(q, fx);
        fx.towns.insert(a.town);
        Ok(())
    }

    fn hang_up(&mut self, now: Millis, by: Party, call: CallId, fx: &mut Fx) -> Result<(), QueueError> {
        let c = self.st.calls.get(&call).ok_or(QueueError::UnknownCall(call))?;
        let live = match &c.state {
            CallState::Live(l) => Some(*l),
            CallState::Waiting(_) => None,
        };
        let participant = match by {
            Party::Kiosk(k) => k == c.kiosk,
            Party::Staff(s) => live.is_some_and(|l| l.staff == s),
        };
        if !participant {
            return Err(QueueError::NotParticipant(by, call));
        }
        let Some(l) = live else { return Err(QueueError::NotLive(call)) };

        if self.topo.queue_exists(l.from_queue) {
            let samples = self.st.stats.entry(l.from_queue).or_default();
            samples.push_back(now.ms_since(l.answered_at));
            while samples.len() > self.config.estimate_window {
                samples.pop_front();
            }
            self.dirty_town_of(l.from_queue, fx);
        }
        self.end_live(now, call, CallEndReason::HangUp, CallEndReason::HangUp, fx);
        Ok(())
    }

    fn transfer(
        &mut self,
        now: Millis,
        staff: StaffId,
        call: CallId,
        to_window: WindowId,
        fx: &mut Fx,
    ) -> Result<(), QueueError> {
        let a = self.approver(staff)?;
        let c = self.st.calls.get(&call).ok_or(QueueError::UnknownCall(call))?;
        let l = match &c.state {
            CallState::Live(l) if l.staff == staff => *l,
            _ => return Err(QueueError::NotParticipant(Party::Staff(staff), call)),
        };
        let w = self.topo.windows.get(&to_window).ok_or(QueueError::UnknownWindow(to_window))?;
        if w.town != a.town {
            return Err(QueueError::OutOfScope);
        }
        if to_window == l.window {
            return Err(QueueError::SameWindow(call, to_window));
        }
        let q = QueueKey::Window(to_window);
        if self.queue_len(q) >= self.config.max_queue_len {
            return Err(QueueError::QueueFull(q));
        }

        let case = c.case;
        self.make_waiting_at_head(now, call, q, BackReason::Transferred { from: l.window, by: staff }, fx);
        fx.notify(
            Party::Staff(staff),
            Notice::CallEnded {
                call,
                case,
                reason: CallEndReason::Transferred,
                handled_secs: now.secs_since(l.answered_at),
            },
        );
        fx.towns.insert(a.town);
        Ok(())
    }

    fn start_group(
        &mut self,
        now: Millis,
        dispatcher: StaffId,
        villages: &[VillageId],
        fx: &mut Fx,
    ) -> Result<(), QueueError> {
        let town = self.dispatcher_town(dispatcher)?;
        if !self.staff_online(dispatcher) {
            return Err(QueueError::NotConnected(Party::Staff(dispatcher)));
        }
        if self.group_of(dispatcher).is_some() {
            return Err(QueueError::DispatcherBusy(dispatcher));
        }
        let villages: BTreeSet<VillageId> = villages.iter().copied().collect();
        if villages.is_empty() {
            return Err(QueueError::EmptyGroup);
        }
        if villages.len() > self.config.max_group_villages {
            return Err(QueueError::GroupTooLarge);
        }
        let invite_until = now.plus(self.config.group_invite_timeout);
        let mut members = Vec::new();
        for v in &villages {
            let vx = self.topo.villages.get(v).ok_or(QueueError::UnknownVillage(*v))?;
            if vx.town != town {
                return Err(QueueError::OutOfScope);
            }
            members.extend(vx.kiosks.iter().map(|k| Member {
                kiosk: *k,
                village: *v,
                state: MemberState::Invited,
                invite_until,
            }));
        }
        if members.is_empty() {
            return Err(QueueError::EmptyGroup);
        }
        if members.len() > self.config.max_group_kiosks {
            return Err(QueueError::GroupTooLarge);
        }

        members.sort_by_key(|m| m.kiosk);
        let id = GroupId(self.st.next_group);
        self.st.next_group += 1;
        fx.act(Action::OpenRoom { room: Room::Group(id), participants: vec![Party::Staff(dispatcher)] });
        for m in &members {
            fx.notify(
                Party::Kiosk(m.kiosk),
                Notice::GroupInvite { group: id, dispatcher, town, expires_at: invite_until },
            );
        }
        self.st.groups.insert(id, Group { id, town, dispatcher, started_at: now, members });
        fx.groups.insert(id);
        Ok(())
    }

    fn accept_group(&mut self, kiosk: KioskId, group: GroupId, fx: &mut Fx) -> Result<(), QueueError> {
        let idx = self.member_index(kiosk, group)?;
        if self.st.groups[&group].members[idx].state != MemberState::Invited {
            return Err(QueueError::InviteNotPending(kiosk, group));
        }
        if !self.kiosk_online(kiosk) {
            return Err(QueueError::NotConnected(Party::Kiosk(kiosk)));
        }
        if self.call_of(Party::Kiosk(kiosk)).is_some() || self.joined_group_of(kiosk).is_some() {
            return Err(QueueError::KioskBusy(kiosk));
        }
        self.set_member_state(group, idx, MemberState::Joined);
        let room = Room::Group(group);
        fx.act(Action::AddToRoom { room, party: Party::Kiosk(kiosk) });
        fx.notify(Party::Kiosk(kiosk), Notice::GroupJoined { group, room });
        fx.groups.insert(group);
        Ok(())
    }

    fn decline_group(&mut self, kiosk: KioskId, group: GroupId, fx: &mut Fx) -> Result<(), QueueError> {
        let idx = self.member_index(kiosk, group)?;
        if self.st.groups[&group].members[idx].state != MemberState::Invited {
            return Err(QueueError::InviteNotPending(kiosk, group));
        }
        self.set_member_state(group, idx, MemberState::Declined);
        fx.groups.insert(group);
        Ok(())
    }

    fn leave_group(&mut self, kiosk: KioskId, group: GroupId, fx: &mut Fx) -> Result<(), QueueError> {
        let idx = self.member_index(kiosk, group)?;
        if self.st.groups[&group].members[idx].state != MemberState::Joined {
            return Err(QueueError::NotJoined(kiosk, group));
        }
        self.set_member_state(group, idx, MemberState::Left);
        fx.act(Action::RemoveFromRoom { room: Room::Group(group), party: Party::Kiosk(kiosk) });
        fx.groups.insert(group);
        Ok(())
    }

    /// The dispatcher invites a village again: its kiosks that declined, did not answer or
    /// left are invited anew, with a fresh invitation time.
    fn reinvite_group(
        &mut self,
        now: Millis,
        dispatcher: StaffId,
        group: GroupId,
        village: VillageId,
        fx: &mut Fx,
    ) -> Result<(), QueueError> {
        self.dispatcher_town(dispatcher)?;
        let g = self.st.groups.get(&group).ok_or(QueueError::UnknownGroup(group))?;
        if g.dispatcher != dispatcher {
            return Err(QueueError::NotGroupOwner(dispatcher, group));
        }
        let (town, invite_until) = (g.town, now.plus(self.config.group_invite_timeout));
        let again: Vec<usize> = g
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| {
                m.village == village
                    && matches!(m.state, MemberState::Declined | MemberState::NoAnswer | MemberState::Left)
            })
            .map(|(i, _)| i)
            .collect();
        if again.is_empty() {
            return Err(QueueError::NothingToReinvite(village, group));
        }
        let g = self.st.groups.get_mut(&group).expect("checked above");
        for i in again {
            let m = &mut g.members[i];
            m.state = MemberState::Invited;
            m.invite_until = invite_until;
            fx.notify(Party::Kiosk(m.kiosk), Notice::GroupInvite { group, dispatcher, town, expires_at: invite_until });
        }
        fx.groups.insert(group);
        Ok(())
    }

    fn end_group_input(&mut self, dispatcher: StaffId, group: GroupId, fx: &mut Fx) -> Result<(), QueueError> {
        self.dispatcher_town(dispatcher)?;
        let g = self.st.groups.get(&group).ok_or(QueueError::UnknownGroup(group))?;
        if g.dispatcher != dispatcher {
            return Err(QueueError::NotGroupOwner(dispatcher, group));
        }
        self.end_group(group, GroupEndReason::Ended, fx);
        Ok(())
    }

    // ----- timers -----

    fn timers(&self) -> Vec<(Millis, Timer)> {
        let mut out = Vec::new();
        for (s, ss) in &self.st.staff {
            if let Some(r) = ss.ring {
                out.push((r.until, Timer::Ring(*s)));
            }
        }
        for (k, ks) in &self.st.kiosks {
            if !ks.connected && ks.call.is_some() {
                out.push((ks.since.plus(self.config.kiosk_grace), Timer::KioskGrace(*k)));
            }
        }
        for g in self.st.groups.values() {
            for m in g.members.iter().filter(|m| m.state == MemberState::Invited) {
                out.push((m.invite_until, Timer::Invite(g.id, m.kiosk)));
            }
            if let Some(at) = self.dispatcher_gone_at(g) {
                out.push((at, Timer::DispatcherGrace(g.id)));
            }
        }
        out
    }

    /// When a group's dispatcher grace runs out, if the dispatcher is away.
    fn dispatcher_gone_at(&self, g: &Group) -> Option<Millis> {
        let since = match self.st.staff.get(&g.dispatcher) {
            Some(ss) if ss.connected => return None,
            Some(ss) => ss.since,
            None => g.started_at,
        };
        Some(since.plus(self.config.dispatcher_grace))
    }

    fn fire(&mut self, now: Millis, timer: Timer, fx: &mut Fx) {
        match timer {
            Timer::Ring(s) => {
                let Some(ss) = self.st.staff.get_mut(&s) else { return };
                if ss.ring.is_none_or(|r| r.until > now) {
                    return;
                }
                ss.presence = Presence::Away;
                self.stop_ring(s, RingStopReason::Timeout, fx);
                fx.notify(Party::Staff(s), Notice::Presence { presence: Presence::Away, forced: true });
                if let Some(a) = self.topo.approvers.get(&s) {
                    fx.towns.insert(a.town);
                }
            }
            Timer::KioskGrace(k) => {
                let Some(ks) = self.st.kiosks.get(&k) else { return };
                if ks.connected || ks.since.plus(self.config.kiosk_grace) > now {
                    return;
                }
                let Some(id) = ks.call else { return };
                match &self.st.calls[&id].state {
                    CallState::Waiting(_) => {
                        let c = self.remove_waiting(id, RingStopReason::Cancelled, fx);
                        fx.notify(
                            Party::Kiosk(k),
                            Notice::CallEnded {
                                call: id,
                                case: c.case,
                                reason: CallEndReason::GraceExpired,
                                handled_secs: 0,
                            },
                        );
                    }
                    CallState::Live(_) => {
                        self.end_live(now, id, CallEndReason::PeerGone, CallEndReason::GraceExpired, fx);
                    }
                }
            }
            Timer::Invite(g, k) => {
                let Some(group) = self.st.groups.get_mut(&g) else { return };
                let Some(m) = group.members.iter_mut().find(|m| m.kiosk == k) else { return };
                if m.state != MemberState::Invited || m.invite_until > now {
                    return;
                }
                m.state = MemberState::NoAnswer;
                fx.notify(Party::Kiosk(k), Notice::InviteExpired { group: g });
                fx.groups.insert(g);
            }
            Timer::DispatcherGrace(g) => {
                let Some(group) = self.st.groups.get(&g) else { return };
                if self.dispatcher_gone_at(group).is_some_and(|at| at <= now) {
                    self.end_group(g, GroupEndReason::DispatcherGone, fx);
                }
            }
        }
    }

    // ----- the finishing pass -----

    /// Bring rings and positions up to date in the touched towns, then tell approvers about
    /// changed queues and dispatchers about changed groups.
    fn finish(&mut self, now: Millis, fx: &mut Fx) {
        let towns: Vec<TownId> = fx.towns.iter().copied().collect();
        for t in &towns {
            self.reconcile_rings(now, *t, fx);
        }
        for t in &towns {
            self.refresh_positions(*t, fx);
        }
        for q in std::mem::take(&mut fx.queues) {
            for s in self.topo.serving(q) {
                if self.staff_online(*s) {
                    fx.notify(Party::Staff(*s), Notice::QueueSnapshot { queue: q });
                }
            }
        }
        for g in std::mem::take(&mut fx.groups) {
            if let Some(group) = self.st.groups.get(&g) {
                fx.notify(Party::Staff(group.dispatcher), self.group_state_notice(group));
            }
        }
    }

    /// Every ringable approver of the town rings for the best head call among the queues
    /// they serve (joining a ring already in progress).
    fn reconcile_rings(&mut self, now: Millis, town: TownId, fx: &mut Fx) {
        let Some(t) = self.topo.towns.get(&town) else { return };
        for a in t.approvers.clone() {
            if !self.ringable(a) {
                continue;
            }
            let mut best: Option<(OrderKey, CallId)> = None;
            for q in self.topo.served_by(a) {
                if let Some(id) = self.first_ringable(q) {
                    let key = order_key(&self.st.calls[&id]);
                    if best.is_none_or(|(k, _)| key < k) {
                        best = Some((key, id));
                    }
                }
            }
            if let Some((_, id)) = best {
                self.ring(now, a, id, fx);
            }
        }
    }

    fn refresh_positions(&mut self, town: TownId, fx: &mut Fx) {
        let queues: Vec<QueueKey> =
            self.queues.keys().filter(|q| self.topo.queue_town(**q) == Some(town)).copied().collect();
        for q in queues {
            let (avg_ms, staffed) = (self.avg_handling_ms(q), self.staffed(q));
            let ids = self.queues[&q].clone();
            for (i, id) in ids.into_iter().enumerate() {
                let position = position_number(i);
                let est = estimate_secs(position, avg_ms, staffed);
                let c = self.st.calls.get_mut(&id).expect("queues hold existing calls");
                let CallState::Waiting(w) = &mut c.state else { unreachable!("queues hold waiting calls") };
                let is_staffed = staffed > 0;
                if w.notified != Some((q, position, est)) || w.notified_staffed != Some(is_staffed) {
                    w.notified = Some((q, position, est));
                    w.notified_staffed = Some(is_staffed);
                    fx.notify(
                        Party::Kiosk(c.kiosk),
                        Notice::Position {
                            call: id,
                            queue: q,
                            position,
                            estimated_wait_secs: est,
                            staffed: is_staffed,
                        },
                    );
                }
            }
        }
    }

    // ----- building blocks -----

    fn approver(&self, staff: StaffId) -> Result<ApproverIx, QueueError> {
        match self.topo.approvers.get(&staff) {
            Some(a) => Ok(*a),
            None if self.topo.dispatchers.contains_key(&staff) => Err(QueueError::NotApprover(staff)),
            None => Err(QueueError::UnknownStaff(staff)),
        }
    }

    fn dispatcher_town(&self, staff: StaffId) -> Result<TownId, QueueError> {
        match self.topo.dispatchers.get(&staff) {
            Some(t) => Ok(*t),
            None if self.topo.approvers.contains_key(&staff) => Err(QueueError::NotDispatcher(staff)),
            None => Err(QueueError::UnknownStaff(staff)),
        }
    }

    fn kiosk_online(&self, kiosk: KioskId) -> bool {
        self.st.kiosks.get(&kiosk).is_some_and(|k| k.connected)
    }

    fn staff_online(&self, staff: StaffId) -> bool {
        self.st.staff.get(&staff).is_some_and(|s| s.connected)
    }

    /// Connected, Available, not in a call, not ringing.
    fn ringable(&self, staff: StaffId) -> bool {
        self.st
            .staff
            .get(&staff)
            .is_some_and(|s| s.connected && s.presence == Presence::Available && s.call.is_none() && s.ring.is_none())
    }

    /// Approvers serving `q` who are connected and Available or in a call.
    fn staffed(&self, q: QueueKey) -> u64 {
        let n = self
            .topo
            .serving(q)
            .iter()
            .filter(|s| {
                self.st
                    .staff
                    .get(s)
                    .is_some_and(|s| s.connected && (s.call.is_some() || s.presence == Presence::Available))
            })
            .count();
        n as u64
    }

    fn avg_handling_ms(&self, q: QueueKey) -> u64 {
        match self.st.stats.get(&q) {
            Some(samples) if !samples.is_empty() => samples.iter().sum::<u64>() / samples.len() as u64,
            _ => model::duration_ms(self.config.default_handling_time),
        }
    }

    fn queue_len(&self, q: QueueKey) -> usize {
        self.queues.get(&q).map_or(0, Vec::len)
    }

    /// The route with the shortest estimated wait for a newcomer (ties: first listed, i.e.
    /// lowest window id); with `respect_limit`, full queues are skipped.
    fn best_route(&self, routes: &[QueueKey], respect_limit: bool) -> Option<QueueKey> {
        routes.iter().copied().filter(|q| !respect_limit || self.queue_len(*q) < self.config.max_queue_len).min_by_key(
            |q| {
                let position = position_number(self.queue_len(*q));
                estimate_secs(position.saturating_add(1), self.avg_handling_ms(*q), self.staffed(*q))
            },
        )
    }

    /// The first call of a queue whose kiosk is connected.
    fn first_ringable(&self, q: QueueKey) -> Option<CallId> {
        self.queues.get(&q)?.iter().copied().find(|id| self.kiosk_online(self.st.calls[id].kiosk))
    }

    fn position_in_queue(&self, call: CallId) -> Option<u32> {
        let CallState::Waiting(w) = &self.st.calls.get(&call)?.state else { return None };
        let i = self.queues.get(&w.queue)?.iter().position(|id| *id == call)?;
        Some(position_number(i))
    }

    fn joined_group_of(&self, kiosk: KioskId) -> Option<GroupId> {
        self.st
            .groups
            .values()
            .find(|g| g.members.iter().any(|m| m.kiosk == kiosk && m.state == MemberState::Joined))
            .map(|g| g.id)
    }

    fn member_index(&self, kiosk: KioskId, group: GroupId) -> Result<usize, QueueError> {
        if !self.topo.kiosks.contains_key(&kiosk) {
            return Err(QueueError::UnknownKiosk(kiosk));
        }
        let g = self.st.groups.get(&group).ok_or(QueueError::UnknownGroup(group))?;
        g.members.iter().position(|m| m.kiosk == kiosk).ok_or(QueueError::NotMember(kiosk, group))
    }

    fn set_member_state(&mut self, group: GroupId, idx: usize, state: MemberState) {
        self.st.groups.get_mut(&group).expect("checked by caller").members[idx].state = state;
    }

    fn dirty_queue(&self, q: QueueKey, fx: &mut Fx) {
        fx.queues.insert(q);
        self.dirty_town_of(q, fx);
    }

    fn dirty_town_of(&self, q: QueueKey, fx: &mut Fx) {
        if let Some(t) = self.topo.queue_town(q) {
            fx.towns.insert(t);
        }
    }

    fn dirty_groups_of(&self, kiosk: KioskId, fx: &mut Fx) {
        for g in self.st.groups.values() {
            if g.members
                .iter()
                .any(|m| m.kiosk == kiosk && matches!(m.state, MemberState::Invited | MemberState::Joined))
            {
                fx.groups.insert(g.id);
            }
        }
    }

    fn rebuild_queues(&mut self) {
        self.queues.clear();
        for c in self.st.calls.values() {
            if let CallState::Waiting(w) = &c.state {
                self.queues.entry(w.queue).or_default().push(c.id);
            }
        }
        let calls = &self.st.calls;
        for ids in self.queues.values_mut() {
            ids.sort_by_key(|id| order_key(&calls[id]));
        }
    }

    fn insert_sorted(&mut self, q: QueueKey, id: CallId) {
        let calls = &self.st.calls;
        let key = order_key(&calls[&id]);
        let ids = self.queues.entry(q).or_default();
        let at = ids.partition_point(|other| order_key(&calls[other]) < key);
        ids.insert(at, id);
    }

    fn remove_from_queue(&mut self, q: QueueKey, id: CallId) {
        if let Some(ids) = self.queues.get_mut(&q) {
            ids.retain(|x| *x != id);
            if ids.is_empty() {
                self.queues.remove(&q);
            }
        }
    }

    fn ring(&mut self, now: Millis, staff: StaffId, id: CallId, fx: &mut Fx) {
        let until = now.plus(self.config.ring_timeout);
        self.st.staff.get_mut(&staff).expect("ringable staff exist").ring = Some(Ring { call: id, until });
        if let CallState::Waiting(w) = &mut self.st.calls.get_mut(&id).expect("ring an existing call").state {
            w.ringing.insert(staff);
        }
        if let Some(n) = self.ring_notice(id) {
            fx.notify(Party::Staff(staff), n);
        }
    }

    /// Stop one approver's ring, telling them why.
    fn stop_ring(&mut self, staff: StaffId, reason: RingStopReason, fx: &mut Fx) {
        let Some(r) = self.st.staff.get_mut(&staff).and_then(|s| s.ring.take()) else { return };
        if let Some(CallState::Waiting(w)) = self.st.calls.get_mut(&r.call).map(|c| &mut c.state) {
            w.ringing.remove(&staff);
        }
        fx.notify(Party::Staff(staff), Notice::RingStopped { call: r.call, reason });
        if let Some(a) = self.topo.approvers.get(&staff) {
            fx.towns.insert(a.town);
        }
    }

    /// Stop every ring of a waiting call.
    fn stop_call_rings(&mut self, id: CallId, reason: RingStopReason, fx: &mut Fx) {
        let Some(CallState::Waiting(w)) = self.st.calls.get_mut(&id).map(|c| &mut c.state) else { return };
        for s in std::mem::take(&mut w.ringing) {
            if let Some(ss) = self.st.staff.get_mut(&s) {
                ss.ring = None;
            }
            fx.notify(Party::Staff(s), Notice::RingStopped { call: id, reason });
            if let Some(a) = self.topo.approvers.get(&s) {
                fx.towns.insert(a.town);
            }
        }
    }

    /// Take a waiting call out of its queue and out of the machine.
    fn remove_waiting(&mut self, id: CallId, reason: RingStopReason, fx: &mut Fx) -> Call {
        self.stop_call_rings(id, reason, fx);
        let c = self.st.calls.remove(&id).expect("remove an existing call");
        if let CallState::Waiting(w) = &c.state {
            self.remove_from_queue(w.queue, id);
            self.dirty_queue(w.queue, fx);
        }
        if let Some(ks) = self.st.kiosks.get_mut(&c.kiosk) {
            ks.call = None;
        }
        c
    }

    /// End a live call for both sides.
    fn end_live(
        &mut self,
        now: Millis,
        id: CallId,
        staff_reason: CallEndReason,
        kiosk_reason: CallEndReason,
        fx: &mut Fx,
    ) {
        let c = self.st.calls.remove(&id).expect("end an existing call");
        let CallState::Live(l) = c.state else { unreachable!("end_live on a live call") };
        let handled_secs = now.secs_since(l.answered_at);
        if let Some(ks) = self.st.kiosks.get_mut(&c.kiosk) {
            ks.call = None;
        }
        if let Some(ss) = self.st.staff.get_mut(&l.staff) {
            ss.call = None;
        }
        fx.act(Action::CloseRoom { room: Room::Call(id) });
        fx.notify(
            Party::Staff(l.staff),
            Notice::CallEnded { call: id, case: c.case, reason: staff_reason, handled_secs },
        );
        fx.notify(
            Party::Kiosk(c.kiosk),
            Notice::CallEnded { call: id, case: c.case, reason: kiosk_reason, handled_secs },
        );
        if let Some(a) = self.topo.approvers.get(&l.staff) {
            fx.towns.insert(a.town);
        }
        self.dirty_town_of(l.from_queue, fx);
    }

    /// A live call whose approver is gone goes back to the head of the queue it came from
    /// (or, if that queue is gone, of a queue its matter routes to; failing that it ends).
    fn requeue_at_head(&mut self, now: Millis, id: CallId, reason: BackReason, fx: &mut Fx) {
        let c = &self.st.calls[&id];
        let CallState::Live(l) = &c.state else { return };
        let q = if self.topo.queue_exists(l.from_queue) {
            Some(l.from_queue)
        } else {
            let routes = self.topo.kiosks.get(&c.kiosk).map(|k| self.topo.routes(k.town, c.matter));
            routes.and_then(|r| self.best_route(&r, false))
        };
        match q {
            Some(q) => self.make_waiting_at_head(now, id, q, reason, fx),
            None => self.end_live(now, id, CallEndReason::NoWindow, CallEndReason::NoWindow, fx),
        }
    }

    /// Live call → waiting at the head of `q`; its room closes.
    fn make_waiting_at_head(&mut self, now: Millis, id: CallId, q: QueueKey, reason: BackReason, fx: &mut Fx) {
        let rank = self.st.next_head;
        self.st.next_head -= 1;
        let c = self.st.calls.get_mut(&id).expect("requeue an existing call");
        let CallState::Live(l) = c.state else { unreachable!("requeue a live call") };
        c.state = CallState::Waiting(Waiting {
            queue: q,
            rank,
            enqueued_at: now,
            back: Some(reason),
            ringing: BTreeSet::new(),
            notified: None,
            notified_staffed: None,
        });
        let kiosk = c.kiosk;
        self.insert_sorted(q, id);
        if let Some(ss) = self.st.staff.get_mut(&l.staff) {
            ss.call = None;
        }
        if let Some(a) = self.topo.approvers.get(&l.staff) {
            fx.towns.insert(a.town);
        }
        fx.act(Action::CloseRoom { room: Room::Call(id) });
        fx.notify(Party::Kiosk(kiosk), Notice::BackInQueue { call: id, queue: q, reason });
        self.dirty_queue(q, fx);
    }

    fn end_group(&mut self, group: GroupId, reason: GroupEndReason, fx: &mut Fx) {
        let Some(g) = self.st.groups.remove(&group) else { return };
        for m in &g.members {
            if matches!(m.state, MemberState::Invited | MemberState::Joined) {
                fx.notify(Party::Kiosk(m.kiosk), Notice::GroupEnded { group, reason });
            }
        }
        fx.notify(Party::Staff(g.dispatcher), Notice::GroupEnded { group, reason });
        fx.act(Action::CloseRoom { room: Room::Group(group) });
    }

    /// Make the state agree with a (new) topology. See `set_topology`.
    /// A town switched to 无差别受理: the calls waiting at its windows move to the town-wide
    /// queue, keeping their order keys (so their age order), and ring whoever serves it.
    fn merge_into_town_queue(&mut self, town: TownId, fx: &mut Fx) {
        let to = QueueKey::Town(town);
        for from in self.topo.town_queues(town).into_iter().filter(|q| *q != to) {
            for id in self.queues.get(&from).cloned().unwrap_or_default() {
                self.stop_call_rings(id, RingStopReason::NotServed, fx);
                self.remove_from_queue(from, id);
                if let CallState::Waiting(w) = &mut self.st.calls.get_mut(&id).expect("exists").state {
                    w.queue = to;
                }
                self.insert_sorted(to, id);
                self.dirty_queue(from, fx);
                self.dirty_queue(to, fx);
            }
        }
    }

    fn reconcile_topology(&mut self, now: Millis, fx: &mut Fx) {
        // Removed kiosks: their calls end, their group seats are vacated.
        let gone: Vec<KioskId> = self.st.kiosks.keys().filter(|k| !self.topo.kiosks.contains_key(k)).copied().collect();
        for k in gone {
            if let Some(id) = self.st.kiosks[&k].call {
                if matches!(self.st.calls[&id].state, CallState::Waiting(_)) {
                    let c = self.remove_waiting(id, RingStopReason::Cancelled, fx);
                    fx.notify(
                        Party::Kiosk(k),
                        Notice::CallEnded { call: id, case: c.case, reason: CallEndReason::Removed, handled_secs: 0 },
                    );
                } else {
                    self.end_live(now, id, CallEndReason::Removed, CallEndReason::Removed, fx);
                }
            }
            self.st.kiosks.remove(&k);
        }
        for g in self.st.groups.values_mut() {
            for m in &mut g.members {
                if self.topo.kiosks.contains_key(&m.kiosk) {
                    continue;
                }
                if m.state == MemberState::Joined {
                    fx.act(Action::RemoveFromRoom { room: Room::Group(g.id), party: Party::Kiosk(m.kiosk) });
                }
                if matches!(m.state, MemberState::Invited | MemberState::Joined) {
                    m.state = MemberState::Left;
                    fx.groups.insert(g.id);
                }
            }
        }
        // Staff: rings for queues no longer served stop; a non-approver's live call goes back.
        let staff: Vec<StaffId> = self.st.staff.keys().copied().collect();
        for s in staff {
            let served = self.topo.served_by(s);
            let (ring, call) = (self.st.staff[&s].ring, self.st.staff[&s].call);
            if let Some(r) = ring {
                let q = match &self.st.calls[&r.call].state {
                    CallState::Waiting(w) => Some(w.queue),
                    CallState::Live(_) => None,
                };
                if !q.is_some_and(|q| served.contains(&q)) {
                    self.stop_ring(s, RingStopReason::NotServed, fx);
                }
            }
            if let Some(id) = call
                && !self.topo.approvers.contains_key(&s)
            {
                self.requeue_at_head(now, id, BackReason::ApproverGone { staff: s }, fx);
            }
            if !self.topo.approvers.contains_key(&s) && !self.topo.dispatchers.contains_key(&s) {
                self.st.staff.remove(&s);
            }
        }
        // Waiting calls in vanished queues: re-route keeping their order key, or end.
        let orphans: Vec<QueueKey> = self.queues.keys().filter(|q| !self.topo.queue_exists(**q)).copied().collect();
        for q in orphans {
            for id in self.queues.get(&q).cloned().unwrap_or_default() {
                self.stop_call_rings(id, RingStopReason::NotServed, fx);
                let c = &self.st.calls[&id];
                let routes = self.topo.kiosks.get(&c.kiosk).map(|k| self.topo.routes(k.town, c.matter));
                match routes.and_then(|r| self.best_route(&r, false)) {
                    Some(nq) => {
                        self.remove_from_queue(q, id);
                        if let CallState::Waiting(w) = &mut self.st.calls.get_mut(&id).expect("exists").state {
                            w.queue = nq;
                        }
                        self.insert_sorted(nq, id);
                        self.dirty_queue(nq, fx);
                    }
                    None => {
                        let c = self.remove_waiting(id, RingStopReason::NotServed, fx);
                        fx.notify(
                            Party::Kiosk(c.kiosk),
                            Notice::CallEnded {
                                call: id,
                                case: c.case,
                                reason: CallEndReason::NoWindow,
                                handled_secs: 0,
                            },
                        );
                    }
                }
            }
        }
        // Groups whose dispatcher is gone or moved.
        let ended: Vec<GroupId> = self
            .st
            .groups
            .values()
            .filter(|g| self.topo.dispatchers.get(&g.dispatcher) != Some(&g.town))
            .map(|g| g.id)
            .collect();
        for g in ended {
            self.end_group(g, GroupEndReason::Removed, fx);
        }
        let topo = &self.topo;
        self.st.stats.retain(|q, _| topo.queue_exists(*q));
    }

    // ----- notices -----

    fn position_notice(&self, id: CallId) -> Option<Notice> {
        let CallState::Waiting(w) = &self.st.calls.get(&id)?.state else { return None };
        let position = self.position_in_queue(id)?;
        let staffed = self.staffed(w.queue);
        let est = estimate_secs(position, self.avg_handling_ms(w.queue), staffed);
        Some(Notice::Position { call: id, queue: w.queue, position, estimated_wait_secs: est, staffed: staffed > 0 })
    }

    fn ring_notice(&self, id: CallId) -> Option<Notice> {
        let c = self.st.calls.get(&id)?;
        let CallState::Waiting(w) = &c.state else { return None };
        Some(Notice::Ring {
            call: id,
            queue: w.queue,
            kiosk: c.kiosk,
            village: c.village,
            matter: c.matter,
            case: c.case,
        })
    }

    fn call_started_notice(&self, id: CallId) -> Option<Notice> {
        let c = self.st.calls.get(&id)?;
        let CallState::Live(l) = &c.state else { return None };
        Some(Notice::CallStarted {
            call: id,
            room: Room::Call(id),
            kiosk: c.kiosk,
            village: c.village,
            staff: l.staff,
            window: l.window,
            matter: c.matter,
            case: c.case,
        })
    }

    fn member_views(&self, g: &Group) -> Vec<MemberView> {
        g.members
            .iter()
            .map(|m| {
                let status = match m.state {
                    MemberState::Invited | MemberState::Joined if !self.kiosk_online(m.kiosk) => MemberStatus::Offline,
                    MemberState::Invited => MemberStatus::Invited,
                    MemberState::Joined => MemberStatus::Joined,
                    MemberState::Declined => MemberStatus::Declined,
                    MemberState::Left => MemberStatus::Left,
                    MemberState::NoAnswer => MemberStatus::NoAnswer,
                };
                MemberView { kiosk: m.kiosk, village: m.village, status }
            })
            .collect()
    }

    fn group_state_notice(&self, g: &Group) -> Notice {
        Notice::GroupState { group: g.id, room: Room::Group(g.id), members: self.member_views(g) }
    }

    // ----- self-check -----

    /// Check the machine's internal invariants; `Err` describes the first violation.
    /// O(size of the state); meant for tests (the glue's included).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut rebuilt = self.clone();
        rebuilt.rebuild_queues();
        if rebuilt.queues != self.queues {
            return Err(format!("queue index {:?} differs from calls {:?}", self.queues, rebuilt.queues));
        }
        for (q, ids) in &self.queues {
            if ids.is_empty() {
                return Err(format!("empty queue entry {q:?}"));
            }
            if !self.topo.queue_exists(*q) {
                return Err(format!("calls wait in vanished queue {q:?}"));
            }
        }
        for (id, c) in &self.st.calls {
            if *id != c.id || id.0 >= self.st.next_call {
                return Err(format!("bad call id {id}"));
            }
            if self.st.kiosks.get(&c.kiosk).and_then(|k| k.call) != Some(*id) {
                return Err(format!("kiosk {} does not point at its call {id}", c.kiosk));
            }
            match &c.state {
                CallState::Waiting(w) => {
                    if w.rank <= self.st.next_head || w.rank >= self.st.next_tail {
                        return Err(format!("call {id} rank {} outside counters", w.rank));
                    }
                    for s in &w.ringing {
                        if self.st.staff.get(s).and_then(|s| s.ring).map(|r| r.call) != Some(*id) {
                            return Err(format!("call {id} rings {s} who does not ring for it"));
                        }
                    }
                    if !w.ringing.is_empty() && !self.kiosk_online(c.kiosk) {
                        return Err(format!("held call {id} rings"));
                    }
                }
                CallState::Live(l) => {
                    let ss = self.st.staff.get(&l.staff);
                    if ss.and_then(|s| s.call) != Some(*id) || !ss.is_some_and(|s| s.connected) {
                        return Err(format!("live call {id}: approver {} not connected or not in it", l.staff));
                    }
                }
            }
        }
        for (k, ks) in &self.st.kiosks {
            if let Some(id) = ks.call
                && self.st.calls.get(&id).map(|c| c.kiosk) != Some(*k)
            {
                return Err(format!("kiosk {k} points at call {id} that is not its own"));
            }
            if ks.call.is_some() && self.joined_group_of(*k).is_some() {
                return Err(format!("kiosk {k} is in a call and in a group"));
            }
            let joined = self
                .st
                .groups
                .values()
                .filter(|g| g.members.iter().any(|m| m.kiosk == *k && m.state == MemberState::Joined))
                .count();
            if joined > 1 {
                return Err(format!("kiosk {k} joined {joined} groups"));
            }
        }
        for (s, ss) in &self.st.staff {
            if let Some(id) = ss.call {
                match self.st.calls.get(&id).map(|c| &c.state) {
                    Some(CallState::Live(l)) if l.staff == *s => {}
                    _ => return Err(format!("staff {s} points at call {id} that is not theirs")),
                }
            }
            if let Some(r) = ss.ring {
                if !ss.connected || ss.presence != Presence::Available || ss.call.is_some() {
                    return Err(format!("staff {s} rings but is not ringable"));
                }
                match self.st.calls.get(&r.call).map(|c| &c.state) {
                    Some(CallState::Waiting(w)) if w.ringing.contains(s) => {
                        if !self.topo.served_by(*s).contains(&w.queue) {
                            return Err(format!("staff {s} rings for a queue they do not serve"));
                        }
                    }
                    _ => return Err(format!("staff {s} rings for call {} that does not ring them", r.call)),
                }
            }
            if self.ringable(*s) {
                for q in self.topo.served_by(*s) {
                    if let Some(id) = self.first_ringable(q) {
                        return Err(format!("approver {s} is idle while call {id} waits unrung in {q:?}"));
                    }
                }
            }
        }
        let mut dispatchers = BTreeSet::new();
        for (id, g) in &self.st.groups {
            if id.0 >= self.st.next_group || !dispatchers.insert(g.dispatcher) {
                return Err(format!("bad group {id}"));
            }
        }
        for samples in self.st.stats.values() {
            if samples.len() > self.config.estimate_window {
                return Err("too many handling samples".into());
            }
        }
        Ok(())
    }
}

/// 0-based index → 1-based position.
fn position_number(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX - 1).saturating_add(1)
}

/// `position × average handling time ÷ max(1, staffed)`, rounded to whole seconds.
fn estimate_secs(position: u32, avg_handling_ms: u64, staffed: u64) -> u64 {
    let num = u128::from(position) * u128::from(avg_handling_ms);
    let den = u128::from(staffed.max(1)) * 1000;
    u64::try_from((num + den / 2) / den).unwrap_or(u64::MAX)
}
