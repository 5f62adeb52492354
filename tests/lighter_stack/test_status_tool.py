"""lighter_stack/status_tool.py against a real Redis namespace: one service answering /health,
the others down, the venue and the ledger unreachable; nothing raises, each part shows what it
could read."""

from __future__ import annotations

import asyncio

import pytest
from rich.console import Console

from lighter_stack import registry
from lighter_stack.status_tool import collect, render
from shared.bus import Bus
from shared.config import StackConfig, VenueConfig
from shared.control import control_event
from shared.events import Bbo, GuardState, PositionSnapshot, RiskState
from shared.metrics import start_http
from shared.redis_util import free_port
from shared.service import note_start

T = 1_700_000_000_000_000_000


def _cfg(namespace: str, redis_url: str, ports: dict[str, int]) -> StackConfig:
    services = {name: ({"port": p} if name == "venue-sim" else {"http_port": p}) for name, p in ports.items()}
    return StackConfig(namespace=namespace, redis_url=redis_url, markets=["BTC"], services=services,
                       venue=VenueConfig(rest_url=f"http://127.0.0.1:{free_port()}", ws_url="ws://127.0.0.1:1/x"))


async def test_status_of_a_partly_running_stack(redis_client, redis_url, namespace, tmp_path):
    ports = {name: free_port() for name in registry.SERVICES}
    cfg = _cfg(namespace, redis_url, ports)
    bus = Bus(redis_client, namespace)
    ex = bus.streams.exec(cfg.account_index)
    await bus.publish(ex, [
        RiskState(id="r1", ts_event=T, state="running"),
        PositionSnapshot(id="p1", ts_event=T + 1, strategy="trend", market="BTC", position=0.5,
                         avg_entry_price=100.0, account_position=0.5),
        PositionSnapshot(id="p2", ts_event=T + 2, strategy="trend", market="BTC", position=0.25,
                         avg_entry_price=100.0, account_position=0.25),
        GuardState(id="g1", ts_event=T + 3, guard="max_position", market="BTC", side="buy", engaged=True,
                   position=0.25, limit=0.2),
        RiskState(id="r2", ts_event=T + 4, state="reducing", reason="flatten"),
    ])
    await bus.publish(bus.streams.book("BTC"), [Bbo(id="b1", ts_event=T, market="BTC", bid_px=109.0, bid_sz=1.0,
                                                    ask_px=111.0, ask_sz=1.0)])
    await bus.publish(bus.streams.control, [control_event("pause", "grid", ts_ns=T)])
    await redis_client.xgroup_create(ex, "ledger", id="0")
    await redis_client.set(f"{namespace}:lock:executor:1001", "box-a:12:beef", px=9000)
    for _ in range(3):  # the executor started three times: two restarts
        await note_start(bus, "executor")
    http = await start_http(ports["executor"], lambda: {"status": "ok", "uptime_s": 12.0}, host="127.0.0.1")
    try:
        st = await collect(cfg, db_url=f"sqlite:///{tmp_path / 'missing.db'}", timeout=1.0)
    finally:
        await http.cleanup()

    svc = {r["name"]: r for r in st["services"]}
    assert svc["executor"]["state"] == "ok" and svc["executor"]["uptime_s"] == 12.0
    assert svc["executor"]["restarts"] == 2 and svc["executor"]["started_at"] > 0
    assert {r["state"] for n, r in svc.items() if n != "executor"} == {"down"}
    streams = {r["stream"]: r for r in st["streams"]}
    assert streams[ex]["length"] == 5 and streams[ex]["groups"]["ledger"]["lag"] == 5
    assert streams[ex]["last_event_ms"] is not None
    e = st["exec"]
    assert e["positions"] == [{"strategy": "trend", "market": "BTC", "position": 0.25, "avg_entry_price": 100.0,
                               "ts_event": T + 2, "unrealized_usd": pytest.approx(2.5)}]
    assert e["account_position"] == {"BTC": 0.25}
    assert e["risk"]["state"] == "reducing" and e["risk"]["reason"] == "flatten"
    assert [g["guard"] for g in e["guards"]] == ["max_position"]
    assert e["control"] == "paused: grid"
    (lock,) = st["locks"]
    assert lock["lock"] == "executor:1001" and lock["holder"] == "box-a:12:beef" and 0 < lock["ttl_s"] <= 9.0
    assert "error" in st["venue_positions"]
    pnl = st["pnl"]
    assert "ledger_error" in pnl
    assert pnl["strategies"]["trend"]["unrealized_usd"] == pytest.approx(0.25 * (110.0 - 100.0))
    console = Console(record=True, width=160)
    render(st, console)
    text = console.export_text()
    assert "reducing (flatten)" in text and "paused: grid" in text and "down" in text
    assert "executor:1001 held by box-a:12:beef" in text


async def test_status_with_redis_down_shows_everything_down(tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    ports = {name: free_port() for name in registry.SERVICES}
    cfg = _cfg("nowhere", f"redis://127.0.0.1:{free_port()}/0", ports)
    st = await asyncio.wait_for(collect(cfg, db_url=f"sqlite:///{tmp_path / 'x.db'}", timeout=0.5), 30)
    assert {r["state"] for r in st["services"]} == {"down"}
    assert "error" in st["streams"] and "error" in st["exec"] and "error" in st["locks"]
