//! A synthetic WebRTC client built on the same webrtc crate as the server.
//!
//! It behaves like the pages do toward the media plane: it offers one send-receive audio (Opus)
//! and one send-receive video (VP8) transceiver, adds receive-only pairs when asked, answers
//! nothing (the server always answers), and sends synthetic RTP once connected: 50 audio packets
//! a second and 30 single-packet VP8 frames a second, with correct timestamps, marker bits and a
//! keyframe at start and after every keyframe request. It counts what it receives.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{Attribute, Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCOfferOptions;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8, MIME_TYPE_VP9, MediaEngine};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp;
use rtc::rtp::extension::HeaderExtension;
use rtc::rtp::extension::transport_cc_extension::TransportCcExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::sansio::Protocol;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};
use webrtc::rtp_transceiver::RtpSender;

const GATHER_TIMEOUT: Duration = Duration::from_secs(5);

/// How a synthetic peer differs from the default browser-like one.
#[derive(Debug, Clone)]
pub struct PeerOptions {
    /// Where its UDP socket binds (a concrete address: a wildcard skips loopback).
    pub bind_ip: IpAddr,
    /// Payload type offered for Opus.
    pub audio_pt: u8,
    /// Payload type offered for VP8.
    pub video_pt: u8,
    /// Register one extra header extension first, so every extension id differs from a
    /// default peer's (as between two browser versions).
    pub shift_extension_ids: bool,
    /// Put a transport-cc header extension on every packet sent (as browsers do).
    pub send_header_extensions: bool,
    /// Offer VP9 (payload type 98) before VP8.
    pub offer_vp9_first: bool,
    /// Filler bytes after each VP8 frame's header (0: frames of about 20 bytes): the size of
    /// the recordings (1000 bytes are about 30 KB of video a second).
    pub video_padding: usize,
}

impl Default for PeerOptions {
    fn default() -> Self {
        PeerOptions {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            audio_pt: 111,
            video_pt: 96,
            shift_extension_ids: false,
            send_header_extensions: false,
            offer_vp9_first: false,
            video_padding: 0,
        }
    }
}

/// Counts of what a peer received from one remote stream (msid stream id).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCounts {
    pub audio_packets: u64,
    pub video_packets: u64,
    pub video_keyframes: u64,
}

#[derive(Default)]
struct Shared {
    audio_packets: AtomicU64,
    video_packets: AtomicU64,
    video_keyframes: AtomicU64,
    keyframe_requests: AtomicU64,
    /// Received RTP packets that carried header extensions.
    with_extensions: AtomicU64,
    /// The video sender should start a new keyframe.
    keyframe_wanted: AtomicBool,
    sent_audio: AtomicU64,
    sent_video: AtomicU64,
    streams: Mutex<BTreeMap<String, StreamCounts>>,
    remote_video: Mutex<Vec<Arc<dyn TrackRemote>>>,
}

struct Handler {
    shared: Arc<Shared>,
    gathered: watch::Sender<u64>,
    state: watch::Sender<RTCPeerConnectionState>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.send_modify(|n| *n += 1);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let shared = self.shared.clone();
        tokio::spawn(async move { receive(shared, track).await });
    }
}

async fn receive(shared: Arc<Shared>, track: Arc<dyn TrackRemote>) {
    let kind = track.kind().await;
    let stream = track.stream_id().await;
    if kind == RtpCodecKind::Video {
        shared.remote_video.lock().unwrap_or_else(|e| e.into_inner()).push(track.clone());
    }
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                if packet.header.extension || !packet.header.extensions.is_empty() {
                    shared.with_extensions.fetch_add(1, Ordering::Relaxed);
                }
                let keyframe = kind == RtpCodecKind::Video && is_vp8_keyframe(&packet.payload);
                let mut streams = shared.streams.lock().unwrap_or_else(|e| e.into_inner());
                let counts = streams.entry(stream.clone()).or_default();
                if kind == RtpCodecKind::Audio {
                    counts.audio_packets += 1;
                    shared.audio_packets.fetch_add(1, Ordering::Relaxed);
                } else {
                    counts.video_packets += 1;
                    shared.video_packets.fetch_add(1, Ordering::Relaxed);
                    if keyframe {
                        counts.video_keyframes += 1;
                        shared.video_keyframes.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

/// Whether a VP8 RTP payload starts a keyframe (RFC 7741 payload descriptor + VP8 header).
pub fn is_vp8_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let start_of_partition = first & 0x10 != 0 && first & 0x07 == 0;
    if !start_of_partition {
        return false;
    }
    let mut i = 1;
    if first & 0x80 != 0 {
        let Some(&ext) = payload.get(1) else {
            return false;
        };
        i = 2;
        if ext & 0x80 != 0 {
            // PictureID, 7 or 15 bits.
            let Some(&pid) = payload.get(i) else {
                return false;
            };
            i += if pid & 0x80 != 0 { 2 } else { 1 };
        }
        if ext & 0x40 != 0 {
            i += 1; // TL0PICIDX
        }
        if ext & 0x30 != 0 {
            i += 1; // TID/KEYIDX
        }
    }
    payload.get(i).is_some_and(|b| b & 0x01 == 0)
}

/// Lets PLI/FIR sent to us reach the application (inbound RTCP otherwise stops in the chain).
#[derive(Default)]
struct KeyframeRequests {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

fn keyframe_request(p: &dyn rtc::rtcp::Packet) -> bool {
    p.as_any().is::<PictureLossIndication>() || p.as_any().is::<FullIntraRequest>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequests {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> std::result::Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &mut msg.message.packet {
            packets.retain(|p| keyframe_request(p.as_ref()));
            if packets.is_empty() {
                return Ok(());
            }
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.reads.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.reads.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> std::result::Result<(), Self::Error> {
        self.writes.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.writes.pop_front()
    }
}

impl Interceptor for KeyframeRequests {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// A synthetic client: see the module documentation.
pub struct SyntheticPeer {
    pc: Arc<dyn PeerConnection>,
    shared: Arc<Shared>,
    gathered: watch::Receiver<u64>,
    state: watch::Receiver<RTCPeerConnectionState>,
    tasks: Vec<JoinHandle<()>>,
    closed: bool,
}

impl SyntheticPeer {
    /// A peer bound to 127.0.0.1 whose own streams carry the msid stream id `label`.
    pub async fn new(label: &str) -> Result<SyntheticPeer> {
        Self::with_options(label, PeerOptions::default()).await
    }

    /// A peer configured by `opts`.
    pub async fn with_options(label: &str, opts: PeerOptions) -> Result<SyntheticPeer> {
        let mut media_engine = MediaEngine::default();
        if opts.shift_extension_ids {
            media_engine.register_header_extension(
                RTCRtpHeaderExtensionCapability { uri: "urn:ietf:params:rtp-hdrext:ssrc-audio-level".to_owned() },
                RtpCodecKind::Audio,
                None,
            )?;
        }
        media_engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_OPUS.to_owned(),
                    clock_rate: 48000,
                    channels: 2,
                    sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                    rtcp_feedback: vec![],
                },
                payload_type: opts.audio_pt,
            },
            RtpCodecKind::Audio,
        )?;
        if opts.offer_vp9_first {
            media_engine.register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: RTCRtpCodec {
                        mime_type: MIME_TYPE_VP9.to_owned(),
                        clock_rate: 90000,
                        channels: 0,
                        sdp_fmtp_line: "profile-id=0".to_owned(),
                        rtcp_feedback: vec![],
                    },
                    payload_type: 98,
                },
                RtpCodecKind::Video,
            )?;
        }
        media_engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_VP8.to_owned(),
                    clock_rate: 90000,
                    channels: 0,
                    sdp_fmtp_line: String::new(),
                    rtcp_feedback: vec![RTCPFeedback { typ: "ccm".to_owned(), parameter: "fir".to_owned() }],
                },
                payload_type: opts.video_pt,
            },
            RtpCodecKind::Video,
        )?;
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?
            .with(Slot::from(14_000), KeyframeRequests::default());
        let shared = Arc::new(Shared::default());
        let (gathered_tx, gathered) = watch::channel(0);
        let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
        let handler = Arc::new(Handler { shared: shared.clone(), gathered: gathered_tx, state: state_tx });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media_engine)
            .with_setting_engine(
                SettingEngineBuilder::new().with_multicast_dns_mode(MulticastDnsMode::Disabled).build(),
            )
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_udp_addrs(vec![SocketAddr::new(opts.bind_ip, 0)])
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);

        let mut tasks = Vec::new();
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            let ssrc = rand::random::<u32>();
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                label.to_owned(),
                format!("{label}-{kind}"),
                kind.to_string(),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                    ..Default::default()
                }],
            )));
            let sender = pc.add_track(track.clone()).await?;
            tasks.push(tokio::spawn(send(kind, ssrc, track, sender, shared.clone(), state.clone(), opts.clone())));
        }
        Ok(SyntheticPeer { pc, shared, gathered, state, tasks, closed: false })
    }

    async fn local_offer(&self, options: Option<RTCOfferOptions>) -> Result<String> {
        let offer = self.pc.create_offer(options).await?;
        let before = *self.gathered.borrow();
        self.pc.set_local_description(offer).await?;
        let mut gathered = self.gathered.clone();
        tokio::time::timeout(GATHER_TIMEOUT, gathered.wait_for(|n| *n > before))
            .await
            .context("ICE gathering timed out")??;
        Ok(self.pc.local_description().await.ok_or_else(|| anyhow!("no local description"))?.sdp)
    }

    /// An offer with the current transceivers (all candidates included).
    pub async fn offer(&self) -> Result<String> {
        self.local_offer(None).await
    }

    /// An offer restarting ICE on this connection.
    pub async fn ice_restart_offer(&self) -> Result<String> {
        self.local_offer(Some(RTCOfferOptions { ice_restart: true })).await
    }

    /// Adds `n` receive-only audio+video pairs and returns the new offer.
    pub async fn add_recv_slots(&self, n: usize) -> Result<String> {
        for _ in 0..n {
            for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
                self.pc
                    .add_transceiver_from_kind(
                        kind,
                        Some(RTCRtpTransceiverInit {
                            direction: RTCRtpTransceiverDirection::Recvonly,
                            streams: vec![],
                            send_encodings: vec![],
                        }),
                    )
                    .await?;
            }
        }
        self.offer().await
    }

    /// Applies the server's answer.
    pub async fn apply_answer(&self, sdp: &str) -> Result<()> {
        let answer = RTCSessionDescription::answer(sdp.to_owned())?;
        self.pc.set_remote_description(answer).await?;
        Ok(())
    }

    /// Waits until the connection is `connected`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut state = self.state.clone();
        match tokio::time::timeout(
            timeout,
            state.wait_for(|s| {
                matches!(
                    s,
                    RTCPeerConnectionState::Connected | RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
                )
            }),
        )
        .await
        {
            Ok(Ok(s)) if *s == RTCPeerConnectionState::Connected => Ok(()),
            Ok(Ok(s)) => bail!("connection ended in state {}", *s),
            Ok(Err(_)) => bail!("peer gone"),
            Err(_) => bail!("not connected within {timeout:?} (state {})", *self.state.borrow()),
        }
    }

    /// Current connection state.
    pub fn connection_state(&self) -> RTCPeerConnectionState {
        *self.state.borrow()
    }

    /// RTP packets received, all streams, of `kind`.
    pub fn rtp_received(&self, kind: RtpCodecKind) -> u64 {
        match kind {
            RtpCodecKind::Audio => self.shared.audio_packets.load(Ordering::Relaxed),
            _ => self.shared.video_packets.load(Ordering::Relaxed),
        }
    }

    /// VP8 keyframes received, all streams.
    pub fn keyframes_received(&self) -> u64 {
        self.shared.video_keyframes.load(Ordering::Relaxed)
    }

    /// What was received per remote stream (msid stream id = publisher label).
    pub fn received_by_stream(&self) -> BTreeMap<String, StreamCounts> {
        self.shared.streams.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What was received from stream `id`.
    pub fn received_from(&self, id: &str) -> StreamCounts {
        self.received_by_stream().get(id).copied().unwrap_or_default()
    }

    /// PLI/FIR received for our video.
    pub fn plis_received(&self) -> u64 {
        self.shared.keyframe_requests.load(Ordering::Relaxed)
    }

    /// Sends a PLI for every video stream received so far (as a browser does when it cannot
    /// decode); returns how many were sent.
    pub async fn request_keyframes(&self) -> usize {
        let tracks: Vec<Arc<dyn TrackRemote>> =
            self.shared.remote_video.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut sent = 0;
        for t in tracks {
            let Some(ssrc) = t.ssrcs().await.first().copied() else {
                continue;
            };
            let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc };
            if t.write_rtcp(vec![Box::new(pli)]).await.is_ok() {
                sent += 1;
            }
        }
        sent
    }

    /// Received RTP packets that still carried header extensions.
    pub fn received_with_extensions(&self) -> u64 {
        self.shared.with_extensions.load(Ordering::Relaxed)
    }

    /// RTP packets sent (audio, video).
    pub fn rtp_sent(&self) -> (u64, u64) {
        (self.shared.sent_audio.load(Ordering::Relaxed), self.shared.sent_video.load(Ordering::Relaxed))
    }

    /// Stops sending and closes the connection.
    pub async fn close(mut self) -> Result<()> {
        self.closed = true;
        for t in self.tasks.drain(..) {
            t.abort();
        }
        self.pc.close().await?;
        Ok(())
    }
}

impl Drop for SyntheticPeer {
    fn drop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if !self.closed
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let pc = self.pc.clone();
            rt.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

/// Sends synthetic media on one track once connected.
async fn send(
    kind: RtpCodecKind,
    ssrc: u32,
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    shared: Arc<Shared>,
    mut state: watch::Receiver<RTCPeerConnectionState>,
    opts: PeerOptions,
) {
    if state.wait_for(|s| *s == RTCPeerConnectionState::Connected).await.is_err() {
        return;
    }
    let Ok(params) = sender.get_parameters().await else {
        return;
    };
    let Some(pt) = params.rtp_parameters.codecs.first().map(|c| c.payload_type) else {
        return;
    };
    let (period, ts_step) = match kind {
        RtpCodecKind::Audio => (Duration::from_millis(20), 960u32),
        _ => (Duration::from_millis(33), 3000u32),
    };
    // Keyframe requests arrive as events on our local track.
    let rtcp_track = track.clone();
    let rtcp_shared = shared.clone();
    let rtcp = tokio::spawn(async move {
        while let Some(event) = rtcp_track.poll().await {
            let TrackLocalEvent::OnRtcpPacket(packets) = event else {
                continue;
            };
            let n = packets.iter().filter(|p| keyframe_request(p.as_ref())).count() as u64;
            if n > 0 {
                rtcp_shared.keyframe_requests.fetch_add(n, Ordering::Relaxed);
                rtcp_shared.keyframe_wanted.store(true, Ordering::Release);
            }
        }
    });
    let mut seq: u16 = rand::random();
    let mut ts: u32 = rand::random();
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut first = true;
    let mut frame: u32 = 0;
    loop {
        ticker.tick().await;
        if matches!(*state.borrow(), RTCPeerConnectionState::Closed | RTCPeerConnectionState::Failed) {
            break;
        }
        let (payload, marker) = match kind {
            RtpCodecKind::Audio => (Bytes::from_static(&[0xf8, 0xff, 0xfe]), first),
            _ => {
                let key = first || shared.keyframe_wanted.swap(false, Ordering::AcqRel);
                (vp8_frame(key, frame, opts.video_padding), true)
            }
        };
        let packet = rtp::Packet {
            header: rtp::header::Header {
                version: 2,
                marker,
                payload_type: pt,
                sequence_number: seq,
                timestamp: ts,
                ssrc,
                ..Default::default()
            },
            payload,
        };
        let written = if opts.send_header_extensions {
            let ext = HeaderExtension::TransportCc(TransportCcExtension { transport_sequence: seq });
            track.write_rtp_with_extensions(packet, &[ext]).await
        } else {
            track.write_rtp(packet).await
        };
        if written.is_ok() {
            let counter = if kind == RtpCodecKind::Audio { &shared.sent_audio } else { &shared.sent_video };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        frame = frame.wrapping_add(1);
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(ts_step);
    }
    rtcp.abort();
}

/// One VP8 frame in one RTP payload: payload descriptor (S=1, partition 0) + frame header,
/// and `padding` filler bytes.
fn vp8_frame(key: bool, n: u32, padding: usize) -> Bytes {
    let mut p = Vec::with_capacity(24 + padding);
    p.push(0x10);
    // Frame tag: bit 0 = 0 for a keyframe; show_frame set; first partition size small.
    p.push(if key { 0x10 } else { 0x11 });
    p.push(0x02);
    p.push(0x00);
    if key {
        // Start code and 320x240.
        p.extend_from_slice(&[0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]);
    }
    p.extend_from_slice(&n.to_be_bytes());
    p.extend_from_slice(&[0xaa; 8]);
    p.extend((0..padding).map(|i| (i as u32 ^ n) as u8));
    Bytes::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframes_are_recognized() {
        assert!(is_vp8_keyframe(&vp8_frame(true, 1, 0)));
        assert!(!is_vp8_keyframe(&vp8_frame(false, 2, 100)));
        // Extended descriptor with a 15-bit picture id.
        assert!(is_vp8_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x10]));
        assert!(!is_vp8_keyframe(&[0x90, 0x80, 0x81, 0x23, 0x11]));
        // Not the start of a partition.
        assert!(!is_vp8_keyframe(&[0x00, 0x10]));
    }
}
