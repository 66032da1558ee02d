//! Two synthetic WebRTC peers paired through the queue each receive the other's audio and
//! video through the server (never peer to peer); an ICE restart keeps media flowing; a
//! dispatcher's group call brings every joined kiosk's media to the dispatcher.

use std::time::Duration;

use cunneng_tests::client::{
    AnsweredCall, WsClient, answered_call, demo_kiosks, demo_staff, eventually, negotiate, pairing,
};
use cunneng_tests::peer::SyntheticPeer;
use cunneng_tests::server::Server;
use serde_json::json;

const MEDIA: Duration = Duration::from_secs(15);

#[tokio::test]
async fn paired_peers_receive_each_others_media() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let p = pairing(&server, 0).await?;
    let AnsweredCall { mut kiosk, mut window, call_id, room, .. } = answered_call(&server, &p).await?;

    let kiosk_peer = SyntheticPeer::new("kiosk").await?;
    let window_peer = SyntheticPeer::new("window").await?;
    negotiate(&mut kiosk, &kiosk_peer, &room, "k1", kiosk_peer.offer().await?).await?;
    negotiate(&mut window, &window_peer, &room, "w1", window_peer.offer().await?).await?;
    kiosk_peer.wait_connected(MEDIA).await?;
    window_peer.wait_connected(MEDIA).await?;

    let kiosk_label = format!("kiosk:{}", p.kiosk.id());
    let staff_label = format!("staff:{}", p.approver.id());
    eventually(MEDIA, "the window receives the kiosk's audio and video", || {
        let c = window_peer.received_from(&kiosk_label);
        c.audio_packets > 10 && c.video_packets > 10
    })
    .await?;
    eventually(MEDIA, "the kiosk receives the window's audio and video", || {
        let c = kiosk_peer.received_from(&staff_label);
        c.audio_packets > 10 && c.video_packets > 10
    })
    .await?;
    assert!(kiosk_peer.keyframes_received() > 0, "a keyframe reached the kiosk");
    assert!(kiosk_peer.plis_received() + window_peer.plis_received() > 0, "the server asked publishers for keyframes");

    // ICE restart on the same connection: media keeps flowing.
    let before = window_peer.received_from(&kiosk_label).video_packets;
    negotiate(&mut kiosk, &kiosk_peer, &room, "k1", kiosk_peer.ice_restart_offer().await?).await?;
    eventually(MEDIA, "media flows after the ICE restart", || {
        window_peer.received_from(&kiosk_label).video_packets > before + 30
    })
    .await?;

    // The server counts what it forwarded.
    let metrics =
        cunneng_tests::client::http().get(format!("{}/metrics", server.base_url)).send().await?.text().await?;
    let forwarded: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("cunneng_forwarded_packets_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(forwarded > 40, "forwarded packets counted: {forwarded}");
    assert!(metrics.contains("cunneng_live_calls 1"), "{metrics}");

    kiosk.send(json!({"type": "call.hangup", "call_id": call_id})).await?;
    window.expect("call.ended").await?;
    kiosk_peer.close().await?;
    window_peer.close().await?;
    Ok(())
}

#[tokio::test]
async fn media_offer_for_a_room_one_is_not_in_is_refused() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let kiosks = demo_kiosks(&server).await?;
    let mut k = WsClient::connect(&server, &kiosks[0].token).await?;
    let peer = SyntheticPeer::new("intruder").await?;
    let offer = peer.offer().await?;
    for room in ["call:1", "group:1", "nonsense", ""] {
        let err = k
            .request(
                json!({"type": "media.offer", "room": room, "pc_id": "x", "sdp": offer}),
                1,
                cunneng_tests::client::STEP,
            )
            .await?
            .expect("error");
        assert_eq!(err["code"], "forbidden", "{room}: {err}");
    }
    peer.close().await?;
    Ok(())
}

#[tokio::test]
async fn group_call_brings_every_joined_kiosk_to_the_dispatcher() -> anyhow::Result<()> {
    let server = Server::start_demo().await?;
    let dispatcher = demo_staff(&server, "dispatcher").await?.remove(0);
    let kiosks: Vec<_> =
        demo_kiosks(&server).await?.into_iter().filter(|k| k.town_id() == dispatcher.town_id()).take(2).collect();
    assert_eq!(kiosks.len(), 2);
    let mut d = WsClient::connect(&server, &dispatcher.token).await?;
    let mut k1 = WsClient::connect(&server, &kiosks[0].token).await?;
    let mut k2 = WsClient::connect(&server, &kiosks[1].token).await?;
    d.send(json!({"type": "group.start", "village_ids": [kiosks[0].village_id(), kiosks[1].village_id()]})).await?;
    let group_id = k1.expect("group.invite").await?["group_id"].clone();
    k2.expect("group.invite").await?;
    k1.send(json!({"type": "group.accept", "group_id": group_id})).await?;
    k2.send(json!({"type": "group.accept", "group_id": group_id})).await?;
    let room = k1.expect("group.joined").await?["room"].as_str().unwrap().to_string();
    k2.expect("group.joined").await?;

    let dp = SyntheticPeer::new("dispatcher").await?;
    let p1 = SyntheticPeer::new("k1").await?;
    let p2 = SyntheticPeer::new("k2").await?;
    negotiate(&mut k1, &p1, &room, "p1", p1.offer().await?).await?;
    negotiate(&mut k2, &p2, &room, "p2", p2.offer().await?).await?;
    negotiate(&mut d, &dp, &room, "d1", dp.offer().await?).await?;
    // Two kiosks to receive: the server asks the dispatcher for more receive slots.
    let re = d.expect("media.renegotiate").await?;
    let slots = re["recv_slots"].as_u64().unwrap() as usize;
    assert!(slots >= 2, "{re}");
    negotiate(&mut d, &dp, &room, "d1", dp.add_recv_slots(slots - 1).await?).await?;
    dp.wait_connected(MEDIA).await?;

    for k in &kiosks {
        let label = format!("kiosk:{}", k.id());
        eventually(MEDIA, &format!("the dispatcher receives {label}"), || dp.received_from(&label).video_packets > 5)
            .await?;
    }
    let dlabel = format!("staff:{}", dispatcher.id());
    eventually(MEDIA, "each kiosk receives the dispatcher", || {
        p1.received_from(&dlabel).video_packets > 5 && p2.received_from(&dlabel).video_packets > 5
    })
    .await?;
    // Kiosks in a group call do not receive each other.
    assert_eq!(p1.received_from(&format!("kiosk:{}", kiosks[1].id())).video_packets, 0);

    d.send(json!({"type": "group.end", "group_id": group_id})).await?;
    k1.expect("group.ended").await?;
    Ok(())
}
