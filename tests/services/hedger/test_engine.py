"""Hedger engine rules on hand-built events (maker fills attributed to "maker")."""

from __future__ import annotations

import msgspec
import pytest

from services.hedger.config import HedgerConfig
from services.hedger.engine import HedgerEngine, make_engine
from shared.config import ConfigError, StackConfig
from shared.events import (
    Bbo,
    CancelIntent,
    Event,
    Fill,
    GuardState,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    PositionSnapshot,
    QuoteIntent,
    TargetPosition,
    encode,
)

S = 1_000_000_000
T0 = 1_762_800_000 * S
BID, ASK = 172.99, 173.01  # SOL-like touch, mid 173.00


def engine(**over) -> HedgerEngine:
    return make_engine(StackConfig(services={"hedger": over}))


class Feed:
    """Builds events with increasing ids at a given event time."""

    def __init__(self) -> None:
        self.n = 0

    def _id(self) -> str:
        self.n += 1
        return f"ev{self.n:04d}"

    def bbo(self, t: float, bid: float = BID, ask: float = ASK, market: str = "SOL") -> Bbo:
        return Bbo(id=self._id(), ts_event=T0 + int(t * S), source="collector", market=market,
                   bid_px=bid, bid_sz=1.0, ask_px=ask, ask_sz=1.0)

    def fill(self, t: float, size: float, side: str = "buy", strategy: str = "maker", price: float = 173.0,
             liquidity: str = "maker", coi: int = 0) -> Fill:
        i = self._id()
        return Fill(id=i, ts_event=T0 + int(t * S), source="executor", fill_id=f"f-{i}", strategy=strategy,
                    market="SOL", side=side, price=price, size=size, liquidity=liquidity, client_order_index=coi)

    def ioc_fill(self, t: float, size: float, side: str = "sell", coi: int = 9) -> Fill:
        """A taker fill of the hedger's IOC ``coi``."""
        return self.fill(t, size, side=side, strategy="hedger", price=172.9, liquidity="taker", coi=coi)


def ioc_accepted(t: float, size: float, side: str = "sell", coi: int = 9, strategy: str = "hedger") -> OrderAccepted:
    """The executor's acceptance of the IOC it sent for a cross."""
    return OrderAccepted(id=f"acc{coi}-{t}", ts_event=T0 + int(t * S), source="executor", strategy=strategy,
                         market="SOL", client_order_index=coi, side=side, price=172.8, size=size,
                         time_in_force="ioc")


def ioc_canceled(t: float, remaining: float, coi: int = 9, strategy: str = "hedger") -> OrderCanceled:
    """The venue canceled the rest of the IOC (``remaining`` base units unfilled)."""
    return OrderCanceled(id=f"canc{coi}-{t}", ts_event=T0 + int(t * S), source="executor", strategy=strategy,
                         market="SOL", client_order_index=coi, remaining=remaining, reason="canceled")


def run(eng: HedgerEngine, events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for ev in events:
        out += eng.on_event(ev)
    return out


def test_below_trigger_nothing():
    eng, f = engine(), Feed()
    out = run(eng, [f.bbo(0), f.fill(0.1, 0.05), f.bbo(1), f.bbo(20)])
    assert out == []
    assert eng.exposure("SOL") == pytest.approx(0.05)
    assert eng.state("SOL")["over_since"] is None


def test_trigger_notional_floor_blocks_small_exposure():
    # 0.06 SOL at a 100 USD mid is 6 USD <= 7 USD: no hedge (seed trigger_notional)
    eng, f = engine(), Feed()
    out = run(eng, [f.bbo(0, 99.99, 100.01), f.fill(0.1, 0.06), f.bbo(1, 99.99, 100.01)])
    assert out == []


def test_above_trigger_passive_first_at_the_touch_then_cross_after_wait():
    eng, f = engine(), Feed()
    out = run(eng, [f.bbo(0), f.fill(0.1, 0.08)])
    assert len(out) == 1 and isinstance(out[0], QuoteIntent)
    q = out[0]
    # long inventory -> passive sell at the best ask, size toward target 0.02: 0.06
    assert q.strategy == "hedger" and q.post_only and q.bid_px is None
    assert q.ask_px == ASK and q.ask_sz == pytest.approx(0.06)
    # before the 0.25 s wait nothing happens
    assert run(eng, [f.bbo(0.2)]) == []
    # after it: pull the quote, wait for the cancel to be confirmed, then cross
    out = run(eng, [f.bbo(0.4)])
    assert len(out) == 1 and isinstance(out[0], CancelIntent) and out[0].market == "SOL"
    assert not any(isinstance(e, TargetPosition) for e in out)
    acc = OrderAccepted(id="acc", ts_event=T0 + int(0.15 * S), strategy="hedger", market="SOL",
                        client_order_index=7, side="sell", price=ASK, size=0.06, time_in_force="post_only")
    assert eng.on_event(acc) == []
    canc = OrderCanceled(id="canc", ts_event=T0 + int(0.6 * S), strategy="hedger", market="SOL",
                         client_order_index=7, remaining=0.06)
    out = eng.on_event(canc)
    assert len(out) == 1 and isinstance(out[0], TargetPosition)
    tp = out[0]
    assert tp.strategy == "hedger" and tp.target == pytest.approx(-0.06)
    assert tp.max_slippage_bps == 10.0 and tp.reason == "hedge:aggressive"
    assert tp.reference_price == pytest.approx(173.0)
    assert eng.state("SOL")["hedges"] == {"passive": 1, "aggressive": 1, "emergency": 0}


def test_unanswered_cancel_crosses_after_timeout():
    eng, f = engine(), Feed()
    run(eng, [f.bbo(0), f.fill(0.1, 0.08), f.bbo(0.4)])
    assert run(eng, [f.bbo(1.0)]) == []
    out = run(eng, [f.bbo(2.5)])  # 2 s after the cancel was sent
    assert [type(e) for e in out] == [TargetPosition]


def test_passive_fill_is_a_success_no_cross_and_cooldown():
    eng, f = engine(), Feed()
    run(eng, [f.bbo(0), f.fill(0.1, 0.08)])
    # the passive sell fills 0.04 (>= 60 % of the 0.06 clip) -> success: pull the rest, no cross
    out = run(eng, [f.fill(0.2, 0.04, side="sell", strategy="hedger", price=ASK)])
    assert [type(e) for e in out] == [CancelIntent]
    assert eng.position("SOL") == pytest.approx(-0.04)
    assert eng.exposure("SOL") == pytest.approx(0.04)
    assert eng.state("SOL")["passive"] is None
    # passive fill slippage vs the decision mid: sold 1 cent above 173.00 = -0.578 bps (earned)
    assert eng.state("SOL")["last_slippage_bps"] == pytest.approx(-0.01 / 173.0 * 1e4)


def test_clip_size_and_target_sign_short_inventory():
    eng, f = engine(prefer_passive=False), Feed()
    out = run(eng, [f.bbo(0), f.fill(0.1, 0.30, side="sell")])
    assert len(out) == 1 and isinstance(out[0], TargetPosition)
    # short 0.30: buy toward -0.02, clipped to max_clip 0.10
    assert out[0].target == pytest.approx(0.10)
    fill = f.fill(0.5, 0.10, side="buy", strategy="hedger", liquidity="taker")
    assert run(eng, [fill]) == []  # cooldown (6 s)
    assert eng.exposure("SOL") == pytest.approx(-0.20)
    out = run(eng, [f.bbo(5.9)])
    assert out == []
    out = run(eng, [f.bbo(6.2)])
    assert len(out) == 1 and out[0].target == pytest.approx(0.20)


def test_never_hedges_past_flat_and_unwinds_when_maker_inventory_falls():
    eng, f = engine(prefer_passive=False), Feed()
    run(eng, [f.bbo(0), f.fill(0.1, 0.09)])
    run(eng, [f.fill(0.2, 0.07, side="sell", strategy="hedger", liquidity="taker")])
    assert eng.exposure("SOL") == pytest.approx(0.02)
    # the maker sells its inventory: now the hedge alone is short 0.07 -> buy it back
    # (the goal is 0: the hedge never takes the maker's side nor exceeds its inventory)
    run(eng, [f.fill(1.0, 0.09, side="sell")])
    out = run(eng, [f.bbo(7.0)])
    assert len(out) == 1 and isinstance(out[0], TargetPosition)
    assert out[0].target == pytest.approx(0.0)


def test_min_clip_raises_small_hedge_within_bounds_or_skips():
    eng, f = engine(prefer_passive=False, markets={"SOL": {"min_clip_units": 0.061}}), Feed()
    out = run(eng, [f.bbo(0), f.fill(0.1, 0.064)])
    # 0.064 - 0.02 = 0.044 is below the 0.061 minimum: raised, still not past flat
    assert len(out) == 1 and out[0].target == pytest.approx(-0.061)
    eng, f = engine(prefer_passive=False, markets={"SOL": {"min_clip_units": 0.07, "max_clip_units": 0.1}}), Feed()
    out = run(eng, [f.bbo(0), f.fill(0.1, 0.064)])
    assert out == [] and eng.state("SOL")["skipped_min_clip"] == 1  # 0.07 would pass flat


def test_forced_cross_after_max_exposure_time():
    # nothing fills; over the trigger for max_exposure_s (3 s here) -> no passive any more, cross at once
    eng, f = engine(cooldown_s=1.0, passive_cancel_timeout_s=0.5, max_exposure_s=3.0), Feed()
    kinds = lambda out: [type(e).__name__ for e in out]  # noqa: E731
    assert kinds(run(eng, [f.bbo(0), f.fill(0.0, 0.08)])) == ["QuoteIntent"]
    assert kinds(run(eng, [f.bbo(0.3)])) == ["CancelIntent"]
    assert kinds(run(eng, [f.bbo(0.9)])) == ["TargetPosition"]  # cancel unanswered for 0.5 s
    assert run(eng, [f.bbo(1.5)]) == []  # cooldown 1 s
    assert kinds(run(eng, [f.bbo(2.0)])) == ["QuoteIntent"]  # 2 s over the trigger: passive again
    assert eng.state("SOL")["force_aggressive"] is False
    run(eng, [f.bbo(2.3), f.bbo(2.9)])
    out = run(eng, [f.bbo(4.0)])
    assert kinds(out) == ["TargetPosition"] and out[0].reason == "hedge:aggressive"
    assert eng.state("SOL")["force_aggressive"] is True and eng.state("SOL")["emergency"] is False
    assert eng.state("SOL")["hedges"] == {"passive": 2, "aggressive": 3, "emergency": 0}


def test_exposure_held_past_emergency_after_s_escalates():
    eng, f = engine(prefer_passive=False, cooldown_s=20.0), Feed()
    out = run(eng, [f.bbo(0), f.fill(0.0, 0.3)])
    assert out[0].reason == "hedge:aggressive" and out[0].target == pytest.approx(-0.1)
    out = run(eng, [ioc_accepted(0.1, 0.1), ioc_canceled(0.3, 0.1)])  # nothing filled
    assert [(e.reason, e.target) for e in out] == [("hedge:reset", 0.0)]
    assert run(eng, [f.bbo(9.9)]) == []  # normal cooldown (20 s)
    out = run(eng, [f.bbo(10.0)])  # 10 s over the trigger: emergency ignores the normal cooldown
    assert out[0].reason == "hedge:emergency" and out[0].target == pytest.approx(-0.14)
    assert out[0].max_slippage_bps == pytest.approx(12.0)


def test_emergency_after_guard_executes_within_cap_with_multiplied_clip():
    eng, f = engine(prefer_passive=True), Feed()
    run(eng, [f.bbo(0)])
    g = GuardState(id="g1", ts_event=T0 + 1 * S, guard="max_position", market="SOL", side="buy", engaged=True)
    g2 = GuardState(id="g2", ts_event=T0 + 5 * S, guard="max_position", market="SOL", side="buy", engaged=True)
    run(eng, [g, g2])  # re-reported: age counts from the FIRST engagement (seed overwrote it)
    out = run(eng, [f.fill(11.0, 0.30)])
    # guard engaged 10 s ago: emergency -> no passive, clip 0.10 x 1.4 = 0.14, offset 10 + 2 <= cap 12
    assert len(out) == 1 and isinstance(out[0], TargetPosition)
    tp = out[0]
    assert tp.reason == "hedge:emergency" and tp.target == pytest.approx(-0.14)
    assert tp.max_slippage_bps == 12.0 <= eng.cfg.max_slippage_bps
    assert eng.state("SOL")["emergency"] is True
    # the IOC fills nothing: its target is re-stated as the position (0)
    out = run(eng, [ioc_accepted(11.1, 0.14), ioc_canceled(11.3, 0.14)])
    assert [(e.reason, e.target) for e in out] == [("hedge:reset", 0.0)]
    # emergency cooldown 0.75 s (not 6 s)
    assert run(eng, [f.bbo(11.5)]) == []
    out = run(eng, [f.bbo(11.8)])
    assert len(out) == 1 and out[0].target == pytest.approx(-0.14)  # nothing filled: the same target
    # guard released and exposure still over: the exposure age (0.8 s) is short -> not an emergency
    rel = GuardState(id="g3", ts_event=T0 + 12 * S, guard="max_position", market="SOL", side="buy", engaged=False)
    run(eng, [rel])
    assert eng.state("SOL")["emergency"] is False


def test_config_refuses_an_emergency_beyond_the_cap():
    with pytest.raises(ConfigError, match=r"services\.hedger\.emergency_extra_bps"):
        engine(emergency_extra_bps=6.0)  # the seed's 10 + 6 = 16 > 12
    with pytest.raises(ConfigError, match=r"services\.hedger\.max_slippage_bps"):
        engine(price_offset_bps=13.0)
    with pytest.raises(ConfigError, match=r"services\.hedger\.markets\.SOL"):
        engine(markets={"SOL": {"target_units": 0.05}})
    HedgerConfig(price_offset_bps=7.0, max_slippage_bps=9.0, emergency_extra_bps=2.0)  # seed guard mode fits


def test_position_snapshot_sets_positions_and_other_strategies_are_ignored():
    eng, f = engine(), Feed()
    run(eng, [f.bbo(0), f.fill(0.1, 0.5, strategy="trend")])
    assert eng.exposure("SOL") == 0.0
    snap = PositionSnapshot(id="p1", ts_event=T0 + S, strategy="maker", market="SOL", position=0.03)
    run(eng, [snap])
    assert eng.maker_inventory("SOL") == pytest.approx(0.03)
    dup = f.fill(2, 0.01)
    run(eng, [dup, dup])
    assert eng.maker_inventory("SOL") == pytest.approx(0.04)


def test_dry_run_decides_but_emits_nothing():
    eng, f = engine(dry_run=True), Feed()
    out = run(eng, [f.bbo(0), f.fill(0.1, 0.3), f.bbo(1), f.bbo(9), f.bbo(20)])
    assert out == []
    h = eng.state("SOL")["hedges"]
    assert h["passive"] >= 1 and h["aggressive"] + h["emergency"] >= 1


def test_deterministic():
    def go() -> bytes:
        eng, f = engine(cooldown_s=1.0), Feed()
        evs: list[Event] = [f.bbo(0)]
        for i in range(40):
            t = 0.3 * i
            evs.append(f.bbo(t, BID + 0.01 * (i % 3), ASK + 0.01 * (i % 3)))
            if i % 7 == 0:
                evs.append(f.fill(t, 0.064, side="buy" if i % 14 else "sell"))
        return b"".join(encode(e) for e in run(eng, evs))

    a = go()
    assert a and a == go()


def test_config_checks_defaults_against_changed_fields():
    # only the offset changes: the default emergency extra (2) now exceeds the default cap (12)
    with pytest.raises(ConfigError, match=r"services\.hedger\.emergency_extra_bps"):
        engine(price_offset_bps=11.0)


# ---------------------------------------------------------------------------- no standing target


def crossing(**over) -> tuple[HedgerEngine, Feed]:
    """An engine that crossed at t=0: maker long 0.3 SOL -> TargetPosition(hedger, -0.1)."""
    eng, f = engine(prefer_passive=False, **over), Feed()
    out = run(eng, [f.bbo(0), f.fill(0.0, 0.3)])
    assert [(e.reason, e.target) for e in out] == [("hedge:aggressive", pytest.approx(-0.1))]
    return eng, f


def test_partial_ioc_fill_re_states_the_target_as_the_position():
    eng, f = crossing()
    # the IOC of 0.1 fills 0.04, then the venue cancels the rest: not over before the cancel
    assert run(eng, [ioc_accepted(0.1, 0.1), f.ioc_fill(0.2, 0.04)]) == []
    assert eng.state("SOL")["cross"] is not None and eng.state("SOL")["resets"] == 0
    out = run(eng, [ioc_canceled(0.3, 0.06)])
    assert len(out) == 1 and isinstance(out[0], TargetPosition)
    tp = out[0]
    assert tp.strategy == "hedger" and tp.reason == "hedge:reset"
    assert tp.target == pytest.approx(-0.04) == eng.position("SOL")
    assert eng.state("SOL")["cross"] is None and eng.state("SOL")["stated_target"] == pytest.approx(-0.04)
    assert run(eng, [f.bbo(0.5), f.bbo(1.0)]) == []  # said once


def test_no_reset_before_the_ioc_ended_when_the_cancel_comes_before_its_fills():
    eng, f = crossing()
    # the cancel says 0.1 - 0.06 = 0.04 filled, but that fill was not seen yet: re-stating now
    # would trade it back when the executor gets it after the fill
    assert run(eng, [ioc_accepted(0.1, 0.1), ioc_canceled(0.2, 0.06), f.bbo(0.3), f.bbo(1.5)]) == []
    out = run(eng, [f.ioc_fill(1.6, 0.03)])
    assert out == []  # 0.03 of the 0.04 seen
    out = run(eng, [f.ioc_fill(1.7, 0.01)])
    assert [(e.reason, e.target) for e in out] == [("hedge:reset", pytest.approx(-0.04))]


def test_a_fully_filled_ioc_leaves_nothing_to_re_state():
    eng, f = crossing()
    out = run(eng, [ioc_accepted(0.1, 0.1), f.ioc_fill(0.2, 0.06), f.ioc_fill(0.2, 0.04), f.bbo(0.5), f.bbo(3.0)])
    assert out == []
    st = eng.state("SOL")
    assert st["cross"] is None and st["resets"] == 0 and st["stated_target"] == pytest.approx(-0.1)
    assert eng.position("SOL") == pytest.approx(-0.1)


def test_ioc_refused_locally_or_by_the_venue_re_states_at_once():
    eng, f = crossing()
    rej = OrderRejected(id="r1", ts_event=T0 + S // 10, source="executor", strategy="hedger", market="SOL",
                        client_order_index=0, side="sell", price=0.0, size=0.1, code=0,
                        reason="no market data (BBO) for SOL yet")
    assert [(e.reason, e.target) for e in run(eng, [rej])] == [("hedge:reset", 0.0)]
    eng, f = crossing()
    rej = OrderRejected(id="r2", ts_event=T0 + S // 10, source="executor", strategy="hedger", market="SOL",
                        client_order_index=9, side="sell", price=172.8, size=0.1, code=21706, reason="refused")
    assert [(e.reason, e.target) for e in run(eng, [rej])] == [("hedge:reset", 0.0)]


def test_cooldown_runs_from_the_cross_and_the_next_cross_is_fresh():
    eng, f = crossing(cooldown_s=6.0, emergency_after_s=100.0)
    out = run(eng, [ioc_accepted(0.1, 0.1), f.ioc_fill(0.2, 0.04), ioc_canceled(0.3, 0.06)])
    assert [e.reason for e in out] == ["hedge:reset"]
    # still over the trigger (0.3 - 0.04): no new hedge during the 6 s cooldown of the cross at 0
    assert run(eng, [f.bbo(1.0), f.bbo(5.9)]) == []
    out = run(eng, [f.bbo(6.0)])
    # the next cross is the hedger's own decision on the positions now: -0.04 - 0.1
    assert [(e.reason, e.target) for e in out] == [("hedge:aggressive", pytest.approx(-0.14))]


def test_no_new_cross_while_the_ioc_is_in_flight():
    eng, f = crossing(cooldown_s=1.0, emergency_after_s=100.0)
    assert run(eng, [ioc_accepted(0.1, 0.1), f.bbo(1.5), f.bbo(3.0)]) == []  # accepted, end not reported
    out = run(eng, [ioc_canceled(3.1, 0.1)])
    assert [e.reason for e in out] == ["hedge:reset"]
    assert [e.reason for e in run(eng, [f.bbo(3.2)])] == ["hedge:aggressive"]


def test_an_unanswered_cross_is_not_re_stated_and_its_late_ioc_is_followed():
    # the executor holds the IOC back (self-trade guard: our crossing quotes are canceled first)
    eng, f = crossing(cooldown_s=6.0, emergency_after_s=100.0)
    assert run(eng, [f.bbo(1.0), f.bbo(2.5)]) == []  # 2 s unanswered: over, but no re-statement
    assert eng.state("SOL")["cross"] is None and eng.state("SOL")["resets"] == 0
    # the held IOC goes out later: followed, no new hedge while it lives, re-stated after its end
    assert run(eng, [ioc_accepted(2.6, 0.1), f.bbo(2.7), f.ioc_fill(2.8, 0.03)]) == []
    out = run(eng, [ioc_canceled(2.9, 0.07)])
    assert [(e.reason, e.target) for e in out] == [("hedge:reset", pytest.approx(-0.03))]
    assert run(eng, [f.bbo(5.9)]) == []  # cooldown of the cross at 0
    assert [(e.reason, e.target) for e in run(eng, [f.bbo(6.0)])] == [("hedge:aggressive", pytest.approx(-0.13))]


def test_passive_fills_are_re_stated_once_the_pulled_quote_ended():
    eng, f = engine(cooldown_s=1.0), Feed()
    run(eng, [f.bbo(0), f.fill(0.0, 0.3)])  # passive sell 0.1 at the ask (never confirmed accepted)
    assert [type(e).__name__ for e in run(eng, [f.bbo(0.3)])] == ["CancelIntent"]  # not filled: pulled
    out = run(eng, [f.bbo(2.4)])  # the cancel went unanswered for 2 s: cross
    assert [(e.reason, e.target) for e in out] == [("hedge:aggressive", pytest.approx(-0.1))]
    assert run(eng, [ioc_accepted(2.5, 0.1), f.ioc_fill(2.6, 0.1)]) == []  # target -0.1 == position
    # the pulled quote is followed until its own timeout (2 s after the cross): nothing new before
    assert run(eng, [f.bbo(4.3)]) == [] and eng.state("SOL")["pulling"] is True
    # next attempt: a passive quote that fills 0.07 of 0.1 (a success), the rest is pulled
    out = run(eng, [f.bbo(4.5)])
    assert [type(e).__name__ for e in out] == ["QuoteIntent"] and out[0].ask_sz == pytest.approx(0.1)
    acc = OrderAccepted(id="a8", ts_event=T0 + int(4.6 * S), source="executor", strategy="hedger", market="SOL",
                        client_order_index=8, side="sell", price=ASK, size=0.1, time_in_force="post_only")
    out = run(eng, [acc, f.fill(4.7, 0.07, side="sell", strategy="hedger", price=ASK, coi=8)])
    assert [type(e).__name__ for e in out] == ["CancelIntent"]
    assert run(eng, [f.bbo(4.8)]) == []  # the rest may still fill: no reset yet
    out = run(eng, [f.fill(4.85, 0.01, side="sell", strategy="hedger", price=ASK, coi=8),
                    OrderCanceled(id="c8", ts_event=T0 + int(4.9 * S), source="executor", strategy="hedger",
                                  market="SOL", client_order_index=8, remaining=0.02)])
    # the executor held -0.1 (the cross); the position is now -0.18: re-stated
    assert [(e.reason, e.target) for e in out] == [("hedge:reset", pytest.approx(-0.18))]


def test_fills_of_orders_not_the_hedgers_do_not_re_state():
    eng, f = crossing()
    run(eng, [ioc_accepted(0.1, 0.1), f.ioc_fill(0.2, 0.1)])  # done, target == position
    # an operator flatten: the executor trades the hedger's position itself; the hedger must not
    # answer with a target while that IOC lives
    assert run(eng, [f.fill(1.0, 0.05, side="buy", strategy="hedger", liquidity="taker", coi=33)]) == []
    assert eng.state("SOL")["resets"] == 0
    # with its acceptance seen, the IOC is followed and re-stated after its end
    out = run(eng, [ioc_accepted(1.1, 0.05, side="buy", coi=34, strategy="hedger,maker"),
                    f.fill(1.2, 0.02, side="buy", strategy="hedger", liquidity="taker", coi=34)])
    assert out == []
    out = run(eng, [ioc_canceled(1.3, 0.03, coi=34, strategy="hedger,maker")])
    assert [(e.reason, e.target) for e in out] == [("hedge:reset", pytest.approx(-0.03))]


def test_after_a_restart_the_held_target_is_re_stated_once_settled():
    eng, f = engine(), Feed()
    # history: a cross whose IOC filled 0.04 of 0.1 before the stop; the held target is unknown
    for ev in (f.fill(0.0, 0.3), ioc_accepted(0.1, 0.1), f.ioc_fill(0.2, 0.04)):
        eng.fold(ev)
    assert eng.position("SOL") == pytest.approx(-0.04)
    out = run(eng, [f.bbo(100.0, 172.99, 173.01)])
    assert [type(e).__name__ for e in out] == ["QuoteIntent"]  # exposure 0.26: a passive hedge
    assert eng.state("SOL")["resets"] == 0
    eng2, f2 = engine(trigger_notional_usd=1e9), Feed()  # never hedges: only the restart reset
    eng2.fold(f2.fill(0.0, 0.04, side="sell", strategy="hedger"))
    assert run(eng2, [f2.bbo(100.0), f2.bbo(101.9)]) == []  # settling 2 s (passive_cancel_timeout_s)
    out = run(eng2, [f2.bbo(102.0)])
    assert [(e.reason, e.target) for e in out] == [("hedge:reset", pytest.approx(-0.04))]
    assert run(eng2, [f2.bbo(103.0)]) == []
    eng3, f3 = engine(), Feed()
    eng3.fold(f3.fill(0.0, 0.04))  # only the maker's history: the hedger never sent a target
    assert run(eng3, [f3.bbo(100.0), f3.bbo(103.0)]) == []


def test_dry_run_never_re_states():
    eng, f = engine(dry_run=True, prefer_passive=False), Feed()
    eng.fold(f.fill(0.0, 0.04, side="sell", strategy="hedger"))
    assert run(eng, [f.bbo(0), f.fill(0.0, 0.3), f.bbo(5.0), f.bbo(30.0)]) == []


def test_unlisted_market_is_hedged_with_thresholds_from_notional_usd():
    from shared.markets import guess_market

    lim = HedgerConfig().derived_limits(0.25, guess_market("DOGE", 0.25))  # lot 1 DOGE; 25 USD = 100 DOGE
    assert (lim.trigger_units, lim.target_units, lim.max_clip_units, lim.min_clip_units) == (250.0, 100.0, 500.0, 42.0)
    e = make_engine(StackConfig(markets=["DOGE"]))
    assert e.markets == ["DOGE", "SOL"]  # the stack's markets and those with thresholds
    f = Feed()
    doge = [f.bbo(0.0, 0.2499, 0.2501, market="DOGE"),
            Fill(id="mf1", ts_event=T0 + S, source="executor", fill_id="mf1", strategy="maker", market="DOGE",
                 side="buy", price=0.25, size=400.0, liquidity="maker", client_order_index=1)]
    out = run(e, doge)
    assert out and all(getattr(o, "market", "DOGE") == "DOGE" for o in out)
    assert e.maker_inventory("DOGE") == 400.0
    quiet = make_engine(StackConfig(markets=["DOGE"]))
    assert run(quiet, [doge[0], msgspec.structs.replace(doge[1], size=200.0)]) == []  # below the 250 DOGE trigger
