"""A thin wrapper around the official ``lighter.SignerClient``: offline signing only.

The wrapper keeps the API private key to itself: it is held as a ``SecretStr`` only until the
SDK client is built, the SDK's own copy in ``api_key_dict`` is overwritten afterwards (the Go
signer keeps its own copy), ``repr`` shows no key, and error messages are scrubbed of it.

Every signature uses an explicit nonce and ``api_key_index`` (SDK section 6.5: offline signing),
and the SDK client is built with ``NonceManagerType.NONE``, so the SDK never calls ``nextNonce``
itself. The SDK client must be created inside a running asyncio loop (it opens an aiohttp
session): use :meth:`Signer.create` from a coroutine.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import SecretStr

from .engine import OrderCommand

TX_CREATE_ORDER = 14
TX_CANCEL_ORDER = 15
TX_CANCEL_ALL = 16


class SignError(RuntimeError):
    """The signer refused to sign (the message is the Go signer's, without the key)."""


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A signed transaction ready for ``sendTx``: ``tx_type`` (14/15/16), ``tx_info`` (the JSON
    string to post), ``tx_hash`` (hex) and the ``nonce`` it carries."""

    tx_type: int
    tx_info: str
    tx_hash: str
    nonce: int


def generate_key() -> SecretStr:
    """A fresh random API private key (40 bytes hex), for paper mode on venue-sim.

    Raises:
        SignError: the signer library failed.
    """
    import lighter

    priv, _pub, err = lighter.signer_client.create_api_key()
    if err or not priv:
        raise SignError(f"could not generate an API key: {err}")
    return SecretStr(priv)


class Signer:
    """Signs order transactions for one account and API key.

    Do not construct directly; use ``await Signer.create(...)``.
    """

    def __init__(self, client: object, account_index: int, api_key_index: int, scrub: SecretStr) -> None:
        self._client = client
        self.account_index = account_index
        self.api_key_index = api_key_index
        self._scrub = scrub

    @classmethod
    async def create(cls, url: str, account_index: int, api_key_index: int, chain_id: int,
                     key: SecretStr) -> Signer:
        """Build the SDK client (inside the running loop).

        Raises:
            SignError: invalid key or signer library error (message without the key).
        """
        import lighter
        from lighter.nonce_manager import NonceManagerType

        secret = key.get_secret_value()
        bare = secret[2:] if secret.startswith("0x") else secret
        if len(bare) != 80 or any(ch not in "0123456789abcdefABCDEF" for ch in bare):
            raise SignError(f"invalid API private key: expected 40 bytes of hex, got {len(bare)} characters")
        try:
            client = lighter.SignerClient(url=url, account_index=account_index,
                                          api_private_keys={api_key_index: secret}, chain_id=chain_id,
                                          nonce_management_type=NonceManagerType.NONE)
        except Exception as exc:
            raise SignError(_scrub(f"{type(exc).__name__}: {exc}", bare)) from None
        # the Go signer holds the key now; drop the SDK's Python copy
        client.api_key_dict = {api_key_index: "<redacted>"}
        return cls(client, account_index, api_key_index, SecretStr(bare))

    def __repr__(self) -> str:
        return f"Signer(account_index={self.account_index}, api_key_index={self.api_key_index})"

    def _check(self, res: tuple, nonce: int) -> SignedTx:
        tx_type, tx_info, tx_hash, err = res
        if err:
            raise SignError(_scrub(str(err), self._scrub.get_secret_value()))
        return SignedTx(int(tx_type), str(tx_info), str(tx_hash or ""), nonce)

    def sign(self, cmd: OrderCommand, nonce: int) -> SignedTx:
        """Sign ``cmd`` with ``nonce``: create -> tx 14 (limit, or stop-loss type 2 with its
        trigger price and ``cmd.order_expiry``; limit IOC with order_expiry 0,
        GTT/post-only with ``cmd.order_expiry``, -1 = 28 days), cancel -> tx 15 (Index =
        ``cmd.order_index``), cancel_all -> tx 16 (``cmd.cancel_all_tif``: immediate -- time 0;
        scheduled -- TimeInForce 1, Time ``cmd.cancel_all_time_ms``, the dead-man switch;
        abort -- TimeInForce 2, time 0, cancels the scheduled one; Lighter docs, SDK 6.3).

        Raises:
            SignError: the signer rejected a field (e.g. price < 1, size < 1).
        """
        c = self._client
        if cmd.kind == "create":
            tif = {"ioc": c.ORDER_TIME_IN_FORCE_IMMEDIATE_OR_CANCEL,
                   "gtt": c.ORDER_TIME_IN_FORCE_GOOD_TILL_TIME,
                   "post_only": c.ORDER_TIME_IN_FORCE_POST_ONLY}[cmd.tif]
            stop = cmd.order_type == "stop-loss"
            # a stop-loss is IOC once triggered but waits up to its expiry (Lighter's sample: OrderExpiry set)
            expiry = c.DEFAULT_IOC_EXPIRY if cmd.tif == "ioc" and not stop else cmd.order_expiry
            res = c.sign_create_order(cmd.market_id, cmd.client_order_index, cmd.size, cmd.price,
                                      cmd.side == "sell", c.ORDER_TYPE_STOP_LOSS if stop else c.ORDER_TYPE_LIMIT,
                                      tif, cmd.reduce_only, cmd.trigger_price if stop else c.NIL_TRIGGER_PRICE,
                                      expiry, nonce=nonce, api_key_index=self.api_key_index)
        elif cmd.kind == "cancel":
            res = c.sign_cancel_order(cmd.market_id, cmd.order_index or cmd.client_order_index, nonce=nonce,
                                      api_key_index=self.api_key_index)
        elif cmd.kind == "cancel_all":
            tif = {"immediate": c.CANCEL_ALL_TIF_IMMEDIATE, "scheduled": c.CANCEL_ALL_TIF_SCHEDULED,
                   "abort": c.CANCEL_ALL_TIF_ABORT}[cmd.cancel_all_tif]
            when = cmd.cancel_all_time_ms if cmd.cancel_all_tif == "scheduled" else 0
            res = c.sign_cancel_all_orders(tif, when, nonce=nonce, api_key_index=self.api_key_index)
        else:  # pragma: no cover - Literal type
            raise SignError(f"unknown command kind {cmd.kind!r}")
        return self._check(res, nonce)

    def auth_token(self, ttl_s: int) -> str:
        """An auth token valid ``ttl_s`` seconds (``expiry:account:key:sig``), for private WS
        channels and the ``Authorization`` header.

        Raises:
            SignError: the signer failed.
        """
        token, err = self._client.create_auth_token_with_expiry(ttl_s, api_key_index=self.api_key_index)
        if err or not token:
            raise SignError(_scrub(f"auth token: {err}", self._scrub.get_secret_value()))
        return token

    async def close(self) -> None:
        """Close the SDK client's HTTP session."""
        await self._client.close()


def _scrub(msg: str, secret: str) -> str:
    return msg.replace(secret, "<redacted>") if secret else msg


