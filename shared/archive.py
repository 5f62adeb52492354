"""Parquet archives of a namespace's streams: the format the recorder writes and the tools read.

An archive is a folder:

- ``archive.json``: ``{"format": "lighter-stack-archive", "version": 1, "namespace": "paper",
  "markets": [...]}`` (:class:`ArchiveMeta`; ``markets`` are :class:`shared.markets.MarketInfo`
  objects when the writer knew them, else empty and readers infer them from the prices);
- one Parquet file per stream and UTC hour of the Redis entry time:
  ``<root>/<stream key>/<YYYY-MM-DD>/<HH>.parquet``. The *stream key* is the stream name without
  its namespace, ``:`` replaced by ``.`` (``paper:md:book:BTC`` -> ``md.book.BTC``), so an archive
  can be replayed into any namespace (:func:`key_dir`).

Each file holds one row per stream entry, sorted by entry id, with the columns of
:data:`SCHEMA`: the full ``stream`` name and its ``key`` (``md:book:BTC``), the Redis
``entry_id`` (``"<ms>-<seq>"``) split into ``entry_ms``/``entry_seq``, ``raw`` (the entry's
``event`` field, the bus's JSON encoding, byte for byte), ``fields`` (the entry's other fields as
a JSON object, e.g. a dead letter's ``reason``/``raw``; ``{}`` for events) and the decoded envelope:
``type``, ``id``, ``ts_event``/``ts_recv`` (ns), ``source``, ``causation_id``, ``market``,
``strategy`` (null when the event has none or does not decode), ``error`` (why it did not decode).

Writing is idempotent: rows are merged into the hour's file with its existing rows, deduplicated by
entry id and re-sorted, then the file is replaced atomically (write to a temporary name, rename),
so writing the same entries twice (at-least-once delivery, a restart) leaves one copy.

Reading merges the streams back into one sequence in bus order: by entry time (ms), then
``ts_event``, each stream keeping its own entry order (:func:`iter_rows`).
"""

from __future__ import annotations

import heapq
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from shared.bus import split_id
from shared.events import AnyEvent, DecodeError, decode
from shared.markets import MarketInfo, market_builtins

FORMAT = "lighter-stack-archive"
META_FILE = "archive.json"
EVENT_FIELD = b"event"

SCHEMA = pa.schema([
    ("stream", pa.string()), ("key", pa.string()), ("entry_id", pa.string()),
    ("entry_ms", pa.int64()), ("entry_seq", pa.int64()), ("raw", pa.binary()), ("fields", pa.string()),
    ("type", pa.string()), ("id", pa.string()), ("ts_event", pa.int64()), ("ts_recv", pa.int64()),
    ("source", pa.string()), ("causation_id", pa.string()), ("market", pa.string()),
    ("strategy", pa.string()), ("error", pa.string()),
])
COLUMNS = tuple(SCHEMA.names)
#: Stream key patterns of a namespace that are archived (``*`` = any one name part).
KEY_PATTERNS = ("md:*", "intent:*", "exec:*", "control", "params:*", "dlq")
_SAFE = re.compile(r"[^A-Za-z0-9._=-]")


class ArchiveError(ValueError):
    """An archive folder is missing, belongs to another namespace, or has a broken file (named)."""


class ArchiveMeta(msgspec.Struct, kw_only=True):
    """Content of ``archive.json``."""

    format: str = FORMAT
    version: int = 1
    namespace: str
    markets: list[MarketInfo] = []


@dataclass(frozen=True, slots=True)
class Row:
    """One archived stream entry (the columns of :data:`SCHEMA`)."""

    stream: str
    key: str
    entry_id: str
    entry_ms: int
    entry_seq: int
    raw: bytes
    fields: str = "{}"
    type: str | None = None
    id: str | None = None
    ts_event: int | None = None
    ts_recv: int | None = None
    source: str | None = None
    causation_id: str | None = None
    market: str | None = None
    strategy: str | None = None
    error: str | None = None

    def event(self) -> AnyEvent:
        """The decoded event. Raises :class:`shared.events.DecodeError` for a dead letter or a
        broken entry."""
        return decode(self.raw)


def stream_key(namespace: str, stream: str) -> str:
    """``stream`` without its ``"<namespace>:"`` prefix. Raises ValueError for another namespace."""
    prefix = f"{namespace}:"
    if not stream.startswith(prefix):
        raise ValueError(f"stream {stream!r} is not in namespace {namespace!r}")
    return stream[len(prefix):]


def key_dir(key: str) -> str:
    """Folder name of a stream key: ``:`` -> ``.``, other unsafe characters -> ``_``."""
    return _SAFE.sub("_", key.replace(":", "."))


def archived_key(key: str) -> bool:
    """True when the stream key matches one of :data:`KEY_PATTERNS`."""
    parts = key.split(":")
    for pat in KEY_PATTERNS:
        pp = pat.split(":")
        if pp[-1] == "*" and len(parts) >= len(pp) and parts[: len(pp) - 1] == pp[:-1]:
            return True
        if pp == parts:
            return True
    return False


def make_row(stream: str, key: str, entry_id: bytes | str, fields: dict[Any, Any]) -> Row:
    """The archive row of one ``XRANGE``/``XREAD`` entry (``fields`` as Redis returns them, bytes
    or str keys). An entry without an ``event`` field (a dead letter) keeps its fields as JSON in
    ``fields``, its ``raw`` field (if any) in ``raw`` and the note in ``error``."""
    eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    ms, seq = split_id(eid)
    norm = {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in fields.items()}
    raw = norm.pop(EVENT_FIELD.decode(), None)
    if raw is None:
        rest = norm.pop("raw", b"")
        raw_b = rest if isinstance(rest, bytes) else str(rest).encode()
        other = {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)) for k, v in norm.items()}
        return Row(stream, key, eid, ms, seq, raw_b, json.dumps(other, sort_keys=True), error="no event field")
    raw_b = raw if isinstance(raw, bytes) else str(raw).encode()
    other = {k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)) for k, v in norm.items()}
    try:
        ev = decode(raw_b)
    except DecodeError as exc:
        return Row(stream, key, eid, ms, seq, raw_b, json.dumps(other, sort_keys=True), error=str(exc)[:500])
    return Row(stream, key, eid, ms, seq, raw_b, json.dumps(other, sort_keys=True),
               type=type(ev).__struct_config__.tag, id=ev.id, ts_event=ev.ts_event, ts_recv=ev.ts_recv,
               source=ev.source, causation_id=ev.causation_id, market=getattr(ev, "market", None),
               strategy=getattr(ev, "strategy", None))


def hour_of(entry_ms: int) -> tuple[str, str]:
    """``(YYYY-MM-DD, HH)`` of an entry time in ms (UTC)."""
    t = datetime.fromtimestamp(entry_ms / 1000.0, tz=UTC)
    return t.strftime("%Y-%m-%d"), t.strftime("%H")


def hour_start_ms(entry_ms: int) -> int:
    """Start of the UTC hour holding ``entry_ms`` (ms)."""
    return entry_ms - entry_ms % 3_600_000


def partition_path(root: str | Path, key: str, entry_ms: int) -> Path:
    """``<root>/<key_dir(key)>/<YYYY-MM-DD>/<HH>.parquet`` of the hour holding ``entry_ms``."""
    day, hour = hour_of(entry_ms)
    return Path(root) / key_dir(key) / day / f"{hour}.parquet"


def _table(rows: Sequence[Row]) -> pa.Table:
    cols = {name: [getattr(r, name) for r in rows] for name in COLUMNS}
    return pa.table(cols, schema=SCHEMA)


def _read_table(path: Path) -> pa.Table:
    try:
        return pq.read_table(path, schema=SCHEMA)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ArchiveError(f"{path}: not a readable archive file: {exc}") from None


def write_meta(root: str | Path, namespace: str, markets: Iterable[MarketInfo] = ()) -> ArchiveMeta:
    """Create or update ``archive.json``: markets are merged by symbol (new metadata wins).

    Raises:
        ArchiveError: the archive belongs to another namespace.
    """
    p = Path(root)
    p.mkdir(parents=True, exist_ok=True)
    old = read_meta(p) if (p / META_FILE).is_file() else None
    if old is not None and old.namespace != namespace:
        raise ArchiveError(f"{p}: archive of namespace {old.namespace!r}, not {namespace!r}; use another folder")
    merged = {m.symbol: m for m in (old.markets if old else [])}
    merged.update({m.symbol: m for m in markets})
    meta = ArchiveMeta(namespace=namespace, markets=[merged[s] for s in sorted(merged)])
    tmp = p / f".{META_FILE}.tmp"
    body = {**msgspec.to_builtins(meta), "markets": [market_builtins(m) for m in meta.markets]}
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(body)) + b"\n")
    os.replace(tmp, p / META_FILE)
    return meta


def read_meta(root: str | Path) -> ArchiveMeta:
    """Read ``archive.json``. Raises :class:`ArchiveError` when missing or invalid."""
    path = Path(root) / META_FILE
    try:
        meta = msgspec.json.decode(path.read_bytes(), type=ArchiveMeta)
    except FileNotFoundError:
        raise ArchiveError(f"{path}: no such file (not an archive folder)") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ArchiveError(f"{path}: invalid: {exc}") from None
    if meta.format != FORMAT:
        raise ArchiveError(f"{path}: format is {meta.format!r}, expected {FORMAT!r}")
    return meta


def is_archive(path: str | Path) -> bool:
    """True when ``path`` is a folder with an ``archive.json``."""
    return (Path(path) / META_FILE).is_file()


def write_rows(root: str | Path, rows: Iterable[Row]) -> int:
    """Merge ``rows`` into their hour files (module docstring: dedup by entry id, atomic replace).

    Returns:
        how many rows were new to the archive.
    """
    groups: dict[Path, list[Row]] = {}
    for r in rows:
        groups.setdefault(partition_path(root, r.key, r.entry_ms), []).append(r)
    new = 0
    for path, group in sorted(groups.items()):
        path.parent.mkdir(parents=True, exist_ok=True)
        by_id = {r.entry_id: r for r in group}
        fresh = _table(sorted(by_id.values(), key=lambda r: (r.entry_ms, r.entry_seq)))
        if path.is_file():
            old = _read_table(path)
            have = set(old.column("entry_id").to_pylist())
            keep = [i for i, e in enumerate(fresh.column("entry_id").to_pylist()) if e not in have]
            if not keep:
                continue
            fresh = fresh.take(keep)
            table = pa.concat_tables([old, fresh]).sort_by([("entry_ms", "ascending"), ("entry_seq", "ascending")])
        else:
            table = fresh
        new += fresh.num_rows
        tmp = path.with_name(f".{path.name}.tmp")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    return new


def key_dirs(root: str | Path) -> dict[str, Path]:
    """Stream key folders of an archive: folder name -> path (sorted by name)."""
    p = Path(root)
    return {d.name: d for d in sorted(p.iterdir()) if d.is_dir() and not d.name.startswith(".")} if p.is_dir() else {}


def _files(d: Path) -> list[Path]:
    return sorted(f for f in d.glob("*/*.parquet") if not f.name.startswith("."))


def last_entry_id(root: str | Path, key: str) -> str | None:
    """The newest archived entry id of stream ``key`` (``"ms-seq"``), or None when it has none."""
    files = _files(Path(root) / key_dir(key))
    for f in reversed(files):
        t = pq.read_table(f, columns=["entry_ms", "entry_seq"])
        if t.num_rows:
            ms = t.column("entry_ms").to_pylist()
            seq = t.column("entry_seq").to_pylist()
            best = max(zip(ms, seq, strict=True))
            return f"{best[0]}-{best[1]}"
    return None


def count_rows(root: str | Path, keys: Callable[[str], bool] | None = None) -> int:
    """Number of archived entries (of the stream folders ``keys(key)`` accepts), from file metadata."""
    n = 0
    for name, d in key_dirs(root).items():
        if keys is not None and not keys(_key_of(name)):
            continue
        n += sum(pq.ParquetFile(f).metadata.num_rows for f in _files(d))
    return n


def _key_of(dirname: str) -> str:
    return dirname.replace(".", ":")


def _file_hour_ms(f: Path) -> int:
    t = datetime.strptime(f"{f.parent.name} {f.stem}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


def _iter_key(d: Path, start_ms: int | None, end_ms: int | None) -> Iterator[Row]:
    for f in _files(d):
        h = _file_hour_ms(f)
        if (start_ms is not None and h + 3_600_000 <= start_ms) or (end_ms is not None and h >= end_ms):
            continue
        t = _read_table(f)
        for rec in t.to_pylist():
            if (start_ms is None or rec["entry_ms"] >= start_ms) and (end_ms is None or rec["entry_ms"] < end_ms):
                yield Row(**rec)


def iter_rows(root: str | Path, keys: Callable[[str], bool] | None = None, start_ms: int | None = None,
              end_ms: int | None = None) -> Iterator[Row]:
    """Every archived entry in bus order (module docstring), lazily (one hour file per stream
    in memory at a time).

    Args:
        root: the archive folder.
        keys: keep only the streams whose key (``md:book:BTC``) it accepts (default: all).
        start_ms, end_ms: keep only entries with ``start_ms <= entry time < end_ms`` (ms since the
            epoch, the Redis entry time; None = unbounded).

    Raises:
        ArchiveError: not an archive folder, or a file that cannot be read.
    """
    read_meta(root)
    its = []
    for name, d in key_dirs(root).items():
        if keys is None or keys(_key_of(name)):
            its.append(_iter_key(d, start_ms, end_ms))
    return heapq.merge(*its, key=lambda r: (r.entry_ms, r.ts_event or 0))


def key_matcher(prefixes: Sequence[str] | None) -> Callable[[str], bool] | None:
    """A ``keys`` filter accepting stream keys that equal or start with one of ``prefixes``
    (``md`` accepts ``md:book:BTC``; ``md:trade`` only trades); None when no prefix is given."""
    if not prefixes:
        return None
    pre = tuple(p.rstrip(":") for p in prefixes)
    return lambda key: any(key == p or key.startswith(p + ":") for p in pre)


def market_data_events(root: str | Path, types: Sequence[str] = ("bbo", "trade"), start_ms: int | None = None,
                       end_ms: int | None = None) -> list[AnyEvent]:
    """The archive's market data (streams ``md:*``) of the given event ``type`` tags as events,
    sorted by ``ts_event`` (ties keep bus order): what backtests and venue-sim replay.
    ``start_ms``/``end_ms``: entry-time range as in :func:`iter_rows`.

    Raises:
        ArchiveError: not an archive folder or a broken file.
    """
    wanted = set(types)
    out = [r.event() for r in iter_rows(root, key_matcher(["md"]), start_ms, end_ms) if r.type in wanted]
    out.sort(key=lambda e: e.ts_event)
    return out


async def stream_names(redis: Any, namespace: str) -> list[str]:
    """The archived streams (:data:`KEY_PATTERNS`) that exist in ``namespace`` on ``redis``, sorted."""
    out = set()
    async for k in redis.scan_iter(match=f"{namespace}:*", count=1000, _type="stream"):
        name = k.decode() if isinstance(k, bytes) else k
        if archived_key(stream_key(namespace, name)):
            out.add(name)
    return sorted(out)


async def read_after(redis: Any, namespace: str, stream: str, after: str | None,
                     count: int = 10_000) -> list[Row]:
    """Up to ``count`` entries of ``stream`` after entry id ``after`` (None = from the start)."""
    lo = f"({after}" if after else "-"
    got = await redis.xrange(stream, min=lo, max="+", count=count)
    key = stream_key(namespace, stream)
    return [make_row(stream, key, eid, fields) for eid, fields in got]
