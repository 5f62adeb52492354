"""The message bus: Redis Streams through ``redis.asyncio``.

Stream names carry a namespace (``paper``, ``live``, ``replay-<id>``) so several runs share one
Redis without mixing; :class:`Streams` builds every name used by the system.

Delivery is at-least-once. A :class:`Consumer` reads with a consumer group and, in
:meth:`Consumer.commit`, writes the outputs, the dead letters and the acknowledgements of the
inputs in **one** ``MULTI/EXEC`` transaction, so an input is acknowledged only together with what
it produced. On start a consumer first re-reads its own pending entries, then periodically
claims entries that another consumer of the group left pending longer than ``claim_idle_ms``
(``XAUTOCLAIM``): a killed consumer's work is finished by the next one. Consumers drop events
whose id they already processed (see ``shared/service.py``), and the ledger is idempotent by
fill id, so a redelivered entry is processed once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shared.events import AnyEvent, DecodeError, Event, decode, encode

log = logging.getLogger(__name__)

EVENT_FIELD = b"event"
DEFAULT_MAXLEN = 500_000


class Streams:
    """Stream names of one namespace (ARCHITECTURE.md section 4).

    >>> Streams("paper").book("BTC")
    'paper:md:book:BTC'
    """

    def __init__(self, namespace: str) -> None:
        if not namespace or ":" in namespace:
            raise ValueError(f"namespace must be non-empty and contain no ':', got {namespace!r}")
        self.ns = namespace

    def book(self, market: str) -> str:
        """Book snapshots, deltas and derived BBO of ``market``."""
        return f"{self.ns}:md:book:{market}"

    def trade(self, market: str) -> str:
        """Public trades of ``market``."""
        return f"{self.ns}:md:trade:{market}"

    def stats(self, market: str) -> str:
        """Market stats (mark, index, funding, open interest) of ``market``."""
        return f"{self.ns}:md:stats:{market}"

    def intent(self, account: int | str) -> str:
        """Intents of every strategy trading ``account``."""
        return f"{self.ns}:intent:{account}"

    def exec(self, account: int | str) -> str:
        """Order, fill, position and risk events of ``account``."""
        return f"{self.ns}:exec:{account}"

    def params(self, strategy: str) -> str:
        """Calibrated model parameters for ``strategy``."""
        return f"{self.ns}:params:{strategy}"

    @property
    def control(self) -> str:
        """Operator commands."""
        return f"{self.ns}:control"

    @property
    def copytrade_requests(self) -> str:
        """The copy-trade API's accepted requests and their outcomes (durable queue)."""
        return f"{self.ns}:copytrade:requests"

    @property
    def dlq(self) -> str:
        """Dead letters: raw inputs that failed to parse or validate, with the reason."""
        return f"{self.ns}:dlq"

    def market_data(self, market: str) -> list[str]:
        """The three market-data streams of ``market``."""
        return [self.book(market), self.trade(market), self.stats(market)]


@dataclass(slots=True)
class Delivery:
    """One stream entry handed to a consumer: ``event`` is ``None`` and ``error`` says why when
    the entry could not be decoded (it then goes to the dead-letter stream)."""

    stream: str
    entry_id: str
    raw: bytes
    event: AnyEvent | None
    error: str | None = None


def _decode_entry(stream: str, entry_id: bytes | str, fields: dict) -> Delivery:
    eid = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    raw = fields.get(EVENT_FIELD)
    if raw is None:
        return Delivery(stream, eid, repr(fields).encode(), None, f"entry has no '{EVENT_FIELD.decode()}' field")
    try:
        return Delivery(stream, eid, raw, decode(raw))
    except DecodeError as exc:
        return Delivery(stream, eid, raw, None, f"invalid event: {exc}")


class Bus:
    """Writes events to streams of one namespace.

    Args:
        redis: a ``redis.asyncio.Redis`` client (``decode_responses=False``).
        namespace: the run's namespace, e.g. ``paper``.
        maxlen: approximate maximum length of each stream (``XADD MAXLEN ~``); older entries
            are trimmed. ``None`` disables trimming.
    """

    def __init__(self, redis: aioredis.Redis, namespace: str, maxlen: int | None = DEFAULT_MAXLEN) -> None:
        self.redis = redis
        self.streams = Streams(namespace)
        self.maxlen = maxlen

    async def publish(self, stream: str, events: Iterable[Event]) -> list[str]:
        """Append events to ``stream`` in order; returns their entry ids."""
        pipe = self.redis.pipeline(transaction=True)
        for ev in events:
            self._xadd(pipe, stream, ev)
        ids = await pipe.execute()
        return [i.decode() if isinstance(i, bytes) else i for i in ids]

    async def publish_many(self, routed: Sequence[tuple[str, Event]]) -> None:
        """Append ``(stream, event)`` pairs in one transaction, preserving order."""
        if not routed:
            return
        pipe = self.redis.pipeline(transaction=True)
        for stream, ev in routed:
            self._xadd(pipe, stream, ev)
        await pipe.execute()

    async def dead_letter(self, raw: bytes, reason: str, origin: str, service: str) -> None:
        """Write a raw input that could not be used to ``{ns}:dlq`` with the reason."""
        await self.redis.xadd(self.streams.dlq, _dlq_fields(raw, reason, origin, "", service), maxlen=self.maxlen, approximate=True)

    def _xadd(self, pipe, stream: str, ev: Event) -> None:
        if self.maxlen:
            pipe.xadd(stream, {EVENT_FIELD: encode(ev)}, maxlen=self.maxlen, approximate=True)
        else:
            pipe.xadd(stream, {EVENT_FIELD: encode(ev)})

    async def read_all(self, stream: str, count: int = 10_000) -> list[Delivery]:
        """Read a whole stream from the start (tests, tools, verification); decodes every entry."""
        out: list[Delivery] = []
        start = "-"
        while True:
            batch = await self.redis.xrange(stream, min=start, max="+", count=count)
            if not batch:
                return out
            for eid, fields in batch:
                out.append(_decode_entry(stream, eid, fields))
            last = batch[-1][0].decode()
            ms, seq = last.split("-")
            start = f"{ms}-{int(seq) + 1}"

    async def tail_ids(self, stream: str, count: int) -> set[str]:
        """The event ids of the newest ``count`` entries of ``stream`` (undecodable ones left
        out): after a publish whose answer was lost (Redis went away), whether it was written."""
        got = await self.redis.xrevrange(stream, max="+", min="-", count=max(1, count))
        return {d.event.id for d in (_decode_entry(stream, eid, f) for eid, f in got) if d.event is not None}

    async def last(self, stream: str) -> Delivery | None:
        """The newest entry of ``stream``, or ``None`` when it is empty."""
        got = await self.redis.xrevrange(stream, max="+", min="-", count=1)
        if not got:
            return None
        return _decode_entry(stream, got[0][0], got[0][1])


def _dlq_fields(raw: bytes, reason: str, origin: str, entry_id: str, service: str) -> dict:
    return {b"raw": raw, b"reason": reason.encode(), b"stream": origin.encode(),
            b"entry_id": entry_id.encode(), b"service": service.encode()}


class Consumer:
    """A consumer-group reader over several streams.

    Args:
        bus: the :class:`Bus` whose namespace and trimming apply to outputs.
        streams: input stream names.
        group: consumer group (one per service instance, e.g. ``strategy-trend``); created at
            the start of each stream (``0``) when missing, so nothing written before the first
            start is missed.
        consumer: this process's name inside the group.
        claim_idle_ms: entries pending on another consumer longer than this are claimed.
        batch: maximum entries per stream per read.
        block_ms: how long a read waits for new entries.
    """

    def __init__(self, bus: Bus, streams: Sequence[str], group: str, consumer: str,
                 claim_idle_ms: int = 30_000, batch: int = 200, block_ms: int = 500) -> None:
        self.bus = bus
        self.redis = bus.redis
        self.streams = list(streams)
        self.group = group
        self.consumer = consumer
        self.claim_idle_ms = claim_idle_ms
        self.batch = batch
        self.block_ms = block_ms
        self._own_pending_done = False
        self._next_claim = 0.0

    async def start(self) -> None:
        """Create missing consumer groups (and streams); also after Redis lost them (see
        :class:`shared.service.ConsumerLoop`)."""
        for s in self.streams:
            try:
                await self.redis.xgroup_create(s, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def fetch(self) -> list[Delivery]:
        """Next batch: own pending entries first (after a restart), then claimed entries of
        dead consumers, then new entries (waits up to ``block_ms``)."""
        if not self._own_pending_done:
            got = await self._read({s: "0" for s in self.streams}, block=None)
            if got:
                return got
            self._own_pending_done = True
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + max(self.claim_idle_ms / 2000.0, 0.5)
            claimed = await self._claim()
            if claimed:
                return claimed
        return await self._read({s: ">" for s in self.streams}, block=self.block_ms)

    def reread_pending(self) -> None:
        """Make the next :meth:`fetch` read this consumer's own pending entries first again (after
        a Redis outage: a read whose answer was lost left its entries pending on us, unseen)."""
        self._own_pending_done = False

    async def fetch_new(self) -> list[Delivery]:
        """New entries (never delivered to the group) that are already there, without waiting
        (up to ``batch`` per stream); ``[]`` when there are none."""
        return await self._read({s: ">" for s in self.streams}, block=None)

    async def _read(self, ids: dict[str, str], block: int | None) -> list[Delivery]:
        resp = await self.redis.xreadgroup(self.group, self.consumer, ids, count=self.batch, block=block)
        out: list[Delivery] = []
        for stream, entries in resp or []:
            name = stream.decode() if isinstance(stream, bytes) else stream
            for eid, fields in entries:
                if fields is None:  # entry trimmed while pending: acknowledge it away
                    await self.redis.xack(name, self.group, eid)
                    continue
                out.append(_decode_entry(name, eid, fields))
        return out

    async def _claim(self) -> list[Delivery]:
        out: list[Delivery] = []
        for s in self.streams:
            start = "0-0"
            while True:
                res = await self.redis.xautoclaim(s, self.group, self.consumer, self.claim_idle_ms,
                                                  start_id=start, count=self.batch)
                nxt, entries = res[0], res[1]
                for eid, fields in entries:
                    if fields is None:
                        await self.redis.xack(s, self.group, eid)
                        continue
                    out.append(_decode_entry(s, eid, fields))
                nxt = nxt.decode() if isinstance(nxt, bytes) else nxt
                if nxt == "0-0" or len(out) >= self.batch:
                    break
                start = nxt
        if out:
            log.warning("claimed %d pending entries of dead consumers in group %s", len(out), self.group)
        return out

    async def commit(self, done: Sequence[Delivery], outputs: Sequence[tuple[str, Event]],
                     service: str = "") -> None:
        """Atomically publish ``outputs``, dead-letter the undecodable entries of ``done`` and
        acknowledge all of ``done``."""
        pipe = self.redis.pipeline(transaction=True)
        for stream, ev in outputs:
            self.bus._xadd(pipe, stream, ev)
        acks: dict[str, list[str]] = {}
        for d in done:
            if d.error is not None:
                pipe.xadd(self.bus.streams.dlq, _dlq_fields(d.raw, d.error, d.stream, d.entry_id, service),
                          maxlen=self.bus.maxlen, approximate=True)
            acks.setdefault(d.stream, []).append(d.entry_id)
        for s, ids in acks.items():
            pipe.xack(s, self.group, *ids)
        await pipe.execute()

    async def commit_state(self, done: Sequence[Delivery]) -> Literal["done", "not_done", "lost"]:
        """After a :meth:`commit` of ``done`` failed without an answer (Redis went away), whether
        its transaction ran: ``MULTI/EXEC`` is atomic and acknowledges every entry of ``done``, so

        - ``not_done``: an entry of ``done`` is still pending in the group (nothing of the
          transaction happened: commit again);
        - ``done``: none is pending and they are still in their streams (it ran -- or another
          consumer of the group claimed and committed them; either way the outputs are out);
        - ``lost``: the group is gone (``NOGROUP``), or the entries are (Redis came back without
          the data: the outputs must be published again, the groups re-created).

        An entry trimmed by ``MAXLEN`` in between reads as ``lost`` (outputs published twice,
        with the same event ids: consumers drop the second copy).

        Raises:
            redis.exceptions.ConnectionError, redis.exceptions.TimeoutError: Redis is still
                unreachable.
        """
        by_stream: dict[str, list[str]] = {}
        for d in done:
            by_stream.setdefault(d.stream, []).append(d.entry_id)
        present = False
        for s, ids in by_stream.items():
            lo, hi = min(ids, key=split_id), max(ids, key=split_id)
            try:
                pending = await self.redis.xpending_range(s, self.group, min=lo, max=hi, count=len(ids) + 10_000)
            except ResponseError as exc:
                if str(exc).startswith("NOGROUP"):
                    return "lost"
                raise
            pend = {(p["message_id"].decode() if isinstance(p["message_id"], bytes) else p["message_id"])
                    for p in pending}
            if pend.intersection(ids):
                return "not_done"
            if await self.redis.xrange(s, min=lo, max=hi, count=1):
                present = True
        return "done" if present else "lost"

    async def lag(self) -> dict[str, int]:
        """Entries not yet delivered to the group, per stream (Redis 7 reports it; on 6.2 it is
        counted with ``XRANGE`` after the group's last delivered id, capped at 100,000)."""
        out: dict[str, int] = {}
        for s in self.streams:
            try:
                groups = await self.redis.xinfo_groups(s)
            except ResponseError:
                continue
            for g in groups:
                name = g.get("name")
                name = name.decode() if isinstance(name, bytes) else name
                if name != self.group:
                    continue
                out[s] = await group_lag(self.redis, s, g)
        return out


async def group_lag(redis: aioredis.Redis, stream: str, group: dict[str, Any]) -> int:
    """Entries of ``stream`` not yet delivered to a consumer group, from its ``XINFO GROUPS``
    row ``group``: the ``lag`` Redis 7 reports, else (Redis 6.2) counted with ``XRANGE`` after the
    group's last delivered id, capped at 100,000."""
    if group.get("lag") is not None:
        return int(group["lag"])
    last = group.get("last-delivered-id")
    last = last.decode() if isinstance(last, bytes) else last
    return len(await redis.xrange(stream, min=f"({last}", max="+", count=100_000))


def split_id(entry_id: str) -> tuple[int, int]:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``. Raises ValueError on another shape."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
