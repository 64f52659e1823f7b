// OBS Browser Source overlay: danmaku only on a transparent page, no controls.
// Query: size (font px, 32), speed (seconds to cross, 8), lanes (default: as many as fit),
// gifts=1 (also show gifts), opacity (0.1-1), fixed (seconds top/bottom comments stay, 4),
// via=cdn (read the CDN files instead of the WebSocket).

import { DanmakuStage } from './danmaku-stage.js';
import { SeqFilter } from './seq-filter.js';
import { ChatSocket } from './ws-client.js';
import { CdnPoller } from './cdn-poller.js';
import { byId } from './dom.js';
import { roomFromPath, intParam } from './format.js';

const room = roomFromPath(location.pathname);
const params = new URLSearchParams(location.search);
const gifts = params.get('gifts') === '1';
const opacity = Math.min(1, Math.max(0.1, Number(params.get('opacity') || 1) || 1));
const stage = new DanmakuStage(byId('stage'), {
  fontSize: intParam(params, 'size', 32, 10, 120),
  scrollMs: intParam(params, 'speed', 8, 2, 60) * 1000,
  fixedMs: intParam(params, 'fixed', 4, 1, 30) * 1000,
  lanes: intParam(params, 'lanes', 0, 0, 60),
  opacity,
});
const filter = new SeqFilter();

function onEvents(events) {
  for (const e of events) {
    if (!filter.admit(e.seq)) continue;
    if (e.moderation) stage.remove(e.moderation.delete_seq);
    else if (e.danmaku || (gifts && e.gift)) stage.add(e);
  }
}

let source;
if (params.get('via') === 'cdn') {
  source = new CdnPoller({ room, onEvents, onSession: () => filter.clear() });
  source.start();
} else {
  source = new ChatSocket(room, { onEvents, onRestart: () => filter.clear() });
  source.connect('');
}
window.barrage = { stage, source, room };
