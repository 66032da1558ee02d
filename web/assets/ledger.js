// @ts-check
// A village room's ledger (台账, `GET /api/ledger`): one month of every matter the room
// accepted, as a table on the page, printed as the paper ledger looks (A4 landscape, the
// header on every page, page numbers: app.css `.print-ledger`) and exported to Excel
// (`/api/ledger/export.xlsx`). The kiosk shows its own; the review page (town chiefs,
// supervisors) names the village.
import { api } from './api.js';
import { $, el, fill, notify } from './common.js';
import { OUTCOME, RATING, STATUS } from './words.js';

/** `2026-12` of now, China time. */
export function thisMonth() {
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit' }).formatToParts(new Date());
  const part = (type) => parts.find((p) => p.type === type)?.value ?? '';
  return `${part('year')}-${part('month')}`;
}

/** @param {any} r a ledger row */
function handledText(r) {
  return r.handled_at ? `${r.handled_at.town} ${r.handled_at.window}` : '未接通';
}

/** @param {any} r */
function deliveredText(r) {
  if (r.result_read) return '已送达 ✓';
  return r.result_delivered ? '已送达' : '';
}

const HEADS = ['序号', '日期', '案件编号', '办事群众', '联系电话', '事项', '办理地点', '办理状态', '办理结果', '结果送达', '评价'];

/** @param {any} r */
function cells(r) {
  return [
    String(r.seq),
    r.date,
    r.case_no,
    r.villager ?? '',
    r.phone ?? '',
    r.matter,
    handledText(r),
    STATUS[r.status] ?? r.status,
    r.outcome ? OUTCOME[r.outcome] ?? r.outcome : '',
    deliveredText(r),
    r.rating ? RATING[r.rating] ?? r.rating : '',
  ];
}

/** @param {any} view */
function summary(view) {
  const t = view.totals;
  return `本月共 ${t.cases} 件,已决定 ${t.decided} 件(${OUTCOME.done} ${t.done_on_the_spot} 件),结果送达 ${t.results_delivered} 件,评价 ${t.rated} 件(好评 ${t.rated_good} 件)${view.truncated ? ';只列出前 5000 件' : ''}`;
}

/** @param {string} month `2026-12` */
function monthTitle(month) {
  const [y, m] = month.split('-');
  return `${y}年${Number(m)}月`;
}

export class LedgerView {
  /**
   * @param {object} o
   * @param {string} o.token
   * @param {HTMLElement} o.root   holds [data-role=month|table|summary|print|export|empty]
   * @param {() => number|null} [o.village]  the village asked for (town staff); kiosks: none
   * @param {() => void} [o.onUnauthorized]
   */
  constructor({ token, root, village = () => null, onUnauthorized = () => {} }) {
    this.token = token;
    this.root = root;
    this.village = village;
    this.onUnauthorized = onUnauthorized;
    this.view = null;
    const part = (role) => /** @type {HTMLElement} */ (root.querySelector(`[data-role="${role}"]`));
    this.monthInput = /** @type {HTMLInputElement} */ (part('month'));
    this.table = part('table');
    this.summary = part('summary');
    this.empty = part('empty');
    this.printButton = /** @type {HTMLButtonElement} */ (part('print'));
    this.exportButton = /** @type {HTMLButtonElement} */ (part('export'));
    this.monthInput.max = thisMonth();
    this.monthInput.addEventListener('change', () => this.load());
    this.printButton.addEventListener('click', () => this.print());
    this.exportButton.addEventListener('click', () => this.export());
  }

  query() {
    const p = new URLSearchParams({ month: this.monthInput.value || thisMonth() });
    const village = this.village();
    if (village !== null) p.set('village_id', String(village));
    return p.toString();
  }

  /** Show this month (or the month picked before). */
  async open() {
    if (!this.monthInput.value) this.monthInput.value = thisMonth();
    await this.load();
  }

  async load() {
    if (!/^\d{4}-\d{2}$/.test(this.monthInput.value)) {
      this.monthInput.value = thisMonth();
    }
    this.printButton.disabled = true;
    this.exportButton.disabled = true;
    try {
      this.view = await api(`/api/ledger?${this.query()}`, { token: this.token });
    } catch (caught) {
      const err = /** @type {any} */ (caught);
      if (err.status === 401) this.onUnauthorized();
      else notify(err.message, 'error');
      return;
    }
    this.render();
  }

  render() {
    const view = this.view;
    const rows = view.rows ?? [];
    this.root.dataset.month = view.month;
    this.root.dataset.rows = String(rows.length);
    fill(this.table,
      el('thead', {}, el('tr', {}, ...HEADS.map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, ...rows.map((r) => el('tr', { testid: 'ledger-row', 'data-case-no': r.case_no }, ...cells(r).map((c) => el('td', {}, c))))));
    this.table.hidden = rows.length === 0;
    this.empty.hidden = rows.length > 0;
    fill(this.summary, summary(view));
    this.printButton.disabled = rows.length === 0;
    this.exportButton.disabled = false;
  }

  /** The paper ledger: A4 landscape, the header on every page, page numbers. */
  print() {
    const view = this.view;
    if (!view) return;
    const sheet = $('#print-sheet');
    fill(sheet,
      el('div', { class: 'print-ledger' },
        el('h1', {}, `${view.town.name}${view.village.name} 便民服务室办事记录台账`),
        el('p', { class: 'print-ledger-month' }, monthTitle(view.month)),
        el('table', { class: 'print-ledger-table' },
          el('thead', {}, el('tr', {}, ...HEADS.map((h) => el('th', { scope: 'col' }, h)))),
          el('tbody', {}, ...view.rows.map((/** @type {any} */ r) => el('tr', {}, ...cells(r).map((c) => el('td', {}, c)))))),
        el('p', { class: 'print-ledger-summary' }, summary(view))));
    sheet.dataset.ledger = view.month;
    sheet.dataset.printed = String(Date.now());
    window.print();
  }

  /** Download the month as an Excel workbook. */
  async export() {
    this.exportButton.disabled = true;
    try {
      const response = await fetch(`/api/ledger/export.xlsx?${this.query()}`, { headers: { Authorization: `Bearer ${this.token}` }, cache: 'no-store' });
      if (response.status === 401) {
        this.onUnauthorized();
        return;
      }
      if (!response.ok) {
        notify('台账没有导出来,请稍后再试', 'error');
        return;
      }
      const url = URL.createObjectURL(await response.blob());
      const name = /filename="([^"]+)"/.exec(response.headers.get('content-disposition') ?? '')?.[1] ?? `ledger-${this.monthInput.value}.xlsx`;
      const link = el('a', { href: url, download: name, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } finally {
      this.exportButton.disabled = false;
    }
  }
}
