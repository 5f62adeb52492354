"""The ledger's pure engine: the FIFO lot fold of :mod:`shared.fifo` (fills in, closed trades
out), which the notifier uses too. Re-exported here under the names the ledger, the backtest and
the tests import."""

from __future__ import annotations

from shared.fifo import (
    DEFAULT_SIZE_EPS,
    ClosedTrade,
    EngineSnapshot,
    InvalidFill,
    Key,
    LedgerEngine,
    Lot,
    validate_fill,
)

__all__ = ["DEFAULT_SIZE_EPS", "ClosedTrade", "EngineSnapshot", "InvalidFill", "Key", "LedgerEngine", "Lot",
           "validate_fill"]
