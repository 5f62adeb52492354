"""``lighter-stack run copytrade``: the copy-trade API (uvicorn) publishing intents on the bus.

Start-up: validate the ``copytrade`` section, connect to Redis, restore the copytrade positions
from the intent streams (the last ``copytrade`` target per market, so a restart does not forget
what it holds), take over the requests accepted but not processed before the restart (the
request journal ``{ns}:copytrade:requests``, :mod:`services.copytrade.journal`), then serve the
API on ``http_port`` until SIGTERM/SIGINT.
"""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from services.copytrade.app import build_app
from services.copytrade.config import CopytradeConfig
from services.copytrade.journal import RequestJournal
from services.copytrade.service import CopyTrader, Holding
from services.copytrade.venue import RestVenue
from shared.bus import Bus
from shared.config import StackConfig
from shared.events import Event, TargetPosition
from shared.outage import BusLink
from shared.redis_util import async_client, resolve_redis_url
from shared.screening import Screener
from shared.service import setup_logging

log = logging.getLogger(__name__)

SERVICE = "copytrade"


async def restore(bus: Bus, trader: CopyTrader) -> int:
    """Set each account's copytrade holdings from the last ``copytrade`` target per market in
    its intent stream (the whole stream as Redis holds it), then, when the trader has a
    journal, re-queue the requests accepted but not processed (:meth:`CopyTrader.resume`; those
    whose target is on the stream already are not traded again). Returns how many markets were
    restored. The entry price is the intent's reference price (an estimate, used only to place
    the stop-loss). A target the screening refuses (:class:`~shared.screening.Screener`, e.g.
    a size beyond the market's largest order written into the stream) is skipped and logged."""
    n = 0
    published: set[str] = set()
    screener = Screener(bus.streams.ns)
    for account in trader.accounts:
        stream = bus.streams.intent(account)
        for d in await bus.read_all(stream):
            ev = d.event
            if isinstance(ev, TargetPosition) and ev.strategy == trader.cfg.strategy and screener.passes(ev, stream):
                trader.holdings[(account, ev.market)] = Holding(target=ev.target, entry=ev.reference_price)
                published.add(ev.id)
                n += 1
    if trader.journal is not None:
        requeued = await trader.resume(await trader.journal.load(), published)
        if requeued:
            log.warning("copytrade: %d request(s) accepted before the restart queued again", requeued)
    return n


async def serve(cfg: StackConfig, ccfg: CopytradeConfig, redis_url: str) -> int:
    """Run the API until stopped. Returns 0."""
    redis = async_client(redis_url)
    bus = Bus(redis, cfg.ns, maxlen=cfg.stream_maxlen)
    venue = RestVenue(cfg.venue.rest_url, ccfg.rest_timeout_s)

    link = BusLink(SERVICE)

    async def publish(account: int, ev: Event) -> None:
        """Publish one intent; while Redis is unreachable retry with backoff (the account's queue
        waits), checking first whether a publish whose answer was lost went out."""
        stream = bus.streams.intent(account)
        doubt = False

        async def once() -> None:
            nonlocal doubt
            if doubt and ev.id in await bus.tail_ids(stream, 1000):
                return
            doubt = True
            await bus.publish(stream, [ev])

        await link.retry(once, f"publish intent {ev.id}")

    trader = CopyTrader(ccfg, list(ccfg.accounts or [cfg.account_index]), venue, publish,
                        journal=RequestJournal(bus))
    restored = await restore(bus, trader)
    key = ccfg.api_key()
    if key is None:
        log.warning("no API key in %s: every request is allowed", ccfg.api_key_env)
    log.info("copytrade: accounts %s, %d positions restored, API on %s:%d", trader.accounts, restored,
             ccfg.host, ccfg.http_port)
    app = build_app(trader, key)
    server = uvicorn.Server(uvicorn.Config(app, host=ccfg.host, port=ccfg.http_port, log_level="warning",
                                           access_log=False, lifespan="off"))
    try:
        await server.serve()
    finally:
        await trader.stop()
        await venue.close()
        await redis.aclose()
    return 0


def main(cfg: StackConfig) -> int:
    """Entry point of ``lighter-stack run copytrade``: serves until SIGTERM/SIGINT.

    Raises:
        shared.config.ConfigError: an invalid ``services.copytrade`` section.
    """
    setup_logging()
    ccfg = cfg.section(SERVICE, CopytradeConfig)
    return asyncio.run(serve(cfg, ccfg, resolve_redis_url(cfg.redis_url)))
