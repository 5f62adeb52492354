"""venue-sim's pure-Python Lighter crypto (services/venue_sim/crypto) against the official SDK's Go
signer (lighter-sdk 1.1.8, offline): fresh key pairs and txs signed by the SDK; our tx hash must
equal the signer's, our verifier must accept the signature under the right key and refuse it
under another key or after a field is tampered; auth tokens likewise."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import lighter
import pytest
from lighter.signer_client import CreateOrderTxReq

from services.venue_sim import crypto
from services.venue_sim.crypto import curve, field, poseidon2, schnorr

ACCT, KEY = 12345, 7
CHAIN = 304
ETH_KEY = "0x" + "11" * 32  # a throwaway L1 key: ChangePubKey carries an L1 signature too


def new_key() -> tuple[str, str]:
    priv, pub, err = lighter.signer_client.create_api_key()
    assert err is None
    return priv, pub


async def signer(priv: str, account: int = ACCT, key: int = KEY) -> lighter.SignerClient:
    """An SDK signer (needs a running loop for its HTTP client; it never connects)."""
    return lighter.SignerClient(url="http://127.0.0.1:1", account_index=account, api_private_keys={key: priv},
                                chain_id=CHAIN)


def _exp() -> int:
    return int(time.time() * 1000) + 86_400_000


def _grouped(c: lighter.SignerClient, nonce: int):
    exp = _exp()  # one expiry for the group (the signer refuses differing ones)
    primary = CreateOrderTxReq(1, 0, 100, 4000, 0, 0, 1, 0, 0, exp)
    stop = CreateOrderTxReq(1, 0, 0, 3800, 1, 2, 0, 1, 3850, exp)
    take = CreateOrderTxReq(1, 0, 0, 4200, 1, 4, 0, 1, 4150, exp)
    return c.sign_create_grouped_orders(3, [primary, stop, take], nonce=nonce, api_key_index=KEY)


SIGNED: dict[str, Callable[[lighter.SignerClient, int], tuple]] = {
    "create limit": lambda c, n: c.sign_create_order(1, 12, 100, 4000, False, 0, 1, nonce=n, api_key_index=KEY),
    "create market": lambda c, n: c.sign_create_order(0, 13, 100, 4000, True, 1, 0, order_expiry=0, nonce=n,
                                                      api_key_index=KEY),
    "create stop-loss": lambda c, n: c.sign_create_order(1, 14, 100, 3800, True, 2, 0, reduce_only=True,
                                                         trigger_price=3850, order_expiry=_exp(), nonce=n,
                                                         api_key_index=KEY),
    "create integrator attrs": lambda c, n: c.sign_create_order(0, 15, 100, 4000, True, 0, 1,
                                                                integrator_account_index=55, integrator_taker_fee=100,
                                                                integrator_maker_fee=50, nonce=n, api_key_index=KEY),
    "create self-trade attr": lambda c, n: c.sign_create_order(0, 16, 100, 4000, True, 0, 1,
                                                               self_trade_behavior_mode=2, nonce=n, api_key_index=KEY),
    "create skip-nonce": lambda c, n: c.sign_create_order(0, 17, 100, 4000, True, 0, 1, skip_nonce=1, nonce=n,
                                                          api_key_index=KEY),
    "cancel": lambda c, n: c.sign_cancel_order(1, 12, nonce=n, api_key_index=KEY),
    "cancel-all": lambda c, n: c.sign_cancel_all_orders(0, 0, nonce=n, api_key_index=KEY),
    "cancel-all one market": lambda c, n: c.sign_cancel_all_orders(0, 0, cancel_all_market_index=1, nonce=n,
                                                                   api_key_index=KEY),
    "cancel-all scheduled": lambda c, n: c.sign_cancel_all_orders(1, _exp() - 80_000_000, nonce=n, api_key_index=KEY),
    "modify": lambda c, n: c.sign_modify_order(1, 281474976710600, 200, 4100, nonce=n, api_key_index=KEY),
    "modify trigger": lambda c, n: c.sign_modify_order(1, 12, 200, 3800, 3850, nonce=n, api_key_index=KEY),
    "update leverage": lambda c, n: c.sign_update_leverage(1, 500, 1, nonce=n, api_key_index=KEY),
    "update margin": lambda c, n: c.sign_update_margin(1, 123_456_789_012, 1, nonce=n, api_key_index=KEY),
    "grouped otoco": _grouped,
}
"""Every SDK signing call venue-sim hashes and verifies (tx types 14, 15, 16, 17, 20, 28, 29;
ChangePubKey 8 has its own test)."""

TAMPER = {14: "Price", 15: "Index", 16: "TimeInForce", 17: "BaseAmount", 20: "InitialMarginFraction",
          28: "GroupingType", 29: "USDCAmount", 8: "Nonce"}


def test_poseidon2_permutation_known_answer():
    # known-answer vector (data) from elliottech/poseidon_crypto hash/poseidon2_goldilocks_plonky2/poseidon2_test.go
    state = [5417613058500526590, 2481548824842427254, 6473243198879784792, 1720313757066167274,
             2806320291675974571, 7407976414706455446, 1105257841424046885, 7613435757403328049,
             3376066686066811538, 5888575799323675710, 6689309723188675948, 2468250420241012720]
    out = poseidon2.permute(state)
    assert out[:4] == [5364184781011389007, 15309475861242939136, 5983386513087443499, 886942118604446276]
    assert out[-1] == 2288460879362380348


def test_field_inverse_sqrt_and_generator():
    a = (3, 1, 4, 1, 5)
    assert field.mul(a, field.inv(a)) == field.ONE
    r = field.sqrt(field.square(a))
    assert r is not None and field.square(r) == field.square(a)
    assert field.sqrt((field.P - 1, 0, 0, 0, 0)) is not None  # -1 is a square in GF(p)
    assert not field.is_square((7, 0, 0, 0, 0)) and field.sqrt((7, 0, 0, 0, 0)) is None
    # n G is the neutral, (n+1) G is G again; G encodes as w = 4
    assert curve.encode(curve.mul_generator(curve.ORDER)) == field.ZERO
    assert curve.encode(curve.mul_generator(curve.ORDER + 1)) == curve.GENERATOR_ENCODING


def test_encoding_roundtrip_and_group_law():
    for k in (1, 2, 3, 1234567, curve.ORDER - 1, 2**200 + 17):
        w = curve.encode(curve.mul_generator(k))
        assert curve.encode(curve.decode(w)) == w
    a, b = 987654321, 123456789123
    pa, pb = curve.mul_generator(a), curve.mul_generator(b)
    assert curve.encode(curve.add(pa, pb)) == curve.encode(curve.mul_generator(a + b))
    assert curve.encode(curve.double(pa)) == curve.encode(curve.mul_generator(2 * a))
    assert curve.encode(curve.add(pa, curve.negate(pa))) == field.ZERO
    assert curve.encode(curve.add(pa, curve.NEUTRAL)) == curve.encode(pa)


def test_public_key_of_equals_the_sdks():
    for _ in range(3):
        priv, pub = new_key()
        assert crypto.public_key_of(priv) == pub.removeprefix("0x")
        assert crypto.public_key_of(priv.removeprefix("0x")) == pub.removeprefix("0x")
    with pytest.raises(crypto.SignatureError):
        crypto.public_key_of("0x1234")
    with pytest.raises(crypto.SignatureError):
        crypto.public_key_of("00" * 40)


def test_own_sign_verify_roundtrip():
    priv = bytes(range(1, 41))
    pk = schnorr.public_key_bytes(priv)
    msg = (1, 2, 3, 4, 5)
    sig = schnorr.sign(priv, msg, nonce=123456789)
    schnorr.verify(pk, msg, sig)
    with pytest.raises(schnorr.SignatureError):
        schnorr.verify(pk, (1, 2, 3, 4, 6), sig)


@pytest.mark.parametrize("case", sorted(SIGNED))
async def test_tx_hash_equals_signer_and_signature_verifies(case):
    priv, pub = new_key()
    _, other_pub = new_key()
    c = await signer(priv)
    try:
        tx_type, tx_info, signer_hash, err = SIGNED[case](c, 5)
    finally:
        await c.close()
    assert err is None, err
    info = json.loads(tx_info)
    assert crypto.tx_hash(tx_type, info, CHAIN) == signer_hash
    assert crypto.verify_tx(tx_type, info, pub, CHAIN) == signer_hash
    assert crypto.tx_hash(tx_type, info, 300) != signer_hash  # the chain id is part of the message
    with pytest.raises(crypto.SignatureError, match="does not verify"):
        crypto.verify_tx(tx_type, info, other_pub, CHAIN)
    with pytest.raises(crypto.SignatureError):
        crypto.verify_tx(tx_type, info, pub, 300)
    tampered = dict(info)
    tampered[TAMPER[tx_type]] = info[TAMPER[tx_type]] + 1
    with pytest.raises(crypto.SignatureError, match="does not verify"):
        crypto.verify_tx(tx_type, tampered, pub, CHAIN)
    for field_name in ("Nonce", "ExpiredAt", "AccountIndex", "ApiKeyIndex"):
        moved = {**info, field_name: info[field_name] + 1}
        with pytest.raises(crypto.SignatureError):
            crypto.verify_tx(tx_type, moved, pub, CHAIN)


async def test_change_pub_key_is_signed_with_the_new_key():
    old_priv, old_pub = new_key()
    new_priv, new_pub = new_key()
    c = await signer(new_priv)  # as lighter-python examples/system_setup.py: the client holds the new key
    try:
        tx_type, tx_info, signer_hash, err = c.sign_change_api_key(ETH_KEY, new_pub, nonce=3, api_key_index=KEY)
    finally:
        await c.close()
    assert err is None and tx_type == 8
    info = json.loads(tx_info)
    assert base64.b64decode(info["PubKey"]).hex() == new_pub.removeprefix("0x")
    assert crypto.signing_key_of(8, info) == new_pub.removeprefix("0x")
    assert crypto.signing_key_of(14, info) is None
    assert crypto.tx_hash(8, info, CHAIN) == signer_hash
    assert crypto.verify_tx(8, info, new_pub, CHAIN) == signer_hash
    with pytest.raises(crypto.SignatureError):
        crypto.verify_tx(8, info, old_pub, CHAIN)
    # another key in PubKey changes the message: the signature no longer verifies under it
    swapped = {**info, "PubKey": base64.b64encode(bytes.fromhex(old_pub.removeprefix("0x"))).decode()}
    with pytest.raises(crypto.SignatureError):
        crypto.verify_tx(8, swapped, crypto.signing_key_of(8, swapped), CHAIN)


async def test_malformed_inputs_are_refused_not_crashed():
    priv, pub = new_key()
    c = await signer(priv)
    try:
        tx_type, tx_info, _, _ = c.sign_cancel_order(1, 12, nonce=1, api_key_index=KEY)
    finally:
        await c.close()
    info = json.loads(tx_info)
    sig = base64.b64decode(info["Sig"])
    n_bytes = curve.ORDER.to_bytes(40, "little")
    bad_sigs = ["", "not base64!", base64.b64encode(sig[:79]).decode(), base64.b64encode(n_bytes + sig[40:]).decode(),
                base64.b64encode(sig[:40] + n_bytes).decode(), 12]
    for bad in bad_sigs:
        with pytest.raises(crypto.SignatureError):
            crypto.verify_tx(tx_type, {**info, "Sig": bad}, pub, CHAIN)
    with pytest.raises(crypto.SignatureError):
        crypto.verify_tx(tx_type, {k: v for k, v in info.items() if k != "Sig"}, pub, CHAIN)
    for bad_key in ("ff" * 40, "zz", "00" * 39, 5):
        with pytest.raises(crypto.SignatureError):
            crypto.verify_tx(tx_type, info, bad_key, CHAIN)
    not_a_point = next(w for w in range(5, 200) if curve.decode((w, 0, 0, 0, 0)) is None)
    with pytest.raises(crypto.SignatureError, match="not a curve point"):
        crypto.verify_tx(tx_type, info, field.to_bytes((not_a_point, 0, 0, 0, 0)).hex(), CHAIN)
    for missing in ("Index", "Nonce", "MarketIndex"):
        with pytest.raises(crypto.TxFormatError):
            crypto.tx_hash(tx_type, {k: v for k, v in info.items() if k != missing}, CHAIN)
    with pytest.raises(crypto.TxFormatError):
        crypto.tx_hash(tx_type, {**info, "Index": "12"}, CHAIN)
    with pytest.raises(crypto.TxFormatError):
        crypto.tx_hash(13, info, CHAIN)
    with pytest.raises(crypto.TxFormatError):
        crypto.tx_hash(tx_type, {**info, "L2TxAttributes": {"9": 1}}, CHAIN)
    with pytest.raises(crypto.TxFormatError):
        crypto.tx_hash(8, {**info, "PubKey": "AAAA"}, CHAIN)


async def test_auth_token_checks():
    priv, pub = new_key()
    _, other_pub = new_key()
    c = await signer(priv)
    try:
        token, err = c.create_auth_token_with_expiry(api_key_index=KEY)  # 10 minutes
        long_token, _ = c.create_auth_token_with_expiry(9 * 3600, api_key_index=KEY)
        old_token, _ = c.create_auth_token_with_expiry(600, timestamp=int(time.time()) - 3600, api_key_index=KEY)
    finally:
        await c.close()
    assert err is None
    now = time.time()
    expiry = int(token.split(":")[0])
    assert crypto.verify_auth_token(token, pub, now) == (ACCT, KEY, expiry)
    assert crypto.verify_auth_token(token, pub.removeprefix("0x"), now) == (ACCT, KEY, expiry)
    with pytest.raises(crypto.AuthTokenError, match="expired"):
        crypto.verify_auth_token(token, pub, expiry)
    with pytest.raises(crypto.AuthTokenError, match="expired"):
        crypto.verify_auth_token(old_token, pub, now)
    with pytest.raises(crypto.AuthTokenError, match="8 hours"):
        crypto.verify_auth_token(long_token, pub, now)
    crypto.verify_auth_token(long_token, pub, now + 3600 + 5)  # inside its last 8 h
    with pytest.raises(crypto.AuthTokenError, match="signature"):
        crypto.verify_auth_token(token, other_pub, now)
    exp, acct, key, sig = token.split(":")
    for forged in (f"{exp}:{int(acct) + 1}:{key}:{sig}", f"{exp}:{acct}:{int(key) + 1}:{sig}",
                   f"{int(exp) - 1}:{acct}:{key}:{sig}"):
        with pytest.raises(crypto.AuthTokenError):
            crypto.verify_auth_token(forged, pub, now)
    for malformed in ("", "abc", f"{exp}:{acct}:{key}", f"{exp}:{acct}:{key}:{sig[:-2]}", f"ro:{acct}:all:{exp}:{sig}",
                      None):
        with pytest.raises(crypto.AuthTokenError, match="malformed"):
            crypto.verify_auth_token(malformed, pub, now)  # type: ignore[arg-type]


async def test_verify_time_per_tx():
    """Pure-Python verification cost (reported; the bound is loose for a shared 2-core box)."""
    priv, pub = new_key()
    c = await signer(priv)
    try:
        txs = [c.sign_create_order(1, 100 + i, 100, 4000, False, 0, 1, nonce=i, api_key_index=KEY) for i in range(5)]
    finally:
        await c.close()
    crypto.verify_tx(txs[0][0], json.loads(txs[0][1]), pub, CHAIN)  # warms the key's window table
    t0 = time.perf_counter()
    for tx_type, tx_info, h, _ in txs:
        assert crypto.verify_tx(tx_type, json.loads(tx_info), pub, CHAIN) == h
    per_tx = (time.perf_counter() - t0) / len(txs)
    print(f"verify_tx: {per_tx * 1e3:.1f} ms per tx")
    assert per_tx < 0.5
