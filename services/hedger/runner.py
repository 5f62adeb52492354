"""hedger service: runs :class:`HedgerEngine` on the bus.

Inputs: ``{ns}:md:book:{SYM}`` of each hedged market (the engine uses the ``Bbo`` events, which
are also its clock) and ``{ns}:exec:{account}`` (fills and position snapshots of the maker and
of the hedger, the hedger's order outcomes, the executor's guard states). Output: intents
(``QuoteIntent``, ``CancelIntent``, ``TargetPosition``) to ``{ns}:intent:{account}``.
Consumer group: the strategy name (``hedger``). ``/health`` and ``/metrics`` on
``http_port`` (9108).

Restart: before consuming, the runner folds every ``Fill`` and ``PositionSnapshot`` of the
maker and the hedger (and every ``GuardState``) from the exec stream into the engine, so the
maker inventory and the hedge position survive a restart (fills are deduplicated by
``fill_id``). Exposure timers restart at the first event. When that history holds any event of
the hedger's own (its fills, snapshots, order events), the target the executor still holds for
it is unknown (it may have stopped mid-cross): the engine re-states it as the restored position
``passive_cancel_timeout_s`` after the first event, once nothing of its own is in flight
(docs/hedger.md, *Nothing left standing*).

Graceful shutdown (SIGTERM/SIGINT): after the consumer stops, the runner publishes a
``CancelIntent`` of the hedger for all markets, so a resting passive hedge is pulled; positions
are kept. Nothing is published in dry run.

Metrics (``lighter_stack_hedger_*``, labelled by market): ``exposure`` (maker inventory + hedge,
base units), ``maker_inventory``, ``position``, ``hedges_total{mode}`` (passive, aggressive,
emergency), ``force_aggressive`` and ``emergency`` (0/1), ``last_slippage_bps``.
"""

from __future__ import annotations

import logging
from typing import get_args

from prometheus_client import Counter, Gauge

from shared.bus import Bus
from shared.config import StackConfig
from shared.events import (
    CancelIntent,
    Fill,
    GuardState,
    OrderAccepted,
    OrderCanceled,
    OrderRejected,
    PositionSnapshot,
)
from shared.metrics import PREFIX
from shared.screening import Screener
from shared.service import EngineRunner
from shared.strategy_base import addressed_to
from shared.strategy_runner import (
    CounterTotals,
    MeteredEngine,
    build_runner,
    cancel_all_intents,
    dry_run_note,
    positions,
    restore_run_shutdown,
    run_strategy,
    set_gauges,
    strategy_main,
)

from .config import load_section
from .engine import SOURCE, HedgerEngine, Mode, make_engine

log = logging.getLogger(__name__)

P = f"{PREFIX}hedger_"

EXPOSURE_G = Gauge(f"{P}exposure", "Maker inventory + hedge position, signed base units.", ["market"])
MAKER_G = Gauge(f"{P}maker_inventory", "The maker's inventory as the hedger knows it, signed base units.", ["market"])
POS_G = Gauge(f"{P}position", "The hedger's own position from its fills, signed base units.", ["market"])
FORCE_G = Gauge(f"{P}force_aggressive", "1 while the exposure is over the trigger longer than max_exposure_s.", ["market"])
EMERG_G = Gauge(f"{P}emergency", "1 while the hedger is in emergency escalation.", ["market"])
SLIP_G = Gauge(f"{P}last_slippage_bps", "Last hedge fill vs the decision mid, bps (positive = paid).", ["market"])
HEDGES = Counter(f"{P}hedges_total", "Hedge attempts by mode (counted in dry run too).", ["market", "mode"])

_GAUGES = {"exposure": EXPOSURE_G, "maker_inventory": MAKER_G, "hedge_position": POS_G,
           "force_aggressive": FORCE_G, "emergency": EMERG_G, "last_slippage_bps": SLIP_G}


class Counts:
    """Sets the gauges and turns the engine's running hedge counts into counter increments
    after each event of a market."""

    def __init__(self, engine: HedgerEngine) -> None:
        self.engine = engine
        self._totals = CounterTotals()

    def publish(self, market: str) -> None:
        st = self.engine.state(market)
        set_gauges(_GAUGES, market, st)  # booleans as 1.0/0.0
        for mode, n in st["hedges"].items():
            self._totals.count(HEDGES, n, market, mode)


async def restore_positions(engine: HedgerEngine, bus: Bus, account: int | str) -> int:
    """Fold the maker's and the hedger's fills and position snapshots, the guard states and the
    hedger's order events of the exec stream into ``engine`` (:meth:`HedgerEngine.fold`);
    returns how many events were folded. Events the screening refuses
    (:class:`~shared.screening.Screener`) are skipped and logged, as the consumer dead-letters them."""
    names = {engine.name, engine.cfg.maker_strategy}
    n = 0
    stream = bus.streams.exec(account)
    screener = Screener(bus.streams.ns)
    for d in await bus.read_all(stream):
        ev = d.event
        if ev is None or not screener.passes(ev, stream):
            continue
        if (isinstance(ev, GuardState) or (isinstance(ev, Fill | PositionSnapshot) and ev.strategy in names)
                or (isinstance(ev, OrderAccepted | OrderRejected | OrderCanceled) and addressed_to(ev, engine.name))):
            engine.fold(ev)
            n += 1
    return n


def shutdown_intents(engine: HedgerEngine, ts_ns: int | None = None) -> list[CancelIntent]:
    """One ``CancelIntent`` of the hedger for all markets (none in dry run), stamped with the
    engine's latest event time (or ``ts_ns``/the wall clock when it saw nothing yet)."""
    return cancel_all_intents(engine, SOURCE, "hedger shutdown", ts_ns)


def build(cfg: StackConfig, bus: Bus, consumer: str | None = None) -> tuple[EngineRunner, HedgerEngine]:
    """The runner and engine of this service for ``cfg`` on ``bus`` (no I/O yet).

    Raises:
        ConfigError: invalid ``services.hedger`` section.
    """
    engine = make_engine(cfg, source=SOURCE)
    for m in engine.markets:  # create every counter series at 0, so increase() sees the first increment
        for mode in get_args(Mode):
            HEDGES.labels(m, mode)
    return build_runner(SOURCE, engine, MeteredEngine(engine, Counts(engine).publish), cfg, bus, consumer), engine


async def _restore(engine: HedgerEngine, bus: Bus, account: int | str) -> int:
    n = await restore_positions(engine, bus, account)
    for m in engine.markets:
        Counts(engine).publish(m)
    return n


def _restored(engine: HedgerEngine, n: int) -> str:
    maker = {m: engine.maker_inventory(m) for m in engine.markets}
    return f"hedger: restored {n} events; maker {maker}, hedge {positions(engine)}{dry_run_note(engine)}"


def _stopped(engine: HedgerEngine) -> str:
    return f"hedger: shutdown, passive hedges pulled; positions kept {positions(engine)}"


#: ``run_until_stopped(runner, engine, bus, account)``: restore the positions, consume until
#: ``runner.stop()``, then pull any passive hedge (:func:`shutdown_intents`).
run_until_stopped = restore_run_shutdown(_restore, _restored, shutdown_intents, _stopped, log)


async def run(cfg: StackConfig, url: str) -> None:
    await run_strategy(cfg, url, build, run_until_stopped)


def main(cfg: StackConfig) -> int:
    """Run the hedger until SIGTERM/SIGINT; returns 0 after a graceful stop.

    Raises:
        ConfigError: invalid ``services.hedger`` section (checked before connecting), e.g.
            ``services.hedger.emergency_extra_bps`` when the emergency cross exceeds the cap.
    """
    return strategy_main(cfg, load_section, run)
