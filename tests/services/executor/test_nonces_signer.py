"""Nonce manager (with a fake nextNonce) and the signer wrapper (offline signing, key hygiene)."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr

from services.executor.engine import OrderCommand
from services.executor.nonces import INVALID_NONCE, NonceError, NonceManager
from services.executor.signer import Signer, SignError, generate_key


class FakeVenue:
    def __init__(self, nonce: int = 7) -> None:
        self.nonce = nonce
        self.calls = 0
        self.fail = False

    async def next_nonce(self) -> int:
        self.calls += 1
        if self.fail:
            raise ConnectionError("down")
        return self.nonce


async def test_allocates_from_next_nonce_and_increments():
    v = FakeVenue(7)
    nm = NonceManager(v.next_nonce)
    with pytest.raises(NonceError):
        nm.allocate()
    await nm.ensure_synced()
    assert [nm.allocate(), nm.allocate(), nm.allocate()] == [7, 8, 9]
    await nm.ensure_synced()
    assert v.calls == 1  # no refetch while in sync


async def test_rollback_only_of_the_last_allocated():
    nm = NonceManager(FakeVenue(10).next_nonce)
    await nm.sync()
    a, b = nm.allocate(), nm.allocate()
    assert nm.release(a) is False  # not the last one: gap stays
    assert nm.release(b) is True
    assert nm.allocate() == b
    nm.report_error(21706, b)  # a non-nonce rejection rolls back
    assert nm.allocate() == b


async def test_invalid_nonce_resyncs():
    v = FakeVenue(3)
    nm = NonceManager(v.next_nonce)
    await nm.sync()
    n = nm.allocate()
    v.nonce = 50  # the venue moved on (another client used the key)
    nm.report_error(INVALID_NONCE, n)
    assert nm.needs_sync and nm.resyncs == 1
    await nm.ensure_synced()
    assert nm.allocate() == 50 and v.calls == 2


async def test_unknown_outcome_resyncs_and_fetch_failure_raises():
    v = FakeVenue(3)
    nm = NonceManager(v.next_nonce)
    await nm.sync()
    nm.report_error(None, nm.allocate())
    v.fail = True
    with pytest.raises(NonceError, match="nextNonce failed"):
        await nm.ensure_synced()


async def test_signer_signs_offline_with_explicit_nonce_and_hides_the_key():
    key = generate_key()
    raw = key.get_secret_value()
    s = await Signer.create("http://127.0.0.1:9", 1001, 4, 304, key)
    try:
        create = OrderCommand(kind="create", market="BTC", market_id=1, client_order_index=5, side="sell",
                              price=1150000, size=100, tif="ioc")
        tx = s.sign(create, 11)
        info = json.loads(tx.tx_info)
        assert tx.tx_type == 14 and info["Nonce"] == 11 and info["ApiKeyIndex"] == 4
        assert (info["IsAsk"], info["TimeInForce"], info["OrderExpiry"], info["BaseAmount"], info["Price"]) == (
            1, 0, 0, 100, 1150000)
        po = s.sign(OrderCommand(kind="create", market_id=1, client_order_index=6, side="buy", price=1149000,
                                 size=100, tif="post_only", order_expiry=-1), 12)
        assert json.loads(po.tx_info)["TimeInForce"] == 2 and json.loads(po.tx_info)["OrderExpiry"] > 0
        sl = json.loads(s.sign(OrderCommand(kind="create", market_id=1, client_order_index=8, side="sell",
                                            price=1120000, size=100, tif="ioc", order_expiry=-1, reduce_only=True,
                                            order_type="stop-loss", trigger_price=1130000), 12).tx_info)
        assert (sl["Type"], sl["TriggerPrice"], sl["TimeInForce"], sl["ReduceOnly"]) == (2, 1130000, 0, 1)
        assert sl["OrderExpiry"] > 0  # waits for its trigger (Lighter's sample stop-loss has an expiry)
        # with an event time, -1 = 28 days after the event, in the event's (= the venue's) time
        t_ev = 1_757_894_400_000_000_000
        ev = json.loads(s.sign(OrderCommand(kind="create", market_id=1, client_order_index=9, side="buy",
                                            price=1149000, size=100, tif="gtt", order_expiry=-1,
                                            ts_event=t_ev), 12).tx_info)
        assert ev["OrderExpiry"] == t_ev // 1_000_000 + 28 * 86_400_000
        cancel = s.sign(OrderCommand(kind="cancel", market_id=1, order_index=6), 13)
        assert cancel.tx_type == 15 and json.loads(cancel.tx_info)["Index"] == 6
        ca = s.sign(OrderCommand(kind="cancel_all"), 14)
        assert ca.tx_type == 16 and json.loads(ca.tx_info)["Time"] == 0
        with pytest.raises(SignError):
            s.sign(OrderCommand(kind="create", market_id=1, client_order_index=7, size=0, price=1), 15)
        token = s.auth_token(600)
        assert token.split(":")[1:3] == ["1001", "4"]
        bare = raw[2:] if raw.startswith("0x") else raw
        assert bare not in repr(s) and bare not in repr(s.__dict__) and bare not in repr(vars(s._client))
    finally:
        await s.close()


async def test_bad_key_error_does_not_leak_it():
    with pytest.raises(SignError) as ei:
        await Signer.create("http://127.0.0.1:9", 1001, 4, 304, SecretStr("ab" * 32))
    assert "ab" * 32 not in str(ei.value)
