//! The case lifecycle as a pure state machine: [`apply`] takes a case's [`CaseState`], who
//! acts ([`Actor`]), what they ask ([`Command`]) and `now`, and returns the new state with the
//! timeline events to write and the effects to carry out ([`Transition`]), or a [`Refusal`]
//! that changes nothing. No I/O, no clock: facts the machine cannot know (who is in the live
//! call, whether a paper is a result paper of the case) come in with the command.
//!
//! ```text
//!            Decide(missing)            CallQueued
//!   open ───────────────────► missing ────────────► open
//!    │  Decide(later)                                 
//!    ├───────────────────► later ── Finish ──┐        
//!    │  Decide(done|refused)                 │ needs 一审一核?
//!    ├──────────────┬────────────────────────┤        
//!    │              │ no                     │ yes    
//!    │              ▼                        ▼        
//!    │        done | refused ◄── approve ── signoff ── return ──► returned ── Decide ──┐
//!    │                                        ▲                                         │
//!    └────────────────────────────────────────┴─────────────────────────────────────────┘
//! ```
//!
//! 一审一核 means two people: a sign-off (approve or return) is refused to whoever made the
//! decision it checks, on every path that leads to `signoff`.

use serde::Serialize;

// ---------------------------------------------------------------------------------------------
// Enumerations (text only at the database and wire edges).

/// Defines a fieldless enum with its text form (`as_str`, `parse`, `ALL`) and serde as that text.
macro_rules! text_enum {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($(#[$vm:meta])* $var:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        $vis enum $name {
            $($(#[$vm])* #[serde(rename = $text)] $var),+
        }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$var => $text),+ }
            }
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$var),)+ _ => None }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use text_enum;

text_enum! {
    /// Where a case stands.
    pub enum Status {
        /// New or resumed; no decision yet (or a 现场开单 being supplemented in a new call).
        Open = "open",
        /// 现场开单: papers missing; waits for a supplement call.
        Missing = "missing",
        /// 放心回家: accepted; the town finishes it later.
        Later = "later",
        /// A decision waits for the window chief (一审一核).
        Signoff = "signoff",
        /// The chief returned the decision to the window.
        Returned = "returned",
        /// 办结 (final).
        Done = "done",
        /// 不予办理, 当面说清 (final).
        Refused = "refused",
    }
}

text_enum! {
    /// The four outcomes an approver decides.
    pub enum Outcome {
        /// 当场办结
        Done = "done",
        /// 现场开单
        Missing = "missing",
        /// 当面说清
        Refused = "refused",
        /// 放心回家
        Later = "later",
    }
}

text_enum! {
    /// What a paper is: a scan from the village room, or a result document from the town.
    pub enum PaperKind {
        Scan = "scan",
        Result = "result",
    }
}

text_enum! {
    /// The window chief's sign-off decision.
    pub enum SignoffDecision {
        Approved = "approved",
        Returned = "returned",
    }
}

impl Status {
    /// After `done` and `refused` nothing about the decision changes any more.
    pub fn is_final(self) -> bool {
        match self {
            Status::Done | Status::Refused => true,
            Status::Open | Status::Missing | Status::Later | Status::Signoff | Status::Returned => false,
        }
    }

    /// The decision is waiting for (or was sent back by) the chief: the village sees "审核中".
    pub fn is_pending_signoff(self) -> bool {
        match self {
            Status::Signoff | Status::Returned => true,
            Status::Open | Status::Missing | Status::Later | Status::Done | Status::Refused => false,
        }
    }
}

impl Outcome {
    /// The status a decided outcome gives the case, without 一审一核.
    fn status(self) -> Status {
        match self {
            Outcome::Done => Status::Done,
            Outcome::Missing => Status::Missing,
            Outcome::Refused => Status::Refused,
            Outcome::Later => Status::Later,
        }
    }

    /// Does this outcome need the chief's sign-off when the matter requires 一审一核?
    fn is_signed_off(self) -> bool {
        match self {
            Outcome::Done | Outcome::Refused => true,
            Outcome::Missing | Outcome::Later => false,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State.

/// The latest decision on a case (pending while the status is `signoff`/`returned`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    pub note: String,
    pub missing_items: Vec<String>,
    pub result_paper_id: Option<i64>,
    /// The user who decided (an approver; a chief or approver who finished a `later` case).
    pub by: i64,
    pub at_ms: u64,
}

/// The chief's latest sign-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signoff {
    pub by: i64,
    pub at_ms: u64,
    pub decision: SignoffDecision,
    pub reason: Option<String>,
}

/// What the lifecycle knows of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseState {
    pub status: Status,
    /// The matter requires 一审一核.
    pub needs_signoff: bool,
    pub decision: Option<Decision>,
    pub signoff: Option<Signoff>,
}

impl CaseState {
    /// A case just opened.
    pub fn new(needs_signoff: bool) -> CaseState {
        CaseState { status: Status::Open, needs_signoff, decision: None, signoff: None }
    }
}

/// Who acts, as the lifecycle needs to know it (scope is checked before: see `access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The village room's kiosk.
    Kiosk,
    Approver(i64),
    Chief(i64),
    Supervisor(i64),
}

/// Who is in the calls of the case, as the engine and the call log know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallFacts {
    /// The approver of the case's live call, if one is live now.
    pub live_approver: Option<i64>,
    /// The approver who answered the case's last answered call.
    pub last_answerer: Option<i64>,
}

/// A paper of the case as the lifecycle needs to know it to correct it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaperFacts {
    pub id: i64,
    pub kind: PaperKind,
    /// Which paper of the checklist it answers (`None`: 其他材料).
    pub checklist_item: Option<String>,
    /// Taken back by the village room already (kept for the record, no longer current).
    pub removed: bool,
}

/// A result paper named by a decision: its id, and what the paper is if it belongs to the case
/// (`None`: no such paper of this case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultPaper {
    pub id: i64,
    pub kind: Option<PaperKind>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A kiosk asks for a call on this existing case (a supplement after 现场开单, or a case
    /// opened ahead). `in_call`: the case is already waiting or live in the queue.
    RequestCall { in_call: bool },
    /// The queue accepted the call: a `missing` case is `open` again.
    CallQueued,
    /// Start or continue adding a paper of this kind.
    AddPaper(PaperKind),
    /// The village room says which paper of the checklist one of its scans is (`checklist_item`
    /// on the matter's checklist, checked before; `None`: 其他材料).
    RetagPaper { paper: PaperFacts, checklist_item: Option<String> },
    /// The village room takes back one of its scans (scanned by mistake): it stays stored for
    /// the record and its retention, but is no longer a paper of the case.
    RemovePaper { paper: PaperFacts },
    /// Enter or change the villager's name, phone and ID number.
    SetVillager,
    /// The window asks the village to scan a paper again.
    RequestRescan { paper_id: Option<i64>, note: String },
    /// The approver decides one of the four outcomes.
    Decide {
        outcome: Outcome,
        note: String,
        missing_items: Vec<String>,
        result_paper: Option<ResultPaper>,
        calls: CallFacts,
        /// The villager's name and phone are on the case (a receipt's progress lookup needs
        /// the phone; a decided case no longer takes the villager).
        villager: bool,
    },
    /// The town finishes a 放心回家 case with its result.
    Finish { note: String, result_paper: ResultPaper },
    /// The chief approves the pending decision or returns it with a reason.
    SignOff { decision: SignoffDecision, reason: Option<String> },
}

// ---------------------------------------------------------------------------------------------
// Output.

/// A timeline event the transition writes (without personal data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail")]
pub enum CaseEvent {
    #[serde(rename = "case.resumed")]
    Resumed {},
    #[serde(rename = "rescan.requested")]
    RescanRequested { paper_id: Option<i64>, note: String },
    #[serde(rename = "outcome.decided")]
    Decided {
        outcome: Outcome,
        note: String,
        missing_items: Vec<String>,
        result_paper_id: Option<i64>,
        pending_signoff: bool,
    },
    #[serde(rename = "case.finished")]
    Finished { note: String, result_paper_id: i64, pending_signoff: bool },
    #[serde(rename = "signoff.approved")]
    SignoffApproved { reason: Option<String> },
    #[serde(rename = "signoff.returned")]
    SignoffReturned { reason: Option<String> },
    /// The decision as the village sees it once signed off.
    #[serde(rename = "outcome.final")]
    OutcomeFinal { outcome: Outcome, note: String, result_paper_id: Option<i64> },
    // Facts that change no status.
    /// The villager's details were entered (whether an ID number was given; never the values).
    #[serde(rename = "villager.set")]
    VillagerSet { id_number: bool },
    #[serde(rename = "paper.added")]
    PaperAdded { kind: PaperKind, checklist_item: Option<String>, size: u64, content_type: String, paper_id: i64 },
    /// The village room corrected which paper of the checklist a scan is (`None`: 其他材料).
    #[serde(rename = "paper.retagged")]
    PaperRetagged { paper_id: i64, from: Option<String>, to: Option<String> },
    /// The village room took a scan back (kept for the record, no longer current).
    #[serde(rename = "paper.removed")]
    PaperRemoved { paper_id: i64, checklist_item: Option<String> },
    /// Someone of the town or a supervisor looked at a paper.
    #[serde(rename = "paper.viewed")]
    PaperViewed { paper_id: i64 },
    #[serde(rename = "rating.given")]
    RatingGiven { rating: Rating },
}

text_enum! {
    /// The kinds of timeline entries: the stored events and those read from the call log.
    pub enum EventKind {
        Opened = "case.opened",
        CallRequested = "call.requested",
        CallAnswered = "call.answered",
        CallEnded = "call.ended",
        Resumed = "case.resumed",
        RescanRequested = "rescan.requested",
        Decided = "outcome.decided",
        Finished = "case.finished",
        SignoffApproved = "signoff.approved",
        SignoffReturned = "signoff.returned",
        OutcomeFinal = "outcome.final",
        VillagerSet = "villager.set",
        PaperAdded = "paper.added",
        PaperRetagged = "paper.retagged",
        PaperRemoved = "paper.removed",
        PaperViewed = "paper.viewed",
        RatingGiven = "rating.given",
    }
}

text_enum! {
    /// 好差评.
    pub enum Rating {
        Good = "good",
        Fair = "fair",
        Bad = "bad",
    }
}

impl CaseEvent {
    /// The kind and the detail (JSON without personal data), as the timeline stores them.
    pub fn kind_and_detail(&self) -> (EventKind, serde_json::Value) {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        let kind = v.get("kind").and_then(|k| k.as_str()).and_then(EventKind::parse);
        let detail = v.get_mut("detail").map(serde_json::Value::take).unwrap_or_else(|| serde_json::json!({}));
        // Every variant is named in `EventKind` (the tests check it).
        (kind.unwrap_or(EventKind::Opened), detail)
    }

    /// Is the event shown to the village (kiosk, progress) as well as to the town?
    pub fn village_visible(&self) -> bool {
        match self {
            CaseEvent::Resumed {}
            | CaseEvent::RescanRequested { .. }
            | CaseEvent::OutcomeFinal { .. }
            | CaseEvent::VillagerSet { .. }
            | CaseEvent::PaperRetagged { .. }
            | CaseEvent::PaperRemoved { .. }
            | CaseEvent::RatingGiven { .. } => true,
            CaseEvent::PaperAdded { kind, .. } => *kind == PaperKind::Scan,
            CaseEvent::PaperViewed { .. } => false,
            CaseEvent::Decided { pending_signoff, .. } | CaseEvent::Finished { pending_signoff, .. } => {
                !pending_signoff
            }
            CaseEvent::SignoffApproved { .. } | CaseEvent::SignoffReturned { .. } => false,
        }
    }
}

/// What has to happen outside the database once a transition is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Tell the village room what became of its case (`outcome` push).
    PushOutcome,
    /// Ask the town's window chiefs for a sign-off.
    RequestSignoff,
    /// The result reached the village after the call: an inbox item.
    DeliverToInbox,
    /// Tell the deciding approver the chief returned the decision.
    TellReturned { decider: i64, reason: String },
    /// Ask the village room to scan a paper again.
    AskRescan { paper_id: Option<i64>, note: String },
}

/// An accepted command: the new state, the events to write with it, the effects to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub state: CaseState,
    pub events: Vec<CaseEvent>,
    pub effects: Vec<Effect>,
}

/// Why a command was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The actor's role does not do this (`what` says who does).
    #[error("无权操作 (not allowed for this role: {0})")]
    Role(&'static str),
    /// Only the approver in the case's call decides it.
    #[error("无权操作 (only the approver in the call of this case decides it)")]
    NotTheDecider,
    /// 一审一核: the second check is someone else's.
    #[error(
        "一审一核须由另一人核准,不能审核自己作出的决定 (the sign-off must be made by someone other than who decided)"
    )]
    SamePerson,
    /// The case is final (or takes nothing of this kind any more).
    #[error("案件已办结或不再接收 (the case is closed: {0})")]
    Closed(Status),
    /// The paper was taken back by the village room already.
    #[error("这份材料已经删除了 (the paper was removed)")]
    PaperRemoved,
    /// The command does not apply to the case's status.
    #[error("案件当前状态不能这样操作 (not possible while the case is {status}: {why})")]
    Status { status: Status, why: &'static str },
    /// The case already has a call waiting or live.
    #[error("这个案件已经在通话或排队中 (the case is already in a call)")]
    InCall,
    /// No decision before the villager's name and phone are on the case.
    #[error("请先让村里登记办事人的姓名和电话,再作决定 (the villager's name and phone are required before a decision)")]
    VillagerRequired,
    /// The command is incomplete or contradicts itself.
    #[error("{0}")]
    Invalid(&'static str),
}

// ---------------------------------------------------------------------------------------------
// The machine.

/// Apply `command` by `actor` at `now_ms` to `state`.
pub fn apply(state: &CaseState, actor: Actor, command: Command, now_ms: u64) -> Result<Transition, Refusal> {
    let unchanged = |events: Vec<CaseEvent>, effects: Vec<Effect>| Transition { state: state.clone(), events, effects };
    let status = state.status;
    match command {
        Command::RequestCall { in_call } => {
            require(matches!(actor, Actor::Kiosk), "kiosks ask for calls")?;
            match status {
                Status::Open | Status::Missing => {}
                Status::Later | Status::Signoff | Status::Returned | Status::Done | Status::Refused => {
                    return Err(Refusal::Status {
                        status,
                        why: "only an open case or one waiting for papers is called",
                    });
                }
            }
            if in_call {
                return Err(Refusal::InCall);
            }
            Ok(unchanged(Vec::new(), Vec::new()))
        }
        Command::CallQueued => {
            require(matches!(actor, Actor::Kiosk), "kiosks ask for calls")?;
            match status {
                Status::Missing => Ok(Transition {
                    state: CaseState { status: Status::Open, ..state.clone() },
                    events: vec![CaseEvent::Resumed {}],
                    effects: Vec::new(),
                }),
                Status::Open => Ok(unchanged(Vec::new(), Vec::new())),
                Status::Later | Status::Signoff | Status::Returned | Status::Done | Status::Refused => {
                    Err(Refusal::Status { status, why: "only an open case or one waiting for papers is called" })
                }
            }
        }
        Command::AddPaper(kind) => {
            match (kind, actor) {
                (PaperKind::Scan, Actor::Kiosk) => match status {
                    Status::Open | Status::Missing => {}
                    Status::Later | Status::Signoff | Status::Returned | Status::Done | Status::Refused => {
                        return Err(Refusal::Closed(status));
                    }
                },
                (PaperKind::Result, Actor::Approver(_) | Actor::Chief(_)) => {
                    if status.is_final() {
                        return Err(Refusal::Closed(status));
                    }
                }
                (PaperKind::Scan | PaperKind::Result, _) => {
                    return Err(Refusal::Role("scans come from the village room, result papers from the town"));
                }
            }
            Ok(unchanged(Vec::new(), Vec::new()))
        }
        Command::RetagPaper { paper, checklist_item } => {
            may_correct_paper(state, actor, &paper)?;
            if paper.checklist_item == checklist_item {
                return Ok(unchanged(Vec::new(), Vec::new()));
            }
            Ok(unchanged(
                vec![CaseEvent::PaperRetagged { paper_id: paper.id, from: paper.checklist_item, to: checklist_item }],
                Vec::new(),
            ))
        }
        Command::RemovePaper { paper } => {
            may_correct_paper(state, actor, &paper)?;
            Ok(unchanged(
                vec![CaseEvent::PaperRemoved { paper_id: paper.id, checklist_item: paper.checklist_item }],
                Vec::new(),
            ))
        }
        Command::SetVillager => {
            require(matches!(actor, Actor::Kiosk), "the village room enters the villager")?;
            if status.is_final() {
                return Err(Refusal::Closed(status));
            }
            Ok(unchanged(Vec::new(), Vec::new()))
        }
        Command::RequestRescan { paper_id, note } => {
            require(matches!(actor, Actor::Approver(_) | Actor::Chief(_)), "re-scans are asked for by the window")?;
            if status.is_final() {
                return Err(Refusal::Closed(status));
            }
            Ok(unchanged(
                vec![CaseEvent::RescanRequested { paper_id, note: note.clone() }],
                vec![Effect::AskRescan { paper_id, note }],
            ))
        }
        Command::Decide { outcome, note, missing_items, result_paper, calls, villager } => {
            let Actor::Approver(user) = actor else {
                return Err(Refusal::Role("outcomes are decided by the approver"));
            };
            if outcome == Outcome::Missing && missing_items.is_empty() && note.is_empty() {
                return Err(Refusal::Invalid("现场开单需要列出缺少的材料 (list what is missing)"));
            }
            if outcome != Outcome::Missing && !missing_items.is_empty() {
                return Err(Refusal::Invalid("只有现场开单列出缺少的材料 (missing items go with 'missing' only)"));
            }
            match status {
                Status::Open | Status::Returned => {}
                Status::Done | Status::Refused => return Err(Refusal::Closed(status)),
                Status::Missing | Status::Later | Status::Signoff => {
                    return Err(Refusal::Status { status, why: "a decision is made on an open or returned case" });
                }
            }
            // Who decides: the approver in the live call of the case; after a dropped call the
            // approver who answered its last call; any approver of the town for a returned case.
            let allowed = match calls.live_approver {
                Some(live) => live == user,
                None => status == Status::Returned || calls.last_answerer == Some(user),
            };
            if !allowed {
                return Err(Refusal::NotTheDecider);
            }
            if !villager {
                return Err(Refusal::VillagerRequired);
            }
            let result_paper_id = match (outcome, result_paper) {
                (Outcome::Done, None) => {
                    return Err(Refusal::Invalid("当场办结需要上传结果文书 (result_paper_id is required for done)"));
                }
                (Outcome::Done | Outcome::Refused, Some(p)) => Some(result_paper_id(p)?),
                (Outcome::Missing | Outcome::Later, Some(_)) => {
                    return Err(Refusal::Invalid("只有办结或不予办理可以附结果文书 (no result paper here)"));
                }
                (Outcome::Refused | Outcome::Missing | Outcome::Later, None) => None,
            };
            let pending = state.needs_signoff && outcome.is_signed_off();
            let decision = Decision {
                outcome,
                note: note.clone(),
                missing_items: missing_items.clone(),
                result_paper_id,
                by: user,
                at_ms: now_ms,
            };
            let mut effects = vec![Effect::PushOutcome];
            if pending {
                effects.push(Effect::RequestSignoff);
            } else if calls.live_approver.is_none() {
                // Decided after the call: the village room learns it from its inbox (and can
                // print it there), not from a notice it may have missed.
                effects.insert(0, Effect::DeliverToInbox);
            }
            Ok(Transition {
                state: CaseState {
                    status: if pending { Status::Signoff } else { outcome.status() },
                    decision: Some(decision),
                    ..state.clone()
                },
                events: vec![CaseEvent::Decided {
                    outcome,
                    note,
                    missing_items,
                    result_paper_id,
                    pending_signoff: pending,
                }],
                effects,
            })
        }
        Command::Finish { note, result_paper } => {
            let user = match actor {
                Actor::Approver(u) | Actor::Chief(u) => u,
                Actor::Kiosk | Actor::Supervisor(_) => return Err(Refusal::Role("the town finishes its cases")),
            };
            if status != Status::Later {
                return Err(Refusal::Status {
                    status,
                    why: "只有放心回家的案件可以在此办结 (only a 'later' case is finished here)",
                });
            }
            let paper = result_paper_id(result_paper)?;
            let pending = state.needs_signoff;
            let decision = Decision {
                outcome: Outcome::Done,
                note: note.clone(),
                missing_items: Vec::new(),
                result_paper_id: Some(paper),
                by: user,
                at_ms: now_ms,
            };
            let effects =
                if pending { vec![Effect::RequestSignoff] } else { vec![Effect::DeliverToInbox, Effect::PushOutcome] };
            Ok(Transition {
                state: CaseState {
                    status: if pending { Status::Signoff } else { Status::Done },
                    decision: Some(decision),
                    ..state.clone()
                },
                events: vec![CaseEvent::Finished { note, result_paper_id: paper, pending_signoff: pending }],
                effects,
            })
        }
        Command::SignOff { decision, reason } => {
            let Actor::Chief(chief) = actor else { return Err(Refusal::Role("sign-off is for window chiefs")) };
            if status != Status::Signoff {
                return Err(Refusal::Status {
                    status,
                    why: "该案件不在待审核状态 (the case is not waiting for sign-off)",
                });
            }
            let Some(pending) = &state.decision else {
                return Err(Refusal::Status { status, why: "there is no decision to sign off" });
            };
            if pending.by == chief {
                return Err(Refusal::SamePerson);
            }
            let signoff = Signoff { by: chief, at_ms: now_ms, decision, reason: reason.clone() };
            match decision {
                SignoffDecision::Approved => Ok(Transition {
                    state: CaseState {
                        status: match pending.outcome {
                            Outcome::Refused => Status::Refused,
                            Outcome::Done | Outcome::Missing | Outcome::Later => Status::Done,
                        },
                        signoff: Some(signoff),
                        ..state.clone()
                    },
                    events: vec![
                        CaseEvent::SignoffApproved { reason },
                        CaseEvent::OutcomeFinal {
                            outcome: pending.outcome,
                            note: pending.note.clone(),
                            result_paper_id: pending.result_paper_id,
                        },
                    ],
                    effects: vec![Effect::DeliverToInbox, Effect::PushOutcome],
                }),
                SignoffDecision::Returned => {
                    let Some(why) = reason.clone().filter(|r| !r.is_empty()) else {
                        return Err(Refusal::Invalid("退回需要写明理由 (a reason is required)"));
                    };
                    Ok(Transition {
                        state: CaseState { status: Status::Returned, signoff: Some(signoff), ..state.clone() },
                        events: vec![CaseEvent::SignoffReturned { reason }],
                        effects: vec![Effect::TellReturned { decider: pending.by, reason: why }],
                    })
                }
            }
        }
    }
}

/// The village room corrects its own scans while the case still takes scans (open, or waiting
/// for the papers a 现场开单 listed): not after a decision, never the town's result papers.
fn may_correct_paper(state: &CaseState, actor: Actor, paper: &PaperFacts) -> Result<(), Refusal> {
    require(matches!(actor, Actor::Kiosk), "the village room corrects its own scans")?;
    match paper.kind {
        PaperKind::Scan => {}
        PaperKind::Result => return Err(Refusal::Role("result papers are the town's")),
    }
    match state.status {
        Status::Open | Status::Missing => {}
        Status::Later | Status::Signoff | Status::Returned | Status::Done | Status::Refused => {
            return Err(Refusal::Closed(state.status));
        }
    }
    if paper.removed {
        return Err(Refusal::PaperRemoved);
    }
    Ok(())
}

fn require(ok: bool, what: &'static str) -> Result<(), Refusal> {
    if ok { Ok(()) } else { Err(Refusal::Role(what)) }
}

fn result_paper_id(p: ResultPaper) -> Result<i64, Refusal> {
    match p.kind {
        Some(PaperKind::Result) => Ok(p.id),
        Some(PaperKind::Scan) | None => {
            Err(Refusal::Invalid("result_paper_id 不是本案件的结果文书 (not a result paper of this case)"))
        }
    }
}

/// The invariants every reachable state keeps (checked by the tests after every step).
pub fn check_invariants(s: &CaseState) -> Result<(), String> {
    let d = s.decision.as_ref();
    let outcome = d.map(|d| d.outcome);
    let ok = match s.status {
        // New, or resumed after 现场开单.
        Status::Open => matches!(outcome, None | Some(Outcome::Missing)),
        Status::Missing => outcome == Some(Outcome::Missing),
        Status::Later => outcome == Some(Outcome::Later),
        Status::Signoff => s.needs_signoff && matches!(outcome, Some(Outcome::Done | Outcome::Refused)),
        Status::Returned => {
            s.needs_signoff
                && s.signoff.as_ref().is_some_and(|so| so.decision == SignoffDecision::Returned)
                && matches!(outcome, Some(Outcome::Done | Outcome::Refused))
        }
        Status::Done => outcome == Some(Outcome::Done) && d.is_some_and(|d| d.result_paper_id.is_some()),
        Status::Refused => outcome == Some(Outcome::Refused),
    };
    if !ok {
        return Err(format!("status {} with decision {d:?} and sign-off {:?}", s.status, s.signoff));
    }
    if s.status.is_final() && s.needs_signoff {
        let (Some(d), Some(so)) = (d, s.signoff.as_ref()) else {
            return Err(format!("final {} without a sign-off", s.status));
        };
        if so.decision != SignoffDecision::Approved {
            return Err("final without an approval".into());
        }
        if so.by == d.by {
            return Err(format!("user {} decided and signed off the same decision", so.by));
        }
    }
    if s.status.is_final() && !s.needs_signoff && s.signoff.is_some() {
        return Err("a sign-off on a matter without 一审一核".into());
    }
    if let Some(d) = d
        && !d.missing_items.is_empty()
        && d.outcome != Outcome::Missing
    {
        return Err("missing items on an outcome other than 现场开单".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
