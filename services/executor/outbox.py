"""The executor's outbox: exec events that could not be published yet because Redis was
unreachable, kept in order and published as soon as it answers -- never lost, never twice.

The runner publishes every venue-report and send-result event through :meth:`Outbox.publish`
(under its I/O lock): the events go after those already waiting, and the whole outbox is
written in one transaction. When that fails because Redis is unreachable
(:func:`shared.outage.bus_down`) the events stay; :meth:`Outbox.run` retries with the
:class:`~shared.outage.BusLink`'s backoff. A publish that failed without an answer may have been
written: before the next attempt the stream's tail is read and the events already on it are
dropped (the executor is the only writer of its exec stream, and a transaction is all or
nothing). While the outbox is not empty the executor sends no new orders (see the runner).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from shared.bus import Bus
from shared.events import Event
from shared.metrics import EVENTS_OUT
from shared.outage import BUS_DOWN_ERRORS, BusLink

log = logging.getLogger("executor")


class Outbox:
    """Ordered, at-most-once-published queue of events for one stream.

    Args:
        bus: the bus.
        stream: the stream written (the exec stream).
        link: the service's :class:`~shared.outage.BusLink` (failures and recoveries noted there).
        lock: the runner's I/O lock; :meth:`run` and :meth:`drain` take it, :meth:`publish` and
            :meth:`flush` expect the caller to hold it (or to run before the tasks start).
        service: ``service`` label of ``lighter_stack_events_out_total``.
    """

    def __init__(self, bus: Bus, stream: str, link: BusLink, lock: asyncio.Lock, service: str) -> None:
        self.bus = bus
        self.stream = stream
        self.link = link
        self.lock = lock
        self.service = service
        self.events: list[Event] = []
        self._doubt = False  # the last write failed without an answer: it may be on the stream
        self._held = False  # a write failed since the last success
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self.events)

    async def publish(self, events: Sequence[Event]) -> bool:
        """Queue ``events`` after those waiting and :meth:`flush`; True when all are published.
        Never raises for Redis being unreachable."""
        self.events.extend(events)
        return await self.flush()

    async def flush(self) -> bool:
        """Write what waits in one transaction (after dropping what a lost-answer write already
        put on the stream); True when nothing waits afterwards."""
        if not self.events:
            return True
        try:
            if self._doubt:
                out = await self.bus.tail_ids(self.stream, len(self.events) + 16)
                self.events = [ev for ev in self.events if ev.id not in out]
                self._doubt = False
            if self.events:
                self._doubt = True
                await self.bus.publish(self.stream, self.events)
                self._doubt = False
                EVENTS_OUT.labels(self.service, self.stream).inc(len(self.events))
        except BUS_DOWN_ERRORS as exc:
            self.link.failed(exc, f"publish {len(self.events)} exec event(s)")
            self._held = True
            self._wake.set()
            return False
        if self._held:
            log.warning("%d exec event(s) held while Redis was unreachable are published", len(self.events))
            self._held = False
        self.events = []
        self.link.recovered()
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop``: while events wait, :meth:`flush` them (under the lock), backing off."""
        attempt = 0
        while not stop.is_set():
            if not self.events:
                attempt = 0
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.link.backoff.compute(attempt))
            if stop.is_set():
                return
            attempt += 1
            async with self.lock:
                await self.flush()

    async def drain(self, deadline_s: float = 10.0) -> None:
        """At shutdown: :meth:`flush` for up to ``deadline_s`` seconds; what is left then is
        logged at ERROR (lost)."""
        end = time.monotonic() + deadline_s
        attempt = 0
        while self.events and time.monotonic() < end:
            async with self.lock:
                if await self.flush():
                    return
            await asyncio.sleep(self.link.backoff.compute(attempt))
            attempt += 1
        if self.events:
            log.error("shutdown: %d exec event(s) not published, Redis unreachable: %s", len(self.events),
                      [type(e).__name__ for e in self.events[:20]])
