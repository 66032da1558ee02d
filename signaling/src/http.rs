//! HTTP routes: pages, REST API, health and metrics. Every API handler authenticates with the
//! bearer token and checks role and scope before touching anything.

use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.limits.http_body_bytes;
    Router::new()
        .route("/", get(|| page("index")))
        .route("/login", get(|| page("login")))
        .route("/kiosk", get(|| page("kiosk")))
        .route("/window", get(|| page("window")))
        .route("/dispatcher", get(|| page("dispatcher")))
        .route("/static/{*path}", get(asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/api/login", post(login))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/matters", get(matters))
        .route("/api/windows", get(windows))
        .route("/api/villages", get(villages))
        .merge(crate::retention::routes())
        .route("/ws", get(crate::ws::upgrade))
        .route("/progress", get(|| page("progress")))
        .merge(crate::cases::routes())
        .fallback(|| async { ApiError::not_found("route") })
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// `cunneng_web::security_headers` (CSP, nosniff, ...) on every response; a header a handler
/// set itself is kept.
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let host = host.or_else(|| req.uri().authority().map(|a| a.to_string()));
    let mut resp = next.run(req).await;
    for (name, value) in cunneng_web::security_headers(host.as_deref()) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            resp.headers_mut().entry(name).or_insert(value);
        }
    }
    resp
}

async fn page(name: &'static str) -> Response {
    match cunneng_web::page(name) {
        Some(html) => {
            let mut resp = Html(html).into_response();
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            resp
        }
        None => ApiError::not_found("page").into_response(),
    }
}

async fn asset(axum::extract::Path(path): axum::extract::Path<String>) -> Response {
    match cunneng_web::asset(&path) {
        Some((bytes, content_type)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            ],
            bytes,
        )
            .into_response(),
        None => ApiError::not_found("file").into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.render_metrics().await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// The authenticated principal of a request (`Authorization: Bearer TOKEN`).
pub struct Authed(pub Principal);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let principal = state.resolve_token(token.to_string()).await?;
        Ok(Authed(principal))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    body: Result<Json<LoginBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) =
        body.map_err(|e| ApiError::bad_request(format!("请求格式错误 (bad request body: {})", e.body_text())))?;
    if body.username.len() > 128 || body.password.len() > 1024 {
        return Err(ApiError::bad_request("用户名或密码过长 (username or password too long)"));
    }
    let db = state.db.clone();
    let ttl = state.config.auth.session_ttl_hours;
    let result = tokio::task::spawn_blocking(move || {
        crate::auth::login(&db, &body.username, &body.password, crate::now_ms(), ttl)
    })
    .await
    .map_err(|_| ApiError::internal())?;
    match result {
        Ok(login) => {
            let me = state.me(&login.principal).await?;
            Ok(Json(serde_json::json!({"token": login.token, "expires_at_ms": login.expires_at_ms, "user": me}))
                .into_response())
        }
        Err(e) if e.is_unauthorized() => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "用户名或密码错误 (wrong username or password)",
        )),
        Err(e) => Err(e.into()),
    }
}

async fn logout(
    State(state): State<AppState>,
    Authed(p): Authed,
    headers: axum::http::HeaderMap,
) -> Result<StatusCode, ApiError> {
    if !matches!(p, Principal::Staff { .. }) {
        return Err(ApiError::forbidden("logout is for staff sessions"));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .trim()
        .to_string();
    let db = state.db.clone();
    tokio::task::spawn_blocking(move || crate::auth::logout(&db, &token)).await.map_err(|_| ApiError::internal())??;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(State(state): State<AppState>, Authed(p): Authed) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(state.me(&p).await?))
}

#[derive(Deserialize)]
struct MatterQuery {
    q: Option<String>,
}

async fn matters(
    State(state): State<AppState>,
    Authed(p): Authed,
    Query(q): Query<MatterQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let town = p.town_id();
    if town.is_none() && !p.is_county_wide() {
        return Err(ApiError::forbidden("matters"));
    }
    let query = q.q.filter(|s| !s.trim().is_empty());
    if query.as_deref().is_some_and(|s| s.len() > 200) {
        return Err(ApiError::bad_request("搜索词过长 (query too long)"));
    }
    let db = state.db.clone();
    let list = tokio::task::spawn_blocking(move || db.matters_for_town(town, query.as_deref()))
        .await
        .map_err(|_| ApiError::internal())??;
    Ok(Json(serde_json::to_value(list).map_err(|_| ApiError::internal())?))
}

async fn windows(State(state): State<AppState>, Authed(p): Authed) -> Result<Json<serde_json::Value>, ApiError> {
    let town = p.town_id().ok_or_else(|| ApiError::forbidden("windows are listed per town"))?;
    let db = state.db.clone();
    let list =
        tokio::task::spawn_blocking(move || db.windows_of_town(town)).await.map_err(|_| ApiError::internal())??;
    Ok(Json(serde_json::to_value(list).map_err(|_| ApiError::internal())?))
}

async fn villages(State(state): State<AppState>, Authed(p): Authed) -> Result<Json<serde_json::Value>, ApiError> {
    let allowed = matches!(&p, Principal::Staff { role: Role::Dispatcher | Role::Chief | Role::Approver, .. });
    if !allowed {
        return Err(ApiError::forbidden("villages"));
    }
    let town = p.town_id().ok_or_else(|| ApiError::forbidden("villages are listed per town"))?;
    let db = state.db.clone();
    let list =
        tokio::task::spawn_blocking(move || db.villages_of_town(town)).await.map_err(|_| ApiError::internal())??;
    let online = state.online_villages().await;
    let list: Vec<serde_json::Value> = list
        .into_iter()
        .map(|v| {
            let mut j = serde_json::to_value(&v).unwrap_or_default();
            j["online"] = serde_json::Value::Bool(online.contains(&v.id));
            j
        })
        .collect();
    Ok(Json(serde_json::Value::Array(list)))
}
