//! Cost of recording one participant: encodes `SECONDS` of 640x480 VP8 (~600 kbit/s) and Opus
//! with the ffmpeg CLI, packetizes it like a browser, and feeds it through one [`Recorder`]
//! (depacketize, timeline, segmenter, muxing into in-memory segments, archive at the end) as
//! fast as it goes, then prints CPU time per second of media and peak memory.
//!
//! `cargo run --release -p cunneng-media-recorder --example record_bench [-- SECONDS]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cunneng_media_recorder::record::{
    ClosedSegment, FinishedRecording, Recorder, RecordingConfig, RecordingSink, TrackKind,
};
use rtc::rtp;

struct Sink;
impl RecordingSink for Sink {
    fn segment_closed(&self, _segment: ClosedSegment) {}
    fn recording_finished(&self, r: FinishedRecording) {
        eprintln!("segments {}, archive {} bytes", r.manifest.segments.len(), r.archive.map(|a| a.len).unwrap_or(0));
    }
}

/// CPU time of this thread (ns precision; the recorder runs on it).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    stat.split_whitespace().next().and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0) / 1e9
}

fn status(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn packet(ssrc: u32, seq: u16, ts: u32, marker: bool, payload: Vec<u8>) -> rtp::Packet {
    rtp::Packet {
        header: rtp::header::Header {
            version: 2,
            marker,
            payload_type: 96,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            ..Default::default()
        },
        payload: Bytes::from(payload),
    }
}

#[path = "../tests/record_support/mod.rs"]
mod record_support;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let seconds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(60);
    let dir = tempfile::tempdir()?;
    let t = seconds.to_string();
    // Browser-like video: 640x480 at ~600 kbit/s, one keyframe at the start.
    let v = dir.path().join("v.ivf");
    record_support::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=640x480:rate=30",
        "-t",
        &t,
        "-c:v",
        "libvpx",
        "-deadline",
        "realtime",
        "-lag-in-frames",
        "0",
        "-b:v",
        "600k",
        "-g",
        "3000",
        "-f",
        "ivf",
        v.to_str().unwrap_or(""),
    ])?;
    let frames = record_support::read_ivf(&v)?;
    let opus = record_support::read_ogg_opus(&record_support::encode_audio(dir.path(), u32::try_from(seconds)?)?)?;
    // Arrival-ordered packets.
    let mut events: Vec<(u64, TrackKind, rtp::Packet)> = Vec::new();
    let mut seq = 0u16;
    for (n, f) in frames.iter().enumerate() {
        let w = n as u64 * 100 / 3;
        let chunks: Vec<&[u8]> = f.chunks(1100).collect();
        let k = chunks.len();
        for (j, c) in chunks.into_iter().enumerate() {
            let mut p = vec![if j == 0 { 0x90 } else { 0x80 }, 0x80, 0x80 | (n >> 8 & 0x7f) as u8, n as u8];
            p.extend_from_slice(c);
            events.push((w + 40, TrackKind::Video, packet(2, seq, n as u32 * 3000, j + 1 == k, p)));
            seq = seq.wrapping_add(1);
        }
    }
    for (n, p) in opus.iter().enumerate() {
        events.push((n as u64 * 20 + 15, TrackKind::Audio, packet(1, n as u16, n as u32 * 960, false, p.clone())));
    }
    events.sort_by_key(|e| e.0);
    let packets = events.len();

    let rss_before = status("VmRSS:");
    let cpu0 = cpu_seconds();
    let wall = Instant::now();
    let base = Instant::now();
    // Periodic keyframes on request, as a browser would: the bench input has one keyframe
    // only, so segments are cut at the hard maximum (the costlier case is the same).
    let mut rec = Recorder::new("bench", "p", Arc::new(Sink), RecordingConfig::default(), Box::new(|| {}));
    let mut next_tick = 0;
    for (ms, kind, p) in &events {
        while next_tick <= *ms {
            rec.tick(base + Duration::from_millis(next_tick));
            next_tick += 50;
        }
        let (mime, clock) = if *kind == TrackKind::Audio { ("audio/opus", 48000) } else { ("video/vp8", 90000) };
        rec.push_rtp(*kind, mime, clock, p, base + Duration::from_millis(*ms));
    }
    let rss_during = status("VmRSS:");
    let cpu_live = cpu_seconds() - cpu0;
    rec.finish();
    let cpu_total = cpu_seconds() - cpu0;
    println!(
        "{seconds} s of media ({packets} RTP packets, {} video frames): live path {:.4} s CPU = {:.3} % of one core; \
         with the archive at the end {:.4} s CPU ({:.3} %); wall {:.2} s; RSS before {rss_before}, after the live part {rss_during}, peak {}",
        frames.len(),
        cpu_live,
        cpu_live / seconds as f64 * 100.0,
        cpu_total,
        cpu_total / seconds as f64 * 100.0,
        wall.elapsed().as_secs_f64(),
        status("VmHWM:"),
    );
    Ok(())
}
