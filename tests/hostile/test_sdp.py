"""Hostile SDP answers and ICE candidate shapes against the therapist's pending offer: garbage,
huge, thousands of m-lines, the wrong `pc`, and almost-valid answers (a real aiortc answer with
one line broken). Each is refused coded before aiortc parses it; the offer stays pending, so the
last case answers it for real and is accepted."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from tests.hostile.conftest import Stage, ack_code

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Pending:
    def __init__(self, offer: dict[str, Any], answer: str) -> None:
        self.offer = offer
        self.pc: int = offer["pc"]
        self.answer = answer


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pending(stage: Stage) -> AsyncIterator[Pending]:
    """The therapist's outstanding offer, and a real answer to it (not sent until the end)."""
    offer = stage.sockets["therapist"].received("signal")[-1]
    peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        await peer.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await peer.setLocalDescription(await peer.createAnswer())
        answer = peer.localDescription.sdp
    finally:
        await peer.close()
    yield Pending(offer, answer)


Mutation = Callable[[str], str]


def sub(pattern: str, replacement: str) -> Mutation:
    def mutate(sdp: str) -> str:
        changed = re.sub(pattern, replacement, sdp, count=1)
        assert changed != sdp, f"the mutation {pattern!r} did not apply"
        return changed

    return mutate


def after_mid(line: str) -> Mutation:
    return sub(r"(a=mid:0\r\n)", r"\1" + line.replace("\\", "\\\\") + "\r\n")


MUTATIONS: list[tuple[str, Mutation]] = [
    ("payload-type-1000", sub(r"(m=audio \d+ \S+) \d+", r"\1 1000")),
    ("payload-type-128", sub(r"(m=audio \d+ \S+) \d+", r"\1 128")),
    ("payload-type-negative", sub(r"(m=audio \d+ \S+) \d+", r"\1 -1")),
    ("payload-type-word", sub(r"(m=audio \d+ \S+) \d+", r"\1 opus")),
    ("payload-type-forbidden-72", sub(r"(m=audio \d+ \S+) \d+", r"\1 72")),
    ("m-port-word", sub(r"m=audio \d+", "m=audio port")),
    ("m-port-99999", sub(r"m=audio \d+", "m=audio 99999")),
    ("m-kind-unknown", sub(r"m=audio", "m=hologram")),
    ("m-proto-lower", sub(r"(m=audio \d+) \S+", r"\1 udp/tls")),
    ("m-200-formats", sub(r"(m=audio \d+ \S+) (\d+)", r"\1 \2" + " 111" * 200)),
    ("fmtp-garbage", sub(r"a=fmtp:\d+ [^\r]*", "a=fmtp:garbage")),
    ("fmtp-no-params", sub(r"a=fmtp:(\d+) [^\r]*", r"a=fmtp:\1")),
    ("fmtp-unknown-pt", after_mid("a=fmtp:55 apt=1")),
    ("fmtp-apt-word", sub(r"a=fmtp:(\d+) apt=\d+", r"a=fmtp:\1 apt=zz")),
    ("fmtp-apt-empty", sub(r"a=fmtp:(\d+) apt=\d+", r"a=fmtp:\1 apt=")),
    ("fmtp-apt-unknown", sub(r"a=fmtp:(\d+) apt=\d+", r"a=fmtp:\1 apt=127")),
    ("fmtp-semicolons", sub(r"a=fmtp:(\d+) [^\r]*", r"a=fmtp:\1 ;;==;")),
    ("fmtp-int-param-word", after_mid("a=fmtp:111 minptime=ten")),
    ("c-garbage", sub(r"c=IN IP4 [^\r]*", "c=garbage")),
    ("c-no-address", sub(r"c=IN IP4 [^\r]*", "c=IN IP4")),
    ("c-hostname", sub(r"c=IN IP4 [^\r]*", "c=IN IP4 evil.example")),
    ("candidate-garbage", sub(r"a=candidate:[^\r]*", "a=candidate:garbage")),
    ("candidate-short", sub(r"a=candidate:[^\r]*", "a=candidate:1 1 udp 1 1.2.3.4")),
    (
        "candidate-port-huge",
        sub(r"a=candidate:[^\r]*", "a=candidate:x 1 udp 1 1.2.3.4 99999999 typ host"),
    ),
    (
        "candidate-dns-name",
        sub(r"a=candidate:[^\r]*", "a=candidate:x 1 udp 1 evil.example 9 typ host"),
    ),
    (
        "candidate-priority-huge",
        sub(r"a=candidate:[^\r]*", "a=candidate:x 1 udp 99999999999 1.2.3.4 9 typ host"),
    ),
    ("candidate-no-typ", sub(r"a=candidate:[^\r]*", "a=candidate:x 1 udp 1 1.2.3.4 9 kind host")),
    (
        "candidate-raddr-name",
        sub(
            r"a=candidate:[^\r]*",
            "a=candidate:x 1 udp 1 1.2.3.4 9 typ srflx raddr evil.example rport 9",
        ),
    ),
    ("rtpmap-garbage", sub(r"a=rtpmap:\d+ [^\r]*", "a=rtpmap:x y")),
    ("rtpmap-clock-zero", sub(r"a=rtpmap:(\d+) opus/\d+", r"a=rtpmap:\1 opus/0")),
    ("rtpmap-clock-word", sub(r"a=rtpmap:(\d+) opus/\d+", r"a=rtpmap:\1 opus/fast")),
    ("ssrc-past-32-bits", after_mid("a=ssrc:99999999999999999999 cname:x")),
    ("ssrc-no-attribute", after_mid("a=ssrc:1")),
    ("ssrc-group-word", after_mid("a=ssrc-group:FID zz")),
    ("extmap-word", after_mid("a=extmap:zz urn:x")),
    ("rtcp-word", after_mid("a=rtcp:abc")),
    ("rtcp-fb-word", after_mid("a=rtcp-fb:zz nack")),
    ("setup-unknown", sub(r"a=setup:\w+", "a=setup:zz")),
    ("fingerprint-garbage", sub(r"a=fingerprint:[^\r]*", "a=fingerprint:zz")),
    ("sctp-port-word", after_mid("a=sctp-port:zz")),
    ("ptime-word", after_mid("a=ptime:zz")),
    ("ice-ufrag-empty", sub(r"a=ice-ufrag:[^\r]*", "a=ice-ufrag:")),
    ("ice-pwd-short", sub(r"a=ice-pwd:[^\r]*", "a=ice-pwd:short")),
    ("mid-changed", sub(r"a=mid:0", "a=mid:zz")),
    ("group-bare", sub(r"a=group:[^\r]*", "a=group")),
    ("nul-in-line", sub(r"(a=mid:0)", "\\1\x00")),
    ("unicode-line", sub(r"(s=[^\r]*)", "\\1\u2028x")),
    ("vertical-tab", sub(r"(a=mid:0)", "\\1\x0b")),
    ("missing-fingerprint", lambda s: re.sub(r"a=fingerprint:[^\r]*\r\n", "", s)),
    ("extra-m-line", lambda s: s + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"),
    ("v-1", sub(r"^v=0", "v=1")),
]


async def refused_answer(
    stage: Stage, pending: Pending, payload: dict[str, Any], code: str
) -> None:
    before = await stage.snapshot()
    ack = await stage.sockets["therapist"].call("signal", payload)
    assert ack_code(ack) == code, ack
    assert await stage.snapshot() == before
    await stage.socket_still_serves()


@pytest.mark.parametrize("mutation", [pytest.param(m, id=i) for i, m in MUTATIONS])
async def test_almost_valid_answers(stage: Stage, pending: Pending, mutation: Mutation) -> None:
    sdp = mutation(pending.answer)
    await refused_answer(
        stage, pending, {"type": "answer", "sdp": sdp, "pc": pending.pc}, "sdp_invalid"
    )


GARBAGE: list[tuple[str, str | Callable[[Pending], str]]] = [
    ("not-sdp", "this is not sdp"),
    ("v-only", "v=0\r\n"),
    ("v-only-lf", "v=0\n"),
    ("blank-lines", "v=0\r\n\r\n\r\n"),
    ("nul-bytes", "\x00" * 100),
    ("unicode", "v=0\r\ns=\u00e9\u4e2d\r\n"),
    ("over-max-bytes", "v=0\r\n" + "a=x\r\n" * 20_000),
    ("just-under-max-of-junk", "v=0\r\n" + "a=x\r\n" * 12_000),
    ("thousands-of-m-lines", "v=0\r\n" + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" * 1500),
    (
        "thousands-of-m-lines-after-answer",
        lambda p: p.answer + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" * 1500,
    ),
    ("5000-lines", "v=0\r\n" + "b=AS:1\r\n" * 5000),
    ("answer-twice", lambda p: p.answer + p.answer),
    ("offer-as-answer", lambda p: p.offer["sdp"]),
]


@pytest.mark.parametrize("sdp", [pytest.param(s, id=i) for i, s in GARBAGE])
async def test_garbage_answers(stage: Stage, pending: Pending, sdp: Any) -> None:
    text = sdp(pending) if callable(sdp) else sdp
    await refused_answer(
        stage, pending, {"type": "answer", "sdp": text, "pc": pending.pc}, "sdp_invalid"
    )


@pytest.mark.parametrize("shift", [pytest.param(s, id=f"pc{s:+d}") for s in (1, 7, 10**9, 2**62)])
async def test_answers_to_the_wrong_pc(stage: Stage, pending: Pending, shift: int) -> None:
    payload = {"type": "answer", "sdp": pending.answer, "pc": pending.pc + shift}
    await refused_answer(stage, pending, payload, "no_pending_offer")


CANDIDATES: list[tuple[str, dict[str, Any]]] = [
    ("garbage", {"candidate": "candidate:garbage", "sdpMid": "0"}),
    ("too-few-fields", {"candidate": "candidate:1 1 udp 1 127.0.0.1 9", "sdpMid": "0"}),
    ("odd-fields", {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host raddr", "sdpMid": "0"}),
    ("port-word", {"candidate": "candidate:1 1 udp 1 127.0.0.1 port typ host", "sdpMid": "0"}),
    ("port-99999", {"candidate": "candidate:1 1 udp 1 127.0.0.1 99999 typ host", "sdpMid": "0"}),
    ("priority-word", {"candidate": "candidate:1 1 udp high 127.0.0.1 9 typ host", "sdpMid": "0"}),
    ("component-word", {"candidate": "candidate:1 rtp udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}),
    ("no-typ", {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 kind host", "sdpMid": "0"}),
    ("dns-name", {"candidate": "candidate:1 1 udp 1 evil.example 9 typ host", "sdpMid": "0"}),
    (
        "tcp",
        {"candidate": "candidate:1 1 tcp 1 127.0.0.1 9 typ host tcptype active", "sdpMid": "0"},
    ),
    ("unknown-mid", {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "zz"}),
    (
        "index-past-m-lines",
        {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMLineIndex": 200},
    ),
    ("no-mid-no-index", {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}),
    ("1500-chars", {"candidate": "candidate:" + "1" * 1500, "sdpMid": "0"}),
    ("nul", {"candidate": "candidate:1 1 udp 1 127.0.0.1\x00 9 typ host", "sdpMid": "0"}),
]


@pytest.mark.parametrize("candidate", [pytest.param(c, id=i) for i, c in CANDIDATES])
async def test_malformed_candidates(
    stage: Stage, pending: Pending, candidate: dict[str, Any]
) -> None:
    before = await stage.snapshot()
    ack = await stage.sockets["therapist"].call(
        "candidate", {"candidate": candidate, "pc": pending.pc}
    )
    assert ack_code(ack) == "candidate_invalid", ack
    assert await stage.snapshot() == before
    await stage.socket_still_serves()


async def test_zz_the_real_answer_is_still_accepted(stage: Stage, pending: Pending) -> None:
    """Last in the module: after every refusal the offer is still pending, untouched."""
    ack = await stage.sockets["therapist"].call(
        "signal", {"type": "answer", "sdp": pending.answer, "pc": pending.pc}
    )
    assert ack["ok"], ack
    await stage.socket_still_serves()
