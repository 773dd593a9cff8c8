"""One weak-link participant in a process of its own (`python -m tests.media.participantworker`),
so the three participants' aiortc peers use the machine's cores instead of sharing one event
loop and one GIL.

It speaks JSON lines: a first line on stdin configures it (the server, the seat, the peer
options, the link or null) and it answers once it has joined; after that each line is a command
and gets one answer line on stdout (`{"error": ...}` when the command failed). Commands:
`status`, `start` (record decode times), `stop` (with the window's `start` and `end` on the
shared monotonic clock: the figures of that window), `reshape` (the link changes: `uplink`
and `downlink` profiles; decode times are recorded afresh from then), `returned` (for each of
`senders`, when its video came back after `since`, or null), `end` (end the consult),
`restart` (ask for a new peer connection on the same seat, `media-restart`, as the web page
does when it comes back online), `close` (leave; the next line configures the next seat). It
exits when stdin closes (its parent is done or gone). Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from typing import Any

import psutil

from tests.media.linkedpeer import LinkedParticipant, LinkProfiles, PeerOptions
from tests.media.linkemu import LinkProfile, LinkStats
from tests.media.triadserver import Seat

MAX_LINE_BYTES = 1024 * 1024


def _cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def participant_from(config: dict[str, Any]) -> LinkedParticipant:
    link = config.get("link")
    return LinkedParticipant(
        Seat(**config["seat"]),
        str(config["base_url"]),
        PeerOptions(**config["peers"]),
        None
        if link is None
        else LinkProfiles(
            LinkProfile(**link["uplink"]), LinkProfile(**link["downlink"]), int(link["seed"])
        ),
    )


class Worker:
    def __init__(self, participant: LinkedParticipant) -> None:
        self.participant = participant
        self._links_before = LinkStats()
        self._sent_before = (0, 0)
        self._cpu_before = 0.0

    def status(self) -> dict[str, Any]:
        p = self.participant
        return {
            "connected": p.connected,
            "decoded": [[sender, kind, n] for (sender, kind), n in p.recorder.total.items()],
            "failures": [repr(exc) for exc in p.failures],
            "generation": p.generation,
            "socket_up": not p.room.disconnected,
        }

    def start(self) -> dict[str, Any]:
        p = self.participant
        p.recorder.start()
        self._links_before, self._sent_before = p.link_stats(), p.sent()
        self._cpu_before = _cpu_seconds()
        return {"ok": True}

    def stop(self, start: float, end: float, senders: list[str]) -> dict[str, Any]:
        p = self.participant
        p.recorder.stop()
        links = p.link_stats().since(self._links_before)
        sent = p.sent()
        receptions = []
        for sender in senders:
            receptions.append(
                {
                    "sender": sender,
                    "audio": dataclasses.asdict(p.recorder.window(sender, "audio", start, end)),
                    "video": dataclasses.asdict(p.recorder.window(sender, "video", start, end)),
                    "audio_in_run": p.recorder.total[(sender, "audio")],
                    "video_in_run": p.recorder.total[(sender, "video")],
                }
            )
        return {
            "receptions": receptions,
            "link": dataclasses.asdict(links) if p.link_profiles is not None else None,
            "sent": [sent[0] - self._sent_before[0], sent[1] - self._sent_before[1]],
            "cpu": _cpu_seconds() - self._cpu_before,
            "generations": p.generations,
            "failures": [repr(exc) for exc in p.failures],
        }

    def reshape(self, uplink: dict[str, Any], downlink: dict[str, Any]) -> dict[str, Any]:
        p = self.participant
        p.recorder.start()
        at = time.monotonic()
        p.reshape(LinkProfiles(LinkProfile(**uplink), LinkProfile(**downlink)))
        return {"at": at}

    def returned(self, senders: list[str], since: float) -> dict[str, Any]:
        recorder = self.participant.recorder
        return {"returned": {s: recorder.returned_at(s, "video", since) for s in senders}}

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        command = request.get("cmd")
        if command == "status":
            return self.status()
        if command == "start":
            return self.start()
        if command == "stop":
            return self.stop(float(request["start"]), float(request["end"]), request["senders"])
        if command == "reshape":
            return self.reshape(request["uplink"], request["downlink"])
        if command == "returned":
            return self.returned(request["senders"], float(request["since"]))
        if command == "restart":
            return {"ack": await self.participant.restart_media()}
        if command == "end":
            ack: dict[str, Any] = await self.participant.room.call("end")
            return {"ack": ack}
        if command == "close":
            events = self.participant.media_quality_events()
            paused = self.participant.paused_publishers()
            violations = [f"{event}: {why}" for event, why in self.participant.take_violations()]
            await self.participant.close()
            return {"media_quality": events, "paused": paused, "violations": violations}
        return {"error": f"unknown command {command!r}"}


def reply(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


async def serve_one(reader: asyncio.StreamReader, config: dict[str, Any]) -> bool:
    """Join as the configured seat and answer commands until `close`; False once stdin ends."""
    participant = participant_from(config)
    try:
        try:
            await participant.join()
        except Exception as exc:
            reply({"error": f"join failed: {exc!r}"})
            return True
        reply({"ok": True, "pid": participant.participant_id})
        worker = Worker(participant)
        while line := await reader.readline():
            request = json.loads(line)
            try:
                answer = await worker.handle(request)
            except Exception as exc:
                answer = {"error": repr(exc)}
            reply(answer)
            if request.get("cmd") == "close":
                return True
        return False
    finally:
        participant.take_violations()  # reported by `close`, never raised on the way out
        await participant.close()


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    # One seat after another (a consult per profile), sparing an interpreter start each time.
    while line := await reader.readline():
        message = json.loads(line)
        if "cmd" in message:  # between seats (a join failed): nothing to close or report
            reply({} if message["cmd"] == "close" else {"error": "not joined"})
        elif not await serve_one(reader, message):
            return


if __name__ == "__main__":
    asyncio.run(main())
