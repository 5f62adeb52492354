"""Executor engine: a stale target (older than ``max_intent_age_ms`` before the engine's clock) is
refused and never stored as a wish -- before the fix a 120 s-old target was recorded and traded as
soon as another strategy's target rebalanced the market."""

from __future__ import annotations

from executor_kit import T0, S, make_engine, of

from shared.events import Bbo, OrderRejected, TargetPosition


def bbo(t: int) -> Bbo:
    return Bbo(id=f"bbo-{t}", ts_event=t, source="collector", market="BTC", bid_px=115000.0, bid_sz=1.0,
               ask_px=115001.0, ask_sz=1.0)


def target(strategy: str, tgt: float, t: int) -> TargetPosition:
    return TargetPosition(id=f"tp-{strategy}-{t}-{tgt}", ts_event=t, source=strategy, strategy=strategy,
                          market="BTC", target=tgt, max_slippage_bps=10.0)


def test_a_stale_target_is_refused_not_stored_and_not_traded_by_another_strategys_rebalance():
    e = make_engine(max_intent_age_ms=60_000)
    now = T0 + 200 * S
    e.on_event(bbo(now))
    out = e.on_event(target("A", 0.001, now - 120 * S))  # 120 s old: stale
    (rej,) = of(out, OrderRejected)
    assert (rej.strategy, rej.code, rej.side, rej.size) == ("A", 0, "buy", 0.001)
    assert rej.reason.startswith("stale intent: ts_event 120.0s before the executor's clock (max_intent_age_ms 60000)")
    assert e.take_commands() == []
    assert ("A", "BTC") not in e.strats or e.strats[("A", "BTC")].target is None  # not a wish
    # B touches the market: only B's delta goes out, A's stale target is not traded with it
    e.on_event(target("B", 0.0005, now + S))
    (cmd,) = e.take_commands()
    assert (cmd.kind, cmd.tif, cmd.side, cmd.size) == ("create", "ioc", "buy", 50)  # 0.0005 BTC in lots
    assert [a[0] for a in e.orders[cmd.client_order_index].alloc] == ["B"]


def test_a_stale_target_leaves_the_strategys_earlier_target_standing():
    e = make_engine(max_intent_age_ms=60_000)
    now = T0 + 200 * S
    e.on_event(bbo(now))
    e.on_event(target("A", 0.0004, now))  # fresh: recorded and sent
    (cmd,) = e.take_commands()
    assert cmd.size == 40
    e.on_event(target("A", 0.003, now - 90 * S))  # a late, stale wish of A
    assert e.strats[("A", "BTC")].target == 0.0004
    assert e.take_commands() == []
    # the stale target's refusal is what a strategy re-sends after: a fresh one is traded
    e.on_event(target("A", 0.003, now + 2 * S))
    assert e.strats[("A", "BTC")].target == 0.003


def test_max_intent_age_0_disables_the_check():
    e = make_engine(max_intent_age_ms=0)
    now = T0 + 200 * S
    e.on_event(bbo(now))
    assert of(e.on_event(target("A", 0.001, T0)), OrderRejected) == []
    (cmd,) = e.take_commands()
    assert cmd.size == 100
