#!/usr/bin/env node
// A group call nobody answers, in real browsers: the town dispatcher invites a village kiosk,
// the kiosk rings, nobody answers, the invitation lapses (the server runs with a short
// `queue.group_invite_timeout_secs`) and the kiosk's prompt closes and stops ringing, with a
// plain message that the invitation lapsed; the dispatcher sees the village as 没有应答. A second
// invitation is then answered, and the kiosk stays in the call past the invitation time.
// Screenshots at 1366×768 of the ringing kiosk, the kiosk after the lapse and the dispatcher go
// to --out-dir.
//
//   node tests/browser/group_invite_expires.mjs --base http://127.0.0.1:PORT \
//        --kiosk-url URL --dispatcher-url URL --invite-secs N [--out-dir DIR] [--chromium PATH] [--headed]
//
// --kiosk-url is the kiosk's device link, --dispatcher-url a dispatcher's login link of the same
// town, as `cunneng serve --demo` prints them; --invite-secs the server's invitation timeout.

import { join } from 'node:path';

import { Harness, loginStaff, openKiosk, parseCommandLine, testId, waitUntil } from './harness.mjs';

const { options, url, outDir, chromium } = await parseCommandLine({
  usageLine: 'node group_invite_expires.mjs --base http://127.0.0.1:PORT --kiosk-url URL --dispatcher-url URL --invite-secs N [--out-dir DIR] [--chromium PATH] [--headed]',
  urls: ['kiosk-url', 'dispatcher-url', 'invite-secs'],
});
const kioskUrl = url(options['kiosk-url']);
const dispatcherUrl = url(options['dispatcher-url']);
const inviteSecs = Number(options['invite-secs']);

const h = new Harness({ outDir });
const step = (title, action) => h.step(title, action);
const SCREEN = { width: 1366, height: 768 };
const EXPIRED_TEXT = '群呼邀请已过期';

async function shot(page, name) {
  const path = join(outDir, `${name}-1366x768.png`);
  await page.screenshot({ path });
  return path;
}

/** Message types the page's Signal received, in order (recorded from now on). */
async function recordMessages(page) {
  await page.evaluate(() => {
    window.__seen = [];
    window.__cunneng.signal.on('*', (msg) => window.__seen.push(msg.type));
  });
}
const seen = (page) => page.evaluate(() => window.__seen ?? []);

const memberState = (page, villageId) => page.getAttribute(`${testId('group-member')}[data-village-id="${villageId}"]`, 'data-member-state');

h.log(`base ${options.base}, invitation timeout ${inviteSecs} s, screenshots go to ${outDir}`);
if (!(inviteSecs > 0 && inviteSecs < 20)) await h.fail(`--invite-secs must be a short timeout (1-19 s), not ${options['invite-secs']}`);

await h.launch(chromium, { executablePath: options.chromium, headless: !options.headed });
const kioskPage = await h.newPage('kiosk', { viewport: SCREEN });
const dispatcherPage = await h.newPage('dispatcher', { viewport: SCREEN });

await step('kiosk: open the device link and connect', async () => {
  await openKiosk(kioskPage, kioskUrl);
  await recordMessages(kioskPage);
  return (await kioskPage.textContent('#place')).trim();
});

const villageId = await kioskPage.evaluate(() => window.__cunneng?.me?.village?.id ?? null);

await step('dispatcher: log in with the dispatcher link and connect', async () => {
  const me = await loginStaff(dispatcherPage, dispatcherUrl, '/dispatcher');
  if (me.role !== 'dispatcher') throw new Error(`logged in as ${me.role}`);
  return `as ${me.name} of ${me.town?.name}`;
});

/** Pick the kiosk's village (it must be listed online) and start a group call. */
async function inviteVillage() {
  const box = dispatcherPage.locator(`${testId('village-checkbox')}[data-village-id="${villageId}"]`);
  await box.waitFor({ state: 'visible' });
  await waitUntil(
    () => dispatcherPage.evaluate((id) => window.__cunneng.state.villages.find((v) => v.id === id)?.online ?? false, villageId),
    Boolean,
    () => `village ${villageId} is not listed online on the dispatcher page`,
  );
  if (!(await box.isChecked())) await box.check();
  await dispatcherPage.click(`${testId('group-start-button')}:enabled`);
  await dispatcherPage.waitForSelector('body[data-state="group"]');
  await dispatcherPage.waitForSelector(`${testId('group-member')}[data-village-id="${villageId}"][data-member-state="invited"]`);
}

let rangAt = 0;

await step('dispatcher: start a group call to the kiosk\'s village; the kiosk rings', async () => {
  await inviteVillage();
  await kioskPage.waitForSelector(`${testId('incoming-call')}:visible`);
  rangAt = Date.now();
  const prompt = (await kioskPage.textContent('#incoming-from')).trim();
  const ringing = await kioskPage.evaluate(() => Boolean(window.__cunneng.state.stopRing && window.__cunneng.state.invite));
  if (!ringing) throw new Error('the prompt is shown but the kiosk is not ringing');
  const path = await shot(kioskPage, 'kiosk-ringing');
  return `"${prompt}"; ${path}`;
});

await step(`nobody answers: after ${inviteSecs} s the invitation lapses and the kiosk's prompt closes`, async () => {
  await kioskPage.waitForSelector(testId('incoming-call'), { state: 'hidden', timeout: (inviteSecs + 10) * 1000 });
  const after = (Date.now() - rangAt) / 1000;
  const types = await seen(kioskPage);
  if (!types.includes('group.invite_expired')) throw new Error(`the prompt closed, but not on group.invite_expired (messages: ${types.join(', ')})`);
  if (types.includes('group.ended')) throw new Error('the group call ended: this is not the invitation lapsing');
  if (after < inviteSecs - 1.5) throw new Error(`the prompt closed after ${after.toFixed(1)} s, before the ${inviteSecs} s invitation time`);
  const left = await kioskPage.evaluate(() => ({ ringing: window.__cunneng.state.stopRing !== null, invite: window.__cunneng.state.invite, screen: document.body.dataset.state }));
  if (left.ringing || left.invite) throw new Error(`still ringing after the lapse: ${JSON.stringify(left)}`);
  if (left.screen !== 'pick') throw new Error(`the kiosk left its screen: ${left.screen}`);
  return `closed after ${after.toFixed(1)} s`;
});

await step('kiosk: a plain message says the invitation lapsed', async () => {
  const notice = kioskPage.locator('#notice:not([hidden])');
  await notice.waitFor({ state: 'visible' });
  const text = (await notice.textContent()).trim();
  if (!text.includes(EXPIRED_TEXT)) throw new Error(`the notice says "${text}", not that the invitation lapsed`);
  const path = await shot(kioskPage, 'kiosk-invite-expired');
  return `"${text}"; ${path}`;
});

await step('dispatcher: the village is shown as 没有应答', async () => {
  await dispatcherPage.waitForSelector(`${testId('group-member')}[data-village-id="${villageId}"][data-member-state="no_answer"]`);
  const text = (await dispatcherPage.textContent(`${testId('group-member')}[data-village-id="${villageId}"] .member-state`)).trim();
  if (!/没有应答/.test(text)) throw new Error(`the member state reads "${text}"`);
  // Its only village did not answer: the page no longer says to wait.
  const hint = (await dispatcherPage.textContent('#group-empty')).trim();
  if (!hint.includes('没有村接听')) throw new Error(`the dispatcher still reads "${hint}"`);
  const path = await shot(dispatcherPage, 'dispatcher-no-answer');
  return `"${text}", "${hint}"; ${path}`;
});

await step('dispatcher: end the group call; back to the village list', async () => {
  await dispatcherPage.click(testId('hangup-button'));
  await dispatcherPage.waitForSelector('body[data-state="pick"]');
  const prompt = await kioskPage.isVisible(testId('incoming-call'));
  if (prompt) throw new Error('the kiosk shows the prompt again');
});

await step('a second invitation is answered; the kiosk joins the group call', async () => {
  await inviteVillage();
  await kioskPage.waitForSelector(`${testId('incoming-call')}:visible`);
  await kioskPage.click(testId('accept-call-button'));
  await kioskPage.waitForSelector('body[data-state="call"]');
  await dispatcherPage.waitForSelector(`${testId('group-member')}[data-village-id="${villageId}"][data-member-state="joined"]`);
  return (await kioskPage.textContent('#call-title')).trim();
});

await step(`the joined kiosk stays in the call past the ${inviteSecs} s invitation time`, async () => {
  await kioskPage.waitForTimeout((inviteSecs + 2) * 1000);
  const screen = await kioskPage.evaluate(() => document.body.dataset.state);
  const state = await memberState(dispatcherPage, villageId);
  if (screen !== 'call' || state !== 'joined') throw new Error(`kiosk screen ${screen}, member state ${state}`);
  const notice = (await kioskPage.isVisible('#notice')) ? await kioskPage.textContent('#notice') : '';
  if (notice.includes(EXPIRED_TEXT)) throw new Error(`the joined kiosk shows "${notice}"`);
});

await step('dispatcher: end the group call; the kiosk is told', async () => {
  await dispatcherPage.click(testId('hangup-button'));
  await kioskPage.waitForSelector('body[data-state="ended"]');
  return (await kioskPage.textContent('#ended-title')).trim();
});

await step('the CSP watch works: an inline script is refused and reported', () => h.cspWatchSelfTest(kioskPage));

await step('every page came with its security headers and broke no CSP rule', () => h.checkSecurity());

await step('no uncaught JavaScript errors on either page', async () => {
  if (h.pageErrors.length) throw new Error(h.pageErrors.join(' | '));
});

await h.close();
h.log(`PASS: the unanswered invitation lapsed, the kiosk stopped ringing and said so, the dispatcher saw 没有应答; a second one was answered (${((Date.now() - h.started) / 1000).toFixed(1)} s)`);
process.exit(0);
