//! Wrong or missing credentials get 401, the wrong role 403, and nothing changes.

use cunneng_tests::client::{STEP, WsClient, demo_kiosks, demo_staff, get_json, http, login_as};
use cunneng_tests::server::Server;
use serde_json::json;

#[tokio::test]
async fn api_refuses_missing_unknown_and_wrong_role_tokens() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let (s, body) = get_json(&server, "/api/me", None).await?;
    assert_eq!(s, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (s, _) = get_json(&server, "/api/me", Some("00ff")).await?;
    assert_eq!(s, 401);

    let kiosk = &demo_kiosks(&server).await?[0];
    let (s, body) = get_json(&server, "/api/villages", Some(&kiosk.token)).await?;
    assert_eq!(s, 403, "a kiosk may not list villages: {body}");

    let dispatcher = login_as(&server, "dispatcher").await?;
    let (s, body) = get_json(&server, "/api/villages", Some(&dispatcher)).await?;
    assert_eq!(s, 200);
    assert!(!body.as_array().unwrap().is_empty());
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
async fn websocket_without_valid_hello_is_closed_with_4401() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let mut ws = WsClient::connect_raw(&server).await?;
    ws.send(json!({"type": "hello", "token": "bogus"})).await?;
    let err = ws.next(STEP).await?;
    assert_eq!(err["type"], "error");
    assert_eq!(err["code"], "unauthorized");
    assert_eq!(ws.closed().await?, Some(4401));

    let mut ws = WsClient::connect_raw(&server).await?;
    ws.send(json!({"type": "call.request", "matter_id": 1})).await?;
    let err = ws.next(STEP).await?;
    assert_eq!(err["code"], "unauthorized");
    Ok(())
}

#[tokio::test]
async fn roles_are_checked_on_the_socket() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let approver = &demo_staff(&server, "window").await?[0];
    let kiosk = &demo_kiosks(&server).await?[0];

    let mut w = WsClient::connect(&server, &approver.token).await?;
    let err = w.request(json!({"type": "call.request", "matter_id": 1}), 1, STEP).await?.expect("error");
    assert_eq!(err["code"], "forbidden");

    let mut k = WsClient::connect(&server, &kiosk.token).await?;
    let err = k.request(json!({"type": "presence.set", "presence": "available"}), 2, STEP).await?.expect("error");
    assert_eq!(err["code"], "forbidden");
    let err = k.request(json!({"type": "group.start", "village_ids": [1]}), 3, STEP).await?.expect("error");
    assert_eq!(err["code"], "forbidden");
    let err = k
        .request(json!({"type": "media.offer", "room": "call:999", "pc_id": "x", "sdp": "v=0"}), 4, STEP)
        .await?
        .expect("error");
    assert_eq!(err["code"], "forbidden");

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

/// `GET /api/review/choices` (the review page's drop-downs): supervisors and chiefs only, each
/// in their scope; nobody else.
#[tokio::test]
async fn review_choices_are_for_reviewers_in_their_scope() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let (s, body) = get_json(&server, "/api/review/choices", None).await?;
    assert_eq!((s, body["error"]["code"].as_str()), (401, Some("unauthorized")));
    let kiosk = &demo_kiosks(&server).await?[0];
    assert_eq!(get_json(&server, "/api/review/choices", Some(&kiosk.token)).await?.0, 403);
    for role in ["window", "dispatcher"] {
        let token = login_as(&server, role).await?;
        assert_eq!(get_json(&server, "/api/review/choices", Some(&token)).await?.0, 403, "{role}");
    }
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

/// Routes and who may use them: no token 401, a role that has no business there 403.
#[tokio::test]
async fn routes_check_the_role() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let kiosk = demo_kiosks(&server).await?[0].token.clone();
    let approver = login_as(&server, "window").await?;
    let chief = login_as(&server, "chief").await?;
    let supervisor = login_as(&server, "supervisor").await?;
    let dispatcher = login_as(&server, "dispatcher").await?;
    // The statistics: supervisors (in their scope) and town chiefs; nobody else.
    let statistics = |path| {
        (
            path,
            vec![
                ("nobody", None, 401),
                ("kiosk", Some(kiosk.as_str()), 403),
                ("approver", Some(approver.as_str()), 403),
                ("dispatcher", Some(dispatcher.as_str()), 403),
                ("chief", Some(chief.as_str()), 200),
                ("supervisor", Some(supervisor.as_str()), 200),
            ],
        )
    };
    // (path, [(who, token, expected status)])
    let rows: Vec<(&str, Vec<Row<'_>>)> = vec![
        (
            "/api/cases/undecided",
            vec![
                ("nobody", None, 401),
                ("kiosk", Some(&kiosk), 403),
                ("supervisor", Some(&supervisor), 403),
                ("dispatcher", Some(&dispatcher), 403),
                ("approver", Some(&approver), 200),
                ("chief", Some(&chief), 200),
            ],
        ),
        statistics("/api/review/group-calls"),
        statistics("/api/stats"),
        statistics("/api/stats/export.csv"),
        statistics("/api/stats/export.xlsx"),
        // The page itself is the same static shell for everyone (it asks /api/me and shows
        // nothing to a role the API refuses); its figures come only from the routes above.
        (
            "/stats",
            vec![
                ("nobody", None, 200),
                ("kiosk", Some(&kiosk), 200),
                ("approver", Some(&approver), 200),
                ("supervisor", Some(&supervisor), 200),
            ],
        ),
    ];
    for (path, cases) in rows {
        for (who, token, want) in cases {
            let (status, body) = get_json(&server, path, token).await?;
            assert_eq!(status, want, "GET {path} as {who}: {body}");
        }
    }
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
