"""Strategy registry for backtests: name -> factory ``(StackConfig) -> engine``.

An engine is anything with ``on_event(event) -> list[Event]`` (the strategy services' pure
engines). Every strategy package exposes ``make_engine(cfg: StackConfig)`` in its ``engine.py``;
the registry imports it lazily by dotted path, so a strategy that is not installed (or not
written yet) only fails when it is asked for, with ``strategy X not available: ...``.

Extra strategies (tests, benchmarks, notebooks) can be added with :func:`register`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol

from shared.config import StackConfig
from shared.events import Event


class StrategyEngine(Protocol):
    """What the backtest needs from a strategy engine."""

    def on_event(self, event: Event) -> list[Event]: ...


Factory = Callable[[StackConfig], StrategyEngine]


class StrategyNotAvailable(LookupError):
    """An unknown strategy name, or its package cannot be imported."""


#: name -> "module:function" (lazy) or a factory.
REGISTRY: dict[str, str | Factory] = {
    "trend": "services.strategy_trend.engine:make_engine",
    "renko": "services.strategy_renko.engine:make_engine",
    "grid": "services.strategy_grid.engine:make_engine",
    "ema-cross": "shared.backtest.ema_cross:make_engine",
    "maker": "services.maker.engine:make_engine",
    "hedger": "services.hedger.engine:make_engine",
}
ALIASES = {"strategy-trend": "trend", "strategy-renko": "renko", "strategy-grid": "grid", "ema_cross": "ema-cross"}


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


def make(name: str, cfg: StackConfig) -> StrategyEngine:
    """Build the engine of strategy ``name`` from the stack config.

    Raises:
        StrategyNotAvailable: see :func:`resolve`.
        shared.config.ConfigError: the strategy's config section is invalid.
    """
    return resolve(name)(cfg)
