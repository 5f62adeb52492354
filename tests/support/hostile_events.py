"""Hypothesis strategies of hostile bus entries (tests/fuzz): every event type with malformed,
wrong-typed, huge, negative, NaN/inf and unknown-market values, the raw bytes of such entries,
and a fake consumer that records what a ConsumerLoop step commits. Import as
``from hostile_events import ...`` (``tests/support`` is on ``sys.path``)."""

from __future__ import annotations

import math
from typing import Any

import msgspec
from hypothesis import strategies as st

from shared.bus import Delivery, _decode_entry
from shared.events import EVENT_TYPES, Event, encode

S = 1_000_000_000
T0 = 1_757_973_376 * S  # the bundled recording's day (ns)
MARKETS = ["BTC", "ETH", "SOL", "", "btc", "BTC ", "XYZ-PERP"]
STRATEGIES = ["trend", "renko", "grid", "maker", "hedger", "copytrade", "ghost", "", "trend,maker"]

#: floats a hostile writer would send: zero, negatives, tiny, huge, 2**53, NaN, infinities
EXTREME = st.sampled_from([0.0, -0.0, -1.0, -1e-9, 1e-12, 1e-300, 1e12, 1e300, -1e300, 2.0**53, math.nan,
                           math.inf, -math.inf])
PRICE = st.one_of(st.floats(99_000.0, 101_000.0), st.floats(3_900.0, 4_100.0), EXTREME,
                  st.floats(allow_nan=True, allow_infinity=True))
SIZE = st.one_of(st.floats(0.0, 0.01), EXTREME, st.floats(allow_nan=True, allow_infinity=True))
TS = st.one_of(st.integers(T0, T0 + 7200 * S), st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**70, -(2**64)]),
               st.integers())
ANY_FLOAT = st.one_of(st.floats(-10.0, 10.0), EXTREME)
ANY_INT = st.one_of(st.integers(-5, 2**48), st.sampled_from([2**63, 2**70, -(2**63) - 1]))
IDS = st.one_of(st.uuids().map(lambda u: u.hex[:16]), st.sampled_from(["", "x"]))


def _floats_for(name: str) -> st.SearchStrategy[float]:
    n = name.lower()
    if "px" in n or "price" in n or n in ("mid", "tick_size"):
        return PRICE
    if "sz" in n or "size" in n or n in ("target", "position", "account_position", "remaining", "open_interest"):
        return SIZE
    return ANY_FLOAT


def _field(name: str, t: Any) -> st.SearchStrategy[Any]:
    """A strategy for one field of an event, from its msgspec type and its name."""
    mi = msgspec.inspect
    if name == "id":
        return IDS
    if name in ("ts_event", "window_start", "window_end"):
        return TS
    if name == "market" and isinstance(t, mi.StrType):
        return st.sampled_from(MARKETS)
    if name in ("strategy", "target") and isinstance(t, mi.StrType):
        return st.sampled_from(STRATEGIES + ["*"])
    if name == "schema_version":
        return st.one_of(st.just(1), st.integers(-3, 3))
    if isinstance(t, mi.FloatType):
        return _floats_for(name)
    if isinstance(t, mi.IntType):
        return ANY_INT
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.StrType):
        return st.text(max_size=8)
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(list(t.values))
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.UnionType):
        return st.one_of(*[_field(name, u) for u in t.types])
    if isinstance(t, mi.TupleType):
        if len(t.item_types) == 2:
            return st.tuples(PRICE, SIZE)
        return st.tuples(*[_field("price" if i == 1 else "size" if i == 2 else name, u)
                           for i, u in enumerate(t.item_types)])
    if isinstance(t, mi.ListType):
        return st.lists(_field(name, t.item_type), max_size=4)
    if isinstance(t, mi.DictType):
        return st.dictionaries(st.text(max_size=4), _field(name, t.value_type), max_size=3)
    raise NotImplementedError(f"{name}: {t}")


def event_of(cls: type[Event]) -> st.SearchStrategy[Event]:
    """Events of ``cls`` whose every field is drawn hostile (see the module docstring)."""
    info = msgspec.inspect.type_info(cls)
    return st.builds(cls, **{f.name: _field(f.name, f.type) for f in info.fields})  # type: ignore[attr-defined]


ANY_EVENT: st.SearchStrategy[Event] = st.one_of(*[event_of(c) for c in EVENT_TYPES.values()])


def raw_entries() -> st.SearchStrategy[bytes]:
    """Raw ``event`` field bytes: junk, JSON that is not an event, an event's JSON with one field
    dropped or given another type, and hostile events encoded as the bus does."""
    junk = st.one_of(st.binary(max_size=64), st.text(max_size=64).map(str.encode))
    json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                               | st.text(max_size=8),
                               lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                           max_size=3), max_leaves=8)

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        ev = draw(ANY_EVENT)
        d = msgspec.to_builtins(ev, enc_hook=repr)
        if d and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(d)))
            if draw(st.booleans()):
                del d[key]
            else:
                d[key] = draw(json_values)
        return msgspec.json.encode(d)

    return st.one_of(junk, json_values.map(msgspec.json.encode), mutated(), ANY_EVENT.map(_encode))


def _encode(ev: Event) -> bytes:
    return encode(ev)  # NaN/inf encode as null: decoding refuses them


def delivery(stream: str, entry_id: str, ev: Event, wire: bool = True) -> Delivery:
    """A delivery of ``ev`` on ``stream``: ``wire`` -> encoded and decoded as the bus does (what
    JSON cannot carry is refused there), else the event object as it is (NaN and all)."""
    if wire:
        return _decode_entry(stream, entry_id, {b"event": encode(ev)})
    return Delivery(stream, entry_id, encode(ev), ev)  # type: ignore[arg-type]


class FakeConsumer:
    """Stands in for :class:`shared.bus.Consumer` in ``ConsumerLoop.step``: ``commit`` encodes
    every output as the real one does (an unencodable output raises there too) and records the
    dead letters, outputs and acknowledgements."""

    def __init__(self) -> None:
        self.dead: list[tuple[Delivery, str]] = []
        self.outputs: list[tuple[str, Event]] = []
        self.acked = 0

    async def commit(self, done: list[Delivery], outputs: list[tuple[str, Event]], service: str = "") -> None:
        for _stream, ev in outputs:
            encode(ev)
        self.dead += [(d, d.error) for d in done if d.error is not None]
        self.outputs += list(outputs)
        self.acked += len(done)

    async def fetch_new(self) -> list[Delivery]:
        return []


KNOWN_STRATEGIES = ["trend", "renko", "grid", "maker", "hedger", "copytrade"]
MIDS = {"BTC": 100_000.0, "ETH": 4_000.0}


def _plausible_field(name: str, t: Any, market: str, mid: float) -> st.SearchStrategy[Any]:
    """Like :func:`_field`, but mostly what a correct writer sends, with edge values that are
    still legal (one tick, size 0, the largest sizes, far but in-band prices)."""
    mi = msgspec.inspect
    n = name.lower()
    if name == "id":
        return st.uuids().map(lambda u: u.hex[:16])
    if name in ("ts_event", "window_start", "window_end", "ts_recv"):
        return st.integers(T0, T0 + 7200 * S)
    if name == "schema_version":
        return st.just(1)
    if name == "market":
        return st.just(market)
    if name in ("strategy", "target") and isinstance(t, mi.StrType):
        return st.sampled_from(KNOWN_STRATEGIES + (["*"] if name == "target" else []))
    if isinstance(t, mi.FloatType):
        if "px" in n or "price" in n or n == "mid":
            return st.one_of(st.floats(mid * 0.85, mid * 1.15), st.sampled_from([0.0, 0.1, mid, mid * 1.19]))
        if n in ("target", "position", "account_position"):
            return st.one_of(st.floats(-0.01, 0.01), st.sampled_from([0.0, 1e-9, -1e-9, 1e3, -1e6, 2e9]))
        if "sz" in n or "size" in n or n in ("remaining", "open_interest"):
            return st.one_of(st.floats(0.0, 0.01), st.sampled_from([0.0, 1e-9, 1e3, 1e6, 2e9]))
        return st.one_of(st.floats(-10.0, 10.0), st.sampled_from([0.0, 1e-9, 1e6]))
    if isinstance(t, mi.UnionType):
        return st.one_of(*[_plausible_field(name, u, market, mid) for u in t.types])
    if isinstance(t, mi.TupleType):
        if len(t.item_types) == 2:
            return st.tuples(_plausible_field("price", mi.FloatType(), market, mid),
                             _plausible_field("size", mi.FloatType(), market, mid))
        return st.tuples(st.sampled_from(["buy", "sell"]), _plausible_field("price", mi.FloatType(), market, mid),
                         _plausible_field("size", mi.FloatType(), market, mid))
    if isinstance(t, mi.ListType):
        return st.lists(_plausible_field(name, t.item_type, market, mid), max_size=4)
    return _field(name, t)


def plausible(cls: type[Event], market: str, mid: float) -> st.SearchStrategy[Event]:
    """Events of ``cls`` in ``market`` (reference mid ``mid`` USD) that a correct writer could send,
    edge values included: most pass the screening and reach the engine."""
    info = msgspec.inspect.type_info(cls)
    return st.builds(cls, **{f.name: _plausible_field(f.name, f.type, market, mid)  # type: ignore[attr-defined]
                             for f in info.fields})
