#!/usr/bin/env node
// A supervisor reads the statistics on /stats (the Rust test made a small known history first):
// 1. the supervisor logs in, lands on /review and opens /stats with its 统计 button;
// 2. the cards show the totals; the three charts (ECharts: the series, waiting and
//    ring-to-answer, the breakdown) are drawn on canvas: pixels painted; the tables beside
//    them hold exactly the figures of /api/stats for the conditions shown;
// 3. a change of grouping (每周) and of breakdown (按村) redraws the charts and the tables,
//    again equal to /api/stats; the comments are listed;
// 4. 导出 Excel and 导出 CSV download an .xlsx (a zip) and a .csv (UTF-8 with a BOM);
// 5. a town chief opens /stats from his window page's 统计 link and sees his town only: no
//    town choice, his cases only, his town alone in the breakdown.
// Screenshots at 1366×768; the conditions, the exports and the first chart must be inside the
// viewport, uncovered. No CSP violation anywhere (ECharts draws its tooltips on the canvas).
//
//   node tests/browser/stats.mjs --base http://127.0.0.1:PORT --supervisor-url URL --chief-url URL \
//        --chief-town ID --total-cases N --chief-cases N [--out-dir DIR] [--chromium PATH] [--headed]

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { Harness, inView, parseCommandLine, testId, waitUntil } from './harness.mjs';

const { options, url, outDir, chromium } = await parseCommandLine({
  usageLine: 'node stats.mjs --base http://127.0.0.1:PORT --supervisor-url URL --chief-url URL --chief-town ID --total-cases N --chief-cases N [--out-dir DIR] [--chromium PATH] [--headed]',
  urls: ['supervisor-url', 'chief-url', 'chief-town', 'total-cases', 'chief-cases'],
});
const VIEWPORT = { width: 1366, height: 768 };
const TOTAL = Number(options['total-cases']);
const CHIEF_CASES = Number(options['chief-cases']);

const h = new Harness({ outDir });
const step = (title, action) => h.step(title, action);

await h.launch(chromium, { executablePath: options.chromium, headless: !options.headed });
const supPage = await h.newPage('supervisor', { viewport: VIEWPORT, acceptDownloads: true });
const chiefPage = await h.newPage('chief', { viewport: VIEWPORT });

const chart = (kind) => `${testId('stats-chart')}[data-kind="${kind}"]`;
const exportButton = (format) => `${testId('stats-export')}[data-format="${format}"]`;

/** Both charts report a finished drawing, and their canvases have painted pixels. */
async function chartsDrawn(page) {
  for (const kind of ['series', 'times', 'breakdown']) await page.waitForSelector(`${chart(kind)}[data-state="drawn"]`);
  const painted = await page.evaluate(() => [...document.querySelectorAll('[data-testid="stats-chart"]')].map((box) => {
    const canvas = box.querySelector('canvas');
    if (!canvas || !canvas.width || !canvas.height) return [box.dataset.kind, 0];
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n += 1;
    return [box.dataset.kind, n];
  }));
  for (const [kind, n] of painted) if (n < 500) throw new Error(`the ${kind} chart painted ${n} pixels`);
  return painted.map(([kind, n]) => `${kind} ${n} px`).join(', ');
}

/**
 * The page's tables against /api/stats for the conditions in its address: every row (key,
 * name) and every cell's data-value. Returns the report.
 */
async function tablesMatchTheApi(page) {
  const result = await page.evaluate(async () => {
    const token = localStorage.getItem('cunneng.staff_token');
    const query = location.search.replace(/^\?/, '');
    const r = await fetch(`/api/stats?${query}`, { headers: { Authorization: `Bearer ${token}` } });
    const report = await r.json();
    const fields = {
      cases: (f) => f.cases,
      decided: (f) => f.decided,
      on_the_spot: (f) => f.on_the_spot.permille,
      first_contact: (f) => f.first_contact.permille,
      waiting_p50: (f) => f.waiting.p50_secs,
      waiting_p90: (f) => f.waiting.p90_secs,
      ring_p50: (f) => f.ring_to_answer.p50_secs,
      handling_p50: (f) => f.handling.p50_secs,
      handling_p90: (f) => f.handling.p90_secs,
      abandoned: (f) => f.abandoned,
      timed_out: (f) => f.timed_out,
      good: (f) => f.good.permille,
    };
    // The times table: the series' periods, with the calls and their waiting and ring-to-answer.
    const timeFields = {
      calls: (f) => f.calls,
      answered: (f) => f.answered,
      waiting_p50: (f) => f.waiting.p50_secs,
      waiting_p90: (f) => f.waiting.p90_secs,
      ring_count: (f) => f.ring_to_answer.count,
      ring_p50: (f) => f.ring_to_answer.p50_secs,
      ring_p90: (f) => f.ring_to_answer.p90_secs,
    };
    const problems = [];
    for (const [kind, of, fieldsOf] of [['series', 'series', fields], ['times', 'series', timeFields], ['breakdown', 'breakdown', fields]]) {
      const rows = [...document.querySelectorAll(`[data-testid="stats-table"][data-kind="${kind}"] [data-testid="stats-row"]`)];
      if (rows.length !== report[of].length) problems.push(`${kind}: ${rows.length} rows shown, ${report[of].length} in the API`);
      report[of].forEach((want, i) => {
        const row = rows[i];
        if (!row) return;
        if (row.dataset.key !== want.key) problems.push(`${kind} row ${i}: key ${row.dataset.key} ≠ ${want.key}`);
        const name = row.querySelector('[data-field="name"]')?.textContent;
        if (name !== want.name) problems.push(`${kind} row ${i}: name ${name} ≠ ${want.name}`);
        for (const [field, value] of Object.entries(fieldsOf)) {
          const shown = row.querySelector(`[data-field="${field}"]`)?.dataset.value;
          const expected = value(want) ?? '';
          if (shown !== String(expected)) problems.push(`${kind} ${want.name} ${field}: ${shown} ≠ ${expected}`);
        }
      });
    }
    const kpi = document.querySelector('[data-testid="stats-kpi"][data-field="cases"]')?.dataset.value;
    if (kpi !== String(report.totals.cases)) problems.push(`the cases card says ${kpi}, the API ${report.totals.cases}`);
    return { problems, query, report: { totals: report.totals, series: report.series.length, breakdown: report.breakdown.map((r) => [r.key, r.name, r.cases]), comments: report.comments.length, grouping: report.grouping, by: report.by } };
  });
  if (result.problems.length) throw new Error(`the page differs from /api/stats?${result.query}: ${result.problems.slice(0, 6).join('; ')}`);
  return result.report;
}

await step('supervisor: log in, land on /review, open the statistics with its 统计 button', async () => {
  await supPage.goto(url(options['supervisor-url']), { waitUntil: 'domcontentloaded' });
  await supPage.waitForURL((u) => u.pathname === '/review');
  await supPage.click(testId('nav-stats'));
  await supPage.waitForURL((u) => u.pathname === '/stats');
  await supPage.waitForSelector('body[data-state="stats"]');
  return h.cspWatchSelfTest(supPage);
});

await step('supervisor: the cards show the totals; both charts are drawn on canvas', async () => {
  await waitUntil(
    () => supPage.getAttribute(`${testId('stats-kpi')}[data-field="cases"]`, 'data-value').catch(() => null),
    (v) => v === String(TOTAL),
    (v) => `the cases card says ${v}, not ${TOTAL}`,
  );
  const cards = await supPage.locator(testId('stats-kpi')).count();
  if (cards < 9) throw new Error(`${cards} cards`);
  return `${cards} cards; ${await chartsDrawn(supPage)}`;
});

await step('supervisor: the tables equal /api/stats (per day, by town)', async () => {
  const r = await tablesMatchTheApi(supPage);
  if (r.totals.cases !== TOTAL || r.breakdown.length < 2) throw new Error(`report: ${JSON.stringify(r)}`);
  return `${r.series} periods, towns ${JSON.stringify(r.breakdown)}`;
});

await step('supervisor at 1366×768: the conditions, the exports and the first chart in view', async () => {
  await supPage.screenshot({ path: join(outDir, 'stats-county.png') });
  return inView(supPage, [
    testId('stats-from'), testId('stats-to'), testId('stats-group'), testId('stats-by'), testId('stats-town'),
    testId('stats-show'), exportButton('xlsx'), exportButton('csv'), testId('nav-review'), chart('series'),
  ]);
});

await step('supervisor: a tooltip over the series chart (drawn on canvas, no CSP violation)', async () => {
  const box = await supPage.locator(chart('series')).boundingBox();
  await supPage.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await supPage.waitForTimeout(400);
  await supPage.mouse.move(box.x + box.width / 2 + 5, box.y + box.height / 2 + 5);
  await supPage.waitForTimeout(400);
  await supPage.screenshot({ path: join(outDir, 'stats-tooltip.png') });
  return h.checkSecurity();
});

await step('supervisor: per week and by village: charts and tables follow, equal to /api/stats', async () => {
  /** The report shown is the one of `key=value` (the page writes its conditions into the address once it has drawn them). */
  const shown = (key, value) => waitUntil(
    () => supPage.evaluate(() => [location.search, document.body.dataset.loading ?? '']),
    ([search, loading]) => new URLSearchParams(search).get(key) === value && !loading,
    ([search]) => `the address is ${search}, not with ${key}=${value}`,
  );
  await supPage.selectOption(testId('stats-group'), 'week');
  await shown('group', 'week');
  await supPage.selectOption(testId('stats-by'), 'village');
  await shown('by', 'village');
  await chartsDrawn(supPage);
  const r = await tablesMatchTheApi(supPage);
  if (r.grouping !== 'week' || r.by !== 'village') throw new Error(`report: ${JSON.stringify(r)}`);
  const header = await supPage.textContent('#breakdown-title');
  if (!header.includes('村')) throw new Error(`the breakdown is titled ${header}`);
  await supPage.locator(`${testId('stats-table')}[data-kind="breakdown"]`).scrollIntoViewIfNeeded();
  await supPage.screenshot({ path: join(outDir, 'stats-by-village.png') });
  return `villages ${JSON.stringify(r.breakdown)}`;
});

await step('supervisor: the comments are listed with their case numbers', async () => {
  const comments = supPage.locator(testId('stats-comment'));
  await comments.first().scrollIntoViewIfNeeded();
  const n = await comments.count();
  if (n !== 2) throw new Error(`${n} comments`);
  const texts = await comments.allTextContents();
  if (!texts.some((t) => t.includes('很方便'))) throw new Error(`comments: ${texts}`);
  await supPage.screenshot({ path: join(outDir, 'stats-comments.png') });
  return texts.join(' | ');
});

for (const [format, check] of [
  ['xlsx', (bytes) => bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 3 && bytes[3] === 4],
  ['csv', (bytes) => bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf && bytes.toString('utf8').includes('办件量')],
]) {
  await step(`supervisor: 导出 ${format} downloads a .${format}`, async () => {
    await supPage.evaluate(() => window.scrollTo(0, 0));
    const [download] = await Promise.all([supPage.waitForEvent('download'), supPage.click(exportButton(format))]);
    const name = download.suggestedFilename();
    if (!name.endsWith(`.${format}`)) throw new Error(`downloaded ${name}`);
    const path = join(outDir, name);
    await download.saveAs(path);
    const bytes = readFileSync(path);
    if (!check(bytes)) throw new Error(`${name} does not look like a .${format} file (${bytes.length} bytes)`);
    return `${name}: ${bytes.length} bytes`;
  });
}

await step('chief: log in, open /stats from the window page\'s 统计 link', async () => {
  await chiefPage.goto(url(options['chief-url']), { waitUntil: 'domcontentloaded' });
  await chiefPage.waitForURL((u) => u.pathname === '/window');
  await chiefPage.locator(testId('stats-link')).click();
  await chiefPage.waitForURL((u) => u.pathname === '/stats');
  await chiefPage.waitForSelector('body[data-state="stats"]');
});

await step('chief: his town only: no town choice, his cases, his town alone in the breakdown', async () => {
  await waitUntil(
    () => chiefPage.getAttribute(`${testId('stats-kpi')}[data-field="cases"]`, 'data-value').catch(() => null),
    (v) => v === String(CHIEF_CASES),
    (v) => `the chief's cases card says ${v}, not ${CHIEF_CASES}`,
  );
  if (await chiefPage.locator(testId('stats-town')).isVisible()) throw new Error('a chief is offered a choice of towns');
  await chartsDrawn(chiefPage);
  const r = await tablesMatchTheApi(chiefPage);
  if (r.breakdown.length !== 1 || r.breakdown[0][0] !== options['chief-town']) throw new Error(`the chief's towns: ${JSON.stringify(r.breakdown)}`);
  await chiefPage.screenshot({ path: join(outDir, 'stats-chief.png') });
  return `${await inView(chiefPage, [testId('stats-from'), testId('stats-show'), exportButton('xlsx'), exportButton('csv'), chart('series')])}; ${JSON.stringify(r.breakdown)}`;
});

await step('no CSP violation, security headers on every document', async () => h.checkSecurity());

await h.close();
console.log('PASS: statistics read, charts drawn, tables equal the API, exports downloaded, the chief limited to his town');
