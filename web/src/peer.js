// The one RTCPeerConnection to the server's SFU (docs/protocol.md, "Media"). The server is
// always the offerer: each `signal {type: "offer", sdp, tracks, pc}` is applied here and
// answered. `tracks` says which m-line (mid) carries whose audio, camera or shared screen
// (`source`): the participant's own mids get the local tracks (sendonly; a screen line without a
// capture is answered inactive, which ends the share), everyone else's are received (recvonly). A new `pc`
// number means the server started a new peer connection (a reconnect): the old one is dropped,
// and the new one uses the offer's `ice_servers` (fresh TURN credentials) when it has them.

/** Which of a participant's tracks a track map entry is: "audio", "video" or "screen". */
export function slotOf(info) {
  return info?.source === "screen" ? "screen" : info?.kind;
}

/** Candidate refusals that are the server's policy, not a failure of the connection. */
const QUIET_CANDIDATE_REFUSALS = new Set(["candidate_address_refused", "candidates_exhausted"]);

export class PeerLink {
  /**
   * @param {object} options
   * @param {string} options.selfId this participant's id
   * @param {(event: string, payload: object) => Promise<object>} options.call signaling.call
   * @param {(media: Map<string, {audio: MediaStreamTrack|null, video: MediaStreamTrack|null, screen: MediaStreamTrack|null}>) => void} options.onRemote
   * @param {(code: string, during: string) => void} options.onProblem
   * @param {(state: string) => void} [options.onConnectionState]
   */
  constructor({ selfId, call, onRemote, onProblem, onConnectionState }) {
    this.selfId = selfId;
    this._call = call;
    this._onRemote = onRemote;
    this._onProblem = onProblem;
    this._onConnectionState = onConnectionState || (() => {});
    this.pc = null;
    this.generation = null;
    /** The latest offer's track map: [{mid, participant_id, kind, source}]. */
    this.tracks = [];
    this.local = { audio: null, video: null, screen: null };
    this.iceServers = null;
    this.closed = false;
    this._chain = Promise.resolve();
    this._answered = false;
    this._candidates = [];
    this._endOfCandidatesSent = false;
    // The peer connection needs state.ice_servers, which comes with the join ack or `admitted`;
    // an offer can arrive before the join ack (a rejoin), so offers wait for it.
    this._ready = new Promise((resolve) => {
      this._resolveReady = resolve;
    });
  }

  setIceServers(iceServers) {
    this.iceServers = Array.isArray(iceServers) ? iceServers : [];
    this._resolveReady();
  }

  /** The tracks to send ("audio", "video" or "screen"; null for none); replaces the sender's
   * track if a call is up. */
  setLocalTrack(slot, track) {
    this.local[slot] = track;
    for (const transceiver of this._ownTransceivers(slot)) {
      transceiver.sender.replaceTrack(track).catch(() => this._onProblem("track_switch_failed", "device"));
    }
  }

  /** Queue an offer; offers are applied one at a time, in order. */
  handleOffer(offer) {
    this._chain = this._chain
      .then(() => this._applyOffer(offer))
      .catch((error) => {
        console.warn("triad: could not apply the offer", error);
        this._onProblem(error?.code || "media_negotiation_failed", "offer");
      });
    return this._chain;
  }

  async _applyOffer({ sdp, tracks, pc: generation, ice_servers: iceServers }) {
    await this._ready;
    if (this.closed) return;
    if (generation !== this.generation) {
      // The offer's own ICE servers: TURN credentials minted for this peer connection (the
      // join's may have expired by the time of a restart).
      if (Array.isArray(iceServers)) this.iceServers = iceServers;
      this._newPeerConnection(generation);
    }
    const pc = this.pc;
    await pc.setRemoteDescription({ type: "offer", sdp });
    this.tracks = Array.isArray(tracks) ? tracks : [];

    const byMid = new Map(this.tracks.map((t) => [t.mid, t]));
    for (const transceiver of pc.getTransceivers()) {
      const info = byMid.get(transceiver.mid);
      if (!info || transceiver.stopped) continue; // an m-line nobody uses any more (inactive)
      if (info.participant_id === this.selfId) {
        const track = this.local[slotOf(info)] || null;
        await transceiver.sender.replaceTrack(track);
        transceiver.direction = track ? "sendonly" : "inactive";
      } else {
        transceiver.direction = "recvonly";
      }
    }

    await pc.setLocalDescription(await pc.createAnswer());
    if (this.closed || pc !== this.pc) return;
    const answered = this._call("signal", { type: "answer", sdp: pc.localDescription.sdp, pc: generation });
    // The server handles a socket's events in order: candidates sent after the answer are
    // applied after it.
    this._answered = true;
    this._flushCandidates();
    this._publishRemote();
    await answered; // a refusal rejects and is reported by handleOffer
  }

  _newPeerConnection(generation) {
    this._closePeerConnection();
    const pc = new RTCPeerConnection({
      iceServers: this.iceServers || [],
      bundlePolicy: "max-bundle", // several m-lines of one kind share one transport
      rtcpMuxPolicy: "require",
    });
    pc.addEventListener("icecandidate", (event) => this._onCandidate(pc, generation, event));
    pc.addEventListener("icecandidateerror", (event) => this._onIceServerError(pc, event));
    pc.addEventListener("connectionstatechange", () => {
      if (pc === this.pc) this._onConnectionState(pc.connectionState);
    });
    this.pc = pc;
    this.generation = generation;
    this._answered = false;
    this._candidates = [];
    this._endOfCandidatesSent = false;
    this._turnRefused = false;
  }

  /** A TURN server refused our credential (STUN 401: expired, or not signed with its secret):
   * said once per peer connection, so the person learns why a relayed call cannot connect. */
  _onIceServerError(pc, event) {
    if (pc !== this.pc || this.closed || this._turnRefused) return;
    if (event.errorCode !== 401 || !/^turns?:/.test(event.url || "")) return;
    this._turnRefused = true;
    this._onProblem("turn_refused", "ice");
  }

  _onCandidate(pc, generation, event) {
    if (pc !== this.pc || this.closed) return;
    const candidate = event.candidate;
    let payload;
    if (!candidate || !candidate.candidate) {
      if (this._endOfCandidatesSent) return;
      this._endOfCandidatesSent = true;
      payload = { candidate: null, pc: generation };
    } else {
      if (candidate.protocol && candidate.protocol !== "udp") return; // the SFU speaks UDP only
      const { candidate: line, sdpMid, sdpMLineIndex } = candidate.toJSON();
      payload = { candidate: { candidate: line, sdpMid, sdpMLineIndex }, pc: generation };
    }
    this._candidates.push(payload);
    if (this._answered) this._flushCandidates();
  }

  _flushCandidates() {
    const queued = this._candidates;
    this._candidates = [];
    for (const payload of queued) {
      this._call("candidate", payload).catch((error) => {
        // The server's address policy: a private or mDNS host candidate of ours it will not
        // try, or one past its count. The others still connect; nothing to tell the person.
        if (QUIET_CANDIDATE_REFUSALS.has(error.code)) {
          console.info(`triad: candidate not used by the server: ${error.code}`);
          return;
        }
        this._onProblem(error.code, "candidate");
      });
    }
  }

  _ownTransceivers(slot) {
    if (!this.pc) return [];
    const mids = new Set(
      this.tracks.filter((t) => t.participant_id === this.selfId && slotOf(t) === slot).map((t) => t.mid),
    );
    return this.pc.getTransceivers().filter((t) => mids.has(t.mid) && !t.stopped);
  }

  /** Tell the room whose tracks arrive where, from the latest offer's track map. */
  _publishRemote() {
    const media = new Map();
    const byMid = new Map(this.tracks.map((t) => [t.mid, t]));
    for (const transceiver of this.pc.getTransceivers()) {
      const info = byMid.get(transceiver.mid);
      if (!info || info.participant_id === this.selfId) continue;
      const entry = media.get(info.participant_id) || { audio: null, video: null, screen: null };
      entry[slotOf(info)] = transceiver.receiver.track;
      media.set(info.participant_id, entry);
    }
    this._onRemote(media);
  }

  /** inbound-rtp statistics by participant (the test hook and, later, a quality indicator). */
  async inboundStats() {
    if (!this.pc) return [];
    const byMid = new Map(this.tracks.map((t) => [t.mid, t]));
    const out = [];
    (await this.pc.getStats()).forEach((report) => {
      if (report.type !== "inbound-rtp") return;
      const info = byMid.get(report.mid);
      out.push({
        participant_id: info ? info.participant_id : null,
        kind: report.kind,
        source: info ? info.source : null,
        mid: report.mid,
        packetsReceived: report.packetsReceived || 0,
        bytesReceived: report.bytesReceived || 0,
        framesDecoded: report.framesDecoded || 0,
      });
    });
    return out;
  }

  /**
   * The socket was lost: the next offer starts a new connection whatever its `pc` (a worker
   * that took the consult over numbers its connections afresh).
   */
  forget() {
    this.generation = null;
  }

  _closePeerConnection() {
    if (this.pc) {
      this.pc.close();
      this.pc = null;
    }
  }

  close() {
    this.closed = true;
    this._closePeerConnection();
  }
}
