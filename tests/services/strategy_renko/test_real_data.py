"""The bundled real BTC+ETH recording (2025-09-15) through RenkoEngine: bricks form in both
markets, the brick size is the Wilder ATR of 15 s mid candles (floored), and the run is
deterministic and well formed."""

from __future__ import annotations

import pytest

from services.strategy_renko.config import RenkoConfig
from services.strategy_renko.engine import RenkoEngine
from shared.candles import CandleBuilder
from shared.events import Bbo, Fill, encode
from shared.indicators import ATR
from shared.recording import read_recording


def run(cfg: RenkoConfig, events: list) -> tuple[RenkoEngine, list]:
    """Feed the events; answer every intent at once with a fill at its reference price."""
    e = RenkoEngine(cfg, ["BTC", "ETH"])
    out, n = [], 0
    for ev in events:
        for o in e.on_event(ev):
            out.append(o)
            d = o.target - e.position(o.market)
            if abs(d) > 1e-12:
                n += 1
                e.on_event(Fill(id=f"fe{n}", ts_event=ev.ts_event, fill_id=f"f{n}", strategy="renko",
                                market=o.market, side="buy" if d > 0 else "sell", price=o.reference_price,
                                size=abs(d)))
    return e, out


@pytest.fixture(scope="module")
def events(recording_path) -> list:
    _, evs = read_recording(recording_path)
    return list(evs)


def test_bricks_form_on_real_data_and_size_is_the_candle_atr(events):
    cfg = RenkoConfig()
    e, _ = run(cfg, events)
    for m in ("BTC", "ETH"):
        st = e.state(m)
        assert st["bricks"] > 0 and st["bricks"] == st["bricks_up"] + st["bricks_down"]
        cb, atr = CandleBuilder(cfg.candle_interval_ns, fill_gaps=True, max_fill=cfg.candle_max_fill), ATR(14)
        last_mid = None
        for ev in events:
            if isinstance(ev, Bbo) and ev.market == m:
                last_mid = ev.mid
                for c in cb.update(ev.ts_event, ev.mid):
                    atr.update(c.high, c.low, c.close)
        assert st["atr"] == pytest.approx(atr.value, rel=1e-12)
        assert st["brick_size"] == pytest.approx(max(atr.value, last_mid * 0.5e-4), rel=1e-12)


def test_real_run_is_deterministic_and_well_formed(events):
    cfg = RenkoConfig()
    e1, out1 = run(cfg, events)
    _, out2 = run(cfg, events)
    assert [encode(o) for o in out1] == [encode(o) for o in out2]
    for o in out1:
        assert o.reason.split()[0] in ("entry", "exit")
        if o.reason.startswith("entry"):
            assert abs(o.target) == pytest.approx(cfg.sizes[o.market].min_size) or \
                abs(o.target) <= cfg.sizes[o.market].max_size
        else:
            assert o.target == 0.0
            assert o.reason.split()[2] in ("stop_loss", "take_profit", "time_stop", "ao_reversal")
    n_div = sum(sum(e1.state(m)["divergences"].values()) for m in ("BTC", "ETH"))
    n_entries = sum(o.reason.startswith("entry") for o in out1)
    assert n_entries <= n_div
