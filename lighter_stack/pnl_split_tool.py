"""``lighter-stack pnl-split``: the PnL attribution of recorded fills (paper, live or a backtest).

Fills come from a ledger database (any SQLAlchemy URL, or a ``*.db``/``*.sqlite`` file path),
read-only, or from a backtest's ``fills.csv``; the mid path comes from the market data the
fills traded on (a recording, a Parquet archive, a top-of-book CSV folder or a klines CSV, read with
:func:`lighter_stack.backtest.data.load_data`). Fills of markets without a mid in the data, or outside
the data's time span (first to last market-data event), are left out and counted in the notes.
The split itself is :mod:`shared.pnl_attribution` (definitions in ``docs/pnl-attribution.md``).

Output: ``rich`` tables (split per strategy and the total, then each one's volatility/trend
bucket table) and, on the last line, one JSON object ``{"data", "fills", "fills_read",
"fills_used", "notes", "pnl_split": {"total" | strategy: split}}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.events import Fill
from shared.pnl_attribution import attribute_all, mid_paths

SPLIT_ROWS = ("spread_capture_usd", "inventory_pnl_usd", "fees_usd", "total_usd", "fills", "maker_fills")


def read_fills(source: str) -> list[Fill]:
    """Fills from a ledger database URL (``scheme://...``), a SQLite file (``*.db``,
    ``*.sqlite``, ``*.sqlite3``) or a backtest ``fills.csv``, ordered by ``ts_event`` (ledger:
    then insertion order; CSV: then file order).

    Raises:
        FileNotFoundError: a missing file or SQLite database.
        services.ledger.store.SchemaError: a database without the ledger tables.
        ValueError: a broken ``fills.csv`` (``path:line: ...``) or an unknown kind of source.
    """
    if "://" in source or source.lower().endswith((".db", ".sqlite", ".sqlite3")):
        from sqlalchemy import select

        from services.ledger.models import FillRow
        from services.ledger.report import open_store
        from services.ledger.store import row_to_fill

        url = source if "://" in source else f"sqlite:///{Path(source).expanduser().resolve()}"
        store = open_store(url)
        try:
            with store.db.connect() as conn:
                rows = conn.execute(select(FillRow).order_by(FillRow.ts_event, FillRow.id)).all()
                return [row_to_fill(r) for r in rows]
        finally:
            store.close()
    p = Path(source)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file")
    if p.suffix.lower() != ".csv":
        raise ValueError(f"{p}: want a backtest fills.csv, a ledger *.db file or a database URL")
    from lighter_stack.backtest.report import read_fills_csv

    return sorted(read_fills_csv(p), key=lambda f: f.ts_event)


def pnl_split(data: Path, fills_source: str, strategies: list[str] | None = None) -> dict[str, Any]:
    """The PnL split of the fills of ``fills_source`` against the mid path of ``data``.

    Args:
        data: the market data the fills traded on (see :func:`lighter_stack.backtest.data.load_data`).
        fills_source: see :func:`read_fills`.
        strategies: only these strategies (default: every strategy in the fills, sorted);
            ``total`` then covers these strategies' fills.

    Returns:
        The JSON object of the module docstring.

    Raises:
        lighter_stack.backtest.data.DataError, FileNotFoundError, ValueError, SchemaError: bad inputs.
    """
    from lighter_stack.backtest.data import load_data

    md = load_data(data)
    paths, orders = mid_paths(md.events())
    fills = read_fills(fills_source)
    n_read = len(fills)
    names = sorted({f.strategy for f in fills}) if not strategies else list(dict.fromkeys(strategies))
    fills = [f for f in fills if f.strategy in names]
    notes: list[str] = []
    starts = [int(p.ts[0]) for p in paths.values() if len(p.ts)]
    end = max((p.end_ns for p in paths.values()), default=0)
    if starts:
        start = min(starts)
        outside = [f for f in fills if not start <= f.ts_event <= end]
        if outside:
            notes.append(f"{len(outside)} fills outside the data's time span were left out")
            fills = [f for f in fills if start <= f.ts_event <= end]
    split = attribute_all(fills, paths, names, orders or None)
    for sp in split.values():
        for n in sp.get("notes") or []:
            if n not in notes:
                notes.append(n)
    return {"data": str(data), "fills": fills_source, "fills_read": n_read, "fills_used": len(fills),
            "notes": notes, "pnl_split": split}


def render(result: dict[str, Any], console: Any = None) -> None:
    """Print ``result`` of :func:`pnl_split` as ``rich`` tables."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    splits = result["pnl_split"]
    cols = list(splits)
    t = Table(title=f"PnL split: {result['fills_used']} fills on {Path(result['data']).name}")
    t.add_column("")
    for c in cols:
        t.add_column(c, justify="right")
    for k in SPLIT_ROWS:
        t.add_row(k, *(_cell(splits[c].get(k)) for c in cols))
    for who in ("all", "maker"):
        for h in ("1s", "10s"):
            t.add_row(f"adverse_{who}_{h}_bps", *(_cell(splits[c]["adverse_selection_bps"][who].get(h)) for c in cols))
    console.print(t)
    for c in cols:
        sp = splits[c]
        bt = Table(title=f"{c}: by volatility/trend bucket")
        for h in ("bucket", "spread USD", "inventory USD", "fees USD", "total USD", "fills", "time %"):
            bt.add_column(h, justify="left" if h == "bucket" else "right")
        for label, b in sp["buckets"].items():
            if b["fills"] or b["time_share_pct"] or b["inventory_pnl_usd"]:
                bt.add_row(label, *(_cell(b[k]) for k in ("spread_capture_usd", "inventory_pnl_usd", "fees_usd",
                                                          "total_usd", "fills", "time_share_pct")))
        console.print(bt)
    for n in result["notes"]:
        console.print(f"[yellow]note: {n}[/yellow]")


def pnl_split_command(data: Path, fills_source: str, strategies: list[str] | None = None) -> int:
    """What ``lighter-stack pnl-split`` runs: tables, then the JSON line; exit code 0, or 2 on
    bad input (message on stderr)."""
    from rich.console import Console

    from services.ledger.store import SchemaError
    from shared.recording import RecordingError

    try:
        result = pnl_split(data, fills_source, strategies)
    except (RecordingError, FileNotFoundError, SchemaError, ValueError, OSError) as exc:
        Console(stderr=True).print(f"[red]pnl-split: {exc}[/red]")
        return 2
    render(result)
    print(json.dumps(result, sort_keys=True, allow_nan=False, separators=(",", ":")))
    return 0


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:,.4f}" if isinstance(v, float) else str(v)
