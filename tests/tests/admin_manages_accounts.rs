//! The county administrator manages staff accounts (issue 9): a new account gets a temporary
//! password that must be changed at the first login (until then every staff route but
//! /api/me, /api/logout and /api/password answers 403 `password_change_required`, and the
//! WebSocket refuses the session); disabling an account closes its open WebSocket at once
//! (4401) and refuses its login like a wrong password; enabling lets it back in; a password
//! reset ends the user's sessions; an account that handled a call cannot be deleted (409
//! `in_use`, 停用 instead), one without history can; only administrators may do any of it.
//! A staff session can be rotated: a fresh token, the old one ends with its sockets.

use anyhow::{Context, Result};
use cunneng_tests::client::{WsClient, answered_call, get_json, login, login_as, pairing, post_json, send_json};
use cunneng_tests::server::Server;
use serde_json::{Value, json};

async fn login_answer(server: &Server, username: &str, password: &str) -> Result<(u16, Value)> {
    post_json(server, "/api/login", None, json!({"username": username, "password": password})).await
}

#[tokio::test]
async fn admin_manages_accounts() -> Result<()> {
    let server = Server::start_demo().await?;
    let admin = login_as(&server, "admin").await?;
    let p = pairing(&server, 0).await?;
    let (town, window) = (p.approver.town_id(), p.window_id);

    // Only administrators: anonymous 401, an approver 403.
    assert_eq!(get_json(&server, "/api/admin/users", None).await?.0, 401);
    assert_eq!(get_json(&server, "/api/admin/users", Some(&p.approver.token)).await?.0, 403);
    let (status, _) = post_json(&server, "/api/admin/users", Some(&p.approver.token), json!({})).await?;
    assert_eq!(status, 403);
    let (status, _) =
        post_json(&server, &format!("/api/admin/users/{}/disable", p.approver.id()), None, json!({})).await?;
    assert_eq!(status, 401);

    let (status, users) = get_json(&server, "/api/admin/users", Some(&admin)).await?;
    assert_eq!(status, 200, "{users}");
    let rows = users.as_array().context("users")?;
    let me = rows.iter().find(|u| u["username"] == "admin").context("admin row")?;
    assert_eq!(me["role"], "admin");
    assert!(me["last_login_ms"].as_u64().is_some(), "{me}");
    assert!(!users.to_string().contains("argon2"), "no password hashes in the list");

    // A new approver: a temporary password, must change it.
    let new_user = json!({"username": "new-clerk", "display_name": "新来的", "role": "approver",
                          "town_id": town, "window_id": window});
    let (status, created) = post_json(&server, "/api/admin/users", Some(&admin), new_user.clone()).await?;
    assert_eq!(status, 201, "{created}");
    let user_id = created["user"]["id"].as_i64().context("id")?;
    assert_eq!(created["user"]["must_change_password"], true);
    assert_eq!(created["user"]["disabled"], false);
    let temp = created["temporary_password"].as_str().context("temporary_password")?.to_string();
    assert_eq!(temp.chars().count(), 12);
    let (status, dup) = post_json(&server, "/api/admin/users", Some(&admin), new_user).await?;
    assert_eq!(status, 409, "{dup}");
    let (status, bad) = post_json(
        &server,
        "/api/admin/users",
        Some(&admin),
        json!({"username": "no-window", "display_name": "缺窗口", "role": "approver", "town_id": town}),
    )
    .await?;
    assert_eq!((status, bad["error"]["code"].as_str()), (400, Some("bad_request")), "{bad}");

    let (status, answer) = login_answer(&server, "new-clerk", &temp).await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["must_change_password"], true);
    let forced = answer["token"].as_str().context("token")?.to_string();
    let (status, refused) = get_json(&server, "/api/matters", Some(&forced)).await?;
    assert_eq!((status, refused["error"]["code"].as_str()), (403, Some("password_change_required")), "{refused}");
    assert_eq!(get_json(&server, "/api/me", Some(&forced)).await?.0, 200);
    assert!(WsClient::connect(&server, &forced).await.is_err(), "the socket refuses a session that must change");

    let change = |old: &str, new: &str| json!({"old_password": old, "new_password": new});
    for (body, code) in [
        (change(&temp, "short"), "bad_request"),
        (change(&temp, &temp), "bad_request"),
        (change("not-the-password", "a-new-secret-1"), "bad_credentials"),
    ] {
        let (status, e) = post_json(&server, "/api/password", Some(&forced), body).await?;
        assert_eq!((status, e["error"]["code"].as_str()), (400, Some(code)), "{e}");
    }
    let (status, _) = post_json(&server, "/api/password", Some(&forced), change(&temp, "a-new-secret-1")).await?;
    assert_eq!(status, 204);
    assert_eq!(get_json(&server, "/api/matters", Some(&forced)).await?.0, 200, "the same session goes on");
    let (_, again) = login_answer(&server, "new-clerk", "a-new-secret-1").await?;
    assert_eq!(again["must_change_password"], false);
    assert_eq!(login_answer(&server, "new-clerk", &temp).await?.0, 401);

    // Disabled with an open socket: it closes at once, login is refused like a wrong password.
    let mut ws = WsClient::connect(&server, &forced).await?;
    let (status, row) =
        post_json(&server, &format!("/api/admin/users/{user_id}/disable"), Some(&admin), json!({})).await?;
    assert_eq!((status, row["disabled"].as_bool()), (200, Some(true)), "{row}");
    ws.closed_unauthorized().await?;
    let (status, e) = login_answer(&server, "new-clerk", "a-new-secret-1").await?;
    assert_eq!((status, e["error"]["code"].as_str()), (401, Some("bad_credentials")), "{e}");
    assert_eq!(get_json(&server, "/api/me", Some(&forced)).await?.0, 401);

    let (status, row) =
        post_json(&server, &format!("/api/admin/users/{user_id}/enable"), Some(&admin), json!({})).await?;
    assert_eq!((status, row["disabled"].as_bool()), (200, Some(false)), "{row}");
    let token = login(&server, "new-clerk", "a-new-secret-1").await?;

    // A password reset ends the sessions and forces a change again.
    let mut ws = WsClient::connect(&server, &token).await?;
    let (status, reset) =
        post_json(&server, &format!("/api/admin/users/{user_id}/password-reset"), Some(&admin), json!({})).await?;
    assert_eq!(status, 200, "{reset}");
    ws.closed_unauthorized().await?;
    assert_eq!(get_json(&server, "/api/me", Some(&token)).await?.0, 401);
    assert_eq!(login_answer(&server, "new-clerk", "a-new-secret-1").await?.0, 401);
    let temp2 = reset["temporary_password"].as_str().context("temporary_password")?;
    assert_ne!(temp2, temp);
    assert_eq!(login_answer(&server, "new-clerk", temp2).await?.1["must_change_password"], true);

    // Edit: name and window; the list shows it.
    let (status, row) = send_json(
        &server,
        reqwest::Method::PUT,
        &format!("/api/admin/users/{user_id}"),
        Some(&admin),
        Some(json!({"display_name": "改了名字", "role": "chief", "town_id": town, "window_id": null})),
    )
    .await?;
    assert_eq!((status, row["role"].as_str(), row["display_name"].as_str()), (200, Some("chief"), Some("改了名字")));

    // Delete: refused while a call refers to the account, done for one without history.
    let call = answered_call(&server, &p).await?;
    drop(call);
    let approver_path = format!("/api/admin/users/{}", p.approver.id());
    let (status, e) = send_json(&server, reqwest::Method::DELETE, &approver_path, Some(&admin), None).await?;
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("in_use")), "{e}");
    let message = e["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("通话记录") && message.contains("请改为停用"), "{message}");
    let path = format!("/api/admin/users/{user_id}");
    assert_eq!(send_json(&server, reqwest::Method::DELETE, &path, Some(&admin), None).await?.0, 204);
    let (_, users) = get_json(&server, "/api/admin/users", Some(&admin)).await?;
    assert!(!users.to_string().contains("new-clerk"), "{users}");
    assert_eq!(send_json(&server, reqwest::Method::DELETE, &path, Some(&admin), None).await?.0, 404);

    // The administrator cannot lock themself out.
    let admin_id = me["id"].as_i64().context("admin id")?;
    let (status, _) =
        post_json(&server, &format!("/api/admin/users/{admin_id}/disable"), Some(&admin), json!({})).await?;
    assert_eq!(status, 400);

    // Rotation: a fresh token; the old one ends with its socket.
    let old = login_as(&server, "supervisor").await?;
    let mut ws = WsClient::connect(&server, &old).await?;
    let (status, rotated) = post_json(&server, "/api/session/rotate", Some(&old), json!({})).await?;
    assert_eq!(status, 200, "{rotated}");
    ws.closed_unauthorized().await?;
    let fresh = rotated["token"].as_str().context("token")?;
    assert!(rotated["expires_at_ms"].as_u64().is_some());
    assert_eq!(get_json(&server, "/api/me", Some(&old)).await?.0, 401);
    assert_eq!(get_json(&server, "/api/me", Some(fresh)).await?.0, 200);
    let (status, _) = post_json(&server, "/api/session/rotate", Some(&p.kiosk.token), json!({})).await?;
    assert_eq!(status, 403, "kiosks rotate through /api/kiosk/token");
    Ok(())
}
