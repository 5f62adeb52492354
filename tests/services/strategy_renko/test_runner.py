"""strategy-renko runner against a real Redis: consume -> intents and metrics, restart
restores the position."""

from __future__ import annotations

from functools import partial

import pytest
import strategy_kit
from prometheus_client import REGISTRY
from strategy_kit import T0, S, run_until_published

from services.strategy_renko.runner import build, restore_fills
from shared.bus import Bus
from shared.config import ConfigError, StackConfig
from shared.events import Bbo, TargetPosition

stack = partial(strategy_kit.stack, "strategy-renko")
fill = partial(strategy_kit.fill, strategy="renko")


# brick size pinned to 1: the hand-built bullish divergence of test_engine.py
PATH = [100.0] + [100.0 - k for k in range(1, 41)] + [62.0, 63.0, 64.0, 65.0, 63.0, 62.0, 61.0, 60.0, 59.0, 61.0]


async def test_restart_restores_position_from_exec_fills(redis_client, namespace):
    cfg = stack(namespace)
    bus = Bus(redis_client, namespace)
    await bus.publish(bus.streams.exec(cfg.account_index), [
        fill(1, "A"), fill(2, "A"), fill(3, "B", strategy="trend"), fill(4, "C")])
    _runner, engine = build(cfg, bus)
    assert await restore_fills(engine, bus, cfg.account_index) == 3
    assert engine.position("BTC") == pytest.approx(0.0004)
    assert REGISTRY.get_sample_value("lighter_stack_renko_position", {"market": "BTC"}) == pytest.approx(0.0004)


async def test_runner_turns_book_stream_into_bricks_and_intents(redis_client, namespace):
    cfg = stack(namespace)
    bus = Bus(redis_client, namespace)
    bbos = [Bbo(id=f"b{k}", ts_event=T0 + (k + 1) * S, source="collector", market="BTC",
                bid_px=mid - 0.005, bid_sz=1, ask_px=mid + 0.005, ask_sz=1) for k, mid in enumerate(PATH)]
    await bus.publish(bus.streams.book("BTC"), bbos)
    runner, engine = build(cfg, bus, consumer="t1")
    engine._brick_size = lambda mid, st: 1.0  # type: ignore[method-assign]
    assert runner.consumer.group == "renko"
    assert runner.inputs == [f"{namespace}:md:book:BTC", f"{namespace}:exec:1001"]
    before = REGISTRY.get_sample_value("lighter_stack_renko_bricks_total", {"market": "BTC", "direction": "down"}) or 0
    got = await run_until_published(runner, bus, bus.streams.intent(cfg.account_index))
    assert len(got) == 1
    tp = got[0].event
    assert isinstance(tp, TargetPosition) and tp.target > 0 and tp.causation_id == f"b{len(PATH) - 1}"
    assert tp.strategy == "renko" and tp.source == "strategy-renko"
    down = REGISTRY.get_sample_value("lighter_stack_renko_bricks_total", {"market": "BTC", "direction": "down"})
    assert down - before == 45
    assert REGISTRY.get_sample_value("lighter_stack_renko_brick_count", {"market": "BTC"}) == 50
    assert REGISTRY.get_sample_value("lighter_stack_renko_divergences_total",
                                     {"market": "BTC", "kind": "bullish"}) >= 1
    assert REGISTRY.get_sample_value("lighter_stack_renko_brick_size", {"market": "BTC"}) == 1.0
    assert REGISTRY.get_sample_value("lighter_stack_renko_ao", {"market": "BTC"}) < 0
    assert REGISTRY.get_sample_value("lighter_stack_renko_signals_total",
                                     {"market": "BTC", "side": "long", "reason": "entry"}) >= 1


def test_build_rejects_bad_config(redis_client, namespace):
    with pytest.raises(ConfigError, match="no market to trade"):
        build(StackConfig(namespace=namespace, markets=[]), Bus(redis_client, namespace))
    with pytest.raises(ConfigError, match="services.strategy-renko.take_profit_bps"):
        build(stack(namespace, take_profit_bps=-1), Bus(redis_client, namespace))
