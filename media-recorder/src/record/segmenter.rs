//! Cutting a participant's recording into segments: a pure state machine. Frames (already on
//! the participant timeline) and `now` in; open/write/close/keyframe-request actions out.
//!
//! Policy:
//! * Frames of both tracks are interleaved in timeline order through a short hold, so a cut
//!   falls at one instant for audio and video.
//! * The first segment opens once both tracks have a frame, or `start_hold_ms` after the first
//!   frame (a participant without a camera records audio only).
//! * A segment holds at most `max_ms` of media. Video segments start on a keyframe: from
//!   `max_ms - keyframe_lead_ms` on the segmenter asks for a keyframe (again every
//!   `keyframe_retry_ms`) and cuts at the first one. If none comes, it cuts anyway at `max_ms`
//!   (a *forced* cut: the next segment starts with a frame that needs the previous segment; the
//!   archive, which joins the segments, is unaffected).
//! * A track that appears later, or whose codec parameters change (a new resolution, a new
//!   codec after a reconnect), starts a new segment at its next keyframe.

use std::collections::VecDeque;

use super::format::TrackKind;

/// Segment policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmenterConfig {
    /// Longest segment (ms of media).
    pub max_ms: i64,
    /// How long before `max_ms` a keyframe is asked for and a cut allowed.
    pub keyframe_lead_ms: i64,
    /// Interval of repeated keyframe requests while waiting for one.
    pub keyframe_retry_ms: i64,
    /// How long the first segment waits for the second track.
    pub start_hold_ms: i64,
    /// How long (arrival time) a frame may wait for the other track's frames to interleave.
    pub interleave_hold_ms: i64,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        SegmenterConfig {
            max_ms: 10_000,
            keyframe_lead_ms: 2_000,
            keyframe_retry_ms: 500,
            start_hold_ms: 1_500,
            interleave_hold_ms: 300,
        }
    }
}

/// A frame on its way into a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegFrame<T> {
    /// Track.
    pub kind: TrackKind,
    /// Position on the participant timeline (ms).
    pub pts_ms: i64,
    /// Decodable on its own (audio frames always are).
    pub keyframe: bool,
    /// Generation of the track's codec parameters (changes only on keyframes).
    pub params: u32,
    /// Arrival (ms, the caller's clock).
    pub arrival: i64,
    /// The frame itself.
    pub data: T,
}

/// A segment being opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentOpen {
    /// 0, 1, 2, ...
    pub index: u32,
    /// Start on the participant timeline (ms); frames are written relative to it.
    pub start_ms: i64,
    /// Audio parameter generation, if the segment has audio.
    pub audio: Option<u32>,
    /// Video parameter generation, if the segment has video.
    pub video: Option<u32>,
}

/// A segment being closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentClose {
    /// Index of the segment.
    pub index: u32,
    /// Start (ms).
    pub start_ms: i64,
    /// End of its last frame (ms).
    pub end_ms: i64,
    /// Whether its video starts with a keyframe (false only after a forced cut).
    pub starts_with_keyframe: bool,
    /// Frames written.
    pub frames: u64,
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegAction<T> {
    /// Open a new segment.
    Open(SegmentOpen),
    /// Write a frame into the open segment (at `pts_ms - start_ms`).
    Write(SegFrame<T>),
    /// Finish the open segment.
    Close(SegmentClose),
    /// Ask the publisher for a keyframe.
    RequestKeyframe,
    /// A frame that cannot be placed (late behind a cut, or a track waiting for its cut).
    Dropped {
        /// Track.
        kind: TrackKind,
        /// Its position.
        pts_ms: i64,
    },
}

#[derive(Debug, Clone)]
struct Open {
    index: u32,
    start_ms: i64,
    audio: Option<u32>,
    video: Option<u32>,
    end_ms: i64,
    frames: u64,
    starts_with_keyframe: bool,
    last_request: Option<i64>,
}

/// The segmenter (see the module documentation).
#[derive(Debug)]
pub struct Segmenter<T> {
    cfg: SegmenterConfig,
    queues: [VecDeque<SegFrame<T>>; 2],
    seen: [bool; 2],
    first_arrival: Option<i64>,
    open: Option<Open>,
    next_index: u32,
    /// A track must join: cut at the next video keyframe.
    cut_pending: bool,
    finished: bool,
}

fn idx(kind: TrackKind) -> usize {
    match kind {
        TrackKind::Audio => 0,
        TrackKind::Video => 1,
    }
}

fn nominal_ms(kind: TrackKind) -> i64 {
    match kind {
        TrackKind::Audio => 20,
        TrackKind::Video => 33,
    }
}

impl<T> Segmenter<T> {
    /// A segmenter with nothing open.
    pub fn new(cfg: SegmenterConfig) -> Segmenter<T> {
        Segmenter {
            cfg,
            queues: [VecDeque::new(), VecDeque::new()],
            seen: [false; 2],
            first_arrival: None,
            open: None,
            next_index: 0,
            cut_pending: false,
            finished: false,
        }
    }

    /// Frames waiting to be interleaved.
    pub fn queued(&self) -> usize {
        self.queues[0].len() + self.queues[1].len()
    }

    /// Index of the open segment.
    pub fn open_index(&self) -> Option<u32> {
        self.open.as_ref().map(|o| o.index)
    }

    /// Adds a frame (positions of one track must increase); `now` is the caller's clock.
    pub fn push(&mut self, frame: SegFrame<T>, now: i64) -> Vec<SegAction<T>> {
        let mut out = Vec::new();
        if self.finished {
            out.push(SegAction::Dropped { kind: frame.kind, pts_ms: frame.pts_ms });
            return out;
        }
        self.first_arrival.get_or_insert(frame.arrival);
        let i = idx(frame.kind);
        self.seen[i] = true;
        self.queues[i].push_back(frame);
        self.release(now, false, &mut out);
        out
    }

    /// Lets frames whose hold ran out through (call periodically).
    pub fn tick(&mut self, now: i64) -> Vec<SegAction<T>> {
        let mut out = Vec::new();
        if !self.finished {
            self.release(now, false, &mut out);
        }
        out
    }

    /// End of the recording: writes everything held and closes the open segment.
    pub fn finish(&mut self) -> Vec<SegAction<T>> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        self.release(i64::MAX, true, &mut out);
        if let Some(o) = self.open.take() {
            out.push(SegAction::Close(close_of(&o)));
        }
        self.finished = true;
        out
    }

    fn release(&mut self, now: i64, all: bool, out: &mut Vec<SegAction<T>>) {
        if self.open.is_none() && !all {
            let both = self.seen[0] && self.seen[1];
            let waited = self.first_arrival.is_some_and(|a| now.saturating_sub(a) >= self.cfg.start_hold_ms);
            if !both && !waited {
                return;
            }
        }
        loop {
            let heads = [self.queues[0].front(), self.queues[1].front()];
            let pick = match heads {
                [None, None] => return,
                [Some(_), None] | [None, Some(_)] => {
                    let i = if heads[0].is_some() { 0 } else { 1 };
                    let other_active = self.seen[1 - i];
                    let h = heads[i].map(|f| f.arrival).unwrap_or(now);
                    if all || !other_active || now.saturating_sub(h) >= self.cfg.interleave_hold_ms {
                        i
                    } else {
                        return;
                    }
                }
                [Some(a), Some(v)] => {
                    // Video first at equal positions: a cut there takes the audio along.
                    if a.pts_ms < v.pts_ms { 0 } else { 1 }
                }
            };
            let Some(frame) = self.queues[pick].pop_front() else { return };
            self.place(frame, now, out);
        }
    }

    fn open_new(&mut self, start_ms: i64, first: &SegFrame<T>, forced: bool, out: &mut Vec<SegAction<T>>) {
        let mut o = Open {
            index: self.next_index,
            start_ms,
            audio: None,
            video: None,
            end_ms: start_ms,
            frames: 0,
            starts_with_keyframe: !forced,
            last_request: None,
        };
        self.next_index += 1;
        // Tracks: the frame's own, and the other if it has been heard from (its current
        // parameters: those of its queued head, else of the segment before).
        let prev = self.open.as_ref().map(|p| (p.audio, p.video));
        for kind in [TrackKind::Audio, TrackKind::Video] {
            let params = if kind == first.kind {
                Some(first.params)
            } else if !self.seen[idx(kind)] {
                None
            } else {
                self.queues[idx(kind)]
                    .front()
                    .map(|f| f.params)
                    .or_else(|| prev.and_then(|(a, v)| if kind == TrackKind::Audio { a } else { v }))
            };
            match kind {
                TrackKind::Audio => o.audio = params,
                TrackKind::Video => o.video = params,
            }
        }
        // A video track whose next frame is not a keyframe cannot start here.
        if first.kind == TrackKind::Audio
            && o.video.is_some()
            && !forced
            && self.queues[1].front().is_some_and(|f| !f.keyframe)
            && prev.is_none_or(|(_, v)| v.is_none())
        {
            o.video = None;
        }
        out.push(SegAction::Open(SegmentOpen { index: o.index, start_ms, audio: o.audio, video: o.video }));
        self.open = Some(o);
        self.cut_pending = false;
    }

    fn cut(&mut self, frame: &SegFrame<T>, forced: bool, out: &mut Vec<SegAction<T>>) {
        if let Some(o) = self.open.take() {
            out.push(SegAction::Close(close_of(&o)));
            self.open = Some(o); // kept for `open_new` to inherit parameters
        }
        self.open_new(frame.pts_ms, frame, forced, out);
    }

    fn place(&mut self, frame: SegFrame<T>, now: i64, out: &mut Vec<SegAction<T>>) {
        let Some(o) = self.open.as_ref() else {
            self.open_new(frame.pts_ms, &frame, false, out);
            return self.write(frame, out);
        };
        if frame.pts_ms < o.start_ms {
            out.push(SegAction::Dropped { kind: frame.kind, pts_ms: frame.pts_ms });
            return;
        }
        let has = |k: TrackKind| match k {
            TrackKind::Audio => o.audio,
            TrackKind::Video => o.video,
        };
        let is_video = frame.kind == TrackKind::Video;
        // A track that is not in the segment, or whose parameters changed.
        if has(frame.kind) != Some(frame.params) {
            if is_video && frame.keyframe {
                self.cut(&frame, false, out);
                return self.write(frame, out);
            }
            if is_video || o.video.is_some() {
                // Wait for a video keyframe to cut at.
                out.push(SegAction::Dropped { kind: frame.kind, pts_ms: frame.pts_ms });
                self.cut_pending = true;
                self.request(frame.pts_ms, out);
                return;
            }
            // Audio-only segment: audio can be cut anywhere.
            self.cut(&frame, false, out);
            return self.write(frame, out);
        }
        let elapsed = frame.pts_ms - o.start_ms;
        let soft = self.cfg.max_ms - self.cfg.keyframe_lead_ms;
        let over = frame.pts_ms + nominal_ms(frame.kind) - o.start_ms > self.cfg.max_ms;
        if o.video.is_some() {
            if is_video && frame.keyframe && (elapsed >= soft || self.cut_pending) && elapsed > 0 {
                self.cut(&frame, false, out);
            } else if over {
                let forced = !(is_video && frame.keyframe);
                self.cut(&frame, forced, out);
            } else if elapsed >= soft {
                self.request(frame.pts_ms, out);
            }
        } else if over {
            self.cut(&frame, false, out);
        }
        let _ = now;
        self.write(frame, out);
    }

    fn request(&mut self, pts: i64, out: &mut Vec<SegAction<T>>) {
        let retry = self.cfg.keyframe_retry_ms;
        if let Some(o) = self.open.as_mut()
            && o.last_request.is_none_or(|t| pts - t >= retry)
        {
            o.last_request = Some(pts);
            out.push(SegAction::RequestKeyframe);
        }
    }

    fn write(&mut self, frame: SegFrame<T>, out: &mut Vec<SegAction<T>>) {
        if let Some(o) = self.open.as_mut() {
            o.frames += 1;
            o.end_ms = o.end_ms.max(frame.pts_ms + nominal_ms(frame.kind));
        }
        out.push(SegAction::Write(frame));
    }
}

fn close_of(o: &Open) -> SegmentClose {
    SegmentClose {
        index: o.index,
        start_ms: o.start_ms,
        end_ms: o.end_ms,
        starts_with_keyframe: o.starts_with_keyframe,
        frames: o.frames,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TrackKind::{Audio, Video};

    fn f(kind: TrackKind, pts: i64, key: bool) -> SegFrame<()> {
        SegFrame { kind, pts_ms: pts, keyframe: key, params: 0, arrival: pts, data: () }
    }

    /// A compact log of actions: "open0@0[av]", "close0@0-10000", "w:a20", "pli", "drop:a40".
    fn log(actions: &[SegAction<()>]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                SegAction::Open(o) => format!(
                    "open{}@{}[{}{}]",
                    o.index,
                    o.start_ms,
                    if o.audio.is_some() { "a" } else { "" },
                    if o.video.is_some() { "v" } else { "" }
                ),
                SegAction::Close(c) => format!(
                    "close{}@{}-{}{}",
                    c.index,
                    c.start_ms,
                    c.end_ms,
                    if c.starts_with_keyframe { "" } else { "!" }
                ),
                SegAction::Write(f) => {
                    format!(
                        "w:{}{}{}",
                        if f.kind == Audio { "a" } else { "v" },
                        f.pts_ms,
                        if f.keyframe && f.kind == Video { "k" } else { "" }
                    )
                }
                SegAction::RequestKeyframe => "pli".into(),
                SegAction::Dropped { kind, pts_ms } => {
                    format!("drop:{}{}", if *kind == Audio { "a" } else { "v" }, pts_ms)
                }
            })
            .collect()
    }

    /// Feeds audio every 20 ms and video every 40 ms (keyframes where `key` says) up to `end`.
    fn run(s: &mut Segmenter<()>, end: i64, key: impl Fn(i64) -> bool) -> Vec<SegAction<()>> {
        let mut out = Vec::new();
        let mut t = 0;
        while t < end {
            out.extend(s.push(f(Audio, t, true), t));
            if t % 40 == 0 {
                out.extend(s.push(f(Video, t, key(t)), t));
            }
            t += 20;
        }
        out.extend(s.finish());
        out
    }

    fn opens_and_closes(actions: &[SegAction<()>]) -> Vec<String> {
        log(actions).into_iter().filter(|l| l.starts_with("open") || l.starts_with("close")).collect()
    }

    #[test]
    fn cuts_on_the_first_keyframe_after_the_request() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        // Keyframes only when asked: the test answers a request 200 ms later.
        let asked = std::cell::Cell::new(None::<i64>);
        let mut out = Vec::new();
        let mut t = 0;
        while t < 25_000 {
            out.extend(s.push(f(Audio, t, true), t));
            if t % 40 == 0 {
                let key = t == 0 || asked.get().is_some_and(|a| t >= a + 200);
                if key {
                    asked.set(None);
                }
                let actions = s.push(f(Video, t, key), t);
                if actions.iter().any(|a| matches!(a, SegAction::RequestKeyframe)) && asked.get().is_none() {
                    asked.set(Some(t));
                }
                out.extend(actions);
            }
            t += 20;
        }
        out.extend(s.finish());
        let segs = opens_and_closes(&out);
        // Requests start at 8000; the keyframe at 8200 (the first video frame 200 ms later) cuts.
        assert_eq!(segs[0], "open0@0[av]");
        assert_eq!(segs[1], "close0@0-8200");
        assert_eq!(segs[2], "open1@8200[av]");
        assert_eq!(segs[3], "close1@8200-16400");
        // Every segment's first video frame is a keyframe, all at most 10 s.
        let mut first_video_of_segment = true;
        for l in log(&out) {
            if l.starts_with("open") {
                first_video_of_segment = true;
            }
            if l.starts_with("w:v") {
                if first_video_of_segment {
                    assert!(l.ends_with('k'), "{l}");
                }
                first_video_of_segment = false;
            }
        }
        for a in &out {
            if let SegAction::Close(c) = a {
                assert!(c.end_ms - c.start_ms <= 10_000);
                assert!(c.starts_with_keyframe);
            }
        }
    }

    #[test]
    fn cuts_anyway_at_the_hard_maximum_without_a_keyframe() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        let out = run(&mut s, 21_000, |t| t == 0);
        let segs = opens_and_closes(&out);
        assert_eq!(
            segs,
            [
                "open0@0[av]",
                "close0@0-10000",
                "open1@10000[av]",
                "close1@10000-20000!",
                "open2@20000[av]",
                "close2@20000-21000!"
            ]
        );
        let plis = out.iter().filter(|a| matches!(a, SegAction::RequestKeyframe)).count();
        // Every 500 ms from 8000 to 10000 and again in the next segments.
        assert!(plis >= 8, "{plis}");
    }

    #[test]
    fn keyframes_before_the_soft_limit_do_not_cut() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        let out = run(&mut s, 12_000, |t| t % 2000 == 0);
        assert_eq!(opens_and_closes(&out), ["open0@0[av]", "close0@0-8000", "open1@8000[av]", "close1@8000-12000"]);
    }

    #[test]
    fn audio_only_cuts_every_max() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        let mut out = Vec::new();
        for t in (0..25_000).step_by(20) {
            out.extend(s.push(f(Audio, t, true), t));
        }
        out.extend(s.finish());
        assert_eq!(
            opens_and_closes(&out),
            [
                "open0@0[a]",
                "close0@0-10000",
                "open1@10000[a]",
                "close1@10000-20000",
                "open2@20000[a]",
                "close2@20000-25000"
            ]
        );
        assert!(!out.iter().any(|a| matches!(a, SegAction::RequestKeyframe)));
    }

    #[test]
    fn the_first_segment_waits_for_both_tracks_and_interleaves() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        let mut out = Vec::new();
        // Audio from 0, the first video keyframe at 100 (arriving at 300).
        for t in (0..300).step_by(20) {
            out.extend(s.push(f(Audio, t, true), t));
        }
        assert!(out.is_empty());
        out.extend(s.push(SegFrame { arrival: 300, ..f(Video, 100, true) }, 300));
        let l = log(&out);
        assert_eq!(l[0], "open0@0[av]");
        // In timeline order: audio up to 100, then the video frame.
        let v = l.iter().position(|x| x == "w:v100k").unwrap();
        assert_eq!(l[v - 1], "w:a80");
        // Audio from 100 on waits for more video (or its hold).
        assert_eq!(v, l.len() - 1);
        let l = log(&s.tick(400));
        assert_eq!(l.first().map(String::as_str), Some("w:a100"));
    }

    #[test]
    fn audio_alone_starts_after_the_hold_and_video_joins_at_its_keyframe() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        let mut out = Vec::new();
        for t in (0..3000).step_by(20) {
            out.extend(s.push(f(Audio, t, true), t));
        }
        out.extend(s.push(f(Video, 3000, true), 3000));
        out.extend(s.push(f(Audio, 3000, true), 3000));
        out.extend(s.finish());
        assert_eq!(opens_and_closes(&out), ["open0@0[a]", "close0@0-3000", "open1@3000[av]", "close1@3000-3033"]);
    }

    #[test]
    fn a_parameter_change_cuts_at_its_keyframe() {
        let mut s = Segmenter::new(SegmenterConfig::default());
        let mut out = Vec::new();
        for t in (0..4000).step_by(40) {
            out.extend(s.push(f(Audio, t, true), t));
            out.extend(s.push(f(Audio, t + 20, true), t + 20));
            let params = if t >= 2000 { 1 } else { 0 };
            out.extend(s.push(SegFrame { params, ..f(Video, t, t == 0 || t == 2000) }, t));
        }
        out.extend(s.finish());
        assert_eq!(opens_and_closes(&out), ["open0@0[av]", "close0@0-2000", "open1@2000[av]", "close1@2000-4000"]);
    }

    #[test]
    fn late_frames_behind_a_cut_are_dropped() {
        let cfg = SegmenterConfig { interleave_hold_ms: 0, ..SegmenterConfig::default() };
        let mut s = Segmenter::new(cfg);
        let mut out = Vec::new();
        out.extend(s.push(f(Audio, 0, true), 0));
        out.extend(s.push(f(Video, 0, true), 0));
        for t in (40..9000).step_by(40) {
            out.extend(s.push(f(Video, t, t == 8400), t));
        }
        // Audio 8000..8400 arrives after video cut at 8400.
        out.extend(s.push(f(Audio, 8380, true), 9000));
        let l = log(&out);
        assert!(l.contains(&"drop:a8380".to_string()), "{l:?}");
    }
}
