"""maker service: runs :class:`MakerEngine` on the bus.

Inputs: ``{ns}:md:book:{SYM}`` and ``{ns}:md:trade:{SYM}`` of each quoted market (the engine uses
``Bbo`` and ``Trade``), ``{ns}:exec:{account}`` (the maker's fills and order outcomes) and
``{ns}:params:{strategy}`` (``ModelParams``). Outputs: ``QuoteIntent`` to ``{ns}:intent:{account}``,
``ModelParams`` to ``{ns}:params:{strategy}``. Consumer group: the strategy name (``maker``).
Port: ``http_port`` (9107) serves ``/health`` and ``/metrics``.

Calibration off the consume loop (``calibration_thread``, default true): the runner feeds the
market data to a :class:`~services.maker.calibrator.Calibrator` (:class:`CalibrationTask`); a
due calibration runs in a worker thread (``arch``'s GARCH fit takes tens of ms, its first import
seconds) while the loop goes on quoting with the params in use; the result is published to
``{ns}:params:{strategy}`` and taken into use when the engine reads it back (a failed fit is
counted in ``calibration_errors_total``). With ``calibration_thread: false`` the engine
calibrates inline at the triggering Bbo, as in a backtest (the demo sets this in lockstep, so the
bus run gives the backtest's fills); its own params read back from the stream are ignored by id.

Restart: before consuming, the maker's ``Fill`` events of the exec stream are folded into the
engine (inventory and FIFO lots survive; fills are deduplicated by ``fill_id``).

Graceful shutdown (SIGTERM/SIGINT): after the consumer stops, the runner publishes one
``CancelIntent(strategy, market=None)``, so the executor cancels every resting quote of the
maker; inventory is kept (the hedger's job). Nothing is published in dry run.

Metrics (``lighter_stack_maker_*``, labelled by market) are set from ``MakerEngine.state``
after each event of a market; the engine stays pure.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from shared.bus import Bus
from shared.config import StackConfig
from shared.events import CancelIntent, Event, ModelParams
from shared.metrics import PREFIX
from shared.outage import BusLink
from shared.service import EngineRunner
from shared.strategy_runner import (
    CounterTotals,
    MeteredEngine,
    SnapshotRecovery,
    cancel_all_intents,
    dry_run_note,
    positions,
    restore_run_shutdown,
    run_strategy,
    set_gauges,
    strategy_main,
    strategy_screener,
)
from shared.strategy_runner import restore_fills as restore_strategy_fills

from .calibrator import CalibrationJob, Calibrator
from .config import SECTION, MakerConfig
from .engine import SOURCE, MakerEngine

log = logging.getLogger(__name__)

P = f"{PREFIX}maker_"

GAUGES: dict[str, Gauge] = {
    "quoted_spread_bps": Gauge(f"{P}quoted_spread_bps", "Quoted spread (ask - bid) / mid, bps.", ["market"]),
    "reservation_offset_bps": Gauge(f"{P}reservation_offset_bps",
                                    "A-S reservation price minus mid, bps (negative when long).", ["market"]),
    "band_bps": Gauge(f"{P}volatility_band_bps", "Seed volatility band, full spread, bps.", ["market"]),
    "inventory": Gauge(f"{P}inventory_base_units", "Maker inventory from its fills, signed base units.", ["market"]),
    "inventory_clips": Gauge(f"{P}inventory_clips", "Inventory q of the A-S formula, in order clips (max_size).",
                             ["market"]),
    "sigma": Gauge(f"{P}sigma_ticks_per_sqrt_second", "A-S sigma in use, ticks/sqrt(s).", ["market"]),
    "k": Gauge(f"{P}k_per_tick", "A-S k in use, 1/tick.", ["market"]),
    "A": Gauge(f"{P}a_per_second", "A-S A in use, 1/s.", ["market"]),
    "gamma": Gauge(f"{P}gamma_per_tick", "A-S gamma in use, 1/tick.", ["market"]),
    "volatility_bps": Gauge(f"{P}volatility_bps", "EWMA of |mid change| between samples, bps.", ["market"]),
    "regime_aggressive": Gauge(f"{P}regime_aggressive", "Regime: 1 aggressive, 0 defensive.", ["market"]),
    "vol_paused": Gauge(f"{P}vol_pause_active", "1 while quoting is paused by volatility.", ["market"]),
    "trend_bias": Gauge(f"{P}trend_bias", "Trend bias: 0 both sides, 1 ask only, -1 bid only.", ["market"]),
    "down_cooldown": Gauge(f"{P}trend_down_cooldown_active", "1 while the down-trend cooldown runs.", ["market"]),
    "pnl_guard": Gauge(f"{P}pnl_guard_active", "1 while the realized-PnL guard is engaged.", ["market"]),
    "pnl_guard_window_usd": Gauge(f"{P}pnl_guard_window_realized_usd",
                                  "Realized FIFO PnL of the guard window at the last check, USD.", ["market"]),
    "realized_pnl_usd": Gauge(f"{P}realized_fifo_pnl_usd", "Realized FIFO PnL of the maker's fills, fees deducted, USD.",
                              ["market"]),
    "fill_ratio": Gauge(f"{P}fill_ratio", "Quote orders with at least one fill / quote orders accepted.", ["market"]),
    "quote_size": Gauge(f"{P}quote_size_base_units", "Clip size before the hard cap, base units.", ["market"]),
    "params_ok": Gauge(f"{P}params_in_use", "1 when quoting from ok A-S params, 0 on the fallback band.", ["market"]),
}
ADVERSE_MEAN = Gauge(f"{P}adverse_selection_mean_bps",
                     "Mean mid move against us after our fills, bps (positive = adverse).", ["market", "horizon_s"])
ADVERSE = Histogram(f"{P}adverse_selection_bps", "Mid move against us after each fill, bps (positive = adverse).",
                    ["market", "horizon_s"], buckets=(-20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20))
COUNTERS: dict[str, Counter] = {
    "requotes": Counter(f"{P}requotes_total", "QuoteIntents that placed, replaced or pulled quotes.", ["market"]),
    "deferred_requotes": Counter(f"{P}requotes_deferred_total", "Requotes held back by max_requotes_per_min.",
                                 ["market"]),
    "fills": Counter(f"{P}fills_total", "Fills of the maker (deduplicated).", ["market"]),
    "params_applied": Counter(f"{P}params_applied_total", "ok ModelParams taken into use.", ["market"]),
    "params_rejected": Counter(f"{P}params_rejected_total", "ModelParams with ok=False (never used).", ["market"]),
    "calibration_errors": Counter(f"{P}calibration_errors_total", "Calibrations that raised.", ["market"]),
}


class Metrics:
    """Sets the gauges from :meth:`MakerEngine.state`, turns running totals into counter
    increments and drains the adverse-selection measurements into the histogram."""

    def __init__(self, engine: MakerEngine) -> None:
        self.engine = engine
        self._totals = CounterTotals()

    def publish(self, market: str) -> None:
        st = self.engine.state(market)
        set_gauges(GAUGES, market, st)  # booleans as 1.0/0.0
        for key, counter in COUNTERS.items():
            self._totals.count(counter, st[key], market)
        for h, mean in st["adverse_mean_bps"].items():
            ADVERSE_MEAN.labels(market, f"{h:g}").set(mean)
        for h, bps in self.engine.drain_adverse(market):
            ADVERSE.labels(market, f"{h:g}").observe(bps)


#: How long a calibration's ``ModelParams`` publish is retried while Redis is unreachable (s).
PARAMS_PUBLISH_S = 60.0


class CalibrationTask:
    """The engine of the live service with its calibration off the consume loop.

    :meth:`on_event` gives every event to the engine (built with ``calibrate_inline=False``) and
    the market data to ``calibrator``; a job it reports due is run by ``calibrator.run`` in a
    one-thread pool, and an asyncio task publishes the resulting ``ModelParams`` to
    ``params_stream`` (the engine's input: it applies them when it reads them back). Jobs run one
    at a time, in order. A job that raises is counted by ``engine.calibration_failed``. Must be
    called from the running event loop (the runner's consume loop). :meth:`close` cancels what
    is pending.
    """

    def __init__(self, engine: MakerEngine, calibrator: Calibrator, bus: Bus, params_stream: str) -> None:
        self.engine = engine
        self.markets = engine.markets
        self.calibrator = calibrator
        self._bus = bus
        self._stream = params_stream
        self._link = BusLink(f"{SOURCE}-calibration")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="maker-calibration")
        self.tasks: set[asyncio.Task[Any]] = set()

    def on_event(self, event: Event) -> list[Event]:
        out = self.engine.on_event(event)
        job = self.calibrator.observe(event)
        if job is not None:
            task = asyncio.get_running_loop().create_task(self._calibrate(job))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return out

    async def _calibrate(self, job: CalibrationJob) -> None:
        try:
            p = await asyncio.get_running_loop().run_in_executor(self._pool, self.calibrator.run, job)
        except Exception as exc:  # a failed fit must never stop the service
            self.engine.calibration_failed(job.market, exc)
            return
        try:  # while Redis is unreachable: retried for a while (a duplicate is dropped by its id)
            await self._link.retry(lambda: self._bus.publish(self._stream, [p]), "publish ModelParams",
                                   deadline_s=PARAMS_PUBLISH_S)
        except Exception:  # the next calibration will try again
            log.exception("maker %s: publishing ModelParams %s failed", job.market, p.id)

    async def close(self) -> None:
        """Cancel pending calibrations and stop the worker thread (a running fit finishes)."""
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)


def shutdown_intents(engine: MakerEngine, ts_ns: int | None = None) -> list[CancelIntent]:
    """One ``CancelIntent`` for all markets of the maker (none in dry run), stamped with the
    engine's latest event time (or ``ts_ns``/the wall clock when it saw nothing)."""
    return cancel_all_intents(engine, SOURCE, "maker shutdown", ts_ns)


def build(cfg: StackConfig, bus: Bus, consumer: str | None = None) -> tuple[EngineRunner, MakerEngine]:
    """The runner and engine of this service for ``cfg`` on ``bus`` (no I/O yet).

    Raises:
        ConfigError: invalid ``services.maker`` section or a market without sizing.
    """
    mcfg = cfg.section(SECTION, MakerConfig)
    threaded = mcfg.calibration_thread
    engine = MakerEngine(mcfg, mcfg.resolve_markets(cfg.markets), source=SOURCE, calibrate_inline=not threaded)
    streams = bus.streams
    inputs = [s for m in engine.markets for s in (streams.book(m), streams.trade(m))]
    inputs += [streams.exec(cfg.account_index), streams.params(mcfg.strategy)]
    intent_stream = streams.intent(cfg.account_index)
    params_stream = streams.params(mcfg.strategy)

    def route(ev: Event) -> str:
        return params_stream if isinstance(ev, ModelParams) else intent_stream

    for m in engine.markets:  # create every counter series at 0, so increase() sees the first increment
        for counter in COUNTERS.values():
            counter.labels(m)
    inner: Any = engine
    if threaded:
        inner = CalibrationTask(engine, Calibrator(mcfg, engine.markets, engine.calibration_inputs, source=SOURCE),
                                bus, params_stream)
    wrapped = MeteredEngine(inner, Metrics(engine).publish)
    recovery = SnapshotRecovery(wrapped, engine)  # inventory from the executor's snapshot when the fills are gone
    runner = EngineRunner(SOURCE, recovery, bus, inputs, route=route, group=mcfg.strategy,
                          http_port=mcfg.http_port, consumer=consumer, on_reset=recovery.on_bus_reset,
                          screener=strategy_screener(engine, cfg, bus))
    return runner, engine


def _restored(engine: MakerEngine, n: int) -> str:
    return f"maker {engine.name}: restored {n} fills; inventory {positions(engine)}{dry_run_note(engine)}"


def _stopped(engine: MakerEngine) -> str:
    return (f"maker {engine.name}: shutdown, canceled quotes in {', '.join(engine.markets)}; "
            f"inventory kept {positions(engine)}")


async def run_until_stopped(runner: EngineRunner, engine: MakerEngine, bus: Bus, account: int | str) -> None:
    """Restore the inventory, consume until ``runner.stop()``, then cancel the maker's quotes."""
    wrapped = runner.engine.inner if isinstance(runner.engine, SnapshotRecovery) else runner.engine
    publish = wrapped._publish if isinstance(wrapped, MeteredEngine) else None  # the same counters' baseline
    restore = partial(restore_strategy_fills, own_markets_only=True, publish=publish)
    try:
        await restore_run_shutdown(restore, _restored, shutdown_intents, _stopped, log)(runner, engine, bus, account)
    finally:
        task = getattr(wrapped, "engine", None)
        if isinstance(task, CalibrationTask):
            await task.close()


async def run(cfg: StackConfig, url: str) -> None:
    await run_strategy(cfg, url, build, run_until_stopped)


def main(cfg: StackConfig) -> int:
    """Run the maker until SIGTERM/SIGINT; returns 0 after a graceful stop (quotes canceled,
    inventory kept).

    Raises:
        ConfigError: invalid ``services.maker`` section (checked before connecting).
    """
    return strategy_main(cfg, lambda c: c.section(SECTION, MakerConfig).resolve_markets(c.markets), run)
