//! The archive copy: a participant's segments joined (remuxed, no re-encoding) into one
//! seekable file with a duration and cues, in memory.

use std::fs::File;

use bytes::Bytes;
use ffmpeg::{Rational, format, media};
use ffmpeg_next as ffmpeg;

use super::format::{CodecKind, Container, TrackKind};
use super::manifest::sha256_hex;
use super::mux::{MemFile, MuxError, TrackParams, init};

/// A finished archive file: an in-memory file (never on disk) and what is known about it.
#[derive(Debug)]
pub struct ArchiveFile {
    file: MemFile,
    /// Container.
    pub container: Container,
    /// Size in bytes.
    pub len: u64,
    /// SHA-256 of the bytes, lower-case hex.
    pub sha256: String,
    /// Duration (ms).
    pub duration_ms: i64,
}

impl ArchiveFile {
    /// All bytes (a copy).
    pub fn to_vec(&self) -> Result<Vec<u8>, MuxError> {
        self.file.read_all()
    }

    /// The in-memory file, to stream from without a copy (seek to 0 first).
    pub fn file(&self) -> &File {
        self.file.file()
    }
}

fn kind_of(t: media::Type) -> Option<TrackKind> {
    match t {
        media::Type::Audio => Some(TrackKind::Audio),
        media::Type::Video => Some(TrackKind::Video),
        _ => None,
    }
}

fn codec_of(id: ffmpeg::codec::Id) -> Option<CodecKind> {
    match id {
        ffmpeg::codec::Id::OPUS => Some(CodecKind::Opus),
        ffmpeg::codec::Id::VP8 => Some(CodecKind::Vp8),
        ffmpeg::codec::Id::VP9 => Some(CodecKind::Vp9),
        ffmpeg::codec::Id::H264 => Some(CodecKind::H264),
        _ => None,
    }
}

/// Joins segments into one file. `segments`: (start on the participant timeline in ms, bytes
/// of a segment written by this recorder), in order; iterated twice (first for the codec
/// parameters, then for the packets), one segment in memory at a time besides the output.
pub fn build_archive<I>(container: Container, segments: I) -> Result<ArchiveFile, MuxError>
where
    I: IntoIterator<Item = (i64, Bytes)>,
    I::IntoIter: Clone,
{
    init();
    let segments = segments.into_iter();
    // Pass 1: the tracks of the archive (the first segment that has each).
    let mut tracks: [Option<TrackParams>; 2] = [None, None];
    for (_, data) in segments.clone() {
        let file = MemFile::with_data("cunneng-archive-in", &data)?;
        let input = format::input(&file.path())?;
        for st in input.streams() {
            let params = st.parameters();
            if let (Some(kind), Some(codec)) = (kind_of(params.medium()), codec_of(params.id())) {
                let i = kind as usize;
                if tracks[i].is_none() {
                    tracks[i] = Some(TrackParams { codec, params: params.clone() });
                }
            }
        }
        if tracks.iter().all(Option::is_some) {
            break;
        }
    }
    if tracks.iter().all(Option::is_none) {
        return Err(MuxError::Invalid("no segment with a track"));
    }

    // Pass 2: copy every packet, shifted to its segment's place on the timeline.
    let out = MemFile::new("cunneng-archive")?;
    let mut octx = format::output_as(&out.path(), container.muxer())?;
    let mut out_index = [None, None];
    for (i, t) in tracks.iter().enumerate() {
        let Some(t) = t else { continue };
        let mut st = octx.add_stream(ffmpeg::codec::Id::None)?;
        st.set_parameters(t.params.clone());
        st.set_time_base(Rational(1, 1000));
        out_index[i] = Some(st.index());
    }
    octx.write_header()?;
    let out_tb: Vec<Rational> = octx.streams().map(|s| s.time_base()).collect();
    let mut last_dts = [i64::MIN; 2];
    let mut end_ms = 0i64;
    for (start_ms, data) in segments {
        let file = MemFile::with_data("cunneng-archive-in", &data)?;
        let mut input = format::input(&file.path())?;
        let map: Vec<(Option<usize>, Rational)> =
            input.streams().map(|st| (kind_of(st.parameters().medium()).map(|k| k as usize), st.time_base())).collect();
        for (st, mut packet) in input.packets() {
            let (Some(k), tb) = map[st.index()] else { continue };
            let Some(oi) = out_index[k] else { continue };
            let ms = Rational(1, 1000);
            packet.rescale_ts(tb, ms);
            let pts = packet.pts().or(packet.dts()).unwrap_or(0) + start_ms;
            let mut dts = packet.dts().or(packet.pts()).unwrap_or(0) + start_ms;
            if dts <= last_dts[k] {
                dts = last_dts[k] + 1;
            }
            last_dts[k] = dts;
            let dur = packet.duration().max(0);
            end_ms = end_ms.max(pts.max(dts) + dur);
            packet.set_pts(Some(pts.max(dts)));
            packet.set_dts(Some(dts));
            packet.set_position(-1);
            packet.set_stream(oi);
            packet.rescale_ts(ms, out_tb[oi]);
            packet.write_interleaved(&mut octx)?;
        }
    }
    octx.write_trailer()?;
    drop(octx);
    let bytes = out.read_all()?;
    let sha256 = sha256_hex(&bytes);
    let len = bytes.len() as u64;
    drop(bytes);
    Ok(ArchiveFile { file: out, container, len, sha256, duration_ms: end_ms })
}
