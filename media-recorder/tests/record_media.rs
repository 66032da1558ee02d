//! The recorder on real media: VP8/VP9/H.264 and Opus encoded by the ffmpeg CLI, packetized
//! into RTP as browsers do, fed with a simulated clock (network delay, reordering, loss,
//! sender reports, a reconnect), then checked with ffprobe/ffmpeg: every segment and the
//! archive play, have both tracks, the archive has cues, seeks and lasts as long as the input.

mod record_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use cunneng_media_recorder::record::{
    CodecKind, Container, GapReason, Recorder, RecordingConfig, TrackKind, sha256_hex,
};
use record_support::*;
use rtc::rtp;

/// One thing that reaches the recorder at `at_ms`.
enum Ev {
    Rtp(TrackKind, &'static str, u32, rtp::Packet),
    Sr(TrackKind, u32, u64, u32),
}

struct Plan {
    events: Vec<(u64, u32, Ev)>,
    order: u32,
}

impl Plan {
    fn new() -> Plan {
        Plan { events: Vec::new(), order: 0 }
    }
    fn at(&mut self, ms: u64, ev: Ev) {
        self.order += 1;
        self.events.push((ms, self.order, ev));
    }
    /// Feeds everything in arrival order with a tick every 50 ms; returns the recorder's
    /// keyframe requests.
    fn run(mut self, recorder: &mut Recorder, base: Instant) {
        self.events.sort_by_key(|(ms, o, _)| (*ms, *o));
        let mut next_tick = 0;
        for (ms, _, ev) in self.events {
            while next_tick <= ms {
                recorder.tick(base + Duration::from_millis(next_tick));
                next_tick += 50;
            }
            let at = base + Duration::from_millis(ms);
            match ev {
                Ev::Rtp(kind, mime, clock, p) => recorder.push_rtp(kind, mime, clock, &p, at),
                Ev::Sr(kind, ssrc, ntp, rtp) => recorder.sender_report(kind, ssrc, ntp, rtp, at),
            }
        }
    }
}

struct Conn {
    audio: Packetizer,
    video: Packetizer,
    a0: u32,
    v0: u32,
}

impl Conn {
    fn new(a_ssrc: u32, v_ssrc: u32, a0: u32, v0: u32) -> Conn {
        Conn { audio: Packetizer::new(a_ssrc, 1000, 111), video: Packetizer::new(v_ssrc, 64000, 96), a0, v0 }
    }
}

fn recorder(sink: &Arc<CollectingSink>, keyframes: &Arc<AtomicU64>) -> Recorder {
    let k = keyframes.clone();
    Recorder::new(
        "call:7",
        "kiosk:3",
        sink.clone(),
        RecordingConfig::default(),
        Box::new(move || {
            k.fetch_add(1, Ordering::Relaxed);
        }),
    )
}

/// Audio packets captured in [from_ms, to_ms) on `conn`, arriving 15 ms later (with one pair
/// swapped), sender reports every second.
fn plan_audio(plan: &mut Plan, conn: &mut Conn, opus: &[Vec<u8>], from_ms: u64, to_ms: u64) {
    let mut swapped: Option<(u64, rtp::Packet)> = None;
    for (k, frame) in opus.iter().enumerate() {
        let w = k as u64 * 20;
        if w < from_ms || w >= to_ms {
            continue;
        }
        let p = conn.audio.opus(frame, conn.a0.wrapping_add(k as u32 * 960));
        if k % 250 == 100 {
            swapped = Some((w + 15, p));
            continue;
        }
        plan.at(w + 15, Ev::Rtp(TrackKind::Audio, "audio/opus", 48000, p));
        if let Some((t, q)) = swapped.take() {
            plan.at(t + 20, Ev::Rtp(TrackKind::Audio, "audio/opus", 48000, q));
        }
        if w % 1000 == 500 {
            plan.at(w + 15, Ev::Sr(TrackKind::Audio, conn.audio.ssrc, ntp(w), conn.a0.wrapping_add(w as u32 * 48)));
        }
    }
}

/// Video frames captured in [from_ms, to_ms), arriving 40 ms later, 1 ms between packets;
/// `lose` drops one packet of the frame with that index.
#[allow(clippy::too_many_arguments)]
fn plan_video(
    plan: &mut Plan,
    conn: &mut Conn,
    packets_of: &mut dyn FnMut(&mut Packetizer, usize, u32) -> Vec<rtp::Packet>,
    frames: usize,
    mime: &'static str,
    from_ms: u64,
    to_ms: u64,
    lose: Option<usize>,
) {
    for i in 0..frames {
        let w = i as u64 * 100 / 3;
        if w < from_ms || w >= to_ms {
            continue;
        }
        let ts = conn.v0.wrapping_add(i as u32 * 3000);
        let mut packets = packets_of(&mut conn.video, i, ts);
        if Some(i) == lose && packets.len() > 1 {
            packets.remove(1);
        }
        if i == 31 && packets.len() > 1 {
            packets.swap(0, 1);
        }
        for (j, p) in packets.into_iter().enumerate() {
            plan.at(w + 40 + j as u64, Ev::Rtp(TrackKind::Video, mime, 90000, p));
        }
        if i % 30 == 17 {
            plan.at(w + 40, Ev::Sr(TrackKind::Video, conn.video.ssrc, ntp(w), conn.v0.wrapping_add(w as u32 * 90)));
        }
    }
}

#[test]
fn vp8_and_opus_become_playable_segments_and_a_seekable_archive() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let vp8 = read_ivf(&encode_video(dir.path(), "libvpx", 20, 45, "v.ivf")?)?;
    let opus = read_ogg_opus(&encode_audio(dir.path(), 20)?)?;
    ensure!(vp8.len() == 600 && opus.len() >= 999, "{} {}", vp8.len(), opus.len());

    let mut plan = Plan::new();
    let mut conn = Conn::new(0x1111, 0x2222, 4_294_000_000, 77);
    plan_audio(&mut plan, &mut conn, &opus, 0, 20_000);
    let mut vp8_packets = |p: &mut Packetizer, i: usize, ts: u32| p.vp8(&vp8[i], ts, 600);
    plan_video(&mut plan, &mut conn, &mut vp8_packets, vp8.len(), "video/VP8", 0, 20_000, Some(150));

    let sink = CollectingSink::new();
    let keyframes = Arc::new(AtomicU64::new(0));
    let mut rec = recorder(&sink, &keyframes);
    let base = Instant::now();
    plan.run(&mut rec, base);
    rec.finish();

    let segments = sink.segments.lock().unwrap();
    let finished = sink.finished.lock().unwrap();
    assert_eq!(finished.len(), 1);
    let m = &finished[0].manifest;
    println!("{}", serde_json::to_string_pretty(m)?);
    // Keyframes every 1.5 s: cuts at the first keyframe from 8 s on (9 s, 18 s).
    let starts: Vec<i64> = segments.iter().map(|s| s.info.start_ms).collect();
    assert_eq!(starts.len(), 3, "{starts:?}");
    assert!(starts[0] == 0 && (starts[1] - 9000).abs() <= 40 && (starts[2] - 18000).abs() <= 40, "{starts:?}");
    for s in segments.iter() {
        assert!(s.info.duration_ms <= 10_000);
        assert_eq!(s.info.sha256, sha256_hex(&s.data));
        assert_eq!(
            (s.info.audio, s.info.video, s.info.container),
            (Some(CodecKind::Opus), Some(CodecKind::Vp8), Container::Webm)
        );
        let path = dir.path().join(format!("seg{}.webm", s.info.index));
        std::fs::write(&path, &s.data)?;
        let p = ffprobe(&path)?;
        assert!(
            p.streams.contains(&("video".into(), "vp8".into())) && p.streams.contains(&("audio".into(), "opus".into())),
            "{p:?}"
        );
        assert!((p.duration - s.info.duration_ms as f64 / 1000.0).abs() < 0.2, "segment {}: {p:?}", s.info.index);
        decodes_cleanly(&path)?;
    }
    assert_eq!(m.segments.len(), 3);
    assert_eq!(
        m.segments.iter().map(|s| &s.sha256).collect::<Vec<_>>(),
        segments.iter().map(|s| &s.info.sha256).collect::<Vec<_>>()
    );
    // The lost packet at frame 150 (5 s): video dropped until the keyframe at 6 s (frame 180),
    // keyframe asked.
    let loss = m.gaps.iter().find(|g| g.track == TrackKind::Video).expect("video gap");
    assert_eq!(loss.reason, GapReason::Loss);
    assert!((loss.start_ms - 5000).abs() <= 40 && (loss.end_ms - 6000).abs() <= 40, "{loss:?}");
    assert!(!m.gaps.iter().any(|g| g.track == TrackKind::Audio), "{:?}", m.gaps);
    assert!(keyframes.load(Ordering::Relaxed) >= 1);
    assert!(m.stats.sender_reports >= 30 && m.stats.lost_packets == 1, "{:?}", m.stats);

    let archive = finished[0].archive.as_ref().expect("archive");
    let bytes = archive.to_vec()?;
    assert_eq!(sha256_hex(&bytes), m.archive.as_ref().unwrap().sha256);
    let path = dir.path().join("archive.webm");
    std::fs::write(&path, &bytes)?;
    let p = ffprobe(&path)?;
    assert!(
        p.streams.contains(&("video".into(), "vp8".into())) && p.streams.contains(&("audio".into(), "opus".into())),
        "{p:?}"
    );
    assert!((p.duration - 20.0).abs() < 0.5, "archive duration {}", p.duration);
    assert!(has_cues(&bytes), "no cues");
    let t = seek_and_decode(&path, 15.0)?;
    // Keyframes every 1.5 s: the seek lands on the last one at or before 15 s.
    assert!((13.4..=15.1).contains(&t), "seek to 15 s landed at {t}");
    decodes_cleanly(&path)?;
    Ok(())
}

#[test]
fn a_reconnect_mid_call_continues_the_same_recording() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let vp8 = read_ivf(&encode_video(dir.path(), "libvpx", 20, 45, "v.ivf")?)?;
    let opus = read_ogg_opus(&encode_audio(dir.path(), 20)?)?;
    let mut plan = Plan::new();
    // First connection until 10 s; one second later a new connection (new SSRCs, sequence
    // numbers and timestamp bases; the same sender clock) carries on.
    let mut first = Conn::new(0x1111, 0x2222, 5000, 6000);
    plan_audio(&mut plan, &mut first, &opus, 0, 10_000);
    let mut packets = |p: &mut Packetizer, i: usize, ts: u32| p.vp8(&vp8[i], ts, 600);
    plan_video(&mut plan, &mut first, &mut packets, vp8.len(), "video/VP8", 0, 10_000, None);
    let mut second = Conn::new(0x3333, 0x4444, 3_000_000_000, 123_456_789);
    second.video.seq = 7;
    plan_audio(&mut plan, &mut second, &opus, 11_000, 20_000);
    plan_video(&mut plan, &mut second, &mut packets, vp8.len(), "video/VP8", 11_000, 20_000, None);

    let sink = CollectingSink::new();
    let keyframes = Arc::new(AtomicU64::new(0));
    let mut rec = recorder(&sink, &keyframes);
    plan.run(&mut rec, Instant::now());
    rec.finish();

    let finished = sink.finished.lock().unwrap();
    let m = &finished[0].manifest;
    println!("{}", serde_json::to_string_pretty(m)?);
    // One timeline: the segments follow each other, the whole lasts 20 s.
    assert!(m.segments.windows(2).all(|w| w[1].start_ms >= w[0].start_ms + w[0].duration_ms - 40));
    assert!((m.duration_ms - 20_000).abs() <= 100, "{}", m.duration_ms);
    let audio_gap = m.gaps.iter().find(|g| g.track == TrackKind::Audio).expect("audio gap");
    assert_eq!(audio_gap.reason, GapReason::Reconnect);
    assert!((audio_gap.start_ms - 10_000).abs() <= 40 && (audio_gap.end_ms - 11_000).abs() <= 40, "{audio_gap:?}");
    // Video resumes at the next keyframe (12 s).
    let video_gap = m.gaps.iter().find(|g| g.track == TrackKind::Video).expect("video gap");
    assert!((video_gap.end_ms - 12_000).abs() <= 40, "{video_gap:?}");
    let path = dir.path().join("archive.webm");
    std::fs::write(&path, finished[0].archive.as_ref().expect("archive").to_vec()?)?;
    let p = ffprobe(&path)?;
    assert!((p.duration - 20.0).abs() < 0.5, "{p:?}");
    decodes_cleanly(&path)?;
    Ok(())
}

fn short_call(
    video_codec: &str,
    encoder: &str,
    mime: &'static str,
) -> Result<(tempfile::TempDir, Vec<u8>, cunneng_media_recorder::record::Manifest)> {
    let dir = tempfile::tempdir()?;
    let opus = read_ogg_opus(&encode_audio(dir.path(), 6)?)?;
    let mut plan = Plan::new();
    let mut conn = Conn::new(1, 2, 0, 0);
    plan_audio(&mut plan, &mut conn, &opus, 0, 6000);
    match video_codec {
        "h264" => {
            let aus = read_h264_access_units(&encode_video(dir.path(), encoder, 6, 60, "v.h264")?)?;
            ensure!(aus.len() == 180, "{} access units", aus.len());
            let mut packets = |p: &mut Packetizer, i: usize, ts: u32| p.h264(&aus[i], ts, 1000);
            plan_video(&mut plan, &mut conn, &mut packets, aus.len(), mime, 0, 6000, None);
        }
        _ => {
            let frames = read_ivf(&encode_video(dir.path(), encoder, 6, 60, "v.ivf")?)?;
            let mut packets = |p: &mut Packetizer, i: usize, ts: u32| p.vp9(&frames[i], ts, i.is_multiple_of(60), 700);
            plan_video(&mut plan, &mut conn, &mut packets, frames.len(), mime, 0, 6000, None);
        }
    }
    let sink = CollectingSink::new();
    let keyframes = Arc::new(AtomicU64::new(0));
    let mut rec = recorder(&sink, &keyframes);
    plan.run(&mut rec, Instant::now());
    rec.finish();
    let mut finished = sink.finished.lock().unwrap();
    let f = finished.pop().expect("finished");
    let bytes = f.archive.as_ref().expect("archive").to_vec()?;
    Ok((dir, bytes, f.manifest))
}

#[test]
fn vp9_and_opus_are_recorded() -> Result<()> {
    let (dir, bytes, m) = short_call("vp9", "libvpx-vp9", "video/VP9")?;
    assert_eq!((m.video, m.audio), (Some(CodecKind::Vp9), Some(CodecKind::Opus)));
    let path = dir.path().join("a.webm");
    std::fs::write(&path, &bytes)?;
    let p = ffprobe(&path)?;
    assert!(
        p.streams.contains(&("video".into(), "vp9".into())) && p.streams.contains(&("audio".into(), "opus".into())),
        "{p:?}"
    );
    assert!((p.duration - 6.0).abs() < 0.5, "{p:?}");
    decodes_cleanly(&path)?;
    Ok(())
}

#[test]
fn h264_and_opus_are_recorded_in_matroska() -> Result<()> {
    let (dir, bytes, m) = short_call("h264", "libx264", "video/H264")?;
    assert_eq!((m.video, m.segments[0].container), (Some(CodecKind::H264), Container::Matroska));
    let path = dir.path().join("a.mkv");
    std::fs::write(&path, &bytes)?;
    let p = ffprobe(&path)?;
    assert!(
        p.streams.contains(&("video".into(), "h264".into())) && p.streams.contains(&("audio".into(), "opus".into())),
        "{p:?}"
    );
    assert!((p.duration - 6.0).abs() < 0.5, "{p:?}");
    assert!(has_cues(&bytes));
    decodes_cleanly(&path)?;
    Ok(())
}
