// @ts-check
// Synchronized playback of one call: every participant's recording (the village side and the
// town side, or the members of a group call) side by side, one play/pause, one seek bar. The
// sides are aligned on each recording's wall-clock start (`start_ms`, from its manifest): the
// bar's 0 is the earliest start, and a recording that starts later sits at its offset. The
// timeline's events during the call are clickable marks on the bar; the recordings' gaps are
// drawn under it. A recording with an archive plays from it (range requests); one without (cut
// off by a crash: incomplete) plays from its stored segments, one after another.
import { el, fill } from './common.js';

/**
 * @typedef {{ index: number, start_ms: number, duration_ms: number, bytes: number, url: string }} Segment
 * @typedef {{ track: string, start_ms: number, end_ms: number, reason: string }} Gap
 * @typedef {{ id: number, room: string, take: number, participant: string, side: string, status: string,
 *   start_ms: number, ended_at_ms: ?number, duration_ms: number, gaps: any, segments: Segment[],
 *   archive_url: ?string, destroyed_at_ms: ?number }} Recording
 * @typedef {{ at_ms: number, kind: string, text: string }} Mark
 */

/** Drift between a side and the clock that is corrected by seeking it (seconds). */
const DRIFT_S = 0.3;

/** "01:05" (or "1:02:03") of seconds. */
export function formatClock(/** @type {number} */ secs) {
  const s = Math.max(0, Math.floor(secs));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const two = (/** @type {number} */ n) => String(n).padStart(2, '0');
  return h ? `${h}:${two(m)}:${two(s % 60)}` : `${two(m)}:${two(s % 60)}`;
}

/** The gaps of a recording as the manifest lists them (anything else is no gap). */
function gapsOf(/** @type {Recording} */ rec) {
  return /** @type {Gap[]} */ (Array.isArray(rec.gaps) ? rec.gaps : []).filter((g) => Number.isFinite(g?.start_ms) && Number.isFinite(g?.end_ms) && g.end_ms > g.start_ms);
}

/** One participant's recording in a <video>, from its archive or segment by segment. */
class Side {
  /**
   * @param {Recording} rec
   * @param {string} label
   * @param {number} originMs
   */
  constructor(rec, label, originMs) {
    this.rec = rec;
    this.label = label;
    /** Where on the bar this recording's 0 is (seconds). */
    this.offset = (rec.start_ms - originMs) / 1000;
    this.duration = Math.max(0, rec.duration_ms) / 1000;
    this.fromSegments = !rec.archive_url;
    /** The segment in the element (segment mode). */
    this.segment = -1;
    /** @type {Promise<void> | null} */
    this.pending = null;
    /** Whether the bar is playing (the side plays while it covers the position). */
    this.playing = false;
    this.video = /** @type {HTMLVideoElement} */ (el('video', {
      class: 'replay-video',
      testid: 'playback-video',
      playsinline: true,
      preload: 'auto',
      'data-recording-id': rec.id,
      'data-participant': rec.participant,
      'data-side': rec.side,
      'data-start-ms': rec.start_ms,
      'data-source': this.fromSegments ? 'segments' : 'archive',
    }));
    this.state = el('span', { class: 'replay-state', 'aria-live': 'polite' });
    const tags = [];
    if (rec.status === 'incomplete') tags.push(el('span', { class: 'tag warn' }, '录像不完整(按片段播放)'));
    if (rec.status === 'recording') tags.push(el('span', { class: 'tag' }, '还在录制'));
    this.tile = el(
      'figure',
      { class: `replay-tile side-${rec.side}` },
      this.video,
      el('figcaption', {}, el('span', { class: 'replay-label' }, label), ...tags, this.state),
    );
    this.video.addEventListener('ended', () => this.onEnded());
    this.retries = 0;
    this.video.addEventListener('error', () => this.onError());
  }

  /** The media did not load (the server busy with other streams, a network hiccup): try again. */
  onError() {
    if (!this.video.getAttribute('src')) return;
    if (this.retries >= 3) {
      this.state.textContent = '录像打不开';
      return;
    }
    this.retries += 1;
    const at = this.local;
    const src = this.video.getAttribute('src') ?? '';
    this.state.textContent = '录像没有加载出来,正在重试…';
    setTimeout(() => {
      this.video.addEventListener('loadedmetadata', () => {
        this.state.textContent = '';
        this.seekLocal(at);
      }, { once: true });
      this.video.src = src;
    }, 2000);
  }

  /** Start loading (the archive, or the first segment). */
  load() {
    if (this.fromSegments) {
      if (this.rec.segments.length) this.pending = this.loadSegment(0);
    } else if (this.rec.archive_url) {
      this.video.src = this.rec.archive_url;
    }
  }

  /** Put segment `i` into the element; resolves once its metadata is in. */
  loadSegment(/** @type {number} */ i) {
    const seg = this.rec.segments[i];
    this.segment = i;
    return new Promise((resolve) => {
      const done = () => {
        this.video.removeEventListener('loadedmetadata', done);
        this.video.removeEventListener('error', done);
        resolve(undefined);
      };
      this.video.addEventListener('loadedmetadata', done);
      this.video.addEventListener('error', done);
      this.video.src = seg.url;
    });
  }

  /** The segment that holds local time `t` (seconds), or the last one before it. */
  segmentAt(/** @type {number} */ t) {
    const ms = t * 1000;
    let found = 0;
    this.rec.segments.forEach((s, i) => {
      if (s.start_ms <= ms) found = i;
    });
    return found;
  }

  /** The recording's own time (seconds from its start). */
  get local() {
    if (!this.fromSegments) return this.video.currentTime;
    const seg = this.rec.segments[this.segment];
    return (seg ? seg.start_ms / 1000 : 0) + this.video.currentTime;
  }

  /** Wall clock (Unix ms) of what the element shows now. */
  get wallMs() {
    return this.rec.start_ms + this.local * 1000;
  }

  /** Does the recording have media at bar position `p`? */
  covers(/** @type {number} */ p) {
    const t = p - this.offset;
    return t >= 0 && t < this.duration;
  }

  /** Show local time `t` (clamped into the recording). */
  async seekLocal(/** @type {number} */ t) {
    const target = Math.min(Math.max(0, t), Math.max(0, this.duration - 0.05));
    if (this.fromSegments) {
      if (!this.rec.segments.length) return;
      const i = this.segmentAt(target);
      if (i !== this.segment) {
        this.pending = this.loadSegment(i);
      }
      await this.pending;
      const seg = this.rec.segments[this.segment];
      this.video.currentTime = Math.max(0, target - seg.start_ms / 1000);
    } else {
      this.video.currentTime = target;
    }
    await new Promise((resolve) => {
      if (!this.video.seeking) return resolve(undefined);
      this.video.addEventListener('seeked', () => resolve(undefined), { once: true });
      this.video.addEventListener('error', () => resolve(undefined), { once: true });
    });
  }

  /** A segment ended: the next one goes on playing (segment mode). */
  onEnded() {
    if (!this.fromSegments || !this.playing) return;
    const next = this.segment + 1;
    if (next >= this.rec.segments.length) return;
    this.pending = this.loadSegment(next).then(() => {
      if (this.playing) this.video.play().catch(() => {});
    });
  }

  /**
   * Follow the bar's position `p`: play or pause with it, seek when it drifted.
   * @param {number} p
   * @param {boolean} playing
   */
  follow(p, playing) {
    this.playing = playing;
    const t = p - this.offset;
    if (!this.covers(p)) {
      if (!this.video.paused) this.video.pause();
      this.state.textContent = t < 0 ? '还没开始' : '已结束';
      return;
    }
    this.state.textContent = '';
    if (this.video.seeking) return;
    if (Math.abs(this.local - t) > DRIFT_S) {
      this.seekLocal(t).then(() => {
        if (this.playing && this.video.paused) this.video.play().catch(() => {});
      });
      return;
    }
    if (playing && this.video.paused) this.video.play().catch(() => {});
    if (!playing && !this.video.paused) this.video.pause();
  }
}

/**
 * The player of one call (its recordings, side by side).
 * `window.__cunneng.player` on the review page is this object.
 */
export class SyncPlayer {
  /**
   * @param {{ recordings: Recording[], label: (r: Recording) => string, marks: Mark[] }} options
   */
  constructor({ recordings, label, marks }) {
    const playable = recordings.filter((r) => !r.destroyed_at_ms && r.duration_ms > 0);
    /** Wall clock (Unix ms) of the bar's 0. */
    this.originMs = Math.min(...playable.map((r) => r.start_ms));
    /** The bar's length (seconds). */
    this.total = Math.max(0.1, ...playable.map((r) => (r.start_ms - this.originMs + r.duration_ms) / 1000));
    this.sides = playable.map((r) => new Side(r, label(r), this.originMs));
    this.position = 0;
    this.playing = false;
    /** @type {ReturnType<typeof setInterval> | undefined} */
    this.timer = undefined;
    this.lastTick = 0;
    this.marks = marks.filter((m) => m.at_ms >= this.originMs && m.at_ms <= this.originMs + this.total * 1000);
    this.playButton = el('button', { type: 'button', class: 'primary replay-play', testid: 'playback-play', 'aria-pressed': 'false', onclick: () => (this.playing ? this.pause() : this.play()) }, '▶ 播放');
    this.seekBar = /** @type {HTMLInputElement} */ (el('input', {
      type: 'range',
      class: 'replay-seek',
      testid: 'playback-seek',
      min: '0',
      max: this.total.toFixed(2),
      step: '0.05',
      value: '0',
      'aria-label': '播放位置',
    }));
    this.clock = el('span', { class: 'replay-clock', testid: 'playback-clock' });
    this.wall = el('span', { class: 'replay-wall', testid: 'playback-wall' });
    this.root = this.build(recordings.filter((r) => !playable.includes(r)));
    for (const s of this.sides) s.load();
    this.render();
  }

  /** The player's element. @param {Recording[]} gone recordings without media (destroyed, empty) */
  build(gone) {
    this.seekBar.addEventListener('input', () => this.seek(Number(this.seekBar.value)));
    const pct = (/** @type {number} */ secs) => `${Math.min(100, Math.max(0, (secs / this.total) * 100))}%`;
    const markButtons = this.marks.map((m) => {
      const at = (m.at_ms - this.originMs) / 1000;
      const b = el('button', { type: 'button', class: `replay-mark kind-${m.kind.replace(/\W/g, '-')}`, testid: 'timeline-event', 'data-kind': m.kind, 'data-at-ms': m.at_ms, title: `${formatClock(at)} ${m.text}`, 'aria-label': `${formatClock(at)} ${m.text}`, onclick: () => this.seekToWall(m.at_ms) });
      b.style.left = pct(at);
      return b;
    });
    const lanes = this.sides.map((s) => {
      const span = el('span', { class: 'lane-media' });
      span.style.left = pct(s.offset);
      span.style.width = pct(s.duration);
      const gaps = gapsOf(s.rec).map((g) => {
        const gap = el('span', { class: `lane-gap track-${g.track}`, testid: 'playback-gap', title: `${g.track === 'audio' ? '没有声音' : '没有画面'} ${formatClock(g.start_ms / 1000)}–${formatClock(g.end_ms / 1000)}` });
        gap.style.left = pct(s.offset + g.start_ms / 1000);
        gap.style.width = pct((g.end_ms - g.start_ms) / 1000);
        return gap;
      });
      return el('div', { class: 'lane' }, el('span', { class: 'lane-label' }, s.label), el('span', { class: 'lane-track' }, span, ...gaps));
    });
    return el(
      'div',
      { class: 'replay', testid: 'playback' },
      el('div', { class: `replay-videos count-${Math.min(this.sides.length, 9)}` }, ...this.sides.map((s) => s.tile)),
      gone.length ? el('p', { class: 'hint' }, gone.map((r) => (r.destroyed_at_ms ? `一段录像已销毁(${new Date(r.destroyed_at_ms).toLocaleDateString('zh-CN', { timeZone: 'Asia/Shanghai' })})` : '一段录像没有内容')).join(';')) : null,
      el('div', { class: 'replay-controls' }, this.playButton, this.clock, this.wall),
      el('div', { class: 'replay-bar' }, el('div', { class: 'replay-marks' }, ...markButtons), this.seekBar),
      el('div', { class: 'replay-lanes' }, ...lanes),
    );
  }

  /** The bar position of wall-clock time `ms`. */
  positionOf(/** @type {number} */ ms) {
    return (ms - this.originMs) / 1000;
  }

  play() {
    if (this.position >= this.total - 0.05) this.position = 0;
    this.playing = true;
    this.lastTick = performance.now();
    this.playButton.textContent = '❚❚ 暂停';
    this.playButton.setAttribute('aria-pressed', 'true');
    for (const s of this.sides) s.follow(this.position, true);
    clearInterval(this.timer);
    this.timer = setInterval(() => this.tick(), 100);
    this.render();
  }

  pause() {
    this.playing = false;
    clearInterval(this.timer);
    this.playButton.textContent = '▶ 播放';
    this.playButton.setAttribute('aria-pressed', 'false');
    for (const s of this.sides) {
      s.playing = false;
      if (!s.video.paused) s.video.pause();
    }
    this.render();
  }

  /** Every side to bar position `p` (seconds); resolves when each shows it. */
  async seek(/** @type {number} */ p) {
    this.position = Math.min(Math.max(0, p), this.total);
    this.lastTick = performance.now();
    this.root.dataset.seeking = 'true';
    this.render();
    await Promise.all(this.sides.map((s) => s.seekLocal(this.position - s.offset)));
    if (this.playing) for (const s of this.sides) s.follow(this.position, true);
    delete this.root.dataset.seeking;
    this.render();
  }

  /** Seek to a wall-clock moment (a timeline event). */
  seekToWall(/** @type {number} */ ms) {
    return this.seek(this.positionOf(ms));
  }

  /** While playing: the clock follows the side that is playing, or runs on its own in a gap. */
  tick() {
    const now = performance.now();
    const leader = this.sides.find((s) => s.covers(this.position) && !s.video.paused && !s.video.seeking && s.video.readyState >= 3);
    if (leader) this.position = leader.offset + leader.local;
    else if (!this.sides.some((s) => s.covers(this.position) && (s.video.seeking || s.video.readyState < 3))) this.position += (now - this.lastTick) / 1000;
    this.lastTick = now;
    if (this.position >= this.total) {
      this.position = this.total;
      this.pause();
      return;
    }
    for (const s of this.sides) s.follow(this.position, true);
    this.render();
  }

  render() {
    if (document.activeElement !== this.seekBar || this.playing) this.seekBar.value = this.position.toFixed(2);
    this.clock.textContent = `${formatClock(this.position)} / ${formatClock(this.total)}`;
    const wall = new Date(this.originMs + this.position * 1000);
    this.wall.textContent = wall.toLocaleTimeString('zh-CN', { timeZone: 'Asia/Shanghai', hour: '2-digit', minute: '2-digit', second: '2-digit' });
    this.root.dataset.positionMs = String(Math.round(this.originMs + this.position * 1000));
  }

  /** Stop and let go of the media (another call or case is shown). */
  destroy() {
    this.pause();
    for (const s of this.sides) {
      s.retries = Infinity;
      s.video.removeAttribute('src');
      s.video.load();
    }
    fill(this.root);
  }
}
