"""venue-sim: who may act for an account -- the tx check (:meth:`AuthChecks.authenticate_tx`)
and the read check of account endpoints and channels (:meth:`AuthChecks.authorize_account`).

Both use :mod:`services.venue_sim.crypto` (Lighter's Poseidon2 tx hash, Schnorr/ECgFp5
signatures and auth tokens, in pure Python). They are switched by ``verify_signatures`` and
``verify_auth`` (config ``services: venue-sim:``; both on by default, as on Lighter -- callers
register their API keys with ChangePubKey first); the tx hash is the signer's whenever the tx type is one the crypto package hashes, even
with the checks off.
"""

from __future__ import annotations

import time
from typing import Any

from services.venue_sim import crypto
from services.venue_sim.base import ServerBase, tx_hash_of
from shared.venue import errors as E
from shared.venue.errors import VenueError

DEFAULT_CHAIN_ID = 304
"""The chain id the SDK signs with for any URL that is not a Lighter host (reference notes
section 1), hence for venue-sim."""
AUTH_CHANNELS = ("account_all_orders", "account_orders", "account_tx", "account_all_assets")
"""Account channels venue-sim serves that Lighter marks auth (reference notes section 5.2); the
others it serves (account_all, account_all_trades, account_all_positions, user_stats) are
public there."""
_TOKEN_CACHE_MAX = 1024


class AuthChecks(ServerBase):
    """Account, API key, signature and auth-token checks.

    Attributes (class defaults; the runner sets them from the config):
        verify_signatures: refuse txs whose signature does not verify under the registered key
            of (``AccountIndex``, ``ApiKeyIndex``) in ``self.api_keys`` (ChangePubKey: under
            the tx's own ``PubKey``).
        verify_auth: refuse account reads without a valid auth token of that account.
        chain_id: the chain id tx hashes and signatures are computed for.
    """

    verify_signatures: bool = False
    verify_auth: bool = False
    chain_id: int = DEFAULT_CHAIN_ID

    def _verified_tokens(self) -> dict[tuple[str, str], int]:
        """(token, key) -> expiry of tokens whose signature verified (per server instance)."""
        cache: dict[tuple[str, str], int] | None = getattr(self, "_auth_token_cache", None)
        if cache is None:
            cache = self._auth_token_cache = {}
        return cache

    def wall_now_s(self) -> float:
        """Wall-clock unix seconds (auth tokens carry wall-clock expiries, as Lighter's)."""
        return time.time()

    def authenticate_tx(self, tx_type: int, info: dict[str, Any], tx_info: str) -> str:
        """Check that the tx may act for its ``AccountIndex``/``ApiKeyIndex`` and return its tx
        hash (hex): the signer's hash for the tx types of ``crypto.SUPPORTED_TX_TYPES``
        (8, 14, 15, 16, 17, 20, 28, 29); other types, with ``verify_signatures`` off, get a
        deterministic stand-in hash of ``tx_info``.

        Raises:
            VenueError: only with ``verify_signatures``: 21121 no key registered for the pair,
                21120 missing/malformed/invalid ``Sig``, 21501 a field the hash needs is
                missing or invalid, 21505 a tx type whose signature venue-sim cannot check.
        """
        if not self.verify_signatures:
            try:
                return crypto.tx_hash(tx_type, info, self.chain_id)
            except crypto.TxFormatError:
                return tx_hash_of(tx_info)
        if tx_type not in crypto.SUPPORTED_TX_TYPES:
            raise VenueError(E.UNSUPPORTED_TX_TYPE, f"venue-sim cannot verify signatures of tx type {tx_type}")
        try:
            key = crypto.signing_key_of(tx_type, info)
            if key is None:
                pair = (int(info["AccountIndex"]), int(info["ApiKeyIndex"]))
                key = self.api_keys.get(pair)
                if not key:
                    raise VenueError(E.API_KEY_NOT_FOUND, f"account {pair[0]} api key {pair[1]}")
            return crypto.verify_tx(tx_type, info, key, self.chain_id)
        except crypto.TxFormatError as exc:
            raise VenueError(E.INVALID_TX_INFO, str(exc)) from None
        except crypto.SignatureError as exc:
            raise VenueError(E.INVALID_SIGNATURE, str(exc)) from None

    def authorize_account(self, token: str | None, account: int) -> None:
        """Check that ``token`` (Lighter's auth token, ``"<expiry_s>:<account>:<key>:<sig>"``,
        from the ``Authorization`` header, the ``auth`` query parameter or a WS subscribe's
        ``auth`` field; None when absent) may read ``account``'s private data: with
        ``verify_auth`` on, the token must be of ``account`` itself, its expiry in the future and
        at most 8 h ahead (Lighter's maximum lifetime), its (account, key) registered in
        ``self.api_keys`` and its signature valid under that key. Verified tokens are cached
        (per token and key; the time window is re-checked on every use).

        Raises:
            VenueError: 20013 the token is missing, malformed, expired, too far ahead, of another
                account, of an unregistered key, or wrongly signed (the message never contains
                the token).
        """
        if not self.verify_auth:
            return
        if not token:
            raise VenueError(E.INVALID_AUTH, f"an auth token of account {account} is required")
        try:
            parsed = crypto.parse_auth_token(token)
        except crypto.AuthTokenError as exc:
            raise VenueError(E.INVALID_AUTH, str(exc)) from None
        if parsed.account != account:
            raise VenueError(E.INVALID_AUTH, f"token of account {parsed.account} cannot read account {account}")
        key = self.api_keys.get((parsed.account, parsed.api_key_index))
        if not key:
            raise VenueError(E.INVALID_AUTH, f"no key registered for account {account} api key {parsed.api_key_index}")
        now = self.wall_now_s()
        cache = self._verified_tokens()
        if (token, key) in cache:
            if parsed.expiry <= now or parsed.expiry - now > crypto.MAX_LIFETIME_S:
                raise VenueError(E.INVALID_AUTH, "auth token expired or too far ahead")
            return
        try:
            crypto.verify_auth_token(token, key, now)
        except crypto.AuthTokenError as exc:
            raise VenueError(E.INVALID_AUTH, str(exc)) from None
        if len(cache) >= _TOKEN_CACHE_MAX:
            cache.clear()
        cache[(token, key)] = parsed.expiry
