"""The service scaffolding shared by the strategy runners (strategy-trend, -renko, -grid, maker, hedger).

A strategy service runs one pure engine (``on_event(ev) -> [ev]``, with ``name``, ``markets``,
``cfg.strategy``, ``cfg.http_port``) on the bus:

- inputs ``{ns}:md:book:{SYM}`` of each traded market and ``{ns}:exec:{account}``; every output
  goes to ``{ns}:intent:{account}``; consumer group = the strategy name (:func:`build_runner`);
- at start, the strategy's ``Fill`` events of the whole exec stream are folded into the engine
  first, so its position survives a restart (:func:`restore_fills`; engines dedupe fills by
  ``fill_id``);
- when that fill history is incomplete or gone, the position comes from the executor's
  ``PositionSnapshot`` (:class:`SnapshotRecovery`): the last one on the stream when it disagrees
  with the fold (trimmed or lost fills), or, for a market without any, the next one to arrive;
  also after Redis came back without its data (``EngineRunner`` ``on_reset``: fills may have been
  lost with it, the executor publishes its snapshots again). Each such adoption is logged at
  WARNING and counted in ``lighter_stack_strategy_positions_from_snapshot_total``;
- Redis outages while restoring, consuming (:class:`~shared.service.ConsumerLoop`) and publishing
  the shutdown intents are waited out (:mod:`shared.outage`);
- Prometheus metrics are updated after each event by :class:`MeteredEngine` (the engine itself
  stays pure): gauges from the engine's ``state(market)`` (:func:`set_gauges`), counters from
  its running totals (:class:`CounterTotals`);
- :func:`run_strategy` connects to Redis, installs the stop handlers and runs a body: restore,
  consume, and at shutdown publish the strategy's shutdown intents (:func:`restore_run_shutdown`,
  :func:`restore_then_run`; :func:`cancel_all_intents` for a quoting strategy);
  :func:`strategy_main` is the service's ``main``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from prometheus_client import Counter, Gauge

from shared.bus import Bus, Streams
from shared.config import ConfigError, StackConfig, section_key
from shared.events import CancelIntent, Event, Fill, PositionSnapshot, TargetPosition, derive_id
from shared.leases import EXIT_LEASE_LOST, Lease, lease_key
from shared.metrics import PREFIX, start_http
from shared.outage import BUS_DOWN_ERRORS
from shared.redis_util import async_client, resolve_redis_url
from shared.screening import Screener
from shared.service import EngineRunner, install_stop_handlers, setup_logging
from shared.strategy_base import POS_EPS, StrategyEngineBase, signal_labels

log = logging.getLogger(__name__)


class StrategyEngine(Protocol):
    name: str
    markets: list[str]
    cfg: Any

    def on_event(self, event: Event) -> list[Event]: ...

    def position(self, market: str) -> float: ...


class MeteredEngine:
    """Wraps an engine: same outputs; after each event of a traded market calls
    ``publish(market)``, and counts every ``TargetPosition`` in ``signals`` (labels market,
    side, reason of :func:`~shared.strategy_base.signal_labels`) when given."""

    def __init__(self, engine: Any, publish: Callable[[str], None], signals: Counter | None = None) -> None:
        self.engine = engine
        self._markets = set(engine.markets)
        self._publish = publish
        self._signals = signals

    def on_event(self, event: Event) -> list[Event]:
        out = self.engine.on_event(event)
        market = getattr(event, "market", None)
        if market in self._markets:
            self._publish(market)
        if self._signals is not None:
            for ev in out:
                if isinstance(ev, TargetPosition):
                    side, reason = signal_labels(ev)
                    self._signals.labels(ev.market, side, reason).inc()
        return out


POSITIONS_FROM_SNAPSHOT = Counter(
    f"{PREFIX}strategy_positions_from_snapshot_total",
    "Positions a strategy took from the executor's PositionSnapshot because its fill history was incomplete "
    "or gone (when: restore = at start, live = a snapshot after the start or after Redis lost its data).",
    ["strategy", "market", "when"])


def _adopted(engine: Any, snap: PositionSnapshot, old: float, when: str, why: str) -> None:
    POSITIONS_FROM_SNAPSHOT.labels(engine.name, snap.market, when).inc()
    log.warning("strategy %s %s: position %g taken from the executor's snapshot %s (was %g: %s)",
                engine.name, snap.market, snap.position, snap.id, old, why)


async def restore_fills(engine: Any, bus: Bus, account: int | str, own_markets_only: bool = False,
                        publish: Callable[[str], None] | None = None) -> int:
    """Fold the strategy's historical fills from the exec stream into ``engine`` (only those of
    its markets when ``own_markets_only``), then check each market against the strategy's last
    ``PositionSnapshot`` on the stream: when they differ (fills trimmed away or lost) the snapshot's
    position is adopted (:meth:`~shared.strategy_base.StrategyEngineBase.adopt_position`, logged,
    counted); a market without any snapshot takes its position from the next one to arrive
    (:meth:`~shared.strategy_base.StrategyEngineBase.await_snapshot`; a fresh strategy's first
    snapshot equals its fold: nothing changes). Then ``publish(market)`` each market when given;
    returns how many fills were applied (duplicates included). A fill or snapshot the screening
    refuses (:class:`~shared.screening.Screener`: e.g. a negative size written into the stream)
    is skipped and logged, as the consumer dead-letters it."""
    n = 0
    last: dict[str, PositionSnapshot] = {}
    stream = bus.streams.exec(account)
    screener = Screener(bus.streams.ns, markets=getattr(engine, "market_info", None))
    for d in await bus.read_all(stream):
        ev = d.event
        if not isinstance(ev, Fill | PositionSnapshot) or ev.strategy != engine.name or not screener.passes(ev, stream):
            continue
        if isinstance(ev, Fill) and (not own_markets_only or ev.market in engine.markets):
            engine.on_event(ev)
            n += 1
        elif isinstance(ev, PositionSnapshot) and ev.market in engine.markets:
            last[ev.market] = ev
    if isinstance(engine, StrategyEngineBase) and not engine.cfg.dry_run:
        for m in engine.markets:
            snap = last.get(m)
            if snap is None:
                engine.await_snapshot([m])
                continue
            old = engine.position(m)
            if abs(old - snap.position) > POS_EPS:
                engine.adopt_position(m, snap.position, snap.avg_entry_price, snap.ts_event)
                _adopted(engine, snap, old, "restore", "the fills on the exec stream do not add up to it: "
                         "trimmed, or lost with Redis's data")
        if not last and n == 0:
            log.info("strategy %s: no fills and no position snapshot of it on the exec stream: flat until the "
                     "executor's next snapshot says otherwise", engine.name)
    if publish is not None:
        for m in engine.markets:
            publish(m)
    return n


def strategy_screener(engine: Any, cfg: StackConfig, bus: Bus) -> Screener:
    """The input screening of a strategy service (:class:`~shared.screening.Screener`):
    ``cfg.screening``'s thresholds, the engine's market metadata (``engine.market_info`` when it
    has one) besides Lighter's known markets."""
    return Screener(bus.streams.ns, cfg.screening, markets=getattr(engine, "market_info", None))


class SnapshotRecovery:
    """Wraps the engine a runner drives (usually a :class:`MeteredEngine`): a ``PositionSnapshot``
    of a market awaiting one (:meth:`~shared.strategy_base.StrategyEngineBase.await_snapshot`)
    sets the strategy's position first when it differs
    (:meth:`~shared.strategy_base.StrategyEngineBase.take_snapshot`; logged at WARNING, counted),
    then every event goes to ``inner`` unchanged.

    Args:
        inner: what the runner would drive otherwise.
        engine: the strategy engine itself (a ``StrategyEngineBase``).
    """

    def __init__(self, inner: Any, engine: Any) -> None:
        self.inner = inner
        self.engine = engine

    def on_event(self, event: Event) -> list[Event]:
        if isinstance(event, PositionSnapshot) and self.engine.awaiting_snapshot:
            old = self.engine.take_snapshot(event)
            if old is not None:
                _adopted(self.engine, event, old, "live", "its fill history is gone (none at start, or lost "
                         "with Redis's data)")
        return self.inner.on_event(event)

    def on_bus_reset(self) -> None:
        """Redis came back without its data: fills may have been lost with it, so every market
        takes its position from the executor's next snapshot (it publishes them again)."""
        self.engine.await_snapshot()
        log.warning("strategy %s: Redis lost its data; positions %s are checked against the executor's next "
                    "snapshots", self.engine.name, positions(self.engine))


def build_runner(source: str, engine: Any, wrapped: Any, cfg: StackConfig, bus: Bus,
                 consumer: str | None = None) -> EngineRunner:
    """The :class:`EngineRunner` of a strategy: ``wrapped`` (the engine, usually metered) on the
    book streams of ``engine.markets`` and the account's exec stream, every output to the
    intent stream, group ``engine.cfg.strategy``, port ``engine.cfg.http_port``; inputs screened
    by :func:`strategy_screener`."""
    streams: Streams = bus.streams
    inputs = [streams.book(m) for m in engine.markets] + [streams.exec(cfg.account_index)]
    intent_stream = streams.intent(cfg.account_index)
    recovery = SnapshotRecovery(wrapped, engine)
    return EngineRunner(source, recovery, bus, inputs, route=lambda _ev: intent_stream,
                        group=engine.cfg.strategy, http_port=engine.cfg.http_port, consumer=consumer,
                        on_reset=recovery.on_bus_reset, screener=strategy_screener(engine, cfg, bus))


#: How long the shutdown intents are retried while Redis is unreachable (seconds).
SHUTDOWN_PUBLISH_S = 10.0

Build = Callable[[StackConfig, Bus], tuple[EngineRunner, Any]]
Body = Callable[[EngineRunner, Any, Bus, int], Awaitable[None]]


class LeaseLost(RuntimeError):
    """Another process took this strategy instance's lease (:mod:`shared.leases`): this one
    stopped acting (no shutdown intents) and must exit."""


def instance_lease(cfg: StackConfig, redis: Any, name: str) -> Lease:
    """The lease of strategy instance ``name``: key ``{ns}:lock:instance:<name>``, TTL
    ``cfg.lease_ttl_s``."""
    return Lease(redis, lease_key(cfg.ns, "instance", name), cfg.lease_ttl_s)


async def stand_by(lease: Lease, stop: asyncio.Event, port: int, service: str) -> bool:
    """Take ``lease``, waiting as standby while another process holds it: ``/health`` on
    ``port`` says ``{"status": "standby", "holder": ...}`` (HTTP 200) meanwhile, and the wait is
    logged once per holder (``starting``, HTTP 503, while Redis has not answered yet: a start
    during a Redis outage waits for it). Returns True when taken, False when ``stop`` was set
    first."""
    state: dict[str, Any] = {"holder": None, "since": time.time()}

    def held_by(who: str) -> None:
        state["holder"] = who
        log.warning("%s: instance lock %s is held by %s: waiting as standby (takes over within %.0fs of its "
                    "holder's death)", service, lease.key, who, lease.ttl_s)

    with contextlib.suppress(*BUS_DOWN_ERRORS):  # Redis down at start: waited out below
        if await lease.try_acquire():
            return True
    # "starting" (HTTP 503) while Redis has not answered yet, "standby" (200) once a holder is known
    http = await start_http(port, lambda: {"status": "standby" if state["holder"] else "starting",
                                           "service": service, "lock": lease.key,
                                           "holder": state["holder"], "me": lease.holder,
                                           "standby_s": round(time.time() - state["since"], 1)})
    try:
        got = await lease.wait(stop, on_held_by=held_by)
    finally:
        await http.cleanup()
    if got:
        log.warning("%s: took over instance lock %s (was held by %s)", service, lease.key, state["holder"])
    return got


async def run_strategy(cfg: StackConfig, url: str, build: Build, body: Body) -> None:
    """Connect to Redis at ``url``, ``build`` the runner and engine, install the stop handlers,
    take the instance lease (:func:`instance_lease`, waiting as standby while another replica
    holds it, :func:`stand_by`) and await ``body(runner, engine, bus, account)`` (restore,
    consume, shut down) while the lease is renewed. The lease is released at the end.

    Raises:
        ConfigError: ``cfg.instance`` is set but the service's section lists no such instance.
        LeaseLost: another process took the lease (Redis outage longer than its TTL): the runner
            was stopped without its shutdown intents.
    """
    redis = async_client(url)
    try:
        bus = Bus(redis, cfg.ns, maxlen=cfg.stream_maxlen)
        runner, engine = build(cfg, bus)
        if cfg.instance is not None and section_key(engine.name) != section_key(cfg.instance):
            raise ConfigError(f"config error: instance {cfg.instance} (LS_INSTANCE): not listed under "
                              f"services.{runner.service}.instances (strategy {engine.name})")
        install_stop_handlers(runner.stop)
        lease = instance_lease(cfg, redis, engine.name)
        if not await stand_by(lease, runner.stop_event, engine.cfg.http_port, runner.service):
            return
        keeper = asyncio.create_task(lease.keep(runner.stop_event), name="instance-lease")
        keeper.add_done_callback(lambda t: _on_lease_end(t, runner))
        try:
            await body(runner, engine, bus, cfg.account_index)
        finally:
            runner.stop()
            await asyncio.gather(keeper, return_exceptions=True)
            await lease.release()
        if runner.fenced:
            raise LeaseLost(f"{runner.service}: instance lock {lease.key} lost to "
                            f"{lease.lost_to or 'nobody known (its keeper failed)'}: stopped acting")
    finally:
        await redis.aclose()


def _on_lease_end(task: asyncio.Task, runner: EngineRunner) -> None:
    """The lease keeper ended: lost (or failed) -> fence the runner and stop it (fail closed)."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("%s: instance lease keeper failed: %r; stopping", runner.service, exc)
    elif task.result() is None:
        return
    runner.fenced = True  # lost: publish nothing more (no shutdown intents)
    runner.stop()


def strategy_main(cfg: StackConfig, check: Callable[[StackConfig], object],
                  run: Callable[[StackConfig, str], Awaitable[None]]) -> int:
    """A strategy service's ``main``: set up logging, ``check`` the config (raises
    ``ConfigError`` before connecting), then ``run(cfg, redis_url)`` until stopped; 0 after a
    graceful stop, 3 when the instance lease was lost (:class:`LeaseLost`). Redis from
    :func:`shared.redis_util.resolve_redis_url`."""
    setup_logging()
    check(cfg)
    try:
        asyncio.run(run(cfg, resolve_redis_url(cfg.redis_url)))
    except LeaseLost as exc:
        log.error("%s", exc)
        return EXIT_LEASE_LOST
    return 0


def positions(engine: Any) -> dict[str, float]:
    """``{market: engine.position(market)}`` of every traded market (signed base units)."""
    return {m: engine.position(m) for m in engine.markets}


def dry_run_note(engine: Any) -> str:
    """``" (dry run)"`` when ``engine.cfg.dry_run``, else ``""`` (a suffix of log lines)."""
    return " (dry run)" if engine.cfg.dry_run else ""


def restore_run_shutdown(restore: Callable[[Any, Bus, int | str], Awaitable[int]],
                         restored: Callable[[Any, int], str],
                         shutdown: Callable[[Any], Sequence[Event]] | None = None,
                         stopped: Callable[[Any], str] | None = None,
                         logger: logging.Logger = log) -> Body:
    """A :data:`Body` for :func:`run_strategy`: ``n = await restore(engine, bus, account)``, log
    ``restored(engine, n)``, consume until ``runner.stop()``; then (also when the consumer
    raised) publish ``shutdown(engine)`` to the intent stream when it is not empty and log
    ``stopped(engine)``. All lines go to ``logger`` at INFO."""

    async def body(runner: EngineRunner, engine: Any, bus: Bus, account: int | str) -> None:
        try:  # the restore reads the stream first, then folds: repeating it after a failed read is safe
            n = await runner.link.retry(lambda: restore(engine, bus, account), "restore", runner.stop_event)
        except BUS_DOWN_ERRORS:
            return  # stopped before Redis answered: nothing restored, nothing to shut down
        logger.info("%s", restored(engine, n))
        try:
            await runner.run()
        finally:
            fenced = runner.fenced  # the instance lease was lost: another replica acts now
            intents = list(shutdown(engine)) if shutdown is not None and not fenced else []
            if intents:
                try:
                    await runner.link.retry(lambda: bus.publish(bus.streams.intent(account), intents),
                                            "publish shutdown intents", deadline_s=SHUTDOWN_PUBLISH_S)
                    if stopped is not None:
                        logger.info("%s", stopped(engine))
                except BUS_DOWN_ERRORS as exc:
                    logger.error("%s: shutdown intents not published, Redis unreachable for %.0fs: %s",
                                 engine.name, SHUTDOWN_PUBLISH_S, exc)

    return body


def restore_then_run(restore: Callable[[Any, Bus, int], Awaitable[int]]) -> Body:
    """A :data:`Body` for :func:`run_strategy`: ``restore(engine, bus, account)`` the fills,
    log the positions, then consume until stopped (nothing is published at shutdown)."""
    return restore_run_shutdown(
        restore, lambda e, n: f"strategy {e.name}: restored {n} fills; positions {positions(e)}")


def cancel_all_intents(engine: Any, source: str, reason: str, ts_ns: int | None = None) -> list[CancelIntent]:
    """The shutdown intents of a quoting strategy: one ``CancelIntent(strategy, market=None)``
    (the executor cancels every resting order of the strategy in all markets), none in dry run.
    Stamped with the engine's latest event time (``max`` of ``engine.state(m)["ts"]``, ns) so an
    executor on recording time does not see it as stale, or ``ts_ns``/the wall clock when the
    engine saw nothing yet; id ``derive_id("shutdown", strategy, ts)``."""
    if engine.cfg.dry_run:
        return []
    ts = max((engine.state(m)["ts"] for m in engine.markets), default=0) or ts_ns or time.time_ns()
    return [CancelIntent(id=derive_id("shutdown", engine.name, ts), ts_event=ts, source=source,
                         strategy=engine.name, market=None, reason=reason)]


def set_gauges(gauges: dict[str, Gauge], market: str, state: dict[str, Any]) -> None:
    """Set ``gauges[key]`` of ``market`` from ``state[key]`` of an engine state snapshot
    (``None`` values skipped)."""
    for key, gauge in gauges.items():
        v = state.get(key)
        if v is not None:
            gauge.labels(market).set(float(v))


class CounterTotals:
    """Turns an engine's running totals (counts since start that only grow: fills, requotes,
    bricks, ...) into increments of Prometheus counters: remembers the last total counted per
    counter and label values."""

    def __init__(self) -> None:
        self._last: dict[tuple[Any, ...], int] = {}

    def count(self, counter: Counter, total: int, *labels: str) -> int:
        """Increment ``counter.labels(*labels)`` by how much ``total`` grew since the last call
        with the same counter and labels (from 0); returns that increase (0 when none)."""
        key = (counter, *labels)
        delta = total - self._last.get(key, 0)
        if delta <= 0:
            return 0
        self._last[key] = total
        counter.labels(*labels).inc(delta)
        return delta
