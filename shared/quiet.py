"""Is the bus quiet? One look at the consumer groups of a set of Redis streams.

A consumer group is *idle* on a stream when it has nothing pending (``XINFO GROUPS`` field
``pending == 0``: every entry it read is acknowledged) and nothing undelivered (``lag == 0``;
when Redis cannot tell the lag -- after deletions, or Redis < 7 -- its ``last-delivered-id``
must equal the stream's ``last-generated-id``). Our consumers acknowledge an input in the same
``MULTI/EXEC`` as the outputs it produced (:meth:`shared.bus.Consumer.commit`), so an idle group
has also published everything its inputs caused.

Used by venue-sim's lockstep pacing (:mod:`services.venue_sim.lockstep`: every group of the
namespace) and by the executor's lockstep barrier (:mod:`services.executor.lockstep`: every group
but its own, on the market-data and exec streams).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any


def _s(v: Any) -> Any:
    return v.decode() if isinstance(v, bytes) else v


def _field(d: dict[Any, Any], name: str) -> Any:
    v = d.get(name)
    if v is None:
        v = d.get(name.encode())
    return _s(v)


def group_busy(group: dict[Any, Any], last_generated_id: Any) -> bool:
    """True when one ``XINFO GROUPS`` entry has pending or undelivered entries (see module)."""
    pending = int(_field(group, "pending") or 0)
    lag = _field(group, "lag")
    behind = (lag is not None and int(lag) > 0) or (
        lag is None and _field(group, "last-delivered-id") != _s(last_generated_id))
    return bool(pending or behind)


class StreamWatch:
    """Watches the consumer groups of the streams ``{namespace}:{pattern}`` (DLQ excluded).

    Args:
        redis: an asyncio Redis client.
        namespace: the stream namespace (``paper``, ...).
        patterns: ``SCAN MATCH`` patterns below the namespace (``*`` = every stream,
            ``md:*`` = market data, ``exec:1001``, ...); the union is watched.
        exclude_groups: consumer groups whose state does not count (e.g. the caller's own).
        rescan_s: wall seconds after which the stream list is scanned again (new streams appear
            rarely: at start-up).
    """

    def __init__(self, redis: Any, namespace: str, patterns: Collection[str] = ("*",),
                 exclude_groups: Collection[str] = (), rescan_s: float = 0.5) -> None:
        self.redis = redis
        self.namespace = namespace
        self.patterns = list(patterns)
        self.exclude = set(exclude_groups)
        self.rescan_s = rescan_s
        self._keys: list[str] = []
        self._keys_at = 0.0

    async def stream_keys(self) -> list[str]:
        """The watched stream names, sorted (cached for ``rescan_s``)."""
        now = time.monotonic()
        if not self._keys or now - self._keys_at > self.rescan_s:
            keys: set[str] = set()
            for p in self.patterns:
                async for k in self.redis.scan_iter(match=f"{self.namespace}:{p}", _type="STREAM"):
                    keys.add(_s(k))
            self._keys = sorted(k for k in keys if not k.endswith(":dlq"))
            self._keys_at = now
        return self._keys

    async def poll(self) -> tuple[bool, tuple[tuple[str, Any], ...]]:
        """One look: ``(idle, last_ids)`` -- ``idle`` when every watched group (not excluded)
        is idle on every watched stream; ``last_ids`` the ``(stream, last-generated-id)`` pairs,
        which change whenever anything was written. A stream that vanished is skipped and the
        list rescanned on the next poll."""
        keys = await self.stream_keys()
        idle = True
        last_ids: list[tuple[str, Any]] = []
        if not keys:
            return idle, ()
        pipe = self.redis.pipeline(transaction=False)
        for k in keys:
            pipe.xinfo_stream(k)
            pipe.xinfo_groups(k)
        res = await pipe.execute(raise_on_error=False)
        for i, k in enumerate(keys):
            info, groups = res[2 * i], res[2 * i + 1]
            if isinstance(info, Exception) or isinstance(groups, Exception):
                self._keys = []  # the stream vanished (trimmed namespace): rescan next time
                continue
            last = _field(info, "last-generated-id")
            last_ids.append((k, last))
            for g in groups:
                if _field(g, "name") in self.exclude:
                    continue
                if group_busy(g, last):
                    idle = False
        return idle, tuple(last_ids)
