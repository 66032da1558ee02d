//! Interceptor that lets keyframe requests (PLI, FIR) from a receiving browser, and sender
//! reports of a publishing browser (for the recorder's timeline), reach the application; all
//! other inbound RTCP stays with the interceptors (NACK, receiver reports, transport-cc).
//!
//! Inbound RTCP stops at the end of the webrtc 0.21 interceptor chain unless an interceptor marks
//! it with `Attribute::DeliverToApplication`; this one is registered last (application-most) so
//! the stock interceptors have seen everything before the set is narrowed.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, AttributedPacket, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;

/// Application-most position in the chain (stock slots sit well below this).
const SLOT: usize = 14_000;

/// Adds the keyframe-request marker to `registry`.
pub(crate) fn with_keyframe_requests(registry: Registry) -> Registry {
    registry.with(Slot::from(SLOT), KeyframeRequestMarker::default())
}

/// Whether any packet of a compound RTCP packet asks for a keyframe.
pub(crate) fn is_keyframe_request(packet: &dyn rtc::rtcp::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

#[derive(Default)]
struct KeyframeRequestMarker {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestMarker {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &mut msg.message.packet {
            // Sender reports travel alone and without report blocks: the core routes RTCP by
            // the first destination SSRC, which must then be the publisher's own.
            for p in packets.iter() {
                if let Some(sr) = p.as_ref().as_any().downcast_ref::<SenderReport>() {
                    let sr = SenderReport { reports: Vec::new(), profile_extensions: Default::default(), ..sr.clone() };
                    let mut m = AttributedPacket::from(Packet::Rtcp(vec![Box::new(sr)]));
                    m.add(Attribute::DeliverToApplication);
                    self.reads.push_back(TaggedPacket { now: msg.now, transport: msg.transport, message: m });
                }
            }
            packets.retain(|p| is_keyframe_request(p.as_ref()));
            if packets.is_empty() {
                // Receiver reports, NACKs, transport-cc: already handled by the interceptors.
                return Ok(());
            }
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.writes.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.writes.pop_front()
    }
}

impl Interceptor for KeyframeRequestMarker {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::reception_report::ReceptionReport;
    use rtc::shared::{TransportContext, TransportMessage};

    #[test]
    fn sender_reports_and_keyframe_requests_reach_the_application_apart() {
        let sr = SenderReport {
            ssrc: 0xaaaa,
            ntp_time: 42 << 32,
            rtp_time: 9000,
            reports: vec![ReceptionReport { ssrc: 0xbbbb, ..Default::default() }],
            ..Default::default()
        };
        let pli = PictureLossIndication { sender_ssrc: 1, media_ssrc: 0xcccc };
        let packets: Vec<Box<dyn rtc::rtcp::Packet>> = vec![Box::new(sr), Box::new(pli)];
        let mut m = KeyframeRequestMarker::default();
        let msg = TransportMessage {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::from(Packet::Rtcp(packets)),
        };
        m.handle_read(msg).unwrap();
        let first = m.poll_read().unwrap();
        let second = m.poll_read().unwrap();
        assert!(m.poll_read().is_none());
        for msg in [&first, &second] {
            assert!(msg.message.has(&Attribute::DeliverToApplication));
        }
        let Packet::Rtcp(p) = &first.message.packet else { panic!("not RTCP") };
        let sr = p[0].as_ref().as_any().downcast_ref::<SenderReport>().unwrap();
        // Routed by its own SSRC: no report blocks left.
        assert_eq!((sr.ssrc, sr.rtp_time, sr.reports.len(), p[0].destination_ssrc()), (0xaaaa, 9000, 0, vec![0xaaaa]));
        let Packet::Rtcp(p) = &second.message.packet else { panic!("not RTCP") };
        assert!(p.len() == 1 && is_keyframe_request(p[0].as_ref()));
        // Receiver reports alone stay in the chain.
        let rr: Vec<Box<dyn rtc::rtcp::Packet>> = vec![Box::new(rtc::rtcp::receiver_report::ReceiverReport::default())];
        let msg = TransportMessage {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::from(Packet::Rtcp(rr)),
        };
        m.handle_read(msg).unwrap();
        assert!(m.poll_read().is_none());
    }
}
