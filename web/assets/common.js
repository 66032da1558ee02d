// @ts-check
// Small helpers shared by every page: tokens, DOM building, plain-word formatting.

export const KIOSK_TOKEN_KEY = 'cunneng.kiosk_token';
export const STAFF_TOKEN_KEY = 'cunneng.staff_token';

/** Parameters of the URL fragment (`#a=1&b=2`). */
export function fragmentParams() {
  return new URLSearchParams(location.hash.replace(/^#/, ''));
}

/** Remove the fragment from the address bar (and history) without reloading. */
export function clearFragment() {
  history.replaceState(null, '', location.pathname + location.search);
}

/**
 * The page's token: a `#token=...` fragment wins and is moved to localStorage
 * (then the fragment is cleared, so it does not stay in the address bar or history).
 */
export function takeToken(key) {
  const params = fragmentParams();
  const fromFragment = params.get('token');
  if (fromFragment) {
    localStorage.setItem(key, fromFragment);
    clearFragment();
    return fromFragment;
  }
  if (location.hash) clearFragment();
  return localStorage.getItem(key);
}

export function forgetToken(key) {
  localStorage.removeItem(key);
}

/** Send staff without a usable token to the login page, coming back here afterwards. */
export function goToLogin() {
  location.replace('/login#next=' + encodeURIComponent(location.pathname));
}

/**
 * The first element matching `selector` (pages look up their own, known elements: typed
 * loosely, as the element the markup has).
 * @param {string} selector
 * @param {ParentNode} [root]
 * @returns {any}
 */
export const $ = (selector, root = document) => root.querySelector(selector);

/**
 * Every element matching `selector` (typed loosely, like `$`).
 * @param {string} selector
 * @param {ParentNode} [root]
 * @returns {any[]}
 */
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/**
 * Build an element: el('button', {class: 'big', testid: 'call-button', onclick: f}, 'text', child).
 * `testid` sets data-testid; other `data-*` keys are set as attributes; `on*` functions become listeners.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'testid') node.dataset.testid = value;
    else if (key === 'class') node.className = value;
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, '');
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Show exactly one of the page's views (elements with a data-view attribute). */
export function showView(name) {
  for (const view of $$('[data-view]')) {
    view.hidden = view.dataset.view !== name;
  }
  document.body.dataset.state = name;
}

/** A name from a field that may be a plain string or an object with a name. */
export function nameOf(value) {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string' || typeof value === 'number') return String(value);
  return value.plain_name || value.name || '';
}

/** "3 分 20 秒", "45 秒". */
export function formatWaited(secs) {
  const s = Math.max(0, Math.floor(secs));
  if (s < 60) return `${s} 秒`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} 分 ${s % 60} 秒`;
  return `${Math.floor(m / 60)} 小时 ${m % 60} 分`;
}

/** "不到 1 分钟", "3 分钟" for an estimate. */
export function formatEstimate(secs) {
  if (secs === undefined || secs === null || Number.isNaN(Number(secs))) return '';
  const s = Math.max(0, Number(secs));
  if (s < 60) return '不到 1 分钟';
  return `${Math.ceil(s / 60)} 分钟`;
}

let noticeTimer = 0;

/**
 * A short, non-blocking notice near the top of the page (role=status); it goes away after
 * `holdMs` (8 s unless told) or when clicked. `sticky`: a message that matters (an outcome, a
 * result in the inbox) stays until the clerk presses 知道了.
 * @param {string} text
 * @param {string} [kind]
 * @param {{holdMs?: number, sticky?: boolean}} [options]
 */
export function notify(text, kind = 'info', { holdMs = 8000, sticky = false } = {}) {
  const box = $('#notice');
  if (!box) return;
  clearTimeout(noticeTimer);
  // A sticky notice is not replaced by a passing one.
  if (!sticky && text && box.dataset.sticky === 'true' && !box.hidden) return;
  box.replaceChildren(text);
  box.dataset.kind = kind;
  box.dataset.sticky = String(sticky);
  box.hidden = !text;
  box.onclick = () => { box.hidden = true; };
  if (sticky && text) {
    const ok = document.createElement('button');
    ok.type = 'button';
    ok.className = 'secondary notice-ok';
    ok.dataset.testid = 'notice-ok';
    ok.textContent = '知道了';
    box.append(' ', ok);
    return;
  }
  if (text) noticeTimer = setTimeout(() => { box.hidden = true; }, holdMs);
}

/** A short ring tone made with WebAudio (no sound file); returns a stop function. */
export function startRinging() {
  let ctx;
  try {
    ctx = new AudioContext();
  } catch {
    return () => {};
  }
  let stopped = false;
  const beep = () => {
    if (stopped) return;
    const now = ctx.currentTime;
    for (const offset of [0, 0.35]) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.setValueAtTime(0.0001, now + offset);
      gain.gain.exponentialRampToValueAtTime(0.25, now + offset + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, now + offset + 0.3);
      osc.connect(gain).connect(ctx.destination);
      osc.start(now + offset);
      osc.stop(now + offset + 0.32);
    }
  };
  beep();
  const timer = setInterval(beep, 2000);
  return () => {
    stopped = true;
    clearInterval(timer);
    ctx.close().catch(() => {});
  };
}

/** Replace a node's children, skipping null/undefined/false (replaceChildren would print "null"). */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false).map((c) => (c instanceof Node ? c : String(c))));
  return node;
}
