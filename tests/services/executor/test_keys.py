"""The executor's key registration pieces, offline: the L1 key source, ChangePubKey signing
(scrubbed errors), public-key derivation."""

from __future__ import annotations

import json

import lighter
import pytest
from pydantic import SecretStr

from services.executor.keys import paper_l1_key
from services.executor.signer import Signer, SignError, derive_public_key
from shared.venue.paper_identity import PAPER_L1_PRIVATE_KEY


def test_paper_l1_key_defaults_to_the_paper_key_and_env_overrides():
    assert paper_l1_key({}).get_secret_value() == PAPER_L1_PRIVATE_KEY
    assert paper_l1_key({"LIGHTER_L1_PRIVATE_KEY": "0x" + "12" * 32}).get_secret_value() == "0x" + "12" * 32


async def test_derive_public_key_matches_create_api_key():
    priv, pub, _ = lighter.create_api_key()
    assert await derive_public_key(SecretStr(priv)) == pub.lower()
    with pytest.raises(SignError) as ei:
        await derive_public_key(SecretStr("zz" * 40))
    assert "zz" * 40 not in str(ei.value)


async def test_sign_change_pub_key_offline_and_errors_carry_no_secret():
    priv, pub, _ = lighter.create_api_key()
    signer = await Signer.create("http://127.0.0.1:9", 1001, 4, 304, SecretStr(priv))
    try:
        tx = signer.sign_change_pub_key(SecretStr(PAPER_L1_PRIVATE_KEY), pub, 3)
        info = json.loads(tx.tx_info)
        assert tx.tx_type == 8 and info["Nonce"] == 3 and info["ApiKeyIndex"] == 4 and len(info["L1Sig"]) == 132
        bad = "0x" + "zq" * 32
        with pytest.raises(SignError) as ei:
            signer.sign_change_pub_key(SecretStr(bad), pub, 4)
        assert bad[2:] not in str(ei.value) and priv.removeprefix("0x") not in str(ei.value)
    finally:
        await signer.close()
