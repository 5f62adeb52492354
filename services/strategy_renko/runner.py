"""strategy-renko service: runs :class:`RenkoEngine` on the bus.

Inputs: ``{ns}:md:book:{SYM}`` of each traded market (the engine uses the ``Bbo`` events) and
``{ns}:exec:{account}`` (fills and order outcomes of this strategy). Output: every intent to
``{ns}:intent:{account}``. Consumer group: the strategy name (``renko``).

Restart: as strategy-trend, the runner first folds this strategy's ``Fill`` events from the whole
exec stream into the engine, so the position survives a restart (fills are deduplicated by
``fill_id``). Bricks and indicators restart cold (34 bricks before AO); stop loss, take profit
and the time stop still protect an open position meanwhile.

Metrics (``lighter_stack_renko_*``, by market), set from ``RenkoEngine.state`` after each event:
gauges ``ao``, ``brick_size``, ``atr``, ``bb_position``, ``position``, ``brick_count``,
``divergence_strength`` (last divergence); counters ``bricks_total{direction}``,
``divergences_total{kind}``, ``signals_total{side,reason}``; histogram
``divergence_strength_hist`` of every divergence seen.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from shared.bus import Bus
from shared.config import StackConfig
from shared.metrics import PREFIX
from shared.service import EngineRunner
from shared.strategy_runner import (
    CounterTotals,
    MeteredEngine,
    build_runner,
    restore_then_run,
    run_strategy,
    set_gauges,
    strategy_main,
)
from shared.strategy_runner import restore_fills as restore_strategy_fills

from .config import SECTION, RenkoConfig
from .engine import SOURCE, RenkoEngine, make_engine

P = f"{PREFIX}renko_"

AO_G = Gauge(f"{P}ao", "Awesome Oscillator of the last brick (SMA5 - SMA34 of brick medians), USD.", ["market"])
BRICK_SIZE_G = Gauge(f"{P}brick_size", "Current Renko brick size, USD.", ["market"])
ATR_G = Gauge(f"{P}atr", "Wilder ATR of the mid candles, USD.", ["market"])
BB_POS_G = Gauge(f"{P}bb_position", "Mid's position in the brick Bollinger band (0 lower, 1 upper).", ["market"])
POS_G = Gauge(f"{P}position", "Strategy position from its fills, signed base units.", ["market"])
BRICKS_G = Gauge(f"{P}brick_count", "Bricks formed since start (all directions).", ["market"])
STRENGTH_G = Gauge(f"{P}divergence_strength", "Strength (0..1) of the last divergence seen.", ["market"])
STRENGTH_H = Histogram(f"{P}divergence_strength_hist", "Strength (0..1) of every divergence seen.",
                       ["market", "kind"], buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0))
BRICKS = Counter(f"{P}bricks_total", "Renko bricks formed.", ["market", "direction"])
DIVERGENCES = Counter(f"{P}divergences_total", "New price/AO divergences seen.", ["market", "kind"])
SIGNALS = Counter(f"{P}signals_total", "Target-position intents emitted.", ["market", "side", "reason"])

_GAUGES = {"ao": AO_G, "brick_size": BRICK_SIZE_G, "atr": ATR_G, "bb_position": BB_POS_G,
           "position": POS_G, "bricks": BRICKS_G, "last_divergence_strength": STRENGTH_G}


class Counts:
    """Turns the engine's running totals (bricks by direction, divergences by kind) into
    counter increments, and sets the gauges, after each event of a market."""

    def __init__(self, engine: RenkoEngine) -> None:
        self.engine = engine
        self._totals = CounterTotals()

    def publish(self, market: str) -> None:
        state = self.engine.state(market)
        publish_state(market, state)
        self._totals.count(BRICKS, state["bricks_up"], market, "up")
        self._totals.count(BRICKS, state["bricks_down"], market, "down")
        for kind, total in state["divergences"].items():
            if self._totals.count(DIVERGENCES, total, market, kind) and state["last_divergence_strength"] is not None:
                STRENGTH_H.labels(market, kind).observe(state["last_divergence_strength"])


def publish_state(market: str, state: dict[str, Any]) -> None:
    """Set the gauges of ``market`` from an engine state snapshot (``None`` values skipped)."""
    set_gauges(_GAUGES, market, state)


async def restore_fills(engine: RenkoEngine, bus: Bus, account: int | str) -> int:
    """Fold this strategy's historical fills from the exec stream into ``engine``; returns how
    many were applied (duplicates included)."""
    return await restore_strategy_fills(engine, bus, account, publish=lambda m: publish_state(m, engine.state(m)))


def build(cfg: StackConfig, bus: Bus, consumer: str | None = None) -> tuple[EngineRunner, RenkoEngine]:
    """The runner and engine of this service for ``cfg`` on ``bus`` (no I/O yet).

    Raises:
        ConfigError: invalid ``services.strategy-renko`` section or a market without sizing.
    """
    engine = make_engine(cfg, source=SOURCE)
    metered = MeteredEngine(engine, Counts(engine).publish, SIGNALS)
    return build_runner(SOURCE, engine, metered, cfg, bus, consumer), engine


async def run(cfg: StackConfig, url: str) -> None:
    """Restore the position from the exec stream, then consume until stopped."""
    await run_strategy(cfg, url, build, restore_then_run(restore_fills))


def main(cfg: StackConfig) -> int:
    """Run strategy-renko until SIGTERM/SIGINT. Returns 0 after a graceful stop.

    Raises:
        ConfigError: invalid ``services.strategy-renko`` section (checked before connecting).
    """
    return strategy_main(cfg, lambda c: c.section(SECTION, RenkoConfig).resolve_markets(c.markets), run)
