// @ts-check
// The kiosk's case: the villager, the matter's checklist, the papers (scans and stills with
// resumable uploads), re-scan requests and the outcome banner. One case at a time; the same
// panel of papers moves between the prepare, waiting and call screens.
import { api } from './api.js';
import { StillCamera, stillName } from './camera.js';
import { $, el, fill, nameOf, notify } from './common.js';
import { ACCEPT, PaperStore, PaperViewer, checklistRows, clock, formatSize, isImage, thumbnail } from './papers.js';
import { printPdf, printSheet } from './print.js';
import { PendingPapers } from './pending.js';
import { PaperUpload, uploadStatusText } from './upload.js';
import { CLERK_NOTE, NEXT_STEP, PRINT_LABEL, STATUS } from './words.js';

const OTHER = ''; // the "其他材料" choice: a paper that answers no checklist item
const CASE_RETRY_MS = [2_000, 4_000, 8_000, 15_000];
const TYPE_BY_EXTENSION = { pdf: 'application/pdf', jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png' };


/** ISO 7064 MOD 11-2 check of an 18-character ID number (or 15 old digits). */
export function idNumberLooksRight(raw) {
  const s = raw.replace(/\s+/g, '').toUpperCase();
  if (/^\d{15}$/.test(s)) return true;
  if (!/^\d{17}[\dX]$/.test(s)) return false;
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  const sum = weights.reduce((acc, w, i) => acc + w * Number(s[i]), 0);
  return '10X98765432'[sum % 11] === s[17];
}

function typeOf(file) {
  if (/^(application\/pdf|image\/jpeg|image\/png)$/.test(file.type)) return file.type;
  return TYPE_BY_EXTENSION[(file.name.split('.').pop() ?? '').toLowerCase()] ?? '';
}

/** A paper name the server takes as a label: no path tricks, at most 200 characters. */
function cleanName(name) {
  let n = String(name).replace(/[\u0000-\u001f\u007f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '').replace(/[/\\]/g, '_').replace(/\.{2,}/g, '.').trim();
  n = n.replace(/^\.+/, '');
  if (!n) n = '材料';
  return [...n].slice(0, 200).join('');
}

export class CaseDesk {
  /**
   * @param {object} o
   * @param {string} o.token
   * @param {() => void} o.onUnauthorized
   * @param {() => void} [o.onChange]   the case or its papers changed (the page may re-render)
   */
  constructor({ token, onUnauthorized, onChange = () => {} }) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
    this.onChange = onChange;
    this.store = new PaperStore(token);
    this.viewer = new PaperViewer({ store: this.store });
    this.matter = null;
    this.case = null;
    this.caseOpening = null;
    this.uploads = []; // local papers: {key, pendingId, name, checklistItem, blob, contentType, localUrl, status, upload, uploadUrl, error, paperId}
    // The same papers kept in IndexedDB until the server has them (a reload loses nothing).
    this.pending = new PendingPapers();
    this.nextKey = 1;
    this.target = null;
    this.outcome = null;
    this.rescan = null;
    this.editingVillager = true;
    this.villagerRequested = false;
    this.inCall = false;
    this.pumping = false;
    this.correcting = null; // the paper being re-tagged or removed
    this.camera = new StillCamera({ select: $('#camera-select'), video: $('#camera-preview'), info: $('#camera-info') });
    this.wire();
  }

  get caseNo() {
    return this.case?.case_no ?? null;
  }

  /** Papers not yet acknowledged as stored. */
  get uploading() {
    return this.uploads.some((i) => i.status === 'queued' || i.status === 'uploading');
  }

  get items() {
    return this.case?.matter?.required_papers ?? this.matter?.required_papers ?? [];
  }

  /** Server papers (scans) of the case, oldest first. */
  get papers() {
    return (this.case?.papers ?? []).filter((p) => p.kind === 'scan');
  }

  // ---- wiring ----

  wire() {
    $('#villager-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.saveVillager();
    });
    $('#villager-edit').addEventListener('click', () => {
      this.editingVillager = true;
      this.renderVillager();
      $('#villager-name').focus();
    });
    $('#scan-upload').accept = ACCEPT;
    $('#scan-upload').addEventListener('change', (event) => {
      const files = [...event.target.files];
      event.target.value = '';
      this.addFiles(files);
    });
    $('#capture-still').addEventListener('click', () => this.openCamera());
    $('#camera-shoot').addEventListener('click', () => this.shoot());
    $('#camera-done').addEventListener('click', () => this.closeCamera());
    $('#camera-dialog').addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.closeCamera();
    });
    $('#rescan-ok').addEventListener('click', () => {
      this.rescan = null;
      this.render();
    });
    $('#rescan-file').addEventListener('click', () => $('#scan-upload').click());
    $('#rescan-camera').addEventListener('click', () => this.openCamera());
    $('#retag-cancel').addEventListener('click', () => this.closeCorrection('#retag-dialog'));
    $('#remove-keep').addEventListener('click', () => this.closeCorrection('#remove-dialog'));
    $('#remove-confirm').addEventListener('click', () => this.removePaper());
    for (const id of ['#retag-dialog', '#remove-dialog']) {
      $(id).addEventListener('keydown', (event) => {
        if (event.key === 'Escape') this.closeCorrection(id);
      });
    }
  }

  // ---- the case ----

  /**
   * A matter was chosen: a case of another matter is left behind (it stays on the server; the
   * page asked the clerk first, see kiosk.js `chooseMatter`).
   */
  setMatter(matter) {
    if (this.matter?.id === matter.id && (!this.case || this.case.matter?.id === matter.id)) return;
    this.matter = matter;
    if (this.case) this.forgetCase();
    this.target = this.items[0] ?? OTHER;
    this.render();
  }

  /** The clerk chose to leave the open case (it can be found again with 继续办理). */
  leaveCase() {
    this.forgetCase();
    $('#villager-form').reset();
    this.render();
  }

  /** villager.requested: the window cannot decide before the villager is entered. */
  onVillagerRequested(msg) {
    if (msg.case_no !== this.caseNo) return false;
    this.villagerRequested = !this.case?.villager;
    this.editingVillager = true;
    this.render();
    $('#villager-title').scrollIntoView({ block: 'start', behavior: 'smooth' });
    $('#villager-name').focus();
    return true;
  }

  /** Start over for the next villager. */
  reset() {
    this.forgetCase();
    this.matter = null;
    $('#villager-form').reset();
    this.render();
  }

  forgetCase() {
    for (const item of this.uploads) {
      if (item.status !== 'done') item.upload?.cancel();
      this.pending.remove(item.pendingId);
      if (item.localUrl) URL.revokeObjectURL(item.localUrl);
    }
    this.uploads = [];
    this.case = null;
    this.caseOpening = null;
    this.outcome = null;
    this.previousMissing = [];
    this.rescan = null;
    this.villagerRequested = false;
    this.editingVillager = true;
    this.store.clear();
    this.viewer.close();
  }

  /** Take a Case from the server (village view) as the current one. */
  adopt(c) {
    if (!c) return;
    const same = this.case?.case_no === c.case_no;
    if (!same) {
      // A different case (resumed by number, or the one of a call): local papers of no case go along.
      for (const item of this.uploads) if (item.status === 'done') item.status = 'gone';
      this.uploads = this.uploads.filter((i) => i.status !== 'gone');
    }
    this.case = c;
    if (c.matter) this.matter = { ...(this.matter?.id === c.matter.id ? this.matter : {}), ...c.matter };
    if (c.villager && !same) this.editingVillager = false;
    // A case taken over (resumed, restored, the call's): the next paper answers the first item
    // still missing, never one already there.
    if (!same || (!this.items.includes(this.target) && this.target !== OTHER)) this.target = this.firstMissing();
    // The decision in force, as the village sees it: none while the case is open again.
    if (c.status === 'open') {
      this.outcome = null;
    } else if (c.outcome) {
      this.outcome = { case_no: c.case_no, status: c.status, status_text: c.status_text, outcome: c.outcome.outcome, note: c.outcome.note, missing_items: c.outcome.missing_items ?? [], result: c.outcome.result };
    } else if (c.status === 'reviewing') {
      this.outcome = { case_no: c.case_no, status: 'reviewing', status_text: c.status_text, outcome: null, note: '', missing_items: [], result: null };
    }
    // What the town asked for last time (a supplement call): shown beside the checklist.
    this.previousMissing = ['open', 'missing'].includes(c.status) ? c.outcome?.missing_items ?? [] : [];
    this.render();
    if (!same) this.restorePending(c);
  }

  /** Papers of this case kept from before a reload or a restart: they go on uploading. */
  async restorePending(c) {
    const kept = await this.pending.ofCase(c.case_no, c.matter?.id ?? null);
    if (this.caseNo !== c.case_no) return; // another case was taken meanwhile
    let restored = 0;
    for (const r of kept) {
      if (this.uploads.some((i) => i.pendingId === r.id)) continue;
      // Only scans can be added while the case takes papers; the others are dropped.
      if (!['open', 'missing'].includes(c.status)) {
        this.pending.remove(r.id);
        continue;
      }
      this.uploads.push({
        key: this.nextKey++,
        pendingId: r.id,
        name: r.name,
        checklistItem: r.checklistItem,
        blob: r.blob,
        contentType: r.contentType,
        localUrl: isImage(r.contentType) ? URL.createObjectURL(r.blob) : null,
        status: 'queued',
        upload: null,
        uploadUrl: r.uploadUrl,
        error: '',
        paperId: null,
      });
      if (r.caseNo !== c.case_no) this.pending.update(r.id, { caseNo: c.case_no });
      restored += 1;
    }
    if (!restored) return;
    notify(`上次没传完的 ${restored} 份材料找回来了,正在接着上传。`);
    this.render();
    this.pump();
  }

  async load(caseNo) {
    const c = await api(`/api/cases/${encodeURIComponent(caseNo)}`, { token: this.token });
    this.adopt(c);
    return c;
  }

  /** Refresh the current case (after a reconnect or an outcome); failures are quiet. */
  async refresh() {
    if (!this.caseNo) return;
    try {
      await this.load(this.caseNo);
    } catch (err) {
      if (err.status === 401) this.onUnauthorized();
    }
  }

  /** The call started on `caseNo` (from call.started, or the kiosk's current case). */
  async attachCall(caseNo) {
    if (!caseNo) {
      try {
        const c = await api('/api/cases/current', { token: this.token });
        this.adopt(c);
      } catch {
        // No case known yet: papers wait until one is.
      }
      return;
    }
    if (caseNo === this.caseNo) {
      this.refresh();
      return;
    }
    try {
      await this.load(caseNo);
      this.pump();
    } catch (err) {
      if (err.status === 401) this.onUnauthorized();
    }
  }

  /** The case, opened on the server if it is not yet (POST /api/cases). */
  ensureCase(villager) {
    if (this.case && !villager) return Promise.resolve(this.case);
    if (this.caseOpening) return this.caseOpening;
    const matter = this.matter;
    if (!matter) return Promise.reject(new Error('请先选一个事项'));
    const body = { matter_id: matter.id };
    if (villager) body.villager = villager;
    this.caseOpening = api('/api/cases', { method: 'POST', token: this.token, body })
      .then((c) => {
        if (this.matter?.id === matter.id) this.adopt(c);
        return c;
      })
      .finally(() => {
        this.caseOpening = null;
      });
    return this.caseOpening;
  }

  // ---- villager ----

  async saveVillager() {
    const name = $('#villager-name').value.trim();
    const phone = $('#villager-phone').value.replace(/[\s-]/g, '');
    const idNumber = $('#villager-id').value.replace(/\s+/g, '').toUpperCase();
    const error = $('#villager-error');
    const fail = (text, field) => {
      error.textContent = text;
      error.hidden = false;
      field.focus();
    };
    error.hidden = true;
    if (!name || name.length > 50) return fail('请填写办事人的姓名', $('#villager-name'));
    if (!/^\+?\d{7,15}$/.test(phone)) return fail('电话号码要填 7 到 15 位数字(手机号是 11 位)', $('#villager-phone'));
    if (idNumber && !idNumberLooksRight(idNumber)) return fail('身份证号码不对,请再核对一下(18 位,最后一位可能是 X);不知道可以不填', $('#villager-id'));
    const villager = { name, phone };
    if (idNumber) villager.id_number = idNumber;
    const button = $('#villager-save');
    button.disabled = true;
    button.textContent = '正在保存…';
    try {
      if (this.case) {
        this.adopt(await api(`/api/cases/${encodeURIComponent(this.caseNo)}/villager`, { method: 'PUT', token: this.token, body: villager }));
      } else {
        await this.ensureCase(villager);
      }
      $('#villager-id').value = ''; // never kept on screen: shown masked from now on
      this.editingVillager = false;
      this.render();
      this.pump();
      // The next step: the papers.
      $('#papers-panel').scrollIntoView({ block: 'start', behavior: 'smooth' });
    } catch (err) {
      if (err.status === 401) return this.onUnauthorized();
      fail(err.code === 'bad_villager' ? `办事人信息不对:${err.message}` : err.message, $('#villager-name'));
    } finally {
      button.disabled = false;
      button.textContent = '保存办事人';
    }
  }

  renderVillager() {
    const v = this.case?.villager;
    if (v) this.villagerRequested = false;
    // In the call, the window cannot decide without the villager: asked for here at once.
    $('#villager-request').hidden = !(this.villagerRequested || (this.inCall && this.case && !v));
    const editing = this.editingVillager || !v;
    $('#villager-form').hidden = !editing;
    $('#villager-summary').hidden = editing;
    if (v) {
      fill($('#villager-shown'), 
        el('strong', {}, v.name),
        el('span', {}, `电话 ${v.phone}`),
        v.id_number_masked ? el('span', { testid: 'villager-id-masked' }, `身份证 ${v.id_number_masked}`) : el('span', { class: 'hint' }, '没有登记身份证号'),
      );
      if (editing && !$('#villager-name').value) {
        $('#villager-name').value = v.name;
        $('#villager-phone').value = v.phone;
      }
      $('#villager-id').placeholder = v.id_number_masked ? `已登记 ${v.id_number_masked},修改时请重新输入` : '可以不填';
    } else {
      $('#villager-id').placeholder = '可以不填';
    }
  }

  // ---- papers ----

  firstMissing() {
    const have = new Set(this.papers.map((p) => p.checklist_item));
    for (const item of this.uploads) if (item.status !== 'failed') have.add(item.checklistItem);
    return this.items.find((item) => !have.has(item)) ?? OTHER;
  }

  pick(item) {
    this.target = item;
    this.render();
  }

  addFiles(files) {
    for (const file of files) {
      const contentType = typeOf(file);
      if (!contentType) {
        notify(`「${file.name}」不是 PDF、JPG 或 PNG 文件,不能上传`, 'error');
        continue;
      }
      this.queue(file, cleanName(file.name), contentType);
    }
  }

  queue(blob, name, contentType) {
    const item = {
      key: this.nextKey++,
      pendingId: PendingPapers.newId(),
      name,
      checklistItem: this.target || null,
      blob,
      contentType,
      localUrl: isImage(contentType) ? URL.createObjectURL(blob) : null,
      status: 'queued',
      upload: null,
      uploadUrl: null,
      error: '',
      paperId: null,
    };
    this.uploads.push(item);
    this.keep(item);
    // The next paper most likely answers the next missing item.
    if (this.target) this.target = this.firstMissing() || this.target;
    this.render();
    this.pump();
    return item;
  }

  /** Keep a local paper in IndexedDB until the server has it. */
  keep(item) {
    this.pending.put({
      id: item.pendingId,
      caseNo: this.caseNo,
      matterId: this.matter?.id ?? null,
      name: item.name,
      checklistItem: item.checklistItem,
      contentType: item.contentType,
      blob: item.blob,
      uploadUrl: item.uploadUrl,
      createdAt: Date.now(),
    });
  }

  /** Upload queued papers one after another (gentle on a weak link). */
  async pump() {
    if (this.pumping) return;
    this.pumping = true;
    let caseAttempt = 0;
    try {
      for (;;) {
        const item = this.uploads.find((i) => i.status === 'queued');
        if (!item) break;
        let caseNo;
        try {
          caseNo = (await this.ensureCase()).case_no;
          caseAttempt = 0;
        } catch (err) {
          if (err.status === 401) return this.onUnauthorized();
          if (err.status && err.status < 500 && err.status !== 429) {
            this.pending.remove(item.pendingId);
            item.status = 'failed';
            item.error = err.message;
            this.render();
            continue;
          }
          item.error = '网络不好,正在重试…';
          this.render();
          await new Promise((resolve) => setTimeout(resolve, CASE_RETRY_MS[Math.min(caseAttempt++, CASE_RETRY_MS.length - 1)]));
          continue;
        }
        if (!this.uploads.includes(item)) continue;
        item.status = 'uploading';
        item.error = '';
        this.pending.update(item.pendingId, { caseNo });
        item.upload = new PaperUpload({
          token: this.token,
          caseNo,
          blob: item.blob,
          name: item.name,
          checklistItem: item.checklistItem,
          url: item.uploadUrl,
          onChange: (up) => {
            if (up.url !== item.uploadUrl) {
              item.uploadUrl = up.url;
              this.pending.update(item.pendingId, { uploadUrl: up.url });
            }
            this.renderUpload(item);
          },
        });
        try {
          const paper = await item.upload.run();
          this.pending.remove(item.pendingId);
          item.status = 'done';
          item.paperId = paper.id;
          this.store.adopt(paper, item.blob);
          this.addPaper(paper);
          if (this.rescan && (!this.rescan.checklistItem || this.rescan.checklistItem === paper.checklist_item)) this.rescan = null;
        } catch (err) {
          if (item.status === 'uploading') {
            item.status = 'failed';
            item.error = err.message;
          }
          // Refused for good (too large, the case closed ...): nothing to resume after a reload.
          // A 401 keeps it: the device gets its token back and the paper goes on.
          if (err.status !== 401) this.pending.remove(item.pendingId);
          if (err.status === 401) this.onUnauthorized();
        }
        this.render();
      }
    } finally {
      this.pumping = false;
    }
  }

  addPaper(paper) {
    if (!this.case) return;
    const papers = this.case.papers ?? (this.case.papers = []);
    if (!papers.some((p) => p.id === paper.id)) papers.push(paper);
    this.onChange();
  }

  retry(item) {
    if (item.upload && item.upload.state === 'refused') {
      item.status = 'uploading';
      item.error = '';
      this.keep(item);
      this.render();
      item.upload.retryNow().then(
        (paper) => {
          this.pending.remove(item.pendingId);
          item.status = 'done';
          item.paperId = paper.id;
          this.store.adopt(paper, item.blob);
          this.addPaper(paper);
          this.render();
        },
        (err) => {
          item.status = 'failed';
          item.error = err.message;
          this.render();
        },
      );
      return;
    }
    if (item.upload) {
      item.upload.retryNow();
      return;
    }
    item.status = 'queued';
    item.error = '';
    this.keep(item);
    this.render();
    this.pump();
  }

  remove(item) {
    item.upload?.cancel();
    this.pending.remove(item.pendingId);
    if (item.localUrl) URL.revokeObjectURL(item.localUrl);
    this.uploads = this.uploads.filter((i) => i !== item);
    this.render();
  }

  // ---- correcting a scanned paper (改类别, 删除) ----

  /** The case still takes scans (not decided yet, or waiting for the papers of a 现场开单). */
  get correctable() {
    return this.case?.status === 'open' || this.case?.status === 'missing';
  }

  /** 改类别: choose which paper of the checklist this scan really is. */
  openRetag(paper) {
    this.correcting = paper;
    const now = paper.checklist_item ?? OTHER;
    $('#retag-what').textContent = `「${paper.name}」现在算作:${paper.checklist_item || '其他材料'}。它其实是哪一样?点一下:`;
    $('#retag-error').hidden = true;
    const choice = (item, label) => el('button', {
      type: 'button',
      class: `big ${item === now ? 'primary' : 'secondary'}`,
      testid: 'retag-choice',
      'data-item': item,
      'aria-pressed': String(item === now),
      onclick: () => this.retag(item),
    }, item === now ? `${label}(现在是这个)` : label);
    fill($('#retag-choices'), ...this.items.map((item) => choice(item, item)), choice(OTHER, '其他材料'));
    $('#retag-dialog').hidden = false;
    /** @type {HTMLElement|null} */ (document.querySelector('#retag-choices button[aria-pressed="false"]'))?.focus();
  }

  async retag(item) {
    const paper = this.correcting;
    if (!paper || !this.caseNo) return;
    if ((paper.checklist_item ?? OTHER) === item) {
      this.closeCorrection('#retag-dialog');
      return;
    }
    try {
      const updated = await api(`/api/cases/${encodeURIComponent(this.caseNo)}/papers/${paper.id}`, { method: 'PATCH', token: this.token, body: { checklist_item: item || null } });
      this.replacePaper(updated);
      this.closeCorrection('#retag-dialog');
      notify(`已改好:「${updated.name}」是${updated.checklist_item || '其他材料'}`);
    } catch (err) {
      this.correctionFailed(err, '#retag-error');
    }
  }

  /** 删除: asks first; the paper stays on record but the town no longer sees it. */
  openRemove(paper) {
    this.correcting = paper;
    $('#remove-what').textContent = `「${paper.checklist_item || '其他材料'}:${paper.name}」`;
    $('#remove-error').hidden = true;
    $('#remove-dialog').hidden = false;
    $('#remove-keep').focus();
  }

  async removePaper() {
    const paper = this.correcting;
    if (!paper || !this.caseNo) return;
    const button = $('#remove-confirm');
    button.disabled = true;
    try {
      await api(`/api/cases/${encodeURIComponent(this.caseNo)}/papers/${paper.id}`, { method: 'DELETE', token: this.token });
      this.dropPaper(paper.id);
      this.closeCorrection('#remove-dialog');
      notify(`已删除:${paper.checklist_item || '其他材料'}。需要的话请再扫一份。`);
    } catch (err) {
      this.correctionFailed(err, '#remove-error');
    } finally {
      button.disabled = false;
    }
  }

  closeCorrection(id) {
    $(id).hidden = true;
    this.correcting = null;
  }

  correctionFailed(err, box) {
    if (err.status === 401) return this.onUnauthorized();
    $(box).textContent = err.message;
    $(box).hidden = false;
    // Decided meanwhile, or removed already: show the case as the server has it.
    if (err.status === 409 || err.status === 410 || err.status === 404) this.refresh();
  }

  /** A paper as the server stores it now (re-tagged). */
  replacePaper(paper) {
    if (!this.case) return;
    this.case.papers = (this.case.papers ?? []).map((p) => (p.id === paper.id ? paper : p));
    this.target = this.firstMissing();
    this.render();
  }

  /** A paper taken back: gone from the list and the checklist (the server keeps it on record). */
  dropPaper(paperId) {
    if (!this.case) return;
    this.case.papers = (this.case.papers ?? []).filter((p) => p.id !== paperId);
    for (const item of this.uploads.filter((i) => i.paperId === paperId)) {
      if (item.localUrl) URL.revokeObjectURL(item.localUrl);
    }
    this.uploads = this.uploads.filter((i) => i.paperId !== paperId);
    if (this.rescan?.paper_id === paperId) this.rescan = { ...this.rescan, paper: null };
    this.target = this.firstMissing();
    this.render();
  }

  // ---- camera ----

  async openCamera() {
    const dialog = $('#camera-dialog');
    dialog.hidden = false;
    $('#camera-for').textContent = `这一张是:${this.target || '其他材料'}`;
    $('#camera-count').textContent = '';
    this.shots = 0;
    $('#camera-shoot').focus();
    await this.camera.open();
  }

  closeCamera() {
    $('#camera-dialog').hidden = true;
    this.camera.stop();
    $('#capture-still').focus();
  }

  async shoot() {
    const button = $('#camera-shoot');
    button.disabled = true;
    try {
      const blob = await this.camera.shoot();
      this.queue(blob, stillName(), 'image/jpeg');
      this.shots += 1;
      $('#camera-count').textContent = `已拍 ${this.shots} 张,正在上传。下一页放好了再点"拍照",拍完了点"拍完了"。`;
      $('#camera-for').textContent = `下一张是:${this.target || '其他材料'}`;
    } catch (err) {
      notify(err.message || '没有拍成,请再试一次', 'error');
    } finally {
      button.disabled = false;
    }
  }

  // ---- pushes ----

  onRescan(msg) {
    if (msg.case_no !== this.caseNo) return false;
    const paper = this.papers.find((p) => p.id === msg.paper_id) ?? null;
    this.rescan = { ...msg, paper, checklistItem: paper?.checklist_item ?? null };
    if (paper) this.target = paper.checklist_item ?? OTHER;
    this.render();
    $('#rescan-request').scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    return true;
  }

  /** The WebSocket `outcome` of the current case. */
  onOutcome(msg) {
    if (msg.case_no !== this.caseNo) return false;
    this.outcome = msg;
    this.rescan = null; // decided: a re-scan asked for earlier is moot
    this.renderOutcome();
    this.refresh();
    return true;
  }

  // ---- rendering ----

  /** Put the case panel (villager and papers) into a slot of the visible screen (null: nowhere). */
  place(slot) {
    const panel = $('#case-panel');
    const inCall = slot?.id === 'call-papers-slot';
    if (inCall !== this.inCall) {
      this.inCall = inCall;
      this.renderVillager();
    }
    if (!slot) {
      panel.hidden = true;
      return;
    }
    if (panel.parentElement !== slot) slot.append(panel);
    panel.hidden = false;
  }

  render() {
    this.renderCaseBar();
    this.renderVillager();
    this.renderChecklist();
    this.renderMaterials();
    this.renderRescan();
    this.renderOutcome();
    this.onChange();
  }

  renderCaseBar() {
    const bar = $('#case-bar');
    const c = this.case;
    bar.hidden = !c;
    if (!c) return;
    const number = $('#case-number');
    number.textContent = c.case_no;
    number.dataset.caseNo = c.case_no;
    $('#case-bar-detail').textContent = [nameOf(c.matter), c.villager?.name ? `办事人 ${c.villager.name}` : '', c.status_text].filter(Boolean).join(' · ');
  }

  renderChecklist() {
    const papers = [...this.papers];
    for (const item of this.uploads) if (item.status !== 'done' && item.status !== 'failed') papers.push({ kind: 'scan', checklist_item: item.checklistItem });
    const rows = checklistRows(this.items, papers, { onPick: (item) => this.pick(item), picked: this.target });
    rows.push(
      el('li', {}, el('button', { type: 'button', class: 'checklist-row other', testid: 'checklist-other', 'aria-pressed': String(this.target === OTHER), onclick: () => this.pick(OTHER) },
        el('span', { class: 'check-mark', 'aria-hidden': 'true' }, '＋'), el('span', { class: 'check-name' }, '其他材料'))),
    );
    fill($('#checklist'), ...rows);
    const missing = this.items.filter((item) => !papers.some((p) => p.checklist_item === item)).length;
    $('#checklist-summary').textContent = this.items.length ? (missing ? `还缺 ${missing} 样` : '材料都有了 ✓') : '';
    $('#paper-target').textContent = this.target ? `现在加的是:${this.target}` : '现在加的是:其他材料';
    const previous = this.previousMissing ?? [];
    $('#previous-missing').hidden = previous.length === 0;
    $('#previous-missing').textContent = previous.length ? `上次镇窗口说要补:${previous.join('、')}` : '';
  }

  materialRows() {
    const rows = [];
    const localByPaper = new Map(this.uploads.filter((i) => i.paperId).map((i) => [i.paperId, i]));
    for (const paper of this.papers) rows.push({ paper, local: localByPaper.get(paper.id) });
    for (const item of this.uploads) if (item.status !== 'done') rows.push({ paper: null, local: item });
    return rows;
  }

  renderMaterials() {
    const rows = this.materialRows();
    $('#materials-empty').hidden = rows.length > 0;
    const viewable = this.papers;
    fill($('#material-list'), 
      ...rows.map(({ paper, local }) => {
        const contentType = paper?.content_type ?? local.contentType;
        const name = paper?.name ?? local.name;
        const tag = (paper ? paper.checklist_item : local.checklistItem) || '其他材料';
        const state = paper ? 'uploaded' : local.status === 'failed' ? 'failed' : local.status === 'queued' ? 'queued' : 'uploading';
        const source = local?.localUrl ?? (paper && isImage(contentType) ? this.store.blobUrl(paper) : null);
        const thumb = thumbnail({ contentType, name, source });
        const rescanned = paper && this.rescan?.paper_id === paper.id;
        const status = el('span', { class: 'material-status', 'data-key': local?.key ?? '' });
        if (paper) status.textContent = `已上传 ✓ ${clock(paper.uploaded_at_ms)}`;
        else if (local.status === 'queued') status.textContent = local.error || '排队等待上传';
        else if (local.status === 'failed') status.textContent = `没有传上去:${local.error}`;
        else status.textContent = local.upload ? uploadStatusText(local.upload) : '准备上传…';
        const actions = [];
        if (!paper && local.status === 'failed') {
          actions.push(el('button', { type: 'button', class: 'primary', onclick: () => this.retry(local) }, '重试'));
          actions.push(el('button', { type: 'button', class: 'secondary', onclick: () => this.remove(local) }, '删掉'));
        } else if (!paper && local.upload?.state === 'retrying') {
          actions.push(el('button', { type: 'button', class: 'secondary', onclick: () => this.retry(local) }, '马上重试'));
        } else if (!paper && local.status === 'queued') {
          actions.push(el('button', { type: 'button', class: 'secondary', onclick: () => this.remove(local) }, '不要了'));
        } else if (paper && this.correctable) {
          actions.push(el('button', { type: 'button', class: 'secondary', testid: 'paper-retag', 'aria-label': `改类别:${name}`, onclick: () => this.openRetag(paper) }, '改类别'));
          actions.push(el('button', { type: 'button', class: 'danger', testid: 'paper-remove', 'aria-label': `删除:${name}`, onclick: () => this.openRemove(paper) }, '删除'));
        }
        const thumbButton = paper
          ? el('button', { type: 'button', class: 'thumb-button', 'aria-label': `看大图:${name}`, onclick: () => this.viewer.open(paper, viewable) }, thumb)
          : el('span', { class: 'thumb-button' }, thumb);
        return el(
          'li',
          {
            class: `material-item ${state}${rescanned ? ' rescan' : ''}`,
            testid: 'material-item',
            'data-state': state,
            'data-paper-id': paper?.id,
            'data-checklist-item': tag,
            'data-rescan': rescanned ? 'true' : null,
          },
          thumbButton,
          el(
            'div',
            { class: 'material-text' },
            el('span', { class: 'material-tag' }, tag),
            el('span', { class: 'material-name' }, name),
            el('span', { class: 'material-size' }, formatSize(paper?.size ?? local.blob.size)),
            status,
            state === 'uploading' || state === 'queued' ? el('progress', { class: 'material-progress', max: '100', value: String(Math.floor((local.upload?.fraction ?? 0) * 100)) }) : null,
            rescanned ? el('span', { class: 'warning small' }, '镇窗口请重新扫描这一份') : null,
          ),
          actions.length ? el('div', { class: 'material-actions' }, ...actions) : null,
        );
      }),
    );
    const busy = this.uploads.filter((i) => i.status === 'queued' || i.status === 'uploading').length;
    const failed = this.uploads.filter((i) => i.status === 'failed').length;
    $('#upload-summary').textContent = [busy ? `${busy} 份正在上传,请不要关掉页面` : '', failed ? `${failed} 份没传上去,请点"重试"` : ''].filter(Boolean).join(';');
    this.viewer.update(viewable);
  }

  /** Only the status line of one upload (progress events come often). */
  renderUpload(item) {
    const node = document.querySelector(`.material-status[data-key="${item.key}"]`);
    if (!node || !item.upload) {
      this.renderMaterials();
      return;
    }
    node.textContent = uploadStatusText(item.upload);
    const bar = node.parentElement.querySelector('progress');
    if (bar) bar.value = Math.floor(item.upload.fraction * 100);
    const li = node.closest('li');
    const retrying = item.upload.state === 'retrying';
    if (li && retrying !== li.classList.contains('retrying')) this.renderMaterials();
    li?.classList.toggle('retrying', retrying);
  }

  renderRescan() {
    const box = $('#rescan-request');
    const r = this.rescan;
    box.hidden = !r;
    if (!r) return;
    const what = r.paper ? `「${r.paper.checklist_item ? r.paper.checklist_item + ':' : ''}${r.paper.name}」` : '材料';
    $('#rescan-text').textContent = `请重新扫描${what}${r.note ? `。镇窗口说:${r.note}` : ''}`;
    box.dataset.paperId = r.paper_id ?? '';
  }

  /** The banner's content; app.css shows it only on the call and after-call screens. */
  renderOutcome() {
    const banner = $('#outcome-banner');
    const o = this.outcome;
    banner.hidden = !o;
    if (!o) return;
    const status = o.status;
    banner.dataset.status = status;
    banner.dataset.outcome = o.outcome ?? status;
    const result = o.result ?? null;
    const resultBlock = result && status === 'done'
      ? el(
          'div',
          { class: 'banner-result' },
          el('button', { type: 'button', class: 'thumb-button', 'aria-label': `看结果文书:${result.name}`, onclick: () => this.viewer.open(result, [result]) },
            thumbnail({ contentType: result.content_type, name: result.name, source: isImage(result.content_type) ? this.store.blobUrl(result) : null })),
          el('div', {}, el('p', {}, `结果文书:${result.name}`),
            el('button', { type: 'button', class: 'success big', testid: 'print-result', onclick: () => this.printResult(result) }, '打印结果文书')),
        )
      : null;
    fill(banner, 
      el('p', { class: 'banner-title' }, STATUS[status] ?? o.status_text ?? ''),
      el('p', { class: 'banner-text' }, CLERK_NOTE[status] ?? ''),
      o.missing_items?.length ? el('ol', { class: 'banner-missing', testid: 'missing-list' }, ...o.missing_items.map((m) => el('li', {}, m))) : null,
      o.note ? el('p', { class: 'banner-note' }, status === 'refused' ? `原因:${o.note}` : `说明:${o.note}`) : null,
      resultBlock,
      el('button', { type: 'button', class: 'primary huge', testid: 'print-button', onclick: () => this.print() }, PRINT_LABEL[status] ?? PRINT_LABEL.done),
    );
  }

  // ---- printing ----

  /** Print the receipt of the current case (with the outcome, if any). */
  async print() {
    const c = this.case;
    if (!c) return;
    let receipt = null;
    try {
      receipt = await api(`/api/cases/${encodeURIComponent(c.case_no)}/receipt`, { token: this.token });
    } catch {
      receipt = null; // print what we know; the link is built from this page's address
    }
    const o = this.outcome;
    const status = o?.status ?? receipt?.status ?? c.status;
    const result = o?.status === 'done' ? o.result : null;
    let resultImageUrl = null;
    if (result && isImage(result.content_type)) {
      try {
        resultImageUrl = await this.store.blobUrl(result);
      } catch {
        resultImageUrl = null;
      }
    }
    await printSheet({
      caseNo: c.case_no,
      villagerName: c.villager?.name ?? '',
      matter: nameOf(c.matter),
      village: nameOf(receipt?.village ?? c.village),
      town: nameOf(receipt?.town ?? c.town),
      createdAtMs: c.created_at_ms,
      status,
      statusText: o?.status_text ?? c.status_text,
      note: o?.note ?? '',
      missingItems: o?.missing_items ?? [],
      // The next step of the status printed (the case read before the decision is stale).
      nextStep: NEXT_STEP[status] ?? c.next_step ?? '',
      progressUrl: receipt?.progress_url ?? `${location.origin}${c.progress_path ?? `/progress?case=${c.case_no}`}`,
      progressQrSvg: receipt?.progress_qr_svg ?? null,
      lookupCode: receipt?.lookup_code ?? '',
      resultImageUrl,
      resultName: result?.name ?? '',
    });
  }

  async printResult(paper) {
    try {
      const url = await this.store.blobUrl(paper);
      if (isImage(paper.content_type)) await this.print();
      else printPdf(url);
    } catch (err) {
      notify(err.message, 'error');
    }
  }
}
