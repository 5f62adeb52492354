"""``lighter-stack control``: publish an operator ``Control`` event on ``{ns}:control``.

``kill`` | ``resume [STRATEGY]`` | ``pause STRATEGY`` | ``flatten STRATEGY`` | ``flatten --all``.
The events are built by :func:`shared.control.control_event` (the notifier's Telegram commands
use the same function) and applied by the executor (``services/executor/control.py``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.console import Console

from lighter_stack.status_tool import stack_redis_url
from shared.bus import Bus
from shared.config import ConfigError, load_config
from shared.control import ControlError, control_event, publish_control
from shared.redis_util import async_client


def resolve_target(command: str, strategy: str | None, all_: bool) -> str | None:
    """The target of ``command`` from the CLI's ``STRATEGY`` argument and ``--all``: ``"*"`` for
    ``--all`` (or ``resume`` without a strategy), else the strategy.

    Raises:
        ControlError: ``flatten``/``pause`` with neither a strategy nor ``--all``, or both given.
    """
    if all_ and strategy:
        raise ControlError("give a STRATEGY or --all, not both")
    if all_:
        return "*"
    if strategy is None and command in ("flatten", "pause"):
        raise ControlError(f"{command} needs a STRATEGY or --all")
    return strategy


def control_command(command: str, strategy: str | None, all_: bool, reason: str, config: Path | None,
                    namespace: str | None, console: Console | None = None) -> int:
    """Build the event and publish it; prints what was sent. Returns the exit code: 0 published,
    2 bad command or config, 1 Redis unreachable."""
    out = console or Console()
    try:
        target = resolve_target(command, strategy, all_)
        ev = control_event(command, target, reason=reason, source="cli")
        cfg = load_config(config)
    except (ControlError, ConfigError) as exc:
        out.print(f"[red]control: {exc}[/]")
        return 2
    ns = namespace or cfg.ns

    async def _send() -> str:
        redis = async_client(stack_redis_url(cfg))
        try:
            return await publish_control(Bus(redis, ns), ev)
        finally:
            await redis.aclose()

    try:
        entry = asyncio.run(_send())
    except (OSError, ConnectionError, RuntimeError) as exc:
        out.print(f"[red]control: cannot publish to Redis: {exc}[/]")
        return 1
    except Exception as exc:  # redis.exceptions.* (ConnectionError is not the builtin one)
        out.print(f"[red]control: cannot publish to Redis: {type(exc).__name__}: {exc}[/]")
        return 1
    out.print(f"published {ev.command} {ev.target} on {ns}:control (entry {entry}, id {ev.id})")
    return 0
