//! Small SDP helpers: what an offer asks for, and NAT 1:1 candidate rewriting of answers.

use std::collections::HashSet;
use std::net::IpAddr;

use rtc::peer_connection::sdp::RTCSessionDescription;

use crate::error::MediaError;

/// Largest offer accepted (a browser offer with a dozen m-lines is ~15 KiB).
pub(crate) const MAX_OFFER_LEN: usize = 256 * 1024;

/// What an offer contains, as far as slot accounting goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OfferShape {
    /// Active (port != 0) audio m-lines.
    pub audio: usize,
    /// Active (port != 0) video m-lines.
    pub video: usize,
}

impl OfferShape {
    /// Receive slots: audio+video pairs. Slot `i` is the `i`-th audio and `i`-th video m-line.
    pub fn slots(&self) -> usize {
        self.audio.min(self.video)
    }
}

/// Parses and checks an offer before any peer connection is touched.
pub(crate) fn parse_offer(sdp: &str) -> Result<(RTCSessionDescription, OfferShape), MediaError> {
    if sdp.len() > MAX_OFFER_LEN {
        return Err(MediaError::InvalidOffer("offer too large".into()));
    }
    let desc = RTCSessionDescription::offer(sdp.to_owned()).map_err(|e| MediaError::InvalidOffer(e.to_string()))?;
    let parsed = desc.unmarshal().map_err(|e| MediaError::InvalidOffer(e.to_string()))?;
    let mut shape = OfferShape { audio: 0, video: 0 };
    for m in &parsed.media_descriptions {
        if m.media_name.port.value == 0 {
            continue;
        }
        match m.media_name.media.as_str() {
            "audio" => shape.audio += 1,
            "video" => shape.video += 1,
            _ => {}
        }
    }
    if shape.audio == 0 && shape.video == 0 {
        return Err(MediaError::InvalidOffer("no audio or video section".into()));
    }
    Ok((desc, shape))
}

/// Rewrites the host candidates of `sdp` to the announced NAT 1:1 addresses of the same family.
/// Non-host candidates are kept; duplicates (several interfaces, one public address) are
/// dropped. With no announced address of a candidate's family the candidate is kept as is.
pub(crate) fn announce_candidates(sdp: &str, announced: &[IpAddr]) -> String {
    if announced.is_empty() {
        return sdp.to_owned();
    }
    let newline = if sdp.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = String::with_capacity(sdp.len() + 256);
    // Dedup per media section: candidates are repeated in every bundled m-line.
    let mut seen: HashSet<(String, String, String, String)> = HashSet::new();
    for line in sdp.split(newline) {
        if line.starts_with("m=") {
            seen.clear();
        }
        let Some(rest) = line.strip_prefix("a=candidate:") else {
            if !line.is_empty() {
                out.push_str(line);
                out.push_str(newline);
            }
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        // foundation component transport priority address port "typ" type ...
        let is_host = fields.len() >= 8 && fields[6] == "typ" && fields[7] == "host";
        let addr: Option<IpAddr> = fields.get(4).and_then(|a| a.parse().ok());
        let (true, Some(addr)) = (is_host, addr) else {
            out.push_str(line);
            out.push_str(newline);
            continue;
        };
        let same_family: Vec<&IpAddr> = announced.iter().filter(|a| a.is_ipv4() == addr.is_ipv4()).collect();
        if same_family.is_empty() {
            out.push_str(line);
            out.push_str(newline);
            continue;
        }
        for ip in same_family {
            let key = (fields[1].to_owned(), fields[2].to_ascii_lowercase(), ip.to_string(), fields[5].to_owned());
            if !seen.insert(key) {
                continue;
            }
            let mut f: Vec<String> = fields.iter().map(|s| (*s).to_owned()).collect();
            f[4] = ip.to_string();
            out.push_str("a=candidate:");
            out.push_str(&f.join(" "));
            out.push_str(newline);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
a=candidate:1 1 udp 2130706431 10.0.0.5 50000 typ host\r\n\
a=candidate:2 1 udp 2130706431 172.16.0.5 50000 typ host\r\n\
a=candidate:3 1 udp 1694498815 1.2.3.4 50000 typ srflx raddr 10.0.0.5 rport 50000\r\n\
a=end-of-candidates\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
a=candidate:1 1 udp 2130706431 10.0.0.5 50000 typ host\r\n";

    #[test]
    fn no_announced_ips_keeps_the_answer() {
        assert_eq!(announce_candidates(ANSWER, &[]), ANSWER);
    }

    #[test]
    fn host_candidates_are_announced_once_per_section() {
        let out = announce_candidates(ANSWER, &["203.0.113.7".parse().unwrap()]);
        let cands: Vec<&str> = out.lines().filter(|l| l.starts_with("a=candidate")).collect();
        assert_eq!(
            cands,
            vec![
                "a=candidate:1 1 udp 2130706431 203.0.113.7 50000 typ host",
                "a=candidate:3 1 udp 1694498815 1.2.3.4 50000 typ srflx raddr 10.0.0.5 rport 50000",
                "a=candidate:1 1 udp 2130706431 203.0.113.7 50000 typ host",
            ]
        );
        assert!(out.contains("a=end-of-candidates\r\n"));
        assert!(!out.contains("10.0.0.5 50000 typ host"));
    }

    #[test]
    fn other_family_is_kept() {
        let out = announce_candidates(ANSWER, &["2001:db8::1".parse().unwrap()]);
        assert_eq!(out, ANSWER);
    }

    #[test]
    fn garbage_offers_are_rejected() {
        assert!(parse_offer("hello").is_err());
        assert!(parse_offer("").is_err());
        assert!(parse_offer("v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n").is_err());
    }
}
