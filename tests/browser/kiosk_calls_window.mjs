#!/usr/bin/env node
// End-to-end in real browsers: a village kiosk calls a town window and both see each other.
//
//   node tests/browser/kiosk_calls_window.mjs --base http://127.0.0.1:PORT \
//        --kiosk-url URL --window-url URL [--out-dir DIR] [--chromium PATH] [--headed]
//
// --kiosk-url is the kiosk's device link (`/kiosk#token=...`), --window-url an approver's
// login link (`/login#user=..&password=..&next=/window`) or `/window#token=...`; both as the
// server prints them with `--demo` (relative URLs are resolved against --base).
// Needs `npm ci` in tests/browser (playwright-core) and Chromium (default /usr/bin/chromium).
// Prints one line per step; on failure prints why, saves screenshots and exits 1.

import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

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
    nodes.map((n) => ({ id: n.dataset.matterId, windowId: n.dataset.windowId, plain: n.querySelector('.matter-plain')?.textContent ?? '' })),
  );
  const chosen = matters.find((m) => approverWindowId !== null && m.windowId === String(approverWindowId)) ?? matters[0];
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

await step('kiosk: hang up; both pages leave the call', async () => {
  await kioskPage.click(testId('hangup-button'));
  await kioskPage.waitForSelector('body[data-state="ended"]');
  await windowPage.waitForSelector('body[data-state="desk"]');
  const open = await Promise.all([kioskPage, windowPage].map((p) => p.evaluate(() => window.__cunneng?.pc !== null)));
  if (open.some(Boolean)) throw new Error(`a peer connection is still open after hang-up (kiosk, window): ${open}`);
  const liveTracks = await kioskPage.evaluate(() => document.querySelector('[data-testid="local-video"]')?.srcObject?.getTracks().filter((t) => t.readyState === 'live').length ?? 0);
  if (liveTracks) throw new Error(`the kiosk camera is still on after hang-up (${liveTracks} live tracks)`);
});

await step('no uncaught JavaScript errors on either page', async () => {
  if (pageErrors.length) throw new Error(pageErrors.join(' | '));
});

clearTimeout(watchdog);
await closeBrowser();
log(`PASS: kiosk called window, both decoded video, hang-up ended the call (${((Date.now() - started) / 1000).toFixed(1)} s)`);
process.exit(0);
