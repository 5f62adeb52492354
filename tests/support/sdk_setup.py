"""Registering the official SDK's API key on a venue-sim served over HTTP, the way a user does it on
Lighter: a ``ChangePubKey`` (tx 8) signed by the SDK (``SignerClient.sign_change_api_key``) with
the account owner's L1 key, sent with ``send_tx``; afterwards the SDK's ``check_client()`` passes.

venue-sim's default account is owned by the paper L1 address
(:data:`shared.venue.paper_identity.PAPER_L1_ADDRESS`), so the owner's key is
:data:`~shared.venue.paper_identity.PAPER_L1_PRIVATE_KEY`. Import as
``from sdk_setup import register_sdk_key`` (``tests/support`` is on ``sys.path``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from shared.venue.paper_identity import PAPER_L1_PRIVATE_KEY


async def register_sdk_key(client: Any, public_key: str, api_key_index: int,
                           l1_private_key: str = PAPER_L1_PRIVATE_KEY) -> int:
    """Register ``public_key`` (the SDK's, from ``lighter.create_api_key()``) as
    ``api_key_index`` of ``client``'s account with a ChangePubKey signed by ``l1_private_key``,
    assert that venue-sim accepted it and that ``client.check_client()`` returns None, and
    return the key's next nonce (the ChangePubKey used one).

    ``client`` is a ``lighter.SignerClient`` whose private key for ``api_key_index`` belongs to
    ``public_key``; ``check_client`` does blocking HTTP, so it runs in a thread (the venue may
    be served by this event loop).
    """
    nonce = (await client.tx_api.next_nonce(account_index=client.account_index, api_key_index=api_key_index)).nonce
    tx_type, tx_info, _tx_hash, err = client.sign_change_api_key(l1_private_key, public_key, nonce=nonce,
                                                                 api_key_index=api_key_index)
    assert err is None, err
    resp = await client.send_tx(tx_type=tx_type, tx_info=tx_info)
    assert resp.code == 200, resp
    err = await asyncio.to_thread(client.check_client)
    assert err is None, err
    return nonce + 1
