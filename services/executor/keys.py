"""Paper mode: register the executor's API key on venue-sim, as an operator registers one on
Lighter (``ChangePubKey``, tx type 8, signed at L1 by the account's wallet).

Called at the start of each reconciliation in paper mode only (never in live mode: a live key
is registered by the operator with ``lighter-stack setup-api-key``). When the venue's ``apikeys``
already reports the key's public key nothing is sent. Otherwise the key is registered with a
real ``ChangePubKey`` signed by the L1 key ``LIGHTER_L1_PRIVATE_KEY``, or, when unset, the
publicly known paper key :data:`shared.venue.paper_identity.PAPER_L1_PRIVATE_KEY` (the owner of
venue-sim's default account). The L1 key never reaches a log or an error message.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from pydantic import SecretStr

from shared.config import PRIVATE_KEY_ENV, ConfigError, StackConfig
from shared.venue.paper_identity import L1_KEY_ENV, PAPER_L1_PRIVATE_KEY

from .config import ExecutorConfig
from .signer import SignError, generate_key

if TYPE_CHECKING:
    from .signer import Signer
    from .venue import LighterRest

log = logging.getLogger("executor")


def paper_l1_key(env: dict[str, str] | None = None) -> SecretStr:
    """The L1 key paper mode registers with: ``LIGHTER_L1_PRIVATE_KEY`` if set, else the paper
    key."""
    env = os.environ if env is None else env
    return SecretStr(env.get(L1_KEY_ENV) or PAPER_L1_PRIVATE_KEY)


async def ensure_registered(signer: Signer, rest: LighterRest, l1_key: SecretStr) -> bool:
    """Register ``signer``'s API key for its (account, key index) unless the venue already
    reports it; returns True when a ``ChangePubKey`` was sent.

    Raises:
        SignError: the public key could not be derived, the venue refused the tx, or the key
            is still not reported afterwards.
        shared.venue.errors.VenueError: ``nextNonce`` failed (e.g. 21100 unknown account).
    """
    registered, _why = await signer.registration()
    if registered:
        return False
    pub = await signer.public_key()
    nonce = await rest.next_nonce(signer.account_index, signer.api_key_index)
    tx = signer.sign_change_pub_key(l1_key, pub, nonce)
    res = await rest.send_tx(tx.tx_type, tx.tx_info)
    if not res.ok:
        raise SignError(f"ChangePubKey refused by the venue: {res.code} {res.message}")
    registered, _ = await signer.registration()
    if not registered:
        raise SignError("ChangePubKey accepted but apikeys does not report the key")
    log.info("registered API key %d of account %d (public key %s...)", signer.api_key_index,
             signer.account_index, pub[:10])
    return True


def resolve_key(cfg: StackConfig, ecfg: ExecutorConfig) -> SecretStr:
    """The API private key: from ``LIGHTER_API_PRIVATE_KEY`` (live mode: only there, after
    ``cfg.require_live_allowed()``); in paper mode with ``paper_key: generate`` a throwaway key
    when the variable is unset.

    Raises:
        ConfigError: live mode not allowed, or no key where one is required.
    """
    if cfg.mode == "live":
        cfg.require_live_allowed()
        key = cfg.private_key()
        if key is None:
            raise ConfigError(f"mode: live needs {PRIVATE_KEY_ENV} in the environment")
        return key
    key = cfg.private_key()
    if key is not None:
        return key
    if ecfg.paper_key == "env":
        raise ConfigError(f"services.executor.paper_key: env needs {PRIVATE_KEY_ENV} in the environment")
    return generate_key()
