#!/usr/bin/env node
// The county administrator sets up a town on /admin, at 1366×768:
// 1. the admin logs in at /login and lands on /admin (a section per kind of item);
// 2. creates a town, a village in it, a matter (with its required papers), a window of the
//    town taking that matter (ticked in the matter list), and an approver account at that window:
//    the temporary password is shown once, and it logs in (the server asks for a new password);
// 3. creates the village's kiosk device and an enrolment code: shown big as 4-4 with its QR
//    code and expiry, and the code shown is the one the server accepts (POST /api/enrol);
// 4. disables the village (greyed, 已停用, the button says 启用) and enables it again;
// 5. deletes the town, which its village and window refer to: after the confirmation the
//    server refuses (409 in_use) and the page says so clearly, offering 改为停用;
// every change is said in the status line, and each is checked against the server's lists.
// Screenshots of each section; the section's controls must be inside the viewport, uncovered.
//
//   node tests/browser/admin.mjs --base http://127.0.0.1:PORT --admin-url '/login#user=admin&password=...'
//        [--out-dir DIR] [--chromium PATH] [--headed]

import { join } from 'node:path';

import { Harness, inView, parseCommandLine, testId, waitUntil } from './harness.mjs';

const { options, url, outDir, chromium } = await parseCommandLine({
  usageLine: 'node admin.mjs --base http://127.0.0.1:PORT --admin-url URL [--out-dir DIR] [--chromium PATH] [--headed]',
  urls: ['admin-url'],
});
const VIEWPORT = { width: 1366, height: 768 };
// Names no demo item has, so that a rerun against the same server would say "duplicate".
const TOWN = '试点镇';
const VILLAGE = '试点村';
const MATTER_CODE = 'SD-001';
const MATTER = '试点事项办理';
const WINDOW = '试点专窗';
const USERNAME = 'shidian-zhuanchuang';
const PERSON = '高远';

const h = new Harness({ outDir });
const step = (title, action) => h.step(title, action);

await h.launch(chromium, { executablePath: options.chromium, headless: !options.headed });
const page = await h.newPage('admin', { viewport: VIEWPORT });

const section = (kind) => page.locator(`${testId('admin-section')}[data-kind="${kind}"]`);
const row = (kind, text) => section(kind).locator(testId('admin-row'), { hasText: text });

/** The server's own lists, read with the page's token. */
function server(path) {
  return page.evaluate(async (p) => {
    const token = localStorage.getItem('cunneng.staff_token');
    const r = await fetch(p, { headers: { Authorization: `Bearer ${token}` } });
    return { status: r.status, body: await r.json().catch(() => null) };
  }, path);
}
const region = async () => (await server('/api/admin/region')).body;

/** Open the section of `kind` from the left navigation. */
async function open(kind) {
  await page.click(`${testId('admin-nav')}[data-kind="${kind}"]`);
  await section(kind).waitFor({ state: 'visible' });
}

/** Wait until the status line says something containing `text` (kind ok, or `kind`). */
async function status(text, kind = 'ok') {
  return waitUntil(
    () => page.evaluate(() => {
      const line = document.querySelector('[data-testid="admin-status"]');
      return [line?.dataset.kind ?? '', line?.textContent ?? ''];
    }),
    ([k, t]) => k === kind && t.includes(text),
    ([k, t]) => `the status line says "${t}" (${k}), not "${text}" (${kind})`,
  );
}

/** Screenshot the section of `kind`; its table, 新建, the form's 保存 and the status line in view. */
async function shoot(kind, name, extra = []) {
  await page.screenshot({ path: join(outDir, `admin-${name}.png`) });
  const s = `${testId('admin-section')}[data-kind="${kind}"]`;
  // Every column in view: the table does not scroll sideways.
  const overflow = await page.locator(`${s} .admin-table`).evaluate((t) => t.scrollWidth - t.clientWidth);
  if (overflow > 1) throw new Error(`the ${kind} table is ${overflow} px wider than its box`);
  return inView(page, [testId('admin-status'), `${s} ${testId('admin-new')}`, `${s} .admin-table`, `${s} ${testId('admin-save')}`, ...extra]);
}

await step('admin: log in at /login, land on /admin with a section per kind', async () => {
  await page.goto(url(options['admin-url']), { waitUntil: 'domcontentloaded' });
  await page.waitForURL((u) => u.pathname === '/admin');
  await page.waitForSelector('body[data-state="admin"]');
  const kinds = await page.locator(testId('admin-section')).evaluateAll((all) => all.map((s) => s.dataset.kind));
  if (kinds.join() !== 'towns,villages,windows,matters,users,kiosks') throw new Error(`sections: ${kinds}`);
  const towns = (await region()).towns.length;
  const shown = await section('towns').locator(testId('admin-row')).count();
  if (shown !== towns) throw new Error(`${shown} town rows, the server has ${towns}`);
  return `${await h.cspWatchSelfTest(page)}; ${towns} towns`;
});

await step('towns: 新建 a town (the form beside the table), 保存', async () => {
  const s = section('towns');
  await s.locator(testId('admin-new')).click();
  await s.locator('[name="name"]').fill(TOWN);
  await s.locator(testId('admin-save')).click();
  await status(`已新建乡镇:${TOWN}`);
  await row('towns', TOWN).waitFor();
  const town = (await region()).towns.find((t) => t.name === TOWN);
  if (!town || town.any_window || town.disabled) throw new Error(`the server's town: ${JSON.stringify(town)}`);
  return shoot('towns', 'towns', [`${testId('admin-section')}[data-kind="towns"] ${testId('admin-disable')}`]);
});

await step('villages: 新建 a village of the new town', async () => {
  await open('villages');
  const s = section('villages');
  await s.locator(testId('admin-new')).click();
  await s.locator('[name="town_id"]').selectOption({ label: TOWN });
  await s.locator('[name="name"]').fill(VILLAGE);
  await s.locator('[name="kind"]').selectOption('village');
  await s.locator(testId('admin-save')).click();
  await status(`已新建村(社区):${VILLAGE}`);
  await row('villages', VILLAGE).waitFor();
  const r = await region();
  const town = r.towns.find((t) => t.name === TOWN);
  const village = r.villages.find((v) => v.name === VILLAGE);
  if (!village || village.town_id !== town.id || village.kind !== 'village') throw new Error(`the server's village: ${JSON.stringify(village)}`);
  return shoot('villages', 'villages');
});

await step('matters: 新建 a matter with two required papers, 一审一核', async () => {
  await open('matters');
  const s = section('matters');
  await s.locator(testId('admin-new')).click();
  await s.locator('[name="code"]').fill(MATTER_CODE);
  await s.locator('[name="window_kind"]').selectOption('custom');
  await s.locator('[name="name"]').fill(MATTER);
  await s.locator('[name="plain_name"]').fill('试点的事');
  await s.locator('[name="department"]').fill('区政务服务局');
  for (const paper of ['身份证', '申请表']) {
    await s.locator(testId('matter-paper-add')).click();
    await s.locator(testId('matter-paper')).last().fill(paper);
  }
  await s.locator('[name="needs_signoff"]').check();
  await s.locator('[name="keywords"]').fill('试点,专窗');
  await page.screenshot({ path: join(outDir, 'admin-matters-form.png') });
  await s.locator(testId('admin-save')).click();
  await status('已新建事项');
  await row('matters', MATTER_CODE).waitFor();
  const matter = (await region()).matters.find((m) => m.code === MATTER_CODE);
  if (!matter || matter.required_papers.join() !== '身份证,申请表' || !matter.needs_signoff || matter.window_kind !== 'custom'
    || matter.keywords.join() !== '试点,专窗') {
    throw new Error(`the server's matter: ${JSON.stringify(matter)}`);
  }
  return shoot('matters', 'matters');
});

await step('windows: 新建 a custom window of the town that takes the new matter (ticked)', async () => {
  await open('windows');
  const s = section('windows');
  await s.locator(testId('admin-new')).click();
  await s.locator('[name="town_id"]').selectOption({ label: TOWN });
  await s.locator('[name="name"]').fill(WINDOW);
  await s.locator('[name="kind"]').selectOption('custom');
  await s.locator('[name="derive_matters"]').uncheck();
  await s.locator(`${testId('window-matter')}[data-code="${MATTER_CODE}"]`).check();
  await page.screenshot({ path: join(outDir, 'admin-windows-form.png') });
  await s.locator(testId('admin-save')).click();
  await status(`已新建窗口:${TOWN}${WINDOW}`);
  await row('windows', WINDOW).waitFor();
  const r = await region();
  const matter = r.matters.find((m) => m.code === MATTER_CODE);
  const window = r.windows.find((w) => w.name === WINDOW);
  if (!window || window.derive_matters || window.kind !== 'custom' || window.matter_ids.join() !== String(matter.id)) {
    throw new Error(`the server's window: ${JSON.stringify(window)} (matter ${matter.id})`);
  }
  return shoot('windows', 'windows');
});

let temporaryPassword = '';
await step('users: 新建 an approver at the new window; the temporary password is shown once with 复制', async () => {
  await open('users');
  const s = section('users');
  await s.locator(testId('admin-new')).click();
  await s.locator('[name="username"]').fill(USERNAME);
  await s.locator('[name="display_name"]').fill(PERSON);
  await s.locator('[name="role"]').selectOption('approver');
  await s.locator('[name="town_id"]').selectOption({ label: TOWN });
  // Only the town's windows are offered.
  const offered = await s.locator('[name="window_id"] option').allTextContents();
  if (offered.length !== 2 || !offered.includes(WINDOW)) throw new Error(`windows offered for ${TOWN}: ${offered}`);
  await s.locator('[name="window_id"]').selectOption({ label: WINDOW });
  await s.locator(testId('admin-save')).click();
  await status(`已新建账号:${PERSON}`);
  temporaryPassword = (await s.locator(testId('temp-password')).textContent()).trim();
  if (temporaryPassword.length < 8) throw new Error(`temporary password "${temporaryPassword}"`);
  const note = await s.locator(testId('temp-password-box')).textContent();
  if (!note.includes('第一次登录时必须改')) throw new Error(`the note says: ${note}`);
  const users = (await server('/api/admin/users')).body;
  const user = users.find((u) => u.username === USERNAME);
  const r = await region();
  if (!user || user.role !== 'approver' || user.window_id !== r.windows.find((w) => w.name === WINDOW).id || !user.must_change_password) {
    throw new Error(`the server's user: ${JSON.stringify(user)}`);
  }
  return shoot('users', 'users', [testId('temp-password'), testId('temp-password-copy')]);
});

await step('the temporary password logs in, and the server asks for a new password', async () => {
  const answer = await page.evaluate(async ([username, password]) => {
    const r = await fetch('/api/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password }) });
    const body = await r.json();
    return { status: r.status, must: body.must_change_password };
  }, [USERNAME, temporaryPassword]);
  if (answer.status !== 200 || answer.must !== true) throw new Error(`login with the temporary password: ${JSON.stringify(answer)}`);
  return JSON.stringify(answer);
});

await step('kiosks: 新建 the village\'s device (未开通), 生成开通码: the code big (4-4), its QR, its expiry', async () => {
  await open('kiosks');
  const s = section('kiosks');
  await s.locator(testId('admin-new')).click();
  await s.locator('[name="village_id"]').selectOption({ label: VILLAGE });
  await s.locator(testId('admin-save')).click();
  await status(`已新建设备:${VILLAGE}便民服务室`);
  const kioskRow = row('kiosks', `${VILLAGE}便民服务室`);
  await kioskRow.waitFor();
  if (!(await kioskRow.textContent()).includes('未开通')) throw new Error(`the new device's row: ${await kioskRow.textContent()}`);
  await s.locator(testId('admin-enrol')).click();
  await status('的开通码');
  const code = (await s.locator(testId('enrol-code')).textContent()).trim();
  if (!/^\d{4}-\d{4}$/.test(code)) throw new Error(`the code is shown as "${code}"`);
  const qr = await s.locator('svg[data-testid="enrol-qr"]').count();
  if (qr !== 1) throw new Error('no QR code beside the enrolment code');
  const expiry = await s.locator(testId('enrol-expiry')).textContent();
  if (!/前有效/.test(expiry)) throw new Error(`the expiry says: ${expiry}`);
  const size = await s.locator(testId('enrol-code')).evaluate((e) => parseFloat(getComputedStyle(e).fontSize));
  if (size < 36) throw new Error(`the code is ${size}px: not big`);
  const shot = await shoot('kiosks', 'kiosks', [testId('enrol-code'), 'svg[data-testid="enrol-qr"]']);
  // The code shown is the one the server accepts (typed as shown, with its dash removed).
  const enrolled = await page.evaluate(async (c) => {
    const r = await fetch('/api/enrol', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ code: c }) });
    const body = await r.json().catch(() => null);
    return { status: r.status, kiosk: body?.kiosk?.name, token: typeof body?.token === 'string' };
  }, code.replace('-', ''));
  if (enrolled.status !== 200 || !enrolled.token || enrolled.kiosk !== `${VILLAGE}便民服务室`) throw new Error(`enrolling with the code: ${JSON.stringify(enrolled)}`);
  // 刷新: the device now shows 已开通.
  await s.locator(testId('admin-refresh')).click();
  await status('已刷新');
  await waitUntil(() => kioskRow.textContent(), (t) => t.includes('已开通'), (t) => `after enrolment and 刷新 the row says: ${t}`);
  return `${code}, ${expiry}; ${shot}`;
});

await step('villages: 停用 the village (greyed, 已停用, the button says 启用), then 启用 it again', async () => {
  await open('villages');
  const s = section('villages');
  await row('villages', VILLAGE).click();
  const toggle = s.locator(testId('admin-disable'));
  if ((await toggle.textContent()).trim() !== '停用') throw new Error(`the button says ${await toggle.textContent()}`);
  await toggle.click();
  await status(`已停用:${VILLAGE}`);
  await s.locator(`${testId('admin-row')}[data-disabled="true"]`, { hasText: VILLAGE }).waitFor();
  if (!(await row('villages', VILLAGE).textContent()).includes('已停用')) throw new Error('the disabled row does not say 已停用');
  const grey = await row('villages', VILLAGE).locator('td').nth(1).evaluate((td) => getComputedStyle(td).color);
  if ((await toggle.textContent()).trim() !== '启用') throw new Error(`after 停用 the button says ${await toggle.textContent()}`);
  if (!(await region()).villages.find((v) => v.name === VILLAGE).disabled) throw new Error('the server did not disable the village');
  await page.screenshot({ path: join(outDir, 'admin-villages-disabled.png') });
  await toggle.click();
  await status(`已启用:${VILLAGE}`);
  await s.locator(`${testId('admin-row')}[data-disabled="false"]`, { hasText: VILLAGE }).waitFor();
  if ((await region()).villages.find((v) => v.name === VILLAGE).disabled) throw new Error('the server did not enable the village');
  return `disabled (text ${grey}) and enabled again`;
});

await step('towns: 删除 the town its village refers to: confirmed, refused 409 in_use, said clearly, 改为停用 offered', async () => {
  await open('towns');
  const s = section('towns');
  await row('towns', TOWN).click();
  await s.locator(testId('admin-delete')).click();
  const confirm = s.locator(testId('admin-confirm-yes'));
  await confirm.waitFor();
  const before = (await region()).towns.length;
  await page.screenshot({ path: join(outDir, 'admin-towns-confirm.png') });
  await confirm.click();
  await status('不能删除', 'error');
  const refusal = s.locator(testId('admin-in-use'));
  await refusal.waitFor();
  const said = await refusal.textContent();
  if (!said.includes('停用')) throw new Error(`the refusal says: ${said}`);
  if ((await region()).towns.length !== before) throw new Error('the town was deleted');
  const shot = await shoot('towns', 'towns-in-use', [testId('admin-in-use'), testId('admin-disable-instead')]);
  return `${said.trim()}; ${shot}`;
});

await step('the town filter narrows villages, windows, accounts and devices to the town', async () => {
  await open('villages');
  await page.locator(testId('admin-town-filter')).selectOption({ label: TOWN });
  const counts = {};
  for (const kind of ['villages', 'windows', 'users', 'kiosks']) {
    await open(kind);
    counts[kind] = await section(kind).locator(testId('admin-row')).count();
  }
  if (Object.values(counts).some((n) => n !== 1)) throw new Error(`rows with the filter on ${TOWN}: ${JSON.stringify(counts)}`);
  await page.screenshot({ path: join(outDir, 'admin-kiosks-filtered.png') });
  return JSON.stringify(counts);
});

await step('no CSP violation, security headers on every document', async () => h.checkSecurity());

await h.close();
console.log('PASS: the admin set up a town: village, matter, window taking it, account with its temporary password, device with its enrolment code; disabled and enabled; a delete in use refused clearly');
