"""venue-sim: the venue's accounts and API-key registration, as Lighter does them.

- Accounts are configured (``services.venue-sim.accounts``: index, L1 address, collateral); any
  other index is refused with 21100 ``account not found`` by the tx path, ``nextNonce``,
  ``apikeys``, ``account``, ``accountActiveOrders``/``accountInactiveOrders`` and ``trades``
  (Lighter answers ``{"code":21100,"message":"account not found"}``; lighter-python issue #132).
- ``GET accountsByL1Address?l1_address=`` -> ``{code, l1_address, sub_accounts[]}`` (the shape of
  ccxt's sample, reference samples ``http_misc_ccxt_comment_examples.json``); 21100 when the
  address owns no account.
- ``ChangePubKey`` (tx type 8: ``PubKey`` base64 of 40 bytes, ``L1Sig`` hex of 65 bytes) registers
  the public key of (``AccountIndex``, ``ApiKeyIndex``) once ``L1Sig`` -- an Ethereum
  ``personal_sign`` of lighter-go's ``Register Lighter Account`` message (pubkey, nonce,
  account index, api key index; ``L2ChangePubKeyTxInfo.GetL1SignatureBody``) -- recovers the
  account's ``l1_address``. The key is then reported by ``apikeys`` as lowercase hex without
  ``0x`` (what the SDK's ``check_client`` compares against).
- ``GET trades`` (reference notes section 3): the venue's trades, filtered by account, market,
  role; Lighter's Trade objects (section 5.3), ``next_cursor``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from aiohttp import web

from services.venue_sim.base import ServerBase, _ms
from services.venue_sim.config import AccountSpec
from services.venue_sim.httpio import error_response, query_int
from shared.venue import errors as E
from shared.venue.errors import VenueError
from shared.venue.model import AccountState

TX_CHANGE_PUB_KEY = 8
MAX_API_KEY_INDEX = 254  # lighter-go MaxApiKeyIndex; 255 means "all keys" in queries
PUBKEY_BYTES = 40
TRADES_MAX_LIMIT = 100  # the SDK's OrderApi.trades: limit 1..100
TRADES_SORT_BY = ("block_height", "timestamp", "trade_id")


def change_pub_key_message(pubkey: bytes, nonce: int, account: int, api_key_index: int) -> str:
    """The text an account's L1 key signs (``personal_sign``) to register ``pubkey`` as
    (``account``, ``api_key_index``); numbers as ``0x`` + 16 hex digits (lighter-go
    ``TemplateChangePubKey`` / ``GetL1SignatureBody``; the SDK's ``messageToSign``)."""
    return (f"Register Lighter Account\n\npubkey: 0x{pubkey.hex()}\nnonce: 0x{nonce:016x}\n"
            f"account index: 0x{account:016x}\napi key index: 0x{api_key_index:016x}\n"
            "Only sign this message for a trusted client!")


def recover_l1_address(message: str, signature: str) -> str:
    """The Ethereum address (lowercase ``0x`` hex) whose ``personal_sign`` of ``message`` is
    ``signature`` (hex, 65 bytes, ``0x`` optional).

    Raises:
        VenueError: 21120 the signature is malformed or recovers no address.
    """
    from eth_account import Account
    from eth_account.messages import encode_defunct

    try:
        raw = bytes.fromhex(signature[2:] if signature.startswith(("0x", "0X")) else signature)
        if len(raw) != 65:
            raise ValueError(f"{len(raw)} bytes, expected 65")
        return str(Account.recover_message(encode_defunct(text=message), signature=raw)).lower()
    except Exception as exc:  # eth_account raises several types for bad signatures
        raise VenueError(E.INVALID_SIGNATURE, f"L1Sig: {type(exc).__name__}") from None


class AccountBook(ServerBase):
    """Configured accounts, ``ChangePubKey`` (type 8), ``accountsByL1Address`` and ``trades``."""

    known_accounts: dict[int, AccountSpec]

    def setup_accounts(self, accounts: list[AccountSpec]) -> None:
        """Open ``accounts`` in the engine with their collateral (the only accounts the venue
        knows from now on); an account the engine already has (restored from the state file)
        keeps its state."""
        self.known_accounts = {a.index: a for a in accounts}
        for a in accounts:
            if a.index not in self.engine.accounts:
                self.engine.accounts[a.index] = AccountState(account=a.index, collateral=a.collateral)

    def require_account(self, account: int) -> AccountSpec:
        """The configured account ``account``.

        Raises:
            VenueError: 21100 account not found.
        """
        spec = self.known_accounts.get(account)
        if spec is None:
            raise VenueError(E.ACCOUNT_NOT_FOUND, f"account {account}")
        return spec

    def accounts_of(self, l1_address: str) -> list[AccountSpec]:
        """The accounts owned by ``l1_address`` (case-insensitive), by index."""
        key = l1_address.lower()
        return sorted((a for a in self.known_accounts.values() if a.l1_address.lower() == key),
                      key=lambda a: a.index)

    def tx_handlers(self) -> dict[int, Callable[[dict[str, Any], str], int]]:
        """The parent's tx types plus 8 (``ChangePubKey``)."""
        return super().tx_handlers() | {TX_CHANGE_PUB_KEY: self._change_pub_key}  # type: ignore[misc]

    def _change_pub_key(self, info: dict[str, Any], tx_hash: str) -> int:
        """Register ``PubKey`` for (``AccountIndex``, ``ApiKeyIndex``) if ``L1Sig`` recovers
        the account's L1 address; effective at once (Lighter: once the tx is in a block).

        Raises:
            VenueError: 21501 bad fields or key index over 254, 21100 unknown account, 21120
                the L1 signature is not the owner's.
        """
        try:
            acct, key, nonce = int(info["AccountIndex"]), int(info["ApiKeyIndex"]), int(info["Nonce"])
            pubkey = base64.b64decode(str(info["PubKey"]), validate=True)
            l1_sig = str(info.get("L1Sig") or "")
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise VenueError(E.INVALID_TX_INFO, f"ChangePubKey: {type(exc).__name__}") from None
        if len(pubkey) != PUBKEY_BYTES:
            raise VenueError(E.INVALID_TX_INFO, f"PubKey has {len(pubkey)} bytes, expected {PUBKEY_BYTES}")
        if not 0 <= key <= MAX_API_KEY_INDEX:
            raise VenueError(E.INVALID_TX_INFO, f"ApiKeyIndex {key} outside 0..{MAX_API_KEY_INDEX}")
        spec = self.require_account(acct)
        if not l1_sig:
            raise VenueError(E.INVALID_SIGNATURE, "L1Sig is empty")
        signer = recover_l1_address(change_pub_key_message(pubkey, nonce, acct, key), l1_sig)
        if signer != spec.l1_address.lower():
            raise VenueError(E.INVALID_SIGNATURE, f"L1Sig is not by the owner of account {acct}")
        self.api_keys[(acct, key)] = pubkey.hex()
        return _ms(self.clock())

    # ---------------------------------------------------------------- REST

    def _sub_account_json(self, a: AccountSpec) -> dict[str, Any]:
        stats = self.user_stats(a.index)  # type: ignore[attr-defined]  # FeedMessages
        return {"code": 0, "account_type": 0, "index": a.index, "l1_address": a.l1_address,
                "cancel_all_time": 0, "total_order_count": len(self.engine.active_orders(a.index)),
                "total_isolated_order_count": 0, "pending_order_count": 0,
                "available_balance": stats["available_balance"], "status": 1, "collateral": stats["collateral"],
                "transaction_time": 0, "account_trading_mode": 0}

    async def h_accounts_by_l1_address(self, request: web.Request) -> web.Response:
        """``GET accountsByL1Address?l1_address=`` -> ``{code, l1_address, sub_accounts[]}``;
        21100 when the address owns no account, 21501 without ``l1_address``."""
        l1 = request.query.get("l1_address", "")
        if not l1:
            return error_response(VenueError(E.INVALID_TX_INFO, "missing query parameter l1_address"))
        subs = self.accounts_of(l1)
        if not subs:
            return error_response(VenueError(E.ACCOUNT_NOT_FOUND, f"no account for {l1}"))
        return web.json_response({"code": 200, "l1_address": subs[0].l1_address,
                                  "sub_accounts": [self._sub_account_json(a) for a in subs], "next_cursor": ""})

    def _trades_query(self, request: web.Request) -> tuple[int | None, int | None, str, int, bool, int]:
        """(account, market, role, limit, descending, offset) of a ``trades`` request.

        Raises:
            VenueError: 21501 bad or missing parameters, 21100 unknown account, 21602 market.
        """
        sort_by = request.query.get("sort_by", "")
        if sort_by not in TRADES_SORT_BY:
            raise VenueError(E.INVALID_TX_INFO, f"sort_by must be one of {', '.join(TRADES_SORT_BY)}")
        limit = query_int(request, "limit")
        if not 1 <= limit <= TRADES_MAX_LIMIT:
            raise VenueError(E.INVALID_TX_INFO, f"limit must be 1..{TRADES_MAX_LIMIT}")
        raw_acct = request.query.get("account_index")
        acct = None if raw_acct in (None, "") else query_int(request, "account_index")
        if acct is not None:
            self.require_account(acct)
            token = request.headers.get("Authorization") or request.query.get("auth")
            self.authorize_account(token, acct)  # type: ignore[attr-defined]  # AuthChecks
        mid = request.query.get("market_id")
        market = None
        if mid not in (None, "", "255"):
            market = query_int(request, "market_id")
            if market not in self.markets:
                raise VenueError(E.INVALID_MARKET, f"market {mid}")
        role = request.query.get("role", "all") or "all"
        if role not in ("all", "maker", "taker"):
            raise VenueError(E.INVALID_TX_INFO, "role must be all, maker or taker")
        sort_dir = request.query.get("sort_dir", "desc") or "desc"
        if sort_dir not in ("asc", "desc"):
            raise VenueError(E.INVALID_TX_INFO, "sort_dir must be asc or desc")
        cursor = request.query.get("cursor") or "0"
        if not cursor.isdigit():
            raise VenueError(E.INVALID_TX_INFO, "invalid cursor")
        return acct, market, role, limit, sort_dir == "desc", int(cursor)

    async def h_trades(self, request: web.Request) -> web.Response:
        """``GET trades?sort_by=&limit=`` (*account_index, market_id, role, sort_dir, cursor*) ->
        ``{code, trades[], next_cursor}``: with ``account_index`` every fill of the account (as
        taker or maker, ``role`` filters), else the fills of simulated accounts and the public
        trades the venue keeps (``recentTrades``' buffer). ``sort_by`` orders by trade time in
        any case (trade ids and block heights grow with it here); ``next_cursor`` is an opaque
        offset, empty on the last page."""
        try:
            acct, market, role, limit, desc, offset = self._trades_query(request)
        except VenueError as exc:
            return error_response(exc)
        rows: list[tuple[int, dict[str, Any]]] = []
        for f in self.engine.fills:
            if market is not None and f.market_id != market:
                continue
            if acct is not None:
                taker, maker = f.taker_account == acct, f.maker_account == acct
                if not ((taker and role != "maker") or (maker and role != "taker")):
                    continue
            rows.append((f.ts_ns, self.fill_trade_json(f)))  # type: ignore[attr-defined]  # FeedMessages
        if acct is None:
            own = {t["trade_id"] for _, t in rows}
            for mid, trades in self.trades.items():
                if market is None or mid == market:
                    rows.extend((int(t["timestamp"]) * 1_000_000, t) for t in trades if t["trade_id"] not in own)
        rows.sort(key=lambda r: (r[0], r[1]["trade_id"]), reverse=desc)
        page = [t for _, t in rows[offset:offset + limit]]
        nxt = str(offset + limit) if offset + limit < len(rows) else ""
        return web.json_response({"code": 200, "trades": page, "next_cursor": nxt})

