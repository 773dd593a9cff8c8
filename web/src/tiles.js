// The video tiles: one per participant in the room, labelled with name and role (and who sits
// with them, in same-room mode), showing muted / camera-off / reconnecting indicators, the
// connection quality and the active speaker; hosts get a Remove button on the others' tiles.
// State lives in data attributes on each tile (data-participant-id, data-role, data-self,
// data-audio, data-video, data-connected, data-speaking, data-has-video, data-quality, data-video-paused,
// data-same-room), which the CSS styles and the browser tests read.

import { button, el, roleTitle, roleWords } from "./dom.js";

const QUALITY_WORDS = { good: "good", fair: "fair", poor: "poor", unknown: "checking" };

// Others first in this order (a role the page does not know after them), yourself last.
const ROLE_ORDER = { client: 0, therapist: 1, psychiatrist: 2, guardian: 3, interpreter: 4 };

/** Compare two tiles' `{role, self}` for the order they are shown in. */
export function tileOrder(a, b) {
  if (a.self !== b.self) return a.self ? 1 : -1;
  const rank = (role) => (typeof role === "string" && Object.hasOwn(ROLE_ORDER, role) ? ROLE_ORDER[role] : 9);
  return rank(a.role) - rank(b.role);
}

function initials(name) {
  const words = String(name || "").trim().split(/\s+/).filter(Boolean);
  const letters = words.length > 1 ? words[0][0] + words[words.length - 1][0] : (words[0] || "?").slice(0, 2);
  return letters.toUpperCase();
}

export class Tiles {
  /**
   * @param {HTMLElement} container
   * @param {object} options
   * @param {string} options.selfId
   * @param {() => void} options.onAudioBlocked
   * @param {(pid: string) => object|undefined} options.lookup another participant by id
   * @param {((pid: string) => void)|null} [options.onRemove] hosts: remove someone
   */
  constructor(container, { selfId, onAudioBlocked, lookup, onRemove = null }) {
    this.container = container;
    this.selfId = selfId;
    this.onAudioBlocked = onAudioBlocked;
    this.lookup = lookup;
    this.onRemove = onRemove;
    /** participant_id -> {root, video, audio, name, role, tracks: {audio, video}} */
    this.tiles = new Map();
    this.localStream = null;
    /** The shared screen's stage (screenshare.js): first in the container, full width. */
    this.stage = null;
  }

  setStage(stage) {
    this.stage = stage;
    this._order();
  }

  /** Show or update a participant's tile (`participant` as in docs/protocol.md). */
  upsert(participant) {
    const pid = participant.participant_id;
    let tile = this.tiles.get(pid);
    if (!tile) {
      tile = this._create(participant);
      this.tiles.set(pid, tile);
      this._order();
    }
    tile.participant = participant;
    const root = tile.root;
    tile.name.textContent = participant.name;
    const withWords = this._presentWith(participant);
    const role = pid === this.selfId ? `${roleTitle(participant.role)} (you)` : roleTitle(participant.role);
    tile.role.textContent = withWords ? `${role} · with ${withWords}` : role;
    tile.avatar.textContent = initials(participant.name);
    root.dataset.role = participant.role;
    root.dataset.sameRoom = withWords ? "true" : "false";
    root.dataset.audio = participant.audio ? "on" : "off";
    root.dataset.video = participant.video ? "on" : "off";
    root.dataset.connected = participant.connected === false ? "false" : "true";
    root.setAttribute("aria-label", `${participant.name}, ${roleTitle(participant.role)}${withWords ? `, with ${withWords}` : ""}`);
    this._updateHasVideo(tile);
  }

  /** "client", or "Alex Rivera" for someone the room does not know by role. */
  _presentWith(participant) {
    const ids = Array.isArray(participant.present_with) ? participant.present_with : [];
    const words = ids.map((id) => {
      const other = this.lookup?.(id);
      return other ? roleWords(other.role) : null;
    });
    return words.filter(Boolean).join(" and ");
  }

  /** Connection quality by participant (quality.js): good, fair, poor or unknown. */
  setQuality(levels) {
    for (const [pid, tile] of this.tiles) {
      const level = levels.get(pid)?.level || "unknown";
      if (tile.root.dataset.quality === level) continue;
      tile.root.dataset.quality = level;
      const words = pid === this.selfId ? `Your connection: ${QUALITY_WORDS[level]}` : `Connection: ${QUALITY_WORDS[level]}`;
      tile.quality.setAttribute("aria-label", words);
      tile.quality.title = words;
      tile.qualityText.textContent = QUALITY_WORDS[level];
    }
  }

  /** The server paused (or resumed) this participant's video to us because our own link
   * cannot take it: their audio continues (the `media-quality` event). */
  setVideoPaused(pid, paused) {
    const tile = this.tiles.get(pid);
    if (tile) tile.root.dataset.videoPaused = paused ? "true" : "false";
  }

  remove(pid) {
    const tile = this.tiles.get(pid);
    if (!tile) return;
    tile.video.srcObject = null;
    if (tile.audio) tile.audio.srcObject = null;
    tile.root.remove();
    this.tiles.delete(pid);
    this.container.dataset.count = String(this.tiles.size);
  }

  /** Keep exactly the tiles of `participants` (those in the room). */
  sync(participants) {
    const keep = new Set(participants.map((p) => p.participant_id));
    for (const pid of [...this.tiles.keys()]) if (!keep.has(pid)) this.remove(pid);
    for (const participant of participants) this.upsert(participant);
  }

  setLocalStream(stream) {
    this.localStream = stream;
    const tile = this.tiles.get(this.selfId);
    if (tile) this._attachLocal(tile);
  }

  /** Remote tracks by participant, from the offer's track map (peer.js). */
  setRemote(media) {
    for (const [pid, tile] of this.tiles) {
      if (pid === this.selfId) continue;
      const tracks = media.get(pid) || { audio: null, video: null };
      if (tracks.video !== tile.tracks.video) {
        tile.tracks.video = tracks.video;
        tile.video.srcObject = tracks.video ? new MediaStream([tracks.video]) : null;
        if (tracks.video) tile.video.play().catch(() => {}); // muted video may always autoplay
      }
      if (tracks.audio !== tile.tracks.audio) {
        tile.tracks.audio = tracks.audio;
        tile.audio.srcObject = tracks.audio ? new MediaStream([tracks.audio]) : null;
        if (tracks.audio) this._playAudio(tile);
      }
      this._updateHasVideo(tile);
    }
    this._pendingRemote = media; // tiles created later (a peer-updated after the offer) take theirs
  }

  setActiveSpeaker(pid) {
    for (const [id, tile] of this.tiles) tile.root.dataset.speaking = id === pid ? "true" : "false";
  }

  /** After the person allowed sound (the "Turn on sound" button): try every audio element again. */
  retryAudio() {
    for (const tile of this.tiles.values()) if (tile.audio?.srcObject) this._playAudio(tile);
  }

  clear() {
    for (const pid of [...this.tiles.keys()]) this.remove(pid);
  }

  _playAudio(tile) {
    tile.audio.play().catch((error) => {
      if (error && error.name === "NotAllowedError") this.onAudioBlocked?.();
    });
  }

  _create(participant) {
    const pid = participant.participant_id;
    const self = pid === this.selfId;
    const video = el("video", "tile-video");
    video.autoplay = true;
    video.playsInline = true;
    video.muted = true; // sound plays from the <audio> element, so video can always autoplay
    const avatar = el("span", "avatar");
    const placeholder = el("div", "tile-placeholder", avatar);
    placeholder.setAttribute("aria-hidden", "true");
    const name = el("span", "tile-name");
    const role = el("span", "tile-role");
    const badges = el(
      "span",
      "tile-badges",
      el("span", "tile-badge badge-muted", "Muted"),
      el("span", "tile-badge badge-camera", "Camera off"),
      el("span", "tile-badge badge-reconnecting", "Reconnecting…"),
      el("span", "tile-badge badge-video-paused", "Video paused: weak connection"),
    );
    const caption = el("div", "tile-caption", name, role, badges);
    const qualityText = el("span", "quality-text", QUALITY_WORDS.unknown);
    const quality = el("span", "tile-quality", el("span", "quality-bars", el("i"), el("i"), el("i")), qualityText);
    quality.setAttribute("role", "img");
    quality.setAttribute("aria-label", "Connection: checking");
    const corner = el("div", "tile-corner", quality);
    if (!self && this.onRemove) {
      const remove = button("Remove", "tile-remove", () => this.onRemove(pid));
      remove.dataset.action = "remove";
      remove.setAttribute("aria-label", `Remove ${participant.name} from the consult`);
      corner.append(remove);
    }
    const root = el("article", "tile", video, placeholder, corner, caption);
    root.dataset.participantId = pid;
    root.dataset.self = self ? "true" : "false";
    root.dataset.speaking = "false";
    root.dataset.quality = "unknown";
    root.dataset.videoPaused = "false";
    let audio = null;
    if (!self) {
      audio = el("audio", "tile-audio");
      audio.autoplay = true;
      root.append(audio);
    }
    const tile = { root, video, audio, name, role, avatar, quality, qualityText, participant, tracks: { audio: null, video: null } };
    if (self) this._attachLocal(tile);
    else if (this._pendingRemote?.has(pid)) queueMicrotask(() => this.setRemote(this._pendingRemote));
    return tile;
  }

  _attachLocal(tile) {
    const track = this.localStream?.getVideoTracks()[0] || null;
    tile.tracks.video = track;
    tile.video.srcObject = track ? new MediaStream([track]) : null;
    if (track) tile.video.play().catch(() => {});
    this._updateHasVideo(tile);
  }

  _updateHasVideo(tile) {
    tile.root.dataset.hasVideo = tile.tracks.video && tile.root.dataset.video !== "off" ? "true" : "false";
  }

  /** Put the tiles in order; `data-count` (how many) is what the CSS lays them out by. */
  _order() {
    const key = (tile) => ({ role: tile.participant.role, self: tile.root.dataset.self === "true" });
    const tiles = [...this.tiles.values()].sort((a, b) => tileOrder(key(a), key(b)));
    this.container.replaceChildren(...(this.stage ? [this.stage] : []), ...tiles.map((t) => t.root));
    this.container.dataset.count = String(tiles.length);
  }

  /** For the test hook: the remote <video> and audio tracks, by participant. */
  remoteVideos() {
    return [...this.tiles.entries()]
      .filter(([pid]) => pid !== this.selfId)
      .map(([pid, tile]) => {
        const quality = tile.video.getVideoPlaybackQuality?.();
        return {
          participant_id: pid,
          role: tile.root.dataset.role,
          videoWidth: tile.video.videoWidth,
          videoHeight: tile.video.videoHeight,
          currentTime: tile.video.currentTime,
          frames: quality ? quality.totalVideoFrames : 0,
          paused: tile.video.paused,
          videoTrack: tile.tracks.video ? tile.tracks.video.readyState : null,
          audioTrack: tile.tracks.audio ? tile.tracks.audio.readyState : null,
          audioPaused: tile.audio ? tile.audio.paused : null,
        };
      });
  }
}
