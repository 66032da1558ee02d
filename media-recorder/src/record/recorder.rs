//! The recorder of one participant: the glue between the tee point, the pure state machines
//! (assembler, timeline, segmenter) and the muxer, and its tokio task.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rtc::rtp;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::archive::build_archive;
use super::assemble::{Assembler, AssemblyEvent, DropReason, ReorderConfig, RtpIn};
use super::depack::{CodecConfig, Frame};
use super::format::{CodecKind, Container, TrackKind};
use super::manifest::{ArchiveInfo, Manifest, RecordingStats, SegmentInfo, sha256_hex};
use super::mux::{SegmentWriter, TrackParams, probe};
use super::segmenter::{SegAction, SegFrame, SegmentClose, SegmentOpen, Segmenter, SegmenterConfig};
use super::sink::{ClosedSegment, FinishedRecording, RecordingSink};
use super::timeline::{Gap, GapReason, Timeline, TimelineConfig};
use crate::codec::Codec;

/// How recordings are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordingConfig {
    /// Segment policy (10 s segments by default).
    pub segments: SegmenterConfig,
    /// Timeline thresholds.
    pub timeline: TimelineConfig,
    /// Packets queued between the tee and the recorder task; when full, packets are dropped
    /// (and show up as a gap), forwarding is never held up.
    pub queue_packets: usize,
    /// Make the archive copy at the end.
    pub archive: bool,
    /// Segment bytes kept in memory for the archive copy; past this no archive copy is made by
    /// the recorder (the manifest says so) and the glue can build it from the stored segments
    /// with [`build_archive`].
    pub archive_max_bytes: u64,
    /// Shortest spacing of the recorder's own keyframe requests (ms).
    pub keyframe_request_interval_ms: i64,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            segments: SegmenterConfig::default(),
            timeline: TimelineConfig::default(),
            queue_packets: 2048,
            archive: true,
            archive_max_bytes: 1 << 30,
            keyframe_request_interval_ms: 400,
        }
    }
}

const MANIFEST_VERSION: u32 = 1;
const TICK: Duration = Duration::from_millis(50);

#[derive(Default)]
struct TrackState {
    assembler: Option<Assembler>,
    ssrc: Option<u32>,
    clock_rate: u32,
    /// Parameter generations in use, newest last (a few kept for segments still open).
    params: Vec<(u32, TrackParams)>,
    generation: u32,
    config: Option<CodecConfig>,
    codec: Option<CodecKind>,
}

impl TrackState {
    fn params(&self, generation: u32) -> Option<&TrackParams> {
        self.params.iter().rev().find(|(g, _)| *g == generation).map(|(_, p)| p)
    }
}

struct OpenSegment {
    open: SegmentOpen,
    container: Container,
    audio: Option<CodecKind>,
    video: Option<CodecKind>,
    writer: Option<SegmentWriter>,
}

/// One participant's recorder, driven synchronously (the SFU runs it in a task; tests can
/// drive it with hand-made RTP and their own clock).
pub struct Recorder {
    room: String,
    participant: String,
    cfg: RecordingConfig,
    sink: Arc<dyn RecordingSink>,
    keyframe: Box<dyn Fn() + Send>,
    epoch: Option<Instant>,
    epoch_wall: SystemTime,
    last_keyframe_request: Option<i64>,
    tracks: [TrackState; 2],
    timeline: Timeline,
    segmenter: Segmenter<Vec<u8>>,
    segment: Option<OpenSegment>,
    segments: Vec<SegmentInfo>,
    retained: Vec<(i64, Bytes)>,
    retained_bytes: u64,
    retain: bool,
    stats: RecordingStats,
    audio_codec: Option<CodecKind>,
    video_codec: Option<CodecKind>,
    events: Vec<AssemblyEvent>,
    /// Timeline position of the first segment's start: reported positions are relative to it,
    /// so the recording starts at 0 whichever track's frame was placed first.
    zero: Option<i64>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("room", &self.room)
            .field("participant", &self.participant)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn slot(kind: TrackKind) -> usize {
    match kind {
        TrackKind::Audio => 0,
        TrackKind::Video => 1,
    }
}

impl Recorder {
    /// A recorder of `participant` in `room`; `keyframe` asks the publisher for a keyframe.
    pub fn new(
        room: &str,
        participant: &str,
        sink: Arc<dyn RecordingSink>,
        cfg: RecordingConfig,
        keyframe: Box<dyn Fn() + Send>,
    ) -> Recorder {
        Recorder {
            room: room.to_owned(),
            participant: participant.to_owned(),
            cfg,
            sink,
            keyframe,
            epoch: None,
            epoch_wall: SystemTime::now(),
            last_keyframe_request: None,
            tracks: [TrackState::default(), TrackState::default()],
            timeline: Timeline::new(cfg.timeline),
            segmenter: Segmenter::new(cfg.segments),
            segment: None,
            segments: Vec::new(),
            retained: Vec::new(),
            retained_bytes: 0,
            retain: cfg.archive,
            stats: RecordingStats::default(),
            audio_codec: None,
            video_codec: None,
            events: Vec::new(),
            zero: None,
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> RecordingStats {
        self.stats
    }

    /// Segments closed so far.
    pub fn segments(&self) -> &[SegmentInfo] {
        &self.segments
    }

    fn ms(&mut self, at: Instant) -> i64 {
        let epoch = *self.epoch.get_or_insert_with(|| {
            self.epoch_wall = SystemTime::now();
            at
        });
        if at >= epoch {
            at.duration_since(epoch).as_millis() as i64
        } else {
            -(epoch.duration_since(at).as_millis() as i64)
        }
    }

    /// Packets the tee dropped so far (the recorder was behind): noted as a gap.
    pub fn note_overflow(&mut self, total_dropped: u64) {
        if total_dropped > self.stats.overflow_drops {
            self.stats.overflow_drops = total_dropped;
            self.timeline.note(TrackKind::Audio, GapReason::Overflow);
            self.timeline.note(TrackKind::Video, GapReason::Overflow);
        }
    }

    /// An RTP packet of the participant's `kind` track, negotiated as `codec` (MIME type)
    /// with `clock_rate`, received at `at`.
    pub fn push_rtp(&mut self, kind: TrackKind, mime: &str, clock_rate: u32, packet: &rtp::Packet, at: Instant) {
        let now = self.ms(at);
        self.stats.packets += 1;
        let Some(codec) = CodecKind::from_mime(mime).filter(|c| c.kind() == kind) else {
            return;
        };
        let i = slot(kind);
        let ssrc = packet.header.ssrc;
        let t = &mut self.tracks[i];
        if t.ssrc != Some(ssrc) || t.codec != Some(codec) {
            let mut old = t.assembler.take();
            let mut events = std::mem::take(&mut self.events);
            if let Some(a) = old.as_mut() {
                a.flush(&mut events);
            }
            let prev_ssrc = self.tracks[i].ssrc;
            self.handle(kind, prev_ssrc.unwrap_or(ssrc), &mut events, now);
            self.events = events;
            let t = &mut self.tracks[i];
            debug!(room = %self.room, participant = %self.participant, ?kind, ssrc, codec = codec.name(), "recording stream");
            t.assembler = Some(Assembler::new(codec, ReorderConfig::for_kind(kind)));
            t.ssrc = Some(ssrc);
            t.codec = Some(codec);
            t.clock_rate = clock_rate.max(1);
            if kind == TrackKind::Video {
                self.request_keyframe(now, true);
            }
        }
        let mut events = std::mem::take(&mut self.events);
        if let Some(a) = self.tracks[i].assembler.as_mut() {
            let payload = packet.payload.clone();
            a.push(
                RtpIn {
                    seq: packet.header.sequence_number,
                    timestamp: packet.header.timestamp,
                    marker: packet.header.marker,
                    payload,
                },
                now as u64,
                &mut events,
            );
        }
        self.handle(kind, ssrc, &mut events, now);
        self.events = events;
    }

    /// An RTCP sender report of the participant's `kind` track.
    pub fn sender_report(&mut self, kind: TrackKind, ssrc: u32, ntp: u64, rtp_time: u32, at: Instant) {
        let now = self.ms(at);
        self.stats.sender_reports += 1;
        self.timeline.on_sender_report(kind, ssrc, ntp, rtp_time, now);
    }

    /// Lets time pass (releases held packets and frames); call every ~50 ms.
    pub fn tick(&mut self, at: Instant) {
        let now = self.ms(at);
        let mut events = std::mem::take(&mut self.events);
        for kind in [TrackKind::Audio, TrackKind::Video] {
            let i = slot(kind);
            if let Some(a) = self.tracks[i].assembler.as_mut() {
                a.poll(now as u64, &mut events);
            }
            let ssrc = self.tracks[i].ssrc.unwrap_or(0);
            self.handle(kind, ssrc, &mut events, now);
        }
        self.events = events;
        let actions = self.segmenter.tick(now);
        self.apply(actions, now);
    }

    fn request_keyframe(&mut self, now: i64, force: bool) {
        if !force && self.last_keyframe_request.is_some_and(|t| now - t < self.cfg.keyframe_request_interval_ms) {
            return;
        }
        self.last_keyframe_request = Some(now);
        self.stats.keyframe_requests += 1;
        (self.keyframe)();
    }

    fn handle(&mut self, kind: TrackKind, ssrc: u32, events: &mut Vec<AssemblyEvent>, now: i64) {
        for e in events.drain(..) {
            match e {
                AssemblyEvent::Frame { timestamp, frame, arrival } => {
                    self.frame(kind, ssrc, timestamp, frame, arrival as i64, now)
                }
                AssemblyEvent::Lost(n) => {
                    self.stats.lost_packets += n;
                    self.timeline.note(kind, GapReason::Loss);
                }
                AssemblyEvent::Dropped { reason, .. } => {
                    self.stats.dropped_frames += 1;
                    match reason {
                        DropReason::WaitingForKeyframe => self.request_keyframe(now, false),
                        DropReason::Depacketize(e) => {
                            debug!(room = %self.room, participant = %self.participant, error = %e, "frame not depacketized")
                        }
                        DropReason::TooLarge => {
                            debug!(room = %self.room, participant = %self.participant, "frame over the size bound dropped")
                        }
                        DropReason::Loss => {}
                    }
                    self.timeline.note(kind, GapReason::Loss);
                }
                AssemblyEvent::NeedKeyframe => self.request_keyframe(now, true),
            }
        }
    }

    fn frame(&mut self, kind: TrackKind, ssrc: u32, timestamp: u32, frame: Frame, arrival: i64, now: i64) {
        let i = slot(kind);
        let t = &mut self.tracks[i];
        let Some(codec) = t.codec else { return };
        let new_config =
            frame.keyframe && kind == TrackKind::Video && frame.config.is_some() && frame.config != t.config;
        if t.params.is_empty() || new_config || t.params.last().is_some_and(|(_, p)| p.codec != codec) {
            match probe(codec, &frame) {
                Ok(p) => {
                    t.generation += 1;
                    t.params.push((t.generation, p));
                    if t.params.len() > 4 {
                        t.params.remove(0);
                    }
                    t.config = frame.config.clone();
                }
                Err(e) => {
                    warn!(room = %self.room, participant = %self.participant, codec = codec.name(), error = %e,
                        "codec parameters not found; frame dropped");
                    self.stats.dropped_frames += 1;
                    if kind == TrackKind::Video {
                        self.request_keyframe(now, false);
                    }
                    return;
                }
            }
        }
        let generation = t.generation;
        let clock = t.clock_rate;
        let placed = self.timeline.on_frame(kind, ssrc, timestamp, clock, arrival);
        let seg = SegFrame {
            kind,
            pts_ms: placed.pts_ms,
            keyframe: frame.keyframe,
            params: generation,
            arrival: now,
            data: frame.data,
        };
        let actions = self.segmenter.push(seg, now);
        self.apply(actions, now);
    }

    fn apply(&mut self, actions: Vec<SegAction<Vec<u8>>>, now: i64) {
        for a in actions {
            match a {
                SegAction::Open(o) => self.open_segment(o),
                SegAction::Write(f) => {
                    let Some(seg) = self.segment.as_mut() else {
                        self.stats.dropped_frames += 1;
                        continue;
                    };
                    let Some(w) = seg.writer.as_mut() else {
                        self.stats.dropped_frames += 1;
                        continue;
                    };
                    match w.write(f.kind, f.pts_ms - seg.open.start_ms, f.keyframe, &f.data) {
                        Ok(()) => self.stats.frames += 1,
                        Err(e) => {
                            self.stats.dropped_frames += 1;
                            debug!(room = %self.room, participant = %self.participant, error = %e, "frame not written");
                        }
                    }
                }
                SegAction::Close(c) => self.close_segment(c),
                SegAction::RequestKeyframe => self.request_keyframe(now, false),
                SegAction::Dropped { .. } => self.stats.dropped_frames += 1,
            }
        }
    }

    fn open_segment(&mut self, o: SegmentOpen) {
        self.zero.get_or_insert(o.start_ms);
        let audio = o.audio.and_then(|g| self.tracks[0].params(g)).cloned();
        let video = o.video.and_then(|g| self.tracks[1].params(g)).cloned();
        let container = Container::for_video(video.as_ref().map(|p| p.codec));
        let writer = match SegmentWriter::open(container, audio.as_ref(), video.as_ref()) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(room = %self.room, participant = %self.participant, segment = o.index, error = %e, "segment not opened");
                self.stats.failed_segments += 1;
                None
            }
        };
        self.segment = Some(OpenSegment {
            open: o,
            container,
            audio: audio.map(|p| p.codec),
            video: video.map(|p| p.codec),
            writer,
        });
    }

    fn close_segment(&mut self, c: SegmentClose) {
        let Some(seg) = self.segment.take() else { return };
        let Some(writer) = seg.writer else { return };
        let data = match writer.finish() {
            Ok(d) => Bytes::from(d),
            Err(e) => {
                warn!(room = %self.room, participant = %self.participant, segment = c.index, error = %e, "segment not finished");
                self.stats.failed_segments += 1;
                return;
            }
        };
        let zero = self.zero.unwrap_or(0);
        let info = SegmentInfo {
            index: c.index,
            start_ms: c.start_ms - zero,
            duration_ms: c.end_ms - c.start_ms,
            container: seg.container,
            audio: seg.audio,
            video: seg.video,
            starts_with_keyframe: c.starts_with_keyframe,
            bytes: data.len() as u64,
            sha256: sha256_hex(&data),
        };
        if seg.audio.is_some() {
            self.audio_codec = seg.audio;
        }
        if seg.video.is_some() {
            self.video_codec = seg.video;
        }
        debug!(room = %self.room, participant = %self.participant, segment = c.index, start_ms = c.start_ms,
            duration_ms = info.duration_ms, bytes = info.bytes, "segment closed");
        if self.retain {
            self.retained_bytes += info.bytes;
            if self.retained_bytes > self.cfg.archive_max_bytes {
                warn!(room = %self.room, participant = %self.participant,
                    "recording larger than archive_max_bytes: no archive copy will be made by the recorder");
                self.retain = false;
                self.retained.clear();
            } else {
                self.retained.push((info.start_ms, data.clone()));
            }
        }
        self.segments.push(info.clone());
        self.sink.segment_closed(ClosedSegment {
            room: self.room.clone(),
            participant: self.participant.clone(),
            info,
            data,
        });
    }

    /// Ends the recording: writes what is held, closes the last segment, builds the archive
    /// copy and hands the manifest to the sink. CPU-heavy at the end of long calls: run it off
    /// the async threads.
    pub fn finish(mut self) {
        let now = self.epoch.map(|e| self.ms(e + e.elapsed())).unwrap_or(0);
        let mut events = std::mem::take(&mut self.events);
        for kind in [TrackKind::Audio, TrackKind::Video] {
            let i = slot(kind);
            if let Some(a) = self.tracks[i].assembler.as_mut() {
                a.flush(&mut events);
            }
            let ssrc = self.tracks[i].ssrc.unwrap_or(0);
            self.handle(kind, ssrc, &mut events, now);
        }
        let actions = self.segmenter.finish();
        self.apply(actions, now);

        let container = self.segments.last().map(|s| s.container).unwrap_or(Container::Webm);
        let (archive, archive_error) = if !self.cfg.archive {
            (None, Some("archive copy disabled".to_owned()))
        } else if self.segments.is_empty() {
            (None, Some("nothing recorded".to_owned()))
        } else if !self.retain {
            (None, Some("recording larger than archive_max_bytes; build it from the stored segments".to_owned()))
        } else if self.segments.iter().any(|s| s.container != container) {
            (None, Some("segments in different containers (codec changed mid-call)".to_owned()))
        } else {
            match build_archive(container, std::mem::take(&mut self.retained)) {
                Ok(a) => (Some(a), None),
                Err(e) => {
                    warn!(room = %self.room, participant = %self.participant, error = %e, "archive copy failed");
                    (None, Some(e.to_string()))
                }
            }
        };
        self.retained.clear();
        let zero = self.zero.unwrap_or(0);
        let origin = (self.timeline.origin().unwrap_or(0) + zero).max(0) as u64;
        let start = self.epoch_wall + Duration::from_millis(origin);
        let started_at_unix_ms = start.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let duration_ms = self.segments.last().map(|s| s.start_ms + s.duration_ms).unwrap_or(0);
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            room: self.room.clone(),
            participant: self.participant.clone(),
            started_at_unix_ms,
            ended_at_unix_ms: started_at_unix_ms + duration_ms.max(0) as u64,
            duration_ms,
            audio: self.audio_codec,
            video: self.video_codec,
            segments: std::mem::take(&mut self.segments),
            gaps: self
                .timeline
                .gaps()
                .iter()
                .map(|g| Gap { start_ms: g.start_ms - zero, end_ms: g.end_ms - zero, ..*g })
                .collect(),
            archive: archive.as_ref().map(|a| ArchiveInfo {
                container: a.container,
                bytes: a.len,
                sha256: a.sha256.clone(),
                duration_ms: a.duration_ms,
            }),
            archive_error,
            stats: self.stats,
        };
        info!(room = %self.room, participant = %self.participant, segments = manifest.segments.len(),
            duration_ms, archive = manifest.archive.is_some(), stats = ?manifest.stats, "recording finished");
        self.sink.recording_finished(FinishedRecording { manifest, archive });
    }
}

/// What the tee sends to a recorder task.
pub(crate) enum Input {
    Rtp { kind: TrackKind, packet: rtp::Packet, codec: Arc<Codec>, at: Instant },
    SenderReport { kind: TrackKind, ssrc: u32, ntp: u64, rtp: u32, at: Instant },
}

/// Whom a recorder asks for a keyframe: the participant's video publisher.
pub(crate) trait KeyframeSource: Send + Sync {
    /// The recorder wants a keyframe (the source rate-limits).
    fn keyframe_wanted(&self);
}

/// The tee's handle on one participant's recorder: shared by the participant's audio and video
/// publishers. Dropping the last handle (or [`Tap::finish`]) ends the recording.
pub(crate) struct Tap {
    tx: mpsc::Sender<Input>,
    dropped: Arc<AtomicU64>,
    video: Arc<Mutex<Option<Weak<dyn KeyframeSource>>>>,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl Tap {
    /// Starts the recorder task of `participant` in `room`.
    pub fn spawn(room: &str, participant: &str, sink: Arc<dyn RecordingSink>, cfg: RecordingConfig) -> Arc<Tap> {
        let (tx, rx) = mpsc::channel(cfg.queue_packets.max(16));
        let (stop_tx, stop_rx) = oneshot::channel();
        let video: Arc<Mutex<Option<Weak<dyn KeyframeSource>>>> = Arc::new(Mutex::new(None));
        let dropped = Arc::new(AtomicU64::new(0));
        let kf_video = video.clone();
        let keyframe: Box<dyn Fn() + Send> = Box::new(move || {
            let source = kf_video.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(Weak::upgrade);
            if let Some(s) = source {
                s.keyframe_wanted();
            }
        });
        let recorder = Recorder::new(room, participant, sink, cfg, keyframe);
        info!(%room, %participant, "recording started");
        tokio::spawn(run(recorder, rx, stop_rx, dropped.clone()));
        Arc::new(Tap { tx, dropped, video, stop: Mutex::new(Some(stop_tx)) })
    }

    /// Where keyframe requests go (the video publisher).
    pub fn set_keyframe_source(&self, source: Weak<dyn KeyframeSource>) {
        *self.video.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    /// Tees one packet (never waits: drops and counts when the recorder is behind).
    pub fn rtp(&self, kind: TrackKind, packet: &rtp::Packet, codec: &Arc<Codec>) {
        let item = Input::Rtp { kind, packet: packet.clone(), codec: codec.clone(), at: Instant::now() };
        if self.tx.try_send(item).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() {
                warn!(dropped = n + 1, "recorder queue full, packets dropped");
            }
        }
    }

    /// Tees a sender report.
    pub fn sender_report(&self, kind: TrackKind, ssrc: u32, ntp: u64, rtp: u32) {
        let _ = self.tx.try_send(Input::SenderReport { kind, ssrc, ntp, rtp, at: Instant::now() });
    }

    /// Ends the recording (what is queued is still recorded).
    pub fn finish(&self) {
        if let Some(tx) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(());
        }
    }
}

async fn run(
    mut recorder: Recorder,
    mut rx: mpsc::Receiver<Input>,
    mut stop: oneshot::Receiver<()>,
    dropped: Arc<AtomicU64>,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let feed = |recorder: &mut Recorder, input: Input| match input {
        Input::Rtp { kind, packet, codec, at } => {
            recorder.note_overflow(dropped.load(Ordering::Relaxed));
            recorder.push_rtp(kind, &codec.mime, codec.clock_rate, &packet, at);
        }
        Input::SenderReport { kind, ssrc, ntp, rtp, at } => recorder.sender_report(kind, ssrc, ntp, rtp, at),
    };
    loop {
        tokio::select! {
            item = rx.recv() => match item {
                Some(input) => feed(&mut recorder, input),
                None => break,
            },
            _ = tick.tick() => recorder.tick(Instant::now()),
            _ = &mut stop => break,
        }
    }
    while let Ok(input) = rx.try_recv() {
        feed(&mut recorder, input);
    }
    let _ = tokio::task::spawn_blocking(move || recorder.finish()).await;
}
