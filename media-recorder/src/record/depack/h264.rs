//! H.264 (RFC 6184), packetization modes 0 and 1: single NAL unit, STAP-A, FU-A.
//!
//! Output is one access unit in Annex-B form (4-byte start codes). The last SPS and PPS seen
//! are kept and put in front of every IDR that does not carry them in band, so every keyframe
//! can start a segment; the muxer turns Annex-B into length-prefixed AVCC with an `avcC` record.

use super::{CodecConfig, DepackError, Depacketizer, Frame};

const START: [u8; 4] = [0, 0, 0, 1];
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;
const NAL_AUD: u8 = 9;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// H.264 depacketizer; remembers the parameter sets in force.
#[derive(Debug, Default, Clone)]
pub struct H264Depacketizer {
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
}

/// NAL units of one access unit, without start codes.
pub(crate) fn nal_units(payloads: &[&[u8]]) -> Result<Vec<Vec<u8>>, DepackError> {
    let mut nals = Vec::new();
    let mut fu: Option<Vec<u8>> = None;
    for p in payloads {
        let header = *p.first().ok_or(DepackError::Empty)?;
        if header & 0x80 != 0 {
            return Err(DepackError::Malformed("forbidden_zero_bit set"));
        }
        match header & 0x1f {
            0 => return Err(DepackError::Malformed("NAL unit type 0")),
            1..=23 => {
                if fu.is_some() {
                    return Err(DepackError::Incomplete);
                }
                nals.push(p.to_vec());
            }
            STAP_A => {
                if fu.is_some() {
                    return Err(DepackError::Incomplete);
                }
                let mut i = 1;
                while i < p.len() {
                    let len = usize::from(u16::from_be_bytes([
                        *p.get(i).ok_or(DepackError::Truncated)?,
                        *p.get(i + 1).ok_or(DepackError::Truncated)?,
                    ]));
                    i += 2;
                    let nal = p.get(i..i + len).ok_or(DepackError::Truncated)?;
                    if nal.is_empty() {
                        return Err(DepackError::Malformed("empty NAL unit in STAP-A"));
                    }
                    nals.push(nal.to_vec());
                    i += len;
                }
            }
            FU_A => {
                let fu_header = *p.get(1).ok_or(DepackError::Truncated)?;
                let (start, end) = (fu_header & 0x80 != 0, fu_header & 0x40 != 0);
                if start {
                    if fu.is_some() {
                        return Err(DepackError::Incomplete);
                    }
                    fu = Some(vec![(header & 0xe0) | (fu_header & 0x1f)]);
                }
                let Some(nal) = fu.as_mut() else {
                    return Err(DepackError::Incomplete);
                };
                nal.extend_from_slice(&p[2..]);
                if end {
                    nals.extend(fu.take());
                }
            }
            25..=27 | 29 => return Err(DepackError::Unsupported("H.264 interleaved packetization")),
            _ => return Err(DepackError::Malformed("reserved NAL unit type")),
        }
    }
    if fu.is_some() {
        return Err(DepackError::Incomplete);
    }
    if nals.is_empty() {
        return Err(DepackError::Empty);
    }
    Ok(nals)
}

impl Depacketizer for H264Depacketizer {
    fn assemble(&mut self, payloads: &[&[u8]]) -> Result<Frame, DepackError> {
        let nals = nal_units(payloads)?;
        let types: Vec<u8> = nals.iter().map(|n| n[0] & 0x1f).collect();
        // Parameter sets take effect only once the frame is known to be whole.
        let sps = nals.iter().rfind(|n| n[0] & 0x1f == NAL_SPS).cloned().or_else(|| self.sps.clone());
        let pps = nals.iter().rfind(|n| n[0] & 0x1f == NAL_PPS).cloned().or_else(|| self.pps.clone());
        let keyframe = types.contains(&NAL_IDR);
        let mut data = Vec::with_capacity(nals.iter().map(|n| n.len() + 4).sum::<usize>() + 64);
        let mut config = None;
        if keyframe {
            let (Some(sps), Some(pps)) = (sps.clone(), pps.clone()) else {
                return Err(DepackError::MissingParameterSets);
            };
            let has_sps = types.contains(&NAL_SPS);
            let has_pps = types.contains(&NAL_PPS);
            // Keep an access unit delimiter first.
            let mut rest = &nals[..];
            if let Some(aud) = nals.first().filter(|n| n[0] & 0x1f == NAL_AUD) {
                data.extend_from_slice(&START);
                data.extend_from_slice(aud);
                rest = &nals[1..];
            }
            if !has_sps {
                data.extend_from_slice(&START);
                data.extend_from_slice(&sps);
            }
            if !has_pps {
                data.extend_from_slice(&START);
                data.extend_from_slice(&pps);
            }
            for n in rest {
                data.extend_from_slice(&START);
                data.extend_from_slice(n);
            }
            config = Some(CodecConfig::H264 { sps, pps });
        } else {
            for n in &nals {
                data.extend_from_slice(&START);
                data.extend_from_slice(n);
            }
        }
        self.sps = sps;
        self.pps = pps;
        Ok(Frame { data, keyframe, config })
    }
}

/// Splits Annex-B data into NAL units (start codes of 3 or 4 bytes).
#[cfg(test)]
fn split_annex_b(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut start: Option<usize> = None;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(s) = start {
                let mut e = i;
                while e > s && data[e - 1] == 0 {
                    e -= 1;
                }
                out.push(&data[s..e]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start
        && s < data.len()
    {
        out.push(&data[s..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn annex_b(nals: &[&[u8]]) -> Vec<u8> {
        nals.iter().flat_map(|n| START.iter().chain(n.iter()).copied()).collect()
    }

    #[test]
    fn stap_a_with_parameter_sets_then_fu_a_idr() {
        let idr: Vec<u8> = [&[0x65u8][..], &[0x88; 30][..]].concat();
        let mut stap = vec![0x78];
        for n in [SPS, PPS] {
            stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
            stap.extend_from_slice(n);
        }
        // FU indicator keeps NRI (0x60) with type 28; FU header S/E + type 5.
        let fu1 = [&[0x7c, 0x85][..], &idr[1..11]].concat();
        let fu2 = [&[0x7c, 0x05][..], &idr[11..21]].concat();
        let fu3 = [&[0x7c, 0x45][..], &idr[21..]].concat();
        let mut d = H264Depacketizer::default();
        let f = d.assemble(&[&stap, &fu1, &fu2, &fu3]).unwrap();
        assert!(f.keyframe);
        assert_eq!(f.data, annex_b(&[SPS, PPS, &idr]));
        assert_eq!(f.config, Some(CodecConfig::H264 { sps: SPS.to_vec(), pps: PPS.to_vec() }));
        assert_eq!(split_annex_b(&f.data), vec![SPS, PPS, &idr[..]]);
    }

    #[test]
    fn parameter_sets_are_repeated_before_a_later_idr() {
        let mut d = H264Depacketizer::default();
        assert_eq!(d.assemble(&[&[0x65, 1, 2]]), Err(DepackError::MissingParameterSets));
        d.assemble(&[SPS, PPS, &[0x65, 1, 2]]).unwrap();
        let p = d.assemble(&[&[0x41, 9, 9]]).unwrap();
        assert!(!p.keyframe);
        assert_eq!(p.data, annex_b(&[&[0x41, 9, 9]]));
        let k = d.assemble(&[&[0x09, 0xf0], &[0x65, 3, 4]]).unwrap();
        assert!(k.keyframe);
        assert_eq!(k.data, annex_b(&[&[0x09, 0xf0], SPS, PPS, &[0x65, 3, 4]]));
    }

    #[test]
    fn broken_fragmentation_is_refused() {
        let mut d = H264Depacketizer::default();
        // Middle fragment without a start.
        assert_eq!(d.assemble(&[&[0x7c, 0x05, 1]]), Err(DepackError::Incomplete));
        // Start without an end.
        assert_eq!(d.assemble(&[&[0x7c, 0x81, 1]]), Err(DepackError::Incomplete));
        // Two starts.
        assert_eq!(d.assemble(&[&[0x7c, 0x81, 1], &[0x7c, 0x81, 1]]), Err(DepackError::Incomplete));
        // Truncated STAP-A size.
        assert_eq!(d.assemble(&[&[0x78, 0x00, 0x09, 0x67]]), Err(DepackError::Truncated));
        assert!(matches!(d.assemble(&[&[0x80]]), Err(DepackError::Malformed(_))));
        assert!(matches!(d.assemble(&[&[0x1a, 0]]), Err(DepackError::Unsupported(_))));
    }

    #[test]
    fn annex_b_split_handles_three_byte_codes() {
        let data = [0, 0, 1, 0x67, 1, 0, 0, 0, 1, 0x68, 2, 0, 0, 1, 0x65, 3];
        assert_eq!(split_annex_b(&data), vec![&[0x67, 1][..], &[0x68, 2][..], &[0x65, 3][..]]);
    }
}
