"""Live set-up commands: ``lighter-stack setup-api-key``, ``check-keys`` and ``account``.

- ``setup-api-key``: the wallet key (``LIGHTER_L1_PRIVATE_KEY``) finds its account
  (``accountsByL1Address``; the lowest index, the master account, unless ``--account-index``),
  a fresh API key pair is generated (the SDK's ``create_api_key``) and registered with a
  ``ChangePubKey`` (tx 8) carrying the wallet's ``personal_sign`` (``L1Sig``); the command waits
  until ``apikeys`` reports the public key and the SDK's ``check_client`` passes, then prints
  account index, key index and public key. The private key is written only to ``--out FILE``
  (mode 0600) or printed only with ``--show-private-key``. The flow of lighter-python's
  ``examples/system_setup.py``.
- ``check-keys``: with ``LIGHTER_API_PRIVATE_KEY``, sign offline (an order and an auth token);
  when the venue answers, ``check_client``, then place a post-only buy of the market's minimum
  size far below the best bid and cancel it; one line per step.
- ``account``: collateral, positions and open orders from the venue's REST; ``--trades``
  compares the venue's trade history (``trades?account_index=``) with the ledger's fills and
  prints the differences.

Secrets: neither key is ever logged or printed unless asked (``--show-private-key``).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import SecretStr

from services.executor.common import OrderCommand
from services.executor.signer import Signer, SignError, derive_public_key
from services.executor.venue import LighterRest
from shared.markets import MarketInfo
from shared.venue.errors import VenueError
from shared.venue.paper_identity import L1_KEY_ENV, PAPER_L1_PRIVATE_KEY

Echo = Callable[[str], None]
FAR_BELOW = 0.95  # check-keys' buy: 5% under the best bid (post-only, far from any fill)


class SetupError(RuntimeError):
    """A set-up step failed (the message names the step, never a key)."""


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def l1_key_from_env(url: str, env: dict[str, str] | None = None) -> SecretStr:
    """The wallet key from ``LIGHTER_L1_PRIVATE_KEY``.

    Raises:
        SetupError: unset, or the publicly known paper key used against a non-loopback venue.
    """
    env = os.environ if env is None else env
    raw = env.get(L1_KEY_ENV, "").strip()
    if not raw:
        raise SetupError(f"{L1_KEY_ENV} is not set (the wallet key owning the Lighter account)")
    if raw.lower().removeprefix("0x") == PAPER_L1_PRIVATE_KEY.removeprefix("0x") and not _is_loopback(url):
        raise SetupError("the paper L1 key is public and worthless: refusing to use it with a non-loopback venue")
    return SecretStr(raw)


async def find_account(rest: LighterRest, l1_address: str, account_index: int | None) -> int:
    """The account of ``l1_address`` (``accountsByL1Address``): ``account_index`` if given and
    owned by the address, else the lowest index (the master account).

    Raises:
        SetupError: the address owns no account, or not ``account_index``.
    """
    try:
        body = await rest.get("accountsByL1Address", {"l1_address": l1_address})
    except VenueError as exc:
        raise SetupError(f"accountsByL1Address {l1_address}: {exc}") from None
    owned = sorted(int(a["index"]) for a in body.get("sub_accounts") or [])
    if not owned:
        raise SetupError(f"no account for {l1_address}")
    if account_index is None:
        return owned[0]
    if account_index not in owned:
        raise SetupError(f"account {account_index} is not owned by {l1_address} (owned: {owned})")
    return account_index


def write_secret_file(path: Path, lines: list[str]) -> None:
    """Write ``lines`` to ``path`` readable by the owner only (0600, also when it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")


@dataclass
class Registered:
    """Result of :func:`setup_api_key`; ``private_key`` is a SecretStr (never printed by
    default)."""

    account_index: int
    api_key_index: int
    public_key: str
    private_key: SecretStr = field(repr=False)


async def setup_api_key(url: str, l1_key: SecretStr, api_key_index: int, chain_id: int,
                        account_index: int | None = None, timeout_s: float = 30.0,
                        echo: Echo = print) -> Registered:
    """Generate an API key and register it for the wallet's account (module docstring).

    Raises:
        SetupError: a step failed.
    """
    import lighter
    from eth_account import Account

    try:
        address = Account.from_key(l1_key.get_secret_value()).address
    except Exception:
        raise SetupError(f"{L1_KEY_ENV} is not a valid Ethereum private key") from None
    rest = LighterRest(url, timeout_s=10.0)
    signer = None
    try:
        acct = await find_account(rest, address, account_index)
        echo(f"account {acct} (L1 address {address})")
        priv, pub, err = lighter.create_api_key()
        if err or not priv:
            raise SetupError(f"key generation failed: {err}")
        key = SecretStr(priv)
        signer = await Signer.create(url, acct, api_key_index, chain_id, key)
        nonce = await rest.next_nonce(acct, api_key_index)
        tx = signer.sign_change_pub_key(l1_key, pub, nonce)
        res = await rest.send_tx(tx.tx_type, tx.tx_info)
        if not res.ok:
            raise SetupError(f"ChangePubKey refused: {res.code} {res.message}")
        echo(f"ChangePubKey sent (tx {res.tx_hash[:16]}...); waiting for apikeys to report the key")
        want = pub.lower().removeprefix("0x")
        deadline = time.monotonic() + timeout_s
        while True:
            body = await rest.get("apikeys", {"account_index": acct, "api_key_index": api_key_index})
            if any(str(k.get("public_key", "")).lower().removeprefix("0x") == want
                   and int(k.get("api_key_index", -1)) == api_key_index for k in body.get("api_keys") or []):
                break
            if time.monotonic() > deadline:
                raise SetupError(f"apikeys does not report the new key after {timeout_s:g}s")
            await asyncio.sleep(1.0)
        ok, why = await signer.registration()
        if not ok:
            raise SetupError(f"check_client failed: {why}")
        return Registered(acct, api_key_index, pub, key)
    except (VenueError, SignError) as exc:
        raise SetupError(str(exc)) from None
    finally:
        if signer is not None:
            await signer.close()
        await rest.close()


# ---------------------------------------------------------------------------------- check-keys


@dataclass
class Steps:
    """Step reporter: ``ok``/``fail``/``skip`` print one line each; ``failed`` counts."""

    echo: Echo
    failed: int = 0

    def ok(self, step: str, detail: str = "") -> None:
        self.echo(f"OK    {step}" + (f": {detail}" if detail else ""))

    def fail(self, step: str, detail: str) -> None:
        self.failed += 1
        self.echo(f"FAIL  {step}: {detail}")

    def skip(self, step: str, detail: str) -> None:
        self.echo(f"SKIP  {step}: {detail}")


def min_order(m: MarketInfo, price: float) -> int:
    """The smallest size (lots) meeting ``min_base_amount`` and ``min_quote_amount`` at
    ``price`` (Lighter's minimums, reference notes section 3)."""
    base = max(m.min_base_amount, m.min_quote_amount / price if price > 0 else 0.0)
    lots = m.size_to_int(base)
    while lots / 10**m.size_decimals < base - 1e-12 or lots / 10**m.size_decimals * price < m.min_quote_amount:
        lots += 1
    return max(lots, 1)


async def check_keys(url: str, key: SecretStr, account_index: int, api_key_index: int, chain_id: int,
                     market: str, echo: Echo = print, timeout_s: float = 10.0) -> int:
    """Run the ``check-keys`` steps; returns the number of failed steps."""
    steps = Steps(echo)
    try:
        pub = await derive_public_key(key)
        steps.ok("key", f"public key {pub}")
    except SignError as exc:
        steps.fail("key", str(exc))
        return steps.failed
    signer = await Signer.create(url, account_index, api_key_index, chain_id, key)
    rest = LighterRest(url, timeout_s=timeout_s)
    try:
        probe = OrderCommand(kind="create", market="BTC", market_id=1, client_order_index=1, side="buy",
                             price=1, size=1, tif="post_only", order_expiry=-1)
        signer.sign(probe, 0)
        token = signer.auth_token(600)
        steps.ok("offline signing", f"order and auth token for account {account_index} key {api_key_index}")
        try:
            markets = await rest.markets()
        except VenueError as exc:
            steps.skip("venue", f"{url} unreachable ({exc}); offline checks only")
            return steps.failed
        steps.ok("venue", f"{url} answers ({len(markets)} markets)")
        ok, why = await signer.registration()
        if not ok:
            steps.fail("check_client", why)
            return steps.failed
        steps.ok("check_client", "the venue reports this public key")
        await _place_and_cancel(rest, signer, markets, market, account_index, api_key_index, token, steps,
                                timeout_s)
    except (SignError, VenueError) as exc:
        steps.fail("check", str(exc))
    finally:
        await signer.close()
        await rest.close()
    return steps.failed


async def _place_and_cancel(rest: LighterRest, signer: Signer, markets: dict[str, MarketInfo], symbol: str,
                            acct: int, key: int, token: str, steps: Steps, timeout_s: float) -> None:
    m = markets.get(symbol)
    if m is None:
        steps.fail("market", f"{symbol} not on the venue ({sorted(markets)})")
        return
    book = await rest.get("orderBookOrders", {"market_id": m.market_id, "limit": 1})
    bids = book.get("bids") or []
    if not bids:
        steps.fail("market", f"{symbol} has no bid to price the test order from")
        return
    px = m.price_to_int(float(bids[0]["price"]) * FAR_BELOW)
    lots = min_order(m, px / 10**m.price_decimals)
    coi = secrets.randbelow(2**40) + 1
    nonce = await rest.next_nonce(acct, key)
    create = OrderCommand(kind="create", market=symbol, market_id=m.market_id, client_order_index=coi, side="buy",
                          price=px, size=lots, tif="post_only", order_expiry=-1)
    res = await rest.send_tx(*_tx(signer.sign(create, nonce)))
    if not res.ok:
        steps.fail("place", f"{res.code} {res.message}")
        return
    price_s, size_s = m.price_str(px), m.size_str(lots)
    if not await _until(lambda: _has_order(rest, acct, m.market_id, token, coi, True), timeout_s):
        steps.fail("place", f"post-only buy {size_s} {symbol} @ {price_s} accepted but not listed as active")
    else:
        steps.ok("place", f"post-only buy {size_s} {symbol} @ {price_s} resting (client order index {coi})")
    cancel = OrderCommand(kind="cancel", market=symbol, market_id=m.market_id, client_order_index=coi,
                          order_index=coi)
    res = await rest.send_tx(*_tx(signer.sign(cancel, nonce + 1)))
    if not res.ok:
        steps.fail("cancel", f"{res.code} {res.message}")
        return
    if await _until(lambda: _has_order(rest, acct, m.market_id, token, coi, False), timeout_s):
        steps.ok("cancel", "the order is gone")
    else:
        steps.fail("cancel", "accepted but the order is still active")


def _tx(signed: Any) -> tuple[int, str]:
    return signed.tx_type, signed.tx_info


async def _has_order(rest: LighterRest, acct: int, market_id: int, token: str, coi: int, present: bool) -> bool:
    orders = await rest.active_orders(acct, market_id, token)
    return any(int(o.get("client_order_index", 0)) == coi for o in orders) == present


async def _until(cond: Callable[[], Any], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await cond():
            return True
        await asyncio.sleep(0.2)
    return False
