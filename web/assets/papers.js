// @ts-check
// Papers on screen: fetching a paper with the bearer token into a blob: URL (papers are never
// public), thumbnails, a checklist, and a viewer that zooms and rotates images and shows PDFs.
import { el, fill } from './common.js';

export const ACCEPT = '.pdf,.jpg,.jpeg,.png,application/pdf,image/jpeg,image/png';

/** Fetches papers once per page and keeps their blob: URLs. */
export class PaperStore {
  constructor(token) {
    this.token = token;
    this.urls = new Map(); // paper url → Promise<blob: URL>
  }

  /** A blob: URL of the paper's bytes (fetched with the token). */
  blobUrl(paper) {
    const key = paper.url;
    if (!this.urls.has(key)) {
      const promise = fetch(key, { headers: { Authorization: `Bearer ${this.token}` }, cache: 'no-store', credentials: 'same-origin' })
        .then(async (response) => {
          if (!response.ok) throw new Error(response.status === 404 ? '这份材料找不到了' : `材料打不开 (HTTP ${response.status})`);
          return URL.createObjectURL(await response.blob());
        })
        .catch((err) => {
          this.urls.delete(key); // try again next time
          throw err.message ? err : new Error('网络不好,材料没有打开');
        });
      this.urls.set(key, promise);
    }
    return this.urls.get(key);
  }

  /** Use a local blob (the kiosk's own scan) for a paper without fetching it back. */
  adopt(paper, blob) {
    if (!this.urls.has(paper.url)) this.urls.set(paper.url, Promise.resolve(URL.createObjectURL(blob)));
  }

  clear() {
    for (const promise of this.urls.values()) promise.then((url) => URL.revokeObjectURL(url), () => {});
    this.urls.clear();
  }
}

export const isImage = (contentType) => /^image\/(jpeg|png)$/.test(contentType ?? '');
export const isPdf = (contentType, name = '') => contentType === 'application/pdf' || /\.pdf$/i.test(name);

/** A thumbnail: the image itself, or a PDF/file icon. `source` is a blob: URL or a promise of one. */
export function thumbnail({ contentType, name, source }) {
  if (!isImage(contentType) || !source) {
    return el('span', { class: `thumb thumb-icon${isPdf(contentType, name) ? ' pdf' : ''}`, 'aria-hidden': 'true' }, isPdf(contentType, name) ? 'PDF' : '文件');
  }
  const img = el('img', { class: 'thumb', alt: '', decoding: 'async', loading: 'lazy' });
  Promise.resolve(source).then(
    (url) => {
      img.src = url;
    },
    () => {
      img.replaceWith(el('span', { class: 'thumb thumb-icon broken', 'aria-hidden': 'true' }, '打不开'));
    },
  );
  return img;
}

/** "10:32" of a Unix ms time. */
export function clock(ms) {
  if (!ms) return '';
  return new Date(ms).toLocaleTimeString('zh-CN', { timeZone: 'Asia/Shanghai', hour: '2-digit', minute: '2-digit' });
}

/** "1.2 MB" / "340 KB". */
export function formatSize(bytes) {
  if (!Number.isFinite(bytes)) return '';
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  return `${Math.max(1, Math.round(bytes / 1024))} KB`;
}

/**
 * Checklist rows (data-testid="checklist-item"): one per required paper with how many papers
 * answer it. `papers` are Paper objects (scans). Options: `onPick(item)` makes each row a button
 * (aria-pressed = the picked one), `picked`.
 */
/**
 * @param {string[]} items
 * @param {any[]} papers
 * @param {{onPick?: (item: string) => void, picked?: string|null}} [options]
 */
export function checklistRows(items, papers, { onPick, picked } = {}) {
  return items.map((item) => {
    const count = papers.filter((p) => p.kind !== 'result' && p.checklist_item === item).length;
    const have = count > 0;
    const content = [
      el('span', { class: 'check-mark', 'aria-hidden': 'true' }, have ? '✓' : '✗'),
      el('span', { class: 'check-name' }, item),
      el('span', { class: 'check-count' }, have ? `已有 ${count} 份` : '还没有'),
    ];
    const attrs = { class: `checklist-row ${have ? 'present' : 'missing'}`, testid: 'checklist-item', 'data-item': item, 'data-state': have ? 'present' : 'missing', 'data-count': count };
    if (!onPick) return el('li', attrs, ...content);
    return el('li', {}, el('button', { ...attrs, type: 'button', 'aria-pressed': String(picked === item), onclick: () => onPick(item) }, ...content));
  });
}

/**
 * The paper viewer: a dialog over the page (or docked in it, see `place`) with zoom, rotate,
 * previous/next, and extra actions (e.g. "请重新扫描"). Images are drawn at a size that fits, then zoomed; PDFs are shown
 * by the browser in an <iframe> of the blob: URL.
 */
export class PaperViewer {
  /**
   * @param {{store: PaperStore, actions?: (paper: any) => Node[], dock?: () => HTMLElement|null}} options
   *   `dock`: where to show the viewer in the page instead of over it (null: over the page);
   *   asked on every open and resize (the window page docks it beside the live video).
   */
  constructor({ store, actions = () => [], dock = () => null }) {
    this.store = store;
    this.actions = actions;
    this.dock = dock;
    this.list = [];
    this.index = 0;
    this.zoom = 1;
    this.rotation = 0;
    this.natural = null;
    this.build();
  }

  build() {
    this.title = el('h2', { class: 'viewer-title', id: 'viewer-title' });
    this.stage = el('div', { class: 'viewer-stage', tabindex: '0' });
    this.extra = el('div', { class: 'viewer-extra' });
    const button = (label, testid, onclick, cls = 'secondary') => el('button', { type: 'button', class: cls, testid, onclick }, label);
    this.imageTools = el(
      'div',
      { class: 'viewer-tools' },
      button('放大 ＋', 'viewer-zoom-in', () => this.setZoom(this.zoom * 1.25)),
      button('缩小 －', 'viewer-zoom-out', () => this.setZoom(this.zoom / 1.25)),
      button('适合屏幕', 'viewer-fit', () => this.setZoom(1)),
      button('向左转 ↺', 'viewer-rotate-left', () => this.rotate(-90)),
      button('向右转 ↻', 'viewer-rotate', () => this.rotate(90)),
    );
    this.prev = button('◀ 上一份', 'viewer-prev', () => this.show(this.index - 1));
    this.next = button('下一份 ▶', 'viewer-next', () => this.show(this.index + 1));
    this.root = el(
      'div',
      { class: 'overlay viewer', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'viewer-title', testid: 'paper-viewer', hidden: true },
      el(
        'div',
        { class: 'viewer-box' },
        el('div', { class: 'viewer-head' }, this.title, button('关闭 ✕', 'viewer-close', () => this.close(), 'primary')),
        el('div', { class: 'viewer-bar' }, this.prev, this.next, this.imageTools, this.extra),
        this.stage,
      ),
    );
    this.root.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.close();
      else if (event.key === '+' || event.key === '=') this.setZoom(this.zoom * 1.25);
      else if (event.key === '-') this.setZoom(this.zoom / 1.25);
      else if (event.key === 'r') this.rotate(90);
      else if (event.key === 'ArrowLeft' && event.target === this.stage) this.show(this.index - 1);
      else if (event.key === 'ArrowRight' && event.target === this.stage) this.show(this.index + 1);
    });
    this.stage.addEventListener('wheel', (event) => {
      if (!event.ctrlKey || !this.img) return;
      event.preventDefault();
      this.setZoom(this.zoom * (event.deltaY < 0 ? 1.1 : 1 / 1.1));
    }, { passive: false });
    addEventListener('resize', () => {
      if (this.isOpen) this.place();
      this.layout();
    });
    document.body.append(this.root);
  }

  /**
   * Over the page (a modal dialog), or docked in the slot `dock()` gives while open: then it
   * is part of the page, and `body.viewer-docked` lets the page make room for it.
   */
  place() {
    const slot = this.isOpen ? this.dock() : null;
    const docked = Boolean(slot);
    const parent = slot ?? document.body;
    if (this.root.parentElement !== parent) parent.append(this.root);
    this.root.classList.toggle('overlay', !docked);
    this.root.classList.toggle('docked', docked);
    this.root.setAttribute('role', docked ? 'region' : 'dialog');
    if (docked) this.root.removeAttribute('aria-modal');
    else this.root.setAttribute('aria-modal', 'true');
    this.root.dataset.docked = String(docked);
    document.body.classList.toggle('viewer-docked', docked);
  }

  get isOpen() {
    return !this.root.hidden;
  }

  get current() {
    return this.list[this.index] ?? null;
  }

  open(paper, list = [paper]) {
    this.list = list;
    this.opener = /** @type {HTMLElement|null} */ (document.activeElement);
    this.root.hidden = false;
    this.place();
    this.show(Math.max(0, list.findIndex((p) => p.id === paper.id)));
    this.stage.focus();
  }

  /**
   * The list changed (a paper arrived, was re-tagged or taken back): keep showing the same
   * paper; if it left the list, show the one in its place (or close when none is left).
   */
  update(list) {
    if (!this.isOpen) return;
    const id = this.current?.id;
    const at = list.findIndex((p) => p.id === id);
    this.list = list;
    if (at < 0) {
      if (!list.length) {
        this.close();
        return;
      }
      this.show(Math.min(this.index, list.length - 1));
      return;
    }
    this.index = at;
    this.renderTitle();
    this.renderBar();
  }

  close() {
    this.root.hidden = true;
    this.place();
    fill(this.stage);
    this.img = null;
    this.opener?.focus?.();
  }

  renderTitle() {
    const paper = this.current;
    if (!paper) return;
    const position = this.list.length > 1 ? `(${this.index + 1}/${this.list.length})` : '';
    this.title.textContent = `${paper.checklist_item ? paper.checklist_item + ':' : ''}${paper.name} ${position}`;
  }

  renderBar() {
    const paper = this.current;
    this.prev.disabled = this.index <= 0;
    this.next.disabled = this.index >= this.list.length - 1;
    this.prev.hidden = this.next.hidden = this.list.length < 2;
    fill(this.extra, ...(paper ? this.actions(paper) : []));
  }

  async show(index) {
    if (index < 0 || index >= this.list.length) return;
    this.index = index;
    const paper = this.current;
    this.zoom = 1;
    this.rotation = 0;
    this.natural = null;
    this.img = null;
    this.renderTitle();
    this.imageTools.hidden = !isImage(paper.content_type);
    this.renderBar();
    fill(this.stage, el('p', { class: 'viewer-loading' }, '正在打开…'));
    this.stage.scrollTo(0, 0); // a paper starts at its top left, whatever the last one's zoom
    let url;
    try {
      url = await this.store.blobUrl(paper);
    } catch (err) {
      if (this.current === paper) fill(this.stage, el('p', { class: 'error' }, err.message));
      return;
    }
    if (this.current !== paper || !this.isOpen) return;
    if (isImage(paper.content_type)) {
      const img = el('img', { class: 'viewer-image', alt: paper.name, testid: 'viewer-image' });
      const canvas = el('div', { class: 'viewer-canvas' }, img);
      img.addEventListener('load', () => {
        this.natural = { w: img.naturalWidth, h: img.naturalHeight };
        this.layout();
      });
      img.src = url;
      this.img = img;
      this.canvas = canvas;
      fill(this.stage, canvas);
    } else {
      const frame = el('iframe', { class: 'viewer-pdf', title: paper.name, testid: 'viewer-pdf' });
      frame.src = url;
      fill(this.stage, frame);
    }
  }

  setZoom(zoom) {
    this.zoom = Math.min(8, Math.max(0.25, zoom));
    this.layout();
  }

  rotate(degrees) {
    this.rotation = (this.rotation + degrees + 360) % 360;
    this.layout();
  }

  /** Size the image for the zoom and rotation (CSSOM only: no inline style attributes). */
  layout() {
    if (!this.img || !this.natural || !this.isOpen) return;
    const { w, h } = this.natural;
    const turned = this.rotation % 180 !== 0;
    const boxW = turned ? h : w;
    const boxH = turned ? w : h;
    const fit = Math.min((this.stage.clientWidth - 16) / boxW, (this.stage.clientHeight - 16) / boxH, 4);
    const scale = Math.max(0.01, fit * this.zoom);
    Object.assign(this.canvas.style, { width: `${boxW * scale}px`, height: `${boxH * scale}px` });
    Object.assign(this.img.style, {
      width: `${w * scale}px`,
      height: `${h * scale}px`,
      left: `${((boxW - w) * scale) / 2}px`,
      top: `${((boxH - h) * scale) / 2}px`,
      transform: `rotate(${this.rotation}deg)`,
    });
    this.img.dataset.rotation = String(this.rotation);
    this.img.dataset.zoom = this.zoom.toFixed(2);
  }
}
