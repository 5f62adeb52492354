"""Backtest outputs: ``fills.csv``, ``summary.json``, the PNG charts and ``report.html``.

``report.html`` has a "PnL attribution" section per strategy (the ``pnl_split`` objects of the
summary, :mod:`shared.pnl_attribution`): spread capture / inventory PnL / fees, adverse
selection, fill ratios and the regime bucket table; ``pnl_buckets.png`` charts the bucket table.

``fills.csv`` is byte-identical across runs of the same inputs: fixed columns, ``\\n`` line
ends, timestamps as ISO-8601 UTC with 9 fractional digits, numbers as Python's shortest
round-trip ``repr``. Charts use matplotlib's Agg backend; ``report.html`` embeds them as base64
so it is a single self-contained file.
"""

from __future__ import annotations

import base64
import calendar
import csv
import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.events import Fill

from .metrics import Recorder

FILL_COLUMNS = ("ts", "strategy", "market", "side", "price", "size", "fee", "liquidity", "venue_trade_id",
                "fill_id")
CHARTS = ("equity.png", "drawdown.png", "trades.png", "pnl_buckets.png")
SPLIT_KEYS = ("spread_capture_usd", "inventory_pnl_usd", "fees_usd", "total_usd", "fifo_pnl_usd",
              "identity_residual_usd", "fills", "maker_fills")
BUCKET_KEYS = ("spread_capture_usd", "inventory_pnl_usd", "fees_usd", "total_usd", "fills", "time_share_pct")


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


def parse_iso_ns(text: str) -> int:
    """``YYYY-MM-DDTHH:MM:SS[.f...]Z`` (UTC; up to 9 fractional digits) -> ns since the epoch
    (the inverse of :func:`iso_ns`).

    Raises:
        ValueError: another layout.
    """
    t = text.strip().removesuffix("Z")
    head, _, frac = t.partition(".")
    if len(frac) > 9 or (frac and not frac.isdigit()):
        raise ValueError(f"bad timestamp {text!r}")
    dt = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return int(calendar.timegm(dt.timetuple())) * 10**9 + int(frac.ljust(9, "0") or 0)


def read_fills_csv(path: Path) -> list[Fill]:
    """Read a ``fills.csv`` written by :func:`write_fills_csv` back into fills (file order).

    Raises:
        ValueError: a different header or a broken row (``path:line: ...``).
        OSError: unreadable file.
    """
    out: list[Fill] = []
    with path.open(newline="", encoding="utf-8") as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if header is None or tuple(header) != FILL_COLUMNS:
            raise ValueError(f"{path}:1: header is not {','.join(FILL_COLUMNS)}")
        for n, row in enumerate(rows, start=2):
            try:
                ts, strategy, market, side, price, size, fee, liq, vtid, fill_id = row
                if side not in ("buy", "sell") or liq not in ("maker", "taker", "internal"):
                    raise ValueError(f"side {side!r} / liquidity {liq!r}")
                out.append(Fill(id=fill_id, ts_event=parse_iso_ns(ts), source="fills.csv", fill_id=fill_id,
                                strategy=strategy, market=market, side=side,  # type: ignore[arg-type]
                                price=float(price), size=float(size), fee=float(fee),
                                liquidity=liq, venue_trade_id=vtid))  # type: ignore[arg-type]
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: {exc}") from None
    return out


def write_summary(path: Path, summary: dict[str, Any]) -> None:
    path.write_text(json.dumps(summary, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")


def write_charts(out: Path, rec: Recorder, summary: dict[str, Any] | None = None) -> dict[str, Path]:
    """Equity, drawdown and trades-over-price PNGs, and the PnL-by-bucket bars when ``summary``
    has ``pnl_split`` objects; returns name -> path."""
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
    if summary is not None:
        splits = _splits(summary)
        if splits:
            paths["pnl_buckets.png"] = _bucket_chart(out / "pnl_buckets.png", splits)
    return paths


def _splits(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(name, pnl_split) for the total and each strategy (sorted) that has one."""
    names = ["total", *sorted(summary["per_strategy"])]
    rows = [summary["total"], *(summary["per_strategy"][n] for n in names[1:])]
    return [(n, r["pnl_split"]) for n, r in zip(names, rows, strict=True) if r.get("pnl_split")]


def _bucket_chart(path: Path, splits: list[tuple[str, dict[str, Any]]]) -> Path:
    """Grouped bars per volatility/trend bucket: spread capture, inventory PnL, -fees, total (USD)."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(len(splits), 1, figsize=(10, 3 * len(splits)), squeeze=False)
    series = (("spread_capture_usd", 1.0, "spread capture", "tab:green"),
              ("inventory_pnl_usd", 1.0, "inventory PnL", "tab:blue"),
              ("fees_usd", -1.0, "-fees", "tab:red"), ("total_usd", 1.0, "total", "black"))
    for ax, (name, sp) in zip(axes[:, 0], splits, strict=True):
        labels = list(sp["buckets"])
        x = np.arange(len(labels))
        for j, (key, sign, label, color) in enumerate(series):
            ax.bar(x + (j - 1.5) * 0.2, [sign * sp["buckets"][b][key] for b in labels], 0.2, label=label, color=color)
        ax.set_xticks(x, [f"{b}\n{sp['buckets'][b]['time_share_pct']:.1f}% t" for b in labels], fontsize=7)
        ax.axhline(0, color="gray", linewidth=0.6)
        ax.set_title(f"{name}: PnL by volatility/trend bucket (USD)")
        ax.legend(loc="best", fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


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
    keys = [k for k in summary["total"] if k not in ("final_position", "pnl_split")]
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
{_split_html(summary)}
{imgs}
<p>Definitions: see summary.json "definitions", docs/backtest.md and docs/pnl-attribution.md.</p>
</body></html>
"""
    path.write_text(page, encoding="utf-8")


def _split_html(summary: dict[str, Any]) -> str:
    """The "PnL attribution" section: split, adverse selection and orders per strategy, then one
    bucket table per strategy (empty when the summary has no ``pnl_split``)."""
    splits = _splits(summary)
    if not splits:
        return ""
    e = html.escape
    head = "".join(f"<th>{e(n)}</th>" for n, _ in splits)

    def row(label: str, values: list[Any]) -> str:
        return f"<tr><td>{e(label)}</td>" + "".join(f"<td>{e(_fmt(v))}</td>" for v in values) + "</tr>"

    rows = [row(k, [sp.get(k) for _, sp in splits]) for k in SPLIT_KEYS]
    for who in ("all", "maker"):
        for h in sorted({k for _, sp in splits for k in sp["adverse_selection_bps"][who] if not k.startswith("n_")},
                        key=lambda k: float(k[:-1])):
            rows.append(row(f"adverse selection {who} fills {h} (bps)",
                            [sp["adverse_selection_bps"][who].get(h) for _, sp in splits]))
            rows.append(row(f"  fills measured {who} {h}", [sp["adverse_selection_bps"][who].get(f"n_{h}")
                                                           for _, sp in splits]))
    for k in ("orders_accepted", "orders_filled", "fill_ratio", "resting_orders_accepted",
              "resting_orders_maker_filled", "maker_fill_ratio"):
        rows.append(row(k, [(sp.get("orders") or {}).get(k) for _, sp in splits]))
    parts = ["<h2>PnL attribution</h2>",
             "<p>total = spread capture + inventory PnL - fees (USD); it equals the FIFO pnl_usd "
             "(realized + unrealized at the last mid) up to rounding. Adverse selection: mid move after the "
             "fill, positive = against the fill. Buckets: volatility (EWMA of 5 s |&Delta;mid|, 45 s half-life: "
             "low &lt; 6 bps &le; mid &lt; 22 bps &le; high) / trend (45 s mid change: up &ge; +12 bps, down "
             "&le; -6 bps). See docs/pnl-attribution.md.</p>",
             f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"]
    bhead = "".join(f"<th>{e(k)}</th>" for k in BUCKET_KEYS)
    for name, sp in splits:
        brows = []
        for group in ("buckets", "by_volatility", "by_trend"):
            for label, b in sp[group].items():
                if group == "buckets" and not (b["fills"] or b["time_share_pct"] or b["inventory_pnl_usd"]):
                    continue
                tag = label if group == "buckets" else f"{label} (all {'trends' if group == 'by_volatility' else 'vol'})"
                brows.append(f"<tr><td>{e(tag)}</td>" + "".join(f"<td>{e(_fmt(b[k]))}</td>" for k in BUCKET_KEYS)
                             + "</tr>")
        parts.append(f"<h3>{e(name)}: by volatility/trend bucket</h3>"
                     f"<table><tr><th>bucket</th>{bhead}</tr>{''.join(brows)}</table>")
        for note in sp.get("notes") or []:
            parts.append(f"<p>{e(note)}</p>")
    return "\n".join(parts)


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.4f}"
    return str(v)
