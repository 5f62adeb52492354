"""Paper mode: the executor registers its API key on venue-sim at start-up with a real
``ChangePubKey`` signed by the paper L1 key, once (a restart finds it registered)."""

from __future__ import annotations

import aiohttp
import pytest
from pydantic import SecretStr

from services.executor.keys import ensure_registered, paper_l1_key
from services.executor.signer import SignError
from shared.venue.paper_identity import PAPER_L1_PRIVATE_KEY

ACCT = 1001


async def _apikeys(port: int, key: int) -> list[dict]:
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/api/v1/apikeys",
                                                  params={"account_index": ACCT, "api_key_index": key}) as r:
        return (await r.json())["api_keys"]


async def test_executor_registers_its_key_once(venue_executor):
    h = await venue_executor([], ["BTC"])
    key_index = h.cfg.api_key_index
    (k,) = await _apikeys(h.port, key_index)
    assert len(k["public_key"]) == 80 and k["nonce"] >= 1
    assert (await h.svc.signer.registration())[0] is True
    # already registered: nothing is sent
    assert await ensure_registered(h.svc.signer, h.svc.rest, paper_l1_key({})) is False
    assert (await _apikeys(h.port, key_index))[0]["nonce"] == k["nonce"]


async def test_a_wallet_that_does_not_own_the_account_cannot_register(venue_executor):
    h = await venue_executor([], ["BTC"])
    signer = h.svc.signer
    # a fresh key for the same slot, registered with a foreign wallet: refused (21120), no secret leaks
    from services.executor.signer import Signer, generate_key

    other = await Signer.create(h.cfg.venue.rest_url, ACCT, 7, 304, generate_key())
    try:
        foreign = SecretStr("0x" + "33" * 32)
        with pytest.raises(SignError) as ei:
            await ensure_registered(other, h.svc.rest, foreign)
        assert "21120" in str(ei.value) and "33" * 32 not in str(ei.value)
        assert await ensure_registered(other, h.svc.rest, SecretStr(PAPER_L1_PRIVATE_KEY)) is True
    finally:
        await other.close()
    assert (await signer.registration())[0] is True
