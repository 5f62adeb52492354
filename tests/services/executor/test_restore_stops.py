"""Executor restore: the latest StopLossIntent per (strategy, market) is a restored wish (the
shutdown canceled the stop on the venue): placed again at the market's first touch unless a
later size-0 intent cancelled it, a kill or flatten dropped it, it is stale, or the strategy no
longer holds the position it protects."""

from __future__ import annotations

from executor_kit import T0, S, make_engine

from services.executor.engine import Engine
from shared.events import Bbo, Control, PositionSnapshot, StopLossIntent

T = T0 + 100 * S


def bbo(t: int = T) -> Bbo:
    return Bbo(id=f"bbo-{t}", ts_event=t, source="collector", market="BTC", bid_px=115000.0, bid_sz=1.0,
               ask_px=115001.0, ask_sz=1.0)


def stop(n: int, t: int, size: float = 0.002, trigger: float = 113000.0, side: str = "sell",
         strategy: str = "copytrade") -> StopLossIntent:
    return StopLossIntent(id=f"sl{n}", ts_event=t, source="copytrade", strategy=strategy, market="BTC",
                          side=side, trigger_price=trigger, size=size)


def ctl(n: int, t: int, command: str, target: str = "copytrade") -> Control:
    return Control(id=f"ctl{n}", ts_event=t, source="cli", command=command, target=target)


def engine(position: float = 0.002, strategy: str = "copytrade") -> Engine:
    e = make_engine(max_intent_age_ms=60_000)
    e.restore([PositionSnapshot(id="ps", ts_event=T - 20 * S, source="executor", strategy=strategy,
                                market="BTC", position=position, avg_entry_price=115000.0)])
    e.set_account_position("BTC", position)  # as the start-up reconciliation does
    return e


def stops_placed(e: Engine) -> list[tuple[str, int, int]]:
    e.on_event(bbo())
    return [(c.side, c.size, c.trigger_price) for c in e.take_commands()
            if c.kind == "create" and c.order_type == "stop-loss"]


def test_the_latest_stop_is_placed_again_at_the_first_touch():
    e = engine()
    assert e.restore_intents([stop(1, T - 9 * S, trigger=112000.0), stop(2, T - 5 * S)]) == 1
    assert e.take_commands() == []
    assert stops_placed(e) == [("sell", 200, 1130000)]
    assert e.restored_intents() == []


def test_a_later_size_0_stop_cancels_it_and_a_stale_one_is_not_restored():
    e = engine()
    assert e.restore_intents([stop(1, T - 9 * S), stop(2, T - 5 * S, size=0.0)]) == 0
    assert stops_placed(e) == []
    e = engine()
    assert e.restore_intents([stop(1, T - 61 * S)]) == 1
    assert stops_placed(e) == []  # older than max_intent_age_ms at the first touch


def test_kill_and_flatten_drop_it_pause_keeps_it():
    for command in ("kill", "flatten"):
        e = engine()
        e.restore_intents([stop(1, T - 9 * S), ctl(2, T - 8 * S, command), ctl(3, T - 7 * S, "resume", "*")])
        assert stops_placed(e) == [], command
    e = engine()
    e.restore_intents([stop(1, T - 9 * S), ctl(2, T - 8 * S, "pause")])
    assert stops_placed(e) == [("sell", 200, 1130000)]  # live, a pause leaves the stop resting
    e = engine()
    e.restore_intents([ctl(1, T - 9 * S, "pause"), stop(2, T - 8 * S)])
    assert stops_placed(e) == []  # sent while paused: ignored, as live


def test_a_live_kill_flatten_or_stop_before_the_first_touch_supersedes_it():
    for live in (ctl(5, T - S, "kill"), ctl(5, T - S, "flatten"), stop(5, T - S, size=0.0)):
        e = engine()
        e.restore_intents([stop(1, T - 9 * S)])
        e.on_event(live)
        e.take_commands()
        assert stops_placed(e) == [], live
    e = engine()
    e.restore_intents([stop(1, T - 9 * S)])
    e.on_event(ctl(5, T - S, "pause"))
    assert stops_placed(e) == [("sell", 200, 1130000)]


def test_no_position_to_protect_no_stop_and_size_is_clipped_to_the_position():
    e = engine(position=0.0)  # the stop fired (or the position was closed) before the restart
    e.restore_intents([stop(1, T - 9 * S)])
    assert stops_placed(e) == []
    e = engine(position=-0.002)  # a sell stop protects a long only
    e.restore_intents([stop(1, T - 9 * S)])
    assert stops_placed(e) == []
    e = engine(position=0.001)
    e.restore_intents([stop(1, T - 9 * S)])
    assert stops_placed(e) == [("sell", 100, 1130000)]
