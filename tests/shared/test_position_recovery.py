"""Strategies take their position from the executor's ``PositionSnapshot`` when their fill
history is incomplete or gone (``shared/strategy_runner.py``: ``restore_fills``,
``SnapshotRecovery``), for each engine family (target, grid, maker, hedger), and say so (log at
WARNING, ``lighter_stack_strategy_positions_from_snapshot_total``). A snapshot that agrees with
the fills, or one that is history redelivered, changes nothing."""

from __future__ import annotations

import logging

import pytest
import strategy_kit
from prometheus_client import REGISTRY
from strategy_kit import T0, S

from services.hedger.runner import build as build_hedger
from services.maker.runner import build as build_maker
from services.strategy_grid.runner import build as build_grid
from services.strategy_trend.runner import build as build_trend
from shared.bus import Bus
from shared.config import StackConfig
from shared.events import PositionSnapshot
from shared.strategy_runner import SnapshotRecovery, restore_fills


def snap(i: int, strategy: str, position: float, avg: float = 100_000.0) -> PositionSnapshot:
    return PositionSnapshot(id=f"ps{i}", ts_event=T0 + i * S, source="executor", strategy=strategy, market="BTC",
                            position=position, avg_entry_price=avg if position else 0.0, account_position=position)


def adopted(strategy: str, when: str) -> float:
    return REGISTRY.get_sample_value("lighter_stack_strategy_positions_from_snapshot_total",
                                     {"strategy": strategy, "market": "BTC", "when": when}) or 0.0


async def test_restore_takes_the_last_snapshot_when_the_fills_do_not_add_up(redis_client, namespace, caplog):
    cfg = strategy_kit.stack("strategy-trend", namespace)
    bus = Bus(redis_client, namespace)
    # the first fill was trimmed (or lost): the fold says 0.0002, the executor 0.0004
    await bus.publish(bus.streams.exec(cfg.account_index), [
        strategy_kit.fill(2, "B", "trend"), snap(2, "trend", 0.0004, 100_500.0)])
    _, engine = build_trend(cfg, bus)
    before = adopted("trend", "restore")
    with caplog.at_level(logging.WARNING):
        assert await restore_fills(engine, bus, cfg.account_index) == 1
    assert engine.position("BTC") == pytest.approx(0.0004)
    assert engine.state("BTC")["avg_entry_price"] == pytest.approx(100_500.0)
    assert adopted("trend", "restore") == before + 1
    assert "position 0.0004 taken from the executor's snapshot ps2" in caplog.text
    assert not engine.awaiting_snapshot  # history was there: no live adoption pending


async def test_restore_with_agreeing_history_changes_nothing(redis_client, namespace):
    cfg = strategy_kit.stack("strategy-trend", namespace)
    bus = Bus(redis_client, namespace)
    await bus.publish(bus.streams.exec(cfg.account_index), [
        strategy_kit.fill(1, "A", "trend"), snap(1, "trend", 0.0002),
        strategy_kit.fill(2, "B", "trend"), snap(2, "trend", 0.0004)])
    runner, engine = build_trend(cfg, bus)
    before = adopted("trend", "restore")
    await restore_fills(engine, bus, cfg.account_index)
    assert engine.position("BTC") == pytest.approx(0.0004) and adopted("trend", "restore") == before
    # the group redelivers that history live: the older snapshot (0.0002) must not undo the fold
    for ev in (strategy_kit.fill(1, "A", "trend"), snap(1, "trend", 0.0002)):
        runner.engine.on_event(ev)
    assert engine.position("BTC") == pytest.approx(0.0004)


@pytest.mark.parametrize("build,strategy", [(build_trend, "trend"), (build_grid, "grid"), (build_maker, "maker"),
                                            (build_hedger, "hedger")])
async def test_no_history_takes_the_next_snapshot_and_a_reset_the_one_after(redis_client, namespace, caplog,
                                                                            build, strategy):
    cfg = StackConfig(namespace=namespace, markets=["BTC"],
                      services={s: {"http_port": 0} for s in ("strategy-trend", "strategy-grid", "maker", "hedger")})
    bus = Bus(redis_client, namespace)
    runner, engine = build(cfg, bus)
    assert isinstance(runner.engine, SnapshotRecovery)
    await restore_fills(engine, bus, cfg.account_index)  # Redis came back empty: no history at all
    assert engine.position("BTC") == 0.0 and "BTC" in engine.awaiting_snapshot
    before = adopted(strategy, "live")
    with caplog.at_level(logging.WARNING):
        runner.engine.on_event(snap(5, strategy, -0.0006, 99_000.0))  # the executor's (re)published snapshot
    assert engine.position("BTC") == pytest.approx(-0.0006)
    assert adopted(strategy, "live") == before + 1 and "taken from the executor's snapshot ps5" in caplog.text
    runner.engine.on_event(snap(6, "someone-else", 1.0))
    assert engine.position("BTC") == pytest.approx(-0.0006) and "BTC" not in engine.awaiting_snapshot
    # Redis lost its data while the strategy ran (fills lost with it): the next snapshot is taken
    await runner.on_bus_reset()
    assert "BTC" in engine.awaiting_snapshot
    runner.engine.on_event(snap(7, strategy, 0.0002, 101_000.0))
    assert engine.position("BTC") == pytest.approx(0.0002) and adopted(strategy, "live") == before + 2
    runner.engine.on_event(snap(8, strategy, 0.0))  # not awaited any more: the engine's own rules apply
    expected = 0.0 if strategy == "hedger" else 0.0002  # the hedger follows every snapshot of its own anyway
    assert engine.position("BTC") == pytest.approx(expected)


async def test_dry_run_never_takes_snapshots(redis_client, namespace):
    cfg = strategy_kit.stack("strategy-trend", namespace, dry_run=True)
    bus = Bus(redis_client, namespace)
    await bus.publish(bus.streams.exec(cfg.account_index), [snap(1, "trend", 0.0004)])
    runner, engine = build_trend(cfg, bus)
    await restore_fills(engine, bus, cfg.account_index)
    runner.engine.on_event(snap(2, "trend", 0.0008))
    assert engine.position("BTC") == 0.0 and not engine.awaiting_snapshot
