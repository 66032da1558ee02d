//! What every handler takes from a request: the authenticated principal ([`Authed`]), a JSON
//! body whose rejection is the API's error ([`JsonBody`]), the case viewer ([`CaseViewer`]),
//! and checked text.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use super::ApiError;
use crate::case::Viewer;
use crate::db::DataError;
use crate::identity::Principal;
use crate::state::AppState;

/// The bearer token of a request (`Authorization: Bearer TOKEN`), if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// The routes a session reaches while its account must change its password (an
/// administrator's reset, or a new account): everything else answers 403
/// `password_change_required`.
pub const OPEN_DURING_PASSWORD_CHANGE: [&str; 3] = ["/api/me", "/api/logout", "/api/password"];

/// The authenticated principal of a request: the one place a request's principal is
/// resolved (the media endpoints' cookie and the WebSocket's `hello` refuse a session that
/// must change its password the same way, through `AppState::resolve_token`).
pub struct Authed(pub Principal);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let resolved = state.resolve(token.to_string()).await?;
        if resolved.must_change_password && !OPEN_DURING_PASSWORD_CHANGE.contains(&parts.uri.path()) {
            return Err(DataError::PasswordChangeRequired.into());
        }
        Ok(Authed(resolved.principal))
    }
}

/// The authenticated administrator of a request (403 for everyone else).
pub struct Admin(pub Principal);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authed(p) = Authed::from_request_parts(parts, state).await?;
        match p {
            Principal::Staff { role: crate::identity::Role::Admin, .. } => Ok(Admin(p)),
            _ => Err(ApiError::forbidden("administration is for administrators")),
        }
    }
}

/// The authenticated principal as a viewer of cases (403 for the roles that see none).
pub struct CaseViewer(pub Viewer);

impl FromRequestParts<AppState> for CaseViewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Authed(p) = Authed::from_request_parts(parts, state).await?;
        Viewer::of(&p).map(CaseViewer).ok_or_else(|| ApiError::forbidden("cases"))
    }
}

/// The cookie the media endpoints also take a staff token from: a `<video>` element cannot
/// send an `Authorization` header (`POST /api/playback-cookie` sets it; docs/cases-api.md).
pub const MEDIA_COOKIE: &str = "cunneng_media";

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v.trim()))
        .filter(|v| !v.is_empty())
}

/// The case viewer of a media request: from the bearer token or, without one, the media
/// cookie ([`MEDIA_COOKIE`]). Only the media endpoints accept the cookie, and only for
/// reading (GET and HEAD): it is `SameSite=Strict`, so other sites cannot make a browser use
/// it.
pub struct MediaViewer(pub Viewer);

impl FromRequestParts<AppState> for MediaViewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).or_else(|| cookie(&parts.headers, MEDIA_COOKIE));
        let token = token.ok_or_else(ApiError::unauthorized)?;
        let principal = state.resolve_token(token.to_string()).await?;
        Viewer::of(&principal).map(MediaViewer).ok_or_else(|| ApiError::forbidden("cases"))
    }
}

/// A JSON body, or a 400 that says what is wrong with it.
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(JsonBody(v)),
            Err(e) => Err(ApiError::bad_request(format!(
                "请求格式错误 (bad request body: {})",
                crate::error::quote_client(&e.body_text())
            ))),
        }
    }
}

/// Trimmed text of 1..=`max` characters without control characters (line breaks allowed).
pub fn text(value: &str, max: usize, what: &str) -> Result<String, ApiError> {
    let t = value.trim();
    if t.is_empty() || t.chars().count() > max || t.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::bad_request(format!(
            "{what}: 1-{max} 个字符 (1 to {max} characters, no control characters)"
        )));
    }
    Ok(t.to_string())
}

/// Optional text: blank is `None`, anything else must pass [`text`].
pub fn optional_text(value: Option<&str>, max: usize, what: &str) -> Result<Option<String>, ApiError> {
    match value.map(str::trim).filter(|s| !s.is_empty()) {
        Some(t) => Ok(Some(text(t, max, what)?)),
        None => Ok(None),
    }
}
