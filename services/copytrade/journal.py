"""The durable record of accepted copy-trade requests: the Redis stream
``{ns}:copytrade:requests`` (:attr:`shared.bus.Streams.copytrade_requests`).

Each request is appended as ``accepted`` (its :class:`~services.copytrade.service.RequestRecord`
as JSON) **before** the API answers with its ``request_id``, and as ``processed`` (the final
record) once its worker is done with it, whatever the outcome. At start-up
:func:`load` returns both, oldest first, so the service re-queues, in order, the accepted
requests without a ``processed`` entry (:meth:`~services.copytrade.service.CopyTrader.resume`)
-- unless its target is already on the intent stream (the process stopped between publishing
and recording): then it counts as processed and is not traded again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from shared.bus import Bus

log = logging.getLogger(__name__)

KIND_FIELD = b"kind"
RECORD_FIELD = b"record"


class JournalUnavailable(RuntimeError):
    """The request stream could not be written (the API answers 503: the request is not accepted)."""


@dataclass
class JournalEntries:
    """What :func:`load` read: ``accepted`` records (JSON dicts) in acceptance order and the
    ``processed`` final records by ``request_id``."""

    accepted: list[dict[str, Any]]
    processed: dict[str, dict[str, Any]]


class RequestJournal:
    """Appends to ``{ns}:copytrade:requests`` (trimmed like every stream, ``MAXLEN ~`` of the bus).

    Args:
        bus: the namespace's bus.
    """

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.stream = bus.streams.copytrade_requests

    async def _append(self, kind: bytes, record: dict[str, Any]) -> None:
        fields: dict[bytes, bytes] = {KIND_FIELD: kind, RECORD_FIELD: json.dumps(record).encode()}
        try:
            if self.bus.maxlen:
                await self.bus.redis.xadd(self.stream, fields, maxlen=self.bus.maxlen, approximate=True)
            else:
                await self.bus.redis.xadd(self.stream, fields)
        except Exception as exc:  # redis.RedisError, OSError: the request cannot be made durable
            raise JournalUnavailable(f"request stream unavailable: {type(exc).__name__}") from exc

    async def accepted(self, record: dict[str, Any]) -> None:
        """Record an accepted request. Raises :class:`JournalUnavailable`."""
        await self._append(b"accepted", record)

    async def processed(self, record: dict[str, Any]) -> None:
        """Record a request's final state. Raises :class:`JournalUnavailable`."""
        await self._append(b"processed", record)

    async def load(self) -> JournalEntries:
        """Read the whole stream (XRANGE, a read); malformed entries are skipped with a warning."""
        out = JournalEntries([], {})
        start = "-"
        while True:
            batch = await self.bus.redis.xrange(self.stream, min=start, max="+", count=10_000)
            if not batch:
                return out
            for eid, fields in batch:
                try:
                    kind = fields[KIND_FIELD]
                    rec = json.loads(fields[RECORD_FIELD])
                    rid = rec["request_id"]
                except (KeyError, TypeError, ValueError):
                    log.warning("skipping malformed entry %r of %s", eid, self.stream)
                    continue
                if kind == b"accepted":
                    out.accepted.append(rec)
                elif kind == b"processed":
                    out.processed[rid] = rec
            last = batch[-1][0]
            ms, seq = (last.decode() if isinstance(last, bytes) else str(last)).split("-")
            start = f"{ms}-{int(seq) + 1}"
