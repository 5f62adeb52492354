"""Helpers of the screening tests against a real Redis: write entries straight into a stream
(raw ``XADD``, as a hostile or broken writer would) and read the dead-letter stream back. Import
as ``from dlq_kit import ...`` (``tests/support`` is on ``sys.path``)."""

from __future__ import annotations

from typing import Any

import msgspec

from shared.bus import EVENT_FIELD
from shared.events import Event, encode


async def xadd_raw(redis: Any, stream: str, entry: Event | dict[str, Any] | bytes) -> str:
    """XADD one entry to ``stream``: an event (encoded as the bus does), a dict (JSON of it, e.g.
    an event's builtins with a field changed) or raw bytes, in the ``event`` field. Returns the
    entry id."""
    if isinstance(entry, Event):
        raw = encode(entry)
    elif isinstance(entry, dict):
        raw = msgspec.json.encode(entry)
    else:
        raw = entry
    eid = await redis.xadd(stream, {EVENT_FIELD: raw})
    return eid.decode() if isinstance(eid, bytes) else eid


def builtins(ev: Event, **changes: Any) -> dict[str, Any]:
    """``ev`` as a JSON-ready dict (with its ``type`` tag), fields replaced by ``changes``."""
    d = msgspec.to_builtins(ev)
    d.update(changes)
    return d


async def dead_letters(redis: Any, namespace: str) -> list[dict[str, str]]:
    """The entries of ``{namespace}:dlq``, oldest first: ``stream``, ``entry_id``, ``reason``,
    ``service`` (decoded) and ``raw`` (bytes, as given)."""
    out = []
    for _eid, fields in await redis.xrange(f"{namespace}:dlq"):
        out.append({k.decode(): (v if k == b"raw" else v.decode()) for k, v in fields.items()})
    return out


def reasons_by_entry(letters: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """``{(stream, entry_id): reason}`` of dead letters (entry ids repeat across streams)."""
    return {(d["stream"], d["entry_id"]): d["reason"] for d in letters}
