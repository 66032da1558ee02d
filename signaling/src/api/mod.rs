//! The HTTP API: the router, the extractors every handler uses (`extract`), the edge's error
//! (`error`), delivery of the case service's notices (`push`), one file per resource, and the
//! signaling WebSocket (`ws`).
//! Handlers parse and check the request, call the case service or the database, and answer;
//! the rules live in `case` and `service`.

mod accounts;
mod admin;
mod bookings;
mod cases;
mod error;
mod extract;
mod inbox;
mod ledger;
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

/// An HTTP method of a route in [`route_table`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl RouteMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteMethod::Get => "GET",
            RouteMethod::Post => "POST",
            RouteMethod::Put => "PUT",
            RouteMethod::Patch => "PATCH",
            RouteMethod::Delete => "DELETE",
        }
    }
}

/// One (method, path) the router serves. (`GET` routes also answer `HEAD`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteEntry {
    pub method: RouteMethod,
    /// The path as the router has it (`/api/cases/{case_no}`).
    pub path: &'static str,
}

/// The method a routing function (`get`, `post`, ...) stands for.
macro_rules! route_method {
    (get) => {
        RouteMethod::Get
    };
    (post) => {
        RouteMethod::Post
    };
    (put) => {
        RouteMethod::Put
    };
    (patch) => {
        RouteMethod::Patch
    };
    (delete) => {
        RouteMethod::Delete
    };
}

/// The one list of routes: each line `PATH => get(handler).post(handler),` both adds the route
/// to the router ([`add_routes`]) and records its methods in [`route_table`], which
/// `cunneng routes --json` prints and the authorization matrix test
/// (`tests/tests/authorization_matrix.rs`) checks row by row. A route outside this list would
/// be missing from the table: the test `every_route_is_in_the_table` below refuses one.
macro_rules! routes {
    ($($path:literal => $method:ident($handler:expr) $(.$more:ident($more_handler:expr))*,)*) => {
        fn add_routes(router: Router<AppState>) -> Router<AppState> {
            router $(.route($path, $method($handler) $(.$more($more_handler))*))*
        }

        /// Every (method, path) the router serves, in the order of the list.
        pub fn route_table() -> Vec<RouteEntry> {
            vec![$(
                RouteEntry { method: route_method!($method), path: $path },
                $(RouteEntry { method: route_method!($more), path: $path },)*
            )*]
        }
    };
}

routes! {
    // Pages and files.
    "/" => get(|| pages::page("index")),
    "/login" => get(|| pages::page("login")),
    "/kiosk" => get(|| pages::page("kiosk")),
    "/window" => get(|| pages::page("window")),
    "/dispatcher" => get(|| pages::page("dispatcher")),
    "/progress" => get(|| pages::page("progress")),
    "/static/words.js" => get(pages::words),
    "/static/{*path}" => get(pages::asset),
    "/healthz" => get(|| async { "ok" }),
    "/metrics" => get(pages::metrics),
    "/ws" => get(ws::upgrade),
    // Sessions and the region.
    "/api/login" => post(session::login),
    "/api/logout" => post(session::logout),
    "/api/me" => get(session::me),
    "/api/matters" => get(region::matters),
    "/api/windows" => get(region::windows),
    "/api/villages" => get(region::villages),
    // Accounts and kiosk devices (administrators), enrolment, passwords, rotation.
    "/api/admin/users" => get(accounts::users).post(accounts::create_user),
    "/api/admin/users/{id}" => put(accounts::update_user).delete(accounts::delete_user),
    "/api/admin/users/{id}/disable" => post(accounts::disable_user),
    "/api/admin/users/{id}/enable" => post(accounts::enable_user),
    "/api/admin/users/{id}/password-reset" => post(accounts::reset_password),
    "/api/admin/kiosks" => get(accounts::kiosks).post(accounts::create_kiosk),
    "/api/admin/kiosks/{id}" => put(accounts::update_kiosk).delete(accounts::delete_kiosk),
    "/api/admin/kiosks/{id}/disable" => post(accounts::disable_kiosk),
    "/api/admin/kiosks/{id}/enable" => post(accounts::enable_kiosk),
    "/api/admin/kiosks/{id}/enrolment" => post(accounts::issue_enrolment),
    "/api/admin/kiosks/{id}/revoke" => post(accounts::revoke_kiosk),
    "/api/enrol" => post(accounts::enrol),
    "/api/password" => post(accounts::change_password),
    "/api/session/rotate" => post(accounts::rotate_session),
    "/api/kiosk/token" => post(accounts::rotate_kiosk_token),
    // Cases.
    "/api/cases" => get(cases::list).post(cases::open),
    "/api/cases/current" => get(cases::current),
    "/api/cases/undecided" => get(cases::undecided),
    "/api/cases/{case_no}" => get(cases::get),
    "/api/cases/{case_no}/villager" => put(cases::set_villager),
    "/api/cases/{case_no}/receipt" => get(cases::receipt),
    "/api/cases/{case_no}/outcome" => post(cases::decide),
    "/api/cases/{case_no}/finish" => post(cases::finish),
    "/api/cases/{case_no}/signoff" => post(cases::sign_off),
    "/api/cases/{case_no}/rating" => post(cases::rate),
    "/api/cases/{case_no}/recordings" => get(cases::recordings),
    "/api/cases/{case_no}/recordings/{recording_id}/archive" => get(media::archive),
    "/api/cases/{case_no}/recordings/{recording_id}/segments/{index}" => get(media::segment),
    "/api/group-calls/{call}/recordings/{recording_id}/archive" => get(media::group_archive),
    "/api/group-calls/{call}/recordings/{recording_id}/segments/{index}" => get(media::group_segment),
    "/api/playback-cookie" => post(media::set_cookie).delete(media::clear_cookie),
    "/api/cases/{case_no}/legal-hold" => put(legal_hold::place).get(legal_hold::show).delete(legal_hold::lift),
    "/api/signoffs" => get(cases::signoffs),
    // Papers.
    "/api/cases/{case_no}/papers" => post(papers::start),
    "/api/cases/{case_no}/papers/{paper_id}" => get(papers::serve).patch(papers::retag).delete(papers::remove),
    "/api/cases/{case_no}/uploads/{upload_id}" => get(papers::status).put(papers::put_chunk).delete(papers::abandon),
    "/api/cases/{case_no}/rescan" => post(papers::rescan),
    // The village inbox, the public progress lookup, bookings.
    "/api/inbox" => get(inbox::list),
    "/api/inbox/{id}/read" => post(inbox::read),
    "/api/progress" => get(progress::lookup),
    "/api/bookings" => get(bookings::list).post(bookings::book),
    "/api/bookings/slots" => get(bookings::slots),
    "/api/bookings/{id}" => delete(bookings::cancel),
    // The review (supervisors, chiefs).
    "/review" => get(|| pages::page("review")),
    "/stats" => get(|| pages::page("stats")),
    "/admin" => get(|| pages::page("admin")),
    "/api/review/cases" => get(review::search),
    "/api/review/cases/{case_no}" => get(review::case),
    "/api/review/cases/{case_no}/export" => get(review::export),
    "/api/review/access" => get(review::access),
    "/api/review/public-key" => get(review::public_key),
    "/api/review/choices" => get(review::choices),
    "/api/review/group-calls" => get(review::group_calls),
    "/api/review/group-calls/{call}" => get(review::group_call),
    // Statistics (supervisors, chiefs).
    "/api/ledger" => get(ledger::show),
    "/api/ledger/export.xlsx" => get(ledger::export_xlsx),
    "/api/stats" => get(stats::report),
    "/api/stats/export.csv" => get(stats::export_csv),
    "/api/stats/export.xlsx" => get(stats::export_xlsx),
    // Administration (the county administrator): the region and the matter catalog.
    "/api/admin/region" => get(admin::region),
    "/api/admin/changes" => get(admin::changes),
    "/api/admin/towns" => post(admin::create_town),
    "/api/admin/towns/{id}" => put(admin::update_town).delete(admin::delete_town),
    "/api/admin/towns/{id}/disable" => post(admin::disable_town),
    "/api/admin/towns/{id}/enable" => post(admin::enable_town),
    "/api/admin/villages" => post(admin::create_village),
    "/api/admin/villages/{id}" => put(admin::update_village).delete(admin::delete_village),
    "/api/admin/villages/{id}/disable" => post(admin::disable_village),
    "/api/admin/villages/{id}/enable" => post(admin::enable_village),
    "/api/admin/windows" => post(admin::create_window),
    "/api/admin/windows/{id}" => put(admin::update_window).delete(admin::delete_window),
    "/api/admin/windows/{id}/disable" => post(admin::disable_window),
    "/api/admin/windows/{id}/enable" => post(admin::enable_window),
    "/api/admin/matters" => post(admin::create_matter),
    "/api/admin/matters/{id}" => put(admin::update_matter).delete(admin::delete_matter),
    "/api/admin/matters/{id}/disable" => post(admin::disable_matter),
    "/api/admin/matters/{id}/enable" => post(admin::enable_matter),
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.config.limits.http_body_bytes;
    add_routes(Router::new())
        .fallback(|| async { ApiError::not_found("route") })
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(pages::security_headers))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_route_is_in_the_table() {
        // Routes are added only by `routes!`: its expansion holds the one route call of this file
        // (any other would serve a route that the table, and so the authorization matrix, misses).
        let source = include_str!("mod.rs");
        for call in
            [concat!(".", "route("), concat!(".", "nest("), concat!(".", "merge("), concat!(".", "route_service(")]
        {
            let expected = usize::from(call == concat!(".", "route("));
            assert_eq!(source.matches(call).count(), expected, "`{call}` outside `routes!` in api/mod.rs");
        }
    }

    #[test]
    fn the_table_has_each_route_once() {
        let table = route_table();
        let unique: HashSet<_> = table.iter().collect();
        assert_eq!(unique.len(), table.len());
        assert!(table.iter().all(|r| r.path.starts_with('/')));
        assert!(
            table.contains(&RouteEntry { method: RouteMethod::Patch, path: "/api/cases/{case_no}/papers/{paper_id}" })
        );
        assert!(table.contains(&RouteEntry { method: RouteMethod::Delete, path: "/api/playback-cookie" }));
    }
}
