"""The paper-run check of the market maker (issue 4): maker + hedger on the bundled recording
through venue-sim, every service its own OS process on a real Redis, venue-sim in lockstep (so
the run is deterministic and the recorded hour takes about a minute).

Checked on the whole recorded hour, from the exec stream, venue-sim's record and the ledger:

- inventory: after every fill, and in every ``PositionSnapshot``, the account position of each
  market is within the executor's ``max_position`` and ``max_notional_usd`` of the config used,
  and the maker's own inventory within its ``max_inventory_units``;
- no self-trade: no venue fill has our account on both sides, and venue-sim canceled no resting
  order to prevent one;
- requests: the busiest rolling minute (sim time) of our account at venue-sim holds at most the
  Standard tier's 60 requests, and no request was refused with 23000;
- attribution: maker and hedger fills reached the ledger under their own names, as many as the
  exec stream carried;
- the maker's PnL split (spread capture, inventory PnL, fees) adds up to its FIFO realized +
  unrealized PnL at the last mid (the identity of ``shared/pnl_attribution.py``).
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from lighter_stack.demo import Demo, DemoOptions
from lighter_stack.pnl_split_tool import pnl_split, read_fills
from services.executor.config import ExecutorConfig
from services.ledger.engine import LedgerEngine
from services.maker.config import MakerConfig
from shared.bus import Bus
from shared.config import load_config
from shared.events import Fill, OrderRejected, PositionSnapshot
from shared.pnl_attribution import mid_paths
from shared.recording import read_recording
from shared.redis_util import async_client

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "paper.yaml"
EPS = 1e-9
# lockstep's quiet window (wall ms; default 30): the checks below hold whether or not a step is
# released early, and 15 ms keeps the recorded hour near a minute of wall time
SETTLE_MS = 15
STANDARD_REQUESTS_PER_MIN = 60  # Lighter Standard tier, per account, unweighted (lighter-api.md §6.8)


async def _exec_events_and_cleanup(redis_url: str, ns: str, account: int) -> list:
    """Every event of the account's exec stream, then delete the run's streams."""
    redis = async_client(redis_url)
    try:
        bus = Bus(redis, ns)
        events = [d.event for d in await bus.read_all(bus.streams.exec(account)) if d.event is not None]
        keys = [k async for k in redis.scan_iter(match=f"{ns}:*")]
        if keys:
            await redis.delete(*keys)
        return events
    finally:
        await redis.aclose()


def _fifo_pnl_at_last_mid(fills: list[Fill], last_mid: dict[str, float]) -> float:
    """FIFO realized PnL (the ledger's engine, fees apportioned) plus the open lots marked at the
    last mid net of their remaining entry fees, USD."""
    eng = LedgerEngine()
    realized = sum(ct.pnl_usd for f in fills for ct in eng.apply_fill(f))
    unrealized = 0.0
    for (strategy, market) in eng.positions():
        for lot in eng.open_lots(strategy, market):
            unrealized += lot.direction * lot.size * (last_mid[market] - lot.price) - lot.fee_per_unit * lot.size
    return realized + unrealized


@pytest.mark.e2e
def test_maker_and_hedger_paper_run(tmp_path, redis_url, recording_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LIGHTER_STACK_DATA", str(tmp_path))
    cfg = load_config(CONFIG)
    ex = cfg.section("executor", ExecutorConfig)
    mk = cfg.section("maker", MakerConfig)

    demo = Demo(DemoOptions(recording=recording_path, lockstep=True, workdir=tmp_path / "demo", timeout_s=240,
                            config=CONFIG, strategies=["maker", "hedger"],
                            overrides={"LS_SERVICES__VENUE_SIM__LOCKSTEP_SETTLE_MS": str(SETTLE_MS)}))
    summary = asyncio.run(demo.run())
    print(summary)
    events = asyncio.run(_exec_events_and_cleanup(redis_url, summary["namespace"], cfg.account_index))
    fills = [e for e in events if isinstance(e, Fill)]
    assert summary["ledger_fills"] == summary["venue_fills"] > 0 and summary["quantities_match"], summary

    # (a) inventory within the configured limits at every exec event
    account_pos: dict[str, float] = defaultdict(float)
    maker_inv: dict[str, float] = defaultdict(float)
    snapshots = 0
    for ev in events:
        if isinstance(ev, Fill):
            signed = ev.size if ev.side == "buy" else -ev.size
            account_pos[ev.market] += signed
            if ev.strategy == mk.strategy:
                maker_inv[ev.market] += signed
                assert abs(maker_inv[ev.market]) <= mk.max_inventory_units[ev.market] + EPS, (ev, maker_inv)
            pos, price = account_pos[ev.market], ev.price
        elif isinstance(ev, PositionSnapshot):
            snapshots += 1
            pos, price = ev.account_position, ev.avg_entry_price or 0.0
        else:
            continue
        assert abs(pos) <= ex.position_limit(ev.market) + EPS, (ev, pos)
        assert abs(pos) * price <= ex.notional_limit(ev.market) + EPS, (ev, pos)
    assert snapshots > 0

    # (b) no self-trade
    assert summary["self_trade_fills"] == 0 and summary["self_trade_cancels"] == 0, summary
    assert demo.venue_status["self_trade_cancels"] == 0
    own = str(cfg.account_index)
    assert demo.venue_status["accounts"][own]["fills"] == summary["venue_fills"]

    # (c) the Standard tier's request budget held, and the venue never had to refuse a request
    assert demo.venue_status["rate_limit"] == {"enabled": True, "limit_per_min": STANDARD_REQUESTS_PER_MIN,
                                               "request_weight": 1}
    assert 0 < summary["max_requests_per_min"] <= STANDARD_REQUESTS_PER_MIN, summary
    assert summary["rate_limited"] == 0
    assert not [e for e in events if isinstance(e, OrderRejected) and e.code == 23000]

    # (d) maker and hedger fills in the ledger, attributed to them
    by_strategy = Counter(f.strategy for f in fills)
    assert summary["strategy_fills"] == dict(sorted(by_strategy.items())), summary
    assert summary["fills_attributed"] is True
    assert summary["strategy_fills"].get("maker", 0) > 0 and summary["strategy_fills"].get("hedger", 0) > 0, summary
    assert set(summary["strategy_fills"]) <= {"maker", "hedger"}

    # (e) the maker's PnL split equals its FIFO realized + unrealized at the last mid
    db = f"sqlite:///{demo.workdir / 'ledger.db'}"
    split = pnl_split(recording_path, db, ["maker"])["pnl_split"]["maker"]
    assert split["fills"] == summary["strategy_fills"]["maker"]
    parts = split["spread_capture_usd"] + split["inventory_pnl_usd"] - split["fees_usd"]
    assert abs(parts - split["total_usd"]) <= 2e-6
    _, md = read_recording(recording_path)
    paths, _ = mid_paths(md)
    last_mid = {m: float(p.mid[-1]) for m, p in paths.items() if len(p.mid)}
    maker_fills = [f for f in read_fills(db) if f.strategy == "maker"]
    assert abs(split["total_usd"] - _fifo_pnl_at_last_mid(maker_fills, last_mid)) <= 2e-6 * max(1, len(maker_fills))
