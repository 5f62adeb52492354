"""Paces a recording in wall time and drives the matching engine with it.

The sim clock is the recording's time. Between two recorded events at ``t0`` and ``t1`` (ns) it
runs at ``speed`` sim seconds per wall second, capped at ``t1``; a gap longer than ``max_gap_s``
sim seconds is crossed in ``max_gap_s / speed`` wall seconds (the clock runs faster; sim timestamps
stay the recording's). A transaction arriving at wall time ``w`` gets the sim time
:meth:`Replay.sim_now`; the engine executes it at that time plus its speed bump, interleaved with
the recorded events in time order. Before the start the clock stands at the first event; after
the last event the state is ``finished``: the clock follows the executed transactions and pending
ones execute at once, at their own sim times.

Lockstep mode (``gate`` given, see :mod:`services.venue_sim.lockstep`): no wall clock at all.
Each recorded event is applied only when ``await gate()`` returns (the stack is quiet); the
engine first executes the transactions due at or before the event's time, then applies the
event. The resulting updates are sent in two steps, as the in-process backtest
(:mod:`lighter_stack.backtest.engine`) feeds them: our account's updates first (fills, then positions,
then orders), then, once the stack is quiet again, the public market data (book, trades). The
sim clock stays at the event's time until the next event, so a transaction arriving meanwhile
gets that time as its arrival (the speed bump then delays its execution in sim time). After the
last event the pending transactions execute one by one at their own times, each once the stack
is quiet; then the state becomes ``finished``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Literal

from shared.events import AnyEvent
from shared.venue.matching import FillUpdate, MatchingEngine, OrderUpdate, PositionUpdate, Update

log = logging.getLogger(__name__)

State = Literal["waiting", "running", "finished"]
_BEHIND_REANCHOR_S = 1.0  # if the loop falls this far behind schedule, re-anchor instead of bursting


def split_updates(updates: list[Update]) -> tuple[list[Update], list[Update]]:
    """``(account, public)``: our accounts' updates ordered fills, positions, orders (the order
    the backtest feeds the executor) and the public ones (book, trades, stats) in their order."""
    fills: list[Update] = []
    positions: list[Update] = []
    orders: list[Update] = []
    public: list[Update] = []
    for u in updates:
        t = type(u)
        if t is FillUpdate:
            fills.append(u)
        elif t is PositionUpdate:
            positions.append(u)
        elif t is OrderUpdate:
            orders.append(u)
        else:
            public.append(u)
    return fills + positions + orders, public


def count_events(path: str | Path) -> int:
    """Number of event lines of a recording (all lines but the header), without decoding them."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    n = 0
    with opener(p, "rb") as f:
        for line in f:
            if line.strip():
                n += 1
    return max(0, n - 1)


class Replay:
    """Drives ``engine`` with ``events`` (sorted by ``ts_event``) in paced wall time.

    Args:
        engine: the venue model.
        events: the recording's events.
        sink: called (synchronously, on the loop) with every list of engine updates.
        speed: sim seconds per wall second; <= 0 = as fast as possible.
        max_gap_s: longer recorded gaps are compressed to ``max_gap_s / speed`` wall seconds.
        total_events: event count for ``/sim/status`` (None = unknown).
        wall: monotonic wall clock in seconds (tests may inject one).
        gate: lockstep mode when given: ``await gate()`` returns once the stack is quiet
            (``speed`` and ``max_gap_s`` are then unused).
    """

    def __init__(self, engine: MatchingEngine, events: Iterator[AnyEvent], sink: Callable[[list[Update]], None],
                 speed: float = 60.0, max_gap_s: float = 5.0, total_events: int | None = None,
                 wall: Callable[[], float] = time.monotonic,
                 gate: Callable[[], Awaitable[object]] | None = None) -> None:
        self.engine = engine
        self.gate = gate
        self.sink = sink
        self.speed = speed
        self.max_gap_ns = int(max_gap_s * 1e9)
        self.total_events = total_events
        self.replayed = 0
        self.state: State = "waiting"
        self._wall = wall
        self._events = events
        self._next: AnyEvent | None = next(events, None)
        first = self._next.ts_event if self._next is not None else 0
        self.first_ts_ns = first
        engine.now_ns = max(engine.now_ns, first)
        self._t0 = first  # sim time of the last applied event (or of the start)
        self._w0 = wall()  # wall time at which the clock stood at _t0
        self._rate = 0.0  # sim ns per wall second in the current interval
        self._started = asyncio.Event()
        self._wake = asyncio.Event()
        self._stop = False

    # ----------------------------------------------------------------- clock

    def sim_now(self) -> int:
        """Current sim time in ns (see the module docstring)."""
        if self.state == "finished" or (self.gate is not None and self.state == "running"):
            return self.engine.now_ns
        if self.state == "waiting" or self._next is None or self._rate <= 0:
            return max(self._t0, self.engine.now_ns)
        t = self._t0 + int((self._wall() - self._w0) * self._rate)
        return max(min(t, self._next.ts_event), self.engine.now_ns)

    def _interval_rate(self, t0: int, t1: int) -> float:
        if self.speed <= 0:
            return 0.0
        gap = t1 - t0
        if gap > self.max_gap_ns:
            return gap / (self.max_gap_ns / 1e9 / self.speed)
        return self.speed * 1e9

    # ----------------------------------------------------------------- control

    def start(self) -> None:
        """Start replaying (idempotent)."""
        self._started.set()

    @property
    def started(self) -> bool:
        """True once :meth:`start` was called."""
        return self._started.is_set()

    def notify(self) -> None:
        """A transaction was submitted: re-plan the next wake-up."""
        self._wake.set()

    def stop(self) -> None:
        """Make :meth:`run` return."""
        self._stop = True
        self._started.set()
        self._wake.set()

    # ----------------------------------------------------------------- loop

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def run(self) -> None:
        """Replay until the recording ends, then keep executing transactions until :meth:`stop`."""
        await self._started.wait()
        if self._stop:
            return
        self.state = "running"
        if self.gate is not None:
            log.info("replay started in lockstep (%s events)", self.total_events)
            await self._run_lockstep(self.gate)
        else:
            log.info("replay started (speed %s, %s events)", self.speed, self.total_events)
            await self._run_paced()
        if self._stop:
            return
        self.state = "finished"
        log.info("replay finished after %d events; venue keeps serving", self.replayed)
        while not self._stop:
            if self.engine.next_pending_ns() is not None:
                self.sink(self.engine.advance(self.engine.next_pending_ns()))  # type: ignore[arg-type]
                continue
            await self._sleep(3600)

    async def _run_lockstep(self, gate: Callable[[], Awaitable[object]]) -> None:
        while self._next is not None and not self._stop:
            await gate()
            if self._stop:
                return
            ev = self._next
            account, public = split_updates(self.engine.on_market_data(ev))  # due txs first, then ev
            self.replayed += 1
            self._next = next(self._events, None)
            if account:
                self.sink(account)
                await gate()
            self.sink(public)
        while not self._stop:  # after the last event: pending txs at their own times
            await gate()
            due = self.engine.next_pending_ns()
            if due is None or self._stop:
                return
            account, public = split_updates(self.engine.advance(due))
            self.sink(account + public)

    async def _run_paced(self) -> None:
        self._t0, self._w0 = max(self._t0, self.engine.now_ns), self._wall()
        since_yield = 0
        while self._next is not None and not self._stop:
            ev = self._next
            t1 = max(ev.ts_event, self._t0)
            self._rate = self._interval_rate(self._t0, t1)
            if self._rate > 0 and self._wall() - self._w0 > (t1 - self._t0) / self._rate + _BEHIND_REANCHOR_S:
                self._w0 = self._wall() - (t1 - self._t0) / self._rate  # far behind: do not burst
            while not self._stop:
                now = self.sim_now()
                due = self.engine.next_pending_ns()
                if due is not None and due < t1 and due <= now:
                    self.sink(self.engine.advance(due))
                    continue
                if now >= t1 or self._rate <= 0:
                    break
                target = t1 if due is None else min(t1, due)
                await self._sleep((target - now) / self._rate)
                since_yield = 0
            updates = self.engine.on_market_data(ev)  # executes txs due at or before t1 first
            # next interval starts when this event was due on the ideal schedule (no drift)
            self._w0 = self._w0 + (t1 - self._t0) / self._rate if self._rate > 0 else self._wall()
            self._t0 = t1
            self.replayed += 1
            self._next = next(self._events, None)
            self.sink(updates)
            since_yield += 1
            if since_yield >= 500:
                since_yield = 0
                await asyncio.sleep(0)
