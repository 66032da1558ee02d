// @ts-check
// The statistics page (`/stats`), for supervisors (county-wide or of one town) and town chiefs
// (their own town): the figures the reform is measured by over a range of days (China time),
// per day, week or month and by town, village, window, matter or approver; the totals as
// cards, each table beside its chart (Apache ECharts, drawn on canvas), the villagers'
// comments, and the same figures as Excel or CSV. The address keeps the conditions
// (`/stats?from=2026-11-01&to=2026-11-30&group=week&by=village&town=2`), so a reload or a
// shared link shows the same report.
import { api } from './api.js';
import { $, STAFF_TOKEN_KEY, el, fill, forgetToken, goToLogin, notify, showView, takeToken } from './common.js';
import { showSetup, signedInStaff } from './staffpage.js';
import { OUTCOME, RATING } from './words.js';

/**
 * The little of ECharts this page uses (the global of /static/echarts.min.js).
 * @typedef {{ setOption(option: object, notMerge?: boolean): void, resize(): void, dispose(): void,
 *   on(event: string, handler: () => void): void }} Chart
 * @typedef {{ init(dom: HTMLElement, theme?: string | null, opts?: { renderer?: 'canvas' | 'svg', locale?: string }): Chart }} ECharts
 */
const echarts = /** @type {ECharts | undefined} */ (/** @type {any} */ (globalThis).echarts);

/**
 * The report of `GET /api/stats` (signaling/src/case/stats.rs).
 * @typedef {{ count: number, p50_secs: ?number, p90_secs: ?number }} Spread
 * @typedef {{ part: number, of: number, permille: ?number }} Share
 * @typedef {{ cases: number, decided: number, outcomes: Record<string, number>, calls: number, answered: number,
 *   abandoned: number, timed_out: number, waiting: Spread, ring_to_answer: Spread, handling: Spread, on_the_spot: Share, first_contact: Share,
 *   signoff_turnaround: Spread, ratings: Record<string, number>, good: Share }} Figures
 * @typedef {Figures & { key: string, name: string }} Row
 * @typedef {{ case_no: string, rating: string, comment: string, at_ms: number }} Comment
 * @typedef {{ booked: number, kept: number, missed: number, cancelled: number, upcoming: number }} Bookings
 * @typedef {{ from_ms: number, to_ms: number, town: ?number, totals: Figures, grouping: string, series: Row[],
 *   by: string, breakdown: Row[], bookings: Bookings, comments: Comment[] }} Report
 * @typedef {{ id: number, name: string }} Named
 */

const token = takeToken(STAFF_TOKEN_KEY);

const state = {
  /** @type {any} */
  me: null,
  /** @type {Named[]} the towns in the viewer's scope */
  towns: [],
  /** @type {Report | null} */
  report: null,
  /** @type {URLSearchParams | null} the conditions of the report shown */
  params: null,
  /** @type {{ series: Chart | null, times: Chart | null, breakdown: Chart | null }} */
  charts: { series: null, times: null, breakdown: null },
  /** The number of the newest report asked for. */
  seq: 0,
};

/** For tests and the console: the page's state. */
// @ts-ignore: the page's hook for tests
window.__cunneng = { state };

// ---- formatting ---------------------------------------------------------------------------

const CHINA = 'Asia/Shanghai';
const dayFormat = new Intl.DateTimeFormat('sv-SE', { timeZone: CHINA, year: 'numeric', month: '2-digit', day: '2-digit' });
const dateTimeFormat = new Intl.DateTimeFormat('sv-SE', {
  timeZone: CHINA, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hour12: false,
});
const DAY_MS = 86_400_000;

/** "2026-12-04": the day (China time) of Unix ms. */
const dayOf = (/** @type {number} */ ms) => dayFormat.format(new Date(ms));

/** "33.3%" of a share, "—" of nothing. */
function percent(/** @type {Share} */ share) {
  return share.permille === null || share.permille === undefined ? '—' : `${(share.permille / 10).toFixed(1)}%`;
}

/** "45秒", "3分20秒", "2小时05分" of whole seconds; "—" of nothing. */
function duration(/** @type {?number | undefined} */ secs) {
  if (secs === null || secs === undefined) return '—';
  if (secs < 60) return `${secs}秒`;
  const m = Math.floor(secs / 60);
  if (m < 60) return `${m}分${String(secs % 60).padStart(2, '0')}秒`;
  return `${Math.floor(m / 60)}小时${String(m % 60).padStart(2, '0')}分`;
}

// ---- start --------------------------------------------------------------------------------

const setup = showSetup;

async function start() {
  state.me = await signedInStaff(token, ['supervisor', 'chief'], '统计是给督查人员和窗口负责人看的。请用督查账号登录。');
  if (!state.me) return;
  if (!echarts) {
    setup('打不开', '图表程序没有加载,请刷新页面再试。');
    return;
  }
  const town = state.me.town?.name;
  fill($('#who'), `${state.me.name ?? ''}${town ? `(${town})` : '(全县)'}`);
  fill($('#place'), town ? `统计 · ${town}` : '统计 · 全县');
  try {
    const choices = await api('/api/review/choices', { token });
    state.towns = (choices?.towns ?? []).map((/** @type {Named} */ t) => ({ id: t.id, name: t.name }));
  } catch (caught) {
    notify(/** @type {any} */ (caught).message, 'error');
  }
  fillForm(new URLSearchParams(location.search));
  showView('stats');
  state.charts.series = echarts.init(chartBox('series'), null, { renderer: 'canvas', locale: 'ZH' });
  state.charts.times = echarts.init(chartBox('times'), null, { renderer: 'canvas', locale: 'ZH' });
  state.charts.breakdown = echarts.init(chartBox('breakdown'), null, { renderer: 'canvas', locale: 'ZH' });
  for (const [kind, chart] of Object.entries(state.charts)) {
    // The chart box says when its picture is complete (the browser test waits for it).
    chart?.on('finished', () => chartBox(kind).setAttribute('data-state', 'drawn'));
    new ResizeObserver(() => chart?.resize()).observe(chartBox(kind));
  }
  await show();
}

const chartBox = (/** @type {string} */ kind) => /** @type {HTMLElement} */ ($(`[data-testid="stats-chart"][data-kind="${kind}"]`));
const input = (/** @type {string} */ id) => /** @type {HTMLInputElement} */ ($(id));
const select = (/** @type {string} */ id) => /** @type {HTMLSelectElement} */ ($(id));

/** The form from the address's conditions (or the defaults: the last 30 days, per day, by town). */
function fillForm(/** @type {URLSearchParams} */ q) {
  const today = dayOf(Date.now());
  const dayRe = /^\d{4}-\d{2}-\d{2}$/;
  const to = dayRe.test(q.get('to') ?? '') ? String(q.get('to')) : today;
  const from = dayRe.test(q.get('from') ?? '') ? String(q.get('from')) : dayOf(Date.parse(`${to}T12:00:00+08:00`) - 29 * DAY_MS);
  input('#s-from').value = from;
  input('#s-to').value = to;
  const pick = (/** @type {HTMLSelectElement} */ s, /** @type {string | null} */ v) => {
    if (v && [...s.options].some((o) => o.value === v)) s.value = v;
  };
  pick(select('#s-group'), q.get('group'));
  pick(select('#s-by'), q.get('by'));
  // A town-limited viewer has his town only: no choice to make.
  const townSelect = select('#s-town');
  const many = state.towns.length > 1;
  /** @type {HTMLElement} */ ($('#s-town-label')).hidden = !many;
  fill(townSelect, el('option', { value: '' }, '全县'), ...state.towns.map((t) => el('option', { value: String(t.id) }, t.name)));
  pick(townSelect, many ? q.get('town') : null);
}

/** The conditions of the form. */
function conditions() {
  const p = new URLSearchParams();
  p.set('from', input('#s-from').value);
  p.set('to', input('#s-to').value);
  p.set('group', select('#s-group').value);
  p.set('by', select('#s-by').value);
  if (state.towns.length > 1 && select('#s-town').value) p.set('town', select('#s-town').value);
  return p;
}

/** Ask for the report of the form's conditions and show it. */
async function show() {
  const errorBox = /** @type {HTMLElement} */ ($('#stats-error'));
  errorBox.hidden = true;
  const p = conditions();
  if (!p.get('from') || !p.get('to') || p.get('from') > p.get('to')) {
    fill(errorBox, '请选好开始和结束的日期(开始不能晚于结束)。');
    errorBox.hidden = false;
    return;
  }
  const button = /** @type {HTMLButtonElement} */ ($('#stats-show'));
  button.disabled = true;
  document.body.dataset.loading = 'true';
  // Only the newest request is shown (a change of grouping, then of breakdown, before the first answer).
  const seq = ++state.seq;
  try {
    /** @type {Report} */
    const report = await api(`/api/stats?${p}`, { token });
    if (seq !== state.seq) return;
    state.report = report;
    state.params = p;
    history.replaceState(null, '', `/stats?${p}`);
    render(report);
  } catch (caught) {
    const err = /** @type {any} */ (caught);
    if (err.status === 401) {
      forgetToken(STAFF_TOKEN_KEY);
      goToLogin();
      return;
    }
    if (seq !== state.seq) return;
    fill(errorBox, err.message);
    errorBox.hidden = false;
  } finally {
    if (seq === state.seq) {
      button.disabled = false;
      delete document.body.dataset.loading;
    }
  }
}

$('#stats-form')?.addEventListener('submit', (/** @type {Event} */ event) => {
  event.preventDefault();
  show();
});
// A changed grouping or breakdown shows at once; dates and the town wait for 查看.
for (const id of ['#s-group', '#s-by']) select(id).addEventListener('change', () => show());
$('#nav-review')?.addEventListener('click', () => location.assign('/review'));
$('#setup-login')?.addEventListener('click', () => {
  forgetToken(STAFF_TOKEN_KEY);
  goToLogin();
});
$('#logout-button')?.addEventListener('click', async () => {
  try {
    await api('/api/logout', { method: 'POST', token });
  } catch {
    // Logged out here anyway.
  }
  forgetToken(STAFF_TOKEN_KEY);
  location.replace('/login');
});

// ---- the report ---------------------------------------------------------------------------

const BY_TEXT = { town: '乡镇', village: '村(社区)', window: '窗口', matter: '事项', approver: '办理人' };
const GROUP_TEXT = { day: '每天', week: '每周(周一开始)', month: '每月' };
/** The outcomes in the order the breakdown's bars stack them. */
const OUTCOMES = ['done', 'missing', 'refused', 'later'];
const ON_THE_SPOT = `${OUTCOME.done}率`;

/**
 * A table's column: [field, heading, value for data-value, text].
 * @typedef {[string, string, (f: Figures) => ?number, (f: Figures) => string]} Column
 */
/** @type {(field: string, heading: string, of: (f: Figures) => ?number) => Column} */
const secsColumn = (field, heading, of) => [field, heading, of, (f) => duration(of(f))];
const countColumn = (/** @type {string} */ field, /** @type {string} */ heading, /** @type {(f: Figures) => number} */ of) =>
  /** @type {Column} */ ([field, heading, of, (f) => String(of(f))]);

/**
 * The columns of the series and the breakdown tables.
 * @type {Column[]}
 */
const COLUMNS = [
  ['cases', '办件量', (f) => f.cases, (f) => String(f.cases)],
  ['decided', '已决定', (f) => f.decided, (f) => String(f.decided)],
  ['on_the_spot', ON_THE_SPOT, (f) => f.on_the_spot.permille, (f) => percent(f.on_the_spot)],
  ['first_contact', '一次办成率', (f) => f.first_contact.permille, (f) => percent(f.first_contact)],
  ['waiting_p50', '等待中位', (f) => f.waiting.p50_secs, (f) => duration(f.waiting.p50_secs)],
  ['waiting_p90', '等待P90', (f) => f.waiting.p90_secs, (f) => duration(f.waiting.p90_secs)],
  secsColumn('ring_p50', '响铃接听中位', (f) => f.ring_to_answer.p50_secs),
  ['handling_p50', '办理中位', (f) => f.handling.p50_secs, (f) => duration(f.handling.p50_secs)],
  ['handling_p90', '办理P90', (f) => f.handling.p90_secs, (f) => duration(f.handling.p90_secs)],
  ['abandoned', '排队放弃', (f) => f.abandoned, (f) => String(f.abandoned)],
  ['timed_out', '无人接听', (f) => f.timed_out, (f) => String(f.timed_out)],
  ['good', '好评率', (f) => f.good.permille, (f) => percent(f.good)],
];

/**
 * The columns of the times table (per period, beside the times chart).
 * @type {Column[]}
 */
const TIME_COLUMNS = [
  countColumn('calls', '呼叫次数', (f) => f.calls),
  countColumn('answered', '已接通', (f) => f.answered),
  secsColumn('waiting_p50', '等待中位', (f) => f.waiting.p50_secs),
  secsColumn('waiting_p90', '等待P90', (f) => f.waiting.p90_secs),
  countColumn('ring_count', '有响铃的', (f) => f.ring_to_answer.count),
  secsColumn('ring_p50', '响铃接听中位', (f) => f.ring_to_answer.p50_secs),
  secsColumn('ring_p90', '响铃接听P90', (f) => f.ring_to_answer.p90_secs),
];

function render(/** @type {Report} */ r) {
  const last = dayOf(Math.max(r.from_ms, r.to_ms - DAY_MS));
  const town = r.town === null ? '' : state.towns.find((t) => t.id === r.town)?.name ?? '';
  fill($('#stats-range'), `${dayOf(r.from_ms)} 至 ${last}${town ? ` · ${town}` : ''} · ${GROUP_TEXT[r.grouping] ?? ''} · 按${BY_TEXT[r.by] ?? ''}分项`);
  renderKpis(r);
  fill($('#breakdown-title'), `按${BY_TEXT[r.by] ?? ''}分项`);
  const period = r.grouping === 'month' ? '月份' : r.grouping === 'week' ? '周(周一)' : '日期';
  renderTable('series', period, r.series, COLUMNS);
  renderTable('times', period, r.series, TIME_COLUMNS);
  renderTable('breakdown', BY_TEXT[r.by] ?? '名称', r.breakdown, COLUMNS);
  drawSeries(r);
  drawTimes(r);
  drawBreakdown(r);
  renderComments(r.comments);
}

/**
 * One card: a big figure with its words underneath.
 * @param {string} field @param {string} title @param {string} value @param {?number} raw @param {string} sub
 */
function kpi(field, title, value, raw, sub) {
  return el('div', { class: 'kpi', testid: 'stats-kpi', 'data-field': field, 'data-value': raw ?? '' },
    el('span', { class: 'kpi-title' }, title),
    el('span', { class: 'kpi-value' }, value),
    el('span', { class: 'kpi-sub' }, sub));
}

function renderKpis(/** @type {Report} */ r) {
  const t = r.totals;
  const b = r.bookings;
  const rating = (/** @type {string} */ k) => t.ratings[k] ?? 0;
  fill($('#kpis'),
    kpi('cases', '办件量', String(t.cases), t.cases, `已决定 ${t.decided} 件`),
    kpi('on_the_spot', ON_THE_SPOT, percent(t.on_the_spot), t.on_the_spot.permille, `${t.on_the_spot.part} / ${t.on_the_spot.of} 件`),
    kpi('first_contact', '一次办成率', percent(t.first_contact), t.first_contact.permille, `不用再来 ${t.first_contact.part} / ${t.first_contact.of}`),
    kpi('waiting', '排队等待', duration(t.waiting.p50_secs), t.waiting.p50_secs,
      `中位 · P90 ${duration(t.waiting.p90_secs)} · 响铃到接听 ${duration(t.ring_to_answer.p50_secs)}`),
    kpi('handling', '办理时长', duration(t.handling.p50_secs), t.handling.p50_secs, `中位 · P90 ${duration(t.handling.p90_secs)}`),
    kpi('unanswered', '放弃 / 无人接听', `${t.abandoned} / ${t.timed_out}`, t.abandoned + t.timed_out, `呼叫 ${t.calls} 次,接通 ${t.answered}`),
    kpi('signoff', '一审一核用时', duration(t.signoff_turnaround.p50_secs), t.signoff_turnaround.p50_secs,
      `${t.signoff_turnaround.count} 件 · P90 ${duration(t.signoff_turnaround.p90_secs)}`),
    kpi('bookings', '预约 守约 / 失约', `${b.kept} / ${b.missed}`, b.kept, `共 ${b.booked} · 取消 ${b.cancelled} · 未到 ${b.upcoming}`),
    kpi('good', '好评率', percent(t.good), t.good.permille, `好 ${rating('good')} · 中 ${rating('fair')} · 差 ${rating('bad')}`),
  );
}

/**
 * @param {'series' | 'times' | 'breakdown'} kind @param {string} first the first column's heading
 * @param {Row[]} rows @param {Column[]} columns
 */
function renderTable(kind, first, rows, columns) {
  fill($(`#${kind}-head`), el('tr', {}, el('th', { scope: 'col' }, first), ...columns.map(([, heading]) => el('th', { scope: 'col' }, heading))));
  const body = $(`#${kind}-rows`);
  if (!rows.length) {
    fill(body, el('tr', {}, el('td', { colspan: columns.length + 1, class: 'hint' }, '这段时间没有案件。')));
    return;
  }
  fill(body, rows.map((row) => el('tr', { testid: 'stats-row', 'data-key': row.key },
    el('th', { scope: 'row', 'data-field': 'name' }, row.name),
    ...columns.map(([field, , raw, text]) => el('td', { 'data-field': field, 'data-value': raw(row) ?? '' }, text(row))))));
}

/** Tooltips are drawn on the canvas (richText): ECharts' HTML tooltips carry inline styles, which the page's CSP refuses. */
const TOOLTIP = { trigger: 'axis', renderMode: 'richText', axisPointer: { type: 'shadow' } };
const TEXT = { fontSize: 14, color: '#111' };

/**
 * Every period label from the report's first day to its last (days, Mondays of weeks, or
 * months), so that the chart's time axis has no holes: the report lists only periods with cases.
 * Dates here are calendar days (China time), counted in UTC to stay clear of the browser's zone.
 */
function periodLabels(/** @type {Report} */ r) {
  const first = Date.parse(`${dayOf(r.from_ms)}T00:00:00Z`);
  const last = Date.parse(`${dayOf(Math.max(r.from_ms, r.to_ms - DAY_MS))}T00:00:00Z`);
  /** @type {string[]} */
  const labels = [];
  for (let t = first; t <= last && labels.length <= 400; t += DAY_MS) {
    const d = new Date(t);
    let label = d.toISOString().slice(0, 10);
    if (r.grouping === 'week') label = new Date(t - ((d.getUTCDay() + 6) % 7) * DAY_MS).toISOString().slice(0, 10);
    if (r.grouping === 'month') label = label.slice(0, 7);
    if (labels[labels.length - 1] !== label) labels.push(label);
  }
  // A period the labels missed (never, unless the clocks disagree) is still shown, in order.
  for (const p of r.series) if (!labels.includes(p.key)) labels.push(p.key);
  return labels.sort();
}

function drawSeries(/** @type {Report} */ r) {
  const box = chartBox('series');
  box.setAttribute('data-state', 'drawing');
  const byKey = new Map(r.series.map((p) => [p.key, p]));
  const labels = periodLabels(r);
  box.setAttribute('data-points', String(labels.length));
  state.charts.series?.setOption({
    animation: false,
    textStyle: TEXT,
    grid: { left: 48, right: 56, top: 40, bottom: 36 },
    tooltip: TOOLTIP,
    legend: { top: 0, textStyle: TEXT },
    xAxis: { type: 'category', data: labels, axisLabel: { fontSize: 13 } },
    yAxis: [
      { type: 'value', name: '件', minInterval: 1, nameTextStyle: TEXT },
      { type: 'value', name: '%', min: 0, max: 100, nameTextStyle: TEXT, splitLine: { show: false } },
    ],
    series: [
      { name: '办件量', type: 'bar', data: labels.map((k) => byKey.get(k)?.cases ?? 0), itemStyle: { color: '#0b57a4' }, barMaxWidth: 36 },
      {
        name: ON_THE_SPOT,
        type: 'line',
        yAxisIndex: 1,
        data: labels.map((k) => {
          const permille = byKey.get(k)?.on_the_spot.permille;
          return permille === null || permille === undefined ? null : permille / 10;
        }),
        itemStyle: { color: '#17692a' },
        lineStyle: { width: 3 },
        symbolSize: 8,
        connectNulls: true,
      },
    ],
  }, true);
}

/**
 * Waiting and ring-to-answer per period (medians and the waiting's P90), in seconds, on the
 * same time axis as the series; a period without answered calls is a gap.
 */
function drawTimes(/** @type {Report} */ r) {
  const box = chartBox('times');
  box.setAttribute('data-state', 'drawing');
  const byKey = new Map(r.series.map((p) => [p.key, p]));
  const labels = periodLabels(r);
  box.setAttribute('data-points', String(labels.length));
  const line = (/** @type {string} */ name, /** @type {string} */ color, /** @type {(f: Figures) => ?number} */ of, dashed = false) => ({
    name,
    type: 'line',
    data: labels.map((k) => {
      const f = byKey.get(k);
      const v = f ? of(f) : null;
      return v === null || v === undefined ? null : v;
    }),
    itemStyle: { color },
    lineStyle: { width: 3, type: dashed ? 'dashed' : 'solid' },
    symbolSize: 8,
    connectNulls: false,
  });
  state.charts.times?.setOption({
    animation: false,
    textStyle: TEXT,
    grid: { left: 56, right: 24, top: 40, bottom: 36 },
    tooltip: TOOLTIP,
    legend: { top: 0, textStyle: TEXT },
    xAxis: { type: 'category', data: labels, axisLabel: { fontSize: 13 } },
    yAxis: { type: 'value', name: '秒', min: 0, minInterval: 1, nameTextStyle: TEXT },
    series: [
      line('等待中位', '#0b57a4', (f) => f.waiting.p50_secs),
      line('等待P90', '#0b57a4', (f) => f.waiting.p90_secs, true),
      line('响铃到接听中位', '#b45309', (f) => f.ring_to_answer.p50_secs),
    ],
  }, true);
}

/** The breakdown's rows shown as bars (the table lists them all). */
const MAX_BARS = 15;

function drawBreakdown(/** @type {Report} */ r) {
  const box = chartBox('breakdown');
  box.setAttribute('data-state', 'drawing');
  const rows = r.breakdown.slice(0, MAX_BARS).reverse();
  box.setAttribute('data-points', String(rows.length));
  const colors = { done: '#17692a', missing: '#b45309', refused: '#b3261e', later: '#0b57a4' };
  state.charts.breakdown?.setOption({
    animation: false,
    textStyle: TEXT,
    grid: { left: 8, right: 24, top: 56, bottom: 24, containLabel: true },
    tooltip: TOOLTIP,
    legend: { top: 0, itemWidth: 16, itemGap: 8, textStyle: { ...TEXT, fontSize: 13 } },
    xAxis: { type: 'value', minInterval: 1 },
    yAxis: { type: 'category', data: rows.map((row) => row.name), axisLabel: { fontSize: 14, width: 160, overflow: 'truncate' } },
    series: [
      ...OUTCOMES.map((o) => ({
        name: OUTCOME[o],
        type: 'bar',
        stack: 'cases',
        data: rows.map((row) => row.outcomes[o] ?? 0),
        itemStyle: { color: colors[o] },
        barMaxWidth: 28,
      })),
      { name: '未决定', type: 'bar', stack: 'cases', data: rows.map((row) => row.cases - row.decided), itemStyle: { color: '#9aa3ae' }, barMaxWidth: 28 },
    ],
  }, true);
}

function renderComments(/** @type {Comment[]} */ comments) {
  /** @type {HTMLElement} */ ($('#comments-empty')).hidden = comments.length > 0;
  fill($('#comments'), comments.map((c) => el('li', { class: `stats-comment rating-${c.rating}`, testid: 'stats-comment', 'data-case-no': c.case_no },
    el('span', { class: 'comment-rating' }, RATING[c.rating] ?? ''),
    el('span', { class: 'comment-text' }, c.comment),
    el('span', { class: 'comment-meta' }, dateTimeFormat.format(new Date(c.at_ms)), ' · ',
      el('a', { href: `/review?case=${encodeURIComponent(c.case_no)}` }, c.case_no)))));
}

// ---- exports ------------------------------------------------------------------------------

/** Download the report of the conditions shown as Excel (both tables) or CSV (the breakdown). */
async function exportAs(/** @type {HTMLButtonElement} */ button) {
  const format = button.dataset.format === 'csv' ? 'csv' : 'xlsx';
  const p = new URLSearchParams(state.params ?? conditions());
  button.disabled = true;
  try {
    const response = await fetch(`/api/stats/export.${format}?${p}`, { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store', credentials: 'same-origin' });
    if (!response.ok) throw new Error(response.status === 403 ? '您没有权限导出这些统计' : '导出失败,请稍后再试');
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const link = el('a', { href: url, download: `统计-${p.get('from')}-${p.get('to')}.${format}`, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    notify(format === 'csv' ? '已导出 CSV(分项表)' : '已导出 Excel(分项和时间两张表)');
  } catch (caught) {
    notify(/** @type {any} */ (caught).message, 'error');
  } finally {
    button.disabled = false;
  }
}

for (const button of document.querySelectorAll('[data-testid="stats-export"]')) {
  button.addEventListener('click', () => exportAs(/** @type {HTMLButtonElement} */ (button)));
}

start();
