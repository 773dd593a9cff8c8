"""The parent's end of a `participantworker` process: spawn it, configure it (it joins), send it
commands and read its answers, each within a deadline; `leave` (it can then join again as
another seat); stop it (killed if it will not go)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.media.participantworker import MAX_LINE_BYTES

ROOT = Path(__file__).resolve().parent.parent.parent
DEADLINE = 60.0  # a join includes the process's imports, on a machine shared with the server


class ParticipantProcess:
    def __init__(
        self,
        role: str,
        log_path: Path,
        *,
        prefix: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`prefix` runs the interpreter through a command (`ip netns exec NAME`); `env` adds
        environment variables (e.g. SSL_CERT_FILE for a test TURN server's certificate)."""
        self.role = role
        self.log_path = log_path
        self.prefix = tuple(prefix)
        self.env = {**os.environ, **(env or {})}
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    async def spawn(self) -> None:
        """Start the interpreter (imports take a while: spawn everyone, then configure)."""
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self.prefix,
                sys.executable,
                "-m",
                "tests.media.participantworker",
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=self.env,
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

    async def leave(self) -> dict[str, Any]:
        """`close` the current seat: its last report (empty when it could not give one)."""
        process = self._process
        if process is None or process.returncode is not None:
            return {}
        with contextlib.suppress(RuntimeError, TimeoutError, ConnectionError, ValueError):
            return await self.request("close")
        return {}

    async def close(self) -> None:
        """End the process (it leaves its seat first); killed past the deadline. Safe twice."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), DEADLINE)
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def participant_processes(
    roles: tuple[str, ...], directory: Path
) -> AsyncIterator[dict[str, ParticipantProcess]]:
    """One process per role, spawned at once (their imports overlap whatever comes next);
    logs in `directory/<role>.log`."""
    processes = {role: ParticipantProcess(role, directory / f"{role}.log") for role in roles}
    try:
        for process in processes.values():
            await process.spawn()
        yield processes
    finally:
        await asyncio.gather(*(p.close() for p in processes.values()))
