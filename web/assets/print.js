// @ts-check
// The printed sheet of the village room: a receipt with the case number, villager, matter,
// outcome, the missing-papers list or the result, and a QR code of the progress link (drawn by
// the server with the `qrcode` crate: the receipt's `progress_qr_svg`). The page has one hidden
// <section id="print-sheet">; app.css shows only it when printing.
import { $, el, fill } from './common.js';
import { STATUS } from './words.js';

/**
 * The server's QR code SVG (text) as an element of this page, sized by CSS (`.qr`), or null
 * if it is not a plain <svg> (then the address is printed without the code).
 * @param {string} text @param {string} label its accessible name
 * @returns {Element | null}
 */
function qrElement(text, label) {
  const parsed = new DOMParser().parseFromString(text, 'image/svg+xml');
  const root = parsed.documentElement;
  if (root.nodeName !== 'svg' || parsed.querySelector('parsererror, script, foreignObject')) return null;
  const svg = document.importNode(root, true);
  svg.removeAttribute('width');
  svg.removeAttribute('height');
  svg.setAttribute('class', 'qr');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  return svg;
}

function row(label, value) {
  if (!value) return null;
  return el('tr', {}, el('th', { scope: 'row' }, label), el('td', {}, value));
}

function dateText(ms) {
  return new Date(ms || Date.now()).toLocaleString('zh-CN', { timeZone: 'Asia/Shanghai', year: 'numeric', month: 'long', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/**
 * Fill the print sheet. `r`: {caseNo, villagerName, matter, village, town, createdAtMs, status,
 * statusText, note, missingItems, nextStep, progressUrl, progressQrSvg, lookupCode,
 * resultImageUrl, resultName}. Without `progressQrSvg` (the receipt could not be read) the
 * address is printed without the code.
 */
export function fillSheet(r) {
  const sheet = $('#print-sheet');
  const title = STATUS[r.status] ?? r.statusText ?? '';
  const qr = r.progressQrSvg ? qrElement(r.progressQrSvg, '办事进度查询二维码') : null;
  const missing = r.missingItems?.length
    ? el(
        'section',
        { class: 'print-missing' },
        el('h2', {}, '请带齐下面这些材料,到村便民服务室继续办理'),
        el('ol', {}, ...r.missingItems.map((item) => el('li', {}, item))),
        el('p', {}, `继续办理时,请告诉村里的工作人员案件编号:${r.caseNo}`),
      )
    : null;
  fill(sheet, 
    el(
      'div',
      { class: 'print-page' },
      el('h1', {}, '村能办 · 办事回执'),
      el('p', { class: 'print-case' }, '案件编号 ', el('strong', { class: 'receipt-case-number' }, r.caseNo)),
      r.lookupCode ? el('p', { class: 'print-case' }, '查询码 ', el('strong', { class: 'receipt-lookup-code' }, r.lookupCode)) : null,
      el(
        'table',
        { class: 'print-table' },
        el(
          'tbody',
          {},
          row('办事人', r.villagerName),
          row('办理事项', r.matter),
          row('村便民服务室', r.village),
          row('镇便民服务中心', r.town),
          row('受理时间', r.createdAtMs ? dateText(r.createdAtMs) : ''),
          row('办理结果', title),
          row(r.status === 'refused' ? '不能办理的原因' : '说明', r.note),
          row('下一步', r.nextStep),
        ),
      ),
      missing,
      r.resultName ? el('p', { class: 'print-result-note' }, `结果文书:${r.resultName}${r.resultImageUrl ? '(见下页)' : '(请另外打印)'}`) : null,
      el(
        'div',
        { class: 'print-qr' },
        qr,
        el(
          'div',
          {},
          el('p', {}, '用手机扫这个二维码,输入办事人电话号码的后四位,就能查办事进度(不扫码时,还要输入上面的查询码)。'),
          r.progressUrl ? el('p', { class: 'print-url' }, r.progressUrl) : null,
          el('p', {}, '也可以到村便民服务室,报案件编号查询。'),
        ),
      ),
      el('p', { class: 'print-footer' }, `打印时间:${dateText(Date.now())}`),
    ),
    r.resultImageUrl ? el('div', { class: 'print-page print-result' }, el('img', { src: r.resultImageUrl, alt: r.resultName || '结果文书' })) : null,
  );
  sheet.dataset.caseNo = r.caseNo;
  return sheet;
}

/** Fill the sheet and open the browser's print dialog once images are ready. */
export async function printSheet(r) {
  const sheet = fillSheet(r);
  const images = [...sheet.querySelectorAll('img')];
  await Promise.all(images.map((img) => (img.complete ? null : new Promise((resolve) => {
    img.addEventListener('load', resolve, { once: true });
    img.addEventListener('error', resolve, { once: true });
  }))));
  sheet.dataset.printed = String(Date.now());
  window.print();
}

/** Print a PDF (blob: URL) through a hidden frame; if the browser will not, open it. */
export function printPdf(url) {
  const old = $('#print-frame');
  old?.remove();
  const frame = el('iframe', { id: 'print-frame', class: 'print-frame', title: '打印结果文书' });
  frame.addEventListener('load', () => {
    try {
      frame.contentWindow.focus();
      frame.contentWindow.print();
    } catch {
      window.open(url, '_blank', 'noopener');
    }
  }, { once: true });
  frame.src = url;
  document.body.append(frame);
}
