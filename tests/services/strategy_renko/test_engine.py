"""RenkoEngine on hand-built brick sequences (brick size pinned to 1 USD unless a test is about
the size): bricks, brick size, divergence and its strength, entries, exits, position, no-spam,
determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.strategy_renko.config import RenkoConfig
from services.strategy_renko.engine import (
    RenkoBuilder,
    RenkoEngine,
    divergence_strength,
    find_divergences,
    make_engine,
)
from shared.config import ConfigError, StackConfig
from shared.events import Bbo, Fill, OrderRejected, TargetPosition, encode

S = 1_000_000_000
T0 = 1_757_899_995 * S  # a 15 s boundary

# Mids (one per second) that, with brick size 1 and the 2-brick reversal, form: 40 down bricks
# 100 -> 60 (#1..#40), up 62..65 (#41..#44, reversal brick 61->62), down 64->63 .. 59 (#45..#49),
# then the up reversal 60->61 (#50), which confirms the swing low 59 (#49) below the swing low
# 60 (#40): a lower low in price. AO at #49 is far above AO at #40: a bullish divergence.
DIVERGENCE_PATH = [100.0] + [100.0 - k for k in range(1, 41)] + [62.0, 63.0, 64.0, 65.0] + \
    [63.0, 62.0, 61.0, 60.0, 59.0] + [61.0]


def fixed_brick(engine: RenkoEngine, size: float = 1.0) -> RenkoEngine:
    """Pin the brick size (hand-built brick sequences)."""
    engine._brick_size = lambda mid, st: size  # type: ignore[method-assign]
    return engine


class Feed:
    """Drives an engine with Bbos and exec events; keeps every output."""

    def __init__(self, cfg: RenkoConfig | None = None, markets=("BTC",), brick: float | None = 1.0) -> None:
        self.e = RenkoEngine(cfg or RenkoConfig(), list(markets))
        if brick is not None:
            fixed_brick(self.e, brick)
        self.n = 0
        self.t = 0.0
        self.out: list[TargetPosition] = []

    def bbo(self, mid: float, t_s: float | None = None, market: str = "BTC") -> list[TargetPosition]:
        self.n += 1
        self.t = self.t + 1 if t_s is None else t_s
        ev = Bbo(id=f"bbo-{self.n}", ts_event=T0 + round(self.t * S), source="collector", market=market,
                 bid_px=mid - 0.005, bid_sz=1.0, ask_px=mid + 0.005, ask_sz=1.0)
        got = self.e.on_event(ev)
        self.out += got
        return got

    def path(self, mids) -> list[TargetPosition]:
        got = []
        for m in mids:
            got += self.bbo(m)
        return got

    def fill(self, side: str, size: float, price: float, fill_id: str | None = None,
             strategy: str = "renko", market: str = "BTC") -> list:
        self.n += 1
        ev = Fill(id=f"fill-ev-{self.n}", ts_event=T0 + round(self.t * S), source="executor",
                  fill_id=fill_id or f"f{self.n}", strategy=strategy, market=market, side=side,
                  price=price, size=size)
        return self.e.on_event(ev)

    def reject(self, market: str = "BTC") -> list:
        self.n += 1
        return self.e.on_event(OrderRejected(id=f"rej-{self.n}", ts_event=T0 + round(self.t * S), strategy="renko",
                                             market=market, client_order_index=self.n, side="buy",
                                             price=1.0, size=0.0002, code=21706, reason="bad amount"))


def ao_reference(medians: list[float], fast: int = 5, slow: int = 34) -> list[float | None]:
    """AO from scratch: SMA(fast) − SMA(slow) of the medians, None while warming up."""
    m = np.array(medians)
    out: list[float | None] = []
    for i in range(len(m)):
        out.append(None if i + 1 < slow else float(m[i + 1 - fast:i + 1].mean() - m[i + 1 - slow:i + 1].mean()))
    return out


# ------------------------------------------------------------------------------- bricks


def test_single_brick_needs_a_full_brick_size():
    r = RenkoBuilder()
    assert r.update(1, 100.0, 1.0) == []  # anchor
    assert r.update(2, 100.99, 1.0) == []
    [b] = r.update(3, 101.0, 1.0)
    assert (b.seq, b.ts, b.open, b.close, b.direction, b.size) == (1, 3, 100.0, 101.0, 1, 1.0)
    assert (b.high, b.low, b.median) == (101.0, 100.0, 100.5)


def test_several_bricks_on_one_move_close_at_exact_steps():
    r = RenkoBuilder()
    r.update(1, 100.0, 1.0)
    bricks = r.update(2, 103.7, 1.0)
    assert [(b.open, b.close) for b in bricks] == [(100.0, 101.0), (101.0, 102.0), (102.0, 103.0)]
    assert r.last_close == 103.0  # measured from the last brick close, not the last price
    assert r.update(3, 103.9, 1.0) == []
    assert [b.close for b in r.update(4, 98.2, 1.0)] == [101.0, 100.0, 99.0]  # reversal + 2 more
    down = [b for b in r.update(5, 96.0, 1.0)]
    assert [(b.open, b.close, b.direction) for b in down] == [(99.0, 98.0, -1), (98.0, 97.0, -1), (97.0, 96.0, -1)]


def test_standard_reversal_needs_two_brick_sizes():
    r = RenkoBuilder(reversal_bricks=2)
    r.update(1, 100.0, 1.0)
    r.update(2, 103.0, 1.0)  # up bricks to 103, last open 102
    assert r.update(3, 102.0, 1.0) == []  # one size back: no brick
    assert r.update(4, 101.01, 1.0) == []
    [b] = r.update(5, 101.0, 1.0)  # two sizes back: the reversal brick opens at the last open
    assert (b.open, b.close, b.direction) == (102.0, 101.0, -1)


def test_seed_style_one_brick_reversal():
    r = RenkoBuilder(reversal_bricks=1)
    r.update(1, 100.0, 1.0)
    r.update(2, 103.0, 1.0)
    [b] = r.update(3, 102.0, 1.0)
    assert (b.open, b.close, b.direction) == (103.0, 102.0, -1)


def test_fallback_brick_size_before_atr_then_atr():
    cfg = RenkoConfig(min_brick_bps=0.0)
    f = Feed(cfg, brick=None)
    f.bbo(100_000.0, t_s=1)
    assert f.e.state("BTC")["brick_size"] == pytest.approx(100.0)  # 0.1 % of the mid
    f.bbo(100_099.0, t_s=2)
    assert f.e.state("BTC")["bricks"] == 0
    f.bbo(100_101.0, t_s=3)  # size is 0.1 % of this mid: 100.101
    assert f.e.state("BTC")["bricks"] == 1 and f.e.state("BTC")["atr"] is None
    # 15 s candles rising 4 USD each: TR = 4 every candle, ATR(14) ready at the 15th candle
    for k in range(1, 17):
        f.bbo(100_101.0 + 4 * k, t_s=15 * k + 1)
    st = f.e.state("BTC")
    assert st["atr"] == pytest.approx(4.0)
    assert st["brick_size"] == pytest.approx(4.0)  # ATR × 1.0; brick closes never enter the ATR


def test_min_brick_floor_when_the_market_is_frozen():
    f = Feed(brick=None)  # min_brick_bps 0.5
    for k in range(20):
        f.bbo(100_000.0, t_s=15 * k + 1)  # flat candles: ATR 0
    st = f.e.state("BTC")
    assert st["atr"] == 0.0 and st["brick_size"] == pytest.approx(5.0)


# ------------------------------------------------------------------------------- divergence


def test_bullish_divergence_compares_ao_at_the_two_swing_lows():
    #        0     1    2(low)  3    4     5    6    7(low)  8
    closes = [10.0, 9.0, 8.0, 9.0, 10.0, 9.0, 8.0, 7.0, 8.0]
    ao = [-1.0, -2.0, -3.0, -2.5, -2.0, -2.2, -2.1, -2.0, -1.9]
    [d] = find_divergences([(i + 1, c, a) for i, (c, a) in enumerate(zip(closes, ao, strict=True))], 1.0)
    assert (d.kind, d.swing_seq, d.price1, d.price2, d.ao1, d.ao2) == ("bullish", 8, 8.0, 7.0, -3.0, -2.0)
    # s_price = 1/(2·1) = 0.5, s_ao = min(1, 1/1) = 1 -> sqrt(0.5)
    assert d.strength == pytest.approx(math.sqrt(0.5))


def test_no_divergence_when_ao_only_rises_on_the_last_brick():
    closes = [10.0, 9.0, 8.0, 9.0, 10.0, 9.0, 8.0, 7.0, 8.0]
    ao = [-1.0, -2.0, -3.0, -2.5, -2.0, -2.2, -2.6, -3.5, -3.0]  # AO lower at the second low, rising now
    assert find_divergences([(i, c, a) for i, (c, a) in enumerate(zip(closes, ao, strict=True))], 1.0) == []


def test_bearish_divergence_mirrored_and_strength_scale():
    closes = [1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0]
    ao = [1.0, 2.0, 3.0, 2.5, 2.0, 2.2, 2.6, 2.8, 2.5]
    [d] = find_divergences([(i, c, a) for i, (c, a) in enumerate(zip(closes, ao, strict=True))], 1.0)
    assert (d.kind, d.price1, d.price2, d.ao1, d.ao2) == ("bearish", 3.0, 4.0, 3.0, 2.8)
    assert d.strength == pytest.approx(math.sqrt(0.5 * 0.2))
    assert divergence_strength(4.0, 3.0, 1.0) == 1.0  # capped
    assert divergence_strength(0.0, 3.0, 1.0) == 0.0
    assert divergence_strength(1.0, 1.0, 0.0) == 0.0


def test_swings_without_ao_are_not_used():
    closes = [10.0, 9.0, 8.0, 9.0, 10.0, 9.0, 8.0, 7.0, 8.0]
    ao = [None, None, None, None, -2.0, -2.2, -2.1, -2.0, -1.9]
    assert find_divergences([(i, c, a) for i, (c, a) in enumerate(zip(closes, ao, strict=True))], 1.0) == []


def test_divergences_equal_a_brute_force_search_of_all_swings():
    """find_divergences scans back for the last two swings only: same result as listing every
    swing (close strictly beyond both neighbours), keeping those with an AO, taking the last two."""
    import random

    def brute(points, brick):
        out = []
        for kind, sign in (("bullish", -1), ("bearish", 1)):
            sw = [i for i in range(1, len(points) - 1) if points[i][2] is not None
                  and points[i][1] * sign > points[i - 1][1] * sign and points[i][1] * sign > points[i + 1][1] * sign]
            if len(sw) < 2:
                continue
            (_, p1, a1), (seq2, p2, a2) = points[sw[-2]], points[sw[-1]]
            if (p2 < p1 and a2 > a1) if kind == "bullish" else (p2 > p1 and a2 < a1):
                s = divergence_strength(p2 - p1, a2 - a1, brick)
                out.append((kind, seq2, p1, p2, a1, a2, s))
        return out

    rng = random.Random(11)
    found = 0
    for _ in range(3000):
        pts = [(k, float(rng.randint(0, 6)), None if rng.random() < 0.2 else float(rng.randint(-3, 3)))
               for k in range(rng.randint(0, 20))]
        got = [(d.kind, d.swing_seq, d.price1, d.price2, d.ao1, d.ao2, d.strength) for d in find_divergences(pts, 1.0)]
        assert got == brute(pts, 1.0), pts
        found += len(got)
    assert found > 300


def test_skipping_bricks_without_a_new_swing_changes_nothing(monkeypatch):
    """The engine looks for divergences only when a brick confirms a new swing: on a long random
    walk with fills (entries, exits) its intents and divergence counts equal those of looking on
    every brick."""
    import random

    from services.strategy_renko import engine as renko_engine

    def run() -> tuple[list[bytes], dict]:
        f = Feed()
        rng = random.Random(4)
        mid = 100.0
        for _ in range(6000):
            mid = max(10.0, mid + rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, -1.5]))
            for tp in f.bbo(mid):
                pos = f.e.position("BTC")
                if abs(tp.target - pos) > 1e-12:
                    f.fill("buy" if tp.target > pos else "sell", abs(tp.target - pos), mid)
        st = f.e._m["BTC"]
        return [encode(tp) for tp in f.out], {"div": dict(st.divergences), "used": dict(st.used_swing),
                                               "bricks": st.bricks}

    fast = run()
    monkeypatch.setattr(renko_engine, "_new_swing", lambda window: True)
    full = run()
    assert fast == full
    assert sum(fast[1]["div"].values()) > 20 and len(fast[0]) > 10


def test_engine_sees_the_divergence_once_and_enters_long():
    f = Feed()
    got = f.path(DIVERGENCE_PATH[:-1])
    assert got == [] and f.e.state("BTC")["bricks"] == 49
    [tp] = f.bbo(DIVERGENCE_PATH[-1])
    st = f.e.state("BTC")
    assert st["bricks"] == 50 and st["divergences"] == {"bullish": 1, "bearish": 0}
    # AO at the swing bricks, from scratch (brick medians: down bricks k -> 100.5 − k, ...)
    closes = [100.0 - k for k in range(1, 41)] + [62.0, 63, 64, 65, 63, 62, 61, 60, 59, 61]
    opens = [100.0 - k + 1 for k in range(1, 41)] + [61.0, 62, 63, 64, 64, 63, 62, 61, 60, 60]
    ao = ao_reference([(o + c) / 2 for o, c in zip(opens, closes, strict=True)])
    assert ao[39] == pytest.approx(-14.5)  # SMA5 lags 2, SMA34 16.5 on a falling line
    assert ao[48] > ao[39]
    assert st["ao"] == pytest.approx(ao[49])
    assert f"ao={ao[39]:.4g}->{ao[48]:.4g}" in tp.reason
    assert tp.target == pytest.approx(0.0004) and tp.reference_price == pytest.approx(61.0)
    assert tp.reason.startswith("entry long divergence=bullish")
    # strength: price 1 brick (0.5), AO gap ≥ 1 brick (1) -> 0.707, × 1.5 near the lower band -> 1
    raw = math.sqrt(0.5)
    assert f"raw={raw:.3f}" in tp.reason
    assert st["last_divergence_strength"] in (pytest.approx(raw), 1.0)
    # a later mid without a new swing sees nothing new
    assert f.bbo(61.2) == [] and f.e.state("BTC")["divergences"]["bullish"] == 1


def test_weak_divergence_is_not_traded():
    f = Feed(RenkoConfig(min_divergence_strength=1.0, bb_enhancement_factor=1.0))
    assert f.path(DIVERGENCE_PATH) == []
    assert f.e.state("BTC")["divergences"]["bullish"] == 1


def test_bb_enhancement_tags_and_scales():
    f = Feed(RenkoConfig(bb_enhancement_threshold=0.5, min_divergence_strength=0.75))  # raw 0.707 < 0.75
    [tp] = f.path(DIVERGENCE_PATH)
    assert "bb_enhanced" in tp.reason and "strength=1.000" in tp.reason
    f2 = Feed(RenkoConfig(bb_enhancement_threshold=0.0, min_divergence_strength=0.75))
    assert f2.path(DIVERGENCE_PATH) == []


# ------------------------------------------------------------------------------- exits


def entered(cfg: RenkoConfig | None = None) -> Feed:
    f = Feed(cfg)
    [tp] = f.path(DIVERGENCE_PATH)
    f.fill("buy", tp.target, 61.0)
    assert f.e.position("BTC") == pytest.approx(0.0004)  # |AO|·0.1/61 is above max_size
    return f


def test_take_profit_at_10_bps():
    f = entered()
    assert f.bbo(61.0 * 1.00099) == []
    [tp] = f.bbo(61.0 * 1.001 + 1e-9)
    assert tp.target == 0.0 and tp.reason.startswith("exit long take_profit")


def test_stop_loss_at_5_bps():
    f = entered()
    assert f.bbo(61.0 * 0.99951) == []
    [tp] = f.bbo(61.0 * 0.9995 - 1e-9)
    assert tp.target == 0.0 and tp.reason.startswith("exit long stop_loss")


def test_time_stop_at_300_s_after_the_entry_fill():
    f = entered()
    t_fill = f.t
    assert f.bbo(61.01, t_s=t_fill + 299.9) == []
    [tp] = f.bbo(61.01, t_s=t_fill + 300)
    assert tp.reason.startswith("exit long time_stop")


def test_ao_reversal_exit():
    f = entered(RenkoConfig(stop_loss_bps=1000))
    # down bricks 60 -> 59 -> ...: AO (< 0) keeps rising for a while as the old lows leave SMA34
    got, mid = [], 59.0
    while not got and mid > 40:
        got = f.bbo(mid)
        st = f.e.state("BTC")
        assert got or not (st["ao"] < st["ao_prev"] and st["ao"] < 0)
        mid -= 1.0
    [tp] = got
    assert st["ao"] < st["ao_prev"] and st["ao"] < 0
    assert tp.reason.startswith("exit long ao_reversal")


def test_exit_not_repeated_while_pending_and_retried_after_reject_in_a_later_bucket():
    f = entered()
    t = f.t
    [tp] = f.bbo(61.1, t_s=t + 1)
    assert tp.target == 0.0
    assert f.bbo(61.1, t_s=t + 2) == []
    f.reject()
    assert f.bbo(61.1, t_s=t + 3) in ([], f.out[-1:])  # same 15 s bucket as the send: maybe not yet
    got = f.bbo(61.1, t_s=t + 20)
    assert len(got) == 1 and got[0].reason.endswith("retry")
    f.fill("sell", 0.0004, 61.1)
    assert f.e.position("BTC") == 0.0 and f.e.state("BTC")["pending_target"] is None


# ------------------------------------------------------------------------------- position


def test_an_intent_without_a_fill_does_not_change_the_position():
    f = Feed()
    [tp] = f.path(DIVERGENCE_PATH)
    assert tp.target != 0 and f.e.position("BTC") == 0.0
    assert f.bbo(61.0 * 1.01) == []  # no position -> no exit


def test_duplicate_and_foreign_fills_are_ignored():
    f = Feed()
    f.fill("buy", 0.0002, 100.0, fill_id="A")
    f.fill("buy", 0.0002, 100.0, fill_id="A")
    f.fill("buy", 0.0002, 100.0, fill_id="B", strategy="trend")
    assert f.e.position("BTC") == pytest.approx(0.0002) and f.e.duplicate_fills == 1
    f.fill("buy", 0.0002, 102.0, fill_id="C")
    st = f.e.state("BTC")
    assert st["position"] == pytest.approx(0.0004) and st["avg_entry_price"] == pytest.approx(101.0)
    f.fill("sell", 0.0004, 101.0, fill_id="D")
    assert f.e.position("BTC") == 0.0 and f.e.state("BTC")["entry_ts"] is None


# ------------------------------------------------------------------------------- misc


def test_determinism_identical_bytes():
    def run() -> list[bytes]:
        f = entered()
        f.path([61.2, 61.3, 59.0, 58.0, 61.0, 63.0])
        return [encode(o) for o in f.out]

    a, b = run(), run()
    assert a == b and len(a) >= 2


def test_other_markets_and_bad_books_are_ignored():
    f = Feed()
    assert f.bbo(100.0, market="SOL") == []
    f.bbo(100.0)
    f.e.on_event(Bbo(id="x", ts_event=T0 + 5 * S, market="BTC", bid_px=105.0, bid_sz=1, ask_px=100.0, ask_sz=1))
    assert f.e.state("BTC")["bricks"] == 0


def test_make_engine_and_config():
    cfg = StackConfig(markets=["BTC", "ETH"], services={"strategy-renko": {"sizes": {"eth": {"max_size": 0.02}}}})
    e = make_engine(cfg)
    c = e.cfg
    assert e.markets == ["BTC", "ETH"] and e.name == "renko"
    assert (c.renko_atr_period, c.renko_atr_multiplier, c.renko_lookback, c.ao_fast_period, c.ao_slow_period,
            c.bb_period, c.bb_std, c.min_divergence_strength, c.bb_enhancement_threshold, c.take_profit_bps,
            c.stop_loss_bps, c.max_hold_s, c.http_port) == (14, 1.0, 20, 5, 34, 20, 2.0, 0.3, 0.2, 10, 5, 300, 9105)
    assert c.sizes["ETH"].min_size == 0.005 and c.sizes["ETH"].max_size == 0.02
    assert c.sizes["BTC"].max_size == 0.0004
    assert make_engine(StackConfig(markets=["PAXG"])).markets == ["PAXG"]  # sized from notional_usd
    with pytest.raises(ConfigError, match="no market to trade"):
        make_engine(StackConfig(markets=[]))
    with pytest.raises(ConfigError, match="services.strategy-renko.stop_loss_bps"):
        make_engine(StackConfig(services={"strategy-renko": {"stop_loss_bps": 0}}))
    with pytest.raises(ConfigError, match="ao_fast_period"):
        make_engine(StackConfig(services={"strategy-renko": {"ao_fast_period": 34}}))
