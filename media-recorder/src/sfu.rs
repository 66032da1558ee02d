//! Rooms, participants, their connections and who receives whom.
//!
//! Locking: `SfuInner::state` (std mutex) before a leg's `st` (std mutex) before a publisher's
//! internal locks; none is held across an `.await`. Offers of one participant are serialized by
//! its `negotiation` (async) mutex.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_VP8;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, RTCSessionDescription};

use crate::codec::Codec;
use crate::config::MediaConfig;
use crate::error::MediaError;
use crate::event::{MediaEvent, MediaStats};
use crate::forward::{Counters, Output, Publisher, run_reader};
use crate::leg::{LegEvents, LegHandler, build_peer_connection};
use crate::record::recorder::Tap;
use crate::record::{RecordingConfig, RecordingSink};
use crate::sdp::{OfferShape, announce_candidates, parse_offer};

const EVENT_QUEUE: usize = 1024;
/// Longest wait for host candidates after `set_local_description` (normally a few ms).
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_ID_LEN: usize = 256;
/// Bind attempts per connection when the port range is shared with other processes.
const MAX_BIND_ATTEMPTS: usize = 16;
const KINDS: [RtpCodecKind; 2] = [RtpCodecKind::Audio, RtpCodecKind::Video];

/// The media plane. Cheap to clone.
#[derive(Clone)]
pub struct Sfu {
    inner: Arc<SfuInner>,
}

struct SfuInner {
    cfg: MediaConfig,
    events: mpsc::Sender<MediaEvent>,
    state: Mutex<State>,
    live_pcs: AtomicUsize,
    counters: Arc<Counters>,
    ports: Mutex<PortPool>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct State {
    rooms: HashMap<String, Room>,
}

#[derive(Default)]
struct Room {
    participants: HashMap<String, Participant>,
    /// Fan-out points by participant label: `[audio, video]`. Created on demand (a receiver
    /// may subscribe before the publisher joins).
    publishers: HashMap<String, [Arc<Publisher>; 2]>,
    /// Set while the room records.
    recording: Option<RoomRecording>,
}

/// Recording of a room: one recorder per participant label, kept for the whole call (a
/// participant that reconnects, or whose publishers are recreated, keeps its recorder and
/// timeline). Dropping it ends every recording of the room.
struct RoomRecording {
    sink: Arc<dyn RecordingSink>,
    cfg: RecordingConfig,
    taps: HashMap<String, Arc<Tap>>,
}

impl RoomRecording {
    fn tap(&mut self, room: &str, label: &str) -> Arc<Tap> {
        self.taps
            .entry(label.to_owned())
            .or_insert_with(|| Tap::spawn(room, label, self.sink.clone(), self.cfg))
            .clone()
    }
}

impl Drop for RoomRecording {
    fn drop(&mut self) {
        for tap in self.taps.values() {
            tap.finish();
        }
    }
}

impl Room {
    fn publishers(&mut self, room: &str, label: &str) -> [Arc<Publisher>; 2] {
        if let Some(pubs) = self.publishers.get(label) {
            return pubs.clone();
        }
        let pubs = KINDS.map(|k| Publisher::new(room, label, k));
        if let Some(rec) = self.recording.as_mut() {
            let tap = rec.tap(room, label);
            for p in &pubs {
                p.set_recorder(Some(tap.clone()));
            }
        }
        self.publishers.insert(label.to_owned(), pubs.clone());
        pubs
    }

    /// Forgets publishers nobody publishes on or receives from any more.
    fn collect_publishers(&mut self) {
        let participants = &self.participants;
        self.publishers.retain(|label, pubs| {
            participants.contains_key(label) || pubs.iter().any(|p| Arc::strong_count(p) > 1 || p.sink_count() > 0)
        });
    }
}

struct Participant {
    /// Publishers this participant receives, in slot order.
    subscriptions: Vec<String>,
    leg: Option<Arc<Leg>>,
    negotiation: Arc<tokio::sync::Mutex<()>>,
}

impl Participant {
    fn new() -> Participant {
        Participant { subscriptions: Vec::new(), leg: None, negotiation: Arc::new(tokio::sync::Mutex::new(())) }
    }
}

/// One peer connection of one participant.
pub(crate) struct Leg {
    id: u64,
    pc_id: String,
    room: String,
    participant: String,
    pc: Arc<dyn PeerConnection>,
    port: u16,
    gathered: watch::Receiver<u64>,
    closed: watch::Sender<bool>,
    st: Mutex<LegState>,
}

#[derive(Default)]
struct LegState {
    connected: bool,
    closing: bool,
    /// A `Disconnected` event was sent since the last `Connected`.
    reported_down: bool,
    negotiated: bool,
    negotiating: bool,
    /// Audio+video pairs offered in the last offer.
    slot_count: usize,
    slots: Vec<Slot>,
    watchdog_epoch: u64,
}

/// Receive slot `i`: the `i`-th audio and `i`-th video m-line of the client's offer.
#[derive(Default)]
struct Slot {
    /// Participant forwarded on this slot (its label is the msid stream id).
    publisher: Option<String>,
    /// `[audio, video]` once negotiated; empty while free or reserved.
    outputs: Vec<Arc<Output>>,
    /// Outputs negotiated and their payload types known.
    ready: bool,
    /// Registered with the publishers (only while the connection is connected).
    attached: bool,
    /// No longer subscribed: forwarding stopped, tracks removed at the next offer.
    stale: bool,
}

impl Slot {
    fn is_free(&self) -> bool {
        self.publisher.is_none() && self.outputs.is_empty() && !self.stale
    }

    fn detach(&mut self) {
        for o in &self.outputs {
            o.detach();
        }
        self.attached = false;
    }
}

impl LegState {
    fn attach_ready(&mut self) {
        for slot in &mut self.slots {
            if slot.ready && !slot.stale && !slot.attached && slot.outputs.len() == 2 {
                for o in &slot.outputs {
                    o.attach();
                }
                slot.attached = true;
            }
        }
    }

    fn detach_all(&mut self) {
        for slot in &mut self.slots {
            slot.detach();
        }
    }

    /// Marks slots whose publisher is no longer subscribed (and revives re-subscribed ones).
    fn apply_subscriptions(&mut self, subs: &[String]) {
        let connected = self.connected;
        for slot in &mut self.slots {
            let Some(p) = &slot.publisher else { continue };
            let wanted = subs.contains(p);
            if !wanted && !slot.stale {
                slot.stale = true;
                slot.detach();
            } else if wanted && slot.stale && !slot.outputs.is_empty() {
                slot.stale = false;
            }
        }
        if connected {
            self.attach_ready();
        }
    }

    /// `Some(recv_slots)` when the client must offer again.
    fn renegotiation_need(&self, subs: &[String]) -> Option<usize> {
        let assigned: HashSet<&str> =
            self.slots.iter().filter(|s| !s.stale).filter_map(|s| s.publisher.as_deref()).collect();
        let unassigned = subs.iter().filter(|s| !assigned.contains(s.as_str())).count();
        let stale = self.slots.iter().filter(|s| s.stale).count();
        if unassigned == 0 && stale == 0 {
            return None;
        }
        let held = self.slots.iter().filter(|s| s.publisher.is_some() || s.stale).count();
        Some(self.slot_count.max(held + unassigned).max(1))
    }
}

impl Drop for Leg {
    fn drop(&mut self) {
        // Normally closed through `close_leg`; this covers an `Sfu` dropped with live legs.
        if !*self.closed.borrow()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let pc = self.pc.clone();
            rt.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

/// Ports of the configured range handed to peer connections.
struct PortPool {
    min: u16,
    max: u16,
    next: u16,
    used: HashSet<u16>,
}

impl PortPool {
    fn new(min: u16, max: u16) -> PortPool {
        let (min, max) = if min <= max { (min, max) } else { (max, min) };
        let min = if max > 0 { min.max(1) } else { 0 };
        PortPool { min, max, next: min, used: HashSet::new() }
    }

    fn ephemeral(&self) -> bool {
        self.max == 0
    }

    fn size(&self) -> usize {
        if self.ephemeral() { 1 } else { usize::from(self.max - self.min) + 1 }
    }

    /// A port not held by another connection of this server (0 = ephemeral).
    fn take(&mut self) -> Option<u16> {
        if self.ephemeral() {
            return Some(0);
        }
        for _ in 0..self.size() {
            let p = self.next;
            self.next = if p >= self.max { self.min } else { p + 1 };
            if self.used.insert(p) {
                return Some(p);
            }
        }
        None
    }

    fn release(&mut self, port: u16) {
        if port != 0 {
            self.used.remove(&port);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn check_id(value: &str, what: &'static str) -> Result<(), MediaError> {
    if value.is_empty() || value.len() > MAX_ID_LEN || value.chars().any(char::is_whitespace) {
        return Err(MediaError::InvalidArgument(what));
    }
    Ok(())
}

fn normalize_subscriptions(me: &str, publishers: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    publishers.into_iter().filter(|p| p != me && !p.is_empty() && seen.insert(p.clone())).collect()
}

/// Reservation of one peer connection against `max_peer_connections`; released on drop
/// unless handed over to a leg.
struct PcPermit<'a> {
    sfu: &'a SfuInner,
    port: Option<u16>,
    armed: bool,
}

impl Drop for PcPermit<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.sfu.live_pcs.fetch_sub(1, Ordering::AcqRel);
            if let Some(p) = self.port {
                lock(&self.sfu.ports).release(p);
            }
        }
    }
}

impl Sfu {
    /// Creates the media plane and the receiver of its events (bounded; keep draining it).
    pub fn new(cfg: MediaConfig) -> (Sfu, mpsc::Receiver<MediaEvent>) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let ports = PortPool::new(cfg.udp_port_min, cfg.udp_port_max);
        let inner = Arc::new(SfuInner {
            cfg,
            events: tx,
            state: Mutex::new(State::default()),
            live_pcs: AtomicUsize::new(0),
            counters: Arc::new(Counters::default()),
            ports: Mutex::new(ports),
            next_id: AtomicU64::new(1),
        });
        (Sfu { inner }, rx)
    }

    /// The configuration in effect.
    pub fn config(&self) -> &MediaConfig {
        &self.inner.cfg
    }

    /// STUN/TURN URLs to hand to clients.
    pub fn ice_servers(&self) -> &[String] {
        &self.inner.cfg.ice_servers
    }

    /// Answers an SDP offer from `participant` in `room`.
    ///
    /// The same `pc_id` as the participant's current connection is a renegotiation or ICE
    /// restart of that connection; a different one replaces it (the old one is closed).
    /// Non-trickle: the answer holds every server candidate.
    pub async fn handle_offer(
        &self,
        room: &str,
        participant: &str,
        pc_id: &str,
        offer_sdp: &str,
    ) -> Result<String, MediaError> {
        self.inner.handle_offer(room, participant, pc_id, offer_sdp).await
    }

    /// Sets whom `participant` receives, in order (1-to-1: each receives the other; group:
    /// the dispatcher receives every kiosk, each kiosk the dispatcher). Forwarding of dropped
    /// publishers stops at once; new ones need a (re)negotiation, announced by
    /// [`MediaEvent::NeedsRenegotiation`] when the connection lacks slots.
    pub fn set_subscriptions(&self, room: &str, participant: &str, publishers: Vec<String>) {
        self.inner.set_subscriptions(room, participant, publishers);
    }

    /// Closes the participant's connection and forgets it (no `Disconnected` event).
    pub async fn remove_participant(&self, room: &str, participant: &str) {
        self.inner.remove_participant(room, participant).await;
    }

    /// Records every participant of `room` into `sink` from now on (until the room is closed
    /// or emptied, or [`Sfu::stop_recording`]), with the default [`RecordingConfig`]. Off by
    /// default. Calling it again while the room records changes nothing.
    pub fn set_recording(&self, room: &str, sink: Arc<dyn RecordingSink>) {
        self.set_recording_with(room, sink, RecordingConfig::default());
    }

    /// [`Sfu::set_recording`] with a configuration.
    pub fn set_recording_with(&self, room: &str, sink: Arc<dyn RecordingSink>, cfg: RecordingConfig) {
        if check_id(room, "room").is_err() {
            warn!(%room, "recording ignored: bad room id");
            return;
        }
        let mut state = lock(&self.inner.state);
        let r = state.rooms.entry(room.to_owned()).or_default();
        if r.recording.is_some() {
            return;
        }
        let mut rec = RoomRecording { sink, cfg, taps: HashMap::new() };
        for (label, pubs) in &r.publishers {
            let tap = rec.tap(room, label);
            for p in pubs {
                p.set_recorder(Some(tap.clone()));
            }
            pubs[1].request_keyframe(true);
        }
        info!(%room, "recording on");
        r.recording = Some(rec);
    }

    /// Ends the recordings of `room` (each participant's last segment, archive copy and
    /// manifest follow through the sink); the call goes on unrecorded.
    pub fn stop_recording(&self, room: &str) {
        let rec = {
            let mut state = lock(&self.inner.state);
            let Some(r) = state.rooms.get_mut(room) else {
                return;
            };
            for pubs in r.publishers.values() {
                for p in pubs {
                    p.set_recorder(None);
                }
            }
            r.recording.take()
        };
        if rec.is_some() {
            info!(%room, "recording off");
        }
        drop(rec);
    }

    /// Whether `room` records.
    pub fn is_recording(&self, room: &str) -> bool {
        lock(&self.inner.state).rooms.get(room).is_some_and(|r| r.recording.is_some())
    }

    /// Asks `participant`'s browser for a video keyframe (rate-limited).
    pub fn request_keyframe(&self, room: &str, participant: &str) {
        let state = lock(&self.inner.state);
        if let Some(pubs) = state.rooms.get(room).and_then(|r| r.publishers.get(participant)) {
            pubs[1].request_keyframe(true);
        }
    }

    /// Closes every connection of the room and forgets it (its recordings end).
    pub async fn close_room(&self, room: &str) {
        let legs: Vec<Arc<Leg>> = {
            let mut state = lock(&self.inner.state);
            let Some(mut r) = state.rooms.remove(room) else {
                return;
            };
            drop(r.recording.take());
            r.participants.drain().filter_map(|(_, p)| p.leg).collect()
        };
        info!(%room, connections = legs.len(), "room closed");
        for leg in legs {
            self.inner.close_leg(leg, "room closed", false).await;
        }
    }

    /// Closes every room.
    pub async fn shutdown(&self) {
        let rooms: Vec<String> = lock(&self.inner.state).rooms.keys().cloned().collect();
        for room in rooms {
            self.close_room(&room).await;
        }
    }

    /// Counters.
    pub fn stats(&self) -> MediaStats {
        let rooms = lock(&self.inner.state).rooms.len() as u64;
        MediaStats {
            peer_connections: self.inner.live_pcs.load(Ordering::Acquire) as u64,
            rooms,
            forwarded_packets: self.inner.counters.packets.load(Ordering::Relaxed),
            forwarded_bytes: self.inner.counters.bytes.load(Ordering::Relaxed),
        }
    }
}

impl SfuInner {
    fn emit(&self, event: MediaEvent) {
        debug!(?event, "media event");
        if let Err(e) = self.events.try_send(event) {
            warn!(error = %e, "media event dropped (receiver full or gone)");
        }
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn participant_negotiation(&self, room: &str, participant: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut state = lock(&self.state);
        state
            .rooms
            .entry(room.to_owned())
            .or_default()
            .participants
            .entry(participant.to_owned())
            .or_insert_with(Participant::new)
            .negotiation
            .clone()
    }

    /// Whether `participant` still exists with the same negotiation lock (not removed meanwhile).
    fn still_there(state: &State, room: &str, participant: &str, negotiation: &Arc<tokio::sync::Mutex<()>>) -> bool {
        state
            .rooms
            .get(room)
            .and_then(|r| r.participants.get(participant))
            .is_some_and(|p| Arc::ptr_eq(&p.negotiation, negotiation))
    }

    async fn handle_offer(
        self: &Arc<Self>,
        room: &str,
        participant: &str,
        pc_id: &str,
        offer_sdp: &str,
    ) -> Result<String, MediaError> {
        check_id(room, "room")?;
        check_id(participant, "participant")?;
        check_id(pc_id, "pc_id")?;
        let (offer, shape) = parse_offer(offer_sdp).inspect_err(|e| {
            info!(%room, %participant, %pc_id, error = %e, "offer rejected");
        })?;
        debug!(%room, %participant, %pc_id, sdp = %offer_sdp, "offer");

        let negotiation = self.participant_negotiation(room, participant);
        let _serial = negotiation.lock().await;

        let (current, replaced) = {
            let mut state = lock(&self.state);
            if !Self::still_there(&state, room, participant, &negotiation) {
                return Err(MediaError::Closed);
            }
            let p = state
                .rooms
                .get_mut(room)
                .and_then(|r| r.participants.get_mut(participant))
                .ok_or(MediaError::Closed)?;
            match &p.leg {
                Some(l) if l.pc_id == pc_id && !lock(&l.st).closing => (Some(l.clone()), None),
                _ => (None, p.leg.take()),
            }
        };
        if let Some(old) = replaced {
            info!(%room, %participant, old_pc_id = %old.pc_id, new_pc_id = %pc_id, "connection replaced");
            self.close_leg(old, "replaced", false).await;
        }
        let (leg, is_new) = match current {
            Some(l) => (l, false),
            None => (self.create_leg(room, participant, pc_id, &negotiation).await?, true),
        };
        match self.negotiate(&leg, offer, shape).await {
            Ok(answer) => {
                debug!(%room, %participant, %pc_id, sdp = %answer, "answer");
                Ok(answer)
            }
            Err(e) => {
                warn!(%room, %participant, %pc_id, error = %e, "negotiation failed");
                lock(&leg.st).negotiating = false;
                if is_new {
                    self.close_leg(leg, "negotiation failed", false).await;
                }
                Err(e)
            }
        }
    }

    async fn create_leg(
        self: &Arc<Self>,
        room: &str,
        participant: &str,
        pc_id: &str,
        negotiation: &Arc<tokio::sync::Mutex<()>>,
    ) -> Result<Arc<Leg>, MediaError> {
        let max = self.cfg.max_peer_connections;
        if self.live_pcs.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).is_err() {
            warn!(%room, %participant, limit = max, "peer connection limit reached");
            return Err(MediaError::TooManyPeerConnections(max));
        }
        let mut permit = PcPermit { sfu: self, port: None, armed: true };
        let id = self.next_id();
        let (gathered_tx, gathered_rx) = watch::channel(0u64);
        let handler = Arc::new(LegHandler {
            owner: Arc::<Self>::downgrade(self),
            leg_id: id,
            room: room.to_owned(),
            participant: participant.to_owned(),
            gathered: gathered_tx,
        });
        let attempts = lock(&self.ports).size().min(MAX_BIND_ATTEMPTS);
        let mut built = None;
        let mut last_error = None;
        for _ in 0..attempts {
            let Some(port) = lock(&self.ports).take() else {
                break;
            };
            permit.port = Some(port);
            match build_peer_connection(self.cfg.bind_ip, port, handler.clone()).await {
                Ok(pc) => {
                    built = Some((pc, port));
                    break;
                }
                Err(e) => {
                    debug!(port, error = %e, "peer connection not built");
                    lock(&self.ports).release(port);
                    permit.port = None;
                    last_error = Some(e);
                }
            }
        }
        let Some((pc, port)) = built else {
            return Err(match last_error {
                Some(e) if lock(&self.ports).ephemeral() => MediaError::Webrtc(e),
                _ => MediaError::NoPortAvailable,
            });
        };
        let leg = Arc::new(Leg {
            id,
            pc_id: pc_id.to_owned(),
            room: room.to_owned(),
            participant: participant.to_owned(),
            pc,
            port,
            gathered: gathered_rx,
            closed: watch::channel(false).0,
            st: Mutex::new(LegState::default()),
        });
        permit.armed = false; // from here on `close_leg` releases the connection and its port
        let inserted = {
            let mut state = lock(&self.state);
            let there = Self::still_there(&state, room, participant, negotiation);
            match state.rooms.get_mut(room).and_then(|r| r.participants.get_mut(participant)) {
                Some(p) if there => {
                    p.leg = Some(leg.clone());
                    true
                }
                _ => false,
            }
        };
        if !inserted {
            self.close_leg(leg, "participant removed", false).await;
            return Err(MediaError::Closed);
        }
        info!(%room, %participant, %pc_id, leg = id, port, "connection created");
        self.arm_watchdog(&leg);
        Ok(leg)
    }

    async fn negotiate(
        self: &Arc<Self>,
        leg: &Arc<Leg>,
        offer: RTCSessionDescription,
        shape: OfferShape,
    ) -> Result<String, MediaError> {
        lock(&leg.st).negotiating = true;
        leg.pc.set_remote_description(offer).await.map_err(|e| MediaError::InvalidOffer(e.to_string()))?;

        // Plan: reserve free slots for unassigned subscriptions, collect stale slots.
        let mut adds: Vec<(usize, String, [Arc<Publisher>; 2])> = Vec::new();
        let mut removals: Vec<(usize, Vec<Arc<Output>>)> = Vec::new();
        {
            let mut state = lock(&self.state);
            let room = state.rooms.get_mut(&leg.room).ok_or(MediaError::Closed)?;
            let subs = room.participants.get(&leg.participant).map(|p| p.subscriptions.clone()).unwrap_or_default();
            let mut st = lock(&leg.st);
            if st.closing {
                return Err(MediaError::Closed);
            }
            st.slot_count = shape.slots();
            let slot_count = st.slot_count;
            while st.slots.len() < slot_count {
                st.slots.push(Slot::default());
            }
            st.apply_subscriptions(&subs);
            for (i, slot) in st.slots.iter_mut().enumerate() {
                if slot.stale {
                    slot.detach();
                    removals.push((i, std::mem::take(&mut slot.outputs)));
                }
            }
            let assigned: HashSet<String> =
                st.slots.iter().filter(|s| !s.stale).filter_map(|s| s.publisher.clone()).collect();
            for sub in subs.iter().filter(|s| !assigned.contains(*s)) {
                // Lowest free slot: webrtc's add_track takes the first sender-less
                // transceiver of the kind, which is exactly this slot.
                let Some(i) = (0..slot_count).find(|&i| st.slots[i].is_free()) else {
                    break;
                };
                st.slots[i].publisher = Some(sub.clone());
                adds.push((i, sub.clone(), room.publishers(&leg.room, sub)));
            }
        }

        // New tracks first (into slots free before this offer), then release stale slots:
        // a slot released now is reused only from the next offer on, so the browser sees the
        // old stream end before a new one starts on that transceiver.
        for (i, label, pubs) in adds {
            let mut outputs = Vec::with_capacity(2);
            for publisher in pubs {
                match self.make_output(leg, &label, publisher).await {
                    Ok(o) => outputs.push(Arc::new(o)),
                    Err(e) => {
                        warn!(room = %leg.room, participant = %leg.participant, publisher = %label,
                            error = %e, "track not added");
                        break;
                    }
                }
            }
            if outputs.len() != 2 {
                for o in outputs {
                    let _ = leg.pc.remove_track(&o.sender).await;
                }
                let mut st = lock(&leg.st);
                if let Some(slot) = st.slots.get_mut(i) {
                    *slot = Slot::default();
                }
                continue;
            }
            debug!(room = %leg.room, participant = %leg.participant, slot = i, publisher = %label,
                "slot assigned");
            let mut st = lock(&leg.st);
            if let Some(slot) = st.slots.get_mut(i) {
                slot.outputs = outputs;
                slot.ready = false;
                slot.attached = false;
            }
        }
        for (i, outputs) in removals {
            for o in &outputs {
                o.detach();
                if let Err(e) = leg.pc.remove_track(&o.sender).await {
                    debug!(error = %e, "remove_track failed");
                }
            }
            debug!(room = %leg.room, participant = %leg.participant, slot = i, "slot released");
            let mut st = lock(&leg.st);
            if let Some(slot) = st.slots.get_mut(i) {
                *slot = Slot::default();
            }
        }

        prefer_vp8(leg).await;
        let answer = leg.pc.create_answer(None).await?;
        let before = *leg.gathered.borrow();
        leg.pc.set_local_description(answer).await?;
        let mut gathered = leg.gathered.clone();
        if tokio::time::timeout(GATHER_TIMEOUT, gathered.wait_for(|n| *n > before)).await.is_err() {
            warn!(room = %leg.room, participant = %leg.participant, "ICE gathering did not complete in time; answering with what there is");
        }
        let local = leg.pc.local_description().await.ok_or(MediaError::Closed)?;

        // Payload types negotiated on this connection, per output.
        let outputs: Vec<Arc<Output>> = lock(&leg.st).slots.iter().flat_map(|s| s.outputs.iter().cloned()).collect();
        for o in &outputs {
            match o.sender.get_parameters().await {
                Ok(p) => o.set_codecs(p.rtp_parameters.codecs.iter().map(Codec::from_parameters).collect()),
                Err(e) => warn!(error = %e, "sender parameters unavailable"),
            }
        }

        let need = {
            let state = lock(&self.state);
            let subs = state
                .rooms
                .get(&leg.room)
                .and_then(|r| r.participants.get(&leg.participant))
                .map(|p| p.subscriptions.clone())
                .unwrap_or_default();
            let mut st = lock(&leg.st);
            if st.closing {
                return Err(MediaError::Closed);
            }
            for slot in &mut st.slots {
                if slot.outputs.len() == 2 {
                    slot.ready = true;
                }
            }
            st.negotiated = true;
            st.negotiating = false;
            st.apply_subscriptions(&subs);
            let need = st.renegotiation_need(&subs);
            info!(room = %leg.room, participant = %leg.participant, pc_id = %leg.pc_id,
                slots = st.slot_count,
                assigned = st.slots.iter().filter(|s| s.publisher.is_some()).count(),
                connected = st.connected, "answered");
            need
        };
        if let Some(recv_slots) = need {
            self.emit(MediaEvent::NeedsRenegotiation {
                room: leg.room.clone(),
                participant: leg.participant.clone(),
                recv_slots,
            });
        }
        Ok(announce_candidates(&local.sdp, &self.cfg.announced_ips))
    }

    async fn make_output(&self, leg: &Arc<Leg>, label: &str, publisher: Arc<Publisher>) -> Result<Output, MediaError> {
        let id = self.next_id();
        let ssrc = rand::random::<u32>();
        let kind = publisher.kind;
        let short = if kind == RtpCodecKind::Audio { "a" } else { "v" };
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            label.to_owned(),
            format!("cn{id}{short}"),
            kind.to_string(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() },
                ..Default::default()
            }],
        )));
        let sender = leg.pc.add_track(track.clone()).await?;
        Ok(Output::spawn(id, publisher, track, sender, ssrc, leg.closed.subscribe(), self.counters.clone()))
    }

    fn set_subscriptions(&self, room: &str, participant: &str, publishers: Vec<String>) {
        if check_id(room, "room").is_err() || check_id(participant, "participant").is_err() {
            warn!(%room, %participant, "subscriptions ignored: bad identifiers");
            return;
        }
        let subs = normalize_subscriptions(participant, publishers);
        let need = {
            let mut state = lock(&self.state);
            let r = state.rooms.entry(room.to_owned()).or_default();
            let p = r.participants.entry(participant.to_owned()).or_insert_with(Participant::new);
            debug!(%room, %participant, subscriptions = ?subs, "subscriptions");
            p.subscriptions = subs.clone();
            let need = p.leg.as_ref().and_then(|leg| {
                let mut st = lock(&leg.st);
                st.apply_subscriptions(&subs);
                (!st.closing && st.negotiated && !st.negotiating).then(|| st.renegotiation_need(&subs)).flatten()
            });
            r.collect_publishers();
            need
        };
        if let Some(recv_slots) = need {
            self.emit(MediaEvent::NeedsRenegotiation {
                room: room.to_owned(),
                participant: participant.to_owned(),
                recv_slots,
            });
        }
    }

    async fn remove_participant(&self, room: &str, participant: &str) {
        let leg = {
            let mut state = lock(&self.state);
            let Some(r) = state.rooms.get_mut(room) else {
                return;
            };
            let leg = r.participants.remove(participant).and_then(|p| p.leg);
            r.collect_publishers();
            if r.participants.is_empty() {
                state.rooms.remove(room);
            }
            leg
        };
        info!(%room, %participant, "participant removed");
        if let Some(leg) = leg {
            self.close_leg(leg, "participant removed", false).await;
        }
    }

    /// Closes a connection once; `report` sends `Disconnected` (failures only).
    async fn close_leg(&self, leg: Arc<Leg>, reason: &str, report: bool) {
        let report = {
            let mut st = lock(&leg.st);
            if st.closing {
                return;
            }
            st.closing = true;
            st.connected = false;
            st.detach_all();
            let report = report && !st.reported_down;
            st.reported_down |= report;
            report
        };
        let _ = leg.closed.send(true);
        {
            let mut state = lock(&self.state);
            if let Some(r) = state.rooms.get_mut(&leg.room) {
                if let Some(p) = r.participants.get_mut(&leg.participant)
                    && p.leg.as_ref().is_some_and(|l| l.id == leg.id)
                {
                    p.leg = None;
                }
                if let Some(pubs) = r.publishers.get(&leg.participant) {
                    for p in pubs {
                        p.clear_source_of_leg(leg.id);
                    }
                }
            }
        }
        if report {
            self.emit(MediaEvent::Disconnected { room: leg.room.clone(), participant: leg.participant.clone() });
        }
        if let Err(e) = leg.pc.close().await {
            debug!(error = %e, "close failed");
        }
        // Drop the outputs: their writer tasks end, their tracks are freed.
        let outputs: Vec<Vec<Arc<Output>>> = lock(&leg.st).slots.drain(..).map(|s| s.outputs).collect();
        drop(outputs);
        {
            let mut state = lock(&self.state);
            if let Some(r) = state.rooms.get_mut(&leg.room) {
                r.collect_publishers();
            }
        }
        lock(&self.ports).release(leg.port);
        self.live_pcs.fetch_sub(1, Ordering::AcqRel);
        info!(room = %leg.room, participant = %leg.participant, pc_id = %leg.pc_id, leg = leg.id,
            reason, "connection closed");
    }

    /// The participant's current connection, if it is `leg_id`.
    fn current_leg(&self, room: &str, participant: &str, leg_id: u64) -> Option<Arc<Leg>> {
        let state = lock(&self.state);
        state.rooms.get(room)?.participants.get(participant)?.leg.as_ref().filter(|l| l.id == leg_id).cloned()
    }

    /// Closes `leg` unless it connects within `connect_timeout`.
    fn arm_watchdog(self: &Arc<Self>, leg: &Arc<Leg>) {
        let epoch = {
            let mut st = lock(&leg.st);
            st.watchdog_epoch += 1;
            st.watchdog_epoch
        };
        let sfu = Arc::downgrade(self);
        let weak_leg = Arc::downgrade(leg);
        let mut closed = leg.closed.subscribe();
        let timeout = self.cfg.connect_timeout;
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(timeout) => {}
                _ = closed.wait_for(|c| *c) => return,
            }
            let (Some(sfu), Some(leg)) = (sfu.upgrade(), weak_leg.upgrade()) else {
                return;
            };
            let expired = {
                let st = lock(&leg.st);
                !st.closing && !st.connected && st.watchdog_epoch == epoch
            };
            if expired {
                warn!(room = %leg.room, participant = %leg.participant, pc_id = %leg.pc_id,
                    "connection did not connect in time");
                sfu.close_leg(leg, "connect timeout", true).await;
            }
        });
    }
}

#[async_trait::async_trait]
impl LegEvents for SfuInner {
    /// Connection state of a leg changed (called on the connection's driver: no waiting here).
    fn state_changed(self: Arc<Self>, leg_id: u64, room: &str, participant: &str, state: RTCPeerConnectionState) {
        let Some(leg) = self.current_leg(room, participant, leg_id) else {
            debug!(%room, %participant, leg = leg_id, %state, "state of a former connection");
            return;
        };
        match state {
            RTCPeerConnectionState::Connected => {
                let newly = {
                    let mut st = lock(&leg.st);
                    if st.closing {
                        return;
                    }
                    let newly = !st.connected;
                    st.connected = true;
                    st.reported_down = false;
                    st.attach_ready();
                    newly
                };
                if newly {
                    info!(%room, %participant, pc_id = %leg.pc_id, "connected");
                    self.emit(MediaEvent::Connected { room: room.to_owned(), participant: participant.to_owned() });
                }
            }
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                let report = {
                    let mut st = lock(&leg.st);
                    if st.closing {
                        return;
                    }
                    st.connected = false;
                    st.detach_all();
                    let report = !st.reported_down;
                    st.reported_down = true;
                    report
                };
                warn!(%room, %participant, pc_id = %leg.pc_id, %state, "connection lost");
                if report {
                    self.emit(MediaEvent::Disconnected { room: room.to_owned(), participant: participant.to_owned() });
                }
                if state == RTCPeerConnectionState::Closed {
                    let sfu = self.clone();
                    tokio::spawn(async move { sfu.close_leg(leg, "closed by peer", false).await });
                } else {
                    // Room for an ICE restart on the same connection.
                    self.arm_watchdog(&leg);
                }
            }
            other => debug!(%room, %participant, pc_id = %leg.pc_id, state = %other, "connection state"),
        }
    }

    /// A remote track started on a leg: feed the participant's publisher with it.
    async fn track_started(self: Arc<Self>, leg_id: u64, room: &str, participant: &str, track: Arc<dyn TrackRemote>) {
        let kind = track.kind().await;
        let k = match kind {
            RtpCodecKind::Audio => 0,
            RtpCodecKind::Video => 1,
            _ => return,
        };
        let Some(leg) = self.current_leg(room, participant, leg_id) else {
            return;
        };
        let codecs = receive_codecs(&leg.pc, &track, kind).await;
        let publisher = {
            let mut state = lock(&self.state);
            let Some(r) = state.rooms.get_mut(room) else {
                return;
            };
            r.publishers(room, participant)[k].clone()
        };
        info!(%room, %participant, %kind, "receiving");
        // Do not keep the SFU alive for the life of the track.
        drop(leg);
        drop(self);
        run_reader(publisher, leg_id, track, codecs).await;
    }
}

/// Puts VP8 first in the answer's video codec lists (the answer follows the offer's order
/// otherwise; the browser sends with the first codec of the answer it supports).
async fn prefer_vp8(leg: &Leg) {
    for t in leg.pc.get_transceivers().await {
        let Ok(Some(sender)) = t.sender().await else {
            continue;
        };
        if sender.track().kind().await != RtpCodecKind::Video {
            continue;
        }
        let Ok(params) = sender.get_parameters().await else {
            continue;
        };
        let mut codecs = params.rtp_parameters.codecs;
        let Some(pos) = codecs.iter().position(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_VP8)) else {
            continue;
        };
        if pos == 0 {
            continue;
        }
        let vp8 = codecs.remove(pos);
        codecs.insert(0, vp8);
        if let Err(e) = t.set_codec_preferences(codecs).await {
            debug!(room = %leg.room, participant = %leg.participant, error = %e,
                "codec preferences not applied");
        }
    }
}

/// Codecs (with this connection's payload types) `track` may arrive with.
async fn receive_codecs(pc: &Arc<dyn PeerConnection>, track: &Arc<dyn TrackRemote>, kind: RtpCodecKind) -> Vec<Codec> {
    let receivers = pc.get_receivers().await;
    for r in &receivers {
        if std::ptr::addr_eq(Arc::as_ptr(r.track()), Arc::as_ptr(track))
            && let Ok(p) = r.get_parameters().await
            && !p.rtp_parameters.codecs.is_empty()
        {
            return p.rtp_parameters.codecs.iter().map(Codec::from_parameters).collect();
        }
    }
    // Bundled m-lines share one payload type mapping: any receiver of the kind will do.
    for r in &receivers {
        if r.track().kind().await == kind
            && let Ok(p) = r.get_parameters().await
            && !p.rtp_parameters.codecs.is_empty()
        {
            return p.rtp_parameters.codecs.iter().map(Codec::from_parameters).collect();
        }
    }
    warn!(%kind, "no negotiated codecs found for a received track");
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_pool_cycles_and_releases() {
        let mut p = PortPool::new(5000, 5002);
        assert_eq!(p.take(), Some(5000));
        assert_eq!(p.take(), Some(5001));
        assert_eq!(p.take(), Some(5002));
        assert_eq!(p.take(), None);
        p.release(5001);
        assert_eq!(p.take(), Some(5001));
        let mut e = PortPool::new(0, 0);
        assert!(e.ephemeral());
        assert_eq!(e.take(), Some(0));
        assert_eq!(e.take(), Some(0));
    }

    #[test]
    fn renegotiation_need_counts_slots() {
        let subs: Vec<String> = vec!["k1".into(), "k2".into(), "k3".into()];
        let mut st = LegState {
            slot_count: 1,
            slots: vec![Slot { publisher: Some("k1".into()), ..Slot::default() }],
            ..LegState::default()
        };
        assert_eq!(st.renegotiation_need(&subs), Some(3));
        st.slot_count = 3;
        st.slots.push(Slot { publisher: Some("k2".into()), ..Slot::default() });
        st.slots.push(Slot { publisher: Some("k3".into()), ..Slot::default() });
        assert_eq!(st.renegotiation_need(&subs), None);
        // k2 leaves, k4 joins: k2's slot must be released first, k4 needs a slot.
        let subs: Vec<String> = vec!["k1".into(), "k3".into(), "k4".into()];
        st.apply_subscriptions(&subs);
        assert!(st.slots[1].stale);
        assert_eq!(st.renegotiation_need(&subs), Some(4));
    }

    #[test]
    fn subscriptions_are_normalized() {
        assert_eq!(
            normalize_subscriptions("me", vec!["a".into(), "me".into(), "a".into(), "b".into(), String::new()]),
            vec!["a".to_string(), "b".to_string()]
        );
    }
}
