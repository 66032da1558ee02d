//! Cases with their I/O: every lifecycle command goes through [`run`], which applies the pure
//! state machine, stores the transition (conditional on the status it started from) and turns
//! its effects into [`Notice`]s for the edge to deliver. Nothing here knows HTTP or the wire.

use crate::case::villager::Villager;
use crate::case::{
    Audience, CallFacts, CaseEvent, CaseRecord, Command, Effect, Outcome, PaperFacts, PaperKind, Rating, ResultPaper,
    ShownStatus, SignoffDecision, Viewer, plausible_case_no,
};
use crate::db::{DataError, Db, InboxRow, NewEvent, PaperChange, PaperRow};
use crate::error::{Error, Rejection};
use crate::identity::Role;
use crate::objects::{Vault, pii_class};

use super::views::{
    self, CaseSummary, CaseView, InboxItemView, Named, OutcomeNotice, OutcomeView, RatingView, SignoffItem,
};

/// Something to tell connected parties once a change is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `outcome` to the kiosks of the village.
    Outcome { village_id: i64, notice: OutcomeNotice },
    /// `inbox.item` to the kiosks of the village.
    Inbox { village_id: i64, item: Box<InboxItemView> },
    /// `signoff.requested` to these chiefs.
    SignoffRequested { chiefs: Vec<i64>, case_no: String, matter: Named, village: Named },
    /// `signoff.returned` to the approver who decided.
    SignoffReturned { to: i64, case_no: String, reason: String },
    /// `paper.rescan_requested` to the kiosks of the village.
    RescanRequested { village_id: i64, case_no: String, paper_id: Option<i64>, note: String },
    /// `villager.requested` to the kiosks of the village: enter the villager to be decided.
    VillagerRequested { village_id: i64, case_no: String },
}

/// The case `case_no` (404 if unknown or implausible) checked against the viewer's scope.
pub async fn load(db: &Db, viewer: &Viewer, case_no: String) -> Result<CaseRecord, Error> {
    if !plausible_case_no(&case_no) {
        return Err(Rejection::not_found("case").into());
    }
    let case = db.run(move |db| db.case_by_no(&case_no)).await?.ok_or_else(|| Rejection::not_found("case"))?;
    if !viewer.may_read(&case) {
        return Err(Rejection::forbidden("this case belongs to another village or town").into());
    }
    Ok(case)
}

/// The full view of a case, read fresh.
pub async fn view(db: &Db, case_id: i64, audience: Audience) -> Result<CaseView, Error> {
    db.run(move |db| {
        let case = db.case(case_id)?.ok_or_else(|| DataError::NotFound(format!("case {case_id}")))?;
        Ok(views::case_view(db, &case, audience)?)
    })
    .await
}

/// Apply a lifecycle command by `viewer` to `case` and store it. Returns the case as stored
/// and what to tell whom.
pub async fn run(
    db: &Db,
    viewer: &Viewer,
    case: &CaseRecord,
    command: Command,
) -> Result<(CaseRecord, Vec<Notice>), Error> {
    let at_ms = crate::now_ms();
    let t = crate::case::apply(&case.state, viewer.actor(), command, at_ms)?;
    if t.state == case.state && t.events.is_empty() && t.effects.is_empty() {
        return Ok((case.clone(), Vec::new()));
    }
    let from = case.status();
    let actor = viewer.stamp();
    let case_id = case.id;
    let inbox_for = t.effects.contains(&Effect::DeliverToInbox).then_some(case.village_id);
    let stored = t.clone();
    let (fresh, inbox) = db
        .run(move |db| -> Result<_, Error> {
            let inbox =
                db.commit_transition(case_id, from, &stored, &actor, at_ms, inbox_for).map_err(|e| match e {
                    DataError::Conflict(_) => Error::from(Rejection::changed_meanwhile()),
                    e => e.into(),
                })?;
            let fresh = db.case(case_id)?.ok_or_else(|| DataError::NotFound(format!("case {case_id}")))?;
            Ok((fresh, inbox))
        })
        .await?;
    let notices = notices(db, &fresh, &t.effects, inbox).await?;
    Ok((fresh, notices))
}

/// The notices for the effects of a stored transition.
async fn notices(
    db: &Db,
    case: &CaseRecord,
    effects: &[Effect],
    inbox: Option<InboxRow>,
) -> Result<Vec<Notice>, Error> {
    let mut out = Vec::new();
    for effect in effects {
        match effect {
            Effect::PushOutcome => {
                let c = case.clone();
                let notice =
                    db.run(move |db| Ok::<_, DataError>(OutcomeNotice::of(&c, &db.papers_of_case(c.id)?))).await?;
                out.push(Notice::Outcome { village_id: case.village_id, notice });
            }
            Effect::RequestSignoff => {
                let town = case.town_id;
                let chiefs = db.run(move |db| db.staff_of_town(town, Role::Chief)).await?;
                out.push(Notice::SignoffRequested {
                    chiefs,
                    case_no: case.case_no.clone(),
                    matter: Named { id: case.matter_id, name: case.matter_name.clone() },
                    village: Named { id: case.village_id, name: case.village_name.clone() },
                });
            }
            Effect::DeliverToInbox => {
                // Written with the transition; told now.
                if let Some(row) = inbox.clone() {
                    let item = db.run(move |db| views::inbox_item(db, &row)).await?;
                    out.push(Notice::Inbox { village_id: case.village_id, item: Box::new(item) });
                }
            }
            Effect::TellReturned { decider, reason } => out.push(Notice::SignoffReturned {
                to: *decider,
                case_no: case.case_no.clone(),
                reason: reason.clone(),
            }),
            Effect::AskRescan { paper_id, note } => out.push(Notice::RescanRequested {
                village_id: case.village_id,
                case_no: case.case_no.clone(),
                paper_id: *paper_id,
                note: note.clone(),
            }),
        }
    }
    Ok(out)
}

/// A result paper named by a decision, as the lifecycle needs to know it.
async fn result_paper(db: &Db, case_id: i64, paper_id: Option<i64>) -> Result<Option<ResultPaper>, Error> {
    let Some(id) = paper_id else { return Ok(None) };
    let paper = db.run(move |db| db.paper(id)).await?;
    let kind = paper.filter(|p| p.case_id == case_id).map(|p| p.kind);
    Ok(Some(ResultPaper { id, kind }))
}

/// The approver's decision, as the edge parsed it.
#[derive(Debug, Clone)]
pub struct DecisionInput {
    pub outcome: Outcome,
    pub note: String,
    pub missing_items: Vec<String>,
    pub result_paper_id: Option<i64>,
}

/// Decide a case. `live_approver`: the approver of the case's live call (the engine knows).
pub async fn decide(
    db: &Db,
    viewer: &Viewer,
    case: &CaseRecord,
    input: DecisionInput,
    live_approver: Option<i64>,
) -> Result<(CaseRecord, Vec<Notice>), Error> {
    let case_id = case.id;
    let last_answerer = db.run(move |db| db.last_answered_call(case_id)).await?.map(|(_, staff)| staff);
    let command = Command::Decide {
        outcome: input.outcome,
        note: input.note,
        missing_items: input.missing_items,
        result_paper: result_paper(db, case.id, input.result_paper_id).await?,
        calls: CallFacts { live_approver, last_answerer },
        villager: case.villager_name.is_some() && case.villager_phone.is_some(),
    };
    run(db, viewer, case, command).await
}

/// Finish a 放心回家 case with its result paper.
pub async fn finish(
    db: &Db,
    viewer: &Viewer,
    case: &CaseRecord,
    note: String,
    result_paper_id: i64,
) -> Result<(CaseRecord, Vec<Notice>), Error> {
    // The lifecycle refuses a case that is not `later` before looking at the paper.
    let paper = result_paper(db, case.id, Some(result_paper_id))
        .await?
        .unwrap_or(ResultPaper { id: result_paper_id, kind: None });
    run(db, viewer, case, Command::Finish { note, result_paper: paper }).await
}

/// The chief's sign-off.
pub async fn sign_off(
    db: &Db,
    viewer: &Viewer,
    case: &CaseRecord,
    decision: SignoffDecision,
    reason: Option<String>,
) -> Result<(CaseRecord, Vec<Notice>), Error> {
    run(db, viewer, case, Command::SignOff { decision, reason }).await
}

/// Open a case ahead of its call (the kiosk), with the villager if given.
pub async fn open(
    db: &Db,
    vault: &Vault,
    viewer: &Viewer,
    matter_id: i64,
    villager: Option<Villager>,
) -> Result<CaseRecord, Error> {
    let Viewer::Kiosk { kiosk_id, village_id, town_id, .. } = *viewer else {
        return Err(Rejection::forbidden("cases are opened by the village room").into());
    };
    let case = db
        .run(move |db| -> Result<_, Error> {
            db.matter_for_town(town_id, matter_id)?.ok_or_else(|| Rejection::not_found("matter"))?;
            Ok(db.create_case(matter_id, village_id, Some(kiosk_id), crate::now_ms())?)
        })
        .await?;
    match villager {
        Some(v) => set_villager(db, vault, viewer, &case, v).await,
        None => Ok(case),
    }
}

/// Enter the villager on a case that is not final (the ID number sealed with the active key).
pub async fn set_villager(
    db: &Db,
    vault: &Vault,
    viewer: &Viewer,
    case: &CaseRecord,
    v: Villager,
) -> Result<CaseRecord, Error> {
    crate::case::apply(&case.state, viewer.actor(), Command::SetVillager, crate::now_ms())?;
    let sealed = match &v.id_number {
        Some(id) => Some(vault.seal(pii_class()?, &format!("cases/{}/id_number", case.id), id.as_bytes())?),
        None => None,
    };
    let masked = v.id_number_masked();
    let ev = NewEvent {
        at_ms: crate::now_ms(),
        actor: viewer.stamp(),
        event: CaseEvent::VillagerSet { id_number: v.id_number.is_some() },
    };
    let case_id = case.id;
    db.run(move |db| -> Result<_, Error> {
        db.set_villager(case_id, &v.name, &v.phone, masked.as_deref(), sealed.as_deref(), &ev).map_err(
            |e| match e {
                DataError::Conflict(_) => {
                    Error::from(Rejection::conflict("case_closed", "案件已办结,不能修改 (the case is closed)"))
                }
                e => e.into(),
            },
        )?;
        Ok(db.case(case_id)?.ok_or_else(|| DataError::NotFound(format!("case {case_id}")))?)
    })
    .await
}

/// The case of the kiosk's waiting or live call, or else the case it prepares (opened within
/// `prepared_hours`, never called): what a reloaded kiosk page comes back to.
pub async fn current_of_kiosk(db: &Db, kiosk_id: i64, prepared_hours: u32) -> Result<CaseView, Error> {
    let since = crate::now_ms().saturating_sub(u64::from(prepared_hours) * 3_600_000);
    db.run(move |db| -> Result<_, Error> {
        let case = db.current_case_of_kiosk(kiosk_id, since)?.ok_or_else(|| Rejection::not_found("current case"))?;
        Ok(views::case_view(db, &case, Audience::Village)?)
    })
    .await
}

/// Cases in the viewer's scope, newest first; `status` (a shown status) filters.
pub async fn list(
    db: &Db,
    viewer: &Viewer,
    status: Option<ShownStatus>,
    limit: usize,
) -> Result<Vec<CaseSummary>, Error> {
    let audience = viewer.audience();
    let statuses = match status {
        None => None,
        Some(s) => Some(s.statuses(audience).ok_or_else(|| Rejection::invalid("未知的状态 (unknown status)"))?),
    };
    let scope = viewer.scope();
    let list = db.run(move |db| db.cases_in_scope(scope, statuses, limit, false)).await?;
    Ok(list.iter().map(|c| CaseSummary::of(c, audience)).collect())
}

/// Calls that ended without a decision, from the server (not a page's memory): for an
/// approver the cases whose last call they answered (they decide them), for a chief those of
/// the town; oldest first.
pub async fn undecided(db: &Db, viewer: &Viewer, limit: usize) -> Result<Vec<CaseSummary>, Error> {
    let (town, by) = match *viewer {
        Viewer::Approver { town_id, user_id, .. } => (town_id, Some(user_id)),
        Viewer::Chief { town_id, .. } => (town_id, None),
        Viewer::Kiosk { .. } | Viewer::Supervisor { .. } => {
            return Err(Rejection::forbidden("undecided calls are the window's").into());
        }
    };
    let list = db.run(move |db| db.undecided_cases(town, by, limit)).await?;
    Ok(list.iter().map(|c| CaseSummary::of(c, Audience::Town)).collect())
}

/// The chief's list: cases of the town waiting for sign-off, oldest first.
pub async fn waiting_for_signoff(db: &Db, town_id: i64) -> Result<Vec<SignoffItem>, Error> {
    db.run(move |db| -> Result<_, Error> {
        let cases =
            db.cases_in_scope(crate::case::CaseScope::Town(town_id), Some(&[crate::case::Status::Signoff]), 500, true)?;
        let mut out = Vec::with_capacity(cases.len());
        for c in &cases {
            let papers = db.papers_of_case(c.id)?;
            out.push(SignoffItem {
                case: CaseSummary::of(c, Audience::Town),
                outcome: OutcomeView::of(c, &papers, Audience::Town),
            });
        }
        Ok(out)
    })
    .await
}

/// The window asks the village room to scan a paper (or papers) again.
pub async fn request_rescan(
    db: &Db,
    viewer: &Viewer,
    case: &CaseRecord,
    paper_id: Option<i64>,
    note: String,
) -> Result<Vec<Notice>, Error> {
    let command = Command::RequestRescan { paper_id, note };
    crate::case::apply(&case.state, viewer.actor(), command.clone(), crate::now_ms())?;
    if let Some(pid) = paper_id {
        let case_id = case.id;
        let found = db.run(move |db| db.paper(pid)).await?;
        if found.is_none_or(|p| p.case_id != case_id) {
            return Err(Rejection::not_found("paper").into());
        }
    }
    let (_, notices) = run(db, viewer, case, command).await?;
    Ok(notices)
}

/// The village room corrects one of its scans: which paper of the checklist it is, or takes it
/// back (kept for the record). Returns the paper as stored. A paper of another case is 404.
pub async fn change_paper(
    db: &Db,
    viewer: &Viewer,
    case: &CaseRecord,
    paper_id: i64,
    change: PaperChange,
) -> Result<PaperRow, Error> {
    let case_id = case.id;
    let paper = db
        .run(move |db| db.paper(paper_id))
        .await?
        .filter(|p| p.case_id == case_id)
        .ok_or_else(|| Rejection::not_found("paper"))?;
    if let PaperChange::Retag(Some(item)) = &change
        && !case.required_papers.iter().any(|r| r == item)
    {
        return Err(Rejection::invalid("checklist_item 不是这个事项要的材料 (not on the checklist)").into());
    }
    let facts = PaperFacts {
        id: paper.id,
        kind: paper.kind,
        checklist_item: paper.checklist_item.clone(),
        removed: paper.removed_at_ms.is_some(),
    };
    let command = match &change {
        PaperChange::Retag(item) => Command::RetagPaper { paper: facts, checklist_item: item.clone() },
        PaperChange::Remove => Command::RemovePaper { paper: facts },
    };
    let at_ms = crate::now_ms();
    let t = crate::case::apply(&case.state, viewer.actor(), command, at_ms)?;
    if t.events.is_empty() {
        return Ok(paper);
    }
    let from = case.status();
    let events: Vec<NewEvent> =
        t.events.into_iter().map(|event| NewEvent { at_ms, actor: viewer.stamp(), event }).collect();
    db.run(move |db| {
        db.change_paper(case_id, from, paper_id, &change, &events, at_ms).map_err(|e| match e {
            DataError::Conflict(_) => Error::from(Rejection::changed_meanwhile()),
            e => e.into(),
        })
    })
    .await
}

/// 好差评: the village room rates the case's last answered call, once.
pub async fn rate(
    db: &Db,
    viewer: &Viewer,
    case: &CaseRecord,
    rating: Rating,
    comment: Option<String>,
) -> Result<RatingView, Error> {
    let Viewer::Kiosk { kiosk_id, .. } = *viewer else {
        return Err(Rejection::forbidden("ratings are given at the village room").into());
    };
    let ev = NewEvent { at_ms: crate::now_ms(), actor: viewer.stamp(), event: CaseEvent::RatingGiven { rating } };
    let at_ms = ev.at_ms;
    let case_id = case.id;
    let c = comment.clone();
    let call_id = db
        .run(move |db| -> Result<_, Error> {
            let (call_id, _) = db
                .last_answered_call(case_id)?
                .ok_or_else(|| Rejection::conflict("no_call", "还没有通话可以评价 (no answered call to rate)"))?;
            db.add_rating(case_id, call_id, kiosk_id, rating, c.as_deref(), &ev).map_err(|e| match e {
                DataError::Conflict(_) => Error::from(Rejection::conflict(
                    "already_rated",
                    "这次通话已经评价过了 (this call was rated already)",
                )),
                e => e.into(),
            })?;
            Ok(call_id)
        })
        .await?;
    Ok(RatingView { rating, comment, at_ms, call_id })
}

/// The village's inbox, newest first (at most 100 items).
pub async fn inbox(db: &Db, village_id: i64, unread_only: bool) -> Result<Vec<InboxItemView>, Error> {
    db.run(move |db| -> Result<_, Error> {
        let rows = db.inbox_of_village(village_id, unread_only, 100)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(views::inbox_item(db, r)?);
        }
        Ok(out)
    })
    .await
}

/// A paper was looked at by someone of the town or a supervisor: one `paper.viewed` event per
/// viewer and paper per ten minutes. Failures are logged (the paper is still shown).
pub async fn paper_viewed(db: &Db, viewer: &Viewer, case_id: i64, paper_id: i64) {
    let ev = NewEvent { at_ms: crate::now_ms(), actor: viewer.stamp(), event: CaseEvent::PaperViewed { paper_id } };
    let since = ev.at_ms.saturating_sub(600_000);
    if let Err(e) = db.run(move |db| db.add_case_event_once(case_id, &ev, since)).await {
        tracing::warn!(error = %e, "recording a paper view");
    }
}

/// Which papers the viewer may open: the village sees a result paper only once the decision
/// is final and names it.
pub fn may_open_paper(viewer: &Viewer, case: &CaseRecord, kind: PaperKind, paper_id: i64) -> bool {
    match kind {
        PaperKind::Scan => true,
        PaperKind::Result => {
            !viewer.is_village()
                || (case.is_final() && case.state.decision.as_ref().and_then(|d| d.result_paper_id) == Some(paper_id))
        }
    }
}
