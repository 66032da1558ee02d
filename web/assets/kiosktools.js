// @ts-check
// The kiosk's other jobs: the rating after a call (好差评), the inbox of results that come back
// later (放心回家, 一审一核), resuming a case by its number (补交材料), and bookings (预约).
import { api } from './api.js';
import { $, $$, el, fill, nameOf, notify } from './common.js';
import { PaperStore, isImage } from './papers.js';
import { printPdf, printSheet } from './print.js';
import { BOOKING_STATUS, NEXT_STEP, PRINT_LABEL, STATUS } from './words.js';

const CHINA = 'Asia/Shanghai';
const dayFormat = new Intl.DateTimeFormat('en-CA', { timeZone: CHINA, year: 'numeric', month: '2-digit', day: '2-digit' });
const dayLabel = new Intl.DateTimeFormat('zh-CN', { timeZone: CHINA, month: 'long', day: 'numeric' });
const weekdayLabel = new Intl.DateTimeFormat('zh-CN', { timeZone: CHINA, weekday: 'short' });
const weekdayCode = new Intl.DateTimeFormat('en-US', { timeZone: CHINA, weekday: 'short' });
/** Saturdays and Sundays: the town centre is closed, there are no slots. */
const isWeekend = (d) => ['Sat', 'Sun'].includes(weekdayCode.format(d));
const timeLabel = new Intl.DateTimeFormat('zh-CN', { timeZone: CHINA, hour: '2-digit', minute: '2-digit', hour12: false });
const whenLabel = new Intl.DateTimeFormat('zh-CN', { timeZone: CHINA, month: 'long', day: 'numeric', hour: '2-digit', minute: '2-digit', hour12: false });

// ---- 好差评 -----------------------------------------------------------------------------------

export class Rating {
  constructor({ token, onUnauthorized }) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
    this.caseNo = null;
    this.choice = null;
    this.sent = false;
    for (const button of $$('.rating-choice')) {
      button.addEventListener('click', () => this.choose(button.dataset.rating));
    }
    $('#rating-submit').addEventListener('click', () => this.submit());
  }

  /** Ask for a rating of the call just ended on `caseNo`. */
  prompt(caseNo) {
    this.caseNo = caseNo;
    this.choice = null;
    this.sent = false;
    $('#rating').hidden = false;
    $('#rating-more').hidden = true;
    $('#rating-done').hidden = true;
    $('#rating-comment').value = '';
    this.render();
  }

  hide() {
    $('#rating').hidden = true;
    this.caseNo = null;
  }

  choose(rating) {
    if (this.sent) return;
    this.choice = rating;
    $('#rating-more').hidden = false;
    this.render();
    $('#rating-submit').focus();
  }

  render() {
    for (const button of $$('.rating-choice')) {
      button.setAttribute('aria-pressed', String(button.dataset.rating === this.choice));
      button.disabled = this.sent;
    }
  }

  /** Send the chosen rating (also called when the clerk moves on without pressing 提交). */
  async submit() {
    if (!this.caseNo || !this.choice || this.sent) return;
    const body = { rating: this.choice };
    const comment = $('#rating-comment').value.trim();
    if (comment) body.comment = comment.slice(0, 500);
    const caseNo = this.caseNo;
    $('#rating-submit').disabled = true;
    try {
      await api(`/api/cases/${encodeURIComponent(caseNo)}/rating`, { method: 'POST', token: this.token, body });
      this.sent = true;
    } catch (err) {
      if (err.status === 401) return this.onUnauthorized();
      if (err.code === 'already_rated') this.sent = true;
      else if (err.code !== 'no_call') notify(`评价没有送出:${err.message}`, 'error');
    } finally {
      $('#rating-submit').disabled = false;
    }
    if (this.sent && this.caseNo === caseNo) {
      $('#rating-more').hidden = true;
      $('#rating-done').hidden = false;
      $('#rating').dataset.rated = this.choice;
      this.render();
    }
  }
}

// ---- 收件箱 -----------------------------------------------------------------------------------

export class Inbox {
  constructor({ token, onUnauthorized }) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
    this.items = [];
    this.store = new PaperStore(token);
  }

  get unread() {
    return this.items.filter((i) => !i.read_at_ms).length;
  }

  async refresh() {
    try {
      this.items = (await api('/api/inbox', { token: this.token })) ?? [];
    } catch (err) {
      if (err.status === 401) this.onUnauthorized();
      return;
    }
    this.render();
  }

  /** inbox.item pushed: a result arrived. */
  onItem(item) {
    this.items = [item, ...this.items.filter((i) => i.id !== item.id)];
    this.render();
    // Stays on screen until the clerk acknowledges it (a result nobody prints helps nobody).
    notify(`镇上送回了结果:${nameOf(item.matter)}(${item.case_no}),请到"收件箱"打印`, 'info', { sticky: true });
  }

  render() {
    const count = this.unread;
    const badge = $('#inbox-count');
    badge.hidden = count === 0;
    badge.textContent = String(count);
    $('#inbox-button').classList.toggle('has-news', count > 0);
    $('#inbox-empty').hidden = this.items.length > 0;
    fill($('#inbox-list'), 
      ...this.items.map((item) => {
        const unread = !item.read_at_ms;
        const title = STATUS[item.status] ?? item.status_text;
        return el(
          'li',
          { class: `inbox-item card${unread ? ' unread' : ''}`, testid: 'inbox-item', 'data-case-no': item.case_no, 'data-status': item.status, 'data-read': String(!unread) },
          el('p', { class: 'inbox-title' }, unread ? el('span', { class: 'tag new' }, '新') : null, `${nameOf(item.matter)} · ${title}`),
          el('p', { class: 'hint' }, `案件编号 ${item.case_no} · ${whenLabel.format(new Date(item.created_at_ms))} 送到`),
          item.note ? el('p', {}, item.status === 'refused' ? `原因:${item.note}` : `说明:${item.note}`) : null,
          item.missing_items?.length ? el('ol', { class: 'banner-missing', testid: 'inbox-missing-list' }, ...item.missing_items.map((m) => el('li', {}, m))) : null,
          item.result ? el('p', {}, `结果文书:${item.result.name}`) : null,
          el(
            'div',
            { class: 'inbox-buttons' },
            el('button', { type: 'button', class: 'primary big', testid: 'inbox-print', onclick: () => this.print(item) }, PRINT_LABEL[item.status] ?? PRINT_LABEL.done),
            item.result && !isImage(item.result.content_type)
              ? el('button', { type: 'button', class: 'success big', testid: 'inbox-print-result', onclick: () => this.printResult(item) }, '打印结果文书')
              : null,
            unread ? el('button', { type: 'button', class: 'secondary big', testid: 'inbox-read', onclick: () => this.markRead(item) }, '已经处理了') : null,
          ),
        );
      }),
    );
  }

  async markRead(item) {
    try {
      await api(`/api/inbox/${item.id}/read`, { method: 'POST', token: this.token });
      item.read_at_ms = Date.now();
      this.render();
    } catch (err) {
      if (err.status === 401) return this.onUnauthorized();
      notify(err.message, 'error');
    }
  }

  async print(item) {
    let c = null;
    let receipt = null;
    try {
      [c, receipt] = await Promise.all([
        api(`/api/cases/${encodeURIComponent(item.case_no)}`, { token: this.token }),
        api(`/api/cases/${encodeURIComponent(item.case_no)}/receipt`, { token: this.token }),
      ]);
    } catch (err) {
      if (err.status === 401) return this.onUnauthorized();
    }
    let resultImageUrl = null;
    if (item.result && isImage(item.result.content_type)) {
      try {
        resultImageUrl = await this.store.blobUrl(item.result);
      } catch {
        resultImageUrl = null;
      }
    }
    await printSheet({
      caseNo: item.case_no,
      villagerName: c?.villager?.name ?? '',
      matter: nameOf(item.matter),
      village: nameOf(receipt?.village ?? c?.village),
      town: nameOf(receipt?.town ?? c?.town),
      createdAtMs: c?.created_at_ms ?? receipt?.created_at_ms,
      status: item.status,
      statusText: item.status_text,
      note: item.note ?? '',
      missingItems: item.missing_items ?? [],
      nextStep: NEXT_STEP[item.status] ?? c?.next_step ?? '',
      progressUrl: receipt?.progress_url ?? `${location.origin}/progress?case=${encodeURIComponent(item.case_no)}`,
      progressQrSvg: receipt?.progress_qr_svg ?? null,
      lookupCode: receipt?.lookup_code ?? '',
      resultImageUrl,
      resultName: item.result?.name ?? '',
    });
    if (!item.read_at_ms) this.markRead(item);
  }

  async printResult(item) {
    try {
      printPdf(await this.store.blobUrl(item.result));
      if (!item.read_at_ms) this.markRead(item);
    } catch (err) {
      notify(err.message, 'error');
    }
  }
}

// ---- 继续办理 ---------------------------------------------------------------------------------

export class Resume {
  /** `onResume(case)`: the clerk wants to go on with this case. */
  constructor({ token, onUnauthorized, onResume }) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
    this.onResume = onResume;
    $('#resume-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.find();
    });
  }

  reset() {
    $('#resume-form').reset();
    $('#resume-result').hidden = true;
    $('#resume-case-no').focus();
  }

  async find() {
    const caseNo = $('#resume-case-no').value.trim().toUpperCase().replace(/\s+/g, '');
    const box = $('#resume-result');
    const show = (...children) => {
      box.hidden = false;
      fill(box, ...children);
    };
    if (!/^[A-Z0-9-]{3,40}$/.test(caseNo)) {
      show(el('p', { class: 'error' }, '请输入案件编号,比如 ZH-20261122-0007'));
      return;
    }
    show(el('p', { class: 'hint' }, '正在查找…'));
    let c;
    try {
      c = await api(`/api/cases/${encodeURIComponent(caseNo)}`, { token: this.token });
    } catch (err) {
      if (err.status === 401) return this.onUnauthorized();
      if (err.status === 404) return show(el('p', { class: 'error' }, '没有找到这个案件,请核对编号'));
      if (err.status === 403) return show(el('p', { class: 'error' }, '这个案件不是本村办的,请到原来办事的村便民服务室继续办'));
      return show(el('p', { class: 'error' }, err.message));
    }
    const canGoOn = c.status === 'open' || c.status === 'missing';
    const missing = c.outcome?.missing_items ?? [];
    show(
      el('p', { class: 'big-text' }, el('strong', {}, nameOf(c.matter)), ` · ${c.status_text}`),
      el('p', {}, `案件编号 ${c.case_no}${c.villager?.name ? ` · 办事人 ${c.villager.name}` : ''} · 已有材料 ${(c.papers ?? []).filter((p) => p.kind === 'scan').length} 份`),
      missing.length ? el('div', { class: 'warning' }, el('p', {}, '上次说要补的材料:'), el('ol', {}, ...missing.map((m) => el('li', {}, m)))) : null,
      el('p', { class: 'hint' }, c.next_step ?? ''),
      canGoOn
        ? el('button', { type: 'button', class: 'primary huge', testid: 'resume-continue', onclick: () => this.onResume(c) }, '继续办这个案件')
        : el('p', { class: 'warning' }, '这个案件现在不能再呼叫(已办完或正在审核)。'),
    );
  }
}

// ---- 预约 -------------------------------------------------------------------------------------

export class Booking {
  constructor({ token, onUnauthorized }) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
    this.matters = [];
    this.date = null;
    this.slot = null;
    $('#booking-matter').addEventListener('change', () => this.loadSlots());
    $('#booking-confirm').addEventListener('click', () => this.book());
  }

  /** Show the booking screen for these matters, the selected one first. */
  open(matters, selected) {
    this.matters = matters;
    fill($('#booking-matter'), 
      ...matters.map((m) => {
        const option = el('option', { value: m.id }, m.plain_name || m.name);
        option.selected = selected?.id === m.id;
        return option;
      }),
    );
    const today = Date.now();
    // The next two weeks, working days only.
    const days = [];
    for (let i = 0; i < 14; i++) {
      const d = new Date(today + i * 86_400_000);
      if (!isWeekend(d)) days.push({ d, i });
    }
    const values = days.map(({ d }) => dayFormat.format(d));
    if (!this.date || !values.includes(this.date)) this.date = values[0];
    fill($('#booking-dates'), 
      ...days.map(({ d, i }) => {
        const value = dayFormat.format(d);
        return el('button', { type: 'button', class: 'date-choice', testid: 'booking-date', 'data-date': value, 'aria-pressed': String(value === this.date), onclick: () => this.pickDate(value) },
          el('span', { class: 'date-day' }, dayLabel.format(d)),
          el('span', { class: 'date-week' }, i === 0 ? '今天' : i === 1 ? '明天' : weekdayLabel.format(d)));
      }),
    );
    $('#booking-error').hidden = true;
    this.loadSlots();
    this.loadList();
  }

  pickDate(date) {
    this.date = date;
    for (const b of $$('[data-testid="booking-date"]')) b.setAttribute('aria-pressed', String(b.dataset.date === date));
    this.loadSlots();
  }

  async loadSlots() {
    this.slot = null;
    $('#booking-confirm').disabled = true;
    const matterId = $('#booking-matter').value;
    const box = $('#booking-slots');
    if (!matterId || !this.date) return;
    $('#booking-slots-hint').textContent = '正在查哪些时间有空…';
    fill(box);
    let answer;
    try {
      answer = await api(`/api/bookings/slots?matter_id=${encodeURIComponent(matterId)}&date=${this.date}`, { token: this.token });
    } catch (err) {
      if (err.status === 401) return this.onUnauthorized();
      $('#booking-slots-hint').textContent = `没有查到:${err.message}`;
      return;
    }
    $('#booking-window').textContent = `办理窗口:${nameOf(answer.window)}`;
    const free = answer.slots.filter((s) => s.free).length;
    $('#booking-slots-hint').textContent = free ? '灰色的时间已经约满或已经过了。点一个时间:' : '这一天没有空的时间了,请换一天。';
    fill(box, 
      ...answer.slots.map((s) =>
        el('button', { type: 'button', class: 'slot-choice', testid: 'booking-slot', 'data-start-ms': s.start_ms, 'aria-pressed': 'false', disabled: !s.free, onclick: (event) => this.pickSlot(s, event.currentTarget) },
          `${timeLabel.format(new Date(s.start_ms))}-${timeLabel.format(new Date(s.end_ms))}`),
      ),
    );
  }

  pickSlot(slot, button) {
    this.slot = slot;
    for (const b of $$('[data-testid="booking-slot"]')) b.setAttribute('aria-pressed', String(b === button));
    $('#booking-confirm').disabled = false;
    $('#booking-confirm').focus();
  }

  async book() {
    if (!this.slot) return;
    const body = { matter_id: Number($('#booking-matter').value), start_ms: this.slot.start_ms };
    const note = $('#booking-note').value.trim();
    if (note) body.note = note;
    const error = $('#booking-error');
    error.hidden = true;
    $('#booking-confirm').disabled = true;
    try {
      const booking = await api('/api/bookings', { method: 'POST', token: this.token, body });
      notify(`预约好了:${whenLabel.format(new Date(booking.start_ms))},${nameOf(booking.window)}。到时间请点"呼叫镇窗口",会优先接通。`);
      $('#booking-note').value = '';
      this.loadSlots();
      this.loadList();
    } catch (err) {
      if (err.status === 401) return this.onUnauthorized();
      error.textContent = err.code === 'slot_taken' ? '这个时间刚被别人约了,请换一个时间' : err.code === 'bad_slot' ? '这个时间不能预约了,请换一个时间' : err.message;
      error.hidden = false;
      this.loadSlots();
    }
  }

  async loadList() {
    let list;
    try {
      list = (await api('/api/bookings', { token: this.token })) ?? [];
    } catch (err) {
      if (err.status === 401) this.onUnauthorized();
      return;
    }
    const shown = list.filter((b) => b.status !== 'cancelled');
    $('#booking-empty').hidden = shown.length > 0;
    fill($('#booking-list'), 
      ...shown.map((b) =>
        el(
          'li',
          { class: 'booking-item card', testid: 'booking-item', 'data-booking-id': b.id, 'data-status': b.status },
          el('p', { class: 'big-text' }, el('strong', {}, whenLabel.format(new Date(b.start_ms))), ` ${nameOf(b.matter)}`),
          el('p', { class: 'hint' }, [nameOf(b.window), BOOKING_STATUS[b.status] ?? b.status, b.note].filter(Boolean).join(' · ')),
          b.status === 'booked' && b.start_ms > Date.now()
            ? el('div', { class: 'booking-cancel-box' },
                el('button', { type: 'button', class: 'secondary', testid: 'booking-cancel', onclick: (event) => this.askCancel(event.currentTarget) }, '取消这个预约'),
                el('div', { class: 'booking-cancel-ask warning', hidden: true },
                  el('p', {}, '真的要取消这个预约吗?取消后这个时间别人可以约。'),
                  el('button', { type: 'button', class: 'danger', testid: 'booking-cancel-confirm', onclick: () => this.cancel(b) }, '确定取消'),
                  el('button', { type: 'button', class: 'secondary', testid: 'booking-cancel-keep', onclick: (event) => this.keep(event.currentTarget) }, '不取消')))
            : null,
        ),
      ),
    );
  }

  /** Cancel asks first: the slot would be gone for good once someone else takes it. */
  askCancel(button) {
    button.hidden = true;
    const ask = button.nextElementSibling;
    ask.hidden = false;
    ask.querySelector('[data-testid="booking-cancel-keep"]').focus();
  }

  keep(button) {
    const ask = button.parentElement;
    ask.hidden = true;
    ask.previousElementSibling.hidden = false;
  }

  async cancel(b) {
    try {
      await api(`/api/bookings/${b.id}`, { method: 'DELETE', token: this.token });
      notify('预约已取消');
    } catch (err) {
      if (err.status === 401) return this.onUnauthorized();
      notify(err.message, 'error');
    }
    this.loadList();
    this.loadSlots();
  }
}
