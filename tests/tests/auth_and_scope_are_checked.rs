//! Wrong or missing credentials get 401, the wrong role 403, and nothing changes: what the
//! authorization matrix (`authorization_matrix.rs`, every route and message × principal)
//! does not show: error bodies, unknown tokens, login and logout, sockets that live on after
//! a refusal, what a reviewer's scope holds, and the role checked before the case.

use cunneng_tests::client::{STEP, WsClient, demo_kiosks, demo_staff, get_json, http, login_as};
use cunneng_tests::server::Server;
use serde_json::json;

/// (Which principal gets which status on every route is `authorization_matrix`; here: the
/// error body, and a token nobody issued.)
#[tokio::test]
async fn api_refuses_missing_and_unknown_tokens() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let (s, body) = get_json(&server, "/api/me", None).await?;
    assert_eq!(s, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (s, _) = get_json(&server, "/api/me", Some("00ff")).await?;
    assert_eq!(s, 401);
    Ok(())
}

#[tokio::test]
async fn login_with_wrong_password_is_refused() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let user = server.link("window").fragment_param("user").unwrap();
    let resp = http()
        .post(format!("{}/api/login", server.base_url))
        .json(&json!({"username": user, "password": "not-the-password"}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 401);
    let body: serde_json::Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "bad_credentials");

    let resp = http()
        .post(format!("{}/api/login", server.base_url))
        .body("{not json")
        .header("content-type", "application/json")
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);

    // Logging out ends the session.
    let token = login_as(&server, "window").await?;
    let resp = http().post(format!("{}/api/logout", server.base_url)).bearer_auth(&token).send().await?;
    assert_eq!(resp.status().as_u16(), 204);
    let (s, _) = get_json(&server, "/api/me", Some(&token)).await?;
    assert_eq!(s, 401);
    Ok(())
}

#[tokio::test]
async fn refused_messages_leave_the_socket_working() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let approver = &demo_staff(&server, "window").await?[0];
    let kiosk = &demo_kiosks(&server).await?[0];

    // Refused by role (every message type × principal: `authorization_matrix`).
    let mut w = WsClient::connect(&server, &approver.token).await?;
    let err = w.request(json!({"type": "call.request", "matter_id": 1}), 1, STEP).await?.expect("error");
    assert_eq!(err["code"], "forbidden");

    let mut k = WsClient::connect(&server, &kiosk.token).await?;
    // Kiosk of a town cannot ask for a matter id that does not exist.
    let err = k.request(json!({"type": "call.request", "matter_id": 999_999}), 5, STEP).await?.expect("error");
    assert!(err["code"] == "not_found" || err["code"] == "no_window", "{err}");

    // Both sockets still work.
    w.send(json!({"type": "ping"})).await?;
    w.expect("pong").await?;
    k.send(json!({"type": "ping"})).await?;
    k.expect("pong").await?;
    Ok(())
}

/// `GET /api/review/choices` (the review page's drop-downs) holds each reviewer's scope (who
/// may ask at all: `authorization_matrix`).
#[tokio::test]
async fn review_choices_hold_the_reviewers_scope() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let supervisor = login_as(&server, "supervisor").await?;
    let (s, county) = get_json(&server, "/api/review/choices", Some(&supervisor)).await?;
    assert_eq!(s, 200, "{county}");
    let towns = county["towns"].as_array().unwrap();
    assert!(towns.len() >= 2, "{county}");
    assert!(towns.iter().all(|t| !t["villages"].as_array().unwrap().is_empty()));
    assert!(towns.iter().all(|t| !t["windows"].as_array().unwrap().is_empty()));
    assert!(towns.iter().any(|t| !t["staff"].as_array().unwrap().is_empty()));
    assert!(!county["matters"].as_array().unwrap().is_empty());
    let chief = &demo_staff(&server, "chief").await?[0];
    let (s, mine) = get_json(&server, "/api/review/choices", Some(&chief.token)).await?;
    assert_eq!(s, 200);
    let ids: Vec<i64> = mine["towns"].as_array().unwrap().iter().map(|t| t["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![chief.town_id()], "a chief sees his own town only");
    Ok(())
}

/// Who asks (for the failure message), with which token, and the status expected.
type Row<'a> = (&'a str, Option<&'a str>, u16);

/// The role is checked before the case is looked up: for a case that does not exist, only
/// the role that may correct scans gets as far as 404 (the statuses for existing cases in
/// and out of scope are `authorization_matrix`).
#[tokio::test]
async fn the_role_is_checked_before_the_case() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let kiosk = demo_kiosks(&server).await?[0].token.clone();
    let approver = login_as(&server, "window").await?;
    let chief = login_as(&server, "chief").await?;
    let supervisor = login_as(&server, "supervisor").await?;
    let dispatcher = login_as(&server, "dispatcher").await?;
    // Correcting a scan is the village room's (a case that does not exist: the role is checked
    // first, so only the kiosk gets as far as 404).
    let paper = "/api/cases/ZH-20000101-0001/papers/1";
    let village_only: Vec<Row<'_>> = vec![
        ("nobody", None, 401),
        ("approver", Some(&approver), 403),
        ("chief", Some(&chief), 403),
        ("supervisor", Some(&supervisor), 403),
        ("dispatcher", Some(&dispatcher), 403),
        ("kiosk", Some(&kiosk), 404),
    ];
    for method in [reqwest::Method::PATCH, reqwest::Method::DELETE] {
        for (who, token, want) in &village_only {
            let mut req = http().request(method.clone(), format!("{}{paper}", server.base_url));
            if method == reqwest::Method::PATCH {
                req = req.json(&json!({"checklist_item": null}));
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let status = req.send().await?.status().as_u16();
            assert_eq!(status, *want, "{method} {paper} as {who}");
        }
    }
    Ok(())
}
