//! Public vocabulary of the queue machine: ids, time, configuration, topology, inputs,
//! actions, notices, errors and read-only views. No behaviour lives here.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident($inner:ty)) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(/// A town (镇), database id.
    TownId(i64));
id_type!(/// A village or community (村/社区), database id.
    VillageId(i64));
id_type!(/// A window of a town service centre (窗口), database id.
    WindowId(i64));
id_type!(/// A matter of the catalog (事项), database id.
    MatterId(i64));
id_type!(/// A kiosk device of a village service room, database id.
    KioskId(i64));
id_type!(/// A staff user (approver or dispatcher), database id.
    StaffId(i64));
id_type!(/// A case (件), created by the glue and carried by the call, database id.
    CaseId(i64));
id_type!(/// A call, allocated by the machine (monotonic, survives restarts).
    CallId(u64));
id_type!(/// A group call (1对N), allocated by the machine (monotonic, survives restarts).
    GroupId(u64));

/// Wall-clock time in Unix milliseconds. Wall clock (not monotonic) so that a persisted
/// snapshot still means something after a restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Millis(pub u64);

impl Millis {
    /// `self + d`, saturating.
    pub fn plus(self, d: Duration) -> Millis {
        Millis(self.0.saturating_add(duration_ms(d)))
    }

    /// Milliseconds from `earlier` to `self`, 0 if `earlier` is later (clock stepped back).
    pub fn ms_since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// Whole seconds (rounded to nearest) from `earlier` to `self`.
    pub fn secs_since(self, earlier: Millis) -> u64 {
        ms_to_secs(self.ms_since(earlier))
    }
}

pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds to whole seconds, rounded to nearest.
pub(crate) fn ms_to_secs(ms: u64) -> u64 {
    ms.saturating_add(500) / 1000
}

/// Tunables. All durations must be at least 1 ms, counts at least 1 (checked by
/// [`Config::validate`], which the constructors call).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// How long an approver rings before the ring stops and the approver is set Away.
    pub ring_timeout: Duration,
    /// How long a disconnected kiosk keeps its place in a queue or its live call.
    pub kiosk_grace: Duration,
    /// How long a disconnected dispatcher's open group call survives.
    pub dispatcher_grace: Duration,
    /// How long a group invitation stays open.
    pub group_invite_timeout: Duration,
    /// How many recent handling times per queue the wait estimate averages.
    pub estimate_window: usize,
    /// Handling time assumed for a queue with no history yet.
    pub default_handling_time: Duration,
    /// Waiting calls per queue beyond which `RequestCall` / `Transfer` fail with `QueueFull`.
    pub max_queue_len: usize,
    /// Most villages one `StartGroup` may name.
    pub max_group_villages: usize,
    /// Most kiosks one group call may invite.
    pub max_group_kiosks: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ring_timeout: Duration::from_secs(30),
            kiosk_grace: Duration::from_secs(60),
            dispatcher_grace: Duration::from_secs(60),
            group_invite_timeout: Duration::from_secs(60),
            estimate_window: 20,
            default_handling_time: Duration::from_secs(5 * 60),
            max_queue_len: 500,
            max_group_villages: 50,
            max_group_kiosks: 100,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), SetupError> {
        let durations = [
            ("ring_timeout", self.ring_timeout),
            ("kiosk_grace", self.kiosk_grace),
            ("dispatcher_grace", self.dispatcher_grace),
            ("group_invite_timeout", self.group_invite_timeout),
            ("default_handling_time", self.default_handling_time),
        ];
        for (name, d) in durations {
            if duration_ms(d) == 0 {
                return Err(SetupError::BadConfig(name));
            }
        }
        let counts = [
            ("estimate_window", self.estimate_window),
            ("max_queue_len", self.max_queue_len),
            ("max_group_villages", self.max_group_villages),
            ("max_group_kiosks", self.max_group_kiosks),
        ];
        for (name, n) in counts {
            if n == 0 {
                return Err(SetupError::BadConfig(name));
            }
        }
        Ok(())
    }
}

/// Who is where. Ids only: names stay with the glue. Towns are derived for kiosks (from
/// their village) and approvers (from their window), so they cannot disagree.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    pub towns: Vec<Town>,
    pub windows: Vec<Window>,
    pub villages: Vec<Village>,
    pub kiosks: Vec<Kiosk>,
    pub approvers: Vec<Approver>,
    pub dispatchers: Vec<Dispatcher>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Town {
    pub id: TownId,
    /// 无差别综合受理: any window of the town may take any matter; requests wait in one
    /// town-wide queue that every approver of the town serves.
    pub any_window: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub id: WindowId,
    pub town: TownId,
    /// Matters this window accepts (事项清单).
    pub matters: BTreeSet<MatterId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Village {
    pub id: VillageId,
    pub town: TownId,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kiosk {
    pub id: KioskId,
    pub village: VillageId,
}

/// A town approver, working at one window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approver {
    pub id: StaffId,
    pub window: WindowId,
}

/// A town dispatcher (group calls).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispatcher {
    pub id: StaffId,
    pub town: TownId,
}

/// A queue: one per window, plus one town-wide queue for each `any_window` town.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum QueueKey {
    Window(WindowId),
    Town(TownId),
}

/// Somebody with a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Party {
    Kiosk(KioskId),
    Staff(StaffId),
}

/// A media room. Its wire name is its `Display`: `call:ID` or `group:ID`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Room {
    Call(CallId),
    Group(GroupId),
}

impl fmt::Display for Room {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Room::Call(id) => write!(f, "call:{id}"),
            Room::Group(id) => write!(f, "group:{id}"),
        }
    }
}

/// An approver's presence. Only `Available` approvers are rung.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    #[default]
    Available,
    Busy,
    Away,
}

/// Queue priority: higher is served first; equal priorities are FIFO. Every call is
/// `NORMAL` today. Hook for booking (预约): a booked call whose slot has come would get a
/// higher priority here; nothing else in the machine needs to change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Priority(pub u8);

impl Priority {
    pub const NORMAL: Priority = Priority(0);
}

/// What the glue feeds in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Input {
    KioskConnected {
        kiosk: KioskId,
    },
    KioskDisconnected {
        kiosk: KioskId,
    },
    StaffConnected {
        staff: StaffId,
    },
    StaffDisconnected {
        staff: StaffId,
    },
    /// `priority`: booked calls (预约) at their time get a higher one and go first.
    RequestCall {
        kiosk: KioskId,
        matter: MatterId,
        case: Option<CaseId>,
        #[serde(default)]
        priority: Priority,
    },
    CancelCall {
        kiosk: KioskId,
        call: CallId,
    },
    SetPresence {
        staff: StaffId,
        presence: Presence,
    },
    Answer {
        staff: StaffId,
        call: CallId,
    },
    HangUp {
        by: Party,
        call: CallId,
    },
    Transfer {
        staff: StaffId,
        call: CallId,
        to_window: WindowId,
    },
    StartGroup {
        dispatcher: StaffId,
        villages: Vec<VillageId>,
    },
    AcceptGroup {
        kiosk: KioskId,
        group: GroupId,
    },
    DeclineGroup {
        kiosk: KioskId,
        group: GroupId,
    },
    LeaveGroup {
        kiosk: KioskId,
        group: GroupId,
    },
    EndGroup {
        dispatcher: StaffId,
        group: GroupId,
    },
    /// Invite a village of the group again (it declined, did not answer, or left).
    ReinviteGroup {
        dispatcher: StaffId,
        group: GroupId,
        village: VillageId,
    },
}

/// What the machine asks the glue to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Action {
    /// Tell one party something. The party may be disconnected: then drop it.
    Notify {
        to: Party,
        notice: Notice,
    },
    /// Create a media room with these participants.
    OpenRoom {
        room: Room,
        participants: Vec<Party>,
    },
    AddToRoom {
        room: Room,
        party: Party,
    },
    RemoveFromRoom {
        room: Room,
        party: Party,
    },
    CloseRoom {
        room: Room,
    },
}

/// A message for one party. The glue adds names and maps these to wire messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    /// To a kiosk: its place in a queue (1 = next) and the estimated wait.
    /// `staffed`: some approver serving the queue is connected and available or in a call
    /// (nobody there: the estimate means nothing, and the page says so).
    Position { call: CallId, queue: QueueKey, position: u32, estimated_wait_secs: u64, staffed: bool },
    /// To an approver: the items of this queue changed; send `queue_items(queue)`.
    QueueSnapshot { queue: QueueKey },
    /// To an approver: this call rings you.
    Ring { call: CallId, queue: QueueKey, kiosk: KioskId, village: VillageId, matter: MatterId, case: Option<CaseId> },
    /// To an approver: the ring for this call stopped.
    RingStopped { call: CallId, reason: RingStopReason },
    /// To both sides: the call is live in `room`; start media.
    CallStarted {
        call: CallId,
        room: Room,
        kiosk: KioskId,
        village: VillageId,
        staff: StaffId,
        window: WindowId,
        matter: MatterId,
        case: Option<CaseId>,
    },
    /// To the approver: the kiosk dropped out of the live call; its grace period runs.
    PeerReconnecting { call: CallId },
    /// To the approver: the kiosk is back within grace; media will be re-negotiated.
    PeerReconnected { call: CallId },
    /// To a kiosk: its live call went back to the head of `queue` (transfer or approver gone).
    /// A `Position` follows.
    BackInQueue { call: CallId, queue: QueueKey, reason: BackReason },
    /// To each side of a call that ended (or to the kiosk of a waiting call that ended).
    /// `handled_secs` is the length of the leg that ended (0 if the call was never answered).
    CallEnded { call: CallId, case: Option<CaseId>, reason: CallEndReason, handled_secs: u64 },
    /// To an approver: confirmed presence; `forced` when the machine set it (ring timeout).
    Presence { presence: Presence, forced: bool },
    /// To a kiosk: a dispatcher invites it to a group call.
    GroupInvite { group: GroupId, dispatcher: StaffId, town: TownId, expires_at: Millis },
    /// To a kiosk: it is in the group call's room; start media.
    GroupJoined { group: GroupId, room: Room },
    /// To a kiosk: its invitation was not answered in time.
    InviteExpired { group: GroupId },
    /// To the dispatcher: who is in the group call.
    GroupState { group: GroupId, room: Room, members: Vec<MemberView> },
    /// To the dispatcher and every invited or joined kiosk.
    GroupEnded { group: GroupId, reason: GroupEndReason },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RingStopReason {
    /// Another approver took the call, or this approver answered another call.
    AnsweredElsewhere,
    /// The call left the queue (cancelled, removed by a topology change).
    Cancelled,
    /// Not answered within `ring_timeout`; the approver is set Away.
    Timeout,
    /// The kiosk dropped; its call is held (not rung) until it returns.
    KioskOffline,
    /// The approver set Busy or Away.
    PresenceChanged,
    /// The approver no longer serves the call's queue (topology change).
    NotServed,
}

impl RingStopReason {
    /// Every reason (the pages' words cover each: `case::words`).
    pub const ALL: &'static [RingStopReason] = &[
        RingStopReason::AnsweredElsewhere,
        RingStopReason::Cancelled,
        RingStopReason::Timeout,
        RingStopReason::KioskOffline,
        RingStopReason::PresenceChanged,
        RingStopReason::NotServed,
    ];

    /// The reason on the wire (`call.ring_stopped`).
    pub fn as_str(self) -> &'static str {
        match self {
            RingStopReason::AnsweredElsewhere => "answered_elsewhere",
            RingStopReason::Cancelled => "cancelled",
            RingStopReason::Timeout => "timeout",
            RingStopReason::KioskOffline => "kiosk_offline",
            RingStopReason::PresenceChanged => "presence_changed",
            RingStopReason::NotServed => "not_served",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackReason {
    /// The approver `by` of window `from` transferred the call.
    Transferred { from: WindowId, by: StaffId },
    /// The approver dropped mid-call (or the server restarted).
    ApproverGone { staff: StaffId },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallEndReason {
    /// A participant hung up.
    HangUp,
    /// The kiosk cancelled while waiting.
    Cancelled,
    /// To the approver: the kiosk did not come back within grace.
    PeerGone,
    /// To the kiosk: it did not come back within grace (waiting or live).
    GraceExpired,
    /// To the approver who transferred the call: it is no longer theirs.
    Transferred,
    /// No queue can take the call any more (topology change).
    NoWindow,
    /// The kiosk was removed from the topology.
    Removed,
}

impl CallEndReason {
    /// Every reason (the pages' words cover each: `case::words`).
    pub const ALL: &'static [CallEndReason] = &[
        CallEndReason::HangUp,
        CallEndReason::Cancelled,
        CallEndReason::PeerGone,
        CallEndReason::GraceExpired,
        CallEndReason::Transferred,
        CallEndReason::NoWindow,
        CallEndReason::Removed,
    ];

    /// The reason on the wire (`call.ended`).
    pub fn as_str(self) -> &'static str {
        match self {
            CallEndReason::HangUp => "hangup",
            CallEndReason::Cancelled => "cancelled",
            CallEndReason::PeerGone => "peer_gone",
            CallEndReason::GraceExpired => "grace_expired",
            CallEndReason::Transferred => "transferred",
            CallEndReason::NoWindow => "no_window",
            CallEndReason::Removed => "removed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupEndReason {
    /// The dispatcher ended it.
    Ended,
    /// The dispatcher did not come back within `dispatcher_grace`.
    DispatcherGone,
    /// The dispatcher was removed or moved to another town.
    Removed,
}

/// One kiosk of a group call, as the dispatcher sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MemberView {
    pub kiosk: KioskId,
    pub village: VillageId,
    pub status: MemberStatus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberStatus {
    Invited,
    Joined,
    Declined,
    Left,
    /// The invitation expired unanswered.
    NoAnswer,
    /// Invited or joined, but the kiosk is disconnected right now.
    Offline,
}

impl MemberStatus {
    /// Every state (the pages' words cover each: `case::words`).
    pub const ALL: &'static [MemberStatus] = &[
        MemberStatus::Invited,
        MemberStatus::Joined,
        MemberStatus::Declined,
        MemberStatus::Left,
        MemberStatus::NoAnswer,
        MemberStatus::Offline,
    ];

    /// The state on the wire (`group.state` members).
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Invited => "invited",
            MemberStatus::Joined => "joined",
            MemberStatus::Declined => "declined",
            MemberStatus::Left => "left",
            MemberStatus::NoAnswer => "no_answer",
            MemberStatus::Offline => "offline",
        }
    }
}

/// One waiting call as approvers see it (`queue.snapshot` items).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueItem {
    pub call: CallId,
    /// 1 = next.
    pub position: u32,
    pub kiosk: KioskId,
    pub village: VillageId,
    pub matter: MatterId,
    pub case: Option<CaseId>,
    pub priority: Priority,
    /// When the kiosk first asked (kept across transfers): `waited_secs` = now - this.
    pub requested_at: Millis,
    /// When it entered this queue.
    pub enqueued_at: Millis,
    /// Put at the head by a transfer.
    pub transferred: bool,
    /// Put back at the head because its approver dropped.
    pub returned: bool,
    /// False while the kiosk is disconnected (held: keeps its place, is not rung).
    pub kiosk_online: bool,
}

/// A call, for the glue's lookups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallView {
    pub call: CallId,
    pub kiosk: KioskId,
    pub village: VillageId,
    pub matter: MatterId,
    pub case: Option<CaseId>,
    pub requested_at: Millis,
    pub status: CallStatus,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum CallStatus {
    Waiting { queue: QueueKey, position: u32, ringing: Vec<StaffId> },
    Live { staff: StaffId, room: Room, answered_at: Millis },
}

/// For `/metrics`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMetrics {
    pub queue: QueueKey,
    pub waiting: usize,
    /// Age of the oldest waiting call (since its original request), 0 if none.
    pub oldest_wait_secs: u64,
    /// Current average handling time used for estimates.
    pub avg_handling_secs: u64,
    /// Estimated wait of a call that joined now.
    pub estimated_wait_secs: u64,
    /// Approvers serving it who are connected and Available or in a call.
    pub staffed: u64,
}

/// Coarse error class, for the wire `error.code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// `not_found`
    NotFound,
    /// `forbidden`
    Forbidden,
    /// `conflict`
    Conflict,
    /// `no_window`
    NoWindow,
    /// not in the wire list yet: suggest `queue_full` (or map to `conflict`)
    QueueFull,
    /// `bad_message`
    BadRequest,
}

/// Why an input was refused. A refused input never changes anything.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("unknown kiosk {0}")]
    UnknownKiosk(KioskId),
    #[error("unknown staff {0} (not an approver or dispatcher)")]
    UnknownStaff(StaffId),
    #[error("unknown call {0}")]
    UnknownCall(CallId),
    #[error("unknown window {0}")]
    UnknownWindow(WindowId),
    #[error("unknown village {0}")]
    UnknownVillage(VillageId),
    #[error("unknown group call {0}")]
    UnknownGroup(GroupId),
    #[error("staff {0} is not an approver")]
    NotApprover(StaffId),
    #[error("staff {0} is not a dispatcher")]
    NotDispatcher(StaffId),
    #[error("{0:?} is not connected")]
    NotConnected(Party),
    #[error("outside the principal's town or window")]
    OutOfScope,
    #[error("{0:?} does not take part in call {1}")]
    NotParticipant(Party, CallId),
    #[error("no window of town {town} accepts matter {matter}")]
    NoWindow { town: TownId, matter: MatterId },
    #[error("queue {0:?} is full")]
    QueueFull(QueueKey),
    #[error("kiosk {0} already has a call or is in a group call")]
    KioskBusy(KioskId),
    #[error("approver {0} is already in a call")]
    StaffBusy(StaffId),
    #[error("call {0} was already answered")]
    AlreadyAnswered(CallId),
    #[error("call {0} is not waiting")]
    NotWaiting(CallId),
    #[error("call {0} is not live")]
    NotLive(CallId),
    #[error("the kiosk of call {0} is disconnected")]
    KioskOffline(CallId),
    #[error("call {0} is already at window {1}")]
    SameWindow(CallId, WindowId),
    #[error("dispatcher {0} already has an open group call")]
    DispatcherBusy(StaffId),
    #[error("a group call needs at least one village with a kiosk")]
    EmptyGroup,
    #[error("group call too large")]
    GroupTooLarge,
    #[error("kiosk {0} is not a member of group {1}")]
    NotMember(KioskId, GroupId),
    #[error("kiosk {0} has no pending invitation to group {1}")]
    InviteNotPending(KioskId, GroupId),
    #[error("kiosk {0} has not joined group {1}")]
    NotJoined(KioskId, GroupId),
    #[error("group {1} belongs to another dispatcher than {0}")]
    NotGroupOwner(StaffId, GroupId),
    #[error("village {0} of group {1} has no kiosk that declined, did not answer or left")]
    NothingToReinvite(VillageId, GroupId),
}

impl QueueError {
    /// What the refusal says to a client: the reason without any internal identifier (the
    /// full error, with ids, is for the log only).
    pub fn public_reason(&self) -> &'static str {
        use QueueError::*;
        match self {
            UnknownKiosk(_) => "unknown kiosk",
            UnknownStaff(_) => "unknown staff member (not an approver or dispatcher)",
            UnknownCall(_) => "unknown call",
            UnknownWindow(_) => "unknown window",
            UnknownVillage(_) => "unknown village",
            UnknownGroup(_) => "unknown group call",
            NotApprover(_) => "not an approver",
            NotDispatcher(_) => "not a dispatcher",
            NotConnected(_) => "not connected",
            OutOfScope => "outside the principal's town or window",
            NotParticipant(..) => "not a participant of this call",
            NoWindow { .. } => "no window of this town accepts this matter",
            QueueFull(_) => "the queue is full",
            KioskBusy(_) => "the kiosk already has a call or is in a group call",
            StaffBusy(_) => "the approver is already in a call",
            AlreadyAnswered(_) => "the call was already answered",
            NotWaiting(_) => "the call is not waiting",
            NotLive(_) => "the call is not live",
            KioskOffline(_) => "the kiosk of the call is disconnected",
            SameWindow(..) => "the call is already at that window",
            DispatcherBusy(_) => "the dispatcher already has an open group call",
            EmptyGroup => "a group call needs at least one village with a kiosk",
            GroupTooLarge => "group call too large",
            NotMember(..) => "not a member of the group call",
            InviteNotPending(..) => "no pending invitation to the group call",
            NotJoined(..) => "has not joined the group call",
            NotGroupOwner(..) => "the group call belongs to another dispatcher",
            NothingToReinvite(..) => "no member of the group call can be invited again",
        }
    }

    pub fn kind(&self) -> ErrorKind {
        use QueueError::*;
        match self {
            UnknownKiosk(_) | UnknownStaff(_) | UnknownCall(_) | UnknownWindow(_) | UnknownVillage(_)
            | UnknownGroup(_) => ErrorKind::NotFound,
            NotApprover(_) | NotDispatcher(_) | OutOfScope | NotParticipant(..) | NotMember(..) | NotGroupOwner(..) => {
                ErrorKind::Forbidden
            }
            NotConnected(_)
            | KioskBusy(_)
            | StaffBusy(_)
            | AlreadyAnswered(_)
            | NotWaiting(_)
            | NotLive(_)
            | KioskOffline(_)
            | SameWindow(..)
            | DispatcherBusy(_)
            | InviteNotPending(..)
            | NotJoined(..)
            | NothingToReinvite(..) => ErrorKind::Conflict,
            NoWindow { .. } => ErrorKind::NoWindow,
            QueueFull(_) => ErrorKind::QueueFull,
            EmptyGroup | GroupTooLarge => ErrorKind::BadRequest,
        }
    }
}

/// A topology or configuration the machine cannot work with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("configuration value {0} must be positive")]
    BadConfig(&'static str),
    #[error("duplicate {kind} id {id}")]
    Duplicate { kind: &'static str, id: i64 },
    #[error("{kind} {id} refers to unknown {target} {target_id}")]
    Dangling { kind: &'static str, id: i64, target: &'static str, target_id: i64 },
    #[error("staff {0} is listed both as approver and as dispatcher")]
    StaffTwoRoles(StaffId),
    #[error("snapshot format {0} is not the supported one")]
    SnapshotFormat(u32),
}
