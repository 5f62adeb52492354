"""venue-sim: margin on the tx path and in the account views -- the initial margin check of every
create order (21739), the txs ``updateLeverage`` (type 20) and ``updateMargin`` (type 29), and
the margin fields of the account JSON, positions and ``user_stats``.

The figures come from :mod:`services.venue_sim.margin` (formulas there and in docs/venue-sim.md,
"Margin"). Liquidation is not modelled: an account below its maintenance requirement keeps its
positions (only new risk is refused).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from services.venue_sim.base import TX_CREATE, ServerBase, _ms, _num
from services.venue_sim.margin import (
    CROSS,
    EPS,
    FRACTION_SCALE,
    ISOLATED,
    MARGIN_MODES,
    AccountRisk,
    MarginBook,
    account_risk,
    isolated_equity,
    liquidation_price,
)
from shared.venue import errors as E
from shared.venue.errors import VenueError
from shared.venue.matching import CreateOrder, OrderUpdate, Position, PositionUpdate, Update

log = logging.getLogger("services.venue_sim.server")

TX_UPDATE_LEVERAGE, TX_UPDATE_MARGIN = 20, 29
MARGIN_REMOVE, MARGIN_ADD = 0, 1
USDC_SCALE = 1_000_000
"""``USDCAmount`` of ``updateMargin`` is USDC scaled by 1e6 (reference notes section 2)."""


class MarginHandling(ServerBase):
    """Margin checks and the leverage/margin txs (a part of the server; see module docstring).

    Uses ``self.margin_book`` (:class:`MarginBook`) and ``self.margin_checks`` (False: orders
    are not margin-checked; the leverage and margin txs still work), set by ``VenueServer``.
    """

    margin_book: MarginBook
    margin_checks: bool

    # ---------------------------------------------------------------- tx path

    def tx_handlers(self) -> dict[int, Callable[[dict[str, Any], str], int]]:
        """The server's handlers plus 20 (updateLeverage), 29 (updateMargin) and the margin
        check in front of 14 (create order)."""
        handlers = super().tx_handlers()  # type: ignore[misc]
        return handlers | {TX_CREATE: self._margin_checked(handlers[TX_CREATE]),
                           TX_UPDATE_LEVERAGE: self._update_leverage, TX_UPDATE_MARGIN: self._update_margin}

    def _margin_checked(self, inner: Callable[[dict[str, Any], str], int]) -> Callable[[dict[str, Any], str], int]:
        def handle(info: dict[str, Any], tx_hash: str) -> int:
            try:
                tx = self._parse_tx(TX_CREATE, info, tx_hash)  # type: ignore[attr-defined]
            except (ValueError, KeyError, TypeError, VenueError):
                tx = None  # the create handler refuses it with its own code
            move = self.check_order_margin(tx) if isinstance(tx, CreateOrder) else 0.0
            predicted = inner(info, tx_hash)
            if move > 0 and isinstance(tx, CreateOrder):
                self.margin_book.set(tx.account, tx.market_id).allocated += move
            return predicted

        return handle

    def check_order_margin(self, tx: CreateOrder) -> float:
        """Refuse ``tx`` if it raises the account's initial margin requirement above its equity;
        returns the USD to move from cross collateral to the market's isolated allocation when
        it is accepted (0 for cross markets).

        Cross market: refused when ``IMR_after > equity`` and ``IMR_after > IMR_before``
        (orders that lower the requirement always pass). Isolated market: the increase of the
        market's requirement beyond its equity (allocated + upnl) must fit the cross available
        balance. Reduce-only orders, malformed orders (the engine refuses them) and
        ``margin_checks: false`` pass.

        Raises:
            VenueError: 21739 not enough margin.
        """
        if not self.margin_checks or tx.reduce_only or tx.market_id not in self.engine.markets \
                or tx.base_amount <= 0 or tx.price <= 0:
            return 0.0
        before = account_risk(self.engine, self.margin_book, tx.account)
        after = account_risk(self.engine, self.margin_book, tx.account, extra=tx)
        ma = after.markets[tx.market_id]
        if ma.mode == CROSS:
            if after.cross_imr > after.cross_equity + EPS and after.cross_imr > before.cross_imr + EPS:
                raise VenueError(E.NOT_ENOUGH_MARGIN,
                                 f"initial margin requirement {after.cross_imr:.6f} USD (positions and open orders "
                                 f"at mark, IMF {ma.imf / 100:.2f} %) above cross equity {after.cross_equity:.6f} USD")
            return 0.0
        mb = before.markets.get(tx.market_id)
        if ma.imr <= (mb.imr if mb is not None else 0.0) + EPS:
            return 0.0
        shortfall = max(0.0, ma.imr - isolated_equity(ma))
        if shortfall > before.available + EPS:
            raise VenueError(E.NOT_ENOUGH_MARGIN,
                             f"isolated position needs {shortfall:.6f} USD more margin, available balance "
                             f"{before.available:.6f} USD")
        return shortfall

    def _tx_fields(self, info: dict[str, Any], *names: str) -> list[int]:
        try:
            return [int(info[n]) for n in names]
        except (ValueError, KeyError, TypeError) as exc:
            raise VenueError(E.INVALID_TX_INFO, f"{type(exc).__name__}: {exc}") from None

    def _market_busy(self, account: int, market_id: int) -> bool:
        """The account has a position, open orders or pending creates in the market."""
        p = self.engine.accounts.get(account)
        size = p.positions[market_id].size if p is not None and market_id in p.positions else 0
        return bool(size or self.engine.active_orders(account, market_id)
                    or any(tx.market_id == market_id for tx in self.engine.pending_creates(account)))

    def _update_leverage(self, info: dict[str, Any], tx_hash: str) -> int:
        """Tx 20 ``updateLeverage``: set the (account, market) initial margin fraction and
        margin mode; applied at once (no speed bump).

        Raises:
            VenueError: 21501 missing field or IMF outside min_initial_margin_fraction..10000
                (leverage above the market's maximum); 21602 unknown market; 21613 margin mode
                not 0/1, or a mode change while the market has a position or open orders; 21508
                a lower leverage whose requirement the account's equity does not cover.
        """
        acct, mid, imf, mode = self._tx_fields(info, "AccountIndex", "MarketIndex", "InitialMarginFraction",
                                               "MarginMode")
        m = self.engine.market_of(mid)
        if mode not in MARGIN_MODES:
            raise VenueError(E.INVALID_MARGIN_MODE, f"MarginMode {mode} (0 cross, 1 isolated)")
        if not m.min_initial_margin_fraction <= imf <= FRACTION_SCALE:
            raise VenueError(E.INVALID_TX_INFO,
                             f"InitialMarginFraction {imf} outside {m.min_initial_margin_fraction}..{FRACTION_SCALE} "
                             f"(leverage {FRACTION_SCALE / max(imf, 1):g}x; {m.symbol} allows at most "
                             f"{FRACTION_SCALE / m.min_initial_margin_fraction:g}x)")
        cur = self.margin_book.get(acct, mid)
        if mode != cur.mode and self._market_busy(acct, mid):
            raise VenueError(E.INVALID_MARGIN_MODE,
                             f"cannot change the margin mode of {m.symbol} with a position or open orders")
        if imf > cur.imf:
            r = account_risk(self.engine, self.margin_book, acct, imf_override=(mid, imf))
            mr = r.markets.get(mid)
            short = (r.cross_imr > r.cross_equity + EPS) if mode == CROSS else \
                (mr is not None and mr.imr > isolated_equity(mr) + EPS)
            if short:
                raise VenueError(E.ACCOUNT_BELOW_INITIAL_MARGIN,
                                 f"IMF {imf} would put the account below its initial margin requirement")
        s = self.margin_book.set(acct, mid)
        s.imf, s.mode = imf, mode
        if mode == CROSS:
            s.allocated = 0.0
        self.engine.position(acct, mid)  # Lighter lists the market among the account's positions
        self._on_position(self.engine.position(acct, mid), self.clock())  # type: ignore[attr-defined]
        log.info("account %d %s: leverage IMF %d (%.4gx), %s", acct, m.symbol, imf, FRACTION_SCALE / imf,
                 "isolated" if mode == ISOLATED else "cross")
        return _ms(self.clock())

    def _update_margin(self, info: dict[str, Any], tx_hash: str) -> int:
        """Tx 29 ``updateMargin``: move ``USDCAmount`` (USDC x 1e6) between the cross collateral
        and an isolated position (``Direction`` 1 add, 0 remove); applied at once.

        Raises:
            VenueError: 21501 missing field, amount < 1 or direction not 0/1; 21602 unknown
                market; 21613 the market is in cross mode; 21614 no position; 21739 adding more
                than the available balance; 21508 removing more than the allocation, or so much
                that the position falls below its initial margin requirement.
        """
        acct, mid, amount, direction = self._tx_fields(info, "AccountIndex", "MarketIndex", "USDCAmount",
                                                       "Direction")
        m = self.engine.market_of(mid)
        if direction not in (MARGIN_REMOVE, MARGIN_ADD):
            raise VenueError(E.INVALID_TX_INFO, f"Direction {direction} (1 add, 0 remove)")
        if amount < 1:
            raise VenueError(E.INVALID_TX_INFO, f"USDCAmount {amount} (USDC x 1e6, at least 1)")
        if self.margin_book.get(acct, mid).mode != ISOLATED:
            raise VenueError(E.INVALID_MARGIN_MODE, f"{m.symbol} is in cross margin mode; only isolated positions "
                                                    "take margin")
        a = self.engine.accounts.get(acct)
        if a is None or not (mid in a.positions and a.positions[mid].size):
            raise VenueError(E.NO_POSITION, f"account {acct} has no {m.symbol} position")
        usd = amount / USDC_SCALE
        r = account_risk(self.engine, self.margin_book, acct)
        mr = r.markets[mid]
        s = self.margin_book.set(acct, mid)
        if direction == MARGIN_ADD:
            if usd > r.available + EPS:
                raise VenueError(E.NOT_ENOUGH_MARGIN, f"adding {usd:.6f} USD, available balance {r.available:.6f} USD")
            s.allocated += usd
        else:
            if usd > mr.allocated + EPS or isolated_equity(mr) - usd < mr.imr - EPS:
                raise VenueError(E.ACCOUNT_BELOW_INITIAL_MARGIN,
                                 f"removing {usd:.6f} USD of {mr.allocated:.6f} allocated would leave the position "
                                 f"below its initial margin {mr.imr:.6f} USD")
            s.allocated -= usd
        self._on_position(a.positions[mid], self.clock())  # type: ignore[attr-defined]
        return _ms(self.clock())

    # ---------------------------------------------------------------- isolated margin release

    def publish(self, updates: list[Update]) -> None:
        """Release the allocation of an isolated market that is flat with no open orders back to
        cross, then publish (:meth:`FeedMessages.publish`)."""
        for u in updates:
            if isinstance(u, PositionUpdate):
                self._release_isolated(u.position.account, u.position.market_id)
            elif isinstance(u, OrderUpdate):
                self._release_isolated(u.order.account, u.order.market_id)
        super().publish(updates)  # type: ignore[misc]

    def _release_isolated(self, account: int, market_id: int) -> None:
        s = self.margin_book.settings.get((account, market_id))
        if s is not None and s.allocated and not self._market_busy(account, market_id):
            s.allocated = 0.0

    # ---------------------------------------------------------------- views

    def risk(self, account: int) -> AccountRisk:
        """The account's margin figures (:func:`account_risk`)."""
        return account_risk(self.engine, self.margin_book, account)

    def position_json(self, p: Position) -> dict[str, Any]:
        """Lighter's Position object with the margin fields: ``initial_margin_fraction``
        (percent, 2 decimals: IMF 500 -> ``"5.00"``, as Lighter's REST account sample),
        ``margin_mode``, ``allocated_margin``, ``liquidation_price`` (approximate:
        :func:`liquidation_price`)."""
        d: dict[str, Any] = super().position_json(p)  # type: ignore[misc]
        r = self.risk(p.account)
        s = self.margin_book.get(p.account, p.market_id)
        m = self.markets[p.market_id]
        liq = liquidation_price(r, p.market_id)
        d.update({"initial_margin_fraction": f"{s.imf / 100:.2f}", "margin_mode": s.mode,
                  "allocated_margin": _num(s.allocated if s.mode == ISOLATED else 0.0, 6),
                  "liquidation_price": _num(liq, m.price_decimals) if liq > 0 else "0"})
        return d

    def user_stats(self, acct: int) -> dict[str, Any]:
        """``user_stats`` of an account: collateral, portfolio value (collateral + unrealized
        PnL), available balance (cross equity - cross initial margin requirement), leverage
        (position notional / portfolio value) and margin usage (initial margin requirement /
        portfolio value, percent); ``cross_stats`` over the cross part, ``total_stats`` over all."""
        r = self.risk(acct)
        iso = [mr for mr in r.markets.values() if mr.mode == ISOLATED]
        iso_alloc = sum(mr.allocated for mr in iso)
        total_imr = r.cross_imr + sum(mr.imr for mr in iso)
        cross_notional = r.notional - sum(mr.notional for mr in iso)

        def stats(collateral: float, value: float, notional: float, imr: float) -> dict[str, str]:
            return {"collateral": _num(collateral, 6), "portfolio_value": _num(value, 6),
                    "leverage": f"{notional / value:.2f}" if value > 0 else "0.00",
                    "available_balance": _num(r.available, 6),
                    "margin_usage": f"{imr / value * 100:.2f}" if value > 0 else "0.00",
                    "buying_power": _num(r.available, 6)}

        total = stats(r.collateral, r.total_value, r.notional, total_imr)
        cross = stats(r.collateral - iso_alloc, r.cross_equity, cross_notional, r.cross_imr)
        return {"account_trading_mode": 0, **total, "cross_stats": cross, "total_stats": dict(total)}

    def _account_json(self, acct: int) -> dict[str, Any]:
        """The ``account`` entry with Lighter's margin fields (collateral, available_balance,
        total_asset_value, cross_asset_value, cross initial/maintenance margin requirement)."""
        d: dict[str, Any] = super()._account_json(acct)  # type: ignore[misc]
        r = self.risk(acct)
        iso_orders = sum(1 for o in self.engine.active_orders(acct)
                         if self.margin_book.get(acct, o.market_id).mode == ISOLATED)
        d.update({"collateral": _num(r.collateral, 6), "available_balance": _num(r.available, 6),
                  "total_asset_value": _num(r.total_value, 6), "cross_asset_value": _num(r.cross_equity, 6),
                  "cross_initial_margin_requirement": _num(r.cross_imr, 6),
                  "cross_maintenance_margin_requirement": _num(r.cross_mmr, 6),
                  "total_isolated_order_count": iso_orders})
        return d
