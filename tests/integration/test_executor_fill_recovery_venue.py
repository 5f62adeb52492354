"""Executor killed while its resting orders fill, against venue-sim (issue 13: "Fills lost").

The executor quotes (strategy ``maker``, one bid and one ask), keeps a ``grid`` bid, and the
account also holds another bot's bid (a client order index the executor never allocated). A
second venue-sim account (2002, its own API key) takes liquidity with signed IOC orders. The
executor is killed three times without its shutdown (its task cancelled: no cancels, no
publish -- a ``kill -9``), once in the middle of publishing a fill, and each time orders fill
while it is down; it is restarted each time (reconciliation, restored wishes re-placed at the
first market data). Afterwards every venue trade of the account is exactly one ``Fill`` per our
side on the exec stream -- attributed to the order's strategy, the other bot's unattributed with
a reason -- per order the same size as the venue filled, the strategies' positions add up to
the venue's account position (no ``PositionMismatch`` standing), and a ledger consuming the exec
stream records exactly the venue's fills.

venue-sim replays a flat book (BTC 115000.0 / 115001.0, one level, no synthetic depth); our
orders rest inside the spread, so only account 2002's orders trade with them. The executor's
market data is the Bbo the test publishes (wall-clock time)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from ledger_kit import run_until

from services.executor.engine import OrderCommand
from services.executor.keys import ensure_registered, paper_l1_key
from services.executor.nonces import NonceManager
from services.executor.recovery import read_trade_history
from services.executor.sending import send_one
from services.executor.signer import Signer, generate_key
from services.executor.venue import LighterRest
from services.ledger.runner import LedgerService
from services.ledger.store import LedgerStore
from shared.events import (
    Bbo,
    Event,
    Fill,
    OrderAccepted,
    PositionMismatch,
    QuoteIntent,
    RestingOrders,
    RiskState,
)
from shared.markets import MarketInfo
from shared.venue.reports import VenueTrade

REPO = Path(__file__).resolve().parents[2]
ACCT, TAKER = 1001, 2002
BTC_ID = 1
S = 1_000_000_000
BID, ASK = 115000.0, 115001.0
FOREIGN = 42  # the other bot's client order index on our account
BTC = MarketInfo(symbol="BTC", market_id=BTC_ID, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                 min_quote_amount=10.0)  # as venue-sim serves it (tests/conftest.py)
VENUE = {"depth": {"enabled": False}, "accounts": [{"index": ACCT}, {"index": TAKER}]}
EXECUTOR = {"http_port": 0, "reconcile_retry_s": 0.3}


def _recording() -> list[Event]:
    t0 = time.time_ns()
    return [Bbo(id=f"r{i}", ts_event=t0 + i * S, source="rec", market="BTC", bid_px=BID, bid_sz=1.0, ask_px=ASK,
                ask_sz=1.0) for i in range(300)]


class _Taker:
    """Account 2002 with its own registered API key: sends IOC orders against our resting ones."""

    def __init__(self, rest: LighterRest, signer: Signer) -> None:
        self.rest, self.signer = rest, signer
        self.nonces = NonceManager(lambda: rest.next_nonce(TAKER, 4))
        self.coi = 0

    @classmethod
    async def create(cls, h) -> _Taker:
        url = h.cfg.venue.rest_url
        rest = LighterRest(url, 5.0)
        signer = await Signer.create(url, TAKER, 4, h.cfg.venue.chain_id, generate_key())
        await ensure_registered(signer, rest, paper_l1_key())  # 2002 belongs to the paper L1 address too
        return cls(rest, signer)

    async def ioc(self, side: str, price: float, size: float) -> None:
        m = BTC
        self.coi += 1
        res = await send_one(self.rest, self.nonces, self.signer, OrderCommand(
            kind="create", market="BTC", market_id=BTC_ID, client_order_index=self.coi, side=side,  # type: ignore[arg-type]
            price=m.price_to_int(price), size=m.size_to_int(size), tif="ioc", order_expiry=0))
        assert res.ok, res

    async def close(self) -> None:
        await self.rest.close()
        await self.signer.close()


async def _venue_fills(h) -> int:
    """Fills of our account on venue-sim (``/sim/status``, not metered)."""
    return int((await h.venue_status())["accounts"].get(str(ACCT), {}).get("fills", 0))


async def _faults(h) -> dict[str, int]:
    """venue-sim's injected-fault counts (``GET /sim/fault``, not metered)."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{h.port}/sim/fault") as r:
            return (await r.json())["injected"]


async def _until(cond, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def _kill(h) -> None:
    """End the executor without its shutdown (no cancels, nothing more published): kill -9."""
    task, h.task = h.task, None
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _bbo(h, n: int) -> None:
    await h.bus.publish(h.bus.streams.book("BTC"), [Bbo(id=f"b{n}", ts_event=time.time_ns(), source="test",
                                                        market="BTC", bid_px=BID, bid_sz=1.0, ask_px=ASK,
                                                        ask_sz=1.0)])


async def _fills_to(h, n: int) -> None:
    await _until(lambda: _at_least(h, n))


async def _at_least(h, n: int) -> bool:
    return await _venue_fills(h) >= n


async def _accepted_since(h, n_before: int, count: int) -> list[OrderAccepted]:
    evs = await h.wait_for(lambda evs: sum(isinstance(e, OrderAccepted) for e in evs[n_before:]) >= count)
    return [e for e in evs[n_before:] if isinstance(e, OrderAccepted)]


async def _restart(h, n: int) -> list[OrderAccepted]:
    """Start a new executor; at its first market data the restored quote and grid are placed
    again (cancel_on_start canceled the old ones). Returns their OrderAccepted."""
    await h.start_executor()
    n_before = len(await h.bus.read_all(h.exec_stream))
    await _bbo(h, n)
    return await _accepted_since(h, n_before, 3)


async def _account_trades(h) -> list[VenueTrade]:
    """Every trade of our account on venue-sim, read as the executor reads its trade history
    (``GET trades``, auth, all pages back to the start)."""
    rest = LighterRest(h.cfg.venue.rest_url, 5.0)
    try:
        return await read_trade_history(rest, ACCT, h.svc.signer.auth_token(600), since_ns=0)
    finally:
        await rest.close()


async def test_fills_while_the_executor_is_killed_reach_the_exec_stream_exactly_once(venue_executor, tmp_path):
    # venue-sim also sends half of the account messages twice (trades, orders, positions): still one Fill each
    h = await venue_executor(_recording(), ["BTC"], services={"executor": EXECUTOR},
                             venue={**VENUE, "faults": {"seed": 13, "account_duplicate": 0.5}})
    taker = await _Taker.create(h)
    try:
        await _bbo(h, 1)
        await h.wait_for(lambda evs: "BTC" in h.svc.engine.bbo)
        # the other bot's bid on our account, behind ours
        svc = h.svc
        m = svc.engine.markets["BTC"]
        res = await send_one(svc.rest, svc.nonces, svc.signer, OrderCommand(
            kind="create", market="BTC", market_id=BTC_ID, client_order_index=FOREIGN, side="buy",
            price=m.price_to_int(115000.3), size=m.size_to_int(0.0002), tif="post_only", order_expiry=-1))
        assert res.ok, res
        now = time.time_ns()
        await h.bus.publish(h.bus.streams.intent(ACCT), [
            QuoteIntent(id="q1", ts_event=now, source="maker", strategy="maker", market="BTC", bid_px=115000.5,
                        bid_sz=0.0006, ask_px=115000.7, ask_sz=0.0006),
            RestingOrders(id="g1", ts_event=now, source="grid", strategy="grid", market="BTC",
                          orders=[("buy", 115000.4, 0.0004)])])
        placed = await _accepted_since(h, 0, 3)
        owner = {a.client_order_index: a.strategy for a in placed}

        # live: a fill while the executor runs
        await taker.ioc("sell", 115000.5, 0.0002)
        await h.wait_for(lambda evs: any(isinstance(e, Fill) for e in evs))

        # kill 1: the maker's bid and the grid's bid fill, the ask partly, while the executor is down
        await _kill(h)
        fills = await _venue_fills(h)
        await taker.ioc("sell", 115000.4, 0.0006)  # maker bid 0.0004 left @115000.5, then grid 0.0002 @115000.4
        await taker.ioc("buy", 115000.7, 0.0002)  # maker ask
        await _fills_to(h, fills + 3)
        await asyncio.sleep(1.0)
        owner.update({a.client_order_index: a.strategy for a in await _restart(h, 2)})

        # kill 2, in the middle of publishing a fill: the engine saw the trade, the stream never did
        hung = asyncio.Event()
        publish = h.svc._publish

        async def frozen(events):  # noqa: ANN001, ANN202
            if any(isinstance(e, Fill) for e in events):
                hung.set()
                await asyncio.Event().wait()  # the process is gone before the publish
            await publish(events)

        h.svc._publish = frozen  # type: ignore[method-assign]
        await taker.ioc("buy", 115000.7, 0.0004)  # maker ask, seen by the engine, never published
        await asyncio.wait_for(hung.wait(), 10)
        await _kill(h)
        fills = await _venue_fills(h)
        await taker.ioc("sell", 115000.3, 0.0012)  # maker bid 0.0006, grid 0.0004, the other bot's 0.0002
        await _fills_to(h, fills + 3)
        await asyncio.sleep(1.0)
        owner.update({a.client_order_index: a.strategy for a in await _restart(h, 3)})

        # kill 3: the account trades while down, then the executor comes back once more
        await _kill(h)
        fills = await _venue_fills(h)
        await taker.ioc("buy", 115000.7, 0.0006)
        await taker.ioc("sell", 115000.5, 0.0002)
        await _fills_to(h, fills + 2)
        await h.start_executor()

        # ---------------------------------------------------------------- the venue's trades vs our fills
        venue: dict[tuple[str, str], tuple[float, int]] = {}
        for t in await _account_trades(h):
            for side, acct, coi in (("buy", t.bid_account, t.bid_client_order_index),
                                    ("sell", t.ask_account, t.ask_client_order_index)):
                if acct == ACCT:
                    venue[(t.trade_id, side)] = (t.size, coi)
        assert len(venue) == await _venue_fills(h) == 10
        assert (await _faults(h))["account_duplicate"] > 0
        evs = await h.wait_for(lambda evs: len([e for e in evs if isinstance(e, Fill)]) >= len(venue))
        await asyncio.sleep(0.5)  # nothing more may come
        evs = [d.event for d in await h.bus.read_all(h.exec_stream)]
        fills_out = [e for e in evs if isinstance(e, Fill)]
        assert len(fills_out) == len(venue)  # one Fill per venue trade side: none lost, none doubled
        assert len({f.fill_id for f in fills_out}) == len(fills_out)
        assert {(f.venue_trade_id, f.side): (f.size, f.client_order_index) for f in fills_out} == venue
        by_order: dict[int, float] = defaultdict(float)
        for size, coi in venue.values():
            by_order[coi] += size
        for coi, size in by_order.items():  # per order, what the venue filled
            assert sum(f.size for f in fills_out if f.client_order_index == coi) == pytest.approx(size)
        for f in fills_out:  # attributed to the order's strategy; the other bot's unattributed, with a reason
            if f.client_order_index == FOREIGN:
                assert f.strategy == "_unattributed" and "client order index 42" in f.reason
            else:
                assert f.strategy == owner[f.client_order_index], f

        # ---------------------------------------------------------------- positions agree with the venue
        e = h.svc.engine
        venue_pos = (await h.account_positions()).get(BTC_ID, 0.0)
        assert e.strategies_position("BTC") == pytest.approx(venue_pos)
        assert e.account_pos["BTC"] == pytest.approx(venue_pos) and e.position_mismatch() == {}
        mismatches = [x for x in evs if isinstance(x, PositionMismatch)]
        assert not mismatches or not mismatches[-1].mismatch

        # ---------------------------------------------------------------- a ledger records exactly the venue's fills
        store = LedgerStore(f"sqlite:///{tmp_path}/ledger.db")
        ledger = LedgerService(h.bus, store, ACCT)
        try:
            async def recorded() -> bool:
                return store.fill_count() >= len(venue)
            await run_until(ledger, recorded)
            assert store.fill_count() == len(venue)
            assert sorted(store.fill_ids()) == sorted(f.fill_id for f in fills_out)
        finally:
            store.close()
    finally:
        await taker.close()


CHILD = ("import sys\n"
         "from shared.config import StackConfig, VenueConfig\n"
         "from services.executor.runner import main\n"
         "cfg = StackConfig(namespace=sys.argv[1], redis_url=sys.argv[2], markets=['BTC'],\n"
         "                  venue=VenueConfig(rest_url=sys.argv[3], ws_url=sys.argv[4]),\n"
         "                  services={'executor': {'http_port': 0, 'reconcile_retry_s': 0.3}})\n"
         "sys.exit(main(cfg))\n")


def _spawn(h, redis_url: str, log_path) -> subprocess.Popen:  # noqa: ANN001
    """The executor as its own process (``services.executor.runner.main``), paper mode, its own
    throwaway API key (registered by its reconciliation)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("LS_") and k not in ("LIGHTER_API_PRIVATE_KEY", "LIGHTER_L1_PRIVATE_KEY")}
    env.update({"REDIS_URL": redis_url, "PYTHONPATH": str(REPO)})
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-c", CHILD, h.cfg.namespace, redis_url, h.cfg.venue.rest_url,
                                 h.cfg.venue.ws_url], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


async def _exited(proc: subprocess.Popen, timeout: float) -> int | None:
    """The process's exit code once it ended, waiting without blocking the event loop (venue-sim
    runs in it); None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return proc.poll()


async def _reconciled(h, proc: subprocess.Popen, n_before: int, log_path) -> None:  # noqa: ANN001
    """Wait until the process published ``RiskState running`` after ``n_before`` exec events."""
    deadline = time.monotonic() + 60
    while True:
        evs = [d.event for d in await h.bus.read_all(h.exec_stream)][n_before:]
        if any(isinstance(e, RiskState) and e.state == "running" for e in evs):
            return
        assert proc.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, log_path.read_text()
        await asyncio.sleep(0.1)


async def test_fills_while_an_executor_process_is_sigkilled_are_recovered_by_the_next(venue_executor, redis_url,
                                                                                      tmp_path):
    h = await venue_executor(_recording(), ["BTC"], services={"executor": EXECUTOR}, venue=VENUE)
    await h.stop_executor()  # venue-sim stays; the executors below are processes
    taker = await _Taker.create(h)
    log_path = tmp_path / "executor.log"
    procs: list[subprocess.Popen] = []
    try:
        n = len(await h.bus.read_all(h.exec_stream))
        procs.append(_spawn(h, redis_url, log_path))
        await _reconciled(h, procs[0], n, log_path)
        n = len(await h.bus.read_all(h.exec_stream))
        await _bbo(h, 1)
        await asyncio.sleep(0.3)
        now = time.time_ns()
        await h.bus.publish(h.bus.streams.intent(ACCT), [
            QuoteIntent(id="q1", ts_event=now, source="maker", strategy="maker", market="BTC", bid_px=115000.5,
                        bid_sz=0.0006, ask_px=115000.7, ask_sz=0.0006)])
        placed = await _accepted_since(h, n, 2)
        await taker.ioc("sell", 115000.5, 0.0002)  # live
        await h.wait_for(lambda evs: any(isinstance(e, Fill) for e in evs))

        lock = await h.bus.redis.get(f"{h.cfg.ns}:lock:executor:{ACCT}")
        assert lock is not None and f":{procs[0].pid}:" in lock.decode()  # the account lock is the first's
        procs[0].send_signal(signal.SIGKILL)  # kill -9: the quote stays on the venue
        killed = time.monotonic()
        assert await _exited(procs[0], 10) == -signal.SIGKILL
        await taker.ioc("sell", 115000.5, 0.0004)
        await taker.ioc("buy", 115000.7, 0.0002)
        await taker.ioc("buy", 115000.7, 0.0002)
        await _fills_to(h, 4)
        await asyncio.sleep(2.0)  # down for a while

        n = len(await h.bus.read_all(h.exec_stream))
        procs.append(_spawn(h, redis_url, log_path))
        spawned_after = time.monotonic() - killed
        await _reconciled(h, procs[1], n, log_path)
        lock = await h.bus.redis.get(f"{h.cfg.ns}:lock:executor:{ACCT}")
        assert lock is not None and f":{procs[1].pid}:" in lock.decode()  # the next one took it
        if spawned_after < 8.0:  # the killed executor's lock (TTL 10 s) outlived it: the next one waited
            assert "is held by" in log_path.read_text() and "took the account lock" in log_path.read_text()
        evs = await h.wait_for(lambda evs: sum(isinstance(e, Fill) for e in evs) >= 4)
        await asyncio.sleep(0.5)
        evs = [d.event for d in await h.bus.read_all(h.exec_stream)]
        fills_out = [e for e in evs if isinstance(e, Fill)]
        assert {f.client_order_index for f in fills_out} <= {a.client_order_index for a in placed}
        assert [(f.strategy, f.side, f.size) for f in fills_out] == [
            ("maker", "buy", 0.0002), ("maker", "buy", 0.0004), ("maker", "sell", 0.0002), ("maker", "sell", 0.0002)]
        assert await _venue_fills(h) == 4
        assert sum(f.size if f.side == "buy" else -f.size for f in fills_out) == pytest.approx(
            (await h.account_positions()).get(BTC_ID, 0.0))
        mismatches = [x for x in evs if isinstance(x, PositionMismatch)]
        assert not mismatches or not mismatches[-1].mismatch, mismatches
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)  # its shutdown talks to venue-sim, served by this loop: wait async
                if await _exited(p, 15) is None:
                    p.kill()
                    await _exited(p, 10)
        await taker.close()
