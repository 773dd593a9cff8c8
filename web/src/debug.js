// A small read-only hook for tests and support: `window.triadDebug`. It exposes only what the
// page already shows the person (no token, no TURN credentials), as copies.

export function installDebugHook(app) {
  const hook = {
    /** {view, you, participants, activeSpeaker, pc, tracks, connectionState, errors}. */
    state() {
      const room = app.room;
      if (room) return room.snapshot();
      return { view: document.getElementById("main").dataset.view };
    },
    /** The remote tiles' <video> playback and track states, by participant. */
    remoteVideos() {
      return app.room?.tiles?.remoteVideos() ?? [];
    },
    /** The shared screen's stage: who shares, its <video> playback, its size on the page. */
    shareVideo() {
      return app.room?.share?.snapshot() ?? null;
    },
    /** inbound-rtp counters of the peer connection, by participant and kind (a Promise). */
    inboundRtp() {
      return app.room?.peer?.inboundStats() ?? Promise.resolve([]);
    },
    /** What the device check found: "ok", "no_camera", "denied", ... */
    devices() {
      const d = app.devices;
      return {
        status: d?.status ?? null,
        audio: d?.audioTrack?.readyState ?? null,
        video: d?.videoTrack?.readyState ?? null,
      };
    },
  };
  Object.defineProperty(window, "triadDebug", { value: Object.freeze(hook), enumerable: false });
}
