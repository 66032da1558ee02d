#!/usr/bin/env node
// End-to-end in real browsers: a village kiosk calls a town window and both see each other;
// during the call the kiosk enters the villager (ID number shown masked), scans a paper (a PNG
// file) and takes a still with the camera, and the window sees both papers arrive (pushed, no
// reload), views one (zoom, rotate) and asks for a re-scan, which the kiosk shows; the approver
// decides 当场办结 with a result document (a PDF), the kiosk shows the outcome banner and prints
// the receipt (case number, QR code); after hang-up the kiosk rates the call; the public
// progress page finds the case by number and the last four phone digits.
//
//   node tests/browser/kiosk_calls_window.mjs --base http://127.0.0.1:PORT \
//        --kiosk-url URL --window-url URL [--out-dir DIR] [--chromium PATH] [--headed]
//
// --kiosk-url is the kiosk's device link (`/kiosk#token=...`), --window-url an approver's
// login link (`/login#user=..&password=..&next=/window`) or `/window#token=...`; both as the
// server prints them with `--demo` (relative URLs are resolved against --base).
// Needs `npm ci` in tests/browser (playwright-core) and Chromium (default /usr/bin/chromium).
// Prints one line per step; on failure prints why, saves screenshots and exits 1.

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { makePdf, makePng } from './testpapers.mjs';

const STEP_TIMEOUT_MS = 30_000;
const OVERALL_TIMEOUT_MS = 5 * 60_000;
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--allow-loopback-in-peer-connection',
];

const started = Date.now();
const log = (line) => console.log(`[browser ${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${line}`);

function usage(message) {
  console.error(`FAIL: ${message}`);
  console.error('usage: node kiosk_calls_window.mjs --base http://127.0.0.1:PORT --kiosk-url URL --window-url URL [--out-dir DIR] [--chromium PATH] [--headed]');
  process.exit(2);
}

let options;
try {
  ({ values: options } = parseArgs({
    options: {
      base: { type: 'string' },
      'kiosk-url': { type: 'string' },
      'window-url': { type: 'string' },
      'out-dir': { type: 'string' },
      chromium: { type: 'string', default: process.env.CHROMIUM ?? '/usr/bin/chromium' },
      headed: { type: 'boolean', default: false },
    },
    strict: true,
  }));
} catch (err) {
  usage(err.message);
}
if (!options.base || !options['kiosk-url'] || !options['window-url']) usage('--base, --kiosk-url and --window-url are required');
let base;
try {
  base = new URL(options.base);
} catch {
  usage(`--base is not a URL: ${options.base}`);
}
const kioskUrl = new URL(options['kiosk-url'], base).href;
const windowUrl = new URL(options['window-url'], base).href;
const outDir = options['out-dir'] ?? mkdtempSync(join(tmpdir(), 'cunneng-browser-'));
mkdirSync(outDir, { recursive: true });

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch {
  console.error('FAIL: playwright-core is not installed: run `npm ci` in tests/browser first');
  process.exit(2);
}

// ---- bookkeeping for clear failure reports -------------------------------------------------

const pages = {}; // name → Page
const consoleLines = { kiosk: [], window: [] };
const pageErrors = [];
let browser = null;
let currentStep = '(start)';

function watchPage(name, page) {
  pages[name] = page;
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.on('console', (msg) => {
    const line = `${msg.type()}: ${msg.text()}`;
    consoleLines[name].push(line);
    if (consoleLines[name].length > 200) consoleLines[name].shift();
    if (msg.type() === 'error' || msg.type() === 'warning') log(`  (${name} console) ${line}`);
  });
  page.on('pageerror', (err) => {
    pageErrors.push(`${name}: ${err.message}`);
    log(`  (${name} page error) ${err.message}`);
  });
  page.on('requestfailed', (request) => {
    log(`  (${name} request failed) ${request.method()} ${redact(request.url())}: ${request.failure()?.errorText}`);
  });
}

/** Never print tokens or passwords from the fragment. */
function redact(url) {
  return url.replace(/#.*$/, '#…');
}

async function fail(message) {
  console.error(`FAIL at step "${currentStep}": ${message}`);
  for (const [name, page] of Object.entries(pages)) {
    if (page.url() === 'about:blank') continue;
    try {
      const path = join(outDir, `${name}-failure.png`);
      await page.screenshot({ path, fullPage: true, timeout: 5_000 });
      console.error(`  screenshot of the ${name} page: ${path}`);
      const info = await page.evaluate(() => ({
        url: location.pathname,
        state: document.body?.dataset.state,
        connection: document.querySelector('[data-testid="connection-status"]')?.textContent,
        notice: document.querySelector('#notice:not([hidden])')?.textContent ?? '',
        error: document.querySelector('#login-error:not([hidden])')?.textContent ?? '',
      }), undefined, { timeout: 5_000 });
      console.error(`  ${name} page: ${JSON.stringify(info)}`);
    } catch (err) {
      console.error(`  (no screenshot of the ${name} page: ${err.message.split('\n')[0]})`);
    }
    const lines = consoleLines[name].slice(-15);
    if (lines.length) console.error(`  last console lines of the ${name} page:\n    ${lines.join('\n    ')}`);
  }
  await closeBrowser();
  process.exit(1);
}

async function closeBrowser() {
  if (!browser) return;
  const closing = browser.close().catch(() => {});
  browser = null;
  await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 5_000))]);
}

let stepNumber = 0;
async function step(title, action) {
  stepNumber += 1;
  currentStep = `${stepNumber}. ${title}`;
  const t0 = Date.now();
  log(`${currentStep} …`);
  let timer;
  try {
    const result = await Promise.race([
      action(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${STEP_TIMEOUT_MS / 1000} s`)), STEP_TIMEOUT_MS);
      }),
    ]);
    log(`${currentStep}: ok (${((Date.now() - t0) / 1000).toFixed(1)} s)${typeof result === 'string' ? ` ${result}` : ''}`);
    return result;
  } catch (err) {
    // eslint-disable-next-line no-control-regex
    await fail(err.message.replace(/\u001b\[[0-9;]*m/g, '').split('\n').slice(0, 3).join(' | '));
  } finally {
    clearTimeout(timer);
  }
}

/** Poll `probe` until `done(value)`; on timeout throw with `describe(lastValue)`. */
async function waitUntil(probe, done, describe, limitMs = STEP_TIMEOUT_MS - 1_000) {
  const deadline = Date.now() + limitMs;
  let last;
  for (;;) {
    last = await probe();
    if (done(last)) return last;
    if (Date.now() > deadline) throw new Error(describe(last));
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

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

const testId = (id) => `[data-testid="${id}"]`;

const scanPath = join(outDir, 'scan-page-1.png');
writeFileSync(scanPath, makePng(320, 200));
const resultPath = join(outDir, 'result-certificate.pdf');
writeFileSync(resultPath, makePdf('cunneng test result'));
// A valid 18-digit resident ID number (check character X) and a phone.
const VILLAGER = { name: '张三', phone: '138 0000 1234', id: '11010519491231002X', masked: '1101**********002X', phone4: '1234' };

const materialCount = (page, state) => page.locator(state ? `${testId('material-item')}[data-state="${state}"]` : testId('material-item')).count();

// ---- the flow ------------------------------------------------------------------------------

const watchdog = setTimeout(() => fail(`the whole run took longer than ${OVERALL_TIMEOUT_MS / 1000} s`), OVERALL_TIMEOUT_MS);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => fail(`stopped by ${signal}`));

log(`base ${base.href}, screenshots on failure go to ${outDir}`);

await step(`launch Chromium (${options.chromium})`, async () => {
  browser = await chromium.launch({
    executablePath: options.chromium,
    headless: !options.headed,
    args: CHROMIUM_ARGS,
    timeout: STEP_TIMEOUT_MS,
  });
  return browser.version();
});

// Separate contexts: separate localStorage (kiosk and staff tokens) and separate fake cameras.
const contextOptions = { permissions: ['camera', 'microphone'], viewport: { width: 1280, height: 900 }, locale: 'zh-CN' };
const windowPage = await (await browser.newContext(contextOptions)).newPage();
watchPage('window', windowPage);
const kioskPage = await (await browser.newContext(contextOptions)).newPage();
watchPage('kiosk', kioskPage);

await step('window: log in with the approver link and connect', async () => {
  await windowPage.goto(windowUrl, { waitUntil: 'domcontentloaded' });
  // Either the login page moves on to /window, or it shows why not.
  const loginError = windowPage.locator('#login-error:not([hidden])');
  const refused = loginError.waitFor({ state: 'visible' }).then(
    async () => `login refused: ${await loginError.textContent()}`,
    () => null, // never visible: the page moved on
  );
  const outcome = await Promise.race([windowPage.waitForURL((url) => url.pathname === '/window').then(() => null), refused]);
  if (outcome) throw new Error(outcome);
  await windowPage.waitForSelector(`${testId('connection-status')}[data-state="connected"]`);
  const me = await windowPage.evaluate(() => window.__cunneng?.me);
  if (!me) throw new Error('connected, but window.__cunneng.me is not set');
  return `as ${me.name} (${me.role}) at ${me.window?.name ?? 'no window'}`;
});

await step('window: set presence available', async () => {
  const toggle = windowPage.locator(testId('presence-toggle'));
  await toggle.waitFor({ state: 'visible' });
  if ((await toggle.getAttribute('data-presence')) !== 'available') await toggle.click();
  await windowPage.waitForSelector(`${testId('presence-toggle')}[data-presence="available"]`);
});

const approverWindowId = await windowPage.evaluate(() => window.__cunneng?.me?.window?.id ?? null);

await step('kiosk: open the device link and connect', async () => {
  await kioskPage.goto(kioskUrl, { waitUntil: 'domcontentloaded' });
  await kioskPage.waitForSelector(`${testId('connection-status')}[data-state="connected"]`);
  if (new URL(kioskPage.url()).hash) throw new Error('the token fragment was not cleared from the address bar');
  await kioskPage.locator(testId('matter-option')).first().waitFor({ state: 'visible' });
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
    log(`  note: no matter names window ${approverWindowId}; using "${chosen.plain}" (window ${chosen.windowId})`);
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

await step('kiosk: the outcome banner says done, with the result; print the receipt', async () => {
  await kioskPage.waitForSelector(`${testId('outcome-banner')}[data-status="done"]:visible`);
  const banner = (await kioskPage.textContent(testId('outcome-banner'))).replace(/\s+/g, ' ').trim();
  if (!banner.includes('result-certificate.pdf')) throw new Error(`the banner does not name the result document: "${banner}"`);
  await kioskPage.evaluate(() => {
    window.__printed = 0;
    window.print = () => {
      window.__printed += 1;
    };
  });
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

await step('public progress page: case number + last four phone digits → status and next step', async () => {
  const context = await browser.newContext({ viewport: { width: 800, height: 900 }, locale: 'zh-CN' });
  const page = await context.newPage();
  consoleLines.progress = [];
  watchPage('progress', page);
  await page.goto(new URL(`/progress?case=${encodeURIComponent(caseNo)}`, base).href, { waitUntil: 'domcontentloaded' });
  const prefilled = await page.inputValue(testId('progress-case'));
  if (prefilled !== caseNo) throw new Error(`the case number from the link was not filled in: "${prefilled}"`);
  await page.fill(testId('progress-phone4'), '9999');
  await page.click(testId('progress-submit'));
  await page.waitForSelector(`${testId('progress-result')}[data-status="not_found"]`);
  await page.fill(testId('progress-phone4'), VILLAGER.phone4);
  await page.click(testId('progress-submit'));
  await page.waitForSelector(`${testId('progress-result')}[data-status="done"]`);
  const text = (await page.textContent(testId('progress-result'))).replace(/\s+/g, ' ').trim();
  if (text.includes(VILLAGER.name)) throw new Error('the progress page shows the villager\'s name');
  await context.close();
  return text;
});

await step('no uncaught JavaScript errors on either page', async () => {
  if (pageErrors.length) throw new Error(pageErrors.join(' | '));
});

clearTimeout(watchdog);
await closeBrowser();
log(`PASS: kiosk called window, both decoded video, papers arrived on the window, 当场办结 reached the kiosk, hang-up ended the call (${((Date.now() - started) / 1000).toFixed(1)} s)`);
process.exit(0);
