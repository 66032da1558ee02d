//! Helpers of the recording tests: real media encoded by the ffmpeg CLI, RTP packetizers (the
//! way browsers packetize), a collecting sink and ffprobe checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use cunneng_media_recorder::record::{ClosedSegment, FinishedRecording, RecordingSink};
use rtc::rtp;

/// Collects what a recorder hands out.
#[derive(Default)]
pub struct CollectingSink {
    pub segments: Mutex<Vec<ClosedSegment>>,
    pub finished: Mutex<Vec<FinishedRecording>>,
}

impl RecordingSink for CollectingSink {
    fn segment_closed(&self, segment: ClosedSegment) {
        self.segments.lock().unwrap().push(segment);
    }
    fn recording_finished(&self, recording: FinishedRecording) {
        self.finished.lock().unwrap().push(recording);
    }
}

impl CollectingSink {
    pub fn new() -> Arc<CollectingSink> {
        Arc::new(CollectingSink::default())
    }
}

/// Runs ffmpeg with `args` (quiet), failing on a non-zero exit.
pub fn ffmpeg(args: &[&str]) -> Result<()> {
    let out = Command::new("ffmpeg").args(["-hide_banner", "-loglevel", "error", "-y"]).args(args).output()?;
    ensure!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// Encodes `seconds` of a test pattern (320x240, 30 fps, a keyframe every `gop` frames) with
/// `encoder` into `out` (IVF for VP8/VP9, Annex-B for H.264).
pub fn encode_video(dir: &Path, encoder: &str, seconds: u32, gop: u32, out: &str) -> Result<PathBuf> {
    let path = dir.join(out);
    let t = seconds.to_string();
    let g = gop.to_string();
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=30",
        "-t",
        &t,
        "-c:v",
        encoder,
        "-g",
        &g,
        "-keyint_min",
        &g,
    ];
    match encoder {
        "libx264" => args.extend([
            "-pix_fmt",
            "yuv420p",
            "-profile:v",
            "baseline",
            "-tune",
            "zerolatency",
            "-bsf:v",
            "h264_mp4toannexb",
            "-f",
            "h264",
        ]),
        _ => args.extend([
            "-deadline",
            "realtime",
            "-lag-in-frames",
            "0",
            "-auto-alt-ref",
            "0",
            "-b:v",
            "300k",
            "-f",
            "ivf",
        ]),
    }
    let p = path.to_str().context("path")?;
    args.push(p);
    ffmpeg(&args)?;
    Ok(path)
}

/// Encodes `seconds` of a 440 Hz tone as 20 ms Opus packets (Ogg).
pub fn encode_audio(dir: &Path, seconds: u32) -> Result<PathBuf> {
    let path = dir.join("a.ogg");
    let t = seconds.to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &t,
        "-ac",
        "2",
        "-c:a",
        "libopus",
        "-b:a",
        "32k",
        "-frame_duration",
        "20",
        "-application",
        "voip",
        path.to_str().context("path")?,
    ])?;
    Ok(path)
}

/// Frames of an IVF file.
pub fn read_ivf(path: &Path) -> Result<Vec<Vec<u8>>> {
    let data = std::fs::read(path)?;
    ensure!(data.len() >= 32 && &data[..4] == b"DKIF", "not IVF");
    let header = usize::from(u16::from_le_bytes([data[6], data[7]]));
    let mut i = header;
    let mut frames = Vec::new();
    while i + 12 <= data.len() {
        let size = u32::from_le_bytes(data[i..i + 4].try_into()?) as usize;
        i += 12;
        frames.push(data.get(i..i + size).context("truncated IVF")?.to_vec());
        i += size;
    }
    Ok(frames)
}

/// Packets of an Ogg Opus file, header packets skipped.
pub fn read_ogg_opus(path: &Path) -> Result<Vec<Vec<u8>>> {
    let data = std::fs::read(path)?;
    let mut packets = Vec::new();
    let mut cur = Vec::new();
    let mut i = 0;
    while i + 27 <= data.len() {
        ensure!(&data[i..i + 4] == b"OggS", "not Ogg at {i}");
        let n = usize::from(data[i + 26]);
        let lacing = &data[i + 27..i + 27 + n];
        let mut j = i + 27 + n;
        for &l in lacing {
            cur.extend_from_slice(&data[j..j + usize::from(l)]);
            j += usize::from(l);
            if l < 255 {
                packets.push(std::mem::take(&mut cur));
            }
        }
        i = j;
    }
    ensure!(packets.len() > 2 && packets[0].starts_with(b"OpusHead"), "no Opus");
    Ok(packets.split_off(2))
}

/// Access units of an Annex-B H.264 stream (split at access unit delimiters or first slices).
pub fn read_h264_access_units(path: &Path) -> Result<Vec<Vec<Vec<u8>>>> {
    let data = std::fs::read(path)?;
    let mut nals: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    let mut start = None;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(s) = start {
                let mut e = i;
                while e > s && data[e - 1] == 0 {
                    e -= 1;
                }
                nals.push(&data[s..e]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        nals.push(&data[s..]);
    }
    let mut aus: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut cur: Vec<Vec<u8>> = Vec::new();
    let mut has_slice = false;
    for n in nals {
        let t = n[0] & 0x1f;
        // A new access unit starts at an AUD, SPS, or a slice with first_mb_in_slice == 0
        // after a slice was seen.
        let first_mb_zero = (t == 1 || t == 5) && n.get(1).is_some_and(|b| b & 0x80 != 0);
        if has_slice && (t == 9 || t == 7 || first_mb_zero) {
            aus.push(std::mem::take(&mut cur));
            has_slice = false;
        }
        if t == 1 || t == 5 {
            has_slice = true;
        }
        cur.push(n.to_vec());
    }
    if !cur.is_empty() {
        aus.push(cur);
    }
    Ok(aus)
}

/// RTP packetizer state of one stream.
pub struct Packetizer {
    pub ssrc: u32,
    pub seq: u16,
    pub payload_type: u8,
    pub picture_id: u16,
}

impl Packetizer {
    pub fn new(ssrc: u32, seq: u16, payload_type: u8) -> Packetizer {
        Packetizer { ssrc, seq, payload_type, picture_id: 0x1234 }
    }

    fn packet(&mut self, ts: u32, marker: bool, payload: Vec<u8>) -> rtp::Packet {
        let p = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                marker,
                payload_type: self.payload_type,
                sequence_number: self.seq,
                timestamp: ts,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload: Bytes::from(payload),
        };
        self.seq = self.seq.wrapping_add(1);
        p
    }

    /// VP8 (RFC 7741): 15-bit picture id, payloads of at most `mtu` bytes.
    pub fn vp8(&mut self, frame: &[u8], ts: u32, mtu: usize) -> Vec<rtp::Packet> {
        let pid = self.picture_id & 0x7fff;
        self.picture_id = self.picture_id.wrapping_add(1);
        let chunks: Vec<&[u8]> = frame.chunks(mtu).collect();
        let n = chunks.len();
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let mut p = vec![if i == 0 { 0x90 } else { 0x80 }, 0x80, 0x80 | (pid >> 8) as u8, pid as u8];
                p.extend_from_slice(c);
                self.packet(ts, i + 1 == n, p)
            })
            .collect()
    }

    /// VP9 (RFC 9628), non-flexible mode, one spatial layer, scalability structure with the
    /// size on keyframes.
    pub fn vp9(&mut self, frame: &[u8], ts: u32, keyframe: bool, mtu: usize) -> Vec<rtp::Packet> {
        let pid = self.picture_id & 0x7fff;
        self.picture_id = self.picture_id.wrapping_add(1);
        let chunks: Vec<&[u8]> = frame.chunks(mtu).collect();
        let n = chunks.len();
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let mut b0 = 0x80; // I
                if !keyframe {
                    b0 |= 0x40; // P
                }
                if i == 0 {
                    b0 |= 0x08; // B
                }
                if i + 1 == n {
                    b0 |= 0x04; // E
                }
                if keyframe && i == 0 {
                    b0 |= 0x02; // V
                }
                let mut p = vec![b0, 0x80 | (pid >> 8) as u8, pid as u8];
                if keyframe && i == 0 {
                    p.extend_from_slice(&[0x10, 0x01, 0x40, 0x00, 0xf0]); // 1 layer, Y: 320x240
                }
                p.extend_from_slice(c);
                self.packet(ts, i + 1 == n, p)
            })
            .collect()
    }

    /// H.264 (RFC 6184, packetization mode 1): small NAL units aggregated in STAP-A, large
    /// ones fragmented in FU-A.
    pub fn h264(&mut self, nals: &[Vec<u8>], ts: u32, mtu: usize) -> Vec<rtp::Packet> {
        let mut payloads: Vec<Vec<u8>> = Vec::new();
        let mut stap: Vec<&Vec<u8>> = Vec::new();
        let flush = |stap: &mut Vec<&Vec<u8>>, payloads: &mut Vec<Vec<u8>>| {
            match stap.len() {
                0 => {}
                1 => payloads.push(stap[0].clone()),
                _ => {
                    let nri = stap.iter().map(|n| n[0] & 0x60).max().unwrap_or(0);
                    let mut p = vec![nri | 24];
                    for n in stap.iter() {
                        p.extend_from_slice(&(n.len() as u16).to_be_bytes());
                        p.extend_from_slice(n);
                    }
                    payloads.push(p);
                }
            }
            stap.clear();
        };
        for n in nals {
            if n[0] & 0x1f == 9 {
                continue; // browsers do not send access unit delimiters
            }
            if n.len() + 3 <= mtu / 4 {
                stap.push(n);
                continue;
            }
            flush(&mut stap, &mut payloads);
            if n.len() <= mtu {
                payloads.push(n.clone());
                continue;
            }
            let body = &n[1..];
            let chunks: Vec<&[u8]> = body.chunks(mtu - 2).collect();
            let k = chunks.len();
            for (i, c) in chunks.into_iter().enumerate() {
                let mut fu = vec![(n[0] & 0xe0) | 28, n[0] & 0x1f];
                if i == 0 {
                    fu[1] |= 0x80;
                }
                if i + 1 == k {
                    fu[1] |= 0x40;
                }
                fu.extend_from_slice(c);
                payloads.push(fu);
            }
        }
        flush(&mut stap, &mut payloads);
        let k = payloads.len();
        payloads.into_iter().enumerate().map(|(i, p)| self.packet(ts, i + 1 == k, p)).collect()
    }

    /// Opus: one packet per frame.
    pub fn opus(&mut self, frame: &[u8], ts: u32) -> rtp::Packet {
        self.packet(ts, false, frame.to_vec())
    }
}

/// NTP timestamp for `ms` milliseconds after an arbitrary sender epoch.
pub fn ntp(ms: u64) -> u64 {
    let base = 3_950_000_000u64 * 1000 + ms;
    ((base / 1000) << 32) | (((base % 1000) << 32) / 1000)
}

/// What ffprobe says about a file.
#[derive(Debug)]
pub struct Probe {
    pub streams: Vec<(String, String)>,
    pub duration: f64,
}

pub fn ffprobe(path: &Path) -> Result<Probe> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_type,codec_name:format=duration", "-of", "json"])
        .arg(path)
        .output()?;
    ensure!(out.status.success(), "ffprobe {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let streams = v["streams"]
        .as_array()
        .context("streams")?
        .iter()
        .map(|s| (s["codec_type"].as_str().unwrap_or("").to_owned(), s["codec_name"].as_str().unwrap_or("").to_owned()))
        .collect();
    let duration = v["format"]["duration"].as_str().context("duration")?.parse()?;
    Ok(Probe { streams, duration })
}

/// Decodes every frame of `path` (fails on decoding errors).
pub fn decodes_cleanly(path: &Path) -> Result<()> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-xerror", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()?;
    ensure!(
        out.status.success() && out.stderr.is_empty(),
        "decoding {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Seeks to `at` seconds and decodes one video frame; returns its timestamp (s).
pub fn seek_and_decode(path: &Path, at: f64) -> Result<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-read_intervals",
            &format!("{at}%+#1"),
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()?;
    ensure!(out.status.success(), "ffprobe seek: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(first) = text.lines().next() else { bail!("no frame after seeking to {at}") };
    let t: f64 = first.trim().trim_end_matches(',').parse().with_context(|| format!("frame time {first:?}"))?;
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-ss", &at.to_string(), "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "null", "-"])
        .output()?;
    ensure!(out.status.success(), "ffmpeg -ss: {}", String::from_utf8_lossy(&out.stderr));
    Ok(t)
}

/// Whether a Matroska file has a Cues element (EBML id 0x1C53BB6B).
pub fn has_cues(data: &[u8]) -> bool {
    data.windows(4).any(|w| w == [0x1c, 0x53, 0xbb, 0x6b])
}
