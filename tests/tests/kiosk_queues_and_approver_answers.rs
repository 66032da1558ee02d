//! A kiosk asks for a call, sees its place, the approver of the right window is rung and
//! answers; both sides get `call.started`; a hang-up ends it for both.

use cunneng_tests::client::{WsClient, pairing};
use cunneng_tests::server::Server;
use serde_json::json;

#[tokio::test]
async fn kiosk_queues_and_approver_answers() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;

    let mut window = WsClient::connect(&server, &p.approver.token).await?;
    assert_eq!(window.welcome["me"]["role"], "approver");
    window.send(json!({"type": "presence.set", "presence": "available"})).await?;
    window.expect_where("presence", |m| m["presence"] == "available").await?;

    let mut kiosk = WsClient::connect(&server, &p.kiosk.token).await?;
    assert_eq!(kiosk.welcome["me"]["role"], "kiosk");
    kiosk.send(json!({"type": "call.request", "matter_id": p.matter_id})).await?;
    let pos = kiosk.expect("queue.position").await?;
    assert_eq!(pos["position"], 1);
    assert_eq!(pos["window"]["id"], p.window_id);
    assert!(pos["estimated_wait_secs"].as_u64().is_some());
    let call_id = pos["call_id"].as_u64().unwrap();

    let ring = window.expect("call.ring").await?;
    assert_eq!(ring["call_id"], call_id);
    assert_eq!(ring["matter"]["id"], p.matter_id);
    let snapshot = window.expect_where("queue.snapshot", |m| !m["items"].as_array().unwrap().is_empty()).await?;
    assert_eq!(snapshot["items"][0]["call_id"], call_id);

    window.send(json!({"type": "call.answer", "call_id": call_id})).await?;
    let started_w = window.expect("call.started").await?;
    let started_k = kiosk.expect("call.started").await?;
    assert_eq!(started_w["call_id"], call_id);
    assert_eq!(started_k["call_id"], call_id);
    assert_eq!(started_w["room"], started_k["room"]);

    // A second answer of the same call is a conflict and changes nothing.
    let err =
        window.request(json!({"type": "call.answer", "call_id": call_id}), 9, cunneng_tests::client::STEP).await?;
    let err = err.expect("an error for the double answer");
    assert_eq!(err["code"], "conflict");

    kiosk.send(json!({"type": "call.hangup", "call_id": call_id})).await?;
    let ended_w = window.expect("call.ended").await?;
    let ended_k = kiosk.expect("call.ended").await?;
    assert_eq!(ended_w["call_id"], call_id);
    assert_eq!(ended_k["reason"], "hangup");
    Ok(())
}

#[tokio::test]
async fn second_kiosk_waits_behind_first_and_moves_up_when_first_cancels() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let kiosks = cunneng_tests::client::demo_kiosks(&server).await?;
    // Two kiosks of the same town.
    let town = kiosks[0].town_id();
    let same: Vec<_> = kiosks.iter().filter(|k| k.town_id() == town).collect();
    assert!(same.len() >= 2, "demo needs two villages in a town");
    let (_, matters) = cunneng_tests::client::get_json(&server, "/api/matters", Some(&same[0].token)).await?;
    let matter_id = matters[0]["id"].as_i64().unwrap();

    let mut a = WsClient::connect(&server, &same[0].token).await?;
    let mut b = WsClient::connect(&server, &same[1].token).await?;
    a.send(json!({"type": "call.request", "matter_id": matter_id})).await?;
    let pa = a.expect("queue.position").await?;
    assert_eq!(pa["position"], 1);
    b.send(json!({"type": "call.request", "matter_id": matter_id})).await?;
    let pb = b.expect("queue.position").await?;
    assert_eq!(pb["position"], 2);

    // B cannot cancel A's call.
    let err =
        b.request(json!({"type": "call.cancel", "call_id": pa["call_id"]}), 1, cunneng_tests::client::STEP).await?;
    assert!(err.is_some(), "cancelling another kiosk's call must fail");

    a.send(json!({"type": "call.cancel", "call_id": pa["call_id"]})).await?;
    a.expect_where("call.ended", |m| m["reason"] == "cancelled").await?;
    let moved = b.expect_where("queue.position", |m| m["position"] == 1).await?;
    assert_eq!(moved["call_id"], pb["call_id"]);
    Ok(())
}
