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

import asyncio
import re
from dataclasses import dataclass

from pydantic import SecretStr

from .engine import OrderCommand

TX_CREATE_ORDER = 14
TX_CANCEL_ORDER = 15
TX_CANCEL_ALL = 16
ORDER_EXPIRY_28_DAYS_MS = 28 * 86_400_000


def order_expiry_ms(cmd: OrderCommand) -> int:
    """The OrderExpiry (ms) to sign for a resting or stop create: ``cmd.order_expiry`` when it
    is an explicit time; for -1 (Lighter's default, 28 days) 28 days after the event that caused
    the order (``cmd.ts_event``), so the expiry is in the venue's time -- which is the events'
    time: Lighter's, or venue-sim's (wall clock, or the recording's in lockstep). Lighter
    requires now + 5 min .. now + 30 days (21711, reference notes 6.3). -1 stays (the signer then
    uses the wall clock) only for a command without an event time."""
    if cmd.order_expiry != -1 or cmd.ts_event <= 0:
        return cmd.order_expiry
    return cmd.ts_event // 1_000_000 + ORDER_EXPIRY_28_DAYS_MS


TX_CHANGE_PUB_KEY = 8
_OWN_PUBKEY = re.compile(r"ownPubKey: (?:0x)?([0-9a-fA-F]{80})")
TX_UPDATE_LEVERAGE = 20


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


DERIVE_ACCOUNT, DERIVE_KEY = 2**48 - 2, 254  # a slot no real account uses: keeps the executor's Go client intact


async def derive_public_key(key: SecretStr) -> str:
    """The public key (``0x`` + 80 hex) of API private key ``key``.

    The SDK exports no derivation, but its Go signer names its own public key when ``apikeys``
    reports another one (lighter-go ``TxClient.Check``). So a throwaway loopback server answers
    ``apikeys`` with an empty key for a dedicated slot (:data:`DERIVE_ACCOUNT`,
    :data:`DERIVE_KEY`) and the key's signer client is checked against it: nothing leaves the
    machine.

    Raises:
        SignError: invalid key, or the signer's answer carries no public key.
    """
    import lighter
    from aiohttp import web

    async def apikeys(_request: web.Request) -> web.Response:
        return web.json_response({"code": 200, "api_keys": [{"account_index": DERIVE_ACCOUNT,
                                                             "api_key_index": DERIVE_KEY, "nonce": 0,
                                                             "public_key": ""}]})

    app = web.Application()
    app.router.add_get("/api/v1/apikeys", apikeys)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    client = None
    secret = key.get_secret_value()
    bare = secret[2:] if secret.startswith("0x") else secret
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            client = lighter.SignerClient(url=url, account_index=DERIVE_ACCOUNT,
                                          api_private_keys={DERIVE_KEY: secret}, chain_id=304)
        except Exception as exc:
            raise SignError(_scrub(f"invalid API private key: {type(exc).__name__}: {exc}", bare)) from None
        client.api_key_dict = {DERIVE_KEY: "<redacted>"}
        err = await asyncio.to_thread(client.check_client)
    finally:
        if client is not None:
            await client.close()
        await runner.cleanup()
    m = _OWN_PUBKEY.search(str(err))
    if m is None:
        raise SignError("could not derive the public key: " + _scrub(str(err), bare))
    return "0x" + m.group(1).lower()


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
        trigger price and :func:`order_expiry_ms`; limit IOC with order_expiry 0,
        GTT/post-only with :func:`order_expiry_ms`: -1 = 28 days after ``cmd.ts_event``), cancel -> tx 15 (Index =
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
            expiry = c.DEFAULT_IOC_EXPIRY if cmd.tif == "ioc" and not stop else order_expiry_ms(cmd)
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

    async def registration(self) -> tuple[bool, str]:
        """Whether the venue's ``apikeys`` reports this key's public key for (account, key
        index) -- the SDK's ``check_client``, run in a thread (the Go signer's HTTP call
        blocks) -- and the signer's message when not.

        The message is "no api key returned" also when the venue could not be asked; callers
        that act on a False must expect the venue's own answer to the next call."""
        err = await asyncio.to_thread(self._client.check_client)
        return err is None, _scrub(str(err or ""), self._scrub.get_secret_value())

    async def public_key(self) -> str:
        """This key's public key (``0x`` + 80 hex): :func:`derive_public_key`.

        Raises:
            SignError: derivation failed.
        """
        return await derive_public_key(self._scrub)

    def sign_change_pub_key(self, l1_key: SecretStr, pubkey: str, nonce: int) -> SignedTx:
        """Sign ``ChangePubKey`` (tx 8) registering ``pubkey`` (hex) as this key index, with
        ``L1Sig`` by the wallet key ``l1_key`` (the SDK's ``sign_change_api_key``).

        Raises:
            SignError: the signer or the L1 signing failed (message without either key).
        """
        l1 = l1_key.get_secret_value()
        try:
            res = self._client.sign_change_api_key(l1, pubkey, nonce=nonce, api_key_index=self.api_key_index)
        except Exception as exc:  # eth_account raises several types for a bad key
            raise SignError(_scrub(_scrub(f"ChangePubKey: {type(exc).__name__}: {exc}", l1),
                                   self._scrub.get_secret_value())) from None
        tx_type, tx_info, tx_hash, err = res
        if err:
            raise SignError(_scrub(_scrub(str(err), l1), self._scrub.get_secret_value()))
        return SignedTx(int(tx_type), str(tx_info), str(tx_hash or ""), nonce)

    def sign_update_leverage(self, market_id: int, initial_margin_fraction: int, margin_mode: int,
                             nonce: int) -> SignedTx:
        """Sign an ``updateLeverage`` tx (type 20): ``initial_margin_fraction`` in 1/10000
        (``10000 / leverage``), ``margin_mode`` 0 cross / 1 isolated.

        Raises:
            SignError: the signer rejected a field (IMF outside 1..10000, mode not 0/1).
        """
        res = self._client.sign_update_leverage(market_id, initial_margin_fraction, margin_mode, nonce=nonce,
                                                api_key_index=self.api_key_index)
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


