"""Incremental technical indicators: O(1) per update, TA-Lib semantics.

Every indicator is a small class with ``update(...)`` that takes the next bar's value and returns
the indicator value, or ``None`` while it is still warming up. They hold only what the next
update needs, so a strategy can feed them one candle at a time forever.

Output alignment follows TA-Lib (with its default "unstable period" of 0 and the default
compatibility mode), i.e. feeding a whole series value by value yields the same numbers, at the
same positions, as the TA-Lib function applied to the whole series:

=================  ====================  =====================================================
class              first value at input  TA-Lib function
=================  ====================  =====================================================
:class:`SMA`       ``n``                 ``SMA(n)``
:class:`EMA`       ``n``                 ``EMA(n)`` (seeded with the SMA of the first n)
:class:`RSI`       ``n + 1``             ``RSI(n)`` (Wilder smoothing)
:class:`Bollinger` ``n``                 ``BBANDS(n, k, k, matype=SMA)`` (population std)
:class:`ATR`       ``n + 1``             ``ATR(n)`` (Wilder smoothing of TRANGE)
:class:`AO`        ``slow``              ``SMA(median, fast) − SMA(median, slow)``
=================  ====================  =====================================================

(``first value at input`` is 1-based: the TA-Lib lookback, i.e. the number of leading NaNs,
is one less.)

:class:`RealizedVolBps` (mean absolute close-to-close return in basis points) has no TA-Lib
counterpart; it is the volatility filter of the seed RSI+BB strategy.

Sources: J. Welles Wilder Jr., *New Concepts in Technical Trading Systems* (1978) for RSI,
ATR and the smoothing ``avg = (avg·(n−1) + x) / n``; John Bollinger, *Bollinger on Bollinger
Bands* (2001) for the bands (SMA ± k·σ, σ the population standard deviation of the window);
Bill Williams, *Trading Chaos* (1995) for the Awesome Oscillator (SMA5 − SMA34 of the median
price ``(high + low) / 2``). ``docs/indicators.md`` has the formulas and the TA-Lib parity test.

Numerics: running sums drift when values are added and removed for ever, so :class:`SMA`,
:class:`Bollinger` and :class:`RealizedVolBps` recompute their sums exactly from the window every
``n`` updates (amortised O(1)); :class:`Bollinger` updates the window variance Welford-style
(centred, no ``E[x²] − E[x]²`` cancellation), which is accurate at BTC price levels.
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

# TA-Lib's TA_IS_ZERO / TA_IS_ZERO_OR_NEG thresholds (ta_func/ta_utility.h): RSI reports its
# "no movement" value when avg gain + avg loss is below this, and STDDEV/BBANDS report σ = 0 when
# the variance is below it. Absolute values, so they matter only for prices far below 1 USD.
TA_EPSILON = 1e-8


def _check_period(n: int, minimum: int = 1) -> int:
    if not isinstance(n, int) or n < minimum:
        raise ValueError(f"period must be an integer >= {minimum}, got {n!r}")
    return n


class SMA:
    """Simple moving average of the last ``n`` values.

    ``update(x)`` returns ``mean(x[-n:])``, ``None`` for the first ``n − 1`` values.
    """

    def __init__(self, n: int) -> None:
        self.n = _check_period(n)
        self._win: deque[float] = deque()
        self._sum = 0.0
        self._since_exact = 0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        self._win.append(x)
        self._sum += x
        if len(self._win) > self.n:
            self._sum -= self._win.popleft()
        self._since_exact += 1
        if self._since_exact >= self.n:  # drop accumulated rounding error (amortised O(1))
            self._sum = math.fsum(self._win)
            self._since_exact = 0
        if len(self._win) < self.n:
            return None
        self.value = self._sum / self.n
        return self.value


class EMA:
    """Exponential moving average with ``α = 2 / (n + 1)`` over the full history.

    Seeded like TA-Lib: the first value (at the ``n``-th input) is the SMA of the first ``n``
    inputs; afterwards ``ema = ema + α·(x − ema)``. ``None`` before the ``n``-th input.
    """

    def __init__(self, n: int) -> None:
        self.n = _check_period(n)
        self.alpha = 2.0 / (n + 1)
        self._count = 0
        self._seed_sum = 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        if self.value is None:
            self._count += 1
            self._seed_sum += x
            if self._count < self.n:
                return None
            self.value = self._seed_sum / self.n
            return self.value
        self.value = (x - self.value) * self.alpha + self.value
        return self.value


class RSI:
    """Wilder's Relative Strength Index (Wilder 1978), TA-Lib ``RSI`` semantics.

    With ``Δ_t = x_t − x_{t−1}``: the first averages are the plain means of the gains
    ``max(Δ, 0)`` and losses ``max(−Δ, 0)`` of the first ``n`` changes; then
    ``avg = (avg·(n − 1) + current) / n``. ``RSI = 100·avg_gain / (avg_gain + avg_loss)``
    (= ``100 − 100/(1 + RS)``), in 0..100.

    The first value comes at the ``(n + 1)``-th input. Only gains gives 100, only losses 0. When
    ``avg_gain + avg_loss`` is (TA-Lib-)zero, i.e. the price did not move at all, the RSI is
    undefined: TA-Lib returns 0, which is the default ``flat_value``; a strategy that wants a
    neutral reading passes ``flat_value=50``.
    """

    def __init__(self, n: int = 14, flat_value: float = 0.0) -> None:
        self.n = _check_period(n)
        self.flat_value = flat_value
        self._prev: float | None = None
        self._changes = 0
        self.avg_gain = 0.0
        self.avg_loss = 0.0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        prev, self._prev = self._prev, x
        if prev is None:
            return None
        d = x - prev
        gain = d if d > 0 else 0.0
        loss = -d if d < 0 else 0.0
        self._changes += 1
        n = self.n
        if self._changes < n:
            self.avg_gain += gain
            self.avg_loss += loss
            return None
        if self._changes == n:
            self.avg_gain = (self.avg_gain + gain) / n
            self.avg_loss = (self.avg_loss + loss) / n
        else:
            self.avg_gain = (self.avg_gain * (n - 1) + gain) / n
            self.avg_loss = (self.avg_loss * (n - 1) + loss) / n
        total = self.avg_gain + self.avg_loss
        self.value = 100.0 * (self.avg_gain / total) if abs(total) >= TA_EPSILON else self.flat_value
        return self.value


class Bands(NamedTuple):
    """Bollinger bands: ``middle`` = SMA, ``upper/lower`` = middle ± k·std (same units as x)."""

    upper: float
    middle: float
    lower: float
    std: float

    def position(self, price: float) -> float:
        """Where ``price`` sits in the band: 0 at ``lower``, 1 at ``upper`` (may be outside
        0..1); 0.5 when the bands have collapsed (``upper == lower``)."""
        width = self.upper - self.lower
        return (price - self.lower) / width if width > 0 else 0.5


class Bollinger:
    """Bollinger bands (Bollinger 2001): SMA(n) ± k·σ with σ the **population** standard
    deviation (divide by n) of the last ``n`` values; TA-Lib ``BBANDS(n, k, k, SMA)``.

    ``update(x)`` returns :class:`Bands`, ``None`` for the first ``n − 1`` values. The window
    mean and sum of squared deviations are updated in O(1) (Welford's update generalised to a
    sliding window) and recomputed exactly every ``n`` updates. As in TA-Lib, a variance below
    1e-8 is reported as σ = 0.
    """

    def __init__(self, n: int = 20, k: float = 2.0) -> None:
        self.n = _check_period(n)
        self.k = float(k)
        self._win: deque[float] = deque()
        self._mean = 0.0
        self._m2 = 0.0
        self._since_exact = 0
        self.value: Bands | None = None

    def update(self, x: float) -> Bands | None:
        win = self._win
        win.append(x)
        if len(win) <= self.n:
            count = len(win)
            delta = x - self._mean
            self._mean += delta / count
            self._m2 += delta * (x - self._mean)
        else:
            old = win.popleft()
            new_mean = self._mean + (x - old) / self.n
            self._m2 += (x - old) * (x - new_mean + old - self._mean)
            self._mean = new_mean
        self._since_exact += 1
        if self._since_exact >= self.n:
            self._mean = math.fsum(win) / len(win)
            self._m2 = math.fsum((v - self._mean) ** 2 for v in win)
            self._since_exact = 0
        if len(win) < self.n:
            return None
        var = max(self._m2, 0.0) / self.n
        std = math.sqrt(var) if var >= TA_EPSILON else 0.0
        mid = self._mean
        self.value = Bands(mid + self.k * std, mid, mid - self.k * std, std)
        return self.value


def true_range(high: float, low: float, prev_close: float) -> float:
    """Wilder's true range: ``max(high − low, |high − prev_close|, |low − prev_close|)``."""
    return max(high - low, abs(high - prev_close), abs(low - prev_close))


class ATR:
    """Average True Range (Wilder 1978), TA-Lib ``ATR`` semantics.

    The true range needs the previous close, so the first bar yields none (TA-Lib's ``TRANGE``
    starts at the second bar). The first ATR, at the ``(n + 1)``-th bar, is the mean of the
    first ``n`` true ranges; then ``atr = (atr·(n − 1) + tr) / n``. ``update(high, low, close)``
    returns the ATR in price units or ``None`` while warming up.
    """

    def __init__(self, n: int = 14) -> None:
        self.n = _check_period(n)
        self._prev_close: float | None = None
        self._count = 0
        self._sum = 0.0
        self.value: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        prev, self._prev_close = self._prev_close, close
        if prev is None:
            return None
        tr = true_range(high, low, prev)
        n = self.n
        if self.value is None:
            self._count += 1
            self._sum += tr
            if self._count < n:
                return None
            self.value = self._sum / n
            return self.value
        self.value = (self.value * (n - 1) + tr) / n
        return self.value


class AO:
    """Awesome Oscillator (Bill Williams): ``SMA(fast) − SMA(slow)`` of the median price
    ``(high + low) / 2``; defaults 5 and 34.

    ``update(high, low)`` returns the oscillator in price units, ``None`` for the first
    ``slow − 1`` bars; equals ``talib.SMA(median, fast) − talib.SMA(median, slow)``. Both
    averages are :class:`SMA` (exact resync every window), so the difference of two close
    numbers carries no accumulated drift.
    """

    def __init__(self, fast: int = 5, slow: int = 34) -> None:
        self.fast = _check_period(fast)
        self.slow = _check_period(slow)
        if self.fast >= self.slow:
            raise ValueError(f"fast period must be below slow period, got {fast} >= {slow}")
        self._fast = SMA(self.fast)
        self._slow = SMA(self.slow)
        self.value: float | None = None

    def update(self, high: float, low: float) -> float | None:
        median = (high + low) / 2.0
        f = self._fast.update(median)
        s = self._slow.update(median)
        if s is None or f is None:
            return None
        self.value = f - s
        return self.value


class RealizedVolBps:
    """Mean absolute close-to-close return over the last ``n`` returns, in basis points:
    ``1e4 · mean(|x_t / x_{t−1} − 1|)``.

    It needs ``n + 1`` values for the first full window; ``min_returns`` (default ``n``) lets it
    answer earlier, over the returns seen so far. A return after a non-positive price is skipped.
    """

    def __init__(self, n: int = 20, min_returns: int | None = None) -> None:
        self.n = _check_period(n)
        self.min_returns = self.n if min_returns is None else _check_period(min_returns)
        if self.min_returns > self.n:
            raise ValueError("min_returns must not exceed n")
        self._prev: float | None = None
        self._win: deque[float] = deque()
        self._sum = 0.0
        self._since_exact = 0
        self.value: float | None = None

    def update(self, x: float) -> float | None:
        prev, self._prev = self._prev, x
        if prev is None or prev <= 0:
            return self.value if self._win and len(self._win) >= self.min_returns else None
        r = abs(x / prev - 1.0)
        self._win.append(r)
        self._sum += r
        if len(self._win) > self.n:
            self._sum -= self._win.popleft()
        self._since_exact += 1
        if self._since_exact >= self.n:
            self._sum = math.fsum(self._win)
            self._since_exact = 0
        if len(self._win) < self.min_returns:
            return None
        self.value = self._sum / len(self._win) * 1e4
        return self.value
