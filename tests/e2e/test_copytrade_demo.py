"""End-to-end: a short demo driven through the copy-trade API (``demo --copytrade``): the
requests become copytrade targets, the executor trades them on venue-sim, and the fills reach
the ledger attributed to ``copytrade``; repeated request ids never trade twice."""

from __future__ import annotations

import pytest
import redis

from lighter_stack.copytrade_drive import SCRIPT
from lighter_stack.demo import Demo, DemoOptions
from lighter_stack.pnl_split_tool import read_fills


@pytest.mark.e2e
def test_demo_driven_by_the_copytrade_api_reaches_the_ledger(tmp_path, redis_url, monkeypatch):
    import asyncio

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LIGHTER_STACK_DATA", str(tmp_path))
    demo = Demo(DemoOptions(minutes=20, speed=120, timeout_s=240, strategies=[], copytrade=True,
                            workdir=tmp_path / "demo"))
    try:
        summary = asyncio.run(demo.run())
    finally:
        ns = f"paper-demo-{demo.run_id}"
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{ns}:*"))
        if keys:
            client.delete(*keys)
        client.close()
    requests = summary["copytrade_requests"]
    assert [r["request_id"] for r in requests] == [f"demo-{n}" for n in range(len(SCRIPT))]
    assert all(r["status"] == "done" for r in requests), requests
    assert requests[-1]["target"] == 0.0 and requests[-2]["target"] == 0.0  # both closed
    fills = read_fills(f"sqlite:///{demo.workdir / 'ledger.db'}")
    assert fills and {f.strategy for f in fills} == {"copytrade"}
    assert summary["strategy_fills"]["copytrade"] == summary["fills"] > 0 and summary["fills_attributed"]
    assert summary["ledger_fills"] == summary["venue_fills"] and summary["quantities_match"]
    net: dict[str, float] = {}
    for f in fills:
        net[f.market] = net.get(f.market, 0.0) + (f.size if f.side == "buy" else -f.size)
    assert all(abs(v) < 1e-9 for v in net.values()), net  # closed: each request traded once
