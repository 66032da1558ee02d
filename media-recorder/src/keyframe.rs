//! Interceptor that lets keyframe requests (PLI, FIR) from a receiving browser reach the
//! application; all other inbound RTCP stays with the interceptors (NACK, reports).
//!
//! Inbound RTCP stops at the end of the webrtc 0.21 interceptor chain unless an interceptor marks
//! it with `Attribute::DeliverToApplication`; this one is registered last (application-most) so
//! the stock interceptors have seen everything before the set is narrowed.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
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
