"""``lighter-stack record`` and ``lighter-stack replay``: archive a namespace's streams to Parquet,
and publish a recording or an archive into a new namespace.

``record`` copies, once, what Redis holds now of every archived stream of a namespace
(:data:`shared.archive.KEY_PATTERNS`: ``md:*``, ``intent:*``, ``exec:*``, ``control``,
``params:*``, ``dlq``) into an archive folder (:mod:`shared.archive`), starting after the newest
entry already archived per stream, so running it again only adds what is new (and a re-written
entry is dropped by its id). The recorder service (``services/recorder``) does the same
continuously.

``replay`` publishes the events of a source into a namespace that has no stream yet
(``replay-<8 hex>`` by default), in bus order, at ``speed`` x the recorded pace (``0`` = as fast
as possible), with a progress bar on a terminal:

- a **recording** (``*.jsonl.gz``, :mod:`shared.recording`): each event to its market-data stream
  (``bbo``/``book_snapshot``/``book_delta`` -> ``md:book:<SYM>``, ``trade`` -> ``md:trade:<SYM>``,
  ``market_stats`` -> ``md:stats:<SYM>``), paced by ``ts_event``;
- an **archive**: each entry to the same stream key in the new namespace, its ``event`` field
  byte for byte (dead letters with their fields), paced by the Redis entry time; ``only``
  restricts the stream keys (``md`` = market data only, so the strategies of the new namespace
  make their own intents).

``replay --to-recording`` instead writes the archive's market data (``Bbo``/``Trade``, sorted by
``ts_event``) as a recording venue-sim replays (``services.venue_sim.recording``).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.archive import (
    ArchiveError,
    count_rows,
    is_archive,
    iter_rows,
    key_matcher,
    last_entry_id,
    read_after,
    stream_key,
    stream_names,
    write_meta,
    write_rows,
)
from shared.bus import EVENT_FIELD, Streams
from shared.events import Bbo, BookDelta, BookSnapshot, MarketStats, Trade, encode
from shared.markets import KNOWN_MARKETS, MarketInfo
from shared.recording import RecordingError, RecordingHeader, read_recording, write_recording

WRITE_BATCH = 100_000  # rows buffered per stream before merging them into the hour files


@dataclass(frozen=True, slots=True)
class Item:
    """One entry to publish: stream ``key`` (no namespace), Redis ``fields``, pace time ``t_ns``."""

    key: str
    fields: dict[bytes, bytes]
    t_ns: int


# ------------------------------------------------------------------------------------ record


async def record_once(redis: Any, namespace: str, out: str | Path, markets: Sequence[MarketInfo] = (),
                      read_batch: int = 10_000) -> dict[str, int]:
    """Archive what ``redis`` holds of ``namespace`` into ``out``.

    Returns:
        ``{stream: new rows written}`` for every archived stream of the namespace.

    Raises:
        ArchiveError: ``out`` is an archive of another namespace.
    """
    write_meta(out, namespace, markets)
    written: dict[str, int] = {}
    for stream in await stream_names(redis, namespace):
        key = stream_key(namespace, stream)
        after = last_entry_id(out, key)
        buf = []
        n = 0
        while True:
            rows = await read_after(redis, namespace, stream, after, read_batch)
            if not rows:
                break
            buf.extend(rows)
            after = rows[-1].entry_id
            if len(buf) >= WRITE_BATCH:
                n += write_rows(out, buf)
                buf = []
        if buf:
            n += write_rows(out, buf)
        written[stream] = n
    return written


def known_markets(symbols: Sequence[str]) -> list[MarketInfo]:
    """The :data:`shared.markets.KNOWN_MARKETS` entries of ``symbols`` (unknown ones are left out:
    readers infer them from the prices)."""
    return [KNOWN_MARKETS[s] for s in symbols if s in KNOWN_MARKETS]


def record_command(namespace: str | None, out: Path, config: Path | None) -> int:
    """``lighter-stack record``: exit 0 after archiving, 2 on bad config, Redis or archive."""
    import typer

    from lighter_stack.registry import config_sections
    from shared.config import ConfigError, load_config
    from shared.redis_util import async_client, resolve_redis_url

    try:
        cfg = load_config(config, sections=config_sections())
        ns = namespace or cfg.ns
        Streams(ns)
        url = resolve_redis_url(cfg.redis_url)
    except (ConfigError, ValueError) as exc:
        typer.echo(f"record failed: {exc}", err=True)
        return 2

    async def go() -> dict[str, int]:
        redis = async_client(url)
        try:
            return await record_once(redis, ns, out, known_markets(cfg.markets))
        finally:
            await redis.aclose()

    from redis.exceptions import RedisError

    try:
        written = asyncio.run(go())
    except (ArchiveError, OSError, RedisError) as exc:
        typer.echo(f"record failed: {exc}", err=True)
        return 2
    for stream, n in written.items():
        typer.echo(f"{stream}: {n} new entries")
    typer.echo(f"archived namespace {ns} into {out}: {sum(written.values())} new entries in {len(written)} streams")
    return 0


# ------------------------------------------------------------------------------------ replay


def recording_key(event: Any) -> str | None:
    """Stream key of a recording's market-data event (module docstring), None for other types."""
    if isinstance(event, Bbo | BookSnapshot | BookDelta):
        return f"md:book:{event.market}"
    if isinstance(event, Trade):
        return f"md:trade:{event.market}"
    if isinstance(event, MarketStats):
        return f"md:stats:{event.market}"
    return None


def recording_items(path: str | Path) -> Iterator[Item]:
    """The events of a recording as :class:`Item` (paced by ``ts_event``). Raises RecordingError."""
    _header, events = read_recording(path)
    for ev in events:
        key = recording_key(ev)
        if key is not None:
            yield Item(key, {EVENT_FIELD: encode(ev)}, ev.ts_event)


def archive_items(root: str | Path, only: Sequence[str] | None = None, start_ms: int | None = None,
                  end_ms: int | None = None) -> Iterator[Item]:
    """The entries of an archive as :class:`Item` (paced by entry time), in bus order; ``only``:
    stream key prefixes (:func:`shared.archive.key_matcher`); ``start_ms``/``end_ms``: entry-time range."""
    import json

    for r in iter_rows(root, key_matcher(only), start_ms, end_ms):
        if r.error == "no event field":
            fields = {k.encode(): str(v).encode() for k, v in json.loads(r.fields).items()}
            fields[b"raw"] = r.raw
        else:
            fields = {EVENT_FIELD: r.raw}
        yield Item(r.key, fields, r.entry_ms * 1_000_000)


async def publish_items(redis: Any, namespace: str, items: Iterator[Item], speed: float = 0.0,
                        maxlen: int | None = None, batch: int = 500,
                        on_progress: Callable[[int], None] | None = None,
                        clock: Callable[[], float] = time.monotonic) -> int:
    """Publish ``items`` to ``namespace`` in order; returns how many were published.

    Args:
        speed: ``speed`` recorded seconds per wall second (``t_ns`` of the items); ``<= 0`` = as
            fast as Redis takes them (pipelines of ``batch`` entries).
        maxlen: approximate stream length cap (``XADD MAXLEN ~``), None = no trimming.
        on_progress: called with the count published so far after each pipeline.
    """
    n = 0
    pipe = redis.pipeline(transaction=False)
    pending = 0
    t_first: int | None = None
    w0 = clock()
    for it in items:
        if speed > 0:
            if t_first is None:
                t_first = it.t_ns
            wait = w0 + (it.t_ns - t_first) / 1e9 / speed - clock()
            if wait > 0:
                if pending:
                    await pipe.execute()
                    pending = 0
                    if on_progress:
                        on_progress(n)
                await asyncio.sleep(wait)
        stream = f"{namespace}:{it.key}"
        if maxlen:
            pipe.xadd(stream, it.fields, maxlen=maxlen, approximate=True)
        else:
            pipe.xadd(stream, it.fields)
        pending += 1
        n += 1
        if pending >= batch:
            await pipe.execute()
            pending = 0
            if on_progress:
                on_progress(n)
    if pending:
        await pipe.execute()
    if on_progress:
        on_progress(n)
    return n


def new_namespace() -> str:
    """A fresh replay namespace: ``replay-<8 hex>``."""
    return f"replay-{uuid.uuid4().hex[:8]}"


async def namespace_empty(redis: Any, namespace: str) -> bool:
    """True when no key of ``namespace`` exists on ``redis``."""
    async for _ in redis.scan_iter(match=f"{namespace}:*", count=1000):
        return False
    return True


def parse_time_ms(text: str | None) -> int | None:
    """``2026-12-05`` or ``2026-12-05T14:00`` (UTC unless an offset is given) -> ms since the
    epoch; None for None. Raises ValueError on another shape."""
    from datetime import UTC, datetime

    if text is None:
        return None
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


def archive_to_recording(root: str | Path, out: str | Path, start_ms: int | None = None,
                         end_ms: int | None = None) -> int:
    """Write the archive's market data (entries in ``[start_ms, end_ms)``) as a recording (module
    docstring); returns the event count.

    Raises:
        lighter_stack.backtest.data.DataError: not an archive, or no market data in it.
    """
    from lighter_stack.backtest.data import load_archive

    md = load_archive(root, start_ms=start_ms, end_ms=end_ms)
    header = RecordingHeader(markets=md.markets, source=f"lighter-stack archive {Path(root).name}",
                             depth="top", notes="; ".join(md.notes)[:500])
    return write_recording(out, header, md.events())


def replay_command(source: Path, namespace: str | None, speed: float, only: list[str] | None,
                   to_recording: Path | None, config: Path | None, progress: bool = True,
                   start: str | None = None, end: str | None = None) -> int:
    """``lighter-stack replay``: exit 0 done, 2 bad source, time, namespace in use, config or Redis.
    ``start``/``end``: archive entry-time range (:func:`parse_time_ms`)."""
    import typer
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from lighter_stack.backtest.data import DataError
    from lighter_stack.registry import config_sections
    from shared.config import ConfigError, load_config
    from shared.redis_util import async_client, resolve_redis_url

    def fail(msg: str) -> int:
        typer.echo(f"replay failed: {msg}", err=True)
        return 2

    try:
        start_ms, end_ms = parse_time_ms(start), parse_time_ms(end)
    except ValueError as exc:
        return fail(f"--start/--end: {exc} (want YYYY-MM-DD or YYYY-MM-DDTHH:MM, UTC)")
    archive = source.is_dir()
    if not archive and (start_ms is not None or end_ms is not None):
        return fail("--start/--end select hours of a Parquet archive, not of a recording")
    if archive and not is_archive(source):
        return fail(f"{source}: folder has no archive.json (not a Parquet archive)")
    if to_recording is not None:
        if not archive:
            return fail("--to-recording needs a Parquet archive folder")
        try:
            n = archive_to_recording(source, to_recording, start_ms, end_ms)
        except (DataError, ArchiveError, OSError) as exc:
            return fail(str(exc))
        typer.echo(f"wrote {to_recording}: {n} market-data events (venue-sim: services.venue_sim.recording)")
        return 0
    if not archive and not source.is_file():
        return fail(f"{source}: no such recording or archive")
    try:
        cfg = load_config(config, sections=config_sections())
        ns = namespace or new_namespace()
        Streams(ns)
        url = resolve_redis_url(cfg.redis_url)
    except (ConfigError, ValueError) as exc:
        return fail(str(exc))

    async def go() -> int:
        redis = async_client(url)
        try:
            if not await namespace_empty(redis, ns):
                raise ArchiveError(f"namespace {ns!r} already has keys; replay into a new one")
            if archive:
                ranged = start_ms is not None or end_ms is not None
                total: int | None = None if ranged else count_rows(source, key_matcher(only))
                items = archive_items(source, only, start_ms, end_ms)
            else:
                from services.venue_sim.replay import count_events

                total = count_events(source)
                items = recording_items(source)
            show = progress and typer.get_text_stream("stdout").isatty()
            with Progress(TextColumn(f"replay -> {ns}"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), disable=not show) as bar:
                task = bar.add_task("replay", total=total)
                return await publish_items(redis, ns, items, speed, cfg.stream_maxlen,
                                           on_progress=lambda k: bar.update(task, completed=k))
        finally:
            await redis.aclose()

    from redis.exceptions import RedisError

    try:
        n = asyncio.run(go())
    except (ArchiveError, RecordingError, OSError, RedisError) as exc:
        return fail(str(exc))
    typer.echo(f"replayed {n} entries from {source} into namespace {ns}")
    return 0
