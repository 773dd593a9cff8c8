"""The parent's end of a `participantworker` process: spawn it, configure it (it joins), send it
commands and read its answers, each within a deadline; stop it (killed if it will not go)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from tests.media.participantworker import MAX_LINE_BYTES

ROOT = Path(__file__).resolve().parent.parent.parent
DEADLINE = 60.0  # a join includes the process's imports, on a machine shared with the server


class ParticipantProcess:
    def __init__(self, role: str, log_path: Path) -> None:
        self.role = role
        self.log_path = log_path
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def spawn(self) -> None:
        """Start the interpreter (imports take a while: spawn everyone, then configure)."""
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.media.participantworker",
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                limit=MAX_LINE_BYTES,
            )

    async def join(self, config: dict[str, Any]) -> dict[str, Any]:
        return await self._exchange(config)

    async def request(self, command: str, **arguments: Any) -> dict[str, Any]:
        return await self._exchange({"cmd": command, **arguments})

    async def _exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        process = self._process
        if process is None or process.stdin is None or process.stdout is None:
            raise RuntimeError(f"{self.role}: the participant process is not running")
        async with self._lock:
            process.stdin.write(json.dumps(message).encode() + b"\n")
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), DEADLINE)
        if not line:
            raise RuntimeError(f"{self.role}: the participant process exited: {self.log_tail()}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.role}: {answer['error']}")
        return answer

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    async def close(self) -> dict[str, Any]:
        """`close` (its last report), then wait for it to exit; killed past the deadline.
        Safe twice; the report is empty when the process could not give one."""
        process = self._process
        if process is None:
            return {}
        report: dict[str, Any] = {}
        with contextlib.suppress(RuntimeError, TimeoutError, ConnectionError, ValueError):
            if process.returncode is None:
                report = await self.request("close")
        self._process = None
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), DEADLINE)
        except TimeoutError:
            process.kill()
            await process.wait()
        return report
