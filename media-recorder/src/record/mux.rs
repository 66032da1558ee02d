//! Muxing depacketized frames into WebM/Matroska with ffmpeg, stream copy only.
//!
//! ffmpeg wants a file path; to keep plaintext off the disk every file here is an anonymous
//! in-memory file (memfd, RAM only) that ffmpeg opens as `/proc/self/fd/N`.
//!
//! Codec parameters (picture size, Opus `OpusHead`, H.264 `avcC`) are obtained without any
//! unsafe code by letting ffmpeg probe a tiny in-memory file holding the track's first
//! keyframe (IVF for VP8/VP9, Annex-B for H.264, Ogg for Opus) and copying the stream
//! parameters it finds.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Once;

use ffmpeg::{Rational, codec, format, media};
use ffmpeg_next as ffmpeg;

use super::depack::Frame;
use super::format::{CodecKind, Container, TrackKind};

/// Errors of muxing and remuxing.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    /// ffmpeg refused.
    #[error("ffmpeg: {0}")]
    Ffmpeg(#[from] ffmpeg::Error),
    /// The in-memory file failed.
    #[error("in-memory file: {0}")]
    Io(#[from] std::io::Error),
    /// memfd could not be created.
    #[error("memfd: {0}")]
    Memfd(String),
    /// Nothing usable in the input.
    #[error("{0}")]
    Invalid(&'static str),
}

/// Initializes ffmpeg once (quiet logging).
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ffmpeg::init();
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Error);
    });
}

/// An anonymous in-memory file (memfd): lives in RAM, never on disk, gone when dropped.
#[derive(Debug)]
pub struct MemFile {
    fd: memfd::Memfd,
}

impl MemFile {
    /// A new empty file; `name` only shows in /proc.
    pub fn new(name: &str) -> Result<MemFile, MuxError> {
        let fd = memfd::MemfdOptions::default()
            .close_on_exec(true)
            .create(name)
            .map_err(|e| MuxError::Memfd(e.to_string()))?;
        Ok(MemFile { fd })
    }

    /// A file holding `data`.
    pub fn with_data(name: &str, data: &[u8]) -> Result<MemFile, MuxError> {
        let f = MemFile::new(name)?;
        f.file().write_all(data)?;
        Ok(f)
    }

    /// The path under which ffmpeg (this process) can open it.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// The file (its own offset, independent of ffmpeg's).
    pub fn file(&self) -> &File {
        self.fd.as_file()
    }

    /// Current size.
    pub fn len(&self) -> Result<u64, MuxError> {
        Ok(self.file().metadata()?.len())
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> Result<bool, MuxError> {
        Ok(self.len()? == 0)
    }

    /// All its bytes.
    pub fn read_all(&self) -> Result<Vec<u8>, MuxError> {
        let mut f = self.file();
        f.seek(SeekFrom::Start(0))?;
        let mut v = Vec::with_capacity(self.len()? as usize);
        f.read_to_end(&mut v)?;
        Ok(v)
    }
}

/// Codec parameters of one track, as ffmpeg needs them to mux it.
pub struct TrackParams {
    /// Codec.
    pub codec: CodecKind,
    pub(crate) params: codec::Parameters,
}

impl std::fmt::Debug for TrackParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackParams").field("codec", &self.codec).finish_non_exhaustive()
    }
}

impl Clone for TrackParams {
    fn clone(&self) -> Self {
        TrackParams { codec: self.codec, params: self.params.clone() }
    }
}

fn ivf(fourcc: &[u8; 4], width: u16, height: u16, frame: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(44 + frame.len());
    v.extend_from_slice(b"DKIF");
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&32u16.to_le_bytes());
    v.extend_from_slice(fourcc);
    v.extend_from_slice(&width.to_le_bytes());
    v.extend_from_slice(&height.to_le_bytes());
    v.extend_from_slice(&1000u32.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v.extend_from_slice(frame);
    v
}

/// CRC-32 of Ogg pages (polynomial 0x04c11db7, no reflection).
fn ogg_crc(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04c1_1db7 } else { crc << 1 };
        }
    }
    crc
}

fn ogg_page(out: &mut Vec<u8>, header_type: u8, granule: u64, seq: u32, packet: &[u8]) {
    let start = out.len();
    out.extend_from_slice(b"OggS");
    out.push(0);
    out.push(header_type);
    out.extend_from_slice(&granule.to_le_bytes());
    out.extend_from_slice(&0x636e_7263u32.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut lacing = vec![255u8; packet.len() / 255];
    lacing.push((packet.len() % 255) as u8);
    out.push(lacing.len() as u8);
    out.extend_from_slice(&lacing);
    out.extend_from_slice(packet);
    let crc = ogg_crc(&out[start..]);
    out[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
}

/// `OpusHead` for WebRTC Opus: 48 kHz, 2 channels (RFC 7587), no pre-skip (the timeline
/// already places every packet where it belongs).
pub fn opus_head() -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(2);
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

fn ogg_opus(first_packet: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    ogg_page(&mut v, 0x02, 0, 0, &opus_head());
    let mut tags = b"OpusTags".to_vec();
    let vendor = b"cunneng";
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor);
    tags.extend_from_slice(&0u32.to_le_bytes());
    ogg_page(&mut v, 0, 0, 1, &tags);
    ogg_page(&mut v, 0x04, 960, 2, first_packet);
    v
}

/// Codec parameters for a track whose first frame (a keyframe for video) is `frame`.
pub fn probe(codec: CodecKind, frame: &Frame) -> Result<TrackParams, MuxError> {
    init();
    let dims = match &frame.config {
        Some(super::depack::CodecConfig::Dimensions { width, height }) => (*width, *height),
        _ => (0, 0),
    };
    let bytes = match codec {
        CodecKind::Vp8 => ivf(b"VP80", dims.0, dims.1, &frame.data),
        CodecKind::Vp9 => ivf(b"VP90", dims.0, dims.1, &frame.data),
        CodecKind::H264 => frame.data.clone(),
        CodecKind::Opus => ogg_opus(&frame.data),
    };
    let file = MemFile::with_data("cunneng-probe", &bytes)?;
    let input = format::input(&file.path())?;
    let want = match codec.kind() {
        TrackKind::Audio => media::Type::Audio,
        TrackKind::Video => media::Type::Video,
    };
    let stream = input.streams().best(want).ok_or(MuxError::Invalid("probe found no stream"))?;
    let params = stream.parameters().clone();
    let expected = match codec {
        CodecKind::Opus => codec::Id::OPUS,
        CodecKind::Vp8 => codec::Id::VP8,
        CodecKind::Vp9 => codec::Id::VP9,
        CodecKind::H264 => codec::Id::H264,
    };
    if params.id() != expected {
        return Err(MuxError::Invalid("probe found another codec"));
    }
    Ok(TrackParams { codec, params })
}

/// One segment being written into an in-memory file.
pub struct SegmentWriter {
    file: MemFile,
    octx: format::context::Output,
    streams: [Option<usize>; 2],
    last_dts: [i64; 2],
    /// Frames written.
    pub frames: u64,
}

impl std::fmt::Debug for SegmentWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentWriter").field("streams", &self.streams).field("frames", &self.frames).finish()
    }
}

fn slot(kind: TrackKind) -> usize {
    match kind {
        TrackKind::Audio => 0,
        TrackKind::Video => 1,
    }
}

/// Adds streams for `tracks` (audio first) to `octx`; returns their indices.
fn add_streams(
    octx: &mut format::context::Output,
    tracks: [Option<&TrackParams>; 2],
) -> Result<[Option<usize>; 2], MuxError> {
    let mut streams = [None, None];
    for (i, t) in tracks.iter().enumerate() {
        let Some(t) = t else { continue };
        let mut st = octx.add_stream(codec::Id::None)?;
        st.set_parameters(t.params.clone());
        st.set_time_base(Rational(1, 1000));
        streams[i] = Some(st.index());
    }
    if streams.iter().all(Option::is_none) {
        return Err(MuxError::Invalid("a segment needs at least one track"));
    }
    Ok(streams)
}

impl SegmentWriter {
    /// Opens a segment with the given tracks.
    pub fn open(
        container: Container,
        audio: Option<&TrackParams>,
        video: Option<&TrackParams>,
    ) -> Result<SegmentWriter, MuxError> {
        init();
        let file = MemFile::new("cunneng-segment")?;
        let mut octx = format::output_as(&file.path(), container.muxer())?;
        let streams = add_streams(&mut octx, [audio, video])?;
        octx.write_header()?;
        Ok(SegmentWriter { file, octx, streams, last_dts: [i64::MIN; 2], frames: 0 })
    }

    /// Whether the segment has a track of `kind`.
    pub fn has(&self, kind: TrackKind) -> bool {
        self.streams[slot(kind)].is_some()
    }

    /// Writes a frame at `pts_ms` (relative to the segment start).
    pub fn write(&mut self, kind: TrackKind, pts_ms: i64, keyframe: bool, data: &[u8]) -> Result<(), MuxError> {
        let Some(index) = self.streams[slot(kind)] else {
            return Err(MuxError::Invalid("frame for a track the segment does not have"));
        };
        let last = &mut self.last_dts[slot(kind)];
        let ts = if pts_ms <= *last { *last + 1 } else { pts_ms };
        *last = ts;
        let mut packet = codec::packet::Packet::copy(data);
        packet.set_pts(Some(ts));
        packet.set_dts(Some(ts));
        packet.set_stream(index);
        if keyframe {
            packet.set_flags(codec::packet::Flags::KEY);
        }
        let tb = self.octx.stream(index).map(|s| s.time_base()).unwrap_or(Rational(1, 1000));
        packet.rescale_ts(Rational(1, 1000), tb);
        packet.write_interleaved(&mut self.octx)?;
        self.frames += 1;
        Ok(())
    }

    /// Finishes the file (duration, cues) and returns its bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, MuxError> {
        self.octx.write_trailer()?;
        drop(self.octx);
        self.file.read_all()
    }
}
