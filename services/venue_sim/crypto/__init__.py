"""Lighter's tx hashing, Schnorr/ECgFp5 signature checks and auth tokens in pure Python, so that
venue-sim can verify what the official SDK's Go signer produces (that signer exports no verify).

Modules by job: :mod:`.field` (GF(p), GF(p^5)), :mod:`.poseidon2` (hash), :mod:`.curve`
(ECgFp5 group), :mod:`.schnorr` (sign/verify), :mod:`.txhash` (per-tx message and tx hash),
:mod:`.authtoken` (auth tokens). Constructions learnt from elliottech/lighter-go,
elliottech/poseidon_crypto and pornin/ecgfp5; checked against the SDK's signer in
tests/services/venue_sim/test_crypto.py.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from services.venue_sim.crypto.authtoken import (
    MAX_LIFETIME_S,
    AuthToken,
    AuthTokenError,
    check_auth_token,
    parse_auth_token,
)
from services.venue_sim.crypto.field import to_bytes
from services.venue_sim.crypto.schnorr import SignatureError, parse_hex, public_key_bytes, verify
from services.venue_sim.crypto.txhash import (
    CHANGE_PUB_KEY,
    SUPPORTED_TX_TYPES,
    TxFormatError,
    decode_pub_key,
    message,
    tx_hash,
)

__all__ = [
    "MAX_LIFETIME_S", "SUPPORTED_TX_TYPES", "AuthToken", "AuthTokenError", "SignatureError",
    "TxFormatError", "parse_auth_token", "public_key_of", "signing_key_of", "tx_hash",
    "verify_auth_token", "verify_tx",
]


def public_key_of(private_key_hex: str) -> str:
    """The public key (80 hex chars, no ``0x``, as ``apikeys`` shows it) of an API private key
    (40 bytes hex, ``0x`` optional, as ``create_api_key`` returns it).

    Raises:
        SignatureError: not 40 bytes of hex, or zero.
    """
    return public_key_bytes(parse_hex(private_key_hex, 40, "private key")).hex()


def signing_key_of(tx_type: int, info: dict[str, Any]) -> str | None:
    """The key a tx must be signed with when the tx names it itself: ChangePubKey (8) is signed
    with the NEW key in its ``PubKey`` field (the SDK signs it with the client's key for that
    api key index, which is the key being registered: lighter-python examples/system_setup.py).
    None for other types (the registered key of ``(AccountIndex, ApiKeyIndex)`` applies).

    Raises:
        TxFormatError: ChangePubKey whose ``PubKey`` is not 40 bytes of base64/hex.
    """
    if tx_type != CHANGE_PUB_KEY:
        return None
    return decode_pub_key(info.get("PubKey")).hex()


def verify_tx(tx_type: int, info: dict[str, Any], public_key_hex: str, chain_id: int) -> str:
    """Check the ``Sig`` (base64 of 80 bytes) of a tx info object under ``public_key_hex`` and
    return the tx hash (hex, equal to the signer's).

    Raises:
        TxFormatError: unsupported tx type, missing/invalid field.
        SignatureError: missing or malformed ``Sig``, bad key, or the signature does not verify.
    """
    msg = message(tx_type, info, chain_id)
    sig_text = info.get("Sig")
    if not isinstance(sig_text, str):
        raise SignatureError("missing Sig")
    try:
        sig = base64.b64decode(sig_text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("Sig is not base64") from exc
    verify(parse_hex(public_key_hex, 40, "public key"), msg, sig)
    return to_bytes(msg).hex()


def verify_auth_token(token: str, public_key_hex: str, now_s: float) -> tuple[int, int, int]:
    """Check an auth token (see :mod:`.authtoken`) at ``now_s`` (unix s) under the key of its
    (account, api key) and return ``(account, api_key_index, expiry_s)``.

    Raises:
        AuthTokenError: malformed, expired, more than 8 h ahead, or wrongly signed.
    """
    parsed = check_auth_token(token, public_key_hex, now_s)
    return parsed.account, parsed.api_key_index, parsed.expiry
