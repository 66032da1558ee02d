//! What the API and the pushes show of cases, papers, bookings: typed views that serialize to
//! the shapes of `docs/cases-api.md`. A view is built for an [`Audience`]: the village never
//! sees the sign-off stages, a pending decision, result papers before the decision is final or
//! events meant for the town.

use serde::Serialize;

use crate::case::{
    Audience, CaseRecord, EventActor, EventKind, Outcome, PaperKind, Rating, ShownStatus, SignoffDecision,
    progress_path,
};
use crate::db::{
    BookingRow, BookingStatus, CaseCall, DataError, Db, EventRow, InboxRow, NamedRef, PaperRow, RatingRow,
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Named {
    pub id: i64,
    pub name: String,
}

impl From<&NamedRef> for Named {
    fn from(n: &NamedRef) -> Named {
        Named { id: n.id, name: n.name.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatterRef {
    pub id: i64,
    pub name: String,
    pub plain_name: String,
}

impl MatterRef {
    fn of(case: &CaseRecord) -> MatterRef {
        MatterRef { id: case.matter_id, name: case.matter_name.clone(), plain_name: case.matter_plain_name.clone() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaperView {
    pub id: i64,
    pub kind: PaperKind,
    pub name: String,
    pub checklist_item: Option<String>,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    pub uploaded_at_ms: u64,
    pub uploaded_by: EventActor,
    pub url: String,
    /// When the village room took it back (kept for the record; no longer a paper of the case).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed_at_ms: Option<u64>,
}

impl PaperView {
    pub fn of(case_no: &str, p: &PaperRow) -> PaperView {
        PaperView {
            id: p.id,
            kind: p.kind,
            name: p.name.clone(),
            checklist_item: p.checklist_item.clone(),
            content_type: p.content_type.clone(),
            size: p.size,
            sha256: p.sha256.clone(),
            uploaded_at_ms: p.created_at_ms,
            uploaded_by: p.by.clone(),
            url: format!("/api/cases/{case_no}/papers/{}", p.id),
            removed_at_ms: p.removed_at_ms,
        }
    }
}

/// A case in a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseSummary {
    pub case_no: String,
    pub status: ShownStatus,
    pub status_text: &'static str,
    pub matter: MatterRef,
    pub village: Named,
    pub villager_name: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

impl CaseSummary {
    pub fn of(case: &CaseRecord, audience: Audience) -> CaseSummary {
        let status = case.status().shown(audience);
        CaseSummary {
            case_no: case.case_no.clone(),
            status,
            status_text: status.text(),
            matter: MatterRef::of(case),
            village: Named { id: case.village_id, name: case.village_name.clone() },
            villager_name: case.villager_name.clone(),
            created_at_ms: case.created_at_ms,
            updated_at_ms: case.updated_at_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignoffView {
    pub by: Named,
    pub at_ms: u64,
    pub decision: SignoffDecision,
    pub reason: Option<String>,
}

/// The decision on a case as the audience may see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutcomeView {
    pub outcome: Outcome,
    pub note: String,
    pub missing_items: Vec<String>,
    pub result: Option<PaperView>,
    pub decided_by: Option<Named>,
    pub decided_at_ms: u64,
    /// The decision is final (not waiting for, or sent back by, the chief).
    #[serde(rename = "final")]
    pub is_final: bool,
    pub signoff: Option<SignoffView>,
}

impl OutcomeView {
    /// `None` without a decision, and for the village while the decision is pending.
    pub fn of(case: &CaseRecord, papers: &[PaperRow], audience: Audience) -> Option<OutcomeView> {
        let d = case.state.decision.as_ref()?;
        let pending = case.status().is_pending_signoff();
        if audience == Audience::Village && pending {
            return None;
        }
        let result = d
            .result_paper_id
            .and_then(|id| papers.iter().find(|p| p.id == id))
            .map(|p| PaperView::of(&case.case_no, p));
        let signoff = match (&case.state.signoff, audience) {
            (Some(so), Audience::Town) => Some(SignoffView {
                by: Named { id: so.by, name: case.signoff_by_name.clone().unwrap_or_default() },
                at_ms: so.at_ms,
                decision: so.decision,
                reason: so.reason.clone(),
            }),
            _ => None,
        };
        Some(OutcomeView {
            outcome: d.outcome,
            note: d.note.clone(),
            missing_items: d.missing_items.clone(),
            result,
            decided_by: Some(Named { id: d.by, name: case.decided_by_name.clone().unwrap_or_default() }),
            decided_at_ms: d.at_ms,
            is_final: !pending,
            signoff,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineEntry {
    pub at_ms: u64,
    pub actor: EventActor,
    pub kind: EventKind,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallView {
    pub id: i64,
    pub window: Named,
    pub staff: Option<Named>,
    pub requested_at_ms: u64,
    pub answered_at_ms: Option<u64>,
    pub ended_at_ms: Option<u64>,
    pub end_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RatingView {
    pub rating: Rating,
    pub comment: Option<String>,
    pub at_ms: u64,
    pub call_id: i64,
}

impl From<&RatingRow> for RatingView {
    fn from(r: &RatingRow) -> RatingView {
        RatingView { rating: r.rating, comment: r.comment.clone(), at_ms: r.at_ms, call_id: r.call_id }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseMatter {
    pub id: i64,
    pub name: String,
    pub plain_name: String,
    pub required_papers: Vec<String>,
    pub needs_signoff: bool,
}

/// The villager as the case shows it: the ID number only masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VillagerView {
    pub name: String,
    pub phone: String,
    pub id_number_masked: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChecklistEntry {
    pub item: String,
    pub paper_ids: Vec<i64>,
}

/// Everything about a case, as `GET /api/cases/{case_no}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseView {
    pub case_no: String,
    pub status: ShownStatus,
    pub status_text: &'static str,
    pub matter: CaseMatter,
    pub village: Named,
    pub town: Named,
    pub villager_name: Option<String>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    pub villager: Option<VillagerView>,
    /// The case's current papers (scans, and for the town its result papers).
    pub papers: Vec<PaperView>,
    /// Scans the village room took back, for the town and the review (never for the village).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed_papers: Vec<PaperView>,
    pub checklist: Vec<ChecklistEntry>,
    pub calls: Vec<CallView>,
    pub outcome: Option<OutcomeView>,
    pub rating: Option<RatingView>,
    pub timeline: Vec<TimelineEntry>,
    pub next_step: &'static str,
    pub progress_path: String,
}

/// Build the full view of `case` for `audience` (blocking: reads papers, calls, events).
pub fn case_view(db: &Db, case: &CaseRecord, audience: Audience) -> Result<CaseView, DataError> {
    let village = audience == Audience::Village;
    let (papers, removed): (Vec<PaperRow>, Vec<PaperRow>) =
        db.papers_of_case(case.id)?.into_iter().partition(|p| p.removed_at_ms.is_none());
    let calls = db.calls_of_case(case.id)?;
    let events = db.case_events(case.id)?;
    let rating = db.rating_of_case(case.id)?;

    // The timeline: the opening, the call records and the stored events, by time.
    let system = EventActor::system;
    let entry = |at_ms, actor, kind, detail| TimelineEntry { at_ms, actor, kind, detail };
    let mut timeline: Vec<(u64, u8, TimelineEntry)> = vec![(
        case.created_at_ms,
        0,
        entry(case.created_at_ms, system(), EventKind::Opened, serde_json::json!({"matter_id": case.matter_id})),
    )];
    for c in &calls {
        let window = serde_json::json!({"id": c.window.id, "name": c.window.name});
        let kiosk = EventActor::kiosk(c.kiosk_id, "");
        timeline.push((
            c.requested_at_ms,
            1,
            entry(
                c.requested_at_ms,
                kiosk,
                EventKind::CallRequested,
                serde_json::json!({"call_id": c.id, "window": window}),
            ),
        ));
        if let (Some(at), Some(staff)) = (c.answered_at_ms, &c.staff) {
            let actor =
                EventActor { kind: crate::case::ActorKind::Staff, id: Some(staff.id), name: staff.name.clone() };
            timeline.push((
                at,
                1,
                entry(at, actor, EventKind::CallAnswered, serde_json::json!({"call_id": c.id, "window": window})),
            ));
        }
        if let Some(at) = c.ended_at_ms {
            timeline.push((
                at,
                1,
                entry(at, system(), EventKind::CallEnded, serde_json::json!({"call_id": c.id, "reason": c.end_reason})),
            ));
        }
    }
    for e in events.iter().filter(|e: &&EventRow| !village || e.village_visible) {
        timeline.push((e.at_ms, 2, entry(e.at_ms, e.actor.clone(), e.kind, e.detail.clone())));
    }
    timeline.sort_by_key(|(at, order, _)| (*at, *order));

    let final_result = case.is_final();
    let result_paper = case.state.decision.as_ref().and_then(|d| d.result_paper_id);
    let visible_papers = papers
        .iter()
        .filter(|p| !village || p.kind == PaperKind::Scan || (final_result && Some(p.id) == result_paper))
        .map(|p| PaperView::of(&case.case_no, p))
        .collect();
    let checklist = case
        .required_papers
        .iter()
        .map(|item| ChecklistEntry {
            item: item.clone(),
            paper_ids: papers
                .iter()
                .filter(|p| p.kind == PaperKind::Scan && p.checklist_item.as_deref() == Some(item.as_str()))
                .map(|p| p.id)
                .collect(),
        })
        .collect();
    let villager = match (&case.villager_name, &case.villager_phone) {
        (Some(name), Some(phone)) => Some(VillagerView {
            name: name.clone(),
            phone: phone.clone(),
            id_number_masked: case.id_number_masked.clone(),
        }),
        _ => None,
    };
    let status = case.status().shown(audience);
    Ok(CaseView {
        case_no: case.case_no.clone(),
        status,
        status_text: status.text(),
        matter: CaseMatter {
            id: case.matter_id,
            name: case.matter_name.clone(),
            plain_name: case.matter_plain_name.clone(),
            required_papers: case.required_papers.clone(),
            needs_signoff: case.state.needs_signoff,
        },
        village: Named { id: case.village_id, name: case.village_name.clone() },
        town: Named { id: case.town_id, name: case.town_name.clone() },
        villager_name: case.villager_name.clone(),
        created_at_ms: case.created_at_ms,
        updated_at_ms: case.updated_at_ms,
        villager,
        papers: visible_papers,
        removed_papers: if village {
            Vec::new()
        } else {
            removed.iter().map(|p| PaperView::of(&case.case_no, p)).collect()
        },
        checklist,
        calls: calls.iter().map(CallView::of).collect(),
        outcome: OutcomeView::of(case, &papers, audience),
        rating: rating.as_ref().map(RatingView::from),
        timeline: timeline.into_iter().map(|(_, _, e)| e).collect(),
        next_step: case.status().next_step(),
        progress_path: progress_path(&case.case_no),
    })
}

impl CallView {
    fn of(c: &CaseCall) -> CallView {
        CallView {
            id: c.id,
            window: Named::from(&c.window),
            staff: c.staff.as_ref().map(Named::from),
            requested_at_ms: c.requested_at_ms,
            answered_at_ms: c.answered_at_ms,
            ended_at_ms: c.ended_at_ms,
            end_reason: c.end_reason.clone(),
        }
    }
}

/// A case in the chief's sign-off list: its summary and the pending decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignoffItem {
    #[serde(flatten)]
    pub case: CaseSummary,
    pub outcome: Option<OutcomeView>,
}

/// A result that reached the village after the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboxItemView {
    pub id: i64,
    pub case_no: String,
    pub matter: MatterRef,
    pub status: ShownStatus,
    pub status_text: &'static str,
    pub outcome: Option<Outcome>,
    pub note: Option<String>,
    /// 现场开单: what to bring (printable from the inbox).
    pub missing_items: Vec<String>,
    pub result: Option<PaperView>,
    pub created_at_ms: u64,
    pub read_at_ms: Option<u64>,
}

/// An inbox item with its case (blocking).
pub fn inbox_item(db: &Db, row: &InboxRow) -> Result<InboxItemView, DataError> {
    let case = db.case(row.case_id)?.ok_or_else(|| DataError::NotFound(format!("case {}", row.case_id)))?;
    let papers = db.papers_of_case(case.id)?;
    let status = case.status().shown(Audience::Village);
    let outcome = OutcomeView::of(&case, &papers, Audience::Village);
    Ok(InboxItemView {
        id: row.id,
        case_no: case.case_no.clone(),
        matter: MatterRef::of(&case),
        status,
        status_text: status.text(),
        outcome: outcome.as_ref().map(|o| o.outcome),
        note: outcome.as_ref().map(|o| o.note.clone()),
        missing_items: outcome.as_ref().map(|o| o.missing_items.clone()).unwrap_or_default(),
        result: outcome.and_then(|o| o.result),
        created_at_ms: row.created_at_ms,
        read_at_ms: row.read_at_ms,
    })
}

/// What became of a case, as the village room is told (`outcome` push).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeNotice {
    pub case_no: String,
    pub status: ShownStatus,
    pub outcome: Option<Outcome>,
    /// The decision's note, or the next step while the decision is pending.
    pub note: String,
    pub missing_items: Vec<String>,
    pub result: Option<PaperView>,
}

impl OutcomeNotice {
    pub fn of(case: &CaseRecord, papers: &[PaperRow]) -> OutcomeNotice {
        let status = case.status().shown(Audience::Village);
        match OutcomeView::of(case, papers, Audience::Village) {
            Some(o) => OutcomeNotice {
                case_no: case.case_no.clone(),
                status,
                outcome: Some(o.outcome),
                note: o.note,
                missing_items: o.missing_items,
                result: o.result,
            },
            None => OutcomeNotice {
                case_no: case.case_no.clone(),
                status,
                outcome: None,
                note: status.next_step().to_string(),
                missing_items: Vec::new(),
                result: None,
            },
        }
    }
}

/// The receipt a village room or window prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub case_no: String,
    pub matter: MatterRef,
    pub village: Named,
    pub town: Named,
    pub created_at_ms: u64,
    pub status: ShownStatus,
    pub status_text: &'static str,
    pub progress_path: String,
    /// Absolute, for the QR code.
    pub progress_url: String,
    /// The QR code of `progress_url` as an SVG document (the `qrcode` crate; level M, a 4-module
    /// quiet zone, one unit per module, sized by the page), or `None` if it cannot be encoded.
    pub progress_qr_svg: Option<String>,
    /// Printed on the receipt: the public progress lookup needs it.
    pub lookup_code: String,
}

impl Receipt {
    pub fn of(case: &CaseRecord, lookup_code: &str, base_url: &str) -> Receipt {
        let status = case.status().shown(Audience::Village);
        let path = crate::case::receipt_progress_path(&case.case_no, lookup_code);
        Receipt {
            case_no: case.case_no.clone(),
            matter: MatterRef::of(case),
            village: Named { id: case.village_id, name: case.village_name.clone() },
            town: Named { id: case.town_id, name: case.town_name.clone() },
            created_at_ms: case.created_at_ms,
            status,
            status_text: status.text(),
            progress_url: format!("{base_url}{path}"),
            progress_qr_svg: qr_svg(&format!("{base_url}{path}")),
            progress_path: path,
            lookup_code: lookup_code.to_string(),
        }
    }
}

/// The QR code of `text` (error correction level M) as an `<svg>` document: black modules on
/// a white square with the standard 4-module quiet zone, one user unit per module (the page
/// gives it its printed size). `None` if `text` is too long for a QR code.
pub fn qr_svg(text: &str) -> Option<String> {
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .quiet_zone(true)
        .module_dimensions(1, 1)
        .dark_color(qrcode::render::svg::Color("#000"))
        .light_color(qrcode::render::svg::Color("#fff"))
        .build();
    // The XML declaration is for files; the page parses the element alone.
    Some(svg.split_once("?>").map_or(svg.as_str(), |(_, rest)| rest).to_string())
}

/// The public progress lookup's answer: nothing personal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub case_no: String,
    pub status: ShownStatus,
    pub status_text: &'static str,
    pub next_step: &'static str,
}

impl Progress {
    pub fn of(case: &CaseRecord) -> Progress {
        let status = case.status().shown(Audience::Village);
        Progress { case_no: case.case_no.clone(), status, status_text: status.text(), next_step: status.next_step() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BookingView {
    pub id: i64,
    pub start_ms: u64,
    pub end_ms: u64,
    pub matter: MatterRef,
    pub window: Named,
    pub village: Named,
    pub note: Option<String>,
    pub status: BookingStatus,
    pub case_no: Option<String>,
}

impl From<&BookingRow> for BookingView {
    fn from(b: &BookingRow) -> BookingView {
        BookingView {
            id: b.id,
            start_ms: b.start_ms,
            end_ms: b.end_ms,
            matter: MatterRef { id: b.matter_id, name: b.matter_name.clone(), plain_name: b.matter_plain_name.clone() },
            window: Named::from(&b.window),
            village: Named::from(&b.village),
            note: b.note.clone(),
            status: b.status,
            case_no: b.case_no.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::qr_svg;

    #[test]
    fn the_receipt_qr_code_is_a_plain_svg_of_the_whole_address() {
        let url = "https://cunneng.example:8443/progress?case=ZH-20261207-0001&code=ABCD2345";
        let svg = qr_svg(url).unwrap();
        let code = qrcode::QrCode::with_error_correction_level(url, qrcode::EcLevel::M).unwrap();
        // The modules plus a 4-module quiet zone on each side, one unit each.
        let full = code.width() + 8;
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
        assert!(svg.contains(&format!("viewBox=\"0 0 {full} {full}\"")), "{svg}");
        assert!(svg.contains("fill=\"#000\"") && svg.ends_with("\"/></svg>"), "{svg}");
        // Nothing the page's CSP or DOM parsing would mind: no script, no style, no XML declaration.
        for bad in ["<?xml", "script", "style", "foreignObject"] {
            assert!(!svg.contains(bad), "{bad} in {svg}");
        }
        // The same address, the same code; too long an address, no code.
        assert_eq!(qr_svg(url).unwrap(), svg);
        assert_eq!(qr_svg(&"x".repeat(5000)), None);
    }
}
