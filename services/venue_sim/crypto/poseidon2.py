"""Poseidon2 over Goldilocks (width 12, rate 8, S-box x^7, 8 full + 22 partial rounds), as Lighter
uses it to hash tx fields (elliottech/poseidon_crypto ``hash/poseidon2_goldilocks_plonky2``).

The sponge has no padding: each chunk of up to 8 input elements overwrites the first lanes of the
state, then the state is permuted; outputs are read from the first 8 lanes (permuting again when
more are needed). Inputs are ints taken mod p (Go converts int64 fields to uint64, so a negative
value v enters as (v mod 2^64) mod p).
"""

from __future__ import annotations

from collections.abc import Iterable

from services.venue_sim.crypto.constants import (
    EXTERNAL_ROUND_CONSTANTS,
    INTERNAL_DIAGONAL,
    INTERNAL_ROUND_CONSTANTS,
)
from services.venue_sim.crypto.field import Fp5, P

WIDTH = 12
RATE = 8
_HALF_FULL_ROUNDS = 4
_U64 = (1 << 64) - 1


def _external_layer(s: list[int]) -> list[int]:
    """The external linear layer: the 4x4 matrix [[2,3,1,1],[1,2,3,1],[1,1,2,3],[3,1,1,2]] on each
    block of 4 lanes, then each lane plus the sum of its position across the three blocks."""
    out = []
    for i in range(0, WIDTH, 4):
        x0, x1, x2, x3 = s[i], s[i + 1], s[i + 2], s[i + 3]
        total = x0 + x1 + x2 + x3
        out += [total + x0 + 2 * x1, total + x1 + 2 * x2, total + x2 + 2 * x3, total + x3 + 2 * x0]
    sums = [out[j] + out[j + 4] + out[j + 8] for j in range(4)]
    return [(out[i] + sums[i % 4]) % P for i in range(WIDTH)]


def _full_round(s: list[int], constants: tuple[int, ...]) -> list[int]:
    s = [pow((x + c) % P, 7, P) for x, c in zip(s, constants, strict=True)]
    return _external_layer(s)


def permute(state: list[int]) -> list[int]:
    """The Poseidon2 permutation of 12 lanes (ints mod p); returns a new list."""
    s = _external_layer([x % P for x in state])
    for r in range(_HALF_FULL_ROUNDS):
        s = _full_round(s, EXTERNAL_ROUND_CONSTANTS[r])
    for c in INTERNAL_ROUND_CONSTANTS:
        s[0] = pow((s[0] + c) % P, 7, P)
        total = sum(s)
        s = [(total + d * x) % P for x, d in zip(s, INTERNAL_DIAGONAL, strict=True)]
    for r in range(_HALF_FULL_ROUNDS, 2 * _HALF_FULL_ROUNDS):
        s = _full_round(s, EXTERNAL_ROUND_CONSTANTS[r])
    return s


def to_field(v: int) -> int:
    """A Go integer field (int64/uint64/uint8...) as the GF(p) element Go's conversion gives."""
    return (v & _U64) % P


def hash_n_to_m(inputs: Iterable[int], outputs: int) -> list[int]:
    """Sponge without padding: ``outputs`` field elements from the given elements."""
    elems = [to_field(v) for v in inputs]
    state = [0] * WIDTH
    for i in range(0, len(elems), RATE):
        chunk = elems[i: i + RATE]
        state[: len(chunk)] = chunk
        state = permute(state)
    result: list[int] = []
    while True:
        for lane in state[:RATE]:
            result.append(lane)
            if len(result) == outputs:
                return result
        state = permute(state)


def hash_to_fp5(inputs: Iterable[int]) -> Fp5:
    """``HashToQuinticExtension``: five outputs read as a GF(p^5) element."""
    return tuple(hash_n_to_m(inputs, 5))  # type: ignore[return-value]


def hash_no_pad(inputs: Iterable[int]) -> list[int]:
    """``HashNoPad``: a 4-element hash."""
    return hash_n_to_m(inputs, 4)


def hash_two_to_one(left: list[int], right: list[int]) -> list[int]:
    """``HashTwoToOne``: the 4-element hash of two 4-element hashes."""
    return hash_n_to_m([*left, *right], 4)
