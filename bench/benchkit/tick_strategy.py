"""The benchmark strategy of ``bench/tick_to_order.py``: answers every BBO with a new quote.

Not a product service (it lives in ``bench/``): a strategy engine of a few lines run by the
same machinery as the real strategies (:class:`shared.service.EngineRunner`: consumer group on
``{ns}:md:book:{SYM}``, outputs published atomically with the acknowledgement to
``{ns}:intent:{account}``), so what it costs between the collector and the executor is what a
real strategy's consume loop costs, minus the strategy's own logic.

For every :class:`~shared.events.Bbo` of its market it emits one post-only
:class:`~shared.events.QuoteIntent` (strategy ``bench``): a bid of ``size`` base units at
``floor(mid * fraction) - (n mod 10) * tick`` USD (``n`` counts the BBOs), far from the touch so it
never fills, and different from the previous one so the executor requotes (cancel + create in one
``sendTxBatch``) for every intent it acts on. The intent's envelope is
:func:`shared.events.child` of the BBO: same ``ts_event`` (the venue's book-update time), so the
executor's ``OrderAccepted`` for it carries that time too.

With ``--coalesce`` the runner publishes only the last intent of each consumer batch (the
answer to the newest BBO it read; what a quoting strategy does under load): the BBOs it read
together get one quote.

Run: ``python -m benchkit.tick_strategy --redis-url URL --namespace NS --account 1001
--market BTC --tick 0.1 --http-port PORT [--coalesce]`` with ``bench/`` on ``PYTHONPATH``; stops
on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import math

from shared.bus import Bus, Delivery, Streams
from shared.events import Bbo, Event, QuoteIntent, child
from shared.redis_util import async_client
from shared.service import EngineRunner, install_stop_handlers, setup_logging

SOURCE = "bench-tick"
STRATEGY = "bench"


class TickEngine:
    """Pure engine: one ``QuoteIntent`` per ``Bbo`` of ``market`` (see the module docstring).

    Args:
        market: the market symbol.
        tick: the market's price tick (USD).
        size: bid size (base units; at least the market minimum at ``fraction`` of the mid).
        fraction: the bid's distance from the mid as a fraction of it (0.8: 20 % below).
    """

    def __init__(self, market: str, tick: float, size: float, fraction: float = 0.8) -> None:
        self.market = market
        self.tick = tick
        self.size = size
        self.fraction = fraction
        self.decimals = max(0, -int(math.floor(math.log10(tick))))
        self.n = 0

    def on_event(self, event: Event) -> list[Event]:
        """A ``QuoteIntent`` for a ``Bbo`` of the market; nothing for anything else."""
        if not isinstance(event, Bbo) or event.market != self.market:
            return []
        self.n += 1
        bid = round(math.floor(event.mid * self.fraction) - (self.n % 10) * self.tick, self.decimals)
        return [QuoteIntent(**child(event, SOURCE, 0), strategy=STRATEGY, market=self.market,
                            bid_px=bid, bid_sz=self.size)]


class CoalescingRunner(EngineRunner):
    """:class:`EngineRunner` that publishes only the last output of each batch."""

    async def on_batch(self, deliveries: list[Delivery]) -> list[tuple[str, Event]]:
        """The engine sees every event; only the last routed output is kept."""
        return (await super().on_batch(deliveries))[-1:]


async def run(args: argparse.Namespace) -> None:
    """Consume until SIGTERM/SIGINT."""
    redis = async_client(args.redis_url)
    bus = Bus(redis, args.namespace)
    streams = Streams(args.namespace)
    intents = streams.intent(args.account)
    cls = CoalescingRunner if args.coalesce else EngineRunner
    runner = cls(SOURCE, TickEngine(args.market, args.tick, args.size), bus, [streams.book(args.market)],
                 route=lambda _ev: intents, group=STRATEGY, http_port=args.http_port)
    install_stop_handlers(runner.stop)
    try:
        await runner.run()
    finally:
        await redis.aclose()


def main() -> None:
    setup_logging()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--redis-url", required=True)
    p.add_argument("--namespace", required=True)
    p.add_argument("--account", type=int, default=1001)
    p.add_argument("--market", default="BTC")
    p.add_argument("--tick", type=float, default=0.1)
    p.add_argument("--size", type=float, default=0.0002)
    p.add_argument("--http-port", type=int, default=0)
    p.add_argument("--coalesce", action="store_true", help="publish only the last intent of each batch")
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
