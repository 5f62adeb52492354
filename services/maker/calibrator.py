"""The maker's calibrator: per-market windows of market data and the calibration schedule.

One implementation, two ways to run it:

- **inline** (backtests, lockstep replays, and the engine by default): :class:`MakerEngine` owns a
  :class:`Calibrator`, hands it every ``Bbo``/``Trade`` of its markets and, when a job is due,
  runs it at once, at the triggering ``Bbo``, before quoting on that ``Bbo``;
- **off the consume loop** (the live service, ``calibration_thread`` true): the runner owns the
  :class:`Calibrator`, runs due jobs in a worker thread and publishes their ``ModelParams`` to
  ``{ns}:params:{strategy}``, from which the engine takes them like any other params (quoting is
  never blocked by a fit).

Windows are running structures (deques appended per event, trimmed from the front): per event
the work is O(1) amortised; the lists handed to :func:`shared.calibration.calibrate` are built
once per calibration. Schedule (in event time, ns): the first job once the ``Bbo`` window spans
``min_calibration_span_s``, then every ``recalibrate_s`` of event time after the previous job's
trigger. Window: the ``Bbo``/``Trade`` events of the last ``calibration_window_s`` before the
market's latest event time, at most ``max_buffer_events`` of each.

Where the time goes (bundled BTC+ETH hour, 14 calibrations): the GARCH(1,1) fit of ``arch``
(about 35 ms each, 90 % of a maker backtest's CPU time); building the grid, the A/k curve fit and
the vectorised gamma backtest together about 1.5 ms; the windows themselves nothing measurable.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.events import Bbo, Event, ModelParams, Trade
from shared.markets import MarketInfo

from .config import MakerConfig

NS = 1_000_000_000

Calibrate = Callable[..., ModelParams]
CalibrationInputs = Callable[[str], tuple[MarketInfo, Any, float]]
"""``inputs(market) -> (market info, shared.calibration.CalibrationConfig, order size in base units)``."""

__all__ = ["Calibrate", "CalibrationJob", "Calibrator", "usable_bbo"]


def _default_calibrate(*args: Any, **kwargs: Any) -> ModelParams:
    from shared import calibration  # imported lazily (numpy/scipy/arch only when calibrating)

    return calibration.calibrate(*args, **kwargs)


def usable_bbo(ev: Bbo) -> bool:
    """A ``Bbo`` the maker uses: ``0 < bid <= ask``."""
    return 0 < ev.bid_px <= ev.ask_px


@dataclass(slots=True)
class CalibrationJob:
    """One due calibration: the window copied at the trigger (``bbos``/``trades`` in time order),
    the market's metadata, the ``CalibrationConfig``, the clip size (base units) and the ``Bbo``
    that triggered it (``cause``: the output id derives from it)."""

    market: str
    bbos: list[Bbo]
    trades: list[Trade]
    info: MarketInfo
    settings: Any
    order_size: float
    cause: Bbo


@dataclass(slots=True)
class _Window:
    now: int = 0
    bbos: deque[Bbo] = field(default_factory=deque)
    trades: deque[Trade] = field(default_factory=deque)
    next_ts: int | None = None


class Calibrator:
    """Windows and schedule of the maker's calibration (see the module docstring).

    Args:
        cfg: the maker's configuration (``calibration_window_s``, ``max_buffer_events``,
            ``min_calibration_span_s``, ``recalibrate_s``, ``strategy``).
        markets: the markets to calibrate.
        inputs: ``inputs(market) -> (MarketInfo, CalibrationConfig, order size)``, asked when a
            job is due (the engine's :meth:`MakerEngine.calibration_inputs`).
        calibrate: the calibration function, ``calibrate(bbos, trades, market, cfg, strategy=,
            order_size=, cause=, source=) -> ModelParams`` (default
            :func:`shared.calibration.calibrate`; tests pass a stub).
        source: ``source`` of the ``ModelParams``.

    Attributes:
        calibrate: the calibration function given (None: :func:`shared.calibration.calibrate`,
            looked up at each run); may be replaced, e.g. by a benchmark replaying recorded params.
    """

    def __init__(self, cfg: MakerConfig, markets: list[str], inputs: CalibrationInputs,
                 calibrate: Calibrate | None = None, source: str = "maker") -> None:
        self.cfg = cfg
        self.source = source
        self._w = {m: _Window() for m in markets}
        self._inputs = inputs
        self.calibrate = calibrate
        self._window_ns = int(cfg.calibration_window_s * NS)
        self._span_ns = cfg.min_calibration_span_s * NS
        self._every_ns = int(cfg.recalibrate_s * NS)
        self._cap = cfg.max_buffer_events

    def observe(self, ev: Event, now: int | None = None) -> CalibrationJob | None:
        """Take one event: a ``Bbo`` (with ``0 < bid <= ask``) or ``Trade`` of a calibrated market
        joins its window (anything else is ignored); returns the job due at this ``Bbo``, if any.

        Args:
            ev: the event.
            now: the market's latest event time, ns, when the caller tracks it (the engine counts
                its fills and order outcomes too); default: the latest ``Bbo``/``Trade`` time.
        """
        if isinstance(ev, Bbo):
            w = self._w.get(ev.market)
            if w is None or not usable_bbo(ev):
                return None
            w.now = max(w.now, ev.ts_event) if now is None else now
            w.bbos.append(ev)
            self._trim(w)
            return self._due(ev, w)
        if isinstance(ev, Trade):
            w = self._w.get(ev.market)
            if w is not None:
                w.now = max(w.now, ev.ts_event) if now is None else now
                w.trades.append(ev)
                self._trim(w)
        return None

    def run(self, job: CalibrationJob) -> ModelParams:
        """Calibrate ``job`` (pure; safe in a worker thread: it reads only the job).

        Raises:
            Exception: whatever the calibration function raises (``ValueError`` without a usable Bbo).
        """
        fn = self.calibrate or _default_calibrate
        return fn(job.bbos, job.trades, job.info, job.settings, strategy=self.cfg.strategy,
                  order_size=job.order_size, cause=job.cause, source=self.source)

    def window(self, market: str) -> tuple[int, int]:
        """``(Bbo count, Trade count)`` in ``market``'s window (metrics, tests)."""
        w = self._w[market]
        return len(w.bbos), len(w.trades)

    def _trim(self, w: _Window) -> None:
        horizon = w.now - self._window_ns
        cap = self._cap
        for buf in (w.bbos, w.trades):
            while buf and (buf[0].ts_event < horizon or len(buf) > cap):
                buf.popleft()

    def _due(self, ev: Bbo, w: _Window) -> CalibrationJob | None:
        ts = ev.ts_event
        if w.next_ts is None:
            if not w.bbos or ts - w.bbos[0].ts_event < self._span_ns:
                return None
        elif ts < w.next_ts:
            return None
        w.next_ts = ts + self._every_ns
        info, settings, order_size = self._inputs(ev.market)
        return CalibrationJob(ev.market, list(w.bbos), list(w.trades), info, settings, order_size, ev)

