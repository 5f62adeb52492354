"""``lighter-stack run recorder``: follow a namespace's streams and archive them to Parquet.

Start-up: read the ``services.recorder`` section, write ``archive.json`` in the archive folder
(refused when it holds another namespace's archive), serve ``/health`` and ``/metrics`` on
``http_port``. Then, until SIGTERM/SIGINT:

- every ``discover_s`` the namespace is scanned for archived streams
  (:func:`shared.archive.stream_names`); a new one is followed from after the newest entry already
  in the archive (so a restart goes on where the files end: at-least-once, and the archive drops
  re-read entries by id);
- ``XREAD`` (no consumer group: the recorder never changes what other services see) of up to
  ``read_batch`` entries per stream after each stream's position, waiting up to ``block_ms``;
- rows are written per hour as hours close, and all buffered rows every ``flush_s`` and at stop
  (:class:`services.recorder.engine.RecorderBuffer`).

Streams are trimmed by length (``stream_maxlen``): when a stream's oldest entry is newer than the
recorder's position, trimming reached entries not yet read (those before the oldest are lost);
this is logged and counted in
``lighter_stack_recorder_trim_gaps_total``. How far behind it is:
``lighter_stack_recorder_behind_seconds`` (newest entry of the stream minus newest read) and
``lighter_stack_recorder_buffered_entries`` (read, not yet written).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import Counter, Gauge

from shared.archive import (
    ArchiveError,
    last_entry_id,
    make_row,
    split_id,
    stream_key,
    stream_names,
    write_meta,
    write_rows,
)
from shared.config import StackConfig
from shared.markets import KNOWN_MARKETS
from shared.metrics import PREFIX, start_http
from shared.outage import BUS_DOWN_ERRORS, BusLink
from shared.redis_util import async_client, resolve_redis_url
from shared.service import install_stop_handlers, setup_logging

from .config import RecorderConfig
from .engine import RecorderBuffer

log = logging.getLogger(__name__)
SERVICE = "recorder"

ARCHIVED = Counter(f"{PREFIX}recorder_entries_total", "Stream entries newly written to the archive.", ["stream"])
BEHIND = Gauge(f"{PREFIX}recorder_behind_seconds",
               "Newest entry time of the stream minus newest entry time the recorder read (s).", ["stream"])
BUFFERED = Gauge(f"{PREFIX}recorder_buffered_entries", "Entries read and not yet written.", ["stream"])
TRIM_GAPS = Counter(f"{PREFIX}recorder_trim_gaps_total",
                    "Times a stream was trimmed past the recorder's read position (entries may be lost).",
                    ["stream"])
WRITE_ERRORS = Counter(f"{PREFIX}recorder_write_errors_total", "Failed archive writes (retried).")
LAST_WRITE = Gauge(f"{PREFIX}recorder_last_write_timestamp_seconds", "Wall time of the last archive write.")


def _sid(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class Recorder:
    """The running service.

    Args:
        cfg: the stack configuration (namespace, markets).
        rcfg: the recorder section.
        redis: a ``redis.asyncio`` client (bytes responses).
        clock: wall clock in seconds (tests may inject one); hours close on it.
    """

    def __init__(self, cfg: StackConfig, rcfg: RecorderConfig, redis: Any, clock: Any = time.time) -> None:
        self.cfg = cfg
        self.rcfg = rcfg
        self.redis = redis
        self.ns = cfg.ns
        self.out = rcfg.out_dir()
        self.buf = RecorderBuffer()
        self.clock = clock
        self.started = time.monotonic()
        self.written = 0
        self.behind: dict[str, float] = {}
        self.write_failed = False
        self._last_discover = 0.0
        self._last_flush = time.monotonic()
        self._gaps: dict[str, Any] = {}
        self.link = BusLink(SERVICE)

    def health(self) -> dict[str, Any]:
        """Body of ``GET /health``: ``ok``, ``behind`` (a stream more than ``behind_warn_s``
        behind), ``write_failed`` (the last write failed) or ``degraded`` (Redis unreachable); all
        but ``ok`` answer 503."""
        worst = max(self.behind.values(), default=0.0)
        status = "write_failed" if self.write_failed else "behind" if worst > self.rcfg.behind_warn_s else "ok"
        return self.link.health({"status": status, "service": SERVICE, "namespace": self.ns, "out": str(self.out),
                                 "streams": len(self.buf.positions), "written": self.written,
                                 "buffered": sum(self.buf.pending().values()), "behind_max_s": round(worst, 3),
                                 "uptime_s": round(time.monotonic() - self.started, 1)})

    async def discover(self) -> None:
        """Follow the namespace's archived streams not yet followed (from the archive's end)."""
        for stream in await stream_names(self.redis, self.ns):
            if stream not in self.buf.positions:
                after = await asyncio.to_thread(last_entry_id, self.out, stream_key(self.ns, stream))
                self.buf.follow(stream, after)
                log.info("recorder: following %s after %s", stream, after or "the start")

    async def read(self) -> int:
        """One ``XREAD`` over every followed stream; returns the rows buffered."""
        if not self.buf.positions:
            await asyncio.sleep(self.rcfg.block_ms / 1000)
            return 0
        ids = {s: (p or "0-0") for s, p in self.buf.positions.items()}
        resp = await self.redis.xread(ids, count=self.rcfg.read_batch, block=self.rcfg.block_ms)
        n = 0
        for stream, entries in resp or []:
            name = _sid(stream)
            key = stream_key(self.ns, name)
            n += self.buf.add(name, [make_row(name, key, eid, fields) for eid, fields in entries])
        return n

    async def flush(self, everything: bool) -> int:
        """Write the rows that are due (:meth:`RecorderBuffer.take`); on failure they go back
        to the buffer and are retried. Returns the rows new to the archive."""
        rows = self.buf.take(int(self.clock() * 1000), everything)
        if not rows:
            return 0
        try:
            new = await asyncio.to_thread(write_rows, self.out, rows)
        except (OSError, ArchiveError) as exc:
            WRITE_ERRORS.inc()
            self.write_failed = True
            log.error("recorder: writing %d rows to %s failed (retried): %s", len(rows), self.out, exc)
            self.buf.put_back(rows)
            return 0
        self.write_failed = False
        per: dict[str, int] = {}
        for r in rows:
            per[r.stream] = per.get(r.stream, 0) + 1
        for s, k in per.items():
            ARCHIVED.labels(s).inc(k)
        self.written += new
        LAST_WRITE.set(time.time())
        return new

    async def probe(self) -> None:
        """Update the lag metrics, and count a trim gap when the stream's oldest entry is newer than
        its read position: trimming reached entries not yet read, the ones between the position
        and the oldest entry (if any) are missing from the archive. Each position counts once."""
        pending = self.buf.pending()
        for stream, pos in list(self.buf.positions.items()):
            BUFFERED.labels(stream).set(pending.get(stream, 0))
            info = {_sid(k): v for k, v in (await self.redis.xinfo_stream(stream)).items()}
            last, first = info.get("last-generated-id"), info.get("first-entry")
            read_ms = self.buf.newest_ms.get(stream)
            if read_ms is None:  # nothing read yet: behind by the whole stream
                read_ms = split_id(_sid(first[0]))[0] if first else None
            if last and read_ms is not None and info.get("length"):
                self.behind[stream] = max(0.0, (split_id(_sid(last))[0] - read_ms) / 1000.0)
            else:
                self.behind[stream] = 0.0
            BEHIND.labels(stream).set(self.behind[stream])
            oldest = _sid(first[0]) if first else None
            if pos and oldest and split_id(oldest) > split_id(pos) and self._gaps.get(stream) != pos:
                self._gaps[stream] = pos
                TRIM_GAPS.labels(stream).inc()
                log.warning("recorder: %s was trimmed past the read position %s (oldest entry now %s): entries "
                            "may be lost; raise stream_maxlen or check the recorder's lag", stream, pos, oldest)

    async def run(self, stop: asyncio.Event) -> None:
        """Discover, read, flush and probe until ``stop`` is set; then write everything buffered.
        A Redis outage is waited out with backoff (``/health`` degraded; what is buffered is still
        written as hours close); reading goes on from each stream's position (with the data gone,
        the new entries have later ids and are read from the stream's start)."""
        last_probe = 0.0
        try:
            while not stop.is_set():
                now = time.monotonic()
                try:
                    if now - self._last_discover >= self.rcfg.discover_s:
                        await self.discover()
                        self._last_discover = now
                    await self.read()
                    self.link.recovered()
                except BUS_DOWN_ERRORS as exc:
                    await self.link.pause(exc, "read", stop)
                everything = now - self._last_flush >= self.rcfg.flush_s
                if everything:
                    self._last_flush = now
                await self.flush(everything)
                if now - last_probe >= 5.0:
                    last_probe = now
                    try:
                        await self.probe()
                    except Exception:  # metrics must never stop the service
                        log.debug("recorder probe failed", exc_info=True)
        finally:
            await self.flush(everything=True)


async def run_recorder(cfg: StackConfig, rcfg: RecorderConfig, redis_url: str,
                       stop: asyncio.Event | None = None) -> Recorder:
    """Run the recorder until ``stop`` is set (or SIGTERM/SIGINT when ``stop`` is ``None``).

    Returns:
        the recorder (its counters), after the final write.

    Raises:
        ArchiveError: the archive folder holds another namespace's archive.
    """
    if stop is None:
        stop = asyncio.Event()
        install_stop_handlers(stop.set)
    out = rcfg.out_dir()
    write_meta(out, cfg.ns, [KNOWN_MARKETS[s] for s in cfg.markets if s in KNOWN_MARKETS])
    redis = async_client(redis_url)
    rec = Recorder(cfg, rcfg, redis)
    http = await start_http(rcfg.http_port, rec.health)
    log.info("recorder: namespace %s -> %s", cfg.ns, out)
    try:
        await rec.run(stop)
        return rec
    finally:
        await http.cleanup()
        await redis.aclose()
        log.info("recorder stopped: %d entries written", rec.written)


def main(cfg: StackConfig) -> int:
    """Entry point of ``lighter-stack run recorder``: runs until SIGTERM/SIGINT.

    Returns:
        0 on a clean stop; 2 when the archive folder belongs to another namespace.

    Raises:
        shared.config.ConfigError: an invalid ``services.recorder`` section.
    """
    setup_logging()
    rcfg = cfg.section(SERVICE, RecorderConfig)
    try:
        asyncio.run(run_recorder(cfg, rcfg, resolve_redis_url(cfg.redis_url)))
    except ArchiveError as exc:
        log.error("%s", exc)
        return 2
    return 0
