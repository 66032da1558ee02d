#!/usr/bin/env node
// Two small traps of a group call (issue 15, point 10), in real browsers at 1366×768:
//  - a kiosk queued for the town window that is invited to a group call is warned before it
//    accepts that accepting gives up its place in the queue; declining keeps the place;
//  - the dispatcher can invite a village that declined again (再呼叫这个村), and the kiosk that
//    accepts then joins the group call (its queued call given up first, so the server takes
//    the acceptance) without an error.
// Screenshots go to --out-dir.
//
//   node tests/browser/group_invite_while_queued.mjs --base http://127.0.0.1:PORT \
//        --kiosk-url URL --dispatcher-url URL [--out-dir DIR] [--chromium PATH] [--headed]

import { join } from 'node:path';

import { Harness, loginStaff, openKiosk, parseCommandLine, testId, waitUntil } from './harness.mjs';

const { options, url, outDir, chromium } = await parseCommandLine({
  usageLine: 'node group_invite_while_queued.mjs --base http://127.0.0.1:PORT --kiosk-url URL --dispatcher-url URL [--out-dir DIR] [--chromium PATH] [--headed]',
  urls: ['kiosk-url', 'dispatcher-url'],
});

const h = new Harness({ outDir });
const step = (title, action) => h.step(title, action);
const SCREEN = { width: 1366, height: 768 };

async function shot(page, name) {
  const path = join(outDir, `${name}-1366x768.png`);
  await page.screenshot({ path });
  return path;
}

/** Every server message the kiosk page receives from now on: {type, code?, req?}. */
async function recordMessages(page) {
  await page.evaluate(() => {
    window.__seen = [];
    window.__cunneng.signal.on('*', (msg) => window.__seen.push({ type: msg.type, code: msg.code ?? null }));
  });
}
const seen = (page) => page.evaluate(() => window.__seen ?? []);

await h.launch(chromium, { executablePath: options.chromium, headless: !options.headed });
const kiosk = await h.newPage('kiosk', { viewport: SCREEN });
const dispatcher = await h.newPage('dispatcher', { viewport: SCREEN });

await step('kiosk: open the device link and connect', async () => {
  await openKiosk(kiosk, url(options['kiosk-url']));
  await recordMessages(kiosk);
  return (await kiosk.textContent('#place')).trim();
});
const villageId = await kiosk.evaluate(() => window.__cunneng?.me?.village?.id ?? null);
const member = `${testId('group-member')}[data-village-id="${villageId}"]`;

await step('dispatcher: log in and connect', async () => {
  const me = await loginStaff(dispatcher, url(options['dispatcher-url']), '/dispatcher');
  if (me.role !== 'dispatcher') throw new Error(`logged in as ${me.role}`);
  return me.name;
});

await step('kiosk: calls the town window and waits in its queue', async () => {
  await kiosk.click(`${testId('matter-option')} >> nth=0`);
  await kiosk.click(`${testId('call-button')}:enabled`);
  await kiosk.waitForSelector('body[data-state="waiting"]');
  await kiosk.waitForSelector(`${testId('queue-position')}[data-position]`);
  return (await kiosk.textContent(testId('queue-position'))).trim();
});

await step('dispatcher: invites the kiosk\'s village; the queued kiosk is warned before accepting', async () => {
  const box = dispatcher.locator(`${testId('village-checkbox')}[data-village-id="${villageId}"]`);
  await box.waitFor({ state: 'visible' });
  await waitUntil(
    () => dispatcher.evaluate((id) => window.__cunneng.state.villages.find((v) => v.id === id)?.online ?? false, villageId),
    Boolean,
    () => `village ${villageId} is not listed online`,
  );
  if (!(await box.isChecked())) await box.check();
  await dispatcher.click(`${testId('group-start-button')}:enabled`);
  await dispatcher.waitForSelector(`${member}[data-member-state="invited"]`);
  await kiosk.waitForSelector(`${testId('incoming-call')}:visible`);
  await kiosk.waitForSelector(`${testId('invite-queue-warning')}:visible`);
  const warning = (await kiosk.textContent(testId('invite-queue-warning'))).trim();
  const accept = (await kiosk.textContent(testId('accept-call-button'))).trim();
  if (!warning.includes('放弃') || !accept.includes('放弃排队')) throw new Error(`warning "${warning}", accept button "${accept}"`);
  return `"${warning}" / "${accept}"; ${await shot(kiosk, 'kiosk-invited-while-queued')}`;
});

await step('kiosk: declines; it keeps its place in the queue', async () => {
  await kiosk.click(testId('decline-call-button'));
  await kiosk.waitForSelector(testId('incoming-call'), { state: 'hidden' });
  const screen = await kiosk.evaluate(() => document.body.dataset.state);
  if (screen !== 'waiting') throw new Error(`the kiosk left the queue screen: ${screen}`);
  await kiosk.waitForSelector(`${testId('queue-position')}[data-position]`);
  const callId = await kiosk.evaluate(() => window.__cunneng.state.callId);
  if (callId === null) throw new Error('the kiosk forgot its queued call');
  return `still queued (call ${callId})`;
});

await step('dispatcher: the village declined; 再呼叫这个村 is offered', async () => {
  await dispatcher.waitForSelector(`${member}[data-member-state="declined"]`);
  const again = dispatcher.locator(`${member} ${testId('group-reinvite')}`);
  await again.waitFor({ state: 'visible' });
  return `${(await again.textContent()).trim()}; ${await shot(dispatcher, 'dispatcher-declined')}`;
});

await step('dispatcher: invites the village again; the kiosk rings again, warned again', async () => {
  await dispatcher.click(`${member} ${testId('group-reinvite')}`);
  await dispatcher.waitForSelector(`${member}[data-member-state="invited"]`);
  await kiosk.waitForSelector(`${testId('incoming-call')}:visible`);
  await kiosk.waitForSelector(`${testId('invite-queue-warning')}:visible`);
  const invites = (await seen(kiosk)).filter((m) => m.type === 'group.invite').length;
  if (invites !== 2) throw new Error(`the kiosk got ${invites} invitations`);
  return shot(kiosk, 'kiosk-invited-again');
});

await step('kiosk: accepts; its queued call is given up and it joins the group call without an error', async () => {
  const before = (await seen(kiosk)).length;
  await kiosk.click(testId('accept-call-button'));
  await kiosk.waitForSelector('body[data-state="call"]');
  await dispatcher.waitForSelector(`${member}[data-member-state="joined"]`);
  const after = (await seen(kiosk)).slice(before);
  if (!after.some((m) => m.type === 'group.joined')) throw new Error(`no group.joined: ${JSON.stringify(after)}`);
  const errors = after.filter((m) => m.type === 'error');
  if (errors.length) throw new Error(`the server refused: ${JSON.stringify(errors)}`);
  const callId = await kiosk.evaluate(() => window.__cunneng.state.callId);
  if (callId !== null) throw new Error(`the kiosk still holds its queued call ${callId}`);
  return `${after.map((m) => m.type).join(', ')}; ${await shot(kiosk, 'kiosk-in-group-call')}`;
});

await step('dispatcher: ends the group call; the kiosk is not back in the queue', async () => {
  await dispatcher.click(testId('hangup-button'));
  await kiosk.waitForSelector('body[data-state="ended"]');
  const queued = (await seen(kiosk)).filter((m) => m.type === 'queue.position').length;
  const screen = await kiosk.evaluate(() => document.body.dataset.state);
  return `${screen}; ${queued} queue.position messages in all`;
});

await step('every page came with its security headers and broke no CSP rule', () => h.checkSecurity());

await step('no uncaught JavaScript errors on either page', async () => {
  if (h.pageErrors.length) throw new Error(h.pageErrors.join(' | '));
});

await h.close();
h.log(`PASS: the queued kiosk was warned, kept its place on declining, was invited again and joined (${((Date.now() - h.started) / 1000).toFixed(1)} s)`);
process.exit(0);
