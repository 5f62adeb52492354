"""Lighter auth tokens: ``"<expiry_unix_s>:<account_index>:<api_key_index>:<hex signature>"``.

The signed message is the text ``"<expiry>:<account>:<key>"`` as bytes, cut into 8-byte
little-endian chunks (the last one zero-padded), Poseidon2-hashed to GF(p^5)
(lighter-go ``types/tx_request.go`` ``ConstructAuthToken``); the signature is the 80-byte Schnorr
signature of that hash in hex (no ``0x``). Lighter accepts a token at most 8 h before its expiry
(lighter-go README "Auth tokens"; reference notes section 4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.venue_sim.crypto import field as F
from services.venue_sim.crypto.poseidon2 import hash_to_fp5
from services.venue_sim.crypto.schnorr import SignatureError, parse_hex, verify

MAX_LIFETIME_S = 8 * 3600
"""A token is honoured only during the 8 hours before its expiry."""

_TOKEN = re.compile(r"^(\d{1,12}):(\d{1,15}):(\d{1,3}):([0-9a-fA-F]{160})$")


class AuthTokenError(ValueError):
    """A token that is malformed, expired, not yet valid or wrongly signed. The text never
    contains the token."""


@dataclass(frozen=True)
class AuthToken:
    """A parsed token: ``expiry`` in unix seconds."""

    expiry: int
    account: int
    api_key_index: int
    signature: bytes

    @property
    def text(self) -> str:
        """The signed text ``"<expiry>:<account>:<key>"``."""
        return f"{self.expiry}:{self.account}:{self.api_key_index}"


def parse_auth_token(token: str) -> AuthToken:
    """Split a token into its parts.

    Raises:
        AuthTokenError: not of the form ``expiry:account:key:<160 hex>``.
    """
    m = _TOKEN.match(token) if isinstance(token, str) else None
    if m is None:
        raise AuthTokenError("malformed auth token")
    return AuthToken(int(m.group(1)), int(m.group(2)), int(m.group(3)), bytes.fromhex(m.group(4)))


def message_of(text: str) -> F.Fp5:
    """The GF(p^5) hash of a token's signed text."""
    raw = text.encode()
    raw += b"\0" * (-len(raw) % 8)
    return hash_to_fp5(int.from_bytes(raw[i: i + 8], "little") for i in range(0, len(raw), 8))


def check_auth_token(token: str, public_key_hex: str, now_s: float) -> AuthToken:
    """Parse ``token``, check its time window at ``now_s`` (unix seconds) and its signature under
    ``public_key_hex`` (the 40-byte key of the token's (account, api key)).

    Raises:
        AuthTokenError: malformed, expired (expiry <= now), valid only later (expiry more than
            8 h ahead), or the signature does not verify.
    """
    parsed = parse_auth_token(token)
    if parsed.expiry <= now_s:
        raise AuthTokenError("auth token expired")
    if parsed.expiry - now_s > MAX_LIFETIME_S:
        raise AuthTokenError("auth token expiry more than 8 hours ahead")
    try:
        verify(parse_hex(public_key_hex, 40, "public key"), message_of(parsed.text), parsed.signature)
    except SignatureError as exc:
        raise AuthTokenError(f"auth token signature invalid ({exc})") from exc
    return parsed
