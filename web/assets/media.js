// @ts-check
// Media for one room ("call:ID" or "group:ID"), as docs/protocol.md says:
// - the browser always offers, the server answers; non-trickle: the offer is sent only when ICE
//   gathering is complete, and the answer carries all server candidates;
// - one sendrecv audio + one sendrecv video transceiver carry the camera and microphone (and the
//   first incoming stream); `media.renegotiate` asks for recvonly audio+video pairs up to
//   `recv_slots` pairs in all (the sendrecv pair counts as one), then a new offer;
// - `pc_id` is random per RTCPeerConnection: the same pc_id again is a renegotiation or ICE
//   restart, a new one replaces the connection (used after a WebSocket reconnect);
// - ICE `failed`, or `disconnected` for a few seconds: ICE restart with the same pc_id;
// - a network change (back `online`, or `navigator.connection` says the link changed: Wi-Fi to
//   4G) restarts ICE at once, before the old path is found dead;
// - incoming streams are grouped by MediaStream.id, which is the sender's label
//   (`kiosk:ID`, `staff:ID`).

const ICE_GATHER_LIMIT_MS = 5_000;
const ANSWER_LIMIT_MS = 15_000;
const DISCONNECTED_GRACE_MS = 4_000;
const MIN_RESTART_GAP_MS = 5_000;
const RENEW_DELAYS_MS = [2_000, 4_000, 8_000, 10_000];

function newPcId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return 'pc-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Camera and microphone, falling back to whatever is there.
 * Resolves to {stream, problem}: stream may be null; problem is plain words for the user or ''.
 */
export async function getLocalStream() {
  if (!navigator.mediaDevices?.getUserMedia) {
    return { stream: null, problem: '这个页面要用 https 地址打开,才能使用摄像头和麦克风' };
  }
  const video = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15, max: 30 } };
  /** @type {[MediaStreamConstraints, string][]} */
  const attempts = [
    [{ audio: true, video }, ''],
    [{ audio: true }, '没有找到摄像头,对方只能听到声音'],
    [{ video }, '没有找到麦克风,对方只能看到画面'],
  ];
  let lastError = null;
  for (const [constraints, problem] of attempts) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(constraints);
      return { stream, problem };
    } catch (err) {
      lastError = err;
    }
  }
  const denied = lastError?.name === 'NotAllowedError';
  return {
    stream: null,
    problem: denied ? '摄像头和麦克风没有被允许使用,请在浏览器里允许后刷新页面' : '没有找到摄像头和麦克风',
  };
}

export function stopStream(stream) {
  for (const track of stream?.getTracks() ?? []) track.stop();
}

/** Show a stream in a <video> element (or clear it with null). */
export function attachStream(video, stream) {
  if (!video) return;
  if (video.srcObject !== stream) video.srcObject = stream;
  if (!stream) return;
  video.play().catch((err) => {
    if (err?.name !== 'NotAllowedError' || video.muted) return;
    // The browser refuses sound before the first click on the page: play muted, and let a
    // click on the video (or anywhere) turn the sound on.
    video.muted = true;
    video.play().catch(() => {});
    const unmute = () => {
      video.muted = false;
      removeEventListener('pointerdown', unmute, true);
    };
    addEventListener('pointerdown', unmute, true);
  });
}

function waitIceGatheringComplete(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === 'complete') done();
    };
    // Without STUN/TURN answers gathering can hang on some networks; send what we have.
    const timer = setTimeout(done, ICE_GATHER_LIMIT_MS);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

export class MediaSession {
  /**
   * @param {object} o
   * @param {import('./ws.js').Signal} o.signal
   * @param {string} o.room                  "call:ID" or "group:ID"
   * @param {RTCIceServer[]} [o.iceServers]  from `welcome.ice_servers`
   * @param {MediaStream|null} o.localStream camera/microphone (owned by the caller)
   * @param {(streams: Map<string, MediaStream>) => void} [o.onRemoteStreams] label → stream, on every change
   * @param {(state: string) => void} [o.onState] 'connecting' | 'connected' | 'reconnecting' | 'failed'
   * @param {(req: number) => void} [o.onOffer] each media.offer's request number, as it is sent
   */
  constructor({ signal, room, iceServers = [], localStream, onRemoteStreams, onState, onOffer }) {
    this.signal = signal;
    this.room = room;
    this.iceServers = iceServers;
    this.localStream = localStream;
    this.onRemoteStreams = onRemoteStreams ?? (() => {});
    this.onState = onState ?? (() => {});
    this.onOffer = onOffer ?? (() => {});
    this.pc = null;
    this.pcId = null;
    this.recvSlots = 1;
    this.remote = new Map();
    this.closed = false;
    this.chain = Promise.resolve();
    this.pending = null;
    this.disconnectTimer = null;
    this.lastRestartAt = 0;
    this.renewAttempt = 0;
    this.renewTimer = null;
    const networkChanged = () => this.networkChanged();
    const connection = /** @type {any} */ (navigator).connection;
    addEventListener('online', networkChanged);
    connection?.addEventListener?.('change', networkChanged);
    this.unsubscribe = [
      () => removeEventListener('online', networkChanged),
      () => connection?.removeEventListener?.('change', networkChanged),
      signal.on('media.answer', (msg) => this.answerArrived(msg)),
      signal.on('media.renegotiate', (msg) => this.renegotiate(msg)),
      signal.on('error', (msg) => this.errorArrived(msg)),
      signal.on('ws.closed', () => this.failPending(new Error('WebSocket closed'))),
      // Back after a WebSocket reconnect into a live room: a fresh connection (new pc_id).
      signal.on('welcome', (msg) => {
        if (Array.isArray(msg.ice_servers)) this.iceServers = msg.ice_servers;
        if (this.pc) this.renew();
      }),
    ];
  }

  /** Make the first RTCPeerConnection and offer it. */
  start() {
    this.renew();
  }

  /**
   * A new RTCPeerConnection with a new pc_id (replaces the old one on the server): the start,
   * after a WebSocket reconnect into a live room, and after a negotiation that went nowhere.
   */
  renew() {
    if (this.closed) return;
    clearTimeout(this.renewTimer);
    this.renewTimer = null;
    this.dropPeerConnection();
    this.pcId = newPcId();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: 'max-bundle' });
    this.pc = pc;
    const audio = this.localStream?.getAudioTracks()[0];
    const video = this.localStream?.getVideoTracks()[0];
    const streams = this.localStream ? [this.localStream] : [];
    pc.addTransceiver(audio ?? 'audio', { direction: 'sendrecv', streams });
    pc.addTransceiver(video ?? 'video', { direction: 'sendrecv', streams });
    this.addRecvPairs(this.recvSlots);
    pc.addEventListener('track', (event) => this.trackArrived(pc, event));
    pc.addEventListener('iceconnectionstatechange', () => this.iceStateChanged(pc));
    pc.addEventListener('connectionstatechange', () => {
      if (pc === this.pc && pc.connectionState === 'failed') this.iceRestart();
    });
    this.onState('connecting');
    this.negotiate();
  }

  /** Add recvonly audio+video pairs until the connection has `slots` receiving pairs in all. */
  addRecvPairs(slots) {
    const pc = this.pc;
    const pairs = 1 + pc.getTransceivers().filter((t) => t.direction === 'recvonly' && t.receiver.track.kind === 'video').length;
    let added = 0;
    for (let n = pairs; n < slots; n += 1) {
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
      added += 1;
    }
    return added;
  }

  renegotiate(msg) {
    if (this.closed || msg.room !== this.room) return;
    const slots = Number(msg.recv_slots) || 1;
    this.recvSlots = Math.max(this.recvSlots, slots);
    if (!this.pc) return;
    // Always offer again, even when no pair was added: the server also asks in order to
    // hand a released slot to another sender. It asks only while the connection lacks
    // what it needs, so this cannot loop.
    this.addRecvPairs(this.recvSlots);
    this.negotiate();
  }

  /** Queue one offer/answer round (rounds never overlap). */
  negotiate(options = {}) {
    this.chain = this.chain.then(async () => {
      const pc = this.pc;
      try {
        await this.offerOnce(pc, options);
      } catch (err) {
        // A round of a connection that has since been replaced or closed needs nothing more.
        if (this.closed || pc !== this.pc) return;
        console.warn('cunneng: media negotiation failed:', err?.message ?? err);
        if (err?.fatal) this.onState('failed');
        else this.scheduleRenew();
      }
    });
    return this.chain;
  }

  async offerOnce(pc, options) {
    if (this.closed || !pc || pc.signalingState === 'closed') return;
    const pcId = this.pcId;
    const offer = await pc.createOffer(options);
    await pc.setLocalDescription(offer);
    await waitIceGatheringComplete(pc);
    if (pc !== this.pc || this.closed) return;
    const req = this.signal.send({ type: 'media.offer', room: this.room, pc_id: pcId, sdp: pc.localDescription.sdp });
    if (req === null) {
      // Not connected: the 'welcome' after the reconnect brings a fresh connection.
      return;
    }
    this.onOffer(req);
    const answer = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no media.answer in time')), ANSWER_LIMIT_MS);
      this.pending = { pcId, req, resolve, reject, timer };
    });
    if (pc !== this.pc || this.closed) return;
    await pc.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
    this.renewAttempt = 0;
  }

  answerArrived(msg) {
    const pending = this.pending;
    if (!pending || msg.room !== this.room || msg.pc_id !== pending.pcId) return;
    clearTimeout(pending.timer);
    this.pending = null;
    pending.resolve(msg);
  }

  errorArrived(msg) {
    const pending = this.pending;
    if (!pending || msg.req === undefined || msg.req !== pending.req) return;
    clearTimeout(pending.timer);
    this.pending = null;
    const err = /** @type {Error & {fatal?: boolean}} */ (new Error(`server refused the offer: ${msg.code} ${msg.message ?? ''}`));
    // The room is gone or not ours: trying again cannot help.
    err.fatal = ['not_found', 'forbidden', 'bad_message'].includes(msg.code);
    pending.reject(err);
  }

  failPending(err) {
    const pending = this.pending;
    if (!pending) return;
    clearTimeout(pending.timer);
    this.pending = null;
    pending.reject(err);
  }

  scheduleRenew() {
    if (this.closed || this.renewTimer) return;
    const delay = RENEW_DELAYS_MS[Math.min(this.renewAttempt, RENEW_DELAYS_MS.length - 1)];
    this.renewAttempt += 1;
    this.onState('reconnecting');
    this.renewTimer = setTimeout(() => {
      this.renewTimer = null;
      // While the WebSocket is down, the 'welcome' after the reconnect renews.
      if (this.signal.isOpen) this.renew();
    }, delay);
  }

  iceStateChanged(pc) {
    if (pc !== this.pc || this.closed) return;
    const state = pc.iceConnectionState;
    if (state === 'connected' || state === 'completed') {
      clearTimeout(this.disconnectTimer);
      this.disconnectTimer = null;
      this.onState('connected');
    } else if (state === 'failed') {
      this.iceRestart();
    } else if (state === 'disconnected') {
      this.onState('reconnecting');
      clearTimeout(this.disconnectTimer);
      this.disconnectTimer = setTimeout(() => {
        if (pc === this.pc && ['disconnected', 'failed'].includes(pc.iceConnectionState)) this.iceRestart();
      }, DISCONNECTED_GRACE_MS);
    }
  }

  /** The device's network changed: the old path may be gone; look for a new one at once. */
  networkChanged() {
    if (this.closed || !this.pc || !navigator.onLine) return;
    this.iceRestart();
  }

  /** ICE restart on the same RTCPeerConnection and pc_id. */
  iceRestart() {
    if (this.closed || !this.pc || !this.signal.isOpen) return;
    const now = Date.now();
    if (now - this.lastRestartAt < MIN_RESTART_GAP_MS) {
      clearTimeout(this.disconnectTimer);
      this.disconnectTimer = setTimeout(() => this.iceStateChanged(this.pc), MIN_RESTART_GAP_MS);
      return;
    }
    this.lastRestartAt = now;
    this.onState('reconnecting');
    this.negotiate({ iceRestart: true });
  }

  trackArrived(pc, event) {
    if (pc !== this.pc) return;
    const stream = event.streams[0];
    if (!stream) {
      // A slot with nothing assigned yet (no msid): the stream it carries later comes with
      // its own 'track' event and stream id.
      console.warn(`cunneng: incoming ${event.track.kind} track without a stream id (no msid); not shown`);
      return;
    }
    const label = stream.id;
    if (this.remote.get(label) !== stream) {
      this.remote.set(label, stream);
      stream.addEventListener('removetrack', () => {
        if (stream.getTracks().length === 0 && this.remote.get(label) === stream) {
          this.remote.delete(label);
          this.onRemoteStreams(this.remote);
        }
      });
    }
    this.onRemoteStreams(this.remote);
  }

  dropPeerConnection() {
    clearTimeout(this.disconnectTimer);
    this.disconnectTimer = null;
    this.failPending(new Error('connection replaced'));
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
    if (this.remote.size) {
      this.remote = new Map();
      this.onRemoteStreams(this.remote);
    }
  }

  /** Hang-up: close the connection (the caller stops its own camera stream). */
  close() {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.renewTimer);
    for (const off of this.unsubscribe) off();
    this.dropPeerConnection();
  }
}

/**
 * The media of one page: its own camera and microphone (asked for once, kept between rooms,
 * released at the end) and the MediaSession of the room it is in, shown in a CallView. The
 * kiosk, window and dispatcher pages each have one.
 *
 *   const media = new CallMedia({ signal: () => signal, callView, onProblem: (text) => notify(text, 'warning') });
 *   media.ensureLocal();   // on the click that starts a call: camera and sound allowed at once
 *   media.start(room);     // answered / joined
 *   media.leaveRoom();     // transferred, requeued: the room closes, the camera stays on
 *   media.stop();          // hang-up: room, view and camera
 */
export class CallMedia {
  /**
   * @param {object} o
   * @param {() => import('./ws.js').Signal} o.signal   the page's Signal (asked for when a room starts)
   * @param {import('./callview.js').CallView} o.callView
   * @param {(problem: string) => void} [o.onProblem]  plain words about a missing camera or microphone
   * @param {(streams: Map<string, MediaStream>) => void} [o.onRemoteStreams] after the view showed them
   */
  constructor({ signal, callView, onProblem, onRemoteStreams }) {
    this.signal = signal;
    this.callView = callView;
    this.onProblem = onProblem ?? (() => {});
    this.onRemoteStreams = onRemoteStreams ?? (() => {});
    this.session = null;
    this.room = null;
    /** @type {Set<number>} the request numbers of recent media offers (their refusals are the media's) */
    this.offerReqs = new Set();
    this.localStream = null;
    this.localProblem = '';
    this.localPromise = null;
  }

  /** The current RTCPeerConnection, or null. */
  get pc() {
    return this.session?.pc ?? null;
  }

  /**
   * Was `req` one of this page's media offers? A refusal of it is the media's own business
   * (a room left meanwhile, after a reconnect): the page shows no notice for it.
   * @param {number | undefined} req
   */
  ownsRequest(req) {
    return req !== undefined && this.offerReqs.has(req);
  }

  /** Camera and microphone (once; later calls get the same promise). Resolves to the stream or null. */
  ensureLocal() {
    this.localPromise ??= getLocalStream().then(({ stream, problem }) => {
      this.localStream = stream;
      this.localProblem = problem;
      if (problem) this.onProblem(problem);
      return stream;
    });
    return this.localPromise;
  }

  /** Turn the camera and microphone off (also one still being asked for). */
  releaseLocal() {
    const pending = this.localPromise;
    this.localPromise = null;
    stopStream(this.localStream);
    this.localStream = null;
    // A camera request still under way: stop what it brings too.
    pending?.then((stream) => {
      if (this.localPromise === null) stopStream(stream);
    });
  }

  /** Join `room` ("call:ID", "group:ID") with the camera; nothing if already in it. */
  async start(room) {
    if (this.session?.room === room) return; // the session renews itself after a reconnect
    this.session?.close();
    this.session = null;
    this.room = room;
    this.callView.setMediaState('connecting');
    const stream = await this.ensureLocal();
    if (this.room !== room || this.session) return;
    this.callView.setLocal(stream);
    const signal = this.signal();
    this.session = new MediaSession({
      signal,
      room,
      onOffer: (req) => {
        this.offerReqs.add(req);
        if (this.offerReqs.size > 64) this.offerReqs.delete(this.offerReqs.values().next().value);
      },
      iceServers: signal.welcome?.ice_servers ?? [],
      localStream: stream,
      onRemoteStreams: (streams) => {
        this.callView.setRemote(streams);
        this.onRemoteStreams(streams);
      },
      onState: (s) => this.callView.setMediaState(s),
    });
    this.session.start();
  }

  /** Leave the room (its connection closes, nobody is shown), keeping the camera on. */
  leaveRoom() {
    this.session?.close();
    this.session = null;
    this.room = null;
    this.callView.setRemote(new Map());
  }

  /** Leave the room, clear the view and turn the camera off. */
  stop() {
    this.session?.close();
    this.session = null;
    this.room = null;
    this.callView.clear();
    this.releaseLocal();
  }
}
