"""RecorderBuffer: positions, rows of closed hours taken first, everything on flush, put back on failure."""

from __future__ import annotations

from services.recorder.engine import HOUR_MS, RecorderBuffer
from shared.archive import make_row
from shared.events import Control, encode

T0 = 1_757_894_400_000  # an hour start (ms)


def rows(stream: str, *ms: int) -> list:
    return [make_row(stream, "control", f"{m}-0", {b"event": encode(Control(id=f"c{m}", ts_event=m, command="kill"))})
            for m in ms]


def test_follow_once_from_the_archived_position():
    b = RecorderBuffer()
    assert b.follow("ns:control", f"{T0}-4")
    assert not b.follow("ns:control", None)
    assert b.positions == {"ns:control": f"{T0}-4"} and b.newest_ms == {"ns:control": T0}


def test_closed_hours_are_taken_when_the_clock_passes_their_end():
    b = RecorderBuffer()
    b.follow("a", None)
    assert b.add("a", rows("a", T0 + 1, T0 + HOUR_MS - 1, T0 + HOUR_MS + 5)) == 3
    assert b.positions["a"] == f"{T0 + HOUR_MS + 5}-0" and b.newest_ms["a"] == T0 + HOUR_MS + 5
    assert b.take(T0 + HOUR_MS - 1) == []  # the first hour is still open
    taken = b.take(T0 + HOUR_MS)
    assert [r.entry_ms for r in taken] == [T0 + 1, T0 + HOUR_MS - 1]
    assert b.pending() == {"a": 1}
    b.put_back(taken)
    assert b.pending() == {"a": 3}
    assert [r.entry_ms for r in b.take(T0, everything=True)] == [T0 + 1, T0 + HOUR_MS - 1, T0 + HOUR_MS + 5]
    assert b.pending() == {}
