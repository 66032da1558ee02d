// @ts-check
// The town window's case work (docs/cases-api.md): the papers of the live call as they arrive
// (pushed), the checklist, the viewer, re-scan requests, the four outcomes with the result
// document, finishing 放心回家 cases, cases sent back by the chief, 一审一核 sign-off for chiefs,
// and today's bookings. One papers panel and one outcome panel move between the call screen
// and the case screen, so each data-testid is on the page once.
import { api } from './api.js';
import { $, $$, el, fill, nameOf, notify } from './common.js';
import { ACCEPT, PaperStore, PaperViewer, checklistRows, clock, formatSize, isImage, thumbnail } from './papers.js';
import { PaperUpload, uploadStatusText } from './upload.js';
import { BOOKING_STATUS, DECISION_STATE, OUTCOME, SIGNOFF_DECISION } from './words.js';

const CHINA = 'Asia/Shanghai';
const timeLabel = new Intl.DateTimeFormat('zh-CN', { timeZone: CHINA, hour: '2-digit', minute: '2-digit', hour12: false });
const whenLabel = new Intl.DateTimeFormat('zh-CN', { timeZone: CHINA, month: 'numeric', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false });

const OUTCOME_HELP = {
  done: '上传结果文书(证书、回执等),它会马上回传到村里打印。',
  missing: '勾上缺的材料,或者写上要补什么。村里会打印这张清单给办事人,案件留着等补材料。',
  refused: '写明不能办理的原因。原因会记录下来,村里也能看到。',
  later: '材料已受理,镇上办好后在"放心回家的案件"里上传结果办结,结果会送到村里。',
  finish: '上传办好的结果文书。办结后结果会送到村里的收件箱。',
};
// For a matter with 一审一核 nothing goes back to the village before the chief approves.
const OUTCOME_HELP_SIGNOFF = {
  done: '上传结果文书(证书、回执等)。这个事项要一审一核:窗口负责人核准后,结果才回传到村里打印。',
  refused: '写明不能办理的原因。这个事项要一审一核:窗口负责人核准后,村里才看到结果。',
  finish: '上传办好的结果文书。这个事项要一审一核:窗口负责人核准后,结果才送到村里的收件箱。',
};
const DEFAULT_NOTE = {
  done: '当场办结,结果文书已回传到村里。',
  missing: '',
  refused: '',
  later: '已受理。镇上办好后把结果送回村里。',
  finish: '已办结,结果文书已送到村里。',
};
const DEFAULT_NOTE_SIGNOFF = {
  done: '审查通过,请窗口负责人核准。',
  finish: '已办好,请窗口负责人核准。',
};
// Shown briefly after a call ends, until the server's list has it (GET /api/cases/undecided).
const UNDECIDED_LOCAL_MS = 15_000;
const DESK_REFRESH_MS = 60_000;
// From this width on, the paper viewer of a call sits beside the video.
const DOCK_MIN_WIDTH = 1280;
// The live case is read again now and then (the villager may be entered during the call).
const LIVE_REFRESH_MS = 15_000;

/** The window's line on the decision of case `c` (town view), from the words of case::words. */
function decisionText(c) {
  const o = c?.outcome;
  if (!o) return '';
  const state = DECISION_STATE[c.status] ?? c.status_text;
  const name = OUTCOME[o.outcome] ?? o.outcome;
  switch (c.status) {
    case 'signoff':
      return `${state}(一审:${name})`;
    case 'returned':
      return `${state}。理由:${o.signoff?.reason ?? ''}`;
    case 'missing':
      return `${state}(缺 ${o.missing_items?.length ?? 0} 样材料)`;
    case 'open':
      // A supplement call: the earlier decision was 现场开单; nothing is decided yet.
      return o.outcome === 'missing' ? `${state}(上次${name},缺 ${o.missing_items?.length ?? 0} 样材料)` : state;
    default:
      return state;
  }
}

export class CaseBoard {
  /**
   * @param {object} o
   * @param {string} o.token
   * @param {() => object|null} o.me        the staff member (welcome.me)
   * @param {() => void} o.onUnauthorized
   * @param {(view: string) => void} o.showView
   */
  constructor({ token, me, onUnauthorized, showView }) {
    this.token = token;
    this.me = me;
    this.onUnauthorized = onUnauthorized;
    this.showView = showView;
    this.store = new PaperStore(token);
    this.viewer = new PaperViewer({ store: this.store, actions: (paper) => this.viewerActions(paper), dock: () => this.viewerDock() });
    this.liveCaseNo = null; // the case of the live call
    this.case = null; // the case shown (live call or case screen)
    this.mode = 'none'; // 'call' | 'case'
    this.seen = new Set(); // paper ids already shown (new ones are marked)
    this.undecided = new Map(); // case_no → summary: calls that ended without a decision
    this.dialog = null; // {kind, caseNo}
    this.rescanFor = null;
    this.deskTimer = null;
    this.wire();
  }

  get role() {
    return this.me()?.role;
  }

  // ---- wiring ----

  wire() {
    for (const button of $$('#outcome-buttons [data-outcome]')) {
      button.addEventListener('click', () => this.openOutcome(button.dataset.outcome));
    }
    $('#result-upload').accept = ACCEPT;
    $('#result-upload').addEventListener('change', () => this.renderResultChoice());
    $('#outcome-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.submitOutcome();
    });
    $('#outcome-cancel').addEventListener('click', () => this.closeDialog('#outcome-dialog'));
    $('#rescan-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.submitRescan();
    });
    $('#rescan-cancel').addEventListener('click', () => this.closeDialog('#rescan-dialog'));
    $('#return-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.submitReturn();
    });
    $('#return-cancel').addEventListener('click', () => this.closeDialog('#return-dialog'));
    $('#signoff-approve').addEventListener('click', () => this.approve());
    $('#signoff-return').addEventListener('click', () => this.openDialog('#return-dialog', '#return-reason'));
    $('#finish-button').addEventListener('click', () => this.openOutcome('finish'));
    $('#case-back').addEventListener('click', () => this.leaveCaseView());
    for (const id of ['#outcome-dialog', '#rescan-dialog', '#return-dialog']) {
      $(id).addEventListener('keydown', (event) => {
        if (event.key === 'Escape') this.closeDialog(id);
      });
    }
  }

  openDialog(id, focus) {
    $(id).hidden = false;
    $(focus)?.focus();
  }

  closeDialog(id) {
    $(id).hidden = true;
  }

  // ---- the live call's case ----

  /** The call started (or was re-announced after a reconnect) on `caseNo`. */
  async startCall(caseNo) {
    this.mode = 'call';
    this.place();
    if (!caseNo) {
      this.liveCaseNo = null;
      this.case = null;
      this.render();
      return;
    }
    const fresh = this.liveCaseNo !== caseNo;
    this.liveCaseNo = caseNo;
    clearInterval(this.liveTimer);
    this.liveTimer = setInterval(() => {
      if (this.liveCaseNo === caseNo && this.mode === 'call') this.load(caseNo);
    }, LIVE_REFRESH_MS);
    if (fresh) {
      this.case = null;
      this.seen.clear();
      this.render();
    }
    await this.load(caseNo, { markAllSeen: fresh });
  }

  /**
   * The call ended: remember an undecided case so the decision can still be made (not after a
   * transfer: then the other window decides).
   */
  endCall({ transferred = false } = {}) {
    const c = this.case;
    if (!transferred && c && this.liveCaseNo === c.case_no && c.status === 'open' && this.role === 'approver') {
      this.undecided.set(c.case_no, { case_no: c.case_no, matter: c.matter, village: c.village, villager_name: c.villager?.name ?? null, at_ms: Date.now() });
    }
    this.liveCaseNo = null;
    clearInterval(this.liveTimer);
    if (this.mode === 'call') {
      this.mode = 'none';
      this.case = null;
      this.viewer.close();
      for (const id of ['#outcome-dialog', '#rescan-dialog']) this.closeDialog(id);
    }
    this.refreshDesk();
  }

  async load(caseNo, { markAllSeen = false } = {}) {
    let c;
    try {
      c = await api(`/api/cases/${encodeURIComponent(caseNo)}`, { token: this.token });
    } catch (err) {
      if (err.status === 401) return this.onUnauthorized();
      notify(`案件 ${caseNo} 没有打开:${err.message}`, 'error');
      return;
    }
    if ((this.mode === 'call' && this.liveCaseNo !== caseNo) || (this.mode === 'case' && this.case && this.case.case_no !== caseNo)) return;
    if (markAllSeen) for (const p of c.papers ?? []) this.seen.add(p.id);
    this.case = c;
    if (c.status !== 'open') this.undecided.delete(c.case_no);
    this.render();
  }

  /** case.updated: the live call's case changed (the villager was entered). */
  onCaseUpdated(msg) {
    if (this.case?.case_no === msg.case_no) this.load(msg.case_no);
  }

  /** paper.added: a scan of the live call's case arrived. */
  onPaperAdded(msg) {
    const c = this.case;
    if (!c || msg.case_no !== c.case_no || !msg.paper) return;
    const papers = c.papers ?? (c.papers = []);
    if (papers.some((p) => p.id === msg.paper.id)) return;
    papers.push(msg.paper);
    if (msg.paper.checklist_item) {
      const row = c.checklist?.find((r) => r.item === msg.paper.checklist_item);
      if (row && !row.paper_ids.includes(msg.paper.id)) row.paper_ids.push(msg.paper.id);
    }
    this.render();
    const box = $('#papers-new');
    box.textContent = `新到材料:${msg.paper.checklist_item ? msg.paper.checklist_item + ' · ' : ''}${msg.paper.name}`;
    box.hidden = false;
    clearTimeout(this.newTimer);
    this.newTimer = setTimeout(() => {
      box.hidden = true;
    }, 10_000);
  }

  /** paper.changed: the village re-tagged a scan of the live call's case, or took it back. */
  onPaperChanged(msg) {
    const c = this.case;
    const p = msg.paper;
    if (!c || msg.case_no !== c.case_no || !p) return;
    const before = (c.papers ?? []).find((x) => x.id === p.id);
    if (p.removed_at_ms) {
      c.papers = (c.papers ?? []).filter((x) => x.id !== p.id);
      const removed = c.removed_papers ?? (c.removed_papers = []);
      if (!removed.some((x) => x.id === p.id)) removed.push(p);
    } else {
      c.papers = (c.papers ?? []).map((x) => (x.id === p.id ? p : x));
    }
    for (const row of c.checklist ?? []) {
      row.paper_ids = row.paper_ids.filter((id) => id !== p.id);
      if (!p.removed_at_ms && row.item === p.checklist_item) row.paper_ids.push(p.id);
    }
    this.render();
    const was = before?.checklist_item || '其他材料';
    const box = $('#papers-new');
    box.textContent = p.removed_at_ms
      ? `村里删除了一份材料:${was} · ${p.name}`
      : `村里改了材料类别:${p.name} 从「${was}」改为「${p.checklist_item || '其他材料'}」`;
    box.hidden = false;
    clearTimeout(this.newTimer);
    this.newTimer = setTimeout(() => {
      box.hidden = true;
    }, 10_000);
  }

  // ---- rendering ----

  /**
   * In a call on a screen at least 1280 px wide the viewer sits beside the live video, not over
   * it (app.css `body.viewer-docked`); elsewhere it opens over the page.
   */
  viewerDock() {
    return this.mode === 'call' && matchMedia(`(min-width: ${DOCK_MIN_WIDTH}px)`).matches ? $('#call-viewer-slot') : null;
  }

  place() {
    if (this.viewer.isOpen) this.viewer.place();
    const papers = $('#case-papers');
    const outcome = $('#outcome-panel');
    if (this.mode === 'call') {
      $('#call-case-slot').append(papers);
      $('#call-outcome-slot').append(outcome);
    } else if (this.mode === 'case') {
      $('#case-view-slot').append(papers);
      $('#case-outcome-slot').append(outcome);
    }
  }

  get scans() {
    return (this.case?.papers ?? []).filter((p) => p.kind === 'scan');
  }

  render() {
    const c = this.case;
    const live = this.mode === 'call' && c && c.case_no === this.liveCaseNo;
    // Case facts beside the video.
    if (this.mode === 'call') {
      $('#call-case').textContent = c ? `案件编号 ${c.case_no}` : '';
      $('#call-case').dataset.caseNo = c?.case_no ?? '';
      fill($('#call-villager'), ...this.villagerLine(c));
    }
    // Papers and checklist.
    const scans = this.scans;
    $('#papers-count').textContent = scans.length ? `(${scans.length} 份)` : '';
    $('#papers-empty').hidden = scans.length > 0;
    $('#papers-empty').textContent = live ? '还没有材料。村里扫描后会自动出现在这里。' : '这个案件没有村里的材料。';
    const items = c?.matter?.required_papers ?? [];
    fill($('#window-checklist'), ...checklistRows(items, scans));
    $('#window-checklist').hidden = items.length === 0;
    const missingCount = items.filter((item) => !scans.some((p) => p.checklist_item === item)).length;
    $('#checklist-state').textContent = items.length ? (missingCount ? `还缺 ${missingCount} 样` : '都有了 ✓') : '';
    fill($('#window-materials'), ...scans.map((p) => this.materialRow(p, scans, live)));
    const results = (c?.papers ?? []).filter((p) => p.kind === 'result');
    $('#result-papers').hidden = results.length === 0;
    fill($('#result-papers-list'), ...results.map((p) => this.materialRow(p, results, false)));
    this.viewer.update(this.viewer.current?.kind === 'result' ? results : scans);
    this.renderDecision();
    if (this.mode === 'case') this.renderCaseView();
  }

  villagerLine(c) {
    if (!c) return [];
    const v = c.villager;
    if (!v) return [el('span', { class: 'hint' }, '办事人还没有登记')];
    return [
      el('strong', {}, v.name),
      el('span', {}, ` · 电话 ${v.phone}`),
      v.id_number_masked ? el('span', {}, ` · 身份证 ${v.id_number_masked}`) : null,
    ];
  }

  /** A paper row: `material-item` for scans, `result-item` for result papers. */
  materialRow(paper, list, live) {
    const fresh = !this.seen.has(paper.id);
    const source = isImage(paper.content_type) ? this.store.blobUrl(paper) : null;
    const testid = paper.kind === 'result' ? { testid: 'result-item' } : { testid: 'material-item' };
    return el(
      'li',
      { class: `material-item uploaded${fresh ? ' fresh' : ''}`, ...testid, 'data-paper-id': paper.id, 'data-checklist-item': paper.checklist_item ?? '', 'data-kind': paper.kind },
      el('button', { type: 'button', class: 'thumb-button', 'aria-label': `打开 ${paper.name}`, onclick: () => this.view(paper, list) },
        thumbnail({ contentType: paper.content_type, name: paper.name, source })),
      el(
        'div',
        { class: 'material-text' },
        el('span', { class: 'material-tag' }, paper.kind === 'result' ? '结果文书' : paper.checklist_item || '其他材料'),
        el('span', { class: 'material-name' }, paper.name),
        el('span', { class: 'material-size' }, `${formatSize(paper.size)} · ${clock(paper.uploaded_at_ms)}`),
        fresh ? el('span', { class: 'tag new' }, '新') : null,
      ),
      el(
        'div',
        { class: 'material-actions' },
        el('button', { type: 'button', class: 'primary', testid: 'material-open', onclick: () => this.view(paper, list) }, '看'),
        live ? el('button', { type: 'button', class: 'secondary', testid: 'rescan-request', onclick: () => this.askRescan(paper) }, '请重扫') : null,
      ),
    );
  }

  view(paper, list) {
    this.seen.add(paper.id);
    this.viewer.open(paper, list);
    this.render();
  }

  viewerActions(paper) {
    const live = this.mode === 'call' && this.case?.case_no === this.liveCaseNo;
    if (!live || paper.kind !== 'scan') return [];
    return [el('button', { type: 'button', class: 'danger', testid: 'viewer-rescan', onclick: () => this.askRescan(paper) }, '请村里重新扫描这一份')];
  }

  renderDecision() {
    const c = this.case;
    const line = $('#decision-state');
    const text = decisionText(c);
    line.hidden = !text;
    line.textContent = text;
    line.dataset.status = c?.status ?? '';
    // Who may decide: the approver, on an open case in the call, or a case sent back.
    const canDecide = Boolean(c) && this.role === 'approver' && (c.status === 'open' || c.status === 'returned') && (this.mode === 'call' ? c.case_no === this.liveCaseNo : true);
    $('#outcome-buttons').hidden = !canDecide;
    // No decision without the villager's name and phone (the server answers 409
    // villager_required); in the call the village is asked for them.
    const noVillager = canDecide && !c.villager;
    $('#villager-required').hidden = !noVillager;
    $('#villager-required-text').textContent = this.mode === 'call'
      ? '办事人的姓名和电话还没有登记。请村里先登记(已经提醒村里),登记后才能作决定。'
      : '办事人的姓名和电话还没有登记,登记后才能作决定。';
    // A supplement call: what was asked for last time, beside the checklist.
    const previous = c?.status === 'open' && c.outcome?.outcome === 'missing' ? c.outcome.missing_items ?? [] : [];
    const prev = $('#previous-missing-town');
    prev.hidden = previous.length === 0;
    fill(prev, previous.length ? el('p', {}, '上次现场开单要补的材料:') : null, previous.length ? el('ol', {}, ...previous.map((m) => el('li', {}, m))) : null);
    $('#outcome-panel').hidden = !c || (!canDecide && !text);
    $('#outcome-panel').dataset.status = c?.status ?? '';
    for (const button of $$('#outcome-buttons button')) button.disabled = !canDecide || noVillager;
  }

  // ---- re-scan ----

  askRescan(paper) {
    this.rescanFor = paper;
    $('#rescan-what').textContent = `${paper.checklist_item ? paper.checklist_item + ':' : ''}${paper.name}`;
    $('#rescan-note').value = '看不清楚,请重新扫描';
    $('#rescan-error').hidden = true;
    this.openDialog('#rescan-dialog', '#rescan-note');
    $('#rescan-note').select();
  }

  async submitRescan() {
    const paper = this.rescanFor;
    const c = this.case;
    const note = $('#rescan-note').value.trim();
    if (!note) {
      $('#rescan-error').textContent = '请写一句要村里怎么重扫';
      $('#rescan-error').hidden = false;
      return;
    }
    try {
      await api(`/api/cases/${encodeURIComponent(c.case_no)}/rescan`, { method: 'POST', token: this.token, body: { paper_id: paper?.id, note } });
      this.closeDialog('#rescan-dialog');
      notify('已请村里重新扫描,新的扫描件到了会自动出现');
    } catch (err) {
      if (err.status === 401) return this.onUnauthorized();
      $('#rescan-error').textContent = err.message;
      $('#rescan-error').hidden = false;
    }
  }

  // ---- outcomes ----

  openOutcome(kind) {
    const c = this.case;
    if (!c) return;
    this.dialog = { kind, caseNo: c.case_no, resultPaper: null, upload: null };
    $('#outcome-dialog').dataset.kind = kind;
    $('#outcome-title').textContent = kind === 'finish' ? '办结:上传办好的结果' : `${OUTCOME[kind]}:${nameOf(c.matter)}`;
    const signoff = Boolean(c.matter?.needs_signoff);
    $('#outcome-help').textContent = (signoff && OUTCOME_HELP_SIGNOFF[kind]) || OUTCOME_HELP[kind];
    $('#result-part').hidden = kind !== 'done' && kind !== 'finish';
    $('#missing-part').hidden = kind !== 'missing';
    $('#result-upload').value = '';
    // 材料齐全 only when every paper of the checklist is there.
    const items = c.matter?.required_papers ?? [];
    const complete = items.length > 0 && items.every((item) => this.scans.some((p) => p.checklist_item === item));
    $('#outcome-note').value = (signoff && DEFAULT_NOTE_SIGNOFF[kind]) || (kind === 'later' && complete ? '材料齐全,已受理。镇上办好后把结果送回村里。' : DEFAULT_NOTE[kind]);
    $('#outcome-note-label').textContent = kind === 'refused' ? '不能办理的原因(必须写)' : kind === 'missing' ? '说明(可以不写)' : '说明';
    $('#outcome-error').hidden = true;
    if (kind === 'missing') {
      const scans = this.scans;
      fill($('#missing-checks'), 
        ...(c.matter?.required_papers ?? []).map((item, i) => {
          const have = scans.some((p) => p.checklist_item === item);
          const input = el('input', { type: 'checkbox', id: `missing-${i}`, value: item, testid: 'missing-item' });
          input.checked = !have;
          return el('label', { class: 'check-choice', for: `missing-${i}` }, input, el('span', {}, item), have ? el('span', { class: 'hint' }, '(已有)') : null);
        }),
      );
      $('#missing-other').value = '';
    }
    this.renderResultChoice();
    $('#outcome-confirm').textContent = kind === 'finish' ? '上传并办结' : `确定:${OUTCOME[kind]}`;
    $('#outcome-confirm').disabled = false;
    this.openDialog('#outcome-dialog', kind === 'refused' ? '#outcome-note' : kind === 'done' || kind === 'finish' ? '#result-upload' : '#outcome-confirm');
  }

  existingResult() {
    const results = (this.case?.papers ?? []).filter((p) => p.kind === 'result');
    return this.dialog?.resultPaper ?? results[results.length - 1] ?? null;
  }

  renderResultChoice() {
    const file = $('#result-upload').files?.[0];
    const existing = this.existingResult();
    const state = $('#result-state');
    if (file) state.textContent = `将上传:${file.name}(${formatSize(file.size)})`;
    else if (existing) state.textContent = `将使用已上传的结果文书:${existing.name}。要换一份,请在上面选文件。`;
    else state.textContent = '还没有选结果文书。';
  }

  async submitOutcome() {
    const d = this.dialog;
    const c = this.case;
    if (!d || !c || c.case_no !== d.caseNo) return;
    const error = $('#outcome-error');
    const fail = (text) => {
      error.textContent = text;
      error.hidden = false;
      $('#outcome-confirm').disabled = false;
    };
    error.hidden = true;
    const note = $('#outcome-note').value.trim();
    const body = { outcome: d.kind, note };
    if (d.kind === 'missing') {
      const ticked = [...$$('#missing-checks input:checked')].map((i) => i.value);
      const other = $('#missing-other').value.split('\n').map((s) => s.trim()).filter(Boolean);
      body.missing_items = [...ticked, ...other].slice(0, 20);
      if (!body.missing_items.length && !note) return fail('请勾上缺的材料,或者写上要补什么');
    } else if (!note) {
      return fail(d.kind === 'refused' ? '请写明不能办理的原因' : '请写一句说明');
    }
    if (note.length > 2000) return fail('说明太长了,最多 2000 字');
    $('#outcome-confirm').disabled = true;
    if (d.kind === 'done' || d.kind === 'finish') {
      const file = $('#result-upload').files?.[0];
      let paper = file ? null : this.existingResult();
      if (file) {
        paper = await this.uploadResult(file, c.case_no).catch((err) => {
          fail(`结果文书没有传上去:${err.message}`);
          return null;
        });
        if (!paper) return;
        d.resultPaper = paper;
        $('#result-upload').value = '';
        (c.papers ?? (c.papers = [])).push(paper);
      }
      if (!paper) return fail('请先选结果文书(证书、回执等)的文件');
      body.result_paper_id = paper.id;
    }
    try {
      let updated;
      if (d.kind === 'finish') {
        updated = await api(`/api/cases/${encodeURIComponent(c.case_no)}/finish`, { method: 'POST', token: this.token, body: { note, result_paper_id: body.result_paper_id } });
      } else {
        updated = await api(`/api/cases/${encodeURIComponent(c.case_no)}/outcome`, { method: 'POST', token: this.token, body });
      }
      this.closeDialog('#outcome-dialog');
      this.dialog = null;
      this.undecided.delete(c.case_no);
      if (this.case?.case_no === updated.case_no) this.case = updated;
      this.render();
      notify(decisionText(updated) || '已记录');
      this.refreshDesk();
    } catch (err) {
      if (err.status === 401) return this.onUnauthorized();
      const why = err.code === 'case_closed' ? '这个案件已经办结了'
        : err.code === 'conflict' ? '案件状态已经变了,请关掉再看一次'
        : err.code === 'villager_required' ? '办事人的姓名和电话还没有登记,已经提醒村里登记。登记后再作决定。'
        : err.message;
      if (err.code === 'villager_required') this.load(c.case_no);
      fail(why);
      if (err.code === 'case_closed' || err.code === 'conflict') this.load(c.case_no);
    }
  }

  uploadResult(file, caseNo) {
    const state = $('#result-state');
    const up = new PaperUpload({
      token: this.token,
      caseNo,
      blob: file,
      name: file.name.replace(/[/\\]/g, '_').replace(/^\.+/, '').replace(/\.{2,}/g, '.') || '结果文书',
      kind: 'result',
      onChange: (u) => {
        state.textContent = `结果文书:${uploadStatusText(u)}`;
      },
    });
    this.dialog.upload = up;
    return up.run();
  }

  // ---- the case screen (desk lists) ----

  async openCase(caseNo) {
    this.mode = 'case';
    this.case = null;
    this.seen.clear();
    this.place();
    this.render();
    this.showView('case');
    $('#case-title').textContent = `案件 ${caseNo}`;
    await this.load(caseNo, { markAllSeen: true });
  }

  leaveCaseView() {
    this.mode = 'none';
    this.case = null;
    this.viewer.close();
    this.showView('desk');
    this.refreshDesk();
  }

  renderCaseView() {
    const c = this.case;
    if (!c) {
      fill($('#case-facts'), el('p', { class: 'hint' }, '正在打开…'));
      $('#case-decision').hidden = true;
      for (const id of ['#signoff-approve', '#signoff-return', '#finish-button']) $(id).hidden = true;
      return;
    }
    $('#case-title').textContent = `${nameOf(c.matter)} · ${c.case_no}`;
    fill($('#case-facts'), 
      el('p', { class: 'big-text' }, el('strong', {}, c.status_text)),
      el('p', {}, `${nameOf(c.village)}便民服务室 · ${nameOf(c.town)}`),
      el('p', {}, ...this.villagerLine(c)),
      c.matter?.needs_signoff ? el('p', { class: 'tag' }, '一审一核') : null,
    );
    const o = c.outcome;
    const decision = $('#case-decision');
    decision.hidden = !o;
    if (o) {
      fill(decision, 
        el('h2', {}, c.status === 'signoff' ? '一审意见(窗口审查)' : '办理决定'),
        el('p', { class: 'big-text' }, el('strong', {}, OUTCOME[o.outcome] ?? o.outcome), o.decided_by ? ` · ${nameOf(o.decided_by)} ${o.decided_at_ms ? whenLabel.format(new Date(o.decided_at_ms)) : ''}` : ''),
        o.note ? el('p', {}, o.outcome === 'refused' ? `原因:${o.note}` : `说明:${o.note}`) : null,
        o.missing_items?.length ? el('ol', {}, ...o.missing_items.map((m) => el('li', {}, m))) : null,
        o.result ? el('p', {}, '结果文书:', el('button', { type: 'button', class: 'link-button', onclick: () => this.view(o.result, [o.result]) }, o.result.name)) : null,
        o.signoff ? el('p', { class: o.signoff.decision === 'returned' ? 'warning' : 'hint' }, `${SIGNOFF_DECISION[o.signoff.decision] ?? o.signoff.decision}:${nameOf(o.signoff.by)}${o.signoff.reason ? `,理由:${o.signoff.reason}` : ''}`) : null,
      );
    }
    const chief = this.role === 'chief';
    $('#signoff-approve').hidden = !(chief && c.status === 'signoff');
    $('#signoff-return').hidden = !(chief && c.status === 'signoff');
    $('#finish-button').hidden = !((chief || this.role === 'approver') && c.status === 'later');
  }

  async approve() {
    const c = this.case;
    if (!c) return;
    $('#signoff-approve').disabled = true;
    try {
      await api(`/api/cases/${encodeURIComponent(c.case_no)}/signoff`, { method: 'POST', token: this.token, body: { decision: 'approve' } });
      notify(`已核准签发:${c.case_no},结果已送到村里`);
      this.leaveCaseView();
    } catch (err) {
      if (err.status === 401) return this.onUnauthorized();
      notify(err.code === 'conflict' ? '这个案件已经不在待审核了' : err.message, 'error');
      this.load(c.case_no);
    } finally {
      $('#signoff-approve').disabled = false;
    }
  }

  async submitReturn() {
    const c = this.case;
    const reason = $('#return-reason').value.trim();
    const error = $('#return-error');
    if (!reason) {
      error.textContent = '退回必须写明理由';
      error.hidden = false;
      $('#return-reason').focus();
      return;
    }
    try {
      await api(`/api/cases/${encodeURIComponent(c.case_no)}/signoff`, { method: 'POST', token: this.token, body: { decision: 'return', reason } });
      this.closeDialog('#return-dialog');
      $('#return-reason').value = '';
      error.hidden = true;
      notify(`已退回 ${c.case_no},审查人会收到理由`);
      this.leaveCaseView();
    } catch (err) {
      if (err.status === 401) return this.onUnauthorized();
      error.textContent = err.message;
      error.hidden = false;
    }
  }

  // ---- desk lists ----

  startDeskRefresh() {
    clearInterval(this.deskTimer);
    this.deskTimer = setInterval(() => this.refreshDesk(), DESK_REFRESH_MS);
    this.refreshDesk();
  }

  async refreshDesk() {
    const role = this.role;
    if (role !== 'approver' && role !== 'chief') return;
    const get = (path) => api(path, { token: this.token }).catch((err) => {
      if (err.status === 401) this.onUnauthorized();
      return null;
    });
    const [signoffs, later, returned, bookings, undecidedHere] = await Promise.all([
      role === 'chief' ? get('/api/signoffs') : Promise.resolve(null),
      get('/api/cases?status=later'),
      role === 'approver' ? get('/api/cases?status=returned') : Promise.resolve(null),
      get('/api/bookings'),
      role === 'approver' ? get('/api/cases/undecided') : Promise.resolve(null),
    ]);
    if (signoffs) {
      this.renderList('#signoff', signoffs, { testid: 'signoff-item', action: '审核', detail: (s) => `一审:${OUTCOME[s.outcome?.outcome] ?? ''} · ${nameOf(s.outcome?.decided_by)}` });
    }
    $('#signoff-section').hidden = role !== 'chief';
    if (later) this.renderList('#later', later, { testid: 'later-case', action: '办结', detail: () => '放心回家,等办结' });
    if (returned) this.renderList('#returned', returned, { testid: 'returned-case', action: '重新决定', detail: (s) => s.status_text });
    $('#returned-section').hidden = role !== 'approver' || !returned?.length;
    // The server's list (a reload loses nothing); a call that just ended shows at once.
    const undecided = [...(undecidedHere ?? [])];
    const now = Date.now();
    for (const [caseNo, local] of this.undecided) {
      if (now - local.at_ms > UNDECIDED_LOCAL_MS || undecided.some((s) => s.case_no === caseNo)) this.undecided.delete(caseNo);
      else undecided.push(local);
    }
    this.renderList('#undecided', undecided, { testid: 'undecided-case', action: '作出决定', detail: () => '通话已结束,还没有决定' });
    $('#undecided-section').hidden = undecided.length === 0;
    if (this.undecided.size && this.localTimer === undefined) {
      // Local rows are replaced by the server's within seconds.
      this.localTimer = setTimeout(() => {
        this.localTimer = undefined;
        this.refreshDesk();
      }, 3_000);
    }
    if (bookings) this.renderBookings(bookings);
  }

  /** Rows `testid` (data-case-no), each with a button `${testid}-open` that opens the case. */
  renderList(prefix, list, { testid, action, detail }) {
    $(`${prefix}-empty`).hidden = list.length > 0;
    const count = $(`${prefix}-count`);
    if (count) count.textContent = list.length ? `(${list.length})` : '';
    $(`${prefix}-list`).replaceChildren(
      ...list.map((s) =>
        el(
          'li',
          { class: 'case-row', testid, 'data-case-no': s.case_no },
          el('div', { class: 'case-row-text' },
            el('span', { class: 'case-row-title' }, `${nameOf(s.village)} · ${nameOf(s.matter)}`),
            el('span', { class: 'hint' }, [s.case_no, s.villager_name, detail(s)].filter(Boolean).join(' · '))),
          el('button', { type: 'button', class: 'primary big', testid: `${testid}-open`, onclick: () => this.openCase(s.case_no) }, action),
        ),
      ),
    );
  }

  renderBookings(list) {
    const shown = list.filter((b) => b.status !== 'cancelled');
    $('#bookings-empty').hidden = shown.length > 0;
    fill($('#bookings-list'), 
      ...shown.map((b) =>
        el(
          'li',
          { class: `booking-row ${b.status}`, testid: 'booking-item', 'data-booking-id': b.id, 'data-status': b.status },
          el('span', { class: 'booking-time' }, `${timeLabel.format(new Date(b.start_ms))}-${timeLabel.format(new Date(b.end_ms))}`),
          el('span', { class: 'booking-what' }, `${nameOf(b.village)} · ${nameOf(b.matter)}${b.note ? `(${b.note})` : ''}`),
          el('span', { class: 'tag' }, BOOKING_STATUS[b.status] ?? b.status),
        ),
      ),
    );
  }
}
