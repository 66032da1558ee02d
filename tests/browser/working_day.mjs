#!/usr/bin/env node
// A clerk's and an approver's working day without dead ends (issue 15), at 1366×768, one step
// (or a few) per point of the issue:
//  clerk's path: from the kiosk's start to a ringing town window with 3 papers from the
//     scanner in at most 8 clicks plus typing (clicks only on what is in view: no scrolling);
//     the 一审一核 hint is shown before calling; several files from one dialog fill the
//     checklist in order; the call button stays in view.
//  1. the search uses the catalog's keywords, ranked, without loose character noise;
//  2. the re-scan dialog opens above the paper viewer;
//  3. no decision without the villager: the window says so, the kiosk is asked in the call;
//  4. the camera dialog fits at 1366×768 and at 1280×900, its buttons in view;
//  5. a 现场开单 decided after the call lands in the kiosk's inbox, printable with its list;
//  6. the ring banner and its answer button on the window's case screen;
//  7. a reload of the kiosk brings back the case being prepared (matter, papers) and, mid-queue,
//     the matter line and the scan panel;
//  8. the window's undecided calls come from the server (a reload keeps them);
//  9. words: 放心回家 does not say 材料齐全 with papers missing; the queue says nobody is at the
//     window instead of 不到 1 分钟;
// 10. switching matter asks about the open case; the outcome banner is in view however far the
//     page is scrolled; the chief's page has no presence switch and no call queue; the
//     supplementary scan after 继续办理 is tagged with the first missing paper.
//
//   node tests/browser/working_day.mjs --base http://127.0.0.1:PORT --kiosk-url URL \
//        --window-url URL --chief-url URL [--out-dir DIR] [--chromium PATH] [--headed]

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { countPrints, Harness, loginStaff, openKiosk, parseCommandLine, setAvailable, testId, waitUntil } from './harness.mjs';
import { makePng } from './testpapers.mjs';

const { options, base, url, outDir, chromium } = await parseCommandLine({
  usageLine: 'node working_day.mjs --base URL --kiosk-url URL --window-url URL --chief-url URL [--out-dir DIR] [--chromium PATH] [--headed]',
  urls: ['kiosk-url', 'window-url', 'chief-url'],
});

const SCREEN = { width: 1366, height: 768 };
const CLICK_GOAL = 8;
const h = new Harness({ outDir, overallTimeoutMs: 8 * 60_000 });
const step = (title, action) => h.step(title, action);
h.log(`base ${base.href}, screenshots go to ${outDir}`);

const scans = [1, 2, 3].map((n) => {
  const path = join(outDir, `scan-${n}.png`);
  writeFileSync(path, makePng(240 + n * 10, 160));
  return path;
});

async function shot(page, name) {
  const path = join(outDir, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/** The element's box is wholly on screen (nothing below the fold, no scroll needed). */
async function inView(page, locator, what) {
  await locator.waitFor({ state: 'visible' });
  let box = null;
  // Wait for smooth scrolling and layout to settle: the same box for half a second.
  let same = 0;
  let last = null;
  for (let i = 0; i < 40 && same < 4; i++) {
    await new Promise((resolve) => setTimeout(resolve, 120));
    box = await locator.boundingBox();
    same = last && box && last.x === box.x && last.y === box.y && last.height === box.height ? same + 1 : 0;
    last = box;
  }
  const vp = page.viewportSize();
  const fail = async (why) => {
    const path = await shot(page, `not-in-view-${what.replace(/[^\w]+/g, '_')}`);
    throw new Error(`${what} ${why} at ${vp.width}×${vp.height}: ${JSON.stringify(box)}; ${path}`);
  };
  if (!box || box.y < 0 || box.x < 0 || box.y + box.height > vp.height || box.x + box.width > vp.width) {
    await fail('is not wholly in view');
  }
  // And nothing lies over its middle.
  const hit = await locator.evaluate((node) => {
    const r = node.getBoundingClientRect();
    const top = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
    return top === node || node.contains(top) || (node.tagName === 'LABEL' && top?.closest('label') === node);
  });
  if (!hit) await fail('is covered by something else');
  return box;
}

await h.launch(chromium, { executablePath: options.chromium, headless: !options.headed });
const approver = await h.newPage('window', { viewport: SCREEN });
const chief = await h.newPage('chief', { viewport: SCREEN });
const kiosk = await h.newPage('kiosk', { viewport: SCREEN });
await kiosk.addInitScript(countPrints);

let approverMe;
await step('window: the approver logs in and is available', async () => {
  approverMe = await loginStaff(approver, url(options['window-url']));
  await setAvailable(approver);
  return `${approverMe.name} at ${approverMe.window?.name}`;
});

await step('10. chief: no presence switch and no call queue on the chief\'s page', async () => {
  const me = await loginStaff(chief, url(options['chief-url']));
  if (me.role !== 'chief') throw new Error(`--chief-url logs in a ${me.role}`);
  await chief.waitForSelector('#signoff-section:not([hidden])');
  for (const selector of [testId('presence-toggle'), '.queue-section']) {
    if (await chief.locator(selector).isVisible()) throw new Error(`the chief sees ${selector}`);
  }
  return shot(chief, 'chief-desk');
});

await step('kiosk: opens', () => openKiosk(kiosk, url(options['kiosk-url'])));

// ---- 1. the search ----------------------------------------------------------------------------

/** Type into the search box and wait for the server's answer to be shown. */
async function search(words) {
  await kiosk.fill(testId('matter-search'), words);
  await kiosk.waitForSelector(`#matter-count[data-query="${words}"]`);
  return kiosk.$$eval(`${testId('matter-option')}:visible`, (nodes) => nodes.map((n) => n.querySelector('.matter-plain').textContent.trim()));
}

await step('1. the search finds by the catalog\'s keywords, best first, without noise', async () => {
  const total = await kiosk.locator(testId('matter-option')).count();
  const seen = [];
  for (const words of ['宅基地', '五保', '80岁', '交钱', '住院']) {
    const found = await search(words);
    if (found.length === 0 || found.length >= total) throw new Error(`${words} finds ${found.length} of ${total}: ${found.join(', ')}`);
    seen.push(`${words} → ${found.join('/')}`);
  }
  const card = await search('补卡');
  if (card.some((n) => n.includes('种粮'))) throw new Error(`补卡 lists ${card.join(', ')}`);
  const house = await search('修房子');
  if (house.length < 2 || !house[0].includes('修房子')) throw new Error(`修房子 finds ${house.join(', ')}`);
  seen.push(`修房子 → ${house.join('/')}`);
  await kiosk.fill(testId('matter-search'), '');
  await kiosk.waitForSelector('#matter-count[data-query=""]');
  return seen.join('; ');
});

// ---- the clerk's path, counted ------------------------------------------------------------------

let clicks = 0;
/** A click the clerk makes: on something in view (no scrolling), counted. */
async function clerkClick(locator, what) {
  const box = await inView(kiosk, locator, what);
  clicks += 1;
  await kiosk.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
}

let pathMatter;
let caseNo;
await step(`clerk's path: matter, villager, 3 scanned files, call: at most ${CLICK_GOAL} clicks, nothing out of view`, async () => {
  const options_ = await kiosk.$$eval(testId('matter-option'), (nodes) => nodes.map((n) => ({ id: n.dataset.matterId, windowId: n.dataset.windowId, signoff: n.dataset.signoff, plain: n.querySelector('.matter-plain').textContent.trim() })));
  pathMatter = options_.find((m) => m.windowId === String(approverMe.window?.id) && m.signoff === 'true');
  if (!pathMatter) throw new Error('no matter with 一审一核 at the approver\'s window');
  await search(pathMatter.plain);
  await clerkClick(kiosk.locator(`${testId('matter-option')}[data-matter-id="${pathMatter.id}"]`), 'the matter');
  // Told before calling: 一审一核, and the result comes to the inbox.
  await inView(kiosk, kiosk.locator(testId('signoff-hint')), 'the 一审一核 hint');
  await clerkClick(kiosk.locator(testId('villager-name')), 'the name field');
  await kiosk.keyboard.type('赵六');
  await kiosk.keyboard.press('Tab');
  await kiosk.keyboard.type('13600002222');
  await clerkClick(kiosk.locator(testId('villager-save')), '保存办事人');
  await kiosk.waitForSelector(`${testId('villager-summary')}:visible`);
  // One file dialog, three files: they fill the checklist in order.
  const chooser = kiosk.waitForEvent('filechooser');
  await clerkClick(kiosk.locator('label[for="scan-upload"]'), '从扫描仪选文件');
  await (await chooser).setFiles(scans);
  await waitUntil(() => kiosk.locator(`${testId('material-item')}[data-state="uploaded"]`).count(), (n) => n === 3, (n) => `${n} of 3 papers uploaded`);
  const tags = await kiosk.$$eval(`${testId('material-item')}`, (nodes) => nodes.map((n) => n.dataset.checklistItem));
  const items = await kiosk.$$eval(testId('checklist-item'), (nodes) => nodes.map((n) => n.dataset.item));
  if (tags.join('|') !== items.slice(0, 3).join('|')) throw new Error(`the files were tagged ${tags.join(', ')}; the checklist is ${items.join(', ')}`);
  caseNo = (await kiosk.getAttribute(testId('case-number'), 'data-case-no')) ?? '';
  await clerkClick(kiosk.locator(`${testId('call-button')}:enabled`), '呼叫镇窗口');
  await approver.waitForSelector(`#ring-banner:not([hidden]) ${testId('answer-button')}`);
  const path = await shot(kiosk, 'kiosk-called');
  if (clicks > CLICK_GOAL) throw new Error(`the clerk needed ${clicks} clicks (goal: ${CLICK_GOAL})`);
  return `${clicks} clicks to a ringing window (case ${caseNo}, papers ${tags.join(', ')}); ${path}`;
});

await step('window: answers from the ring banner; the three papers are there', async () => {
  await approver.click(`#ring-banner:not([hidden]) ${testId('answer-button')}`);
  await approver.waitForSelector('body[data-state="call"]');
  await kiosk.waitForSelector('body[data-state="call"]');
  await waitUntil(() => approver.locator(testId('material-item')).count(), (n) => n === 3, (n) => `the window shows ${n} papers`);
  return approver.getAttribute(testId('call-case-number'), 'data-case-no');
});

// ---- 2. re-scan from the viewer -----------------------------------------------------------------

await step('2. the re-scan dialog opens above the paper viewer', async () => {
  await approver.click(`${testId('material-item')} >> nth=0 >> ${testId('material-open')}`);
  await approver.waitForSelector(`${testId('paper-viewer')}:visible`);
  await approver.click(testId('viewer-rescan'));
  await approver.waitForSelector(`${testId('rescan-dialog')}:visible`);
  await inView(approver, approver.locator(testId('rescan-confirm')), 'the re-scan confirm button');
  const path = await shot(approver, 'window-rescan-over-viewer');
  await approver.click(testId('rescan-confirm'));
  await kiosk.waitForSelector(`${testId('rescan-request')}:visible`);
  await approver.click(testId('viewer-close'));
  return path;
});

// ---- 9. words --------------------------------------------------------------------------------

await step('9. 放心回家 does not say 材料齐全 while papers are missing', async () => {
  await approver.click(testId('outcome-later'));
  await approver.waitForSelector(`${testId('outcome-dialog')}:visible`);
  const note = await approver.inputValue(testId('outcome-note'));
  if (note.includes('材料齐全')) throw new Error(`3 of 5 papers, and the note says "${note}"`);
  await approver.click('#outcome-cancel');
  return note;
});

// ---- 8. and 5. after the call ----------------------------------------------------------------

await step('8. the call ends undecided: the window lists it, from the server (also after a reload)', async () => {
  await kiosk.click(testId('hangup-button'));
  await approver.waitForSelector('body[data-state="desk"]');
  await approver.reload();
  await approver.waitForSelector(`${testId('connection-status')}[data-state="connected"]`);
  await approver.waitForSelector(`${testId('undecided-case')}[data-case-no="${caseNo}"]`);
  return shot(approver, 'window-undecided-after-reload');
});

await step('5. 现场开单 decided after the call lands in the kiosk\'s inbox, printable with its list', async () => {
  await kiosk.click('#ended-ok');
  await approver.click(`${testId('undecided-case')}[data-case-no="${caseNo}"] ${testId('undecided-case-open')}`);
  await approver.waitForSelector('body[data-state="case"]');
  await approver.click(`${testId('outcome-missing')}:enabled`);
  await approver.click(testId('outcome-confirm'));
  await approver.waitForSelector(`${testId('decision-state')}[data-status="missing"]`);
  await kiosk.waitForSelector(`${testId('inbox-count')}:visible`);
  await kiosk.click(testId('inbox-button'));
  const item = kiosk.locator(`${testId('inbox-item')}[data-case-no="${caseNo}"][data-status="missing"]`);
  await item.waitFor();
  const listed = await item.locator(`${testId('inbox-missing-list')} li`).count();
  if (listed < 2) throw new Error(`the inbox item lists ${listed} missing papers`);
  const before = await kiosk.evaluate(() => window.__printed);
  await item.locator(testId('inbox-print')).click();
  await waitUntil(() => kiosk.evaluate(() => window.__printed), (n) => n > before, () => 'nothing printed');
  const sheet = await kiosk.textContent(testId('print-sheet'));
  if (!sheet.includes(caseNo) || !sheet.includes('请带齐下面这些材料')) throw new Error('the printed sheet lacks the case or the list');
  const path = await shot(kiosk, 'kiosk-inbox-missing');
  await kiosk.click('[data-view="inbox"] .back-button');
  const ok = kiosk.locator(`${testId('notice-ok')}:visible`);
  if (await ok.count()) await ok.click();
  return `${listed} missing papers listed and printed; ${path}`;
});

// ---- 10. the supplementary scan ---------------------------------------------------------------

await step('10. 继续办理: the next scan answers the first paper still missing', async () => {
  await kiosk.click(testId('resume-open'));
  await kiosk.fill(testId('resume-case-no'), caseNo);
  await kiosk.click(testId('resume-find'));
  await kiosk.click(testId('resume-continue'));
  await kiosk.waitForSelector('body[data-state="pick"]');
  const items = await kiosk.$$eval(testId('checklist-item'), (nodes) => nodes.map((n) => ({ item: n.dataset.item, state: n.dataset.state })));
  const firstMissing = items.find((i) => i.state === 'missing')?.item;
  const target = (await kiosk.textContent('#paper-target')).trim();
  if (!firstMissing || !target.includes(firstMissing)) throw new Error(`the next paper is "${target}", the first missing is ${firstMissing}`);
  return target;
});

// ---- 10. switching matter, 7. reload --------------------------------------------------------

let secondMatter;
let secondCase;
await step('10. switching matter asks about the open case first', async () => {
  const all = await kiosk.$$eval(testId('matter-option'), (nodes) => nodes.map((n) => ({ id: n.dataset.matterId, windowId: n.dataset.windowId, signoff: n.dataset.signoff })));
  secondMatter = all.find((m) => m.windowId === String(approverMe.window?.id) && m.id !== pathMatter.id);
  await kiosk.click(`${testId('matter-option')}[data-matter-id="${secondMatter.id}"]`);
  await kiosk.waitForSelector(`${testId('switch-dialog')}:visible`);
  const path = await shot(kiosk, 'kiosk-switch-matter');
  await kiosk.click(testId('switch-keep'));
  if ((await kiosk.getAttribute(testId('case-number'), 'data-case-no')) !== caseNo) throw new Error('keeping the case lost it');
  await kiosk.click(`${testId('matter-option')}[data-matter-id="${secondMatter.id}"]`);
  await kiosk.click(testId('switch-confirm'));
  await kiosk.waitForSelector(`${testId('matter-option')}[data-matter-id="${secondMatter.id}"][aria-pressed="true"]`);
  return path;
});

await step('7. a paper opens the case without a villager; a reload brings back matter and papers', async () => {
  await kiosk.setInputFiles(testId('scan-upload'), scans[0]);
  await kiosk.waitForSelector(`${testId('material-item')}[data-state="uploaded"]`);
  secondCase = await kiosk.getAttribute(testId('case-number'), 'data-case-no');
  await kiosk.reload();
  await kiosk.waitForSelector(`${testId('connection-status')}[data-state="connected"]`);
  await kiosk.waitForSelector(`${testId('case-number')}[data-case-no="${secondCase}"]`);
  await kiosk.waitForSelector(`${testId('matter-option')}[data-matter-id="${secondMatter.id}"][aria-pressed="true"]`);
  await kiosk.waitForSelector(`${testId('material-item')}[data-state="uploaded"]`);
  return secondCase;
});

await step('9. nobody at the window: the queue says so instead of 不到 1 分钟; 7. a reload mid-queue keeps matter and papers', async () => {
  await approver.click(testId('presence-away'));
  await approver.waitForSelector(`${testId('presence-toggle')}[data-presence="away"]`);
  await kiosk.click(`${testId('call-button')}:enabled`);
  await kiosk.waitForSelector(`${testId('queue-position')}[data-position]`);
  const detail = (await kiosk.textContent('#queue-detail')).trim();
  if (detail.includes('不到 1 分钟') || !detail.includes('没有人接待')) throw new Error(`the queue says "${detail}"`);
  await kiosk.reload();
  await kiosk.waitForSelector('body[data-state="waiting"]');
  await kiosk.waitForSelector(`${testId('queue-position')}[data-position]`);
  await waitUntil(() => kiosk.textContent('#queue-matter'), (t) => t.trim().length > 0, () => 'no matter line while queued');
  await kiosk.waitForSelector(`#waiting-papers-slot ${testId('material-item')}[data-state="uploaded"]`);
  return `${detail}; ${await shot(kiosk, 'kiosk-queued-after-reload')}`;
});

// ---- 6. the ring on the case screen, 3. the villager -----------------------------------------

await step('6. the window on a case screen: the ring banner and its answer button are there', async () => {
  if ((await approver.evaluate(() => document.body.dataset.state)) !== 'case') throw new Error('the window is not on a case screen');
  await approver.click(testId('presence-toggle'));
  const answer = approver.locator(`#ring-banner:not([hidden]) ${testId('answer-button')}`);
  await inView(approver, answer, 'the ring banner\'s answer button');
  const path = await shot(approver, 'window-ring-on-case-screen');
  await answer.click();
  await approver.waitForSelector('body[data-state="call"]');
  await kiosk.waitForSelector('body[data-state="call"]');
  return path;
});

await step('3. no decision without the villager: the window says so, the kiosk is asked during the call', async () => {
  await approver.waitForSelector(`${testId('villager-required')}:visible`);
  await approver.waitForSelector(`${testId('outcome-later')}:disabled`);
  await kiosk.waitForSelector(`${testId('villager-request')}:visible`);
  const path = await shot(approver, 'window-villager-required');
  await kiosk.fill(testId('villager-name'), '钱七');
  await kiosk.fill(testId('villager-phone'), '13500004444');
  await kiosk.click(testId('villager-save'));
  await approver.waitForSelector(testId('villager-required'), { state: 'hidden' });
  await kiosk.waitForSelector(testId('villager-request'), { state: 'hidden' });
  return path;
});

await step('10. the outcome banner is in view however far the kiosk\'s page is scrolled', async () => {
  await kiosk.evaluate(() => scrollTo(0, document.body.scrollHeight));
  await approver.click(`${testId('outcome-later')}:enabled`);
  await approver.click(testId('outcome-confirm'));
  await approver.waitForSelector(`${testId('decision-state')}[data-status="later"]`);
  const banner = kiosk.locator(`${testId('outcome-banner')}[data-status="later"]`);
  await banner.waitFor({ state: 'visible' });
  const box = await banner.boundingBox();
  if (!box || box.y < 0 || box.y > SCREEN.height - 80) throw new Error(`the banner is at ${JSON.stringify(box)}`);
  const path = await shot(kiosk, 'kiosk-outcome-banner-scrolled');
  await kiosk.click(testId('hangup-button'));
  await kiosk.click('#ended-ok');
  return path;
});

// ---- 4. the camera dialog ---------------------------------------------------------------------

await step('4. the camera dialog fits at 1366×768 and 1280×900 with its buttons in view', async () => {
  await kiosk.click(`${testId('matter-option')} >> nth=0`);
  await kiosk.click(testId('capture-still'));
  await kiosk.waitForSelector(`${testId('camera-dialog')}:visible`);
  await kiosk.waitForFunction(() => document.querySelector('#camera-preview')?.videoWidth > 0);
  const seen = [];
  for (const size of [SCREEN, { width: 1280, height: 900 }]) {
    await kiosk.setViewportSize(size);
    await inView(kiosk, kiosk.locator(testId('capture-shoot')), `拍照 at ${size.width}×${size.height}`);
    await inView(kiosk, kiosk.locator(testId('capture-done')), `拍完了 at ${size.width}×${size.height}`);
    seen.push(await shot(kiosk, `kiosk-camera-${size.width}x${size.height}`));
  }
  await kiosk.setViewportSize(SCREEN);
  await kiosk.click(testId('capture-done'));
  return seen.join(', ');
});

await step('every page came with its security headers and broke no CSP rule', () => h.checkSecurity());

await step('no uncaught JavaScript errors on any page', async () => {
  if (h.pageErrors.length) throw new Error(h.pageErrors.join(' | '));
});

await h.close();
console.log('PASS');
