//! The HTTP API: the router, the extractors every handler uses (`extract`), the edge's error
//! (`error`), delivery of the case service's notices (`push`), one file per resource, and the
//! signaling WebSocket (`ws`).
//! Handlers parse and check the request, call the case service or the database, and answer;
//! the rules live in `case` and `service`.

mod bookings;
mod cases;
mod error;
mod extract;
mod inbox;
mod legal_hold;
mod media;
mod pages;
mod papers;
mod progress;
mod push;
mod range;
mod region;
mod review;
mod session;
mod stats;
mod ws;

use axum::Router;
use axum::routing::{delete, get, post, put};

pub use error::ApiError;
pub use extract::{Authed, JsonBody};

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.limits.http_body_bytes;
    Router::new()
        // Pages and files.
        .route("/", get(|| pages::page("index")))
        .route("/login", get(|| pages::page("login")))
        .route("/kiosk", get(|| pages::page("kiosk")))
        .route("/window", get(|| pages::page("window")))
        .route("/dispatcher", get(|| pages::page("dispatcher")))
        .route("/progress", get(|| pages::page("progress")))
        .route("/static/words.js", get(pages::words))
        .route("/static/{*path}", get(pages::asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(pages::metrics))
        .route("/ws", get(ws::upgrade))
        // Sessions and the region.
        .route("/api/login", post(session::login))
        .route("/api/logout", post(session::logout))
        .route("/api/me", get(session::me))
        .route("/api/matters", get(region::matters))
        .route("/api/windows", get(region::windows))
        .route("/api/villages", get(region::villages))
        // Cases.
        .route("/api/cases", get(cases::list).post(cases::open))
        .route("/api/cases/current", get(cases::current))
        .route("/api/cases/undecided", get(cases::undecided))
        .route("/api/cases/{case_no}", get(cases::get))
        .route("/api/cases/{case_no}/villager", put(cases::set_villager))
        .route("/api/cases/{case_no}/receipt", get(cases::receipt))
        .route("/api/cases/{case_no}/outcome", post(cases::decide))
        .route("/api/cases/{case_no}/finish", post(cases::finish))
        .route("/api/cases/{case_no}/signoff", post(cases::sign_off))
        .route("/api/cases/{case_no}/rating", post(cases::rate))
        .route("/api/cases/{case_no}/recordings", get(cases::recordings))
        .route("/api/cases/{case_no}/recordings/{recording_id}/archive", get(media::archive))
        .route("/api/cases/{case_no}/recordings/{recording_id}/segments/{index}", get(media::segment))
        .route("/api/group-calls/{call}/recordings/{recording_id}/archive", get(media::group_archive))
        .route("/api/group-calls/{call}/recordings/{recording_id}/segments/{index}", get(media::group_segment))
        .route("/api/playback-cookie", post(media::set_cookie).delete(media::clear_cookie))
        .route("/api/cases/{case_no}/legal-hold", put(legal_hold::place).get(legal_hold::show).delete(legal_hold::lift))
        .route("/api/signoffs", get(cases::signoffs))
        // Papers.
        .route("/api/cases/{case_no}/papers", post(papers::start))
        .route("/api/cases/{case_no}/papers/{paper_id}", get(papers::serve).patch(papers::retag).delete(papers::remove))
        .route(
            "/api/cases/{case_no}/uploads/{upload_id}",
            get(papers::status).put(papers::put_chunk).delete(papers::abandon),
        )
        .route("/api/cases/{case_no}/rescan", post(papers::rescan))
        // The village inbox, the public progress lookup, bookings.
        .route("/api/inbox", get(inbox::list))
        .route("/api/inbox/{id}/read", post(inbox::read))
        .route("/api/progress", get(progress::lookup))
        .route("/api/bookings", get(bookings::list).post(bookings::book))
        .route("/api/bookings/slots", get(bookings::slots))
        .route("/api/bookings/{id}", delete(bookings::cancel))
        // The review (supervisors, chiefs).
        .route("/review", get(|| pages::page("review")))
        .route("/stats", get(|| pages::page("stats")))
        .route("/admin", get(|| pages::page("admin")))
        .route("/api/review/cases", get(review::search))
        .route("/api/review/cases/{case_no}", get(review::case))
        .route("/api/review/cases/{case_no}/export", get(review::export))
        .route("/api/review/access", get(review::access))
        .route("/api/review/public-key", get(review::public_key))
        .route("/api/review/choices", get(review::choices))
        .route("/api/review/group-calls", get(review::group_calls))
        .route("/api/review/group-calls/{call}", get(review::group_call))
        // Statistics (supervisors, chiefs).
        .route("/api/stats", get(stats::report))
        .route("/api/stats/export.csv", get(stats::export_csv))
        .route("/api/stats/export.xlsx", get(stats::export_xlsx))
        .fallback(|| async { ApiError::not_found("route") })
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(pages::security_headers))
        .with_state(state)
}
