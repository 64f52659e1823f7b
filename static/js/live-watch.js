// What the viewer page does with the room's live status, polled from the API: start the
// player when the room is (again) on air, wait while it is off, say what is going on. Pure,
// tested in node; room.js does the polling and the DOM.

/** How often the page asks for the room's status (ms): sooner while it waits for a stream. */
export const POLL_PLAYING_MS = 5000;
export const POLL_WAITING_MS = 2000;

/**
 * The next step for the page.
 * @param live the room's `live` (null when off air)
 * @param playerActive whether the player has a stream attached (loading, playing, stalled)
 * @param endedSession the session whose playlist the player played to its end, if any
 * @returns {{play: boolean, badge: 'live'|'reconnecting'|'offline', note: string}}
 */
export function nextStep(live, playerActive, endedSession) {
  if (!live) {
    return { play: false, badge: 'offline', note: playerActive ? '' : 'offline: waiting for the stream' };
  }
  if (live.session === endedSession) {
    // The API still names the broadcast that just ended (a report not yet refreshed).
    return { play: false, badge: 'offline', note: 'the broadcast ended; waiting for the next one' };
  }
  if (live.reconnecting) {
    return {
      play: !playerActive,
      badge: 'reconnecting',
      note: "reconnecting: the streamer's connection dropped; waiting for it to come back",
    };
  }
  return { play: !playerActive, badge: 'live', note: '' };
}
