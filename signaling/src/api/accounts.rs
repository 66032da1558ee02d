//! Accounts and kiosk devices (`/api/admin/users`, `/api/admin/kiosks`, for administrators),
//! kiosk enrolment with a one-time code (`POST /api/enrol`, anonymous, limited per address),
//! a staff member's own password (`POST /api/password`) and the rotation of a staff session
//! (`POST /api/session/rotate`) or a kiosk token (`POST /api/kiosk/token`). See docs/admin.md.
//!
//! Whatever a change ends (sessions, a kiosk's token) is closed at once: the token hashes go
//! to `AppState::tokens_ended`, which closes their sockets (4401); a change the queue knows
//! about (accounts, kiosks) reloads the running queue's topology.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};

use super::extract::{Admin, JsonBody, bearer};
use super::{ApiError, Authed};
use crate::db::{AccountRow, DataError, DeviceRow, NamedRef};
use crate::error::Error;
use crate::identity::{Principal, Role};
use crate::service::accounts::{self as svc, AccountInput};
use crate::state::AppState;

async fn run<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&crate::db::Db) -> Result<T, Error> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(state.db.run(f).await?)
}

// --- accounts ----------------------------------------------------------------------------------

#[derive(Deserialize)]
pub(super) struct NewUserBody {
    username: String,
    display_name: String,
    role: Role,
    #[serde(default)]
    town_id: Option<i64>,
    #[serde(default)]
    window_id: Option<i64>,
}

#[derive(Deserialize)]
pub(super) struct UserBody {
    display_name: String,
    role: Role,
    #[serde(default)]
    town_id: Option<i64>,
    #[serde(default)]
    window_id: Option<i64>,
}

#[derive(Serialize)]
pub(super) struct CreatedUser {
    user: AccountRow,
    /// Shown once to the administrator; the user must change it at the first login.
    temporary_password: String,
}

#[derive(Serialize)]
pub(super) struct TemporaryPassword {
    temporary_password: String,
}

pub(super) async fn users(State(state): State<AppState>, _: Admin) -> Result<Json<Vec<AccountRow>>, ApiError> {
    Ok(Json(state.db.run(|db| db.accounts()).await?))
}

pub(super) async fn create_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    JsonBody(body): JsonBody<NewUserBody>,
) -> Result<(StatusCode, Json<CreatedUser>), ApiError> {
    let actor = svc::actor_of(&admin);
    let input = AccountInput {
        display_name: body.display_name,
        role: body.role,
        town_id: body.town_id,
        window_id: body.window_id,
    };
    let permit = state.hash_permit().await?;
    let (user, temporary_password) =
        run(&state, move |db| svc::create_user(db, &permit, &actor, &body.username, &input, crate::now_ms())).await?;
    state.region_changed([]).await;
    Ok((StatusCode::CREATED, Json(CreatedUser { user, temporary_password })))
}

pub(super) async fn update_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<UserBody>,
) -> Result<Json<AccountRow>, ApiError> {
    let actor = svc::actor_of(&admin);
    let input = AccountInput {
        display_name: body.display_name,
        role: body.role,
        town_id: body.town_id,
        window_id: body.window_id,
    };
    let (row, ended) = run(&state, move |db| svc::update_user(db, &actor, id, &input, crate::now_ms())).await?;
    state.region_changed(ended).await;
    Ok(Json(row))
}

async fn set_user_disabled(
    state: AppState,
    admin: Principal,
    id: i64,
    disabled: bool,
) -> Result<Json<AccountRow>, ApiError> {
    let actor = svc::actor_of(&admin);
    let (row, ended) = run(&state, move |db| svc::set_user_disabled(db, &actor, id, disabled, crate::now_ms())).await?;
    state.region_changed(ended).await;
    Ok(Json(row))
}

pub(super) async fn disable_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> Result<Json<AccountRow>, ApiError> {
    set_user_disabled(state, admin, id, true).await
}

pub(super) async fn enable_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> Result<Json<AccountRow>, ApiError> {
    set_user_disabled(state, admin, id, false).await
}

pub(super) async fn delete_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let actor = svc::actor_of(&admin);
    let ended = run(&state, move |db| svc::delete_user(db, &actor, id, crate::now_ms())).await?;
    state.region_changed(ended).await;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn reset_password(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> Result<Json<TemporaryPassword>, ApiError> {
    let actor = svc::actor_of(&admin);
    let permit = state.hash_permit().await?;
    let (temporary_password, ended) =
        run(&state, move |db| svc::reset_password(db, &permit, &actor, id, crate::now_ms())).await?;
    state.tokens_ended(ended);
    Ok(Json(TemporaryPassword { temporary_password }))
}

// --- kiosks ------------------------------------------------------------------------------------

#[derive(Deserialize)]
pub(super) struct NewKioskBody {
    village_id: i64,
    name: String,
}

#[derive(Deserialize)]
pub(super) struct KioskBody {
    name: String,
}

#[derive(Serialize)]
pub(super) struct Enrolment {
    /// Shown as `1234-5678`; `POST /api/enrol` takes it with or without the dash.
    code: String,
    expires_at_ms: u64,
    /// A QR code (SVG) of the kiosk page's address with the code: `…/kiosk#enrol=12345678`.
    qr_svg: Option<String>,
    /// The address the QR code holds.
    url: String,
}

pub(super) async fn kiosks(State(state): State<AppState>, _: Admin) -> Result<Json<Vec<DeviceRow>>, ApiError> {
    Ok(Json(state.db.run(|db| db.devices(crate::now_ms())).await?))
}

pub(super) async fn create_kiosk(
    State(state): State<AppState>,
    Admin(admin): Admin,
    JsonBody(body): JsonBody<NewKioskBody>,
) -> Result<(StatusCode, Json<DeviceRow>), ApiError> {
    let actor = svc::actor_of(&admin);
    let row =
        run(&state, move |db| svc::create_kiosk(db, &actor, body.village_id, &body.name, crate::now_ms())).await?;
    state.region_changed([]).await;
    Ok((StatusCode::CREATED, Json(row)))
}

pub(super) async fn update_kiosk(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<KioskBody>,
) -> Result<Json<DeviceRow>, ApiError> {
    let actor = svc::actor_of(&admin);
    let row = run(&state, move |db| svc::rename_kiosk(db, &actor, id, &body.name, crate::now_ms())).await?;
    state.region_changed([]).await;
    Ok(Json(row))
}

async fn set_kiosk_disabled(
    state: AppState,
    admin: Principal,
    id: i64,
    disabled: bool,
) -> Result<Json<DeviceRow>, ApiError> {
    let actor = svc::actor_of(&admin);
    let (row, ended) =
        run(&state, move |db| svc::set_kiosk_disabled(db, &actor, id, disabled, crate::now_ms())).await?;
    state.region_changed(ended).await;
    Ok(Json(row))
}

pub(super) async fn disable_kiosk(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> Result<Json<DeviceRow>, ApiError> {
    set_kiosk_disabled(state, admin, id, true).await
}

pub(super) async fn enable_kiosk(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> Result<Json<DeviceRow>, ApiError> {
    set_kiosk_disabled(state, admin, id, false).await
}

pub(super) async fn delete_kiosk(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let actor = svc::actor_of(&admin);
    let hash = run(&state, move |db| svc::delete_kiosk(db, &actor, id, crate::now_ms())).await?;
    state.region_changed([hash]).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The base of page addresses: the configured `public_url`, else the scheme of this server
/// and the host the administrator's browser asked for (so that the QR code opens this server
/// from the village room's network too), else the listen address.
fn page_base(state: &AppState, headers: &HeaderMap) -> String {
    let base = state.config.base_url();
    if state.config.public_url.is_some() {
        return base;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).filter(|h| {
        !h.is_empty() && h.len() <= 255 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    });
    match host {
        Some(h) => {
            let scheme = if base.starts_with("https://") { "https" } else { "http" };
            format!("{scheme}://{h}")
        }
        None => base,
    }
}

pub(super) async fn issue_enrolment(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Result<Json<Enrolment>, ApiError> {
    let actor = svc::actor_of(&admin);
    let valid_ms = state.config.enrolment_ms();
    let (code, expires_at_ms) =
        run(&state, move |db| svc::issue_enrolment(db, &actor, id, valid_ms, crate::now_ms())).await?;
    let url = format!("{}/kiosk#enrol={code}", page_base(&state, &headers));
    let qr_svg = crate::service::views::qr_svg(&url);
    Ok(Json(Enrolment { code: svc::shown_code(&code), expires_at_ms, qr_svg, url }))
}

pub(super) async fn revoke_kiosk(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<i64>,
) -> Result<Json<DeviceRow>, ApiError> {
    let actor = svc::actor_of(&admin);
    let (row, old) = run(&state, move |db| svc::revoke_kiosk(db, &actor, id, crate::now_ms())).await?;
    state.tokens_ended([old]);
    Ok(Json(row))
}

// --- enrolment, passwords, rotation ------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EnrolBody {
    code: String,
}

#[derive(Serialize)]
pub(super) struct EnrolAnswer {
    token: String,
    /// When the token stops working (the page rotates it before: `POST /api/kiosk/token`).
    expires_at_ms: u64,
    kiosk: NamedRef,
    village: NamedRef,
}

pub(super) async fn enrol(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(body): JsonBody<EnrolBody>,
) -> Result<Json<EnrolAnswer>, ApiError> {
    // Limited per address before anything is looked up: 10^8 codes, each valid minutes.
    if let Err(wait) = state.enrol_limit.take(&peer.ip()) {
        state.metrics.inc_rejected("enrol_rate");
        return Err(ApiError::rate_limited("尝试太频繁,请稍后再试 (too many enrolment attempts)", wait));
    }
    let token_ms = state.config.kiosk_token_ms();
    let (enrolled, (kiosk_name, village_id, village_name)) = run(&state, move |db| {
        let e = svc::enrol(db, &body.code, token_ms, crate::now_ms())?;
        let names = svc::kiosk_names(db, e.kiosk_id)?;
        Ok((e, names))
    })
    .await?;
    tracing::info!(kiosk_id = enrolled.kiosk_id, "kiosk enrolled");
    state.tokens_ended([enrolled.old_hash]);
    Ok(Json(EnrolAnswer {
        token: enrolled.token,
        expires_at_ms: enrolled.expires_at_ms,
        kiosk: NamedRef { id: enrolled.kiosk_id, name: kiosk_name },
        village: NamedRef { id: village_id, name: village_name },
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PasswordBody {
    old_password: String,
    new_password: String,
}

pub(super) async fn change_password(
    State(state): State<AppState>,
    Authed(p): Authed,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    let Principal::Staff { user_id, .. } = &p else {
        return Err(ApiError::forbidden("passwords are for staff"));
    };
    let user_id = *user_id;
    // Checking the old password costs an argon2 hash: limited like logins to the account, and
    // bounded with every other hash (a busy answer takes nothing from the limit).
    let key = format!("#user:{user_id}");
    let refused = |wait| {
        state.metrics.inc_rejected("login_rate");
        ApiError::rate_limited("尝试太频繁,请稍后再试 (too many attempts)", wait)
    };
    state.login_account_limit.would_allow(&key).map_err(refused)?;
    let permit = state.hash_permit().await?;
    state.login_account_limit.take(&key).map_err(refused)?;
    let session_hash = crate::auth::token_hash(bearer(&headers).unwrap_or_default());
    let actor = svc::actor_of(&p);
    let ended = run(&state, move |db| {
        svc::change_password(
            db,
            &permit,
            &actor,
            user_id,
            &session_hash,
            svc::PasswordChange { old: &body.old_password, new: &body.new_password },
            crate::now_ms(),
        )
    })
    .await?;
    state.tokens_ended(ended);
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
pub(super) struct NewToken {
    token: String,
    expires_at_ms: u64,
}

pub(super) async fn rotate_session(
    State(state): State<AppState>,
    Authed(p): Authed,
    headers: HeaderMap,
) -> Result<Json<NewToken>, ApiError> {
    if !matches!(p, Principal::Staff { .. }) {
        return Err(ApiError::forbidden("session rotation is for staff (kiosks: POST /api/kiosk/token)"));
    }
    let old = bearer(&headers).unwrap_or_default().to_string();
    let old_hash = crate::auth::token_hash(&old);
    let ttl = state.config.auth.session_ttl_hours;
    let (token, expires_at_ms) = state
        .db
        .run(move |db| crate::auth::rotate_session(db, &old, crate::now_ms(), ttl))
        .await
        .map_err(|e: DataError| ApiError::from(e))?;
    state.tokens_ended([old_hash]);
    Ok(Json(NewToken { token, expires_at_ms }))
}

pub(super) async fn rotate_kiosk_token(
    State(state): State<AppState>,
    Authed(p): Authed,
    headers: HeaderMap,
) -> Result<Json<NewToken>, ApiError> {
    if !matches!(p, Principal::Kiosk { .. }) {
        return Err(ApiError::forbidden("token rotation is for kiosks (staff: POST /api/session/rotate)"));
    }
    let old_hash = crate::auth::token_hash(bearer(&headers).unwrap_or_default());
    let token_ms = state.config.kiosk_token_ms();
    let h = old_hash.clone();
    let (token, expires_at_ms) =
        run(&state, move |db| svc::rotate_kiosk_token(db, &p, &h, token_ms, crate::now_ms())).await?;
    state.tokens_ended([old_hash]);
    Ok(Json(NewToken { token, expires_at_ms }))
}
