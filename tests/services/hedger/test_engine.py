"""Hedger engine rules on hand-built events (maker fills attributed to "maker")."""

from __future__ import annotations

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
             liquidity: str = "maker") -> Fill:
        i = self._id()
        return Fill(id=i, ts_event=T0 + int(t * S), source="executor", fill_id=f"f-{i}", strategy=strategy,
                    market="SOL", side=side, price=price, size=size, liquidity=liquidity)


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
    # emergency cooldown 0.75 s (not 6 s)
    assert run(eng, [f.bbo(11.5)]) == []
    out = run(eng, [f.bbo(11.8)])
    assert len(out) == 1 and out[0].target == pytest.approx(-0.14)  # executor has not filled yet: same target
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
