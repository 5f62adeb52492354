"""The ``services: venue-sim: depth:`` section: the synthetic depth ladder behind the recorded top
of book (the model: :mod:`shared.venue.depth`; docs/venue-sim.md "Depth model")."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.venue.depth import DepthModel


class DepthSettings(BaseModel):
    """Synthetic depth of venue-sim's book.

    Attributes:
        enabled: ``true``/``false``; ``null`` (the default) = on in the paced (wall-clock) mode,
            off with ``lockstep`` (lockstep and parity runs must match the in-process backtest,
            which has no ladder).
        levels: synthetic levels shown per side behind the touch.
        step_ticks: spacing between levels in ticks (price units of ``10**-price_decimals``);
            0 = use ``step_bps``.
        step_bps: spacing in basis points of the touch price, rounded up to whole ticks (>= 1).
        size_mode: how level sizes grow with depth: ``constant``, ``linear`` or ``geometric``.
        size_multiple: level 1's size as a multiple of the recorded touch size.
        size_growth: ``linear``: level k = level 1 x (1 + size_growth x (k-1)); ``geometric``:
            level 1 x (1 + size_growth)^(k-1).
        refill_per_s: fraction of a level's full size that comes back per sim second after a
            taker consumed it (0 = never).
        max_sweep_levels: most synthetic levels one taker order may walk.
    """

    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = None
    levels: int = Field(default=10, ge=1, le=250)
    step_ticks: int = Field(default=0, ge=0)
    step_bps: float = Field(default=1.0, gt=0)
    size_mode: Literal["constant", "linear", "geometric"] = "constant"
    size_multiple: float = Field(default=1.0, gt=0)
    size_growth: float = Field(default=0.0, ge=0)
    refill_per_s: float = Field(default=0.1, ge=0)
    max_sweep_levels: int = Field(default=1000, ge=1)

    def model(self, lockstep: bool) -> DepthModel | None:
        """The engine's :class:`DepthModel`, or None when the ladder is off (``enabled`` false,
        or null with ``lockstep``)."""
        on = (not lockstep) if self.enabled is None else self.enabled
        if not on:
            return None
        return DepthModel(levels=self.levels, step_ticks=self.step_ticks, step_bps=self.step_bps,
                          size_mode=self.size_mode, size_multiple=self.size_multiple, size_growth=self.size_growth,
                          refill_per_s=self.refill_per_s, max_sweep_levels=self.max_sweep_levels)
