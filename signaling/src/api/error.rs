//! The HTTP edge's error: a status code and a stable `code`, `{"error": {"code", "message"}}`.
//! It never puts internal details in the response (those go to the log).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::db::DataError;
use crate::error::{Error, RejectKind, Rejection};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None }
    }
    /// 429 `rate_limited`, with `Retry-After` (whole seconds, at least 1).
    pub fn rate_limited(message: impl Into<String>, wait: std::time::Duration) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        e.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        e
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "请先登录 (missing, unknown or expired token)")
    }
    pub fn forbidden(what: &str) -> Self {
        Rejection::forbidden(what).into()
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Rejection::invalid(message).into()
    }
    pub fn not_found(what: &str) -> Self {
        Rejection::not_found(what).into()
    }
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "服务器内部错误,请稍后再试 (internal error)")
    }
}

fn status_of(kind: RejectKind) -> StatusCode {
    match kind {
        RejectKind::Invalid => StatusCode::BAD_REQUEST,
        RejectKind::Forbidden => StatusCode::FORBIDDEN,
        RejectKind::NotFound => StatusCode::NOT_FOUND,
        RejectKind::Conflict => StatusCode::CONFLICT,
        RejectKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RejectKind::Gone => StatusCode::GONE,
        RejectKind::UnsupportedType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        RejectKind::TooMany => StatusCode::TOO_MANY_REQUESTS,
        RejectKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        ApiError::new(status_of(r.kind), r.code, r.message)
    }
}

impl From<DataError> for ApiError {
    fn from(e: DataError) -> Self {
        if e.is_unauthorized() {
            return ApiError::unauthorized();
        }
        if matches!(e, DataError::PasswordChangeRequired) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "password_change_required",
                "请先修改密码 (the password must be changed first: POST /api/password)",
            );
        }
        if e.is_not_found() {
            return ApiError::not_found("record");
        }
        tracing::error!(error = %e, "data error at the HTTP edge");
        ApiError::internal()
    }
}

impl From<crate::auth::HashesBusy> for ApiError {
    /// 503 `busy` with `Retry-After`: every password hash permit stayed taken.
    fn from(busy: crate::auth::HashesBusy) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "服务器正忙,请稍后再试 (too many passwords being checked at once; retry)",
        );
        e.retry_after = Some(busy.retry_after.as_secs_f64().ceil().max(1.0) as u64);
        e
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::Rejected(r) => r.into(),
            Error::Data(d) => d.into(),
            e => {
                tracing::error!(error = %e, "error at the HTTP edge");
                ApiError::internal()
            }
        }
    }
}

impl From<crate::case::Refusal> for ApiError {
    fn from(r: crate::case::Refusal) -> Self {
        Rejection::from(r).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // People read `message` (Chinese only); developers read `detail`.
        let (message, detail) = crate::error::split_message(&self.message);
        let mut error = serde_json::json!({"code": self.code, "message": message});
        if let Some(d) = detail {
            error["detail"] = d.into();
        }
        let body = serde_json::json!({ "error": error });
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        resp
    }
}
