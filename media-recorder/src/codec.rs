//! A codec as negotiated on one connection: what the forwarding path maps payload types with
//! and what the recorder is told each packet's codec by.

use rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters;

/// A codec as negotiated on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Codec {
    pub payload_type: u8,
    /// Lower-case MIME type, e.g. `video/vp8`.
    pub mime: String,
    pub fmtp: String,
    pub clock_rate: u32,
}

impl Codec {
    pub fn from_parameters(p: &RTCRtpCodecParameters) -> Codec {
        Codec {
            payload_type: p.payload_type,
            mime: p.rtp_codec.mime_type.to_ascii_lowercase(),
            fmtp: p.rtp_codec.sdp_fmtp_line.clone(),
            clock_rate: p.rtp_codec.clock_rate,
        }
    }

    /// Retransmission, FEC or redundancy rather than media.
    pub fn is_repair(&self) -> bool {
        self.mime.ends_with("/rtx") || self.mime.ends_with("fec") || self.mime.ends_with("/red")
    }
}
