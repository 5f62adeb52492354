"""Stack services as OS processes: start ``lighter-stack run <service>`` with its output in a log
file, wait for its ``/health``, stop it with SIGTERM (then SIGKILL after 20 s).

Shared by the demo (and the chaos suite built on it) and the benchmarks (``bench/benchkit``), so
that every tool that runs the real processes starts and stops them the same way.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from shared.config import REPO_ROOT


@dataclass
class Proc:
    """One started process: its name, ``Popen``, log file and HTTP port (``/health``)."""

    name: str
    popen: subprocess.Popen
    log: Path
    port: int


class ProcError(RuntimeError):
    """A process did not become healthy or exited; the message has its log's tail."""


def service_cmd(service: str) -> list[str]:
    """The command line of ``lighter-stack run <service>`` in this virtualenv (the console
    script when installed, else ``python -m lighter_stack.cli``)."""
    exe = Path(sys.executable).parent / "lighter-stack"
    if exe.exists():
        return [str(exe), "run", service]
    return [sys.executable, "-m", "lighter_stack.cli", "run", service]


def tail(path: Path, n: int = 25) -> str:
    """The last ``n`` lines of a log file (``(no log)`` when it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def start_proc(workdir: Path, name: str, env: dict[str, str], port: int, argv: list[str] | None = None) -> Proc:
    """Start ``argv`` (default ``lighter-stack run <name>``) in its own session, with ``env``,
    from the repository root, its output in ``<workdir>/logs/<name>.log``."""
    log = workdir / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as fh:
        p = subprocess.Popen(argv or service_cmd(name), env=env, stdout=fh, stderr=subprocess.STDOUT,
                             cwd=REPO_ROOT, start_new_session=True)
    return Proc(name, p, log, port)


async def wait_healthy(http: aiohttp.ClientSession, proc: Proc, timeout: float,
                       error: type[Exception] = ProcError) -> dict[str, Any]:
    """Poll ``http://127.0.0.1:<port>/health`` of ``proc`` every 0.2 s until it answers 200;
    returns its JSON body.

    Raises:
        error: (default :class:`ProcError`) when the process exits, or after ``timeout`` s
            without a 200 (with the last answer and the log's tail).
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise error(f"{proc.name} exited with code {proc.popen.returncode}; log tail:\n{tail(proc.log)}")
        try:
            async with http.get(f"http://127.0.0.1:{proc.port}/health", timeout=aiohttp.ClientTimeout(total=2)) as r:
                body = await r.json(content_type=None)
                if r.status == 200:
                    return body
                last = json.dumps(body)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            last = type(exc).__name__
        await asyncio.sleep(0.2)
    raise error(f"{proc.name} not healthy after {timeout:.0f}s ({last}); log tail:\n{tail(proc.log)}")


def stop_procs(procs: Sequence[Proc]) -> None:
    """SIGTERM ``procs`` together, then wait up to 20 s for each (SIGKILL after that)."""
    for proc in procs:
        if proc.popen.poll() is None:
            proc.popen.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.popen.wait(20)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait()
