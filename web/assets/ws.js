// @ts-check
// WebSocket client for /ws: hello with the token, reconnect with backoff (1, 2, 4, 8, 10 s),
// ping every 20 s, dispatch by message type, and keep the connection indicator up to date.

const BACKOFF_SECS = [1, 2, 4, 8, 10];
const PING_EVERY_MS = 20_000;
// No message at all (not even a pong) for this long: the socket is dead, drop it and reconnect.
const SILENCE_LIMIT_MS = 45_000;

const STATUS_TEXT = {
  connecting: '正在连接…',
  connected: '已连接',
  reconnecting: '网络中断,正在重新连接…',
  stopped: '已断开',
};

function wsUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

export class Signal {
  /**
   * @param {object} options
   * @param {string} options.token            the kiosk or staff token sent in `hello`
   * @param {HTMLElement} [options.statusElement] the `connection-status` indicator
   * @param {(msg) => void} [options.onUnauthorized] the token was refused (socket stays closed)
   * @param {(msg) => void} [options.onReplaced] the same principal connected elsewhere (socket stays closed)
   */
  constructor({ token, statusElement, onUnauthorized, onReplaced }) {
    this.token = token;
    this.statusElement = statusElement;
    this.onUnauthorized = onUnauthorized;
    this.onReplaced = onReplaced;
    this.handlers = new Map();
    this.socket = null;
    this.attempt = 0;
    this.nextReq = 1;
    this.welcomed = false;
    this.welcomeCount = 0;
    this.stopped = false;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastMessageAt = 0;
    this.welcome = null;
    addEventListener('online', () => {
      if (!this.stopped && !this.socket) this.connectNow();
    });
  }

  /** Register a handler for a message type ('*' gets every message). Returns an unsubscribe function. */
  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(handler);
    return () => this.handlers.get(type)?.delete(handler);
  }

  get isOpen() {
    return this.welcomed && this.socket?.readyState === WebSocket.OPEN;
  }

  /** True after the second and later `welcome`s: the page is resuming after a reconnect. */
  get isReconnect() {
    return this.welcomeCount > 1;
  }

  connect() {
    this.stopped = false;
    this.connectNow();
  }

  connectNow() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.socket) return;
    this.setStatus(this.welcomeCount > 0 || this.attempt > 0 ? 'reconnecting' : 'connecting');
    let socket;
    try {
      socket = new WebSocket(wsUrl());
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    this.welcomed = false;
    socket.addEventListener('open', () => {
      this.lastMessageAt = Date.now();
      socket.send(JSON.stringify({ type: 'hello', token: this.token }));
    });
    socket.addEventListener('message', (event) => this.receive(socket, event.data));
    socket.addEventListener('close', (event) => this.closed(socket, event));
    // 'error' is always followed by 'close'; nothing to do here.
  }

  receive(socket, data) {
    if (socket !== this.socket) return;
    this.lastMessageAt = Date.now();
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      console.warn('cunneng: ignoring a non-JSON message');
      return;
    }
    if (!msg || typeof msg.type !== 'string') return;
    switch (msg.type) {
      case 'welcome':
        this.welcomed = true;
        this.welcomeCount += 1;
        this.welcome = msg;
        this.attempt = 0;
        this.setStatus('connected');
        this.startPing();
        break;
      case 'replaced':
        this.stop('stopped');
        this.onReplaced?.(msg);
        break;
      case 'error':
        if (msg.code === 'unauthorized' && !this.welcomed) {
          this.stop('stopped');
          this.onUnauthorized?.(msg);
          return;
        }
        break;
      default:
        break;
    }
    this.dispatch(msg);
  }

  dispatch(msg) {
    for (const type of [msg.type, '*']) {
      for (const handler of this.handlers.get(type) ?? []) {
        try {
          handler(msg);
        } catch (err) {
          console.error(`cunneng: handler for ${msg.type} failed`, err);
        }
      }
    }
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.welcomed = false;
    this.stopPing();
    this.dispatch({ type: 'ws.closed', code: event.code });
    if (this.stopped) return;
    if (event.code === 4401) {
      this.stop('stopped');
      this.onUnauthorized?.({ code: 'unauthorized' });
      return;
    }
    this.scheduleReconnect();
  }

  scheduleReconnect() {
    this.socket = null;
    const secs = BACKOFF_SECS[Math.min(this.attempt, BACKOFF_SECS.length - 1)];
    this.attempt += 1;
    this.setStatus('reconnecting');
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connectNow(), secs * 1000);
  }

  startPing() {
    this.stopPing();
    this.pingTimer = setInterval(() => {
      if (!this.socket) return;
      if (Date.now() - this.lastMessageAt > SILENCE_LIMIT_MS) {
        // A half-open socket: close it; 'close' schedules the reconnect.
        this.socket.close(4000, 'silent');
        return;
      }
      this.send({ type: 'ping' });
    }, PING_EVERY_MS);
  }

  stopPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }

  /** Send a message; returns its `req` number, or null when not connected (nothing is queued). */
  send(msg) {
    if (!this.isOpen) return null;
    const req = this.nextReq++;
    this.socket.send(JSON.stringify({ ...msg, req }));
    return req;
  }

  /** Close for good (page leaving, replaced, unauthorized). */
  stop(state = 'stopped') {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.stopPing();
    const socket = this.socket;
    this.socket = null;
    this.welcomed = false;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, 'bye');
    this.setStatus(state);
  }

  setStatus(state) {
    const node = this.statusElement;
    if (!node) return;
    node.dataset.state = state;
    node.textContent = STATUS_TEXT[state] ?? state;
    node.setAttribute('aria-live', 'polite');
  }
}
