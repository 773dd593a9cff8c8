// The consult room: the socket, the lobby, the peer connection, the tiles, the notes panel and
// the controls. It follows docs/protocol.md: handlers are registered before `join` is sent (the
// first offer may arrive before the join ack); every emit is acknowledged, and a refusal shows
// its code.
//
// Reconnecting: Socket.IO reconnects by itself and `connect` sends `join` again (same seat, a
// new peer connection, the notes re-synced and unacknowledged edits sent). When the browser's
// own peer connection fails, stays disconnected, or the page comes back `online` (a network
// change: netchange.js) while the socket is up, `media-restart {pc}` asks the server for a
// new one on the same seat (idempotent: nothing happens if the server already replaced it).

import { CareAlerts } from "./carealerts.js";
import { confirmEnd, confirmRemove } from "./dialog.js";
import { $, isHost } from "./dom.js";
import { renderHostLobby } from "./lobby.js";
import { MediaControls } from "./mediacontrols.js";
import { MediaRestart } from "./mediarestart.js";
import { PeerLink } from "./peer.js";
import { PresencePrompts } from "./presenceprompts.js";
import { QualityMonitor } from "./quality.js";
import { clearRefusal, showBanner, showRefusal } from "./refusals.js";
import { RoomApi } from "./roomapi.js";
import { RoomNotes } from "./roomnotes.js";
import { ScreenShare } from "./screenshare.js";
import { sessionCaller } from "./session.js";
import { ensureRoomExtras } from "./roomextras.js";
import { showSavedPlan } from "./savedplan.js";
import { Signaling } from "./signaling.js";
import { Tiles } from "./tiles.js";
import { showView } from "./views.js";

// Asked again while the new peer connection does not come up (the first ask may be lost with a
// socket that is dying too).

export class Room {
  /**
   * @param {object} options
   * @param {string} options.token the join token
   * @param {string} options.consultId
   * @param {string|null} [options.workerUrl] the consult's worker (the session's `worker.url`)
   * @param {import("./devices.js").DeviceCheck} options.devices the local camera and microphone
   * @param {(how: {kind: "ended"|"left", planId?: string}) => void} options.onFinished
   * @param {(code: string) => void} options.onFatal a refusal that ends this page's session
   * @param {(event: string, detail: object) => void} [options.emit] room events for embedders
   */
  constructor({ token, consultId, workerUrl = null, devices, onFinished, onFatal, emit }) {
    this.consultId = consultId;
    this.devices = devices;
    this.onFinished = onFinished;
    this.onFatal = onFatal;
    this.emit = emit || (() => {});
    this.api = new RoomApi({ consultId, token });
    const locate = () => this.api.get("").then((session) => session.worker?.url ?? null);
    this.signaling = new Signaling({ token, consultId, url: workerUrl, locate });
    /** Everyone listed for the consult (REST session), to name those who are not connected. */
    this.roster = new Map();
    this.roomNotes = new RoomNotes({
      signaling: this.signaling,
      api: this.api,
      care: () => this.care,
      report: (code, during) => this.report(code, during),
    });
    this.quality = null;
    this.care = new CareAlerts({
      role: () => this.you?.role ?? null,
      onChange: (what) => this.roomNotes.refreshCareTabs(what),
    });
    this.prompts = new PresencePrompts({
      call: sessionCaller(consultId, token),
      containers: ["lobby-presence-prompts", "room-presence-prompts"],
      youId: () => this.you?.participant_id ?? null,
      lookup: (pid) => this.participants.get(pid) || this.roster.get(pid),
    });
    this.share = ScreenShare.forRoom(this);
    this.mediaRestart = new MediaRestart({
      live: () => !this.finished && this.signaling.connected,
      generation: () => this.peer?.generation,
      ask: (payload) => this.signaling.call("media-restart", payload),
      report: (code) => this.report(code, "media-restart"),
    });
    this.network = this.mediaRestart.network;
    this.state = null;
    this.you = null;
    /** participant_id -> participant, everyone the server told us about (lobby and room). */
    this.participants = new Map();
    this.activeSpeaker = null;
    this.peer = null;
    this.tiles = null;
    this.view = "connecting";
    this.finished = false;
    this.connectionState = "new";
    /** Codes of refused events, newest last (shown to the person, kept for the test hook). */
    this.errors = [];
    this._closingCode = null;
    this._controls = new AbortController();
    this.media = new MediaControls({
      devices,
      send: (payload) => this.act("media-state", payload, { rethrow: true }),
      announced: () => this.you,
      onRender: ({ audio, video }) => {
        const self = this.you && this.participants.get(this.you.participant_id);
        if (self && this.tiles) this.tiles.upsert({ ...self, audio, video });
      },
      report: (code) => this.report(code, "media-state"),
    });
  }

  /** The notes channel (null before the first admission). */
  get notes() {
    return this.roomNotes.channel;
  }

  // -- starting -----------------------------------------------------------------------------

  start() {
    const s = this.signaling;
    // Every handler is in place before `join` is emitted (on connect).
    s.on("connect", () => this._join());
    s.on("connect_error", (error) => this._connectError(error));
    s.on("disconnect", (reason) => this._disconnected(reason));
    s.on("admitted", ({ state }) => this._admitted(state));
    s.on("lobby", ({ waiting }) => this._lobby(waiting));
    s.on("peer-joined", ({ participant }) => this._peer(participant));
    s.on("peer-updated", ({ participant }) => this._peer(participant));
    s.on("peer-left", ({ participant_id: pid, reason }) => this._peerLeft(pid, reason));
    s.on("signal", (message) => this._signal(message));
    s.on("active-speaker", ({ participant_id: pid }) => this._setActiveSpeaker(pid));
    s.on("media-quality", (q) => this.share.quality(q) || this.tiles?.setVideoPaused(q.participant_id, q.video === "paused"));
    s.on("ended", ({ plan_id: planId }) => this.finish({ kind: "ended", planId }));
    s.on("safety-flag", (flag) => this.care.addSafetyFlags([flag]));
    s.on("consent-changed", (consent) => this.care.consentChanged(consent));
    s.on("presence-pending", ({ pending }) => this.prompts.set(pending));
    s.on("share", (share) => this.share.apply(share));
    s.on("error", ({ code }) => {
      this._closingCode = code; // the server disconnects this socket next
    });
    this._bindControls();
    ensureRoomExtras();
    this.care.clear();
    showBanner("Connecting…");
    s.connect();
    this.api
      .get("")
      .then((session) => {
        for (const p of session.participants || []) this.roster.set(p.id, { participant_id: p.id, role: p.role, name: p.name });
        this._renderTiles();
        this.prompts.render();
      })
      .catch(() => {}); // only names people who are not connected; the room works without it
  }

  async _join() {
    if (this.finished) return;
    this.mediaRestart.cancel();
    if (this.view !== "room") showBanner("Joining…");
    let ack;
    try {
      ack = await this.signaling.call("join");
    } catch (error) {
      if (this.signaling.recover(error)) return; // another worker, or ask where again
      this.fatal(error.code);
      return;
    }
    this.signaling.joined();
    this.network.rejoined();
    showBanner(null);
    this._applyState(ack.state);
  }

  _connectError(error) {
    const code = error?.data?.code;
    if (code) {
      this.fatal(code); // refused by the server: retrying the same token will not help
    } else {
      showBanner("Can't reach the server. Trying again…");
    }
  }

  _disconnected(reason) {
    if (this.finished) return;
    if (reason === "io server disconnect" || reason === "io client disconnect") {
      this.fatal(this._closingCode || "connection_closed");
    } else {
      // Socket.IO reconnects by itself; `connect` sends `join` again and the server keeps the
      // seat for the reconnect grace, then offers a new peer connection.
      showBanner("Connection lost. Reconnecting…");
      $("room").dataset.reconnecting = "true";
      this.notes?.disconnect();
      this.peer?.forget(); // the next offer starts a new connection (maybe from another worker)
    }
  }

  // -- room state -----------------------------------------------------------------------------

  _applyState(state) {
    if (!state || this.finished) return;
    this.state = state;
    this.you = state.you;
    this.participants = new Map(state.participants.map((p) => [p.participant_id, p]));
    this.participants.set(state.you.participant_id, state.you);
    this.activeSpeaker = state.active_speaker;
    if (Array.isArray(state.safety_flags)) this.care.addSafetyFlags(state.safety_flags);
    if (state.consent) this.care.consentChanged(state.consent, { quiet: true });
    this.prompts.set(state.presence_pending);
    this.share.apply(state.share);
    this._ensurePeer().setIceServers(state.ice_servers);
    if (this._earlyOffer) {
      const offer = this._earlyOffer;
      this._earlyOffer = null;
      this.peer.handleOffer(offer);
    }
    if (state.you.place === "room") this._enterRoom();
    else this._enterLobby();
    if (isHost(this.you.role)) this._lobby([...this.participants.values()].filter((p) => p.place === "lobby"));
  }

  _admitted(state) {
    this._applyState(state);
    this.emit("admitted", { participant_id: state?.you?.participant_id });
  }

  _ensurePeer() {
    if (!this.peer) {
      this.peer = new PeerLink({
        selfId: this.you.participant_id,
        call: (event, payload) => this.signaling.call(event, payload),
        onRemote: (media) => this._remote(media),
        onProblem: (code, during) => this.report(code, during),
        onConnectionState: (state) => {
          this.connectionState = state;
          $("room").dataset.media = state;
          this.network.connectionState(state);
          if (state === "connected" && this.signaling.connected) {
            delete $("room").dataset.reconnecting;
            showBanner(null);
          }
        },
      });
      this.peer.setLocalTrack("audio", this.devices.audioTrack);
      this.peer.setLocalTrack("video", this.devices.videoTrack);
      this.devices.onTrackChange = (kind, track) => {
        this.peer?.setLocalTrack(kind, track);
        this.tiles?.setLocalStream(this.devices.stream);
      };
    }
    return this.peer;
  }

  _enterLobby() {
    this.view = "lobby";
    showView("lobby", { focus: true });
  }

  _enterRoom() {
    const first = this.view !== "room";
    this.view = "room";
    if (!this.tiles) {
      this.tiles = new Tiles($("tiles"), {
        selfId: this.you.participant_id,
        onAudioBlocked: () => {
          $("enable-sound").hidden = false;
        },
        lookup: (pid) => this.participants.get(pid) || this.roster.get(pid),
        onRemove: isHost(this.you.role) ? (pid) => this.removeParticipant(pid) : null,
      });
      this.tiles.setLocalStream(this.devices.stream);
      this.tiles.setStage(this.share.stage);
      this.quality = new QualityMonitor({
        peer: () => this.peer,
        selfId: this.you.participant_id,
        onChange: (levels) => this.tiles?.setQuality(levels),
      });
    }
    this._startNotes();
    $("end").hidden = !isHost(this.you.role);
    this._renderTiles();
    this.media.render();
    if (first) {
      showView("room", { focus: true });
      this.emit("joined", { participant_id: this.you.participant_id, role: this.you.role });
      // Tell the others if a device is missing or was switched off before entering.
      this.media.announce({ onlyIfChanged: true }).catch(() => {});
    }
  }

  _peer(participant) {
    if (!participant || this.finished) return;
    const pid = participant.participant_id;
    const known = this.participants.has(pid);
    this.participants.set(pid, participant);
    if (pid === this.you?.participant_id) this.you = participant;
    if (!known) this.emit("participant-joined", { participant_id: pid, role: participant.role });
    this._renderTiles();
  }

  _peerLeft(pid, reason) {
    this.participants.delete(pid);
    this.notes?.forget(pid);
    this._renderTiles();
    this.emit("participant-left", { participant_id: pid, reason });
  }

  _lobby(waiting) {
    if (!this.you || !isHost(this.you.role)) return;
    for (const participant of waiting) this.participants.set(participant.participant_id, participant);
    renderHostLobby($("host-lobby"), $("lobby-list"), waiting, {
      onAdmit: (pid) => this.act("admit", { participant_id: pid }, { subject: this.participants.get(pid)?.name }),
      onDeny: (pid) => this.act("deny", { participant_id: pid }),
      consentingRole: this.care.consent?.consenting_role,
    });
  }

  _signal(message) {
    if (!message || message.type !== "offer" || this.finished) return;
    // Before the join ack the peer may not exist yet (a rejoin's offer): create it now; it
    // waits for the ICE servers from the ack.
    if (!this.peer) {
      if (!this.you) {
        this._earlyOffer = message;
        return;
      }
      this._ensurePeer();
    }
    this.peer.handleOffer(message);
  }

  // -- notes and care ---------------------------------------------------------------------------

  /** In the room: the notes channel and panel exist once; each new socket syncs them again. */
  _startNotes() {
    this.roomNotes.start(this.you, this.signaling.socket.id);
  }

  _setActiveSpeaker(pid) {
    this.activeSpeaker = pid;
    this.tiles?.setActiveSpeaker(pid);
  }

  _remote(media) {
    this.tiles?.setRemote(media);
    this.share.setRemote(media);
  }

  _renderTiles() {
    this.share.render(); // a sharer's name may have arrived
    if (!this.tiles) return;
    const inRoom = [...this.participants.values()].filter((p) => p.place === "room");
    this.tiles.sync(inRoom);
    this.tiles.setActiveSpeaker(this.activeSpeaker);
  }

  // -- controls ---------------------------------------------------------------------------------

  _bindControls() {
    const signal = this._controls.signal;
    $("toggle-audio").addEventListener("click", () => this.toggle("audio"), { signal });
    $("toggle-video").addEventListener("click", () => this.toggle("video"), { signal });
    $("leave").addEventListener("click", () => this.leave(), { signal });
    $("lobby-leave").addEventListener("click", () => this.leave(), { signal });
    $("end").addEventListener("click", () => this.end(), { signal });
    window.addEventListener("offline", () => this.network.offline(), { signal });
    window.addEventListener("online", () => this.network.online(), { signal });
    this.share.bind(signal);
    $("enable-sound").addEventListener(
      "click",
      () => {
        $("enable-sound").hidden = true;
        this.tiles?.retryAudio();
      },
      { signal },
    );
  }

  /** Whether this participant is sending `kind` (the embed SDK's commands ask). */
  sending(kind) {
    return this.media.sending(kind);
  }

  toggle(kind) {
    return this.media.toggle(kind);
  }

  async leave() {
    await this.notes?.flushNow(); // the last keystrokes are saved before the seat is given up
    try {
      await this.act("leave", {}, { rethrow: true });
    } catch (error) {
      if (error.code !== "not_joined") return; // stay: the person can try again
    }
    this.finish({ kind: "left" });
  }

  async end() {
    const sure = await confirmEnd();
    if (!sure || this.finished) return;
    await this.notes?.flushNow(); // your last keystrokes are in the saved plan
    let ack;
    try {
      ack = await this.act("end", {}, { rethrow: true });
    } catch {
      return;
    }
    this.finish({ kind: "ended", planId: ack.plan_id });
  }

  async removeParticipant(pid) {
    const sure = await confirmRemove(this.participants.get(pid)?.name);
    if (sure && !this.finished) await this.act("remove", { participant_id: pid });
  }

  /** Emit an acknowledged event; a refusal is shown with its code (and rethrown if asked).
   * `subject` names the person a refusal is about. */
  async act(event, payload, { rethrow = false, subject = null } = {}) {
    try {
      const ack = await this.signaling.call(event, payload);
      clearRefusal();
      return ack;
    } catch (error) {
      this.report(error.code, event, subject);
      if (rethrow) throw error;
      return null;
    }
  }

  // -- messages -------------------------------------------------------------------------------

  report(code, during, subject = null) {
    this.errors.push({ code, during });
    showRefusal(code, during, subject);
  }

  // -- the end ----------------------------------------------------------------------------------

  /** Stop everything: media, the socket, the controls. Safe to call twice. */
  finish(how) {
    if (this.finished) return;
    this.finished = true;
    this.view = "finished";
    this._controls.abort();
    this.mediaRestart.close();
    this.quality?.stop();
    this.roomNotes.close();
    document.getElementById("confirm-dialog")?.remove();
    this.care.clear();
    this.prompts.clear();
    delete $("room").dataset.reconnecting;
    this.share.clear();
    this.peer?.close();
    this.tiles?.clear();
    this.signaling.close();
    this.devices.stop();
    $("host-lobby").hidden = true;
    $("enable-sound").hidden = true;
    showBanner(null);
    clearRefusal();
    if (how.kind === "ended") this.emit("ended", { plan_id: how.planId || null });
    this.onFinished(how);
    if (how.kind === "ended") {
      showSavedPlan($("saved-plan"), this.api, this.you);
    }
  }

  fatal(code) {
    if (this.finished) return;
    this.finish({ kind: "refused", code });
    this.onFatal(code);
  }

  /** A read-only summary for the test hook (docs/web.md). */
  snapshot() {
    return structuredClone({
      view: this.view,
      you: this.you,
      participants: [...this.participants.values()],
      activeSpeaker: this.activeSpeaker,
      pc: this.peer?.generation ?? null,
      tracks: this.peer?.tracks ?? [],
      connectionState: this.connectionState,
      errors: this.errors,
      quality: this.quality?.snapshot() ?? {},
      notes: this.notes?.snapshot() ?? null,
      safetyFlags: this.care.flags,
      consent: this.care.consent,
      mediaRestarts: this.mediaRestart.count,
      share: this.share.share,
      workerMoves: this.signaling.moves,
      relocations: this.signaling.relocations,
      reconnecting: $("room").dataset.reconnecting === "true",
    });
  }
}
