#!/usr/bin/env node
// The papers of a live call, from both ends (issue 15):
//  - a scan tagged as the wrong paper of the checklist is re-tagged on the kiosk (改类别: pick
//    the right one), one scanned by mistake is removed (删除, after a confirmation; 不删 keeps
//    it), and the town window sees both changes at once; after the decision the kiosk offers
//    neither any more;
//  - the window page at 1366×768 and at 1280×800 shows the paper viewer beside the live video,
//    not over it: their boxes do not overlap, the video is not covered, the viewer's zoom,
//    rotate, page and close buttons are wholly in view and uncovered, and they work; below
//    1280 px the viewer opens over the page as before.
// Screenshots of each go to --out-dir.
//
//   node tests/browser/window_papers.mjs --base http://127.0.0.1:PORT --kiosk-url URL \
//        --window-url URL [--out-dir DIR] [--chromium PATH] [--headed]

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { Harness, loginStaff, openKiosk, parseCommandLine, setAvailable, testId, waitUntil } from './harness.mjs';
import { makePng } from './testpapers.mjs';

const { options, base, url, outDir, chromium } = await parseCommandLine({
  usageLine: 'node window_papers.mjs --base URL --kiosk-url URL --window-url URL [--out-dir DIR] [--chromium PATH] [--headed]',
  urls: ['kiosk-url', 'window-url'],
});

const WIDE = { width: 1366, height: 768 };
const NARROW = { width: 1280, height: 800 };
const h = new Harness({ outDir, overallTimeoutMs: 6 * 60_000 });
const step = (title, action) => h.step(title, action);
h.log(`base ${base.href}, screenshots go to ${outDir}`);

const scans = [1, 2, 3].map((n) => {
  const path = join(outDir, `paper-${n}.png`);
  writeFileSync(path, makePng(900 + n * 40, 1200));
  return path;
});

async function shot(page, name) {
  const vp = page.viewportSize();
  const path = join(outDir, `${name}-${vp.width}x${vp.height}.png`);
  await page.screenshot({ path });
  return path;
}

/** The element's box once layout has settled (the same box three times in a row). */
async function settledBox(locator) {
  await locator.waitFor({ state: 'visible' });
  let last = null;
  let same = 0;
  for (let i = 0; i < 40 && same < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const box = await locator.boundingBox();
    same = last && box && ['x', 'y', 'width', 'height'].every((k) => Math.abs(last[k] - box[k]) < 0.5) ? same + 1 : 0;
    last = box;
  }
  return last;
}

/** Wholly inside the viewport, and nothing lies over its middle. */
async function inViewUncovered(page, locator, what) {
  const box = await settledBox(locator);
  const vp = page.viewportSize();
  if (!box || box.x < 0 || box.y < 0 || box.x + box.width > vp.width + 0.5 || box.y + box.height > vp.height + 0.5) {
    throw new Error(`${what} is not wholly in view at ${vp.width}×${vp.height}: ${JSON.stringify(box)}; ${await shot(page, 'not-in-view')}`);
  }
  const covered = await locator.evaluate((node) => {
    const r = node.getBoundingClientRect();
    const top = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
    return top === node || node.contains(top) ? null : (top?.outerHTML ?? 'nothing').slice(0, 120);
  });
  if (covered) throw new Error(`${what} is covered by ${covered} at ${vp.width}×${vp.height}; ${await shot(page, 'covered')}`);
  return box;
}

const overlap = (a, b) => Math.max(0, Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x)) * Math.max(0, Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y));

await h.launch(chromium, { executablePath: options.chromium, headless: !options.headed });
const approver = await h.newPage('window', { viewport: WIDE });
const kiosk = await h.newPage('kiosk', { viewport: WIDE });

let approverMe;
await step('window: the approver logs in and is available', async () => {
  approverMe = await loginStaff(approver, url(options['window-url']));
  await setAvailable(approver);
  return `${approverMe.name} at ${approverMe.window?.name}`;
});

await step('kiosk: opens', () => openKiosk(kiosk, url(options['kiosk-url'])));

let items = [];
await step('kiosk: a matter of the approver\'s window, the villager, three scans from one file dialog, the call', async () => {
  const matters = await kiosk.$$eval(testId('matter-option'), (nodes) => nodes.map((n) => ({ id: n.dataset.matterId, windowId: n.dataset.windowId, signoff: n.dataset.signoff })));
  const here = matters.filter((m) => m.windowId === String(approverMe.window?.id) && m.signoff === 'false');
  for (const m of here) {
    await kiosk.click(`${testId('matter-option')}[data-matter-id="${m.id}"]`);
    items = await kiosk.$$eval(testId('checklist-item'), (nodes) => nodes.map((n) => n.dataset.item));
    if (items.length >= 3) break;
  }
  if (items.length < 3) throw new Error(`no matter at the approver's window asks for three papers (${here.length} tried)`);
  await kiosk.fill(testId('villager-name'), '李大妈');
  await kiosk.fill(testId('villager-phone'), '13500003333');
  await kiosk.click(testId('villager-save'));
  await kiosk.waitForSelector(`${testId('villager-summary')}:visible`);
  const chooser = kiosk.waitForEvent('filechooser');
  await kiosk.click('label[for="scan-upload"]');
  await (await chooser).setFiles(scans);
  await waitUntil(() => kiosk.locator(`${testId('material-item')}[data-state="uploaded"]`).count(), (n) => n === 3, (n) => `${n} of 3 papers uploaded`);
  await kiosk.click(`${testId('call-button')}:enabled`);
  await approver.click(`#ring-banner:not([hidden]) ${testId('answer-button')}`);
  await approver.waitForSelector('body[data-state="call"]');
  await kiosk.waitForSelector('body[data-state="call"]');
  await waitUntil(() => approver.locator(testId('material-item')).count(), (n) => n === 3, (n) => `the window shows ${n} papers`);
  const tags = await approver.$$eval(testId('material-item'), (nodes) => nodes.map((n) => n.dataset.checklistItem));
  if (tags.join('|') !== items.slice(0, 3).join('|')) throw new Error(`the window shows ${tags.join(', ')}; the checklist is ${items.join(', ')}`);
  return `checklist ${items.join(', ')}`;
});

const kioskPaper = (id) => kiosk.locator(`${testId('material-item')}[data-paper-id="${id}"]`);
const windowPaper = (id) => approver.locator(`${testId('material-item')}[data-paper-id="${id}"]`);
let ids = [];

await step('kiosk: 改类别 on the first scan, choose the right paper; the window sees it at once', async () => {
  ids = await kiosk.$$eval(`${testId('material-item')}[data-state="uploaded"]`, (nodes) => nodes.map((n) => Number(n.dataset.paperId)));
  const first = kioskPaper(ids[0]);
  // The list may sit below the fold of the call screen: the clerk scrolls to it.
  await first.scrollIntoViewIfNeeded();
  await inViewUncovered(kiosk, first.locator(testId('paper-retag')), 'the 改类别 button');
  await inViewUncovered(kiosk, first.locator(testId('paper-remove')), 'the 删除 button');
  await first.locator(testId('paper-retag')).click();
  await kiosk.waitForSelector(`${testId('retag-dialog')}:visible`);
  const choices = await kiosk.$$eval(testId('retag-choice'), (nodes) => nodes.map((n) => ({ item: n.dataset.item, pressed: n.getAttribute('aria-pressed') })));
  if (choices.length !== items.length + 1) throw new Error(`the dialog offers ${choices.map((c) => c.item || '其他材料').join(', ')}`);
  if (choices.find((c) => c.pressed === 'true')?.item !== items[0]) throw new Error(`the dialog does not mark ${items[0]} as the current one: ${JSON.stringify(choices)}`);
  const target = kiosk.locator(`${testId('retag-choice')}[data-item="${items[2]}"]`);
  await inViewUncovered(kiosk, target, `the choice ${items[2]}`);
  const dialogShot = await shot(kiosk, 'kiosk-retag-dialog');
  await target.click();
  await kiosk.waitForSelector(testId('retag-dialog'), { state: 'hidden' });
  await kiosk.waitForSelector(`${testId('material-item')}[data-paper-id="${ids[0]}"][data-checklist-item="${items[2]}"]`);
  await approver.waitForSelector(`${testId('material-item')}[data-paper-id="${ids[0]}"][data-checklist-item="${items[2]}"]`);
  const news = (await approver.textContent('#papers-new')).trim();
  if (!news.includes('改了材料类别')) throw new Error(`the window says "${news}"`);
  // The window's checklist follows: the first paper is now missing there.
  await approver.waitForSelector(`${testId('checklist-item')}[data-item="${items[0]}"][data-state="missing"]`);
  return `${dialogShot}; window: "${news}"; ${await shot(approver, 'window-after-retag')}`;
});

await step('kiosk: 删除 asks first; 不删 keeps the paper, 确定删除 takes it back; the window sees it gone', async () => {
  const third = kioskPaper(ids[2]);
  await third.scrollIntoViewIfNeeded();
  await third.locator(testId('paper-remove')).click();
  await kiosk.waitForSelector(`${testId('remove-dialog')}:visible`);
  await inViewUncovered(kiosk, kiosk.locator(testId('remove-confirm')), 'the 确定删除 button');
  await inViewUncovered(kiosk, kiosk.locator(testId('remove-keep')), 'the 不删 button');
  const dialogShot = await shot(kiosk, 'kiosk-remove-dialog');
  await kiosk.click(testId('remove-keep'));
  await kiosk.waitForSelector(testId('remove-dialog'), { state: 'hidden' });
  if ((await kiosk.locator(`${testId('material-item')}[data-state="uploaded"]`).count()) !== 3) throw new Error('不删 removed the paper');
  await third.locator(testId('paper-remove')).click();
  await kiosk.click(testId('remove-confirm'));
  await kiosk.waitForSelector(testId('remove-dialog'), { state: 'hidden' });
  await waitUntil(() => kiosk.locator(`${testId('material-item')}[data-state="uploaded"]`).count(), (n) => n === 2, (n) => `the kiosk still lists ${n} papers`);
  await waitUntil(() => windowPaper(ids[2]).count(), (n) => n === 0, () => 'the window still shows the removed paper');
  if ((await approver.locator(testId('material-item')).count()) !== 2) throw new Error('the window lost another paper');
  const news = (await approver.textContent('#papers-new')).trim();
  if (!news.includes('删除')) throw new Error(`the window says "${news}"`);
  await approver.waitForSelector(`${testId('checklist-item')}[data-item="${items[2]}"][data-count="1"]`);
  return `${dialogShot}; window: "${news}"; ${await shot(kiosk, 'kiosk-after-remove')}; ${await shot(approver, 'window-after-remove')}`;
});

/** The viewer beside the live video: no overlap, video and controls in view and uncovered. */
async function besideTheVideo() {
  const viewer = approver.locator(testId('paper-viewer'));
  await approver.waitForSelector(`${testId('paper-viewer')}[data-docked="true"]:visible`);
  const video = await inViewUncovered(approver, approver.locator(testId('remote-video')), 'the live video');
  const box = await settledBox(viewer);
  const shared = overlap(video, box);
  if (shared > 0) throw new Error(`the viewer covers ${shared.toFixed(0)} px² of the video: ${JSON.stringify({ video, viewer: box })}`);
  if (video.width < 240) throw new Error(`the video is only ${video.width.toFixed(0)} px wide`);
  for (const id of ['viewer-zoom-in', 'viewer-zoom-out', 'viewer-fit', 'viewer-rotate', 'viewer-rotate-left', 'viewer-next', 'viewer-prev', 'viewer-close', 'viewer-rescan']) {
    await inViewUncovered(approver, approver.locator(testId(id)), id);
  }
  // The decision and the hang-up stay at hand beside both.
  for (const id of ['outcome-done', 'outcome-missing', 'outcome-refused', 'outcome-later', 'hangup-button']) {
    await inViewUncovered(approver, approver.locator(testId(id)), id);
  }
  return `video ${video.width.toFixed(0)}×${video.height.toFixed(0)} at x ${video.x.toFixed(0)}, viewer ${box.width.toFixed(0)}×${box.height.toFixed(0)} at x ${box.x.toFixed(0)}`;
}

await step('window at 1366×768: the viewer opens beside the live video, its controls in view, and they work', async () => {
  await approver.click(`${testId('material-item')} >> nth=0 >> ${testId('material-open')}`);
  const where = await besideTheVideo();
  const image = approver.locator(testId('viewer-image'));
  await image.waitFor({ state: 'visible' });
  await approver.click(testId('viewer-zoom-in'));
  await approver.waitForSelector(`${testId('viewer-image')}[data-zoom="1.25"]`);
  await approver.click(testId('viewer-rotate'));
  await approver.waitForSelector(`${testId('viewer-image')}[data-rotation="90"]`);
  const title = (await approver.textContent('#viewer-title')).trim();
  await approver.click(testId('viewer-next'));
  await waitUntil(async () => (await approver.textContent('#viewer-title')).trim(), (t) => t !== title, () => 'viewer-next did not turn the page');
  await approver.click(testId('viewer-prev'));
  await approver.waitForSelector(`${testId('viewer-image')}[data-zoom="1.00"][data-rotation="0"]`);
  return `${where}; ${await shot(approver, 'window-viewer-beside-video')}`;
});

await step('window at 1280×800: still beside the video, nothing covered', async () => {
  await approver.setViewportSize(NARROW);
  const where = await besideTheVideo();
  await approver.waitForSelector(`${testId('viewer-image')}[data-zoom="1.00"]`);
  return `${where}; ${await shot(approver, 'window-viewer-beside-video')}`;
});

await step('window below 1280 px: the viewer opens over the page as before; closing it restores the call screen', async () => {
  await approver.setViewportSize({ width: 1100, height: 800 });
  await approver.waitForSelector(`${testId('paper-viewer')}[data-docked="false"]:visible`);
  const path = await shot(approver, 'window-viewer-over-page');
  await approver.setViewportSize(WIDE);
  await approver.waitForSelector(`${testId('paper-viewer')}[data-docked="true"]:visible`);
  await approver.click(testId('viewer-close'));
  await approver.waitForSelector(testId('paper-viewer'), { state: 'hidden' });
  if (await approver.evaluate(() => document.body.classList.contains('viewer-docked'))) throw new Error('the call screen still makes room for a closed viewer');
  await inViewUncovered(approver, approver.locator(`${testId('material-item')} >> nth=0`), 'the first paper');
  return path;
});

await step('after the decision the kiosk offers neither 改类别 nor 删除', async () => {
  await approver.click(`${testId('outcome-later')}:enabled`);
  await approver.click(testId('outcome-confirm'));
  await approver.waitForSelector(`${testId('decision-state')}[data-status="later"]`);
  await waitUntil(() => kiosk.locator(`${testId('paper-retag')}, ${testId('paper-remove')}`).count(), (n) => n === 0, (n) => `the kiosk still shows ${n} correction buttons`);
  await kiosk.click(testId('hangup-button'));
  await approver.waitForSelector('body[data-state="desk"]');
  return shot(kiosk, 'kiosk-decided');
});

await step('every page came with its security headers and broke no CSP rule', () => h.checkSecurity());

await step('no uncaught JavaScript errors on any page', async () => {
  if (h.pageErrors.length) throw new Error(h.pageErrors.join(' | '));
});

await h.close();
h.log(`PASS: scans re-tagged and removed from the kiosk, seen live at the window; the viewer beside the live video at 1366×768 and 1280×800 (${((Date.now() - h.started) / 1000).toFixed(1)} s)`);
process.exit(0);
