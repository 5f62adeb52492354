"""Schnorr signatures over ECgFp5 with a Poseidon2 challenge, as Lighter's signer makes them
(elliottech/poseidon_crypto ``signature/schnorr``; keys from lighter-go ``signer/key_manager.go``).

* private key: a scalar mod n, 40 bytes little-endian (the SDK shows it as hex, ``0x`` optional);
* public key: the encoding of sk G, 40 bytes (5 little-endian GF(p) limbs);
* signature: 80 bytes, ``s`` (40 bytes LE) then ``e`` (40 bytes LE), with r = k G,
  e = H(enc(r) || m) read as an integer mod n (limb i weighs 2^(64 i)), s = k - e sk mod n;
* verification: e == H(enc(s G + e PK) || m) mod n.

The message m is a GF(p^5) element (the tx hash, or the hash of an auth token's text).
"""

from __future__ import annotations

from services.venue_sim.crypto import curve
from services.venue_sim.crypto import field as F
from services.venue_sim.crypto.poseidon2 import hash_to_fp5

SIGNATURE_BYTES = 80
KEY_BYTES = 40


class SignatureError(ValueError):
    """A signature, key or message that does not verify or is malformed. The text never contains
    key material."""


def _fp5_to_int(a: F.Fp5) -> int:
    return sum(limb << (64 * i) for i, limb in enumerate(a))


def challenge(r_encoded: F.Fp5, msg: F.Fp5) -> int:
    """e = H(enc(r) || m) mod n."""
    return _fp5_to_int(hash_to_fp5([*r_encoded, *msg])) % curve.ORDER


def parse_hex(text: str, size: int, what: str) -> bytes:
    """``size`` bytes from hex (optional ``0x``).

    Raises:
        SignatureError: not hex of that many bytes.
    """
    if not isinstance(text, str):
        raise SignatureError(f"{what} must be a hex string")
    body = text[2:] if text.startswith(("0x", "0X")) else text
    try:
        raw = bytes.fromhex(body)
    except ValueError as exc:
        raise SignatureError(f"{what} is not hex") from exc
    if len(raw) != size:
        raise SignatureError(f"{what} must be {size} bytes")
    return raw


def public_key_bytes(private_key: bytes) -> bytes:
    """The 40-byte public key of a 40-byte little-endian private key (reduced mod n, as Go does).

    Raises:
        SignatureError: wrong length, or the key is 0 mod n.
    """
    if len(private_key) != KEY_BYTES:
        raise SignatureError("private key must be 40 bytes")
    sk = int.from_bytes(private_key, "little") % curve.ORDER
    if sk == 0:
        raise SignatureError("private key is zero")
    return F.to_bytes(curve.encode(curve.mul_generator(sk)))


def sign(private_key: bytes, msg: F.Fp5, nonce: int) -> bytes:
    """An 80-byte signature of ``msg`` with nonce scalar ``nonce`` (tests only: a real signer must
    draw the nonce at random; the SDK's signer is what clients use)."""
    sk = int.from_bytes(private_key, "little") % curve.ORDER
    k = nonce % curve.ORDER
    e = challenge(curve.encode(curve.mul_generator(k)), msg)
    s = (k - e * sk) % curve.ORDER
    return s.to_bytes(40, "little") + e.to_bytes(40, "little")


def verify(public_key: bytes, msg: F.Fp5, signature: bytes) -> None:
    """Check ``signature`` (80 bytes) of ``msg`` under ``public_key`` (40 bytes).

    Stricter than the reference where it is lenient: a scalar >= n in the signature is refused
    rather than reduced.

    Raises:
        SignatureError: malformed key or signature, or the signature does not verify.
    """
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError("signature must be 80 bytes")
    try:
        pk = F.from_bytes(public_key)
    except F.EncodingError as exc:
        raise SignatureError("public key is not a canonical field element") from exc
    s = int.from_bytes(signature[:40], "little")
    e = int.from_bytes(signature[40:], "little")
    if s >= curve.ORDER or e >= curve.ORDER:
        raise SignatureError("signature scalar not canonical")
    try:
        r = curve.mul_add_encoded(s, curve.GENERATOR_ENCODING, e, pk)
    except ValueError as exc:
        raise SignatureError("public key is not a curve point") from exc
    if challenge(curve.encode(r), msg) != e:
        raise SignatureError("signature does not verify")
