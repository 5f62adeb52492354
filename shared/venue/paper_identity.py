"""The paper L1 identity: a **publicly known, worthless** Ethereum key for venue-sim only.

On Lighter an account belongs to an L1 (Ethereum) address; registering an API key
(``ChangePubKey``, tx type 8) needs a ``personal_sign`` signature by that address's private key
(reference notes section 6.4). venue-sim follows that rule, so paper mode needs an L1 key too.
This module publishes one: anybody can read it here, so it protects nothing.

NEVER fund this address, never use it on Lighter or any chain. It exists so that the paper stack
(venue-sim's default account ``l1_address`` and the executor's start-up registration) exercises
the same registration path as a live set-up. ``LIGHTER_L1_PRIVATE_KEY`` overrides it in paper
mode; in live mode the executor never registers keys (``lighter-stack setup-api-key`` does, with
the operator's own key).

The key is ``sha256(b"lighter-stack paper L1 key: publicly known, worthless, never fund it")``;
the address is its Ethereum address (checked by ``tests/shared/test_paper_identity.py``).
"""

from __future__ import annotations

PAPER_L1_PRIVATE_KEY = "0xede15056a61ffd8efb4b166d7922249754dd5b6067c1dcaa8ed7a57b4dffee19"
"""Publicly known and worthless: paper mode on venue-sim only. Never fund its address."""

PAPER_L1_ADDRESS = "0xD8C679034501340A4dD1e441faF7F5d5Ad66f7A4"
"""The Ethereum address of :data:`PAPER_L1_PRIVATE_KEY` (EIP-55 checksummed)."""

L1_KEY_ENV = "LIGHTER_L1_PRIVATE_KEY"
"""Environment variable holding an L1 (wallet) private key: the account owner's key for
``lighter-stack setup-api-key``; in paper mode it replaces :data:`PAPER_L1_PRIVATE_KEY`."""
