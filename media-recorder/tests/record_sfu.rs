//! Recording through the real SFU: two synthetic peers call each other in a recorded room.
//! Their VP8 payloads are synthetic (not decodable), so this checks timing, keyframe requests
//! through the publisher, segment cuts and the end of the recording at room close; the media
//! itself is checked by `record_media.rs`. (webrtc-rs 0.21.1 peers send receiver reports but no
//! sender reports, so the timeline runs on arrival anchoring here; the sender-report path is
//! covered by `record_media.rs` and the keyframe/report interceptor's unit test.)

mod record_support;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use cunneng_media_recorder::record::{CodecKind, TrackKind};
use cunneng_media_recorder::{MediaConfig, MediaEvent, Sfu};
use cunneng_tests::peer::SyntheticPeer;
use record_support::CollectingSink;

const ROOM: &str = "call:rec";
const CONNECT: Duration = Duration::from_secs(10);

async fn connect(
    sfu: &Sfu,
    events: &mut tokio::sync::mpsc::Receiver<MediaEvent>,
    label: &str,
) -> Result<SyntheticPeer> {
    let peer = SyntheticPeer::new(label).await?;
    let answer = sfu.handle_offer(ROOM, label, &format!("pc-{label}"), &peer.offer().await?).await?;
    peer.apply_answer(&answer).await?;
    peer.wait_connected(CONNECT).await?;
    let deadline = tokio::time::Instant::now() + CONNECT;
    loop {
        let e =
            tokio::time::timeout_at(deadline, events.recv()).await.context("no Connected event")?.context("closed")?;
        if matches!(&e, MediaEvent::Connected { participant, .. } if participant == label) {
            return Ok(peer);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_call_yields_segments_and_an_archive_per_participant() -> Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn,cunneng_media_recorder=info"))
        .with_test_writer()
        .try_init();
    let (sfu, mut events) = Sfu::new(MediaConfig::loopback());
    let sink = CollectingSink::new();
    sfu.set_subscriptions(ROOM, "kiosk:1", vec!["staff:2".into()]);
    sfu.set_subscriptions(ROOM, "staff:2", vec!["kiosk:1".into()]);
    assert!(!sfu.is_recording(ROOM));
    sfu.set_recording(ROOM, sink.clone());
    assert!(sfu.is_recording(ROOM));
    let a = connect(&sfu, &mut events, "kiosk:1").await?;
    let b = connect(&sfu, &mut events, "staff:2").await?;
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(13)).await;
    ensure!(b.received_from("kiosk:1").video_packets > 300, "forwarding goes on while recording");
    sfu.close_room(ROOM).await;
    let call = started.elapsed();
    drop((a, b));

    let deadline = Instant::now() + Duration::from_secs(20);
    while sink.finished.lock().unwrap().len() < 2 {
        ensure!(Instant::now() < deadline, "recordings did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let finished = sink.finished.lock().unwrap();
    for f in finished.iter() {
        let m = &f.manifest;
        println!("{}", serde_json::to_string(m)?);
        assert_eq!(m.room, ROOM);
        assert_eq!((m.audio, m.video), (Some(CodecKind::Opus), Some(CodecKind::Vp8)));
        // About the call's length (the recording starts at the first keyframe).
        assert!((m.duration_ms - call.as_millis() as i64).abs() < 1500, "{} vs {call:?}", m.duration_ms);
        // Cut on keyframes the recorder asked for, between 8 and 10 s.
        assert!(m.segments.len() >= 2, "{:?}", m.segments);
        let first = &m.segments[0];
        assert!((7_900..=10_000).contains(&first.duration_ms) && first.starts_with_keyframe, "{first:?}");
        assert!(m.segments.iter().all(|s| s.duration_ms <= 10_000 && s.audio.is_some() && s.video.is_some()));
        // Loopback under load may drop the odd late frame; anything beyond 1 % is a fault.
        assert!(m.stats.keyframe_requests >= 1 && m.stats.dropped_frames * 100 <= m.stats.frames, "{:?}", m.stats);
        assert!(m.gaps.iter().all(|g| g.track == TrackKind::Video || g.end_ms - g.start_ms < 500), "{:?}", m.gaps);
        let archive = f.archive.as_ref().context("archive")?;
        assert!(archive.len > 0 && (archive.duration_ms - m.duration_ms).abs() < 200);
    }
    let mut who: Vec<&str> = finished.iter().map(|f| f.manifest.participant.as_str()).collect();
    who.sort();
    assert_eq!(who, ["kiosk:1", "staff:2"]);
    assert!(!sfu.is_recording(ROOM));
    Ok(())
}
