"""End-to-end: a short demo driven through the copy-trade API (``demo --copytrade``): the
requests become copytrade targets, the executor trades them on venue-sim, and the fills reach
the ledger attributed to ``copytrade``; repeated request ids never trade twice."""

from __future__ import annotations

import pytest
import redis

from lighter_stack.copytrade_drive import SCRIPT
from lighter_stack.demo import Demo, DemoOptions
from lighter_stack.pnl_split_tool import read_fills
from shared.events import OrderAccepted, OrderCanceled, OrderRejected, TargetPosition, decode


@pytest.mark.e2e
def test_demo_driven_by_the_copytrade_api_reaches_the_ledger(tmp_path, redis_url, monkeypatch):
    import asyncio

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LIGHTER_STACK_DATA", str(tmp_path))
    demo = Demo(DemoOptions(minutes=20, speed=60, timeout_s=240, strategies=[], copytrade=True,
                            workdir=tmp_path / "demo"))
    client = redis.Redis.from_url(redis_url)
    try:
        summary = asyncio.run(demo.run())
        exec_events = [decode(f[b"event"]) for _, f in client.xrange(f"{summary['namespace']}:exec:{demo.cfg.account_index}")]
        client_intents = client.xrange(f"{summary['namespace']}:intent:{demo.cfg.account_index}")
    finally:
        ns = f"paper-demo-{demo.run_id}"
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
    assert all(abs(v) < 1e-9 for v in net.values()), net  # closed
    intents = [decode(f[b"event"]) for _, f in client_intents]
    targets = [e for e in intents if isinstance(e, TargetPosition) and e.strategy == "copytrade"]
    assert len(targets) == len(SCRIPT)  # each request (sent twice) published once
    # the stop-losses reached the venue as reduce-only stop-loss orders, and were cancelled on close
    stops = [e for e in exec_events if isinstance(e, OrderAccepted) and e.order_type == "stop-loss"]
    assert stops and all(e.strategy == "copytrade" and e.reduce_only for e in stops)
    assert not [e for e in exec_events if isinstance(e, OrderRejected) and e.strategy == "copytrade" and e.code >= 21000]
    stop_cois = {e.client_order_index for e in stops}
    assert {e.client_order_index for e in exec_events if isinstance(e, OrderCanceled)} >= stop_cois
