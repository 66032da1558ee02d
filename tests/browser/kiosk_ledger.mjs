#!/usr/bin/env node
// The village room's ledger (台账, issue 14) in a real browser: the clerk opens 台账 on the kiosk
// page and sees this month's matters as the server lists them (every case, masked villager,
// where handled, outcome, delivery, rating) with its controls in view at 1366×768; 打印台账
// prints the paper ledger (A4 landscape pages with page numbers: the PDF Chromium makes of
// the print layout has landscape A4 pages); 导出 Excel downloads the workbook; another month
// without cases says so and has nothing to print. Then the town's chief opens 村台账 on the
// review page, picks the village and sees the same cases.
//
//   node tests/browser/kiosk_ledger.mjs --base http://127.0.0.1:PORT --kiosk-url URL --chief-url URL
//        [--out-dir DIR] [--chromium PATH] [--headed]
//
// Prints one line per step; on failure prints why, saves screenshots and exits 1 (2 for bad
// arguments or a missing `npm ci`).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { countPrints, Harness, inView, openKiosk, parseCommandLine, testId, waitUntil } from './harness.mjs';

const { options, base, url, outDir, chromium } = await parseCommandLine({
  usageLine: 'node kiosk_ledger.mjs --base URL --kiosk-url URL --chief-url URL [--out-dir DIR] [--chromium PATH] [--headed]',
  urls: ['kiosk-url', 'chief-url'],
});

const h = new Harness({ outDir });
const step = (title, action) => h.step(title, action);
h.log(`base ${base.href}, screenshots on failure go to ${outDir}`);

await h.launch(chromium, { executablePath: options.chromium, headless: !options.headed });
const kiosk = await h.newPage('kiosk', { viewport: { width: 1366, height: 768 }, acceptDownloads: true });
await kiosk.addInitScript(countPrints);

/** The server's ledger for this kiosk (the page's own token). */
const serverLedger = (month) => kiosk.evaluate(async (m) => {
  const token = localStorage.getItem('cunneng.kiosk_token');
  const r = await fetch(`/api/ledger${m ? `?month=${m}` : ''}`, { headers: { Authorization: `Bearer ${token}` } });
  return r.json();
}, month);

let ledger;
await step('kiosk: open the page, then 台账: this month\'s matters as the server lists them', async () => {
  await openKiosk(kiosk, url(options['kiosk-url']));
  await kiosk.click(testId('ledger-open'));
  await kiosk.waitForSelector(`${testId('ledger')}:visible`);
  ledger = await serverLedger(null);
  if ((ledger.rows ?? []).length < 3) throw new Error(`the server's ledger has ${ledger.rows?.length} rows; the test made 3 cases`);
  await waitUntil(() => kiosk.locator(testId('ledger-row')).count(), (n) => n === ledger.rows.length, (n) => `${n} rows shown, the server has ${ledger.rows.length}`);
  const shown = await kiosk.$$eval(testId('ledger-row'), (rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)));
  for (const [i, r] of ledger.rows.entries()) {
    const cells = shown[i];
    if (cells[2] !== r.case_no || cells[3] !== (r.villager ?? '') || cells[5] !== r.matter) throw new Error(`row ${i + 1}: ${cells.join(' | ')} vs ${JSON.stringify(r)}`);
    if (r.handled_at && cells[6] !== `${r.handled_at.town} ${r.handled_at.window}`) throw new Error(`row ${i + 1} handled at ${cells[6]}`);
    if (!r.handled_at && cells[6] !== '未接通') throw new Error(`row ${i + 1} handled at ${cells[6]}`);
  }
  if (shown.some((cells) => cells.join('').includes('大妈'))) throw new Error('a full name is shown');
  const month = await kiosk.inputValue(testId('ledger-month'));
  if (month !== ledger.month) throw new Error(`the month picker says ${month}, the ledger is ${ledger.month}`);
  await kiosk.screenshot({ path: join(outDir, 'kiosk-ledger-1366x768.png') });
  const inview = await inView(kiosk, [testId('ledger-month'), testId('ledger-print'), testId('ledger-export'), testId('ledger-summary')]);
  return `${ledger.rows.length} rows; ${(await kiosk.textContent(testId('ledger-summary'))).trim()}; in view: ${inview}`;
});

await step('打印台账: the paper ledger, A4 landscape pages with page numbers', async () => {
  await kiosk.click(testId('ledger-print'));
  await kiosk.waitForFunction(() => window.__printed > 0);
  const printed = await kiosk.$$eval(`${testId('print-sheet')} .print-ledger-table tbody tr`, (rows) => rows.length);
  if (printed !== ledger.rows.length) throw new Error(`the sheet has ${printed} rows, the ledger ${ledger.rows.length}`);
  const title = await kiosk.textContent(`${testId('print-sheet')} .print-ledger h1`);
  if (!title.includes(ledger.village.name) || !title.includes('台账')) throw new Error(`the sheet's title: ${title}`);
  const path = join(outDir, 'kiosk-ledger.pdf');
  await kiosk.pdf({ path, preferCSSPageSize: true, printBackground: true });
  const pdf = readFileSync(path).toString('latin1');
  const boxes = [...pdf.matchAll(/\/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]/g)].map((m) => [Number(m[1]), Number(m[2])]);
  if (!boxes.length) throw new Error('no page in the PDF');
  // A4 landscape: 842 × 595 points.
  const landscape = boxes.every(([w, hgt]) => Math.abs(w - 841.9) < 2 && Math.abs(hgt - 595.3) < 2);
  if (!landscape) throw new Error(`the printed pages are ${JSON.stringify(boxes)} points, not A4 landscape`);
  return `${printed} rows on ${boxes.length} landscape A4 page(s): ${path}`;
});

await step('导出 Excel: the workbook downloads', async () => {
  const [download] = await Promise.all([kiosk.waitForEvent('download'), kiosk.click(testId('ledger-export'))]);
  const name = download.suggestedFilename();
  const path = join(outDir, name);
  await download.saveAs(path);
  const bytes = readFileSync(path);
  if (!name.endsWith(`${ledger.month}.xlsx`) || bytes.subarray(0, 4).toString('latin1') !== 'PK\x03\x04') throw new Error(`downloaded ${name}, ${bytes.length} bytes`);
  return `${name}, ${bytes.length} bytes`;
});

await step('another month without cases: says so, nothing to print', async () => {
  await kiosk.fill(testId('ledger-month'), '2020-01');
  await kiosk.dispatchEvent(testId('ledger-month'), 'change');
  await kiosk.waitForFunction(() => document.querySelector('[data-testid="ledger"]')?.dataset.month === '2020-01');
  if (await kiosk.locator(testId('ledger-row')).count()) throw new Error('rows shown for 2020-01');
  if (!(await kiosk.isDisabled(testId('ledger-print')))) throw new Error('an empty month can be printed');
  return (await kiosk.textContent(testId('ledger-summary'))).trim();
});

await step('the town\'s chief: 村台账 on the review page, the village picked: the same cases', async () => {
  const chief = await h.newPage('chief', { viewport: { width: 1366, height: 768 } });
  await chief.goto(url(options['chief-url']), { waitUntil: 'domcontentloaded' });
  await chief.waitForURL((u) => u.pathname !== '/login');
  await chief.goto(new URL('/review', base).href, { waitUntil: 'domcontentloaded' });
  await chief.click(testId('nav-ledger'));
  await chief.waitForSelector(`${testId('ledger')}:visible`);
  await chief.selectOption(testId('ledger-village'), String(ledger.village.id));
  await waitUntil(() => chief.$$eval(testId('ledger-row'), (rows) => rows.map((r) => r.dataset.caseNo)), (nos) => nos.join() === ledger.rows.map((r) => r.case_no).join(), (nos) => `the chief sees ${nos.join(', ')}`);
  await chief.screenshot({ path: join(outDir, 'review-ledger-1366x768.png') });
  const inview = await inView(chief, [testId('ledger-village'), testId('ledger-month'), testId('ledger-print'), testId('ledger-export')]);
  return `${ledger.rows.length} rows of ${ledger.village.name}; in view: ${inview}`;
});

await step('every page came with its security headers and broke no CSP rule', () => h.checkSecurity());
await step('no uncaught JavaScript errors', async () => {
  if (h.pageErrors.length) throw new Error(h.pageErrors.join(' | '));
});

await h.close();
h.log(`PASS: the kiosk's ledger listed the month, printed as landscape A4 and exported to Excel (${((Date.now() - h.started) / 1000).toFixed(1)} s)`);
process.exit(0);
