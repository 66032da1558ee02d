//! VP9 (RFC 9628), flexible and non-flexible mode.
//!
//! ```text
//!  I P L F B E V Z   (I: PictureID, P: inter-picture predicted, L: layer indices,
//!                     F: flexible mode, B/E: start/end of a layer frame, V: scalability structure)
//!  M PictureID       (if I; M: 15 bits)
//!  TID U SID D       (if L)   TL0PICIDX (if L and not F)
//!  P_DIFF N          (if F and P; up to 3, while N)
//!  SS                (if V)
//! ```
//!
//! A picture may hold several layer frames (spatial layers); they are joined into one VP9
//! superframe, which is how WebM stores them.

use super::{CodecConfig, DepackError, Depacketizer, Frame};

/// VP9 depacketizer.
#[derive(Debug, Default, Clone, Copy)]
pub struct Vp9Depacketizer;

/// Parsed payload descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Descriptor {
    pub len: usize,
    pub start: bool,
    pub end: bool,
    pub inter_picture: bool,
    pub spatial_id: u8,
}

pub(crate) fn descriptor(p: &[u8]) -> Result<Descriptor, DepackError> {
    let b0 = *p.first().ok_or(DepackError::Empty)?;
    let (i_bit, p_bit, l_bit, f_bit) = (b0 & 0x80 != 0, b0 & 0x40 != 0, b0 & 0x20 != 0, b0 & 0x10 != 0);
    let (b_bit, e_bit, v_bit) = (b0 & 0x08 != 0, b0 & 0x04 != 0, b0 & 0x02 != 0);
    let get = |i: usize| p.get(i).copied().ok_or(DepackError::Truncated);
    let mut i = 1;
    if i_bit {
        i += if get(i)? & 0x80 != 0 { 2 } else { 1 };
    }
    let mut spatial_id = 0;
    if l_bit {
        spatial_id = (get(i)? >> 1) & 0x07;
        i += 1;
        if !f_bit {
            i += 1; // TL0PICIDX
        }
    }
    if f_bit && p_bit {
        let mut n = 0;
        loop {
            let d = get(i)?;
            i += 1;
            n += 1;
            if d & 0x01 == 0 {
                break;
            }
            if n == 3 {
                return Err(DepackError::Malformed("more than 3 VP9 reference indices"));
            }
        }
    }
    if v_bit {
        let ss = get(i)?;
        i += 1;
        let layers = usize::from(ss >> 5) + 1;
        if ss & 0x10 != 0 {
            i += 4 * layers;
        }
        if ss & 0x08 != 0 {
            let groups = get(i)?;
            i += 1;
            for _ in 0..groups {
                let g = get(i)?;
                i += 1 + usize::from((g >> 2) & 0x03);
            }
        }
    }
    if i > p.len() {
        return Err(DepackError::Truncated);
    }
    Ok(Descriptor { len: i, start: b_bit, end: e_bit, inter_picture: p_bit, spatial_id })
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Result<u32, DepackError> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8).ok_or(DepackError::Truncated)?;
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Ok(v)
    }
}

/// From a VP9 uncompressed frame header: keyframe flag and, for keyframes, the picture size.
pub(crate) fn frame_header(frame: &[u8]) -> Result<(bool, Option<(u16, u16)>), DepackError> {
    let mut b = Bits { data: frame, pos: 0 };
    if b.read(2)? != 2 {
        return Err(DepackError::Malformed("VP9 frame marker"));
    }
    let low = b.read(1)?;
    let profile = (b.read(1)? << 1) | low;
    if profile == 3 {
        b.read(1)?;
    }
    if b.read(1)? == 1 {
        return Ok((false, None)); // show_existing_frame
    }
    let frame_type = b.read(1)?;
    b.read(2)?; // show_frame, error_resilient_mode
    if frame_type != 0 {
        return Ok((false, None));
    }
    if b.read(24)? != 0x49_83_42 {
        return Err(DepackError::Malformed("VP9 sync code"));
    }
    if profile >= 2 {
        b.read(1)?;
    }
    let color_space = b.read(3)?;
    if color_space != 7 {
        b.read(1)?;
        if profile == 1 || profile == 3 {
            b.read(3)?;
        }
    } else if profile == 1 || profile == 3 {
        b.read(1)?;
    }
    let w = b.read(16)? + 1;
    let h = b.read(16)? + 1;
    // A size field of all ones is 65536, which the stream's u16 sizes cannot hold (it used to
    // wrap to 0: found by fuzz/depack_vp9).
    let (Ok(w), Ok(h)) = (u16::try_from(w), u16::try_from(h)) else {
        return Err(DepackError::Malformed("VP9 picture wider or taller than 65535"));
    };
    Ok((true, Some((w, h))))
}

/// Joins layer frames into a superframe (VP9 bitstream spec, annex B).
fn superframe(frames: Vec<Vec<u8>>) -> Result<Vec<u8>, DepackError> {
    if frames.len() == 1 {
        return Ok(frames.into_iter().next().unwrap_or_default());
    }
    if frames.len() > 8 {
        return Err(DepackError::Malformed("more than 8 VP9 layer frames"));
    }
    let max = frames.iter().map(Vec::len).max().unwrap_or(0);
    let mag = match max {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xff_ffff => 3,
        _ => 4,
    };
    let marker = 0xc0 | ((mag as u8 - 1) << 3) | (frames.len() as u8 - 1);
    let mut out = Vec::with_capacity(frames.iter().map(Vec::len).sum::<usize>() + 2 + mag * frames.len());
    for f in &frames {
        out.extend_from_slice(f);
    }
    out.push(marker);
    for f in &frames {
        out.extend_from_slice(&(f.len() as u32).to_le_bytes()[..mag]);
    }
    out.push(marker);
    Ok(out)
}

impl Depacketizer for Vp9Depacketizer {
    fn assemble(&mut self, payloads: &[&[u8]]) -> Result<Frame, DepackError> {
        if payloads.is_empty() {
            return Err(DepackError::Empty);
        }
        let mut layers: Vec<Vec<u8>> = Vec::new();
        let mut open = false;
        let mut first: Option<Descriptor> = None;
        for p in payloads {
            let d = descriptor(p)?;
            first.get_or_insert(d);
            if d.start {
                if open {
                    return Err(DepackError::Incomplete);
                }
                layers.push(Vec::new());
                open = true;
            } else if !open {
                return Err(DepackError::Incomplete);
            }
            if let Some(l) = layers.last_mut() {
                l.extend_from_slice(&p[d.len..]);
            }
            if d.end {
                open = false;
            }
        }
        if open || layers.iter().any(Vec::is_empty) {
            return Err(DepackError::Incomplete);
        }
        let (keyframe, dims) = frame_header(&layers[0])?;
        let first = first.ok_or(DepackError::Empty)?;
        let keyframe = keyframe && !first.inter_picture && first.spatial_id == 0;
        // The picture size is the largest layer's.
        let mut dims = dims;
        if keyframe {
            for l in &layers[1..] {
                if let Ok((_, Some(d))) = frame_header(l) {
                    dims = Some(d);
                }
            }
        }
        let config =
            if keyframe { dims.map(|(width, height)| CodecConfig::Dimensions { width, height }) } else { None };
        Ok(Frame { data: superframe(layers)?, keyframe, config })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Profile 0 keyframe header for `w`x`h`, plus filler.
    fn key_header(w: u16, h: u16) -> Vec<u8> {
        key_header_of_fields(w - 1, h - 1)
    }

    /// Profile 0 keyframe header whose size fields (the size minus one) are `w1` and `h1`.
    fn key_header_of_fields(w1: u16, h1: u16) -> Vec<u8> {
        // frame_marker=2, profile 0 (2 bits), show_existing=0, frame_type=0, show=1, err_res=0
        // -> 10 0 0 0 0 1 0 = 0x82 (8 bits: 1000 0010)
        let mut bits: Vec<u8> = vec![1, 0, 0, 0, 0, 0, 1, 0];
        for i in (0..24).rev() {
            bits.push(((0x49_83_42u32 >> i) & 1) as u8);
        }
        bits.extend_from_slice(&[0, 0, 1]); // color_space = 1 (BT.601)
        bits.push(0); // color_range
        for v in [w1, h1] {
            for i in (0..16).rev() {
                bits.push(((v >> i) & 1) as u8);
            }
        }
        while !bits.len().is_multiple_of(8) {
            bits.push(0);
        }
        let mut out: Vec<u8> = bits.chunks(8).map(|c| c.iter().fold(0u8, |a, b| (a << 1) | b)).collect();
        out.extend_from_slice(&[0x55; 12]);
        out
    }

    fn inter() -> Vec<u8> {
        // marker 2, profile 0, show_existing 0, frame_type 1, show 1, err 0
        vec![0b1000_0110, 0x11, 0x22, 0x33]
    }

    #[test]
    fn a_picture_of_65536_is_refused_not_wrapped_to_0() {
        assert_eq!(frame_header(&key_header_of_fields(65534, 0)).unwrap(), (true, Some((65535, 1))));
        for (w1, h1) in [(65535, 0), (0, 65535)] {
            assert_eq!(
                frame_header(&key_header_of_fields(w1, h1)),
                Err(DepackError::Malformed("VP9 picture wider or taller than 65535"))
            );
            let mut packet = vec![0x0c];
            packet.extend_from_slice(&key_header_of_fields(w1, h1));
            assert!(Vp9Depacketizer.assemble(&[&packet]).is_err());
        }
    }

    #[test]
    fn header_parsing() {
        assert_eq!(frame_header(&key_header(1280, 720)).unwrap(), (true, Some((1280, 720))));
        assert_eq!(frame_header(&inter()).unwrap(), (false, None));
        assert!(frame_header(&[0x00, 0x00]).is_err());
    }

    #[test]
    fn non_flexible_keyframe_with_scalability_structure() {
        let frame = key_header(640, 360);
        // I=1 (7-bit pid), L=1, F=0, B=1, V=1: pid, TID/U/SID/D, TL0PICIDX, SS (1 layer, Y, G with 1 group of R=1).
        let mut p1 = vec![0x80 | 0x20 | 0x08 | 0x02, 0x11, 0x00, 0x07, 0x18, 0x02, 0x80, 0x01, 0x68, 0x01, 0x04, 0x01];
        p1.extend_from_slice(&frame[..10]);
        // I=1, L=1, E=1.
        let mut p2 = vec![0x80 | 0x20 | 0x04, 0x11, 0x00, 0x07];
        p2.extend_from_slice(&frame[10..]);
        let f = Vp9Depacketizer.assemble(&[&p1, &p2]).unwrap();
        assert_eq!(f.data, frame);
        assert!(f.keyframe);
        assert_eq!(f.config, Some(CodecConfig::Dimensions { width: 640, height: 360 }));
    }

    #[test]
    fn flexible_mode_interframe_with_reference_indices() {
        // I=1 (15-bit pid), P=1, F=1, B=1, E=1; P_DIFF with N=1 then N=0.
        let mut p = vec![0x80 | 0x40 | 0x10 | 0x08 | 0x04, 0x81, 0x02, 0x03, 0x04];
        p.extend_from_slice(&inter());
        let f = Vp9Depacketizer.assemble(&[&p]).unwrap();
        assert!(!f.keyframe);
        assert_eq!(f.data, inter());
        // Four reference indices are malformed.
        let p = [0x40 | 0x10 | 0x0c, 0x03, 0x03, 0x03, 0x03, 0x00];
        assert!(matches!(Vp9Depacketizer.assemble(&[&p]), Err(DepackError::Malformed(_))));
    }

    #[test]
    fn spatial_layers_become_a_superframe() {
        let base = key_header(320, 180);
        let top = key_header(640, 360);
        // Flexible, L=1: SID 0 then SID 1, each B+E.
        let mut p1 = vec![0x20 | 0x10 | 0x0c, 0x00];
        p1.extend_from_slice(&base);
        let mut p2 = vec![0x20 | 0x10 | 0x0c, 0x02];
        p2.extend_from_slice(&top);
        let f = Vp9Depacketizer.assemble(&[&p1, &p2]).unwrap();
        assert!(f.keyframe);
        assert_eq!(f.config, Some(CodecConfig::Dimensions { width: 640, height: 360 }));
        let n = base.len() + top.len();
        assert_eq!(&f.data[..base.len()], &base[..]);
        let marker = 0xc0 | 0x01; // 1-byte sizes, 2 frames
        assert_eq!(f.data[n], marker);
        assert_eq!(f.data[n + 1] as usize, base.len());
        assert_eq!(f.data[n + 2] as usize, top.len());
        assert_eq!(*f.data.last().unwrap(), marker);
    }

    #[test]
    fn incomplete_layer_frames_are_refused() {
        let i = inter();
        let start_only = [&[0x08u8][..], &i[..]].concat();
        let end_only = [&[0x04u8][..], &i[..]].concat();
        let middle = [&[0x00u8][..], &i[..]].concat();
        assert_eq!(Vp9Depacketizer.assemble(&[&start_only]), Err(DepackError::Incomplete));
        assert_eq!(Vp9Depacketizer.assemble(&[&end_only]), Err(DepackError::Incomplete));
        assert_eq!(Vp9Depacketizer.assemble(&[&start_only, &middle]), Err(DepackError::Incomplete));
        assert!(Vp9Depacketizer.assemble(&[&start_only, &middle, &end_only]).is_ok());
        assert_eq!(Vp9Depacketizer.assemble(&[&[0x80]]), Err(DepackError::Truncated));
    }
}
