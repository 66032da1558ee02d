//! The tokio glue around the queue state machine. One job owns the [`Queue`], the map of
//! connected parties and room membership. It feeds client inputs and timeouts into the queue,
//! persists a snapshot after every change before anyone is told of it (what survives a
//! restart, [`Queue::persisted`], written only when it differs from the last one written: a
//! kiosk connecting or dropping writes nothing), and turns the queue's
//! actions into wire messages and media-plane calls. No queue logic lives here, and no
//! database work runs on its task: it awaits [`Db::run`].
//!
//! The invariant "every queue change is persisted before the client is told": a client input
//! whose snapshot cannot be written is undone and refused (`unavailable`); a change nobody
//! asked for (a timeout, a disconnect) is held, told to nobody, until a write succeeds (retried
//! every second). Failed writes show in `/metrics` (`cunneng_queue_snapshot_failures_total`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use cunneng_media_recorder::{MediaEvent, Sfu};

use crate::case::Viewer;
use crate::clients::{CLOSE_REPLACED, ClientTx, ConnId};
use crate::config::{Config, IceServer};
use crate::db::{DataError, Db, Me};
use crate::error::{Error, RejectKind, Rejection};
use crate::identity::{Principal, Role};
use crate::jobs::{JobContext, Jobs, Phase};
use crate::metrics::QueueGauge;
use crate::queue::{
    self, Action, BackReason, GroupEndReason, Input, KioskId, MatterId, Millis, Notice, Party, Presence, Queue,
    QueueKey, Room, StaffId, VillageId, WindowId,
};
use crate::service::admin::queue_topology;
use crate::service::bookings::{BOOKED_PRIORITY, booking_for_request, booking_used};
use crate::service::calls::{call_accepted, call_refused, case_for_request};
use crate::wire::{ClientMsg, GroupFromWire, GroupMemberWire, Named, PeerWire, PresenceWire, QueueItemWire, ServerMsg};

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

/// The answer to a client message: `Err((code, message))` means nothing changed.
pub type ClientResult = Result<(), (&'static str, String)>;

enum Cmd {
    Connect { principal: Principal, me: Me, conn: ConnId, tx: ClientTx },
    Disconnect { party: Party, conn: ConnId },
    Client { principal: Principal, msg: ClientMsg, reply: oneshot::Sender<ClientResult> },
    InRoom { party: Party, room: String, reply: oneshot::Sender<bool> },
    Gauges { reply: oneshot::Sender<Gauges> },
    OnlineVillages { reply: oneshot::Sender<HashSet<i64>> },
    Notify { party: Party, msg: ServerMsg },
    CaseParties { case: i64, reply: oneshot::Sender<Option<CaseParties>> },
    ReloadTopology { reply: oneshot::Sender<Result<(), String>> },
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
#[derive(Default)]
pub struct Gauges {
    pub queues: Vec<QueueGauge>,
    pub live_calls: usize,
    pub open_groups: usize,
    pub connected_kiosks: usize,
    pub connected_staff: usize,
    /// Snapshot writes that failed since start.
    pub snapshot_failures: u64,
    /// Queue changes held (told to nobody) until the snapshot can be written.
    pub held_changes: usize,
}

/// The handle every connection uses to talk to the engine task.
#[derive(Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Cmd>,
}

fn stopping() -> (&'static str, String) {
    ("unavailable", "服务器正在停止 (server shutting down)".into())
}

impl EngineHandle {
    /// A socket authenticated: the engine sends `welcome` and the party's state.
    pub async fn connect(&self, principal: Principal, me: Me, conn: ConnId, tx: ClientTx) {
        let _ = self.tx.send(Cmd::Connect { principal, me, conn, tx }).await;
    }

    pub async fn disconnect(&self, party: Party, conn: ConnId) {
        let _ = self.tx.send(Cmd::Disconnect { party, conn }).await;
    }

    /// A client message for the queue. `Err((code, message))` means nothing changed.
    pub async fn client(&self, principal: Principal, msg: ClientMsg) -> ClientResult {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Cmd::Client { principal, msg, reply }).await.is_err() {
            return Err(stopping());
        }
        rx.await.unwrap_or_else(|_| Err(stopping()))
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
        if self.tx.send(Cmd::Gauges { reply }).await.is_err() {
            return Gauges::default();
        }
        rx.await.unwrap_or_default()
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

    /// The region changed in the database: give the running queue the new topology (calls
    /// keep their places; see `Queue::set_topology`). `Err` says why nothing changed.
    pub async fn reload_topology(&self) -> Result<(), String> {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Cmd::ReloadTopology { reply }).await.is_err() {
            return Err("the server is stopping".into());
        }
        rx.await.unwrap_or_else(|_| Err("the server is stopping".into()))
    }

    /// The kiosk and approver of the call that carries `case`, if one is waiting or live.
    pub async fn case_parties(&self, case: i64) -> Option<CaseParties> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Cmd::CaseParties { case, reply }).await.ok()?;
        rx.await.ok().flatten()
    }
}

/// The media plane's configuration from ours.
pub fn media_config(config: &Config) -> cunneng_media_recorder::MediaConfig {
    let m = &config.media;
    cunneng_media_recorder::MediaConfig {
        bind_ip: m.bind_ip,
        udp_port_min: m.udp_port_min,
        udp_port_max: m.udp_port_max,
        announced_ips: m.announced_ips.clone(),
        ice_servers: m.ice_servers.iter().flat_map(|s| s.urls.clone()).collect(),
        max_peer_connections: m.max_peer_connections as usize,
        ..cunneng_media_recorder::MediaConfig::default()
    }
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

/// Teardown work for the media plane (it awaits, so it runs off the engine task, in order).
enum MediaOp {
    Remove(Room, Party),
    Close(Room),
}

async fn run_media_ops(sfu: Sfu, mut ops: mpsc::Receiver<MediaOp>, ctx: JobContext) -> Result<(), Error> {
    loop {
        let op = tokio::select! {
            op = ops.recv() => match op { Some(op) => op, None => return Ok(()) },
            _ = ctx.stopped() => return Ok(()),
        };
        match op {
            MediaOp::Remove(room, party) => sfu.remove_participant(&room.to_string(), &label(party)).await,
            MediaOp::Close(room) => sfu.close_room(&room.to_string()).await,
        }
    }
}

struct Conn {
    id: ConnId,
    tx: ClientTx,
    village: Option<i64>,
}

/// A change to the call log, written after the queue change it follows is persisted (`Rang`:
/// an approver's phone rang for the case's waiting leg, for the statistics' ring-to-answer).
enum CallLog {
    Rang { case: i64 },
    Answered { case: i64, staff: i64 },
    Requeued { case: i64, window: Option<i64>, kiosk: i64, reason: Requeue },
    Ended { case: i64, reason: &'static str },
}

/// Why a call leg ends and the call waits again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requeue {
    /// To another window: the new leg continues the call (`transferred_from_id`).
    Transferred,
    /// The approver is gone: a new leg, a call of its own in the statistics.
    ApproverGone,
}

impl Requeue {
    fn as_str(self) -> &'static str {
        match self {
            Requeue::Transferred => "transferred",
            Requeue::ApproverGone => "approver_gone",
        }
    }
}

/// Whether a notice tells of a change just made or repeats a state to a party that
/// (re)connected: only a change is written to the call log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Told {
    Change,
    Replay,
}

struct Engine {
    db: Db,
    sfu: Sfu,
    queue: Queue,
    names: Names,
    ice_servers: Vec<IceServer>,
    conns: HashMap<Party, Conn>,
    /// Approvers and dispatchers: the staff the queue knows.
    queue_staff: HashSet<i64>,
    rooms: HashMap<Room, BTreeSet<Party>>,
    media_ops: mpsc::Sender<MediaOp>,
    /// Every call and group room is recorded into this sink.
    recordings: Arc<crate::recording::Recordings>,
    /// Case numbers of the cases in the queue's calls.
    case_nos: HashMap<i64, String>,
    /// The snapshot last written.
    last_snapshot: String,
    /// Changes nobody asked for, held until their snapshot is written: (actions, when).
    held: Vec<(Vec<Action>, Millis)>,
    snapshot_failures: Arc<AtomicU64>,
}

/// Load the topology, restore the persisted queue and start the engine job (and the
/// media-teardown job) on `jobs`.
pub async fn start(
    config: Arc<Config>,
    db: Db,
    sfu: Sfu,
    media_events: mpsc::Receiver<MediaEvent>,
    recordings: Arc<crate::recording::Recordings>,
    jobs: &Jobs,
) -> Result<EngineHandle, Error> {
    let (topology, saved) = db.run(|db| Ok::<_, DataError>((db.topology()?, db.load_queue_state()?))).await?;
    let qtopo = queue_topology(&topology);
    let qconfig = queue_config(&config);
    let now = Millis(crate::now_ms());
    let invalid = |what: String| Error::Data(DataError::Invalid(what));
    let (queue, actions, last_snapshot) = match saved {
        Some((json, _)) => {
            let snapshot: queue::Snapshot = serde_json::from_str(&json)
                .map_err(|e| invalid(format!("the persisted queue state cannot be read: {e}")))?;
            let (q, actions) = Queue::restore(snapshot, &qtopo, qconfig, now)
                .map_err(|e| invalid(format!("restoring the queue: {e}")))?;
            tracing::info!(waiting = q.waiting_calls(), groups = q.open_groups(), "queue restored");
            (q, actions, json)
        }
        None => {
            let q = Queue::new(&qtopo, qconfig).map_err(|e| invalid(format!("building the queue: {e}")))?;
            (q, Vec::new(), String::new())
        }
    };
    let (media_ops, ops_rx) = mpsc::channel(4096);
    let teardown = sfu.clone();
    jobs.spawn("media-teardown", Phase::Serve, move |ctx| run_media_ops(teardown, ops_rx, ctx));
    let mut engine = Engine {
        db,
        sfu,
        queue,
        names: names_of(&topology),
        ice_servers: config.media.ice_servers.clone(),
        conns: HashMap::new(),
        queue_staff: topology.approvers.iter().chain(&topology.dispatchers).map(|s| s.user_id).collect(),
        rooms: HashMap::new(),
        media_ops,
        recordings,
        case_nos: HashMap::new(),
        last_snapshot,
        held: Vec::new(),
        snapshot_failures: Arc::new(AtomicU64::new(0)),
    };
    engine.load_case_numbers().await;
    engine.changed(actions, now).await;
    let (tx, rx) = mpsc::channel(1024);
    jobs.spawn("engine", Phase::Serve, move |ctx| engine.run(rx, media_events, ctx));
    Ok(EngineHandle { tx })
}

impl Engine {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Cmd>,
        mut media: mpsc::Receiver<MediaEvent>,
        ctx: JobContext,
    ) -> Result<(), Error> {
        loop {
            let sleep = match self.queue.poll_timeout() {
                Some(Millis(at)) => Duration::from_millis(at.saturating_sub(crate::now_ms())),
                None => Duration::from_secs(3600),
            };
            // Held changes are retried every second.
            let sleep = if self.held.is_empty() { sleep } else { sleep.min(Duration::from_secs(1)) };
            tokio::select! {
                _ = ctx.stopped() => break,
                cmd = rx.recv() => {
                    let Some(cmd) = cmd else { break };
                    self.command(cmd).await;
                }
                Some(ev) = media.recv() => self.media_event(ev),
                _ = tokio::time::sleep(sleep) => {
                    let now = Millis(crate::now_ms());
                    let actions = self.queue.handle_timeout(now);
                    self.changed(actions, now).await;
                }
            }
        }
        if self.persist().await.is_err() {
            tracing::error!("the queue could not be saved at shutdown; the last saved state will be restored");
        }
        self.sfu.shutdown().await;
        Ok(())
    }

    async fn command(&mut self, cmd: Cmd) {
        let now = Millis(crate::now_ms());
        match cmd {
            Cmd::Connect { principal, me, conn, tx } => self.connect(principal, me, conn, tx, now).await,
            Cmd::Disconnect { party, conn } => {
                if self.conns.get(&party).is_some_and(|c| c.id == conn) {
                    self.conns.remove(&party);
                    let input = match party {
                        Party::Kiosk(kiosk) => Input::KioskDisconnected { kiosk },
                        Party::Staff(staff) => Input::StaffDisconnected { staff },
                    };
                    self.feed_internal(now, input).await;
                }
            }
            Cmd::Client { principal, msg, reply } => {
                let result = self.client(&principal, msg, now).await;
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
                    snapshot_failures: self.snapshot_failures.load(Ordering::Relaxed),
                    held_changes: self.held.len(),
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
            Cmd::ReloadTopology { reply } => {
                let result = self.reload_topology(now).await;
                let _ = reply.send(result);
            }
        }
    }

    async fn connect(&mut self, principal: Principal, me: Me, conn: ConnId, tx: ClientTx, now: Millis) {
        let party = party_of(&principal);
        let village = match &principal {
            Principal::Kiosk { village_id, .. } => Some(*village_id),
            Principal::Staff { .. } => None,
        };
        if let Some(old) = self.conns.insert(party, Conn { id: conn, tx: tx.clone(), village }) {
            old.tx.send(ServerMsg::Replaced);
            old.tx.close(CLOSE_REPLACED, "replaced by a newer connection");
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
        // The party's own state comes from `state_for`, in order; others get their notices.
        let (own, others): (Vec<Action>, Vec<Action>) =
            actions.into_iter().partition(|a| matches!(a, Action::Notify { to, .. } if *to == party));
        if self.persist().await.is_err() {
            // Told to nobody until it is saved; the party learns its state when it is.
            self.held.push((others, now));
            return;
        }
        self.release_held().await;
        // A ring that this connection started (the approver is available again) is a change;
        // `state_for` repeats it with any ring already going, which the call log has.
        for action in own {
            if let Action::Notify { notice: Notice::Ring { case: Some(case), .. }, .. } = action {
                self.record(CallLog::Rang { case: case.0 }, now).await;
            }
        }
        for notice in self.queue.state_for(party) {
            self.notify(party, notice, now, Told::Replay).await;
        }
        self.apply(others, now).await;
    }

    /// Load the region from the database and hand it to the queue; on an error nothing
    /// changes. The change is persisted before anyone is told (held like any other change the
    /// queue makes by itself).
    async fn reload_topology(&mut self, now: Millis) -> Result<(), String> {
        let topology = self.db.run(|db| db.topology()).await.map_err(|e| e.to_string())?;
        let before = self.queue.clone();
        let actions = self.queue.set_topology(now, &queue_topology(&topology)).map_err(|e| e.to_string())?;
        if self.persist().await.is_err() {
            self.queue = before;
            return Err("the queue could not be saved; nothing changed".into());
        }
        self.names = names_of(&topology);
        self.queue_staff = topology.approvers.iter().chain(&topology.dispatchers).map(|s| s.user_id).collect();
        self.release_held().await;
        self.apply(actions, now).await;
        tracing::info!("topology reloaded");
        Ok(())
    }

    /// Is the party one the queue knows (a kiosk, an approver or a dispatcher)?
    fn in_queue(&self, party: Party) -> bool {
        match party {
            Party::Kiosk(k) => self.names.kiosks.contains_key(&k.0),
            Party::Staff(s) => self.queue_staff.contains(&s.0),
        }
    }

    /// Check role and scope, then hand the message to the queue.
    async fn client(&mut self, principal: &Principal, msg: ClientMsg, now: Millis) -> ClientResult {
        let forbidden = |what: &str| Err(("forbidden", format!("无权操作 (not allowed for this role: {what})")));
        let input = match (principal, msg) {
            (Principal::Kiosk { kiosk_id, town_id, .. }, ClientMsg::CallRequest { matter_id, case_no }) => {
                return self.request_call(principal, KioskId(*kiosk_id), *town_id, matter_id, case_no, now).await;
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
                    ClientMsg::GroupReinvite { group_id, village_id } => Input::ReinviteGroup {
                        dispatcher,
                        group: queue::GroupId(group_id),
                        village: VillageId(village_id),
                    },
                    _ => return forbidden("dispatchers start and end group calls"),
                }
            }
            (Principal::Kiosk { .. }, _) => return forbidden("kiosks ask for calls and answer group calls"),
            (Principal::Staff { .. }, _) => return forbidden("this role takes no calls"),
        };
        self.feed_client(now, input).await.map(|_| ())
    }

    async fn request_call(
        &mut self,
        principal: &Principal,
        kiosk: KioskId,
        town: i64,
        matter_id: i64,
        case_no: Option<String>,
        now: Millis,
    ) -> ClientResult {
        if self.queue.call_of(Party::Kiosk(kiosk)).is_some() {
            return Err(("conflict", "已经在排队或通话中 (this room already has a call)".into()));
        }
        let Some(viewer) = Viewer::of(principal) else { return Err(("forbidden", "无权操作".into())) };
        // A new case, or the one named by `case_no` (this village's, open or missing, not in a call).
        let case = case_for_request(&self.db, &viewer, matter_id, case_no, now.0).await.map_err(wire_rejection)?;
        let matter_of_case = case.matter_id();
        let matter = match self.db.run(move |db| db.matter_for_town(town, matter_of_case)).await {
            Ok(Some(m)) => m,
            Ok(None) => {
                call_refused(&self.db, &case).await;
                return Err(("not_found", format!("没有这个事项 (no matter {matter_of_case} in this town)")));
            }
            Err(e) => {
                call_refused(&self.db, &case).await;
                tracing::error!(error = %e, "looking up a matter");
                return Err(("internal", "服务器内部错误 (internal error)".into()));
            }
        };
        // 预约: a call booked for now goes ahead of unbooked ones.
        let village = case.case.village_id;
        let booking = booking_for_request(&self.db, village, case.matter_id(), now.0).await;
        let priority = if booking.is_some() { BOOKED_PRIORITY } else { queue::Priority::NORMAL };
        let input = Input::RequestCall {
            kiosk,
            matter: MatterId(case.matter_id()),
            case: Some(queue::CaseId(case.case_id())),
            priority,
        };
        self.case_nos.insert(case.case_id(), case.case.case_no.clone());
        let actions = match self.feed_client_deferred(now, input).await {
            Ok(actions) => actions,
            Err(e) => {
                call_refused(&self.db, &case).await;
                return Err(e);
            }
        };
        // Persisted: now the records follow, then everybody is told.
        if let Some(b) = booking {
            booking_used(&self.db, b, case.case_id()).await;
        }
        if let Some(w) = matter.window.as_ref() {
            let (case_id, window, kiosk_id) = (case.case_id(), w.id, kiosk.0);
            if let Err(e) = self.db.run(move |db| db.record_call_requested(case_id, window, kiosk_id, now.0)).await {
                tracing::warn!(error = %e, "recording a call request");
            }
        }
        call_accepted(&self.db, &viewer, &case).await;
        self.apply(actions, now).await;
        Ok(())
    }

    /// A client input: applied, persisted and told, or refused with nothing changed.
    async fn feed_client(&mut self, now: Millis, input: Input) -> Result<(), (&'static str, String)> {
        let actions = self.feed_client_deferred(now, input).await?;
        self.apply(actions, now).await;
        Ok(())
    }

    /// A client input, applied and persisted but not yet told (the caller applies the actions).
    /// If the snapshot cannot be written the input is undone and refused.
    async fn feed_client_deferred(&mut self, now: Millis, input: Input) -> Result<Vec<Action>, (&'static str, String)> {
        let before = self.queue.clone();
        let actions = self.queue.handle(now, input).map_err(|e| wire_error(&e))?;
        if self.persist().await.is_err() {
            self.queue = before;
            return Err((
                "unavailable",
                "服务器暂时无法保存,请稍后再试 (the queue could not be saved: nothing changed; try again)".into(),
            ));
        }
        self.release_held().await;
        Ok(actions)
    }

    /// An input nobody asked for (a disconnect): a refusal is only logged.
    async fn feed_internal(&mut self, now: Millis, input: Input) {
        match self.queue.handle(now, input) {
            Ok(actions) => self.changed(actions, now).await,
            Err(e) => tracing::debug!(error = %e, "queue refused an internal input"),
        }
    }

    /// The queue changed by itself (timeout, disconnect, restore): persist, then tell, or hold
    /// until the snapshot can be written.
    async fn changed(&mut self, actions: Vec<Action>, now: Millis) {
        if self.persist().await.is_err() {
            if !actions.is_empty() {
                self.held.push((actions, now));
            }
            return;
        }
        self.release_held().await;
        self.apply(actions, now).await;
    }

    /// The snapshot is written: tell what was held, in order.
    async fn release_held(&mut self) {
        for (actions, at) in std::mem::take(&mut self.held) {
            self.apply(actions, at).await;
        }
    }

    /// Write the queue snapshot if it changed. Called before anyone is told of a change.
    async fn persist(&mut self) -> Result<(), ()> {
        let json = match serde_json::to_string(&self.queue.persisted()) {
            Ok(j) => j,
            Err(e) => {
                tracing::error!(error = %e, "serializing the queue snapshot");
                self.snapshot_failures.fetch_add(1, Ordering::Relaxed);
                return Err(());
            }
        };
        if json == self.last_snapshot {
            return Ok(());
        }
        let j = json.clone();
        match self.db.run(move |db| db.save_queue_state(&j, crate::now_ms())).await {
            Ok(()) => {
                self.last_snapshot = json;
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "persisting the queue snapshot");
                self.snapshot_failures.fetch_add(1, Ordering::Relaxed);
                Err(())
            }
        }
    }

    /// Case numbers of the calls the restored queue holds.
    async fn load_case_numbers(&mut self) {
        let ids: Vec<i64> = self.queue.case_ids().into_iter().map(|c| c.0).collect();
        match self.db.run(move |db| db.case_numbers(&ids)).await {
            Ok(rows) => self.case_nos.extend(rows),
            Err(e) => tracing::warn!(error = %e, "reading the case numbers of the queue"),
        }
    }

    async fn case_no(&mut self, case: i64) -> Option<String> {
        if let Some(no) = self.case_nos.get(&case) {
            return Some(no.clone());
        }
        let found = self.db.run(move |db| db.case(case)).await.ok().flatten().map(|c| c.case_no)?;
        self.case_nos.insert(case, found.clone());
        Some(found)
    }

    async fn apply(&mut self, actions: Vec<Action>, now: Millis) {
        for action in actions {
            match action {
                Action::Notify { to, notice } => self.notify(to, notice, now, Told::Change).await,
                Action::OpenRoom { room, participants } => {
                    self.rooms.insert(room, participants.into_iter().collect());
                    self.subscribe(room);
                    self.start_recording(room).await;
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
    async fn start_recording(&mut self, room: Room) {
        let case_id = match room {
            Room::Call(call) => self.queue.call(call).and_then(|v| v.case).map(|c| c.0),
            Room::Group(_) => None,
        };
        let case_no = match case_id {
            Some(c) => self.case_no(c).await,
            None => None,
        };
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

    async fn notify(&mut self, to: Party, notice: Notice, now: Millis, told: Told) {
        let mut log = None;
        let msg = match notice {
            Notice::Position { call, queue, position, estimated_wait_secs, staffed } => ServerMsg::QueuePosition {
                call_id: call.0,
                window: self.names.queue(queue),
                position: position as usize,
                estimated_wait_secs,
                staffed,
            },
            Notice::QueueSnapshot { queue } => ServerMsg::QueueSnapshot {
                window: self.names.queue(queue),
                items: self
                    .queue
                    .queue_items(queue)
                    .into_iter()
                    .map(|i| QueueItemWire {
                        call_id: i.call.0,
                        village: self.names.village(i.village),
                        matter: self.names.matter(i.matter),
                        waited_secs: now.secs_since(i.requested_at),
                        position: i.position as usize,
                        transferred: i.transferred,
                    })
                    .collect(),
            },
            Notice::Ring { call, village, matter, case, .. } => {
                if let (Party::Staff(_), Some(c), Told::Change) = (to, case, told) {
                    log = Some(CallLog::Rang { case: c.0 });
                }
                ServerMsg::CallRing {
                    call_id: call.0,
                    village: self.names.village(village),
                    matter: self.names.matter(matter),
                }
            }
            Notice::RingStopped { call, reason } => {
                ServerMsg::CallRingStopped { call_id: call.0, reason: reason.as_str() }
            }
            Notice::CallStarted { call, room, kiosk, village, staff, window, matter, case } => {
                let peer = match to {
                    Party::Kiosk(_) => PeerWire::Approver {
                        name: self.names.staff.get(&staff.0).cloned().unwrap_or_default(),
                        window: self.names.window(window),
                    },
                    Party::Staff(_) => PeerWire::Kiosk {
                        village: self.names.village(village),
                        kiosk: Named {
                            id: kiosk.0,
                            name: self.names.kiosks.get(&kiosk.0).map(|k| k.0.clone()).unwrap_or_default(),
                        },
                    },
                };
                let case_no = match case {
                    Some(c) => self.case_no(c.0).await,
                    None => None,
                };
                if matches!(to, Party::Kiosk(_))
                    && let Some(c) = case
                {
                    log = Some(CallLog::Answered { case: c.0, staff: staff.0 });
                }
                ServerMsg::CallStarted {
                    call_id: call.0,
                    room: room.to_string(),
                    peer,
                    matter: self.names.matter(matter),
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
                    let why = match reason {
                        BackReason::Transferred { .. } => Requeue::Transferred,
                        BackReason::ApproverGone { .. } => Requeue::ApproverGone,
                    };
                    log = Some(CallLog::Requeued { case: case.0, window, kiosk: view.kiosk.0, reason: why });
                }
                match reason {
                    BackReason::Transferred { .. } => {
                        ServerMsg::CallTransferred { call_id: call.0, window: self.names.queue(queue) }
                    }
                    BackReason::ApproverGone { .. } => {
                        ServerMsg::CallRequeued { call_id: call.0, reason: "approver_gone" }
                    }
                }
            }
            Notice::CallEnded { call, case, reason, .. } => {
                let reason = reason.as_str();
                if matches!(to, Party::Kiosk(_))
                    && let Some(c) = case
                {
                    log = Some(CallLog::Ended { case: c.0, reason });
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
                from: GroupFromWire {
                    name: self.names.staff.get(&dispatcher.0).cloned().unwrap_or_default(),
                    town: self.names.towns.get(&town.0).cloned().unwrap_or_default(),
                },
            },
            Notice::GroupJoined { group, room } => ServerMsg::GroupJoined { group_id: group.0, room: room.to_string() },
            Notice::InviteExpired { group } => ServerMsg::GroupInviteExpired { group_id: group.0 },
            Notice::GroupState { group, room, members } => ServerMsg::GroupState {
                group_id: group.0,
                room: room.to_string(),
                members: members
                    .into_iter()
                    .map(|m| GroupMemberWire {
                        village: self.names.village(m.village),
                        label: label(Party::Kiosk(m.kiosk)),
                        state: m.status.as_str(),
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
        if let Some(log) = log {
            self.record(log, now).await;
        }
        self.send(to, msg);
    }

    /// Update the call log (the open leg of the case); failures are logged, never fatal.
    async fn record(&self, log: CallLog, now: Millis) {
        let result = self
            .db
            .run(move |db| -> Result<(), DataError> {
                let case = match &log {
                    CallLog::Rang { case }
                    | CallLog::Answered { case, .. }
                    | CallLog::Requeued { case, .. }
                    | CallLog::Ended { case, .. } => *case,
                };
                let Some(row) = db.open_call_of_case(case)? else { return Ok(()) };
                match log {
                    CallLog::Rang { .. } => db.record_call_rang(row, now.0),
                    CallLog::Answered { staff, .. } => db.record_call_answered(row, staff, now.0),
                    CallLog::Ended { reason, .. } => db.record_call_ended(row, reason, now.0),
                    CallLog::Requeued { case, window, kiosk, reason } => {
                        let old = db.call(row)?;
                        let w = window.or(old.map(|o| o.window_id)).unwrap_or_default();
                        if reason == Requeue::Transferred {
                            return db.record_call_transferred(row, w, now.0).map(|_| ());
                        }
                        db.record_call_ended(row, reason.as_str(), now.0)?;
                        db.record_call_requested(case, w, kiosk, now.0).map(|_| ())
                    }
                }
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "updating the call record");
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
    tracing::debug!(error = %e, "queue input refused");
    (code, format!("{zh} ({})", e.public_reason()))
}

/// A refused case request as the protocol's (code, message); internal errors say nothing more.
fn wire_rejection(e: Error) -> (&'static str, String) {
    match e {
        Error::Rejected(Rejection { kind, code, message }) => {
            // The protocol knows no `case_closed`: a case that takes no call is a conflict.
            let code = if kind == RejectKind::Conflict { "conflict" } else { code };
            (code, message)
        }
        e => {
            tracing::error!(error = %e, "resolving the case of a call request");
            ("internal", "服务器内部错误 (internal error)".into())
        }
    }
}
