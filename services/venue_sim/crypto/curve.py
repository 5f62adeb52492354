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
    """P1 (+) P2: complete formulas of the paper (fractional x,u; 10 multiplications)."""
    x1, z1, u1, t1 = p1
    x2, z2, u2, t2 = p2
    xx = F.mul(x1, x2)
    zz = F.mul(z1, z2)
    uu = F.mul(u1, u2)
    tt = F.mul(t1, t2)
    xz = F.sub(F.mul(F.add(x1, z1), F.add(x2, z2)), F.add(xx, zz))
    ut = F.sub(F.mul(F.add(u1, t1), F.add(u2, t2)), F.add(uu, tt))
    bzz = _mul_b(zz)
    m7 = F.add(xx, bzz)
    m8 = F.mul(tt, m7)
    m9 = F.mul(uu, F.add(_mul_b(xz, 2), F.add(m7, m7)))
    m10 = F.mul(F.add(tt, F.add(uu, uu)), F.add(xz, m7))
    return (
        _mul_b(F.sub(m10, m8)),
        F.sub(m8, m9),
        F.mul(ut, F.sub(bzz, xx)),
        F.add(m8, m9),
    )


def double(pt: Point) -> Point:
    """2 P (4 multiplications + 5 squarings)."""
    x, z, u, t = pt
    zt = F.mul(z, t)
    ztt = F.mul(zt, t)
    ztt2 = F.square(ztt)
    ztu = F.mul(zt, u)
    w = F.sub(ztt, F.mul(F.square(u), F.scale(F.add(x, z), 2)))
    ztu2 = F.square(ztu)
    w2 = F.square(w)
    return (
        _mul_b(ztu2, 4),
        w2,
        F.sub(F.square(F.add(w, ztu)), F.add(ztu2, w2)),
        F.sub(F.scale(ztt2, 2), F.add(F.scale(ztu2, 4), w2)),
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


def _window(pt: Point, size: int) -> list[Point]:
    """[0 P, 1 P, ..., (size-1) P]."""
    table = [NEUTRAL, pt]
    for _ in range(size - 2):
        table.append(add(table[-1], pt))
    return table


_WINDOW_BITS = 4


@lru_cache(maxsize=256)
def _table(w: Fp5) -> tuple[Point, ...]:
    """Window table of the point encoded by ``w`` (cached: the generator and registered keys)."""
    pt = decode(w)
    if pt is None:
        raise ValueError("not a point encoding")
    return tuple(_window(pt, 1 << _WINDOW_BITS))


GENERATOR_ENCODING: Fp5 = (4, 0, 0, 0, 0)
"""The conventional generator has u = 1/4 (lighter: ``GENERATOR_ECgFp5Point``), so w = 4."""


def mul_add_encoded(k1: int, w1: Fp5, k2: int, w2: Fp5) -> Point:
    """k1 P1 (+) k2 P2 for the points encoded by w1 and w2 (Straus-Shamir, 4-bit fixed windows;
    window tables are cached per encoding).

    Raises:
        ValueError: w1 or w2 encodes no point.
    """
    t1, t2 = _table(w1), _table(w2)
    k1 %= ORDER
    k2 %= ORDER
    acc = NEUTRAL
    mask = (1 << _WINDOW_BITS) - 1
    top = max(k1.bit_length(), k2.bit_length(), 1)
    shift = (top + _WINDOW_BITS - 1) // _WINDOW_BITS * _WINDOW_BITS
    while shift > 0:
        shift -= _WINDOW_BITS
        for _ in range(_WINDOW_BITS):
            acc = double(acc)
        d1 = (k1 >> shift) & mask
        d2 = (k2 >> shift) & mask
        if d1:
            acc = add(acc, t1[d1])
        if d2:
            acc = add(acc, t2[d2])
    return acc


def mul_generator(k: int) -> Point:
    """k G."""
    return mul_add_encoded(k, GENERATOR_ENCODING, 0, GENERATOR_ENCODING)
