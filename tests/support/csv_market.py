"""A seeded top-of-book + trades CSV folder (the djienne collector layout: ``prices_<SYM>.csv``,
``trades_<SYM>.csv``) of a market no config lists, generated with :mod:`lighter_stack.pricesim`."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from lighter_stack.pricesim import SimParams, simulate
from shared.events import Bbo, Trade
from shared.markets import MarketInfo


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def write_csv_market(folder: Path, symbol: str = "DOGE", minutes: float = 120.0, seed: int = 7,
                     price: float = 0.25) -> Path:
    """Write ``folder/prices_<symbol>.csv`` and ``trades_<symbol>.csv`` (no ``market_id``
    column, as older collector files): a BBO every 2 s and about one trade per 2 s of a
    ``price`` USD market with 5 price decimals, volatile enough (8-20 bps per √minute) for
    every strategy to trade; same arguments, same bytes. Returns ``folder``."""
    m = MarketInfo(symbol=symbol, market_id=77, size_decimals=0, price_decimals=5, min_base_amount=1.0,
                   min_quote_amount=10.0)
    p = SimParams(market=m, start_price=price, duration_s=minutes * 60.0, bbo_interval_ms=2000, vol_bps=(8.0, 20.0),
                  trade_rate_per_s=0.5, trade_size_median=2000.0, bbo_size_base=(5000.0, 50000.0))
    _, events = simulate(p, seed)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"prices_{symbol}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "bid_price", "bid_size", "ask_price", "ask_size"])
        for e in events:
            if isinstance(e, Bbo):
                w.writerow([_iso(e.ts_event), f"{e.bid_px:.5f}", f"{e.bid_sz:g}", f"{e.ask_px:.5f}", f"{e.ask_sz:g}"])
    with open(folder / f"trades_{symbol}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "price", "size", "side", "trade_id", "usd_amount"])
        trades = [e for e in events if isinstance(e, Trade)]
        for i, t in enumerate(trades):
            w.writerow([_iso(t.ts_event), f"{t.price:.5f}", f"{t.size:g}", t.taker_side, i + 1,
                        f"{t.price * t.size:.6f}"])
    return folder
