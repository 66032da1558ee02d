//! VP8 (RFC 7741).
//!
//! ```text
//!  X R N S R PID     (X: extension byte follows, S: start of partition, PID: partition index)
//!  I L T K RSV       (I: PictureID, L: TL0PICIDX, T/K: TID/KEYIDX byte)
//!  M PictureID       (M: 15-bit PictureID)
//! ```

use super::{CodecConfig, DepackError, Depacketizer, Frame};

/// VP8 depacketizer.
#[derive(Debug, Default, Clone, Copy)]
pub struct Vp8Depacketizer;

/// Length of the payload descriptor, and whether the packet starts a frame (S=1, PID=0).
pub(crate) fn descriptor(p: &[u8]) -> Result<(usize, bool), DepackError> {
    let b0 = *p.first().ok_or(DepackError::Empty)?;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let x = *p.get(1).ok_or(DepackError::Truncated)?;
        i = 2;
        if x & 0x80 != 0 {
            let pid = *p.get(i).ok_or(DepackError::Truncated)?;
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1;
        }
        if x & 0x30 != 0 {
            i += 1;
        }
    }
    if i > p.len() {
        return Err(DepackError::Truncated);
    }
    Ok((i, b0 & 0x10 != 0 && b0 & 0x07 == 0))
}

/// Keyframe flag and, for keyframes, the picture size, from the start of a VP8 frame.
pub(crate) fn frame_header(frame: &[u8]) -> Result<(bool, Option<(u16, u16)>), DepackError> {
    let tag = *frame.first().ok_or(DepackError::Empty)?;
    if tag & 0x01 != 0 {
        return Ok((false, None));
    }
    if frame.len() < 10 {
        return Err(DepackError::Truncated);
    }
    if frame[3..6] != [0x9d, 0x01, 0x2a] {
        return Err(DepackError::Malformed("VP8 keyframe without start code"));
    }
    let w = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let h = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    if w == 0 || h == 0 {
        return Err(DepackError::Malformed("VP8 keyframe of size zero"));
    }
    Ok((true, Some((w, h))))
}

impl Depacketizer for Vp8Depacketizer {
    fn assemble(&mut self, payloads: &[&[u8]]) -> Result<Frame, DepackError> {
        let mut data = Vec::with_capacity(payloads.iter().map(|p| p.len()).sum());
        for (n, p) in payloads.iter().enumerate() {
            let (len, start) = descriptor(p)?;
            if n == 0 && !start {
                return Err(DepackError::Incomplete);
            }
            data.extend_from_slice(&p[len..]);
        }
        if data.is_empty() {
            return Err(DepackError::Empty);
        }
        let (keyframe, dims) = frame_header(&data)?;
        let config = dims.map(|(width, height)| CodecConfig::Dimensions { width, height });
        Ok(Frame { data, keyframe, config })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keyframe header for `w`x`h` (frame tag, start code, sizes) plus filler.
    fn key(w: u16, h: u16) -> Vec<u8> {
        let mut f = vec![0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        f.extend_from_slice(&w.to_le_bytes());
        f.extend_from_slice(&h.to_le_bytes());
        f.extend_from_slice(&[0xaa; 20]);
        f
    }

    #[test]
    fn keyframe_in_three_packets_with_extended_descriptor() {
        let frame = key(640, 480);
        // X=1, S=1, PID=0; I=1 with 15-bit picture id; L=1; T=1.
        let mut p1 = vec![0x90, 0xe0, 0x81, 0x23, 0x05, 0x40];
        p1.extend_from_slice(&frame[..8]);
        let mut p2 = vec![0x80, 0xe0, 0x81, 0x23, 0x05, 0x40];
        p2.extend_from_slice(&frame[8..20]);
        let mut p3 = vec![0x00];
        p3.extend_from_slice(&frame[20..]);
        let f = Vp8Depacketizer.assemble(&[&p1, &p2, &p3]).unwrap();
        assert_eq!(f.data, frame);
        assert!(f.keyframe);
        assert_eq!(f.config, Some(CodecConfig::Dimensions { width: 640, height: 480 }));
    }

    #[test]
    fn interframe_with_7_bit_picture_id() {
        let f = Vp8Depacketizer.assemble(&[&[0x90, 0x80, 0x12, 0x31, 0x02, 0x00, 0xaa]]).unwrap();
        assert!(!f.keyframe);
        assert_eq!(f.config, None);
        assert_eq!(f.data, vec![0x31, 0x02, 0x00, 0xaa]);
    }

    #[test]
    fn a_frame_that_misses_its_start_is_refused() {
        assert_eq!(Vp8Depacketizer.assemble(&[&[0x00, 0x31]]), Err(DepackError::Incomplete));
        // S=1 but partition index 1.
        assert_eq!(Vp8Depacketizer.assemble(&[&[0x11, 0x31]]), Err(DepackError::Incomplete));
    }

    #[test]
    fn malformed_payloads_are_errors() {
        assert_eq!(Vp8Depacketizer.assemble(&[&[0x90]]), Err(DepackError::Truncated));
        assert_eq!(Vp8Depacketizer.assemble(&[&[0x90, 0x80, 0x81]]), Err(DepackError::Truncated));
        assert_eq!(Vp8Depacketizer.assemble(&[&[0x10]]), Err(DepackError::Empty));
        // Keyframe flag without the start code.
        assert!(matches!(
            Vp8Depacketizer.assemble(&[&[0x10, 0x50, 0, 0, 1, 2, 3, 4, 5, 6, 7]]),
            Err(DepackError::Malformed(_))
        ));
        assert_eq!(Vp8Depacketizer.assemble(&[&[0x10, 0x50, 0x02]]), Err(DepackError::Truncated));
    }
}
