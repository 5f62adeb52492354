"""Helpers of the ledger-service tests against a real Redis (``tests/services/ledger`` and the
at-least-once integration test). Import as ``from ledger_kit import ...`` (``tests/support`` is
on ``sys.path``: ``pythonpath`` in pyproject.toml)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ResponseError

from services.ledger.runner import LedgerService


async def pending(redis: Any, stream: str, group: str = "ledger") -> int | None:
    """Entries of ``stream`` pending in consumer group ``group`` (None before the group exists)."""
    try:
        return (await redis.xpending(stream, group))["pending"]
    except ResponseError:
        return None


async def run_until(svc: LedgerService, cond: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Run ``svc`` (no HTTP port) until ``await cond()`` is true, then stop it and wait for it
    to end. Re-raises what the service raised; fails the test after ``timeout`` seconds."""
    task = asyncio.create_task(svc.run(http_port=0))
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await cond():
            if task.done():
                task.result()
            assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
            await asyncio.sleep(0.05)
    finally:
        svc.stop()
        await asyncio.wait_for(task, 5)
