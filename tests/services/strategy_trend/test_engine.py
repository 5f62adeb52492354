"""TrendEngine on hand-checked candle sequences.

Scenario used throughout: one Bbo per 15 s candle (at +1 s), mid ``c_k = 100000 + k·s``. With a
constant step ``s`` every indicator is checkable by hand when candle 20 (the 21st) closes, which
happens on the Bbo of candle 21 (mid ``c_21``), the first decision after the 21-candle warm-up:

- RSI(14): only gains (s > 0) -> 100; only losses -> 0.
- EMA(8) of a linear series lags by 3.5·s, EMA(21) (= SMA of c_0..c_20) by 10·s, so
  EMAf − EMAs = 6.5·s and trend = 6.5·|s| / c_10 · 1e4 bps.
- Bollinger(20, 2): window c_1..c_20, mean c_10.5, σ = |s|·sqrt((20² − 1)/12) = 5.766·|s|;
  bb_position(c_21) = (10.5 + 2·5.766)/(4·5.766) = 0.955 for s > 0 (0.045 for s < 0).
- volatility: mean |s / c_{k−1}| over 20 returns ≈ |s| / 100000 · 1e4 bps (3.0 for s = 30).
- ATR(14) = |s| (single-sample candles: TR = |c_k − c_{k−1}|), size = clamp(0.5·30/c_21) = min.
"""

from __future__ import annotations

import math

import pytest

from services.strategy_trend.config import TrendConfig
from services.strategy_trend.engine import TrendEngine, signal_labels
from shared.config import ConfigError
from shared.events import Bbo, Fill, OrderCanceled, OrderRejected, PositionSnapshot, TargetPosition, encode

S = 1_000_000_000
T0 = 1_757_899_995 * S  # a 15 s boundary
BASE = 100_000.0


class Feed:
    """Drives an engine with Bbos and exec events; keeps every output."""

    def __init__(self, cfg: TrendConfig | None = None, markets=("BTC",)) -> None:
        self.e = TrendEngine(cfg or TrendConfig(), list(markets))
        self.n = 0
        self.out: list[TargetPosition] = []

    def bbo(self, t_s: float, mid: float, market: str = "BTC") -> list[TargetPosition]:
        self.n += 1
        ev = Bbo(id=f"bbo-{self.n}", ts_event=T0 + round(t_s * S), source="collector", market=market,
                 bid_px=mid - 0.5, bid_sz=1.0, ask_px=mid + 0.5, ask_sz=1.0)
        got = self.e.on_event(ev)
        self.out += got
        return got

    def fill(self, t_s: float, side: str, size: float, price: float, fill_id: str | None = None,
             strategy: str = "trend", market: str = "BTC") -> list:
        self.n += 1
        ev = Fill(id=f"fill-ev-{self.n}", ts_event=T0 + round(t_s * S), source="executor",
                  fill_id=fill_id or f"f{self.n}", strategy=strategy, market=market, side=side,
                  price=price, size=size)
        return self.e.on_event(ev)

    def reject(self, t_s: float, market: str = "BTC", strategy: str = "trend") -> list:
        self.n += 1
        return self.e.on_event(OrderRejected(id=f"rej-{self.n}", ts_event=T0 + round(t_s * S), strategy=strategy,
                                             market=market, client_order_index=self.n, side="buy",
                                             price=1.0, size=0.0002, code=21706, reason="bad amount"))

    def cancel(self, t_s: float, remaining: float, market: str = "BTC") -> list:
        self.n += 1
        return self.e.on_event(OrderCanceled(id=f"can-{self.n}", ts_event=T0 + round(t_s * S), strategy="trend",
                                             market=market, client_order_index=self.n, remaining=remaining,
                                             reason="expired-ioc"))

    def trend(self, step: float, candles: int = 22, start: int = 0) -> list[TargetPosition]:
        """Bbos of candles ``start..start+candles-1`` at mid c_k = BASE + k·step (returns outputs)."""
        got = []
        for k in range(start, start + candles):
            got += self.bbo(k * 15 + 1, BASE + k * step)
        return got


def c(k: int, step: float) -> float:
    return BASE + k * step


# ------------------------------------------------------------------------------- entries

def test_long_entry_on_hand_checked_uptrend():
    f = Feed()
    assert f.trend(30.0, candles=21) == []  # 20 closed candles: still warming up
    assert f.e.state("BTC")["candles"] == 20 and not f.e.state("BTC")["ready"]
    got = f.bbo(21 * 15 + 1, c(21, 30.0))  # closes candle 20 (the 21st)
    assert len(got) == 1
    tp = got[0]
    st = f.e.state("BTC")
    assert st["rsi"] == 100.0
    assert st["ema_fast"] == pytest.approx(c(20, 30) - 3.5 * 30)
    assert st["ema_slow"] == pytest.approx(c(10, 30))
    sigma = 30 * math.sqrt((20 ** 2 - 1) / 12)
    assert st["bb_middle"] == pytest.approx(BASE + 10.5 * 30)
    assert st["bb_upper"] - st["bb_middle"] == pytest.approx(2 * sigma)
    assert st["bb_position"] == pytest.approx((10.5 + 2 * sigma / 30) / (4 * sigma / 30))
    assert st["volatility_bps"] == pytest.approx(sum(30 / c(k, 30) for k in range(20)) / 20 * 1e4)
    assert st["atr"] == pytest.approx(30.0)
    assert tp.target == pytest.approx(0.0002) and tp.strategy == "trend" and tp.market == "BTC"
    assert tp.reference_price == c(21, 30.0) and tp.max_slippage_bps == 10.0
    assert tp.reason.startswith("entry long rsi=100.00 bb_pos=0.955 trend=19.44bps vol=2.99bps")
    assert tp.source == "strategy-trend" and tp.causation_id == "bbo-22"
    assert tp.ts_event == T0 + (21 * 15 + 1) * S
    assert signal_labels(tp) == ("long", "entry")


def test_short_entry_mirrored():
    f = Feed()
    got = f.trend(-30.0)
    assert len(got) == 1
    tp = got[0]
    assert tp.target == pytest.approx(-0.0002)
    assert tp.reason.startswith("entry short rsi=0.00 bb_pos=0.045")
    assert f.e.state("BTC")["ema_fast"] < f.e.state("BTC")["ema_slow"]


def test_eth_sizes_from_config():
    f = Feed(markets=("ETH",))
    for k in range(22):
        f.bbo(k * 15 + 1, 4000.0 + k * 1.2, market="ETH")  # 3 bps steps
    assert [o.target for o in f.out] == [pytest.approx(0.005)]


def test_size_follows_atr_and_clamps():
    # ATR = 300 USD at ~100k: 0.5*300/100k = 0.0015 -> clamped to the BTC max 0.0004 (vol filter opened)
    f = Feed(TrendConfig(vol_max_bps=100))
    got = f.trend(300.0)
    assert got[0].target == pytest.approx(0.0004)
    # a custom range where the ATR rule lands inside it, rounded down to the lot
    cfg = TrendConfig(vol_max_bps=100, sizes={"BTC": {"min_size": 0.0002, "max_size": 0.01, "size_step": 0.00001}})
    f = Feed(cfg)
    got = f.trend(300.0)
    raw = 0.5 * 300 / c(21, 300)
    assert got[0].target == pytest.approx(math.floor(raw / 1e-5) * 1e-5)


@pytest.mark.parametrize("step, widened", [(15.0, {"vol_min_bps": 1.0}), (300.0, {"vol_max_bps": 50.0})])
def test_volatility_filter_blocks_entries_outside_2_to_25_bps(step, widened):
    f = Feed()
    assert f.trend(step, candles=30) == []
    vol = f.e.state("BTC")["volatility_bps"]
    assert vol < 2 or vol > 25
    # the same series enters once the band includes its volatility: the filter was the blocker
    f = Feed(TrendConfig(**widened))
    assert len(f.trend(step)) == 1


def test_no_entry_without_trend_confirmation():
    # alternating +20/-20: flat EMAs, RSI ~50
    f = Feed()
    for k in range(40):
        f.bbo(k * 15 + 1, BASE + (20.0 if k % 2 else 0.0))
    assert f.out == []


# ------------------------------------------------------------------------ exits (long)

def entered_long(cfg: TrendConfig | None = None) -> Feed:
    f = Feed(cfg)
    assert len(f.trend(30.0)) == 1
    f.fill(21 * 15 + 2, "buy", 0.0002, c(21, 30))  # 100630
    assert f.e.position("BTC") == pytest.approx(0.0002)
    return f


def test_take_profit_exit_at_8_bps():
    f = entered_long()
    tp_level = 100630 * (1 + 8e-4)  # 100710.504
    assert f.bbo(21 * 15 + 3, 100710.0) == []
    got = f.bbo(21 * 15 + 4, 100711.0)
    assert len(got) == 1 and got[0].target == 0.0
    assert got[0].reason.startswith("exit long take_profit")
    assert signal_labels(got[0]) == ("long", "take_profit")
    assert 100711.0 >= tp_level > 100710.0


def test_stop_loss_exit_at_4_bps():
    f = entered_long()
    assert f.bbo(21 * 15 + 3, 100590.0) == []  # SL level 100589.748
    got = f.bbo(21 * 15 + 4, 100589.5)
    assert [o.target for o in got] == [0.0] and "stop_loss" in got[0].reason


def test_time_stop_at_180_s_after_the_entry_fill():
    f = entered_long()
    fill_t = 21 * 15 + 2
    # price unchanged: flat candles keep RSI at 100 (both Wilder averages decay alike), no TP/SL
    t = 21 * 15 + 3
    while t < fill_t + 180:
        assert f.bbo(t, c(21, 30)) == [], t
        t += 5
    assert f.bbo(fill_t + 179.999, c(21, 30)) == []
    got = f.bbo(fill_t + 180, c(21, 30))
    assert [o.target for o in got] == [0.0] and got[0].reason.startswith("exit long time_stop")


def test_trend_reversal_exit_when_rsi_below_50():
    # wide TP/SL so the RSI rule is the one that fires
    f = entered_long(TrendConfig(stop_loss_bps=100, take_profit_bps=100))
    assert f.bbo(22 * 15 + 1, c(21, 30)) == []          # candle 21 closes at c_21 (+30): RSI 100
    assert f.bbo(22 * 15 + 5, c(21, 30) - 400) == []    # inside candle 22: RSI unchanged
    got = f.bbo(23 * 15 + 1, c(21, 30) - 400)           # candle 22 closes 400 lower
    # Wilder: gain 30*13/14, loss 400/14 -> RSI = 100*390/(390+400) = 49.37 < 50
    assert f.e.state("BTC")["rsi"] == pytest.approx(100 * 390 / 790)
    assert [o.target for o in got] == [0.0]
    assert got[0].reason.startswith("exit long trend_reversal rsi=49.37")


def test_no_exit_while_rsi_stays_above_50():
    f = entered_long(TrendConfig(stop_loss_bps=100, take_profit_bps=100))
    f.bbo(22 * 15 + 1, c(21, 30))
    f.bbo(22 * 15 + 5, c(21, 30) - 380)
    got = f.bbo(23 * 15 + 1, c(21, 30) - 380)  # candle 22 closes 380 lower: RSI = 100*390/770 = 50.6
    assert got == [] and f.e.state("BTC")["rsi"] == pytest.approx(100 * 390 / 770)


# ----------------------------------------------------------------------- exits (short)

def entered_short(cfg: TrendConfig | None = None) -> Feed:
    f = Feed(cfg)
    assert len(f.trend(-30.0)) == 1
    f.fill(21 * 15 + 2, "sell", 0.0002, c(21, -30))  # 99370
    assert f.e.position("BTC") == pytest.approx(-0.0002)
    return f


def test_short_take_profit_and_stop_loss():
    f = entered_short()
    assert f.bbo(21 * 15 + 3, 99291.0) == []  # TP level 99290.504
    got = f.bbo(21 * 15 + 4, 99290.0)
    assert [o.target for o in got] == [0.0] and got[0].reason.startswith("exit short take_profit")
    f = entered_short()
    assert f.bbo(21 * 15 + 3, 99409.5) == []  # SL level 99409.748
    got = f.bbo(21 * 15 + 4, 99410.0)
    assert [o.target for o in got] == [0.0] and got[0].reason.startswith("exit short stop_loss")


def test_short_time_stop_and_reversal():
    f = entered_short()
    got = f.bbo(21 * 15 + 2 + 180, c(21, -30))
    assert got[0].reason.startswith("exit short time_stop")
    f = entered_short(TrendConfig(stop_loss_bps=100, take_profit_bps=100))
    f.bbo(22 * 15 + 1, c(21, -30))
    f.bbo(22 * 15 + 5, c(21, -30) + 400)
    got = f.bbo(23 * 15 + 1, c(21, -30) + 400)  # RSI = 100*400/790 = 50.63 > 50
    assert got[0].reason.startswith("exit short trend_reversal rsi=50.63")


# ------------------------------------------------------------ position from fills only

def test_an_intent_without_a_fill_does_not_change_the_position():
    f = Feed(TrendConfig(retry_after_s=3600))
    assert len(f.trend(30.0)) == 1
    assert f.e.position("BTC") == 0.0
    # the price runs far above a would-be take profit: no exit (nothing held), no second entry
    assert f.trend(30.0, candles=10, start=22) == []
    assert f.bbo(31 * 15 + 5, 120_000.0) == []
    st = f.e.state("BTC")
    assert st["position"] == 0.0 and st["pending_target"] == pytest.approx(0.0002)


def test_duplicate_fill_is_ignored():
    f = Feed()
    f.trend(30.0)
    f.fill(330, "buy", 0.0002, 100630, fill_id="A")
    f.fill(330, "buy", 0.0002, 100630, fill_id="A")  # redelivered
    assert f.e.position("BTC") == pytest.approx(0.0002)
    assert f.e.duplicate_fills == 1


def test_fills_of_other_strategies_or_markets_are_ignored():
    f = Feed()
    f.fill(1, "buy", 0.001, 100000, strategy="maker")
    f.fill(1, "buy", 0.001, 4000, market="ETH")
    f.e.on_event(PositionSnapshot(id="ps", ts_event=T0, strategy="trend", market="BTC", position=5.0))
    assert f.e.position("BTC") == 0.0
    assert f.e.state("BTC")["executor_position"] == 5.0


def test_average_entry_and_partial_fills():
    f = Feed()
    f.fill(1, "buy", 0.0001, 100000)
    f.fill(2, "buy", 0.0003, 100400)
    st = f.e.state("BTC")
    assert st["position"] == pytest.approx(0.0004)
    assert st["avg_entry_price"] == pytest.approx(100300)
    assert st["entry_ts"] == T0 + 1 * S
    f.fill(3, "sell", 0.0001, 101000)  # reduce: average unchanged
    assert f.e.state("BTC")["avg_entry_price"] == pytest.approx(100300)
    f.fill(4, "sell", 0.0004, 99000)  # flip to short 0.0001 opened at 99000
    st = f.e.state("BTC")
    assert st["position"] == pytest.approx(-0.0001) and st["avg_entry_price"] == 99000
    assert st["entry_ts"] == T0 + 4 * S
    f.fill(5, "buy", 0.0001, 98000)
    st = f.e.state("BTC")
    assert st["position"] == 0.0 and st["avg_entry_price"] == 0.0 and st["entry_ts"] is None


def test_exit_fill_makes_the_strategy_flat_and_free_to_enter_again():
    f = entered_long()
    got = f.bbo(21 * 15 + 4, 100711.0)
    assert got[0].target == 0.0
    f.fill(21 * 15 + 5, "sell", 0.0002, 100711.0)
    st = f.e.state("BTC")
    assert st["position"] == 0.0 and st["pending_target"] is None
    # the uptrend continues: the next candle close enters again
    got = f.trend(30.0, candles=1, start=22)
    assert [o.target for o in got] == [pytest.approx(0.0002)]


# --------------------------------------------------------------------------- no spam

def test_exit_is_not_repeated_while_pending():
    f = entered_long()
    assert len(f.bbo(21 * 15 + 4, 100711.0)) == 1
    for t in range(21 * 15 + 5, 21 * 15 + 4 + 30, 3):
        assert f.bbo(t, 100711.0) == []  # same target pending, order not dead, < retry_after_s
    got = f.bbo(21 * 15 + 4 + 30, 100711.0)  # 30 s unanswered, later candle: sent once more
    assert [o.target for o in got] == [0.0] and got[0].reason.endswith(" retry")


def test_rejected_exit_is_retried_once_in_a_later_candle():
    f = entered_long()
    first = f.bbo(21 * 15 + 4, 100711.0)
    f.reject(21 * 15 + 5)
    assert f.bbo(21 * 15 + 6, 100711.0) == []  # same candle: no tight loop
    got = f.bbo(22 * 15 + 1, 100711.0)  # next candle
    assert [o.target for o in got] == [0.0] and got[0].reason.endswith(" retry")
    assert got[0].id != first[0].id
    assert f.bbo(22 * 15 + 2, 100711.0) == []  # retried: pending again


def test_rejected_entry_is_retried_at_a_later_candle_close():
    f = Feed()
    assert len(f.trend(30.0)) == 1
    f.reject(21 * 15 + 2)
    assert f.bbo(21 * 15 + 3, c(21, 30)) == []  # not a candle close
    got = f.trend(30.0, candles=1, start=22)
    assert [o.target for o in got] == [pytest.approx(0.0002)] and got[0].reason.endswith(" retry")


def test_unanswered_entry_is_resent_after_retry_after_s():
    f = Feed()
    f.trend(30.0)  # entry at t = 316 s
    assert f.trend(30.0, candles=1, start=22) == []  # t = 331: 15 s, still pending
    got = f.trend(30.0, candles=1, start=23)  # t = 346: 30 s without an answer
    assert len(got) == 1 and got[0].reason.endswith(" retry")


def test_partially_filled_then_canceled_entry_is_managed_as_a_position():
    f = Feed()
    f.trend(30.0)
    f.fill(21 * 15 + 2, "buy", 0.0001, c(21, 30))
    f.cancel(21 * 15 + 2, remaining=0.0001)
    assert f.e.position("BTC") == pytest.approx(0.0001)
    got = f.bbo(21 * 15 + 4, 100711.0)
    assert [o.target for o in got] == [0.0] and "take_profit" in got[0].reason


# ----------------------------------------------------------------------- misc inputs

def test_other_markets_and_bad_books_are_ignored():
    f = Feed()
    assert f.e.on_event(Bbo(id="x", ts_event=T0, market="SOL", bid_px=1, bid_sz=1, ask_px=2, ask_sz=1)) == []
    assert f.e.on_event(Bbo(id="y", ts_event=T0, market="BTC", bid_px=0, bid_sz=0, ask_px=2, ask_sz=1)) == []
    assert f.e.on_event(Bbo(id="z", ts_event=T0, market="BTC", bid_px=3, bid_sz=1, ask_px=2, ask_sz=1)) == []
    assert f.e.state("BTC")["mid"] is None


def test_determinism_identical_bytes():
    def scenario() -> bytes:
        f = Feed()
        f.trend(30.0)
        f.fill(21 * 15 + 2, "buy", 0.0002, c(21, 30), fill_id="A")
        f.bbo(21 * 15 + 4, 100711.0)
        f.fill(21 * 15 + 5, "sell", 0.0002, 100711.0, fill_id="B")
        f.trend(30.0, candles=5, start=22)
        f.reject(400)
        f.trend(-45.0, candles=40, start=27)
        assert len(f.out) >= 3
        return b"\n".join(encode(o) for o in f.out)

    assert scenario() == scenario()


def test_config_defaults_and_validation():
    cfg = TrendConfig()
    assert cfg.warmup_candles == 21 and cfg.candle_interval_ns == 15 * S
    assert cfg.max_hold_s == 180 and cfg.take_profit_bps == 8 and cfg.stop_loss_bps == 4
    merged = TrendConfig(sizes={"BTC": {"min_size": 0.001, "max_size": 0.002}})
    assert merged.sizes["BTC"].min_size == 0.001 and merged.sizes["ETH"].min_size == 0.005
    assert merged.sizes["BTC"].size_step == 0.00001  # kept from the default
    env_style = TrendConfig(sizes={"btc": {"max_size": 0.001}})  # LS_..._SIZES__BTC__MAX_SIZE
    assert env_style.sizes["BTC"].max_size == 0.001 and env_style.sizes["BTC"].min_size == 0.0002
    assert cfg.resolve_markets(["BTC", "ETH"]) == ["BTC", "ETH"]
    assert cfg.resolve_markets(["BTC", "PAXG"]) == ["BTC", "PAXG"]  # PAXG: sized from notional_usd
    with pytest.raises(ConfigError, match="no market to trade"):
        cfg.resolve_markets([])
    with pytest.raises(ValueError):
        TrendConfig(vol_min_bps=30)
    with pytest.raises(ValueError):
        TrendConfig(sizes={"BTC": {"min_size": 0.01, "max_size": 0.001}})


def test_locally_refused_exit_waits_for_retry_after_s():
    # the executor refused the order itself (code 0, e.g. a remainder below min_base_amount):
    # retrying in the next candle would be refused again, so the retry waits for the timer
    f = entered_long()
    assert len(f.bbo(21 * 15 + 4, 100711.0)) == 1
    f.e.on_event(OrderRejected(id="rej-local", ts_event=T0 + (21 * 15 + 5) * S, strategy="trend", market="BTC",
                               client_order_index=1, side="sell", price=1.0, size=0.0001, code=0,
                               reason="size 0.0001 below min_base_amount 0.0002 BTC"))
    for t in range(22 * 15 + 1, 21 * 15 + 4 + 30, 3):
        assert f.bbo(t, 100711.0) == []  # later candles, but < retry_after_s since sent
    got = f.bbo(21 * 15 + 4 + 30, 100711.0)
    assert [o.target for o in got] == [0.0] and got[0].reason.endswith(" retry")
