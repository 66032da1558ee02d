//! Enrolment and temporary passwords in Chromium (`tests/browser/kiosk_enrols.mjs`, issue 9):
//! a fresh kiosk page takes the administrator's one-time code typed into `enrol-input` and
//! shows the normal kiosk screen (a used code is refused with a message); a new staff account
//! logs in with its temporary password, goes through the change-password form and lands on
//! its page, connected. Set `BROWSER_OUT=DIR` to keep the screenshots.

use anyhow::{Context, Result};
use cunneng_tests::client::{demo_kiosks, http, login_as, pairing};
use cunneng_tests::server::Server;
use serde_json::{Value, json};

async fn post(server: &Server, path: &str, token: &str, body: Value) -> Result<Value> {
    let resp = http().post(format!("{}{path}", server.base_url)).bearer_auth(token).json(&body).send().await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    anyhow::ensure!(status.is_success(), "{path}: {status} {body}");
    Ok(body)
}

async fn code_for(server: &Server, admin: &str, kiosk: i64) -> Result<String> {
    let e = post(server, &format!("/api/admin/kiosks/{kiosk}/enrolment"), admin, json!({})).await?;
    Ok(e["code"].as_str().context("code")?.chars().filter(char::is_ascii_digit).collect())
}

#[tokio::test]
async fn browser_kiosk_enrols_and_staff_changes_password() -> Result<()> {
    let server = Server::start_demo().await?;
    let admin = login_as(&server, "admin").await?;
    let village = demo_kiosks(&server).await?[0].village_id().context("village")?;
    let kiosk =
        post(&server, "/api/admin/kiosks", &admin, json!({"village_id": village, "name": "浏览器开通"})).await?;
    let kiosk = kiosk["id"].as_i64().context("kiosk id")?;
    // A code used up first (by another device), then the one the page types.
    let used = code_for(&server, &admin, kiosk).await?;
    let resp = http().post(format!("{}/api/enrol", server.base_url)).json(&json!({"code": used})).send().await?;
    anyhow::ensure!(resp.status().is_success(), "enrol: {}", resp.status());
    let code = code_for(&server, &admin, kiosk).await?;

    let p = pairing(&server, 0).await?;
    let created = post(
        &server,
        "/api/admin/users",
        &admin,
        json!({"username": "browser-clerk", "display_name": "新来的办事员", "role": "approver",
               "town_id": p.approver.town_id(), "window_id": p.window_id}),
    )
    .await?;
    let temporary = created["temporary_password"].as_str().context("temporary_password")?;
    cunneng_tests::browser::run_script(
        &server,
        "kiosk_enrols.mjs",
        &[("--code", &code), ("--used-code", &used), ("--user", "browser-clerk"), ("--temporary-password", temporary)],
    )
    .await
}
