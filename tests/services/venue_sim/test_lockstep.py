"""Lockstep replay: the gate paces every step, txs arrive at the current event's time, account
updates go out before the event's public data, and the quiet gate reads real consumer groups."""

from __future__ import annotations

from services.venue_sim.config import VenueSimConfig
from services.venue_sim.lockstep import QuietGate
from services.venue_sim.replay import Replay, split_updates
from services.venue_sim.server import VenueServer
from shared.events import Bbo
from shared.markets import MarketInfo
from shared.venue.matching import (
    BookChanged,
    CreateOrder,
    FillUpdate,
    MatchingEngine,
    OrderUpdate,
    PositionUpdate,
)

BTC = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10)
T0 = 1_757_894_400_000_000_000
MS = 1_000_000
S = 1_000_000_000


def bbo(ts, i=0):
    return Bbo(id=f"b{ts}", ts_event=ts, market="BTC", bid_px=100000.0 + i, bid_sz=0.5, ask_px=100000.5 + i,
               ask_sz=0.5)


def ioc_buy(coi=1):
    return CreateOrder(account=7, market_id=1, client_order_index=coi, base_amount=1000, price=1000100,
                       is_ask=False, time_in_force="ioc")


async def test_lockstep_tx_arrives_at_event_time_and_account_updates_precede_public_data(run_until):
    eng = MatchingEngine([BTC])
    sunk: list[list] = []
    log: list[str] = []
    arrivals = []

    async def gate():
        log.append(f"gate@{replay.replayed}")
        if replay.replayed == 1 and not arrivals:  # while the first event is current
            arrivals.append(replay.sim_now())
            eng.submit(ioc_buy(), replay.sim_now())

    def sink(ups):
        sunk.append(list(ups))
        log.append("sink:" + ",".join(type(u).__name__ for u in ups))

    replay = Replay(eng, iter([bbo(T0), bbo(T0 + S, 1), bbo(T0 + 2 * S, 2)]), sink, gate=gate)
    replay.start()
    await run_until(replay.run(), replay.stop, lambda: replay.state == "finished", timeout=2.0)

    assert replay.state == "finished" and replay.replayed == 3
    assert arrivals == [T0]  # the sim clock stands at the current event's time, not a wall estimate
    fills = [u.fill for ups in sunk for u in ups if isinstance(u, FillUpdate)]
    assert [(f.ts_ns, f.price) for f in fills] == [(T0 + 300 * MS, 100000.5)]  # speed bump, first quote
    # the fill went out alone (fills, positions, orders), the stack settled, then event 2's book
    i = log.index("sink:FillUpdate,PositionUpdate,OrderUpdate")
    assert log[i + 1] == "gate@2" and log[i + 2].startswith("sink:BookChanged")  # the fill, then the quote
    # every recorded event waited for the gate first
    assert [e for e in log if e.startswith("gate")][:3] == ["gate@0", "gate@1", "gate@2"]


async def test_lockstep_executes_pending_txs_after_the_last_event_at_their_own_times(run_until):
    eng = MatchingEngine([BTC])
    sunk: list = []
    submitted = []

    async def gate():
        if replay.replayed == 1 and not submitted:
            submitted.append(eng.submit(ioc_buy(), replay.sim_now()))

    replay = Replay(eng, iter([bbo(T0)]), sunk.extend, gate=gate)
    replay.start()
    await run_until(replay.run(), replay.stop, lambda: replay.state == "finished", timeout=2.0)
    fills = [u.fill for u in sunk if isinstance(u, FillUpdate)]
    assert [f.ts_ns for f in fills] == [T0 + 300 * MS] and eng.pending_count() == 0


def test_split_updates_orders_account_updates_as_the_backtest_feeds_them():
    eng = MatchingEngine([BTC])
    eng.on_market_data(bbo(T0))
    eng.submit(ioc_buy(1), T0)
    eng.submit(ioc_buy(2), T0)
    ups = eng.advance(T0 + S)
    account, public = split_updates(ups)
    raw = [type(u) for u in ups if not isinstance(u, BookChanged)]
    assert raw == [FillUpdate, PositionUpdate, OrderUpdate] * 2  # per tx, as the engine emits them
    assert [type(u) for u in account] == [FillUpdate] * 2 + [PositionUpdate] * 2 + [OrderUpdate] * 2
    assert all(isinstance(u, BookChanged) for u in public) and public


def test_recorded_public_book_hides_our_orders_and_consumption():
    eng = MatchingEngine([BTC])
    eng.on_market_data(bbo(T0))
    eng.submit(CreateOrder(account=7, market_id=1, client_order_index=1, base_amount=1000, price=1000002,
                           is_ask=False, time_in_force="post_only"), T0)
    eng.submit(ioc_buy(2), T0)
    eng.advance(T0 + S)
    recorded = VenueServer(eng, [BTC], clock=lambda: T0, public_book="recorded")
    venue = VenueServer(eng, [BTC], clock=lambda: T0)
    assert recorded.public_levels(1) == ({1000000: 50000}, {1000005: 50000})
    bids, asks = venue.public_levels(1)
    assert bids == {1000000: 50000, 1000002: 1000} and asks == {1000005: 49000}


def test_public_book_default_follows_lockstep():
    assert VenueSimConfig().resolved_public_book() == "venue"
    assert VenueSimConfig(lockstep=True).resolved_public_book() == "recorded"
    assert VenueSimConfig(lockstep=True, public_book="venue").resolved_public_book() == "venue"


async def test_quiet_gate_waits_for_consumer_groups(redis_client, namespace):
    stream = f"{namespace}:md:book:BTC"
    await redis_client.xadd(stream, {"e": "1"})
    await redis_client.xgroup_create(stream, "strategy", id="0")
    busy = [0]
    gate = QuietGate(redis_client, namespace, lambda: (busy[0], 0), settle_ms=20, timeout_s=0.3, poll_ms=2)
    assert (await gate.poll())[0] is False  # lag: the entry was not read
    assert await gate.wait() is False and gate.timeouts == 1
    resp = await redis_client.xreadgroup("strategy", "c1", {stream: ">"}, count=10)
    assert (await gate.poll())[0] is False  # read but pending (not acknowledged)
    await redis_client.xack(stream, "strategy", resp[0][1][0][0])
    assert (await gate.poll())[0] is True
    assert await gate.wait() is True
    busy[0] = 3  # venue-sim still has WebSocket messages queued
    assert (await gate.poll())[0] is False


async def test_stream_watch_ignores_excluded_groups_and_unwatched_streams(redis_client, namespace):
    """The executor's barrier view: its own group and streams outside the patterns do not count."""
    from shared.quiet import StreamWatch

    md, intent = f"{namespace}:md:book:BTC", f"{namespace}:intent:1"
    await redis_client.xadd(md, {"e": "1"})
    await redis_client.xadd(intent, {"e": "1"})
    await redis_client.xgroup_create(md, "executor", id="0")  # the caller's own group: holds the entry
    await redis_client.xgroup_create(intent, "executor", id="0")
    await redis_client.xgroup_create(md, "strategy-trend", id="0")
    watch = StreamWatch(redis_client, namespace, ("md:*",), exclude_groups=("executor",))
    assert await watch.stream_keys() == [md]
    assert (await watch.poll())[0] is False  # the strategy has not read the book entry
    resp = await redis_client.xreadgroup("strategy-trend", "c1", {md: ">"}, count=10)
    await redis_client.xack(md, "strategy-trend", resp[0][1][0][0])
    idle, last_ids = await watch.poll()
    assert idle is True and [k for k, _ in last_ids] == [md]
    assert (await StreamWatch(redis_client, namespace, ("md:*",)).poll())[0] is False  # executor counts
