//! The browser pages and their static files (`cunneng-web`), the security headers on every
//! response, `/healthz` and `/metrics`.

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
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

/// `cunneng_web::security_headers` (CSP, nosniff, ...) on every response; a header a handler
/// set itself is kept.
pub(super) async fn security_headers(req: Request, next: Next) -> Response {
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
