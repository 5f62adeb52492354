"""The maker's calibrator: windows kept per market (trimmed by age and count), the schedule in
event time, jobs carrying a copy of the window, and the same jobs whether the engine runs it
inline or a runner feeds it the raw market data."""

from __future__ import annotations

from services.maker.calibrator import Calibrator
from services.maker.config import MakerConfig
from services.maker.engine import MakerEngine
from shared.events import Bbo, ModelParams, Trade

S = 1_000_000_000
T0 = 1_757_900_000 * S


def bbo(t: float, market: str = "BTC", bid: float = 99_999.95, ask: float = 100_000.05) -> Bbo:
    return Bbo(id=f"b{market}{t}", ts_event=T0 + int(t * S), source="collector", market=market, bid_px=bid,
               bid_sz=1.0, ask_px=ask, ask_sz=1.0)


def trade(t: float, market: str = "BTC") -> Trade:
    return Trade(id=f"t{market}{t}", ts_event=T0 + int(t * S), source="collector", market=market,
                 price=100_000.0, size=0.001, taker_side="buy", trade_id=f"x{t}")


def cal(**kw) -> Calibrator:
    cfg = MakerConfig(**{"min_calibration_span_s": 60, "recalibrate_s": 120, "calibration_window_s": 100, **kw})
    return Calibrator(cfg, ["BTC", "ETH"], lambda m: (f"info-{m}", "settings", 0.5))  # type: ignore[arg-type,return-value]


def test_first_job_once_the_window_spans_then_every_recalibrate_s():
    c = cal()
    due = [t for t in range(0, 400, 10) if c.observe(bbo(float(t))) is not None]
    assert due == [60, 180, 300]


def test_job_carries_a_copy_of_the_window_and_the_inputs():
    c = cal()
    for t in range(0, 60, 10):
        c.observe(bbo(float(t)))
        c.observe(trade(t + 5.0))
    job = c.observe(bbo(60.0))
    assert job is not None and job.market == "BTC" and job.cause.id == "bBTC60.0"
    assert [b.ts_event for b in job.bbos] == [T0 + t * S for t in range(0, 70, 10)]
    assert len(job.trades) == 6 and (job.info, job.settings, job.order_size) == ("info-BTC", "settings", 0.5)
    c.observe(bbo(70.0))
    assert len(job.bbos) == 7  # a copy: the window goes on without it


def test_window_trimmed_by_age_and_count():
    c = cal(calibration_window_s=30, max_buffer_events=100)
    for t in range(0, 200):
        c.observe(bbo(float(t)))
    assert c.window("BTC") == (31, 0)  # [169, 199]: 30 s back from the latest event
    c = cal(calibration_window_s=10_000, max_buffer_events=100)
    for t in range(0, 200):
        c.observe(bbo(float(t)))
        c.observe(trade(t + 0.5))
    assert c.window("BTC") == (100, 100)
    # the caller's event time (the engine counts its fills too) trims as well
    c.observe(trade(200.0), now=T0 + 10_150 * S)  # horizon 150 s
    assert c.window("BTC") == (50, 51)


def test_unusable_bbo_and_other_markets_are_ignored():
    c = cal()
    assert c.observe(bbo(0.0, bid=0.0)) is None and c.observe(bbo(1.0, market="SOL")) is None
    assert c.window("BTC") == (0, 0)
    c.observe(bbo(0.0, market="ETH"))
    assert c.window("ETH") == (1, 0) and c.window("BTC") == (0, 0)


def test_engine_inline_and_a_fed_calibrator_make_the_same_jobs():
    """The live runner feeds its own Calibrator the raw market data; the engine feeds its inline
    one from on_event: both see the same windows at the same Bbos."""
    seen: list[tuple[str, int, int]] = []

    def stub(bbos, trades, market, ccfg, *, strategy, order_size, cause, source):
        seen.append((cause.id, len(bbos), len(trades)))
        raise RuntimeError("stub")

    cfg = MakerConfig(min_calibration_span_s=60, recalibrate_s=120, calibration_window_s=100, randomize_bps=0.0)
    eng = MakerEngine(cfg, ["BTC"], calibrate=stub)
    fed = Calibrator(cfg, ["BTC"], eng.calibration_inputs)
    jobs = []
    for t in range(0, 400, 7):
        for ev in (bbo(float(t)), trade(t + 3.0)):
            eng.on_event(ev)
            job = fed.observe(ev)
            if job is not None:
                jobs.append((job.cause.id, len(job.bbos), len(job.trades)))
    assert seen == jobs and len(jobs) == 3
    assert eng.state("BTC")["calibration_errors"] == 3


def test_engine_without_inline_calibration_takes_params_from_events():
    def stub(*_a, **_k) -> ModelParams:
        raise AssertionError("not called")

    eng = MakerEngine(MakerConfig(min_calibration_span_s=1), ["BTC"], calibrate=stub, calibrate_inline=False)
    assert eng.calibrator is None
    for t in range(0, 100):
        eng.on_event(bbo(float(t)))
    assert eng.state("BTC")["calibration_errors"] == 0
