"""The one registry of services: name -> package, config section, default port, engine factory.

Every place that needs to know the services reads this table: ``lighter-stack run`` (the CLI),
the config check at start-up (:func:`config_sections`), the backtest's strategy registry, the demo (start order, strategy services), the deploy checks
(every service scraped by Prometheus, every metric defined) and the configuration reference
generator. Adding a service means adding its folder under ``services/`` and one line here.

Names are the ones docker compose and ``lighter-stack run`` use (``strategy-trend``); packages
are importable folder names (``services.strategy_trend``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServiceSpec:
    """One service.

    Attributes:
        name: service name in compose, the CLI and config (``services.<name>``), e.g. ``strategy-trend``.
        package: importable package; its ``runner`` module has ``main(cfg) -> int``.
        config: ``"module:Class"`` of its config section model (pydantic).
        port: default port of ``/health`` and ``/metrics`` (venue-sim: REST + WS too).
        strategy: default strategy name (intents, fills, consumer group) if it trades through the
            executor; None for infrastructure services.
        engine: ``"module:function"`` building its pure engine from a ``StackConfig``, for the
            backtest; None if it has none a backtest can use.
    """

    name: str
    package: str
    config: str
    port: int
    strategy: str | None = None
    engine: str | None = None

    @property
    def runner(self) -> str:
        """Dotted path of the runner module (``main(cfg) -> int``)."""
        return f"{self.package}.runner"

    def config_model(self) -> type[Any]:
        """The config section class (imports the service's config module)."""
        return load(self.config)


def load(path: str) -> Any:
    """Import ``"module:attribute"`` and return the attribute.

    Raises:
        ImportError: the module cannot be imported.
        AttributeError: it has no such attribute.
    """
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


_S = ServiceSpec
#: Services in start order (the demo starts them in this order after venue-sim).
SERVICES: dict[str, ServiceSpec] = {s.name: s for s in (
    _S("venue-sim", "services.venue_sim", "services.venue_sim.config:VenueSimConfig", 8090),
    _S("ledger", "services.ledger", "services.ledger.config:LedgerConfig", 9104),
    _S("executor", "services.executor", "services.executor.config:ExecutorConfig", 9103),
    _S("collector", "services.collector", "services.collector.config:CollectorConfig", 9101),
    _S("strategy-trend", "services.strategy_trend", "services.strategy_trend.config:TrendConfig", 9102,
       strategy="trend", engine="services.strategy_trend.engine:make_engine"),
    _S("strategy-renko", "services.strategy_renko", "services.strategy_renko.config:RenkoConfig", 9105,
       strategy="renko", engine="services.strategy_renko.engine:make_engine"),
    _S("strategy-grid", "services.strategy_grid", "services.strategy_grid.config:GridConfig", 9106,
       strategy="grid", engine="services.strategy_grid.engine:make_engine"),
    _S("maker", "services.maker", "services.maker.config:MakerConfig", 9107,
       strategy="maker", engine="services.maker.engine:make_engine"),
    _S("hedger", "services.hedger", "services.hedger.config:HedgerConfig", 9108,
       strategy="hedger", engine="services.hedger.engine:make_engine"),
    _S("recorder", "services.recorder", "services.recorder.config:RecorderConfig", 9111),
    _S("notifier", "services.notifier", "services.notifier.config:NotifierConfig", 9110),
    _S("copytrade", "services.copytrade", "services.copytrade.config:CopytradeConfig", 9109,
       strategy="copytrade"),  # intents from HTTP requests: no engine a backtest can run
)}


#: Config sections under ``services:`` that are not a service's: name -> ``"module:Class"``.
EXTRA_SECTIONS: dict[str, str] = {"backtest": "lighter_stack.backtest.config:BacktestConfig"}


def config_sections() -> dict[str, type[Any]]:
    """Every known section under ``services:`` -> its model: each service's (:data:`SERVICES`)
    plus :data:`EXTRA_SECTIONS` (``backtest``). What :func:`shared.config.check_sections` and
    ``load_config(..., sections=...)`` take to refuse a typo anywhere in the config.

    Raises:
        ImportError, AttributeError: a model path does not resolve.
    """
    out = {name: spec.config_model() for name, spec in SERVICES.items()}
    out.update({name: load(path) for name, path in EXTRA_SECTIONS.items()})
    return out


def strategy_services() -> list[ServiceSpec]:
    """The services that trade through the executor, in start order."""
    return [s for s in SERVICES.values() if s.strategy is not None]

