"""Copy-trade sizing: pure functions from a request and what the venue says to a target position.

No I/O and no clock: :mod:`services.copytrade.service` reads the account and the book and calls
:func:`plan`. Sizes are base units, prices USD, values USD.

Seed 004 (``trading_service.execute_trade``, docs/copytrade.md) semantics, with its bugs fixed:

- ``long``/``short``: quote = total asset value x ``reference_position_ratio`` x ``scaling_factor``;
  base = quote / mid, rounded **down** to the market's lot; the order buys (long) or sells (short)
  that much, so the new target is the current position +/- base. Below the market minimum
  (``min_base_amount`` / ``min_quote_amount``) the request is skipped (seed at 3c1e5e2).
- ``close``: target 0.
- adjust ``increase``/``decrease`` by ``percentage`` p in (0, 1]: base = |position| x p rounded down;
  increase trades in the position's direction, decrease against it (the seed's override sizing).
- The position is the ``copytrade`` strategy's own (its last target), not the account's: other
  strategies share the account and are not the API's to close.
- Stop-loss (seed §5.6 step 9): after opening or adding, for the whole position, trigger =
  entry x (1 - IMF x stop_loss_ratio) for a long, x (1 + IMF x ratio) for a short; fallback
  entry x (1 -/+ ratio) when that is not positive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.markets import MarketInfo

TradeType = Literal["long", "short", "close"]
AdjustType = Literal["increase", "decrease"]


@dataclass(frozen=True)
class Plan:
    """What one request does.

    Attributes:
        target: the strategy's new signed position (base units); equal to the current one when skipped.
        delta: target - current (base units; + buys).
        skipped: why nothing is traded (empty when a target is sent).
        quote_usd: notional of the order at ``price`` (USD).
        price: the mid price the size was computed at (USD).
        stop_trigger: trigger price of the reduce-only stop-loss the position should carry (USD),
            None when the request does not open or add (close, reduce, flip) or the target is flat.
    """

    target: float
    delta: float
    skipped: str = ""
    quote_usd: float = 0.0
    price: float = 0.0
    stop_trigger: float | None = None


def floor_lot(size: float, market: MarketInfo) -> float:
    """``size`` (base units, >= 0) rounded down to the market's lot."""
    return market.int_to_size(market.size_to_int(max(0.0, size), "down"))


def _signed_lots(size: float, market: MarketInfo) -> int:
    """Signed base units -> signed integer lots (nearest)."""
    lots = market.size_to_int(size, "nearest")
    return -lots if size < 0 else lots


def stop_trigger(entry: float, sign: int, stop_loss_ratio: float, imf: float, market: MarketInfo) -> float:
    """Stop-loss trigger price (USD) for a position of ``sign`` (+1 long, -1 short) entered at
    ``entry``: a loss of ``stop_loss_ratio`` of the initial margin (``imf`` = initial margin
    fraction, e.g. 0.3333). Rounded to a tick away from the entry (down for a long, up for a
    short). Seed 004 §5.6 step 9."""
    trig = entry * (1 - sign * imf * stop_loss_ratio)
    if trig <= 0:
        trig = entry * (1 - sign * stop_loss_ratio)
    ticks = market.price_to_int(trig, "down" if sign > 0 else "up")
    return market.int_to_price(max(1, ticks))


def _below_min(base: float, price: float, market: MarketInfo) -> str:
    if base <= 0:
        return "size rounds down to zero lots"
    if base < market.min_base_amount:
        return f"size {base} below the market minimum {market.min_base_amount}"
    if base * price < market.min_quote_amount:
        return f"notional {base * price:.2f} USD below the market minimum {market.min_quote_amount}"
    return ""


def _with_stop(current: float, target: float, price: float, stop_loss_ratio: float, imf: float,
               market: MarketInfo, entry: float) -> float | None:
    """The stop trigger after moving from ``current`` to ``target``: only when opening or adding."""
    opening_or_adding = target != 0 and (current == 0 or (current > 0) == (target > 0)) and abs(target) > abs(current)
    if not opening_or_adding:
        return None
    sign = 1 if target > 0 else -1
    # volume-weighted entry of the new position (the fill price is not known yet: the mid)
    avg = price if current == 0 or entry <= 0 else (abs(current) * entry + (abs(target) - abs(current)) * price) / abs(target)
    return stop_trigger(avg, sign, stop_loss_ratio, imf, market)


def plan_trade(trade_type: TradeType, ratio: float, current: float, entry: float, total_asset_value: float,
               price: float, market: MarketInfo, scaling_factor: float, stop_loss_ratio: float,
               imf: float) -> Plan:
    """Plan ``POST /api/trade``.

    Args:
        trade_type: ``long``, ``short`` or ``close``.
        ratio: ``reference_position_ratio`` in [0, 1].
        current: the strategy's current signed position (base units); ``entry`` its entry price (USD, 0 if flat).
        total_asset_value: the account's total asset value (USD).
        price: mid price (USD, > 0).
        market: lot and minimums.
        scaling_factor, stop_loss_ratio, imf: see :class:`~services.copytrade.config.CopytradeConfig`.

    Raises:
        ValueError: ``price`` not positive.
    """
    if not price > 0:
        raise ValueError(f"price must be positive, got {price}")
    if trade_type == "close":
        if current == 0:
            return Plan(current, 0.0, skipped="no copytrade position to close", price=price)
        return Plan(0.0, -current, quote_usd=abs(current) * price, price=price)
    quote = max(0.0, total_asset_value) * ratio * scaling_factor
    base = floor_lot(quote / price, market)
    why = _below_min(base, price, market)
    if why:
        return Plan(current, 0.0, skipped=why, quote_usd=base * price, price=price)
    sign = 1 if trade_type == "long" else -1
    target = market.int_to_size(_signed_lots(current, market) + sign * market.size_to_int(base, "down"))
    return Plan(target, target - current, quote_usd=base * price, price=price,
                stop_trigger=_with_stop(current, target, price, stop_loss_ratio, imf, market, entry))


def plan_adjust(adjustment_type: AdjustType, percentage: float, current: float, entry: float, price: float,
                market: MarketInfo, stop_loss_ratio: float, imf: float) -> Plan:
    """Plan ``POST /api/trade/adjust``: change the position by ``percentage`` (0, 1] of its size,
    in its direction (``increase``) or against it (``decrease``). Arguments as :func:`plan_trade`.

    Raises:
        ValueError: ``price`` not positive.
    """
    if not price > 0:
        raise ValueError(f"price must be positive, got {price}")
    if current == 0:
        return Plan(current, 0.0, skipped="no copytrade position to adjust", price=price)
    base = floor_lot(abs(current) * percentage, market)
    why = _below_min(base, price, market)
    if why:
        return Plan(current, 0.0, skipped=why, quote_usd=base * price, price=price)
    pos_sign = 1 if current > 0 else -1
    step = pos_sign * (1 if adjustment_type == "increase" else -1)
    target = market.int_to_size(_signed_lots(current, market) + step * market.size_to_int(base, "down"))
    return Plan(target, target - current, quote_usd=base * price, price=price,
                stop_trigger=_with_stop(current, target, price, stop_loss_ratio, imf, market, entry))
