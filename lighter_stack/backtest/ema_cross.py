"""A tiny EMA-cross reference strategy (benchmarks, smoke tests): long when the fast EMA of the
sampled mid is above the slow one, short below. Section ``services.ema-cross``.

Each market's mid is sampled at the end of every ``interval_s`` bucket of event time (the last
``Bbo`` mid of the bucket); the EMAs (:class:`shared.indicators.EMA`) run on those samples. After
both EMAs have values, a change of sign of ``fast - slow`` emits a
:class:`~shared.events.TargetPosition` of ``+- notional_usd / mid`` base units.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.config import StackConfig
from shared.events import Bbo, Event, TargetPosition, child
from shared.indicators import EMA

SOURCE = "ema-cross"


class EmaCrossConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strategy: str = "ema-cross"
    markets: list[str] | None = None
    fast: int = Field(default=8, ge=1)
    slow: int = Field(default=21, ge=2)
    interval_s: float = Field(default=15.0, gt=0)
    notional_usd: float = Field(default=100.0, gt=0)
    max_slippage_bps: float = Field(default=10.0, ge=0)


class EmaCrossEngine:
    """See the module docstring."""

    def __init__(self, cfg: EmaCrossConfig, markets: list[str]) -> None:
        self.cfg = cfg
        self.name = cfg.strategy
        self.interval_ns = int(cfg.interval_s * 1e9)
        self.state = {m: [None, 0.0, EMA(cfg.fast), EMA(cfg.slow), 0] for m in markets}  # bucket, mid, f, s, sign

    def on_event(self, ev: Event) -> list[Event]:
        if type(ev) is not Bbo:
            return []
        st = self.state.get(ev.market)  # type: ignore[attr-defined]
        if st is None:
            return []
        b = ev.ts_event // self.interval_ns
        out: list[Event] = []
        if st[0] is not None and b != st[0]:
            f, s = st[2].update(st[1]), st[3].update(st[1])
            if f is not None and s is not None and f != s:
                sign = 1 if f > s else -1
                if sign != st[4]:
                    st[4] = sign
                    mid = ev.mid  # type: ignore[attr-defined]
                    out.append(TargetPosition(**child(ev, SOURCE, 0), strategy=self.name,
                                              market=ev.market,  # type: ignore[attr-defined]
                                              target=sign * self.cfg.notional_usd / mid,
                                              max_slippage_bps=self.cfg.max_slippage_bps, reference_price=mid,
                                              reason="ema_cross"))
        st[0] = b
        st[1] = ev.mid  # type: ignore[attr-defined]
        return out


def make_engine(cfg: StackConfig) -> EmaCrossEngine:
    """Build from ``services.ema-cross`` and the stack's markets."""
    c = cfg.section("ema-cross", EmaCrossConfig)
    return EmaCrossEngine(c, list(c.markets) if c.markets is not None else list(cfg.markets))
