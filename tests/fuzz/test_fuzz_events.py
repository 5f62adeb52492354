"""Fuzzing the event decoder and the input screening (hypothesis): hostile entries -- junk bytes,
JSON that is no event, events with a field dropped or of another type, huge, negative, NaN and
unknown-market values -- never raise anything but a dead letter's reason, and what the screening
lets through is sane (finite numbers, int64 integers, a positive past time, the stream's market,
a top that is not crossed, sizes not negative, known strategies)."""

from __future__ import annotations

import math
import os

from hostile_events import ANY_EVENT, T0, S, delivery, raw_entries
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.bus import _decode_entry
from shared.config import ScreeningConfig
from shared.events import Bbo, BookSnapshot, Event, Fill, TargetPosition, decode, encode
from shared.screening import INT64_MAX, INT64_MIN, STREAM_EVENTS, Screener, stream_kind

NS = "fz"
WALL = T0 / 1e9 + 86_400.0
STREAMS = [f"{NS}:md:book:BTC", f"{NS}:md:book:ETH", f"{NS}:md:trade:BTC", f"{NS}:md:stats:BTC", f"{NS}:intent:7",
           f"{NS}:exec:7", f"{NS}:params:maker", f"{NS}:control", f"{NS}:dlq", "elsewhere"]
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")), deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(raw=raw_entries(), stream=st.sampled_from(STREAMS))
def test_the_decoder_refuses_with_a_reason_and_never_raises(raw, stream):
    d = _decode_entry(stream, "1-1", {b"event": raw})
    if d.event is None:
        assert d.error is not None and d.error.startswith("invalid event: ")
    else:
        assert d.error is None
        assert decode(encode(d.event)) == d.event  # what decoded encodes back to itself
    assert _decode_entry(stream, "1-2", {b"other": raw}).error == "entry has no 'event' field"


def _sane(ev: Event, stream: str, s: Screener) -> None:
    """What must hold of an event the screening let through."""
    for name in ev.__struct_fields__:
        v = getattr(ev, name)
        if type(v) is float:
            assert math.isfinite(v), name
        elif type(v) is int:
            assert INT64_MIN <= v <= INT64_MAX, name
    assert 0 < ev.ts_event <= (WALL + s.cfg.max_future_s) * 1e9
    assert ev.id and ev.schema_version == 1
    kind = stream_kind(NS, stream)
    if kind is not None:
        assert isinstance(ev, STREAM_EVENTS[kind[0]])
        if kind[0] in ("book", "trade", "stats"):
            assert ev.market == kind[1]  # type: ignore[attr-defined]
    if isinstance(ev, Bbo):
        assert 0 < ev.bid_px < ev.ask_px and ev.bid_sz >= 0 and ev.ask_sz >= 0
        assert (ev.ask_px - ev.bid_px) / ev.mid <= s.cfg.max_spread_pct / 100
    if isinstance(ev, BookSnapshot) and ev.bids and ev.asks:
        assert ev.bids[0][0] < ev.asks[0][0]
    if isinstance(ev, Fill):
        assert ev.size > 0 and ev.price > 0
    if isinstance(ev, TargetPosition):
        assert ev.strategy in {"trend", "maker"} and ev.market in s.markets
        assert abs(ev.target) <= (2**48 - 1) * s.markets[ev.market].lot


@FUZZ
@given(events=st.lists(st.tuples(ANY_EVENT, st.sampled_from(STREAMS), st.booleans()), min_size=1, max_size=6))
def test_the_screening_never_raises_and_lets_only_sane_events_through(events):
    s = Screener(NS, ScreeningConfig(), strategies={"trend", "maker"}, known_markets_only=True, wall=lambda: WALL)
    s.reason(Bbo(id="ref", ts_event=T0, market="BTC", bid_px=100_000.0, bid_sz=1.0, ask_px=100_000.2, ask_sz=1.0),
             STREAMS[0])
    for i, (ev, stream, wire) in enumerate(events):
        d = delivery(stream, f"1-{i}", ev, wire=wire)
        if d.event is None:
            continue  # refused by the decoder (NaN/inf cannot travel as JSON)
        why = s.reason(d.event, stream)
        assert why is None or (isinstance(why, str) and ": " in why)
        if why is None:
            _sane(d.event, stream, s)


@FUZZ
@given(mids=st.lists(st.one_of(st.floats(0.5, 2.0), st.sampled_from([1e-6, 1e6, 0.79, 1.21])), min_size=1,
                     max_size=30), step_s=st.floats(0.0, 20.0))
def test_the_reference_never_follows_a_lone_jump(mids, step_s):
    """Whatever the sequence of tops, the reference moves by at most max_jump_pct per accepted top
    unless a new level was confirmed (consistent tops over confirm_s and confirm_count)."""
    s = Screener(NS, ScreeningConfig(), wall=lambda: WALL)
    ref = 100_000.0
    s.reason(Bbo(id="r0", ts_event=T0, market="BTC", bid_px=ref - 0.1, bid_sz=1.0, ask_px=ref + 0.1, ask_sz=1.0),
             STREAMS[0])
    for i, k in enumerate(mids):
        mid = ref * k
        before, anchored = s.mids["BTC"], s.reanchored
        ev = Bbo(id=f"r{i + 1}", ts_event=T0 + int((i + 1) * step_s * S), market="BTC", bid_px=mid * 0.99999,
                 bid_sz=1.0, ask_px=mid * 1.00001, ask_sz=1.0)
        if s.reason(ev, STREAMS[0]) is None and s.reanchored == anchored:
            assert abs(s.mids["BTC"] / before - 1.0) <= 0.2 + 1e-12
