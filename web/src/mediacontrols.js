// The participant's own microphone and camera switches: what this page sends, the buttons that
// say so, and telling the others (`media-state`). The room owns the socket and the tiles; this
// owns the two tracks' on/off state.

import { $ } from "./dom.js";

export class MediaControls {
  /**
   * @param {object} options
   * @param {import("./devices.js").DeviceCheck} options.devices the local camera and microphone
   * @param {(payload: {audio: boolean, video: boolean}) => Promise<unknown>} options.send
   *   sends `media-state`, rethrowing a refusal
   * @param {() => {audio: boolean, video: boolean} | null} options.announced what the others
   *   were last told (the server's view of this participant)
   * @param {(state: {audio: boolean, video: boolean}) => void} options.onRender your own tile
   *   follows a switch at once, before the server's `peer-updated`
   * @param {(code: string) => void} options.report a switch that cannot work (no device)
   */
  constructor({ devices, send, announced, onRender, report }) {
    this.devices = devices;
    this._send = send;
    this._announced = announced;
    this._onRender = onRender;
    this._report = report;
  }

  /** Whether this participant is sending `kind`: a device exists and it is switched on. */
  sending(kind) {
    const track = this._track(kind);
    return Boolean(track && track.enabled && track.readyState === "live");
  }

  async toggle(kind) {
    const track = this._track(kind);
    if (!track) {
      this._report(kind === "audio" ? "no_microphone" : "no_camera");
      return;
    }
    // Switching off stops what is sent at once (a disabled track sends silence / black frames);
    // the others learn it from media-state.
    track.enabled = !track.enabled;
    this.render();
    try {
      await this.announce();
    } catch {
      track.enabled = !track.enabled; // the server refused: show the true state
      this.render();
    }
  }

  /** Tell the others what this page sends (`onlyIfChanged`: unless they already know). */
  async announce({ onlyIfChanged = false } = {}) {
    const payload = { audio: this.sending("audio"), video: this.sending("video") };
    const known = this._announced();
    const same = known && known.audio === payload.audio && known.video === payload.video;
    if (onlyIfChanged && same) return;
    await this._send(payload);
  }

  render() {
    const audioOn = this.sending("audio");
    const videoOn = this.sending("video");
    const audio = $("toggle-audio");
    audio.textContent = audioOn ? "Mute" : "Unmute";
    audio.setAttribute("aria-pressed", audioOn ? "false" : "true");
    audio.disabled = !this.devices.audioTrack;
    const video = $("toggle-video");
    video.textContent = videoOn ? "Turn camera off" : "Turn camera on";
    video.setAttribute("aria-pressed", videoOn ? "false" : "true");
    video.disabled = !this.devices.videoTrack;
    this._onRender({ audio: audioOn, video: videoOn });
  }

  _track(kind) {
    return kind === "audio" ? this.devices.audioTrack : this.devices.videoTrack;
  }
}
