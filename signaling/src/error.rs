//! Errors. `Error` is the crate's one error enum; `ApiError` is the HTTP edge: it maps to a
//! status code and a stable `code`, and never puts internal details in the response.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::config::ConfigError;
use crate::db::DataError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Media(#[from] cunneng_media_recorder::MediaError),
    #[error(transparent)]
    Storage(#[from] cunneng_storage::StorageError),
    #[error("{0}")]
    Tool(String),
    #[error("tls: {0}")]
    Tls(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// An error as the HTTP API reports it: `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "请先登录 (missing, unknown or expired token)")
    }
    pub fn forbidden(what: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", format!("无权操作 (not allowed for this role: {what})"))
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("找不到 (not found: {what})"))
    }
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "服务器内部错误,请稍后再试 (internal error)")
    }
}

impl From<DataError> for ApiError {
    fn from(e: DataError) -> Self {
        if e.is_unauthorized() {
            return ApiError::unauthorized();
        }
        if e.is_not_found() {
            return ApiError::not_found("record");
        }
        tracing::error!(error = %e, "data error at the HTTP edge");
        ApiError::internal()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}
