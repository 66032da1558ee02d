// @ts-check
// Town dispatcher: choose villages, start a group call into their kiosks, watch who joined,
// see every village's video, end the call.
import { api, messageForCode } from './api.js';
import { CallView } from './callview.js';
import {
  $, STAFF_TOKEN_KEY, el, forgetToken, goToLogin, nameOf, notify, showView, takeToken,
} from './common.js';
import { CallMedia } from './media.js';
import { GROUP_MEMBER } from './words.js';
import { Signal } from './ws.js';

const VILLAGE_REFRESH_MS = 15_000;
const RESUME_LIMIT_MS = 5_000;

const state = {
  me: null,
  villages: [],
  selected: new Set(),
  startReq: null,
  groupId: null,
  members: [],
  left: new Set(),
  resumeTimer: null,
  // The stop button was pressed before group.start was confirmed.
  endWanted: false,
};

const token = takeToken(STAFF_TOKEN_KEY);
const connection = $('#connection');
const callView = new CallView({
  remoteVideo: null,
  localVideo: $('#local-video'),
  tiles: $('#group-videos'),
  mediaState: $('#media-state'),
  captionOf,
  onStreamsChanged: () => {
    $('#group-empty').hidden = callView.streams.size > 0;
  },
});
const media = new CallMedia({ signal: () => signal, callView, onProblem: (problem) => notify(problem, 'warning') });

/** @type {any} */ (window).__cunneng = {
  get pc() { return media.pc; },
  get me() { return state.me; },
  state,
  media,
};

/** Caption of an incoming stream: the village, if group.state tells which label is whose. */
function captionOf(label) {
  const member = state.members.find((m) => m.label === label);
  if (member) return nameOf(member.village);
  return label.startsWith('kiosk:') ? `村便民服务室 ${label.slice(6)}` : label;
}

// ---- villages ------------------------------------------------------------------------------

async function loadVillages() {
  try {
    state.villages = (await api('/api/villages', { token })) ?? [];
    renderVillages();
  } catch (err) {
    if (err.status === 401) return unauthorized();
    $('#village-count').textContent = `村的名单没有加载出来:${err.message}`;
  }
}

function renderVillages() {
  const known = new Set(state.villages.map((v) => v.id));
  for (const id of state.selected) if (!known.has(id)) state.selected.delete(id);
  $('#village-list').replaceChildren(
    ...state.villages.map((village) => {
      const box = el('input', {
        type: 'checkbox',
        id: `village-${village.id}`,
        testid: 'village-checkbox',
        'data-village-id': village.id,
        checked: state.selected.has(village.id),
        onchange: (event) => {
          if (event.target.checked) state.selected.add(village.id);
          else state.selected.delete(village.id);
          renderCount();
        },
      });
      return el(
        'li',
        { class: `village-row ${village.online ? 'online' : 'offline'}` },
        el('label', { for: `village-${village.id}` }, box,
          el('span', { class: 'village-name' }, village.name),
          el('span', { class: 'tag' }, village.online ? '在线' : '不在线')),
      );
    }),
  );
  renderCount();
}

function renderCount() {
  const online = state.villages.filter((v) => v.online).length;
  $('#village-count').textContent = `共 ${state.villages.length} 个村,${online} 个在线;已选 ${state.selected.size} 个`;
  $('#group-start-button').disabled = state.selected.size === 0;
}

function selectOnline(onlineOnly) {
  state.selected = new Set(onlineOnly ? state.villages.filter((v) => v.online).map((v) => v.id) : []);
  renderVillages();
}

// ---- the group call ------------------------------------------------------------------------

function startGroup() {
  if (state.selected.size === 0) return;
  const req = signal.send({ type: 'group.start', village_ids: [...state.selected] });
  if (req === null) {
    notify('网络中断了,连上后请再试', 'error');
    return;
  }
  state.startReq = req;
  state.members = state.villages
    .filter((v) => state.selected.has(v.id))
    .map((v) => ({ village: { id: v.id, name: v.name }, state: 'invited' }));
  renderMembers();
  media.ensureLocal();
  showView('group');
}

function renderMembers() {
  $('#member-list').replaceChildren(
    ...state.members.map((m) =>
      el(
        'li',
        { class: `member ${m.state}`, testid: 'group-member', 'data-village-id': m.village?.id, 'data-member-state': m.state },
        el('span', { class: 'member-name' }, nameOf(m.village)),
        el('span', { class: 'member-state' }, GROUP_MEMBER[m.state] ?? m.state),
        // A village that declined, did not answer or left can be called again.
        state.groupId !== null && ['declined', 'no_answer', 'left'].includes(m.state) && m.village?.id !== undefined
          ? el('button', { type: 'button', class: 'secondary', testid: 'group-reinvite', onclick: () => reinvite(m.village.id) }, '再呼叫这个村')
          : null,
      ),
    ),
  );
  // Nobody joined and nobody is still being called: waiting would be in vain.
  const waiting = state.members.some((m) => m.state === 'invited' || m.state === 'joined');
  $('#group-empty').textContent = waiting || state.members.length === 0 ? '还没有村加入,请稍等…' : '没有村接听这次群呼。可以点"结束群呼",过一会儿再呼叫。';
  callView.refreshCaptions();
}

/** Invite a village of the open group call again (group.reinvite). */
function reinvite(villageId) {
  if (state.groupId === null) return;
  if (signal.send({ type: 'group.reinvite', group_id: state.groupId, village_id: villageId }) === null) {
    notify('网络中断了,连上后请再试', 'error');
  }
}

/** Leave the group call locally (media, camera, state); the caller chooses the next screen. */
function endGroup() {
  media.stop();
  state.groupId = null;
  state.startReq = null;
  state.members = [];
  clearTimeout(state.resumeTimer);
}

function backToPick(message) {
  endGroup();
  showView('pick');
  loadVillages();
  if (message) notify(message);
}

function hangUp() {
  if (state.groupId === null) {
    // group.start not confirmed yet: forget it here; a late group.state is ended at once.
    state.endWanted = true;
    backToPick('');
    return;
  }
  state.left.add(state.groupId);
  signal.send({ type: 'group.end', group_id: state.groupId });
  backToPick('群呼已结束。');
}

// ---- server messages -----------------------------------------------------------------------

let signal = null;

function showSetup(title, message, { retry = false } = {}) {
  endGroup();
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
  if (msg.me?.role !== 'dispatcher') {
    signal.stop();
    const where = ['approver', 'chief'].includes(msg.me?.role) ? '请使用"镇窗口"页面。' : '这个页面是给镇调度员用的。';
    showSetup('这个账号不能发起群呼', where);
    return;
  }
  $('#place').textContent = [msg.me.name, nameOf(msg.me.town), '调度'].filter(Boolean).join(' · ');
  if (signal.isReconnect) {
    if (state.groupId !== null) {
      clearTimeout(state.resumeTimer);
      state.resumeTimer = setTimeout(() => backToPick('网络断开的时候,群呼已经结束了。'), RESUME_LIMIT_MS);
    }
  } else {
    showView('pick');
    loadVillages();
  }
}

function onGroupState(msg) {
  if (state.left.has(msg.group_id)) return;
  if (state.endWanted && state.groupId === null) {
    state.endWanted = false;
    state.left.add(msg.group_id);
    signal.send({ type: 'group.end', group_id: msg.group_id });
    return;
  }
  if (state.groupId !== null && state.groupId !== msg.group_id) return;
  clearTimeout(state.resumeTimer);
  state.groupId = msg.group_id;
  state.startReq = null;
  state.members = msg.members ?? [];
  renderMembers();
  showView('group');
  media.start(msg.room);
}

function onGroupEnded(msg) {
  if (msg.group_id !== state.groupId) return;
  backToPick('群呼已结束。');
}

function onError(msg) {
  if (media.ownsRequest(msg.req)) return;
  if (msg.req !== undefined && msg.req === state.startReq) {
    backToPick('');
    notify(`没有呼叫成功:${messageForCode(msg.code, msg.message)}`, 'error');
    return;
  }
  if (msg.code !== 'unauthorized') notify(messageForCode(msg.code, msg.message), 'error');
}

// ---- start ---------------------------------------------------------------------------------

$('#select-online').addEventListener('click', () => selectOnline(true));
$('#select-none').addEventListener('click', () => selectOnline(false));
$('#group-start-button').addEventListener('click', startGroup);
$('#hangup-button').addEventListener('click', hangUp);
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
setInterval(() => {
  if (document.body.dataset.state === 'pick' && signal?.isOpen) loadVillages();
}, VILLAGE_REFRESH_MS);

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
  signal.on('group.state', onGroupState);
  signal.on('group.ended', onGroupEnded);
  signal.on('error', onError);
  signal.connect();
  addEventListener('pagehide', () => media.stop());
}
