"""The runner restores the copytrade positions from the intent streams (last copytrade target
per market; other strategies' intents ignored), so a restart keeps sizing adds and closes right."""

from __future__ import annotations

import pytest
from copytrade_kit import make_trader

from services.copytrade.runner import restore
from shared.bus import Bus
from shared.events import TargetPosition


def tp(i: int, strategy: str, market: str, target: float) -> TargetPosition:
    return TargetPosition(id=f"tp{i}", ts_event=i, source=strategy, strategy=strategy, market=market, target=target,
                          reference_price=100.0 + i)


async def test_restore_takes_the_last_copytrade_target_per_market(redis_client, namespace):
    bus = Bus(redis_client, namespace)
    await bus.publish(bus.streams.intent(1001), [tp(1, "copytrade", "BTC", 0.04), tp(2, "trend", "BTC", 0.5),
                                                 tp(3, "copytrade", "BTC", 0.02), tp(4, "copytrade", "ETH", -0.3)])
    await bus.publish(bus.streams.intent(1002), [tp(5, "copytrade", "ETH", 0.1)])
    trader, _ = make_trader()
    assert await restore(bus, trader) == 4
    assert trader.holdings[(1001, "BTC")].target == pytest.approx(0.02)
    assert trader.holdings[(1001, "BTC")].entry == pytest.approx(103.0)
    assert trader.holdings[(1001, "ETH")].target == pytest.approx(-0.3)
    assert trader.holdings[(1002, "ETH")].target == pytest.approx(0.1)
