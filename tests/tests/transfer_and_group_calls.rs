//! Transfer sends a live call to the head of another window's queue (and the statistics count
//! it as the same call); a dispatcher's group call reaches several village rooms, each of which
//! accepts or declines.

use cunneng_tests::client::{STEP, WsClient, demo_kiosks, demo_staff, get_json, login_as, pairing};
use cunneng_tests::server::Server;
use serde_json::json;

#[tokio::test]
async fn transfer_goes_to_head_of_other_window_and_keeps_the_call() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let approvers = demo_staff(&server, "window").await?;
    let other = approvers
        .iter()
        .find(|a| a.town_id() == p.approver.town_id() && a.window_id() != Some(p.window_id))
        .expect("another window in the town")
        .clone();
    let other_window = other.window_id().unwrap();

    let mut w1 = WsClient::connect(&server, &p.approver.token).await?;
    w1.send(json!({"type": "presence.set", "presence": "available"})).await?;
    let mut w2 = WsClient::connect(&server, &other.token).await?;
    let mut kiosk = WsClient::connect(&server, &p.kiosk.token).await?;
    kiosk.send(json!({"type": "call.request", "matter_id": p.matter_id})).await?;
    let pos = kiosk.expect("queue.position").await?;
    let call_id = pos["call_id"].clone();
    w1.expect("call.ring").await?;
    w1.send(json!({"type": "call.answer", "call_id": call_id})).await?;
    kiosk.expect("call.started").await?;

    // Bad transfers change nothing.
    let err = w1
        .request(json!({"type": "call.transfer", "call_id": call_id, "window_id": 987654}), 1, STEP)
        .await?
        .expect("error");
    assert!(err["code"] == "not_found" || err["code"] == "forbidden", "{err}");
    let err = w2
        .request(json!({"type": "call.transfer", "call_id": call_id, "window_id": p.window_id}), 2, STEP)
        .await?
        .expect("error");
    assert!(err["code"] == "forbidden" || err["code"] == "conflict" || err["code"] == "not_found", "{err}");

    w1.send(json!({"type": "call.transfer", "call_id": call_id, "window_id": other_window})).await?;
    let t = kiosk.expect("call.transferred").await?;
    assert_eq!(t["window"]["id"], other_window);
    let pos2 = kiosk.expect_where("queue.position", |m| m["window"]["id"] == other_window).await?;
    assert_eq!(pos2["call_id"], call_id, "the call keeps its id (and case)");
    assert_eq!(pos2["position"], 1);
    w1.expect("call.ended").await?;

    let snap = w2.expect_where("queue.snapshot", |m| !m["items"].as_array().unwrap().is_empty()).await?;
    assert_eq!(snap["items"][0]["call_id"], call_id);
    assert_eq!(snap["items"][0]["transferred"], true);
    w2.send(json!({"type": "call.answer", "call_id": call_id})).await?;
    w2.expect("call.started").await?;
    kiosk.expect("call.started").await?;

    // The statistics count one call (the transfer continues it, it is not a second call),
    // answered once, with the ring of its first answer (the second window took it from its
    // queue list, without a ring).
    let sup = login_as(&server, "supervisor").await?;
    let (st, r) = get_json(&server, "/api/stats", Some(&sup)).await?;
    assert_eq!(st, 200, "{r}");
    let t = &r["totals"];
    assert_eq!((t["cases"].as_u64(), t["calls"].as_u64(), t["answered"].as_u64()), (Some(1), Some(1), Some(1)), "{t}");
    assert_eq!((t["waiting"]["count"].as_u64(), t["ring_to_answer"]["count"].as_u64()), (Some(1), Some(1)), "{t}");
    Ok(())
}

#[tokio::test]
async fn group_call_invites_villages_and_tracks_who_joined() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let dispatcher = demo_staff(&server, "dispatcher").await?.remove(0);
    let kiosks: Vec<_> =
        demo_kiosks(&server).await?.into_iter().filter(|k| k.town_id() == dispatcher.town_id()).collect();
    assert!(kiosks.len() >= 2);
    let (s, villages) = get_json(&server, "/api/villages", Some(&dispatcher.token)).await?;
    assert_eq!(s, 200);
    assert!(villages.as_array().unwrap().len() >= 2);

    let mut k1 = WsClient::connect(&server, &kiosks[0].token).await?;
    let mut k2 = WsClient::connect(&server, &kiosks[1].token).await?;
    let mut d = WsClient::connect(&server, &dispatcher.token).await?;

    // Villages of another town are refused.
    let foreign: Vec<_> =
        demo_kiosks(&server).await?.into_iter().filter(|k| k.town_id() != dispatcher.town_id()).collect();
    let err = d
        .request(json!({"type": "group.start", "village_ids": [foreign[0].village_id()]}), 1, STEP)
        .await?
        .expect("error");
    assert!(err["code"] == "forbidden" || err["code"] == "not_found", "{err}");
    let err = d.request(json!({"type": "group.start", "village_ids": []}), 2, STEP).await?.expect("error");
    assert_eq!(err["code"], "bad_message");

    d.send(json!({"type": "group.start", "village_ids": [kiosks[0].village_id(), kiosks[1].village_id()]})).await?;
    let inv1 = k1.expect("group.invite").await?;
    let inv2 = k2.expect("group.invite").await?;
    let group_id = inv1["group_id"].clone();
    assert_eq!(inv2["group_id"], group_id);

    k1.send(json!({"type": "group.accept", "group_id": group_id})).await?;
    let joined = k1.expect("group.joined").await?;
    assert!(joined["room"].as_str().unwrap().starts_with("group:"));
    k2.send(json!({"type": "group.decline", "group_id": group_id})).await?;
    let state = d
        .expect_where("group.state", |m| {
            let states: Vec<_> = m["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["state"].as_str().unwrap_or("").to_string())
                .collect();
            states.contains(&"joined".to_string()) && states.contains(&"declined".to_string())
        })
        .await?;
    assert_eq!(state["group_id"], group_id);

    d.send(json!({"type": "group.end", "group_id": group_id})).await?;
    k1.expect("group.ended").await?;
    Ok(())
}
