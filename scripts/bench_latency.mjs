#!/usr/bin/env node
// Ingest-to-screen latency of the three live paths, measured the same way for each:
// plain HLS (hls.js, `hls.part_ms = 0`), LL-HLS (hls.js low-latency mode, `hls.part_ms` > 0)
// and HTTP-FLV (mpegts.js), each on the viewer page in headless Chromium.
//
// How: ffmpeg pushes an OBS-like stream (x264 veryfast, 2 s GOP, B-frames, AAC) whose top row
// carries the frame number as 16 black/white blocks. The page, on every frame it presents
// (requestVideoFrameCallback), reads the number back from the picture. Frame N reached barrage
// at `first_frame_ms + N * 1000 / 30` (the room's live status gives first_frame_ms, stream
// time 0), so latency = now - that, on one machine's clock (what PROGRAM-DATE-TIME says). The
// encoder's delay is in that figure (video reaches barrage later than the audio that started
// the clock); a plain HTTP-FLV reader measures it in the same window, and the table gives the
// latency after receipt too. The page's own "N.N s behind live" status line is read beside it. Median and p95 over --seconds per path, after a
// warm-up; barrage's CPU for the stream over the same window; then the CPU one more HTTP-FLV
// viewer costs (--flv-viewers plain HTTP readers against none, same stream, same run).
//
// Usage: barrage bench latency [--seconds 30] [--modes hls,llhls,flv] [--part-ms 200]
//        [--flv-viewers 100] [--bframes 3] [--json]
//   (or: node scripts/bench_latency.mjs ..., with BENCH_BARRAGE_BIN naming the binary)
// Needs: ffmpeg, chromium, `npm ci --prefix tests/browser` (scripts/test.sh does both).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const require = createRequire(path.join(ROOT, 'tests/browser/package.json'));
const { chromium } = require('playwright-core');

const FPS = 30;
const BITS = 16;
const ROOM = 'latency';
const KEY = 'latency-bench-key';
const ADMIN = 'bench-admin-key-123456';
const TICK = 100; // /proc stat clock ticks per second on Linux

function args() {
  const a = { seconds: 30, modes: ['hls', 'llhls', 'flv'], partMs: 200, flvViewers: 100, json: false, warmup: 8, bframes: 3 };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    const next = () => v[++i];
    switch (v[i]) {
      case '--seconds': a.seconds = Number(next()); break;
      case '--modes': a.modes = next().split(',').filter(Boolean); break;
      case '--part-ms': a.partMs = Number(next()); break;
      case '--flv-viewers': a.flvViewers = Number(next()); break;
      case '--warmup': a.warmup = Number(next()); break;
      case '--bframes': a.bframes = Number(next()); break;
      case '--json': a.json = true; break;
      default: fail(`unknown argument ${v[i]}`);
    }
  }
  for (const m of a.modes) if (!['hls', 'llhls', 'flv'].includes(m)) fail(`unknown mode ${m} (hls, llhls, flv)`);
  if (!(a.seconds >= 5)) fail('--seconds must be at least 5');
  return a;
}

function fail(msg) {
  console.error(`bench latency: ${msg}`);
  process.exit(2);
}

const log = (...m) => console.error('[latency]', ...m);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function until(what, fn, timeoutMs) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

function cpuSeconds(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').pop().trim().split(/\s+/);
  return (Number(f[11]) + Number(f[12])) / TICK;
}

function quantile(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** ffmpeg's -vf: a black top row with a white block per set bit of the frame number. */
function barcodeFilter() {
  const parts = [`drawbox=x=0:y=0:w=640:h=40:color=black:t=fill`];
  for (let k = 0; k < BITS; k++) {
    parts.push(`drawbox=x=${k * 40}:y=0:w=40:h=40:color=white:t=fill:enable='eq(mod(floor(n/${2 ** k})\\,2)\\,1)'`);
  }
  return parts.join(',');
}

/** Starts barrage on its own ports and data dir; part_ms 0 = plain HLS. */
async function startBarrage(bin, work, partMs) {
  const httpPort = await freePort();
  const rtmpPort = await freePort();
  const dir = fs.mkdtempSync(path.join(work, `barrage-${partMs}-`));
  const cfg = path.join(dir, 'barrage.toml');
  const lines = [
    `data_dir = "${dir}/data"`, 'log = "warn"',
    '[http]', `listen = "127.0.0.1:${httpPort}"`,
    '[rtmp]', `listen = "127.0.0.1:${rtmpPort}"`,
    '[auth]', `admin_key = "${ADMIN}"`, 'token_secret = "bench-secret-123456789"',
    '[thumbnails]', 'enabled = false',
  ];
  lines.push('[hls]', `part_ms = ${partMs}`);
  lines.push('[[rooms]]', `id = "${ROOM}"`, 'title = "latency"', `stream_key = "${KEY}"`);
  fs.writeFileSync(cfg, lines.join('\n') + '\n');
  const proc = spawn(bin, ['serve', '--config', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr = (stderr + d).slice(-4000); });
  const base = `http://127.0.0.1:${httpPort}`;
  await until(`barrage on ${base}`, async () => {
    if (proc.exitCode !== null) throw new Error(`barrage exited: ${stderr}`);
    const r = await fetch(`${base}/api/rooms/${ROOM}`);
    return r.ok;
  }, 30000).catch((e) => {
    proc.kill('SIGKILL');
    throw new Error(`${e.message}\n${stderr}`);
  });
  return { proc, base, rtmp: `rtmp://127.0.0.1:${rtmpPort}/live/${KEY}` };
}

function startPush(rtmpUrl, bframes) {
  const p = spawn('ffmpeg', [
    '-hide_banner', '-loglevel', 'error', '-re',
    '-f', 'lavfi', '-i', `testsrc2=size=640x360:rate=${FPS}`,
    '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
    '-vf', barcodeFilter(),
    // OBS's x264 defaults: veryfast, B-frames on (x264's 3), keyframe every 2 s.
    '-c:v', 'libx264', '-preset', 'veryfast', '-b:v', '1500k', '-maxrate', '1500k', '-bufsize', '3000k',
    '-bf', String(bframes), '-g', String(2 * FPS), '-keyint_min', String(2 * FPS), '-sc_threshold', '0', '-pix_fmt', 'yuv420p',
    '-c:a', 'aac', '-b:a', '128k', '-ac', '2',
    '-f', 'flv', rtmpUrl,
  ], { stdio: ['ignore', 'ignore', 'inherit'] });
  return p;
}

async function liveInfo(base) {
  const r = await fetch(`${base}/api/rooms/${ROOM}`);
  const j = await r.json();
  return j.live && Number.isFinite(j.live.first_frame_ms) ? j.live : null;
}

/** In the page: read the frame number off every presented frame. */
function installSampler() {
  const video = document.getElementById('video');
  const canvas = document.createElement('canvas');
  canvas.width = 640;
  canvas.height = 40;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  window.__latency = { frames: [], notes: [] };
  const onFrame = () => {
    try {
      if (video.videoWidth > 0) {
        ctx.drawImage(video, 0, 0, video.videoWidth, video.videoHeight * (40 / 360), 0, 0, 640, 40);
        const px = ctx.getImageData(0, 0, 640, 40).data;
        let n = 0;
        let clean = true;
        for (let k = 0; k < 16; k++) {
          const i = (20 * 640 + k * 40 + 20) * 4;
          const lum = (px[i] + px[i + 1] + px[i + 2]) / 3;
          if (lum > 170) n += 2 ** k;
          else if (lum > 85) clean = false;
        }
        if (clean) window.__latency.frames.push([Date.now(), n]);
      }
    } catch (e) {
      window.__latency.error = String(e);
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  setInterval(() => {
    const m = /^(\d+\.\d) s behind live$/.exec(document.getElementById('player-status').textContent);
    if (m) window.__latency.notes.push(Number(m[1]));
  }, 1000);
}

/**
 * When video reaches barrage relative to its place on the broadcast clock: a plain HTTP-FLV
 * reader (barrage relays each tag as it arrives) notes, per video tag, arrival minus
 * (first_frame_ms + timestamp). The encoder's own delay shows here: x264's lookahead and
 * B-frames hold video back while audio (which started the clock) flows at once.
 */
function startArrivalProbe(base, firstFrameMs) {
  const offsets = [];
  let buf = Buffer.alloc(0);
  let header = false;
  const joined = Date.now();
  const req = http.get(`${base}/live/${ROOM}.flv`, (res) => {
    res.on('data', (d) => {
      const now = Date.now();
      buf = Buffer.concat([buf, d]);
      if (!header) {
        if (buf.length < 13) return;
        buf = buf.subarray(13);
        header = true;
      }
      while (buf.length >= 11) {
        const size = buf.readUIntBE(1, 3);
        if (buf.length < 15 + size) break;
        const ts = buf.readUIntBE(4, 3) + buf[7] * 2 ** 24;
        // The joiner's backlog (from the latest keyframe) comes at once: skip its first 3 s.
        if (buf[0] === 9 && now - joined > 3000) offsets.push(now - firstFrameMs - ts);
        buf = buf.subarray(15 + size);
      }
    });
    res.on('error', () => {});
  });
  req.on('error', () => {});
  return {
    stop() {
      req.destroy();
      return quantile(offsets.slice().sort((a, b) => a - b), 0.5);
    },
  };
}

/** One path: open the page, wait for frames, measure for `seconds`. */
async function measurePath(context, server, mode, opts) {
  const player = mode === 'flv' ? 'flv' : 'hlsjs';
  const page = await context.newPage();
  await page.goto(`${server.base}/rooms/${ROOM}?player=${player}`);
  await until(`${mode}: the page playing`, () => page.evaluate(() => {
    const v = document.getElementById('video');
    return v && v.readyState >= 2 && v.currentTime > 0.5;
  }), 60000);
  await page.evaluate(installSampler);
  log(`${mode}: playing; warm-up ${opts.warmup} s, then ${opts.seconds} s`);
  await sleep(opts.warmup * 1000);
  const live = await liveInfo(server.base);
  const probe = startArrivalProbe(server.base, live.first_frame_ms);
  await sleep(3000);
  await page.evaluate(() => { window.__latency.frames = []; window.__latency.notes = []; });
  const cpu0 = cpuSeconds(server.proc.pid);
  const t0 = Date.now();
  await sleep(opts.seconds * 1000);
  const cpu = cpuSeconds(server.proc.pid) - cpu0;
  const arrivalMs = probe.stop();
  const wall = (Date.now() - t0) / 1000;
  const got = await page.evaluate(() => window.__latency);
  const engine = await page.evaluate(() => window.barrage.player.engine);
  await page.close();
  if (got.error) throw new Error(`${mode}: the page could not read frames: ${got.error}`);
  // A frame read wrong (a block mid-transition) shows as an impossible latency: dropped.
  const lat = got.frames
    .map(([now, n]) => (now - live.first_frame_ms - (n * 1000) / FPS) / 1000)
    .filter((s) => s > -0.5 && s < 30)
    .sort((a, b) => a - b);
  const notes = got.notes.slice().sort((a, b) => a - b);
  return {
    mode, engine, frames: got.frames.length, kept: lat.length,
    p50_s: quantile(lat, 0.5), p95_s: quantile(lat, 0.95),
    encoder_delay_s: arrivalMs === null ? null : arrivalMs / 1000,
    p50_after_receipt_s: arrivalMs === null ? null : quantile(lat, 0.5) - arrivalMs / 1000,
    p95_after_receipt_s: arrivalMs === null ? null : quantile(lat, 0.95) - arrivalMs / 1000,
    page_note_p50_s: quantile(notes, 0.5),
    server_cpu_pct: (100 * cpu) / wall,
  };
}

/** CPU one more HTTP-FLV viewer costs: `n` raw readers against none, same stream. */
async function flvViewerCost(server, n, seconds) {
  const measureWindow = async () => {
    const c0 = cpuSeconds(server.proc.pid);
    const t0 = Date.now();
    await sleep(seconds * 1000);
    return (cpuSeconds(server.proc.pid) - c0) / ((Date.now() - t0) / 1000);
  };
  const idle = await measureWindow();
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  const reqs = [];
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const req = http.get(`${server.base}/live/${ROOM}.flv`, { agent }, (res) => {
      res.on('data', (d) => { bytes += d.length; });
      res.on('error', () => {});
    });
    req.on('error', () => {});
    reqs.push(req);
  }
  await sleep(2000);
  const b0 = bytes;
  const loaded = await measureWindow();
  const mbps = ((bytes - b0) * 8) / 1e6 / seconds / n;
  for (const r of reqs) r.destroy();
  return {
    viewers: n, idle_cpu_pct: 100 * idle, loaded_cpu_pct: 100 * loaded,
    per_viewer_cpu_pct: (100 * (loaded - idle)) / n, per_viewer_mbit_s: mbps,
  };
}

async function main() {
  const opts = args();
  const bin = process.env.BENCH_BARRAGE_BIN || path.join(ROOT, 'target/release/barrage');
  if (!fs.existsSync(bin)) fail(`${bin} is missing (cargo build --release, or set BENCH_BARRAGE_BIN)`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'barrage-bench-latency-'));
  const userDataDir = fs.mkdtempSync(path.join(work, 'chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.BARRAGE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--autoplay-policy=no-user-gesture-required'],
    viewport: { width: 1280, height: 760 },
  });
  const rows = [];
  let flvCost = null;
  // Plain HLS and HTTP-FLV from a server without parts; LL-HLS from one with them.
  const plan = [
    { partMs: 0, modes: opts.modes.filter((m) => m !== 'llhls') },
    { partMs: opts.partMs, modes: opts.modes.filter((m) => m === 'llhls') },
  ].filter((p) => p.modes.length > 0);
  try {
    for (const step of plan) {
      const server = await startBarrage(bin, work, step.partMs);
      const push = startPush(server.rtmp, opts.bframes);
      try {
        await until('the room to go live', () => liveInfo(server.base), 30000);
        for (const mode of step.modes) {
          const row = await measurePath(context, server, mode, opts);
          row.part_ms = step.partMs;
          rows.push(row);
          log(JSON.stringify(row));
          if (mode === 'flv' && opts.flvViewers > 0) {
            flvCost = await flvViewerCost(server, opts.flvViewers, Math.min(opts.seconds, 15));
            log(JSON.stringify(flvCost));
          }
        }
      } finally {
        push.kill('SIGINT');
        server.proc.kill('SIGTERM');
        await sleep(500);
      }
    }
  } finally {
    await context.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
  const baseline = rows.find((r) => r.mode === 'hls');
  for (const r of rows) r.vs_plain_hls = baseline && r.p50_s ? r.p50_s / baseline.p50_s : null;
  if (opts.json) {
    console.log(JSON.stringify({ seconds: opts.seconds, paths: rows, flv_viewer_cost: flvCost }, null, 2));
    return;
  }
  const f = (x, d = 2) => (x === null || x === undefined ? '-' : x.toFixed(d));
  console.log(`\nIngest-to-screen latency, ${opts.seconds} s per path (frames read off the picture in headless Chromium)\n`);
  console.log('Behind the broadcast clock = now - (first_frame_ms + the frame\'s stream time), as PROGRAM-DATE-TIME says;');
  console.log("behind receipt = the same minus the video's arrival delay (encoder lookahead and B-frames, plus barrage's relay, read by a plain FLV reader).\n");
  console.log('| path | player | behind the clock p50 / p95 s | behind receipt p50 / p95 s | video arrival s | page says (p50) | vs plain HLS | frames read | barrage CPU, % of a core |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const name = r.mode === 'llhls' ? `LL-HLS (part ${r.part_ms} ms)` : r.mode === 'hls' ? 'plain HLS' : 'HTTP-FLV';
    console.log(`| ${name} | ${r.engine} | ${f(r.p50_s)} / ${f(r.p95_s)} | ${f(r.p50_after_receipt_s)} / ${f(r.p95_after_receipt_s)} | ${f(r.encoder_delay_s)} | ${f(r.page_note_p50_s, 1)} | ${f(r.vs_plain_hls)}x | ${r.kept}/${r.frames} | ${f(r.server_cpu_pct, 1)} |`);
  }
  if (flvCost) {
    console.log(`\nHTTP-FLV viewers: ${flvCost.viewers} readers add ${f(flvCost.loaded_cpu_pct - flvCost.idle_cpu_pct, 1)} % of a core ` +
      `(${f(flvCost.idle_cpu_pct, 1)} % -> ${f(flvCost.loaded_cpu_pct, 1)} %): ${f(flvCost.per_viewer_cpu_pct, 3)} % per viewer ` +
      `at ${f(flvCost.per_viewer_mbit_s)} Mbit/s each`);
  }
}

main().catch((e) => {
  console.error(`bench latency: ${e.stack || e}`);
  process.exit(1);
});
