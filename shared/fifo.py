"""The FIFO lot fold: fills in, closed trades out. No I/O, no clock, deterministic.

The ledger's engine (``services/ledger/engine.py`` re-exports it) and the notifier's closed-trade
PnL both use it, so there is one FIFO rule in the code base.

Lots queue per ``(strategy, market)``. A queue holds lots of one side only (all long or all
short). A fill in the same direction as the queue (or on an empty queue) appends a lot at the
back. A fill in the opposite direction closes lots from the **front** (oldest first, for longs
and shorts alike: the seed closed shorts LIFO, a bug not reproduced here); a lot larger than
what is left to close is split (its remainder stays at the front); whatever the fill has left
after the queue is empty opens a new lot of the fill's direction at the back (a flip through
zero).

Each closed (part of a) lot yields a :class:`ClosedTrade`:

- ``gross_pnl_usd`` = (exit - entry) x size for a long, (entry - exit) x size for a short;
- fees are apportioned by size: the entry fill's fee x closed size / entry fill size, plus the
  exit fill's fee x closed size / exit fill size;
- ``pnl_usd`` = gross - entry fee share - exit fee share;
- ``pnl_pct`` = pnl_usd / (entry price x size) x 100.

Internal fills (two strategies crossed inside the executor) count like venue fills: they are
real for each strategy's PnL.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace
from typing import Literal

from shared.events import Event, Fill

Key = tuple[str, str]  # (strategy, market)

DEFAULT_SIZE_EPS = 1e-12


@dataclass(slots=True)
class Lot:
    """An open lot: ``direction`` +1 long / -1 short, ``price`` USD, ``size`` base units left
    (> 0), ``fee_per_unit`` the entry fill's fee in USD per base unit, ``ts_event`` ns."""

    fill_id: str
    direction: int
    price: float
    size: float
    fee_per_unit: float
    ts_event: int


@dataclass(frozen=True, slots=True)
class ClosedTrade:
    """A closed FIFO lot (or part of one).

    ``side`` is the closed position's side (``long``/``short``); prices, fees and PnL in USD;
    ``size`` in base units; ``entry_ts``/``exit_ts`` in ns since the epoch (UTC); ``seq``
    numbers the lots closed by ``exit_fill_id``, from 0, in FIFO order; ``exit_reason`` is the
    closing fill's :attr:`~shared.events.Fill.reason` (e.g. ``take profit``, ``stop``; may be empty).
    """

    strategy: str
    market: str
    side: Literal["long", "short"]
    size: float
    entry_price: float
    exit_price: float
    entry_ts: int
    exit_ts: int
    entry_fill_id: str
    exit_fill_id: str
    seq: int
    entry_fee_usd: float
    exit_fee_usd: float
    gross_pnl_usd: float
    pnl_usd: float
    pnl_pct: float
    exit_reason: str = ""


class InvalidFill(ValueError):
    """A fill the engine cannot book (non-positive or non-finite size or price, non-finite fee,
    unknown side, empty ids); the message says which field."""


def validate_fill(fill: Fill) -> None:
    """Check that ``fill`` can be booked.

    Raises:
        InvalidFill: naming the first bad field.
    """
    if not fill.fill_id:
        raise InvalidFill("empty fill_id")
    if not fill.strategy:
        raise InvalidFill("empty strategy")
    if not fill.market:
        raise InvalidFill("empty market")
    if fill.side not in ("buy", "sell"):
        raise InvalidFill(f"side must be buy or sell, got {fill.side!r}")
    if not (math.isfinite(fill.size) and fill.size > 0):
        raise InvalidFill(f"size must be a finite number > 0, got {fill.size!r}")
    if not (math.isfinite(fill.price) and fill.price > 0):
        raise InvalidFill(f"price must be a finite number > 0, got {fill.price!r}")
    if not math.isfinite(fill.fee):
        raise InvalidFill(f"fee must be finite, got {fill.fee!r}")


class LedgerEngine:
    """FIFO lots per (strategy, market) and the trades their closes realize.

    Args:
        size_eps: sizes at or below this (base units) count as zero, absorbing float residue
            such as ``0.3 - 0.1 - 0.2``.

    The engine does not deduplicate: feeding the same fill twice books it twice (the store
    drops known fill ids before calling it).
    """

    def __init__(self, size_eps: float = DEFAULT_SIZE_EPS) -> None:
        self.size_eps = size_eps
        self._lots: dict[Key, deque[Lot]] = {}
        self.fills_applied = 0

    # -- the fold ---------------------------------------------------------------------------

    def on_event(self, event: Event) -> list[ClosedTrade]:
        """Apply a :class:`~shared.events.Fill`; any other event is ignored (returns ``[]``).

        Raises:
            InvalidFill: see :func:`validate_fill`.
        """
        if isinstance(event, Fill):
            return self.apply_fill(event)
        return []

    def apply_fill(self, fill: Fill) -> list[ClosedTrade]:
        """Book one fill; returns the trades it closed (possibly none), in FIFO order.

        Raises:
            InvalidFill: see :func:`validate_fill`; the state is unchanged then.
        """
        validate_fill(fill)
        key = (fill.strategy, fill.market)
        queue = self._lots.setdefault(key, deque())
        direction = 1 if fill.side == "buy" else -1
        fee_per_unit = fill.fee / fill.size
        remaining = fill.size
        closed: list[ClosedTrade] = []
        while remaining > self.size_eps and queue and queue[0].direction == -direction:
            lot = queue[0]
            size = min(lot.size, remaining)
            if lot.direction > 0:
                gross = (fill.price - lot.price) * size
            else:
                gross = (lot.price - fill.price) * size
            entry_fee = lot.fee_per_unit * size
            exit_fee = fee_per_unit * size
            pnl = gross - entry_fee - exit_fee
            closed.append(ClosedTrade(
                strategy=fill.strategy, market=fill.market,
                side="long" if lot.direction > 0 else "short",
                size=size, entry_price=lot.price, exit_price=fill.price,
                entry_ts=lot.ts_event, exit_ts=fill.ts_event,
                entry_fill_id=lot.fill_id, exit_fill_id=fill.fill_id, seq=len(closed),
                entry_fee_usd=entry_fee, exit_fee_usd=exit_fee, gross_pnl_usd=gross,
                pnl_usd=pnl, pnl_pct=pnl / (lot.price * size) * 100.0, exit_reason=fill.reason,
            ))
            lot.size -= size
            remaining -= size
            if lot.size <= self.size_eps:
                queue.popleft()
        if remaining > self.size_eps:
            queue.append(Lot(fill.fill_id, direction, fill.price, remaining, fee_per_unit, fill.ts_event))
        if not queue:
            del self._lots[key]
        self.fills_applied += 1
        return closed

    # -- state inspection -------------------------------------------------------------------

    def open_lots(self, strategy: str, market: str) -> list[Lot]:
        """Copies of the open lots of ``(strategy, market)``, front (oldest) first."""
        return [replace(lot) for lot in self._lots.get((strategy, market), ())]

    def position(self, strategy: str, market: str) -> float:
        """Signed open size in base units (+ long, - short) of ``(strategy, market)``."""
        return sum(lot.direction * lot.size for lot in self._lots.get((strategy, market), ()))

    def positions(self) -> dict[Key, float]:
        """Signed open size per ``(strategy, market)`` with open lots."""
        return {k: sum(lot.direction * lot.size for lot in q) for k, q in self._lots.items()}

    def lot_count(self) -> int:
        """Number of open lots over all keys."""
        return sum(len(q) for q in self._lots.values())

    # -- rollback support (used by the store around a DB transaction) -----------------------

    def snapshot(self, keys: set[Key] | None = None) -> EngineSnapshot:
        """A copy of the lots of ``keys`` (all keys when ``None``) for :meth:`restore`."""
        wanted = list(self._lots.keys()) if keys is None else keys
        lots = {k: ([replace(lot) for lot in self._lots[k]] if k in self._lots else None) for k in wanted}
        return EngineSnapshot(lots, self.fills_applied)

    def restore(self, snap: EngineSnapshot) -> None:
        """Put back the lots saved by :meth:`snapshot` (undoes fills of those keys applied since)."""
        for k, lots in snap.lots.items():
            if lots is None:
                self._lots.pop(k, None)
            else:
                self._lots[k] = deque(lots)
        self.fills_applied = snap.fills_applied


@dataclass(slots=True)
class EngineSnapshot:
    """Saved lots of some keys (``None``: the key had no lots) and the fill counter."""

    lots: dict[Key, list[Lot] | None]
    fills_applied: int
