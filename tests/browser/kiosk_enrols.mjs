#!/usr/bin/env node
// Setting up without hand-carried secrets (issue 9), in real browsers at 1366×768:
//  - a fresh kiosk page (no token) asks for the administrator's one-time code; the code typed
//    into `enrol-input` and sent with `enrol-submit` gives the device its token, and the page
//    goes on as a normal kiosk (connected, its matters listed); the token is kept where the
//    page keeps it (a reload stays enrolled); a used code is refused with a clear message;
//  - a staff member whose account has a temporary password logs in, gets the change-password
//    form, sets a new password and lands on the page of their role, connected.
// Screenshots go to --out-dir.
//
//   node tests/browser/kiosk_enrols.mjs --base http://127.0.0.1:PORT --code 12345678 \
//        --used-code 87654321 --user USERNAME --temporary-password PASSWORD \
//        [--out-dir DIR] [--chromium PATH] [--headed]

import { join } from 'node:path';

import { Harness, parseCommandLine, testId } from './harness.mjs';

const { options, url, outDir, chromium } = await parseCommandLine({
  usageLine: 'node kiosk_enrols.mjs --base http://127.0.0.1:PORT --code CODE --used-code CODE --user NAME --temporary-password PW [--out-dir DIR] [--chromium PATH] [--headed]',
  urls: ['code', 'used-code', 'user', 'temporary-password'],
});

const h = new Harness({ outDir });
const step = (title, action) => h.step(title, action);
const SCREEN = { width: 1366, height: 768 };
const NEW_PASSWORD = 'my-own-secret-42';

async function shot(page, name) {
  const path = join(outDir, `${name}-1366x768.png`);
  await page.screenshot({ path });
  return path;
}

await h.launch(chromium, { executablePath: options.chromium, headless: !options.headed });
const kiosk = await h.newPage('kiosk', { viewport: SCREEN });
const staff = await h.newPage('staff', { viewport: SCREEN });

await step('kiosk: a fresh page asks for the enrolment code', async () => {
  await kiosk.goto(url('/kiosk'), { waitUntil: 'domcontentloaded' });
  await kiosk.waitForSelector('body[data-state="enrol"]');
  await kiosk.locator(testId('enrol-input')).waitFor({ state: 'visible' });
  const text = await kiosk.textContent('#enrol-message');
  if (!text.includes('请输入管理员给出的8位开通码')) throw new Error(`the page says: ${text}`);
  const box = await kiosk.locator(testId('enrol-input')).boundingBox();
  if (!box || box.height < 56) throw new Error(`the code field is small: ${JSON.stringify(box)}`);
  return await shot(kiosk, 'kiosk-enrol');
});

await step('kiosk: a used code is refused and the page says so', async () => {
  await kiosk.fill(testId('enrol-input'), options['used-code']);
  await kiosk.click(testId('enrol-submit'));
  const error = kiosk.locator('#enrol-error:not([hidden])');
  await error.waitFor({ state: 'visible' });
  const text = (await error.textContent()).trim();
  if (!text.includes('开通码')) throw new Error(`error: ${text}`);
  if ((await kiosk.evaluate(() => document.body.dataset.state)) !== 'enrol') throw new Error('left the enrol view');
  return text;
});

await step('kiosk: the code typed as shown (4-4) enrols the device; the normal kiosk screen follows', async () => {
  const code = options.code.replace(/^(\d{4})(\d{4})$/, '$1-$2');
  await kiosk.fill(testId('enrol-input'), code);
  await kiosk.click(testId('enrol-submit'));
  await kiosk.waitForSelector(`${testId('connection-status')}[data-state="connected"]`);
  await kiosk.locator(testId('matter-option')).first().waitFor({ state: 'visible' });
  const me = await kiosk.evaluate(() => window.__cunneng?.me);
  if (me?.kind !== 'kiosk') throw new Error(`connected as ${JSON.stringify(me)}`);
  const stored = await kiosk.evaluate(() => localStorage.getItem('cunneng.kiosk_token'));
  if (!stored || stored.length < 32) throw new Error('no device token stored');
  if (kiosk.url().includes('#')) throw new Error(`the address keeps a fragment: ${kiosk.url()}`);
  return `${(await kiosk.textContent('#place')).trim()}; ${await shot(kiosk, 'kiosk-enrolled')}`;
});

await step('kiosk: a reload stays enrolled', async () => {
  await kiosk.reload({ waitUntil: 'domcontentloaded' });
  await kiosk.waitForSelector(`${testId('connection-status')}[data-state="connected"]`);
  await kiosk.locator(testId('matter-option')).first().waitFor({ state: 'visible' });
  return 'connected again';
});

await step('staff: the temporary password leads to the change-password form', async () => {
  await staff.goto(url('/login'), { waitUntil: 'domcontentloaded' });
  await staff.fill(testId('login-username'), options.user);
  await staff.fill(testId('login-password'), options['temporary-password']);
  await staff.click(testId('login-button'));
  await staff.locator(testId('change-new')).waitFor({ state: 'visible' });
  if (await staff.locator('#login-form').isVisible()) throw new Error('the login form is still shown');
  return await shot(staff, 'staff-change-password');
});

await step('staff: two different entries are refused before anything is sent', async () => {
  await staff.fill(testId('change-new'), NEW_PASSWORD);
  await staff.fill(testId('change-again'), `${NEW_PASSWORD}x`);
  await staff.click(testId('change-button'));
  const error = staff.locator('#change-error:not([hidden])');
  await error.waitFor({ state: 'visible' });
  return (await error.textContent()).trim();
});

await step('staff: the new password is saved and the page of the role follows, connected', async () => {
  await staff.fill(testId('change-again'), NEW_PASSWORD);
  await staff.click(testId('change-button'));
  await staff.waitForURL((u) => u.pathname === '/window');
  await staff.waitForSelector(`${testId('connection-status')}[data-state="connected"]`);
  const me = await staff.evaluate(() => window.__cunneng?.me);
  if (me?.role !== 'approver') throw new Error(`connected as ${JSON.stringify(me)}`);
  return `${me.name}; ${await shot(staff, 'staff-window')}`;
});

await step('staff: the new password logs in without the form', async () => {
  const answer = await staff.evaluate(async ([user, password]) => {
    const response = await fetch('/api/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: user, password }),
    });
    return { status: response.status, body: await response.json() };
  }, [options.user, NEW_PASSWORD]);
  if (answer.status !== 200 || answer.body.must_change_password !== false) throw new Error(JSON.stringify(answer));
  return 'must_change_password: false';
});

await step('every page came with its security headers and broke no CSP rule', () => h.checkSecurity());

await step('no uncaught JavaScript errors on either page', async () => {
  if (h.pageErrors.length) throw new Error(h.pageErrors.join(' | '));
});

await h.close();
h.log(`PASS: the kiosk enrolled with its code and the staff member changed the temporary password (${((Date.now() - h.started) / 1000).toFixed(1)} s)`);
process.exit(0);
