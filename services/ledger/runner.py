"""The ledger service: exec-stream fills -> SQL database (fills, FIFO closed trades).

Loop (the shared :class:`~shared.service.ConsumerLoop`, this service as its handler): fetch a
batch from ``{ns}:exec:{account}`` (group ``ledger``) -> validate the fills and drop the fill
ids already seen in memory -> one DB transaction (insert new fills and their closed
trades; fill ids already in the DB are skipped) -> ``consumer.commit`` (dead letters + XACK).
An entry is acknowledged only after the DB commit, so a crash between the two redelivers it and
the fill-id unique constraint makes the second write a no-op. Other exec event types are acknowledged
and ignored; undecodable entries, invalid fills and the inputs the screening refuses
(:mod:`shared.screening`: an event type that does not belong on the exec stream, nonsense
numbers) go to ``{ns}:dlq`` with the reason.

When the DB write fails, the batch is retried (after rebuilding the FIFO state from the DB) with
backoff until it succeeds or the service stops; unacknowledged entries are re-read on restart.
A Redis outage is waited out by the loop (``/health`` says ``degraded``); a batch written to the
DB whose acknowledgement was lost is settled by the loop (``ConsumerLoop``: committed once), and
a redelivered fill is a no-op in the DB anyway.

Test hook: ``LEDGER_TEST_PAUSE_BEFORE_ACK_S`` (seconds) makes the service sleep after the DB
commit and before the acknowledgement, to let a test kill it in that window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from services.ledger.config import LedgerConfig
from services.ledger.engine import LedgerEngine
from services.ledger.store import LedgerStore
from shared.bus import Bus, Consumer, Delivery
from shared.config import ScreeningConfig, StackConfig
from shared.events import Event, Fill
from shared.metrics import DUPLICATES, PREFIX, PROCESSING_SECONDS, start_http
from shared.outage import BUS_DOWN_ERRORS
from shared.redis_util import async_client, resolve_redis_url
from shared.screening import Screener
from shared.service import (
    BatchHandler,
    ConsumerLoop,
    SeenIds,
    consumer_name,
    install_stop_handlers,
    setup_logging,
)

log = logging.getLogger(__name__)

SERVICE = "ledger"
PAUSE_ENV = "LEDGER_TEST_PAUSE_BEFORE_ACK_S"

FILLS_RECORDED = Counter(f"{PREFIX}ledger_fills_total", "Fills written to the ledger database.",
                         ["strategy", "market", "liquidity"])
CLOSED_TRADES = Counter(f"{PREFIX}ledger_closed_trades_total", "FIFO lots closed (closed-trade rows written).",
                        ["strategy", "market"])
REALIZED_PNL = Gauge(f"{PREFIX}ledger_realized_pnl_usd", "Realized FIFO PnL net of fees in USD, per strategy.",
                     ["strategy"])
OPEN_LOTS = Gauge(f"{PREFIX}ledger_open_lots", "Open FIFO lots over all strategies and markets.")
DB_WRITE_SECONDS = Histogram(f"{PREFIX}ledger_db_write_seconds", "Wall time of one ledger DB transaction.",
                             buckets=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0))
DB_ERRORS = Counter(f"{PREFIX}ledger_db_errors_total", "Failed ledger DB transactions (retried).")


class LedgerService(BatchHandler):
    """The ledger's runner: a :class:`~shared.service.ConsumerLoop` on the exec stream feeding
    :class:`LedgerStore`. As its :class:`~shared.service.BatchHandler`: dedup by fill id (other
    event types are acknowledged unhandled), invalid fills dead-lettered (``invalid fill: ...``),
    the batch's fills written in one DB transaction before the acknowledgement. Every input is
    screened first (:class:`~shared.screening.Screener`): other event types than the exec
    stream's and nonsense numbers are dead-lettered too.

    Args:
        bus: the bus of the run's namespace.
        store: the ledger database.
        account: account index whose exec stream is consumed.
        cfg: the ledger section.
        consumer: consumer name inside the group (default ``ledger@host:pid``).
        pause_before_ack_s: test hook, see the module docstring.
        screening: the input screening's thresholds (``StackConfig.screening``; default ones).
    """

    def __init__(self, bus: Bus, store: LedgerStore, account: int | str, cfg: LedgerConfig | None = None,
                 consumer: str | None = None, pause_before_ack_s: float = 0.0,
                 screening: ScreeningConfig | None = None) -> None:
        self.cfg = cfg or LedgerConfig()
        self.bus = bus
        self.store = store
        self.stream = bus.streams.exec(account)
        self.consumer = Consumer(bus, [self.stream], self.cfg.group, consumer or consumer_name(SERVICE),
                                 claim_idle_ms=self.cfg.claim_idle_ms, batch=self.cfg.batch,
                                 block_ms=self.cfg.block_ms)
        self.pause_before_ack_s = pause_before_ack_s
        self.screener = Screener(bus.streams.ns, screening)
        self.seen = SeenIds(self.cfg.seen_capacity)
        self.loop = ConsumerLoop(SERVICE, self.consumer, self, self.seen)
        self.engine = LedgerEngine()
        self.fills_recorded = 0
        self.db_duplicates = 0
        self.last_fill_ts = 0
        self.started_at = time.time()
        self._stop = asyncio.Event()

    @property
    def duplicates(self) -> int:
        """Fills dropped as already recorded: seen in memory, or already in the DB."""
        return self.loop.duplicates + self.db_duplicates

    @property
    def dead_letters(self) -> int:
        """Entries sent to the DLQ (undecodable entries, invalid fills)."""
        return self.loop.dead_letters

    def health(self) -> dict[str, Any]:
        """Body of ``GET /health``."""
        return self.loop.link.health({
            "status": "ok", "service": SERVICE, "stream": self.stream, "group": self.cfg.group,
            "db": self.store.safe_url, "schema_version": self.store.schema_version,
            "fills_recorded": self.fills_recorded, "duplicates": self.duplicates,
            "dead_letters": self.dead_letters, "open_lots": self.engine.lot_count(),
            "last_fill_ts_event": self.last_fill_ts, "uptime_s": round(time.time() - self.started_at, 1)})

    def stop(self) -> None:
        """Finish after the current batch (a batch not yet committed stays pending)."""
        self._stop.set()

    async def load(self) -> None:
        """Create the consumer group (waiting for Redis while it is unreachable) and rebuild the
        FIFO state and metrics from the DB."""
        await self.loop.link.retry(self.consumer.start, "create the consumer group", self._stop)
        self.engine = await asyncio.to_thread(self.store.rebuild_engine)
        for strategy, pnl in (await asyncio.to_thread(self.store.realized_pnl_by_strategy)).items():
            REALIZED_PNL.labels(strategy).set(pnl)
        OPEN_LOTS.set(self.engine.lot_count())

    def dedup_key(self, event: Event) -> str | None:
        """Fills are deduplicated by ``fill_id``; other events are acknowledged and ignored."""
        return event.fill_id if isinstance(event, Fill) else None

    def reject_reason(self, event: Event, stream: str) -> str | None:
        """The screening's reason (:class:`~shared.screening.Screener`): ``invalid fill: <why>``
        for a fill that fails :func:`validate_fill`, ``wrong-stream: ...`` for an event type that
        does not belong on the exec stream, ``bad-size: ...`` and the others of
        :mod:`shared.screening` for nonsense numbers."""
        return self.screener.reason(event, stream)

    def select(self, batch: Sequence[Delivery]) -> list[Fill]:
        """The fills of ``batch`` to write (the loop's screening: invalid fills get ``error``
        set so ``commit`` dead-letters them, fill ids seen before are dropped)."""
        return [d.event for d in self.loop.screen(batch) if isinstance(d.event, Fill)]

    async def on_batch(self, deliveries: list[Delivery]) -> list[tuple[str, Event]] | None:
        """Write the batch's fills in one DB transaction; ``None`` (commit nothing) if the service
        stopped before the write succeeded. Nothing is published."""
        fills = [d.event for d in deliveries if isinstance(d.event, Fill)]
        if fills and not await self.write(fills):
            return None
        if self.pause_before_ack_s:
            log.warning("test hook: sleeping %.1fs before acknowledging %d entries", self.pause_before_ack_s,
                        len(deliveries))
            await asyncio.sleep(self.pause_before_ack_s)
        return []

    async def write(self, fills: list[Fill]) -> bool:
        """Write ``fills`` in one DB transaction, retrying with backoff (and a state rebuild)
        on DB errors. Returns False if the service was stopped before it succeeded."""
        delay = 0.2
        while True:
            t0 = time.perf_counter()
            try:
                res = await asyncio.to_thread(self.store.record, self.engine, fills)
            except Exception:
                DB_ERRORS.inc()
                log.exception("ledger DB write failed; retrying in %.1fs", delay)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
                if self._stop.is_set():
                    return False
                delay = min(delay * 2, 10.0)
                with contextlib.suppress(Exception):
                    self.engine = await asyncio.to_thread(self.store.rebuild_engine)
                continue
            elapsed = time.perf_counter() - t0
            DB_WRITE_SECONDS.observe(elapsed)
            for _ in fills:  # one DB transaction per batch: each fill's share of it
                PROCESSING_SECONDS.labels(SERVICE).observe(elapsed / len(fills))
            break
        self.db_duplicates += len(res.duplicates)
        if res.duplicates:
            DUPLICATES.labels(SERVICE, self.stream).inc(len(res.duplicates))
        for f in res.inserted:
            FILLS_RECORDED.labels(f.strategy, f.market, f.liquidity).inc()
            self.last_fill_ts = max(self.last_fill_ts, f.ts_event)
        for c in res.closed:
            CLOSED_TRADES.labels(c.strategy, c.market).inc()
            REALIZED_PNL.labels(c.strategy).inc(c.pnl_usd)
        self.fills_recorded += len(res.inserted)
        OPEN_LOTS.set(self.engine.lot_count())
        return True

    async def handle(self, batch: list[Delivery]) -> bool:
        """Process one fetched batch (:meth:`ConsumerLoop.step`): DB transaction, then dead
        letters + acknowledgement. Returns False (nothing acknowledged) if the service stopped first."""
        return await self.loop.step(batch)

    async def run(self, http_port: int | None = None) -> None:
        """Consume until :meth:`stop`; serves ``/health`` and ``/metrics`` on ``http_port``
        (default: the config's; 0 = none)."""
        try:
            await self.load()
        except BUS_DOWN_ERRORS:
            return  # stopped before Redis answered
        http = await start_http(self.cfg.http_port if http_port is None else http_port, self.health)
        log.info("ledger consuming %s (group %s) into %s", self.stream, self.cfg.group, self.store.safe_url)
        try:
            await self.loop.run(self._stop)
        finally:
            await http.cleanup()


async def run_ledger(cfg: StackConfig, lcfg: LedgerConfig, redis_url: str, consumer: str | None = None,
                     pause_before_ack_s: float = 0.0) -> int:
    """Run the ledger until SIGTERM/SIGINT. Returns the exit code."""
    redis = async_client(redis_url)
    store = await asyncio.to_thread(LedgerStore, lcfg.resolved_db_url())
    svc = LedgerService(Bus(redis, cfg.ns, maxlen=cfg.stream_maxlen), store, cfg.account_index, lcfg,
                        consumer=consumer, pause_before_ack_s=pause_before_ack_s, screening=cfg.screening)
    install_stop_handlers(svc.stop)
    try:
        await svc.run()
    finally:
        store.close()
        await redis.aclose()
    log.info("ledger stopped after %d fills", svc.fills_recorded)
    return 0


def main(cfg: StackConfig) -> int:
    """Entry point of ``lighter-stack run ledger``: runs until SIGTERM/SIGINT.

    Returns:
        0 on a clean stop, 2 when no Redis URL is configured (``REDIS_URL`` or ``redis_url``).

    Raises:
        shared.config.ConfigError: an invalid ``services.ledger`` section.
    """
    setup_logging()
    lcfg = cfg.section(SERVICE, LedgerConfig)
    url = resolve_redis_url(cfg.redis_url)
    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
    return asyncio.run(run_ledger(cfg, lcfg, url, pause_before_ack_s=pause))
