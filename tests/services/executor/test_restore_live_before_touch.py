"""Executor engine after a restart: a live intent that arrives after reconciliation but before
its market's first touch (an intent published while the executor was down, delivered by the
consumer group after the restore) is applied with the restored wishes at the first market data
instead of being refused for lack of market data and forgotten."""

from __future__ import annotations

from executor_kit import BTC, T0, S, make_engine

from services.executor.engine import Engine
from shared.events import Bbo, Control, OrderRejected, QuoteIntent, TargetPosition


def make() -> Engine:
    return make_engine((BTC,))


def bbo(t: int) -> Bbo:
    return Bbo(id=f"bbo-{t}", ts_event=t, source="collector", market="BTC", bid_px=115000.0, bid_sz=1.0,
               ask_px=115001.0, ask_sz=1.0)


def target(tgt: float, t: int, n: int = 0) -> TargetPosition:
    return TargetPosition(id=f"tp-{t}-{n}", ts_event=t, source="A", strategy="A", market="BTC", target=tgt)


def test_live_target_before_the_first_touch_replaces_the_restored_one_and_trades_at_it():
    e = make()
    t = T0 + 100 * S
    assert e.restore_intents([target(0.003, t - 5 * S)]) == 1
    # the same intent (or a newer one) delivered live after reconciliation, no BBO yet
    assert e.on_event(target(0.002, t - S, n=1)) == []  # no "no market data" refusal
    assert e.take_commands() == []
    assert e.restored_intents() == [target(0.002, t - S, n=1)]
    e.on_event(bbo(t))
    (cmd,) = e.take_commands()
    assert (cmd.kind, cmd.side, cmd.size, cmd.tif) == ("create", "buy", 200, "ioc")
    assert e.restored_intents() == []


def test_live_quote_before_the_first_touch_is_placed_at_it():
    e = make()
    t = T0 + 100 * S
    e.restore_intents([target(0.0, t - 5 * S)])
    q = QuoteIntent(id="q1", ts_event=t - S, source="mm", strategy="mm", market="BTC", bid_px=114000.0,
                    bid_sz=0.0002)
    assert e.on_event(q) == [] and e.take_commands() == []
    e.on_event(bbo(t))
    (cmd,) = e.take_commands()
    assert (cmd.side, cmd.price, cmd.tif, cmd.cause_id) == ("buy", 1140000, "post_only", "q1")


def test_without_a_pending_restore_or_while_halted_a_target_is_refused_as_before():
    e = make()
    (rej,) = [x for x in e.on_event(target(0.001, T0)) if isinstance(x, OrderRejected)]
    assert "no market data" in rej.reason
    k = make()
    t = T0 + 100 * S
    k.restore_intents([Control(id="k", ts_event=t - 9 * S, source="op", command="kill", reason="x"),
                       target(0.001, t - 5 * S)])
    k.set_reconciled(True, ts_ns=t - 2 * S)  # as the runner does after the restore: halted by the kill
    (rej,) = [x for x in k.on_event(target(0.002, t - S, n=1)) if isinstance(x, OrderRejected)]
    assert rej.reason == "executor halted: kill switch: x"
    assert k.take_commands() == []
