"""Strategy registry for backtests: name -> factory ``(StackConfig) -> engine``.

An engine is anything with ``on_event(event) -> list[Event]`` (the strategy services' pure
engines). Every strategy package exposes ``make_engine(cfg: StackConfig)`` in its ``engine.py``;
the registry imports it lazily by dotted path, so a strategy that is not installed (or not
written yet) only fails when it is asked for, with ``strategy X not available: ...``.

Extra strategies (tests, benchmarks, notebooks) can be added with :func:`register`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from lighter_stack import registry as services
from shared.config import StackConfig
from shared.events import Event
from shared.markets import MarketInfo


class StrategyEngine(Protocol):
    """What the backtest needs from a strategy engine."""

    def on_event(self, event: Event) -> list[Event]: ...


Factory = Callable[[StackConfig], StrategyEngine]


class StrategyNotAvailable(LookupError):
    """An unknown strategy name, or its package cannot be imported."""


#: name -> "module:function" (lazy) or a factory.
#: Every strategy service of :data:`lighter_stack.registry.SERVICES` with an engine, plus ema-cross.
REGISTRY: dict[str, str | Factory] = {
    **{s.strategy: s.engine for s in services.strategy_services() if s.strategy and s.engine},
    "ema-cross": "lighter_stack.backtest.ema_cross:make_engine",
}
ALIASES = {**{s.name: s.strategy for s in services.strategy_services() if s.strategy and s.name != s.strategy},
           "ema_cross": "ema-cross"}


def register(name: str, factory: str | Factory) -> None:
    """Add (or replace) a strategy: a factory or a ``"module:function"`` path."""
    REGISTRY[name] = factory


def names() -> list[str]:
    """Registered strategy names."""
    return sorted(REGISTRY)


def resolve(name: str) -> Factory:
    """The factory of ``name`` (``strategy-trend`` and ``trend`` are the same).

    Raises:
        StrategyNotAvailable: unknown name, or its module/function cannot be imported.
    """
    key = ALIASES.get(name, name)
    entry = REGISTRY.get(key)
    if entry is None:
        raise StrategyNotAvailable(f"strategy {name} not available: unknown name (known: {', '.join(names())})")
    if not isinstance(entry, str):
        return entry
    module, _, func = entry.partition(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise StrategyNotAvailable(f"strategy {name} not available: cannot import {module} ({exc})") from None
    factory: Any = getattr(mod, func, None)
    if not callable(factory):
        raise StrategyNotAvailable(f"strategy {name} not available: {module} has no {func}()")
    return factory


def make(name: str, cfg: StackConfig, market_info: Mapping[str, MarketInfo] | None = None) -> StrategyEngine:
    """Build the engine of strategy ``name`` from the stack config.

    ``market_info`` (the data's markets) is passed to factories that take a ``market_info``
    keyword (the strategy services' ``make_engine``): it sizes markets the config does not list.

    Raises:
        StrategyNotAvailable: see :func:`resolve`.
        shared.config.ConfigError: the strategy's config section is invalid.
    """
    factory = resolve(name)
    try:
        takes_info = "market_info" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a callable without a signature
        takes_info = False
    if takes_info and market_info is not None:
        return factory(cfg, market_info=market_info)  # type: ignore[call-arg]
    return factory(cfg)
