//! The tokio glue around the queue state machine. One task owns the [`Queue`], the map of
//! connected parties and room membership. It feeds client inputs and timeouts into the queue,
//! persists a snapshot after every change (before anyone is told), and turns the queue's
//! actions into wire messages and media-plane calls. No queue logic lives here.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use cunneng_media_recorder::{MediaEvent, Sfu};

use crate::auth::{Principal, Role};
use crate::config::Config;
use crate::db::Db;
use crate::error::Error;
use crate::metrics::QueueGauge;
use crate::queue::{
    self, Action, BackReason, CallEndReason, GroupEndReason, Input, KioskId, MatterId, MemberStatus, Millis, Notice,
    Party, Presence, Queue, QueueKey, RingStopReason, Room, StaffId, VillageId, WindowId,
};
use crate::wire::{ClientMsg, GroupMemberWire, Named, PresenceWire, QueueItemWire, ServerMsg};

/// Identifies one WebSocket connection (a party may reconnect with a new one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(u64);

impl ConnId {
    pub fn next() -> ConnId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What the engine sends toward one socket.
#[derive(Debug)]
pub enum Outbound {
    Msg(ServerMsg),
    Close(u16, &'static str),
}

/// The party a principal is in the queue's terms.
pub fn party_of(p: &Principal) -> Party {
    match p {
        Principal::Kiosk { kiosk_id, .. } => Party::Kiosk(KioskId(*kiosk_id)),
        Principal::Staff { user_id, .. } => Party::Staff(StaffId(*user_id)),
    }
}

/// The participant label used by the media plane (and as MediaStream id in browsers).
pub fn label(party: Party) -> String {
    match party {
        Party::Kiosk(k) => format!("kiosk:{k}"),
        Party::Staff(s) => format!("staff:{s}"),
    }
}

fn parse_label(label: &str) -> Option<Party> {
    let (kind, id) = label.split_once(':')?;
    let id: i64 = id.parse().ok()?;
    match kind {
        "kiosk" => Some(Party::Kiosk(KioskId(id))),
        "staff" => Some(Party::Staff(StaffId(id))),
        _ => None,
    }
}

fn parse_room(room: &str) -> Option<Room> {
    let (kind, id) = room.split_once(':')?;
    let id: u64 = id.parse().ok()?;
    match kind {
        "call" => Some(Room::Call(queue::CallId(id))),
        "group" => Some(Room::Group(queue::GroupId(id))),
        _ => None,
    }
}

pub type ClientResult = Result<(), (&'static str, String)>;

enum Cmd {
    Connect { principal: Principal, me: serde_json::Value, conn: ConnId, tx: crate::ws::ClientTx },
    Disconnect { party: Party, conn: ConnId },
    Client { principal: Principal, msg: ClientMsg, reply: oneshot::Sender<ClientResult> },
    InRoom { party: Party, room: String, reply: oneshot::Sender<bool> },
    Gauges { reply: oneshot::Sender<Gauges> },
    OnlineVillages { reply: oneshot::Sender<HashSet<i64>> },
    Notify { party: Party, msg: ServerMsg },
    CaseParties { case: i64, reply: oneshot::Sender<Option<CaseParties>> },
    Shutdown { reply: oneshot::Sender<()> },
}

/// Who is in the live (or waiting) call of a case right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseParties {
    pub call: queue::CallId,
    pub kiosk: KioskId,
    /// The approver, when the call is live.
    pub staff: Option<StaffId>,
}

/// Engine-owned figures for `/metrics`.
pub struct Gauges {
    pub queues: Vec<QueueGauge>,
    pub live_calls: usize,
    pub open_groups: usize,
    pub connected_kiosks: usize,
    pub connected_staff: usize,
}

/// The handle every connection uses to talk to the engine task.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Cmd>,
}

impl EngineHandle {
    /// A socket authenticated: the engine sends `welcome` and the party's state.
    pub async fn connect(&self, principal: Principal, me: serde_json::Value, conn: ConnId, tx: crate::ws::ClientTx) {
        let _ = self.tx.send(Cmd::Connect { principal, me, conn, tx }).await;
    }

    pub async fn disconnect(&self, party: Party, conn: ConnId) {
        let _ = self.tx.send(Cmd::Disconnect { party, conn }).await;
    }

    /// A client message for the queue. `Err((code, message))` means nothing changed.
    pub async fn client(&self, principal: Principal, msg: ClientMsg) -> ClientResult {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Cmd::Client { principal, msg, reply }).await.is_err() {
            return Err(("internal", "服务器正在停止 (server shutting down)".into()));
        }
        rx.await.unwrap_or_else(|_| Err(("internal", "服务器内部错误 (internal error)".into())))
    }

    /// Is `party` a participant of `room` (`call:ID`, `group:ID`)?
    pub async fn in_room(&self, party: Party, room: String) -> bool {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Cmd::InRoom { party, room, reply }).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    pub async fn gauges(&self) -> Gauges {
        let (reply, rx) = oneshot::channel();
        let empty =
            || Gauges { queues: Vec::new(), live_calls: 0, open_groups: 0, connected_kiosks: 0, connected_staff: 0 };
        if self.tx.send(Cmd::Gauges { reply }).await.is_err() {
            return empty();
        }
        rx.await.unwrap_or_else(|_| empty())
    }

    pub async fn online_villages(&self) -> HashSet<i64> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Cmd::OnlineVillages { reply }).await.is_err() {
            return HashSet::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Push a message to a party if it is connected (papers arriving, outcomes, requests).
    pub async fn notify(&self, party: Party, msg: ServerMsg) {
        let _ = self.tx.send(Cmd::Notify { party, msg }).await;
    }

    /// The kiosk and approver of the call that carries `case`, if one is waiting or live.
    pub async fn case_parties(&self, case: i64) -> Option<CaseParties> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Cmd::CaseParties { case, reply }).await.ok()?;
        rx.await.ok().flatten()
    }

    /// Persist and stop; the media plane is shut down too.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The media plane's configuration from ours.
pub fn media_config(config: &Config) -> Result<cunneng_media_recorder::MediaConfig, Error> {
    let m = &config.media;
    Ok(cunneng_media_recorder::MediaConfig {
        bind_ip: m.bind_ip,
        udp_port_min: m.udp_port_min,
        udp_port_max: m.udp_port_max,
        announced_ips: m.announced_ips.clone(),
        ice_servers: m.ice_servers.iter().flat_map(|s| s.urls.clone()).collect(),
        max_peer_connections: m.max_peer_connections as usize,
        ..cunneng_media_recorder::MediaConfig::default()
    })
}

fn queue_config(config: &Config) -> queue::Config {
    let q = &config.queue;
    queue::Config {
        ring_timeout: Duration::from_secs(q.ring_timeout_secs),
        kiosk_grace: Duration::from_secs(q.kiosk_grace_secs),
        dispatcher_grace: Duration::from_secs(q.kiosk_grace_secs),
        group_invite_timeout: Duration::from_secs(q.group_invite_timeout_secs),
        max_queue_len: q.max_waiting_per_queue as usize,
        ..queue::Config::default()
    }
}

/// Names for wire messages, loaded from the database with the topology.
#[derive(Default)]
struct Names {
    towns: HashMap<i64, String>,
    villages: HashMap<i64, String>,
    windows: HashMap<i64, String>,
    matters: HashMap<i64, String>,
    kiosks: HashMap<i64, (String, i64)>,
    staff: HashMap<i64, String>,
}

impl Names {
    fn named(map: &HashMap<i64, String>, id: i64) -> Named {
        Named { id, name: map.get(&id).cloned().unwrap_or_default() }
    }
    fn village(&self, v: VillageId) -> Named {
        Self::named(&self.villages, v.0)
    }
    fn matter(&self, m: MatterId) -> Named {
        Self::named(&self.matters, m.0)
    }
    fn window(&self, w: WindowId) -> Named {
        Self::named(&self.windows, w.0)
    }
    /// A queue as the kiosk sees it: its window, or the town's 无差别综合受理 queue.
    fn queue(&self, q: QueueKey) -> Named {
        match q {
            QueueKey::Window(w) => self.window(w),
            QueueKey::Town(t) => {
                Named { id: 0, name: format!("{}综合受理", self.towns.get(&t.0).map(String::as_str).unwrap_or("")) }
            }
        }
    }
}

fn to_queue_topology(t: &crate::db::Topology) -> queue::Topology {
    queue::Topology {
        towns: t.towns.iter().map(|x| queue::Town { id: queue::TownId(x.id), any_window: x.any_window }).collect(),
        windows: t
            .windows
            .iter()
            .map(|w| queue::Window {
                id: WindowId(w.id),
                town: queue::TownId(w.town_id),
                matters: w.accepts.iter().map(|m| MatterId(*m)).collect(),
            })
            .collect(),
        villages: t
            .villages
            .iter()
            .map(|v| queue::Village { id: VillageId(v.id), town: queue::TownId(v.town_id) })
            .collect(),
        kiosks: t.kiosks.iter().map(|k| queue::Kiosk { id: KioskId(k.id), village: VillageId(k.village_id) }).collect(),
        approvers: t
            .approvers
            .iter()
            .filter_map(|a| Some(queue::Approver { id: StaffId(a.user_id), window: WindowId(a.window_id?) }))
            .collect(),
        dispatchers: t
            .dispatchers
            .iter()
            .map(|d| queue::Dispatcher { id: StaffId(d.user_id), town: queue::TownId(d.town_id) })
            .collect(),
    }
}

fn names_of(t: &crate::db::Topology) -> Names {
    Names {
        towns: t.towns.iter().map(|x| (x.id, x.name.clone())).collect(),
        villages: t.villages.iter().map(|x| (x.id, x.name.clone())).collect(),
        windows: t.windows.iter().map(|x| (x.id, x.name.clone())).collect(),
        matters: t.matters.iter().map(|x| (x.id, x.name.clone())).collect(),
        kiosks: t.kiosks.iter().map(|x| (x.id, (x.name.clone(), x.village_id))).collect(),
        staff: t.approvers.iter().chain(&t.chiefs).chain(&t.dispatchers).map(|x| (x.user_id, x.name.clone())).collect(),
    }
}

/// Teardown work for the media plane (it awaits, so it runs off the engine task).
enum MediaOp {
    Remove(Room, Party),
    Close(Room),
}

async fn run_media_ops(sfu: Sfu, mut ops: mpsc::Receiver<MediaOp>) {
    while let Some(op) = ops.recv().await {
        match op {
            MediaOp::Remove(room, party) => sfu.remove_participant(&room.to_string(), &label(party)).await,
            MediaOp::Close(room) => sfu.close_room(&room.to_string()).await,
        }
    }
}

struct Conn {
    id: ConnId,
    tx: crate::ws::ClientTx,
    village: Option<i64>,
}

struct Engine {
    db: Db,
    sfu: Sfu,
    queue: Queue,
    names: Names,
    ice_servers: serde_json::Value,
    conns: HashMap<Party, Conn>,
    /// Approvers and dispatchers: the staff the queue knows.
    queue_staff: HashSet<i64>,
    rooms: HashMap<Room, BTreeSet<Party>>,
    media_ops: mpsc::Sender<MediaOp>,
    /// Every call and group room is recorded into this sink.
    recordings: Arc<crate::recording::Recordings>,
    last_snapshot: String,
}

/// Load the topology, restore the persisted queue and start the engine task.
pub async fn start(
    config: Arc<Config>,
    db: Db,
    sfu: Sfu,
    media_events: mpsc::Receiver<MediaEvent>,
    recordings: Arc<crate::recording::Recordings>,
) -> Result<EngineHandle, Error> {
    let topology = db.topology()?;
    let qtopo = to_queue_topology(&topology);
    let qconfig = queue_config(&config);
    let now = Millis(crate::now_ms());
    let (queue, actions, last_snapshot) = match db.load_queue_state()? {
        Some((json, _)) => {
            let snapshot: queue::Snapshot = serde_json::from_str(&json).map_err(|e| {
                Error::Data(crate::db::DataError::Invalid(format!("the persisted queue state cannot be read: {e}")))
            })?;
            let (q, actions) = Queue::restore(snapshot, &qtopo, qconfig, now)
                .map_err(|e| Error::Data(crate::db::DataError::Invalid(format!("restoring the queue: {e}"))))?;
            tracing::info!(waiting = q.waiting_calls(), groups = q.open_groups(), "queue restored");
            (q, actions, json)
        }
        None => {
            let q = Queue::new(&qtopo, qconfig)
                .map_err(|e| Error::Data(crate::db::DataError::Invalid(format!("building the queue: {e}"))))?;
            (q, Vec::new(), String::new())
        }
    };
    let (media_ops, ops_rx) = mpsc::channel(4096);
    tokio::spawn(run_media_ops(sfu.clone(), ops_rx));
    let mut engine = Engine {
        db,
        sfu,
        queue,
        names: names_of(&topology),
        ice_servers: serde_json::to_value(&config.media.ice_servers).unwrap_or_default(),
        conns: HashMap::new(),
        queue_staff: topology.approvers.iter().chain(&topology.dispatchers).map(|s| s.user_id).collect(),
        rooms: HashMap::new(),
        media_ops,
        recordings,
        last_snapshot,
    };
    engine.persist();
    engine.apply(actions, now);
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(engine.run(rx, media_events));
    Ok(EngineHandle { tx })
}

impl Engine {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>, mut media: mpsc::Receiver<MediaEvent>) {
        let mut housekeeping = tokio::time::interval(Duration::from_secs(3600));
        loop {
            let sleep = match self.queue.poll_timeout() {
                Some(Millis(at)) => Duration::from_millis(at.saturating_sub(crate::now_ms())),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    if let Cmd::Shutdown { reply } = cmd {
                        self.persist();
                        self.sfu.shutdown().await;
                        let _ = reply.send(());
                        break;
                    }
                    self.command(cmd);
                }
                Some(ev) = media.recv() => self.media_event(ev),
                _ = tokio::time::sleep(sleep) => {
                    let now = Millis(crate::now_ms());
                    let actions = self.queue.handle_timeout(now);
                    self.persist();
                    self.apply(actions, now);
                }
                _ = housekeeping.tick() => {
                    if let Err(e) = self.db.delete_expired_sessions(crate::now_ms()) {
                        tracing::warn!(error = %e, "deleting expired sessions");
                    }
                }
            }
        }
    }

    fn command(&mut self, cmd: Cmd) {
        let now = Millis(crate::now_ms());
        match cmd {
            Cmd::Connect { principal, me, conn, tx } => self.connect(principal, me, conn, tx, now),
            Cmd::Disconnect { party, conn } => {
                if self.conns.get(&party).is_some_and(|c| c.id == conn) {
                    self.conns.remove(&party);
                    let input = match party {
                        Party::Kiosk(kiosk) => Input::KioskDisconnected { kiosk },
                        Party::Staff(staff) => Input::StaffDisconnected { staff },
                    };
                    self.feed(now, input);
                }
            }
            Cmd::Client { principal, msg, reply } => {
                let result = self.client(&principal, msg, now);
                let _ = reply.send(result);
            }
            Cmd::InRoom { party, room, reply } => {
                let member = parse_room(&room).and_then(|r| self.rooms.get(&r)).is_some_and(|m| m.contains(&party));
                let _ = reply.send(member);
            }
            Cmd::Gauges { reply } => {
                let queues = self
                    .queue
                    .queue_metrics(now)
                    .into_iter()
                    .map(|m| QueueGauge {
                        queue: match m.queue {
                            QueueKey::Window(w) => format!("window:{w}"),
                            QueueKey::Town(t) => format!("town:{t}"),
                        },
                        waiting: m.waiting,
                        oldest_wait_secs: m.oldest_wait_secs,
                        estimated_wait_secs: m.estimated_wait_secs,
                    })
                    .collect();
                let kiosks = self.conns.keys().filter(|p| matches!(p, Party::Kiosk(_))).count();
                let _ = reply.send(Gauges {
                    queues,
                    live_calls: self.queue.live_calls(),
                    open_groups: self.queue.open_groups(),
                    connected_kiosks: kiosks,
                    connected_staff: self.conns.len() - kiosks,
                });
            }
            Cmd::Notify { party, msg } => self.send(party, msg),
            Cmd::CaseParties { case, reply } => {
                let found = self.queue.calls_with_case(queue::CaseId(case)).map(|v| CaseParties {
                    call: v.call,
                    kiosk: v.kiosk,
                    staff: match v.status {
                        queue::CallStatus::Live { staff, .. } => Some(staff),
                        queue::CallStatus::Waiting { .. } => None,
                    },
                });
                let _ = reply.send(found);
            }
            Cmd::OnlineVillages { reply } => {
                let _ = reply.send(self.conns.values().filter_map(|c| c.village).collect());
            }
            Cmd::Shutdown { .. } => unreachable!("handled in run"),
        }
    }

    fn connect(
        &mut self,
        principal: Principal,
        me: serde_json::Value,
        conn: ConnId,
        tx: crate::ws::ClientTx,
        now: Millis,
    ) {
        let party = party_of(&principal);
        let village = match &principal {
            Principal::Kiosk { village_id, .. } => Some(*village_id),
            Principal::Staff { .. } => None,
        };
        if let Some(old) = self.conns.insert(party, Conn { id: conn, tx: tx.clone(), village }) {
            old.tx.send(ServerMsg::Replaced);
            old.tx.close(crate::ws::CLOSE_REPLACED, "replaced by a newer connection");
        }
        tx.send(ServerMsg::Welcome { me, ice_servers: self.ice_servers.clone() });
        if !self.in_queue(party) {
            return; // chiefs, supervisors, admins: connected, but nothing to queue
        }
        let input = match party {
            Party::Kiosk(kiosk) => Input::KioskConnected { kiosk },
            Party::Staff(staff) => Input::StaffConnected { staff },
        };
        let actions = match self.queue.handle(now, input) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, ?party, "queue refused a connect");
                Vec::new()
            }
        };
        self.persist();
        // The party's own state comes from `state_for`, in order; others get their notices.
        let (own, others): (Vec<Action>, Vec<Action>) =
            actions.into_iter().partition(|a| matches!(a, Action::Notify { to, .. } if *to == party));
        drop(own);
        for notice in self.queue.state_for(party) {
            self.notify(party, notice, now);
        }
        self.apply(others, now);
    }

    /// Is the party one the queue knows (a kiosk, an approver or a dispatcher)?
    fn in_queue(&self, party: Party) -> bool {
        match party {
            Party::Kiosk(k) => self.names.kiosks.contains_key(&k.0),
            Party::Staff(s) => self.queue_staff.contains(&s.0),
        }
    }

    /// Check role and scope, then hand the message to the queue.
    fn client(&mut self, principal: &Principal, msg: ClientMsg, now: Millis) -> ClientResult {
        let forbidden = |what: &str| Err(("forbidden", format!("无权操作 (not allowed for this role: {what})")));
        let input = match (principal, msg) {
            (Principal::Kiosk { kiosk_id, village_id, town_id, .. }, ClientMsg::CallRequest { matter_id, case_no }) => {
                return self.request_call(KioskId(*kiosk_id), *village_id, *town_id, matter_id, case_no, now);
            }
            (Principal::Kiosk { kiosk_id, .. }, ClientMsg::CallCancel { call_id }) => {
                Input::CancelCall { kiosk: KioskId(*kiosk_id), call: queue::CallId(call_id) }
            }
            (Principal::Kiosk { kiosk_id, .. }, ClientMsg::CallHangup { call_id }) => {
                Input::HangUp { by: Party::Kiosk(KioskId(*kiosk_id)), call: queue::CallId(call_id) }
            }
            (Principal::Kiosk { kiosk_id, .. }, ClientMsg::GroupAccept { group_id }) => {
                Input::AcceptGroup { kiosk: KioskId(*kiosk_id), group: queue::GroupId(group_id) }
            }
            (Principal::Kiosk { kiosk_id, .. }, ClientMsg::GroupDecline { group_id }) => {
                Input::DeclineGroup { kiosk: KioskId(*kiosk_id), group: queue::GroupId(group_id) }
            }
            (Principal::Kiosk { kiosk_id, .. }, ClientMsg::GroupLeave { group_id }) => {
                Input::LeaveGroup { kiosk: KioskId(*kiosk_id), group: queue::GroupId(group_id) }
            }
            (Principal::Staff { user_id, role: Role::Approver, .. }, msg) => {
                let staff = StaffId(*user_id);
                match msg {
                    ClientMsg::PresenceSet { presence } => Input::SetPresence {
                        staff,
                        presence: match presence {
                            PresenceWire::Available => Presence::Available,
                            PresenceWire::Busy => Presence::Busy,
                            PresenceWire::Away => Presence::Away,
                        },
                    },
                    ClientMsg::CallAnswer { call_id } => Input::Answer { staff, call: queue::CallId(call_id) },
                    ClientMsg::CallHangup { call_id } => {
                        Input::HangUp { by: Party::Staff(staff), call: queue::CallId(call_id) }
                    }
                    ClientMsg::CallTransfer { call_id, window_id } => {
                        Input::Transfer { staff, call: queue::CallId(call_id), to_window: WindowId(window_id) }
                    }
                    _ => return forbidden("approvers answer, transfer and hang up calls"),
                }
            }
            (Principal::Staff { user_id, role: Role::Dispatcher, .. }, msg) => {
                let dispatcher = StaffId(*user_id);
                match msg {
                    ClientMsg::GroupStart { village_ids } => {
                        if village_ids.is_empty() {
                            return Err(("bad_message", "请至少选择一个村 (choose at least one village)".into()));
                        }
                        Input::StartGroup { dispatcher, villages: village_ids.into_iter().map(VillageId).collect() }
                    }
                    ClientMsg::GroupEnd { group_id } => Input::EndGroup { dispatcher, group: queue::GroupId(group_id) },
                    _ => return forbidden("dispatchers start and end group calls"),
                }
            }
            (Principal::Kiosk { .. }, _) => return forbidden("kiosks ask for calls and answer group calls"),
            (Principal::Staff { .. }, _) => return forbidden("this role takes no calls"),
        };
        self.feed_checked(now, input)
    }

    fn request_call(
        &mut self,
        kiosk: KioskId,
        village: i64,
        town: i64,
        matter_id: i64,
        case_no: Option<String>,
        now: Millis,
    ) -> ClientResult {
        if self.queue.call_of(Party::Kiosk(kiosk)).is_some() {
            return Err(("conflict", "已经在排队或通话中 (this room already has a call)".into()));
        }
        // A new case, or the one named by `case_no` (checked: this village's, open or missing, not in a call).
        let case =
            crate::cases::resolve_case_for_request(&self.db, kiosk.0, village, matter_id, case_no.as_deref(), now.0)?;
        let matter = match self.db.matter_for_town(town, case.matter_id) {
            Ok(Some(m)) => m,
            Ok(None) => {
                crate::cases::call_refused(&self.db, &case);
                return Err(("not_found", format!("没有这个事项 (no matter {} in this town)", case.matter_id)));
            }
            Err(e) => {
                crate::cases::call_refused(&self.db, &case);
                tracing::error!(error = %e, "looking up a matter");
                return Err(("internal", "服务器内部错误 (internal error)".into()));
            }
        };
        // 预约: a call booked for now goes ahead of unbooked ones.
        let booking = crate::bookings::booking_for_request(&self.db, village, case.matter_id, now.0);
        let priority = if booking.is_some() { crate::bookings::BOOKED_PRIORITY } else { queue::Priority::NORMAL };
        let input = Input::RequestCall {
            kiosk,
            matter: MatterId(case.matter_id),
            case: Some(queue::CaseId(case.case_id)),
            priority,
        };
        match self.queue.handle(now, input) {
            Ok(actions) => {
                if let Some(b) = booking {
                    crate::bookings::booking_used(&self.db, b, case.case_id);
                }
                if let Some(w) = matter.window.as_ref()
                    && let Err(e) = self.db.record_call_requested(case.case_id, w.id, kiosk.0, now.0)
                {
                    tracing::warn!(error = %e, "recording a call request");
                }
                crate::cases::call_accepted(&self.db, &case, kiosk.0, now.0);
                self.persist();
                self.apply(actions, now);
                Ok(())
            }
            Err(e) => {
                crate::cases::call_refused(&self.db, &case);
                Err(wire_error(&e))
            }
        }
    }

    fn feed_checked(&mut self, now: Millis, input: Input) -> ClientResult {
        match self.queue.handle(now, input) {
            Ok(actions) => {
                self.persist();
                self.apply(actions, now);
                Ok(())
            }
            Err(e) => Err(wire_error(&e)),
        }
    }

    fn feed(&mut self, now: Millis, input: Input) {
        if let Err((code, msg)) = self.feed_checked(now, input) {
            tracing::debug!(code, msg, "queue refused an internal input");
        }
    }

    /// Write the queue snapshot if it changed. Called before anyone is told of a change.
    fn persist(&mut self) {
        let json = match serde_json::to_string(self.queue.snapshot()) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "serializing the queue snapshot");
                return;
            }
        };
        if json == self.last_snapshot {
            return;
        }
        match self.db.save_queue_state(&json, crate::now_ms()) {
            Ok(()) => self.last_snapshot = json,
            Err(e) => tracing::error!(error = %e, "persisting the queue snapshot"),
        }
    }

    fn apply(&mut self, actions: Vec<Action>, now: Millis) {
        for action in actions {
            match action {
                Action::Notify { to, notice } => self.notify(to, notice, now),
                Action::OpenRoom { room, participants } => {
                    self.rooms.insert(room, participants.into_iter().collect());
                    self.subscribe(room);
                    self.start_recording(room);
                }
                Action::AddToRoom { room, party } => {
                    self.rooms.entry(room).or_default().insert(party);
                    self.subscribe(room);
                }
                Action::RemoveFromRoom { room, party } => {
                    if let Some(m) = self.rooms.get_mut(&room) {
                        m.remove(&party);
                    }
                    self.subscribe(room);
                    self.media_op(MediaOp::Remove(room, party));
                }
                Action::CloseRoom { room } => {
                    self.rooms.remove(&room);
                    self.media_op(MediaOp::Close(room));
                }
            }
        }
    }

    /// Tell the media plane who receives whom in `room`: in a call everybody receives everybody
    /// else; in a group call the dispatcher receives every kiosk and each kiosk the dispatcher.
    fn subscribe(&self, room: Room) {
        let Some(members) = self.rooms.get(&room) else { return };
        let room_s = room.to_string();
        for &p in members {
            let publishers: Vec<String> = members
                .iter()
                .filter(|&&q| q != p)
                .filter(|&&q| match room {
                    Room::Call(_) => true,
                    Room::Group(_) => matches!(p, Party::Staff(_)) || matches!(q, Party::Staff(_)),
                })
                .map(|&q| label(q))
                .collect();
            self.sfu.set_subscriptions(&room_s, &label(p), publishers);
        }
    }

    /// Turn recording on for a room that just opened, with its case.
    fn start_recording(&self, room: Room) {
        let case_id = match room {
            Room::Call(call) => self.queue.call(call).and_then(|v| v.case).map(|c| c.0),
            Room::Group(_) => None,
        };
        let case_no = case_id.and_then(|c| self.db.case(c).ok().flatten()).map(|c| c.case_no);
        let room_s = room.to_string();
        self.recordings.begin(&room_s, case_id, case_no);
        self.sfu.set_recording(&room_s, self.recordings.clone());
    }

    /// Media-plane teardown runs on one task, in the order the queue decided it.
    fn media_op(&self, op: MediaOp) {
        if self.media_ops.try_send(op).is_err() {
            tracing::error!("media teardown queue full; an operation was dropped");
        }
    }

    fn send(&self, to: Party, msg: ServerMsg) {
        if let Some(c) = self.conns.get(&to) {
            c.tx.send(msg);
        }
    }

    fn notify(&mut self, to: Party, notice: Notice, now: Millis) {
        let n = &self.names;
        let msg = match notice {
            Notice::Position { call, queue, position, estimated_wait_secs } => ServerMsg::QueuePosition {
                call_id: call.0,
                window: n.queue(queue),
                position: position as usize,
                estimated_wait_secs,
            },
            Notice::QueueSnapshot { queue } => ServerMsg::QueueSnapshot {
                window: n.queue(queue),
                items: self
                    .queue
                    .queue_items(queue)
                    .into_iter()
                    .map(|i| QueueItemWire {
                        call_id: i.call.0,
                        village: n.village(i.village),
                        matter: n.matter(i.matter),
                        waited_secs: now.secs_since(i.requested_at),
                        position: i.position as usize,
                        transferred: i.transferred,
                    })
                    .collect(),
            },
            Notice::Ring { call, village, matter, .. } => {
                ServerMsg::CallRing { call_id: call.0, village: n.village(village), matter: n.matter(matter) }
            }
            Notice::RingStopped { call, reason } => ServerMsg::CallRingStopped {
                call_id: call.0,
                reason: match reason {
                    RingStopReason::AnsweredElsewhere => "answered_elsewhere",
                    RingStopReason::Cancelled => "cancelled",
                    RingStopReason::Timeout => "timeout",
                    RingStopReason::KioskOffline => "kiosk_offline",
                    RingStopReason::PresenceChanged => "presence_changed",
                    RingStopReason::NotServed => "not_served",
                },
            },
            Notice::CallStarted { call, room, kiosk, village, staff, window, matter, case } => {
                let peer = match to {
                    Party::Kiosk(_) => json!({
                        "name": n.staff.get(&staff.0).cloned().unwrap_or_default(),
                        "window": n.window(window),
                    }),
                    Party::Staff(_) => json!({
                        "village": n.village(village),
                        "kiosk": {"id": kiosk.0, "name": n.kiosks.get(&kiosk.0).map(|k| k.0.clone()).unwrap_or_default()},
                    }),
                };
                let case_no = case.and_then(|c| self.db.case(c.0).ok().flatten()).map(|c| c.case_no);
                if matches!(to, Party::Kiosk(_))
                    && let Some(c) = case
                {
                    self.record(c.0, |db, row| db.record_call_answered(row, staff.0, now.0));
                }
                ServerMsg::CallStarted {
                    call_id: call.0,
                    room: room.to_string(),
                    peer,
                    matter: n.matter(matter),
                    case_no,
                }
            }
            Notice::PeerReconnecting { call } => ServerMsg::CallPeerReconnecting { call_id: call.0 },
            Notice::PeerReconnected { call } => ServerMsg::CallPeerReconnected { call_id: call.0 },
            Notice::BackInQueue { call, queue, reason } => {
                if matches!(to, Party::Kiosk(_))
                    && let Some(view) = self.queue.call(call)
                    && let Some(case) = view.case
                {
                    let window = match queue {
                        QueueKey::Window(w) => Some(w.0),
                        QueueKey::Town(_) => None,
                    };
                    let kiosk = view.kiosk.0;
                    let why = match reason {
                        BackReason::Transferred { .. } => "transferred",
                        BackReason::ApproverGone { .. } => "approver_gone",
                    };
                    self.record(case.0, |db, row| {
                        let old = db.call(row)?;
                        db.record_call_ended(row, why, now.0)?;
                        let w = window.or(old.map(|o| o.window_id)).unwrap_or_default();
                        db.record_call_requested(case.0, w, kiosk, now.0).map(|_| ())
                    });
                }
                match reason {
                    BackReason::Transferred { .. } => {
                        ServerMsg::CallTransferred { call_id: call.0, window: n.queue(queue) }
                    }
                    BackReason::ApproverGone { .. } => {
                        ServerMsg::CallRequeued { call_id: call.0, reason: "approver_gone" }
                    }
                }
            }
            Notice::CallEnded { call, case, reason, .. } => {
                let reason = match reason {
                    CallEndReason::HangUp => "hangup",
                    CallEndReason::Cancelled => "cancelled",
                    CallEndReason::PeerGone => "peer_gone",
                    CallEndReason::GraceExpired => "grace_expired",
                    CallEndReason::Transferred => "transferred",
                    CallEndReason::NoWindow => "no_window",
                    CallEndReason::Removed => "removed",
                };
                if matches!(to, Party::Kiosk(_))
                    && let Some(c) = case
                {
                    self.record(c.0, |db, row| db.record_call_ended(row, reason, now.0));
                }
                ServerMsg::CallEnded { call_id: call.0, reason }
            }
            Notice::Presence { presence, forced } => ServerMsg::Presence {
                presence: match presence {
                    Presence::Available => PresenceWire::Available,
                    Presence::Busy => PresenceWire::Busy,
                    Presence::Away => PresenceWire::Away,
                },
                forced,
            },
            Notice::GroupInvite { group, dispatcher, town, .. } => ServerMsg::GroupInvite {
                group_id: group.0,
                from: json!({
                    "name": n.staff.get(&dispatcher.0).cloned().unwrap_or_default(),
                    "town": n.towns.get(&town.0).cloned().unwrap_or_default(),
                }),
            },
            Notice::GroupJoined { group, room } => ServerMsg::GroupJoined { group_id: group.0, room: room.to_string() },
            Notice::InviteExpired { group } => ServerMsg::GroupInviteExpired { group_id: group.0 },
            Notice::GroupState { group, room, members } => ServerMsg::GroupState {
                group_id: group.0,
                room: room.to_string(),
                members: members
                    .into_iter()
                    .map(|m| GroupMemberWire {
                        village: n.village(m.village),
                        label: label(Party::Kiosk(m.kiosk)),
                        state: match m.status {
                            MemberStatus::Invited => "invited",
                            MemberStatus::Joined => "joined",
                            MemberStatus::Declined => "declined",
                            MemberStatus::Left => "left",
                            MemberStatus::NoAnswer => "no_answer",
                            MemberStatus::Offline => "offline",
                        },
                    })
                    .collect(),
            },
            Notice::GroupEnded { group, reason } => ServerMsg::GroupEnded {
                group_id: group.0,
                reason: match reason {
                    GroupEndReason::Ended => "ended",
                    GroupEndReason::DispatcherGone => "dispatcher_gone",
                    GroupEndReason::Removed => "removed",
                },
            },
        };
        self.send(to, msg);
    }

    /// Update the call record (the open leg of `case`); failures are logged, never fatal.
    fn record(&self, case: i64, f: impl FnOnce(&Db, i64) -> Result<(), crate::db::DataError>) {
        let result = self.db.open_call_of_case(case).and_then(|row| match row {
            Some(row) => f(&self.db, row),
            None => Ok(()),
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, case, "updating the call record");
        }
    }

    fn media_event(&mut self, ev: MediaEvent) {
        match ev {
            MediaEvent::NeedsRenegotiation { room, participant, recv_slots } => {
                if let Some(party) = parse_label(&participant) {
                    self.send(party, ServerMsg::MediaRenegotiate { room, recv_slots });
                }
            }
            MediaEvent::Connected { room, participant } => {
                tracing::info!(%room, %participant, "media connected");
            }
            MediaEvent::Disconnected { room, participant } => {
                tracing::info!(%room, %participant, "media disconnected");
            }
        }
    }
}

/// A queue error as the protocol's (code, message).
fn wire_error(e: &queue::QueueError) -> (&'static str, String) {
    use queue::ErrorKind;
    let (code, zh) = match e.kind() {
        ErrorKind::NotFound => ("not_found", "找不到"),
        ErrorKind::Forbidden => ("forbidden", "无权操作"),
        ErrorKind::Conflict => ("conflict", "状态已变化,无法操作"),
        ErrorKind::NoWindow => ("no_window", "本镇没有受理此事项的窗口"),
        ErrorKind::QueueFull => ("queue_full", "排队人数已满,请稍后再试"),
        ErrorKind::BadRequest => ("bad_message", "请求不正确"),
    };
    (code, format!("{zh} ({e})"))
}
