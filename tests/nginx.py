"""A real nginx (Debian's) for tests, running the committed `deploy/nginx/triad.conf` with its
EDIT values replaced: loopback ports, a self-signed certificate (tests/daemons.py) for 127.0.0.1,
and the workers' addresses the test names. Every replaced value must be in the file, so a
test fails when the committed configuration changes under it.

nginx runs in the foreground as the master of one worker process, under `timeout` so a test
run that dies cannot leave it behind, with its prefix, pid file, logs and temporary files in
the test's directory. It cannot bind port 0: free ports are picked when it is made (the
workers' public URLs name them before it starts)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import ssl
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from tests.daemons import bounded, require_program, self_signed, stop_group
from tests.ports import free_ports

NGINX = "nginx"
ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "deploy" / "nginx" / "triad.conf"
DEADLINE = 15.0


def require() -> None:
    require_program(NGINX, "nginx")


def render(
    template: str, directory: Path, https_port: int, http_port: int, workers: Mapping[str, str]
) -> str:
    """The configuration with its EDIT values replaced: the public name by 127.0.0.1 on the
    test's ports (IPv4 loopback only), the certificate and log paths by `directory`, and each
    worker address of the file by `workers`' value for it."""
    edits = {
        "/etc/letsencrypt/live/triad.example/fullchain.pem": str(directory / "nginx-cert.pem"),
        "/etc/letsencrypt/live/triad.example/privkey.pem": str(directory / "nginx-key.pem"),
        "/var/log/nginx/": f"{directory}/",
        "https://triad.example": f"https://127.0.0.1:{https_port}",
        "server_name triad.example;": "server_name 127.0.0.1;",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        **workers,
    }
    for old, new in edits.items():
        if old not in template:
            raise AssertionError(f"{CONFIG.name} no longer has {old!r}: update tests/nginx.py")
        template = template.replace(old, new)
    return template


class Nginx:
    """nginx on two free loopback ports (known before it starts: the workers' public URLs name
    them); `serving(workers)` runs it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.cert_path, _ = self_signed(directory, ("127.0.0.1",), "nginx")
        self.error_log = directory / "nginx-error.log"
        self.access_log = directory / "triad.access.log"
        self.https_port = free_ports(2)
        self.http_port = self.https_port + 1
        self._process: asyncio.subprocess.Process | None = None

    @contextlib.asynccontextmanager
    async def serving(self, workers: Mapping[str, str]) -> AsyncIterator[Nginx]:
        """Running in front of `workers`: each worker address of the committed file
        (`10.0.0.11:8080`) and the address that replaces it. Stopped on the way out."""
        try:
            await self.start(workers)
            yield self
        finally:
            await self.stop()

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only the test certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))

    def _main_config(self, workers: Mapping[str, str]) -> Path:
        """nginx.conf: the process settings a distribution's file holds, and the site file
        rendered into the `http` block."""
        d = self.directory
        site = d / "triad.conf"
        site.write_text(render(CONFIG.read_text(), d, self.https_port, self.http_port, workers))
        for temp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (d / f"nginx-{temp}").mkdir(exist_ok=True)
        # As root the worker would run as `nobody`, which cannot enter the test's directory.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        main = d / "nginx.conf"
        main.write_text(
            f"""{user}
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {self.error_log} notice;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {d}/nginx-body;
    proxy_temp_path {d}/nginx-proxy;
    fastcgi_temp_path {d}/nginx-fastcgi;
    uwsgi_temp_path {d}/nginx-uwsgi;
    scgi_temp_path {d}/nginx-scgi;
    include {site};
}}
"""
        )
        return main

    async def start(self, workers: Mapping[str, str]) -> None:
        main = self._main_config(workers)
        self._process = await asyncio.create_subprocess_exec(
            *bounded(NGINX, "-p", str(self.directory), "-c", str(main), "-e", str(self.error_log)),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        if not await self._ready():
            await self.stop()
            raise RuntimeError(f"nginx did not start:\n{self.log_text()}")

    async def _ready(self) -> bool:
        """Its worker started and both ports accept; False if nginx exited."""
        process = self._process
        assert process is not None
        loop = asyncio.get_running_loop()
        end = loop.time() + DEADLINE
        while loop.time() < end:
            if process.returncode is not None:
                return False
            if "start worker process" in self.log_text():
                try:
                    for port in (self.https_port, self.http_port):
                        _, writer = await asyncio.open_connection("127.0.0.1", port)
                        writer.close()
                        await writer.wait_closed()
                except OSError:
                    pass
                else:
                    return process.returncode is None
            await asyncio.sleep(0.05)
        return False

    def log_text(self) -> str:
        if not self.error_log.exists():
            return ""
        return self.error_log.read_text(errors="replace")

    async def stop(self) -> None:
        """SIGTERM (nginx's fast shutdown) to its process group, SIGKILL past the deadline.
        Safe twice."""
        process, self._process = self._process, None
        await stop_group(process)
