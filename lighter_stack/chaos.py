"""``lighter-stack chaos``: the paper demo under repeated faults, then the money invariants.

A :class:`ChaosRun` is a :class:`lighter_stack.demo.Demo` (every service its own process, the
bundled real recording, paced by the wall clock) with its own Redis (AOF on) and venue-sim's
audit log (:mod:`services.venue_sim.audit`). While the recording replays, a seeded plan
(:func:`make_plan`) kills services with SIGKILL and restarts them after a few seconds, each
service in turn, several times; shuts Redis down (``SHUTDOWN NOSAVE``) and restarts it from its
append-only file; and switches venue-sim's faults on for a while (``/sim/fault``) when the venue
offers them. Then the demo winds down as usual and the invariants are checked
(:func:`check_invariants`), each reported with its count:

* ``intents_lost``: intent entries the executor's consumer group never acknowledged (pending or
  never delivered) at the end; an intent the executor refused is dead-lettered with its reason
  and counted in ``intents_dead_lettered``, not here;
* ``duplicate_orders``: create orders the venue accepted with a client order index it had
  already accepted for the account (one order sent twice);
* ``ledger_minus_venue_fills``: the ledger's venue fills minus the venue's fills of the account;
  ``strategy_fill_mismatches``: strategies whose fills differ between the ledger and the exec
  stream;
* ``book_mismatches``: published book events (snapshot or delta, in stream order) after which
  the collector's book differs from the book venue-sim published at the same nonce, or a delta
  that does not chain onto the book before it;
* ``position_mismatches``: markets where the sum of the strategies' last positions
  (``PositionSnapshot``) differs from the venue's account position by half a lot or more;
* ``signed_while_halted``: orders the venue accepted from the executor (``OrderAccepted``, not
  reduce-only) between a ``RiskState`` of ``halted`` and the next state change.

The last line printed is one JSON object with those counts and ``faults_injected``, ``kills``,
``redis_restarts`` and ``ok`` (every invariant zero).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import signal
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from lighter_stack.demo import Demo, DemoError, DemoOptions, console, run_or_report
from services.venue_sim.faults import FAULT_KINDS
from shared.bus import Bus
from shared.events import BookDelta, BookSnapshot, OrderAccepted, PositionSnapshot, RiskState
from shared.markets import MarketInfo
from shared.redis_util import EmbeddedRedis

log = logging.getLogger(__name__)

NEVER_KILLED = ("venue-sim",)
"""Services the plan does not kill: venue-sim plays the exchange (its own restarts, which keep
its state, are one of its faults: the ``venue_restart`` action)."""

DEFAULT_VENUE_FAULTS: dict[str, Any] = {
    "ws_disconnect": 0.002, "book_drop": 0.05, "book_duplicate": 0.05, "book_reorder": 0.05,
    "account_delay": 0.1, "account_delay_ms": 500, "account_duplicate": 0.1,
    "rate_limit": 0.05, "http_5xx": 0.05, "nonce_reject": 0.05, "tx_timeout": 0.05, "tx_timeout_ms": 2000,
}
"""Every venue-sim fault kind (``services/venue_sim/faults.py`` ``FaultPlan``), each at a
probability per opportunity, for the fault window of a run; the seed is the run's."""


@dataclass
class ChaosOptions:
    """Knobs of a chaos run (besides the demo's: ``demo``).

    Attributes:
        demo: the demo run underneath (recording slice, speed, strategies...).
        seed: seeds the plan (order of kills, down times, fault windows).
        kills_per_service: SIGKILLs of each killable service.
        down_s: a killed service stays down a uniform ``[lo, hi]`` wall seconds.
        services: services to kill (default: every service of the demo but venue-sim).
        redis_restarts: ``SHUTDOWN NOSAVE`` + restart of Redis (AOF on), each down ``down_s``.
        venue_faults: venue-sim fault plan to switch on for a window of the run (JSON body of
            ``POST /sim/fault``, default :data:`DEFAULT_VENUE_FAULTS`); None or empty = none.
        venue_restarts: restarts of venue-sim from its state file (``POST /sim/fault/once``
            ``restart``), each keeping its book, orders, accounts, nonces and keys.
        gap_s: wall seconds between two actions of the plan.
    """

    demo: DemoOptions = field(default_factory=lambda: DemoOptions(speed=8.0))
    seed: int = 7
    kills_per_service: int = 2
    down_s: tuple[float, float] = (1.0, 4.0)
    services: list[str] | None = None
    redis_restarts: int = 1
    venue_faults: dict[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_VENUE_FAULTS))
    venue_restarts: int = 1
    gap_s: float = 1.0


@dataclass(frozen=True)
class Action:
    """One step of the plan: ``kind`` is ``kill`` (``target`` = service), ``redis``,
    ``venue_faults`` or ``venue_restart``; ``down_s`` how long the target stays down (the fault
    window lasts; unused by ``venue_restart``)."""

    kind: str
    target: str
    down_s: float


def make_plan(opts: ChaosOptions, services: list[str]) -> list[Action]:
    """The run's actions in order: each service of ``services`` (minus :data:`NEVER_KILLED`)
    killed ``kills_per_service`` times, rounds shuffled by ``seed``; the Redis restarts and the
    venue fault window spread over the run. Deterministic in ``opts`` and ``services``."""
    rng = random.Random(opts.seed)
    lo, hi = opts.down_s
    victims = [s for s in (opts.services or services) if s not in NEVER_KILLED]
    plan: list[Action] = []
    for _ in range(opts.kills_per_service):
        round_ = list(victims)
        rng.shuffle(round_)
        plan += [Action("kill", s, round(rng.uniform(lo, hi), 2)) for s in round_]
    extra = [Action("redis", "redis", round(rng.uniform(lo, hi), 2)) for _ in range(opts.redis_restarts)]
    extra += [Action("venue_restart", "venue-sim", 0.0) for _ in range(opts.venue_restarts)]
    if opts.venue_faults:
        extra.append(Action("venue_faults", "venue-sim", round(rng.uniform(10 * lo, 10 * hi), 2)))
    n = len(plan)
    for i, a in enumerate(extra):  # evenly among the kills, never first or last
        plan.insert((i + 1) * n // (len(extra) + 1) + i, a)
    return plan


class ChaosRun(Demo):
    """A demo run with the fault plan and the invariants (module docstring)."""

    def __init__(self, opts: ChaosOptions) -> None:
        self.chaos = opts
        super().__init__(opts.demo)
        self.audit_path = self.workdir / "venue-audit.jsonl"
        self.opts.overrides = {**self.opts.overrides,
                               "LS_SERVICES__VENUE_SIM__AUDIT_FILE": str(self.audit_path),
                               "LS_SERVICES__VENUE_SIM__STATE_PATH": str(self.workdir / "venue-state.pkl"),
                               # a killed service's instance/account lock expires after the lease
                               # TTL before its restart may act: short, so the plan fits the replay
                               "LS_LEASE_TTL_S": "3"}
        self.plan = make_plan(opts, self.services)
        self.venue_faults_injected: dict[str, int] = {}
        """venue-sim's count of injected faults per kind (``GET /sim/fault``), read at the end."""
        self.positions: dict[int, float] = {}
        """The venue's account positions at the end (market id -> signed base units)."""
        self._replay_done = False
        self.counts: Counter[str] = Counter()
        self.driver_error: str | None = None

    def _redis_for_run(self) -> tuple[str, str]:
        self.redis_server = EmbeddedRedis(appendonly=True).start()
        return self.redis_server.url, "paper"

    def _restart(self, name: str) -> None:
        for i, proc in enumerate(self.procs):
            if proc.name == name:
                new = self._start(name, self.env, proc.port)
                self.procs.remove(new)
                self.procs[i] = new
                return
        raise DemoError(f"no process {name} to restart")

    async def _kill(self, http: aiohttp.ClientSession, name: str, down_s: float) -> None:
        proc = next(p for p in self.procs if p.name == name)
        self.down.add(name)
        proc.popen.send_signal(signal.SIGKILL)
        proc.popen.wait()
        self.counts["kills"] += 1
        console.print(f"chaos: killed {name} (down {down_s:.1f}s)")
        await asyncio.sleep(down_s)
        self._restart(name)
        await self._wait_healthy(http, next(p for p in self.procs if p.name == name))
        self.down.discard(name)

    async def _restart_redis(self, down_s: float) -> None:
        server = self.redis_server
        assert server is not None
        self.down.add("redis")
        await asyncio.to_thread(server.shutdown)
        self.counts["redis_restarts"] += 1
        console.print(f"chaos: Redis shut down (down {down_s:.1f}s)")
        await asyncio.sleep(down_s)
        await asyncio.to_thread(server.start)
        self.down.discard("redis")

    async def _venue_faults(self, http: aiohttp.ClientSession, window_s: float) -> None:
        base = f"http://127.0.0.1:{self.ports['venue-sim']}/sim/fault"
        plan = {"seed": self.chaos.seed, **(self.chaos.venue_faults or {})}
        async with http.post(base, json=plan) as r:
            if r.status != 200:
                raise DemoError(f"venue-sim refused the fault plan: {r.status} {await r.text()}")
        for kind in FAULT_KINDS:  # each kind armed once, so that each shows up even in a quiet window
            if plan.get(kind):
                async with http.post(f"{base}/once", json={"kind": kind}) as r:
                    if r.status != 200:
                        raise DemoError(f"venue-sim refused to arm {kind}: {r.status} {await r.text()}")
        console.print(f"chaos: venue faults on for {window_s:.1f}s")
        await asyncio.sleep(window_s)
        async with http.delete(base) as r:
            r.raise_for_status()

    async def _venue_restart(self, http: aiohttp.ClientSession) -> None:
        """venue-sim restarts in place from its state file; waits until it answers again."""
        venue = next(p for p in self.procs if p.name == "venue-sim")
        self.down.add("venue-sim")
        async with http.post(f"http://127.0.0.1:{venue.port}/sim/fault/once", json={"kind": "restart"}) as r:
            if r.status != 200:
                raise DemoError(f"venue-sim refused to restart: {r.status} {await r.text()}")
        console.print("chaos: venue-sim restarting from its state file")
        await asyncio.sleep(0.5)
        await self._wait_healthy(http, venue)
        self.down.discard("venue-sim")

    async def _venue_fault_counts(self, http: aiohttp.ClientSession) -> dict[str, int]:
        async with http.get(f"http://127.0.0.1:{self.ports['venue-sim']}/sim/fault") as r:
            body = await r.json(content_type=None)
        return {k: int(v) for k, v in (body.get("injected") or {}).items()}

    async def _drive(self, http: aiohttp.ClientSession) -> None:
        """Run the plan (stops early when the replay ends first)."""
        try:
            for action in self.plan:
                if self._replay_done:
                    break
                if action.kind == "kill":
                    await self._kill(http, action.target, action.down_s)
                elif action.kind == "redis":
                    await self._restart_redis(action.down_s)
                elif action.kind == "venue_restart":
                    await self._venue_restart(http)
                else:
                    await self._venue_faults(http, action.down_s)
                await asyncio.sleep(self.chaos.gap_s)
        except Exception as exc:  # reported by _replay
            self.driver_error = f"{type(exc).__name__}: {exc}"
            raise

    async def _replay(self, http: aiohttp.ClientSession, port: int) -> None:
        self._replay_done = False
        driver = asyncio.create_task(self._drive(http))
        try:
            await super()._replay(http, port)
        finally:
            self._replay_done = True
            with contextlib.suppress(Exception):
                await driver
        if self.driver_error:
            raise DemoError(f"chaos driver failed: {self.driver_error}")

    async def _summarize(self, redis_client, ns: str, venue_fills: list[dict]) -> dict[str, Any]:
        summary = await super()._summarize(redis_client, ns, venue_fills)
        inv = await check_invariants(redis_client, ns, self.cfg.account_index, self.markets, self.audit_path,
                                     self.positions)
        ledger_minus_venue = int(summary["ledger_fills"]) - int(summary["venue_fills"])
        strategy_mismatch = 0 if summary["fills_attributed"] else 1
        venue_faults = sum(self.venue_faults_injected.values())
        summary.update({
            "faults_injected": venue_faults + self.counts["kills"] + self.counts["redis_restarts"],
            "kills": self.counts["kills"], "redis_restarts": self.counts["redis_restarts"],
            "venue_faults": venue_faults, "venue_faults_by_kind": self.venue_faults_injected,
            **inv, "ledger_minus_venue_fills": ledger_minus_venue, "strategy_fill_mismatches": strategy_mismatch,
        })
        return summary

    async def _read_venue_at_end(self, http: aiohttp.ClientSession, port: int) -> None:
        """The venue's positions and fault counts, read while it still runs."""
        self.venue_faults_injected = await self._venue_fault_counts(http)
        url = f"http://127.0.0.1:{port}/api/v1/account?by=index&value={self.cfg.account_index}"
        body = await self._get_json(http, url)
        self.positions = {int(p["market_id"]): float(p["position"]) * int(p.get("sign", 1) or 1)
                           for p in (body.get("accounts") or [{}])[0].get("positions", [])}


def _book_key(levels: list[tuple[float, float]], m: MarketInfo) -> list[tuple[int, int]]:
    return [(m.price_to_int(p), m.size_to_int(s, "nearest")) for p, s in levels if s > 0]


async def check_invariants(redis_client, ns: str, account: int, markets: list[MarketInfo], audit_path: Path,
                           venue_positions: dict[int, float]) -> dict[str, int]:
    """The invariants of the module docstring that need the streams and the venue's audit log
    (``intents_lost``, ``intents_dead_lettered``, ``duplicate_orders``, ``book_mismatches``,
    ``position_mismatches``, ``signed_while_halted``). ``venue_positions``: market id -> the
    venue's signed position in base units."""
    bus = Bus(redis_client, ns)
    streams = bus.streams
    out: dict[str, int] = {}
    # intents the executor never acknowledged
    lost = 0
    intent = streams.intent(account)
    for g in await redis_client.xinfo_groups(intent):
        name = g["name"].decode() if isinstance(g["name"], bytes) else g["name"]
        if name != "executor":
            continue
        last = g["last-delivered-id"]
        last = last.decode() if isinstance(last, bytes) else last
        lost += int(g["pending"]) + len(await redis_client.xrange(intent, min=f"({last}", max="+"))
    out["intents_lost"] = lost
    dlq = await redis_client.xrange(streams.dlq)
    out["intents_dead_lettered"] = sum(1 for _id, f in dlq if f.get(b"stream", b"").decode() == intent)
    # the venue's audit: orders sent twice, published books
    cois: Counter[tuple[int, int]] = Counter()
    venue_books: dict[tuple[int, int], tuple[list, list]] = {}
    for line in audit_path.read_text().splitlines() if audit_path.exists() else []:
        rec = json.loads(line)
        if rec["k"] == "order" and rec["coi"]:
            cois[(rec["acct"], rec["coi"])] += 1
        elif rec["k"] == "book":
            venue_books[(rec["m"], rec["n"])] = ([tuple(x) for x in rec["b"]], [tuple(x) for x in rec["a"]])
    out["duplicate_orders"] = sum(n - 1 for (acct, _), n in cois.items() if acct == account and n > 1)
    mismatches = 0
    examples: list[str] = []
    for m in markets:
        book: dict[str, dict[float, float]] = {"b": {}, "a": {}}
        nonce: int | None = None
        for d in await bus.read_all(streams.book(m.symbol)):
            ev = d.event
            if isinstance(ev, BookSnapshot):
                book = {"b": dict(ev.bids), "a": dict(ev.asks)}
            elif isinstance(ev, BookDelta):
                if nonce is None or ev.begin_nonce != nonce:
                    mismatches += 1  # a delta that does not chain: the collector published a gap
                for side, levels in (("b", ev.bids), ("a", ev.asks)):
                    for px, sz in levels:
                        if sz > 0:
                            book[side][px] = sz
                        else:
                            book[side].pop(px, None)
            else:
                continue
            nonce = ev.nonce
            want = venue_books.get((m.market_id, ev.nonce), ([], []) if ev.nonce == 0 else None)
            have = (_book_key(sorted(book["b"].items(), reverse=True), m), _book_key(sorted(book["a"].items()), m))
            if want is None or (list(want[0]), list(want[1])) != have:
                mismatches += 1
                if len(examples) < 5:
                    examples.append(f"{m.symbol} nonce {ev.nonce}: venue {want} collector {have}")
    out["book_mismatches"] = mismatches
    if examples:
        log.warning("book mismatches, first ones: %s", "; ".join(examples))
    # positions: strategies' last snapshots vs the venue
    last: dict[tuple[str, str], float] = {}
    halted = False
    signed_halted = 0
    for d in await bus.read_all(streams.exec(account)):
        ev = d.event
        if isinstance(ev, PositionSnapshot):
            last[(ev.strategy, ev.market)] = ev.position
        elif isinstance(ev, RiskState):
            halted = ev.state == "halted"
        elif isinstance(ev, OrderAccepted) and halted and not ev.reduce_only:
            signed_halted += 1
    sums: dict[str, float] = defaultdict(float)
    for (_strategy, market), pos in last.items():
        sums[market] += pos
    pos_mismatch = 0
    for m in markets:
        half_lot = 0.5 / 10 ** m.size_decimals
        if abs(sums.get(m.symbol, 0.0) - venue_positions.get(m.market_id, 0.0)) >= half_lot:
            pos_mismatch += 1
    out["position_mismatches"] = pos_mismatch
    out["signed_while_halted"] = signed_halted
    return out


INVARIANTS = ("intents_lost", "duplicate_orders", "ledger_minus_venue_fills", "book_mismatches",
              "position_mismatches", "signed_while_halted", "strategy_fill_mismatches")
"""The counts that must all be zero."""


def main(opts: ChaosOptions) -> int:
    """Run the chaos suite, print the demo's checks and the summary JSON line; returns the exit
    code (0 only when every count of :data:`INVARIANTS` is zero and the plan ran)."""
    run = ChaosRun(opts)
    summary = run_or_report(run, "chaos run")
    if summary is None:
        return 1
    problems = [f"{k} = {summary[k]}" for k in INVARIANTS if summary.get(k)]
    planned_kills = sum(a.kind == "kill" for a in run.plan)
    if summary["kills"] < planned_kills:
        problems.append(f"only {summary['kills']} of {planned_kills} kills ran before the replay ended")
    summary["ok"] = not problems
    for p in problems:
        console.print(f"[red]invariant broken:[/] {p}")
    missing = [k for k in (opts.venue_faults or {}) if k in FAULT_KINDS and opts.venue_faults[k] > 0
               and not summary["venue_faults_by_kind"].get(k)]
    if missing:
        problems.append(f"venue faults never injected: {missing}")
    if opts.venue_restarts and summary["venue_faults_by_kind"].get("restart", 0) < opts.venue_restarts:
        problems.append("venue-sim did not restart as planned")
    keys = ["faults_injected", "kills", "redis_restarts", "venue_faults", "venue_faults_by_kind", *INVARIANTS, "intents_dead_lettered",
            "fills", "ledger_fills", "venue_fills", "orders", "workdir", "ok"]
    print(json.dumps({k: summary.get(k) for k in keys}), flush=True)
    return 0 if not problems else 1
