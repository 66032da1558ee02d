// @ts-check
// The video part of a call screen: one main remote <video>, a small local <video>, further
// remote streams as captioned tiles, and a plain-words line about the media connection.
import { el } from './common.js';
import { attachStream } from './media.js';

const MEDIA_STATE_TEXT = {
  connecting: '视频正在接通…',
  connected: '',
  reconnecting: '视频信号不好,正在重新连接…',
  failed: '视频没有接通,请挂断后再试一次',
};

export class CallView {
  /**
   * @param {object} o
   * @param {HTMLVideoElement|null} o.remoteVideo the main incoming video (null: tiles only)
   * @param {HTMLVideoElement} o.localVideo
   * @param {HTMLElement} o.tiles         container for the other incoming streams
   * @param {HTMLElement} o.mediaState    plain-words media status
   * @param {string} [o.preferPrefix]     label prefix of the stream to show large ("staff:", "kiosk:")
   * @param {(label: string) => string} [o.captionOf] caption for a tile
   * @param {() => void} [o.onStreamsChanged]
   */
  constructor({ remoteVideo, localVideo, tiles, mediaState, preferPrefix = '', captionOf, onStreamsChanged }) {
    this.remoteVideo = remoteVideo;
    this.localVideo = localVideo;
    this.tiles = tiles;
    this.mediaState = mediaState;
    this.preferPrefix = preferPrefix;
    this.captionOf = captionOf ?? ((label) => label);
    this.onStreamsChanged = onStreamsChanged ?? (() => {});
    this.streams = new Map();
  }

  setLocal(stream) {
    attachStream(this.localVideo, stream);
    this.localVideo.hidden = !stream;
  }

  setMediaState(state) {
    const text = MEDIA_STATE_TEXT[state] ?? '';
    this.mediaState.textContent = text;
    this.mediaState.hidden = !text;
    this.mediaState.dataset.state = state;
  }

  /** Show the current incoming streams (label → MediaStream). */
  setRemote(streams) {
    this.streams = new Map(streams);
    const labels = [...this.streams.keys()];
    const main = this.remoteVideo
      ? labels.find((label) => this.preferPrefix && label.startsWith(this.preferPrefix)) ?? labels[0]
      : undefined;
    if (this.remoteVideo) {
      attachStream(this.remoteVideo, main ? this.streams.get(main) : null);
      this.remoteVideo.dataset.label = main ?? '';
    }
    this.renderTiles(labels.filter((label) => label !== main));
    this.onStreamsChanged();
  }

  renderTiles(labels) {
    const existing = new Map([.../** @type {HTMLCollectionOf<HTMLElement>} */ (this.tiles.children)].map((tile) => [tile.dataset.label, tile]));
    for (const [label, tile] of existing) {
      if (!labels.includes(label)) tile.remove();
    }
    for (const label of labels) {
      let tile = existing.get(label);
      if (!tile) {
        const video = el('video', { autoplay: true, playsinline: true, testid: 'group-video', 'aria-label': this.captionOf(label) });
        tile = el('figure', { class: 'tile', 'data-label': label }, video, el('figcaption', {}, this.captionOf(label)));
        this.tiles.append(tile);
      }
      attachStream(tile.querySelector('video'), this.streams.get(label));
    }
    this.tiles.hidden = labels.length === 0;
  }

  /** Refresh tile captions (e.g. after names became known). */
  refreshCaptions() {
    for (const tile of /** @type {HTMLCollectionOf<HTMLElement>} */ (this.tiles.children)) {
      const caption = this.captionOf(tile.dataset.label);
      tile.querySelector('figcaption').textContent = caption;
      tile.querySelector('video').setAttribute('aria-label', caption);
    }
  }

  clear() {
    this.setRemote(new Map());
    this.setLocal(null);
    this.setMediaState('');
  }
}
