"""venue-sim: the WebSocket channels ``ticker/{m}`` (best bid and offer), ``account_tx/{a}`` (the
account's transactions) and ``account_all_assets/{a}`` (its USDC balance) -- reference notes
section 5.2, shape of ``ws_ticker_update.json``.

``account_tx`` and ``account_all_assets`` are private: a subscribe must carry an ``auth`` token
that :meth:`~services.venue_sim.auth.AuthChecks.authorize_account` accepts for the account
(else an ``error`` frame with the refusal's code; the subscription is not made).
"""

from __future__ import annotations

import heapq
import json
from collections import deque
from typing import Any

from services.venue_sim.base import ServerBase, _ms, _num, _us
from shared.venue.matching import BookChanged, PositionUpdate, StatsChanged, Update

#: private channels of this part (subscribe needs ``auth``)
PRIVATE_CHANNELS = ("account_tx", "account_all_assets")
#: txs kept per account for the ``subscribed/account_tx`` snapshot
TX_HISTORY = 100
#: Lighter tx status codes as venue-sim uses them (assumption, docs/venue-sim.md)
TX_STATUS_PENDING, TX_STATUS_EXECUTED = 1, 2
USDC_ASSET_ID = 3


class MoreChannels(ServerBase):
    """``ticker``, ``account_tx`` and ``account_all_assets`` (state set by
    :meth:`init_more_channels`)."""

    ticker_nonce: dict[int, int]
    ticker_last: dict[int, tuple[Any, ...]]
    account_txs: dict[int, deque[dict[str, Any]]]
    txs_pending: list[tuple[int, int, dict[str, Any]]]
    assets_sent: dict[int, str]
    tx_seq: int

    def init_more_channels(self) -> None:
        """Create this part's state (called by ``VenueServer.__init__``)."""
        self.ticker_nonce = {mid: 0 for mid in self.markets}
        self.ticker_last = {}
        self.account_txs = {}
        self.txs_pending = []
        self.assets_sent = {}
        self.tx_seq = 0

    # ---------------------------------------------------------------- channels

    def parse_channel(self, channel: str) -> str | None:
        """``ticker/{m}``, ``account_tx/{a}``, ``account_all_assets/{a}``; others as before."""
        parts = str(channel).split("/")
        try:
            if parts[0] == "ticker" and len(parts) == 2 and int(parts[1]) in self.markets:
                return f"ticker:{int(parts[1])}"
            if parts[0] in PRIVATE_CHANNELS and len(parts) == 2 and int(parts[1]) >= 0:
                return f"{parts[0]}:{int(parts[1])}"
        except ValueError:
            return None
        return super().parse_channel(channel)  # type: ignore[misc]

    def snapshot(self, channel: str) -> dict[str, Any]:
        """The ``subscribed/...`` message of this part's channels; others as before."""
        kind, _, arg = channel.partition(":")
        if kind == "ticker":
            return self._ticker_msg(int(arg), "subscribed/ticker")
        if kind == "account_tx":
            return {"channel": channel, "txs": list(self.account_txs.get(int(arg), ())),
                    "timestamp": _ms(self.clock()), "type": "subscribed/account_tx"}
        if kind == "account_all_assets":
            assets = self._assets(int(arg))
            self.assets_sent[int(arg)] = assets[str(USDC_ASSET_ID)]["balance"]
            return {"channel": channel, "assets": assets, "timestamp": _ms(self.clock()),
                    "type": "subscribed/account_all_assets"}
        return super().snapshot(channel)  # type: ignore[misc]

    # ---------------------------------------------------------------- ticker

    def _bbo(self, mid: int) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
        """Best (price ticks, lots) of each side of the last published book, or None."""
        bids, asks = self.book_levels[mid]
        b = max(bids.items()) if bids else None
        a = min(asks.items()) if asks else None
        return b, a

    def _ticker_msg(self, mid: int, kind: str) -> dict[str, Any]:
        m = self.markets[mid]
        b, a = self._bbo(mid)
        ts = self.book_ts[mid] or self.clock()

        def level(x: tuple[int, int] | None) -> dict[str, str]:
            px, lots = x if x is not None else (0, 0)
            return {"price": m.price_str(px), "size": m.size_str(lots)}

        ticker = {"s": m.symbol, "a": level(a), "b": level(b), "last_updated_at": _us(ts)}
        return {"channel": f"ticker:{mid}", "last_updated_at": _us(ts), "nonce": self.ticker_nonce[mid],
                "ticker": ticker, "timestamp": _ms(self.clock()), "type": kind}

    def _publish_tickers(self, mids: set[int]) -> None:
        for mid in mids:
            bbo = self._bbo(mid)
            if self.ticker_last.get(mid) == bbo:
                continue
            self.ticker_last[mid] = bbo
            self.ticker_nonce[mid] += 1
            if self.subs.get(f"ticker:{mid}"):
                self._send(f"ticker:{mid}", self._ticker_msg(mid, "update/ticker"))  # type: ignore[attr-defined]

    # ---------------------------------------------------------------- assets

    def _assets(self, acct: int) -> dict[str, dict[str, Any]]:
        """``{"3": {symbol, asset_id, balance, locked_balance}}``: USDC = the account's collateral
        (6 decimals); ``locked_balance`` is 0 (venue-sim has no spot markets, whose open orders lock
        balance; perp margin in use is reported by ``account``/``user_stats``, see
        :mod:`~services.venue_sim.margin`)."""
        bal = _num(self.engine.account(acct).collateral, 6)
        return {str(USDC_ASSET_ID): {"symbol": "USDC", "asset_id": USDC_ASSET_ID, "balance": bal,
                                     "locked_balance": "0.000000"}}

    def _publish_assets(self, accounts: set[int], ts_ns: int) -> None:
        for acct in accounts:
            ch = f"account_all_assets:{acct}"
            if not self.subs.get(ch):
                continue
            assets = self._assets(acct)
            bal = assets[str(USDC_ASSET_ID)]["balance"]
            if self.assets_sent.get(acct) == bal:
                continue
            self.assets_sent[acct] = bal
            self._send(ch, {"channel": ch, "assets": assets, "timestamp": _ms(ts_ns),  # type: ignore[attr-defined]
                            "type": "update/account_all_assets"})

    # ---------------------------------------------------------------- txs

    def _send_tx(self, tx_type: int, tx_info: str) -> dict[str, Any]:
        """Accept a tx as before, then report it on ``account_tx`` (status pending; executed
        once the engine's clock reaches its predicted execution time)."""
        body = super()._send_tx(tx_type, tx_info)  # type: ignore[misc]
        info = json.loads(tx_info)
        acct, now = int(info["AccountIndex"]), self.clock()
        self.tx_seq += 1
        tx = {"hash": body["tx_hash"], "type": tx_type, "info": tx_info, "event_info": "",
              "status": TX_STATUS_PENDING, "transaction_index": self.tx_seq, "l1_address": "0x" + "0" * 40,
              "account_index": acct, "nonce": int(info["Nonce"]), "expire_at": int(info.get("ExpiredAt") or 0),
              "block_height": self.height, "queued_at": _ms(now), "executed_at": 0, "sequence_index": self.tx_seq,
              "parent_hash": "", "api_key_index": int(info["ApiKeyIndex"]), "transaction_time": _us(now)}
        self.account_txs.setdefault(acct, deque(maxlen=TX_HISTORY)).append(tx)
        heapq.heappush(self.txs_pending, (int(body["predicted_execution_time_ms"]), self.tx_seq, tx))
        self._send_txs(acct, [tx], now)
        return body

    def _send_txs(self, acct: int, txs: list[dict[str, Any]], ts_ns: int) -> None:
        ch = f"account_tx:{acct}"
        if self.subs.get(ch):
            self._send(ch, {"channel": ch, "txs": [dict(t) for t in txs], "timestamp": _ms(ts_ns),  # type: ignore[attr-defined]
                            "type": "update/account_tx"})

    def _executed_txs(self) -> None:
        """Report the txs the engine has executed: its clock is past their predicted
        millisecond (the engine executes due txs before moving its clock), or nothing is
        pending any more."""
        now, idle = self.engine.now_ns, self.engine.pending_count() == 0
        while self.txs_pending and (idle or (self.txs_pending[0][0] + 1) * 1_000_000 <= now):
            exec_ms, _, tx = heapq.heappop(self.txs_pending)
            tx["status"], tx["executed_at"], tx["block_height"] = TX_STATUS_EXECUTED, exec_ms, self.height
            self._send_txs(tx["account_index"], [tx], self.engine.now_ns)

    # ---------------------------------------------------------------- publish

    def publish(self, updates: list[Update]) -> None:
        """Publish as before, then tickers of changed books, balances of accounts whose
        position (hence collateral) changed, and txs now executed."""
        super().publish(updates)  # type: ignore[misc]
        if updates:
            self._publish_tickers({u.market_id for u in updates if isinstance(u, BookChanged | StatsChanged)})
            accounts = {u.position.account for u in updates if isinstance(u, PositionUpdate)}
            if accounts:
                self._publish_assets(accounts, self.engine.now_ns)
        if self.txs_pending:
            self._executed_txs()
