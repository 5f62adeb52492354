"""Lockstep ordering of the executor's input batches (lockstep runs only).

Lockstep barrier (``lockstep_barrier``, off by default; ``lighter-stack demo --lockstep`` turns
it on): when a read returns intents, the runner first waits until every *other* consumer group
on the namespace's ``md:*``, ``params:*`` and exec streams is idle (:class:`shared.quiet.StreamWatch`:
pending 0, lag 0 -- the strategies have consumed everything and, since they acknowledge together
with publishing, published every intent it caused), reads again without blocking and repeats
until nothing new arrives. The whole set is one engine batch, as in the backtest, so opposite
targets of strategies reacting to the same event cross internally whatever order their intents
arrive in. The intents of that batch come after the other inputs (market data, controls) and
are sorted as the backtest feeds them (:meth:`LockstepBarrier.backtest_order`), because the
engine's netting allocates FIFO by intent order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence

from shared.bus import Consumer, Delivery
from shared.events import Event
from shared.quiet import StreamWatch

log = logging.getLogger("executor")

#: publication numbers kept for ordering (oldest forgotten first)
RANK_CAPACITY = 100_000


class LockstepBarrier:
    """Gathers and orders one lockstep batch (see the module docstring).

    Args:
        quiet: the watch over the other consumer groups (``md:*``, ``params:*``, our exec stream;
            the executor's own group excluded).
        intent_stream: the account's intent stream name.
        order: strategy names in the backtest's registration order (``lockstep_order``).
        timeout_s: wall seconds to wait for the others to go idle before processing anyway.
        stop: the service's stop event (waiting ends when it is set).
    """

    def __init__(self, quiet: StreamWatch, intent_stream: str, order: Sequence[str], timeout_s: float,
                 stop: asyncio.Event) -> None:
        self.quiet = quiet
        self.intent_stream = intent_stream
        self.order = list(order)
        self.timeout_s = timeout_s
        self._stop = stop
        self._published_rank: OrderedDict[str, int] = OrderedDict()  # exec event id -> publication number
        self._published_n = 0
        self.waits = 0
        self.timeouts = 0

    def wants(self, batch: Sequence[Delivery]) -> bool:
        """True when ``batch`` holds an intent (the barrier applies)."""
        return any(d.stream == self.intent_stream for d in batch)

    def record(self, events: Sequence[Event]) -> None:
        """Note the publication order of the executor's outputs (for :meth:`backtest_order`)."""
        ranks = self._published_rank
        for ev in events:
            self._published_n += 1
            ranks[ev.id] = self._published_n
        while len(ranks) > RANK_CAPACITY:
            ranks.popitem(last=False)

    async def gather(self, consumer: Consumer, batch: list[Delivery]) -> list[Delivery]:
        """Lockstep barrier: wait for the other consumer groups to be idle, add what a
        non-blocking read returns, repeat until it returns nothing; then order the batch as the
        backtest would (other inputs in arrival order, then the intents in :meth:`backtest_order`)."""
        self.waits += 1
        while not self._stop.is_set():
            if not await self.wait_quiet():
                break
            more = await consumer.fetch_new()
            if not more:
                break
            batch = batch + more
        rest = [d for d in batch if d.stream != self.intent_stream]
        intents = [d for d in batch if d.stream == self.intent_stream]
        return rest + self.backtest_order(intents)

    async def wait_quiet(self) -> bool:
        """Poll until :attr:`quiet` reports every other group idle (True), or give up after
        ``timeout_s`` wall seconds (False, logged)."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            idle, _ = await self.quiet.poll()
            if idle:
                return True
            if time.monotonic() > deadline or self._stop.is_set():
                self.timeouts += 1
                log.warning("lockstep barrier: the other consumers did not go idle within %.1fs; processing %s",
                            self.timeout_s, "what was read")
                return False
            await asyncio.sleep(0.002)

    def backtest_order(self, intents: list[Delivery]) -> list[Delivery]:
        """The intents of one barrier batch in the backtest's order (``lighter_stack/backtest/engine.py``:
        strategies answering the executor's outputs are fed output by output, each output to the
        strategies in registration order, before the strategies see the market-data event; the
        answers to a market-data event come in registration order). Sort key: publication number
        of the exec event that caused the intent (``causation_id``; other causes -- market data,
        params -- after all exec events), then the strategy's position in ``lockstep_order``
        (unlisted: after, by name), then arrival. Undecodable entries keep their place at the end."""
        order = {name: i for i, name in enumerate(self.order)}
        late = len(order)
        never = self._published_n + 1

        def key(item: tuple[int, Delivery]) -> tuple[int, int, str, int]:
            k, d = item
            ev = d.event
            if ev is None:
                return (never + 1, late, "", k)
            cause = ev.causation_id
            rank = self._published_rank.get(cause, never) if cause else never
            name = str(getattr(ev, "strategy", ""))
            return (rank, order.get(name, late), name, k)

        return [d for _, d in sorted(enumerate(intents), key=key)]
