"""The paper L1 identity is what its docstring says: the address of the published key, derived
from the published phrase."""

import hashlib

from eth_account import Account

from shared.venue.paper_identity import PAPER_L1_ADDRESS, PAPER_L1_PRIVATE_KEY


def test_paper_key_and_address_match_the_documented_derivation():
    phrase = b"lighter-stack paper L1 key: publicly known, worthless, never fund it"
    assert PAPER_L1_PRIVATE_KEY == "0x" + hashlib.sha256(phrase).hexdigest()
    assert Account.from_key(PAPER_L1_PRIVATE_KEY).address == PAPER_L1_ADDRESS
