#!/usr/bin/env node
// The kiosk page never loses a clerk's scans (issue 10, point 5): a paper whose upload cannot
// finish (the link drops after its first chunk) survives a page reload and then a browser
// restart (the same profile: IndexedDB), and once the link is back it finishes by itself,
// going on from where the server stands (a GET of the upload, then a PUT past offset 0), not
// from the start; the stored paper has every byte; nothing is kept once it is stored.
//
//   node tests/browser/kiosk_keeps_unsent_papers.mjs --base http://127.0.0.1:PORT --kiosk-url URL
//        [--out-dir DIR] [--chromium PATH] [--headed]
//
// Prints one line per step; on failure prints why, saves screenshots and exits 1 (2 for bad
// arguments or a missing `npm ci`).

import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CHROMIUM_ARGS, Harness, openKiosk, parseCommandLine, testId, waitUntil } from './harness.mjs';
import { makePng } from './testpapers.mjs';

const { options, base, url, outDir, chromium } = await parseCommandLine({
  usageLine: 'node kiosk_keeps_unsent_papers.mjs --base URL --kiosk-url URL [--out-dir DIR] [--chromium PATH] [--headed]',
  urls: ['kiosk-url'],
});

const h = new Harness({ outDir });
const step = (title, action) => h.step(title, action);
h.log(`base ${base.href}, screenshots on failure go to ${outDir}`);

// A big scan (level-0 PNG, over 512 KiB: at least two chunks).
const scan = join(outDir, 'unsent-scan.png');
writeFileSync(scan, makePng(640, 480, { level: 0 }));
const scanBytes = statSync(scan).size;
const profile = mkdtempSync(join(tmpdir(), 'cunneng-kiosk-profile-'));
const isUpload = (u) => u.pathname.includes('/uploads/');

/** A browser on the kiosk's own profile (a restart keeps its IndexedDB and localStorage). */
async function startBrowser() {
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: options.chromium,
    headless: !options.headed,
    args: CHROMIUM_ARGS,
    permissions: ['camera', 'microphone'],
    viewport: { width: 1366, height: 768 },
    locale: 'zh-CN',
  });
  const page = context.pages()[0] ?? (await context.newPage());
  // The harness closes it on failure.
  h.browser = context;
  h.watch('kiosk', page);
  return { context, page };
}

/** What the page keeps in IndexedDB: [{caseNo, name, bytes, uploadUrl}]. */
function kept(page) {
  return page.evaluate(() => new Promise((resolve, reject) => {
    const open = indexedDB.open('cunneng-kiosk', 1);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains('pending-papers')) {
        resolve([]);
        return;
      }
      const all = db.transaction('pending-papers').objectStore('pending-papers').getAll();
      all.onsuccess = () => resolve(all.result.map((r) => ({ caseNo: r.caseNo, name: r.name, bytes: r.blob.size, uploadUrl: r.uploadUrl })));
      all.onerror = () => reject(all.error);
    };
  }));
}

const stuck = (page) => page.locator(`${testId('material-item')}:not([data-state="uploaded"])`);
const uploaded = (page) => page.locator(`${testId('material-item')}[data-state="uploaded"]`);

let { context, page } = await startBrowser();
// The upload requests of the browser after its restart.
const seen = [];

let caseNo;
await step('kiosk: connect, pick a matter, enter the villager: the case opens', async () => {
  await openKiosk(page, url(options['kiosk-url']));
  await page.locator(testId('matter-option')).first().click();
  await page.fill(testId('villager-name'), '王五');
  await page.fill(testId('villager-phone'), '139-0000-4321');
  await page.click(testId('villager-save'));
  await page.waitForFunction(() => document.querySelector('[data-testid="case-number"]')?.textContent.trim());
  caseNo = (await page.textContent(testId('case-number'))).trim();
  return caseNo;
});

await step('kiosk: scan a big paper; the link drops after its first chunk and stays down', async () => {
  await page.route(isUpload, async (route) => {
    const offset = new URL(route.request().url()).searchParams.get('offset');
    if (route.request().method() === 'PUT' && Number(offset) > 0) return route.abort('internetdisconnected');
    return route.continue();
  });
  await page.click(`${testId('checklist-item')} >> nth=0`);
  await page.setInputFiles(testId('scan-upload'), scan);
  await page.waitForSelector(`${testId('material-item')}:has-text("网络不好")`);
  const k = await kept(page);
  if (k.length !== 1 || k[0].caseNo !== caseNo || k[0].bytes !== scanBytes || !k[0].uploadUrl) {
    throw new Error(`IndexedDB keeps ${JSON.stringify(k)}`);
  }
  return `kept: ${k[0].bytes} bytes of case ${k[0].caseNo}, with its upload`;
});

await step('kiosk: reload the page while the link is down: the paper is still there, still waiting', async () => {
  await page.reload({ waitUntil: 'domcontentloaded' });
  await page.waitForSelector(`${testId('connection-status')}[data-state="connected"]`);
  await page.waitForFunction((no) => document.querySelector('[data-testid="case-number"]')?.textContent.trim() === no, caseNo);
  await stuck(page).first().waitFor({ state: 'visible' });
  if (await uploaded(page).count()) throw new Error('a paper is shown as uploaded while the link is down');
  await page.screenshot({ path: join(outDir, 'kiosk-restored-after-reload.png') });
  return `${await stuck(page).count()} paper waiting: ${(await stuck(page).first().textContent()).trim().slice(0, 60)}`;
});

await step('kiosk: the browser is closed and started again (a power cut): the paper is still kept', async () => {
  // The power goes: nothing more reaches the server (an upload request held by the route
  // when the browser closes could otherwise still go out and finish the paper).
  await context.setOffline(true);
  await page.unrouteAll({ behavior: 'wait' });
  await context.close();
  ({ context, page } = await startBrowser());
  page.on('request', (request) => {
    const u = new URL(request.url());
    if (!isUpload(u) && !/\/papers$/.test(u.pathname)) return;
    const offset = u.searchParams.get('offset');
    seen.push(`${request.method()} ${isUpload(u) ? 'upload' : 'papers'}${offset !== null ? ` offset=${offset}` : ''}`);
  });
  // The kiosk page again, without its link (the token is in the profile); the link stays down.
  await page.route(isUpload, async (route) => {
    const offset = new URL(route.request().url()).searchParams.get('offset');
    if (route.request().method() === 'PUT' && Number(offset) > 0) return route.abort('internetdisconnected');
    return route.continue();
  });
  await page.goto(new URL('/kiosk', base).href, { waitUntil: 'domcontentloaded' });
  const after = await kept(page);
  if (after.length !== 1 || after[0].bytes !== scanBytes) throw new Error(`after the restart IndexedDB keeps ${JSON.stringify(after)}`);
  await page.waitForFunction((no) => document.querySelector('[data-testid="case-number"]')?.textContent.trim() === no, caseNo);
  await stuck(page).first().waitFor({ state: 'visible' });
  return 'one paper kept';
});

await step('kiosk: the link is back: the paper finishes by itself, from where the server stands', async () => {
  await page.unroute(isUpload);
  // The retry comes by itself (the backoff, or the browser's "online").
  await uploaded(page).first().waitFor({ state: 'visible', timeout: 28_000 });
  // Taken over, not started again: first a GET of the kept upload, never a new POST or a PUT
  // from offset 0.
  if (seen[0] !== 'GET upload' || seen.some((r) => r.startsWith('POST') || r === 'PUT upload offset=0')
    || !seen.some((r) => r.startsWith('PUT upload offset='))) {
    throw new Error(`the upload did not go on where it stood: ${seen.join(', ')}`);
  }
  await page.screenshot({ path: join(outDir, 'kiosk-finished-after-restart.png') });
  return seen.join(', ');
});

await step('server: the case has the paper with every byte; the page keeps nothing more', async () => {
  const token = await page.evaluate(() => localStorage.getItem('cunneng.kiosk_token'));
  const c = await page.evaluate(async ({ no, t }) => {
    const r = await fetch(`/api/cases/${encodeURIComponent(no)}`, { headers: { Authorization: `Bearer ${t}` } });
    return r.json();
  }, { no: caseNo, t: token });
  const scans = (c.papers ?? []).filter((p) => p.kind === 'scan');
  if (scans.length !== 1 || scans[0].size !== scanBytes) throw new Error(`the case's papers: ${JSON.stringify(scans)}`);
  await waitUntil(() => kept(page), (k) => k.length === 0, (k) => `IndexedDB still keeps ${JSON.stringify(k)}`);
  return `${scans[0].name}: ${scans[0].size} bytes`;
});

await step('security: every document had its headers, no CSP violation', async () => h.checkSecurity());

await h.close();
h.log(`PASS: the kiosk kept an unsent paper across a reload and a browser restart, and finished it from where the server stood (${((Date.now() - h.started) / 1000).toFixed(1)} s)`);
process.exit(0);
