"""maker runner against a real Redis: book -> QuoteIntent on the intent stream, calibrated
ModelParams on the params stream, not-ok params from the stream counted, restart restores the
inventory, shutdown publishes one CancelIntent (inventory kept), dry run publishes nothing."""

from __future__ import annotations

import asyncio
from functools import partial

import msgspec
import pytest
import strategy_kit
from prometheus_client import REGISTRY
from strategy_kit import T0, S

from services.maker import calibrator as maker_calibrator
from services.maker.runner import build, run_until_stopped
from shared.bus import Bus
from shared.events import Bbo, CancelIntent, ModelParams, QuoteIntent

stack = partial(strategy_kit.stack, "maker", randomize_bps=0.0)
fill = partial(strategy_kit.fill, strategy="maker", liquidity="maker")


def bbo(i: int, t: float) -> Bbo:
    return Bbo(id=f"b{i}", ts_event=T0 + int(t * S), source="collector", market="BTC", bid_px=99_999.9, bid_sz=1,
               ask_px=100_000.1, ask_sz=1)


def mp(pid: str, t: float, ok: bool) -> ModelParams:
    ts = T0 + int(t * S)
    return ModelParams(id=pid, ts_event=ts, source="calibrator", strategy="maker", market="BTC", sigma=20.0, A=1.0,
                       k=0.005, gamma=0.01, tick_size=0.1, mid=100_000.0, interval_s=1.0, window_start=ts - 900 * S,
                       window_end=ts, ok=ok, problems=[] if ok else ["k fit failed"])


async def test_runner_quotes_calibrates_and_cancels_on_shutdown(redis_client, namespace, monkeypatch, read_stream):
    def stub(bbos, trades, market, ccfg, *, strategy, order_size, cause, source):
        return msgspec.structs.replace(mp(f"cal-{cause.id}", (cause.ts_event - T0) / S, ok=True), source=source)

    monkeypatch.setattr(maker_calibrator, "_default_calibrate", stub)
    cfg = stack(namespace, min_calibration_span_s=10, recalibrate_s=600)
    bus = Bus(redis_client, namespace)
    acct = cfg.account_index
    await bus.publish(bus.streams.exec(acct), [fill(1, "old"), fill(2, "other", strategy="grid")])
    runner, engine = build(cfg, bus, consumer="t1")
    assert runner.consumer.group == "maker"
    assert runner.inputs == [f"{namespace}:md:book:BTC", f"{namespace}:md:trade:BTC", f"{namespace}:exec:1001",
                             f"{namespace}:params:maker"]
    params_stream = bus.streams.params("maker")
    intent_stream = bus.streams.intent(acct)
    await bus.publish(params_stream, [mp("bad", 0.0, ok=False)])
    await bus.publish(bus.streams.book("BTC"), [bbo(1, 0.0), bbo(2, 10.0)])
    task = asyncio.create_task(run_until_stopped(runner, engine, bus, acct))
    try:
        intents = await read_stream(bus, intent_stream, 1)
        q = intents[0]
        assert isinstance(q, QuoteIntent) and q.strategy == "maker" and q.post_only
        assert q.bid_px is not None and q.ask_px is not None and q.bid_px < 99_999.9 < 100_000.1 < q.ask_px
        params = await read_stream(bus, params_stream, 2)
        assert [p.id for p in params] == ["bad", "cal-b2"]  # the calibrated params went to the params stream
        for _ in range(100):  # the engine takes the calibrated params from the stream and counts the bad one
            if engine.state("BTC")["params_rejected"] == 1 and engine.state("BTC")["params_ok"]:
                break
            await asyncio.sleep(0.05)
        st = engine.state("BTC")
        assert st["params_rejected"] == 1 and st["params_applied"] == 1
        assert engine.position("BTC") == pytest.approx(0.0002)  # restored from the exec stream
        labels = {"market": "BTC"}
        assert REGISTRY.get_sample_value("lighter_stack_maker_inventory_base_units", labels) == pytest.approx(0.0002)
        assert REGISTRY.get_sample_value("lighter_stack_maker_sigma_ticks_per_sqrt_second", labels) == 20.0
        assert REGISTRY.get_sample_value("lighter_stack_maker_params_rejected_total", labels) >= 1
        assert REGISTRY.get_sample_value("lighter_stack_maker_requotes_total", labels) >= 1
        assert REGISTRY.get_sample_value("lighter_stack_maker_quoted_spread_bps", labels) > 0
    finally:
        runner.stop()
        await asyncio.wait_for(task, 10)
    evs = [d.event for d in await bus.read_all(intent_stream)]
    last = evs[-1]
    assert isinstance(last, CancelIntent) and last.strategy == "maker" and last.market is None
    assert last.ts_event == T0 + 10 * S  # stamped in event time
    assert engine.position("BTC") == pytest.approx(0.0002)  # inventory kept


async def test_dry_run_publishes_no_intent(redis_client, namespace, run_until):
    cfg = stack(namespace, dry_run=True)
    bus = Bus(redis_client, namespace)
    await bus.publish(bus.streams.book("BTC"), [bbo(1, 0.0)])
    runner, engine = build(cfg, bus, consumer="t2")
    await run_until(run_until_stopped(runner, engine, bus, cfg.account_index), runner.stop,
                    lambda: engine.state("BTC")["bid_px"] is not None)
    assert engine.state("BTC")["requotes"] == 1
    assert await bus.read_all(bus.streams.intent(cfg.account_index)) == []


async def test_calibration_runs_off_the_consume_loop(redis_client, namespace, monkeypatch, read_stream):
    """A slow fit (1 s) runs in the worker thread: the quotes of later books go out meanwhile;
    the params are published when done and taken into use when read back."""
    import threading
    import time

    threads: list[str] = []

    def slow(bbos, trades, market, ccfg, *, strategy, order_size, cause, source):
        threads.append(threading.current_thread().name)
        time.sleep(1.0)
        return msgspec.structs.replace(mp(f"cal-{cause.id}", (cause.ts_event - T0) / S, ok=True), source=source)

    monkeypatch.setattr(maker_calibrator, "_default_calibrate", slow)
    cfg = stack(namespace, min_calibration_span_s=10, recalibrate_s=600, max_quote_age_s=1)
    bus = Bus(redis_client, namespace)
    runner, engine = build(cfg, bus, consumer="t3")
    assert engine.calibrator is None  # the engine does not calibrate itself
    params_stream, intent_stream = bus.streams.params("maker"), bus.streams.intent(cfg.account_index)
    task = asyncio.create_task(run_until_stopped(runner, engine, bus, cfg.account_index))
    try:
        await bus.publish(bus.streams.book("BTC"), [bbo(1, 0.0), bbo(2, 10.0)])  # b2: calibration due
        await read_stream(bus, intent_stream, 2)
        await bus.publish(bus.streams.book("BTC"), [bbo(3, 12.0)])  # quoted while the fit runs
        intents = await read_stream(bus, intent_stream, 3, timeout=0.8)  # b1; b2, b3 requote (age > 1 s)
        assert [q.causation_id for q in intents] == ["b1", "b2", "b3"] and await bus.read_all(params_stream) == []
        params = await read_stream(bus, params_stream, 1)
        assert [p.id for p in params] == ["cal-b2"]
        assert threads and threads[0].startswith("maker-calibration")
        for _ in range(100):
            if engine.state("BTC")["params_ok"]:
                break
            await asyncio.sleep(0.05)
        assert engine.state("BTC")["params_applied"] == 1 and engine.state("BTC")["sigma"] == 20.0
    finally:
        runner.stop()
        await asyncio.wait_for(task, 10)


async def test_inline_calibration_when_not_threaded(redis_client, namespace, monkeypatch, read_stream):
    """calibration_thread false (lockstep replays): the params are made at the triggering book,
    published with its quote, used at once and ignored when read back."""
    def stub(bbos, trades, market, ccfg, *, strategy, order_size, cause, source):
        return msgspec.structs.replace(mp(f"cal-{cause.id}", (cause.ts_event - T0) / S, ok=True), source=source)

    monkeypatch.setattr(maker_calibrator, "_default_calibrate", stub)
    cfg = stack(namespace, min_calibration_span_s=10, recalibrate_s=600, calibration_thread=False)
    bus = Bus(redis_client, namespace)
    runner, engine = build(cfg, bus, consumer="t4")
    assert engine.calibrator is not None
    await bus.publish(bus.streams.book("BTC"), [bbo(1, 0.0), bbo(2, 10.0)])
    task = asyncio.create_task(run_until_stopped(runner, engine, bus, cfg.account_index))
    try:
        params = await read_stream(bus, bus.streams.params("maker"), 1)
        assert [p.id for p in params] == ["cal-b2"] and engine.state("BTC")["params_ok"]
        await asyncio.sleep(0.3)  # read back: not applied twice
        assert engine.state("BTC")["params_applied"] == 1
    finally:
        runner.stop()
        await asyncio.wait_for(task, 10)
