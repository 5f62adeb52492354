"""hedger runner against a real Redis: restart restores the maker inventory and the hedge
position from the exec stream, a maker fill over the trigger makes a passive hedge, shutdown
pulls it, metrics follow."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from services.hedger.runner import build, restore_positions, run_until_stopped
from shared.bus import Bus
from shared.config import StackConfig
from shared.events import Bbo, CancelIntent, Fill, OrderAccepted, QuoteIntent, TargetPosition

S = 1_000_000_000
T0 = 1_762_800_000 * S


def stack(namespace: str, **section) -> StackConfig:
    return StackConfig(namespace=namespace, markets=["SOL"], services={"hedger": {"http_port": 0, **section}})


def fill(i: int, size: float, side: str = "buy", strategy: str = "maker") -> Fill:
    return Fill(id=f"fe{i}", ts_event=T0 + i * S, source="executor", fill_id=f"F{i}", strategy=strategy,
                market="SOL", side=side, price=173.0, size=size, liquidity="maker")


async def test_restore_positions(redis_client, namespace):
    cfg = stack(namespace)
    bus = Bus(redis_client, namespace)
    acc = OrderAccepted(id="acc", ts_event=T0 + 3 * S, source="executor", strategy="hedger", market="SOL",
                        client_order_index=5, side="sell", price=172.8, size=0.02, time_in_force="ioc")
    await bus.publish(bus.streams.exec(cfg.account_index), [
        fill(1, 0.03), fill(2, 0.5, strategy="trend"), acc, fill(3, 0.01, side="sell", strategy="hedger"),
        fill(4, 0.01)])
    _runner, engine = build(cfg, bus)
    assert await restore_positions(engine, bus, cfg.account_index) == 4
    assert engine.maker_inventory("SOL") == pytest.approx(0.04)
    assert engine.position("SOL") == pytest.approx(-0.01)
    # the hedger stopped mid-cross: the target the executor holds is unknown, re-stated once settled
    assert engine.state("SOL")["stated_target"] != engine.state("SOL")["stated_target"]  # NaN
    book = [Bbo(id=f"b{i}", ts_event=T0 + i * S, source="collector", market="SOL", bid_px=172.99, bid_sz=1,
                ask_px=173.01, ask_sz=1) for i in (10, 13)]
    assert engine.on_event(book[0]) == []
    out = engine.on_event(book[1])
    assert len(out) == 1 and isinstance(out[0], TargetPosition) and out[0].reason == "hedge:reset"
    assert out[0].target == pytest.approx(-0.01)


async def test_runner_hedges_and_pulls_on_shutdown(redis_client, namespace, read_stream):
    cfg = stack(namespace)
    bus = Bus(redis_client, namespace)
    exec_stream = bus.streams.exec(cfg.account_index)
    await bus.publish(exec_stream, [fill(1, 0.04)])  # history: below the trigger
    runner, engine = build(cfg, bus, consumer="t1")
    assert runner.consumer.group == "hedger"
    assert runner.inputs == [f"{namespace}:md:book:SOL", f"{namespace}:exec:1001"]
    intent_stream = bus.streams.intent(cfg.account_index)
    task = asyncio.create_task(run_until_stopped(runner, engine, bus, cfg.account_index))
    try:
        await bus.publish(bus.streams.book("SOL"), [
            Bbo(id="b1", ts_event=T0 + 10 * S, source="collector", market="SOL", bid_px=172.99, bid_sz=1,
                ask_px=173.01, ask_sz=1)])
        await bus.publish(exec_stream, [fill(11, 0.04)])  # maker now long 0.08 > 0.05
        evs = await read_stream(bus, intent_stream, 1)
        assert len(evs) == 1 and isinstance(evs[0], QuoteIntent)
        q = evs[0]
        assert q.strategy == "hedger" and q.ask_px == 173.01 and q.ask_sz == pytest.approx(0.06)
        assert REGISTRY.get_sample_value("lighter_stack_hedger_exposure", {"market": "SOL"}) == pytest.approx(0.08)
        assert REGISTRY.get_sample_value("lighter_stack_hedger_hedges_total",
                                         {"market": "SOL", "mode": "passive"}) >= 1
    finally:
        runner.stop()
        await asyncio.wait_for(task, 10)
    evs = await read_stream(bus, intent_stream, 2)
    last = evs[-1]
    assert isinstance(last, CancelIntent) and last.strategy == "hedger" and last.market is None
    assert T0 + 10 * S <= last.ts_event <= T0 + 11 * S  # stamped in event time (the engine's latest)


async def test_dry_run_publishes_nothing(redis_client, namespace, run_until):
    cfg = stack(namespace, dry_run=True)
    bus = Bus(redis_client, namespace)
    await bus.publish(bus.streams.exec(cfg.account_index), [fill(1, 0.3)])
    await bus.publish(bus.streams.book("SOL"), [
        Bbo(id="b1", ts_event=T0 + 2 * S, source="collector", market="SOL", bid_px=172.99, bid_sz=1,
            ask_px=173.01, ask_sz=1)])
    runner, engine = build(cfg, bus, consumer="t2")
    await run_until(run_until_stopped(runner, engine, bus, cfg.account_index), runner.stop,
                    lambda: engine.state("SOL")["hedges"]["passive"])
    assert engine.state("SOL")["hedges"]["passive"] == 1
    assert await bus.read_all(bus.streams.intent(cfg.account_index)) == []
