"""venue-sim's state file: a restart that keeps the book, orders, accounts, nonces and keys.

With ``state_path`` set, venue-sim writes its whole state to that file and, when the file exists
at start, continues from it instead of starting afresh:

- the matching engine (resting and untriggered orders, pending txs and their execution times,
  positions, collateral, fills, order history, counters of order and trade ids, the market
  state and the depth ladders);
- the server's own state: nonces of every (account, API key), registered API keys, the public
  book as last published and its nonces (so a resubscribed client's snapshot continues the
  nonce sequence), recent trades, candles, fundings, account trades and txs, block height,
  margin settings (leverage, margin mode), the rate-limit windows;
- the replay's position (events applied; on start the recording is read past them) and whether
  it had started;
- the fault counters (:mod:`services.venue_sim.faults`; the plan itself comes from the config at
  every start, runtime changes by ``POST /sim/fault`` are not kept) and the count of restarts.

**When it is written (write-through):** before the venue *discloses* a change -- after every
REST request that accepted a tx (before its answer is sent), after every ``jsonapi/sendtx``
(before its reply), after every engine batch with an account update (fill, order, position;
before its WebSocket messages go out) -- plus, for market-data-only changes, at most every
``state_interval_ms`` (1 s), and on shutdown. Client sends and HTTP answers are written by the
event loop only after the synchronous handler returns, so the write always precedes them. So a
SIGKILL never loses a tx the venue acknowledged or an order/fill/position it announced; it may
lose up to ``state_interval_ms`` of replayed market data (those recorded events are replayed
again after the restart: they are the recording's, not the clients') and the read-meter
windows of that stretch. The file is replaced atomically (written beside it, then renamed), so
a kill mid-write leaves the previous one; it is not fsync'ed (a process kill keeps the OS's
page cache; a power loss may not). ``fills_file`` is appended just before the write, so a kill
between the two can leave a fill there that the restarted venue does not have; ``/sim/fills``
is the record.

A restart drops every WebSocket connection (clients resubscribe and get fresh snapshots);
pending txs whose execution time passed while the venue was down execute at once on the venue
clock after the restart (outside lockstep the clock is the wall clock, which moved on).

The file is a pickle behind a magic line: venue-sim's own private file, to be loaded only by
venue-sim (never load a state file from elsewhere). It records the settings that shape the
state (recording, markets, tier and fees, depth, lockstep, public book); a start with other
settings refuses the file (:class:`StateError`) rather than mix two venues.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web

from services.venue_sim.metrics import STATE_WRITES
from shared.venue.matching import FillUpdate, OrderUpdate, PositionUpdate, Update

log = logging.getLogger("services.venue_sim.state")

MAGIC = b"lighter-stack venue-sim state v1\n"
"""First line of a state file (a version change refuses older files)."""
PERSISTED = ("account_fills", "account_txs", "api_keys", "assets_sent", "book_levels", "book_nonce", "book_ts",
             "candles", "funding_hist", "height", "nonces", "stats_sent_ns", "ticker_last", "ticker_nonce",
             "trade_nonce", "trades", "tx_requests", "tx_seq", "txs_pending")
"""``VenueServer`` attributes kept in the state file (besides ``engine``, ``margin_book`` and
``meter``, kept in part)."""
TRANSIENT = ("_auth_token_cache", "_enc", "_fills_fh", "_held_book", "chain_id", "clients", "clock",
             "clock_is_wall", "connections", "engine", "faults", "known_accounts", "margin_book", "margin_checks",
             "markets", "meter", "on_start", "on_tx", "public_book", "request_restart", "start_account",
             "started_wall", "state_store", "stats_interval_ns", "status_extra", "subs", "verify_auth",
             "verify_signatures", "ws_idle_timeout_s", "ws_max_subscriptions", "ws_messages_per_min")
"""``VenueServer`` attributes not kept as they are: the config's, the connections', or kept in
part (``engine``, ``margin_book`` settings, ``meter`` windows, ``faults`` counters). A test
checks every attribute is in one of the two lists."""
_ACCOUNT_UPDATES = (FillUpdate, OrderUpdate, PositionUpdate)


class StateError(ValueError):
    """The state file cannot be used (unreadable, another version, other settings)."""


def write_state(path: Path, state: dict[str, Any]) -> int:
    """Write ``state`` to ``path`` atomically (``path.tmp``, then rename); returns the bytes
    written."""
    data = MAGIC + pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return len(data)


def read_state(path: Path) -> dict[str, Any] | None:
    """The state in ``path``, or None when there is no file.

    Raises:
        StateError: the file is not a venue-sim state file of this version, or is damaged.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read the state file {path}: {exc}") from None
    if not data.startswith(MAGIC):
        raise StateError(f"{path} is not a venue-sim state file of this version (delete it to start afresh)")
    try:
        state = pickle.loads(data[len(MAGIC):])
    except Exception as exc:  # a damaged pickle raises many types
        raise StateError(f"the state file {path} is damaged: {type(exc).__name__}: {exc}") from None
    if not isinstance(state, dict) or "engine" not in state:
        raise StateError(f"the state file {path} is damaged: no engine")
    return state


def check_fingerprint(saved: dict[str, Any], current: dict[str, Any], path: Path) -> None:
    """Refuse a state written with other settings.

    Raises:
        StateError: names the settings that differ.
    """
    old = saved.get("fingerprint", {})
    diff = sorted(k for k in set(old) | set(current) if old.get(k) != current.get(k))
    if diff:
        raise StateError(f"the state file {path} was written with other settings ({', '.join(diff)}); "
                         "use the same settings or delete it to start afresh")


def fingerprint(recording: Path, markets: list[Any], lockstep: bool, public_book: str, tier: Any,
                depth: Any) -> dict[str, Any]:
    """The settings a state depends on (JSON-like values, compared with ``==``)."""
    return {"recording": str(recording), "markets": sorted((m.market_id, m.symbol) for m in markets),
            "lockstep": lockstep, "public_book": public_book, "tier": msgspec.to_builtins(tier),
            "depth": msgspec.to_builtins(depth) if depth is not None else None}


def snapshot(server: Any, replay: Any, fp: dict[str, Any], restarts: int) -> dict[str, Any]:
    """The state of ``server`` (a ``VenueServer``) and ``replay`` as :func:`write_state` writes it."""
    return {"fingerprint": fp, "saved_wall_ns": time.time_ns(), "restarts": restarts, "engine": server.engine,
            "server": {a: getattr(server, a) for a in PERSISTED}, "margin": server.margin_book.settings,
            "meter": {"accounts": server.meter.accounts, "ips": server.meter.ips},
            "faults": server.faults.counters(),
            "replay": {"replayed": replay.replayed, "recorded_ns": replay.recorded_ns, "started": replay.started}}


def restore_server(server: Any, saved: dict[str, Any]) -> None:
    """Put a saved state into a freshly built ``VenueServer`` (whose engine is already the
    saved one): its attributes, margin settings, rate-limit windows and fault counters."""
    for a in PERSISTED:
        if a in saved["server"]:
            setattr(server, a, saved["server"][a])
    server.margin_book.settings = saved.get("margin", {})
    meter = saved.get("meter", {})
    server.meter.accounts = meter.get("accounts", {})
    server.meter.ips = meter.get("ips", {})
    server.faults.restore_counters(saved.get("faults", {}))
    server.faults.count("restart")


class StateStore:
    """Writes the state file: write-through for txs and account changes, every
    ``interval_s`` for the rest, and on shutdown (module docstring).

    Args:
        path: the state file.
        make: returns the state to write (:func:`snapshot`).
        interval_s: longest time a market-data-only change stays unwritten.
    """

    def __init__(self, path: Path, make: Callable[[], dict[str, Any]], interval_s: float) -> None:
        self.path = path
        self.make = make
        self.interval_s = interval_s
        self.dirty = False  # something changed since the last write
        self.urgent = False  # a tx or an account change is not written yet
        self.writes = 0
        self.last_bytes = 0
        self.last_write_s = 0.0  # wall seconds the last write took

    def mark(self, urgent: bool = False) -> None:
        """Something changed (``urgent``: a tx was accepted or an account changed)."""
        self.dirty = True
        self.urgent = self.urgent or urgent

    def save_if_urgent(self) -> None:
        """Write now if an urgent change is unwritten (a failed write is logged and retried at
        the next call: the venue keeps serving)."""
        if self.urgent:
            try:
                self.save()
            except OSError as exc:
                log.error("cannot write the state file %s: %s", self.path, exc)

    def after_publish(self, updates: list[Update]) -> None:
        """An engine batch was published: write now if it changed an account, else later."""
        if not updates:
            return
        self.mark(urgent=any(isinstance(u, _ACCOUNT_UPDATES) for u in updates))
        self.save_if_urgent()

    def save(self) -> None:
        """Write the state now."""
        t = time.perf_counter()
        self.last_bytes = write_state(self.path, self.make())
        self.last_write_s = time.perf_counter() - t
        self.dirty = self.urgent = False
        self.writes += 1
        STATE_WRITES.inc()

    async def run(self) -> None:
        """Write the pending market-data changes every ``interval_s`` (until cancelled)."""
        while True:
            await asyncio.sleep(self.interval_s)
            if self.dirty:
                try:
                    self.save()
                except OSError as exc:  # a full disk must not stop the venue; the next write retries
                    log.error("cannot write the state file %s: %s", self.path, exc)

    def status(self) -> dict[str, Any]:
        """``/sim/status`` ``state_file``: path, writes, bytes and seconds of the last write."""
        return {"path": str(self.path), "writes": self.writes, "last_bytes": self.last_bytes,
                "last_write_ms": round(self.last_write_s * 1000, 3)}


def persisting_sink(server: Any) -> Callable[[list[Update]], None]:
    """The replay's sink with a state file: ``server.publish``, then the state written if the
    batch changed an account (before any of its messages leaves the event loop)."""

    def sink(updates: list[Update]) -> None:
        server.publish(updates)
        if server.state_store is not None:
            server.state_store.after_publish(updates)

    return sink


def state_middleware(server: Any) -> Any:
    """An aiohttp middleware that writes ``server``'s state after each request that made an
    urgent change (an accepted tx), before the answer is sent."""

    @web.middleware
    async def persist(request: web.Request, handler: Any) -> web.StreamResponse:
        resp = await handler(request)
        server.persist_urgent()
        return resp

    return persist
