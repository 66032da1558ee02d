//! The participant timeline: one clock in milliseconds for all tracks of one participant,
//! from the first frame recorded (0) to the end of the call.
//!
//! A pure state machine: RTP timestamps, RTCP sender reports and the arrival time `now` (ms,
//! any monotonic origin) in; timeline positions and gaps out. Policy:
//!
//! * A stream (one SSRC) is placed by its RTP clock: frames keep the spacing the sender gave
//!   them, so time is never stretched and never drifts with network jitter.
//! * Before its first sender report a stream is anchored by arrival time (minus the track's
//!   usual network delay). Its first sender report ties it to the sender's NTP clock, which is
//!   shared by the participant's audio and video: that aligns them (lip sync). From then on the
//!   latest sender report maps RTP to NTP, which also follows the sender's audio clock drift.
//! * Discontinuities: an RTP timestamp that leaps far ahead of the elapsed arrival time, or
//!   backwards, re-anchors the stream at its arrival time; a sender report that moves the
//!   mapping backwards by more than `jump_ms` is absorbed (continuity kept); one that moves it
//!   forwards is a pause (a gap).
//! * A new SSRC on a track (a kiosk that reconnected with a new peer connection) continues the
//!   same timeline: anchored by arrival, then aligned by its own sender reports (re-basing the
//!   NTP clock if the new connection's clock differs).
//! * Positions of one track strictly increase. Silence longer than the track's gap threshold
//!   (loss, a pause, a reconnect, the recorder falling behind) is reported as a [`Gap`].

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::format::TrackKind;

/// Thresholds of the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineConfig {
    /// A discontinuity (RTP or NTP jump) is at least this big (ms); smaller differences are
    /// jitter or clock drift.
    pub jump_ms: i64,
    /// Silence on an audio track longer than this (ms) is a gap.
    pub audio_gap_ms: i64,
    /// Silence on a video track longer than this (ms) is a gap.
    pub video_gap_ms: i64,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        TimelineConfig { jump_ms: 1000, audio_gap_ms: 200, video_gap_ms: 1000 }
    }
}

/// Why a track has no media for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The sender sent nothing (muted, camera off, network outage without loss reports).
    Pause,
    /// Packets were lost (video: until the next keyframe).
    Loss,
    /// The recorder fell behind and dropped packets.
    Overflow,
    /// The participant's connection was replaced (new SSRC).
    Reconnect,
    /// The RTP timestamps jumped.
    Discontinuity,
}

impl GapReason {
    fn rank(self) -> u8 {
        match self {
            GapReason::Pause => 0,
            GapReason::Loss => 1,
            GapReason::Discontinuity => 2,
            GapReason::Reconnect => 3,
            GapReason::Overflow => 4,
        }
    }
}

/// A stretch of the timeline where a track has no media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// Track without media.
    pub track: TrackKind,
    /// Start (ms on the participant timeline).
    pub start_ms: i64,
    /// End (ms), exclusive.
    pub end_ms: i64,
    /// Why, as far as the recorder knows.
    pub reason: GapReason,
}

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Position on the participant timeline (ms).
    pub pts_ms: i64,
    /// The silence this frame ends, if any.
    pub gap: Option<Gap>,
}

#[derive(Debug, Clone, Copy)]
struct SrMap {
    ext: i64,
    ntp_ms: i64,
}

#[derive(Debug, Clone)]
struct Stream {
    ssrc: u32,
    clock: i64,
    last_ts: u32,
    last_ext: i64,
    last_arrival: i64,
    anchor: Option<(i64, i64)>,
    sr: Option<SrMap>,
    /// timeline = sender NTP ms - offset, once the stream's sender reports are adopted.
    offset: Option<i64>,
}

impl Stream {
    fn unwrap(&self, ts: u32) -> i64 {
        self.last_ext + i64::from(ts.wrapping_sub(self.last_ts) as i32)
    }

    fn ms(&self, ticks: i64) -> i64 {
        let n = i128::from(ticks) * 1000;
        let c = i128::from(self.clock);
        ((n + c / 2).div_euclid(c)) as i64
    }

    fn ntp_of(&self, sr: SrMap, ext: i64) -> i64 {
        sr.ntp_ms + self.ms(ext - sr.ext)
    }

    fn by_anchor(&self, ext: i64) -> Option<i64> {
        self.anchor.map(|(e, t)| t + self.ms(ext - e))
    }

    fn by_sr(&self, ext: i64) -> Option<i64> {
        Some(self.ntp_of(self.sr?, ext) - self.offset?)
    }
}

#[derive(Debug, Clone, Default)]
struct Track {
    stream: Option<Stream>,
    last_pts: Option<i64>,
    /// Usual (arrival - placement) of this track: network and jitter-buffer delay.
    delay: Option<i64>,
    pending_reason: Option<GapReason>,
}

/// Converts a 64-bit NTP timestamp to milliseconds.
pub fn ntp_to_ms(ntp: u64) -> i64 {
    let secs = (ntp >> 32) as i64;
    let frac = ((ntp & 0xffff_ffff) * 1000) >> 32;
    secs * 1000 + frac as i64
}

/// The participant timeline (see the module documentation).
#[derive(Debug, Clone)]
pub struct Timeline {
    cfg: TimelineConfig,
    origin: Option<i64>,
    /// Sender NTP ms minus timeline ms, for the participant's current sender clock.
    ntp_offset: Option<i64>,
    tracks: [Track; 2],
    /// Sender reports of SSRCs not seen yet (a few, newest last).
    early_reports: VecDeque<(u32, u64, u32)>,
    gaps: Vec<Gap>,
}

fn idx(kind: TrackKind) -> usize {
    match kind {
        TrackKind::Audio => 0,
        TrackKind::Video => 1,
    }
}

/// Nominal frame length (ms) used to tell where a gap starts.
fn frame_ms(kind: TrackKind) -> i64 {
    match kind {
        TrackKind::Audio => 20,
        TrackKind::Video => 33,
    }
}

impl Timeline {
    /// A timeline that starts at the first frame.
    pub fn new(cfg: TimelineConfig) -> Timeline {
        Timeline {
            cfg,
            origin: None,
            ntp_offset: None,
            tracks: [Track::default(), Track::default()],
            early_reports: VecDeque::new(),
            gaps: Vec::new(),
        }
    }

    /// Gaps so far, in the order they ended.
    pub fn gaps(&self) -> &[Gap] {
        &self.gaps
    }

    /// `now` of the first frame (the timeline's 0), once there is one.
    pub fn origin(&self) -> Option<i64> {
        self.origin
    }

    /// Position of the last frame of `kind`.
    pub fn last_pts(&self, kind: TrackKind) -> Option<i64> {
        self.tracks[idx(kind)].last_pts
    }

    /// End of the media placed so far (last frame plus a nominal frame length).
    pub fn end_ms(&self) -> i64 {
        [TrackKind::Audio, TrackKind::Video]
            .iter()
            .filter_map(|&k| self.tracks[idx(k)].last_pts.map(|p| p + frame_ms(k)))
            .max()
            .unwrap_or(0)
    }

    /// Tells the timeline why the next gap of `kind` will be there (the most telling reason
    /// wins).
    pub fn note(&mut self, kind: TrackKind, reason: GapReason) {
        let t = &mut self.tracks[idx(kind)];
        if t.pending_reason.is_none_or(|r| reason.rank() > r.rank()) {
            t.pending_reason = Some(reason);
        }
    }

    /// An RTCP sender report for `ssrc` of track `kind`: NTP time `ntp` is RTP time `rtp`.
    pub fn on_sender_report(&mut self, kind: TrackKind, ssrc: u32, ntp: u64, rtp: u32, _now: i64) {
        let jump = self.cfg.jump_ms;
        let t = &mut self.tracks[idx(kind)];
        let Some(s) = t.stream.as_mut().filter(|s| s.ssrc == ssrc) else {
            self.early_reports.retain(|(x, _, _)| *x != ssrc);
            self.early_reports.push_back((ssrc, ntp, rtp));
            while self.early_reports.len() > 4 {
                self.early_reports.pop_front();
            }
            return;
        };
        let new = SrMap { ext: s.unwrap(rtp), ntp_ms: ntp_to_ms(ntp) };
        if let (Some(old), Some(offset)) = (s.sr, s.offset) {
            // How far the new report moves the frame last placed.
            let delta = s.ntp_of(new, s.last_ext) - s.ntp_of(old, s.last_ext);
            if delta < -jump {
                // The sender's clock went back: keep continuity rather than rewind.
                s.offset = Some(offset + delta);
            }
            // Forward: a pause whose RTP time stood still; the next frame opens a gap.
        }
        s.sr = Some(new);
    }

    /// Places a frame of track `kind` (stream `ssrc`, RTP timestamp `ts`, clock rate `clock`)
    /// that arrived at `now` (ms).
    pub fn on_frame(&mut self, kind: TrackKind, ssrc: u32, ts: u32, clock: u32, now: i64) -> Placement {
        let origin = *self.origin.get_or_insert(now);
        let arrival = now - origin;
        let jump = self.cfg.jump_ms;
        let gap_ms = match kind {
            TrackKind::Audio => self.cfg.audio_gap_ms,
            TrackKind::Video => self.cfg.video_gap_ms,
        };
        let other_delay = self.tracks[1 - idx(kind)].delay;
        let early = std::mem::take(&mut self.early_reports);
        let mut ntp_offset = self.ntp_offset;
        let t = &mut self.tracks[idx(kind)];

        let mut reason_here = None;
        let new_stream = t.stream.as_ref().is_none_or(|s| s.ssrc != ssrc);
        if new_stream {
            if t.stream.is_some() {
                reason_here = Some(GapReason::Reconnect);
            }
            let mut s = Stream {
                ssrc,
                clock: i64::from(clock.max(1)),
                last_ts: ts,
                last_ext: i64::from(ts),
                last_arrival: arrival,
                anchor: None,
                sr: None,
                offset: None,
            };
            if let Some(&(_, ntp, rtp)) = early.iter().rev().find(|(x, _, _)| *x == ssrc) {
                s.sr = Some(SrMap { ext: s.unwrap(rtp), ntp_ms: ntp_to_ms(ntp) });
            }
            t.stream = Some(s);
        }
        self.early_reports = early.into_iter().filter(|(x, _, _)| *x != ssrc).collect();
        let Some(s) = t.stream.as_mut() else { unreachable!("stream set above") };
        let ext = s.unwrap(ts);
        let delay = t.delay.or(other_delay).unwrap_or(0);

        if !new_stream {
            let d_rtp = s.ms(ext - s.last_ext);
            let d_arr = arrival - s.last_arrival;
            if d_rtp < -jump || d_rtp > d_arr + jump {
                // RTP timestamps leapt: re-anchor here; the sender reports are stale.
                s.anchor = Some((ext, arrival - delay));
                s.sr = None;
                s.offset = None;
                reason_here = Some(GapReason::Discontinuity);
            }
        }

        let by_arrival = arrival - delay;
        let reference = s.by_anchor(ext).unwrap_or(by_arrival);
        let mut moved_epoch = None;
        let mut pts = match (s.by_sr(ext), s.sr) {
            (Some(p), _) => p,
            (None, Some(sr)) => {
                // First use of this stream's sender reports.
                let ntp = s.ntp_of(sr, ext);
                let offset = match ntp_offset {
                    Some(o) if (ntp - o - reference).abs() <= jump => {
                        if ntp - o < reference {
                            // Aligning would move this track back in time (squeezing frames):
                            // move the other track forward instead (a few ms of silence).
                            let o2 = ntp - reference;
                            moved_epoch = Some((o, o2));
                            ntp_offset = Some(o2);
                            o2
                        } else {
                            o
                        }
                    }
                    _ => {
                        // First report of the call, or a sender clock unlike the one before.
                        let o = ntp - reference;
                        ntp_offset = Some(o);
                        o
                    }
                };
                s.offset = Some(offset);
                ntp - offset
            }
            (None, None) => reference,
        };
        if s.anchor.is_none() {
            s.anchor = Some((ext, pts));
        }
        s.last_ts = ts;
        s.last_ext = ext;
        s.last_arrival = arrival;

        let mut gap = None;
        if let Some(last) = t.last_pts {
            if pts <= last {
                pts = last + 1;
            }
            if pts - last > gap_ms {
                let reason = [reason_here, t.pending_reason.take()]
                    .into_iter()
                    .flatten()
                    .max_by_key(|r| r.rank())
                    .unwrap_or(GapReason::Pause);
                let start = (last + frame_ms(kind)).min(pts);
                gap = Some(Gap { track: kind, start_ms: start, end_ms: pts, reason });
            } else {
                t.pending_reason = None;
            }
        }
        t.last_pts = Some(pts);
        let d = arrival - pts;
        t.delay = Some(match t.delay {
            None => d,
            Some(old) if d < old => d,
            Some(old) => old + (d - old) / 32,
        });
        self.ntp_offset = ntp_offset;
        if let Some((old, new)) = moved_epoch {
            let other = &mut self.tracks[1 - idx(kind)];
            if let Some(s) = other.stream.as_mut().filter(|s| s.offset == Some(old)) {
                s.offset = Some(new);
            }
        }
        if let Some(g) = gap {
            self.gaps.push(g);
        }
        Placement { pts_ms: pts, gap }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TrackKind::{Audio, Video};

    /// A simulated sender: NTP wall clock in ms, RTP clocks derived from it.
    struct Sender {
        ntp_base_ms: i64,
        a_ssrc: u32,
        v_ssrc: u32,
        a0: u32,
        v0: u32,
        /// Audio RTP clock speed error (parts per million).
        audio_ppm: f64,
    }

    impl Sender {
        fn new() -> Sender {
            Sender {
                ntp_base_ms: 3_900_000_000_000,
                a_ssrc: 11,
                v_ssrc: 22,
                a0: 4_000_000_000,
                v0: 123,
                audio_ppm: 0.0,
            }
        }
        fn a_ts(&self, w: i64) -> u32 {
            let ticks = (w as f64 * 48.0 * (1.0 + self.audio_ppm / 1e6)).round() as i64;
            self.a0.wrapping_add(ticks as u32)
        }
        fn v_ts(&self, w: i64) -> u32 {
            self.v0.wrapping_add((w * 90) as u32)
        }
        fn ntp(&self, w: i64) -> u64 {
            let ms = self.ntp_base_ms + w;
            (((ms / 1000) as u64) << 32) | ((((ms % 1000) as u64) << 32) / 1000)
        }
    }

    #[test]
    fn ntp_conversion() {
        assert_eq!(ntp_to_ms(1 << 32), 1000);
        assert_eq!(ntp_to_ms((5 << 32) | 0x8000_0000), 5500);
    }

    #[test]
    fn audio_frames_keep_their_rtp_spacing_despite_jitter() {
        let mut tl = Timeline::new(TimelineConfig::default());
        let s = Sender::new();
        let mut last = -1;
        for i in 0..500i64 {
            let w = i * 20;
            let jitter = [0, 35, 3, 60, 10][(i % 5) as usize];
            let p = tl.on_frame(Audio, s.a_ssrc, s.a_ts(w), 48000, 1000 + w + jitter);
            assert_eq!(p.pts_ms, w, "frame {i}");
            assert!(p.pts_ms > last);
            assert!(p.gap.is_none());
            last = p.pts_ms;
        }
        assert!(tl.gaps().is_empty());
    }

    /// Audio and video of one sender, different network delays, sender reports every second;
    /// returns (audio pts, video pts) of frames captured at the same instants after `warm`.
    fn av_run(s: &Sender, seconds: i64, a_delay: i64, v_delay: i64, tl: &mut Timeline) -> Vec<(i64, i64, i64)> {
        let mut events: Vec<(i64, u8, i64)> = Vec::new(); // (arrival, what, capture w)
        for w in (0..seconds * 1000).step_by(20) {
            events.push((w + a_delay, 0, w));
        }
        for n in 0..seconds * 30 {
            let w = n * 100 / 3;
            events.push((w + v_delay, 1, w));
        }
        for w in (500..seconds * 1000).step_by(1000) {
            events.push((w + a_delay, 2, w));
            events.push((w + v_delay, 3, w + 7));
        }
        events.sort();
        let mut a_at = std::collections::HashMap::new();
        let mut out = Vec::new();
        for (arr, what, w) in events {
            match what {
                0 => {
                    let p = tl.on_frame(Audio, s.a_ssrc, s.a_ts(w), 48000, arr);
                    a_at.insert(w, p.pts_ms);
                }
                1 => {
                    let p = tl.on_frame(Video, s.v_ssrc, s.v_ts(w), 90000, arr);
                    if let Some(a) = a_at.get(&w) {
                        out.push((w, *a, p.pts_ms));
                    }
                }
                2 => tl.on_sender_report(Audio, s.a_ssrc, s.ntp(w), s.a_ts(w), arr),
                _ => tl.on_sender_report(Video, s.v_ssrc, s.ntp(w), s.v_ts(w), arr),
            }
        }
        out
    }

    #[test]
    fn sender_reports_align_audio_and_video() {
        let s = Sender::new();
        let mut tl = Timeline::new(TimelineConfig::default());
        // Video reaches the server 120 ms after audio captured at the same instant.
        let pairs = av_run(&s, 20, 30, 150, &mut tl);
        for (w, a, v) in pairs.iter().filter(|(w, _, _)| *w >= 2000) {
            assert!((a - v).abs() <= 1, "at {w}: audio {a} video {v}");
        }
        // Placement follows the capture clock, not arrival.
        let (w, a, _) = pairs.last().copied().unwrap();
        assert_eq!(a - pairs[pairs.len() - 2].1, w - pairs[pairs.len() - 2].0);
        assert!(tl.gaps().is_empty(), "{:?}", tl.gaps());
    }

    #[test]
    fn alignment_never_squeezes_frames() {
        let s = Sender::new();
        for (a_delay, v_delay) in [(30, 150), (150, 30), (20, 20)] {
            let mut tl = Timeline::new(TimelineConfig::default());
            let pairs = av_run(&s, 10, a_delay, v_delay, &mut tl);
            let mut prev: Option<(i64, i64)> = None;
            for &(_, a, v) in &pairs {
                if let Some((pa, pv)) = prev {
                    // Consecutive video frames (captured 100 ms apart in this list) keep >= 60 ms.
                    assert!(v - pv >= 60 && a - pa >= 60, "{a_delay}/{v_delay}: {pa}->{a} {pv}->{v}");
                }
                prev = Some((a, v));
            }
        }
    }

    #[test]
    fn an_hour_with_a_drifting_audio_clock_stays_in_sync() {
        let mut s = Sender::new();
        s.audio_ppm = 150.0; // the sound card runs fast: 540 ms over an hour
        let mut tl = Timeline::new(TimelineConfig::default());
        let pairs = av_run(&s, 3600, 40, 90, &mut tl);
        let worst = pairs.iter().filter(|(w, _, _)| *w >= 2000).map(|(_, a, v)| (a - v).abs()).max().unwrap();
        assert!(worst <= 3, "worst A/V offset {worst} ms");
        let (w, a, v) = *pairs.last().unwrap();
        assert!((a - w).abs() < 300 && (v - w).abs() < 300, "{w} {a} {v}");
        assert!(tl.gaps().is_empty());
    }

    #[test]
    fn a_pause_is_a_gap_not_stretched_time() {
        let s = Sender::new();
        let mut tl = Timeline::new(TimelineConfig::default());
        for i in 0..50 {
            tl.on_frame(Audio, s.a_ssrc, s.a_ts(i * 20), 48000, i * 20);
        }
        // Nothing for 3 s (RTP time runs on), then the sender resumes.
        let p = tl.on_frame(Audio, s.a_ssrc, s.a_ts(4000), 48000, 4000);
        assert_eq!(p.pts_ms, 4000);
        let g = p.gap.unwrap();
        assert_eq!((g.start_ms, g.end_ms, g.reason), (1000, 4000, GapReason::Pause));
        // Lost packets: the gap carries the reason noted.
        tl.note(Audio, GapReason::Loss);
        let p = tl.on_frame(Audio, s.a_ssrc, s.a_ts(4500), 48000, 4500);
        assert_eq!(p.gap.unwrap().reason, GapReason::Loss);
        assert_eq!(tl.gaps().len(), 2);
        // A short hole (under the threshold) is no gap, and clears a stale reason.
        tl.note(Audio, GapReason::Overflow);
        let p = tl.on_frame(Audio, s.a_ssrc, s.a_ts(4560), 48000, 4560);
        assert!(p.gap.is_none());
        let p = tl.on_frame(Audio, s.a_ssrc, s.a_ts(5000), 48000, 5000);
        assert_eq!(p.gap.unwrap().reason, GapReason::Pause);
    }

    #[test]
    fn a_stall_then_burst_keeps_rtp_spacing() {
        let s = Sender::new();
        let mut tl = Timeline::new(TimelineConfig::default());
        for i in 0..50 {
            tl.on_frame(Video, s.v_ssrc, s.v_ts(i * 40), 90000, i * 40);
        }
        // Network stall: the next 50 frames all arrive at once, 3 s late.
        for i in 50..100 {
            let p = tl.on_frame(Video, s.v_ssrc, s.v_ts(i * 40), 90000, 5000);
            assert_eq!(p.pts_ms, i * 40);
        }
        assert!(tl.gaps().is_empty());
    }

    #[test]
    fn rtp_timestamp_jumps_are_absorbed() {
        let s = Sender::new();
        let mut tl = Timeline::new(TimelineConfig::default());
        for i in 0..100 {
            tl.on_frame(Audio, s.a_ssrc, s.a_ts(i * 20), 48000, i * 20);
            if i == 40 {
                tl.on_sender_report(Audio, s.a_ssrc, s.ntp(i * 20), s.a_ts(i * 20), i * 20);
            }
        }
        // The sender's RTP clock leaps 5 hours ahead; arrival goes on at 20 ms.
        let leap: u32 = 48_000 * 3600 * 5;
        let mut prev = tl.last_pts(Audio).unwrap();
        for i in 100..200 {
            let p = tl.on_frame(Audio, s.a_ssrc, s.a_ts(i * 20).wrapping_add(leap), 48000, i * 20);
            assert!(p.pts_ms > prev && p.pts_ms - prev <= 21, "{i}: {prev} -> {}", p.pts_ms);
            prev = p.pts_ms;
        }
        // ... and back again, with a fresh sender report in between.
        tl.on_sender_report(Audio, s.a_ssrc, s.ntp(4000), s.a_ts(4000).wrapping_add(leap), 4000);
        for i in 200..300 {
            let p = tl.on_frame(Audio, s.a_ssrc, s.a_ts(i * 20), 48000, i * 20);
            assert!(p.pts_ms > prev && p.pts_ms - prev <= 21, "{i}: {prev} -> {}", p.pts_ms);
            prev = p.pts_ms;
        }
        assert_eq!(prev, 299 * 20);
        assert!(tl.gaps().is_empty(), "{:?}", tl.gaps());
    }

    #[test]
    fn timestamps_wrap_around() {
        let mut s = Sender::new();
        s.a0 = u32::MAX - 48_000; // wraps after one second
        let mut tl = Timeline::new(TimelineConfig::default());
        for i in 0..200 {
            let p = tl.on_frame(Audio, s.a_ssrc, s.a_ts(i * 20), 48000, i * 20 + 5);
            assert_eq!(p.pts_ms, i * 20);
        }
    }

    #[test]
    fn a_reconnect_with_new_ssrcs_continues_the_timeline() {
        let s = Sender::new();
        let mut tl = Timeline::new(TimelineConfig::default());
        let pairs = av_run(&s, 5, 30, 60, &mut tl);
        assert!(!pairs.is_empty());
        let a_end = tl.last_pts(Audio).unwrap();
        // 3 s later the kiosk is back on a new connection: new SSRCs, new RTP bases, the same
        // NTP wall clock.
        let s2 = Sender { a_ssrc: 33, v_ssrc: 44, a0: 77, v0: 3_000_000_000, ..Sender::new() };
        let offset = 8000;
        let mut a_first = None;
        let mut v_first = None;
        for step in 0..300i64 {
            let w = offset + step * 20;
            let p = tl.on_frame(Audio, s2.a_ssrc, s2.a_ts(w), 48000, w + 30);
            a_first.get_or_insert(p);
            if step % 2 == 0 {
                let p = tl.on_frame(Video, s2.v_ssrc, s2.v_ts(w), 90000, w + 60);
                v_first.get_or_insert(p);
            }
            if step % 50 == 10 {
                tl.on_sender_report(Audio, s2.a_ssrc, s2.ntp(w), s2.a_ts(w), w + 30);
                tl.on_sender_report(Video, s2.v_ssrc, s2.ntp(w), s2.v_ts(w), w + 60);
            }
        }
        let a_first = a_first.unwrap();
        assert!((a_first.pts_ms - 8000).abs() <= 40, "{a_first:?}");
        let g = a_first.gap.unwrap();
        assert_eq!((g.start_ms, g.reason), (a_end + 20, GapReason::Reconnect));
        assert_eq!(v_first.unwrap().gap.unwrap().reason, GapReason::Reconnect);
        // In sync again after the new sender reports.
        let w = offset + 298 * 20;
        let a = tl.on_frame(Audio, s2.a_ssrc, s2.a_ts(w + 40), 48000, w + 40 + 30).pts_ms;
        let v = tl.on_frame(Video, s2.v_ssrc, s2.v_ts(w + 40), 90000, w + 40 + 60).pts_ms;
        assert!((a - v).abs() <= 1, "{a} {v}");
    }

    #[test]
    fn a_new_connection_with_another_ntp_clock_is_rebased() {
        let s = Sender::new();
        let mut tl = Timeline::new(TimelineConfig::default());
        av_run(&s, 3, 30, 60, &mut tl);
        let s2 = Sender { a_ssrc: 5, v_ssrc: 6, ntp_base_ms: 1_000_000, ..Sender::new() };
        let mut last_a = tl.last_pts(Audio).unwrap();
        for step in 0..200i64 {
            let w = 4000 + step * 20;
            if step % 50 == 5 {
                tl.on_sender_report(Audio, s2.a_ssrc, s2.ntp(w), s2.a_ts(w), w + 30);
                tl.on_sender_report(Video, s2.v_ssrc, s2.ntp(w), s2.v_ts(w), w + 60);
            }
            let a = tl.on_frame(Audio, s2.a_ssrc, s2.a_ts(w), 48000, w + 30).pts_ms;
            assert!(a > last_a && (a - w).abs() < 100, "{w}: {a}");
            last_a = a;
            if step % 2 == 0 {
                let v = tl.on_frame(Video, s2.v_ssrc, s2.v_ts(w), 90000, w + 60).pts_ms;
                assert!((v - w).abs() < 100, "{w}: {v}");
                if step > 20 {
                    assert!((v - a).abs() <= 1, "{w}: a {a} v {v}");
                }
            }
        }
    }

    #[test]
    fn a_backwards_sender_clock_keeps_continuity() {
        let s = Sender::new();
        let mut tl = Timeline::new(TimelineConfig::default());
        tl.on_sender_report(Audio, s.a_ssrc, s.ntp(0), s.a_ts(0), 0);
        let mut prev = -1;
        for i in 0..300 {
            let w = i * 20;
            if i == 150 {
                // NTP set back by 10 minutes.
                tl.on_sender_report(Audio, s.a_ssrc, s.ntp(w - 600_000), s.a_ts(w), w);
            }
            let p = tl.on_frame(Audio, s.a_ssrc, s.a_ts(w), 48000, w);
            assert_eq!(p.pts_ms, w);
            assert!(p.pts_ms > prev);
            prev = p.pts_ms;
        }
    }

    #[test]
    fn a_forward_sender_clock_step_is_a_gap() {
        let s = Sender::new();
        let mut tl = Timeline::new(TimelineConfig::default());
        tl.on_sender_report(Audio, s.a_ssrc, s.ntp(0), s.a_ts(0), 0);
        for i in 0..100 {
            tl.on_frame(Audio, s.a_ssrc, s.a_ts(i * 20), 48000, i * 20);
        }
        // Paused 5 s with the RTP clock standing still: the next report shows it.
        tl.on_sender_report(Audio, s.a_ssrc, s.ntp(7000), s.a_ts(2000), 7000);
        let p = tl.on_frame(Audio, s.a_ssrc, s.a_ts(2000), 48000, 7000);
        assert_eq!(p.pts_ms, 7000);
        assert_eq!(p.gap.unwrap().reason, GapReason::Pause);
    }

    #[test]
    fn positions_strictly_increase_per_track() {
        let s = Sender::new();
        let mut tl = Timeline::new(TimelineConfig::default());
        let mut prev = -1;
        // Equal RTP timestamps (e.g. two frames of one picture) still get distinct positions.
        for i in 0..20 {
            let p = tl.on_frame(Video, s.v_ssrc, s.v_ts((i / 2) * 33), 90000, i * 17);
            assert!(p.pts_ms > prev);
            prev = p.pts_ms;
        }
    }
}
