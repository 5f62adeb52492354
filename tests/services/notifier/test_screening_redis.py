"""The notifier against a real Redis with bad entries written straight into the exec and control
streams: each lands in ``{ns}:dlq`` with its reason and never reaches the engine (no notice, no
position); the good ones around them are folded."""

from __future__ import annotations

import pytest
from dlq_kit import builtins, dead_letters, reasons_by_entry, xadd_raw

from services.notifier.config import NotifierConfig
from services.notifier.runner import NotifierService
from shared.bus import Bus
from shared.events import Bbo, Control, Fill, QuoteIntent

T0 = 1_757_900_000 * 10**9


def fill(i: int, size: float = 0.01, price: float = 100_000.0) -> Fill:
    return Fill(id=f"f{i}", ts_event=T0 + i, source="executor", fill_id=f"fill{i}", strategy="trend",
                market="BTC", side="buy", price=price, size=size)


async def test_bad_exec_and_control_entries_are_dead_lettered(redis_client, namespace):
    bus = Bus(redis_client, namespace)
    svc = NotifierService(bus, 1001, NotifierConfig(block_ms=50), None)
    exec_, control = bus.streams.exec(1001), bus.streams.control
    await svc.consumer.start()  # the group exists: what follows is consumed, not folded
    expect: dict[tuple[str, str], str] = {}

    async def bad(stream: str, entry, reason: str) -> None:
        expect[(stream, await xadd_raw(redis_client, stream, entry))] = reason

    await xadd_raw(redis_client, exec_, fill(1))
    await bad(exec_, fill(2, size=-5.0), "invalid fill: size must be a finite number > 0, got -5.0")
    await bad(exec_, fill(3, price=1e13), "bad-price: price 10000000000000.0 is above BTC's largest price")
    await bad(exec_, Bbo(id="b", ts_event=T0, market="BTC", bid_px=1.0, bid_sz=1.0, ask_px=1.1, ask_sz=1.0),
              "wrong-stream: a bbo event does not belong on")
    await bad(control, QuoteIntent(id="q", ts_event=T0, strategy="maker", market="BTC"),
              "wrong-stream: a quote event does not belong on")
    await bad(control, builtins(Control(id="k0", ts_event=T0, command="kill"), ts_event=2**64),
              "bad-number: ts_event 18446744073709551616 is outside int64")
    await xadd_raw(redis_client, control, Control(id="k1", ts_event=T0 + 5, command="pause", target="grid"))
    for _ in range(3):
        batch = await svc.consumer.fetch()
        if batch:
            await svc.loop.step(batch)
    got = reasons_by_entry(await dead_letters(redis_client, namespace))
    assert set(got) == set(expect)
    for key, reason in expect.items():
        assert got[key].startswith(reason), (got[key], reason)
    assert svc.engine.fifo.position("trend", "BTC") == pytest.approx(0.01)  # only the good fill
    assert svc.engine.events == 2  # the good fill and the pause
