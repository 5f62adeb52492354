"""Cost of venue-sim's write-through state file (``state_path``, ``services/venue_sim/state.py``);
prints figures as JSON, never fails on them.

venue-sim writes its whole state before it answers an accepted tx and before it announces an
account change, so the write is on the tx path. Figures (wall milliseconds per write, best of
``--repeat`` rounds of ``--n`` writes; bytes of the file):

- ``after_replay``: the bundled recording replayed to its end (``speed`` 0), no fills;
- ``with_<k>_fills``: the same plus ``k`` fills in the engine's history (the part of the state
  that grows over a run) and as many finished orders.

Usage: ``python bench/venue_state.py [--n 20] [--repeat 3] [--fills 1000,10000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import deque

import msgspec

from services.venue_sim.config import VenueSimConfig
from services.venue_sim.runner import build
from shared.venue.matching import Fill, Order


def _best_ms(fn, n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return round(best * 1e3, 3)


async def _main(n: int, repeat: int, fills: list[int]) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as d:
        server, replay, _ = build(VenueSimConfig(fills_file="", speed=0, state_path=f"{d}/venue.state"))
        task = asyncio.create_task(replay.run())
        while replay.state != "finished":
            await asyncio.sleep(0.05)
        replay.stop()
        await task
        store = server.state_store
        assert store is not None
        out: dict[str, object] = {"events": replay.replayed}
        out["after_replay"] = {"ms": _best_ms(store.save, n, repeat), "bytes": store.last_bytes}
        fill = Fill(trade_id=1, market="BTC", market_id=1, price=100000.0, size=0.01, price_ticks=1000000,
                    size_lots=1000, taker_account=1001, maker_account=0, taker_order_index=2**48,
                    maker_order_index=2**49, taker_client_order_index=1, maker_client_order_index=0,
                    taker_side="buy", maker_side="sell", taker_fee=0.0, maker_fee=0.0, ts_ns=time.time_ns(),
                    tx_hash="ab" * 32)
        order = Order(order_index=2**48, client_order_index=1, account=1001, market_id=1, is_ask=False,
                      price=1000000, initial_amount=1000, remaining=0, filled=1000, status="filled",
                      tx_hash="cd" * 32)
        for k in fills:
            eng = server.engine
            eng.fills = [msgspec.structs.replace(fill, trade_id=i) for i in range(k)]
            eng.inactive[1001] = deque((msgspec.structs.replace(order, order_index=2**48 + i) for i in range(k)),
                                       maxlen=1000)  # the engine keeps 1000 finished orders per account
            out[f"with_{k}_fills"] = {"ms": _best_ms(store.save, n, repeat), "bytes": store.last_bytes}
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fills", default="1000,10000")
    a = ap.parse_args()
    print(json.dumps(asyncio.run(_main(a.n, a.repeat, [int(x) for x in a.fills.split(",") if x])), indent=2))


if __name__ == "__main__":
    main()
