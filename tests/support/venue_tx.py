"""Signed transactions and auth tokens for tests that talk to venue-sim by hand (without the
SDK), now that venue-sim verifies signatures and auth tokens by default.

Signatures come from the test-only pure-Python signer :func:`services.venue_sim.crypto.schnorr.sign`
(a fixed nonce: deterministic, never for real keys); venue-sim checks them exactly as it checks
the SDK's. Import as ``from venue_tx import ...`` (``tests/support`` is on ``sys.path``).

Typical use::

    register(srv)                               # the key of (1001, 4) on a VenueServer
    srv.send_tx(14, signed(14, order(MarketIndex=1, BaseAmount=20, Price=1000000)))
    headers = {"Authorization": auth_token()}   # account reads
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from services.venue_sim import crypto
from services.venue_sim.auth import DEFAULT_CHAIN_ID
from services.venue_sim.crypto import authtoken, schnorr
from services.venue_sim.crypto.txhash import message

TEST_PRIVATE_KEY = "0x" + "5a" * 40
"""A fixed API private key (40 bytes hex) for tests."""
ACCOUNT, API_KEY = 1001, 4
"""venue-sim's default account and the stack's default API key index."""
_NONCE_SCALAR = 0x1234_5678_9ABC_DEF0


def public_key(private_key: str = TEST_PRIVATE_KEY) -> str:
    """The public key (80 hex, no ``0x``) venue-sim stores for ``private_key``."""
    return crypto.public_key_of(private_key)


def register(srv: Any, account: int = ACCOUNT, api_key_index: int = API_KEY,
             private_key: str = TEST_PRIVATE_KEY) -> str:
    """Register ``private_key``'s public key for (account, api key) on a ``VenueServer`` directly
    (what a ChangePubKey does); returns the public key."""
    pub = public_key(private_key)
    srv.api_keys[(account, api_key_index)] = pub
    return pub


def order(**fields: Any) -> dict[str, Any]:
    """A complete create-order tx info (every field the signer signs; limit GTT buy of COI 1 by
    default): ``fields`` override (``Nonce`` and ``ExpiredAt`` included)."""
    info: dict[str, Any] = {"AccountIndex": ACCOUNT, "ApiKeyIndex": API_KEY, "MarketIndex": 1,
                            "ClientOrderIndex": 1, "BaseAmount": 20, "Price": 1_000_000, "IsAsk": 0,
                            "Type": 0, "TimeInForce": 1, "ReduceOnly": 0, "TriggerPrice": 0,
                            "OrderExpiry": 0, "ExpiredAt": 0, "Nonce": 0}
    info.update(fields)
    return info


def sign_info(tx_type: int, info: dict[str, Any], private_key: str = TEST_PRIVATE_KEY,
              chain_id: int = DEFAULT_CHAIN_ID) -> dict[str, Any]:
    """``info`` with ``Sig`` (base64 of 80 bytes) set: the signature venue-sim verifies.

    Raises:
        services.venue_sim.crypto.TxFormatError: a field the signature covers is missing.
    """
    msg = message(tx_type, info, chain_id)
    sig = schnorr.sign(schnorr.parse_hex(private_key, 40, "private key"), msg, _NONCE_SCALAR)
    return {**info, "Sig": base64.b64encode(sig).decode()}


def signed(tx_type: int, info: dict[str, Any], private_key: str = TEST_PRIVATE_KEY,
           chain_id: int = DEFAULT_CHAIN_ID) -> str:
    """The ``tx_info`` JSON text of ``info`` signed (:func:`sign_info`)."""
    return json.dumps(sign_info(tx_type, info, private_key, chain_id))


def auth_token(account: int = ACCOUNT, api_key_index: int = API_KEY, private_key: str = TEST_PRIVATE_KEY,
               ttl_s: int = 600, now_s: float | None = None) -> str:
    """A Lighter auth token ``"<expiry>:<account>:<key>:<sig hex>"`` expiring ``ttl_s`` seconds
    after ``now_s`` (default: the wall clock)."""
    expiry = int(time.time() if now_s is None else now_s) + ttl_s
    text = f"{expiry}:{account}:{api_key_index}"
    sig = schnorr.sign(schnorr.parse_hex(private_key, 40, "private key"), authtoken.message_of(text), _NONCE_SCALAR)
    return f"{text}:{sig.hex()}"
