#!/usr/bin/env node
// End-to-end in real browsers, the rest of a case's life (docs/cases-api.md):
//  1. before calling, the kiosk enters the villager (the case opens) and scans a paper whose
//     upload is broken off halfway (the connection drops on the second chunk) and resumed;
//  2. the call carries that case; the window sees the paper, decides 现场开单 with missing
//     items; the kiosk shows and prints the list; after hang-up the kiosk rates the call;
//  3. the kiosk finds the case by its number (继续办理), scans the missing paper and calls
//     again; the window decides 当场办结 with a result; the matter needs 一审一核, so the kiosk
//     sees "审核中" and the chief a case to sign off;
//  4. the chief sends it back with a reason; the approver decides again from the desk (the
//     result paper already there); the chief approves; the result reaches the kiosk's inbox,
//     which prints it;
//  5. a 放心回家 case: the approver accepts it in a call and finishes it later from the desk
//     with a result document; it reaches the inbox too;
//  6. the kiosk books a time slot (预约) and cancels it, and looks up the progress of the case.
//
//   node tests/browser/case_flows.mjs --base http://127.0.0.1:PORT --kiosk-url URL \
//        --window-url URL --chief-url URL [--out-dir DIR] [--chromium PATH] [--headed]
//
// --window-url: an approver's login link, --chief-url: the login link of a window chief of the
// same town (as `cunneng serve --demo` prints them). Prints one line per step; on failure
// prints why, saves screenshots and exits 1 (2 for bad arguments or a missing `npm ci`).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { countPrints, Harness, loginStaff, openKiosk, parseCommandLine, setAvailable, stubPrint, testId, waitUntil } from './harness.mjs';
import { makePdf, makePng } from './testpapers.mjs';

const { options, base, url, outDir, chromium } = await parseCommandLine({
  usageLine: 'node case_flows.mjs --base URL --kiosk-url URL --window-url URL --chief-url URL [--out-dir DIR] [--chromium PATH] [--headed]',
  urls: ['kiosk-url', 'window-url', 'chief-url'],
});

const h = new Harness({ outDir });
const step = (title, action) => h.step(title, action);
h.log(`base ${base.href}, screenshots on failure go to ${outDir}`);

// Papers: a big one (level-0 PNG, over 512 KiB: at least two chunks), small ones, a result.
const bigScan = join(outDir, 'big-scan.png');
writeFileSync(bigScan, makePng(640, 480, { level: 0 }));
const smallScan = join(outDir, 'supplement.png');
writeFileSync(smallScan, makePng(200, 120));
const resultPdf = join(outDir, 'building-permit.pdf');
writeFileSync(resultPdf, makePdf('permit'));
const laterResult = join(outDir, 'later-result.png');
writeFileSync(laterResult, makePng(300, 200));
const VILLAGER = { name: '李四', phone: '139-0000-5678', phone4: '5678' };

const count = (page, selector) => page.locator(selector).count();

await h.launch(chromium, { executablePath: options.chromium, headless: !options.headed });
const approver = await h.newPage('window');
const chief = await h.newPage('chief');
const kiosk = await h.newPage('kiosk');
// Printing opens no dialog in these tests: each print is counted instead.
await kiosk.addInitScript(countPrints);

let approverMe;
await step('window: the approver logs in and is available', async () => {
  approverMe = await loginStaff(approver, url(options['window-url']));
  await setAvailable(approver);
  return `${approverMe.name} at ${approverMe.window?.name}`;
});

await step('chief: logs in; the sign-off list is on the desk', async () => {
  const me = await loginStaff(chief, url(options['chief-url']));
  if (me.role !== 'chief') throw new Error(`--chief-url logs in a ${me.role}`);
  await chief.waitForSelector('#signoff-section:not([hidden])');
  return `${me.name} (${me.town?.name})`;
});

let matter;
await step('kiosk: connect and pick a matter of the approver\'s window that needs 一审一核', async () => {
  await openKiosk(kiosk, url(options['kiosk-url']));
  const matters = await kiosk.$$eval(testId('matter-option'), (nodes) => nodes.map((n) => ({ id: n.dataset.matterId, windowId: n.dataset.windowId, signoff: n.dataset.signoff, plain: n.querySelector('.matter-plain').textContent })));
  matter = matters.find((m) => m.windowId === String(approverMe.window?.id) && m.signoff === 'true');
  if (!matter) throw new Error('no matter of the approver\'s window needs sign-off');
  await kiosk.click(`${testId('matter-option')}[data-matter-id="${matter.id}"]`);
  return matter.plain;
});

let caseNo;
await step('kiosk: enter the villager before calling; the case opens', async () => {
  await kiosk.fill(testId('villager-name'), VILLAGER.name);
  await kiosk.fill(testId('villager-phone'), VILLAGER.phone);
  await kiosk.click(testId('villager-save'));
  await kiosk.waitForSelector(`${testId('villager-summary')}:visible`);
  await kiosk.waitForFunction(() => document.querySelector('[data-testid="case-number"]')?.textContent.trim());
  caseNo = (await kiosk.textContent(testId('case-number'))).trim();
  return caseNo;
});

await step('kiosk: scan a big paper; the connection drops on its second chunk; the upload resumes', async () => {
  const seen = [];
  let dropped = false;
  await kiosk.route((u) => u.pathname.includes('/uploads/'), async (route) => {
    const request = route.request();
    const offset = new URL(request.url()).searchParams.get('offset');
    seen.push(`${request.method()}${offset !== null ? ` offset=${offset}` : ''}`);
    if (request.method() === 'PUT' && Number(offset) > 0 && !dropped) {
      dropped = true;
      await route.abort('connectionreset');
      return;
    }
    await route.continue();
  });
  await kiosk.click(`${testId('checklist-item')} >> nth=0`);
  await kiosk.setInputFiles(testId('scan-upload'), bigScan);
  await kiosk.waitForSelector(`${testId('material-item')}[data-state="uploaded"]`, { timeout: 25_000 });
  await kiosk.unroute((u) => u.pathname.includes('/uploads/'));
  const resumed = seen.indexOf('GET');
  if (!dropped || resumed < 0 || !seen.slice(resumed).some((s) => s.startsWith('PUT offset=') && s !== 'PUT offset=0')) {
    throw new Error(`no drop and resume seen: ${seen.join(', ')}`);
  }
  return seen.join(', ');
});

async function callAndAnswer(label) {
  await step(`kiosk calls (${label}); the window answers`, async () => {
    await kiosk.click(`${testId('call-button')}:enabled`);
    const answer = approver.locator(`${testId('queue-item')} ${testId('answer-button')}, #ring-banner:not([hidden]) ${testId('answer-button')}`).first();
    await answer.waitFor({ state: 'visible' });
    await answer.click();
    await approver.waitForSelector('body[data-state="call"]');
    await kiosk.waitForSelector('body[data-state="call"]');
    await approver.waitForSelector(`${testId('call-case-number')}[data-case-no]:not([data-case-no=""])`);
    return `the window has case ${await approver.getAttribute(testId('call-case-number'), 'data-case-no')}`;
  });
}

async function hangUp(next = true) {
  await kiosk.click(testId('hangup-button'));
  await kiosk.waitForSelector('body[data-state="ended"]');
  await approver.waitForSelector('body[data-state="desk"]');
  if (next) {
    await kiosk.click('#ended-ok');
    await kiosk.waitForSelector('body[data-state="pick"]');
  }
}

await callAndAnswer('with the case opened ahead');

await step('window: the call carries the case; the paper scanned before the call is there', async () => {
  const windowCase = await approver.getAttribute(testId('call-case-number'), 'data-case-no');
  if (windowCase !== caseNo) throw new Error(`the window has case ${windowCase}, the kiosk opened ${caseNo}`);
  await waitUntil(() => count(approver, testId('material-item')), (n) => n === 1, (n) => `the window shows ${n} papers, expected 1`);
  const villager = (await approver.textContent('#call-villager')).trim();
  if (!villager.includes(VILLAGER.name)) throw new Error(`the window shows the villager as "${villager}"`);
  return villager;
});

await step('window: 现场开单, ticking the missing papers and writing one more', async () => {
  await approver.click(testId('outcome-missing'));
  const ticked = await approver.$$eval(`${testId('missing-item')}:checked`, (n) => n.map((i) => i.value));
  if (!ticked.length) throw new Error('no missing item is ticked by default');
  await approver.fill(testId('missing-other'), '村民小组会议记录原件');
  await approver.click(testId('outcome-confirm'));
  await approver.waitForSelector(`${testId('decision-state')}[data-status="missing"]`);
  return `ticked ${ticked.join(', ')}`;
});

await step('kiosk: the banner lists what is missing; print the list', async () => {
  await kiosk.waitForSelector(`${testId('outcome-banner')}[data-status="missing"]:visible`);
  const items = await kiosk.$$eval(`${testId('missing-list')} li`, (n) => n.map((li) => li.textContent));
  if (!items.includes('村民小组会议记录原件')) throw new Error(`missing list: ${items.join(', ')}`);
  await kiosk.click(testId('print-button'));
  await kiosk.waitForFunction(() => window.__printed > 0);
  const printed = await kiosk.$$eval(`${testId('print-sheet')} .print-missing li`, (n) => n.length);
  if (printed !== items.length) throw new Error(`the sheet lists ${printed} missing papers, the banner ${items.length}`);
  return items.join('、');
});

await step('kiosk: hang up, rate 一般, next villager', async () => {
  await hangUp(false);
  await kiosk.click(testId('rating-fair'));
  await kiosk.click(testId('rating-submit'));
  await kiosk.waitForSelector(`${testId('rating-done')}:visible`);
  await kiosk.click('#ended-ok');
  await kiosk.waitForSelector('body[data-state="pick"]');
  if (await kiosk.isVisible(testId('case-number'))) throw new Error('the old case is still shown');
});

await step('kiosk: 继续办理 by case number; the earlier paper and the missing list are there', async () => {
  await kiosk.click(testId('resume-open'));
  await kiosk.fill(testId('resume-case-no'), caseNo.toLowerCase());
  await kiosk.click(testId('resume-find'));
  await kiosk.click(testId('resume-continue'));
  await kiosk.waitForSelector('body[data-state="pick"]');
  await kiosk.waitForSelector(`${testId('case-number')}:visible`);
  if ((await kiosk.textContent(testId('case-number'))).trim() !== caseNo) throw new Error('another case was resumed');
  await kiosk.waitForSelector('#previous-missing:not([hidden])');
  await waitUntil(() => count(kiosk, `${testId('material-item')}[data-state="uploaded"]`), (n) => n === 1, (n) => `${n} papers shown, expected 1`);
  return (await kiosk.textContent('#previous-missing')).trim();
});

await step('kiosk: scan the supplement', async () => {
  await kiosk.click(`${testId('checklist-item')}[data-state="missing"] >> nth=0`);
  await kiosk.setInputFiles(testId('scan-upload'), smallScan);
  await waitUntil(() => count(kiosk, `${testId('material-item')}[data-state="uploaded"]`), (n) => n === 2, (n) => `${n} papers uploaded, expected 2`);
});

await callAndAnswer('again, on the same case');

await step('window: both papers are there; 当场办结 with a result goes to the chief first', async () => {
  if ((await approver.getAttribute(testId('call-case-number'), 'data-case-no')) !== caseNo) throw new Error('the second call has another case');
  await waitUntil(() => count(approver, testId('material-item')), (n) => n === 2, (n) => `the window shows ${n} papers, expected 2`);
  await approver.click(testId('outcome-done'));
  await approver.setInputFiles(testId('result-upload'), resultPdf);
  await approver.click(testId('outcome-confirm'));
  await approver.waitForSelector(`${testId('decision-state')}[data-status="signoff"]`);
  return (await approver.textContent(testId('decision-state'))).trim();
});

await step('kiosk: sees 审核中, not the decision', async () => {
  await kiosk.waitForSelector(`${testId('outcome-banner')}[data-status="reviewing"]:visible`);
  const text = await kiosk.textContent(testId('outcome-banner'));
  if (text.includes('building-permit.pdf')) throw new Error('the kiosk sees the result before sign-off');
  await hangUp();
});

async function openSignoff() {
  const row = chief.locator(`${testId('signoff-item')}[data-case-no="${caseNo}"]`);
  await row.waitFor({ timeout: 20_000 });
  await row.locator(testId('signoff-item-open')).click();
  await chief.waitForSelector('body[data-state="case"]');
  await chief.waitForSelector(`${testId('first-review')}:visible`);
  await waitUntil(() => count(chief, testId('material-item')), (n) => n === 2, (n) => `the chief sees ${n} papers, expected 2`);
  return (await chief.textContent(testId('first-review'))).replace(/\s+/g, ' ').trim();
}

await step('chief: the case waits for sign-off with its papers and the first review; send it back', async () => {
  const review = await openSignoff();
  if (!review.includes('当场办结')) throw new Error(`first review: ${review}`);
  await chief.click(testId('signoff-return'));
  await chief.click(testId('signoff-return-confirm'));
  await chief.waitForSelector(`${testId('return-dialog')} .error:not([hidden])`); // a reason is required
  await chief.fill(testId('return-reason'), '建房位置示意图不清楚,请核实后再报');
  await chief.click(testId('signoff-return-confirm'));
  await chief.waitForSelector('body[data-state="desk"]');
  return review.slice(0, 60);
});

await step('window: the returned case is on the desk; decide again with the result already uploaded', async () => {
  const row = approver.locator(`${testId('returned-case')}[data-case-no="${caseNo}"]`);
  await row.waitFor({ timeout: 20_000 });
  await row.locator(testId('returned-case-open')).click();
  await approver.waitForSelector('body[data-state="case"]');
  await approver.waitForSelector(`${testId('decision-state')}[data-status="returned"]`);
  await approver.click(testId('outcome-done'));
  const using = (await approver.textContent('#result-state')).trim();
  if (!using.includes('building-permit.pdf')) throw new Error(`the dialog does not offer the uploaded result: "${using}"`);
  await approver.fill(testId('outcome-note'), '已核实示意图,当场办结');
  await approver.click(testId('outcome-confirm'));
  await approver.waitForSelector(`${testId('decision-state')}[data-status="signoff"]`);
  await approver.click(testId('case-back'));
  return using;
});

await step('chief: approve; the result reaches the kiosk\'s inbox, which prints it', async () => {
  await openSignoff();
  await chief.click(testId('signoff-approve'));
  await chief.waitForSelector('body[data-state="desk"]');
  await kiosk.waitForSelector(`${testId('inbox-count')}:visible`);
  await kiosk.click(testId('inbox-button'));
  const item = kiosk.locator(`${testId('inbox-item')}[data-case-no="${caseNo}"]`);
  await item.waitFor();
  if ((await item.getAttribute('data-status')) !== 'done') throw new Error(`inbox item status ${await item.getAttribute('data-status')}`);
  await stubPrint(kiosk);
  await item.locator(testId('inbox-print')).click();
  await kiosk.waitForFunction(() => window.__printed > 0);
  await kiosk.waitForSelector(`${testId('inbox-item')}[data-case-no="${caseNo}"][data-read="true"]`);
  const sheet = await kiosk.textContent(testId('print-sheet'));
  if (!sheet.includes(caseNo) || !sheet.includes(VILLAGER.name)) throw new Error('the printed receipt lacks the case number or the villager');
  await kiosk.click('[data-view="inbox"] .back-button');
});

let laterCase;
await step('放心回家: a call on a matter without sign-off, accepted to be finished later', async () => {
  const matters = await kiosk.$$eval(testId('matter-option'), (nodes) => nodes.map((n) => ({ id: n.dataset.matterId, windowId: n.dataset.windowId, signoff: n.dataset.signoff })));
  const plain = matters.find((m) => m.windowId === String(approverMe.window?.id) && m.signoff === 'false');
  await kiosk.click(`${testId('matter-option')}[data-matter-id="${plain.id}"]`);
  await kiosk.click(`${testId('call-button')}:enabled`);
  const answer = approver.locator(`${testId('queue-item')} ${testId('answer-button')}, #ring-banner:not([hidden]) ${testId('answer-button')}`).first();
  await answer.click();
  await approver.waitForSelector(`${testId('call-case-number')}[data-case-no]:not([data-case-no=""])`);
  laterCase = await approver.getAttribute(testId('call-case-number'), 'data-case-no');
  // No decision before the villager is registered: the window says so, the kiosk is asked.
  await approver.waitForSelector(`${testId('villager-required')}:visible`);
  await approver.waitForSelector(`${testId('outcome-later')}:disabled`);
  await kiosk.waitForSelector(`${testId('villager-request')}:visible`);
  await kiosk.fill(testId('villager-name'), '王五');
  await kiosk.fill(testId('villager-phone'), '13700001111');
  await kiosk.click(testId('villager-save'));
  await approver.waitForSelector(`${testId('villager-required')}`, { state: 'hidden' });
  await approver.click(`${testId('outcome-later')}:enabled`);
  await approver.click(testId('outcome-confirm'));
  await approver.waitForSelector(`${testId('decision-state')}[data-status="later"]`);
  await kiosk.waitForSelector(`${testId('outcome-banner')}[data-status="later"]:visible`);
  await hangUp();
  return laterCase;
});

await step('window: finish the 放心回家 case from the desk with a result; the kiosk\'s inbox gets it', async () => {
  const row = approver.locator(`${testId('later-case')}[data-case-no="${laterCase}"]`);
  await row.waitFor();
  await row.locator(testId('later-case-open')).click();
  await approver.click(testId('finish-button'));
  await approver.setInputFiles(testId('result-upload'), laterResult);
  await approver.click(testId('outcome-confirm'));
  await approver.waitForSelector(`${testId('decision-state')}[data-status="done"]`);
  await approver.click(testId('case-back'));
  await kiosk.click(testId('inbox-button'));
  await kiosk.waitForSelector(`${testId('inbox-item')}[data-case-no="${laterCase}"][data-read="false"]`);
  await kiosk.click('[data-view="inbox"] .back-button');
});

await step('kiosk: book tomorrow\'s first free slot, see it listed, cancel it', async () => {
  await kiosk.click(testId('booking-open'));
  // The dates offered are working days only.
  const weekend = await kiosk.$$eval(testId('booking-date'), (nodes) => nodes.map((n) => new Date(`${n.dataset.date}T12:00:00+08:00`).getUTCDay()).filter((d) => d === 0 || d === 6));
  if (weekend.length) throw new Error('weekend dates are offered');
  await kiosk.click(`${testId('booking-date')} >> nth=1`);
  const slot = kiosk.locator(`${testId('booking-slot')}:enabled`).first();
  await slot.waitFor();
  const start = await slot.getAttribute('data-start-ms');
  await slot.click();
  await kiosk.click(testId('booking-confirm'));
  const item = kiosk.locator(testId('booking-item')).first();
  await item.waitFor();
  await kiosk.waitForSelector(`${testId('booking-slot')}[data-start-ms="${start}"]:disabled`);
  // Cancelling asks first.
  await item.locator(testId('booking-cancel')).click();
  await item.locator(testId('booking-cancel-keep')).click();
  if ((await kiosk.locator(testId('booking-item')).count()) !== 1) throw new Error('"不取消" cancelled the booking');
  await item.locator(testId('booking-cancel')).click();
  await item.locator(testId('booking-cancel-confirm')).click();
  await kiosk.waitForSelector('#booking-empty:not([hidden])');
  await kiosk.click('[data-view="booking"] .back-button');
  return new Date(Number(start)).toISOString();
});

await step('kiosk: progress lookup of the signed-off case', async () => {
  await kiosk.click(testId('progress-open'));
  await kiosk.fill(testId('progress-case'), caseNo);
  await kiosk.fill(testId('progress-phone4'), VILLAGER.phone4);
  await kiosk.click(testId('progress-submit'));
  await kiosk.waitForSelector(`${testId('progress-result')}[data-status="done"]`);
  return (await kiosk.textContent(testId('progress-result'))).replace(/\s+/g, ' ').trim();
});

await step('every page came with its security headers and broke no CSP rule', () => h.checkSecurity());

await step('no uncaught JavaScript errors on any page', async () => {
  if (h.pageErrors.length) throw new Error(h.pageErrors.join(' | '));
});

await h.close();
h.log(`PASS: upload resumed, 现场开单 and supplement, 一审一核 returned and approved, inbox, 放心回家 finished, booking, progress (${((Date.now() - h.started) / 1000).toFixed(1)} s)`);
process.exit(0);
