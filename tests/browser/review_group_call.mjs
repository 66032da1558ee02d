#!/usr/bin/env node
// A supervisor replays a group call (一对多) on /review:
// 1. the town dispatcher calls two villages of the town; the first kiosk answers at once, the
//    second a few seconds later; the dispatcher ends the call after a while;
// 2. the supervisor logs in, opens 群组通话, finds the call (the total shown) and opens it: the
//    dispatcher and both villages are in the player, named;
// 3. one play button plays the three sides, aligned on the wall clock (within 0.5 s); the
//    second village's join mark on the seek bar puts every side there;
// 4. the access report lists the listing, the opening and the playing;
// 5. a supervisor limited to another town lists no group call and cannot open this one.
// Screenshots at 1366×768; the key controls must be inside the viewport and not covered.
//
//   node tests/browser/review_group_call.mjs --base http://127.0.0.1:PORT --kiosk-url URL \
//        --second-kiosk-url URL --dispatcher-url URL --supervisor-url URL --other-town-url URL \
//        [--out-dir DIR] [--chromium PATH] [--headed]

import { join } from 'node:path';

import { Harness, inView, loginStaff, openKiosk, parseCommandLine, playbackVideos, testId, waitUntil } from './harness.mjs';

const { options, url, outDir, chromium } = await parseCommandLine({
  usageLine: 'node review_group_call.mjs --base http://127.0.0.1:PORT --kiosk-url URL --second-kiosk-url URL --dispatcher-url URL --supervisor-url URL --other-town-url URL [--out-dir DIR] [--chromium PATH] [--headed]',
  urls: ['kiosk-url', 'second-kiosk-url', 'dispatcher-url', 'supervisor-url', 'other-town-url'],
});
const CALL_SECS = 12;
const LATER_SECS = 4;
const VIEWPORT = { width: 1366, height: 768 };

const h = new Harness({ outDir });
const step = (title, action) => h.step(title, action);

await h.launch(chromium, { executablePath: options.chromium, headless: !options.headed });
const dispatcherPage = await h.newPage('dispatcher', { viewport: VIEWPORT });
const firstPage = await h.newPage('kiosk-1');
const secondPage = await h.newPage('kiosk-2');
const supPage = await h.newPage('supervisor', { viewport: VIEWPORT });
const otherPage = await h.newPage('other-town', { viewport: VIEWPORT });

const villageOf = (page) => page.evaluate(() => window.__cunneng?.me?.village?.id ?? null);

let villages = [];
await step('both kiosks open their device links; the dispatcher logs in', async () => {
  await openKiosk(firstPage, url(options['kiosk-url']));
  await openKiosk(secondPage, url(options['second-kiosk-url']));
  villages = [await villageOf(firstPage), await villageOf(secondPage)];
  if (villages.some((v) => v === null) || villages[0] === villages[1]) throw new Error(`villages ${JSON.stringify(villages)}`);
  const me = await loginStaff(dispatcherPage, url(options['dispatcher-url']), '/dispatcher');
  if (me.role !== 'dispatcher') throw new Error(`logged in as ${me.role}`);
  return `villages ${villages.join(', ')}; dispatcher ${me.name}`;
});

let callStarted = 0;
let secondJoined = 0;
await step('dispatcher: call both villages; the first answers at once, the second later', async () => {
  for (const id of villages) {
    const box = dispatcherPage.locator(`${testId('village-checkbox')}[data-village-id="${id}"]`);
    await box.waitFor({ state: 'visible' });
    await waitUntil(
      () => dispatcherPage.evaluate((v) => window.__cunneng.state.villages.find((x) => x.id === v)?.online ?? false, id),
      Boolean,
      () => `village ${id} is not listed online on the dispatcher page`,
    );
    if (!(await box.isChecked())) await box.check();
  }
  await dispatcherPage.click(`${testId('group-start-button')}:enabled`);
  await dispatcherPage.waitForSelector('body[data-state="group"]');
  await firstPage.waitForSelector(`${testId('incoming-call')}:visible`);
  await firstPage.click(testId('accept-call-button'));
  await firstPage.waitForSelector('body[data-state="call"]');
  callStarted = Date.now();
  await secondPage.waitForSelector(`${testId('incoming-call')}:visible`);
  await new Promise((resolve) => setTimeout(resolve, LATER_SECS * 1000));
  await secondPage.click(testId('accept-call-button'));
  await secondPage.waitForSelector('body[data-state="call"]');
  secondJoined = Date.now();
  for (const id of villages) await dispatcherPage.waitForSelector(`${testId('group-member')}[data-village-id="${id}"][data-member-state="joined"]`);
  return `second joined ${((secondJoined - callStarted) / 1000).toFixed(1)} s after the first`;
});

await step(`the call goes on to ${CALL_SECS} s; the dispatcher ends it`, async () => {
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, CALL_SECS * 1000 - (Date.now() - callStarted))));
  await dispatcherPage.click(testId('hangup-button'));
  await firstPage.waitForSelector('body[data-state="ended"]');
  await secondPage.waitForSelector('body[data-state="ended"]');
});

/** fetch in `page` with its staff token: [status, JSON body or null]. */
const api = (page, path) => page.evaluate(async (p) => {
  const token = localStorage.getItem('cunneng.staff_token');
  const r = await fetch(p, { headers: { Authorization: `Bearer ${token}` }, credentials: 'same-origin' });
  return [r.status, await r.json().catch(() => null)];
}, path);

let callId = '';
await step('supervisor: log in; the three recordings of the group call are complete', async () => {
  await supPage.goto(url(options['supervisor-url']), { waitUntil: 'domcontentloaded' });
  await supPage.waitForURL((u) => u.pathname === '/review');
  await supPage.waitForSelector('body[data-state="search"]');
  const review = await waitUntil(
    async () => {
      const [, page] = await api(supPage, '/api/review/group-calls');
      const id = page?.items?.[0]?.id;
      if (!id) return null;
      const [, one] = await api(supPage, `/api/review/group-calls/${id}`);
      return one;
    },
    (r) => r && r.recordings.length === 3 && r.recordings.every((x) => x.status === 'complete'),
    (r) => `group call: ${JSON.stringify(r)}`,
  );
  callId = review.call.id;
  return `${callId}: ${review.recordings.map((r) => `${r.participant} ${r.segments.length} segments`).join(', ')}`;
});

await step('supervisor: 群组通话 lists the call with its host and villages', async () => {
  await supPage.click(testId('nav-groups'));
  await supPage.waitForSelector('body[data-state="groups"]');
  await supPage.waitForURL((u) => u.searchParams.get('view') === 'groups');
  const row = `${testId('group-call-row')}[data-group-call="${callId}"]`;
  await supPage.waitForSelector(row);
  const total = await supPage.getAttribute(testId('groups-total'), 'data-total');
  if (total !== '1') throw new Error(`total ${total}`);
  const text = (await supPage.textContent(row)).replace(/\s+/g, ' ').trim();
  if (!/3 方/.test(text)) throw new Error(`the row reads "${text}"`);
  await supPage.screenshot({ path: join(outDir, 'review-group-calls.png') });
  const placed = await inView(supPage, [testId('nav-groups'), testId('groups-search'), `${row} ${testId('group-call-open')}`]);
  return `"${text}"; in view: ${placed}`;
});

const videos = () => playbackVideos(supPage);
const spread = (list) => Math.max(...list.map((x) => x.wall)) - Math.min(...list.map((x) => x.wall));

await step('supervisor: open it; the dispatcher and both villages are in the player, named', async () => {
  await supPage.click(`${testId('group-call-row')}[data-group-call="${callId}"] ${testId('group-call-open')}`);
  await supPage.waitForSelector('body[data-state="group"]');
  await supPage.waitForURL((u) => u.searchParams.get('group') === callId);
  const v = await waitUntil(videos, (list) => list.length === 3 && list.every((x) => x.ready >= 2 && x.width > 0), (list) => `videos: ${JSON.stringify(list)}`);
  const sides = v.map((x) => x.side).sort().join(',');
  if (sides !== 'town,village,village') throw new Error(`sides ${sides}`);
  const members = await supPage.$$eval(testId('group-member'), (els) => els.map((e) => e.textContent.replace(/\s+/g, ' ').trim()));
  if (members.length !== 3 || members.some((m) => !m)) throw new Error(`members ${JSON.stringify(members)}`);
  return `${members.join(' | ')}; ${v.map((x) => `${x.side} ${x.duration.toFixed(1)} s`).join(', ')}`;
});

await step('supervisor: one play button plays all three; they stay aligned', async () => {
  await supPage.click(testId('playback-play'));
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const v = await videos();
  // The second village joined later: before its start its video waits at 0.
  const playing = v.filter((x) => !x.paused && x.t > 0.5);
  if (playing.length < 2) throw new Error(`not playing: ${JSON.stringify(v)}`);
  const apart = spread(playing);
  if (apart > 500) throw new Error(`the sides are ${apart.toFixed(0)} ms apart while playing`);
  await supPage.click(testId('playback-play'));
  await waitUntil(videos, (list) => list.every((x) => x.paused), (list) => `still playing: ${JSON.stringify(list)}`);
  return `${playing.length} played to ${playing.map((x) => x.t.toFixed(2)).join(' / ')} s, ${apart.toFixed(0)} ms apart on the wall clock`;
});

await step('supervisor: the second village\'s join mark puts every side there', async () => {
  await supPage.screenshot({ path: join(outDir, 'review-group-call.png') });
  // A mark where each village joined (both joined after the dispatcher opened the room).
  const marks = supPage.locator(`${testId('timeline-event')}[data-kind="group.joined"]`);
  const at = (await marks.evaluateAll((els) => els.map((e) => Number(e.dataset.atMs)))).sort((a, b) => a - b);
  if (at.length !== 2 || at[1] - at[0] < (LATER_SECS - 1) * 1000) throw new Error(`join marks at ${JSON.stringify(at)}`);
  const markMs = at[1];
  const mark = supPage.locator(`${testId('timeline-event')}[data-kind="group.joined"][data-at-ms="${markMs}"]`);
  const placed = await inView(supPage, [testId('playback-play'), testId('playback-seek'), `${testId('timeline-event')}[data-kind="group.joined"][data-at-ms="${markMs}"]`, testId('group-back'), testId('group-members')]);
  await mark.click();
  const v = await waitUntil(
    async () => [await videos(), await supPage.evaluate(() => document.querySelector('[data-testid="playback"]')?.dataset.seeking ?? '')],
    ([list, seeking]) => !seeking && list.every((x) => !x.seeking && x.ready >= 2),
    ([list]) => `still seeking: ${JSON.stringify(list)}`,
  ).then(([list]) => list);
  const off = v.map((x) => x.wall - markMs);
  if (off.some((d) => Math.abs(d) > 500)) throw new Error(`videos off the mark by ${off.map((d) => d.toFixed(0)).join(', ')} ms`);
  await supPage.screenshot({ path: join(outDir, 'review-group-call-at-join.png') });
  return `mark ${((markMs - Math.min(...v.map((x) => x.start))) / 1000).toFixed(2)} s in; off ${off.map((d) => d.toFixed(0)).join(' / ')} ms; in view: ${placed}`;
});

await step('supervisor: the access report lists the listing, the opening and the playing', async () => {
  await supPage.click(testId('nav-access'));
  await supPage.waitForSelector('body[data-state="access"]');
  const rows = await waitUntil(
    () => supPage.$$eval(testId('access-report-row'), (els) => els.map((r) => [r.dataset.action, r.textContent])),
    (a) => ['group_calls.listed', 'group_call.opened', 'recording.played'].every((x) => a.some(([action]) => action === x)),
    (a) => `actions: ${JSON.stringify(a.map(([x]) => x))}`,
  );
  const opened = rows.find(([a]) => a === 'group_call.opened')[1].replace(/\s+/g, ' ').trim();
  if (!opened.includes('群组通话')) throw new Error(`the opening reads "${opened}"`);
  await supPage.screenshot({ path: join(outDir, 'review-group-access.png') });
  return `${rows.length} rows; "${opened}"`;
});

await step('a supervisor of another town lists no group call and cannot open this one', async () => {
  await otherPage.goto(url(options['other-town-url']), { waitUntil: 'domcontentloaded' });
  await otherPage.waitForURL((u) => u.pathname === '/review');
  await otherPage.waitForSelector('body[data-state="search"]');
  await otherPage.click(testId('nav-groups'));
  await otherPage.waitForSelector(`${testId('groups-total')}[data-total="0"]`);
  await otherPage.goto(new URL(`/review?group=${callId}`, otherPage.url()).href, { waitUntil: 'domcontentloaded' });
  await otherPage.waitForSelector('#groups-error[data-code="404"]:not([hidden])');
  const state = await otherPage.evaluate(() => document.body.dataset.state);
  if (state === 'group') throw new Error('the group call opened');
  await otherPage.screenshot({ path: join(outDir, 'review-group-other-town.png') });
  return (await otherPage.textContent('#groups-error')).trim();
});

await step('every page came with its security headers and broke no CSP rule', () => h.checkSecurity());

await step('no uncaught JavaScript errors on any page', async () => {
  if (h.pageErrors.length) throw new Error(h.pageErrors.join(' | '));
});

await h.close();
h.log(`PASS: a supervisor found and replayed a group call in sync; another town's could not (${((Date.now() - h.started) / 1000).toFixed(1)} s)`);
process.exit(0);
