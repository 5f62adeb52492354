"""Replays a recording into the matching engine, on the venue's clock.

Two clocks (docs/venue-sim.md "Time"):

- **Wall clock** (the default, ``gate`` None): the venue's clock IS the wall clock (Unix ns,
  anchored once to ``time.time`` and then advanced by the monotonic clock, so it never goes
  back). The recording is only a source of market events: the event recorded at ``t`` is
  released at ``w0 + (t - t0) / speed`` (``w0``/``t0``: wall and recorded time of the previous
  event; a recorded gap longer than ``max_gap_s`` is crossed in ``max_gap_s / speed`` wall
  seconds) and applied **stamped with the wall time at which it is applied**. Every timestamp the
  venue emits, the speed bump (a tx's execution time = its wall arrival + 300/200 ms), the rate
  limit windows and ``ExpiredAt`` therefore run in wall time, as on Lighter; at ``speed`` N the
  *market* moves N times faster than real while Lighter's limits stay real. Pending txs execute
  at their wall execution time even when no recorded event comes (the loop wakes at the
  engine's next pending time), before the replay starts and after it ended too.
- **Lockstep** (``gate`` given, see :mod:`services.venue_sim.lockstep`): no wall clock at all.
  Each recorded event is applied only when ``await gate()`` returns (the stack is quiet); the
  engine first executes the transactions due at or before the event's time, then applies the
  event. The resulting updates are sent in two steps, as the in-process backtest
  (:mod:`lighter_stack.backtest.engine`) feeds them: our account's updates first (fills, then
  positions, then orders), then, once the stack is quiet again, the public market data (book,
  trades). The clock is the recording's: it stays at the event's time until the next event, so
  a transaction arriving meanwhile gets that time as its arrival (the speed bump then delays its
  execution in recorded time). After the last event the pending transactions execute one by one
  at their own times, each once the stack is quiet; then the state becomes ``finished``.
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

import msgspec

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
    """Drives ``engine`` with ``events`` (sorted by ``ts_event``): on the wall clock, or in lockstep.

    Args:
        engine: the venue model.
        events: the recording's events.
        sink: called (synchronously, on the loop) with every list of engine updates.
        speed: recorded seconds replayed per wall second; <= 0 = as fast as possible.
        max_gap_s: longer recorded gaps are crossed in ``max_gap_s / speed`` wall seconds.
        total_events: event count for ``/sim/status`` (None = unknown).
        wall: monotonic wall clock in seconds (tests may inject one).
        epoch: the Unix wall clock in seconds, read once to anchor the venue clock (tests may
            inject one).
        gate: lockstep mode when given: ``await gate()`` returns once the stack is quiet
            (``speed``, ``max_gap_s`` and the wall clock are then unused).
    """

    def __init__(self, engine: MatchingEngine, events: Iterator[AnyEvent], sink: Callable[[list[Update]], None],
                 speed: float = 60.0, max_gap_s: float = 5.0, total_events: int | None = None,
                 wall: Callable[[], float] = time.monotonic,
                 gate: Callable[[], Awaitable[object]] | None = None,
                 epoch: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.gate = gate
        self.sink = sink
        self.speed = speed
        self.max_gap_ns = int(max_gap_s * 1e9)
        self.total_events = total_events
        self.replayed = 0
        self.state: State = "waiting"
        self._wall = wall
        self._epoch_offset_ns = int(epoch() * 1e9) - int(wall() * 1e9)
        self._events = events
        self._next: AnyEvent | None = next(events, None)
        first = self._next.ts_event if self._next is not None else 0
        self.first_ts_ns = first
        self.recorded_ns = first  # recording time of the last applied event (or of the first)
        engine.now_ns = max(engine.now_ns, first if gate is not None else self.wall_ns())
        self._t0 = first  # recorded time of the last applied event (or of the start)
        self._w0 = 0  # wall ns at which the event of _t0 was due
        self._started = asyncio.Event()
        self._wake = asyncio.Event()
        self._stop = False

    # ----------------------------------------------------------------- clock

    @property
    def clock(self) -> str:
        """``wall`` or ``recorded`` (lockstep): the time the venue runs and stamps in."""
        return "recorded" if self.gate is not None else "wall"

    def wall_ns(self) -> int:
        """The wall clock in Unix ns (monotonic: anchored once to the epoch clock)."""
        return int(self._wall() * 1e9) + self._epoch_offset_ns

    def sim_now(self) -> int:
        """The venue's current time in ns (see the module docstring): the wall clock, or in
        lockstep the current recorded event's time (the first event's before the start)."""
        if self.gate is None:
            return max(self.wall_ns(), self.engine.now_ns)
        if self.state == "waiting":
            return max(self._t0, self.engine.now_ns)
        return self.engine.now_ns

    def _interval_ns(self, t0: int, t1: int) -> int:
        """Wall ns between the releases of two recorded events at ``t0`` and ``t1``."""
        if self.speed <= 0:
            return 0
        gap = t1 - t0
        return int(min(gap, self.max_gap_ns) / self.speed)

    def resume(self, replayed: int, recorded_ns: int) -> None:
        """Continue after the first ``replayed`` events (a restart from the state file,
        :mod:`services.venue_sim.state`): read the recording past them without applying them
        (the restored engine has them) and take ``recorded_ns`` as the last applied event's
        recorded time."""
        while self.replayed < replayed and self._next is not None:
            self._next = next(self._events, None)
            self.replayed += 1
        if self.replayed:
            self.recorded_ns = recorded_ns
            self._t0 = max(self._t0, recorded_ns)

    # ----------------------------------------------------------------- control

    def start(self) -> None:
        """Start replaying (idempotent)."""
        self._started.set()
        self._wake.set()

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
        if self.gate is None:
            await self._run_wall()
            return
        await self._started.wait()
        if self._stop:
            return
        self.state = "running"
        log.info("replay started in lockstep (%s events)", self.total_events)
        await self._run_lockstep(self.gate)
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
            self.recorded_ns = ev.ts_event
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

    def _release_ns(self, now: int) -> int | None:
        """Wall ns at which the next recorded event is due (None: not running or no event
        left). Far behind schedule (a stalled loop), the schedule is re-anchored at ``now``
        instead of bursting."""
        if self.state != "running" or self._next is None:
            return None
        t1 = max(self._next.ts_event, self._t0)
        due = self._w0 + self._interval_ns(self._t0, t1)
        if now - due > _BEHIND_REANCHOR_S * 1e9:
            self._w0 = now - self._interval_ns(self._t0, t1)
            due = now
        return due

    def _apply_next(self, now: int) -> None:
        """Apply the next recorded event stamped with the wall time ``now`` (txs due by then
        execute first)."""
        ev = self._next
        assert ev is not None
        t1 = max(ev.ts_event, self._t0)
        self._w0 += self._interval_ns(self._t0, t1)  # the next interval starts on the ideal schedule
        self._t0 = t1
        self.recorded_ns = ev.ts_event
        stamped = msgspec.structs.replace(ev, ts_event=max(now, self.engine.now_ns))
        self.replayed += 1
        self._next = next(self._events, None)
        self.sink(self.engine.on_market_data(stamped))
        if self._next is None:
            self.state = "finished"
            log.info("replay finished after %d events; venue keeps serving", self.replayed)

    async def _run_wall(self) -> None:
        """The wall-clock loop: pending txs at their wall execution times (before, during and
        after the replay), recorded events at their paced release times."""
        since_yield = 0
        while not self._stop:
            now = self.wall_ns()
            due = self.engine.next_pending_ns()
            if due is not None and due <= now:
                self.sink(self.engine.advance(due))
                continue
            if self.state == "waiting" and self._started.is_set():
                self.state = "running" if self._next is not None else "finished"
                self._w0 = now
                log.info("replay started on the wall clock (speed %s, %s events)", self.speed, self.total_events)
                continue
            release = self._release_ns(now)
            if release is not None and release <= now:
                self._apply_next(now)
                since_yield += 1
                if since_yield >= 500:
                    since_yield = 0
                    await asyncio.sleep(0)
                continue
            targets = [t for t in (due, release) if t is not None]
            await self._sleep((min(targets) - now) / 1e9 if targets else 3600)
            since_yield = 0
