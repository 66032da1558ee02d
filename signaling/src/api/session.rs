//! `/api/login`, `/api/logout`, `/api/me`: staff sessions and who is asking.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::extract::{JsonBody, bearer};
use super::{ApiError, Authed};
use crate::db::{DataError, Me};
use crate::identity::Principal;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LoginBody {
    username: String,
    password: String,
}

#[derive(Serialize)]
pub(super) struct LoginAnswer {
    token: String,
    expires_at_ms: u64,
    user: Me,
}

pub(super) async fn login(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Json<LoginAnswer>, ApiError> {
    if body.username.len() > 128 || body.password.len() > 1024 {
        return Err(ApiError::bad_request("用户名或密码过长 (username or password too long)"));
    }
    let ttl = state.config.auth.session_ttl_hours;
    let result =
        state.db.run(move |db| crate::auth::login(db, &body.username, &body.password, crate::now_ms(), ttl)).await;
    match result {
        Ok(login) => Ok(Json(LoginAnswer { token: login.token, expires_at_ms: login.expires_at_ms, user: login.me })),
        Err(e) if e.is_unauthorized() => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "用户名或密码错误 (wrong username or password)",
        )),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn logout(
    State(state): State<AppState>,
    Authed(p): Authed,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    if !matches!(p, Principal::Staff { .. }) {
        return Err(ApiError::forbidden("logout is for staff sessions"));
    }
    let token = bearer(&headers).unwrap_or_default().to_string();
    state.db.run(move |db| crate::auth::logout(db, &token)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn me(State(state): State<AppState>, Authed(p): Authed) -> Result<Json<Me>, ApiError> {
    Ok(Json(state.db.run(move |db| db.me(&p)).await.map_err(|e: DataError| ApiError::from(e))?))
}
