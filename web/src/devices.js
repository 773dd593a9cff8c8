// The device check: camera preview, microphone level meter, camera/microphone choosers, and
// help when permission is denied or a device is missing or busy. It owns the local tracks; the
// room takes them from here (and hears about a device switched mid-call through onTrackChange).

import { $ } from "./dom.js";

const VIDEO = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 24, max: 30 } };
const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

const HELP = {
  unsupported:
    "This browser can't use a camera or microphone on this page. Please open your link in a current version of Chrome, Edge, Firefox or Safari.",
  denied:
    "Your browser is blocking the camera and microphone for this page. Allow them (use the camera icon in the address bar, or this site's settings in your browser), then press Try again.",
  none:
    "We couldn't find a camera or a microphone. Connect one, or use a phone or computer that has them, then press Try again. You can still enter, but the others won't see or hear you.",
  busy:
    "Your camera or microphone seems to be in use by another app. Close other apps that may be using it (another video call, the camera app), then press Try again.",
  no_camera: "We found a microphone but no camera: the others will hear you but won't see you.",
  no_microphone: "We found a camera but no microphone: the others will see you but won't hear you.",
};

function isDenied(error) {
  return error && (error.name === "NotAllowedError" || error.name === "SecurityError");
}

function isBusy(error) {
  return error && (error.name === "NotReadableError" || error.name === "AbortError");
}

async function getMedia(constraints) {
  return navigator.mediaDevices.getUserMedia(constraints);
}

/** Both kinds if possible; otherwise whichever one works; the last error says why not. */
async function acquire(audio, video) {
  try {
    return { stream: await getMedia({ audio, video }), error: null };
  } catch (error) {
    if (isDenied(error)) return { stream: null, error };
    const tracks = [];
    let lastError = error;
    for (const constraints of [{ audio }, { video }]) {
      try {
        tracks.push(...(await getMedia(constraints)).getTracks());
      } catch (kindError) {
        lastError = kindError;
        if (isDenied(kindError)) break;
      }
    }
    return { stream: tracks.length ? new MediaStream(tracks) : null, error: lastError };
  }
}

export class DeviceCheck {
  constructor() {
    this.preview = $("preview");
    this.previewEmpty = $("preview-empty");
    this.cameraSelect = $("camera-select");
    this.microphoneSelect = $("microphone-select");
    this.level = $("level");
    this.help = $("device-help");
    this.retry = $("device-retry");
    this.stream = new MediaStream();
    /** Called with (kind, track) when the person switches device (the room replaces its sender). */
    this.onTrackChange = null;
    /** "ok", "partial" or a HELP key: what the check found. */
    this.status = "pending";
    this._audioContext = null;
    this._meterFrame = 0;
    this._meterSource = null;

    this.retry.addEventListener("click", () => this.start());
    this.cameraSelect.addEventListener("change", () =>
      this.switchDevice("video", this.cameraSelect.value),
    );
    this.microphoneSelect.addEventListener("change", () =>
      this.switchDevice("audio", this.microphoneSelect.value),
    );
    // An AudioContext may only start after a gesture; any click or key on the page will do.
    const resume = () => this._audioContext?.resume().catch(() => {});
    document.addEventListener("pointerdown", resume);
    document.addEventListener("keydown", resume);
    navigator.mediaDevices?.addEventListener?.("devicechange", () => this.listDevices());
  }

  get audioTrack() {
    return this.stream.getAudioTracks()[0] || null;
  }

  get videoTrack() {
    return this.stream.getVideoTracks()[0] || null;
  }

  /** Ask for the camera and microphone and show what came back. Safe to call again (Try again). */
  async start() {
    this.showHelp(null);
    if (!navigator.mediaDevices?.getUserMedia) {
      this.finish("unsupported");
      return this.status;
    }
    for (const track of this.stream.getTracks()) track.stop();
    const { stream, error } = await acquire(AUDIO, VIDEO);
    this.stream = stream || new MediaStream();
    let status = "ok";
    if (!stream) {
      status = isDenied(error) ? "denied" : isBusy(error) ? "busy" : "none";
    } else if (!this.videoTrack) {
      status = isBusy(error) ? "busy" : "no_camera";
    } else if (!this.audioTrack) {
      status = isBusy(error) ? "busy" : "no_microphone";
    }
    this.showStream();
    await this.listDevices();
    this.finish(status);
    return this.status;
  }

  finish(status) {
    this.status = status;
    this.showHelp(status === "ok" ? null : status);
    this.retry.hidden = status === "ok" || status === "no_camera" || status === "no_microphone";
  }

  showHelp(key) {
    this.help.hidden = !key;
    this.help.textContent = key ? HELP[key] : "";
    if (key) this.help.dataset.problem = key;
    else delete this.help.dataset.problem;
  }

  showStream() {
    const video = this.videoTrack;
    this.preview.srcObject = video ? new MediaStream([video]) : null;
    this.previewEmpty.hidden = Boolean(video);
    this.startMeter();
  }

  async listDevices() {
    let devices = [];
    try {
      devices = await navigator.mediaDevices.enumerateDevices();
    } catch {
      // Leave the choosers empty; the default devices still work.
    }
    fill(this.cameraSelect, devices, "videoinput", "Camera", this.videoTrack);
    fill(this.microphoneSelect, devices, "audioinput", "Microphone", this.audioTrack);
  }

  /** Use another camera or microphone: the new track replaces the old in the preview and call. */
  async switchDevice(kind, deviceId) {
    if (!deviceId) return;
    const base = kind === "audio" ? AUDIO : VIDEO;
    let fresh;
    try {
      fresh = (await getMedia({ [kind]: { ...base, deviceId: { exact: deviceId } } })).getTracks()[0];
    } catch (error) {
      this.showHelp(isDenied(error) ? "denied" : "busy");
      return;
    }
    const old = kind === "audio" ? this.audioTrack : this.videoTrack;
    if (old) {
      fresh.enabled = old.enabled; // a muted microphone stays muted
      this.stream.removeTrack(old);
      old.stop();
    }
    this.stream.addTrack(fresh);
    this.showStream();
    this.showHelp(null);
    this.onTrackChange?.(kind, fresh);
  }

  startMeter() {
    this.stopMeter();
    const track = this.audioTrack;
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!track || !Context) return;
    this._audioContext ||= new Context();
    this._audioContext.resume().catch(() => {});
    const analyser = this._audioContext.createAnalyser();
    analyser.fftSize = 1024;
    this._meterSource = this._audioContext.createMediaStreamSource(new MediaStream([track]));
    this._meterSource.connect(analyser);
    const samples = new Float32Array(analyser.fftSize);
    const tick = () => {
      analyser.getFloatTimeDomainData(samples);
      let sum = 0;
      for (const sample of samples) sum += sample * sample;
      const rms = Math.sqrt(sum / samples.length);
      // Speech sits around 0.02-0.2 RMS; a square root spreads that over the bar.
      const level = Math.min(1, Math.sqrt(rms * 5));
      this.level.style.setProperty("--level", level.toFixed(3));
      this.level.setAttribute("aria-valuenow", String(Math.round(level * 100)));
      this._meterFrame = requestAnimationFrame(tick);
    };
    tick();
  }

  stopMeter() {
    cancelAnimationFrame(this._meterFrame);
    this._meterFrame = 0;
    this._meterSource?.disconnect();
    this._meterSource = null;
    this.level.style.setProperty("--level", "0");
  }

  /** Stop the camera and microphone (the consult ended, or the person left). */
  stop() {
    this.stopMeter();
    for (const track of this.stream.getTracks()) track.stop();
    this.stream = new MediaStream();
    this.preview.srcObject = null;
    this._audioContext?.close().catch(() => {});
    this._audioContext = null;
  }
}

function fill(select, devices, kind, word, current) {
  const matching = devices.filter((d) => d.kind === kind && d.deviceId);
  const currentId = current?.getSettings?.().deviceId;
  select.replaceChildren(
    ...matching.map((device, i) => {
      const option = document.createElement("option");
      option.value = device.deviceId;
      option.textContent = device.label || `${word} ${i + 1}`;
      option.selected = device.deviceId === currentId;
      return option;
    }),
  );
  if (matching.length === 0) {
    const option = document.createElement("option");
    option.textContent = `No ${word.toLowerCase()} found`;
    select.append(option);
  }
  select.disabled = matching.length === 0;
}
