// @ts-check
// 办事进度查询: case number + the lookup code printed on the receipt (查询码) + the last four
// digits of the villager's phone → status and next step only (GET /api/progress, public,
// rate-limited). Used by /progress and by the kiosk (which sends its device token instead of
// the code: the village room looks up its own cases).
import { el, fill } from './common.js';

const CASE_RE = /^[A-Za-z0-9-]{3,40}$/;

/**
 * Wire a lookup form: `form` holds inputs [name=case], [name=code] (the public page only) and
 * [name=phone4] and a submit button; the answer goes into `result`
 * (data-testid="progress-result", data-status = the status). `token`: the kiosk's device token
 * (its lookups count against its own limit, and its own village's cases need no code).
 * @param {HTMLFormElement} form
 * @param {HTMLElement} result
 * @param {{token?: string|null}} [options]
 */
export function setupProgressLookup(form, result, { token = null } = {}) {
  const caseInput = /** @type {HTMLInputElement} */ (form.querySelector('[name="case"]'));
  const codeInput = /** @type {HTMLInputElement|null} */ (form.querySelector('[name="code"]'));
  const phoneInput = /** @type {HTMLInputElement} */ (form.querySelector('[name="phone4"]'));
  const button = /** @type {HTMLButtonElement} */ (form.querySelector('button[type="submit"]'));
  const show = (status, ...children) => {
    result.hidden = false;
    result.dataset.status = status;
    fill(result, ...children);
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const caseNo = caseInput.value.trim().toUpperCase().replace(/\s+/g, '');
    const phone4 = phoneInput.value.replace(/\D/g, '');
    if (!CASE_RE.test(caseNo)) {
      show('invalid', el('p', { class: 'error' }, '请输入案件编号,比如 ZH-20261122-0007(在回执上)'));
      caseInput.focus();
      return;
    }
    const code = codeInput ? codeInput.value.replace(/\D/g, '') : '';
    if (codeInput && code.length !== 8) {
      show('invalid', el('p', { class: 'error' }, '请输入回执上的 8 位查询码'));
      codeInput.focus();
      return;
    }
    if (phone4.length !== 4) {
      show('invalid', el('p', { class: 'error' }, '请输入办事人电话号码的最后四位数字'));
      phoneInput.focus();
      return;
    }
    button.disabled = true;
    show('loading', el('p', { class: 'hint' }, '正在查询…'));
    try {
      const query = `case=${encodeURIComponent(caseNo)}&phone4=${phone4}${code ? `&code=${code}` : ''}`;
      /** @type {Record<string, string>} */
      const headers = { Accept: 'application/json' };
      if (token) headers.Authorization = `Bearer ${token}`;
      const response = await fetch(`/api/progress?${query}`, { cache: 'no-store', headers });
      const data = await response.json().catch(() => null);
      if (response.ok && data) {
        show(
          data.status,
          el('p', { class: 'progress-case' }, `案件编号 ${data.case_no}`),
          el('p', { class: 'progress-status' }, data.status_text),
          el('p', { class: 'progress-next' }, el('strong', {}, '下一步:'), data.next_step),
        );
      } else if (response.status === 429) {
        show('rate_limited', el('p', { class: 'error' }, '查询太频繁了,请过一分钟再查'));
      } else if (response.status === 404) {
        show('not_found', el('p', { class: 'error' }, codeInput
          ? '没有查到。请核对案件编号、查询码和电话后四位是否正确(电话是办事时登记的那个)'
          : '没有查到。请核对案件编号和电话后四位是否正确(电话是办事时登记的那个)'));
      } else {
        show('error', el('p', { class: 'error' }, data?.error?.message ?? '查询没有成功,请稍后再试'));
      }
    } catch {
      show('error', el('p', { class: 'error' }, '连不上服务器,请检查网络后再试'));
    } finally {
      button.disabled = false;
    }
  });
  return {
    fill(caseNo, code = '') {
      if (caseNo) caseInput.value = caseNo;
      if (codeInput && code) codeInput.value = code;
      const next = !caseNo ? caseInput : codeInput && !codeInput.value ? codeInput : phoneInput;
      next.focus();
    },
    reset() {
      form.reset();
      result.hidden = true;
      fill(result);
    },
  };
}
