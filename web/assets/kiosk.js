// @ts-check
// Village service room (kiosk): pick a matter, enter the villager, scan the papers, call the
// town window, wait in its queue, talk, see the outcome and print it, rate the service; and
// answer group calls from the town dispatcher. Also: the inbox of results that come back
// later, progress lookup, resuming a case by number, bookings.
// Token: `/kiosk#token=...` (device token), or enrolment: the page opened without a token
// asks for the administrator's one-time code (or takes it from `/kiosk#enrol=CODE`, the QR
// code's address) and exchanges it for a device token (`POST /api/enrol`). An enrolled token
// expires; the page rotates it (`POST /api/kiosk/token`) when less than half its life is left.
import { api, messageForCode } from './api.js';
import { CallView } from './callview.js';
import {
  $, $$, KIOSK_TOKEN_KEY, clearFragment, el, forgetToken, formatEstimate, fragmentParams, nameOf, notify, showView,
  startRinging, takeToken,
} from './common.js';
import { CaseDesk } from './kioskcase.js';
import { Booking, Inbox, Rating, Resume } from './kiosktools.js';
import { LedgerView } from './ledger.js';
import { CallMedia } from './media.js';
import { setupProgressLookup } from './progressform.js';
import { CALL_ENDED_VILLAGE } from './words.js';
import { Signal } from './ws.js';

const REQUEUED_TITLE = '镇窗口断线了,正在重新排队';
const REQUEUED_TEXT = '接听您的工作人员那边断线了,您的呼叫已经回到队伍最前面。';
const INVITE_EXPIRED_TEXT = '镇上的群呼邀请已过期,没有接通。需要的话请打电话问问镇里。';
const INVITE_EXPIRED_HOLD_MS = 60_000;
// After a reconnect the server re-announces a live queue entry or call at once; if it does
// not within this time, the call ended while the network was down.
const RESUME_LIMIT_MS = 5_000;
const ENDED_BACK_TO_START_MS = 20_000;
// After a call with a case: time to print and rate before the screen starts over by itself.
const ENDED_WITH_CASE_MS = 10 * 60_000;

const state = {
  me: null,
  matters: [],
  selected: null,
  requestReq: null,
  cancelWanted: false,
  callId: null,
  groupId: null,
  groupFrom: null,
  // Calls and groups this page has left: late messages about them are ignored.
  left: new Set(),
  transferredTo: '',
  // The approver dropped and the call went back to the head of the queue (call.requeued).
  requeued: false,
  invite: null,
  pendingLeave: null,
  resumeTimer: null,
  endedTimer: null,
  stopRing: null,
  // The current call was answered (a rating is due when it ends).
  answered: false,
  // Matter searches sent, and the last one shown.
  searchSeq: 0,
  searchDone: 0,
};

// When the device token was issued and when it expires (`{issued_at_ms, expires_at_ms}`),
// for its rotation; absent for tokens that do not expire (the region file's).
const TOKEN_LIFE_KEY = 'cunneng.kiosk_token_life';
// How often the page looks whether its token is due for rotation.
const ROTATE_CHECK_MS = 60 * 60_000;

// A code in the address (`#enrol=CODE`) enrols this device anew, whatever token it had.
const enrolFromLink = fragmentParams().get('enrol');
if (enrolFromLink) clearFragment();
const token = enrolFromLink ? null : takeToken(KIOSK_TOKEN_KEY);
// Set while this page swaps its own token: the old token's socket closes meanwhile.
let rotating = false;
const connection = $('#connection');
const callView = new CallView({
  remoteVideo: $('#remote-video'),
  localVideo: $('#local-video'),
  tiles: $('#extra-videos'),
  mediaState: $('#media-state'),
  preferPrefix: 'staff:',
  captionOf: (label) => (label.startsWith('kiosk:') ? '其他村' : '镇里'),
});
const media = new CallMedia({
  signal: () => signal,
  callView,
  onProblem: (problem) => notify(problem, 'warning'),
  onRemoteStreams: (streams) => {
    if (streams.size) $('#peer-status').hidden = true;
  },
});

function unauthorizedLater() {
  unauthorized();
}
const desk = new CaseDesk({ token, onUnauthorized: unauthorizedLater, onChange: updateCallButton });
const rating = new Rating({ token, onUnauthorized: unauthorizedLater });
const inbox = new Inbox({ token, onUnauthorized: unauthorizedLater });
const ledger = new LedgerView({ token, root: /** @type {HTMLElement} */ ($('[data-view="ledger"]')), onUnauthorized: unauthorizedLater });
const booking = new Booking({ token, onUnauthorized: unauthorizedLater });
const resume = new Resume({ token, onUnauthorized: unauthorizedLater, onResume: resumeCase });
// The room's lookups carry its token: counted per kiosk, not per address.
const progress = setupProgressLookup($('#progress-form'), $('#progress-result'), { token });

/** @type {any} */ (window).__cunneng = {
  get pc() { return media.pc; },
  get me() { return state.me; },
  get case() { return desk.case; },
  state,
  desk,
  media,
};

// ---- matters: load, search, select ---------------------------------------------------------

/** The server's search (`GET /api/matters?q=`): the catalog's keywords, ranked; ids in order. */
async function searchMatters(query) {
  const found = await api(`/api/matters?q=${encodeURIComponent(query)}`, { token });
  return (found ?? []).map((m) => m.id);
}

function renderMatters() {
  const list = $('#matter-list');
  list.replaceChildren(
    ...state.matters.map((matter) => {
      const papers = matter.required_papers?.length ?? 0;
      const button = el(
        'button',
        {
          type: 'button',
          class: 'matter-option',
          testid: 'matter-option',
          'data-matter-id': matter.id,
          'data-window-id': matter.window?.id,
          'data-signoff': String(Boolean(matter.needs_signoff)),
          'aria-pressed': 'false',
          onclick: () => chooseMatter(matter),
        },
        el('span', { class: 'matter-plain' }, matter.plain_name || matter.name),
        el('span', { class: 'matter-meta' }, [matter.department, nameOf(matter.window)].filter(Boolean).join(' · ')),
        papers ? el('span', { class: 'matter-papers' }, `需要 ${papers} 样材料`) : null,
      );
      return el('li', {}, button);
    }),
  );
  filterMatters();
}

/** Show the matters the search box finds, best first (the server ranks them). */
async function filterMatters() {
  const query = $('#matter-search').value.trim();
  const seq = (state.searchSeq += 1);
  let ids = null;
  if (query) {
    try {
      ids = await searchMatters(query);
    } catch (err) {
      if (err.status === 401) return unauthorized();
      ids = null; // the network: keep the whole list rather than an empty one
    }
    if (seq !== state.searchSeq) return; // a newer search is on its way
  }
  const list = $('#matter-list');
  const items = new Map([...list.children].map((li) => [li.firstElementChild?.dataset.matterId, li]));
  const order = ids ?? state.matters.map((m) => m.id);
  const shownIds = new Set(order.map(String));
  for (const id of order) {
    const li = items.get(String(id));
    if (li) list.append(li);
  }
  let shown = 0;
  for (const [id, li] of items) {
    li.hidden = !shownIds.has(String(id));
    if (!li.hidden) shown += 1;
  }
  state.searchDone = seq;
  const count = $('#matter-count');
  count.dataset.query = query;
  if (state.matters.length === 0) count.textContent = '';
  else if (!query || ids === null) count.textContent = `共 ${state.matters.length} 个事项`;
  else if (shown === 0) count.textContent = '没有找到,换个说法试试,比如只输入两三个字';
  else count.textContent = `找到 ${shown} 个事项`;
}

let searchTimer = 0;
function onSearchInput() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(filterMatters, 150);
}

/** A click on a matter: with an unfinished case of another matter, ask first. */
function chooseMatter(matter) {
  const c = desk.case;
  if (c && c.matter?.id !== matter.id && ['open', 'missing'].includes(c.status)) {
    $('#switch-text').textContent = `案件 ${c.case_no}(${nameOf(c.matter)}${c.villager?.name ? ',办事人 ' + c.villager.name : ''})还没有办完。要换成「${matter.plain_name || matter.name}」吗?`;
    state.switchTo = matter;
    $('#switch-dialog').hidden = false;
    $('#switch-keep').focus();
    return;
  }
  selectMatter(matter);
}

function selectMatter(matter) {
  state.selected = matter;
  for (const button of $$('[data-testid="matter-option"]')) {
    button.setAttribute('aria-pressed', String(button.dataset.matterId === String(matter.id)));
  }
  $('#selected-empty').hidden = true;
  $('#selected-matter').hidden = false;
  $('#selected-name').textContent = matter.plain_name || matter.name;
  const where = [matter.name !== matter.plain_name ? matter.name : null, matter.department, nameOf(matter.window)];
  $('#selected-where').textContent = where.filter(Boolean).join(' · ');
  // Before calling: a matter with 一审一核 is decided in two steps and its result comes later.
  $('#selected-signoff').hidden = !matter.needs_signoff;
  const papers = matter.required_papers ?? [];
  $('#selected-papers').replaceChildren(...(papers.length ? papers.map((p) => el('li', {}, p)) : [el('li', {}, '不需要材料')]));
  // The checklist below shows the papers; the short list above is for a matter without a case.
  $('#selected-papers').parentElement.classList.add('compact');
  desk.setMatter(matter);
  $('#prepare').hidden = false;
  placePanel();
  const callButton = $('#call-button');
  callButton.disabled = false;
  updateCallButton();
  if (document.body.dataset.state === 'pick') $('#villager-title').scrollIntoView({ block: 'start', behavior: 'smooth' });
}

/** The case panel goes where the visible screen shows it. */
function placePanel() {
  const where = document.body.dataset.state;
  if (where === 'waiting') desk.place($('#waiting-papers-slot'));
  else if (where === 'call') desk.place(state.groupId === null && state.callId !== null ? $('#call-papers-slot') : null);
  else if (where === 'pick') desk.place($('#prepare-papers-slot'));
}

/** Take the server's case (restored after a reload, or the case of a queued call) with its matter. */
function adoptCase(c) {
  if (!c) return;
  desk.adopt(c);
  if (state.selected?.id !== c.matter?.id && c.matter) {
    const matter = state.matters.find((m) => m.id === c.matter.id) ?? { ...c.matter, window: null };
    if (!state.matters.includes(matter)) state.matters.push(matter);
    selectMatter(matter);
  }
  placePanel();
  if (document.body.dataset.state === 'waiting' && state.lastPosition?.call_id === state.callId) renderPosition(state.lastPosition);
}

/** After a reload, a crash or a power cut: back to the case the server has for this room. */
async function restoreCase() {
  try {
    adoptCase(await api('/api/cases/current', { token }));
  } catch (err) {
    if (err.status === 401) unauthorized();
    // 404: nothing in preparation.
  }
}

function clearSelection() {
  state.selected = null;
  for (const button of $$('[data-testid="matter-option"]')) button.setAttribute('aria-pressed', 'false');
  $('#selected-empty').hidden = false;
  $('#selected-matter').hidden = true;
  $('#prepare').hidden = true;
  $('#call-button').disabled = true;
  $('#matter-search').value = '';
  filterMatters();
  updateCallButton();
}

function updateCallButton() {
  const button = $('#call-button');
  if (!button) return;
  const caseNo = desk?.caseNo;
  button.textContent = caseNo && desk.case?.status === 'missing' ? '呼叫镇窗口,补交材料继续办' : '呼叫镇窗口';
}

/** Go on with a case found by its number (a supplement after 现场开单). */
function resumeCase(c) {
  const matter = state.matters.find((m) => m.id === c.matter?.id) ?? { ...c.matter, window: null };
  if (!state.matters.includes(matter)) state.matters.push(matter);
  selectMatter(matter);
  desk.adopt(c);
  showPick();
  notify(`已找到案件 ${c.case_no}。可以补扫材料,然后点"呼叫镇窗口"。`);
}

async function loadMatters() {
  const list = $('#matter-list');
  try {
    state.matters = (await api('/api/matters', { token })) ?? [];
    renderMatters();
    const keep = state.selected && state.matters.find((m) => m.id === state.selected.id);
    if (keep) selectMatter(keep);
  } catch (err) {
    if (err.status === 401) return unauthorized();
    list.replaceChildren(
      el('li', { class: 'error' }, `事项清单没有加载出来:${err.message}`),
      el('li', {}, el('button', { type: 'button', class: 'secondary big', onclick: loadMatters }, '再试一次')),
    );
  }
}

// ---- screens -------------------------------------------------------------------------------

function showPick() {
  clearTimeout(state.endedTimer);
  if (state.selected) desk.place($('#prepare-papers-slot'));
  showView('pick');
}

/** After a call: on to the next villager. */
function finishCase() {
  rating.submit();
  rating.hide();
  desk.reset();
  clearSelection();
  showPick();
}

function showEnded(title, message) {
  media.stop();
  state.callId = null;
  state.groupId = null;
  state.transferredTo = '';
  state.requeued = false;
  state.requestReq = null;
  clearTimeout(state.resumeTimer);
  $('#ended-title').textContent = title;
  $('#ended-message').textContent = message;
  desk.place(null);
  const caseNo = desk.caseNo;
  if (state.answered && caseNo) rating.prompt(caseNo);
  else rating.hide();
  const answered = state.answered;
  state.answered = false;
  // The case is still open (no decision, or 现场开单 with papers at hand): call again on it.
  $('#ended-again').hidden = !(caseNo && ['open', 'missing'].includes(desk.case?.status) && !desk.outcome);
  showView('ended');
  $('#ended-ok').focus();
  clearTimeout(state.endedTimer);
  const withCase = answered || Boolean(desk.outcome);
  state.endedTimer = setTimeout(withCase ? finishCase : showPick, withCase ? ENDED_WITH_CASE_MS : ENDED_BACK_TO_START_MS);
}

function showWaiting({ title = '正在排队', position = null, detail = '', where = '' } = {}) {
  // Coming from another screen (the call's papers may have been scrolled): start at the top.
  if (document.body.dataset.state !== 'waiting') scrollTo(0, 0);
  $('#waiting-title').textContent = title;
  const node = $('#queue-position');
  if (position === null) {
    node.textContent = '正在接通…';
    delete node.dataset.position;
  } else {
    node.textContent = `您排第 ${position} 位`;
    node.dataset.position = String(position);
  }
  $('#queue-detail').textContent = detail;
  $('#queue-matter').textContent = where;
  if (state.selected) desk.place($('#waiting-papers-slot'));
  showView('waiting');
}

function showCall({ title, peer, matter }) {
  $('#call-title').textContent = title;
  $('#call-peer').textContent = peer;
  $('#call-matter').textContent = matter;
  $('#peer-status').hidden = true;
  // Papers belong to a call with a case, not to a group call.
  desk.place(state.groupId === null && state.callId !== null ? $('#call-papers-slot') : null);
  showView('call');
}

function showSetup(title, message, { retry = false } = {}) {
  media.stop();
  $('#setup-title').textContent = title;
  $('#setup-message').textContent = message;
  $('#setup-retry').hidden = !retry;
  showView('setup');
}

function unauthorized() {
  if (rotating) return; // the old token ended because this page asked for a new one
  signal?.stop();
  media.stop();
  forgetToken(KIOSK_TOKEN_KEY);
  localStorage.removeItem(TOKEN_LIFE_KEY);
  connection.dataset.state = 'stopped';
  connection.textContent = '未开通';
  showEnrol(null, '这台设备的凭证已失效。请向县里的管理员要一个新的8位开通码,输入后就能继续使用。');
}

/** Keep the token's life, for its rotation (a token without expiry has none). */
function keepTokenLife(expiresAtMs) {
  if (typeof expiresAtMs === 'number') {
    localStorage.setItem(TOKEN_LIFE_KEY, JSON.stringify({ issued_at_ms: Date.now(), expires_at_ms: expiresAtMs }));
  } else {
    localStorage.removeItem(TOKEN_LIFE_KEY);
  }
}

/**
 * The enrolment form: a big input for the administrator's code; `code` (from the QR code's
 * address) is sent at once.
 * @param {string | null} code
 * @param {string} [message]
 */
function showEnrol(code, message) {
  const input = $('#enrol-input');
  const error = $('#enrol-error');
  const button = $('#enrol-submit');
  $('#enrol-message').textContent = message ?? '请输入管理员给出的8位开通码';
  showView('enrol');
  async function submit() {
    const typed = input.value.replace(/[\s-]/g, '');
    error.hidden = true;
    if (!/^\d{8}$/.test(typed)) {
      error.textContent = '开通码是8位数字,请再看一下管理员给的码';
      error.hidden = false;
      input.focus();
      return;
    }
    button.disabled = true;
    button.textContent = '正在开通…';
    try {
      const result = await api('/api/enrol', { method: 'POST', body: { code: typed } });
      localStorage.setItem(KIOSK_TOKEN_KEY, result.token);
      keepTokenLife(result.expires_at_ms);
      location.replace('/kiosk');
    } catch (err) {
      error.textContent = err.code === 'bad_enrolment_code'
        ? '开通码不对,或者已经用过、已经过期。请向管理员要一个新的开通码。'
        : err.message;
      error.hidden = false;
      button.disabled = false;
      button.textContent = '开通';
      input.select();
      input.focus();
    }
  }
  $('#enrol-form').onsubmit = (event) => {
    event.preventDefault();
    submit();
  };
  if (code) {
    input.value = code.length === 8 ? `${code.slice(0, 4)}-${code.slice(4)}` : code;
    submit();
  } else {
    input.focus();
  }
}

/** Nothing is going on that a reload would disturb. */
function idle() {
  return document.body.dataset.state === 'pick' && state.callId === null && state.groupId === null
    && state.requestReq === null && !desk.uploading;
}

/** Rotate the device token once less than half of its life is left (when the room is idle). */
async function maybeRotate() {
  let life;
  try {
    life = JSON.parse(localStorage.getItem(TOKEN_LIFE_KEY) ?? 'null');
  } catch {
    life = null;
  }
  if (!life || typeof life.expires_at_ms !== 'number' || typeof life.issued_at_ms !== 'number') return;
  const left = life.expires_at_ms - Date.now();
  if (left > (life.expires_at_ms - life.issued_at_ms) / 2 || !idle() || rotating) return;
  rotating = true;
  try {
    const result = await api('/api/kiosk/token', { method: 'POST', token });
    localStorage.setItem(KIOSK_TOKEN_KEY, result.token);
    keepTokenLife(result.expires_at_ms);
    // The old token's socket closes; the page starts again with the new token.
    location.reload();
  } catch {
    rotating = false; // tried again at the next check
  }
}

function hideInvite() {
  state.invite = null;
  $('#incoming-call').hidden = true;
  state.stopRing?.();
  state.stopRing = null;
}

function confirmResumed() {
  clearTimeout(state.resumeTimer);
  state.resumeTimer = null;
}

// ---- actions -------------------------------------------------------------------------------

function requestCall() {
  const matter = state.selected;
  if (!matter) return;
  state.cancelWanted = false;
  state.requeued = false;
  const request = { type: 'call.request', matter_id: matter.id };
  // A case opened ahead (villager entered, papers scanned, or resumed by number) goes along.
  if (desk.caseNo) request.case_no = desk.caseNo;
  state.requestReq = signal.send(request);
  if (state.requestReq === null) {
    notify('网络中断了,请等右上角显示"已连接"后再呼叫', 'error');
    return;
  }
  media.ensureLocal();
  showWaiting({ title: '正在呼叫镇窗口', where: `事项:${matter.plain_name || matter.name}` });
  $('#cancel-button').focus();
}

function cancelCall() {
  if (state.callId === null) {
    // The request is still on its way: cancel as soon as it is queued.
    state.cancelWanted = true;
    state.requestReq = null;
    media.releaseLocal();
    showPick();
    return;
  }
  if (signal.send({ type: 'call.cancel', call_id: state.callId }) === null) {
    notify('网络中断了,正在重新连接,连上后请再点一次"取消排队"', 'error');
  }
}

function hangUp() {
  if (state.groupId !== null) {
    const groupId = state.groupId;
    state.left.add(`group:${groupId}`);
    if (signal.send({ type: 'group.leave', group_id: groupId }) === null) state.pendingLeave = { type: 'group.leave', group_id: groupId };
    showEnded('已退出群呼', '您已经离开了群呼。');
  } else if (state.callId !== null) {
    const callId = state.callId;
    state.left.add(`call:${callId}`);
    if (signal.send({ type: 'call.hangup', call_id: callId }) === null) state.pendingLeave = { type: 'call.hangup', call_id: callId };
    showEnded('通话已结束', CALL_ENDED_VILLAGE.hangup);
  }
}

function acceptInvite() {
  const invite = state.invite;
  if (!invite) return;
  if (!signal.isOpen) {
    notify('网络中断了,请稍等再接', 'error');
    return;
  }
  // A call of our own in the queue or live gives way to the group call: left first, since the
  // server refuses a group to a kiosk that still has a call.
  if (state.callId !== null) hangUpQuietly();
  if (signal.send({ type: 'group.accept', group_id: invite.group_id }) === null) {
    notify('网络中断了,请稍等再接', 'error');
    return;
  }
  hideInvite();
  state.groupId = invite.group_id;
  state.groupFrom = invite.from;
  media.ensureLocal();
  showCall({ title: '正在加入群呼', peer: fromText(invite.from), matter: '' });
  callView.setMediaState('connecting');
}

function hangUpQuietly() {
  const callId = state.callId;
  state.left.add(`call:${callId}`);
  const type = media.room ? 'call.hangup' : 'call.cancel';
  signal.send({ type, call_id: callId });
  state.callId = null;
  media.stop();
}

function declineInvite() {
  const invite = state.invite;
  if (!invite) return;
  state.left.add(`group:${invite.group_id}`);
  signal.send({ type: 'group.decline', group_id: invite.group_id });
  hideInvite();
}

function fromText(from) {
  return [nameOf(from?.town), nameOf(from)].filter(Boolean).join(' ');
}

// ---- server messages -----------------------------------------------------------------------

let signal = null;

function onWelcome(msg) {
  state.me = msg.me;
  if (msg.me?.kind !== 'kiosk') {
    signal.stop();
    showSetup('这个页面是给村便民服务室用的', '工作人员请从首页进入镇窗口或镇调度页面。');
    return;
  }
  const village = nameOf(msg.me.village) || msg.me.name;
  const town = nameOf(msg.me.town);
  $('#place').textContent = `${village}便民服务室${town ? ' · ' + town : ''}`;
  document.title = `${village}便民服务室 · 村能办`;
  if (state.pendingLeave) {
    signal.send(state.pendingLeave);
    state.pendingLeave = null;
  }
  if (signal.isReconnect) {
    hideInvite(); // a pending invite is sent again
    const live = state.callId !== null || state.groupId !== null;
    // A call.request sent just before the drop may never have arrived.
    const requested = !live && state.requestReq !== null;
    if (live || requested) {
      clearTimeout(state.resumeTimer);
      state.resumeTimer = setTimeout(() => {
        state.resumeTimer = null;
        if (requested) showEnded('没有呼叫成功', '网络断开了一下,呼叫没有送到。请再呼叫一次。');
        else showEnded('通话已结束', '网络断开的时候,这次通话已经结束了。需要的话请重新呼叫。');
      }, RESUME_LIMIT_MS);
    }
    desk.refresh();
    inbox.refresh();
  } else {
    showPick();
    loadMatters().then(restoreCase);
    inbox.refresh();
    setTimeout(maybeRotate, 10_000);
  }
}

function onQueuePosition(msg) {
  if (state.left.has(`call:${msg.call_id}`)) return;
  if (state.cancelWanted) {
    state.cancelWanted = false;
    state.left.add(`call:${msg.call_id}`);
    signal.send({ type: 'call.cancel', call_id: msg.call_id });
    return;
  }
  confirmResumed();
  const first = state.callId !== msg.call_id;
  state.callId = msg.call_id;
  state.requestReq = null;
  state.lastPosition = msg;
  // Waiting: learn the case so that papers can be scanned meanwhile (after a reload: the
  // matter line and the scan panel come back with it).
  if (first && state.groupId === null && (!desk.caseNo || !state.selected)) restoreCase();
  renderPosition(msg);
}

/** The waiting screen for a `queue.position` (again once the matter is known after a reload). */
function renderPosition(msg) {
  const position = Number(msg.position);
  // Nobody at the window: an estimate would promise what nobody keeps.
  const estimate = msg.staffed === false ? '' : formatEstimate(msg.estimated_wait_secs);
  const ahead = msg.staffed === false
    ? '镇窗口现在没有人接待,有人上岗后会马上接听'
    : position > 1 ? `前面还有 ${position - 1} 位` : '下一个就轮到您';
  const matter = state.selected ? `事项:${state.selected.plain_name || state.selected.name}` : '';
  const windowName = nameOf(msg.window);
  showWaiting({
    title: state.transferredTo ? `已转到「${state.transferredTo}」` : state.requeued ? REQUEUED_TITLE : '正在排队',
    position,
    detail: `${state.requeued ? REQUEUED_TEXT : ''}正在排队,${ahead}${estimate ? `,预计等待 ${estimate}` : ''}`,
    where: [matter, windowName ? `排在「${windowName}」` : ''].filter(Boolean).join(' · '),
  });
}

function onCallStarted(msg) {
  if (state.left.has(`call:${msg.call_id}`)) return;
  confirmResumed();
  if (state.cancelWanted) {
    state.cancelWanted = false;
    state.left.add(`call:${msg.call_id}`);
    signal.send({ type: 'call.hangup', call_id: msg.call_id });
    return;
  }
  state.callId = msg.call_id;
  state.requestReq = null;
  state.transferredTo = '';
  state.requeued = false;
  state.answered = true;
  desk.attachCall(msg.case_no ?? null).then(() => {
    if (!state.selected && desk.case) adoptCase(desk.case);
  });
  const peer = msg.peer ?? {};
  showCall({
    title: '正在和镇窗口通话',
    peer: [nameOf(peer.window), nameOf(peer)].filter(Boolean).join(' '),
    matter: nameOf(msg.matter) ? `事项:${nameOf(msg.matter)}` : '',
  });
  media.start(msg.room);
}

function onCallTransferred(msg) {
  if (msg.call_id !== state.callId) return;
  confirmResumed();
  // The call goes back into a queue: the media of the old leg ends, the camera stays on.
  media.leaveRoom();
  state.transferredTo = nameOf(msg.window);
  state.requeued = false;
  showWaiting({ title: `已转到「${state.transferredTo}」`, detail: '请稍等,马上就有人接听' });
}

function onCallRequeued(msg) {
  if (msg.call_id !== state.callId) return;
  confirmResumed();
  // The approver dropped: the call is back at the head of its queue (a queue.position
  // follows); the room is gone, the camera stays on for whoever answers next.
  media.leaveRoom();
  state.requeued = true;
  showWaiting({ title: REQUEUED_TITLE, detail: REQUEUED_TEXT });
}

function onPeerReconnecting(msg) {
  if (msg.call_id !== state.callId) return;
  const status = $('#peer-status');
  status.textContent = '镇窗口那边网络不稳定,正在等对方重新连上…';
  status.hidden = false;
}

function onPeerReconnected(msg) {
  if (msg.call_id !== state.callId) return;
  $('#peer-status').hidden = true;
}

function onCallEnded(msg) {
  if (msg.call_id !== state.callId) return;
  if (msg.reason === 'cancelled') {
    state.callId = null;
    media.stop();
    notify(CALL_ENDED_VILLAGE.cancelled);
    showPick();
    return;
  }
  showEnded(msg.reason === 'hangup' ? '通话已结束' : '通话结束了', CALL_ENDED_VILLAGE[msg.reason] ?? CALL_ENDED_VILLAGE.hangup);
}

function onGroupInvite(msg) {
  if (state.groupId === msg.group_id) return;
  // The server invites a kiosk again only after it declined, did not answer or left (the
  // dispatcher's 再呼叫这个村): a new invitation, to be answered, not a stale one to ignore.
  state.left.delete(`group:${msg.group_id}`);
  state.invite = msg;
  // A new invitation: an older notice (e.g. that the last one lapsed) no longer applies.
  notify('');
  $('#incoming-from').textContent = `${fromText(msg.from)} 邀请您加入群呼`;
  // Queued for the town window: accepting gives up the place, and the clerk is told before.
  const queued = state.callId !== null && document.body.dataset.state === 'waiting';
  $('#incoming-queue-warning').hidden = !queued;
  $('#accept-call-button').textContent = queued ? '放弃排队,接听群呼' : '接听';
  $('#incoming-call').hidden = false;
  $('#accept-call-button').focus();
  state.stopRing?.();
  state.stopRing = startRinging();
}

function onGroupInviteExpired(msg) {
  if (state.invite?.group_id !== msg.group_id) return;
  // Nobody answered in time: stop ringing, close the prompt, and say so for a while (the
  // clerk may have been away from the screen).
  hideInvite();
  notify(INVITE_EXPIRED_TEXT, 'warning', { holdMs: INVITE_EXPIRED_HOLD_MS });
}

function onGroupJoined(msg) {
  if (state.left.has(`group:${msg.group_id}`)) return;
  confirmResumed();
  state.groupId = msg.group_id;
  showCall({ title: '群呼中', peer: fromText(state.groupFrom), matter: '' });
  media.start(msg.room);
}

function onGroupEnded(msg) {
  if (state.invite?.group_id === msg.group_id) hideInvite();
  if (state.groupId !== msg.group_id) return;
  showEnded('群呼已结束', '镇里结束了这次群呼。');
}

function onError(msg) {
  if (msg.req !== undefined && msg.req === state.requestReq) {
    state.requestReq = null;
    media.releaseLocal();
    showEnded('没有呼叫成功', messageForCode(msg.code, msg.message));
    return;
  }
  if (msg.code === 'rate_limited' || msg.code === 'internal') notify(messageForCode(msg.code, msg.message), 'error');
}

function onRescanRequested(msg) {
  if (desk.onRescan(msg)) notify('镇窗口请您重新扫描一份材料', 'warning');
}

function onOutcome(msg) {
  if (desk.onOutcome(msg)) return;
  // Another case of this village: decided after its call, it is in the inbox too. The notice
  // stays until the clerk acknowledges it.
  notify(`案件 ${msg.case_no}:${msg.status_text}。结果在收件箱里,可以打印。`, 'info', { sticky: true });
}

function onVillagerRequested(msg) {
  desk.onVillagerRequested(msg);
}

function openTool(view) {
  showView(view);
  if (view === 'inbox') inbox.refresh();
  if (view === 'progress') progress.fill('');
  if (view === 'resume') resume.reset();
  if (view === 'booking') booking.open(state.matters, state.selected);
  if (view === 'ledger') ledger.open();
}

// ---- start ---------------------------------------------------------------------------------

$('#matter-search').addEventListener('input', onSearchInput);
$('#call-button').addEventListener('click', requestCall);
$('#cancel-button').addEventListener('click', cancelCall);
$('#hangup-button').addEventListener('click', hangUp);
$('#ended-ok').addEventListener('click', finishCase);
$('#ended-again').addEventListener('click', () => {
  rating.submit();
  rating.hide();
  showPick();
  requestCall();
});
$('#inbox-button').addEventListener('click', () => openTool('inbox'));
$('#progress-open').addEventListener('click', () => openTool('progress'));
$('#resume-open').addEventListener('click', () => openTool('resume'));
$('#booking-open').addEventListener('click', () => openTool('booking'));
$('#ledger-open').addEventListener('click', () => openTool('ledger'));
for (const button of $$('.back-button')) button.addEventListener('click', showPick);
$('#accept-call-button').addEventListener('click', acceptInvite);
$('#switch-keep').addEventListener('click', () => {
  $('#switch-dialog').hidden = true;
  state.switchTo = null;
});
$('#switch-confirm').addEventListener('click', () => {
  $('#switch-dialog').hidden = true;
  const matter = state.switchTo;
  state.switchTo = null;
  if (!matter) return;
  desk.leaveCase();
  selectMatter(matter);
});
$('#decline-call-button').addEventListener('click', declineInvite);
$('#setup-retry').addEventListener('click', () => location.reload());

if (!token) {
  connection.dataset.state = 'stopped';
  connection.textContent = '未开通';
  showEnrol(enrolFromLink);
} else {
  setInterval(maybeRotate, ROTATE_CHECK_MS);
  signal = new Signal({
    token,
    statusElement: connection,
    onUnauthorized: unauthorized,
    onReplaced: () => showSetup('这个页面在别处打开了', '同一台设备在另一个窗口或另一台电脑上打开了本页面,这里已经断开。', { retry: true }),
  });
  /** @type {any} */ (window).__cunneng.signal = signal;
  signal.on('welcome', onWelcome);
  signal.on('queue.position', onQueuePosition);
  signal.on('call.started', onCallStarted);
  signal.on('call.transferred', onCallTransferred);
  signal.on('call.requeued', onCallRequeued);
  signal.on('call.peer_reconnecting', onPeerReconnecting);
  signal.on('call.peer_reconnected', onPeerReconnected);
  signal.on('call.ended', onCallEnded);
  signal.on('group.invite', onGroupInvite);
  signal.on('group.invite_expired', onGroupInviteExpired);
  signal.on('group.joined', onGroupJoined);
  signal.on('group.ended', onGroupEnded);
  signal.on('error', onError);
  signal.on('paper.rescan_requested', onRescanRequested);
  signal.on('outcome', onOutcome);
  signal.on('villager.requested', onVillagerRequested);
  signal.on('inbox.item', (msg) => inbox.onItem(msg.item));
  signal.connect();
  addEventListener('pagehide', () => media.stop());
  // A scan still on its way would be lost with the page: ask first.
  addEventListener('beforeunload', (event) => {
    if (desk.uploading) {
      event.preventDefault();
      event.returnValue = '';
    }
  });
}
