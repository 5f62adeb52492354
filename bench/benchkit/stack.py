"""Services as OS processes for the benchmarks, on a private Redis; machine facts; percentiles.

A benchmark that runs the real processes starts each one as ``lighter-stack run <service>``
(what the demo and docker compose run) with its settings in ``LS_...`` environment overrides
(:func:`service_env`), waits for its ``/health``, and stops everything it started, in reverse
order, with SIGTERM (then SIGKILL after 20 s). Redis is a private ``redis-server``
(:class:`shared.redis_util.EmbeddedRedis`, a free port) so that other work on the machine's shared
Redis neither slows the figures nor sees the benchmark's streams.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import redis

from lighter_stack.procs import Proc, ProcError, start_proc, stop_procs, tail, wait_healthy
from shared.config import REPO_ROOT

BUNDLED_RECORDING = REPO_ROOT / "data" / "recordings" / "lighter-2025-09-15-btc-eth.jsonl.gz"


def machine() -> dict[str, Any]:
    """Facts of this machine for the report: CPU count and model, memory, load averages (1, 5,
    15 min at the time of the call), Python version."""
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu_model": model, "mem_gib": mem_gib,
            "loadavg": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version()}


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 99, 99.9)) -> dict[str, float | None]:
    """``{"p50": ..., "p99": ..., "p99.9": ...}`` of ``values`` (numpy's linear interpolation),
    rounded to 3 decimals; ``None`` each when ``values`` is empty."""
    if not len(values):
        return {f"p{q:g}": None for q in qs}
    arr = np.asarray(values, dtype=float)
    return {f"p{q:g}": round(float(np.percentile(arr, q)), 3) for q in qs}


def rss_mb(pid: int) -> float | None:
    """Resident set size of process ``pid`` in MiB (``VmRSS`` of ``/proc/<pid>/status``), or
    ``None`` when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def redis_version(url: str) -> str:
    """The ``redis_version`` of the server at ``url``."""
    return str(redis.Redis.from_url(url).info("server").get("redis_version", "?"))


def service_env(redis_url: str, ns: str, venue_port: int, recording: Path, workdir: Path,
                ports: dict[str, int], extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every service of a benchmark stack: paper mode on venue-sim at
    ``venue_port`` replaying ``recording`` (waiting for ``POST /sim/start``), namespace ``ns``
    on ``redis_url``, files under ``workdir``, each service's ``http_port`` from ``ports``, then
    the ``extra`` overrides. The caller's own ``LS_*`` variables are dropped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LS_")}
    env.update({
        "REDIS_URL": redis_url,
        "LS_MODE": "paper",
        "LS_NAMESPACE": ns,
        "LS_VENUE__REST_URL": f"http://127.0.0.1:{venue_port}",
        "LS_VENUE__WS_URL": f"ws://127.0.0.1:{venue_port}/stream",
        "LS_SERVICES__VENUE_SIM__PORT": str(venue_port),
        "LS_SERVICES__VENUE_SIM__HOST": "127.0.0.1",
        "LS_SERVICES__VENUE_SIM__RECORDING": str(recording),
        "LS_SERVICES__VENUE_SIM__AUTOSTART": "false",
        "LS_SERVICES__VENUE_SIM__FILLS_FILE": str(workdir / "venue-fills.jsonl"),
        "LS_SERVICES__LEDGER__DB_URL": f"sqlite:///{workdir / 'ledger.db'}",
        "LIGHTER_STACK_DATA": str(workdir),
        "PYTHONUNBUFFERED": "1",
        "LOG_LEVEL": "WARNING",
    })
    for name, port in ports.items():
        if name != "venue-sim":
            env[f"LS_SERVICES__{name.upper().replace('-', '_')}__HTTP_PORT"] = str(port)
    env.update(extra or {})
    return env


class StackError(ProcError):
    """A benchmark process did not start or died; the message has its log's tail."""


@dataclass
class Stack:
    """The processes of one benchmark run (stopped in reverse start order by :meth:`stop_all`)."""

    workdir: Path
    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, port: int, argv: list[str] | None = None, env: dict[str, str] | None = None) -> Proc:
        """Start ``argv`` (default ``lighter-stack run <name>``) with its output in
        ``<workdir>/logs/<name>.log``."""
        proc = start_proc(self.workdir, name, env or self.env, port, argv)
        self.procs.append(proc)
        return proc

    def check_alive(self) -> None:
        """Raise :class:`StackError` if a started process has exited."""
        for p in self.procs:
            if p.popen.poll() is not None:
                raise StackError(f"{p.name} exited with code {p.popen.returncode}; log tail:\n{tail(p.log, 20)}")

    async def wait_healthy(self, http: aiohttp.ClientSession, proc: Proc, timeout: float = 90.0) -> dict[str, Any]:
        """Poll ``/health`` of ``proc`` until it answers 200; returns its body (raises
        :class:`StackError`)."""
        return await wait_healthy(http, proc, timeout, error=StackError)

    def stop(self, proc: Proc) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        stop_procs([proc])

    def stop_all(self) -> None:
        """Stop every process, the last started first."""
        for proc in reversed(self.procs):
            self.stop(proc)
        self.procs.clear()


async def get_json(http: aiohttp.ClientSession, url: str, method: str = "GET") -> Any:
    """The JSON body of ``method url`` (raises on an HTTP error)."""
    async with http.request(method, url, timeout=aiohttp.ClientTimeout(total=30)) as r:
        r.raise_for_status()
        return await r.json(content_type=None)


async def metric_value(http: aiohttp.ClientSession, port: int, name: str) -> float:
    """Sum of the samples of Prometheus metric ``name`` (all label sets) on ``:port/metrics``;
    0 when absent."""
    async with http.get(f"http://127.0.0.1:{port}/metrics", timeout=aiohttp.ClientTimeout(total=10)) as r:
        text = await r.text()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def print_figures(figures: dict[str, Any]) -> None:
    """Print ``key: value`` lines, then the figures as one JSON object on the last line."""
    for k, v in figures.items():
        if not isinstance(v, dict | list):
            print(f"{k:>40}: {v}")
    print(json.dumps(figures), flush=True)
