"""The ledger against a real Redis with bad entries written straight into the exec stream: each
lands in ``{ns}:dlq`` with its reason, nothing of them reaches the database, the good fills
around them are recorded."""

from __future__ import annotations

from dlq_kit import builtins, dead_letters, reasons_by_entry, xadd_raw
from ledger_kit import pending, run_until

from services.ledger.config import LedgerConfig
from services.ledger.runner import LedgerService
from services.ledger.store import LedgerStore
from shared.bus import Bus
from shared.events import Bbo, Fill, OrderAccepted, TargetPosition

T0 = 1_757_894_400_000_000_000
ACCOUNT = 1001


def fill(i: int, side: str = "buy", price: float = 100_000.0, size: float = 0.001) -> Fill:
    return Fill(id=f"e{i}", ts_event=T0 + i, fill_id=f"f{i}", strategy="trend", market="BTC", side=side,
                price=price, size=size, fee=0.01, venue_trade_id=f"v{i}")


async def test_bad_exec_entries_are_dead_lettered_good_fills_recorded(redis_client, namespace, tmp_path):
    bus = Bus(redis_client, namespace)
    stream = bus.streams.exec(ACCOUNT)
    expect: dict[tuple[str, str], str] = {}

    async def bad(entry, reason: str) -> None:
        expect[(stream, await xadd_raw(redis_client, stream, entry))] = reason

    await xadd_raw(redis_client, stream, fill(1))
    await bad(fill(2, size=-0.001), "invalid fill: size must be a finite number > 0, got -0.001")
    await bad(fill(3, size=1e12), "bad-size: size 1000000000000.0 is beyond BTC's largest order")
    await bad(fill(4, price=0.0), "invalid fill: price must be a finite number > 0, got 0.0")
    await bad(builtins(fill(5), fee="free"), "invalid event: Expected `float`, got `str`")
    await bad(builtins(fill(6), ts_event=-1), "bad-time: ts_event -1 is not positive")
    await bad(Bbo(id="b", ts_event=T0, market="BTC", bid_px=1.0, bid_sz=1.0, ask_px=1.1, ask_sz=1.0),
              "wrong-stream: a bbo event does not belong on")
    await bad(TargetPosition(id="tp", ts_event=T0, strategy="trend", market="BTC", target=1.0),
              "wrong-stream: a target_position event does not belong on")
    await bad(OrderAccepted(id="oa", ts_event=T0, strategy="trend", market="BTC", client_order_index=1,
                            side="buy", price=100_000.0, size=-1.0), "bad-size: size -1.0 is negative")
    await bad(b"\xff\xfe", "invalid event:")
    await xadd_raw(redis_client, stream, fill(7, side="sell", price=100_100.0))
    store = LedgerStore(f"sqlite:///{tmp_path}/ledger.db")
    svc = LedgerService(bus, store, ACCOUNT, LedgerConfig(block_ms=50), consumer="c1")

    async def done():
        return await pending(redis_client, stream) == 0 and store.fill_count() == 2

    await run_until(svc, done)
    assert store.fill_ids() == ["f1", "f7"]
    letters = await dead_letters(redis_client, namespace)
    got = reasons_by_entry(letters)
    assert set(got) == set(expect)
    for key, reason in expect.items():
        assert got[key].startswith(reason), (got[key], reason)
    assert {d["service"] for d in letters} == {"ledger"} and svc.dead_letters == len(expect)
