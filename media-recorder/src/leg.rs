//! One participant's peer connection ("leg"): how it is built and what it reports (through
//! [`LegEvents`], which the SFU implements).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Weak};

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Registry;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8, MIME_TYPE_VP9, MediaEngine,
};
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use tokio::sync::watch;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCPeerConnectionState, SettingEngineBuilder,
};

use crate::keyframe::with_keyframe_requests;

/// What a leg reports to its owner (the SFU). Called from the connection's event handler.
#[async_trait::async_trait]
pub(crate) trait LegEvents: Send + Sync {
    /// The connection state of leg `leg_id` changed. Called on the connection's driver: no
    /// waiting here.
    fn state_changed(self: Arc<Self>, leg_id: u64, room: &str, participant: &str, state: RTCPeerConnectionState);

    /// A remote track started on leg `leg_id`. Runs in a task of its own for the life of the
    /// track.
    async fn track_started(self: Arc<Self>, leg_id: u64, room: &str, participant: &str, track: Arc<dyn TrackRemote>);
}

/// Codecs the server forwards, in order of preference (VP8 first).
fn register_codecs(media_engine: &mut MediaEngine) -> Result<(), webrtc::error::Error> {
    let video_feedback = || {
        vec![
            RTCPFeedback { typ: "ccm".to_owned(), parameter: "fir".to_owned() },
            RTCPFeedback { typ: "nack".to_owned(), parameter: String::new() },
            RTCPFeedback { typ: "nack".to_owned(), parameter: "pli".to_owned() },
        ]
    };
    let codec = |mime: &str, clock_rate: u32, channels: u16, fmtp: &str, pt: u8, fb| RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: fb,
        },
        payload_type: pt,
    };
    media_engine.register_codec(
        codec(MIME_TYPE_OPUS, 48000, 2, "minptime=10;useinbandfec=1", 111, vec![]),
        RtpCodecKind::Audio,
    )?;
    for c in [
        codec(MIME_TYPE_VP8, 90000, 0, "", 96, video_feedback()),
        codec(MIME_TYPE_VP9, 90000, 0, "profile-id=0", 98, video_feedback()),
        codec(
            MIME_TYPE_H264,
            90000,
            0,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
            102,
            video_feedback(),
        ),
        codec(
            MIME_TYPE_H264,
            90000,
            0,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            125,
            video_feedback(),
        ),
    ] {
        media_engine.register_codec(c, RtpCodecKind::Video)?;
    }
    Ok(())
}

/// Builds a server-side peer connection bound to `bind_ip:port`.
pub(crate) async fn build_peer_connection(
    bind_ip: IpAddr,
    port: u16,
    handler: Arc<LegHandler>,
) -> Result<Arc<dyn PeerConnection>, webrtc::error::Error> {
    let mut media_engine = MediaEngine::default();
    register_codecs(&mut media_engine)?;
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
    let registry = with_keyframe_requests(registry);
    let setting_engine = SettingEngineBuilder::new().with_multicast_dns_mode(MulticastDnsMode::Disabled).build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media_engine)
        .with_setting_engine(setting_engine)
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_udp_addrs(vec![SocketAddr::new(bind_ip, port)])
        .build()
        .await?;
    Ok(Arc::new(pc))
}

/// Event handler of one leg. Holds its owner (the SFU) weakly: the SFU owns the leg, which
/// owns the connection, which owns this handler.
pub(crate) struct LegHandler {
    pub owner: Weak<dyn LegEvents>,
    pub leg_id: u64,
    pub room: String,
    pub participant: String,
    /// Counts completed ICE gathering passes (one per `set_local_description`).
    pub gathered: watch::Sender<u64>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for LegHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.send_modify(|n| *n += 1);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if let Some(owner) = self.owner.upgrade() {
            owner.state_changed(self.leg_id, &self.room, &self.participant, state);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(owner) = self.owner.upgrade() {
            // Runs for the life of the track: off the driver.
            let (leg_id, room, participant) = (self.leg_id, self.room.clone(), self.participant.clone());
            tokio::spawn(async move {
                owner.track_started(leg_id, &room, &participant, track).await;
            });
        }
    }
}
