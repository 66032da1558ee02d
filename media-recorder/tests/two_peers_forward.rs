//! The SFU in-process on 127.0.0.1 with synthetic WebRTC peers.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use cunneng_media_recorder::{MediaConfig, MediaError, MediaEvent, Sfu};
use cunneng_tests::peer::{PeerOptions, SyntheticPeer};
use tokio::sync::mpsc;

const CONNECT: Duration = Duration::from_secs(10);
const ROOM: &str = "call:1";

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,cunneng_media_recorder=info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

struct Harness {
    sfu: Sfu,
    events: mpsc::Receiver<MediaEvent>,
    seen: Vec<MediaEvent>,
}

impl Harness {
    fn new(cfg: MediaConfig) -> Harness {
        init_tracing();
        let (sfu, events) = Sfu::new(cfg);
        Harness { sfu, events, seen: Vec::new() }
    }

    fn loopback() -> Harness {
        Harness::new(MediaConfig::loopback())
    }

    /// Offer/answer a new peer and wait until both ends are connected.
    async fn connect(&mut self, room: &str, label: &str, pc_id: &str) -> Result<SyntheticPeer> {
        self.connect_with(room, label, pc_id, PeerOptions::default()).await
    }

    async fn connect_with(&mut self, room: &str, label: &str, pc_id: &str, opts: PeerOptions) -> Result<SyntheticPeer> {
        let peer = SyntheticPeer::with_options(label, opts).await?;
        self.negotiate(&peer, room, label, pc_id, peer.offer().await?).await?;
        peer.wait_connected(CONNECT).await?;
        self.wait_event(|e| matches!(e, MediaEvent::Connected { participant, .. } if participant == label)).await?;
        Ok(peer)
    }

    async fn negotiate(
        &self,
        peer: &SyntheticPeer,
        room: &str,
        label: &str,
        pc_id: &str,
        offer: String,
    ) -> Result<String> {
        let answer = self.sfu.handle_offer(room, label, pc_id, &offer).await?;
        peer.apply_answer(&answer).await?;
        Ok(answer)
    }

    /// Waits for (or finds among already received) an event matching `pred`; consumes it.
    async fn wait_event(&mut self, pred: impl Fn(&MediaEvent) -> bool) -> Result<MediaEvent> {
        if let Some(i) = self.seen.iter().position(&pred) {
            return Ok(self.seen.remove(i));
        }
        let deadline = tokio::time::Instant::now() + CONNECT;
        loop {
            let e = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .context("event not received in time")?
                .context("event channel closed")?;
            if pred(&e) {
                return Ok(e);
            }
            self.seen.push(e);
        }
    }

    fn drain_events(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
    }
}

/// Polls `cond` until it holds or `timeout` passes.
async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `peer` received at least `audio` audio and `video` video packets from `from`.
async fn receives(peer: &SyntheticPeer, from: &str, audio: u64, video: u64) -> Result<()> {
    if eventually(Duration::from_secs(10), || {
        let c = peer.received_from(from);
        c.audio_packets >= audio && c.video_packets >= video
    })
    .await
    {
        Ok(())
    } else {
        bail!(
            "did not receive enough from {from}: {:?} (all streams {:?})",
            peer.received_from(from),
            peer.received_by_stream()
        )
    }
}

/// Packets received from `from` grow by at least `n` within a few seconds.
async fn keeps_receiving(peer: &SyntheticPeer, from: &str, n: u64) -> Result<()> {
    let start = peer.received_from(from);
    receives(peer, from, start.audio_packets + n, start.video_packets + n / 2).await
}

async fn one_to_one(h: &mut Harness) -> Result<(SyntheticPeer, SyntheticPeer)> {
    h.sfu.set_subscriptions(ROOM, "kiosk:1", vec!["staff:2".into()]);
    h.sfu.set_subscriptions(ROOM, "staff:2", vec!["kiosk:1".into()]);
    let a = h.connect(ROOM, "kiosk:1", "pc-a").await?;
    // Let the first publisher's video start before its subscriber connects.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = h.connect(ROOM, "staff:2", "pc-b").await?;
    Ok((a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_receive_each_other_and_publishers_get_keyframe_requests() -> Result<()> {
    let mut h = Harness::loopback();
    h.sfu.set_subscriptions(ROOM, "kiosk:1", vec!["staff:2".into()]);
    h.sfu.set_subscriptions(ROOM, "staff:2", vec!["kiosk:1".into()]);
    let a = h.connect(ROOM, "kiosk:1", "pc-a").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let plis_before = a.plis_received();
    let b = h.connect(ROOM, "staff:2", "pc-b").await?;

    receives(&b, "kiosk:1", 25, 15).await?;
    receives(&a, "staff:2", 25, 15).await?;
    // The msid stream id of each forwarded stream is the publisher's label, and nothing else
    // arrives.
    assert_eq!(b.received_by_stream().keys().collect::<Vec<_>>(), vec!["kiosk:1"]);
    assert_eq!(a.received_by_stream().keys().collect::<Vec<_>>(), vec!["staff:2"]);
    assert!(
        a.plis_received() > plis_before,
        "publisher got no PLI when its subscriber connected ({} before, {} after)",
        plis_before,
        a.plis_received()
    );
    // The keyframe the PLI asked for reached the subscriber.
    assert!(eventually(Duration::from_secs(3), || b.keyframes_received() > 0).await);

    // A keyframe request from the receiving side is relayed to the publisher.
    let before = a.plis_received();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(b.request_keyframes().await > 0);
    assert!(eventually(Duration::from_secs(3), || a.plis_received() > before).await, "subscriber PLI not relayed");

    let stats = h.sfu.stats();
    assert_eq!(stats.peer_connections, 2);
    assert_eq!(stats.rooms, 1);
    assert!(stats.forwarded_packets > 80 && stats.forwarded_bytes > 1000, "{stats:?}");

    h.sfu.close_room(ROOM).await;
    assert_eq!(h.sfu.stats().peer_connections, 0);
    assert_eq!(h.sfu.stats().rooms, 0);
    a.close().await?;
    b.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_restart_keeps_media_flowing() -> Result<()> {
    let mut h = Harness::loopback();
    let (a, b) = one_to_one(&mut h).await?;
    receives(&b, "kiosk:1", 10, 5).await?;

    let old_answer_ufrag = {
        let offer = a.offer().await?;
        let answer = h.negotiate(&a, ROOM, "kiosk:1", "pc-a", offer).await?;
        ufrag(&answer)
    };
    let offer = a.ice_restart_offer().await?;
    let answer = h.negotiate(&a, ROOM, "kiosk:1", "pc-a", offer).await?;
    assert_ne!(ufrag(&answer), old_answer_ufrag, "server did not restart ICE");
    assert!(answer.contains("a=candidate:"), "restart answer without candidates");

    keeps_receiving(&b, "kiosk:1", 50).await?;
    keeps_receiving(&a, "staff:2", 50).await?;
    assert_eq!(h.sfu.stats().peer_connections, 2);
    h.drain_events();
    assert!(!h.seen.iter().any(|e| matches!(e, MediaEvent::Disconnected { .. })), "{:?}", h.seen);
    h.sfu.close_room(ROOM).await;
    a.close().await?;
    b.close().await?;
    Ok(())
}

fn ufrag(sdp: &str) -> String {
    sdp.lines().find_map(|l| l.strip_prefix("a=ice-ufrag:")).unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_pc_id_replaces_the_connection() -> Result<()> {
    let mut h = Harness::loopback();
    let (a, b) = one_to_one(&mut h).await?;
    receives(&b, "kiosk:1", 10, 5).await?;

    // The kiosk reloads its page: new RTCPeerConnection, same participant.
    let a2 = h.connect(ROOM, "kiosk:1", "pc-a2").await?;
    assert_eq!(h.sfu.stats().peer_connections, 2);
    // The old connection is gone on the server side: it stops receiving.
    let old = a.received_from("staff:2");
    keeps_receiving(&a2, "staff:2", 40).await?;
    assert!(a.received_from("staff:2").audio_packets <= old.audio_packets + 5);
    // b keeps receiving kiosk:1 on the same stream, now from the new connection.
    a.close().await?;
    keeps_receiving(&b, "kiosk:1", 40).await?;
    assert_eq!(b.received_by_stream().len(), 1);
    h.drain_events();
    assert!(
        !h.seen.iter().any(|e| matches!(e, MediaEvent::Disconnected { .. })),
        "replacement is not a disconnection: {:?}",
        h.seen
    );
    h.sfu.close_room(ROOM).await;
    a2.close().await?;
    b.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_participant_stops_forwarding() -> Result<()> {
    let mut h = Harness::loopback();
    let (a, b) = one_to_one(&mut h).await?;
    receives(&b, "kiosk:1", 10, 5).await?;

    h.sfu.remove_participant(ROOM, "kiosk:1").await;
    assert_eq!(h.sfu.stats().peer_connections, 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frozen = b.received_from("kiosk:1");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(b.received_from("kiosk:1"), frozen, "still forwarding");

    // b's subscription now points nowhere: its slot is released on the next offer.
    h.sfu.set_subscriptions(ROOM, "staff:2", vec![]);
    let ev = h
        .wait_event(|e| matches!(e, MediaEvent::NeedsRenegotiation { participant, .. } if participant == "staff:2"))
        .await?;
    assert_eq!(ev, MediaEvent::NeedsRenegotiation { room: ROOM.into(), participant: "staff:2".into(), recv_slots: 1 });
    let answer = h.negotiate(&b, ROOM, "staff:2", "pc-b", b.offer().await?).await?;
    assert!(!answer.contains("msid:kiosk:1"), "released slot still announced");

    h.sfu.remove_participant(ROOM, "staff:2").await;
    let stats = h.sfu.stats();
    assert_eq!((stats.peer_connections, stats.rooms), (0, 0));
    a.close().await?;
    b.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_receives_every_kiosk_after_renegotiation() -> Result<()> {
    let mut h = Harness::loopback();
    let room = "group:7";
    let kiosks = ["kiosk:1", "kiosk:2", "kiosk:3"];
    let dispatcher = "staff:9";
    h.sfu.set_subscriptions(room, dispatcher, kiosks.iter().map(|k| k.to_string()).collect());
    for k in kiosks {
        h.sfu.set_subscriptions(room, k, vec![dispatcher.into()]);
    }
    let d = h.connect(room, dispatcher, "pc-d").await?;
    let ev = h.wait_event(|e| matches!(e, MediaEvent::NeedsRenegotiation { .. })).await?;
    assert_eq!(ev, MediaEvent::NeedsRenegotiation { room: room.into(), participant: dispatcher.into(), recv_slots: 3 });
    let mut peers = Vec::new();
    for (i, k) in kiosks.iter().enumerate() {
        peers.push(h.connect(room, k, &format!("pc-k{i}")).await?);
    }
    // Two more receive pairs: three in all.
    let offer = d.add_recv_slots(2).await?;
    h.negotiate(&d, room, dispatcher, "pc-d", offer).await?;
    for k in kiosks {
        receives(&d, k, 20, 10).await?;
    }
    assert_eq!(d.received_by_stream().len(), 3);
    for p in &peers {
        receives(p, dispatcher, 20, 10).await?;
        assert_eq!(p.received_by_stream().len(), 1);
    }
    h.drain_events();
    assert!(
        !h.seen
            .iter()
            .any(|e| matches!(e, MediaEvent::NeedsRenegotiation { participant, .. } if participant == dispatcher)),
        "all slots assigned, yet: {:?}",
        h.seen
    );

    // A kiosk leaves the group: the dispatcher is asked to renegotiate, and its slot is released.
    h.sfu.remove_participant(room, "kiosk:2").await;
    h.sfu.set_subscriptions(room, dispatcher, vec!["kiosk:1".into(), "kiosk:3".into()]);
    let ev = h.wait_event(|e| matches!(e, MediaEvent::NeedsRenegotiation { .. })).await?;
    assert!(matches!(ev, MediaEvent::NeedsRenegotiation { recv_slots: 3, .. }), "{ev:?}");
    let answer = h.negotiate(&d, room, dispatcher, "pc-d", d.offer().await?).await?;
    assert!(!answer.contains("msid:kiosk:2"));
    keeps_receiving(&d, "kiosk:3", 20).await?;

    h.sfu.close_room(room).await;
    assert_eq!(h.sfu.stats().peer_connections, 0);
    d.close().await?;
    for p in peers {
        p.close().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_rejected_and_nothing_leaks() -> Result<()> {
    let h = Harness::new(MediaConfig { max_peer_connections: 2, ..MediaConfig::loopback() });
    let garbage = h.sfu.handle_offer(ROOM, "kiosk:1", "pc", "not sdp at all").await;
    assert!(matches!(garbage, Err(MediaError::InvalidOffer(_))), "{garbage:?}");
    let empty_id = h.sfu.handle_offer(ROOM, "", "pc", "v=0").await;
    assert!(matches!(empty_id, Err(MediaError::InvalidArgument(_))), "{empty_id:?}");

    // Well-formed SDP the WebRTC stack refuses (no ICE credentials, no fingerprint): the
    // connection made for it is closed again.
    let peer = SyntheticPeer::new("kiosk:1").await?;
    let offer = peer.offer().await?;
    let broken: String = offer
        .lines()
        .filter(|l| !l.starts_with("a=ice-ufrag") && !l.starts_with("a=fingerprint"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let refused = h.sfu.handle_offer(ROOM, "kiosk:1", "pc", &broken).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(h.sfu.stats().peer_connections, 0);

    // The limit: two connections, a third is refused, a freed one can be reused.
    let answer = h.sfu.handle_offer(ROOM, "kiosk:1", "pc", &offer).await?;
    peer.apply_answer(&answer).await?;
    let p2 = SyntheticPeer::new("staff:2").await?;
    h.sfu.handle_offer(ROOM, "staff:2", "pc2", &p2.offer().await?).await?;
    let p3 = SyntheticPeer::new("kiosk:3").await?;
    let over = h.sfu.handle_offer(ROOM, "kiosk:3", "pc3", &p3.offer().await?).await;
    assert!(matches!(over, Err(MediaError::TooManyPeerConnections(2))), "{over:?}");
    assert_eq!(h.sfu.stats().peer_connections, 2);
    h.sfu.remove_participant(ROOM, "staff:2").await;
    let answer = h.sfu.handle_offer(ROOM, "kiosk:3", "pc3", &p3.offer().await?).await?;
    p3.apply_answer(&answer).await?;
    p3.wait_connected(CONNECT).await?;

    h.sfu.close_room(ROOM).await;
    let stats = h.sfu.stats();
    assert_eq!((stats.peer_connections, stats.rooms), (0, 0));
    for p in [peer, p2, p3] {
        p.close().await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_connects_is_closed() -> Result<()> {
    let mut h = Harness::new(MediaConfig { connect_timeout: Duration::from_millis(800), ..MediaConfig::loopback() });
    let peer = SyntheticPeer::new("kiosk:1").await?;
    // The answer never reaches the client.
    h.sfu.handle_offer(ROOM, "kiosk:1", "pc", &peer.offer().await?).await?;
    assert_eq!(h.sfu.stats().peer_connections, 1);
    let ev = h.wait_event(|e| matches!(e, MediaEvent::Disconnected { .. })).await?;
    assert_eq!(ev, MediaEvent::Disconnected { room: ROOM.into(), participant: "kiosk:1".into() });
    assert!(eventually(Duration::from_secs(2), || h.sfu.stats().peer_connections == 0).await);
    peer.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_announce_the_configured_addresses() -> Result<()> {
    let h = Harness::new(MediaConfig {
        announced_ips: vec!["203.0.113.9".parse()?],
        udp_port_min: 47100,
        udp_port_max: 47199,
        ..MediaConfig::loopback()
    });
    let peer = SyntheticPeer::new("kiosk:1").await?;
    let answer = h.sfu.handle_offer(ROOM, "kiosk:1", "pc", &peer.offer().await?).await?;
    let candidates: Vec<&str> = answer.lines().filter(|l| l.starts_with("a=candidate:")).collect();
    assert!(!candidates.is_empty());
    for c in &candidates {
        assert!(c.contains(" 203.0.113.9 "), "{c}");
        let port: u16 = c.split(' ').nth(5).unwrap_or_default().parse()?;
        assert!((47100..=47199).contains(&port), "{c}");
    }
    assert!(!answer.contains("127.0.0.1 "));
    h.sfu.close_room(ROOM).await;
    peer.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_types_and_extension_ids_are_rewritten_per_connection() -> Result<()> {
    let mut h = Harness::loopback();
    h.sfu.set_subscriptions(ROOM, "kiosk:1", vec!["staff:2".into()]);
    h.sfu.set_subscriptions(ROOM, "staff:2", vec!["kiosk:1".into()]);
    // Another "browser": other payload types, other extension ids, extensions on every packet.
    let a = h
        .connect_with(
            ROOM,
            "kiosk:1",
            "pc-a",
            PeerOptions {
                audio_pt: 109,
                video_pt: 100,
                shift_extension_ids: true,
                send_header_extensions: true,
                ..PeerOptions::default()
            },
        )
        .await?;
    let b = h
        .connect_with(ROOM, "staff:2", "pc-b", PeerOptions { send_header_extensions: true, ..PeerOptions::default() })
        .await?;
    receives(&b, "kiosk:1", 25, 15).await?;
    receives(&a, "staff:2", 25, 15).await?;
    assert_eq!(a.received_with_extensions(), 0);
    assert_eq!(b.received_with_extensions(), 0);
    h.sfu.close_room(ROOM).await;
    a.close().await?;
    b.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_is_preferred_in_answers() -> Result<()> {
    let h = Harness::loopback();
    h.sfu.set_subscriptions(ROOM, "kiosk:1", vec!["staff:2".into()]);
    let peer =
        SyntheticPeer::with_options("kiosk:1", PeerOptions { offer_vp9_first: true, ..PeerOptions::default() }).await?;
    let offer = peer.offer().await?;
    let formats = |sdp: &str| -> Vec<String> {
        sdp.lines()
            .find_map(|l| l.strip_prefix("m=video "))
            .map(|l| l.split(' ').skip(2).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    assert_eq!(formats(&offer).first().map(String::as_str), Some("98"));
    let answer = h.sfu.handle_offer(ROOM, "kiosk:1", "pc", &offer).await?;
    assert_eq!(formats(&answer).first().map(String::as_str), Some("96"), "{answer}");
    assert!(formats(&answer).contains(&"98".to_owned()));
    h.sfu.close_room(ROOM).await;
    peer.close().await?;
    Ok(())
}
