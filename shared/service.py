"""Engine/runner split (ARCHITECTURE.md section 3).

An *engine* is plain synchronous Python: ``on_event(event) -> list[Event]``, no I/O, no wall
clock, seeded randomness only. A *runner* (here :class:`EngineRunner`) reads the input streams,
calls the engine, publishes the outputs and only then acknowledges the inputs, in one Redis
transaction. Live, paper, replay and backtest run the same engines; only the runner differs.

Every consuming service uses the one loop here: :class:`ConsumerLoop` (fetch, dead letters,
dedup, commit) with a :class:`BatchHandler` (the service's part: what a batch produces, and a
hook after the commit). :class:`EngineRunner` is the handler of the strategies; the executor and
the ledger have their own handlers.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
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
    SERVICE_STARTS,
    start_http,
)
from shared.outage import BUS_DOWN_ERRORS, BusLink, bus_down, data_lost
from shared.screening import Screener

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
        self._ids: OrderedDict[Hashable, None] = OrderedDict()

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: Hashable) -> bool:
        """Record ``event_id``; return False if it was already there."""
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True

    def discard(self, event_id: Hashable) -> None:
        """Forget ``event_id`` (its processing was abandoned: it is to be handled when delivered again)."""
        self._ids.pop(event_id, None)


def consumer_name(service: str) -> str:
    """A consumer name unique to this process: ``<service>@<host>:<pid>``."""
    return f"{service}@{socket.gethostname()}:{os.getpid()}"


class BatchHandler(abc.ABC):
    """The service-specific part of consuming, driven by a :class:`ConsumerLoop`.

    Implement :meth:`on_batch` (abstract: a handler without it cannot be created); the other
    hooks are optional. Per fetched batch the loop calls,
    in order: :meth:`gather` (may add deliveries or reorder the batch), then screens each
    delivery (undecodable -> dead letter; :meth:`reject_reason` -> dead letter with that reason;
    :meth:`dedup_key` ``None`` -> acknowledged unhandled; a key seen before -> dropped as a
    duplicate), then :meth:`on_batch` with the remaining deliveries, then ``Consumer.commit``
    (outputs, dead letters and acknowledgements of the whole batch in one transaction), then
    :meth:`after_commit`.
    """

    def dedup_key(self, event: Event) -> Hashable | None:
        """Dedup key of ``event`` (default: its id); ``None`` = acknowledge it without handling.
        Must not depend on the handler's state (the loop forgets the keys of a batch whose
        :meth:`on_batch` failed because Redis was unreachable, to process it when redelivered)."""
        return event.id

    def reject_reason(self, event: Event, stream: str) -> str | None:
        """Reason to dead-letter ``event``, read from ``stream``, instead of handling it (default:
        never). Consumers return their :class:`shared.screening.Screener`'s reason here (wrong
        stream, wrong market, nonsense numbers; docs/internals.md "Input screening")."""
        return None

    async def gather(self, consumer: Consumer, batch: list[Delivery]) -> list[Delivery]:
        """The batch to process (default: ``batch`` as fetched). May read more with
        ``consumer.fetch_new()``; every delivery returned is committed."""
        return batch

    @abc.abstractmethod
    async def on_batch(self, deliveries: list[Delivery]) -> list[tuple[str, Event]] | None:
        """Process the screened deliveries (decoded, valid, new; possibly none). Returns the
        ``(stream, event)`` outputs to publish atomically with the acknowledgement, or ``None``
        to commit nothing (the whole batch stays pending, e.g. stopped before a DB write
        succeeded). Setting ``d.error`` on a delivery dead-letters it with that reason.
        It may raise a Redis-unreachable error (:func:`shared.outage.bus_down`) only before it
        changed any state: the loop then forgets the batch and handles it again when the bus is
        back."""

    async def after_commit(self, deliveries: list[Delivery], outputs: list[tuple[str, Event]]) -> None:
        """Runs after the commit, outside the loop's lock (default: nothing); e.g. send the
        orders the committed outputs announced."""
        return None

    async def on_bus_reset(self) -> None:
        """Redis came back without this consumer's groups (it restarted without persistence: every
        stream and group is gone); the loop has re-created the groups at the start of the streams
        and calls this once before it reads again (default: nothing). E.g. the executor publishes
        its position snapshots again, the strategies take their positions from them."""
        return None


class ConsumerLoop:
    """The one consume loop: fetch -> screen (dead letters, duplicates) -> handler -> commit
    (publish + dead-letter + ack in one transaction) -> after-commit hook. See
    :class:`BatchHandler` for the protocol.

    Delivery is at-least-once (:class:`shared.bus.Consumer`: own pending entries first after a
    restart, then entries of dead consumers claimed after ``claim_idle_ms``), processing once:
    keys seen before (:class:`SeenIds`) are dropped.

    Redis outages (:mod:`shared.outage`): a fetch that fails because Redis is unreachable is
    retried with backoff (``link``: ``/health`` says degraded meanwhile), then the consumer's own
    pending entries are read again first. A commit that fails that way is *in doubt* (the
    transaction may have run, its answer lost): the loop keeps the batch and its outputs, waits
    for Redis, asks :meth:`shared.bus.Consumer.commit_state` and commits again only when the
    transaction did not run -- never twice. When Redis came back without the consumer groups
    (``NOGROUP``: restarted without persistence), the groups are re-created at the start of the
    streams, the outputs of an in-doubt commit are published again and
    :meth:`BatchHandler.on_bus_reset` runs once.

    Args:
        service: metric label and ``service`` field of dead letters.
        consumer: the group reader.
        handler: the service's part.
        seen: the dedup set (default: a new :class:`SeenIds`); pass one to mark ids seen from
            outside (e.g. events already folded at start-up).
        lock: held from screening to the end of the commit (e.g. the executor's I/O lock, so
            venue reports are not processed in between), also while an in-doubt commit waits
            for Redis.
        link: the service's :class:`~shared.outage.BusLink` (default: a new one).
    """

    def __init__(self, service: str, consumer: Consumer, handler: BatchHandler, seen: SeenIds | None = None,
                 lock: asyncio.Lock | None = None, link: BusLink | None = None) -> None:
        self.service = service
        self.consumer = consumer
        self.handler = handler
        self.seen = seen if seen is not None else SeenIds()
        self.lock = lock
        self.link = link if link is not None else BusLink(service)
        self.dead_letters = 0
        self.duplicates = 0
        self.batches = 0
        self.commits_in_doubt = 0
        self._stop: asyncio.Event | None = None
        self._reset = False  # Redis lost the groups: start() again, then handler.on_bus_reset()

    def _dead(self, d: Delivery) -> None:
        self.dead_letters += 1
        DEAD_LETTERS.labels(self.service, d.stream).inc()
        log.warning("dead letter from %s %s: %s", d.stream, d.entry_id, d.error)

    def screen(self, batch: Sequence[Delivery]) -> list[Delivery]:
        """The deliveries of ``batch`` to hand to the handler, in order: undecodable and
        rejected ones get ``error`` set (``commit`` dead-letters them), ones whose
        :meth:`BatchHandler.dedup_key` is ``None`` or seen before are left out (and acknowledged)."""
        out: list[Delivery] = []
        for d in batch:
            if d.event is None:
                self._dead(d)
                continue
            EVENTS_IN.labels(self.service, d.stream).inc()
            reason = self.handler.reject_reason(d.event, d.stream)
            if reason is not None:
                d.error = reason
                self._dead(d)
                continue
            key = self.handler.dedup_key(d.event)
            if key is None:
                continue
            if not self.seen.add(key):
                self.duplicates += 1
                DUPLICATES.labels(self.service, d.stream).inc()
                continue
            out.append(d)
        return out

    async def step(self, batch: list[Delivery]) -> bool:
        """Process one fetched batch (see :class:`BatchHandler`). Returns False when the handler
        committed nothing, or the service stopped while an in-doubt commit waited for Redis (the
        batch stays pending either way).

        Raises:
            redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ResponseError
                (``NOGROUP``): Redis failed before the handler changed anything (in
                :meth:`BatchHandler.gather`, or :meth:`BatchHandler.on_batch` per its contract);
                the batch's keys are forgotten, it is handled when delivered again.
        """
        batch = await self.handler.gather(self.consumer, batch)
        async with self.lock if self.lock is not None else contextlib.nullcontext():
            deliveries = self.screen(batch)
            try:
                outputs = await self.handler.on_batch(deliveries)
            except Exception as exc:
                if bus_down(exc) or data_lost(exc):  # nothing changed yet: handle it again when redelivered
                    for d in deliveries:
                        if d.event is not None:
                            key = self.handler.dedup_key(d.event)
                            if key is not None:
                                self.seen.discard(key)
                raise
            if outputs is None:
                return False
            for d in deliveries:
                if d.error is not None:  # the handler refused it (e.g. an engine error): a dead letter
                    self._dead(d)
            if not await self._commit(batch, outputs):
                return False
        for stream, _ev in outputs:
            EVENTS_OUT.labels(self.service, stream).inc()
        self.batches += 1
        await self.handler.after_commit(deliveries, outputs)
        return True

    async def _commit(self, batch: list[Delivery], outputs: list[tuple[str, Event]]) -> bool:
        """``Consumer.commit``; when it fails because Redis went away, wait for Redis and commit
        again only if the transaction did not run (:meth:`Consumer.commit_state`). False when
        stopped before that was settled."""
        try:
            await self.consumer.commit(batch, outputs, self.service)
            return True
        except Exception as exc:
            if not (bus_down(exc) or data_lost(exc)):
                raise
            err: Exception = exc
        self.commits_in_doubt += 1
        log.warning("%s: commit of %d entries and %d outputs in doubt (%s); settled when Redis is back",
                    self.service, len(batch), len(outputs), err)
        while True:
            if await self.link.pause(err, "commit", self._stop):
                log.warning("%s: stopped with a commit in doubt: its %d entries stay pending (handled again "
                            "at the next start)", self.service, len(batch))
                return False
            try:
                state = await self.consumer.commit_state(batch)
                if state == "done":
                    log.warning("%s: the commit in doubt had run; not repeated", self.service)
                else:
                    if state == "lost":
                        self._reset = True
                        self.link.reset_seen("commit")
                        await self.consumer.start()
                    await self.consumer.commit(batch, outputs, self.service)
                    log.warning("%s: the commit in doubt had not run (%s); committed now", self.service,
                                "Redis lost its data" if state == "lost" else "entries still pending")
                self.link.recovered()
                return True
            except Exception as exc:
                if not (bus_down(exc) or data_lost(exc)):
                    raise
                err = exc

    async def run(self, stop: asyncio.Event) -> None:
        """Create the consumer groups, then fetch and :meth:`step` until ``stop`` is set;
        reports the consumer lag meanwhile (:func:`report_lag`). Redis outages are waited out
        (see the class docstring); the loop ends only when ``stop`` is set (or the handler
        raises another error)."""
        self._stop = stop
        try:
            await self.link.retry(self.consumer.start, "create consumer groups", stop)
        except BUS_DOWN_ERRORS:
            return  # stopped before Redis answered
        await note_start(self.consumer.bus, self.service)
        lag_task = asyncio.create_task(report_lag(self.consumer, self.service))
        try:
            while not stop.is_set():
                try:
                    if self._reset:
                        await self.consumer.start()
                        await self.handler.on_bus_reset()
                        self._reset = False
                    batch = await self.consumer.fetch()
                    if batch:
                        await self.step(batch)
                    self.link.recovered()
                except Exception as exc:
                    if data_lost(exc):
                        self._reset = True
                        self.link.reset_seen("fetch")
                    elif bus_down(exc):
                        await self.link.pause(exc, "fetch", stop)
                    else:
                        raise
                    self.consumer.reread_pending()
        finally:
            lag_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag_task


def feed_engine(service: str, deliveries: Sequence[Delivery], on_event: Callable[[Event], list[Event]],
                on_events: Callable[[list[Event]], list[Event]] | None = None,
                on_batch_error: Callable[[], object] | None = None) -> list[Event]:
    """Feed the events of ``deliveries`` to an engine and return what it produced, in order.

    With ``on_events`` the events go in jointly (one call; ``PROCESSING_SECONDS`` gets each
    event's share of it); if that raises, ``on_batch_error()`` runs (e.g. to drop half-made
    order commands) and the events are fed one at a time through ``on_event``. An event whose
    ``on_event`` raises gets ``d.error = "engine error: <Type>: <message>"`` (``Consumer.commit``
    dead-letters it with that reason) and produces nothing; an engine bug never kills the
    service nor loses the input.
    """
    if on_events is not None:
        events = [d.event for d in deliveries if d.event is not None]
        t0 = time.perf_counter()
        try:
            outs = on_events(events)
        except Exception:
            log.exception("engine failed on a batch of %d events; retrying one by one", len(events))
            if on_batch_error is not None:
                on_batch_error()
        else:
            for _ in events:
                PROCESSING_SECONDS.labels(service).observe((time.perf_counter() - t0) / len(events))
            return outs
    outs = []
    for d in deliveries:
        assert d.event is not None
        t0 = time.perf_counter()
        try:
            produced = on_event(d.event)
        except Exception as exc:
            log.exception("engine failed on %s", d.event.id)
            d.error = f"engine error: {type(exc).__name__}: {exc}"
            continue
        PROCESSING_SECONDS.labels(service).observe(time.perf_counter() - t0)
        outs.extend(produced)
    return outs


class EngineRunner(BatchHandler):
    """Runs one engine against the bus through a :class:`ConsumerLoop`: each screened event
    goes to ``engine.on_event`` (:func:`feed_engine`; a failing event is dead-lettered), its
    outputs are routed and published with the acknowledgement.

    Args:
        service: service instance name (metric label, consumer group, ``source`` of outputs).
        engine: the engine to drive.
        bus: the bus (namespace and trimming).
        inputs: input stream names.
        route: maps each output event to its output stream name.
        group: consumer group name (default: ``service``).
        http_port: port of ``/health`` and ``/metrics`` (0 = none).
        claim_idle_ms: see :class:`shared.bus.Consumer`.
        consumer: consumer name inside the group (default :func:`consumer_name`).
        screener: the semantic checks of the inputs (:class:`shared.screening.Screener`; a
            refused input is dead-lettered with its reason); default: one with the default
            thresholds for ``bus``'s namespace.
        on_reset: called (no arguments) when Redis came back without the consumer groups
            (:meth:`BatchHandler.on_bus_reset`), e.g. to take the positions from the executor's
            next snapshots.
    """

    def __init__(self, service: str, engine: Engine, bus: Bus, inputs: Sequence[str],
                 route: Callable[[Event], str], group: str | None = None, http_port: int = 0,
                 claim_idle_ms: int = 30_000, consumer: str | None = None,
                 screener: Screener | None = None,
                 on_reset: Callable[[], object] | None = None) -> None:
        self.service = service
        self.engine = engine
        self.bus = bus
        self.inputs = list(inputs)
        self.route = route
        self.consumer = Consumer(bus, inputs, group or service, consumer or consumer_name(service),
                                 claim_idle_ms=claim_idle_ms)
        self.http_port = http_port
        self.screener = screener if screener is not None else Screener(bus.streams.ns)
        self.seen = SeenIds()
        self.loop = ConsumerLoop(service, self.consumer, self, self.seen)
        self.link = self.loop.link
        self.on_reset = on_reset
        self.processed = 0
        self.started_at = time.time()
        self.last_event_at = 0.0
        self._stop = asyncio.Event()

    def health(self) -> dict[str, Any]:
        """Body of ``GET /health`` (``degraded`` while Redis is unreachable, see
        :meth:`shared.outage.BusLink.health`)."""
        return self.link.health({"status": "ok", "service": self.service, "processed": self.processed,
                                 "inputs": self.inputs, "uptime_s": round(time.time() - self.started_at, 1)})

    async def on_bus_reset(self) -> None:
        """Calls ``on_reset`` (see the constructor)."""
        if self.on_reset is not None:
            self.on_reset()

    def stop(self) -> None:
        """Ask :meth:`run` to finish after the current batch."""
        self._stop.set()

    def reject_reason(self, event: Event, stream: str) -> str | None:
        """The screener's reason to dead-letter ``event`` (:meth:`shared.screening.Screener.reason`)."""
        return self.screener.reason(event, stream)

    @property
    def stop_event(self) -> asyncio.Event:
        """Set once :meth:`stop` was called (waits and retries end early)."""
        return self._stop

    async def on_batch(self, deliveries: list[Delivery]) -> list[tuple[str, Event]]:
        """Feed each event to the engine; returns the routed outputs."""
        produced = feed_engine(self.service, deliveries, self.engine.on_event)
        self.processed += sum(1 for d in deliveries if d.error is None)
        return [(self.route(ev), ev) for ev in produced]

    async def after_commit(self, deliveries: list[Delivery], outputs: list[tuple[str, Event]]) -> None:
        """Note the time of the last committed batch."""
        self.last_event_at = time.time()

    async def run(self) -> None:
        """Consume until :meth:`stop` is called (or SIGTERM/SIGINT when run by :func:`run_service`)."""
        http = await start_http(self.http_port, self.health)
        try:
            await self.loop.run(self._stop)
        finally:
            await http.cleanup()


def starts_key(namespace: str) -> str:
    """The Redis hash counting service starts in a namespace: ``{ns}:starts``, field = service
    name (the ``service`` label of the metrics), value = how many times a process of that service
    started consuming (:func:`note_start`). ``lighter-stack status`` shows ``value - 1`` as the
    service's restarts."""
    return f"{namespace}:starts"


async def note_start(bus: Bus, service: str) -> None:
    """Count one start of ``service`` in :func:`starts_key` and set the gauge
    ``lighter_stack_service_starts`` (the count after this start). Called by
    :meth:`ConsumerLoop.run` once its consumer groups exist. Errors are logged and ignored: the
    count is for operators and never stops a service."""
    try:
        n = await bus.redis.hincrby(starts_key(bus.streams.ns), service, 1)
        SERVICE_STARTS.labels(service).set(int(n))
    except Exception:  # the count must never stop the service
        log.warning("could not count this start of %s", service, exc_info=True)


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
