"""Parsing Lighter WebSocket frames into typed values and our events (pure, no I/O, no clock).

Used by the live collector and reusable for replaying raw WS captures (one server JSON message
per line): :func:`decode_frame` -> ``dict``, then by channel :func:`parse_order_book`,
:func:`parse_trades` or :func:`parse_market_stats`. Every parser raises :class:`FrameError`
with a reason for a payload that is malformed or fails validation; such frames go to the
dead-letter stream, never into the book.

Lighter wire conventions (docs: ``lighter-api.md`` section 5): prices and sizes are decimal
strings (some stats are JSON numbers), server messages name channels with ``:``
(``order_book:0``, ``market_stats:all``), time stamps are ``timestamp`` in ms and
``last_updated_at`` / ``transaction_time`` in µs. All ``ts_*`` values returned here are ns.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from shared.events import MarketStats, Trade, derive_id

SOURCE = "collector"

Level = tuple[float, float]


class FrameError(ValueError):
    """A WS frame that cannot be used; the message is the reason (goes to the DLQ)."""


def decode_frame(raw: bytes | str) -> dict[str, Any]:
    """Decode one WS text frame into a JSON object.

    Raises:
        FrameError: not valid JSON or not a JSON object.
    """
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"invalid JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise FrameError(f"frame is a JSON {type(msg).__name__}, expected an object")
    return msg


def split_channel(msg: Mapping[str, Any]) -> tuple[str, str]:
    """``(name, key)`` of a server message's channel, e.g. ``order_book:0`` -> ``("order_book", "0")``,
    ``market_stats:all`` -> ``("market_stats", "all")``, ``height`` -> ``("height", "")``.
    Falls back to the part of ``type`` after ``/`` when there is no ``channel``.
    """
    ch = msg.get("channel")
    if isinstance(ch, str) and ch:
        name, _, key = ch.partition(":")
        if not key and "/" in ch:  # tolerate a subscribe-style name
            name, _, key = ch.partition("/")
        return name, key
    typ = msg.get("type")
    if isinstance(typ, str) and "/" in typ:
        return typ.split("/", 1)[1], ""
    return "", ""


_INT_TEXT = re.compile(r"\s*-?[0-9]+\s*")  # ASCII digits only: str.isdigit() also takes '²', which int() refuses
_SHOW_MAX = 60  # characters of an offending value quoted in a reason (the raw frame is in the DLQ entry)


def _show(v: Any) -> str:
    """``repr(v)``, cut to ``_SHOW_MAX`` characters: a dead-letter reason stays one short line."""
    r = repr(v)
    return r if len(r) <= _SHOW_MAX else r[:_SHOW_MAX] + "..."


def _to_float(v: Any, what: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond a double's range
        raise FrameError(f"{what} {_show(v)} is not a number") from None


def _num(v: Any, what: str, *, allow_zero: bool = True) -> float:
    if isinstance(v, bool) or v is None:
        raise FrameError(f"{what} is {v!r}, expected a number")
    x = _to_float(v, what)
    if not math.isfinite(x) or x < 0 or (not allow_zero and x == 0):
        raise FrameError(f"{what} {_show(v)} out of range")
    return x


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool):
        raise FrameError(f"{what} is {v!r}, expected an integer")
    if isinstance(v, int):
        return v
    if isinstance(v, str) and _INT_TEXT.fullmatch(v):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    raise FrameError(f"{what} {_show(v)} is not an integer")


@dataclass(slots=True, frozen=True)
class BookMessage:
    """One ``order_book`` frame.

    Attributes:
        market_id: Lighter market index from the channel (``order_book:<id>``).
        snapshot: True for ``subscribed/order_book`` (full book), False for an update.
        bids, asks: levels as ``(price USD, size base units)``; in an update, absolute sizes of
            changed levels (0 deletes).
        nonce: the book nonce after this message (``offset`` when an old frame has no nonce).
        begin_nonce: the nonce this update applies on; ``None`` in the older format without it
            (continuity then cannot be checked).
        offset: per-connection message counter (``None`` when absent).
        ts_event: exchange time in ns: ``last_updated_at`` (µs), else ``timestamp`` (ms), else
            the receive time passed to :func:`parse_order_book`.
    """

    market_id: int
    snapshot: bool
    bids: list[Level]
    asks: list[Level]
    nonce: int
    begin_nonce: int | None
    offset: int | None
    ts_event: int


def _levels(raw: Any, what: str) -> list[Level]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise FrameError(f"{what} is {type(raw).__name__}, expected a list")
    out: list[Level] = []
    for i, lv in enumerate(raw):
        if isinstance(lv, Mapping):
            px, sz = lv.get("price"), lv.get("size")
        elif isinstance(lv, list | tuple) and len(lv) == 2:
            px, sz = lv
        else:
            raise FrameError(f"{what}[{i}] is not a {{price, size}} level")
        out.append((_num(px, f"{what}[{i}].price", allow_zero=False), _num(sz, f"{what}[{i}].size")))
    return out


def _ts_ns(msg: Mapping[str, Any], fallback_ns: int, *, us_keys: tuple[Mapping[str, Any], ...] = ()) -> int:
    for src in us_keys:
        v = src.get("last_updated_at")
        if v is not None:
            return _int(v, "last_updated_at") * 1_000
    v = msg.get("timestamp")
    if v is not None:
        return _int(v, "timestamp") * 1_000_000
    return fallback_ns


def parse_order_book(msg: Mapping[str, Any], ts_recv: int) -> BookMessage:
    """Parse a ``subscribed/order_book`` or ``update/order_book`` frame.

    Args:
        msg: the decoded frame.
        ts_recv: local receive time in ns (used as ``ts_event`` only when the frame has no time).

    Raises:
        FrameError: missing/invalid channel, ``order_book`` object, levels, nonce or time.
    """
    name, key = split_channel(msg)
    if name != "order_book":
        raise FrameError(f"not an order_book frame (channel {_show(msg.get('channel'))})")
    market_id = _int(key, "channel market id")
    typ = msg.get("type")
    if typ not in ("subscribed/order_book", "update/order_book"):
        raise FrameError(f"unexpected order_book frame type {_show(typ)}")
    ob = msg.get("order_book")
    if not isinstance(ob, Mapping):
        raise FrameError("order_book payload missing or not an object")
    bids = _levels(ob.get("bids"), "bids")
    asks = _levels(ob.get("asks"), "asks")
    offset_raw = ob.get("offset", msg.get("offset"))
    offset = _int(offset_raw, "offset") if offset_raw is not None else None
    if ob.get("nonce") is not None:
        nonce = _int(ob["nonce"], "nonce")
    elif offset is not None:
        nonce = offset
    else:
        raise FrameError("order_book has neither nonce nor offset")
    begin = ob.get("begin_nonce")
    begin_nonce = _int(begin, "begin_nonce") if begin is not None else None
    ts = _ts_ns(msg, ts_recv, us_keys=(ob, msg))
    return BookMessage(market_id=market_id, snapshot=typ == "subscribed/order_book", bids=bids, asks=asks,
                       nonce=nonce, begin_nonce=begin_nonce, offset=offset, ts_event=ts)


def parse_trades(msg: Mapping[str, Any], symbol: str, ts_recv: int) -> list[Trade]:
    """Parse a ``subscribed/trade`` or ``update/trade`` frame into :class:`Trade` events.

    Takes ``trades[]`` and ``liquidation_trades[]`` (a trade id present in both is taken once).
    ``taker_side`` is ``buy`` when ``is_maker_ask`` is true (the maker sold), else ``sell``;
    ``trade_id`` from ``trade_id_str`` or ``trade_id``; ``ts_event`` from ``timestamp`` (ms) or
    ``transaction_time`` (µs); id = ``derive_id(symbol, "trade", trade_id)``.

    Args:
        msg: the decoded frame.
        symbol: our market symbol for the frame's channel (``trade:<id>``).
        ts_recv: local receive time in ns.

    Raises:
        FrameError: the lists are missing or a trade lacks/has an invalid field.
    """
    trades = msg.get("trades")
    liq = msg.get("liquidation_trades") or []
    if not isinstance(trades, list) or not isinstance(liq, list):
        raise FrameError("trade frame without a trades list")
    out: list[Trade] = []
    seen: set[str] = set()
    for i, t in enumerate([*trades, *liq]):
        if not isinstance(t, Mapping):
            raise FrameError(f"trades[{i}] is not an object")
        tid = t.get("trade_id_str") or t.get("trade_id")
        if tid is None or isinstance(tid, bool) or str(tid) == "":
            raise FrameError(f"trades[{i}] has no trade_id")
        if not isinstance(tid, str | int):
            raise FrameError(f"trades[{i}].trade_id {_show(tid)} is not a string or an integer")
        tid = str(tid)
        if tid in seen:
            continue
        seen.add(tid)
        price = _num(t.get("price"), f"trades[{i}].price", allow_zero=False)
        size = _num(t.get("size"), f"trades[{i}].size", allow_zero=False)
        maker_ask = t.get("is_maker_ask")
        if not isinstance(maker_ask, bool):
            raise FrameError(f"trades[{i}].is_maker_ask is {_show(maker_ask)}, expected true/false")
        if t.get("timestamp") is not None:
            ts = _int(t["timestamp"], f"trades[{i}].timestamp") * 1_000_000
        elif t.get("transaction_time") is not None:
            ts = _int(t["transaction_time"], f"trades[{i}].transaction_time") * 1_000
        else:
            raise FrameError(f"trades[{i}] has neither timestamp nor transaction_time")
        out.append(Trade(id=derive_id(symbol, "trade", tid), ts_event=ts, ts_recv=ts_recv, source=SOURCE,
                         market=symbol, trade_id=tid, price=price, size=size,
                         taker_side="buy" if maker_ask else "sell"))
    return out


def _stats_one(d: Mapping[str, Any], symbol: str, ts_event: int, ts_recv: int, where: str,
               id_time: int | str) -> MarketStats:
    def opt(key: str, *alts: str) -> float:
        for k in (key, *alts):
            if d.get(k) is not None:
                v = d[k]
                if isinstance(v, bool):
                    raise FrameError(f"{where}.{k} is {v!r}, expected a number")
                x = _to_float(v, f"{where}.{k}")
                if not math.isfinite(x):
                    raise FrameError(f"{where}.{k} {_show(v)} is not finite")
                return x
        return 0.0

    if d.get("mark_price") is None or d.get("index_price") is None:
        raise FrameError(f"{where} lacks mark_price/index_price")
    try:
        content = orjson.dumps(d, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:  # orjson.JSONEncodeError: e.g. an int beyond 64 bits (never from decode_frame)
        raise FrameError(f"{where} cannot be encoded: {exc}") from None
    return MarketStats(
        id=derive_id(symbol, "market_stats", id_time, content.decode()),
        ts_event=ts_event, ts_recv=ts_recv, source=SOURCE, market=symbol,
        mark_price=_num(d["mark_price"], f"{where}.mark_price"),
        index_price=_num(d["index_price"], f"{where}.index_price"),
        last_trade_price=opt("last_trade_price"),
        funding_rate=opt("current_funding_rate", "funding_rate"),
        open_interest=opt("open_interest"),
    )


def parse_market_stats(msg: Mapping[str, Any], symbols: Mapping[int, str], ts_recv: int) -> list[MarketStats]:
    """Parse a ``market_stats`` frame (channel ``market_stats:<id>`` or ``market_stats:all``).

    The payload is one market's object, or (``all``) a dict keyed by the market id as a string;
    markets not in ``symbols`` are skipped. ``ts_event`` is the message ``timestamp`` (ms) when
    present, else ``ts_recv`` (real ``market_stats:all`` frames carry no time). ``funding_rate``
    is Lighter's ``current_funding_rate`` (else ``funding_rate``) and ``open_interest`` its
    ``open_interest``, both as Lighter sends them. The id is derived from symbol, message time
    and payload content, so a replayed frame gets the same id.

    Args:
        msg: the decoded frame.
        symbols: Lighter market id -> our symbol, for the configured markets.
        ts_recv: local receive time in ns.

    Raises:
        FrameError: no ``market_stats`` object, or a configured market's entry is invalid.
    """
    ms = msg.get("market_stats")
    if not isinstance(ms, Mapping):
        raise FrameError("market_stats payload missing or not an object")
    ts = _ts_ns(msg, ts_recv)
    id_time: int | str = ts if msg.get("timestamp") is not None else ""
    _, key = split_channel(msg)
    if "mark_price" in ms or "market_id" in ms:
        entries: list[tuple[str, Any, Any]] = [("market_stats", ms, key)]  # one market: its id, else the channel's
    else:  # market_stats:all: {"<market id>": {...}, ...}
        entries = [(f"market_stats[{_show(k)}]", v, k) for k, v in ms.items()]
    out: list[MarketStats] = []
    for where, d, key_id in entries:
        if not isinstance(d, Mapping):
            raise FrameError(f"{where} is not an object")
        mid_raw = d.get("market_id")
        if mid_raw is None:
            mid_raw = key_id
        mid = _int(mid_raw, f"{where}.market_id")
        sym = symbols.get(mid)
        if sym is None:
            continue
        out.append(_stats_one(d, sym, ts, ts_recv, where, id_time))
    return out
