"""strategy-trend service: runs :class:`TrendEngine` on the bus.

Inputs: ``{ns}:md:book:{SYM}`` of each traded market (the engine uses the ``Bbo`` events) and
``{ns}:exec:{account}`` (fills and order outcomes of this strategy). Output: every intent to
``{ns}:intent:{account}``. Consumer group: the strategy name (``trend``).

Restart: before consuming, the runner reads the whole exec stream and folds this strategy's
``Fill`` events into the engine, so the position (and its average entry price and entry time)
survives a restart even though the consumer group has already acknowledged those fills. The
group then redelivers nothing it acknowledged, and anything it does redeliver is harmless: the
engine dedupes fills by ``fill_id``. Limits: fills trimmed from the exec stream (``stream_maxlen``)
are lost to the fold; indicators restart cold (21 candles of warm-up, ~5 minutes), during which
stop-loss, take-profit and the time stop still protect an open position.

Metrics (``lighter_stack_trend_*``, labelled by market) are set from ``TrendEngine.state``
after each event; the engine itself stays pure.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge

from shared.bus import Bus
from shared.config import StackConfig
from shared.metrics import PREFIX
from shared.service import EngineRunner
from shared.strategy_runner import (
    MeteredEngine,
    build_runner,
    restore_then_run,
    run_strategy,
    set_gauges,
    strategy_main,
)
from shared.strategy_runner import restore_fills as restore_strategy_fills

from .config import TrendConfig
from .engine import SOURCE, TrendEngine, make_engine

SECTION = "strategy-trend"
P = f"{PREFIX}trend_"

RSI_G = Gauge(f"{P}rsi", "Wilder RSI of the last closed candle (0..100).", ["market"])
VOL_G = Gauge(f"{P}volatility_bps", "Mean |close-to-close return| over the last candles, bps.", ["market"])
BB_POS_G = Gauge(f"{P}bb_position", "Mid's position in the Bollinger band (0 lower, 1 upper).", ["market"])
BB_UP_G = Gauge(f"{P}bb_upper", "Upper Bollinger band, USD.", ["market"])
BB_LO_G = Gauge(f"{P}bb_lower", "Lower Bollinger band, USD.", ["market"])
EMA_F_G = Gauge(f"{P}ema_fast", "Fast EMA of candle closes, USD.", ["market"])
EMA_S_G = Gauge(f"{P}ema_slow", "Slow EMA of candle closes, USD.", ["market"])
ATR_G = Gauge(f"{P}atr", "Wilder ATR of the candles, USD.", ["market"])
POS_G = Gauge(f"{P}position", "Strategy position from its fills, signed base units.", ["market"])
CANDLES_G = Gauge(f"{P}candles", "Candles closed since start.", ["market"])
SIGNALS = Counter(f"{P}signals_total", "Target-position intents emitted.", ["market", "side", "reason"])

_GAUGES = {"rsi": RSI_G, "volatility_bps": VOL_G, "bb_position": BB_POS_G, "bb_upper": BB_UP_G,
           "bb_lower": BB_LO_G, "ema_fast": EMA_F_G, "ema_slow": EMA_S_G, "atr": ATR_G,
           "position": POS_G, "candles": CANDLES_G}


def publish_state(market: str, state: dict[str, Any]) -> None:
    """Set the gauges of ``market`` from an engine state snapshot (``None`` values skipped)."""
    set_gauges(_GAUGES, market, state)


async def restore_fills(engine: TrendEngine, bus: Bus, account: int | str) -> int:
    """Fold this strategy's historical fills from the exec stream into ``engine``; returns
    how many were applied (duplicates included)."""
    return await restore_strategy_fills(engine, bus, account, publish=lambda m: publish_state(m, engine.state(m)))


def build(cfg: StackConfig, bus: Bus, consumer: str | None = None) -> tuple[EngineRunner, TrendEngine]:
    """The runner and engine of this service for ``cfg`` on ``bus`` (no I/O yet).

    Raises:
        ConfigError: invalid ``services.strategy-trend`` section or a market without sizing.
    """
    engine = make_engine(cfg)
    metered = MeteredEngine(engine, lambda m: publish_state(m, engine.state(m)), SIGNALS)
    return build_runner(SOURCE, engine, metered, cfg, bus, consumer), engine


async def run(cfg: StackConfig, url: str) -> None:
    """Restore the position from the exec stream, then consume until stopped."""
    await run_strategy(cfg, url, build, restore_then_run(restore_fills))


def main(cfg: StackConfig) -> int:
    """Run strategy-trend until SIGTERM/SIGINT (Redis from
    :func:`shared.redis_util.resolve_redis_url`: ``REDIS_URL``, config, local 6379 or the
    bundled server). Returns 0 after a graceful stop.

    Raises:
        ConfigError: invalid ``services.strategy-trend`` section (checked before connecting).
    """
    return strategy_main(cfg, lambda c: c.section(SECTION, TrendConfig).resolve_markets(c.markets), run)
