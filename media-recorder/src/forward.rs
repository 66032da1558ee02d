//! The forwarding path: one [`Publisher`] per (room, participant, kind) fans RTP out to the
//! [`Output`]s of the receiving connections.
//!
//! A publisher's packets pass through exactly one place, [`Publisher::fan_out`]: that is where the
//! participant's recorder is teed (once per publisher, whatever the number of receivers).
//! Each output has its own writer task and a bounded queue: a slow or stuck receiving connection
//! drops its own packets and never holds up the publisher or the other receivers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::{mpsc, watch};
use tracing::{debug, trace, warn};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::rtp_transceiver::RtpSender;

use crate::codec::Codec;
use crate::keyframe::is_keyframe_request;
use crate::record::TrackKind;
use crate::record::recorder::{KeyframeSource, Tap};

/// Packets queued per output before the newest are dropped (~3 s of 30 fps video).
const OUTPUT_QUEUE: usize = 256;
/// Minimum spacing of keyframe requests sent to one publisher.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);

/// Process-wide forwarding counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub packets: AtomicU64,
    pub bytes: AtomicU64,
}

/// Payload type to use on a receiving connection for packets of codec `src`: same MIME type and
/// format parameters if negotiated, else the same MIME type.
pub(crate) fn map_payload_type(dst: &[Codec], src: &Codec) -> Option<u8> {
    dst.iter()
        .find(|c| c.mime == src.mime && c.fmtp == src.fmtp)
        .or_else(|| dst.iter().find(|c| c.mime == src.mime && !c.is_repair()))
        .map(|c| c.payload_type)
}

/// A packet on its way to one output.
pub(crate) struct Forwarded {
    pub packet: rtp::Packet,
    pub codec: Arc<Codec>,
}

/// The remote track currently feeding a publisher.
struct Source {
    generation: u64,
    leg_id: u64,
    track: Arc<dyn TrackRemote>,
    ssrc: u32,
}

/// Fan-out point of one participant's audio or video.
pub(crate) struct Publisher {
    pub room: String,
    pub label: String,
    pub kind: RtpCodecKind,
    sinks: RwLock<Vec<(u64, mpsc::Sender<Forwarded>)>>,
    source: Mutex<Option<Source>>,
    generation: AtomicU64,
    last_keyframe_request: Mutex<Option<Instant>>,
    dropped: AtomicU64,
    /// The participant's recorder, when its room records (one tee per publisher).
    recorder: RwLock<Option<Arc<Tap>>>,
}

impl Publisher {
    pub fn new(room: &str, label: &str, kind: RtpCodecKind) -> Arc<Publisher> {
        Arc::new(Publisher {
            room: room.to_owned(),
            label: label.to_owned(),
            kind,
            sinks: RwLock::new(Vec::new()),
            source: Mutex::new(None),
            generation: AtomicU64::new(0),
            last_keyframe_request: Mutex::new(None),
            dropped: AtomicU64::new(0),
            recorder: RwLock::new(None),
        })
    }

    pub fn sink_count(&self) -> usize {
        self.sinks.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Starts delivering to `tx`; asks for a keyframe so the new receiver can decode at once.
    pub fn add_sink(&self, id: u64, tx: mpsc::Sender<Forwarded>) {
        {
            let mut sinks = self.sinks.write().unwrap_or_else(|e| e.into_inner());
            if sinks.iter().any(|(i, _)| *i == id) {
                return;
            }
            sinks.push((id, tx));
        }
        self.request_keyframe(true);
    }

    pub fn remove_sink(&self, id: u64) {
        self.sinks.write().unwrap_or_else(|e| e.into_inner()).retain(|(i, _)| *i != id);
    }

    /// Makes `track` (of connection `leg_id`) the source; returns its generation, which the
    /// reader passes back so a superseded track cannot feed the publisher any more.
    fn set_source(&self, leg_id: u64, track: Arc<dyn TrackRemote>, ssrc: u32) -> u64 {
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        *self.source.lock().unwrap_or_else(|e| e.into_inner()) = Some(Source { generation, leg_id, track, ssrc });
        generation
    }

    fn clear_source(&self, generation: u64) {
        let mut source = self.source.lock().unwrap_or_else(|e| e.into_inner());
        if source.as_ref().is_some_and(|s| s.generation == generation) {
            *source = None;
        }
    }

    /// Drops the source if it belongs to connection `leg_id` (closed or replaced).
    pub fn clear_source_of_leg(&self, leg_id: u64) {
        let mut source = self.source.lock().unwrap_or_else(|e| e.into_inner());
        if source.as_ref().is_some_and(|s| s.leg_id == leg_id) {
            *source = None;
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Sends a PLI to the publishing browser (video only), at most once per
    /// [`KEYFRAME_REQUEST_INTERVAL`] unless `force`d by a new receiver.
    pub fn request_keyframe(&self, force: bool) {
        if self.kind != RtpCodecKind::Video {
            return;
        }
        let Some((track, ssrc)) =
            self.source.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|s| (s.track.clone(), s.ssrc))
        else {
            return;
        };
        {
            let mut last = self.last_keyframe_request.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            // A new receiver may still bypass a recent request, but not flood.
            let min = if force { KEYFRAME_REQUEST_INTERVAL / 3 } else { KEYFRAME_REQUEST_INTERVAL };
            if last.is_some_and(|t| now.duration_since(t) < min) {
                trace!(room = %self.room, publisher = %self.label, "keyframe request coalesced");
                return;
            }
            *last = Some(now);
        }
        debug!(room = %self.room, publisher = %self.label, ssrc, "PLI to publisher");
        tokio::spawn(async move {
            let pli = PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc };
            if let Err(e) = track.write_rtcp(vec![Box::new(pli)]).await {
                debug!(error = %e, "PLI to publisher not sent");
            }
        });
    }

    fn track_kind(&self) -> TrackKind {
        if self.kind == RtpCodecKind::Audio { TrackKind::Audio } else { TrackKind::Video }
    }

    /// Attaches (or detaches) the participant's recorder.
    pub fn set_recorder(self: &Arc<Self>, tap: Option<Arc<Tap>>) {
        if let Some(t) = &tap
            && self.kind == RtpCodecKind::Video
        {
            t.set_keyframe_source(Arc::<Self>::downgrade(self));
        }
        *self.recorder.write().unwrap_or_else(|e| e.into_inner()) = tap;
    }

    /// Tees an RTCP sender report of the source to the recorder.
    fn sender_report(&self, sr: &SenderReport) {
        if let Some(tap) = self.recorder.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            tap.sender_report(self.track_kind(), sr.ssrc, sr.ntp_time, sr.rtp_time);
        }
    }

    /// The single place every packet of this publisher passes through.
    fn fan_out(&self, packet: rtp::Packet, codec: &Arc<Codec>) {
        // Tee point: the recorder gets each packet once, whatever the number of receivers.
        if let Some(tap) = self.recorder.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            tap.rtp(self.track_kind(), &packet, codec);
        }
        let sinks = self.sinks.read().unwrap_or_else(|e| e.into_inner());
        for (_, tx) in sinks.iter() {
            let item = Forwarded { packet: packet.clone(), codec: codec.clone() };
            if tx.try_send(item).is_err() {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() {
                    warn!(room = %self.room, publisher = %self.label, dropped = n + 1,
                        "receiver queue full, packets dropped");
                }
            }
        }
    }
}

/// The recorder's keyframe requests, rate-limited like a receiver's.
impl KeyframeSource for Publisher {
    fn keyframe_wanted(&self) {
        self.request_keyframe(false);
    }
}

/// Removes header extensions: their ids are negotiated per connection, and forwarding them
/// unchanged makes the receiving stack reject the packet.
fn strip_extensions(header: &mut rtp::header::Header) {
    header.extension = false;
    header.extension_profile = 0;
    header.extensions.clear();
    header.extensions_padding = 0;
    header.csrc.clear();
}

/// Reads one remote track of connection `leg_id` and feeds `publisher` until the track ends.
pub(crate) async fn run_reader(
    publisher: Arc<Publisher>,
    leg_id: u64,
    track: Arc<dyn TrackRemote>,
    codecs: Vec<Codec>,
) {
    let ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
    let generation = publisher.set_source(leg_id, track.clone(), ssrc);
    debug!(room = %publisher.room, publisher = %publisher.label, kind = %publisher.kind, ssrc,
        codecs = ?codecs.iter().map(|c| (c.payload_type, c.mime.as_str())).collect::<Vec<_>>(),
        "publishing");
    if publisher.sink_count() > 0 {
        publisher.request_keyframe(true);
    }
    let codecs: Vec<Arc<Codec>> = codecs.into_iter().map(Arc::new).collect();
    let mut last: Option<Arc<Codec>> = None;
    let mut unknown_pt_logged = false;
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(mut packet) => {
                if publisher.generation.load(Ordering::Acquire) != generation {
                    continue;
                }
                let pt = packet.header.payload_type;
                let codec = match &last {
                    Some(c) if c.payload_type == pt => c.clone(),
                    _ => match codecs.iter().find(|c| c.payload_type == pt) {
                        Some(c) => {
                            last = Some(c.clone());
                            c.clone()
                        }
                        None => {
                            if !unknown_pt_logged {
                                warn!(room = %publisher.room, publisher = %publisher.label, pt,
                                    "RTP with a payload type not negotiated; dropped");
                                unknown_pt_logged = true;
                            }
                            continue;
                        }
                    },
                };
                strip_extensions(&mut packet.header);
                publisher.fan_out(packet, &codec);
            }
            TrackRemoteEvent::OnRtcpPacket(packets) => {
                if publisher.generation.load(Ordering::Acquire) != generation {
                    continue;
                }
                for p in &packets {
                    if let Some(sr) = p.as_ref().as_any().downcast_ref::<SenderReport>() {
                        publisher.sender_report(sr);
                    }
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
    publisher.clear_source(generation);
    debug!(room = %publisher.room, publisher = %publisher.label, kind = %publisher.kind,
        "published track ended");
}

/// Keeps a receiving stream continuous when its source changes (publisher reconnected):
/// sequence numbers and timestamps carry on from the last packet sent.
#[derive(Debug)]
pub(crate) struct Rewriter {
    out_ssrc: u32,
    source: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    last_seq: u16,
    last_ts: u32,
    started: bool,
}

impl Rewriter {
    pub fn new(out_ssrc: u32) -> Rewriter {
        Rewriter { out_ssrc, source: None, seq_offset: 0, ts_offset: 0, last_seq: 0, last_ts: 0, started: false }
    }

    /// Rewrites SSRC, sequence number and timestamp; `ts_gap` is the timestamp step put
    /// between the last packet of an old source and the first of a new one.
    pub fn apply(&mut self, header: &mut rtp::header::Header, ts_gap: u32) {
        if self.source != Some(header.ssrc) {
            if self.started {
                self.seq_offset = self.last_seq.wrapping_add(1).wrapping_sub(header.sequence_number);
                self.ts_offset = self.last_ts.wrapping_add(ts_gap).wrapping_sub(header.timestamp);
            }
            self.source = Some(header.ssrc);
        }
        let seq = header.sequence_number.wrapping_add(self.seq_offset);
        let ts = header.timestamp.wrapping_add(self.ts_offset);
        if !self.started || seq.wrapping_sub(self.last_seq) < 0x8000 {
            self.last_seq = seq;
            self.last_ts = ts;
        }
        self.started = true;
        header.sequence_number = seq;
        header.timestamp = ts;
        header.ssrc = self.out_ssrc;
    }
}

/// One forwarded stream on one receiving connection: a local track bound to one sender.
pub(crate) struct Output {
    pub id: u64,
    pub publisher: Arc<Publisher>,
    pub sender: Arc<dyn RtpSender>,
    /// Codecs negotiated on the receiving connection (refreshed after every negotiation).
    pub codecs: Arc<RwLock<Vec<Codec>>>,
    tx: mpsc::Sender<Forwarded>,
}

impl Output {
    /// Creates the output and its writer task. The task ends when the output is dropped and
    /// detached, or when the connection closes (`closed`).
    pub fn spawn(
        id: u64,
        publisher: Arc<Publisher>,
        track: Arc<TrackLocalStaticRTP>,
        sender: Arc<dyn RtpSender>,
        ssrc: u32,
        closed: watch::Receiver<bool>,
        counters: Arc<Counters>,
    ) -> Output {
        let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
        let codecs = Arc::new(RwLock::new(Vec::new()));
        let writer = Writer {
            kind: publisher.kind,
            publisher: Arc::downgrade(&publisher),
            track,
            codecs: codecs.clone(),
            rewriter: Rewriter::new(ssrc),
            counters,
        };
        tokio::spawn(writer.run(rx, closed));
        Output { id, publisher, sender, codecs, tx }
    }

    pub fn attach(&self) {
        self.publisher.add_sink(self.id, self.tx.clone());
    }

    pub fn detach(&self) {
        self.publisher.remove_sink(self.id);
    }

    pub fn set_codecs(&self, codecs: Vec<Codec>) {
        *self.codecs.write().unwrap_or_else(|e| e.into_inner()) = codecs;
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.detach();
    }
}

struct Writer {
    kind: RtpCodecKind,
    publisher: Weak<Publisher>,
    track: Arc<TrackLocalStaticRTP>,
    codecs: Arc<RwLock<Vec<Codec>>>,
    rewriter: Rewriter,
    counters: Arc<Counters>,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Forwarded>, mut closed: watch::Receiver<bool>) {
        let mut rtcp_open = true;
        let mut write_errors: u64 = 0;
        let mut unmapped_logged = false;
        loop {
            tokio::select! {
                item = rx.recv() => {
                    let Some(Forwarded { mut packet, codec }) = item else { break };
                    let pt = {
                        let codecs = self.codecs.read().unwrap_or_else(|e| e.into_inner());
                        map_payload_type(&codecs, &codec)
                    };
                    let Some(pt) = pt else {
                        if !unmapped_logged {
                            warn!(codec = %codec.mime, "codec not negotiated on the receiving connection; dropped");
                            unmapped_logged = true;
                        }
                        continue;
                    };
                    packet.header.payload_type = pt;
                    let ts_gap = (codec.clock_rate / 30).max(1);
                    self.rewriter.apply(&mut packet.header, ts_gap);
                    let size = 12 + packet.payload.len() as u64;
                    match self.track.write_rtp(packet).await {
                        Ok(()) => {
                            self.counters.packets.fetch_add(1, Ordering::Relaxed);
                            self.counters.bytes.fetch_add(size, Ordering::Relaxed);
                        }
                        Err(e) => {
                            write_errors += 1;
                            if write_errors.is_power_of_two() {
                                debug!(error = %e, errors = write_errors, "write_rtp failed");
                            }
                        }
                    }
                }
                event = self.track.poll(), if rtcp_open => match event {
                    Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                        if self.kind == RtpCodecKind::Video
                            && packets.iter().any(|p| is_keyframe_request(p.as_ref()))
                            && let Some(publisher) = self.publisher.upgrade()
                        {
                            trace!(publisher = %publisher.label, "keyframe request from receiver");
                            publisher.request_keyframe(false);
                        }
                    }
                    Some(_) => {}
                    None => rtcp_open = false,
                },
                _ = closed.changed() => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(ssrc: u32, seq: u16, ts: u32) -> rtp::header::Header {
        rtp::header::Header { ssrc, sequence_number: seq, timestamp: ts, ..Default::default() }
    }

    #[test]
    fn rewriter_keeps_numbering_continuous_across_sources() {
        let mut r = Rewriter::new(77);
        let mut h = header(1, 100, 1000);
        r.apply(&mut h, 3000);
        assert_eq!((h.ssrc, h.sequence_number, h.timestamp), (77, 100, 1000));
        let mut h = header(1, 101, 4000);
        r.apply(&mut h, 3000);
        assert_eq!((h.sequence_number, h.timestamp), (101, 4000));
        // Reconnected publisher: new SSRC, unrelated numbering.
        let mut h = header(2, 60000, 5);
        r.apply(&mut h, 3000);
        assert_eq!((h.ssrc, h.sequence_number, h.timestamp), (77, 102, 7000));
        let mut h = header(2, 60001, 3005);
        r.apply(&mut h, 3000);
        assert_eq!((h.sequence_number, h.timestamp), (103, 10000));
        // A late (retransmitted) packet does not move the high-water mark.
        let mut h = header(2, 59999, 1);
        r.apply(&mut h, 3000);
        assert_eq!(h.sequence_number, 101);
        let mut h = header(3, 0, 0);
        r.apply(&mut h, 3000);
        assert_eq!(h.sequence_number, 104);
    }

    #[test]
    fn payload_types_map_by_codec() {
        let dst = vec![
            Codec { payload_type: 100, mime: "video/vp8".into(), fmtp: String::new(), clock_rate: 90000 },
            Codec {
                payload_type: 101,
                mime: "video/h264".into(),
                fmtp: "packetization-mode=1;profile-level-id=42e01f".into(),
                clock_rate: 90000,
            },
            Codec {
                payload_type: 102,
                mime: "video/h264".into(),
                fmtp: "packetization-mode=1;profile-level-id=42001f".into(),
                clock_rate: 90000,
            },
        ];
        let src = |mime: &str, fmtp: &str| Codec {
            payload_type: 96,
            mime: mime.into(),
            fmtp: fmtp.into(),
            clock_rate: 90000,
        };
        assert_eq!(map_payload_type(&dst, &src("video/vp8", "")), Some(100));
        assert_eq!(
            map_payload_type(&dst, &src("video/h264", "packetization-mode=1;profile-level-id=42001f")),
            Some(102)
        );
        assert_eq!(map_payload_type(&dst, &src("video/h264", "x")), Some(101));
        assert_eq!(map_payload_type(&dst, &src("video/vp9", "")), None);
    }
}
