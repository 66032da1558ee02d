// @ts-check
// Stills from a chosen camera (the document camera, 高拍仪) at its full resolution: the clerk
// picks the camera from the list of video inputs (remembered on this device), the track is
// pushed to the largest size the camera offers, and a still is taken with ImageCapture when the
// browser has it (the sensor's photo resolution) or drawn from the video frame into a canvas.
// Always handed on as JPEG.

const CAMERA_KEY = 'cunneng.still_camera';
const JPEG_QUALITY = 0.92;
const TAKE_PHOTO_LIMIT_MS = 6_000;
// Names that suggest a document camera when nothing was chosen yet.
const DOCUMENT_CAMERA = /高拍|文档|document|doc ?cam|visualizer|scanner|扫描/i;

function withTimeout(promise, ms) {
  return Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error('timeout')), ms))]);
}

async function toJpeg(source, width, height) {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, width, height);
  ctx.drawImage(source, 0, 0, width, height);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', JPEG_QUALITY));
  if (!blob) throw new Error('照片没有生成,请再拍一次');
  return blob;
}

export class StillCamera {
  /**
   * @param {object} o
   * @param {HTMLSelectElement} o.select  camera choice
   * @param {HTMLVideoElement} o.video    live preview
   * @param {HTMLElement} o.info          plain-words state ("1920×1080")
   */
  constructor({ select, video, info }) {
    this.select = select;
    this.video = video;
    this.info = info;
    this.stream = null;
    this.starting = null;
    select.addEventListener('change', () => {
      localStorage.setItem(CAMERA_KEY, select.value);
      this.start(select.value);
    });
  }

  get track() {
    return this.stream?.getVideoTracks()[0] ?? null;
  }

  /** Open the camera chosen before (or a likely document camera, or the default one). */
  async open() {
    let wanted = localStorage.getItem(CAMERA_KEY) || '';
    if (!wanted) {
      const devices = await this.cameras();
      wanted = devices.find((d) => DOCUMENT_CAMERA.test(d.label))?.deviceId ?? '';
    }
    await this.start(wanted);
  }

  async cameras() {
    try {
      return (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
    } catch {
      return [];
    }
  }

  async start(deviceId) {
    this.stop();
    this.info.textContent = '正在打开摄像头…';
    if (!navigator.mediaDevices?.getUserMedia) {
      this.info.textContent = '这个页面要用 https 地址打开,才能使用摄像头';
      return;
    }
    const video = { width: { ideal: 4096 }, height: { ideal: 3072 } };
    if (deviceId) video.deviceId = { exact: deviceId };
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video, audio: false });
    } catch (err) {
      if (deviceId) {
        // The remembered camera is gone (unplugged): fall back to any camera.
        localStorage.removeItem(CAMERA_KEY);
        return this.start('');
      }
      this.info.textContent = err?.name === 'NotAllowedError' ? '摄像头没有被允许使用,请在浏览器里允许' : '没有找到可以拍照的摄像头';
      await this.fillChoices('');
      return;
    }
    this.stream = stream;
    const track = this.track;
    // As large as the camera goes.
    try {
      const caps = track.getCapabilities?.() ?? {};
      if (caps.width?.max && caps.height?.max) {
        await track.applyConstraints({ width: { ideal: caps.width.max }, height: { ideal: caps.height.max } });
      }
    } catch {
      // Keep what getUserMedia gave.
    }
    this.video.srcObject = stream;
    this.video.play().catch(() => {});
    const settings = track.getSettings();
    await this.fillChoices(settings.deviceId ?? '');
    this.info.textContent = `${track.label || '摄像头'}${settings.width ? `:${settings.width}×${settings.height}` : ''}`;
  }

  async fillChoices(current) {
    const devices = await this.cameras();
    this.select.replaceChildren(
      ...devices.map((d, i) => {
        const option = document.createElement('option');
        option.value = d.deviceId;
        option.textContent = d.label || `摄像头 ${i + 1}`;
        option.selected = d.deviceId === current;
        return option;
      }),
    );
    this.select.disabled = devices.length < 2;
  }

  /** Take a still: a JPEG Blob at the camera's full resolution. */
  async shoot() {
    const track = this.track;
    if (!track || track.readyState !== 'live') throw new Error('摄像头没有打开');
    if (typeof ImageCapture === 'function') {
      try {
        const capture = new ImageCapture(track);
        const caps = await withTimeout(capture.getPhotoCapabilities(), TAKE_PHOTO_LIMIT_MS);
        const options = caps?.imageWidth?.max ? { imageWidth: caps.imageWidth.max, imageHeight: caps.imageHeight.max } : {};
        const photo = await withTimeout(capture.takePhoto(options), TAKE_PHOTO_LIMIT_MS);
        const frameWidth = track.getSettings().width ?? 0;
        const bitmap = await createImageBitmap(photo);
        if (bitmap.width >= frameWidth) {
          if (photo.type === 'image/jpeg') {
            bitmap.close();
            return photo;
          }
          const jpeg = await toJpeg(bitmap, bitmap.width, bitmap.height);
          bitmap.close();
          return jpeg;
        }
        bitmap.close();
      } catch {
        // Fall back to the video frame.
      }
    }
    const { videoWidth, videoHeight } = this.video;
    if (!videoWidth) throw new Error('画面还没有出来,请等一下再拍');
    return toJpeg(this.video, videoWidth, videoHeight);
  }

  stop() {
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
    this.video.srcObject = null;
  }
}

/** A file name for a still: 拍照-20261122-103005.jpg. */
export function stillName(date = new Date()) {
  const p = (n) => String(n).padStart(2, '0');
  return `拍照-${date.getFullYear()}${p(date.getMonth() + 1)}${p(date.getDate())}-${p(date.getHours())}${p(date.getMinutes())}${p(date.getSeconds())}.jpg`;
}
