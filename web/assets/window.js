// @ts-check
// Town window (approver / chief): presence, the window's queue, ringing, the call, transfer;
// the case of the call (papers as they arrive, viewer, re-scan, the four outcomes), and on the
// desk: 一审一核 sign-off (chief), 放心回家 cases to finish, cases sent back, today's bookings.
import { api, messageForCode } from './api.js';
import { CallView } from './callview.js';
import {
  $, $$, STAFF_TOKEN_KEY, el, forgetToken, formatWaited, goToLogin, nameOf, notify, showView, startRinging, takeToken,
} from './common.js';
import { CallMedia } from './media.js';
import { CaseBoard } from './windowcase.js';
import { CALL_ENDED_TOWN, RING_STOPPED } from './words.js';
import { Signal } from './ws.js';

const PRESENCE_HINT = {
  available: '您现在是"空闲":有来电会响铃。',
  busy: '您现在是"忙碌":不会响铃,排队的来电仍然可以点"接听"。',
  away: '您现在是"离开":不会响铃。要开始接待,请点上方的"空闲"。',
};
const RESUME_LIMIT_MS = 5_000;
const TRANSFER_LIMIT_MS = 5_000;

const state = {
  me: null,
  presence: null,
  queue: { items: [], receivedAt: 0 },
  ring: null,
  stopRing: null,
  callId: null,
  callStartedAt: 0,
  left: new Set(),
  answerReqs: new Map(),
  transfer: null,
  windows: null,
  resumeTimer: null,
};

const token = takeToken(STAFF_TOKEN_KEY);
const connection = $('#connection');
const callView = new CallView({
  remoteVideo: $('#remote-video'),
  localVideo: $('#local-video'),
  tiles: $('#extra-videos'),
  mediaState: $('#media-state'),
  preferPrefix: 'kiosk:',
  captionOf: (label) => (label.startsWith('staff:') ? '同事' : '村里'),
});
const media = new CallMedia({
  signal: () => signal,
  callView,
  onProblem: (problem) => notify(problem, 'warning'),
  onRemoteStreams: (streams) => {
    if (streams.size && !state.transfer) $('#peer-status').hidden = true;
  },
});

const board = new CaseBoard({ token, me: () => state.me, onUnauthorized: () => unauthorized(), showView });

/** @type {any} */ (window).__cunneng = {
  get pc() { return media.pc; },
  get me() { return state.me; },
  get case() { return board.case; },
  state,
  board,
  media,
};

// ---- presence ------------------------------------------------------------------------------

function renderPresence() {
  for (const button of $$('.presence-button')) {
    button.setAttribute('aria-pressed', String(button.dataset.presenceValue === state.presence));
    if (state.presence) button.dataset.presence = state.presence;
  }
  $('#presence-hint').textContent = PRESENCE_HINT[state.presence] ?? '';
}

function setPresence(presence) {
  if (signal.send({ type: 'presence.set', presence }) === null) {
    notify('网络中断了,连上后请再点一次', 'error');
  }
}

// ---- queue ---------------------------------------------------------------------------------

function renderQueue() {
  const items = [...state.queue.items].sort((a, b) => (a.position ?? 0) - (b.position ?? 0));
  $('#queue-count').textContent = items.length ? `(${items.length})` : '';
  $('#queue-empty').hidden = items.length > 0;
  $('#queue-list').replaceChildren(
    ...items.map((item) =>
      el(
        'li',
        { class: 'queue-item', testid: 'queue-item', 'data-call-id': item.call_id },
        el(
          'div',
          { class: 'queue-text' },
          el('span', { class: 'queue-village' }, nameOf(item.village) || '某村'),
          item.transferred ? el('span', { class: 'tag' }, '转来的') : null,
          el('span', { class: 'queue-matter' }, nameOf(item.matter)),
          el('span', { class: 'queue-waited', 'data-waited': item.waited_secs ?? 0 }, ''),
        ),
        el('button', { type: 'button', class: 'success big', testid: 'answer-button', onclick: () => answer(item.call_id) }, '接听'),
      ),
    ),
  );
  tickWaited();
}

function tickWaited() {
  const extra = state.queue.receivedAt ? (Date.now() - state.queue.receivedAt) / 1000 : 0;
  for (const node of $$('.queue-waited')) {
    node.textContent = `已等 ${formatWaited(Number(node.dataset.waited) + extra)}`;
  }
  if (state.callStartedAt) $('#call-elapsed').textContent = `通话 ${formatWaited((Date.now() - state.callStartedAt) / 1000)}`;
}

// ---- ringing and answering -----------------------------------------------------------------

function showRing(msg) {
  state.ring = msg;
  $('#ring-village').textContent = nameOf(msg.village) || '村里';
  $('#ring-matter').textContent = nameOf(msg.matter);
  $('#ring-answer').disabled = false;
  $('#ring-banner').hidden = false;
  state.stopRing?.();
  state.stopRing = startRinging();
}

function hideRing() {
  state.ring = null;
  $('#ring-banner').hidden = true;
  state.stopRing?.();
  state.stopRing = null;
}

function answer(callId) {
  const req = signal.send({ type: 'call.answer', call_id: callId });
  if (req === null) {
    notify('网络中断了,连上后请再点"接听"', 'error');
    return;
  }
  state.answerReqs.set(req, callId);
  for (const button of $$('[data-testid="answer-button"]')) button.disabled = true;
  setTimeout(() => {
    for (const button of $$('[data-testid="answer-button"]')) button.disabled = false;
  }, 3000);
  // Start the camera now (a click lets the browser allow sound and camera at once).
  media.ensureLocal();
}

// ---- the call ------------------------------------------------------------------------------

function endCall(message, { transferred = false } = {}) {
  media.stop();
  state.callId = null;
  state.callStartedAt = 0;
  state.transfer = null;
  clearTimeout(state.resumeTimer);
  state.resumeTimer = null;
  closeTransferDialog();
  board.endCall({ transferred });
  showView('desk');
  if (message) notify(message);
}

function hangUp() {
  const callId = state.callId;
  if (callId === null) return;
  state.left.add(callId);
  if (signal.send({ type: 'call.hangup', call_id: callId }) === null) state.pendingHangup = callId;
  endCall(CALL_ENDED_TOWN.hangup);
}

// ---- transfer ------------------------------------------------------------------------------

async function openTransferDialog() {
  const dialog = $('#transfer-dialog');
  const choices = $('#transfer-choices');
  dialog.hidden = false;
  $('#transfer-cancel').focus();
  choices.replaceChildren(el('p', { class: 'hint' }, '正在加载窗口…'));
  try {
    state.windows ??= await api('/api/windows', { token });
  } catch (err) {
    if (err.status === 401) return unauthorized();
    choices.replaceChildren(el('p', { class: 'error' }, err.message));
    return;
  }
  const mine = state.me?.window?.id;
  const others = (state.windows ?? []).filter((w) => w.id !== mine);
  choices.replaceChildren(
    ...(others.length
      ? others.map((w) =>
          el('button', { type: 'button', class: 'choice', testid: 'transfer-choice', 'data-window-id': w.id, onclick: () => transfer(w) }, w.name),
        )
      : [el('p', { class: 'hint' }, '镇上没有别的窗口可以转。')]),
  );
  choices.querySelector('button')?.focus();
}

function closeTransferDialog() {
  $('#transfer-dialog').hidden = true;
}

function transfer(target) {
  const callId = state.callId;
  if (callId === null) return;
  const req = signal.send({ type: 'call.transfer', call_id: callId, window_id: target.id });
  closeTransferDialog();
  if (req === null) {
    notify('网络中断了,没有转出去,连上后请再试', 'error');
    return;
  }
  // The server ends our leg with call.ended; if that does not come, end it here anyway.
  const timer = setTimeout(() => {
    if (state.transfer?.req === req) {
      state.left.add(callId);
      endCall(`已转给「${target.name}」。`, { transferred: true });
    }
  }, TRANSFER_LIMIT_MS);
  state.transfer = { req, callId, name: target.name, timer };
  $('#peer-status').textContent = `正在转给「${target.name}」…`;
  $('#peer-status').hidden = false;
}

// ---- server messages -----------------------------------------------------------------------

let signal = null;

function showSetup(title, message, { retry = false } = {}) {
  endCall('');
  $('#setup-title').textContent = title;
  $('#setup-message').textContent = message;
  $('#setup-retry').hidden = !retry;
  showView('setup');
}

function unauthorized() {
  signal?.stop();
  forgetToken(STAFF_TOKEN_KEY);
  goToLogin();
}

function onWelcome(msg) {
  state.me = msg.me;
  const role = msg.me?.role;
  if (role !== 'approver' && role !== 'chief') {
    signal.stop();
    const where = role === 'dispatcher' ? '请使用"镇调度"页面。' : '这个页面是给镇窗口工作人员用的。';
    showSetup('这个账号不能接待来电', where);
    return;
  }
  // A chief may review his town's cases (read-only) on /review and see its statistics on /stats.
  $('#review-link').hidden = role !== 'chief';
  $('#stats-link').hidden = role !== 'chief';
  // Chiefs take no calls: their page has no presence switch and no call queue (app.css).
  document.body.dataset.role = role;
  const parts = [msg.me.name, nameOf(msg.me.window), nameOf(msg.me.town)].filter(Boolean);
  $('#place').textContent = parts.join(' · ');
  document.title = `${nameOf(msg.me.window) || '镇窗口'} · 村能办`;
  if (state.pendingHangup) {
    signal.send({ type: 'call.hangup', call_id: state.pendingHangup });
    state.pendingHangup = null;
  }
  if (signal.isReconnect) {
    hideRing(); // a pending ring is sent again
    if (state.callId !== null) {
      clearTimeout(state.resumeTimer);
      state.resumeTimer = setTimeout(() => endCall('网络断开的时候,这次通话已经结束了。'), RESUME_LIMIT_MS);
    }
  } else {
    showView('desk');
  }
  board.startDeskRefresh();
}

function onPresence(msg) {
  state.presence = msg.presence;
  renderPresence();
  if (msg.forced) notify('刚才的来电没有接听,系统已把您设为"离开"。要接待来电,请点"空闲"。', 'warning', { holdMs: 30_000 });
}

function onQueueSnapshot(msg) {
  state.queue = { items: msg.items ?? [], receivedAt: Date.now() };
  // A ringing call is a waiting one: gone from the queue, it no longer rings.
  if (state.ring && !state.queue.items.some((item) => item.call_id === state.ring.call_id)) hideRing();
  // Back after a network drop: our call went back to the head of the queue meanwhile
  // (the server requeues the call of an approver who drops).
  if (state.resumeTimer && state.queue.items.some((item) => item.call_id === state.callId)) {
    endCall('刚才网络断了,这个来电已经回到排队的第一位。请点"接听"重新接通。');
  }
  renderQueue();
}

function onRing(msg) {
  if (state.left.has(msg.call_id)) return;
  showRing(msg);
}

function onRingStopped(msg) {
  if (state.ring?.call_id !== msg.call_id) return;
  hideRing();
  // The approver who changed presence knows why; every other reason is told.
  if (msg.reason !== 'presence_changed' && RING_STOPPED[msg.reason]) notify(RING_STOPPED[msg.reason]);
}

function onCallStarted(msg) {
  if (state.left.has(msg.call_id)) return;
  clearTimeout(state.resumeTimer);
  state.resumeTimer = null;
  if (state.ring?.call_id === msg.call_id) hideRing();
  const peer = msg.peer ?? {};
  if (state.callId !== msg.call_id) state.callStartedAt = Date.now();
  state.callId = msg.call_id;
  $('#call-village').textContent = `${nameOf(peer.village) || '村里'}便民服务室`;
  $('#call-matter').textContent = nameOf(msg.matter) ? `事项:${nameOf(msg.matter)}` : '';
  $('#peer-status').hidden = true;
  showView('call');
  tickWaited();
  media.start(msg.room);
  board.startCall(msg.case_no ?? null);
}

function onPeerReconnecting(msg) {
  if (msg.call_id !== state.callId || state.transfer) return;
  const status = $('#peer-status');
  status.textContent = '村里那边网络断了,正在等对方重新连上…';
  status.hidden = false;
  watchVideoBack(msg.call_id, Date.now());
}

/**
 * The notice goes as soon as the village's video plays again (call.peer_reconnected may come
 * later than the picture): a frame decoded a while after the drop means it is back.
 */
function watchVideoBack(callId, since) {
  const video = /** @type {HTMLVideoElement} */ ($('#remote-video'));
  if (typeof video.requestVideoFrameCallback !== 'function') return;
  const onFrame = () => {
    if (state.callId !== callId || $('#peer-status').hidden) return;
    if (Date.now() - since > 1500 && !state.transfer) {
      $('#peer-status').hidden = true;
      return;
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

function onPeerReconnected(msg) {
  if (msg.call_id !== state.callId || state.transfer) return;
  $('#peer-status').hidden = true;
}

function onCallEnded(msg) {
  if (state.ring?.call_id === msg.call_id) hideRing();
  if (msg.call_id !== state.callId) return;
  const transfer = state.transfer;
  if (transfer?.callId === msg.call_id) {
    clearTimeout(transfer.timer);
    endCall(`已转给「${transfer.name}」。`, { transferred: true });
    return;
  }
  endCall(CALL_ENDED_TOWN[msg.reason] ?? CALL_ENDED_TOWN.hangup);
}

function onError(msg) {
  if (media.ownsRequest(msg.req)) return;
  if (msg.req !== undefined && state.answerReqs.has(msg.req)) {
    state.answerReqs.delete(msg.req);
    for (const button of $$('[data-testid="answer-button"]')) button.disabled = false;
    if (state.callId === null) media.releaseLocal();
    notify(msg.code === 'conflict' ? RING_STOPPED.answered_elsewhere : messageForCode(msg.code, msg.message), 'error');
    return;
  }
  if (msg.req !== undefined && state.transfer?.req === msg.req) {
    clearTimeout(state.transfer.timer);
    state.transfer = null;
    $('#peer-status').hidden = true;
    notify(`没有转出去:${messageForCode(msg.code, msg.message)}`, 'error');
    return;
  }
  if (msg.code !== 'unauthorized') notify(messageForCode(msg.code, msg.message), 'error');
}

// ---- start ---------------------------------------------------------------------------------

for (const button of $$('.presence-button')) {
  button.addEventListener('click', () => setPresence(button.dataset.presenceValue));
}
$('#ring-answer').addEventListener('click', () => state.ring && answer(state.ring.call_id));
$('#hangup-button').addEventListener('click', hangUp);
$('#transfer-button').addEventListener('click', openTransferDialog);
$('#transfer-cancel').addEventListener('click', closeTransferDialog);
$('#transfer-dialog').addEventListener('keydown', (event) => {
  if (event.key === 'Escape') closeTransferDialog();
});
$('#setup-retry').addEventListener('click', () => location.reload());
$('#logout-button').addEventListener('click', async () => {
  signal?.stop();
  try {
    await api('/api/logout', { method: 'POST', token });
  } catch {
    // The token is forgotten here anyway.
  }
  forgetToken(STAFF_TOKEN_KEY);
  location.replace('/login');
});
setInterval(tickWaited, 1000);

if (!token) {
  goToLogin();
} else {
  signal = new Signal({
    token,
    statusElement: connection,
    onUnauthorized: unauthorized,
    onReplaced: () => showSetup('这个账号在别处打开了', '同一个账号在另一个窗口或另一台电脑上打开了本页面,这里已经断开。', { retry: true }),
  });
  /** @type {any} */ (window).__cunneng.signal = signal;
  signal.on('welcome', onWelcome);
  signal.on('presence', onPresence);
  signal.on('queue.snapshot', onQueueSnapshot);
  signal.on('call.ring', onRing);
  signal.on('call.ring_stopped', onRingStopped);
  signal.on('call.started', onCallStarted);
  signal.on('call.peer_reconnecting', onPeerReconnecting);
  signal.on('call.peer_reconnected', onPeerReconnected);
  signal.on('call.ended', onCallEnded);
  signal.on('error', onError);
  signal.on('paper.added', (msg) => board.onPaperAdded(msg));
  signal.on('paper.changed', (msg) => board.onPaperChanged(msg));
  signal.on('case.updated', (msg) => board.onCaseUpdated(msg));
  signal.on('signoff.requested', (msg) => {
    notify(`有案件等您审核:${nameOf(msg.village)} · ${nameOf(msg.matter)}(${msg.case_no})`);
    board.refreshDesk();
  });
  signal.on('signoff.returned', (msg) => {
    notify(`案件 ${msg.case_no} 被窗口负责人退回:${msg.reason}`, 'warning');
    board.refreshDesk();
  });
  signal.connect();
  addEventListener('pagehide', () => media.stop());
}
