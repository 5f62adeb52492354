"""The ECgFp5 group (Thomas Pornin, "EcGFp5: a Specialized Elliptic Curve", 2022; reference code
pornin/ecgfp5, used by Lighter through elliottech/poseidon_crypto ``curve/ecgfp5``).

The curve is y^2 = x (x^2 + a x + b) over GF(p^5) with a = 2, b = 263 z. Its points of the
prime-order subgroup are represented as "double-odd" group elements: the neutral is N = (0, 0)
and the group law is P (+) Q = P + Q + N. A point is kept in fractional (x, u) coordinates,
u = x / y, as (X : Z, U : T) with x = X/Z, u = U/T (the neutral has u = 0). The canonical
40-byte encoding of a point is w = 1/u = y/x (w = 0 for the neutral), decoded by solving
x^2 - (w^2 - a) x + b = 0 and keeping the root that is not a square (paper, section 4).
"""

from __future__ import annotations

from functools import lru_cache

from services.venue_sim.crypto import field as F
from services.venue_sim.crypto.field import Fp5

ORDER = 1067993516717146951041484916571792702745057740581727230159139685185762082554198619328292418486241
"""The prime order n of the group (~2^319)."""

_A: Fp5 = (2, 0, 0, 0, 0)
_B1 = 263
_FOUR_B: Fp5 = (0, 4 * _B1, 0, 0, 0)

Point = tuple[Fp5, Fp5, Fp5, Fp5]
"""(X, Z, U, T)."""

NEUTRAL: Point = (F.ZERO, F.ONE, F.ZERO, F.ONE)


def _mul_b(a: Fp5, k: int = 1) -> Fp5:
    """a * (k b) = a * k * 263 z (multiplying by z shifts the limbs, z^5 = 3)."""
    c = k * _B1
    a0, a1, a2, a3, a4 = a
    p = F.P
    return (3 * c * a4 % p, c * a0 % p, c * a1 % p, c * a2 % p, c * a3 % p)


def add(p1: Point, p2: Point) -> Point:
    """P1 (+) P2: complete formulas of the paper (fractional x,u; 10 multiplications).
    Coordinates may come out unreduced (see ``field.add_lazy``)."""
    x1, z1, u1, t1 = p1
    x2, z2, u2, t2 = p2
    add, sub, mul = F.add_lazy, F.sub_lazy, F.mul
    xx = mul(x1, x2)
    zz = mul(z1, z2)
    uu = mul(u1, u2)
    tt = mul(t1, t2)
    xz = sub(mul(add(x1, z1), add(x2, z2)), add(xx, zz))
    ut = sub(mul(add(u1, t1), add(u2, t2)), add(uu, tt))
    bzz = _mul_b(zz)
    m7 = add(xx, bzz)
    m8 = mul(tt, m7)
    m9 = mul(uu, add(_mul_b(xz, 2), add(m7, m7)))
    m10 = mul(add(tt, add(uu, uu)), add(xz, m7))
    return (_mul_b(sub(m10, m8)), sub(m8, m9), mul(ut, sub(bzz, xx)), add(m8, m9))


def double(pt: Point) -> Point:
    """2 P (4 multiplications + 5 squarings)."""
    x, z, u, t = pt
    add, sub, mul, sq = F.add_lazy, F.sub_lazy, F.mul, F.square
    zt = mul(z, t)
    ztt = mul(zt, t)
    ztt2 = sq(ztt)
    ztu = mul(zt, u)
    w = sub(ztt, mul(sq(u), F.scale(add(x, z), 2)))
    ztu2 = sq(ztu)
    w2 = sq(w)
    return (
        _mul_b(ztu2, 4),
        w2,
        sub(sq(add(w, ztu)), add(ztu2, w2)),
        sub(F.scale(ztt2, 2), add(F.scale(ztu2, 4), w2)),
    )


def negate(pt: Point) -> Point:
    """-P (u -> -u)."""
    x, z, u, t = pt
    return (x, z, F.neg(u), t)


def encode(pt: Point) -> Fp5:
    """The canonical encoding w = T / U (0 for the neutral)."""
    _, _, u, t = pt
    if F.is_zero(u):
        return F.ZERO
    return F.mul(t, F.inv(u))


def decode(w: Fp5) -> Point | None:
    """The point encoded by w, or None when w encodes no group element."""
    if F.is_zero(w):
        return NEUTRAL
    e = F.sub(F.square(w), _A)
    delta = F.sub(F.square(e), _FOUR_B)
    r = F.sqrt(delta)
    if r is None:
        return None
    half = F.fp_inv(2)
    x1 = F.scale(F.add(e, r), half)
    x = F.scale(F.sub(e, r), half) if F.is_square(x1) else x1
    return (x, F.ONE, F.ONE, w)


_WINDOW_BITS = 4
_DIGITS = (ORDER.bit_length() + _WINDOW_BITS) // _WINDOW_BITS + 1
"""Signed base-16 digits of a scalar < n (one more than unsigned, for the final carry)."""


def _signed_digits(k: int) -> list[int]:
    """k (0 <= k < n) as digits d_i in [-8, 7] with k = sum d_i 16^i."""
    digits = []
    for _ in range(_DIGITS):
        d = k & 15
        k >>= 4
        if d >= 8:
            d -= 16
            k += 1
        digits.append(d)
    return digits


@lru_cache(maxsize=32)
def _fixed_base_table(w: Fp5) -> tuple[tuple[Point, ...], ...]:
    """For the point P encoded by ``w``: table[i][j-1] = j 16^i P for j in 1..8 and every digit
    position i (cached per encoding, at most 32: the generator and registered keys; ~1 MB and
    ~30 ms each to build).

    Raises:
        ValueError: w encodes no point.
    """
    pt = decode(w)
    if pt is None:
        raise ValueError("not a point encoding")
    table = []
    base = pt
    for _ in range(_DIGITS):
        row = [base]
        for _ in range(7):
            row.append(add(row[-1], base))
        table.append(tuple(row))
        base = double(row[7])  # 16 * 16^i P
    return tuple(table)


GENERATOR_ENCODING: Fp5 = (4, 0, 0, 0, 0)
"""The conventional generator has u = 1/4 (lighter: ``GENERATOR_ECgFp5Point``), so w = 4."""


def _accumulate(acc: Point, k: int, table: tuple[tuple[Point, ...], ...]) -> Point:
    for row, d in zip(table, _signed_digits(k % ORDER), strict=True):
        if d > 0:
            acc = add(acc, row[d - 1])
        elif d < 0:
            acc = add(acc, negate(row[-d - 1]))
    return acc


def mul_add_encoded(k1: int, w1: Fp5, k2: int, w2: Fp5) -> Point:
    """k1 P1 (+) k2 P2 for the points encoded by w1 and w2: fixed-base signed 4-bit windows over
    per-point cached tables, so no doublings (at most ~162 additions).

    Raises:
        ValueError: w1 or w2 encodes no point.
    """
    acc = _accumulate(NEUTRAL, k1, _fixed_base_table(w1))
    return _accumulate(acc, k2, _fixed_base_table(w2))


def mul_generator(k: int) -> Point:
    """k G."""
    return _accumulate(NEUTRAL, k, _fixed_base_table(GENERATOR_ENCODING))
