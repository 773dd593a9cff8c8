"""What the tests need to run a Debian daemon on loopback (coturn, nginx): the program or a
skip, a self-signed certificate for its TLS (its own CA: what a client trusts), a command line
bounded in time, so a test run that dies cannot leave the daemon behind, and its stop."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import os
import shutil
import signal
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.databases import services_required

DEADLINE = 15.0
# Seconds a daemon may live at most (`timeout` ends it if the test run never does).
LIFETIME_SECONDS = 900


def require_program(program: str, package: str) -> None:
    """Skip without `program` on PATH, or fail when the run requires every service (CI installs
    Debian's `package`)."""
    if shutil.which(program) is not None:
        return
    import pytest

    why = f"{program} is not installed (apt-get install {package})"
    if services_required():
        pytest.fail(why)
    pytest.skip(why)


def bounded(*argv: str) -> tuple[str, ...]:
    """`argv` under `timeout`, killed after `LIFETIME_SECONDS` (5 s after a SIGTERM that did
    not end it)."""
    return ("timeout", "-k", "5", str(LIFETIME_SECONDS), *argv)


async def stop_group(process: asyncio.subprocess.Process | None) -> None:
    """SIGTERM to the process group of `process` (started in a session of its own), SIGKILL
    past the deadline. Nothing if it is None or has exited."""
    if process is None or process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), DEADLINE)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


def self_signed(directory: Path, addresses: tuple[str, ...], name: str) -> tuple[Path, Path]:
    """A P-256 certificate for `addresses` (IP subject alternative names), valid for a day,
    and its key: `<name>-cert.pem` and `<name>-key.pem` in `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"triad test {name}")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}-cert.pem", directory / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path
