"""venue-sim's depth section: on by default when paced, off in lockstep (parity with the
backtest), configurable, and reported in /sim/status."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.venue_sim.config import VenueSimConfig
from shared.venue.depth import DepthModel


def test_depth_defaults_on_when_paced_off_in_lockstep():
    paced = VenueSimConfig()
    assert paced.depth.model(paced.lockstep) == DepthModel()
    lock = VenueSimConfig(lockstep=True)
    assert lock.depth.model(lock.lockstep) is None
    assert VenueSimConfig(depth={"enabled": False}).depth.model(False) is None
    assert VenueSimConfig(lockstep=True, depth={"enabled": True}).depth.model(True) is not None


def test_depth_settings_map_to_the_model_and_are_validated():
    cfg = VenueSimConfig(depth={"levels": 3, "step_ticks": 5, "size_mode": "geometric", "size_multiple": 2,
                                "size_growth": 0.5, "refill_per_s": 0.2, "max_sweep_levels": 50})
    assert cfg.depth.model(False) == DepthModel(levels=3, step_ticks=5, size_mode="geometric", size_multiple=2.0,
                                                size_growth=0.5, refill_per_s=0.2, max_sweep_levels=50)
    for bad in ({"levels": 0}, {"size_mode": "random"}, {"refill_per_s": -1}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            VenueSimConfig(depth=bad)
