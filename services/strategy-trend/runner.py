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

import asyncio
import logging
from typing import Any

from prometheus_client import Counter, Gauge

from shared.bus import Bus, Streams
from shared.config import StackConfig
from shared.events import Event, Fill, TargetPosition
from shared.metrics import PREFIX
from shared.redis_util import async_client, resolve_redis_url
from shared.service import EngineRunner, install_stop_handlers, setup_logging

from .config import TrendConfig
from .engine import SOURCE, TrendEngine, signal_labels

log = logging.getLogger(__name__)

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


class MeteredEngine:
    """Wraps a :class:`TrendEngine`: same outputs, and updates the Prometheus metrics."""

    def __init__(self, engine: TrendEngine) -> None:
        self.engine = engine
        self._markets = set(engine.markets)

    def on_event(self, event: Event) -> list[Event]:
        out = self.engine.on_event(event)
        market = getattr(event, "market", None)
        if market in self._markets:
            publish_state(market, self.engine.state(market))
        for ev in out:
            if isinstance(ev, TargetPosition):
                side, reason = signal_labels(ev)
                SIGNALS.labels(ev.market, side, reason).inc()
        return out


def publish_state(market: str, state: dict[str, Any]) -> None:
    """Set the gauges of ``market`` from an engine state snapshot (``None`` values skipped)."""
    for key, gauge in _GAUGES.items():
        v = state.get(key)
        if v is not None:
            gauge.labels(market).set(float(v))


async def restore_fills(engine: TrendEngine, bus: Bus, account: int | str) -> int:
    """Fold this strategy's historical fills from the exec stream into ``engine``; returns
    how many were applied (duplicates included)."""
    n = 0
    for d in await bus.read_all(bus.streams.exec(account)):
        ev = d.event
        if isinstance(ev, Fill) and ev.strategy == engine.name:
            engine.on_event(ev)
            n += 1
    for m in engine.markets:
        publish_state(m, engine.state(m))
    return n


def build(cfg: StackConfig, bus: Bus, consumer: str | None = None) -> tuple[EngineRunner, TrendEngine]:
    """The runner and engine of this service for ``cfg`` on ``bus`` (no I/O yet).

    Raises:
        ConfigError: invalid ``services.strategy-trend`` section or a market without sizing.
    """
    tcfg = cfg.section(SECTION, TrendConfig)
    markets = tcfg.resolve_markets(cfg.markets)
    engine = TrendEngine(tcfg, markets, source=SOURCE)
    streams: Streams = bus.streams
    inputs = [streams.book(m) for m in markets] + [streams.exec(cfg.account_index)]
    intent_stream = streams.intent(cfg.account_index)
    runner = EngineRunner(SOURCE, MeteredEngine(engine), bus, inputs, route=lambda _ev: intent_stream,
                          group=tcfg.strategy, http_port=tcfg.http_port, consumer=consumer)
    return runner, engine


async def run(cfg: StackConfig, url: str) -> None:
    """Restore the position from the exec stream, then consume until stopped."""
    redis = async_client(url)
    try:
        bus = Bus(redis, cfg.ns, maxlen=cfg.stream_maxlen)
        runner, engine = build(cfg, bus)
        install_stop_handlers(runner.stop)
        n = await restore_fills(engine, bus, cfg.account_index)
        log.info("strategy %s: restored %d fills; positions %s", engine.name, n,
                 {m: engine.position(m) for m in engine.markets})
        await runner.run()
    finally:
        await redis.aclose()


def main(cfg: StackConfig) -> int:
    """Run strategy-trend until SIGTERM/SIGINT (Redis from
    :func:`shared.redis_util.resolve_redis_url`: ``REDIS_URL``, config, local 6379 or the
    bundled server). Returns 0 after a graceful stop.

    Raises:
        ConfigError: invalid ``services.strategy-trend`` section (checked before connecting).
    """
    setup_logging()
    cfg.section(SECTION, TrendConfig).resolve_markets(cfg.markets)  # fail fast on bad config
    asyncio.run(run(cfg, resolve_redis_url(cfg.redis_url)))
    return 0
