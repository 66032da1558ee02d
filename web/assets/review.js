// @ts-check
// The review page (可查可追溯), for supervisors (county-wide or of one town) and town chiefs
// (their own town, read-only): find cases by every condition, open one (its facts, timeline,
// papers, every call with its recordings played in sync, who looked at it, its legal hold),
// export it, and the access report by person and date (the statistics are a page of their
// own, /stats, one button away). Every look is recorded by the server before it answers.
// Routes: `/review`, `/review?case=NO` (a case), `/review?view=access`, `/review?view=groups`
// (the group calls, 一对多) and `/review?group=ID` (one of them, replayed).
import { api } from './api.js';
import { $, STAFF_TOKEN_KEY, el, fill, forgetToken, goToLogin, notify, showView, takeToken } from './common.js';
import { signedInStaff } from './staffpage.js';
import { PaperStore, PaperViewer, formatSize, isImage, thumbnail } from './papers.js';
import { LedgerView } from './ledger.js';
import { SyncPlayer } from './replay.js';
import { ACCESS_ACTION, BOOKING_STATUS, CALL_ENDED_TOWN, DECISION_STATE, EVENT, OUTCOME, RATING, SIGNOFF_DECISION, STATUS } from './words.js';

/**
 * @typedef {{ id: number, name: string }} Named
 * @typedef {{ id: number, name: string, villages: Named[], windows: Named[], staff: Named[] }} TownChoices
 * @typedef {{ towns: TownChoices[], matters: { id: number, name: string, plain_name: string }[] }} Choices
 * @typedef {{ case_no: string, status: string, status_text: string, outcome: ?string, signoff: ?string,
 *   needs_signoff: boolean, matter: { id: number, name: string, plain_name: string }, village: Named, town: Named,
 *   villager: ?string, decided_by: ?Named, created_at_ms: number, updated_at_ms: number }} ReviewRow
 * @typedef {{ total: number, items: ReviewRow[], next_cursor: ?string }} SearchPage
 * @typedef {{ kind: string, id: ?number, name: string }} Actor
 * @typedef {{ at_ms: number, actor: Actor, kind: string, detail: any }} TimelineEntry
 * @typedef {{ id: number, kind: string, name: string, checklist_item: ?string, content_type: string, size: number,
 *   sha256: string, uploaded_at_ms: number, uploaded_by: Actor, url: string, removed_at_ms?: number }} Paper
 * @typedef {{ id: number, window: Named, staff: ?Named, requested_at_ms: number, answered_at_ms: ?number,
 *   ended_at_ms: ?number, end_reason: ?string }} CallView
 * @typedef {{ seq: number, at_ms: number, case_id: ?number, case_no: ?string, actor: Actor, action: string,
 *   detail: any, address: ?string }} AccessRow
 * @typedef {{ action: string, by: number, by_name: string, at_ms: number, reason: string }} HoldHistoryRow
 * @typedef {import('./replay.js').Recording} Recording
 * @typedef {{ case: any, bookings: any[], recordings: Recording[], destroyed_papers: { paper_id: number, destroyed_at_ms: number }[],
 *   access: AccessRow[], hold: { current: ?{ placed_by: number, placed_at_ms: number, reason: string }, history: HoldHistoryRow[] },
 *   sealed_at_ms: ?number }} CaseReview
 * @typedef {{ key: string, room: string, take: number, start_ms: number, end_ms: number, recordings: Recording[], call: ?CallView }} Session
 * @typedef {{ participant: string, side: string, name: string }} GroupMember
 * @typedef {{ id: string, started_at_ms: number, ended_at_ms: ?number, members: GroupMember[], incomplete: number }} GroupCallSummary
 * @typedef {{ total: number, items: GroupCallSummary[], next_cursor: ?string }} GroupCallPage
 * @typedef {{ call: GroupCallSummary, recordings: Recording[] }} GroupCallReview
 */

const token = takeToken(STAFF_TOKEN_KEY);
const papers = new PaperStore(token);
const viewer = new PaperViewer({ store: papers });

const state = {
  /** @type {any} */
  me: null,
  /** @type {Choices | null} */
  choices: null,
  /** @type {string | null} */
  cursor: null,
  /** @type {URLSearchParams | null} the last search's conditions */
  params: null,
  /** @type {CaseReview | null} */
  review: null,
  /** @type {Session[]} */
  sessions: [],
  /** @type {SyncPlayer | null} */
  player: null,
  cookieSet: false,
  /** @type {string | null} the group calls' next page */
  groupCursor: null,
  /** @type {GroupCallReview | null} */
  group: null,
};

/** For tests and the console: the page's state and the current player. */
// @ts-ignore: the page's hook for tests
window.__cunneng = {
  state,
  get player() {
    return state.player;
  },
};

// ---- formatting ---------------------------------------------------------------------------

// Times are China time wherever the page runs, as the case numbers and the date filters are.
const CHINA = 'Asia/Shanghai';
const dateTimeFormat = new Intl.DateTimeFormat('sv-SE', {
  timeZone: CHINA, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hour12: false,
});

/** "2026-12-04 10:32" (China time) of Unix ms. */
function dateTime(/** @type {?number} */ ms) {
  return ms ? dateTimeFormat.format(new Date(ms)) : '';
}

/** "10:32:05" (China time) of Unix ms. */
function timeOfDay(/** @type {?number} */ ms) {
  return ms ? new Date(ms).toLocaleTimeString('zh-CN', { timeZone: CHINA, hour: '2-digit', minute: '2-digit', second: '2-digit' }) : '';
}

/** Who did it, in words. */
function actorName(/** @type {Actor} */ actor) {
  if (!actor) return '';
  if (actor.kind === 'system') return '系统';
  if (actor.kind === 'kiosk') return actor.name || '村便民服务室';
  return actor.name || '工作人员';
}

/** A short description of a timeline entry's detail (never personal data: the server keeps none there). */
function eventDetail(/** @type {TimelineEntry} */ e) {
  const d = e.detail ?? {};
  switch (e.kind) {
    case 'call.requested':
    case 'call.answered':
      return d.window?.name ?? '';
    case 'call.ended':
      return d.reason ? CALL_ENDED_TOWN[d.reason] ?? '' : '';
    case 'outcome.decided':
    case 'outcome.final':
      return [OUTCOME[d.outcome] ?? '', d.note, d.pending_signoff ? '(待窗口负责人审核)' : ''].filter(Boolean).join(' ');
    case 'case.finished':
      return d.note ?? '';
    case 'signoff.approved':
    case 'signoff.returned':
      return d.reason ? `原因:${d.reason}` : '';
    case 'rescan.requested':
      return d.note ?? '';
    case 'paper.added':
      return [d.checklist_item, d.kind === 'result' ? '结果文书' : '', Number.isFinite(d.size) ? formatSize(d.size) : ''].filter(Boolean).join(' · ');
    case 'paper.retagged':
      return `${d.from || '其他材料'} → ${d.to || '其他材料'}`;
    case 'paper.removed':
      return d.checklist_item || '其他材料';
    case 'rating.given':
      return RATING[d.rating] ?? '';
    default:
      return '';
  }
}

/** Which side a recording is, in words. */
function sideLabel(/** @type {Recording} */ r, /** @type {CaseReview} */ review) {
  const id = Number(r.participant.split(':')[1]);
  if (r.side === 'village') return `村里:${review.case.village.name}`;
  const staff = review.case.calls.map((/** @type {CallView} */ c) => c.staff).find((/** @type {?Named} */ s) => s?.id === id);
  return `镇上:${staff?.name ?? '窗口工作人员'}`;
}

// ---- start --------------------------------------------------------------------------------

/** @param {string} title @param {string} message */
function setup(title, message, { login = true } = {}) {
  fill($('#setup-title'), title);
  fill($('#setup-message'), message);
  /** @type {HTMLElement} */ ($('#setup-login')).hidden = !login;
  showView('setup');
}

async function start() {
  state.me = await signedInStaff(
    token,
    ['supervisor', 'chief'],
    '案件查阅是给督查人员和窗口负责人用的。请用督查账号登录。',
    setup,
  );
  if (!state.me) return;
  const who = state.me.name ?? '';
  const town = state.me.town?.name;
  fill($('#who'), `${who}${town ? `(${town})` : '(全县)'}`);
  fill($('#place'), town ? `案件查阅 · ${town}` : '案件查阅 · 全县');
  try {
    state.choices = await api('/api/review/choices', { token });
  } catch (caught) {
    const err = /** @type {any} */ (caught);
    notify(err.message, 'error');
  }
  fillChoices();
  await route();
}

/** Show what the address asks for. */
async function route() {
  const q = new URLSearchParams(location.search);
  const caseNo = q.get('case');
  if (caseNo) return openCase(caseNo, { push: false });
  const group = q.get('group');
  if (group) return openGroup(group, { push: false });
  if (q.get('view') === 'access') return showAccess({ push: false });
  if (q.get('view') === 'ledger') return showLedger({ push: false });
  if (q.get('view') === 'groups') return showGroups({ push: false });
  return showSearch({ push: false });
}

addEventListener('popstate', () => {
  route();
});

function navigate(/** @type {string} */ search) {
  history.pushState(null, '', `/review${search}`);
}

function markNav(/** @type {'search' | 'access' | 'case' | 'groups' | 'ledger'} */ which) {
  $('#nav-ledger')?.setAttribute('aria-pressed', String(which === 'ledger'));
  $('#nav-search')?.setAttribute('aria-pressed', String(which === 'search' || which === 'case'));
  $('#nav-groups')?.setAttribute('aria-pressed', String(which === 'groups'));
  $('#nav-access')?.setAttribute('aria-pressed', String(which === 'access'));
}

$('#nav-search')?.addEventListener('click', () => showSearch({ push: true }));
$('#nav-groups')?.addEventListener('click', () => showGroups({ push: true }));
$('#nav-access')?.addEventListener('click', () => showAccess({ push: true }));
$('#nav-ledger')?.addEventListener('click', () => showLedger({ push: true }));
$('#group-back')?.addEventListener('click', () => showGroups({ push: true }));
$('#nav-stats')?.addEventListener('click', () => location.assign('/stats'));
$('#case-back')?.addEventListener('click', () => showSearch({ push: true }));
$('#setup-login')?.addEventListener('click', () => {
  forgetToken(STAFF_TOKEN_KEY);
  goToLogin();
});
$('#logout-button')?.addEventListener('click', async () => {
  try {
    await api('/api/playback-cookie', { method: 'DELETE', token });
    await api('/api/logout', { method: 'POST', token });
  } catch {
    // Logged out here anyway.
  }
  forgetToken(STAFF_TOKEN_KEY);
  location.replace('/login');
});

// ---- the search ---------------------------------------------------------------------------

/** @param {HTMLSelectElement} select @param {[string, string][]} options [value, text] */
function setOptions(select, options, any = '不限') {
  const keep = select.value;
  fill(select, el('option', { value: '' }, any), ...options.map(([value, text]) => el('option', { value }, text)));
  if (options.some(([v]) => v === keep)) select.value = keep;
}

const select = (/** @type {string} */ id) => /** @type {HTMLSelectElement} */ ($(id));

function fillChoices() {
  const towns = state.choices?.towns ?? [];
  // A town reviewer has his town only: the choice shows it, fixed.
  setOptions(select('#f-town'), towns.length === 1 ? [] : towns.map((t) => [String(t.id), t.name]), towns.length === 1 ? towns[0].name : '全县');
  if (towns.length === 1) select('#f-town').disabled = true;
  fillTownChoices();
  setOptions(select('#f-matter'), (state.choices?.matters ?? []).map((m) => [String(m.id), m.plain_name && m.plain_name !== m.name ? `${m.plain_name}(${m.name})` : m.name]));
  setOptions(select('#f-status'), ['open', 'missing', 'later', 'signoff', 'returned', 'done', 'refused'].map((s) => [s, STATUS[s]]));
  setOptions(select('#f-outcome'), ['done', 'missing', 'refused', 'later'].map((o) => [o, OUTCOME[o]]));
  setOptions(select('#f-signoff'), [
    ['not_required', '不需要一审一核'],
    ['pending', '等窗口负责人审核'],
    ['returned', SIGNOFF_DECISION.returned],
    ['approved', SIGNOFF_DECISION.approved],
  ]);
  setOptions(select('#f-rating'), [...['good', 'fair', 'bad'].map((r) => /** @type {[string, string]} */ ([r, RATING[r]])), ['none', '没有评价']]);
}

/** The villages, windows and staff of the chosen town (or of every town). */
function fillTownChoices() {
  const towns = state.choices?.towns ?? [];
  const chosen = select('#f-town').value;
  const shown = chosen ? towns.filter((t) => String(t.id) === chosen) : towns;
  const many = shown.length > 1;
  /** @param {(t: TownChoices) => Named[]} pick @returns {[string, string][]} */
  const of = (pick) => shown.flatMap((t) => pick(t).map((n) => /** @type {[string, string]} */ ([String(n.id), many ? `${t.name} ${n.name}` : n.name])));
  setOptions(select('#f-village'), of((t) => t.villages));
  setOptions(select('#f-window'), of((t) => t.windows));
  setOptions(select('#f-approver'), of((t) => t.staff));
}

select('#f-town').addEventListener('change', fillTownChoices);

/** The search's conditions from the form (the one box: a case number, a full name or 4 digits). */
function conditions() {
  const p = new URLSearchParams();
  const query = /** @type {HTMLInputElement} */ ($('#review-query')).value.trim();
  if (query) {
    if (/^[0-9Xx]{4}$/.test(query)) p.set('villager', query);
    else if (/^[A-Za-z0-9-]+$/.test(query)) p.set('case_no', query.toUpperCase());
    else p.set('villager', query);
  }
  const put = (/** @type {string} */ key, /** @type {string} */ id) => {
    const v = /** @type {HTMLInputElement | HTMLSelectElement} */ ($(id)).value;
    if (v) p.set(key, v);
  };
  const towns = state.choices?.towns ?? [];
  if (!(towns.length === 1)) put('town', '#f-town');
  put('village', '#f-village');
  put('matter', '#f-matter');
  put('window', '#f-window');
  put('approver', '#f-approver');
  put('from', '#f-from');
  put('to', '#f-to');
  put('status', '#f-status');
  put('outcome', '#f-outcome');
  put('signoff', '#f-signoff');
  put('rating', '#f-rating');
  const rec = select('#f-recording').value;
  if (rec === 'yes') p.set('has_recording', 'true');
  if (rec === 'no') p.set('has_recording', 'false');
  if (rec === 'incomplete') p.set('recording_incomplete', 'true');
  const hold = select('#f-hold').value;
  if (hold) p.set('legal_hold', hold === 'yes' ? 'true' : 'false');
  put('sort', '#f-sort');
  return p;
}

/** @param {{ push: boolean }} options */
async function showSearch({ push }) {
  if (push) navigate('');
  stopPlayer();
  markNav('search');
  showView('search');
  if (!state.params) await search();
}

async function search({ more = false } = {}) {
  const errorBox = /** @type {HTMLElement} */ ($('#search-error'));
  errorBox.hidden = true;
  if (!more) {
    state.params = conditions();
    state.cursor = null;
  }
  const p = new URLSearchParams(state.params ?? undefined);
  if (more && state.cursor) p.set('cursor', state.cursor);
  p.set('limit', '30');
  const button = /** @type {HTMLButtonElement} */ ($('#review-search'));
  button.disabled = true;
  try {
    /** @type {SearchPage} */
    const page = await api(`/api/review/cases?${p}`, { token });
    state.cursor = page.next_cursor;
    renderResults(page, more);
  } catch (caught) {
    const err = /** @type {any} */ (caught);
    fill(errorBox, err.message);
    errorBox.hidden = false;
  } finally {
    button.disabled = false;
  }
}

/** @param {SearchPage} page @param {boolean} more */
function renderResults(page, more) {
  const body = /** @type {HTMLElement} */ ($('#results'));
  const rows = page.items.map((r) =>
    el(
      'tr',
      { class: 'result-row', testid: 'review-result', 'data-case-no': r.case_no, 'data-status': r.status, tabindex: '0', onclick: () => openCase(r.case_no, { push: true }), onkeydown: (/** @type {KeyboardEvent} */ e) => { if (e.key === 'Enter') openCase(r.case_no, { push: true }); } },
      el('td', {}, el('button', { type: 'button', class: 'link-button case-link', testid: 'review-open' }, r.case_no)),
      el('td', {}, r.matter.plain_name || r.matter.name),
      el('td', {}, `${r.town.name} ${r.village.name}`),
      el('td', {}, r.villager ?? '—'),
      el('td', {}, r.decided_by?.name ?? '—'),
      el('td', {}, el('span', { class: `tag status-${r.status}` }, STATUS[r.status] ?? r.status_text), r.outcome ? ` ${OUTCOME[r.outcome] ?? ''}` : ''),
      el('td', {}, dateTime(r.created_at_ms)),
    ),
  );
  if (more) body.append(...rows);
  else fill(body, ...rows);
  const shown = body.querySelectorAll('tr').length;
  fill($('#search-total'), page.total === 0 ? '没有找到符合条件的案件。' : `共 ${page.total} 件,显示 ${shown} 件`);
  /** @type {HTMLElement} */ ($('#search-total')).dataset.total = String(page.total);
  /** @type {HTMLElement} */ ($('#search-more')).hidden = !page.next_cursor;
}

$('#search-form')?.addEventListener('submit', (/** @type {Event} */ event) => {
  event.preventDefault();
  search();
});
$('#search-more')?.addEventListener('click', () => search({ more: true }));
$('#search-clear')?.addEventListener('click', () => {
  /** @type {HTMLFormElement} */ ($('#search-form')).reset();
  fillTownChoices();
  search();
});

// ---- one case -----------------------------------------------------------------------------

function stopPlayer() {
  state.player?.destroy();
  state.player = null;
}

/** @param {string} caseNo @param {{ push: boolean }} options */
async function openCase(caseNo, { push }) {
  if (push) navigate(`?case=${encodeURIComponent(caseNo)}`);
  markNav('case');
  stopPlayer();
  /** @type {CaseReview} */
  let review;
  try {
    review = await api(`/api/review/cases/${encodeURIComponent(caseNo)}`, { token });
  } catch (caught) {
    const err = /** @type {any} */ (caught);
    const why = err.status === 404 ? `没有找到案件 ${caseNo}。` : err.status === 403 ? `案件 ${caseNo} 不在您可以查阅的范围内。` : err.message;
    showView('search');
    const box = /** @type {HTMLElement} */ ($('#search-error'));
    fill(box, why);
    box.hidden = false;
    box.dataset.code = String(err.status);
    return;
  }
  state.review = review;
  state.sessions = [];
  renderCase(review);
  showView('case');
  if (review.recordings.length) await ensurePlaybackCookie();
  renderSessions(review);
}

/** The `<video>` elements send the staff token by a cookie for the media paths only. */
async function ensurePlaybackCookie() {
  if (state.cookieSet) return;
  try {
    await api('/api/playback-cookie', { method: 'POST', token });
    state.cookieSet = true;
  } catch (caught) {
    const err = /** @type {any} */ (caught);
    notify(`录像放不了:${err.message}`, 'error');
  }
}

/** Reload the case shown (after a hold changed), keeping the call shown. */
async function reloadCase() {
  if (!state.review) return;
  const keep = select('#call-choice').value;
  /** @type {CaseReview} */
  const review = await api(`/api/review/cases/${encodeURIComponent(state.review.case.case_no)}`, { token });
  state.review = review;
  renderFacts(review);
  renderTimeline(review);
  renderAccess(review);
  renderHold(review);
  if (keep) select('#call-choice').value = keep;
}

/** @param {CaseReview} review */
function renderCase(review) {
  const c = review.case;
  fill($('#case-no'), c.case_no);
  /** @type {HTMLElement} */ ($('#case-no')).dataset.caseNo = c.case_no;
  const status = /** @type {HTMLElement} */ ($('#case-status'));
  fill(status, STATUS[c.status] ?? c.status_text);
  status.className = `tag status-${c.status}`;
  renderFacts(review);
  renderTimeline(review);
  renderPapers(review);
  renderAccess(review);
  renderHold(review);
  selectTab('facts');
}

/** @param {CaseReview} review */
function renderFacts(review) {
  const c = review.case;
  /** @type {[string, any][]} */
  const rows = [
    ['事项', `${c.matter.plain_name || c.matter.name}${c.matter.plain_name && c.matter.plain_name !== c.matter.name ? `(${c.matter.name})` : ''}${c.matter.needs_signoff ? ' · 一审一核' : ''}`],
    ['村(社区)', `${c.town.name} ${c.village.name}`],
    ['办事人', c.villager ? [c.villager.name, c.villager.phone, c.villager.id_number_masked].filter(Boolean).join(' · ') : '没有登记'],
    ['登记时间', dateTime(c.created_at_ms)],
  ];
  for (const call of /** @type {CallView[]} */ (c.calls)) {
    const how = call.end_reason === 'transferred' ? '(转到别的窗口)' : call.end_reason ? `(${CALL_ENDED_TOWN[call.end_reason] ?? ''})` : '';
    rows.push(['通话', `${dateTime(call.requested_at_ms)} ${call.window.name} ${call.staff ? `· ${call.staff.name}接听` : '· 没有接听'} ${how}`]);
  }
  const o = c.outcome;
  if (o) {
    rows.push(['决定', el('span', { testid: 'review-decision' }, `${OUTCOME[o.outcome] ?? o.outcome} · ${o.decided_by?.name ?? ''} · ${dateTime(o.decided_at_ms)}${o.note ? ` · 理由:${o.note}` : ''}${o.missing_items?.length ? ` · 缺:${o.missing_items.join('、')}` : ''}`)]);
    if (o.signoff) rows.push(['一审一核', el('span', { testid: 'review-signoff' }, `${SIGNOFF_DECISION[o.signoff.decision] ?? ''} · ${o.signoff.by.name} · ${dateTime(o.signoff.at_ms)}${o.signoff.reason ? ` · 原因:${o.signoff.reason}` : ''}`)]);
    else if (c.matter.needs_signoff) rows.push(['一审一核', o.final ? '' : '等窗口负责人审核']);
  } else {
    rows.push(['决定', DECISION_STATE[c.status] ?? '']);
  }
  rows.push(['评价', c.rating ? `${RATING[c.rating.rating] ?? ''}${c.rating.comment ? ` · ${c.rating.comment}` : ''}` : '没有评价']);
  if (review.bookings.length) {
    rows.push(['预约', review.bookings.map((b) => `${dateTime(b.start_ms)} ${b.window?.name ?? ''} ${BOOKING_STATUS[b.status] ?? ''}`).join(';')]);
  }
  if (review.sealed_at_ms) rows.push(['签名清单', `已封存 ${dateTime(review.sealed_at_ms)}`]);
  fill($('#facts'), ...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

/** The timeline: who, when, what; entries during a recorded call jump the player there. */
function renderTimeline(/** @type {CaseReview} */ review) {
  const items = /** @type {TimelineEntry[]} */ (review.case.timeline).map((e) => {
    const session = state.sessions.find((s) => e.at_ms >= s.start_ms && e.at_ms <= s.end_ms);
    return el(
      'li',
      { class: 'timeline-row', testid: 'timeline-entry', 'data-kind': e.kind, 'data-at-ms': e.at_ms },
      el('span', { class: 'timeline-time' }, dateTime(e.at_ms).slice(5), ' ', timeOfDay(e.at_ms).slice(-3)),
      el('span', { class: 'timeline-who' }, actorName(e.actor)),
      el('span', { class: 'timeline-what' }, EVENT[e.kind] ?? e.kind, eventDetail(e) ? el('small', {}, eventDetail(e)) : null),
      session ? el('button', { type: 'button', class: 'secondary small', testid: 'timeline-seek', title: '在录像里看这一刻', onclick: () => jumpTo(session, e.at_ms) }, '▶ 看录像') : null,
    );
  });
  fill($('#timeline'), ...items);
}

/**
 * Papers and result documents, in the viewer; destroyed ones say so, with the date; scans the
 * village took back are listed too (kept for the record), marked 已删除.
 */
function renderPapers(/** @type {CaseReview} */ review) {
  const destroyed = new Map(review.destroyed_papers.map((d) => [d.paper_id, d.destroyed_at_ms]));
  /** @type {Paper[]} */
  const all = [...review.case.papers, ...(review.case.removed_papers ?? [])];
  const viewable = all.filter((p) => !destroyed.has(p.id));
  const rows = all.map((p) => {
    const gone = destroyed.get(p.id);
    const what = `${p.kind === 'result' ? '结果文书' : p.checklist_item ?? '其他材料'}:${p.name}`;
    return el(
      'li',
      { class: `review-paper${gone ? ' destroyed' : ''}`, testid: 'review-paper', 'data-paper-id': p.id, 'data-kind': p.kind, 'data-destroyed': gone ? 'true' : 'false' },
      gone ? el('span', { class: 'thumb thumb-icon', 'aria-hidden': 'true' }, '—') : thumbnail({ contentType: p.content_type, name: p.name, source: isImage(p.content_type) ? papers.blobUrl(p) : null }),
      el('span', { class: 'paper-text' }, what, el('small', {}, `${dateTime(p.uploaded_at_ms)} · ${actorName(p.uploaded_by)} · ${formatSize(p.size)}`)),
      p.removed_at_ms ? el('span', { class: 'tag', testid: 'paper-removed' }, `村里已删除 ${dateTime(p.removed_at_ms)}`) : null,
      gone
        ? el('span', { class: 'tag destroyed-tag', testid: 'paper-destroyed' }, `已销毁 ${dateTime(gone).slice(0, 10)}`)
        : el('button', { type: 'button', class: 'secondary', testid: 'material-open', onclick: () => viewer.open(p, viewable) }, '查看'),
    );
  });
  fill($('#papers'), ...(rows.length ? rows : [el('li', { class: 'hint' }, '没有材料。')]));
}

/** "谁看过这个案件": every access entry of the case, newest first. */
function renderAccess(/** @type {CaseReview} */ review) {
  const rows = review.access.map((a) =>
    el(
      'li',
      { class: 'access-row', testid: 'access-entry', 'data-action': a.action, 'data-actor-id': a.actor?.id ?? '' },
      el('span', { class: 'access-time' }, dateTime(a.at_ms)),
      el('span', { class: 'access-who' }, actorName(a.actor)),
      el('span', { class: 'access-what' }, ACCESS_ACTION[a.action] ?? a.action, accessDetail(a) ? el('small', {}, accessDetail(a)) : null),
      a.address ? el('span', { class: 'access-address' }, a.address) : null,
    ),
  );
  fill($('#access-list'), ...(rows.length ? rows : [el('li', { class: 'hint' }, '还没有人看过。')]));
}

/** @param {AccessRow} a */
function accessDetail(a) {
  const d = a.detail ?? {};
  if (a.action === 'hold.placed' || a.action === 'hold.lifted') return d.reason ? `原因:${d.reason}` : '';
  if (a.action === 'paper.viewed' && d.paper_id) {
    const paper = state.review?.case.case_no !== a.case_no ? null : state.review?.case.papers.find((/** @type {Paper} */ p) => p.id === d.paper_id);
    return paper ? `${paper.checklist_item ? `${paper.checklist_item}:` : ''}${paper.name}` : `材料 #${d.paper_id}`;
  }
  if (a.action === 'group_call.opened') return d.group_call ? `群组通话 ${groupCallWhen(d.group_call)}` : '';
  if (a.action.startsWith('recording.')) {
    const bytes = d.bytes ?? d.sent;
    const span = d.from_ms && d.to_ms ? `${timeOfDay(d.from_ms)}–${timeOfDay(d.to_ms)}` : '';
    return [d.group_call ? `群组通话 ${groupCallWhen(d.group_call)}` : '', d.recording_id ? `录像 #${d.recording_id}` : '', Number.isFinite(bytes) ? `读取 ${formatSize(bytes)}` : '', span].filter(Boolean).join(' · ');
  }
  return '';
}

/** The legal hold: the current one and its history; placed and lifted with a reason. */
function renderHold(/** @type {CaseReview} */ review) {
  const h = review.hold.current;
  const holdState = /** @type {HTMLElement} */ ($('#hold-state'));
  fill(holdState, h ? `法律保全中:${h.reason}(${dateTime(h.placed_at_ms)} 起)` : '没有法律保全。');
  holdState.dataset.held = h ? 'true' : 'false';
  /** @type {HTMLElement} */ ($('#case-hold-tag')).hidden = !h;
  const mayDecide = state.me?.role === 'supervisor';
  /** @type {HTMLButtonElement} */ ($('#hold-place')).hidden = !mayDecide || Boolean(h);
  /** @type {HTMLButtonElement} */ ($('#hold-lift')).hidden = !mayDecide || !h;
  /** @type {HTMLElement} */ ($('#hold-reason')).hidden = !mayDecide;
  /** @type {HTMLElement} */ ($('label[for="hold-reason"]')).hidden = !mayDecide;
  /** @type {HTMLElement} */ ($('#hold-readonly')).hidden = mayDecide;
  const rows = review.hold.history.map((r) =>
    el(
      'li',
      { class: `hold-row ${r.action}`, testid: 'hold-history-entry', 'data-action': r.action },
      el('span', { class: 'hold-time' }, dateTime(r.at_ms)),
      el('span', {}, r.action === 'placed' ? ACCESS_ACTION['hold.placed'] : ACCESS_ACTION['hold.lifted']),
      el('span', {}, r.by_name),
      el('span', { class: 'hold-reason' }, `原因:${r.reason}`),
    ),
  );
  fill($('#hold-history'), ...(rows.length ? rows : [el('li', { class: 'hint' }, '没有保全记录。')]));
}

async function changeHold(/** @type {'place' | 'lift'} */ what) {
  if (!state.review) return;
  const box = /** @type {HTMLTextAreaElement} */ ($('#hold-reason'));
  const reason = box.value.trim();
  if (!reason) {
    notify('请写明原因', 'warning');
    box.focus();
    return;
  }
  const path = `/api/cases/${encodeURIComponent(state.review.case.case_no)}/legal-hold`;
  const buttons = [$('#hold-place'), $('#hold-lift')].map((b) => /** @type {HTMLButtonElement} */ (b));
  for (const b of buttons) b.disabled = true;
  try {
    await api(path, { method: what === 'place' ? 'PUT' : 'DELETE', body: { reason }, token });
    box.value = '';
    notify(what === 'place' ? '已设置法律保全' : '已解除法律保全');
    await reloadCase();
  } catch (caught) {
    const err = /** @type {any} */ (caught);
    notify(err.message, 'error');
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

$('#hold-place')?.addEventListener('click', () => changeHold('place'));
$('#hold-lift')?.addEventListener('click', () => changeHold('lift'));

/** Download the export bundle (a tar: papers, recordings, timeline, signed manifest, key). */
async function exportCase() {
  if (!state.review) return;
  const caseNo = state.review.case.case_no;
  const button = /** @type {HTMLButtonElement} */ ($('#export-case'));
  button.disabled = true;
  fill(button, '正在导出…');
  try {
    const response = await fetch(`/api/review/cases/${encodeURIComponent(caseNo)}/export`, { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store', credentials: 'same-origin' });
    if (!response.ok) throw new Error(response.status === 403 ? '您没有权限导出这个案件' : `导出失败 (HTTP ${response.status})`);
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const link = el('a', { href: url, download: `${caseNo}.cunneng-case.tar`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    notify(`已导出 ${caseNo}(${formatSize(blob.size)}),可用 cunneng audit verify-bundle 核验`);
    await reloadCase();
  } catch (caught) {
    const err = /** @type {any} */ (caught);
    notify(err.message || '导出失败', 'error');
  } finally {
    button.disabled = false;
    fill(button, '导出案件');
  }
}

$('#export-case')?.addEventListener('click', exportCase);

// ---- tabs ---------------------------------------------------------------------------------

function selectTab(/** @type {string} */ name) {
  for (const tab of document.querySelectorAll('.tab')) tab.setAttribute('aria-selected', String(/** @type {HTMLElement} */ (tab).dataset.tab === name));
  for (const panel of document.querySelectorAll('.tab-panel')) /** @type {HTMLElement} */ (panel).hidden = /** @type {HTMLElement} */ (panel).dataset.panel !== name;
}

for (const tab of document.querySelectorAll('.tab')) {
  tab.addEventListener('click', () => selectTab(/** @type {HTMLElement} */ (tab).dataset.tab ?? 'facts'));
}

// ---- calls and their recordings -----------------------------------------------------------

/** The recordings of a case by call room opening (each a call: both sides, or a group call's members). */
function sessionsOf(/** @type {CaseReview} */ review) {
  /** @type {Map<string, Session>} */
  const byRoom = new Map();
  for (const r of review.recordings) {
    const key = `${r.room}#${r.take}`;
    let s = byRoom.get(key);
    if (!s) {
      s = { key, room: r.room, take: r.take, start_ms: r.start_ms, end_ms: r.start_ms, recordings: [], call: null };
      byRoom.set(key, s);
    }
    s.recordings.push(r);
    s.start_ms = Math.min(s.start_ms, r.start_ms);
    s.end_ms = Math.max(s.end_ms, r.start_ms + r.duration_ms, r.ended_at_ms ?? 0);
  }
  const sessions = [...byRoom.values()].sort((a, b) => a.start_ms - b.start_ms);
  // The call of the log each opening belongs to: the answered one that was going on.
  for (const s of sessions) {
    /** @type {CallView[]} */
    const calls = review.case.calls.filter((/** @type {CallView} */ c) => c.answered_at_ms);
    const during = calls.filter((c) => (c.answered_at_ms ?? 0) <= s.start_ms + 10_000 && (c.ended_at_ms ?? Infinity) >= s.start_ms - 10_000);
    s.call = during.sort((a, b) => Math.abs((a.answered_at_ms ?? 0) - s.start_ms) - Math.abs((b.answered_at_ms ?? 0) - s.start_ms))[0] ?? null;
    s.recordings.sort((a, b) => (a.side === b.side ? a.id - b.id : a.side === 'village' ? -1 : 1));
  }
  return sessions;
}

function renderSessions(/** @type {CaseReview} */ review) {
  state.sessions = sessionsOf(review);
  const choice = select('#call-choice');
  fill(
    choice,
    ...state.sessions.map((s, i) =>
      el('option', { value: s.key }, `第 ${i + 1} 次通话 ${dateTime(s.start_ms).slice(5)}${s.call ? ` ${s.call.window.name}` : ''} · ${s.recordings.length} 方${s.recordings.some((r) => r.status === 'incomplete') ? ' · 不完整' : ''}`),
    ),
  );
  choice.hidden = state.sessions.length < 2;
  /** @type {HTMLElement} */ ($('#player-empty')).hidden = state.sessions.length > 0;
  renderTimeline(review);
  if (state.sessions.length) showSession(state.sessions[0]);
  else fill($('#player'));
}

select('#call-choice').addEventListener('change', () => {
  const s = state.sessions.find((x) => x.key === select('#call-choice').value);
  if (s) showSession(s);
});

/** The kinds of timeline events marked on the seek bar (plus transfers). */
const MARKED = ['villager.set', 'paper.added', 'paper.retagged', 'paper.removed', 'rescan.requested', 'outcome.decided', 'case.finished', 'case.resumed'];

/** The timeline events worth a mark on the bar: what happened during the call (a paper being
 * looked at is in the timeline and the access list, not on the bar). */
function marksOf(/** @type {CaseReview} */ review) {
  return /** @type {TimelineEntry[]} */ (review.case.timeline)
    .filter((e) => MARKED.includes(e.kind) || (e.kind === 'call.ended' && e.detail?.reason === 'transferred'))
    .map((e) => ({ at_ms: e.at_ms, kind: e.kind, text: `${EVENT[e.kind] ?? e.kind} ${actorName(e.actor)} ${eventDetail(e)}`.trim() }));
}

function showSession(/** @type {Session} */ session) {
  if (!state.review) return;
  const review = state.review;
  stopPlayer();
  select('#call-choice').value = session.key;
  const playable = session.recordings.filter((r) => !r.destroyed_at_ms && r.duration_ms > 0);
  if (!playable.length) {
    const gone = session.recordings.find((r) => r.destroyed_at_ms);
    fill($('#player'), el('p', { class: 'hint', testid: 'recording-destroyed' }, gone?.destroyed_at_ms ? `录像已销毁(${dateTime(gone.destroyed_at_ms).slice(0, 10)})` : '这次通话没有录到内容。'));
    return;
  }
  state.player = new SyncPlayer({ recordings: session.recordings, label: (r) => sideLabel(r, review), marks: marksOf(review) });
  fill($('#player'), state.player.root);
}

/** Show the call `session` at wall-clock `ms`. */
function jumpTo(/** @type {Session} */ session, /** @type {number} */ ms) {
  if (select('#call-choice').value !== session.key || !state.player) showSession(session);
  state.player?.seekToWall(ms);
}

// ---- group calls (一对多) ------------------------------------------------------------------

/** When a group call began, from its id (`GROUP-TAKE`, the take being the Unix ms it opened). */
function groupCallWhen(/** @type {string} */ id) {
  const take = Number(id.split('-')[1]);
  return Number.isFinite(take) ? dateTime(take) : id;
}

/** "12 分 5 秒" of a span in ms. */
function lasting(/** @type {number} */ ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const m = Math.floor(s / 60);
  return m ? `${m} 分 ${s % 60} 秒` : `${s} 秒`;
}

/** The town side (the dispatcher) and the villages of a call, in words. */
function hostOf(/** @type {GroupCallSummary} */ call) {
  return call.members.filter((m) => m.side === 'town').map((m) => m.name).join('、') || '—';
}
function villagesOf(/** @type {GroupCallSummary} */ call) {
  return call.members.filter((m) => m.side === 'village').map((m) => m.name).join('、') || '—';
}

/** @param {{ push: boolean }} options */
async function showGroups({ push }) {
  if (push) navigate('?view=groups');
  stopPlayer();
  markNav('groups');
  showView('groups');
  await loadGroups();
}

async function loadGroups({ more = false } = {}) {
  const p = new URLSearchParams();
  const from = /** @type {HTMLInputElement} */ ($('#g-from')).value;
  const to = /** @type {HTMLInputElement} */ ($('#g-to')).value;
  if (from) p.set('from', from);
  if (to) p.set('to', to);
  if (more && state.groupCursor) p.set('cursor', state.groupCursor);
  p.set('limit', '30');
  const errorBox = /** @type {HTMLElement} */ ($('#groups-error'));
  errorBox.hidden = true;
  try {
    /** @type {GroupCallPage} */
    const page = await api(`/api/review/group-calls?${p}`, { token });
    state.groupCursor = page.next_cursor;
    const rows = page.items.map((c) =>
      el(
        'tr',
        { class: 'result-row', testid: 'group-call-row', 'data-group-call': c.id, tabindex: '0', onclick: () => openGroup(c.id, { push: true }), onkeydown: (/** @type {KeyboardEvent} */ e) => { if (e.key === 'Enter') openGroup(c.id, { push: true }); } },
        el('td', {}, dateTime(c.started_at_ms)),
        el('td', {}, c.ended_at_ms ? lasting(c.ended_at_ms - c.started_at_ms) : '进行中'),
        el('td', {}, hostOf(c)),
        el('td', {}, villagesOf(c)),
        el('td', {}, `${c.members.length} 方${c.incomplete ? ` · ${c.incomplete} 段不完整` : ''}`),
        el('td', {}, el('button', { type: 'button', class: 'secondary', testid: 'group-call-open' }, '回放')),
      ),
    );
    const body = /** @type {HTMLElement} */ ($('#group-rows'));
    if (more) body.append(...rows);
    else fill(body, ...rows);
    const shown = body.querySelectorAll('tr').length;
    const total = /** @type {HTMLElement} */ ($('#groups-total'));
    fill(total, page.total === 0 ? '这段时间没有群组通话。' : `共 ${page.total} 次群组通话,显示 ${shown} 次`);
    total.dataset.total = String(page.total);
    /** @type {HTMLElement} */ ($('#groups-more')).hidden = !page.next_cursor;
  } catch (caught) {
    const err = /** @type {any} */ (caught);
    fill(errorBox, err.message);
    errorBox.hidden = false;
  }
}

$('#groups-form')?.addEventListener('submit', (/** @type {Event} */ event) => {
  event.preventDefault();
  loadGroups();
});
$('#groups-more')?.addEventListener('click', () => loadGroups({ more: true }));

/** One group call: every side's recording in sync; a mark where each village joined. */
async function openGroup(/** @type {string} */ id, /** @type {{ push: boolean }} */ { push }) {
  if (push) navigate(`?group=${encodeURIComponent(id)}`);
  markNav('groups');
  stopPlayer();
  /** @type {GroupCallReview} */
  let group;
  try {
    group = await api(`/api/review/group-calls/${encodeURIComponent(id)}`, { token });
  } catch (caught) {
    const err = /** @type {any} */ (caught);
    showView('groups');
    const box = /** @type {HTMLElement} */ ($('#groups-error'));
    fill(box, err.status === 404 ? '没有找到这次群组通话,或它不在您可以查阅的范围内。' : err.message);
    box.hidden = false;
    box.dataset.code = String(err.status);
    return;
  }
  state.group = group;
  const c = group.call;
  fill($('#group-title'), `群组通话 ${dateTime(c.started_at_ms)}`, el('small', {}, ` ${hostOf(c)}主持`));
  /** @type {HTMLElement} */ ($('#group-title')).dataset.groupCall = c.id;
  const byParticipant = new Map(c.members.map((m) => [m.participant, m]));
  fill(
    $('#group-members'),
    ...c.members.map((m) => {
      const rec = group.recordings.find((r) => r.participant === m.participant);
      return el(
        'li',
        { class: `group-member side-${m.side}`, testid: 'group-member', 'data-participant': m.participant },
        el('span', { class: 'tag' }, m.side === 'town' ? '镇上' : '村里'),
        el('span', { class: 'member-name' }, m.name),
        rec ? el('small', {}, `${timeOfDay(rec.start_ms)} 起${rec.status === 'complete' ? '' : ' · 录像不完整'}${rec.destroyed_at_ms ? ' · 已销毁' : ''}`) : null,
      );
    }),
  );
  showView('group');
  const playable = group.recordings.filter((r) => !r.destroyed_at_ms && r.duration_ms > 0);
  if (!playable.length) {
    const gone = group.recordings.find((r) => r.destroyed_at_ms);
    fill($('#group-player'), el('p', { class: 'hint', testid: 'recording-destroyed' }, gone?.destroyed_at_ms ? `录像已销毁(${dateTime(gone.destroyed_at_ms).slice(0, 10)})` : '这次通话没有录到内容。'));
    return;
  }
  await ensurePlaybackCookie();
  const recordings = [...group.recordings].sort((a, b) => (a.side === b.side ? a.id - b.id : a.side === 'town' ? -1 : 1));
  const label = (/** @type {Recording} */ r) => {
    const m = byParticipant.get(r.participant);
    return `${r.side === 'town' ? '镇上' : '村里'}:${m?.name ?? r.participant}`;
  };
  const origin = Math.min(...recordings.map((r) => r.start_ms));
  const marks = recordings
    .filter((r) => r.side === 'village' && r.start_ms > origin)
    .map((r) => ({ at_ms: r.start_ms, kind: 'group.joined', text: `${byParticipant.get(r.participant)?.name ?? r.participant} 加入` }));
  state.player = new SyncPlayer({ recordings, label, marks });
  fill($('#group-player'), state.player.root);
}

// ---- the access report --------------------------------------------------------------------

/** @param {{ push: boolean }} options */
// ---- a village's ledger (台账) --------------------------------------------------------------

/** @type {LedgerView | null} */
let ledger = null;

async function showLedger({ push }) {
  if (push) navigate('?view=ledger');
  stopPlayer();
  markNav('ledger');
  showView('ledger');
  const villages = select('#l-village');
  if (!ledger) {
    const towns = state.choices?.towns ?? [];
    const many = towns.length > 1;
    fill(villages, ...towns.flatMap((t) => t.villages.map((v) => el('option', { value: String(v.id) }, many ? `${t.name} ${v.name}` : v.name))));
    ledger = new LedgerView({ token, root: /** @type {HTMLElement} */ ($('[data-view="ledger"]')), village: () => (villages.value ? Number(villages.value) : null), onUnauthorized: goToLogin });
    villages.addEventListener('change', () => ledger?.load());
  }
  if (villages.value) await ledger.open();
}

async function showAccess({ push }) {
  if (push) navigate('?view=access');
  stopPlayer();
  markNav('access');
  showView('access');
  await loadAccess();
}

async function loadAccess() {
  const p = new URLSearchParams();
  const user = select('#a-user').value;
  if (user) p.set('user', user);
  const from = /** @type {HTMLInputElement} */ ($('#a-from')).value;
  const to = /** @type {HTMLInputElement} */ ($('#a-to')).value;
  if (from) p.set('from', from);
  if (to) p.set('to', to);
  const errorBox = /** @type {HTMLElement} */ ($('#access-error'));
  errorBox.hidden = true;
  try {
    /** @type {AccessRow[]} */
    const rows = await api(`/api/review/access?${p}`, { token });
    // The people who appear, for the "by person" choice (kept once known).
    const people = select('#a-user');
    const known = new Set([...people.options].map((o) => o.value));
    for (const r of rows) {
      if (r.actor?.kind === 'staff' && r.actor.id && !known.has(String(r.actor.id))) {
        known.add(String(r.actor.id));
        people.append(el('option', { value: String(r.actor.id) }, r.actor.name));
      }
    }
    fill($('#access-total'), `共 ${rows.length} 条${rows.length >= 2000 ? '(只显示最近的 2000 条,请缩小日期范围)' : ''}`);
    fill(
      $('#access-rows'),
      ...rows.map((a) =>
        el(
          'tr',
          { testid: 'access-report-row', 'data-action': a.action },
          el('td', {}, dateTime(a.at_ms)),
          el('td', {}, actorName(a.actor)),
          el('td', {}, ACCESS_ACTION[a.action] ?? a.action, accessDetail(a) ? ` ${accessDetail(a)}` : ''),
          el('td', {}, a.case_no ? el('button', { type: 'button', class: 'link-button', onclick: () => openCase(/** @type {string} */ (a.case_no), { push: true }) }, a.case_no) : '—'),
          el('td', {}, a.address ?? ''),
        ),
      ),
    );
  } catch (caught) {
    const err = /** @type {any} */ (caught);
    fill(errorBox, err.message);
    errorBox.hidden = false;
  }
}

$('#access-form')?.addEventListener('submit', (/** @type {Event} */ event) => {
  event.preventDefault();
  loadAccess();
});

start();
