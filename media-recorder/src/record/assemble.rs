//! From RTP packets of one track to whole frames: a small, bounded reordering buffer by
//! sequence number, frame assembly by RTP timestamp and marker bit, and the loss policy.
//!
//! Loss policy: a frame that lost a packet is dropped. For video, every frame after a loss is
//! dropped too until a keyframe arrives, and a keyframe is requested, so the recording never
//! shows a picture decoded from missing references. Pure: packets and `now` (ms) in, events out.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::depack::{self, DepackError, Depacketizer, Frame};
use super::format::{CodecKind, TrackKind};

/// Bounds of the reordering buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReorderConfig {
    /// Packets held while waiting for a missing one; past this the hole is declared lost.
    pub max_packets: usize,
    /// Longest wait (ms) for a missing packet (room for one NACK round trip).
    pub max_wait_ms: u64,
}

impl ReorderConfig {
    /// Defaults for `kind`: audio waits less (a late audio frame is worth less than a gap).
    pub fn for_kind(kind: TrackKind) -> ReorderConfig {
        match kind {
            TrackKind::Audio => ReorderConfig { max_packets: 50, max_wait_ms: 120 },
            TrackKind::Video => ReorderConfig { max_packets: 512, max_wait_ms: 250 },
        }
    }
}

/// What leaves the reordering buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ordered<T> {
    /// The next packet in sequence order (extended sequence number).
    Packet(u64, T),
    /// `count` packets starting at extended sequence number `first` will not come.
    Lost {
        /// First missing extended sequence number.
        first: u64,
        /// How many.
        count: u64,
    },
}

/// A jump of more sequence numbers than this is a restart of the numbering.
const RESYNC: u64 = 3000;
/// Packets held before the first is released (unless `max_wait_ms` passes first).
const START_PACKETS: usize = 3;

/// Reorders packets by sequence number within bounds.
#[derive(Debug)]
pub struct Reorder<T> {
    cfg: ReorderConfig,
    /// Next extended sequence number to release.
    next: Option<u64>,
    /// Highest extended sequence number seen (for unwrapping).
    highest: u64,
    buf: BTreeMap<u64, (T, u64)>,
    /// Released the first packet: until then the start is held so that packets reordered
    /// ahead of the first one still find their place.
    started: bool,
    /// Packets that came too late or twice.
    pub discarded: u64,
}

impl<T> Reorder<T> {
    /// An empty buffer.
    pub fn new(cfg: ReorderConfig) -> Reorder<T> {
        Reorder { cfg, next: None, highest: 0, buf: BTreeMap::new(), started: false, discarded: 0 }
    }

    fn extend(&self, seq: u16) -> u64 {
        let delta = i64::from(seq.wrapping_sub(self.highest as u16) as i16);
        (self.highest as i64 + delta).max(0) as u64
    }

    /// Adds a packet received at `now`; appends what can be released to `out`.
    pub fn push(&mut self, seq: u16, item: T, now: u64, out: &mut Vec<Ordered<T>>) {
        if self.buf.is_empty() && !self.started && self.next.is_none() {
            // Start well above zero so that unwrapping never goes negative.
            let ext = (1u64 << 32) + u64::from(seq);
            self.highest = ext;
            self.buf.insert(ext, (item, now));
            self.release(now, out);
            return;
        }
        let ext = self.extend(seq);
        if self.started
            && let Some(next) = self.next
            && (ext + RESYNC < next || ext > self.highest + RESYNC)
        {
            // The sender restarted its numbering (or a huge hole): drain and start over.
            self.flush(out);
            self.next = Some(ext);
            self.highest = ext;
            self.buf.insert(ext, (item, now));
            self.release(now, out);
            return;
        }
        if self.started && self.next.is_some_and(|next| ext < next) || self.buf.contains_key(&ext) {
            self.discarded += 1;
            return;
        }
        self.highest = self.highest.max(ext);
        self.buf.insert(ext, (item, now));
        self.release(now, out);
    }

    /// Releases what waited long enough (call periodically).
    pub fn poll(&mut self, now: u64, out: &mut Vec<Ordered<T>>) {
        self.release(now, out);
    }

    /// Releases everything, declaring holes lost.
    pub fn flush(&mut self, out: &mut Vec<Ordered<T>>) {
        if !self.started {
            self.next = self.buf.first_key_value().map(|(&k, _)| k);
            self.started = self.next.is_some();
        }
        while let Some((&first, _)) = self.buf.first_key_value() {
            self.skip_to(first, out);
            self.pop_ready(out);
        }
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn pop_ready(&mut self, out: &mut Vec<Ordered<T>>) {
        while let Some(next) = self.next {
            let Some((item, _)) = self.buf.remove(&next) else {
                break;
            };
            out.push(Ordered::Packet(next, item));
            self.next = Some(next + 1);
        }
    }

    fn skip_to(&mut self, first: u64, out: &mut Vec<Ordered<T>>) {
        self.started = true;
        if let Some(next) = self.next
            && first > next
        {
            out.push(Ordered::Lost { first: next, count: first - next });
        }
        self.next = Some(first);
    }

    fn release(&mut self, now: u64, out: &mut Vec<Ordered<T>>) {
        if !self.started {
            let oldest = self.buf.values().map(|(_, t)| *t).min().unwrap_or(now);
            let Some((&first, _)) = self.buf.first_key_value() else { return };
            if self.buf.len() < START_PACKETS && now.saturating_sub(oldest) < self.cfg.max_wait_ms {
                return;
            }
            self.started = true;
            self.next = Some(first);
        }
        loop {
            self.pop_ready(out);
            let Some((&first, &(_, _))) = self.buf.first_key_value() else {
                return;
            };
            let oldest = self.buf.values().map(|(_, t)| *t).min().unwrap_or(now);
            if self.buf.len() > self.cfg.max_packets || now.saturating_sub(oldest) >= self.cfg.max_wait_ms {
                self.skip_to(first, out);
            } else {
                return;
            }
        }
    }
}

/// One RTP packet as the assembler needs it.
#[derive(Debug, Clone)]
pub struct RtpIn {
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Marker bit.
    pub marker: bool,
    /// Payload (no padding).
    pub payload: Bytes,
}

/// Most payload bytes one frame may have. Far above any keyframe a browser sends (a 1080p
/// VP8 keyframe is a few hundred KiB); past it the frame is dropped, so that a publisher that
/// never sets the marker bit cannot make the recorder hold its stream (found by
/// fuzz/depack_vp8).
pub const MAX_FRAME_BYTES: usize = 4 << 20;

/// Why a frame was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// One of its packets was lost.
    Loss,
    /// It grew past [`MAX_FRAME_BYTES`].
    TooLarge,
    /// Video after a loss (or at the start), until a keyframe.
    WaitingForKeyframe,
    /// The payload could not be depacketized.
    Depacketize(DepackError),
}

/// What the assembler reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssemblyEvent {
    /// A whole frame; `arrival` is when its last packet came.
    Frame {
        /// RTP timestamp of the frame.
        timestamp: u32,
        /// The frame.
        frame: Frame,
        /// Arrival (ms) of its last packet.
        arrival: u64,
    },
    /// Packets declared lost.
    Lost(u64),
    /// A frame was dropped.
    Dropped {
        /// RTP timestamp of the frame.
        timestamp: u32,
        /// Why.
        reason: DropReason,
    },
    /// Ask the publisher for a keyframe (video only).
    NeedKeyframe,
}

struct Pending {
    timestamp: u32,
    payloads: Vec<Bytes>,
    /// Payload bytes of the frame so far (also those let go once it was too large).
    bytes: usize,
    broken: bool,
    arrival: u64,
}

/// Per-track assembly: reorder, assemble, apply the loss policy.
pub struct Assembler {
    kind: TrackKind,
    codec: CodecKind,
    reorder: Reorder<(RtpIn, u64)>,
    depack: Box<dyn Depacketizer>,
    pending: Option<Pending>,
    waiting_keyframe: bool,
    ordered: Vec<Ordered<(RtpIn, u64)>>,
}

impl std::fmt::Debug for Assembler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assembler")
            .field("kind", &self.kind)
            .field("codec", &self.codec)
            .field("waiting_keyframe", &self.waiting_keyframe)
            .finish_non_exhaustive()
    }
}

impl Assembler {
    /// A new assembler; video starts waiting for a keyframe.
    pub fn new(codec: CodecKind, cfg: ReorderConfig) -> Assembler {
        let kind = codec.kind();
        Assembler {
            kind,
            codec,
            reorder: Reorder::new(cfg),
            depack: depack::for_codec(codec),
            pending: None,
            waiting_keyframe: kind == TrackKind::Video,
            ordered: Vec::new(),
        }
    }

    /// Codec of this assembler.
    pub fn codec(&self) -> CodecKind {
        self.codec
    }

    /// Packets discarded as duplicates or too late.
    pub fn discarded(&self) -> u64 {
        self.reorder.discarded
    }

    /// Adds a packet received at `now` (ms).
    pub fn push(&mut self, packet: RtpIn, now: u64, out: &mut Vec<AssemblyEvent>) {
        let mut ordered = std::mem::take(&mut self.ordered);
        self.reorder.push(packet.seq, (packet, now), now, &mut ordered);
        self.consume(&mut ordered, out);
        self.ordered = ordered;
    }

    /// Lets packets that waited too long for a hole go (call periodically).
    pub fn poll(&mut self, now: u64, out: &mut Vec<AssemblyEvent>) {
        let mut ordered = std::mem::take(&mut self.ordered);
        self.reorder.poll(now, &mut ordered);
        self.consume(&mut ordered, out);
        self.ordered = ordered;
    }

    /// End of the stream: releases everything and completes the last frame.
    pub fn flush(&mut self, out: &mut Vec<AssemblyEvent>) {
        let mut ordered = std::mem::take(&mut self.ordered);
        self.reorder.flush(&mut ordered);
        self.consume(&mut ordered, out);
        self.ordered = ordered;
        self.complete(out);
    }

    fn consume(&mut self, ordered: &mut Vec<Ordered<(RtpIn, u64)>>, out: &mut Vec<AssemblyEvent>) {
        for o in ordered.drain(..) {
            match o {
                Ordered::Packet(_, (p, at)) => self.packet(p, at, out),
                Ordered::Lost { count, .. } => {
                    out.push(AssemblyEvent::Lost(count));
                    if self.kind == TrackKind::Video {
                        // The lost packets belong to the frame being built or to frames between:
                        // either way what follows cannot be trusted until a keyframe.
                        if let Some(p) = self.pending.as_mut() {
                            p.broken = true;
                        }
                        if !self.waiting_keyframe {
                            self.waiting_keyframe = true;
                            out.push(AssemblyEvent::NeedKeyframe);
                        }
                    } else if let Some(p) = self.pending.as_mut() {
                        p.broken = true;
                    }
                }
            }
        }
    }

    fn packet(&mut self, p: RtpIn, now: u64, out: &mut Vec<AssemblyEvent>) {
        if self.pending.as_ref().is_some_and(|f| f.timestamp != p.timestamp) {
            self.complete(out);
        }
        let frame = self.pending.get_or_insert_with(|| Pending {
            timestamp: p.timestamp,
            payloads: Vec::new(),
            bytes: 0,
            broken: false,
            arrival: now,
        });
        frame.bytes = frame.bytes.saturating_add(p.payload.len());
        if frame.bytes > MAX_FRAME_BYTES {
            // Too large: its packets are let go; it is dropped when it ends.
            frame.payloads = Vec::new();
        } else {
            frame.payloads.push(p.payload);
        }
        frame.arrival = frame.arrival.max(now);
        // Audio: one packet is one frame. Video: the marker bit ends the frame.
        if p.marker || self.kind == TrackKind::Audio {
            self.complete(out);
        }
    }

    fn complete(&mut self, out: &mut Vec<AssemblyEvent>) {
        let Some(p) = self.pending.take() else {
            return;
        };
        if p.bytes > MAX_FRAME_BYTES {
            out.push(AssemblyEvent::Dropped { timestamp: p.timestamp, reason: DropReason::TooLarge });
            // Later video frames may refer to it.
            if self.kind == TrackKind::Video && !self.waiting_keyframe {
                self.waiting_keyframe = true;
                out.push(AssemblyEvent::NeedKeyframe);
            }
            return;
        }
        if p.broken {
            out.push(AssemblyEvent::Dropped { timestamp: p.timestamp, reason: DropReason::Loss });
            return;
        }
        let payloads: Vec<&[u8]> = p.payloads.iter().map(|b| b.as_ref()).collect();
        match self.depack.assemble(&payloads) {
            Ok(frame) => {
                if self.waiting_keyframe && !frame.keyframe {
                    out.push(AssemblyEvent::Dropped { timestamp: p.timestamp, reason: DropReason::WaitingForKeyframe });
                    return;
                }
                if frame.keyframe {
                    self.waiting_keyframe = false;
                }
                out.push(AssemblyEvent::Frame { timestamp: p.timestamp, frame, arrival: p.arrival });
            }
            Err(e) => {
                out.push(AssemblyEvent::Dropped { timestamp: p.timestamp, reason: DropReason::Depacketize(e) });
                if self.kind == TrackKind::Video && !self.waiting_keyframe {
                    self.waiting_keyframe = true;
                    out.push(AssemblyEvent::NeedKeyframe);
                }
            }
        }
    }

    /// Whether video frames are being dropped until a keyframe.
    pub fn waiting_for_keyframe(&self) -> bool {
        self.waiting_keyframe
    }

    /// Payload bytes held: the packets waiting in the reordering buffer and the frame being
    /// assembled.
    pub fn buffered_bytes(&self) -> usize {
        let waiting: usize = self.reorder.buf.values().map(|((p, _), _)| p.payload.len()).sum();
        waiting + self.pending.as_ref().map_or(0, |f| f.payloads.iter().map(Bytes::len).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc() -> ReorderConfig {
        ReorderConfig { max_packets: 4, max_wait_ms: 100 }
    }

    fn seqs(out: &[Ordered<u16>]) -> Vec<String> {
        out.iter()
            .map(|o| match o {
                Ordered::Packet(_, s) => s.to_string(),
                Ordered::Lost { count, .. } => format!("lost{count}"),
            })
            .collect()
    }

    #[test]
    fn reorders_within_bounds() {
        let mut r = Reorder::new(rc());
        let mut out = Vec::new();
        for (s, t) in [(10u16, 0), (12, 1), (11, 2), (13, 3)] {
            r.push(s, s, t, &mut out);
        }
        assert_eq!(seqs(&out), ["10", "11", "12", "13"]);
        // Duplicate and too-late packets are discarded.
        r.push(12, 12, 4, &mut out);
        r.push(13, 13, 4, &mut out);
        assert_eq!(r.discarded, 2);
    }

    #[test]
    fn declares_loss_after_wait_or_when_full() {
        let mut r = Reorder::new(rc());
        let mut out = Vec::new();
        r.push(1u16, 1u16, 0, &mut out);
        r.push(3, 3, 10, &mut out);
        // The start is held a little, for packets reordered ahead of the first.
        r.poll(50, &mut out);
        assert!(out.is_empty());
        r.poll(110, &mut out);
        assert_eq!(seqs(&out), ["1", "lost1", "3"]);
        out.clear();
        // Full: 5 packets waiting behind a hole.
        for s in 5..10u16 {
            r.push(s, s, 120, &mut out);
        }
        assert_eq!(seqs(&out), ["lost1", "5", "6", "7", "8", "9"]);
        assert!(r.is_empty());
    }

    #[test]
    fn unwraps_sequence_numbers() {
        let mut r = Reorder::new(rc());
        let mut out = Vec::new();
        for s in [65534u16, 65535, 1, 0, 2] {
            r.push(s, s, 0, &mut out);
        }
        assert_eq!(seqs(&out), ["65534", "65535", "0", "1", "2"]);
        let exts: Vec<u64> =
            out.iter().filter_map(|o| if let Ordered::Packet(e, _) = o { Some(*e) } else { None }).collect();
        assert!(exts.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn restarts_on_a_sequence_reset() {
        let mut r = Reorder::new(rc());
        let mut out = Vec::new();
        for s in [40000u16, 40001, 40002, 100, 101] {
            r.push(s, s, 0, &mut out);
        }
        assert_eq!(seqs(&out), ["40000", "40001", "40002", "100", "101"]);
    }

    #[test]
    fn flush_releases_everything() {
        let mut r = Reorder::new(rc());
        let mut out = Vec::new();
        r.push(1u16, 1u16, 0, &mut out);
        r.push(4, 4, 0, &mut out);
        r.flush(&mut out);
        assert_eq!(seqs(&out), ["1", "lost2", "4"]);
    }

    fn vp8(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> RtpIn {
        RtpIn { seq, timestamp: ts, marker, payload: Bytes::copy_from_slice(payload) }
    }

    fn key_payload() -> Vec<u8> {
        vec![0x10, 0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00, 0xaa]
    }

    fn kinds(ev: &[AssemblyEvent]) -> Vec<&'static str> {
        ev.iter()
            .map(|e| match e {
                AssemblyEvent::Frame { frame, .. } if frame.keyframe => "key",
                AssemblyEvent::Frame { .. } => "delta",
                AssemblyEvent::Lost(_) => "lost",
                AssemblyEvent::Dropped { reason: DropReason::Loss, .. } => "drop-loss",
                AssemblyEvent::Dropped { reason: DropReason::WaitingForKeyframe, .. } => "drop-wait",
                AssemblyEvent::Dropped { reason: DropReason::TooLarge, .. } => "drop-big",
                AssemblyEvent::Dropped { .. } => "drop-bad",
                AssemblyEvent::NeedKeyframe => "pli",
            })
            .collect()
    }

    #[test]
    fn video_waits_for_a_keyframe_and_drops_after_loss_until_the_next() {
        let mut a = Assembler::new(CodecKind::Vp8, ReorderConfig { max_packets: 2, max_wait_ms: 100 });
        let mut ev = Vec::new();
        // A delta frame before any keyframe is dropped.
        a.push(vp8(1, 0, true, &[0x10, 0x31, 0x02, 0x00]), 0, &mut ev);
        // Keyframe in two packets, then a delta frame.
        let key = key_payload();
        a.push(vp8(2, 3000, false, &key[..8]), 10, &mut ev);
        a.push(vp8(3, 3000, true, &[&[0x00][..], &key[8..]].concat()), 11, &mut ev);
        a.push(vp8(4, 6000, true, &[0x10, 0x31, 0x02, 0x00]), 40, &mut ev);
        assert_eq!(kinds(&ev), ["drop-wait", "key", "delta"]);
        ev.clear();
        // Packet 6 (the end of frame 9000) is lost: frame 9000 and the following delta frames are
        // dropped, a keyframe is asked for once.
        a.push(vp8(5, 9000, false, &[0x10, 0x31, 0x02, 0x00]), 70, &mut ev);
        a.push(vp8(7, 12000, true, &[0x10, 0x31, 0x02, 0x00]), 100, &mut ev);
        a.push(vp8(8, 15000, true, &[0x10, 0x31, 0x02, 0x00]), 130, &mut ev);
        a.push(vp8(9, 18000, true, &[0x10, 0x31, 0x02, 0x00]), 160, &mut ev);
        a.push(vp8(10, 21000, true, &key), 190, &mut ev);
        assert_eq!(kinds(&ev), ["lost", "pli", "drop-loss", "drop-wait", "drop-wait", "drop-wait", "key"]);
        assert!(!a.waiting_for_keyframe());
    }

    #[test]
    fn a_frame_that_never_ends_is_held_only_up_to_the_bound() {
        // Found by fuzz/depack_vp8: packets of one timestamp without the marker bit were all
        // kept, without end.
        let mut a = Assembler::new(CodecKind::Vp8, ReorderConfig { max_packets: 2, max_wait_ms: 100 });
        let mut ev = Vec::new();
        a.push(vp8(1, 0, true, &key_payload()), 0, &mut ev);
        let chunk = [&[0x00][..], &[0xaa; 1199][..]].concat();
        let packets = MAX_FRAME_BYTES / chunk.len() * 2;
        for n in 0..packets {
            a.push(vp8(2 + n as u16, 3000, false, &chunk), 10, &mut ev);
            assert!(a.buffered_bytes() <= MAX_FRAME_BYTES + 3 * chunk.len(), "{} bytes held", a.buffered_bytes());
        }
        a.push(vp8(2 + packets as u16, 3000, true, &chunk), 10, &mut ev);
        a.push(vp8(3 + packets as u16, 6000, true, &[0x10, 0x31, 0x02, 0x00]), 20, &mut ev);
        a.flush(&mut ev);
        assert_eq!(kinds(&ev), ["key", "drop-big", "pli", "drop-wait"]);
        assert_eq!(a.buffered_bytes(), 0);
    }

    #[test]
    fn a_late_packet_is_reordered_into_its_frame() {
        let mut a = Assembler::new(CodecKind::Vp8, ReorderConfig::for_kind(TrackKind::Video));
        let mut ev = Vec::new();
        let key = key_payload();
        a.push(vp8(101, 3000, true, &[&[0x00][..], &key[8..]].concat()), 0, &mut ev);
        assert!(ev.is_empty());
        a.push(vp8(100, 3000, false, &key[..8]), 5, &mut ev);
        assert!(ev.is_empty());
        a.poll(300, &mut ev);
        assert_eq!(kinds(&ev), ["key"]);
        if let AssemblyEvent::Frame { frame, arrival, .. } = &ev[0] {
            assert_eq!(frame.data, key[1..].to_vec());
            assert_eq!(*arrival, 5);
        }
    }

    #[test]
    fn audio_loss_only_costs_the_lost_frames() {
        let mut a = Assembler::new(CodecKind::Opus, ReorderConfig { max_packets: 2, max_wait_ms: 50 });
        let mut ev = Vec::new();
        for (seq, t) in [(1u16, 0u64), (2, 20), (5, 80), (6, 100), (7, 120)] {
            a.push(vp8(seq, u32::from(seq) * 960, false, &[0xfc, seq as u8]), t, &mut ev);
        }
        a.poll(200, &mut ev);
        assert_eq!(kinds(&ev), ["key", "key", "lost", "key", "key", "key"]);
        assert_eq!(ev[2], AssemblyEvent::Lost(2));
    }

    #[test]
    fn undecodable_video_asks_for_a_keyframe() {
        let mut a = Assembler::new(CodecKind::Vp8, ReorderConfig::for_kind(TrackKind::Video));
        let mut ev = Vec::new();
        a.push(vp8(1, 0, true, &key_payload()), 0, &mut ev);
        // Does not start a partition.
        a.push(vp8(2, 3000, true, &[0x00, 0x31]), 33, &mut ev);
        a.push(vp8(3, 6000, true, &[0x10, 0x31, 0x02, 0x00]), 66, &mut ev);
        assert_eq!(kinds(&ev), ["key", "drop-bad", "pli", "drop-wait"]);
    }
}
