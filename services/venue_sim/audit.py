"""venue-sim's audit log: what the venue itself published and accepted, for checks from outside
(the chaos suite, ``lighter_stack/chaos.py``).

A JSON-lines file (config ``audit_file``; off when empty), one object per line:

* ``{"k": "book", "m": market_id, "n": nonce, "b": [[price_ticks, size_lots], ...],
  "a": [[...], ...]}``: the full public book of ``order_book:{market_id}`` after the update
  with that nonce (bids best first, asks best first), written whenever the venue's published
  book changes, whether or not anybody is subscribed;
* ``{"k": "order", "acct": account, "coi": client_order_index, "m": market_id}``: an order tx
  (create) the venue accepted; a client order index other than 0 appearing twice for one
  account means one order was sent twice.

Lines are flushed as written, so a killed venue leaves every line it wrote before the kill.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import msgspec


class AuditLog:
    """Appends the audit records of one venue-sim process to ``path`` (created with its
    parents; appended to across restarts).

    Raises:
        OSError: the file cannot be opened.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[bytes] | None = open(path, "ab")  # noqa: SIM115 - kept open for the server's life
        self._enc = msgspec.json.Encoder()

    def _write(self, record: dict) -> None:
        if self._fh is not None:
            self._fh.write(self._enc.encode(record) + b"\n")
            self._fh.flush()

    def book(self, market_id: int, nonce: int, bids: dict[int, int], asks: dict[int, int]) -> None:
        """The published book of ``market_id`` after the update numbered ``nonce`` (levels as
        ``{price_ticks: size_lots}``)."""
        self._write({"k": "book", "m": market_id, "n": nonce,
                     "b": sorted(bids.items(), reverse=True), "a": sorted(asks.items())})

    def order(self, account: int, client_order_index: int, market_id: int) -> None:
        """An accepted create-order tx."""
        self._write({"k": "order", "acct": account, "coi": client_order_index, "m": market_id})

    def close(self) -> None:
        """Close the file (later records are dropped)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
