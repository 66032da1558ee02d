//! Unit tests: time is driven by hand, every step checks the machine's invariants, and every
//! refused input is checked to have changed nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;

// ----- the test county -----
//
// Town 1 routes by matter: CIVIL takes 101 and 102, SOCIAL 201, COMPRE 301 and 102.
// Town 2 is 无差别综合受理 (any_window) with windows T2A and T2B. Town 3 has one window.

const T1: TownId = TownId(1);
const T2: TownId = TownId(2);
const T3: TownId = TownId(3);

const CIVIL: WindowId = WindowId(11);
const SOCIAL: WindowId = WindowId(12);
const COMPRE: WindowId = WindowId(13);
const T2A: WindowId = WindowId(21);
const T2B: WindowId = WindowId(22);
const T3W: WindowId = WindowId(31);

const M_CIVIL: MatterId = MatterId(101);
const M_SHARED: MatterId = MatterId(102);
const M_SOCIAL: MatterId = MatterId(201);
const M_COMPRE: MatterId = MatterId(301);
const M_NOWHERE: MatterId = MatterId(999);

const V1: VillageId = VillageId(1001);
const V2: VillageId = VillageId(1002);
const V3: VillageId = VillageId(1003);
const V_EMPTY: VillageId = VillageId(1004);
const V21: VillageId = VillageId(2001);
const V22: VillageId = VillageId(2002);
const V31: VillageId = VillageId(3001);

const K1: KioskId = KioskId(1); // V1
const K2: KioskId = KioskId(2); // V2
const K3: KioskId = KioskId(3); // V3
const K4: KioskId = KioskId(4); // V1, second device
const K21: KioskId = KioskId(21); // V21
const K22: KioskId = KioskId(22); // V22
const K31: KioskId = KioskId(31); // V31

const A1: StaffId = StaffId(101); // CIVIL
const A2: StaffId = StaffId(102); // CIVIL
const A3: StaffId = StaffId(103); // SOCIAL
const A4: StaffId = StaffId(104); // COMPRE
const B1: StaffId = StaffId(201); // T2A
const B2: StaffId = StaffId(202); // T2A
const B3: StaffId = StaffId(203); // T2B
const C1: StaffId = StaffId(301); // T3W
const D1: StaffId = StaffId(901); // dispatcher of town 1
const D2: StaffId = StaffId(902); // dispatcher of town 2

const NOBODY_KIOSK: KioskId = KioskId(777);
const NOBODY_STAFF: StaffId = StaffId(777);

fn topology() -> Topology {
    let window = |id, town, matters: &[MatterId]| Window { id, town, matters: matters.iter().copied().collect() };
    Topology {
        towns: vec![
            Town { id: T1, any_window: false },
            Town { id: T2, any_window: true },
            Town { id: T3, any_window: false },
        ],
        windows: vec![
            window(CIVIL, T1, &[M_CIVIL, M_SHARED]),
            window(SOCIAL, T1, &[M_SOCIAL]),
            window(COMPRE, T1, &[M_COMPRE, M_SHARED]),
            window(T2A, T2, &[M_CIVIL]),
            window(T2B, T2, &[M_SOCIAL]),
            window(T3W, T3, &[M_CIVIL]),
        ],
        villages: [(V1, T1), (V2, T1), (V3, T1), (V_EMPTY, T1), (V21, T2), (V22, T2), (V31, T3)]
            .into_iter()
            .map(|(id, town)| Village { id, town })
            .collect(),
        kiosks: [(K1, V1), (K2, V2), (K3, V3), (K4, V1), (K21, V21), (K22, V22), (K31, V31)]
            .into_iter()
            .map(|(id, village)| Kiosk { id, village })
            .collect(),
        approvers: [(A1, CIVIL), (A2, CIVIL), (A3, SOCIAL), (A4, COMPRE), (B1, T2A), (B2, T2A), (B3, T2B), (C1, T3W)]
            .into_iter()
            .map(|(id, window)| Approver { id, window })
            .collect(),
        dispatchers: vec![Dispatcher { id: D1, town: T1 }, Dispatcher { id: D2, town: T2 }],
    }
}

const T0: Millis = Millis(1_700_000_000_000);

fn pk(k: KioskId) -> Party {
    Party::Kiosk(k)
}

fn ps(s: StaffId) -> Party {
    Party::Staff(s)
}

fn w(id: WindowId) -> QueueKey {
    QueueKey::Window(id)
}

/// The machine plus a hand-driven clock.
struct H {
    q: Queue,
    now: Millis,
}

impl H {
    fn new() -> H {
        H::with_config(Config::default())
    }

    fn with_config(config: Config) -> H {
        H { q: Queue::new(&topology(), config).unwrap(), now: T0 }
    }

    fn check(&self) {
        if let Err(e) = self.q.check_invariants() {
            panic!("invariant broken: {e}");
        }
    }

    fn ok(&mut self, input: Input) -> Vec<Action> {
        let actions = self.q.handle(self.now, input.clone()).unwrap_or_else(|e| panic!("{input:?} refused: {e}"));
        self.check();
        actions
    }

    /// The input must be refused and must change nothing.
    fn err(&mut self, input: Input) -> QueueError {
        let before = self.q.snapshot().clone();
        let queues_before = self.q.queues.clone();
        let e = self.q.handle(self.now, input.clone()).expect_err(&format!("{input:?} should be refused"));
        assert_eq!(self.q.snapshot(), &before, "refused {input:?} ({e}) changed the state");
        assert_eq!(self.q.queues, queues_before, "refused {input:?} ({e}) changed the queue index");
        self.check();
        e
    }

    fn advance(&mut self, secs: u64) {
        self.now = Millis(self.now.0 + secs * 1000);
    }

    fn tick(&mut self) -> Vec<Action> {
        let actions = self.q.handle_timeout(self.now);
        self.check();
        actions
    }

    fn kiosks_on(&mut self, kiosks: &[KioskId]) {
        for k in kiosks {
            self.ok(Input::KioskConnected { kiosk: *k });
        }
    }

    fn staff_on(&mut self, staff: &[StaffId]) -> Vec<Action> {
        staff.iter().flat_map(|s| self.ok(Input::StaffConnected { staff: *s })).collect()
    }

    fn request(&mut self, kiosk: KioskId, matter: MatterId) -> CallId {
        self.ok(Input::RequestCall { kiosk, matter, case: None, priority: Priority::NORMAL });
        self.q.call_of(pk(kiosk)).unwrap()
    }

    fn answer(&mut self, staff: StaffId, call: CallId) -> Vec<Action> {
        self.ok(Input::Answer { staff, call })
    }

    fn presence(&mut self, staff: StaffId, presence: Presence) -> Vec<Action> {
        self.ok(Input::SetPresence { staff, presence })
    }

    fn items(&self, q: QueueKey) -> Vec<CallId> {
        self.q.queue_items(q).into_iter().map(|i| i.call).collect()
    }

    fn ringing(&self, call: CallId) -> Vec<StaffId> {
        match self.q.call(call).unwrap().status {
            CallStatus::Waiting { ringing, .. } => ringing,
            CallStatus::Live { .. } => panic!("call {call} is live"),
        }
    }

    fn live_with(&self, call: CallId) -> Option<StaffId> {
        match self.q.call(call)?.status {
            CallStatus::Live { staff, .. } => Some(staff),
            CallStatus::Waiting { .. } => None,
        }
    }
}

fn notices_to(actions: &[Action], to: Party) -> Vec<Notice> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notify { to: t, notice } if *t == to => Some(notice.clone()),
            _ => None,
        })
        .collect()
}

fn rings(actions: &[Action]) -> Vec<(StaffId, CallId)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notify { to: Party::Staff(s), notice: Notice::Ring { call, .. } } => Some((*s, *call)),
            _ => None,
        })
        .collect()
}

fn ring_stops(actions: &[Action]) -> Vec<(StaffId, CallId, RingStopReason)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notify { to: Party::Staff(s), notice: Notice::RingStopped { call, reason } } => {
                Some((*s, *call, *reason))
            }
            _ => None,
        })
        .collect()
}

/// (kiosk, position, estimate) of every Position notice, in order.
fn positions(actions: &[Action]) -> Vec<(KioskId, u32, u64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notify { to: Party::Kiosk(k), notice: Notice::Position { position, estimated_wait_secs, .. } } => {
                Some((*k, *position, *estimated_wait_secs))
            }
            _ => None,
        })
        .collect()
}

fn ends(actions: &[Action]) -> Vec<(Party, CallId, CallEndReason, u64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Notify { to, notice: Notice::CallEnded { call, reason, handled_secs, .. } } => {
                Some((*to, *call, *reason, *handled_secs))
            }
            _ => None,
        })
        .collect()
}

fn snapshots_to(actions: &[Action], staff: StaffId) -> Vec<QueueKey> {
    notices_to(actions, ps(staff))
        .into_iter()
        .filter_map(|n| match n {
            Notice::QueueSnapshot { queue } => Some(queue),
            _ => None,
        })
        .collect()
}

fn member_statuses(h: &H, group: GroupId) -> Vec<(KioskId, MemberStatus)> {
    h.q.group_members(group).unwrap().into_iter().map(|m| (m.kiosk, m.status)).collect()
}

// ----- routing and enqueueing -----

#[test]
fn request_waits_on_the_window_that_accepts_the_matter() {
    let mut h = H::new();
    h.kiosks_on(&[K1]);
    h.staff_on(&[A3]);
    let a =
        h.ok(Input::RequestCall { kiosk: K1, matter: M_SOCIAL, case: Some(CaseId(77)), priority: Priority::NORMAL });
    let call = h.q.call_of(pk(K1)).unwrap();
    assert_eq!(
        notices_to(&a, pk(K1)),
        vec![Notice::Position { call, queue: w(SOCIAL), position: 1, estimated_wait_secs: 300, staffed: true }]
    );
    assert_eq!(snapshots_to(&a, A3), vec![w(SOCIAL)]);
    let items = h.q.queue_items(w(SOCIAL));
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!((item.call, item.kiosk, item.village, item.matter), (call, K1, V1, M_SOCIAL));
    assert_eq!((item.case, item.requested_at, item.position), (Some(CaseId(77)), T0, 1));
    assert!(item.kiosk_online && !item.transferred && !item.returned);
    assert!(h.items(w(CIVIL)).is_empty());
}

#[test]
fn request_with_two_accepting_windows_picks_the_shorter_estimated_wait() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2, K3]);
    // Both empty: the tie goes to the lower window id.
    let c1 = h.request(K1, M_SHARED);
    assert_eq!(h.items(w(CIVIL)), vec![c1]);
    // CIVIL now has one waiting: COMPRE is shorter.
    let c2 = h.request(K2, M_SHARED);
    assert_eq!(h.items(w(COMPRE)), vec![c2]);
    let c3 = h.request(K3, M_SHARED);
    assert_eq!(h.items(w(CIVIL)), vec![c1, c3]);
}

#[test]
fn any_window_town_queues_town_wide_and_rings_every_approver_of_the_town() {
    let mut h = H::new();
    h.kiosks_on(&[K21]);
    h.staff_on(&[B1, B2, B3]);
    // Not even accepted by a window: in an any_window town every window takes every matter.
    let a = h.ok(Input::RequestCall { kiosk: K21, matter: M_NOWHERE, case: None, priority: Priority::NORMAL });
    let call = h.q.call_of(pk(K21)).unwrap();
    assert_eq!(h.items(QueueKey::Town(T2)), vec![call]);
    assert_eq!(rings(&a), vec![(B1, call), (B2, call), (B3, call)]);
    assert_eq!(h.q.queues_served_by(B3), vec![w(T2B), QueueKey::Town(T2)]);
    assert_eq!(h.q.approvers_serving(QueueKey::Town(T2)), vec![B1, B2, B3]);
    // Three approvers serve it: 1 × 300 s ÷ 3.
    assert_eq!(positions(&a), vec![(K21, 1, 100)]);
    h.answer(B3, call);
}

#[test]
fn a_matter_no_window_accepts_is_refused_with_no_window() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K31]);
    let e = h.err(Input::RequestCall { kiosk: K1, matter: M_NOWHERE, case: None, priority: Priority::NORMAL });
    assert_eq!(e, QueueError::NoWindow { town: T1, matter: M_NOWHERE });
    assert_eq!(e.kind(), ErrorKind::NoWindow);
    // Town 3 has a window, but not for social security.
    assert_eq!(
        h.err(Input::RequestCall { kiosk: K31, matter: M_SOCIAL, case: None, priority: Priority::NORMAL }),
        QueueError::NoWindow { town: T3, matter: M_SOCIAL }
    );
}

#[test]
fn a_kiosk_with_a_waiting_or_live_call_cannot_request_another() {
    let mut h = H::new();
    h.kiosks_on(&[K1]);
    h.staff_on(&[A1]);
    let call = h.request(K1, M_CIVIL);
    let e = h.err(Input::RequestCall { kiosk: K1, matter: M_SOCIAL, case: None, priority: Priority::NORMAL });
    assert_eq!(e, QueueError::KioskBusy(K1));
    assert_eq!(e.kind(), ErrorKind::Conflict);
    h.answer(A1, call);
    assert_eq!(
        h.err(Input::RequestCall { kiosk: K1, matter: M_CIVIL, case: None, priority: Priority::NORMAL }),
        QueueError::KioskBusy(K1)
    );
}

#[test]
fn unknown_or_disconnected_kiosks_cannot_request() {
    let mut h = H::new();
    assert_eq!(
        h.err(Input::RequestCall { kiosk: NOBODY_KIOSK, matter: M_CIVIL, case: None, priority: Priority::NORMAL }),
        QueueError::UnknownKiosk(NOBODY_KIOSK)
    );
    assert_eq!(
        h.err(Input::RequestCall { kiosk: K1, matter: M_CIVIL, case: None, priority: Priority::NORMAL }),
        QueueError::NotConnected(pk(K1))
    );
}

#[test]
fn queue_full_refuses_new_requests_and_changes_nothing() {
    let mut h = H::with_config(Config { max_queue_len: 2, ..Config::default() });
    h.kiosks_on(&[K1, K2, K3]);
    h.request(K1, M_CIVIL);
    h.request(K2, M_CIVIL);
    let e = h.err(Input::RequestCall { kiosk: K3, matter: M_CIVIL, case: None, priority: Priority::NORMAL });
    assert_eq!(e, QueueError::QueueFull(w(CIVIL)));
    assert_eq!(e.kind(), ErrorKind::QueueFull);
    // A matter with a second window goes there.
    let c3 = h.request(K3, M_SHARED);
    assert_eq!(h.items(w(COMPRE)), vec![c3]);
}

#[test]
fn waiting_kiosks_see_fifo_positions_and_estimates_that_follow_staffing() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2, K3]);
    let c1 = h.request(K1, M_CIVIL);
    let a = h.ok(Input::RequestCall { kiosk: K2, matter: M_CIVIL, case: None, priority: Priority::NORMAL });
    // Only the newcomer is told: nobody else's position changed.
    assert_eq!(positions(&a), vec![(K2, 2, 600)]);
    let c3 = h.request(K3, M_CIVIL);
    assert_eq!(h.q.queue_items(w(CIVIL)).iter().map(|i| i.position).collect::<Vec<_>>(), vec![1, 2, 3]);
    // One approver: estimates unchanged (max(1, 0) = 1 before), but every kiosk learns that
    // someone staffs the window now; A1 rings for the head.
    let a = h.staff_on(&[A1]);
    assert_eq!(positions(&a), vec![(K1, 1, 300), (K2, 2, 600), (K3, 3, 900)]);
    assert_eq!(rings(&a), vec![(A1, c1)]);
    // Two approvers halve every estimate; the second joins the ring of the head.
    let a = h.staff_on(&[A2]);
    assert_eq!(positions(&a), vec![(K1, 1, 150), (K2, 2, 300), (K3, 3, 450)]);
    assert_eq!(rings(&a), vec![(A2, c1)]);
    assert_eq!(h.ringing(c1), vec![A1, A2]);
    assert!(h.ringing(c3).is_empty());
}

// ----- cancelling -----

#[test]
fn cancelling_a_waiting_call_ends_it_stops_its_rings_and_moves_the_others_up() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2, K3]);
    h.staff_on(&[A1]);
    let c1 = h.request(K1, M_CIVIL);
    let c2 = h.request(K2, M_CIVIL);
    h.request(K3, M_CIVIL);
    assert_eq!(h.ringing(c1), vec![A1]);
    let a = h.ok(Input::CancelCall { kiosk: K1, call: c1 });
    assert_eq!(ends(&a), vec![(pk(K1), c1, CallEndReason::Cancelled, 0)]);
    assert_eq!(ring_stops(&a), vec![(A1, c1, RingStopReason::Cancelled)]);
    assert_eq!(rings(&a), vec![(A1, c2)]);
    assert_eq!(positions(&a), vec![(K2, 1, 300), (K3, 2, 600)]);
    assert_eq!(snapshots_to(&a, A1), vec![w(CIVIL)]);
    assert!(h.q.call(c1).is_none());
    assert_eq!(h.q.call_of(pk(K1)), None);
    // The kiosk may ask again.
    h.request(K1, M_CIVIL);
}

#[test]
fn cancelling_someone_elses_or_a_live_or_unknown_call_is_refused_and_changes_nothing() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2]);
    h.staff_on(&[A1]);
    let c1 = h.request(K1, M_CIVIL);
    let c2 = h.request(K2, M_CIVIL);
    let e = h.err(Input::CancelCall { kiosk: K2, call: c1 });
    assert_eq!((e.clone(), e.kind()), (QueueError::NotParticipant(pk(K2), c1), ErrorKind::Forbidden));
    h.answer(A1, c1);
    let e = h.err(Input::CancelCall { kiosk: K1, call: c1 });
    assert_eq!((e.clone(), e.kind()), (QueueError::NotWaiting(c1), ErrorKind::Conflict));
    let e = h.err(Input::CancelCall { kiosk: K1, call: CallId(99) });
    assert_eq!((e.clone(), e.kind()), (QueueError::UnknownCall(CallId(99)), ErrorKind::NotFound));
    assert_eq!(h.err(Input::CancelCall { kiosk: NOBODY_KIOSK, call: c2 }), QueueError::UnknownKiosk(NOBODY_KIOSK));
}

// ----- ringing and answering -----

#[test]
fn the_head_call_rings_every_ringable_approver_of_its_queue_only() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2]);
    h.staff_on(&[A1, A2, A3, A4]);
    let a = h.ok(Input::RequestCall { kiosk: K1, matter: M_CIVIL, case: None, priority: Priority::NORMAL });
    let c1 = h.q.call_of(pk(K1)).unwrap();
    assert_eq!(rings(&a), vec![(A1, c1), (A2, c1)]);
    // Everyone of the window is ringing already: the next call waits its turn.
    let a = h.ok(Input::RequestCall { kiosk: K2, matter: M_CIVIL, case: None, priority: Priority::NORMAL });
    assert_eq!(rings(&a), vec![]);
}

#[test]
fn busy_away_and_disconnected_approvers_are_not_rung() {
    let mut h = H::new();
    h.kiosks_on(&[K1]);
    h.staff_on(&[A1, A2]);
    h.presence(A1, Presence::Busy);
    h.presence(A2, Presence::Away);
    let c1 = h.request(K1, M_CIVIL);
    assert!(h.ringing(c1).is_empty());
    h.ok(Input::StaffDisconnected { staff: A2 });
    // Available again, but disconnected: still not rung.
    h.presence(A2, Presence::Available);
    assert!(h.ringing(c1).is_empty());
    let a = h.staff_on(&[A2]);
    assert_eq!(rings(&a), vec![(A2, c1)]);
}

#[test]
fn first_answer_wins_and_the_others_stop_ringing() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2]);
    h.staff_on(&[A1, A2]);
    let c1 = h.request(K1, M_CIVIL);
    let c2 = h.request(K2, M_CIVIL);
    let a = h.answer(A2, c1);
    assert_eq!(ring_stops(&a), vec![(A1, c1, RingStopReason::AnsweredElsewhere)]);
    assert!(a.contains(&Action::OpenRoom { room: Room::Call(c1), participants: vec![pk(K1), ps(A2)] }));
    let started = Notice::CallStarted {
        call: c1,
        room: Room::Call(c1),
        kiosk: K1,
        village: V1,
        staff: A2,
        window: CIVIL,
        matter: M_CIVIL,
        case: None,
    };
    assert_eq!(notices_to(&a, pk(K1)), vec![started.clone()]);
    assert!(notices_to(&a, ps(A2)).contains(&started));
    // A1 is free again: the next call rings it; K2 moved up (A1 available + A2 in a call).
    assert_eq!(rings(&a), vec![(A1, c2)]);
    assert_eq!(positions(&a), vec![(K2, 1, 150)]);
    assert_eq!(h.live_with(c1), Some(A2));
    assert_eq!(h.q.call_of(ps(A2)), Some(c1));
    assert_eq!(h.q.live_calls(), 1);
}

#[test]
fn answering_a_call_already_answered_is_a_conflict() {
    let mut h = H::new();
    h.kiosks_on(&[K1]);
    h.staff_on(&[A1, A2]);
    let c1 = h.request(K1, M_CIVIL);
    h.answer(A1, c1);
    let e = h.err(Input::Answer { staff: A2, call: c1 });
    assert_eq!((e.clone(), e.kind()), (QueueError::AlreadyAnswered(c1), ErrorKind::Conflict));
}

#[test]
fn an_approver_in_a_call_cannot_answer_another() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2]);
    h.staff_on(&[A1]);
    let c1 = h.request(K1, M_CIVIL);
    let c2 = h.request(K2, M_CIVIL);
    h.answer(A1, c1);
    assert_eq!(h.err(Input::Answer { staff: A1, call: c2 }), QueueError::StaffBusy(A1));
}

#[test]
fn answering_outside_ones_queues_or_role_is_forbidden() {
    let mut h = H::new();
    h.kiosks_on(&[K1]);
    h.staff_on(&[A3, C1, D1]);
    let c1 = h.request(K1, M_CIVIL);
    let e = h.err(Input::Answer { staff: A3, call: c1 });
    assert_eq!((e.clone(), e.kind()), (QueueError::OutOfScope, ErrorKind::Forbidden));
    assert_eq!(h.err(Input::Answer { staff: C1, call: c1 }), QueueError::OutOfScope);
    assert_eq!(h.err(Input::Answer { staff: D1, call: c1 }), QueueError::NotApprover(D1));
    assert_eq!(h.err(Input::Answer { staff: NOBODY_STAFF, call: c1 }), QueueError::UnknownStaff(NOBODY_STAFF));
    assert_eq!(h.err(Input::Answer { staff: A1, call: c1 }), QueueError::NotConnected(ps(A1)));
    h.staff_on(&[A1]);
    assert_eq!(h.err(Input::Answer { staff: A1, call: CallId(42) }), QueueError::UnknownCall(CallId(42)));
}

#[test]
fn an_approver_may_answer_a_waiting_call_that_does_not_ring_them() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2]);
    h.staff_on(&[A1, A2]);
    let c1 = h.request(K1, M_CIVIL);
    let c2 = h.request(K2, M_CIVIL);
    assert_eq!(h.ringing(c1), vec![A1, A2]);
    // A1 takes the second call from the queue snapshot: its own ring of c1 stops.
    let a = h.answer(A1, c2);
    assert_eq!(ring_stops(&a), vec![(A1, c1, RingStopReason::AnsweredElsewhere)]);
    assert_eq!(h.ringing(c1), vec![A2]);
    assert_eq!(h.live_with(c2), Some(A1));
    // Presence does not matter for a deliberate answer.
    h.ok(Input::HangUp { by: ps(A1), call: c2 });
    h.presence(A1, Presence::Away);
    h.answer(A1, c1);
}

#[test]
fn a_held_call_whose_kiosk_is_offline_cannot_be_answered() {
    let mut h = H::new();
    h.kiosks_on(&[K1]);
    h.staff_on(&[A1]);
    let c1 = h.request(K1, M_CIVIL);
    h.ok(Input::KioskDisconnected { kiosk: K1 });
    assert_eq!(h.err(Input::Answer { staff: A1, call: c1 }), QueueError::KioskOffline(c1));
}

#[test]
fn ring_timeout_sets_approver_away_and_rings_next() {
    let mut h = H::new();
    h.kiosks_on(&[K1]);
    h.staff_on(&[A1]);
    let c1 = h.request(K1, M_CIVIL);
    assert_eq!(h.q.poll_timeout(), Some(T0.plus(Duration::from_secs(30))));
    // A2 comes in 10 s later and joins the ring with its own deadline.
    h.advance(10);
    assert_eq!(rings(&h.staff_on(&[A2])), vec![(A2, c1)]);
    h.advance(19);
    assert_eq!(h.tick(), vec![]);
    h.advance(1);
    let a = h.tick();
    assert_eq!(ring_stops(&a), vec![(A1, c1, RingStopReason::Timeout)]);
    assert_eq!(notices_to(&a, ps(A1)).last(), Some(&Notice::Presence { presence: Presence::Away, forced: true }));
    assert_eq!(h.q.presence(A1), Some(Presence::Away));
    assert_eq!(h.ringing(c1), vec![A2]);
    assert_eq!(h.q.poll_timeout(), Some(T0.plus(Duration::from_secs(40))));
    h.advance(10);
    let a = h.tick();
    assert_eq!(ring_stops(&a), vec![(A2, c1, RingStopReason::Timeout)]);
    // The call keeps its place at the head and rings whoever becomes ringable next.
    assert_eq!(h.items(w(CIVIL)), vec![c1]);
    assert!(h.ringing(c1).is_empty());
    assert_eq!(h.q.poll_timeout(), None);
    let a = h.presence(A1, Presence::Available);
    assert_eq!(rings(&a), vec![(A1, c1)]);
    // Only A1 counts as staffed now (A2 is Away).
    assert_eq!(h.q.queue_metrics(h.now).iter().find(|m| m.queue == w(CIVIL)).unwrap().staffed, 1);
}

#[test]
fn presence_changes_are_confirmed_and_leaving_available_stops_a_ring() {
    let mut h = H::new();
    h.kiosks_on(&[K1]);
    h.staff_on(&[A1, A2]);
    let c1 = h.request(K1, M_CIVIL);
    assert_eq!(
        h.q.call(c1).unwrap().status,
        CallStatus::Waiting { queue: w(CIVIL), position: 1, ringing: vec![A1, A2] }
    );
    let a = h.presence(A1, Presence::Busy);
    assert_eq!(ring_stops(&a), vec![(A1, c1, RingStopReason::PresenceChanged)]);
    assert!(notices_to(&a, ps(A1)).contains(&Notice::Presence { presence: Presence::Busy, forced: false }));
    // Fewer approvers available: the estimate doubles.
    assert_eq!(positions(&a), vec![(K1, 1, 300)]);
    assert_eq!(h.q.presence(A1), Some(Presence::Busy));
    assert_eq!(h.q.presence(D1), None);
    let a = h.presence(A1, Presence::Available);
    assert_eq!(rings(&a), vec![(A1, c1)]);
    assert_eq!(positions(&a), vec![(K1, 1, 150)]);
    // Setting the same presence again is confirmed and changes nothing else.
    let a = h.presence(A1, Presence::Available);
    assert_eq!(
        a,
        vec![Action::Notify { to: ps(A1), notice: Notice::Presence { presence: Presence::Available, forced: false } }]
    );
    assert_eq!(h.err(Input::SetPresence { staff: D1, presence: Presence::Busy }), QueueError::NotApprover(D1));
}

// ----- hanging up -----

#[test]
fn hang_up_by_the_kiosk_records_handling_time_and_the_estimate_follows() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2]);
    h.staff_on(&[A1]);
    let c1 = h.request(K1, M_CIVIL);
    h.answer(A1, c1);
    let c2 = h.request(K2, M_CIVIL);
    assert_eq!(
        h.q.state_for(pk(K2)),
        vec![Notice::Position { call: c2, queue: w(CIVIL), position: 1, estimated_wait_secs: 300, staffed: true }]
    );
    h.advance(120);
    let a = h.ok(Input::HangUp { by: pk(K1), call: c1 });
    assert_eq!(ends(&a), vec![(ps(A1), c1, CallEndReason::HangUp, 120), (pk(K1), c1, CallEndReason::HangUp, 120)]);
    assert!(a.contains(&Action::CloseRoom { room: Room::Call(c1) }));
    assert_eq!(positions(&a), vec![(K2, 1, 120)]);
    assert_eq!(rings(&a), vec![(A1, c2)]);
    let m = h.q.queue_metrics(h.now).into_iter().find(|m| m.queue == w(CIVIL)).unwrap();
    assert_eq!((m.waiting, m.oldest_wait_secs, m.avg_handling_secs, m.estimated_wait_secs), (1, 120, 120, 240));
    assert_eq!((h.q.live_calls(), h.q.waiting_calls()), (0, 1));
}

#[test]
fn hang_up_by_the_approver_ends_the_call_for_both_and_the_approver_is_rung_again() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2]);
    h.staff_on(&[A1]);
    let c1 = h.request(K1, M_CIVIL);
    let c2 = h.request(K2, M_CIVIL);
    h.answer(A1, c1);
    h.advance(45);
    let a = h.ok(Input::HangUp { by: ps(A1), call: c1 });
    assert_eq!(ends(&a), vec![(ps(A1), c1, CallEndReason::HangUp, 45), (pk(K1), c1, CallEndReason::HangUp, 45)]);
    assert_eq!(rings(&a), vec![(A1, c2)]);
    assert_eq!(positions(&a), vec![(K2, 1, 45)]);
}

#[test]
fn the_estimate_averages_the_last_n_handling_times() {
    let mut h = H::with_config(Config { estimate_window: 2, ..Config::default() });
    h.kiosks_on(&[K1, K2]);
    h.staff_on(&[A1]);
    for secs in [60, 120, 180] {
        let c = h.request(K1, M_CIVIL);
        h.answer(A1, c);
        h.advance(secs);
        h.ok(Input::HangUp { by: ps(A1), call: c });
    }
    let c = h.request(K2, M_CIVIL);
    h.answer(A1, c);
    let a = h.ok(Input::RequestCall { kiosk: K1, matter: M_CIVIL, case: None, priority: Priority::NORMAL });
    assert_eq!(positions(&a), vec![(K1, 1, 150)]);
}

#[test]
fn hanging_up_someone_elses_or_a_waiting_call_is_refused_and_changes_nothing() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2]);
    h.staff_on(&[A1, A2]);
    let c1 = h.request(K1, M_CIVIL);
    let c2 = h.request(K2, M_CIVIL);
    h.answer(A1, c1);
    assert_eq!(h.err(Input::HangUp { by: ps(A2), call: c1 }), QueueError::NotParticipant(ps(A2), c1));
    assert_eq!(h.err(Input::HangUp { by: pk(K2), call: c1 }), QueueError::NotParticipant(pk(K2), c1));
    assert_eq!(h.err(Input::HangUp { by: pk(K2), call: c2 }), QueueError::NotLive(c2));
    assert_eq!(h.err(Input::HangUp { by: ps(A2), call: c2 }), QueueError::NotParticipant(ps(A2), c2));
    assert_eq!(h.err(Input::HangUp { by: ps(A1), call: CallId(9) }), QueueError::UnknownCall(CallId(9)));
}

// ----- transfer -----

#[test]
fn transfer_puts_the_call_at_the_head_of_the_other_window_keeping_case_and_request_time() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2]);
    h.staff_on(&[A1]);
    let c1 = {
        h.ok(Input::RequestCall { kiosk: K1, matter: M_CIVIL, case: Some(CaseId(77)), priority: Priority::NORMAL });
        h.q.call_of(pk(K1)).unwrap()
    };
    h.answer(A1, c1);
    h.advance(30);
    let c2 = h.request(K2, M_SOCIAL);
    h.advance(30);
    let a = h.ok(Input::Transfer { staff: A1, call: c1, to_window: SOCIAL });
    assert!(a.contains(&Action::CloseRoom { room: Room::Call(c1) }));
    assert_eq!(ends(&a), vec![(ps(A1), c1, CallEndReason::Transferred, 60)]);
    let back = BackReason::Transferred { from: CIVIL, by: A1 };
    assert_eq!(
        notices_to(&a, pk(K1)),
        vec![
            Notice::BackInQueue { call: c1, queue: w(SOCIAL), reason: back },
            Notice::Position { call: c1, queue: w(SOCIAL), position: 1, estimated_wait_secs: 300, staffed: false },
        ]
    );
    assert_eq!(positions(&a), vec![(K1, 1, 300), (K2, 2, 600)]);
    let items = h.q.queue_items(w(SOCIAL));
    assert_eq!(items.iter().map(|i| i.call).collect::<Vec<_>>(), vec![c1, c2]);
    assert_eq!((items[0].case, items[0].requested_at, items[0].transferred), (Some(CaseId(77)), T0, true));
    assert_eq!(items[0].enqueued_at, h.now);
    // The window's approver arrives: the transferred call rings first and keeps its case.
    let a = h.staff_on(&[A3]);
    assert_eq!(rings(&a), vec![(A3, c1)]);
    let a = h.answer(A3, c1);
    assert!(
        notices_to(&a, pk(K1))
            .iter()
            .any(|n| matches!(n, Notice::CallStarted { staff: A3, window: SOCIAL, case: Some(CaseId(77)), .. }))
    );
    // The transferring approver is free and the transfer leg was not booked as handling time.
    assert_eq!(h.q.call_of(ps(A1)), None);
    assert_eq!(h.q.queue_metrics(h.now).iter().find(|m| m.queue == w(CIVIL)).unwrap().avg_handling_secs, 300);
}

#[test]
fn transfer_errors_change_nothing() {
    let mut h = H::with_config(Config { max_queue_len: 1, ..Config::default() });
    h.kiosks_on(&[K1, K2, K3]);
    h.staff_on(&[A1, A2, A3]);
    let c1 = h.request(K1, M_CIVIL);
    h.answer(A1, c1);
    let c2 = h.request(K2, M_CIVIL);
    let t = |staff, call, to_window| Input::Transfer { staff, call, to_window };
    assert_eq!(h.err(t(A1, c1, T2A)), QueueError::OutOfScope);
    assert_eq!(h.err(t(A2, c1, SOCIAL)), QueueError::NotParticipant(ps(A2), c1));
    assert_eq!(h.err(t(A1, c2, SOCIAL)), QueueError::NotParticipant(ps(A1), c2));
    assert_eq!(h.err(t(A1, c1, CIVIL)), QueueError::SameWindow(c1, CIVIL));
    assert_eq!(h.err(t(A1, c1, WindowId(5))), QueueError::UnknownWindow(WindowId(5)));
    assert_eq!(h.err(t(A1, CallId(50), SOCIAL)), QueueError::UnknownCall(CallId(50)));
    assert_eq!(h.err(t(D1, c1, SOCIAL)), QueueError::NotApprover(D1));
    h.presence(A3, Presence::Busy);
    h.request(K3, M_SOCIAL);
    assert_eq!(h.err(t(A1, c1, SOCIAL)), QueueError::QueueFull(w(SOCIAL)));
}

// ----- kiosk disconnects -----

#[test]
fn a_kiosk_dropping_while_waiting_keeps_its_place_and_resumes_within_grace() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2]);
    h.staff_on(&[A1]);
    let c1 = h.request(K1, M_CIVIL);
    let c2 = h.request(K2, M_CIVIL);
    h.advance(5);
    let a = h.ok(Input::KioskDisconnected { kiosk: K1 });
    // The held call stops ringing; the next one rings instead.
    assert_eq!(ring_stops(&a), vec![(A1, c1, RingStopReason::KioskOffline)]);
    assert_eq!(rings(&a), vec![(A1, c2)]);
    assert_eq!(snapshots_to(&a, A1), vec![w(CIVIL)]);
    assert_eq!(positions(&a), vec![]);
    assert!(!h.q.queue_items(w(CIVIL))[0].kiosk_online);
    assert_eq!(h.q.poll_timeout(), Some(T0.plus(Duration::from_secs(5 + 30))));
    h.advance(59);
    let a = h.ok(Input::KioskConnected { kiosk: K1 });
    assert_eq!(snapshots_to(&a, A1), vec![w(CIVIL)]);
    assert_eq!(
        h.q.state_for(pk(K1)),
        vec![Notice::Position { call: c1, queue: w(CIVIL), position: 1, estimated_wait_secs: 300, staffed: true }]
    );
    assert_eq!(h.items(w(CIVIL)), vec![c1, c2]);
    // A1 rang out meanwhile (ring timeout at 35 s was never processed: the test did not tick),
    // so the grace timer is gone and only the ring deadline remains.
    assert_eq!(h.q.poll_timeout(), Some(T0.plus(Duration::from_secs(5 + 30))));
}

#[test]
fn a_waiting_call_is_removed_when_its_kiosks_grace_expires() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2]);
    let c1 = h.request(K1, M_CIVIL);
    h.request(K2, M_CIVIL);
    h.ok(Input::KioskDisconnected { kiosk: K1 });
    assert_eq!(h.q.poll_timeout(), Some(T0.plus(Duration::from_secs(60))));
    h.advance(59);
    assert_eq!(h.tick(), vec![]);
    h.advance(1);
    let a = h.tick();
    assert_eq!(ends(&a), vec![(pk(K1), c1, CallEndReason::GraceExpired, 0)]);
    assert_eq!(positions(&a), vec![(K2, 1, 300)]);
    assert!(h.q.call(c1).is_none());
    assert_eq!(h.q.poll_timeout(), None);
    // Coming back later finds nothing to resume.
    h.ok(Input::KioskConnected { kiosk: K1 });
    assert_eq!(h.q.state_for(pk(K1)), vec![]);
}

#[test]
fn a_kiosk_dropping_in_a_live_call_keeps_it_when_back_within_grace() {
    let mut h = H::new();
    h.kiosks_on(&[K1]);
    h.staff_on(&[A1]);
    let c1 = h.request(K1, M_CIVIL);
    h.answer(A1, c1);
    let a = h.ok(Input::KioskDisconnected { kiosk: K1 });
    assert_eq!(a, vec![Action::Notify { to: ps(A1), notice: Notice::PeerReconnecting { call: c1 } }]);
    h.advance(40);
    let a = h.ok(Input::KioskConnected { kiosk: K1 });
    assert_eq!(a, vec![Action::Notify { to: ps(A1), notice: Notice::PeerReconnected { call: c1 } }]);
    assert!(matches!(h.q.state_for(pk(K1)).as_slice(), [Notice::CallStarted { call, staff: A1, .. }] if *call == c1));
    assert_eq!(h.live_with(c1), Some(A1));
    assert_eq!(h.q.poll_timeout(), None);
}

#[test]
fn a_kiosk_gone_from_a_live_call_past_grace_ends_it() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2]);
    h.staff_on(&[A1]);
    let c1 = h.request(K1, M_CIVIL);
    h.answer(A1, c1);
    let c2 = h.request(K2, M_CIVIL);
    h.advance(10);
    h.ok(Input::KioskDisconnected { kiosk: K1 });
    h.advance(60);
    let a = h.tick();
    assert_eq!(
        ends(&a),
        vec![(ps(A1), c1, CallEndReason::PeerGone, 70), (pk(K1), c1, CallEndReason::GraceExpired, 70)]
    );
    assert!(a.contains(&Action::CloseRoom { room: Room::Call(c1) }));
    assert_eq!(rings(&a), vec![(A1, c2)]);
    // A call lost to a dropped kiosk is no handling sample.
    assert_eq!(positions(&a), vec![]);
}

// ----- approver disconnects -----

#[test]
fn an_approver_dropping_mid_call_puts_the_kiosk_back_at_the_head() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2]);
    h.staff_on(&[A1]);
    let c1 = h.request(K1, M_CIVIL);
    h.answer(A1, c1);
    let c2 = h.request(K2, M_CIVIL);
    h.advance(20);
    let a = h.ok(Input::StaffDisconnected { staff: A1 });
    assert!(a.contains(&Action::CloseRoom { room: Room::Call(c1) }));
    assert_eq!(
        notices_to(&a, pk(K1)),
        vec![
            Notice::BackInQueue { call: c1, queue: w(CIVIL), reason: BackReason::ApproverGone { staff: A1 } },
            Notice::Position { call: c1, queue: w(CIVIL), position: 1, estimated_wait_secs: 300, staffed: false },
        ]
    );
    assert_eq!(positions(&a)[1], (K2, 2, 600));
    assert_eq!(h.items(w(CIVIL)), vec![c1, c2]);
    assert!(h.q.queue_items(w(CIVIL))[0].returned);
    // The next approver is rung for the returned call first.
    assert_eq!(rings(&h.staff_on(&[A2])), vec![(A2, c1)]);
    // The dropped approver's presence was kept; back, it joins the ring of the head.
    assert_eq!(rings(&h.staff_on(&[A1])), vec![(A1, c1)]);
}

#[test]
fn a_ringing_approver_who_drops_stops_ringing_and_keeps_presence() {
    let mut h = H::new();
    h.kiosks_on(&[K1]);
    h.staff_on(&[A1]);
    let c1 = h.request(K1, M_CIVIL);
    let a = h.ok(Input::StaffDisconnected { staff: A1 });
    // The approver's socket is gone; the kiosk learns nobody staffs the window now.
    let nobody = Notice::Position { call: c1, queue: w(CIVIL), position: 1, estimated_wait_secs: 300, staffed: false };
    assert_eq!(a, vec![Action::Notify { to: Party::Kiosk(K1), notice: nobody }]);
    assert!(h.ringing(c1).is_empty());
    assert_eq!(h.q.poll_timeout(), None);
    // Away while disconnected, back: not rung.
    h.presence(A1, Presence::Away);
    assert_eq!(rings(&h.staff_on(&[A1])), vec![]);
    assert_eq!(h.q.state_for(ps(A1))[0], Notice::Presence { presence: Presence::Away, forced: false });
}

#[test]
fn connect_and_disconnect_are_idempotent_and_do_not_extend_grace() {
    let mut h = H::new();
    h.kiosks_on(&[K1]);
    h.staff_on(&[A1]);
    h.request(K1, M_CIVIL);
    let before = h.q.snapshot().clone();
    assert_eq!(h.ok(Input::KioskConnected { kiosk: K1 }), vec![]);
    assert_eq!(h.ok(Input::StaffConnected { staff: A1 }), vec![]);
    assert_eq!(h.q.snapshot(), &before);
    h.ok(Input::KioskDisconnected { kiosk: K1 });
    h.advance(30);
    assert_eq!(h.ok(Input::KioskDisconnected { kiosk: K1 }), vec![]);
    assert_eq!(h.q.poll_timeout(), Some(T0.plus(Duration::from_secs(60))));
    assert_eq!(h.err(Input::KioskConnected { kiosk: NOBODY_KIOSK }), QueueError::UnknownKiosk(NOBODY_KIOSK));
    assert_eq!(h.err(Input::StaffConnected { staff: NOBODY_STAFF }), QueueError::UnknownStaff(NOBODY_STAFF));
    assert_eq!(h.err(Input::StaffDisconnected { staff: NOBODY_STAFF }), QueueError::UnknownStaff(NOBODY_STAFF));
    // Never connected: disconnecting is a no-op.
    assert_eq!(h.ok(Input::KioskDisconnected { kiosk: K2 }), vec![]);
    assert_eq!(h.q.connected_counts(), (0, 1));
}

// ----- any_window towns -----

#[test]
fn in_an_any_window_town_a_transferred_call_at_a_window_head_beats_an_older_town_call() {
    let mut h = H::new();
    h.kiosks_on(&[K21, K22]);
    h.staff_on(&[B3]);
    let c21 = h.request(K21, M_CIVIL);
    h.advance(5);
    let c22 = h.request(K22, M_CIVIL);
    assert_eq!(h.items(QueueKey::Town(T2)), vec![c21, c22]);
    assert_eq!(h.ringing(c21), vec![B3]);
    h.answer(B3, c21);
    h.ok(Input::Transfer { staff: B3, call: c21, to_window: T2A });
    assert_eq!(h.items(w(T2A)), vec![c21]);
    // B3 is free and serves the town queue and its own window T2B: c22 rings it.
    assert_eq!(h.ringing(c22), vec![B3]);
    // B1 serves the town queue and T2A: the transferred call wins over the town head.
    let a = h.staff_on(&[B1]);
    assert_eq!(rings(&a), vec![(B1, c21)]);
    // B3 cannot take the call back at T2A (not its window) ...
    assert_eq!(h.err(Input::Answer { staff: B3, call: c21 }), QueueError::OutOfScope);
    // ... but B1 can.
    h.answer(B1, c21);
}

// ----- group calls -----

fn group_setup() -> (H, GroupId) {
    let mut h = H::new();
    h.kiosks_on(&[K1, K3, K4]);
    h.staff_on(&[A1, D1]);
    // K1 is busy in a call; K2 is offline.
    let c1 = h.request(K1, M_CIVIL);
    h.answer(A1, c1);
    let a = h.ok(Input::StartGroup { dispatcher: D1, villages: vec![V2, V1, V1] });
    let g = h.q.group_of(D1).unwrap();
    assert!(a.contains(&Action::OpenRoom { room: Room::Group(g), participants: vec![ps(D1)] }));
    let expires_at = T0.plus(Duration::from_secs(60));
    for k in [K1, K2, K4] {
        assert_eq!(
            notices_to(&a, pk(k)),
            vec![Notice::GroupInvite { group: g, dispatcher: D1, town: T1, expires_at }],
            "{k}"
        );
    }
    assert!(notices_to(&a, pk(K3)).is_empty());
    (h, g)
}

#[test]
fn a_group_call_invites_every_kiosk_of_the_villages_even_busy_ones() {
    let (h, g) = group_setup();
    assert_eq!(
        member_statuses(&h, g),
        vec![(K1, MemberStatus::Invited), (K2, MemberStatus::Offline), (K4, MemberStatus::Invited)]
    );
    assert_eq!(h.q.open_groups(), 1);
    assert!(matches!(h.q.state_for(ps(D1)).as_slice(), [Notice::GroupState { members, .. }] if members.len() == 3));
    assert_eq!(
        h.q.state_for(pk(K4)),
        vec![Notice::GroupInvite { group: g, dispatcher: D1, town: T1, expires_at: T0.plus(Duration::from_secs(60)) }]
    );
}

#[test]
fn group_members_accept_decline_and_leave_and_the_dispatcher_ends_it() {
    let (mut h, g) = group_setup();
    let room = Room::Group(g);
    let a = h.ok(Input::AcceptGroup { kiosk: K4, group: g });
    assert!(a.contains(&Action::AddToRoom { room, party: pk(K4) }));
    assert_eq!(notices_to(&a, pk(K4)), vec![Notice::GroupJoined { group: g, room }]);
    assert!(matches!(notices_to(&a, ps(D1)).as_slice(), [Notice::GroupState { .. }]));
    // Busy in a 1-to-1 call: may decline but not accept.
    assert_eq!(h.err(Input::AcceptGroup { kiosk: K1, group: g }), QueueError::KioskBusy(K1));
    h.ok(Input::DeclineGroup { kiosk: K1, group: g });
    assert_eq!(h.err(Input::DeclineGroup { kiosk: K1, group: g }), QueueError::InviteNotPending(K1, g));
    assert_eq!(h.err(Input::AcceptGroup { kiosk: K1, group: g }), QueueError::InviteNotPending(K1, g));
    // A joined kiosk cannot queue a call.
    assert_eq!(
        h.err(Input::RequestCall { kiosk: K4, matter: M_CIVIL, case: None, priority: Priority::NORMAL }),
        QueueError::KioskBusy(K4)
    );
    assert_eq!(h.q.state_for(pk(K4)), vec![Notice::GroupJoined { group: g, room }]);
    let a = h.ok(Input::LeaveGroup { kiosk: K4, group: g });
    assert!(a.contains(&Action::RemoveFromRoom { room, party: pk(K4) }));
    assert_eq!(h.err(Input::LeaveGroup { kiosk: K4, group: g }), QueueError::NotJoined(K4, g));
    assert_eq!(h.err(Input::AcceptGroup { kiosk: K4, group: g }), QueueError::InviteNotPending(K4, g));
    assert_eq!(
        member_statuses(&h, g),
        vec![(K1, MemberStatus::Declined), (K2, MemberStatus::Offline), (K4, MemberStatus::Left)]
    );
    h.request(K4, M_CIVIL);
    let a = h.ok(Input::EndGroup { dispatcher: D1, group: g });
    let ended = Notice::GroupEnded { group: g, reason: GroupEndReason::Ended };
    assert_eq!(notices_to(&a, ps(D1)), vec![ended.clone()]);
    // Still-invited K2 learns it too; K1 (declined) and K4 (left) do not.
    assert_eq!(notices_to(&a, pk(K2)), vec![ended]);
    assert!(notices_to(&a, pk(K1)).is_empty() && notices_to(&a, pk(K4)).is_empty());
    assert!(a.contains(&Action::CloseRoom { room }));
    assert_eq!(h.q.open_groups(), 0);
    assert_eq!(h.err(Input::EndGroup { dispatcher: D1, group: g }), QueueError::UnknownGroup(g));
}

#[test]
fn unanswered_group_invites_expire() {
    let (mut h, g) = group_setup();
    h.ok(Input::AcceptGroup { kiosk: K4, group: g });
    assert_eq!(h.q.poll_timeout(), Some(T0.plus(Duration::from_secs(60))));
    h.advance(60);
    let a = h.tick();
    assert_eq!(notices_to(&a, pk(K1)), vec![Notice::InviteExpired { group: g }]);
    assert_eq!(notices_to(&a, pk(K2)), vec![Notice::InviteExpired { group: g }]);
    assert!(notices_to(&a, pk(K4)).is_empty());
    assert_eq!(
        member_statuses(&h, g),
        vec![(K1, MemberStatus::NoAnswer), (K2, MemberStatus::NoAnswer), (K4, MemberStatus::Joined)]
    );
    assert_eq!(h.q.poll_timeout(), None);
    assert_eq!(h.err(Input::AcceptGroup { kiosk: K2, group: g }), QueueError::InviteNotPending(K2, g));
}

#[test]
fn the_dispatcher_invites_a_village_that_declined_again() {
    let (mut h, g) = group_setup();
    // V1 (K1, K4): K1 declines, K4 is still invited; nothing to invite again in V2 (invited).
    h.ok(Input::DeclineGroup { kiosk: K1, group: g });
    assert_eq!(
        h.err(Input::ReinviteGroup { dispatcher: D1, group: g, village: V2 }),
        QueueError::NothingToReinvite(V2, g)
    );
    h.advance(10);
    let a = h.ok(Input::ReinviteGroup { dispatcher: D1, group: g, village: V1 });
    let expires_at = T0.plus(Duration::from_secs(70));
    assert_eq!(notices_to(&a, pk(K1)), vec![Notice::GroupInvite { group: g, dispatcher: D1, town: T1, expires_at }]);
    assert!(notices_to(&a, pk(K4)).is_empty(), "K4's invitation was still pending");
    assert!(matches!(notices_to(&a, ps(D1)).as_slice(), [Notice::GroupState { .. }]));
    assert_eq!(member_statuses(&h, g)[0], (K1, MemberStatus::Invited));
    // Only the group's dispatcher.
    assert!(h.q.group_of(D1).is_some());
    assert_eq!(
        h.err(Input::ReinviteGroup { dispatcher: D1, group: GroupId(999), village: V1 }),
        QueueError::UnknownGroup(GroupId(999))
    );
    // The invitation is pending again (K1 is busy in its own call, so it cannot accept yet).
    assert_eq!(h.err(Input::AcceptGroup { kiosk: K1, group: g }), QueueError::KioskBusy(K1));
}

#[test]
fn an_invited_kiosk_that_connects_gets_the_invite_and_a_joined_one_that_drops_shows_offline() {
    let (mut h, g) = group_setup();
    let a = h.ok(Input::KioskConnected { kiosk: K2 });
    assert!(matches!(notices_to(&a, ps(D1)).as_slice(), [Notice::GroupState { .. }]));
    assert!(matches!(h.q.state_for(pk(K2)).as_slice(), [Notice::GroupInvite { .. }]));
    h.ok(Input::AcceptGroup { kiosk: K2, group: g });
    h.ok(Input::KioskDisconnected { kiosk: K2 });
    assert_eq!(member_statuses(&h, g)[1], (K2, MemberStatus::Offline));
    h.ok(Input::KioskConnected { kiosk: K2 });
    assert_eq!(member_statuses(&h, g)[1], (K2, MemberStatus::Joined));
    assert_eq!(h.q.state_for(pk(K2)), vec![Notice::GroupJoined { group: g, room: Room::Group(g) }]);
}

#[test]
fn group_scope_and_size_errors_change_nothing() {
    let mut h = H::with_config(Config { max_group_villages: 2, max_group_kiosks: 2, ..Config::default() });
    h.kiosks_on(&[K1, K21]);
    h.staff_on(&[D1, D2, A1]);
    let start = |dispatcher, villages: &[VillageId]| Input::StartGroup { dispatcher, villages: villages.to_vec() };
    assert_eq!(h.err(start(D1, &[V1, V21])), QueueError::OutOfScope);
    assert_eq!(h.err(start(D1, &[VillageId(5)])), QueueError::UnknownVillage(VillageId(5)));
    assert_eq!(h.err(start(A1, &[V1])), QueueError::NotDispatcher(A1));
    assert_eq!(h.err(start(NOBODY_STAFF, &[V1])), QueueError::UnknownStaff(NOBODY_STAFF));
    assert_eq!(h.err(start(D1, &[])), QueueError::EmptyGroup);
    assert_eq!(h.err(start(D1, &[V_EMPTY])), QueueError::EmptyGroup);
    assert_eq!(h.err(start(D1, &[V1, V2, V3])), QueueError::GroupTooLarge);
    // Two villages, three kiosks (V1 has two).
    let e = h.err(start(D1, &[V1, V2]));
    assert_eq!((e.clone(), e.kind()), (QueueError::GroupTooLarge, ErrorKind::BadRequest));
    h.ok(start(D1, &[V1]));
    let g = h.q.group_of(D1).unwrap();
    assert_eq!(h.err(start(D1, &[V2])), QueueError::DispatcherBusy(D1));
    assert_eq!(h.err(Input::EndGroup { dispatcher: D2, group: g }), QueueError::NotGroupOwner(D2, g));
    assert_eq!(h.err(Input::EndGroup { dispatcher: A1, group: g }), QueueError::NotDispatcher(A1));
    assert_eq!(h.err(Input::AcceptGroup { kiosk: K21, group: g }), QueueError::NotMember(K21, g));
    assert_eq!(h.err(Input::AcceptGroup { kiosk: K1, group: GroupId(9) }), QueueError::UnknownGroup(GroupId(9)));
    h.ok(Input::StaffDisconnected { staff: D2 });
    assert_eq!(h.err(start(D2, &[V21])), QueueError::NotConnected(ps(D2)));
}

#[test]
fn a_kiosk_with_a_call_cannot_accept_and_a_joined_kiosk_cannot_request() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K4]);
    h.staff_on(&[D1]);
    h.ok(Input::StartGroup { dispatcher: D1, villages: vec![V1] });
    let g = h.q.group_of(D1).unwrap();
    h.request(K4, M_CIVIL);
    assert_eq!(h.err(Input::AcceptGroup { kiosk: K4, group: g }), QueueError::KioskBusy(K4));
    h.ok(Input::AcceptGroup { kiosk: K1, group: g });
    assert_eq!(
        h.err(Input::RequestCall { kiosk: K1, matter: M_CIVIL, case: None, priority: Priority::NORMAL }),
        QueueError::KioskBusy(K1)
    );
}

#[test]
fn a_group_ends_when_its_dispatcher_stays_away_past_grace() {
    let (mut h, g) = group_setup();
    h.ok(Input::AcceptGroup { kiosk: K4, group: g });
    h.advance(60);
    h.tick(); // invites expire
    h.ok(Input::StaffDisconnected { staff: D1 });
    assert_eq!(h.q.poll_timeout(), Some(h.now.plus(Duration::from_secs(60))));
    // Back within grace: the group goes on.
    h.advance(30);
    h.staff_on(&[D1]);
    assert_eq!(h.q.poll_timeout(), None);
    h.ok(Input::StaffDisconnected { staff: D1 });
    h.advance(60);
    let a = h.tick();
    let ended = Notice::GroupEnded { group: g, reason: GroupEndReason::DispatcherGone };
    assert_eq!(notices_to(&a, pk(K4)), vec![ended.clone()]);
    assert_eq!(notices_to(&a, ps(D1)), vec![ended]);
    assert!(a.contains(&Action::CloseRoom { room: Room::Group(g) }));
    assert_eq!(h.q.open_groups(), 0);
}

// ----- state on connect -----

#[test]
fn state_for_tells_each_party_what_to_resume() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2]);
    h.staff_on(&[A1, A2, D1]);
    let c1 = h.request(K1, M_CIVIL);
    h.answer(A1, c1);
    let c2 = h.request(K2, M_CIVIL);
    let started = h.q.state_for(pk(K1));
    assert!(matches!(started.as_slice(), [Notice::CallStarted { call, staff: A1, .. }] if *call == c1));
    assert_eq!(
        h.q.state_for(ps(A1)),
        vec![
            Notice::Presence { presence: Presence::Available, forced: false },
            Notice::QueueSnapshot { queue: w(CIVIL) },
            started[0].clone()
        ]
    );
    assert_eq!(
        h.q.state_for(ps(A2)),
        vec![
            Notice::Presence { presence: Presence::Available, forced: false },
            Notice::QueueSnapshot { queue: w(CIVIL) },
            Notice::Ring { call: c2, queue: w(CIVIL), kiosk: K2, village: V2, matter: M_CIVIL, case: None },
        ]
    );
    // Estimate: one approver in a call and one available → 300 ÷ 2.
    assert_eq!(
        h.q.state_for(pk(K2)),
        vec![Notice::Position { call: c2, queue: w(CIVIL), position: 1, estimated_wait_secs: 150, staffed: true }]
    );
    assert_eq!(h.q.state_for(ps(D1)), vec![]);
    h.ok(Input::StartGroup { dispatcher: D1, villages: vec![V2] });
    assert!(matches!(h.q.state_for(ps(D1)).as_slice(), [Notice::GroupState { .. }]));
    assert_eq!(h.q.state_for(pk(K2)).len(), 2);
    assert_eq!(h.q.state_for(pk(NOBODY_KIOSK)), vec![]);
    assert_eq!(h.q.state_for(ps(NOBODY_STAFF)), vec![]);
}

// ----- timers -----

#[test]
fn poll_timeout_is_the_earliest_deadline_and_handle_timeout_fires_only_due_ones() {
    let mut h = H::new();
    assert_eq!(h.q.poll_timeout(), None);
    assert_eq!(h.tick(), vec![]);
    h.kiosks_on(&[K1, K2, K4]);
    h.staff_on(&[A1, D1]);
    h.request(K1, M_CIVIL); // A1 rings until T0+30
    h.request(K2, M_CIVIL);
    h.advance(10);
    h.ok(Input::KioskDisconnected { kiosk: K2 }); // grace until T0+70
    h.ok(Input::StartGroup { dispatcher: D1, villages: vec![V1] }); // invites until T0+70
    assert_eq!(h.q.poll_timeout(), Some(T0.plus(Duration::from_secs(30))));
    h.advance(20);
    let a = h.tick();
    assert_eq!(ring_stops(&a).len(), 1);
    assert_eq!(h.q.poll_timeout(), Some(T0.plus(Duration::from_secs(70))));
    h.advance(40);
    let a = h.tick();
    assert_eq!(ends(&a).len(), 1);
    assert_eq!(
        a.iter().filter(|a| matches!(a, Action::Notify { notice: Notice::InviteExpired { .. }, .. })).count(),
        2
    );
    assert_eq!(h.q.poll_timeout(), None);
    // A late tick fires overdue deadlines in order, with the late `now`.
    let c = h.q.call_of(pk(K1)).unwrap();
    h.presence(A1, Presence::Available);
    h.advance(500);
    let a = h.tick();
    assert_eq!(ring_stops(&a), vec![(A1, c, RingStopReason::Timeout)]);
}

// ----- persistence -----

#[test]
fn snapshot_restore_round_trip_loses_no_waiting_call_and_resumes_after_reconnect() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2, K3, K21]);
    h.staff_on(&[A1, A3, D2]);
    let c1 = h.request(K1, M_CIVIL);
    h.answer(A1, c1);
    let c2 = h.request(K2, M_CIVIL);
    let c3 = h.request(K3, M_SOCIAL);
    assert_eq!(h.ringing(c3), vec![A3]);
    h.ok(Input::StartGroup { dispatcher: D2, villages: vec![V21] });
    let g = h.q.group_of(D2).unwrap();
    h.ok(Input::AcceptGroup { kiosk: K21, group: g });
    h.advance(5);
    h.ok(Input::HangUp { by: pk(K1), call: c1 });
    let c1 = h.request(K1, M_CIVIL);
    h.answer(A1, c1);

    let json = serde_json::to_string(h.q.snapshot()).unwrap();
    let snap: Snapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(&snap, h.q.snapshot());

    h.advance(5);
    let (q, actions) = Queue::restore(snap, &topology(), Config::default(), h.now).unwrap();
    let mut h = H { q, now: h.now };
    h.check();
    assert!(actions.contains(&Action::OpenRoom { room: Room::Group(g), participants: vec![ps(D2), pk(K21)] }));
    assert!(notices_to(&actions, pk(K1)).contains(&Notice::BackInQueue {
        call: c1,
        queue: w(CIVIL),
        reason: BackReason::ApproverGone { staff: A1 }
    }));
    assert_eq!(h.q.connected_counts(), (0, 0));
    assert_eq!((h.q.live_calls(), h.q.waiting_calls()), (0, 3));
    assert_eq!(h.items(w(CIVIL)), vec![c1, c2]);
    assert_eq!(h.items(w(SOCIAL)), vec![c3]);
    assert!(h.ringing(c3).is_empty());
    // Stats survived: the 5 s call is the whole history of CIVIL.
    assert_eq!(h.q.queue_metrics(h.now).iter().find(|m| m.queue == w(CIVIL)).unwrap().avg_handling_secs, 5);
    // Ids keep counting up.
    assert_eq!(h.q.st.next_call, c1.0 + 1);
    // Everybody has the grace period from the restart on.
    let restart = h.now;
    assert_eq!(h.q.poll_timeout(), Some(restart.plus(Duration::from_secs(60))));

    h.advance(30);
    h.kiosks_on(&[K1]);
    assert_eq!(
        h.q.state_for(pk(K1)),
        vec![Notice::Position { call: c1, queue: w(CIVIL), position: 1, estimated_wait_secs: 5, staffed: false }]
    );
    // A1 comes back: rung for the returned call; the held call of offline K2 is skipped.
    let a = h.staff_on(&[A1]);
    assert_eq!(rings(&a), vec![(A1, c1)]);
    h.answer(A1, c1);
    h.advance(30);
    let a = h.tick();
    assert_eq!(
        ends(&a),
        vec![(pk(K2), c2, CallEndReason::GraceExpired, 0), (pk(K3), c3, CallEndReason::GraceExpired, 0)]
    );
    assert!(notices_to(&a, pk(K21)).contains(&Notice::GroupEnded { group: g, reason: GroupEndReason::DispatcherGone }));
    assert_eq!((h.q.live_calls(), h.q.waiting_calls(), h.q.open_groups()), (1, 0, 0));
}

#[test]
fn restore_rejects_a_bad_topology_or_config() {
    let h = H::new();
    let mut topo = topology();
    topo.kiosks.push(Kiosk { id: KioskId(99), village: VillageId(5) });
    assert!(matches!(
        Queue::restore(h.q.snapshot().clone(), &topo, Config::default(), T0),
        Err(SetupError::Dangling { kind: "kiosk", .. })
    ));
    let mut snap = h.q.snapshot().clone();
    snap.format = 99;
    assert_eq!(Queue::restore(snap, &topology(), Config::default(), T0).unwrap_err(), SetupError::SnapshotFormat(99));
    let cfg = Config { ring_timeout: Duration::ZERO, ..Config::default() };
    assert_eq!(Queue::new(&topology(), cfg).unwrap_err(), SetupError::BadConfig("ring_timeout"));
    let mut topo = topology();
    topo.dispatchers.push(Dispatcher { id: A1, town: T1 });
    assert_eq!(Queue::new(&topo, Config::default()).unwrap_err(), SetupError::StaffTwoRoles(A1));
    let mut topo = topology();
    topo.towns.push(Town { id: T1, any_window: true });
    assert_eq!(Queue::new(&topo, Config::default()).unwrap_err(), SetupError::Duplicate { kind: "town", id: 1 });
}

// ----- topology changes -----

#[test]
fn set_topology_reroutes_calls_of_a_removed_window_or_ends_them_with_no_window() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2, K3, K4]);
    h.staff_on(&[A4]);
    let civil1 = h.request(K1, M_CIVIL);
    let civil2 = h.request(K4, M_CIVIL);
    let compre_only = h.request(K2, M_COMPRE);
    // CIVIL is longer, so the shared matter waits at COMPRE.
    let moved = h.request(K3, M_SHARED);
    assert_eq!(h.items(w(COMPRE)), vec![compre_only, moved]);
    assert_eq!(h.ringing(compre_only), vec![A4]);

    let mut topo = topology();
    topo.windows.retain(|w| w.id != COMPRE);
    topo.approvers.retain(|a| a.id != A4);
    let a = h.q.set_topology(h.now, &topo).unwrap();
    h.check();
    assert_eq!(ends(&a), vec![(pk(K2), compre_only, CallEndReason::NoWindow, 0)]);
    assert_eq!(ring_stops(&a), vec![(A4, compre_only, RingStopReason::NotServed)]);
    // The moved call keeps its age order among CIVIL's calls.
    assert_eq!(h.items(w(CIVIL)), vec![civil1, civil2, moved]);
    assert!(positions(&a).contains(&(K3, 3, 900)));
    assert_eq!(h.q.presence(A4), None);
    assert_eq!(h.q.queue_items(w(COMPRE)), vec![]);
}

#[test]
fn set_topology_sends_a_removed_approvers_live_call_back_and_ends_a_moved_dispatchers_group() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K4]);
    h.staff_on(&[A1, A2, D1]);
    h.presence(A2, Presence::Busy);
    let c1 = h.request(K1, M_CIVIL);
    h.answer(A1, c1);
    h.ok(Input::StartGroup { dispatcher: D1, villages: vec![V1] });
    let g = h.q.group_of(D1).unwrap();
    let mut topo = topology();
    topo.approvers.retain(|a| a.id != A1);
    topo.dispatchers = vec![Dispatcher { id: D1, town: T2 }];
    let a = h.q.set_topology(h.now, &topo).unwrap();
    h.check();
    assert!(notices_to(&a, pk(K1)).contains(&Notice::BackInQueue {
        call: c1,
        queue: w(CIVIL),
        reason: BackReason::ApproverGone { staff: A1 }
    }));
    assert!(notices_to(&a, ps(D1)).contains(&Notice::GroupEnded { group: g, reason: GroupEndReason::Removed }));
    // Every approver is re-sent its queues (names may have changed).
    assert_eq!(snapshots_to(&a, A2), vec![w(CIVIL)]);
    assert_eq!(h.q.presence(A1), None);
    assert_eq!(h.err(Input::Answer { staff: A1, call: c1 }), QueueError::UnknownStaff(A1));
}

#[test]
fn set_topology_ends_the_calls_of_a_removed_kiosk_and_an_invalid_topology_changes_nothing() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2]);
    h.staff_on(&[A1]);
    let c1 = h.request(K1, M_CIVIL);
    h.answer(A1, c1);
    let c2 = h.request(K2, M_CIVIL);
    let before = h.q.snapshot().clone();
    let mut bad = topology();
    bad.approvers.push(Approver { id: StaffId(500), window: WindowId(500) });
    assert!(h.q.set_topology(h.now, &bad).is_err());
    assert_eq!(h.q.snapshot(), &before);

    let mut topo = topology();
    topo.kiosks.retain(|k| k.id != K1 && k.id != K2);
    let a = h.q.set_topology(h.now, &topo).unwrap();
    h.check();
    let ended: BTreeSet<_> = ends(&a).into_iter().map(|(p, c, r, _)| (p, c, r)).collect();
    let expected: BTreeSet<_> = [
        (ps(A1), c1, CallEndReason::Removed),
        (pk(K1), c1, CallEndReason::Removed),
        (pk(K2), c2, CallEndReason::Removed),
    ]
    .into_iter()
    .collect();
    assert_eq!(ended, expected);
    assert_eq!((h.q.live_calls(), h.q.waiting_calls()), (0, 0));
}

// ----- odds and ends -----

#[test]
fn rooms_and_queues_have_wire_names_and_errors_have_kinds() {
    assert_eq!(Room::Call(CallId(7)).to_string(), "call:7");
    assert_eq!(Room::Group(GroupId(3)).to_string(), "group:3");
    assert_eq!(serde_json::to_string(&w(CIVIL)).unwrap(), r#"{"kind":"window","id":11}"#);
    assert_eq!(QueueError::UnknownGroup(GroupId(1)).kind(), ErrorKind::NotFound);
    assert_eq!(QueueError::NotGroupOwner(D1, GroupId(1)).kind(), ErrorKind::Forbidden);
    assert_eq!(QueueError::EmptyGroup.kind(), ErrorKind::BadRequest);
}

// ----- a long deterministic random walk -----

/// A tiny LCG: the test is deterministic, the machine never sees it.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

fn random_input(r: &mut Lcg, q: &Queue) -> Input {
    let kiosks = [K1, K2, K3, K4, K21, K22, K31, NOBODY_KIOSK];
    let staff = [A1, A2, A3, A4, B1, B2, B3, C1, D1, D2, NOBODY_STAFF];
    let approvers = [A1, A2, A3, B1, B2, B3, C1];
    let matters = [M_CIVIL, M_SHARED, M_SOCIAL, M_COMPRE, M_NOWHERE];
    let windows = [CIVIL, SOCIAL, COMPRE, T2A, T2B, T3W, WindowId(5)];
    let villages = [V1, V2, V3, V_EMPTY, V21, V22, V31];
    // Mostly existing calls and groups (and their parties), so that the interesting paths are
    // taken; sometimes stale or unknown ids.
    let calls: Vec<CallId> = q.st.calls.keys().copied().collect();
    let call = if !calls.is_empty() && r.below(5) != 0 { r.pick(&calls) } else { CallId(1 + r.below(q.st.next_call)) };
    let groups: Vec<GroupId> = q.st.groups.keys().copied().collect();
    let group =
        if !groups.is_empty() && r.below(5) != 0 { r.pick(&groups) } else { GroupId(1 + r.below(q.st.next_group)) };
    let members_in = |state: MemberState| -> Vec<KioskId> {
        let members = q.st.groups.get(&group).map(|g| g.members.as_slice()).unwrap_or(&[]);
        members.iter().filter(|m| m.state == state).map(|m| m.kiosk).collect()
    };
    let kiosk = r.pick(&kiosks);
    let invited = members_in(MemberState::Invited);
    let invited = if !invited.is_empty() && r.below(4) != 0 { r.pick(&invited) } else { kiosk };
    let joined = members_in(MemberState::Joined);
    let joined = if !joined.is_empty() && r.below(4) != 0 { r.pick(&joined) } else { kiosk };
    let (call_kiosk, call_staff) = match q.call(call).map(|c| (c.kiosk, c.status)) {
        Some((k, CallStatus::Live { staff, .. })) => (k, Some(staff)),
        Some((k, CallStatus::Waiting { ringing, .. })) => (k, ringing.first().copied()),
        None => (kiosk, None),
    };
    let answerer = if r.below(4) == 0 { r.pick(&approvers) } else { call_staff.unwrap_or_else(|| r.pick(&approvers)) };
    let choice = if !groups.is_empty() && r.below(4) == 0 { 15 + r.below(3) } else { r.below(20) };
    match choice {
        0 | 1 => Input::KioskConnected { kiosk },
        2 => Input::KioskDisconnected { kiosk },
        3 | 4 => Input::StaffConnected { staff: r.pick(&staff) },
        5 => Input::StaffDisconnected { staff: r.pick(&staff) },
        6 | 7 => Input::RequestCall {
            kiosk,
            matter: r.pick(&matters),
            case: Some(CaseId(r.below(100) as i64)),
            priority: Priority::NORMAL,
        },
        8 => Input::CancelCall { kiosk: call_kiosk, call },
        9 => Input::SetPresence {
            staff: r.pick(&staff),
            presence: r.pick(&[Presence::Available, Presence::Available, Presence::Busy, Presence::Away]),
        },
        10 | 11 => Input::Answer { staff: answerer, call },
        12 => {
            let by = if r.below(2) == 0 { pk(call_kiosk) } else { ps(answerer) };
            Input::HangUp { by, call }
        }
        13 => Input::Transfer { staff: answerer, call, to_window: r.pick(&windows) },
        14 => {
            let n = 1 + r.below(3) as usize;
            Input::StartGroup {
                dispatcher: r.pick(&[D1, D2, A1]),
                villages: (0..n).map(|_| r.pick(&villages)).collect(),
            }
        }
        15 => Input::AcceptGroup { kiosk: invited, group },
        16 => Input::DeclineGroup { kiosk: invited, group },
        17 => Input::LeaveGroup { kiosk: joined, group },
        18 => Input::EndGroup { dispatcher: r.pick(&[D1, D2]), group },
        _ => Input::KioskConnected { kiosk: if r.below(2) == 0 { call_kiosk } else { invited } },
    }
}

/// A snapshot less the kiosks that are offline without a call (a restored machine knows the
/// same of a kiosk it has no entry for).
fn without_idle_kiosks(s: &Snapshot) -> Snapshot {
    let mut s = s.clone();
    s.kiosks.retain(|_, k| k.connected || k.call.is_some());
    s
}

#[test]
fn what_is_stored_does_not_change_when_parties_connect_drop_or_are_rung() {
    let mut h = H::new();
    let empty = serde_json::to_string(&h.q.persisted()).unwrap();
    h.kiosks_on(&[K1, K2, K3, K21]);
    h.ok(Input::KioskDisconnected { kiosk: K3 });
    assert_eq!(serde_json::to_string(&h.q.persisted()).unwrap(), empty, "idle kiosks come and go: nothing to store");
    // A waiting call is stored: its place survives a crash...
    let c = h.request(K1, M_CIVIL);
    let waiting = serde_json::to_string(&h.q.persisted()).unwrap();
    assert_ne!(waiting, empty);
    // ...and stays as stored while its kiosk drops and comes back, and while approvers
    // connect and are rung (a restart rings again).
    h.ok(Input::KioskDisconnected { kiosk: K1 });
    h.kiosks_on(&[K1]);
    assert_eq!(serde_json::to_string(&h.q.persisted()).unwrap(), waiting);
    h.staff_on(&[A1]);
    assert_eq!(h.ringing(c), vec![A1]);
    let rung = serde_json::to_string(&h.q.persisted()).unwrap();
    h.ok(Input::StaffDisconnected { staff: A1 });
    h.staff_on(&[A1]);
    assert_eq!(serde_json::to_string(&h.q.persisted()).unwrap(), rung, "an approver's reconnect: nothing to store");
    // The approver's presence is kept; nothing else of the ring is.
    let restored =
        Queue::restore(serde_json::from_str(&rung).unwrap(), &topology(), Config::default(), h.now).unwrap().0;
    assert_eq!(restored.queue_items(w(CIVIL)).into_iter().map(|i| i.call).collect::<Vec<_>>(), vec![c]);
    assert_eq!(restored.st.staff[&A1].presence, h.q.st.staff[&A1].presence);
    // Answering is stored.
    h.answer(A1, c);
    assert_ne!(serde_json::to_string(&h.q.persisted()).unwrap(), rung);
}

#[test]
fn a_long_random_walk_keeps_every_invariant_and_refused_inputs_change_nothing() {
    for seed in [0x5eed, 7, 2024] {
        random_walk(seed, 8000);
    }
}

fn random_walk(seed: u64, steps: usize) {
    let config = Config { max_queue_len: 3, max_group_villages: 2, max_group_kiosks: 3, ..Config::default() };
    let mut h = H::with_config(config.clone());
    let mut r = Lcg(seed);
    let (mut accepted, mut refused, mut restores) = (0, 0, 0);
    let mut kinds = std::collections::BTreeMap::<String, u32>::new();
    for step in 0..steps {
        h.now = Millis(h.now.0 + if r.below(50) == 0 { 40_000 } else { r.below(4_000) });
        if h.q.poll_timeout().is_some_and(|t| t <= h.now) {
            h.tick();
            assert!(
                h.q.poll_timeout().is_none_or(|t| t > h.now),
                "step {step}: a due deadline survived handle_timeout"
            );
        }
        let input = random_input(&mut r, &h.q);
        let before = h.q.snapshot().clone();
        let queues_before = h.q.queues.clone();
        match h.q.handle(h.now, input.clone()) {
            Ok(_) => {
                accepted += 1;
                let name = format!("{input:?}");
                *kinds.entry(name.split(' ').next().unwrap_or_default().to_string()).or_default() += 1;
            }
            Err(e) => {
                refused += 1;
                assert_eq!(h.q.snapshot(), &before, "step {step}: refused {input:?} ({e}) changed the state");
                assert_eq!(h.q.queues, queues_before, "step {step}: refused {input:?} changed the index");
            }
        }
        if let Err(e) = h.q.check_invariants() {
            panic!("seed {seed} step {step}: after {input:?}: {e}");
        }
        if step % 500 == 499 {
            let calls = h.q.live_calls() + h.q.waiting_calls();
            // What is stored restores the machine the whole snapshot would.
            let whole = Queue::restore(h.q.snapshot().clone(), &topology(), config.clone(), h.now).unwrap();
            let json = serde_json::to_vec(&h.q.persisted()).unwrap();
            let snap: Snapshot = serde_json::from_slice(&json).unwrap();
            let stored = Queue::restore(snap, &topology(), config.clone(), h.now).unwrap();
            assert_eq!(
                without_idle_kiosks(whole.0.snapshot()),
                without_idle_kiosks(stored.0.snapshot()),
                "step {step}"
            );
            assert_eq!(whole.1, stored.1, "step {step}: the restores' actions differ");
            h.q = stored.0;
            h.check();
            assert_eq!((h.q.live_calls(), h.q.waiting_calls()), (0, calls), "step {step}: a restart lost a call");
            restores += 1;
        }
    }
    // Every kind of input was accepted at least a few times.
    assert_eq!(kinds.len(), 15, "seed {seed}: {kinds:?}");
    assert!(kinds.values().all(|n| *n >= 3), "seed {seed}: {kinds:?}");
    assert!(accepted > steps / 4 && refused > 0 && restores == steps / 500, "{accepted} accepted, {refused} refused");
}

#[test]
fn a_booked_call_goes_ahead_of_unbooked_waiting_calls_but_not_of_other_booked_ones() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2, K3]);
    let c1 = h.request(K1, M_CIVIL);
    let booked = Priority(1);
    h.ok(Input::RequestCall { kiosk: K2, matter: M_CIVIL, case: None, priority: booked });
    let c2 = h.q.call_of(pk(K2)).unwrap();
    let q = w(CIVIL);
    assert_eq!(h.items(q), vec![c2, c1], "the booked call is at the head");
    h.ok(Input::RequestCall { kiosk: K3, matter: M_CIVIL, case: None, priority: booked });
    let c3 = h.q.call_of(pk(K3)).unwrap();
    assert_eq!(h.items(q), vec![c2, c3, c1], "booked calls keep their order among themselves");
    // It survives a restart like any other call.
    let snap = h.q.snapshot().clone();
    let json = serde_json::to_string(&snap).unwrap();
    let back: crate::queue::Snapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snap);
}

#[test]
fn set_topology_moves_the_waiting_calls_of_a_town_switched_to_any_window_into_its_town_queue() {
    let mut h = H::new();
    h.kiosks_on(&[K1, K2, K3]);
    let civil = h.request(K1, M_CIVIL);
    let compre = h.request(K2, M_COMPRE);
    let social = h.request(K3, M_SOCIAL);
    assert_eq!(h.items(w(CIVIL)), vec![civil]);

    let mut topo = topology();
    topo.towns.iter_mut().find(|t| t.id == T1).unwrap().any_window = true;
    let a = h.q.set_topology(h.now, &topo).unwrap();
    h.check();
    // One town-wide queue, in the order the calls came; nobody's call ended.
    assert_eq!(h.items(QueueKey::Town(T1)), vec![civil, compre, social]);
    assert!(ends(&a).is_empty());
    for k in [w(CIVIL), w(COMPRE), w(SOCIAL)] {
        assert_eq!(h.q.queue_items(k), vec![]);
    }
    // Any approver of the town is rung for the oldest.
    h.staff_on(&[A3]);
    assert_eq!(h.ringing(civil), vec![A3]);
    // Switching back re-routes by matter, keeping the order.
    let a = h.q.set_topology(h.now, &topology()).unwrap();
    h.check();
    assert!(ends(&a).is_empty());
    assert_eq!(h.items(w(CIVIL)), vec![civil]);
    assert_eq!(h.items(w(SOCIAL)), vec![social]);
}
