// Plays an HLS URL in a <video>: the browser's own HLS where it has it, else hls.js (vendored,
// loaded only then). It recovers by itself: network and media errors are retried, a stall with
// media buffered further on jumps the hole (the time a publisher was away is listed as gap
// entries), and a live playlist that ends is reported (onEnded) so the page can wait for the
// next broadcast instead of needing a reload.

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

/** Seconds without progress before a playing video counts as stalled. */
const STALL_S = 2;
/** The farthest ahead a buffered range may start for the player to jump to it. */
const MAX_JUMP_S = 60;

/**
 * Where a stalled player should jump: the start of the first buffered range after `time`
 * within MAX_JUMP_S, or null. `ranges` is [[start, end], ...] (pure; tested in node).
 */
export function holeJumpTarget(ranges, time) {
  for (const [start, end] of ranges) {
    if (time >= start && time < end - 0.25) return null; // playable here: not a hole
    if (start > time && start - time <= MAX_JUMP_S) return start + 0.05;
  }
  return null;
}

/**
 * hls.js's buffer controller, except that setting the media's duration may fail quietly. When a
 * live playlist ends, hls.js sets the duration to the playlist's end as it measured it from
 * decode times, while a B-frame stream's last picture is shown a composition offset later; the
 * browser refuses a duration below what is buffered and hls.js throws from a promise (an
 * uncaught error, and the end of stream is never signalled). The duration then stays as it
 * was, which is right.
 */
function tolerantBufferController(Hls) {
  const Base = Hls.DefaultConfig.bufferController;
  const Tolerant = class extends Base {};
  // hls.js 1.5 names the step updateMediaElementDuration, 1.6+ updateMediaSource.
  for (const name of ['updateMediaElementDuration', 'updateMediaSource']) {
    if (typeof Base.prototype[name] !== 'function') continue;
    Tolerant.prototype[name] = function tolerant(...args) {
      try {
        return Base.prototype[name].apply(this, args);
      } catch {
        return undefined; // see above
      }
    };
  }
  return Tolerant;
}

/** The player last started: what playerPositionMs() reads when given none. */
let current = null;

/**
 * The player's position in ms on the broadcast timeline (stream_ms: 0 at the broadcast's first
 * frame, as the fMP4 media times are), or null when nothing is playing. hls.js moves fMP4
 * media so that its timeline starts at the playlist position it joined at (its initPTS, one
 * per discontinuity); that shift is added back here.
 */
export function playerPositionMs(player = current) {
  if (!player || !player.url || player.video.readyState < 1) return null;
  // A browser's own HLS starts a live stream's clock where it joined and says nothing of
  // where that is (Chromium gives no start date): unknown. A replay starts at 0 there.
  if (player.engine !== 'hls.js' && player.live) return null;
  const t = player.video.currentTime;
  if (!Number.isFinite(t)) return null;
  const shift = player.engine === 'hls.js' ? (player.initPts.get(player.playingCc) ?? 0) : 0;
  return Math.round((t + shift) * 1000);
}

/** Loads /static/vendor/mpegts.js once (HTTP-FLV, `?player=flv`). */
let mpegtsLoading = null;
export function loadMpegts() {
  if (!mpegtsLoading) {
    mpegtsLoading = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = '/static/vendor/mpegts.js';
      s.onload = () => (window.mpegts ? resolve(window.mpegts) : reject(new Error('mpegts.js did not load')));
      s.onerror = () => reject(new Error('mpegts.js did not load'));
      document.head.appendChild(s);
    });
  }
  return mpegtsLoading;
}

/** The HTTP-FLV URL of a live playlist URL (/hls/{room}/live.m3u8 -> /live/{room}.flv). */
export function flvUrlOf(url) {
  const m = /^(.*)\/hls\/([^/]+)\/live\.m3u8(\?.*)?$/.exec(url);
  return m ? `${m[1]}/live/${m[2]}.flv` : null;
}

/** Whether hls.js can run here (Media Source Extensions). */
export function hlsJsUsable() {
  return typeof MediaSource !== 'undefined' || typeof ManagedMediaSource !== 'undefined';
}

export class Player {
  /**
   * @param {HTMLVideoElement} video
   * @param {object} opts live (bool), onStatus(state, text) with state one of 'loading',
   *   'playing', 'stalled', 'retrying', 'offline', 'ended', 'error'; onEnded() when a live
   *   playlist ended and was played out; retryMs; prefer ('hls.js' to use hls.js even where
   *   the browser has native HLS, as long as hls.js can run; 'native' for the browser's own
   *   HLS where it has it; '' native first); onHls(hls, Hls) when an hls.js instance is made
   */
  constructor(video, { live = true, onStatus = () => {}, onEnded = () => {}, retryMs = 3000, prefer = '', onHls = () => {} } = {}) {
    this.video = video;
    this.live = live;
    this.onStatusCb = onStatus;
    this.onEnded = onEnded;
    this.retryMs = retryMs;
    this.hls = null;
    this.flv = null;
    this.url = '';
    this.engine = '';
    this.retry = null;
    this.watchdog = null;
    this.state = 'idle';
    this.endlist = false;
    this.lastTime = -1;
    this.stillSince = 0;
    this.mediaErrors = [];
    this.jumps = 0;
    video.muted = true; // autoplay is allowed muted; the viewer unmutes with the controls
    video.playsInline = true;
    this.prefer = prefer;
    this.onHls = onHls;
    /** hls.js's media time shift (s) per discontinuity, and the one playing now. */
    this.initPts = new Map();
    this.playingCc = 0;
    this.onNativeError = () => this.scheduleRetry(this.live ? 'offline' : 'video error');
    this.onNativeReady = () => this.start();
    this.onVideoEnded = () => this.ended();
  }

  /** Whether a stream is attached (loading, playing or stalled), not ended or stopped. */
  get active() {
    return this.url !== '' && this.state !== 'ended';
  }

  status(state, text = state) {
    this.state = state;
    this.onStatusCb(state, text);
  }

  /** Starts (or restarts) playing `url`. */
  async play(url) {
    this.stop();
    current = this;
    this.url = url;
    this.endlist = false;
    this.status('loading', 'loading the stream');
    this.video.addEventListener('ended', this.onVideoEnded);
    this.watchdog = setInterval(() => this.watch(), 1000);
    const flvUrl = this.prefer === 'flv' && this.live && hlsJsUsable() ? flvUrlOf(url) : null;
    if (flvUrl) {
      this.playFlv(flvUrl, url);
      return;
    }
    const native = this.prefer === 'hls.js' ? !hlsJsUsable() && hasNativeHls(this.video) : hasNativeHls(this.video);
    if (native) {
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
      this.status('error', String(e.message));
      return;
    }
    if (this.url !== url) return; // stopped or restarted meanwhile
    if (!Hls.isSupported()) {
      this.status('error', 'this browser cannot play HLS');
      return;
    }
    this.engine = 'hls.js';
    // No text tracks: comments come through FRAG_PARSING_METADATA and the pages draw them;
    // hls.js's cue tracks would load `data:` URLs the pages' CSP (media-src 'self' blob:) refuses.
    const quiet = { enableEmsgMetadataCues: false, enableID3MetadataCues: false, enableCEA708Captions: false };
    const hls = new Hls(this.live
      ? {
        ...quiet,
        // LL-HLS when the playlist has parts (hls.PART-HOLD-BACK behind live); plain HLS
        // playlists play as before (three target durations behind).
        lowLatencyMode: true,
        liveDurationInfinity: true,
        backBufferLength: 30,
        manifestLoadingMaxRetry: 2,
        levelLoadingMaxRetry: 4,
        bufferController: tolerantBufferController(Hls),
      }
      : { ...quiet, backBufferLength: 60, bufferController: tolerantBufferController(Hls) });
    this.hls = hls;
    hls.on(Hls.Events.ERROR, (_event, data) => {
      if (!data.fatal || this.hls !== hls) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) {
        this.mediaError(hls);
      } else {
        const offline = data.response && data.response.code === 404;
        this.scheduleRetry(offline ? 'offline' : `network error (${data.details})`);
      }
    });
    hls.on(Hls.Events.LEVEL_UPDATED, (_event, data) => {
      if (this.live && data.details && data.details.live === false) this.endlist = true;
    });
    hls.on(Hls.Events.MANIFEST_PARSED, () => this.start());
    hls.on(Hls.Events.INIT_PTS_FOUND, (_event, data) => {
      if (this.hls === hls && data.id === 'main') this.initPts.set(data.frag.cc, data.initPTS / data.timescale);
    });
    hls.on(Hls.Events.FRAG_CHANGED, (_event, data) => {
      if (this.hls === hls) this.playingCc = data.frag.cc;
    });
    this.onHls(hls, Hls);
    hls.loadSource(url);
    hls.attachMedia(this.video);
  }

  /**
   * HTTP-FLV through mpegts.js: about a second behind the publisher. Its clock is the
   * publisher's RTMP time, not the broadcast's, so the position is unknown (comments show on
   * arrival and are stamped by the server).
   */
  async playFlv(flvUrl, url) {
    let mpegts;
    try {
      mpegts = await loadMpegts();
    } catch (e) {
      this.status('error', String(e.message));
      return;
    }
    if (this.url !== url) return;
    this.engine = 'flv';
    const flv = mpegts.createPlayer(
      { type: 'flv', isLive: true, url: flvUrl },
      // A joiner gets the GOP from the latest keyframe (up to 2 s behind): jump when more than
      // 1.5 s is buffered, and play 10 % faster while more than 0.6 s is, down to 0.3 s.
      {
        enableStashBuffer: false,
        liveBufferLatencyChasing: true,
        liveBufferLatencyMaxLatency: 1.5,
        liveBufferLatencyMinRemain: 0.3,
        liveSync: true,
        liveSyncMaxLatency: 0.6,
        liveSyncTargetLatency: 0.3,
        liveSyncPlaybackRate: 1.1,
      },
    );
    this.flv = flv;
    flv.on(mpegts.Events.ERROR, () => {
      if (this.flv === flv) this.scheduleRetry('offline');
    });
    flv.on(mpegts.Events.LOADING_COMPLETE, () => {
      if (this.flv === flv) this.scheduleRetry('offline');
    });
    flv.attachMediaElement(this.video);
    flv.load();
    this.start();
  }

  /**
   * Seconds between the moment barrage received the frame on screen and now, or null when it
   * cannot be told. hls.js: its position is the frame's stream_ms, so the frame arrived at
   * `firstFrameMs + position` on the server's clock (`clockOffsetMs` = server minus local).
   * HTTP-FLV: barrage sends each tag as it arrives, so what is buffered ahead of the picture
   * is how far behind it is. A browser's own HLS tells neither.
   */
  behindLiveS(firstFrameMs, clockOffsetMs = 0, nowMs = Date.now()) {
    const v = this.video;
    if (!this.url || !this.live || v.readyState < 2) return null;
    if (this.engine === 'hls.js') {
      const pos = playerPositionMs(this);
      if (pos === null || !Number.isFinite(firstFrameMs)) return null;
      return Math.max(0, (nowMs + clockOffsetMs - firstFrameMs - pos) / 1000);
    }
    if (this.engine === 'flv' && v.buffered.length > 0) {
      return Math.max(0, v.buffered.end(v.buffered.length - 1) - v.currentTime);
    }
    return null;
  }

  /** A fatal media error: recover in place once, then (if it comes back soon) start over. */
  mediaError(hls) {
    const now = Date.now();
    this.mediaErrors = this.mediaErrors.filter((t) => now - t < 10000);
    this.mediaErrors.push(now);
    if (this.mediaErrors.length <= 1) hls.recoverMediaError();
    else this.scheduleRetry('media error');
  }

  start() {
    this.status('playing', 'playing');
    this.video.play().catch((e) => {
      if (e.name === 'NotAllowedError') this.status('playing', 'press play to start');
    });
  }

  /** Every second: notice progress, stalls and holes, and a live stream played to its end. */
  watch() {
    const v = this.video;
    if (!this.url || this.state === 'retrying') return;
    const t = v.currentTime;
    if (t !== this.lastTime) {
      this.lastTime = t;
      this.stillSince = Date.now();
      if (this.state === 'stalled' && !v.paused) this.status('playing', 'playing');
      return;
    }
    if (v.paused || this.state === 'loading' || Date.now() - this.stillSince < STALL_S * 1000) return;
    const ranges = [];
    for (let i = 0; i < v.buffered.length; i++) ranges.push([v.buffered.start(i), v.buffered.end(i)]);
    const jump = holeJumpTarget(ranges, t);
    if (jump !== null) {
      this.jumps++;
      v.currentTime = jump;
      return;
    }
    if (this.live && this.endlist) {
      this.ended();
      return;
    }
    if (this.state !== 'stalled') {
      this.status('stalled', this.live ? 'reconnecting: waiting for the stream' : 'buffering');
    }
  }

  /** The live playlist ended and was played out: stop and tell the page. */
  ended() {
    if (!this.live || !this.url) return;
    this.stop();
    this.status('ended', 'the broadcast ended');
    this.onEnded();
  }

  scheduleRetry(why) {
    const url = this.url;
    this.status('retrying', why === 'offline' ? 'offline: waiting for the stream' : `${why}; reconnecting`);
    clearTimeout(this.retry);
    this.retry = setTimeout(() => {
      if (this.url === url) this.play(url);
    }, this.retryMs);
  }

  stop() {
    clearTimeout(this.retry);
    clearInterval(this.watchdog);
    this.video.removeEventListener('error', this.onNativeError);
    this.video.removeEventListener('loadedmetadata', this.onNativeReady);
    this.video.removeEventListener('ended', this.onVideoEnded);
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    if (this.flv) {
      this.flv.destroy();
      this.flv = null;
    }
    if (this.engine === 'native') {
      this.video.removeAttribute('src');
      this.video.load();
    }
    this.url = '';
    this.lastTime = -1;
    this.state = 'idle';
    this.initPts.clear();
    this.playingCc = 0;
  }
}
