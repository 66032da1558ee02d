//! Cases in full (docs/cases-api.md): the villager, the case view with papers, calls and
//! timeline, the four outcomes, 一审一核 sign-off, the village inbox, ratings, the public
//! progress lookup, and the hook the engine uses to resume a case on a later call.
//!
//! Papers (uploads and serving) live in `papers.rs`, bookings in `bookings.rs`; all SQL is in
//! `db/cases.rs`. Villager names, phones and ID numbers are never logged.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Principal, Role};
use crate::db::{Actor, CaseRecord, CaseScope, DataError, Db, Decision, EventRow, NewEvent, PaperRow};
use crate::error::ApiError;
use crate::http::Authed;
use crate::queue::{KioskId, Party, StaffId};
use crate::state::AppState;
use crate::wire::{Named, ServerMsg};

/// All routes of cases, papers and bookings, merged into the main router by `http::router`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/cases", get(list_cases).post(open_case))
        .route("/api/cases/current", get(current_case))
        .route("/api/cases/{case_no}", get(get_case))
        .route("/api/cases/{case_no}/villager", put(set_villager))
        .route("/api/cases/{case_no}/receipt", get(receipt))
        .route("/api/cases/{case_no}/outcome", post(decide))
        .route("/api/cases/{case_no}/finish", post(finish))
        .route("/api/cases/{case_no}/signoff", post(sign_off))
        .route("/api/cases/{case_no}/rating", post(rate))
        .route("/api/cases/{case_no}/recordings", get(recordings))
        .route("/api/signoffs", get(signoffs))
        .route("/api/inbox", get(inbox))
        .route("/api/inbox/{id}/read", post(inbox_read))
        .route("/api/progress", get(progress))
        .merge(crate::papers::routes())
        .merge(crate::bookings::routes())
}

// ---------------------------------------------------------------------------------------------
// Small helpers shared with papers.rs and bookings.rs.

/// Run blocking database work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| ApiError::internal())?
}

pub(crate) fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

/// A JSON body or a 400 that says what is wrong with it.
pub(crate) fn body<T>(r: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    r.map(|Json(b)| b).map_err(|e| ApiError::bad_request(format!("请求格式错误 (bad request body: {})", e.body_text())))
}

/// Trimmed text of 1..=`max` characters without control characters.
pub(crate) fn text(value: &str, max: usize, what: &str) -> Result<String, ApiError> {
    let t = value.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::bad_request(format!(
            "{what}: 1-{max} 个字符 (1 to {max} characters, no control characters)"
        )));
    }
    Ok(t.to_string())
}

/// Case numbers are short ASCII (`ZH-20261122-0007`); anything else cannot be one.
pub(crate) fn plausible_case_no(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Who is looking at cases, with the scope that matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Viewer {
    Kiosk { kiosk_id: i64, village_id: i64, town_id: i64, name: String },
    Approver { user_id: i64, town_id: i64, window_id: Option<i64>, name: String },
    Chief { user_id: i64, town_id: i64, name: String },
    Supervisor { user_id: i64, name: String },
}

impl Viewer {
    /// Dispatchers and admins have no business with cases.
    pub(crate) fn of(p: &Principal) -> Result<Viewer, ApiError> {
        match p {
            Principal::Kiosk { kiosk_id, village_id, town_id, name } => Ok(Viewer::Kiosk {
                kiosk_id: *kiosk_id,
                village_id: *village_id,
                town_id: *town_id,
                name: name.clone(),
            }),
            Principal::Staff { user_id, role: Role::Approver, town_id: Some(t), window_id, name } => {
                Ok(Viewer::Approver { user_id: *user_id, town_id: *t, window_id: *window_id, name: name.clone() })
            }
            Principal::Staff { user_id, role: Role::Chief, town_id: Some(t), name, .. } => {
                Ok(Viewer::Chief { user_id: *user_id, town_id: *t, name: name.clone() })
            }
            Principal::Staff { user_id, role: Role::Supervisor, name, .. } => {
                Ok(Viewer::Supervisor { user_id: *user_id, name: name.clone() })
            }
            _ => Err(ApiError::forbidden("cases")),
        }
    }

    pub(crate) fn is_village(&self) -> bool {
        matches!(self, Viewer::Kiosk { .. })
    }

    pub(crate) fn may_read(&self, case: &CaseRecord) -> bool {
        match self {
            Viewer::Kiosk { village_id, .. } => *village_id == case.village_id,
            Viewer::Approver { town_id, .. } | Viewer::Chief { town_id, .. } => *town_id == case.town_id,
            Viewer::Supervisor { .. } => true,
        }
    }

    /// 403 unless the case is in scope.
    pub(crate) fn check(&self, case: &CaseRecord) -> Result<(), ApiError> {
        if self.may_read(case) {
            Ok(())
        } else {
            Err(ApiError::forbidden("this case belongs to another village or town"))
        }
    }

    pub(crate) fn actor(&self) -> Actor {
        match self {
            Viewer::Kiosk { kiosk_id, name, .. } => Actor { kind: "kiosk", id: Some(*kiosk_id), name: name.clone() },
            Viewer::Approver { user_id, name, .. }
            | Viewer::Chief { user_id, name, .. }
            | Viewer::Supervisor { user_id, name } => Actor { kind: "staff", id: Some(*user_id), name: name.clone() },
        }
    }

    pub(crate) fn scope(&self) -> CaseScope {
        match self {
            Viewer::Kiosk { village_id, .. } => CaseScope::Village(*village_id),
            Viewer::Approver { town_id, .. } | Viewer::Chief { town_id, .. } => CaseScope::Town(*town_id),
            Viewer::Supervisor { .. } => CaseScope::County,
        }
    }
}

pub(crate) fn event(actor: Actor, kind: &'static str, detail: Value, village_visible: bool) -> NewEvent {
    NewEvent { at_ms: crate::now_ms(), actor, kind, detail, village_visible }
}

/// The case `case_no` (404 if unknown or implausible) checked against the viewer's scope.
pub(crate) async fn load_case(state: &AppState, viewer: &Viewer, case_no: String) -> Result<CaseRecord, ApiError> {
    if !plausible_case_no(&case_no) {
        return Err(ApiError::not_found("case"));
    }
    let db = state.db.clone();
    let case = blocking(move || db.case_by_no(&case_no)?.ok_or_else(|| ApiError::not_found("case"))).await?;
    viewer.check(&case)?;
    Ok(case)
}

// ---------------------------------------------------------------------------------------------
// Personal data: validation and masking.

/// `5108**********1234`: the first and last four characters, the rest starred.
pub fn mask_id_number(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let n = chars.len();
    chars[..4].iter().chain(std::iter::repeat_n(&'*', n - 8)).chain(chars[n - 4..].iter()).collect()
}

/// `138****5678`: the first three and last four digits.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len().saturating_sub(4))
            + &chars[chars.len().saturating_sub(4)..].iter().collect::<String>();
    }
    let n = chars.len();
    chars[..3].iter().chain(std::iter::repeat_n(&'*', n - 7)).chain(chars[n - 4..].iter()).collect()
}

/// A resident ID number: 18 characters with a valid ISO 7064 MOD 11-2 check character
/// (upper-cased `X`), or the old 15 digits. `None` if it is not one.
pub fn normalize_id_number(raw: &str) -> Option<String> {
    let s: String = raw.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
    let b = s.as_bytes();
    match b.len() {
        15 if b.iter().all(u8::is_ascii_digit) => Some(s),
        18 if b[..17].iter().all(u8::is_ascii_digit) => {
            const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
            const CHECK: &[u8; 11] = b"10X98765432";
            let sum: u32 = b[..17].iter().zip(W).map(|(d, w)| u32::from(d - b'0') * w).sum();
            (CHECK[(sum % 11) as usize] == b[17]).then_some(s)
        }
        _ => None,
    }
}

/// A phone number as digits only (spaces, `-` and a leading `+` dropped): 7 to 15 digits.
pub fn normalize_phone(raw: &str) -> Option<String> {
    let t = raw.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    if !t.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-') {
        return None;
    }
    let digits: String = t.chars().filter(char::is_ascii_digit).collect();
    (7..=15).contains(&digits.len()).then_some(digits)
}

// ---------------------------------------------------------------------------------------------
// Status words.

/// The status a village (kiosk, progress page) sees: sign-off stages are `reviewing`.
pub fn village_status(status: &str) -> &'static str {
    match status {
        "open" => "open",
        "missing" => "missing",
        "later" => "later",
        "signoff" | "returned" => "reviewing",
        "done" => "done",
        "refused" => "refused",
        _ => "open",
    }
}

fn staff_status(status: &str) -> &'static str {
    match status {
        "signoff" => "signoff",
        "returned" => "returned",
        s => village_status(s),
    }
}

pub fn status_text(status: &str) -> &'static str {
    match status {
        "open" => "待办理",
        "missing" => "需补充材料",
        "later" => "已受理,镇上办理中",
        "reviewing" => "审核中",
        "signoff" => "待窗口负责人审核",
        "returned" => "已退回窗口重新审查",
        "done" => "已办结",
        "refused" => "不予办理",
        _ => "办理中",
    }
}

pub fn next_step(village_status: &str) -> &'static str {
    match village_status {
        "open" => "请到村便民服务室与镇窗口视频办理",
        "missing" => "请按补充清单准备好材料,带到村便民服务室继续办理",
        "later" => "请放心回家,办好后结果会送到村便民服务室",
        "reviewing" => "窗口负责人审核中,审核后结果会送到村便民服务室",
        "done" => "已办结,请到村便民服务室领取结果",
        "refused" => "不能办理,原因已当面说明;如有疑问请联系村便民服务室",
        _ => "请联系村便民服务室",
    }
}

pub fn progress_path(case_no: &str) -> String {
    format!("/progress?case={case_no}")
}

// ---------------------------------------------------------------------------------------------
// JSON views.

pub(crate) fn paper_json(case_no: &str, p: &PaperRow) -> Value {
    json!({
        "id": p.id,
        "kind": p.kind,
        "name": p.name,
        "checklist_item": p.checklist_item,
        "content_type": p.content_type,
        "size": p.size,
        "sha256": p.sha256,
        "uploaded_at_ms": p.created_at_ms,
        "uploaded_by": {"kind": p.by_kind, "id": p.by_id, "name": p.by_name},
        "url": format!("/api/cases/{case_no}/papers/{}", p.id),
    })
}

fn named_json(n: &Option<crate::db::NamedRef>) -> Value {
    match n {
        Some(n) => json!({"id": n.id, "name": n.name}),
        None => Value::Null,
    }
}

/// The decision as the viewer may see it.
fn outcome_json(case: &CaseRecord, papers: &[PaperRow], village: bool) -> Value {
    let Some(outcome) = &case.outcome else { return Value::Null };
    let pending = matches!(case.status.as_str(), "signoff" | "returned");
    if village && pending {
        return Value::Null;
    }
    let result = case
        .result_paper_id
        .and_then(|id| papers.iter().find(|p| p.id == id))
        .map(|p| paper_json(&case.case_no, p))
        .unwrap_or(Value::Null);
    let signoff = match (&case.signoff_by, &case.signoff_decision) {
        (Some(by), Some(d)) if !village => json!({
            "by": {"id": by.id, "name": by.name}, "at_ms": case.signoff_at_ms, "decision": d,
            "reason": case.signoff_reason,
        }),
        _ => Value::Null,
    };
    json!({
        "outcome": outcome,
        "note": case.outcome_note.clone().unwrap_or_default(),
        "missing_items": case.missing_items,
        "result": result,
        "decided_by": named_json(&case.decided_by),
        "decided_at_ms": case.decided_at_ms,
        "final": !pending,
        "signoff": signoff,
    })
}

fn status_of(case: &CaseRecord, village: bool) -> &'static str {
    if village { village_status(&case.status) } else { staff_status(&case.status) }
}

pub(crate) fn summary_json(case: &CaseRecord, village: bool) -> Value {
    let status = status_of(case, village);
    json!({
        "case_no": case.case_no,
        "status": status,
        "status_text": status_text(status),
        "matter": {"id": case.matter_id, "name": case.matter_name, "plain_name": case.matter_plain_name},
        "village": {"id": case.village_id, "name": case.village_name},
        "villager_name": case.villager_name,
        "created_at_ms": case.created_at_ms,
        "updated_at_ms": case.updated_at_ms,
    })
}

fn actor_json(kind: &str, id: Option<i64>, name: &str) -> Value {
    json!({"kind": kind, "id": id, "name": name})
}

/// Everything about a case, as `GET /api/cases/{case_no}` shows it to `viewer`. Blocking.
pub(crate) fn case_view(db: &Db, case: &CaseRecord, village: bool) -> Result<Value, DataError> {
    let papers = db.papers_of_case(case.id)?;
    let calls = db.calls_of_case(case.id)?;
    let events = db.case_events(case.id)?;
    let rating = db.rating_of_case(case.id)?;

    // The timeline: the opening, the call records and the stored events, by time.
    let mut timeline: Vec<(u64, u8, Value)> = vec![(
        case.created_at_ms,
        0,
        json!({"at_ms": case.created_at_ms, "actor": actor_json("system", None, ""), "kind": "case.opened",
               "detail": {"matter_id": case.matter_id}}),
    )];
    for c in &calls {
        let window = json!({"id": c.window.id, "name": c.window.name});
        timeline.push((
            c.requested_at_ms,
            1,
            json!({"at_ms": c.requested_at_ms, "actor": actor_json("kiosk", Some(c.kiosk_id), ""),
                   "kind": "call.requested", "detail": {"call_id": c.id, "window": window}}),
        ));
        if let (Some(at), Some(staff)) = (c.answered_at_ms, &c.staff) {
            timeline.push((
                at,
                1,
                json!({"at_ms": at, "actor": actor_json("staff", Some(staff.id), &staff.name),
                       "kind": "call.answered", "detail": {"call_id": c.id, "window": window}}),
            ));
        }
        if let Some(at) = c.ended_at_ms {
            timeline.push((
                at,
                1,
                json!({"at_ms": at, "actor": actor_json("system", None, ""), "kind": "call.ended",
                       "detail": {"call_id": c.id, "reason": c.end_reason}}),
            ));
        }
    }
    for e in events.iter().filter(|e: &&EventRow| !village || e.village_visible) {
        timeline.push((
            e.at_ms,
            2,
            json!({"at_ms": e.at_ms, "actor": actor_json(&e.actor_kind, e.actor_id, &e.actor_name),
                   "kind": e.kind, "detail": e.detail}),
        ));
    }
    timeline.sort_by_key(|(at, order, _)| (*at, *order));

    let final_result = case.is_final();
    let visible_papers: Vec<&PaperRow> = papers
        .iter()
        .filter(|p| !village || p.kind == "scan" || (final_result && Some(p.id) == case.result_paper_id))
        .collect();
    let checklist: Vec<Value> = case
        .required_papers
        .iter()
        .map(|item| {
            let ids: Vec<i64> = papers
                .iter()
                .filter(|p| p.kind == "scan" && p.checklist_item.as_deref() == Some(item.as_str()))
                .map(|p| p.id)
                .collect();
            json!({"item": item, "paper_ids": ids})
        })
        .collect();
    let villager = match (&case.villager_name, &case.villager_phone) {
        (Some(name), Some(phone)) => {
            json!({"name": name, "phone": phone, "id_number_masked": case.id_number_masked})
        }
        _ => Value::Null,
    };
    let status = status_of(case, village);
    let mut v = summary_json(case, village);
    let extra = json!({
        "matter": {"id": case.matter_id, "name": case.matter_name, "plain_name": case.matter_plain_name,
                   "required_papers": case.required_papers, "needs_signoff": case.needs_signoff},
        "town": {"id": case.town_id, "name": case.town_name},
        "villager": villager,
        "papers": visible_papers.iter().map(|p| paper_json(&case.case_no, p)).collect::<Vec<_>>(),
        "checklist": checklist,
        "calls": calls.iter().map(|c| json!({
            "id": c.id, "window": {"id": c.window.id, "name": c.window.name},
            "staff": named_json(&c.staff), "requested_at_ms": c.requested_at_ms,
            "answered_at_ms": c.answered_at_ms, "ended_at_ms": c.ended_at_ms, "end_reason": c.end_reason,
        })).collect::<Vec<_>>(),
        "outcome": outcome_json(case, &papers, village),
        "rating": rating.map(|r| json!({"rating": r.rating, "comment": r.comment, "at_ms": r.at_ms, "call_id": r.call_id})),
        "timeline": timeline.into_iter().map(|(_, _, v)| v).collect::<Vec<_>>(),
        "next_step": next_step(village_status(status)),
        "progress_path": progress_path(&case.case_no),
    });
    if let (Some(obj), Value::Object(extra)) = (v.as_object_mut(), extra) {
        obj.extend(extra);
    }
    Ok(v)
}

/// Reload a case and render it for the viewer.
pub(crate) async fn case_response(state: &AppState, case_id: i64, village: bool) -> Result<Value, ApiError> {
    let db = state.db.clone();
    blocking(move || {
        let case = db.case_record(case_id)?.ok_or_else(|| ApiError::not_found("case"))?;
        Ok(case_view(&db, &case, village)?)
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Pushes.

/// Send `msg` to every kiosk of the village (connected ones receive it).
pub(crate) async fn notify_village(state: &AppState, village_id: i64, msg: ServerMsg) {
    let db = state.db.clone();
    let kiosks = tokio::task::spawn_blocking(move || db.kiosks_of_village(village_id)).await;
    match kiosks {
        Ok(Ok(kiosks)) => {
            for k in kiosks {
                state.engine.notify(Party::Kiosk(KioskId(k.id)), msg.clone()).await;
            }
        }
        Ok(Err(e)) => tracing::warn!(error = %e, village_id, "listing the kiosks of a village"),
        Err(_) => tracing::warn!("listing the kiosks of a village: task failed"),
    }
}

pub(crate) async fn notify_staff(state: &AppState, ids: &[i64], msg: ServerMsg) {
    for id in ids {
        state.engine.notify(Party::Staff(StaffId(*id)), msg.clone()).await;
    }
}

/// Tell the village what became of its case (`outcome`), from a fresh read of the case.
async fn push_outcome(state: &AppState, case_id: i64) {
    let db = state.db.clone();
    let found = tokio::task::spawn_blocking(move || -> Result<Option<(CaseRecord, Vec<PaperRow>)>, DataError> {
        let Some(case) = db.case_record(case_id)? else { return Ok(None) };
        let papers = db.papers_of_case(case_id)?;
        Ok(Some((case, papers)))
    })
    .await;
    let (case, papers) = match found {
        Ok(Ok(Some(x))) => x,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, case_id, "reading a case to push its outcome");
            return;
        }
        Err(_) => return,
    };
    let status = village_status(&case.status);
    let outcome = outcome_json(&case, &papers, true);
    let msg = ServerMsg::Outcome {
        case_no: case.case_no.clone(),
        status,
        status_text: status_text(status),
        outcome: outcome["outcome"].as_str().map(str::to_string),
        note: if outcome.is_null() {
            next_step(status).to_string()
        } else {
            outcome["note"].as_str().unwrap_or_default().to_string()
        },
        missing_items: if outcome.is_null() { Vec::new() } else { case.missing_items.clone() },
        result: Some(outcome["result"].clone()).filter(|r| !r.is_null()),
    };
    notify_village(state, case.village_id, msg).await;
}

/// The result reached the village after the call (sign-off, or a 放心回家 case finished):
/// an inbox item, pushed.
async fn deliver_to_inbox(state: &AppState, case_id: i64, village_id: i64) {
    let db = state.db.clone();
    let item = tokio::task::spawn_blocking(move || -> Result<Option<Value>, DataError> {
        let id = db.add_inbox_item(village_id, case_id, crate::now_ms())?;
        let Some((_, row)) = db.inbox_item(id)? else { return Ok(None) };
        inbox_item_json(&db, &row).map(Some)
    })
    .await;
    match item {
        Ok(Ok(Some(item))) => notify_village(state, village_id, ServerMsg::InboxItem { item }).await,
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::error!(error = %e, case_id, "adding an inbox item"),
        Err(_) => tracing::error!(case_id, "adding an inbox item: task failed"),
    }
}

fn inbox_item_json(db: &Db, row: &crate::db::InboxRow) -> Result<Value, DataError> {
    let case = db.case_record(row.case_id)?.ok_or_else(|| DataError::NotFound(format!("case {}", row.case_id)))?;
    let papers = db.papers_of_case(case.id)?;
    let status = village_status(&case.status);
    let outcome = outcome_json(&case, &papers, true);
    Ok(json!({
        "id": row.id,
        "case_no": case.case_no,
        "matter": {"id": case.matter_id, "name": case.matter_name, "plain_name": case.matter_plain_name},
        "status": status,
        "status_text": status_text(status),
        "outcome": outcome["outcome"],
        "note": outcome["note"],
        "result": outcome["result"],
        "created_at_ms": row.created_at_ms,
        "read_at_ms": row.read_at_ms,
    }))
}

// ---------------------------------------------------------------------------------------------
// Handlers: cases.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VillagerBody {
    name: String,
    phone: String,
    #[serde(default)]
    id_number: Option<String>,
}

/// Validated villager details: name, phone digits, masked ID and its sealed form.
struct Villager {
    name: String,
    phone: String,
    id_masked: Option<String>,
    id_plain: Option<String>,
}

fn validate_villager(b: &VillagerBody) -> Result<Villager, ApiError> {
    let bad = |field: &str, what: &str| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_villager", format!("{what} ({field} is not valid)"))
    };
    let name = b.name.trim();
    if name.is_empty() || name.chars().count() > 50 || name.chars().any(char::is_control) {
        return Err(bad("name", "姓名应为 1-50 个字符"));
    }
    let phone = normalize_phone(&b.phone).ok_or_else(|| bad("phone", "电话号码应为 7-15 位数字"))?;
    let id_plain = match b.id_number.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(raw) => Some(normalize_id_number(raw).ok_or_else(|| bad("id_number", "身份证号码不正确"))?),
        None => None,
    };
    Ok(Villager { name: name.to_string(), phone, id_masked: id_plain.as_deref().map(mask_id_number), id_plain })
}

/// Store the villager on a case (the ID number sealed with the active key).
async fn store_villager(state: &AppState, viewer: &Viewer, case_id: i64, v: Villager) -> Result<(), ApiError> {
    let sealed = match &v.id_plain {
        Some(id) => {
            let class = cunneng_storage::ObjectClass::new("pii").map_err(|_| ApiError::internal())?;
            let oid = cunneng_storage::ObjectId::new(format!("cases/{case_id}/id_number"))
                .map_err(|_| ApiError::internal())?;
            Some(cunneng_storage::seal(state.keys.active(), class, oid, id.as_bytes()).map_err(|e| {
                tracing::error!(error = %e, "sealing an ID number");
                ApiError::internal()
            })?)
        }
        None => None,
    };
    let ev = event(viewer.actor(), "villager.set", json!({"id_number": v.id_masked.is_some()}), true);
    let db = state.db.clone();
    blocking(move || {
        db.set_villager(case_id, &v.name, &v.phone, v.id_masked.as_deref(), sealed.as_deref(), &ev).map_err(|e| match e
        {
            DataError::Conflict(_) => conflict("case_closed", "案件已办结,不能修改 (the case is closed)"),
            e => e.into(),
        })
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenCaseBody {
    matter_id: i64,
    #[serde(default)]
    villager: Option<VillagerBody>,
}

async fn open_case(
    State(state): State<AppState>,
    Authed(p): Authed,
    b: Result<Json<OpenCaseBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let viewer = Viewer::of(&p)?;
    let Viewer::Kiosk { kiosk_id, village_id, town_id, .. } = viewer else {
        return Err(ApiError::forbidden("cases are opened by the village room"));
    };
    let b = body(b)?;
    let villager = b.villager.as_ref().map(validate_villager).transpose()?;
    let db = state.db.clone();
    let matter_id = b.matter_id;
    let case = blocking(move || {
        db.matter_for_town(town_id, matter_id)?.ok_or_else(|| ApiError::not_found("matter"))?;
        Ok(db.create_case(matter_id, village_id, Some(kiosk_id), crate::now_ms())?)
    })
    .await?;
    if let Some(v) = villager {
        store_villager(&state, &viewer, case.id, v).await?;
    }
    let view = case_response(&state, case.id, true).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn current_case(State(state): State<AppState>, Authed(p): Authed) -> Result<Json<Value>, ApiError> {
    let Viewer::Kiosk { kiosk_id, .. } = Viewer::of(&p)? else {
        return Err(ApiError::forbidden("the current case is the village room's"));
    };
    let db = state.db.clone();
    let v = blocking(move || {
        let case = db.current_case_of_kiosk(kiosk_id)?.ok_or_else(|| ApiError::not_found("current case"))?;
        Ok(case_view(&db, &case, true)?)
    })
    .await?;
    Ok(Json(v))
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
}

async fn list_cases(
    State(state): State<AppState>,
    Authed(p): Authed,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let viewer = Viewer::of(&p)?;
    let village = viewer.is_village();
    let statuses: Option<Vec<&'static str>> = match q.status.as_deref() {
        None | Some("") => None,
        Some("reviewing") => Some(vec!["signoff", "returned"]),
        Some(s @ ("signoff" | "returned")) if !village => {
            Some(vec![if s == "signoff" { "signoff" } else { "returned" }])
        }
        Some(s) => match ["open", "missing", "later", "done", "refused"].into_iter().find(|x| *x == s) {
            Some(x) => Some(vec![x]),
            None => return Err(ApiError::bad_request("未知的状态 (unknown status)")),
        },
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let scope = viewer.scope();
    let db = state.db.clone();
    let list = blocking(move || Ok(db.cases_in_scope(scope, statuses.as_deref(), limit, false)?)).await?;
    Ok(Json(Value::Array(list.iter().map(|c| summary_json(c, village)).collect())))
}

async fn get_case(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let viewer = Viewer::of(&p)?;
    let case = load_case(&state, &viewer, case_no).await?;
    Ok(Json(case_response(&state, case.id, viewer.is_village()).await?))
}

/// The recordings of a case (staff of its town and supervisors): per participant and call,
/// whether it is complete, its segments, archive and manifest objects.
async fn recordings(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let viewer = Viewer::of(&p)?;
    if viewer.is_village() {
        return Err(ApiError::forbidden("recordings are for town staff and supervisors"));
    }
    let case = load_case(&state, &viewer, case_no).await?;
    let db = state.db.clone();
    let rows = blocking(move || {
        let rows = db.recordings_of_case(case.id)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let segments = db.recording_segment_keys(r.id)?;
            out.push(serde_json::json!({
                "participant": r.participant,
                "room": r.room,
                "take": r.take,
                "status": r.status,
                "started_at_ms": r.started_at_ms,
                "ended_at_ms": r.ended_at_ms,
                "segments": segments,
                "archive_key": r.archive_key,
                "manifest_key": r.manifest_key,
            }));
        }
        Ok(out)
    })
    .await?;
    Ok(Json(Value::Array(rows)))
}

async fn set_villager(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
    b: Result<Json<VillagerBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let viewer = Viewer::of(&p)?;
    if !viewer.is_village() {
        return Err(ApiError::forbidden("the village room enters the villager"));
    }
    let case = load_case(&state, &viewer, case_no).await?;
    let v = validate_villager(&body(b)?)?;
    store_villager(&state, &viewer, case.id, v).await?;
    Ok(Json(case_response(&state, case.id, true).await?))
}

async fn receipt(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let viewer = Viewer::of(&p)?;
    if matches!(viewer, Viewer::Supervisor { .. }) {
        return Err(ApiError::forbidden("receipts are printed by the village room and the window"));
    }
    let case = load_case(&state, &viewer, case_no).await?;
    let status = village_status(&case.status);
    let path = progress_path(&case.case_no);
    Ok(Json(json!({
        "case_no": case.case_no,
        "matter": {"id": case.matter_id, "name": case.matter_name, "plain_name": case.matter_plain_name},
        "village": {"id": case.village_id, "name": case.village_name},
        "town": {"id": case.town_id, "name": case.town_name},
        "created_at_ms": case.created_at_ms,
        "status": status,
        "status_text": status_text(status),
        "progress_path": path,
        "progress_url": format!("{}{}", state.config.base_url(), path),
    })))
}

// ---------------------------------------------------------------------------------------------
// Handlers: outcomes and sign-off.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutcomeBody {
    outcome: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    missing_items: Vec<String>,
    #[serde(default)]
    result_paper_id: Option<i64>,
}

/// Check that `paper_id` is a result paper of the case.
async fn check_result_paper(state: &AppState, case_id: i64, paper_id: i64) -> Result<(), ApiError> {
    let db = state.db.clone();
    blocking(move || match db.paper(paper_id)? {
        Some(p) if p.case_id == case_id && p.kind == "result" => Ok(()),
        _ => Err(ApiError::bad_request("result_paper_id 不是本案件的结果文书 (not a result paper of this case)")),
    })
    .await
}

fn clean_items(items: &[String]) -> Result<Vec<String>, ApiError> {
    if items.len() > 20 {
        return Err(ApiError::bad_request("缺少的材料最多 20 项 (at most 20 missing items)"));
    }
    items.iter().map(|i| text(i, 200, "missing_items")).collect()
}

async fn decide(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
    b: Result<Json<OutcomeBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let viewer = Viewer::of(&p)?;
    let Viewer::Approver { user_id, .. } = viewer else {
        return Err(ApiError::forbidden("outcomes are decided by the approver"));
    };
    let b = body(b)?;
    let case = load_case(&state, &viewer, case_no).await?;
    let outcome: &'static str = match b.outcome.as_str() {
        "done" => "done",
        "missing" => "missing",
        "refused" => "refused",
        "later" => "later",
        _ => return Err(ApiError::bad_request("outcome 应为 done, missing, refused 或 later")),
    };
    let missing_items = clean_items(&b.missing_items)?;
    let note = if b.note.trim().is_empty() && outcome == "missing" && !missing_items.is_empty() {
        String::new()
    } else {
        text(&b.note, 2000, "note (理由或说明)")?
    };
    if outcome == "missing" && missing_items.is_empty() && note.is_empty() {
        return Err(ApiError::bad_request("现场开单需要列出缺少的材料 (list what is missing)"));
    }
    if case.is_final() {
        return Err(conflict("case_closed", "案件已办结 (the case is closed)"));
    }
    if !matches!(case.status.as_str(), "open" | "returned") {
        return Err(conflict("conflict", format!("案件当前状态不能作出决定 (case is {})", case.status)));
    }
    // Who may decide: the approver in the live call of the case; after a dropped call the
    // approver who answered its last call; any approver of the town for a returned case.
    let live = state.engine.case_parties(case.id).await;
    let allowed = match live.and_then(|l| l.staff) {
        Some(staff) => staff.0 == user_id,
        None if case.status == "returned" => true,
        None => {
            let db = state.db.clone();
            let id = case.id;
            blocking(move || Ok(db.last_answered_call(id)?)).await?.is_some_and(|(_, staff)| staff == user_id)
        }
    };
    if !allowed {
        return Err(ApiError::forbidden("only the approver in the call of this case decides it"));
    }
    match (outcome, b.result_paper_id) {
        ("done", None) => {
            return Err(ApiError::bad_request("当场办结需要上传结果文书 (result_paper_id is required for done)"));
        }
        ("done" | "refused", Some(id)) => check_result_paper(&state, case.id, id).await?,
        (_, Some(_)) => return Err(ApiError::bad_request("只有办结或不予办理可以附结果文书 (no result paper here)")),
        _ => {}
    }
    let pending = case.needs_signoff && matches!(outcome, "done" | "refused");
    let status = if pending { "signoff" } else { outcome };
    let ev = event(
        viewer.actor(),
        "outcome.decided",
        json!({"outcome": outcome, "note": note, "missing_items": missing_items,
               "result_paper_id": b.result_paper_id, "pending_signoff": pending}),
        !pending,
    );
    let db = state.db.clone();
    let case_id = case.id;
    let result_paper_id = b.result_paper_id;
    blocking(move || {
        let d = Decision {
            status,
            outcome,
            note: &note,
            missing_items: &missing_items,
            result_paper_id,
            by: user_id,
            at_ms: ev.at_ms,
        };
        db.decide(case_id, &["open", "returned"], &d, &ev).map_err(|e| match e {
            DataError::Conflict(_) => conflict("conflict", "案件状态已变化,请刷新 (the case changed meanwhile)"),
            e => e.into(),
        })
    })
    .await?;
    tracing::info!(case_id, outcome, pending, "case decided");
    push_outcome(&state, case.id).await;
    if pending {
        request_signoff(&state, &case).await;
    }
    Ok(Json(case_response(&state, case.id, false).await?))
}

async fn request_signoff(state: &AppState, case: &CaseRecord) {
    let db = state.db.clone();
    let town = case.town_id;
    let chiefs = blocking(move || Ok(db.staff_of_town(town, Role::Chief)?)).await.unwrap_or_default();
    let msg = ServerMsg::SignoffRequested {
        case_no: case.case_no.clone(),
        matter: Named { id: case.matter_id, name: case.matter_name.clone() },
        village: Named { id: case.village_id, name: case.village_name.clone() },
    };
    notify_staff(state, &chiefs, msg).await;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FinishBody {
    note: String,
    result_paper_id: i64,
}

async fn finish(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
    b: Result<Json<FinishBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let viewer = Viewer::of(&p)?;
    let user_id = match viewer {
        Viewer::Approver { user_id, .. } | Viewer::Chief { user_id, .. } => user_id,
        _ => return Err(ApiError::forbidden("the town finishes its cases")),
    };
    let b = body(b)?;
    let note = text(&b.note, 2000, "note")?;
    let case = load_case(&state, &viewer, case_no).await?;
    if case.status != "later" {
        return Err(conflict("conflict", "只有放心回家的案件可以在此办结 (only a 'later' case is finished here)"));
    }
    check_result_paper(&state, case.id, b.result_paper_id).await?;
    let pending = case.needs_signoff;
    let ev = event(
        viewer.actor(),
        "case.finished",
        json!({"note": note, "result_paper_id": b.result_paper_id, "pending_signoff": pending}),
        !pending,
    );
    let db = state.db.clone();
    let case_id = case.id;
    let result_paper_id = Some(b.result_paper_id);
    blocking(move || {
        let d = Decision {
            status: if pending { "signoff" } else { "done" },
            outcome: "done",
            note: &note,
            missing_items: &[],
            result_paper_id,
            by: user_id,
            at_ms: ev.at_ms,
        };
        db.decide(case_id, &["later"], &d, &ev).map_err(|e| match e {
            DataError::Conflict(_) => conflict("conflict", "案件状态已变化,请刷新 (the case changed meanwhile)"),
            e => e.into(),
        })
    })
    .await?;
    if pending {
        request_signoff(&state, &case).await;
    } else {
        deliver_to_inbox(&state, case.id, case.village_id).await;
        push_outcome(&state, case.id).await;
    }
    Ok(Json(case_response(&state, case.id, false).await?))
}

async fn signoffs(State(state): State<AppState>, Authed(p): Authed) -> Result<Json<Value>, ApiError> {
    let Viewer::Chief { town_id, .. } = Viewer::of(&p)? else {
        return Err(ApiError::forbidden("sign-off lists are for window chiefs"));
    };
    let db = state.db.clone();
    let list = blocking(move || {
        let cases = db.cases_in_scope(CaseScope::Town(town_id), Some(&["signoff"]), 500, true)?;
        let mut out = Vec::with_capacity(cases.len());
        for c in &cases {
            let papers = db.papers_of_case(c.id)?;
            let mut v = summary_json(c, false);
            v["outcome"] = outcome_json(c, &papers, false);
            out.push(v);
        }
        Ok(out)
    })
    .await?;
    Ok(Json(Value::Array(list)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignoffBody {
    decision: String,
    #[serde(default)]
    reason: Option<String>,
}

async fn sign_off(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
    b: Result<Json<SignoffBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let viewer = Viewer::of(&p)?;
    let Viewer::Chief { user_id, .. } = viewer else {
        return Err(ApiError::forbidden("sign-off is for window chiefs"));
    };
    let b = body(b)?;
    let case = load_case(&state, &viewer, case_no).await?;
    let approve = match b.decision.as_str() {
        "approve" => true,
        "return" => false,
        _ => return Err(ApiError::bad_request("decision 应为 approve 或 return")),
    };
    let reason = match (approve, b.reason.as_deref()) {
        (false, Some(r)) => Some(text(r, 2000, "reason (退回理由)")?),
        (false, None) => return Err(ApiError::bad_request("退回需要写明理由 (a reason is required)")),
        (true, Some(r)) if !r.trim().is_empty() => Some(text(r, 2000, "reason")?),
        (true, _) => None,
    };
    if case.status != "signoff" {
        return Err(conflict("conflict", "该案件不在待审核状态 (the case is not waiting for sign-off)"));
    }
    let outcome = case.outcome.clone().unwrap_or_default();
    let (to, decision, kind) = if approve {
        (if outcome == "refused" { "refused" } else { "done" }, "approved", "signoff.approved")
    } else {
        ("returned", "returned", "signoff.returned")
    };
    let ev = event(viewer.actor(), kind, json!({"reason": reason}), false);
    let final_ev = approve.then(|| {
        event(
            viewer.actor(),
            "outcome.final",
            json!({"outcome": outcome, "note": case.outcome_note, "result_paper_id": case.result_paper_id}),
            true,
        )
    });
    let db = state.db.clone();
    let case_id = case.id;
    let reason2 = reason.clone();
    blocking(move || {
        db.sign_off(case_id, user_id, to, decision, reason2.as_deref(), &ev).map_err(|e| match e {
            DataError::Conflict(_) => conflict("conflict", "案件状态已变化,请刷新 (the case changed meanwhile)"),
            e => ApiError::from(e),
        })?;
        if let Some(fe) = final_ev {
            db.add_case_event(case_id, &fe)?;
        }
        Ok(())
    })
    .await?;
    tracing::info!(case_id, approve, "case signed off");
    if approve {
        deliver_to_inbox(&state, case.id, case.village_id).await;
        push_outcome(&state, case.id).await;
    } else if let Some(by) = &case.decided_by {
        let msg = ServerMsg::SignoffReturned { case_no: case.case_no.clone(), reason: reason.unwrap_or_default() };
        notify_staff(&state, &[by.id], msg).await;
    }
    Ok(Json(case_response(&state, case.id, false).await?))
}

// ---------------------------------------------------------------------------------------------
// Handlers: ratings and inbox.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RatingBody {
    rating: String,
    #[serde(default)]
    comment: Option<String>,
}

async fn rate(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(case_no): Path<String>,
    b: Result<Json<RatingBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let viewer = Viewer::of(&p)?;
    let Viewer::Kiosk { kiosk_id, .. } = viewer else {
        return Err(ApiError::forbidden("ratings are given at the village room"));
    };
    let b = body(b)?;
    let rating: &'static str = match b.rating.as_str() {
        "good" => "good",
        "fair" => "fair",
        "bad" => "bad",
        _ => return Err(ApiError::bad_request("rating 应为 good, fair 或 bad")),
    };
    let comment = match b.comment.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => Some(text(c, 500, "comment")?),
        None => None,
    };
    let case = load_case(&state, &viewer, case_no).await?;
    let ev = event(viewer.actor(), "rating.given", json!({"rating": rating}), true);
    let at_ms = ev.at_ms;
    let db = state.db.clone();
    let case_id = case.id;
    let comment2 = comment.clone();
    let call_id = blocking(move || {
        let (call_id, _) = db
            .last_answered_call(case_id)?
            .ok_or_else(|| conflict("no_call", "还没有通话可以评价 (no answered call to rate)"))?;
        db.add_rating(case_id, call_id, kiosk_id, rating, comment2.as_deref(), &ev).map_err(|e| match e {
            DataError::Conflict(_) => conflict("already_rated", "这次通话已经评价过了 (this call was rated already)"),
            e => e.into(),
        })?;
        Ok(call_id)
    })
    .await?;
    let v = json!({"rating": rating, "comment": comment, "at_ms": at_ms, "call_id": call_id});
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

#[derive(Deserialize)]
struct InboxQuery {
    unread: Option<bool>,
}

async fn inbox(
    State(state): State<AppState>,
    Authed(p): Authed,
    Query(q): Query<InboxQuery>,
) -> Result<Json<Value>, ApiError> {
    let Viewer::Kiosk { village_id, .. } = Viewer::of(&p)? else {
        return Err(ApiError::forbidden("the inbox is the village room's"));
    };
    let db = state.db.clone();
    let unread = q.unread.unwrap_or(false);
    let items = blocking(move || {
        let rows = db.inbox_of_village(village_id, unread, 100)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(inbox_item_json(&db, r)?);
        }
        Ok(out)
    })
    .await?;
    Ok(Json(Value::Array(items)))
}

async fn inbox_read(
    State(state): State<AppState>,
    Authed(p): Authed,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let Viewer::Kiosk { village_id, .. } = Viewer::of(&p)? else {
        return Err(ApiError::forbidden("the inbox is the village room's"));
    };
    let db = state.db.clone();
    blocking(move || Ok(db.mark_inbox_read(village_id, id, crate::now_ms())?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Progress lookup (public, rate-limited).

/// Lookups a client address may burst, and the seconds it takes to earn one more.
const PROGRESS_BURST: f64 = 5.0;
const PROGRESS_REFILL_SECS: f64 = 6.0;
/// Addresses remembered at most (the oldest are forgotten beyond).
const PROGRESS_MAX_CLIENTS: usize = 10_000;

static PROGRESS_BUCKETS: LazyLock<Mutex<HashMap<IpAddr, (f64, Instant)>>> = LazyLock::new(Default::default);

/// Take one lookup from the address's bucket.
fn progress_allowed(ip: IpAddr, now: Instant) -> bool {
    let mut map = PROGRESS_BUCKETS.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= PROGRESS_MAX_CLIENTS && !map.contains_key(&ip) {
        // Forget the addresses that are full again; if none are, the oldest half.
        map.retain(|_, (tokens, last)| {
            *tokens + now.duration_since(*last).as_secs_f64() / PROGRESS_REFILL_SECS < PROGRESS_BURST
        });
        if map.len() >= PROGRESS_MAX_CLIENTS {
            let mut times: Vec<Instant> = map.values().map(|(_, t)| *t).collect();
            times.sort();
            let cut = times[times.len() / 2];
            map.retain(|_, (_, t)| *t > cut);
        }
    }
    let (tokens, last) = map.entry(ip).or_insert((PROGRESS_BURST, now));
    *tokens = (*tokens + now.duration_since(*last).as_secs_f64() / PROGRESS_REFILL_SECS).min(PROGRESS_BURST);
    *last = now;
    if *tokens >= 1.0 {
        *tokens -= 1.0;
        true
    } else {
        false
    }
}

#[derive(Deserialize)]
struct ProgressQuery {
    case: Option<String>,
    phone4: Option<String>,
}

async fn progress(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<ProgressQuery>,
) -> Result<Json<Value>, ApiError> {
    if !progress_allowed(peer.ip(), Instant::now()) {
        state.metrics.inc_rejected("progress_rate");
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "查询太频繁,请稍后再试 (too many lookups)",
        ));
    }
    let (Some(case_no), Some(phone4)) = (q.case, q.phone4) else {
        return Err(ApiError::bad_request("请输入案件编号和电话后四位 (case and phone4 are required)"));
    };
    let generic = || ApiError::not_found("case (check the number and the last four digits)");
    let case_no = case_no.trim().to_ascii_uppercase();
    let phone4 = phone4.trim().to_string();
    if !plausible_case_no(&case_no) || phone4.len() != 4 || !phone4.bytes().all(|b| b.is_ascii_digit()) {
        return Err(generic());
    }
    let db = state.db.clone();
    let case = blocking(move || Ok(db.case_by_no(&case_no)?)).await?;
    let Some(case) = case else { return Err(generic()) };
    let matches = case.villager_phone.as_deref().is_some_and(|p| p.len() >= 4 && p[p.len() - 4..] == phone4);
    if !matches {
        return Err(generic());
    }
    let status = village_status(&case.status);
    Ok(Json(json!({
        "case_no": case.case_no,
        "status": status,
        "status_text": status_text(status),
        "next_step": next_step(status),
    })))
}

// ---------------------------------------------------------------------------------------------
// The engine's hook: which case a `call.request` carries.

/// The case a call request carries, from [`resolve_case_for_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseForCall {
    pub case_id: i64,
    pub case_no: String,
    /// The matter to route by: the case's own (a resumed case keeps its matter).
    pub matter_id: i64,
    /// The case existed before this request (resumed, or opened ahead with `POST /api/cases`).
    pub existing: bool,
}

/// Resolve the case of a `call.request`: without `case_no` a new case is opened for
/// `matter_id`; with it, the case must be the kiosk's village's, `open` or `missing`, and not
/// in another call. Errors are `(wire code, message)` as `ClientResult` wants them; nothing is
/// written on error. Blocking (SQLite): the engine calls it from its task like its other db calls.
pub fn resolve_case_for_request(
    db: &Db,
    kiosk_id: i64,
    village_id: i64,
    matter_id: i64,
    case_no: Option<&str>,
    now_ms: u64,
) -> Result<CaseForCall, (&'static str, String)> {
    let internal = |e: DataError| {
        tracing::error!(error = %e, "resolving the case of a call request");
        ("internal", "服务器内部错误 (internal error)".to_string())
    };
    let Some(case_no) = case_no.map(str::trim).filter(|s| !s.is_empty()) else {
        let case = db.create_case(matter_id, village_id, Some(kiosk_id), now_ms).map_err(|e| match e {
            DataError::NotFound(_) => ("not_found", format!("没有这个事项 (no matter {matter_id})")),
            e => internal(e),
        })?;
        return Ok(CaseForCall { case_id: case.id, case_no: case.case_no, matter_id, existing: false });
    };
    let not_found = || ("not_found", "没有这个案件 (no such case)".to_string());
    if !plausible_case_no(case_no) {
        return Err(not_found());
    }
    let case = db.case_by_no(case_no).map_err(internal)?.ok_or_else(not_found)?;
    if case.village_id != village_id {
        return Err(("forbidden", "这个案件不是本村的 (the case belongs to another village)".into()));
    }
    if !matches!(case.status.as_str(), "open" | "missing") {
        return Err((
            "conflict",
            format!("案件{},不能再发起通话 (case is {})", status_text(village_status(&case.status)), case.status),
        ));
    }
    if db.open_call_of_case(case.id).map_err(internal)?.is_some() {
        return Err(("conflict", "这个案件已经在通话或排队中 (the case is already in a call)".into()));
    }
    Ok(CaseForCall { case_id: case.id, case_no: case.case_no, matter_id: case.matter_id, existing: true })
}

/// The queue accepted the call: a resumed `missing` case is `open` again. Failures are logged.
pub fn call_accepted(db: &Db, case: &CaseForCall, kiosk_id: i64, now_ms: u64) {
    if !case.existing {
        return;
    }
    let ev = NewEvent {
        at_ms: now_ms,
        actor: Actor { kind: "kiosk", id: Some(kiosk_id), name: String::new() },
        kind: "case.resumed",
        detail: json!({}),
        village_visible: true,
    };
    match db.set_case_status(case.case_id, &["missing"], "open", &ev) {
        Ok(()) | Err(DataError::Conflict(_)) => {}
        Err(e) => tracing::warn!(error = %e, case_id = case.case_id, "marking a resumed case open"),
    }
}

/// The queue refused the call: a case opened just for it is removed. Failures are logged.
pub fn call_refused(db: &Db, case: &CaseForCall) {
    if !case.existing
        && let Err(e) = db.delete_unused_case(case.case_id)
    {
        tracing::warn!(error = %e, "removing an unused case");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking() {
        assert_eq!(mask_id_number("51080219800101123X"), "5108**********123X");
        assert_eq!(mask_id_number("510802800101123"), "5108*******1123");
        assert_eq!(mask_id_number("1234"), "****");
        assert_eq!(mask_phone("13800001234"), "138****1234");
        assert_eq!(mask_phone("08391234567"), "083****4567");
        assert_eq!(mask_phone("1234567"), "***4567");
        let masked = mask_id_number("11010519491231002X");
        assert!(!masked.contains("19491231"), "{masked}");
        assert_eq!(masked.chars().count(), 18);
    }

    #[test]
    fn id_numbers_and_phones() {
        assert_eq!(normalize_id_number("11010519491231002x").as_deref(), Some("11010519491231002X"));
        assert_eq!(normalize_id_number(" 110105 19491231002X ").as_deref(), Some("11010519491231002X"));
        assert!(normalize_id_number("110105194912310021").is_none()); // wrong check character
        assert!(normalize_id_number("11010519491231002").is_none());
        assert!(normalize_id_number("1101051949123100AX").is_none());
        assert_eq!(normalize_id_number("110105491231002").as_deref(), Some("110105491231002"));
        assert_eq!(normalize_phone("138-0000 1234").as_deref(), Some("13800001234"));
        assert_eq!(normalize_phone("+86 138 0000 1234").as_deref(), Some("8613800001234"));
        assert!(normalize_phone("12345").is_none());
        assert!(normalize_phone("1380000123a").is_none());
        assert!(normalize_phone("1".repeat(16).as_str()).is_none());
    }

    #[test]
    fn statuses_hide_signoff_from_the_village() {
        assert_eq!(village_status("signoff"), "reviewing");
        assert_eq!(village_status("returned"), "reviewing");
        assert_eq!(staff_status("returned"), "returned");
        assert_eq!(village_status("done"), "done");
        for s in ["open", "missing", "later", "reviewing", "done", "refused"] {
            assert!(!status_text(s).is_empty() && !next_step(s).is_empty());
        }
        assert_eq!(progress_path("ZH-20261122-0007"), "/progress?case=ZH-20261122-0007");
        assert!(plausible_case_no("ZH-20261122-0007"));
        assert!(!plausible_case_no("../x") && !plausible_case_no("") && !plausible_case_no(&"A".repeat(41)));
    }

    #[test]
    fn progress_rate_limit() {
        let ip: IpAddr = "192.0.2.77".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(progress_allowed(ip, t0));
        }
        assert!(!progress_allowed(ip, t0));
        assert!(progress_allowed(ip, t0 + std::time::Duration::from_secs(7)));
        assert!(!progress_allowed(ip, t0 + std::time::Duration::from_secs(7)));
        // Another address is not affected.
        assert!(progress_allowed("192.0.2.78".parse().unwrap(), t0));
    }

    #[test]
    fn resolving_the_case_of_a_call() {
        use crate::db::{VillageKind, WindowKind};
        let db = Db::open_in_memory().unwrap();
        let (v1, v2, k1, m) = db
            .write(|tx| {
                let t = tx.upsert_town("甲镇", false)?.id();
                let v1 = tx.upsert_village(t, "一村", VillageKind::Village)?.id();
                let v2 = tx.upsert_village(t, "二村", VillageKind::Village)?.id();
                tx.upsert_window(t, "民政窗口", WindowKind::CivilAffairs, true)?;
                let m = tx
                    .upsert_matter(&crate::db::MatterFields {
                        code: "M",
                        name: "事项",
                        plain_name: "事项",
                        department: "",
                        window_kind: WindowKind::CivilAffairs,
                        required_papers: &[],
                        needs_signoff: false,
                        village_can_finish: false,
                        keywords: "",
                    })?
                    .id();
                let k1 = tx.upsert_kiosk(v1, "k1", "h1")?.id();
                Ok((v1, v2, k1, m))
            })
            .unwrap();
        let new = resolve_case_for_request(&db, k1, v1, m, None, 1).unwrap();
        assert!(!new.existing);
        call_refused(&db, &new);
        assert!(db.case(new.case_id).unwrap().is_none());

        let new = resolve_case_for_request(&db, k1, v1, m, None, 1).unwrap();
        let ev = event(Actor { kind: "system", id: None, name: String::new() }, "x", json!({}), true);
        db.set_case_status(new.case_id, &["open"], "missing", &ev).unwrap();
        let again = resolve_case_for_request(&db, k1, v1, 999, Some(&new.case_no), 2).unwrap();
        assert_eq!((again.case_id, again.matter_id, again.existing), (new.case_id, m, true));
        assert_eq!(resolve_case_for_request(&db, k1, v2, m, Some(&new.case_no), 2).unwrap_err().0, "forbidden");
        assert_eq!(resolve_case_for_request(&db, k1, v1, m, Some("CN-1-1"), 2).unwrap_err().0, "not_found");
        assert_eq!(resolve_case_for_request(&db, k1, v1, m, Some("../x"), 2).unwrap_err().0, "not_found");
        call_accepted(&db, &again, k1, 3);
        assert_eq!(db.case(new.case_id).unwrap().unwrap().status, "open");
        call_refused(&db, &again); // an existing case is never removed
        assert!(db.case(new.case_id).unwrap().is_some());
        // In a call: refused.
        let w = db.windows_of_town(db.village(v1).unwrap().unwrap().town_id).unwrap()[0].id;
        db.record_call_requested(new.case_id, w, k1, 4).unwrap();
        assert_eq!(resolve_case_for_request(&db, k1, v1, m, Some(&new.case_no), 5).unwrap_err().0, "conflict");
        // Closed: refused.
        let other = resolve_case_for_request(&db, k1, v1, m, None, 6).unwrap();
        db.set_case_status(other.case_id, &["open"], "done", &ev).unwrap();
        assert_eq!(resolve_case_for_request(&db, k1, v1, m, Some(&other.case_no), 7).unwrap_err().0, "conflict");
    }
}
