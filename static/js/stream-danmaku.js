// Danmaku read from inside the video: barrage's segments carry each delivered event as an
// `emsg` box holding an ID3 tag (scheme https://aomedia.org/emsg/ID3) with one TXXX frame,
// description "barrage", value the event's JSON (docs/PROTOCOL.md, "In the stream"). hls.js
// hands the ID3 bytes over as FRAG_PARSING_METADATA samples when it parses a segment, seconds
// before the picture gets there; the page's sync gate then holds each comment until it does.
// The parsing is pure and tested in node.

/** The TXXX description barrage writes. */
export const TXXX_DESCRIPTION = 'barrage';

/** An ID3 "synchsafe" 28-bit integer at `at`. */
function synchsafe(bytes, at) {
  return ((bytes[at] & 0x7f) << 21) | ((bytes[at + 1] & 0x7f) << 14)
    | ((bytes[at + 2] & 0x7f) << 7) | (bytes[at + 3] & 0x7f);
}

/**
 * The TXXX frames of an ID3v2.3/2.4 tag as [{description, value}] (UTF-8 or Latin-1 text);
 * [] for anything that is not a readable tag. Bounds are checked: the bytes come from a file.
 */
export function readTxxxFrames(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length < 10) return [];
  if (bytes[0] !== 0x49 || bytes[1] !== 0x44 || bytes[2] !== 0x33) return []; // "ID3"
  const version = bytes[3];
  if (version !== 3 && version !== 4) return [];
  const end = Math.min(bytes.length, 10 + synchsafe(bytes, 6));
  const frames = [];
  let at = 10;
  if (bytes[5] & 0x40) at += version === 4 ? synchsafe(bytes, 10) : 4 + new DataView(bytes.buffer, bytes.byteOffset + 10, 4).getUint32(0);
  while (at + 10 <= end) {
    const id = String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
    if (id === '\0\0\0\0') break; // padding
    const size = version === 4 ? synchsafe(bytes, at + 4)
      : new DataView(bytes.buffer, bytes.byteOffset + at + 4, 4).getUint32(0);
    const body = bytes.subarray(at + 10, Math.min(end, at + 10 + size));
    at += 10 + size;
    if (id !== 'TXXX' || body.length < 2) continue;
    const utf8 = body[0] === 3;
    const latin1 = body[0] === 0;
    if (!utf8 && !latin1) continue; // UTF-16: barrage never writes it
    const text = body.subarray(1);
    const split = text.indexOf(0);
    if (split < 0) continue;
    const decoder = new TextDecoder(utf8 ? 'utf-8' : 'latin1');
    frames.push({ description: decoder.decode(text.subarray(0, split)), value: decoder.decode(text.subarray(split + 1)) });
  }
  return frames;
}

/** The barrage events in hls.js metadata samples ([{data: Uint8Array, pts}, ...]). */
export function eventsFromMetadata(samples) {
  const events = [];
  for (const sample of samples || []) {
    for (const frame of readTxxxFrames(sample && sample.data)) {
      if (frame.description !== TXXX_DESCRIPTION) continue;
      try {
        const event = JSON.parse(frame.value);
        if (event && Number.isInteger(event.seq)) events.push(event);
      } catch {
        // not an event: ignored
      }
    }
  }
  return events;
}

/**
 * Follows the danmaku carried in the stream an hls.js instance plays: `onEvents(events)` gets
 * each parsed segment's events.
 */
export function followStreamDanmaku(hls, Hls, onEvents) {
  hls.on(Hls.Events.FRAG_PARSING_METADATA, (_event, data) => {
    const events = eventsFromMetadata(data && data.samples);
    if (events.length) onEvents(events);
  });
}
