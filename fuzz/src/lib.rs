//! What the fuzz targets share: a reader for structured inputs, the packet framing of the
//! depacketizer targets with the frame invariants they check, and the key ring of the
//! sealed-object target. The input formats are in fuzz/README.md.

use bytes::Bytes;
use cunneng_media_recorder::record::CodecKind;
use cunneng_media_recorder::record::assemble::{Assembler, AssemblyEvent, ReorderConfig, RtpIn};
use cunneng_media_recorder::record::depack::{self, CodecConfig, Frame};

/// Reads a fuzz input from the front; every read past the end gives `None`.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.byte()?, self.byte()?]))
    }

    /// `n` bytes, or what is left if fewer.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// One packet of a depacketizer input: `flags u8 ‖ len u8 ‖ payload[len]`, then, if
/// `flags & REPEAT`, a byte `r`: the packet is sent `(r + 1) * 64` times.
pub struct Packet<'a> {
    pub flags: u8,
    pub payload: &'a [u8],
    pub repeat: usize,
}

/// The RTP marker bit.
pub const MARKER: u8 = 0x01;
/// The packet starts a new frame: its timestamp is 3000 after the one before.
pub const NEW_TIMESTAMP: u8 = 0x02;
/// Bits 2..=4: the sequence number step (see [`seq_step`]).
pub const SEQ_SHIFT: u8 = 2;
/// Bits 5..=6: how much time passes before the packet arrives (0, 20, 200, 1000 ms).
pub const TIME_SHIFT: u8 = 5;
/// The packet is repeated (a byte follows the payload).
pub const REPEAT: u8 = 0x80;

pub fn packets(data: &[u8]) -> Vec<Packet<'_>> {
    let mut input = Input::new(data);
    let mut out = Vec::new();
    while let (Some(flags), Some(len)) = (input.byte(), input.byte()) {
        let payload = input.take(usize::from(len));
        let repeat = if flags & REPEAT != 0 { (usize::from(input.byte().unwrap_or(0)) + 1) * 64 } else { 1 };
        out.push(Packet { flags, payload, repeat });
    }
    out
}

/// Sequence number step of a packet: in order, a duplicate, one back (reordered), one lost,
/// a jump (a restart of the numbering), in order.
fn seq_step(flags: u8) -> u16 {
    match (flags >> SEQ_SHIFT) & 0x07 {
        1 => 0,
        2 => u16::MAX,
        3 => 2,
        4 => 20_000,
        _ => 1,
    }
}

fn time_step(flags: u8) -> u64 {
    [0, 20, 200, 1000][usize::from((flags >> TIME_SHIFT) & 0x03)]
}

/// What every depacketized frame must be, whatever the input.
pub fn check_frame(codec: CodecKind, f: &Frame) {
    assert!(!f.data.is_empty(), "{codec:?}: an empty frame");
    match codec {
        CodecKind::Opus => {
            assert!(f.keyframe && f.config.is_none(), "an Opus packet stands alone and has no codec config");
        }
        CodecKind::Vp8 | CodecKind::Vp9 => {
            assert_eq!(f.keyframe, f.config.is_some(), "{codec:?}: a keyframe, and only a keyframe, has its size");
            if let Some(c) = &f.config {
                let CodecConfig::Dimensions { width, height } = c else { panic!("{codec:?}: {c:?}") };
                assert!(*width > 0 && *height > 0, "{codec:?}: a keyframe of size {width}x{height}");
            }
        }
        CodecKind::H264 => {
            assert!(f.data.starts_with(&[0, 0, 0, 1]), "H.264: Annex-B starts with a start code");
            assert_eq!(f.keyframe, f.config.is_some(), "H.264: a keyframe, and only a keyframe, has parameter sets");
            if let Some(c) = &f.config {
                let CodecConfig::H264 { sps, pps } = c else { panic!("H.264: {c:?}") };
                assert!(sps.first().is_some_and(|b| b & 0x1f == 7), "H.264: the SPS is an SPS");
                assert!(pps.first().is_some_and(|b| b & 0x1f == 8), "H.264: the PPS is a PPS");
            }
        }
    }
}

/// Payload bytes an assembler may hold at most: a full reordering buffer of the largest
/// packets this framing makes, and one frame being assembled.
pub fn buffered_bound() -> usize {
    ReorderConfig::for_kind(cunneng_media_recorder::record::TrackKind::Video).max_packets * 256
        + cunneng_media_recorder::record::assemble::MAX_FRAME_BYTES
        + 256
}

/// Runs a depacketizer input: the depacketizer alone (all payloads as one frame, then each
/// payload as a frame), then the packets through the assembler (reordering, loss, frames),
/// checking every frame and the memory the assembler holds.
pub fn run_depacketizer(codec: CodecKind, data: &[u8]) {
    let packets = packets(data);
    let payloads: Vec<&[u8]> = packets.iter().map(|p| p.payload).collect();
    let mut d = depack::for_codec(codec);
    if let Ok(f) = d.assemble(&payloads) {
        check_frame(codec, &f);
    }
    for p in &payloads {
        if let Ok(f) = d.assemble(&[p]) {
            check_frame(codec, &f);
        }
    }

    let mut a = Assembler::new(codec, ReorderConfig::for_kind(codec.kind()));
    let (mut seq, mut ts, mut now) = (65_530u16, 90_000u32, 0u64);
    let mut events = Vec::new();
    let bound = buffered_bound();
    let check = |events: &mut Vec<AssemblyEvent>| {
        for e in events.drain(..) {
            if let AssemblyEvent::Frame { frame, .. } = e {
                check_frame(codec, &frame);
            }
        }
    };
    for p in &packets {
        if p.flags & NEW_TIMESTAMP != 0 {
            ts = ts.wrapping_add(3000);
        }
        let payload = Bytes::copy_from_slice(p.payload);
        for n in 0..p.repeat {
            seq = seq.wrapping_add(seq_step(p.flags));
            now += time_step(p.flags);
            let packet = RtpIn { seq, timestamp: ts, marker: p.flags & MARKER != 0, payload: payload.clone() };
            a.push(packet, now, &mut events);
            check(&mut events);
            if n % 64 == 63 || n + 1 == p.repeat {
                assert!(a.buffered_bytes() <= bound, "the assembler holds {} bytes", a.buffered_bytes());
            }
        }
        a.poll(now, &mut events);
        check(&mut events);
    }
    a.flush(&mut events);
    check(&mut events);
    assert_eq!(a.buffered_bytes(), 0, "a flush leaves nothing behind");
}
