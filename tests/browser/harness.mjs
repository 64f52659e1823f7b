// What the browser scripts share: named checks with their results, screenshots, API calls,
// waiting for a condition with a deadline, pages that record their errors, and the browser.
// Scripts read their settings from the environment the Rust tests set (BARRAGE_URL,
// BARRAGE_ADMIN_KEY, BARRAGE_ARTIFACTS, BARRAGE_CHROMIUM, BARRAGE_PAGES_ONLY).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

/** An environment variable the Rust test must set. */
export function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is not set; this script is run by a test in tests/`);
    process.exit(2);
  }
  return v;
}

export const BASE = need('BARRAGE_URL');
export const ADMIN = need('BARRAGE_ADMIN_KEY');
export const ART = process.env.BARRAGE_ARTIFACTS || 'test-artifacts';
export const ONLY = (process.env.BARRAGE_PAGES_ONLY || '').split(',').filter(Boolean);
/** A generous timeout for anything that should take a second or two. */
export const T = 20000;

export const log = (...a) => console.error('[pages]', ...a);
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const results = {};
export const screenshots = [];
export const pageErrors = [];

/** Runs one named check; a failure is recorded and later checks still run. */
export async function check(name, fn) {
  if (ONLY.length && !ONLY.includes(name)) return;
  const started = Date.now();
  try {
    const detail = await fn();
    results[name] = { ok: true, ms: Date.now() - started, ...(detail ? { detail } : {}) };
    log(`ok   ${name}`, detail ? JSON.stringify(detail) : '');
  } catch (e) {
    results[name] = { ok: false, ms: Date.now() - started, error: String(e && e.stack || e) };
    log(`FAIL ${name}: ${e && e.stack || e}`);
  }
}

export async function shot(page, name, opts = {}) {
  fs.mkdirSync(ART, { recursive: true });
  const file = path.join(ART, `${name}.png`);
  await page.screenshot({ path: file, ...opts });
  screenshots.push(file);
  return file;
}

export async function api(pathname, { method = 'GET', body, admin = false, bearer } = {}) {
  const headers = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (admin) headers.authorization = `Bearer ${ADMIN}`;
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const r = await fetch(BASE + pathname, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not json */ }
  if (!r.ok) throw new Error(`${method} ${pathname}: ${r.status} ${text.slice(0, 200)}`);
  return json;
}

/** Polls `fn` every `every` ms until it gives something truthy, failing after `timeout`. */
export async function until(what, fn, timeout = T, every = 100) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await sleep(every);
  }
}

/** Opens `pathname` in a new page that records page errors, CSP refusals and alerts. */
export async function openPage(context, pathname, name) {
  const page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) {
      pageErrors.push(`${name} (CSP): ${m.text()}`);
    }
  });
  page.on('response', (r) => {
    if (r.status() >= 400 && new URL(r.url()).pathname.startsWith('/static/')) {
      pageErrors.push(`${name}: ${r.url()} answered ${r.status()}`);
    }
  });
  page.on('dialog', (d) => {
    if (d.type() === 'alert') pageErrors.push(`${name}: an alert() ran: ${d.message()}`);
    d.accept().catch(() => {});
  });
  await page.goto(BASE + pathname, { waitUntil: 'domcontentloaded' });
  return page;
}

export async function videoTime(page) {
  return page.evaluate(() => document.querySelector('video').currentTime);
}

/** Debian's chromium, headless, in a profile of its own; `close()` removes the profile. */
export async function launch() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'barrage-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.BARRAGE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
    viewport: { width: 1280, height: 760 },
  });
  return {
    context,
    close: async () => {
      await context.close().catch(() => {});
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** Prints the final JSON line (every check, the screenshots) and exits 0 only if all passed. */
export function finish() {
  const ok = Object.keys(results).length > 0 && Object.values(results).every((r) => r.ok);
  process.stdout.write(`${JSON.stringify({ ok, checks: results, screenshots })}\n`);
  process.exit(ok ? 0 : 1);
}
