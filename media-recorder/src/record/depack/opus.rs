//! Opus (RFC 7587): one RTP payload is one Opus packet.

use super::{DepackError, Depacketizer, Frame};

/// Opus depacketizer.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpusDepacketizer;

impl Depacketizer for OpusDepacketizer {
    fn assemble(&mut self, payloads: &[&[u8]]) -> Result<Frame, DepackError> {
        match payloads {
            [] => Err(DepackError::Empty),
            [[]] => Err(DepackError::Empty),
            [p] => Ok(Frame { data: p.to_vec(), keyframe: true, config: None }),
            _ => Err(DepackError::Malformed("several Opus packets with one timestamp")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_packet_is_one_frame() {
        let f = OpusDepacketizer.assemble(&[&[0xfc, 1, 2, 3]]).unwrap();
        assert_eq!(f.data, vec![0xfc, 1, 2, 3]);
        assert!(f.keyframe);
        // DTX: a TOC byte alone is a valid packet.
        assert!(OpusDepacketizer.assemble(&[&[0xf8]]).is_ok());
        assert_eq!(OpusDepacketizer.assemble(&[&[]]), Err(DepackError::Empty));
        assert_eq!(OpusDepacketizer.assemble(&[]), Err(DepackError::Empty));
        assert!(OpusDepacketizer.assemble(&[&[1], &[2]]).is_err());
    }
}
