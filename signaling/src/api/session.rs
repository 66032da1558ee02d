//! `/api/login`, `/api/logout`, `/api/me`: staff sessions and who is asking.

use axum::Json;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
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
    /// A temporary password (new account, administrator's reset): the page asks for a new
    /// one (`POST /api/password`) before anything else works.
    must_change_password: bool,
}

pub(super) async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Json<LoginAnswer>, ApiError> {
    if body.username.len() > 128 || body.password.len() > 1024 {
        return Err(ApiError::bad_request("用户名或密码过长 (username or password too long)"));
    }
    // Limited per address and per account before any password is hashed (argon2id is
    // expensive and runs on the shared blocking pool). Both limits are asked before either is
    // taken from: a refusal by one spends nothing of the other.
    let account = body.username.trim().to_lowercase();
    let limits = |take: bool| {
        let asked = state
            .login_address_limit
            .would_allow(&peer.ip())
            .and_then(|()| state.login_account_limit.would_allow(&account));
        if !take {
            return asked;
        }
        asked
            .and_then(|()| state.login_address_limit.take(&peer.ip()))
            .and_then(|()| state.login_account_limit.take(&account))
    };
    let refused = |wait| {
        state.metrics.inc_rejected("login_rate");
        ApiError::rate_limited("登录尝试太频繁,请稍后再试 (too many login attempts)", wait)
    };
    limits(false).map_err(refused)?;
    // At most `password_hashes_at_once` hashes at once (19 MiB each); no permit within the
    // wait is 503 `busy`, having taken nothing from either limit.
    let permit = state.hash_permit().await?;
    limits(true).map_err(refused)?;
    let ttl = state.config.auth.session_ttl_hours;
    let result = state
        .db
        .run(move |db| crate::auth::login(db, &permit, &body.username, &body.password, crate::now_ms(), ttl))
        .await;
    match result {
        Ok(login) => Ok(Json(LoginAnswer {
            token: login.token,
            expires_at_ms: login.expires_at_ms,
            user: login.me,
            must_change_password: login.must_change_password,
        })),
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
    let hash = crate::auth::token_hash(&token);
    state.db.run(move |db| crate::auth::logout(db, &token)).await?;
    // The session's sockets close now (no receiver: no socket open).
    let _ = state.sessions_ended.send(hash);
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn me(State(state): State<AppState>, Authed(p): Authed) -> Result<Json<Me>, ApiError> {
    Ok(Json(state.db.run(move |db| db.me(&p)).await.map_err(|e: DataError| ApiError::from(e))?))
}
