"""Client side of the benches: count a receiver's complete encoded frames without decoding.

aiortc's RTCRtpReceiver assembles frames in its jitter buffer and puts `(codec, frame)` on a
decoder queue for a decoder thread. `count_frames` puts a stand-in there that is both that
queue and that thread, so a bench client playing many participants spends no CPU decoding.
(The server no longer uses aiortc's receive path at all; this is for the load generator only.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

_R = "_RTCRtpReceiver__"


class _DecoderStandIn:
    def __init__(self, on_frame: Callable[[bytes], None]) -> None:
        self._on_frame = on_frame

    def put(self, item: tuple[Any, Any] | None) -> None:
        if item is not None:
            self._on_frame(item[1].data)

    def join(self, timeout: float | None = None) -> None:
        """No thread to wait for."""

    def __bool__(self) -> bool:
        return True


def count_frames(receiver: Any, on_frame: Callable[[bytes], None]) -> None:
    """Hand each assembled encoded frame to `on_frame`; call before the receiver starts."""
    stand_in = _DecoderStandIn(on_frame)
    setattr(receiver, f"{_R}decoder_queue", stand_in)

    async def receive(parameters: Any) -> None:
        # RTCRtpReceiver.receive (aiortc 1.16) minus its decoder thread.
        if getattr(receiver, f"{_R}started"):
            return
        codecs = getattr(receiver, f"{_R}codecs")
        for codec in parameters.codecs:
            codecs[codec.payloadType] = codec
        rtx_ssrc = getattr(receiver, f"{_R}rtx_ssrc")
        for encoding in parameters.encodings:
            if encoding.rtx:
                rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc
        setattr(receiver, f"{_R}decoder_thread", stand_in)
        getattr(receiver, f"{_R}transport")._register_rtp_receiver(receiver, parameters)
        setattr(receiver, f"{_R}rtcp_task", asyncio.ensure_future(receiver._run_rtcp()))
        setattr(receiver, f"{_R}started", True)

    setattr(receiver, "receive", receive)  # noqa: B010
