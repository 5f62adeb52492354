"""The ``pnl`` report over the ledger database, and the summary the demo checks.

- :func:`pnl_stats` / :func:`recent_trades`: per-strategy and total statistics of closed trades
  and the most recent ones, as plain dicts;
- :func:`render_pnl`: the ``rich`` tables;
- :func:`pnl_command`: what ``lighter-stack pnl`` runs;
- :func:`migrate_command`: what ``lighter-stack ledger-migrate`` runs;
- :func:`ledger_stats`: fills, venue fills, internal fills, fees and realized PnL.

Time window: ``since_hours`` keeps trades whose **exit time** is at or after
``as_of - since_hours``. ``lighter-stack pnl --since-hours`` counts back from **now** (the wall
clock: the CLI passes ``now_ns=time.time_ns()``); with ``--from-last-fill`` it counts back from
the ``ts_event`` of the latest fill in the database instead, so a ledger filled by a replay or
backtest of historical data can be windowed too. The functions below default to the latest fill
(``now_ns=None``: exchange time, the same answer on every run). The report prints the instant it
used.

Wins are trades with ``pnl_usd > 0``, losses ``< 0``; a zero trade is neither (seed
behaviour). Win rate = wins / trades x 100. "PnL %" sums the trades' ``pnl_pct``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import case, distinct, func, select
from sqlalchemy.engine import make_url

from services.ledger.config import DB_URL_ENV, DEFAULT_DB_URL, LedgerConfig
from services.ledger.models import ClosedTradeRow as T
from services.ledger.models import FillRow as F
from services.ledger.store import LedgerStore, SchemaError

NS_PER_HOUR = 3_600_000_000_000


def resolve_db_url(db_url: str | None = None) -> str:
    """The ledger database URL: ``db_url`` if given, else ``LEDGER_DB_URL``, else
    ``services.ledger.db_url`` of the configuration (with its ``LS_...`` overrides), else
    ``sqlite:///var/ledger.db``."""
    if db_url:
        return db_url
    if os.environ.get(DB_URL_ENV):
        return os.environ[DB_URL_ENV]
    try:
        from shared.config import load_config

        return load_config().section("ledger", LedgerConfig).db_url
    except Exception:  # no or invalid config file: the default database
        return DEFAULT_DB_URL


def open_store(db_url: str | None = None) -> LedgerStore:
    """Open an existing ledger database read-only (creates nothing).

    Raises:
        FileNotFoundError: a SQLite file that does not exist.
        SchemaError: the database has no ledger tables or an unsupported schema version.
    """
    url = resolve_db_url(db_url)
    require_sqlite_file(url)
    return LedgerStore(url, create=False)


def require_sqlite_file(url: str) -> None:
    """Check that a file-backed SQLite ``url`` names an existing file (other URLs pass).

    Raises:
        FileNotFoundError: naming the missing file.
    """
    u = make_url(url)
    if u.drivername.startswith("sqlite") and u.database and u.database != ":memory:" \
            and not u.database.startswith("file:") and not Path(u.database).expanduser().exists():
        raise FileNotFoundError(f"no ledger database at {u.database}")


def _as_of(conn, now_ns: int | None) -> int:
    if now_ns is not None:
        return now_ns
    return int(conn.scalar(select(func.max(F.ts_event))) or 0)


def _filters(strategy: str | None, market: str | None, since_ns: int | None) -> list:
    where = []
    if strategy:
        where.append(T.strategy == strategy)
    if market:
        where.append(T.market == market)
    if since_ns is not None:
        where.append(T.exit_ts >= since_ns)
    return where


def _agg_columns() -> list:
    win, loss = T.pnl_usd > 0.0, T.pnl_usd < 0.0
    return [
        func.count().label("trades"),
        func.sum(case((win, 1), else_=0)).label("wins"),
        func.sum(case((loss, 1), else_=0)).label("losses"),
        func.sum(T.pnl_usd).label("pnl_usd"),
        func.sum(T.pnl_pct).label("pnl_pct"),
        func.sum(case((win, T.pnl_usd), else_=0.0)).label("win_usd"),
        func.sum(case((loss, T.pnl_usd), else_=0.0)).label("loss_usd"),
        func.sum(case((win, T.pnl_pct), else_=0.0)).label("win_pct"),
        func.sum(case((loss, T.pnl_pct), else_=0.0)).label("loss_pct"),
        func.max(T.pnl_usd).label("best_usd"),
        func.min(T.pnl_usd).label("worst_usd"),
        func.max(T.pnl_pct).label("best_pct"),
        func.min(T.pnl_pct).label("worst_pct"),
        func.sum(T.entry_fee_usd + T.exit_fee_usd).label("fees_usd"),
        func.sum(T.size * T.entry_price).label("entry_notional_usd"),
    ]


def _stats(r) -> dict[str, Any]:
    n, wins, losses = int(r.trades or 0), int(r.wins or 0), int(r.losses or 0)
    return {
        "trades": n, "wins": wins, "losses": losses,
        "win_rate_pct": wins / n * 100.0 if n else 0.0,
        "pnl_usd": float(r.pnl_usd or 0.0), "pnl_pct": float(r.pnl_pct or 0.0),
        "avg_pnl_usd": float(r.pnl_usd) / n if n else None,
        "avg_pnl_pct": float(r.pnl_pct) / n if n else None,
        "avg_win_usd": float(r.win_usd) / wins if wins else None,
        "avg_loss_usd": float(r.loss_usd) / losses if losses else None,
        "avg_win_pct": float(r.win_pct) / wins if wins else None,
        "avg_loss_pct": float(r.loss_pct) / losses if losses else None,
        "best_usd": float(r.best_usd) if n else None, "worst_usd": float(r.worst_usd) if n else None,
        "best_pct": float(r.best_pct) if n else None, "worst_pct": float(r.worst_pct) if n else None,
        "fees_usd": float(r.fees_usd or 0.0), "entry_notional_usd": float(r.entry_notional_usd or 0.0),
    }


def pnl_stats(db_url: str | None = None, strategy: str | None = None, since_hours: float | None = None,
              market: str | None = None, now_ns: int | None = None) -> dict[str, Any]:
    """Statistics of the closed trades matching the filters.

    Args:
        db_url: ledger database (see :func:`resolve_db_url`).
        strategy, market: keep only this strategy / market.
        since_hours: keep trades whose exit time is within this many hours before ``as_of``.
        now_ns: ``as_of`` in ns since the epoch; default the latest fill's ``ts_event``.

    Returns:
        ``{"db", "as_of_ns", "since_ns", "strategy", "market", "strategies": {name: stats},
        "total": stats}``; each ``stats`` has ``trades``, ``wins``, ``losses``, ``win_rate_pct``,
        ``pnl_usd``, ``pnl_pct`` (sum of trade %), ``avg_pnl_usd``, ``avg_pnl_pct``,
        ``avg_win_usd``, ``avg_loss_usd``, ``avg_win_pct``, ``avg_loss_pct``, ``best_usd``,
        ``worst_usd``, ``best_pct``, ``worst_pct``, ``fees_usd`` (fees apportioned to the closed
        trades) and ``entry_notional_usd``. Averages/best/worst are ``None`` when undefined.

    Raises:
        FileNotFoundError, SchemaError: see :func:`open_store`.
    """
    store = open_store(db_url)
    try:
        with store.db.connect() as conn:
            as_of = _as_of(conn, now_ns)
            since_ns = as_of - int(since_hours * NS_PER_HOUR) if since_hours is not None else None
            where = _filters(strategy, market, since_ns)
            rows = conn.execute(select(T.strategy, *_agg_columns()).where(*where)
                                .group_by(T.strategy).order_by(T.strategy)).all()
            total = conn.execute(select(*_agg_columns()).where(*where)).one()
        return {"db": store.safe_url, "as_of_ns": as_of, "since_ns": since_ns, "strategy": strategy,
                "market": market, "strategies": {r.strategy: _stats(r) for r in rows}, "total": _stats(total)}
    finally:
        store.close()


def recent_trades(db_url: str | None = None, n: int = 10, strategy: str | None = None,
                  since_hours: float | None = None, market: str | None = None,
                  now_ns: int | None = None) -> list[dict[str, Any]]:
    """The ``n`` most recent closed trades (by exit time, newest first) matching the filters
    (same meaning as :func:`pnl_stats`). Each dict holds the ``closed_trades`` columns: prices,
    fees and ``pnl_usd`` in USD, ``size`` in base units, ``entry_ts``/``exit_ts`` in ns (UTC),
    ``exit_reason`` (the closing fill's reason, may be empty).

    Raises:
        FileNotFoundError, SchemaError: see :func:`open_store`.
    """
    if n <= 0:
        return []
    store = open_store(db_url)
    try:
        with store.db.connect() as conn:
            as_of = _as_of(conn, now_ns)
            since_ns = as_of - int(since_hours * NS_PER_HOUR) if since_hours is not None else None
            q = (select(T).where(*_filters(strategy, market, since_ns))
                 .order_by(T.exit_ts.desc(), T.id.desc()).limit(n))
            return [dict(r) for r in conn.execute(q).mappings().all()]
    finally:
        store.close()


def fmt_ts(ns: int | None) -> str:
    """``YYYY-MM-DD HH:MM:SS`` UTC of a ns timestamp ("-" for none/0)."""
    if not ns:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _num(v: float | None, fmt: str = "{:,.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def _pnl(v: float | None, fmt: str = "{:+,.2f}") -> str:
    if v is None:
        return "-"
    color = "green" if v > 0 else "red" if v < 0 else "white"
    return f"[{color}]{fmt.format(v)}[/{color}]"


def render_pnl(stats: dict[str, Any], recent: list[dict[str, Any]], console: Console | None = None) -> None:
    """Print the statistics table (one row per strategy, then the total) and the recent
    trades table with ``rich``."""
    console = console or Console()
    window = f"since {fmt_ts(stats['since_ns'])} UTC " if stats["since_ns"] is not None else "all time "
    filt = "".join(f", {k} {stats[k]}" for k in ("strategy", "market") if stats.get(k))
    console.print(f"Ledger {stats['db']}: {window}up to {fmt_ts(stats['as_of_ns'])} UTC{filt}")
    t = Table(title="Realized PnL (FIFO, net of fees)")
    for col in ("strategy", "trades", "wins", "losses", "win rate %", "PnL %", "PnL USD", "avg PnL USD",
                "avg win USD", "avg loss USD", "best USD", "worst USD"):
        t.add_column(col, justify="left" if col == "strategy" else "right", no_wrap=col == "strategy")

    def row(name: str, s: dict[str, Any], style: str | None = None) -> None:
        t.add_row(name, str(s["trades"]), str(s["wins"]), str(s["losses"]), f"{s['win_rate_pct']:.2f}",
                  _pnl(s["pnl_pct"], "{:+.2f}"), _pnl(s["pnl_usd"]), _pnl(s["avg_pnl_usd"], "{:+,.4f}"),
                  _num(s["avg_win_usd"]),
                  _num(s["avg_loss_usd"]), _pnl(s["best_usd"]), _pnl(s["worst_usd"]), style=style)

    for name, s in stats["strategies"].items():
        row(name, s)
    t.add_section()
    row("TOTAL", stats["total"], style="bold")
    console.print(t)
    if not recent:
        console.print("no closed trades" if not stats["total"]["trades"] else "")
        return
    r = Table(title=f"{len(recent)} most recent closed trades")
    for col in ("exit time (UTC)", "strategy", "market", "side", "size", "entry price", "exit price",
                "PnL USD", "PnL %", "exit reason"):
        r.add_column(col, no_wrap=True,
                     justify="right" if col in {"size", "entry price", "exit price", "PnL USD", "PnL %"} else "left")
    for tr in recent:
        r.add_row(fmt_ts(tr["exit_ts"]), tr["strategy"], tr["market"], tr["side"], f"{tr['size']:.6g}",
                  f"{tr['entry_price']:,.4f}", f"{tr['exit_price']:,.4f}", _pnl(tr["pnl_usd"], "{:+,.4f}"),
                  _pnl(tr["pnl_pct"], "{:+.3f}"), escape(tr["exit_reason"] or "-"))
    console.print(r)


def pnl_command(db_url: str | None, strategy: str | None, since_hours: float | None, recent: int,
                market: str | None, *, now_ns: int | None = None, console: Console | None = None) -> int:
    """``lighter-stack pnl``: print per-strategy and total stats (with the average PnL per trade)
    and the ``recent`` most recent closed trades (with their exit reason).

    Args:
        db_url: ledger database URL (default: see :func:`resolve_db_url`).
        strategy, market: filters.
        since_hours: exit time within the last N hours before ``now_ns``.
        recent: how many recent trades to list (0 = none).
        now_ns: reference instant in ns since the epoch (the CLI passes the wall clock); default
            the latest fill's ``ts_event``.
        console: where to print (default stdout).

    Returns:
        0, or 1 when the database is missing or is not a ledger database (message printed).
    """
    if console is None:
        console = Console()
        if not console.is_terminal:  # piped/captured: do not squeeze the tables into 80 columns
            console = Console(width=max(console.width, 150))
    try:
        stats = pnl_stats(db_url, strategy, since_hours, market, now_ns)
        rec = recent_trades(db_url, recent, strategy, since_hours, market, now_ns)
    except (FileNotFoundError, SchemaError) as exc:
        console.print(f"[red]pnl: {exc}[/red]")
        return 1
    render_pnl(stats, rec, console)
    return 0


def migrate_command(db_url: str | None, console: Console | None = None) -> int:
    """``lighter-stack ledger-migrate``: bring an existing ledger database to the current schema
    version (:func:`services.ledger.store.upgrade_database`), printing the versions before and after.

    Returns:
        0, or 1 when a SQLite file does not exist (nothing is created) or the database is newer
        than this code (message printed).
    """
    from services.ledger.store import upgrade_database

    console = console or Console()
    url = resolve_db_url(db_url)
    try:
        require_sqlite_file(url)
        before, now = upgrade_database(url)
    except (FileNotFoundError, SchemaError) as exc:
        console.print(f"[red]ledger-migrate: {exc}[/red]")
        return 1
    shown = make_url(url).render_as_string(hide_password=True)
    if before == now:
        console.print(f"ledger {shown}: schema version {now}, nothing to do")
    else:
        console.print(f"ledger {shown}: schema version {before if before is not None else 'none'} -> {now}")
    return 0


def ledger_stats(db_url: str | None = None) -> dict[str, Any]:
    """Summary of the ledger database (the demo compares it with venue-sim's record).

    Returns:
        ``db``, ``schema_version``, ``fills`` (rows), ``fills_by_liquidity``
        ``{maker|taker|internal: count}``, ``internal_fills``, ``venue_fills`` (distinct non-empty
        ``venue_trade_id``), ``venue_fills_by_market`` ``{market: distinct venue trade ids}``,
        ``venue_fill_size_total`` ``{market: sum of size of fills with a venue_trade_id}``
        (base units), ``closed_trades``, ``realized_pnl_usd`` and
        ``realized_pnl_usd_by_strategy`` (FIFO, net of the fees apportioned to closed trades),
        ``fees_usd`` and ``fees_usd_by_strategy`` (all fill fees, including those of still-open
        lots), ``positions`` ``{strategy: {market: signed base units}}`` (non-zero only) and
        ``last_fill_ts_event`` (ns, 0 when empty).

    Raises:
        FileNotFoundError, SchemaError: see :func:`open_store`.
    """
    store = open_store(db_url)
    venue = F.venue_trade_id != ""
    signed = case((F.side == "buy", F.size), else_=-F.size)
    try:
        with store.db.connect() as conn:
            fills = conn.scalar(select(func.count()).select_from(F)) or 0
            by_liq = dict(conn.execute(select(F.liquidity, func.count()).group_by(F.liquidity)).all())
            venue_fills = conn.scalar(select(func.count(distinct(F.venue_trade_id))).where(venue)) or 0
            venue_by_market = conn.execute(
                select(F.market, func.count(distinct(F.venue_trade_id)), func.sum(F.size))
                .where(venue).group_by(F.market).order_by(F.market)).all()
            closed = conn.scalar(select(func.count()).select_from(T)) or 0
            pnl_by = dict(conn.execute(select(T.strategy, func.sum(T.pnl_usd)).group_by(T.strategy)
                                       .order_by(T.strategy)).all())
            fees_by = dict(conn.execute(select(F.strategy, func.sum(F.fee)).group_by(F.strategy)
                                        .order_by(F.strategy)).all())
            pos_rows = conn.execute(select(F.strategy, F.market, func.sum(signed)).group_by(F.strategy, F.market)
                                    .order_by(F.strategy, F.market)).all()
            last = conn.scalar(select(func.max(F.ts_event))) or 0
        positions: dict[str, dict[str, float]] = {}
        for s, m, p in pos_rows:
            if abs(p or 0.0) > 1e-12:
                positions.setdefault(s, {})[m] = float(p)
        return {
            "db": store.safe_url, "schema_version": store.schema_version,
            "fills": int(fills), "fills_by_liquidity": {k: int(v) for k, v in by_liq.items()},
            "internal_fills": int(by_liq.get("internal", 0)),
            "venue_fills": int(venue_fills),
            "venue_fills_by_market": {m: int(n) for m, n, _ in venue_by_market},
            "venue_fill_size_total": {m: float(sz or 0.0) for m, _, sz in venue_by_market},
            "closed_trades": int(closed),
            "realized_pnl_usd": float(sum(v or 0.0 for v in pnl_by.values())),
            "realized_pnl_usd_by_strategy": {k: float(v or 0.0) for k, v in pnl_by.items()},
            "fees_usd": float(sum(v or 0.0 for v in fees_by.values())),
            "fees_usd_by_strategy": {k: float(v or 0.0) for k, v in fees_by.items()},
            "positions": positions,
            "last_fill_ts_event": int(last),
        }
    finally:
        store.close()
