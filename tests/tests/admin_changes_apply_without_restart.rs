//! The county administrator changes the region while calls wait, and the running queue follows
//! at once, without a restart: a window is added and takes a matter from another, the old
//! window is disabled (its waiting calls move to the new one in the order they came), the town
//! is switched to 无差别受理 (any window takes any matter) and an approver of another window is
//! rung for the oldest call. Nobody waiting loses their place. Then the rules of the edits:
//! bad fields 400, a duplicate name 409, delete of an item in use 409 `in_use` (disable it
//! instead), delete of an unused one 204, a disabled matter no longer offered, a disabled
//! village's kiosk socket closed; only the administrator may do any of it; every change is in
//! the audit record (which still verifies) and survives a restart.

use anyhow::{Context, Result};
use cunneng_tests::cases::Api;
use cunneng_tests::client::{WsClient, demo_kiosks, demo_staff, get_json, login_as};
use cunneng_tests::server::Server;
use serde_json::{Value, json};

/// The next `queue.position` of a kiosk.
async fn position(ws: &mut WsClient) -> Result<(u64, i64)> {
    let p = ws.expect("queue.position").await?;
    Ok((p["position"].as_u64().context("position")?, p["window"]["id"].as_i64().context("window")?))
}

#[tokio::test]
async fn admin_changes_apply_without_restart() -> Result<()> {
    let mut server = Server::start_demo().await?;
    let admin = login_as(&server, "admin").await?;
    let admin_api = Api::new(&server, &admin);
    let (s, region) = get_json(&server, "/api/admin/region", Some(&admin)).await?;
    assert_eq!(s, 200, "{region}");

    // Three kiosks of one town, and a matter its comprehensive window takes.
    let kiosks = demo_kiosks(&server).await?;
    let town = kiosks[0].town_id();
    let same: Vec<_> = kiosks.iter().filter(|k| k.town_id() == town).collect();
    assert!(same.len() >= 3, "the demo has three villages in the first town");
    let windows: Vec<&Value> = region["windows"].as_array().unwrap().iter().filter(|w| w["town_id"] == town).collect();
    let w1 = windows.iter().find(|w| w["kind"] == "comprehensive").context("comprehensive window")?;
    let w1_id = w1["id"].as_i64().unwrap();
    let matter_id = w1["matter_ids"][0].as_i64().context("the comprehensive window takes a matter")?;
    let other_window = windows.iter().find(|w| w["id"] != w1["id"]).unwrap()["id"].as_i64().unwrap();

    // Logged in before window 1 is disabled (which ends its approvers' sessions).
    let approvers = demo_staff(&server, "window").await?;

    // A and B wait for the matter at window 1 (nobody serves it yet).
    let mut a = WsClient::connect(&server, &same[0].token).await?;
    let mut b = WsClient::connect(&server, &same[1].token).await?;
    a.send(json!({"type": "call.request", "matter_id": matter_id})).await?;
    assert_eq!(position(&mut a).await?, (1, w1_id));
    b.send(json!({"type": "call.request", "matter_id": matter_id})).await?;
    assert_eq!(position(&mut b).await?, (2, w1_id));

    // 1. A new window takes the matter; window 1 gives it up. A and B keep waiting where they are.
    let (s, w2) = admin_api.post("/api/admin/windows", json!({"town_id": town, "name": "便民综合窗口二", "kind": "custom", "derive_matters": false, "matter_ids": [matter_id]}))
    .await?;
    assert_eq!(s, 201, "{w2}");
    let w2_id = w2["id"].as_i64().unwrap();
    assert_eq!(w2["matter_ids"], json!([matter_id]));
    let rest: Vec<i64> =
        w1["matter_ids"].as_array().unwrap().iter().filter_map(Value::as_i64).filter(|m| *m != matter_id).collect();
    let (s, body) = admin_api
        .put(
            &format!("/api/admin/windows/{w1_id}"),
            json!({"name": w1["name"], "kind": "comprehensive", "derive_matters": false, "matter_ids": rest}),
        )
        .await?;
    assert_eq!(s, 200, "{body}");
    // A new call for the matter goes to the new window now.
    let mut c = WsClient::connect(&server, &same[2].token).await?;
    let (_, matters) = get_json(&server, "/api/matters", Some(&same[2].token)).await?;
    let offered = matters.as_array().unwrap().iter().find(|m| m["id"] == matter_id).context("matter offered")?;
    assert_eq!(offered["window"]["id"], w2_id, "{offered}");
    c.send(json!({"type": "call.request", "matter_id": matter_id})).await?;
    assert_eq!(position(&mut c).await?, (1, w2_id));

    // 2. Window 1 is disabled: A and B move to window 2 ahead of C, in the order they came.
    let (s, body) = admin_api.post(&format!("/api/admin/windows/{w1_id}/disable"), json!({})).await?;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["disabled"], true);
    assert_eq!(a.expect_where("queue.position", |m| m["window"]["id"] == w2_id).await?["position"], 1);
    assert_eq!(b.expect_where("queue.position", |m| m["window"]["id"] == w2_id).await?["position"], 2);
    assert_eq!(c.expect_where("queue.position", |m| m["position"] == 3).await?["window"]["id"], w2_id);

    // 3. The town switches to 无差别受理: any window takes any matter; an approver of another
    // window is rung for the oldest call, A's.
    let town_row = region["towns"].as_array().unwrap().iter().find(|t| t["id"] == town).unwrap().clone();
    let (s, body) = admin_api
        .put(&format!("/api/admin/towns/{town}"), json!({"name": town_row["name"], "any_window": true}))
        .await?;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["any_window"], true);
    let approver = approvers.iter().find(|p| p.window_id() == Some(other_window)).context("approver")?;
    let mut window = WsClient::connect(&server, &approver.token).await?;
    window.send(json!({"type": "presence.set", "presence": "available"})).await?;
    let ring = window.expect("call.ring").await?;
    let a_call = ring["call_id"].as_u64().unwrap();
    window.send(json!({"type": "call.answer", "call_id": a_call})).await?;
    a.expect("call.started").await?;
    b.expect_where("queue.position", |m| m["position"] == 1).await?;
    c.expect_where("queue.position", |m| m["position"] == 2).await?;

    // 4. The rules of the edits.
    let (s, e) = admin_api.post("/api/admin/towns", json!({"name": "  "})).await?;
    assert_eq!((s, e["error"]["code"].as_str()), (400, Some("bad_request")), "{e}");
    let (s, e) = admin_api.post("/api/admin/towns", json!({"name": town_row["name"]})).await?;
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("duplicate")), "{e}");
    let (s, e) = admin_api.post("/api/admin/towns", json!({"name": "x", "bogus": 1})).await?;
    assert_eq!(s, 400, "{e}");
    let (s, e) = admin_api.put("/api/admin/towns/999999", json!({"name": "x"})).await?;
    assert_eq!(s, 404, "{e}");
    let (s, e) = admin_api
        .post(
            "/api/admin/matters",
            json!({"code": "has space", "name": "n", "plain_name": "p", "window_kind": "custom"}),
        )
        .await?;
    assert_eq!(s, 400, "{e}");
    // A town with villages cannot be deleted: it says what refers to it.
    let (s, e) = admin_api.delete(&format!("/api/admin/towns/{town}")).await?;
    assert_eq!((s, e["error"]["code"].as_str()), (409, Some("in_use")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("停用"), "{e}");
    // A new, unused village can be deleted.
    let (s, v) =
        admin_api.post("/api/admin/villages", json!({"town_id": town, "name": "新建村", "kind": "village"})).await?;
    assert_eq!(s, 201, "{v}");
    let (s, _) = admin_api.delete(&format!("/api/admin/villages/{}", v["id"])).await?;
    assert_eq!(s, 204);
    // A new matter, then disabled: no longer offered to the villages.
    let (s, m) = admin_api.post("/api/admin/matters", json!({"code": "T-NEW-1", "name": "测试新事项申请", "plain_name": "测试新事项", "window_kind": "comprehensive",
                    "required_papers": ["身份证"], "keywords": ["测试"]}))
    .await?;
    assert_eq!(s, 201, "{m}");
    let (_, offered) = get_json(&server, "/api/matters", Some(&same[2].token)).await?;
    assert!(offered.as_array().unwrap().iter().any(|x| x["id"] == m["id"]), "a new matter is offered");
    let (s, _) = admin_api.post(&format!("/api/admin/matters/{}/disable", m["id"]), json!({})).await?;
    assert_eq!(s, 200);
    let (_, offered) = get_json(&server, "/api/matters", Some(&same[2].token)).await?;
    assert!(!offered.as_array().unwrap().iter().any(|x| x["id"] == m["id"]), "a disabled matter is not offered");
    // A disabled village: its kiosk's socket closes and its token is refused.
    let c_village = same[2].village_id().unwrap();
    let (s, _) = admin_api.post(&format!("/api/admin/villages/{c_village}/disable"), json!({})).await?;
    assert_eq!(s, 200);
    assert_eq!(c.expect("error").await?["code"], "unauthorized");
    assert_eq!(c.closed().await?, Some(4401));
    let (s, _) = get_json(&server, "/api/me", Some(&same[2].token)).await?;
    assert_eq!(s, 401);
    // B still waits, first.
    b.send(json!({"type": "ping", "req": 5})).await?;
    b.expect("pong").await?;
    let (s, _) = admin_api.post(&format!("/api/admin/villages/{c_village}/enable"), json!({})).await?;
    assert_eq!(s, 200);
    let (s, _) = get_json(&server, "/api/me", Some(&same[2].token)).await?;
    assert_eq!(s, 200, "an enabled village's kiosk is let in again");

    // Only the administrator: a supervisor and a kiosk 403, nobody 401.
    let supervisor = login_as(&server, "supervisor").await?;
    let (s, _) = Api::new(&server, &supervisor).post("/api/admin/towns", json!({"name": "越权镇"})).await?;
    assert_eq!(s, 403);
    let (s, _) = get_json(&server, "/api/admin/region", Some(&same[0].token)).await?;
    assert_eq!(s, 403);
    let (s, _) = get_json(&server, "/api/admin/region", None).await?;
    assert_eq!(s, 401);

    // Every change is in the audit record with who and when, and the record verifies.
    let (s, changes) = get_json(&server, "/api/admin/changes", Some(&admin)).await?;
    assert_eq!(s, 200);
    let actions: Vec<&str> = changes.as_array().unwrap().iter().filter_map(|c| c["action"].as_str()).collect();
    for want in [
        "window.created",
        "window.updated",
        "window.disabled",
        "town.updated",
        "village.created",
        "village.deleted",
        "matter.created",
        "matter.disabled",
        "village.disabled",
        "village.enabled",
    ] {
        assert!(actions.contains(&want), "{want} in {actions:?}");
    }
    assert!(!actions.iter().any(|a| a.starts_with("town.created")), "refused changes are not recorded");
    let first = &changes[0];
    assert_eq!(first["actor"]["kind"], "staff");
    assert!(first["at_ms"].as_u64().unwrap() > 0);

    // After a restart the region is as the administrator left it.
    drop((a, b, window));
    server.stop().await?;
    server.restart().await?;
    let admin = login_as(&server, "admin").await?;
    let (_, after) = get_json(&server, "/api/admin/region", Some(&admin)).await?;
    let w1_after = after["windows"].as_array().unwrap().iter().find(|w| w["id"] == w1_id).unwrap();
    assert_eq!(w1_after["disabled"], true);
    let town_after = after["towns"].as_array().unwrap().iter().find(|t| t["id"] == town).unwrap();
    assert_eq!(town_after["any_window"], true);
    let verify = std::process::Command::new(cunneng_tests::server::binary_path())
        .args(["audit", "verify", "--data-dir"])
        .env_remove("CUNNENG_CONFIG")
        .arg(server.data_dir())
        .output()?;
    assert!(verify.status.success(), "audit verify: {}", String::from_utf8_lossy(&verify.stderr));
    Ok(())
}
