#!/usr/bin/env node
// A call recorded from real browsers (fake camera and microphone) is played back in Chromium's
// own <video> from the server's media endpoint (decrypted on the fly, range requests;
// docs/cases-api.md, "Recording media"), as the review page will:
// 1. the kiosk calls, the window answers, both send video for --call-secs, the window hangs up;
// 2. the window page waits until both recordings are complete, and sets the playback cookie;
// 3. a <video src=".../archive"> in the window page loads the archive (its duration is the
//    call's), seeks to 70 % and to 20 %: each seek lands within 0.5 s and shows a decoded
//    frame, and playing on moves the time; the archive came by range requests (206), one of
//    them starting past the first byte;
// 4. a segment plays the same way; the village room cannot set the cookie (403).
//
//   node tests/browser/recording_playback.mjs --base http://127.0.0.1:PORT \
//        --kiosk-url URL --window-url URL [--call-secs 14] [--out-dir DIR] [--chromium PATH] [--headed]

import { join } from 'node:path';

import { Harness, loginStaff, openKiosk, parseCommandLine, setAvailable, testId, waitUntil } from './harness.mjs';

const { options, url, outDir, chromium } = await parseCommandLine({
  usageLine: 'node recording_playback.mjs --base http://127.0.0.1:PORT --kiosk-url URL --window-url URL [--out-dir DIR] [--chromium PATH] [--headed]',
  urls: ['kiosk-url', 'window-url'],
});
const kioskUrl = url(options['kiosk-url']);
const windowUrl = url(options['window-url']);
const CALL_SECS = Number(process.env.CALL_SECS ?? 14);

const h = new Harness({ outDir });
const step = (title, action) => h.step(title, action);

await h.launch(chromium, { executablePath: options.chromium, headless: !options.headed });
const windowPage = await h.newPage('window');
const kioskPage = await h.newPage('kiosk');

// Every media request the window page makes, and its answer.
const media = [];
windowPage.on('response', async (response) => {
  const u = new URL(response.url());
  if (!/\/recordings\/\d+\/(archive|segments\/\d+)$/.test(u.pathname)) return;
  const request = response.request();
  const headers = await request.allHeaders();
  media.push({ path: u.pathname, range: headers.range ?? null, status: response.status(), contentRange: response.headers()['content-range'] ?? null });
});

await step('window: log in, connect, presence available', async () => {
  const me = await loginStaff(windowPage, windowUrl);
  await setAvailable(windowPage);
  return `as ${me.name} at ${me.window?.name}`;
});
const windowId = await windowPage.evaluate(() => window.__cunneng.me.window?.id ?? null);

await step('kiosk: open, pick a matter of that window and call', async () => {
  await openKiosk(kioskPage, kioskUrl);
  await kioskPage.locator(`${testId('matter-option')}[data-window-id="${windowId}"]`).first().click();
  await kioskPage.click(`${testId('call-button')}:enabled`);
  await kioskPage.waitForSelector(`${testId('queue-position')}[data-position]`, { state: 'visible' });
});
const callId = await kioskPage.evaluate(() => window.__cunneng.state.callId);

let caseNo;
await step(`window: answer call ${callId}; both sides connect and send video`, async () => {
  const button = windowPage.locator(`${testId('queue-item')}[data-call-id="${callId}"] ${testId('answer-button')}, #ring-banner:not([hidden]) ${testId('answer-button')}`).first();
  await button.click();
  await windowPage.waitForSelector('body[data-state="call"]');
  await waitUntil(
    () => Promise.all([kioskPage, windowPage].map((p) => p.evaluate(() => window.__cunneng.pc?.connectionState ?? 'none'))),
    (states) => states.every((s) => s === 'connected'),
    (states) => `media not connected (kiosk, window): ${states}`,
  );
  caseNo = await windowPage.getAttribute(testId('call-case-number'), 'data-case-no');
  if (!caseNo) throw new Error('the window shows no case number for the call');
  return `case ${caseNo}`;
});

await step(`the call goes on for ${CALL_SECS} s; the window hangs up`, async () => {
  await new Promise((resolve) => setTimeout(resolve, CALL_SECS * 1000));
  await windowPage.click(testId('hangup-button'));
  await kioskPage.waitForSelector('body[data-state="ended"]');
});

/** fetch in the window page with its staff token: [status, JSON body or null]. */
const api = (method, path) => windowPage.evaluate(async ([m, p]) => {
  const token = localStorage.getItem('cunneng.staff_token');
  const r = await fetch(p, { method: m, headers: { Authorization: `Bearer ${token}` }, credentials: 'same-origin' });
  return [r.status, await r.json().catch(() => null)];
}, [method, path]);

let recordings;
await step('window page: both recordings are complete; set the playback cookie', async () => {
  recordings = await waitUntil(
    async () => (await api('GET', `/api/cases/${caseNo}/recordings`))[1] ?? [],
    (r) => r.length === 2 && r.every((x) => x.status === 'complete'),
    (r) => `recordings: ${JSON.stringify(r)}`,
  );
  const [status] = await api('POST', '/api/playback-cookie');
  if (status !== 204) throw new Error(`POST /api/playback-cookie: ${status}`);
  return recordings.map((r) => `${r.participant}: ${r.segments.length} segments`).join(', ');
});

/** Put a <video> for `src` in the window page; resolves with its duration once metadata is in. */
const load = (src) => windowPage.evaluate((s) => new Promise((resolve, reject) => {
  document.querySelector('#playback')?.remove();
  const v = document.createElement('video');
  v.id = 'playback';
  v.muted = true;
  v.preload = 'metadata';
  v.width = 320;
  v.addEventListener('loadedmetadata', () => resolve(v.duration), { once: true });
  v.addEventListener('error', () => reject(new Error(`video error ${v.error?.code}: ${v.error?.message}`)), { once: true });
  document.body.append(v);
  v.src = s;
}), src);

/** Seek to `t`; resolves once seeked with a frame to show: [currentTime, readyState, width]. */
const seek = (t) => windowPage.evaluate((target) => new Promise((resolve, reject) => {
  const v = document.querySelector('#playback');
  const done = () => {
    const ready = () => (v.readyState >= 2 ? resolve([v.currentTime, v.readyState, v.videoWidth]) : setTimeout(ready, 50));
    ready();
  };
  v.addEventListener('seeked', done, { once: true });
  v.addEventListener('error', () => reject(new Error(`video error ${v.error?.code}: ${v.error?.message}`)), { once: true });
  v.currentTime = target;
}), t);

/** Play for `ms`, pause; [time before, time after, decoded frames]. */
const playFor = (ms) => windowPage.evaluate((wait) => new Promise((resolve, reject) => {
  const v = document.querySelector('#playback');
  const before = v.currentTime;
  v.play().then(() => setTimeout(() => {
    v.pause();
    resolve([before, v.currentTime, v.getVideoPlaybackQuality().totalVideoFrames]);
  }, wait), reject);
}), ms);

const kioskRecording = () => recordings.find((r) => r.participant.startsWith('kiosk')) ?? recordings[0];

await step('the archive loads in <video>: its duration is the call\'s', async () => {
  const rec = kioskRecording();
  const duration = await load(`/api/cases/${caseNo}/recordings/${rec.id}/archive`);
  if (!(duration > CALL_SECS - 4 && duration < CALL_SECS + 4)) throw new Error(`duration ${duration} s for a ${CALL_SECS} s call`);
  return `${duration.toFixed(2)} s`;
});

for (const fraction of [0.7, 0.2]) {
  await step(`seek to ${fraction * 100} %: lands there with a decoded frame, and plays on`, async () => {
    const duration = await windowPage.evaluate(() => document.querySelector('#playback').duration);
    const target = duration * fraction;
    const [at, readyState, width] = await seek(target);
    if (Math.abs(at - target) > 0.5) throw new Error(`asked for ${target.toFixed(2)} s, at ${at.toFixed(2)} s`);
    if (width === 0) throw new Error(`no picture after the seek (readyState ${readyState})`);
    const [before, after, frames] = await playFor(1000);
    if (!(after > before + 0.3)) throw new Error(`playing did not move the time: ${before} → ${after}`);
    if (frames === 0) throw new Error('no video frame decoded');
    return `at ${at.toFixed(2)} s (${width} px wide), played to ${after.toFixed(2)} s, ${frames} frames decoded so far`;
  });
}

await step('the archive came by range requests, one of them starting past the first byte', async () => {
  const archive = media.filter((m) => m.path.endsWith('/archive'));
  if (!archive.length) throw new Error('no archive request was seen');
  const bad = archive.filter((m) => m.status !== 206 && m.status !== 200);
  if (bad.length) throw new Error(`answers: ${JSON.stringify(bad)}`);
  const partial = archive.filter((m) => m.status === 206 && m.contentRange?.startsWith('bytes '));
  const later = partial.filter((m) => !m.contentRange.startsWith('bytes 0-'));
  if (!partial.length || !later.length) throw new Error(`requests: ${JSON.stringify(archive)}`);
  return archive.map((m) => `${m.range ?? '(no range)'} → ${m.status} ${m.contentRange ?? ''}`).join('; ');
});

await step('a segment plays on its own too', async () => {
  const rec = kioskRecording();
  const duration = await load(`/api/cases/${caseNo}/recordings/${rec.id}/segments/0`);
  if (!(duration > 1)) throw new Error(`segment 0 lasts ${duration} s`);
  const [at, , width] = await seek(duration / 2);
  if (width === 0) throw new Error('no picture after the seek');
  await windowPage.screenshot({ path: join(outDir, 'segment-playing.png') });
  return `${duration.toFixed(2)} s, seeked to ${at.toFixed(2)} s`;
});

await step('the village room may not set the playback cookie', async () => {
  const status = await kioskPage.evaluate(async () => {
    const token = localStorage.getItem('cunneng.kiosk_token');
    return (await fetch('/api/playback-cookie', { method: 'POST', headers: { Authorization: `Bearer ${token}` } })).status;
  });
  if (status !== 403) throw new Error(`kiosk: ${status}`);
});

await step('every page came with its security headers and broke no CSP rule', () => h.checkSecurity());

await step('no uncaught JavaScript errors on either page', async () => {
  if (h.pageErrors.length) throw new Error(h.pageErrors.join(' | '));
});

await h.close();
h.log(`PASS: the recorded call played in Chromium's <video>, seeking by range requests (${((Date.now() - h.started) / 1000).toFixed(1)} s)`);
process.exit(0);
