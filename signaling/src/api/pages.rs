//! The browser pages and their static files (`cunneng-web`), `/healthz` and `/metrics`.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};

use super::ApiError;
use crate::state::AppState;

pub(super) async fn page(name: &'static str) -> Response {
    match cunneng_web::page(name) {
        Some(html) => {
            let mut resp = Html(html).into_response();
            resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            resp
        }
        None => ApiError::not_found("page").into_response(),
    }
}

pub(super) async fn asset(Path(path): Path<String>) -> Response {
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

pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.render_metrics().await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}
