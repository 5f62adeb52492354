"""Market metadata and the integer scaling Lighter uses on the wire.

Lighter sends prices and sizes as integers: ``price_int = price * 10**price_decimals`` (ticks)
and ``base_amount_int = size * 10**size_decimals`` (lots), per market, from ``orderBookDetails``
(Lighter API reference, section 2). Orders below ``min_base_amount`` base units or
``min_quote_amount`` USD of notional are refused by the venue with code 21706.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

import msgspec

Rounding = Literal["nearest", "down", "up"]
_MODES = {"nearest": ROUND_HALF_EVEN, "down": ROUND_FLOOR, "up": ROUND_CEILING}


class MarketInfo(msgspec.Struct, kw_only=True, frozen=True):
    """One perp market.

    Attributes:
        symbol: Lighter symbol, e.g. ``BTC``.
        market_id: Lighter market index (ETH 0, BTC 1, PAXG 48).
        size_decimals: decimals of base amounts (lot size = 10**-size_decimals base units).
        price_decimals: decimals of prices (tick size = 10**-price_decimals USD).
        min_base_amount: smallest order size in base units.
        min_quote_amount: smallest order notional in USD.
        taker_fee: taker fee as a fraction of notional (0.0002 = 2 bps).
        maker_fee: maker fee as a fraction of notional.
        default_initial_margin_fraction: initial margin fraction of a new (account, market)
            pair, in 1/10000 of notional (Lighter's unit: ``10000 / leverage``; 500 = 5 % = 20x).
        min_initial_margin_fraction: the smallest initial margin fraction an account may choose
            (1/10000; 200 = 50x, the market's maximum leverage).
        maintenance_margin_fraction: margin fraction below which a position is liquidatable
            (1/10000).
        closeout_margin_fraction: margin fraction of the close-out (full liquidation) level
            (1/10000).

    The four margin fractions are Lighter's ``orderBookDetails`` integers (reference notes
    section 2: ``InitialMarginFraction = 10000 / leverage``); their defaults are the values of
    Lighter's ETH market (``tests/fixtures/lighter-samples/http_order_book_details.json``,
    captured from mainnet 2026-05-05).
    """

    symbol: str
    market_id: int
    size_decimals: int
    price_decimals: int
    min_base_amount: float
    min_quote_amount: float
    taker_fee: float = 0.0
    maker_fee: float = 0.0
    default_initial_margin_fraction: int = 500
    min_initial_margin_fraction: int = 200
    maintenance_margin_fraction: int = 120
    closeout_margin_fraction: int = 80

    @property
    def tick(self) -> float:
        """Tick size in USD."""
        return 10.0 ** -self.price_decimals

    @property
    def lot(self) -> float:
        """Lot size in base units."""
        return 10.0 ** -self.size_decimals

    def price_to_int(self, price: float, rounding: Rounding = "nearest") -> int:
        """Price in USD -> integer ticks. ``down``/``up`` round toward -inf/+inf (use ``down``
        for a buy limit and ``up`` for a sell limit to never be more aggressive than asked).
        The price is read as its shortest decimal text (``repr``), see :func:`scale_to_int`."""
        return scale_to_int(price, 10 ** self.price_decimals, rounding)

    def size_to_int(self, size: float, rounding: Rounding = "down") -> int:
        """Size in base units -> integer lots (default rounds down: never more than asked).
        The sign is dropped; the size is read as its shortest decimal text (``repr``)."""
        return scale_to_int(abs(size), 10 ** self.size_decimals, rounding)

    def int_to_price(self, ticks: int) -> float:
        """Integer ticks -> USD."""
        return ticks / 10 ** self.price_decimals

    def int_to_size(self, lots: int) -> float:
        """Integer lots -> base units."""
        return lots / 10 ** self.size_decimals

    def price_str(self, ticks: int) -> str:
        """Ticks as Lighter's decimal string with exactly ``price_decimals`` digits."""
        return _fmt(ticks, self.price_decimals)

    def size_str(self, lots: int) -> str:
        """Lots as Lighter's decimal string with exactly ``size_decimals`` digits."""
        return _fmt(lots, self.size_decimals)

    def check_amount(self, size: float, price: float) -> str | None:
        """Why an order of ``size`` base units at ``price`` USD is below the market minimum, or
        ``None`` if it is tradable."""
        lots = self.size_to_int(size)
        if lots <= 0 or self.int_to_size(lots) + 1e-12 < self.min_base_amount:
            return f"size {size:g} below min_base_amount {self.min_base_amount:g} {self.symbol}"
        notional = self.int_to_size(lots) * price
        if notional + 1e-9 < self.min_quote_amount:
            return f"notional {notional:.4f} USD below min_quote_amount {self.min_quote_amount:g} USD"
        return None

    @classmethod
    def from_lighter(cls, d: dict[str, Any]) -> MarketInfo:
        """Build from one ``orderBookDetails`` / ``orderBooks`` entry (strings or numbers;
        fees there are percent, e.g. ``"0.0280"`` = 0.028 %).

        Raises:
            KeyError, ValueError: a required field is missing or not a number.
        """
        return cls(
            symbol=str(d["symbol"]),
            market_id=int(d["market_id"]),
            size_decimals=int(d.get("size_decimals", d.get("supported_size_decimals"))),
            price_decimals=int(d.get("price_decimals", d.get("supported_price_decimals"))),
            min_base_amount=float(d["min_base_amount"]),
            min_quote_amount=float(d["min_quote_amount"]),
            taker_fee=float(d.get("taker_fee") or 0) / 100.0,
            maker_fee=float(d.get("maker_fee") or 0) / 100.0,
            **{k: int(d[k]) for k in MARGIN_FIELDS if d.get(k) is not None},
        )

    def to_lighter(self) -> dict[str, Any]:
        """The ``orderBookDetails`` fields Lighter serves for this market (fees as percent
        strings, amounts as decimal strings)."""
        return {
            "symbol": self.symbol, "market_id": self.market_id, "market_type": "perp", "status": "active",
            "taker_fee": f"{self.taker_fee * 100:.4f}", "maker_fee": f"{self.maker_fee * 100:.4f}",
            "min_base_amount": f"{self.min_base_amount:.{self.size_decimals}f}",
            "min_quote_amount": f"{self.min_quote_amount:.6f}",
            "supported_size_decimals": self.size_decimals, "supported_price_decimals": self.price_decimals,
            "supported_quote_decimals": 6, "size_decimals": self.size_decimals,
            "price_decimals": self.price_decimals, "quote_multiplier": 1,
            **{k: getattr(self, k) for k in MARGIN_FIELDS},
        }


#: The margin fraction fields of ``orderBookDetails`` (1/10000 of notional), as on MarketInfo.
MARGIN_FIELDS = ("default_initial_margin_fraction", "min_initial_margin_fraction", "maintenance_margin_fraction",
                 "closeout_margin_fraction")


def market_builtins(m: MarketInfo) -> dict[str, Any]:
    """``m`` as JSON-ready builtins for files (recording headers, archive metadata): every field
    but the margin fractions that equal their defaults, so a file of markets without their own
    fractions is byte-identical to one written before the fractions existed (reading fills the
    defaults back in)."""
    d = msgspec.to_builtins(m)
    probe = MarketInfo(symbol="", market_id=0, size_decimals=0, price_decimals=0, min_base_amount=0.0,
                       min_quote_amount=0.0)
    for k in MARGIN_FIELDS:
        if d[k] == getattr(probe, k):
            del d[k]
    return d


def scale_to_int(x: float, scale: int, rounding: Rounding) -> int:
    """``x`` read as its shortest decimal text (``Decimal(repr(x))``), times the integer
    ``scale`` (``10**decimals``), rounded to an integer with ``rounding`` (``nearest``: half to
    even; ``down``/``up``: toward -inf/+inf).

    Exact, and fast: the float product ``y = x * scale`` differs from the decimal product by at
    most ~1.5 ulp(y) (the shortest repr is within half an ulp of ``x``, the product rounds once),
    so whenever ``y`` is farther than ``_TOL(y)`` (``1e-9 + |y| * 2**-40``, orders of magnitude
    above that bound) from a rounding boundary (a half-integer for ``nearest``, an integer for
    ``down``/``up``) the float rounding is the decimal one. Near a boundary, and for NaN/inf, the
    :class:`decimal.Decimal` computation decides (and raises as it does: ``ValueError`` for NaN,
    ``OverflowError`` for infinities).
    """
    y = x * scale
    if y - y == 0.0:  # finite
        tol = 1e-9 + abs(y) * 9.094947017729282e-13  # 2**-40
        if rounding == "nearest":
            r = round(y)
            if abs(abs(y - r) - 0.5) > tol:
                return r
        elif rounding == "down":
            r = math.floor(y)
            if y - r > tol and r + 1 - y > tol:
                return r
        else:
            r = math.ceil(y)
            if r - y > tol and y - (r - 1) > tol:
                return r
    return int((Decimal(repr(x)) * scale).to_integral_value(_MODES[rounding]))


def _fmt(n: int, decimals: int) -> str:
    if decimals == 0:
        return str(n)
    sign = "-" if n < 0 else ""
    s = str(abs(n)).rjust(decimals + 1, "0")
    return f"{sign}{s[:-decimals]}.{s[-decimals:]}"


def bps(x: float, ref: float) -> float:
    """``x`` as basis points of ``ref`` (1 bp = 0.01 %)."""
    return x / ref * 1e4 if ref else math.nan


#: Lighter's smallest order notional on its perp markets (``min_quote_amount``, 2025), USD.
LIGHTER_MIN_QUOTE_USD = 10.0


def guess_market(symbol: str, mid: float) -> MarketInfo:
    """Metadata for a market nobody described, from one mid price (USD, > 0).

    Lighter's markets quote about six significant digits and have ``size_decimals +
    price_decimals`` of about 6 (ETH 2 + 4, SOL 3 + 3, DOGE 6 + 0; BTC 1 + 5), so:
    ``price_decimals = clamp(5 - floor(log10(mid)), 0, 8)``, ``size_decimals = max(0, 6 -
    price_decimals)``, ``min_base_amount`` one lot, ``min_quote_amount``
    :data:`LIGHTER_MIN_QUOTE_USD`, ``market_id`` -1, no fees. A guess: the executor rounds to the
    venue's real lot and tick.

    Raises:
        ValueError: ``mid`` is not a positive finite number.
    """
    if not (mid > 0 and math.isfinite(mid)):
        raise ValueError(f"guess_market {symbol}: mid must be > 0, got {mid!r}")
    pd = min(8, max(0, 5 - math.floor(math.log10(mid))))
    sd = max(0, 6 - pd)
    return MarketInfo(symbol=symbol, market_id=-1, size_decimals=sd, price_decimals=pd,
                      min_base_amount=10.0 ** -sd, min_quote_amount=LIGHTER_MIN_QUOTE_USD)


def market_info(symbol: str, mid: float, given: Mapping[str, MarketInfo] | None = None) -> MarketInfo:
    """The metadata of ``symbol``: ``given[symbol]`` (e.g. the backtest data's markets), else
    :data:`KNOWN_MARKETS`, else :func:`guess_market` from ``mid``."""
    info = (given or {}).get(symbol) or KNOWN_MARKETS.get(symbol)
    return info if info is not None else guess_market(symbol, mid)


#: Lighter metadata of the markets in the bundled data (orderBookDetails, 2025). Margin fractions
#: (1/10000): ETH's are those of Lighter's mainnet capture
#: ``tests/fixtures/lighter-samples/http_order_book_details.json`` (2026-05-05: default 500 =
#: 20x, min 200 = 50x, maintenance 120, close-out 80); BTC's are not in a bundled sample and are
#: assumed equal to ETH's (both are 50x-max markets on Lighter's front-end).
KNOWN_MARKETS: dict[str, MarketInfo] = {
    "BTC": MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1,
                      min_base_amount=0.0002, min_quote_amount=10.0, default_initial_margin_fraction=500,
                      min_initial_margin_fraction=200, maintenance_margin_fraction=120, closeout_margin_fraction=80),
    "ETH": MarketInfo(symbol="ETH", market_id=0, size_decimals=4, price_decimals=2,
                      min_base_amount=0.005, min_quote_amount=10.0, default_initial_margin_fraction=500,
                      min_initial_margin_fraction=200, maintenance_margin_fraction=120, closeout_margin_fraction=80),
}
