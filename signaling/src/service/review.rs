//! 可查可追溯: what supervisors (county-wide or of one town) and a town's chiefs (their own
//! town, read-only) see of cases: the search, the full record of a case with its recordings as
//! the player needs them, who looked at it, its legal hold. Every look is an access entry of
//! the audit record, written before the answer.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::audit::AccessAction;
use crate::case::villager::mask_phone;
use crate::case::{Audience, CaseRecord, CaseScope, Outcome, ShownStatus, SignoffDecision, Viewer, plausible_case_no};
use crate::db::{AccessRow, CaseFilter, CaseOrder, DataError, Db, HoldHistoryRow, LegalHold, RecordingRow, SegmentRow};
use crate::error::{Error, Rejection};

use super::audit::{Access, Audit};
use super::views::{self, BookingView, CaseView, MatterRef, Named};

/// A case opened again within this long by the same person is one access.
pub const OPEN_WINDOW_MS: u64 = 10 * 60 * 1000;
/// Most results per page.
pub const MAX_PAGE: usize = 100;

/// Whose cases the reviewer may see: supervisors their scope, chiefs their town.
pub fn scope_of(viewer: &Viewer) -> Result<CaseScope, Error> {
    match viewer {
        Viewer::Supervisor { .. } | Viewer::Chief { .. } => Ok(viewer.scope()),
        Viewer::Kiosk { .. } | Viewer::Approver { .. } => {
            Err(Rejection::forbidden("the review is for supervisors and window chiefs").into())
        }
    }
}

/// `张**`: the first character of a name, the rest starred.
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
        None => String::new(),
    }
}

/// A case in the search results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewRow {
    pub case_no: String,
    pub status: ShownStatus,
    pub status_text: &'static str,
    pub outcome: Option<Outcome>,
    pub signoff: Option<SignoffDecision>,
    pub needs_signoff: bool,
    pub matter: MatterRef,
    pub village: Named,
    pub town: Named,
    /// Masked (`张**`).
    pub villager: Option<String>,
    pub decided_by: Option<Named>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl ReviewRow {
    fn of(c: &CaseRecord) -> ReviewRow {
        let status = c.status().shown(Audience::Town);
        let d = c.state.decision.as_ref();
        ReviewRow {
            case_no: c.case_no.clone(),
            status,
            status_text: status.text(),
            outcome: d.map(|d| d.outcome),
            signoff: c.state.signoff.as_ref().map(|s| s.decision),
            needs_signoff: c.state.needs_signoff,
            matter: MatterRef { id: c.matter_id, name: c.matter_name.clone(), plain_name: c.matter_plain_name.clone() },
            village: Named { id: c.village_id, name: c.village_name.clone() },
            town: Named { id: c.town_id, name: c.town_name.clone() },
            villager: c.villager_name.as_deref().map(mask_name),
            decided_by: d.map(|d| Named { id: d.by, name: c.decided_by_name.clone().unwrap_or_default() }),
            created_at_ms: c.created_at_ms,
            updated_at_ms: c.updated_at_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchPage {
    /// Every match, over all pages.
    pub total: u64,
    pub items: Vec<ReviewRow>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// The filters as the access record keeps them: a villager's name only masked.
fn filter_detail(f: &CaseFilter, order: CaseOrder) -> Value {
    json!({
        "case_no": f.case_no, "town_id": f.town_id, "village_id": f.village_id, "matter_id": f.matter_id,
        "window_id": f.window_id, "approver_id": f.approver_id, "from_ms": f.from_ms, "to_ms": f.to_ms,
        "statuses": f.statuses, "outcome": f.outcome,
        "signoff": f.signoff.map(|s| format!("{s:?}")), "rating": f.rating.map(|r| format!("{r:?}")),
        "has_recording": f.has_recording, "recording_incomplete": f.recording_incomplete,
        "legal_hold": f.legal_hold, "villager_name": f.villager_name.as_deref().map(mask_name),
        "villager_last4": f.villager_last4.as_ref().map(|_| "****"),
        "order": format!("{order:?}"),
    })
}

/// Search the cases in the viewer's scope. The search itself is recorded.
#[allow(clippy::too_many_arguments)]
pub async fn search(
    db: &Db,
    audit: &Audit,
    viewer: &Viewer,
    filter: CaseFilter,
    order: CaseOrder,
    cursor: Option<i64>,
    limit: usize,
    address: Option<String>,
) -> Result<SearchPage, Error> {
    let scope = scope_of(viewer)?;
    let access =
        Access { action: AccessAction::CasesSearched, case_id: None, detail: filter_detail(&filter, order), address };
    audit.access(&viewer.stamp(), access).await?;
    let limit = limit.clamp(1, MAX_PAGE);
    let page = db.run(move |db| db.search_cases(scope, &filter, order, cursor, limit)).await?;
    Ok(SearchPage {
        total: page.total,
        items: page.cases.iter().map(ReviewRow::of).collect(),
        next_cursor: page.next.map(|n| n.to_string()),
    })
}

/// One recording as the player needs it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordingReview {
    pub id: i64,
    pub room: String,
    /// Which opening of the room (one call can be answered again after a drop).
    pub take: u64,
    /// `kiosk:ID` (the village side) or `staff:ID` (the town side).
    pub participant: String,
    pub side: &'static str,
    /// `recording`, `complete` or `incomplete`.
    pub status: String,
    /// Wall clock (Unix ms) of the recording's 0: the player aligns the sides on it.
    pub start_ms: u64,
    pub ended_at_ms: Option<u64>,
    pub duration_ms: i64,
    pub gaps: Value,
    pub segments: Vec<SegmentReview>,
    /// The seekable archive copy (complete recordings).
    pub archive_url: Option<String>,
    /// Destroyed by retention (the media is gone): when.
    pub destroyed_at_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentReview {
    pub index: u32,
    pub start_ms: i64,
    pub duration_ms: i64,
    pub bytes: u64,
    pub url: String,
}

/// A paper destroyed by retention, as the case page shows it (已销毁).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DestroyedPaper {
    pub paper_id: i64,
    pub destroyed_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HoldReview {
    pub current: Option<LegalHold>,
    pub history: Vec<HoldHistoryRow>,
}

/// Everything a reviewer sees of a case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseReview {
    pub case: CaseView,
    pub bookings: Vec<BookingView>,
    pub recordings: Vec<RecordingReview>,
    pub destroyed_papers: Vec<DestroyedPaper>,
    /// Who has looked at this case (newest first).
    pub access: Vec<AccessRow>,
    pub hold: HoldReview,
    /// When the signed manifest was sealed (final cases whose recordings are stored).
    pub sealed_at_ms: Option<u64>,
}

/// The case `case_no` in the reviewer's scope (404 if unknown, 403 if out of scope).
pub async fn load(db: &Db, viewer: &Viewer, case_no: String) -> Result<CaseRecord, Error> {
    scope_of(viewer)?;
    if !plausible_case_no(&case_no) {
        return Err(Rejection::not_found("case").into());
    }
    let case = db.run(move |db| db.case_by_no(&case_no)).await?.ok_or_else(|| Rejection::not_found("case"))?;
    if !viewer.may_read(&case) {
        return Err(Rejection::forbidden("this case belongs to another town").into());
    }
    Ok(case)
}

pub(super) fn media_side(participant: &str) -> &'static str {
    if participant.starts_with("kiosk:") { "village" } else { "town" }
}

/// The full record of a case for review; the opening is recorded (once per viewer per ten
/// minutes) before anything is shown.
pub async fn case_review(
    db: &Db,
    audit: &Audit,
    viewer: &Viewer,
    case_no: String,
    address: Option<String>,
) -> Result<CaseReview, Error> {
    let case = load(db, viewer, case_no).await?;
    let access = Access { action: AccessAction::CaseOpened, case_id: Some(case.id), detail: json!({}), address };
    audit.access_once(&viewer.stamp(), access, OPEN_WINDOW_MS).await?;
    case_review_unrecorded(db, viewer, &case).await
}

/// The full record of a case already loaded in the viewer's scope (the caller records the
/// access).
pub async fn case_review_unrecorded(db: &Db, viewer: &Viewer, case: &CaseRecord) -> Result<CaseReview, Error> {
    scope_of(viewer)?;
    let case = case.clone();
    let id = case.id;
    db.run(move |db| -> Result<CaseReview, Error> {
        let mut view = views::case_view(db, &case, Audience::Town)?;
        // Reviewers see the villager masked.
        if let Some(v) = view.villager.as_mut() {
            v.name = mask_name(&v.name);
            v.phone = mask_phone(&v.phone);
        }
        view.villager_name = view.villager_name.as_deref().map(mask_name);
        let destroyed: HashMap<String, u64> = db.destroyed_objects_of_case(id)?.into_iter().collect();
        let destroyed_papers = db
            .papers_of_case(id)?
            .iter()
            .filter_map(|p| {
                destroyed.get(&p.object_key).map(|at| DestroyedPaper { paper_id: p.id, destroyed_at_ms: *at })
            })
            .collect();
        let mut recordings = Vec::new();
        for r in db.recordings_of_case(id)? {
            let base = format!("/api/cases/{}/recordings/{}", case.case_no, r.id);
            recordings.push(recording_review(db, r, &base, &destroyed)?);
        }
        let bookings = db.bookings_of_case(id)?.iter().map(BookingView::from).collect();
        let access = db.accesses(Some(id), None, 0, u64::MAX, 500)?;
        let hold = HoldReview { current: db.legal_hold(id)?, history: db.legal_hold_history(id)? };
        let sealed_at_ms = db.case_manifest(id)?.map(|(_, _, _, at)| at);
        Ok(CaseReview { case: view, bookings, recordings, destroyed_papers, access, hold, sealed_at_ms })
    })
    .await
}

/// One recording as the player needs it, its media under `base` (`{base}/archive`,
/// `{base}/segments/{index}`); `destroyed` says which of its objects retention destroyed, when.
pub(super) fn recording_review(
    db: &Db,
    r: RecordingRow,
    base: &str,
    destroyed: &HashMap<String, u64>,
) -> Result<RecordingReview, DataError> {
    let segments: Vec<SegmentRow> = db.recording_segments(r.id)?;
    let destroyed_at_ms = segments.iter().find_map(|s| destroyed.get(&s.key).copied());
    let duration_ms = segments.last().map(|s| s.start_ms + s.duration_ms).unwrap_or(0);
    Ok(RecordingReview {
        id: r.id,
        side: media_side(&r.participant),
        room: r.room,
        take: r.take,
        participant: r.participant,
        status: r.status,
        start_ms: r.timeline_start_ms.unwrap_or(r.started_at_ms),
        ended_at_ms: r.ended_at_ms,
        duration_ms,
        gaps: r.gaps,
        archive_url: r.archive_key.as_ref().filter(|_| destroyed_at_ms.is_none()).map(|_| format!("{base}/archive")),
        segments: segments
            .iter()
            .map(|s| SegmentReview {
                index: s.index,
                start_ms: s.start_ms,
                duration_ms: s.duration_ms,
                bytes: s.bytes,
                url: format!("{base}/segments/{}", s.index),
            })
            .collect(),
        destroyed_at_ms,
    })
}

/// A town as the search form offers it: its villages, windows and deciding staff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TownChoices {
    pub id: i64,
    pub name: String,
    pub villages: Vec<Named>,
    pub windows: Vec<Named>,
    /// Approvers and chiefs (the search's `approver`).
    pub staff: Vec<Named>,
}

/// What the search form's drop-downs offer, in the reviewer's scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Choices {
    pub towns: Vec<TownChoices>,
    pub matters: Vec<MatterRef>,
}

/// The towns (all, or the reviewer's own), their villages, windows and staff, and the matters.
pub async fn choices(db: &Db, viewer: &Viewer) -> Result<Choices, Error> {
    let town = match scope_of(viewer)? {
        CaseScope::Town(t) => Some(t),
        CaseScope::County | CaseScope::Village(_) => None,
    };
    db.run(move |db| -> Result<Choices, DataError> {
        let staff = db.deciding_staff(town)?;
        let mut towns = Vec::new();
        for t in db.towns()?.into_iter().filter(|t| town.is_none_or(|only| only == t.id)) {
            let named = |id, name: &str| Named { id, name: name.to_string() };
            towns.push(TownChoices {
                villages: db.villages_of_town(t.id)?.iter().map(|v| named(v.id, &v.name)).collect(),
                windows: db.windows_of_town(t.id)?.iter().map(|w| named(w.id, &w.name)).collect(),
                staff: staff.iter().filter(|s| s.town_id == t.id).map(|s| named(s.id, &s.name)).collect(),
                id: t.id,
                name: t.name,
            });
        }
        let matters = db
            .matters_all(None)?
            .into_iter()
            .map(|m| MatterRef { id: m.id, name: m.name, plain_name: m.plain_name })
            .collect();
        Ok(Choices { towns, matters })
    })
    .await
    .map_err(Error::from)
}

/// The access report's rows.
pub type AccessReport = Vec<AccessRow>;

/// The access report: who looked at what, by person and time, in the viewer's scope (a town
/// reviewer sees the accesses to his town's cases). The reading is recorded too.
pub async fn access_report(
    db: &Db,
    audit: &Audit,
    viewer: &Viewer,
    user_id: Option<i64>,
    from_ms: u64,
    to_ms: u64,
    address: Option<String>,
) -> Result<AccessReport, Error> {
    let scope = scope_of(viewer)?;
    let detail = json!({"user_id": user_id, "from_ms": from_ms, "to_ms": to_ms});
    audit
        .access(&viewer.stamp(), Access { action: AccessAction::AccessReported, case_id: None, detail, address })
        .await?;
    let rows = db.run(move |db| db.accesses(None, user_id, from_ms, to_ms, 2000)).await?;
    let town = match scope {
        CaseScope::Town(t) => Some(t),
        CaseScope::County | CaseScope::Village(_) => None,
    };
    let Some(town) = town else { return Ok(rows) };
    // Only the accesses to this town's cases.
    let ids: Vec<i64> = rows.iter().filter_map(|r| r.case_id).collect();
    let in_town: std::collections::HashSet<i64> = db
        .run(move |db| -> Result<Vec<i64>, DataError> {
            let mut out = Vec::new();
            for id in ids {
                if db.case(id)?.is_some_and(|c| c.town_id == town) {
                    out.push(id);
                }
            }
            Ok(out)
        })
        .await?
        .into_iter()
        .collect();
    Ok(rows.into_iter().filter(|r| r.case_id.is_some_and(|c| in_town.contains(&c))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_masked() {
        assert_eq!(mask_name("张大爷"), "张**");
        assert_eq!(mask_name("李"), "李");
        assert_eq!(mask_name(""), "");
    }
}
