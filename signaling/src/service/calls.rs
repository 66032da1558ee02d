//! What the engine asks of the case domain when a kiosk calls: which case the call carries
//! (a new one, or the village's case named by `case_no`), and what the queue's answer does to
//! it. The engine awaits these (the database work runs off its task).

use crate::case::{CaseRecord, Command, Viewer, plausible_case_no};
use crate::db::{DataError, Db};
use crate::error::{Error, RejectKind, Rejection};

/// The case a call request carries, from [`case_for_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseForCall {
    pub case: CaseRecord,
    /// The case existed before this request (resumed, or opened ahead with `POST /api/cases`).
    pub existing: bool,
}

impl CaseForCall {
    pub fn case_id(&self) -> i64 {
        self.case.id
    }

    /// The matter to route by: the case's own (a resumed case keeps its matter).
    pub fn matter_id(&self) -> i64 {
        self.case.matter_id
    }
}

/// Resolve the case of a `call.request` by the kiosk `viewer`: without `case_no` a new case is
/// opened for `matter_id`; with it, the case must be the kiosk's village's, and the lifecycle
/// must allow a call on it (open or waiting for papers, not in another call). Nothing is
/// written on error.
pub async fn case_for_request(
    db: &Db,
    viewer: &Viewer,
    matter_id: i64,
    case_no: Option<String>,
    now_ms: u64,
) -> Result<CaseForCall, Error> {
    let Viewer::Kiosk { kiosk_id, village_id, .. } = *viewer else {
        return Err(Rejection::forbidden("kiosks ask for calls").into());
    };
    let Some(case_no) = case_no.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) else {
        let case = db.run(move |db| db.create_case(matter_id, village_id, Some(kiosk_id), now_ms)).await.map_err(
            |e| match e {
                DataError::NotFound(_) => Error::from(Rejection::new(
                    RejectKind::NotFound,
                    "not_found",
                    format!("没有这个事项 (no matter {matter_id})"),
                )),
                e => e.into(),
            },
        )?;
        return Ok(CaseForCall { case, existing: false });
    };
    let not_found = || Error::from(Rejection::new(RejectKind::NotFound, "not_found", "没有这个案件 (no such case)"));
    if !plausible_case_no(&case_no) {
        return Err(not_found());
    }
    let (case, in_call) = db
        .run(move |db| -> Result<_, DataError> {
            let Some(case) = db.case_by_no(&case_no)? else { return Ok((None, false)) };
            let in_call = db.open_call_of_case(case.id)?.is_some();
            Ok((Some(case), in_call))
        })
        .await?;
    let case = case.ok_or_else(not_found)?;
    if case.village_id != village_id {
        return Err(Rejection::new(
            RejectKind::Forbidden,
            "forbidden",
            "这个案件不是本村的 (the case belongs to another village)",
        )
        .into());
    }
    crate::case::apply(&case.state, viewer.actor(), Command::RequestCall { in_call }, now_ms)?;
    Ok(CaseForCall { case, existing: true })
}

/// The queue accepted the call: a resumed `missing` case is `open` again. Failures are logged.
pub async fn call_accepted(db: &Db, viewer: &Viewer, c: &CaseForCall) {
    if !c.existing {
        return;
    }
    if let Err(e) = super::cases::run(db, viewer, &c.case, Command::CallQueued).await {
        tracing::warn!(error = %e, case_id = c.case.id, "marking a resumed case open");
    }
}

/// The queue refused the call: a case opened just for it is removed. Failures are logged.
pub async fn call_refused(db: &Db, c: &CaseForCall) {
    if c.existing {
        return;
    }
    let id = c.case.id;
    if let Err(e) = db.run(move |db| db.delete_unused_case(id)).await {
        tracing::warn!(error = %e, "removing an unused case");
    }
}
