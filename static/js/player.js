// Plays an HLS URL in a <video>: the browser's own HLS where it has it, else hls.js (vendored,
// loaded only then). Retries while the room is offline or the network fails.

/** Whether this browser plays HLS by itself (Safari, iOS, some Chromium builds). */
export function hasNativeHls(video) {
  return video.canPlayType('application/vnd.apple.mpegurl') !== '';
}

let hlsScript = null;

/** Loads /static/vendor/hls.min.js once (a same-origin script, as the CSP demands). */
export function loadHlsJs() {
  if (window.Hls) return Promise.resolve(window.Hls);
  if (!hlsScript) {
    hlsScript = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = '/static/vendor/hls.min.js';
      s.onload = () => (window.Hls ? resolve(window.Hls) : reject(new Error('hls.js did not load')));
      s.onerror = () => reject(new Error('cannot load hls.js'));
      document.head.append(s);
    });
  }
  return hlsScript;
}

export class Player {
  /**
   * @param {HTMLVideoElement} video
   * @param {object} opts live (bool), onStatus(text), retryMs, prefer ('hls.js' to use hls.js
   *   even where the browser has native HLS)
   */
  constructor(video, { live = true, onStatus = () => {}, retryMs = 3000, prefer = '' } = {}) {
    this.video = video;
    this.live = live;
    this.onStatus = onStatus;
    this.retryMs = retryMs;
    this.hls = null;
    this.url = '';
    this.engine = '';
    this.retry = null;
    video.muted = true; // autoplay is allowed muted; the viewer unmutes with the controls
    video.playsInline = true;
    this.prefer = prefer;
    this.onNativeError = () => this.scheduleRetry(this.live ? 'offline' : 'video error');
    this.onNativeReady = () => this.start();
  }

  /** Starts (or restarts) playing `url`. */
  async play(url) {
    this.stop();
    this.url = url;
    if (this.prefer !== 'hls.js' && hasNativeHls(this.video)) {
      this.engine = 'native';
      this.video.addEventListener('error', this.onNativeError);
      this.video.addEventListener('loadedmetadata', this.onNativeReady);
      this.video.src = url;
      return;
    }
    let Hls;
    try {
      Hls = await loadHlsJs();
    } catch (e) {
      this.onStatus(String(e.message));
      return;
    }
    if (!Hls.isSupported()) {
      this.onStatus('this browser cannot play HLS');
      return;
    }
    this.engine = 'hls.js';
    const hls = new Hls(this.live
      ? { liveDurationInfinity: true, backBufferLength: 30, manifestLoadingMaxRetry: 2 }
      : { backBufferLength: 60 });
    this.hls = hls;
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        hls.recoverMediaError();
      } else {
        const offline = data.response && data.response.code === 404;
        this.scheduleRetry(offline ? 'offline' : `network error (${data.details})`);
      }
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => this.start());
    hls.loadSource(url);
    hls.attachMedia(this.video);
  }

  start() {
    this.onStatus('playing');
    this.video.play().catch((e) => {
      if (e.name === 'NotAllowedError') this.onStatus('press play to start');
    });
  }

  scheduleRetry(why) {
    this.onStatus(why === 'offline' ? 'offline: waiting for the stream' : `${why}; retrying`);
    const url = this.url;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      if (this.url === url) this.play(url);
    }, this.retryMs);
  }

  stop() {
    clearTimeout(this.retry);
    this.video.removeEventListener('error', this.onNativeError);
    this.video.removeEventListener('loadedmetadata', this.onNativeReady);
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    this.url = '';
  }
}
