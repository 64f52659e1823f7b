// Load for scripts/soak.sh: VIEWERS WebSocket viewers in room demo (JSON), RATE system
// messages per second through the admin API, for SECONDS; every 10 s one line of JSON with
// what the viewers received and whether their seqs stayed contiguous. Needs the `ws` module
// (npm ci --prefix tests/browser).
import { createRequire } from 'node:module';
const require = createRequire(new URL('../tests/browser/package.json', import.meta.url));
const WebSocket = require('ws');

const [base, adminKey, viewers, rate, seconds] = [
  process.env.BASE, process.env.ADMIN_KEY, +process.env.VIEWERS, +process.env.RATE, +process.env.SECONDS,
];
const ws = base.replace(/^http/, 'ws');
let received = 0, breaks = 0, closed = 0, sent = 0, refused = 0;
const last = new Map();
for (let i = 0; i < viewers; i++) {
  const s = new WebSocket(`${ws}/ws/demo?format=json`);
  s.on('open', () => {
    s.send(JSON.stringify({ type: 'hello' }));
    // The protocol's heartbeat (docs/PROTOCOL.md): silent sockets are closed at 70 s.
    setInterval(() => s.readyState === 1 && s.send('{"type":"heartbeat"}'), 30000);
  });
  s.on('message', (data) => {
    const f = JSON.parse(data);
    if (f.type !== 'batch') return;
    for (const e of f.events) {
      const prev = last.get(i);
      if (prev !== undefined && e.seq !== prev + 1) breaks++;
      last.set(i, e.seq);
      received++;
    }
  });
  s.on('close', () => closed++);
  s.on('error', () => {});
  if (i % 100 === 99) await new Promise((r) => setTimeout(r, 50));
}
const started = Date.now();
const timer = setInterval(async () => {
  for (let k = 0; k < rate / 10; k++) {
    sent++;
    fetch(`${base}/api/rooms/demo/system`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminKey}` },
      body: JSON.stringify({ text: `soak ${sent}` }),
    }).then((r) => { if (r.status !== 202) refused++; }).catch(() => refused++);
  }
}, 100);
const report = setInterval(() => {
  console.log(JSON.stringify({ t: Math.round((Date.now() - started) / 1000), sent, refused, received, seq_breaks: breaks, closed }));
}, 10000);
setTimeout(() => { clearInterval(timer); clearInterval(report); process.exit(0); }, seconds * 1000);
