"""``services.venue-sim.accounts``: validation and the default account."""

import pytest
from pydantic import ValidationError

from services.venue_sim.config import AccountSpec, VenueSimConfig
from shared.venue.paper_identity import PAPER_L1_ADDRESS


def test_default_is_the_stack_account_owned_by_the_paper_address():
    (a,) = VenueSimConfig(initial_collateral=500).resolved_accounts(1234)
    assert (a.index, a.l1_address, a.collateral) == (1234, PAPER_L1_ADDRESS, 500)


def test_configured_accounts_are_validated():
    cfg = VenueSimConfig(accounts=[{"index": 7, "l1_address": "0X" + "Ab" * 20, "collateral": 10}])
    assert cfg.resolved_accounts(1001)[0].l1_address == "0x" + "Ab" * 20
    for bad in ({"index": 0}, {"index": 2**48}, {"index": 5, "l1_address": "0x1234"},
                {"index": 5, "collateral": -1}, {"index": 5, "extra": 1}):
        with pytest.raises(ValidationError):
            AccountSpec(**bad)
    with pytest.raises(ValueError, match="duplicate"):
        VenueSimConfig(accounts=[{"index": 5}, {"index": 5}]).resolved_accounts(1001)
