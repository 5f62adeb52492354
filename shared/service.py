"""Engine/runner split (ARCHITECTURE.md section 3).

An *engine* is plain synchronous Python: ``on_event(event) -> list[Event]``, no I/O, no wall
clock, seeded randomness only. A *runner* (here :class:`EngineRunner`) reads the input streams,
calls the engine, publishes the outputs and only then acknowledges the inputs, in one Redis
transaction. Live, paper, replay and backtest run the same engines; only the runner differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from shared.bus import Bus, Consumer, Delivery
from shared.events import Event
from shared.metrics import (
    CONSUMER_LAG,
    DEAD_LETTERS,
    DUPLICATES,
    EVENTS_IN,
    EVENTS_OUT,
    PROCESSING_SECONDS,
    start_http,
)

log = logging.getLogger(__name__)


class Engine(Protocol):
    """What a runner drives: a deterministic fold over input events."""

    def on_event(self, event: Event) -> list[Event]:
        """Consume one event, return the events it causes (possibly none)."""
        ...


class SeenIds:
    """A bounded set of recently processed ids (oldest evicted first), used to drop redelivered
    events (delivery is at-least-once, processing must be once). Any hashable works as an id."""

    def __init__(self, capacity: int = 200_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> bool:
        """Record ``event_id``; return False if it was already there."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


def consumer_name(service: str) -> str:
    """A consumer name unique to this process: ``<service>@<host>:<pid>``."""
    return f"{service}@{socket.gethostname()}:{os.getpid()}"


class EngineRunner:
    """Runs one engine against the bus.

    Args:
        service: service instance name (metric label, consumer group, ``source`` of outputs).
        engine: the engine to drive.
        bus: the bus (namespace and trimming).
        inputs: input stream names.
        route: maps each output event to its output stream name.
        group: consumer group name (default: ``service``).
        http_port: port of ``/health`` and ``/metrics`` (0 = none).
        claim_idle_ms: see :class:`shared.bus.Consumer`.
        on_idle: optional callback run when a read returns nothing (e.g. to flush state).
    """

    def __init__(self, service: str, engine: Engine, bus: Bus, inputs: Sequence[str],
                 route: Callable[[Event], str], group: str | None = None, http_port: int = 0,
                 claim_idle_ms: int = 30_000, consumer: str | None = None) -> None:
        self.service = service
        self.engine = engine
        self.bus = bus
        self.inputs = list(inputs)
        self.route = route
        self.consumer = Consumer(bus, inputs, group or service, consumer or consumer_name(service),
                                 claim_idle_ms=claim_idle_ms)
        self.http_port = http_port
        self.seen = SeenIds()
        self.processed = 0
        self.started_at = time.time()
        self.last_event_at = 0.0
        self._stop = asyncio.Event()

    def health(self) -> dict[str, Any]:
        """Body of ``GET /health``."""
        return {"status": "ok", "service": self.service, "processed": self.processed,
                "inputs": self.inputs, "uptime_s": round(time.time() - self.started_at, 1)}

    def stop(self) -> None:
        """Ask :meth:`run` to finish after the current batch."""
        self._stop.set()

    def process(self, batch: Sequence[Delivery]) -> list[tuple[str, Event]]:
        """Feed a batch to the engine; returns routed outputs. Undecodable entries and events
        already seen are skipped (the former are dead-lettered by ``commit``)."""
        outputs: list[tuple[str, Event]] = []
        for d in batch:
            if d.event is None:
                DEAD_LETTERS.labels(self.service, d.stream).inc()
                log.warning("dead letter from %s %s: %s", d.stream, d.entry_id, d.error)
                continue
            EVENTS_IN.labels(self.service, d.stream).inc()
            if not self.seen.add(d.event.id):
                DUPLICATES.labels(self.service, d.stream).inc()
                continue
            t0 = time.perf_counter()
            try:
                produced = self.engine.on_event(d.event)
            except Exception as exc:  # an engine bug must not kill the service or lose the input
                log.exception("engine failed on %s", d.event.id)
                d.error = f"engine error: {type(exc).__name__}: {exc}"
                DEAD_LETTERS.labels(self.service, d.stream).inc()
                continue
            PROCESSING_SECONDS.labels(self.service).observe(time.perf_counter() - t0)
            for ev in produced:
                stream = self.route(ev)
                outputs.append((stream, ev))
                EVENTS_OUT.labels(self.service, stream).inc()
            self.processed += 1
        return outputs

    async def run(self) -> None:
        """Consume until :meth:`stop` is called (or SIGTERM/SIGINT when run by :func:`run_service`)."""
        await self.consumer.start()
        http = await start_http(self.http_port, self.health)
        lag_task = asyncio.create_task(report_lag(self.consumer, self.service))
        try:
            while not self._stop.is_set():
                batch = await self.consumer.fetch()
                if not batch:
                    continue
                outputs = self.process(batch)
                await self.consumer.commit(batch, outputs, self.service)
                self.last_event_at = time.time()
        finally:
            lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag_task
            await http.cleanup()


async def report_lag(consumer: Consumer, service: str, interval_s: float = 5.0) -> None:
    """Forever: every ``interval_s`` seconds set ``lighter_stack_consumer_lag_entries`` for each
    input stream of ``consumer``. Errors are logged at debug level and never end the loop, so
    metrics cannot stop a service. Run it as a task and cancel it on shutdown."""
    while True:
        try:
            for stream, lag in (await consumer.lag()).items():
                CONSUMER_LAG.labels(service, stream).set(lag)
        except Exception:  # metrics must never stop the service
            log.debug("lag probe failed", exc_info=True)
        await asyncio.sleep(interval_s)


def install_stop_handlers(stop: Callable[[], None]) -> None:
    """Call ``stop`` on SIGTERM and SIGINT (graceful shutdown)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop)


def setup_logging(level: str | None = None) -> None:
    """Plain one-line logs on stderr; level from ``LOG_LEVEL`` (default INFO)."""
    logging.basicConfig(level=(level or os.environ.get("LOG_LEVEL", "INFO")).upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
