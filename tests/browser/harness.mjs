// Shared bookkeeping for the browser scripts: Chromium with a fake camera, numbered steps with a
// time limit each, and on failure the step's name, every page's state, its last console lines
// and a screenshot per page (exit 1). It also watches the security headers: every document
// must come with a Content-Security-Policy, and every CSP violation on any page or frame is
// recorded (`checkSecurity()` fails on them).
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

export const STEP_TIMEOUT_MS = 30_000;
export const CHROMIUM_ARGS = [
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

export const testId = (id) => `[data-testid="${id}"]`;

/** Runs in every page and frame: CSP violations also go to the console, tagged. */
function reportCspViolations() {
  addEventListener('securitypolicyviolation', (e) => {
    console.error(`CSP violation: ${e.effectiveDirective} blocked ${e.blockedURI || '(inline)'} in ${e.documentURI.replace(/#.*$/, '')} (${e.sourceFile || '?'}:${e.lineNumber})`);
  });
}

const CSP_CONSOLE = /Content Security Policy|CSP violation|Refused to (load|execute|apply|frame|connect|create)/i;
// Headers every same-origin document must carry (signaling/src/http.rs, cunneng_web::security_headers).
const DOCUMENT_HEADERS = {
  'content-security-policy': (v) => v.includes("default-src 'self'") && v.includes("frame-ancestors 'none'"),
  'x-content-type-options': (v) => v === 'nosniff',
  'x-frame-options': (v) => v.toUpperCase() === 'DENY',
  'referrer-policy': (v) => v.length > 0,
  'permissions-policy': (v) => v.includes('camera=(self)') && v.includes('microphone=(self)'),
};

/** Never print tokens or passwords from the fragment. */
export function redact(url) {
  return url.replace(/#.*$/, '#…');
}

/**
 * The command line every script shares: `--base URL`, the script's own URL flags (`urls`, all
 * required, resolved against --base by `url()`), `[--out-dir DIR] [--chromium PATH] [--headed]`;
 * then playwright-core. Bad arguments or a missing `npm ci` print why and exit 2.
 * `usageLine` is the usage text, `missing` (optional) the message when a required flag is absent.
 */
export async function parseCommandLine({ usageLine, urls, missing }) {
  const usage = (message) => {
    console.error(`FAIL: ${message}`);
    console.error(`usage: ${usageLine}`);
    process.exit(2);
  };
  let options;
  try {
    ({ values: options } = parseArgs({
      options: {
        base: { type: 'string' },
        ...Object.fromEntries(urls.map((name) => [name, { type: 'string' }])),
        'out-dir': { type: 'string' },
        chromium: { type: 'string', default: process.env.CHROMIUM ?? '/usr/bin/chromium' },
        headed: { type: 'boolean', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    usage(err.message);
  }
  for (const name of ['base', ...urls]) if (!options[name]) usage(missing ?? `--${name} is required`);
  let base;
  try {
    base = new URL(options.base);
  } catch {
    usage(`--base is not a URL: ${options.base}`);
  }
  const outDir = options['out-dir'] ?? mkdtempSync(join(tmpdir(), 'cunneng-browser-'));
  mkdirSync(outDir, { recursive: true });

  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch {
    console.error('FAIL: playwright-core is not installed: run `npm ci` in tests/browser first');
    process.exit(2);
  }
  return { options, base, url: (u) => new URL(u, base).href, outDir, chromium };
}

export class Harness {
  constructor({ outDir, overallTimeoutMs = 5 * 60_000 }) {
    this.outDir = outDir;
    this.started = Date.now();
    this.pages = {};
    this.consoleLines = {};
    this.pageErrors = [];
    this.cspViolations = [];
    this.headerProblems = [];
    this.documentsChecked = 0;
    this.responsesChecked = 0;
    this.browser = null;
    this.currentStep = '(start)';
    this.stepNumber = 0;
    this.watchdog = setTimeout(() => this.fail(`the whole run took longer than ${overallTimeoutMs / 1000} s`), overallTimeoutMs);
    for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => this.fail(`stopped by ${signal}`));
  }

  log(line) {
    console.log(`[browser ${((Date.now() - this.started) / 1000).toFixed(1).padStart(5)}s] ${line}`);
  }

  async launch(chromium, { executablePath, headless }) {
    await this.step(`launch Chromium (${executablePath})`, async () => {
      this.browser = await chromium.launch({ executablePath, headless, args: CHROMIUM_ARGS, timeout: STEP_TIMEOUT_MS });
      return this.browser.version();
    });
    return this.browser;
  }

  /** A page in a context of its own (own localStorage, own fake camera), watched. */
  async newPage(name, options = {}) {
    const context = await this.browser.newContext({ permissions: ['camera', 'microphone'], viewport: { width: 1280, height: 900 }, locale: 'zh-CN', ...options });
    await context.addInitScript(reportCspViolations);
    const page = await context.newPage();
    this.watch(name, page);
    return page;
  }

  watch(name, page) {
    this.pages[name] = page;
    this.consoleLines[name] = [];
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.on('console', (msg) => {
      const line = `${msg.type()}: ${msg.text()}`;
      this.consoleLines[name].push(line);
      if (this.consoleLines[name].length > 200) this.consoleLines[name].shift();
      if (msg.type() === 'error' || msg.type() === 'warning') this.log(`  (${name} console) ${line}`);
      if ((msg.type() === 'error' || msg.type() === 'warning') && CSP_CONSOLE.test(msg.text())) this.cspViolations.push(`${name}: ${msg.text()}`);
    });
    page.on('response', (response) => this.checkHeaders(name, response).catch(() => {}));
    page.on('pageerror', (err) => {
      this.pageErrors.push(`${name}: ${err.message}`);
      this.log(`  (${name} page error) ${err.message}`);
    });
    page.on('requestfailed', (request) => {
      this.log(`  (${name} request failed) ${request.method()} ${redact(request.url())}: ${request.failure()?.errorText}`);
    });
  }

  /** Every http(s) response: nosniff; every document: the whole set of security headers. */
  async checkHeaders(name, response) {
    const url = response.url();
    if (!/^https?:/.test(url)) return;
    const headers = await response.allHeaders();
    const where = `${name}: ${response.request().method()} ${redact(url)} (${response.status()})`;
    this.responsesChecked += 1;
    if (headers['x-content-type-options'] !== 'nosniff') this.headerProblems.push(`${where} without X-Content-Type-Options: nosniff`);
    if (response.request().resourceType() !== 'document') return;
    this.documentsChecked += 1;
    for (const [header, ok] of Object.entries(DOCUMENT_HEADERS)) {
      const value = headers[header];
      if (value === undefined || !ok(value)) this.headerProblems.push(`${where}: ${header} is ${value === undefined ? 'missing' : `"${value}"`}`);
    }
  }

  /**
   * Proves the CSP watch sees violations: an inline script added to `page` must be refused and
   * recorded (the record is then dropped). Throws if it runs or goes unseen.
   */
  async cspWatchSelfTest(page) {
    const before = this.cspViolations.length;
    await page.evaluate(() => {
      const script = document.createElement('script');
      script.textContent = 'window.__inlineScriptRan = true;';
      document.head.append(script);
    });
    await waitUntil(() => this.cspViolations.length, (n) => n > before, () => 'an inline script raised no CSP violation that the harness saw: it would miss real ones', 5_000);
    // The browser's own "Refused to execute…" line may come a moment after the event's.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const seen = this.cspViolations.splice(before);
    if (await page.evaluate(() => window.__inlineScriptRan === true)) throw new Error('an inline script ran: the page has no working CSP');
    return `an inline script was refused and seen (${seen.length} reports)`;
  }

  /** Throws unless no CSP violation was seen and every document had its security headers. */
  checkSecurity() {
    const problems = [...this.cspViolations, ...this.headerProblems];
    if (problems.length) throw new Error(problems.slice(0, 8).join(' | '));
    if (this.documentsChecked === 0) throw new Error('no document response was seen: the header check checked nothing');
    return `${this.documentsChecked} documents and ${this.responsesChecked} responses with the security headers, no CSP violation`;
  }

  async fail(message) {
    console.error(`FAIL at step "${this.currentStep}": ${message}`);
    for (const problem of [...this.cspViolations, ...this.headerProblems].slice(0, 20)) console.error(`  security: ${problem}`);
    for (const [name, page] of Object.entries(this.pages)) {
      if (page.isClosed() || page.url() === 'about:blank') continue;
      try {
        const path = join(this.outDir, `${name}-failure.png`);
        await page.screenshot({ path, fullPage: true, timeout: 5_000 });
        console.error(`  screenshot of the ${name} page: ${path}`);
        const info = await page.evaluate(() => ({
          url: location.pathname,
          state: document.body?.dataset.state,
          connection: document.querySelector('[data-testid="connection-status"]')?.textContent,
          notice: document.querySelector('#notice:not([hidden])')?.textContent ?? '',
          error: [...document.querySelectorAll('.error:not([hidden])')].map((e) => e.textContent).join(' | '),
        }), undefined, { timeout: 5_000 });
        console.error(`  ${name} page: ${JSON.stringify(info)}`);
      } catch (err) {
        console.error(`  (no screenshot of the ${name} page: ${err.message.split('\n')[0]})`);
      }
      const lines = this.consoleLines[name].slice(-15);
      if (lines.length) console.error(`  last console lines of the ${name} page:\n    ${lines.join('\n    ')}`);
    }
    await this.close();
    process.exit(1);
  }

  async close() {
    clearTimeout(this.watchdog);
    if (!this.browser) return;
    const closing = this.browser.close().catch(() => {});
    this.browser = null;
    await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 5_000))]);
  }

  async step(title, action) {
    this.stepNumber += 1;
    this.currentStep = `${this.stepNumber}. ${title}`;
    const t0 = Date.now();
    this.log(`${this.currentStep} …`);
    let timer;
    try {
      const result = await Promise.race([
        action(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`timed out after ${STEP_TIMEOUT_MS / 1000} s`)), STEP_TIMEOUT_MS);
        }),
      ]);
      this.log(`${this.currentStep}: ok (${((Date.now() - t0) / 1000).toFixed(1)} s)${typeof result === 'string' ? ` ${result}` : ''}`);
      return result;
    } catch (err) {
      // eslint-disable-next-line no-control-regex
      await this.fail(err.message.replace(/\u001b\[[0-9;]*m/g, '').split('\n').slice(0, 3).join(' | '));
    } finally {
      clearTimeout(timer);
    }
    return undefined;
  }
}

/** Poll `probe` until `done(value)`; on timeout throw with `describe(lastValue)`. */
export async function waitUntil(probe, done, describe, limitMs = STEP_TIMEOUT_MS - 1_000) {
  const deadline = Date.now() + limitMs;
  let last;
  for (;;) {
    last = await probe();
    if (done(last)) return last;
    if (Date.now() > deadline) throw new Error(describe(last));
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

/** Log a staff page in from its demo link (landing on `path`) and wait until its WebSocket is connected. */
export async function loginStaff(page, url, path = '/window') {
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  const loginError = page.locator('#login-error:not([hidden])');
  const refused = loginError.waitFor({ state: 'visible' }).then(
    async () => `login refused: ${await loginError.textContent()}`,
    () => null,
  );
  const outcome = await Promise.race([page.waitForURL((u) => u.pathname === path).then(() => null), refused]);
  if (outcome) throw new Error(outcome);
  await page.waitForSelector(`${testId('connection-status')}[data-state="connected"]`);
  const me = await page.evaluate(() => window.__cunneng?.me);
  if (!me) throw new Error('connected, but window.__cunneng.me is not set');
  return me;
}

/** Open a kiosk page from its device link; wait until it is connected and lists its matters. */
export async function openKiosk(page, url) {
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await page.waitForSelector(`${testId('connection-status')}[data-state="connected"]`);
  await page.locator(testId('matter-option')).first().waitFor({ state: 'visible' });
}

/** Switch a staff page's presence to available. */
export async function setAvailable(page) {
  const toggle = page.locator(testId('presence-toggle'));
  await toggle.waitFor({ state: 'visible' });
  if ((await toggle.getAttribute('data-presence')) !== 'available') await toggle.click();
  await page.waitForSelector(`${testId('presence-toggle')}[data-presence="available"]`);
}

/** Runs in a page: printing opens no dialog, each `window.print()` is counted in `window.__printed`. */
export function countPrints() {
  window.__printed = 0;
  window.print = () => {
    window.__printed += 1;
  };
}

/** Count prints on a page that is already open (`page.addInitScript(countPrints)` for later loads). */
export async function stubPrint(page) {
  await page.evaluate(countPrints);
}

/**
 * Throws unless every element of `selectors` is visible inside `page`'s viewport and nothing
 * lies over it (the element itself is hit at its centre); returns their test ids, for the log.
 */
export async function inView(page, selectors) {
  const viewport = page.viewportSize();
  const out = [];
  for (const selector of selectors) {
    const box = await page.locator(selector).first().boundingBox();
    if (!box) throw new Error(`${selector} is not visible`);
    if (box.y < 0 || box.x < 0 || box.y + box.height > viewport.height + 1 || box.x + box.width > viewport.width + 1) {
      throw new Error(`${selector} is outside the ${viewport.width}×${viewport.height} viewport: ${JSON.stringify(box)}`);
    }
    const covered = await page.evaluate(([sel, x, y]) => {
      const target = document.querySelector(sel);
      const at = document.elementFromPoint(x, y);
      if (target && at && (target === at || target.contains(at) || at.contains(target))) return null;
      return at ? `<${at.tagName.toLowerCase()} class="${at.className}" data-testid="${at.dataset?.testid ?? ''}">` : 'nothing';
    }, [selector, box.x + box.width / 2, box.y + box.height / 2]);
    if (covered) throw new Error(`${selector} is covered by ${covered}`);
    out.push(selector.replace(/\[data-testid="([^"]+)"\]/g, '$1'));
  }
  return out.join(', ');
}

/** The review player's videos in `page`: side, start, position and wall-clock position, state. */
export function playbackVideos(page) {
  return page.evaluate(() => [...document.querySelectorAll('[data-testid="playback-video"]')].map((v) => ({
    side: v.dataset.side,
    start: Number(v.dataset.startMs),
    t: v.currentTime,
    wall: Number(v.dataset.startMs) + v.currentTime * 1000,
    paused: v.paused,
    seeking: v.seeking,
    ready: v.readyState,
    width: v.videoWidth,
    duration: v.duration,
  })));
}
