"""Cost of venue-sim's pure-Python Lighter crypto (``services.venue_sim.crypto``); prints figures as
JSON, never fails on them.

Times (process CPU time, best of ``--repeat`` rounds of ``--n`` calls each, milliseconds per call):

- ``tx_hash_create_ms``, ``tx_hash_cancel_ms``, ``tx_hash_grouped3_ms``: the signer-equal tx hash
  of a create order (14), a cancel (15) and a 3-order grouped tx (28);
- ``verify_tx_ms``: :func:`crypto.verify_tx` of a signed create order under a key whose tables
  are cached (the steady state of a registered key);
- ``verify_auth_token_ms``: :func:`crypto.verify_auth_token` (venue-sim caches verified tokens,
  so this is paid once per token);
- ``key_table_ms``: building the fixed-base table of a new key (once per key; ~1 MB, 32 kept).

Signatures are made by ``crypto.schnorr.sign`` with fixed nonces (deterministic; the SDK's
signer is what clients use, and tests/services/venue_sim/test_crypto.py checks both agree).
Usage: ``python bench/crypto_verify.py [--n 50] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import base64
import json
import time
from collections.abc import Callable

from services.venue_sim import crypto
from services.venue_sim.crypto import authtoken, curve, field, schnorr, txhash

CHAIN = 304
PRIV = bytes(range(7, 47))


def _best_ms(fn: Callable[[], object], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t0) / n)
    return round(best * 1e3, 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    order = {"MarketIndex": 1, "ClientOrderIndex": 12, "BaseAmount": 100, "Price": 4000, "IsAsk": 0, "Type": 0,
             "TimeInForce": 1, "ReduceOnly": 0, "TriggerPrice": 0, "OrderExpiry": 1_800_000_000_000}
    head = {"AccountIndex": 1001, "ApiKeyIndex": 4, "Nonce": 5, "ExpiredAt": 1_790_000_000_000}
    create = head | order
    cancel = head | {"MarketIndex": 1, "Index": 12}
    grouped = head | {"GroupingType": 3, "Orders": [order, order | {"Price": 3900}, order | {"Price": 4100}]}
    pub = schnorr.public_key_bytes(PRIV)
    sig = schnorr.sign(PRIV, txhash.message(14, create, CHAIN), nonce=987654321)
    signed = create | {"Sig": base64.b64encode(sig).decode()}
    crypto.verify_tx(14, signed, pub.hex(), CHAIN)  # builds the key's table
    expiry = int(time.time()) + 3600
    text = f"{expiry}:1001:4"
    token = f"{text}:{schnorr.sign(PRIV, authtoken.message_of(text), nonce=42).hex()}"
    keys = iter(range(10_000, 10_000 + a.n * a.repeat + 1))

    def fresh_key_table() -> None:
        w = curve.encode(curve.mul_generator(next(keys)))
        curve._fixed_base_table(w)

    out = {
        "tx_hash_create_ms": _best_ms(lambda: crypto.tx_hash(14, create, CHAIN), a.n, a.repeat),
        "tx_hash_cancel_ms": _best_ms(lambda: crypto.tx_hash(15, cancel, CHAIN), a.n, a.repeat),
        "tx_hash_grouped3_ms": _best_ms(lambda: crypto.tx_hash(28, grouped, CHAIN), a.n, a.repeat),
        "verify_tx_ms": _best_ms(lambda: crypto.verify_tx(14, signed, pub.hex(), CHAIN), a.n, a.repeat),
        "verify_auth_token_ms": _best_ms(lambda: crypto.verify_auth_token(token, pub.hex(), time.time()), a.n,
                                         a.repeat),
        "key_table_ms": _best_ms(fresh_key_table, max(1, a.n // 10), a.repeat),
        "field_mul_us": round(_best_ms(lambda: field.mul((1, 2, 3, 4, 5), (6, 7, 8, 9, 10)), a.n * 100,
                                       a.repeat) * 1e3, 3),
    }
    print(json.dumps(out, indent=2))
    print(json.dumps(out))  # the last line: one JSON object, as every bench/*.py


if __name__ == "__main__":
    main()
