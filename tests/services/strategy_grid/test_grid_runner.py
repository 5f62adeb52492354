"""strategy-grid runner against a real Redis: book -> RestingOrders, restart restores the
position, shutdown cancels the grid's orders (and keeps the position), dry run publishes nothing."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest
import strategy_kit
from prometheus_client import REGISTRY
from strategy_kit import T0, S

from services.strategy_grid.runner import build, restore_fills, run_until_stopped
from shared.bus import Bus
from shared.events import Bbo, RestingOrders, TargetPosition

stack = partial(strategy_kit.stack, "strategy-grid")
fill = partial(strategy_kit.fill, strategy="grid", liquidity="maker")


async def test_restore_position_from_exec_fills(redis_client, namespace):
    cfg = stack(namespace)
    bus = Bus(redis_client, namespace)
    await bus.publish(bus.streams.exec(cfg.account_index), [
        fill(1, "A"), fill(2, "A"), fill(3, "B", strategy="trend"), fill(4, "C", side="sell"), fill(5, "D")])
    _runner, engine = build(cfg, bus)
    assert await restore_fills(engine, bus, cfg.account_index) == 4
    assert engine.position("BTC") == pytest.approx(0.0002)


async def test_runner_publishes_grid_and_cancels_it_on_shutdown(redis_client, namespace, read_stream):
    cfg = stack(namespace)
    bus = Bus(redis_client, namespace)
    await bus.publish(bus.streams.exec(cfg.account_index), [fill(1, "old")])
    await bus.publish(bus.streams.book("BTC"), [
        Bbo(id="b1", ts_event=T0 + 10 * S, source="collector", market="BTC", bid_px=99_999.5, bid_sz=1,
            ask_px=100_000.5, ask_sz=1)])
    runner, engine = build(cfg, bus, consumer="t1")
    assert runner.consumer.group == "grid"
    assert runner.inputs == [f"{namespace}:md:book:BTC", f"{namespace}:exec:1001"]
    intent_stream = bus.streams.intent(cfg.account_index)
    task = asyncio.create_task(run_until_stopped(runner, engine, bus, cfg.account_index))
    try:
        evs = await read_stream(bus, intent_stream, 1)
        assert len(evs) == 1
        ro = evs[0]
        assert isinstance(ro, RestingOrders) and len(ro.orders) == 8 and ro.causation_id == "b1"
        assert REGISTRY.get_sample_value("lighter_stack_grid_anchor", {"market": "BTC"}) == 100_000.0
        assert REGISTRY.get_sample_value("lighter_stack_grid_resting_orders_wanted", {"market": "BTC"}) == 8
        assert REGISTRY.get_sample_value("lighter_stack_grid_levels", {"market": "BTC"}) == 8
    finally:
        runner.stop()
        await asyncio.wait_for(task, 10)
    evs = await read_stream(bus, intent_stream, 2)
    assert len(evs) == 2
    last = evs[-1]
    # shutdown: the empty set for the market (the executor cancels them), stamped in event time
    assert isinstance(last, RestingOrders) and last.orders == [] and last.market == "BTC"
    assert last.ts_event == T0 + 10 * S
    assert not any(isinstance(e, TargetPosition) for e in evs)  # the position is kept
    assert engine.position("BTC") == pytest.approx(0.0002)
    assert REGISTRY.get_sample_value("lighter_stack_grid_position", {"market": "BTC"}) == pytest.approx(0.0002)


async def test_dry_run_publishes_nothing(redis_client, namespace, run_until):
    cfg = stack(namespace, dry_run=True)
    bus = Bus(redis_client, namespace)
    await bus.publish(bus.streams.book("BTC"), [
        Bbo(id="b1", ts_event=T0, source="collector", market="BTC", bid_px=99_999.5, bid_sz=1,
            ask_px=100_000.5, ask_sz=1)])
    runner, engine = build(cfg, bus, consumer="t2")
    await run_until(run_until_stopped(runner, engine, bus, cfg.account_index), runner.stop,
                    lambda: engine.state("BTC")["anchor"] is not None)
    assert engine.state("BTC")["wanted_orders"] == 8
    assert await bus.read_all(bus.streams.intent(cfg.account_index)) == []
