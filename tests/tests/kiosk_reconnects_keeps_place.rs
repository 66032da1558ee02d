//! A kiosk whose connection drops keeps its place in the queue and gets it back on reconnect;
//! the server itself can be killed and restarted without losing a waiting call.

use cunneng_tests::client::{WsClient, pairing};
use cunneng_tests::server::Server;
use serde_json::json;

#[tokio::test]
async fn kiosk_reconnects_keeps_place() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let mut kiosk = WsClient::connect(&server, &p.kiosk.token).await?;
    kiosk.send(json!({"type": "call.request", "matter_id": p.matter_id})).await?;
    let pos = kiosk.expect("queue.position").await?;
    kiosk.close().await;

    let mut kiosk = WsClient::connect(&server, &p.kiosk.token).await?;
    let again = kiosk.expect("queue.position").await?;
    assert_eq!(again["call_id"], pos["call_id"]);
    assert_eq!(again["position"], 1);
    Ok(())
}

#[tokio::test]
async fn waiting_call_survives_kill_9_and_restart() -> anyhow::Result<()> {
    let mut server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let mut kiosk = WsClient::connect(&server, &p.kiosk.token).await?;
    kiosk.send(json!({"type": "call.request", "matter_id": p.matter_id})).await?;
    let pos = kiosk.expect("queue.position").await?;

    server.kill9().await?;
    server.restart().await?;

    let mut kiosk = WsClient::connect(&server, &p.kiosk.token).await?;
    let again = kiosk.expect("queue.position").await?;
    assert_eq!(again["call_id"], pos["call_id"], "the same call is still waiting");

    let mut window = WsClient::connect(&server, &p.approver.token).await?;
    let snap = window.expect_where("queue.snapshot", |m| !m["items"].as_array().unwrap().is_empty()).await?;
    assert_eq!(snap["items"][0]["call_id"], pos["call_id"]);
    window.send(json!({"type": "presence.set", "presence": "available"})).await?;
    let ring = window.expect("call.ring").await?;
    assert_eq!(ring["call_id"], pos["call_id"]);
    Ok(())
}

#[tokio::test]
async fn approver_dropping_mid_call_puts_kiosk_back_at_head() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let mut window = WsClient::connect(&server, &p.approver.token).await?;
    window.send(json!({"type": "presence.set", "presence": "available"})).await?;
    let mut kiosk = WsClient::connect(&server, &p.kiosk.token).await?;
    kiosk.send(json!({"type": "call.request", "matter_id": p.matter_id})).await?;
    let pos = kiosk.expect("queue.position").await?;
    window.expect("call.ring").await?;
    window.send(json!({"type": "call.answer", "call_id": pos["call_id"]})).await?;
    kiosk.expect("call.started").await?;
    window.close().await;

    let back = kiosk.expect_where("queue.position", |m| m["position"] == 1).await?;
    assert_eq!(back["call_id"], pos["call_id"]);
    Ok(())
}

#[tokio::test]
async fn kiosk_reconnecting_mid_call_resumes_the_call_and_its_media() -> anyhow::Result<()> {
    use cunneng_tests::client::{eventually, negotiate};
    use cunneng_tests::peer::SyntheticPeer;
    use std::time::Duration;

    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let cunneng_tests::client::AnsweredCall { kiosk, mut window, call_id, room, .. } =
        cunneng_tests::client::answered_call(&server, &p).await?;
    let mut kiosk = kiosk;
    let window_peer = SyntheticPeer::new("window").await?;
    negotiate(&mut window, &window_peer, &room, "w1", window_peer.offer().await?).await?;
    let first = SyntheticPeer::new("kiosk-1").await?;
    negotiate(&mut kiosk, &first, &room, "k1", first.offer().await?).await?;
    first.wait_connected(Duration::from_secs(10)).await?;

    // The kiosk's network drops: socket and peer connection gone.
    kiosk.close().await;
    first.close().await?;
    let r = window.expect("call.peer_reconnecting").await?;
    assert_eq!(r["call_id"], call_id);

    // It comes back within the grace period: same call, new peer connection, media again.
    let mut kiosk = WsClient::connect(&server, &p.kiosk.token).await?;
    let again = kiosk.expect("call.started").await?;
    assert_eq!(again["call_id"], call_id);
    assert_eq!(again["room"], room);
    window.expect("call.peer_reconnected").await?;
    let second = SyntheticPeer::new("kiosk-2").await?;
    negotiate(&mut kiosk, &second, &room, "k2", second.offer().await?).await?;
    let kiosk_label = format!("kiosk:{}", p.kiosk.id());
    let before = window_peer.received_from(&kiosk_label).video_packets;
    eventually(Duration::from_secs(15), "the window receives the reconnected kiosk", || {
        window_peer.received_from(&kiosk_label).video_packets > before + 10
    })
    .await?;
    second.close().await?;
    window_peer.close().await?;
    Ok(())
}
