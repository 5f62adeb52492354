"""Building blocks of the strategy-runner tests against a real Redis (trend, renko, grid,
maker): one BTC stack config, the strategy's own fills and a runner run until it publishes.
Import as ``from strategy_kit import ...`` (``tests/support`` is on ``sys.path``: ``pythonpath``
in pyproject.toml)."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.bus import Bus, Delivery
from shared.config import StackConfig
from shared.events import Fill

S = 1_000_000_000  # ns
T0 = 1_757_899_995 * S  # ns


def stack(section: str, namespace: str, **fields: Any) -> StackConfig:
    """A stack config on ``namespace`` trading BTC only, with ``services.<section>`` =
    ``fields`` and no HTTP port."""
    return StackConfig(namespace=namespace, markets=["BTC"], services={section: {"http_port": 0, **fields}})


def fill(i: int, fill_id: str, strategy: str, side: str = "buy", **fields: Any) -> Fill:
    """Event ``fe{i}`` at ``T0 + i`` s: a BTC fill of 0.0002 at 100,000 USD of ``strategy``
    (more ``Fill`` fields, e.g. ``liquidity``, from ``fields``)."""
    return Fill(id=f"fe{i}", ts_event=T0 + i * S, source="executor", fill_id=fill_id, strategy=strategy,
                market="BTC", side=side, price=100_000.0, size=0.0002, **fields)


async def run_until_published(runner: Any, bus: Bus, stream: str, timeout: float = 5.0) -> list[Delivery]:
    """Run ``runner`` (``run()``/``stop()``) until ``stream`` holds an entry (polled every
    50 ms) or ``timeout`` seconds passed; stop it and return the stream's entries."""
    task = asyncio.create_task(runner.run())
    got: list[Delivery] = []
    try:
        for _ in range(int(timeout / 0.05)):
            got = await bus.read_all(stream)
            if got:
                break
            await asyncio.sleep(0.05)
    finally:
        runner.stop()
        await asyncio.wait_for(task, 5)
    return got
