"""Every query of every provisioned Grafana panel and every Prometheus alert rule returns data
against a running demo, scraped by Debian's ``prometheus`` (``/usr/bin/prometheus``).

A short demo slice (lockstep: the same fills every run) runs every service as its own process (:class:`lighter_stack.demo.Demo`);
as soon as its processes are started, Prometheus starts on a free port with a generated config
scraping each of them every second (the demo's own ports, the same job and ``service`` labels as
``deploy/prometheus/prometheus.yml``). After the demo, each expression is evaluated as a range
query over the demo's lifetime (step 1 s), so a service that stopped at the end still counts.

Dashboard variables: ``$market`` is its ``allValue`` (``.*``); ``$strategy`` takes each value
Prometheus knows for the variable's ``label_values`` query, and the panel passes when some
strategy returns data (the demo's slice need not make every strategy trade).

Some expressions can only be empty in a healthy run (an alert condition, an error counter that
never fired): :data:`EMPTY_IN_A_HEALTHY_RUN` lists them with the reason; for those the test checks
instead that every metric they use **exists**: Prometheus has a series or metadata (``HELP``/
``TYPE`` scraped from a target) for its name. Metrics of services the demo does not run
(:data:`NOT_IN_DEMO`) are skipped and listed.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from lighter_stack.demo import Demo, DemoOptions
from shared.redis_util import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

#: title or alert name -> why it is empty in a healthy demo (checked as "its metrics exist").
EMPTY_IN_A_HEALTHY_RUN: dict[str, str] = {
    "Collector book gaps and reconnects": "book gaps are counted per market when a delta skips a nonce; "
                                          "venue-sim's feed has none",
    "ServiceDown": "alert: a target not answering (may also hold data: the demo stops its services at the end)",
    "Dead letters (5m)": "no malformed input reaches a service in a healthy run",
    "Notifier send errors (5m)": "no Telegram send fails in a healthy run (the demo's notifier has no token: it only logs)",
    "DeadLetters": "alert: dead letters",
    "ConsumerLagging": "alert: a consumer more than 1000 entries behind",
    "ExecutorHalted": "alert: executor not running (halted only before its reconciliation, before the scrapes)",
    "MakerPausedTooLong": "alert: the maker's volatility pause engaged",
    "MakerPnlGuardEngaged": "alert: the maker's PnL guard engaged",
    "CalibrationRejectedRepeatedly": "alert: 3 rejected calibrations in 30 min",
    "CalibrationFailing": "alert: 3 failed calibrations in 30 min",
    "ExecutorRequestBudgetLow": "alert: under 20 % of the request budget left",
    "ExecutorQuoteUpdatesDeferred": "alert: more than 20 quote updates held back in 10 min",
    "ExecutorRateLimited": "alert: the venue refused requests with 23000",
    "HedgerStuckInEmergency": "alert: the hedger in emergency for 2 min",
    "ExecutorGuardEngaged": "alert: an inventory or self-trade guard engaged at a scrape; whether one does "
                            "in a 40-minute slice depends on the run (one clean-clone run had none)",
    "HedgerEmergency": "alert: the hedger in emergency at a scrape (depends on the maker's inventory path)",
    "Executor guard engagements and self-trade refusals (1 h)": "a self-trade refusal needs a taker order "
                                                                "crossing our own quote",
    "Rejects by code (5m)": "a run without refused orders is healthy",
    "RedisUnreachable": "alert: a service cannot reach Redis (the demo's Redis stays up)",
    "RedisLostData": "alert: Redis came back without its data",
    "ExecutorPositionMismatch": "alert: the venue's position differs from the strategies' sum (never in a "
                                "healthy run: every fill is attributed)",
}

#: metric name prefix -> the service defining it, which the demo does not run.
NOT_IN_DEMO: dict[str, str] = {}  # every service with metrics runs in the demo

_METRIC = re.compile(r"\b(lighter_stack_[a-z0-9_]+|up)\b")


def _dashboard_targets(dash: dict[str, Any]) -> list[tuple[str, str]]:
    out, stack = [], list(dash.get("panels", []))
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        out.extend((panel.get("title", ""), t["expr"]) for t in panel.get("targets", []) if "expr" in t)
    return out


def _queries() -> list[tuple[str, str, dict[str, Any]]]:
    """(where, expression, the dashboard's variables) of every panel target and alert rule."""
    out = []
    for p in DASHBOARDS:
        dash = json.loads(p.read_text())
        variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
        out += [(f"{p.name}: {title}", expr, variables) for title, expr in _dashboard_targets(dash)]
    doc = yaml.safe_load(ALERTS.read_text())
    out += [(f"alerts.yml: {r['alert']}", r["expr"], {}) for g in doc["groups"] for r in g["rules"]]
    return out


def _family(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


class _Prom:
    def __init__(self, http: aiohttp.ClientSession, port: int, start: float, end: float) -> None:
        self.http, self.base, self.start, self.end = http, f"http://127.0.0.1:{port}/api/v1", start, end

    async def _get(self, path: str, **params: Any) -> Any:
        async with self.http.get(self.base + path, params=params) as r:
            body = await r.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    async def has_data(self, expr: str) -> bool:
        data = await self._get("/query_range", query=expr, start=self.start, end=self.end, step=1)
        return bool(data["result"])

    async def label_values(self, query: str) -> list[str]:
        m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query.strip())
        assert m, f"unsupported variable query {query!r}"
        return await self._get(f"/label/{m.group(2)}/values", **{"match[]": m.group(1), "start": self.start,
                                                                  "end": self.end})

    async def exists(self, metric: str) -> bool:
        if await self._get("/series", **{"match[]": metric, "start": self.start, "end": self.end}):
            return True
        return bool(await self._get("/metadata", metric=_family(metric)))


def _prometheus_config(path: Path, targets: dict[str, int]) -> None:
    static = [{"targets": [f"127.0.0.1:{port}"], "labels": {"service": name}} for name, port in targets.items()]
    path.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "lighter-stack", "metrics_path": "/metrics", "scrape_timeout": "1s",
                            "static_configs": static}],
    }))


async def _wait_ready(http: aiohttp.ClientSession, port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "prometheus exited"
        try:
            async with http.get(f"http://127.0.0.1:{port}/-/ready") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError("prometheus not ready")


async def _run(tmp_path: Path) -> tuple[list[str], list[str]]:
    demo = Demo(DemoOptions(minutes=40, lockstep=True, workdir=tmp_path / "demo", timeout_s=240))
    task = asyncio.create_task(demo.run())
    expected = 1 + len(demo.services)
    while len(demo.procs) < expected and not task.done():
        await asyncio.sleep(0.1)
    assert not task.done(), f"the demo ended early: {task.result()!r}"
    port = free_port()
    cfg = tmp_path / "prometheus.yml"
    _prometheus_config(cfg, {p.name: p.port for p in demo.procs})
    log = open(tmp_path / "prometheus.log", "wb")
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    problems: list[str] = []
    skipped: list[str] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            await _wait_ready(http, port, prom)
            start = time.time()
            summary = await task
            await asyncio.sleep(2)
            assert summary["fills"] > 0, summary
            prom_api = _Prom(http, port, start, time.time())
            for where, expr, variables in _queries():
                names = set(_METRIC.findall(expr))
                missing_service = {svc for n in names for pre, svc in NOT_IN_DEMO.items() if n.startswith(pre)}
                if missing_service:
                    skipped.append(f"{where} (needs {', '.join(sorted(missing_service))})")
                    continue
                exprs = [expr.replace("$market", ".*")]
                if "$strategy" in expr:
                    values = await prom_api.label_values(variables["strategy"]["query"]["query"])
                    assert values, f"{where}: no value for $strategy"
                    exprs = [exprs[0].replace("$strategy", v) for v in values]
                if any([await prom_api.has_data(e) for e in exprs]):
                    continue
                title = where.split(": ", 1)[1]
                if title in EMPTY_IN_A_HEALTHY_RUN:
                    absent = [n for n in sorted(names) if not await prom_api.exists(n)]
                    if absent:
                        problems.append(f"{where}: metric(s) {absent} do not exist  [{expr}]")
                else:
                    problems.append(f"{where}: no data  [{expr}]")
    finally:
        prom.terminate()
        prom.wait(20)
        log.close()
        if not task.done():
            task.cancel()
    return problems, skipped


@pytest.mark.skipif(not Path(PROMETHEUS).exists(), reason="Debian's prometheus is not installed (make sysdeps)")
def test_every_panel_and_alert_query_returns_data_against_a_demo(tmp_path, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LIGHTER_STACK_DATA", str(tmp_path))
    problems, skipped = asyncio.run(_run(tmp_path))
    print("skipped (service not in the demo):", skipped)
    assert problems == [], "\n".join(problems)
