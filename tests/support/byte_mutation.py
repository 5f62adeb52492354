"""Hypothesis helper shared by the fuzz tests: damage a valid byte string the way a broken wire
or a buggy writer would (bytes flipped, deleted, inserted, the tail cut off)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hypothesis import strategies as st


def mutate_bytes(draw: Callable, data: bytes, max_rounds: int, tokens: Sequence[bytes], max_insert: int = 4) -> bytes:
    """``data`` after 1..``max_rounds`` random edits drawn with ``draw``: flip a byte, delete one,
    insert 1..``max_insert`` random bytes or one of ``tokens`` (JSON punctuation, numbers), or cut
    the rest off."""
    raw = bytearray(data)
    for _ in range(draw(st.integers(1, max_rounds))):
        if not raw:
            break
        i = draw(st.integers(0, len(raw) - 1))
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if op == "flip":
            raw[i] ^= draw(st.integers(1, 255))
        elif op == "delete":
            del raw[i]
        elif op == "insert":
            raw[i:i] = draw(st.binary(min_size=1, max_size=max_insert) | st.sampled_from(list(tokens)))
        else:
            del raw[i:]
    return bytes(raw)
