//! The authorization matrix (issue 9): every route of the router's own table and every
//! WebSocket client message type, as `cunneng routes --json` prints them (the table
//! `api::routes!` builds the router from, and `ClientMsg::TYPES`), × every principal ×
//! in scope / out of scope, each with the status the product answers.
//!
//! The matrix is data: [`http_rows`] has one row per (method, path) and [`ws_rows`] one per
//! message type; each row gives, per fixture, the expected answer of each principal in the
//! order of [`WHO`]. A route or message type without a row, or a row for a route that does
//! not exist, fails the test; so does every cell that differs (all listed at once).
//!
//! Principals: anonymous; the kiosks of two villages of the same town (昭化镇: 松宁村 is
//! village A, 大朝村 village B — the same town on purpose, so that only a check per village,
//! not per town, keeps B out of A's cases, bookings and inbox); approver, chief and
//! dispatcher of 昭化镇 (town 1) and of 元坝镇 (town 2); the county's supervisor and
//! 昭化镇's own (town-limited); the administrator; a disabled account; an expired session.
//!
//! Fixtures: `A` are objects of village A (town 1), `T2` objects of a village of town 2;
//! `-` a route that names no object. Each case went through a call answered by its town's
//! approver; the rows then walk it through its life (放心回家 decided after the call,
//! finished, signed off, rated), so that every cell that passes authorization also reaches
//! the case's rules: a 409 in the table is the lifecycle answering a principal who was let
//! through. Recordings and group calls are asked for by ids that do not exist (no media
//! flows in this test): a principal let through gets 404, one refused 403.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cunneng_tests::cases::{Api, CaseSetup, answer_call, call, hang_up, lookup_code, png, setup};
use cunneng_tests::client::{STEP, WsClient, get_json, http, login};
use cunneng_tests::server::{Server, binary_path};
use serde_json::{Value, json};

/// The principals, in the order of every row's cells.
const WHO: [&str; 14] = [
    "anonymous",
    "kiosk A",
    "kiosk B",
    "approver 1",
    "chief 1",
    "dispatcher 1",
    "approver 2",
    "chief 2",
    "dispatcher 2",
    "supervisor",
    "supervisor town 1",
    "admin",
    "disabled",
    "expired",
];
const ANON: usize = 0;
const KIOSK_A: usize = 1;
const ADMIN: usize = 11;
const DISABLED: usize = 12;
const EXPIRED: usize = 13;

/// Staff principals by username (the demo's, `demo/demo.toml`).
const STAFF: [(usize, &str); 9] = [
    (3, "zhaohua-zonghe"),
    (4, "zhaohua-chief"),
    (5, "zhaohua-dispatch"),
    (6, "yuanba-zonghe"),
    (7, "yuanba-chief"),
    (8, "yuanba-dispatch"),
    (9, "supervisor"),
    (10, "zhaohua-supervisor"),
    (11, "admin"),
];
const PASSWORD: &str = "cunneng-demo";
/// The account that is disabled, and the one whose session is made to expire.
const DISABLED_USER: &str = "zhaohua-shebao";
const EXPIRED_USER: &str = "zhaohua-minzheng";
/// The route that disables an account (the administration's); until it exists the
/// `disabled` column is not checked, and the test says so.
const DISABLE_ROUTE: (&str, &str) = ("POST", "/api/admin/users/{id}/disable");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Fx {
    /// The route names no object.
    No,
    /// Objects of village A, town 1.
    A,
    /// Objects of town 2.
    T2,
}

#[derive(Clone, Copy)]
enum Body {
    None,
    /// JSON with `{placeholders}`.
    Json(&'static str),
    /// A PNG of the upload's declared size (a paper chunk).
    Png,
}

/// What a row needs around each request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hook {
    None,
    /// A staff principal whose request succeeded logged out: log in again.
    Relogin,
    /// Place a legal hold (as the administrator) before each request, so each may lift one.
    PlaceHold,
    /// The answer carries a new token for the principal (rotation): go on with it.
    ReplaceToken,
    /// An upload (`upload_del`) was abandoned: the case's kiosk begins a fresh one, so that
    /// each principal may try.
    NewUpload,
}

struct Row {
    method: &'static str,
    /// As in the route table.
    path: &'static str,
    /// Appended to the path, with `{placeholders}`.
    query: &'static str,
    body: Body,
    hook: Hook,
    /// Placeholder → fixture name, where the name is not the placeholder's own.
    alias: &'static [(&'static str, &'static str)],
    /// Per fixture: the expected status of each principal of [`WHO`], space-separated.
    cells: &'static [(Fx, &'static str)],
}

const fn row(method: &'static str, path: &'static str, cells: &'static [(Fx, &'static str)]) -> Row {
    Row { method, path, query: "", body: Body::None, hook: Hook::None, alias: &[], cells }
}

impl Row {
    fn query(mut self, q: &'static str) -> Row {
        self.query = q;
        self
    }
    fn json(mut self, b: &'static str) -> Row {
        self.body = Body::Json(b);
        self
    }
    fn png(mut self) -> Row {
        self.body = Body::Png;
        self
    }
    fn hook(mut self, h: Hook) -> Row {
        self.hook = h;
        self
    }
    fn alias(mut self, a: &'static [(&'static str, &'static str)]) -> Row {
        self.alias = a;
        self
    }
}

use Fx::{A, No, T2};

/// Everyone gets the same answer (public routes).
const ALL_200: &[(Fx, &str)] = &[(No, "200 200 200 200 200 200 200 200 200 200 200 200 200 200")];

/// The HTTP matrix, run in this order (the case rows follow a case through its life).
///
/// Columns: anon kA kB ap1 ch1 di1 ap2 ch2 di2 sup supT adm dis exp
fn http_rows() -> Vec<Row> {
    vec![
        // --- Pages and files: public, the same shell for everyone (data comes from the API).
        row("GET", "/", ALL_200),
        row("GET", "/login", ALL_200),
        row("GET", "/kiosk", ALL_200),
        row("GET", "/window", ALL_200),
        row("GET", "/dispatcher", ALL_200),
        row("GET", "/progress", ALL_200),
        row("GET", "/review", ALL_200),
        row("GET", "/stats", ALL_200),
        row("GET", "/admin", ALL_200),
        row("GET", "/static/words.js", ALL_200),
        row("GET", "/static/{*path}", ALL_200),
        row("GET", "/healthz", ALL_200),
        // Without `metrics.token_file`, only direct requests from this machine (the test is
        // one) may read it; `metrics_need_a_token_or_this_machine` checks the rest.
        row("GET", "/metrics", ALL_200),
        // A plain GET is no WebSocket upgrade; the socket's own checks are the WS matrix.
        row("GET", "/ws", &[(No, "400 400 400 400 400 400 400 400 400 400 400 400 400 400")]),
        // --- Sessions and the region.
        // Logging in is for anyone (with another account's right password).
        row("POST", "/api/login", ALL_200).json(r#"{"username":"wangjia-zonghe","password":"cunneng-demo"}"#),
        row("POST", "/api/logout", &[(No, "401 403 403 204 204 204 204 204 204 204 204 204 401 401")])
            .hook(Hook::Relogin),
        row("GET", "/api/me", &[(No, "401 200 200 200 200 200 200 200 200 200 200 200 401 401")]),
        row("GET", "/api/matters", &[(No, "401 200 200 200 200 200 200 200 200 200 200 200 401 401")]),
        // Windows are listed per town: county-wide roles have none to list.
        row("GET", "/api/windows", &[(No, "401 200 200 200 200 200 200 200 200 403 200 403 401 401")]),
        row("GET", "/api/villages", &[(No, "401 403 403 200 200 200 200 200 200 403 403 403 401 401")]),
        // --- Cases.
        row("GET", "/api/cases", &[(No, "401 200 200 200 200 403 200 200 403 200 200 403 401 401")]),
        // The village room opens cases (each kiosk one of its own).
        row("POST", "/api/cases", &[(No, "401 201 201 403 403 403 403 403 403 403 403 403 401 401")])
            .json(r#"{"matter_id":{matter}}"#),
        // The case each kiosk just prepared.
        row("GET", "/api/cases/current", &[(No, "401 200 200 403 403 403 403 403 403 403 403 403 401 401")]),
        row("GET", "/api/cases/undecided", &[(No, "401 403 403 200 200 403 200 200 403 403 403 403 401 401")]),
        row(
            "GET",
            "/api/cases/{case_no}",
            &[
                (A, "401 200 403 200 200 403 403 403 403 200 200 403 401 401"),
                (T2, "401 403 403 403 403 403 200 200 403 200 403 403 401 401"),
            ],
        ),
        row(
            "PUT",
            "/api/cases/{case_no}/villager",
            &[
                (A, "401 200 403 403 403 403 403 403 403 403 403 403 401 401"),
                (T2, "401 403 403 403 403 403 403 403 403 403 403 403 401 401"),
            ],
        )
        .json(r#"{"name":"王大妈","phone":"13900001111"}"#),
        // Receipts are printed by the village room and the window, not the review.
        row(
            "GET",
            "/api/cases/{case_no}/receipt",
            &[
                (A, "401 200 403 200 200 403 403 403 403 403 403 403 401 401"),
                (T2, "401 403 403 403 403 403 200 200 403 403 403 403 401 401"),
            ],
        ),
        // --- Papers, while the case is open. Scans are the village room's.
        row(
            "POST",
            "/api/cases/{case_no}/papers",
            &[
                (A, "401 201 403 403 403 403 403 403 403 403 403 403 401 401"),
                (T2, "401 403 403 403 403 403 403 403 403 403 403 403 401 401"),
            ],
        )
        .json(r#"{"name":"户口簿.png","size":2000}"#),
        row(
            "GET",
            "/api/cases/{case_no}/papers/{paper_id}",
            &[
                (A, "401 200 403 200 200 403 403 403 403 200 200 403 401 401"),
                (T2, "401 403 403 403 403 403 200 200 403 200 403 403 401 401"),
            ],
        ),
        row(
            "PATCH",
            "/api/cases/{case_no}/papers/{paper_id}",
            &[
                (A, "401 200 403 403 403 403 403 403 403 403 403 403 401 401"),
                (T2, "401 403 403 403 403 403 403 403 403 403 403 403 401 401"),
            ],
        )
        .json(r#"{"checklist_item":null}"#),
        row(
            "DELETE",
            "/api/cases/{case_no}/papers/{paper_id}",
            &[
                (A, "401 204 403 403 403 403 403 403 403 403 403 403 401 401"),
                (T2, "401 403 403 403 403 403 403 403 403 403 403 403 401 401"),
            ],
        )
        .alias(&[("paper_id", "paper_rm")]),
        row(
            "GET",
            "/api/cases/{case_no}/uploads/{upload_id}",
            &[
                (A, "401 200 403 403 403 403 403 403 403 403 403 403 401 401"),
                (T2, "401 403 403 403 403 403 403 403 403 403 403 403 401 401"),
            ],
        ),
        row(
            "PUT",
            "/api/cases/{case_no}/uploads/{upload_id}",
            &[
                (A, "401 201 403 403 403 403 403 403 403 403 403 403 401 401"),
                (T2, "401 403 403 403 403 403 403 403 403 403 403 403 401 401"),
            ],
        )
        .query("?offset=0")
        .png()
        .alias(&[("upload_id", "upload_put")]),
        row(
            "DELETE",
            "/api/cases/{case_no}/uploads/{upload_id}",
            &[
                (A, "401 204 403 403 403 403 403 403 403 403 403 403 401 401"),
                (T2, "401 403 403 403 403 403 403 403 403 403 403 403 401 401"),
            ],
        )
        .alias(&[("upload_id", "upload_del")])
        .hook(Hook::NewUpload),
        row(
            "POST",
            "/api/cases/{case_no}/rescan",
            &[
                (A, "401 403 403 204 204 403 403 403 403 403 403 403 401 401"),
                (T2, "401 403 403 403 403 403 204 204 403 403 403 403 401 401"),
            ],
        )
        .json(r#"{"note":"请重拍户口簿"}"#),
        // --- Recordings: town staff of the case's town and supervisors. No recording has
        // this id: whoever is let through gets 404.
        row(
            "GET",
            "/api/cases/{case_no}/recordings",
            &[
                (A, "401 403 403 200 200 403 403 403 403 200 200 403 401 401"),
                (T2, "401 403 403 403 403 403 200 200 403 200 403 403 401 401"),
            ],
        ),
        row(
            "GET",
            "/api/cases/{case_no}/recordings/{recording_id}/archive",
            &[
                (A, "401 403 403 404 404 403 403 403 403 404 404 403 401 401"),
                (T2, "401 403 403 403 403 403 404 404 403 404 403 403 401 401"),
            ],
        ),
        row(
            "GET",
            "/api/cases/{case_no}/recordings/{recording_id}/segments/{index}",
            &[
                (A, "401 403 403 404 404 403 403 403 403 404 404 403 401 401"),
                (T2, "401 403 403 403 403 403 404 404 403 404 403 403 401 401"),
            ],
        ),
        // Group calls' media: reviewers (supervisors, chiefs) in whose scope the call is; an
        // unknown call is 404 to them.
        row(
            "GET",
            "/api/group-calls/{call}/recordings/{recording_id}/archive",
            &[(No, "401 403 403 403 404 403 403 404 403 404 404 403 401 401")],
        ),
        row(
            "GET",
            "/api/group-calls/{call}/recordings/{recording_id}/segments/{index}",
            &[(No, "401 403 403 403 404 403 403 404 403 404 404 403 401 401")],
        ),
        row("POST", "/api/playback-cookie", &[(No, "401 403 403 204 204 403 204 204 403 204 204 403 401 401")]),
        // Clearing the cookie needs nobody: it only expires it.
        row("DELETE", "/api/playback-cookie", &[(No, "204 204 204 204 204 204 204 204 204 204 204 204 204 204")]),
        // --- Legal holds: supervisors (a town's only on its town's cases) and the administrator.
        row(
            "PUT",
            "/api/cases/{case_no}/legal-hold",
            &[
                (A, "401 403 403 403 403 403 403 403 403 200 200 200 401 401"),
                (T2, "401 403 403 403 403 403 403 403 403 200 403 200 401 401"),
            ],
        )
        .json(r#"{"reason":"信访复查"}"#),
        row(
            "GET",
            "/api/cases/{case_no}/legal-hold",
            &[
                (A, "401 403 403 403 403 403 403 403 403 200 200 200 401 401"),
                (T2, "401 403 403 403 403 403 403 403 403 200 403 200 401 401"),
            ],
        ),
        row(
            "DELETE",
            "/api/cases/{case_no}/legal-hold",
            &[
                (A, "401 403 403 403 403 403 403 403 403 204 204 204 401 401"),
                (T2, "401 403 403 403 403 403 403 403 403 204 403 204 401 401"),
            ],
        )
        .json(r#"{"reason":"复查结束"}"#)
        .hook(Hook::PlaceHold),
        // --- The case's life: 放心回家 decided after the call by the approver who answered it
        // (in the other town's column: scope refuses first).
        row(
            "POST",
            "/api/cases/{case_no}/outcome",
            &[
                (A, "401 403 403 200 403 403 403 403 403 403 403 403 401 401"),
                (T2, "401 403 403 403 403 403 200 403 403 403 403 403 401 401"),
            ],
        )
        .json(r#"{"outcome":"later","note":"材料带回镇上审核"}"#),
        // Finished by the town: the approver first; the case then waits for sign-off, so the
        // chief's finish is the lifecycle's 409.
        row(
            "POST",
            "/api/cases/{case_no}/finish",
            &[
                (A, "401 403 403 200 409 403 403 403 403 403 403 403 401 401"),
                (T2, "401 403 403 403 403 403 200 409 403 403 403 403 401 401"),
            ],
        )
        .json(r#"{"note":"已审核通过","result_paper_id":{result_paper}}"#),
        row("GET", "/api/signoffs", &[(No, "401 403 403 403 200 403 403 200 403 403 403 403 401 401")]),
        row(
            "POST",
            "/api/cases/{case_no}/signoff",
            &[
                (A, "401 403 403 403 200 403 403 403 403 403 403 403 401 401"),
                (T2, "401 403 403 403 403 403 403 200 403 403 403 403 401 401"),
            ],
        )
        .json(r#"{"decision":"approve"}"#),
        row(
            "POST",
            "/api/cases/{case_no}/rating",
            &[
                (A, "401 201 403 403 403 403 403 403 403 403 403 403 401 401"),
                (T2, "401 403 403 403 403 403 403 403 403 403 403 403 401 401"),
            ],
        )
        .json(r#"{"rating":"good","comment":"不用跑镇上了"}"#),
        // --- The village inbox (the signed-off result arrived there).
        row("GET", "/api/inbox", &[(No, "401 200 200 403 403 403 403 403 403 403 403 403 401 401")]),
        row("POST", "/api/inbox/{id}/read", &[(A, "401 204 404 403 403 403 403 403 403 403 403 403 401 401")])
            .alias(&[("id", "inbox")]),
        // --- The public progress lookup: anyone with the receipt's number, code and digits.
        row("GET", "/api/progress", &[(A, "200 200 200 200 200 200 200 200 200 200 200 200 200 200")])
            .query("?case={case_no}&code={code}&phone4=1111"),
        // --- Bookings.
        // Kiosk: its village's; approver: its window's; chief: its town's; supervisors: their scope.
        row("GET", "/api/bookings", &[(No, "401 200 200 200 200 403 200 200 403 200 200 403 401 401")]),
        row("POST", "/api/bookings", &[(No, "401 201 201 403 403 403 403 403 403 403 403 403 401 401")])
            .json(r#"{"matter_id":{matter},"start_ms":{slot}}"#),
        row("GET", "/api/bookings/slots", &[(No, "401 200 200 403 403 403 403 403 403 403 403 403 401 401")])
            .query("?matter_id={matter}&date={date}"),
        // Another village's booking is not found.
        row("DELETE", "/api/bookings/{id}", &[(A, "401 204 404 403 403 403 403 403 403 403 403 403 401 401")])
            .alias(&[("id", "booking")]),
        // --- The review (supervisors, chiefs).
        row("GET", "/api/review/cases", &[(No, "401 403 403 403 200 403 403 200 403 200 200 403 401 401")]),
        row(
            "GET",
            "/api/review/cases/{case_no}",
            &[
                (A, "401 403 403 403 200 403 403 403 403 200 200 403 401 401"),
                (T2, "401 403 403 403 403 403 403 200 403 200 403 403 401 401"),
            ],
        ),
        row(
            "GET",
            "/api/review/cases/{case_no}/export",
            &[
                (A, "401 403 403 403 200 403 403 403 403 200 200 403 401 401"),
                (T2, "401 403 403 403 403 403 403 200 403 200 403 403 401 401"),
            ],
        ),
        row("GET", "/api/review/access", &[(No, "401 403 403 403 200 403 403 200 403 200 200 403 401 401")]),
        row("GET", "/api/review/public-key", &[(No, "401 403 403 403 200 403 403 200 403 200 200 403 401 401")]),
        row("GET", "/api/review/choices", &[(No, "401 403 403 403 200 403 403 200 403 200 200 403 401 401")]),
        row("GET", "/api/review/group-calls", &[(No, "401 403 403 403 200 403 403 200 403 200 200 403 401 401")]),
        row(
            "GET",
            "/api/review/group-calls/{call}",
            &[(No, "401 403 403 403 404 403 403 404 403 404 404 403 401 401")],
        ),
        // --- The village ledger: the room its own; the town's chief and supervisors in scope
        // (another town's village is not there for them: 404).
        row(
            "GET",
            "/api/ledger",
            &[
                (A, "401 200 403 403 200 403 403 404 403 200 200 403 401 401"),
                (T2, "401 403 403 403 404 403 403 200 403 200 404 403 401 401"),
            ],
        )
        .query("?village_id={village}"),
        row(
            "GET",
            "/api/ledger/export.xlsx",
            &[
                (A, "401 200 403 403 200 403 403 404 403 200 200 403 401 401"),
                (T2, "401 403 403 403 404 403 403 200 403 200 404 403 401 401"),
            ],
        )
        .query("?village_id={village}"),
        // --- Statistics (supervisors in their scope, town chiefs).
        row("GET", "/api/stats", &[(No, "401 403 403 403 200 403 403 200 403 200 200 403 401 401")]),
        row("GET", "/api/stats/export.csv", &[(No, "401 403 403 403 200 403 403 200 403 200 200 403 401 401")]),
        row("GET", "/api/stats/export.xlsx", &[(No, "401 403 403 403 200 403 403 200 403 200 200 403 401 401")]),
        // --- Accounts and kiosk devices (the administrator), on throwaway ones.
        row("GET", "/api/admin/users", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")]),
        row("POST", "/api/admin/users", &[(No, "401 403 403 403 403 403 403 403 403 403 403 201 401 401")])
            .json(r#"{"username":"matrix-new","display_name":"矩阵新人","role":"supervisor"}"#),
        row("PUT", "/api/admin/users/{id}", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_user")])
            .json(r#"{"display_name":"矩阵人","role":"supervisor"}"#),
        row("POST", "/api/admin/users/{id}/disable", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_user")]),
        row("POST", "/api/admin/users/{id}/enable", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_user")]),
        row("POST", "/api/admin/users/{id}/password-reset", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_user")]),
        row("DELETE", "/api/admin/users/{id}", &[(No, "401 403 403 403 403 403 403 403 403 403 403 204 401 401")])
            .alias(&[("id", "adm_user")]),
        row("GET", "/api/admin/kiosks", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")]),
        row("POST", "/api/admin/kiosks", &[(No, "401 403 403 403 403 403 403 403 403 403 403 201 401 401")])
            .json(r#"{"village_id":{kiosk_village},"name":"矩阵新设备"}"#),
        row("PUT", "/api/admin/kiosks/{id}", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_kiosk")])
            .json(r#"{"name":"矩阵设备"}"#),
        row("POST", "/api/admin/kiosks/{id}/disable", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_kiosk")]),
        row("POST", "/api/admin/kiosks/{id}/enable", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_kiosk")]),
        row("POST", "/api/admin/kiosks/{id}/enrolment", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_kiosk")]),
        row("POST", "/api/admin/kiosks/{id}/revoke", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_kiosk")]),
        row("DELETE", "/api/admin/kiosks/{id}", &[(No, "401 403 403 403 403 403 403 403 403 403 403 204 401 401")])
            .alias(&[("id", "adm_kiosk")]),
        // Enrolment is anonymous: a wrong code is refused whoever asks.
        row("POST", "/api/enrol", &[(No, "400 400 400 400 400 400 400 400 400 400 400 400 400 400")])
            .json(r#"{"code":"0000-0000"}"#),
        // Staff change their own password (the old one must be right).
        row("POST", "/api/password", &[(No, "401 403 403 400 400 400 400 400 400 400 400 400 401 401")])
            .json(r#"{"old_password":"not-the-password","new_password":"another-password-1"}"#),
        // Rotation: a fresh token for the one asking (the matrix goes on with it).
        row("POST", "/api/session/rotate", &[(No, "401 403 403 200 200 200 200 200 200 200 200 200 401 401")])
            .hook(Hook::ReplaceToken),
        row("POST", "/api/kiosk/token", &[(No, "401 200 200 403 403 403 403 403 403 403 403 403 401 401")])
            .hook(Hook::ReplaceToken),
        // --- Administration (the county administrator only), on throwaway items made for the
        // matrix (the demo region stays as it is); deletes come last, the town's after its own.
        row("GET", "/api/admin/region", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")]),
        row("GET", "/api/admin/changes", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")]),
        row("POST", "/api/admin/towns", &[(No, "401 403 403 403 403 403 403 403 403 403 403 201 401 401")])
            .json(r#"{"name":"矩阵新镇"}"#),
        row("PUT", "/api/admin/towns/{id}", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_town")])
            .json(r#"{"name":"矩阵测试镇","any_window":true}"#),
        row("POST", "/api/admin/villages", &[(No, "401 403 403 403 403 403 403 403 403 403 403 201 401 401")])
            .json(r#"{"town_id":{adm_town},"name":"矩阵新村"}"#),
        row("PUT", "/api/admin/villages/{id}", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_village")])
            .json(r#"{"name":"矩阵测试村","kind":"community"}"#),
        row("POST", "/api/admin/windows", &[(No, "401 403 403 403 403 403 403 403 403 403 403 201 401 401")])
            .json(r#"{"town_id":{adm_town},"name":"矩阵新窗口","kind":"custom","derive_matters":false,"matter_ids":[]}"#),
        row("PUT", "/api/admin/windows/{id}", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_window")])
            .json(r#"{"name":"矩阵测试窗口","kind":"custom","derive_matters":false,"matter_ids":[{adm_matter}]}"#),
        row("POST", "/api/admin/matters", &[(No, "401 403 403 403 403 403 403 403 403 403 403 201 401 401")])
            .json(r#"{"code":"MATRIX-NEW","name":"矩阵新事项","plain_name":"新事项","window_kind":"custom"}"#),
        row("PUT", "/api/admin/matters/{id}", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_matter")])
            .json(r#"{"code":"MATRIX-1","name":"矩阵测试事项","plain_name":"测试事项","window_kind":"custom","keywords":["矩阵"]}"#),
        row("POST", "/api/admin/towns/{id}/disable", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_town")]),
        row("POST", "/api/admin/towns/{id}/enable", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_town")]),
        row("POST", "/api/admin/villages/{id}/disable", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_village")]),
        row("POST", "/api/admin/villages/{id}/enable", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_village")]),
        row("POST", "/api/admin/windows/{id}/disable", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_window")]),
        row("POST", "/api/admin/windows/{id}/enable", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_window")]),
        row("POST", "/api/admin/matters/{id}/disable", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_matter")]),
        row("POST", "/api/admin/matters/{id}/enable", &[(No, "401 403 403 403 403 403 403 403 403 403 403 200 401 401")])
            .alias(&[("id", "adm_matter")]),
        row("DELETE", "/api/admin/matters/{id}", &[(No, "401 403 403 403 403 403 403 403 403 403 403 204 401 401")])
            .alias(&[("id", "adm_matter")]),
        row("DELETE", "/api/admin/windows/{id}", &[(No, "401 403 403 403 403 403 403 403 403 403 403 204 401 401")])
            .alias(&[("id", "adm_window")]),
        row("DELETE", "/api/admin/villages/{id}", &[(No, "401 403 403 403 403 403 403 403 403 403 403 204 401 401")])
            .alias(&[("id", "adm_village")]),
        // The town still has the village and window the create rows made: in use.
        row("DELETE", "/api/admin/towns/{id}", &[(No, "401 403 403 403 403 403 403 403 403 403 403 409 401 401")])
            .alias(&[("id", "adm_town")]),
    ]
}

/// Objects of a WebSocket message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WsFx {
    /// The principal's own (a kiosk's own call, its own open case).
    Own,
    /// Someone else's: the waiting call of a third village of town 1, the group call
    /// dispatcher 1 opened to it, village B's open case.
    Other,
}

/// What a message row needs around each message.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WsHook {
    None,
    /// An accepted `call.request` queued a call: cancel it.
    CancelOwnCall,
    /// Before: a kiosk asks for a call first (whose id `{own_call}` names).
    RequestOwnCall,
    /// An accepted `group.start` opened a group call: it is the fixture `group_g`.
    KeepGroup,
    /// The fixture group call was ended: open another.
    ReopenGroup,
    /// The approver answered call W: he hangs up and the village asks again (a new W).
    HangUpAndRequeue,
}

struct WsRow {
    ty: &'static str,
    /// The message, with `{placeholders}`.
    sample: &'static str,
    hook: WsHook,
    /// Expected answer per principal: `ok`, an error code, or `refused` (at hello: an
    /// `unauthorized` error and close 4401).
    cells: &'static [(WsFx, &'static str)],
}

const fn ws(ty: &'static str, sample: &'static str, hook: WsHook, cells: &'static [(WsFx, &'static str)]) -> WsRow {
    WsRow { ty, sample, hook, cells }
}

/// The WebSocket matrix. Columns as [`http_rows`].
fn ws_rows() -> Vec<WsRow> {
    use WsFx::{Other, Own};
    use WsHook as H;
    // Group call G invites village C only: villages A and B are no members (and staff never
    // answer invitations).
    const FORBIDDEN_TO_ALL: &str = "refused forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden refused refused";
    vec![
        // A second hello on a live socket is a protocol error; a first one with a bad,
        // disabled or expired token is refused.
        ws(
            "hello",
            r#"{"type":"hello","token":"{token}"}"#,
            H::None,
            &[(
                Own,
                "refused bad_message bad_message bad_message bad_message bad_message bad_message bad_message bad_message bad_message bad_message bad_message refused refused",
            )],
        ),
        ws("ping", r#"{"type":"ping"}"#, H::None, &[(Own, "refused ok ok ok ok ok ok ok ok ok ok ok refused refused")]),
        ws(
            "call.request",
            r#"{"type":"call.request","matter_id":{matter}}"#,
            H::CancelOwnCall,
            &[(
                Own,
                "refused ok ok forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden refused refused",
            )],
        ),
        // Resuming a case: only the village's own.
        ws(
            "call.request",
            r#"{"type":"call.request","matter_id":{matter},"case_no":"{case_b}"}"#,
            H::CancelOwnCall,
            &[(
                Other,
                "refused forbidden ok forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden refused refused",
            )],
        ),
        ws(
            "call.cancel",
            r#"{"type":"call.cancel","call_id":{own_call}}"#,
            H::RequestOwnCall,
            &[(
                Own,
                "refused ok ok forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden refused refused",
            )],
        ),
        ws(
            "call.cancel",
            r#"{"type":"call.cancel","call_id":{call_w}}"#,
            H::None,
            &[(
                Other,
                "refused forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden refused refused",
            )],
        ),
        ws(
            "call.hangup",
            r#"{"type":"call.hangup","call_id":{call_w}}"#,
            H::None,
            &[(
                Other,
                "refused forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden refused refused",
            )],
        ),
        // Its window's approver may take a waiting call from the queue (then hangs up, and
        // the village asks again); another town's may not.
        ws(
            "call.answer",
            r#"{"type":"call.answer","call_id":{call_w}}"#,
            H::HangUpAndRequeue,
            &[(
                Other,
                "refused forbidden forbidden ok forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden refused refused",
            )],
        ),
        ws(
            "call.transfer",
            r#"{"type":"call.transfer","call_id":{call_w},"window_id":{window_1b}}"#,
            H::None,
            &[(
                Other,
                "refused forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden refused refused",
            )],
        ),
        ws(
            "presence.set",
            r#"{"type":"presence.set","presence":"away"}"#,
            H::None,
            &[(
                Own,
                "refused forbidden forbidden ok forbidden forbidden ok forbidden forbidden forbidden forbidden forbidden refused refused",
            )],
        ),
        // A dispatcher calls the villages of his own town only.
        ws(
            "group.start",
            r#"{"type":"group.start","village_ids":[{village_c}]}"#,
            H::KeepGroup,
            &[(
                Own,
                "refused forbidden forbidden forbidden forbidden ok forbidden forbidden forbidden forbidden forbidden forbidden refused refused",
            )],
        ),
        ws("group.accept", r#"{"type":"group.accept","group_id":{group_g}}"#, H::None, &[(Other, FORBIDDEN_TO_ALL)]),
        ws("group.decline", r#"{"type":"group.decline","group_id":{group_g}}"#, H::None, &[(Other, FORBIDDEN_TO_ALL)]),
        ws("group.leave", r#"{"type":"group.leave","group_id":{group_g}}"#, H::None, &[(Other, FORBIDDEN_TO_ALL)]),
        ws(
            "group.reinvite",
            r#"{"type":"group.reinvite","group_id":{group_g},"village_id":{village_c}}"#,
            H::None,
            &[(
                Other,
                "refused forbidden forbidden forbidden forbidden conflict forbidden forbidden forbidden forbidden forbidden forbidden refused refused",
            )],
        ),
        // Media only inside one's own call or group.
        ws(
            "media.offer",
            r#"{"type":"media.offer","room":"call:{call_w}","pc_id":"p1","sdp":"v=0"}"#,
            H::None,
            &[(
                Other,
                "refused forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden forbidden refused refused",
            )],
        ),
        ws(
            "group.end",
            r#"{"type":"group.end","group_id":{group_g}}"#,
            H::ReopenGroup,
            &[(
                Other,
                "refused forbidden forbidden forbidden forbidden ok forbidden forbidden forbidden forbidden forbidden forbidden refused refused",
            )],
        ),
    ]
}

/// Fixture values by (name, fixture); a name without a value for a fixture falls back to
/// its `No` value.
struct Fixtures {
    values: HashMap<(String, Fx), String>,
    /// Free booking slots (start ms), one taken per use of `{slot}`.
    slots: Vec<u64>,
}

impl Fixtures {
    fn set(&mut self, name: &str, fx: Fx, value: impl ToString) {
        self.values.insert((name.to_string(), fx), value.to_string());
    }

    fn get(&mut self, name: &str, fx: Fx) -> Result<String> {
        if name == "slot" {
            return self.slots.pop().map(|s| s.to_string()).context("no free booking slot left");
        }
        self.values
            .get(&(name.to_string(), fx))
            .or_else(|| self.values.get(&(name.to_string(), Fx::No)))
            .cloned()
            .with_context(|| format!("no fixture `{name}` for {fx:?}"))
    }

    /// `template` with every `{name}` replaced (names mapped through `alias`).
    fn fill(&mut self, template: &str, fx: Fx, alias: &[(&str, &str)]) -> Result<String> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find('{') {
            let Some(len) = rest[start..].find('}') else { break };
            let name = &rest[start + 1..start + len];
            // JSON braces are not placeholders: names are words.
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '*') {
                out.push_str(&rest[..=start]);
                rest = &rest[start + 1..];
                continue;
            }
            let key = alias.iter().find(|(from, _)| *from == name).map_or(name, |(_, to)| *to);
            out.push_str(&rest[..start]);
            out.push_str(&self.get(key, fx)?);
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn expected<'a>(cells: &'a str, what: &str) -> Vec<&'a str> {
    let v: Vec<&str> = cells.split_whitespace().collect();
    assert_eq!(v.len(), WHO.len(), "{what}: {} cells for {} principals", v.len(), WHO.len());
    v
}

/// (method, path) pairs.
type Routes = BTreeSet<(String, String)>;

/// `cunneng routes --json`: the router's table and the message types.
fn binary_table() -> Result<(Routes, BTreeSet<String>)> {
    let out = std::process::Command::new(binary_path()).args(["routes", "--json"]).output()?;
    if !out.status.success() {
        bail!("cunneng routes --json: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let routes = v["routes"]
        .as_array()
        .context("routes")?
        .iter()
        .map(|r| {
            Ok((r["method"].as_str().context("method")?.to_string(), r["path"].as_str().context("path")?.to_string()))
        })
        .collect::<Result<BTreeSet<_>>>()?;
    let types = v["ws_messages"]
        .as_array()
        .context("ws_messages")?
        .iter()
        .map(|t| t.as_str().map(str::to_string).context("type"))
        .collect::<Result<BTreeSet<_>>>()?;
    Ok((routes, types))
}

/// The principals' tokens (`None`: anonymous).
struct Principals {
    tokens: Vec<Option<String>>,
    /// Whether the disabled account could be made (the administration's route exists).
    disabled_ready: bool,
}

impl Principals {
    fn token(&self, i: usize) -> Option<&str> {
        self.tokens[i].as_deref()
    }
}

fn staff_user(i: usize) -> Option<&'static str> {
    STAFF.iter().find(|(j, _)| *j == i).map(|(_, u)| *u)
}

fn kiosk_token(server: &Server, name: &str) -> Result<String> {
    server
        .links("kiosk")
        .into_iter()
        .find(|l| l.name == name)
        .and_then(|l| l.fragment_param("token"))
        .with_context(|| format!("no demo kiosk {name}"))
}

async fn send(
    server: &Server,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
    json: bool,
) -> Result<(u16, String)> {
    let method = reqwest::Method::from_bytes(method.as_bytes())?;
    let mut req = http().request(method, format!("{}{url}", server.base_url));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        let ct = if json { "application/json" } else { "application/octet-stream" };
        req = req.header("content-type", ct).body(b);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    Ok((status, text.chars().take(200).collect()))
}

#[tokio::test]
async fn every_route_and_message_is_authorized_as_the_matrix_says() -> Result<()> {
    let started = std::time::Instant::now();
    // Every principal asks for progress (and logs in one account) from this machine; the
    // limits are not the subject.
    let server = Server::start_with_env(
        &["--demo"],
        &[
            ("CUNNENG_LIMITS__PROGRESS_BURST", "1000"),
            ("CUNNENG_LIMITS__PROGRESS_CASE_BURST", "1000"),
            ("CUNNENG_LIMITS__PROGRESS_KIOSK_BURST", "1000"),
            ("CUNNENG_LIMITS__LOGIN_ACCOUNT_BURST", "1000"),
            ("CUNNENG_LIMITS__ENROL_BURST", "1000"),
        ],
    )
    .await?;

    // (a) The matrix has a row for every route and message type of the binary, and no other.
    let (routes, types) = binary_table()?;
    let rows = http_rows();
    let ws = ws_rows();
    let mut problems = Vec::new();
    let in_matrix: BTreeSet<(String, String)> =
        rows.iter().map(|r| (r.method.to_string(), r.path.to_string())).collect();
    assert_eq!(in_matrix.len(), rows.len(), "a route has two rows in the matrix");
    for (m, p) in routes.difference(&in_matrix) {
        problems.push(format!("route {m} {p} has no row in the authorization matrix"));
    }
    for (m, p) in in_matrix.difference(&routes) {
        problems.push(format!("the matrix has a row for {m} {p}, which the router does not serve"));
    }
    let ws_in_matrix: BTreeSet<String> = ws.iter().map(|r| r.ty.to_string()).collect();
    for t in types.difference(&ws_in_matrix) {
        problems.push(format!("WebSocket message type {t} has no row in the authorization matrix"));
    }
    for t in ws_in_matrix.difference(&types) {
        problems.push(format!("the matrix has a row for message type {t}, which the server does not know"));
    }
    assert!(problems.is_empty(), "the matrix and the router disagree:\n{}", problems.join("\n"));

    // Principals.
    let mut tokens: Vec<Option<String>> = vec![None; WHO.len()];
    tokens[KIOSK_A] = Some(kiosk_token(&server, "松宁村便民服务室")?);
    tokens[2] = Some(kiosk_token(&server, "大朝村便民服务室")?);
    for (i, user) in STAFF {
        tokens[i] = Some(login(&server, user, PASSWORD).await?);
    }
    // The expired session: valid until its expiry is set in the past behind the server's back.
    let token = login(&server, EXPIRED_USER, PASSWORD).await?;
    {
        let db = rusqlite::Connection::open(server.data_dir().join("cunneng.sqlite3"))?;
        db.busy_timeout(Duration::from_secs(5))?;
        let n = db.execute(
            "UPDATE sessions SET expires_at_ms = 1 WHERE user_id = (SELECT id FROM users WHERE username = ?1)",
            [EXPIRED_USER],
        )?;
        anyhow::ensure!(n == 1, "expected one session of {EXPIRED_USER}, found {n}");
    }
    tokens[EXPIRED] = Some(token);
    let disabled_ready = routes.contains(&(DISABLE_ROUTE.0.to_string(), DISABLE_ROUTE.1.to_string()));
    let mut who = Principals { tokens, disabled_ready };

    let mut fx = fixtures(&server, &who).await?;
    // The disabled account: a live session of an account the administrator then disables
    // (after the fixtures, which log every approver in).
    if disabled_ready {
        let token = login(&server, DISABLED_USER, PASSWORD).await?;
        let (_, me) = get_json(&server, "/api/me", Some(&token)).await?;
        let id = me["id"].as_i64().context("disabled user's id")?;
        let admin = Api::new(&server, who.token(ADMIN).unwrap_or_default());
        let (status, body) = admin.post(&format!("/api/admin/users/{id}/disable"), json!({})).await?;
        anyhow::ensure!(status == 200, "disabling {DISABLED_USER}: {status} {body}");
        who.tokens[DISABLED] = Some(token);
    } else {
        eprintln!(
            "NOT CHECKED: the `disabled` column (no {} {} route yet: accounts cannot be disabled); \
             it is checked as soon as the route exists",
            DISABLE_ROUTE.0, DISABLE_ROUTE.1
        );
    }
    eprintln!("fixtures ready after {:?}", started.elapsed());

    // (b) Every route × principal × fixture.
    let mut mismatches = Vec::new();
    for row in &rows {
        if row.alias.iter().any(|(_, to)| *to == "inbox") {
            inbox_item(&server, &who, &mut fx).await?;
        }
        for (f, cells) in row.cells {
            let want = expected(cells, &format!("{} {} {f:?}", row.method, row.path));
            for (i, want) in want.iter().enumerate() {
                if i == DISABLED && !who.disabled_ready {
                    continue;
                }
                if row.hook == Hook::PlaceHold {
                    let path = fx.fill(row.path, *f, row.alias)?;
                    let admin = Api::new(&server, who.token(ADMIN).unwrap_or_default());
                    let (st, body) = admin.put(&path, json!({"reason": "复查"})).await?;
                    anyhow::ensure!(st == 200, "placing a hold on {path}: {st} {body}");
                }
                let url = fx.fill(&format!("{}{}", row.path, row.query), *f, row.alias)?;
                let body = match row.body {
                    Body::None => None,
                    Body::Json(b) => Some(fx.fill(b, *f, row.alias)?.into_bytes()),
                    Body::Png => Some(png(2000)),
                };
                let json = matches!(row.body, Body::Json(_));
                let (status, text) = send(&server, row.method, &url, who.token(i), body, json).await?;
                if status.to_string() != *want {
                    mismatches.push(format!(
                        "{} {} [{f:?}] as {}: expected {want}, got {status} {text}",
                        row.method, url, WHO[i]
                    ));
                }
                if row.hook == Hook::NewUpload && (200..300).contains(&status) {
                    let kiosk = Api::new(&server, &fx.get("kiosk_token", *f)?);
                    let case_no = fx.get("case_no", *f)?;
                    let (st, body) = kiosk.start_upload(&case_no, json!({"name": "again.png", "size": 2000})).await?;
                    anyhow::ensure!(st == 201, "starting an upload: {st} {body}");
                    let id = body["url"].as_str().and_then(|u| u.rsplit('/').next()).context("upload url")?;
                    fx.set("upload_del", *f, id);
                }
                if row.hook == Hook::ReplaceToken
                    && (200..300).contains(&status)
                    && let Some(token) = serde_json::from_str::<Value>(&text)?["token"].as_str()
                {
                    who.tokens[i] = Some(token.to_string());
                }
                if row.hook == Hook::Relogin
                    && (200..300).contains(&status)
                    && let Some(user) = staff_user(i)
                {
                    who.tokens[i] = Some(login(&server, user, PASSWORD).await?);
                }
            }
        }
    }
    eprintln!("HTTP matrix done after {:?}", started.elapsed());

    // (c) Every message type × principal.
    ws_matrix(&server, &who, &mut fx, &ws, &mut mismatches).await?;
    eprintln!("WebSocket matrix done after {:?}", started.elapsed());

    assert!(
        mismatches.is_empty(),
        "{} cells of the authorization matrix differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    Ok(())
}

/// A case of `s`'s kiosk through a call its approver answers: the villager entered, two
/// scans (one to keep, one to take back), three uploads begun, a result paper from the
/// window; the kiosk hangs up with nothing decided.
async fn case_through_a_call(server: &Server, s: &CaseSetup, fx: &mut Fixtures, f: Fx) -> Result<()> {
    let kiosk = Api::new(server, &s.kiosk.token);
    let window = Api::new(server, &s.approver.token);
    let (mut k, mut w, id) = call(server, s, None).await?;
    let started = answer_call(&mut k, &mut w, id).await?;
    let case_no = started["case_no"].as_str().context("case_no")?.to_string();
    let (st, body) =
        kiosk.put(&format!("/api/cases/{case_no}/villager"), json!({"name": "王大妈", "phone": "13900001111"})).await?;
    anyhow::ensure!(st == 200, "villager: {st} {body}");
    let paper = kiosk.upload(&case_no, "身份证.png", &png(3000), None, "scan", 64 * 1024).await?;
    let paper_rm = kiosk.upload(&case_no, "拍错了.png", &png(3000), None, "scan", 64 * 1024).await?;
    for name in ["upload_id", "upload_put", "upload_del"] {
        let (st, body) = kiosk.start_upload(&case_no, json!({"name": format!("{name}.png"), "size": 2000})).await?;
        anyhow::ensure!(st == 201, "starting an upload: {st} {body}");
        let upload_id = body["url"].as_str().and_then(|u| u.rsplit('/').next()).context("upload url")?.to_string();
        fx.set(name, f, upload_id);
    }
    let result = window.upload(&case_no, "审核意见.png", &png(3000), None, "result", 64 * 1024).await?;
    hang_up(&mut k, &mut w, id).await?;
    k.close().await;
    w.close().await;
    fx.set("case_no", f, &case_no);
    fx.set("kiosk_token", f, &s.kiosk.token);
    fx.set("paper_id", f, paper["id"].as_i64().context("paper id")?);
    fx.set("paper_rm", f, paper_rm["id"].as_i64().context("paper id")?);
    fx.set("result_paper", f, result["id"].as_i64().context("paper id")?);
    fx.set("code", f, lookup_code(server, &case_no)?);
    Ok(())
}

async fn fixtures(server: &Server, who: &Principals) -> Result<Fixtures> {
    let mut fx = Fixtures { values: HashMap::new(), slots: Vec::new() };
    // Village A's case (town 1) and a case of town 2, each through a call.
    let a = setup(server, 0, true).await?;
    anyhow::ensure!(a.kiosk.token == who.token(KIOSK_A).unwrap_or_default(), "demo kiosk 0 is not village A's");
    let t2 = {
        let kiosks = cunneng_tests::client::demo_kiosks(server).await?;
        let nth = kiosks.iter().position(|k| k.town_id() != a.kiosk.town_id()).context("a kiosk of town 2")?;
        setup(server, nth, true).await?
    };
    case_through_a_call(server, &a, &mut fx, Fx::A).await?;
    case_through_a_call(server, &t2, &mut fx, Fx::T2).await?;
    fx.set("village", Fx::A, a.kiosk.village_id().context("village A")?);
    fx.set("village", Fx::T2, t2.kiosk.village_id().context("a village of town 2")?);
    fx.set("matter", Fx::No, a.matter_id);
    fx.set("*path", Fx::No, "app.css");
    fx.set("recording_id", Fx::No, 999_999);
    fx.set("index", Fx::No, 0);
    fx.set("call", Fx::No, "999999-1");

    // Booking slots: the free ones of the next days that have any.
    let kiosk_a = Api::new(server, who.token(KIOSK_A).unwrap_or_default());
    let today = time::OffsetDateTime::now_utc().to_offset(time::UtcOffset::from_hms(8, 0, 0)?).date();
    for days in 1..=14 {
        let date = today + time::Duration::days(days);
        let date = format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day());
        let (st, body) = kiosk_a.get(&format!("/api/bookings/slots?matter_id={}&date={date}", a.matter_id)).await?;
        anyhow::ensure!(st == 200, "slots: {st} {body}");
        let free: Vec<u64> = body["slots"]
            .as_array()
            .context("slots")?
            .iter()
            .filter(|s| s["free"] == true)
            .filter_map(|s| s["start_ms"].as_u64())
            .collect();
        if !free.is_empty() && !fx.values.contains_key(&("date".to_string(), Fx::No)) {
            fx.set("date", Fx::No, &date);
        }
        fx.slots.extend(free);
        if fx.slots.len() > 20 {
            break;
        }
    }
    let slot = fx.get("slot", Fx::No)?;
    let (st, booking) =
        kiosk_a.post("/api/bookings", json!({"matter_id": a.matter_id, "start_ms": slot.parse::<u64>()?})).await?;
    anyhow::ensure!(st == 201, "booking: {st} {booking}");
    fx.set("booking", Fx::A, booking["id"].as_i64().context("booking id")?);

    // Throwaway region items for the administration rows.
    let admin = Api::new(server, who.token(ADMIN).unwrap_or_default());
    let (st, town) = admin.post("/api/admin/towns", json!({"name": "矩阵镇"})).await?;
    anyhow::ensure!(st == 201, "admin town: {st} {town}");
    let town_id = town["id"].as_i64().context("town id")?;
    let (st, village) = admin.post("/api/admin/villages", json!({"town_id": town_id, "name": "矩阵村"})).await?;
    anyhow::ensure!(st == 201, "admin village: {st} {village}");
    let (st, matter) = admin
        .post(
            "/api/admin/matters",
            json!({"code": "MATRIX-1", "name": "矩阵事项", "plain_name": "矩阵", "window_kind": "custom"}),
        )
        .await?;
    anyhow::ensure!(st == 201, "admin matter: {st} {matter}");
    let (st, window) = admin
        .post(
            "/api/admin/windows",
            json!({"town_id": town_id, "name": "矩阵窗口", "kind": "custom", "derive_matters": false}),
        )
        .await?;
    anyhow::ensure!(st == 201, "admin window: {st} {window}");
    fx.set("adm_town", Fx::No, town_id);
    fx.set("adm_village", Fx::No, village["id"].as_i64().context("village id")?);
    fx.set("adm_matter", Fx::No, matter["id"].as_i64().context("matter id")?);
    fx.set("adm_window", Fx::No, window["id"].as_i64().context("window id")?);
    let (st, user) = admin
        .post("/api/admin/users", json!({"username": "matrix-user", "display_name": "矩阵账号", "role": "supervisor"}))
        .await?;
    anyhow::ensure!(st == 201, "admin user: {st} {user}");
    fx.set("adm_user", Fx::No, user["user"]["id"].as_i64().context("user id")?);
    let village = a.kiosk.village_id().context("village A")?;
    fx.set("kiosk_village", Fx::No, village);
    let (st, kiosk) = admin.post("/api/admin/kiosks", json!({"village_id": village, "name": "矩阵设备甲"})).await?;
    anyhow::ensure!(st == 201, "admin kiosk: {st} {kiosk}");
    fx.set("adm_kiosk", Fx::No, kiosk["id"].as_i64().context("kiosk id")?);
    Ok(fx)
}

/// The item the signed-off result left in village A's inbox (the rows before made it).
async fn inbox_item(server: &Server, who: &Principals, fx: &mut Fixtures) -> Result<()> {
    let (st, items) = get_json(server, "/api/inbox", who.token(KIOSK_A)).await?;
    anyhow::ensure!(st == 200, "village A's inbox: {st} {items}");
    let id = items.as_array().and_then(|a| a.first()).and_then(|i| i["id"].as_i64());
    if id.is_none() {
        // The rows before went wrong (their mismatches say how); the inbox row will too.
        eprintln!("village A's inbox is empty: {items}");
    }
    fx.set("inbox", Fx::A, id.unwrap_or(0));
    Ok(())
}

/// The answer to the message with `req`: `ok` (an `ok` or `pong`), or the error's code;
/// other messages meanwhile are returned beside it.
async fn answer(ws: &mut WsClient, req: u64) -> Result<(String, Vec<Value>)> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = ws.next(left).await.with_context(|| format!("no answer to req {req}; seen {seen:?}"))?;
        if m["req"] == json!(req) {
            return Ok(match m["type"].as_str() {
                Some("ok" | "pong") => ("ok".to_string(), seen),
                Some("error") => (m["code"].as_str().unwrap_or("error").to_string(), seen),
                _ => bail!("unexpected answer {m}"),
            });
        }
        seen.push(m);
    }
}

/// Wait for a message of type `ty` among `seen` or the next ones.
async fn find(ws: &mut WsClient, seen: Vec<Value>, ty: &str) -> Result<Value> {
    if let Some(m) = seen.into_iter().find(|m| m["type"] == ty) {
        return Ok(m);
    }
    ws.expect(ty).await
}

/// A socket that may not be used: anonymous (the message is its first frame), or a hello
/// with a disabled or expired token. `refused` if the server answers `unauthorized` and
/// closes with 4401.
async fn refused_socket(server: &Server, token: Option<&str>, first: Value) -> Result<String> {
    let mut ws = WsClient::connect_raw(server).await?;
    match token {
        Some(t) => ws.send(json!({"type": "hello", "token": t})).await?,
        None => ws.send(first).await?,
    }
    let m = ws.next(STEP).await?;
    if m["type"] == "welcome" {
        return Ok("welcome".into());
    }
    let code = m["code"].as_str().unwrap_or_default().to_string();
    let close = ws.closed().await?;
    Ok(if code == "unauthorized" && close == Some(4401) {
        "refused".into()
    } else {
        format!("{code} (close {close:?})")
    })
}

async fn ws_matrix(
    server: &Server,
    who: &Principals,
    fx: &mut Fixtures,
    rows: &[WsRow],
    mismatches: &mut Vec<String>,
) -> Result<()> {
    // One socket per principal that may have one.
    let mut sockets: HashMap<usize, WsClient> = HashMap::new();
    for (i, name) in WHO.iter().enumerate().take(ADMIN + 1).skip(1) {
        let token = who.token(i).context("token")?;
        sockets.insert(i, WsClient::connect(server, token).await.with_context(|| name.to_string())?);
    }
    let mut req = 100;
    // Nobody is rung: both towns' approvers are away.
    for i in [3, 6] {
        req += 1;
        let ws = sockets.get_mut(&i).context("approver")?;
        ws.send(json!({"type": "presence.set", "presence": "away", "req": req})).await?;
        anyhow::ensure!(answer(ws, req).await?.0 == "ok", "presence");
    }
    // A third village of town 1 waits in the queue (call W; the `group.start` row invites it to
    // dispatcher 1's group call G); village B prepared a case of its own.
    let kiosk_c_token = kiosk_token(server, "古城社区便民服务室")?;
    let (_, me_c) = get_json(server, "/api/me", Some(&kiosk_c_token)).await?;
    fx.set("village_c", Fx::No, me_c["village"]["id"].as_i64().context("village C")?);
    let mut kiosk_c = WsClient::connect(server, &kiosk_c_token).await?;
    let matter = fx.get("matter", Fx::No)?;
    kiosk_c.send(json!({"type": "call.request", "matter_id": matter.parse::<i64>()?})).await?;
    let pos = kiosk_c.expect("queue.position").await?;
    fx.set("call_w", Fx::No, pos["call_id"].as_u64().context("call id")?);
    let (_, windows) = get_json(server, "/api/windows", who.token(3)).await?;
    let own_window = sockets[&3].welcome["me"]["window"]["id"].as_i64();
    let other_window = windows
        .as_array()
        .context("windows")?
        .iter()
        .filter_map(|w| w["id"].as_i64())
        .find(|id| Some(*id) != own_window)
        .context("a second window in town 1")?;
    fx.set("window_1b", Fx::No, other_window);
    let (st, case_b) = Api::new(server, who.token(2).unwrap_or_default())
        .post("/api/cases", json!({"matter_id": matter.parse::<i64>()?}))
        .await?;
    anyhow::ensure!(st == 201, "village B's case: {st} {case_b}");
    fx.set("case_b", Fx::No, case_b["case_no"].as_str().context("case_no")?);

    for row in rows {
        for (f, cells) in row.cells {
            let want = expected(cells, &format!("{} {f:?}", row.ty));
            for (i, want) in want.iter().enumerate() {
                if i == DISABLED && !who.disabled_ready {
                    continue;
                }
                let fixture = if *f == WsFx::Own { Fx::A } else { Fx::No };
                let got = if i == ANON || i == DISABLED || i == EXPIRED {
                    fx.set("token", Fx::No, if i == ANON { "not-a-token" } else { "" });
                    let first: Value = serde_json::from_str(&fx.fill(row.sample, fixture, &[])?)?;
                    refused_socket(server, if i == ANON { None } else { who.token(i) }, first).await?
                } else {
                    let ws = sockets.get_mut(&i).context("socket")?;
                    fx.set("token", Fx::No, who.token(i).unwrap_or_default());
                    let mut own_call = None;
                    if row.hook == WsHook::RequestOwnCall && (i == 1 || i == 2) {
                        req += 1;
                        ws.send(json!({"type": "call.request", "matter_id": matter.parse::<i64>()?, "req": req}))
                            .await?;
                        let (code, seen) = answer(ws, req).await?;
                        anyhow::ensure!(code == "ok", "{} could not ask for a call: {code}", WHO[i]);
                        let pos = find(ws, seen, "queue.position").await?;
                        own_call = pos["call_id"].as_u64();
                    }
                    let own_call = match own_call {
                        Some(c) => c.to_string(),
                        None => fx.get("call_w", Fx::No)?,
                    };
                    fx.set("own_call", Fx::No, own_call);
                    let mut msg: Value = serde_json::from_str(&fx.fill(row.sample, fixture, &[])?)?;
                    req += 1;
                    msg["req"] = json!(req);
                    ws.send(msg).await?;
                    let (code, seen) = answer(ws, req).await?;
                    if code == "ok" {
                        match row.hook {
                            WsHook::CancelOwnCall => {
                                let pos = find(ws, seen, "queue.position").await?;
                                req += 1;
                                ws.send(json!({"type": "call.cancel", "call_id": pos["call_id"], "req": req})).await?;
                                anyhow::ensure!(answer(ws, req).await?.0 == "ok", "cancelling {}'s call", WHO[i]);
                            }
                            WsHook::KeepGroup => {
                                let state = find(ws, seen, "group.state").await?;
                                fx.set("group_g", Fx::No, state["group_id"].as_u64().context("group id")?);
                            }
                            WsHook::ReopenGroup => open_group(ws, fx, &mut req).await?,
                            WsHook::HangUpAndRequeue => {
                                let call_w = fx.get("call_w", Fx::No)?.parse::<u64>()?;
                                req += 1;
                                ws.send(json!({"type": "call.hangup", "call_id": call_w, "req": req})).await?;
                                anyhow::ensure!(answer(ws, req).await?.0 == "ok", "hanging up call W");
                                kiosk_c.expect_where("call.ended", |m| m["call_id"] == call_w).await?;
                                kiosk_c
                                    .send(json!({"type": "call.request", "matter_id": matter.parse::<i64>()?}))
                                    .await?;
                                let pos = kiosk_c.expect("queue.position").await?;
                                fx.set("call_w", Fx::No, pos["call_id"].as_u64().context("call id")?);
                            }
                            WsHook::None | WsHook::RequestOwnCall => {}
                        }
                    }
                    code
                };
                if got != *want {
                    mismatches.push(format!("WS {} [{f:?}] as {}: expected {want}, got {got}", row.ty, WHO[i]));
                }
            }
        }
    }
    kiosk_c.close().await;
    for (_, ws) in sockets {
        ws.close().await;
    }
    Ok(())
}

/// Dispatcher 1 opens a group call to village C: the fixture `group_g`.
async fn open_group(dispatcher: &mut WsClient, fx: &mut Fixtures, req: &mut u64) -> Result<()> {
    *req += 1;
    let village = fx.get("village_c", Fx::No)?.parse::<i64>()?;
    dispatcher.send(json!({"type": "group.start", "village_ids": [village], "req": *req})).await?;
    let (code, seen) = answer(dispatcher, *req).await?;
    anyhow::ensure!(code == "ok", "dispatcher 1 could not open a group call: {code}");
    let state = find(dispatcher, seen, "group.state").await?;
    fx.set("group_g", Fx::No, state["group_id"].as_u64().context("group id")?);
    Ok(())
}
