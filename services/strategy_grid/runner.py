"""strategy-grid service: runs :class:`GridEngine` on the bus.

Inputs: ``{ns}:md:book:{SYM}`` of each traded market (the engine uses the ``Bbo`` events) and
``{ns}:exec:{account}`` (this strategy's fills and order outcomes). Output: ``RestingOrders``
intents to ``{ns}:intent:{account}``. Consumer group: the strategy name (``grid``).

Restart: before consuming, the runner folds this strategy's ``Fill`` events of the exec stream
into the engine, so the position survives a restart (fills are deduplicated by ``fill_id``). The
grid itself restarts fresh around the next mid; the first ``RestingOrders`` it sends replaces
whatever the executor still rests for the strategy.

Graceful shutdown (SIGTERM/SIGINT): after the consumer stops, the runner publishes
``RestingOrders(orders=[])`` for every traded market, so the executor cancels the grid's
resting orders; the position is kept (no closing order). Nothing is published in dry run.

Metrics (``lighter_stack_grid_*``, labelled by market) are set from ``GridEngine.state`` after
each event; the engine itself stays pure.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import Counter, Gauge

from shared.bus import Bus
from shared.config import StackConfig
from shared.events import RestingOrders, derive_id
from shared.metrics import PREFIX
from shared.service import EngineRunner
from shared.strategy_runner import (
    CounterTotals,
    MeteredEngine,
    build_runner,
    dry_run_note,
    positions,
    restore_run_shutdown,
    run_strategy,
    set_gauges,
    strategy_main,
)
from shared.strategy_runner import restore_fills as restore_strategy_fills

from .config import SECTION, GridConfig
from .engine import SOURCE, GridEngine, make_engine

log = logging.getLogger(__name__)

P = f"{PREFIX}grid_"

LEVELS_G = Gauge(f"{P}levels", "Active grid levels (orders the grid holds, before the cap).", ["market"])
WANTED_G = Gauge(f"{P}resting_orders_wanted", "Resting orders the grid wants now.", ["market"])
POS_G = Gauge(f"{P}position", "Strategy position from its fills, signed base units.", ["market"])
ANCHOR_G = Gauge(f"{P}anchor", "Reference mid the grid is anchored at, USD.", ["market"])
RECENTERS = Counter(f"{P}recenters_total", "Grid re-anchorings.", ["market"])
FILLS = Counter(f"{P}fills_total", "Fills of this strategy (deduplicated).", ["market"])
EMITS = Counter(f"{P}emissions_total", "RestingOrders intents emitted (counted in dry run too).", ["market"])

_GAUGES = {"levels": LEVELS_G, "wanted_orders": WANTED_G, "position": POS_G, "anchor": ANCHOR_G}
_COUNTERS = {"recenters": RECENTERS, "fills": FILLS, "emissions": EMITS}


class Counts:
    """Sets the gauges and turns the engine's running totals (recenters, fills, emissions)
    into counter increments after each event of a market."""

    def __init__(self, engine: GridEngine) -> None:
        self.engine = engine
        self._totals = CounterTotals()

    def publish(self, market: str) -> None:
        st = self.engine.state(market)
        publish_state(market, st)
        for key, counter in _COUNTERS.items():
            self._totals.count(counter, st[key], market)


def publish_state(market: str, state: dict[str, Any]) -> None:
    """Set the gauges of ``market`` from an engine state snapshot (no anchor yet: not set)."""
    set_gauges(_GAUGES, market, state)


async def restore_fills(engine: GridEngine, bus: Bus, account: int | str) -> int:
    """Fold this strategy's historical fills from the exec stream into ``engine``; returns how
    many were read (duplicates included)."""
    return await restore_strategy_fills(engine, bus, account, own_markets_only=True)


def shutdown_intents(engine: GridEngine, ts_ns: int | None = None) -> list[RestingOrders]:
    """``RestingOrders(orders=[])`` for each market (none in dry run): cancels the grid's orders.

    Stamped with the engine's latest event time (so an executor running on recording time does
    not see them as stale), or ``ts_ns``/the wall clock when the engine saw nothing yet."""
    if engine.cfg.dry_run:
        return []
    out = []
    for m in engine.markets:
        ts = engine.state(m)["ts"] or ts_ns or time.time_ns()
        out.append(RestingOrders(id=derive_id("shutdown", engine.name, m, ts), ts_event=ts, source=SOURCE,
                                 strategy=engine.name, market=m, orders=[], post_only=engine.cfg.post_only))
    return out


def build(cfg: StackConfig, bus: Bus, consumer: str | None = None) -> tuple[EngineRunner, GridEngine]:
    """The runner and engine of this service for ``cfg`` on ``bus`` (no I/O yet).

    Raises:
        ConfigError: invalid ``services.strategy-grid`` section or a market without sizing.
    """
    engine = make_engine(cfg, source=SOURCE)
    return build_runner(SOURCE, engine, MeteredEngine(engine, Counts(engine).publish), cfg, bus, consumer), engine


def _restored(engine: GridEngine, n: int) -> str:
    return f"strategy {engine.name}: restored {n} fills; positions {positions(engine)}{dry_run_note(engine)}"


def _stopped(engine: GridEngine) -> str:
    return (f"strategy {engine.name}: shutdown, canceled resting orders in {', '.join(engine.markets)}; "
            f"positions kept {positions(engine)}")


#: ``run_until_stopped(runner, engine, bus, account)``: restore the position, consume until
#: ``runner.stop()``, then cancel the grid's orders (:func:`shutdown_intents`).
run_until_stopped = restore_run_shutdown(restore_fills, _restored, shutdown_intents, _stopped, log)


async def run(cfg: StackConfig, url: str) -> None:
    await run_strategy(cfg, url, build, run_until_stopped)


def main(cfg: StackConfig) -> int:
    """Run strategy-grid until SIGTERM/SIGINT; returns 0 after a graceful stop (grid orders
    canceled, position kept).

    Raises:
        ConfigError: invalid ``services.strategy-grid`` section (checked before connecting).
    """
    return strategy_main(cfg, lambda c: c.section(SECTION, GridConfig).resolve_markets(c.markets), run)
