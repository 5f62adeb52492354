"""Maker engine: one test per quoting rule, on hand-built event sequences.

BTC at mid 100 000 USD with a 0.1 USD tick: 1 bp = 10 USD = 100 ticks. Unless a test says
otherwise the jitter is off and the trend filter is neutral (flat mids)."""

from __future__ import annotations

import math

import pytest

from services.maker.config import MakerConfig
from services.maker.engine import FifoBook, MakerEngine, make_engine
from shared.config import ConfigError, StackConfig
from shared.events import Bbo, Event, Fill, ModelParams, OrderCanceled, QuoteIntent, encode

S = 1_000_000_000
T0 = 1_757_900_000 * S


def cfg(**kw) -> MakerConfig:
    return MakerConfig(**{"randomize_bps": 0.0, **kw})


def eng(calibrate=None, markets=("BTC",), **kw) -> MakerEngine:
    return MakerEngine(cfg(**kw), list(markets), calibrate=calibrate or _no_calibration)


def _no_calibration(*_a, **_k):
    raise RuntimeError("no calibration in this test")


_n = [0]


def _id(prefix: str) -> str:
    _n[0] += 1
    return f"{prefix}{_n[0]}"


def bbo(t: float, mid: float = 100_000.0, market: str = "BTC", half: float = 0.05) -> Bbo:
    return Bbo(id=_id("b"), ts_event=T0 + int(t * S), source="collector", market=market, bid_px=mid - half,
               bid_sz=1.0, ask_px=mid + half, ask_sz=1.0)


def fill(t: float, side: str, size: float, price: float = 100_000.0, market: str = "BTC", coi: int = 7,
         fee: float = 0.0) -> Fill:
    return Fill(id=_id("f"), ts_event=T0 + int(t * S), source="executor", fill_id=_id("fid"), strategy="maker",
                market=market, side=side, price=price, size=size, fee=fee, liquidity="maker",
                client_order_index=coi)


def params(t: float, sigma: float = 50.0, k: float = 0.005, gamma: float = 0.01, ok: bool = True,
           tick: float = 0.1, market: str = "BTC", pid: str | None = None) -> ModelParams:
    ts = T0 + int(t * S)
    return ModelParams(id=pid or _id("p"), ts_event=ts, source="calibrator", strategy="maker", market=market,
                       sigma=sigma, A=1.0, k=k, gamma=gamma, tick_size=tick, mid=100_000.0, interval_s=1.0,
                       window_start=ts - 900 * S, window_end=ts, ok=ok, problems=[] if ok else ["fit failed"])


def quotes(out: list[Event]) -> list[QuoteIntent]:
    return [e for e in out if isinstance(e, QuoteIntent)]


def feed(e: MakerEngine, events: list[Event]) -> list[Event]:
    out: list[Event] = []
    for ev in events:
        out += e.on_event(ev)
    return out


# --------------------------------------------------------------------------- A-S price and spread

def test_spread_formula_from_params_and_band_floor():
    e = eng()
    e.on_event(params(0.0))
    q = quotes(e.on_event(bbo(0.0)))[0]
    # gamma*sigma^2*tau = 0.01*2500*60 = 1500 ticks; (2/gamma) ln(1 + gamma/k) = 200 ln 3
    half_as = (1500 + 200 * math.log(3)) / 2
    half = half_as + 100  # + defensive regime extra 2 bps full = 1 bp = 100 ticks per side
    assert q.bid_px == pytest.approx(math.floor(1_000_000 - half) * 0.1)
    assert q.ask_px == pytest.approx(math.ceil(1_000_000 + half) * 0.1)
    assert e.state("BTC")["quoted_spread_bps"] == pytest.approx((q.ask_px - q.bid_px) / 100_000 * 1e4)
    # a tiny A-S spread: the seed band (7 bps full) is the floor
    e2 = eng()
    e2.on_event(params(0.0, sigma=1.0, gamma=0.001, k=1.0))
    q2 = quotes(e2.on_event(bbo(0.0)))[0]
    assert q2.ask_px - q2.bid_px == pytest.approx(2 * (35.0 + 10.0), abs=0.2)  # (3.5 + 1) bps per side


def test_reservation_price_moves_against_inventory():
    for side, sign in (("buy", -1), ("sell", +1)):
        e = eng()
        e.on_event(params(0.0, sigma=20.0))
        flat = quotes(e.on_event(bbo(0.0)))[0]
        out = e.on_event(fill(1.0, side, 0.0004))  # q = +-1 clip (max_size 0.0004)
        q = quotes(out)[0]
        # r = s - q*gamma*sigma^2*tau = s -+ 0.01*400*60 = 240 ticks = -+24 USD = -+2.4 bps
        assert e.state("BTC")["reservation_offset_bps"] == pytest.approx(sign * 2.4)
        assert (q.bid_px + q.ask_px) / 2 - (flat.bid_px + flat.ask_px) / 2 == pytest.approx(sign * 24.0, abs=0.2)


def test_params_in_another_tick_are_converted():
    # the same model in 1-USD ticks: sigma 5 ticks, k 0.05/tick, gamma 0.1/tick
    a, b = eng(), eng()
    a.on_event(params(0.0))
    b.on_event(params(0.0, sigma=5.0, k=0.05, gamma=0.1, tick=1.0))
    qa, qb = quotes(a.on_event(bbo(0.0)))[0], quotes(b.on_event(bbo(0.0)))[0]
    assert (qa.bid_px, qa.ask_px) == pytest.approx((qb.bid_px, qb.ask_px))


def test_not_ok_params_are_counted_and_never_used():
    e = eng()
    e.on_event(params(0.0, ok=False))
    q = quotes(e.on_event(bbo(0.0)))[0]
    st = e.state("BTC")
    assert st["params_rejected"] == 1 and st["params_ok"] is False and st["sigma"] is None
    assert q.ask_px - q.bid_px == pytest.approx(90.0, abs=0.2)  # the fallback band, 9 bps full
    e.on_event(params(1.0))
    assert e.state("BTC")["params_ok"] is True and e.state("BTC")["params_applied"] == 1


def test_require_params_quotes_nothing_before_ok_params():
    e = eng(require_params=True)
    assert quotes(e.on_event(bbo(0.0))) == []
    e.on_event(params(1.0, ok=False))
    assert quotes(e.on_event(bbo(2.0))) == []
    out = e.on_event(params(1.5))  # computed on older data than the last BBO
    assert len(quotes(out)) == 1 and quotes(out)[0].bid_px is not None
    assert quotes(out)[0].ts_event == T0 + 2 * S  # stamped with the latest event time, not the params'


def test_fallback_skew_without_params():
    e = eng()
    feed(e, [bbo(0.0)])
    e.on_event(fill(1.0, "buy", 0.0005))  # half the soft cap 0.001 -> 1 bp of skew (2 bps at the cap)
    assert e.state("BTC")["reservation_offset_bps"] == pytest.approx(-1.0)


# --------------------------------------------------------------------------- seed 001 band and pause

def test_volatility_band_widens_spread_and_trims_size():
    e = eng(trend_up_bps=1000)
    feed(e, [bbo(0.0)])
    q = quotes(e.on_event(bbo(5.0, mid=100_140.0)))[0]  # a 14 bps move between samples
    st = e.state("BTC")
    assert st["volatility_bps"] == pytest.approx(14.0)
    assert st["band_bps"] == pytest.approx(7 + 6 * (14 - 6) / 16)  # 10 bps full
    assert q.ask_px - q.bid_px == pytest.approx((10 + 2) / 1e4 * 100_140, abs=0.2)
    # 0.0004 x 0.7 defensive x (1.1 - 0.4*0.5) x 0.85 high-vol clip = 0.0002142 -> lot 0.00001
    assert st["quote_size"] == pytest.approx(0.00021)


def test_pause_at_high_volatility_and_resume_needs_low_vol_and_small_inventory():
    e = eng(trend_up_bps=1000, trend_down_bps=1000)
    feed(e, [bbo(0.0)])
    out = e.on_event(bbo(5.0, mid=100_350.0))  # 35 bps: pause
    assert e.state("BTC")["vol_paused"] is True
    q = quotes(out)[0]
    assert q.bid_px is None and q.ask_px is None and q.bid_sz == 0 and q.ask_sz == 0
    e.on_event(fill(6.0, "buy", 0.0004))  # inventory above 25 % of the soft cap
    t = 5.0
    while e.state("BTC")["volatility_bps"] > 18.0:
        t += 5.0
        assert quotes(e.on_event(bbo(t, mid=100_350.0))) == []
    assert e.state("BTC")["vol_paused"] is True  # volatility recovered, inventory did not
    e.on_event(fill(t + 1, "sell", 0.0004))
    out = e.on_event(bbo(t + 5.0, mid=100_350.0))
    assert e.state("BTC")["vol_paused"] is False
    q = quotes(out)[0]
    assert q.bid_px is not None and q.ask_px is not None


# --------------------------------------------------------------------------- trend filter

def test_trend_quotes_one_side_with_extra_spread():
    e = eng()
    feed(e, [bbo(0.0)])
    q = quotes(e.on_event(bbo(5.0, mid=100_130.0)))[0]  # +13 bps in 45 s: up-trend
    assert e.state("BTC")["trend"] == "up"
    assert q.ask_px is None and q.bid_px is not None  # default: bid only in an up-trend
    e2 = eng()
    feed(e2, [bbo(0.0)])
    q2 = quotes(e2.on_event(bbo(5.0, mid=99_930.0)))[0]  # -7 bps: down-trend
    st = e2.state("BTC")
    assert st["trend"] == "down" and st["trend_bias"] == 1 and st["down_cooldown"] is True
    assert q2.bid_px is None and q2.ask_px is not None
    # the ask's distance: band (7 + 6*(7-6)/16 bps) + down extra 6 + defensive 2, halved
    band = 7 + 6 * (7 - 6) / 16
    assert q2.ask_px - 99_930.0 == pytest.approx((band + 6 + 2) / 2 / 1e4 * 99_930.0, abs=0.11)


def test_trend_bias_is_configurable_seed_quirk_ask_only_up():
    e = eng(trend_up_bias="ask")
    feed(e, [bbo(0.0)])
    q = quotes(e.on_event(bbo(5.0, mid=100_130.0)))[0]
    assert q.bid_px is None and q.ask_px is not None


def test_trend_reverts_to_both_sides_when_bias_would_grow_large_inventory():
    e = eng()
    feed(e, [bbo(0.0), fill(1.0, "sell", 0.0007)])  # short 70 % of the soft cap
    q = quotes(e.on_event(bbo(5.0, mid=99_930.0)))[-1]  # down-trend wants ask only: would grow the short
    st = e.state("BTC")
    assert st["trend"] == "down" and st["trend_bias"] == 0
    assert q.bid_px is not None and q.ask_px is not None


def test_trend_ends_with_hysteresis():
    e = eng(vol_sample_s=1000)  # keep volatility out of it
    feed(e, [bbo(0.0), bbo(5.0, mid=100_130.0)])
    assert e.state("BTC")["trend"] == "up"
    e.on_event(bbo(10.0, mid=100_080.0))  # +8 bps from the oldest: still up (exit below +6)
    assert e.state("BTC")["trend"] == "up"
    e.on_event(bbo(15.0, mid=100_050.0))  # +5 bps: neutral
    assert e.state("BTC")["trend"] == "neutral"


# --------------------------------------------------------------------------- regimes

def test_regime_switches_only_after_the_dwell_time():
    e = eng(vol_sample_s=1000)
    e.on_event(bbo(0.0))
    assert e.state("BTC")["regime"] == "defensive"  # starts defensive
    e.on_event(bbo(30.0))
    assert e.state("BTC")["regime"] == "defensive"
    e.on_event(bbo(60.0))
    assert e.state("BTC")["regime"] == "aggressive"
    e.on_event(bbo(70.0, mid=99_930.0))  # down-trend: target defensive, but dwell since 60 s
    assert e.state("BTC")["trend"] == "down" and e.state("BTC")["regime"] == "aggressive"
    e.on_event(bbo(110.0, mid=99_860.0))  # still down; its cooldown (20 s aggressive) runs to 130 s
    assert e.state("BTC")["regime"] == "aggressive"
    e.on_event(bbo(120.0, mid=99_860.0))  # neutral again, but in the down cooldown; 60 s dwell passed
    st = e.state("BTC")
    assert st["trend"] == "neutral" and st["down_cooldown"] is True and st["regime"] == "defensive"


# --------------------------------------------------------------------------- PnL guard, FIFO

def test_fifo_book_is_fifo_for_shorts_too():
    b = FifoBook()
    b.apply("sell", 1.0, 100.0)
    b.apply("sell", 1.0, 110.0)
    assert b.apply("buy", 1.0, 105.0) == pytest.approx(-5.0)  # closes the 100 short first (LIFO: +5)
    assert b.position == pytest.approx(-1.0)
    b.apply("buy", 2.0, 100.0, fee=0.5)  # closes 110 short (+10), opens long 1 @ 100, fee 0.5
    assert b.position == pytest.approx(1.0) and b.realized == pytest.approx(-5 + 10 - 0.5)


def test_pnl_guard_uses_fifo_realized_not_cash_flow():
    # one buy fill is -40 USD of cash flow (the seed's guard would trip); realized FIFO PnL is 0
    e = eng(vol_sample_s=1000)
    feed(e, [bbo(0.0), fill(1.0, "buy", 0.0004)] + [bbo(t) for t in (15.0, 30.0, 45.0)])
    assert e.state("BTC")["pnl_guard"] is False


def test_pnl_guard_engages_after_consecutive_losing_checks_and_releases():
    e = eng(vol_sample_s=1000, requote_threshold_bps=0.5)
    feed(e, [bbo(0.0), fill(1.0, "buy", 0.0004), fill(2.0, "sell", 0.0004, price=98_700.0)])  # -0.52 USD
    e.on_event(bbo(15.0))
    st = e.state("BTC")
    assert st["pnl_guard"] is False and st["pnl_guard_window_usd"] == pytest.approx(-0.52)
    q = quotes(e.on_event(bbo(30.0)))  # second failing check: engaged -> wider, smaller
    st = e.state("BTC")
    assert st["pnl_guard"] is True
    assert q and q[0].ask_px - q[0].bid_px == pytest.approx((7 + 2 + 4) / 1e4 * 100_000, abs=0.2)
    # 0.0004 x 0.7 defensive x 1.1 x 0.85 guard = 0.0002618 -> 0.00026
    assert st["quote_size"] == pytest.approx(0.00026)
    e.on_event(bbo(45.0))  # the counter was reset when engaging; the loss is still in the window
    assert e.state("BTC")["pnl_guard"] is True
    e.on_event(bbo(310.0))  # the loss left the 300 s window: the check passes and releases
    assert e.state("BTC")["pnl_guard"] is False


# --------------------------------------------------------------------------- size

def test_notional_clamp_lot_quantization_and_min_size():
    # ETH-like market: tick 0.01, clip 0.005..0.01 by 0.0001
    e = eng(markets=("ETH",), vol_sample_s=1000)
    q = quotes(e.on_event(bbo(0.0, mid=4_000.0, market="ETH", half=0.005)))[0]
    assert q.bid_sz == pytest.approx(0.0077)  # 0.01 x 0.7 defensive x 1.1 = 0.0077 (lot-exact)
    e2 = eng(markets=("ETH",), vol_sample_s=1000)
    q2 = quotes(e2.on_event(bbo(0.0, mid=1_000.0, market="ETH", half=0.005)))[0]
    assert q2.bid_sz == pytest.approx(0.0105)  # 10.5 USD notional floor wins over max_size 0.01
    # BTC at the soft cap: 0.0002 x 0.77 = 0.000154 -> clamped up to min_size 0.0002
    e3 = eng(vol_sample_s=1000)
    feed(e3, [bbo(0.0), fill(1.0, "sell", 0.001)])
    assert e3.state("BTC")["quote_size"] == pytest.approx(0.0002)
    a = e3.state("BTC")["ask_sz"]
    assert a == pytest.approx(0.0002) and abs(a / 0.00001 - round(a / 0.00001)) < 1e-6


def test_hard_inventory_cap_trims_then_pulls_the_growing_side():
    e = eng(vol_sample_s=1000)
    feed(e, [bbo(0.0), fill(1.0, "buy", 0.0017)])
    assert e.state("BTC")["bid_sz"] == pytest.approx(0.0002)  # room 0.0003 under the 0.002 cap, clip 0.0002
    out = e.on_event(fill(2.0, "buy", 0.00015))  # room 0.00015 < min_size: bid pulled
    q = quotes(out)[-1]
    assert q.bid_px is None and q.bid_sz == 0 and q.ask_px is not None


# --------------------------------------------------------------------------- requote discipline

def test_requote_only_beyond_threshold_or_age():
    e = eng(vol_sample_s=1000)
    first = quotes(e.on_event(bbo(0.0)))
    assert len(first) == 1
    assert quotes(e.on_event(bbo(5.0, mid=100_010.0))) == []  # 1 bp < 1.5 bps: keep
    q = quotes(e.on_event(bbo(10.0, mid=100_020.0)))  # 2 bps: requote
    assert len(q) == 1 and q[0].bid_px > first[0].bid_px
    assert quotes(e.on_event(bbo(39.0, mid=100_020.0))) == []  # 29 s old: keep
    assert len(quotes(e.on_event(bbo(40.0, mid=100_020.0)))) == 1  # 30 s: aged out, replaced
    assert e.state("BTC")["requotes"] == 3


def test_unchanged_side_is_repeated_so_the_executor_keeps_it():
    e = eng(vol_sample_s=1000)
    first = quotes(e.on_event(bbo(0.0)))[0]
    q = quotes(e.on_event(fill(1.0, "buy", 0.0002)))[0]  # bid filled: bid requoted; ask moved < 1.5 bps
    assert q.ask_px == first.ask_px and q.ask_sz == first.ask_sz
    assert e.state("BTC")["fills"] == 1


def test_post_only_cancel_marks_the_quote_for_replacement():
    e = eng(vol_sample_s=1000)
    e.on_event(bbo(0.0))
    own = OrderCanceled(id="c1", ts_event=T0 + S, source="executor", strategy="maker", market="BTC",
                        client_order_index=1, remaining=0.0002, reason="canceled")
    assert e.on_event(own) == []  # our own replacement
    po = OrderCanceled(id="c2", ts_event=T0 + S, source="executor", strategy="maker", market="BTC",
                       client_order_index=2, remaining=0.0002, reason="canceled-post-only")
    assert len(quotes(e.on_event(po))) == 1


def test_requote_budget_defers_placements_but_not_pulls():
    e = eng(vol_sample_s=1000, max_requotes_per_min=2)
    assert len(quotes(e.on_event(bbo(0.0)))) == 1
    assert len(quotes(e.on_event(bbo(1.0, mid=100_020.0)))) == 1
    assert quotes(e.on_event(bbo(2.0, mid=100_040.0))) == []  # third in 60 s: deferred
    assert e.state("BTC")["deferred_requotes"] == 1
    q = quotes(e.on_event(bbo(3.0, mid=100_140.0)))  # +14 bps: up-trend pulls the ask at once
    assert len(q) == 1 and q[0].ask_px is None
    assert len(quotes(e.on_event(bbo(61.0, mid=100_140.0)))) == 1  # the window rolled


def test_quotes_never_cross_the_book():
    e = eng()
    e.on_event(params(0.0))
    feed(e, [bbo(0.0), fill(1.0, "buy", 0.0016)])  # q = 4 clips: r 60 bps below (capped at 50)
    st = e.state("BTC")
    assert st["reservation_offset_bps"] == pytest.approx(-50.0)
    assert st["ask_px"] > 99_999.95 and st["bid_px"] < st["ask_px"]  # post-only: above the best bid


# --------------------------------------------------------------------------- calibration, determinism

def test_periodic_calibration_in_event_time_emits_and_uses_params():
    calls = []

    def stub(bbos, trades, market, ccfg, *, strategy, order_size, cause, source):
        calls.append((len(bbos), market.symbol, strategy, order_size, cause.id, source, ccfg.horizon_s,
                      ccfg.max_inventory_clips))
        return params(cause.ts_event / S - T0 / S, pid=f"cal{len(calls)}")

    e = eng(calibrate=stub, min_calibration_span_s=60, recalibrate_s=120)
    out = feed(e, [bbo(t) for t in range(0, 60, 10)])
    assert calls == [] and not any(isinstance(x, ModelParams) for x in out)
    out = e.on_event(bbo(60.0))
    assert len(calls) == 1 and calls[0][:4] == (7, "BTC", "maker", 0.0004)
    assert calls[0][6:] == (60.0, 5)  # the maker's tau; hard cap 0.002 / clip 0.0004 = 5 clips
    assert [type(x).__name__ for x in out] == ["ModelParams"] + (["QuoteIntent"] if quotes(out) else [])
    assert e.state("BTC")["params_ok"] is True
    feed(e, [bbo(t) for t in range(70, 180, 10)])
    assert len(calls) == 1
    e.on_event(bbo(180.0))
    assert len(calls) == 2
    # its own params read back from the params stream are ignored
    own = params(200.0, pid="cal2", ok=False)
    e.on_event(own)
    assert e.state("BTC")["params_rejected"] == 0


def test_calibration_error_is_counted_and_quoting_goes_on():
    e = eng(min_calibration_span_s=10, vol_sample_s=1000)
    feed(e, [bbo(0.0), bbo(5.0)])
    out = e.on_event(bbo(10.0, mid=100_020.0))
    assert e.state("BTC")["calibration_errors"] == 1 and len(quotes(out)) == 1


def _session(seed: int) -> list[bytes]:
    e = MakerEngine(MakerConfig(seed=seed, randomize_bps=4.0), ["BTC"], calibrate=_no_calibration)
    evs: list[Event] = []
    mid = 100_000.0
    for i in range(60):
        mid += (7, -5, 3, -9, 11)[i % 5]
        evs.append(Bbo(id=f"d{i}", ts_event=T0 + i * 4 * S, source="collector", market="BTC",
                       bid_px=mid - 0.05, bid_sz=1, ask_px=mid + 0.05, ask_sz=1))
        if i % 7 == 3:
            evs.append(Fill(id=f"df{i}", ts_event=T0 + i * 4 * S, source="executor", fill_id=f"x{i}",
                            strategy="maker", market="BTC", side="buy" if i % 2 else "sell", price=mid,
                            size=0.0002, liquidity="maker"))
    return [encode(x) for ev in evs for x in e.on_event(ev)]


def test_deterministic_with_seed():
    a, b, c = _session(1), _session(1), _session(2)
    assert a == b and len(a) > 5
    assert a != c  # the jitter depends on the seed


def test_adverse_selection_and_fill_ratio():
    e = eng(vol_sample_s=1000)
    e.on_event(bbo(0.0))
    e.on_event(fill(1.0, "buy", 0.0002, coi=11))
    e.on_event(bbo(2.5, mid=99_990.0))  # 1 s after the buy the mid fell 1 bp: +1 adverse
    e.on_event(bbo(11.0, mid=100_020.0))  # 10 s after: rose 2 bps: -2 (in our favour)
    got = sorted(e.drain_adverse("BTC"))
    assert got == [pytest.approx((1.0, 1.0)), pytest.approx((10.0, -2.0))]
    assert e.drain_adverse("BTC") == []
    from shared.events import OrderAccepted
    for i in (11, 12):
        e.on_event(OrderAccepted(id=f"a{i}", ts_event=T0, source="executor", strategy="maker", market="BTC",
                                 client_order_index=i, side="buy", price=1.0, size=1.0))
    assert e.state("BTC")["fill_ratio"] == pytest.approx(0.5)


def test_other_strategies_fills_are_ignored_and_duplicates_dropped():
    e = eng(vol_sample_s=1000)
    e.on_event(bbo(0.0))
    f = fill(1.0, "buy", 0.0002)
    e.on_event(f)
    e.on_event(f)
    other = Fill(id="o1", ts_event=T0, source="executor", fill_id="o1", strategy="grid", market="BTC", side="buy",
                 price=1.0, size=1.0)
    e.on_event(other)
    assert e.position("BTC") == pytest.approx(0.0002) and e.duplicate_fills == 1


def test_dry_run_emits_nothing_but_computes():
    e = eng(dry_run=True)
    assert e.on_event(bbo(0.0)) == []
    assert e.state("BTC")["bid_px"] is not None


def test_make_engine_and_config_errors():
    e = make_engine(StackConfig(markets=["BTC", "ETH"]))
    assert e.markets == ["BTC", "ETH"] and e.cfg.http_port == 9107
    assert make_engine(StackConfig(markets=["SOL"])).markets == ["SOL"]  # sized from notional_usd
    with pytest.raises(ConfigError, match="no market to quote"):
        make_engine(StackConfig(markets=[]))
    with pytest.raises(ConfigError, match="resume_bps must not exceed pause_bps"):
        make_engine(StackConfig(services={"maker": {"resume_bps": 40}}))
    with pytest.raises(ConfigError, match=r"calibration\.horizon_z: unknown key"):
        make_engine(StackConfig(services={"maker": {"calibration": {"horizon_z": 1}}}))
