"""venue-sim margin model: per (account, market) leverage and margin mode, and the account's
margin figures (equity, initial/maintenance requirement, available balance, liquidation price).

Units: margin fractions are Lighter's integers in 1/10000 of notional (``10000 / leverage``;
reference notes section 2; ``orderBookDetails`` ``default_initial_margin_fraction`` etc., see
:class:`shared.markets.MarketInfo`); sizes in lots, USD amounts as floats.

The formulas (documented in docs/venue-sim.md, "Margin"; Lighter publishes the field names, not
its risk engine, so these follow the usual perp-DEX definitions, strict where unknown):

* per market m, at mark price ``P`` (the recorded mark, else the mid, else the position's entry
  or the order's price): ``upnl = size * (P - entry)``;
  ``worst = max(|pos + open bids|, |pos - open asks|)`` lots, open orders being resting, stop and
  accepted-but-pending create orders that are not reduce-only;
  ``IMR_m = worst * P * IMF_m / 10000``; ``MMR_m = |pos| * P * MMF_m / 10000``.
* cross: ``equity = collateral - sum(isolated allocated margin) + sum(cross upnl)``;
  ``IMR = sum of cross IMR_m``; ``available_balance = max(0, equity - IMR)``.
* isolated market m: ``equity_m = allocated_m + upnl_m`` against ``IMR_m``.
* ``total_asset_value = collateral + sum(all upnl)`` (allocated margin is part of collateral).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.markets import MarketInfo
from shared.venue import lighter_json as LJ

if TYPE_CHECKING:
    from shared.venue.matching import CreateOrder, MatchingEngine

CROSS, ISOLATED = 0, 1
MARGIN_MODES = (CROSS, ISOLATED)
FRACTION_SCALE = 10_000
"""Margin fractions are in 1/10000 of notional (Lighter: ``InitialMarginFraction = 10000 / leverage``)."""
EPS = 1e-9


@dataclass
class MarketSetting:
    """One (account, market) pair's leverage: ``imf`` (1/10000), ``mode`` (0 cross, 1 isolated)
    and ``allocated`` USD of collateral set aside for an isolated position."""

    imf: int
    mode: int = CROSS
    allocated: float = 0.0


@dataclass
class MarketRisk:
    """One market's margin figures of an account (USD; ``worst_lots`` in lots)."""

    market_id: int
    mode: int
    imf: int
    mmf: int
    mark: float
    size_lots: int
    size: float
    entry: float
    upnl: float
    notional: float
    imr: float
    mmr: float
    allocated: float
    worst_lots: int


@dataclass
class AccountRisk:
    """An account's margin figures (USD): ``collateral`` (engine: initial + realized PnL - fees),
    ``cross_equity``, ``cross_imr`` (positions and open orders), ``cross_mmr`` (positions),
    ``available`` (``max(0, cross_equity - cross_imr)``), ``total_value`` (collateral plus every
    unrealized PnL), ``notional`` (sum of position notionals) and ``markets`` by market id."""

    collateral: float
    cross_equity: float = 0.0
    cross_imr: float = 0.0
    cross_mmr: float = 0.0
    available: float = 0.0
    total_value: float = 0.0
    notional: float = 0.0
    markets: dict[int, MarketRisk] = field(default_factory=dict)


class MarginBook:
    """Per (account, market) settings; a pair never set has the market's default IMF, cross.

    Args:
        markets: the venue's markets by id (their margin fractions).
    """

    def __init__(self, markets: dict[int, MarketInfo]) -> None:
        self.markets = markets
        self.settings: dict[tuple[int, int], MarketSetting] = {}

    def get(self, account: int, market_id: int) -> MarketSetting:
        """The pair's setting (a default one, not stored, when never set)."""
        s = self.settings.get((account, market_id))
        if s is None:
            return MarketSetting(imf=self.markets[market_id].default_initial_margin_fraction)
        return s

    def set(self, account: int, market_id: int) -> MarketSetting:
        """The pair's stored setting (created with the defaults on first use)."""
        key = (account, market_id)
        if key not in self.settings:
            self.settings[key] = self.get(account, market_id)
        return self.settings[key]


def _orders(engine: MatchingEngine, account: int, extra: CreateOrder | None) -> dict[int, list[tuple[bool, int, int]]]:
    """Per market: (is_ask, lots, price ticks) of the account's open non-reduce-only orders."""
    out: dict[int, list[tuple[bool, int, int]]] = {}
    for o in engine.active_orders(account):
        if not o.reduce_only:
            out.setdefault(o.market_id, []).append((o.is_ask, o.remaining, o.price))
    pending = engine.pending_creates(account) + ([extra] if extra is not None else [])
    for tx in pending:
        if not tx.reduce_only:
            out.setdefault(tx.market_id, []).append((tx.is_ask, tx.base_amount, tx.price))
    return out


def worst_lots(position: int, orders: list[tuple[bool, int, int]]) -> int:
    """The largest absolute position (lots) the open orders could lead to: every bid filling
    or every ask filling, whichever is larger."""
    bids = sum(lots for is_ask, lots, _ in orders if not is_ask)
    asks = sum(lots for is_ask, lots, _ in orders if is_ask)
    return max(abs(position + bids), abs(position - asks))


def account_risk(engine: MatchingEngine, book: MarginBook, account: int,
                 extra: CreateOrder | None = None, imf_override: tuple[int, int] | None = None) -> AccountRisk:
    """The account's margin figures (module docstring), optionally as if ``extra`` (a create
    order) were open too, or as if market ``imf_override[0]`` had IMF ``imf_override[1]``."""
    a = engine.account(account)
    orders = _orders(engine, account, extra)
    mids = set(a.positions) | set(orders) | {mid for (acct, mid) in book.settings if acct == account}
    r = AccountRisk(collateral=a.collateral)
    isolated_alloc = 0.0
    for mid in sorted(mids):
        m = engine.markets.get(mid)
        if m is None:
            continue
        mr = _market_risk(engine, book, account, m, orders.get(mid, []))
        if imf_override is not None and imf_override[0] == mid:
            mr.imr = mr.imr / mr.imf * imf_override[1] if mr.imf else mr.imr
            mr.imf = imf_override[1]
        r.markets[mid] = mr
        r.total_value += mr.upnl
        r.notional += mr.notional
        if mr.mode == ISOLATED:
            isolated_alloc += mr.allocated
        else:
            r.cross_equity += mr.upnl
            r.cross_imr += mr.imr
            r.cross_mmr += mr.mmr
    r.total_value += a.collateral
    r.cross_equity += a.collateral - isolated_alloc
    r.available = max(0.0, r.cross_equity - r.cross_imr)
    return r


def _market_risk(engine: MatchingEngine, book: MarginBook, account: int, m: MarketInfo,
                 orders: list[tuple[bool, int, int]]) -> MarketRisk:
    s = book.get(account, m.market_id)
    p = engine.accounts[account].positions.get(m.market_id)
    size_lots = p.size if p is not None else 0
    entry = p.avg_entry_price if p is not None else 0.0
    fallback = entry or max((m.int_to_price(px) for _, _, px in orders), default=0.0)
    mark = LJ.mark_price(m, engine.state[m.market_id], fallback)
    size = m.int_to_size(size_lots)
    worst = worst_lots(size_lots, orders)
    notional = abs(size) * mark
    return MarketRisk(market_id=m.market_id, mode=s.mode, imf=s.imf, mmf=m.maintenance_margin_fraction, mark=mark,
                      size_lots=size_lots, size=size, entry=entry, upnl=size * (mark - entry) if size_lots else 0.0,
                      notional=notional, imr=m.int_to_size(worst) * mark * s.imf / FRACTION_SCALE,
                      mmr=notional * m.maintenance_margin_fraction / FRACTION_SCALE,
                      allocated=s.allocated if s.mode == ISOLATED else 0.0, worst_lots=worst)


def isolated_equity(mr: MarketRisk) -> float:
    """Equity of an isolated position: allocated margin plus its unrealized PnL (USD)."""
    return mr.allocated + mr.upnl


def liquidation_price(r: AccountRisk, market_id: int) -> float:
    """Approximate liquidation price of the account's position in ``market_id`` (USD; 0 = none):
    the mark at which equity equals the maintenance requirement, other markets' marks fixed,
    open orders, fees and funding ignored. Cross: ``E + s (P - mark) = MMR_other + |s| P mmf``;
    isolated: the same with ``E = allocated + upnl`` and no other markets.

    Solved: ``P = (MMR_other - E + s * mark) / (s - |s| * mmf)`` (``s`` signed base units,
    ``mmf`` as a fraction)."""
    mr = r.markets.get(market_id)
    if mr is None or mr.size_lots == 0:
        return 0.0
    if mr.mode == ISOLATED:
        equity, other = isolated_equity(mr), 0.0
    else:
        equity, other = r.cross_equity, r.cross_mmr - mr.mmr
    mmf = mr.mmf / FRACTION_SCALE
    denom = mr.size - abs(mr.size) * mmf
    if abs(denom) < EPS:
        return 0.0
    p = (other - equity + mr.size * mr.mark) / denom
    return max(0.0, p)
