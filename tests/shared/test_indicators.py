"""Indicators against hand-computed values and naive full-recompute references."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from shared.indicators import ATR, EMA, RSI, SMA, Bands, Bollinger, RealizedVolBps, true_range


def run(ind, xs):
    return [ind.update(x) for x in xs]


def approx_list(got, want, rel=1e-12):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        if w is None:
            assert g is None
        else:
            assert g == pytest.approx(w, rel=rel, abs=1e-12)


# ----------------------------------------------------------------------------------------- SMA

def test_sma_hand_values():
    approx_list(run(SMA(3), [1, 2, 3, 4, 5, 9]), [None, None, 2, 3, 4, 6])


def test_sma_period_one_and_bad_period():
    approx_list(run(SMA(1), [5.0, 7.0]), [5.0, 7.0])
    with pytest.raises(ValueError):
        SMA(0)


def test_sma_no_drift_over_long_series():
    rng = random.Random(1)
    xs = [115_000 + rng.gauss(0, 50) for _ in range(20_000)]
    sma = SMA(20)
    got = run(sma, xs)
    assert got[-1] == pytest.approx(math.fsum(xs[-20:]) / 20, rel=1e-14)


# ----------------------------------------------------------------------------------------- EMA

def test_ema_seeded_with_sma_then_recursive():
    # EMA(3): alpha 0.5; first value = SMA(1,2,3) = 2; then 2 + .5*(10-2) = 6; 6 + .5*(4-6) = 5
    approx_list(run(EMA(3), [1, 2, 3, 10, 4]), [None, None, 2, 6, 5])


def test_ema_linear_series_lags_by_half_period():
    # on x_k = k the SMA seed of the first n is (n-1)/2 behind, and the EMA keeps that lag exactly
    got = run(EMA(21), [float(k) for k in range(60)])
    assert got[19] is None and got[20] == pytest.approx(10.0)
    assert got[59] == pytest.approx(59 - 10.0)


def test_ema_matches_naive_reference():
    rng = random.Random(2)
    xs = [100 + rng.gauss(0, 1) for _ in range(300)]
    n, a = 8, 2 / 9
    ref = [None] * (n - 1) + [sum(xs[:n]) / n]
    for x in xs[n:]:
        ref.append(ref[-1] + a * (x - ref[-1]))
    approx_list(run(EMA(n), xs), ref, rel=1e-13)


# ----------------------------------------------------------------------------------------- RSI

def test_rsi_wilder_hand_values():
    # changes +1 +1 -1 +2 0 -1 with n = 3:
    # first: gain 2/3, loss 1/3 -> 66.67; then g=(2g+2)/3=10/9, l=2/9 -> 83.33;
    # g=20/27, l=4/27 -> 83.33; g=40/81, l=35/81 -> 53.33
    got = run(RSI(3), [10, 11, 12, 11, 13, 13, 12])
    approx_list(got, [None, None, None, 200 / 3, 250 / 3, 250 / 3, 160 / 3])


def test_rsi_all_gains_is_100_all_losses_is_0():
    assert run(RSI(3), [1, 2, 3, 4])[-1] == 100.0
    assert run(RSI(3), [4, 3, 2, 1])[-1] == 0.0


def test_rsi_no_movement_uses_flat_value():
    assert run(RSI(3), [5, 5, 5, 5])[-1] == 0.0  # TA-Lib
    assert run(RSI(3, flat_value=50.0), [5, 5, 5, 5])[-1] == 50.0


def test_rsi_first_value_at_n_plus_one_and_matches_reference():
    rng = random.Random(3)
    xs = [100 + rng.gauss(0, 1) for _ in range(200)]
    n = 14
    got = run(RSI(n), xs)
    assert got[n - 1] is None and got[n] is not None
    d = np.diff(xs)
    g = np.where(d > 0, d, 0.0)
    l_ = np.where(d < 0, -d, 0.0)
    ag, al = g[:n].mean(), l_[:n].mean()
    ref = [None] * n + [100 * ag / (ag + al)]
    for i in range(n, len(d)):
        ag = (ag * (n - 1) + g[i]) / n
        al = (al * (n - 1) + l_[i]) / n
        ref.append(100 * ag / (ag + al))
    approx_list(got, ref, rel=1e-12)


# ----------------------------------------------------------------------------------- Bollinger

def test_bollinger_hand_values():
    bb = Bollinger(3, 2.0)
    got = run(bb, [1, 2, 3, 4, 6])
    assert got[:2] == [None, None]
    s = math.sqrt(2 / 3)  # population std of (1,2,3)
    assert got[2].middle == pytest.approx(2) and got[2].std == pytest.approx(s)
    assert got[2].upper == pytest.approx(2 + 2 * s) and got[2].lower == pytest.approx(2 - 2 * s)
    assert got[3].middle == pytest.approx(3) and got[3].std == pytest.approx(s)
    # (3, 4, 6): mean 13/3, squared deviations 16/9 + 1/9 + 25/9 -> var 14/9
    assert got[4].middle == pytest.approx(13 / 3) and got[4].std == pytest.approx(math.sqrt(14) / 3)


def test_bollinger_position():
    b = Bands(upper=12.0, middle=10.0, lower=8.0, std=1.0)
    assert b.position(10.0) == 0.5 and b.position(8.0) == 0.0 and b.position(13.0) == 1.25
    assert Bands(5.0, 5.0, 5.0, 0.0).position(7.0) == 0.5


def test_bollinger_constant_series_has_zero_std():
    got = run(Bollinger(5), [115_000.1] * 50)
    assert got[-1].std == 0.0 and got[-1].upper == got[-1].lower == pytest.approx(115_000.1)


def test_bollinger_accurate_at_btc_prices_over_long_series():
    """Sliding updates stay within 1e-9 relative of a two-pass std at BTC price levels."""
    rng = np.random.default_rng(4)
    xs = 115_000 + np.cumsum(rng.normal(0, 3, 30_000))
    bb = Bollinger(20, 2.0)
    got = run(bb, xs.tolist())
    for i in list(range(19, 200)) + list(range(29_800, 30_000)):
        w = xs[i - 19:i + 1]
        ref_std = float(np.std(w))  # population (ddof=0)
        assert got[i].middle == pytest.approx(float(w.mean()), rel=1e-13)
        assert got[i].std == pytest.approx(ref_std, rel=1e-9)
        assert got[i].upper == pytest.approx(float(w.mean()) + 2 * ref_std, rel=1e-12)


# ----------------------------------------------------------------------------------------- ATR

def test_true_range():
    assert true_range(11, 9, 9) == 2
    assert true_range(14, 12, 14) == 2
    assert true_range(20, 19, 8) == 12


def test_atr_wilder_hand_values():
    bars = [(10, 8, 9), (11, 9, 10), (12, 10, 11), (15, 11, 14), (14, 12, 12), (13, 7, 8)]
    # TR from the 2nd bar: 2, 2, 4, 2, 6. ATR(3): first = (2+2+4)/3 = 8/3 at the 4th bar,
    # then (2*8/3 + 2)/3 = 22/9, then (2*22/9 + 6)/3 = 98/27
    atr = ATR(3)
    got = [atr.update(*b) for b in bars]
    approx_list(got, [None, None, None, 8 / 3, 22 / 9, 98 / 27])


def test_atr_period_one_is_true_range():
    atr = ATR(1)
    got = [atr.update(*b) for b in [(10, 8, 9), (11, 9, 10), (20, 19, 19.5)]]
    approx_list(got, [None, 2, 10])


# ------------------------------------------------------------------------------ realized vol

def test_realized_vol_hand_values():
    # |returns|: 1%, 1/101, 2%, 0 -> window 3
    got = run(RealizedVolBps(3), [100, 101, 100, 102, 102])
    r = [0.01, 1 / 101, 0.02, 0.0]
    approx_list(got, [None, None, None, sum(r[:3]) / 3 * 1e4, sum(r[1:]) / 3 * 1e4])


def test_realized_vol_min_returns():
    got = run(RealizedVolBps(3, min_returns=1), [100, 101, 100])
    approx_list(got, [None, 100.0, (0.01 + 1 / 101) / 2 * 1e4])
    with pytest.raises(ValueError):
        RealizedVolBps(3, min_returns=4)


# ------------------------------------------------------------------------ awesome oscillator

def test_ao_equals_difference_of_median_smas():
    from shared.indicators import AO

    rng = random.Random(5)
    bars = []
    p = 100.0
    for _ in range(500):
        p += rng.gauss(0, 1)
        bars.append((p + rng.random(), p - rng.random()))
    ao, f, s = AO(), SMA(5), SMA(34)
    for h, lo in bars:
        got = ao.update(h, lo)
        a, b = f.update((h + lo) / 2), s.update((h + lo) / 2)
        assert got == (None if b is None else pytest.approx(a - b, abs=1e-12))
    assert ao.value is not None
