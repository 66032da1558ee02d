#!/usr/bin/env node
// A supervisor reviews a recorded case on /review (可查可追溯):
// 1. the kiosk calls, the window answers; during the call the kiosk enters the villager and
//    scans a paper (a timeline event in the middle of the call); the window hangs up;
// 2. the supervisor logs in and lands on /review; finds the case by the last 4 digits of the
//    villager's phone and by its number (the total shown); opens it;
// 3. both sides of the call play side by side from one play button; a click on the paper's
//    mark on the seek bar puts both videos there: their wall-clock positions (start_ms +
//    currentTime) within 0.5 s of each other and of the mark;
// 4. the paper opens in the viewer (zoom, rotate); "谁看过这个案件" lists the viewing (the
//    opening, the paper and the recordings played);
// 5. a legal hold is placed and lifted with reasons, its history shown; the export downloads
//    a tar; the access report lists the viewing, the hold and the export;
// 6. a supervisor limited to another town finds nothing and cannot open the case.
// Screenshots at 1366×768; the key controls must be inside the viewport.
//
//   node tests/browser/review_case.mjs --base http://127.0.0.1:PORT --kiosk-url URL --window-url URL \
//        --supervisor-url URL --other-town-url URL [--call-secs 12] [--out-dir DIR] [--chromium PATH] [--headed]

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { Harness, inView, openKiosk, loginStaff, parseCommandLine, playbackVideos, setAvailable, testId, waitUntil } from './harness.mjs';
import { makePng } from './testpapers.mjs';

const { options, url, outDir, chromium } = await parseCommandLine({
  usageLine: 'node review_case.mjs --base http://127.0.0.1:PORT --kiosk-url URL --window-url URL --supervisor-url URL --other-town-url URL [--out-dir DIR] [--chromium PATH] [--headed]',
  urls: ['kiosk-url', 'window-url', 'supervisor-url', 'other-town-url'],
});
const CALL_SECS = Number(process.env.CALL_SECS ?? 12);
const VIEWPORT = { width: 1366, height: 768 };
const VILLAGER = { name: '赵桂兰', phone: '139 0000 5678', phone4: '5678' };

const h = new Harness({ outDir });
const step = (title, action) => h.step(title, action);

await h.launch(chromium, { executablePath: options.chromium, headless: !options.headed });
const windowPage = await h.newPage('window');
const kioskPage = await h.newPage('kiosk');
const supPage = await h.newPage('supervisor', { viewport: VIEWPORT, acceptDownloads: true });
const otherPage = await h.newPage('other-town', { viewport: VIEWPORT });

const scanPath = join(outDir, 'scan-page-1.png');
writeFileSync(scanPath, makePng(640, 400));

await step('window: log in, connect, presence available', async () => {
  const me = await loginStaff(windowPage, url(options['window-url']));
  await setAvailable(windowPage);
  return `as ${me.name} at ${me.window?.name}`;
});
const windowId = await windowPage.evaluate(() => window.__cunneng.me.window?.id ?? null);

await step('kiosk: open, pick a matter of that window and call', async () => {
  await openKiosk(kioskPage, url(options['kiosk-url']));
  await kioskPage.locator(`${testId('matter-option')}[data-window-id="${windowId}"]`).first().click();
  await kioskPage.click(`${testId('call-button')}:enabled`);
  await kioskPage.waitForSelector(`${testId('queue-position')}[data-position]`, { state: 'visible' });
});
const callId = await kioskPage.evaluate(() => window.__cunneng.state.callId);

let caseNo;
const callStarted = Date.now();
await step(`window: answer call ${callId}; both sides connect`, async () => {
  const button = windowPage.locator(`${testId('queue-item')}[data-call-id="${callId}"] ${testId('answer-button')}, #ring-banner:not([hidden]) ${testId('answer-button')}`).first();
  await button.click();
  await windowPage.waitForSelector('body[data-state="call"]');
  await waitUntil(
    () => Promise.all([kioskPage, windowPage].map((p) => p.evaluate(() => window.__cunneng.pc?.connectionState ?? 'none'))),
    (states) => states.every((s) => s === 'connected'),
    (states) => `media not connected (kiosk, window): ${states}`,
  );
  caseNo = await windowPage.getAttribute(testId('call-case-number'), 'data-case-no');
  if (!caseNo) throw new Error('the window shows no case number for the call');
  return `case ${caseNo}`;
});

await step('kiosk: enter the villager during the call', async () => {
  await kioskPage.fill(testId('villager-name'), VILLAGER.name);
  await kioskPage.fill(testId('villager-phone'), VILLAGER.phone);
  await kioskPage.click(testId('villager-save'));
  await kioskPage.waitForSelector(`${testId('villager-summary')}:visible`);
});

await step('kiosk: a few seconds in, scan a paper; the window sees it', async () => {
  const wait = Math.max(0, 5000 - (Date.now() - callStarted));
  await new Promise((resolve) => setTimeout(resolve, wait));
  await kioskPage.locator(`button${testId('checklist-item')}`).first().click();
  await kioskPage.setInputFiles(testId('scan-upload'), scanPath);
  await waitUntil(() => kioskPage.locator(`${testId('material-item')}[data-state="uploaded"]`).count(), (n) => n === 1, (n) => `the kiosk shows ${n} uploaded papers`);
  await windowPage.locator(testId('material-item')).first().waitFor({ state: 'visible' });
});

await step(`the call goes on to ${CALL_SECS} s; the window hangs up`, async () => {
  const wait = Math.max(0, CALL_SECS * 1000 - (Date.now() - callStarted));
  await new Promise((resolve) => setTimeout(resolve, wait));
  await windowPage.click(testId('hangup-button'));
  await kioskPage.waitForSelector('body[data-state="ended"]');
});

/** fetch in `page` with its staff token: [status, JSON body or null]. */
const api = (page, method, path) => page.evaluate(async ([m, p]) => {
  const token = localStorage.getItem('cunneng.staff_token');
  const r = await fetch(p, { method: m, headers: { Authorization: `Bearer ${token}` }, credentials: 'same-origin' });
  return [r.status, await r.json().catch(() => null)];
}, [method, path]);

await step('both recordings of the call are complete', async () => {
  const recordings = await waitUntil(
    async () => (await api(windowPage, 'GET', `/api/cases/${caseNo}/recordings`))[1] ?? [],
    (r) => r.length === 2 && r.every((x) => x.status === 'complete'),
    (r) => `recordings: ${JSON.stringify(r)}`,
  );
  return recordings.map((r) => `${r.participant}: ${r.segments.length} segments`).join(', ');
});

await step('supervisor: log in, land on /review (the search)', async () => {
  await supPage.goto(url(options['supervisor-url']), { waitUntil: 'domcontentloaded' });
  await supPage.waitForURL((u) => u.pathname === '/review');
  await supPage.waitForSelector('body[data-state="search"]');
  await supPage.waitForSelector(`${testId('review-total')}[data-total]`);
  await supPage.screenshot({ path: join(outDir, 'review-search.png') });
  return inView(supPage, [testId('review-query'), testId('review-search'), testId('filter-town'), testId('filter-hold'), testId('filter-sort')]);
});

await step('supervisor: find the case by the last 4 digits of the villager\'s phone, and by its number', async () => {
  await supPage.fill(testId('review-query'), VILLAGER.phone4);
  await supPage.click(testId('review-search'));
  await supPage.waitForSelector(`${testId('review-result')}[data-case-no="${caseNo}"]`);
  const byPhone = await supPage.getAttribute(testId('review-total'), 'data-total');
  await supPage.fill(testId('review-query'), caseNo);
  await supPage.click(testId('review-search'));
  await waitUntil(() => supPage.locator(testId('review-result')).count(), (n) => n === 1, (n) => `${n} results for the case number`);
  await supPage.waitForSelector(`${testId('review-result')}[data-case-no="${caseNo}"]`);
  const total = await supPage.getAttribute(testId('review-total'), 'data-total');
  if (total !== '1') throw new Error(`total ${total} for the case number`);
  const villager = await supPage.textContent(`${testId('review-result')}[data-case-no="${caseNo}"]`);
  if (villager.includes(VILLAGER.name)) throw new Error('the result row shows the villager\'s full name');
  await supPage.screenshot({ path: join(outDir, 'review-results.png') });
  return `by phone: ${byPhone} found; by number: 1 (${villager.replace(/\s+/g, ' ').trim()})`;
});

const videos = () => playbackVideos(supPage);

await step('supervisor: open the case; both sides of the call are in the player', async () => {
  await supPage.click(`${testId('review-result')}[data-case-no="${caseNo}"]`);
  await supPage.waitForSelector('body[data-state="case"]');
  await supPage.waitForURL((u) => u.searchParams.get('case') === caseNo);
  const v = await waitUntil(videos, (list) => list.length === 2 && list.every((x) => x.ready >= 2 && x.width > 0), (list) => `videos: ${JSON.stringify(list)}`);
  const sides = v.map((x) => x.side).sort().join(',');
  if (sides !== 'town,village') throw new Error(`sides ${sides}`);
  return v.map((x) => `${x.side}: ${x.duration.toFixed(1)} s from ${new Date(x.start).toISOString().slice(11, 23)}`).join('; ');
});

await step('supervisor: one play button plays both; they stay aligned', async () => {
  await supPage.click(testId('playback-play'));
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const v = await videos();
  const playing = v.filter((x) => !x.paused && x.t > 0.5);
  if (playing.length !== 2) throw new Error(`not both playing: ${JSON.stringify(v)}`);
  const apart = Math.abs(v[0].wall - v[1].wall);
  if (apart > 500) throw new Error(`the sides are ${apart.toFixed(0)} ms apart while playing`);
  await supPage.click(testId('playback-play'));
  await waitUntil(videos, (list) => list.every((x) => x.paused), (list) => `still playing: ${JSON.stringify(list)}`);
  return `both played to ${v.map((x) => x.t.toFixed(2)).join(' / ')} s, ${apart.toFixed(0)} ms apart on the wall clock`;
});

let markMs;
await step('supervisor: the paper\'s mark on the seek bar puts both videos there', async () => {
  await supPage.screenshot({ path: join(outDir, 'review-case.png') });
  const placement = await inView(supPage, [testId('playback-play'), testId('playback-seek'), `${testId('timeline-event')}[data-kind="paper.added"]`, testId('export-case'), testId('tab-access'), testId('tab-hold')]);
  const mark = supPage.locator(`${testId('timeline-event')}[data-kind="paper.added"]`).first();
  markMs = Number(await mark.getAttribute('data-at-ms'));
  await mark.click();
  const v = await waitUntil(
    async () => [await videos(), await supPage.evaluate(() => document.querySelector('[data-testid="playback"]')?.dataset.seeking ?? '')],
    ([list, seeking]) => !seeking && list.every((x) => !x.seeking && x.ready >= 2),
    ([list]) => `still seeking: ${JSON.stringify(list)}`,
  ).then(([list]) => list);
  const off = v.map((x) => x.wall - markMs);
  if (off.some((d) => Math.abs(d) > 500)) throw new Error(`videos off the mark by ${off.map((d) => d.toFixed(0)).join(', ')} ms`);
  const apart = Math.abs(v[0].wall - v[1].wall);
  if (apart > 500) throw new Error(`the sides are ${apart.toFixed(0)} ms apart after the seek`);
  // Each currentTime counts from its own recording's start; on the call's clock (the bar) they
  // are the same moment. The raw difference is the difference of the recordings' starts.
  const origin = await supPage.evaluate(() => window.__cunneng.player.originMs);
  const onBar = v.map((x) => (x.wall - origin) / 1000);
  const markOnBar = (markMs - origin) / 1000;
  if (onBar.some((p) => Math.abs(p - markOnBar) > 0.5)) throw new Error(`on the bar ${onBar.join(', ')} s, the mark at ${markOnBar} s`);
  const seekValue = Number(await supPage.inputValue(testId('playback-seek')));
  await supPage.screenshot({ path: join(outDir, 'review-case-at-mark.png') });
  return `mark at ${new Date(markMs).toISOString().slice(11, 23)} (bar ${markOnBar.toFixed(2)} s); currentTime ${v.map((x) => x.t.toFixed(2)).join(' / ')} s (starts ${Math.abs(v[0].start - v[1].start)} ms apart), off the mark ${off.map((d) => d.toFixed(0)).join(' / ')} ms; bar at ${seekValue.toFixed(2)} s; in view: ${placement}`;
});

await step('supervisor: the seek bar moves both sides too', async () => {
  const max = Number(await supPage.getAttribute(testId('playback-seek'), 'max'));
  await supPage.evaluate((value) => {
    const bar = document.querySelector('[data-testid="playback-seek"]');
    bar.value = value;
    bar.dispatchEvent(new Event('input', { bubbles: true }));
  }, String((max * 0.3).toFixed(2)));
  const v = await waitUntil(videos, (list) => list.every((x) => !x.seeking && x.ready >= 2), (list) => `still seeking: ${JSON.stringify(list)}`);
  const origin = await supPage.evaluate(() => window.__cunneng.player.originMs);
  const want = origin + max * 0.3 * 1000;
  const off = v.map((x) => x.wall - want);
  if (off.some((d) => Math.abs(d) > 500)) throw new Error(`videos off the bar by ${off.map((d) => d.toFixed(0)).join(', ')} ms`);
  return `at 30 %: ${v.map((x) => x.t.toFixed(2)).join(' / ')} s`;
});

await step('supervisor: the paper opens in the viewer (zoom, rotate)', async () => {
  await supPage.click(testId('tab-papers'));
  await supPage.click(`${testId('review-paper')} ${testId('material-open')}`);
  await supPage.waitForSelector(`${testId('paper-viewer')}:visible`);
  await supPage.waitForFunction(() => document.querySelector('[data-testid="viewer-image"]')?.naturalWidth > 0);
  await supPage.click(testId('viewer-zoom-in'));
  await supPage.click(testId('viewer-rotate'));
  const [zoom, rotation] = await Promise.all([supPage.getAttribute(testId('viewer-image'), 'data-zoom'), supPage.getAttribute(testId('viewer-image'), 'data-rotation')]);
  if (zoom !== '1.25' || rotation !== '90') throw new Error(`zoom ${zoom}, rotation ${rotation}`);
  await supPage.screenshot({ path: join(outDir, 'review-paper.png') });
  await supPage.click(testId('viewer-close'));
  return `zoom ${zoom}, rotated ${rotation}°`;
});

await step('supervisor: 谁看过这个案件 lists the viewing', async () => {
  await supPage.click(testId('tab-access'));
  const me = await supPage.evaluate(() => window.__cunneng.state.me);
  // Reopen, so that the list includes the paper viewed just now.
  await supPage.reload({ waitUntil: 'domcontentloaded' });
  await supPage.waitForSelector('body[data-state="case"]');
  await supPage.click(testId('tab-access'));
  const entry = supPage.locator(`${testId('access-entry')}[data-action="case.opened"][data-actor-id="${me.id}"]`);
  await entry.first().waitFor({ state: 'visible' });
  await supPage.locator(`${testId('access-entry')}[data-action="paper.viewed"]`).first().waitFor({ state: 'visible' });
  await supPage.locator(`${testId('access-entry')}[data-action="recording.played"][data-actor-id="${me.id}"]`).first().waitFor({ state: 'visible' });
  const text = (await entry.first().textContent()).replace(/\s+/g, ' ');
  if (!text.includes(me.name)) throw new Error(`the entry does not name ${me.name}: ${text}`);
  await supPage.screenshot({ path: join(outDir, 'review-access-list.png') });
  return text;
});

await step('supervisor: place a legal hold with a reason, then lift it with a reason; the history shows both', async () => {
  await supPage.click(testId('tab-hold'));
  await supPage.fill(testId('hold-reason'), '群众投诉,需要复查');
  await supPage.click(testId('hold-place'));
  await supPage.waitForSelector(`${testId('hold-state')}[data-held="true"]`);
  await supPage.waitForSelector(`${testId('hold-history-entry')}[data-action="placed"]`);
  await inView(supPage, [testId('hold-lift'), testId('hold-reason')]);
  await supPage.fill(testId('hold-reason'), '复查结束,没有问题');
  await supPage.click(testId('hold-lift'));
  await supPage.waitForSelector(`${testId('hold-state')}[data-held="false"]`);
  const history = await waitUntil(
    () => supPage.$$eval(testId('hold-history-entry'), (rows) => rows.map((r) => [r.dataset.action, r.textContent])),
    (rows) => rows.length === 2,
    (rows) => `history: ${JSON.stringify(rows)}`,
  );
  if (history[0][0] !== 'placed' || !history[0][1].includes('群众投诉') || history[1][0] !== 'lifted' || !history[1][1].includes('复查结束')) {
    throw new Error(`history: ${JSON.stringify(history)}`);
  }
  await supPage.screenshot({ path: join(outDir, 'review-hold.png') });
  return history.map(([a]) => a).join(' → ');
});

await step('supervisor: the export button downloads the bundle (a tar)', async () => {
  const [download] = await Promise.all([supPage.waitForEvent('download'), supPage.click(testId('export-case'))]);
  const path = join(outDir, download.suggestedFilename());
  await download.saveAs(path);
  const bytes = readFileSync(path);
  if (bytes.length < 2048 || bytes.subarray(257, 262).toString() !== 'ustar') throw new Error(`${path}: ${bytes.length} bytes, not a tar`);
  return `${download.suggestedFilename()}: ${bytes.length} bytes`;
});

await step('supervisor: the access report lists the viewing, the hold and the export', async () => {
  await supPage.click(testId('nav-access'));
  await supPage.waitForSelector('body[data-state="access"]');
  const actions = await waitUntil(
    () => supPage.$$eval(testId('access-report-row'), (rows) => rows.map((r) => r.dataset.action)),
    (a) => ['case.opened', 'hold.placed', 'hold.lifted', 'case.exported', 'cases.searched'].every((x) => a.includes(x)),
    (a) => `actions: ${JSON.stringify(a)}`,
  );
  await supPage.screenshot({ path: join(outDir, 'review-access-report.png') });
  return `${actions.length} rows`;
});

await step('a supervisor of another town finds nothing and cannot open the case', async () => {
  await otherPage.goto(url(options['other-town-url']), { waitUntil: 'domcontentloaded' });
  await otherPage.waitForURL((u) => u.pathname === '/review');
  await otherPage.waitForSelector('body[data-state="search"]');
  await otherPage.fill(testId('review-query'), caseNo);
  await otherPage.click(testId('review-search'));
  await otherPage.waitForSelector(`${testId('review-total')}[data-total="0"]`);
  if (await otherPage.locator(testId('review-result')).count()) throw new Error('results for another town\'s case');
  await otherPage.goto(new URL(`/review?case=${caseNo}`, otherPage.url()).href, { waitUntil: 'domcontentloaded' });
  await otherPage.waitForSelector('#search-error:not([hidden])');
  const state = await otherPage.evaluate(() => document.body.dataset.state);
  if (state === 'case') throw new Error('the case page opened');
  const [status] = await api(otherPage, 'GET', `/api/review/cases/${caseNo}`);
  if (status !== 403 && status !== 404) throw new Error(`the API answered ${status}`);
  await otherPage.screenshot({ path: join(outDir, 'review-other-town.png') });
  return `page: ${await otherPage.textContent('#search-error')}; API ${status}`;
});

await step('every page came with its security headers and broke no CSP rule', () => h.checkSecurity());

await step('no uncaught JavaScript errors on any page', async () => {
  if (h.pageErrors.length) throw new Error(h.pageErrors.join(' | '));
});

await h.close();
h.log(`PASS: a supervisor found, replayed in sync, held and exported a recorded case (${((Date.now() - h.started) / 1000).toFixed(1)} s)`);
process.exit(0);
