"""A participant's SDP answer, checked line by line before aiortc parses any of it.

aiortc's parser validates with `assert` (gone under `python -O`) and trips over almost-valid input
in ways no `except` list can name (`AssertionError` for payload type 1000 or a garbage `c=` line,
`StopIteration` for an `fmtp` naming no codec, a candidate naming a DNS host that aioice would
look up). So every line that aiortc reads is held to its grammar here (RFC 8866, RFC 8839, RFC
8122, RFC 8285) and anything else is refused as `sdp_invalid` with nothing applied.
"""

from __future__ import annotations

import ipaddress
import re

from aiortc import exceptions as rtc_errors
from aiortc.sdp import SessionDescription

from server.errors import ErrorCode, TriadError

# What aiortc raises on an answer it cannot apply (besides ValueError from its parser).
SDP_ERRORS = (
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    rtc_errors.InternalError,
    rtc_errors.InvalidAccessError,
    rtc_errors.InvalidStateError,
    rtc_errors.OperationError,
)
MAX_LINES = 4096
MAX_FORMATS = 64
_LINE = re.compile(r"[a-z]=[\x20-\x7e]*")
_MEDIA = re.compile(r"m=(audio|video|application) (\d{1,5}) ([A-Z]+(?:/[A-Z]+)*)((?: \S+)+)")
_CONNECTION = re.compile(r"c=IN IP[46] (\S+)")
_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+")
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`{|}~-]{1,64}")
_RTPMAP = re.compile(r"(\d{1,3}) [A-Za-z0-9._-]{1,32}/(\d{1,6})(?:/(\d{1,2}))?")
_FMTP = re.compile(r"(\d{1,3}) (\S{1,512})")
_FMTP_PARAM = re.compile(r"[A-Za-z0-9._-]{1,64}(?:=[\x21-\x3a\x3c-\x7e]{0,128})?")
_FMTP_INT_PARAMS = frozenset(
    {"apt", "max-fr", "max-fs", "maxplaybackrate", "minptime", "stereo", "useinbandfec"}
)
_RTCP_FB = re.compile(r"(\d{1,3}|\*) [A-Za-z0-9-]{1,32}(?: [A-Za-z0-9-]{1,32})?")
_EXTMAP = re.compile(r"(\d{1,3})(?:/(?:sendonly|recvonly|sendrecv|inactive))? \S{1,256}")
_FINGERPRINT = re.compile(
    r"(?:sha-1|sha-224|sha-256|sha-384|sha-512) [0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){15,63}"
)
_SSRC = re.compile(r"(\d{1,10}) [A-Za-z-]{1,32}:[\x20-\x7e]{0,255}")
_SSRC_GROUP = re.compile(r"[A-Za-z-]{1,16}(?: \d{1,10}){1,8}")
_RTCP = re.compile(r"(\d{1,5})(?: IN IP[46] (\S+))?")
_NUMBER = re.compile(r"\d{1,10}")
_CANDIDATE_TYPES = frozenset({"host", "srflx", "prflx", "relay"})
_CANDIDATE_OPTIONS = frozenset(
    {"raddr", "rport", "generation", "tcptype", "ufrag", "network-id", "network-cost"}
)
_SETUP = frozenset({"active", "passive", "actpass", "holdconn"})
# Attributes aiortc splits a value out of: present without one, its parser fails on None.
_VALUED = frozenset({"group", "msid-semantic", "msid", "ice-options"})


def _invalid(message: str) -> TriadError:
    return TriadError(ErrorCode.SDP_INVALID, message)


def check_answer_text(sdp: str, *, max_media: int) -> None:
    """Raise `sdp_invalid` unless every line of `sdp` keeps to the grammar aiortc assumes and
    there are at most `max_media` media sections (the offer's count)."""
    lines = sdp.split("\r\n") if "\r\n" in sdp else sdp.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0] != "v=0":
        raise _invalid("an SDP starts with v=0")
    if len(lines) > MAX_LINES:
        raise _invalid(f"the answer has more than {MAX_LINES} lines")
    media = 0
    formats: set[int] = set()
    for number, line in enumerate(lines, start=1):
        if not _LINE.fullmatch(line):
            raise _invalid(f"line {number} is not an SDP line")
        if line.startswith("m="):
            media += 1
            if media > max_media:
                raise _invalid("the answer has more media sections than the offer")
            formats = _media_formats(line, number)
        elif line.startswith("c="):
            match = _CONNECTION.fullmatch(line)
            if match is None or not _is_ip(match.group(1)):
                raise _invalid(f"line {number}: a connection line names an IP address")
        elif line.startswith("a="):
            _check_attribute(line[2:], number, formats, in_media=media > 0)


def _media_formats(line: str, number: int) -> set[int]:
    match = _MEDIA.fullmatch(line)
    if match is None or int(match.group(2)) > 65535:
        raise _invalid(f"line {number}: a media line is malformed")
    fmt = match.group(4).split()
    if len(fmt) > MAX_FORMATS:
        raise _invalid(f"line {number}: a media line lists too many formats")
    if match.group(1) == "application":
        return set()
    if not all(f.isdigit() and len(f) <= 3 and int(f) <= 127 for f in fmt):
        raise _invalid(f"line {number}: RTP payload types are 0-127")
    return {int(f) for f in fmt}


def _check_attribute(attribute: str, number: int, formats: set[int], *, in_media: bool) -> None:
    name, colon, value = attribute.partition(":")
    ok = bool(colon) or name not in _VALUED
    if name == "candidate":
        ok = _candidate_ok(value)
    elif name in ("rtpmap", "fmtp", "rtcp-fb"):
        ok = in_media and _payload_attribute_ok(name, value, formats)
    elif name == "fingerprint":
        ok = bool(_FINGERPRINT.fullmatch(value))
    elif name == "setup":
        ok = value in _SETUP
    elif name == "ice-ufrag":
        ok = 4 <= len(value) <= 256 and bool(_ICE_CHARS.fullmatch(value))
    elif name == "ice-pwd":
        ok = 22 <= len(value) <= 256 and bool(_ICE_CHARS.fullmatch(value))
    elif name == "mid":
        ok = bool(_TOKEN.fullmatch(value))
    elif name == "extmap":
        match = _EXTMAP.fullmatch(value)
        ok = match is not None and 1 <= int(match.group(1)) <= 255
    elif name == "ssrc":
        match = _SSRC.fullmatch(value)
        ok = match is not None and int(match.group(1)) < 2**32
    elif name == "ssrc-group":
        ok = bool(_SSRC_GROUP.fullmatch(value)) and all(int(s) < 2**32 for s in value.split()[1:])
    elif name == "rtcp":
        match = _RTCP.fullmatch(value)
        ok = match is not None and int(match.group(1)) <= 65535
        ok = ok and (match is None or match.group(2) is None or _is_ip(match.group(2)))
    elif name in ("sctp-port", "max-message-size", "ptime", "maxptime"):
        ok = bool(_NUMBER.fullmatch(value)) and int(value) < 2**32
    elif name == "sctpmap":
        ok = bool(_NUMBER.fullmatch(value.split(" ", 1)[0]))
    if not ok:
        raise _invalid(f"line {number}: an a={name} line is malformed")


def _payload_attribute_ok(name: str, value: str, formats: set[int]) -> bool:
    """rtpmap, fmtp and rtcp-fb name a payload type of their own media line."""
    if name == "rtpmap":
        match = _RTPMAP.fullmatch(value)
        return (
            match is not None
            and int(match.group(1)) in formats
            and int(match.group(2)) > 0
            and (match.group(3) is None or int(match.group(3)) > 0)
        )
    if name == "rtcp-fb":
        match = _RTCP_FB.fullmatch(value)
        return match is not None and (match.group(1) == "*" or int(match.group(1)) in formats)
    match = _FMTP.fullmatch(value)
    if match is None or int(match.group(1)) not in formats:
        return False
    for param in match.group(2).split(";"):
        if not _FMTP_PARAM.fullmatch(param):
            return False
        key, has_value, text = param.partition("=")
        if key in _FMTP_INT_PARAMS and not (has_value and _NUMBER.fullmatch(text)):
            return False
        if key == "apt" and int(text) not in formats:
            return False
        if key == "profile-level-id" and not re.fullmatch(r"[0-9A-Fa-f]{6}", text):
            return False
    return True


def _candidate_ok(value: str) -> bool:
    """`foundation component transport priority address port typ type [name value]...`"""
    bits = value.split(" ")
    if len(bits) < 8 or len(bits) % 2 or len(bits) > 24:
        return False
    foundation, component, transport, priority, address, port, typ, kind = bits[:8]
    options = dict(zip(bits[8::2], bits[9::2], strict=True))
    return (
        bool(re.fullmatch(r"[A-Za-z0-9+/]{1,32}", foundation))
        and component.isdigit()
        and 1 <= int(component[:3]) <= 256
        and len(component) <= 3
        and transport.lower() in ("udp", "tcp")
        and bool(_NUMBER.fullmatch(priority))
        and int(priority) < 2**32
        and (_is_ip(address) or _is_mdns(address))
        and bool(re.fullmatch(r"\d{1,5}", port))
        and int(port) <= 65535
        and typ == "typ"
        and kind in _CANDIDATE_TYPES
        and set(options) <= _CANDIDATE_OPTIONS
        and ("raddr" not in options or _is_ip(options["raddr"]) or _is_mdns(options["raddr"]))
        and (
            "rport" not in options
            or (bool(re.fullmatch(r"\d{1,5}", options["rport"])) and int(options["rport"]) <= 65535)
        )
    )


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_mdns(text: str) -> bool:
    """A browser's mDNS host name (`<uuid>.local`): never a DNS name to look up."""
    return bool(re.fullmatch(r"[A-Za-z0-9-]{1,64}\.local", text))


def invalid(message: str) -> TriadError:
    return TriadError(ErrorCode.SDP_INVALID, message)


def check_answer(offer_sdp: str, answer_sdp: str) -> None:
    """Refuse an answer that does not parse or does not match the offer, before aiortc
    applies any of it (aiortc can fail half-way through and leave the PC inconsistent)."""
    offer = SessionDescription.parse(offer_sdp)  # our own, made by aiortc
    check_answer_text(answer_sdp, max_media=len(offer.media))
    try:
        answer = SessionDescription.parse(answer_sdp)
    except SDP_ERRORS:
        raise invalid("the answer does not parse as SDP") from None
    if len(answer.media) != len(offer.media):
        raise invalid("the answer's media sections do not match the offer")
    for theirs, ours in zip(answer.media, offer.media, strict=True):
        if theirs.kind != ours.kind or theirs.rtp.muxId != ours.rtp.muxId:
            raise invalid("the answer's media sections do not match the offer")
        if theirs.ice is None or theirs.dtls is None or not theirs.dtls.fingerprints:
            raise invalid("the answer lacks ICE credentials or a DTLS fingerprint")
