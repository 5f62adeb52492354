"""venue-sim: the tx path -- ``sendTx``, ``sendTxBatch`` (rate limit, nonce, validation, hand-off to
the matching engine) and the nonce endpoints ``nextNonce``, ``apikeys``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from services.venue_sim.auth import AuthChecks
from services.venue_sim.base import (
    TX_CANCEL,
    TX_CANCEL_ALL,
    TX_CREATE,
    _ms,
)
from services.venue_sim.httpio import error_response, query_int
from services.venue_sim.metrics import ORDERS, REJECTS, TXS
from services.venue_sim.orderrules import parse_order_tx
from services.venue_sim.ratelimit import BATCH_MAX_TXS
from shared.venue import errors as E
from shared.venue.errors import VenueError
from shared.venue.matching import CreateOrder, Tx

log = logging.getLogger("services.venue_sim.server")  # the server's logger, as before the split


class TxHandling(AuthChecks):
    """Txs in (REST and WS): rate limit, nonces, validation, scheduling."""

    def _parse_tx(self, tx_type: int, info: dict[str, Any], tx_hash: str) -> Tx:
        """An order tx's tx_info checked with Lighter's rules at the venue time of its arrival
        (:func:`services.venue_sim.orderrules.parse_order_tx`)."""
        return parse_order_tx(tx_type, info, _ms(self.clock()), self.markets, tx_hash)

    def _admit(self, tx_info: str, txs: int) -> None:
        """Charge one tx request of ``txs`` txs to the account of ``tx_info`` (its
        ``AccountIndex``) at the current venue time, before any tx of it is processed.
        ``tx_info`` without a readable account is not charged (the tx path refuses it).

        Raises:
            ratelimit.RateLimited: 23000, the account is over the rate limit.
        """
        try:
            acct = int(json.loads(tx_info)["AccountIndex"])
        except (ValueError, KeyError, TypeError):
            return
        try:
            self.meter.admit(acct, self.clock(), txs)
        except VenueError as exc:
            self.tx_requests += 1
            REJECTS.labels(str(exc.code)).inc()
            log.info("refused a request of account %s: %s", acct, exc)
            raise

    def send_tx(self, tx_type: int, tx_info: str) -> dict[str, Any]:
        """One ``sendTx`` request: charge the account's rate limit, then validate, schedule and
        acknowledge the tx; returns Lighter's sendTx body.

        Raises:
            VenueError: with Lighter's code (23000 too many requests -- nothing processed,
                21104 nonce, 21706 amount, 21728 duplicate client order index, 21732
                reduce-only, 21602 market, 21505 tx type, 21501 bad tx_info, and the order txs'
                input rules of :mod:`services.venue_sim.orderrules`: 217xx).
        """
        self._admit(tx_info, 1)
        return self._one_tx(tx_type, tx_info)

    def _one_tx(self, tx_type: int, tx_info: str) -> dict[str, Any]:
        """Validate, schedule and acknowledge one tx (no rate-limit charge)."""
        self.tx_requests += 1
        try:
            return self._send_tx(tx_type, tx_info)
        except VenueError as exc:
            REJECTS.labels(str(exc.code)).inc()
            log.info("rejected tx type %s: %s", tx_type, exc)
            raise

    def tx_handlers(self) -> dict[int, Callable[[dict[str, Any], str], int]]:
        """The tx types venue-sim executes: tx type -> handler(tx_info dict, tx_hash) returning
        the predicted execution time (ms). A handler validates its own fields and raises
        :class:`VenueError`; the nonce advances only when it returns. Parts of the server add
        their tx types by overriding this and extending the dict."""
        return {TX_CREATE: self._engine_tx(TX_CREATE), TX_CANCEL: self._engine_tx(TX_CANCEL),
                TX_CANCEL_ALL: self._engine_tx(TX_CANCEL_ALL)}

    def _engine_tx(self, tx_type: int) -> Callable[[dict[str, Any], str], int]:
        """The handler of an order tx the matching engine executes (after the speed bump)."""

        def handle(info: dict[str, Any], tx_hash: str) -> int:
            try:
                tx = self._parse_tx(tx_type, info, tx_hash)
            except (ValueError, KeyError, TypeError) as exc:
                raise VenueError(E.INVALID_TX_INFO, f"{type(exc).__name__}: {exc}") from None
            acc = self.engine.submit(tx, self.clock())
            if isinstance(tx, CreateOrder):
                ORDERS.labels(self.markets[tx.market_id].symbol, tx.order_type, tx.time_in_force).inc()
                if self.audit is not None:
                    self.audit.order(tx.account, tx.client_order_index, tx.market_id)
            return _ms(acc.exec_ns)

        return handle

    def _send_tx(self, tx_type: int, tx_info: str) -> dict[str, Any]:
        handler = self.tx_handlers().get(tx_type)
        if handler is None:
            raise VenueError(E.UNSUPPORTED_TX_TYPE,
                             f"tx type {tx_type} (venue-sim supports {sorted(self.tx_handlers())})")
        try:
            info = json.loads(tx_info)
            acct, key, nonce = int(info["AccountIndex"]), int(info["ApiKeyIndex"]), int(info["Nonce"])
            expired_at = int(info.get("ExpiredAt") or 0)
        except (ValueError, KeyError, TypeError) as exc:
            raise VenueError(E.INVALID_TX_INFO, f"{type(exc).__name__}: {exc}") from None
        # ExpiredAt (set by the SDK from the wall clock) is checked on the venue clock when that
        # is the wall clock, and on the wall clock in lockstep (whose clock is the recording's)
        now_ms = _ms(self.clock()) if self.clock_is_wall else time.time() * 1000
        if expired_at and expired_at < now_ms:
            raise VenueError(E.TX_EXPIRED, f"ExpiredAt {expired_at} is in the past")
        self.require_account(acct)
        h = self.authenticate_tx(tx_type, info, tx_info)  # a forged tx is refused before its nonce is looked at
        expected = self.nonces.get((acct, key), 0)
        if nonce != expected:
            raise VenueError(E.INVALID_NONCE, f"nonce {nonce}, expected {expected} for account {acct} key {key}")
        if self.faults.tx_active and self.faults.roll("nonce_reject"):  # an injected fault (faults.py)
            raise VenueError(E.INVALID_NONCE)  # Lighter's body: {"code":21104,"message":"invalid nonce"}
        predicted_ms = handler(info, h)
        self.nonces[(acct, key)] = expected + 1
        TXS.labels(str(tx_type)).inc()
        self.on_tx()
        return {"code": 200, "message": json.dumps({"ratelimit": "didn't use volume quota"}), "tx_hash": h,
                "predicted_execution_time_ms": predicted_ms, "volume_quota_remaining": 100_000}

    def send_tx_batch(self, tx_types: str, tx_infos: str) -> dict[str, Any]:
        """One ``sendTxBatch`` request (one request of the rate limit, charged to the first
        tx's account): process the txs in order; the first refused tx stops it (earlier ones
        stay accepted).

        Raises:
            VenueError: 21501 for malformed lists or more than 15 txs, 23000 over the rate limit
                (both before any tx is processed), else the first refused tx's error.
        """
        try:
            types = [int(t) for t in json.loads(tx_types)]
            infos = [i if isinstance(i, str) else json.dumps(i) for i in json.loads(tx_infos)]
            if len(types) != len(infos) or not types:
                raise ValueError("tx_types and tx_infos must be non-empty lists of one length")
            if len(types) > BATCH_MAX_TXS:
                raise ValueError(f"{len(types)} txs in one batch; at most {BATCH_MAX_TXS}")
        except (ValueError, TypeError) as exc:
            REJECTS.labels(str(E.INVALID_TX_INFO)).inc()
            raise VenueError(E.INVALID_TX_INFO, str(exc)) from None
        self._admit(infos[0], len(infos))
        hashes, predicted = [], 0
        for t, i in zip(types, infos, strict=True):
            body = self._one_tx(t, i)
            hashes.append(body["tx_hash"])
            predicted = max(predicted, body["predicted_execution_time_ms"])
        return {"code": 200, "message": "", "tx_hash": hashes, "predicted_execution_time_ms": predicted,
                "volume_quota_remaining": 100_000}

    # ---------------------------------------------------------------- REST handlers

    async def h_send_tx(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            tx_type = int(str(form.get("tx_type", "")))
        except ValueError:
            return error_response(VenueError(E.INVALID_TX_INFO, "tx_type must be an integer"))
        try:
            return web.json_response(self.send_tx(tx_type, str(form.get("tx_info", ""))))
        except VenueError as exc:
            return error_response(exc)

    async def h_send_tx_batch(self, request: web.Request) -> web.Response:
        form = await request.post()
        try:
            return web.json_response(self.send_tx_batch(str(form.get("tx_types", "[]")),
                                                        str(form.get("tx_infos", "[]"))))
        except VenueError as exc:
            return error_response(exc)

    async def h_next_nonce(self, request: web.Request) -> web.Response:
        try:
            acct, key = query_int(request, "account_index"), query_int(request, "api_key_index")
            self.require_account(acct)
        except VenueError as exc:
            return error_response(exc)
        return web.json_response({"code": 200, "nonce": self.nonces.get((acct, key), 0)})

    async def h_apikeys(self, request: web.Request) -> web.Response:
        try:
            acct = query_int(request, "account_index")
            only = query_int(request, "api_key_index", 255)  # 255: every key
            self.require_account(acct)
        except VenueError as exc:
            return error_response(exc)
        keys = [{"account_index": a, "api_key_index": k, "nonce": self.nonces.get((a, k), 0),
                  "public_key": self.api_keys.get((a, k), "")}
                for (a, k) in sorted(set(self.nonces) | set(self.api_keys)) if a == acct and only in (255, k)]
        return web.json_response({"code": 200, "api_keys": keys})
