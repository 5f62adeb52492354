"""``lighter-stack status``: one view of the running stack (rich tables, or one JSON object).

Every part is read independently and a part that cannot be read shows its error instead; a
service that is down shows as ``down``; the command never fails because of the stack's state.

- **services**: ``GET http://HOST:PORT/health`` of every service of the registry
  (:mod:`lighter_stack.registry`; the port is the configured ``http_port``, venue-sim's ``port``):
  ``ok``, ``unhealthy`` (HTTP 503, with its status) or ``down`` (no answer within the timeout);
  ``uptime_s``; **restarts** = the service's start count in the Redis hash ``{ns}:starts`` minus 1
  (each process that starts consuming counts one, :func:`shared.service.note_start`; the
  collector and venue-sim consume nothing and show none).
- **streams**: per stream of the namespace, its length, the time of its last entry (the Redis
  entry id's milliseconds: when it was appended) and per consumer group the lag (entries not yet
  delivered, ``XINFO GROUPS``) and pending (delivered, not acknowledged).
- **positions**: per strategy and market the latest ``PositionSnapshot`` on ``{ns}:exec:{account}``
  (virtual position, entry price), the venue's account position (REST ``account``, as the
  executor reads it in reconciliation) and the executor's account position.
- **pnl**: today's (UTC) realized PnL per strategy from the ledger (closed FIFO trades,
  :func:`services.ledger.report.pnl_stats`) and the unrealized PnL of the open positions:
  ``position x (mid - avg_entry_price)`` USD, mid from the latest ``Bbo`` on the book stream.
- **locks**: every lease of the namespace (``{ns}:lock:*``, :mod:`shared.leases`): a strategy
  instance's lock and the executor's account lock, with their holder (``host:pid:hex``) and the
  seconds they live without renewal.
- **control**: the latest ``RiskState`` (running / halted / reducing and why), the executor
  guards engaged (latest ``GuardState`` per guard, market and side) and the control state folded
  from ``{ns}:control`` the way the executor folds it (killed, paused, flattening).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

from lighter_stack import registry
from services.executor.control import ControlState
from shared.bus import Bus, group_lag
from shared.config import ConfigError, StackConfig, load_config
from shared.events import Bbo, BookSnapshot, Control, Event, GuardState, PositionSnapshot, RiskState, decode
from shared.redis_util import LOCAL_URL, async_client
from shared.service import starts_key

#: How far back the exec stream is read for positions, guards and the risk state (entries).
EXEC_SCAN = 50_000


def stack_redis_url(cfg: StackConfig) -> str:
    """The Redis of the running stack: ``REDIS_URL``, else the configured ``redis_url``, else
    127.0.0.1:6379. Unlike the services (:func:`shared.redis_util.resolve_redis_url`) the tools
    never start a Redis: nothing answering there means the stack is not running."""
    return os.environ.get("REDIS_URL") or cfg.redis_url or LOCAL_URL


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def service_port(cfg: StackConfig, spec: registry.ServiceSpec) -> int:
    """The configured ``/health`` port of ``spec`` (``http_port``, venue-sim's ``port``); the
    registry default when the section does not validate."""
    try:
        section = cfg.section(spec.name, spec.config_model())
    except (ConfigError, ImportError, AttributeError):
        return spec.port
    return int(getattr(section, "http_port", None) or getattr(section, "port", None) or spec.port)


async def _health(http: aiohttp.ClientSession, host: str, port: int, timeout: float) -> dict[str, Any]:
    try:
        async with http.get(f"http://{host}:{port}/health", timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            body = await r.json(content_type=None)
            if not isinstance(body, dict):
                body = {}
            state = "ok" if r.status == 200 else "unhealthy"
            return {"state": state, "status": body.get("status"), "uptime_s": body.get("uptime_s"),
                    "started_at": body.get("started_at")}
    except (TimeoutError, aiohttp.ClientError, ValueError, OSError) as exc:
        return {"state": "down", "error": type(exc).__name__}


async def services_status(cfg: StackConfig, host: str, redis: Any, ns: str, timeout: float) -> list[dict[str, Any]]:
    """One row per registry service: ``name``, ``port``, ``state`` (ok / unhealthy / down),
    ``uptime_s``, ``started_at`` and ``restarts`` (None when not counted)."""
    try:
        starts = {_s(k): int(v) for k, v in (await redis.hgetall(starts_key(ns))).items()}
    except Exception:  # Redis down: the health rows still show
        starts = {}
    specs = list(registry.SERVICES.values())
    ports = [service_port(cfg, s) for s in specs]
    async with aiohttp.ClientSession() as http:
        bodies = await asyncio.gather(*[_health(http, host, p, timeout) for p in ports])
    rows = []
    for spec, port, body in zip(specs, ports, bodies, strict=True):
        # consumer-loop services count under their metric label: the service name, or the
        # strategy's group/source name for strategy services
        n = starts.get(spec.name) or (starts.get(spec.strategy) if spec.strategy else None)
        rows.append({"name": spec.name, "port": port, **body, "restarts": n - 1 if n else None})
    return rows


async def streams_status(redis: Any, ns: str) -> list[dict[str, Any]]:
    """One row per stream of ``ns``: ``stream``, ``length``, ``last_event_ms`` (wall time of the
    last entry, ms since the epoch; None when empty) and ``groups`` ({group: {lag, pending}})."""
    rows = []
    async for key in redis.scan_iter(match=f"{ns}:*", _type="STREAM"):
        name = _s(key)
        last = await redis.xrevrange(key, count=1)
        groups = {}
        for g in await redis.xinfo_groups(key):
            groups[_s(g.get("name"))] = {"lag": await group_lag(redis, name, g),
                                         "pending": int(g.get("pending") or 0)}
        rows.append({"stream": name, "length": int(await redis.xlen(key)),
                     "last_event_ms": int(_s(last[0][0]).split("-")[0]) if last else None, "groups": groups})
    return sorted(rows, key=lambda r: r["stream"])


async def locks_status(redis: Any, ns: str) -> list[dict[str, Any]]:
    """One row per lease of ``ns`` (``{ns}:lock:<kind>:<name>``): ``lock`` (``<kind>:<name>``),
    ``holder`` and ``ttl_s`` (seconds left without renewal; None when it has no TTL)."""
    rows = []
    async for key in redis.scan_iter(match=f"{ns}:lock:*"):
        name = _s(key)
        holder, pttl = await redis.get(key), await redis.pttl(key)
        if holder is None:
            continue  # expired meanwhile
        rows.append({"lock": name[len(f"{ns}:lock:"):], "holder": _s(holder),
                     "ttl_s": round(pttl / 1000, 1) if pttl and pttl > 0 else None})
    return sorted(rows, key=lambda r: r["lock"])


async def _latest(redis: Any, stream: str, limit: int) -> list[Event]:
    """Events of ``stream``, newest first, at most ``limit`` entries (undecodable ones skipped)."""
    out: list[Event] = []
    hi = "+"
    while len(out) < limit:
        entries = await redis.xrevrange(stream, max=hi, count=min(2000, limit))
        if not entries:
            break
        for _eid, fields in entries:
            raw = fields.get(b"event") or fields.get("event")
            try:
                out.append(decode(raw))
            except Exception:  # a malformed entry is not the status tool's business
                continue
        ms, seq = _s(entries[-1][0]).split("-")
        hi = f"{ms}-{int(seq) - 1}" if int(seq) > 0 else f"{int(ms) - 1}"
        if len(entries) < min(2000, limit):
            break
    return out


class _ControlFold(ControlState):
    """The executor's fold of ``Control`` events (kill, pause, resume, flatten), alone."""

    def __init__(self) -> None:
        self._init_control(True)


async def exec_status(bus: Bus, account: int, markets: list[str]) -> dict[str, Any]:
    """From the exec, control and book streams: ``positions`` (latest ``PositionSnapshot`` per
    strategy and market), ``account_position`` (the executor's, per market), ``risk`` (latest
    ``RiskState``: state, reason, ts), ``guards`` (engaged guards), ``control`` (the control state
    in words, :meth:`ControlState.control_summary`) and ``mids`` (latest Bbo mid per market)."""
    redis = bus.redis
    evs = await _latest(redis, bus.streams.exec(account), EXEC_SCAN)
    positions: dict[tuple[str, str], PositionSnapshot] = {}
    account_pos: dict[str, float] = {}
    guards: dict[tuple[str, str, str], GuardState] = {}
    risk: RiskState | None = None
    for ev in evs:  # newest first: keep the first seen of each key
        if isinstance(ev, PositionSnapshot):
            positions.setdefault((ev.strategy, ev.market), ev)
            account_pos.setdefault(ev.market, ev.account_position)
        elif isinstance(ev, GuardState):
            guards.setdefault((ev.guard, ev.market, ev.side), ev)
        elif isinstance(ev, RiskState) and risk is None:
            risk = ev
    fold = _ControlFold()
    for ev in reversed(await _latest(redis, bus.streams.control, EXEC_SCAN)):
        if isinstance(ev, Control):
            fold._control_state(ev)
    mids: dict[str, float] = {}
    for m in markets:
        for ev in await _latest(redis, bus.streams.book(m), 200):
            if isinstance(ev, Bbo):
                mids[m] = ev.mid
                break
            if isinstance(ev, BookSnapshot) and ev.bids and ev.asks:
                mids[m] = (ev.bids[0][0] + ev.asks[0][0]) / 2.0
                break
    return {
        "positions": [{"strategy": s, "market": m, "position": p.position, "avg_entry_price": p.avg_entry_price,
                       "ts_event": p.ts_event} for (s, m), p in sorted(positions.items())],
        "account_position": account_pos,
        "risk": {"state": risk.state, "reason": risk.reason, "ts_event": risk.ts_event} if risk else None,
        "guards": [{"guard": g.guard, "market": g.market, "side": g.side, "position": g.position}
                   for g in guards.values() if g.engaged],
        "control": fold.control_summary(),
        "mids": mids,
    }


async def venue_positions(cfg: StackConfig, timeout: float) -> dict[str, float]:
    """The account's positions at the venue (REST ``account``, :meth:`LighterRest.positions`):
    symbol (or market id when the venue gives none) -> signed base units.

    Raises:
        RestError, aiohttp.ClientError, TimeoutError: the venue did not answer.
    """
    from services.executor.venue import LighterRest, parse_position

    rest = LighterRest(cfg.venue.rest_url, timeout)
    try:
        out: dict[str, float] = {}
        for p in await rest.positions(cfg.account_index):
            pos = parse_position(p.get("market_id"), p)
            if pos is not None:
                out[str(p.get("symbol") or pos.market_id)] = pos.position
        return out
    finally:
        await rest.close()


def pnl_today(db_url: str | None, now_ns: int, positions: list[dict[str, Any]],
              mids: dict[str, float]) -> dict[str, Any]:
    """Today's (UTC day of ``now_ns``) realized PnL per strategy from the ledger and the
    unrealized PnL of ``positions`` at ``mids`` (also set on each position row as ``unrealized_usd``):
    ``{"since_ns", "strategies": {name: {"realized_usd",
    "trades", "unrealized_usd"}}, "realized_usd", "unrealized_usd"}``. The ledger part is
    ``{"error": ...}`` instead when the database cannot be read.

    Unrealized USD = ``position x (mid - avg_entry_price)`` (None when the market has no mid)."""
    from services.ledger.report import pnl_stats

    day = dt.datetime.fromtimestamp(now_ns / 1e9, dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    since_ns = int(day.timestamp() * 1e9)
    out: dict[str, Any] = {"since_ns": since_ns, "strategies": {}}
    strategies: dict[str, dict[str, Any]] = out["strategies"]
    try:
        stats = pnl_stats(db_url, since_hours=(now_ns - since_ns) / 3.6e12, now_ns=now_ns)
        for name, s in stats["strategies"].items():
            strategies.setdefault(name, {}).update(realized_usd=s["pnl_usd"], trades=s["trades"])
        out["realized_usd"] = stats["total"]["pnl_usd"]
    except Exception as exc:  # no ledger database yet, or unreachable: the rest still shows
        out["ledger_error"] = f"{type(exc).__name__}: {exc}"
    total_u = 0.0
    for p in positions:
        mid = mids.get(p["market"])
        u = p["position"] * (mid - p["avg_entry_price"]) if mid is not None and p["position"] else 0.0
        if mid is None and p["position"]:
            u = None
        p["unrealized_usd"] = u
        row = strategies.setdefault(p["strategy"], {})
        row["unrealized_usd"] = (row.get("unrealized_usd") or 0.0) + u if u is not None else None
        total_u += u or 0.0
    out["unrealized_usd"] = total_u
    return out


async def _guarded(coro: Any) -> Any:
    try:
        return await coro
    except Exception as exc:  # one unreadable part never hides the others
        return {"error": f"{type(exc).__name__}: {exc}"}


async def collect(cfg: StackConfig, host: str = "127.0.0.1", namespace: str | None = None,
                  db_url: str | None = None, timeout: float = 2.0, now_ns: int | None = None) -> dict[str, Any]:
    """The whole status as one JSON-able dict: ``namespace``, ``account``, ``as_of_ns``,
    ``services``, ``streams``, ``locks``, ``exec``, ``venue_positions``, ``pnl``. A part that cannot be
    read is ``{"error": "<Type>: <message>"}``; nothing here raises for a stack that is down."""
    ns = namespace or cfg.ns
    now = time.time_ns() if now_ns is None else now_ns
    redis = async_client(stack_redis_url(cfg))
    try:
        redis_ok = True
        try:
            await asyncio.wait_for(redis.ping(), timeout)
        except Exception:
            redis_ok = False
        bus = Bus(redis, ns)
        down = {"error": "Redis not reachable"}
        services, streams, locks, ex, venue = await asyncio.gather(
            _guarded(services_status(cfg, host, redis if redis_ok else _NoRedis(), ns, timeout)),
            _guarded(streams_status(redis, ns)) if redis_ok else _const(down),
            _guarded(locks_status(redis, ns)) if redis_ok else _const(down),
            _guarded(exec_status(bus, cfg.account_index, list(cfg.markets))) if redis_ok else _const(down),
            _guarded(venue_positions(cfg, timeout)))
    finally:
        await redis.aclose()
    positions = ex.get("positions", []) if isinstance(ex, dict) else []
    mids = ex.get("mids", {}) if isinstance(ex, dict) else {}
    pnl = await asyncio.to_thread(pnl_today, db_url, now, positions, mids)
    return {"namespace": ns, "account": cfg.account_index, "as_of_ns": now, "services": services,
            "streams": streams, "locks": locks, "exec": ex, "venue_positions": venue, "pnl": pnl}


async def _const(v: Any) -> Any:
    return v


class _NoRedis:
    async def hgetall(self, _key: str) -> dict[str, Any]:
        return {}


def _age(ms: int | None, now_ns: int) -> str:
    if ms is None:
        return "-"
    s = max(0.0, now_ns / 1e9 - ms / 1e3)
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}m ago" if s < 7200 else f"{s / 3600:.1f}h ago"


def _usd(v: Any) -> str:
    return "-" if v is None else f"{v:+,.2f}"


def render(st: dict[str, Any], console: Console) -> None:
    """Print :func:`collect`'s dict as rich tables."""
    now = st["as_of_ns"]
    console.print(f"[bold]lighter-stack status[/] namespace [cyan]{st['namespace']}[/], account {st['account']}")
    svc = st["services"]
    t = Table(title="services")
    for c in ("service", "port", "health", "uptime", "restarts"):
        t.add_column(c)
    if isinstance(svc, dict):
        console.print(f"[red]services: {svc['error']}[/]")
    else:
        for r in svc:
            colour = {"ok": "green", "unhealthy": "yellow"}.get(r["state"], "red")
            health = r["state"] + (f" ({r['status']})" if r["state"] == "unhealthy" else "")
            t.add_row(r["name"], str(r["port"]), f"[{colour}]{health}[/]",
                      "-" if r.get("uptime_s") is None else f"{r['uptime_s']:.0f}s",
                      "-" if r.get("restarts") is None else str(r["restarts"]))
        console.print(t)
    streams = st["streams"]
    if isinstance(streams, dict):
        console.print(f"[red]streams: {streams['error']}[/]")
    else:
        t = Table(title="streams")
        for c in ("stream", "entries", "last event", "consumer lag (pending)"):
            t.add_column(c)
        for r in streams:
            groups = ", ".join(f"{g} {v['lag'] if v['lag'] is not None else '?'} ({v['pending']})"
                               for g, v in sorted(r["groups"].items()))
            t.add_row(r["stream"], str(r["length"]), _age(r["last_event_ms"], now), groups or "-")
        console.print(t)
    locks = st.get("locks", [])
    if isinstance(locks, dict):
        console.print(f"[red]locks: {locks['error']}[/]")
    elif locks:
        console.print("locks: " + ", ".join(f"{r['lock']} held by {r['holder']} ({r['ttl_s']}s)" for r in locks))
    ex, venue, pnl = st["exec"], st["venue_positions"], st["pnl"]
    if isinstance(ex, dict) and "error" in ex:
        console.print(f"[red]executor state: {ex['error']}[/]")
        ex = {}
    t = Table(title="positions and PnL today (UTC)")
    for c in ("strategy", "market", "position", "entry", "realized", "unrealized"):
        t.add_column(c)
    strategies = pnl.get("strategies", {})
    shown = set()
    for p in ex.get("positions", []):
        s = strategies.get(p["strategy"], {})
        first = p["strategy"] not in shown  # the strategy's realized PnL (all markets) on its first row
        shown.add(p["strategy"])
        t.add_row(p["strategy"], p["market"], f"{p['position']:g}", f"{p['avg_entry_price']:g}",
                  _usd(s.get("realized_usd")) if first else "", _usd(p.get("unrealized_usd")))
    for name, s in sorted(strategies.items()):
        if name not in shown:
            t.add_row(name, "-", "-", "-", _usd(s.get("realized_usd")), _usd(s.get("unrealized_usd")))
    t.add_row("[bold]total[/]", "", "", "", _usd(pnl.get("realized_usd")), _usd(pnl.get("unrealized_usd")))
    console.print(t)
    if "ledger_error" in pnl:
        console.print(f"[yellow]ledger: {pnl['ledger_error']}[/]")
    acct = ex.get("account_position", {})
    if isinstance(venue, dict) and "error" in venue:
        console.print(f"account position (executor) {acct or '-'}; [red]venue: {venue['error']}[/]")
    else:
        console.print(f"account position: executor {acct or '-'}, venue {venue or '-'}")
    risk = ex.get("risk")
    state = f"{risk['state']}" + (f" ({risk['reason']})" if risk and risk["reason"] else "") if risk else "unknown"
    guards = ", ".join(f"{g['guard']} {g['market']} {g['side']}" for g in ex.get("guards", [])) or "none"
    console.print(f"executor: [bold]{state}[/]; guards engaged: {guards}; control: {ex.get('control', '-')}")


def status_command(config: Path | None, host: str, namespace: str | None, db_url: str | None, as_json: bool,
                   timeout: float = 2.0, console: Console | None = None) -> int:
    """Collect and print the status (tables, or one JSON line with ``as_json``). Returns 0, or 2
    for a bad config (the only failure: the stack being down is shown, not an error)."""
    out = console or Console()
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        out.print(f"[red]status: {exc}[/]")
        return 2
    st = asyncio.run(collect(cfg, host, namespace, db_url, timeout))
    if as_json:
        print(json.dumps(st, default=str))
    else:
        render(st, out)
    return 0
