//! Delivering what the case service asks to tell: each notice becomes a wire message for the
//! connected parties it concerns (the village's kiosks, chiefs, the deciding approver).

use crate::queue::{KioskId, Party, StaffId};
use crate::service::cases::Notice;
use crate::service::views::PaperView;
use crate::state::AppState;
use crate::wire::ServerMsg;

/// Send `msg` to every kiosk of the village (connected ones receive it).
async fn to_village(state: &AppState, village_id: i64, msg: ServerMsg) {
    match state.db.run(move |db| db.kiosks_of_village(village_id)).await {
        Ok(kiosks) => {
            for k in kiosks {
                state.engine.notify(Party::Kiosk(KioskId(k.id)), msg.clone()).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, village_id, "listing the kiosks of a village"),
    }
}

async fn to_staff(state: &AppState, ids: &[i64], msg: ServerMsg) {
    for id in ids {
        state.engine.notify(Party::Staff(StaffId(*id)), msg.clone()).await;
    }
}

/// Deliver the notices of a stored change, in order.
pub async fn deliver(state: &AppState, notices: Vec<Notice>) {
    for n in notices {
        match n {
            Notice::Outcome { village_id, notice } => {
                let msg = ServerMsg::Outcome {
                    case_no: notice.case_no,
                    status: notice.status,
                    status_text: notice.status.text(),
                    outcome: notice.outcome,
                    note: notice.note,
                    missing_items: notice.missing_items,
                    result: notice.result,
                };
                to_village(state, village_id, msg).await;
            }
            Notice::Inbox { village_id, item } => to_village(state, village_id, ServerMsg::InboxItem { item }).await,
            Notice::SignoffRequested { chiefs, case_no, matter, village } => {
                to_staff(state, &chiefs, ServerMsg::SignoffRequested { case_no, matter, village }).await;
            }
            Notice::SignoffReturned { to, case_no, reason } => {
                to_staff(state, &[to], ServerMsg::SignoffReturned { case_no, reason }).await;
            }
            Notice::RescanRequested { village_id, case_no, paper_id, note } => {
                to_village(state, village_id, ServerMsg::PaperRescanRequested { case_no, paper_id, note }).await;
            }
            Notice::VillagerRequested { village_id, case_no } => {
                to_village(state, village_id, ServerMsg::VillagerRequested { case_no }).await;
            }
        }
    }
}

/// A scan arrived: the approver in the case's live call sees it at once.
pub async fn announce_paper(state: &AppState, case_id: i64, case_no: &str, paper: &PaperView) {
    if let Some(staff) = state.engine.case_parties(case_id).await.and_then(|p| p.staff) {
        let msg = ServerMsg::PaperAdded { case_no: case_no.to_string(), paper: paper.clone() };
        state.engine.notify(Party::Staff(staff), msg).await;
    }
}

/// The village corrected or took back a scan: the approver in the case's live call sees it at once.
pub async fn announce_paper_changed(state: &AppState, case_id: i64, case_no: &str, paper: &PaperView) {
    if let Some(staff) = state.engine.case_parties(case_id).await.and_then(|p| p.staff) {
        let msg = ServerMsg::PaperChanged { case_no: case_no.to_string(), paper: paper.clone() };
        state.engine.notify(Party::Staff(staff), msg).await;
    }
}

/// The case changed (the villager was entered): the approver in its live call reads it again.
pub async fn announce_case_updated(state: &AppState, case_id: i64, case_no: &str) {
    if let Some(staff) = state.engine.case_parties(case_id).await.and_then(|p| p.staff) {
        state.engine.notify(Party::Staff(staff), ServerMsg::CaseUpdated { case_no: case_no.to_string() }).await;
    }
}
