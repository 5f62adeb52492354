"""strategy-trend runner against a real Redis: consume -> intents, restart restores the position."""

from __future__ import annotations

from functools import partial

import pytest
import strategy_kit
from prometheus_client import REGISTRY
from strategy_kit import T0, S, run_until_published

from services.strategy_trend.runner import build, restore_fills
from shared.bus import Bus
from shared.config import ConfigError, StackConfig
from shared.events import Bbo, TargetPosition

stack = partial(strategy_kit.stack, "strategy-trend")
fill = partial(strategy_kit.fill, strategy="trend")


async def test_restart_restores_position_from_exec_fills(redis_client, namespace):
    cfg = stack(namespace)
    bus = Bus(redis_client, namespace)
    await bus.publish(bus.streams.exec(cfg.account_index), [
        fill(1, "A"), fill(2, "A"),          # redelivered duplicate
        fill(3, "B", strategy="maker"),      # someone else's
        fill(4, "C"),
    ])
    _runner, engine = build(cfg, bus)
    assert await restore_fills(engine, bus, cfg.account_index) == 3
    assert engine.position("BTC") == pytest.approx(0.0004)
    assert engine.state("BTC")["entry_ts"] == T0 + 1 * S
    assert REGISTRY.get_sample_value("lighter_stack_trend_position", {"market": "BTC"}) == pytest.approx(0.0004)


async def test_runner_turns_book_stream_into_intents(redis_client, namespace):
    cfg = stack(namespace)
    bus = Bus(redis_client, namespace)
    bbos = [Bbo(id=f"b{k}", ts_event=T0 + (k * 15 + 1) * S, source="collector", market="BTC",
                bid_px=100_000 + 30 * k - 0.5, bid_sz=1, ask_px=100_000 + 30 * k + 0.5, ask_sz=1)
            for k in range(22)]
    await bus.publish(bus.streams.book("BTC"), bbos)
    runner, engine = build(cfg, bus, consumer="t1")
    assert runner.consumer.group == "trend"
    assert runner.inputs == [f"{namespace}:md:book:BTC", f"{namespace}:exec:1001"]
    got = await run_until_published(runner, bus, bus.streams.intent(cfg.account_index))
    assert len(got) == 1
    tp = got[0].event
    assert isinstance(tp, TargetPosition) and tp.target == pytest.approx(0.0002) and tp.causation_id == "b21"
    assert REGISTRY.get_sample_value("lighter_stack_trend_rsi", {"market": "BTC"}) == 100.0
    assert REGISTRY.get_sample_value("lighter_stack_trend_signals_total",
                                     {"market": "BTC", "side": "long", "reason": "entry"}) >= 1


def test_build_takes_a_market_without_sizing_and_rejects_bad_config(redis_client, namespace):
    cfg = StackConfig(namespace=namespace, markets=["BTC", "PAXG"])  # PAXG: sized from notional_usd
    build(cfg, Bus(redis_client, namespace))
    with pytest.raises(ConfigError, match="no market to trade"):
        build(StackConfig(namespace=namespace, markets=[]), Bus(redis_client, namespace))
    with pytest.raises(ConfigError, match="services.strategy-trend.take_profit_bps"):
        build(stack(namespace, take_profit_bps=-1), Bus(redis_client, namespace))
