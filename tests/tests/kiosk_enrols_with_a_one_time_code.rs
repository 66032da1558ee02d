//! A kiosk device is enrolled with a one-time code instead of a hand-carried token (issue 9):
//! the administrator creates the device (no usable token yet) and issues a code (8 digits,
//! shown 4-4, with a QR code of the kiosk page's address); the kiosk page exchanges it once,
//! anonymously, for a device token that works on /ws; the code cannot be used twice, nor once
//! expired; a new enrolment ends the old token; the kiosk rotates its token (the old one ends
//! with its socket); revoking or disabling closes the kiosk's socket at once and refuses its
//! token; an expired kiosk token is refused; the device's last connection is shown; a
//! kiosk with history cannot be deleted; enrolment attempts are limited per address.

use std::time::Duration;

use anyhow::{Context, Result};
use cunneng_tests::client::{WsClient, answered_call, demo_kiosks, get_json, login_as, pairing, post_json, send_json};
use cunneng_tests::server::Server;
use serde_json::{Value, json};

/// A code for the kiosk, as the administrator gets it.
async fn issue(server: &Server, admin: &str, kiosk: i64) -> Result<String> {
    let (status, e) =
        post_json(server, &format!("/api/admin/kiosks/{kiosk}/enrolment"), Some(admin), json!({})).await?;
    assert_eq!(status, 200, "{e}");
    Ok(e["code"].as_str().context("code")?.to_string())
}

/// Enrol with `code`; the new device token.
async fn enrol(server: &Server, code: &str) -> Result<String> {
    let (status, e) = post_json(server, "/api/enrol", None, json!({"code": code})).await?;
    assert_eq!(status, 200, "{e}");
    Ok(e["token"].as_str().context("token")?.to_string())
}

async fn device(server: &Server, admin: &str, kiosk: i64) -> Result<Value> {
    let (status, list) = get_json(server, "/api/admin/kiosks", Some(admin)).await?;
    assert_eq!(status, 200, "{list}");
    list.as_array().context("kiosks")?.iter().find(|k| k["id"] == kiosk).cloned().context("kiosk row")
}

fn sql(server: &Server, statement: &str, id: i64) -> Result<()> {
    let db = rusqlite::Connection::open(server.data_dir().join("cunneng.sqlite3"))?;
    db.busy_timeout(Duration::from_secs(5))?;
    db.execute(statement, [id])?;
    Ok(())
}

#[tokio::test]
async fn kiosk_enrols_with_a_one_time_code() -> Result<()> {
    let server = Server::start_with_env(&["--demo"], &[("CUNNENG_LIMITS__ENROL_BURST", "14")]).await?;
    let admin = login_as(&server, "admin").await?;
    let demo = demo_kiosks(&server).await?;
    let village = demo[0].village_id().context("village")?;

    assert_eq!(get_json(&server, "/api/admin/kiosks", None).await?.0, 401);
    assert_eq!(get_json(&server, "/api/admin/kiosks", Some(&demo[0].token)).await?.0, 403);

    let (status, row) =
        post_json(&server, "/api/admin/kiosks", Some(&admin), json!({"village_id": village, "name": "新电脑"})).await?;
    assert_eq!(status, 201, "{row}");
    let kiosk = row["id"].as_i64().context("id")?;
    assert_eq!((row["enrolled"].as_bool(), row["disabled"].as_bool()), (Some(false), Some(false)), "{row}");
    assert!(row["enrolment"].is_null() && row["last_seen_ms"].is_null(), "{row}");
    let (status, _) =
        post_json(&server, "/api/admin/kiosks", Some(&admin), json!({"village_id": village, "name": "新电脑"})).await?;
    assert_eq!(status, 409, "a second device of that name in the village");

    // The code: 8 digits shown 4-4, a QR code of the kiosk page with it.
    let (status, e) =
        post_json(&server, &format!("/api/admin/kiosks/{kiosk}/enrolment"), Some(&admin), json!({})).await?;
    assert_eq!(status, 200, "{e}");
    let code = e["code"].as_str().context("code")?.to_string();
    let digits: String = code.chars().filter(char::is_ascii_digit).collect();
    assert!(code.len() == 9 && code.as_bytes()[4] == b'-' && digits.len() == 8, "{code}");
    assert!(e["qr_svg"].as_str().is_some_and(|s| s.contains("<svg")), "{e}");
    assert!(e["url"].as_str().is_some_and(|u| u.ends_with(&format!("/kiosk#enrol={digits}"))), "{e}");
    let shown = device(&server, &admin, kiosk).await?;
    assert_eq!(shown["enrolment"]["expires_at_ms"], e["expires_at_ms"], "{shown}");

    // Anonymous enrolment: a token that works on /ws; the code only once.
    let (status, enrolled) = post_json(&server, "/api/enrol", None, json!({"code": digits})).await?;
    assert_eq!(status, 200, "{enrolled}");
    assert_eq!((enrolled["kiosk"]["id"].as_i64(), enrolled["village"]["id"].as_i64()), (Some(kiosk), Some(village)));
    let token = enrolled["token"].as_str().context("token")?.to_string();
    let mut ws = WsClient::connect(&server, &token).await?;
    assert_eq!(ws.welcome["me"]["kind"], "kiosk", "{}", ws.welcome);
    let (status, again) = post_json(&server, "/api/enrol", None, json!({"code": code})).await?;
    assert_eq!((status, again["error"]["code"].as_str()), (400, Some("bad_enrolment_code")), "{again}");
    let shown = device(&server, &admin, kiosk).await?;
    assert_eq!(shown["enrolled"], true);
    assert!(shown["enrolment"].is_null(), "{shown}");
    assert!(shown["last_seen_ms"].as_u64().is_some(), "last connection: {shown}");
    let expires = shown["token_expires_at_ms"].as_u64().context("an enrolled token expires")?;
    assert!(expires > enrolled_at_least_days(170), "{shown}");

    // An expired code is refused.
    let stale = issue(&server, &admin, kiosk).await?;
    sql(&server, "UPDATE kiosk_enrolments SET expires_at_ms = 1 WHERE kiosk_id = ?1", kiosk)?;
    let (status, e) = post_json(&server, "/api/enrol", None, json!({"code": stale})).await?;
    assert_eq!((status, e["error"]["code"].as_str()), (400, Some("bad_enrolment_code")), "{e}");

    // Enrolling again ends the old token and its socket.
    let second = enrol(&server, &issue(&server, &admin, kiosk).await?).await?;
    ws.closed_unauthorized().await?;
    assert_eq!(get_json(&server, "/api/me", Some(&token)).await?.0, 401);

    // Rotation by the kiosk: a new token, the old one ends with its socket.
    let mut ws = WsClient::connect(&server, &second).await?;
    let (status, rotated) = post_json(&server, "/api/kiosk/token", Some(&second), json!({})).await?;
    assert_eq!(status, 200, "{rotated}");
    ws.closed_unauthorized().await?;
    let third = rotated["token"].as_str().context("token")?.to_string();
    assert!(rotated["expires_at_ms"].as_u64().is_some());
    assert_eq!(get_json(&server, "/api/me", Some(&second)).await?.0, 401);
    assert_eq!(get_json(&server, "/api/me", Some(&third)).await?.0, 200);
    let (status, _) = post_json(&server, "/api/kiosk/token", Some(&admin), json!({})).await?;
    assert_eq!(status, 403, "staff rotate through /api/session/rotate");

    // Revoke: the socket closes, the token is refused, a new enrolment is needed.
    let mut ws = WsClient::connect(&server, &third).await?;
    let (status, row) =
        post_json(&server, &format!("/api/admin/kiosks/{kiosk}/revoke"), Some(&admin), json!({})).await?;
    assert_eq!((status, row["enrolled"].as_bool()), (200, Some(false)), "{row}");
    ws.closed_unauthorized().await?;
    assert_eq!(get_json(&server, "/api/me", Some(&third)).await?.0, 401);

    // Disable: the socket closes, the token is refused, no enrolment; enable: it works again.
    let fourth = enrol(&server, &issue(&server, &admin, kiosk).await?).await?;
    let mut ws = WsClient::connect(&server, &fourth).await?;
    let (status, row) =
        post_json(&server, &format!("/api/admin/kiosks/{kiosk}/disable"), Some(&admin), json!({})).await?;
    assert_eq!((status, row["disabled"].as_bool()), (200, Some(true)), "{row}");
    ws.closed_unauthorized().await?;
    assert_eq!(get_json(&server, "/api/me", Some(&fourth)).await?.0, 401);
    assert!(WsClient::connect(&server, &fourth).await.is_err());
    let (status, _) =
        post_json(&server, &format!("/api/admin/kiosks/{kiosk}/enrolment"), Some(&admin), json!({})).await?;
    assert_eq!(status, 409, "no enrolment for a disabled kiosk");
    let (status, _) = post_json(&server, &format!("/api/admin/kiosks/{kiosk}/enable"), Some(&admin), json!({})).await?;
    assert_eq!(status, 200);
    assert_eq!(get_json(&server, "/api/me", Some(&fourth)).await?.0, 200);

    // An expired kiosk token is refused.
    sql(&server, "UPDATE kiosks SET token_expires_at_ms = 1 WHERE id = ?1", kiosk)?;
    assert_eq!(get_json(&server, "/api/me", Some(&fourth)).await?.0, 401);

    // Rename; delete: refused for a kiosk with a call, done for one without.
    let (status, row) = send_json(
        &server,
        reqwest::Method::PUT,
        &format!("/api/admin/kiosks/{kiosk}"),
        Some(&admin),
        Some(json!({"name": "改名的电脑"})),
    )
    .await?;
    assert_eq!((status, row["name"].as_str()), (200, Some("改名的电脑")), "{row}");
    let p = pairing(&server, 0).await?;
    drop(answered_call(&server, &p).await?);
    let used = format!("/api/admin/kiosks/{}", p.kiosk.me["id"]);
    let (status, e) = send_json(&server, reqwest::Method::DELETE, &used, Some(&admin), None).await?;
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("in_use")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap_or_default().contains("请改为停用"), "{e}");
    let path = format!("/api/admin/kiosks/{kiosk}");
    assert_eq!(send_json(&server, reqwest::Method::DELETE, &path, Some(&admin), None).await?.0, 204);
    assert_eq!(send_json(&server, reqwest::Method::DELETE, &path, Some(&admin), None).await?.0, 404);

    // Wrong codes are limited per address.
    let mut statuses = Vec::new();
    for _ in 0..15 {
        statuses.push(post_json(&server, "/api/enrol", None, json!({"code": "0000-0000"})).await?.0);
    }
    assert!(statuses.contains(&400) && statuses.ends_with(&[429]), "{statuses:?}");
    Ok(())
}

/// Now plus `days`, in Unix ms.
fn enrolled_at_least_days(days: u64) -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.as_millis() as u64 + days * 86_400_000
}
