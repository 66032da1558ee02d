// @ts-check
// Resumable paper uploads (docs/cases-api.md "Papers: resumable upload"):
// POST /api/cases/{case}/papers starts one; each chunk is PUT {url}?offset=N; after a dropped
// connection GET {url} says where the server stands and the upload goes on from there; a
// 409 offset_mismatch carries the right offset. Only the 201 answer with the paper (stored
// encrypted) counts as uploaded. Network trouble and 5xx are retried with backoff for as long
// as it takes; refusals (4xx: too large, wrong type, closed case ...) are final.

const CHUNK_BYTES = 512 * 1024; // small chunks: on a weak link a drop costs little
const BACKOFF_MS = [1_000, 2_000, 4_000, 8_000, 15_000, 30_000];
// An upload the server forgot (404: expired or removed) is started again at most this often.
const MAX_RESTARTS = 3;

const REFUSAL_TEXT = {
  too_large: '文件太大了,一份材料最大 20 MB。请扫描得小一点(比如用黑白或降低分辨率)',
  unsupported_type: '只能上传 PDF、JPG 或 PNG 格式的文件',
  bad_name: '文件名不合适,请改个名字再试',
  case_closed: '这个案件已经办完,不能再加材料了',
  forbidden: '这个案件不是本村的,不能上传',
  bad_request: '这份文件不能上传(可能是空文件)',
  unauthorized: '设备凭证失效了,请联系管理员',
  too_many_uploads: '同时上传的文件太多,请等前面的传完',
};

export class UploadRefused extends Error {
  constructor(message, { status = 0, code = '' } = {}) {
    super(message);
    this.name = 'UploadRefused';
    this.status = status;
    this.code = code;
  }
}

class Transient extends Error {
  /**
   * @param {string} message
   * @param {{status?: number, code?: string}} [options]
   */
  constructor(message, { status = 0, code = '' } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    /** @type {number|undefined} the server's offset (409 offset_mismatch) */
    this.offset = undefined;
  }
}

/**
 * @param {string} url
 * @param {{method?: string, token?: string|null, json?: any, body?: BodyInit, signal?: AbortSignal}} options
 */
async function call(url, { method = 'GET', token, json, body, signal }) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) headers['Content-Type'] = 'application/json';
  else if (body !== undefined) headers['Content-Type'] = 'application/octet-stream';
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: json !== undefined ? JSON.stringify(json) : body,
      signal,
      cache: 'no-store',
      credentials: 'same-origin',
    });
  } catch (err) {
    if (signal?.aborted) throw err;
    throw new Transient('network');
  }
  let data = null;
  try {
    const text = await response.text();
    data = text ? JSON.parse(text) : null;
  } catch {
    if (response.ok) throw new Transient('broken answer', { status: response.status });
  }
  return { status: response.status, data };
}

/** Throw the right error for a non-2xx answer. */
function problem({ status, data }) {
  const code = data?.error?.code ?? '';
  if (status === 0 || status === 408 || status === 429 || status >= 500 || code === 'upload_busy') {
    // 429 too_many_uploads is a refusal of this start, but it passes: try again later.
    return new Transient(data?.error?.message ?? `HTTP ${status}`, { status, code });
  }
  const fallback = status === 413 ? REFUSAL_TEXT.too_large : status === 415 ? REFUSAL_TEXT.unsupported_type : '';
  return new UploadRefused(REFUSAL_TEXT[code] || fallback || data?.error?.message || `上传被拒绝 (HTTP ${status})`, { status, code });
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      removeEventListener('online', done);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    // Back online: do not wait out the whole backoff.
    addEventListener('online', done);
    signal?.addEventListener('abort', done);
  });
}

/**
 * One paper on its way to the server.
 *
 *   const up = new PaperUpload({token, caseNo, blob, name, checklistItem, kind, onChange});
 *   const paper = await up.run();   // resolves with the stored Paper, rejects with UploadRefused
 *
 * `onChange(up)` is called whenever `state` ('starting', 'sending', 'retrying', 'done',
 * 'refused', 'cancelled'), `sent` or `attempt` changes.
 */
export class PaperUpload {
  /**
   * @param {{token: string, caseNo: string, blob: Blob, name: string, checklistItem?: string|null,
   *   kind?: string, url?: string|null, onChange?: (up: PaperUpload) => void}} options
   *   `url`: an upload started earlier (before a reload): it goes on where the server stands.
   */
  constructor({ token, caseNo, blob, name, checklistItem = null, kind = 'scan', url = null, onChange = () => {} }) {
    this.token = token;
    this.caseNo = caseNo;
    this.blob = blob;
    this.name = name;
    this.checklistItem = checklistItem || null;
    this.kind = kind;
    this.onChange = onChange;
    this.size = blob.size;
    this.url = url;
    this.resumed = Boolean(url);
    this.chunk = CHUNK_BYTES;
    this.sent = 0;
    this.attempt = 0;
    this.restarts = 0;
    this.state = 'starting';
    this.paper = null;
    this.error = null;
    this.controller = new AbortController();
    this.promise = null;
  }

  get fraction() {
    return this.size ? this.sent / this.size : 0;
  }

  set(fields) {
    Object.assign(this, fields);
    try {
      this.onChange(this);
    } catch (err) {
      console.error('cunneng: upload onChange failed', err);
    }
  }

  /** Start (or join) the upload. */
  run() {
    this.promise ??= this.loop();
    return this.promise;
  }

  /** Try again at once (after a refusal the whole upload starts over). */
  retryNow() {
    if (this.state === 'refused') {
      this.url = null;
      this.sent = 0;
      this.error = null;
      this.promise = null;
      this.controller = new AbortController();
      return this.run();
    }
    this.wakeUp?.();
    return this.promise;
  }

  /** Give up: the server's half-finished upload is removed. */
  async cancel() {
    if (this.state === 'done') return;
    this.set({ state: 'cancelled' });
    this.controller.abort();
    if (this.url) {
      try {
        await call(this.url, { method: 'DELETE', token: this.token });
      } catch {
        // The server removes idle uploads after a day anyway.
      }
    }
  }

  async loop() {
    const signal = this.controller.signal;
    // An upload taken over from before a reload first asks where the server stands.
    let needSync = this.resumed;
    this.resumed = false;
    while (!signal.aborted) {
      try {
        if (!this.url) {
          await this.begin(signal);
        } else if (needSync) {
          if (await this.sync(signal)) return this.paper;
        }
        needSync = false;
        if (await this.sendAll(signal)) return this.paper;
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof UploadRefused) {
          if (err.status === 404 && this.url && this.restarts < MAX_RESTARTS) {
            // The server forgot this upload (expired): start it again from the beginning.
            this.restarts += 1;
            this.set({ url: null, sent: 0 });
            continue;
          }
          this.set({ state: 'refused', error: err });
          throw err;
        }
        if (err.code === 'offset_mismatch' && typeof err.offset === 'number') {
          this.set({ sent: err.offset });
          continue;
        }
        const wait = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
        this.set({ state: 'retrying', attempt: this.attempt + 1 });
        await new Promise((resolve) => {
          this.wakeUp = resolve;
          sleep(wait, signal).then(resolve);
        });
        this.wakeUp = null;
        needSync = true;
      }
    }
    const cancelled = new UploadRefused('上传已取消', { code: 'cancelled' });
    this.set({ state: 'cancelled', error: cancelled });
    throw cancelled;
  }

  async begin(signal) {
    this.set({ state: 'starting' });
    const body = { name: this.name, size: this.size };
    if (this.checklistItem) body.checklist_item = this.checklistItem;
    if (this.kind !== 'scan') body.kind = this.kind;
    const answer = await call(`/api/cases/${encodeURIComponent(this.caseNo)}/papers`, { method: 'POST', token: this.token, json: body, signal });
    if (answer.status !== 201 && answer.status !== 200) throw problem(answer);
    const chunkMax = Number(answer.data?.chunk_max) || CHUNK_BYTES;
    this.set({ url: answer.data.url, sent: Number(answer.data.offset) || 0, chunk: Math.max(8, Math.min(CHUNK_BYTES, chunkMax)) });
  }

  /** Ask the server where the upload stands. True if it is already complete. */
  async sync(signal) {
    const answer = await call(this.url, { token: this.token, signal });
    if (answer.status !== 200 && answer.status !== 201) throw problem(answer);
    if (answer.data?.complete && answer.data.paper) {
      this.set({ state: 'done', sent: this.size, paper: answer.data.paper, attempt: 0 });
      return true;
    }
    this.set({ sent: Number(answer.data?.offset) || 0 });
    return false;
  }

  /** Send the rest, chunk by chunk. True once the server stored the paper. */
  async sendAll(signal) {
    for (;;) {
      this.set({ state: 'sending' });
      const end = Math.min(this.sent + this.chunk, this.size);
      const answer = await call(`${this.url}?offset=${this.sent}`, {
        method: 'PUT',
        token: this.token,
        body: this.blob.slice(this.sent, end),
        signal,
      });
      if (answer.status === 201 && answer.data?.complete) {
        this.set({ state: 'done', sent: this.size, paper: answer.data.paper, attempt: 0 });
        return true;
      }
      if (answer.status === 200 || answer.status === 201) {
        // Progress made: the backoff starts from the beginning again.
        this.set({ sent: Number(answer.data?.offset) || end, attempt: 0 });
        if (this.sent >= this.size) {
          // Everything sent but not acknowledged as stored: ask.
          if (await this.sync(signal)) return true;
          throw new Transient('not complete');
        }
        continue;
      }
      if (answer.status === 409 && answer.data?.error?.code === 'offset_mismatch') {
        const err = new Transient('offset', { status: 409, code: 'offset_mismatch' });
        err.offset = Number(answer.data.offset);
        if (!Number.isFinite(err.offset)) throw new Transient('offset');
        throw err;
      }
      if (answer.status === 400 && this.sent > 0) {
        // "the body was broken off": the server did not take this chunk; ask where it stands.
        throw new Transient('broken chunk', { status: 400 });
      }
      throw problem(answer);
    }
  }
}

/** Plain words for an upload's state. */
export function uploadStatusText(up) {
  switch (up.state) {
    case 'starting':
      return '准备上传…';
    case 'sending':
      return `正在上传 ${Math.floor(up.fraction * 100)}%`;
    case 'retrying':
      return `网络不好,正在重试(第 ${up.attempt} 次),已传 ${Math.floor(up.fraction * 100)}%`;
    case 'done':
      return '已上传 ✓';
    case 'refused':
      return `没有传上去:${up.error?.message ?? ''}`;
    case 'cancelled':
      return '上传已取消';
    default:
      return '';
  }
}
