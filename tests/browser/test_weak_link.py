"""Issue 12's weak downlink in Debian's Chromium: the client's page behind an emulated
600 kbit/s downlink (`tests/media/linkemu.py`; the uplink clean) keeps hearing both clinicians,
and its tile for a clinician says "Video paused: weak connection".

The therapist's and the psychiatrist's pages are on clean loopback. The client's page reaches
the server only through a `Link`: an init script wraps its RTCPeerConnection so that

* it tells the server none of its own candidates (nothing trickled, none in the answer's SDP):
  the server learns the page's address as peer-reflexive, from the checks that reach it from
  the link's server-facing side;
* every server candidate it is given (the server puts them in its offer's SDP; a trickled one
  would go through `addIceCandidate`) names the link's client-facing side instead; the page
  asks the test for it (`expose_function`), and the test starts one link per server address.

The assertions wait for conditions with deadlines and never on how long anything took."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import PageProblems, new_page
from tests.browser.roomsteps import (
    STEP_MS,
    client_reaches_lobby,
    enter,
    hook_state,
    hosts_in_room,
    poll,
)
from tests.conftest import participant
from tests.media.linkemu import Address, Link, LinkProfile, LinkStats, loopback_address
from tests.media.linksdp import candidate_addresses, route_offer

pytestmark = pytest.mark.timeout(120)

CLINICIANS = ("therapist", "psychiatrist")
DOWNLINK = LinkProfile(rate_bps=600_000)
# One link per server address: a new peer connection (a reconnect) is a new server port. More
# than a few means something keeps reconnecting, which this test does not expect.
MAX_LINKS = 3
# The server pauses a video after the overload has lasted a second and been corroborated by
# loss (server/rooms/media/downlink.py); Chromium's receiver needs a few seconds of feedback
# first. Generous, for three Chromium pages encoding VP8 in software on two shared cores.
PAUSE_MS = 45_000
# The audio is measured once the server has had time to act: from the pause notice, after
# SETTLE_SAMPLES of audio played out (the server pauses one video at a time, a second or more
# apart), over a window of WINDOW_SAMPLES (48 kHz: 10 s of each clinician's audio), counted in
# samples played rather than in seconds so a stalled page cannot shorten it. WINDOW_MS bounds
# each wait.
SETTLE_SAMPLES = 3 * 48_000
WINDOW_SAMPLES = 10 * 48_000
WINDOW_MS = 40_000
# The bounds, per clinician over the window. A concealment event is a glitch the person hears:
# the jitter buffer ran dry and Chromium synthesised audio. In this setup (three runs each,
# before this test was written) a working server, pausing what video does not fit, gave 0-2
# events per window; the same server with its pause disabled (the notice still sent, the
# video still forwarded into the 600 kbit/s link) gave 5-20, from audio packets dropped at
# the link's full queue among the video's. At most 4 passes the first and fails the second.
MAX_CONCEALMENT_EVENTS = 4
# And a gross check for audio that does not arrive at all (every sample concealed): a
# working server conceals well under 10% of a window (0-6% seen, mostly silence); 20% leaves
# room. The link's drop-tail queue favours small audio packets, so this share alone does not
# tell a server that forgets to pause (1-8% seen) from one that does.
MAX_CONCEALED_SHARE = 0.20

ROUTE_THROUGH_LINK = """
(() => {
  const Native = window.RTCPeerConnection;
  const proto = Native.prototype;
  // Keeps the page's peer connections reachable, for their statistics.
  window.__linkedPeerConnections = [];
  window.RTCPeerConnection = function (...args) {
    const pc = new Native(...args);
    window.__linkedPeerConnections.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = proto;

  // (a) None of the page's own candidates reaches the server: no trickle (nor the end of
  // candidates, after which the server's ICE agent, holding none, would fail at once) ...
  const addListener = proto.addEventListener;
  proto.addEventListener = function (type, listener, options) {
    if (type === "icecandidate") return undefined;
    return addListener.call(this, type, listener, options);
  };
  Object.defineProperty(proto, "onicecandidate", { get: () => null, set: () => {} });
  // ... and none in the answer: Chromium adds its gathered candidates to localDescription.
  const local = Object.getOwnPropertyDescriptor(proto, "localDescription");
  Object.defineProperty(proto, "localDescription", {
    configurable: true,
    get() {
      const description = local.get.call(this);
      if (!description) return description;
      const sdp = description.sdp
        .split("\\r\\n")
        .filter((line) => !line.startsWith("a=candidate:") && line !== "a=end-of-candidates")
        .join("\\r\\n");
      return new RTCSessionDescription({ type: description.type, sdp });
    },
  });

  // (b) The server's candidates name the link's client-facing side.
  const setRemote = proto.setRemoteDescription;
  proto.setRemoteDescription = async function (description) {
    if (description && description.sdp) {
      const sdp = await window.triadRouteRemoteSdp(description.sdp);
      description = { type: description.type, sdp };
    }
    return setRemote.call(this, description);
  };
  const addCandidate = proto.addIceCandidate;
  proto.addIceCandidate = async function (candidate, ...rest) {
    if (candidate && candidate.candidate) {
      // candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type>
      const f = candidate.candidate.split(" ");
      // Only a UDP host candidate can be routed; any other would bypass the link.
      if (f.length < 8 || f[2].toLowerCase() !== "udp" || f[7] !== "host") return undefined;
      const [host, port] = await window.triadLinkAddress(f[4], Number(f[5]));
      f[4] = host;
      f[5] = String(port);
      const init = typeof candidate.toJSON === "function" ? candidate.toJSON() : candidate;
      candidate = { ...init, candidate: f.join(" ") };
    }
    return addCandidate.call(this, candidate, ...rest);
  };
})();
"""

# inbound-rtp audio of the client page's current peer connection, by participant (the mids
# come from the page's own test hook).
AUDIO_STATS = """
async () => {
  const pc = window.__linkedPeerConnections.at(-1);
  if (!pc) return [];
  const owners = new Map(
    (await window.triadDebug.inboundRtp()).map((s) => [s.mid, s.participant_id]),
  );
  const out = [];
  (await pc.getStats()).forEach((r) => {
    if (r.type !== "inbound-rtp" || r.kind !== "audio") return;
    out.push({
      participant_id: owners.get(r.mid) ?? null,
      totalSamplesReceived: r.totalSamplesReceived || 0,
      concealedSamples: r.concealedSamples || 0,
      silentConcealedSamples: r.silentConcealedSamples || 0,
      concealmentEvents: r.concealmentEvents || 0,
      packetsReceived: r.packetsReceived || 0,
      packetsLost: r.packetsLost || 0,
    });
  });
  return out;
}
"""

# The remote end of the client page's selected candidate pair: where its media really goes.
SELECTED_REMOTE = """
async () => {
  const pc = window.__linkedPeerConnections.at(-1);
  if (!pc) return null;
  const stats = await pc.getStats();
  let remote = null;
  stats.forEach((r) => {
    if (r.type === "transport" && r.selectedCandidatePairId) {
      const pair = stats.get(r.selectedCandidatePairId);
      const candidate = pair && stats.get(pair.remoteCandidateId);
      if (candidate) remote = [candidate.address, candidate.port];
    }
  });
  return remote;
}
"""

# Every participant's audio played out `samples` more than in `before`.
AUDIO_GROWN = f"""
async ([before, pids, samples]) => {{
  const rows = await ({AUDIO_STATS.strip()})();
  return pids.every((pid) => {{
    const now = rows.find((r) => r.participant_id === pid);
    return now && before[pid]
      && now.totalSamplesReceived - before[pid].totalSamplesReceived >= samples;
  }});
}}
"""


@dataclass
class LinkRouter:
    """The client page's links to the server, one per server address, started on demand."""

    downlink: LinkProfile
    links: dict[Address, Link] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # what the page was refused

    async def link_for(self, server: Address) -> Link:
        server = loopback_address(server)
        link = self.links.get(server)
        if link is None:
            if len(self.links) >= MAX_LINKS:
                raise RuntimeError(f"more than {MAX_LINKS} server addresses")
            link = await Link(downlink=self.downlink).start()
            link.connect(server=server)
            self.links[server] = link
        return link

    async def route_remote_sdp(self, sdp: str) -> str:
        """The server's SDP with its candidate replaced by the link's client-facing side."""
        try:
            addresses = candidate_addresses(sdp)
            if len(addresses) != 1:
                raise ValueError(f"expected one server address, found {len(addresses)}")
            return route_offer(await self.link_for(addresses[0]), sdp)
        except Exception as exc:
            self.failures.append(f"route_remote_sdp: {exc!r}")
            raise

    async def link_address(self, host: str, port: int) -> list[str | int]:
        try:
            return list((await self.link_for((host, int(port)))).client_facing)
        except Exception as exc:
            self.failures.append(f"link_address: {exc!r}")
            raise

    def client_facing(self) -> set[tuple[str, int]]:
        return {link.client_facing for link in self.links.values()}

    def stats(self) -> LinkStats:
        total = LinkStats()
        for link in self.links.values():
            total = total + link.stats()
        return total

    async def close(self) -> None:
        for link in self.links.values():
            await link.close()


async def audio_stats(page: Page) -> dict[str, dict[str, int]]:
    rows: list[dict[str, Any]] = await page.evaluate(AUDIO_STATS)
    return {r["participant_id"]: r for r in rows if r["participant_id"] is not None}


async def audio_played(page: Page, pids: list[str], samples: int) -> dict[str, dict[str, int]]:
    """Wait (WINDOW_MS at most) until the page has played `samples` more of each participant's
    audio; what the counters did meanwhile, by participant."""
    before = await audio_stats(page)
    assert set(pids) <= set(before), before
    if not await poll(page, AUDIO_GROWN, [before, pids, samples], timeout_ms=WINDOW_MS):
        pytest.fail(f"the audio did not play on: {before} -> {await audio_stats(page)}")
    after = await audio_stats(page)
    return {
        pid: {k: after[pid][k] - v for k, v in before[pid].items() if k != "participant_id"}
        for pid in pids
    }


async def client_admitted(
    browser: Browser,
    origin: str,
    consult: dict[str, Any],
    problems: PageProblems,
    router: LinkRouter,
    therapist: Page,
) -> tuple[BrowserContext, Page]:
    """The client's page, routed through `router`, consents and is admitted by the therapist."""
    context, page = await new_page(browser, origin, problems, "client")
    await page.expose_function("triadRouteRemoteSdp", router.route_remote_sdp)
    await page.expose_function("triadLinkAddress", router.link_address)
    await page.add_init_script(ROUTE_THROUGH_LINK)
    await page.goto(participant(consult, "client")["join"]["join_url"])
    await enter(page)
    await client_reaches_lobby(page)
    client_id = participant(consult, "client")["id"]
    waiting = therapist.locator(f'#lobby-list [data-participant-id="{client_id}"]')
    await waiting.locator('[data-action="admit"]').click(timeout=STEP_MS)
    await expect(page.locator("#room")).to_be_visible(timeout=STEP_MS)
    return context, page


async def test_a_600k_downlink_keeps_the_audio_and_pauses_video(
    browser: Browser, origin: str, consult: dict[str, Any]
) -> None:
    ids = {role: participant(consult, role)["id"] for role in ("client", *CLINICIANS)}
    problems = PageProblems()
    router = LinkRouter(DOWNLINK)
    contexts, pages = await hosts_in_room(browser, origin, consult, problems)
    try:
        context, client = await client_admitted(
            browser, origin, consult, problems, router, pages["therapist"]
        )
        contexts.append(context)

        # The page's media goes through a link: its selected pair's far end is a link's A side.
        selected = await poll(client, SELECTED_REMOTE)
        if selected is None or tuple(selected) not in router.client_facing():
            pytest.fail(
                f"the client's media does not go through the link: selected {selected}, links "
                f"{sorted(router.client_facing())}, {router.failures}, {router.stats()}"
            )

        # The client's page says a clinician's video is paused for it: the tile's attribute,
        # and the notice the person sees (shown only while the attribute is set).
        notice = client.locator(
            ", ".join(
                f'.tile[data-participant-id="{ids[r]}"][data-video-paused="true"] '
                ".badge-video-paused"
                for r in CLINICIANS
            )
        ).filter(visible=True)
        try:
            await expect(notice.first).to_have_text(
                "Video paused: weak connection", timeout=PAUSE_MS
            )
        except AssertionError:
            pytest.fail(
                f"no clinician's video was paused for the client: {await hook_state(client)}, "
                f"audio {await audio_stats(client)}, link {router.stats()}"
            )

        # Both clinicians stay heard: after the server has had time to act, over a window of
        # 10 s of each one's audio, few glitches and little concealment.
        clinicians = [ids[r] for r in CLINICIANS]
        await audio_played(client, clinicians, SETTLE_SAMPLES)
        link_before = router.stats()
        figures = await audio_played(client, clinicians, WINDOW_SAMPLES)
        window = router.stats().since(link_before)
        for counts in figures.values():
            played = counts["totalSamplesReceived"]
            assert counts["concealedSamples"] <= MAX_CONCEALED_SHARE * played, (figures, window)
            assert counts["concealmentEvents"] <= MAX_CONCEALMENT_EVENTS, (figures, window)

        # The link carried the window's media both ways, and it was the bottleneck: its queue
        # overflowed (what made the server pause).
        assert window.downlink.delivered_bytes > 0, window
        assert window.uplink.delivered_bytes > 0, window
        assert router.stats().downlink.overflowed_bytes > 0, router.stats()
        assert router.failures == [], router.failures

        # Only the client's link is weak: the clinicians' pages pause nobody.
        for role in CLINICIANS:
            await expect(pages[role].locator('.tile[data-video-paused="true"]')).to_have_count(0)
        assert (await hook_state(client))["errors"] == []
        assert problems.messages == [], problems.messages
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*(c.close() for c in contexts)), 30)
        await router.close()
