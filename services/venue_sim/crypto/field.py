"""Arithmetic in the Goldilocks field GF(p), p = 2^64 - 2^32 + 1, and in its quintic extension
GF(p^5) = GF(p)[z] / (z^5 - 3), the fields of Lighter's Poseidon2 hash and ECgFp5 curve.

An element of GF(p) is an ``int`` in ``[0, p)``; an element of GF(p^5) is a 5-tuple of such ints
``(a0, a1, a2, a3, a4)`` meaning ``a0 + a1 z + a2 z^2 + a3 z^3 + a4 z^4``. Byte encodings are
little-endian, 8 bytes per GF(p) limb (40 bytes for GF(p^5)), as in elliottech/poseidon_crypto
(``goldilocks_quintic_extension.ToLittleEndianBytes``). Plain Python ints, no dependencies.
"""

from __future__ import annotations

P = 0xFFFF_FFFF_0000_0001
"""The Goldilocks prime 2^64 - 2^32 + 1."""

Fp5 = tuple[int, int, int, int, int]

ZERO: Fp5 = (0, 0, 0, 0, 0)
ONE: Fp5 = (1, 0, 0, 0, 0)

_W = 3
"""z^5 = 3 defines the extension."""
_FROB = pow(_W, (P - 1) // 5, P)
"""3^((p-1)/5): the Frobenius map sends z^i to (_FROB^i) z^i."""
_FROB_POWERS = tuple(tuple(pow(_FROB, i * k, P) for i in range(5)) for k in range(5))
_Q = P**5
"""Order of GF(p^5)."""
_Q_TWO_ADICITY = 32
_Q_ODD = (_Q - 1) >> _Q_TWO_ADICITY
_NON_RESIDUE = 7
"""7 generates GF(p)^*, so it is a non-square in GF(p) and (odd degree) in GF(p^5)."""


class EncodingError(ValueError):
    """Bytes that are not a canonical field element."""


def fp_inv(a: int) -> int:
    """1/a in GF(p). Raises ZeroDivisionError for 0."""
    if a % P == 0:
        raise ZeroDivisionError("inverse of 0 in GF(p)")
    return pow(a, P - 2, P)


def add(a: Fp5, b: Fp5) -> Fp5:
    """a + b."""
    return ((a[0] + b[0]) % P, (a[1] + b[1]) % P, (a[2] + b[2]) % P,
            (a[3] + b[3]) % P, (a[4] + b[4]) % P)


def sub(a: Fp5, b: Fp5) -> Fp5:
    """a - b."""
    return ((a[0] - b[0]) % P, (a[1] - b[1]) % P, (a[2] - b[2]) % P,
            (a[3] - b[3]) % P, (a[4] - b[4]) % P)


def add_lazy(a: Fp5, b: Fp5) -> Fp5:
    """a + b without reduction (limbs may leave [0, p)); only for inputs of :func:`mul`,
    :func:`square`, :func:`scale` and the other lazy ops, which accept any ints."""
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4])


def sub_lazy(a: Fp5, b: Fp5) -> Fp5:
    """a - b without reduction (see :func:`add_lazy`)."""
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3], a[4] - b[4])


def neg(a: Fp5) -> Fp5:
    """-a."""
    return (-a[0] % P, -a[1] % P, -a[2] % P, -a[3] % P, -a[4] % P)


def scale(a: Fp5, k: int) -> Fp5:
    """k * a for k in GF(p) (or a small int)."""
    return (a[0] * k % P, a[1] * k % P, a[2] * k % P, a[3] * k % P, a[4] * k % P)


def mul(a: Fp5, b: Fp5) -> Fp5:
    """a * b (schoolbook product, the z^5.. terms folded back with z^5 = 3)."""
    a0, a1, a2, a3, a4 = a
    b0, b1, b2, b3, b4 = b
    return (
        (a0 * b0 + 3 * (a1 * b4 + a2 * b3 + a3 * b2 + a4 * b1)) % P,
        (a0 * b1 + a1 * b0 + 3 * (a2 * b4 + a3 * b3 + a4 * b2)) % P,
        (a0 * b2 + a1 * b1 + a2 * b0 + 3 * (a3 * b4 + a4 * b3)) % P,
        (a0 * b3 + a1 * b2 + a2 * b1 + a3 * b0 + 3 * a4 * b4) % P,
        (a0 * b4 + a1 * b3 + a2 * b2 + a3 * b1 + a4 * b0) % P,
    )


def square(a: Fp5) -> Fp5:
    """a^2."""
    a0, a1, a2, a3, a4 = a
    return (
        (a0 * a0 + 6 * (a1 * a4 + a2 * a3)) % P,
        (2 * a0 * a1 + 6 * a2 * a4 + 3 * a3 * a3) % P,
        (2 * a0 * a2 + a1 * a1 + 6 * a3 * a4) % P,
        (2 * (a0 * a3 + a1 * a2) + 3 * a4 * a4) % P,
        (2 * (a0 * a4 + a1 * a3) + a2 * a2) % P,
    )


def is_zero(a: Fp5) -> bool:
    """a == 0 (limbs need not be reduced)."""
    return not any(limb % P for limb in a)


def frobenius(a: Fp5, k: int = 1) -> Fp5:
    """a^(p^k)."""
    f = _FROB_POWERS[k % 5]
    return (a[0], a[1] * f[1] % P, a[2] * f[2] % P, a[3] * f[3] % P, a[4] * f[4] % P)


def _norm_parts(a: Fp5) -> tuple[Fp5, int]:
    """(f, N) with f = a^(p + p^2 + p^3 + p^4) and N = a * f = the norm of a, in GF(p)."""
    d = frobenius(a, 1)
    e = mul(d, frobenius(d, 1))  # a^(p + p^2)
    f = mul(e, frobenius(e, 2))  # a^(p + p^2 + p^3 + p^4)
    a0, a1, a2, a3, a4 = a
    f0, f1, f2, f3, f4 = f
    norm = (a0 * f0 + 3 * (a1 * f4 + a2 * f3 + a3 * f2 + a4 * f1)) % P
    return f, norm


def inv(a: Fp5) -> Fp5:
    """1/a (via the norm). Raises ZeroDivisionError for 0."""
    if is_zero(a):
        raise ZeroDivisionError("inverse of 0 in GF(p^5)")
    f, norm = _norm_parts(a)
    return scale(f, fp_inv(norm))


def power(a: Fp5, e: int) -> Fp5:
    """a^e for e >= 0 (square and multiply)."""
    result = ONE
    base = a
    while e:
        if e & 1:
            result = mul(result, base)
        e >>= 1
        if e:
            base = square(base)
    return result


def is_square(a: Fp5) -> bool:
    """Whether a is a square in GF(p^5) (0 counts as one): true iff its norm is a square in GF(p),
    the extension degree being odd."""
    if is_zero(a):
        return True
    _, norm = _norm_parts(a)
    return pow(norm, (P - 1) // 2, P) == 1


def sqrt(a: Fp5) -> Fp5 | None:
    """A square root of a, or None when a is not a square (Tonelli-Shanks; p^5 - 1 = 2^32 * odd).
    Which of the two roots is returned is unspecified (callers must not depend on it)."""
    if is_zero(a):
        return ZERO
    if not is_square(a):
        return None
    m = _Q_TWO_ADICITY
    c = power((_NON_RESIDUE, 0, 0, 0, 0), _Q_ODD)
    t = power(a, _Q_ODD)
    r = power(a, (_Q_ODD + 1) // 2)
    while t != ONE:
        i, t2 = 0, t
        while t2 != ONE:
            t2 = square(t2)
            i += 1
        b = c
        for _ in range(m - i - 1):
            b = square(b)
        m = i
        c = square(b)
        t = mul(t, c)
        r = mul(r, b)
    return r


def to_bytes(a: Fp5) -> bytes:
    """40 bytes, little-endian limbs."""
    return b"".join((limb % P).to_bytes(8, "little") for limb in a)


def from_bytes(data: bytes) -> Fp5:
    """The element encoded by 40 bytes of little-endian limbs.

    Raises:
        EncodingError: not 40 bytes, or a limb >= p (non-canonical).
    """
    if len(data) != 40:
        raise EncodingError(f"expected 40 bytes, got {len(data)}")
    limbs = tuple(int.from_bytes(data[8 * i: 8 * i + 8], "little") for i in range(5))
    if any(limb >= P for limb in limbs):
        raise EncodingError("non-canonical field element")
    return limbs  # type: ignore[return-value]
