//! What is recorded and how it is stored: track kinds, codecs, containers.

use serde::{Deserialize, Serialize};

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    /// Audio track.
    Audio,
    /// Video track.
    Video,
}

/// Codecs the recorder can store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodecKind {
    /// Opus audio.
    Opus,
    /// VP8 video.
    Vp8,
    /// VP9 video.
    Vp9,
    /// H.264 video.
    H264,
}

impl CodecKind {
    /// From a lower- or upper-case MIME type such as `video/VP8`.
    pub fn from_mime(mime: &str) -> Option<CodecKind> {
        match mime.to_ascii_lowercase().as_str() {
            "audio/opus" => Some(CodecKind::Opus),
            "video/vp8" => Some(CodecKind::Vp8),
            "video/vp9" => Some(CodecKind::Vp9),
            "video/h264" => Some(CodecKind::H264),
            _ => None,
        }
    }

    /// Audio or video.
    pub fn kind(self) -> TrackKind {
        match self {
            CodecKind::Opus => TrackKind::Audio,
            _ => TrackKind::Video,
        }
    }

    /// Short name (`opus`, `vp8`, `vp9`, `h264`).
    pub fn name(self) -> &'static str {
        match self {
            CodecKind::Opus => "opus",
            CodecKind::Vp8 => "vp8",
            CodecKind::Vp9 => "vp9",
            CodecKind::H264 => "h264",
        }
    }
}

/// Container of segments and archive: WebM when every codec allows it, else Matroska.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Container {
    /// WebM (VP8/VP9 + Opus): plays in browsers.
    Webm,
    /// Matroska (H.264 + Opus).
    Matroska,
}

impl Container {
    /// The container for a video codec (or none).
    pub fn for_video(video: Option<CodecKind>) -> Container {
        if video == Some(CodecKind::H264) { Container::Matroska } else { Container::Webm }
    }

    /// ffmpeg muxer name.
    pub fn muxer(self) -> &'static str {
        match self {
            Container::Webm => "webm",
            Container::Matroska => "matroska",
        }
    }

    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            Container::Webm => "webm",
            Container::Matroska => "mkv",
        }
    }
}
