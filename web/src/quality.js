// Connection quality from RTCPeerConnection.getStats(), every 2 s:
//  - for each other participant, what reaches us of their media: packet loss over the interval
//    (inbound-rtp packetsLost / packetsReceived deltas) and audio jitter;
//  - for ourselves, the path to the server: the selected candidate pair's round-trip time and
//    the server's receiver reports on what we send (remote-inbound-rtp: fractionLost, jitter).
// Each is rated good / fair / poor; "unknown" until a first interval has data.

const INTERVAL_MS = 2000;

// Thresholds of common conferencing practice: above ~2-3 % loss or ~300 ms RTT calls degrade,
// above ~8-10 % or ~700 ms they break up.
const FAIR = { loss: 0.02, rtt: 0.3, jitter: 0.03 };
const POOR = { loss: 0.08, rtt: 0.7, jitter: 0.1 };

export function rate({ loss = 0, rtt = 0, jitter = 0 }) {
  if (loss >= POOR.loss || rtt >= POOR.rtt || jitter >= POOR.jitter) return "poor";
  if (loss >= FAIR.loss || rtt >= FAIR.rtt || jitter >= FAIR.jitter) return "fair";
  return "good";
}

export class QualityMonitor {
  /**
   * @param {{peer: () => import("./peer.js").PeerLink|null, selfId: string, onChange: (q: Map<string, object>) => void}} options
   */
  constructor({ peer, selfId, onChange }) {
    this._peer = peer;
    this.selfId = selfId;
    this._onChange = onChange;
    /** participant_id -> {level, loss, rtt, jitter} */
    this.levels = new Map();
    this._previous = new Map(); // ssrc -> {lost, received}
    this._pc = null;
    this._timer = setInterval(() => this.sample().catch(() => {}), INTERVAL_MS);
  }

  async sample() {
    const link = this._peer();
    const pc = link?.pc;
    if (!pc || pc.connectionState === "closed") return;
    if (pc !== this._pc) {
      this._pc = pc; // a new peer connection: counters start again
      this._previous.clear();
    }
    const byMid = new Map(link.tracks.map((t) => [t.mid, t]));
    const report = await pc.getStats();
    const perPeer = new Map(); // participant_id -> {lost, received, jitter}
    let rtt = null;
    const outbound = { lost: 0, jitter: 0, seen: false, rtt: null };
    report.forEach((stat) => {
      if (stat.type === "candidate-pair" && stat.nominated && stat.state === "succeeded") {
        if (typeof stat.currentRoundTripTime === "number") rtt = stat.currentRoundTripTime;
      } else if (stat.type === "inbound-rtp") {
        const info = byMid.get(stat.mid);
        if (!info || info.participant_id === this.selfId) return;
        const key = String(stat.ssrc);
        const before = this._previous.get(key) || { lost: 0, received: 0 };
        const now = { lost: stat.packetsLost || 0, received: stat.packetsReceived || 0 };
        this._previous.set(key, now);
        const entry = perPeer.get(info.participant_id) || { lost: 0, received: 0, jitter: 0 };
        entry.lost += Math.max(0, now.lost - before.lost);
        entry.received += Math.max(0, now.received - before.received);
        if (stat.kind === "audio" && typeof stat.jitter === "number") entry.jitter = Math.max(entry.jitter, stat.jitter);
        perPeer.set(info.participant_id, entry);
      } else if (stat.type === "remote-inbound-rtp") {
        outbound.seen = true;
        if (typeof stat.fractionLost === "number") outbound.lost = Math.max(outbound.lost, stat.fractionLost);
        if (typeof stat.jitter === "number") outbound.jitter = Math.max(outbound.jitter, stat.jitter);
        if (typeof stat.roundTripTime === "number") outbound.rtt = stat.roundTripTime;
      }
    });
    const levels = new Map();
    const pathRtt = rtt ?? outbound.rtt ?? 0;
    for (const [pid, entry] of perPeer) {
      const total = entry.lost + entry.received;
      if (total === 0) {
        levels.set(pid, { level: "unknown", loss: null, rtt: pathRtt, jitter: entry.jitter });
        continue;
      }
      const measured = { loss: entry.lost / total, rtt: pathRtt, jitter: entry.jitter };
      levels.set(pid, { level: rate(measured), ...measured });
    }
    if (rtt !== null || outbound.seen) {
      const measured = { loss: outbound.lost, rtt: pathRtt, jitter: outbound.jitter };
      levels.set(this.selfId, { level: rate(measured), ...measured });
    }
    this.levels = levels;
    this._onChange(levels);
  }

  snapshot() {
    return Object.fromEntries(this.levels);
  }

  stop() {
    clearInterval(this._timer);
  }
}
