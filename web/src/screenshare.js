// Screen share (docs/protocol.md, "Screen share"): the Share screen button (a screen or a window,
// from getDisplayMedia), the stage that shows whoever shares large to the others (first in
// #tiles, full width), stopping a share (your own, or a host stopping anyone's), and the hosts'
// switch that lets the client share. Who shares comes from the join state and the `share` event;
// the screen goes out on the m-line the offer maps to this participant's `screen` source
// (peer.js), and arrives on the one mapped to the sharer's.

import { $, button, el, isHost, roleWords } from "./dom.js";

/** Whether `role` may ask to share now (the server decides; this only shows the button). */
export function mayShare(role, clientMayShare) {
  if (isHost(role)) return true;
  return role === "client" && clientMayShare === true;
}

export class ScreenShare {
  /**
   * @param {object} options
   * @param {() => {participant_id: string, role: string}|null} options.you
   * @param {(pid: string) => object|undefined} options.lookup a participant by id
   * @param {(event: string, payload: object, options?: object) => Promise<object|null>} options.act
   *   an acknowledged event; a refusal is shown (and rethrown with `rethrow`)
   * @param {(track: MediaStreamTrack|null) => void} options.setTrack what the screen line sends
   * @param {(code: string) => void} options.report a capture that failed
   * @param {(event: string, detail: object) => void} [options.emit] `share-started` and
   *   `share-stopped` for the embed SDK (ids and roles only)
   */
  constructor({ you, lookup, act, setTrack, report, emit = () => {} }) {
    this._you = you;
    this._emit = emit;
    this._lookup = lookup;
    this._act = act;
    this._setTrack = setTrack;
    this._report = report;
    /** {participant_id, client_may_share} as the server last said. */
    this.share = { participant_id: null, client_may_share: false };
    /** This page's capture while it shares (or asks to). */
    this.track = null;
    this._remote = null; // the sharer's screen track, as received
    this._media = new Map(); // the latest remote tracks (the offer comes before the event)
    this._starting = false; // between the capture and share-start's acknowledgement
    this.stage = this._buildStage();
  }

  /** The share of a `Room` (room.js): its participants, its acts, its peer's screen line. */
  static forRoom(room) {
    return new ScreenShare({
      you: () => room.you,
      lookup: (pid) => room.participants.get(pid) || room.roster.get(pid),
      act: (event, payload, options) => room.act(event, payload, options),
      setTrack: (track) => room.peer?.setLocalTrack("screen", track),
      report: (code) => room.report(code, "share"),
      emit: (event, detail) => room.emit(event, detail),
    });
  }

  get presenter() {
    return this.share.participant_id;
  }

  /** The join state's `share`, or a `share` event. */
  apply(share) {
    if (!share || typeof share !== "object") return;
    const before = this.presenter;
    this.share = {
      participant_id: typeof share.participant_id === "string" ? share.participant_id : null,
      client_may_share: share.client_may_share === true,
    };
    this._told(before, this.presenter);
    const self = this._you()?.participant_id;
    // Stopped by a host (or the permission taken back), or never ours: let the capture go.
    if (this.track && this.presenter !== self && !this._starting) this._release();
    this.setRemote(this._media);
  }

  /** The embedder hears a share stop, then the next start (a join finding one started too). */
  _told(before, after) {
    if (before === after) return;
    const detail = (pid) => ({ participant_id: pid, role: this._lookup(pid)?.role ?? null });
    if (before) this._emit("share-stopped", detail(before));
    if (after) this._emit("share-started", detail(after));
  }

  /** Remote tracks by participant (peer.js): the sharer's screen, if it arrived. */
  setRemote(media) {
    this._media = media;
    const track = this.presenter ? media.get(this.presenter)?.screen || null : null;
    if (track !== this._remote) {
      this._remote = track;
      this._video.srcObject = track ? new MediaStream([track]) : null;
      if (track) this._video.play().catch(() => {}); // muted: may always autoplay
    }
    this.render();
  }

  /** A `media-quality` event about a shared screen (true: it was one; the stage says so). */
  quality({ participant_id: pid, video, source }) {
    if (source !== "screen") return false;
    if (pid === this.presenter) this.stage.dataset.videoPaused = video === "paused" ? "true" : "false";
    return true;
  }

  /** Ask the browser for a screen or a window, then the server to share it. */
  async start() {
    const you = this._you();
    if (!you || this.track || !navigator.mediaDevices?.getDisplayMedia) return;
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: 15 }, audio: false });
    } catch (error) {
      if (error?.name !== "NotAllowedError" && error?.name !== "AbortError") this._report("share_capture_failed");
      return; // the person chose nothing
    }
    const track = stream.getVideoTracks()[0];
    if (!track) return;
    track.contentHint = "detail"; // text stays sharp: fewer frames rather than a blur
    // The browser's own "Stop sharing", or the shared window closing, ends the share.
    track.addEventListener("ended", () => this.stop());
    this.track = track;
    this._setTrack(track); // before share-start: its offer may come before the ack
    this._starting = true;
    try {
      await this._act("share-start", {}, { rethrow: true });
    } catch {
      this._release();
    } finally {
      this._starting = false;
    }
    this.render();
  }

  /** Stop your own share, or (a host) `pid`'s. */
  async stop(pid = null) {
    const self = this._you()?.participant_id;
    const target = pid || self;
    if (!target) return;
    if (target === self) {
      // Sent even before the share event came back: the server answers `stopped: false` when
      // there was nothing to stop.
      this._release();
      await this._act("share-stop", {});
    } else if (this.presenter === target) {
      await this._act("share-stop", { participant_id: target });
    }
    this.render();
  }

  /** The controls' Share screen and (hosts) Client may share buttons, until `signal` aborts. */
  bind(signal) {
    const toggle = () => (this.track || this.presenter === this._you()?.participant_id ? this.stop() : this.start());
    $("share-screen").addEventListener("click", toggle, { signal });
    $("client-share").addEventListener("click", () => this.toggleClientPermission(), { signal });
  }

  /** A host lets the client share, or takes it back. */
  async toggleClientPermission() {
    await this._act("share-permission", { client_may_share: !this.share.client_may_share });
  }

  _release() {
    const track = this.track;
    this.track = null;
    this._setTrack(null);
    if (track && track.readyState === "live") track.stop();
  }

  clear() {
    this._release();
    this.share = { participant_id: null, client_may_share: false };
    this._remote = null;
    this._media = new Map();
    this._video.srcObject = null;
    this.render();
  }

  // -- the page -------------------------------------------------------------------------------

  _buildStage() {
    const video = el("video", "share-video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true;
    this._video = video;
    this._caption = el("span", "share-caption");
    this._stopButton = button("Stop sharing", "share-stop", () => this.stop(this.presenter));
    this._stopButton.dataset.action = "stop-share";
    const bar = el("div", "share-bar", this._caption, this._stopButton);
    const stage = el("section", "share-stage", video, bar);
    stage.id = "share-stage";
    stage.hidden = true;
    return stage;
  }

  /** Show the stage and the buttons as the share and the permission now are. */
  render() {
    const you = this._you();
    const self = you?.participant_id;
    const presenter = this.presenter;
    const stage = this.stage;
    stage.hidden = !presenter;
    if (stage.dataset.participantId !== (presenter || "")) stage.dataset.videoPaused = "false";
    stage.dataset.participantId = presenter || "";
    stage.dataset.self = presenter && presenter === self ? "true" : "false";
    stage.dataset.hasVideo = this._remote && presenter !== self ? "true" : "false";
    if (presenter === self) {
      this._caption.textContent = "You are sharing your screen";
    } else if (presenter) {
      const who = this._lookup(presenter);
      this._caption.textContent = `${who?.name || `The ${roleWords(who?.role)}`} is sharing their screen`;
    }
    this._stopButton.hidden = !presenter || !(presenter === self || isHost(you?.role));
    this._stopButton.textContent = presenter === self ? "Stop sharing" : "Stop their share";
    stage.setAttribute("aria-label", this._caption.textContent || "Shared screen");

    const share = $("share-screen");
    if (share) {
      const supported = Boolean(navigator.mediaDevices?.getDisplayMedia);
      share.hidden = !you || !supported || !mayShare(you.role, this.share.client_may_share);
      share.disabled = Boolean(presenter && presenter !== self);
      share.setAttribute("aria-pressed", presenter === self ? "true" : "false");
      share.textContent = presenter === self ? "Stop sharing" : "Share screen";
    }
    const permission = $("client-share");
    if (permission) {
      permission.hidden = !isHost(you?.role);
      permission.setAttribute("aria-pressed", this.share.client_may_share ? "true" : "false");
      permission.textContent = this.share.client_may_share ? "Client may share: on" : "Client may share: off";
    }
  }

  /** For the test hook: the stage's video playback and its size on the page. */
  snapshot() {
    const quality = this._video.getVideoPlaybackQuality?.();
    const box = this.stage.getBoundingClientRect();
    return {
      participant_id: this.presenter,
      client_may_share: this.share.client_may_share,
      sharing: Boolean(this.track),
      hidden: this.stage.hidden,
      videoWidth: this._video.videoWidth,
      videoHeight: this._video.videoHeight,
      frames: quality ? quality.totalVideoFrames : 0,
      currentTime: this._video.currentTime,
      track: this._remote ? this._remote.readyState : null,
      width: box.width,
      height: box.height,
    };
  }
}
