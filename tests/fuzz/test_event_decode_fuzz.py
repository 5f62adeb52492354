"""Hostile input for the event decoder (issue 11, item 3): ``shared.events.decode`` on any bytes.

The contract: ``decode`` returns an event or raises :class:`shared.events.DecodeError` with a
reason -- never another exception -- on arbitrary bytes, arbitrary text (lone surrogates
included), JSON objects with a real ``type`` tag and junk fields, and byte/field mutations of
valid encoded events; whatever it accepts re-encodes to bytes that decode to the same event.
Every event type built from its annotations round-trips exactly. (The bus's edge,
``shared.bus._decode_entry``, and the screening behind it are fuzzed in ``test_fuzz_events.py``.)
"""

from __future__ import annotations

import json
import os
import types
import typing
from typing import Any

import msgspec
from byte_mutation import mutate_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import events as ev
from shared.events import EVENT_TYPES, DecodeError, decode, encode

FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")), deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
# text with lone surrogates (st.text() leaves them out): a str that is not encodable as UTF-8
TEXT = st.text(max_size=60) | st.lists(st.characters() | st.integers(0xD800, 0xDFFF).map(chr), max_size=60).map("".join)

_finite = st.floats(allow_nan=False, allow_infinity=False)  # JSON has no NaN/inf: an event never holds one
_int64 = st.integers(-(2**63), 2**63 - 1)


def _event_strategy(cls: type[ev.Event]) -> st.SearchStrategy:
    """``cls`` built from its annotations (finite floats, 64-bit ints, short strings)."""
    fields = {f.name: _field_strategy(f.type) for f in msgspec.structs.fields(cls)}
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


def _field_strategy(t: Any) -> st.SearchStrategy:
    """A strategy for an annotation of the event model (recursing into unions and containers)."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if t is int:
        return _int64
    if t is float:
        return _finite
    if t is str:
        return st.text(max_size=10)
    if t is bool:
        return st.booleans()
    if t is type(None):
        return st.none()
    if origin is typing.Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*map(_field_strategy, args))
    if origin is list:
        return st.lists(_field_strategy(args[0]), max_size=4)
    if origin is tuple:
        return st.tuples(*map(_field_strategy, args))
    if origin is dict:
        return st.dictionaries(_field_strategy(args[0]), _field_strategy(args[1]), max_size=4)
    raise TypeError(f"no strategy for {t!r}")  # a new annotation in shared/events.py: add it here


VALID = st.sampled_from(sorted(EVENT_TYPES)).flatmap(lambda tag: _event_strategy(EVENT_TYPES[tag]))

_leaf = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
         | st.sampled_from(["buy", "sell", "BTC", "maker", "kill", "running", "garch", "ioc"]))
json_ish = st.recursive(_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                        max_leaves=12)


def check(data: bytes | str) -> ev.Event | None:
    """The contract on one input: an event that round-trips, or a DecodeError with a reason."""
    try:
        got = decode(data)
    except DecodeError as exc:
        assert str(exc)
        return None
    assert isinstance(got, ev.Event) and type(got) in EVENT_TYPES.values()
    assert decode(encode(got)) == got
    return got


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes(data):
    check(data)


@FUZZ
@given(TEXT)
def test_any_text_including_lone_surrogates(text):
    check(text)


def test_lone_surrogate_is_a_decode_error():
    """msgspec raises UnicodeEncodeError for such a str; decode turns it into DecodeError."""
    try:
        decode('{"type": "bbo", "id": "\ud800"}')
    except DecodeError as exc:
        assert "UTF-8" in str(exc)
    else:
        raise AssertionError("a lone surrogate decoded")


@FUZZ
@given(st.sampled_from(sorted(EVENT_TYPES)),
       st.dictionaries(st.sampled_from(["id", "ts_event", "ts_recv", "source", "causation_id", "schema_version",
                                        "market", "strategy", "side", "price", "size", "bids", "asks", "nonce",
                                        "orders", "fit", "inputs", "problems", "command", "state", "guard"])
                       | st.text(max_size=6), json_ish, max_size=12))
def test_real_tag_with_junk_fields(tag, fields):
    check(json.dumps({"type": tag, **fields}).encode())


@FUZZ
@given(VALID)
def test_every_event_type_round_trips(event):
    data = encode(event)
    assert decode(data) == event
    assert encode(decode(data)) == data


@st.composite
def mutated_valid_bytes(draw) -> bytes:
    return mutate_bytes(draw, encode(draw(VALID)), 4, [b'"', b"{", b"]", b",", b"-", b"9e999"], max_insert=3)


@FUZZ
@given(mutated_valid_bytes())
def test_mutated_valid_bytes(data):
    check(data)


@FUZZ
@given(VALID, st.data())
def test_one_field_replaced(event, data):
    """A valid event with one field replaced by any JSON value, or dropped: an event, or a
    DecodeError that names the field (msgspec's ``at `$.field``` / ``missing required field``)."""
    obj = json.loads(encode(event))
    key = data.draw(st.sampled_from(sorted(obj)))
    if data.draw(st.booleans()):
        obj[key] = data.draw(json_ish)
    else:
        del obj[key]
    try:
        got = decode(json.dumps(obj).encode())
    except DecodeError as exc:
        assert key in str(exc) or "type" in str(exc), (key, str(exc))
        return
    assert decode(encode(got)) == got
