"""Durable acceptance: a request answered with a request_id is on ``{ns}:copytrade:requests``
before the answer; a restart between acceptance and processing re-queues it in order (never
lost), and one whose target was already published or that was processed is not traded again
(never doubled); a repeated request_id stays a duplicate across the restart; a journal write
failure answers 503 (not accepted)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from copytrade_kit import BTC, FakeVenue, make_trader

from services.copytrade.app import build_app
from services.copytrade.journal import JournalUnavailable, RequestJournal
from services.copytrade.runner import restore
from shared.bus import Bus
from shared.events import TargetPosition


class Stuck(FakeVenue):
    """A venue that never answers a mid: requests stay queued / processing (the 'crash' window)."""

    async def mid(self, market):  # noqa: ANN001, ANN201
        await asyncio.Event().wait()


def trader_on(bus: Bus, venue: FakeVenue | None = None):  # noqa: ANN001, ANN201
    trader, out = make_trader(venue)
    trader.journal = RequestJournal(bus)

    async def publish(account: int, ev) -> None:  # noqa: ANN001
        out.append((account, ev))
        await bus.publish(bus.streams.intent(account), [ev])

    trader.publish = publish
    return trader, out


async def test_a_restart_between_accept_and_processing_requeues_in_order(redis_client, namespace):
    bus = Bus(redis_client, namespace)
    first, out1 = trader_on(bus, Stuck())
    ids = []
    for rid, kind, params in [("r1", "trade", {"trade_type": "long", "reference_position_ratio": 0.5}),
                              ("r2", "adjust", {"adjustment_type": "decrease", "percentage": 0.5})]:
        rec, new = await first.submit(kind, 1001, BTC, params, rid)
        assert new
        ids.append(rec.request_id)
    assert len(await redis_client.xrange(bus.streams.copytrade_requests)) == 2  # durable before the answer
    await first.stop()  # the process dies with both queued
    assert out1 == []

    second, out2 = trader_on(bus)
    await restore(bus, second)
    assert [second.requests[r].status for r in ids] == ["queued", "queued"]
    await second.drain()
    assert [(ev.market, ev.target) for _, ev in out2 if isinstance(ev, TargetPosition)] == [
        ("BTC", pytest.approx(0.04)), ("BTC", pytest.approx(0.02))]  # in order: open then halve
    assert [second.requests[r].status for r in ids] == ["done", "done"]

    third, out3 = trader_on(bus)  # another restart: all processed, nothing traded again
    await restore(bus, third)
    await third.drain()
    assert out3 == [] and third.requests["r1"].status == "done"
    _, new = await third.submit("trade", 1001, BTC, {"trade_type": "long", "reference_position_ratio": 0.5}, "r1")
    assert not new  # still a duplicate across restarts
    assert third.holdings[(1001, "BTC")].target == pytest.approx(0.02)


async def test_a_request_whose_target_is_out_but_not_recorded_is_not_traded_again(redis_client, namespace):
    bus = Bus(redis_client, namespace)
    first, out1 = trader_on(bus)
    await first.submit("trade", 1001, BTC, {"trade_type": "long", "reference_position_ratio": 0.5}, "r1")
    await first.drain()
    assert len(out1) == 2  # target + stop
    # the process died after publishing, before recording: drop the 'processed' entry
    entries = await redis_client.xrange(bus.streams.copytrade_requests)
    await redis_client.xdel(bus.streams.copytrade_requests, entries[-1][0])
    second, out2 = trader_on(bus)
    await restore(bus, second)
    await second.drain()
    assert out2 == [] and second.requests["r1"].status == "done"
    assert "before a restart" in second.requests["r1"].detail


async def test_no_journal_no_acceptance(redis_client, namespace):
    bus = Bus(redis_client, namespace)
    trader, out = trader_on(bus)

    class Broken(RequestJournal):
        async def accepted(self, record):  # noqa: ANN001, ANN201
            raise JournalUnavailable("request stream unavailable: ConnectionError")

    trader.journal = Broken(bus)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(trader, None)),
                                 base_url="http://t") as c:
        r = await c.post("/api/trade", json={"account_index": 1001, "symbol": "BTC", "trade_type": "long",
                                             "reference_position_ratio": 0.5, "request_id": "x1"})
    assert r.status_code == 503 and "x1" not in trader.requests and out == []
