"""Backtest outputs: ``fills.csv``, ``summary.json``, the PNG charts and ``report.html``.

``fills.csv`` is byte-identical across runs of the same inputs: fixed columns, ``\\n`` line
ends, timestamps as ISO-8601 UTC with 9 fractional digits, numbers as Python's shortest
round-trip ``repr``. Charts use matplotlib's Agg backend; ``report.html`` embeds them as base64
so it is a single self-contained file.
"""

from __future__ import annotations

import base64
import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .metrics import Recorder

FILL_COLUMNS = ("ts", "strategy", "market", "side", "price", "size", "fee", "liquidity", "venue_trade_id",
                "fill_id")
CHARTS = ("equity.png", "drawdown.png", "trades.png")


def iso_ns(ns: int) -> str:
    """ns since the epoch -> ``YYYY-MM-DDTHH:MM:SS.fffffffffZ``."""
    s, frac = divmod(ns, 10**9)
    return datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def _csv_field(v: str) -> str:
    return '"' + v.replace('"', '""') + '"' if any(c in v for c in ',"\n') else v


def write_fills_csv(path: Path, rec: Recorder) -> None:
    """One row per attributed fill, in the order the executor emitted them."""
    lines = [",".join(FILL_COLUMNS)]
    for f in rec.fills:
        row = (iso_ns(f.ts_event), f.strategy, f.market, f.side, repr(f.price), repr(f.size), repr(f.fee),
               f.liquidity, f.venue_trade_id or "", f.fill_id)
        lines.append(",".join(_csv_field(str(x)) for x in row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    path.write_text(json.dumps(summary, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")


def write_charts(out: Path, rec: Recorder) -> dict[str, Path]:
    """Equity, drawdown and trades-over-price PNGs; returns name -> path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    t = np.asarray(rec.sample_t, dtype="int64").astype("datetime64[ns]")
    paths: dict[str, Path] = {}

    fig, ax = plt.subplots(figsize=(10, 4))
    for name in ["total", *rec.strategies]:
        ax.plot(t, rec.equity[name], label=name, linewidth=1.6 if name == "total" else 1.0)
    ax.set_title("Equity (USD)")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    paths["equity.png"] = _save(fig, out / "equity.png")

    fig, ax = plt.subplots(figsize=(10, 3))
    eq = np.asarray(rec.equity["total"], dtype=float)
    if len(eq):
        peak = np.maximum.accumulate(eq)
        ax.fill_between(t, -(peak - eq), 0, color="tab:red", alpha=0.4)
    ax.set_title("Drawdown of total equity (USD)")
    ax.grid(alpha=0.3)
    paths["drawdown.png"] = _save(fig, out / "drawdown.png")

    n = max(1, len(rec.markets))
    fig, axes = plt.subplots(n, 1, figsize=(10, 3 * n), squeeze=False)
    for ax, m in zip(axes[:, 0], rec.markets, strict=True):
        ax.plot(t, rec.prices[m.symbol], color="gray", linewidth=0.8, label=f"{m.symbol} mid")
        for side, marker, color in (("buy", "^", "tab:green"), ("sell", "v", "tab:red")):
            fs = [f for f in rec.fills if f.market == m.symbol and f.side == side]
            if fs:
                ax.scatter(np.asarray([f.ts_event for f in fs], dtype="int64").astype("datetime64[ns]"),
                           [f.price for f in fs], marker=marker, color=color, s=18, label=side, zorder=3)
        ax.set_title(f"{m.symbol}: fills over price")
        ax.legend(loc="best", fontsize=8)
        ax.grid(alpha=0.3)
    paths["trades.png"] = _save(fig, out / "trades.png")
    return paths


def _save(fig: Any, path: Path) -> Path:
    """Finish a time-axis chart (dated x labels), write it as PNG (90 dpi) and free it."""
    import matplotlib.pyplot as plt

    fig.autofmt_xdate()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def write_html(path: Path, summary: dict[str, Any], charts: dict[str, Path]) -> None:
    """A single self-contained HTML page: the metrics table and the embedded charts."""
    names = ["total", *sorted(summary["per_strategy"])]
    rows = [summary["total"], *(summary["per_strategy"][n] for n in names[1:])]
    keys = [k for k in summary["total"] if k != "final_position"]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join(
        f"<tr><td>{html.escape(k)}</td>" + "".join(f"<td>{html.escape(_fmt(r.get(k)))}</td>" for r in rows) + "</tr>"
        for k in keys)
    imgs = "".join(
        f'<h2>{html.escape(name)}</h2><img alt="{html.escape(name)}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"/>' for name, p in charts.items())
    d = summary["data"]
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>lighter-stack backtest</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}td:first-child{{text-align:left}}
img{{max-width:100%}}</style></head><body>
<h1>Backtest: {html.escape(", ".join(summary["strategies"]))}</h1>
<p>Data: {html.escape(d["path"])} ({html.escape(d["kind"])}), markets {html.escape(", ".join(d["markets"]))},
{d["events"]} events, {html.escape(d["start"] or "")} .. {html.escape(d["end"] or "")}.</p>
<table><tr><th>metric</th>{head}</tr>{body}</table>
{imgs}
<p>Definitions: see summary.json "definitions" and docs/backtest.md.</p>
</body></html>
"""
    path.write_text(page, encoding="utf-8")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.4f}"
    return str(v)
