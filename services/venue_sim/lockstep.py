"""Lockstep pacing: release the next recorded event only when the whole stack is idle.

In lockstep mode (``services.venue-sim.lockstep: true``) the replay does not follow the wall
clock. Before it applies a recorded event (and, after sending our account's updates, before it
sends the public market data of that event) it waits until :class:`QuietGate` reports the stack
*quiet*:

- every consumer group of every stream of the namespace (``{ns}:*`` except the DLQ) has
  ``pending == 0`` and ``lag == 0`` (Redis ``XINFO GROUPS``; when Redis cannot tell the lag,
  the group's ``last-delivered-id`` must equal the stream's ``last-generated-id``);
- venue-sim's WebSocket send queues are empty;
- nothing changed for ``settle_ms`` wall milliseconds: the last id of every stream and the
  number of transactions venue-sim accepted stayed the same over the whole window.

The settle window covers work that Redis cannot see: a service that acknowledged its input but
has not yet published or sent its order (the executor acknowledges a batch, then signs and sends
its orders), and frames on their way through a socket. It is a wall-clock margin, so lockstep is
deterministic only while no service stalls for longer than ``settle_ms`` between acknowledging
an input and producing the outputs of it (30 ms is generous on one machine; raise it on a loaded
one). A gate that is not quiet within ``timeout_s`` logs a warning and lets the replay go on (a
dead consumer must not hang the venue).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from shared.outage import BUS_DOWN_ERRORS, BusLink
from shared.quiet import StreamWatch

log = logging.getLogger(__name__)


class QuietGate:
    """Waits until the consumer groups of a namespace are idle and nothing moves (see module;
    the look at the consumer groups is :class:`shared.quiet.StreamWatch`).

    Args:
        redis: an asyncio Redis client.
        namespace: the stream namespace (``paper``, ...); streams ``{namespace}:*`` are watched.
        local_busy: returns venue-sim's own state that must be stable and idle: a tuple whose
            first item is the number of queued WS messages (must be 0), the rest a signature
            (e.g. the count of accepted transactions) that must not change during the window.
        settle_ms: wall milliseconds the quiet state must last.
        timeout_s: give up waiting after this many wall seconds (warning, then go on).
        poll_ms: wall milliseconds between two polls.
    """

    def __init__(self, redis: Any, namespace: str, local_busy: Callable[[], tuple[int, ...]],
                 settle_ms: float = 30.0, timeout_s: float = 30.0, poll_ms: float = 3.0) -> None:
        self.redis = redis
        self.namespace = namespace
        self.local_busy = local_busy
        self.settle_s = settle_ms / 1000.0
        self.timeout_s = timeout_s
        self.poll_s = poll_ms / 1000.0
        self.waits = 0
        self.timeouts = 0
        self.watch = StreamWatch(redis, namespace, ("*",))
        self.link = BusLink("venue-sim")

    async def poll(self) -> tuple[bool, tuple[Any, ...]]:
        """One look: ``(idle, signature)``; the signature changes whenever anything moved. While
        Redis is unreachable the stack counts as busy (the replay waits, up to ``timeout_s``)."""
        local = self.local_busy()
        try:
            idle, last_ids = await self.watch.poll()
        except BUS_DOWN_ERRORS as exc:
            self.link.failed(exc, "lockstep poll")
            return False, ("redis unreachable", local[1:])
        self.link.recovered()
        return idle and local[0] == 0, (last_ids, local[1:])

    async def wait(self) -> bool:
        """Return when the stack has been quiet for ``settle_ms`` (True), or after
        ``timeout_s`` without that (False, logged)."""
        self.waits += 1
        start = time.monotonic()
        since: float | None = None
        last_sig: tuple[Any, ...] | None = None
        while True:
            idle, sig = await self.poll()
            now = time.monotonic()
            if idle and sig == last_sig and since is not None:
                if now - since >= self.settle_s:
                    return True
            else:
                since = now if idle else None
                last_sig = sig
            if now - start > self.timeout_s:
                self.timeouts += 1
                log.warning("lockstep: the bus did not go quiet within %.1fs; replaying on", self.timeout_s)
                return False
            await asyncio.sleep(self.poll_s)
