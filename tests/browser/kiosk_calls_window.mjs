#!/usr/bin/env node
// End-to-end in real browsers: a village kiosk calls a town window and both see each other;
// during the call the kiosk enters the villager (ID number shown masked), scans a paper (a PNG
// file) and takes a still with the camera, and the window sees both papers arrive (pushed, no
// reload), views one (zoom, rotate) and asks for a re-scan, which the kiosk shows; the approver
// decides 当场办结 with a result document (a PDF), the kiosk shows the outcome banner and prints
// the receipt (case number, QR code); after hang-up the kiosk rates the call; the public
// progress page finds the case by the receipt's link (number and lookup code) and the last four
// phone digits.
//
//   node tests/browser/kiosk_calls_window.mjs --base http://127.0.0.1:PORT \
//        --kiosk-url URL --window-url URL [--out-dir DIR] [--chromium PATH] [--headed]
//
// --kiosk-url is the kiosk's device link (`/kiosk#token=...`), --window-url an approver's
// login link (`/login#user=..&password=..&next=/window`) or `/window#token=...`; both as the
// server prints them with `--demo` (relative URLs are resolved against --base).
// Needs `npm ci` in tests/browser (playwright-core) and Chromium (default /usr/bin/chromium).
// Prints one line per step; on failure prints why, saves screenshots and exits 1.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { Harness, loginStaff, openKiosk, parseCommandLine, setAvailable, stubPrint, testId, waitUntil } from './harness.mjs';
import { makePdf, makePng } from './testpapers.mjs';

const { options, base, url, outDir, chromium } = await parseCommandLine({
  usageLine: 'node kiosk_calls_window.mjs --base http://127.0.0.1:PORT --kiosk-url URL --window-url URL [--out-dir DIR] [--chromium PATH] [--headed]',
  urls: ['kiosk-url', 'window-url'],
  missing: '--base, --kiosk-url and --window-url are required',
});
const kioskUrl = url(options['kiosk-url']);
const windowUrl = url(options['window-url']);

const h = new Harness({ outDir });
const step = (title, action) => h.step(title, action);

/** Inbound video of the page's RTCPeerConnection (`window.__cunneng.pc`) and its remote <video>. */
function videoStats(page) {
  return page.evaluate(async () => {
    const pc = window.__cunneng?.pc;
    const video = document.querySelector('[data-testid="remote-video"]');
    if (!pc) return { pc: false, framesDecoded: 0, videoWidth: video?.videoWidth ?? 0 };
    let framesDecoded = 0;
    const stats = await pc.getStats();
    stats.forEach((report) => {
      if (report.type === 'inbound-rtp' && report.kind === 'video') framesDecoded += report.framesDecoded ?? 0;
    });
    return {
      pc: true,
      label: video?.dataset.label ?? '',
      connection: pc.connectionState,
      ice: pc.iceConnectionState,
      framesDecoded,
      videoWidth: video?.videoWidth ?? 0,
    };
  });
}

const scanPath = join(outDir, 'scan-page-1.png');
writeFileSync(scanPath, makePng(320, 200));
const resultPath = join(outDir, 'result-certificate.pdf');
writeFileSync(resultPath, makePdf('cunneng test result'));
// A valid 18-digit resident ID number (check character X) and a phone.
const VILLAGER = { name: '张三', phone: '138 0000 1234', id: '11010519491231002X', masked: '1101**********002X', phone4: '1234' };

const materialCount = (page, state) => page.locator(state ? `${testId('material-item')}[data-state="${state}"]` : testId('material-item')).count();

// ---- the flow ------------------------------------------------------------------------------

h.log(`base ${base.href}, screenshots on failure go to ${outDir}`);

await h.launch(chromium, { executablePath: options.chromium, headless: !options.headed });

// Separate contexts: separate localStorage (kiosk and staff tokens) and separate fake cameras.
const windowPage = await h.newPage('window');
const kioskPage = await h.newPage('kiosk');

await step('window: log in with the approver link and connect', async () => {
  const me = await loginStaff(windowPage, windowUrl);
  return `as ${me.name} (${me.role}) at ${me.window?.name ?? 'no window'}`;
});

await step('window: set presence available', () => setAvailable(windowPage));

const approverWindowId = await windowPage.evaluate(() => window.__cunneng?.me?.window?.id ?? null);

await step('kiosk: open the device link and connect', async () => {
  await openKiosk(kioskPage, kioskUrl);
  if (new URL(kioskPage.url()).hash) throw new Error('the token fragment was not cleared from the address bar');
  return `${await kioskPage.locator(testId('matter-option')).count()} matters, place "${await kioskPage.textContent('#place')}"`;
});

await step('kiosk: search a matter of the approver\'s window and select it', async () => {
  const matters = await kioskPage.$$eval(testId('matter-option'), (nodes) =>
    nodes.map((n) => ({ id: n.dataset.matterId, windowId: n.dataset.windowId, signoff: n.dataset.signoff, plain: n.querySelector('.matter-plain')?.textContent ?? '' })),
  );
  // One without 一审一核, so that 当场办结 is final at once and the village sees "done".
  const ours = matters.filter((m) => approverWindowId !== null && m.windowId === String(approverWindowId));
  const chosen = ours.find((m) => m.signoff === 'false') ?? ours[0] ?? matters[0];
  if (chosen.windowId !== String(approverWindowId)) {
    h.log(`  note: no matter names window ${approverWindowId}; using "${chosen.plain}" (window ${chosen.windowId})`);
  }
  await kioskPage.fill(testId('matter-search'), chosen.plain);
  const option = kioskPage.locator(`${testId('matter-option')}[data-matter-id="${chosen.id}"]`);
  await option.waitFor({ state: 'visible' });
  const shown = await kioskPage.locator(`${testId('matter-option')}:visible`).count();
  await option.click();
  await kioskPage.waitForSelector(`${testId('matter-option')}[data-matter-id="${chosen.id}"][aria-pressed="true"]`);
  return `"${chosen.plain}" (matter ${chosen.id}; ${shown} shown for the search)`;
});

await step('kiosk: press the call button and see the queue position', async () => {
  await kioskPage.click(`${testId('call-button')}:enabled`);
  await kioskPage.waitForSelector(`${testId('queue-position')}[data-position]`, { state: 'visible' });
  const position = await kioskPage.textContent(testId('queue-position'));
  const detail = await kioskPage.textContent('#queue-detail');
  return `"${position.trim()}" / "${detail.trim()}"`;
});

const callId = await kioskPage.evaluate(() => window.__cunneng?.state?.callId ?? null);

await step(`window: answer call ${callId}`, async () => {
  const answer = windowPage.locator(
    `${testId('queue-item')}[data-call-id="${callId}"] ${testId('answer-button')}, #ring-banner:not([hidden]) ${testId('answer-button')}`,
  ).first();
  await answer.waitFor({ state: 'visible' });
  await answer.click();
  await windowPage.waitForSelector('body[data-state="call"]');
  await kioskPage.waitForSelector('body[data-state="call"]');
  return `kiosk sees "${(await kioskPage.textContent('#call-peer')).trim()}", window sees "${(await windowPage.textContent('#call-village')).trim()}"`;
});

await step('both pages decode the other side\'s video', async () => {
  const both = await waitUntil(
    async () => ({ kiosk: await videoStats(kioskPage), window: await videoStats(windowPage) }),
    (s) => s.kiosk.framesDecoded > 0 && s.window.framesDecoded > 0 && s.kiosk.videoWidth > 0 && s.window.videoWidth > 0,
    (s) => `no decoded video yet: kiosk ${JSON.stringify(s.kiosk)}, window ${JSON.stringify(s.window)}`,
  );
  // Each incoming MediaStream's id is its sender's label (docs/protocol.md).
  if (!both.kiosk.label.startsWith('staff:') || !both.window.label.startsWith('kiosk:')) {
    throw new Error(`incoming stream ids are not the senders' labels: kiosk shows "${both.kiosk.label}", window shows "${both.window.label}"`);
  }
  return `framesDecoded kiosk ${both.kiosk.framesDecoded} (${both.kiosk.videoWidth}px wide, from ${both.kiosk.label}), window ${both.window.framesDecoded} (${both.window.videoWidth}px wide, from ${both.window.label})`;
});

let caseNo = '';
let firstItem = '';

await step('kiosk: the call\'s case is shown with its checklist', async () => {
  await kioskPage.waitForFunction(() => document.querySelector('[data-testid="case-number"]')?.textContent.trim().length > 0);
  caseNo = (await kioskPage.textContent(testId('case-number'))).trim();
  const items = await kioskPage.$$eval(testId('checklist-item'), (nodes) => nodes.map((n) => n.dataset.item));
  if (!items.length) throw new Error('the kiosk shows no checklist items for the matter');
  firstItem = items[0];
  const windowCase = await windowPage.evaluate(() => window.__cunneng?.case?.case_no ?? null);
  await windowPage.waitForSelector(`${testId('call-case-number')}[data-case-no="${caseNo}"]`);
  return `case ${caseNo} (window has ${windowCase}); checklist: ${items.join(', ')}`;
});

await step('kiosk: enter the villager during the call; the ID number is shown masked', async () => {
  await kioskPage.fill(testId('villager-name'), VILLAGER.name);
  await kioskPage.fill(testId('villager-phone'), VILLAGER.phone);
  await kioskPage.fill(testId('villager-id'), VILLAGER.id);
  await kioskPage.click(testId('villager-save'));
  await kioskPage.waitForSelector(`${testId('villager-summary')}:visible`);
  const masked = (await kioskPage.textContent(testId('villager-id-masked'))).trim();
  if (!masked.includes(VILLAGER.masked)) throw new Error(`the ID number is shown as "${masked}", not masked as ${VILLAGER.masked}`);
  const left = await kioskPage.inputValue(testId('villager-id'));
  if (left) throw new Error('the ID number stayed in the input after saving');
  if ((await kioskPage.content()).includes(VILLAGER.id)) throw new Error('the full ID number is still somewhere on the kiosk page');
  return masked;
});

// Nothing on the window page may reload: papers come over the WebSocket.
await windowPage.evaluate(() => {
  window.__noReload = true;
});

await step('kiosk: scan a paper (PNG) for the first checklist item; the window sees it arrive', async () => {
  const before = await materialCount(windowPage);
  await kioskPage.click(`${testId('checklist-item')}[data-item="${firstItem}"]`);
  await kioskPage.setInputFiles(testId('scan-upload'), scanPath);
  await waitUntil(() => materialCount(kioskPage, 'uploaded'), (n) => n === 1, (n) => `the kiosk shows ${n} uploaded papers, expected 1`);
  const after = await waitUntil(() => materialCount(windowPage), (n) => n === before + 1, (n) => `the window shows ${n} papers, expected ${before + 1}`);
  const tag = await windowPage.getAttribute(`${testId('material-item')}:first-child`, 'data-checklist-item');
  if (tag !== firstItem) throw new Error(`the window shows the paper tagged "${tag}", expected "${firstItem}"`);
  await windowPage.waitForSelector(`${testId('checklist-item')}[data-item="${firstItem}"][data-state="present"]`);
  return `window papers ${before} → ${after}, tagged "${tag}"`;
});

await step('kiosk: take a still with the camera; the window sees the second paper', async () => {
  await kioskPage.click(testId('capture-still'));
  await kioskPage.waitForSelector(`${testId('camera-dialog')}:visible`);
  await kioskPage.waitForFunction(() => document.querySelector('#camera-preview')?.videoWidth > 0);
  await kioskPage.click(testId('capture-shoot'));
  await waitUntil(() => materialCount(kioskPage), (n) => n === 2, (n) => `the kiosk lists ${n} papers after the still, expected 2`);
  await kioskPage.click(testId('capture-done'));
  await waitUntil(() => materialCount(kioskPage, 'uploaded'), (n) => n === 2, (n) => `the kiosk shows ${n} uploaded papers, expected 2`);
  await waitUntil(() => materialCount(windowPage), (n) => n === 2, (n) => `the window shows ${n} papers, expected 2`);
  const kinds = await windowPage.$$eval(`${testId('material-item')} .material-name`, (nodes) => nodes.map((n) => n.textContent));
  const cameraOff = await kioskPage.evaluate(() => !document.querySelector('#camera-preview').srcObject);
  if (!cameraOff) throw new Error('the still camera is still on after "拍完了"');
  if (!(await windowPage.evaluate(() => window.__noReload === true))) throw new Error('the window page reloaded');
  return `window papers: ${kinds.join(', ')}`;
});

await step('window: view the scan, zoom in and rotate it', async () => {
  await windowPage.click(`${testId('material-item')}:first-child ${testId('material-open')}`);
  await windowPage.waitForSelector(`${testId('paper-viewer')}:visible ${testId('viewer-image')}[data-zoom]`);
  await windowPage.click(testId('viewer-rotate'));
  await windowPage.click(testId('viewer-zoom-in'));
  const image = await windowPage.$eval(testId('viewer-image'), (img) => ({ rotation: img.dataset.rotation, zoom: img.dataset.zoom, w: img.naturalWidth }));
  if (image.rotation !== '90' || image.zoom !== '1.25' || image.w !== 320) throw new Error(`viewer state ${JSON.stringify(image)}`);
  await windowPage.click(testId('viewer-close'));
  await windowPage.waitForSelector(testId('paper-viewer'), { state: 'hidden' });
  return `rotated ${image.rotation}°, zoom ${image.zoom}, ${image.w}px wide`;
});

await step('window: ask for a re-scan of the first paper; the kiosk shows the request', async () => {
  await windowPage.click(`${testId('material-item')}:first-child ${testId('rescan-request')}`);
  await windowPage.fill(testId('rescan-note'), '太暗了,请重新扫描');
  await windowPage.click(testId('rescan-confirm'));
  await kioskPage.waitForSelector(`${testId('rescan-request')}:visible`);
  return (await kioskPage.textContent('#rescan-text')).trim();
});

await step('window: 当场办结 with a result document (PDF)', async () => {
  await windowPage.click(testId('outcome-done'));
  await windowPage.waitForSelector(`${testId('outcome-dialog')}:visible`);
  await windowPage.setInputFiles(testId('result-upload'), resultPath);
  await windowPage.click(testId('outcome-confirm'));
  await windowPage.waitForSelector(`${testId('decision-state')}[data-status="done"]`);
  return (await windowPage.textContent(testId('decision-state'))).trim();
});

await step('window: the result PDF opens in the viewer (a blob: frame the CSP allows)', async () => {
  await windowPage.click(`${testId('result-item')} ${testId('material-open')}`);
  const frame = windowPage.locator(`${testId('paper-viewer')}:visible ${testId('viewer-pdf')}`);
  await frame.waitFor({ state: 'visible' });
  const src = await frame.getAttribute('src');
  if (!src?.startsWith('blob:')) throw new Error(`the PDF frame shows "${src}", not a blob: URL`);
  await waitUntil(() => windowPage.frames().some((f) => f.url() === src), Boolean, () => `no frame navigated to ${src}`);
  const type = await windowPage.frames().find((f) => f.url() === src).evaluate(() => document.contentType);
  if (type !== 'application/pdf') throw new Error(`the frame holds ${type}, not the PDF`);
  // For a look at it (--out-dir): the browser's PDF viewer inside our viewer.
  await windowPage.waitForTimeout(1000);
  await windowPage.screenshot({ path: join(outDir, 'window-result-pdf.png') });
  await windowPage.click(testId('viewer-close'));
  await windowPage.waitForSelector(testId('paper-viewer'), { state: 'hidden' });
  return src.replace(/[0-9a-f-]{36}$/, '…');
});

await step('kiosk: the outcome banner says done, with the result; print the receipt', async () => {
  await kioskPage.waitForSelector(`${testId('outcome-banner')}[data-status="done"]:visible`);
  const banner = (await kioskPage.textContent(testId('outcome-banner'))).replace(/\s+/g, ' ').trim();
  if (!banner.includes('result-certificate.pdf')) throw new Error(`the banner does not name the result document: "${banner}"`);
  await stubPrint(kioskPage);
  await kioskPage.click(testId('print-button'));
  await kioskPage.waitForFunction(() => window.__printed > 0);
  const sheet = await kioskPage.$eval(testId('print-sheet'), (s) => ({
    caseNo: s.querySelector('.receipt-case-number')?.textContent,
    qr: Boolean(s.querySelector('svg.qr path')),
    text: s.textContent,
  }));
  if (sheet.caseNo !== caseNo || !sheet.qr) throw new Error(`print sheet: case "${sheet.caseNo}", QR ${sheet.qr}`);
  if (!sheet.text.includes(VILLAGER.name) || !sheet.text.includes('已办结')) throw new Error('the print sheet lacks the villager or the outcome');
  if (banner.includes("null")) throw new Error(`the banner shows "null": "${banner}"`);
  return banner.slice(0, 80);
});

await step('kiosk: hang up; both pages leave the call', async () => {
  await kioskPage.click(testId('hangup-button'));
  await kioskPage.waitForSelector('body[data-state="ended"]');
  await windowPage.waitForSelector('body[data-state="desk"]');
  const open = await Promise.all([kioskPage, windowPage].map((p) => p.evaluate(() => window.__cunneng?.pc !== null)));
  if (open.some(Boolean)) throw new Error(`a peer connection is still open after hang-up (kiosk, window): ${open}`);
  const liveTracks = await kioskPage.evaluate(() => document.querySelector('[data-testid="local-video"]')?.srcObject?.getTracks().filter((t) => t.readyState === 'live').length ?? 0);
  if (liveTracks) throw new Error(`the kiosk camera is still on after hang-up (${liveTracks} live tracks)`);
});

await step('kiosk: rate the call 满意 with a comment', async () => {
  await kioskPage.waitForSelector(`${testId('rating-good')}:visible`);
  await kioskPage.click(testId('rating-good'));
  await kioskPage.fill(testId('rating-comment'), '很方便,不用跑镇上');
  await kioskPage.click(testId('rating-submit'));
  await kioskPage.waitForSelector(`${testId('rating-done')}:visible`);
});

await step('public progress page: the receipt\'s link (case number + lookup code) + last four phone digits → status and next step', async () => {
  // The link the receipt's QR code carries.
  const deviceToken = new URLSearchParams(new URL(kioskUrl).hash.slice(1)).get('token');
  const receipt = await kioskPage.evaluate(async ([no, t]) => {
    const r = await fetch(`/api/cases/${encodeURIComponent(no)}/receipt`, { headers: { Authorization: `Bearer ${t}` } });
    return r.json();
  }, [caseNo, deviceToken]);
  if (!/^\d{8}$/.test(receipt.lookup_code ?? '')) throw new Error(`the receipt has no lookup code: ${JSON.stringify(receipt)}`);
  // The public page: no camera, a narrower window.
  const page = await h.newPage('progress', { permissions: [], viewport: { width: 800, height: 900 } });
  await page.goto(new URL(receipt.progress_path, base).href, { waitUntil: 'domcontentloaded' });
  const prefilled = await page.inputValue(testId('progress-case'));
  if (prefilled !== caseNo) throw new Error(`the case number from the link was not filled in: "${prefilled}"`);
  const code = await page.inputValue(testId('progress-code'));
  if (code !== receipt.lookup_code) throw new Error(`the lookup code from the link was not filled in: "${code}"`);
  await page.fill(testId('progress-phone4'), '9999');
  await page.click(testId('progress-submit'));
  await page.waitForSelector(`${testId('progress-result')}[data-status="not_found"]`);
  await page.fill(testId('progress-phone4'), VILLAGER.phone4);
  await page.click(testId('progress-submit'));
  await page.waitForSelector(`${testId('progress-result')}[data-status="done"]`);
  const text = (await page.textContent(testId('progress-result'))).replace(/\s+/g, ' ').trim();
  if (text.includes(VILLAGER.name)) throw new Error('the progress page shows the villager\'s name');
  await page.context().close();
  return text;
});

await step('every page came with its security headers and broke no CSP rule', () => h.checkSecurity());

await step('no uncaught JavaScript errors on either page', async () => {
  if (h.pageErrors.length) throw new Error(h.pageErrors.join(' | '));
});

await h.close();
h.log(`PASS: kiosk called window, both decoded video, papers arrived on the window, 当场办结 reached the kiosk, hang-up ended the call (${((Date.now() - h.started) / 1000).toFixed(1)} s)`);
process.exit(0);
